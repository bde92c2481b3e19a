//! The record routes (docs/api.md): list, query, create, get, change, delete, restore, bulk,
//! history, duplicate checks, aggregates and streamed exports.
//!
//! Each handler extracts, calls `Records`, and maps the result; permissions, validation and
//! every rule live in the runtime. What HTTP adds is here: `201 Created` with `Location`,
//! `ETag: "<version>"` and `If-Match`, `_warnings` on a saved record, and the export's
//! streaming body.

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use keel_runtime::csv_format;
use keel_runtime::records::{Input, Saved};
use serde_json::{Value as Json, json};

use crate::AppState;
use crate::error::{ApiError, error_chain};
use crate::extract::{ApiJson, CurrentUser, Pinned, QueryPairs};
use crate::query::{self, ExportFormat, QueryBody};

/// `GET /records/{object}?<filters>&order=&limit=&after=&q=&fields=`
pub async fn list(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(object): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let request = query::list_request(&pairs)?;
    let page = state.records().list(&actor, &object, request).await?;
    Ok(sized_json(page_json(page)))
}

/// `POST /records/{object}/query {where, order, limit, after, fields, q}`
pub async fn query(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(object): Path<String>,
    ApiJson(body): ApiJson<QueryBody>,
) -> Result<Response, ApiError> {
    let request = body.into_list_request()?;
    let page = state.records().list(&actor, &object, request).await?;
    Ok(sized_json(page_json(page)))
}

/// `POST /records/{object}` → 201 with the record and its `Location`.
pub async fn create(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(object): Path<String>,
    ApiJson(input): ApiJson<Input>,
) -> Result<Response, ApiError> {
    let saved = state.records().create(&actor, &object, input).await?;
    let location = saved
        .record
        .get("id")
        .and_then(Json::as_str)
        .map(|id| format!("/api/v1/records/{object}/{id}"));
    let mut response = saved_response(StatusCode::CREATED, saved);
    if let Some(value) = location.and_then(|location| HeaderValue::from_str(&location).ok()) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `GET /records/{object}/{id}` with `ETag: "<version>"`.
pub async fn get(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path((object, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = state.records().get(&actor, &object, &id).await?;
    Ok(with_etag(axum::Json(&record).into_response(), &record))
}

/// `PATCH /records/{object}/{id}`; `If-Match: "<version>"` makes it conditional (412 when
/// the record has moved on).
pub async fn update(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path((object, id)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<Input>,
) -> Result<Response, ApiError> {
    let if_match = if_match_version(&headers)?;
    let saved = state
        .records()
        .update(&actor, &object, &id, input, if_match)
        .await?;
    Ok(saved_response(StatusCode::OK, saved))
}

/// `DELETE /records/{object}/{id}`: to the recycle bin → 204.
pub async fn delete(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path((object, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state.records().delete(&actor, &object, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /records/{object}/{id}/restore`: back from the recycle bin → 200 with the record.
pub async fn restore(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path((object, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = state.records().restore(&actor, &object, &id).await?;
    Ok(with_etag(axum::Json(&record).into_response(), &record))
}

/// `POST /records/{object}/bulk [..]`: up to 1,000 creates and updates, all or nothing.
pub async fn bulk(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(object): Path<String>,
    ApiJson(items): ApiJson<Vec<Input>>,
) -> Result<Response, ApiError> {
    let data = state.records().bulk(&actor, &object, items).await?;
    Ok(axum::Json(data_json(data)).into_response())
}

/// `GET /records/{object}/{id}/history` → `{data: [{at, by, field, old, new}]}`.
pub async fn history(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path((object, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let data = state.records().history(&actor, &object, &id).await?;
    Ok(axum::Json(data_json(data)).into_response())
}

/// `GET /records/{object}/duplicates?<field>=<value>…` → `{data: [matches]}`.
pub async fn duplicates(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(object): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let probe = query::duplicate_probe(&pairs);
    let data = state.records().duplicates(&actor, &object, probe).await?;
    Ok(axum::Json(json!({ "data": data })).into_response())
}

/// `GET /aggregate/{object}?group_by=&count=&sum=&avg=&min=&max=&<filters>` → `{data}`.
pub async fn aggregate(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(object): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let request = query::aggregate_request(&pairs)?;
    let data = state.records().aggregate(&actor, &object, request).await?;
    Ok(axum::Json(data_json(data)).into_response())
}

/// `GET /records/{object}/export?format=csv|ndjson&<filters>`: every matching record the
/// user may read, streamed row by row (no page cap).
///
/// Permissions and parameters are checked before the first byte; a database failure
/// after that can only cut the stream short (it is logged).
pub async fn export(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(object): Path<String>,
    headers: HeaderMap,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let request = query::export_request(&pairs)?;
    // Logged with a failure that cuts the stream (the request span is at debug level).
    let request_id = headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let readable = state.records().readable_fields(&actor, &object)?;
    let columns = export_columns(&state, &object, readable, request.fields.as_deref())?;
    let records = state
        .records()
        .export_matching(
            &actor,
            &object,
            request.filter,
            request.q.as_deref(),
            request.order,
        )
        .await?;
    let failed_object = object.clone();
    let log_failure = move |error: keel_runtime::records::RecordError| {
        tracing::error!(%request_id, object = %failed_object, error = %error_chain(&error), "export stopped");
        std::io::Error::other("the export stopped")
    };
    let (body, content_type, extension) = match request.format {
        ExportFormat::Ndjson => {
            let lines = records.map(move |record| {
                let record = record.map_err(&log_failure)?;
                let mut line = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
                line.push(b'\n');
                Ok::<_, std::io::Error>(Bytes::from(line))
            });
            (Body::from_stream(lines), "application/x-ndjson", "ndjson")
        }
        ExportFormat::Csv => {
            let header = csv_format::line(&columns).map(Bytes::from);
            let row_columns = columns.clone();
            let rows = records.map(move |record| {
                let record = record.map_err(&log_failure)?;
                csv_format::record_line(&row_columns, &record).map(Bytes::from)
            });
            let lines = futures::stream::once(async move { header }).chain(rows);
            (Body::from_stream(lines), "text/csv; charset=utf-8", "csv")
        }
    };
    let disposition = format!("attachment; filename=\"{object}.{extension}\"");
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// The CSV columns: the system fields, then the readable fields (or the readable subset
/// asked for with `fields`).
fn export_columns(
    state: &AppState,
    object: &str,
    readable: Vec<String>,
    requested: Option<&[String]>,
) -> Result<Vec<String>, ApiError> {
    let Some(object_def) = state.schema().object(object) else {
        return Ok(readable);
    };
    let Some(requested) = requested else {
        return Ok(csv_format::export_columns(object_def, readable));
    };
    let system = csv_format::export_columns(object_def, Vec::new());
    requested
        .iter()
        .map(|name| {
            if readable.contains(name) || system.contains(name) {
                Ok(name.clone())
            } else {
                Err(ApiError::invalid_parameter(
                    "fields",
                    "unknown_field",
                    format!("`{name}` is not a field of `{object}` that you may read"),
                ))
            }
        })
        .collect()
}

/// The record as the response body, with `_warnings` when the save noticed something, and
/// its `ETag`.
fn saved_response(status: StatusCode, saved: Saved) -> Response {
    let Saved {
        mut record,
        warnings,
    } = saved;
    if !warnings.is_empty()
        && let Some(map) = record.as_object_mut()
    {
        map.insert("_warnings".to_owned(), json!(warnings));
    }
    let response = (status, axum::Json(&record)).into_response();
    with_etag(response, &record)
}

fn with_etag(mut response: Response, record: &Json) -> Response {
    if let Some(version) = record.get("version").and_then(Json::as_i64)
        && let Ok(value) = HeaderValue::from_str(&format!("\"{version}\""))
    {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// The version named by `If-Match: "<version>"` (a weak `W/"…"` is accepted; `*` means
/// any version). Anything else is a 422.
fn if_match_version(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let malformed = || {
        ApiError::invalid_parameter(
            "If-Match",
            "invalid_header",
            "If-Match must be the record's ETag, such as \"3\"",
        )
    };
    let text = value.to_str().map_err(|_| malformed())?.trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text);
    tag.strip_prefix('"')
        .and_then(|tag| tag.strip_suffix('"'))
        .and_then(|version| version.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(malformed)
}

/// `{data, next}`, moving the records in: `json!` would serialize a deep copy of them.
fn page_json(page: keel_runtime::records::Page) -> Json {
    let mut answer = serde_json::Map::new();
    answer.insert("data".to_owned(), Json::Array(page.data));
    answer.insert(
        "next".to_owned(),
        page.next.map_or(Json::Null, Json::String),
    );
    Json::Object(answer)
}

/// `{data}`, moving the items in (see [`page_json`]).
fn data_json(data: Vec<Json>) -> Json {
    let mut answer = serde_json::Map::new();
    answer.insert("data".to_owned(), Json::Array(data));
    Json::Object(answer)
}

/// A JSON response serialized into a buffer sized for it up front (about 1 KiB per item of
/// `data`): growing the buffer by doubling cost a tenth of a list's CPU in the allocator.
fn sized_json(answer: Json) -> Response {
    let items = answer["data"].as_array().map_or(0, Vec::len);
    let mut body = Vec::with_capacity(1_024 * items.max(1));
    match serde_json::to_writer(&mut body, &answer) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        // Serializing a serde_json::Value into memory cannot fail; fall back regardless.
        Err(_) => axum::Json(answer).into_response(),
    }
}
