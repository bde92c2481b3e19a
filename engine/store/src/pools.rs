//! The pool history (`keel_pool_history`) and the few statements of lead pools (公海) that
//! the record statements do not already cover: serialising one user's claims, counting a
//! user's claims since an instant, the last time a record left a user, selecting rows for
//! update along an index, and a set-based update of many records by id.
//!
//! Every function runs inside the caller's [`RecordWrite`] (so it commits or rolls back
//! with the move it belongs to), except [`history`] and [`claims_since`], which read. This
//! module decides nothing: limits, who may act and what is due are the runtime's
//! (`keel_runtime::pools`, docs/pools.md).

use chrono::{DateTime, Utc};
use keel_meta::{Object, Storage, Value};

use crate::db::{Db, Dialect};
use crate::error::StoreError;
use crate::records::audit_insert_statements;
use crate::records::execute::{Shape, fetch};
use crate::records::statement::Statement;
use crate::records::{AuditEntry, Condition, RecordWrite, Row, SelectQuery};

const TABLE: &str = "keel_pool_history";
const COLUMNS: [&str; 11] = [
    "id",
    "object",
    "record_id",
    "pool",
    "action",
    "actor",
    "from_user",
    "to_user",
    "reason",
    "note",
    "at",
];
/// Rows per INSERT, well under every parameter limit (11 parameters a row).
const ROWS_PER_STATEMENT: usize = 1_000;

/// One row of a record's pool history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PoolEvent {
    /// A UUIDv7: ids sort by time.
    pub id: String,
    pub object: String,
    pub record_id: String,
    pub pool: String,
    /// `claim`, `release`, `assign`, `return`, `move` or `warn`.
    pub action: String,
    /// Who did it: a user id, or `system` for the auto-return sweep.
    pub actor: String,
    /// The owner before.
    pub from_user: Option<String>,
    /// The owner after.
    pub to_user: Option<String>,
    pub reason: Option<String>,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

fn optional_text(value: Option<&str>) -> Value {
    value.map_or(Value::Null, text)
}

impl RecordWrite {
    /// Locks the user row `user_id` until this transaction ends, so that one user's claims
    /// run one after another and each sees the ones before it, which a pool's claim limits
    /// need (`FOR UPDATE` on PostgreSQL;
    /// SQLite's `BEGIN IMMEDIATE` already serialises every writer). Returns whether the
    /// user exists and is active. On SQLite it runs no statement and answers `true`: every
    /// statement there is time other writers wait for the one write lock, and the caller
    /// acts for a signed-in user, whose session is refused once they are deactivated.
    pub async fn lock_user(&mut self, user_id: &str) -> Result<bool, StoreError> {
        if self.dialect() == Dialect::Sqlite {
            return Ok(true);
        }
        let mut statement = Statement::new(self.dialect(), "keel_users");
        statement.push("SELECT \"id\" FROM \"keel_users\" WHERE \"id\" = ");
        statement.push_value(&text(user_id), Storage::Text)?;
        statement.push(" AND \"active\" = TRUE FOR UPDATE");
        let rows = self
            .fetch(&statement, &[Shape::Stored(Storage::Text)])
            .await?;
        Ok(!rows.is_empty())
    }

    /// How many `action` rows of `pool` name `to_user` as the owner after, at or after
    /// `since`: a user's claims today.
    pub async fn count_pool_actions(
        &mut self,
        pool: &str,
        to_user: &str,
        action: &str,
        since: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let statement = count_statement(self.dialect(), pool, to_user, action, since)?;
        let rows = self.fetch(&statement, &[Shape::Count]).await?;
        Ok(match rows.first().and_then(|row| row.first()) {
            Some(Value::Integer(count)) => *count,
            _ => 0,
        })
    }

    /// When the record `record_id` of `object` last left `user` (a return or a release
    /// with them as the owner before), if ever: the reclaim cooldown.
    pub async fn last_left(
        &mut self,
        object: &str,
        record_id: &str,
        user: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut statement = Statement::new(self.dialect(), TABLE);
        statement.push("SELECT max(\"at\") FROM \"keel_pool_history\" WHERE \"object\" = ");
        statement.push_value(&text(object), Storage::Text)?;
        statement.push(" AND \"record_id\" = ");
        statement.push_value(&text(record_id), Storage::Text)?;
        statement.push(" AND \"from_user\" = ");
        statement.push_value(&text(user), Storage::Text)?;
        statement.push(" AND \"action\" IN ('return', 'release')");
        let rows = self
            .fetch(&statement, &[Shape::Stored(Storage::Datetime)])
            .await?;
        Ok(match rows.first().and_then(|row| row.first()) {
            Some(Value::Datetime(at)) => Some(*at),
            _ => None,
        })
    }

    /// The latest `warn` row of each of `record_ids` (records of `object`), as
    /// (record id, when): whether an owner was warned in the current holding.
    pub async fn last_warnings(
        &mut self,
        object: &str,
        record_ids: &[String],
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let mut found = Vec::new();
        for chunk in record_ids.chunks(ROWS_PER_STATEMENT) {
            let mut statement = Statement::new(self.dialect(), TABLE);
            statement.push(
                "SELECT \"record_id\", max(\"at\") FROM \"keel_pool_history\" WHERE \"object\" = ",
            );
            statement.push_value(&text(object), Storage::Text)?;
            statement.push(" AND \"action\" = 'warn' AND \"record_id\" IN (");
            for (index, id) in chunk.iter().enumerate() {
                if index > 0 {
                    statement.push(", ");
                }
                statement.push_value(&text(id), Storage::Text)?;
            }
            statement.push(") GROUP BY \"record_id\"");
            let rows = self
                .fetch(
                    &statement,
                    &[
                        Shape::Stored(Storage::Text),
                        Shape::Stored(Storage::Datetime),
                    ],
                )
                .await?;
            for row in rows {
                if let [Value::Text(id), Value::Datetime(at)] = row.as_slice() {
                    found.push((id.clone(), *at));
                }
            }
        }
        Ok(found)
    }

    /// Appends `events` to the pool history, in multi-row INSERTs.
    pub async fn insert_pool_history(&mut self, events: &[PoolEvent]) -> Result<(), StoreError> {
        for statement in history_statements(self.dialect(), events)? {
            self.run(&statement).await?;
        }
        Ok(())
    }

    /// Appends `audit` to the audit trail and `events` to the pool history in one round
    /// trip ([`Statement::batch`]): what the auto-return sweep writes beside a chunk's
    /// set-based update (a single move uses [`RecordWrite::move_record`]).
    pub async fn insert_audit_and_pool_history(
        &mut self,
        audit: &[AuditEntry],
        events: &[PoolEvent],
    ) -> Result<(), StoreError> {
        let mut statements = audit_insert_statements(self.dialect(), audit)?;
        statements.extend(history_statements(self.dialect(), events)?);
        if let Some(batch) = Statement::batch(statements) {
            self.run(&batch).await?;
        }
        Ok(())
    }

    /// A pool move of one record in one round trip: `audit` and the pool history `events`
    /// inserted, then the versioned update of `changes` (see [`RecordWrite::update`]).
    /// `false` when the record is no longer at `expected_version`: the inserts are in this
    /// transaction too, so the caller rolls it back (drops it) rather than going on.
    pub async fn move_record(
        &mut self,
        object: &Object,
        id: &str,
        expected_version: i64,
        changes: &Row,
        audit: &[AuditEntry],
        events: &[PoolEvent],
    ) -> Result<bool, StoreError> {
        let mut before = audit_insert_statements(self.dialect(), audit)?;
        before.extend(history_statements(self.dialect(), events)?);
        self.update_after(object, id, expected_version, changes, before)
            .await
    }

    /// [`RecordWrite::select`], locking the rows it returns until this transaction ends
    /// (`FOR UPDATE` on PostgreSQL, which also checks each locked row against the condition
    /// again, so a row another transaction just changed is skipped when it no longer
    /// matches).
    pub async fn select_for_update(
        &mut self,
        query: &SelectQuery<'_>,
    ) -> Result<Vec<Row>, StoreError> {
        let plan = crate::records::select::select_statement(
            self.dialect(),
            query,
            crate::records::select::RowLock::Update,
        )?;
        crate::records::select::run_select(&mut self.connection(), &plan).await
    }

    /// Applies `changes` to every live record of `object` whose id is in `ids` and for which
    /// `condition` still holds, bumping each one's version: one statement per 1,000 ids.
    /// Returns how many records changed. `changes` may not name `id` or `version`, nor a
    /// duplicate-key field (their keys are not brought in line here).
    pub async fn update_ids(
        &mut self,
        object: &Object,
        ids: &[String],
        condition: &Condition,
        changes: &Row,
    ) -> Result<u64, StoreError> {
        let columns = crate::records::columns::ObjectColumns::of(object);
        let mut changed = 0;
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut statement = Statement::new(self.dialect(), columns.table());
            statement.push("UPDATE ");
            statement.push_identifier(columns.table());
            statement.push(" SET ");
            for (name, value) in changes {
                if name == "id" || name == "version" {
                    return Err(statement.invalid(format!("`{name}` is kept by the store")));
                }
                let storage = columns.storage(name)?;
                statement.push_identifier(name);
                statement.push(" = ");
                statement.push_value(value, storage)?;
                statement.push(", ");
            }
            statement.push("\"version\" = \"version\" + 1 WHERE \"deleted_at\" IS NULL AND ");
            let all = Condition::All(vec![
                Condition::In {
                    column: "id".to_owned(),
                    values: chunk.iter().map(|id| text(id)).collect(),
                },
                condition.clone(),
            ]);
            crate::records::condition::push_condition(&mut statement, &columns, &all)?;
            changed += self.run(&statement).await?;
        }
        Ok(changed)
    }
}

/// The multi-row INSERTs of `events` into the pool history.
fn history_statements(
    dialect: Dialect,
    events: &[PoolEvent],
) -> Result<Vec<Statement>, StoreError> {
    let mut statements = Vec::new();
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut statement = Statement::new(dialect, TABLE);
        statement.push("INSERT INTO \"keel_pool_history\" (");
        for (index, column) in COLUMNS.iter().enumerate() {
            if index > 0 {
                statement.push(", ");
            }
            statement.push_identifier(column);
        }
        statement.push(") VALUES ");
        for (row, event) in chunk.iter().enumerate() {
            if row > 0 {
                statement.push(", ");
            }
            let values = [
                text(&event.id),
                text(&event.object),
                text(&event.record_id),
                text(&event.pool),
                text(&event.action),
                text(&event.actor),
                optional_text(event.from_user.as_deref()),
                optional_text(event.to_user.as_deref()),
                optional_text(event.reason.as_deref()),
                optional_text(event.note.as_deref()),
            ];
            statement.push("(");
            for value in &values {
                statement.push_value(value, Storage::Text)?;
                statement.push(", ");
            }
            statement.push_value(&Value::Datetime(event.at), Storage::Datetime)?;
            statement.push(")");
        }
        statements.push(statement);
    }
    Ok(statements)
}

fn count_statement(
    dialect: Dialect,
    pool: &str,
    to_user: &str,
    action: &str,
    since: DateTime<Utc>,
) -> Result<Statement, StoreError> {
    let mut statement = Statement::new(dialect, TABLE);
    statement.push("SELECT count(*) FROM \"keel_pool_history\" WHERE \"to_user\" = ");
    statement.push_value(&text(to_user), Storage::Text)?;
    statement.push(" AND \"pool\" = ");
    statement.push_value(&text(pool), Storage::Text)?;
    statement.push(" AND \"action\" = ");
    statement.push_value(&text(action), Storage::Text)?;
    statement.push(" AND \"at\" >= ");
    statement.push_value(&Value::Datetime(since), Storage::Datetime)?;
    Ok(statement)
}

/// How many `action` rows of `pool` name `to_user` as the owner after, at or after `since`
/// (outside a transaction: for showing a user their claims today).
pub async fn count_pool_actions(
    db: &Db,
    pool: &str,
    to_user: &str,
    action: &str,
    since: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let statement = count_statement(db.dialect(), pool, to_user, action, since)?;
    let mut pooled = db.acquire().await?;
    let rows = fetch(&mut pooled.connection(), &statement, &[Shape::Count]).await?;
    Ok(match rows.first().and_then(|row| row.first()) {
        Some(Value::Integer(count)) => *count,
        _ => 0,
    })
}

/// The pool history of one record, oldest first.
pub async fn history(db: &Db, object: &str, record_id: &str) -> Result<Vec<PoolEvent>, StoreError> {
    let mut statement = Statement::new(db.dialect(), TABLE);
    statement.push("SELECT ");
    for (index, column) in COLUMNS.iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.push_identifier(column);
    }
    statement.push(" FROM \"keel_pool_history\" WHERE \"object\" = ");
    statement.push_value(&text(object), Storage::Text)?;
    statement.push(" AND \"record_id\" = ");
    statement.push_value(&text(record_id), Storage::Text)?;
    statement.push(" ORDER BY \"at\", \"id\"");
    let mut shapes = vec![Shape::Stored(Storage::Text); 10];
    shapes.push(Shape::Stored(Storage::Datetime));
    let mut pooled = db.acquire().await?;
    let rows = fetch(&mut pooled.connection(), &statement, &shapes).await?;
    rows.into_iter().map(event_of_row).collect()
}

fn event_of_row(row: Vec<Value>) -> Result<PoolEvent, StoreError> {
    let unreadable = |row: &[Value]| StoreError::UnreadableValue {
        what: format!("a pool history row {row:?}"),
    };
    let required = |value: &Value| match value {
        Value::Text(text) => Some(text.clone()),
        _ => None,
    };
    let (Some(id), Some(object), Some(record_id), Some(pool), Some(action), Some(actor)) = (
        row.first().and_then(required),
        row.get(1).and_then(required),
        row.get(2).and_then(required),
        row.get(3).and_then(required),
        row.get(4).and_then(required),
        row.get(5).and_then(required),
    ) else {
        return Err(unreadable(&row));
    };
    let Some(Value::Datetime(at)) = row.get(10) else {
        return Err(unreadable(&row));
    };
    Ok(PoolEvent {
        id,
        object,
        record_id,
        pool,
        action,
        actor,
        from_user: row.get(6).and_then(required),
        to_user: row.get(7).and_then(required),
        reason: row.get(8).and_then(required),
        note: row.get(9).and_then(required),
        at: *at,
    })
}
