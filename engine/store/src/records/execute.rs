//! Running a [`Statement`] on a connection of either dialect: binding its parameters and
//! decoding the rows it returns into [`Value`]s by the [`Shape`] of each selected column.
//!
//! SQLite values are read as the store writes them (scaled integers, fixed-width text) with
//! sqlx's unchecked getters, because SQLite's declared types (`DECIMAL(18,2)`, `DATETIME`)
//! mean nothing to sqlx; PostgreSQL values are read in their native types. This module builds
//! no SQL and decides nothing about what a column holds beyond the shape it is told.

use chrono::{DateTime, NaiveDate, Utc};
use keel_meta::{Storage, Value};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive as _;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Arguments as _, AssertSqlSafe, Row as _};

use super::statement::{Param, Statement};
use crate::datetime::from_sqlite_text;
use crate::db::Connection;
use crate::error::StoreError;

/// What a selected column holds, and so how to decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A column value (or a `min`/`max` of one) as the store keeps it.
    Stored(Storage),
    /// A `count(…)`.
    Count,
    /// A `sum(…)` of a column of this storage; an empty sum is zero.
    Sum(Storage),
}

/// Runs `statement` and returns the number of rows it changed. The raw database error is
/// returned so that writers can recognise unique violations.
pub(crate) async fn execute(
    connection: &mut Connection<'_>,
    statement: &Statement,
) -> Result<Result<u64, sqlx::Error>, StoreError> {
    let sql = AssertSqlSafe(statement.sql.clone());
    Ok(match connection {
        Connection::Sqlite(connection) => sqlx::query_with(sql, sqlite_arguments(statement)?)
            .execute(&mut **connection)
            .await
            .map(|done| done.rows_affected()),
        Connection::Postgres(connection) => sqlx::query_with(sql, postgres_arguments(statement)?)
            .execute(&mut **connection)
            .await
            .map(|done| done.rows_affected()),
    })
}

/// Runs `statement` and decodes every row by `shapes` (one per selected column, in order).
pub(crate) async fn fetch(
    connection: &mut Connection<'_>,
    statement: &Statement,
    shapes: &[Shape],
) -> Result<Vec<Vec<Value>>, StoreError> {
    fetch_raw(connection, statement, shapes)
        .await?
        .map_err(StoreError::query(format!("running `{}`", statement.sql)))
}

/// [`fetch`], returning the raw database error so that writers can recognise unique
/// violations.
pub(crate) async fn fetch_raw(
    connection: &mut Connection<'_>,
    statement: &Statement,
    shapes: &[Shape],
) -> Result<Result<Vec<Vec<Value>>, sqlx::Error>, StoreError> {
    let sql = AssertSqlSafe(statement.sql.clone());
    Ok(match connection {
        Connection::Sqlite(connection) => {
            match sqlx::query_with(sql, sqlite_arguments(statement)?)
                .fetch_all(&mut **connection)
                .await
            {
                Ok(rows) => Ok(rows
                    .iter()
                    .map(|row| decode_sqlite_row(row, shapes))
                    .collect::<Result<_, _>>()?),
                Err(error) => Err(error),
            }
        }
        Connection::Postgres(connection) => {
            match sqlx::query_with(sql, postgres_arguments(statement)?)
                .fetch_all(&mut **connection)
                .await
            {
                Ok(rows) => Ok(rows
                    .iter()
                    .map(|row| decode_postgres_row(row, shapes))
                    .collect::<Result<_, _>>()?),
                Err(error) => Err(error),
            }
        }
    })
}

fn sqlite_arguments(statement: &Statement) -> Result<SqliteArguments, StoreError> {
    let mut arguments = SqliteArguments::default();
    for param in &statement.params {
        let added = match param.clone() {
            Param::Text(text) => arguments.add(text),
            Param::Integer(number) => arguments.add(number),
            Param::Boolean(flag) => arguments.add(flag.map(i64::from)),
            // SQLite parameters are always made as text or integers (see `statement`); these
            // arms keep the binding total.
            Param::Decimal(number) => arguments.add(number.map(|number| number.to_string())),
            Param::Date(date) => {
                arguments.add(date.map(|date| date.format("%Y-%m-%d").to_string()))
            }
            Param::Datetime(instant) => arguments.add(instant.map(crate::datetime::to_sqlite_text)),
            Param::Json(document) => arguments.add(document.map(|document| document.to_string())),
        };
        added.map_err(|error| statement.invalid(format!("cannot bind a parameter: {error}")))?;
    }
    Ok(arguments)
}

fn postgres_arguments(statement: &Statement) -> Result<PgArguments, StoreError> {
    let mut arguments = PgArguments::default();
    for param in &statement.params {
        let added = match param.clone() {
            Param::Text(text) => arguments.add(text),
            Param::Integer(number) => arguments.add(number),
            Param::Decimal(number) => arguments.add(number),
            Param::Boolean(flag) => arguments.add(flag),
            Param::Date(date) => arguments.add(date),
            Param::Datetime(instant) => arguments.add(instant),
            Param::Json(document) => arguments.add(document.map(sqlx::types::Json)),
        };
        added.map_err(|error| statement.invalid(format!("cannot bind a parameter: {error}")))?;
    }
    Ok(arguments)
}

fn decode_sqlite_row(row: &SqliteRow, shapes: &[Shape]) -> Result<Vec<Value>, StoreError> {
    shapes
        .iter()
        .enumerate()
        .map(|(index, shape)| decode_sqlite(row, index, *shape))
        .collect()
}

fn decode_sqlite(row: &SqliteRow, index: usize, shape: Shape) -> Result<Value, StoreError> {
    let unreadable = |error: sqlx::Error| StoreError::UnreadableValue {
        what: format!("column {index} of a SQLite row ({error})"),
    };
    let integer = || -> Result<Option<i64>, StoreError> {
        row.try_get_unchecked::<Option<i64>, _>(index)
            .map_err(unreadable)
    };
    let text = || -> Result<Option<String>, StoreError> {
        row.try_get_unchecked::<Option<String>, _>(index)
            .map_err(unreadable)
    };
    Ok(match shape {
        Shape::Count => Value::Integer(integer()?.unwrap_or(0)),
        Shape::Sum(Storage::Decimal { scale }) => {
            Value::Decimal(Decimal::new(integer()?.unwrap_or(0), scale))
        }
        Shape::Sum(_) => Value::Integer(integer()?.unwrap_or(0)),
        Shape::Stored(storage) => match storage {
            Storage::Text => text()?.map_or(Value::Null, Value::Text),
            Storage::Integer => integer()?.map_or(Value::Null, Value::Integer),
            Storage::Decimal { scale } => integer()?.map_or(Value::Null, |scaled| {
                Value::Decimal(Decimal::new(scaled, scale))
            }),
            Storage::Boolean => integer()?.map_or(Value::Null, |flag| Value::Boolean(flag != 0)),
            Storage::Date => match text()? {
                None => Value::Null,
                Some(text) => Value::Date(parse_date(&text)?),
            },
            Storage::Datetime => match text()? {
                None => Value::Null,
                Some(text) => Value::Datetime(from_sqlite_text(&text)?),
            },
            Storage::Json => match text()? {
                None => Value::Null,
                Some(text) => {
                    let document = serde_json::from_str(&text).map_err(|error| {
                        StoreError::UnreadableValue {
                            what: format!("`{text}` is not JSON ({error})"),
                        }
                    })?;
                    list_of(document)?
                }
            },
        },
    })
}

fn decode_postgres_row(row: &PgRow, shapes: &[Shape]) -> Result<Vec<Value>, StoreError> {
    shapes
        .iter()
        .enumerate()
        .map(|(index, shape)| decode_postgres(row, index, *shape))
        .collect()
}

fn decode_postgres(row: &PgRow, index: usize, shape: Shape) -> Result<Value, StoreError> {
    let unreadable = |error: sqlx::Error| StoreError::UnreadableValue {
        what: format!("column {index} of a PostgreSQL row ({error})"),
    };
    let decimal = || -> Result<Option<Decimal>, StoreError> {
        row.try_get::<Option<Decimal>, _>(index).map_err(unreadable)
    };
    Ok(match shape {
        Shape::Count => Value::Integer(
            row.try_get::<Option<i64>, _>(index)
                .map_err(unreadable)?
                .unwrap_or(0),
        ),
        Shape::Sum(Storage::Decimal { scale }) => {
            Value::Decimal(at_scale(decimal()?.unwrap_or_default(), scale))
        }
        Shape::Sum(_) => {
            let sum = decimal()?.unwrap_or_default();
            Value::Integer(sum.to_i64().ok_or_else(|| StoreError::UnreadableValue {
                what: format!("the sum {sum} does not fit in a 64-bit integer"),
            })?)
        }
        Shape::Stored(storage) => match storage {
            Storage::Text => row
                .try_get::<Option<String>, _>(index)
                .map_err(unreadable)?
                .map_or(Value::Null, Value::Text),
            Storage::Integer => row
                .try_get::<Option<i64>, _>(index)
                .map_err(unreadable)?
                .map_or(Value::Null, Value::Integer),
            Storage::Decimal { scale } => decimal()?.map_or(Value::Null, |number| {
                Value::Decimal(at_scale(number, scale))
            }),
            Storage::Boolean => row
                .try_get::<Option<bool>, _>(index)
                .map_err(unreadable)?
                .map_or(Value::Null, Value::Boolean),
            Storage::Date => row
                .try_get::<Option<NaiveDate>, _>(index)
                .map_err(unreadable)?
                .map_or(Value::Null, Value::Date),
            Storage::Datetime => row
                .try_get::<Option<DateTime<Utc>>, _>(index)
                .map_err(unreadable)?
                .map_or(Value::Null, Value::Datetime),
            Storage::Json => match row
                .try_get::<Option<sqlx::types::Json<serde_json::Value>>, _>(index)
                .map_err(unreadable)?
            {
                None => Value::Null,
                Some(sqlx::types::Json(document)) => list_of(document)?,
            },
        },
    })
}

/// `number` written with exactly `scale` decimals, as SQLite's scaled integers read back.
fn at_scale(mut number: Decimal, scale: u32) -> Decimal {
    number.rescale(scale);
    number
}

fn parse_date(text: &str) -> Result<NaiveDate, StoreError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|error| StoreError::UnreadableValue {
        what: format!("`{text}` is not a date of the form YYYY-MM-DD ({error})"),
    })
}

/// A stored JSON array of strings (a `multi_choice` value) as a list.
fn list_of(document: serde_json::Value) -> Result<Value, StoreError> {
    let unreadable = |document: &serde_json::Value| StoreError::UnreadableValue {
        what: format!("`{document}` is not a JSON array of strings"),
    };
    let serde_json::Value::Array(items) = &document else {
        return Err(unreadable(&document));
    };
    items
        .iter()
        .map(|item| item.as_str().map(str::to_owned))
        .collect::<Option<Vec<String>>>()
        .map(Value::List)
        .ok_or_else(|| unreadable(&document))
}
