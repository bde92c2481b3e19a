//! Scripts, validations, event rules, the outbox and the inbox as a client sees them: the full
//! router and an outbox worker on a loopback port over a fixture app whose scripts misbehave
//! on request, on SQLite and on PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::support::{AppDir, send_json};

const APP: &str = "\
name: { en: Workflow test, zh: 流程测试 }
language: zh
timezone: Asia/Shanghai
";

const ROLES: &str = "\
roles:
  admin: { admin: true }
  rep: {}
permissions:
  rep:
    deal: { read: own, create: true, edit: own, delete: own }
    task: { read: own, create: true, edit: own }
";

const DEAL: &str = "\
name: deal
label: { en: Deal, zh: 商机 }
title: name
fields:
  name: { type: text, required: true }
  note: { type: text }
  phone: { type: phone, mask: true }
  amount: { type: money }
  rate: { type: percent }
  stage: { type: choice, options: [new, won, lost], default: new }
  flag: { type: boolean }
  counter: { type: integer, default: 0 }
  close_on: { type: date }
  touched_at: { type: datetime }
  tags: { type: multi_choice, options: [a, b] }
  seen: { type: text }
validations:
  - when: 'record.amount != () && record.amount > 1000 && record.stage == \"new\"'
    message: { en: A big deal cannot stay new, zh: 大额商机不能停留在新建阶段 }
    fields: [stage]
triggers:
  before_save: [deal_before]
";

const TASK: &str = "\
name: task
title: subject
fields:
  subject: { type: text, required: true }
  deal: { type: lookup, object: deal }
";

/// The before-save script: tidies `name`, and does what `note` asks.
const DEAL_BEFORE: &str = r#"
if type_of(record.name) == "string" { let n = record.name; n.trim(); record.name = n; }
switch record.note {
    "reject" => reject("不能保存：测试拒绝"),
    "fault" => { let x = 1 / (record.counter - record.counter); }
    "spin" => { loop { } }
    "slow" => { loop { let a = []; a.pad(5000, 0); } }
    "big string" => { let s = "x"; s.pad(70000, "y"); }
    "big array" => { let a = []; a.pad(20000, 0); }
    "reads" => { for i in 0..101 { get("deal", "nothing"); } }
    "writes" => { for i in 0..151 { notify(user.id, "x"); } }
    "bad value" => { record.counter = "many"; }
    "unknown field" => { let name = "non" + "sense"; record[name] = 1; }
    "peek" => {
        let other = find_one("deal", #{ name: "someone else's" });
        record.seen = if other == () { "nothing" } else { "something" };
    }
    "poke" => { update("deal", record.seen, #{ name: "poked" }); }
    "types" => {
        let sum = 0.1 + 0.2;
        record.amount = record.amount + sum;
        record.rate = record.rate * 2;
        record.close_on = record.close_on + days(1);
        record.touched_at = now() - hours(2);
        record.counter = record.counter + 1;
        record.flag = !record.flag;
        record.seen = `${sum == 0.3}|${type_of(record.tags)}|${record.tags.len()}|${old == ()}|${event}`;
    }
    "grow" => { record.amount = record.amount + 0.3; }
    "make task" => { create("task", #{ subject: "from script", deal: record.id }); }
}
"#;

const DEAL_ALERT: &str = "\
name: deal_alert
object: deal
on: [create]
when: 'record.amount != () && record.amount > 500'
actions:
  - { set: { flag: true } }
  - notify: owner
    message: { en: 'Big deal {{ record.name }} ({{ record.phone }})', zh: '大单 {{ record.name }}（{{ record.phone }}）' }
  - { create: { object: task, values: { subject: follow up } } }
  - notify: { user: rep2 }
    message: 'FYI {{ record.name }} ({{ record.phone }})'
";

const BOUNCE: &str = "\
name: bounce
object: deal
on: [update]
when: 'record.note == \"bounce\"'
action: { script: bump }
";

const BUMP: &str = "update(\"deal\", record.id, #{ counter: record.counter + 1 });\n";

const ADMIN_PASSWORD: &str = "admin-password";
const PASSWORD: &str = "rep-password";

struct TestApp {
    base_url: String,
    client: reqwest::Client,
    _stop: tokio::sync::watch::Sender<bool>,
    _app: AppDir,
}

fn app_files() -> AppDir {
    AppDir::new(&[
        ("metadata/app.yaml", APP),
        ("metadata/roles.yaml", ROLES),
        ("metadata/objects/deal.yaml", DEAL),
        ("metadata/objects/task.yaml", TASK),
        ("scripts/deal_before.rhai", DEAL_BEFORE),
        ("scripts/bump.rhai", BUMP),
        ("workflows/rules/deal_alert.yaml", DEAL_ALERT),
        ("workflows/rules/bounce.yaml", BOUNCE),
    ])
}

async fn spawn_app(db_url: &str) -> TestApp {
    let app = app_files();
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
            ("rep", PASSWORD, "rep"),
            ("rep2", PASSWORD, "rep"),
        ],
    )
    .await;
    serve(keel_web::AppState::new(schema, db), app).await
}

/// Serves `state` on a free loopback port with an outbox worker beside it (first retry after
/// 20 ms).
async fn serve(state: keel_web::AppState, app: AppDir) -> TestApp {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(
        keel_runtime::outbox::OutboxWorker::new(state.records().clone())
            .with_retry_base(Duration::from_millis(20))
            .run(stopped),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(keel_web::serve_until(
        listener,
        state,
        std::future::pending(),
    ));
    TestApp {
        base_url: format!("http://{address}"),
        client: reqwest::Client::new(),
        _stop: stop,
        _app: app,
    }
}

impl TestApp {
    fn request(&self, token: &str, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}/api/v1{path}", self.base_url))
            .bearer_auth(token)
    }

    async fn login(&self, username: &str) -> String {
        let password = if username == "admin" {
            ADMIN_PASSWORD
        } else {
            PASSWORD
        };
        let (status, body) = send_json(
            self.client
                .post(format!("{}/api/v1/auth/login", self.base_url))
                .json(&json!({ "username": username, "password": password })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    async fn create(&self, token: &str, object: &str, body: Value) -> (StatusCode, Value) {
        send_json(
            self.request(token, Method::POST, &format!("/records/{object}"))
                .json(&body),
        )
        .await
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        send_json(self.request(token, Method::GET, path)).await
    }

    /// Asks `path` until `done` holds for the answer (at most 10 s).
    async fn eventually(&self, token: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, body) = self.get(token, path).await;
            if done(&body) || Instant::now() > deadline {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn deal(name: &str, note: &str) -> Value {
    json!({ "name": name, "note": note })
}

keel_testkit::db_test!(
    before_save_scripts_change_the_record_and_values_cross_into_rhai_and_back,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.login("rep").await;
        let (status, body) = app
            .create(
                &rep,
                "deal",
                json!({
                    "name": "  Acme  ", "note": "types", "amount": "100.10", "rate": "12.5",
                    "close_on": "2026-12-31", "counter": 41, "flag": false, "tags": ["a", "b"],
                    "stage": "won"
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["name"], "Acme");
        assert_eq!(body["amount"], "100.40", "0.1 + 0.2 is exactly 0.3: {body}");
        assert_eq!(body["rate"], "25.00");
        assert_eq!(body["close_on"], "2027-01-01");
        assert_eq!(body["counter"], 42);
        assert_eq!(body["flag"], true);
        assert_eq!(body["seen"], "true|array|2|true|create");
        let touched =
            chrono::DateTime::parse_from_rfc3339(body["touched_at"].as_str().unwrap()).unwrap();
        let created =
            chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().unwrap()).unwrap();
        assert_eq!((created - touched).num_hours(), 2, "{body}");

        // On update `old` is the stored record and `event` says so.
        let id = body["id"].as_str().unwrap();
        let (status, body) = send_json(
            app.request(&rep, Method::PATCH, &format!("/records/deal/{id}"))
                .json(&json!({ "counter": 1 })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["counter"], 2);
        assert_eq!(body["seen"], "true|array|2|false|update");
    }
);

keel_testkit::db_test!(
    a_reject_and_a_script_fault_are_422s_that_save_nothing,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.login("rep").await;
        let (status, body) = app.create(&rep, "deal", deal("x", "reject")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["type"], "script_rejected");
        assert_eq!(body["detail"], "不能保存：测试拒绝");
        assert_eq!(body["script"], "deal_before");

        let (status, body) = app.create(&rep, "deal", deal("x", "fault")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["type"], "script_failed");
        assert_eq!(body["script"], "deal_before");
        assert_eq!(body["line"], 5, "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains("deal_before"),
            "{body}"
        );

        // A value of the wrong type, and a field the object does not have.
        let (status, body) = app.create(&rep, "deal", deal("x", "bad value")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "counter", "{body}");
        let (status, body) = app.create(&rep, "deal", deal("x", "unknown field")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "nonsense", "{body}");

        let (_, page) = app.get(&rep, "/records/deal").await;
        assert_eq!(page["data"], json!([]), "nothing was saved");
    }
);

keel_testkit::db_test!(
    every_sandbox_limit_refuses_the_save_and_other_requests_keep_answering,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.login("rep").await;
        let cases = [
            ("spin", "operations"),
            ("slow", "wall_time"),
            ("big string", "string_bytes"),
            ("big array", "array_items"),
            ("reads", "reads"),
            ("writes", "writes"),
        ];
        for (note, limit) in cases {
            // While the script runs, another request is answered.
            let slow = app.create(&rep, "deal", deal(note, note));
            let quick = async {
                let started = Instant::now();
                let (status, _) = app.get(&rep, "/records/task").await;
                (status, started.elapsed())
            };
            let ((status, body), (quick_status, _)) = tokio::join!(slow, quick);
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{note}: {body}");
            assert_eq!(body["type"], "script_limit_broken", "{note}: {body}");
            assert_eq!(body["limit"], limit, "{note}: {body}");
            assert_eq!(quick_status, StatusCode::OK);
        }
        let (_, page) = app.get(&rep, "/records/deal").await;
        assert_eq!(page["data"], json!([]), "nothing was saved");
        let (_, inbox) = app.get(&rep, "/notifications").await;
        assert_eq!(
            inbox["data"],
            json!([]),
            "the 150 notifications were rolled back"
        );
    }
);

keel_testkit::db_test!(
    a_script_reads_and_writes_only_what_its_user_may,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.login("rep").await;
        let rep2 = app.login("rep2").await;
        let (status, theirs) = app
            .create(&rep2, "deal", json!({ "name": "someone else's" }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{theirs}");
        let (status, body) = app.create(&rep, "deal", deal("mine", "peek")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(
            body["seen"], "nothing",
            "rep2's deal is invisible to rep's script"
        );

        let their_id = theirs["id"].as_str().unwrap();
        let (status, body) = app
            .create(
                &rep,
                "deal",
                json!({ "name": "poker", "note": "poke", "seen": their_id }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["type"], "script_failed");
        let (_, theirs_now) = app.get(&rep2, &format!("/records/deal/{their_id}")).await;
        assert_eq!(theirs_now["name"], "someone else's");
    }
);

keel_testkit::db_test!(
    validations_refuse_with_their_message_in_the_users_language,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let admin = app.login("admin").await;
        let rep = app.login("rep").await;
        let body = json!({ "name": "big", "amount": "5000" });
        let (status, answer) = app.create(&rep, "deal", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["errors"][0]["field"], "stage");
        assert_eq!(answer["errors"][0]["code"], "validation_failed");
        assert_eq!(answer["errors"][0]["message"], "大额商机不能停留在新建阶段");

        let (status, _) = send_json(
            app.request(&admin, Method::PATCH, "/admin/users/rep2")
                .json(&json!({ "language": "en" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let rep2 = app.login("rep2").await;
        let (_, answer) = app.create(&rep2, "deal", body).await;
        assert_eq!(answer["errors"][0]["message"], "A big deal cannot stay new");

        // A before-save change is validated again: the script cannot save what a user
        // could not.
        let (status, answer) = app
            .create(
                &rep,
                "deal",
                json!({ "name": "x", "note": "grow", "amount": "999.80" }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["errors"][0]["field"], "stage");
    }
);

keel_testkit::db_test!(
    an_event_rule_sets_notifies_with_masking_and_creates_once,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.login("rep").await;
        let (status, body) = app
            .create(
                &rep,
                "deal",
                json!({ "name": "Big one", "amount": "800", "stage": "won", "phone": "13800138000" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        let deal = app
            .eventually(&rep, &format!("/records/deal/{id}"), |deal| {
                deal["flag"] == true
            })
            .await;
        assert_eq!(deal["flag"], true, "the rule set the flag: {deal}");
        let inbox = app
            .eventually(&rep, "/notifications", |inbox| {
                inbox["data"]
                    .as_array()
                    .is_some_and(|data| !data.is_empty())
            })
            .await;
        let data = inbox["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{inbox}");
        assert_eq!(data[0]["object"], "deal");
        assert_eq!(data[0]["record_id"], id.as_str());
        assert_eq!(data[0]["read"], false);
        // The owner sees their own phone in clear.
        assert!(
            data[0]["message"].as_str().unwrap().contains("13800138000"),
            "{inbox}"
        );
        let tasks = app
            .eventually(&rep, "/records/task", |page| {
                page["data"].as_array().is_some_and(|data| !data.is_empty())
            })
            .await;
        assert_eq!(tasks["data"].as_array().unwrap().len(), 1, "{tasks}");
        assert_eq!(tasks["data"][0]["subject"], "follow up");

        // Someone else gets the phone masked.
        let rep2 = app.login("rep2").await;
        let theirs = app
            .eventually(&rep2, "/notifications", |inbox| {
                inbox["data"]
                    .as_array()
                    .is_some_and(|data| !data.is_empty())
            })
            .await;
        assert_eq!(
            theirs["data"][0]["message"], "FYI Big one (138****8000)",
            "{theirs}"
        );

        // Read one, then all.
        let notification = data[0]["id"].as_str().unwrap();
        let (status, _) = send_json(app.request(
            &rep,
            Method::POST,
            &format!("/notifications/{notification}/read"),
        ))
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, unread) = app.get(&rep, "/notifications?unread=true").await;
        assert_eq!(unread["data"], json!([]));
        let (status, _) = send_json(app.request(
            &rep2,
            Method::POST,
            &format!("/notifications/{notification}/read"),
        ))
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "not rep2's notification");
        let (status, marked) =
            send_json(app.request(&rep2, Method::POST, "/notifications/read")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(marked["marked"], 1);
        let (_, unread) = app.get(&rep2, "/notifications?unread=true").await;
        assert_eq!(unread["data"], json!([]));
    }
);

keel_testkit::db_test!(
    a_rule_chain_that_retriggers_itself_stops_at_depth_8,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.login("rep").await;
        let admin = app.login("admin").await;
        let (_, body) = app.create(&rep, "deal", json!({ "name": "loop" })).await;
        let id = body["id"].as_str().unwrap().to_owned();
        let (status, body) = send_json(
            app.request(&rep, Method::PATCH, &format!("/records/deal/{id}"))
                .json(&json!({ "note": "bounce" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let dead = app
            .eventually(&admin, "/admin/outbox?state=dead", |page| {
                page["data"].as_array().is_some_and(|data| !data.is_empty())
            })
            .await;
        let error = dead["data"][0]["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("deeper than 8"), "{dead}");
        assert!(
            error.contains("bounce:bump"),
            "the error names the chain: {dead}"
        );
        let (_, deal) = app.get(&rep, &format!("/records/deal/{id}")).await;
        assert_eq!(
            deal["counter"], 8,
            "eight saves, then the chain stops: {deal}"
        );
    }
);

keel_testkit::db_test!(
    the_notification_stream_delivers_new_notifications_live,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.login("rep").await;
        let mut stream = app
            .request(&rep, Method::GET, "/notifications/stream")
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        assert_eq!(
            stream.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let (status, _) = app
            .create(
                &rep,
                "deal",
                json!({ "name": "Streamed", "amount": "600", "stage": "won" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let committed = Instant::now();
        // A deadline for the outcome, generous for a loaded CI machine: an outbox row whose
        // first attempt fails (a busy database) is retried 10 s later (docs/rules.md).
        let deadline = committed + Duration::from_secs(30);
        let mut received = String::new();
        while !received.contains("Streamed") && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(30), stream.chunk()).await {
                Ok(Ok(Some(chunk))) => received.push_str(&String::from_utf8_lossy(&chunk)),
                _ => break,
            }
        }
        // Reported, not asserted (tests assert no timings): the rule runs in the outbox
        // first, then the hub wakes.
        eprintln!(
            "the notification reached the stream {:?} after the save answered",
            committed.elapsed()
        );
        assert!(received.contains("event: notification"), "{received}");
        assert!(received.contains("Streamed"), "{received}");
        let id = received
            .lines()
            .find_map(|line| line.strip_prefix("id: "))
            .unwrap()
            .to_owned();

        // A client reconnecting after that id misses nothing newer, and gets nothing twice.
        let (_, _) = app
            .create(
                &rep,
                "deal",
                json!({ "name": "While away", "amount": "700", "stage": "won" }),
            )
            .await;
        let inbox = app
            .eventually(&rep, "/notifications", |inbox| {
                inbox["data"].as_array().is_some_and(|data| data.len() == 2)
            })
            .await;
        assert_eq!(inbox["data"].as_array().unwrap().len(), 2);
        let mut resumed = app
            .request(&rep, Method::GET, "/notifications/stream")
            .header("last-event-id", &id)
            .send()
            .await
            .unwrap();
        let chunk = tokio::time::timeout(Duration::from_secs(10), resumed.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let replayed = String::from_utf8_lossy(&chunk);
        assert!(replayed.contains("While away"), "{replayed}");
        assert!(!replayed.contains("Streamed"), "{replayed}");
    }
);

/// The standard app (the repository root) with its demo people, served with a worker.
async fn spawn_standard_app(db_url: &str) -> TestApp {
    let root = crate::support::repository_root();
    let schema = Arc::new(
        keel_meta::load_app(&root).unwrap_or_else(|errors| panic!("standard app:\n{errors}")),
    );
    let db = keel_store::Db::connect(db_url).await.unwrap();
    keel_store::migrate::apply(&db, &schema, false)
        .await
        .unwrap();
    keel_runtime::demo::load_demo_people(&db, &schema, &root)
        .await
        .unwrap();
    serve(keel_web::AppState::new(schema, db), AppDir::new(&[])).await
}

impl TestApp {
    async fn demo_login(&self, username: &str) -> String {
        let (status, body) = send_json(
            self.client
                .post(format!("{}/api/v1/auth/login", self.base_url))
                .json(&json!({ "username": username, "password": "demo1234" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

keel_testkit::db_test!(
    the_standard_apps_scripts_and_rules_work_end_to_end,
    |db| async move {
        let app = spawn_standard_app(&db.url).await;
        let chen = app.demo_login("chen").await;
        let li = app.demo_login("li").await;

        // lead_normalize tidies what people type, and refuses a mobile that is not one.
        let (status, lead) = app
            .create(
                &chen,
                "lead",
                json!({
                    "name": "  张三  ", "company": " 云帆科技 ", "phone": "021-5312 0190",
                    "mobile": "0086 139 1234 5678", "email": "  Zhang.San@Example.COM "
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{lead}");
        assert_eq!(lead["name"], "张三");
        assert_eq!(lead["company"], "云帆科技");
        assert_eq!(lead["phone"], "02153120190");
        assert_eq!(lead["mobile"], "13912345678");
        assert_eq!(lead["email"], "zhang.san@example.com");
        let (status, refused) = app
            .create(&chen, "lead", json!({ "name": "李四", "mobile": "12345" }))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert_eq!(refused["type"], "script_rejected");
        assert!(
            refused["detail"].as_str().unwrap().contains("12345"),
            "{refused}"
        );

        // follow_up_touch stamps the lead that was followed up (after the commit).
        let (status, follow_up) = app
            .create(
                &chen,
                "follow_up",
                json!({
                    "subject": "首次电话沟通", "content": "客户有采购意向", "lead": lead["id"],
                    "followed_at": "2026-12-01T10:00:00+08:00",
                    "next_follow_up_at": "2026-12-08T10:00:00+08:00"
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{follow_up}");
        let lead_path = format!("/records/lead/{}", lead["id"].as_str().unwrap());
        let touched = app
            .eventually(&chen, &lead_path, |lead| {
                !lead["last_follow_up_at"].is_null()
            })
            .await;
        assert_eq!(
            touched["last_follow_up_at"], "2026-12-01T02:00:00.000000Z",
            "{touched}"
        );
        assert_eq!(touched["next_follow_up_at"], "2026-12-08T02:00:00.000000Z");

        // big_deal_alert tells chen's manager, li.
        let (status, account) = app
            .create(&chen, "account", json!({ "name": "大单客户有限公司" }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{account}");
        let (status, deal) = app
            .create(
                &chen,
                "opportunity",
                json!({ "name": "年度采购", "account": account["id"], "amount": "2000000" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{deal}");
        let inbox = app
            .eventually(&li, "/notifications", |inbox| {
                inbox["data"]
                    .as_array()
                    .is_some_and(|data| !data.is_empty())
            })
            .await;
        assert!(
            inbox["data"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("年度采购"),
            "{inbox}"
        );

        // opportunity_won marks the account as dealt when the deal is won: the deal walks
        // the sales process (docs/processes.md), each stage's required fields given with
        // its transition.
        let transition = format!(
            "/records/opportunity/{}/transition",
            deal["id"].as_str().unwrap()
        );
        for (to, fields) in [
            (
                "needs_analysis",
                json!({ "budget": "2000000", "decision_maker": "王总" }),
            ),
            ("proposal", json!({ "close_date": "2026-12-31" })),
            ("negotiation", json!({})),
            ("won", json!({})),
        ] {
            let (status, moved) = send_json(
                app.request(&chen, Method::POST, &transition)
                    .json(&json!({ "to": to, "fields": fields })),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{to}: {moved}");
        }
        let account_path = format!("/records/account/{}", account["id"].as_str().unwrap());
        let dealt = app
            .eventually(&chen, &account_path, |account| {
                account["deal_status"] == "dealt"
            })
            .await;
        assert_eq!(dealt["deal_status"], "dealt", "{dealt}");
    }
);

keel_testkit::db_test!(
    an_action_left_by_a_killed_process_happens_once_after_restart,
    |db| async move {
        let app = app_files();
        let serve = || {
            let mut command = crate::serve::serve_command(&app, &db.url);
            command.env("KEEL_ADMIN_PASSWORD", ADMIN_PASSWORD);
            command
        };
        // A process without an outbox worker commits the save, then dies by SIGKILL before
        // anything runs its rule.
        let mut first = serve();
        first.env("KEEL_OUTBOX_WORKER", "off");
        let server = crate::serve::start_server(first);
        let client = reqwest::Client::new();
        let login = |base: String| {
            let client = client.clone();
            async move {
                let (_, body) = send_json(
                    client
                        .post(format!("{base}/api/v1/auth/login"))
                        .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD })),
                )
                .await;
                body["token"].as_str().unwrap().to_owned()
            }
        };
        let token = login(server.base_url.clone()).await;
        let (status, deal) = send_json(
            client
                .post(format!("{}/api/v1/records/deal", server.base_url))
                .bearer_auth(&token)
                .json(&json!({ "name": "Survivor", "amount": "900", "stage": "won" })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{deal}");
        server.kill_hard();
        let pending =
            crate::serve::sql_rows(&db.url, "SELECT state FROM keel_outbox WHERE kind = 'rule'")
                .await;
        assert_eq!(pending, vec![vec!["pending".to_owned()]]);

        // After a restart the action happens, once.
        let server = crate::serve::start_server(serve());
        let token = login(server.base_url.clone()).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut tasks = Value::Null;
        while Instant::now() < deadline {
            let (_, page) = send_json(
                client
                    .get(format!("{}/api/v1/records/task", server.base_url))
                    .bearer_auth(&token),
            )
            .await;
            tasks = page;
            if tasks["data"]
                .as_array()
                .is_some_and(|data| !data.is_empty())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(tasks["data"].as_array().unwrap().len(), 1, "{tasks}");
        let done =
            crate::serve::sql_rows(&db.url, "SELECT state FROM keel_outbox WHERE kind = 'rule'")
                .await;
        assert_eq!(done, vec![vec!["done".to_owned()]]);
        // A second process on the same database finds nothing left to do.
        let second = crate::serve::start_server(serve());
        let token2 = login(second.base_url.clone()).await;
        let (_, tasks) = send_json(
            client
                .get(format!("{}/api/v1/records/task", second.base_url))
                .bearer_auth(&token2),
        )
        .await;
        assert_eq!(tasks["data"].as_array().unwrap().len(), 1, "{tasks}");
        let (_, deal) = send_json(
            client
                .get(format!(
                    "{}/api/v1/records/deal/{}",
                    server.base_url,
                    deal["id"].as_str().unwrap()
                ))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(deal["flag"], true, "{deal}");
    }
);

#[test]
fn a_script_reaching_for_eval_imports_files_or_the_network_does_not_load() {
    for (source, expected) in [
        ("let x = eval(\"1 + 1\");", "eval"),
        ("import \"secrets\" as s;", "import"),
        ("let text = open_file(\"/etc/passwd\");", "open_file"),
        ("let page = http_get(\"http://127.0.0.1/\");", "http_get"),
        ("system(\"rm -rf /\");", "system"),
    ] {
        let app = app_files();
        app.write("scripts/deal_before.rhai", source);
        let errors = keel_meta::load_app(app.path())
            .err()
            .unwrap_or_else(|| panic!("`{source}` loaded"))
            .to_string();
        assert!(errors.contains("scripts/deal_before.rhai:1:"), "{errors}");
        assert!(errors.contains(expected), "{source}: {errors}");
    }
}
