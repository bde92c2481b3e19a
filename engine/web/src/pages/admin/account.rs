//! `/account`: the signed-in user's own page — who they are (name, username, roles, email),
//! their language (Chinese, English or the browser's), and a form to change their password
//! (the current one is checked; every other session of theirs ends).

use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use keel_runtime::auth::SESSION_LIFETIME;
use serde::Serialize;

use super::users::{Done, language_choices, role_label};
use super::{FieldError, errors_by_field, form_error, tr};
use crate::AppState;
use crate::auth::{over_https, session_cookie};
use crate::extract::Pinned;
use crate::pages::{Frame, PageError, PageForm, Viewer, render, render_with_status};

#[derive(Debug, Serialize)]
struct AccountPage {
    section: &'static str,
    username: String,
    name: String,
    roles: Vec<String>,
    email: Option<String>,
    languages: Vec<super::users::Choice>,
    errors: std::collections::BTreeMap<String, String>,
    done: Option<&'static str>,
}

async fn account_page(
    state: &AppState,
    viewer: &Viewer,
    errors: &[FieldError],
    done: Option<&'static str>,
) -> Result<AccountPage, PageError> {
    let own = state.auth().own_view(&viewer.actor).await?;
    Ok(AccountPage {
        section: "account",
        name: own.actor.display_name.clone().unwrap_or_default(),
        roles: own
            .actor
            .roles
            .iter()
            .map(|role| role_label(state, &viewer.lang, role))
            .collect(),
        languages: language_choices(
            state,
            &viewer.lang,
            own.actor.language.as_deref().unwrap_or(""),
        ),
        username: own.actor.username,
        email: own.email,
        errors: errors_by_field(errors),
        done,
    })
}

/// `GET /account`.
pub async fn page(
    Pinned(state): Pinned,
    viewer: Viewer,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let frame = Frame::new(&state, &viewer).await?;
    let page = account_page(&state, &viewer, &[], done.key()).await?;
    render(&state, &frame, "admin/account.html", page)
}

/// `POST /account/language` (`language`: `zh`, `en`, or empty for the browser's).
pub async fn language(Pinned(state): Pinned, form: PageForm) -> Result<Response, PageError> {
    let language = match form.get("language").unwrap_or("") {
        "" => None,
        chosen if crate::pages::LANGUAGES.contains(&chosen) => Some(chosen.to_owned()),
        _ => return Err(PageError::BadForm),
    };
    state
        .auth()
        .update_own(&form.viewer.actor, language)
        .await?;
    Ok(Redirect::to("/account?done=language").into_response())
}

/// `POST /account/password` (`current`, `password`, `confirm`): a new password; this
/// browser gets a fresh session, every other session ends.
pub async fn password(
    Pinned(state): Pinned,
    headers: HeaderMap,
    form: PageForm,
) -> Result<Response, PageError> {
    let viewer = &form.viewer;
    let current = form.get("current").unwrap_or("");
    let new = form.get("password").unwrap_or("");
    let error = if new != form.get("confirm").unwrap_or("") {
        FieldError {
            field: Some("confirm".to_owned()),
            message: tr(&state, &viewer.lang, "admin.error.confirm", &[]),
        }
    } else {
        match state
            .auth()
            .change_own_password(&viewer.actor, current, new)
            .await
        {
            Ok(signed_in) => {
                let cookie = session_cookie(
                    &signed_in.token,
                    SESSION_LIFETIME.num_seconds(),
                    over_https(&headers),
                );
                let mut response = Redirect::to("/account?done=password").into_response();
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().insert(header::SET_COOKIE, value);
                }
                return Ok(response);
            }
            Err(error) => form_error(&state, &viewer.lang, error)?,
        }
    };
    let frame = Frame::new(&state, viewer).await?;
    let page = account_page(&state, viewer, &[error], None).await?;
    render_with_status(
        &state,
        &frame,
        "admin/account.html",
        page,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
}
