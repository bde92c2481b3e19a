//! Who is looking at a page, and forms that change something.
//!
//! A page is for a signed-in user: [`Viewer`] reads the session (the `keel_session` cookie,
//! or a bearer token) and sends a visitor without one to `/login?next=<this page>`.
//!
//! Every state-changing form carries a CSRF token (`_csrf`, derived from the session token,
//! so it needs no storage and dies with the session); [`PageForm`] refuses a form without
//! the right one. On top, every route runs behind tower-http's `CsrfLayer`, which refuses a
//! cross-site POST by its `Sec-Fetch-Site`/`Origin` headers (docs/ui.md, "Security").

use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use keel_runtime::actor::Actor;
use keel_runtime::auth::AuthError;
use sha2::{Digest, Sha256};

use super::PageError;
use super::i18n;
use crate::AppState;
use crate::extract::session_token;

/// The name of the hidden form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";

/// The signed-in user of a page, in the language the page speaks to them.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub actor: Actor,
    pub lang: String,
    /// The CSRF token of this session, for the page's forms.
    pub csrf: String,
    /// The page's path and query, where a sign-in comes back to.
    pub path: String,
}

/// A submitted form: the viewer, and the fields as `(name, value)` pairs in order (a
/// multi-choice repeats its name). The CSRF token has been checked and removed.
#[derive(Debug, Clone)]
pub struct PageForm {
    pub viewer: Viewer,
    pub fields: Vec<(String, String)>,
}

impl PageForm {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let state = &crate::extract::Pinned::of(parts, state);
        let path = parts
            .uri
            .path_and_query()
            .map(|path| path.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let Some(token) = session_token(&parts.headers) else {
            return Err(PageError::SignIn { next: path });
        };
        let actor = match state.auth().authenticate(&token).await {
            Ok(actor) => actor,
            Err(AuthError::NotAuthenticated | AuthError::BadCredentials) => {
                return Err(PageError::SignIn { next: path });
            }
            Err(error) => return Err(PageError::from(crate::error::ApiError::from(error))),
        };
        let lang = page_language(state, Some(&actor), &parts.headers);
        Ok(Viewer {
            actor,
            lang,
            csrf: csrf_token(&token),
            path,
        })
    }
}

impl FromRequest<AppState> for PageForm {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let (mut parts, body) = request.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        let Form(mut fields) = Form::<Vec<(String, String)>>::from_request(request, state)
            .await
            .map_err(|_| PageError::BadForm)?;
        let token = fields
            .iter()
            .position(|(key, _)| key == CSRF_FIELD)
            .map(|index| fields.remove(index).1);
        if !token.is_some_and(|token| constant_time_eq(token.as_bytes(), viewer.csrf.as_bytes())) {
            return Err(PageError::StaleForm);
        }
        Ok(PageForm { viewer, fields })
    }
}

/// The page language for `actor` (who may be unknown, on the sign-in page).
pub fn page_language(state: &AppState, actor: Option<&Actor>, headers: &HeaderMap) -> String {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|value| value.to_str().ok());
    i18n::negotiate(
        actor.and_then(|actor| actor.language.as_deref()),
        accept,
        &state.schema().app.language,
    )
}

/// The CSRF token of a session: a hash of its token, so a page can show it while the
/// session token itself stays in the `HttpOnly` cookie.
pub fn csrf_token(session_token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"keel-csrf\0");
    hasher.update(session_token.as_bytes());
    hex::encode(&hasher.finalize()[..16])
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_differ_per_session_and_compare_exactly() {
        let one = csrf_token("session-one");
        assert_eq!(one, csrf_token("session-one"));
        assert_ne!(one, csrf_token("session-two"));
        assert!(constant_time_eq(one.as_bytes(), one.as_bytes()));
        assert!(!constant_time_eq(one.as_bytes(), b"short"));
    }
}
