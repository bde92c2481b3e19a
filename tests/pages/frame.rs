//! The frame: sign-in, the home page, error pages, CSRF, security headers, static assets.

use reqwest::StatusCode;

use crate::pages::Site;

keel_testkit::db_test!(
    signing_in_shows_errors_keeps_the_username_and_lands_on_the_home_page,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut visitor = site.anonymous();
        let home = visitor.get("/").await;
        assert_eq!(home.status, StatusCode::SEE_OTHER);
        assert_eq!(home.location.as_deref(), Some("/login?next=/"));

        let form = visitor.get("/login?next=/").await;
        assert_eq!(form.status, StatusCode::OK);
        form.assert_clean("sign-in page");
        let wrong = visitor
            .post_plain(
                "/login",
                &[("username", "chen"), ("password", "nope"), ("next", "/")],
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        wrong.assert_clean("sign-in page with an error");
        assert_eq!(wrong.texts("#login-error"), vec!["用户名或密码错误。"]);
        assert_eq!(wrong.attrs("input[name=username]", "value"), vec!["chen"]);

        let mut chen = site.login("chen").await;
        let home = chen.get("/").await;
        assert_eq!(home.status, StatusCode::OK);
        home.assert_clean("home page");
        assert!(home.texts("h1")[0].contains("陈"), "{}", home.html);
        let csp = reqwest::Client::new()
            .get(format!("{}/login", site.base_url()))
            .send()
            .await
            .unwrap();
        let policy = csp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
            "{policy}"
        );
    }
);

keel_testkit::db_test!(
    a_form_without_the_sessions_csrf_token_or_from_another_site_changes_nothing,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        chen.get("/").await;
        let forged = chen.post_plain("/logout", &[]).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        forged.assert_clean("stale form page");
        // Still signed in: the forged sign-out did nothing.
        assert_eq!(chen.get("/").await.status, StatusCode::OK);
        let cross_site = reqwest::Client::new()
            .post(format!("{}/logout", site.base_url()))
            .header("sec-fetch-site", "cross-site")
            .header("cookie", format!("keel_session={}", chen.token().unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
        let signed_out = chen.post("/logout", &[]).await;
        assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
        assert_eq!(chen.get("/").await.status, StatusCode::SEE_OTHER);
    }
);

keel_testkit::db_test!(
    pages_speak_the_users_language_then_the_browsers_and_unknown_pages_are_404_pages,
    |db| async move {
        let site = Site::standard(&db.url);
        // chen's own setting (zh, in seed/users.csv) wins over the browser's English.
        let mut chen = site
            .login_with("chen", crate::pages::DEMO_PASSWORD, Some("en-US,en;q=0.9"))
            .await;
        assert!(chen.get("/").await.texts("h1")[0].starts_with("你好"));
        // The admin has no setting: the browser's language decides, else the app's (zh).
        let mut english = site
            .login_with(
                "admin",
                crate::pages::ADMIN_PASSWORD,
                Some("en-US,en;q=0.9"),
            )
            .await;
        let home = english.get("/").await;
        assert!(home.texts("h1")[0].starts_with("Hello"), "{}", home.html);
        let mut no_header = site.login("admin").await;
        assert!(no_header.get("/").await.texts("h1")[0].starts_with("你好"));
        let missing = english.get("/no/such/page").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        missing.assert_clean("404 page");
        assert_eq!(missing.texts("h1"), vec!["Page not found"]);
        let api = english.get("/api/v1/no/such/route").await;
        assert!(api.html.contains("route_not_found"), "{}", api.html);
    }
);

keel_testkit::db_test!(
    static_assets_are_served_at_hashed_urls_with_a_long_cache,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut visitor = site.anonymous();
        let page = visitor.get("/login").await;
        let styles = page.attrs("link[rel=stylesheet]", "href");
        assert_eq!(styles.len(), 1);
        let response = reqwest::get(format!("{}{}", site.base_url(), styles[0]))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/css")
        );
        let stale = styles[0]
            .replace(".css", "")
            .rsplit_once('.')
            .map(|(stem, _)| format!("{stem}.0000000000.css"))
            .unwrap();
        assert_eq!(
            reqwest::get(format!("{}{stale}", site.base_url()))
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );
    }
);
