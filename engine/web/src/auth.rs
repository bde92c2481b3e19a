//! Sign-in routes: `POST /auth/login`, `POST /auth/logout`, `GET /auth/me`. Both the
//! sign-in's answer and `/auth/me` show the user their own email address.
//!
//! The session token goes to the client twice: in the JSON answer (for API clients, who
//! send it back as `Authorization: Bearer <token>`) and as the `keel_session` cookie
//! (`HttpOnly`, `SameSite=Lax`, `Path=/`; `Secure` when the request arrived over HTTPS
//! according to `X-Forwarded-Proto`) for browsers. Checking passwords, sessions and the
//! rate limit is the runtime's `auth`.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_runtime::auth::SESSION_LIFETIME;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{ApiJson, ClientAddress, CurrentUser, Pinned, SESSION_COOKIE, SessionToken};

/// The body of `POST /auth/login`; any other key is a 422, as in every other body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

/// `POST /auth/login {username, password}` → `{token, user, expires_at}` and the cookie.
pub async fn login(
    Pinned(state): Pinned,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let signed_in = state
        .auth()
        .login(&body.username, &body.password, address)
        .await?;
    let cookie = session_cookie(
        &signed_in.token,
        SESSION_LIFETIME.num_seconds(),
        over_https(&headers),
    );
    let user = keel_runtime::auth::OwnView {
        actor: signed_in.user,
        email: signed_in.email,
    };
    let mut response = Json(json!({
        "token": signed_in.token,
        "user": user,
        "expires_at": signed_in.expires_at,
    }))
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// `POST /auth/logout`: ends this session → 204, and clears the cookie.
pub async fn logout(
    Pinned(state): Pinned,
    CurrentUser(_actor): CurrentUser,
    SessionToken(token): SessionToken,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.auth().logout(&token).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&session_cookie("", 0, over_https(&headers))) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// `GET /auth/me`: the signed-in user, with their own email address.
pub async fn me(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    let user = state.auth().own_view(&actor).await?;
    Ok(Json(json!({ "user": user })))
}

pub(crate) fn session_cookie(token: &str, max_age_seconds: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_seconds}{secure}"
    )
}

pub(crate) fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}
