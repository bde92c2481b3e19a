//! Reading the live database's structure: tables, columns with their declared types,
//! indexes and single-column foreign keys, from SQLite's `pragma_*` table functions or
//! PostgreSQL's catalogs (current schema only).
//!
//! The migration planner compares this with the layout the metadata asks for; Keel never
//! trusts a remembered picture of the database. This module only reads: it does not judge
//! what it finds (see `migrate::planner`).

use std::collections::BTreeMap;

use keel_meta::{OnDelete, Storage};
use sqlx::{PgConnection, SqliteConnection};

use crate::db::{Connection, Dialect};
use crate::error::StoreError;
use crate::layout::storage_of_sql_type;

/// Every table of the database, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveDatabase {
    pub tables: BTreeMap<String, LiveTable>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveTable {
    pub name: String,
    /// In table order.
    pub columns: Vec<LiveColumn>,
    pub indexes: Vec<LiveIndex>,
    /// Single-column foreign keys only; composite keys are not Keel's and are ignored.
    pub foreign_keys: Vec<LiveForeignKey>,
    /// PostgreSQL: the name of the primary-key constraint (it owns a schema-wide index name).
    pub primary_key_constraint: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LiveColumn {
    pub name: String,
    /// The type as declared (SQLite) or as `format_type()` prints it (PostgreSQL).
    pub declared_type: String,
    /// The Keel storage that declared type stands for, if any.
    pub storage: Option<Storage>,
    pub not_null: bool,
    pub primary_key: bool,
    /// The default as SQL text.
    pub default_sql: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LiveIndex {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// A plain `CREATE [UNIQUE] INDEX` over columns named like Keel names indexes, so Keel
    /// may drop it. Primary keys, constraint indexes, expression and partial indexes and
    /// indexes named otherwise are never touched.
    pub droppable: bool,
    /// SQLite: the `CREATE INDEX` statement, to recreate the index after a table rebuild.
    pub sql: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LiveForeignKey {
    /// PostgreSQL's constraint name; SQLite's foreign keys have none.
    pub name: Option<String>,
    pub column: String,
    pub target_table: String,
    /// `None` for actions Keel does not use (NO ACTION, SET DEFAULT).
    pub on_delete: Option<OnDelete>,
}

impl LiveDatabase {
    pub fn table(&self, name: &str) -> Option<&LiveTable> {
        self.tables.get(name)
    }
}

impl LiveTable {
    pub fn column(&self, name: &str) -> Option<&LiveColumn> {
        self.columns.iter().find(|column| column.name == name)
    }

    pub fn has_column(&self, name: &str) -> bool {
        self.column(name).is_some()
    }
}

/// Reads the structure of `db` as it is now.
pub async fn read(db: &crate::db::Db) -> Result<LiveDatabase, StoreError> {
    let mut pooled = db.acquire().await?;
    introspect(&mut pooled.connection()).await
}

/// Reads the structure of the database `connection` is connected to.
pub(crate) async fn introspect(
    connection: &mut Connection<'_>,
) -> Result<LiveDatabase, StoreError> {
    match connection {
        Connection::Sqlite(connection) => introspect_sqlite(connection).await,
        Connection::Postgres(connection) => introspect_postgres(connection).await,
    }
}

fn on_delete_from_sqlite(action: &str) -> Option<OnDelete> {
    match action.to_ascii_uppercase().as_str() {
        "RESTRICT" => Some(OnDelete::Restrict),
        "SET NULL" => Some(OnDelete::SetNull),
        "CASCADE" => Some(OnDelete::Cascade),
        _ => None,
    }
}

fn on_delete_from_postgres(code: &str) -> Option<OnDelete> {
    match code {
        "r" => Some(OnDelete::Restrict),
        "n" => Some(OnDelete::SetNull),
        "c" => Some(OnDelete::Cascade),
        _ => None,
    }
}

async fn introspect_sqlite(connection: &mut SqliteConnection) -> Result<LiveDatabase, StoreError> {
    let context = "reading the SQLite schema";
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(&mut *connection)
    .await
    .map_err(StoreError::query(context))?;

    let mut database = LiveDatabase::default();
    for name in names {
        let columns: Vec<(String, String, i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid",
        )
        .bind(&name)
        .fetch_all(&mut *connection)
        .await
        .map_err(StoreError::query(context))?;
        let columns = columns
            .into_iter()
            .map(
                |(column, declared_type, not_null, default_sql, primary_key)| LiveColumn {
                    storage: storage_of_sql_type(Dialect::Sqlite, &declared_type),
                    name: column,
                    declared_type,
                    not_null: not_null != 0,
                    primary_key: primary_key != 0,
                    default_sql,
                },
            )
            .collect();

        let index_list: Vec<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1) ORDER BY name",
        )
        .bind(&name)
        .fetch_all(&mut *connection)
        .await
        .map_err(StoreError::query(context))?;
        let mut indexes = Vec::new();
        for (index, unique, origin, partial) in index_list {
            let index_columns: Vec<Option<String>> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                    .bind(&index)
                    .fetch_all(&mut *connection)
                    .await
                    .map_err(StoreError::query(context))?;
            let sql: Option<String> = sqlx::query_scalar(
                "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?1",
            )
            .bind(&index)
            .fetch_optional(&mut *connection)
            .await
            .map_err(StoreError::query(context))?
            .flatten();
            let plain_columns = index_columns.iter().all(Option::is_some);
            indexes.push(LiveIndex {
                droppable: origin == "c"
                    && partial == 0
                    && plain_columns
                    && crate::naming::is_keel_index_name(&index),
                columns: index_columns.into_iter().flatten().collect(),
                name: index,
                unique: unique != 0,
                sql,
            });
        }

        let keys: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT id, \"table\", \"from\", on_delete FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
        )
        .bind(&name)
        .fetch_all(&mut *connection)
        .await
        .map_err(StoreError::query(context))?;
        let mut foreign_keys = Vec::new();
        for (id, target_table, column, on_delete) in &keys {
            let single_column = keys.iter().filter(|key| key.0 == *id).count() == 1;
            if single_column {
                foreign_keys.push(LiveForeignKey {
                    name: None,
                    column: column.clone(),
                    target_table: target_table.clone(),
                    on_delete: on_delete_from_sqlite(on_delete),
                });
            }
        }

        database.tables.insert(
            name.clone(),
            LiveTable {
                name,
                columns,
                indexes,
                foreign_keys,
                primary_key_constraint: None,
            },
        );
    }
    Ok(database)
}

/// table, index, unique, backs a constraint, partial or over expressions, columns, number of
/// key columns.
type PostgresIndexRow = (String, String, bool, bool, bool, Vec<String>, i32);

async fn introspect_postgres(connection: &mut PgConnection) -> Result<LiveDatabase, StoreError> {
    let context = "reading the PostgreSQL schema";
    let mut database = LiveDatabase::default();

    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY 1",
    )
    .fetch_all(&mut *connection)
    .await
    .map_err(StoreError::query(context))?;
    for name in names {
        database.tables.insert(
            name.clone(),
            LiveTable {
                name,
                ..LiveTable::default()
            },
        );
    }

    let columns: Vec<(String, String, String, bool, Option<String>, bool)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), \
                a.attnotnull, pg_get_expr(d.adbin, d.adrelid), \
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary \
                        AND a.attnum = ANY (i.indkey)) \
         FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
           AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY c.relname, a.attnum",
    )
    .fetch_all(&mut *connection)
    .await
    .map_err(StoreError::query(context))?;
    for (table, column, declared_type, not_null, default_sql, primary_key) in columns {
        if let Some(table) = database.tables.get_mut(&table) {
            table.columns.push(LiveColumn {
                storage: storage_of_sql_type(Dialect::Postgres, &declared_type),
                name: column,
                declared_type,
                not_null,
                primary_key,
                default_sql,
            });
        }
    }

    let indexes: Vec<PostgresIndexRow> = sqlx::query_as(
        "SELECT t.relname::text, i.relname::text, ix.indisunique, \
                EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = ix.indexrelid \
                        AND k.conrelid = ix.indrelid AND k.contype IN ('p', 'u', 'x')), \
                ix.indpred IS NOT NULL OR ix.indexprs IS NOT NULL, \
                ARRAY(SELECT a.attname::text \
                      FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, position) \
                      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
                      ORDER BY k.position), \
                ix.indnatts::int4 \
         FROM pg_index ix \
         JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_class i ON i.oid = ix.indexrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = current_schema() \
         ORDER BY 1, 2",
    )
    .fetch_all(&mut *connection)
    .await
    .map_err(StoreError::query(context))?;
    for (table, index, unique, constraint, special, columns, column_count) in indexes {
        if let Some(table) = database.tables.get_mut(&table) {
            // An expression column has attnum 0 and no attribute, so it is missing above.
            let plain_columns = usize::try_from(column_count).is_ok_and(|n| n == columns.len());
            table.indexes.push(LiveIndex {
                droppable: !constraint
                    && !special
                    && plain_columns
                    && crate::naming::is_keel_index_name(&index),
                name: index,
                columns,
                unique,
                sql: None,
            });
        }
    }

    let keys: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT k.conname::text, t.relname::text, a.attname::text, rt.relname::text, \
                k.confdeltype::text \
         FROM pg_constraint k \
         JOIN pg_class t ON t.oid = k.conrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         JOIN pg_class rt ON rt.oid = k.confrelid \
         JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] \
         WHERE k.contype = 'f' AND n.nspname = current_schema() AND cardinality(k.conkey) = 1 \
         ORDER BY 2, 1",
    )
    .fetch_all(&mut *connection)
    .await
    .map_err(StoreError::query(context))?;
    for (constraint, table, column, target_table, on_delete) in keys {
        if let Some(table) = database.tables.get_mut(&table) {
            table.foreign_keys.push(LiveForeignKey {
                name: Some(constraint),
                column,
                target_table,
                on_delete: on_delete_from_postgres(&on_delete),
            });
        }
    }

    let primary_keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.relname::text, k.conname::text FROM pg_constraint k \
         JOIN pg_class t ON t.oid = k.conrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE k.contype = 'p' AND n.nspname = current_schema()",
    )
    .fetch_all(&mut *connection)
    .await
    .map_err(StoreError::query(context))?;
    for (table, constraint) in primary_keys {
        if let Some(table) = database.tables.get_mut(&table) {
            table.primary_key_constraint = Some(constraint);
        }
    }
    Ok(database)
}
