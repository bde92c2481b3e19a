//! Builders for the DDL statements a migration runs, per dialect.
//!
//! Every identifier is quoted and comes from validated metadata or from the database's own
//! catalog; no statement here carries a value (defaults are constants from
//! `system_tables`). This module decides nothing about *what* to change.

use keel_meta::Storage;

use crate::db::Dialect;
use crate::layout::{Reference, default_sql, on_delete_sql, sql_type};
use crate::naming::{foreign_key_name, quote};
use crate::system_tables::ColumnDefault;

/// Everything needed to declare one column.
#[derive(Debug, Clone)]
pub struct ColumnDefinition<'a> {
    pub name: &'a str,
    /// The SQL type, as from [`sql_type`] or as introspected.
    pub sql_type: String,
    pub not_null: bool,
    pub primary_key: bool,
    /// SQL text of a constant default.
    pub default: Option<String>,
    /// A foreign key declared with the column, and the table it belongs to (which names the
    /// constraint on PostgreSQL).
    pub reference: Option<(&'a str, &'a Reference)>,
}

impl<'a> ColumnDefinition<'a> {
    pub fn new(dialect: Dialect, name: &'a str, storage: Storage) -> ColumnDefinition<'a> {
        ColumnDefinition {
            name,
            sql_type: sql_type(dialect, storage),
            not_null: false,
            primary_key: false,
            default: None,
            reference: None,
        }
    }

    pub fn with_default(mut self, dialect: Dialect, default: Option<ColumnDefault>) -> Self {
        self.default = default.map(|default| default_sql(dialect, default));
        self
    }

    /// The column as it appears in `CREATE TABLE` or `ADD COLUMN`.
    pub fn render(&self, dialect: Dialect) -> String {
        let mut sql = format!("{} {}", quote(self.name), self.sql_type);
        if self.not_null {
            sql.push_str(" NOT NULL");
        }
        if self.primary_key {
            sql.push_str(" PRIMARY KEY");
        }
        if let Some(default) = &self.default {
            sql.push_str(" DEFAULT ");
            sql.push_str(default);
        }
        if let Some((table, reference)) = self.reference {
            if dialect == Dialect::Postgres {
                sql.push_str(&format!(
                    " CONSTRAINT {}",
                    quote(&foreign_key_name(table, self.name))
                ));
            }
            sql.push_str(&references_clause(reference));
        }
        sql
    }
}

/// ` REFERENCES "target" ("id") ON DELETE …`
fn references_clause(reference: &Reference) -> String {
    format!(
        " REFERENCES {} (\"id\") ON DELETE {}",
        quote(&reference.table),
        on_delete_sql(reference.on_delete)
    )
}

pub fn create_table(dialect: Dialect, table: &str, columns: &[ColumnDefinition<'_>]) -> String {
    let body: Vec<String> = columns
        .iter()
        .map(|column| format!("  {}", column.render(dialect)))
        .collect();
    format!("CREATE TABLE {} (\n{}\n)", quote(table), body.join(",\n"))
}

/// `CREATE [UNIQUE] INDEX`. On PostgreSQL a column marked `nulls_first` is indexed `NULLS
/// FIRST`, so one index serves Keel's orders both ways (NULL is the smallest value in both
/// dialects: first ascending, last descending, as SQLite does natively).
pub fn create_index(
    dialect: Dialect,
    table: &str,
    name: &str,
    columns: &[String],
    unique: bool,
    nulls_first: &[bool],
) -> String {
    let columns: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(position, column)| {
            let nulls = dialect == Dialect::Postgres && nulls_first.get(position) == Some(&true);
            if nulls {
                format!("{} NULLS FIRST", quote(column))
            } else {
                quote(column)
            }
        })
        .collect();
    format!(
        "CREATE {}INDEX {} ON {} ({})",
        if unique { "UNIQUE " } else { "" },
        quote(name),
        quote(table),
        columns.join(", ")
    )
}

pub fn drop_index(name: &str) -> String {
    format!("DROP INDEX {}", quote(name))
}

pub fn add_column(dialect: Dialect, table: &str, column: &ColumnDefinition<'_>) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN {}",
        quote(table),
        column.render(dialect)
    )
}

pub fn rename_column(table: &str, old: &str, new: &str) -> String {
    format!(
        "ALTER TABLE {} RENAME COLUMN {} TO {}",
        quote(table),
        quote(old),
        quote(new)
    )
}

pub fn rename_table(old: &str, new: &str) -> String {
    format!("ALTER TABLE {} RENAME TO {}", quote(old), quote(new))
}

/// PostgreSQL only: renames a constraint (and so the index behind a primary key).
pub fn rename_constraint(table: &str, old: &str, new: &str) -> String {
    format!(
        "ALTER TABLE {} RENAME CONSTRAINT {} TO {}",
        quote(table),
        quote(old),
        quote(new)
    )
}

/// PostgreSQL only. `not_valid` leaves existing rows unchecked (they keep their values) while
/// every new or changed row is checked.
pub fn add_foreign_key(
    table: &str,
    column: &str,
    reference: &Reference,
    not_valid: bool,
) -> String {
    format!(
        "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}){}{}",
        quote(table),
        quote(&foreign_key_name(table, column)),
        quote(column),
        references_clause(reference),
        if not_valid { " NOT VALID" } else { "" }
    )
}

/// PostgreSQL only.
pub fn drop_constraint(table: &str, name: &str) -> String {
    format!(
        "ALTER TABLE {} DROP CONSTRAINT {}",
        quote(table),
        quote(name)
    )
}

/// PostgreSQL only.
pub fn drop_not_null(table: &str, column: &str) -> String {
    format!(
        "ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL",
        quote(table),
        quote(column)
    )
}

/// PostgreSQL only: changes a column's type in place, converting with `using`.
pub fn alter_column_type(table: &str, column: &str, sql_type: &str, using: &str) -> String {
    format!(
        "ALTER TABLE {} ALTER COLUMN {} TYPE {sql_type} USING {using}",
        quote(table),
        quote(column)
    )
}

pub fn fill_column(table: &str, column: &str, value: &str) -> String {
    format!("UPDATE {} SET {} = {value}", quote(table), quote(column))
}

/// A readable name for a storage type, as used in plan descriptions.
pub fn storage_name(storage: Storage) -> String {
    match storage {
        Storage::Text => "text".to_owned(),
        Storage::Integer => "integer".to_owned(),
        Storage::Decimal { scale } => format!("decimal({scale})"),
        Storage::Boolean => "boolean".to_owned(),
        Storage::Date => "date".to_owned(),
        Storage::Datetime => "datetime".to_owned(),
        Storage::Json => "json".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use keel_meta::OnDelete;

    use super::*;

    #[test]
    fn lookups_are_declared_inline_with_a_named_constraint_on_postgres() {
        let reference = Reference {
            table: "account".to_owned(),
            on_delete: OnDelete::SetNull,
        };
        let mut column = ColumnDefinition::new(Dialect::Postgres, "account", Storage::Text);
        column.reference = Some(("lead", &reference));
        assert_eq!(
            column.render(Dialect::Postgres),
            "\"account\" text CONSTRAINT \"lead_account_fkey\" REFERENCES \"account\" (\"id\") ON DELETE SET NULL"
        );
        let mut column = ColumnDefinition::new(Dialect::Sqlite, "account", Storage::Text);
        column.reference = Some(("lead", &reference));
        assert_eq!(
            column.render(Dialect::Sqlite),
            "\"account\" TEXT REFERENCES \"account\" (\"id\") ON DELETE SET NULL"
        );
    }

    #[test]
    fn indexes_quote_every_name() {
        assert_eq!(
            create_index(
                Dialect::Sqlite,
                "lead",
                "lead_phone_key",
                &["phone".to_owned()],
                true,
                &[true]
            ),
            "CREATE UNIQUE INDEX \"lead_phone_key\" ON \"lead\" (\"phone\")"
        );
        assert_eq!(
            create_index(
                Dialect::Postgres,
                "lead",
                "lead_status_score_id_idx",
                &["status".to_owned(), "score".to_owned(), "id".to_owned()],
                false,
                &[true, true, false]
            ),
            "CREATE INDEX \"lead_status_score_id_idx\" ON \"lead\" \
             (\"status\" NULLS FIRST, \"score\" NULLS FIRST, \"id\")"
        );
    }
}
