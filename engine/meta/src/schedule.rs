//! Cron schedules (six fields with seconds, optional seventh for the year), parsed exactly as
//! the in-process scheduler (`tokio-cron-scheduler`, through `croner`) will parse them.
//!
//! This module validates and computes occurrences; it does not run anything.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, TimeZone};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Serialize, Serializer};

#[derive(Clone)]
pub struct CronSchedule {
    text: String,
    /// Shared: a parsed cron is a few hundred bytes and schedules are cloned with the schema.
    cron: Arc<Cron>,
}

impl CronSchedule {
    pub fn parse(text: &str) -> Result<CronSchedule, String> {
        let fields = text.split_whitespace().count();
        if !(6..=7).contains(&fields) {
            return Err(format!(
                "cron `{text}` has {fields} field{}; Keel needs 6 (sec min hour day month weekday) or 7 (plus year)",
                if fields == 1 { "" } else { "s" }
            ));
        }
        let cron = parser()
            .parse(text)
            .map_err(|error| explain_error(text, &error))?;
        Ok(CronSchedule {
            text: text.to_owned(),
            cron: Arc::new(cron),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first occurrence strictly after `after`, in `after`'s timezone.
    pub fn next_after<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.cron.find_next_occurrence(after, false).ok()
    }
}

/// Seconds required, and day of month AND day of week both holding when both are
/// restricted — as `tokio-cron-scheduler` builds its parser (classic cron ORs them).
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
}

/// Each field's name and what it accepts, in pattern order.
const FIELDS: [(&str, &str); 7] = [
    ("seconds", "0 to 59"),
    ("minutes", "0 to 59"),
    ("hours", "0 to 23"),
    ("day of month", "1 to 31, L or W"),
    ("month", "1 to 12 or JAN to DEC"),
    (
        "day of week",
        "0 to 7 (0 and 7 are Sunday), SUN to SAT, L or #",
    ),
    ("year", "1 to 5000"),
];

/// Names the field that makes `text` invalid. The parser's own message ("Number out of
/// bounds") does not say which field it read, so each field is parsed alone, with every other
/// field `*`; the first that fails on its own is the culprit.
fn explain_error(text: &str, error: &croner::errors::CronError) -> String {
    let detail = error.to_string();
    let detail = detail
        .strip_prefix("Component error: ")
        .unwrap_or(&detail)
        .trim_end_matches('.')
        .to_lowercase();
    let parts: Vec<&str> = text.split_whitespace().collect();
    for (index, part) in parts.iter().enumerate() {
        let mut alone: Vec<&str> = vec!["*"; parts.len()];
        alone[index] = part;
        if parser().parse(&alone.join(" ")).is_err() {
            let (name, range) = FIELDS[index.min(FIELDS.len() - 1)];
            return format!(
                "cron `{text}`: the {name} field `{part}` is not valid ({detail}); it takes {range}"
            );
        }
    }
    format!("cron `{text}` is not valid: {detail}")
}

impl FromStr for CronSchedule {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        CronSchedule::parse(text)
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSchedule({:?})", self.text)
    }
}

impl Serialize for CronSchedule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn six_field_cron_computes_the_next_occurrence() {
        let schedule = CronSchedule::parse("0 */10 * * * *").unwrap();
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 8, 3, 0).unwrap();
        let next = schedule.next_after(&at).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 1, 1, 8, 10, 0).unwrap());
    }

    #[test]
    fn day_of_month_and_day_of_week_must_both_hold() {
        // Friday the 13th at 09:00: 2026-02-13 and then 2026-03-13 are Fridays.
        let schedule = CronSchedule::parse("0 0 9 13 * FRI").unwrap();
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let next = schedule.next_after(&at).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 2, 13, 9, 0, 0).unwrap());
        let after = schedule.next_after(&next).unwrap();
        assert_eq!(after, Utc.with_ymd_and_hms(2026, 3, 13, 9, 0, 0).unwrap());
    }

    #[test]
    fn an_invalid_field_is_named_with_its_value_and_range() {
        let cases = [
            ("60 0 9 * * *", "the seconds field `60`"),
            ("0 61 9 * * *", "the minutes field `61`"),
            ("0 0 25 * * *", "the hours field `25`"),
            ("0 0 9 32 * *", "the day of month field `32`"),
            ("0 0 9 * 13 *", "the month field `13`"),
            ("0 0 9 * * 8", "the day of week field `8`"),
            ("0 0 9 * * MON-XYZ", "the day of week field `MON-XYZ`"),
            ("0 0 9 * * * 0", "the year field `0`"),
            ("0 0 9-x * * *", "the hours field `9-x`"),
        ];
        for (text, expected) in cases {
            let message = CronSchedule::parse(text).unwrap_err();
            assert!(message.contains(expected), "{text}: {message}");
        }
        let message = CronSchedule::parse("0 0 25 * * *").unwrap_err();
        assert_eq!(
            message,
            "cron `0 0 25 * * *`: the hours field `25` is not valid (number out of bounds); it takes 0 to 23"
        );
    }

    #[test]
    fn five_field_and_garbage_cron_are_refused() {
        assert!(CronSchedule::parse("*/10 * * * *").is_err());
        assert!(CronSchedule::parse("0 0 25 * * *").is_err());
        assert!(CronSchedule::parse("every day").is_err());
    }
}
