//! Extractors: the signed-in user, the session token, the client's address, JSON bodies
//! and query strings — each failing as problem+json, never as axum's plain-text rejections.
//!
//! Extractors only read the request; they decide nothing (the runtime resolves a token to
//! an `Actor`, and refuses what it must).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use keel_runtime::actor::Actor;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "keel_session";

/// The signed-in user; 401 when there is no valid session.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Actor);

/// The session token of the request (bearer header first, then the cookie); 401 when
/// there is none. It is not checked here.
#[derive(Debug, Clone)]
pub struct SessionToken(pub String);

/// The TCP peer's address, when the server was started with connect info.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

/// A JSON body; malformed JSON, a wrong content type or a wrong shape answer problem+json.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// The query string as decoded `(key, value)` pairs, in order, repeats kept.
///
/// Values are percent-decoded without turning `+` into a space, so the filter
/// `due_at=lte.@today+1d` reads as written (SPEC §3.7); send a space as `%20`. Only the
/// free-text `q` also accepts `+` for a space, as HTML forms send it.
#[derive(Debug, Clone, Default)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = session_token(&parts.headers).ok_or_else(ApiError::not_authenticated)?;
        let actor = state.auth().authenticate(&token).await?;
        Ok(CurrentUser(actor))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SessionToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        session_token(&parts.headers)
            .map(SessionToken)
            .ok_or_else(ApiError::not_authenticated)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(address)| address.ip()),
        ))
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(rejection.into()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or("")).map(QueryPairs)
    }
}

/// `Authorization: Bearer <token>`, else the `keel_session` cookie.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
        .filter(|token| !token.is_empty());
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == SESSION_COOKIE)
            .map(|(_, token)| token.trim().to_owned())
            .filter(|token| !token.is_empty())
    })
}

/// Splits and percent-decodes a query string (see [`QueryPairs`]).
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs = Vec::new();
    for part in query.split('&').filter(|part| !part.is_empty()) {
        let (raw_key, raw_value) = part.split_once('=').unwrap_or((part, ""));
        let key = percent_decode(raw_key, true)?;
        let value = percent_decode(raw_value, key == "q")?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn percent_decode(text: &str, plus_is_space: bool) -> Result<String, ApiError> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let hex = bytes
                    .get(index + 1..index + 3)
                    .and_then(|pair| std::str::from_utf8(pair).ok())
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok());
                match hex {
                    Some(byte) => {
                        decoded.push(byte);
                        index += 3;
                    }
                    None => {
                        // A lone `%` is kept, as browsers do.
                        decoded.push(b'%');
                        index += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                decoded.push(b' ');
                index += 1;
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).map_err(|_| {
        ApiError::new(
            crate::error::ErrorCode::MalformedRequest,
            "the query string is not UTF-8 once percent-decoded",
        )
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn filters_keep_their_plus_and_q_reads_plus_as_space() {
        let pairs =
            parse_query("due_at=lte.@today+1d&q=big+deal&name=like.%E5%BC%A0*&&flag").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("due_at".to_owned(), "lte.@today+1d".to_owned()),
                ("q".to_owned(), "big deal".to_owned()),
                ("name".to_owned(), "like.张*".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
        assert!(parse_query("name=%FF").is_err());
        assert_eq!(parse_query("a=100%").unwrap()[0].1, "100%");
    }

    #[test]
    fn the_bearer_header_wins_over_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; keel_session=from-cookie"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("from-cookie"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer from-header"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("from-header"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(session_token(&headers).as_deref(), Some("from-cookie"));
    }
}
