//! The sales-process routes (docs/processes.md, docs/api.md): a record's transition, its
//! stage path and stage history, its approvals, and the approvals inbox with approve,
//! reject and recall. Thin handlers over `keel_runtime::processes::Processes`, which decides
//! everything.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_runtime::processes::TransitionResult;
use keel_runtime::records::Input;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{ApiJson, CurrentUser, Pinned, QueryPairs};

/// `POST …/transition`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    pub to: String,
    pub comment: Option<String>,
    /// Values saved with the move (what the target stage requires), as in a PATCH.
    #[serde(default)]
    pub fields: Input,
}

/// `POST /approvals/{id}/approve|reject|recall`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub comment: Option<String>,
}

/// `POST /records/{object}/{id}/transition {to, comment, fields}` → 200 with the record, or
/// 202 `{approval}` when the target stage needs approval.
pub async fn transition(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path((object, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<TransitionBody>,
) -> Result<Response, ApiError> {
    let result = state
        .processes()
        .transition(&actor, &object, &id, &body.to, body.comment, body.fields)
        .await?;
    Ok(match result {
        TransitionResult::Transitioned { record } => axum::Json(record).into_response(),
        TransitionResult::Pending { approval } => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "approval": approval })),
        )
            .into_response(),
    })
}

/// `GET /records/{object}/{id}/transitions` → the stage path: current stage, the moves open
/// from it, the pending approval.
pub async fn transitions(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path((object, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let path = state
        .processes()
        .available_transitions(&actor, &object, &id)
        .await?;
    Ok(axum::Json(path).into_response())
}

/// `GET /records/{object}/{id}/stage-history` → `{data: [rows]}`, oldest first.
pub async fn stage_history(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path((object, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let rows = state
        .processes()
        .stage_history(&actor, &object, &id)
        .await?;
    Ok(axum::Json(json!({ "data": rows })).into_response())
}

/// `GET /records/{object}/{id}/approvals` → `{data: [approvals with their trail]}`.
pub async fn record_approvals(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path((object, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let rows = state
        .processes()
        .record_approvals(&actor, &object, &id)
        .await?;
    Ok(axum::Json(json!({ "data": rows })).into_response())
}

/// `GET /approvals?state=pending` → `{data: [approvals]}`: with `pending`, those waiting for
/// the caller's decision.
pub async fn list(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let mut wanted = None;
    for (key, value) in pairs {
        match key.as_str() {
            "state" => wanted = Some(value),
            other => {
                return Err(ApiError::invalid_parameter(
                    other,
                    "unknown_parameter",
                    format!("`{other}` is not a parameter of this list"),
                ));
            }
        }
    }
    let rows = state
        .processes()
        .approvals(&actor, wanted.as_deref())
        .await?;
    Ok(axum::Json(json!({ "data": rows })).into_response())
}

/// `GET /approvals/{id}` → the approval with its trail.
pub async fn get_one(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let approval = state.processes().approval(&actor, &id).await?;
    Ok(axum::Json(approval).into_response())
}

/// `POST /approvals/{id}/approve {comment}`.
pub async fn approve(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Response, ApiError> {
    let approval = state.processes().approve(&actor, &id, body.comment).await?;
    Ok(axum::Json(approval).into_response())
}

/// `POST /approvals/{id}/reject {comment}`.
pub async fn reject(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Response, ApiError> {
    let approval = state.processes().reject(&actor, &id, body.comment).await?;
    Ok(axum::Json(approval).into_response())
}

/// `POST /approvals/{id}/recall {comment}` (the requester only).
pub async fn recall(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Response, ApiError> {
    let approval = state.processes().recall(&actor, &id, body.comment).await?;
    Ok(axum::Json(approval).into_response())
}
