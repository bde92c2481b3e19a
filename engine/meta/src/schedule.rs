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
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .build()
            .parse(text)
            .map_err(|error| format!("cron `{text}` is not valid: {error}"))?;
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
    fn five_field_and_garbage_cron_are_refused() {
        assert!(CronSchedule::parse("*/10 * * * *").is_err());
        assert!(CronSchedule::parse("0 0 25 * * *").is_err());
        assert!(CronSchedule::parse("every day").is_err());
    }
}
