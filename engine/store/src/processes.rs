//! The rows of sales processes (docs/processes.md): the stage history
//! (`keel_stage_history`, one row per stage change, the source of the funnel) and approvals
//! (`keel_approvals`, one row per requested transition that needs approval, and
//! `keel_approval_tasks`, one row per approver and step).
//!
//! Writes run inside the caller's [`RecordWrite`], so they commit or roll back with the
//! record change they belong to; the free functions read. This module decides nothing: which
//! transitions are allowed, who approves and when a step is decided are the runtime's
//! (`keel_runtime::processes`).

use chrono::{DateTime, Utc};
use keel_meta::{Storage, Value};

use crate::db::{Db, Dialect};
use crate::error::StoreError;
use crate::records::RecordWrite;
use crate::records::execute::{Shape, fetch};
use crate::records::statement::Statement;

const HISTORY: &str = "keel_stage_history";
const APPROVALS: &str = "keel_approvals";
const TASKS: &str = "keel_approval_tasks";

const HISTORY_COLUMNS: [(&str, Storage); 10] = [
    ("id", Storage::Text),
    ("object", Storage::Text),
    ("record_id", Storage::Text),
    ("process", Storage::Text),
    ("from_stage", Storage::Text),
    ("to_stage", Storage::Text),
    ("at", Storage::Datetime),
    ("by_user", Storage::Text),
    ("comment", Storage::Text),
    ("seconds_in_from", Storage::Integer),
];

const APPROVAL_COLUMNS: [(&str, Storage); 14] = [
    ("id", Storage::Text),
    ("object", Storage::Text),
    ("record_id", Storage::Text),
    ("process", Storage::Text),
    ("from_stage", Storage::Text),
    ("stage", Storage::Text),
    ("state", Storage::Text),
    ("step", Storage::Integer),
    ("requested_by", Storage::Text),
    ("requested_at", Storage::Datetime),
    ("comment", Storage::Text),
    ("decided_at", Storage::Datetime),
    ("decided_by", Storage::Text),
    ("decision_comment", Storage::Text),
];

const TASK_COLUMNS: [(&str, Storage); 10] = [
    ("id", Storage::Text),
    ("approval_id", Storage::Text),
    ("step", Storage::Integer),
    ("approver", Storage::Text),
    ("state", Storage::Text),
    ("created_at", Storage::Datetime),
    ("decided_at", Storage::Datetime),
    ("comment", Storage::Text),
    ("reminded_at", Storage::Datetime),
    ("reminders", Storage::Integer),
];

/// The column of a process object's table that sums up each record's stage history for the
/// funnel (docs/reports.md), so that the funnel reads the cohort's rows and not their
/// history: a JSON object from stage key to `[entered, stays, seconds]` — how many times the
/// record entered the stage, how many of its stays there ended with a known duration, and
/// their total seconds. NULL (or `{}`) for a record without history. A create starts it and
/// every move updates it in place, each in the round trip of its history row
/// ([`RecordWrite::insert_stage_entry`], [`RecordWrite::insert_stage_move`]); the migration
/// that adds the column fills it in from the history ([`stage_summary_backfill`]).
pub const STAGE_SUMMARY: &str = "keel_stages";

/// The parts of a stage's entry in the summary, `[entered, stays, seconds]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SummaryPart {
    Entered = 0,
    Stays = 1,
    Seconds = 2,
}

/// One number of the summary in `column` (SQL: a column or an alias) for stage `key`, as an
/// integer (NULL when the stage is not in it). The key is a bound parameter.
pub(crate) fn push_summary_number(
    statement: &mut Statement,
    column: &str,
    key: &str,
    part: SummaryPart,
) -> Result<(), StoreError> {
    let part = part as u8;
    match statement.dialect {
        Dialect::Sqlite => {
            statement.push(&format!("json_extract({column}, "));
            statement.push_value(&text(&format!("$.\"{key}\"[{part}]")), Storage::Text)?;
            statement.push(")");
        }
        Dialect::Postgres => {
            statement.push(&format!("CAST({column} -> "));
            statement.push_value(&text(key), Storage::Text)?;
            statement.push(&format!(" ->> {part} AS BIGINT)"));
        }
    }
    Ok(())
}

/// The summary ([`STAGE_SUMMARY`]) of the record of `object` whose id is `"<object>"."id"`,
/// computed from its stage history (every process: an object has at most one): a scalar
/// subquery for `UPDATE "<object>" SET keel_stages = …`. SQL text without parameters
/// (`object` is an identifier, written as a literal), so a migration step can carry it.
fn stage_summary_sql(dialect: Dialect, object: &str) -> String {
    let (aggregate, array) = match dialect {
        Dialect::Sqlite => ("json_group_object", "json_array"),
        Dialect::Postgres => ("jsonb_object_agg", "jsonb_build_array"),
    };
    let rows = |what: &str, filter: &str| {
        format!(
            "SELECT {what} FROM {HISTORY} keel_h WHERE keel_h.object = {} AND \
             keel_h.record_id = {}.\"id\"{filter}",
            crate::layout::string_literal(object),
            crate::naming::quote(object),
        )
    };
    format!(
        "(SELECT {aggregate}(keel_k.stage, {array}(keel_k.entered, keel_k.stays, \
         keel_k.seconds)) FROM (SELECT keel_u.stage AS stage, sum(keel_u.entered) AS entered, \
         sum(keel_u.stays) AS stays, sum(keel_u.seconds) AS seconds FROM ({} UNION ALL {}) \
         keel_u GROUP BY keel_u.stage) keel_k)",
        rows(
            "keel_h.to_stage AS stage, 1 AS entered, 0 AS stays, 0 AS seconds",
            ""
        ),
        rows(
            "keel_h.from_stage, 0, 1, keel_h.seconds_in_from",
            " AND keel_h.from_stage IS NOT NULL AND keel_h.seconds_in_from IS NOT NULL"
        ),
    )
}

/// `UPDATE "<object>" SET keel_stages = <its summary>`, for the records that have stage
/// history: the migration step that adds the column runs it to fill the column in, and
/// [`crate::reports::seed_stage_history`] after writing history directly.
pub fn stage_summary_backfill(dialect: Dialect, object: &str) -> String {
    format!(
        "UPDATE {table} SET {STAGE_SUMMARY} = {summary} WHERE \"id\" IN \
         (SELECT record_id FROM {HISTORY} WHERE object = {name})",
        table = crate::naming::quote(object),
        summary = stage_summary_sql(dialect, object),
        name = crate::layout::string_literal(object),
    )
}

/// `UPDATE "<object>" SET keel_stages = …` for the move `entry`: the summary it had, with
/// one more entry into `to_stage` and, when `seconds` (SQL for the stay the move ends, NULL
/// when unknown) is not NULL, one more completed stay of that length in `from_stage`. The
/// same figures [`stage_summary_sql`] computes from the whole history, kept in constant time
/// however long the history grows.
fn summary_update(
    dialect: Dialect,
    entry: &StageEntry,
    seconds: &Statement,
) -> Result<Statement, StoreError> {
    let mut statement = Statement::new(dialect, &entry.object);
    statement.push(&format!(
        "UPDATE {} SET {STAGE_SUMMARY} = ",
        crate::naming::quote(&entry.object)
    ));
    statement.push(match dialect {
        Dialect::Sqlite => "json_patch(coalesce(keel_stages, '{}'), json_object(",
        Dialect::Postgres => "coalesce(keel_stages, '{}'::jsonb) || jsonb_build_object(",
    });
    // (stage, entered, left): one entry per stage, so that a move within one stage (were a
    // process to allow it) counts both.
    let mut changes = vec![(entry.to_stage.as_str(), true, false)];
    if let Some(from) = entry.from_stage.as_deref() {
        match changes.iter_mut().find(|(stage, ..)| *stage == from) {
            Some(change) => change.2 = true,
            None => changes.push((from, false, true)),
        }
    }
    for (position, (stage, entered, left)) in changes.into_iter().enumerate() {
        if position > 0 {
            statement.push(", ");
        }
        statement.push_value(&text(stage), Storage::Text)?;
        statement.push(match dialect {
            Dialect::Sqlite => ", json_array(",
            Dialect::Postgres => ", jsonb_build_array(",
        });
        for part in [
            SummaryPart::Entered,
            SummaryPart::Stays,
            SummaryPart::Seconds,
        ] {
            if part != SummaryPart::Entered {
                statement.push(", ");
            }
            statement.push("coalesce(");
            push_summary_number(&mut statement, STAGE_SUMMARY, stage, part)?;
            statement.push(", 0)");
            match part {
                SummaryPart::Entered if entered => statement.push(" + 1"),
                SummaryPart::Stays if left => {
                    statement.push(" + CASE WHEN ");
                    statement.append_copy(seconds);
                    statement.push(" IS NULL THEN 0 ELSE 1 END");
                }
                SummaryPart::Seconds if left => {
                    statement.push(" + coalesce(");
                    statement.append_copy(seconds);
                    statement.push(", 0)");
                }
                _ => {}
            }
        }
        statement.push(")");
    }
    statement.push(match dialect {
        Dialect::Sqlite => ")) WHERE \"id\" = ",
        Dialect::Postgres => ") WHERE \"id\" = ",
    });
    statement.push_value(&text(&entry.record_id), Storage::Text)?;
    Ok(statement)
}

/// One stage change of a record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StageEntry {
    /// A UUIDv7: ids sort by time.
    pub id: String,
    pub object: String,
    pub record_id: String,
    pub process: String,
    /// `None` for the row written when the record was created in its first stage.
    pub from_stage: Option<String>,
    pub to_stage: String,
    pub at: DateTime<Utc>,
    pub by_user: Option<String>,
    pub comment: Option<String>,
    /// Seconds the record spent in `from_stage` (from the previous row's `at`).
    pub seconds_in_from: Option<i64>,
}

/// One approval: a transition into `stage` waiting for (or done with) its approvers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApprovalRow {
    pub id: String,
    pub object: String,
    pub record_id: String,
    pub process: String,
    /// The stage the record was in when the approval was requested.
    pub from_stage: String,
    /// The stage the transition goes to.
    pub stage: String,
    /// `pending`, `approved`, `rejected` or `recalled`.
    pub state: String,
    /// The current step, from 0.
    pub step: i64,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// The requester's comment on the transition.
    pub comment: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// Who ended it: the last approver, the rejecting approver or the recalling requester.
    pub decided_by: Option<String>,
    pub decision_comment: Option<String>,
}

/// One approver's part in one step of an approval.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApprovalTask {
    pub id: String,
    pub approval_id: String,
    pub step: i64,
    pub approver: String,
    /// `pending`, `approved`, `rejected` or `skipped` (the step was decided without them).
    pub state: String,
    /// When the step reached this approver (reminders count from here).
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub comment: Option<String>,
    pub reminded_at: Option<DateTime<Utc>>,
    /// Reminders sent so far.
    pub reminders: i64,
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

fn optional_text(value: Option<&str>) -> Value {
    value.map_or(Value::Null, text)
}

fn optional_at(value: Option<DateTime<Utc>>) -> Value {
    value.map_or(Value::Null, Value::Datetime)
}

fn shapes(columns: &[(&str, Storage)]) -> Vec<Shape> {
    columns
        .iter()
        .map(|(_, storage)| Shape::Stored(*storage))
        .collect()
}

/// The values of a stage-history row, in the order of [`HISTORY_COLUMNS`].
fn history_values(entry: &StageEntry) -> Vec<Value> {
    vec![
        text(&entry.id),
        text(&entry.object),
        text(&entry.record_id),
        text(&entry.process),
        optional_text(entry.from_stage.as_deref()),
        text(&entry.to_stage),
        Value::Datetime(entry.at),
        optional_text(entry.by_user.as_deref()),
        optional_text(entry.comment.as_deref()),
        entry.seconds_in_from.map_or(Value::Null, Value::Integer),
    ]
}

/// `INSERT INTO <table> (<columns>) VALUES <rows>`; with no rows it ends after the column
/// list, for an `INSERT … SELECT`.
fn insert_statement(
    dialect: Dialect,
    table: &str,
    columns: &[(&str, Storage)],
    rows: &[Vec<Value>],
) -> Result<Statement, StoreError> {
    let mut statement = Statement::new(dialect, table);
    statement.push("INSERT INTO ");
    statement.push_identifier(table);
    statement.push(" (");
    for (index, (column, _)) in columns.iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.push_identifier(column);
    }
    statement.push(")");
    if !rows.is_empty() {
        statement.push(" VALUES ");
    }
    for (row_index, row) in rows.iter().enumerate() {
        if row_index > 0 {
            statement.push(", ");
        }
        statement.push("(");
        for (index, (value, (_, storage))) in row.iter().zip(columns).enumerate() {
            if index > 0 {
                statement.push(", ");
            }
            statement.push_value(value, *storage)?;
        }
        statement.push(")");
    }
    Ok(statement)
}

/// `SELECT <columns> FROM <table> WHERE <column> = <value> AND …`, then `tail` (an ORDER BY
/// or a row lock, written by this module only).
fn select_statement(
    dialect: Dialect,
    table: &str,
    columns: &[(&str, Storage)],
    filters: &[(&str, Value)],
    tail: &str,
) -> Result<Statement, StoreError> {
    let mut statement = Statement::new(dialect, table);
    statement.push("SELECT ");
    for (index, (column, _)) in columns.iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.push_identifier(column);
    }
    statement.push(" FROM ");
    statement.push_identifier(table);
    for (index, (column, value)) in filters.iter().enumerate() {
        statement.push(if index == 0 { " WHERE " } else { " AND " });
        statement.push_identifier(column);
        statement.push(" = ");
        let storage = columns
            .iter()
            .find(|(name, _)| name == column)
            .map_or(Storage::Text, |(_, storage)| *storage);
        statement.push_value(value, storage)?;
    }
    statement.push(tail);
    Ok(statement)
}

fn unreadable(what: &str, row: &[Value]) -> StoreError {
    StoreError::UnreadableValue {
        what: format!("a {what} row {row:?}"),
    }
}

fn get_text(row: &[Value], index: usize) -> Option<String> {
    match row.get(index) {
        Some(Value::Text(text)) => Some(text.clone()),
        _ => None,
    }
}

fn get_at(row: &[Value], index: usize) -> Option<DateTime<Utc>> {
    match row.get(index) {
        Some(Value::Datetime(at)) => Some(*at),
        _ => None,
    }
}

fn get_integer(row: &[Value], index: usize) -> Option<i64> {
    match row.get(index) {
        Some(Value::Integer(number)) => Some(*number),
        _ => None,
    }
}

fn entry_of_row(row: Vec<Value>) -> Result<StageEntry, StoreError> {
    let (Some(id), Some(object), Some(record_id), Some(process), Some(to_stage), Some(at)) = (
        get_text(&row, 0),
        get_text(&row, 1),
        get_text(&row, 2),
        get_text(&row, 3),
        get_text(&row, 5),
        get_at(&row, 6),
    ) else {
        return Err(unreadable("stage history", &row));
    };
    Ok(StageEntry {
        id,
        object,
        record_id,
        process,
        from_stage: get_text(&row, 4),
        to_stage,
        at,
        by_user: get_text(&row, 7),
        comment: get_text(&row, 8),
        seconds_in_from: get_integer(&row, 9),
    })
}

fn approval_of_row(row: Vec<Value>) -> Result<ApprovalRow, StoreError> {
    let (
        Some(id),
        Some(object),
        Some(record_id),
        Some(process),
        Some(from_stage),
        Some(stage),
        Some(state),
        Some(step),
        Some(requested_by),
        Some(requested_at),
    ) = (
        get_text(&row, 0),
        get_text(&row, 1),
        get_text(&row, 2),
        get_text(&row, 3),
        get_text(&row, 4),
        get_text(&row, 5),
        get_text(&row, 6),
        get_integer(&row, 7),
        get_text(&row, 8),
        get_at(&row, 9),
    )
    else {
        return Err(unreadable("approval", &row));
    };
    Ok(ApprovalRow {
        id,
        object,
        record_id,
        process,
        from_stage,
        stage,
        state,
        step,
        requested_by,
        requested_at,
        comment: get_text(&row, 10),
        decided_at: get_at(&row, 11),
        decided_by: get_text(&row, 12),
        decision_comment: get_text(&row, 13),
    })
}

fn task_of_row(row: Vec<Value>) -> Result<ApprovalTask, StoreError> {
    let (Some(id), Some(approval_id), Some(step), Some(approver), Some(state), Some(created_at)) = (
        get_text(&row, 0),
        get_text(&row, 1),
        get_integer(&row, 2),
        get_text(&row, 3),
        get_text(&row, 4),
        get_at(&row, 5),
    ) else {
        return Err(unreadable("approval task", &row));
    };
    Ok(ApprovalTask {
        id,
        approval_id,
        step,
        approver,
        state,
        created_at,
        decided_at: get_at(&row, 6),
        comment: get_text(&row, 7),
        reminded_at: get_at(&row, 8),
        reminders: get_integer(&row, 9).unwrap_or(0),
    })
}

fn approval_values(approval: &ApprovalRow) -> Vec<Value> {
    vec![
        text(&approval.id),
        text(&approval.object),
        text(&approval.record_id),
        text(&approval.process),
        text(&approval.from_stage),
        text(&approval.stage),
        text(&approval.state),
        Value::Integer(approval.step),
        text(&approval.requested_by),
        Value::Datetime(approval.requested_at),
        optional_text(approval.comment.as_deref()),
        optional_at(approval.decided_at),
        optional_text(approval.decided_by.as_deref()),
        optional_text(approval.decision_comment.as_deref()),
    ]
}

/// The error of a batch of no statements, which the writes here never make.
fn empty_batch() -> StoreError {
    StoreError::UnreadableValue {
        what: "an empty batch of statements".to_owned(),
    }
}

async fn read(
    db: &Db,
    statement: &Statement,
    shapes: &[Shape],
) -> Result<Vec<Vec<Value>>, StoreError> {
    let mut pooled = db.acquire().await?;
    fetch(&mut pooled.connection(), statement, shapes).await
}

impl RecordWrite {
    /// Appends the stage-history row of a record created in its first stage, and counts the
    /// entry in the record's [`STAGE_SUMMARY`] (in the same round trip): the record must be
    /// in already.
    pub async fn insert_stage_entry(&mut self, entry: &StageEntry) -> Result<(), StoreError> {
        let dialect = self.dialect();
        let statement =
            insert_statement(dialect, HISTORY, &HISTORY_COLUMNS, &[history_values(entry)])?;
        let mut unknown = Statement::new(dialect, HISTORY);
        unknown.push("NULL");
        let summary = summary_update(dialect, entry, &unknown)?;
        self.run(&Statement::batch(vec![statement, summary]).ok_or_else(empty_batch)?)
            .await?;
        Ok(())
    }

    /// Appends the stage-history row of a move, `entry.seconds_in_from` replaced by the
    /// time since the record entered the stage it leaves (its newest row of the process; none
    /// gives NULL), computed by the statement itself: a transition writes its history in one
    /// round trip. Whole seconds, truncated, never negative. The record's [`STAGE_SUMMARY`]
    /// is updated in the same round trip: one more entry into `to_stage` and, when the time
    /// is known, one more completed stay in `from_stage`.
    pub async fn insert_stage_move(&mut self, entry: &StageEntry) -> Result<(), StoreError> {
        let dialect = self.dialect();
        let at = Value::Datetime(entry.at);
        let mut statement = insert_statement(dialect, HISTORY, &HISTORY_COLUMNS, &[])?;
        statement.push(" SELECT ");
        // Every column but the last, `seconds_in_from`, which follows.
        let values = history_values(entry);
        for (value, (_, storage)) in values.iter().zip(&HISTORY_COLUMNS).take(values.len() - 1) {
            statement.push_value(value, *storage)?;
            statement.push(", ");
        }
        match dialect {
            // Datetimes are fixed-width UTC text (`2026-12-07T04:40:05.123456Z`): whole
            // seconds from `strftime`, microseconds from characters 21–26.
            Dialect::Sqlite => {
                statement.push("max(0, ((CAST(strftime('%s', ");
                statement.push_value(&at, Storage::Datetime)?;
                statement.push(") AS INTEGER) - CAST(strftime('%s', \"previous\") AS INTEGER)) * 1000000 + CAST(substr(");
                statement.push_value(&at, Storage::Datetime)?;
                statement.push(
                    ", 21, 6) AS INTEGER) - CAST(substr(\"previous\", 21, 6) AS INTEGER)) / 1000000)",
                );
            }
            Dialect::Postgres => {
                statement.push("GREATEST(0, trunc(EXTRACT(EPOCH FROM ");
                statement.push_value(&at, Storage::Datetime)?;
                statement.push(" - \"previous\")))::bigint");
            }
        }
        statement
            .push(" FROM (SELECT (SELECT \"at\" FROM \"keel_stage_history\" WHERE \"object\" = ");
        statement.push_value(&text(&entry.object), Storage::Text)?;
        statement.push(" AND \"record_id\" = ");
        statement.push_value(&text(&entry.record_id), Storage::Text)?;
        statement.push(" AND \"process\" = ");
        statement.push_value(&text(&entry.process), Storage::Text)?;
        statement.push(" ORDER BY \"at\" DESC LIMIT 1) AS \"previous\") AS \"keel_previous\"");
        // The record's summary for the funnel, brought up to date with this row in the same
        // round trip: the stay it ends is read from the row inserted (on SQLite the batch's
        // statements run in turn; on PostgreSQL the insert is a `WITH` step whose RETURNING
        // the update reads, as it would not see the row in the table).
        let seconds = match dialect {
            Dialect::Sqlite => {
                let mut seconds = Statement::new(dialect, HISTORY);
                seconds.push(
                    "(SELECT \"seconds_in_from\" FROM \"keel_stage_history\" WHERE \"id\" = ",
                );
                seconds.push_value(&text(&entry.id), Storage::Text)?;
                seconds.push(")");
                seconds
            }
            Dialect::Postgres => {
                statement.push(" RETURNING \"seconds_in_from\"");
                let mut seconds = Statement::new(dialect, HISTORY);
                seconds.push("(SELECT \"seconds_in_from\" FROM \"keel_step0\")");
                seconds
            }
        };
        let summary = summary_update(dialect, entry, &seconds)?;
        self.run(&Statement::batch(vec![statement, summary]).ok_or_else(empty_batch)?)
            .await?;
        Ok(())
    }

    /// Writes a new approval.
    pub async fn insert_approval(&mut self, approval: &ApprovalRow) -> Result<(), StoreError> {
        let statement = insert_statement(
            self.dialect(),
            APPROVALS,
            &APPROVAL_COLUMNS,
            &[approval_values(approval)],
        )?;
        self.run(&statement).await?;
        Ok(())
    }

    /// Rewrites an approval's state, step and decision (its other columns never change).
    pub async fn update_approval(&mut self, approval: &ApprovalRow) -> Result<(), StoreError> {
        let mut statement = Statement::new(self.dialect(), APPROVALS);
        statement.push("UPDATE \"keel_approvals\" SET \"state\" = ");
        statement.push_value(&text(&approval.state), Storage::Text)?;
        statement.push(", \"step\" = ");
        statement.push_value(&Value::Integer(approval.step), Storage::Integer)?;
        statement.push(", \"decided_at\" = ");
        statement.push_value(&optional_at(approval.decided_at), Storage::Datetime)?;
        statement.push(", \"decided_by\" = ");
        statement.push_value(
            &optional_text(approval.decided_by.as_deref()),
            Storage::Text,
        )?;
        statement.push(", \"decision_comment\" = ");
        statement.push_value(
            &optional_text(approval.decision_comment.as_deref()),
            Storage::Text,
        )?;
        statement.push(" WHERE \"id\" = ");
        statement.push_value(&text(&approval.id), Storage::Text)?;
        self.run(&statement).await?;
        Ok(())
    }

    /// The approval `id`, locked until this transaction ends (`FOR UPDATE` on PostgreSQL;
    /// SQLite's `BEGIN IMMEDIATE` already serialises writers), so two decisions on one
    /// approval run one after the other.
    pub async fn approval_for_update(
        &mut self,
        id: &str,
    ) -> Result<Option<ApprovalRow>, StoreError> {
        let lock = if self.dialect() == Dialect::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let statement = select_statement(
            self.dialect(),
            APPROVALS,
            &APPROVAL_COLUMNS,
            &[("id", text(id))],
            lock,
        )?;
        let rows = self.fetch(&statement, &shapes(&APPROVAL_COLUMNS)).await?;
        rows.into_iter().next().map(approval_of_row).transpose()
    }

    /// The pending approval of one record, if any (at most one is ever pending).
    pub async fn pending_approval(
        &mut self,
        object: &str,
        record_id: &str,
    ) -> Result<Option<ApprovalRow>, StoreError> {
        let statement = select_statement(
            self.dialect(),
            APPROVALS,
            &APPROVAL_COLUMNS,
            &[
                ("object", text(object)),
                ("record_id", text(record_id)),
                ("state", text("pending")),
            ],
            "",
        )?;
        let rows = self.fetch(&statement, &shapes(&APPROVAL_COLUMNS)).await?;
        rows.into_iter().next().map(approval_of_row).transpose()
    }

    /// Writes the tasks of one step.
    pub async fn insert_approval_tasks(
        &mut self,
        tasks: &[ApprovalTask],
    ) -> Result<(), StoreError> {
        if tasks.is_empty() {
            return Ok(());
        }
        let rows: Vec<Vec<Value>> = tasks
            .iter()
            .map(|task| {
                vec![
                    text(&task.id),
                    text(&task.approval_id),
                    Value::Integer(task.step),
                    text(&task.approver),
                    text(&task.state),
                    Value::Datetime(task.created_at),
                    optional_at(task.decided_at),
                    optional_text(task.comment.as_deref()),
                    optional_at(task.reminded_at),
                    Value::Integer(task.reminders),
                ]
            })
            .collect();
        let statement = insert_statement(self.dialect(), TASKS, &TASK_COLUMNS, &rows)?;
        self.run(&statement).await?;
        Ok(())
    }

    /// Every task of one approval, by step and approver.
    pub async fn approval_tasks_of(
        &mut self,
        approval_id: &str,
    ) -> Result<Vec<ApprovalTask>, StoreError> {
        let statement = select_statement(
            self.dialect(),
            TASKS,
            &TASK_COLUMNS,
            &[("approval_id", text(approval_id))],
            " ORDER BY \"step\", \"id\"",
        )?;
        let rows = self.fetch(&statement, &shapes(&TASK_COLUMNS)).await?;
        rows.into_iter().map(task_of_row).collect()
    }

    /// Decides one pending task: `state` is `approved`, `rejected` or `skipped`. Returns
    /// whether it was still pending.
    pub async fn decide_task(
        &mut self,
        task_id: &str,
        state: &str,
        at: DateTime<Utc>,
        comment: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut statement = Statement::new(self.dialect(), TASKS);
        statement.push("UPDATE \"keel_approval_tasks\" SET \"state\" = ");
        statement.push_value(&text(state), Storage::Text)?;
        statement.push(", \"decided_at\" = ");
        statement.push_value(&Value::Datetime(at), Storage::Datetime)?;
        statement.push(", \"comment\" = ");
        statement.push_value(&optional_text(comment), Storage::Text)?;
        statement.push(" WHERE \"id\" = ");
        statement.push_value(&text(task_id), Storage::Text)?;
        statement.push(" AND \"state\" = 'pending'");
        Ok(self.run(&statement).await? == 1)
    }

    /// Counts reminder `number` of a pending task as sent, unless it (or a later one) already
    /// was: the conditional update one process wins, so a reminder goes out exactly once
    /// however many schedulers share the database.
    pub async fn claim_reminder(
        &mut self,
        task_id: &str,
        number: i64,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut statement = Statement::new(self.dialect(), TASKS);
        statement.push("UPDATE \"keel_approval_tasks\" SET \"reminders\" = ");
        statement.push_value(&Value::Integer(number), Storage::Integer)?;
        statement.push(", \"reminded_at\" = ");
        statement.push_value(&Value::Datetime(at), Storage::Datetime)?;
        statement.push(" WHERE \"id\" = ");
        statement.push_value(&text(task_id), Storage::Text)?;
        statement.push(" AND \"state\" = 'pending' AND \"reminders\" < ");
        statement.push_value(&Value::Integer(number), Storage::Integer)?;
        Ok(self.run(&statement).await? == 1)
    }
}

/// The stage history of one record, oldest first.
pub async fn stage_history(
    db: &Db,
    object: &str,
    record_id: &str,
) -> Result<Vec<StageEntry>, StoreError> {
    let statement = select_statement(
        db.dialect(),
        HISTORY,
        &HISTORY_COLUMNS,
        &[("object", text(object)), ("record_id", text(record_id))],
        " ORDER BY \"at\", \"id\"",
    )?;
    let rows = read(db, &statement, &shapes(&HISTORY_COLUMNS)).await?;
    rows.into_iter().map(entry_of_row).collect()
}

/// One approval.
pub async fn approval(db: &Db, id: &str) -> Result<Option<ApprovalRow>, StoreError> {
    let statement = select_statement(
        db.dialect(),
        APPROVALS,
        &APPROVAL_COLUMNS,
        &[("id", text(id))],
        "",
    )?;
    let rows = read(db, &statement, &shapes(&APPROVAL_COLUMNS)).await?;
    rows.into_iter().next().map(approval_of_row).transpose()
}

/// Every approval of one record, newest first.
pub async fn approvals_of_record(
    db: &Db,
    object: &str,
    record_id: &str,
) -> Result<Vec<ApprovalRow>, StoreError> {
    let statement = select_statement(
        db.dialect(),
        APPROVALS,
        &APPROVAL_COLUMNS,
        &[("object", text(object)), ("record_id", text(record_id))],
        " ORDER BY \"requested_at\" DESC, \"id\" DESC",
    )?;
    let rows = read(db, &statement, &shapes(&APPROVAL_COLUMNS)).await?;
    rows.into_iter().map(approval_of_row).collect()
}

/// Every task of one approval, by step and approver.
pub async fn approval_tasks(db: &Db, approval_id: &str) -> Result<Vec<ApprovalTask>, StoreError> {
    let statement = select_statement(
        db.dialect(),
        TASKS,
        &TASK_COLUMNS,
        &[("approval_id", text(approval_id))],
        " ORDER BY \"step\", \"id\"",
    )?;
    let rows = read(db, &statement, &shapes(&TASK_COLUMNS)).await?;
    rows.into_iter().map(task_of_row).collect()
}

fn approval_select(dialect: Dialect) -> Statement {
    let mut statement = Statement::new(dialect, APPROVALS);
    statement.push("SELECT ");
    for (index, (column, _)) in APPROVAL_COLUMNS.iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.push("a.");
        statement.push_identifier(column);
    }
    statement.push(" FROM \"keel_approvals\" a");
    statement
}

/// The approvals that involve `user`, newest first, at most `limit`: with `waiting`, those
/// pending with a pending task of `user` in their current step (the inbox); else those
/// `user` requested or holds a task in, in `state` when given.
pub async fn approvals_for(
    db: &Db,
    user: &str,
    waiting: bool,
    state: Option<&str>,
    limit: u32,
) -> Result<Vec<ApprovalRow>, StoreError> {
    let mut statement = approval_select(db.dialect());
    if waiting {
        statement.push(
            " WHERE a.\"state\" = 'pending' AND EXISTS (SELECT 1 FROM \"keel_approval_tasks\" t \
             WHERE t.\"approval_id\" = a.\"id\" AND t.\"step\" = a.\"step\" \
             AND t.\"state\" = 'pending' AND t.\"approver\" = ",
        );
        statement.push_value(&text(user), Storage::Text)?;
        statement.push(")");
    } else {
        statement.push(" WHERE (a.\"requested_by\" = ");
        statement.push_value(&text(user), Storage::Text)?;
        statement.push(
            " OR EXISTS (SELECT 1 FROM \"keel_approval_tasks\" t \
             WHERE t.\"approval_id\" = a.\"id\" AND t.\"approver\" = ",
        );
        statement.push_value(&text(user), Storage::Text)?;
        statement.push("))");
        if let Some(state) = state {
            statement.push(" AND a.\"state\" = ");
            statement.push_value(&text(state), Storage::Text)?;
        }
    }
    statement.push(" ORDER BY a.\"requested_at\" DESC, a.\"id\" DESC LIMIT ");
    statement.push_value(&Value::Integer(i64::from(limit)), Storage::Integer)?;
    let rows = read(db, &statement, &shapes(&APPROVAL_COLUMNS)).await?;
    rows.into_iter().map(approval_of_row).collect()
}

/// Pending tasks of the current step of pending approvals that reached their approver at or
/// before `reached_before`, oldest first, at most `limit`, with their approval: the
/// candidates for a reminder.
pub async fn waiting_tasks(
    db: &Db,
    reached_before: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<(ApprovalTask, ApprovalRow)>, StoreError> {
    let mut statement = Statement::new(db.dialect(), TASKS);
    statement.push("SELECT ");
    for (index, (column, _)) in TASK_COLUMNS.iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.push("t.");
        statement.push_identifier(column);
    }
    for (column, _) in &APPROVAL_COLUMNS {
        statement.push(", a.");
        statement.push_identifier(column);
    }
    statement.push(
        " FROM \"keel_approval_tasks\" t JOIN \"keel_approvals\" a ON a.\"id\" = t.\"approval_id\" \
         AND a.\"step\" = t.\"step\" WHERE t.\"state\" = 'pending' AND a.\"state\" = 'pending' \
         AND t.\"created_at\" <= ",
    );
    statement.push_value(&Value::Datetime(reached_before), Storage::Datetime)?;
    statement.push(" ORDER BY t.\"created_at\", t.\"id\" LIMIT ");
    statement.push_value(&Value::Integer(i64::from(limit)), Storage::Integer)?;
    let mut all_shapes = shapes(&TASK_COLUMNS);
    all_shapes.extend(shapes(&APPROVAL_COLUMNS));
    let rows = read(db, &statement, &all_shapes).await?;
    rows.into_iter()
        .map(|mut row| {
            let approval = row.split_off(TASK_COLUMNS.len());
            Ok((task_of_row(row)?, approval_of_row(approval)?))
        })
        .collect()
}
