//! How instants are written as text in SQLite: fixed-width UTC,
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ`, so that comparing the text compares the time and an index
//! on the column sorts chronologically. PostgreSQL stores `timestamptz` natively and needs
//! none of this.
//!
//! This module does not handle time zones for display or relative dates (`@today`): those
//! belong to the layers that know the app's timezone.

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::error::StoreError;

/// The `strftime`-style format of a datetime stored as SQLite text.
pub const SQLITE_DATETIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// `instant` as stored in a SQLite `DATETIME` column.
pub fn to_sqlite_text(instant: DateTime<Utc>) -> String {
    // The same text as formatting with SQLITE_DATETIME_FORMAT, without parsing the format
    // string on every call (this runs for every datetime of every row written).
    instant.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Reads a SQLite `DATETIME` column written by [`to_sqlite_text`].
pub fn from_sqlite_text(text: &str) -> Result<DateTime<Utc>, StoreError> {
    // The fixed-width form parses as RFC 3339 (a dedicated parser, much faster than a
    // format string); anything else falls back to the format, for its error message.
    if text.len() == 27
        && text.ends_with('Z')
        && let Ok(instant) = DateTime::parse_from_rfc3339(text)
    {
        return Ok(instant.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, SQLITE_DATETIME_FORMAT)
        .map(|naive| naive.and_utc())
        .map_err(|error| StoreError::UnreadableValue {
            what: format!(
                "`{text}` is not a UTC datetime of the form YYYY-MM-DDTHH:MM:SS.ffffffZ ({error})"
            ),
        })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn stored_text_is_fixed_width_and_round_trips() {
        let instant = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let text = to_sqlite_text(instant);
        assert_eq!(text, "2026-01-02T03:04:05.000000Z");
        assert_eq!(from_sqlite_text(&text).unwrap(), instant);
        let precise = instant + chrono::Duration::microseconds(123_456);
        assert_eq!(to_sqlite_text(precise), "2026-01-02T03:04:05.123456Z");
        assert_eq!(from_sqlite_text(&to_sqlite_text(precise)).unwrap(), precise);
    }

    #[test]
    fn text_order_is_time_order() {
        let early = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let later = early + chrono::Duration::microseconds(1);
        assert!(to_sqlite_text(early) < to_sqlite_text(later));
    }

    #[test]
    fn other_text_is_refused_with_the_value() {
        let error = from_sqlite_text("yesterday").unwrap_err();
        assert!(error.to_string().contains("yesterday"));
    }
}
