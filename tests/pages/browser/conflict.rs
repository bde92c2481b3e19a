//! Two people edit the same record in two browsers: the second save is refused with the
//! conflict, and keeps what its user typed. Never a silent overwrite.

use reqwest::Method;

use crate::pages::Site;
use crate::pages::browser::{Chrome, api, api_token};

keel_testkit::db_test!(
    two_browsers_edit_the_same_lead_and_the_second_save_shows_the_conflict_keeping_its_input,
    |db| async move {
        let Some(chrome) = Chrome::start(db.backend).await else {
            return;
        };
        let site = Site::standard(&db.url);
        // A lead of chen's; li is chen's manager and may edit it too.
        let token = api_token(&site, "chen").await;
        let (status, leads) = api(&site, &token, Method::GET, "/records/lead?limit=1", None).await;
        assert_eq!(status, 200, "{leads}");
        let id = leads["data"][0]["id"].as_str().unwrap().to_owned();
        let edit = format!("/app/lead/{id}/edit");

        let chen = chrome.browser(site.base_url(), "zh-CN").await;
        let li = chrome.browser(site.base_url(), "zh-CN").await;
        chen.sign_in_home("chen").await;
        li.sign_in_home("li").await;
        chen.open(&edit).await;
        li.open(&edit).await;
        chen.wait_for("form#record-form").await;
        li.wait_for("form#record-form").await;

        // li saves first.
        li.fill("#field-company", "李娜改的公司").await;
        li.click("button#save").await;
        li.wait_until(
            "li's save lands on the record page",
            &format!("location.pathname === '/app/lead/{id}'"),
        )
        .await;

        // chen saves the form he opened before li's save.
        chen.fill("#field-company", "陈晨改的公司").await;
        chen.fill("#field-job_title", "采购总监").await;
        chen.click("button#save").await;
        let conflict = chen.text("#conflict").await;
        assert!(
            !conflict.trim().is_empty(),
            "the conflict says what happened"
        );
        assert_eq!(chen.value("#field-company").await, "陈晨改的公司");
        assert_eq!(chen.value("#field-job_title").await, "采购总监");
        chen.screenshot("zh-conflict-1280").await;

        // Nothing was overwritten: li's value stands.
        let (status, lead) = api(
            &site,
            &token,
            Method::GET,
            &format!("/records/lead/{id}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{lead}");
        assert_eq!(lead["company"], "李娜改的公司", "{lead}");
    }
);
