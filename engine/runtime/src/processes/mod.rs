//! Sales processes (docs/processes.md): transitions between the stages of a process, the
//! stage history, and approvals of transitions into stages that need them.
//!
//! A transition is one write transaction through `Records`' update path (so version,
//! `updated_*`, field audit, event rules, scripts and the outbox behave as for any save):
//! the record is locked, the move checked against the process's `transitions`, the fields
//! given with it merged, the target stage's `require`d fields, guard and approval checked
//! (`records::stages`), and a stage-history row written. When an approval applies the record
//! stays in its stage and an approval is opened instead ([`approvals`]); its final approval
//! completes the transition in the approver's transaction.

mod approvals;
mod remind;

use keel_meta::{Object, Process, Stage, Value};
use keel_store::processes::{ApprovalRow, StageEntry};
use keel_store::records::RecordWrite;
use serde::Serialize;
use serde_json::Value as Json;

use crate::actor::Actor;
use crate::coerce::{FieldProblem, Source};
use crate::records::access::Action;
use crate::records::stages::{StageMove, missing_required};
use crate::records::{Input, RecordError, Records, SaveContext};

pub use remind::{REMIND_JOB, RemindOutcome};

/// The longest comment a transition or a decision may carry, in characters.
pub const MAX_COMMENT_CHARS: usize = 2_000;

/// What a transition did.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum TransitionResult {
    /// The record moved: the whole record as the actor sees it (200).
    Transitioned { record: Json },
    /// The target stage needs approval: the record stays in its stage, locked (202).
    Pending { approval: Json },
}

/// One move the actor could make from the record's current stage (for buttons).
#[derive(Debug, Clone, Serialize)]
pub struct AvailableTransition {
    pub to: String,
    /// The target stage's `require`d fields the record leaves empty.
    pub missing: Vec<String>,
    /// The target stage has an approval whose `when` holds for the record as it is.
    pub needs_approval: bool,
    /// The guard script that will decide, if any.
    pub guard: Option<String>,
}

/// The record's place in its process.
#[derive(Debug, Clone, Serialize)]
pub struct StagePath {
    pub process: String,
    pub stage_field: String,
    pub current: Option<String>,
    pub transitions: Vec<AvailableTransition>,
    /// The record's pending approval, if any (then no transition is possible).
    pub pending_approval: Option<Json>,
}

/// The processes of one app, over its records: cheap to clone.
#[derive(Debug, Clone)]
pub struct Processes {
    records: Records,
}

/// The rule of `process` that allows `from` → `to`, as `Some(guard)`; `None` when no rule
/// allows it. The loader has already expanded `linear` into the moves between neighbours in
/// file order (skipping stages whose outcome is `lost`); a `from` of `None` is `*`. The first
/// rule that matches decides (and names the guard).
pub fn allowed_move<'p>(
    process: &'p Process,
    from: Option<&str>,
    to: &str,
) -> Option<Option<&'p str>> {
    let Some(from) = from else {
        // A record without a stage may enter the first stage only.
        return (process.stages.first().map(|s| s.key.as_str()) == Some(to)).then_some(None);
    };
    if from == to {
        return None;
    }
    process
        .transitions
        .iter()
        .find(|rule| rule.to == to && rule.from.as_deref().is_none_or(|f| f == from))
        .map(|rule| rule.guard.as_deref())
}

fn stage_of<'p>(process: &'p Process, key: &str) -> Option<&'p Stage> {
    process.stages.iter().find(|stage| stage.key == key)
}

fn text_of(row: &keel_store::records::Row, field: &str) -> Option<String> {
    match row.get(field) {
        Some(Value::Text(text)) => Some(text.clone()),
        _ => None,
    }
}

fn not_allowed(message: String) -> RecordError {
    RecordError::ProcessRefused {
        code: "transition_not_allowed",
        message,
        script: None,
    }
}

fn checked_comment(comment: Option<String>) -> Result<Option<String>, RecordError> {
    match comment {
        Some(comment) if comment.chars().count() > MAX_COMMENT_CHARS => {
            Err(RecordError::Invalid(vec![FieldProblem {
                field: "comment".to_owned(),
                code: "too_long",
                message: format!("a comment holds at most {MAX_COMMENT_CHARS} characters"),
            }]))
        }
        Some(comment) if comment.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

impl Processes {
    pub fn new(records: Records) -> Processes {
        Processes { records }
    }

    pub fn records(&self) -> &Records {
        &self.records
    }

    /// The object `name` and its process; 404 when the object has none.
    fn process_of(&self, name: &str) -> Result<(&Object, &Process), RecordError> {
        let schema = self.records.schema();
        let object = schema
            .object(name)
            .ok_or_else(|| RecordError::UnknownObject(name.to_owned()))?;
        let process = self
            .records
            .processes_of(name)
            .next()
            .ok_or(RecordError::NotFound)?;
        Ok((object, process))
    }

    /// Moves the record `id` of `object` to stage `to`, with `fields` (values the target
    /// stage requires, given in the same call) saved in the same transaction.
    pub async fn transition(
        &self,
        actor: &Actor,
        object: &str,
        id: &str,
        to: &str,
        comment: Option<String>,
        fields: Input,
    ) -> Result<TransitionResult, RecordError> {
        let (object, process) = self.process_of(object)?;
        let comment = checked_comment(comment)?;
        let Some(target) = stage_of(process, to) else {
            return Err(RecordError::Invalid(vec![FieldProblem {
                field: "to".to_owned(),
                code: "invalid_choice",
                message: format!("process `{}` has no stage `{to}`", process.name),
            }]));
        };
        if fields.contains_key(&process.stage_field) {
            return Err(RecordError::Invalid(vec![FieldProblem {
                field: format!("fields.{}", process.stage_field),
                code: "use_transition",
                message: "the stage is given as `to`, not among the fields".to_owned(),
            }]));
        }
        let now = self.records.clock().now();
        let mut write = self.records.db().begin_records_write().await?;
        let current = self
            .records
            .writable_current(&mut write, actor, object, id, Action::Edit, false)
            .await?;
        self.records
            .refuse_transition_if_pending(&mut write, object, id)
            .await?;
        let from = text_of(&current, &process.stage_field);
        let Some(guard) = allowed_move(process, from.as_deref(), to) else {
            return Err(not_allowed(format!(
                "process `{}` does not allow moving from `{}` to `{to}`",
                process.name,
                from.as_deref().unwrap_or("(none)")
            )));
        };
        let mut save = SaveContext::new(actor, now, Source::Json);
        save.transition = Some(StageMove {
            process,
            to: target,
            guard,
            check_approval: true,
        });
        let row = self
            .records
            .update_current_in(&mut write, &mut save, object, id, current, &fields, None)
            .await?;
        if save.stage_pending {
            let approval = self
                .open_approval(
                    &mut write,
                    &mut save,
                    object,
                    process,
                    target,
                    &row,
                    from.unwrap_or_default(),
                    comment,
                )
                .await?;
            if approval.state == "pending" {
                write.commit().await?;
                self.records.after_commit(&save);
                return Ok(TransitionResult::Pending {
                    approval: self.render_approval(&approval).await?,
                });
            }
            // No step found anyone to ask and every one passed: the transition completes now.
            let row = self
                .complete(
                    &mut write, &mut save, object, process, target, id, &approval,
                )
                .await?;
            write.commit().await?;
            self.records.after_commit(&save);
            let saved = self.records.saved(actor, object, row, Vec::new()).await?;
            return Ok(TransitionResult::Transitioned {
                record: saved.record,
            });
        }
        self.write_history(&mut write, &save, object, process, &row, from, comment)
            .await?;
        write.commit().await?;
        self.records.after_commit(&save);
        let saved = self.records.saved(actor, object, row, Vec::new()).await?;
        Ok(TransitionResult::Transitioned {
            record: saved.record,
        })
    }

    /// Writes the stage-history row of a move of `row` (as saved) from `from`.
    #[allow(clippy::too_many_arguments)]
    async fn write_history(
        &self,
        write: &mut RecordWrite,
        save: &SaveContext<'_>,
        object: &Object,
        process: &Process,
        row: &keel_store::records::Row,
        from: Option<String>,
        comment: Option<String>,
    ) -> Result<(), RecordError> {
        let record_id = text_of(row, "id").unwrap_or_default();
        let entry = StageEntry {
            id: uuid::Uuid::now_v7().to_string(),
            object: object.name.clone(),
            record_id,
            process: process.name.clone(),
            from_stage: from,
            to_stage: text_of(row, &process.stage_field).unwrap_or_default(),
            at: save.now,
            by_user: Some(save.actor.id.clone()),
            comment,
            // Computed by the insert from the record's previous row.
            seconds_in_from: None,
        };
        write.insert_stage_move(&entry).await?;
        Ok(())
    }

    /// The record's stage and the moves open to the actor from it: each allowed target with
    /// the required fields still empty and whether an approval would apply.
    pub async fn available_transitions(
        &self,
        actor: &Actor,
        object: &str,
        id: &str,
    ) -> Result<StagePath, RecordError> {
        let (object_meta, process) = self.process_of(object)?;
        let row = self
            .records
            .readable_row(
                actor,
                object_meta,
                id,
                keel_store::records::Deleted::Exclude,
            )
            .await?;
        let current = text_of(&row, &process.stage_field);
        let pending = self.record_approval(actor, object, id).await?;
        let pending_approval = pending
            .filter(|approval| approval.get("state").and_then(Json::as_str) == Some("pending"));
        let mut transitions = Vec::new();
        if pending_approval.is_none() {
            for stage in &process.stages {
                let Some(guard) = allowed_move(process, current.as_deref(), &stage.key) else {
                    continue;
                };
                let needs_approval = match &stage.approval {
                    Some(approval) => {
                        self.records
                            .approval_holds(actor, approval.when.as_deref(), &row)
                    }
                    None => false,
                };
                transitions.push(AvailableTransition {
                    to: stage.key.clone(),
                    missing: missing_required(stage, &row)
                        .into_iter()
                        .map(|problem| problem.field)
                        .collect(),
                    needs_approval,
                    guard: guard.map(str::to_owned),
                });
            }
        }
        Ok(StagePath {
            process: process.name.clone(),
            stage_field: process.stage_field.clone(),
            current,
            transitions,
            pending_approval,
        })
    }

    /// The stage history of a record the actor may read, oldest first.
    pub async fn stage_history(
        &self,
        actor: &Actor,
        object: &str,
        id: &str,
    ) -> Result<Vec<StageEntry>, RecordError> {
        self.process_of(object)?;
        self.records.get(actor, object, id).await?;
        Ok(keel_store::processes::stage_history(self.records.db(), object, id).await?)
    }

    /// Completes the transition of an approved (or never needed) approval: the save as the
    /// requester, with the history row naming who decided.
    #[allow(clippy::too_many_arguments)]
    async fn complete(
        &self,
        write: &mut RecordWrite,
        decider: &mut SaveContext<'_>,
        object: &Object,
        process: &Process,
        target: &Stage,
        id: &str,
        approval: &ApprovalRow,
    ) -> Result<keel_store::records::Row, RecordError> {
        let requester = self
            .records
            .actor_by_id(&approval.requested_by)
            .await?
            .unwrap_or_else(|| decider.actor.clone());
        let mut save = SaveContext::new(&requester, decider.now, Source::Json);
        save.transition = Some(StageMove {
            process,
            to: target,
            guard: None,
            check_approval: false,
        });
        let current = write
            .get_for_update(object, id)
            .await?
            .ok_or(RecordError::NotFound)?;
        if text_of(&current, &process.stage_field).as_deref() != Some(&approval.from_stage) {
            return Err(not_allowed(format!(
                "the record left stage `{}` while the approval was pending",
                approval.from_stage
            )));
        }
        let row = self
            .records
            .update_in(write, &mut save, object, id, &Input::new(), None)
            .await?;
        let history_save = SaveContext::new(decider.actor, decider.now, Source::Json);
        self.write_history(
            write,
            &history_save,
            object,
            process,
            &row,
            Some(approval.from_stage.clone()),
            approval.comment.clone(),
        )
        .await?;
        decider.notified |= save.notified;
        decider.outboxed |= save.outboxed;
        Ok(row)
    }
}
