//! The admin console and the account page over real HTTP: who may open them, the user and
//! department forms (errors next to their fields, the input kept), deactivation and password
//! resets, the permission matrix, the access explanation, the audit, the outbox's retry, and
//! a user's own language and password.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::pages::{ADMIN_PASSWORD, DEMO_PASSWORD, Page, Session, Site};
use crate::support::{AppDir, send_json};

/// Every page of the console that a GET opens.
const CONSOLE_PAGES: &[&str] = &[
    "/admin",
    "/admin/users",
    "/admin/users/new",
    "/admin/users/chen",
    "/admin/departments",
    "/admin/roles",
    "/admin/access",
    "/admin/access?user=chen&object=lead",
    "/admin/audit",
    "/admin/objects",
    "/admin/objects/lead",
    "/admin/outbox",
    "/admin/outbox?state=done",
];

/// `GET path` of the API as `session`'s user → (status, JSON body).
async fn api(site: &Site, session: &Session, path: &str) -> (StatusCode, Value) {
    send_json(
        reqwest::Client::new()
            .get(format!("{}{path}", site.base_url()))
            .bearer_auth(session.token().unwrap()),
    )
    .await
}

fn one(page: &Page, selector: &str, attribute: &str) -> String {
    let values = page.attrs(selector, attribute);
    assert_eq!(
        values.len(),
        1,
        "{selector} [{attribute}]: {values:?}\n{}",
        page.html
    );
    values[0].clone()
}

keel_testkit::db_test!(
    a_sales_rep_gets_the_not_found_page_on_every_console_page,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        for path in CONSOLE_PAGES {
            let page = chen.get(path).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.html);
            page.assert_clean(path);
            assert!(page.attrs("#users", "id").is_empty(), "{path}");
        }
        chen.get("/").await;
        let posted = chen
            .post(
                "/admin/users/new",
                &[
                    ("username", "sneaky"),
                    ("password", "sneaky-pass-1"),
                    ("roles", "admin"),
                ],
            )
            .await;
        assert_eq!(posted.status, StatusCode::NOT_FOUND);
        let mut admin = site.login("admin").await;
        let users = admin.get("/admin/users").await;
        assert!(
            users
                .attrs("tr[data-username=sneaky]", "data-username")
                .is_empty(),
            "a rep's form created nobody"
        );
        // The account page is every user's.
        let account = chen.get("/account").await;
        assert_eq!(account.status, StatusCode::OK);
        account.assert_clean("account page");
        assert_eq!(account.texts("#account-username"), vec!["chen"]);
    }
);

keel_testkit::db_test!(
    every_console_page_renders_clean_for_the_admin_in_chinese_and_english,
    |db| async move {
        let site = Site::standard(&db.url);
        for language in ["zh-CN", "en"] {
            let mut admin = site
                .login_with("admin", ADMIN_PASSWORD, Some(language))
                .await;
            let mut pages: Vec<String> = CONSOLE_PAGES.iter().map(|p| (*p).to_owned()).collect();
            let objects = admin.get("/admin/objects").await;
            let links = objects.attrs("#objects a", "href");
            assert!(links.len() >= 10, "{links:?}");
            pages.extend(links);
            pages.push("/account".to_owned());
            for path in &pages {
                let page = admin.get(path).await;
                assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.html);
                page.assert_clean(&format!("{path} in {language}"));
                let lang = one(&page, "html", "lang");
                assert_eq!(lang, &language[..2], "{path}");
            }
            let index = admin.get("/admin").await;
            let cards = index.attrs(".admin-card", "href");
            for area in [
                "/admin/users",
                "/admin/roles",
                "/admin/access",
                "/admin/outbox",
            ] {
                assert!(cards.iter().any(|card| card == area), "{cards:?}");
            }
            let unknown = admin.get("/admin/objects/nope").await;
            assert_eq!(unknown.status, StatusCode::NOT_FOUND);
            unknown.assert_clean("an unknown object");
        }
    }
);

keel_testkit::db_test!(
    an_admin_creates_a_user_who_signs_in_and_sees_what_the_role_allows,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut admin = site.login("admin").await;
        let form = admin.get("/admin/users/new").await;
        assert_eq!(form.status, StatusCode::OK);
        for field in [
            "username",
            "display_name",
            "password",
            "roles",
            "manager",
            "department",
            "language",
            "email",
        ] {
            assert_eq!(
                form.attrs(&format!("form#user-form [name={field}]"), "name")
                    .len(),
                1,
                "{field}"
            );
        }
        assert_eq!(one(&form, "#field-roles", "multiple"), "");
        let created = admin
            .post(
                "/admin/users/new",
                &[
                    ("username", "ma"),
                    ("display_name", "马超"),
                    ("password", "ma-password-1"),
                    ("roles", "sales_rep"),
                    ("manager", "li"),
                    ("department", "east"),
                    ("language", "en"),
                    ("email", "ma@example.com"),
                ],
            )
            .await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
        assert_eq!(
            created.location.as_deref(),
            Some("/admin/users/ma?done=created")
        );
        let edit = admin.get("/admin/users/ma?done=created").await;
        edit.assert_clean("the new user's page");
        assert_eq!(edit.texts("#done").len(), 1);
        assert_eq!(one(&edit, "#field-manager option[selected]", "value"), "li");
        assert_eq!(
            one(&edit, "#field-department option[selected]", "value"),
            "east"
        );
        assert_eq!(
            one(&edit, "#field-roles option[selected]", "value"),
            "sales_rep"
        );
        let users = admin.get("/admin/users").await;
        let row = users.texts("#users tr[data-username=ma]");
        assert_eq!(row.len(), 1, "{}", users.html);
        for part in ["马超", "销售代表", "li", "east", "ma@example.com"] {
            assert!(row[0].contains(part), "{part} in {row:?}");
        }

        let mut ma = site.login_with("ma", "ma-password-1", None).await;
        let home = ma.get("/").await;
        assert_eq!(home.status, StatusCode::OK);
        assert_eq!(one(&home, "html", "lang"), "en", "the user's own language");
        let nav = home.attrs(".sidenav a", "href");
        assert!(nav.iter().any(|href| href == "/app/lead"), "{nav:?}");
        assert!(!nav.iter().any(|href| href == "/admin"), "{nav:?}");
        let (status, leads) = api(&site, &ma, "/api/v1/records/lead").await;
        assert_eq!(status, StatusCode::OK, "{leads}");
        assert_eq!(
            leads["data"],
            serde_json::json!([]),
            "a new rep owns no lead"
        );
        let (status, products) = api(&site, &ma, "/api/v1/records/product").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            !products["data"].as_array().unwrap().is_empty(),
            "reps read every product"
        );
        let (status, _) = api(&site, &ma, "/api/v1/admin/users").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let console = ma.get("/admin").await;
        assert_eq!(console.status, StatusCode::NOT_FOUND);
    }
);

keel_testkit::db_test!(
    a_bad_or_taken_username_and_a_short_password_show_next_to_their_fields_with_the_input_kept,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut admin = site.login("admin").await;
        admin.get("/admin/users/new").await;
        let fields = |username: &'static str, password: &'static str| {
            vec![
                ("username", username),
                ("display_name", "新同事"),
                ("password", password),
                ("roles", "sales_rep"),
                ("roles", "service_agent"),
                ("manager", "zhao"),
                ("department", "south"),
                ("email", "new@example.com"),
            ]
        };
        for (username, password, field) in [
            ("Bad Name", "long-enough-1", "username"),
            ("chen", "long-enough-1", "username"),
            ("newbie", "short", "password"),
        ] {
            let page = admin
                .post("/admin/users/new", &fields(username, password))
                .await;
            assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{username}");
            page.assert_clean("the user form with an error");
            assert_eq!(
                page.texts(&format!("#error-{field}")).len(),
                1,
                "{}",
                page.html
            );
            assert_eq!(page.texts("#form-errors").len(), 1);
            assert_eq!(one(&page, "#field-username", "value"), username);
            assert_eq!(one(&page, "#field-display_name", "value"), "新同事");
            assert_eq!(one(&page, "#field-email", "value"), "new@example.com");
            assert_eq!(
                page.attrs("#field-roles option[selected]", "value"),
                vec!["sales_rep", "service_agent"]
            );
            assert_eq!(
                one(&page, "#field-manager option[selected]", "value"),
                "zhao"
            );
        }
        let taken = admin
            .post("/admin/users/new", &fields("chen", "long-enough-1"))
            .await;
        assert!(taken.texts("#error-username")[0].contains("chen"));

        // Departments: a bad name is shown next to it; a good one is added under its parent.
        admin.get("/admin/departments").await;
        let bad = admin
            .post(
                "/admin/departments",
                &[
                    ("name", "North Sales"),
                    ("label", "北区"),
                    ("parent", "east"),
                ],
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        bad.assert_clean("the department form with an error");
        assert_eq!(bad.texts("#error-name").len(), 1);
        assert_eq!(one(&bad, "#field-label", "value"), "北区");
        let added = admin
            .post(
                "/admin/departments",
                &[("name", "north"), ("label", "北区"), ("parent", "east")],
            )
            .await;
        assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);
        let list = admin.get("/admin/departments").await;
        let row = list.texts("#departments tr[data-name=north]");
        assert!(
            row[0].contains("北区") && row[0].contains("east"),
            "{row:?}"
        );
    }
);

keel_testkit::db_test!(
    a_deactivated_user_cannot_sign_in_and_a_reset_password_replaces_the_old_one,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut admin = site.login("admin").await;
        let mut liu = site.login("liu").await;
        admin.get("/admin/users/liu").await;
        let off = admin
            .post("/admin/users/liu/active", &[("active", "false")])
            .await;
        assert_eq!(off.status, StatusCode::SEE_OTHER, "{}", off.html);
        let page = admin.get("/admin/users/liu").await;
        assert_eq!(page.texts("#inactive").len(), 1);
        assert_eq!(page.texts("#reactivate").len(), 1);
        let ended = liu.get("/").await;
        assert_eq!(ended.status, StatusCode::SEE_OTHER, "liu's session ended");
        let mut visitor = site.anonymous();
        let refused = visitor
            .post_plain(
                "/login",
                &[
                    ("username", "liu"),
                    ("password", DEMO_PASSWORD),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        // Deactivating oneself is refused next to the form, not a crash.
        admin.get("/admin/users/admin").await;
        let own = admin
            .post("/admin/users/admin/active", &[("active", "false")])
            .await;
        assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY);
        own.assert_clean("deactivating oneself");

        admin.get("/admin/users/liu").await;
        let on = admin
            .post("/admin/users/liu/active", &[("active", "true")])
            .await;
        assert_eq!(on.status, StatusCode::SEE_OTHER);
        admin.get("/admin/users/liu").await;
        let short = admin
            .post("/admin/users/liu/password", &[("password", "short")])
            .await;
        assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(short.texts("#error-password").len(), 1);
        let reset = admin
            .post(
                "/admin/users/liu/password",
                &[("password", "liu-new-pass-1")],
            )
            .await;
        assert_eq!(reset.status, StatusCode::SEE_OTHER);
        site.login_with("liu", "liu-new-pass-1", None).await;
        let old = visitor
            .post_plain(
                "/login",
                &[
                    ("username", "liu"),
                    ("password", DEMO_PASSWORD),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(old.status, StatusCode::UNAUTHORIZED);

        // The access log has the changes, newest first.
        let audit = admin.get("/admin/audit").await;
        audit.assert_clean("access log");
        let rows = audit.texts("#audit tr.access-change");
        assert!(rows.len() >= 3, "{rows:?}");
        assert!(
            rows[0].contains("liu") && rows[0].contains("admin"),
            "{rows:?}"
        );
    }
);

keel_testkit::db_test!(
    the_permission_matrix_and_the_access_explanation_show_the_standard_apps_grants,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut admin = site.login("admin").await;
        let roles = admin.get("/admin/roles").await;
        roles.assert_clean("roles");
        let cell = |role: &str, object: &str, action: &str| {
            one(
                &roles,
                &format!(
                    "table.matrix[data-role={role}] tr[data-object={object}] td[data-action={action}]"
                ),
                "data-scope",
            )
        };
        assert_eq!(cell("sales_rep", "lead", "read"), "own");
        assert_eq!(cell("sales_rep", "lead", "delete"), "none");
        assert_eq!(cell("sales_rep", "product", "create"), "no");
        assert_eq!(cell("sales_manager", "lead", "read"), "subordinates");
        assert_eq!(cell("sales_manager", "account", "read"), "department");
        assert_eq!(cell("sales_director", "lead", "unmask"), "yes");
        assert_eq!(cell("service_agent", "lead", "read"), "none");
        let rules =
            roles.texts("section[data-role=sales_rep] .field-rules li[data-object=opportunity]");
        assert_eq!(rules.len(), 1, "{}", roles.html);
        assert!(
            rules[0].contains("discount") && rules[0].contains("cost"),
            "{rules:?}"
        );

        // chen's lead: chen reads it (own), li reads it (chen's manager), liu does not.
        let chen = site.login("chen").await;
        let (status, leads) = api(&site, &chen, "/api/v1/records/lead?limit=1").await;
        assert_eq!(status, StatusCode::OK);
        let id = leads["data"][0]["id"].as_str().unwrap().to_owned();
        let allowed = |page: &Page, action: &str| {
            one(
                page,
                &format!("#explanation li[data-action={action}]"),
                "data-allowed",
            )
        };
        for (user, read) in [("chen", "yes"), ("li", "yes"), ("liu", "no")] {
            let page = admin
                .get(&format!("/admin/access?user={user}&object=lead&id={id}"))
                .await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.html);
            page.assert_clean("access explanation");
            assert_eq!(allowed(&page, "read"), read, "{user}");
            assert_eq!(page.texts("#record-owner"), vec!["陈晨"]);
            let why = page.texts("#explanation li[data-action=read] .why");
            assert!(!why[0].is_empty());
            if read == "no" {
                assert_eq!(allowed(&page, "edit"), "no");
                assert!(
                    why[0].contains("销售代表"),
                    "names the role that does not reach: {why:?}"
                );
            }
        }
        let nobody = admin.get("/admin/access?user=nobody&object=lead").await;
        assert_eq!(nobody.status, StatusCode::NOT_FOUND);
        nobody.assert_clean("an unknown user");
        assert_eq!(nobody.texts("#access-error").len(), 1);
        let no_record = admin
            .get("/admin/access?user=liu&object=lead&id=not-an-id")
            .await;
        assert_eq!(no_record.status, StatusCode::NOT_FOUND);
        assert_eq!(no_record.texts("#access-error").len(), 1);
    }
);

keel_testkit::db_test!(
    the_outbox_page_shows_a_dead_delivery_and_retries_it,
    |db| async move {
        let app = AppDir::new(&[
            (
                "metadata/app.yaml",
                "name: { en: Outbox test, zh: 发件箱测试 }\nlanguage: en\n",
            ),
            ("metadata/roles.yaml", "roles:\n  admin: { admin: true }\n"),
            (
                "metadata/objects/deal.yaml",
                "name: deal\ntitle: name\nfields:\n  name: { type: text, required: true }\n",
            ),
            (
                "workflows/rules/down.yaml",
                "name: down\nobject: deal\non: [create]\n\
                 action: { webhook: { url_env: KEEL_TEST_UNSET_WEBHOOK_URL } }\n",
            ),
        ]);
        let site = Site::app(app, &db.url);
        let mut admin = site.login("admin").await;
        let (status, body) = send_json(
            reqwest::Client::new()
                .post(format!("{}/api/v1/records/deal", site.base_url()))
                .bearer_auth(admin.token().unwrap())
                .json(&serde_json::json!({ "name": "one" })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        // The webhook's URL variable is not set: the delivery fails for good at once.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut page = admin.get("/admin/outbox?state=dead").await;
        while page
            .attrs("#outbox tr[data-kind=webhook]", "data-id")
            .is_empty()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            page = admin.get("/admin/outbox?state=dead").await;
        }
        page.assert_clean("the outbox");
        let id = one(&page, "#outbox tr[data-kind=webhook]", "data-id");
        let error = page.texts(&format!("#outbox tr[data-id=\"{id}\"] .last-error"));
        assert!(
            error[0].contains("KEEL_TEST_UNSET_WEBHOOK_URL"),
            "{error:?}"
        );
        let runs = page.texts("#rule-runs tr[data-rule=down]");
        assert_eq!(runs.len(), 1, "the rule's run is listed: {}", page.html);
        let retried = admin.post(&format!("/admin/outbox/{id}/retry"), &[]).await;
        assert_eq!(retried.status, StatusCode::SEE_OTHER, "{}", retried.html);
        assert_eq!(
            retried.location.as_deref(),
            Some("/admin/outbox?state=dead&done=retried")
        );
        let after = admin.get("/admin/outbox?state=dead&done=retried").await;
        after.assert_clean("the outbox after a retry");
        assert_eq!(after.texts("#done").len(), 1);
        let missing = admin.post("/admin/outbox/no-such-row/retry", &[]).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        missing.assert_clean("retrying a row that is not dead");
    }
);

keel_testkit::db_test!(
    a_user_changes_their_own_language_and_password_on_the_account_page,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        let mut other = site.login("chen").await;
        let page = chen.get("/account").await;
        assert_eq!(one(&page, "html", "lang"), "zh");
        assert_eq!(page.texts("#account-email"), vec!["chen@example.com"]);
        assert_eq!(page.texts("#account-roles"), vec!["销售代表"]);
        let saved = chen.post("/account/language", &[("language", "en")]).await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER);
        let page = chen.get("/account?done=language").await;
        page.assert_clean("account page in English");
        assert_eq!(one(&page, "html", "lang"), "en");
        assert_eq!(page.texts("#account-roles"), vec!["Sales representative"]);
        assert_eq!(
            one(&page, "#field-language option[selected]", "value"),
            "en"
        );
        // Browser default: back to the Accept-Language of the request.
        chen.post("/account/language", &[("language", "")]).await;
        chen.language = Some("en-US".to_owned());
        let page = chen.get("/account").await;
        assert_eq!(one(&page, "html", "lang"), "en");
        assert_eq!(one(&page, "#field-language option[selected]", "value"), "");
        chen.language = None;

        let wrong = chen
            .post(
                "/account/password",
                &[
                    ("current", "not-it"),
                    ("password", "chen-new-pass"),
                    ("confirm", "chen-new-pass"),
                ],
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
        wrong.assert_clean("a wrong current password");
        assert_eq!(wrong.texts("#error-current").len(), 1);
        let differ = chen
            .post(
                "/account/password",
                &[
                    ("current", DEMO_PASSWORD),
                    ("password", "chen-new-pass"),
                    ("confirm", "chen-other"),
                ],
            )
            .await;
        assert_eq!(differ.texts("#error-confirm").len(), 1);
        let short = chen
            .post(
                "/account/password",
                &[
                    ("current", DEMO_PASSWORD),
                    ("password", "short"),
                    ("confirm", "short"),
                ],
            )
            .await;
        assert_eq!(short.texts("#error-password").len(), 1);
        let changed = chen
            .post(
                "/account/password",
                &[
                    ("current", DEMO_PASSWORD),
                    ("password", "chen-new-pass"),
                    ("confirm", "chen-new-pass"),
                ],
            )
            .await;
        assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.html);
        let still = chen.get("/account?done=password").await;
        assert_eq!(still.status, StatusCode::OK, "this browser stays signed in");
        assert_eq!(still.texts("#done").len(), 1);
        let ended = other.get("/").await;
        assert_eq!(
            ended.status,
            StatusCode::SEE_OTHER,
            "the other session ended"
        );
        site.login_with("chen", "chen-new-pass", None).await;
        let old = site
            .anonymous()
            .post_plain(
                "/login",
                &[
                    ("username", "chen"),
                    ("password", DEMO_PASSWORD),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    }
);

keel_testkit::db_test!(
    in_a_browser_an_admin_creates_a_user_who_signs_in_and_every_console_page_fits_a_phone,
    |db| async move {
        let Some(chrome) = crate::pages::browser::Chrome::start(db.backend).await else {
            return;
        };
        let site = Site::standard(&db.url);
        let browser = chrome.browser(site.base_url(), "en-US").await;
        browser.sign_in_home("admin").await;
        browser.open("/admin/users").await;
        browser.click("a#new-user").await;
        browser.wait_for("form#user-form").await;
        browser.fill("#field-username", "qian").await;
        browser.fill("#field-display_name", "钱多多").await;
        browser.fill("#field-password", "qian-password-1").await;
        browser.choose("#field-roles", "sales_rep").await;
        browser.choose("#field-manager", "li").await;
        browser.choose("#field-department", "east").await;
        browser.fill("#field-email", "qian@example.com").await;
        browser.click("button#save").await;
        browser.wait_for("#done").await;
        assert_eq!(browser.path().await, "/admin/users/qian?done=created");

        let token = crate::pages::browser::api_token(&site, "chen").await;
        let chen_lead = send_json(
            reqwest::Client::new()
                .get(format!("{}/api/v1/records/lead?limit=1", site.base_url()))
                .bearer_auth(&token),
        )
        .await
        .1["data"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let access = format!("/admin/access?user=liu&object=lead&id={chen_lead}");
        for (name, path, ready) in [
            ("index", "/admin", ".admin-card"),
            ("users", "/admin/users", "#users"),
            ("user-new", "/admin/users/new", "form#user-form"),
            ("user-edit", "/admin/users/qian", "#password-form"),
            ("departments", "/admin/departments", "#departments"),
            ("roles", "/admin/roles", "table.matrix"),
            ("access", access.as_str(), "#explanation"),
            ("audit", "/admin/audit", "#audit"),
            ("objects", "/admin/objects", "#objects"),
            ("object", "/admin/objects/opportunity", "#fields"),
            ("outbox", "/admin/outbox?state=done", "#rule-runs"),
            ("account", "/account", "#password-form"),
        ] {
            browser.open(path).await;
            browser.wait_for(ready).await;
            browser.screenshots(&format!("en-admin-{name}")).await;
        }

        browser.forget().await;
        browser.sign_in("qian", "qian-password-1").await;
        browser.wait_for("#notification-list").await;
        assert!(
            browser.has("a[href='/app/lead']").await,
            "a rep reads leads"
        );
        assert!(!browser.has("a[href='/admin']").await, "and has no console");
        browser.open("/admin/users").await;
        assert_eq!(browser.text(".status-code").await, "404");
    }
);
