//! The outbox worker: every `keel serve` process runs one. It claims due rows of
//! `keel_outbox` with a lease, does each, and records how it went (docs/rules.md,
//! "Delivery").
//!
//! - `rule` and `script` rows run through [`Records::perform`], in one transaction with
//!   marking the row done: exactly once.
//! - `webhook`, `email` and `chat` rows leave the database: delivered at least once (a crash
//!   after the delivery and before the row is marked done delivers again; the receiver drops
//!   repeats by the `X-Keel-Delivery` id), retried with exponential backoff, and dead after
//!   [`MAX_ATTEMPTS`] — an admin sees them in `GET /admin/outbox` and may retry them.
//!
//! The worker wakes when this process commits outbox rows, and polls every
//! [`POLL_INTERVAL`] for rows other processes wrote and retries that came due.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt as _;
use keel_store::outbox::{self, Claimed};
use serde_json::Value as Json;
use tokio::sync::watch;

use crate::deliver::{Deliverer, Failure};
use crate::records::effects::{
    ChatDelivery, EmailDelivery, KIND_CHAT, KIND_EMAIL, KIND_RULE, KIND_SCRIPT, KIND_WEBHOOK,
    Performed, WebhookDelivery,
};
use crate::records::{RecordError, Records};

/// How long a claim holds a row; a worker that has not finished by then is taken for
/// crashed, and the row is claimed again.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often an idle worker looks for work written by other processes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Rows claimed at once.
pub const BATCH: u32 = 100;
/// Attempts of a delivery that leaves the database before it is dead.
pub const MAX_ATTEMPTS: i64 = 8;
/// Records whose rules and scripts run side by side, per worker (PostgreSQL only).
pub const LOCAL_CONCURRENCY: usize = 4;
/// Deliveries that leave the database under way at once, per worker.
pub const DELIVERY_CONCURRENCY: usize = 16;
/// How long a webhook or chat message may take.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// One process's outbox worker.
pub struct OutboxWorker {
    records: Records,
    /// The metadata versions of a running server: each batch runs on the current one.
    live: Option<Arc<crate::metadata::Live>>,
    deliverer: Deliverer,
    /// Identifies this worker's claims (`claimed_by`).
    id: String,
    /// The delay before the first retry; doubled for each further attempt, at most an hour.
    retry_base: Duration,
}

impl OutboxWorker {
    pub fn new(records: Records) -> OutboxWorker {
        OutboxWorker {
            deliverer: Deliverer::new(DELIVERY_TIMEOUT).with_clock(Arc::clone(records.clock())),
            id: format!("{}/{}", std::process::id(), uuid::Uuid::now_v7()),
            retry_base: Duration::from_secs(10),
            records,
            live: None,
        }
    }

    /// Runs each batch on the current metadata version of `live` (docs/studio.md).
    pub fn with_live(mut self, live: Arc<crate::metadata::Live>) -> OutboxWorker {
        self.live = Some(live);
        self
    }

    fn current(&self) -> Records {
        match &self.live {
            Some(live) => live.current().records.clone(),
            None => self.records.clone(),
        }
    }

    /// The delay before the first retry (tests shorten it).
    pub fn with_retry_base(mut self, base: Duration) -> OutboxWorker {
        self.retry_base = base;
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Works until `stop` turns true: claims and does due rows, then waits for a wake-up or
    /// the poll interval.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let worker = Arc::new(self);
        loop {
            if *stop.borrow() {
                return;
            }
            let worked = match worker.work_once().await {
                Ok(count) => count,
                Err(error) => {
                    tracing::warn!("the outbox worker could not claim work: {error}");
                    0
                }
            };
            if worked > 0 {
                continue;
            }
            let signals = Arc::clone(worker.records.signals());
            tokio::select! {
                _ = signals.outbox.notified() => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Claims one batch of due rows and does them → how many were claimed.
    pub async fn work_once(&self) -> Result<usize, keel_store::StoreError> {
        let records = &self.current();
        let now = records.clock().now();
        let lease_until = now + TimeDelta::from_std(LEASE).unwrap_or(TimeDelta::MAX);
        let claimed = outbox::claim(records.db(), &self.id, now, lease_until, BATCH).await?;
        let count = claimed.len();
        // Work in this database runs in the order it was written for each record (a
        // record's rules in the order of its saves); different records' work runs side by
        // side on PostgreSQL (SQLite has one writer at a time anyway). Deliveries that leave
        // the database wait on the network, so up to DELIVERY_CONCURRENCY are under way.
        let (local, external): (Vec<Claimed>, Vec<Claimed>) = claimed
            .into_iter()
            .partition(|row| matches!(row.kind.as_str(), KIND_RULE | KIND_SCRIPT));
        let mut by_record: Vec<(String, Vec<Claimed>)> = Vec::new();
        for row in local {
            let key = record_key(&row.payload);
            match by_record.iter_mut().find(|(other, _)| *other == key) {
                Some((_, rows)) => rows.push(row),
                None => by_record.push((key, vec![row])),
            }
        }
        let side_by_side = match records.db().dialect() {
            keel_store::Dialect::Postgres => LOCAL_CONCURRENCY,
            keel_store::Dialect::Sqlite => 1,
        };
        futures::stream::iter(by_record)
            .for_each_concurrent(side_by_side, |(_, rows)| async move {
                for row in rows {
                    self.work(records, row).await;
                }
            })
            .await;
        futures::stream::iter(external)
            .for_each_concurrent(DELIVERY_CONCURRENCY, |row| self.work(records, row))
            .await;
        Ok(count)
    }

    async fn work(&self, records: &Records, row: Claimed) {
        let outcome = match row.kind.as_str() {
            KIND_RULE | KIND_SCRIPT => {
                match records
                    .perform(&row.id, &row.kind, &row.payload, &self.id)
                    .await
                {
                    Ok((performed, notified, outboxed)) => {
                        let signals = records.signals();
                        if notified {
                            signals.notifications.notify_one();
                        }
                        if outboxed {
                            signals.outbox.notify_one();
                        }
                        performed
                    }
                    Err(error) => Performed::Retry(error.to_string()),
                }
            }
            KIND_WEBHOOK | KIND_EMAIL | KIND_CHAT => match self.deliver(records, &row).await {
                Ok(()) => {
                    let now = records.clock().now();
                    if let Err(error) = outbox::finish(records.db(), &row.id, &self.id, now).await {
                        tracing::warn!(outbox = %row.id, "a delivery went out but could not be marked done: {error}");
                    }
                    return;
                }
                Err(failure) if failure.retryable => Performed::Retry(failure.message),
                Err(failure) => Performed::Dead(failure.message),
            },
            other => Performed::Dead(format!("unknown outbox kind `{other}`")),
        };
        let now = records.clock().now();
        let result = match outcome {
            Performed::Done => return,
            Performed::Retry(error) if row.attempts < MAX_ATTEMPTS => {
                let retry_at = now + self.backoff(row.attempts);
                tracing::info!(outbox = %row.id, kind = %row.kind, attempt = row.attempts, "delivery failed, retrying at {retry_at}: {error}");
                outbox::fail(records.db(), &row.id, &self.id, &error, Some(retry_at), now).await
            }
            Performed::Retry(error) => {
                let error = format!("gave up after {} attempts: {error}", row.attempts);
                tracing::warn!(outbox = %row.id, kind = %row.kind, "{error}");
                outbox::fail(records.db(), &row.id, &self.id, &error, None, now).await
            }
            Performed::Dead(error) => {
                tracing::warn!(outbox = %row.id, kind = %row.kind, "failed for good: {error}");
                outbox::fail(records.db(), &row.id, &self.id, &error, None, now).await
            }
        };
        if let Err(error) = result {
            tracing::warn!(outbox = %row.id, "could not record the outcome of a delivery: {error}");
        }
    }

    /// The wait after attempt `attempts` failed: the base, doubled per attempt, at most an
    /// hour.
    fn backoff(&self, attempts: i64) -> TimeDelta {
        let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
        let delay = self
            .retry_base
            .saturating_mul(2_u32.saturating_pow(exponent))
            .min(Duration::from_secs(3600));
        TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX)
    }

    /// Sends one delivery that leaves the database.
    async fn deliver(&self, records: &Records, row: &Claimed) -> Result<(), Failure> {
        let unreadable = |error: serde_json::Error| Failure {
            message: format!("the outbox row cannot be read: {error}"),
            retryable: false,
        };
        let app = &records.schema().app;
        match row.kind.as_str() {
            KIND_WEBHOOK => {
                let delivery: WebhookDelivery =
                    serde_json::from_str(&row.payload).map_err(unreadable)?;
                let url = match (&delivery.url, &delivery.url_env) {
                    (Some(url), _) => url.clone(),
                    (None, Some(name)) => env(name)?,
                    (None, None) => return Err(permanent("the webhook has no url")),
                };
                let secret = delivery.secret_env.as_deref().map(env).transpose()?;
                self.deliverer
                    .webhook(
                        &url,
                        secret.as_deref(),
                        &row.idempotency_key,
                        &delivery.event,
                        &delivery.body,
                    )
                    .await
            }
            KIND_CHAT => {
                let delivery: ChatDelivery =
                    serde_json::from_str(&row.payload).map_err(unreadable)?;
                let Some(channel) = app
                    .channels
                    .iter()
                    .find(|channel| channel.name == delivery.channel)
                else {
                    return Err(permanent(&format!(
                        "the app has no channel `{}` any more",
                        delivery.channel
                    )));
                };
                let url = match (&channel.url, &channel.url_env) {
                    (Some(url), _) => url.clone(),
                    (None, Some(name)) => env(name)?,
                    (None, None) => return Err(permanent("the channel has no url")),
                };
                let secret = channel.secret_env.as_deref().map(env).transpose()?;
                self.deliverer
                    .chat(channel.kind, &url, secret.as_deref(), &delivery.text)
                    .await
            }
            _ => {
                let delivery: EmailDelivery =
                    serde_json::from_str(&row.payload).map_err(unreadable)?;
                let Some(smtp) = &app.smtp else {
                    return Err(permanent("the app has no `smtp:` settings any more"));
                };
                let user = keel_store::users::find_by_id(records.db(), &delivery.user_id)
                    .await
                    .map_err(|error| Failure {
                        message: error.to_string(),
                        retryable: true,
                    })?;
                let Some(address) = user.and_then(|user| user.email) else {
                    // Nobody to write to is not a failure to retry.
                    return Ok(());
                };
                let password = smtp.password_env.as_deref().map(env).transpose()?;
                self.deliverer
                    .email(
                        smtp,
                        password.as_deref(),
                        &address,
                        &delivery.subject,
                        &delivery.body,
                    )
                    .await
            }
        }
    }
}

/// The record a `rule` or `script` row is about (its work keeps that record's order).
fn record_key(payload: &str) -> String {
    serde_json::from_str::<Json>(payload)
        .ok()
        .and_then(|work| {
            Some(format!(
                "{}/{}",
                work.get("object")?.as_str()?,
                work.get("record_id")?.as_str()?
            ))
        })
        .unwrap_or_default()
}

fn permanent(message: &str) -> Failure {
    Failure {
        message: message.to_owned(),
        retryable: false,
    }
}

/// A setting from the environment; a missing one fails the delivery for good (an admin sets
/// it and retries).
fn env(name: &str) -> Result<String, Failure> {
    std::env::var(name)
        .map_err(|_| permanent(&format!("the environment variable {name} is not set")))
}

pub use keel_store::outbox::ListState;

fn admins_only(records: &Records, actor: &crate::actor::Actor) -> Result<(), RecordError> {
    if crate::records::access::is_admin(records.schema(), actor) {
        Ok(())
    } else {
        Err(RecordError::Forbidden {
            message: "only admins may see and retry the outbox".to_owned(),
            fields: Vec::new(),
        })
    }
}

/// `GET /admin/outbox` (admins only): up to `limit` rows in `state`, newest first, before
/// the row `before` → `{data, counts: {pending, dead}, next}`.
pub async fn admin_list(
    records: &Records,
    actor: &crate::actor::Actor,
    state: ListState,
    before: Option<&str>,
    limit: u32,
) -> Result<Json, RecordError> {
    admins_only(records, actor)?;
    let rows = outbox::list(records.db(), state, before, limit).await?;
    let (pending, dead) = outbox::counts(records.db()).await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|last| last.id.clone()))
        .flatten();
    let data: Vec<Json> = rows.iter().map(entry_json).collect();
    Ok(serde_json::json!({
        "data": data,
        "counts": { "pending": pending, "dead": dead },
        "next": next,
    }))
}

/// `POST /admin/outbox/{id}/retry` (admins only): the dead row `id` is due again now, its
/// attempts counted from zero → the row; `NotFound` when there is no dead row `id`.
pub async fn admin_retry(
    records: &Records,
    actor: &crate::actor::Actor,
    id: &str,
) -> Result<Json, RecordError> {
    admins_only(records, actor)?;
    let now = records.clock().now();
    if !outbox::retry(records.db(), id, now).await? {
        return Err(RecordError::NotFound);
    }
    records.signals().outbox.notify_one();
    let row = outbox::get(records.db(), id)
        .await?
        .ok_or(RecordError::NotFound)?;
    Ok(entry_json(&row))
}

/// An outbox row as `GET /admin/outbox` shows it.
pub fn entry_json(entry: &outbox::Entry) -> Json {
    let payload: Json = serde_json::from_str(&entry.payload).unwrap_or(Json::Null);
    serde_json::json!({
        "id": entry.id,
        "kind": entry.kind,
        "state": match (entry.state.as_str(), &entry.last_error) {
            ("pending", Some(_)) => "failing",
            (state, _) => state,
        },
        "attempts": entry.attempts,
        "due_at": rfc3339(entry.due_at),
        "created_at": rfc3339(entry.created_at),
        "finished_at": entry.finished_at.map(rfc3339),
        "last_error": entry.last_error,
        "idempotency_key": entry.idempotency_key,
        "payload": redact(payload),
    })
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// What an admin sees of a payload: the record snapshots stay out (they may hold fields the
/// admin's role hides), the rest is shown.
fn redact(payload: Json) -> Json {
    match payload {
        Json::Object(mut map) => {
            for key in ["record", "old", "body"] {
                if map.contains_key(key) {
                    map.insert(key.to_owned(), Json::String("(not shown)".to_owned()));
                }
            }
            Json::Object(map)
        }
        other => other,
    }
}
