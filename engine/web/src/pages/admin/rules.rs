//! `/admin/rules`: every scheduled rule, event rule and pool sweep with its kind, object,
//! schedule, misfire policy, last run and next due time; `/admin/rules/{name}`: the runs of
//! one (due, started, finished, matched, changed, errors, manual, process), newest first,
//! paged, and "run now" (`POST /admin/rules/{name}/run`), a manual run recorded as such.
//!
//! The pages read and start runs through this process's `Scheduler` (its summaries, runs
//! and manual runs), as the API's `/api/v1/admin/rules…` do.

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use keel_meta::model::RuleTrigger;
use serde::{Deserialize, Serialize};

use super::{console_frame, not_found};
use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::extract::Pinned;
use crate::pages::{Formatter, PageError, PageForm, Viewer, form_urlencode, render};

/// Runs per page.
const PAGE: u32 = 50;

#[derive(Debug, Serialize)]
struct RulesPage {
    section: &'static str,
    rules: Vec<RuleRow>,
}

#[derive(Debug, Serialize)]
struct RuleRow {
    name: String,
    label: String,
    /// `schedule`, `event` or `pool`.
    kind: String,
    object: String,
    schedule: Option<String>,
    /// An event rule's events (`create, update`).
    events: String,
    misfire: Option<String>,
    enabled: bool,
    last_run: Option<String>,
    last_run_at: Option<String>,
    last_errors: u64,
    next_due: Option<String>,
    next_due_at: Option<String>,
}

/// The label of a rule or pool job, in the page's language.
fn label_of(state: &AppState, formatter: &Formatter, name: &str) -> String {
    let schema = state.schema();
    if let Some(pool) = name
        .strip_prefix("pool:")
        .and_then(|pool| schema.pools.get(pool))
    {
        return formatter.label(pool.label.as_ref(), &pool.name);
    }
    formatter.label(
        schema.rules.get(name).and_then(|rule| rule.label.as_ref()),
        name,
    )
}

/// `GET /admin/rules`.
pub async fn list(Pinned(state): Pinned, viewer: Viewer) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let formatter = frame.formatter(&state);
    let summaries = state
        .scheduler()
        .summaries()
        .await
        .map_err(ApiError::internal)?;
    let schema = state.schema();
    let rules = summaries
        .iter()
        .map(|summary| {
            let last = summary.last_run.as_ref();
            let last_at = last.map(|run| at(run.started_at));
            let next_at = summary.next_due.map(at);
            RuleRow {
                label: label_of(&state, &formatter, &summary.name),
                kind: summary.kind.to_owned(),
                object: object_label(&state, &formatter, &summary.object),
                schedule: summary.schedule.clone(),
                events: schema
                    .rules
                    .get(&summary.name)
                    .map(|rule| match &rule.trigger {
                        RuleTrigger::Event { on, .. } => on
                            .iter()
                            .filter_map(|event| {
                                serde_json::to_value(event)
                                    .ok()
                                    .and_then(|value| value.as_str().map(str::to_owned))
                            })
                            .collect::<Vec<_>>()
                            .join(", "),
                        RuleTrigger::Schedule { .. } => String::new(),
                    })
                    .unwrap_or_default(),
                misfire: summary.misfire.map(misfire_name),
                enabled: summary.enabled,
                last_run: last_at.as_deref().map(|at| formatter.datetime(at)),
                last_run_at: last_at,
                last_errors: last.map_or(0, |run| run.errors.max(0) as u64),
                next_due: next_at.as_deref().map(|at| formatter.datetime(at)),
                next_due_at: next_at,
                name: summary.name.clone(),
            }
        })
        .collect();
    render(
        &state,
        &frame,
        "admin/rules.html",
        RulesPage {
            section: "rules",
            rules,
        },
    )
}

/// An instant as RFC 3339 UTC.
fn at(value: chrono::DateTime<chrono::Utc>) -> String {
    value.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A misfire policy's name (`once`, `skip`, `all`), as the catalog keys name them.
fn misfire_name(misfire: keel_meta::model::Misfire) -> String {
    serde_json::to_value(misfire)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// An object's label in the page's language.
fn object_label(state: &AppState, formatter: &Formatter, name: &str) -> String {
    state
        .schema()
        .objects
        .get(name)
        .map(|object| formatter.label(Some(&object.label), &object.name))
        .unwrap_or_else(|| name.to_owned())
}

#[derive(Debug, Default, Deserialize)]
pub struct RunsQuery {
    after: Option<String>,
    done: Option<String>,
}

#[derive(Debug, Serialize)]
struct RulePage {
    section: &'static str,
    name: String,
    label: String,
    kind: String,
    object: String,
    schedule: Option<String>,
    next_due: Option<String>,
    runs: Vec<RunRow>,
    ran: bool,
    error: Option<String>,
    next: Option<String>,
    first: Option<String>,
}

#[derive(Debug, Serialize)]
struct RunRow {
    id: String,
    due: String,
    started: String,
    finished: String,
    matched: u64,
    changed: u64,
    errors: u64,
    error: Option<String>,
    manual: bool,
    catch_up: bool,
    state: String,
    process: String,
}

/// `GET /admin/rules/{name}?after=`: the rule and its runs.
pub async fn runs(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(query): Query<RunsQuery>,
) -> Result<Response, PageError> {
    show(&state, &viewer, &name, query, None).await
}

async fn show(
    state: &AppState,
    viewer: &Viewer,
    name: &str,
    query: RunsQuery,
    error: Option<String>,
) -> Result<Response, PageError> {
    let frame = console_frame(state, viewer).await?;
    let formatter = frame.formatter(state);
    let scheduler = state.scheduler();
    let summaries = scheduler.summaries().await.map_err(ApiError::internal)?;
    let Some(summary) = summaries.iter().find(|summary| summary.name == name) else {
        return Err(not_found());
    };
    // `after` is the id of the last run of the previous page (a run of this rule).
    let after = match query.after.as_deref().filter(|after| !after.is_empty()) {
        Some(id) => keel_store::schedule::run(state.db(), id)
            .await
            .map_err(ApiError::internal)?
            .filter(|run| run.job == name),
        None => None,
    };
    let runs = scheduler
        .runs(
            name,
            after.as_ref().map(|run| (run.due_at, run.id.as_str())),
            PAGE,
        )
        .await
        .map_err(ApiError::from)?;
    let when = |value: Option<chrono::DateTime<chrono::Utc>>| {
        value
            .map(|value| formatter.datetime(&at(value)))
            .unwrap_or_default()
    };
    let next = (runs.len() == PAGE as usize)
        .then(|| runs.last().map(|run| run.id.clone()))
        .flatten();
    let rows = runs
        .iter()
        .map(|run| RunRow {
            id: run.id.clone(),
            due: when(Some(run.due_at)),
            started: when(Some(run.started_at)),
            finished: when(run.finished_at),
            matched: run.matched.max(0) as u64,
            changed: run.changed.max(0) as u64,
            errors: run.errors.max(0) as u64,
            error: run.error.clone(),
            manual: run.manual,
            catch_up: run.catch_up,
            state: run.state.clone(),
            process: run.process.clone(),
        })
        .collect();
    let url = format!("/admin/rules/{name}");
    let page = RulePage {
        section: "rules",
        label: label_of(state, &formatter, name),
        kind: summary.kind.to_owned(),
        object: object_label(state, &formatter, &summary.object),
        schedule: summary.schedule.clone(),
        next_due: summary.next_due.map(|due| formatter.datetime(&at(due))),
        runs: rows,
        ran: query.done.as_deref() == Some("ran"),
        error,
        next: next.map(|next| format!("{url}?after={}", form_urlencode(&next))),
        first: after.map(|_| url.clone()),
        name: name.to_owned(),
    };
    render(state, &frame, "admin/rule.html", page)
}

/// `POST /admin/rules/{name}/run`: a manual run now, then its runs with a notice; a rule
/// that cannot be run by hand (an event rule) shows why.
pub async fn run_now(
    Pinned(state): Pinned,
    Path(name): Path<String>,
    form: PageForm,
) -> Result<Response, PageError> {
    console_frame(&state, &form.viewer).await?;
    // The run finishes before the answer, so the page it redirects to shows its outcome.
    match state.scheduler().run_manual(&name).await {
        Ok(_) => Ok(Redirect::to(&format!("/admin/rules/{name}?done=ran")).into_response()),
        Err(error) => {
            let error = ApiError::from(error);
            match error.code() {
                ErrorCode::NotFound => Err(not_found()),
                _ if error.status().is_client_error() => {
                    show(
                        &state,
                        &form.viewer,
                        &name,
                        RunsQuery::default(),
                        Some(error.detail().to_owned()),
                    )
                    .await
                }
                _ => Err(PageError::Api(error)),
            }
        }
    }
}
