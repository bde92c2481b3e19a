//! The studio's file editor in a browser (docs/studio.md, "The file editor"): a typo shows
//! its problem at its line while the admin types, before anything is saved; fixing it
//! clears it; a key completed from the schema is applied, and the version's page shows the
//! change.

use serde_json::{Value, json};

use crate::pages::Site;
use crate::pages::browser::Chrome;

const LEAD: &str = "metadata/objects/lead.yaml";

/// Backspace, Tab and Enter as WebDriver types them.
const BACKSPACE: &str = "\u{E003}";
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

/// Script: puts the cursor at the end of line `arguments[0]` (1-based) of the editor and
/// returns that line.
const CURSOR_AT_END_OF_LINE: &str = "var t = document.getElementById('file-text'); \
     var lines = t.value.split('\\n'); var offset = 0; \
     for (var i = 0; i < arguments[0] - 1; i++) offset += lines[i].length + 1; \
     offset += lines[arguments[0] - 1].length; \
     t.focus(); t.setSelectionRange(offset, offset); return lines[arguments[0] - 1];";

keel_testkit::db_test!(
    a_typo_in_the_file_editor_shows_its_problem_at_its_line_before_anything_is_saved,
    |db| async move {
        let Some(chrome) = Chrome::start(db.backend).await else {
            return;
        };
        let site = Site::standard_copy(&db.url);
        let before = std::fs::read_to_string(site.app_dir().join(LEAD)).unwrap();
        let admin = chrome.browser(site.base_url(), "en-US").await;
        admin.sign_in_home("admin").await;
        admin.open("/admin/studio").await;
        let version: i64 = admin
            .wait_for("#studio-version")
            .await
            .attr("data-version")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        admin.click("#studio-files-link").await;
        admin
            .click(&format!("tr.file[data-path='{LEAD}'] a.file-link"))
            .await;
        // The script has numbered the lines.
        admin.wait_for("#editor-gutter span[data-line='7']").await;
        admin.screenshots("studio-file-editor").await;
        admin.wait_for("#editor-gutter span[data-line='7']").await;

        // Line 7 is the name field's `type: text`: type `txet` over `text`.
        let cursor_at = |line: u64| {
            let admin = &admin;
            async move {
                admin
                    .client
                    .execute(CURSOR_AT_END_OF_LINE, vec![json!(line)])
                    .await
                    .unwrap()
            }
        };
        assert_eq!(cursor_at(7).await, Value::from("    type: text"));
        let textarea = admin.wait_for("#file-text").await;
        textarea
            .send_keys(&format!("{}txet", BACKSPACE.repeat(4)))
            .await
            .unwrap();
        admin
            .wait_until(
                "the typo's problem is listed at line 7",
                "document.querySelector('#editor-problems li.diagnostic[data-line=\"7\"]') !== null",
            )
            .await;
        let problems = admin.texts("#editor-problems li.diagnostic").await;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("7:11 "), "{problems:?}");
        assert!(admin.has("#editor-gutter span.error[data-line='7']").await);
        // Before saving: the file and the version are as they were.
        assert_eq!(
            std::fs::read_to_string(site.app_dir().join(LEAD)).unwrap(),
            before
        );
        assert_eq!(admin.path().await, format!("/admin/studio/files/{LEAD}"));

        // Fixing it clears it.
        textarea
            .send_keys(&format!("{}text", BACKSPACE.repeat(4)))
            .await
            .unwrap();
        let clean = "document.getElementById('editor-status').textContent === \
                     document.getElementById('file-text').getAttribute('data-clean') && \
                     document.querySelectorAll('#editor-problems li').length === 0 && \
                     document.querySelector('#editor-gutter span.error') === null";
        admin.wait_until("the problem is gone", clean).await;

        // A new key, completed from the object schema: `hel` offers `help`, Tab takes it.
        assert_eq!(cursor_at(7).await, Value::from("    type: text"));
        textarea.send_keys(&format!("{ENTER}hel")).await.unwrap();
        admin
            .wait_until(
                "the completion offers help",
                "Array.from(document.querySelectorAll('#editor-completions li')) \
                 .some(function (li) { return li.textContent === 'help'; })",
            )
            .await;
        admin.screenshot("studio-file-completion").await;
        textarea
            .send_keys(&format!("{TAB}{{ en: Who to call, zh: 联系人 }}"))
            .await
            .unwrap();
        let typed = admin
            .run("return document.getElementById('file-text').value;")
            .await;
        let expected = before.replacen(
            "    type: text\n",
            "    type: text\n    help: { en: Who to call, zh: 联系人 }\n",
            1,
        );
        assert_eq!(typed.as_str(), Some(expected.as_str()));
        admin.wait_until("the new text is valid", clean).await;

        // Review and apply; the version's page shows the change.
        admin.click("#file-review").await;
        admin.click("#review-apply button#apply").await;
        admin.wait_for("#applied").await;
        assert_eq!(
            std::fs::read_to_string(site.app_dir().join(LEAD)).unwrap(),
            expected
        );
        admin
            .open(&format!("/admin/studio/versions/{}", version + 1))
            .await;
        let added = admin.texts("section.studio-diff tr.added td.text").await;
        assert_eq!(
            added,
            ["+ help: { en: Who to call, zh: 联系人 }"],
            "{}",
            admin.source().await
        );
        admin.screenshots("studio-version").await;
        admin.open("/admin/studio/versions").await;
        assert_eq!(
            admin.texts("tr.version:first-child td:first-child").await[0],
            format!("{} current", version + 1)
        );
    }
);
