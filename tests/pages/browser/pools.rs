//! The pool page in a real browser: a rep claims a lead from the pool, sees its phone in
//! clear on the record page, and releases it with a reason; a manager assigns a lead to a
//! rep. The pool page is saved at a desktop's and a phone's width (no sideways scroll).

use reqwest::Method;

use crate::pages::Site;
use crate::pages::browser::{Chrome, api, api_token};

const POOL: &str = "/app/pools/public_leads";

keel_testkit::db_test!(
    a_rep_claims_from_the_pool_page_sees_the_mobile_and_releases_it_and_a_manager_assigns_one,
    |db| async move {
        let Some(chrome) = Chrome::start(db.backend).await else {
            return;
        };
        let site = Site::standard(&db.url);
        let admin = api_token(&site, "admin").await;

        let chen = chrome.browser(site.base_url(), "zh-CN").await;
        chen.sign_in_home("chen").await;
        chen.open(POOL).await;
        chen.wait_for("table#pool-records").await;
        chen.screenshots("zh-pool").await;
        // The first lead whose mobile is masked.
        let id = chen
            .run(
                "var row = Array.from(document.querySelectorAll('#pool-records tr[data-id]')) \
                 .find(function (r) { return r.querySelector('td.masked'); }); \
                 return row ? row.getAttribute('data-id') : null;",
            )
            .await;
        let id = id.as_str().expect("a lead with a masked mobile").to_owned();
        let (status, lead) = api(
            &site,
            &admin,
            Method::GET,
            &format!("/records/lead/{id}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{lead}");
        let mobile = lead["mobile"].as_str().unwrap().to_owned();
        assert!(
            !chen.source().await.contains(&mobile),
            "the mobile is masked in the pool"
        );

        // The pool's view of the lead, then back to the pool to claim it there.
        chen.open(&format!("{POOL}/{id}")).await;
        chen.wait_for("#pool-actions form.claim").await;
        chen.screenshots("zh-pool-record").await;
        chen.open(POOL).await;
        chen.click(&format!(
            "#pool-records tr[data-id='{id}'] form.claim button"
        ))
        .await;
        chen.wait_until(
            "the claim lands on the lead's page",
            &format!("location.pathname === '/app/lead/{id}'"),
        )
        .await;
        chen.wait_for("#record-notice").await;
        assert_eq!(chen.text("[data-field=mobile] dd").await.trim(), mobile);
        chen.screenshots("zh-pool-claimed").await;

        // Release it with a reason (the confirmation answered yes).
        chen.click("#release-dialog summary").await;
        chen.choose("#release-reason", "联系不上").await;
        chen.fill("#release-note", "电话一直没人接").await;
        chen.screenshot("zh-pool-release-1280").await;
        chen.run("window.confirm = function () { return true; }; return true;")
            .await;
        chen.click("form#release button[type=submit]").await;
        chen.wait_until(
            "the release lands on the pool",
            &format!("location.pathname === '{POOL}'"),
        )
        .await;
        chen.wait_for("#pool-notice").await;
        assert!(
            chen.has(&format!("#pool-records tr[data-id='{id}']")).await,
            "the lead is back in the pool"
        );
        let (status, history) = api(
            &site,
            &admin,
            Method::GET,
            &format!("/records/lead/{id}/pool-history"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{history}");
        let actions: Vec<&str> = history["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|event| event["action"].as_str())
            .collect();
        assert_eq!(actions, vec!["claim", "release"], "{history}");
        assert_eq!(history["data"][1]["reason"], "unreachable");

        // li, chen's manager, assigns it to chen from the pool page.
        let li = chrome.browser(site.base_url(), "zh-CN").await;
        li.sign_in_home("li").await;
        li.open(POOL).await;
        li.wait_for("form#bulk-assign").await;
        li.screenshots("zh-pool-manager").await;
        let row = format!("#pool-records tr[data-id='{id}']");
        li.choose(&format!("{row} form.assign-one select[name=user]"), "陈晨")
            .await;
        li.click(&format!("{row} button.assign")).await;
        li.wait_for("#pool-notice").await;
        assert!(!li.has(&row).await, "assigned: out of the pool");
        let (status, lead) = api(
            &site,
            &admin,
            Method::GET,
            &format!("/records/lead/{id}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{lead}");
        assert_eq!(lead["_refs"]["owner"]["title"], "陈晨", "{lead}");
        chen.open(&format!("{POOL}?held=true")).await;
        chen.wait_for(&format!("#pool-records tr[data-id='{id}'] .time-left"))
            .await;
    }
);
