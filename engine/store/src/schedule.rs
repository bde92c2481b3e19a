//! The scheduler's tables: run records (`keel_rule_runs`) and how far each job's schedule
//! has been considered (`keel_schedules`). See docs/scheduler.md.
//!
//! Exactly-once lives here. A process claims an occurrence by inserting its run under the
//! id `<job>|<due_at>` with `INSERT … ON CONFLICT (id) DO NOTHING` — the same SQL on both
//! databases, and exactly one inserter sees its row written. A run holds a lease
//! (`lease_until`) that its process renews while it works; a run still `running` after its
//! lease ran out belongs to a process that died, and [`take_over`] hands it to another
//! process with one conditional `UPDATE` (again, exactly one process wins). Progress of a
//! run over records (its cursor and counts) is written by [`RecordWrite::advance_run`] in
//! the transaction that queues the chunk's work, conditional on still holding the run, so a
//! chunk's work and the cursor past it commit together or not at all.
//!
//! This module decides nothing: the runtime says which occurrences are due, what a run
//! does and when a lease is long enough.

use chrono::{DateTime, Utc};
use keel_meta::{Storage, Value};

use crate::db::Db;
use crate::error::StoreError;
use crate::records::RecordWrite;
use crate::records::execute::{Shape, fetch};
use crate::records::statement::Statement;

const RUNS: &str = "keel_rule_runs";
const SCHEDULES: &str = "keel_schedules";

/// `state` of a run being worked on.
pub const RUNNING: &str = "running";
/// `state` of a run that finished (with or without per-record errors).
pub const DONE: &str = "done";
/// `state` of a run that could not finish (its job failed, or it was retried too often).
pub const FAILED: &str = "failed";
/// `state` of the record of occurrences let go by the misfire policy `skip`.
pub const SKIPPED: &str = "skipped";

/// A run to claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub id: String,
    pub job: String,
    /// `schedule` or `pool`.
    pub kind: String,
    pub due_at: DateTime<Utc>,
    pub manual: bool,
    pub catch_up: bool,
    /// Occurrences this run stands for beyond its own (a catch-up run).
    pub missed: i64,
    /// [`RUNNING`] (with a lease) or [`SKIPPED`] (finished at once).
    pub state: String,
    pub process: String,
    pub started_at: DateTime<Utc>,
    pub lease_until: Option<DateTime<Utc>>,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: String,
    pub job: String,
    pub kind: String,
    pub due_at: DateTime<Utc>,
    pub manual: bool,
    pub catch_up: bool,
    pub missed: i64,
    pub state: String,
    pub process: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub lease_until: Option<DateTime<Utc>>,
    /// Processes that have worked on it (1, plus one per take-over).
    pub attempts: i64,
    pub matched: i64,
    pub changed: i64,
    pub errors: i64,
    pub error: Option<String>,
    /// The last record id done, to resume after.
    pub cursor: Option<String>,
}

/// Counts a run adds up as it goes, or ends with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub matched: i64,
    pub changed: i64,
    pub errors: i64,
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

fn at(value: DateTime<Utc>) -> Value {
    Value::Datetime(value)
}

fn optional_at(value: Option<DateTime<Utc>>) -> Value {
    value.map_or(Value::Null, Value::Datetime)
}

const COLUMNS: &str = "id, job, kind, due_at, manual, catch_up, missed, state, process, \
                       started_at, finished_at, lease_until, attempts, matched, changed, \
                       errors, error, cursor";

const SHAPES: [Shape; 18] = [
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Datetime),
    Shape::Stored(Storage::Boolean),
    Shape::Stored(Storage::Boolean),
    Shape::Stored(Storage::Integer),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Datetime),
    Shape::Stored(Storage::Datetime),
    Shape::Stored(Storage::Datetime),
    Shape::Stored(Storage::Integer),
    Shape::Stored(Storage::Integer),
    Shape::Stored(Storage::Integer),
    Shape::Stored(Storage::Integer),
    Shape::Stored(Storage::Text),
    Shape::Stored(Storage::Text),
];

fn run_from(row: Vec<Value>) -> Option<Run> {
    let mut values = row.into_iter();
    let mut next = || values.next().unwrap_or(Value::Null);
    let text = |value: Value| match value {
        Value::Text(text) => Some(text),
        _ => None,
    };
    let datetime = |value: Value| match value {
        Value::Datetime(at) => Some(at),
        _ => None,
    };
    let integer = |value: Value| match value {
        Value::Integer(number) => number,
        _ => 0,
    };
    let flag = |value: Value| matches!(value, Value::Boolean(true));
    Some(Run {
        id: text(next())?,
        job: text(next())?,
        kind: text(next())?,
        due_at: datetime(next())?,
        manual: flag(next()),
        catch_up: flag(next()),
        missed: integer(next()),
        state: text(next())?,
        process: text(next())?,
        started_at: datetime(next())?,
        finished_at: datetime(next()),
        lease_until: datetime(next()),
        attempts: integer(next()),
        matched: integer(next()),
        changed: integer(next()),
        errors: integer(next()),
        error: text(next()),
        cursor: text(next()),
    })
}

async fn read_runs(db: &Db, statement: &Statement) -> Result<Vec<Run>, StoreError> {
    let mut pooled = db.acquire().await?;
    let rows = fetch(&mut pooled.connection(), statement, &SHAPES).await?;
    Ok(rows.into_iter().filter_map(run_from).collect())
}

async fn write_one(db: &Db, statement: &Statement) -> Result<u64, StoreError> {
    let mut write = db.begin_records_write().await?;
    let changed = write.run(statement).await?;
    write.commit().await?;
    Ok(changed)
}

/// Writes `run` unless a run with its id exists → whether this call wrote it (won the
/// claim).
pub async fn claim(db: &Db, run: &NewRun) -> Result<bool, StoreError> {
    let mut statement = Statement::new(db.dialect(), RUNS);
    statement.push(
        "INSERT INTO keel_rule_runs (id, job, kind, due_at, manual, catch_up, missed, state, \
         process, started_at, finished_at, lease_until, attempts, matched, changed, errors) \
         VALUES (",
    );
    let finished = (run.state != RUNNING).then_some(run.started_at);
    let values = [
        (text(&run.id), Storage::Text),
        (text(&run.job), Storage::Text),
        (text(&run.kind), Storage::Text),
        (at(run.due_at), Storage::Datetime),
        (Value::Boolean(run.manual), Storage::Boolean),
        (Value::Boolean(run.catch_up), Storage::Boolean),
        (Value::Integer(run.missed), Storage::Integer),
        (text(&run.state), Storage::Text),
        (text(&run.process), Storage::Text),
        (at(run.started_at), Storage::Datetime),
        (optional_at(finished), Storage::Datetime),
        (optional_at(run.lease_until), Storage::Datetime),
    ];
    for (index, (value, storage)) in values.iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.push_value(value, *storage)?;
    }
    statement.push(", 1, 0, 0, 0) ON CONFLICT (id) DO NOTHING");
    Ok(write_one(db, &statement).await? == 1)
}

/// Extends the lease of the running run `id` held by `process` → false when it no longer
/// holds it (another process took it over, or it is finished).
pub async fn renew(
    db: &Db,
    id: &str,
    process: &str,
    lease_until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut statement = Statement::new(db.dialect(), RUNS);
    statement.push("UPDATE keel_rule_runs SET lease_until = ");
    statement.push_value(&at(lease_until), Storage::Datetime)?;
    push_held(&mut statement, id, process)?;
    Ok(write_one(db, &statement).await? == 1)
}

/// ` WHERE id = … AND process = … AND state = 'running'`.
fn push_held(statement: &mut Statement, id: &str, process: &str) -> Result<(), StoreError> {
    statement.push(" WHERE id = ");
    statement.push_value(&text(id), Storage::Text)?;
    statement.push(" AND process = ");
    statement.push_value(&text(process), Storage::Text)?;
    statement.push(" AND state = 'running'");
    Ok(())
}

/// Up to `limit` runs still `running` whose lease ran out before `now` (their process
/// died), oldest due first.
pub async fn expired(db: &Db, now: DateTime<Utc>, limit: u32) -> Result<Vec<Run>, StoreError> {
    let mut statement = Statement::new(db.dialect(), RUNS);
    statement.push(&format!(
        "SELECT {COLUMNS} FROM keel_rule_runs WHERE state = 'running' AND lease_until < "
    ));
    statement.push_value(&at(now), Storage::Datetime)?;
    statement.push(" ORDER BY due_at, id LIMIT ");
    statement.push(&limit.to_string());
    read_runs(db, &statement).await
}

/// Takes the expired run `id` over for `process` until `lease_until`, counting an attempt →
/// the run as taken, or `None` when another process was first (or its owner renewed it).
pub async fn take_over(
    db: &Db,
    id: &str,
    process: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Option<Run>, StoreError> {
    let mut statement = Statement::new(db.dialect(), RUNS);
    statement.push("UPDATE keel_rule_runs SET process = ");
    statement.push_value(&text(process), Storage::Text)?;
    statement.push(", lease_until = ");
    statement.push_value(&at(lease_until), Storage::Datetime)?;
    statement.push(", attempts = attempts + 1 WHERE id = ");
    statement.push_value(&text(id), Storage::Text)?;
    statement.push(" AND state = 'running' AND lease_until < ");
    statement.push_value(&at(now), Storage::Datetime)?;
    statement.push(&format!(" RETURNING {COLUMNS}"));
    let mut write = db.begin_records_write().await?;
    let rows = write.fetch(&statement, &SHAPES).await?;
    write.commit().await?;
    Ok(rows.into_iter().find_map(run_from))
}

impl RecordWrite {
    /// Records a chunk of the run `id` in this transaction: the cursor moves to `cursor`,
    /// `counts` are added, and the lease runs to `lease_until`. False — and the caller rolls
    /// back — when `process` no longer holds the run.
    pub async fn advance_run(
        &mut self,
        id: &str,
        process: &str,
        cursor: &str,
        counts: Counts,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut statement = Statement::new(self.dialect(), RUNS);
        statement.push("UPDATE keel_rule_runs SET cursor = ");
        statement.push_value(&text(cursor), Storage::Text)?;
        statement.push(", matched = matched + ");
        statement.push_value(&Value::Integer(counts.matched), Storage::Integer)?;
        statement.push(", changed = changed + ");
        statement.push_value(&Value::Integer(counts.changed), Storage::Integer)?;
        statement.push(", errors = errors + ");
        statement.push_value(&Value::Integer(counts.errors), Storage::Integer)?;
        statement.push(", lease_until = ");
        statement.push_value(&at(lease_until), Storage::Datetime)?;
        push_held(&mut statement, id, process)?;
        Ok(self.run(&statement).await? == 1)
    }
}

/// Ends the run `id` held by `process` in `state` ([`DONE`] or [`FAILED`]), adding `counts`
/// → false when `process` no longer holds it.
pub async fn finish(
    db: &Db,
    id: &str,
    process: &str,
    state: &str,
    counts: Counts,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut statement = Statement::new(db.dialect(), RUNS);
    statement.push("UPDATE keel_rule_runs SET state = ");
    statement.push_value(&text(state), Storage::Text)?;
    statement.push(", finished_at = ");
    statement.push_value(&at(now), Storage::Datetime)?;
    statement.push(", lease_until = NULL, error = ");
    statement.push_value(&error.map_or(Value::Null, text), Storage::Text)?;
    statement.push(", matched = matched + ");
    statement.push_value(&Value::Integer(counts.matched), Storage::Integer)?;
    statement.push(", changed = changed + ");
    statement.push_value(&Value::Integer(counts.changed), Storage::Integer)?;
    statement.push(", errors = errors + ");
    statement.push_value(&Value::Integer(counts.errors), Storage::Integer)?;
    push_held(&mut statement, id, process)?;
    Ok(write_one(db, &statement).await? == 1)
}

/// Ends an expired run that was retried too often, whoever held it last.
pub async fn give_up(
    db: &Db,
    id: &str,
    error: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut statement = Statement::new(db.dialect(), RUNS);
    statement
        .push("UPDATE keel_rule_runs SET state = 'failed', lease_until = NULL, finished_at = ");
    statement.push_value(&at(now), Storage::Datetime)?;
    statement.push(", error = ");
    statement.push_value(&text(error), Storage::Text)?;
    statement.push(" WHERE id = ");
    statement.push_value(&text(id), Storage::Text)?;
    statement.push(" AND state = 'running' AND lease_until < ");
    statement.push_value(&at(now), Storage::Datetime)?;
    Ok(write_one(db, &statement).await? == 1)
}

/// The run `id`.
pub async fn run(db: &Db, id: &str) -> Result<Option<Run>, StoreError> {
    let mut statement = Statement::new(db.dialect(), RUNS);
    statement.push(&format!("SELECT {COLUMNS} FROM keel_rule_runs WHERE id = "));
    statement.push_value(&text(id), Storage::Text)?;
    Ok(read_runs(db, &statement).await?.into_iter().next())
}

/// Up to `limit` runs of `job`, newest due first (then id, descending), strictly after
/// the run `before` in that order (paging: the last run of the previous page).
pub async fn runs(
    db: &Db,
    job: &str,
    before: Option<(DateTime<Utc>, &str)>,
    limit: u32,
) -> Result<Vec<Run>, StoreError> {
    let mut statement = Statement::new(db.dialect(), RUNS);
    statement.push(&format!(
        "SELECT {COLUMNS} FROM keel_rule_runs WHERE job = "
    ));
    statement.push_value(&text(job), Storage::Text)?;
    if let Some((due_at, id)) = before {
        statement.push(" AND (due_at < ");
        statement.push_value(&at(due_at), Storage::Datetime)?;
        statement.push(" OR (due_at = ");
        statement.push_value(&at(due_at), Storage::Datetime)?;
        statement.push(" AND id < ");
        statement.push_value(&text(id), Storage::Text)?;
        statement.push("))");
    }
    statement.push(" ORDER BY due_at DESC, id DESC LIMIT ");
    statement.push(&limit.to_string());
    read_runs(db, &statement).await
}

/// How far the schedule of `job` has been considered; `None` before its first tick.
pub async fn checked_until(db: &Db, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    let mut statement = Statement::new(db.dialect(), SCHEDULES);
    statement.push("SELECT checked_until FROM keel_schedules WHERE id = ");
    statement.push_value(&text(job), Storage::Text)?;
    let mut pooled = db.acquire().await?;
    let rows = fetch(
        &mut pooled.connection(),
        &statement,
        &[Shape::Stored(Storage::Datetime)],
    )
    .await?;
    Ok(rows.into_iter().flatten().find_map(|value| match value {
        Value::Datetime(at) => Some(at),
        _ => None,
    }))
}

/// Starts the schedule of `job` at `from` unless it has started already (a first start
/// considers nothing before it).
pub async fn start_schedule(db: &Db, job: &str, from: DateTime<Utc>) -> Result<(), StoreError> {
    let mut statement = Statement::new(db.dialect(), SCHEDULES);
    statement.push("INSERT INTO keel_schedules (id, checked_until) VALUES (");
    statement.push_value(&text(job), Storage::Text)?;
    statement.push(", ");
    statement.push_value(&at(from), Storage::Datetime)?;
    statement.push(") ON CONFLICT (id) DO NOTHING");
    write_one(db, &statement).await.map(drop)
}

/// Moves `checked_until` of `job` forward to `until`; never back (a slower process that
/// considered less leaves it where it is).
pub async fn advance(db: &Db, job: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
    let mut statement = Statement::new(db.dialect(), SCHEDULES);
    statement.push("UPDATE keel_schedules SET checked_until = ");
    statement.push_value(&at(until), Storage::Datetime)?;
    statement.push(" WHERE id = ");
    statement.push_value(&text(job), Storage::Text)?;
    statement.push(" AND checked_until < ");
    statement.push_value(&at(until), Storage::Datetime)?;
    write_one(db, &statement).await.map(drop)
}

/// `checked_until` of every job that has started: one read per tick instead of one per job.
pub async fn all_checked(db: &Db) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
    let mut statement = Statement::new(db.dialect(), SCHEDULES);
    statement.push("SELECT id, checked_until FROM keel_schedules");
    let mut pooled = db.acquire().await?;
    let rows = fetch(
        &mut pooled.connection(),
        &statement,
        &[
            Shape::Stored(Storage::Text),
            Shape::Stored(Storage::Datetime),
        ],
    )
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match row.as_slice() {
            [Value::Text(job), Value::Datetime(at)] => Some((job.clone(), *at)),
            _ => None,
        })
        .collect())
}
