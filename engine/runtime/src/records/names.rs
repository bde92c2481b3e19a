//! The names shown for users in `_refs` (owners, `user` fields) and duplicate matches.
//!
//! Every record read would otherwise cost a second query for its owner's name. Names are not
//! a permission (anyone signed in may see who owns a record they can read), so a process
//! keeps them for [`NAME_TTL`]: a renamed user shows under the old name for at most that
//! long. Ids that are no user's (`system`, which the auto-return sweep and rules write as
//! `updated_by`, or a deleted user's) are kept as such for as long, so a record last changed
//! by the system does not cost that query on every read.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use keel_store::Db;

use crate::cache::TtlCache;
use crate::records::RecordError;

/// How long a looked-up name is reused.
pub const NAME_TTL: TimeDelta = TimeDelta::seconds(10);
/// Past this many names the cache starts afresh.
const CAPACITY: usize = 10_000;

/// User id → name (`None`: no user has that id), as read less than [`NAME_TTL`] ago.
#[derive(Debug)]
pub(crate) struct UserNames {
    names: TtlCache<Option<String>>,
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
                Some(Some(name)) => {
                    found.insert(id.clone(), name);
                }
                Some(None) => {}
                None if !missing.contains(id) => missing.push(id.clone()),
                None => {}
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let read = keel_store::users::display_names(db, &missing).await?;
        for id in missing {
            let name = read.get(&id).cloned();
            self.names.put(id.clone(), name.clone(), now);
            if let Some(name) = name {
                found.insert(id, name);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use keel_testkit::db_test;

    use super::*;

    db_test!(
        ids_that_are_no_users_are_kept_too_and_not_read_again_within_the_ttl,
        |test_db| async move {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("metadata")).unwrap();
            std::fs::write(
                dir.path().join("metadata/app.yaml"),
                "name: Names\nlanguage: en\ntimezone: Asia/Shanghai\n",
            )
            .unwrap();
            std::fs::write(
                dir.path().join("metadata/roles.yaml"),
                "roles:\n  admin: { admin: true }\n",
            )
            .unwrap();
            let schema = keel_meta::load_app(dir.path()).unwrap();
            let db = Db::connect(&test_db.url).await.unwrap();
            keel_store::migrate::apply(&db, &schema, false)
                .await
                .unwrap();
            let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
            let names = UserNames::default();
            let ids = ["system".to_owned()];
            assert!(names.of(&db, now, &ids).await.unwrap().is_empty());
            // With the database gone, only what is kept can answer.
            db.close().await;
            assert!(names.of(&db, now, &ids).await.unwrap().is_empty());
            assert!(names.of(&db, now + NAME_TTL, &ids).await.is_err());
        }
    );
}
