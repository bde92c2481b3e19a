//! The transactional outbox (`keel_outbox`) and the in-app inbox (`keel_notifications`).
//!
//! A save writes its outbox rows in its own transaction ([`RecordWrite::insert_outbox`]),
//! so the work commits or rolls back with the save. Workers claim due rows with a lease
//! ([`claim`]): on PostgreSQL one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)`,
//! on SQLite the same `UPDATE` inside `BEGIN IMMEDIATE` (writers are serialised there
//! anyway). Work whose effects live in this database finishes in the transaction of its
//! effects ([`RecordWrite::finish_outbox`], conditional on still holding the lease), so a
//! crash or a lost lease can never apply it twice; work that leaves the database (a webhook)
//! is finished or failed afterwards ([`finish`], [`fail`]) and may be delivered again after
//! a crash — the idempotency key travels with it.
//!
//! This module decides nothing: the runtime says what a row holds, when it is due again and
//! when it is dead.

use chrono::{DateTime, Utc};
use keel_meta::{Storage, Value};

use crate::db::{Db, Dialect};
use crate::error::StoreError;
use crate::records::RecordWrite;
use crate::records::execute::{Shape, execute, fetch};
use crate::records::statement::Statement;

const OUTBOX: &str = "keel_outbox";
const NOTIFICATIONS: &str = "keel_notifications";

/// A new outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub id: String,
    pub kind: String,
    /// A JSON document.
    pub payload: String,
    /// Unique: a second row with the same key is not written.
    pub idempotency_key: String,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// A row a worker claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub idempotency_key: String,
    /// Claims so far, this one included.
    pub attempts: i64,
}

/// An outbox row as an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub idempotency_key: String,
    pub state: String,
    pub due_at: DateTime<Utc>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A new in-app notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub id: String,
    pub user_id: String,
    pub message: String,
    pub object: Option<String>,
    pub record_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: String,
    pub user_id: String,
    pub message: String,
    pub object: Option<String>,
    pub record_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

fn optional_text(value: Option<&str>) -> Value {
    value.map_or(Value::Null, text)
}

impl RecordWrite {
    /// Writes outbox rows in this transaction; a row whose idempotency key exists already is
    /// left out.
    pub async fn insert_outbox(&mut self, entries: &[NewEntry]) -> Result<(), StoreError> {
        match insert_statement(self.dialect(), entries)? {
            Some(statement) => self.run(&statement).await.map(drop),
            None => Ok(()),
        }
    }

    /// Marks the claimed row `id` done in this transaction, so it commits with the work's
    /// effects. False — and the caller rolls back — when `worker` no longer holds it (its
    /// lease ran out and another worker took it, or it is done already). On PostgreSQL the
    /// row stays locked until the transaction ends, so a second worker waits here and then
    /// finds it done.
    pub async fn finish_outbox(
        &mut self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let statement = finish_statement(self.dialect(), id, worker, now)?;
        Ok(self.run(&statement).await? == 1)
    }

    /// Writes in-app notifications in this transaction; an id that exists already is left
    /// out (a retried delivery derives the same ids).
    pub async fn insert_notifications(
        &mut self,
        notifications: &[NewNotification],
    ) -> Result<(), StoreError> {
        if notifications.is_empty() {
            return Ok(());
        }
        let mut statement = Statement::new(self.dialect(), NOTIFICATIONS);
        statement.push(
            "INSERT INTO keel_notifications (id, user_id, message, object, record_id, \
             created_at) VALUES ",
        );
        for (index, notification) in notifications.iter().enumerate() {
            if index > 0 {
                statement.push(", ");
            }
            push_row(
                &mut statement,
                &[
                    (text(&notification.id), Storage::Text),
                    (text(&notification.user_id), Storage::Text),
                    (text(&notification.message), Storage::Text),
                    (optional_text(notification.object.as_deref()), Storage::Text),
                    (
                        optional_text(notification.record_id.as_deref()),
                        Storage::Text,
                    ),
                    (Value::Datetime(notification.created_at), Storage::Datetime),
                ],
            )?;
        }
        statement.push(" ON CONFLICT (id) DO NOTHING");
        self.run(&statement).await.map(drop)
    }
}

/// The INSERT of `entries` (a row whose idempotency key exists already is left out), to run
/// alone or in a batch with the save that writes them; `None` for no entries.
pub(crate) fn insert_statement(
    dialect: Dialect,
    entries: &[NewEntry],
) -> Result<Option<Statement>, StoreError> {
    if entries.is_empty() {
        return Ok(None);
    }
    let mut statement = Statement::new(dialect, OUTBOX);
    statement.push(
        "INSERT INTO keel_outbox (id, kind, payload, idempotency_key, state, due_at, \
         attempts, created_at) VALUES ",
    );
    for (index, entry) in entries.iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        push_row(
            &mut statement,
            &[
                (text(&entry.id), Storage::Text),
                (text(&entry.kind), Storage::Text),
                (text(&entry.payload), Storage::Text),
                (text(&entry.idempotency_key), Storage::Text),
                (text("pending"), Storage::Text),
                (Value::Datetime(entry.due_at), Storage::Datetime),
                (Value::Integer(0), Storage::Integer),
                (Value::Datetime(entry.created_at), Storage::Datetime),
            ],
        )?;
    }
    statement.push(" ON CONFLICT (idempotency_key) DO NOTHING");
    Ok(Some(statement))
}

/// The DELETE of the outbox rows `ids` (taking back a refused save's rows).
pub(crate) fn delete_statement(
    dialect: Dialect,
    ids: &[String],
) -> Result<Option<Statement>, StoreError> {
    if ids.is_empty() {
        return Ok(None);
    }
    let mut statement = Statement::new(dialect, OUTBOX);
    statement.push("DELETE FROM keel_outbox WHERE id IN (");
    for (index, id) in ids.iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.push_value(&text(id), Storage::Text)?;
    }
    statement.push(")");
    Ok(Some(statement))
}

/// Appends `(?, ?, …)`, each value bound as stored in a column of its storage.
fn push_row(statement: &mut Statement, values: &[(Value, Storage)]) -> Result<(), StoreError> {
    statement.push("(");
    for (index, (value, storage)) in values.iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.push_value(value, *storage)?;
    }
    statement.push(")");
    Ok(())
}

fn finish_statement(
    dialect: Dialect,
    id: &str,
    worker: &str,
    now: DateTime<Utc>,
) -> Result<Statement, StoreError> {
    let mut statement = Statement::new(dialect, OUTBOX);
    statement.push("UPDATE keel_outbox SET state = 'done', claimed_until = NULL, finished_at = ");
    statement.push_value(&Value::Datetime(now), Storage::Datetime)?;
    statement.push(", last_error = NULL WHERE id = ");
    statement.push_value(&text(id), Storage::Text)?;
    statement.push(" AND claimed_by = ");
    statement.push_value(&text(worker), Storage::Text)?;
    statement.push(" AND state = 'pending'");
    Ok(statement)
}

/// Claims up to `limit` due rows for `worker` until `lease_until`: pending rows due at `now`
/// whose lease is free or ran out, oldest due first. Each claim counts as an attempt.
pub async fn claim(
    db: &Db,
    worker: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Claimed>, StoreError> {
    let dialect = db.dialect();
    let mut statement = Statement::new(dialect, OUTBOX);
    statement.push("UPDATE keel_outbox SET claimed_by = ");
    statement.push_value(&text(worker), Storage::Text)?;
    statement.push(", claimed_until = ");
    statement.push_value(&Value::Datetime(lease_until), Storage::Datetime)?;
    statement.push(
        ", attempts = attempts + 1 WHERE id IN (SELECT id FROM keel_outbox \
         WHERE state = 'pending' AND due_at <= ",
    );
    statement.push_value(&Value::Datetime(now), Storage::Datetime)?;
    statement.push(" AND (claimed_until IS NULL OR claimed_until < ");
    statement.push_value(&Value::Datetime(now), Storage::Datetime)?;
    statement.push(") ORDER BY due_at, id LIMIT ");
    // A literal, like every LIMIT the store writes (a bound one makes SQLite re-plan).
    statement.push(&limit.to_string());
    if dialect == Dialect::Postgres {
        statement.push(" FOR UPDATE SKIP LOCKED");
    }
    statement.push(") RETURNING id, kind, payload, idempotency_key, attempts");
    let mut write = db.begin_records_write().await?;
    let rows = write.fetch(&statement, &CLAIMED_SHAPES).await?;
    write.commit().await?;
    let mut claimed: Vec<Claimed> = rows
        .into_iter()
        .filter_map(|row| {
            let mut values = row.into_iter();
            let (
                Some(Value::Text(id)),
                Some(Value::Text(kind)),
                Some(Value::Text(payload)),
                Some(Value::Text(idempotency_key)),
                Some(Value::Integer(attempts)),
            ) = (
                values.next(),
                values.next(),
                values.next(),
                values.next(),
                values.next(),
            )
            else {
                return None;
            };
            Some(Claimed {
                id,
                kind,
                payload,
                idempotency_key,
                attempts,
            })
        })
        .collect();
    // RETURNING gives no order; work in the order rows were written (ids are UUIDv7).
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

const CLAIMED_SHAPES: [Shape; 5] = [
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Integer),
];

/// Marks a claimed row done outside any other work (a delivery that left the database).
/// False when `worker` no longer holds it.
pub async fn finish(
    db: &Db,
    id: &str,
    worker: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let statement = finish_statement(db.dialect(), id, worker, now)?;
    let mut write = db.begin_records_write().await?;
    let changed = write.run(&statement).await?;
    write.commit().await?;
    Ok(changed == 1)
}

/// Records a failed attempt of a claimed row: due again at `retry_at`, or dead (`None`).
/// False when `worker` no longer holds it.
pub async fn fail(
    db: &Db,
    id: &str,
    worker: &str,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut statement = Statement::new(db.dialect(), OUTBOX);
    match retry_at {
        Some(at) => {
            statement.push("UPDATE keel_outbox SET state = 'pending', due_at = ");
            statement.push_value(&Value::Datetime(at), Storage::Datetime)?;
            statement.push(", finished_at = NULL");
        }
        None => {
            statement.push("UPDATE keel_outbox SET state = 'dead', finished_at = ");
            statement.push_value(&Value::Datetime(now), Storage::Datetime)?;
        }
    }
    statement.push(", claimed_until = NULL, last_error = ");
    statement.push_value(&text(error), Storage::Text)?;
    statement.push(" WHERE id = ");
    statement.push_value(&text(id), Storage::Text)?;
    statement.push(" AND claimed_by = ");
    statement.push_value(&text(worker), Storage::Text)?;
    statement.push(" AND state = 'pending'");
    let mut write = db.begin_records_write().await?;
    let changed = write.run(&statement).await?;
    write.commit().await?;
    Ok(changed == 1)
}

/// Puts a dead row back in the queue, due at `now`, with its attempts counted from zero.
/// False when there is no dead row `id`.
pub async fn retry(db: &Db, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let mut statement = Statement::new(db.dialect(), OUTBOX);
    statement.push(
        "UPDATE keel_outbox SET state = 'pending', attempts = 0, claimed_by = NULL, \
         claimed_until = NULL, finished_at = NULL, due_at = ",
    );
    statement.push_value(&Value::Datetime(now), Storage::Datetime)?;
    statement.push(" WHERE id = ");
    statement.push_value(&text(id), Storage::Text)?;
    statement.push(" AND state = 'dead'");
    let mut write = db.begin_records_write().await?;
    let changed = write.run(&statement).await?;
    write.commit().await?;
    Ok(changed == 1)
}

/// Which outbox rows [`list`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListState {
    /// Waiting for their first delivery.
    Pending,
    /// Pending after at least one failed attempt.
    Failing,
    Dead,
    Done,
}

/// Up to `limit` outbox rows in `state`, newest first, after the row `before` (paging).
pub async fn list(
    db: &Db,
    state: ListState,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Entry>, StoreError> {
    let mut statement = Statement::new(db.dialect(), OUTBOX);
    statement.push(
        "SELECT id, kind, payload, idempotency_key, state, due_at, attempts, last_error, \
         created_at, finished_at FROM keel_outbox WHERE ",
    );
    statement.push(match state {
        ListState::Pending => "state = 'pending' AND last_error IS NULL",
        ListState::Failing => "state = 'pending' AND last_error IS NOT NULL",
        ListState::Dead => "state = 'dead'",
        ListState::Done => "state = 'done'",
    });
    if let Some(before) = before {
        statement.push(" AND id < ");
        statement.push_value(&text(before), Storage::Text)?;
    }
    statement.push(" ORDER BY id DESC LIMIT ");
    statement.push(&limit.to_string());
    let mut pooled = db.acquire().await?;
    let rows = fetch(&mut pooled.connection(), &statement, &ENTRY_SHAPES).await?;
    Ok(rows.into_iter().filter_map(entry).collect())
}

/// The outbox row `id`.
pub async fn get(db: &Db, id: &str) -> Result<Option<Entry>, StoreError> {
    let mut statement = Statement::new(db.dialect(), OUTBOX);
    statement.push(
        "SELECT id, kind, payload, idempotency_key, state, due_at, attempts, last_error, \
         created_at, finished_at FROM keel_outbox WHERE id = ",
    );
    statement.push_value(&text(id), Storage::Text)?;
    let mut pooled = db.acquire().await?;
    let rows = fetch(&mut pooled.connection(), &statement, &ENTRY_SHAPES).await?;
    Ok(rows.into_iter().find_map(entry))
}

/// How many rows are in each state: (pending, dead).
pub async fn counts(db: &Db) -> Result<(i64, i64), StoreError> {
    let mut statement = Statement::new(db.dialect(), OUTBOX);
    statement.push(
        "SELECT (SELECT count(*) FROM keel_outbox WHERE state = 'pending'), \
         (SELECT count(*) FROM keel_outbox WHERE state = 'dead')",
    );
    let mut pooled = db.acquire().await?;
    let rows = fetch(
        &mut pooled.connection(),
        &statement,
        &[Shape::Count, Shape::Count],
    )
    .await?;
    match rows.first().map(Vec::as_slice) {
        Some([Value::Integer(pending), Value::Integer(dead)]) => Ok((*pending, *dead)),
        _ => Ok((0, 0)),
    }
}

const ENTRY_SHAPES: [Shape; 10] = [
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Datetime),
    Shape::Stored(Storage::Integer),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Datetime),
    Shape::Stored(Storage::Datetime),
];

fn entry(row: Vec<Value>) -> Option<Entry> {
    let mut values = row.into_iter();
    let mut next_text = || match values.next() {
        Some(Value::Text(text)) => Some(Some(text)),
        Some(Value::Null) => Some(None),
        _ => None,
    };
    let id = next_text()??;
    let kind = next_text()??;
    let payload = next_text()??;
    let idempotency_key = next_text()??;
    let state = next_text()??;
    let Some(Value::Datetime(due_at)) = values.next() else {
        return None;
    };
    let Some(Value::Integer(attempts)) = values.next() else {
        return None;
    };
    let last_error = match values.next() {
        Some(Value::Text(text)) => Some(text),
        _ => None,
    };
    let Some(Value::Datetime(created_at)) = values.next() else {
        return None;
    };
    let finished_at = match values.next() {
        Some(Value::Datetime(at)) => Some(at),
        _ => None,
    };
    Some(Entry {
        id,
        kind,
        payload,
        idempotency_key,
        state,
        due_at,
        attempts,
        last_error,
        created_at,
        finished_at,
    })
}

/// Notifications of `user_id`, newest first: only unread ones when `unread_only`, and only
/// those older than `before` (paging).
pub async fn notifications(
    db: &Db,
    user_id: &str,
    unread_only: bool,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Notification>, StoreError> {
    let mut statement = notification_select(db.dialect());
    statement.push(" WHERE user_id = ");
    statement.push_value(&text(user_id), Storage::Text)?;
    if unread_only {
        statement.push(" AND read_at IS NULL");
    }
    if let Some(before) = before {
        statement.push(" AND id < ");
        statement.push_value(&text(before), Storage::Text)?;
    }
    statement.push(" ORDER BY id DESC LIMIT ");
    statement.push(&limit.to_string());
    fetch_notifications(db, &statement).await
}

/// Notifications of `user_id` after `after` (a notification id), oldest first: what a
/// stream missed.
pub async fn notifications_after(
    db: &Db,
    user_id: &str,
    after: &str,
    limit: u32,
) -> Result<Vec<Notification>, StoreError> {
    let mut statement = notification_select(db.dialect());
    statement.push(" WHERE user_id = ");
    statement.push_value(&text(user_id), Storage::Text)?;
    statement.push(" AND id > ");
    statement.push_value(&text(after), Storage::Text)?;
    statement.push(" ORDER BY id LIMIT ");
    statement.push(&limit.to_string());
    fetch_notifications(db, &statement).await
}

/// Every notification created at or after `since`, oldest first, at most `limit`: what the
/// stream hub fans out to connected users.
pub async fn notifications_since(
    db: &Db,
    since: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Notification>, StoreError> {
    let mut statement = notification_select(db.dialect());
    statement.push(" WHERE created_at >= ");
    statement.push_value(&Value::Datetime(since), Storage::Datetime)?;
    statement.push(" ORDER BY created_at, id LIMIT ");
    statement.push(&limit.to_string());
    fetch_notifications(db, &statement).await
}

/// Marks notifications of `user_id` read: the one `id`, or all of them (`None`). Returns
/// how many changed.
pub async fn mark_read(
    db: &Db,
    user_id: &str,
    id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut statement = Statement::new(db.dialect(), NOTIFICATIONS);
    statement.push("UPDATE keel_notifications SET read_at = ");
    statement.push_value(&Value::Datetime(now), Storage::Datetime)?;
    statement.push(" WHERE user_id = ");
    statement.push_value(&text(user_id), Storage::Text)?;
    statement.push(" AND read_at IS NULL");
    if let Some(id) = id {
        statement.push(" AND id = ");
        statement.push_value(&text(id), Storage::Text)?;
    }
    let mut write = db.begin_records_write().await?;
    let changed = write.run(&statement).await?;
    write.commit().await?;
    Ok(changed)
}

/// Whether the notification `id` belongs to `user_id`.
pub async fn notification_exists(db: &Db, user_id: &str, id: &str) -> Result<bool, StoreError> {
    let mut statement = notification_select(db.dialect());
    statement.push(" WHERE user_id = ");
    statement.push_value(&text(user_id), Storage::Text)?;
    statement.push(" AND id = ");
    statement.push_value(&text(id), Storage::Text)?;
    Ok(!fetch_notifications(db, &statement).await?.is_empty())
}

fn notification_select(dialect: Dialect) -> Statement {
    let mut statement = Statement::new(dialect, NOTIFICATIONS);
    statement.push(
        "SELECT id, user_id, message, object, record_id, created_at, read_at \
         FROM keel_notifications",
    );
    statement
}

const NOTIFICATION_SHAPES: [Shape; 7] = [
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Datetime),
    Shape::Stored(Storage::Datetime),
];

async fn fetch_notifications(
    db: &Db,
    statement: &Statement,
) -> Result<Vec<Notification>, StoreError> {
    let mut pooled = db.acquire().await?;
    let rows = fetch(&mut pooled.connection(), statement, &NOTIFICATION_SHAPES).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let mut values = row.into_iter();
            let text = |value: Option<Value>| match value {
                Some(Value::Text(text)) => Some(text),
                _ => None,
            };
            let id = text(values.next())?;
            let user_id = text(values.next())?;
            let message = text(values.next())?;
            let object = text(values.next());
            let record_id = text(values.next());
            let Some(Value::Datetime(created_at)) = values.next() else {
                return None;
            };
            let read_at = match values.next() {
                Some(Value::Datetime(at)) => Some(at),
                _ => None,
            };
            Some(Notification {
                id,
                user_id,
                message,
                object,
                record_id,
                created_at,
                read_at,
            })
        })
        .collect())
}

impl RecordWrite {
    /// Runs one statement in this transaction → rows changed.
    pub(crate) async fn run(&mut self, statement: &Statement) -> Result<u64, StoreError> {
        execute(&mut self.connection(), statement)
            .await?
            .map_err(StoreError::query(format!("running `{}`", statement.sql)))
    }

    /// Runs one statement in this transaction → its rows, decoded by `shapes`.
    pub(crate) async fn fetch(
        &mut self,
        statement: &Statement,
        shapes: &[Shape],
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        fetch(&mut self.connection(), statement, shapes).await
    }
}
