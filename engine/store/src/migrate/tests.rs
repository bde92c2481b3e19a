//! Unit tests of planning and rendering on SQLite files; the same stories run on both
//! databases in the integration tests (`tests/migrate.rs`).

use chrono::TimeZone as _;
use keel_meta::Storage;

use super::*;
use crate::introspect;

fn step(kind: StepKind, safety: Safety, description: &str) -> Step {
    Step {
        kind,
        object: "lead".to_owned(),
        field: None,
        safety,
        description: description.to_owned(),
        affected_rows: None,
        sql: Vec::new(),
    }
}

fn schema_with(objects: &[(&str, &str)]) -> (tempfile::TempDir, Schema) {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("metadata/app.yaml", "name: Test\n");
    write("metadata/roles.yaml", "roles:\n  admin: { admin: true }\n");
    for (name, yaml) in objects {
        write(&format!("metadata/objects/{name}.yaml"), yaml);
    }
    let schema = keel_meta::load_app(dir.path()).unwrap_or_else(|errors| panic!("{errors}"));
    (dir, schema)
}

async fn sqlite_db(dir: &tempfile::TempDir) -> Db {
    Db::connect(&format!("sqlite://{}/keel.db", dir.path().display()))
        .await
        .unwrap()
}

#[test]
fn plans_render_one_symbol_per_kind_of_change() {
    let plan = Plan {
        steps: vec![
            step(StepKind::CreateTable, Safety::Safe, "create table lead"),
            step(
                StepKind::RenameColumn,
                Safety::Safe,
                "rename column lead.cell to mobile",
            ),
            step(
                StepKind::DropIndex,
                Safety::Safe,
                "drop index lead__cell_idx on lead",
            ),
            step(
                StepKind::ArchiveColumn,
                Safety::Destructive,
                "drop column lead.fax (archived as keel_arch_20261123040506_fax, 12 rows with a value)",
            ),
        ],
        acknowledged: vec![step(
            StepKind::AddUniqueIndex,
            Safety::Destructive,
            "make lead.phone unique: 2 rows share a value with another row",
        )],
    };
    assert_eq!(
        plan.render(),
        "+ create table lead\n\
         ~ rename column lead.cell to mobile\n\
         - drop index lead__cell_idx on lead\n\
         ! drop column lead.fax (archived as keel_arch_20261123040506_fax, 12 rows with a value)\n  \
         (accepted earlier) make lead.phone unique: 2 rows share a value with another row\n"
    );
    assert_eq!(plan.destructive().count(), 1);
    assert!(!plan.is_empty());
    assert!(Plan::default().is_empty());
}

#[test]
fn plans_serialize_with_snake_case_kinds() {
    let json = serde_json::to_value(Plan {
        steps: vec![step(StepKind::AddUniqueIndex, Safety::Safe, "x")],
        acknowledged: Vec::new(),
    })
    .unwrap();
    assert_eq!(json["steps"][0]["kind"], "add_unique_index");
    assert_eq!(json["steps"][0]["safety"], "safe");
}

#[test]
fn create_ddl_declares_keys_inline_and_defers_only_cycles_on_postgres() {
    let (_dir, schema) = schema_with(&[
        (
            "a_lead",
            "name: a_lead\ntitle: name\nfields:\n  name: { type: text }\n  \
             account: { type: lookup, object: account, on_delete: set_null }\n",
        ),
        (
            "account",
            "name: account\ntitle: name\nfields:\n  name: { type: text }\n  \
             first_lead: { type: lookup, object: a_lead }\n  parent: { type: lookup, object: account }\n",
        ),
    ]);
    let postgres = create_ddl(Dialect::Postgres, &schema);
    let deferred: Vec<&String> = postgres
        .iter()
        .filter(|statement| statement.starts_with("ALTER TABLE"))
        .collect();
    assert_eq!(
        deferred,
        [&"ALTER TABLE \"a_lead\" ADD CONSTRAINT \"a_lead_account_fkey\" FOREIGN KEY (\"account\") \
           REFERENCES \"account\" (\"id\") ON DELETE SET NULL"
            .to_owned()]
    );
    let sqlite = create_ddl(Dialect::Sqlite, &schema);
    assert!(
        sqlite
            .iter()
            .all(|statement| !statement.starts_with("ALTER TABLE"))
    );
    assert!(sqlite[0].starts_with("CREATE TABLE \"keel_departments\""));
}

#[tokio::test]
async fn the_planner_reads_back_exactly_what_it_created() {
    let (dir, schema) = schema_with(&[(
        "lead",
        "name: lead\ntitle: name\nfields:\n  name: { type: text, required: true }\n  \
         phone: { type: phone, unique: true }\n  amount: { type: money, scale: 4 }\n  \
         done: { type: boolean }\n  due: { type: date }\n  at: { type: datetime }\n  \
         tags: { type: multi_choice, options: [a] }\n  n: { type: integer }\n\
         indexes: [[n, at]]\n",
    )]);
    let db = sqlite_db(&dir).await;
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 4, 5, 6).unwrap();
    let applied = apply_at(&db, &schema, false, now).await.unwrap();
    assert!(applied.recorded_version);
    let live = introspect::read(&db).await.unwrap();
    let lead = live.table("lead").unwrap();
    for column in schema.objects["lead"].columns() {
        let found = lead.column(&column.name).unwrap();
        assert_eq!(found.storage, Some(column.storage), "{}", column.name);
    }
    let index_names: Vec<&str> = lead
        .indexes
        .iter()
        .map(|index| index.name.as_str())
        .collect();
    assert!(
        index_names.contains(&"lead__n__at__id__deleted_at_idx"),
        "{index_names:?}"
    );
    assert!(index_names.contains(&"lead_phone_key"), "{index_names:?}");
    assert!(plan_at(&db, &schema, now).await.unwrap().is_empty());
    db.close().await;
}

#[tokio::test]
async fn sqlite_conversions_fill_the_new_column_with_what_converts() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_db(&dir).await;
    let Db::Sqlite(pool, _) = &db else {
        unreachable!()
    };
    let cases: &[(Option<Storage>, Storage, &str, Option<&str>)] = &[
        (Some(Storage::Text), Storage::Integer, "'42'", Some("42")),
        (Some(Storage::Text), Storage::Integer, "' +7 '", Some("7")),
        (Some(Storage::Text), Storage::Integer, "'4x'", None),
        (
            Some(Storage::Text),
            Storage::Integer,
            "'1234567890123456789'",
            None,
        ),
        (
            Some(Storage::Text),
            Storage::Decimal { scale: 2 },
            "'-12.5'",
            Some("-1250"),
        ),
        (
            Some(Storage::Text),
            Storage::Decimal { scale: 2 },
            "'3'",
            Some("300"),
        ),
        (
            Some(Storage::Text),
            Storage::Decimal { scale: 2 },
            "'0.125'",
            None,
        ),
        (
            Some(Storage::Text),
            Storage::Decimal { scale: 2 },
            "'1.2.3'",
            None,
        ),
        (
            Some(Storage::Decimal { scale: 2 }),
            Storage::Text,
            "-1205",
            Some("-12.05"),
        ),
        (
            Some(Storage::Decimal { scale: 2 }),
            Storage::Decimal { scale: 0 },
            "-1250",
            Some("-13"),
        ),
        (
            Some(Storage::Decimal { scale: 2 }),
            Storage::Decimal { scale: 4 },
            "125",
            Some("12500"),
        ),
        (
            Some(Storage::Integer),
            Storage::Decimal { scale: 2 },
            "7",
            Some("700"),
        ),
        (Some(Storage::Integer), Storage::Boolean, "1", Some("1")),
        (Some(Storage::Integer), Storage::Boolean, "2", None),
        (Some(Storage::Text), Storage::Boolean, "'Yes'", Some("1")),
        (
            Some(Storage::Text),
            Storage::Date,
            "'2026-02-28'",
            Some("2026-02-28"),
        ),
        (Some(Storage::Text), Storage::Date, "'2026-02-30'", None),
        (
            Some(Storage::Text),
            Storage::Datetime,
            "'2026-02-28 10:11:12'",
            Some("2026-02-28T10:11:12.000000Z"),
        ),
        (Some(Storage::Text), Storage::Datetime, "'12345'", None),
        (
            Some(Storage::Date),
            Storage::Datetime,
            "'2026-02-28'",
            Some("2026-02-28T00:00:00.000000Z"),
        ),
        (
            Some(Storage::Datetime),
            Storage::Date,
            "'2026-02-28T23:59:00.000000Z'",
            Some("2026-02-28"),
        ),
        (Some(Storage::Text), Storage::Json, "'a'", Some("[\"a\"]")),
        (
            Some(Storage::Text),
            Storage::Json,
            "'[\"a\",\"b\"]'",
            Some("[\"a\",\"b\"]"),
        ),
        (Some(Storage::Boolean), Storage::Text, "0", Some("false")),
        (Some(Storage::Json), Storage::Integer, "'[1]'", None),
        (Some(Storage::Text), Storage::Json, "NULL", None),
        (Some(Storage::Boolean), Storage::Text, "NULL", None),
        (Some(Storage::Boolean), Storage::Integer, "NULL", None),
    ];
    for (from, to, literal, expected) in cases {
        let conversion = crate::convert::conversion(Dialect::Sqlite, *from, *to, "v");
        let sql = format!(
            "SELECT CAST(({}) AS TEXT), ({}) FROM (SELECT {literal} AS v)",
            conversion.value,
            conversion.lossy.clone().unwrap_or_else(|| "0".to_owned())
        );
        let (value, lossy): (Option<String>, Option<bool>) =
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .fetch_one(pool)
                .await
                .unwrap_or_else(|error| panic!("{sql}: {error}"));
        assert_eq!(
            value.as_deref(),
            *expected,
            "{from:?} → {to:?} of {literal}"
        );
        let exact = value.is_some() && !lossy.unwrap_or(false);
        let rounded = matches!(
            (from, to),
            (Some(Storage::Decimal { .. }), Storage::Decimal { scale: 0 })
                | (Some(Storage::Datetime), Storage::Date)
        );
        assert!(
            exact || rounded || expected.is_none(),
            "{from:?} → {to:?} of {literal}"
        );
        if *literal == "NULL" {
            continue;
        }
        assert_eq!(
            lossy.unwrap_or(false),
            expected.is_none() || rounded,
            "lossy predicate of {from:?} → {to:?} on {literal}"
        );
    }
    db.close().await;
}
