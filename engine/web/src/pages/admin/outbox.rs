//! `/admin/outbox`: the outbox rows by state (pending, failing, dead, done), newest first,
//! paged, with a "retry" form on each dead row; and the rule runs available today — the
//! outbox rows of kind `rule`, grouped by rule. (Scheduled rules will record their own runs;
//! until then the outbox is the history.)

use std::collections::BTreeMap;

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use keel_runtime::outbox::ListState;
use keel_runtime::records::RecordError;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::console_frame;
use super::users::Done;
use crate::extract::Pinned;
use crate::pages::{PageError, PageForm, Viewer, form_urlencode, render};

/// Rows per page.
const PAGE: u32 = 50;
/// How many rows of each state the rule-run summary reads.
const RULE_ROWS: u32 = 200;

#[derive(Debug, Default, Deserialize)]
pub struct OutboxQuery {
    state: Option<String>,
    before: Option<String>,
    done: Option<String>,
}

#[derive(Debug, Serialize)]
struct OutboxPage {
    section: &'static str,
    state: &'static str,
    states: Vec<&'static str>,
    rows: Vec<Row>,
    pending: i64,
    dead: i64,
    next: Option<String>,
    first: Option<String>,
    rules: Vec<RuleRuns>,
    done: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct Row {
    id: String,
    kind: String,
    state: String,
    attempts: i64,
    last_error: Option<String>,
    due: String,
    created: String,
    /// What the row is about: a rule's name, a notification's recipient …
    about: String,
}

#[derive(Debug, Default, Serialize)]
struct RuleRuns {
    rule: String,
    label: String,
    pending: usize,
    failing: usize,
    dead: usize,
    done: usize,
    last: String,
    last_error: Option<String>,
}

fn parse_state(text: Option<&str>) -> (ListState, &'static str) {
    match text {
        Some("pending") => (ListState::Pending, "pending"),
        Some("failing") => (ListState::Failing, "failing"),
        Some("done") => (ListState::Done, "done"),
        _ => (ListState::Dead, "dead"),
    }
}

/// `GET /admin/outbox?state=&before=`.
pub async fn page(
    Pinned(state): Pinned,
    viewer: Viewer,
    Query(query): Query<OutboxQuery>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let formatter = frame.formatter(&state);
    let (list_state, state_name) = parse_state(query.state.as_deref());
    let before = query.before.as_deref().filter(|before| !before.is_empty());
    let answer =
        keel_runtime::outbox::admin_list(state.records(), &viewer.actor, list_state, before, PAGE)
            .await?;
    let text = |value: &Json| value.as_str().unwrap_or("").to_owned();
    let rows = answer["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|row| Row {
            id: text(&row["id"]),
            kind: text(&row["kind"]),
            state: text(&row["state"]),
            attempts: row["attempts"].as_i64().unwrap_or(0),
            last_error: row["last_error"].as_str().map(str::to_owned),
            due: formatter.datetime(row["due_at"].as_str().unwrap_or("")),
            created: formatter.datetime(row["created_at"].as_str().unwrap_or("")),
            about: about(&row["payload"]),
        })
        .collect();
    let next = answer["next"].as_str().map(|next| {
        format!(
            "/admin/outbox?state={state_name}&before={}",
            form_urlencode(next)
        )
    });
    let schema = state.schema();
    let mut runs: BTreeMap<String, RuleRuns> = BTreeMap::new();
    for (list_state, name) in [
        (ListState::Pending, "pending"),
        (ListState::Failing, "failing"),
        (ListState::Dead, "dead"),
        (ListState::Done, "done"),
    ] {
        let answer = keel_runtime::outbox::admin_list(
            state.records(),
            &viewer.actor,
            list_state,
            None,
            RULE_ROWS,
        )
        .await?;
        for row in answer["data"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if row["kind"] != "rule" {
                continue;
            }
            let rule = row["payload"]["name"].as_str().unwrap_or("").to_owned();
            let entry = runs.entry(rule.clone()).or_insert_with(|| RuleRuns {
                label: formatter.label(
                    schema.rules.get(&rule).and_then(|rule| rule.label.as_ref()),
                    &rule,
                ),
                rule,
                ..RuleRuns::default()
            });
            match name {
                "pending" => entry.pending += 1,
                "failing" => entry.failing += 1,
                "dead" => entry.dead += 1,
                _ => entry.done += 1,
            }
            let at = row["finished_at"]
                .as_str()
                .or_else(|| row["created_at"].as_str())
                .unwrap_or("");
            if at > entry.last.as_str() {
                entry.last = at.to_owned();
                entry.last_error = row["last_error"].as_str().map(str::to_owned);
            }
        }
    }
    let rules = runs
        .into_values()
        .map(|mut runs| {
            runs.last = formatter.datetime(&runs.last);
            runs
        })
        .collect();
    let done = Done::from(query.done).key();
    render(
        &state,
        &frame,
        "admin/outbox.html",
        OutboxPage {
            section: "outbox",
            state: state_name,
            states: vec!["pending", "failing", "dead", "done"],
            rows,
            pending: answer["counts"]["pending"].as_i64().unwrap_or(0),
            dead: answer["counts"]["dead"].as_i64().unwrap_or(0),
            next,
            first: before.map(|_| format!("/admin/outbox?state={state_name}")),
            rules,
            done,
        },
    )
}

/// A short description of a row's payload (its rule, channel or recipient).
fn about(payload: &Json) -> String {
    ["name", "rule", "channel", "to", "user"]
        .iter()
        .find_map(|key| payload[*key].as_str())
        .unwrap_or("")
        .to_owned()
}

/// `POST /admin/outbox/{id}/retry`: a dead row is due again now; back to the dead rows.
pub async fn retry(
    Pinned(state): Pinned,
    Path(id): Path<String>,
    form: PageForm,
) -> Result<Response, PageError> {
    console_frame(&state, &form.viewer).await?;
    match keel_runtime::outbox::admin_retry(state.records(), &form.viewer.actor, &id).await {
        Ok(_) => Ok(Redirect::to("/admin/outbox?state=dead&done=retried").into_response()),
        Err(RecordError::NotFound) => Err(super::not_found()),
        Err(other) => Err(other.into()),
    }
}
