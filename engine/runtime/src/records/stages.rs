//! The save-path rules of sales processes (docs/processes.md): a process owns its object's
//! stage field, so an ordinary update, bulk item or import that changes it is refused
//! (`use_transition`); a create may only put a record into the process's first stage (an
//! empty stage is filled with it) and writes the first stage-history row; a transition
//! (`crate::processes`) saves through the same update path (`update_current_in`, with the
//! record it read) and a [`StageMove`] that checks the target stage's `require`d fields,
//! runs its `guard` script and decides whether an approval applies; and a record whose
//! transition waits for approval is locked against edits except by admins.

use keel_meta::{Object, Process, Stage, Value};
use keel_script::{RunError, ScriptEvent, ScriptValue};
use keel_store::processes::StageEntry;
use keel_store::records::{RecordWrite, Row};

use crate::actor::Actor;
use crate::coerce::FieldProblem;
use crate::records::scripting::{expression_user, script_map};
use crate::records::write::SaveContext;
use crate::records::{RecordError, Records};

/// A transition being saved: the process, the stage it goes to, the guard of the rule that
/// allowed it, and whether an approval of the target stage may still apply (not when an
/// approved approval completes it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StageMove<'a> {
    pub process: &'a Process,
    pub to: &'a Stage,
    pub guard: Option<&'a str>,
    pub check_approval: bool,
}

/// Whether a value counts as set for a stage's `require`.
fn is_set(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Text(text)) => !text.trim().is_empty(),
        Some(Value::List(items)) => !items.is_empty(),
        Some(_) => true,
    }
}

/// The fields of `stage`'s `require` that `row` leaves empty, as 422 problems.
pub(crate) fn missing_required(stage: &Stage, row: &Row) -> Vec<FieldProblem> {
    stage
        .require
        .iter()
        .filter(|field| !is_set(row.get(field.as_str())))
        .map(|field| FieldProblem {
            field: field.clone(),
            code: "required",
            message: format!("`{field}` must be filled in to enter stage `{}`", stage.key),
        })
        .collect()
}

fn stage_text(row: &Row, field: &str) -> Option<String> {
    match row.get(field) {
        Some(Value::Text(text)) => Some(text.clone()),
        _ => None,
    }
}

impl Records {
    /// The processes that own a field of `object`.
    pub(crate) fn processes_of<'s>(&'s self, object: &str) -> impl Iterator<Item = &'s Process> {
        let object = object.to_owned();
        self.schema
            .processes
            .values()
            .filter(move |process| process.object == object)
    }

    /// Whether some stage of a process of `object` needs approval (only then can a record of
    /// it be locked).
    fn has_approvals(&self, object: &str) -> bool {
        self.processes_of(object)
            .any(|process| process.stages.iter().any(|stage| stage.approval.is_some()))
    }

    /// Refuses a change of a record whose transition waits for approval (409
    /// `approval_pending`), unless the actor is an admin.
    pub(super) async fn refuse_if_pending(
        &self,
        write: &mut RecordWrite,
        actor: &Actor,
        object: &Object,
        id: &str,
    ) -> Result<(), RecordError> {
        if !self.has_approvals(&object.name) || super::access::is_admin(&self.schema, actor) {
            return Ok(());
        }
        if write.pending_approval(&object.name, id).await?.is_some() {
            return Err(approval_pending());
        }
        Ok(())
    }

    /// Refuses a transition of a record whose earlier transition waits for approval (409
    /// `approval_pending`), whoever the actor: an admin may edit such a record but not move
    /// it on. Only a record of an object whose process has an approval stage can wait.
    pub(crate) async fn refuse_transition_if_pending(
        &self,
        write: &mut RecordWrite,
        object: &Object,
        id: &str,
    ) -> Result<(), RecordError> {
        if self.has_approvals(&object.name)
            && write.pending_approval(&object.name, id).await?.is_some()
        {
            return Err(approval_pending());
        }
        Ok(())
    }

    /// A create: the stage of each process must be empty (it becomes the first stage) or the
    /// first stage. Returns the stage-history row (from nothing) of each process, which the
    /// create writes once the record is in ([`RecordWrite::insert_stage_entry`] also starts
    /// the record's stage summary).
    pub(super) fn stage_on_create(
        &self,
        save: &SaveContext<'_>,
        object: &Object,
        row: &mut Row,
    ) -> Result<Vec<StageEntry>, RecordError> {
        let mut problems = Vec::new();
        let mut entries = Vec::new();
        for process in self.processes_of(&object.name) {
            let Some(first) = process.stages.first() else {
                continue;
            };
            let stage = match stage_text(row, &process.stage_field) {
                None => {
                    row.insert(process.stage_field.clone(), Value::Text(first.key.clone()));
                    first.key.clone()
                }
                Some(stage) if stage == first.key => stage,
                Some(stage) => {
                    problems.push(FieldProblem {
                        field: process.stage_field.clone(),
                        code: "use_transition",
                        message: format!(
                            "a new record starts in stage `{}`; `{stage}` is reached through \
                             POST /api/v1/records/{}/{{id}}/transition",
                            first.key, object.name
                        ),
                    });
                    continue;
                }
            };
            entries.push(StageEntry {
                id: uuid::Uuid::now_v7().to_string(),
                object: object.name.clone(),
                record_id: stage_text(row, "id").unwrap_or_default(),
                process: process.name.clone(),
                from_stage: None,
                to_stage: stage,
                at: save.now,
                by_user: Some(save.actor.id.clone()),
                comment: None,
                seconds_in_from: None,
            });
        }
        if !problems.is_empty() {
            return Err(RecordError::Invalid(problems));
        }
        Ok(entries)
    }

    /// An update: outside a transition the stage fields may not change (422
    /// `use_transition`). In a transition, the target stage's `require`d fields must be set
    /// (every missing one listed), its guard must pass, and when its approval applies the
    /// stage stays as it was and `save.stage_pending` is set (the other fields given are
    /// still saved).
    pub(super) async fn check_stage_change(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        object: &Object,
        merged: &mut Row,
        current: &Row,
    ) -> Result<(), RecordError> {
        let moving = save.transition;
        let mut problems = Vec::new();
        for process in self.processes_of(&object.name) {
            let field = &process.stage_field;
            let is_this_move = moving.is_some_and(|m| m.process.name == process.name);
            if !is_this_move && merged.get(field) != current.get(field) {
                problems.push(FieldProblem {
                    field: field.clone(),
                    code: "use_transition",
                    message: format!(
                        "`{field}` changes only through POST /api/v1/records/{}/{}/transition",
                        object.name,
                        stage_text(current, "id").unwrap_or_default()
                    ),
                });
            }
        }
        if !problems.is_empty() {
            return Err(RecordError::Invalid(problems));
        }
        let Some(stage_move) = moving else {
            return Ok(());
        };
        let field = &stage_move.process.stage_field;
        merged.insert(field.clone(), Value::Text(stage_move.to.key.clone()));
        let missing = missing_required(stage_move.to, merged);
        if !missing.is_empty() {
            return Err(RecordError::Invalid(missing));
        }
        if let Some(guard) = stage_move.guard {
            let output = self
                .run_script_in(
                    Some(&mut *write),
                    save,
                    guard,
                    script_map(merged),
                    Some(script_map(current)),
                    ScriptEvent::Transition,
                    !save.cause.chain.is_empty(),
                    None,
                )
                .await
                .map_err(|error| match error {
                    RecordError::Script(RunError::Rejected {
                        script, message, ..
                    }) => RecordError::ProcessRefused {
                        code: "guard_refused",
                        message,
                        script: Some(script),
                    },
                    other => other,
                })?;
            if output.value == ScriptValue::Boolean(false) {
                return Err(RecordError::ProcessRefused {
                    code: "guard_refused",
                    message: format!(
                        "the guard `{guard}` refused the move to stage `{}`",
                        stage_move.to.key
                    ),
                    script: Some(guard.to_owned()),
                });
            }
        }
        if stage_move.check_approval
            && let Some(approval) = &stage_move.to.approval
            && self.approval_applies(save.actor, approval.when.as_deref(), merged, current)?
        {
            merged.insert(
                field.clone(),
                current.get(field).cloned().unwrap_or(Value::Null),
            );
            save.stage_pending = true;
        }
        Ok(())
    }

    /// Whether an approval's `when` holds over `row` as it is (for showing a button; a
    /// failing expression counts as not holding).
    pub(crate) fn approval_holds(&self, actor: &Actor, when: Option<&str>, row: &Row) -> bool {
        self.approval_applies(actor, when, row, row)
            .unwrap_or(false)
    }

    /// Whether an approval's `when` holds over the record about to enter its stage (no
    /// `when`: always).
    fn approval_applies(
        &self,
        actor: &Actor,
        when: Option<&str>,
        record: &Row,
        current: &Row,
    ) -> Result<bool, RecordError> {
        let Some(when) = when else {
            return Ok(true);
        };
        let variables = [
            ("record", ScriptValue::Map(script_map(record))),
            ("old", ScriptValue::Map(script_map(current))),
            ("user", expression_user(actor)),
            ("event", ScriptValue::Text("transition".to_owned())),
        ];
        match self.sandbox.evaluate(when, &variables) {
            Ok(ScriptValue::Boolean(holds)) => Ok(holds),
            Ok(_) => Ok(false),
            Err(error) => Err(RecordError::Invalid(vec![FieldProblem {
                field: String::new(),
                code: "approval_failed",
                message: format!(
                    "the approval `when` failed at line {}: {}",
                    error.line, error.message
                ),
            }])),
        }
    }
}

/// The 409 of a change to a record whose transition waits for approval.
pub(crate) fn approval_pending() -> RecordError {
    RecordError::ProcessRefused {
        code: "approval_pending",
        message: "this record waits for an approval and cannot change until it is decided \
                  or recalled"
            .to_owned(),
        script: None,
    }
}
