//! The studio's shared pages over real HTTP (docs/studio.md): the index, and the review and
//! apply every editor goes through. Each test runs on a copy of the standard app, since an
//! apply writes the app's files.

use reqwest::StatusCode;
use serde_json::json;

use crate::pages::{Page, Session, Site};

const LEAD: &str = "metadata/objects/lead.yaml";

/// The lead file with a `budget` field added after `name`, on CRLF line ends when `crlf`.
fn lead_with_budget(site: &Site, crlf: bool) -> String {
    let text = std::fs::read_to_string(site.app_dir().join(LEAD)).unwrap();
    let anchor = "  company:\n";
    assert!(text.contains(anchor));
    let text = text.replacen(
        anchor,
        "  budget:\n    type: decimal\n    label: { en: Budget, zh: 预算 }\n  company:\n",
        1,
    );
    if crlf {
        text.replace('\n', "\r\n")
    } else {
        text
    }
}

/// The studio's index as `admin`, and the version it says the app is at.
async fn version(admin: &mut Session) -> i64 {
    let index = admin.get("/admin/studio").await;
    assert_eq!(index.status, StatusCode::OK, "{}", index.html);
    index.attrs("#studio-version", "data-version")[0]
        .parse()
        .unwrap()
}

async fn apply(admin: &mut Session, changes: serde_json::Value, base: i64) -> Page {
    admin
        .post(
            "/admin/studio/apply",
            &[
                ("changes", &changes.to_string()),
                ("base", &base.to_string()),
                ("title", "Lead"),
                ("back", "/admin/studio"),
            ],
        )
        .await
}

keel_testkit::db_test!(
    the_studio_lists_what_an_admin_can_change_and_is_no_page_for_a_rep,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let index = admin.get("/admin").await;
        assert_eq!(
            index
                .attrs("a.admin-card[href='/admin/studio']", "href")
                .len(),
            1
        );
        let studio = admin.get("/admin/studio").await;
        assert_eq!(studio.status, StatusCode::OK, "{}", studio.html);
        studio.assert_clean("/admin/studio");
        assert!(version(&mut admin).await >= 1);
        for (section, name) in [
            ("objects", "lead"),
            ("pools", "public_leads"),
            ("processes", "opportunity_sales"),
            ("rules", "follow_up_reminder"),
            ("roles", "sales_rep"),
        ] {
            assert_eq!(
                studio
                    .attrs(
                        &format!("#studio-{section} li[data-name='{name}']"),
                        "data-name"
                    )
                    .len(),
                1,
                "{section}: {}",
                studio.html
            );
        }
        let mut rep = site.login("chen").await;
        for path in ["/admin/studio"] {
            let page = rep.get(path).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        }
        rep.get("/account").await;
        let refused = rep
            .post(
                "/admin/studio/apply",
                &[("changes", "{}"), ("base", "1"), ("back", "/admin/studio")],
            )
            .await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND);
    }
);

keel_testkit::db_test!(
    an_apply_from_the_review_writes_the_files_byte_for_byte_and_goes_back_with_the_version,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let base = version(&mut admin).await;
        // CRLF line ends survive the form: the files travel as JSON, not as form text.
        let text = lead_with_budget(&site, true);
        let applied = apply(&mut admin, json!({ LEAD: text }), base).await;
        assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.html);
        let location = applied.location.clone().unwrap();
        assert_eq!(location, format!("/admin/studio?applied={}", base + 1));
        let back = admin.get(&location).await;
        back.assert_clean("the studio after an apply");
        assert_eq!(
            back.attrs("#applied", "data-version"),
            vec![(base + 1).to_string()]
        );
        assert_eq!(version(&mut admin).await, base + 1);
        assert_eq!(
            std::fs::read_to_string(site.app_dir().join(LEAD)).unwrap(),
            text
        );
        // The field is served at once.
        let form = admin.get("/app/lead/new").await;
        assert_eq!(
            form.attrs("[name=budget]", "name").len(),
            1,
            "{}",
            form.html
        );
    }
);

keel_testkit::db_test!(
    a_refused_apply_shows_the_review_again_with_the_reason_and_changes_nothing,
    |db| async move {
        let site = Site::standard_copy(&db.url);
        let mut admin = site.login("admin").await;
        let base = version(&mut admin).await;
        let before = std::fs::read_to_string(site.app_dir().join(LEAD)).unwrap();

        // A stale base: 409, the reason, and the apply form made against the latest again.
        let stale = apply(
            &mut admin,
            json!({ LEAD: lead_with_budget(&site, false) }),
            base - 1,
        )
        .await;
        assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.html);
        stale.assert_clean("a stale apply");
        assert_eq!(stale.attrs("#review-refusal", "data-kind"), vec!["stale"]);
        assert_eq!(stale.attrs("section.studio-diff", "data-path"), vec![LEAD]);
        assert_eq!(stale.attrs("tr.added", "class").len(), 3, "{}", stale.html);

        // Invalid files: 422, each problem at its file, line and column, and no apply button.
        let broken = before.replacen("    type: text\n", "    type: txet\n", 1);
        let invalid = apply(&mut admin, json!({ LEAD: broken }), base).await;
        assert_eq!(
            invalid.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            invalid.html
        );
        invalid.assert_clean("an invalid apply");
        assert_eq!(
            invalid.attrs("#review-refusal", "data-kind"),
            vec!["invalid"]
        );
        assert_eq!(invalid.attrs("li.diagnostic", "data-file"), vec![LEAD]);
        assert_eq!(invalid.attrs("li.diagnostic", "data-line"), vec!["7"]);
        assert!(invalid.attrs("button#apply", "id").is_empty());

        // Removing an object's field needs the admin's consent to archive its data.
        let removed = before.replacen("  job_title:\n    type: text\n    max_length: 100\n    label: { en: Job title, zh: 职位 }\n", "", 1)
            .replace("job_title, ", "");
        let destructive = apply(&mut admin, json!({ LEAD: removed }), base).await;
        assert_eq!(
            destructive.status,
            StatusCode::CONFLICT,
            "{}",
            destructive.html
        );
        assert_eq!(
            destructive.attrs("#review-refusal", "data-kind"),
            vec!["destructive"]
        );
        assert_eq!(
            destructive
                .attrs("ol.plan li[data-safe=false]", "class")
                .len(),
            1,
            "{}",
            destructive.html
        );
        assert_eq!(
            destructive.attrs("#allow-destructive", "name"),
            vec!["allow_destructive"]
        );

        // A path that is not metadata is a problem too.
        let outside = apply(&mut admin, json!({ "seed/x.csv": "a" }), base).await;
        assert_eq!(outside.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            outside.attrs("li.diagnostic", "data-file"),
            vec!["seed/x.csv"]
        );

        assert_eq!(version(&mut admin).await, base);
        assert_eq!(
            std::fs::read_to_string(site.app_dir().join(LEAD)).unwrap(),
            before
        );

        // A form that is not the review's is a bad request, not a server error.
        let bad = admin
            .post(
                "/admin/studio/apply",
                &[("changes", "not json"), ("base", "1")],
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.html);
    }
);
