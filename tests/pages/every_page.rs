//! Every page of every object, for an admin and for a rep, in the standard app and in every
//! template of `templates/`: each answers 200, is well formed, and has no untranslated key.
//!
//! The walk follows what a user can click: the navigation, each object's list, the first
//! record of each list, its edit form, the "new" form where offered, and the admin console's
//! links. It is bounded (at most `MAX_PAGES` pages per user).

use std::collections::{BTreeSet, VecDeque};

use reqwest::StatusCode;

use crate::pages::{Session, Site};
use crate::support::AppDir;

const MAX_PAGES: usize = 400;

/// Visits every page `session` can reach by the links described above; returns the paths.
async fn walk(session: &mut Session, who: &str) -> Vec<String> {
    let mut queue: VecDeque<String> = VecDeque::from(["/".to_owned()]);
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut visited = Vec::new();
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) {
            continue;
        }
        assert!(
            visited.len() < MAX_PAGES,
            "{who}: more than {MAX_PAGES} pages"
        );
        let page = session.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{who} {path}: {}", page.html);
        page.assert_clean(&format!("{who} {path}"));
        visited.push(path.clone());
        let mut next: Vec<String> = Vec::new();
        if path == "/" {
            next.extend(page.attrs("nav a", "href"));
        } else if path == "/admin" {
            next.extend(
                page.attrs("#main a", "href")
                    .into_iter()
                    .filter(|href| href.starts_with("/admin/")),
            );
        } else if is_list(&path) {
            next.extend(
                page.attrs("table#records tr[data-id] a", "href")
                    .into_iter()
                    .take(1),
            );
            next.extend(page.attrs("a#new-record", "href"));
        } else if is_record(&path) {
            next.extend(page.attrs("a#edit-record", "href"));
        }
        for href in next {
            let href = href.split('#').next().unwrap_or("").to_owned();
            if href.starts_with('/')
                && !href.starts_with("/api/")
                && !href.starts_with("/static/")
                && !seen.contains(&href)
            {
                queue.push_back(href);
            }
        }
    }
    visited
}

/// `/app/{object}` (a list), not a record or a form.
fn is_list(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    path.starts_with("/app/") && path.trim_start_matches("/app/").split('/').count() == 1
}

/// `/app/{object}/{id}` (a record page).
fn is_record(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_start_matches("/app/").split('/').collect();
    path.starts_with("/app/") && parts.len() == 2 && parts[1] != "new" && parts[1] != "deleted"
}

/// Checks the walk reached a list of every object in the navigation, and at least one
/// record page and form.
fn assert_covers(visited: &[String], who: &str) {
    let lists = visited.iter().filter(|path| is_list(path)).count();
    let records = visited.iter().filter(|path| is_record(path)).count();
    let forms = visited
        .iter()
        .filter(|path| path.ends_with("/new") || path.ends_with("/edit"))
        .count();
    assert!(
        lists >= 3 && records >= 1 && forms >= 1,
        "{who}: {visited:?}"
    );
}

keel_testkit::db_test!(
    every_page_of_the_standard_app_renders_well_formed_for_an_admin_and_a_rep,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut admin = site.login("admin").await;
        let visited = walk(&mut admin, "admin").await;
        assert_covers(&visited, "admin");
        assert!(
            visited
                .iter()
                .filter(|path| path.starts_with("/admin/"))
                .count()
                >= 5,
            "the admin console's pages: {visited:?}"
        );
        let mut rep = site.login("chen").await;
        let visited = walk(&mut rep, "chen").await;
        assert_covers(&visited, "chen");
        assert!(
            !visited.iter().any(|path| path.starts_with("/admin")),
            "{visited:?}"
        );
        // The same pages in English.
        let mut english = site
            .login_with("admin", crate::pages::ADMIN_PASSWORD, Some("en"))
            .await;
        assert_covers(&walk(&mut english, "admin (en)").await, "admin (en)");
    }
);

keel_testkit::db_test!(
    every_page_of_every_template_renders_well_formed_for_an_admin_and_a_rep,
    |db| async move {
        // Every template in templates/ (found by listing it), each on a fresh database.
        let backend = db.backend;
        let mut first = Some(db);
        for template in crate::templates::template_dirs() {
            let db = match first.take() {
                Some(db) => db,
                None => keel_testkit::TestDb::new(backend).await.unwrap(),
            };
            let name = template.file_name().unwrap().to_str().unwrap().to_owned();
            let site = Site::app(AppDir::copy_of(&template), &db.url);
            let mut admin = site.login("admin").await;
            let who = format!("{name}: admin");
            assert_covers(&walk(&mut admin, &who).await, &who);
            let (rep, password) = crate::templates::seed_rep(&template);
            let mut session = site.login_with(&rep, &password, None).await;
            let who = format!("{name}: {rep}");
            let visited = walk(&mut session, &who).await;
            assert_covers(&visited, &who);
            assert!(
                !visited.iter().any(|path| path.starts_with("/admin")),
                "{who}: {visited:?}"
            );
        }
    }
);
