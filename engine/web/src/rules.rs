//! The rules console of admins (docs/scheduler.md, "Admin API"):
//! `GET /admin/rules` lists every rule, pool sweep and the approval reminders with its last
//! run and next due time,
//! `GET /admin/rules/{name}/runs?before=&limit=` pages through a job's run records (newest
//! due first), and `POST /admin/rules/{name}/run` starts a manual run (202 with the run, as
//! it starts; it finishes in the background). Admins only (403 otherwise).

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_runtime::actor::Actor;
use keel_runtime::scheduler::RuleSummary;
use keel_store::schedule::Run;
use serde_json::{Value as JsonValue, json};

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{CurrentUser, Pinned, QueryPairs};

/// The most runs one page holds.
const MAX_LIMIT: u32 = 200;

fn admins_only(state: &AppState, actor: &Actor) -> Result<(), ApiError> {
    if keel_runtime::records::access::is_admin(state.schema(), actor) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            "only admins may see and run rules",
        ))
    }
}

fn at(value: chrono::DateTime<chrono::Utc>) -> String {
    value.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A run record as the API shows it.
pub fn run_json(run: &Run) -> JsonValue {
    json!({
        "id": run.id,
        "job": run.job,
        "kind": run.kind,
        "due_at": at(run.due_at),
        "started_at": at(run.started_at),
        "finished_at": run.finished_at.map(at),
        "state": run.state,
        "manual": run.manual,
        "catch_up": run.catch_up,
        "missed": run.missed,
        "process": run.process,
        "attempts": run.attempts,
        "matched": run.matched,
        "changed": run.changed,
        "errors": run.errors,
        "error": run.error,
    })
}

fn summary_json(summary: &RuleSummary) -> JsonValue {
    json!({
        "name": summary.name,
        "kind": summary.kind,
        "object": summary.object,
        "schedule": summary.schedule,
        "misfire": summary.misfire,
        "enabled": summary.enabled,
        "last_run": summary.last_run.as_ref().map(run_json),
        "next_due": summary.next_due.map(at),
    })
}

/// `GET /admin/rules` → `{data: [{name, kind, object, schedule, misfire, enabled, last_run,
/// next_due}]}`; `kind` is `schedule`, `event`, `pool` or `approvals`.
pub async fn list(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
) -> Result<Response, ApiError> {
    admins_only(&state, &actor)?;
    let summaries = state
        .scheduler()
        .summaries()
        .await
        .map_err(ApiError::internal)?;
    let data: Vec<JsonValue> = summaries.iter().map(summary_json).collect();
    Ok(Json(json!({ "data": data })).into_response())
}

/// `GET /admin/rules/{name}/runs?before=&limit=` → `{data: [run…], next}`; `next` is the
/// `before` of the following page. An event rule has no runs; an unknown name is 404.
pub async fn runs(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(name): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    admins_only(&state, &actor)?;
    let (mut before, mut limit) = (None, 50);
    for (key, value) in pairs {
        match key.as_str() {
            "before" => before = Some(value),
            "limit" => limit = crate::query::limit_parameter(&value, MAX_LIMIT)?,
            other => {
                return Err(ApiError::invalid_parameter(
                    other,
                    "unknown_parameter",
                    format!("`{other}` is not a parameter here; use before and limit"),
                ));
            }
        }
    }
    let after_run = match &before {
        Some(id) => match keel_store::schedule::run(state.db(), id)
            .await
            .map_err(ApiError::internal)?
        {
            Some(run) if run.job == name => Some(run),
            _ => {
                return Err(ApiError::invalid_parameter(
                    "before",
                    "invalid_value",
                    "`before` is the `next` of a previous page of this rule's runs",
                ));
            }
        },
        None => None,
    };
    let runs = state
        .scheduler()
        .runs(
            &name,
            after_run.as_ref().map(|run| (run.due_at, run.id.as_str())),
            limit,
        )
        .await?;
    let next = (runs.len() == limit as usize)
        .then(|| runs.last().map(|run| run.id.clone()))
        .flatten();
    let data: Vec<JsonValue> = runs.iter().map(run_json).collect();
    Ok(Json(json!({ "data": data, "next": next })).into_response())
}

/// `POST /admin/rules/{name}/run` → 202 with the run as it starts (`manual: true`); it runs
/// to its end in this process. 404 for an unknown name, 409 for an event rule.
pub async fn run_now(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    admins_only(&state, &actor)?;
    let scheduler = std::sync::Arc::clone(state.scheduler());
    let run = scheduler.claim_manual(&name).await?;
    let body = run_json(&run);
    tokio::spawn(async move { scheduler.execute(run).await });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}
