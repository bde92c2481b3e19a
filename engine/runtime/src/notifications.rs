//! The in-app inbox (docs/rules.md, "Notifications"): a user's notifications, marking them
//! read, and a live stream of new ones.
//!
//! Notifications are rows of `keel_notifications`, written by rules and scripts in the
//! transaction of their work, possibly in another `keel serve` process. One hub per process
//! fans them out to the streams connected to it: it looks for new rows when this process
//! commits some (a wake-up from `Records`), and every [`POLL_INTERVAL`] while any stream is
//! connected, so a notification written anywhere reaches a stream within about a second.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use keel_store::outbox::{self, Notification};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::actor::Actor;
use crate::records::{RecordError, Records};

/// How often the hub looks for notifications other processes wrote while streams listen.
pub const POLL_INTERVAL: Duration = Duration::from_millis(400);
/// How far back each look reaches past the newest notification seen: covers transactions
/// that committed later than their rows' `created_at`.
const LOOKBACK: TimeDelta = TimeDelta::seconds(10);
/// The most notifications one page holds.
pub const MAX_PAGE: u32 = 200;
/// What a stream resumed with `Last-Event-ID` replays at most.
const MAX_REPLAY: u32 = 500;

/// A notification as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationView {
    pub id: String,
    pub message: String,
    pub object: Option<String>,
    pub record_id: Option<String>,
    pub read: bool,
    pub created_at: String,
}

impl From<&Notification> for NotificationView {
    fn from(notification: &Notification) -> NotificationView {
        NotificationView {
            id: notification.id.clone(),
            message: notification.message.clone(),
            object: notification.object.clone(),
            record_id: notification.record_id.clone(),
            read: notification.read_at.is_some(),
            created_at: notification
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }
}

/// The inbox service of one process.
#[derive(Clone)]
pub struct Inbox {
    records: Records,
    hub: Arc<OnceLock<broadcast::Sender<Arc<Notification>>>>,
}

impl Inbox {
    pub fn new(records: Records) -> Inbox {
        Inbox {
            records,
            hub: Arc::new(OnceLock::new()),
        }
    }

    /// The same inbox over the records of another metadata version; the hub (and so every
    /// open stream) carries on.
    pub fn with_records(&self, records: Records) -> Inbox {
        Inbox {
            records,
            hub: Arc::clone(&self.hub),
        }
    }

    /// The actor's notifications, newest first (unread only when asked), older than `before`.
    pub async fn list(
        &self,
        actor: &Actor,
        unread_only: bool,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<NotificationView>, RecordError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let rows =
            outbox::notifications(self.records.db(), &actor.id, unread_only, before, limit).await?;
        Ok(rows.iter().map(NotificationView::from).collect())
    }

    /// Marks one of the actor's notifications read; `NotFound` when it is not theirs.
    pub async fn mark_read(&self, actor: &Actor, id: &str) -> Result<(), RecordError> {
        if !outbox::notification_exists(self.records.db(), &actor.id, id).await? {
            return Err(RecordError::NotFound);
        }
        let now = self.records.clock().now();
        outbox::mark_read(self.records.db(), &actor.id, Some(id), now).await?;
        Ok(())
    }

    /// Marks every notification of the actor read → how many were unread.
    pub async fn mark_all_read(&self, actor: &Actor) -> Result<u64, RecordError> {
        let now = self.records.clock().now();
        Ok(outbox::mark_read(self.records.db(), &actor.id, None, now).await?)
    }

    /// The notifications of the actor after `last_seen` (a notification id, from
    /// `Last-Event-ID`), oldest first, for a stream that reconnects.
    pub async fn missed(
        &self,
        actor: &Actor,
        last_seen: &str,
    ) -> Result<Vec<NotificationView>, RecordError> {
        let rows = outbox::notifications_after(self.records.db(), &actor.id, last_seen, MAX_REPLAY)
            .await?;
        Ok(rows.iter().map(NotificationView::from).collect())
    }

    /// New notifications of every user, as the hub finds them (started on first use).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Notification>> {
        self.hub
            .get_or_init(|| {
                let (sender, _) = broadcast::channel(1024);
                tokio::spawn(hub(self.records.clone(), sender.clone()));
                sender
            })
            .subscribe()
    }
}

/// The hub: looks for new notifications on a wake-up or every [`POLL_INTERVAL`] while
/// anyone listens, and sends each once. Ends when nobody can listen any more.
async fn hub(records: Records, sender: broadcast::Sender<Arc<Notification>>) {
    let mut newest: DateTime<Utc> = records.clock().now() - LOOKBACK;
    let mut seen: HashSet<String> = HashSet::new();
    let mut order: VecDeque<String> = VecDeque::new();
    // What exists already is not news: streams that want it replay from the database.
    if let Ok(rows) = outbox::notifications_since(records.db(), newest - LOOKBACK, 10_000).await {
        for row in rows {
            newest = newest.max(row.created_at);
            order.push_back(row.id.clone());
            seen.insert(row.id);
        }
    }
    let signals = Arc::clone(records.signals());
    loop {
        tokio::select! {
            _ = signals.notifications.notified() => {}
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
        if sender.receiver_count() == 0 {
            continue;
        }
        let rows = match outbox::notifications_since(records.db(), newest - LOOKBACK, 1_000).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!("the notification hub could not read new notifications: {error}");
                continue;
            }
        };
        for row in rows {
            if !seen.insert(row.id.clone()) {
                continue;
            }
            newest = newest.max(row.created_at);
            order.push_back(row.id.clone());
            if order.len() > 10_000
                && let Some(oldest) = order.pop_front()
            {
                seen.remove(&oldest);
            }
            // No receiver at this instant is fine: streams replay from the database.
            let _ = sender.send(Arc::new(row));
        }
    }
}
