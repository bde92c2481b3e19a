//! One chunk of a scheduled rule's run (docs/scheduler.md): the records its `where` matches
//! after the run's cursor, along the primary key, read as the engine; then ONE transaction
//! that writes one outbox row per record (kind `rule`, event `schedule`, so
//! [`Records::perform`] runs the rule's actions once per record) together with the run's new
//! cursor and counts. The transaction commits only while the process still holds the run,
//! so a run taken over after a crash neither loses nor repeats a chunk; the outbox row's
//! idempotency key (rule, record, run) makes a repeated chunk write nothing in any case.

use chrono::{DateTime, Utc};
use keel_meta::{Rule, Value};
use keel_script::ScriptValue;
use keel_store::outbox::NewEntry;
use keel_store::records::{self as store, CompareOp, Condition, Deleted, SelectQuery};
use keel_store::schedule::Counts;

use crate::actor::Actor;
use crate::records::effects::{AfterSave, KIND_RULE, row_json};
use crate::records::scripting::{expression_user, script_map};
use crate::records::{RecordError, Records};

/// The event a scheduled rule's actions see (`event` in scripts and webhooks).
pub const SCHEDULE_EVENT: &str = "schedule";

/// What one chunk did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    /// Records read (matching `where`): fewer than asked means the run is through.
    pub read: usize,
    /// The last record id read, the run's cursor after this chunk.
    pub last: Option<String>,
    pub counts: Counts,
    /// False when the process no longer held the run: nothing was written, and the process
    /// that took it over carries on.
    pub held: bool,
}

impl Records {
    /// Queues the actions of `rule` for the next `limit` records its `where` matches after
    /// `after` (a record id), as part of the run `run_id` held by `process`; see the module
    /// documentation. Relative dates in `where` are read as of the clock's now.
    #[allow(clippy::too_many_arguments)]
    pub async fn schedule_chunk(
        &self,
        rule: &Rule,
        run_id: &str,
        process: &str,
        after: Option<&str>,
        limit: u32,
        lease_until: DateTime<Utc>,
    ) -> Result<Chunk, RecordError> {
        let object = self.object(&rule.object)?;
        let system = Actor::system();
        let mut all = vec![self.list_condition(&system, object, rule.filter.as_ref(), None)?];
        if let Some(after) = after {
            all.push(Condition::Compare {
                column: "id".to_owned(),
                op: CompareOp::Gt,
                value: Value::Text(after.to_owned()),
            });
        }
        let query = SelectQuery {
            object,
            condition: Condition::All(all),
            deleted: Deleted::Exclude,
            sort: Vec::new(),
            after: None,
            limit: Some(limit),
            columns: None,
        };
        let rows = store::select(&self.db, &query).await?;
        let now = self.clock.now();
        let mut chunk = Chunk {
            read: rows.len(),
            held: true,
            ..Chunk::default()
        };
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(Value::Text(record_id)) = row.get("id") else {
                continue;
            };
            chunk.last = Some(record_id.clone());
            chunk.counts.matched += 1;
            if let Some(when) = &rule.when {
                let variables = [
                    ("record", ScriptValue::Map(script_map(row))),
                    ("old", ScriptValue::Unit),
                    ("user", expression_user(&system)),
                    ("event", ScriptValue::Text(SCHEDULE_EVENT.to_owned())),
                ];
                match self.sandbox.evaluate(when, &variables) {
                    Ok(ScriptValue::Boolean(true)) => {}
                    Ok(_) => continue,
                    Err(error) => {
                        tracing::warn!(rule = %rule.name, record = %record_id, "the `when` failed at line {}: {}", error.line, error.message);
                        chunk.counts.errors += 1;
                        continue;
                    }
                }
            }
            let work = AfterSave {
                name: rule.name.clone(),
                object: object.name.clone(),
                record_id: record_id.clone(),
                event: SCHEDULE_EVENT.to_owned(),
                record: row_json(row),
                old: None,
                user: system.id.clone(),
                chain: Vec::new(),
            };
            let payload = serde_json::to_string(&work)
                .map_err(|error| RecordError::BadRequest(format!("cannot queue work: {error}")))?;
            entries.push(NewEntry {
                id: uuid::Uuid::now_v7().to_string(),
                kind: KIND_RULE.to_owned(),
                payload,
                // One run of the rule's actions per record and run.
                idempotency_key: format!(
                    "{KIND_RULE}/{}/{}/{record_id}/{SCHEDULE_EVENT}/{run_id}",
                    rule.name, object.name
                ),
                due_at: now,
                created_at: now,
            });
        }
        chunk.counts.changed = i64::try_from(entries.len()).unwrap_or(i64::MAX);
        let Some(last) = chunk.last.clone() else {
            return Ok(chunk);
        };
        let mut write = self.db.begin_records_write().await?;
        if !write
            .advance_run(run_id, process, &last, chunk.counts, lease_until)
            .await?
        {
            chunk.held = false;
            return Ok(chunk);
        }
        write.insert_outbox(&entries).await?;
        write.commit().await?;
        if !entries.is_empty() {
            self.signals.outbox.notify_one();
        }
        Ok(chunk)
    }
}
