//! The record forms `/app/{object}/new` and `/app/{object}/{id}/edit`: widgets per field
//! type, errors next to their fields in the user's language with the input kept, saves that
//! land on the record, stale versions that end in a conflict (never an overwrite), and
//! read-only and masked fields that are never inputs.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::pages::{Page, Session, Site};
use crate::support::{AppDir, send_json};

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
        assert!(
            form.attrs("[name=owner]", "name").is_empty(),
            "a rep assigns no one"
        );

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

        // A validation of the app names its field, in the user's language; a script's
        // refusal belongs to no field and shows in the summary.
        let mut qualified = typed.to_vec();
        qualified[1] = ("company", "");
        qualified[2] = ("phone", "");
        qualified[4] = ("status", "qualified");
        let invalid = chen.post("/app/lead/new", &qualified).await;
        assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            invalid.texts("#error-company"),
            vec!["合格线索必须填写公司"]
        );
        let mut bad_mobile = typed.to_vec();
        bad_mobile[2] = ("mobile", "12345");
        let rejected = chen.post("/app/lead/new", &bad_mobile).await;
        assert_eq!(rejected.status, StatusCode::UNPROCESSABLE_ENTITY);
        rejected.assert_clean("a script's refusal");
        assert!(
            rejected.texts("#form-errors li")[0].contains("手机号码应为 11 位数字"),
            "{}",
            rejected.html
        );
        assert_eq!(value_of(&rejected, "mobile"), "12345");

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
        assert_eq!(
            value_of(&too_large, "company"),
            "六合科技",
            "a field the post left out shows its stored value"
        );
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
    a_form_without_the_csrf_token_saves_nothing_and_records_beyond_the_reps_scope_are_refused,
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
        // A colleague's account: chen may read it (his department) but not edit it.
        let (_, me) = send_json(
            reqwest::Client::new()
                .get(format!("{}/api/v1/auth/me", site.base_url()))
                .bearer_auth(chen.token().unwrap()),
        )
        .await;
        let (_, accounts) = send_json(
            reqwest::Client::new()
                .get(format!(
                    "{}/api/v1/records/account?limit=50",
                    site.base_url()
                ))
                .bearer_auth(chen.token().unwrap()),
        )
        .await;
        let accounts = accounts["data"].as_array().unwrap();
        let colleagues = accounts
            .iter()
            .find(|a| a["owner"] != me["user"]["id"])
            .unwrap();
        let own = accounts
            .iter()
            .find(|a| a["owner"] == me["user"]["id"])
            .unwrap();
        let refused = chen
            .get(&format!(
                "/app/account/{}/edit",
                colleagues["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        refused.assert_clean("403 page");
        let allowed = chen
            .get(&format!(
                "/app/account/{}/edit",
                own["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(allowed.status, StatusCode::OK);
        allowed.assert_clean("account edit form");
        // A service agent may not create leads at all.
        let mut sun = site.login("sun").await;
        assert_eq!(sun.get("/app/lead/new").await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            sun.get("/app/nothing/new").await.status,
            StatusCode::NOT_FOUND
        );
    }
);

keel_testkit::db_test!(
    a_stale_save_shows_who_changed_what_keeps_the_input_and_can_be_applied_on_top,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        chen.get("/app/lead/new").await;
        let created = chen
            .post(
                "/app/lead/new",
                &[("name", "钱七"), ("company", "七星科技"), ("score", "10")],
            )
            .await;
        let id = record_id(&created, "lead");
        let edit = chen.get(&format!("/app/lead/{id}/edit")).await;
        let loaded_at = edit.attrs("input[name=_loaded_at]", "value").remove(0);
        assert_eq!(edit.attrs("input[name=_version]", "value"), vec!["1"]);

        // Meanwhile chen's manager changes the company and the score.
        let li = site.login("li").await;
        let (status, body) = send_json(
            reqwest::Client::new()
                .patch(format!("{}/api/v1/records/lead/{id}", site.base_url()))
                .bearer_auth(li.token().unwrap())
                .json(&json!({ "company": "北斗科技", "score": 50 })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // chen saves the form loaded at version 1: a new name, and a score of their own.
        let stale = chen
            .post(
                &format!("/app/lead/{id}/edit"),
                &[
                    ("_version", "1"),
                    ("_loaded_at", &loaded_at),
                    ("name", "钱七七"),
                    ("company", "七星科技"),
                    ("score", "90"),
                ],
            )
            .await;
        assert_eq!(stale.status, StatusCode::CONFLICT);
        stale.assert_clean("conflict page");
        let changes = stale.texts("#conflict li.change");
        assert_eq!(
            changes,
            vec![
                "李娜 将 公司 改为 北斗科技".to_owned(),
                "李娜 将 评分 改为 50 你也修改了此字段".to_owned(),
            ],
            "{}",
            stale.html
        );
        assert_eq!(
            value_of(&stale, "name"),
            "钱七七",
            "the user's input is kept"
        );
        assert_eq!(
            value_of(&stale, "score"),
            "90",
            "the user's own change is kept"
        );
        assert_eq!(
            value_of(&stale, "company"),
            "北斗科技",
            "a field the user left alone takes the newer value"
        );
        assert_eq!(stale.attrs("input[name=_version]", "value"), vec!["2"]);
        assert_eq!(stale.attrs("#reapply", "form"), vec!["record-form"]);
        let lead = api_get(&site, &chen, "lead", &id).await;
        assert_eq!(lead["name"], "钱七", "nothing was saved");

        // Applying on top: the form as the conflict page shows it, at the new version.
        let version = stale.attrs("input[name=_version]", "value").remove(0);
        let loaded_at = stale.attrs("input[name=_loaded_at]", "value").remove(0);
        let company = value_of(&stale, "company");
        let applied = chen
            .post(
                &format!("/app/lead/{id}/edit"),
                &[
                    ("_version", &version),
                    ("_loaded_at", &loaded_at),
                    ("name", "钱七七"),
                    ("company", &company),
                    ("score", "90"),
                ],
            )
            .await;
        assert_eq!(record_id(&applied, "lead"), id);
        let lead = api_get(&site, &chen, "lead", &id).await;
        assert_eq!(
            (
                &lead["name"],
                &lead["company"],
                &lead["score"],
                &lead["version"]
            ),
            (&json!("钱七七"), &json!("北斗科技"), &json!(90), &json!(3))
        );
    }
);

const FIXTURE_APP: &str = "\
name: { en: Form test, zh: 表单测试 }
language: en
timezone: America/New_York
currency: USD
";

const FIXTURE_ROLES: &str = "\
roles:
  admin: { admin: true }
  rep: {}
  clerk: {}
permissions:
  rep:
    gadget: { read: own, create: true, edit: own, delete: own }
    maker: { read: all, create: true, edit: own }
  clerk:
    gadget: { read: all, create: true, edit: all, fields: { secret_note: read } }
    maker: { read: all }
";

const FIXTURE_GADGET: &str = "\
name: gadget
label: { en: Gadget, zh: 小工具 }
title: name
search: [name]
fields:
  name: { type: text, required: true, max_length: 40, pattern: '[A-Za-z0-9 ]+', label: { en: Name, zh: 名称 } }
  notes: { type: long_text, label: { en: Notes, zh: 备注 } }
  count: { type: integer, min: 0, max: 10, label: { en: Count, zh: 数量 } }
  weight: { type: decimal, scale: 3 }
  price: { type: money }
  share: { type: percent, scale: 1 }
  ships_on: { type: date }
  meets_at: { type: datetime }
  colour: { type: choice, options: [red, green, blue], default: red }
  tags: { type: multi_choice, options: [a, b, c] }
  fragile: { type: boolean }
  email: { type: email, label: { en: Email, zh: 邮箱 } }
  phone: { type: phone, mask: true, label: { en: Phone, zh: 电话 } }
  site: { type: url }
  maker: { type: lookup, object: maker }
  reviewer: { type: user }
  code: { type: autonumber, format: 'G-{seq:3}' }
  secret_note: { type: text }
duplicates:
  - { fields: [phone], action: block }
layout:
  - section: { en: Basics, zh: 基本 }
    fields: [name, code, phone, email]
";

const FIXTURE_MAKER: &str = "\
name: maker
label: { en: Maker, zh: 厂商 }
title: name
search: [name]
fields:
  name: { type: text, required: true }
";

const FIXTURE_USERS: &str = "\
username,display_name,password,roles,manager,department,language,email
rep,Rita Rep,demo1234,rep,,,en,
rep2,Rob Second,demo1234,rep,,,zh,
clerk,柯丽,demo1234,clerk,,,zh,
";

fn fixture_app() -> AppDir {
    AppDir::new(&[
        ("metadata/app.yaml", FIXTURE_APP),
        ("metadata/roles.yaml", FIXTURE_ROLES),
        ("metadata/objects/gadget.yaml", FIXTURE_GADGET),
        ("metadata/objects/maker.yaml", FIXTURE_MAKER),
        ("seed/departments.csv", "name,label,parent\n"),
        ("seed/users.csv", FIXTURE_USERS),
    ])
}

/// Every `name` of `page`'s form controls that holds a value, in order.
fn checked(page: &Page, field: &str) -> Vec<String> {
    page.attrs(&format!("input[name={field}][checked]"), "value")
}

keel_testkit::db_test!(
    every_widget_type_round_trips_through_the_form_in_the_apps_timezone,
    |db| async move {
        let site = Site::app(fixture_app(), &db.url);
        let mut rep = site.login("rep").await;
        let (status, maker) = send_json(
            reqwest::Client::new()
                .post(format!("{}/api/v1/records/maker", site.base_url()))
                .bearer_auth(rep.token().unwrap())
                .json(&json!({ "name": "Acme" })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{maker}");
        let maker_id = maker["id"].as_str().unwrap().to_owned();

        // From a related list: the lookup comes prefilled.
        let form = rep.get(&format!("/app/gadget/new?maker={maker_id}")).await;
        assert_eq!(form.status, StatusCode::OK);
        form.assert_clean("new gadget form");
        assert_eq!(form.texts("h1"), vec!["New Gadget"]);
        assert_eq!(
            form.attrs("#field-maker option[selected]", "value"),
            vec![maker_id.clone()]
        );
        assert_eq!(form.texts("#field-maker option[selected]"), vec!["Acme"]);
        assert_eq!(
            form.attrs("#field-colour option[selected]", "value"),
            vec!["red"]
        );
        assert_eq!(form.attrs("#field-name", "pattern"), vec!["[A-Za-z0-9 ]+"]);
        assert_eq!(form.attrs("#field-weight", "step"), vec!["0.001"]);
        assert_eq!(form.attrs("#field-price", "step"), vec!["0.01"]);
        assert_eq!(form.texts("[data-field=price] .prefix"), vec!["$"]);
        assert_eq!(form.attrs("#field-share", "step"), vec!["0.1"]);
        assert_eq!(form.texts("[data-field=share] .suffix"), vec!["%"]);
        assert_eq!(form.attrs("#field-ships_on", "type"), vec!["date"]);
        assert_eq!(form.attrs("#field-site", "type"), vec!["url"]);
        assert_eq!(form.attrs("#field-fragile", "type"), vec!["checkbox"]);
        assert_eq!(
            form.attrs("input[name=tags][type=checkbox]", "value"),
            vec!["a", "b", "c"]
        );
        assert_eq!(
            form.texts("#field-reviewer option"),
            vec![
                "— none —",
                "Administrator",
                "Rita Rep",
                "Rob Second",
                "柯丽"
            ]
        );
        assert!(
            form.attrs("input[name=code]", "value").is_empty(),
            "computed: no input"
        );
        assert!(form.attrs("input[name=phone]", "data-duplicate-key").len() == 1);
        // The layout's section first, then the other fields.
        assert_eq!(
            form.texts("section.form-section h2"),
            vec!["Basics", "Other"]
        );
        let reviewer = form
            .attrs("#field-reviewer option", "value")
            .into_iter()
            .nth(3)
            .unwrap();

        let fields = [
            ("name", "Widget 1"),
            ("notes", "two\nlines"),
            ("count", "7"),
            ("weight", "1.25"),
            ("price", "19.99"),
            ("share", "12.5"),
            ("ships_on", "2026-12-24"),
            ("meets_at", "2026-12-24T09:30"),
            ("colour", "green"),
            ("tags", ""),
            ("tags", "a"),
            ("tags", "c"),
            ("fragile", "false"),
            ("fragile", "true"),
            ("email", "rita@example.com"),
            ("phone", "555-0100"),
            ("site", "https://example.com/w"),
            ("maker", &maker_id),
            ("reviewer", &reviewer),
            ("secret_note", "between us"),
        ];
        let saved = rep.post("/app/gadget/new", &fields).await;
        let id = record_id(&saved, "gadget");
        let gadget = api_get(&site, &rep, "gadget", &id).await;
        let expected = json!({
            "name": "Widget 1", "notes": "two\nlines", "count": 7, "weight": "1.250",
            "price": "19.99", "share": "12.5", "ships_on": "2026-12-24",
            "meets_at": "2026-12-24T14:30:00.000000Z", "colour": "green", "tags": ["a", "c"],
            "fragile": true, "email": "rita@example.com", "phone": "555-0100",
            "site": "https://example.com/w", "maker": maker_id, "reviewer": reviewer,
            "code": "G-001", "secret_note": "between us",
        });
        for (field, value) in expected.as_object().unwrap() {
            assert_eq!(&gadget[field], value, "{field}");
        }

        // The edit form holds each value as its input shows it.
        let edit = rep.get(&format!("/app/gadget/{id}/edit")).await;
        edit.assert_clean("gadget edit form");
        for (field, text) in [
            ("name", "Widget 1"),
            ("count", "7"),
            ("weight", "1.250"),
            ("price", "19.99"),
            ("share", "12.5"),
            ("ships_on", "2026-12-24"),
            ("meets_at", "2026-12-24T09:30"),
            ("email", "rita@example.com"),
            ("phone", "555-0100"),
            ("site", "https://example.com/w"),
        ] {
            assert_eq!(value_of(&edit, field), text, "{field}");
        }
        assert_eq!(edit.texts("textarea#field-notes"), vec!["two lines"]);
        assert_eq!(
            edit.attrs("#field-colour option[selected]", "value"),
            vec!["green"]
        );
        assert_eq!(checked(&edit, "tags"), vec!["a", "c"]);
        assert_eq!(checked(&edit, "fragile"), vec!["true"]);
        assert_eq!(
            edit.attrs("#field-maker option[selected]", "value"),
            vec![maker_id.clone()]
        );
        assert_eq!(
            edit.attrs("#field-reviewer option[selected]", "value"),
            vec![reviewer.clone()]
        );
        assert_eq!(edit.texts("#value-code"), vec!["G-001"]);

        // Unticking and clearing: the hidden fallbacks send "off" and "none".
        let cleared = rep
            .post(
                &format!("/app/gadget/{id}/edit"),
                &[
                    ("_version", "1"),
                    ("name", "Widget 1"),
                    ("tags", ""),
                    ("fragile", "false"),
                    ("count", ""),
                    ("meets_at", "2026-07-01T09:30"),
                    ("reviewer", ""),
                ],
            )
            .await;
        assert_eq!(record_id(&cleared, "gadget"), id);
        let gadget = api_get(&site, &rep, "gadget", &id).await;
        assert_eq!(gadget["fragile"], false);
        assert!(
            gadget["tags"] == json!([]) || gadget["tags"].is_null(),
            "{gadget}"
        );
        assert_eq!(gadget["count"], Value::Null);
        assert_eq!(gadget["reviewer"], Value::Null);
        // Summer time in New York: 09:30 there is 13:30 UTC.
        assert_eq!(gadget["meets_at"], "2026-07-01T13:30:00.000000Z");
        assert_eq!(gadget["price"], "19.99", "fields not posted stay");

        // A time stored to the second is shown to the minute; saving the form untouched
        // keeps the seconds.
        let (status, body) = send_json(
            reqwest::Client::new()
                .patch(format!("{}/api/v1/records/gadget/{id}", site.base_url()))
                .bearer_auth(rep.token().unwrap())
                .json(&json!({ "meets_at": "2026-12-24T14:30:45Z" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let edit = rep.get(&format!("/app/gadget/{id}/edit")).await;
        let meets_at = value_of(&edit, "meets_at");
        assert_eq!(meets_at, "2026-12-24T09:30");
        let version = edit.attrs("input[name=_version]", "value").remove(0);
        let saved = rep
            .post(
                &format!("/app/gadget/{id}/edit"),
                &[
                    ("_version", &version),
                    ("name", "Widget 2"),
                    ("meets_at", &meets_at),
                    ("price", "19.99"),
                ],
            )
            .await;
        assert_eq!(record_id(&saved, "gadget"), id);
        let gadget = api_get(&site, &rep, "gadget", &id).await;
        assert_eq!(gadget["name"], "Widget 2");
        assert_eq!(gadget["meets_at"], "2026-12-24T14:30:45.000000Z");
    }
);

keel_testkit::db_test!(
    errors_show_in_the_users_language_and_a_blocked_duplicate_keeps_the_input,
    |db| async move {
        let site = Site::app(fixture_app(), &db.url);
        let mut rep = site.login("rep").await;
        rep.get("/app/gadget/new").await;
        let refused = rep
            .post(
                "/app/gadget/new",
                &[
                    ("name", "bad!"),
                    ("count", "11"),
                    ("email", "nope"),
                    ("price", "1.234"),
                    ("site", "example.com"),
                    ("meets_at", "someday"),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        refused.assert_clean("English errors");
        for (field, text) in [
            ("name", "This does not have the required format."),
            ("count", "Must be at most 10."),
            ("email", "This is not an email address."),
            ("price", "At most 2 digits after the decimal point."),
            (
                "site",
                "This is not a web address (it starts with http:// or https://).",
            ),
            ("meets_at", "This is not a date and time."),
        ] {
            assert_eq!(
                refused.texts(&format!("#error-{field}")),
                vec![text],
                "{field}"
            );
        }
        assert_eq!(refused.texts("#form-errors li").len(), 6);
        assert_eq!(value_of(&refused, "email"), "nope");
        let required = rep.post("/app/gadget/new", &[("name", "")]).await;
        assert_eq!(
            required.texts("#error-name"),
            vec!["This field is required."]
        );

        let first = rep
            .post("/app/gadget/new", &[("name", "One"), ("phone", "555 0199")])
            .await;
        record_id(&first, "gadget");
        // Another rep types the same phone: refused, in their language (zh), input kept.
        let mut rep2 = site.login("rep2").await;
        rep2.get("/app/gadget/new").await;
        let blocked = rep2
            .post(
                "/app/gadget/new",
                &[("name", "Two"), ("phone", "555-0199"), ("notes", "keep me")],
            )
            .await;
        assert_eq!(blocked.status, StatusCode::CONFLICT);
        blocked.assert_clean("duplicate refused");
        let message = blocked.texts("#error-phone").remove(0);
        assert!(
            message.starts_with("已存在相同的记录：") && message.contains("Rita Rep"),
            "{message}"
        );
        assert_eq!(value_of(&blocked, "phone"), "555-0199");
        assert_eq!(blocked.texts("textarea#field-notes"), vec!["keep me"]);
        let required = rep2.post("/app/gadget/new", &[("name", "")]).await;
        assert_eq!(required.texts("#error-name"), vec!["此项为必填项。"]);

        // Each refused duplicate spends the 查重 budget; a spent budget says so, in zh.
        let mut spent = None;
        for _ in 0..40 {
            let page = rep2
                .post("/app/gadget/new", &[("name", "Two"), ("phone", "555-0199")])
                .await;
            if page.status == StatusCode::TOO_MANY_REQUESTS {
                spent = Some(page);
                break;
            }
            assert_eq!(page.status, StatusCode::CONFLICT);
        }
        let spent = spent.expect("the budget runs out within 40 refused saves");
        spent.assert_clean("spent budget");
        assert!(
            spent.texts("#form-errors li")[0].starts_with("短时间内查重次数过多"),
            "{}",
            spent.html
        );
        assert_eq!(value_of(&spent, "phone"), "555-0199");
    }
);

keel_testkit::db_test!(
    read_only_and_masked_fields_are_text_not_inputs_and_keep_their_real_values,
    |db| async move {
        let site = Site::app(fixture_app(), &db.url);
        let mut rep = site.login("rep").await;
        rep.get("/app/gadget/new").await;
        let saved = rep
            .post(
                "/app/gadget/new",
                &[
                    ("name", "Secretive"),
                    ("phone", "555-867-0142"),
                    ("secret_note", "real note"),
                ],
            )
            .await;
        let id = record_id(&saved, "gadget");

        // The clerk may edit every gadget, sees the phone masked and may only read the note.
        let mut clerk = site.login("clerk").await;
        let edit = clerk.get(&format!("/app/gadget/{id}/edit")).await;
        assert_eq!(edit.status, StatusCode::OK);
        edit.assert_clean("clerk's edit form");
        assert!(
            edit.attrs("[name=phone]", "name").is_empty(),
            "{}",
            edit.html
        );
        assert!(edit.attrs("[name=secret_note]", "name").is_empty());
        assert!(edit.attrs("[name=code]", "name").is_empty());
        let phone = edit
            .texts("[data-field=phone] .readonly-value.masked")
            .remove(0);
        assert!(phone.contains("***") && phone != "555-867-0142", "{phone}");
        assert_eq!(
            edit.texts("[data-field=secret_note] .readonly-value"),
            vec!["real note"]
        );
        assert_eq!(value_of(&edit, "name"), "Secretive");

        // A save that sends the mask and the note back anyway changes neither.
        let changed = clerk
            .post(
                &format!("/app/gadget/{id}/edit"),
                &[
                    ("_version", "1"),
                    ("name", "Secretive 2"),
                    ("phone", &phone),
                    ("secret_note", "overwritten"),
                ],
            )
            .await;
        assert_eq!(record_id(&changed, "gadget"), id);
        let gadget = api_get(&site, &rep, "gadget", &id).await;
        assert_eq!(gadget["name"], "Secretive 2");
        assert_eq!(gadget["phone"], "555-867-0142");
        assert_eq!(gadget["secret_note"], "real note");

        // The owner sees and edits the phone in clear.
        let own = rep.get(&format!("/app/gadget/{id}/edit")).await;
        assert_eq!(value_of(&own, "phone"), "555-867-0142");
    }
);

keel_testkit::db_test!(
    an_admin_creates_a_lead_for_a_rep_by_choosing_its_owner,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut admin = site.login("admin").await;
        let form = admin.get("/app/lead/new").await;
        assert_eq!(form.status, StatusCode::OK);
        form.assert_clean("admin's new lead form");
        let owners = form.texts("select#field-owner option");
        assert!(owners.contains(&"陈晨".to_owned()), "{owners:?}");
        let selected = form.attrs("#field-owner option[selected]", "value");
        assert_eq!(
            selected.len(),
            1,
            "the admin is the owner until they choose"
        );
        let chen_id = form
            .attrs("select#field-owner option", "value")
            .into_iter()
            .zip(owners)
            .find(|(_, name)| name == "陈晨")
            .map(|(id, _)| id)
            .unwrap();
        let saved = admin
            .post("/app/lead/new", &[("name", "孙八"), ("owner", &chen_id)])
            .await;
        let id = record_id(&saved, "lead");
        let mut chen = site.login("chen").await;
        let lead = api_get(&site, &chen, "lead", &id).await;
        assert_eq!(lead["owner"], chen_id.as_str());
        let edit = admin.get(&format!("/app/lead/{id}/edit")).await;
        assert_eq!(
            edit.attrs("#field-owner option[selected]", "value"),
            vec![chen_id.clone()]
        );
        assert_eq!(
            chen.get(&format!("/app/lead/{id}/edit")).await.status,
            StatusCode::OK
        );
    }
);
