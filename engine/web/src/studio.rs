//! Live metadata, the engine side of the studio (docs/studio.md):
//! `POST /admin/metadata/validate {files}` → `{diagnostics, plan}`,
//! `POST /admin/metadata/apply {files, base, allow_destructive}` → `{version}`,
//! `GET /admin/metadata/versions?before=&limit=` → `{data: [version…], next}` (newest first),
//! `GET /admin/metadata/versions/{n}` → the version with its files and a unified diff against
//! the one before. Admins only (403 otherwise). The work is `keel_runtime::metadata`'s.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use keel_runtime::metadata::{self, ApplyRequest};
use keel_store::versions::Version;
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};

use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiJson, CurrentUser, Pinned, QueryPairs};

/// The most versions one page holds.
const MAX_LIMIT: u32 = 200;

/// The body of `POST /admin/metadata/validate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateBody {
    /// Path → new text, or `null` to delete the file.
    pub files: BTreeMap<String, Option<String>>,
}

/// The body of `POST /admin/metadata/apply`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    pub files: BTreeMap<String, Option<String>>,
    /// The version the changes were made against.
    pub base: i64,
    #[serde(default)]
    pub allow_destructive: bool,
}

fn at(value: chrono::DateTime<chrono::Utc>) -> String {
    value.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn version_json(version: &Version) -> JsonValue {
    json!({
        "version": version.version,
        "applied_at": at(version.applied_at),
        "applied_by": version.applied_by,
        "source": version.source,
        "summary": version.summary,
    })
}

/// `POST /admin/metadata/validate`: the app as it would be with `files` replaced in the
/// latest version (`null` deletes one) → `{diagnostics: [{file, line, col, message}],
/// plan: {steps: [{description, safe}]}}`. Changes nothing.
pub async fn validate(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    ApiJson(body): ApiJson<ValidateBody>,
) -> Result<Response, ApiError> {
    let validation =
        metadata::validate(state.live_metadata(), state.db(), &actor, &body.files).await?;
    Ok(Json(validation).into_response())
}

/// `POST /admin/metadata/apply` → `{version}` once the database is migrated, the files
/// are written and this process serves the new version; 409 `stale_base`, 409
/// `destructive_change` with the plan, 422 `invalid_metadata` with the diagnostics.
pub async fn apply(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    ApiJson(body): ApiJson<ApplyBody>,
) -> Result<Response, ApiError> {
    let request = ApplyRequest {
        changes: body.files,
        base: body.base,
        allow_destructive: body.allow_destructive,
    };
    let version = metadata::apply(
        state.live_metadata(),
        state.db(),
        state.app_dir(),
        &actor,
        &request,
    )
    .await?;
    Ok(Json(json!({ "version": version })).into_response())
}

/// `GET /admin/metadata/versions?before=&limit=` → `{data: [{version, applied_at,
/// applied_by, source, summary}], next}`, newest first; `next` is the `before` of the
/// following page.
pub async fn versions(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let (mut before, mut limit) = (None, 50);
    for (key, value) in pairs {
        match key.as_str() {
            "before" => {
                before = match value.parse::<i64>() {
                    Ok(number) => Some(number),
                    Err(_) => {
                        return Err(ApiError::invalid_parameter(
                            "before",
                            "invalid_value",
                            "`before` is a version number (the `next` of a previous page)",
                        ));
                    }
                }
            }
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
    let versions =
        metadata::list_versions(state.live_metadata(), state.db(), &actor, before, limit).await?;
    let next = (versions.len() == limit as usize)
        .then(|| versions.last().map(|version| version.version))
        .flatten();
    let data: Vec<JsonValue> = versions.iter().map(version_json).collect();
    Ok(Json(json!({ "data": data, "next": next })).into_response())
}

/// `GET /admin/metadata/versions/{n}` → the version, its `files` (path → text), the
/// `previous` version's number and the unified `diff` against it. 404 for no such version.
pub async fn version(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(number): Path<String>,
) -> Result<Response, ApiError> {
    let Ok(number) = number.parse::<i64>() else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("there is no metadata version `{number}`: versions are numbered 1, 2, …"),
        ));
    };
    let detail =
        metadata::version_detail(state.live_metadata(), state.db(), &actor, number).await?;
    let mut body = version_json(&detail.version);
    if let JsonValue::Object(map) = &mut body {
        map.insert("files".to_owned(), json!(detail.files));
        map.insert("previous".to_owned(), json!(detail.previous));
        map.insert("diff".to_owned(), json!(detail.diff));
    }
    Ok(Json(body).into_response())
}
