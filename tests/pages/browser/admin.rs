//! The admin console in a browser: an admin creates a user with a role and a manager, and
//! the new user signs in and sees what the role allows.

use reqwest::Method;

use crate::pages::Site;
use crate::pages::browser::{Chrome, api};

keel_testkit::db_test!(
    an_admin_creates_a_user_with_a_role_and_a_manager_who_then_sees_what_the_role_allows,
    |db| async move {
        let Some(chrome) = Chrome::start(db.backend).await else {
            return;
        };
        let site = Site::standard(&db.url);
        let browser = chrome.browser(site.base_url(), "zh-CN").await;
        browser.sign_in_home("admin").await;
        browser.open("/admin/users").await;
        browser.click("a#new-user").await;
        browser.wait_for("form#user-form").await;
        browser.fill("form#user-form [name=username]", "ma").await;
        browser
            .fill("form#user-form [name=display_name]", "马小云")
            .await;
        browser
            .fill("form#user-form [name=password]", "service-pass-1234")
            .await;
        browser
            .choose("form#user-form select[name=roles]", "service_agent")
            .await;
        browser
            .choose("form#user-form select[name=manager]", "li")
            .await;
        browser
            .choose("form#user-form select[name=department]", "service")
            .await;
        browser.click("form#user-form button#save").await;
        browser
            .wait_until(
                "the user is saved",
                "location.pathname !== '/admin/users/new' && \
                 document.querySelector('form#user-form .field-error') === null",
            )
            .await;
        browser.open("/admin/users").await;
        let users = browser.texts("table#users tr").await;
        let row = users
            .iter()
            .find(|row| row.contains("马小云"))
            .unwrap_or_else(|| panic!("the new user in the table: {users:?}"));
        // The manager and the department, by name or by label.
        let cell = |word: &str| row.split(' ').any(|cell| cell == word);
        assert!(row.contains("李娜") || cell("li"), "{row}");
        assert!(row.contains("客服部") || cell("service"), "{row}");

        // The new user signs in: service agents read tickets and contacts, not leads.
        browser.forget().await;
        browser.sign_in("ma", "service-pass-1234").await;
        browser.wait_for("#notification-list").await;
        let nav = browser
            .run(
                "return Array.from(document.querySelectorAll('nav.sidenav a')) \
                 .map(function (a) { return a.getAttribute('href'); });",
            )
            .await;
        let nav: Vec<String> = serde_json::from_value(nav).unwrap();
        assert!(nav.iter().any(|href| href == "/app/ticket"), "{nav:?}");
        assert!(nav.iter().any(|href| href == "/app/contact"), "{nav:?}");
        assert!(!nav.iter().any(|href| href == "/app/lead"), "{nav:?}");
        assert!(
            !nav.iter().any(|href| href.starts_with("/admin")),
            "{nav:?}"
        );
        browser.open("/app/ticket").await;
        browser.wait_for("table#records, #record-count").await;
        browser.open("/app/lead").await;
        assert_eq!(browser.text("h1").await, "页面不存在");

        // The role and the manager are the ones the admin gave.
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", site.base_url()))
            .json(&serde_json::json!({ "username": "ma", "password": "service-pass-1234" }))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        let token = body["token"].as_str().unwrap();
        let (status, me) = api(&site, token, Method::GET, "/auth/me", None).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["user"]["roles"], serde_json::json!(["service_agent"]));
        let li = crate::pages::browser::api_token(&site, "li").await;
        let (_, li) = api(&site, &li, Method::GET, "/auth/me", None).await;
        assert_eq!(me["user"]["manager"], li["user"]["id"], "{me}");
        assert!(!me["user"]["department"].is_null(), "{me}");
    }
);
