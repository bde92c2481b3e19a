//! `keel_store::records` against real databases: every test body runs on SQLite and on
//! PostgreSQL. Each test migrates a small fixture app (one object with a field of every
//! storage), writes rows through `RecordWrite` and reads them back through the public API.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone as _, Utc};
use keel_meta::{Object, Schema, Value};
use keel_store::records::{
    self, AuditEntry, CompareOp, Condition, Deleted, Measure, Row, SelectQuery, Sort,
};
use keel_store::{Db, StoreError};
use keel_testkit::{TestDb, db_test};
use rust_decimal::Decimal;

use crate::support::AppDir;

const DEAL: &str = "\
name: deal
title: name
search: [name, notes]
fields:
  name: { type: text }
  code: { type: text, unique: true }
  notes: { type: long_text }
  stage: { type: choice, options: [new, won, lost] }
  tags: { type: multi_choice, options: [vip, hot, cold] }
  amount: { type: money }
  rate: { type: decimal, scale: 4 }
  score: { type: integer }
  active: { type: boolean }
  close_date: { type: date }
  closed_at: { type: datetime }
";

/// A migrated database holding the fixture app, and the app's schema.
async fn fixture(test_db: &TestDb) -> (Db, Schema) {
    let app = AppDir::new(&[
        ("metadata/app.yaml", "name: Test\n"),
        ("metadata/roles.yaml", "roles:\n  admin: { admin: true }\n"),
        ("metadata/objects/deal.yaml", DEAL),
    ]);
    let schema =
        keel_meta::load_app(app.path()).unwrap_or_else(|errors| panic!("fixture app:\n{errors}"));
    let db = Db::connect(&test_db.url).await.unwrap();
    keel_store::migrate::apply(&db, &schema, false)
        .await
        .unwrap();
    (db, schema)
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 6, 7, 8, 9).unwrap()
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

fn money(value: &str) -> Value {
    Value::Decimal(value.parse().unwrap())
}

/// A new record `id` with its required system columns and `fields`.
fn record(id: &str, fields: &[(&str, Value)]) -> Row {
    let mut row = Row::new();
    row.insert("id".into(), text(id));
    row.insert("created_at".into(), Value::Datetime(at()));
    row.insert("updated_at".into(), Value::Datetime(at()));
    for (name, value) in fields {
        row.insert((*name).to_owned(), value.clone());
    }
    row
}

async fn insert(db: &Db, object: &Object, rows: &[Row]) {
    let mut write = db.begin_records_write().await.unwrap();
    write.insert_many(object, rows).await.unwrap();
    write.commit().await.unwrap();
}

fn ids(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .map(|row| match &row["id"] {
            Value::Text(id) => id.clone(),
            other => panic!("id {other:?}"),
        })
        .collect()
}

fn compare(column: &str, op: CompareOp, value: Value) -> Condition {
    Condition::Compare {
        column: column.into(),
        op,
        value,
    }
}

async fn matching(db: &Db, object: &Object, condition: Condition) -> Vec<String> {
    let query = SelectQuery {
        condition,
        ..SelectQuery::new(object)
    };
    ids(&records::select(db, &query).await.unwrap())
}

db_test!(
    every_storage_type_round_trips_through_insert_and_get,
    |test_db| async move {
        let (db, schema) = fixture(&test_db).await;
        let deal = &schema.objects["deal"];
        let closed_at =
            Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap() + Duration::microseconds(123_456);
        let full = record(
            "full",
            &[
                ("owner", text("user-1")),
                ("name", text("Ünïcødé 客户 🚀 'quoted' \"double\" \\back")),
                ("code", text("C-1")),
                ("notes", text("line one\nline two\ttab")),
                ("stage", text("won")),
                ("tags", Value::List(vec!["vip".into(), "hot".into()])),
                ("amount", money("1999.99")),
                ("rate", money("-0.0001")),
                ("score", Value::Integer(i64::MAX)),
                ("active", Value::Boolean(true)),
                (
                    "close_date",
                    Value::Date(NaiveDate::from_ymd_opt(2026, 12, 31).unwrap()),
                ),
                ("closed_at", Value::Datetime(closed_at)),
            ],
        );
        let whole_money = record(
            "whole",
            &[
                ("amount", Value::Decimal(Decimal::from(1999))),
                ("active", Value::Boolean(false)),
                ("tags", Value::List(Vec::new())),
                ("score", Value::Integer(i64::MIN)),
            ],
        );
        let empty = record("empty", &[]);
        insert(&db, deal, &[full.clone(), whole_money, empty]).await;

        let read = records::get(&db, deal, "full", Deleted::Exclude)
            .await
            .unwrap()
            .unwrap();
        for (column, value) in &full {
            assert_eq!(&read[column.as_str()], value, "{column}");
        }
        assert_eq!(read["version"], Value::Integer(1));
        assert_eq!(read["amount"].to_json(), serde_json::json!("1999.99"));
        assert_eq!(
            read["closed_at"].to_json(),
            serde_json::json!("2026-01-02T03:04:05.123456Z")
        );

        let whole = records::get(&db, deal, "whole", Deleted::Exclude)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(whole["amount"].to_json(), serde_json::json!("1999.00"));
        assert_eq!(whole["active"], Value::Boolean(false));
        assert_eq!(whole["tags"], Value::List(Vec::new()));
        assert_eq!(whole["score"], Value::Integer(i64::MIN));

        let empty = records::get(&db, deal, "empty", Deleted::Exclude)
            .await
            .unwrap()
            .unwrap();
        for column in ["owner", "name", "tags", "amount", "active", "closed_at"] {
            assert_eq!(empty[column], Value::Null, "{column}");
        }
        assert_eq!(
            records::get(&db, deal, "missing", Deleted::Include)
                .await
                .unwrap(),
            None
        );
    }
);

/// One row of the condition tests: `(id, name, score, amount, stage, owner, tags)`.
type ConditionRow = (
    &'static str,
    Option<&'static str>,
    Option<i64>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    &'static [&'static str],
);

/// Rows for the condition tests, some fields empty.
fn condition_rows() -> Vec<Row> {
    let rows: [ConditionRow; 7] = [
        (
            "a",
            Some("Alpha Corp"),
            Some(10),
            Some("100.00"),
            Some("new"),
            Some("u1"),
            &["vip"],
        ),
        (
            "b",
            Some("50% off_sale"),
            Some(20),
            Some("200.50"),
            Some("won"),
            Some("u2"),
            &["hot", "vip"],
        ),
        (
            "c",
            Some("50 percent offXsale"),
            None,
            None,
            Some("lost"),
            None,
            &[],
        ),
        (
            "d",
            Some("北京客户有限公司"),
            Some(10),
            Some("-5.25"),
            None,
            Some("u1"),
            &["cold"],
        ),
        (
            "e",
            None,
            Some(30),
            Some("0.00"),
            Some("new"),
            Some("u3"),
            &[],
        ),
        (
            "f",
            Some("alpha lower"),
            Some(-1),
            Some("999999.99"),
            Some("won"),
            Some("u2"),
            &["hot"],
        ),
        ("g", Some("back\\slash"), Some(0), None, None, None, &[]),
    ];
    rows.iter()
        .map(|(id, name, score, amount, stage, owner, tags)| {
            let optional = |value: Option<Value>| value.unwrap_or(Value::Null);
            record(
                id,
                &[
                    ("name", optional(name.map(text))),
                    ("score", optional(score.map(Value::Integer))),
                    ("amount", optional(amount.map(money))),
                    ("stage", optional(stage.map(text))),
                    ("owner", optional(owner.map(text))),
                    (
                        "tags",
                        if tags.is_empty() {
                            Value::Null
                        } else {
                            Value::List(tags.iter().map(|tag| (*tag).to_owned()).collect())
                        },
                    ),
                ],
            )
        })
        .collect()
}

db_test!(
    every_condition_selects_the_expected_records,
    |test_db| async move {
        let (db, schema) = fixture(&test_db).await;
        let deal = &schema.objects["deal"];
        insert(&db, deal, &condition_rows()).await;
        let check = |condition: Condition, expected: &'static [&'static str]| {
            let db = db.clone();
            async move {
                let found = matching(&db, deal, condition.clone()).await;
                assert_eq!(found, expected, "{condition:?}");
                let counted = records::count(&db, deal, &condition, Deleted::Exclude)
                    .await
                    .unwrap();
                assert_eq!(counted, expected.len() as i64, "count of {condition:?}");
            }
        };
        use CompareOp::*;
        // Comparisons, with empty fields never equal and always "not equal".
        check(compare("score", Eq, Value::Integer(10)), &["a", "d"]).await;
        check(
            compare("score", Ne, Value::Integer(10)),
            &["b", "c", "e", "f", "g"],
        )
        .await;
        check(compare("score", Gt, Value::Integer(10)), &["b", "e"]).await;
        check(
            compare("score", Gte, Value::Integer(10)),
            &["a", "b", "d", "e"],
        )
        .await;
        check(compare("score", Lt, Value::Integer(10)), &["f", "g"]).await;
        check(compare("score", Lte, Value::Integer(0)), &["f", "g"]).await;
        check(compare("amount", Gt, money("100")), &["b", "f"]).await;
        check(compare("amount", Lt, money("0.01")), &["d", "e"]).await;
        check(compare("score", Eq, Value::Null), &["c"]).await;
        check(
            compare("score", Ne, Value::Null),
            &["a", "b", "d", "e", "f", "g"],
        )
        .await;
        check(compare("score", Gt, Value::Null), &[]).await;
        // Text compares by binary order: digits, then upper case, then lower case.
        check(compare("name", Lt, text("B")), &["a", "b", "c"]).await;
        check(
            compare("tags", Eq, Value::List(vec!["hot".into(), "vip".into()])),
            &["b"],
        )
        .await;
        // Not is the exact complement, empty fields included.
        check(
            Condition::Not(Box::new(compare("stage", Eq, text("new")))),
            &["b", "c", "d", "f", "g"],
        )
        .await;
        // In, with an empty list and with NULL among the values.
        check(
            Condition::In {
                column: "stage".into(),
                values: vec![text("won"), text("lost")],
            },
            &["b", "c", "f"],
        )
        .await;
        check(
            Condition::In {
                column: "stage".into(),
                values: vec![],
            },
            &[],
        )
        .await;
        check(
            Condition::Not(Box::new(Condition::In {
                column: "stage".into(),
                values: vec![],
            })),
            &["a", "b", "c", "d", "e", "f", "g"],
        )
        .await;
        check(
            Condition::In {
                column: "stage".into(),
                values: vec![text("new"), Value::Null],
            },
            &["a", "d", "e", "g"],
        )
        .await;
        check(
            Condition::IsNull {
                column: "amount".into(),
                null: true,
            },
            &["c", "g"],
        )
        .await;
        check(
            Condition::IsNull {
                column: "amount".into(),
                null: false,
            },
            &["a", "b", "d", "e", "f"],
        )
        .await;
        // Like: whole value, `*` wildcard, `%` and `_` literal, ASCII case-insensitive.
        let like = |pattern: &str| Condition::Like {
            column: "name".into(),
            pattern: pattern.into(),
        };
        check(like("alpha*"), &["a", "f"]).await;
        check(like("ALPHA"), &[]).await;
        check(like("50% off_*"), &["b"]).await;
        check(like("50*off*sale"), &["b", "c"]).await;
        check(like("*_*"), &["b"]).await;
        check(like("北京*"), &["d"]).await;
        check(like("back\\slash"), &["g"]).await;
        check(
            Condition::Like {
                column: "amount".into(),
                pattern: "*.50".into(),
            },
            &["b"],
        )
        .await;
        // Contains: any column, case-insensitive, Chinese included.
        let contains = |columns: &[&str], text: &str| Condition::Contains {
            columns: columns.iter().map(|column| (*column).to_owned()).collect(),
            text: text.into(),
        };
        check(contains(&["name", "notes"], "客户"), &["d"]).await;
        check(contains(&["name"], "ALPHA"), &["a", "f"]).await;
        check(contains(&["name"], "%"), &["b"]).await;
        check(contains(&["name", "stage"], "on"), &["b", "f"]).await;
        check(contains(&[], "alpha"), &[]).await;
        // Permission scope: owners, with pool records (no owner) never matching.
        check(
            Condition::OwnerIn(vec!["u1".into(), "u3".into()]),
            &["a", "d", "e"],
        )
        .await;
        check(Condition::OwnerIn(vec![]), &[]).await;
        check(
            Condition::HasAny {
                column: "tags".into(),
                keys: vec!["vip".into(), "cold".into()],
            },
            &["a", "b", "d"],
        )
        .await;
        // Combinations and constants.
        check(
            Condition::All(vec![
                compare("score", Gte, Value::Integer(10)),
                Condition::Any(vec![
                    compare("stage", Eq, text("won")),
                    Condition::IsNull {
                        column: "stage".into(),
                        null: true,
                    },
                ]),
            ]),
            &["b", "d"],
        )
        .await;
        check(Condition::All(vec![]), &["a", "b", "c", "d", "e", "f", "g"]).await;
        check(Condition::Any(vec![]), &[]).await;
        check(Condition::Always, &["a", "b", "c", "d", "e", "f", "g"]).await;
        check(Condition::Never, &[]).await;
        db.close().await;
    }
);

db_test!(
    the_recycle_bin_is_honored_and_writes_roll_back_together,
    |test_db| async move {
        let (db, schema) = fixture(&test_db).await;
        let deal = &schema.objects["deal"];
        insert(
            &db,
            deal,
            &[
                record("live", &[]),
                record("binned", &[("deleted_at", Value::Datetime(at()))]),
            ],
        )
        .await;
        let visible = |deleted| {
            let db = db.clone();
            async move {
                let query = SelectQuery {
                    deleted,
                    ..SelectQuery::new(deal)
                };
                ids(&records::select(&db, &query).await.unwrap())
            }
        };
        assert_eq!(visible(Deleted::Exclude).await, ["live"]);
        assert_eq!(visible(Deleted::Only).await, ["binned"]);
        assert_eq!(visible(Deleted::Include).await, ["binned", "live"]);
        assert!(
            records::get(&db, deal, "binned", Deleted::Exclude)
                .await
                .unwrap()
                .is_none()
        );

        // Restore inside a transaction that sees the binned record, then roll back.
        let mut write = db.begin_records_write().await.unwrap();
        let locked = write.get_for_update(deal, "binned").await.unwrap().unwrap();
        assert_eq!(locked["deleted_at"], Value::Datetime(at()));
        let mut restore = Row::new();
        restore.insert("deleted_at".into(), Value::Null);
        assert!(write.update(deal, "binned", 1, &restore).await.unwrap());
        write.insert(deal, &record("new", &[])).await.unwrap();
        assert_eq!(write.next_sequence("deal").await.unwrap(), 1);
        // Dropping a transaction uncommitted rolls it back: numbers come back.
        drop(write);
        assert_eq!(visible(Deleted::Exclude).await, ["live"]);
        {
            let mut write = db.begin_records_write().await.unwrap();
            assert_eq!(write.next_sequence("deal").await.unwrap(), 1);
        }
        let mut write = db.begin_records_write().await.unwrap();
        assert_eq!(write.next_sequence("deal").await.unwrap(), 1);
        assert_eq!(write.next_sequence("deal").await.unwrap(), 2);
        assert_eq!(write.next_sequence("other").await.unwrap(), 1);
        write.commit().await.unwrap();
        db.close().await;
    }
);

db_test!(
    updates_carry_the_version_and_a_stale_version_changes_nothing,
    |test_db| async move {
        let (db, schema) = fixture(&test_db).await;
        let deal = &schema.objects["deal"];
        insert(&db, deal, &[record("r", &[("name", text("before"))])]).await;
        let mut changes = Row::new();
        changes.insert("name".into(), text("after"));
        changes.insert("updated_by".into(), text("u1"));

        let mut write = db.begin_records_write().await.unwrap();
        assert!(write.update(deal, "r", 1, &changes).await.unwrap());
        // The same expected version again is now stale.
        assert!(!write.update(deal, "r", 1, &changes).await.unwrap());
        assert!(!write.update(deal, "missing", 1, &changes).await.unwrap());
        write.commit().await.unwrap();
        let read = records::get(&db, deal, "r", Deleted::Exclude)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read["name"], text("after"));
        assert_eq!(read["updated_by"], text("u1"));
        assert_eq!(read["version"], Value::Integer(2));

        let mut sneaky = Row::new();
        sneaky.insert("version".into(), Value::Integer(99));
        let mut write = db.begin_records_write().await.unwrap();
        assert!(matches!(
            write.update(deal, "r", 2, &sneaky).await,
            Err(StoreError::InvalidRecordQuery { .. })
        ));
        drop(write);
        db.close().await;
    }
);

db_test!(unique_violations_name_the_column, |test_db| async move {
    let (db, schema) = fixture(&test_db).await;
    let deal = &schema.objects["deal"];
    insert(&db, deal, &[record("first", &[("code", text("C-1"))])]).await;
    let mut write = db.begin_records_write().await.unwrap();
    let error = write
        .insert(deal, &record("second", &[("code", text("C-1"))]))
        .await
        .unwrap_err();
    match &error {
        StoreError::UniqueViolation { table, column } => {
            assert_eq!((table.as_str(), column.as_deref()), ("deal", Some("code")));
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }
    assert!(error.to_string().contains("code"), "{error}");
    drop(write);

    let mut write = db.begin_records_write().await.unwrap();
    let error = write.insert(deal, &record("first", &[])).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::UniqueViolation { column: Some(column), .. } if column == "id"),
        "{error:?}"
    );
    drop(write);

    // An update into a taken value is refused the same way.
    insert(&db, deal, &[record("third", &[("code", text("C-3"))])]).await;
    let mut write = db.begin_records_write().await.unwrap();
    let mut changes = Row::new();
    changes.insert("code".into(), text("C-1"));
    assert!(matches!(
        write.update(deal, "third", 1, &changes).await,
        Err(StoreError::UniqueViolation { column: Some(column), .. }) if column == "code"
    ));
    drop(write);
    db.close().await;
});

db_test!(
    concurrent_sequence_numbers_are_gapless_and_unique,
    |test_db| async move {
        let (db, _schema) = fixture(&test_db).await;
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut write = db.begin_records_write().await.unwrap();
                    let number = write.next_sequence("deal").await.unwrap();
                    // Hold the transaction a moment so that the others really wait.
                    tokio::task::yield_now().await;
                    write.commit().await.unwrap();
                    number
                })
            })
            .collect();
        let mut numbers = Vec::new();
        for task in tasks {
            numbers.push(task.await.unwrap());
        }
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=32).collect::<Vec<i64>>());
        db.close().await;
    }
);

db_test!(
    aggregates_match_figures_computed_in_rust,
    |test_db| async move {
        let (db, schema) = fixture(&test_db).await;
        let deal = &schema.objects["deal"];
        let stages = [Some("new"), Some("won"), Some("lost"), None];
        let mut rows = Vec::new();
        let mut expected: HashMap<Option<&str>, (i64, Decimal, i64, Option<i64>)> = HashMap::new();
        for index in 0..300_i64 {
            let stage = stages[(index % 4) as usize];
            let amount = (index % 5 != 0).then(|| Decimal::new(index * 12_345 + 1, 2));
            let score = (index % 7 != 0).then_some(index % 13);
            let deleted = index % 50 == 0;
            rows.push(record(
                &format!("r{index:04}"),
                &[
                    ("stage", stage.map_or(Value::Null, text)),
                    ("amount", amount.map_or(Value::Null, Value::Decimal)),
                    ("score", score.map_or(Value::Null, Value::Integer)),
                    (
                        "deleted_at",
                        if deleted {
                            Value::Datetime(at())
                        } else {
                            Value::Null
                        },
                    ),
                ],
            ));
            if deleted {
                continue;
            }
            let entry = expected.entry(stage).or_insert((0, Decimal::ZERO, 0, None));
            entry.0 += 1;
            entry.1 += amount.unwrap_or_default();
            if let Some(score) = score {
                entry.2 += 1;
                entry.3 = Some(entry.3.map_or(score, |max: i64| max.max(score)));
            }
        }
        insert(&db, deal, &rows).await;
        let figures = records::aggregate(
            &db,
            deal,
            &Condition::Always,
            &["stage".to_owned()],
            &[
                Measure::Count,
                Measure::Sum("amount".into()),
                Measure::Max("score".into()),
                Measure::Avg("amount".into()),
            ],
        )
        .await
        .unwrap();
        // Empty group first, then by key.
        let keys: Vec<Value> = figures.iter().map(|row| row["stage"].clone()).collect();
        assert_eq!(keys, [Value::Null, text("lost"), text("new"), text("won")]);
        for row in &figures {
            let stage = match &row["stage"] {
                Value::Text(stage) => Some(stage.as_str()),
                _ => None,
            };
            let (count, sum, _, max) = expected[&stage];
            assert_eq!(row["count"], Value::Integer(count), "{stage:?}");
            assert_eq!(row["sum_amount"], Value::Decimal(sum), "{stage:?}");
            assert_eq!(
                row["sum_amount"].to_json(),
                serde_json::json!(sum.to_string())
            );
            assert_eq!(
                row["max_score"],
                max.map_or(Value::Null, Value::Integer),
                "{stage:?}"
            );
            assert!(matches!(row["avg_amount"], Value::Decimal(avg) if avg.scale() == 4));
            assert_eq!(
                row.keys().collect::<Vec<_>>(),
                ["stage", "count", "sum_amount", "max_score", "avg_amount"]
            );
        }
        // Without groups: one row, even when nothing matches.
        let nothing = records::aggregate(
            &db,
            deal,
            &Condition::Never,
            &[],
            &[
                Measure::Count,
                Measure::Sum("amount".into()),
                Measure::Avg("score".into()),
            ],
        )
        .await
        .unwrap();
        assert_eq!(nothing.len(), 1);
        assert_eq!(nothing[0]["count"], Value::Integer(0));
        assert_eq!(
            nothing[0]["sum_amount"].to_json(),
            serde_json::json!("0.00")
        );
        assert_eq!(nothing[0]["avg_score"], Value::Null);
        db.close().await;
    }
);

db_test!(history_is_read_back_oldest_first, |test_db| async move {
    let (db, _schema) = fixture(&test_db).await;
    let entry = |field: &str, minutes: i64, old, new, action: &str| AuditEntry {
        object: "deal".into(),
        record_id: "r1".into(),
        at: at() + Duration::minutes(minutes),
        by: (minutes > 0).then(|| "u1".to_owned()),
        field: field.into(),
        old,
        new,
        action: action.into(),
    };
    let later = vec![
        entry(
            "stage",
            5,
            serde_json::json!("new"),
            serde_json::json!("won"),
            "update",
        ),
        entry(
            "amount",
            5,
            serde_json::json!("1.00"),
            serde_json::json!("1999.99"),
            "update",
        ),
    ];
    let first = vec![
        entry(
            "name",
            0,
            serde_json::Value::Null,
            serde_json::json!("客户 A"),
            "create",
        ),
        entry(
            "tags",
            0,
            serde_json::Value::Null,
            serde_json::json!(["vip", "hot"]),
            "create",
        ),
    ];
    let mut write = db.begin_records_write().await.unwrap();
    write.insert_audit(&later).await.unwrap();
    write.insert_audit(&first).await.unwrap();
    let mut other = first[0].clone();
    other.record_id = "r2".into();
    write.insert_audit(&[other]).await.unwrap();
    write.commit().await.unwrap();

    let history = records::history(&db, "deal", "r1").await.unwrap();
    let fields: Vec<&str> = history.iter().map(|entry| entry.field.as_str()).collect();
    assert_eq!(fields, ["name", "tags", "stage", "amount"]);
    assert_eq!(history[0], first[0]);
    assert_eq!(history[1], first[1]);
    assert_eq!(history[3], later[1]);
    db.close().await;
});

// ---- keyset pagination ----

const PAGED_ROWS: usize = 1_234;
const PAGE: u32 = 50;

/// A small deterministic generator, so that failures reproduce.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// A row with many duplicate and empty values in the sortable columns.
fn paged_row(id: &str, numbers: &mut Numbers) -> Row {
    // One value in five is empty; the others come from a few distinct values.
    let mut pick = |distinct: u64| (numbers.next(5) != 0).then(|| numbers.next(distinct) as i64);
    let value = |picked: Option<i64>, make: &dyn Fn(i64) -> Value| picked.map_or(Value::Null, make);
    record(
        id,
        &[
            ("score", value(pick(10), &|n| Value::Integer(n - 3))),
            (
                "stage",
                value(pick(4), &|n| {
                    text(["new", "won", "lost", "Won"][n as usize])
                }),
            ),
            (
                "amount",
                value(pick(20), &|n| {
                    Value::Decimal(Decimal::new(n * 250 - 1_000, 2))
                }),
            ),
            (
                "closed_at",
                value(pick(30), &|n| {
                    Value::Datetime(at() + Duration::microseconds(n))
                }),
            ),
            ("active", value(pick(2), &|n| Value::Boolean(n == 0))),
            ("name", value(pick(40), &|n| text(&format!("n{n}")))),
        ],
    )
}

fn orders() -> Vec<Vec<Sort>> {
    let asc = |column: &str| Sort {
        column: column.into(),
        descending: false,
    };
    let desc = |column: &str| Sort {
        column: column.into(),
        descending: true,
    };
    vec![
        vec![asc("score")],
        vec![desc("score")],
        vec![asc("stage"), desc("amount")],
        vec![desc("closed_at"), asc("name")],
        vec![desc("active"), asc("amount"), desc("stage")],
        vec![desc("id")],
    ]
}

/// How NULL and values order, per the documented rule: NULL is the smallest value.
fn compare_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Text(a), Value::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
        (Value::Integer(a), Value::Integer(b)) => a.cmp(b),
        (Value::Decimal(a), Value::Decimal(b)) => a.cmp(b),
        (Value::Boolean(a), Value::Boolean(b)) => a.cmp(b),
        (Value::Datetime(a), Value::Datetime(b)) => a.cmp(b),
        (a, b) => panic!("cannot compare {a:?} with {b:?}"),
    }
}

fn assert_sorted(rows: &[Row], sort: &[Sort]) {
    for pair in rows.windows(2) {
        let mut order = std::cmp::Ordering::Equal;
        for term in sort {
            order = compare_values(
                &pair[0][term.column.as_str()],
                &pair[1][term.column.as_str()],
            );
            if term.descending {
                order = order.reverse();
            }
            if order.is_ne() {
                break;
            }
        }
        assert!(
            order.is_lt(),
            "out of order for {sort:?}: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
}

/// Walks `query` in pages of [`PAGE`]; `between` runs after each page.
async fn walk<'a, F, Fut>(db: &Db, query: &SelectQuery<'a>, mut between: F) -> Vec<String>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut seen = Vec::new();
    let mut page_query = query.clone();
    page_query.limit = Some(PAGE);
    for page in 0.. {
        let rows = records::select(db, &page_query).await.unwrap();
        seen.extend(ids(&rows));
        let Some(last) = rows.last() else { break };
        if rows.len() < PAGE as usize {
            break;
        }
        page_query.after = Some(query.cursor_after(last));
        between(page).await;
    }
    seen
}

db_test!(
    keyset_pages_visit_every_row_once_in_the_order_of_one_select,
    |test_db| async move {
        let (db, schema) = fixture(&test_db).await;
        let deal = &schema.objects["deal"];
        let mut numbers = Numbers(0x9e37_79b9_7f4a_7c15);
        let rows: Vec<Row> = (0..PAGED_ROWS)
            .map(|index| paged_row(&format!("p{index:05}"), &mut numbers))
            .collect();
        insert(&db, deal, &rows).await;
        for sort in orders() {
            let query = SelectQuery {
                sort: sort.clone(),
                columns: Some(vec!["name".into()]),
                ..SelectQuery::new(deal)
            };
            let everything = records::select(&db, &query).await.unwrap();
            assert_eq!(everything.len(), PAGED_ROWS);
            assert_sorted(&everything, &query.effective_sort());
            let paged = walk(&db, &query, |_| async {}).await;
            assert_eq!(paged, ids(&everything), "{sort:?}");
        }
        db.close().await;
    }
);

db_test!(
    keyset_pages_see_every_existing_row_once_while_rows_are_inserted,
    |test_db| async move {
        let (db, schema) = fixture(&test_db).await;
        let deal = &schema.objects["deal"];
        let mut numbers = Numbers(0x2545_f491_4f6c_dd1d);
        let rows: Vec<Row> = (0..PAGED_ROWS)
            .map(|index| paged_row(&format!("p{index:05}"), &mut numbers))
            .collect();
        insert(&db, deal, &rows).await;
        let existing: BTreeSet<String> = ids(&rows).into_iter().collect();
        for (round, sort) in orders().into_iter().enumerate() {
            let query = SelectQuery {
                sort: sort.clone(),
                ..SelectQuery::new(deal)
            };
            let seen = walk(&db, &query, |page| {
                // New rows land before and after the cursor alike.
                let fresh: Vec<Row> = (0..7)
                    .map(|index| paged_row(&format!("new-{round}-{page:03}-{index}"), &mut numbers))
                    .collect();
                let db = db.clone();
                async move { insert(&db, deal, &fresh).await }
            })
            .await;
            let unique: HashSet<&String> = seen.iter().collect();
            assert_eq!(unique.len(), seen.len(), "a row was seen twice in {sort:?}");
            let seen_existing: BTreeSet<String> = seen
                .iter()
                .filter(|id| id.starts_with('p'))
                .cloned()
                .collect();
            assert_eq!(seen_existing, existing, "{sort:?}");
        }
        db.close().await;
    }
);

db_test!(
    a_pool_move_of_a_record_that_changed_writes_nothing_once_rolled_back,
    |test_db| async move {
        let (db, schema) = fixture(&test_db).await;
        let deal = schema.object("deal").unwrap();
        insert(&db, deal, &[record("d1", &[("name", text("Acme"))])]).await;
        let event = |id: &str| keel_store::pools::PoolEvent {
            id: id.to_owned(),
            object: "deal".to_owned(),
            record_id: "d1".to_owned(),
            pool: "deals".to_owned(),
            action: "claim".to_owned(),
            actor: "u1".to_owned(),
            from_user: None,
            to_user: Some("u1".to_owned()),
            reason: None,
            note: None,
            at: at(),
        };
        let mut changes = Row::new();
        changes.insert("score".into(), Value::Integer(7));
        // At a version the record is not at: false, and dropping the write takes the
        // history row back with it.
        let mut write = db.begin_records_write().await.unwrap();
        let moved = write
            .move_record(deal, "d1", 2, &changes, &[], &[event("h1")])
            .await
            .unwrap();
        assert!(!moved);
        drop(write);
        assert!(
            keel_store::pools::history(&db, "deal", "d1")
                .await
                .unwrap()
                .is_empty()
        );
        // At its version: true, with the history row and the change.
        let mut write = db.begin_records_write().await.unwrap();
        let moved = write
            .move_record(deal, "d1", 1, &changes, &[], &[event("h2")])
            .await
            .unwrap();
        assert!(moved);
        write.commit().await.unwrap();
        let history = keel_store::pools::history(&db, "deal", "d1").await.unwrap();
        assert_eq!(
            history.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["h2"]
        );
        let saved = records::get(&db, deal, "d1", records::Deleted::Exclude)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(saved["score"], Value::Integer(7));
        assert_eq!(saved["version"], Value::Integer(2));
        db.close().await;
    }
);
