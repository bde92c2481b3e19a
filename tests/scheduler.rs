//! The scheduler in one test process (docs/scheduler.md): several `Scheduler`s over one
//! database, a `ManualClock` stepped through hours and days without sleeping, the outbox
//! worker run by hand, and the admin rules API on loopback — on SQLite and on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use keel_runtime::actor::Actor;
use keel_runtime::clock::ManualClock;
use keel_runtime::records::ListRequest;
use keel_runtime::scheduler::Scheduler;
use keel_store::schedule::{self, NewRun, Run};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{AppDir, send_json};

const APP: &str = "\
name: { en: Scheduler test }
language: en
timezone: Asia/Shanghai
";

const ROLES: &str = "\
roles:
  admin: { admin: true }
  rep: {}
permissions:
  rep:
    item: { read: own, create: true, edit: own }
";

const ITEM: &str = "\
name: item
title: name
fields:
  name: { type: text, required: true }
  due_on: { type: date }
  flag: { type: boolean, default: false }
";

const LOG: &str = "\
name: log
title: note
fields:
  note: { type: text }
";

/// A rule over the items called `tick` that writes a log record noted `note`.
fn log_rule(name: &str, schedule: &str, misfire: &str, note: &str) -> String {
    format!(
        "name: {name}\nobject: item\nschedule: \"{schedule}\"\nmisfire: {misfire}\nwhere: {{ name: tick }}\naction: {{ create: {{ object: log, values: {{ note: {note} }} }} }}\n"
    )
}

const EVENT_RULE: &str = "\
name: on_create
object: item
on: [create]
when: 'record.name == \"never\"'
action: { set: { flag: true } }
";

/// 2026-03-02 00:00 UTC, 08:00 in Shanghai.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap()
}

struct Fixture {
    state: keel_web::AppState,
    clock: ManualClock,
    _app: Option<AppDir>,
}

impl Fixture {
    fn records(&self) -> &keel_runtime::records::Records {
        self.state.records()
    }

    fn db(&self) -> &keel_store::Db {
        self.state.db()
    }

    /// A scheduler of its own (its own process id), on this fixture's clock and database.
    fn scheduler(&self) -> Scheduler {
        Scheduler::new(self.records().clone())
    }

    async fn create(&self, object: &str, values: Value) -> String {
        let Value::Object(input) = values else {
            panic!("an object")
        };
        let saved = self
            .records()
            .create(&Actor::system(), object, input)
            .await
            .unwrap();
        saved.record["id"].as_str().unwrap().to_owned()
    }

    async fn records_of(&self, object: &str) -> Vec<Value> {
        let page = self
            .records()
            .list(
                &Actor::system(),
                object,
                ListRequest {
                    limit: Some(500),
                    ..ListRequest::default()
                },
            )
            .await
            .unwrap();
        page.data
    }

    async fn notes(&self, note: &str) -> usize {
        self.records_of("log")
            .await
            .iter()
            .filter(|log| log["note"] == note)
            .count()
    }

    /// Runs the outbox worker until it finds nothing (at most 100 batches).
    async fn drain_outbox(&self) {
        let worker = keel_runtime::outbox::OutboxWorker::new(self.records().clone());
        for _ in 0..100 {
            if worker.work_once().await.unwrap() == 0 {
                return;
            }
        }
        panic!("the outbox did not drain");
    }

    async fn runs(&self, job: &str) -> Vec<Run> {
        schedule::runs(self.db(), job, None, 1000).await.unwrap()
    }

    fn set(&self, at: DateTime<Utc>) {
        self.clock.set(at);
    }
}

async fn fixture(db_url: &str, rules: &[(&str, String)]) -> Fixture {
    fixture_with_scripts(db_url, rules, &[]).await
}

async fn fixture_with_scripts(
    db_url: &str,
    rules: &[(&str, String)],
    scripts: &[(&str, &str)],
) -> Fixture {
    let mut files: Vec<(String, String)> = vec![
        ("metadata/app.yaml".into(), APP.into()),
        ("metadata/roles.yaml".into(), ROLES.into()),
        ("metadata/objects/item.yaml".into(), ITEM.into()),
        ("metadata/objects/log.yaml".into(), LOG.into()),
        ("workflows/rules/on_create.yaml".into(), EVENT_RULE.into()),
    ];
    for (name, text) in rules {
        files.push((format!("workflows/rules/{name}.yaml"), text.clone()));
    }
    for (name, text) in scripts {
        files.push((format!("scripts/{name}.rhai"), (*text).to_owned()));
    }
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(path, text)| (path.as_str(), text.as_str()))
        .collect();
    let app = AppDir::new(&borrowed);
    let schema = Arc::new(
        keel_meta::load_app(app.path()).unwrap_or_else(|errors| panic!("fixture app:\n{errors}")),
    );
    open(db_url, schema, Some(app)).await
}

async fn open(db_url: &str, schema: Arc<keel_meta::Schema>, app: Option<AppDir>) -> Fixture {
    let db = keel_store::Db::connect(db_url).await.unwrap();
    keel_store::migrate::apply(&db, &schema, false)
        .await
        .unwrap();
    let clock = ManualClock::new(start());
    let state = keel_web::AppState::with_clock(schema, db, Arc::new(clock.clone()));
    Fixture {
        state,
        clock,
        _app: app,
    }
}

fn done(runs: &[Run]) -> Vec<&Run> {
    runs.iter().filter(|run| run.state == "done").collect()
}

keel_testkit::db_test!(
    each_occurrence_is_claimed_and_run_once_by_three_schedulers_ticking_together,
    |db| async move {
        let rules = [(
            "every_minute",
            log_rule("every_minute", "0 * * * * *", "all", "minute"),
        )];
        let fixture = fixture(&db.url, &rules).await;
        fixture.create("item", json!({ "name": "tick" })).await;
        let schedulers = [
            fixture.scheduler(),
            fixture.scheduler(),
            fixture.scheduler(),
        ];
        // The first tick starts the schedule: nothing before it ran.
        for scheduler in &schedulers {
            scheduler.tick().await.unwrap();
        }
        assert!(fixture.runs("every_minute").await.is_empty());
        let mut claimed = 0;
        for minute in 1..=10 {
            fixture.set(start() + chrono::Duration::minutes(minute));
            let reports = futures::future::join_all(schedulers.iter().map(Scheduler::tick)).await;
            for report in reports {
                claimed += report.unwrap().claimed;
            }
        }
        assert_eq!(claimed, 10, "each minute claimed by exactly one scheduler");
        let runs = fixture.runs("every_minute").await;
        assert_eq!(done(&runs).len(), 10);
        let mut due: Vec<DateTime<Utc>> = runs.iter().map(|run| run.due_at).collect();
        due.sort();
        let expected: Vec<DateTime<Utc>> = (1..=10)
            .map(|minute| start() + chrono::Duration::minutes(minute))
            .collect();
        assert_eq!(due, expected);
        assert!(runs.iter().all(|run| run.matched == 1 && run.changed == 1));
        let processes: std::collections::HashSet<&str> =
            runs.iter().map(|run| run.process.as_str()).collect();
        assert!(processes.len() <= 3);
        fixture.drain_outbox().await;
        assert_eq!(
            fixture.notes("minute").await,
            10,
            "one action per occurrence"
        );
    }
);

keel_testkit::db_test!(
    misfire_once_skip_and_all_after_every_scheduler_was_down_across_five_due_times,
    |db| async move {
        let rules = [
            (
                "hourly_once",
                log_rule("hourly_once", "0 0 * * * *", "once", "once"),
            ),
            (
                "hourly_skip",
                log_rule("hourly_skip", "0 0 * * * *", "skip", "skip"),
            ),
            (
                "hourly_all",
                log_rule("hourly_all", "0 0 * * * *", "all", "all"),
            ),
        ];
        let fixture = fixture(&db.url, &rules).await;
        fixture.create("item", json!({ "name": "tick" })).await;
        // A first-ever start fires no catch-up.
        fixture.set(start() + chrono::Duration::minutes(10));
        fixture.scheduler().tick().await.unwrap();
        for job in ["hourly_once", "hourly_skip", "hourly_all"] {
            assert!(fixture.runs(job).await.is_empty(), "{job}");
        }
        // Every scheduler is down across 01:00 … 05:00 UTC; one starts at 05:20.
        fixture.set(start() + chrono::Duration::minutes(5 * 60 + 20));
        let restarted = fixture.scheduler();
        restarted.tick().await.unwrap();
        // A second process starting a little later changes nothing.
        fixture.set(start() + chrono::Duration::minutes(5 * 60 + 21));
        fixture.scheduler().tick().await.unwrap();

        let once = fixture.runs("hourly_once").await;
        assert_eq!(once.len(), 1, "{once:?}");
        assert!(once[0].catch_up && once[0].state == "done");
        assert_eq!(once[0].missed, 5);
        assert_eq!(once[0].due_at, start() + chrono::Duration::hours(5));

        let skip = fixture.runs("hourly_skip").await;
        assert!(done(&skip).is_empty(), "{skip:?}");
        assert_eq!(skip.len(), 1, "one record says what was skipped");
        assert_eq!((skip[0].state.as_str(), skip[0].missed), ("skipped", 5));

        let all = fixture.runs("hourly_all").await;
        assert_eq!(done(&all).len(), 5, "{all:?}");
        assert!(all.iter().all(|run| run.catch_up));

        fixture.drain_outbox().await;
        assert_eq!(fixture.notes("once").await, 1);
        assert_eq!(fixture.notes("skip").await, 0);
        assert_eq!(fixture.notes("all").await, 5);

        // Back to normal: the next hour runs once under every policy.
        fixture.set(start() + chrono::Duration::hours(6));
        restarted.tick().await.unwrap();
        fixture.drain_outbox().await;
        assert_eq!(fixture.notes("once").await, 2);
        assert_eq!(fixture.notes("skip").await, 1);
        assert_eq!(fixture.notes("all").await, 6);
    }
);

keel_testkit::db_test!(
    a_run_whose_lease_expired_is_taken_over_resumed_from_its_cursor_and_not_doubled,
    |db| async move {
        let rules = [("yearly", log_rule("yearly", "0 0 0 1 1 *", "once", "lease"))];
        let fixture = fixture(&db.url, &rules).await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(fixture.create("item", json!({ "name": "tick" })).await);
        }
        ids.sort();
        let rule = fixture.state.schema().rules["yearly"].clone();
        // A process claims an occurrence, does one chunk of one record, and dies.
        let due = start();
        let run_id = "yearly|2026-03-02T00:00:00Z";
        let dead = "dead-host/1/deadbeef";
        assert!(
            schedule::claim(
                fixture.db(),
                &NewRun {
                    id: run_id.to_owned(),
                    job: "yearly".to_owned(),
                    kind: "schedule".to_owned(),
                    due_at: due,
                    manual: false,
                    catch_up: false,
                    missed: 0,
                    state: "running".to_owned(),
                    process: dead.to_owned(),
                    started_at: due,
                    lease_until: Some(due + chrono::Duration::seconds(60)),
                },
            )
            .await
            .unwrap()
        );
        let chunk = fixture
            .records()
            .schedule_chunk(
                &rule,
                run_id,
                dead,
                None,
                1,
                due + chrono::Duration::seconds(60),
            )
            .await
            .unwrap();
        assert!(chunk.held);
        assert_eq!(chunk.last.as_deref(), Some(ids[0].as_str()));

        // While the lease holds, nobody takes the run.
        let survivor = fixture.scheduler();
        fixture.set(due + chrono::Duration::seconds(30));
        assert_eq!(survivor.tick().await.unwrap().taken_over, 0);
        // Once it ran out, one of two schedulers takes it over and finishes it.
        fixture.set(due + chrono::Duration::seconds(120));
        let other = fixture.scheduler();
        let (first, second) = futures::future::join(survivor.tick(), other.tick()).await;
        assert_eq!(
            first.unwrap().taken_over + second.unwrap().taken_over,
            1,
            "exactly one scheduler takes the run over"
        );
        let run = schedule::run(fixture.db(), run_id).await.unwrap().unwrap();
        assert_eq!(run.state, "done", "{run:?}");
        assert_eq!(run.attempts, 2);
        assert_eq!(run.matched, 3, "one record before the crash, two after");
        assert_eq!(run.cursor.as_deref(), Some(ids[2].as_str()));
        assert_ne!(run.process, dead);
        // The dead process's late write is refused: it no longer holds the run.
        let late = fixture
            .records()
            .schedule_chunk(
                &rule,
                run_id,
                dead,
                None,
                10,
                due + chrono::Duration::seconds(600),
            )
            .await
            .unwrap();
        assert!(!late.held);
        fixture.drain_outbox().await;
        assert_eq!(fixture.notes("lease").await, 3, "each record's action once");
    }
);

keel_testkit::db_test!(
    cron_and_relative_dates_are_read_in_the_app_timezone_asia_shanghai,
    |db| async move {
        // 07:30 in Shanghai is 23:30 UTC the day before: `@today` is Shanghai's day.
        let rule = "\
name: due_morning
object: item
schedule: \"0 30 7 * * *\"
misfire: skip
where: { due_on: { lte: \"@today\" }, flag: false }
action: { set: { flag: true } }
"
        .to_owned();
        let fixture = fixture(&db.url, &[("due_morning", rule)]).await;
        let today = fixture
            .create("item", json!({ "name": "today", "due_on": "2026-03-03" }))
            .await;
        let tomorrow = fixture
            .create(
                "item",
                json!({ "name": "tomorrow", "due_on": "2026-03-04" }),
            )
            .await;
        let scheduler = fixture.scheduler();
        scheduler.tick().await.unwrap();
        // 2026-03-02 23:30 UTC = 2026-03-03 07:30 in Shanghai.
        let due = Utc.with_ymd_and_hms(2026, 3, 2, 23, 30, 0).unwrap();
        fixture.set(due - chrono::Duration::seconds(1));
        scheduler.tick().await.unwrap();
        assert!(fixture.runs("due_morning").await.is_empty(), "not due yet");
        fixture.set(due);
        scheduler.tick().await.unwrap();
        let runs = fixture.runs("due_morning").await;
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].due_at, due);
        assert_eq!(runs[0].matched, 1, "{runs:?}");
        fixture.drain_outbox().await;
        let flag = |id: String| {
            let records = &fixture;
            async move {
                records
                    .records()
                    .get(&Actor::system(), "item", &id)
                    .await
                    .unwrap()["flag"]
                    .clone()
            }
        };
        assert_eq!(flag(today).await, true);
        assert_eq!(flag(tomorrow).await, false);
    }
);

keel_testkit::db_test!(
    a_scheduled_rules_script_sees_the_event_schedule_and_the_record_as_it_matched,
    |db| async move {
        let rule = "\
name: hourly_script
object: item
schedule: \"0 0 * * * *\"
where: { name: tick }
action: { script: mark }
"
        .to_owned();
        let mark = "update(\"item\", record.id, #{ name: `seen ${event} ${record.name}` });\n";
        let fixture =
            fixture_with_scripts(&db.url, &[("hourly_script", rule)], &[("mark", mark)]).await;
        let id = fixture.create("item", json!({ "name": "tick" })).await;
        let other = fixture.create("item", json!({ "name": "other" })).await;
        let scheduler = fixture.scheduler();
        scheduler.tick().await.unwrap();
        fixture.set(start() + chrono::Duration::hours(1));
        scheduler.tick().await.unwrap();
        fixture.drain_outbox().await;
        let name = |id: String| {
            let fixture = &fixture;
            async move {
                fixture
                    .records()
                    .get(&Actor::system(), "item", &id)
                    .await
                    .unwrap()["name"]
                    .clone()
            }
        };
        assert_eq!(name(id).await, "seen schedule tick");
        assert_eq!(name(other).await, "other");
    }
);

keel_testkit::db_test!(
    a_run_reads_its_records_in_chunks_along_the_primary_key_and_acts_on_each_once,
    |db| async move {
        let rules = [(
            "hourly_chunks",
            log_rule("hourly_chunks", "0 0 * * * *", "once", "chunked"),
        )];
        let fixture = fixture(&db.url, &rules).await;
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(fixture.create("item", json!({ "name": "tick" })).await);
        }
        fixture.create("item", json!({ "name": "other" })).await;
        ids.sort();
        let scheduler = fixture.scheduler().with_chunk(2);
        scheduler.tick().await.unwrap();
        fixture.set(start() + chrono::Duration::hours(1));
        scheduler.tick().await.unwrap();
        let runs = fixture.runs("hourly_chunks").await;
        assert_eq!(runs.len(), 1);
        assert_eq!(
            (runs[0].state.as_str(), runs[0].matched, runs[0].changed),
            ("done", 5, 5)
        );
        assert_eq!(runs[0].cursor.as_deref(), Some(ids[4].as_str()));
        fixture.drain_outbox().await;
        assert_eq!(fixture.notes("chunked").await, 5);
    }
);

keel_testkit::db_test!(
    a_disabled_rule_does_not_run_and_fires_no_catch_up_when_enabled_again,
    |db| async move {
        let enabled = log_rule("hourly", "0 0 * * * *", "once", "hourly");
        let disabled = format!("enabled: false\n{enabled}");
        let off = fixture(&db.url, &[("hourly", disabled)]).await;
        off.create("item", json!({ "name": "tick" })).await;
        off.scheduler().tick().await.unwrap();
        off.set(start() + chrono::Duration::minutes(5 * 60 + 30));
        off.scheduler().tick().await.unwrap();
        assert!(off.runs("hourly").await.is_empty());
        // The same database, the rule enabled again: the next hour runs, nothing before.
        let on = fixture(&db.url, &[("hourly", enabled)]).await;
        on.set(start() + chrono::Duration::hours(6));
        on.scheduler().tick().await.unwrap();
        let runs = on.runs("hourly").await;
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert!(!runs[0].catch_up);
        assert_eq!(runs[0].due_at, start() + chrono::Duration::hours(6));
    }
);

/// Serves the fixture's state on a free loopback port.
async fn serve(fixture: &Fixture) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(keel_web::serve_until(
        listener,
        fixture.state.clone(),
        std::future::pending(),
    ));
    format!("http://{address}/api/v1")
}

async fn login(base: &str, username: &str, password: &str) -> String {
    let (status, body) = send_json(
        reqwest::Client::new()
            .post(format!("{base}/auth/login"))
            .json(&json!({ "username": username, "password": password })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

keel_testkit::db_test!(
    the_admin_rules_api_lists_pages_and_starts_manual_runs_for_admins_only,
    |db| async move {
        let rules = [(
            "hourly_once",
            log_rule("hourly_once", "0 0 * * * *", "once", "manual"),
        )];
        let fixture = fixture(&db.url, &rules).await;
        crate::support::add_users(
            fixture.db(),
            fixture.state.schema(),
            &[
                ("admin", "admin-password", "admin"),
                ("rep", "rep-password", "rep"),
            ],
        )
        .await;
        fixture.create("item", json!({ "name": "tick" })).await;
        let base = serve(&fixture).await;
        let admin = login(&base, "admin", "admin-password").await;
        let rep = login(&base, "rep", "rep-password").await;
        let client = reqwest::Client::new();

        for (method, path) in [
            (reqwest::Method::GET, "/admin/rules"),
            (reqwest::Method::GET, "/admin/rules/hourly_once/runs"),
            (reqwest::Method::POST, "/admin/rules/hourly_once/run"),
        ] {
            let (status, body) = send_json(
                client
                    .request(method, format!("{base}{path}"))
                    .bearer_auth(&rep),
            )
            .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        }

        let (status, body) = send_json(
            client
                .get(format!("{base}/admin/rules"))
                .bearer_auth(&admin),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let list = body["data"].as_array().unwrap();
        let hourly = list
            .iter()
            .find(|rule| rule["name"] == "hourly_once")
            .unwrap();
        assert_eq!(hourly["kind"], "schedule");
        assert_eq!(hourly["object"], "item");
        assert_eq!(hourly["schedule"], "0 0 * * * *");
        assert_eq!(hourly["misfire"], "once");
        assert_eq!(hourly["enabled"], true);
        assert_eq!(hourly["last_run"], Value::Null);
        assert_eq!(hourly["next_due"], "2026-03-02T01:00:00.000Z");
        let event = list
            .iter()
            .find(|rule| rule["name"] == "on_create")
            .unwrap();
        assert_eq!(event["kind"], "event");

        let (status, body) = send_json(
            client
                .post(format!("{base}/admin/rules/nothing/run"))
                .bearer_auth(&admin),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, body) = send_json(
            client
                .post(format!("{base}/admin/rules/on_create/run"))
                .bearer_auth(&admin),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["errors"][0]["code"], "event_rule");

        let (status, started) = send_json(
            client
                .post(format!("{base}/admin/rules/hourly_once/run"))
                .bearer_auth(&admin),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{started}");
        assert_eq!(started["manual"], true);
        assert!(
            started["id"]
                .as_str()
                .unwrap()
                .starts_with("hourly_once|manual|")
        );
        let mut finished = Value::Null;
        for _ in 0..200 {
            let (_, body) = send_json(
                client
                    .get(format!("{base}/admin/rules/hourly_once/runs"))
                    .bearer_auth(&admin),
            )
            .await;
            if body["data"][0]["state"] == "done" {
                finished = body;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let run = &finished["data"][0];
        assert_eq!(run["manual"], true, "{finished}");
        assert_eq!(run["matched"], 1);
        assert_eq!(run["changed"], 1);
        assert_eq!(run["due_at"], "2026-03-02T00:00:00.000Z");
        assert!(run["finished_at"].is_string());
        assert_eq!(finished["next"], Value::Null);

        // Paging: two more runs, one per page.
        fixture.scheduler().run_manual("hourly_once").await.unwrap();
        fixture.clock.advance(chrono::Duration::seconds(1));
        fixture.scheduler().run_manual("hourly_once").await.unwrap();
        let mut seen = Vec::new();
        let mut path = format!("{base}/admin/rules/hourly_once/runs?limit=1");
        for _ in 0..5 {
            let (status, body) = send_json(client.get(&path).bearer_auth(&admin)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            seen.extend(
                body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|run| run["id"].clone()),
            );
            match body["next"].as_str() {
                Some(next) => {
                    path = format!(
                        "{base}/admin/rules/hourly_once/runs?limit=1&before={}",
                        urlencode(next)
                    );
                }
                None => break,
            }
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
        let distinct: std::collections::HashSet<String> =
            seen.iter().map(ToString::to_string).collect();
        assert_eq!(distinct.len(), 3);

        let (status, body) = send_json(
            client
                .get(format!("{base}/admin/rules/nothing/runs"))
                .bearer_auth(&admin),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        fixture.drain_outbox().await;
        assert_eq!(fixture.notes("manual").await, 3);
    }
);

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

keel_testkit::db_test!(
    the_standard_apps_reminders_notify_the_right_users_and_set_their_fields_at_their_due_times,
    |db| async move {
        let schema = Arc::new(
            keel_meta::load_app(&crate::support::repository_root())
                .unwrap_or_else(|errors| panic!("standard app:\n{errors}")),
        );
        let fixture = open(&db.url, schema, None).await;
        let db_ = fixture.db();
        crate::support::add_users(
            db_,
            fixture.state.schema(),
            &[("boss", "boss-password", "sales_manager")],
        )
        .await;
        let boss = keel_store::users::find_by_username(db_, "boss")
            .await
            .unwrap()
            .unwrap();
        keel_runtime::accounts::add_user(
            db_,
            fixture.state.schema(),
            keel_runtime::accounts::NewUser {
                username: "rep".to_owned(),
                display_name: None,
                password: "rep-password".to_owned(),
                roles: vec!["sales_rep".to_owned()],
                manager: Some("boss".to_owned()),
                department: None,
                language: Some("en".to_owned()),
                email: None,
            },
        )
        .await
        .unwrap();
        let rep = keel_store::users::find_by_username(db_, "rep")
            .await
            .unwrap()
            .unwrap();

        // 2026-03-02, 08:00 in Shanghai.
        let account = fixture
            .create("account", json!({ "name": "Acme", "owner": rep.id }))
            .await;
        let contract = fixture
            .create(
                "contract",
                json!({ "name": "C1", "account": account, "amount": "1000.00", "owner": rep.id }),
            )
            .await;
        let task_today = fixture
            .create(
                "task",
                json!({ "subject": "Call Acme", "due_at": "2026-03-02T15:00:00+08:00", "owner": rep.id }),
            )
            .await;
        fixture
            .create(
                "task",
                json!({ "subject": "Later", "due_at": "2026-03-09T15:00:00+08:00", "owner": rep.id }),
            )
            .await;
        let overdue = fixture
            .create(
                "payment_plan",
                json!({ "contract": contract, "installment": 1, "due_on": "2026-03-01",
                        "amount": "500.00", "status": "pending", "owner": rep.id }),
            )
            .await;
        let not_yet = fixture
            .create(
                "payment_plan",
                json!({ "contract": contract, "installment": 2, "due_on": "2026-03-05",
                        "amount": "500.00", "status": "pending", "owner": rep.id }),
            )
            .await;
        let urgent = fixture
            .create(
                "ticket",
                json!({ "subject": "Down", "account": account, "priority": "urgent",
                        "due_at": "2026-03-02T08:20:00+08:00", "owner": rep.id }),
            )
            .await;
        let normal = fixture
            .create(
                "ticket",
                json!({ "subject": "Slow", "account": account, "priority": "normal",
                        "due_at": "2026-03-02T08:20:00+08:00", "owner": rep.id }),
            )
            .await;
        let scheduler = fixture.scheduler();
        scheduler.tick().await.unwrap();
        let shanghai = |hour: u32, minute: u32| {
            chrono::FixedOffset::east_opt(8 * 3600)
                .unwrap()
                .with_ymd_and_hms(2026, 3, 2, hour, minute, 0)
                .unwrap()
                .with_timezone(&Utc)
        };
        let inbox = |user: String| async move {
            keel_store::outbox::notifications(db_, &user, false, None, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|notification| notification.message)
                .collect::<Vec<String>>()
        };
        let get = |object: &'static str, id: String| {
            let fixture = &fixture;
            async move {
                fixture
                    .records()
                    .get(&Actor::system(), object, &id)
                    .await
                    .unwrap()
            }
        };

        // 08:15: the urgent ticket is not past due yet.
        fixture.set(shanghai(8, 15));
        scheduler.tick().await.unwrap();
        fixture.drain_outbox().await;
        assert!(inbox(rep.id.clone()).await.is_empty());
        // 08:30: it is; escalated once, its owner and the sales managers told.
        fixture.set(shanghai(8, 30));
        scheduler.tick().await.unwrap();
        fixture.drain_outbox().await;
        assert_eq!(get("ticket", urgent.clone()).await["escalated"], true);
        assert_eq!(get("ticket", normal).await["escalated"], false);
        let rep_inbox = inbox(rep.id.clone()).await;
        assert_eq!(rep_inbox.len(), 1, "{rep_inbox:?}");
        assert!(rep_inbox[0].contains("Down"), "{rep_inbox:?}");
        let boss_inbox = inbox(boss.id.clone()).await;
        assert_eq!(boss_inbox.len(), 1, "{boss_inbox:?}");
        // 08:45: escalated already, nothing more.
        fixture.set(shanghai(8, 45));
        scheduler.tick().await.unwrap();
        fixture.drain_outbox().await;
        assert_eq!(inbox(rep.id.clone()).await.len(), 1);

        // 09:00: today's task reminds its owner, next week's does not.
        fixture.set(shanghai(9, 0));
        scheduler.tick().await.unwrap();
        fixture.drain_outbox().await;
        let rep_inbox = inbox(rep.id.clone()).await;
        assert_eq!(rep_inbox.len(), 2, "{rep_inbox:?}");
        assert!(rep_inbox[0].contains("Call Acme"), "{rep_inbox:?}");
        let reminders = fixture.runs("follow_up_reminder").await;
        assert_eq!((reminders.len(), reminders[0].matched), (1, 1));
        let _ = task_today;

        // 10:00: yesterday's payment is overdue: marked, its owner and their manager told.
        for (hour, minute) in [(9, 15), (9, 30), (9, 45), (10, 0)] {
            fixture.set(shanghai(hour, minute));
            scheduler.tick().await.unwrap();
        }
        fixture.drain_outbox().await;
        assert_eq!(get("payment_plan", overdue).await["status"], "overdue");
        assert_eq!(get("payment_plan", not_yet).await["status"], "pending");
        let rep_inbox = inbox(rep.id.clone()).await;
        assert_eq!(rep_inbox.len(), 3, "{rep_inbox:?}");
        assert!(rep_inbox[0].contains("500"), "{rep_inbox:?}");
        let boss_inbox = inbox(boss.id.clone()).await;
        assert_eq!(boss_inbox.len(), 2, "{boss_inbox:?}");
        assert!(boss_inbox[0].contains("500"), "{boss_inbox:?}");
        let overdue_runs = fixture.runs("payment_overdue").await;
        assert_eq!(overdue_runs.len(), 1);
        assert_eq!(overdue_runs[0].due_at, shanghai(10, 0));
    }
);
