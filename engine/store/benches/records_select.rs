//! Micro-benchmarks of the record read path in `keel-store`: a `Condition` built into SQL,
//! bound, run on SQLite and decoded into rows, on a temporary database holding 2,000 leads
//! of the benchmark app (`bench/app`). Run with `cargo bench -p keel-store`; results are
//! recorded in BENCHMARKS.md.
//!
//! The statement builder is private to the crate, so the conditions are measured through the
//! public `records::select` with `LIMIT 0`: SQLite then stops before reading a row and the
//! time is building the SQL text, binding its values, and one prepared-statement cache hit.
//! The `get` and `list` cases read real rows. Kept short (small samples, brief measurement).

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use chrono::{TimeZone as _, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use keel_meta::{Schema, Value};
use keel_store::Db;
use keel_store::records::{CompareOp, Condition, Row, SelectQuery, Sort, select};

const LEADS: usize = 2_000;
const STATUSES: [&str; 5] = ["new", "contacted", "qualified", "converted", "invalid"];

struct Fixture {
    runtime: tokio::runtime::Runtime,
    schema: Schema,
    db: Db,
    some_id: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/app");
    let schema = match keel_meta::load_app(&app) {
        Ok(schema) => schema,
        Err(errors) => panic!("bench/app does not load:\n{errors}"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("tokio runtime: {error}"));
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("temp dir: {error}"));
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (db, some_id) = runtime.block_on(async {
        let db = Db::connect(&url)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        keel_store::migrate::apply(&db, &schema, false)
            .await
            .unwrap_or_else(|error| panic!("migrating bench/app: {error}"));
        let object = schema
            .object("lead")
            .unwrap_or_else(|| panic!("no lead object"));
        let rows: Vec<Row> = (0..LEADS).map(lead_row).collect();
        let mut write = db
            .begin_records_write()
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        write
            .insert_many(object, &rows)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        write
            .commit()
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let some_id = match rows[LEADS / 2].get("id") {
            Some(Value::Text(id)) => id.clone(),
            _ => panic!("lead rows have text ids"),
        };
        (db, some_id)
    });
    Fixture {
        runtime,
        schema,
        db,
        some_id,
        _dir: dir,
    }
}

/// Lead `index`, with every column a Keel-created lead has.
fn lead_row(index: usize) -> Row {
    let at = Utc
        .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + chrono::Duration::minutes(i64::try_from(index).unwrap_or(0));
    let text = |value: String| Value::Text(value);
    let mut row = Row::new();
    row.insert("id".into(), text(uuid::Uuid::now_v7().to_string()));
    row.insert("owner".into(), text("u1".into()));
    row.insert("created_at".into(), Value::Datetime(at));
    row.insert("created_by".into(), text("u1".into()));
    row.insert("updated_at".into(), Value::Datetime(at));
    row.insert("updated_by".into(), text("u1".into()));
    row.insert("version".into(), Value::Integer(1));
    row.insert("deleted_at".into(), Value::Null);
    row.insert("deleted_by".into(), Value::Null);
    row.insert("name".into(), text(format!("王{index}")));
    row.insert("company".into(), text(format!("上海{index}科技有限公司")));
    row.insert("phone".into(), text(format!("138{index:08}")));
    row.insert("email".into(), text(format!("lead{index}@example.com")));
    row.insert("source".into(), text("web".into()));
    row.insert(
        "status".into(),
        text(STATUSES[index % STATUSES.len()].into()),
    );
    row.insert(
        "score".into(),
        Value::Integer(i64::try_from(index % 101).unwrap_or(0)),
    );
    row
}

fn compare(column: &str, op: CompareOp, value: Value) -> Condition {
    Condition::Compare {
        column: column.to_owned(),
        op,
        value,
    }
}

fn status_is(status: &str) -> Condition {
    compare("status", CompareOp::Eq, Value::Text(status.to_owned()))
}

fn by_score() -> Vec<Sort> {
    vec![Sort {
        column: "score".to_owned(),
        descending: true,
    }]
}

fn conditions_to_sql(c: &mut Criterion) {
    let fixture = fixture();
    let Some(object) = fixture.schema.object("lead") else {
        panic!("no lead object")
    };
    let simple = Condition::All(vec![Condition::Always, status_is("qualified")]);
    let typical = Condition::All(vec![
        Condition::OwnerIn(vec!["u1".to_owned(), "u2".to_owned()]),
        Condition::In {
            column: "status".to_owned(),
            values: vec![Value::Text("new".into()), Value::Text("contacted".into())],
        },
        compare("score", CompareOp::Gte, Value::Integer(50)),
        Condition::Contains {
            columns: vec!["name".into(), "company".into(), "phone".into()],
            text: "上海".into(),
        },
    ]);
    let nested = Condition::All(vec![
        Condition::IsNull {
            column: "owner".into(),
            null: false,
        },
        Condition::Any(vec![
            Condition::All(vec![
                status_is("qualified"),
                compare("score", CompareOp::Gte, Value::Integer(80)),
            ]),
            Condition::All(vec![
                Condition::In {
                    column: "source".into(),
                    values: vec![Value::Text("referral".into()), Value::Text("event".into())],
                },
                Condition::Like {
                    column: "name".into(),
                    pattern: "张*".into(),
                },
            ]),
        ]),
        Condition::Not(Box::new(Condition::IsNull {
            column: "company".into(),
            null: true,
        })),
    ]);
    let mut group = c.benchmark_group("store/condition_to_sql_limit_0");
    for (name, condition) in [
        ("one_compare", simple),
        ("four_leaves", typical),
        ("nested_or_not", nested),
    ] {
        let query = SelectQuery {
            condition,
            sort: by_score(),
            limit: Some(0),
            ..SelectQuery::new(object)
        };
        check(&fixture, &query);
        group.bench_function(name, |b| {
            b.iter(|| {
                fixture
                    .runtime
                    .block_on(select(&fixture.db, black_box(&query)))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("store/select");
    let get = SelectQuery {
        condition: Condition::All(vec![
            compare("id", CompareOp::Eq, Value::Text(fixture.some_id.clone())),
            Condition::Always,
        ]),
        limit: Some(1),
        ..SelectQuery::new(object)
    };
    check(&fixture, &get);
    group.bench_function("get_by_id", |b| {
        b.iter(|| {
            fixture
                .runtime
                .block_on(select(&fixture.db, black_box(&get)))
        })
    });
    let list = SelectQuery {
        condition: Condition::All(vec![Condition::Always, status_is("qualified")]),
        sort: by_score(),
        limit: Some(51),
        ..SelectQuery::new(object)
    };
    check(&fixture, &list);
    group.bench_function("status_order_score_limit_51", |b| {
        b.iter(|| {
            fixture
                .runtime
                .block_on(select(&fixture.db, black_box(&list)))
        })
    });
    group.finish();
}

/// A benchmark of a failing query would measure the error path: make sure it runs.
fn check(fixture: &Fixture, query: &SelectQuery<'_>) {
    if let Err(error) = fixture.runtime.block_on(select(&fixture.db, query)) {
        panic!("benchmark query fails: {error}");
    }
}

fn quick() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = quick();
    targets = conditions_to_sql
}
criterion_main!(benches);
