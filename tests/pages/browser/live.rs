//! The live parts: a notification raised by a rule reaches a home page that is already open.

use reqwest::Method;
use serde_json::json;

use crate::pages::Site;
use crate::pages::browser::{Chrome, api, api_token};

keel_testkit::db_test!(
    a_notification_raised_by_a_rule_appears_on_the_open_home_page_without_a_reload,
    |db| async move {
        let Some(chrome) = Chrome::start(db.backend).await else {
            return;
        };
        let site = Site::standard(&db.url);
        let li = chrome.browser(site.base_url(), "zh-CN").await;
        li.sign_in_home("li").await;
        // A marker that a reload would lose: the test fails if the page reloads.
        li.run("window.keelNoReload = true; return true;").await;
        let before = li.texts("#notification-list li:not(.empty)").await.len();
        let badge_before = li.texts("#bell-count").await;

        // big_deal_alert (workflows/rules) tells the saver's manager about an opportunity
        // above 1,000,000: chen saves one through the API, li is chen's manager.
        let chen = api_token(&site, "chen").await;
        let (status, account) = api(
            &site,
            &chen,
            Method::POST,
            "/records/account",
            Some(json!({ "name": "浏览器测试大客户有限公司" })),
        )
        .await;
        assert_eq!(status, 201, "{account}");
        let (status, deal) = api(
            &site,
            &chen,
            Method::POST,
            "/records/opportunity",
            Some(json!({ "name": "浏览器大单", "account": account["id"], "amount": "2000000" })),
        )
        .await;
        assert_eq!(status, 201, "{deal}");

        li.wait_until(
            "the notification is added to the open list",
            &format!(
                "document.querySelectorAll('#notification-list li:not(.empty)').length > {before}"
            ),
        )
        .await;
        let items = li.texts("#notification-list li:not(.empty)").await;
        assert!(items[0].contains("浏览器大单"), "{items:?}");
        let badge = li.texts("#bell-count").await;
        assert_ne!(badge, badge_before, "the bell's count changed");
        assert_eq!(
            li.run("return window.keelNoReload === true").await,
            true,
            "the page was not reloaded"
        );
        let link = li
            .wait_for("#notification-list li:first-child a")
            .await
            .attr("href")
            .await
            .unwrap();
        assert_eq!(
            link.as_deref(),
            Some(format!("/app/opportunity/{}", deal["id"].as_str().unwrap()).as_str())
        );
    }
);
