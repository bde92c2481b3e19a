//! The list pages `/app/{object}` and the search page `/search`: every list is compared with
//! the API's answer under the same query, for the same signed-in user.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::pages::{Page, Session, Site};

/// The ids of the API's list at `query` (`/api/v1/records/{object}?{query}`), every page.
async fn api_ids(session: &mut Session, object: &str, query: &str) -> Vec<String> {
    let separator = if query.is_empty() { "" } else { "&" };
    let page = session
        .get(&format!(
            "/api/v1/records/{object}?{query}{separator}limit=500"
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let body: Value = serde_json::from_str(&page.html).unwrap();
    assert!(body["next"].is_null(), "more than 500 records");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The ids of the rows of a list page, in order.
fn row_ids(page: &Page) -> Vec<String> {
    page.attrs("table#records tr[data-id]", "data-id")
}

/// The count the page shows.
fn shown_count(page: &Page) -> usize {
    let texts = page.texts("#record-count");
    assert_eq!(texts.len(), 1, "one #record-count:\n{}", page.html);
    texts[0].parse().unwrap()
}

/// `GET path`, expecting a list page (200), checked clean.
async fn list(session: &mut Session, path: &str) -> Page {
    let page = session.get(path).await;
    assert_eq!(page.status, StatusCode::OK, "{path}:\n{}", page.html);
    page.assert_clean(path);
    page
}

/// `GET path`, expecting a redirect to the canonical URL, which is then loaded.
async fn via_redirect(session: &mut Session, path: &str, expected: &str) -> Page {
    let redirect = session.get(path).await;
    assert_eq!(
        redirect.status,
        StatusCode::SEE_OTHER,
        "{path}:\n{}",
        redirect.html
    );
    assert_eq!(redirect.location.as_deref(), Some(expected), "{path}");
    list(session, expected).await
}

/// Creates a record through the API as the session's user.
async fn api_create(site: &Site, session: &Session, object: &str, record: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/records/{object}", site.base_url()))
        .bearer_auth(session.token().unwrap())
        .json(&record)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

keel_testkit::db_test!(
    a_list_shows_the_objects_columns_in_the_users_language_and_every_readable_record,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut wang = site.login("wang").await;
        let page = list(&mut wang, "/app/lead").await;
        assert_eq!(page.texts("h1"), vec!["线索"]);
        let headers = page.texts("table#records th a[data-sort]");
        assert_eq!(
            headers[..3],
            ["姓名".to_owned(), "公司".to_owned(), "手机".to_owned()],
            "{headers:?}"
        );
        assert!(
            page.texts("table#records th")
                .contains(&"负责人".to_owned())
        );
        let all = api_ids(&mut wang, "lead", "").await;
        assert!(all.len() > 20, "the demo data has leads");
        assert_eq!(row_ids(&page), all);
        assert_eq!(shown_count(&page), all.len());
        // The first cell links to the record; cells carry their column's label (cards).
        let first = &all[0];
        assert_eq!(
            page.attrs(&format!("tr[data-id=\"{first}\"] td[data-label] a"), "href")[0],
            format!("/app/lead/{first}")
        );
        assert_eq!(
            page.attrs(
                &format!("tr[data-id=\"{first}\"] td[data-label]"),
                "data-label"
            )[..2],
            ["姓名".to_owned(), "公司".to_owned()]
        );
        assert_eq!(page.attrs("table#records", "class"), vec!["cards"]);
        // Choices show as their labels, owners by name.
        let cells = page.texts("table#records td");
        assert!(cells.iter().any(|cell| cell == "已联系"), "{cells:?}");
        assert!(cells.iter().any(|cell| cell == "陈晨"), "{cells:?}");
        assert_eq!(page.attrs("a#new-record", "href"), vec!["/app/lead/new"]);
        assert_eq!(
            page.attrs("a#recycle-bin", "href"),
            vec!["/app/lead/deleted"]
        );
        assert_eq!(page.attrs("form#filters", "method"), vec!["get"]);
        assert_eq!(
            page.attrs("form#filters input[name=q]", "type"),
            vec!["search"]
        );

        let mut english = site
            .login_with("admin", crate::pages::ADMIN_PASSWORD, Some("en"))
            .await;
        let page = list(&mut english, "/app/lead").await;
        assert_eq!(page.texts("h1"), vec!["Lead"]);
        let headers = page.texts("table#records th");
        for label in ["Name", "Company", "Mobile", "Status", "Score", "Owner"] {
            assert!(
                headers.iter().any(|header| header.starts_with(label)),
                "{headers:?}"
            );
        }
        assert!(
            page.texts("table#records td")
                .iter()
                .any(|cell| cell == "Contacted")
        );
        assert_eq!(row_ids(&page), all, "the admin sees every lead too");
    }
);

keel_testkit::db_test!(
    filters_by_a_choice_a_date_preset_a_date_range_and_a_number_range_show_exactly_the_api_rows,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut wang = site.login("wang").await;
        let all = api_ids(&mut wang, "lead", "").await;

        let page = list(&mut wang, "/app/lead?status=eq.qualified").await;
        let qualified = api_ids(&mut wang, "lead", "status=eq.qualified").await;
        assert!(!qualified.is_empty() && qualified.len() < all.len());
        assert_eq!(row_ids(&page), qualified);
        assert_eq!(shown_count(&page), qualified.len());
        assert_eq!(
            page.attrs("select[name=status] option[selected]", "value"),
            vec!["eq.qualified"]
        );

        // What the filter form sends (empty controls, range inputs) becomes API syntax.
        let page = via_redirect(
            &mut wang,
            "/app/lead?q=&status=&score.from=50&score.to=80&source=",
            "/app/lead?score=gte.50&score=lte.80",
        )
        .await;
        let scored = api_ids(&mut wang, "lead", "score=gte.50&score=lte.80").await;
        assert!(!scored.is_empty() && scored.len() < all.len());
        assert_eq!(row_ids(&page), scored);
        assert_eq!(
            page.attrs("input[name=\"score.from\"]", "value"),
            vec!["50"]
        );
        assert_eq!(page.attrs("input[name=\"score.to\"]", "value"), vec!["80"]);

        let page = via_redirect(
            &mut wang,
            "/app/lead?created_at.preset=today&created_at.from=2020-01-01",
            "/app/lead?created_at=gte.@today&created_at=lt.@today+1d",
        )
        .await;
        let today = api_ids(
            &mut wang,
            "lead",
            "created_at=gte.@today&created_at=lt.@today+1d",
        )
        .await;
        assert_eq!(row_ids(&page), today);
        assert_eq!(
            page.attrs(
                "select[name=\"created_at.preset\"] option[selected]",
                "value"
            ),
            vec!["today"]
        );

        // A custom range includes its last day.
        let page = via_redirect(
            &mut wang,
            "/app/lead?last_follow_up_at.preset=custom&last_follow_up_at.from=2026-11-12&last_follow_up_at.to=2026-11-16",
            "/app/lead?last_follow_up_at=gte.2026-11-12&last_follow_up_at=lt.2026-11-17",
        )
        .await;
        let ranged = api_ids(
            &mut wang,
            "lead",
            "last_follow_up_at=gte.2026-11-12&last_follow_up_at=lt.2026-11-17",
        )
        .await;
        assert!(!ranged.is_empty() && ranged.len() < all.len(), "{ranged:?}");
        assert_eq!(row_ids(&page), ranged);
        assert_eq!(shown_count(&page), ranged.len());
        assert_eq!(
            page.attrs("input[name=\"last_follow_up_at.to\"]", "value"),
            vec!["2026-11-16"]
        );
        assert_eq!(
            page.attrs(
                "select[name=\"last_follow_up_at.preset\"] option[selected]",
                "value"
            ),
            vec!["custom"]
        );

        // Nothing matches: the page says so and offers to clear the filters.
        let page = list(&mut wang, "/app/lead?score=gt.100").await;
        assert!(row_ids(&page).is_empty());
        assert_eq!(shown_count(&page), 0);
        assert_eq!(page.texts("#empty-state a"), vec!["清除筛选"]);
    }
);

keel_testkit::db_test!(
    search_sorting_and_paging_show_the_api_rows_and_visit_every_record_once,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut wang = site.login("wang").await;
        let all = api_ids(&mut wang, "lead", "").await;

        let page = list(&mut wang, "/app/lead?q=%E7%A7%91%E6%8A%80").await;
        let searched = api_ids(&mut wang, "lead", "q=%E7%A7%91%E6%8A%80").await;
        assert!(!searched.is_empty() && searched.len() < all.len());
        assert_eq!(row_ids(&page), searched);
        assert_eq!(shown_count(&page), searched.len());
        assert_eq!(
            page.attrs("form#filters input[name=q]", "value"),
            vec!["科技"]
        );

        // Clicking a header sorts by it; clicking again reverses.
        let page = list(&mut wang, "/app/lead?status=ne.invalid").await;
        let ascending = page.attrs("th a[data-sort=score]", "href")[0].clone();
        assert_eq!(ascending, "/app/lead?status=ne.invalid&order=score");
        let page = list(&mut wang, &ascending).await;
        assert_eq!(
            row_ids(&page),
            api_ids(&mut wang, "lead", "status=ne.invalid&order=score").await
        );
        let descending = page.attrs("th a[data-sort=score]", "href")[0].clone();
        assert_eq!(descending, "/app/lead?status=ne.invalid&order=-score");
        let page = list(&mut wang, &descending).await;
        assert_eq!(
            row_ids(&page),
            api_ids(&mut wang, "lead", "status=ne.invalid&order=-score").await
        );
        assert_eq!(
            page.attrs("th a[data-sort=score]", "href")[0],
            "/app/lead?status=ne.invalid&order=score"
        );

        // Next through every page, then previous back to the first.
        let mut path = "/app/lead?limit=7".to_owned();
        let mut pages: Vec<Vec<String>> = Vec::new();
        let mut visited = Vec::new();
        for _ in 0..20 {
            let page = list(&mut wang, &path).await;
            assert_eq!(shown_count(&page), all.len());
            let ids = row_ids(&page);
            assert!(ids.len() <= 7);
            visited.extend(ids.clone());
            pages.push(ids);
            if pages.len() > 1 {
                assert_eq!(page.attrs("a[rel=prev]", "href").len(), 1);
            }
            match page.attrs("a[rel=next]", "href").first() {
                Some(next) => path = next.clone(),
                None => break,
            }
        }
        assert_eq!(visited, all, "every record once, in the list's order");
        assert!(pages.len() >= 4);
        for expected in pages.iter().rev().skip(1) {
            let page = list(&mut wang, &path).await;
            let prev = page.attrs("a[rel=prev]", "href")[0].clone();
            let previous = list(&mut wang, &prev).await;
            assert_eq!(&row_ids(&previous), expected);
            path = prev;
        }
        let first = list(&mut wang, &path).await;
        assert!(first.attrs("a[rel=prev]", "href").is_empty());
    }
);

keel_testkit::db_test!(
    a_rep_sees_only_their_own_records_and_other_peoples_masked_values_masked,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        let page = list(&mut chen, "/app/lead").await;
        let own = api_ids(&mut chen, "lead", "").await;
        assert_eq!(row_ids(&page), own);
        assert_eq!(shown_count(&page), own.len());
        let mut wang = site.login("wang").await;
        assert!(own.len() < api_ids(&mut wang, "lead", "").await.len());
        assert!(
            page.texts("table#records td[data-label=负责人]")
                .iter()
                .all(|owner| owner == "陈晨")
        );

        // liu (same department) adds a contact; chen sees its phone masked, as the API does.
        let mut liu = site.login("liu").await;
        let account = api_ids(&mut liu, "account", "").await[0].clone();
        let contact = api_create(
            &site,
            &liu,
            "contact",
            json!({"name": "钱七", "account": account, "phone": "13912345678"}),
        )
        .await;
        let id = contact["id"].as_str().unwrap();
        let page = list(&mut chen, "/app/contact").await;
        let api: Value = serde_json::from_str(
            &chen
                .get(&format!("/api/v1/records/contact/{id}"))
                .await
                .html,
        )
        .unwrap();
        let masked = api["phone"].as_str().unwrap();
        assert!(masked.contains('*') && masked != "13912345678", "{masked}");
        let cell = format!("tr[data-id=\"{id}\"] td.masked");
        assert_eq!(page.texts(&cell), vec![masked.to_owned()]);
        let page = list(&mut liu, "/app/contact").await;
        assert_eq!(
            page.texts(&format!("tr[data-id=\"{id}\"] td[data-label=电话]")),
            vec!["13912345678"]
        );
    }
);

keel_testkit::db_test!(
    an_object_the_user_may_not_read_or_that_does_not_exist_is_the_404_page,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut sun = site.login("sun").await;
        for path in [
            "/app/lead",
            "/app/lead?status=eq.new",
            "/app/no_such_object",
            "/app/lead/export?id=abc",
        ] {
            let page = sun.get(path).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
            page.assert_clean(path);
        }
        // What sun may read still lists.
        list(&mut sun, "/app/ticket").await;
        let search = list(&mut sun, "/search?q=%E7%A7%91%E6%8A%80").await;
        assert!(
            search
                .attrs("section[data-object=lead]", "data-object")
                .is_empty()
        );
    }
);

keel_testkit::db_test!(
    a_bad_filter_shows_its_problem_above_the_table_never_a_server_error,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        for (path, named) in [
            ("/app/lead?score=gt.abc", "score"),
            ("/app/lead?status=new", "status"),
            ("/app/lead?no_such_field=eq.1", "no_such_field"),
            ("/app/lead?order=no_such_field", "no_such_field"),
            ("/app/lead?after=not-a-cursor", "after"),
            ("/app/lead?limit=0", "limit"),
            ("/app/lead?created_at=gte.@yesterday", "created_at"),
        ] {
            let page = chen.get(path).await;
            assert!(page.status.is_client_error(), "{path}: {}", page.status);
            page.assert_clean(path);
            let problem = page.texts("#list-error").join(" ");
            assert!(problem.contains(named), "{path}: {problem}");
            assert_eq!(page.attrs("form#filters", "id").len(), 1, "{path}");
        }
        let page = chen.get("/app/lead?q=%00").await;
        assert!(page.status.is_client_error());
    }
);

keel_testkit::db_test!(
    an_empty_list_says_so_and_offers_to_create_the_first_record,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        let page = list(&mut chen, "/app/quote").await;
        assert!(row_ids(&page).is_empty());
        let empty = page.texts("#empty-state").join(" ");
        assert!(empty.contains("还没有报价"), "{empty}");
        assert_eq!(page.attrs("#empty-state a", "href"), vec!["/app/quote/new"]);
        // A rep may not create products: no "new" button.
        let page = list(&mut chen, "/app/product").await;
        assert!(page.attrs("a#new-record", "href").is_empty());
        assert!(!row_ids(&page).is_empty());
    }
);

keel_testkit::db_test!(
    exports_give_the_selected_records_or_every_matching_one_as_csv,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut wang = site.login("wang").await;
        let page = list(&mut wang, "/app/lead?status=eq.qualified").await;
        let ids = row_ids(&page);
        let all_matching = page.attrs("a#export-all", "href")[0].clone();
        assert_eq!(
            all_matching,
            "/api/v1/records/lead/export?format=csv&status=eq.qualified"
        );
        let csv = wang.get(&all_matching).await;
        assert_eq!(csv.status, StatusCode::OK);
        assert_eq!(csv.html.lines().count(), ids.len() + 1, "{}", csv.html);

        let selected = format!("/app/lead/export?id={}&id={}", ids[0], ids[1]);
        let redirect = wang.get(&selected).await;
        assert_eq!(redirect.status, StatusCode::SEE_OTHER);
        let location = redirect.location.unwrap();
        assert_eq!(
            location,
            format!(
                "/api/v1/records/lead/export?format=csv&id=in.({},{})",
                ids[0], ids[1]
            )
        );
        let csv = wang.get(&location).await;
        assert_eq!(csv.html.lines().count(), 3, "{}", csv.html);
        assert!(csv.html.contains(&ids[0]) && csv.html.contains(&ids[1]));

        // A searched list exports what it shows.
        let page = list(&mut wang, "/app/lead?q=%E7%A7%91%E6%8A%80").await;
        let csv = wang.get(&page.attrs("a#export-all", "href")[0]).await;
        assert_eq!(csv.status, StatusCode::OK, "{}", csv.html);
        assert_eq!(csv.html.lines().count(), row_ids(&page).len() + 1);
    }
);

keel_testkit::db_test!(
    search_finds_up_to_five_records_per_object_with_a_link_to_the_whole_list,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut wang = site.login("wang").await;
        let page = list(&mut wang, "/search?q=%E7%A7%91%E6%8A%80").await;
        let objects: HashSet<String> = page
            .attrs("section.search-group", "data-object")
            .into_iter()
            .collect();
        assert!(
            objects.contains("lead") && objects.contains("account"),
            "{objects:?}"
        );
        let leads = page.attrs("section[data-object=lead] li a", "href");
        let matching = api_ids(&mut wang, "lead", "q=%E7%A7%91%E6%8A%80").await;
        assert_eq!(leads.len(), matching.len().min(5));
        for (href, id) in leads.iter().zip(&matching) {
            assert_eq!(href, &format!("/app/lead/{id}"));
        }
        assert_eq!(
            page.attrs("section[data-object=lead] a.see-all", "href"),
            vec!["/app/lead?q=%E7%A7%91%E6%8A%80"]
        );
        let nothing = list(&mut wang, "/search?q=zzzz-no-such-thing").await;
        assert!(
            nothing
                .attrs("section.search-group", "data-object")
                .is_empty()
        );
        list(&mut wang, "/search").await;
    }
);

/// Every list page the navigation offers `session`, each clean and answering 200 (the
/// pools' pages, also under `/app/`, are tested in `pages::pools`; the approvals, calendar
/// and report pages in `pages::process`).
async fn every_list_renders(session: &mut Session, who: &str) -> usize {
    let home = session.get("/").await;
    let lists: Vec<String> = home
        .attrs("nav.sidenav a[href^=\"/app/\"]", "href")
        .into_iter()
        .filter(|href| !href.starts_with("/app/pools/"))
        .filter(|href| {
            !matches!(
                href.as_str(),
                "/app/approvals" | "/app/calendar" | "/app/reports/funnel"
            )
        })
        .collect();
    assert!(!lists.is_empty(), "{who} has lists in the navigation");
    for path in &lists {
        let page = list(session, path).await;
        assert_eq!(
            page.attrs("table#records, #empty-state", "id").len(),
            1,
            "{who} {path}"
        );
        assert_eq!(page.attrs("#results", "hx-push-url"), vec!["true"]);
        assert_eq!(page.attrs("form#filters", "hx-get").len(), 1);
    }
    lists.len()
}

keel_testkit::db_test!(
    every_list_of_the_standard_app_renders_for_an_admin_and_a_rep,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut admin = site.login("admin").await;
        let all = every_list_renders(&mut admin, "admin").await;
        let mut chen = site.login("chen").await;
        assert!(every_list_renders(&mut chen, "chen").await <= all);
        // A filter no control offers is kept, in words, and still gives the API's rows.
        let mut wang = site.login("wang").await;
        let page = list(&mut wang, "/app/lead?status=in.(new,contacted)").await;
        assert_eq!(
            page.texts("select[name=status] option[selected]"),
            vec!["新建, 已联系"]
        );
        assert_eq!(
            row_ids(&page),
            api_ids(&mut wang, "lead", "status=in.(new,contacted)").await
        );
    }
);

keel_testkit::db_test!(
    every_list_of_every_template_renders_for_its_admin,
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
            let site = Site::app(
                crate::support::AppDir::copy_of(
                    &crate::support::repository_root().join(format!("templates/{name}")),
                ),
                &db.url,
            );
            let mut admin = site.login("admin").await;
            every_list_renders(&mut admin, &format!("the {name} admin")).await;
        }
    }
);

keel_testkit::db_test!(
    a_lookup_filter_names_its_record_whether_or_not_anything_matches,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut wang = site.login("wang").await;
        let accounts: Value =
            serde_json::from_str(&wang.get("/api/v1/records/account?limit=2").await.html).unwrap();
        let account = &accounts["data"][0];
        let (id, name) = (
            account["id"].as_str().unwrap(),
            account["name"].as_str().unwrap(),
        );
        let path = format!("/app/contact?account=eq.{id}");
        let page = list(&mut wang, &path).await;
        assert_eq!(shown_count(&page), 0);
        assert_eq!(
            page.texts("select[name=account] option[selected]"),
            vec![name]
        );
        assert_eq!(
            page.attrs("select[name=account]", "data-search"),
            vec!["/api/v1/records/account"]
        );
        let contact = api_create(
            &site,
            &wang,
            "contact",
            json!({"name": "孙八", "account": id}),
        )
        .await;
        api_create(
            &site,
            &wang,
            "contact",
            json!({"name": "周九", "account": accounts["data"][1]["id"]}),
        )
        .await;
        let page = list(&mut wang, &path).await;
        assert_eq!(row_ids(&page), vec![contact["id"].as_str().unwrap()]);
        assert_eq!(shown_count(&page), 1);
        assert_eq!(
            page.texts("select[name=account] option[selected]"),
            vec![name]
        );
        assert_eq!(
            row_ids(&page),
            api_ids(&mut wang, "contact", &format!("account=eq.{id}")).await
        );
    }
);
