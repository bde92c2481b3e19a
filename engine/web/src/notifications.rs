//! The inbox (docs/api.md, "Notifications"): `GET /notifications?unread=true&before=&limit=`,
//! `POST /notifications/{id}/read`, `POST /notifications/read` (all), and the live stream
//! `GET /notifications/stream` (server-sent events: one `notification` event per new
//! notification, its id the event id, a heartbeat comment every 15 s; a client reconnecting
//! with `Last-Event-ID` first gets what it missed). And for admins the outbox:
//! `GET /admin/outbox?state=pending|failing|dead|done` and `POST /admin/outbox/{id}/retry`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use keel_runtime::notifications::NotificationView;
use keel_runtime::outbox::ListState;
use serde_json::json;
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::extract::{CurrentUser, Pinned, QueryPairs};

fn unknown(other: &str, known: &str) -> ApiError {
    ApiError::invalid_parameter(
        other,
        "unknown_parameter",
        format!("`{other}` is not a parameter here; use {known}"),
    )
}

/// `GET /notifications` → `{data: [{id, message, object, record_id, read, created_at}],
/// next}`, newest first; `next` is the `before` of the following page.
pub async fn list(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let (mut unread, mut before, mut limit) = (false, None, 50);
    for (key, value) in pairs {
        match key.as_str() {
            "unread" => {
                unread = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::invalid_parameter(
                            "unread",
                            "invalid_type",
                            "`unread` is true or false",
                        ));
                    }
                }
            }
            "before" => before = Some(value),
            "limit" => {
                limit =
                    crate::query::limit_parameter(&value, keel_runtime::notifications::MAX_PAGE)?
            }
            other => return Err(unknown(other, "unread, before and limit")),
        }
    }
    let data = state
        .inbox()
        .list(&actor, unread, before.as_deref(), limit)
        .await?;
    let next = (data.len() == limit as usize)
        .then(|| data.last().map(|last| last.id.clone()))
        .flatten();
    Ok(Json(json!({ "data": data, "next": next })).into_response())
}

/// `POST /notifications/{id}/read` → 204; 404 for a notification that is not the user's.
pub async fn read(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.inbox().mark_read(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /notifications/read` → `{marked: n}`: every unread notification of the user read.
pub async fn read_all(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
) -> Result<Response, ApiError> {
    let marked = state.inbox().mark_all_read(&actor).await?;
    Ok(Json(json!({ "marked": marked })).into_response())
}

/// What one stream holds between events.
struct StreamState {
    user_id: String,
    /// Missed notifications to send first.
    replay: VecDeque<NotificationView>,
    /// The newest id sent, so that the live feed skips what the replay sent.
    last: Option<String>,
    live: broadcast::Receiver<std::sync::Arc<keel_store::outbox::Notification>>,
}

fn event(notification: &NotificationView) -> Event {
    Event::default()
        .id(notification.id.clone())
        .event("notification")
        .data(json!(notification).to_string())
}

/// `GET /notifications/stream`: the user's new notifications as server-sent events.
pub async fn stream(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Subscribe before reading what was missed, so nothing falls between the two.
    let live = state.inbox().subscribe();
    let last_seen = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let replay: VecDeque<NotificationView> = match &last_seen {
        Some(last) => state.inbox().missed(&actor, last).await?.into(),
        None => VecDeque::new(),
    };
    let start = StreamState {
        user_id: actor.id.clone(),
        last: replay.back().map(|n| n.id.clone()).or(last_seen),
        replay,
        live,
    };
    let events = futures::stream::unfold(start, |mut stream| async move {
        if let Some(next) = stream.replay.pop_front() {
            return Some((Ok(event(&next)), stream));
        }
        loop {
            match stream.live.recv().await {
                Ok(notification) => {
                    if notification.user_id != stream.user_id
                        || stream
                            .last
                            .as_ref()
                            .is_some_and(|last| notification.id <= *last)
                    {
                        continue;
                    }
                    let view = NotificationView::from(notification.as_ref());
                    stream.last = Some(view.id.clone());
                    return Some((Ok(event(&view)), stream));
                }
                // A slow client that fell behind reconnects and replays from its last id.
                Err(broadcast::error::RecvError::Lagged(_)) => return None,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(events).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("heartbeat"),
    ))
}

/// `GET /admin/outbox?state=pending|failing|dead|done&before=&limit=` (admins) →
/// `{data: [{id, kind, state, attempts, due_at, created_at, finished_at, last_error,
/// idempotency_key, payload}], counts: {pending, dead}, next}`.
pub async fn outbox(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let (mut list_state, mut before, mut limit) = (ListState::Dead, None, 100);
    for (key, value) in pairs {
        match key.as_str() {
            "state" => {
                list_state = match value.as_str() {
                    "pending" => ListState::Pending,
                    "failing" => ListState::Failing,
                    "dead" => ListState::Dead,
                    "done" => ListState::Done,
                    _ => {
                        return Err(ApiError::invalid_parameter(
                            "state",
                            "invalid_value",
                            "`state` is pending, failing, dead or done",
                        ));
                    }
                }
            }
            "before" => before = Some(value),
            "limit" => limit = crate::query::limit_parameter(&value, 500)?,
            other => return Err(unknown(other, "state, before and limit")),
        }
    }
    let answer = keel_runtime::outbox::admin_list(
        state.records(),
        &actor,
        list_state,
        before.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(answer).into_response())
}

/// `POST /admin/outbox/{id}/retry` (admins): a dead row is due again now → 200 with the row;
/// 404 when there is no dead row `id`.
pub async fn retry_outbox(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = keel_runtime::outbox::admin_retry(state.records(), &actor, &id).await?;
    Ok(Json(row).into_response())
}
