//! The names shown for users in `_refs` (owners, `user` fields) and duplicate matches.
//!
//! Every record read would otherwise cost a second query for its owner's name. Names are not
//! a permission (anyone signed in may see who owns a record they can read), so a process
//! keeps them for [`NAME_TTL`]: a renamed user shows under the old name for at most that
//! long.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use keel_store::Db;

use crate::records::RecordError;

/// How long a looked-up name is reused.
pub const NAME_TTL: TimeDelta = TimeDelta::seconds(10);
/// Past this many names the cache starts afresh.
const CAPACITY: usize = 10_000;

/// User id → (name, when it was read).
#[derive(Debug, Default)]
pub(crate) struct UserNames {
    names: Mutex<HashMap<String, (String, DateTime<Utc>)>>,
}

impl UserNames {
    /// The names of those of `ids` that are users, reading only the ones not seen within
    /// [`NAME_TTL`] (in one query).
    pub(crate) async fn of(
        &self,
        db: &Db,
        now: DateTime<Utc>,
        ids: impl IntoIterator<Item = &String>,
    ) -> Result<HashMap<String, String>, RecordError> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.lock();
            for id in ids {
                match cache.get(id) {
                    Some((name, at)) if now >= *at && now - *at < NAME_TTL => {
                        found.insert(id.clone(), name.clone());
                    }
                    _ if !missing.contains(id) => missing.push(id.clone()),
                    _ => {}
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let read = keel_store::users::display_names(db, &missing).await?;
        let mut cache = self.lock();
        if cache.len() + read.len() > CAPACITY {
            cache.clear();
        }
        for (id, name) in read {
            cache.insert(id.clone(), (name.clone(), now));
            found.insert(id, name);
        }
        Ok(found)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (String, DateTime<Utc>)>> {
        // A cache only: a panic elsewhere cannot make it wrong, at worst stale.
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
