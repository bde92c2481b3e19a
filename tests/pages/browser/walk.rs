//! A sales rep's everyday walk, in Chinese and in English: sign in (a wrong password first),
//! create a lead (a malformed phone first), find it by search and by a filter, edit it, and
//! read its history.

use crate::pages::browser::{Browser, Chrome};
use crate::pages::{DEMO_PASSWORD, Site};

/// What differs between the two languages of the walk.
struct Walk {
    /// The browser's language (`Accept-Language`), which decides the sign-in page's.
    lang: &'static str,
    /// A rep whose own language setting is the same (seed/users.csv).
    rep: &'static str,
    wrong_password: &'static str,
    name: &'static str,
    company: &'static str,
    new_company: &'static str,
    /// The labels of two lead statuses (metadata/objects/lead.yaml).
    status_new: &'static str,
    status_contacted: &'static str,
    status_invalid: &'static str,
}

const CHINESE: Walk = Walk {
    lang: "zh-CN",
    rep: "chen",
    wrong_password: "用户名或密码错误。",
    name: "浏览器测试线索",
    company: "浏览器测试有限公司",
    new_company: "浏览器测试集团",
    status_new: "新建",
    status_contacted: "已联系",
    status_invalid: "无效",
};

const ENGLISH: Walk = Walk {
    lang: "en-US",
    rep: "zhou",
    wrong_password: "Wrong username or password.",
    name: "Browser Walk Lead",
    company: "Browser Walk Ltd",
    new_company: "Browser Walk Group",
    status_new: "New",
    status_contacted: "Contacted",
    status_invalid: "Invalid",
};

keel_testkit::db_test!(
    a_rep_signs_in_creates_a_lead_finds_it_edits_it_and_reads_its_history_in_chinese,
    |db| async move {
        let Some(chrome) = Chrome::start(db.backend).await else {
            return;
        };
        let site = Site::standard(&db.url);
        walk(
            &chrome.browser(site.base_url(), CHINESE.lang).await,
            &CHINESE,
        )
        .await;
    }
);

keel_testkit::db_test!(
    a_rep_signs_in_creates_a_lead_finds_it_edits_it_and_reads_its_history_in_english,
    |db| async move {
        let Some(chrome) = Chrome::start(db.backend).await else {
            return;
        };
        let site = Site::standard(&db.url);
        walk(
            &chrome.browser(site.base_url(), ENGLISH.lang).await,
            &ENGLISH,
        )
        .await;
    }
);

async fn walk(browser: &Browser, walk: &Walk) {
    let prefix = &walk.lang[..2];

    // A wrong password: the error, in the browser's language, and the username kept.
    browser.sign_in(walk.rep, "not-the-password").await;
    assert_eq!(browser.text("#login-error").await, walk.wrong_password);
    assert_eq!(browser.value("#username").await, walk.rep);
    browser.sign_in(walk.rep, DEMO_PASSWORD).await;
    browser.wait_for("#notification-list").await;
    assert_eq!(
        browser.run("return document.documentElement.lang").await,
        prefix
    );

    // A new lead with a malformed phone: the server's error under the phone field, every
    // input kept.
    browser.open("/app/lead").await;
    browser.click("a#new-record").await;
    browser.wait_for("form#record-form").await;
    browser.fill("#field-name", walk.name).await;
    browser.fill("#field-company", walk.company).await;
    browser.fill("#field-phone", "call me maybe").await;
    // The page's own checks (a pattern, a type) could stop the post in the browser; this
    // walk is about the server's answer, so they are switched off for the first save.
    browser
        .run("document.querySelector('form#record-form').noValidate = true; return true;")
        .await;
    browser.click("button#save").await;
    let error = browser.text("#error-phone").await;
    assert!(!error.trim().is_empty(), "an error under the phone field");
    let chinese = error
        .chars()
        .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    assert_eq!(
        chinese,
        prefix == "zh",
        "the phone error in the user's language: {error}"
    );
    assert_eq!(browser.value("#field-phone").await, "call me maybe");
    assert_eq!(browser.value("#field-name").await, walk.name);
    assert_eq!(browser.value("#field-company").await, walk.company);
    browser
        .screenshot(&format!("{prefix}-form-error-1280"))
        .await;

    // Fixed and saved: the record page.
    browser.fill("#field-phone", "021 5555 0199").await;
    browser.click("button#save").await;
    browser
        .wait_until(
            "the new lead's page",
            &format!(
                "document.querySelector('h1#record-title') && \
                 document.querySelector('h1#record-title').textContent.indexOf({:?}) >= 0",
                walk.name
            ),
        )
        .await;
    let path = browser.path().await;
    let id = path
        .strip_prefix("/app/lead/")
        .unwrap_or_else(|| panic!("the record page of the new lead, not {path}"))
        .to_owned();
    // Its owner sees the phone as saved (digits only, lead_normalize), not masked.
    assert_eq!(
        browser.text("[data-field=phone] .value").await,
        "02155550199"
    );
    assert!(!browser.has("[data-field=phone] .value.masked").await);

    // Found by search: the list's `q`.
    let row = format!("table#records tr[data-id='{id}']");
    browser.open("/app/lead").await;
    browser.fill("form#filters input[name=q]", walk.name).await;
    submit_filters(browser).await;
    browser
        .wait_until(
            "the search finds the lead and only it",
            &format!(
                "document.querySelectorAll('table#records tr[data-id]').length === 1 && \
                 document.querySelector({row:?}) !== null"
            ),
        )
        .await;
    assert!(
        browser.path().await.contains("q="),
        "the search is in the URL"
    );
    assert!(browser.text("#record-count").await.contains('1'));

    // Found by a filter (the status it was created with), and not by another status.
    let status = "form#filters select[name=status], form#filters select[name=f_status]";
    browser.open("/app/lead").await;
    browser.choose(status, walk.status_new).await;
    submit_filters(browser).await;
    browser
        .wait_until(
            "the status filter keeps the lead",
            &format!(
                "location.search.indexOf('status') >= 0 && document.querySelector({row:?}) !== null"
            ),
        )
        .await;
    browser.choose(status, walk.status_invalid).await;
    submit_filters(browser).await;
    browser
        .wait_until(
            "another status filter leaves the lead out",
            &format!(
                "document.querySelector({row:?}) === null && \
                 document.querySelector('#record-count') !== null"
            ),
        )
        .await;

    // Edited: a new company and status.
    browser.open(&format!("/app/lead/{id}")).await;
    browser.click("a#edit-record").await;
    browser.wait_for("form#record-form").await;
    assert_eq!(browser.value("#field-company").await, walk.company);
    browser.fill("#field-company", walk.new_company).await;
    browser.choose("#field-status", walk.status_contacted).await;
    browser.click("button#save").await;
    browser
        .wait_until(
            "the record page after the edit",
            &format!(
                "location.pathname === '/app/lead/{id}' && \
                 document.querySelector('[data-field=company] .value') !== null"
            ),
        )
        .await;
    assert_eq!(
        browser.text("[data-field=company] .value").await,
        walk.new_company
    );
    assert_eq!(
        browser.text("[data-field=status] .value").await,
        walk.status_contacted
    );

    // Its history: who changed what, old → new.
    let changes = browser.texts("#history .change").await;
    let company = changes
        .iter()
        .find(|change| change.contains(walk.new_company))
        .unwrap_or_else(|| panic!("the company change in the history: {changes:?}"));
    assert!(company.contains(walk.company), "old → new: {company}");
    assert!(
        changes
            .iter()
            .any(|change| change.contains(walk.status_contacted)),
        "the status change in the history: {changes:?}"
    );
}

/// Submits the list's filter form the way a user does (Enter or the button), through htmx
/// when it is there.
async fn submit_filters(browser: &Browser) {
    browser
        .run("document.querySelector('form#filters').requestSubmit(); return true;")
        .await;
}
