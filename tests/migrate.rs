//! `keel_store::migrate` against real databases: every test body runs on SQLite and on
//! PostgreSQL. Each test writes a small app (v1 metadata, then v2), applies it, puts rows in
//! with plain SQL and checks what the planner says and what the database then holds.

use keel_meta::Schema;
use keel_store::introspect::{self, LiveDatabase};
use keel_store::layout::database_layout;
use keel_store::migrate::{self, Safety, StepKind};
use keel_store::{Db, Dialect, StoreError};
use keel_testkit::{Backend, TestDb, db_test};

use crate::support::{AppDir, repository_root};

/// A fixed time for rows these tests create: the store takes the time from its caller.
fn at() -> chrono::DateTime<chrono::Utc> {
    "2026-01-05T09:30:00Z".parse().unwrap()
}

const APP: &str = "name: Test\n";
const ROLES: &str = "roles:\n  admin: { admin: true }\n";

/// An app with the given objects (`(name, yaml)`).
fn app(objects: &[(&str, &str)]) -> AppDir {
    let app = AppDir::new(&[("metadata/app.yaml", APP), ("metadata/roles.yaml", ROLES)]);
    set_objects(&app, objects);
    app
}

/// Replaces the app's objects with `objects`: the next metadata version.
fn set_objects(app: &AppDir, objects: &[(&str, &str)]) {
    let dir = app.path().join("metadata/objects");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    for (name, yaml) in objects {
        app.write(&format!("metadata/objects/{name}.yaml"), yaml);
    }
}

fn load(app: &AppDir) -> Schema {
    keel_meta::load_app(app.path()).unwrap_or_else(|errors| panic!("fixture app:\n{errors}"))
}

async fn connect(db: &TestDb) -> Db {
    Db::connect(&db.url).await.unwrap()
}

/// A value for [`insert`].
#[derive(Clone, Copy)]
enum Value<'a> {
    Text(&'a str),
    Integer(i64),
    Null,
}

/// Inserts a row into an object table with plain SQL and bound values; the system columns
/// that must not be NULL are filled in.
async fn insert(db: &Db, table: &str, id: &str, values: &[(&str, Value<'_>)]) {
    let mut columns = vec!["id", "created_at", "updated_at", "version"];
    columns.extend(values.iter().map(|(column, _)| *column));
    let placeholders: Vec<String> = (1..=columns.len())
        .map(|position| match (db.dialect(), columns[position - 1]) {
            (Dialect::Sqlite, _) => format!("?{position}"),
            (Dialect::Postgres, "created_at" | "updated_at") => format!("${position}::timestamptz"),
            (Dialect::Postgres, _) => format!("${position}"),
        })
        .collect();
    let quoted: Vec<String> = columns
        .iter()
        .map(|column| format!("\"{column}\""))
        .collect();
    let sql = format!(
        "INSERT INTO \"{table}\" ({}) VALUES ({})",
        quoted.join(", "),
        placeholders.join(", ")
    );
    let now = "2026-01-01T00:00:00.000000Z";
    macro_rules! bind_all {
        ($query:expr) => {{
            let mut query = $query.bind(id).bind(now).bind(now).bind(1_i64);
            for (_, value) in values {
                query = match value {
                    Value::Text(text) => query.bind(Some(text.to_string())),
                    Value::Integer(number) => query.bind(Some(*number)),
                    Value::Null => query.bind(None::<String>),
                };
            }
            query
        }};
    }
    match db {
        Db::Sqlite(pool, _) => {
            bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql.clone())))
                .execute(pool)
                .await
                .unwrap_or_else(|error| panic!("{sql}: {error}"));
        }
        Db::Postgres(pool) => {
            bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql.clone())))
                .execute(pool)
                .await
                .unwrap_or_else(|error| panic!("{sql}: {error}"));
        }
    }
}

/// Runs a statement without parameters (test setup and cleanup only).
async fn execute(db: &Db, sql: &str) {
    let statement = sqlx::AssertSqlSafe(sql.to_owned());
    match db {
        Db::Sqlite(pool, _) => sqlx::raw_sql(statement).execute(pool).await.map(drop),
        Db::Postgres(pool) => sqlx::raw_sql(statement).execute(pool).await.map(drop),
    }
    .unwrap_or_else(|error| panic!("{sql}: {error}"));
}

/// `column` of every row of `table`, as text, in id order.
async fn column_texts(db: &Db, table: &str, column: &str) -> Vec<Option<String>> {
    let sql = format!("SELECT CAST(\"{column}\" AS TEXT) FROM \"{table}\" ORDER BY id");
    let statement = sqlx::AssertSqlSafe(sql.clone());
    match db {
        Db::Sqlite(pool, _) => sqlx::query_scalar(statement).fetch_all(pool).await,
        Db::Postgres(pool) => sqlx::query_scalar(statement).fetch_all(pool).await,
    }
    .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

async fn count(db: &Db, sql: &str) -> i64 {
    let statement = sqlx::AssertSqlSafe(sql.to_owned());
    match db {
        Db::Sqlite(pool, _) => sqlx::query_scalar(statement).fetch_one(pool).await,
        Db::Postgres(pool) => sqlx::query_scalar(statement).fetch_one(pool).await,
    }
    .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

async fn version_rows(db: &Db) -> i64 {
    count(db, "SELECT count(*) FROM keel_metadata_versions").await
}

/// The one column of `table` whose name is an archive of `original`.
fn archived_column(live: &LiveDatabase, table: &str, original: &str) -> String {
    let names: Vec<&str> = live.tables[table]
        .columns
        .iter()
        .map(|column| column.name.as_str())
        .filter(|name| name.starts_with("keel_arch_") && name.ends_with(&format!("_{original}")))
        .collect();
    assert_eq!(names.len(), 1, "archives of {table}.{original}: {names:?}");
    names[0].to_owned()
}

/// Checks that `live` has every table, column (with its type), index and foreign key the
/// schema asks for.
fn assert_matches_layout(live: &LiveDatabase, schema: &Schema) {
    for table in database_layout(schema) {
        let live_table = live
            .table(&table.name)
            .unwrap_or_else(|| panic!("table {} is missing", table.name));
        for column in &table.columns {
            let live_column = live_table
                .column(&column.name)
                .unwrap_or_else(|| panic!("column {}.{} is missing", table.name, column.name));
            assert_eq!(
                live_column.storage,
                Some(column.storage),
                "type of {}.{} ({})",
                table.name,
                column.name,
                live_column.declared_type
            );
            assert_eq!(
                live_column.not_null, column.not_null,
                "NOT NULL of {}.{}",
                table.name, column.name
            );
            if let Some(reference) = &column.references {
                let key = live_table
                    .foreign_keys
                    .iter()
                    .find(|key| key.column == column.name)
                    .unwrap_or_else(|| {
                        panic!("foreign key {}.{} is missing", table.name, column.name)
                    });
                assert_eq!(key.target_table, reference.table);
                assert_eq!(key.on_delete, Some(reference.on_delete));
            }
        }
        for index in &table.indexes {
            let live_index = live_table
                .indexes
                .iter()
                .find(|live_index| live_index.name == index.name)
                .unwrap_or_else(|| panic!("index {} is missing", index.name));
            assert_eq!(
                live_index.columns, index.columns,
                "columns of {}",
                index.name
            );
            assert_eq!(
                live_index.unique, index.unique,
                "uniqueness of {}",
                index.name
            );
        }
    }
}

/// Plans `schema` on `store`, checks that its steps are `expected`, and returns it.
async fn plan_of(store: &Db, schema: &Schema, expected: &[(StepKind, Safety)]) -> migrate::Plan {
    let plan = migrate::plan(store, schema).await.unwrap();
    assert_eq!(kinds(&plan), expected, "{}", plan.render());
    plan
}

fn kinds(plan: &migrate::Plan) -> Vec<(StepKind, Safety)> {
    plan.steps
        .iter()
        .map(|step| (step.kind, step.safety))
        .collect()
}

const ACCOUNT: &str = "\
name: account
title: name
fields:
  name: { type: text, required: true }
  code: { type: text, unique: true }
  parent: { type: lookup, object: account, on_delete: set_null }
";

const LEAD: &str = "\
name: lead
title: name
fields:
  name: { type: text, required: true }
  phone: { type: phone, unique: true }
  score: { type: integer }
  amount: { type: money }
  converted: { type: boolean }
  born_on: { type: date }
  last_follow_up_at: { type: datetime }
  tags: { type: multi_choice, options: [a, b] }
  account: { type: lookup, object: account, on_delete: cascade }
  contact: { type: lookup, object: contact }
indexes: [[score, last_follow_up_at]]
";

/// A lookup cycle with `lead`, so PostgreSQL must add one key after both tables exist.
const CONTACT: &str = "\
name: contact
title: name
fields:
  name: { type: text }
  lead: { type: lookup, object: lead, on_delete: set_null }
";

db_test!(
    fresh_create_makes_every_table_column_index_and_foreign_key,
    |db| async move {
        let store = connect(&db).await;
        let app = app(&[("lead", LEAD), ("account", ACCOUNT), ("contact", CONTACT)]);
        let schema = load(&app);
        let before = migrate::plan(&store, &schema).await.unwrap();
        assert!(
            before.steps.iter().all(|step| step.safety == Safety::Safe),
            "{}",
            before.render()
        );

        let applied = migrate::apply(&store, &schema, false).await.unwrap();
        assert!(applied.recorded_version);
        assert_eq!(applied.steps, before.steps);

        let live = introspect::read(&store).await.unwrap();
        assert_matches_layout(&live, &schema);
        for system in ["keel_users", "keel_departments", "keel_metadata_versions"] {
            assert!(live.table(system).is_some(), "{system}");
        }
        assert_eq!(version_rows(&store).await, 1);
        assert!(migrate::plan(&store, &schema).await.unwrap().is_empty());
        store.close().await;
    }
);

db_test!(
    applying_the_same_metadata_twice_is_a_no_op,
    |db| async move {
        let store = connect(&db).await;
        let schema = load(&app(&[("account", ACCOUNT)]));
        migrate::apply(&store, &schema, false).await.unwrap();
        let again = migrate::apply(&store, &schema, false).await.unwrap();
        assert!(again.steps.is_empty());
        assert!(!again.recorded_version);
        let plan = migrate::plan(&store, &schema).await.unwrap();
        assert!(plan.is_empty(), "{}", plan.render());
        assert_eq!(
            plan.render(),
            "nothing to do: the database matches the metadata\n"
        );
        assert_eq!(version_rows(&store).await, 1);
        store.close().await;
    }
);

db_test!(
    adding_an_object_a_field_and_an_index_is_safe,
    |db| async move {
        let store = connect(&db).await;
        let app = app(&[(
            "lead",
            "name: lead\ntitle: name\nfields:\n  name: { type: text }\n",
        )]);
        migrate::apply(&store, &load(&app), false).await.unwrap();
        insert(&store, "lead", "l1", &[("name", Value::Text("Ann"))]).await;

        set_objects(
            &app,
            &[
                (
                    "lead",
                    "name: lead\ntitle: name\nfields:\n  name: { type: text }\n  email: { type: email }\n  \
                 account: { type: lookup, object: account }\n  rank: { type: integer, required: true }\n\
                 indexes: [[email]]\n",
                ),
                (
                    "account",
                    "name: account\ntitle: name\nfields:\n  name: { type: text }\n",
                ),
            ],
        );
        let schema = load(&app);
        let plan = migrate::plan(&store, &schema).await.unwrap();
        let kinds = kinds(&plan);
        for expected in [
            StepKind::CreateTable,
            StepKind::AddColumn,
            StepKind::AddIndex,
        ] {
            assert!(
                kinds.contains(&(expected, Safety::Safe)),
                "{}",
                plan.render()
            );
        }
        assert_eq!(plan.destructive().count(), 0, "{}", plan.render());
        assert!(
            plan.render().contains("+ add column lead.email (text)"),
            "{}",
            plan.render()
        );

        migrate::apply(&store, &schema, false).await.unwrap();
        let live = introspect::read(&store).await.unwrap();
        assert_matches_layout(&live, &schema);
        assert_eq!(
            column_texts(&store, "lead", "name").await,
            [Some("Ann".to_owned())]
        );
        // A newly added required field does not make the existing rows a destructive problem,
        // now or later.
        assert!(migrate::plan(&store, &schema).await.unwrap().is_empty());
        assert_eq!(version_rows(&store).await, 2);
        store.close().await;
    }
);

db_test!(
    renaming_a_field_with_renamed_from_keeps_its_data,
    |db| async move {
        let store = connect(&db).await;
        let app = app(&[
            (
                "lead",
                "name: lead\ntitle: name\nfields:\n  name: { type: text }\n  cell: { type: phone }\n  \
         account: { type: lookup, object: account }\nindexes: [[cell]]\n",
            ),
            (
                "account",
                "name: account\ntitle: name\nfields:\n  name: { type: text }\n",
            ),
        ]);
        migrate::apply(&store, &load(&app), false).await.unwrap();
        insert(&store, "account", "a1", &[("name", Value::Text("Acme"))]).await;
        insert(
            &store,
            "lead",
            "l1",
            &[
                ("cell", Value::Text("13800000000")),
                ("account", Value::Text("a1")),
            ],
        )
        .await;

        set_objects(
            &app,
            &[
                (
                    "lead",
                    "name: lead\ntitle: name\nfields:\n  name: { type: text }\n  \
                 mobile: { type: phone, renamed_from: cell }\n  \
                 company: { type: lookup, object: account, renamed_from: account }\n\
                 indexes: [[mobile]]\n",
                ),
                (
                    "account",
                    "name: account\ntitle: name\nfields:\n  name: { type: text }\n",
                ),
            ],
        );
        let schema = load(&app);
        let plan = migrate::plan(&store, &schema).await.unwrap();
        assert_eq!(plan.destructive().count(), 0, "{}", plan.render());
        let rendered = plan.render();
        assert!(
            rendered.contains("~ rename column lead.cell to mobile"),
            "{rendered}"
        );
        assert!(
            rendered.contains("- drop index lead__cell__id__deleted_at_idx on lead"),
            "{rendered}"
        );
        assert!(
            rendered.contains(
                "+ create index lead__mobile__id__deleted_at_idx on lead (mobile, id, deleted_at)"
            ),
            "{rendered}"
        );

        migrate::apply(&store, &schema, false).await.unwrap();
        assert_eq!(
            column_texts(&store, "lead", "mobile").await,
            [Some("13800000000".to_owned())]
        );
        assert_eq!(
            column_texts(&store, "lead", "company").await,
            [Some("a1".to_owned())]
        );
        let live = introspect::read(&store).await.unwrap();
        assert!(live.tables["lead"].column("cell").is_none());
        assert_matches_layout(&live, &schema);
        assert!(migrate::plan(&store, &schema).await.unwrap().is_empty());
        store.close().await;
    }
);

db_test!(
    removing_a_field_or_an_object_is_refused_then_archived,
    |db| async move {
        let store = connect(&db).await;
        let app = app(&[
            (
                "lead",
                "name: lead\ntitle: name\nfields:\n  name: { type: text }\n  cell: { type: phone, unique: true }\n  \
             account: { type: lookup, object: account }\n",
            ),
            (
                "account",
                "name: account\ntitle: name\nfields:\n  name: { type: text }\n",
            ),
        ]);
        migrate::apply(&store, &load(&app), false).await.unwrap();
        insert(&store, "account", "a1", &[("name", Value::Text("Acme"))]).await;
        insert(
            &store,
            "lead",
            "l1",
            &[
                ("name", Value::Text("Ann")),
                ("cell", Value::Text("138")),
                ("account", Value::Text("a1")),
            ],
        )
        .await;
        insert(&store, "lead", "l2", &[("name", Value::Text("Bob"))]).await;

        set_objects(
            &app,
            &[(
                "lead",
                "name: lead\ntitle: name\nfields:\n  name: { type: text }\n",
            )],
        );
        let schema = load(&app);
        let plan = migrate::plan(&store, &schema).await.unwrap();
        let destructive: Vec<_> = plan.destructive().collect();
        assert_eq!(destructive.len(), 3, "{}", plan.render());
        let cell = destructive
            .iter()
            .find(|step| step.field.as_deref() == Some("cell"))
            .unwrap();
        assert_eq!(cell.kind, StepKind::ArchiveColumn);
        assert_eq!(cell.affected_rows, Some(1));
        let account = destructive
            .iter()
            .find(|step| step.kind == StepKind::ArchiveTable)
            .unwrap();
        assert_eq!(account.object, "account");
        assert_eq!(account.affected_rows, Some(1));

        let refused = migrate::apply(&store, &schema, false).await.unwrap_err();
        assert!(matches!(
            refused,
            StoreError::DestructiveChangesRefused { .. }
        ));
        let message = refused.to_string();
        assert!(message.contains("--allow-destructive"), "{message}");
        assert!(message.contains("drop column lead.cell"), "{message}");
        assert!(message.contains("drop table account"), "{message}");
        // Refused means untouched.
        assert_eq!(column_texts(&store, "lead", "cell").await.len(), 2);
        assert_eq!(version_rows(&store).await, 1);

        let applied = migrate::apply(&store, &schema, true).await.unwrap();
        assert!(applied.recorded_version);
        let live = introspect::read(&store).await.unwrap();
        let archived = archived_column(&live, "lead", "cell");
        assert_eq!(
            column_texts(&store, "lead", &archived).await,
            [Some("138".to_owned()), None]
        );
        let archived_account = archived_column(&live, "lead", "account");
        assert_eq!(
            column_texts(&store, "lead", &archived_account).await,
            [Some("a1".to_owned()), None]
        );
        let archived_tables: Vec<&String> = live
            .tables
            .keys()
            .filter(|name| name.starts_with("keel_arch_") && name.ends_with("_account"))
            .collect();
        assert_eq!(archived_tables.len(), 1, "{:?}", live.tables.keys());
        assert_eq!(
            column_texts(&store, archived_tables[0], "name").await,
            [Some("Acme".to_owned())]
        );
        // Archived data neither restricts nor cascades deletes.
        assert!(
            live.tables["lead"].foreign_keys.is_empty(),
            "{:?}",
            live.tables["lead"].foreign_keys
        );
        assert!(live.tables[archived_tables[0]].foreign_keys.is_empty());
        // Archives are not the metadata's business any more.
        let after = migrate::plan(&store, &schema).await.unwrap();
        assert!(after.is_empty(), "{}", after.render());
        // New rows can still be written, and the object can come back under its old name.
        insert(&store, "lead", "l3", &[("name", Value::Text("Cy"))]).await;
        set_objects(
            &app,
            &[
                (
                    "lead",
                    "name: lead\ntitle: name\nfields:\n  name: { type: text }\n  cell: { type: phone, unique: true }\n",
                ),
                (
                    "account",
                    "name: account\ntitle: name\nfields:\n  name: { type: text }\n",
                ),
            ],
        );
        let restored = load(&app);
        migrate::apply(&store, &restored, false).await.unwrap();
        assert_matches_layout(&introspect::read(&store).await.unwrap(), &restored);
        store.close().await;
    }
);

db_test!(
    type_narrowing_is_refused_with_the_rows_that_would_not_convert,
    |db| async move {
        let store = connect(&db).await;
        let app = app(&[(
            "lead",
            "name: lead\ntitle: code\nfields:\n  code: { type: text }\nindexes: [[code]]\n",
        )]);
        migrate::apply(&store, &load(&app), false).await.unwrap();
        for (id, value) in [
            ("l1", Value::Text("12")),
            ("l2", Value::Text("abc")),
            ("l3", Value::Text(" -7 ")),
            ("l4", Value::Null),
        ] {
            insert(&store, "lead", id, &[("code", value)]).await;
        }

        set_objects(
            &app,
            &[(
                "lead",
                "name: lead\ntitle: code\nfields:\n  code: { type: integer }\nindexes: [[code]]\n",
            )],
        );
        let schema = load(&app);
        let plan = migrate::plan(&store, &schema).await.unwrap();
        let step = plan.destructive().next().unwrap();
        assert_eq!(step.kind, StepKind::ChangeColumnType);
        assert_eq!(
            (step.object.as_str(), step.field.as_deref()),
            ("lead", Some("code"))
        );
        assert_eq!(step.affected_rows, Some(1));

        let message = migrate::apply(&store, &schema, false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("lead.code from text to integer: 1 row would not convert"),
            "{message}"
        );

        migrate::apply(&store, &schema, true).await.unwrap();
        assert_eq!(
            column_texts(&store, "lead", "code").await,
            [Some("12".to_owned()), None, Some("-7".to_owned()), None]
        );
        let live = introspect::read(&store).await.unwrap();
        let archived = archived_column(&live, "lead", "code");
        assert_eq!(
            column_texts(&store, "lead", &archived).await[1].as_deref(),
            Some("abc")
        );
        assert_matches_layout(&live, &schema);
        assert!(migrate::plan(&store, &schema).await.unwrap().is_empty());
        store.close().await;
    }
);

db_test!(
    widening_integer_to_decimal_is_safe_and_keeps_values,
    |db| async move {
        let store = connect(&db).await;
        let app = app(&[(
            "lead",
            "name: lead\ntitle: score\nfields:\n  score: { type: integer }\n",
        )]);
        migrate::apply(&store, &load(&app), false).await.unwrap();
        insert(&store, "lead", "l1", &[("score", Value::Integer(5))]).await;
        insert(&store, "lead", "l2", &[("score", Value::Integer(-12))]).await;

        set_objects(
            &app,
            &[(
                "lead",
                "name: lead\ntitle: score\nfields:\n  score: { type: decimal, scale: 2 }\n",
            )],
        );
        let schema = load(&app);
        plan_of(
            &store,
            &schema,
            &[(StepKind::ChangeColumnType, Safety::Safe)],
        )
        .await;
        migrate::apply(&store, &schema, false).await.unwrap();
        let expected = match store.dialect() {
            // SQLite keeps decimals as integers scaled by 10^scale.
            Dialect::Sqlite => ["500", "-1200"],
            Dialect::Postgres => ["5.00", "-12.00"],
        };
        assert_eq!(
            column_texts(&store, "lead", "score").await,
            expected.map(|text| Some(text.to_owned()))
        );
        assert_matches_layout(&introspect::read(&store).await.unwrap(), &schema);

        // And back down: scale 2 → integer rounds, and says how many rows change.
        insert(&store, "lead", "l3", &[]).await;
        execute(
            &store,
            match store.dialect() {
                Dialect::Sqlite => "UPDATE lead SET score = 250 WHERE id = 'l3'",
                Dialect::Postgres => "UPDATE lead SET score = 2.5 WHERE id = 'l3'",
            },
        )
        .await;
        set_objects(
            &app,
            &[(
                "lead",
                "name: lead\ntitle: score\nfields:\n  score: { type: integer }\n",
            )],
        );
        let schema = load(&app);
        let plan = migrate::plan(&store, &schema).await.unwrap();
        let step = plan.destructive().next().unwrap();
        assert_eq!(step.affected_rows, Some(1), "{}", plan.render());
        assert!(step.description.contains("rounded"), "{}", step.description);
        migrate::apply(&store, &schema, true).await.unwrap();
        assert_eq!(
            column_texts(&store, "lead", "score").await,
            [
                Some("5".to_owned()),
                Some("-12".to_owned()),
                Some("3".to_owned())
            ]
        );
        store.close().await;
    }
);

db_test!(
    making_a_field_required_over_empty_values_is_refused_with_the_count,
    |db| async move {
        let store = connect(&db).await;
        let app = app(&[(
            "lead",
            "name: lead\ntitle: name\nfields:\n  name: { type: text }\n",
        )]);
        migrate::apply(&store, &load(&app), false).await.unwrap();
        insert(&store, "lead", "l1", &[("name", Value::Text("Ann"))]).await;
        insert(&store, "lead", "l2", &[("name", Value::Null)]).await;
        insert(&store, "lead", "l3", &[]).await;

        set_objects(
            &app,
            &[(
                "lead",
                "name: lead\ntitle: name\nfields:\n  name: { type: text, required: true }\n",
            )],
        );
        let schema = load(&app);
        let plan = migrate::plan(&store, &schema).await.unwrap();
        assert_eq!(
            kinds(&plan),
            [(StepKind::RequireField, Safety::Destructive)]
        );
        assert_eq!(plan.steps[0].affected_rows, Some(2));
        let message = migrate::apply(&store, &schema, false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("make lead.name required: 2 rows have no value"),
            "{message}"
        );

        let applied = migrate::apply(&store, &schema, true).await.unwrap();
        assert!(applied.recorded_version);
        // Accepted once, not asked again.
        let after = migrate::plan(&store, &schema).await.unwrap();
        assert!(after.is_empty(), "{}", after.render());
        assert!(migrate::apply(&store, &schema, false).await.is_ok());
        store.close().await;
    }
);

db_test!(
    a_new_unique_over_duplicate_values_is_refused_with_the_count,
    |db| async move {
        let store = connect(&db).await;
        let app = app(&[(
            "lead",
            "name: lead\ntitle: phone\nfields:\n  phone: { type: phone }\n",
        )]);
        migrate::apply(&store, &load(&app), false).await.unwrap();
        for (id, phone) in [("l1", "1"), ("l2", "1"), ("l3", "2"), ("l4", "1")] {
            insert(&store, "lead", id, &[("phone", Value::Text(phone))]).await;
        }
        insert(&store, "lead", "l5", &[]).await;

        set_objects(
            &app,
            &[(
                "lead",
                "name: lead\ntitle: phone\nfields:\n  phone: { type: phone, unique: true }\n",
            )],
        );
        let schema = load(&app);
        let plan = migrate::plan(&store, &schema).await.unwrap();
        assert_eq!(
            kinds(&plan),
            [(StepKind::AddUniqueIndex, Safety::Destructive)]
        );
        assert_eq!(plan.steps[0].affected_rows, Some(3));
        let message = migrate::apply(&store, &schema, false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("make lead.phone unique: 3 rows share a value"),
            "{message}"
        );

        // Accepting it cannot create the index, but stops it from blocking.
        migrate::apply(&store, &schema, true).await.unwrap();
        let accepted = migrate::plan(&store, &schema).await.unwrap();
        assert!(accepted.is_empty(), "{}", accepted.render());
        assert_eq!(accepted.acknowledged.len(), 1);
        assert!(
            accepted
                .render()
                .contains("(accepted earlier) make lead.phone unique")
        );

        // Once the duplicates are gone, the index comes as an ordinary safe step.
        execute(
            &store,
            "UPDATE lead SET phone = NULL WHERE id IN ('l2', 'l4')",
        )
        .await;
        let plan = migrate::plan(&store, &schema).await.unwrap();
        assert_eq!(kinds(&plan), [(StepKind::AddUniqueIndex, Safety::Safe)]);
        migrate::apply(&store, &schema, false).await.unwrap();
        assert_matches_layout(&introspect::read(&store).await.unwrap(), &schema);
        store.close().await;
    }
);

db_test!(
    foreign_keys_change_in_place_and_count_dangling_references,
    |db| async move {
        let store = connect(&db).await;
        let account = "name: account\ntitle: name\nfields:\n  name: { type: text }\n";
        // A child of `lead`: rebuilding `lead` on SQLite must not cascade into it.
        let task = "name: task\ntitle: subject\nfields:\n  subject: { type: text }\n  \
                    lead: { type: lookup, object: lead, on_delete: cascade }\n";
        let app = app(&[
            ("task", task),
            ("account", account),
            (
                "lead",
                "name: lead\ntitle: name\nfields:\n  name: { type: text, unique: true }\n  \
             account: { type: lookup, object: account }\n  ref: { type: text }\nindexes: [[ref]]\n",
            ),
        ]);
        migrate::apply(&store, &load(&app), false).await.unwrap();
        insert(&store, "account", "a1", &[("name", Value::Text("Acme"))]).await;
        insert(
            &store,
            "lead",
            "l1",
            &[
                ("name", Value::Text("Ann")),
                ("account", Value::Text("a1")),
                ("ref", Value::Text("a1")),
            ],
        )
        .await;
        insert(&store, "lead", "l2", &[("ref", Value::Text("gone"))]).await;
        insert(&store, "task", "t1", &[("lead", Value::Text("l1"))]).await;

        // on_delete restrict → cascade, and the text `ref` becomes a lookup over one dangling value.
        set_objects(
            &app,
            &[
                ("task", task),
                ("account", account),
                (
                    "lead",
                    "name: lead\ntitle: name\nfields:\n  name: { type: text, unique: true }\n  \
                 account: { type: lookup, object: account, on_delete: cascade }\n  \
                 ref: { type: lookup, object: account, on_delete: set_null }\n",
                ),
            ],
        );
        let schema = load(&app);
        let plan = migrate::plan(&store, &schema).await.unwrap();
        let destructive: Vec<_> = plan.destructive().collect();
        assert_eq!(destructive.len(), 1, "{}", plan.render());
        assert_eq!(destructive[0].affected_rows, Some(1));
        assert!(migrate::apply(&store, &schema, false).await.is_err());
        migrate::apply(&store, &schema, true).await.unwrap();

        let live = introspect::read(&store).await.unwrap();
        assert_matches_layout(&live, &schema);
        assert_eq!(
            column_texts(&store, "lead", "ref").await,
            [Some("a1".to_owned()), Some("gone".to_owned())]
        );
        assert!(migrate::plan(&store, &schema).await.unwrap().is_empty());
        assert_eq!(
            column_texts(&store, "task", "lead").await,
            [Some("l1".to_owned())]
        );
        // The new key acts: deleting the account cascades to its lead, and on to the task.
        execute(&store, "DELETE FROM account WHERE id = 'a1'").await;
        assert_eq!(count(&store, "SELECT count(*) FROM lead").await, 1);
        assert_eq!(count(&store, "SELECT count(*) FROM task").await, 0);
        store.close().await;
    }
);

db_test!(
    changed_types_keep_every_value_that_converts_on_both_databases,
    |db| async move {
        let store = connect(&db).await;
        let v1 = "name: item\ntitle: d\nfields:\n  d: { type: text }\n  t: { type: text }\n  \
                  b: { type: text }\n  n: { type: text }\n  j: { type: choice, options: [a, b] }\n  \
                  at: { type: datetime }\n";
        let app = app(&[("item", v1)]);
        migrate::apply(&store, &load(&app), false).await.unwrap();
        insert(
            &store,
            "item",
            "i1",
            &[
                ("d", Value::Text("2026-02-28")),
                ("t", Value::Text("2026-02-28T10:11:12Z")),
                ("b", Value::Text("yes")),
                ("n", Value::Text("-12.5")),
                ("j", Value::Text("a")),
            ],
        )
        .await;
        insert(
            &store,
            "item",
            "i2",
            &[
                ("d", Value::Text("2026-02-30")),
                ("t", Value::Text("soon")),
                ("b", Value::Text("maybe")),
                ("n", Value::Text("1.234")),
            ],
        )
        .await;
        execute(
            &store,
            match store.dialect() {
                Dialect::Sqlite => "UPDATE item SET at = '2026-02-28T23:00:00.000000Z'",
                Dialect::Postgres => "UPDATE item SET at = '2026-02-28T23:00:00Z'",
            },
        )
        .await;

        set_objects(
            &app,
            &[(
                "item",
                "name: item\ntitle: d\nfields:\n  d: { type: date }\n  t: { type: datetime }\n  \
                 b: { type: boolean }\n  n: { type: money }\n  j: { type: multi_choice, options: [a, b] }\n  \
                 at: { type: date }\n",
            )],
        );
        let schema = load(&app);
        let plan = migrate::plan(&store, &schema).await.unwrap();
        let affected: Vec<(Option<&str>, Option<i64>)> = plan
            .steps
            .iter()
            .map(|step| (step.field.as_deref(), step.affected_rows))
            .collect();
        assert_eq!(
            affected,
            [
                (Some("d"), Some(1)),
                (Some("t"), Some(1)),
                (Some("b"), Some(1)),
                (Some("n"), Some(1)),
                (Some("j"), Some(0)),
                (Some("at"), Some(2)),
            ],
            "{}",
            plan.render()
        );
        migrate::apply(&store, &schema, true).await.unwrap();
        assert_matches_layout(&introspect::read(&store).await.unwrap(), &schema);

        let texts = |values: [Option<&str>; 2]| values.map(|value| value.map(str::to_owned));
        assert_eq!(
            column_texts(&store, "item", "d").await,
            texts([Some("2026-02-28"), None])
        );
        assert_eq!(
            column_texts(&store, "item", "at").await,
            texts([Some("2026-02-28"); 2])
        );
        let (datetime, yes, amount, tags) = match store.dialect() {
            Dialect::Sqlite => ("2026-02-28T10:11:12.000000Z", "1", "-1250", "[\"a\"]"),
            Dialect::Postgres => ("2026-02-28 10:11:12+00", "true", "-12.50", "[\"a\"]"),
        };
        if store.dialect() == Dialect::Postgres {
            execute(&store, "SET TIME ZONE 'UTC'").await;
        }
        let datetimes = column_texts(&store, "item", "t").await;
        assert_eq!(datetimes[1], None);
        if store.dialect() == Dialect::Sqlite {
            assert_eq!(datetimes[0].as_deref(), Some(datetime));
        } else {
            let count = count(
                &store,
                "SELECT count(*) FROM item WHERE t = '2026-02-28T10:11:12Z'::timestamptz",
            )
            .await;
            assert_eq!(count, 1);
        }
        assert_eq!(
            column_texts(&store, "item", "b").await,
            texts([Some(yes), None])
        );
        assert_eq!(
            column_texts(&store, "item", "n").await,
            texts([Some(amount), None])
        );
        assert_eq!(
            column_texts(&store, "item", "j").await,
            texts([Some(tags), None])
        );
        store.close().await;
    }
);

db_test!(
    concurrent_applies_on_an_empty_database_create_everything_once,
    |db| async move {
        let schema = load(&app(&[
            ("lead", LEAD),
            ("account", ACCOUNT),
            ("contact", CONTACT),
        ]));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let url = db.url.clone();
            let schema = schema.clone();
            tasks.push(tokio::spawn(async move {
                let store = Db::connect(&url).await.unwrap();
                let applied = migrate::apply(&store, &schema, false).await;
                store.close().await;
                applied
            }));
        }
        let mut working = 0;
        for task in tasks {
            let applied = task.await.unwrap().unwrap();
            if !applied.steps.is_empty() {
                working += 1;
                assert!(applied.recorded_version);
            }
        }
        assert_eq!(working, 1, "exactly one process creates the tables");
        let store = connect(&db).await;
        assert_eq!(version_rows(&store).await, 1);
        assert_matches_layout(&introspect::read(&store).await.unwrap(), &schema);
        store.close().await;
    }
);

const DEAL: &str = "\
name: deal
title: name
fields:
  name: { type: text }
  stage: { type: choice, default: open, options: [open, offer, won] }
";

const DEAL_SALES: &str = "\
name: deal_sales
object: deal
stage_field: stage
stages:
  - { key: open, probability: 10 }
  - { key: offer, probability: 50 }
  - { key: won, probability: 100, outcome: won }
transitions:
  - { linear: true }
";

/// The stage summary of every deal, in id order (`None` for none).
async fn summaries(db: &Db) -> Vec<Option<serde_json::Value>> {
    column_texts(db, "deal", "keel_stages")
        .await
        .into_iter()
        .map(|text| text.map(|text| serde_json::from_str(&text).unwrap()))
        .collect()
}

db_test!(
    a_process_added_to_an_object_with_history_fills_in_its_stage_summary,
    |db| async move {
        let store = connect(&db).await;
        let app = app(&[("deal", DEAL)]);
        migrate::apply(&store, &load(&app), false).await.unwrap();
        insert(&store, "deal", "d1", &[("stage", Value::Text("offer"))]).await;
        insert(&store, "deal", "d2", &[("stage", Value::Text("open"))]).await;
        // d1's history (left behind by an earlier process): created in open, an hour there,
        // a minute in offer, back to open, then offer again after a stay of unknown length.
        execute(
            &store,
            "INSERT INTO keel_stage_history (id, object, record_id, process, from_stage, \
             to_stage, at, seconds_in_from) VALUES \
             ('h1', 'deal', 'd1', 'old', NULL, 'open', '2026-01-01T00:00:00.000000Z', NULL), \
             ('h2', 'deal', 'd1', 'old', 'open', 'offer', '2026-01-01T01:00:00.000000Z', 3600), \
             ('h3', 'deal', 'd1', 'old', 'offer', 'open', '2026-01-01T01:01:00.000000Z', 60), \
             ('h4', 'deal', 'd1', 'old', 'open', 'offer', '2026-01-01T02:00:00.000000Z', NULL), \
             ('h5', 'other', 'd2', 'old', NULL, 'offer', '2026-01-01T00:00:00.000000Z', NULL)",
        )
        .await;

        app.write("workflows/processes/deal_sales.yaml", DEAL_SALES);
        let schema = load(&app);
        let plan = plan_of(&store, &schema, &[(StepKind::AddColumn, Safety::Safe)]).await;
        assert_eq!(
            plan.steps[0].description,
            "add column deal.keel_stages (json), filled in from the stage history"
        );
        migrate::apply(&store, &schema, false).await.unwrap();
        assert_matches_layout(&introspect::read(&store).await.unwrap(), &schema);
        // Per stage: [entered, completed stays of known length, their seconds]. d2's only
        // history row is another object's.
        assert_eq!(
            summaries(&store).await,
            [
                Some(serde_json::json!({ "open": [2, 1, 3600], "offer": [2, 1, 60] })),
                None
            ]
        );

        // Without the process the summary goes, safely: the history it came from stays.
        app.remove("workflows/processes/deal_sales.yaml");
        let schema = load(&app);
        plan_of(&store, &schema, &[(StepKind::ArchiveColumn, Safety::Safe)]).await;
        migrate::apply(&store, &schema, false).await.unwrap();
        assert_eq!(
            count(&store, "SELECT count(*) FROM keel_stage_history").await,
            5
        );
        store.close().await;
    }
);

/// `text` with archive timestamps replaced, so snapshots do not depend on the clock.
fn without_archive_times(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("keel_arch_") {
        let (before, after) = rest.split_at(start + "keel_arch_".len());
        out.push_str(before);
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        out.push_str(if digits == 14 {
            "<time>"
        } else {
            &after[..digits]
        });
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn a_destructive_plan_renders_one_line_per_step() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let store = connect(&db).await;
    let app = app(&[
        (
            "lead",
            "name: lead\ntitle: name\nfields:\n  name: { type: text }\n  cell: { type: phone }\n  \
             code: { type: text }\n  score: { type: integer }\n  account: { type: lookup, object: account }\n\
             indexes: [[cell]]\n",
        ),
        (
            "account",
            "name: account\ntitle: name\nfields:\n  name: { type: text }\n",
        ),
        (
            "legacy",
            "name: legacy\ntitle: name\nfields:\n  name: { type: text }\n",
        ),
    ]);
    migrate::apply(&store, &load(&app), false).await.unwrap();
    insert(&store, "account", "a1", &[("name", Value::Text("Acme"))]).await;
    insert(&store, "legacy", "x1", &[("name", Value::Text("old"))]).await;
    for (id, name, cell, code) in [
        ("l1", "Ann", "1", "12"),
        ("l2", "Bob", "1", "x"),
        ("l3", "", "2", "y"),
    ] {
        let name = if name.is_empty() {
            Value::Null
        } else {
            Value::Text(name)
        };
        insert(
            &store,
            "lead",
            id,
            &[
                ("name", name),
                ("cell", Value::Text(cell)),
                ("code", Value::Text(code)),
                ("score", Value::Integer(7)),
            ],
        )
        .await;
    }
    set_objects(
        &app,
        &[
            (
                "lead",
                "name: lead\ntitle: name\nfields:\n  name: { type: text, required: true }\n  \
                 mobile: { type: phone, renamed_from: cell, unique: true }\n  code: { type: integer }\n  \
                 score: { type: decimal, scale: 2 }\n  email: { type: email }\n  \
                 account: { type: lookup, object: account, on_delete: set_null }\nindexes: [[email]]\n",
            ),
            (
                "account",
                "name: account\ntitle: name\nfields:\n  name: { type: text }\n",
            ),
        ],
    );
    let plan = migrate::plan(&store, &load(&app)).await.unwrap();
    insta::assert_snapshot!(
        "migrate_destructive_plan",
        without_archive_times(&plan.render())
    );
    store.close().await;
}

#[test]
fn create_ddl_for_the_standard_app_on_sqlite() {
    let schema = keel_meta::load_app(&repository_root())
        .unwrap_or_else(|errors| panic!("the standard app must load:\n{errors}"));
    insta::assert_snapshot!(
        "migrate_create_ddl_sqlite",
        migrate::create_ddl(Dialect::Sqlite, &schema).join(";\n\n")
    );
}

#[test]
fn create_ddl_for_the_standard_app_on_postgres() {
    let schema = keel_meta::load_app(&repository_root())
        .unwrap_or_else(|errors| panic!("the standard app must load:\n{errors}"));
    insta::assert_snapshot!(
        "migrate_create_ddl_postgres",
        migrate::create_ddl(Dialect::Postgres, &schema).join(";\n\n")
    );
}

db_test!(the_shipped_apps_migrate_from_empty, |db| async move {
    // The standard app and every template in templates/ (docs/templates.md), each on a
    // fresh database.
    let mut apps = vec![repository_root()];
    let mut templates: Vec<_> = std::fs::read_dir(repository_root().join("templates"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("metadata").is_dir())
        .collect();
    templates.sort();
    apps.extend(templates);
    let backend = db.backend;
    let mut first = Some(db);
    for dir in apps {
        let database = match first.take() {
            Some(db) => db,
            None => TestDb::new(backend).await.unwrap(),
        };
        let schema = keel_meta::load_app(&dir)
            .unwrap_or_else(|errors| panic!("{} must load:\n{errors}", dir.display()));
        let store = connect(&database).await;
        migrate::apply(&store, &schema, false).await.unwrap();
        assert_matches_layout(&introspect::read(&store).await.unwrap(), &schema);
        assert!(migrate::plan(&store, &schema).await.unwrap().is_empty());
        store.close().await;
    }
});

db_test!(
    users_and_departments_are_registered_by_name,
    |db| async move {
        use keel_store::users::{self, NewUser};
        let store = connect(&db).await;
        migrate::apply(&store, &load(&app(&[])), false)
            .await
            .unwrap();
        assert_eq!(users::count(&store).await.unwrap(), 0);
        let sales = users::ensure_department_at(&store, "sales", Some("Sales"), None, at())
            .await
            .unwrap();
        let east = users::ensure_department_at(&store, "east", None, Some("sales"), at())
            .await
            .unwrap();
        assert_eq!(
            users::ensure_department_at(&store, "sales", None, None, at())
                .await
                .unwrap(),
            sales
        );
        assert_ne!(sales, east);
        assert!(matches!(
            users::ensure_department_at(&store, "west", None, Some("nowhere"), at()).await,
            Err(StoreError::UnknownDepartment { .. })
        ));

        let boss = NewUser {
            username: "boss".to_owned(),
            display_name: Some("The Boss".to_owned()),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
            roles: vec!["admin".to_owned()],
            manager: None,
            department: Some("sales".to_owned()),
            language: Some("zh".to_owned()),
            email: None,
        };
        let boss_id = users::insert_at(&store, &boss, at(), None).await.unwrap();
        let rep = NewUser {
            username: "rep".to_owned(),
            display_name: None,
            roles: vec!["sales_rep".to_owned(), "viewer".to_owned()],
            manager: Some("boss".to_owned()),
            department: Some("east".to_owned()),
            language: None,
            ..boss.clone()
        };
        users::insert_at(&store, &rep, at(), None).await.unwrap();
        assert_eq!(users::count(&store).await.unwrap(), 2);

        let found = users::find_by_username(&store, "rep")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.manager_id.as_deref(), Some(boss_id.as_str()));
        assert_eq!(found.department_id.as_deref(), Some(east.as_str()));
        assert_eq!(found.roles, ["sales_rep", "viewer"]);
        assert!(found.active);
        assert_eq!(found.created_at, found.updated_at);
        assert!(
            users::find_by_username(&store, "nobody")
                .await
                .unwrap()
                .is_none()
        );

        let duplicate = users::insert_at(&store, &boss, at(), None)
            .await
            .unwrap_err();
        assert_eq!(duplicate.to_string(), "a user named `boss` already exists");
        let orphan = NewUser {
            username: "x".to_owned(),
            manager: Some("ghost".to_owned()),
            ..rep.clone()
        };
        assert!(
            users::insert_at(&store, &orphan, at(), None)
                .await
                .unwrap_err()
                .to_string()
                .contains("ghost")
        );
        let lost = NewUser {
            username: "y".to_owned(),
            department: Some("mars".to_owned()),
            ..rep
        };
        assert!(
            users::insert_at(&store, &lost, at(), None)
                .await
                .unwrap_err()
                .to_string()
                .contains("mars")
        );
        store.close().await;
    }
);

db_test!(
    a_database_from_before_user_emails_gains_the_column_as_a_safe_step,
    |db| async move {
        use keel_store::users::{self, NewUser, UserChanges, UserUpdate};
        let store = connect(&db).await;
        let schema = load(&app(&[]));
        migrate::apply(&store, &schema, false).await.unwrap();
        let user = |name: &str, email: Option<&str>| NewUser {
            username: name.to_owned(),
            display_name: None,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
            roles: Vec::new(),
            manager: None,
            department: None,
            language: None,
            email: email.map(str::to_owned),
        };
        users::insert_at(&store, &user("old", None), at(), None)
            .await
            .unwrap();
        // The database as it was before users had an email address.
        execute(&store, "ALTER TABLE keel_users DROP COLUMN email").await;

        let plan = plan_of(&store, &schema, &[(StepKind::AddColumn, Safety::Safe)]).await;
        assert!(
            plan.render().contains("keel_users.email"),
            "{}",
            plan.render()
        );
        migrate::apply(&store, &schema, false).await.unwrap();
        assert!(migrate::plan(&store, &schema).await.unwrap().is_empty());
        let old = users::find_by_username(&store, "old")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(old.email, None);

        // Written and read on the migrated database: set, left alone, cleared.
        let new_id = users::insert_at(&store, &user("new", Some("new@example.com")), at(), None)
            .await
            .unwrap();
        let found = users::find_by_id(&store, &new_id).await.unwrap().unwrap();
        assert_eq!(found.email.as_deref(), Some("new@example.com"));
        let change = |changes: UserChanges| {
            let store = store.clone();
            async move {
                match users::update_at(&store, "old", &changes, at(), None)
                    .await
                    .unwrap()
                {
                    UserUpdate::Updated(user) => user.email,
                    other => panic!("{other:?}"),
                }
            }
        };
        let set = change(UserChanges {
            email: Some(Some("old@example.com".to_owned())),
            ..UserChanges::default()
        })
        .await;
        assert_eq!(set.as_deref(), Some("old@example.com"));
        let left = change(UserChanges {
            language: Some(Some("en".to_owned())),
            ..UserChanges::default()
        })
        .await;
        assert_eq!(left.as_deref(), Some("old@example.com"));
        let emails: Vec<(String, Option<String>)> = users::list(&store)
            .await
            .unwrap()
            .into_iter()
            .map(|user| (user.username, user.email))
            .collect();
        assert_eq!(
            emails,
            [
                ("new".to_owned(), Some("new@example.com".to_owned())),
                ("old".to_owned(), Some("old@example.com".to_owned())),
            ]
        );
        let cleared = change(UserChanges {
            email: Some(None),
            ..UserChanges::default()
        })
        .await;
        assert_eq!(cleared, None);
        let old = users::find_by_username(&store, "old")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(old.email, None);
        store.close().await;
    }
);

db_test!(
    concurrent_org_changes_all_land_and_the_closure_tables_follow,
    |db| async move {
        use keel_store::users::{self, NewUser, UserChanges, UserUpdate};
        let store = connect(&db).await;
        migrate::apply(&store, &load(&app(&[])), false)
            .await
            .unwrap();
        let user = |name: &str, manager: Option<&str>| NewUser {
            username: name.to_owned(),
            display_name: None,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
            roles: Vec::new(),
            manager: manager.map(str::to_owned),
            department: None,
            language: None,
            email: None,
        };
        users::insert_at(&store, &user("boss", None), at(), None)
            .await
            .unwrap();
        users::insert_at(&store, &user("middle", Some("boss")), at(), None)
            .await
            .unwrap();
        for number in 0..8 {
            users::insert_at(&store, &user(&format!("rep_{number}"), None), at(), None)
                .await
                .unwrap();
        }
        // Eight admins move eight reps under `middle` at once: each change rebuilds the
        // closure tables, and none may fail or lose another's rows.
        let moves = (0..8).map(|number| {
            let store = store.clone();
            async move {
                let changes = UserChanges {
                    manager: Some(Some("middle".to_owned())),
                    ..UserChanges::default()
                };
                users::update_at(&store, &format!("rep_{number}"), &changes, at(), None).await
            }
        });
        for outcome in futures::future::join_all(moves).await {
            assert!(matches!(outcome, Ok(UserUpdate::Updated(_))), "{outcome:?}");
        }
        // boss sees boss, middle and the 8 reps; middle sees itself and the reps.
        let team_size = |manager: &'static str| {
            let store = store.clone();
            async move {
                let manager = users::find_by_username(&store, manager)
                    .await
                    .unwrap()
                    .unwrap();
                users::team_size(&store, &manager.id).await.unwrap()
            }
        };
        assert_eq!(team_size("boss").await, 10);
        assert_eq!(team_size("middle").await, 9);
        assert_eq!(team_size("rep_3").await, 1);
        store.close().await;
    }
);
