//! The names shown for users in `_refs` (owners, `user` fields) and duplicate matches.
//!
//! Every record read would otherwise cost a second query for its owner's name. Names are not
//! a permission (anyone signed in may see who owns a record they can read), so a process
//! keeps them for [`NAME_TTL`]: a renamed user shows under the old name for at most that
//! long.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use keel_store::Db;

use crate::cache::TtlCache;
use crate::records::RecordError;

/// How long a looked-up name is reused.
pub const NAME_TTL: TimeDelta = TimeDelta::seconds(10);
/// Past this many names the cache starts afresh.
const CAPACITY: usize = 10_000;

/// User id → name, as read less than [`NAME_TTL`] ago.
#[derive(Debug)]
pub(crate) struct UserNames {
    names: TtlCache<String>,
}

impl Default for UserNames {
    fn default() -> UserNames {
        UserNames {
            names: TtlCache::new(NAME_TTL, CAPACITY),
        }
    }
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
        for id in ids {
            match self.names.get(id, now, |_| true) {
                Some(name) => {
                    found.insert(id.clone(), name);
                }
                None if !missing.contains(id) => missing.push(id.clone()),
                None => {}
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        for (id, name) in keel_store::users::display_names(db, &missing).await? {
            self.names.put(id.clone(), name.clone(), now);
            found.insert(id, name);
        }
        Ok(found)
    }
}
