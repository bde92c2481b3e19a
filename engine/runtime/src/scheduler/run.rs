//! Running one claimed run to its end: a scheduled rule in chunks
//! (`Records::schedule_chunk`), or a pool's auto-return sweep (`pools::sweep`), with the
//! run's lease renewed while it works. A run whose process loses it (its lease ran out and
//! another process took it over) stops without writing; a run that meets a database
//! failure keeps its progress and is retried by whichever process takes it over once its
//! lease runs out.

use std::sync::Arc;

use chrono::TimeDelta;
use keel_store::schedule::{self, Counts, DONE, FAILED, Run};

use super::{JobKind, Scheduler};
use crate::records::RecordError;

/// How a run's work ended.
enum Ended {
    /// Through: finish the run with these counts (added to what its chunks recorded).
    Done(Counts),
    /// Another process holds the run now.
    Lost,
    /// A failure a later attempt may not meet (the database was unavailable): left
    /// running, to be taken over when its lease runs out.
    Retry(String),
    /// A failure for good (a filter the database refuses, a job that no longer exists).
    Failed(String),
}

impl Scheduler {
    /// Runs the claimed `run` to its end and records how it ended.
    pub async fn execute(&self, run: Run) {
        self.set_active(&run.id, true);
        let renewer = self.renew_while_running(&run.id);
        let ended = match self.job(&run.job) {
            None => Ended::Failed(format!(
                "there is no rule or pool sweep `{}` any more",
                run.job
            )),
            Some(job) => match job.kind {
                JobKind::Schedule => self.run_rule(&job.target, &run).await,
                JobKind::Pool => self.run_pool(&job.target).await,
                JobKind::Approvals => self.run_reminders().await,
            },
        };
        renewer.abort();
        let records = self.records();
        let db = records.db();
        let now = self.now();
        let finished = match ended {
            Ended::Done(counts) => {
                schedule::finish(db, &run.id, &self.process, DONE, counts, None, now).await
            }
            Ended::Failed(error) => {
                tracing::warn!(run = %run.id, "the run failed: {error}");
                schedule::finish(
                    db,
                    &run.id,
                    &self.process,
                    FAILED,
                    Counts::default(),
                    Some(&error),
                    now,
                )
                .await
            }
            Ended::Retry(error) => {
                tracing::warn!(run = %run.id, "the run stopped and will be retried: {error}");
                Ok(true)
            }
            Ended::Lost => Ok(false),
        };
        match finished {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(run = %run.id, "another process holds the run now; it finishes it");
            }
            Err(error) => {
                tracing::warn!(run = %run.id, "the run's end could not be recorded: {error}")
            }
        }
        self.set_active(&run.id, false);
    }

    /// Renews the lease of the run `id` every third of the lease until aborted.
    fn renew_while_running(&self, id: &str) -> tokio::task::JoinHandle<()> {
        let records = self.records();
        let db = records.db().clone();
        let clock = Arc::clone(records.clock());
        let lease = self.lease();
        let process = self.process.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            let every = (lease / 3).max(std::time::Duration::from_millis(100));
            loop {
                tokio::time::sleep(every).await;
                let until = clock.now() + TimeDelta::from_std(lease).unwrap_or(TimeDelta::MAX);
                match schedule::renew(&db, &id, &process, until).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(error) => {
                        tracing::warn!(run = %id, "could not renew the run's lease: {error}")
                    }
                }
            }
        })
    }

    async fn run_rule(&self, rule: &str, run: &Run) -> Ended {
        let schema = Arc::clone(self.records().schema());
        let Some(rule) = schema.rules.get(rule) else {
            return Ended::Failed(format!("there is no rule `{rule}` any more"));
        };
        let mut cursor = run.cursor.clone();
        loop {
            let chunk = match self
                .records()
                .schedule_chunk(
                    rule,
                    &run.id,
                    &self.process,
                    cursor.as_deref(),
                    self.chunk,
                    self.lease_until(),
                )
                .await
            {
                Ok(chunk) => chunk,
                Err(RecordError::Store(error)) => return Ended::Retry(error.to_string()),
                Err(error) => return Ended::Failed(error.to_string()),
            };
            if !chunk.held {
                return Ended::Lost;
            }
            if chunk.read < self.chunk as usize {
                return Ended::Done(Counts::default());
            }
            cursor = chunk.last;
        }
    }

    /// One pass of the approval reminders (`crate::processes`): matched = tasks waiting,
    /// changed = reminders this process sent.
    async fn run_reminders(&self) -> Ended {
        let processes = crate::processes::Processes::new(self.records());
        match processes.remind().await {
            Ok(outcome) => Ended::Done(Counts {
                matched: i64::try_from(outcome.waiting).unwrap_or(i64::MAX),
                changed: i64::try_from(outcome.reminded).unwrap_or(i64::MAX),
                errors: 0,
            }),
            Err(RecordError::Store(error)) => Ended::Retry(error.to_string()),
            Err(error) => Ended::Failed(error.to_string()),
        }
    }

    async fn run_pool(&self, pool: &str) -> Ended {
        match crate::pools::sweep(&self.records(), pool, self.now()).await {
            Ok(outcome) => Ended::Done(Counts {
                matched: i64::try_from(outcome.matched).unwrap_or(i64::MAX),
                changed: i64::try_from(outcome.changed).unwrap_or(i64::MAX),
                errors: i64::try_from(outcome.errors).unwrap_or(i64::MAX),
            }),
            Err(RecordError::Store(error)) => Ended::Retry(error.to_string()),
            Err(error) => Ended::Failed(error.to_string()),
        }
    }
}
