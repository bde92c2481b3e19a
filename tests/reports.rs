//! The reports as a client sees them (docs/reports.md): the funnel of a process over a
//! fixture whose every figure is worked out by hand below — deals that skipped back, were
//! lost from different stages, are still open, were won skipping a stage, and belong to
//! different reps — for an admin, for a rep (only their own deals) and for a manager asking
//! for one rep; the briefing of the same fixture on a controlled clock; the calendar of a
//! rep and of their manager; and bad parameters answered 422 naming the parameter. Real
//! HTTP on loopback over SQLite and PostgreSQL. Deals are created through the API in the
//! first stage (which writes their first stage-history row, as every create does); their
//! later stages and stage history rows are then written directly (`RecordWrite::update`,
//! `keel_store::reports::seed_stage_history`), so these tests do not depend on the
//! transition code.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, TimeZone as _, Utc};
use keel_runtime::clock::ManualClock;
use keel_store::reports::{StageChange, seed_stage_history};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Api, AppDir, send_json};

const APP: &str = "name: { en: Reports }\nlanguage: en\ntimezone: Asia/Shanghai\n";

const ROLES: &str = "\
roles:
  admin: { admin: true }
  rep: { label: { en: Rep } }
  manager: { label: { en: Manager } }
permissions:
  rep:
    opportunity: { read: own, create: true, edit: own, delete: none }
    task: { read: own, create: true, edit: own, delete: none }
  manager:
    opportunity: { read: subordinates, create: true, edit: subordinates, delete: none }
    task: { read: subordinates, create: true, edit: subordinates, delete: none }
";

const OPPORTUNITY: &str = "\
name: opportunity
label: { en: Opportunity }
title: name
fields:
  name: { type: text, required: true }
  stage:
    type: choice
    default: qualification
    options:
      - { key: qualification }
      - { key: proposal }
      - { key: negotiation }
      - { key: won }
      - { key: lost }
  amount: { type: money }
  close_date: { type: date }
calendar: { start: close_date, title: name }
";

const PROCESS: &str = "\
name: sales
label: { en: Sales }
object: opportunity
stage_field: stage
stages:
  - { key: qualification, probability: 10 }
  - { key: proposal, probability: 50 }
  - { key: negotiation, probability: 80 }
  - { key: won, probability: 100, outcome: won }
  - { key: lost, probability: 0, outcome: lost }
transitions:
  - { linear: true }
  - { from: \"*\", to: lost }
";

const TASK: &str = "\
name: task
label: { en: Task }
title: subject
fields:
  subject: { type: text, required: true }
  due_at: { type: datetime }
  done: { type: boolean, default: false }
calendar: { start: due_at, title: subject, open: { done: false } }
";

const SIMPLE: [(&str, &str); 3] = [
    ("lead", "name"),
    ("account", "name"),
    ("follow_up", "subject"),
];

const PASSWORD: &str = "reports-password";
const DAY: i64 = 86_400;

/// `day` December 2026 (or another month) at `hour:minute` in Shanghai.
fn local(month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    let year = if month == 1 { 2027 } else { 2026 };
    // Shanghai keeps +08:00 all year.
    FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .with_ymd_and_hms(year, month, day, hour, minute, 0)
        .unwrap()
        .with_timezone(&Utc)
}

struct TestApp {
    api: Api,
    clock: ManualClock,
    db: keel_store::Db,
    schema: Arc<keel_meta::Schema>,
    _app: AppDir,
}

async fn spawn_app(db_url: &str) -> TestApp {
    let mut files: Vec<(String, String)> = vec![
        ("metadata/app.yaml".into(), APP.into()),
        ("metadata/roles.yaml".into(), ROLES.into()),
        (
            "metadata/objects/opportunity.yaml".into(),
            OPPORTUNITY.into(),
        ),
        ("metadata/objects/task.yaml".into(), TASK.into()),
        ("workflows/processes/sales.yaml".into(), PROCESS.into()),
    ];
    for (object, field) in SIMPLE {
        files.push((
            format!("metadata/objects/{object}.yaml"),
            format!(
                "name: {object}\nlabel: {{ en: {object} }}\ntitle: {field}\nfields:\n  {field}: {{ type: text, required: true }}\n"
            ),
        ));
    }
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(path, text)| (path.as_str(), text.as_str()))
        .collect();
    let app = AppDir::new(&borrowed);
    let db = keel_store::Db::connect(db_url).await.unwrap();
    let schema = Arc::new(
        keel_meta::load_app(app.path()).unwrap_or_else(|errors| panic!("fixture app:\n{errors}")),
    );
    keel_store::migrate::apply(&db, &schema, false)
        .await
        .unwrap();
    crate::support::add_team(
        &db,
        &schema,
        PASSWORD,
        &[
            ("admin", "admin", None),
            ("boss", "manager", None),
            ("rep1", "rep", Some("boss")),
            ("rep2", "rep", Some("boss")),
            ("rep3", "rep", None),
        ],
    )
    .await;
    // Wednesday 9 December 2026, noon in Shanghai: the briefing's week is 7–13 December.
    let clock = ManualClock::new(local(12, 9, 12, 0));
    let state = keel_web::AppState::with_clock(schema.clone(), db.clone(), Arc::new(clock.clone()));
    TestApp {
        api: Api::serve(state).await,
        clock,
        db,
        schema,
        _app: app,
    }
}

impl std::ops::Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestApp {
    async fn token(&self, username: &str) -> String {
        self.api.login(username, PASSWORD).await
    }

    /// Creates a deal as `token` at the instant `at` in the first stage, as a client must,
    /// then puts it in `stage` directly (its history is seeded by the fixture); returns its id.
    async fn create_deal(&self, token: &str, at: DateTime<Utc>, mut body: Value) -> String {
        let stage = body["stage"].take();
        body["stage"] = json!("qualification");
        let id = self.create(token, "opportunity", at, body).await;
        if let Some(stage) = stage.as_str().filter(|stage| *stage != "qualification") {
            let object = self.schema.object("opportunity").unwrap();
            let mut changes = keel_store::records::Row::new();
            changes.insert("stage".to_owned(), keel_meta::Value::Text(stage.to_owned()));
            let mut write = self.db.begin_records_write().await.unwrap();
            assert!(write.update(object, &id, 1, &changes).await.unwrap());
            write.commit().await.unwrap();
        }
        id
    }

    /// Creates a record as `token` at the instant `at`; returns its id.
    async fn create(&self, token: &str, object: &str, at: DateTime<Utc>, body: Value) -> String {
        self.clock.set(at);
        let (status, body) = send_json(
            self.client
                .post(format!("{}/api/v1/records/{object}", self.base_url))
                .bearer_auth(token)
                .json(&body),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }
}

/// The ids of the fixture's deals.
struct Deals {
    a: String,
}

/// One history row: `id` entered `to` (from `from`) at `at`, after `stay` seconds in `from`.
fn change(
    n: usize,
    id: &str,
    from: Option<&str>,
    to: &str,
    at: DateTime<Utc>,
    stay: Option<i64>,
) -> StageChange {
    StageChange {
        id: format!("h{n:03}"),
        object: "opportunity".to_owned(),
        record_id: id.to_owned(),
        process: "sales".to_owned(),
        from_stage: from.map(str::to_owned),
        to_stage: to.to_owned(),
        at,
        by_user: None,
        comment: None,
        seconds_in_from: stay,
    }
}

/// The fixture (every deal is in the December cohort but H):
///
/// | deal | owner | created (Shanghai) | history                                   | now         | amount |
/// |------|-------|--------------------|-------------------------------------------|-------------|--------|
/// | A    | rep1  | 5 Dec 10:00        | q →(2d) proposal →(1d) won (8 Dec)        | won         | 100    |
/// | B    | rep1  | 1 Dec 00:30        | q →(1d) proposal →(2d) negotiation →(1d) proposal | proposal | 200 |
/// | C    | rep1  | 2 Dec 10:00        | q →(3d) lost                              | lost        | 300    |
/// | D    | rep2  | 7 Dec 10:00        | q →(1d) proposal →(4d) lost               | lost        | 400    |
/// | E    | rep2  | 8 Dec 10:00        | q                                         | qualif.     | 500    |
/// | F    | rep3  | 8 Dec 11:00        | q →(2d) proposal →(2d) negotiation        | negotiation | 600    |
/// | G    | rep3  | 9 Dec 09:00        | (none: imported)                          | proposal    | 1000   |
/// | H    | rep1  | 30 Nov 23:30       | q → won (3 Dec)                           | won         | 50     |
///
/// B is created 30 minutes into December in Shanghai (still November in UTC); H 30
/// minutes before it. Leads, accounts and follow-ups are made for the briefing, tasks for
/// the calendar.
async fn fixture(app: &TestApp) -> Deals {
    let admin = app.token("admin").await;
    let rep1 = app.token("rep1").await;
    let rep2 = app.token("rep2").await;
    let rep3 = app.token("rep3").await;
    let deal = |name: &str, stage: &str, amount: &str| json!({ "name": name, "stage": stage, "amount": amount });
    let a = app
        .create_deal(
            &rep1,
            local(12, 5, 10, 0),
            json!({ "name": "A", "stage": "won", "amount": "100", "close_date": "2026-12-15" }),
        )
        .await;
    let b = app
        .create_deal(&rep1, local(12, 1, 0, 30), deal("B", "proposal", "200"))
        .await;
    let c = app
        .create_deal(&rep1, local(12, 2, 10, 0), deal("C", "lost", "300"))
        .await;
    let d = app
        .create_deal(&rep2, local(12, 7, 10, 0), deal("D", "lost", "400"))
        .await;
    let e = app
        .create_deal(
            &rep2,
            local(12, 8, 10, 0),
            deal("E", "qualification", "500"),
        )
        .await;
    let f = app
        .create_deal(&rep3, local(12, 8, 11, 0), deal("F", "negotiation", "600"))
        .await;
    let _g = app
        .create_deal(&rep3, local(12, 9, 9, 0), deal("G", "proposal", "1000"))
        .await;
    let h = app
        .create_deal(&rep1, local(11, 30, 23, 30), deal("H", "won", "50"))
        .await;
    let mut rows = Vec::new();
    let mut history = |id: &str, created: DateTime<Utc>, steps: &[(&str, i64)]| {
        // The create wrote the first row (none → qualification, at `created`).
        let mut at = created;
        let mut from = Some("qualification");
        for (to, stay) in steps {
            at += chrono::Duration::seconds(*stay);
            rows.push(change(rows.len(), id, from, to, at, Some(*stay)));
            from = Some(to);
        }
    };
    history(
        &a,
        local(12, 5, 10, 0),
        &[("proposal", 2 * DAY), ("won", DAY)],
    );
    history(
        &b,
        local(12, 1, 0, 30),
        &[
            ("proposal", DAY),
            ("negotiation", 2 * DAY),
            ("proposal", DAY),
        ],
    );
    history(&c, local(12, 2, 10, 0), &[("lost", 3 * DAY)]);
    history(
        &d,
        local(12, 7, 10, 0),
        &[("proposal", DAY), ("lost", 4 * DAY)],
    );
    history(&e, local(12, 8, 10, 0), &[]);
    history(
        &f,
        local(12, 8, 11, 0),
        &[("proposal", 2 * DAY), ("negotiation", 2 * DAY)],
    );
    // H was won on 3 December (previous week), quickly.
    history(
        &h,
        local(11, 30, 23, 30),
        &[("won", 3 * DAY - 3600 * 13 - 1800)],
    );
    seed_stage_history(&app.db, &rows).await.unwrap();

    // The briefing's other objects: leads 3 this week and 1 the week before, accounts 1 and
    // 2, follow-ups 2 and none.
    for (object, field, days) in [
        ("lead", "name", &[7_u32, 8, 9, 4][..]),
        ("account", "name", &[9, 1, 2][..]),
        ("follow_up", "subject", &[8, 9][..]),
    ] {
        for day in days {
            app.create(
                &admin,
                object,
                local(12, *day, 9, 0),
                json!({ field: format!("{object} {day}") }),
            )
            .await;
        }
    }
    // The calendar's tasks (December, but t5 in January).
    for (token, subject, due, done) in [
        (&rep1, "t1", local(12, 10, 9, 0), false),
        (&rep1, "t2", local(12, 11, 9, 0), true),
        (&rep2, "t3", local(12, 10, 15, 0), false),
        (&rep3, "t4", local(12, 12, 9, 0), false),
        (&rep1, "t5", local(1, 5, 9, 0), false),
    ] {
        app.create(
            token,
            "task",
            local(12, 1, 8, 0),
            json!({ "subject": subject, "due_at": due.to_rfc3339(), "done": done }),
        )
        .await;
    }
    app.clock.set(local(12, 9, 12, 0));
    Deals { a }
}

/// The stage of `funnel` named `key`.
fn stage<'a>(funnel: &'a Value, key: &str) -> &'a Value {
    funnel["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|stage| stage["key"] == key)
        .unwrap_or_else(|| panic!("no stage {key} in {funnel}"))
}

/// (reached, amount, conversion_next, conversion_first, avg_days) of each stage in order.
fn table(funnel: &Value) -> Vec<(String, i64, Value, Value, Value, Value)> {
    funnel["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|stage| {
            (
                stage["key"].as_str().unwrap().to_owned(),
                stage["reached"].as_i64().unwrap(),
                stage["amount"].clone(),
                stage["conversion_next"].clone(),
                stage["conversion_first"].clone(),
                stage["avg_days"].clone(),
            )
        })
        .collect()
}

fn row(
    key: &str,
    reached: i64,
    amount: &str,
    next: Value,
    first: Value,
    days: Value,
) -> (String, i64, Value, Value, Value, Value) {
    (key.to_owned(), reached, json!(amount), next, first, days)
}

const DECEMBER: &str = "/reports/funnel?process=sales&from=2026-12-01&to=2027-01-01";

keel_testkit::db_test!(
    the_funnel_of_a_month_matches_the_figures_worked_out_by_hand,
    |db| async move {
        let app = spawn_app(&db.url).await;
        fixture(&app).await;
        let admin = app.token("admin").await;
        let (status, funnel) = app.get(&admin, DECEMBER).await;
        assert_eq!(status, StatusCode::OK, "{funnel}");
        // Reach (furthest non-lost stage): A 3 (won reaches all, though it skipped
        // negotiation), B 2 (went back to proposal), C 0, D 1, E 0, F 2, G 1 (its current
        // stage; no history). H was created in November: not in the cohort.
        assert_eq!(funnel["total"], 7, "{funnel}");
        assert_eq!(funnel["total_amount"], "3100.00");
        // Days in stage: qualification A 2, B 1, C 3, D 1, F 2 → 9 / 5; proposal A 1, B 2,
        // D 4, F 2 → 9 / 4; negotiation B 1.
        assert_eq!(
            table(&funnel),
            vec![
                row(
                    "qualification",
                    7,
                    "3100.00",
                    json!(0.7143),
                    json!(1.0),
                    json!(1.8)
                ),
                row(
                    "proposal",
                    5,
                    "2300.00",
                    json!(0.6),
                    json!(0.7143),
                    json!(2.25)
                ),
                row(
                    "negotiation",
                    3,
                    "900.00",
                    json!(0.3333),
                    json!(0.4286),
                    json!(1.0)
                ),
                row("won", 1, "100.00", Value::Null, json!(0.1429), Value::Null),
                row("lost", 2, "700.00", Value::Null, json!(0.2857), Value::Null),
            ]
        );
        assert_eq!(
            (
                funnel["won"].clone(),
                funnel["lost"].clone(),
                funnel["open"].clone()
            ),
            (json!(1), json!(2), json!(4))
        );
        assert_eq!(funnel["won_amount"], "100.00");
        assert_eq!(funnel["lost_amount"], "700.00");
        assert_eq!(funnel["won_rate"], 0.1429);
        assert_eq!(funnel["lost_rate"], 0.2857);
        // 100 / 3100 and 700 / 3100.
        assert_eq!(funnel["won_amount_rate"], 0.0323);
        assert_eq!(funnel["lost_amount_rate"], 0.2258);
        // Open: B 200 × 50 % + E 500 × 10 % + F 600 × 80 % + G 1000 × 50 %.
        assert_eq!(funnel["weighted_pipeline"], "1130.00");
        assert_eq!(funnel["amount_field"], "amount");
        assert_eq!(stage(&funnel, "won")["outcome"], "won");
    }
);

keel_testkit::db_test!(
    a_reps_funnel_counts_only_their_own_deals_and_a_manager_may_ask_for_one_rep,
    |db| async move {
        let app = spawn_app(&db.url).await;
        fixture(&app).await;
        let rep1 = app.token("rep1").await;
        let (status, funnel) = app.get(&rep1, DECEMBER).await;
        assert_eq!(status, StatusCode::OK, "{funnel}");
        // rep1's cohort: A (reach 3, won), B (2, open in proposal), C (0, lost).
        assert_eq!(funnel["total"], 3, "{funnel}");
        assert_eq!(
            table(&funnel),
            vec![
                row(
                    "qualification",
                    3,
                    "600.00",
                    json!(0.6667),
                    json!(1.0),
                    json!(2.0)
                ),
                row(
                    "proposal",
                    2,
                    "300.00",
                    json!(1.0),
                    json!(0.6667),
                    json!(1.5)
                ),
                row(
                    "negotiation",
                    2,
                    "300.00",
                    json!(0.5),
                    json!(0.6667),
                    json!(1.0)
                ),
                row("won", 1, "100.00", Value::Null, json!(0.3333), Value::Null),
                row("lost", 1, "300.00", Value::Null, json!(0.3333), Value::Null),
            ]
        );
        assert_eq!(funnel["weighted_pipeline"], "100.00");
        assert_eq!(funnel["won_rate"], 0.3333);

        // The manager sees rep1's and rep2's deals; `owner` narrows to rep2's D and E.
        let boss = app.token("boss").await;
        let (_, all) = app.get(&boss, DECEMBER).await;
        assert_eq!(all["total"], 5, "{all}");
        let (_, me) = app.get(&rep1, "/auth/me").await;
        let (_, users) = app.get(&app.token("admin").await, "/admin/users").await;
        let rep2_id = users["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|user| user["username"] == "rep2")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(me["id"].as_str(), Some(rep2_id.as_str()));
        let (status, one) = app.get(&boss, &format!("{DECEMBER}&owner={rep2_id}")).await;
        assert_eq!(status, StatusCode::OK, "{one}");
        assert_eq!(
            table(&one),
            vec![
                row(
                    "qualification",
                    2,
                    "900.00",
                    json!(0.5),
                    json!(1.0),
                    json!(1.0)
                ),
                row("proposal", 1, "400.00", json!(0.0), json!(0.5), json!(4.0)),
                row(
                    "negotiation",
                    0,
                    "0.00",
                    Value::Null,
                    json!(0.0),
                    Value::Null
                ),
                row("won", 0, "0.00", Value::Null, json!(0.0), Value::Null),
                row("lost", 1, "400.00", Value::Null, json!(0.5), Value::Null),
            ]
        );
        // A rep asking for another rep's deals gets none of them.
        let (_, other) = app.get(&rep1, &format!("{DECEMBER}&owner={rep2_id}")).await;
        assert_eq!(other["total"], 0, "{other}");
    }
);

keel_testkit::db_test!(
    the_briefing_compares_this_week_with_the_last_in_the_app_timezone,
    |db| async move {
        let app = spawn_app(&db.url).await;
        fixture(&app).await;
        let admin = app.token("admin").await;
        let (status, briefing) = app.get(&admin, "/reports/briefing?period=week").await;
        assert_eq!(status, StatusCode::OK, "{briefing}");
        assert_eq!(
            briefing["current"],
            json!({ "from": "2026-12-07", "to": "2026-12-14" })
        );
        assert_eq!(
            briefing["previous"],
            json!({ "from": "2026-11-30", "to": "2026-12-07" })
        );
        // This week D, E, F, G (2500); the week before A, B, C and H (650: H at 23:30 on
        // 30 November in Shanghai is inside it).
        assert_eq!(
            briefing["new_opportunities"]["count"],
            json!({ "value": 4, "previous": 4, "change": 0, "change_rate": 0.0 })
        );
        assert_eq!(
            briefing["new_opportunities"]["amount"],
            json!({ "value": "2500.00", "previous": "650.00", "change": "1850.00", "change_rate": 2.8462 })
        );
        // A entered won on 8 December, H on 3 December.
        assert_eq!(
            briefing["won_amount"],
            json!({ "value": "100.00", "previous": "50.00", "change": "50.00", "change_rate": 1.0 })
        );
        assert_eq!(
            briefing["new_leads"],
            json!({ "value": 3, "previous": 1, "change": 2, "change_rate": 2.0 })
        );
        assert_eq!(
            briefing["new_customers"],
            json!({ "value": 1, "previous": 2, "change": -1, "change_rate": -0.5 })
        );
        assert_eq!(
            briefing["follow_ups"],
            json!({ "value": 2, "previous": 0, "change": 2, "change_rate": null })
        );

        // rep1 owns A, B, C and H (all created the week before) and may read no leads.
        let rep1 = app.token("rep1").await;
        let (_, mine) = app.get(&rep1, "/reports/briefing?period=week").await;
        assert_eq!(mine["new_opportunities"]["count"]["value"], 0, "{mine}");
        assert_eq!(mine["new_opportunities"]["count"]["previous"], 4);
        assert_eq!(mine["won_amount"]["value"], "100.00");
        assert_eq!(mine["won_amount"]["previous"], "50.00");
        assert_eq!(mine["new_leads"], Value::Null);

        // Today (9 December): G only; yesterday E and F.
        let (_, day) = app.get(&admin, "/reports/briefing?period=day").await;
        assert_eq!(day["new_opportunities"]["count"]["value"], 1, "{day}");
        assert_eq!(day["new_opportunities"]["count"]["previous"], 2);
        // December against November: A–G against H.
        let (_, month) = app.get(&admin, "/reports/briefing?period=month").await;
        assert_eq!(month["new_opportunities"]["count"]["value"], 7, "{month}");
        assert_eq!(month["new_opportunities"]["count"]["previous"], 1);
        assert_eq!(month["won_amount"]["value"], "150.00");
    }
);

keel_testkit::db_test!(
    the_calendar_shows_a_rep_their_entries_and_a_manager_the_teams,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let deals = fixture(&app).await;
        let entries = |body: &Value| -> Vec<(String, bool)> {
            body["data"]
                .as_array()
                .unwrap_or_else(|| panic!("{body}"))
                .iter()
                .map(|entry| {
                    (
                        entry["title"].as_str().unwrap().to_owned(),
                        entry["open"].as_bool().unwrap(),
                    )
                })
                .collect()
        };
        let range = "/calendar?from=2026-12-01&to=2027-01-01";
        let rep1 = app.token("rep1").await;
        let (status, mine) = app.get(&rep1, range).await;
        assert_eq!(status, StatusCode::OK, "{mine}");
        // t5 is in January; t2 is done.
        assert_eq!(
            entries(&mine),
            vec![
                ("t1".into(), true),
                ("t2".into(), false),
                ("A".into(), true)
            ]
        );
        let a = &mine["data"][2];
        assert_eq!(a["object"], "opportunity");
        assert_eq!(a["start"], "2026-12-15");
        assert_eq!(a["url"], format!("/app/opportunity/{}", deals.a));
        let (_, team) = app.get(&rep1, &format!("{range}&scope=team")).await;
        assert_eq!(entries(&team), entries(&mine));

        let boss = app.token("boss").await;
        let (_, own) = app.get(&boss, range).await;
        assert_eq!(entries(&own), vec![]);
        let (status, team) = app.get(&boss, &format!("{range}&scope=team")).await;
        assert_eq!(status, StatusCode::OK, "{team}");
        // rep1's and rep2's entries, not rep3's t4.
        assert_eq!(
            entries(&team),
            vec![
                ("t1".into(), true),
                ("t3".into(), true),
                ("t2".into(), false),
                ("A".into(), true)
            ]
        );
    }
);

keel_testkit::db_test!(
    bad_report_parameters_are_422s_naming_the_parameter,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let admin = app.token("admin").await;
        for (path, parameter) in [
            ("/reports/funnel?process=nope", "process"),
            ("/reports/funnel?from=2026-13-01", "from"),
            ("/reports/funnel?from=2026-12-01&to=2026-11-01", "to"),
            ("/reports/funnel?to=yesterday", "to"),
            ("/reports/funnel?owner=", "owner"),
            ("/reports/funnel?colour=red", "colour"),
            ("/reports/briefing?period=year", "period"),
            ("/reports/briefing?period=day&period=week", "period"),
            ("/calendar?from=2026-01-01&to=2027-06-01", "to"),
            ("/calendar?from=2026-01-01&to=2026-01-01", "to"),
            ("/calendar?from=01/01/2026", "from"),
            ("/calendar?scope=everyone", "scope"),
        ] {
            let (status, body) = app.get(&admin, path).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
            assert_eq!(body["errors"][0]["field"], parameter, "{path}: {body}");
        }
        // The defaults: this month's funnel of the first process, this week's briefing,
        // this month's calendar.
        for path in ["/reports/funnel", "/reports/briefing", "/calendar"] {
            let (status, body) = app.get(&admin, path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
        }
        let (_, funnel) = app.get(&admin, "/reports/funnel").await;
        assert_eq!(funnel["from"], "2026-12-01");
        assert_eq!(funnel["to"], "2027-01-01");
        assert_eq!(funnel["total"], 0);
    }
);
