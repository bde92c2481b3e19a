//! The database layout a schema asks for: every table, column, index and foreign key, for
//! the system tables and for each object, plus the SQL column type of each [`Storage`] per
//! dialect.
//!
//! This is the "desired" side of a migration; `introspect` reads the "live" side. The layout
//! is pure data computed from metadata: this module runs no SQL and does not compare.

use keel_meta::{OnDelete, Schema, Storage};

use crate::db::Dialect;
use crate::naming::{index_name, unique_index_name};
use crate::processes::STAGE_SUMMARY;
use crate::system_tables::{ColumnDefault, SYSTEM_TABLES};

/// The whole desired layout: system tables first, then one table per object in schema
/// order.
pub fn database_layout(schema: &Schema) -> Vec<TableLayout> {
    let mut tables: Vec<TableLayout> = SYSTEM_TABLES
        .iter()
        .map(|table| {
            let columns: Vec<ColumnLayout> = table
                .columns
                .iter()
                .map(|column| ColumnLayout {
                    name: column.name.to_owned(),
                    storage: column.storage,
                    not_null: column.not_null,
                    primary_key: column.primary_key,
                    unique: column.unique,
                    references: column.references.map(|(table, on_delete)| Reference {
                        table: table.to_owned(),
                        on_delete,
                    }),
                    renamed_from: None,
                    default: column.default,
                    required: None,
                    fill: None,
                })
                .collect();
            let declared = table
                .indexes
                .iter()
                .map(|index| index.iter().map(|name| (*name).to_owned()).collect())
                .collect();
            TableLayout {
                indexes: index_layouts(table.name, &columns, declared),
                name: table.name.to_owned(),
                origin: TableOrigin::System,
                columns,
            }
        })
        .collect();
    for object in schema.objects.values() {
        let columns: Vec<ColumnLayout> = object
            .columns()
            .into_iter()
            .map(|column| {
                let required = object
                    .field(&column.name)
                    .map(|field| field.required && !column.system);
                ColumnLayout {
                    name: column.name,
                    storage: column.storage,
                    not_null: column.not_null,
                    primary_key: column.primary_key,
                    unique: column.unique,
                    references: column.references.map(|key| Reference {
                        table: key.object,
                        on_delete: key.on_delete,
                    }),
                    renamed_from: column.renamed_from,
                    default: None,
                    required,
                    fill: None,
                }
            })
            .collect();
        let mut columns = columns;
        if schema
            .processes
            .values()
            .any(|process| process.object == object.name)
        {
            columns.push(ColumnLayout {
                name: STAGE_SUMMARY.to_owned(),
                storage: Storage::Json,
                not_null: false,
                primary_key: false,
                unique: false,
                references: None,
                renamed_from: None,
                default: None,
                required: None,
                fill: Some(ColumnFill::StageSummary),
            });
        }
        tables.push(TableLayout {
            indexes: index_layouts(&object.name, &columns, object.all_indexes()),
            name: object.name.clone(),
            origin: TableOrigin::Object,
            columns,
        });
    }
    tables
}

/// One table Keel wants.
#[derive(Debug, Clone, PartialEq)]
pub struct TableLayout {
    pub name: String,
    pub origin: TableOrigin,
    pub columns: Vec<ColumnLayout>,
    /// Plain indexes first, then single-column unique indexes.
    pub indexes: Vec<IndexLayout>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableOrigin {
    /// A `keel_` table declared in `system_tables`.
    System,
    /// An object's table.
    Object,
}

/// One column Keel wants.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnLayout {
    pub name: String,
    pub storage: Storage,
    pub not_null: bool,
    pub primary_key: bool,
    pub unique: bool,
    pub references: Option<Reference>,
    pub renamed_from: Option<String>,
    pub default: Option<ColumnDefault>,
    /// For declared fields, whether the field is `required` (enforced on save, checked
    /// against existing rows by the planner); `None` for system columns.
    pub required: Option<bool>,
    /// How existing rows get a value when the column is added to a table that has them;
    /// `None`: they stay NULL (or take `default`).
    pub fill: Option<ColumnFill>,
}

/// Values the migration that adds a column computes for the existing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnFill {
    /// The stage summary of a process object's records, from their stage history
    /// ([`crate::processes::STAGE_SUMMARY`]). Derived data: when no process wants the column
    /// any more, its archive is a safe step.
    StageSummary,
}

/// A foreign key to `table`'s `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub table: String,
    pub on_delete: OnDelete,
}

/// One index Keel wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexLayout {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// Per column: whether it may hold NULL, so PostgreSQL indexes it `NULLS FIRST` to
    /// match Keel's NULL ordering.
    pub nulls_first: Vec<bool>,
}

impl TableLayout {
    pub fn column(&self, name: &str) -> Option<&ColumnLayout> {
        self.columns.iter().find(|column| column.name == name)
    }
}

/// The indexes of one table: `declared` plain indexes (minus any that a single-column unique
/// index already covers), then one unique index per unique column.
fn index_layouts(
    table: &str,
    columns: &[ColumnLayout],
    declared: Vec<Vec<String>>,
) -> Vec<IndexLayout> {
    let unique_columns: Vec<&ColumnLayout> =
        columns.iter().filter(|column| column.unique).collect();
    let mut indexes: Vec<IndexLayout> = declared
        .into_iter()
        .filter(|index_columns| {
            !(index_columns.len() == 1
                && unique_columns
                    .iter()
                    .any(|column| column.name == index_columns[0]))
        })
        .map(|index_columns| IndexLayout {
            name: index_name(table, &index_columns),
            nulls_first: index_columns
                .iter()
                .map(|name| {
                    columns
                        .iter()
                        .find(|column| &column.name == name)
                        .is_some_and(|column| !column.not_null && !column.primary_key)
                })
                .collect(),
            columns: index_columns,
            unique: false,
        })
        .collect();
    indexes.extend(unique_columns.into_iter().map(|column| IndexLayout {
        name: unique_index_name(table, &column.name),
        columns: vec![column.name.clone()],
        unique: true,
        nulls_first: vec![false],
    }));
    indexes
}

/// The SQL column type Keel declares for `storage`.
///
/// SQLite stores a decimal as an INTEGER scaled by 10^scale (exact, sortable and summable);
/// the declared `DECIMAL(18,s)` tells introspection the scale. Dates are `YYYY-MM-DD` text and
/// datetimes fixed-width UTC text (see `datetime`), so text order is time order.
pub fn sql_type(dialect: Dialect, storage: Storage) -> String {
    match (dialect, storage) {
        (Dialect::Sqlite, Storage::Text) => "TEXT".to_owned(),
        (Dialect::Sqlite, Storage::Integer) => "INTEGER".to_owned(),
        (Dialect::Sqlite, Storage::Decimal { scale }) => format!("DECIMAL(18,{scale})"),
        (Dialect::Sqlite, Storage::Boolean) => "BOOLEAN".to_owned(),
        (Dialect::Sqlite, Storage::Date) => "DATE".to_owned(),
        (Dialect::Sqlite, Storage::Datetime) => "DATETIME".to_owned(),
        (Dialect::Sqlite, Storage::Json) => "JSON".to_owned(),
        (Dialect::Postgres, Storage::Text) => "text".to_owned(),
        (Dialect::Postgres, Storage::Integer) => "bigint".to_owned(),
        (Dialect::Postgres, Storage::Decimal { scale }) => format!("numeric(18,{scale})"),
        (Dialect::Postgres, Storage::Boolean) => "boolean".to_owned(),
        (Dialect::Postgres, Storage::Date) => "date".to_owned(),
        (Dialect::Postgres, Storage::Datetime) => "timestamptz".to_owned(),
        (Dialect::Postgres, Storage::Json) => "jsonb".to_owned(),
    }
}

/// Reads a declared column type back into a [`Storage`]: the inverse of [`sql_type`] (for
/// PostgreSQL, of what `format_type()` reports for it). `None` for types Keel never declares.
pub fn storage_of_sql_type(dialect: Dialect, declared: &str) -> Option<Storage> {
    let normalized = declared.trim().to_ascii_lowercase().replace(' ', "");
    let decimal_scale = |prefix: &str| -> Option<u32> {
        let inner = normalized.strip_prefix(prefix)?.strip_suffix(')')?;
        let (precision, scale) = inner.split_once(',')?;
        (precision == "18").then_some(())?;
        scale.parse().ok()
    };
    match dialect {
        Dialect::Sqlite => match normalized.as_str() {
            "text" => Some(Storage::Text),
            "integer" => Some(Storage::Integer),
            "boolean" => Some(Storage::Boolean),
            "date" => Some(Storage::Date),
            "datetime" => Some(Storage::Datetime),
            "json" => Some(Storage::Json),
            _ => decimal_scale("decimal(").map(|scale| Storage::Decimal { scale }),
        },
        Dialect::Postgres => match normalized.as_str() {
            "text" => Some(Storage::Text),
            "bigint" => Some(Storage::Integer),
            "boolean" => Some(Storage::Boolean),
            "date" => Some(Storage::Date),
            "timestampwithtimezone" | "timestamptz" => Some(Storage::Datetime),
            "jsonb" => Some(Storage::Json),
            _ => decimal_scale("numeric(").map(|scale| Storage::Decimal { scale }),
        },
    }
}

/// A constant default as SQL text in `dialect`.
pub fn default_sql(dialect: Dialect, default: ColumnDefault) -> String {
    match (dialect, default) {
        (Dialect::Sqlite, ColumnDefault::Boolean(value)) => i32::from(value).to_string(),
        (Dialect::Postgres, ColumnDefault::Boolean(value)) => value.to_string(),
        (Dialect::Sqlite, ColumnDefault::Json(json)) => string_literal(json),
        (Dialect::Postgres, ColumnDefault::Json(json)) => {
            format!("{}::jsonb", string_literal(json))
        }
    }
}

/// `text` as a SQL string literal.
pub fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// How `on_delete` reads in SQL.
pub fn on_delete_sql(on_delete: OnDelete) -> &'static str {
    match on_delete {
        OnDelete::Restrict => "RESTRICT",
        OnDelete::SetNull => "SET NULL",
        OnDelete::Cascade => "CASCADE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY_STORAGE: [Storage; 9] = [
        Storage::Text,
        Storage::Integer,
        Storage::Decimal { scale: 0 },
        Storage::Decimal { scale: 2 },
        Storage::Decimal { scale: 6 },
        Storage::Boolean,
        Storage::Date,
        Storage::Datetime,
        Storage::Json,
    ];

    #[test]
    fn every_storage_round_trips_through_its_sql_type_on_both_dialects() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            for storage in EVERY_STORAGE {
                let declared = sql_type(dialect, storage);
                assert_eq!(
                    storage_of_sql_type(dialect, &declared),
                    Some(storage),
                    "{dialect:?} {declared}"
                );
            }
        }
    }

    #[test]
    fn postgres_format_type_spellings_are_understood() {
        assert_eq!(
            storage_of_sql_type(Dialect::Postgres, "timestamp with time zone"),
            Some(Storage::Datetime)
        );
        assert_eq!(
            storage_of_sql_type(Dialect::Postgres, "numeric(18,4)"),
            Some(Storage::Decimal { scale: 4 })
        );
        assert_eq!(
            storage_of_sql_type(Dialect::Postgres, "numeric(10,2)"),
            None
        );
        assert_eq!(
            storage_of_sql_type(Dialect::Postgres, "character varying(20)"),
            None
        );
        assert_eq!(storage_of_sql_type(Dialect::Sqlite, "VARCHAR(20)"), None);
        assert_eq!(
            storage_of_sql_type(Dialect::Sqlite, "decimal(18, 3)"),
            Some(Storage::Decimal { scale: 3 })
        );
    }

    #[test]
    fn system_tables_come_first_with_their_unique_and_plain_indexes() {
        let schema = keel_meta::Schema {
            app: serde_json::from_value(serde_json::json!({ "name": "Test" })).unwrap(),
            objects: Default::default(),
            roles: Default::default(),
            pools: Default::default(),
            processes: Default::default(),
            rules: Default::default(),
            scripts: Default::default(),
            fingerprint: String::new(),
            files: Default::default(),
        };
        let layout = database_layout(&schema);
        let users = layout
            .iter()
            .find(|table| table.name == "keel_users")
            .unwrap();
        assert_eq!(users.origin, TableOrigin::System);
        let names: Vec<&str> = users
            .indexes
            .iter()
            .map(|index| index.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "keel_users__manager_id_idx",
                "keel_users__department_id_idx",
                "keel_users_username_key"
            ]
        );
    }
}
