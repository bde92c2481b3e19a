//! Exactly-once across real processes (docs/scheduler.md): three `keel serve` processes on
//! one PostgreSQL database (two on one SQLite file) run a 1-second rule and a 1-second pool
//! sweep for 60 s; one of them is killed with SIGKILL on the way. Afterwards every due second
//! is in the run records exactly once, finished, and its action happened exactly once.
//!
//! The pool sweep has held records falling due one after another during the run: each is
//! returned exactly once, with one return in its pool history and one notification to the
//! rep who held it.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use keel_store::outbox::ListState;
use keel_store::schedule::{self, Run};
use serde_json::json;

use crate::support::{AppDir, keel_binary};

const APP: &str = "\
name: { en: Scheduler processes }
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
  last_follow_up_at: { type: datetime }
";

const LOG: &str = "\
name: log
title: note
fields:
  note: { type: text }
";

const EVERY_SECOND: &str = "\
name: every_second
object: item
schedule: \"* * * * * *\"
misfire: all
where: { name: tick }
action: { create: { object: log, values: { note: second } } }
";

const POOL: &str = "\
name: item_pool
object: item
members: [rep]
managers: [admin]
auto_return:
  schedule: \"* * * * * *\"
  rules:
    - no_follow_up_for: 1d
      follow_up_field: last_follow_up_at
notify_on_return: true
";

/// Records the rule matches each second.
const MATCHING: usize = 40;
/// Records held from the pool that fall due during the run, one a second from second 10.
const HELD: usize = 30;
/// How long the processes run.
const RUN_FOR: Duration = Duration::from_secs(60);

/// A `keel serve` process; killed when dropped.
struct Process {
    child: Child,
}

impl Process {
    fn start(app: &AppDir, db_url: &str) -> Process {
        let mut child = Command::new(keel_binary())
            .args([
                "serve",
                "--app",
                app.path().to_str().unwrap(),
                "--db",
                db_url,
                "--listen",
                "127.0.0.1:0",
            ])
            .current_dir(app.path())
            .env_remove("KEEL_ADMIN_PASSWORD")
            .env_remove("KEEL_SCHEDULER")
            .env("KEEL_LOG", "error")
            .env("KEEL_SCHEDULER_LEASE_SECS", "3")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn keel serve");
        // Wait (at most 60 s) for the line that says where it listens.
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        loop {
            let line = receiver
                .recv_timeout(Duration::from_secs(60))
                .expect("keel serve says where it listens");
            if line.contains("http://127.0.0.1:") {
                break;
            }
        }
        Process { child }
    }

    fn kill_hard(mut self) {
        self.child.kill().expect("SIGKILL keel serve");
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (at most 30 s) for the process to finish what it started.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().expect("wait").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("keel serve did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every run of `job`.
async fn runs(db: &keel_store::Db, job: &str) -> Vec<Run> {
    let mut all = Vec::new();
    let mut before: Option<(DateTime<Utc>, String)> = None;
    for _ in 0..100 {
        let page = schedule::runs(
            db,
            job,
            before.as_ref().map(|(at, id)| (*at, id.as_str())),
            1000,
        )
        .await
        .unwrap();
        let last = page.last().map(|run| (run.due_at, run.id.clone()));
        all.extend(page);
        match last {
            Some(last) => before = Some(last),
            None => break,
        }
    }
    all
}

/// Asserts that `runs` are one finished run per second from the first to the last.
fn assert_every_second_once(job: &str, runs: &[Run]) {
    assert!(runs.len() >= 30, "{job}: only {} runs in 60 s", runs.len());
    let unfinished: Vec<&Run> = runs.iter().filter(|run| run.state != "done").collect();
    assert!(
        unfinished.is_empty(),
        "{job}: unfinished runs {unfinished:?}"
    );
    let seconds: BTreeSet<i64> = runs.iter().map(|run| run.due_at.timestamp()).collect();
    assert_eq!(seconds.len(), runs.len(), "{job}: a second ran twice");
    let first = *seconds.first().unwrap();
    let last = *seconds.last().unwrap();
    assert_eq!(
        i64::try_from(seconds.len()).unwrap(),
        last - first + 1,
        "{job}: a second is missing between {first} and {last}"
    );
}

keel_testkit::db_test!(
    processes_sharing_one_database_run_every_due_second_once_even_when_one_is_killed,
    |db| async move {
        let processes = match db.backend {
            keel_testkit::Backend::Postgres => 3,
            keel_testkit::Backend::Sqlite => 2,
        };
        let app = AppDir::new(&[
            ("metadata/app.yaml", APP),
            ("metadata/roles.yaml", ROLES),
            ("metadata/objects/item.yaml", ITEM),
            ("metadata/objects/log.yaml", LOG),
            ("metadata/pools/item_pool.yaml", POOL),
            ("workflows/rules/every_second.yaml", EVERY_SECOND),
        ]);
        let schema = Arc::new(
            keel_meta::load_app(app.path())
                .unwrap_or_else(|errors| panic!("fixture app:\n{errors}")),
        );
        // Migrated and peopled before the processes start, so they race only on the schedule.
        let store = keel_store::Db::connect(&db.url).await.unwrap();
        keel_store::migrate::apply(&store, &schema, false)
            .await
            .unwrap();
        crate::support::add_users(
            &store,
            &schema,
            &[
                ("admin", "admin-password", "admin"),
                ("rep1", "rep-password", "rep"),
            ],
        )
        .await;
        let rep = keel_store::users::find_by_username(&store, "rep1")
            .await
            .unwrap()
            .unwrap()
            .id;
        let records = keel_runtime::records::Records::new(
            Arc::clone(&schema),
            store.clone(),
            Arc::new(keel_runtime::clock::SystemClock),
        );
        for index in 0..MATCHING {
            let mut input = serde_json::Map::new();
            input.insert("name".to_owned(), json!("tick"));
            records
                .create(&keel_runtime::actor::Actor::system(), "item", input)
                .await
                .unwrap_or_else(|error| panic!("item {index}: {error}"));
        }

        // Held by rep1 since a day ago less 10 + k seconds (created into the pool with an owner,
        // they count from `created_at`): the k-th falls due 10 + k seconds from now.
        let now = keel_runtime::clock::Clock::now(&keel_runtime::clock::SystemClock);
        let past = keel_runtime::clock::ManualClock::new(now);
        let held_records = keel_runtime::records::Records::new(
            Arc::clone(&schema),
            store.clone(),
            Arc::new(past.clone()),
        );
        let mut held = Vec::new();
        for k in 0..HELD {
            past.set(now - chrono::Duration::days(1) + chrono::Duration::seconds(10 + k as i64));
            let mut input = serde_json::Map::new();
            input.insert("name".to_owned(), json!("held"));
            input.insert("pool".to_owned(), json!("item_pool"));
            input.insert("owner".to_owned(), json!(rep));
            let saved = held_records
                .create(&keel_runtime::actor::Actor::system(), "item", input)
                .await
                .unwrap_or_else(|error| panic!("held item {k}: {error}"));
            held.push(saved.record["id"].as_str().unwrap().to_owned());
        }

        let mut running: Vec<Process> = (0..processes)
            .map(|_| Process::start(&app, &db.url))
            .collect();
        let started = Instant::now();
        // Kill one process early on (so the outbox rows it had claimed are free again before
        // the end), aiming at one that holds a running run: poll for one for up to 10 s, else
        // kill the first process wherever it is.
        tokio::time::sleep(RUN_FOR / 12).await;
        let pids: Vec<u32> = running.iter().map(|process| process.child.id()).collect();
        let mut victim = 0;
        let mut mid_run = false;
        let aim_until = Instant::now() + Duration::from_secs(10);
        'aim: while Instant::now() < aim_until {
            for job in ["every_second", "pool:item_pool"] {
                for run in schedule::runs(&store, job, None, 3).await.unwrap() {
                    let pid = run
                        .process
                        .split('/')
                        .nth(1)
                        .and_then(|pid| pid.parse().ok());
                    if run.state == "running"
                        && let Some(index) = pids.iter().position(|p| Some(*p) == pid)
                    {
                        victim = index;
                        mid_run = true;
                        break 'aim;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        running.remove(victim).kill_hard();
        let killed_at = keel_runtime::clock::Clock::now(&keel_runtime::clock::SystemClock);
        tokio::time::sleep(RUN_FOR.saturating_sub(started.elapsed())).await;
        for process in running {
            process.stop();
        }

        // The outbox rows the stopped processes left are done by a worker here (the killed
        // process's claims free up when their lease runs out: at most 60 s after the kill).
        let worker = keel_runtime::outbox::OutboxWorker::new(records.clone());
        let deadline = Instant::now() + Duration::from_secs(70);
        while Instant::now() < deadline {
            worker.work_once().await.unwrap();
            if keel_store::outbox::counts(&store).await.unwrap().0 == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let rule_runs = runs(&store, "every_second").await;
        assert_every_second_once("every_second", &rule_runs);
        assert!(
            rule_runs
                .iter()
                .all(|run| run.matched == MATCHING as i64 && run.changed == MATCHING as i64),
            "every run queued the action of each matching record once"
        );
        assert!(
            rule_runs.iter().any(|run| run.due_at > killed_at),
            "the survivors carried on after the kill"
        );
        let pool_runs = runs(&store, "pool:item_pool").await;
        assert_every_second_once("pool:item_pool", &pool_runs);
        // Every held record came back once, with one return event and one notification.
        let notes = keel_store::outbox::notifications(&store, &rep, false, None, 500)
            .await
            .unwrap();
        for id in &held {
            let events = keel_store::pools::history(&store, "item", id)
                .await
                .unwrap();
            let returns = events
                .iter()
                .filter(|event| event.action == "return")
                .count();
            assert_eq!(
                returns, 1,
                "item {id}: returns in its pool history {events:?}"
            );
            let told = notes
                .iter()
                .filter(|note| note.record_id.as_deref() == Some(id.as_str()))
                .count();
            assert_eq!(told, 1, "item {id}: notifications to its previous owner");
        }
        let items = keel_store::records::select(
            &store,
            &keel_store::records::SelectQuery::new(schema.object("item").unwrap()),
        )
        .await
        .unwrap();
        let still_held = items
            .iter()
            .filter(|row| !matches!(row.get("owner"), None | Some(keel_meta::Value::Null)))
            .filter(|row| {
                row.get("id").is_some_and(|id| {
                    held.iter()
                        .any(|h| keel_meta::Value::Text(h.clone()) == *id)
                })
            })
            .count();
        assert_eq!(still_held, 0, "no held record is still held");

        // Each run's actions happened exactly once: one outbox row per run and record (the
        // key names both), each done, and one log record per row.
        let mut per_run: HashMap<String, usize> = HashMap::new();
        let mut before: Option<String> = None;
        for _ in 0..1000 {
            let page = keel_store::outbox::list(&store, ListState::Done, before.as_deref(), 500)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            before = Some(last.id.clone());
            for entry in &page {
                if let Some((_, run)) = entry.idempotency_key.split_once("/schedule/")
                    && entry.kind == "rule"
                {
                    *per_run.entry(run.to_owned()).or_default() += 1;
                }
            }
        }
        let (pending, dead) = keel_store::outbox::counts(&store).await.unwrap();
        assert_eq!((pending, dead), (0, 0), "every action done");
        assert_eq!(per_run.len(), rule_runs.len());
        for run in &rule_runs {
            assert_eq!(per_run.get(&run.id), Some(&MATCHING), "{}", run.id);
        }
        let logs = keel_store::records::select(
            &store,
            &keel_store::records::SelectQuery::new(schema.object("log").unwrap()),
        )
        .await
        .unwrap();
        assert_eq!(
            logs.len(),
            rule_runs.len() * MATCHING,
            "one action per record and second"
        );
        let taken_over = rule_runs.iter().filter(|run| run.attempts > 1).count();
        println!(
            "{processes} processes, {} seconds run, killed one mid-run: {mid_run}, {taken_over} runs taken over after the kill",
            rule_runs.len(),
        );
    }
);
