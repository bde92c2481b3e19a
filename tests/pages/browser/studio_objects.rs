//! The studio's field editor in a real browser: an admin adds a choice field to lead with
//! English and Chinese labels and two options through the form, sees the lines and the plan,
//! and applies; a rep whose new-lead form was open sees the field after a reload and saves a
//! lead with it; the API and OpenAPI show it; and the lead list's filters offer it (every
//! choice field gets a filter, a list column or not). The object page, the field form and the
//! list settings are saved at a desktop's and a phone's width (no sideways scroll).

use reqwest::Method;

use crate::pages::Site;
use crate::pages::browser::{Chrome, api, api_token};

const LEAD_NAME: &str = "预算字段测试线索";

keel_testkit::db_test!(
    an_admin_adds_a_choice_field_to_lead_and_a_rep_fills_it_and_filters_the_list_by_it,
    |db| async move {
        let Some(chrome) = Chrome::start(db.backend).await else {
            return;
        };
        // A copy: the apply writes the app's files.
        let site = Site::standard_copy(&db.url);

        // The rep has the new-lead form open before the change.
        let chen = chrome.browser(site.base_url(), "zh-CN").await;
        chen.sign_in_home("chen").await;
        chen.open("/app/lead/new").await;
        chen.wait_for("form#record-form").await;
        assert!(!chen.has("[name=budget_level]").await);

        // The admin goes from the studio to the lead's page and adds the field.
        let admin = chrome.browser(site.base_url(), "en-US").await;
        admin.sign_in_home("admin").await;
        admin.open("/admin/studio").await;
        admin.click("#studio-objects li[data-name=lead] a").await;
        admin
            .wait_for("#object-fields tr[data-field=company]")
            .await;
        admin.screenshots("en-studio-object").await;
        admin.click("a#add-field").await;
        admin.wait_for("form#field-form").await;
        admin.screenshots("en-studio-field-new").await;
        // The options show only for a choice field.
        assert!(!admin.visible("#field-options").await);
        admin.fill("#field-name", "budget_level").await;
        admin.choose("#field-type", "choice").await;
        assert!(admin.visible("#field-options").await);
        admin.fill("#field-label_en", "Budget level").await;
        admin.fill("#field-label_zh", "预算级别").await;
        admin
            .fill("#field-help_en", "How much the lead can spend")
            .await;
        admin.fill("#field-help_zh", "线索的预算多少").await;
        admin.fill("#option-0-key", "low").await;
        admin.fill("#option-0-label_en", "Low").await;
        admin.fill("#option-0-label_zh", "低").await;
        // A row added by the button takes the next index after the empty rows.
        admin.click("#add-option").await;
        admin
            .wait_until(
                "a fourth option row",
                "document.querySelectorAll('#field-options .option-row').length === 4",
            )
            .await;
        admin.fill("#option-3-key", "high").await;
        admin.fill("#option-3-label_en", "High").await;
        admin.fill("#option-3-label_zh", "高").await;
        admin.choose("#field-section", "1").await;
        admin.screenshot("en-studio-field-filled-1280").await;
        admin.click("button#review").await;

        // The review: the lines the change writes and the plan.
        admin.wait_for("#review-plan").await;
        let added = admin.texts("tr.added td.text").await.join("\n");
        for line in [
            "budget_level:",
            "type: choice",
            "{ en: Budget level, zh: 预算级别 }",
            "{ key: low, label: { en: Low, zh: 低 } }",
            "{ key: high, label: { en: High, zh: 高 } }",
        ] {
            assert!(added.contains(line), "`{line}` in\n{added}");
        }
        let plan = admin.texts("ol.plan li").await.join("\n");
        assert!(plan.contains("add column lead.budget_level"), "{plan}");
        admin.screenshot("en-studio-field-review-1280").await;
        admin.click("button#apply").await;
        admin
            .wait_until(
                "back on the lead's page, applied",
                "location.pathname === '/admin/studio/objects/lead' && \
                 document.querySelector('#applied') !== null",
            )
            .await;
        assert!(
            admin
                .has("#object-fields tr[data-field=budget_level]")
                .await
        );

        // The rep reloads the open form: the field is there, with its Chinese label and
        // options; the rep saves a lead with it.
        chen.reload().await;
        chen.wait_for("form#record-form #field-budget_level").await;
        let source = chen.source().await;
        assert!(source.contains("预算级别"), "the Chinese label");
        assert!(source.contains("线索的预算多少"), "the Chinese help");
        chen.fill("#field-name", LEAD_NAME).await;
        chen.choose("#field-budget_level", "高").await;
        chen.click("button#save").await;
        chen.wait_until(
            "the new lead's page",
            "location.pathname.indexOf('/app/lead/') === 0 && \
             document.querySelector('h1#record-title') !== null",
        )
        .await;
        let path = chen.path().await;
        let id = path
            .strip_prefix("/app/lead/")
            .unwrap_or_else(|| panic!("the record page of the new lead, not {path}"))
            .to_owned();

        // The API returns the value; OpenAPI describes the field with its options.
        let token = api_token(&site, "chen").await;
        let (status, lead) = api(
            &site,
            &token,
            Method::GET,
            &format!("/records/lead/{id}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{lead}");
        assert_eq!(lead["budget_level"], "high", "{lead}");
        let (status, openapi) = api(&site, &token, Method::GET, "/openapi.json", None).await;
        assert_eq!(status, 200);
        let property =
            openapi["components"]["schemas"]["Lead"]["properties"]["budget_level"].to_string();
        assert!(
            property.contains("\"low\"") && property.contains("\"high\""),
            "{property}"
        );

        // The lead list's filters offer the field; filtering by 高 keeps the lead and only
        // leads with that value, 低 leaves it out.
        let row = format!("table#records tr[data-id='{id}']");
        chen.open("/app/lead").await;
        chen.wait_for("form#filters select[name=budget_level]")
            .await;
        chen.choose("form#filters select[name=budget_level]", "高")
            .await;
        chen.run("document.querySelector('form#filters').requestSubmit(); return true;")
            .await;
        chen.wait_until(
            "the filter keeps the lead and only it",
            &format!(
                "location.search.indexOf('budget_level') >= 0 && \
                 document.querySelector({row:?}) !== null && \
                 document.querySelectorAll('table#records tr[data-id]').length === 1"
            ),
        )
        .await;
        chen.choose("form#filters select[name=budget_level]", "低")
            .await;
        chen.run("document.querySelector('form#filters').requestSubmit(); return true;")
            .await;
        chen.wait_until(
            "the other option leaves it out",
            &format!(
                "location.search.indexOf('low') >= 0 && \
                 document.querySelector({row:?}) === null"
            ),
        )
        .await;

        // The list settings page at both widths.
        admin.open("/admin/studio/objects/lead/list").await;
        admin.wait_for("form#list-form").await;
        admin.screenshots("en-studio-list-settings").await;
    }
);
