//! The report pages (docs/ui.md, "Reports" and "Calendar"): `/app/reports/funnel` (filters,
//! an SVG funnel drawn here and the table beside it) and `/app/calendar` (month, week and
//! agenda views). Both read `keel_runtime::reports::Reports`, the same calls as
//! `GET /api/v1/reports/funnel` and `GET /api/v1/calendar`, so a figure on a page is the
//! API's figure under the same scope.

use axum::Router;
use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use chrono::{Datelike, Days, Months, NaiveDate};
use keel_runtime::reports::{CalendarScope, FunnelParams, ReportError};
use serde::Serialize;
use serde_json::Value as Json;

use super::chart::{FunnelBar, funnel_svg};
use super::{Formatter, Frame, PageError, Viewer, render_with_status};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Pinned, parse_query};

/// The routes of this module; [`super::routes`] merges them.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/app/reports/funnel", get(funnel_page))
        .route("/app/calendar", get(calendar_page))
}

impl From<ReportError> for PageError {
    fn from(error: ReportError) -> PageError {
        PageError::Api(ApiError::from(error))
    }
}

/// The value of `key` in `pairs`, when given and not empty.
fn param(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// A share (0–1) as a percentage with one decimal.
fn percent(rate: Option<f64>) -> String {
    rate.map(|rate| format!("{:.1}%", rate * 100.0))
        .unwrap_or_else(|| "—".to_owned())
}

/// An amount as the API gives it (a decimal string, or null) in the app's currency.
fn amount(formatter: &Formatter, value: Option<&Json>) -> String {
    match value {
        Some(Json::String(text)) => formatter.money(text),
        Some(Json::Number(number)) => formatter.money(&number.to_string()),
        _ => "—".to_owned(),
    }
}

#[derive(Debug, Serialize)]
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Debug, Serialize)]
struct FunnelPage {
    processes: Vec<Choice>,
    owners: Vec<Choice>,
    from: String,
    /// The last day of the period (the API's `to` is exclusive; the form shows inclusive).
    to: String,
    /// Why the runtime refused the filters, shown above the form.
    error: Option<String>,
    funnel: Option<FunnelView>,
}

#[derive(Debug, Serialize)]
struct FunnelView {
    label: String,
    period: String,
    chart: String,
    amount: bool,
    stages: Vec<StageRow>,
    total: i64,
    total_amount: String,
    won: i64,
    lost: i64,
    open: i64,
    won_rate: String,
    lost_rate: String,
    won_amount: String,
    lost_amount: String,
    won_amount_rate: String,
    lost_amount_rate: String,
    weighted_pipeline: String,
}

#[derive(Debug, Serialize)]
struct StageRow {
    key: String,
    label: String,
    outcome: &'static str,
    reached: i64,
    amount: String,
    conversion_next: String,
    conversion_first: String,
    avg_days: String,
}

/// `GET /app/reports/funnel?process=&from=&to=&owner=`: `to` is the last day shown (the
/// form's inclusive end), sent to the runtime as the day after.
async fn funnel_page(
    Pinned(state): Pinned,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let schema = state.schema().clone();
    let pairs = parse_query(query.as_deref().unwrap_or(""))?;
    let frame = Frame::new(&state, &viewer).await?;
    let formatter = frame.formatter(&state);
    let process = param(&pairs, "process");
    let from = param(&pairs, "from");
    let last = param(&pairs, "to");
    let owner = param(&pairs, "owner");
    let mut error = None;
    let to = match &last {
        Some(text) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(day) => day
                .checked_add_days(Days::new(1))
                .map(|day| day.to_string()),
            // The runtime names the parameter and why.
            Err(_) => Some(text.clone()),
        },
        None => None,
    };
    let params = FunnelParams {
        process: process.clone(),
        from,
        to,
        owner: owner.clone(),
    };
    let mut status = StatusCode::OK;
    let funnel = match state.reports().funnel(&viewer.actor, params).await {
        Ok(funnel) => Some(funnel),
        Err(ReportError::BadParameter { message, .. }) => {
            status = StatusCode::UNPROCESSABLE_ENTITY;
            error = Some(message);
            None
        }
        Err(other) => return Err(other.into()),
    };
    let chosen_process = funnel
        .as_ref()
        .map(|funnel| funnel.process.clone())
        .or(process);
    let processes = schema
        .processes
        .values()
        .filter(|process| {
            keel_runtime::records::access::scope(
                &schema,
                &viewer.actor,
                &process.object,
                keel_runtime::records::access::Action::Read,
            ) != keel_meta::Scope::None
        })
        .map(|process| Choice {
            selected: chosen_process.as_deref() == Some(process.name.as_str()),
            value: process.name.clone(),
            label: formatter.label(process.label.as_ref(), &process.name),
        })
        .collect();
    let owners = owner_options(&state, &viewer, owner.as_deref()).await?;
    let (from_text, to_text) = match &funnel {
        Some(funnel) => (
            funnel.from.to_string(),
            funnel
                .to
                .checked_sub_days(Days::new(1))
                .unwrap_or(funnel.to)
                .to_string(),
        ),
        None => (
            param(&pairs, "from").unwrap_or_default(),
            last.unwrap_or_default(),
        ),
    };
    let text = |key: &str| state.ui().catalogs().text(&frame.lang, key, |_| None);
    let funnel = funnel.map(|funnel| {
        let bars: Vec<FunnelBar> = funnel
            .stages
            .iter()
            .map(|stage| FunnelBar {
                label: formatter.label(stage.label.as_ref(), &stage.key),
                value: u64::try_from(stage.reached).unwrap_or(0),
                note: if funnel.amount_field.is_some() {
                    amount(&formatter, stage.amount.as_ref())
                } else {
                    String::new()
                },
                outcome: outcome(stage.outcome),
            })
            .collect();
        let label = formatter.label(funnel.label.as_ref(), &funnel.process);
        FunnelView {
            chart: funnel_svg(&format!("{label} · {}", text("reports.funnel")), &bars),
            period: format!("{from_text} – {to_text}"),
            label,
            amount: funnel.amount_field.is_some(),
            stages: funnel
                .stages
                .iter()
                .map(|stage| StageRow {
                    key: stage.key.clone(),
                    label: formatter.label(stage.label.as_ref(), &stage.key),
                    outcome: outcome(stage.outcome),
                    reached: stage.reached,
                    amount: amount(&formatter, stage.amount.as_ref()),
                    conversion_next: percent(stage.conversion_next),
                    conversion_first: percent(stage.conversion_first),
                    avg_days: stage
                        .avg_days
                        .map(|days| format!("{days:.1}"))
                        .unwrap_or_else(|| "—".to_owned()),
                })
                .collect(),
            total: funnel.total,
            total_amount: amount(&formatter, funnel.total_amount.as_ref()),
            won: funnel.won,
            lost: funnel.lost,
            open: funnel.open,
            won_rate: percent(funnel.won_rate),
            lost_rate: percent(funnel.lost_rate),
            won_amount: amount(&formatter, funnel.won_amount.as_ref()),
            lost_amount: amount(&formatter, funnel.lost_amount.as_ref()),
            won_amount_rate: percent(funnel.won_amount_rate),
            lost_amount_rate: percent(funnel.lost_amount_rate),
            weighted_pipeline: amount(&formatter, funnel.weighted_pipeline.as_ref()),
        }
    });
    let page = FunnelPage {
        processes,
        owners,
        from: from_text,
        to: to_text,
        error,
        funnel,
    };
    render_with_status(&state, &frame, "reports/funnel.html", page, status)
}

fn outcome(outcome: Option<keel_meta::Outcome>) -> &'static str {
    match outcome {
        Some(keel_meta::Outcome::Won) => "won",
        Some(keel_meta::Outcome::Lost) => "lost",
        None => "",
    }
}

/// Whose funnel a manager may pick: themselves and the people below them in the manager
/// chain (an admin: everyone active). Empty for someone nobody reports to, who sees only
/// their own funnel and needs no picker.
async fn owner_options(
    state: &AppState,
    viewer: &Viewer,
    chosen: Option<&str>,
) -> Result<Vec<Choice>, PageError> {
    let users = keel_store::users::list(state.db())
        .await
        .map_err(ApiError::internal)?;
    let me = viewer.actor.id.as_str();
    // The chain is short; a bounded walk up from each user finds whether it passes `me`.
    let below = |user: &keel_store::users::UserRow| {
        let mut manager = user.manager_id.as_deref();
        for _ in 0..16 {
            match manager {
                Some(id) if id == me => return true,
                Some(id) => {
                    manager = users
                        .iter()
                        .find(|other| other.id == id)
                        .and_then(|other| other.manager_id.as_deref())
                }
                None => return false,
            }
        }
        false
    };
    let mut options: Vec<Choice> = users
        .iter()
        .filter(|user| user.active && (viewer.actor.admin || user.id == me || below(user)))
        .map(|user| Choice {
            selected: chosen == Some(user.id.as_str()),
            value: user.id.clone(),
            label: user
                .display_name
                .clone()
                .unwrap_or_else(|| user.username.clone()),
        })
        .collect();
    if options.len() < 2 {
        return Ok(Vec::new());
    }
    options.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(options)
}

#[derive(Debug, Serialize)]
struct CalendarPage {
    /// `month`, `week` or `agenda`.
    view: &'static str,
    /// `mine` or `team`.
    scope: &'static str,
    /// Whether the viewer has a team to look at.
    manager: bool,
    heading: String,
    from: String,
    prev_url: String,
    next_url: String,
    today_url: String,
    view_urls: Vec<(String, String, bool)>,
    scope_urls: Vec<(String, String, bool)>,
    /// Month and week views: weeks of seven days.
    weeks: Vec<Vec<DayView>>,
    weekdays: Vec<String>,
    /// The agenda: days that have entries, in order.
    days: Vec<DayView>,
    empty: bool,
}

#[derive(Debug, Serialize, Clone)]
struct DayView {
    date: String,
    day: u32,
    label: String,
    today: bool,
    /// Outside the month shown (month view).
    outside: bool,
    entries: Vec<EntryView>,
}

#[derive(Debug, Serialize, Clone)]
struct EntryView {
    url: String,
    title: String,
    object: String,
    object_label: String,
    /// `09:30` for an instant, empty for a date.
    time: String,
    open: bool,
}

/// `GET /app/calendar?view=month|week|agenda&date=YYYY-MM-DD&scope=mine|team`: agenda is the
/// default (what a phone shows first); the range is the month or week around `date` (the
/// agenda: two weeks from it).
async fn calendar_page(
    Pinned(state): Pinned,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let schema = state.schema().clone();
    let pairs = parse_query(query.as_deref().unwrap_or(""))?;
    let frame = Frame::new(&state, &viewer).await?;
    let formatter = frame.formatter(&state);
    let text = |key: &str| state.ui().catalogs().text(&frame.lang, key, |_| None);
    let tz: chrono_tz::Tz = schema
        .app
        .timezone
        .parse()
        .unwrap_or(chrono_tz::Asia::Shanghai);
    let today = state
        .records()
        .clock()
        .now()
        .with_timezone(&tz)
        .date_naive();
    let view = match param(&pairs, "view").as_deref() {
        Some("month") => "month",
        Some("week") => "week",
        _ => "agenda",
    };
    let date = param(&pairs, "date")
        .and_then(|text| NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok())
        .unwrap_or(today);
    let manager = !owner_options(&state, &viewer, None).await?.is_empty();
    let scope = match param(&pairs, "scope").as_deref() {
        Some("team") if manager => CalendarScope::Team,
        _ => CalendarScope::Mine,
    };
    let monday = |day: NaiveDate| {
        day.checked_sub_days(Days::new(u64::from(day.weekday().num_days_from_monday())))
            .unwrap_or(day)
    };
    let first_of_month = date.with_day(1).unwrap_or(date);
    let (from, to, prev, next) = match view {
        "month" => {
            let start = monday(first_of_month);
            let end_of_month = first_of_month
                .checked_add_months(Months::new(1))
                .unwrap_or(first_of_month);
            let last = end_of_month.pred_opt().unwrap_or(end_of_month);
            let end = monday(last).checked_add_days(Days::new(7)).unwrap_or(last);
            (
                start,
                end,
                first_of_month
                    .checked_sub_months(Months::new(1))
                    .unwrap_or(first_of_month),
                end_of_month,
            )
        }
        "week" => {
            let start = monday(date);
            (
                start,
                start.checked_add_days(Days::new(7)).unwrap_or(start),
                start.checked_sub_days(Days::new(7)).unwrap_or(start),
                start.checked_add_days(Days::new(7)).unwrap_or(start),
            )
        }
        _ => (
            date,
            date.checked_add_days(Days::new(14)).unwrap_or(date),
            date.checked_sub_days(Days::new(14)).unwrap_or(date),
            date.checked_add_days(Days::new(14)).unwrap_or(date),
        ),
    };
    let calendar = state
        .reports()
        .calendar(
            &viewer.actor,
            Some(&from.to_string()),
            Some(&to.to_string()),
            scope,
        )
        .await?;
    let scope_key = match scope {
        CalendarScope::Team => "team",
        CalendarScope::Mine => "mine",
    };
    let url = |view: &str, date: NaiveDate, scope: &str| {
        format!("/app/calendar?view={view}&date={date}&scope={scope}")
    };
    // Entries by the day they start, in the app timezone.
    let mut by_day: std::collections::BTreeMap<NaiveDate, Vec<EntryView>> =
        std::collections::BTreeMap::new();
    for entry in &calendar.data {
        let Some(start) = entry.start.as_str() else {
            continue;
        };
        let (day, time) = match chrono::DateTime::parse_from_rfc3339(start) {
            Ok(at) => {
                let local = at.with_timezone(&tz);
                (local.date_naive(), local.format("%H:%M").to_string())
            }
            Err(_) => match NaiveDate::parse_from_str(start.get(..10).unwrap_or(""), "%Y-%m-%d") {
                Ok(day) => (day, String::new()),
                Err(_) => continue,
            },
        };
        let object_label = schema
            .objects
            .get(&entry.object)
            .map(|object| formatter.label(Some(&object.label), &object.name))
            .unwrap_or_else(|| entry.object.clone());
        by_day.entry(day).or_default().push(EntryView {
            url: entry.url.clone(),
            title: entry.title.clone().unwrap_or_else(|| entry.id.clone()),
            object: entry.object.clone(),
            object_label,
            time,
            open: entry.open,
        });
    }
    let weekday_names: Vec<String> = (0..7)
        .map(|index| text(&format!("calendar.weekday.{index}")))
        .collect();
    let day_view = |day: NaiveDate, outside: bool| DayView {
        date: day.to_string(),
        day: day.day(),
        label: format!(
            "{} {}",
            day.format("%Y-%m-%d"),
            weekday_names
                .get(day.weekday().num_days_from_monday() as usize)
                .cloned()
                .unwrap_or_default()
        ),
        today: day == today,
        outside,
        entries: by_day.get(&day).cloned().unwrap_or_default(),
    };
    let mut weeks = Vec::new();
    if view != "agenda" {
        let mut day = from;
        // At most six weeks in a month view.
        for _ in 0..6 {
            if day >= to {
                break;
            }
            let mut week = Vec::with_capacity(7);
            for _ in 0..7 {
                week.push(day_view(
                    day,
                    view == "month" && day.month() != date.month(),
                ));
                day = day.succ_opt().unwrap_or(day);
            }
            weeks.push(week);
        }
    }
    let days: Vec<DayView> = if view == "agenda" {
        by_day
            .keys()
            .filter(|day| **day >= from && **day < to)
            .map(|day| day_view(*day, false))
            .collect()
    } else {
        Vec::new()
    };
    let heading = match view {
        "month" => format!("{}", first_of_month.format("%Y-%m")),
        _ => format!("{} – {}", from, to.pred_opt().unwrap_or(to)),
    };
    let view_urls = ["agenda", "week", "month"]
        .iter()
        .map(|name| {
            (
                url(name, date, scope_key),
                text(&format!("calendar.view.{name}")),
                *name == view,
            )
        })
        .collect();
    let scope_urls = if manager {
        ["mine", "team"]
            .iter()
            .map(|name| {
                (
                    url(view, date, name),
                    text(&format!("calendar.scope.{name}")),
                    *name == scope_key,
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let page = CalendarPage {
        view,
        scope: scope_key,
        manager,
        heading,
        from: from.to_string(),
        prev_url: url(view, prev, scope_key),
        next_url: url(view, next, scope_key),
        today_url: url(view, today, scope_key),
        view_urls,
        scope_urls,
        empty: calendar.data.is_empty(),
        weeks,
        weekdays: weekday_names,
        days,
    };
    render_with_status(
        &state,
        &frame,
        "reports/calendar.html",
        page,
        StatusCode::OK,
    )
}
