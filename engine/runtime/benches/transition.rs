//! What a transition costs against a plain update of the same record (docs/processes.md;
//! the target is a transition ≤ 1.5× a plain update): `Records::update` of one field
//! against `Processes::transition` between two neighbouring stages (no required fields, no
//! guard, no approval), each one write transaction on the same record, on SQLite and on
//! PostgreSQL (the testkit's throwaway cluster; skipped when `KEEL_SKIP_POSTGRES=1` and no
//! server). Run with `cargo bench -p keel-runtime --bench transition`; results go to
//! BENCHMARKS.md.
//!
//! The transition does what a plain update does (lock, audit, version, outbox check) plus
//! resolving the move and writing one stage-history row (whose time in the stage left the
//! insert computes).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_runtime::actor::Actor;
use keel_runtime::clock::SystemClock;
use keel_runtime::processes::Processes;
use keel_runtime::records::{Input, Records};
use keel_testkit::{Backend, TestDb};
use serde_json::json;

const APP: &str = "name: Transition bench\nlanguage: en\ntimezone: Asia/Shanghai\n";
const ROLES: &str = "roles:\n  admin: { admin: true }\n";
const DEAL: &str = "\
name: deal
title: name
fields:
  name: { type: text, required: true }
  note: { type: text }
  stage: { type: choice, options: [open, working, won] }
";
const PROCESS: &str = "\
name: deal_flow
object: deal
stage_field: stage
stages:
  - { key: open, probability: 10 }
  - { key: working, probability: 50 }
  - { key: won, probability: 100, outcome: won }
transitions:
  - { linear: true }
";

fn input(value: serde_json::Value) -> Input {
    match value {
        serde_json::Value::Object(map) => map,
        _ => Input::new(),
    }
}

fn transitions(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|error| panic!("{error}"));
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("temp dir: {error}"));
    for (path, text) in [
        ("metadata/app.yaml", APP),
        ("metadata/roles.yaml", ROLES),
        ("metadata/objects/deal.yaml", DEAL),
        ("workflows/processes/deal_flow.yaml", PROCESS),
    ] {
        let path = dir.path().join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|error| panic!("{error}"));
        }
        std::fs::write(&path, text).unwrap_or_else(|error| panic!("{error}"));
    }
    let schema = match keel_meta::load_app(dir.path()) {
        Ok(schema) => Arc::new(schema),
        Err(errors) => panic!("the bench app does not load:\n{errors}"),
    };
    let mut group = c.benchmark_group("transition");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(2));
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(test_db) = runtime.block_on(TestDb::new(backend)) else {
            continue;
        };
        let (records, id) = runtime.block_on(async {
            let db = keel_store::Db::connect(&test_db.url)
                .await
                .unwrap_or_else(|error| panic!("{error}"));
            keel_store::migrate::apply(&db, &schema, false)
                .await
                .unwrap_or_else(|error| panic!("{error}"));
            let records = Records::new(schema.clone(), db, Arc::new(SystemClock));
            let saved = records
                .create(&Actor::system(), "deal", input(json!({ "name": "Bench" })))
                .await
                .unwrap_or_else(|error| panic!("{error}"));
            let id = saved.record["id"].as_str().unwrap_or_default().to_owned();
            (records, id)
        });
        let processes = Processes::new(records.clone());
        let actor = Actor::system();
        let mut counter = 0_u64;
        group.bench_function(format!("{backend}/plain_update"), |b| {
            b.iter(|| {
                counter += 1;
                let note = input(json!({ "note": format!("note {counter}") }));
                runtime
                    .block_on(records.update(&actor, "deal", &id, note, None))
                    .unwrap_or_else(|error| panic!("{error}"));
            });
        });
        let mut forward = true;
        group.bench_function(format!("{backend}/transition"), |b| {
            b.iter(|| {
                let to = if forward { "working" } else { "open" };
                forward = !forward;
                runtime
                    .block_on(processes.transition(&actor, "deal", &id, to, None, Input::new()))
                    .unwrap_or_else(|error| panic!("{error}"));
            });
        });
    }
    group.finish();
}

criterion_group!(benches, transitions);
criterion_main!(benches);
