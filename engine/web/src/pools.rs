//! The pool routes (docs/pools.md, docs/api.md): the pools a user may see, a pool's list and
//! held list, claim, release, assign (one record or many) and move, and a record's pool
//! history. Thin handlers over `keel_runtime::pools::Pools`, which decides everything.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use keel_runtime::records::Page;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::error::ApiError;
use crate::extract::{ApiJson, CurrentUser, Pinned, QueryPairs};
use crate::query;

/// `POST …/release`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    pub reason: Option<String>,
    pub note: Option<String>,
}

/// `POST …/{id}/assign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// A user id or username.
    pub user: String,
    pub note: Option<String>,
}

/// `POST /pools/{pool}/assign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkAssignBody {
    pub ids: Vec<String>,
    pub user: String,
    pub note: Option<String>,
}

/// `POST …/move`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    pub note: Option<String>,
}

fn data(items: Vec<Json>) -> Response {
    axum::Json(json!({ "data": items })).into_response()
}

/// `GET /pools` → `{data: [pool]}`: the pools the user may see.
pub async fn list_pools(Pinned(state): Pinned, CurrentUser(actor): CurrentUser) -> Response {
    data(state.pools().visible(&actor))
}

/// `GET /pools/{pool}` → the pool, with the user's standing in it (`mine`).
pub async fn get_pool(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(pool): Path<String>,
) -> Result<Response, ApiError> {
    let described = state.pools().describe(&actor, &pool).await?;
    Ok(axum::Json(described).into_response())
}

/// `GET /pools/{pool}/records?<filters>&q=&order=&limit=&after=&held=true`
pub async fn records(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(pool): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let mut held = false;
    let mut rest = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        if key == "held" {
            held = match value.as_str() {
                "true" | "1" => true,
                "false" | "0" | "" => false,
                _ => {
                    return Err(ApiError::invalid_parameter(
                        "held",
                        "invalid_parameter",
                        "`held` is true or false",
                    ));
                }
            };
        } else {
            rest.push((key, value));
        }
    }
    let request = query::list_request(&rest)?;
    let Page { data, next } = state.pools().list(&actor, &pool, request, held).await?;
    Ok(axum::Json(json!({ "data": data, "next": next })).into_response())
}

/// `GET /pools/{pool}/records/{id}` → the record as the pool list shows it.
pub async fn record(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path((pool, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = state.pools().record(&actor, &pool, &id).await?;
    Ok(axum::Json(record).into_response())
}

/// `POST /pools/{pool}/records/{id}/claim` → 200 with the record, now the user's.
pub async fn claim(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path((pool, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = state.pools().claim(&actor, &pool, &id).await?;
    Ok(axum::Json(record).into_response())
}

/// `POST /pools/{pool}/records/{id}/release {reason, note}` → 200 `{data: history row}`.
pub async fn release(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path((pool, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ReleaseBody>,
) -> Result<Response, ApiError> {
    let event = state
        .pools()
        .release(
            &actor,
            &pool,
            &id,
            body.reason.as_deref(),
            body.note.as_deref(),
        )
        .await?;
    Ok(axum::Json(json!({ "data": event })).into_response())
}

/// `POST /pools/{pool}/records/{id}/assign {user, note}` → 200 `{data: history row}`.
pub async fn assign(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path((pool, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<AssignBody>,
) -> Result<Response, ApiError> {
    let mut events = state
        .pools()
        .assign(&actor, &pool, &[id], &body.user, body.note.as_deref())
        .await?;
    Ok(axum::Json(json!({ "data": events.pop() })).into_response())
}

/// `POST /pools/{pool}/assign {ids, user, note}` → 200 `{data: [history rows]}`; all or
/// nothing, at most 1,000 ids.
pub async fn assign_many(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(pool): Path<String>,
    ApiJson(body): ApiJson<BulkAssignBody>,
) -> Result<Response, ApiError> {
    let events = state
        .pools()
        .assign(&actor, &pool, &body.ids, &body.user, body.note.as_deref())
        .await?;
    Ok(data(events))
}

/// `POST /pools/{pool}/records/{id}/move {note}` → 200 `{data: history row}`.
pub async fn move_into(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path((pool, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<MoveBody>,
) -> Result<Response, ApiError> {
    let event = state
        .pools()
        .move_into(&actor, &pool, &id, body.note.as_deref())
        .await?;
    Ok(axum::Json(json!({ "data": event })).into_response())
}

/// `GET /records/{object}/{id}/pool-history` → `{data: [history rows]}`, oldest first.
pub async fn history(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path((object, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let events = state.pools().history(&actor, &object, &id).await?;
    Ok(data(events))
}
