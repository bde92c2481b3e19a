//! A sales process in a real browser: a rep moves an opportunity through the kanban, is
//! asked for the fields the next stages require, reaches the stage that needs approval;
//! the manager and then the sales director approve it from their inboxes; the rep moves it
//! to won from the record's stage path and sees it won; the funnel page counts it. The
//! kanban and the funnel are saved at a desktop's and a phone's width.

use reqwest::Method;
use serde_json::json;

use crate::pages::Site;
use crate::pages::browser::{Chrome, api, api_token};

const KANBAN: &str = "/app/opportunity?view=kanban";

keel_testkit::db_test!(
    a_rep_moves_a_deal_through_the_kanban_the_managers_approve_it_from_the_inbox_and_the_funnel_counts_it_won,
    |db| async move {
        let Some(chrome) = Chrome::start(db.backend).await else {
            return;
        };
        let site = Site::standard(&db.url);
        let chen_token = api_token(&site, "chen").await;
        let li_token = api_token(&site, "li").await;
        let (status, accounts) = api(
            &site,
            &chen_token,
            Method::GET,
            "/records/account?limit=1",
            None,
        )
        .await;
        assert_eq!(status, 200, "{accounts}");
        let (status, created) = api(
            &site,
            &chen_token,
            Method::POST,
            "/records/opportunity",
            Some(json!({
                "name": "浏览器推进商机",
                "account": accounts["data"][0]["id"],
                "amount": "8000"
            })),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        let card = format!(".kanban-card[data-id='{id}']");

        let chen = chrome.browser(site.base_url(), "zh-CN").await;
        chen.sign_in_home("chen").await;
        chen.open(KANBAN).await;
        chen.wait_for(&format!(".kanban-column[data-stage=qualification] {card}"))
            .await;
        chen.screenshots("zh-kanban").await;

        // To needs analysis: the move asks for the budget and the decision maker.
        chen.choose(&format!("{card} select[name=to]"), "需求确认").await;
        chen.click(&format!("{card} form.move button")).await;
        chen.wait_for("#missing-form").await;
        chen.fill("#field-budget", "9000").await;
        chen.fill("#field-decision_maker", "王总").await;
        chen.click("#missing-submit").await;
        chen.wait_for(&format!(".kanban-column[data-stage=needs_analysis] {card}"))
            .await;

        // To proposal: only the close date is missing.
        chen.choose(&format!("{card} select[name=to]"), "方案报价").await;
        chen.click(&format!("{card} form.move button")).await;
        chen.wait_for("#missing-form").await;
        assert_eq!(
            chen.all("#missing-form [data-field]").await.len(),
            1,
            "only the close date is asked for"
        );
        chen.run(
            "document.getElementById('field-close_date').value = '2027-03-31'; return true;",
        )
        .await;
        chen.click("#missing-submit").await;
        chen.wait_for(&format!(".kanban-column[data-stage=proposal] {card}"))
            .await;

        // The manager sets a discount above 15 %: negotiation now needs approval.
        let (status, body) = api(
            &site,
            &li_token,
            Method::PATCH,
            &format!("/records/opportunity/{id}"),
            Some(json!({"discount": 20})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        chen.reload().await;
        chen.choose(&format!("{card} select[name=to]"), "商务谈判").await;
        chen.click(&format!("{card} form.move button")).await;
        chen.wait_for("#approval-pending").await;
        assert!(chen.has("#approval-pending form.recall").await);
        chen.screenshots("zh-approval-pending").await;

        // The manager, then the sales director, approve it from the inbox.
        for (who, comment) in [("li", "同意折扣"), ("wang", "可以")] {
            let approver = chrome.browser(site.base_url(), "zh-CN").await;
            approver.sign_in_home(who).await;
            approver.open("/app/approvals").await;
            approver
                .wait_for("#approval-list form.approve input[name=comment]")
                .await;
            if who == "li" {
                approver.screenshots("zh-approvals").await;
            }
            approver
                .fill("#approval-list form.approve input[name=comment]", comment)
                .await;
            approver.click("#approval-list form.approve button").await;
            approver.wait_for("#approvals-notice").await;
            assert!(!approver.has("#approval-list form.approve").await);
        }

        // The rep sees it in negotiation, moves it to won from the stage path, sees it won.
        chen.open(&format!("/app/opportunity/{id}")).await;
        chen.wait_for("#stage-path .step.current[data-stage=negotiation]")
            .await;
        assert!(!chen.has("#approval-pending").await);
        chen.click("#transition-form button[value=won]").await;
        chen.wait_for("#stage-path .step.current[data-stage=won]").await;
        chen.wait_for("#process-notice").await;
        chen.screenshots("zh-won").await;

        // The funnel counts it.
        chen.open("/app/reports/funnel").await;
        chen.wait_for("#funnel-chart svg").await;
        assert_eq!(
            chen.text("#funnel-stages tr[data-stage=won] .reached")
                .await
                .trim(),
            "1"
        );
        chen.screenshots("zh-funnel").await;
    }
);
