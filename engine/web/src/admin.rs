//! People administration: `GET|POST /admin/users`, `PATCH /admin/users/{name}`,
//! `GET|POST /admin/departments`, and access: `GET /admin/access` (explain a user's access
//! to an object or record) and `GET /admin/access-changes` (the audit of access changes).
//! Admins only (the runtime refuses everyone else with 403).
//!
//! Bodies are read strictly (an unknown key is a 422) and a `null` clears an optional
//! property, while a missing key leaves it as it is.

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_runtime::accounts::NewUser;
use keel_runtime::auth::{NewDepartment, UserPatch};
use serde::{Deserialize, Deserializer};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{ApiJson, CurrentUser, Pinned, QueryPairs};

/// The body of `POST /admin/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    pub username: String,
    pub password: String,
    pub display_name: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// The manager's username.
    pub manager: Option<String>,
    /// The department's name.
    pub department: Option<String>,
    pub language: Option<String>,
    pub email: Option<String>,
}

/// The body of `PATCH /admin/users/{name}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatchBody {
    #[serde(default, deserialize_with = "present")]
    pub display_name: Option<Option<String>>,
    pub password: Option<String>,
    pub roles: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub manager: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub department: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub language: Option<Option<String>>,
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub email: Option<Option<String>>,
}

/// The body of `POST /admin/departments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDepartmentBody {
    pub name: String,
    pub label: Option<String>,
    /// The parent department's name.
    pub parent: Option<String>,
}

/// `GET /admin/users` → `{data: [users]}`.
pub async fn list_users(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
) -> Result<Response, ApiError> {
    let users = state.auth().list_users(&actor).await?;
    Ok(Json(json!({ "data": users })).into_response())
}

/// `POST /admin/users` → 201 with the user.
pub async fn create_user(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    ApiJson(body): ApiJson<NewUserBody>,
) -> Result<Response, ApiError> {
    let user = NewUser {
        username: body.username,
        display_name: body.display_name,
        password: body.password,
        roles: body.roles,
        manager: body.manager,
        department: body.department,
        language: body.language,
        email: body.email,
    };
    let created = state.auth().create_user(&actor, user).await?;
    let mut response = (StatusCode::CREATED, Json(&created)).into_response();
    if let Ok(location) =
        HeaderValue::from_str(&format!("/api/v1/admin/users/{}", created.username))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `PATCH /admin/users/{name}` → 200 with the user.
pub async fn update_user(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<UserPatchBody>,
) -> Result<Response, ApiError> {
    let patch = UserPatch {
        display_name: body.display_name,
        password: body.password,
        roles: body.roles,
        manager: body.manager,
        department: body.department,
        language: body.language,
        active: body.active,
        email: body.email,
    };
    let updated = state.auth().update_user(&actor, &username, patch).await?;
    Ok(Json(&updated).into_response())
}

/// `GET /admin/departments` → `{data: [departments]}`.
pub async fn list_departments(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
) -> Result<Response, ApiError> {
    let departments = state.auth().list_departments(&actor).await?;
    Ok(Json(json!({ "data": departments })).into_response())
}

/// `POST /admin/departments {name, label, parent}` → 201 with the department.
pub async fn create_department(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    ApiJson(body): ApiJson<NewDepartmentBody>,
) -> Result<Response, ApiError> {
    let department = NewDepartment {
        name: body.name,
        label: body.label,
        parent: body.parent,
    };
    let created = state.auth().create_department(&actor, department).await?;
    Ok((StatusCode::CREATED, Json(&created)).into_response())
}

/// A key that is present: `Some(None)` for `null`, `Some(Some(v))` for a value; with
/// `#[serde(default)]` a missing key stays `None`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `GET /admin/access?user=&object=&id=` → why `user` may or may not read, edit or delete
/// the record `id` of `object` (or records of `object` when `id` is absent), and how they
/// see each field.
pub async fn explain_access(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let mut user = None;
    let mut object = None;
    let mut id = None;
    for (key, value) in pairs {
        match key.as_str() {
            "user" => user = Some(value),
            "object" => object = Some(value),
            "id" => id = Some(value).filter(|id| !id.is_empty()),
            other => {
                return Err(ApiError::invalid_parameter(
                    other,
                    "unknown_parameter",
                    format!("`{other}` is not a parameter here; use user, object and id"),
                ));
            }
        }
    }
    let subject_name = user.ok_or_else(|| {
        ApiError::invalid_parameter("user", "required", "`user` (a username) is required")
    })?;
    let object = object
        .ok_or_else(|| ApiError::invalid_parameter("object", "required", "`object` is required"))?;
    let subject = state.auth().actor_named(&actor, &subject_name).await?;
    let answer = state
        .records()
        .explain_access(&actor, &subject, &object, id.as_deref())
        .await?;
    Ok(Json(answer).into_response())
}

/// `GET /admin/access-changes?limit=` → `{data: [{at, by, subject_type, subject, action,
/// field, old, new}]}`, newest first (at most 500, 100 by default).
pub async fn access_changes(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let mut limit = 100;
    for (key, value) in pairs {
        match key.as_str() {
            "limit" => limit = crate::query::limit_parameter(&value, 500)?,
            other => {
                return Err(ApiError::invalid_parameter(
                    other,
                    "unknown_parameter",
                    format!("`{other}` is not a parameter here; use limit"),
                ));
            }
        }
    }
    let changes = state.auth().access_changes(&actor, limit).await?;
    Ok(Json(json!({ "data": changes })).into_response())
}
