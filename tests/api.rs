//! The HTTP API as a client sees it: the full router on a loopback port over a migrated
//! fixture app, real HTTP with `reqwest`, on SQLite and on PostgreSQL. Time is a
//! `ManualClock`, so session expiry and the sign-in rate limit are tested without waiting.

use std::sync::Arc;

use keel_runtime::auth::{LOGIN_ATTEMPT_WINDOW, SESSION_CACHE_TTL, SESSION_LIFETIME};
use keel_runtime::clock::{Clock as _, ManualClock, SystemClock};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::AppDir;

const APP: &str = "name: { en: API test, zh: 接口测试 }\nlanguage: en\ntimezone: Asia/Shanghai\n";

const ROLES: &str = "\
roles:
  admin: { admin: true }
  sales_rep: { label: { en: Sales rep } }
permissions:
  sales_rep:
    lead: { read: own, create: true, edit: own, delete: own, fields: { secret: hidden } }
";

const LEAD: &str = "\
name: lead
label: { en: Lead, zh: 线索 }
title: name
search: [name, company]
fields:
  name: { type: text, required: true, max_length: 100, label: { en: Name, zh: 姓名 } }
  company: { type: text }
  phone: { type: phone, unique: true }
  status:
    type: choice
    default: new
    options:
      - { key: new, label: { en: New, zh: 新建 } }
      - { key: contacted, label: { en: Contacted } }
      - { key: qualified, label: { en: Qualified } }
  score: { type: integer, min: 0, max: 100, default: 0 }
  amount: { type: money }
  secret: { type: text }
duplicates:
  - { fields: [company, name], action: warn }
layout:
  - section: { en: Basic }
    fields: [name, company, phone, secret]
list: { columns: [name, company, status, score, secret], order: -created_at }
";

const ADMIN_PASSWORD: &str = "admin-password";
const REP_PASSWORD: &str = "rep-password";

/// A running API over its own database and app directory.
struct TestApp {
    address: std::net::SocketAddr,
    base_url: String,
    client: reqwest::Client,
    clock: ManualClock,
    _app: AppDir,
}

/// Loads and migrates the fixture app on `db_url`, adds `admin`, `rep` and `rep2`, and
/// serves the router on a free loopback port.
async fn spawn_app(db_url: &str) -> TestApp {
    let app = AppDir::new(&[
        ("metadata/app.yaml", APP),
        ("metadata/roles.yaml", ROLES),
        ("metadata/objects/lead.yaml", LEAD),
    ]);
    let schema = Arc::new(
        keel_meta::load_app(app.path()).unwrap_or_else(|errors| panic!("fixture app:\n{errors}")),
    );
    let db = keel_store::Db::connect(db_url).await.unwrap();
    keel_store::migrate::apply(&db, &schema, false)
        .await
        .unwrap();
    crate::support::add_users(
        &db,
        &schema,
        &[
            ("admin", ADMIN_PASSWORD, "admin"),
            ("rep", REP_PASSWORD, "sales_rep"),
            ("rep2", REP_PASSWORD, "sales_rep"),
        ],
    )
    .await;
    let clock = ManualClock::new(SystemClock.now());
    let state = keel_web::AppState::with_clock(schema, db, Arc::new(clock.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(keel_web::serve_until(
        listener,
        state,
        std::future::pending(),
    ));
    TestApp {
        address,
        base_url: format!("http://{address}"),
        client: reqwest::Client::new(),
        clock,
        _app: app,
    }
}

impl TestApp {
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}/api/v1{path}", self.base_url))
    }

    fn as_user(&self, token: &str, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(token)
    }

    async fn login(&self, username: &str, password: &str) -> Response {
        self.request(Method::POST, "/auth/login")
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap()
    }

    /// Signs in and returns the token.
    async fn token(&self, username: &str, password: &str) -> String {
        let response = self.login(username, password).await;
        assert_eq!(response.status(), StatusCode::OK, "login as {username}");
        let body: Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// Sends `request` as written over a fresh connection and reads the answer until the
    /// server closes it: (status, head, JSON body).
    async fn raw_request(&self, request: &str) -> (u16, String, Value) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(self.address).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.unwrap();
            answer
        };
        // A guard against a hang, not a timing assertion.
        let answer = tokio::time::timeout(std::time::Duration::from_secs(60), exchange)
            .await
            .expect("the server neither answered nor closed the connection");
        let answer = String::from_utf8(answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_owned(), serde_json::from_str(body).unwrap())
    }

    async fn create_lead(&self, token: &str, lead: Value) -> Value {
        let response = self
            .as_user(token, Method::POST, "/records/lead")
            .json(&lead)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }
}

/// Asserts a problem+json answer with `status` and `type`, and returns its body.
async fn problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["type"], code, "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    assert!(body["errors"].is_array(), "{body}");
    body
}

async fn json_ok(response: Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

keel_testkit::db_test!(
    a_login_body_with_an_unknown_key_is_refused_and_names_it,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let response = app
            .request(Method::POST, "/auth/login")
            .json(&json!({ "username": "rep", "password": REP_PASSWORD, "remember": true }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: Value = response.json().await.unwrap();
        assert!(body.to_string().contains("remember"), "{body}");
    }
);

keel_testkit::db_test!(
    login_returns_a_token_and_a_cookie_and_either_one_authenticates,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let response = app.login("rep", REP_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = response
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        let token = body["token"].as_str().unwrap();
        assert_eq!(token.len(), 43, "32 random bytes, base64url");
        assert_eq!(body["user"]["username"], "rep");
        assert_eq!(body["user"]["roles"], json!(["sales_rep"]));
        assert_eq!(body["user"]["admin"], false);
        assert!(
            cookie.starts_with(&format!("keel_session={token};")),
            "{cookie}"
        );
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }

        let by_bearer = json_ok(
            app.as_user(token, Method::GET, "/auth/me")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(by_bearer["user"]["username"], "rep");
        let by_cookie = app
            .request(Method::GET, "/auth/me")
            .header("cookie", format!("theme=dark; keel_session={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(json_ok(by_cookie).await["user"]["username"], "rep");

        let anonymous = app.request(Method::GET, "/auth/me").send().await.unwrap();
        problem(anonymous, StatusCode::UNAUTHORIZED, "not_authenticated").await;
        let forged = app
            .as_user("not-a-real-token", Method::GET, "/records/lead")
            .send()
            .await
            .unwrap();
        problem(forged, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    }
);

keel_testkit::db_test!(
    wrong_passwords_unknown_users_and_inactive_users_get_the_same_401,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let wrong = problem(
            app.login("rep", "not-the-password").await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;
        let unknown = problem(
            app.login("nobody", "not-the-password").await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;
        assert_eq!(wrong, unknown);

        let admin = app.token("admin", ADMIN_PASSWORD).await;
        let rep_session = app.token("rep", REP_PASSWORD).await;
        // Used once, so this process holds the session in its cache.
        let me = app
            .as_user(&rep_session, Method::GET, "/auth/me")
            .send()
            .await
            .unwrap();
        json_ok(me).await;
        let deactivated = app
            .as_user(&admin, Method::PATCH, "/admin/users/rep")
            .json(&json!({ "active": false }))
            .send()
            .await
            .unwrap();
        assert_eq!(json_ok(deactivated).await["active"], false);
        let inactive = problem(
            app.login("rep", REP_PASSWORD).await,
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
        )
        .await;
        assert_eq!(inactive, wrong);
        let ended = app
            .as_user(&rep_session, Method::GET, "/auth/me")
            .send()
            .await
            .unwrap();
        problem(ended, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    }
);

keel_testkit::db_test!(
    a_session_ended_by_another_process_stops_working_within_the_cache_ttl,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let session = app.token("rep2", REP_PASSWORD).await;
        let me = |token: String| {
            let request = app.as_user(&token, Method::GET, "/auth/me");
            async move { request.send().await.unwrap() }
        };
        json_ok(me(session.clone()).await).await;
        // Another process signs the user out everywhere: straight in the database.
        let store = keel_store::Db::connect(&db.url).await.unwrap();
        let user = keel_store::users::find_by_username(&store, "rep2")
            .await
            .unwrap()
            .unwrap();
        keel_store::sessions::delete_for_user(&store, &user.id)
            .await
            .unwrap();
        app.clock.advance(SESSION_CACHE_TTL);
        problem(
            me(session).await,
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
        )
        .await;
        store.close().await;
    }
);

keel_testkit::db_test!(logout_ends_the_session, |db| async move {
    let app = spawn_app(&db.url).await;
    let token = app.token("rep", REP_PASSWORD).await;
    let other_session = app.token("rep", REP_PASSWORD).await;
    let response = app
        .as_user(&token, Method::POST, "/auth/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let cleared = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let after = app
        .as_user(&token, Method::GET, "/auth/me")
        .send()
        .await
        .unwrap();
    problem(after, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    // Other sessions of the same user live on.
    let other = app
        .as_user(&other_session, Method::GET, "/auth/me")
        .send()
        .await
        .unwrap();
    json_ok(other).await;
});

keel_testkit::db_test!(
    sessions_expire_after_a_lifetime_without_use_and_slide_with_use,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let used = app.token("rep", REP_PASSWORD).await;
        let idle = app.token("rep", REP_PASSWORD).await;
        let two_thirds = SESSION_LIFETIME * 2 / 3;

        app.clock.advance(two_thirds);
        json_ok(
            app.as_user(&used, Method::GET, "/auth/me")
                .send()
                .await
                .unwrap(),
        )
        .await;
        app.clock.advance(two_thirds);
        // Used 2/3 of a lifetime ago: still valid. Never used for 4/3 of one: expired.
        json_ok(
            app.as_user(&used, Method::GET, "/auth/me")
                .send()
                .await
                .unwrap(),
        )
        .await;
        let expired = app
            .as_user(&idle, Method::GET, "/auth/me")
            .send()
            .await
            .unwrap();
        problem(expired, StatusCode::UNAUTHORIZED, "not_authenticated").await;

        app.clock.advance(SESSION_LIFETIME);
        let expired = app
            .as_user(&used, Method::GET, "/auth/me")
            .send()
            .await
            .unwrap();
        problem(expired, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    }
);

keel_testkit::db_test!(
    repeated_failed_logins_are_refused_with_429_until_the_window_passes,
    |db| async move {
        let app = spawn_app(&db.url).await;
        for _ in 0..10 {
            let response = app.login("rep", "wrong-password").await;
            problem(response, StatusCode::UNAUTHORIZED, "bad_credentials").await;
        }
        for password in ["wrong-password", REP_PASSWORD] {
            let response = app.login("rep", password).await;
            let retry_after: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry_after > 0 && retry_after <= 15 * 60, "{retry_after}");
            problem(
                response,
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_login_attempts",
            )
            .await;
        }
        // Another user is not locked out by rep's failures.
        app.token("rep2", REP_PASSWORD).await;

        app.clock.advance(LOGIN_ATTEMPT_WINDOW);
        app.token("rep", REP_PASSWORD).await;
    }
);

keel_testkit::db_test!(
    every_error_is_problem_json_and_no_bad_input_is_a_server_error,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let token = app.token("admin", ADMIN_PASSWORD).await;

        let unknown_object = app
            .as_user(&token, Method::GET, "/records/nope")
            .send()
            .await
            .unwrap();
        let body = problem(unknown_object, StatusCode::NOT_FOUND, "unknown_object").await;
        assert_eq!(
            body,
            json!({
                "type": "unknown_object",
                "title": "No such object",
                "status": 404,
                "detail": "there is no object `nope`",
                "errors": [],
            })
        );

        let not_utf8 = app
            .as_user(&token, Method::GET, "/records/%FF%FE")
            .send()
            .await
            .unwrap();
        problem(not_utf8, StatusCode::BAD_REQUEST, "malformed_request").await;
        let no_route = app
            .request(Method::GET, "/no/such/route")
            .send()
            .await
            .unwrap();
        problem(no_route, StatusCode::NOT_FOUND, "route_not_found").await;
        let wrong_method = app
            .as_user(&token, Method::PUT, "/records/lead")
            .send()
            .await
            .unwrap();
        problem(
            wrong_method,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;

        let malformed = app
            .as_user(&token, Method::POST, "/records/lead")
            .header("content-type", "application/json")
            .body("{\"name\": ")
            .send()
            .await
            .unwrap();
        problem(malformed, StatusCode::BAD_REQUEST, "malformed_request").await;
        let not_an_object = app
            .as_user(&token, Method::POST, "/records/lead")
            .json(&json!([1, 2]))
            .send()
            .await
            .unwrap();
        problem(
            not_an_object,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        )
        .await;
        let not_json = app
            .as_user(&token, Method::POST, "/records/lead")
            .header("content-type", "text/plain")
            .body("name=x")
            .send()
            .await
            .unwrap();
        problem(
            not_json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
        let login_without_password = app
            .request(Method::POST, "/auth/login")
            .json(&json!({ "username": "admin" }))
            .send()
            .await
            .unwrap();
        problem(
            login_without_password,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        )
        .await;

        // Announced as too large: refused before a byte of the body is read. (Sending the
        // body as well would race the server's early answer against the client's writes.)
        let (status, head, body) = app
            .raw_request(&format!(
                "POST /api/v1/records/lead HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                keel_web::MAX_BODY_BYTES + 1
            ))
            .await;
        assert_eq!(status, 413, "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{head}"
        );
        assert_eq!(body["type"], "payload_too_large", "{body}");

        let bad_filter = app
            .as_user(&token, Method::GET, "/records/lead?score=in.5")
            .send()
            .await
            .unwrap();
        let body = problem(
            bad_filter,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "score");
        let bad_limit = app
            .as_user(&token, Method::GET, "/records/lead?limit=many")
            .send()
            .await
            .unwrap();
        problem(
            bad_limit,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        )
        .await;
        let bad_if_match = app
            .as_user(&token, Method::PATCH, "/records/lead/some-id")
            .header("if-match", "version three")
            .json(&json!({ "score": 1 }))
            .send()
            .await
            .unwrap();
        problem(
            bad_if_match,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        )
        .await;
        let too_many: Vec<Value> = (0..1_001)
            .map(|n| json!({ "name": format!("n{n}") }))
            .collect();
        let bulk = app
            .as_user(&token, Method::POST, "/records/lead/bulk")
            .json(&too_many)
            .send()
            .await
            .unwrap();
        problem(bulk, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    }
);

keel_testkit::db_test!(
    healthz_and_metrics_answer_without_signing_in,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let health = app.request(Method::GET, "/healthz").send().await.unwrap();
        assert!(health.headers().contains_key("x-request-id"));
        assert_eq!(json_ok(health).await["status"], "ok");
        let token = app.token("admin", ADMIN_PASSWORD).await;
        app.as_user(&token, Method::GET, "/records/nope")
            .send()
            .await
            .unwrap();

        let metrics = app.request(Method::GET, "/metrics").send().await.unwrap();
        assert_eq!(metrics.status(), StatusCode::OK);
        let text = metrics.text().await.unwrap();
        for expected in [
            "keel_http_requests_total{method=\"GET\",route=\"/api/v1/healthz\",status=\"200\"} 1",
            "keel_http_requests_total{method=\"POST\",route=\"/api/v1/auth/login\",status=\"200\"} 1",
            // Counted by route pattern, not by the object named in the URL.
            "keel_http_requests_total{method=\"GET\",route=\"/api/v1/records/{object}\",status=\"404\"} 1",
            "keel_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/healthz\"} 1",
            "keel_db_pool_connections{state=\"open\"}",
        ] {
            assert!(text.contains(expected), "missing {expected} in:\n{text}");
        }
    }
);

keel_testkit::db_test!(
    admins_manage_users_and_departments_and_nobody_else_may,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let admin = app.token("admin", ADMIN_PASSWORD).await;
        let rep = app.token("rep", REP_PASSWORD).await;

        for (method, path) in [
            (Method::GET, "/admin/users"),
            (Method::GET, "/admin/departments"),
        ] {
            let refused = app.as_user(&rep, method, path).send().await.unwrap();
            problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
        }
        let refused = app
            .as_user(&rep, Method::POST, "/admin/departments")
            .json(&json!({ "name": "sales" }))
            .send()
            .await
            .unwrap();
        problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
        let anonymous = app
            .request(Method::GET, "/admin/users")
            .send()
            .await
            .unwrap();
        problem(anonymous, StatusCode::UNAUTHORIZED, "not_authenticated").await;

        let create_department = |body: Value| {
            app.as_user(&admin, Method::POST, "/admin/departments")
                .json(&body)
                .send()
        };
        let sales = create_department(json!({ "name": "sales", "label": "Sales" }))
            .await
            .unwrap();
        assert_eq!(sales.status(), StatusCode::CREATED);
        let east = create_department(json!({ "name": "east", "parent": "sales" }))
            .await
            .unwrap();
        assert_eq!(east.status(), StatusCode::CREATED);
        let east: Value = east.json().await.unwrap();
        assert_eq!(east["parent"], "sales");
        let again = create_department(json!({ "name": "sales" })).await.unwrap();
        problem(again, StatusCode::CONFLICT, "department_taken").await;
        let orphan = create_department(json!({ "name": "west", "parent": "nowhere" }))
            .await
            .unwrap();
        let body = problem(orphan, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        assert_eq!(body["errors"][0]["field"], "parent");
        let departments = json_ok(
            app.as_user(&admin, Method::GET, "/admin/departments")
                .send()
                .await
                .unwrap(),
        )
        .await;
        let names: Vec<&str> = departments["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|department| department["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["east", "sales"]);

        let created = app
            .as_user(&admin, Method::POST, "/admin/users")
            .json(&json!({
                "username": "mia",
                "password": "mia-password",
                "display_name": "Mia",
                "roles": ["sales_rep"],
                "manager": "rep",
                "department": "east",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        assert_eq!(created.headers()["location"], "/api/v1/admin/users/mia");
        let mia: Value = created.json().await.unwrap();
        assert_eq!(mia["manager"], "rep");
        assert_eq!(mia["department"], "east");
        assert!(mia.get("password_hash").is_none() && mia.get("password").is_none());
        let taken = app
            .as_user(&admin, Method::POST, "/admin/users")
            .json(&json!({ "username": "mia", "password": "other-password" }))
            .send()
            .await
            .unwrap();
        problem(taken, StatusCode::CONFLICT, "username_taken").await;
        let bad_role = app
            .as_user(&admin, Method::POST, "/admin/users")
            .json(&json!({ "username": "zed", "password": "zed-password", "roles": ["king"] }))
            .send()
            .await
            .unwrap();
        problem(
            bad_role,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        )
        .await;

        let mia_session = app.token("mia", "mia-password").await;
        let patch =
            |path: &str, body: Value| app.as_user(&admin, Method::PATCH, path).json(&body).send();
        let changed = json_ok(
            patch(
                "/admin/users/mia",
                json!({ "display_name": null, "manager": null, "department": "sales", "language": "zh" }),
            )
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(changed["display_name"], Value::Null);
        assert_eq!(changed["manager"], Value::Null);
        assert_eq!(changed["department"], "sales");
        assert_eq!(changed["language"], "zh");
        assert_eq!(changed["roles"], json!(["sales_rep"]), "untouched");

        // rep → mia, so mia may not become rep's manager.
        json_ok(
            patch("/admin/users/mia", json!({ "manager": "rep" }))
                .await
                .unwrap(),
        )
        .await;
        let cycle = patch("/admin/users/rep", json!({ "manager": "mia" }))
            .await
            .unwrap();
        let body = problem(cycle, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        assert_eq!(body["errors"][0]["field"], "manager");
        let unknown = patch("/admin/users/ghost", json!({ "active": false }))
            .await
            .unwrap();
        problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
        let unknown_key = patch("/admin/users/mia", json!({ "colour": "red" }))
            .await
            .unwrap();
        problem(
            unknown_key,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        )
        .await;
        let short = patch("/admin/users/mia", json!({ "password": "short" }))
            .await
            .unwrap();
        problem(short, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        let myself = patch("/admin/users/admin", json!({ "active": false }))
            .await
            .unwrap();
        problem(myself, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;

        // A new password ends the user's sessions and works for the next sign-in.
        json_ok(
            patch(
                "/admin/users/mia",
                json!({ "password": "new-mia-password" }),
            )
            .await
            .unwrap(),
        )
        .await;
        let ended = app
            .as_user(&mia_session, Method::GET, "/auth/me")
            .send()
            .await
            .unwrap();
        problem(ended, StatusCode::UNAUTHORIZED, "not_authenticated").await;
        app.token("mia", "new-mia-password").await;

        let users = json_ok(
            app.as_user(&admin, Method::GET, "/admin/users")
                .send()
                .await
                .unwrap(),
        )
        .await;
        let usernames: Vec<&str> = users["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|user| user["username"].as_str().unwrap())
            .collect();
        assert_eq!(usernames, ["admin", "mia", "rep", "rep2"]);
        assert_eq!(users["data"][0]["admin"], true);
    }
);

keel_testkit::db_test!(
    a_users_email_is_set_changed_and_cleared_by_admins_and_shown_only_to_admins_and_the_user,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let admin = app.token("admin", ADMIN_PASSWORD).await;
        let create = |body: Value| {
            app.as_user(&admin, Method::POST, "/admin/users")
                .json(&body)
                .send()
        };
        let patch =
            |path: &str, body: Value| app.as_user(&admin, Method::PATCH, path).json(&body).send();

        // Created with an address, trimmed.
        let created = create(json!({
            "username": "mia",
            "password": "mia-password",
            "roles": ["sales_rep"],
            "email": " mia@example.com ",
        }))
        .await
        .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let mia: Value = created.json().await.unwrap();
        assert_eq!(mia["email"], "mia@example.com");

        // A bad address is refused, naming `email`, and creates nobody.
        let too_long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            json!("mia at example.com"),
            json!("mia@@example.com"),
            json!("m ia@example.com"),
            json!(""),
            json!(too_long),
        ] {
            let refused = create(json!({
                "username": "zed",
                "password": "zed-password",
                "email": bad,
            }))
            .await
            .unwrap();
            let body = problem(refused, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
            assert_eq!(body["errors"][0]["field"], "email", "{bad}: {body}");
        }
        // Changed, left alone by a patch of something else, refused when bad, cleared by null.
        let changed = json_ok(
            patch(
                "/admin/users/mia",
                json!({ "email": "mia.wang@example.com" }),
            )
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(changed["email"], "mia.wang@example.com");
        let untouched = json_ok(
            patch("/admin/users/mia", json!({ "display_name": "Mia" }))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(untouched["email"], "mia.wang@example.com");
        let refused = patch("/admin/users/mia", json!({ "email": "mia@example" }))
            .await
            .unwrap();
        let body = problem(refused, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        assert_eq!(body["errors"][0]["field"], "email", "{body}");
        let users = json_ok(
            app.as_user(&admin, Method::GET, "/admin/users")
                .send()
                .await
                .unwrap(),
        )
        .await;
        let email_of = |users: &Value, name: &str| {
            users["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|user| user["username"] == name)
                .unwrap()["email"]
                .clone()
        };
        assert_eq!(email_of(&users, "mia"), "mia.wang@example.com");
        assert_eq!(email_of(&users, "rep"), Value::Null);
        let cleared = json_ok(
            patch("/admin/users/mia", json!({ "email": null }))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(cleared["email"], Value::Null);
        let users = json_ok(
            app.as_user(&admin, Method::GET, "/admin/users")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(email_of(&users, "mia"), Value::Null);

        // Each user sees their own address when signing in and in /auth/me.
        for (name, address) in [
            ("admin", "admin@example.com"),
            ("rep", "rep@example.com"),
            ("mia", "mia@example.com"),
        ] {
            json_ok(
                patch(&format!("/admin/users/{name}"), json!({ "email": address }))
                    .await
                    .unwrap(),
            )
            .await;
        }
        let signed_in = json_ok(app.login("rep", REP_PASSWORD).await).await;
        assert_eq!(signed_in["user"]["email"], "rep@example.com");
        let rep = signed_in["token"].as_str().unwrap().to_owned();
        let me = json_ok(
            app.as_user(&rep, Method::GET, "/auth/me")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(me["user"]["username"], "rep");
        assert_eq!(me["user"]["email"], "rep@example.com");

        // Nobody else's address reaches a non-admin: not the user list, not the names of the
        // users a record refers to (admin created this lead for rep).
        let refused = app
            .as_user(&rep, Method::GET, "/admin/users")
            .send()
            .await
            .unwrap();
        problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
        let rep_id = me["user"]["id"].as_str().unwrap().to_owned();
        let lead = app
            .create_lead(&admin, json!({ "name": "For rep", "owner": rep_id }))
            .await;
        assert_eq!(lead["created_by"], signed_in_id(&app, &admin).await);
        let id = lead["id"].as_str().unwrap();
        let seen_by_rep = [
            json_ok(
                app.as_user(&rep, Method::GET, &format!("/records/lead/{id}"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await,
            json_ok(
                app.as_user(&rep, Method::GET, "/records/lead")
                    .send()
                    .await
                    .unwrap(),
            )
            .await,
        ];
        for body in &seen_by_rep {
            assert!(body.to_string().contains("For rep"), "{body}");
            for other in ["admin@example.com", "mia@example.com"] {
                assert!(!body.to_string().contains(other), "{other} in {body}");
            }
        }
        assert!(
            !me.to_string().contains("admin@example.com")
                && !signed_in.to_string().contains("admin@example.com")
        );
    }
);

/// The id of the user signed in with `token`.
async fn signed_in_id(app: &TestApp, token: &str) -> Value {
    let me = json_ok(
        app.as_user(token, Method::GET, "/auth/me")
            .send()
            .await
            .unwrap(),
    )
    .await;
    me["user"]["id"].clone()
}

keel_testkit::db_test!(
    metadata_shows_each_user_only_the_fields_they_may_read,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let admin = app.token("admin", ADMIN_PASSWORD).await;
        let rep = app.token("rep", REP_PASSWORD).await;

        let objects = json_ok(
            app.as_user(&rep, Method::GET, "/meta/objects")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(objects["data"][0]["name"], "lead");
        assert_eq!(objects["data"][0]["label"], "Lead");
        assert_eq!(objects["data"][0]["permissions"]["read"], "own");

        let lead = json_ok(
            app.as_user(&rep, Method::GET, "/meta/objects/lead")
                .send()
                .await
                .unwrap(),
        )
        .await;
        let field_names: Vec<&str> = lead["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|field| field["name"].as_str().unwrap())
            .collect();
        assert!(field_names.contains(&"name") && field_names.contains(&"id"));
        assert!(!field_names.contains(&"secret"), "{field_names:?}");
        let name = lead["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|field| field["name"] == "name")
            .unwrap();
        assert_eq!(name["type"], "text");
        assert_eq!(name["label"], "Name");
        assert_eq!(name["required"], true);
        assert_eq!(name["read_only"], false);
        let status = lead["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|field| field["name"] == "status")
            .unwrap();
        assert_eq!(
            status["options"][0],
            json!({ "key": "new", "label": "New" })
        );
        assert_eq!(
            lead["layout"][0]["fields"],
            json!(["name", "company", "phone"])
        );
        assert_eq!(
            lead["list"]["columns"],
            json!(["name", "company", "status", "score"])
        );
        assert_eq!(lead["list"]["order"], json!(["-created_at"]));

        let as_admin = json_ok(
            app.as_user(&admin, Method::GET, "/meta/objects/lead")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(
            as_admin["fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|field| field["name"] == "secret")
        );

        let unknown = app
            .as_user(&rep, Method::GET, "/meta/objects/nope")
            .send()
            .await
            .unwrap();
        problem(unknown, StatusCode::NOT_FOUND, "unknown_object").await;
        let schema = app
            .request(Method::GET, "/meta/schema/object.json")
            .send()
            .await
            .unwrap();
        assert_eq!(schema.status(), StatusCode::OK);
        let missing = app
            .request(Method::GET, "/meta/schema/nope.json")
            .send()
            .await
            .unwrap();
        problem(missing, StatusCode::NOT_FOUND, "not_found").await;

        let openapi = json_ok(
            app.as_user(&rep, Method::GET, "/openapi.json")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
        assert!(
            !openapi.to_string().contains("\"secret\""),
            "hidden field in the rep's OpenAPI"
        );
    }
);

keel_testkit::db_test!(
    a_record_is_created_read_changed_with_if_match_deleted_and_restored,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.token("rep", REP_PASSWORD).await;

        let response = app
            .as_user(&rep, Method::POST, "/records/lead")
            .json(&json!({ "name": "Ada", "company": "Engines", "score": 10, "amount": 12.5 }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(response.headers()["etag"], "\"1\"");
        let created: Value = response.json().await.unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(location, format!("/api/v1/records/lead/{id}"));
        assert_eq!(created["status"], "new", "default applied");
        assert_eq!(created["amount"], "12.50");
        assert_eq!(created["version"], 1);
        assert!(created.get("secret").is_none(), "hidden from the rep");

        let path = format!("/records/lead/{id}");
        let fetched = app.as_user(&rep, Method::GET, &path).send().await.unwrap();
        assert_eq!(fetched.headers()["etag"], "\"1\"");
        assert_eq!(json_ok(fetched).await["name"], "Ada");

        let changed = app
            .as_user(&rep, Method::PATCH, &path)
            .header("if-match", "\"1\"")
            .json(&json!({ "score": 20 }))
            .send()
            .await
            .unwrap();
        assert_eq!(changed.headers()["etag"], "\"2\"");
        let changed = json_ok(changed).await;
        assert_eq!(
            (changed["score"].clone(), changed["version"].clone()),
            (json!(20), json!(2))
        );

        let stale = app
            .as_user(&rep, Method::PATCH, &path)
            .header("if-match", "\"1\"")
            .json(&json!({ "score": 30 }))
            .send()
            .await
            .unwrap();
        problem(stale, StatusCode::PRECONDITION_FAILED, "stale_version").await;
        let invalid = app
            .as_user(&rep, Method::PATCH, &path)
            .json(&json!({ "score": 500, "status": "lost", "nonsense": 1 }))
            .send()
            .await
            .unwrap();
        let body = problem(invalid, StatusCode::UNPROCESSABLE_ENTITY, "invalid_record").await;
        assert!(body["errors"].as_array().unwrap().len() >= 2, "{body}");

        // Another rep may not even learn that the record exists.
        let rep2 = app.token("rep2", REP_PASSWORD).await;
        let hidden = app.as_user(&rep2, Method::GET, &path).send().await.unwrap();
        problem(hidden, StatusCode::NOT_FOUND, "not_found").await;

        let deleted = app
            .as_user(&rep, Method::DELETE, &path)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        let gone = app.as_user(&rep, Method::GET, &path).send().await.unwrap();
        problem(gone, StatusCode::NOT_FOUND, "not_found").await;
        let restored = app
            .as_user(&rep, Method::POST, &format!("{path}/restore"))
            .send()
            .await
            .unwrap();
        assert_eq!(json_ok(restored).await["id"], id);
        json_ok(app.as_user(&rep, Method::GET, &path).send().await.unwrap()).await;

        let history = json_ok(
            app.as_user(&rep, Method::GET, &format!("{path}/history"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let score_change = history["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["field"] == "score" && entry["action"] != "create")
            .unwrap_or_else(|| panic!("no score change in {history}"));
        assert_eq!(score_change["old"], 10);
        assert_eq!(score_change["new"], 20);
        assert!(score_change["by"].is_string() && score_change["at"].is_string());
    }
);

keel_testkit::db_test!(
    a_unique_conflict_reveals_no_record_the_caller_may_not_read,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.token("rep", REP_PASSWORD).await;
        let rep2 = app.token("rep2", REP_PASSWORD).await;
        let admin = app.token("admin", ADMIN_PASSWORD).await;
        let theirs = app
            .create_lead(&rep2, json!({ "name": "Hidden", "phone": "13900000001" }))
            .await;
        let hidden_id = theirs["id"].as_str().unwrap().to_owned();
        let refused = app
            .as_user(&rep, Method::POST, "/records/lead")
            .json(&json!({ "name": "Mine", "phone": "13900000001" }))
            .send()
            .await
            .unwrap();
        let body = problem(refused, StatusCode::CONFLICT, "conflict").await;
        assert_eq!(body["errors"][0]["field"], "phone", "{body}");
        assert!(
            !body.to_string().contains(&hidden_id),
            "a record the rep may not read is not named: {body}"
        );
        // The admin may read it, so the admin is told which record holds the value.
        let refused = app
            .as_user(&admin, Method::POST, "/records/lead")
            .json(&json!({ "name": "Admin's", "phone": "13900000001" }))
            .send()
            .await
            .unwrap();
        let body = problem(refused, StatusCode::CONFLICT, "conflict").await;
        assert!(
            body["detail"].as_str().unwrap().contains(&hidden_id),
            "{body}"
        );
    }
);

keel_testkit::db_test!(
    duplicates_warn_on_save_and_conflicts_name_the_existing_record,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.token("rep", REP_PASSWORD).await;
        let first = app
            .create_lead(
                &rep,
                json!({ "name": "Ada", "company": "Engines", "phone": "13800000001" }),
            )
            .await;
        assert!(first.get("_warnings").is_none());
        let second = app
            .create_lead(&rep, json!({ "name": "ada", "company": "engines" }))
            .await;
        let warnings = second["_warnings"].as_array().unwrap();
        assert_eq!(warnings[0]["matches"][0]["id"], first["id"]);

        let rep2 = app.token("rep2", REP_PASSWORD).await;
        let taken = app
            .as_user(&rep2, Method::POST, "/records/lead")
            .json(&json!({ "name": "Bob", "phone": "13800000001" }))
            .send()
            .await
            .unwrap();
        let body = problem(taken, StatusCode::CONFLICT, "conflict").await;
        assert!(body["errors"][0]["field"] == "phone", "{body}");

        let matches = json_ok(
            app.as_user(
                &rep2,
                Method::GET,
                "/records/lead/duplicates?company=Engines&name=ADA",
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(matches["data"].as_array().unwrap().len(), 2, "{matches}");
    }
);

keel_testkit::db_test!(
    lists_filter_sort_and_page_with_a_cursor_and_bulk_is_all_or_nothing,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.token("rep", REP_PASSWORD).await;
        let items: Vec<Value> = (1..=5)
            .map(|n| json!({ "name": format!("lead {n}"), "company": "Acme", "score": n * 10, "status": if n % 2 == 0 { "contacted" } else { "new" } }))
            .collect();
        let bulk = json_ok(
            app.as_user(&rep, Method::POST, "/records/lead/bulk")
                .json(&items)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(bulk["data"].as_array().unwrap().len(), 5);

        // The second item is invalid: nothing is saved, and the error names the item.
        let broken = json!([{ "name": "ok" }, { "name": "too high", "score": 1000 }]);
        let refused = app
            .as_user(&rep, Method::POST, "/records/lead/bulk")
            .json(&broken)
            .send()
            .await
            .unwrap();
        let body = problem(refused, StatusCode::UNPROCESSABLE_ENTITY, "invalid_record").await;
        assert_eq!(body["errors"][0]["field"], "1.score", "{body}");

        let first_page = json_ok(
            app.as_user(
                &rep,
                Method::GET,
                "/records/lead?score=gte.20&order=-score,name&limit=2&fields=name,score",
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        let scores = |page: &Value| -> Vec<i64> {
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|record| record["score"].as_i64().unwrap())
                .collect()
        };
        assert_eq!(scores(&first_page), [50, 40]);
        assert!(
            first_page["data"][0].get("company").is_none(),
            "fields=name,score"
        );
        let cursor = first_page["next"].as_str().unwrap();
        let second_page = json_ok(
            app.as_user(&rep, Method::GET, "/records/lead")
                .query(&[
                    ("score", "gte.20"),
                    ("order", "-score,name"),
                    ("limit", "2"),
                    ("after", cursor),
                ])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(scores(&second_page), [30, 20]);
        assert_eq!(second_page["next"], Value::Null);

        let both_filters = json_ok(
            app.as_user(
                &rep,
                Method::GET,
                "/records/lead?status=eq.contacted&score=lt.30",
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(scores(&both_filters), [20]);
        let listed = json_ok(
            app.as_user(
                &rep,
                Method::GET,
                "/records/lead?status=in.(new,contacted)&q=lead+3",
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(scores(&listed), [30]);

        let queried = json_ok(
            app.as_user(&rep, Method::POST, "/records/lead/query")
                .json(&json!({ "where": { "or": [{ "score": { "lte": 10 } }, { "score": 50 }] }, "order": ["score"] }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(scores(&queried), [10, 50]);
        let bad_where = app
            .as_user(&rep, Method::POST, "/records/lead/query")
            .json(&json!({ "where": { "score": { "between": [1, 2] } } }))
            .send()
            .await
            .unwrap();
        problem(
            bad_where,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        )
        .await;

        // rep2 sees none of rep's records.
        let rep2 = app.token("rep2", REP_PASSWORD).await;
        let others = json_ok(
            app.as_user(&rep2, Method::GET, "/records/lead")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(others["data"], json!([]));
    }
);

keel_testkit::db_test!(
    aggregates_group_and_exports_stream_csv_and_ndjson,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.token("rep", REP_PASSWORD).await;
        for (name, status, score) in [("a", "new", 10), ("b", "new", 20), ("c", "contacted", 5)] {
            app.create_lead(
                &rep,
                json!({ "name": name, "status": status, "score": score, "company": "Comma, Inc." }),
            )
            .await;
        }
        let groups = json_ok(
            app.as_user(
                &rep,
                Method::GET,
                "/aggregate/lead?group_by=status&count=true&sum=score&score=gte.0",
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        let groups = groups["data"].as_array().unwrap();
        let new = groups
            .iter()
            .find(|group| group["status"] == "new")
            .unwrap();
        assert_eq!(new["count"], 2, "{new}");
        assert_eq!(
            new["sum_score"].to_string().trim_matches('"'),
            "30",
            "{new}"
        );

        let csv = app
            .as_user(
                &rep,
                Method::GET,
                "/records/lead/export?format=csv&order=name",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(csv.status(), StatusCode::OK);
        assert!(
            csv.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let text = csv.text().await.unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("id,owner,created_at"), "{header}");
        assert!(
            header.contains(",name,") && !header.contains("secret"),
            "{header}"
        );
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), 3, "{text}");
        assert!(rows[0].contains("\"Comma, Inc.\""), "{text}");

        let ndjson = app
            .as_user(
                &rep,
                Method::GET,
                "/records/lead/export?format=ndjson&status=eq.new",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(ndjson.headers()["content-type"], "application/x-ndjson");
        let text = ndjson.text().await.unwrap();
        let records: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(records.len(), 2);
        assert!(records.iter().all(|record| record["status"] == "new"));
        let bad_format = app
            .as_user(&rep, Method::GET, "/records/lead/export?format=xlsx")
            .send()
            .await
            .unwrap();
        problem(
            bad_format,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        )
        .await;
    }
);

keel_testkit::db_test!(
    a_bulk_call_of_a_thousand_items_fits_and_saves_them_all,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.token("rep", REP_PASSWORD).await;
        let items: Vec<Value> = (0..1_000)
        .map(|n| json!({ "name": format!("lead number {n}"), "company": "Bulk Trading Company Limited", "score": n % 101, "amount": "1999.00" }))
        .collect();
        let saved = json_ok(
            app.as_user(&rep, Method::POST, "/records/lead/bulk")
                .json(&items)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(saved["data"].as_array().unwrap().len(), 1_000);
        let counted = json_ok(
            app.as_user(&rep, Method::GET, "/aggregate/lead?count=true")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(counted["data"][0]["count"], 1_000, "{counted}");
    }
);

/// The system fields among a JSON object's keys, in order.
fn system_keys(object: &Value) -> Vec<&str> {
    object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|name| keel_meta::is_system_field(name))
        .collect()
}

/// The leading system columns of a CSV header, checking that none follows a declared field.
fn system_columns(csv: &str) -> Vec<&str> {
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let count = header
        .iter()
        .take_while(|name| keel_meta::is_system_field(name))
        .count();
    assert!(
        !header[count..]
            .iter()
            .any(|name| keel_meta::is_system_field(name)),
        "{header:?}"
    );
    header[..count].to_vec()
}

keel_testkit::db_test!(
    records_meta_openapi_and_both_exports_list_the_same_system_fields,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let admin = app.token("admin", ADMIN_PASSWORD).await;
        // As docs/api.md lists them; the lead object is in no pool.
        let expected: Vec<&str> = "id owner created_at created_by updated_at updated_by version"
            .split(' ')
            .collect();
        let get = |path: &'static str| {
            let request = app.as_user(&admin, Method::GET, path);
            async move {
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK, "{path}");
                response.text().await.unwrap()
            }
        };
        let json = |text: String| serde_json::from_str::<Value>(&text).unwrap();

        let record = app.create_lead(&admin, json!({ "name": "Ann" })).await;
        assert_eq!(system_keys(&record), expected, "a record");

        let meta = json(get("/meta/objects/lead").await);
        let in_meta: Vec<&str> = meta["fields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|field| field["system"] == true)
            .map(|field| field["name"].as_str().unwrap())
            .collect();
        assert_eq!(in_meta, expected, "/meta");

        let openapi = json(get("/openapi.json").await);
        let lead = &openapi["components"]["schemas"]["Lead"]["properties"];
        assert_eq!(system_keys(lead), expected, "OpenAPI");

        let csv = get("/records/lead/export?format=csv").await;
        assert_eq!(system_columns(&csv), expected, "CSV export");

        let ndjson = get("/records/lead/export?format=ndjson").await;
        let line = json(ndjson.lines().next().unwrap().to_owned());
        assert_eq!(system_keys(&line), expected, "NDJSON export");

        let app_dir = app._app.path().to_str().unwrap();
        let output = crate::support::run_keel(
            &["export", "lead", "--app", app_dir, "--db", &db.url],
            app._app.path(),
        );
        assert!(output.status.success(), "{output:?}");
        let cli = crate::support::text(&output.stdout);
        assert_eq!(system_columns(&cli), expected, "keel export");
    }
);

/// Hostile query inputs: filter caps, NUL characters, mistyped operators (docs/api.md, "Limits").
mod limits;
