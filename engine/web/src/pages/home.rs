//! `/`: the home page — what is due (entries of the objects that declare a `calendar`, the
//! user's own, up to the end of today), the records recently viewed in this browser (the
//! `keel_recent` cookie the record page keeps; each read again through `Records`, so one
//! no longer visible is skipped), the records the user changed lately (from the audit
//! trail, through `Records::recently_changed`) and the latest notifications, with the bell kept live
//! over the notification stream by `app.js`; and the form that marks them all read.

use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use keel_meta::Filter;
use keel_runtime::records::ListRequest;
use serde::Serialize;
use serde_json::json;

use keel_runtime::reports::{Change, Period};

use super::{Formatter, Frame, PageError, PageForm, Viewer, render};
use crate::AppState;
use crate::extract::Pinned;

/// How many entries each "due" list and the notification list show.
const SHOWN: u32 = 10;

#[derive(Debug, Serialize)]
struct HomePage {
    briefing: Option<BriefingView>,
    due: Vec<DueList>,
    recent: Vec<RecentItem>,
    changed: Vec<RecentItem>,
    notifications: Vec<NotificationItem>,
}

/// The briefing cards (销售简报): each figure of the period with its change against the
/// previous one.
#[derive(Debug, Serialize)]
struct BriefingView {
    /// `day`, `week` or `month`.
    period: &'static str,
    range: String,
    /// (`day`|`week`|`month`, its label) for the period switch.
    periods: Vec<(&'static str, String)>,
    cards: Vec<BriefingCard>,
}

#[derive(Debug, Serialize)]
struct BriefingCard {
    /// The catalog key of the figure's name, and the figure (`new_leads`, …).
    key: String,
    label: String,
    value: String,
    previous: String,
    /// The change as shown: `+3`, `−¥ 1,200.00`, with the rate when there is one.
    change: String,
    /// `up`, `down` or `flat`.
    trend: &'static str,
    /// The trend in words, for screen readers (the arrow and colour are not all).
    trend_label: String,
}

#[derive(Debug, Serialize)]
struct DueList {
    object: String,
    label: String,
    entries: Vec<DueEntry>,
}

#[derive(Debug, Serialize)]
struct DueEntry {
    url: String,
    title: String,
    when: String,
    overdue: bool,
}

/// A recently viewed record.
#[derive(Debug, Serialize)]
struct RecentItem {
    url: String,
    title: String,
    object_label: String,
}

#[derive(Debug, Serialize)]
struct NotificationItem {
    id: String,
    message: String,
    url: Option<String>,
    read: bool,
    created_at: String,
}

/// `GET /`.
pub async fn page(
    Pinned(state): Pinned,
    viewer: Viewer,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let frame = Frame::new(&state, &viewer).await?;
    let formatter = frame.formatter(&state);
    let period = match query.as_deref() {
        Some("period=day") => Period::Day,
        Some("period=month") => Period::Month,
        _ => Period::Week,
    };
    let text = |key: &str| state.ui().catalogs().text(&frame.lang, key, |_| None);
    let briefing = briefing(&state, &viewer, period, &formatter, &text).await?;
    let schema = state.schema().clone();
    let now = state.records().clock().now();
    let mut due = Vec::new();
    for object in schema.objects.values() {
        let Some(calendar) = &object.calendar else {
            continue;
        };
        if state
            .records()
            .readable_fields(&viewer.actor, &object.name)
            .map(|fields| !fields.iter().any(|field| field == &calendar.start))
            .unwrap_or(true)
        {
            continue;
        }
        let Ok(mine_and_due) = Filter::from_json(&json!({
            "owner": viewer.actor.id,
            calendar.start.clone(): { "lte": "@today+1d" },
        })) else {
            continue;
        };
        let filter = match &calendar.open {
            Some(open) => Filter::And {
                all: vec![mine_and_due, open.clone()],
            },
            None => mine_and_due,
        };
        let page = state
            .records()
            .list(
                &viewer.actor,
                &object.name,
                ListRequest {
                    filter: Some(filter),
                    order: vec![keel_meta::OrderTerm {
                        field: calendar.start.clone(),
                        descending: false,
                    }],
                    limit: Some(SHOWN),
                    ..ListRequest::default()
                },
            )
            .await?;
        if page.data.is_empty() {
            continue;
        }
        let entries = page
            .data
            .iter()
            .map(|record| {
                let id = record.get("id").and_then(|id| id.as_str()).unwrap_or("");
                let title = record
                    .get(&calendar.title)
                    .and_then(|title| title.as_str())
                    .unwrap_or(id)
                    .to_owned();
                let start = record
                    .get(&calendar.start)
                    .and_then(|start| start.as_str())
                    .unwrap_or("");
                let overdue = chrono::DateTime::parse_from_rfc3339(start)
                    .map(|start| start < now)
                    .unwrap_or(false);
                DueEntry {
                    url: format!("/app/{}/{id}", object.name),
                    title,
                    when: formatter.datetime(start),
                    overdue,
                }
            })
            .collect();
        due.push(DueList {
            object: object.name.clone(),
            label: object
                .label
                .text(&frame.lang, &schema.app.language)
                .to_owned(),
            entries,
        });
    }
    let mut recent = Vec::new();
    for (object_name, id) in super::record::recent_entries(&headers) {
        let Some(object) = schema.objects.get(&object_name) else {
            continue;
        };
        // Deleted, no longer visible, or gone: not listed.
        let Ok(record) = state.records().get(&viewer.actor, &object_name, &id).await else {
            continue;
        };
        recent.push(RecentItem {
            url: format!("/app/{object_name}/{id}"),
            title: super::record::record_title(object, &record),
            object_label: formatter.label(Some(&object.label), &object.name),
        });
    }
    let changed = state
        .records()
        .recently_changed(&viewer.actor, SHOWN as usize)
        .await?
        .into_iter()
        .filter_map(|(object_name, record)| {
            let object = schema.objects.get(&object_name)?;
            let id = record.get("id")?.as_str()?;
            Some(RecentItem {
                url: format!("/app/{object_name}/{id}"),
                title: super::record::record_title(object, &record),
                object_label: formatter.label(Some(&object.label), &object.name),
            })
        })
        .collect();
    let notifications = state
        .inbox()
        .list(&viewer.actor, false, None, SHOWN)
        .await?
        .into_iter()
        .map(|notification| NotificationItem {
            url: match (&notification.object, &notification.record_id) {
                (Some(object), Some(id)) => Some(format!("/app/{object}/{id}")),
                _ => None,
            },
            id: notification.id,
            message: notification.message,
            read: notification.read,
            created_at: notification.created_at,
        })
        .collect();
    render(
        &state,
        &frame,
        "home.html",
        HomePage {
            briefing,
            due,
            recent,
            changed,
            notifications,
        },
    )
}

/// `POST /notifications/read` (form): marks every notification read, back to the home page.
pub async fn mark_all_read(Pinned(state): Pinned, form: PageForm) -> Result<Response, PageError> {
    state.inbox().mark_all_read(&form.viewer.actor).await?;
    Ok(Redirect::to("/#notifications").into_response())
}

/// The briefing of `period` for the viewer (under their record scope), as cards; `None`
/// when the app has none of the objects it counts.
async fn briefing(
    state: &AppState,
    viewer: &Viewer,
    period: Period,
    formatter: &Formatter,
    text: &impl Fn(&str) -> String,
) -> Result<Option<BriefingView>, PageError> {
    let briefing = state.reports().briefing(&viewer.actor, period).await?;
    let mut cards = Vec::new();
    let mut card = |key: &str, change: &Option<Change>, money: bool| {
        if let Some(change) = change {
            let mut shown = briefing_card(key, change, money, formatter);
            shown.label = text(&format!("briefing.figure.{key}"));
            shown.trend_label = text(&format!("briefing.trend.{}", shown.trend));
            cards.push(shown);
        }
    };
    card("new_leads", &briefing.new_leads, false);
    card("new_customers", &briefing.new_customers, false);
    if let Some(opportunities) = &briefing.new_opportunities {
        card(
            "new_opportunities",
            &Some(opportunities.count.clone()),
            false,
        );
        card("new_opportunity_amount", &opportunities.amount, true);
    }
    card("won_amount", &briefing.won_amount, true);
    card("follow_ups", &briefing.follow_ups, false);
    if cards.is_empty() {
        return Ok(None);
    }
    let last = briefing
        .current
        .to
        .pred_opt()
        .unwrap_or(briefing.current.to);
    Ok(Some(BriefingView {
        period: match period {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        },
        range: if last == briefing.current.from {
            last.to_string()
        } else {
            format!("{} – {last}", briefing.current.from)
        },
        periods: ["day", "week", "month"]
            .into_iter()
            .map(|key| (key, text(&format!("briefing.period.{key}"))))
            .collect(),
        cards,
    }))
}

/// One briefing figure: its value, the previous period's, and the change with its sign.
fn briefing_card(key: &str, change: &Change, money: bool, formatter: &Formatter) -> BriefingCard {
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => "0".to_owned(),
        other => other.to_string(),
    };
    let shown = |raw: &str| {
        if money {
            formatter.money(raw)
        } else {
            super::format::number_text(raw)
        }
    };
    let delta = text(&change.change);
    let negative = delta.starts_with('-');
    let zero = delta
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.');
    let magnitude = shown(delta.trim_start_matches('-'));
    let trend = if zero {
        "flat"
    } else if negative {
        "down"
    } else {
        "up"
    };
    let sign = match trend {
        "up" => "+",
        "down" => "−",
        _ => "±",
    };
    let rate = change
        .change_rate
        .map(|rate| format!(" ({sign}{:.1}%)", rate.abs() * 100.0))
        .unwrap_or_default();
    BriefingCard {
        key: key.to_owned(),
        label: String::new(),
        trend_label: String::new(),
        value: shown(&text(&change.value)),
        previous: shown(&text(&change.previous)),
        change: format!("{sign}{magnitude}{rate}"),
        trend,
    }
}
