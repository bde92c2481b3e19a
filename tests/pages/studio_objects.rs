//! The studio's object editors over real HTTP (docs/studio.md, "Changing an object"): the
//! object page, the field editor and the list settings. Each test runs on a copy of the
//! standard app, since an apply writes the app's files.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::pages::browser::{api, api_token};
use crate::pages::{Session, Site, form_values, post_values as post, with};

const LEAD: &str = "metadata/objects/lead.yaml";

/// The objects the studio's index links to.
async fn objects(admin: &mut Session) -> Vec<String> {
    let index = admin.get("/admin/studio").await;
    assert_eq!(index.status, StatusCode::OK, "{}", index.html);
    index.attrs("#studio-objects li a", "href")
}

/// The lead's new-field form with a choice field `budget_level` filled in (two options).
async fn budget_level_form(admin: &mut Session) -> Vec<(String, String)> {
    let form = admin.get("/admin/studio/objects/lead/fields/new").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.html);
    form.assert_clean("the new field form");
    let mut values = form_values(&form, "#field-form");
    for (name, value) in [
        ("name", "budget_level"),
        ("type", "choice"),
        ("label_en", "Budget level"),
        ("label_zh", "预算级别"),
        ("options/0/key", "low"),
        ("options/0/label_en", "Low"),
        ("options/0/label_zh", "低"),
        ("options/1/key", "high"),
        ("options/1/label_en", "High"),
        ("options/1/label_zh", "高"),
        ("section", "1"),
    ] {
        values = with(values, name, value);
    }
    values
}

keel_testkit::db_test!(
    every_object_and_field_editor_of_the_standard_app_renders_and_saved_unchanged_changes_nothing,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let objects = objects(&mut admin).await;
        assert!(objects.len() >= 10, "{objects:?}");
        let mut fields = 0;
        for object in &objects {
            let page = admin.get(object).await;
            assert_eq!(page.status, StatusCode::OK, "{object}: {}", page.html);
            page.assert_clean(object);
            assert_eq!(
                page.attrs("#add-field", "href"),
                vec![format!("{object}/fields/new")]
            );
            let list = page.attrs("#list-settings", "href");
            assert_eq!(list, vec![format!("{object}/list")]);
            let links = page.attrs("#object-fields tr[data-field] a", "href");
            assert!(!links.is_empty(), "{object}");
            for link in links.iter().chain(&list) {
                let editor = admin.get(link).await;
                assert_eq!(editor.status, StatusCode::OK, "{link}: {}", editor.html);
                editor.assert_clean(link);
                let form = if link.ends_with("/list") {
                    "#list-form"
                } else {
                    "#field-form"
                };
                let values = form_values(&editor, form);
                let review = post(&mut admin, link, &values).await;
                assert_eq!(review.status, StatusCode::OK, "{link}: {}", review.html);
                review.assert_clean(link);
                assert_eq!(
                    review.attrs("#review-refusal", "data-kind"),
                    vec!["unchanged"],
                    "{link} saved unchanged: {}",
                    review.html
                );
                assert!(review.attrs("button#apply", "id").is_empty(), "{link}");
                fields += 1;
            }
        }
        assert!(fields > 100, "{fields} editors");
    }
);

keel_testkit::db_test!(
    an_admin_adds_a_choice_field_to_lead_and_the_api_and_openapi_show_it_once_applied,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let values = budget_level_form(&mut admin).await;
        let review = post(&mut admin, "/admin/studio/objects/lead/fields/new", &values).await;
        assert_eq!(review.status, StatusCode::OK, "{}", review.html);
        review.assert_clean("the review of a new field");
        assert!(review.attrs("#review-refusal", "data-kind").is_empty());
        assert_eq!(review.attrs("section.studio-diff", "data-path"), vec![LEAD]);
        let added = review.texts("tr.added td.text code").join("\n");
        for line in [
            "budget_level:",
            "type: choice",
            "{ en: Budget level, zh: 预算级别 }",
            "{ key: low, label: { en: Low, zh: 低 } }",
            "{ key: high, label: { en: High, zh: 高 } }",
        ] {
            assert!(added.contains(line), "`{line}` in\n{added}");
        }
        // The field goes into the second layout section.
        assert!(
            added.contains("fields: [source, industry, status, score, account, budget_level]"),
            "{added}"
        );
        let plan = review.texts("ol.plan li").join("\n");
        assert!(plan.contains("add column lead.budget_level"), "{plan}");
        assert_eq!(
            review.attrs("ol.plan li[data-safe=false]", "class").len(),
            0
        );

        // Apply: back on the object's page with the version, the field listed.
        let apply = form_values(&review, "#review-apply");
        let applied = post(&mut admin, "/admin/studio/apply", &apply).await;
        assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);
        let location = applied.location.clone().unwrap();
        assert!(
            location.starts_with("/admin/studio/objects/lead?applied="),
            "{location}"
        );
        let object = admin.get(&location).await;
        object.assert_clean("the object page after an apply");
        assert_eq!(object.attrs("#applied", "id").len(), 1);
        assert_eq!(
            object.attrs("#object-fields tr[data-field=budget_level] a", "href"),
            vec!["/admin/studio/objects/lead/fields/budget_level"]
        );
        let file = std::fs::read_to_string(site.app_dir().join(LEAD)).unwrap();
        assert!(
            file.contains("  budget_level:\n    type: choice\n"),
            "{file}"
        );

        // The API takes and returns it; OpenAPI describes it with its options.
        let token = api_token(&site, "admin").await;
        let (status, lead) = api(
            &site,
            &token,
            Method::POST,
            "/records/lead",
            Some(json!({ "name": "Studio lead", "budget_level": "high" })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{lead}");
        assert_eq!(lead["budget_level"], "high");
        let (status, refused) = api(
            &site,
            &token,
            Method::POST,
            "/records/lead",
            Some(json!({ "name": "Studio lead", "budget_level": "huge" })),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        let (status, openapi) = api(&site, &token, Method::GET, "/openapi.json", None).await;
        assert_eq!(status, StatusCode::OK);
        let property = &openapi["components"]["schemas"]["Lead"]["properties"]["budget_level"];
        assert!(
            property.to_string().contains("\"low\"") && property.to_string().contains("\"high\""),
            "{property}"
        );

        // The field's editor shows what was applied, and saved unchanged changes nothing.
        let editor = admin
            .get("/admin/studio/objects/lead/fields/budget_level")
            .await;
        assert_eq!(editor.status, StatusCode::OK, "{}", editor.html);
        assert_eq!(
            editor.attrs("[name='options/1/key']", "value"),
            vec!["high"]
        );
        assert_eq!(editor.attrs("#field-label_zh", "value"), vec!["预算级别"]);
        let again = post(
            &mut admin,
            "/admin/studio/objects/lead/fields/budget_level",
            &form_values(&editor, "#field-form"),
        )
        .await;
        assert_eq!(
            again.attrs("#review-refusal", "data-kind"),
            vec!["unchanged"]
        );
    }
);

keel_testkit::db_test!(
    a_bad_option_key_shows_the_form_again_with_the_error_at_that_option_and_changes_nothing,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let before = std::fs::read_to_string(site.app_dir().join(LEAD)).unwrap();
        // The third row repeats the first row's key; the second row is left empty.
        let values = budget_level_form(&mut admin).await;
        let values = with(values, "options/1/key", "");
        let values = with(values, "options/1/label_en", "");
        let values = with(values, "options/1/label_zh", "");
        let values = with(values, "options/2/key", "low");
        let values = with(values, "options/2/label_en", "Low again");
        let page = post(&mut admin, "/admin/studio/objects/lead/fields/new", &values).await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.html
        );
        page.assert_clean("the field form with an error");
        assert_eq!(page.attrs("#form-errors", "id").len(), 1);
        assert_eq!(
            page.attrs(".option-row .field-error", "data-field"),
            vec!["options/2/key"],
            "{}",
            page.html
        );
        assert_eq!(page.attrs(".option-row.invalid", "data-index"), vec!["2"]);
        // Explained in the page's language, naming the key.
        let message = page.texts("#error-options-2-key").join("");
        assert!(message.contains("“low”"), "{message}");
        // What the admin typed is still there.
        assert_eq!(page.attrs("#field-name", "value"), vec!["budget_level"]);
        assert_eq!(
            page.attrs("[name='options/2/label_en']", "value"),
            vec!["Low again"]
        );
        assert_eq!(
            page.attrs("#field-type option[selected]", "value"),
            vec!["choice"]
        );

        // A name the object already has, and a type an existing field cannot take.
        let taken = with(budget_level_form(&mut admin).await, "name", "company");
        let page = post(&mut admin, "/admin/studio/objects/lead/fields/new", &taken).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(page.attrs(".field-error", "data-field"), vec!["name"]);
        let editor = admin.get("/admin/studio/objects/lead/fields/company").await;
        let retyped = with(form_values(&editor, "#field-form"), "type", "integer");
        let page = post(
            &mut admin,
            "/admin/studio/objects/lead/fields/company",
            &retyped,
        )
        .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(page.attrs(".field-error", "data-field"), vec!["type"]);

        // Forms no browser sends are a form error or a review with problems, never a
        // server error.
        for (values, field) in [
            (vec![], "type"),
            (vec![("name", "x"), ("type", "formula")], "type"),
            (vec![("name", "Bad Name"), ("type", "text")], "name"),
            (
                vec![("name", "x"), ("type", "text"), ("section", "99")],
                "section",
            ),
            (vec![("name", "x"), ("type", "choice")], "options"),
            (
                vec![("name", "x"), ("type", "text"), ("options/99999/key", "a")],
                "",
            ),
            (
                vec![("name", "x"), ("type", "integer"), ("default", "abc")],
                "",
            ),
        ] {
            let values: Vec<(String, String)> = values
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect();
            let page = post(&mut admin, "/admin/studio/objects/lead/fields/new", &values).await;
            page.assert_clean("a form no browser sends");
            if field.is_empty() {
                // Past the form: the review, with the loader's problem when there is one.
                assert!(
                    page.status == StatusCode::OK
                        || page.status == StatusCode::UNPROCESSABLE_ENTITY,
                    "{values:?}: {}",
                    page.status
                );
                assert_eq!(page.attrs("#review-apply", "id").len(), 1, "{values:?}");
            } else {
                assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{values:?}");
                assert_eq!(
                    page.attrs(".field-error", "data-field"),
                    vec![field],
                    "{values:?}: {}",
                    page.html
                );
            }
        }
        let page = admin.get("/admin/studio/objects/lead/fields/new").await;
        assert_eq!(page.status, StatusCode::OK);

        // A column the object does not have is shown at its slot.
        let list = admin.get("/admin/studio/objects/lead/list").await;
        let values = with(form_values(&list, "#list-form"), "columns/1", "nope");
        let page = post(&mut admin, "/admin/studio/objects/lead/list", &values).await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.html
        );
        page.assert_clean("the list form with an error");
        assert_eq!(
            page.attrs(".column-slot .field-error", "data-field"),
            vec!["columns/1"]
        );

        assert_eq!(
            std::fs::read_to_string(site.app_dir().join(LEAD)).unwrap(),
            before
        );
    }
);

keel_testkit::db_test!(
    the_list_settings_change_the_columns_search_fields_and_duplicate_keys,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let list = admin.get("/admin/studio/objects/lead/list").await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.html);
        let values = form_values(&list, "#list-form");
        // Columns: `mobile` (the third) left out, `industry` added at the end; `email` no
        // longer searched; a new duplicate key on the email, which warns.
        let values = with(values, "columns/2", "");
        let values = with(values, "columns/8", "industry");
        let values: Vec<(String, String)> = values
            .into_iter()
            .filter(|(name, value)| !(name == "search" && value == "email"))
            .collect();
        let values = with(values, "duplicates/3/fields/0", "email");
        let values = with(values, "duplicates/3/action", "warn");
        let review = post(&mut admin, "/admin/studio/objects/lead/list", &values).await;
        assert_eq!(review.status, StatusCode::OK, "{}", review.html);
        let added = review.texts("tr.added td.text code").join("\n");
        let removed = review.texts("tr.removed td.text code").join("\n");
        assert!(
            added.contains(
                "columns: [name, company, source, status, score, next_follow_up_at, owner, industry]"
            ),
            "{added}"
        );
        assert!(
            added.contains("search: [name, company, phone, mobile]"),
            "{added}"
        );
        assert!(
            added.contains("{ fields: [email], action: warn }"),
            "{added}"
        );
        assert!(removed.contains("search: [name, company, phone, mobile, email]"));
        assert!(
            review.texts("#review-no-steps").len() == 1,
            "{}",
            review.html
        );
        let applied = post(
            &mut admin,
            "/admin/studio/apply",
            &form_values(&review, "#review-apply"),
        )
        .await;
        assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);
        assert!(
            applied
                .location
                .as_deref()
                .unwrap()
                .starts_with("/admin/studio/objects/lead/list?applied="),
            "{:?}",
            applied.location
        );
        let again = admin.get(applied.location.as_deref().unwrap()).await;
        again.assert_clean("the list settings after an apply");
        assert_eq!(again.attrs("#applied", "id").len(), 1);
        assert_eq!(
            again.attrs("#column-7 option[selected]", "value"),
            vec!["industry"]
        );
        assert_eq!(
            again.attrs("#duplicate-3-action option[selected]", "value"),
            vec!["warn"]
        );
        // The lead list shows the new column.
        let leads = admin.get("/app/lead").await;
        assert!(
            leads
                .attrs("th a[data-sort]", "data-sort")
                .contains(&"industry".to_owned()),
            "{}",
            leads.html
        );
    }
);

keel_testkit::db_test!(
    a_rep_gets_the_404_page_on_every_studio_object_page,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut rep = site.login("chen").await;
        rep.get("/account").await;
        for path in [
            "/admin/studio/objects/lead",
            "/admin/studio/objects/lead/fields/new",
            "/admin/studio/objects/lead/fields/company",
            "/admin/studio/objects/lead/list",
        ] {
            let page = rep.get(path).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "GET {path}");
            if path == "/admin/studio/objects/lead" {
                continue;
            }
            let posted = rep
                .post(path, &[("name", "x"), ("type", "text"), ("base", "1")])
                .await;
            assert_eq!(posted.status, StatusCode::NOT_FOUND, "POST {path}");
        }
        // And an admin gets it for an object or a field the app does not have.
        let mut admin = site.login("admin").await;
        for path in [
            "/admin/studio/objects/nope",
            "/admin/studio/objects/nope/list",
            "/admin/studio/objects/lead/fields/nope",
        ] {
            let page = admin.get(path).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "GET {path}");
        }
    }
);

keel_testkit::db_test!(
    a_form_loaded_before_another_admins_apply_is_refused_as_stale_and_changes_nothing,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let mut other = site.login("admin").await;
        // The first admin loads the company field's form …
        let editor = admin.get("/admin/studio/objects/lead/fields/company").await;
        let base = editor.attrs("#field-form input[name=base]", "value");
        assert_eq!(base.len(), 1);
        // … another admin applies a change to the lead's list meanwhile …
        let list = other.get("/admin/studio/objects/lead/list").await;
        let values = with(form_values(&list, "#list-form"), "columns/8", "industry");
        let review = post(&mut other, "/admin/studio/objects/lead/list", &values).await;
        let applied = post(
            &mut other,
            "/admin/studio/apply",
            &form_values(&review, "#review-apply"),
        )
        .await;
        assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);
        let after = std::fs::read_to_string(site.app_dir().join(LEAD)).unwrap();

        // … and the first admin's change, made against the older version, is refused.
        let values = with(
            form_values(&editor, "#field-form"),
            "label_en",
            "Company name",
        );
        let review = post(
            &mut admin,
            "/admin/studio/objects/lead/fields/company",
            &values,
        )
        .await;
        assert_eq!(review.status, StatusCode::OK, "{}", review.html);
        assert_eq!(
            review.attrs("#review-apply input[name=base]", "value"),
            base
        );
        let refused = post(
            &mut admin,
            "/admin/studio/apply",
            &form_values(&review, "#review-apply"),
        )
        .await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.html);
        assert_eq!(refused.attrs("#review-refusal", "data-kind"), vec!["stale"]);
        assert_eq!(
            std::fs::read_to_string(site.app_dir().join(LEAD)).unwrap(),
            after
        );
        // Loaded again, the form is made against the latest version and applies.
        let editor = admin.get("/admin/studio/objects/lead/fields/company").await;
        let values = with(
            form_values(&editor, "#field-form"),
            "label_en",
            "Company name",
        );
        let review = post(
            &mut admin,
            "/admin/studio/objects/lead/fields/company",
            &values,
        )
        .await;
        let applied = post(
            &mut admin,
            "/admin/studio/apply",
            &form_values(&review, "#review-apply"),
        )
        .await;
        assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);
        assert_eq!(
            applied.location.as_deref(),
            Some(
                format!(
                    "/admin/studio/objects/lead/fields/company?applied={}",
                    base[0].parse::<i64>().unwrap() + 2
                )
                .as_str()
            )
        );
        let file = std::fs::read_to_string(site.app_dir().join(LEAD)).unwrap();
        assert!(
            file.contains("label: { en: Company name, zh: 公司 }"),
            "{file}"
        );
    }
);
