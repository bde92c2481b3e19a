//! Approval reminders (docs/processes.md): a built-in scheduler job reminds each approver of
//! a pending step once per `remind_after` of the stage's approval. Reminder `n` of a task is
//! due `n × remind_after` after the step reached the approver; it is claimed by a conditional
//! update of the task (`reminders < n`) in the transaction that writes the notification, so
//! however many processes run the job, each reminder goes out exactly once.

use keel_meta::Duration;
use keel_store::outbox::NewNotification;
use serde::Serialize;

use crate::actor::Actor;
use crate::processes::{Processes, stage_of};
use crate::records::RecordError;

/// The scheduler job's name.
pub const REMIND_JOB: &str = "approvals:remind";
/// Tasks one pass looks at; the rest wait for the next pass.
const TASKS_PER_PASS: u32 = 1_000;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RemindOutcome {
    /// Pending tasks looked at.
    pub waiting: u64,
    /// Reminders this process sent.
    pub reminded: u64,
}

impl Processes {
    /// The shortest `remind_after` of any approval of the app, if any approval exists.
    fn shortest_remind_after(&self) -> Option<Duration> {
        self.records
            .schema()
            .processes
            .values()
            .flat_map(|process| process.stages.iter())
            .filter_map(|stage| stage.approval.as_ref().map(|rule| rule.remind_after))
            .min_by_key(|duration| duration.as_std())
    }

    /// Sends every reminder due now that no process has sent yet.
    pub async fn remind(&self) -> Result<RemindOutcome, RecordError> {
        let mut outcome = RemindOutcome::default();
        let Some(shortest) = self.shortest_remind_after() else {
            return Ok(outcome);
        };
        let now = self.records.clock().now();
        let Ok(shortest) = chrono::Duration::from_std(shortest.as_std()) else {
            return Ok(outcome);
        };
        let waiting =
            keel_store::processes::waiting_tasks(self.records.db(), now - shortest, TASKS_PER_PASS)
                .await?;
        let schema = self.records.schema();
        let system = Actor::system();
        for (task, approval) in waiting {
            outcome.waiting += 1;
            let Some(rule) = schema
                .processes
                .get(&approval.process)
                .and_then(|process| stage_of(process, &approval.stage))
                .and_then(|stage| stage.approval.as_ref())
            else {
                continue;
            };
            let period = rule.remind_after.as_std().as_secs();
            if period == 0 {
                continue;
            }
            let waited = (now - task.created_at).num_seconds().max(0).unsigned_abs();
            let due = i64::try_from(waited / period).unwrap_or(i64::MAX);
            if due <= task.reminders {
                continue;
            }
            let mut write = self.records.db().begin_records_write().await?;
            if !write.claim_reminder(&task.id, due, now).await? {
                continue;
            }
            let message = format!(
                "审批提醒：待你审批（进入「{}」）/ Reminder: an approval waits for you (→ {})",
                approval.stage, approval.stage
            );
            let notification = NewNotification {
                id: uuid::Uuid::now_v7().to_string(),
                user_id: task.approver.clone(),
                message,
                object: Some(approval.object.clone()),
                record_id: Some(approval.record_id.clone()),
                created_at: now,
            };
            let key = format!("approval/{}/remind/{}/{due}", approval.id, task.id);
            self.records
                .write_notifications(&mut write, &system, now, &[notification], Some(&key))
                .await?;
            write.commit().await?;
            self.records.signals().notifications.notify_one();
            self.records.signals().outbox.notify_one();
            outcome.reminded += 1;
        }
        Ok(outcome)
    }
}
