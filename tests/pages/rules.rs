//! The rules pages of the admin console over real HTTP: every scheduled rule, event rule
//! and pool sweep on `/admin/rules`, a rule's runs on `/admin/rules/{name}`, "run now"
//! recording a manual run, and the 404 page for anyone who is not an admin.

use reqwest::StatusCode;

use crate::pages::Site;

keel_testkit::db_test!(
    an_admin_sees_every_rule_and_pool_sweep_with_its_kind_and_schedule,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut admin = site.login("admin").await;
        let index = admin.get("/admin").await;
        assert_eq!(
            index
                .attrs("a.admin-card[href='/admin/rules']", "href")
                .len(),
            1
        );
        let page = admin.get("/admin/rules").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        page.assert_clean("/admin/rules");
        let kind = |name: &str| page.attrs(&format!("#rules tr[data-rule='{name}']"), "data-kind");
        assert_eq!(kind("follow_up_reminder"), vec!["schedule"]);
        assert_eq!(kind("payment_overdue"), vec!["schedule"]);
        assert_eq!(kind("big_deal_alert"), vec!["event"]);
        assert_eq!(kind("pool:public_leads"), vec!["pool"]);
        assert_eq!(kind("pool:customer_pool"), vec!["pool"]);
        let row = page.texts("#rules tr[data-rule='pool:public_leads']");
        assert!(row[0].contains("0 */10 * * * *"), "{row:?}");
        assert_eq!(
            page.texts("#rules tr[data-rule='follow_up_reminder'] .next-due")
                .len(),
            1
        );

        for name in ["follow_up_reminder", "big_deal_alert", "pool:public_leads"] {
            let runs = admin.get(&format!("/admin/rules/{name}")).await;
            assert_eq!(runs.status, StatusCode::OK, "{name}: {}", runs.html);
            runs.assert_clean(name);
            assert_eq!(runs.attrs("table#runs", "id").len(), 1);
            let can_run = runs.attrs("form#run-now", "id").len() == 1;
            assert_eq!(can_run, name != "big_deal_alert", "{name}");
        }
        let unknown = admin.get("/admin/rules/no_such_rule").await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        unknown.assert_clean("an unknown rule");
    }
);

keel_testkit::db_test!(
    run_now_records_a_manual_run_and_shows_it_at_the_top_of_the_runs,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut admin = site.login("admin").await;
        for name in ["pool:public_leads", "follow_up_reminder"] {
            let before = admin.get(&format!("/admin/rules/{name}")).await;
            let manual_before = before
                .attrs("#runs tr.run[data-manual=true]", "data-id")
                .len();
            let ran = admin.post(&format!("/admin/rules/{name}/run"), &[]).await;
            assert_eq!(ran.status, StatusCode::SEE_OTHER, "{name}: {}", ran.html);
            let location = ran.location.clone().unwrap();
            assert_eq!(location, format!("/admin/rules/{name}?done=ran"));
            let after = admin.get(&location).await;
            after.assert_clean("the runs after a manual run");
            assert_eq!(after.attrs("#rule-notice", "id").len(), 1, "{}", after.html);
            let manual = after.attrs("#runs tr.run[data-manual=true]", "data-id");
            assert_eq!(manual.len(), manual_before + 1, "{}", after.html);
            assert!(
                manual[0].starts_with(&format!("{name}|manual|")),
                "{manual:?}"
            );
            assert_eq!(
                after.attrs("#runs tr.run", "data-id")[0],
                manual[0],
                "the newest run is at the top"
            );
            assert_eq!(
                after.attrs("#runs tr.run", "data-state")[0],
                "done",
                "{}",
                after.html
            );
        }
        // An event rule runs after saves only: the page says so and records nothing.
        let event = admin.get("/admin/rules/big_deal_alert").await;
        let refused = admin.post("/admin/rules/big_deal_alert/run", &[]).await;
        assert_ne!(refused.status, StatusCode::SEE_OTHER, "{}", refused.html);
        refused.assert_clean("running an event rule");
        assert_eq!(
            refused.attrs("#runs tr.run", "data-id"),
            event.attrs("#runs tr.run", "data-id")
        );
    }
);

keel_testkit::db_test!(
    a_sales_rep_gets_the_not_found_page_on_the_rules_pages_and_runs_nothing,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        for path in ["/admin/rules", "/admin/rules/follow_up_reminder"] {
            let page = chen.get(path).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
            page.assert_clean(path);
        }
        chen.get("/").await;
        let run = chen.post("/admin/rules/follow_up_reminder/run", &[]).await;
        assert_eq!(run.status, StatusCode::NOT_FOUND);
        let mut admin = site.login("admin").await;
        let runs = admin.get("/admin/rules/follow_up_reminder").await;
        assert!(
            runs.attrs("#runs tr.run[data-manual=true]", "data-id")
                .is_empty()
        );
    }
);
