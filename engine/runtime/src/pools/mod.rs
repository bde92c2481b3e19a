//! Lead pools (公海): claiming, releasing, assigning and moving records, and the auto-return
//! sweep the scheduler runs. Being built (issue 11): only the sweep's signature is settled
//! here, so the scheduler can call it; until it lands a sweep finds nothing to do.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::records::{RecordError, Records};

/// What one auto-return sweep of one pool did, for the run record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepOutcome {
    /// Held records the sweep looked at that are due to return or to be warned.
    pub matched: u64,
    /// Records returned to the pool.
    pub changed: u64,
    /// Owners warned of a coming return (`warn_before`).
    pub warned: u64,
    /// Records the sweep could not handle.
    pub errors: u64,
}

/// Runs the auto-return of `pool` as of `now`: warns owners whose records will return within
/// `warn_before`, and returns the records that are due.
pub async fn sweep(
    records: &Records,
    pool: &str,
    now: DateTime<Utc>,
) -> Result<SweepOutcome, RecordError> {
    let _ = (records, pool, now);
    Ok(SweepOutcome::default())
}
