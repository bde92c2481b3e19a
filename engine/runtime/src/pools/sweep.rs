//! The auto-return sweep of one pool (docs/pools.md, "Auto-return"): the scheduler runs it
//! on the pool's `auto_return.schedule` as the job `pool:<pool>`.
//!
//! Set-based, in chunks of [`CHUNK`] records along the primary key. Each chunk is found
//! first by a plain read, outside any transaction: searching a large table is the slow part,
//! and on SQLite a write transaction holds the one write lock that every other save and claim
//! waits for. Then one transaction per chunk selects those records again by id (locked on
//! PostgreSQL) where they are still due, makes one UPDATE of all of them (owner cleared,
//! `returned_at` set, version + 1), writes their pool history and audit rows and the
//! notifications to their previous owners, and commits. A record that stopped being due in
//! between is left alone; one that became due is found by the next sweep. Warnings go the
//! same way: a `warn` history row written with the notification marks the holding as warned,
//! so each owner is warned once per holding. A chunk that did not commit changed nothing, and
//! one that did no longer matches, so running a sweep again after a crash neither returns nor
//! notifies twice.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use keel_meta::{Object, Pool, Value};
use keel_store::pools::PoolEvent;
use keel_store::records::{Condition, RecordWrite, SelectQuery, Sort};
use serde::Serialize;

use super::timing::{any_rule_holds, held, not_exempt};
use super::{Message, audit_rows, id_of, instant, notification, owner_of, seconds};
use crate::actor::Actor;
use crate::records::access::Masking;
use crate::records::{RecordError, Records};

/// Records per chunk (per transaction).
pub const CHUNK: u32 = 1_000;

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

impl std::ops::AddAssign for SweepOutcome {
    fn add_assign(&mut self, other: SweepOutcome) {
        self.matched += other.matched;
        self.changed += other.changed;
        self.warned += other.warned;
        self.errors += other.errors;
    }
}

/// Runs the auto-return of `pool` as of `now`: warns owners whose records will return within
/// `warn_before`, and returns the records that are due. A pool without `auto_return` (or
/// an unknown pool) has nothing to do.
pub async fn sweep(
    records: &Records,
    pool: &str,
    now: DateTime<Utc>,
) -> Result<SweepOutcome, RecordError> {
    let schema = records.schema().clone();
    let mut outcome = SweepOutcome::default();
    let Some(pool) = schema.pools.get(pool) else {
        return Ok(outcome);
    };
    let Some(auto) = &pool.auto_return else {
        return Ok(outcome);
    };
    let Some(object) = schema.object(&pool.object) else {
        return Err(RecordError::UnknownObject(pool.object.clone()));
    };
    let sweep = Sweep {
        records,
        pool,
        object,
        now,
    };
    let due = Condition::All(vec![
        held(pool),
        not_exempt(records, object, auto)?,
        any_rule_holds(records, object, auto, now)?,
    ]);
    // The owners to notify are read as the chunks meet them, each once per sweep.
    let mut prepared = Prepared::default();
    // Returns first: a record due now is returned, not warned.
    sweep
        .in_chunks(&due, Pass::Return, &mut prepared, &mut outcome)
        .await?;
    if !auto.warn_before.is_zero() {
        let warn = Condition::All(vec![
            held(pool),
            not_exempt(records, object, auto)?,
            any_rule_holds(
                records,
                object,
                auto,
                now + seconds(auto.warn_before.as_secs()),
            )?,
            Condition::Not(Box::new(any_rule_holds(records, object, auto, now)?)),
        ]);
        sweep
            .in_chunks(&warn, Pass::Warn, &mut prepared, &mut outcome)
            .await?;
    }
    Ok(outcome)
}

/// What a pass over the chunks does to each record it finds.
#[derive(Clone, Copy)]
enum Pass {
    Return,
    Warn,
}

/// One sweep of one pool, as of `now`.
struct Sweep<'a> {
    records: &'a Records,
    pool: &'a Pool,
    object: &'a Object,
    now: DateTime<Utc>,
}

impl Sweep<'_> {
    /// Runs `pass` over the records matching `condition`, a chunk at a time along the
    /// primary key, each chunk found by a plain read before its transaction begins.
    async fn in_chunks(
        &self,
        condition: &Condition,
        pass: Pass,
        prepared: &mut Prepared,
        outcome: &mut SweepOutcome,
    ) -> Result<(), RecordError> {
        let mut after: Option<String> = None;
        loop {
            let ids = self.next_ids(condition, after.as_deref()).await?;
            let Some(last) = ids.last().cloned() else {
                return Ok(());
            };
            *outcome += match pass {
                Pass::Return => self.return_chunk(condition, &ids, prepared).await?,
                Pass::Warn => self.warn_chunk(condition, &ids).await?,
            };
            after = Some(last);
        }
    }

    /// The ids of the next [`CHUNK`] records matching `condition` after `after` (by id), read
    /// outside any transaction.
    async fn next_ids(
        &self,
        condition: &Condition,
        after: Option<&str>,
    ) -> Result<Vec<String>, RecordError> {
        let mut query = SelectQuery::new(self.object);
        query.condition = condition.clone();
        query.sort = vec![Sort {
            column: "id".to_owned(),
            descending: false,
        }];
        query.after = after.map(|id| vec![Value::Text(id.to_owned())]);
        query.limit = Some(CHUNK);
        query.columns = Some(vec!["id".to_owned()]);
        let rows = keel_store::records::select(self.records.db(), &query).await?;
        Ok(rows.iter().filter_map(id_of).collect())
    }

    /// The records of `ids` that still match `condition`, with only what a return or a
    /// warning reads (its audit rows, history, message): a chunk of a wide object then costs
    /// a fraction of the whole rows.
    fn chunk_query(&self, condition: &Condition, ids: &[String]) -> SelectQuery<'_> {
        let mut query = SelectQuery::new(self.object);
        query.condition = Condition::All(vec![
            Condition::In {
                column: "id".to_owned(),
                values: ids.iter().map(|id| Value::Text(id.clone())).collect(),
            },
            condition.clone(),
        ]);
        query.sort = vec![Sort {
            column: "id".to_owned(),
            descending: false,
        }];
        let mut columns: Vec<String> = ["id", "owner", "claimed_at", "returned_at", "created_at"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        if !columns.contains(&self.object.title) {
            columns.push(self.object.title.clone());
        }
        query.columns = Some(columns);
        query
    }

    /// Begins a chunk's transaction and selects the records of `query`, locked; `None` when
    /// none of them matches any more.
    async fn lock(
        &self,
        query: &SelectQuery<'_>,
    ) -> Result<Option<(RecordWrite, Vec<keel_store::records::Row>)>, RecordError> {
        let mut write = self.records.db().begin_records_write().await?;
        let rows = write.select_for_update(query).await?;
        Ok((!rows.is_empty()).then_some((write, rows)))
    }

    /// Returns the records of `ids` that are still `due`, in one transaction.
    async fn return_chunk(
        &self,
        due: &Condition,
        ids: &[String],
        prepared: &mut Prepared,
    ) -> Result<SweepOutcome, RecordError> {
        let Sweep {
            records,
            pool,
            object,
            now,
        } = *self;
        let query = self.chunk_query(due, ids);
        let Some((mut write, rows)) = self.lock(&query).await? else {
            return Ok(SweepOutcome::default());
        };
        if pool.notify_on_return {
            prepared.read_owners(records, &mut write, &rows).await?;
        }
        let ids: Vec<String> = rows.iter().filter_map(id_of).collect();
        let mut changes = keel_store::records::Row::new();
        changes.insert("owner".to_owned(), Value::Null);
        changes.insert("returned_at".to_owned(), Value::Datetime(now));
        changes.insert("updated_at".to_owned(), Value::Datetime(now));
        changes.insert("updated_by".to_owned(), Value::Text("system".to_owned()));
        // The rows are locked (or the write lock held): they still match `due`.
        let changed = write.update_ids(object, &ids, due, &changes).await?;
        let mut events = Vec::with_capacity(rows.len());
        let mut audit = Vec::with_capacity(rows.len() * 2);
        for row in &rows {
            events.push(PoolEvent {
                id: uuid::Uuid::now_v7().to_string(),
                object: object.name.clone(),
                record_id: id_of(row).unwrap_or_default(),
                pool: pool.name.clone(),
                action: "return".to_owned(),
                actor: "system".to_owned(),
                from_user: owner_of(row),
                to_user: None,
                reason: Some("auto_return".to_owned()),
                note: None,
                at: now,
            });
            audit.extend(audit_rows(object, row, &changes, None, now));
        }
        write.insert_audit_and_pool_history(&audit, &events).await?;
        let mut notified = 0;
        if pool.notify_on_return {
            let mut notifications = Vec::new();
            for row in &rows {
                if let Some(owner) = owner_of(row).map(|owner| prepared.owner(&owner)) {
                    let masking = Masking::new(records.schema(), &owner, object);
                    notifications.push(notification(
                        records,
                        &owner,
                        object,
                        row,
                        &masking,
                        None,
                        Message::Returned(pool),
                        now,
                    ));
                }
            }
            notified = notifications.len();
            records
                .write_notifications(&mut write, &Actor::system(), now, &notifications, None)
                .await?;
        }
        write.commit().await?;
        if notified > 0 {
            records.signals().notifications.notify_one();
            records.signals().outbox.notify_one();
        }
        Ok(SweepOutcome {
            matched: rows.len() as u64,
            changed,
            ..SweepOutcome::default()
        })
    }

    /// Warns the owners of the records of `ids` still about to return (`warn`), in one
    /// transaction. A record whose owner was warned in this holding (a `warn` row at or after
    /// its claim) is skipped.
    async fn warn_chunk(
        &self,
        warn: &Condition,
        ids: &[String],
    ) -> Result<SweepOutcome, RecordError> {
        let Sweep {
            records,
            pool,
            object,
            now,
        } = *self;
        let query = self.chunk_query(warn, ids);
        let prepared = Prepared::read(records, pool, object, &query).await?;
        let Some((mut write, rows)) = self.lock(&query).await? else {
            return Ok(SweepOutcome::default());
        };
        let ids: Vec<String> = rows.iter().filter_map(id_of).collect();
        let warned: HashMap<String, DateTime<Utc>> = write
            .last_warnings(&object.name, &ids)
            .await?
            .into_iter()
            .collect();
        let timezone = records.timezone();
        let auto = pool.auto_return.as_ref();
        let mut events = Vec::new();
        let mut notifications = Vec::new();
        for row in &rows {
            let (Some(id), Some(owner)) = (id_of(row), owner_of(row)) else {
                continue;
            };
            let holding_since = instant(row, "claimed_at", timezone)
                .or_else(|| instant(row, "created_at", timezone));
            if let (Some(at), Some(since)) = (warned.get(&id), holding_since)
                && *at >= since
            {
                continue;
            }
            events.push(PoolEvent {
                id: uuid::Uuid::now_v7().to_string(),
                object: object.name.clone(),
                record_id: id.clone(),
                pool: pool.name.clone(),
                action: "warn".to_owned(),
                actor: "system".to_owned(),
                from_user: Some(owner.clone()),
                to_user: Some(owner.clone()),
                reason: None,
                note: None,
                at: now,
            });
            let return_at = prepared
                .timings
                .get(&id)
                .cloned()
                .flatten()
                .and_then(|timing| timing.return_at)
                .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
                .map_or_else(
                    || now + seconds(auto.map_or(0, |auto| auto.warn_before.as_secs())),
                    |at| at.with_timezone(&Utc),
                );
            {
                let actor = prepared.owner(&owner);
                let masking = Masking::new(records.schema(), &actor, object);
                notifications.push(notification(
                    records,
                    &actor,
                    object,
                    row,
                    &masking,
                    Some(&owner),
                    Message::Warned(pool, return_at),
                    now,
                ));
            }
        }
        let warned_now = events.len() as u64;
        write.insert_pool_history(&events).await?;
        records
            .write_notifications(&mut write, &Actor::system(), now, &notifications, None)
            .await?;
        write.commit().await?;
        if !notifications.is_empty() {
            records.signals().notifications.notify_one();
            records.signals().outbox.notify_one();
        }
        Ok(SweepOutcome {
            matched: rows.len() as u64,
            warned: warned_now,
            ..SweepOutcome::default()
        })
    }
}

/// What a chunk's notifications need: the owners of its records as actors (active users
/// only), and when each record would return. The returns read owners on their chunk's own
/// transaction (a read from the connection pool while holding SQLite's write lock could
/// wait for a connection held by a writer waiting for that lock) and keep them for the
/// next chunks; warnings read both before their transaction opens. A record whose owner
/// changed in between, or is no longer active, is told as a user without roles (every mask
/// on).
#[derive(Default)]
struct Prepared {
    owners: HashMap<String, Actor>,
    /// Owners already looked up who are not active users.
    inactive: HashSet<String>,
    timings: HashMap<String, Option<super::Timing>>,
}

impl Prepared {
    async fn read(
        records: &Records,
        pool: &Pool,
        object: &Object,
        query: &SelectQuery<'_>,
    ) -> Result<Prepared, RecordError> {
        let rows = keel_store::records::select(records.db(), query).await?;
        let mut owners = HashMap::new();
        for row in &rows {
            if let Some(owner) = owner_of(row)
                && !owners.contains_key(&owner)
                && let Some(actor) = records.actor_by_id(&owner).await?
            {
                owners.insert(owner, actor);
            }
        }
        let ids: Vec<serde_json::Value> = rows
            .iter()
            .filter_map(id_of)
            .map(|id| serde_json::json!({ "id": id }))
            .collect();
        let timings = super::timing::timings(records, pool, object, &ids).await?;
        Ok(Prepared {
            owners,
            inactive: HashSet::new(),
            timings,
        })
    }

    /// Reads, on `write`, the owners of `rows` this sweep has not met yet.
    async fn read_owners(
        &mut self,
        records: &Records,
        write: &mut RecordWrite,
        rows: &[keel_store::records::Row],
    ) -> Result<(), RecordError> {
        for owner in rows.iter().filter_map(owner_of) {
            if self.owners.contains_key(&owner) || self.inactive.contains(&owner) {
                continue;
            }
            match write
                .user_by_id(&owner)
                .await?
                .and_then(|user| records.actor_of(user))
            {
                Some(actor) => {
                    self.owners.insert(owner, actor);
                }
                None => {
                    self.inactive.insert(owner);
                }
            }
        }
        Ok(())
    }

    fn owner(&self, id: &str) -> Actor {
        self.owners.get(id).cloned().unwrap_or_else(|| Actor {
            id: id.to_owned(),
            username: id.to_owned(),
            display_name: None,
            roles: Vec::new(),
            admin: false,
            manager: None,
            department: None,
            language: None,
        })
    }
}
