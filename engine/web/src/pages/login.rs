//! `/login` (the sign-in form, posting `username` and `password`) and `/logout`.
//!
//! Signing in here starts the same session as `POST /api/v1/auth/login`: the runtime's
//! `Auth::login` (argon2, the rate limit) and the same `keel_session` cookie.

use axum::Form;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use keel_runtime::auth::{AuthError, SESSION_LIFETIME};
use serde::{Deserialize, Serialize};

use super::{Frame, PageError, PageForm, render_with_status, safe_next};
use crate::AppState;
use crate::auth::{over_https, session_cookie};
use crate::extract::{ClientAddress, Pinned, session_token};

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

#[derive(Debug, Serialize)]
struct LoginPage {
    next: String,
    username: String,
    /// A catalog key, with `seconds` for the rate limit.
    error: Option<&'static str>,
    seconds: u64,
}

/// `GET /login?next=`: the form; a signed-in user goes straight on to `next`.
pub async fn form(
    Pinned(state): Pinned,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Result<Response, PageError> {
    let next = safe_next(query.next.as_deref());
    if let Some(token) = session_token(&headers)
        && state.auth().authenticate(&token).await.is_ok()
    {
        return Ok(Redirect::to(&next).into_response());
    }
    let page = LoginPage {
        next,
        username: String::new(),
        error: None,
        seconds: 0,
    };
    show(&state, &headers, page, StatusCode::OK)
}

/// `POST /login` (form): signs in and goes on to `next`, or shows the form again with the
/// error and the username kept.
pub async fn submit(
    Pinned(state): Pinned,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let next = safe_next(form.next.as_deref());
    match state
        .auth()
        .login(form.username.trim(), &form.password, address)
        .await
    {
        Ok(signed_in) => {
            let cookie = session_cookie(
                &signed_in.token,
                SESSION_LIFETIME.num_seconds(),
                over_https(&headers),
            );
            let mut response = Redirect::to(&next).into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            Ok(response)
        }
        Err(error) => {
            let (status, key, seconds) = match &error {
                AuthError::BadCredentials => (StatusCode::UNAUTHORIZED, "login.bad_credentials", 0),
                AuthError::TooManyAttempts { retry_after } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "login.too_many",
                    retry_after.as_secs(),
                ),
                _ => return Err(error.into()),
            };
            let page = LoginPage {
                next,
                username: form.username,
                error: Some(key),
                seconds,
            };
            show(&state, &headers, page, status)
        }
    }
}

fn show(
    state: &AppState,
    headers: &HeaderMap,
    page: LoginPage,
    status: StatusCode,
) -> Result<Response, PageError> {
    let lang = super::session::page_language(state, None, headers);
    let frame = Frame::bare(state, &lang);
    render_with_status(state, &frame, "login.html", page, status)
}

/// `POST /logout` (form): ends the session, clears the cookie, back to the sign-in page.
pub async fn logout(Pinned(state): Pinned, headers: HeaderMap, form: PageForm) -> Response {
    let _ = form;
    if let Some(token) = session_token(&headers) {
        let _ = state.auth().logout(&token).await;
    }
    let mut response = Redirect::to("/login").into_response();
    if let Ok(value) = HeaderValue::from_str(&session_cookie("", 0, over_https(&headers))) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
