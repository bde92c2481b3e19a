//! The studio's process editor in a real browser (docs/studio.md): an admin adds a stage to
//! the opportunity process between two stages, with its labels and probability, sees the
//! files it writes and the plan, and applies it; a rep's kanban, open all along, shows the
//! new stage's column in its place after a reload. The site is a copy of the standard app,
//! since the apply writes its files. The four editors are saved at a desktop's and a
//! phone's width.

use crate::pages::Site;
use crate::pages::browser::Chrome;

const EDITOR: &str = "/admin/studio/processes/opportunity_sales";
const KANBAN: &str = "/app/opportunity?view=kanban";
const COLUMNS: &str = "Array.from(document.querySelectorAll('.kanban-column'))\
                       .map(function (c) { return c.dataset.stage; }).join(',')";

keel_testkit::db_test!(
    an_admin_adds_a_stage_between_two_others_and_a_reps_kanban_shows_its_column_after_a_reload,
    |db| async move {
        let Some(chrome) = Chrome::start(db.backend).await else {
            return;
        };
        let site = Site::standard_copy(&db.url);

        let chen = chrome.browser(site.base_url(), "zh-CN").await;
        chen.sign_in_home("chen").await;
        chen.open(KANBAN).await;
        chen.wait_for(".kanban-column[data-stage=proposal]").await;
        assert_eq!(
            chen.run(&format!("return {COLUMNS};")).await,
            "qualification,needs_analysis,proposal,negotiation,won,lost"
        );

        let admin = chrome.browser(site.base_url(), "en-US").await;
        admin.sign_in_home("admin").await;
        admin.open("/admin/studio").await;
        admin
            .click("#studio-processes a[href='/admin/studio/processes/opportunity_sales']")
            .await;
        admin.wait_for("#process-form").await;
        assert_eq!(admin.path().await, EDITOR);
        admin.screenshots("en-studio-process").await;

        // "Add a stage after this one" under proposal: the form comes back with an empty
        // stage between proposal and negotiation, nothing saved yet.
        admin
            .click("li.studio-item[data-key=proposal] button[data-after=proposal]")
            .await;
        admin
            .wait_for("li.studio-item[data-index='3'][data-key=''] input[name='stages/3/key']")
            .await;
        assert_eq!(
            admin.value("input[name='stages/4/key']").await,
            "negotiation"
        );
        admin
            .fill("input[name='stages/3/key']", "contract_review")
            .await;
        admin
            .fill("input[name='stages/3/label/en']", "Contract review")
            .await;
        admin
            .fill("input[name='stages/3/label/zh']", "合同审核")
            .await;
        admin.fill("input[name='stages/3/probability']", "70").await;
        admin.click("#save").await;

        // The review: the process and the object's stage options change, and the plan.
        admin.wait_for("#review-plan").await;
        let files = admin.texts("section.studio-diff h3 code").await;
        assert_eq!(
            files,
            vec![
                "metadata/objects/opportunity.yaml".to_owned(),
                "workflows/processes/opportunity_sales.yaml".to_owned()
            ]
        );
        let added = admin
            .texts("section.studio-diff[data-path='workflows/processes/opportunity_sales.yaml'] tr.added")
            .await
            .join("\n");
        assert!(added.contains("key: contract_review"), "{added}");
        assert!(added.contains("合同审核"), "{added}");
        assert!(added.contains("probability: 70"), "{added}");
        admin.click("#apply").await;
        admin.wait_for("#applied").await;
        assert!(
            admin
                .path()
                .await
                .starts_with(&format!("{EDITOR}?applied=")),
            "{}",
            admin.path().await
        );
        admin
            .wait_for("li.studio-item[data-key=contract_review][data-index='3']")
            .await;

        // The rep's kanban shows the new column between proposal and negotiation.
        chen.reload().await;
        chen.wait_for(".kanban-column[data-stage=contract_review]")
            .await;
        assert_eq!(
            chen.run(&format!("return {COLUMNS};")).await,
            "qualification,needs_analysis,proposal,contract_review,negotiation,won,lost"
        );
        assert!(
            chen.text(".kanban-column[data-stage=contract_review]")
                .await
                .contains("合同审核")
        );

        // The other editors, at a desktop's and a phone's width (no sideways scrolling).
        for (path, form, name) in [
            (
                "/admin/studio/pools/public_leads",
                "#pool-form",
                "en-studio-pool",
            ),
            (
                "/admin/studio/rules/payment_overdue",
                "#rule-form",
                "en-studio-rule",
            ),
            (
                "/admin/studio/roles/sales_rep",
                "#role-form",
                "en-studio-role",
            ),
        ] {
            admin.open(path).await;
            admin.wait_for(form).await;
            admin.screenshots(name).await;
        }
    }
);
