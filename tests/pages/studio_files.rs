//! The studio's file editor and version history over real HTTP (docs/studio.md, "The file
//! editor" and "Version history"). Each test runs on a copy of the standard app, since an
//! apply writes the app's files.

use reqwest::StatusCode;

use crate::pages::{Page, Session, Site};

const LEAD: &str = "metadata/objects/lead.yaml";
const EDITOR: &str = "/admin/studio/files/metadata/objects/lead.yaml";

/// The text of the textarea matching `selector`, exactly as the browser would hold it.
fn textarea(page: &Page, selector: &str) -> String {
    let selector = scraper::Selector::parse(selector).unwrap();
    let document = page.document();
    let element = document
        .select(&selector)
        .next()
        .unwrap_or_else(|| panic!("no textarea: {}", page.html));
    element.text().collect()
}

/// The studio's version as its index shows it.
async fn version(admin: &mut Session) -> i64 {
    let index = admin.get("/admin/studio").await;
    assert_eq!(index.status, StatusCode::OK, "{}", index.html);
    index.attrs("#studio-version", "data-version")[0]
        .parse()
        .unwrap()
}

/// Posts the review's apply form as its Apply button would.
async fn apply_review(admin: &mut Session, review: &Page) -> Page {
    let value = |name: &str| {
        review
            .attrs(&format!("#review-apply input[name={name}]"), "value")
            .pop()
            .unwrap_or_else(|| panic!("no {name} in the review: {}", review.html))
    };
    let (changes, base, title, back) = (
        value("changes"),
        value("base"),
        value("title"),
        value("back"),
    );
    admin
        .post(
            "/admin/studio/apply",
            &[
                ("changes", changes.as_str()),
                ("base", base.as_str()),
                ("title", title.as_str()),
                ("back", back.as_str()),
            ],
        )
        .await
}

/// The lead file with `text` typed as a browser sends a textarea: CRLF line ends.
fn as_posted(text: &str) -> String {
    text.replace('\n', "\r\n")
}

fn read(site: &Site, path: &str) -> String {
    std::fs::read_to_string(site.app_dir().join(path)).unwrap()
}

keel_testkit::db_test!(
    every_app_file_opens_in_the_editor_with_its_exact_text_and_a_rep_gets_no_page,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let index = admin.get("/admin/studio").await;
        assert_eq!(
            index.attrs("#studio-nav a", "href"),
            ["/admin/studio/files", "/admin/studio/versions"]
        );
        let list = admin.get("/admin/studio/files").await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.html);
        list.assert_clean("the file list");
        let on_disk = keel_meta::read_app_files(site.app_dir()).unwrap();
        let listed = list.attrs("tr.file", "data-path");
        assert_eq!(
            listed,
            on_disk.keys().cloned().collect::<Vec<_>>(),
            "every app file, in path order"
        );
        let links = list.attrs("tr.file a.file-link", "href");
        assert_eq!(links.len(), on_disk.len());
        for (href, (path, text)) in links.iter().zip(&on_disk) {
            assert_eq!(href, &format!("/admin/studio/files/{path}"));
            let editor = admin.get(href).await;
            assert_eq!(editor.status, StatusCode::OK, "{path}: {}", editor.html);
            editor.assert_clean(path);
            assert_eq!(&textarea(&editor, "textarea#file-text"), text, "{path}");
            assert_eq!(editor.attrs("#file-text", "data-path"), [path.as_str()]);
            let schema = editor.attrs("#file-text", "data-schema");
            if path.ends_with(".rhai") {
                assert!(schema.is_empty(), "{path}: {schema:?}");
            } else {
                assert_eq!(schema.len(), 1, "{path}");
                assert!(schema[0].starts_with("/api/v1/meta/schema/"), "{schema:?}");
            }
            assert_eq!(editor.attrs("form#file-editor", "action"), [href.as_str()]);
            assert_eq!(editor.attrs("form#file-delete", "action"), [href.as_str()]);
        }
        // The kind named by the object file's schema address is served.
        let object_schema = reqwest::get(format!(
            "{}/api/v1/meta/schema/object.json",
            site.base_url()
        ))
        .await
        .unwrap();
        assert_eq!(object_schema.status(), StatusCode::OK);
        let missing = admin
            .get("/admin/studio/files/metadata/objects/nothing.yaml")
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        let outside = admin.get("/admin/studio/files/seed/users.csv").await;
        assert_eq!(outside.status, StatusCode::NOT_FOUND);

        let mut rep = site.login("chen").await;
        for path in [
            "/admin/studio/files",
            EDITOR,
            "/admin/studio/versions",
            "/admin/studio/versions/1",
        ] {
            let page = rep.get(path).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        }
        rep.get("/account").await;
        for (path, fields) in [
            (EDITOR, vec![("text", "name: lead\n"), ("base", "1")]),
            (
                "/admin/studio/files",
                vec![("path", "scripts/x.rhai"), ("text", "1"), ("base", "1")],
            ),
            ("/admin/studio/versions/1/reapply", vec![]),
        ] {
            let refused = rep.post(path, &fields).await;
            assert_eq!(refused.status, StatusCode::NOT_FOUND, "{path}");
        }
    }
);

keel_testkit::db_test!(
    a_typo_posted_from_the_file_editor_shows_the_review_with_the_problem_at_its_line,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let base = version(&mut admin).await;
        let editor = admin.get(EDITOR).await;
        let text = textarea(&editor, "textarea#file-text");
        // Line 7 is `    type: text` of the name field.
        assert_eq!(text.lines().nth(6), Some("    type: text"));
        let typo = text.replacen("    type: text\n", "    type: txet\n", 1);
        let review = admin
            .post(
                EDITOR,
                &[("text", &as_posted(&typo)), ("base", &base.to_string())],
            )
            .await;
        assert_eq!(
            review.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            review.html
        );
        review.assert_clean("the review of a typo");
        assert_eq!(review.attrs("li.diagnostic", "data-file"), [LEAD]);
        assert_eq!(review.attrs("li.diagnostic", "data-line"), ["7"]);
        assert_eq!(review.attrs("li.diagnostic", "data-col"), ["11"]);
        assert!(review.attrs("button#apply", "id").is_empty());
        // The review's way back is the editor; the diff shows the typed line.
        assert_eq!(review.attrs("#review-back", "href"), [EDITOR]);
        let added = review.texts("section.studio-diff tr.added td.text");
        assert_eq!(added, ["+ type: txet"], "{}", review.html);
        assert_eq!(version(&mut admin).await, base);
        assert_eq!(read(&site, LEAD), text);

        // A form without its base is a bad request, not a guess.
        let bad = admin.post(EDITOR, &[("text", "x")]).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    }
);

keel_testkit::db_test!(
    an_edit_from_the_file_editor_applies_and_the_file_is_byte_for_byte_what_was_typed,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let base = version(&mut admin).await;
        let before = read(&site, LEAD);
        // A new comment, a changed label with Chinese text and trailing spaces in a comment:
        // the file keeps its LF line ends although the browser sends CRLF.
        let typed = before
            .replacen("name: lead\n", "name: lead\n# 线索：studio edit   \n", 1)
            .replacen(
                "    label: { en: Name, zh: 姓名 }\n",
                "    label: { en: Full name, zh: 姓名 }\n",
                1,
            );
        assert_ne!(typed, before);
        let review = admin
            .post(
                EDITOR,
                &[("text", &as_posted(&typed)), ("base", &base.to_string())],
            )
            .await;
        assert_eq!(review.status, StatusCode::OK, "{}", review.html);
        review.assert_clean("the review of an edit");
        assert_eq!(review.attrs("section.studio-diff", "data-path"), [LEAD]);
        assert_eq!(review.attrs("button#apply", "id"), ["apply"]);
        let applied = apply_review(&mut admin, &review).await;
        assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);
        assert_eq!(
            applied.location.as_deref(),
            Some(format!("{EDITOR}?applied={}", base + 1).as_str())
        );
        assert_eq!(
            std::fs::read(site.app_dir().join(LEAD)).unwrap(),
            typed.as_bytes()
        );
        let back = admin.get(&format!("{EDITOR}?applied={}", base + 1)).await;
        back.assert_clean("the editor after an apply");
        assert_eq!(
            back.attrs("#applied", "data-version"),
            [(base + 1).to_string()]
        );
        assert_eq!(textarea(&back, "textarea#file-text"), typed);
        assert_eq!(
            back.attrs("input[name=base]", "value")[0],
            (base + 1).to_string()
        );

        // A file on CRLF keeps CRLF through the textarea (the review's apply form carries
        // files as JSON, so this apply makes one).
        let rule = "workflows/rules/big_deal_alert.yaml";
        let crlf = read(&site, rule).replace('\n', "\r\n");
        let changes = serde_json::json!({ rule: crlf }).to_string();
        let applied = admin
            .post(
                "/admin/studio/apply",
                &[
                    ("changes", changes.as_str()),
                    ("base", &(base + 1).to_string()),
                    ("back", "/admin/studio"),
                ],
            )
            .await;
        assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);
        assert_eq!(read(&site, rule), crlf);
        let editor = format!("/admin/studio/files/{rule}");
        let page = admin.get(&editor).await;
        // The browser shows it with LF (HTML reads a textarea's CRLF as LF) and sends CRLF.
        assert_eq!(textarea(&page, "#file-text"), crlf.replace("\r\n", "\n"));
        let edited = crlf.replacen("\r\n", "\r\n# edited in the studio\r\n", 1);
        let review = admin
            .post(
                &editor,
                &[("text", &edited), ("base", &(base + 2).to_string())],
            )
            .await;
        assert_eq!(review.status, StatusCode::OK, "{}", review.html);
        let applied = apply_review(&mut admin, &review).await;
        assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);
        assert_eq!(read(&site, rule), edited);

        // A new file: a bad path is shown again next to the field, a good one is reviewed
        // and applied; then the editor deletes it.
        let list = admin.get("/admin/studio/files").await;
        assert_eq!(
            list.attrs("form#new-file input[name=base]", "value").len(),
            1
        );
        for (path, key) in [
            ("", "path_required"),
            ("seed/more.csv", "path_not_metadata"),
            ("../escape.yaml", "path_not_metadata"),
            (LEAD, "path_exists"),
        ] {
            let refused = admin
                .post(
                    "/admin/studio/files",
                    &[("path", path), ("text", "x: 1\n"), ("base", "1")],
                )
                .await;
            assert_eq!(
                refused.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{path}: {}",
                refused.html
            );
            refused.assert_clean(key);
            assert_eq!(refused.texts("#error-path").len(), 1, "{path}");
            assert_eq!(
                refused.attrs("#new-file-path", "value"),
                [path.to_owned()],
                "the path typed is kept"
            );
            assert_eq!(textarea(&refused, "#new-file-text"), "x: 1\n");
        }
        let script = "scripts/studio_hello.rhai";
        let text = "// said from the studio\nlet greeting = \"你好\";\n";
        let new_version = review_and_apply_new(&mut admin, base + 3, script, text, false).await;
        assert_eq!(new_version, base + 4);
        assert_eq!(read(&site, script), text);
        let list = admin
            .get(&format!("/admin/studio/files?applied={new_version}"))
            .await;
        list.assert_clean("the list after a new file");
        assert!(
            list.attrs("tr.file", "data-path")
                .contains(&script.to_owned())
        );

        let editor = format!("/admin/studio/files/{script}");
        admin.get(&editor).await;
        let review = admin
            .post(
                &editor,
                &[("action", "delete"), ("base", &new_version.to_string())],
            )
            .await;
        assert_eq!(review.status, StatusCode::OK, "{}", review.html);
        assert_eq!(
            review.attrs("section.studio-diff", "data-status"),
            ["removed"]
        );
        let applied = apply_review(&mut admin, &review).await;
        assert_eq!(
            applied.location.as_deref(),
            Some(format!("/admin/studio/files?applied={}", new_version + 1).as_str())
        );
        assert!(!site.app_dir().join(script).exists());
        let gone = admin.get(&editor).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
    }
);

/// Posts `text` as the new file `path` (or, with `replace`, as the editor's text of an
/// existing one) against `base`, applies the review, and returns the applied version.
async fn review_and_apply_new(
    admin: &mut Session,
    base: i64,
    path: &str,
    text: &str,
    replace: bool,
) -> i64 {
    let review = if replace {
        admin.get(&format!("/admin/studio/files/{path}")).await;
        admin
            .post(
                &format!("/admin/studio/files/{path}"),
                &[("text", text), ("base", &base.to_string())],
            )
            .await
    } else {
        admin.get("/admin/studio/files").await;
        admin
            .post(
                "/admin/studio/files",
                &[("path", path), ("text", text), ("base", &base.to_string())],
            )
            .await
    };
    assert_eq!(review.status, StatusCode::OK, "{path}: {}", review.html);
    let applied = apply_review(admin, &review).await;
    assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);
    let location = applied.location.unwrap();
    location.rsplit_once("applied=").unwrap().1.parse().unwrap()
}

keel_testkit::db_test!(
    the_version_history_lists_each_version_and_shows_what_it_changed,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let base = version(&mut admin).await;
        let before = read(&site, LEAD);
        let changed = before.replacen("    max_length: 200\n", "    max_length: 250\n", 1);
        assert_ne!(changed, before);
        let applied = review_and_apply_new(&mut admin, base, LEAD, &changed, true).await;
        assert_eq!(applied, base + 1);

        let list = admin.get("/admin/studio/versions").await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.html);
        list.assert_clean("the version history");
        let numbers: Vec<i64> = list
            .attrs("tr.version", "data-version")
            .iter()
            .map(|number| number.parse().unwrap())
            .collect();
        let expected: Vec<i64> = (1..=applied).rev().collect();
        assert_eq!(numbers, expected, "newest first");
        let top = list.texts("tr.version:first-child td");
        assert!(top[2].contains("admin"), "who: {top:?}");
        assert_eq!(
            list.attrs("tr.version:first-child", "data-source"),
            ["studio"]
        );
        assert_eq!(
            list.attrs("tr.version:first-child a", "href"),
            [format!("/admin/studio/versions/{applied}")]
        );
        // Paged by `before`.
        let older = admin
            .get(&format!("/admin/studio/versions?before={applied}"))
            .await;
        assert_eq!(older.status, StatusCode::OK);
        assert_eq!(
            older.attrs("tr.version", "data-version").first(),
            Some(&base.to_string())
        );
        assert_eq!(older.attrs(".pager a", "href"), ["/admin/studio/versions"]);
        let bad = admin.get("/admin/studio/versions?before=x").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);

        let detail = admin
            .get(&format!("/admin/studio/versions/{applied}"))
            .await;
        assert_eq!(detail.status, StatusCode::OK, "{}", detail.html);
        detail.assert_clean("a version");
        assert_eq!(detail.attrs("section.studio-diff", "data-path"), [LEAD]);
        assert_eq!(
            detail.texts("section.studio-diff tr.removed td.text"),
            ["- max_length: 200"]
        );
        assert_eq!(
            detail.texts("section.studio-diff tr.added td.text"),
            ["+ max_length: 250"]
        );
        // The latest version is the one running: nothing to re-apply.
        assert!(detail.attrs("form#reapply", "action").is_empty());
        assert_eq!(detail.attrs("#version-current", "id").len(), 1);

        let first = admin.get("/admin/studio/versions/1").await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.html);
        first.assert_clean("the first version");
        assert_eq!(
            first.attrs("form#reapply", "action"),
            ["/admin/studio/versions/1/reapply"]
        );
        for missing in ["/admin/studio/versions/999", "/admin/studio/versions/x"] {
            assert_eq!(
                admin.get(missing).await.status,
                StatusCode::NOT_FOUND,
                "{missing}"
            );
        }
    }
);

keel_testkit::db_test!(
    re_applying_an_earlier_version_restores_its_files_byte_for_byte_as_a_new_version,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let base = version(&mut admin).await;
        let original = keel_meta::read_app_files(site.app_dir()).unwrap();
        // Two changes: the lead file edited, and a new script.
        let lead = original[LEAD].replacen(
            "    label: { en: Company, zh: 公司 }\n",
            "    label: { en: Company name, zh: 公司名称 }\n",
            1,
        );
        assert_ne!(lead, original[LEAD]);
        let edited = review_and_apply_new(&mut admin, base, LEAD, &lead, true).await;
        let script = "scripts/studio_extra.rhai";
        let latest =
            review_and_apply_new(&mut admin, edited, script, "let extra = 1;\n", false).await;
        assert_eq!(latest, base + 2);

        // Re-apply the version before both.
        let detail = admin.get(&format!("/admin/studio/versions/{base}")).await;
        assert_eq!(
            detail.attrs("form#reapply", "action"),
            [format!("/admin/studio/versions/{base}/reapply")]
        );
        let review = admin
            .post(&format!("/admin/studio/versions/{base}/reapply"), &[])
            .await;
        assert_eq!(review.status, StatusCode::OK, "{}", review.html);
        review.assert_clean("the review of a re-apply");
        let mut files: Vec<(String, String)> = review
            .attrs("section.studio-diff", "data-path")
            .into_iter()
            .zip(review.attrs("section.studio-diff", "data-status"))
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                (LEAD.to_owned(), "changed".to_owned()),
                (script.to_owned(), "removed".to_owned())
            ]
        );
        assert_eq!(
            review.attrs("#review-apply input[name=base]", "value"),
            [latest.to_string()],
            "made against the latest version"
        );
        let applied = apply_review(&mut admin, &review).await;
        assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);
        assert_eq!(
            applied.location.as_deref(),
            Some(format!("/admin/studio/versions?applied={}", latest + 1).as_str())
        );
        assert_eq!(keel_meta::read_app_files(site.app_dir()).unwrap(), original);
        assert_eq!(
            std::fs::read(site.app_dir().join(LEAD)).unwrap(),
            original[LEAD].as_bytes()
        );
        let list = admin
            .get(&format!("/admin/studio/versions?applied={}", latest + 1))
            .await;
        list.assert_clean("the history after a re-apply");
        assert_eq!(
            list.attrs("#applied", "data-version"),
            [(latest + 1).to_string()]
        );
        assert_eq!(
            list.attrs("tr.version", "data-version").first(),
            Some(&(latest + 1).to_string())
        );
        // The new version's diff is the way back.
        let detail = admin
            .get(&format!("/admin/studio/versions/{}", latest + 1))
            .await;
        let mut paths = detail.attrs("section.studio-diff", "data-path");
        paths.sort();
        assert_eq!(paths, [LEAD, script]);
    }
);

keel_testkit::db_test!(
    an_edit_made_on_an_older_version_applies_when_no_one_changed_the_file_since_and_is_stale_when_someone_did,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let base = version(&mut admin).await;
        let editor = admin.get(EDITOR).await;
        let text = textarea(&editor, "textarea#file-text");
        let opened_on = editor.attrs("form#file-editor input[name=base]", "value")[0].clone();
        assert_eq!(opened_on, base.to_string());

        // Meanwhile another admin changes another file.
        let rule = "workflows/rules/big_deal_alert.yaml";
        let other = format!("# another admin's note\n{}", read(&site, rule));
        let elsewhere = review_and_apply_new(&mut admin, base, rule, &other, true).await;
        assert_eq!(elsewhere, base + 1);

        // The edit opened on `base` is made against the latest: the file is the same there.
        let edited = text.replacen("name: lead\n", "name: lead\n# mine\n", 1);
        admin.get(EDITOR).await;
        let review = admin
            .post(EDITOR, &[("text", &edited), ("base", &opened_on)])
            .await;
        assert_eq!(review.status, StatusCode::OK, "{}", review.html);
        assert_eq!(
            review.attrs("#review-apply input[name=base]", "value"),
            [(base + 1).to_string()]
        );
        assert_eq!(review.attrs("section.studio-diff", "data-path"), [LEAD]);
        let applied = apply_review(&mut admin, &review).await;
        assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);
        assert_eq!(read(&site, LEAD), edited);
        assert_eq!(read(&site, rule), other, "the other admin's change stays");

        // An edit opened before someone changed the same file is stale: nothing changes.
        let stale = text.replacen("name: lead\n", "name: lead\n# stale\n", 1);
        let review = admin
            .post(EDITOR, &[("text", &stale), ("base", &opened_on)])
            .await;
        assert_eq!(review.status, StatusCode::OK, "{}", review.html);
        assert_eq!(
            review.attrs("#review-apply input[name=base]", "value"),
            [opened_on.as_str()]
        );
        // The diff against the latest shows the line the edit would undo.
        assert_eq!(
            review.texts("section.studio-diff tr.removed td.text"),
            ["- # mine"]
        );
        let refused = apply_review(&mut admin, &review).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.html);
        assert_eq!(refused.attrs("#review-refusal", "data-kind"), ["stale"]);
        assert_eq!(read(&site, LEAD), edited);
        assert_eq!(version(&mut admin).await, base + 2);
    }
);
