//! The record forms `/app/{object}/new` and `/app/{object}/{id}/edit`: widgets per field
//! type, errors next to their fields in the user's language with the input kept, saves that
//! land on the record, stale versions that end in a conflict (never an overwrite), and
//! read-only and masked fields that are never inputs.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::pages::{Page, Session, Site};
use crate::support::send_json;

/// A record as the API returns it to `session`'s user.
async fn api_get(site: &Site, session: &Session, object: &str, id: &str) -> Value {
    let (status, body) = send_json(
        reqwest::Client::new()
            .get(format!("{}/api/v1/records/{object}/{id}", site.base_url()))
            .bearer_auth(session.token().unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The id at the end of a record page's URL (`/app/lead/<id>`).
fn record_id(page: &Page, object: &str) -> String {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let location = page.location.clone().unwrap();
    location
        .strip_prefix(&format!("/app/{object}/"))
        .unwrap_or_else(|| panic!("not a {object} page: {location}"))
        .to_owned()
}

fn value_of(page: &Page, field: &str) -> String {
    page.attrs(&format!("#field-{field}"), "value")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no #field-{field} with a value:\n{}", page.html))
}

keel_testkit::db_test!(
    a_rep_fixes_a_malformed_phone_and_the_saved_lead_has_what_they_typed,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        let form = chen.get("/app/lead/new").await;
        assert_eq!(form.status, StatusCode::OK);
        form.assert_clean("new lead form");
        assert_eq!(form.texts("h1"), vec!["新建线索"]);
        assert_eq!(
            form.attrs("form#record-form", "action"),
            vec!["/app/lead/new"]
        );
        assert_eq!(form.attrs("#field-name", "required"), vec![""]);
        assert!(form.texts("label.required").contains(&"姓名".to_owned()));
        assert_eq!(form.attrs("#field-name", "maxlength"), vec!["100"]);
        assert_eq!(form.attrs("#field-phone", "type"), vec!["tel"]);
        assert_eq!(form.attrs("#field-email", "type"), vec!["email"]);
        assert_eq!(form.attrs("#field-score", "type"), vec!["number"]);
        assert_eq!(form.attrs("#field-score", "min"), vec!["0"]);
        assert_eq!(form.attrs("#field-score", "max"), vec!["100"]);
        assert_eq!(
            form.attrs("#field-next_follow_up_at", "type"),
            vec!["datetime-local"]
        );
        assert_eq!(form.texts("textarea#field-remark").len(), 1);
        assert_eq!(form.texts("select#field-account").len(), 1);
        assert_eq!(
            form.texts("#help-phone"),
            vec!["保存时只保留数字并去掉 +86 前缀"]
        );
        // Defaults are prefilled.
        assert_eq!(
            form.attrs("#field-status option[selected]", "value"),
            vec!["new"]
        );
        assert_eq!(value_of(&form, "score"), "0");
        assert!(form.html.contains("id=\"save\""));
        assert!(form.attrs("input[name=_version]", "value").is_empty());

        let typed = [
            ("name", "赵六"),
            ("company", "六合科技"),
            ("phone", "电话12ab"),
            ("source", "web"),
            ("status", "contacted"),
            ("score", "70"),
            ("next_follow_up_at", "2026-12-24T09:30"),
            ("remark", "第一行\n第二行"),
        ];
        let refused = chen.post("/app/lead/new", &typed).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        refused.assert_clean("refused lead form");
        assert_eq!(
            refused.texts("#error-phone"),
            vec!["不是有效的电话号码（只能包含数字、空格和 + - ( )）。"]
        );
        assert_eq!(refused.attrs("#error-phone", "class"), vec!["field-error"]);
        assert_eq!(refused.texts("#form-errors a"), vec!["电话"]);
        assert_eq!(refused.texts("[id^=error-]").len(), 1);
        for (field, text) in &typed[..3] {
            assert_eq!(value_of(&refused, field), *text, "{field} is kept");
        }
        assert_eq!(value_of(&refused, "score"), "70");
        assert_eq!(value_of(&refused, "next_follow_up_at"), "2026-12-24T09:30");
        assert_eq!(
            refused.attrs("#field-status option[selected]", "value"),
            vec!["contacted"]
        );
        assert_eq!(
            refused.texts("textarea#field-remark"),
            vec!["第一行 第二行"]
        );

        let mut fixed = typed.to_vec();
        fixed[2] = ("phone", "021-5312 0999");
        let saved = chen.post("/app/lead/new", &fixed).await;
        let id = record_id(&saved, "lead");
        let lead = api_get(&site, &chen, "lead", &id).await;
        assert_eq!(lead["name"], "赵六");
        assert_eq!(lead["phone"], "02153120999", "the lead's script tidied it");
        assert_eq!(lead["status"], "contacted");
        assert_eq!(lead["score"], 70);
        assert_eq!(lead["next_follow_up_at"], "2026-12-24T01:30:00.000000Z");
        assert_eq!(lead["remark"], "第一行\n第二行");
        assert_eq!(lead["email"], Value::Null);
        assert_eq!(lead["owner"], json!(lead["created_by"]));

        // The edit form shows what was saved, the datetime back in the app's timezone.
        let edit = chen.get(&format!("/app/lead/{id}/edit")).await;
        assert_eq!(edit.status, StatusCode::OK);
        edit.assert_clean("lead edit form");
        assert_eq!(value_of(&edit, "next_follow_up_at"), "2026-12-24T09:30");
        assert_eq!(value_of(&edit, "phone"), "02153120999");
        assert_eq!(edit.attrs("input[name=_version]", "value"), vec!["1"]);
        assert_eq!(
            edit.attrs("form#record-form", "action"),
            vec![format!("/app/lead/{id}/edit")]
        );
        let too_large = chen
            .post(
                &format!("/app/lead/{id}/edit"),
                &[("_version", "1"), ("name", "赵六"), ("score", "101")],
            )
            .await;
        assert_eq!(too_large.status, StatusCode::UNPROCESSABLE_ENTITY);
        too_large.assert_clean("edit form with an error");
        assert_eq!(too_large.texts("#error-score"), vec!["不能大于 100。"]);
        assert_eq!(value_of(&too_large, "score"), "101");
        assert_eq!(too_large.attrs("input[name=_version]", "value"), vec!["1"]);
        let required = chen
            .post(
                &format!("/app/lead/{id}/edit"),
                &[("_version", "1"), ("name", "  ")],
            )
            .await;
        assert_eq!(required.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(required.texts("#error-name"), vec!["此项为必填项。"]);
        let changed = chen
            .post(
                &format!("/app/lead/{id}/edit"),
                &[("_version", "1"), ("name", "赵六六"), ("score", "88")],
            )
            .await;
        assert_eq!(record_id(&changed, "lead"), id);
        let lead = api_get(&site, &chen, "lead", &id).await;
        assert_eq!(
            (lead["name"].clone(), lead["score"].clone()),
            (json!("赵六六"), json!(88))
        );
        assert_eq!(lead["version"], 2);
        assert_eq!(lead["company"], "六合科技", "fields not on the post stay");
    }
);

keel_testkit::db_test!(
    a_form_without_the_csrf_token_saves_nothing_and_other_reps_leads_are_404,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        chen.get("/app/lead/new").await;
        let forged = chen.post_plain("/app/lead/new", &[("name", "伪造")]).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        forged.assert_clean("stale form page");
        let (_, leads) = send_json(
            reqwest::Client::new()
                .get(format!(
                    "{}/api/v1/records/lead?q=%E4%BC%AA%E9%80%A0",
                    site.base_url()
                ))
                .bearer_auth(chen.token().unwrap()),
        )
        .await;
        assert_eq!(leads["data"], json!([]));

        // liu's lead, by URL: not found for chen, in the edit form and on save.
        let mut liu = site.login("liu").await;
        let (_, theirs) = send_json(
            reqwest::Client::new()
                .get(format!("{}/api/v1/records/lead?limit=1", site.base_url()))
                .bearer_auth(liu.token().unwrap()),
        )
        .await;
        let theirs = theirs["data"][0]["id"].as_str().unwrap().to_owned();
        assert_eq!(
            liu.get(&format!("/app/lead/{theirs}/edit")).await.status,
            StatusCode::OK
        );
        let hidden = chen.get(&format!("/app/lead/{theirs}/edit")).await;
        assert_eq!(hidden.status, StatusCode::NOT_FOUND);
        hidden.assert_clean("404 page");
        let post = chen
            .post(&format!("/app/lead/{theirs}/edit"), &[("name", "x")])
            .await;
        assert_eq!(post.status, StatusCode::NOT_FOUND);
        // A service agent may not create leads at all.
        let mut sun = site.login("sun").await;
        assert_eq!(sun.get("/app/lead/new").await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            sun.get("/app/nothing/new").await.status,
            StatusCode::NOT_FOUND
        );
    }
);
