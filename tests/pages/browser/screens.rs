//! Every main page at a desktop's and a phone's width: saved as screenshots (the test run's
//! artifact), and at 375 px nothing scrolls sideways.

use crate::pages::Site;
use crate::pages::browser::{Chrome, DESKTOP, PHONE};

keel_testkit::db_test!(
    every_main_page_fits_a_phone_and_is_saved_as_a_screenshot_in_chinese_and_english,
    |db| async move {
        let Some(chrome) = Chrome::start(db.backend).await else {
            return;
        };
        let site = Site::standard(&db.url);
        // chen's language is zh, zhou's en (seed/users.csv); the admin has none, so the
        // browser's language decides.
        for (lang, rep, prefix) in [("zh-CN", "chen", "zh"), ("en-US", "zhou", "en")] {
            let browser = chrome.browser(site.base_url(), lang).await;
            browser.open("/login").await;
            browser.wait_for("#username").await;
            browser.screenshots(&format!("{prefix}-login")).await;

            browser.sign_in_home(rep).await;
            assert_eq!(
                browser.run("return document.documentElement.lang").await,
                prefix
            );
            browser.screenshots(&format!("{prefix}-home")).await;
            // The navigation: a column on a desktop, a menu behind a button on a phone.
            let lead_link = "nav.sidenav a[href='/app/lead']";
            assert!(
                browser.visible(lead_link).await,
                "the navigation on a desktop"
            );
            browser.resize(PHONE).await;
            assert!(!browser.visible(lead_link).await, "folded on a phone");
            browser.click("a.menu-toggle").await;
            browser
                .wait_until(
                    "the menu opens on a phone",
                    &format!(
                        "document.querySelector({lead_link:?}).checkVisibility({{ visibilityProperty: true }})"
                    ),
                )
                .await;
            browser.assert_no_horizontal_scroll("the open menu").await;
            browser.screenshot(&format!("{prefix}-menu-{PHONE}")).await;
            browser.resize(DESKTOP).await;
            browser.open("/app/lead").await;
            browser.wait_for("table#records").await;
            browser.screenshots(&format!("{prefix}-list")).await;

            browser.click("table#records tr[data-id] a").await;
            browser.wait_for("h1#record-title").await;
            browser.screenshots(&format!("{prefix}-record")).await;

            browser.click("a#edit-record").await;
            browser.wait_for("form#record-form").await;
            browser.screenshots(&format!("{prefix}-edit")).await;

            browser.open("/app/lead/new").await;
            browser.wait_for("form#record-form").await;
            browser.screenshots(&format!("{prefix}-form")).await;

            browser.open("/app/pools/public_leads").await;
            browser.wait_for("table#pool-records").await;
            browser.screenshots(&format!("{prefix}-pool")).await;

            browser.forget().await;
            browser.sign_in_home("admin").await;
            assert_eq!(
                browser.run("return document.documentElement.lang").await,
                prefix
            );
            browser.open("/admin").await;
            browser.wait_for("#main h1").await;
            browser.screenshots(&format!("{prefix}-admin")).await;

            browser.open("/admin/users").await;
            browser.wait_for("table#users").await;
            browser.screenshots(&format!("{prefix}-admin-users")).await;

            browser.open("/admin/users/new").await;
            browser.wait_for("form#user-form").await;
            browser
                .screenshots(&format!("{prefix}-admin-user-form"))
                .await;
        }
    }
);
