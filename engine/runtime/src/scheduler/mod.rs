//! The scheduler (docs/scheduler.md): runs every scheduled rule and every pool's auto-return
//! sweep at its cron times, exactly once however many `keel serve` processes share the
//! database.
//!
//! Each process runs a [`Scheduler`]; `tokio-cron-scheduler` is only its trigger, calling
//! [`Scheduler::tick`] every second. A tick takes "now" from the `Clock` and, for each job,
//! computes the occurrences in `(checked_until, now]` in the app timezone, claims each in
//! the database (`keel_store::schedule::claim`: one process wins each occurrence), moves
//! `checked_until` forward, and runs the occurrences it won. It also takes over runs whose
//! lease ran out (their process died) and finishes them from their cursor. Everything is
//! callable directly, so tests with a `ManualClock` step through days without sleeping.
//! One repeated trigger rather than a cron job per schedule: what is due is decided from the
//! clock and the database, never from when a timer fired, so a process that starts, lags or
//! runs under a test clock computes the same occurrences.
//!
//! Misfire: an occurrence no process claimed within [`DEFAULT_GRACE`] of its due time was
//! missed — with every process ticking each second, that happens only while every process
//! was down. Missed occurrences follow the job's policy: `once` → one catch-up run (at the
//! latest missed time, recording how many it stands for), `skip` → none (one `skipped` run
//! record says how many were let go), `all` → one run each, the latest
//! [`MISFIRE_ALL_CAP`] at most. A job's first tick ever starts its schedule at that moment:
//! nothing before it counts as missed.

mod run;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use keel_meta::schedule::CronSchedule;
use keel_meta::{Misfire, RuleTrigger, Schema};
use keel_store::StoreError;
use keel_store::schedule::{self, NewRun, RUNNING, Run, SKIPPED};
use serde::Serialize;
use tokio::sync::watch;

use crate::records::Records;

/// How long a run's claim holds without renewal; a run not renewed by then belongs to a
/// process taken for dead, and another process takes it over.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// How often each process ticks.
pub const DEFAULT_TICK: Duration = Duration::from_secs(1);
/// How late an occurrence may be claimed and still count as on time (not missed).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);
/// Records per chunk of a scheduled rule's run: one transaction each.
pub const CHUNK: u32 = 500;
/// The most missed occurrences `misfire: all` runs (the latest ones).
pub const MISFIRE_ALL_CAP: usize = 100;
/// Processes that may work on one run (the first plus take-overs) before it is failed.
pub const MAX_ATTEMPTS: i64 = 5;
/// The most occurrences of one job one tick considers (a 1-second rule after a week down
/// has 604,800); the rest are considered by the following ticks.
const MAX_OCCURRENCES: usize = 100_000;
/// Expired runs one tick looks at.
const EXPIRED_BATCH: u32 = 20;

/// What a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// A scheduled rule; the job's name is the rule's.
    Schedule,
    /// A pool's auto-return sweep; the job's name is `pool:<pool>`.
    Pool,
    /// The approval reminders of sales processes (docs/processes.md); the job's name is
    /// `approvals:remind`, every minute, present when some stage has an approval.
    Approvals,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Schedule => "schedule",
            JobKind::Pool => "pool",
            JobKind::Approvals => "approvals",
        }
    }
}

/// One scheduled job.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub kind: JobKind,
    /// The rule's or the pool's name.
    pub target: String,
    pub object: String,
    pub schedule: CronSchedule,
    pub misfire: Misfire,
    pub enabled: bool,
}

/// The job name of `pool`'s auto-return sweep.
pub fn pool_job(pool: &str) -> String {
    format!("pool:{pool}")
}

/// Every scheduled job of the app: each scheduled rule (disabled ones too, marked so), then
/// each pool with `auto_return` (misfire `once`).
pub fn jobs(schema: &Schema) -> Vec<Job> {
    let rules = schema
        .rules
        .values()
        .filter_map(|rule| match &rule.trigger {
            RuleTrigger::Schedule { schedule, misfire } => Some(Job {
                name: rule.name.clone(),
                kind: JobKind::Schedule,
                target: rule.name.clone(),
                object: rule.object.clone(),
                schedule: schedule.clone(),
                misfire: *misfire,
                enabled: rule.enabled,
            }),
            RuleTrigger::Event { .. } => None,
        });
    let pools = schema.pools.values().filter_map(|pool| {
        pool.auto_return.as_ref().map(|auto_return| Job {
            name: pool_job(&pool.name),
            kind: JobKind::Pool,
            target: pool.name.clone(),
            object: pool.object.clone(),
            schedule: auto_return.schedule.clone(),
            misfire: Misfire::Once,
            enabled: true,
        })
    });
    let has_approvals = schema
        .processes
        .values()
        .any(|process| process.stages.iter().any(|stage| stage.approval.is_some()));
    // Reminders are computed from how long each step has waited, so a pass after downtime
    // catches up by itself: missed minutes are skipped, not replayed.
    let approvals = CronSchedule::parse(APPROVALS_SCHEDULE)
        .ok()
        .filter(|_| has_approvals)
        .map(|schedule| Job {
            name: crate::processes::REMIND_JOB.to_owned(),
            kind: JobKind::Approvals,
            target: crate::processes::REMIND_JOB.to_owned(),
            object: String::new(),
            schedule,
            misfire: Misfire::Skip,
            enabled: true,
        });
    rules.chain(pools).chain(approvals).collect()
}

/// When the approval reminders job runs: at second 0 of every minute.
const APPROVALS_SCHEDULE: &str = "0 * * * * *";

/// Why a manual run or a run listing was refused.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("there is no rule or pool sweep `{0}`")]
    UnknownJob(String),
    #[error("`{0}` is an event rule: it runs after saves, not on demand")]
    EventRule(String),
    #[error("the run `{0}` is not recorded")]
    MissingRun(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one tick did (for tests and logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Runs this process claimed (catch-ups included, skipped records not).
    pub claimed: usize,
    /// Runs of dead processes this process took over.
    pub taken_over: usize,
}

/// A rule or pool sweep as the admin list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleSummary {
    pub name: String,
    /// `schedule`, `event` or `pool`.
    pub kind: &'static str,
    pub object: String,
    pub schedule: Option<String>,
    pub misfire: Option<Misfire>,
    pub enabled: bool,
    #[serde(skip)]
    pub last_run: Option<Run>,
    pub next_due: Option<DateTime<Utc>>,
}

/// One process's scheduler.
pub struct Scheduler {
    /// The metadata this process runs on now: replaced when a new version is swapped in
    /// ([`Scheduler::swap`]); each tick reads it once at its start.
    setup: std::sync::RwLock<Arc<Setup>>,
    /// Identifies this process in run records: host, pid and a random part.
    process: String,
    /// The lease in milliseconds (settable on a shared scheduler: `set_lease`).
    lease_ms: AtomicU64,
    grace: TimeDelta,
    /// Records per chunk of a scheduled rule's run.
    chunk: u32,
    /// One tick at a time in this process.
    ticking: tokio::sync::Mutex<()>,
    /// Runs this process is working on (never taken over from itself).
    active: Mutex<HashSet<String>>,
}

/// What a scheduler derives from one metadata version.
struct Setup {
    records: Records,
    jobs: Vec<Job>,
    timezone: Tz,
}

impl Setup {
    fn new(records: Records) -> Setup {
        let schema = Arc::clone(records.schema());
        Setup {
            jobs: jobs(&schema),
            timezone: schema.app.timezone.parse().unwrap_or(chrono_tz::UTC),
            records,
        }
    }
}

impl Scheduler {
    pub fn new(records: Records) -> Scheduler {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "host".to_owned());
        let random = uuid::Uuid::new_v4().simple().to_string();
        Scheduler {
            process: format!("{host}/{}/{}", std::process::id(), &random[..8]),
            lease_ms: AtomicU64::new(millis(DEFAULT_LEASE)),
            grace: TimeDelta::from_std(DEFAULT_GRACE).unwrap_or(TimeDelta::MAX),
            chunk: CHUNK,
            ticking: tokio::sync::Mutex::new(()),
            active: Mutex::new(HashSet::new()),
            setup: std::sync::RwLock::new(Arc::new(Setup::new(records))),
        }
    }

    /// Runs on `records` (a new metadata version) from the next tick on; a tick under way
    /// finishes on the version it began with. Runs keep their leases and cursors.
    pub fn swap(&self, records: Records) {
        let setup = Arc::new(Setup::new(records));
        match self.setup.write() {
            Ok(mut current) => *current = setup,
            Err(poisoned) => *poisoned.into_inner() = setup,
        }
    }

    fn setup(&self) -> Arc<Setup> {
        match self.setup.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// How long a claim holds without renewal (tests and `KEEL_SCHEDULER_LEASE_SECS`).
    pub fn with_lease(self, lease: Duration) -> Scheduler {
        self.set_lease(lease);
        self
    }

    /// Sets how long a claim holds without renewal, for runs claimed from now on.
    pub fn set_lease(&self, lease: Duration) {
        self.lease_ms.store(millis(lease), Ordering::Relaxed);
    }

    fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms.load(Ordering::Relaxed))
    }

    /// How late an occurrence may be claimed and not count as missed.
    pub fn with_grace(mut self, grace: Duration) -> Scheduler {
        self.grace = TimeDelta::from_std(grace).unwrap_or(TimeDelta::MAX);
        self
    }

    /// Records per chunk of a scheduled rule's run (tests use small chunks).
    pub fn with_chunk(mut self, chunk: u32) -> Scheduler {
        self.chunk = chunk.max(1);
        self
    }

    /// This process's id in run records.
    pub fn process(&self) -> &str {
        &self.process
    }

    /// The jobs of the current metadata version.
    pub fn jobs(&self) -> Vec<Job> {
        self.setup().jobs.clone()
    }

    /// The records of the current metadata version.
    pub fn records(&self) -> Records {
        self.setup().records.clone()
    }

    fn now(&self) -> DateTime<Utc> {
        self.setup().records.clock().now()
    }

    fn lease_until(&self) -> DateTime<Utc> {
        self.now() + TimeDelta::from_std(self.lease()).unwrap_or(TimeDelta::MAX)
    }

    fn job(&self, name: &str) -> Option<Job> {
        self.setup()
            .jobs
            .iter()
            .find(|job| job.name == name)
            .cloned()
    }

    /// Ticks until `stop` turns true, every `interval`, then waits for a tick under way.
    /// `tokio-cron-scheduler` is the trigger; a tick that finds the previous one still
    /// running does nothing.
    pub async fn run(self: Arc<Self>, interval: Duration, mut stop: watch::Receiver<bool>) {
        use tokio_cron_scheduler::{Job as CronJob, JobScheduler};
        let trigger = async {
            let trigger = JobScheduler::new().await?;
            let scheduler = Arc::clone(&self);
            let job = CronJob::new_repeated_async(interval, move |_, _| {
                let scheduler = Arc::clone(&scheduler);
                Box::pin(async move {
                    if let Ok(_guard) = scheduler.ticking.try_lock()
                        && let Err(error) = scheduler.tick_locked().await
                    {
                        tracing::warn!("the scheduler's tick failed: {error}");
                    }
                })
            })?;
            trigger.add(job).await?;
            trigger.start().await?;
            Ok::<_, tokio_cron_scheduler::JobSchedulerError>(trigger)
        };
        let mut trigger = match trigger.await {
            Ok(trigger) => Some(trigger),
            Err(error) => {
                tracing::error!("the scheduler could not start: {error}");
                None
            }
        };
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
        if let Some(trigger) = trigger.as_mut()
            && let Err(error) = trigger.shutdown().await
        {
            tracing::warn!("the scheduler's trigger did not stop cleanly: {error}");
        }
        // A tick under way finishes (its runs end or keep their progress) before we return.
        let _guard = self.ticking.lock().await;
    }

    /// One tick as of the clock's now: take over expired runs, claim due occurrences, run
    /// what this process won. Waits for a tick of this process under way.
    pub async fn tick(&self) -> Result<TickReport, StoreError> {
        let _guard = self.ticking.lock().await;
        self.tick_locked().await
    }

    async fn tick_locked(&self) -> Result<TickReport, StoreError> {
        let setup = self.setup();
        let db = setup.records.db();
        let now = self.now();
        let mut report = TickReport::default();
        let mut mine: Vec<Run> = Vec::new();
        for run in schedule::expired(db, now, EXPIRED_BATCH).await? {
            if self.is_active(&run.id) {
                continue;
            }
            if run.attempts >= MAX_ATTEMPTS {
                let error = format!(
                    "given up after {} attempts (each process working on it stopped)",
                    run.attempts
                );
                schedule::give_up(db, &run.id, &error, now).await?;
                continue;
            }
            if let Some(run) =
                schedule::take_over(db, &run.id, &self.process, now, self.lease_until()).await?
            {
                tracing::info!(run = %run.id, cursor = ?run.cursor, "took over a run whose process stopped");
                report.taken_over += 1;
                mine.push(run);
            }
        }
        let checked: HashMap<String, DateTime<Utc>> =
            schedule::all_checked(db).await?.into_iter().collect();
        for job in &setup.jobs {
            let Some(from) = checked.get(&job.name) else {
                // The first tick ever: nothing before now counts as missed.
                schedule::start_schedule(db, &job.name, now).await?;
                continue;
            };
            if !job.enabled {
                // A disabled rule's occurrences are let go, so enabling it later fires no
                // catch-up for the time it was off (written at most every half grace).
                if now - *from > self.grace / 2 {
                    schedule::advance(db, &job.name, now).await?;
                }
                continue;
            }
            let occurrences = self.occurrences(&job.schedule, *from, now);
            let Some(last) = occurrences.last().copied() else {
                continue;
            };
            let late = now - self.grace;
            let (missed, on_time): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) =
                occurrences.into_iter().partition(|due| *due < late);
            let mut claims = Vec::new();
            if let Some(latest) = missed.last().copied() {
                let count = i64::try_from(missed.len()).unwrap_or(i64::MAX);
                match job.misfire {
                    Misfire::Once => claims.push(self.new_run(job, latest, true, count, RUNNING)),
                    Misfire::Skip => claims.push(self.new_run(job, latest, true, count, SKIPPED)),
                    Misfire::All => {
                        let skip = missed.len().saturating_sub(MISFIRE_ALL_CAP);
                        for due in &missed[skip..] {
                            claims.push(self.new_run(job, *due, true, 1, RUNNING));
                        }
                    }
                }
                tracing::info!(job = %job.name, missed = missed.len(), policy = ?job.misfire, "occurrences were missed while no process ran");
            }
            for due in on_time {
                claims.push(self.new_run(job, due, false, 0, RUNNING));
            }
            for claim in claims {
                if schedule::claim(db, &claim).await? && claim.state == RUNNING {
                    report.claimed += 1;
                    mine.push(claimed_run(claim));
                }
            }
            schedule::advance(db, &job.name, last).await?;
        }
        futures::future::join_all(mine.into_iter().map(|run| self.execute(run))).await;
        Ok(report)
    }

    /// The occurrences of `schedule` in `(from, until]`, in the app timezone, oldest first.
    fn occurrences(
        &self,
        schedule: &CronSchedule,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let mut found = Vec::new();
        let mut at = from.with_timezone(&self.setup().timezone);
        while found.len() < MAX_OCCURRENCES {
            let Some(next) = schedule.next_after(&at) else {
                break;
            };
            let due = next.with_timezone(&Utc);
            if due > until {
                break;
            }
            found.push(due);
            at = next;
        }
        found
    }

    /// The next occurrence of `job` after now.
    pub fn next_due(&self, job: &Job) -> Option<DateTime<Utc>> {
        job.schedule
            .next_after(&self.now().with_timezone(&self.setup().timezone))
            .map(|next| next.with_timezone(&Utc))
    }

    fn new_run(
        &self,
        job: &Job,
        due_at: DateTime<Utc>,
        catch_up: bool,
        missed: i64,
        state: &str,
    ) -> NewRun {
        NewRun {
            id: format!(
                "{}|{}",
                job.name,
                due_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            job: job.name.clone(),
            kind: job.kind.as_str().to_owned(),
            due_at,
            manual: false,
            catch_up,
            missed,
            state: state.to_owned(),
            process: self.process.clone(),
            started_at: self.now(),
            lease_until: (state == RUNNING).then(|| self.lease_until()),
        }
    }

    fn is_active(&self, id: &str) -> bool {
        self.active
            .lock()
            .map(|active| active.contains(id))
            .unwrap_or(false)
    }

    fn set_active(&self, id: &str, on: bool) {
        if let Ok(mut active) = self.active.lock() {
            if on {
                active.insert(id.to_owned());
            } else {
                active.remove(id);
            }
        }
    }

    /// Claims a manual run of the job `name` (recorded `manual: true`, due now) for this
    /// process; [`Scheduler::execute`] then runs it. An event rule is refused: it has no
    /// records of its own to run over.
    pub async fn claim_manual(&self, name: &str) -> Result<Run, SchedulerError> {
        let Some(job) = self.job(name) else {
            if self.setup().records.schema().rules.contains_key(name) {
                return Err(SchedulerError::EventRule(name.to_owned()));
            }
            return Err(SchedulerError::UnknownJob(name.to_owned()));
        };
        let now = self.now();
        let mut run = self.new_run(&job, now, false, 0, RUNNING);
        run.id = format!("{}|manual|{}", job.name, uuid::Uuid::now_v7());
        run.manual = true;
        schedule::claim(self.setup().records.db(), &run).await?;
        Ok(claimed_run(run))
    }

    /// Runs the job `name` now, to the end → the finished run record.
    pub async fn run_manual(&self, name: &str) -> Result<Run, SchedulerError> {
        let run = self.claim_manual(name).await?;
        let id = run.id.clone();
        self.execute(run).await;
        schedule::run(self.setup().records.db(), &id)
            .await?
            .ok_or(SchedulerError::MissingRun(id))
    }

    /// The runs of the job `name`, newest due first, after `before` (paging) → an unknown
    /// name is refused; an event rule has none.
    pub async fn runs(
        &self,
        name: &str,
        before: Option<(DateTime<Utc>, &str)>,
        limit: u32,
    ) -> Result<Vec<Run>, SchedulerError> {
        if self.job(name).is_none() {
            if self.setup().records.schema().rules.contains_key(name) {
                return Ok(Vec::new());
            }
            return Err(SchedulerError::UnknownJob(name.to_owned()));
        }
        Ok(schedule::runs(self.setup().records.db(), name, before, limit).await?)
    }

    /// Every rule (scheduled and event) and pool sweep, with the last run and next due time
    /// of the scheduled ones.
    pub async fn summaries(&self) -> Result<Vec<RuleSummary>, StoreError> {
        let setup = self.setup();
        let schema = Arc::clone(setup.records.schema());
        let mut summaries = Vec::new();
        for rule in schema.rules.values() {
            let job = setup.jobs.iter().find(|job| job.name == rule.name);
            summaries.push(RuleSummary {
                name: rule.name.clone(),
                kind: job.map_or("event", |job| job.kind.as_str()),
                object: rule.object.clone(),
                schedule: job.map(|job| job.schedule.as_str().to_owned()),
                misfire: job.map(|job| job.misfire),
                enabled: rule.enabled,
                last_run: None,
                next_due: job
                    .filter(|job| job.enabled)
                    .and_then(|job| self.next_due(job)),
            });
        }
        for job in setup
            .jobs
            .iter()
            .filter(|job| job.kind != JobKind::Schedule)
        {
            summaries.push(RuleSummary {
                name: job.name.clone(),
                kind: job.kind.as_str(),
                object: job.object.clone(),
                schedule: Some(job.schedule.as_str().to_owned()),
                misfire: Some(job.misfire),
                enabled: job.enabled,
                last_run: None,
                next_due: self.next_due(job),
            });
        }
        for summary in &mut summaries {
            if summary.kind != "event" {
                summary.last_run = schedule::runs(setup.records.db(), &summary.name, None, 1)
                    .await?
                    .into_iter()
                    .next();
            }
        }
        Ok(summaries)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The stored form of a run this process just claimed.
fn claimed_run(run: NewRun) -> Run {
    Run {
        id: run.id,
        job: run.job,
        kind: run.kind,
        due_at: run.due_at,
        manual: run.manual,
        catch_up: run.catch_up,
        missed: run.missed,
        state: run.state,
        process: run.process,
        started_at: run.started_at,
        finished_at: None,
        lease_until: run.lease_until,
        attempts: 1,
        matched: 0,
        changed: 0,
        errors: 0,
        error: None,
        cursor: None,
    }
}
