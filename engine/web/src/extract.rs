//! Extractors: the signed-in user, the session token, the client's address, JSON bodies
//! and query strings — each failing as problem+json, never as axum's plain-text rejections.
//!
//! JSON bodies are read strictly (docs/api.md, "Errors"): a key given twice in one object
//! and text holding a NUL character (U+0000, which PostgreSQL cannot store) are refused with
//! a 422 that names where they are, before any handler runs.
//!
//! Extractors only read the request; they decide nothing (the runtime resolves a token to
//! an `Actor`, and refuses what it must).

use std::cell::RefCell;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use keel_runtime::actor::Actor;
use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value as Json};

use crate::AppState;
use crate::error::{ApiError, ErrorCode, FieldError};

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "keel_session";

/// The state on the metadata generation the request pinned at its start (see
/// `pin_generation`): what every handler and extractor reads, so that one request never
/// mixes two metadata versions. Without a pin (a router built without the middleware, in a
/// unit test), the generation current now.
#[derive(Clone)]
pub struct Pinned(pub AppState);

impl Pinned {
    pub fn of(parts: &Parts, state: &AppState) -> AppState {
        parts
            .extensions
            .get::<AppState>()
            .cloned()
            .unwrap_or_else(|| state.pinned())
    }
}

impl FromRequestParts<AppState> for Pinned {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(Pinned(Pinned::of(parts, state)))
    }
}

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

/// A JSON body; malformed JSON (400), a wrong content type (415), a repeated key, a NUL
/// character or a wrong shape (422) answer problem+json.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// The query string as decoded `(key, value)` pairs, in order, repeats kept.
///
/// Values are percent-decoded without turning `+` into a space, so the filter
/// `due_at=lte.@today+1d` reads as written (docs/api.md, "Query strings"); send a space as `%20`. Only the
/// free-text `q` also accepts `+` for a space, as HTML forms send it.
#[derive(Debug, Clone, Default)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = session_token(&parts.headers).ok_or_else(ApiError::not_authenticated)?;
        let state = Pinned::of(parts, state);
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
        let peer = parts
            .extensions
            .get::<ConnectInfo<crate::listener::PeerAddress>>()
            .map(|ConnectInfo(peer)| peer.0.ip());
        Ok(ClientAddress(peer.or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(address)| address.ip())
        })))
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(request.headers()) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let detail = rejection.body_text();
                match ErrorCode::for_status(rejection.status()) {
                    Some(ErrorCode::Internal) | None => ApiError::internal(detail),
                    Some(code) => ApiError::new(code, detail),
                }
            })?;
        let value = parse_strict(&bytes)?;
        let typed = serde_json::from_value::<T>(value).map_err(|error| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("the body does not have the expected shape: {error}"),
            )
        })?;
        Ok(ApiJson(typed))
    }
}

/// `application/json`, or any `application/*+json`, parameters (`; charset=utf-8`) aside.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON body into a value, refusing a key repeated within one object and text
/// (keys included) holding a NUL character. Broken JSON is a 400; those two are 422s naming
/// the place (a JSON pointer, or the top-level key as records name their fields).
pub fn parse_strict(bytes: &[u8]) -> Result<Json, ApiError> {
    let found: RefCell<Option<FieldError>> = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictValue {
        path: String::new(),
        found: &found,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match parsed {
        Ok(value) => Ok(value),
        Err(error) => match found.into_inner() {
            Some(problem) => Err(
                ApiError::new(ErrorCode::InvalidRequest, problem.message.clone())
                    .with_error(problem),
            ),
            None => Err(ApiError::new(
                ErrorCode::MalformedRequest,
                format!("the body is not valid JSON: {error}"),
            )),
        },
    }
}

/// Builds a [`Json`] value as `serde_json` does, recording the first repeated key or NUL
/// character in `found` and stopping there.
struct StrictValue<'a> {
    /// The JSON pointer of the value being read.
    path: String,
    found: &'a RefCell<Option<FieldError>>,
}

impl StrictValue<'_> {
    fn refuse<E: serde::de::Error>(&self, path: &str, code: &str, message: String) -> E {
        // Named as record errors name fields: `name` at the top, `1.name` in a bulk list.
        let field = path
            .split('/')
            .skip(1)
            .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
            .collect::<Vec<_>>()
            .join(".");
        *self.found.borrow_mut() = Some(FieldError {
            field,
            code: code.to_owned(),
            message: message.clone(),
        });
        E::custom(message)
    }

    fn check_text<E: serde::de::Error>(&self, path: &str, text: &str) -> Result<(), E> {
        if text.contains('\0') {
            let place = if path.is_empty() { "the body" } else { path };
            return Err(self.refuse(
                path,
                "invalid_text",
                format!("text may not contain the NUL character (U+0000), at {place}"),
            ));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Json;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Json;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
        Ok(Json::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
        Ok(Json::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Json, E> {
        // A number without a fraction is an integer, as JSON Schema counts it: `2.0` is read
        // as `2`, so a whole-number parameter takes it.
        if value.fract() == 0.0 && value.abs() < 9.0e18 {
            return Ok(Json::from(value as i64));
        }
        Ok(serde_json::Number::from_f64(value).map_or(Json::Null, Json::Number))
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Json, E> {
        self.check_text::<E>(&self.path, value)?;
        Ok(Json::String(value.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Json, E> {
        self.check_text::<E>(&self.path, &value)?;
        Ok(Json::String(value))
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue {
            path: format!("{}/{}", self.path, items.len()),
            found: self.found,
        })? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = format!(
                "{}/{}",
                self.path,
                key.replace('~', "~0").replace('/', "~1")
            );
            self.check_text::<A::Error>(&path, &key)?;
            if object.contains_key(&key) {
                return Err(self.refuse(
                    &path,
                    "duplicate_key",
                    format!("the key `{key}` is given twice in one object"),
                ));
            }
            let value = map.next_value_seed(StrictValue {
                path,
                found: self.found,
            })?;
            object.insert(key, value);
        }
        Ok(Json::Object(object))
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
    use serde_json::json;

    use super::*;

    #[test]
    fn strict_json_refuses_repeated_keys_and_nul_and_keeps_everything_else() {
        assert_eq!(
            parse_strict(br#"{"a": [1, 2.5, "x", null, true], "b": {"c": {}}}"#).unwrap(),
            json!({"a": [1, 2.5, "x", null, true], "b": {"c": {}}})
        );
        let repeated = parse_strict(br#"{"name": "a", "name": "b"}"#).unwrap_err();
        assert_eq!(repeated.code(), ErrorCode::InvalidRequest);
        let nested = parse_strict(br#"[{"x": 1, "y": {"z": 1, "z": 2}}]"#).unwrap_err();
        assert_eq!(nested.code(), ErrorCode::InvalidRequest);
        let nul = parse_strict(br#"{"name": "a\u0000b"}"#).unwrap_err();
        assert_eq!(nul.code(), ErrorCode::InvalidRequest);
        let nul_key = parse_strict(br#"{"a\u0000": 1}"#).unwrap_err();
        assert_eq!(nul_key.code(), ErrorCode::InvalidRequest);
        assert_eq!(
            parse_strict(b"{\"a\": 1,}").unwrap_err().code(),
            ErrorCode::MalformedRequest
        );
        assert_eq!(
            parse_strict(b"{} {}").unwrap_err().code(),
            ErrorCode::MalformedRequest
        );
    }

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
