//! A SQL statement under construction: its text and its bound parameters, with the
//! placeholder syntax of the dialect (`?` on SQLite, `$n` on PostgreSQL).
//!
//! Identifiers enter the text only through [`Statement::push_identifier`] (quoted) and values
//! only through [`Statement::push_value`] (a placeholder plus a [`Param`]). A value becomes a
//! [`Param`] by its column's [`Storage`]: SQLite gets a decimal as the integer scaled by
//! 10^scale, a datetime as fixed-width UTC text, a date as `YYYY-MM-DD`, a boolean as 0/1 and
//! a list as JSON text; PostgreSQL gets each value in its native type. This module runs
//! nothing and knows no table layout beyond the storage it is handed.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use keel_meta::{Storage, Value};
use rust_decimal::Decimal;

use crate::datetime::to_sqlite_text;
use crate::db::Dialect;
use crate::error::StoreError;
use crate::naming::push_quoted;

/// Decimals are stored with at most 18 significant digits on both databases.
const DECIMAL_DIGITS: u32 = 18;

/// One bound parameter, already in the form the dialect stores. `None` is SQL NULL, typed so
/// that PostgreSQL accepts it where a column of that type is expected.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Text(Option<String>),
    Integer(Option<i64>),
    Decimal(Option<Decimal>),
    Boolean(Option<bool>),
    Date(Option<NaiveDate>),
    Datetime(Option<DateTime<Utc>>),
    Json(Option<serde_json::Value>),
}

/// SQL text plus its parameters, for one table (named in errors).
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub(crate) dialect: Dialect,
    pub(crate) table: String,
    pub(crate) sql: String,
    pub(crate) params: Vec<Param>,
    /// Where each placeholder starts in `sql` and how long it is, in the order of `params`:
    /// lets [`Statement::batch`] number the placeholders of several statements as one.
    placeholders: Vec<(usize, usize)>,
}

impl Statement {
    pub(crate) fn new(dialect: Dialect, table: &str) -> Statement {
        Statement {
            dialect,
            table: table.to_owned(),
            sql: String::new(),
            params: Vec::new(),
            placeholders: Vec::new(),
        }
    }

    /// Several statements run as one, in order, in one round trip to the database: on
    /// SQLite joined with `;` (sqlx binds each statement's `?` after the previous one's),
    /// on PostgreSQL every statement but the last as a data-modifying `WITH` step of the
    /// last. Only the last may return rows. The steps of a PostgreSQL `WITH` see the
    /// snapshot the statement started with, not each other's changes, so a batch suits
    /// writes that do not read one another (a record, its audit rows, its keys) followed
    /// by a read that does not need to see them. Step `i` is named `keel_step<i>`: a later
    /// statement may read what it RETURNs. `None` for no statements.
    pub(crate) fn batch(statements: Vec<Statement>) -> Option<Statement> {
        let last = statements.len().checked_sub(1)?;
        let first = statements.first()?;
        let mut batch = Statement::new(first.dialect, &first.table);
        for (position, statement) in statements.into_iter().enumerate() {
            match batch.dialect {
                Dialect::Sqlite if position > 0 => batch.push("; "),
                Dialect::Sqlite => {}
                Dialect::Postgres if position < last => {
                    batch.push(if position == 0 { "WITH " } else { ", " });
                    // Writing to a String cannot fail.
                    let _ = write!(batch.sql, "\"keel_step{position}\" AS (");
                }
                Dialect::Postgres => batch.push(" "),
            }
            batch.append(statement);
            if batch.dialect == Dialect::Postgres && position < last {
                batch.push(")");
            }
        }
        Some(batch)
    }

    /// Appends a copy of `other`'s text and parameters (a subquery used twice), numbering
    /// its placeholders after ours.
    pub(crate) fn append_copy(&mut self, other: &Statement) {
        self.append(other.clone());
    }

    /// Appends `other`'s text and parameters, numbering its placeholders after ours.
    fn append(&mut self, other: Statement) {
        let mut copied = 0;
        for ((start, length), param) in other.placeholders.into_iter().zip(other.params) {
            self.sql.push_str(&other.sql[copied..start]);
            self.push_param(param);
            copied = start + length;
        }
        self.sql.push_str(&other.sql[copied..]);
    }

    /// Appends constant SQL text (keywords, operators, punctuation).
    pub(crate) fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    /// Appends a quoted identifier.
    pub(crate) fn push_identifier(&mut self, name: &str) {
        push_quoted(&mut self.sql, name);
    }

    /// Appends a placeholder bound to `param`.
    pub(crate) fn push_param(&mut self, param: Param) {
        self.params.push(param);
        let start = self.sql.len();
        match self.dialect {
            Dialect::Sqlite => self.sql.push('?'),
            Dialect::Postgres => {
                // Writing to a String cannot fail.
                let _ = write!(self.sql, "${}", self.params.len());
            }
        }
        self.placeholders.push((start, self.sql.len() - start));
    }

    /// Appends a placeholder bound to `value`, as stored in a column of `storage`.
    pub(crate) fn push_value(&mut self, value: &Value, storage: Storage) -> Result<(), StoreError> {
        let param = param(self.dialect, value, storage).map_err(|reason| self.invalid(reason))?;
        self.push_param(param);
        Ok(())
    }

    /// An [`StoreError::InvalidRecordQuery`] about this statement's table.
    pub(crate) fn invalid(&self, reason: impl Into<String>) -> StoreError {
        StoreError::InvalidRecordQuery {
            table: self.table.clone(),
            reason: reason.into(),
        }
    }
}

/// `value` as a parameter for a column of `storage` in `dialect`, or why it cannot be one.
pub(crate) fn param(dialect: Dialect, value: &Value, storage: Storage) -> Result<Param, String> {
    match dialect {
        Dialect::Sqlite => sqlite_param(value, storage),
        Dialect::Postgres => postgres_param(value, storage),
    }
}

fn sqlite_param(value: &Value, storage: Storage) -> Result<Param, String> {
    Ok(match (value, storage) {
        (Value::Null, Storage::Integer | Storage::Decimal { .. } | Storage::Boolean) => {
            Param::Integer(None)
        }
        (Value::Null, _) => Param::Text(None),
        (Value::Text(text), _) => Param::Text(Some(text.clone())),
        (Value::Integer(number), Storage::Decimal { scale }) => {
            Param::Integer(Some(scaled_integer(Decimal::from(*number), scale)?))
        }
        (Value::Integer(number), _) => Param::Integer(Some(*number)),
        (Value::Decimal(number), Storage::Decimal { scale }) => {
            Param::Integer(Some(scaled_integer(*number, scale)?))
        }
        (Value::Decimal(number), Storage::Integer) => {
            Param::Integer(Some(scaled_integer(*number, 0)?))
        }
        (Value::Decimal(number), _) => Param::Text(Some(number.to_string())),
        (Value::Boolean(flag), _) => Param::Integer(Some(i64::from(*flag))),
        (Value::Date(date), _) => Param::Text(Some(date.format("%Y-%m-%d").to_string())),
        (Value::Datetime(instant), _) => Param::Text(Some(to_sqlite_text(*instant))),
        (Value::List(items), _) => Param::Text(Some(list_json(items).to_string())),
    })
}

fn postgres_param(value: &Value, storage: Storage) -> Result<Param, String> {
    Ok(match (value, storage) {
        (Value::Null, Storage::Text) => Param::Text(None),
        (Value::Null, Storage::Integer) => Param::Integer(None),
        (Value::Null, Storage::Decimal { .. }) => Param::Decimal(None),
        (Value::Null, Storage::Boolean) => Param::Boolean(None),
        (Value::Null, Storage::Date) => Param::Date(None),
        (Value::Null, Storage::Datetime) => Param::Datetime(None),
        (Value::Null, Storage::Json) => Param::Json(None),
        (Value::Text(text), _) => Param::Text(Some(text.clone())),
        (Value::Integer(number), Storage::Decimal { scale }) => {
            let number = Decimal::from(*number);
            // Same range check as SQLite, so both databases refuse the same values.
            scaled_integer(number, scale)?;
            Param::Decimal(Some(number))
        }
        (Value::Integer(number), _) => Param::Integer(Some(*number)),
        (Value::Decimal(number), Storage::Decimal { scale }) => {
            scaled_integer(*number, scale)?;
            Param::Decimal(Some(*number))
        }
        (Value::Decimal(number), Storage::Integer) => {
            Param::Integer(Some(scaled_integer(*number, 0)?))
        }
        (Value::Decimal(number), _) => Param::Decimal(Some(*number)),
        (Value::Boolean(flag), _) => Param::Boolean(Some(*flag)),
        (Value::Date(date), _) => Param::Date(Some(*date)),
        (Value::Datetime(instant), _) => Param::Datetime(Some(*instant)),
        (Value::List(items), _) => Param::Json(Some(list_json(items))),
    })
}

/// `number` × 10^`scale` as an integer: how SQLite stores a decimal of that scale. Refuses a
/// number with more decimals than `scale` (it would silently change a comparison) or more
/// than 18 digits.
pub(crate) fn scaled_integer(number: Decimal, scale: u32) -> Result<i64, String> {
    let mut scaled = number;
    scaled.rescale(scale);
    if scaled != number {
        return Err(format!("{number} has more than {scale} decimal places"));
    }
    let mantissa = scaled.mantissa();
    let limit = 10_i128.pow(DECIMAL_DIGITS);
    if scaled.scale() != scale || mantissa.abs() >= limit {
        return Err(format!(
            "{number} does not fit in {DECIMAL_DIGITS} digits with {scale} decimal places"
        ));
    }
    i64::try_from(mantissa).map_err(|_| format!("{number} is out of range"))
}

/// A list of keys as a JSON array.
pub(crate) fn list_json(items: &[String]) -> serde_json::Value {
    serde_json::Value::Array(
        items
            .iter()
            .cloned()
            .map(serde_json::Value::String)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_dialect() {
        let mut sqlite = Statement::new(Dialect::Sqlite, "lead");
        let mut postgres = Statement::new(Dialect::Postgres, "lead");
        for statement in [&mut sqlite, &mut postgres] {
            statement.push("SELECT * FROM ");
            statement.push_identifier("lead");
            statement.push(" WHERE ");
            statement.push_identifier("a");
            statement.push(" = ");
            statement
                .push_value(&Value::Text("x".into()), Storage::Text)
                .unwrap();
            statement.push(" AND ");
            statement.push_identifier("b");
            statement.push(" = ");
            statement
                .push_value(&Value::Integer(1), Storage::Integer)
                .unwrap();
        }
        assert_eq!(
            sqlite.sql,
            "SELECT * FROM \"lead\" WHERE \"a\" = ? AND \"b\" = ?"
        );
        assert_eq!(
            postgres.sql,
            "SELECT * FROM \"lead\" WHERE \"a\" = $1 AND \"b\" = $2"
        );
    }

    #[test]
    fn a_batch_numbers_every_placeholder_once_in_order() {
        let statements = |dialect| {
            ["a", "b", "c"]
                .into_iter()
                .enumerate()
                .map(|(position, table)| {
                    let mut statement = Statement::new(dialect, table);
                    statement.push(&format!("INSERT INTO \"{table}\" VALUES ("));
                    for value in 0..=position {
                        if value > 0 {
                            statement.push(", ");
                        }
                        statement
                            .push_value(&Value::Integer(value as i64), Storage::Integer)
                            .unwrap();
                    }
                    statement.push(")");
                    statement
                })
                .collect::<Vec<_>>()
        };
        let postgres = Statement::batch(statements(Dialect::Postgres)).unwrap();
        assert_eq!(
            postgres.sql,
            "WITH \"keel_step0\" AS (INSERT INTO \"a\" VALUES ($1)), \
             \"keel_step1\" AS (INSERT INTO \"b\" VALUES ($2, $3)) \
             INSERT INTO \"c\" VALUES ($4, $5, $6)"
        );
        let values = [0, 0, 1, 0, 1, 2].map(|value| Param::Integer(Some(value)));
        assert_eq!(postgres.params, values);
        let sqlite = Statement::batch(statements(Dialect::Sqlite)).unwrap();
        assert_eq!(
            sqlite.sql,
            "INSERT INTO \"a\" VALUES (?); INSERT INTO \"b\" VALUES (?, ?); \
             INSERT INTO \"c\" VALUES (?, ?, ?)"
        );
        assert_eq!(sqlite.params, values);
        assert!(Statement::batch(Vec::new()).is_none());
    }

    #[test]
    fn sqlite_decimals_are_scaled_integers_and_refuse_finer_values() {
        let money = Storage::Decimal { scale: 2 };
        let price = Value::Decimal(Decimal::new(199_999, 2));
        assert_eq!(
            param(Dialect::Sqlite, &price, money),
            Ok(Param::Integer(Some(199_999)))
        );
        assert_eq!(
            param(Dialect::Sqlite, &Value::Integer(3), money),
            Ok(Param::Integer(Some(300)))
        );
        // 1.5 at scale 1 is 1.50 at scale 2.
        assert_eq!(
            param(Dialect::Sqlite, &Value::Decimal(Decimal::new(15, 1)), money),
            Ok(Param::Integer(Some(150)))
        );
        let finer = Value::Decimal(Decimal::new(10_005, 3));
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let error = param(dialect, &finer, money).unwrap_err();
            assert!(error.contains("10.005"), "{error}");
        }
        let huge = Value::Decimal(Decimal::new(i64::MAX, 0));
        assert!(param(Dialect::Sqlite, &huge, money).is_err());
        assert!(param(Dialect::Postgres, &huge, money).is_err());
    }

    #[test]
    fn postgres_nulls_carry_their_column_type() {
        assert_eq!(
            param(Dialect::Postgres, &Value::Null, Storage::Datetime),
            Ok(Param::Datetime(None))
        );
        assert_eq!(
            param(
                Dialect::Postgres,
                &Value::Null,
                Storage::Decimal { scale: 2 }
            ),
            Ok(Param::Decimal(None))
        );
        assert_eq!(
            param(Dialect::Sqlite, &Value::Boolean(true), Storage::Boolean),
            Ok(Param::Integer(Some(1)))
        );
    }
}
