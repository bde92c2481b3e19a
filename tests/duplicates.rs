//! Duplicate keys (查重) as a client sees them: kept in step with every save, delete and
//! restore, found by normalised value, filled for rows that predate them, holding `block`
//! under 50 parallel creates, and budgeted for users who cannot read every match. Real HTTP
//! on loopback over SQLite and PostgreSQL; time is a `ManualClock`.

use std::sync::Arc;

use keel_runtime::clock::{Clock as _, ManualClock, SystemClock};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::{AppDir, send_json};

const APP: &str = "name: { en: Duplicates }\nlanguage: en\ntimezone: Asia/Shanghai\n";

const ROLES: &str = "\
roles:
  admin: { admin: true }
  sales_rep: { label: { en: Sales rep } }
permissions:
  sales_rep:
    lead: { read: own, create: true, edit: own, delete: own }
";

const LEAD_FIELDS: &str = "\
name: lead
label: { en: Lead }
title: name
fields:
  name: { type: text, required: true, max_length: 100 }
  company: { type: text }
  phone: { type: phone, mask: true }
  mobile: { type: phone, mask: true }
list: { columns: [name, company, mobile], order: -created_at }
";

/// The standard app's three keys.
const LEAD_KEYS: &str = "\
duplicates:
  - { fields: [phone], action: block }
  - { fields: [mobile], action: block }
  - { fields: [company, name], action: warn }
";

const PASSWORD: &str = "duplicates-password";

struct TestApp {
    base_url: String,
    client: reqwest::Client,
    clock: ManualClock,
    db: keel_store::Db,
    app: AppDir,
}

fn lead_yaml(with_keys: bool) -> String {
    if with_keys {
        format!("{LEAD_FIELDS}{LEAD_KEYS}")
    } else {
        LEAD_FIELDS.to_owned()
    }
}

/// Migrates the app (with or without its duplicate keys) on `db_url`, adds `admin`, `rep`
/// and `rep2`, and serves it on a free loopback port.
async fn spawn_app(db_url: &str, with_keys: bool) -> TestApp {
    let app = AppDir::new(&[
        ("metadata/app.yaml", APP),
        ("metadata/roles.yaml", ROLES),
        ("metadata/objects/lead.yaml", &lead_yaml(with_keys)),
    ]);
    let db = keel_store::Db::connect(db_url).await.unwrap();
    let schema = load(&app);
    keel_store::migrate::apply(&db, &schema, false)
        .await
        .unwrap();
    crate::support::add_users(
        &db,
        &schema,
        &[
            ("admin", PASSWORD, "admin"),
            ("rep", PASSWORD, "sales_rep"),
            ("rep2", PASSWORD, "sales_rep"),
        ],
    )
    .await;
    let clock = ManualClock::new(SystemClock.now());
    let base_url = serve(&db, schema, &clock).await;
    TestApp {
        base_url,
        client: reqwest::Client::new(),
        clock,
        db,
        app,
    }
}

fn load(app: &AppDir) -> Arc<keel_meta::Schema> {
    Arc::new(
        keel_meta::load_app(app.path()).unwrap_or_else(|errors| panic!("fixture app:\n{errors}")),
    )
}

async fn serve(db: &keel_store::Db, schema: Arc<keel_meta::Schema>, clock: &ManualClock) -> String {
    let state = keel_web::AppState::with_clock(schema, db.clone(), Arc::new(clock.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(keel_web::serve_until(
        listener,
        state,
        std::future::pending(),
    ));
    format!("http://{address}")
}

impl TestApp {
    fn as_user(&self, token: &str, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}/api/v1{path}", self.base_url))
            .bearer_auth(token)
    }

    async fn token(&self, username: &str) -> String {
        let response = self
            .client
            .post(format!("{}/api/v1/auth/login", self.base_url))
            .json(&json!({ "username": username, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "login as {username}");
        let body: Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    async fn create(&self, token: &str, lead: Value) -> Response {
        self.as_user(token, Method::POST, "/records/lead")
            .json(&lead)
            .send()
            .await
            .unwrap()
    }

    async fn created(&self, token: &str, lead: Value) -> Value {
        let response = self.create(token, lead).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// The ids `GET /records/lead/duplicates?<query>` answers, for `token`.
    async fn duplicate_ids(&self, token: &str, query: &str) -> Vec<String> {
        let response = self
            .as_user(
                token,
                Method::GET,
                &format!("/records/lead/duplicates?{query}"),
            )
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["id"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn send_ok(&self, request: RequestBuilder) -> Value {
        let (status, body) = send_json(request).await;
        assert!(status.is_success(), "{status}: {body}");
        body
    }
}

fn id_of(record: &Value) -> String {
    record["id"].as_str().unwrap().to_owned()
}

keel_testkit::db_test!(
    duplicate_keys_follow_every_create_update_delete_restore_and_bulk_save,
    |db| async move {
        let app = spawn_app(&db.url, true).await;
        let admin = app.token("admin").await;
        let ada = app
            .created(
                &admin,
                json!({ "name": "Ada", "company": "Engines", "mobile": "138-0013-8000" }),
            )
            .await;
        let ada_id = id_of(&ada);
        // Digits are what count: separators and spaces do not.
        assert_eq!(
            app.duplicate_ids(&admin, "mobile=13800138000").await,
            vec![ada_id.clone()]
        );
        assert_eq!(
            app.duplicate_ids(&admin, "mobile=(138)%200013%208000")
                .await,
            vec![ada_id.clone()]
        );
        // Text keys are trimmed and case-folded; a key with an empty part matches nothing.
        assert_eq!(
            app.duplicate_ids(&admin, "company=%20ENGINES&name=ada")
                .await,
            vec![ada_id.clone()]
        );
        assert!(app.duplicate_ids(&admin, "name=ada").await.is_empty());

        // A `block` key refuses a second record with the same digits.
        let refused = app
            .create(&admin, json!({ "name": "Bob", "mobile": "13800138000" }))
            .await;
        assert_eq!(refused.status(), StatusCode::CONFLICT);

        // An update moves the key: the old number is free, the new one taken.
        app.send_ok(
            app.as_user(&admin, Method::PATCH, &format!("/records/lead/{ada_id}"))
                .json(&json!({ "mobile": "139 0000 0000" })),
        )
        .await;
        assert!(
            app.duplicate_ids(&admin, "mobile=13800138000")
                .await
                .is_empty()
        );
        assert_eq!(
            app.duplicate_ids(&admin, "mobile=13900000000").await,
            vec![ada_id.clone()]
        );

        // A record in the recycle bin matches nothing; restored, it matches again.
        app.send_ok(app.as_user(&admin, Method::DELETE, &format!("/records/lead/{ada_id}")))
            .await;
        assert!(
            app.duplicate_ids(&admin, "mobile=13900000000")
                .await
                .is_empty()
        );
        let cy = app
            .created(&admin, json!({ "name": "Cy", "mobile": "13900000000" }))
            .await;
        app.send_ok(app.as_user(
            &admin,
            Method::POST,
            &format!("/records/lead/{ada_id}/restore"),
        ))
        .await;
        assert_eq!(
            app.duplicate_ids(&admin, "mobile=13900000000").await.len(),
            2
        );
        app.send_ok(app.as_user(
            &admin,
            Method::DELETE,
            &format!("/records/lead/{}", id_of(&cy)),
        ))
        .await;

        // Bulk creates and updates keep keys too, and a bulk that collides saves nothing.
        let bulk = app
            .send_ok(
                app.as_user(&admin, Method::POST, "/records/lead/bulk")
                    .json(&json!([
                        { "name": "Dee", "phone": "010-1234-5678" },
                        { "id": ada_id, "phone": "021 8765 4321" },
                    ])),
            )
            .await;
        let dee_id = id_of(&bulk["data"][0]);
        assert_eq!(
            app.duplicate_ids(&admin, "phone=01012345678").await,
            [dee_id]
        );
        assert_eq!(
            app.duplicate_ids(&admin, "phone=02187654321").await,
            [ada_id]
        );
        let colliding = app
            .as_user(&admin, Method::POST, "/records/lead/bulk")
            .json(&json!([
                { "name": "Eve", "mobile": "13700000000" },
                { "name": "Fay", "phone": "(010) 1234 5678" },
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(colliding.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            app.duplicate_ids(&admin, "mobile=13700000000")
                .await
                .is_empty()
        );
        // A refused item is not there for the items after it: Gus is refused (Dee has his
        // phone), and Hal, who shares Gus's mobile, is not reported as Gus's duplicate.
        let (_, problems) = send_json(
            app.as_user(&admin, Method::POST, "/records/lead/bulk")
                .json(&json!([
                    { "name": "Gus", "phone": "010 1234 5678", "mobile": "13600000000" },
                    { "name": "Hal", "mobile": "136 0000 0000" },
                ])),
        )
        .await;
        let fields: Vec<&str> = problems["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|problem| problem["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["0.phone"], "{problems}");
    }
);

keel_testkit::db_test!(
    fifty_parallel_creates_with_one_mobile_store_exactly_one_lead,
    |db| async move {
        let app = Arc::new(spawn_app(&db.url, true).await);
        let admin = app.token("admin").await;
        let attempts = (0..50).map(|n| {
            let app = app.clone();
            let admin = admin.clone();
            tokio::spawn(async move {
                app.create(
                    &admin,
                    json!({ "name": format!("racer {n}"), "mobile": "+86 138 0000 0050" }),
                )
                .await
                .status()
            })
        });
        let mut statuses = Vec::new();
        for attempt in attempts.collect::<Vec<_>>() {
            statuses.push(attempt.await.unwrap());
        }
        let created = statuses
            .iter()
            .filter(|status| **status == StatusCode::CREATED)
            .count();
        let refused = statuses
            .iter()
            .filter(|status| **status == StatusCode::CONFLICT)
            .count();
        assert_eq!((created, refused), (1, 49), "{statuses:?}");
        let list = app
            .send_ok(app.as_user(&admin, Method::GET, "/records/lead?limit=100"))
            .await;
        assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    }
);

keel_testkit::db_test!(
    the_thirty_first_duplicate_lookup_in_a_minute_answers_429_and_lookups_are_recorded,
    |db| async move {
        let app = spawn_app(&db.url, true).await;
        let admin = app.token("admin").await;
        let rep = app.token("rep").await;
        let mine = app.created(&rep, json!({ "name": "Mine" })).await;
        let rep_id = mine["owner"].as_str().map(str::to_owned);
        let theirs = app
            .created(&admin, json!({ "name": "Hidden", "mobile": "13800000031" }))
            .await;
        // The rep cannot read the admin's lead, yet the lookup names it: budgeted.
        for _ in 0..keel_runtime::records::LOOKUPS_PER_WINDOW {
            assert_eq!(
                app.duplicate_ids(&rep, "mobile=13800000031").await,
                [id_of(&theirs)]
            );
        }
        let refused = app
            .as_user(
                &rep,
                Method::GET,
                "/records/lead/duplicates?mobile=13800000099",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        assert_eq!(
            refused.headers()["content-type"],
            "application/problem+json"
        );
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["type"], "too_many_duplicate_lookups", "{body}");

        // A `block` 409 is the same oracle: it is refused too while the budget is spent.
        let blocked = app
            .create(&rep, json!({ "name": "Probe", "mobile": "13800000031" }))
            .await;
        assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
        // Another user and the admin are not affected.
        let rep2 = app.token("rep2").await;
        assert_eq!(
            app.duplicate_ids(&rep2, "mobile=13800000031").await.len(),
            1
        );
        for _ in 0..=keel_runtime::records::LOOKUPS_PER_WINDOW {
            app.duplicate_ids(&admin, "mobile=13800000031").await;
        }
        // A minute later the rep may look again, and a `block` conflict is a 409.
        app.clock.advance(chrono::Duration::seconds(
            keel_runtime::records::WINDOW_SECONDS,
        ));
        let blocked = app
            .create(&rep, json!({ "name": "Probe", "mobile": "13800000031" }))
            .await;
        assert_eq!(blocked.status(), StatusCode::CONFLICT);

        // Each lookup that showed the rep the admin's lead is on record.
        let recorded = keel_store::records::recent(&app.db, &["keel_duplicate_lookups"], 1_000)
            .await
            .unwrap();
        let by_rep = |action: &str| {
            recorded
                .iter()
                .filter(|entry| entry.action == action && entry.by == rep_id)
                .filter(|entry| entry.record_id == id_of(&theirs) && entry.field == "mobile")
                .count()
        };
        assert_eq!(by_rep("duplicate_lookup"), 30);
        assert_eq!(by_rep("duplicate_block"), 1);
        let admin_id = theirs["owner"].as_str().map(str::to_owned);
        assert!(
            recorded.iter().all(|entry| entry.by != admin_id),
            "an admin's lookups are not budgeted or recorded"
        );
    }
);

keel_testkit::db_test!(
    the_fill_finds_duplicates_among_leads_saved_before_the_keys_existed,
    |db| async move {
        let app = spawn_app(&db.url, false).await;
        let admin = app.token("admin").await;
        let mut ids = Vec::new();
        for n in 0..5 {
            let lead = app
                .created(
                    &admin,
                    json!({ "name": format!("old {n}"), "company": "Acme", "mobile": "138 0000 0777" }),
                )
                .await;
            ids.push(id_of(&lead));
        }
        let deleted = ids.pop().unwrap();
        app.send_ok(app.as_user(&admin, Method::DELETE, &format!("/records/lead/{deleted}")))
            .await;

        // The keys arrive with a metadata change; applying it twice changes nothing more.
        app.app
            .write("metadata/objects/lead.yaml", &lead_yaml(true));
        let schema = load(&app.app);
        for _ in 0..2 {
            keel_store::migrate::apply(&app.db, &schema, false)
                .await
                .unwrap();
        }
        let base_url = serve(&app.db, schema, &app.clock).await;
        let app = TestApp { base_url, ..app };
        let admin = app.token("admin").await;
        let mut found = app.duplicate_ids(&admin, "mobile=13800000777").await;
        found.sort();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(found, sorted);
        let refused = app
            .create(&admin, json!({ "name": "new", "mobile": "13800000777" }))
            .await;
        assert_eq!(refused.status(), StatusCode::CONFLICT);
        // Old and new records meet on the composite key too.
        let warned = app
            .created(&admin, json!({ "name": "OLD 1", "company": "acme " }))
            .await;
        assert_eq!(warned["_warnings"][0]["matches"][0]["id"], json!(ids[1]));
    }
);
