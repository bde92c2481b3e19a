//! Opaque keyset cursors: the sort values of a page's last record, plus the sort they belong
//! to, as base64url JSON. A cursor is checked against the request's sort, so a cursor from
//! one order cannot be replayed under another.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keel_meta::{Storage, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::coerce::parse_datetime;

/// A decoded cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub values: Vec<Value>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    /// The sort, e.g. `-score,name,id`.
    s: String,
    /// One JSON value per sort column.
    v: Vec<Json>,
}

impl Cursor {
    /// Encodes `values` (one per sort column, id last) for the sort `signature`.
    pub fn encode(signature: &str, values: &[Value]) -> String {
        let wire = Wire {
            s: signature.to_owned(),
            v: values.iter().map(Value::to_json).collect(),
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap_or_default())
    }

    /// Decodes a cursor for the sort `signature` whose columns have `storages`.
    pub fn decode(text: &str, signature: &str, storages: &[Storage]) -> Result<Cursor, String> {
        let bad = || {
            "the `after` cursor is not valid for this request; start again without it".to_owned()
        };
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| bad())?;
        let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if wire.s != signature || wire.v.len() != storages.len() {
            return Err(bad());
        }
        let values = wire
            .v
            .iter()
            .zip(storages)
            .map(|(json, storage)| value_from_json(json, *storage).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Cursor { values })
    }
}

fn value_from_json(json: &Json, storage: Storage) -> Option<Value> {
    if json.is_null() {
        return Some(Value::Null);
    }
    Some(match storage {
        // A NUL could only come from a forged cursor, and PostgreSQL refuses it in a query.
        Storage::Text => Value::Text(
            json.as_str()
                .filter(|text| !text.contains('\0'))?
                .to_owned(),
        ),
        Storage::Integer => Value::Integer(json.as_i64()?),
        Storage::Decimal { .. } => Value::Decimal(json.as_str()?.parse().ok()?),
        Storage::Boolean => Value::Boolean(json.as_bool()?),
        Storage::Date => {
            Value::Date(chrono::NaiveDate::parse_from_str(json.as_str()?, "%Y-%m-%d").ok()?)
        }
        Storage::Datetime => Value::Datetime(parse_datetime(json.as_str()?, chrono_tz::UTC)?),
        Storage::Json => Value::List(
            json.as_array()?
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn a_cursor_round_trips_and_is_bound_to_its_sort() {
        let values = vec![
            Value::Decimal(Decimal::new(1050, 2)),
            Value::Null,
            Value::Text("01a2".into()),
        ];
        let storages = [
            Storage::Decimal { scale: 2 },
            Storage::Integer,
            Storage::Text,
        ];
        let text = Cursor::encode("-amount,score,id", &values);
        assert_eq!(
            Cursor::decode(&text, "-amount,score,id", &storages)
                .unwrap()
                .values,
            values
        );
        assert!(Cursor::decode(&text, "amount,score,id", &storages).is_err());
        assert!(Cursor::decode("garbage!", "-amount,score,id", &storages).is_err());
    }

    #[test]
    fn a_forged_cursor_with_a_nul_character_is_refused() {
        let forged = Cursor::encode("name,id", &[Value::Text("a\0b".into()), Value::Null]);
        assert!(Cursor::decode(&forged, "name,id", &[Storage::Text, Storage::Text]).is_err());
    }
}
