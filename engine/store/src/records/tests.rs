//! Unit tests of `records` that look inside: the SQL it builds, and a property test that
//! random conditions never make either database fail and never put a value into SQL text.
//! The black-box stories (round trips, paging, concurrency) are in `tests/store_records.rs`.

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use keel_meta::{Object, Schema, Storage, Value};
use keel_testkit::db_test;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rust_decimal::Decimal;

use super::select::{RowLock, select_statement};
use super::statement::Param;
use super::*;
use crate::db::Dialect;

const FIXTURE_OBJECT: &str = "\
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

/// The fixture app's schema: one object, `deal`, with a field of every storage.
pub(crate) fn fixture_schema() -> Schema {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("metadata/app.yaml", "name: Test\n"),
        ("metadata/roles.yaml", "roles:\n  admin: { admin: true }\n"),
        ("metadata/objects/deal.yaml", FIXTURE_OBJECT),
    ];
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    keel_meta::load_app(dir.path()).unwrap_or_else(|errors| panic!("fixture app:\n{errors}"))
}

pub(crate) fn fixture_object() -> Object {
    fixture_schema().objects["deal"].clone()
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

fn compare(column: &str, op: CompareOp, value: Value) -> Condition {
    Condition::Compare {
        column: column.to_owned(),
        op,
        value,
    }
}

#[test]
fn a_keyset_cursor_expands_into_an_or_chain_honoring_direction_and_nulls() {
    let object = fixture_object();
    let query = SelectQuery {
        sort: vec![
            Sort {
                column: "score".into(),
                descending: false,
            },
            Sort {
                column: "stage".into(),
                descending: true,
            },
        ],
        after: Some(vec![Value::Integer(5), Value::Null, text("id-1")]),
        limit: Some(50),
        columns: Some(vec!["name".into()]),
        ..SelectQuery::new(&object)
    };
    let plan = select_statement(Dialect::Postgres, &query, RowLock::None).unwrap();
    assert_eq!(
        plan.statement.sql,
        "SELECT \"name\", \"id\", \"score\", \"stage\" FROM \"deal\" \
         WHERE \"deleted_at\" IS NULL AND TRUE AND \
         (\"score\" >= $1 AND ((\"score\" > $2) \
         OR (\"score\" = $3 AND \"stage\" IS NULL AND \"id\" < $4))) \
         ORDER BY \"score\" ASC NULLS FIRST, \"stage\" DESC NULLS LAST, \"id\" DESC \
         LIMIT $5"
    );
    assert_eq!(plan.names, ["name", "id", "score", "stage"]);
    let sqlite = select_statement(Dialect::Sqlite, &query, RowLock::None).unwrap();
    assert!(
        sqlite
            .statement
            .sql
            .ends_with("ORDER BY \"score\" ASC, \"stage\" DESC, \"id\" DESC LIMIT ?"),
        "{}",
        sqlite.statement.sql
    );
}

#[test]
fn not_null_sort_columns_page_by_a_plain_index_range() {
    let object = fixture_object();
    let newest_first = SelectQuery {
        sort: vec![Sort {
            column: "created_at".into(),
            descending: true,
        }],
        after: Some(vec![
            Value::Datetime(Utc.timestamp_opt(0, 0).unwrap()),
            text("id-1"),
        ]),
        ..SelectQuery::new(&object)
    };
    let plan = select_statement(Dialect::Postgres, &newest_first, RowLock::None).unwrap();
    assert!(
        plan.statement.sql.ends_with(
            "(\"created_at\" <= $1 AND ((\"created_at\" < $2) \
             OR (\"created_at\" = $3 AND \"id\" < $4))) \
             ORDER BY \"created_at\" DESC, \"id\" DESC"
        ),
        "{}",
        plan.statement.sql
    );
}

#[test]
fn conditions_are_two_valued_so_not_is_a_complement() {
    let object = fixture_object();
    let query = SelectQuery {
        condition: Condition::Not(Box::new(compare("score", CompareOp::Eq, Value::Integer(1)))),
        ..SelectQuery::new(&object)
    };
    let plan = select_statement(Dialect::Sqlite, &query, RowLock::None).unwrap();
    assert!(
        plan.statement
            .sql
            .contains("(NOT (\"score\" IS NOT NULL AND \"score\" = ?))"),
        "{}",
        plan.statement.sql
    );
}

#[test]
fn unknown_columns_and_wrong_cursors_are_refused_before_any_sql_runs() {
    let object = fixture_object();
    let unknown = SelectQuery {
        condition: Condition::IsNull {
            column: "nope".into(),
            null: true,
        },
        ..SelectQuery::new(&object)
    };
    assert!(matches!(
        select_statement(Dialect::Sqlite, &unknown, RowLock::None),
        Err(StoreError::UnknownColumn { column, .. }) if column == "nope"
    ));
    let short_cursor = SelectQuery {
        after: Some(vec![]),
        ..SelectQuery::new(&object)
    };
    assert!(matches!(
        select_statement(Dialect::Postgres, &short_cursor, RowLock::None),
        Err(StoreError::InvalidRecordQuery { .. })
    ));
    let ordered_list = SelectQuery {
        condition: compare("tags", CompareOp::Gt, Value::List(vec!["vip".into()])),
        ..SelectQuery::new(&object)
    };
    assert!(matches!(
        select_statement(Dialect::Postgres, &ordered_list, RowLock::None),
        Err(StoreError::InvalidRecordQuery { .. })
    ));
}

// ---- property test: random conditions on both databases ----

/// Every text the property test binds starts with this, so finding it in SQL text is never
/// an accident.
const MARK: &str = "kvq";

fn distinctive_text() -> impl Strategy<Value = String> {
    // Letters, SQL wildcards and quotes, a backslash, and Chinese.
    "[a-z0-9]{8}['%_*\\\\\";]{0,3}[中文客户]{0,2}".prop_map(|tail| format!("{MARK}{tail}"))
}

/// Texts the seeded rows hold, so that comparisons sometimes match.
const SEEDED_TEXTS: &[&str] = &["new", "won", "lost", "u1", "u2", "id-03", "Deal 5 客户"];

fn value_of(storage: Storage) -> BoxedStrategy<Value> {
    let filled = match storage {
        Storage::Text => prop_oneof![
            distinctive_text(),
            proptest::sample::select(SEEDED_TEXTS).prop_map(str::to_owned),
        ]
        .prop_map(Value::Text)
        .boxed(),
        Storage::Integer => prop_oneof![-1_000_000_000_000_i64..1_000_000_000_000, -6_i64..16,]
            .prop_map(Value::Integer)
            .boxed(),
        Storage::Decimal { scale } => prop_oneof![
            -(10_i64.pow(17 - scale))..10_i64.pow(17 - scale),
            -100_i64..20_000,
        ]
        .prop_map(move |mantissa| Value::Decimal(Decimal::new(mantissa, scale)))
        .boxed(),
        Storage::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        Storage::Date => (0_i64..60_000)
            .prop_map(|days| {
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
                Value::Date(epoch + chrono::Duration::days(days))
            })
            .boxed(),
        Storage::Datetime => (0_i64..4_000_000_000_000_000)
            .prop_map(|micros| Value::Datetime(DateTime::from_timestamp_micros(micros).unwrap()))
            .boxed(),
        Storage::Json => prop_oneof![
            proptest::collection::vec(distinctive_text(), 0..3),
            Just(vec!["vip".to_owned()]),
        ]
        .prop_map(Value::List)
        .boxed(),
    };
    prop_oneof![1 => Just(Value::Null), 6 => filled].boxed()
}

fn columns_of(object: &Object) -> Vec<(String, Storage)> {
    object
        .columns()
        .into_iter()
        .map(|column| (column.name, column.storage))
        .collect()
}

fn leaf(columns: Vec<(String, Storage)>) -> BoxedStrategy<Condition> {
    let scalar: Vec<(String, Storage)> = columns
        .iter()
        .filter(|(_, storage)| *storage != Storage::Json)
        .cloned()
        .collect();
    let names: Vec<String> = columns.iter().map(|(name, _)| name.clone()).collect();
    let op = prop_oneof![
        Just(CompareOp::Eq),
        Just(CompareOp::Ne),
        Just(CompareOp::Gt),
        Just(CompareOp::Gte),
        Just(CompareOp::Lt),
        Just(CompareOp::Lte),
    ];
    let compare_scalar =
        proptest::sample::select(scalar.clone()).prop_flat_map(move |(column, storage)| {
            (Just(column), op.clone(), value_of(storage))
                .prop_map(|(column, op, value)| Condition::Compare { column, op, value })
        });
    let compare_list = (any::<bool>(), value_of(Storage::Json)).prop_map(|(equal, value)| {
        compare(
            "tags",
            if equal { CompareOp::Eq } else { CompareOp::Ne },
            value,
        )
    });
    let in_list = proptest::sample::select(scalar).prop_flat_map(|(column, storage)| {
        proptest::collection::vec(value_of(storage), 0..4).prop_map(move |values| Condition::In {
            column: column.clone(),
            values,
        })
    });
    let is_null = (proptest::sample::select(names.clone()), any::<bool>())
        .prop_map(|(column, null)| Condition::IsNull { column, null });
    let pattern = prop_oneof![
        distinctive_text(),
        proptest::sample::select(vec![
            "deal*", "*客户", "*1*", "D_al*", "*", "TRUE", "2026-*", "vip"
        ])
        .prop_map(str::to_owned),
    ];
    let fragment = prop_oneof![
        distinctive_text(),
        proptest::sample::select(vec!["EAL 1", "客户", "\"vip\"", "00", "-1", "_", "%"])
            .prop_map(str::to_owned),
    ];
    let like = (proptest::sample::select(names.clone()), pattern)
        .prop_map(|(column, pattern)| Condition::Like { column, pattern });
    let contains = (proptest::sample::subsequence(names, 0..4), fragment)
        .prop_map(|(columns, text)| Condition::Contains { columns, text });
    let key = || {
        prop_oneof![
            distinctive_text(),
            proptest::sample::select(vec!["u1", "vip", "hot"]).prop_map(str::to_owned),
        ]
    };
    let owner_in = proptest::collection::vec(key(), 0..3).prop_map(Condition::OwnerIn);
    let has_any = proptest::collection::vec(key(), 0..3).prop_map(|keys| Condition::HasAny {
        column: "tags".to_owned(),
        keys,
    });
    prop_oneof![
        4 => compare_scalar,
        1 => compare_list,
        2 => in_list,
        1 => is_null,
        2 => like,
        2 => contains,
        1 => owner_in,
        1 => has_any,
        1 => Just(Condition::Always),
        1 => Just(Condition::Never),
    ]
    .boxed()
}

fn condition_tree(columns: Vec<(String, Storage)>) -> BoxedStrategy<Condition> {
    leaf(columns)
        .prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Condition::All),
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Condition::Any),
                inner.prop_map(|condition| Condition::Not(Box::new(condition))),
            ]
        })
        .boxed()
}

/// A random order over scalar columns with a random cursor for it.
fn order_and_cursor(columns: Vec<(String, Storage)>) -> BoxedStrategy<(Vec<Sort>, Vec<Value>)> {
    let sortable: Vec<(String, Storage)> = columns
        .into_iter()
        .filter(|(name, storage)| *storage != Storage::Json && name != "id")
        .collect();
    proptest::collection::vec((proptest::sample::select(sortable), any::<bool>()), 0..3)
        .prop_flat_map(|terms| {
            let sort: Vec<Sort> = terms
                .iter()
                .map(|((column, _), descending)| Sort {
                    column: column.clone(),
                    descending: *descending,
                })
                .collect();
            let mut storages: Vec<Storage> =
                terms.iter().map(|((_, storage), _)| *storage).collect();
            storages.push(Storage::Text);
            let cursor: Vec<BoxedStrategy<Value>> = storages.into_iter().map(value_of).collect();
            (Just(sort), cursor)
        })
        .boxed()
}

/// Every text a condition carries.
fn texts_in(condition: &Condition, texts: &mut Vec<String>) {
    let add_value = |value: &Value, texts: &mut Vec<String>| match value {
        Value::Text(text) => texts.push(text.clone()),
        Value::List(items) => texts.extend(items.iter().cloned()),
        _ => {}
    };
    match condition {
        Condition::All(parts) | Condition::Any(parts) => {
            parts.iter().for_each(|part| texts_in(part, texts));
        }
        Condition::Not(inner) => texts_in(inner, texts),
        Condition::Compare { value, .. } => add_value(value, texts),
        Condition::In { values, .. } => values.iter().for_each(|value| add_value(value, texts)),
        Condition::Like { pattern, .. } => texts.push(pattern.clone()),
        Condition::Contains { text, .. } => texts.push(text.clone()),
        Condition::OwnerIn(owners) => texts.extend(owners.iter().cloned()),
        Condition::OwnerInTeamOf(user) | Condition::OwnerInDepartmentOf(user) => {
            texts.push(user.clone());
        }
        Condition::HasAny { keys, .. } => texts.extend(keys.iter().cloned()),
        Condition::IsNull { .. } | Condition::Always | Condition::Never => {}
    }
}

/// A few rows, some fields empty, so that conditions are really evaluated.
async fn seed(db: &Db, object: &Object) {
    let at = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
    let mut rows = Vec::new();
    for index in 0..20_i64 {
        let mut row = Row::new();
        row.insert("id".into(), text(&format!("id-{index:02}")));
        row.insert("created_at".into(), Value::Datetime(at));
        row.insert("updated_at".into(), Value::Datetime(at));
        row.insert(
            "owner".into(),
            text(if index % 3 == 0 { "u1" } else { "u2" }),
        );
        row.insert(
            "deleted_at".into(),
            if index % 7 == 0 {
                Value::Datetime(at)
            } else {
                Value::Null
            },
        );
        let filled = index % 4 != 0;
        let maybe = |value: Value| if filled { value } else { Value::Null };
        row.insert("name".into(), maybe(text(&format!("Deal {index} 客户"))));
        row.insert(
            "stage".into(),
            maybe(text(["new", "won", "lost"][index as usize % 3])),
        );
        row.insert("tags".into(), maybe(Value::List(vec!["vip".into()])));
        row.insert(
            "amount".into(),
            maybe(Value::Decimal(Decimal::new(index * 1_001, 2))),
        );
        row.insert("rate".into(), maybe(Value::Decimal(Decimal::new(index, 4))));
        row.insert("score".into(), maybe(Value::Integer(index - 5)));
        row.insert("active".into(), maybe(Value::Boolean(index % 2 == 0)));
        row.insert(
            "close_date".into(),
            maybe(Value::Date(at.date_naive() + chrono::Duration::days(index))),
        );
        row.insert(
            "closed_at".into(),
            maybe(Value::Datetime(at + chrono::Duration::microseconds(index))),
        );
        rows.push(row);
    }
    let mut write = db.begin_records_write().await.unwrap();
    write.insert_many(object, &rows).await.unwrap();
    write.commit().await.unwrap();
}

db_test!(
    random_conditions_never_fail_and_never_put_values_into_sql,
    |test_db| async move {
        let schema = fixture_schema();
        let db = Db::connect(&test_db.url).await.unwrap();
        crate::migrate::apply(&db, &schema, false).await.unwrap();
        let object = schema.objects["deal"].clone();
        seed(&db, &object).await;

        let columns = columns_of(&object);
        let strategy = (
            condition_tree(columns.clone()),
            order_and_cursor(columns),
            proptest::sample::select(vec![Deleted::Exclude, Deleted::Only, Deleted::Include]),
        );
        let mut runner = TestRunner::new(Config {
            cases: 64,
            failure_persistence: None,
            ..Config::default()
        });
        let runtime = tokio::runtime::Handle::current();
        // proptest drives a synchronous closure; each case runs its queries on this runtime.
        let failure = tokio::task::block_in_place(|| {
            runner
                .run(&strategy, |(condition, (sort, cursor), deleted)| {
                    runtime.block_on(check_one(&db, &object, condition, sort, cursor, deleted))
                })
                .err()
                .map(|failure| failure.to_string())
        });
        if let Some(failure) = failure {
            panic!("{failure}");
        }
        db.close().await;
    }
);

async fn check_one(
    db: &Db,
    object: &Object,
    condition: Condition,
    sort: Vec<Sort>,
    cursor: Vec<Value>,
    deleted: Deleted,
) -> Result<(), TestCaseError> {
    let mut texts = Vec::new();
    texts_in(&condition, &mut texts);
    texts.extend(cursor.iter().filter_map(|value| match value {
        Value::Text(text) => Some(text.clone()),
        _ => None,
    }));
    let query = SelectQuery {
        condition: condition.clone(),
        deleted,
        sort,
        after: Some(cursor),
        limit: Some(7),
        ..SelectQuery::new(object)
    };
    let plan = select_statement(db.dialect(), &query, RowLock::None)
        .map_err(|error| TestCaseError::fail(format!("building: {error}")))?;
    for text in texts.iter().filter(|text| text.starts_with(MARK)) {
        prop_assert!(
            !plan.statement.sql.contains(text.as_str()),
            "value {text:?} in SQL: {}",
            plan.statement.sql
        );
    }
    for param in &plan.statement.params {
        if let Param::Text(Some(bound)) = param
            && bound.contains(MARK)
        {
            prop_assert!(!plan.statement.sql.contains(bound.as_str()));
        }
    }
    let fail = |what: &str, error: StoreError| TestCaseError::fail(format!("{what}: {error}"));
    let rows = select(db, &query)
        .await
        .map_err(|error| fail("select", error))?;
    prop_assert!(rows.len() <= 7);
    let counted = count(db, object, &condition, deleted)
        .await
        .map_err(|error| fail("count", error))?;
    let complement = count(
        db,
        object,
        &Condition::Not(Box::new(condition.clone())),
        deleted,
    )
    .await
    .map_err(|error| fail("count of the complement", error))?;
    let everything = count(db, object, &Condition::Always, deleted)
        .await
        .map_err(|error| fail("count of everything", error))?;
    // Two-valued logic: a condition and its negation split the records exactly.
    prop_assert_eq!(counted + complement, everything);
    // The database agrees with a plain Rust reading of the condition.
    let all = select(
        db,
        &SelectQuery {
            deleted: Deleted::Include,
            ..SelectQuery::new(object)
        },
    )
    .await
    .map_err(|error| fail("select everything", error))?;
    let expected: Vec<Value> = all
        .iter()
        .filter(|row| in_bin(row, deleted) && holds(db.dialect(), &condition, row))
        .map(|row| row["id"].clone())
        .collect();
    let matching = select(
        db,
        &SelectQuery {
            condition: condition.clone(),
            deleted,
            ..SelectQuery::new(object)
        },
    )
    .await
    .map_err(|error| fail("select matching", error))?;
    let found: Vec<Value> = matching.iter().map(|row| row["id"].clone()).collect();
    prop_assert_eq!(found, expected, "{:?}", condition);
    aggregate(
        db,
        object,
        &condition,
        &["stage".to_owned()],
        &[
            Measure::Count,
            Measure::Sum("amount".into()),
            Measure::Avg("rate".into()),
            Measure::Min("closed_at".into()),
        ],
    )
    .await
    .map_err(|error| fail("aggregate", error))?;
    Ok(())
}

// ---- a reference reading of conditions, for the property test ----

fn in_bin(row: &Row, deleted: Deleted) -> bool {
    match deleted {
        Deleted::Exclude => row["deleted_at"].is_null(),
        Deleted::Only => !row["deleted_at"].is_null(),
        Deleted::Include => true,
    }
}

/// Whether `condition` holds for `row`, as documented on [`Condition`].
fn holds(dialect: Dialect, condition: &Condition, row: &Row) -> bool {
    use std::cmp::Ordering;
    let field = |column: &str| &row[column];
    match condition {
        Condition::All(parts) => parts.iter().all(|part| holds(dialect, part, row)),
        Condition::Any(parts) => parts.iter().any(|part| holds(dialect, part, row)),
        Condition::Not(inner) => !holds(dialect, inner, row),
        Condition::Always => true,
        Condition::Never => false,
        Condition::Compare { column, op, value } => {
            let stored = field(column);
            match (stored.is_null(), value.is_null()) {
                (_, true) => match op {
                    CompareOp::Eq => stored.is_null(),
                    CompareOp::Ne => !stored.is_null(),
                    _ => false,
                },
                (true, false) => *op == CompareOp::Ne,
                (false, false) => {
                    let order = order_of(stored, value);
                    match op {
                        CompareOp::Eq => order == Some(Ordering::Equal),
                        CompareOp::Ne => order != Some(Ordering::Equal),
                        CompareOp::Gt => order == Some(Ordering::Greater),
                        CompareOp::Gte => {
                            matches!(order, Some(Ordering::Greater | Ordering::Equal))
                        }
                        CompareOp::Lt => order == Some(Ordering::Less),
                        CompareOp::Lte => matches!(order, Some(Ordering::Less | Ordering::Equal)),
                    }
                }
            }
        }
        Condition::In { column, values } => {
            let stored = field(column);
            values.iter().any(|value| {
                if value.is_null() {
                    stored.is_null()
                } else {
                    !stored.is_null() && order_of(stored, value) == Some(Ordering::Equal)
                }
            })
        }
        Condition::IsNull { column, null } => field(column).is_null() == *null,
        Condition::Like { column, pattern } => {
            rendering(dialect, field(column)).is_some_and(|text| like(&text, pattern))
        }
        Condition::Contains { columns, text } => {
            text.is_empty()
                || columns.iter().any(|column| {
                    rendering(dialect, field(column)).is_some_and(|rendered| {
                        rendered
                            .to_ascii_lowercase()
                            .contains(&text.to_ascii_lowercase())
                    })
                })
        }
        Condition::OwnerIn(owners) => match field("owner") {
            Value::Text(owner) => owners.contains(owner),
            _ => false,
        },
        // These read the org tables; tests/permissions.rs checks them against an org.
        Condition::OwnerInTeamOf(_) | Condition::OwnerInDepartmentOf(_) => {
            panic!("the generator makes no org scopes")
        }
        Condition::HasAny { column, keys } => match field(column) {
            Value::List(items) => items.iter().any(|item| keys.contains(item)),
            _ => false,
        },
    }
}

fn order_of(stored: &Value, value: &Value) -> Option<std::cmp::Ordering> {
    match (stored, value) {
        // Binary order, as the test databases' C collation.
        (Value::Text(a), Value::Text(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Value::Integer(a), Value::Integer(b)) => Some(a.cmp(b)),
        (Value::Decimal(a), Value::Decimal(b)) => Some(a.cmp(b)),
        (Value::Boolean(a), Value::Boolean(b)) => Some(a.cmp(b)),
        (Value::Date(a), Value::Date(b)) => Some(a.cmp(b)),
        (Value::Datetime(a), Value::Datetime(b)) => Some(a.cmp(b)),
        (Value::List(a), Value::List(b)) => (a == b).then_some(std::cmp::Ordering::Equal),
        _ => None,
    }
}

/// A value as the text `Like` and `Contains` match, per database.
fn rendering(dialect: Dialect, value: &Value) -> Option<String> {
    Some(match value {
        Value::Null => return None,
        Value::Text(text) => text.clone(),
        Value::Integer(number) => number.to_string(),
        Value::Decimal(number) => number.to_string(),
        Value::Boolean(flag) => flag.to_string(),
        Value::Date(date) => date.format("%Y-%m-%d").to_string(),
        Value::Datetime(at) => crate::datetime::to_sqlite_text(*at),
        Value::List(items) => {
            let quoted: Vec<String> = items
                .iter()
                .map(|item| serde_json::Value::String(item.clone()).to_string())
                .collect();
            match dialect {
                Dialect::Sqlite => format!("[{}]", quoted.join(",")),
                Dialect::Postgres => format!("[{}]", quoted.join(", ")),
            }
        }
    })
}

/// Whole-value match where `*` is any run of characters; ASCII case-insensitive.
fn like(text: &str, pattern: &str) -> bool {
    fn matches(text: &[char], pattern: &[char]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some(('*', rest)) => (0..=text.len()).any(|skip| matches(&text[skip..], rest)),
            Some((first, rest)) => text.split_first().is_some_and(|(head, tail)| {
                head.eq_ignore_ascii_case(first) && matches(tail, rest)
            }),
        }
    }
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    matches(&text, &pattern)
}
