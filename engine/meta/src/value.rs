//! Typed field values: what a record holds once its JSON input has been coerced, and what
//! the store binds and reads back.
//!
//! This module defines the values and their JSON form (money as a string such as `"1999.00"`,
//! datetimes as RFC 3339). Coercing *input* (with validation against a field's options) is the
//! runtime's job; binding to SQL is the store's.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::Value as Json;

/// One field value. `Null` is an empty field.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Text(String),
    Integer(i64),
    /// Exact decimal (decimal, money, percent), already at the field's scale.
    Decimal(Decimal),
    Boolean(bool),
    Date(NaiveDate),
    Datetime(DateTime<Utc>),
    /// `multi_choice` keys.
    List(Vec<String>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The JSON form used in API responses.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Text(text) => Json::String(text.clone()),
            Value::Integer(n) => Json::Number((*n).into()),
            Value::Decimal(d) => Json::String(d.to_string()),
            Value::Boolean(b) => Json::Bool(*b),
            Value::Date(date) => Json::String(date.format("%Y-%m-%d").to_string()),
            Value::Datetime(at) => Json::String(format_datetime(at)),
            Value::List(items) => Json::Array(items.iter().cloned().map(Json::String).collect()),
        }
    }

    /// [`Value::to_json`], moving text instead of copying it.
    pub fn into_json(self) -> Json {
        match self {
            Value::Text(text) => Json::String(text),
            Value::List(items) => Json::Array(items.into_iter().map(Json::String).collect()),
            other => other.to_json(),
        }
    }
}

/// RFC 3339 in UTC with microseconds, fixed width: text order is time order.
pub fn format_datetime(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn money_is_a_string_and_datetimes_are_fixed_width_utc() {
        assert_eq!(
            Value::Decimal(Decimal::new(199900, 2)).to_json(),
            Json::String("1999.00".into())
        );
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            Value::Datetime(at).to_json(),
            Json::String("2026-01-02T03:04:05.000000Z".into())
        );
        assert_eq!(
            Value::Date(at.date_naive()).to_json(),
            Json::String("2026-01-02".into())
        );
    }
}
