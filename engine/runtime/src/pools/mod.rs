//! Lead pools (公海): who may see a pool, its list and the "held" list, claiming,
//! releasing, assigning and moving records, the pool history, and the auto-return sweep the
//! scheduler runs ([`sweep`]). See docs/pools.md.
//!
//! A record is *in* its pool when `pool` is set and `owner` is empty; it is *held* from the
//! pool when both are set. Every move is one store transaction: the conditional update of
//! the record (its version bumped, `updated_at`/`updated_by` set), its field audit rows, a
//! pool history row and the notifications it sends. A claim's limits are counted in the
//! same transaction, after the claimant's user row is locked (PostgreSQL) or under SQLite's
//! `BEGIN IMMEDIATE`, so they hold exactly under concurrency. Pool moves do not fire event
//! rules or scripts: they are not edits of the record's fields, and a sweep returns
//! thousands of records at once.

mod sweep;
mod timing;

use chrono::{DateTime, TimeZone as _, Utc};
use keel_meta::{Object, Pool, Storage, Value};
use keel_store::outbox::NewNotification;
use keel_store::pools::PoolEvent;
use keel_store::records::{AuditEntry, CompareOp, Condition, Deleted, RecordWrite, Row};
use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::actor::Actor;
use crate::coerce::FieldProblem;
use crate::records::access::{self, Masking};
use crate::records::{ListRequest, MAX_BULK_ITEMS, Page, RecordError, Records};

pub use sweep::{SweepOutcome, sweep};
pub use timing::Timing;

/// The longest note a release, assignment or move may carry, in characters.
pub const MAX_NOTE_CHARS: usize = 2_000;
/// Reads and tries a claim makes of a record that keeps changing under it (another process
/// editing it) before it gives up with `taken`.
const CLAIM_ATTEMPTS: usize = 3;

/// The actor's part in a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolRole {
    /// May see the pool and claim from it.
    Member,
    /// May also assign, take back and move records into it.
    Manager,
    /// An admin: everything a manager may.
    Admin,
}

impl PoolRole {
    fn manages(self) -> bool {
        matches!(self, PoolRole::Manager | PoolRole::Admin)
    }
}

/// What an actor may do to one record through the pools ([`Pools::actions`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PoolActions {
    /// The pool the record belongs to (in it or held from it), if any.
    pub pool: Option<String>,
    /// It sits in its pool and the actor may see the pool.
    pub claim: bool,
    /// It is held, and the actor holds it or manages its pool.
    pub release: bool,
    /// The actor manages its pool.
    pub assign: bool,
    /// The reasons a release must name (empty: none needed).
    pub release_reasons: Vec<String>,
    /// The pools the actor may move it into.
    pub move_into: Vec<String>,
}

/// The pools of one app, over its records: cheap to clone.
#[derive(Debug, Clone)]
pub struct Pools {
    records: Records,
}

impl Pools {
    pub fn new(records: Records) -> Pools {
        Pools { records }
    }

    /// The actor's part in `pool`, or `None` when they may not see it.
    pub fn role(&self, actor: &Actor, pool: &Pool) -> Option<PoolRole> {
        let schema = self.records.schema();
        if access::is_admin(schema, actor) {
            Some(PoolRole::Admin)
        } else if actor.roles.iter().any(|role| pool.managers.contains(role)) {
            Some(PoolRole::Manager)
        } else if actor.roles.iter().any(|role| pool.members.contains(role)) {
            Some(PoolRole::Member)
        } else {
            None
        }
    }

    /// The pools the actor may see (members, managers, admins), in file order.
    pub fn visible(&self, actor: &Actor) -> Vec<Json> {
        self.records
            .schema()
            .pools
            .values()
            .filter_map(|pool| Some(describe(pool, self.role(actor, pool)?)))
            .collect()
    }

    /// One pool as [`Pools::visible`] describes it, plus the actor's standing in it: how
    /// many records they hold from it (`held`, of which `counted` count toward
    /// `claim_limit`) and how many they claimed today (`claimed_today`).
    pub async fn describe(&self, actor: &Actor, name: &str) -> Result<Json, RecordError> {
        let (pool, object, role) = self.pool(actor, name)?;
        let db = self.records.db();
        let mine = self.held_by(pool, &actor.id);
        let held = keel_store::records::count(db, object, &mine, Deleted::Exclude).await?;
        let counted = match &pool.holding_excludes {
            Some(excludes) => {
                let condition = Condition::All(vec![
                    mine,
                    Condition::Not(Box::new(self.records.metadata_condition(object, excludes)?)),
                ]);
                keel_store::records::count(db, object, &condition, Deleted::Exclude).await?
            }
            None => held,
        };
        let since = self.start_of_today();
        let claimed_today =
            keel_store::pools::count_pool_actions(db, &pool.name, &actor.id, "claim", since)
                .await?;
        let mut described = describe(pool, role);
        if let Some(map) = described.as_object_mut() {
            map.insert(
                "mine".to_owned(),
                json!({ "held": held, "counted": counted, "claimed_today": claimed_today }),
            );
        }
        Ok(described)
    }

    /// A page of the records in `pool` (nobody holds them), or with `held` of the records
    /// held from it that the actor may follow: their own, a manager's team's, every one for
    /// an admin. Filters, `q`, order and cursor work as in [`Records::list`];
    /// `hide_until_claimed` fields are masked on records in the pool ([`Masking`]). Each
    /// held record carries `_pool` ([`Timing`]): when it would return and be warned.
    pub async fn list(
        &self,
        actor: &Actor,
        name: &str,
        request: ListRequest,
        held: bool,
    ) -> Result<Page, RecordError> {
        let (pool, object, role) = self.pool(actor, name)?;
        let in_pool = Condition::Compare {
            column: "pool".to_owned(),
            op: CompareOp::Eq,
            value: Value::Text(pool.name.clone()),
        };
        let scope = if held {
            let whose = match role {
                PoolRole::Admin => Condition::IsNull {
                    column: "owner".to_owned(),
                    null: false,
                },
                PoolRole::Manager => Condition::OwnerInTeamOf(actor.id.clone()),
                PoolRole::Member => Condition::OwnerIn(vec![actor.id.clone()]),
            };
            Condition::All(vec![in_pool, whose])
        } else {
            Condition::All(vec![
                in_pool,
                Condition::IsNull {
                    column: "owner".to_owned(),
                    null: true,
                },
            ])
        };
        let mut page = self
            .records
            .list_within(actor, object, scope, request)
            .await?;
        if held {
            let timings = timing::timings(&self.records, pool, object, &page.data).await?;
            for record in &mut page.data {
                let id = record.get("id").and_then(Json::as_str).map(str::to_owned);
                if let (Some(map), Some(id)) = (record.as_object_mut(), id) {
                    let timing = timings.get(&id).cloned().flatten();
                    map.insert("_pool".to_owned(), json!(timing));
                }
            }
        }
        Ok(page)
    }

    /// One record of `pool` as [`Pools::list`] shows it: in the pool (hidden fields masked),
    /// or — with its `_pool` timing — held from it by someone the actor follows there (see
    /// [`Pools::list`]). `NotFound` otherwise. For a pool page's record view: a record in
    /// a pool is in no one's read scope, so `Records::get` does not show it to a member.
    pub async fn record(&self, actor: &Actor, name: &str, id: &str) -> Result<Json, RecordError> {
        let by_id = keel_meta::Filter::Compare {
            field: "id".to_owned(),
            op: keel_meta::filter::Op::Eq,
            value: keel_meta::filter::FilterValue::Literal(Json::String(id.to_owned())),
        };
        for held in [false, true] {
            let request = ListRequest {
                filter: Some(by_id.clone()),
                limit: Some(1),
                ..ListRequest::default()
            };
            if let Some(record) = self.list(actor, name, request, held).await?.data.pop() {
                return Ok(record);
            }
        }
        Err(RecordError::NotFound)
    }

    /// What the actor may do to `record` (a record of `object` as they were shown it, with
    /// its `owner` and `pool`) through the pools, for a page that offers only what may be
    /// done: claim it from its pool, release it to its pool, assign it, and the pools they
    /// may move it into. The calls check again.
    pub fn actions(&self, actor: &Actor, object: &str, record: &Json) -> PoolActions {
        let schema = self.records.schema();
        let owner = record.get("owner").and_then(Json::as_str);
        let current = record
            .get("pool")
            .and_then(Json::as_str)
            .and_then(|name| schema.pools.get(name))
            .filter(|pool| pool.object == object);
        let role = current.and_then(|pool| self.role(actor, pool));
        let mut actions = PoolActions {
            pool: current.map(|pool| pool.name.clone()),
            ..PoolActions::default()
        };
        if let Some(role) = role {
            actions.claim = owner.is_none();
            actions.release =
                owner.is_some() && (owner == Some(actor.id.as_str()) || role.manages());
            actions.assign = role.manages();
            actions.release_reasons = current
                .map(|pool| pool.release_reasons.clone())
                .unwrap_or_default();
        }
        actions.move_into = schema
            .pools
            .values()
            .filter(|pool| pool.object == object)
            .filter(|pool| self.role(actor, pool).is_some_and(PoolRole::manages))
            .filter(|pool| Some(pool.name.as_str()) != actions.pool.as_deref() || owner.is_some())
            .map(|pool| pool.name.clone())
            .collect();
        actions
    }

    /// Claims the record `id` from `pool` for the actor: one conditional update in one
    /// transaction with the limit checks. Returns the record as the actor now sees it
    /// (theirs, so unmasked). Refusals: [`RecordError::PoolRefused`] with `taken`,
    /// `claim_limit`, `daily_claim_limit` or `cooldown`.
    pub async fn claim(&self, actor: &Actor, name: &str, id: &str) -> Result<Json, RecordError> {
        let (pool, object, _role) = self.pool(actor, name)?;
        let now = self.records.clock().now();
        let mut saved = None;
        for _ in 0..CLAIM_ATTEMPTS {
            saved = self.try_claim(actor, pool, object, id, now).await?;
            if saved.is_some() {
                break;
            }
        }
        let saved =
            saved.ok_or_else(|| refused("taken", "the record changed while you acted on it"))?;
        let fields =
            crate::records::output::output_fields(self.records.schema(), actor, object, None)?;
        let mut rendered =
            crate::records::output::render_rows(&self.records, actor, object, &fields, vec![saved])
                .await?;
        rendered.pop().ok_or(RecordError::NotFound)
    }

    /// One attempt of [`Pools::claim`]: the claimed record, committed, or `None` when it
    /// changed between the read and the update (then nothing was written).
    async fn try_claim(
        &self,
        actor: &Actor,
        pool: &Pool,
        object: &Object,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Row>, RecordError> {
        // The record is read at this process's turn to write but before the transaction
        // opens: on SQLite, a claim that finds the record taken (the loser of a race) then
        // ends without starting a transaction, and the winner's transaction (which holds
        // SQLite's one write lock, for which every other claimer waits) runs only the checks
        // and the writes. The update applies only to the version read here; a record that
        // changed in between (another process, or on PostgreSQL a concurrent claim) is read
        // again by the next attempt.
        let mut turn = self.records.db().records_write_turn().await?;
        let current = in_pool(pool, turn.get(object, id, Deleted::Exclude).await?)?;
        if owner_of(&current).is_some() {
            return Err(refused("taken", "someone holds this record already"));
        }
        let mut write = turn.begin().await?;
        // Serialises this user's claims (PostgreSQL; SQLite's write lock already does), so
        // the counts below see every earlier claim of theirs. Without a limit there is
        // nothing to count, and the claim is one conditional update like any other write.
        let limited = pool.claim_limit > 0 || pool.daily_claim_limit > 0;
        if limited && !write.lock_user(&actor.id).await? {
            return Err(RecordError::Forbidden {
                message: "only an active user may claim".to_owned(),
                fields: Vec::new(),
            });
        }
        if pool.claim_limit > 0 {
            let mut counted = vec![self.held_by(pool, &actor.id)];
            if let Some(excludes) = &pool.holding_excludes {
                counted.push(Condition::Not(Box::new(
                    self.records.metadata_condition(object, excludes)?,
                )));
            }
            let held = write
                .count(object, &Condition::All(counted), Deleted::Exclude)
                .await?;
            if held >= i64::from(pool.claim_limit) {
                return Err(refused(
                    "claim_limit",
                    &format!(
                        "you hold {held} records from this pool; the limit is {}",
                        pool.claim_limit
                    ),
                ));
            }
        }
        if pool.daily_claim_limit > 0 {
            let today = write
                .count_pool_actions(&pool.name, &actor.id, "claim", self.start_of_today())
                .await?;
            if today >= i64::from(pool.daily_claim_limit) {
                return Err(refused(
                    "daily_claim_limit",
                    &format!(
                        "you claimed {today} records from this pool today; the limit is {}",
                        pool.daily_claim_limit
                    ),
                ));
            }
        }
        if !pool.reclaim_cooldown.is_zero()
            && let Some(left) = write.last_left(&object.name, id, &actor.id).await?
        {
            let until = left + seconds(pool.reclaim_cooldown.as_secs());
            if now < until {
                return Err(refused(
                    "cooldown",
                    &format!(
                        "this record left you at {}; you may claim it again from {}",
                        keel_meta::value::format_datetime(&left),
                        keel_meta::value::format_datetime(&until)
                    ),
                ));
            }
        }
        let mut changes = Row::new();
        changes.insert("owner".to_owned(), Value::Text(actor.id.clone()));
        changes.insert("claimed_at".to_owned(), Value::Datetime(now));
        let event = Event {
            action: "claim",
            actor,
            to: Some(actor.id.clone()),
            reason: None,
            note: None,
        };
        let Some(saved) = self
            .apply(&mut write, pool, object, &current, changes, &event, now)
            .await?
        else {
            return Ok(None);
        };
        write.commit().await?;
        Ok(Some(saved))
    }

    /// Puts the held record `id` back into `pool`: its owner may, and so may the pool's
    /// managers and admins. `reason` must be one of the pool's `release_reasons` (when it
    /// has any). Returns the pool history row.
    pub async fn release(
        &self,
        actor: &Actor,
        name: &str,
        id: &str,
        reason: Option<&str>,
        note: Option<&str>,
    ) -> Result<Json, RecordError> {
        let (pool, object, role) = self.pool(actor, name)?;
        let mut problems = Vec::new();
        check_reason(&pool.release_reasons, reason, &mut problems);
        check_note(note, &mut problems);
        if !problems.is_empty() {
            return Err(RecordError::Invalid(problems));
        }
        let now = self.records.clock().now();
        let mut write = self.records.db().begin_records_write().await?;
        let current = self.row_in_pool(&mut write, pool, object, id).await?;
        let owner = owner_of(&current);
        if owner.is_none() {
            return Err(refused("in_pool", "the record is in the pool already"));
        }
        if owner.as_deref() != Some(actor.id.as_str()) && !role.manages() {
            // Someone else's record: not revealed to a member.
            return Err(RecordError::NotFound);
        }
        let mut changes = Row::new();
        changes.insert("owner".to_owned(), Value::Null);
        changes.insert("returned_at".to_owned(), Value::Datetime(now));
        let event = Event {
            action: "release",
            actor,
            to: None,
            reason: reason.map(str::to_owned),
            note: note.map(str::to_owned),
        };
        self.apply(&mut write, pool, object, &current, changes, &event, now)
            .await?
            .ok_or_else(|| refused("taken", "the record changed while you acted on it"))?;
        write.commit().await?;
        self.last_event(object, id).await
    }

    /// Assigns the records `ids` of `pool` (in it or held from it) to `user` (an id or a
    /// username): pool managers and admins only; the user must be active and hold a member
    /// or manager role of the pool. All or nothing, at most [`MAX_BULK_ITEMS`]. Claim limits
    /// do not apply: an assignment is a manager's decision. The new owner is notified.
    /// Returns the pool history rows.
    pub async fn assign(
        &self,
        actor: &Actor,
        name: &str,
        ids: &[String],
        user: &str,
        note: Option<&str>,
    ) -> Result<Vec<Json>, RecordError> {
        let (pool, object, role) = self.pool(actor, name)?;
        if !role.manages() {
            return Err(RecordError::Forbidden {
                message: format!("only managers of the pool `{}` may assign", pool.name),
                fields: Vec::new(),
            });
        }
        let mut problems = Vec::new();
        if ids.is_empty() || ids.len() > MAX_BULK_ITEMS {
            problems.push(FieldProblem {
                field: "ids".to_owned(),
                code: "invalid_size",
                message: format!("`ids` holds 1 to {MAX_BULK_ITEMS} record ids"),
            });
        }
        check_note(note, &mut problems);
        let target = self.member(pool, user).await?;
        let Some(target) = target else {
            problems.push(FieldProblem {
                field: "user".to_owned(),
                code: "invalid_user",
                message: format!(
                    "`{user}` is not an active user with a role of the pool `{}`",
                    pool.name
                ),
            });
            return Err(RecordError::Invalid(problems));
        };
        if !problems.is_empty() {
            return Err(RecordError::Invalid(problems));
        }
        let mut unique: Vec<String> = Vec::new();
        for id in ids {
            if !unique.contains(id) {
                unique.push(id.clone());
            }
        }
        let now = self.records.clock().now();
        let mut write = self.records.db().begin_records_write().await?;
        let mut query = keel_store::records::SelectQuery::new(object);
        query.condition = Condition::All(vec![
            Condition::In {
                column: "id".to_owned(),
                values: unique.iter().map(|id| Value::Text(id.clone())).collect(),
            },
            Condition::Compare {
                column: "pool".to_owned(),
                op: CompareOp::Eq,
                value: Value::Text(pool.name.clone()),
            },
        ]);
        let rows = write.select_for_update(&query).await?;
        if rows.len() != unique.len() {
            return Err(RecordError::NotFound);
        }
        let ids: Vec<String> = rows.iter().filter_map(id_of).collect();
        let mut changes = Row::new();
        changes.insert("owner".to_owned(), Value::Text(target.id.clone()));
        changes.insert("claimed_at".to_owned(), Value::Datetime(now));
        changes.insert("updated_at".to_owned(), Value::Datetime(now));
        changes.insert("updated_by".to_owned(), Value::Text(actor.id.clone()));
        write
            .update_ids(object, &ids, &Condition::Always, &changes)
            .await?;
        let event = Event {
            action: "assign",
            actor,
            to: Some(target.id.clone()),
            reason: None,
            note: note.map(str::to_owned),
        };
        let mut events = Vec::new();
        let mut audit = Vec::new();
        let mut notifications = Vec::new();
        let masking = Masking::new(self.records.schema(), &target, object);
        for row in &rows {
            events.push(event.row(pool, object, row, now));
            audit.extend(audit_rows(object, row, &changes, Some(&actor.id), now));
            notifications.push(self.notification(
                &target,
                object,
                row,
                &masking,
                Some(&target.id),
                Message::Assigned(pool),
                now,
            ));
        }
        write.insert_pool_history(&events).await?;
        write.insert_audit(&audit).await?;
        self.records
            .write_notifications(&mut write, actor, now, &notifications, None)
            .await?;
        write.commit().await?;
        self.wake();
        self.events_json(events).await
    }

    /// Moves the record `id` (of the pool's object) into `pool`, whoever held it: pool
    /// managers and admins, on a record they may read or one of the pool. Returns the pool
    /// history row.
    pub async fn move_into(
        &self,
        actor: &Actor,
        name: &str,
        id: &str,
        note: Option<&str>,
    ) -> Result<Json, RecordError> {
        let (pool, object, role) = self.pool(actor, name)?;
        let mut problems = Vec::new();
        check_note(note, &mut problems);
        if !problems.is_empty() {
            return Err(RecordError::Invalid(problems));
        }
        // Whether the actor may see the record is asked before the transaction opens: a read
        // from the connection pool while holding SQLite's write lock could wait for a
        // connection held by a writer waiting for that lock.
        let seen = keel_store::records::get(self.records.db(), object, id, Deleted::Exclude)
            .await?
            .ok_or(RecordError::NotFound)?;
        let in_this_pool =
            |row: &Row| matches!(row.get("pool"), Some(Value::Text(p)) if *p == pool.name);
        let readable = in_this_pool(&seen) || {
            let record = json!({ "id": id, "owner": owner_of(&seen) });
            self.records
                .may(actor, &object.name, &record, access::Action::Read)
                .await?
        };
        if !readable {
            return Err(RecordError::NotFound);
        }
        if !role.manages() {
            return Err(RecordError::Forbidden {
                message: format!(
                    "only managers of the pool `{}` may move records into it",
                    pool.name
                ),
                fields: Vec::new(),
            });
        }
        let now = self.records.clock().now();
        let mut write = self.records.db().begin_records_write().await?;
        let current = match write.get_for_update(object, id).await? {
            Some(row) if matches!(row.get("deleted_at"), Some(Value::Null) | None) => row,
            _ => return Err(RecordError::NotFound),
        };
        if in_this_pool(&current) && owner_of(&current).is_none() {
            return Err(refused("in_pool", "the record is in the pool already"));
        }
        let mut changes = Row::new();
        changes.insert("pool".to_owned(), Value::Text(pool.name.clone()));
        changes.insert("owner".to_owned(), Value::Null);
        changes.insert("returned_at".to_owned(), Value::Datetime(now));
        let event = Event {
            action: "move",
            actor,
            to: None,
            reason: None,
            note: note.map(str::to_owned),
        };
        self.apply(&mut write, pool, object, &current, changes, &event, now)
            .await?
            .ok_or_else(|| refused("taken", "the record changed while you acted on it"))?;
        write.commit().await?;
        self.last_event(object, id).await
    }

    /// The pool history of a record, oldest first: readable by whoever may read the record,
    /// and for a record in a pool by whoever may see the pool.
    pub async fn history(
        &self,
        actor: &Actor,
        object_name: &str,
        id: &str,
    ) -> Result<Vec<Json>, RecordError> {
        let schema = self.records.schema();
        let object = schema
            .object(object_name)
            .ok_or_else(|| RecordError::UnknownObject(object_name.to_owned()))?;
        let row = keel_store::records::get(self.records.db(), object, id, Deleted::Include)
            .await?
            .ok_or(RecordError::NotFound)?;
        let owner = owner_of(&row);
        let in_visible_pool = owner.is_none()
            && match row.get("pool") {
                Some(Value::Text(name)) => schema
                    .pools
                    .get(name)
                    .is_some_and(|pool| self.role(actor, pool).is_some()),
                _ => false,
            };
        let readable = in_visible_pool || {
            let record = json!({ "id": id, "owner": owner });
            self.records
                .may(actor, &object.name, &record, access::Action::Read)
                .await?
        };
        if !readable {
            return Err(RecordError::NotFound);
        }
        let events = keel_store::pools::history(self.records.db(), &object.name, id).await?;
        self.events_json(events).await
    }

    /// The pool `name` as the actor may see it, its object and the actor's part in it.
    fn pool(&self, actor: &Actor, name: &str) -> Result<(&Pool, &Object, PoolRole), RecordError> {
        let schema = self.records.schema();
        let pool = schema.pools.get(name).ok_or(RecordError::NotFound)?;
        let role = self.role(actor, pool).ok_or(RecordError::NotFound)?;
        let object = schema
            .object(&pool.object)
            .ok_or_else(|| RecordError::UnknownObject(pool.object.clone()))?;
        Ok((pool, object, role))
    }

    /// Records of `pool` held by `user`.
    fn held_by(&self, pool: &Pool, user: &str) -> Condition {
        Condition::All(vec![
            Condition::Compare {
                column: "pool".to_owned(),
                op: CompareOp::Eq,
                value: Value::Text(pool.name.clone()),
            },
            Condition::OwnerIn(vec![user.to_owned()]),
        ])
    }

    /// The start of today in the app timezone, as an instant.
    fn start_of_today(&self) -> DateTime<Utc> {
        let timezone = self.records.timezone();
        let now = self.records.clock().now();
        let date = now.with_timezone(&timezone).date_naive();
        timezone
            .from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
            .earliest()
            .map_or(now, |start| start.with_timezone(&Utc))
    }

    /// The live record `id` of `pool`, locked for this transaction; `NotFound` when it is
    /// not a record of this pool (held or not).
    async fn row_in_pool(
        &self,
        write: &mut RecordWrite,
        pool: &Pool,
        object: &Object,
        id: &str,
    ) -> Result<Row, RecordError> {
        let row = write
            .get_for_update(object, id)
            .await?
            .filter(|row| matches!(row.get("deleted_at"), Some(Value::Null) | None));
        in_pool(pool, row)
    }

    /// The active user `user` (an id or a username) when they hold a member or manager
    /// role of `pool` (or are an admin), as an actor.
    async fn member(&self, pool: &Pool, user: &str) -> Result<Option<Actor>, RecordError> {
        let db = self.records.db();
        let id = match keel_store::users::find_by_id(db, user).await? {
            Some(found) => found.id,
            None => match keel_store::users::find_by_username(db, user).await? {
                Some(found) => found.id,
                None => return Ok(None),
            },
        };
        let Some(target) = self.records.actor_by_id(&id).await? else {
            return Ok(None);
        };
        Ok((target.id != "system" && self.role(&target, pool).is_some()).then_some(target))
    }

    /// Applies one move to `current` in `write`, in one round trip: the field audit rows and
    /// the pool history row, then the conditional update (version + 1, `updated_*`).
    /// Returns the row as saved, or `None` when the record changed since `current` was
    /// read: then `write` holds the inserts without the update and must be dropped.
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        write: &mut RecordWrite,
        pool: &Pool,
        object: &Object,
        current: &Row,
        mut changes: Row,
        event: &Event<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Row>, RecordError> {
        let id = id_of(current).ok_or(RecordError::NotFound)?;
        let version = match current.get("version") {
            Some(Value::Integer(version)) => *version,
            _ => 0,
        };
        changes.insert("updated_at".to_owned(), Value::Datetime(now));
        changes.insert("updated_by".to_owned(), Value::Text(event.actor.id.clone()));
        let audit = audit_rows(object, current, &changes, Some(&event.actor.id), now);
        let history = event.row(pool, object, current, now);
        if !write
            .move_record(object, &id, version, &changes, &audit, &[history])
            .await?
        {
            return Ok(None);
        }
        let mut saved = current.clone();
        for (name, value) in changes {
            saved.insert(name, value);
        }
        if let Some(Value::Integer(version)) = saved.get_mut("version") {
            *version += 1;
        }
        Ok(Some(saved))
    }

    /// The newest pool history row of a record, as JSON.
    async fn last_event(&self, object: &Object, id: &str) -> Result<Json, RecordError> {
        let mut events = keel_store::pools::history(self.records.db(), &object.name, id).await?;
        let last = events.pop().ok_or(RecordError::NotFound)?;
        let mut rendered = self.events_json(vec![last]).await?;
        rendered.pop().ok_or(RecordError::NotFound)
    }

    /// Pool history rows as JSON, each with `_refs` naming the actor and the owners before
    /// and after.
    async fn events_json(&self, events: Vec<PoolEvent>) -> Result<Vec<Json>, RecordError> {
        let ids: Vec<String> = events
            .iter()
            .flat_map(|event| {
                std::iter::once(event.actor.clone())
                    .chain(event.from_user.clone())
                    .chain(event.to_user.clone())
            })
            .collect();
        let names = self.records.user_names(&ids).await?;
        Ok(events
            .into_iter()
            .map(|event| {
                let mut refs = serde_json::Map::new();
                for (key, id) in [
                    ("actor", Some(&event.actor)),
                    ("from_user", event.from_user.as_ref()),
                    ("to_user", event.to_user.as_ref()),
                ] {
                    if let Some(id) = id {
                        let title = names.get(id).cloned().unwrap_or_else(|| id.clone());
                        refs.insert(key.to_owned(), json!({ "id": id, "title": title }));
                    }
                }
                json!({
                    "id": event.id,
                    "object": event.object,
                    "record_id": event.record_id,
                    "pool": event.pool,
                    "action": event.action,
                    "actor": event.actor,
                    "from_user": event.from_user,
                    "to_user": event.to_user,
                    "reason": event.reason,
                    "note": event.note,
                    "at": keel_meta::value::format_datetime(&event.at),
                    "_refs": refs,
                })
            })
            .collect())
    }

    /// A notification to `recipient` about `row`, its title masked as they would see it on
    /// the record with owner `owner_after`.
    #[allow(clippy::too_many_arguments)]
    fn notification(
        &self,
        recipient: &Actor,
        object: &Object,
        row: &Row,
        masking: &Masking,
        owner_after: Option<&str>,
        message: Message<'_>,
        now: DateTime<Utc>,
    ) -> NewNotification {
        notification(
            &self.records,
            recipient,
            object,
            row,
            masking,
            owner_after,
            message,
            now,
        )
    }

    fn wake(&self) {
        self.records.signals().notifications.notify_one();
        self.records.signals().outbox.notify_one();
    }
}

/// A pool as the API lists it.
fn describe(pool: &Pool, role: PoolRole) -> Json {
    json!({
        "name": pool.name,
        "label": pool.label,
        "object": pool.object,
        "role": role,
        "members": pool.members,
        "managers": pool.managers,
        "claim_limit": pool.claim_limit,
        "holding_excludes": pool.holding_excludes,
        "daily_claim_limit": pool.daily_claim_limit,
        "reclaim_cooldown": pool.reclaim_cooldown.as_secs(),
        "hide_until_claimed": pool.hide_until_claimed,
        "release_reasons": pool.release_reasons,
        "auto_return": pool.auto_return.as_ref().map(|auto| json!({
            "schedule": auto.schedule,
            "warn_before": auto.warn_before.as_secs(),
            "exempt": auto.exempt,
            "rules": auto.rules,
        })),
        "notify_on_return": pool.notify_on_return,
    })
}

/// One pool move about to be recorded.
struct Event<'a> {
    action: &'static str,
    actor: &'a Actor,
    to: Option<String>,
    reason: Option<String>,
    note: Option<String>,
}

impl Event<'_> {
    fn row(&self, pool: &Pool, object: &Object, current: &Row, now: DateTime<Utc>) -> PoolEvent {
        PoolEvent {
            id: uuid::Uuid::now_v7().to_string(),
            object: object.name.clone(),
            record_id: id_of(current).unwrap_or_default(),
            pool: pool.name.clone(),
            action: self.action.to_owned(),
            actor: self.actor.id.clone(),
            from_user: owner_of(current),
            to_user: self.to.clone(),
            reason: self.reason.clone(),
            note: self.note.clone(),
            at: now,
        }
    }
}

/// What a pool notification says.
#[derive(Clone, Copy)]
pub(crate) enum Message<'a> {
    Assigned(&'a Pool),
    Returned(&'a Pool),
    /// The record will return to the pool at this instant.
    Warned(&'a Pool, DateTime<Utc>),
}

/// A notification to `recipient` about `row` (see [`Pools::notification`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn notification(
    records: &Records,
    recipient: &Actor,
    object: &Object,
    row: &Row,
    masking: &Masking,
    owner_after: Option<&str>,
    message: Message<'_>,
    now: DateTime<Utc>,
) -> NewNotification {
    let schema = records.schema();
    let app_language = &schema.app.language;
    let language = recipient.language.clone().unwrap_or(app_language.clone());
    let raw_title = match row.get(&object.title) {
        Some(Value::Null) | None => String::new(),
        Some(value) => value
            .to_json()
            .as_str()
            .map_or_else(|| value.to_json().to_string(), str::to_owned),
    };
    let title = if masking.hides(&object.title, owner_after) {
        crate::records::mask(&raw_title)
    } else {
        raw_title
    };
    let what = object.label.text(&language, app_language);
    let pool_label = |pool: &Pool| {
        pool.label.as_ref().map_or_else(
            || pool.name.clone(),
            |label| label.text(&language, app_language).to_owned(),
        )
    };
    let chinese = language.starts_with("zh");
    let text = match message {
        Message::Assigned(pool) if chinese => {
            format!("{what}「{title}」已从{}分配给你", pool_label(pool))
        }
        Message::Assigned(pool) => {
            format!(
                "{what} \"{title}\" was assigned to you from {}",
                pool_label(pool)
            )
        }
        Message::Returned(pool) if chinese => {
            format!("{what}「{title}」已退回{}", pool_label(pool))
        }
        Message::Returned(pool) => {
            format!("{what} \"{title}\" went back to {}", pool_label(pool))
        }
        Message::Warned(pool, at) => {
            let timezone = records.timezone();
            let local = at.with_timezone(&timezone).format("%Y-%m-%d %H:%M");
            if chinese {
                format!(
                    "{what}「{title}」将于 {local} 进入{}，请及时跟进",
                    pool_label(pool)
                )
            } else {
                format!(
                    "{what} \"{title}\" goes back to {} at {local} unless you follow it up",
                    pool_label(pool)
                )
            }
        }
    };
    NewNotification {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: recipient.id.clone(),
        message: text,
        object: Some(object.name.clone()),
        record_id: id_of(row),
        created_at: now,
    }
}

/// The audit rows of `changes` to `current` (fields whose value changes; `updated_*` are
/// not audited, as in any save).
pub(crate) fn audit_rows(
    object: &Object,
    current: &Row,
    changes: &Row,
    by: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<AuditEntry> {
    let record_id = id_of(current).unwrap_or_default();
    changes
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "updated_at" | "updated_by"))
        .filter_map(|(name, value)| {
            let old = current.get(name).cloned().unwrap_or(Value::Null);
            (old != *value).then(|| AuditEntry {
                object: object.name.clone(),
                record_id: record_id.clone(),
                at: now,
                by: by.map(str::to_owned),
                field: name.clone(),
                old: old.to_json(),
                new: value.to_json(),
                action: "update".to_owned(),
            })
        })
        .collect()
}

fn refused(code: &'static str, message: &str) -> RecordError {
    RecordError::PoolRefused {
        code,
        message: message.to_owned(),
    }
}

/// A release's `reason`: one of the pool's `release_reasons` when it has any, none when it
/// has none.
fn check_reason(reasons: &[String], reason: Option<&str>, problems: &mut Vec<FieldProblem>) {
    let message = match reason {
        Some(reason) if reasons.iter().any(|known| known == reason) => return,
        None if reasons.is_empty() => return,
        Some(_) if reasons.is_empty() => {
            "this pool has no release reasons: leave `reason` out".to_owned()
        }
        _ => format!("`reason` must be one of: {}", reasons.join(", ")),
    };
    problems.push(FieldProblem {
        field: "reason".to_owned(),
        code: "invalid_choice",
        message,
    });
}

fn check_note(note: Option<&str>, problems: &mut Vec<FieldProblem>) {
    if let Some(note) = note
        && (note.chars().count() > MAX_NOTE_CHARS || note.contains('\0'))
    {
        problems.push(FieldProblem {
            field: "note".to_owned(),
            code: "invalid_note",
            message: format!(
                "`note` is text of at most {MAX_NOTE_CHARS} characters without NUL characters"
            ),
        });
    }
}

pub(crate) fn id_of(row: &Row) -> Option<String> {
    match row.get("id") {
        Some(Value::Text(id)) => Some(id.clone()),
        _ => None,
    }
}

/// The record `row`, when it is (in or held from) `pool`; not found otherwise.
fn in_pool(pool: &Pool, row: Option<Row>) -> Result<Row, RecordError> {
    row.filter(|row| matches!(row.get("pool"), Some(Value::Text(p)) if *p == pool.name))
        .ok_or(RecordError::NotFound)
}

pub(crate) fn owner_of(row: &Row) -> Option<String> {
    match row.get("owner") {
        Some(Value::Text(owner)) => Some(owner.clone()),
        _ => None,
    }
}

pub(crate) fn seconds(secs: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1_000))
}

/// A datetime or date column of `row` as an instant (a date at midnight in `timezone`).
pub(crate) fn instant(row: &Row, column: &str, timezone: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    match row.get(column) {
        Some(Value::Datetime(at)) => Some(*at),
        Some(Value::Date(date)) => timezone
            .from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
            .earliest()
            .map(|at| at.with_timezone(&Utc)),
        _ => None,
    }
}

/// The storage of column `name` of `object` (system columns included).
pub(crate) fn storage_of(object: &Object, name: &str) -> Option<Storage> {
    object
        .columns()
        .iter()
        .find(|column| column.name == name)
        .map(|column| column.storage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(reasons: &[&str], reason: Option<&str>) -> Vec<String> {
        let reasons: Vec<String> = reasons.iter().map(|reason| (*reason).to_owned()).collect();
        let mut problems = Vec::new();
        check_reason(&reasons, reason, &mut problems);
        problems
            .into_iter()
            .map(|problem| problem.message)
            .collect()
    }

    #[test]
    fn a_release_reason_is_one_of_the_pools_and_none_is_given_when_it_has_none() {
        assert!(messages(&["no_need", "other"], Some("other")).is_empty());
        assert!(messages(&[], None).is_empty());
        assert_eq!(
            messages(&["no_need", "other"], Some("bored")),
            ["`reason` must be one of: no_need, other"]
        );
        assert_eq!(
            messages(&["no_need", "other"], None),
            ["`reason` must be one of: no_need, other"]
        );
        assert_eq!(
            messages(&[], Some("bored")),
            ["this pool has no release reasons: leave `reason` out"]
        );
    }
}
