//! The studio's pool, process, rule and role editors over real HTTP (docs/studio.md): each
//! editor of every pool, process, rule and role of the standard app renders well formed and,
//! posted as it came, reviews as "unchanged"; a change reviews with the lines it writes and
//! applies; a wrong value comes back at its field; the buttons that change a form without
//! saving it; and a rep gets the 404 page. Each test runs on a copy of the standard app,
//! since an apply writes the app's files.

use reqwest::StatusCode;

use crate::pages::{Page, Session, Site, form_values, post_values as post, with};

/// Posts `values` to `path` with `op=save`: the review.
async fn review(session: &mut Session, path: &str, values: &[(String, String)]) -> Page {
    post(session, path, &with(values, "op", "save")).await
}

/// The review's apply form posted as it is: the redirect back to the editor.
async fn apply(session: &mut Session, review: &Page) -> Page {
    let values = form_values(review, "#review-apply");
    post(session, "/admin/studio/apply", &values).await
}

/// The text of the lines of the review's diff of `file` that are `kind` (`added`, `removed`).
fn diff_lines(review: &Page, file: &str, kind: &str) -> Vec<String> {
    review
        .texts(&format!(
            "section.studio-diff[data-path='{file}'] tr.{kind} td.text"
        ))
        .into_iter()
        .map(|line| line.trim_start_matches(['+', '-']).trim().to_owned())
        .collect()
}

/// Every editor of `section` on the studio's index, as linked there.
async fn editors(admin: &mut Session, section: &str) -> Vec<String> {
    let index = admin.get("/admin/studio").await;
    assert_eq!(index.status, StatusCode::OK);
    let links = index.attrs(&format!("#studio-{section} li a"), "href");
    assert!(!links.is_empty(), "no {section} linked: {}", index.html);
    links
}

/// Each editor of `section`: renders well formed in English and in Chinese, and its form
/// posted as it came reviews as "unchanged".
async fn assert_unchanged_when_saved_as_is(admin: &mut Session, section: &str, form: &str) {
    for path in editors(admin, section).await {
        for language in ["en", "zh-CN"] {
            admin.language = Some(language.to_owned());
            let page = admin.get(&path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.html);
            page.assert_clean(&format!("{path} in {language}"));
        }
        admin.language = None;
        let page = admin.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.html);
        page.assert_clean(&path);
        let values = form_values(&page, form);
        let reviewed = review(admin, &path, &values).await;
        assert_eq!(reviewed.status, StatusCode::OK, "{path}: {}", reviewed.html);
        reviewed.assert_clean(&format!("the review of {path}"));
        assert_eq!(
            reviewed.attrs("#review-refusal", "data-kind"),
            vec!["unchanged"],
            "{path}: {}",
            reviewed.html
        );
        assert!(
            reviewed
                .attrs("section.studio-diff", "data-path")
                .is_empty()
        );
    }
}

const PROCESS: &str = "/admin/studio/processes/opportunity_sales";
const PROCESS_FILE: &str = "workflows/processes/opportunity_sales.yaml";

keel_testkit::db_test!(
    every_process_editor_renders_and_saved_as_it_came_changes_nothing,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        assert_unchanged_when_saved_as_is(&mut admin, "processes", "#process-form").await;
    }
);

keel_testkit::db_test!(
    the_process_editor_moves_adds_and_removes_stages_and_a_change_reviews_and_applies,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let page = admin.get(PROCESS).await;
        let stages = |page: &Page| page.attrs("li.studio-item", "data-key");
        assert_eq!(
            stages(&page),
            vec![
                "qualification",
                "needs_analysis",
                "proposal",
                "negotiation",
                "won",
                "lost"
            ]
        );
        assert_eq!(
            page.attrs("select[name='stages/2/require'] option[selected]", "value"),
            vec!["amount", "close_date"]
        );
        let values = form_values(&page, "#process-form");

        // The buttons change the form, not the files: down, add, remove, approval, step.
        let moved = post(&mut admin, PROCESS, &with(&values, "op", "down:0")).await;
        assert_eq!(moved.status, StatusCode::OK, "{}", moved.html);
        moved.assert_clean("a stage moved down");
        assert_eq!(stages(&moved)[..2], ["needs_analysis", "qualification"]);
        let added = post(&mut admin, PROCESS, &with(&values, "op", "add:3")).await;
        assert_eq!(stages(&added)[2..5], ["proposal", "", "negotiation"]);
        assert_eq!(
            added
                .attrs("input[name='stages/3/key']:not([readonly])", "name")
                .len(),
            1
        );
        assert_eq!(
            added
                .attrs("input[name='stages/2/key'][readonly]", "name")
                .len(),
            1
        );
        let removed = post(&mut admin, PROCESS, &with(&values, "op", "remove:5")).await;
        assert_eq!(stages(&removed).len(), 5);
        let approval = post(&mut admin, PROCESS, &with(&values, "op", "approval:0")).await;
        assert_eq!(
            approval.attrs("fieldset.studio-approval", "data-stage"),
            vec!["qualification", "negotiation"]
        );
        let steps = post(&mut admin, PROCESS, &with(&values, "op", "step:3")).await;
        assert_eq!(
            steps
                .attrs("li[data-key=negotiation] li.studio-step", "data-index")
                .len(),
            3
        );
        for bad in ["step:0", "remove:9", "explode", "up:x"] {
            let refused = post(&mut admin, PROCESS, &with(&values, "op", bad)).await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        let before = std::fs::read_to_string(site.app_dir().join(PROCESS_FILE)).unwrap();

        // A change: proposal's probability and a new stage; the review shows the lines.
        let changed = with(&values, "stages/2/probability", "65");
        let changed = post(&mut admin, PROCESS, &with(&changed, "op", "add:3")).await;
        let mut values = form_values(&changed, "#process-form");
        values = with(&values, "stages/3/key", "contract_review");
        values = with(&values, "stages/3/label/en", "Contract review");
        values = with(&values, "stages/3/label/zh", "合同审核");
        values = with(&values, "stages/3/probability", "70");
        values.push(("stages/3/require".to_owned(), "amount".to_owned()));
        let reviewed = review(&mut admin, PROCESS, &values).await;
        assert_eq!(reviewed.status, StatusCode::OK, "{}", reviewed.html);
        assert!(reviewed.attrs("#review-refusal", "data-kind").is_empty());
        assert_eq!(
            diff_lines(&reviewed, PROCESS_FILE, "removed"),
            vec!["probability: 60"]
        );
        assert_eq!(
            diff_lines(&reviewed, PROCESS_FILE, "added"),
            vec![
                "probability: 65",
                "- key: contract_review",
                "label: { en: Contract review, zh: 合同审核 }",
                "probability: 70",
                "require: [amount]",
            ]
        );
        assert_eq!(
            diff_lines(&reviewed, "metadata/objects/opportunity.yaml", "added").len(),
            1
        );
        // Nothing is written before the apply.
        assert_eq!(
            std::fs::read_to_string(site.app_dir().join(PROCESS_FILE)).unwrap(),
            before
        );
        let applied = apply(&mut admin, &reviewed).await;
        assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);
        let location = applied.location.unwrap();
        assert!(
            location.starts_with(&format!("{PROCESS}?applied=")),
            "{location}"
        );
        let back = admin.get(&location).await;
        back.assert_clean("the process editor after an apply");
        assert_eq!(back.attrs("#applied", "data-version").len(), 1);
        assert_eq!(
            stages(&back),
            vec![
                "qualification",
                "needs_analysis",
                "proposal",
                "contract_review",
                "negotiation",
                "won",
                "lost"
            ]
        );
        let after = std::fs::read_to_string(site.app_dir().join(PROCESS_FILE)).unwrap();
        assert!(after.contains("  - key: contract_review\n"), "{after}");
        // The comments elsewhere in the file stay.
        assert!(after.contains("# entering negotiation with a discount above 15 % needs approval"));
    }
);

keel_testkit::db_test!(
    a_wrong_value_in_the_process_editor_comes_back_at_its_field_and_a_rep_gets_no_page,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let page = admin.get(PROCESS).await;
        let values = form_values(&page, "#process-form");
        for (name, value, field) in [
            ("stages/2/probability", "sixty", "stages/2/probability"),
            ("stages/2/probability", "101", "stages/2/probability"),
            (
                "stages/3/approval/steps/0/users",
                "not a user!",
                "stages/3/approval/steps/0/users",
            ),
            (
                "stages/3/approval/steps/1/mode",
                "most",
                "stages/3/approval/steps/1/mode",
            ),
        ] {
            let refused = review(&mut admin, PROCESS, &with(&values, name, value)).await;
            assert_eq!(
                refused.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{name}={value}: {}",
                refused.html
            );
            refused.assert_clean(&format!("{name}={value}"));
            assert_eq!(
                refused.attrs(".field-error", "data-field"),
                vec![field],
                "{name}={value}"
            );
            assert_eq!(refused.attrs("#form-errors", "id").len(), 1);
            if name.ends_with("probability") {
                // The editor's own messages are in the page's language.
                assert_eq!(
                    refused.texts(".field-error"),
                    vec!["赢率是 0 到 100 的整数。"]
                );
            }
            // The form comes back as it was sent.
            assert_eq!(
                refused
                    .attrs(&format!("[name='{name}']"), "value")
                    .first()
                    .map(String::as_str),
                (!name.ends_with("mode")).then_some(value)
            );
        }
        // A key used twice, and a required field the object does not have.
        let twice = with(
            with(&values, "op", "add:1"),
            "stages/0/key",
            "qualification",
        );
        let twice = post(&mut admin, PROCESS, &twice).await;
        let twice = with(
            form_values(&twice, "#process-form"),
            "stages/1/key",
            "qualification",
        );
        let refused = review(&mut admin, PROCESS, &twice).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            refused.attrs(".field-error", "data-field"),
            vec!["stages/1/key"]
        );
        let mut unknown = values.clone();
        unknown.push(("stages/0/require".to_owned(), "nonexistent".to_owned()));
        let refused = review(&mut admin, PROCESS, &unknown).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            refused.attrs(".field-error", "data-field"),
            vec!["stages/0/require"]
        );
        // No base: not the editor's form.
        let no_base: Vec<_> = values
            .iter()
            .filter(|(name, _)| name != "base")
            .cloned()
            .collect();
        let bad = review(&mut admin, PROCESS, &no_base).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        // No such process.
        let missing = admin.get("/admin/studio/processes/nothing").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);

        let mut rep = site.login("chen").await;
        assert_eq!(rep.get(PROCESS).await.status, StatusCode::NOT_FOUND);
        rep.get("/account").await;
        let refused = post(&mut rep, PROCESS, &values).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND);
    }
);

const POOL: &str = "/admin/studio/pools/public_leads";
const POOL_FILE: &str = "metadata/pools/public_leads.yaml";

keel_testkit::db_test!(
    every_pool_editor_renders_and_saved_as_it_came_changes_nothing,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        assert_unchanged_when_saved_as_is(&mut admin, "pools", "#pool-form").await;
    }
);

keel_testkit::db_test!(
    the_pool_editor_changes_a_limit_and_its_return_rules_and_names_a_wrong_value,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let page = admin.get(POOL).await;
        assert_eq!(page.attrs("#reclaim_cooldown", "value"), vec!["7d"]);
        assert_eq!(
            page.attrs("#hide_until_claimed option[selected]", "value"),
            vec!["phone", "mobile", "email"]
        );
        assert_eq!(
            page.attrs("#return-rules li", "data-kind"),
            vec!["no_follow_up_for", "not_converted_for"]
        );
        let values = form_values(&page, "#pool-form");

        // The buttons: a rule added and removed, auto-return off; nothing saved.
        let added = post(&mut admin, POOL, &with(&values, "op", "add_rule")).await;
        assert_eq!(added.status, StatusCode::OK, "{}", added.html);
        added.assert_clean("a return rule added");
        assert_eq!(added.attrs("#return-rules li", "data-index").len(), 3);
        let removed = post(&mut admin, POOL, &with(&values, "op", "remove_rule:0")).await;
        assert_eq!(
            removed.attrs("#return-rules li", "data-kind"),
            vec!["not_converted_for"]
        );
        let off = post(&mut admin, POOL, &with(&values, "op", "no_auto_return")).await;
        assert_eq!(off.attrs("#auto-return-off", "id").len(), 1);
        let on = post(
            &mut admin,
            POOL,
            &with(form_values(&off, "#pool-form"), "op", "auto_return"),
        )
        .await;
        assert_eq!(on.attrs("#return-rules li", "data-index").len(), 1);

        // Wrong values come back at their fields.
        for (name, value) in [
            ("claim_limit", "many"),
            ("reclaim_cooldown", "soon"),
            ("auto_return/schedule", "every day"),
            ("auto_return/warn_before", "a bit"),
            ("auto_return/rules/0/duration", ""),
            ("auto_return/rules/1/converted", "{ status: ["),
        ] {
            let refused = review(&mut admin, POOL, &with(&values, name, value)).await;
            assert_eq!(
                refused.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{name}={value}: {}",
                refused.html
            );
            refused.assert_clean(&format!("{name}={value}"));
            assert_eq!(
                refused.attrs(".field-error", "data-field"),
                vec![name],
                "{name}={value}"
            );
        }

        // A change: the claim limit, and the second rule's duration.
        let changed = with(&values, "claim_limit", "40");
        let changed = with(&changed, "auto_return/rules/1/duration", "45d");
        let reviewed = review(&mut admin, POOL, &changed).await;
        assert_eq!(reviewed.status, StatusCode::OK, "{}", reviewed.html);
        assert_eq!(
            diff_lines(&reviewed, POOL_FILE, "removed"),
            vec![
                "claim_limit: 30 # leads a user may hold from this pool at once",
                "- not_converted_for: 30d # claimed 30 days ago and still not converted"
            ]
        );
        assert_eq!(
            diff_lines(&reviewed, POOL_FILE, "added"),
            vec![
                "claim_limit: 40 # leads a user may hold from this pool at once",
                "- not_converted_for: 45d # claimed 30 days ago and still not converted"
            ]
        );
        assert_eq!(reviewed.attrs("#review-no-steps", "id").len(), 1);
        let applied = apply(&mut admin, &reviewed).await;
        assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);
        let back = admin.get(&applied.location.unwrap()).await;
        assert_eq!(back.attrs("#claim_limit", "value"), vec!["40"]);
        let text = std::fs::read_to_string(site.app_dir().join(POOL_FILE)).unwrap();
        assert!(
            text.contains("claim_limit: 40                          # leads"),
            "{text}"
        );
    }
);

const RULE: &str = "/admin/studio/rules/follow_up_reminder";
const RULE_FILE: &str = "workflows/rules/follow_up_reminder.yaml";

keel_testkit::db_test!(
    every_rule_editor_renders_and_saved_as_it_came_changes_nothing,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        assert_unchanged_when_saved_as_is(&mut admin, "rules", "#rule-form").await;
    }
);

keel_testkit::db_test!(
    the_rule_editor_changes_a_schedule_and_a_filter_and_names_the_text_that_does_not_parse,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let page = admin.get(RULE).await;
        assert_eq!(
            page.attrs("#trigger-schedule[checked]", "value"),
            vec!["schedule"]
        );
        assert_eq!(page.attrs("#cron", "value"), vec!["0 0 9 * * *"]);
        let values = form_values(&page, "#rule-form");
        let filter = values
            .iter()
            .find(|(name, _)| name == "filter")
            .map(|(_, text)| text.clone())
            .unwrap();
        assert!(filter.contains("done: false"), "{filter}");

        for (name, value, field) in [
            ("cron", "every morning", "trigger/cron"),
            ("filter", "done: [false", "filter"),
            ("filter", "- done", "filter"),
            ("actions", "- 3", "actions"),
            ("actions", "", "actions"),
            ("trigger", "events", "trigger/events"),
        ] {
            let refused = review(&mut admin, RULE, &with(&values, name, value)).await;
            assert_eq!(
                refused.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{name}={value}: {}",
                refused.html
            );
            refused.assert_clean(&format!("{name}={value}"));
            assert_eq!(
                refused.attrs(".field-error", "data-field"),
                vec![field],
                "{name}={value}: {}",
                refused.html
            );
        }
        admin.language = Some("en".to_owned());
        let listed = review(&mut admin, RULE, &with(&values, "filter", "- done")).await;
        assert_eq!(
            listed.texts(".field-error[data-field=filter]"),
            vec!["A filter is a mapping of fields to conditions, such as status: open."]
        );
        admin.language = None;
        let unparsed = review(&mut admin, RULE, &with(&values, "filter", "done: [false")).await;
        assert!(
            unparsed.texts(".field-error[data-field=filter]")[0].contains("line 1"),
            "{}",
            unparsed.html
        );
        // The text comes back as it was typed.
        assert_eq!(unparsed.texts("#filter"), vec!["done: [false"]);

        let changed = with(&values, "cron", "0 0 8 * * *");
        let changed = with(
            &changed,
            "filter",
            "done: false\ndue_at: { lte: \"@today\" }\n",
        );
        let reviewed = review(&mut admin, RULE, &changed).await;
        assert_eq!(reviewed.status, StatusCode::OK, "{}", reviewed.html);
        assert_eq!(
            diff_lines(&reviewed, RULE_FILE, "removed"),
            vec![
                "schedule: \"0 0 9 * * *\" # every day at 09:00",
                "where: { done: false, due_at: { lte: \"@today+1d\" } } # due today (or overdue) and not done"
            ]
        );
        assert_eq!(
            diff_lines(&reviewed, RULE_FILE, "added"),
            vec![
                "schedule: \"0 0 8 * * *\" # every day at 09:00",
                "where: { done: false, due_at: { lte: \"@today\" } } # due today (or overdue) and not done"
            ]
        );
        let applied = apply(&mut admin, &reviewed).await;
        assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);
        let back = admin.get(&applied.location.unwrap()).await;
        assert_eq!(back.attrs("#cron", "value"), vec!["0 0 8 * * *"]);
    }
);

const ROLE: &str = "/admin/studio/roles/sales_rep";
const ROLES_FILE: &str = "metadata/roles.yaml";

keel_testkit::db_test!(
    every_role_editor_renders_and_saved_as_it_came_changes_nothing,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        assert_unchanged_when_saved_as_is(&mut admin, "roles", "#role-form").await;
    }
);

keel_testkit::db_test!(
    the_role_editor_changes_cells_of_the_matrix_and_a_fields_access_in_one_review,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let page = admin.get(ROLE).await;
        assert_eq!(
            page.attrs("select[name='grant/lead/read'] option[selected]", "value"),
            vec!["own"]
        );
        assert_eq!(
            page.attrs(
                "select[name='field/opportunity/discount'] option[selected]",
                "value"
            ),
            vec!["read"]
        );
        assert_eq!(
            page.attrs("details.studio-fields[open]", "data-object"),
            vec!["opportunity"]
        );
        let values = form_values(&page, "#role-form");

        for (name, value) in [
            ("grant/lead/read", "everyone"),
            ("field/lead/name", "maybe"),
        ] {
            let refused = review(&mut admin, ROLE, &with(&values, name, value)).await;
            assert_eq!(
                refused.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{name}: {}",
                refused.html
            );
            refused.assert_clean(name);
            assert_eq!(refused.attrs(".field-error", "data-field"), vec![name]);
        }

        // Two cells and a field: three operations, one review, one changed file.
        let changed = with(&values, "grant/lead/read", "department");
        let mut changed: Vec<_> = changed
            .into_iter()
            .filter(|(name, _)| name != "grant/lead/create")
            .collect();
        changed = with(&changed, "field/opportunity/cost", "");
        let reviewed = review(&mut admin, ROLE, &changed).await;
        assert_eq!(reviewed.status, StatusCode::OK, "{}", reviewed.html);
        assert_eq!(
            reviewed.attrs("section.studio-diff", "data-path"),
            vec![ROLES_FILE]
        );
        assert_eq!(
            diff_lines(&reviewed, ROLES_FILE, "removed"),
            vec![
                "lead: { read: own, create: true, edit: own, delete: none }",
                "fields: { discount: read, cost: hidden } # discounts are set by managers (and approved)"
            ]
        );
        assert_eq!(
            diff_lines(&reviewed, ROLES_FILE, "added"),
            vec![
                "lead: { read: department, create: false, edit: own, delete: none }",
                "fields: { discount: read } # discounts are set by managers (and approved)"
            ]
        );
        let applied = apply(&mut admin, &reviewed).await;
        assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);
        let back = admin.get(&applied.location.unwrap()).await;
        assert_eq!(
            back.attrs("select[name='grant/lead/read'] option[selected]", "value"),
            vec!["department"]
        );
        assert!(
            back.attrs("input[name='grant/lead/create'][checked]", "name")
                .is_empty()
        );
    }
);

keel_testkit::db_test!(
    a_rep_gets_the_404_page_for_every_editor_of_a_pool_process_rule_and_role,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut rep = site.login("chen").await;
        rep.get("/account").await;
        for path in [POOL, PROCESS, RULE, ROLE] {
            assert_eq!(rep.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
            let posted = rep.post(path, &[("base", "1"), ("op", "save")]).await;
            assert_eq!(posted.status, StatusCode::NOT_FOUND, "{path}");
        }
        let mut admin = site.login("admin").await;
        for path in [
            "/admin/studio/pools/nothing",
            "/admin/studio/rules/nothing",
            "/admin/studio/roles/nothing",
        ] {
            assert_eq!(
                admin.get(path).await.status,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
    }
);

keel_testkit::db_test!(
    every_editor_of_every_template_renders_and_saved_as_it_came_changes_nothing,
    |db| async move {
        // Every template in templates/ (found by listing it), each on a fresh database.
        let backend = db.backend;
        let mut first = Some(db);
        for template in crate::templates::template_dirs() {
            let db = match first.take() {
                Some(db) => db,
                None => keel_testkit::TestDb::new(backend).await.unwrap(),
            };
            let site = Site::app(crate::support::AppDir::copy_of(&template), &db.url);
            let mut admin = site.login("admin").await;
            for (section, form) in [
                ("pools", "#pool-form"),
                ("processes", "#process-form"),
                ("rules", "#rule-form"),
                ("roles", "#role-form"),
            ] {
                assert_unchanged_when_saved_as_is(&mut admin, section, form).await;
            }
        }
    }
);

keel_testkit::db_test!(
    a_form_filled_before_another_change_was_applied_is_a_stale_apply_and_changes_nothing,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let rule = admin.get(RULE).await;
        let rule_values = form_values(&rule, "#rule-form");

        // Meanwhile the pool's limit changes (a new version).
        let pool = admin.get(POOL).await;
        let pool_values = with(form_values(&pool, "#pool-form"), "claim_limit", "31");
        let reviewed = review(&mut admin, POOL, &pool_values).await;
        let applied = apply(&mut admin, &reviewed).await;
        assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);

        // The rule's form, made against the version before, reviews but does not apply.
        let before = std::fs::read_to_string(site.app_dir().join(RULE_FILE)).unwrap();
        let reviewed = review(&mut admin, RULE, &with(&rule_values, "cron", "0 0 7 * * *")).await;
        assert_eq!(reviewed.status, StatusCode::OK, "{}", reviewed.html);
        assert_eq!(diff_lines(&reviewed, RULE_FILE, "added").len(), 1);
        let stale = apply(&mut admin, &reviewed).await;
        assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.html);
        assert_eq!(stale.attrs("#review-refusal", "data-kind"), vec!["stale"]);
        assert_eq!(
            std::fs::read_to_string(site.app_dir().join(RULE_FILE)).unwrap(),
            before
        );
        // Back at the editor, the form is filled from the latest version and applies.
        let again = admin.get(RULE).await;
        let values = with(form_values(&again, "#rule-form"), "cron", "0 0 7 * * *");
        let reviewed = review(&mut admin, RULE, &values).await;
        let applied = apply(&mut admin, &reviewed).await;
        assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);
        let after = std::fs::read_to_string(site.app_dir().join(RULE_FILE)).unwrap();
        assert!(after.contains("schedule: \"0 0 7 * * *\""), "{after}");
    }
);
