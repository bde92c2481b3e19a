//! Approvals of transitions (docs/processes.md): opening one when a transition enters a
//! stage whose `approval` applies, finding each step's approvers when the step is reached,
//! deciding (approve, reject, recall), the trail, and the inbox.
//!
//! Each decision is one write transaction: the approval row is locked first
//! (`approval_for_update`), so two approvers deciding at once run one after the other and the
//! second sees the first's decision. The final approval completes the transition in the same
//! transaction.

use chrono::{DateTime, Utc};
use keel_meta::{ApprovalMode, Approver, IfNoApprover, Object, Process, Stage};
use keel_store::outbox::NewNotification;
use keel_store::processes::{ApprovalRow, ApprovalTask};
use keel_store::records::{RecordWrite, Row};
use serde_json::{Value as Json, json};

use crate::actor::Actor;
use crate::coerce::Source;
use crate::processes::{Processes, checked_comment, stage_of, text_of};
use crate::records::{RecordError, SaveContext, access};

/// The most approvals one list answers with.
pub const MAX_APPROVALS_LISTED: u32 = 500;

fn refused(code: &'static str, message: impl Into<String>) -> RecordError {
    RecordError::ProcessRefused {
        code,
        message: message.into(),
        script: None,
    }
}

impl Processes {
    /// Opens the approval of a transition of `row` into `target` (whose approval applied),
    /// reaching its first step with approvers; returns it (state `approved` when every step
    /// passed without anyone to ask).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn open_approval(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        object: &Object,
        process: &Process,
        target: &Stage,
        row: &Row,
        from: String,
        comment: Option<String>,
    ) -> Result<ApprovalRow, RecordError> {
        let mut approval = ApprovalRow {
            id: uuid::Uuid::now_v7().to_string(),
            object: object.name.clone(),
            record_id: text_of(row, "id").unwrap_or_default(),
            process: process.name.clone(),
            from_stage: from,
            stage: target.key.clone(),
            state: "pending".to_owned(),
            step: 0,
            requested_by: save.actor.id.clone(),
            requested_at: save.now,
            comment,
            decided_at: None,
            decided_by: None,
            decision_comment: None,
        };
        write.insert_approval(&approval).await?;
        self.reach_step(write, save, &mut approval, target, row, 0)
            .await?;
        write.update_approval(&approval).await?;
        Ok(approval)
    }

    /// Moves `approval` to step `first` or the first step after it with anyone to ask,
    /// writing that step's tasks and notifying its approvers; when no step is left, marks it
    /// approved (by `save.actor`).
    async fn reach_step(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        approval: &mut ApprovalRow,
        target: &Stage,
        row: &Row,
        first: usize,
    ) -> Result<(), RecordError> {
        let Some(rule) = &target.approval else {
            return Ok(());
        };
        for (index, step) in rule.steps.iter().enumerate().skip(first) {
            let approvers = self
                .approvers(
                    &step.approvers,
                    rule.if_no_approver,
                    row,
                    &approval.requested_by,
                )
                .await?;
            if approvers.is_empty() {
                continue;
            }
            approval.step = i64::try_from(index).unwrap_or(i64::MAX);
            let tasks: Vec<ApprovalTask> = approvers
                .iter()
                .map(|approver| ApprovalTask {
                    id: uuid::Uuid::now_v7().to_string(),
                    approval_id: approval.id.clone(),
                    step: approval.step,
                    approver: approver.clone(),
                    state: "pending".to_owned(),
                    created_at: save.now,
                    decided_at: None,
                    comment: None,
                    reminded_at: None,
                    reminders: 0,
                })
                .collect();
            write.insert_approval_tasks(&tasks).await?;
            let title = self.title(row, &approval.object);
            let message = format!(
                "请审批：{title} 申请进入「{}」/ Approval needed: {title} → {}",
                approval.stage, approval.stage
            );
            self.notify(write, save, &approvers, &message, approval, "request")
                .await?;
            return Ok(());
        }
        approval.step = i64::try_from(rule.steps.len()).unwrap_or(i64::MAX);
        approval.state = "approved".to_owned();
        approval.decided_at = Some(save.now);
        approval.decided_by = Some(save.actor.id.clone());
        Ok(())
    }

    /// The record's title text, for messages.
    fn title(&self, row: &Row, object: &str) -> String {
        let field = self
            .records
            .schema()
            .object(object)
            .map_or("id", |object| object.title.as_str());
        text_of(row, field)
            .or_else(|| text_of(row, "id"))
            .unwrap_or_default()
    }

    /// In-app notifications (and their email and chat deliveries) to `users`, in `write`.
    async fn notify(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        users: &[String],
        message: &str,
        approval: &ApprovalRow,
        what: &str,
    ) -> Result<(), RecordError> {
        let notifications: Vec<NewNotification> = users
            .iter()
            .map(|user| NewNotification {
                id: uuid::Uuid::now_v7().to_string(),
                user_id: user.clone(),
                message: message.to_owned(),
                object: Some(approval.object.clone()),
                record_id: Some(approval.record_id.clone()),
                created_at: save.now,
            })
            .collect();
        let key = format!(
            "approval/{}/{what}/{}/{}",
            approval.id,
            approval.step,
            uuid::Uuid::now_v7()
        );
        self.records
            .write_notifications(write, save.actor, save.now, &notifications, Some(&key))
            .await?;
        if !notifications.is_empty() {
            save.notified = true;
            save.outboxed = true;
        }
        Ok(())
    }

    /// The user ids who approve a step: its approvers resolved against the record's owner,
    /// active users only, never the requester; when that leaves nobody, `if_no_approver`
    /// (every active admin but the requester, or nobody: the step passes).
    async fn approvers(
        &self,
        approvers: &[Approver],
        if_none: IfNoApprover,
        row: &Row,
        requester: &str,
    ) -> Result<Vec<String>, RecordError> {
        let db = self.records.db();
        let users = keel_store::users::list(db).await?;
        let mut found: Vec<String> = Vec::new();
        for approver in approvers {
            match approver {
                Approver::Manager { levels } => {
                    let mut current = text_of(row, "owner");
                    for _ in 0..*levels {
                        current = current.and_then(|id| {
                            users
                                .iter()
                                .find(|user| user.id == id)
                                .and_then(|user| user.manager_id.clone())
                        });
                    }
                    found.extend(current);
                }
                Approver::Role(role) => found.extend(
                    users
                        .iter()
                        .filter(|user| user.roles.iter().any(|r| r == role))
                        .map(|user| user.id.clone()),
                ),
                Approver::User(name) => found.extend(
                    users
                        .iter()
                        .filter(|user| user.username == *name || user.id == *name)
                        .map(|user| user.id.clone()),
                ),
            }
        }
        let active =
            |id: &String| id != requester && users.iter().any(|user| user.id == *id && user.active);
        found.retain(active);
        found.sort();
        found.dedup();
        if found.is_empty() && if_none == IfNoApprover::Admin {
            let schema = self.records.schema();
            found = users
                .iter()
                .filter(|user| {
                    user.active
                        && user.id != requester
                        && user
                            .roles
                            .iter()
                            .any(|role| schema.roles.roles.get(role).is_some_and(|r| r.admin))
                })
                .map(|user| user.id.clone())
                .collect();
            found.sort();
        }
        Ok(found)
    }

    /// Approves the approval `id` as one of the approvers of its current step.
    pub async fn approve(
        &self,
        actor: &Actor,
        id: &str,
        comment: Option<String>,
    ) -> Result<Json, RecordError> {
        self.decide(actor, id, comment, Decision::Approve).await
    }

    /// Rejects the approval `id`: it ends, the record stays in its stage and is unlocked.
    pub async fn reject(
        &self,
        actor: &Actor,
        id: &str,
        comment: Option<String>,
    ) -> Result<Json, RecordError> {
        self.decide(actor, id, comment, Decision::Reject).await
    }

    /// Withdraws the approval `id` (its requester only): the record is unlocked.
    pub async fn recall(
        &self,
        actor: &Actor,
        id: &str,
        comment: Option<String>,
    ) -> Result<Json, RecordError> {
        self.decide(actor, id, comment, Decision::Recall).await
    }

    async fn decide(
        &self,
        actor: &Actor,
        id: &str,
        comment: Option<String>,
        decision: Decision,
    ) -> Result<Json, RecordError> {
        let comment = checked_comment(comment)?;
        let now = self.records.clock().now();
        let mut write = self.records.db().begin_records_write().await?;
        let Some(mut approval) = write.approval_for_update(id).await? else {
            return Err(RecordError::NotFound);
        };
        let tasks = write.approval_tasks_of(id).await?;
        if !self.may_see(actor, &approval, &tasks).await? {
            return Err(RecordError::NotFound);
        }
        if approval.state != "pending" {
            return Err(refused(
                "approval_decided",
                format!("this approval is already {}", approval.state),
            ));
        }
        let schema = self.records.schema();
        let Some(object) = schema.object(&approval.object) else {
            return Err(RecordError::NotFound);
        };
        let Some(process) = schema.processes.get(&approval.process) else {
            return Err(RecordError::NotFound);
        };
        let Some(target) = stage_of(process, &approval.stage) else {
            return Err(RecordError::NotFound);
        };
        let mut save = SaveContext::new(actor, now, Source::Json);
        let mine: Vec<&ApprovalTask> = tasks
            .iter()
            .filter(|task| {
                task.step == approval.step && task.state == "pending" && task.approver == actor.id
            })
            .collect();
        let step_tasks: Vec<&ApprovalTask> = tasks
            .iter()
            .filter(|task| task.step == approval.step && task.state == "pending")
            .collect();
        let mut record = None;
        match decision {
            Decision::Recall => {
                if approval.requested_by != actor.id {
                    return Err(refused(
                        "not_the_requester",
                        "only the requester may recall an approval",
                    ));
                }
                for task in &step_tasks {
                    write.decide_task(&task.id, "skipped", now, None).await?;
                }
                approval.state = "recalled".to_owned();
                approval.decided_at = Some(now);
                approval.decided_by = Some(actor.id.clone());
                approval.decision_comment = comment;
                write.update_approval(&approval).await?;
                let approvers: Vec<String> = step_tasks
                    .iter()
                    .map(|task| task.approver.clone())
                    .collect();
                let message = format!("审批已撤回 / Approval recalled: → {}", approval.stage);
                self.notify(
                    &mut write, &mut save, &approvers, &message, &approval, "recall",
                )
                .await?;
            }
            Decision::Reject | Decision::Approve => {
                if mine.is_empty() {
                    return Err(refused(
                        "not_an_approver",
                        "you are not an approver of this approval's current step",
                    ));
                }
                let approve = matches!(decision, Decision::Approve);
                for task in &mine {
                    let state = if approve { "approved" } else { "rejected" };
                    write
                        .decide_task(&task.id, state, now, comment.as_deref())
                        .await?;
                }
                let mode = target
                    .approval
                    .as_ref()
                    .and_then(|rule| {
                        rule.steps
                            .get(usize::try_from(approval.step).unwrap_or(usize::MAX))
                    })
                    .map_or(ApprovalMode::Any, |step| step.mode);
                let others_pending = step_tasks
                    .iter()
                    .filter(|task| task.approver != actor.id)
                    .count();
                let step_done = !approve || mode == ApprovalMode::Any || others_pending == 0;
                if step_done {
                    for task in step_tasks.iter().filter(|task| task.approver != actor.id) {
                        write.decide_task(&task.id, "skipped", now, None).await?;
                    }
                }
                if !approve {
                    approval.state = "rejected".to_owned();
                    approval.decided_at = Some(now);
                    approval.decided_by = Some(actor.id.clone());
                    approval.decision_comment = comment;
                    write.update_approval(&approval).await?;
                    let message = format!("审批被拒绝 / Approval rejected: → {}", approval.stage);
                    self.notify(
                        &mut write,
                        &mut save,
                        std::slice::from_ref(&approval.requested_by),
                        &message,
                        &approval,
                        "reject",
                    )
                    .await?;
                } else if step_done {
                    let row = write
                        .get_for_update(object, &approval.record_id)
                        .await?
                        .ok_or(RecordError::NotFound)?;
                    let next = usize::try_from(approval.step + 1).unwrap_or(usize::MAX);
                    self.reach_step(&mut write, &mut save, &mut approval, target, &row, next)
                        .await?;
                    if approval.state == "approved" {
                        approval.decision_comment = comment;
                    }
                    write.update_approval(&approval).await?;
                    if approval.state == "approved" {
                        let saved = self
                            .complete(
                                &mut write,
                                &mut save,
                                object,
                                process,
                                target,
                                &approval.record_id,
                                &approval,
                            )
                            .await?;
                        record = Some(saved);
                        let message =
                            format!("审批已通过 / Approval granted: → {}", approval.stage);
                        self.notify(
                            &mut write,
                            &mut save,
                            std::slice::from_ref(&approval.requested_by),
                            &message,
                            &approval,
                            "approve",
                        )
                        .await?;
                    }
                }
            }
        }
        write.commit().await?;
        self.records.after_commit(&save);
        drop(record);
        let mut rendered = self.render_approval(&approval).await?;
        if let Some(map) = rendered.as_object_mut() {
            let record = self
                .records
                .get(actor, &approval.object, &approval.record_id)
                .await
                .ok();
            map.insert("record".to_owned(), record.unwrap_or(Json::Null));
        }
        Ok(rendered)
    }

    /// Whether `actor` may see an approval: its requester, one of its approvers, an admin,
    /// or someone who may read its record.
    async fn may_see(
        &self,
        actor: &Actor,
        approval: &ApprovalRow,
        tasks: &[ApprovalTask],
    ) -> Result<bool, RecordError> {
        if approval.requested_by == actor.id
            || tasks.iter().any(|task| task.approver == actor.id)
            || access::is_admin(self.records.schema(), actor)
        {
            return Ok(true);
        }
        match self
            .records
            .get(actor, &approval.object, &approval.record_id)
            .await
        {
            Ok(_) => Ok(true),
            Err(RecordError::NotFound) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// An approval as the API shows it, with its trail (every task, by step).
    pub(super) async fn render_approval(
        &self,
        approval: &ApprovalRow,
    ) -> Result<Json, RecordError> {
        let tasks = keel_store::processes::approval_tasks(self.records.db(), &approval.id).await?;
        Ok(approval_json(self, approval, &tasks))
    }

    /// The approvals that involve the actor, newest first: with `state` `pending`, those
    /// waiting for the actor's decision (the inbox); with another state, those the actor
    /// requested or took part in, in that state; without, all of those.
    pub async fn approvals(
        &self,
        actor: &Actor,
        state: Option<&str>,
    ) -> Result<Vec<Json>, RecordError> {
        if let Some(state) = state
            && !matches!(state, "pending" | "approved" | "rejected" | "recalled")
        {
            return Err(RecordError::BadFilter {
                field: "state".to_owned(),
                message: "state is one of pending, approved, rejected, recalled".to_owned(),
            });
        }
        let rows = keel_store::processes::approvals_for(
            self.records.db(),
            &actor.id,
            state == Some("pending"),
            state,
            MAX_APPROVALS_LISTED,
        )
        .await?;
        let mut listed = Vec::with_capacity(rows.len());
        for approval in &rows {
            let mut rendered = self.render_approval(approval).await?;
            if let Some(map) = rendered.as_object_mut() {
                let title = self
                    .records
                    .get(actor, &approval.object, &approval.record_id)
                    .await
                    .ok()
                    .and_then(|record| {
                        let object = self.records.schema().object(&approval.object)?;
                        record.get(&object.title).cloned()
                    });
                map.insert("record_title".to_owned(), title.unwrap_or(Json::Null));
            }
            listed.push(rendered);
        }
        Ok(listed)
    }

    /// One approval with its trail; 404 when the actor may not see it.
    pub async fn approval(&self, actor: &Actor, id: &str) -> Result<Json, RecordError> {
        let db = self.records.db();
        let approval = keel_store::processes::approval(db, id)
            .await?
            .ok_or(RecordError::NotFound)?;
        let tasks = keel_store::processes::approval_tasks(db, id).await?;
        if !self.may_see(actor, &approval, &tasks).await? {
            return Err(RecordError::NotFound);
        }
        Ok(approval_json(self, &approval, &tasks))
    }

    /// Every approval of a record the actor may read, newest first, each with its trail.
    pub async fn record_approvals(
        &self,
        actor: &Actor,
        object: &str,
        id: &str,
    ) -> Result<Vec<Json>, RecordError> {
        self.process_of(object)?;
        self.records.get(actor, object, id).await?;
        let rows =
            keel_store::processes::approvals_of_record(self.records.db(), object, id).await?;
        let mut listed = Vec::with_capacity(rows.len());
        for approval in &rows {
            listed.push(self.render_approval(approval).await?);
        }
        Ok(listed)
    }

    /// The pending approval of a record, or else its latest one (for the record page).
    pub async fn record_approval(
        &self,
        actor: &Actor,
        object: &str,
        id: &str,
    ) -> Result<Option<Json>, RecordError> {
        let all = self.record_approvals(actor, object, id).await?;
        let pending = all
            .iter()
            .position(|approval| approval.get("state").and_then(Json::as_str) == Some("pending"));
        Ok(match pending {
            Some(index) => all.into_iter().nth(index),
            None => all.into_iter().next(),
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Decision {
    Approve,
    Reject,
    Recall,
}

fn at(value: Option<DateTime<Utc>>) -> Json {
    value.map_or(Json::Null, |at| {
        json!(keel_meta::Value::Datetime(at).to_json())
    })
}

fn approval_json(processes: &Processes, approval: &ApprovalRow, tasks: &[ApprovalTask]) -> Json {
    let steps = processes
        .records
        .schema()
        .processes
        .get(&approval.process)
        .and_then(|process| stage_of(process, &approval.stage))
        .and_then(|stage| stage.approval.as_ref())
        .map_or(0, |rule| rule.steps.len());
    let waiting_for: Vec<&str> = tasks
        .iter()
        .filter(|task| {
            approval.state == "pending" && task.step == approval.step && task.state == "pending"
        })
        .map(|task| task.approver.as_str())
        .collect();
    json!({
        "id": approval.id,
        "object": approval.object,
        "record_id": approval.record_id,
        "process": approval.process,
        "from_stage": approval.from_stage,
        "stage": approval.stage,
        "state": approval.state,
        "step": approval.step,
        "steps": steps,
        "requested_by": approval.requested_by,
        "requested_at": at(Some(approval.requested_at)),
        "comment": approval.comment,
        "decided_at": at(approval.decided_at),
        "decided_by": approval.decided_by,
        "decision_comment": approval.decision_comment,
        "waiting_for": waiting_for,
        "tasks": tasks.iter().map(|task| json!({
            "step": task.step,
            "approver": task.approver,
            "state": task.state,
            "reached_at": at(Some(task.created_at)),
            "decided_at": at(task.decided_at),
            "comment": task.comment,
            "reminders": task.reminders,
        })).collect::<Vec<_>>(),
    })
}
