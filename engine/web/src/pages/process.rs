//! The sales-process part of a record page (docs/ui.md, "Sales processes"): the stage path
//! across the top (done ✓ / current / upcoming, won and lost in their colours) whose steps
//! are the transition buttons, one form posting `to` (and an optional comment) to the
//! record's transition route.

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use keel_meta::{FieldKind, Object, Outcome, Process};
use keel_runtime::processes::TransitionResult;
use keel_runtime::records::{Input, RecordError};
use serde::Serialize;
use serde_json::Value as Json;

use super::{Formatter, Frame, PageError, PageForm, Viewer};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Pinned;

/// What a record page shows of the process that owns its object.
#[derive(Debug, Serialize)]
pub struct RecordProcess {
    /// The process's label.
    pub label: String,
    /// The route the transition form posts to.
    pub action: String,
    pub path: Vec<PathStep>,
    /// Whether the path offers any move (the form is left out otherwise).
    pub movable: bool,
    /// Why the last move was refused (409), in the runtime's words.
    pub error: Option<String>,
    /// The pending approval (the banner), if any.
    pub pending: Option<ApprovalView>,
    /// Every approval of the record with its trail, newest first.
    pub approvals: Vec<ApprovalView>,
    /// The stage changes, newest first.
    pub history: Vec<StageChange>,
    /// A notice after a move (`moved`) or a request for approval (`pending`).
    pub notice: Option<String>,
}

/// One stage on the path.
#[derive(Debug, Serialize)]
pub struct PathStep {
    pub key: String,
    pub label: String,
    /// `done`, `current` or `upcoming`.
    pub state: &'static str,
    /// `won`, `lost` or empty.
    pub outcome: &'static str,
    /// Whether the step is a button that moves the record there.
    pub target: bool,
    /// The move needs approval (the button says so).
    pub needs_approval: bool,
    /// Labels of the required fields the record lacks (the move will ask for them).
    pub missing: Vec<String>,
}

/// One row of the stage history (阶段记录).
#[derive(Debug, Serialize)]
pub struct StageChange {
    pub from: String,
    pub to: String,
    pub at: String,
    pub by: String,
    pub comment: String,
    /// Days spent in `from`, one decimal.
    pub days: String,
}

/// The process part of `record`'s page, when a process owns `object`: the path with the
/// moves the runtime offers, the approvals and the stage history.
#[allow(clippy::too_many_arguments)]
pub async fn record_part(
    state: &AppState,
    viewer: &Viewer,
    process: &Process,
    object: &Object,
    record: &Json,
    formatter: &Formatter,
    error: Option<String>,
    notice: Option<&str>,
) -> Result<RecordProcess, PageError> {
    let text = |key: &str| state.ui().catalogs().text(&viewer.lang, key, |_| None);
    let id = record.get("id").and_then(Json::as_str).unwrap_or("");
    let processes = state.processes();
    let available = processes
        .available_transitions(&viewer.actor, &object.name, id)
        .await?;
    let current = available.current.clone().unwrap_or_default();
    let at = process.stages.iter().position(|stage| stage.key == current);
    let won = at
        .and_then(|index| process.stages.get(index))
        .is_some_and(|stage| stage.outcome == Some(Outcome::Won));
    let may_edit = state
        .records()
        .may(
            &viewer.actor,
            &object.name,
            record,
            keel_runtime::records::access::Action::Edit,
        )
        .await?;
    let path: Vec<PathStep> = process
        .stages
        .iter()
        .enumerate()
        .map(|(index, stage)| {
            let state = match at {
                Some(at) if index == at => "current",
                // Every open stage lies behind a won deal; a lost one keeps its place.
                Some(_) if won && stage.outcome.is_none() => "done",
                Some(at) if index < at && stage.outcome.is_none() => "done",
                _ => "upcoming",
            };
            let offered = available
                .transitions
                .iter()
                .find(|move_| move_.to == stage.key);
            PathStep {
                key: stage.key.clone(),
                label: formatter.label(stage.label.as_ref(), &stage.key),
                state,
                outcome: match stage.outcome {
                    Some(Outcome::Won) => "won",
                    Some(Outcome::Lost) => "lost",
                    None => "",
                },
                target: may_edit && offered.is_some(),
                needs_approval: offered.is_some_and(|move_| move_.needs_approval),
                missing: offered
                    .map(|move_| {
                        move_
                            .missing
                            .iter()
                            .map(|name| {
                                object
                                    .field(name)
                                    .map(|field| formatter.field_label(field))
                                    .unwrap_or_else(|| name.clone())
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    let mut approvals = Vec::new();
    for approval in processes
        .record_approvals(&viewer.actor, &object.name, id)
        .await?
    {
        approvals.push(approval_view(state, viewer, formatter, &approval, &text).await);
    }
    let pending = approvals
        .iter()
        .find(|approval| approval.state == "pending")
        .cloned();
    let entries = processes
        .stage_history(&viewer.actor, &object.name, id)
        .await?;
    let users: Vec<String> = entries
        .iter()
        .filter_map(|entry| entry.by_user.clone())
        .collect();
    let names = state.records().user_names(&users).await.unwrap_or_default();
    let stage_label = |key: &str| {
        process
            .stages
            .iter()
            .find(|stage| stage.key == key)
            .map(|stage| formatter.label(stage.label.as_ref(), key))
            .unwrap_or_else(|| key.to_owned())
    };
    let history = entries
        .iter()
        .rev()
        .map(|entry| StageChange {
            from: entry
                .from_stage
                .as_deref()
                .map(stage_label)
                .unwrap_or_default(),
            to: stage_label(&entry.to_stage),
            at: formatter.datetime(&entry.at.to_rfc3339()),
            by: entry
                .by_user
                .as_ref()
                .map(|id| names.get(id).cloned().unwrap_or_else(|| id.clone()))
                .unwrap_or_default(),
            comment: entry.comment.clone().unwrap_or_default(),
            days: entry
                .seconds_in_from
                .map(|seconds| format!("{:.1}", seconds as f64 / 86_400.0))
                .unwrap_or_default(),
        })
        .collect();
    let notice = match notice {
        Some("pending") => Some(text("process.notice.pending")),
        Some(stage) => Some(format!(
            "{} {}",
            text("process.notice.moved"),
            stage_label(stage)
        )),
        None => None,
    };
    Ok(RecordProcess {
        label: formatter.label(process.label.as_ref(), &process.name),
        action: format!("/app/{}/{id}/transition", object.name),
        movable: path.iter().any(|step| step.target),
        path,
        error,
        pending,
        approvals,
        history,
        notice,
    })
}

/// The routes of this module; [`super::routes`] merges them.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/app/{object}/{id}/transition", post(transition))
        .route("/app/approvals", get(inbox))
        .route("/app/approvals/{id}/{decision}", post(decide))
}

/// A local path to go back to after a move (the kanban), else the record page.
fn back_to(form: &PageForm, record_url: &str) -> String {
    match form.get("back") {
        Some(back) if back.starts_with("/app/") && !back.starts_with("//") => back.to_owned(),
        _ => record_url.to_owned(),
    }
}

/// The text of `record`'s `field` as a form input holds it.
fn input_text(record: &Json, field: &str) -> String {
    match record.get(field) {
        Some(Json::String(text)) => text.clone(),
        Some(Json::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

#[derive(Debug, Serialize)]
struct MissingPage {
    object: String,
    object_label: String,
    id: String,
    title: String,
    action: String,
    to: String,
    to_label: String,
    comment: String,
    back: String,
    record_url: String,
    fields: Vec<MissingField>,
}

#[derive(Debug, Serialize)]
struct MissingField {
    name: String,
    label: String,
    help: String,
    /// `select`, `textarea` or an `<input>` type.
    widget: &'static str,
    step: &'static str,
    value: String,
    options: Vec<(String, String)>,
    error: Option<String>,
}

/// `POST /app/{object}/{id}/transition` (form: `to`, `comment`, `back`, and values for the
/// target stage's required fields): moves the record as the API does. A move that needs
/// fields answers a form asking for every one of them (422), which posts back here with
/// them; a move that waits for approval goes to the record page with its banner; a refused
/// move goes to the record page with the reason (409).
async fn transition(
    Pinned(state): Pinned,
    Path((object_name, id)): Path<(String, String)>,
    form: PageForm,
) -> Result<Response, PageError> {
    let schema = state.schema().clone();
    let viewer = &form.viewer;
    let Some(object) = schema.objects.get(&object_name) else {
        return Err(RecordError::UnknownObject(object_name).into());
    };
    let Some(process) = super::kanban::process_of(&schema, &object.name) else {
        return Err(RecordError::NotFound.into());
    };
    let record_url = format!("/app/{}/{}", object.name, super::form_urlencode(&id));
    let to = form.get("to").unwrap_or("").trim().to_owned();
    let comment = form
        .get("comment")
        .map(str::trim)
        .filter(|comment| !comment.is_empty())
        .map(str::to_owned);
    let tz: chrono_tz::Tz = schema
        .app
        .timezone
        .parse()
        .unwrap_or(chrono_tz::Asia::Shanghai);
    // The values the missing-field form sent: only fields the target stage requires.
    let stage = process.stages.iter().find(|stage| stage.key == to);
    let mut input = Input::new();
    for name in stage.map(|stage| stage.require.as_slice()).unwrap_or(&[]) {
        let values = form.all(name);
        if let (Some(field), false) = (object.field(name), values.is_empty()) {
            input.insert(name.clone(), super::form::input_json(field, &values, tz));
        }
    }
    let result = state
        .processes()
        .transition(
            &viewer.actor,
            &object.name,
            &id,
            &to,
            comment.clone(),
            input,
        )
        .await;
    match result {
        Ok(TransitionResult::Transitioned { .. }) => Ok(Redirect::to(&format!(
            "{}{}moved={}",
            back_to(&form, &record_url),
            if back_to(&form, &record_url).contains('?') {
                "&"
            } else {
                "?"
            },
            super::form_urlencode(&to)
        ))
        .into_response()),
        Ok(TransitionResult::Pending { .. }) => {
            Ok(Redirect::to(&format!("{record_url}?approval=pending")).into_response())
        }
        Err(RecordError::Invalid(problems)) if stage.is_some() => {
            let stage = stage.map(|stage| (stage.key.clone(), stage.label.clone()));
            missing_form(
                &state,
                viewer,
                object,
                &id,
                stage,
                comment,
                back_to(&form, &record_url),
                &form,
                &problems,
            )
            .await
        }
        Err(error) => {
            let error = ApiError::from(error);
            if error.status() == StatusCode::CONFLICT {
                let detail = error.detail().to_owned();
                let mut response = super::record::show_with_notice(
                    &state,
                    viewer,
                    &object.name,
                    &id,
                    Some(detail),
                )
                .await?;
                *response.status_mut() = StatusCode::CONFLICT;
                return Ok(response);
            }
            Err(PageError::Api(error))
        }
    }
}

/// The form asking for the fields a move needs (422), with what was sent and each error.
#[allow(clippy::too_many_arguments)]
async fn missing_form(
    state: &AppState,
    viewer: &Viewer,
    object: &Object,
    id: &str,
    stage: Option<(String, Option<keel_meta::Label>)>,
    comment: Option<String>,
    back: String,
    form: &PageForm,
    problems: &[keel_runtime::coerce::FieldProblem],
) -> Result<Response, PageError> {
    let record = state.records().get(&viewer.actor, &object.name, id).await?;
    let frame = Frame::new(state, viewer).await?;
    let formatter = frame.formatter(state);
    let (to, to_label) = stage
        .map(|(key, label)| (key.clone(), formatter.label(label.as_ref(), &key)))
        .unwrap_or_default();
    let mut fields = Vec::new();
    for problem in problems {
        let Some(field) = object.field(&problem.field) else {
            continue;
        };
        if fields
            .iter()
            .any(|shown: &MissingField| shown.name == field.name)
        {
            continue;
        }
        let (widget, step, options) = match &field.kind {
            FieldKind::Choice { options, .. } => (
                "select",
                "",
                options
                    .iter()
                    .map(|option| {
                        (
                            option.key.clone(),
                            formatter.label(option.label.as_ref(), &option.key),
                        )
                    })
                    .collect(),
            ),
            FieldKind::LongText => ("textarea", "", Vec::new()),
            FieldKind::Integer => ("number", "1", Vec::new()),
            FieldKind::Decimal { .. } | FieldKind::Money { .. } | FieldKind::Percent { .. } => {
                ("number", "any", Vec::new())
            }
            FieldKind::Date => ("date", "", Vec::new()),
            FieldKind::Datetime => ("datetime-local", "", Vec::new()),
            _ => ("text", "", Vec::new()),
        };
        let sent = form.get(&field.name).map(str::to_owned);
        fields.push(MissingField {
            name: field.name.clone(),
            label: formatter.field_label(field),
            help: formatter.label(field.help.as_ref(), ""),
            widget,
            step,
            value: sent.unwrap_or_else(|| input_text(&record, &field.name)),
            options,
            error: (form.get(&field.name).is_some() || problem.code != "required")
                .then(|| problem.message.clone()),
        });
    }
    let page = MissingPage {
        object: object.name.clone(),
        object_label: formatter.label(Some(&object.label), &object.name),
        id: id.to_owned(),
        title: super::record::record_title(object, &record),
        action: format!("/app/{}/{id}/transition", object.name),
        record_url: format!("/app/{}/{id}", object.name),
        to,
        to_label,
        comment: comment.unwrap_or_default(),
        back,
        fields,
    };
    super::render_with_status(
        state,
        &frame,
        "process/missing.html",
        page,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
}

#[derive(Debug, Serialize)]
struct InboxPage {
    /// `pending` (waiting for me) or `mine` (requested by me).
    tab: &'static str,
    approvals: Vec<ApprovalView>,
    notice: Option<String>,
}

/// An approval as the inbox, the record page's banner and its approvals tab show it.
#[derive(Debug, Serialize, Clone)]
pub struct ApprovalView {
    pub id: String,
    pub url: String,
    pub title: String,
    pub object_label: String,
    pub stage: String,
    pub state: String,
    pub state_label: String,
    pub step: String,
    pub requested_by: String,
    pub requested_at: String,
    pub comment: String,
    /// Whether the viewer may approve or reject (they are among those it waits for).
    pub may_decide: bool,
    /// Whether the viewer may recall it (they asked, and it is pending).
    pub may_recall: bool,
    pub trail: Vec<TrailEntry>,
}

/// One approver's part in an approval.
#[derive(Debug, Serialize, Clone)]
pub struct TrailEntry {
    pub step: i64,
    pub approver: String,
    pub state: String,
    pub state_label: String,
    pub decided_at: String,
    pub comment: String,
}

/// An approval as the API renders it, for the pages.
pub async fn approval_view(
    state: &AppState,
    viewer: &Viewer,
    formatter: &Formatter,
    approval: &Json,
    text: &impl Fn(&str) -> String,
) -> ApprovalView {
    let schema = state.schema();
    let get = |key: &str| approval.get(key).and_then(Json::as_str).unwrap_or("");
    let object = schema.objects.get(get("object"));
    let mut ids: Vec<String> = vec![get("requested_by").to_owned()];
    let tasks = approval
        .get("tasks")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    ids.extend(
        tasks
            .iter()
            .filter_map(|task| task.get("approver").and_then(Json::as_str))
            .map(str::to_owned),
    );
    let names = state.records().user_names(&ids).await.unwrap_or_default();
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let stage_label = |key: &str| {
        schema
            .processes
            .get(get("process"))
            .and_then(|process| process.stages.iter().find(|stage| stage.key == key))
            .map(|stage| formatter.label(stage.label.as_ref(), key))
            .unwrap_or_else(|| key.to_owned())
    };
    let pending = get("state") == "pending";
    let waiting: Vec<&str> = approval
        .get("waiting_for")
        .and_then(Json::as_array)
        .map(|ids| ids.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    let steps = approval.get("steps").and_then(Json::as_i64).unwrap_or(0);
    let step = approval.get("step").and_then(Json::as_i64).unwrap_or(0);
    let title = approval
        .get("record_title")
        .and_then(Json::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| get("record_id").to_owned());
    ApprovalView {
        id: get("id").to_owned(),
        url: format!("/app/{}/{}", get("object"), get("record_id")),
        title,
        object_label: object
            .map(|object| formatter.label(Some(&object.label), &object.name))
            .unwrap_or_default(),
        stage: stage_label(get("stage")),
        state: get("state").to_owned(),
        state_label: text(&format!("approvals.state.{}", get("state"))),
        step: format!("{}/{}", step + 1, steps.max(1)),
        requested_by: name(get("requested_by")),
        requested_at: formatter.datetime(get("requested_at")),
        comment: get("comment").to_owned(),
        may_decide: pending && waiting.contains(&viewer.actor.id.as_str()),
        may_recall: pending && get("requested_by") == viewer.actor.id,
        trail: tasks
            .iter()
            .map(|task| {
                let task_get = |key: &str| task.get(key).and_then(Json::as_str).unwrap_or("");
                TrailEntry {
                    step: task.get("step").and_then(Json::as_i64).unwrap_or(0) + 1,
                    approver: name(task_get("approver")),
                    state: task_get("state").to_owned(),
                    state_label: text(&format!("approvals.state.{}", task_get("state"))),
                    decided_at: if task_get("decided_at").is_empty() {
                        String::new()
                    } else {
                        formatter.datetime(task_get("decided_at"))
                    },
                    comment: task_get("comment").to_owned(),
                }
            })
            .collect(),
    }
}

/// `GET /app/approvals[?tab=mine]`: what waits for the viewer's decision, or what they asked
/// for.
async fn inbox(
    Pinned(state): Pinned,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let query = query.unwrap_or_default();
    let tab = if query.split('&').any(|pair| pair == "tab=mine") {
        "mine"
    } else {
        "pending"
    };
    let frame = Frame::new(&state, &viewer).await?;
    let formatter = frame.formatter(&state);
    let text = |key: &str| state.ui().catalogs().text(&frame.lang, key, |_| None);
    let found = if tab == "pending" {
        state
            .processes()
            .approvals(&viewer.actor, Some("pending"))
            .await?
    } else {
        state
            .processes()
            .approvals(&viewer.actor, None)
            .await?
            .into_iter()
            .filter(|approval| {
                approval.get("requested_by").and_then(Json::as_str)
                    == Some(viewer.actor.id.as_str())
            })
            .collect()
    };
    let mut approvals = Vec::with_capacity(found.len());
    for approval in &found {
        approvals.push(approval_view(&state, &viewer, &formatter, approval, &text).await);
    }
    let notice = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("done="))
        .filter(|done| matches!(*done, "approve" | "reject" | "recall"))
        .map(|done| text(&format!("approvals.done.{done}")));
    let page = InboxPage {
        tab,
        approvals,
        notice,
    };
    super::render(&state, &frame, "process/approvals.html", page)
}

/// `POST /app/approvals/{id}/approve|reject|recall` (form: `comment`, `back`): decides, then
/// back to where the form was (the inbox or the record page). A decision the runtime refuses
/// is its error page.
async fn decide(
    Pinned(state): Pinned,
    Path((id, decision)): Path<(String, String)>,
    form: PageForm,
) -> Result<Response, PageError> {
    let actor = &form.viewer.actor;
    let comment = form
        .get("comment")
        .map(str::trim)
        .filter(|comment| !comment.is_empty())
        .map(str::to_owned);
    let processes = state.processes();
    match decision.as_str() {
        "approve" => processes.approve(actor, &id, comment).await?,
        "reject" => processes.reject(actor, &id, comment).await?,
        "recall" => processes.recall(actor, &id, comment).await?,
        _ => return Err(RecordError::NotFound.into()),
    };
    let back = match form.get("back") {
        Some(back) if back.starts_with("/app/") && !back.starts_with("//") => back.to_owned(),
        _ => "/app/approvals".to_owned(),
    };
    let joiner = if back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!("{back}{joiner}done={decision}")).into_response())
}
