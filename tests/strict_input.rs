//! Strict input, as a client sees it over real HTTP on SQLite and PostgreSQL: a JSON value of
//! the wrong type for any field type is a 422 naming the field (no silent coercion), a key
//! given twice and a NUL character are 422s before any SQL, a date and time needs its
//! offset, and every error, an over-long URI's 414 included, is problem+json. CSV import
//! still reads text cells by the field's type.

use std::sync::Arc;

use keel_runtime::accounts::NewUser;
use keel_runtime::clock::SystemClock;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::AppDir;

const ROLES: &str = "roles:\n  admin: { admin: true }\n";

/// One field of every type a client can write.
const SAMPLE: &str = "\
name: sample
title: title
fields:
  title: { type: text, required: true }
  notes: { type: long_text }
  count: { type: integer }
  ratio: { type: decimal, scale: 2 }
  price: { type: money }
  share: { type: percent }
  active: { type: boolean }
  due_on: { type: date }
  due_at: { type: datetime }
  stage: { type: choice, options: [open, won] }
  tags: { type: multi_choice, options: [a, b] }
  email: { type: email }
  phone: { type: phone }
  site: { type: url }
  parent: { type: lookup, object: sample }
  assignee: { type: user }
";

const PASSWORD: &str = "admin-password";

struct Served {
    base_url: String,
    client: reqwest::Client,
    token: String,
    schema: Arc<keel_meta::Schema>,
    db: keel_store::Db,
    _app: AppDir,
}

async fn serve(db_url: &str) -> Served {
    let app = AppDir::new(&[
        (
            "metadata/app.yaml",
            "name: Strict\ntimezone: Asia/Shanghai\n",
        ),
        ("metadata/roles.yaml", ROLES),
        ("metadata/objects/sample.yaml", SAMPLE),
    ]);
    let schema = Arc::new(
        keel_meta::load_app(app.path()).unwrap_or_else(|errors| panic!("fixture app:\n{errors}")),
    );
    let db = keel_store::Db::connect(db_url).await.unwrap();
    keel_store::migrate::apply(&db, &schema, false)
        .await
        .unwrap();
    keel_runtime::accounts::add_user(
        &db,
        &schema,
        NewUser {
            username: "admin".to_owned(),
            display_name: None,
            password: PASSWORD.to_owned(),
            roles: vec!["admin".to_owned()],
            manager: None,
            department: None,
            language: None,
            email: None,
        },
    )
    .await
    .unwrap();
    let state = keel_web::AppState::with_clock(schema.clone(), db.clone(), Arc::new(SystemClock));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(keel_web::serve_until(
        listener,
        state,
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let base_url = format!("http://{address}/api/v1");
    let (_, login) = crate::support::send_json(
        client
            .post(format!("{base_url}/auth/login"))
            .json(&json!({ "username": "admin", "password": PASSWORD })),
    )
    .await;
    Served {
        token: login["token"].as_str().unwrap().to_owned(),
        base_url,
        client,
        schema,
        db,
        _app: app,
    }
}

impl Served {
    /// Sends `body` as raw JSON text, so that it may hold what `serde_json` cannot build
    /// (a repeated key).
    async fn send(&self, method: Method, path: &str, body: &str) -> (StatusCode, String, Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, content_type, body)
    }

    async fn create(&self, fields: Value) -> (StatusCode, Value) {
        let mut body = json!({ "title": "x" });
        for (key, value) in fields.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, _, answer) = self
            .send(Method::POST, "/records/sample", &body.to_string())
            .await;
        (status, answer)
    }
}

/// Asserts a 422 problem whose `errors` name `field` with `code`.
fn assert_refused(status: StatusCode, answer: &Value, field: &str, code: &str, sent: &Value) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{sent}: {answer}");
    let errors = answer["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|error| error["field"] == field && error["code"] == code),
        "{sent}: expected {field}/{code} in {answer}"
    );
}

keel_testkit::db_test!(
    a_json_value_of_the_wrong_type_is_refused_for_every_field_type,
    |db| async move {
        let app = serve(&db.url).await;
        let wrong: &[(&str, Value)] = &[
            ("title", json!(0)),
            ("title", json!(true)),
            ("notes", json!(12)),
            ("notes", json!(["a"])),
            ("count", json!("50")),
            ("count", json!(1.5)),
            ("count", json!(true)),
            ("ratio", json!(true)),
            ("ratio", json!("1e3")),
            ("ratio", json!(" 1.5")),
            ("price", json!(false)),
            ("price", json!("12,00")),
            ("price", json!({"amount": 1})),
            ("share", json!("15%")),
            ("share", json!([15])),
            ("active", json!("yes")),
            ("active", json!(1)),
            ("active", json!("true")),
            ("due_on", json!(20260501)),
            ("due_at", json!(1_777_777_777)),
            ("stage", json!(1)),
            ("stage", json!(["open"])),
            ("tags", json!("a")),
            ("tags", json!([1])),
            ("email", json!(42)),
            ("phone", json!(13_800_138_000_i64)),
            ("site", json!(7)),
            ("parent", json!(5)),
            ("parent", json!("")),
            ("assignee", json!(false)),
            ("assignee", json!({"id": "x"})),
        ];
        for (field, value) in wrong {
            let sent = json!({ *field: value });
            let (status, answer) = app.create(sent.clone()).await;
            assert_refused(status, &answer, field, "invalid_type", &sent);
        }
        // Each field type still takes its own JSON type.
        let (status, answer) = app
            .create(json!({
                "notes": "  kept  ",
                "count": 50,
                "ratio": 1.25,
                "price": "1999.00",
                "share": 15,
                "active": true,
                "due_on": "2026-05-01",
                "due_at": "2026-05-01T09:30:00+08:00",
                "stage": "won",
                "tags": ["a", "b"],
                "email": "li@example.cn",
                "phone": "+86 138-0013-8000",
                "site": "https://example.cn",
            }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(answer["count"], json!(50));
        assert_eq!(answer["price"], json!("1999.00"));
        assert_eq!(answer["due_at"], json!("2026-05-01T01:30:00.000000Z"));
        // Money, decimal and percent take a JSON number too.
        let (status, answer) = app.create(json!({ "price": 12.5, "ratio": "-3" })).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(answer["price"], json!("12.50"));
    }
);

keel_testkit::db_test!(
    a_datetime_without_an_offset_is_refused_in_json,
    |db| async move {
        let app = serve(&db.url).await;
        for text in ["2026-05-01T09:30:00", "2026-05-01 09:30", "2026-05-01"] {
            let sent = json!({ "due_at": text });
            let (status, answer) = app.create(sent.clone()).await;
            assert_refused(status, &answer, "due_at", "invalid_datetime", &sent);
        }
    }
);

keel_testkit::db_test!(
    a_key_given_twice_is_refused_before_anything_is_saved,
    |db| async move {
        let app = serve(&db.url).await;
        let (status, content_type, answer) = app
            .send(
                Method::POST,
                "/records/sample",
                r#"{"title": "first", "count": 1, "title": "second"}"#,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(answer["errors"][0]["field"], "title", "{answer}");
        assert_eq!(answer["errors"][0]["code"], "duplicate_key", "{answer}");
        // In a nested filter too, and in a bulk list (named `<index>.<field>`).
        let (status, _, answer) = app
            .send(
                Method::POST,
                "/records/sample/query",
                r#"{"where": {"stage": {"eq": "open", "eq": "won"}}}"#,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        let (status, _, answer) = app
            .send(
                Method::POST,
                "/records/sample/bulk",
                r#"[{"title": "a"}, {"title": "b", "title": "c"}]"#,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["errors"][0]["field"], "1.title", "{answer}");
        let (status, _, list) = app.send(Method::POST, "/records/sample/query", "{}").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["data"], json!([]), "nothing was saved");
    }
);

keel_testkit::db_test!(
    a_nul_character_anywhere_in_a_json_body_is_a_422_not_a_database_error,
    |db| async move {
        let app = serve(&db.url).await;
        for (path, body, field) in [
            ("/records/sample", r#"{"title": "a\u0000b"}"#, "title"),
            (
                "/records/sample",
                r#"{"title": "a", "notes": "\u0000"}"#,
                "notes",
            ),
            (
                "/records/sample",
                r#"{"title": "a", "tags\u0000": 1}"#,
                "tags\u{0}",
            ),
            (
                "/records/sample/bulk",
                r#"[{"title": "\u0000"}]"#,
                "0.title",
            ),
            (
                "/records/sample/query",
                r#"{"where": {"title": {"like": "\u0000*"}}}"#,
                "where.title.like",
            ),
            (
                "/auth/login",
                r#"{"username": "admin\u0000", "password": "x"}"#,
                "username",
            ),
        ] {
            let (status, content_type, answer) = app.send(Method::POST, path, body).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{path} {body}: {answer}"
            );
            assert_eq!(content_type, "application/problem+json");
            assert_eq!(answer["errors"][0]["field"], field, "{answer}");
            assert_eq!(answer["errors"][0]["code"], "invalid_text", "{answer}");
        }
    }
);

keel_testkit::db_test!(an_over_long_uri_answers_a_414_problem, |db| async move {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = serve(&db.url).await;
    // Over hyper's 64 KiB; HTTP clients refuse to send such a URI, so it goes raw.
    let host = app
        .base_url
        .trim_start_matches("http://")
        .trim_end_matches("/api/v1")
        .to_owned();
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    let request = format!(
        "GET /api/v1/records/sample?title=eq.{} HTTP/1.1\r\nHost: {host}\r\n\r\n",
        "x".repeat(70_000)
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 414 "), "{answer}");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["status"], 414, "{body}");
    assert_eq!(body["type"], "uri_too_long", "{body}");
});

keel_testkit::db_test!(
    csv_import_still_reads_text_cells_by_field_type,
    |db| async move {
        let app = serve(&db.url).await;
        let records = keel_runtime::records::Records::new(
            app.schema.clone(),
            app.db.clone(),
            Arc::new(SystemClock),
        );
        let admin = keel_runtime::auth::Auth::new(
            app.schema.clone(),
            app.db.clone(),
            Arc::new(SystemClock),
        )
        .authenticate(&app.token)
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sample.csv");
        std::fs::write(
            &file,
            "title,count,price,active,due_at,tags,phone\n\
             a,50,12.5,yes,2026-05-01 09:30,a;b,13800138000\n",
        )
        .unwrap();
        let report =
            keel_runtime::import::import_csv(&records, &admin, "sample", &file, 10, |_, _| {})
                .await
                .unwrap();
        assert_eq!(report.created, 1, "{:?}", report.failed);
        let (_, _, list) = app.send(Method::POST, "/records/sample/query", "{}").await;
        let row = &list["data"][0];
        assert_eq!(row["count"], json!(50));
        assert_eq!(row["active"], json!(true));
        assert_eq!(row["price"], json!("12.50"));
        // Read in the app timezone (Asia/Shanghai, UTC+8).
        assert_eq!(row["due_at"], json!("2026-05-01T01:30:00.000000Z"));
        assert_eq!(row["tags"], json!(["a", "b"]));
    }
);
