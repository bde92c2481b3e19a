//! Values crossing the boundary between Keel and Rhai.
//!
//! [`ScriptValue`] is what other crates see, so that none of them names `rhai`. Inside the
//! sandbox, dates are `chrono::NaiveDate`, datetimes `chrono::DateTime<Utc>` and spans of time
//! `chrono::TimeDelta` (the result of `days(n)` / `hours(n)`), registered as Rhai types named
//! `date`, `datetime` and `duration` (see [`crate::time`]). Money, decimals and percentages are
//! exact `rust_decimal::Decimal`s; Rhai is built without `f64`, so a literal such as `0.1` is a
//! decimal too and `0.1 + 0.2 == 0.3` holds.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use rhai::Dynamic;
use rust_decimal::Decimal;

/// A value passed into or out of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptValue {
    /// Rhai's `()`: an empty field.
    Unit,
    Text(String),
    Integer(i64),
    Decimal(Decimal),
    Boolean(bool),
    /// A `date` field: a calendar day, printed `YYYY-MM-DD`.
    Date(NaiveDate),
    /// A `datetime` field: an instant, printed as RFC 3339 in UTC.
    Datetime(DateTime<Utc>),
    Array(Vec<ScriptValue>),
    Map(BTreeMap<String, ScriptValue>),
}

/// A record, a filter or the values of a `create`/`update`: field name to value.
pub type ScriptMap = BTreeMap<String, ScriptValue>;

/// Converts a value into Rhai's representation.
pub(crate) fn to_dynamic(value: &ScriptValue) -> Dynamic {
    match value {
        ScriptValue::Unit => Dynamic::UNIT,
        ScriptValue::Text(text) => Dynamic::from(text.clone()),
        ScriptValue::Integer(n) => Dynamic::from(*n),
        ScriptValue::Decimal(d) => Dynamic::from_decimal(*d),
        ScriptValue::Boolean(b) => Dynamic::from(*b),
        ScriptValue::Date(date) => Dynamic::from(*date),
        ScriptValue::Datetime(at) => Dynamic::from(*at),
        ScriptValue::Array(items) => Dynamic::from_array(items.iter().map(to_dynamic).collect()),
        ScriptValue::Map(map) => Dynamic::from_map(to_rhai_map(map)),
    }
}

/// Converts a map of values into a Rhai object map.
pub(crate) fn to_rhai_map(map: &ScriptMap) -> rhai::Map {
    map.iter()
        .map(|(key, item)| (key.as_str().into(), to_dynamic(item)))
        .collect()
}

/// Converts a Rhai value back. Fails, naming the Rhai type, for values a field cannot hold
/// (a function pointer, a duration, a range, …).
pub(crate) fn from_dynamic(value: Dynamic) -> Result<ScriptValue, String> {
    let value = value.flatten();
    if value.is_unit() {
        return Ok(ScriptValue::Unit);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(ScriptValue::Boolean(b));
    }
    if let Ok(n) = value.as_int() {
        return Ok(ScriptValue::Integer(n));
    }
    if let Ok(d) = value.as_decimal() {
        return Ok(ScriptValue::Decimal(d));
    }
    if let Ok(c) = value.as_char() {
        return Ok(ScriptValue::Text(c.to_string()));
    }
    let type_name = value.type_name();
    if value.is_string() {
        return value
            .into_string()
            .map(ScriptValue::Text)
            .map_err(|_| unsupported(type_name));
    }
    if value.is_array() {
        return value
            .into_array()
            .map_err(|_| unsupported(type_name))?
            .into_iter()
            .map(from_dynamic)
            .collect::<Result<_, _>>()
            .map(ScriptValue::Array);
    }
    if value.is_map() {
        let map = value
            .try_cast::<rhai::Map>()
            .ok_or_else(|| unsupported(type_name))?;
        return from_rhai_map(map).map(ScriptValue::Map);
    }
    if value.is::<NaiveDate>() {
        return value
            .try_cast::<NaiveDate>()
            .map(ScriptValue::Date)
            .ok_or_else(|| unsupported(type_name));
    }
    if value.is::<DateTime<Utc>>() {
        return value
            .try_cast::<DateTime<Utc>>()
            .map(ScriptValue::Datetime)
            .ok_or_else(|| unsupported(type_name));
    }
    if value.is::<TimeDelta>() {
        return Err(
            "a duration (days(n), hours(n)) cannot be stored; add it to a date or datetime"
                .to_owned(),
        );
    }
    Err(unsupported(type_name))
}

/// Converts a Rhai object map back, field by field.
pub(crate) fn from_rhai_map(map: rhai::Map) -> Result<ScriptMap, String> {
    let mut out = BTreeMap::new();
    for (key, item) in map {
        let value = from_dynamic(item).map_err(|message| format!("`{key}`: {message}"))?;
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

fn unsupported(type_name: &str) -> String {
    format!("a value of type {type_name} cannot be stored in a field")
}
