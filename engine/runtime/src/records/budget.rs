//! The 查重 budget: how many duplicate lookups a user may make per minute when a lookup
//! could show them something they cannot read.
//!
//! A duplicate check looks across every record, including ones outside the user's read
//! scope, and matches on values the user may only see masked. One answer reveals little,
//! but thousands can recover a masked phone number digit by digit. So a user who cannot
//! read every record of the object in clear (not an admin, and either without the `all`
//! read scope or with a masked field in one of its duplicate keys and no `unmask`) gets
//! [`LOOKUPS_PER_WINDOW`] lookups per [`WINDOW_SECONDS`]; the next answers "too many" with
//! the seconds until one frees up. Every `GET …/duplicates` counts, and so does every save
//! refused by a `block` key (its 409 is the same oracle). The count is kept per process
//! and per user, with time from the [`Clock`](crate::clock::Clock).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Lookups a budgeted user may make per window.
pub const LOOKUPS_PER_WINDOW: usize = 30;
/// The sliding window, in seconds.
pub const WINDOW_SECONDS: i64 = 60;

/// Users are forgotten once this many are tracked and their windows have passed, so the
/// map cannot grow without bound.
const PRUNE_ABOVE: usize = 10_000;

/// Recent lookups per user id.
#[derive(Debug, Default)]
pub(super) struct LookupBudget {
    spent: Mutex<HashMap<String, VecDeque<DateTime<Utc>>>>,
}

impl LookupBudget {
    /// Spends one lookup of `user` at `now`, or returns how long until one is free.
    pub(super) fn spend(&self, user: &str, now: DateTime<Utc>) -> Result<(), Duration> {
        let window = chrono::Duration::seconds(WINDOW_SECONDS);
        // A poisoned lock only means another request panicked mid-update; the counts are
        // still usable.
        let mut spent = self
            .spent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if spent.len() > PRUNE_ABOVE {
            spent.retain(|_, times| times.back().is_some_and(|last| *last + window > now));
        }
        let times = spent.entry(user.to_owned()).or_default();
        while times.front().is_some_and(|first| *first + window <= now) {
            times.pop_front();
        }
        if times.len() >= LOOKUPS_PER_WINDOW {
            let wait = times
                .front()
                .map_or(window, |first| *first + window - now)
                .num_seconds()
                .max(1);
            return Err(Duration::from_secs(wait.unsigned_abs()));
        }
        times.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn the_thirty_first_lookup_in_a_minute_waits_until_the_first_leaves_the_window() {
        let budget = LookupBudget::default();
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        for second in 0..30 {
            assert!(
                budget
                    .spend("rep", start + chrono::Duration::seconds(second))
                    .is_ok()
            );
        }
        let wait = budget
            .spend("rep", start + chrono::Duration::seconds(30))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(30));
        assert!(budget.spend("someone_else", start).is_ok());
        assert!(
            budget
                .spend("rep", start + chrono::Duration::seconds(60))
                .is_ok()
        );
    }
}
