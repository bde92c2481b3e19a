//! API errors as `application/problem+json` (RFC 9457):
//! `{type, title, status, detail, errors: [{field, code, message}]}`.
//!
//! [`ErrorCode`] is the one table that gives every error its stable snake_case `type`, its
//! HTTP status and its title. Codes are API: add new ones, never rename or reuse one.
//! Every failure — runtime errors, axum's extractor rejections, the body limit, panics,
//! unknown routes — leaves through [`ApiError`]'s one `IntoResponse`.
//!
//! A 5xx body reveals nothing. Its cause travels in a [`ServerFault`] response extension,
//! and the request middleware logs it once together with the request id.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_runtime::auth::AuthError;
use keel_runtime::metadata::MetadataError;
use keel_runtime::records::RecordError;
use keel_runtime::reports::ReportError;
use keel_runtime::scheduler::SchedulerError;
use serde::Serialize;
use serde_json::{Map, Value as Json, json};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every kind of API error, with its stable code, status and title in [`ErrorCode::row`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request cannot be read: broken JSON, a bad path or header.
    MalformedRequest,
    /// No session, or an expired, ended or unknown one.
    NotAuthenticated,
    /// Sign-in with a wrong username or password (or an inactive user).
    BadCredentials,
    /// The object, action or field is not allowed for this user.
    Forbidden,
    /// No such object in this app.
    UnknownObject,
    /// No such record (or one the user may not see), user or resource.
    NotFound,
    /// No such route.
    RouteNotFound,
    /// The route exists, but not for this method.
    MethodNotAllowed,
    /// A unique value or a blocking duplicate key matched an existing record.
    Conflict,
    /// A delete refused: other records refer to the record through `restrict` lookups.
    Referenced,
    /// A pool refused a claim or move; `errors[0].code` says why (`taken`, `claim_limit`,
    /// `daily_claim_limit`, `cooldown`, `in_pool`).
    PoolRefused,
    /// A sales process refused a transition or a change; `errors[0].code` says why
    /// (`transition_not_allowed`, `approval_pending`, `guard_refused`, `not_an_approver`,
    /// `not_the_requester`, `approval_decided`).
    TransitionRefused,
    UsernameTaken,
    DepartmentTaken,
    /// `If-Match` named an older version of the record.
    StaleVersion,
    /// A metadata apply named a `base` version that is no longer the latest (someone else
    /// applied first); the problem carries `latest_version`.
    StaleBase,
    /// A metadata apply needs destructive database steps and `allow_destructive` was not
    /// true; the problem carries the `plan`. Nothing changed.
    DestructiveChange,
    /// The metadata does not load; the problem carries `diagnostics` (file, line, col,
    /// message), one `errors` entry each.
    InvalidMetadata,
    /// The body is larger than the server accepts.
    PayloadTooLarge,
    /// The URI (path and query string) is longer than the server reads.
    UriTooLong,
    /// The request headers are larger than the server reads.
    HeadersTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The record is not valid: every bad field is listed.
    InvalidRecord,
    /// The request's parameters are not valid (filter, order, limit, cursor, header, …).
    InvalidRequest,
    /// Too many failed sign-ins; `Retry-After` says when to try again.
    TooManyLoginAttempts,
    /// Too many duplicate lookups (查重) this minute; `Retry-After` says when to try again.
    TooManyDuplicateLookups,
    /// A script refused the save with `reject(message)`: the message is for the user.
    ScriptRejected,
    /// A script (or a validation or rule expression) failed while running, or does not
    /// compile: the problem names the script, line and column.
    ScriptFailed,
    /// A script broke a sandbox limit (operations, wall time, sizes, data reads or writes).
    ScriptLimitBroken,
    /// Rules and scripts caused each other's saves deeper than the chain limit.
    ChainTooDeep,
    /// A fault on our side; the body says nothing more.
    Internal,
}

impl ErrorCode {
    /// The table: code (the problem's `type`), status, title.
    pub const fn row(self) -> (&'static str, StatusCode, &'static str) {
        use ErrorCode::*;
        match self {
            MalformedRequest => (
                "malformed_request",
                StatusCode::BAD_REQUEST,
                "The request cannot be read",
            ),
            NotAuthenticated => (
                "not_authenticated",
                StatusCode::UNAUTHORIZED,
                "Not signed in",
            ),
            BadCredentials => (
                "bad_credentials",
                StatusCode::UNAUTHORIZED,
                "Wrong username or password",
            ),
            Forbidden => ("forbidden", StatusCode::FORBIDDEN, "Not allowed"),
            UnknownObject => ("unknown_object", StatusCode::NOT_FOUND, "No such object"),
            NotFound => ("not_found", StatusCode::NOT_FOUND, "Not found"),
            RouteNotFound => ("route_not_found", StatusCode::NOT_FOUND, "No such route"),
            MethodNotAllowed => (
                "method_not_allowed",
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
            ),
            Conflict => (
                "conflict",
                StatusCode::CONFLICT,
                "Conflicts with an existing record",
            ),
            Referenced => (
                "referenced",
                StatusCode::CONFLICT,
                "Other records refer to this record",
            ),
            PoolRefused => ("pool_refused", StatusCode::CONFLICT, "The pool refused"),
            TransitionRefused => (
                "transition_refused",
                StatusCode::CONFLICT,
                "The sales process refused",
            ),
            UsernameTaken => (
                "username_taken",
                StatusCode::CONFLICT,
                "The username is taken",
            ),
            DepartmentTaken => (
                "department_taken",
                StatusCode::CONFLICT,
                "The department exists",
            ),
            StaleVersion => (
                "stale_version",
                StatusCode::PRECONDITION_FAILED,
                "The record has changed",
            ),
            StaleBase => (
                "stale_base",
                StatusCode::CONFLICT,
                "The metadata has changed since",
            ),
            DestructiveChange => (
                "destructive_change",
                StatusCode::CONFLICT,
                "The change needs destructive database steps",
            ),
            InvalidMetadata => (
                "invalid_metadata",
                StatusCode::UNPROCESSABLE_ENTITY,
                "The metadata is not valid",
            ),
            PayloadTooLarge => (
                "payload_too_large",
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large",
            ),
            UriTooLong => (
                "uri_too_long",
                StatusCode::URI_TOO_LONG,
                "The URI is too long",
            ),
            HeadersTooLarge => (
                "headers_too_large",
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "The request headers are too large",
            ),
            UnsupportedMediaType => (
                "unsupported_media_type",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "The body must be JSON",
            ),
            InvalidRecord => (
                "invalid_record",
                StatusCode::UNPROCESSABLE_ENTITY,
                "The record is not valid",
            ),
            InvalidRequest => (
                "invalid_request",
                StatusCode::UNPROCESSABLE_ENTITY,
                "The request is not valid",
            ),
            TooManyLoginAttempts => (
                "too_many_login_attempts",
                StatusCode::TOO_MANY_REQUESTS,
                "Too many sign-in attempts",
            ),
            TooManyDuplicateLookups => (
                "too_many_duplicate_lookups",
                StatusCode::TOO_MANY_REQUESTS,
                "Too many duplicate lookups",
            ),
            ScriptRejected => (
                "script_rejected",
                StatusCode::UNPROCESSABLE_ENTITY,
                "The save was refused",
            ),
            ScriptFailed => (
                "script_failed",
                StatusCode::UNPROCESSABLE_ENTITY,
                "A script failed",
            ),
            ScriptLimitBroken => (
                "script_limit_broken",
                StatusCode::UNPROCESSABLE_ENTITY,
                "A script broke a limit",
            ),
            ChainTooDeep => (
                "chain_too_deep",
                StatusCode::UNPROCESSABLE_ENTITY,
                "Rules and scripts triggered each other too deeply",
            ),
            Internal => (
                "internal",
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error",
            ),
        }
    }

    pub const fn code(self) -> &'static str {
        self.row().0
    }

    pub const fn status(self) -> StatusCode {
        self.row().1
    }

    /// The code for a bare status produced outside our handlers (axum's router, tower-http
    /// layers), if we have one.
    pub fn for_status(status: StatusCode) -> Option<ErrorCode> {
        Some(match status {
            StatusCode::BAD_REQUEST => ErrorCode::MalformedRequest,
            StatusCode::UNAUTHORIZED => ErrorCode::NotAuthenticated,
            StatusCode::FORBIDDEN => ErrorCode::Forbidden,
            StatusCode::NOT_FOUND => ErrorCode::RouteNotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::URI_TOO_LONG => ErrorCode::UriTooLong,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ErrorCode::HeadersTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::InvalidRequest,
            status if status.is_server_error() => ErrorCode::Internal,
            _ => return None,
        })
    }
}

/// One bad field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

/// An API error on its way to becoming a problem+json response. Boxed: it travels in
/// every handler's `Result`, which should stay small.
#[derive(Debug)]
pub struct ApiError(Box<Problem>);

#[derive(Debug)]
struct Problem {
    code: ErrorCode,
    detail: String,
    errors: Vec<FieldError>,
    /// Further members of the problem object (e.g. `matches` of a conflict).
    extra: Map<String, Json>,
    retry_after: Option<Duration>,
    /// The cause of a server fault: logged with the request id, never shown.
    cause: Option<String>,
}

/// The cause of a 5xx answer, carried as a response extension to the middleware that logs
/// it with the request id.
#[derive(Debug, Clone)]
pub struct ServerFault(pub String);

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError(Box::new(Problem {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            extra: Map::new(),
            retry_after: None,
            cause: None,
        }))
    }

    /// A server fault: the body says only that something went wrong; `cause` is logged.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        let mut error = ApiError::new(
            ErrorCode::Internal,
            "something went wrong on our side; the request id in the x-request-id header helps us find it",
        );
        error.0.cause = Some(cause.to_string());
        error
    }

    pub fn not_authenticated() -> ApiError {
        ApiError::new(
            ErrorCode::NotAuthenticated,
            "sign in first: send `Authorization: Bearer <token>` or the session cookie",
        )
    }

    /// An invalid request parameter, naming it.
    pub fn invalid_parameter(
        field: impl Into<String>,
        code: &str,
        message: impl Into<String>,
    ) -> ApiError {
        let message = message.into();
        ApiError::new(ErrorCode::InvalidRequest, message.clone()).with_error(FieldError {
            field: field.into(),
            code: code.to_owned(),
            message,
        })
    }

    pub fn with_error(mut self, error: FieldError) -> ApiError {
        self.0.errors.push(error);
        self
    }

    pub fn with_extra(mut self, key: &str, value: Json) -> ApiError {
        self.0.extra.insert(key.to_owned(), value);
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.0.code
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.0.code.status()
    }

    /// The sentence that explains the error.
    pub fn detail(&self) -> &str {
        &self.0.detail
    }

    /// The bad fields, each with a code and a message (pages show them next to the field).
    pub fn errors(&self) -> &[FieldError] {
        &self.0.errors
    }

    /// A further member of the problem object (e.g. `matches` of a duplicate conflict).
    pub fn extra(&self, key: &str) -> Option<&Json> {
        self.0.extra.get(key)
    }

    /// The cause of a server fault, for the log (never shown to the user).
    pub fn cause(&self) -> Option<&str> {
        self.0.cause.as_deref()
    }

    /// The problem+json body of this error.
    pub fn body_text(&self) -> String {
        let problem = &self.0;
        let (code, status, title) = problem.code.row();
        let mut body = Map::new();
        body.insert("type".to_owned(), json!(code));
        body.insert("title".to_owned(), json!(title));
        body.insert("status".to_owned(), json!(status.as_u16()));
        body.insert("detail".to_owned(), json!(problem.detail));
        body.insert("errors".to_owned(), json!(problem.errors));
        for (key, value) in &problem.extra {
            body.entry(key.clone()).or_insert_with(|| value.clone());
        }
        serde_json::to_string(&Json::Object(body)).unwrap_or_else(|_| {
            // Serializing a map of strings and numbers cannot fail; keep a valid body anyway.
            format!(
                r#"{{"type":"{code}","title":"{title}","status":{}}}"#,
                status.as_u16()
            )
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let text = self.body_text();
        let problem = *self.0;
        let status = problem.code.status();
        let mut response = (status, text).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(retry_after) = problem.retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs()),
            );
        }
        if let Some(cause) = problem.cause {
            response.extensions_mut().insert(ServerFault(cause));
        }
        response
    }
}

impl From<RecordError> for ApiError {
    fn from(error: RecordError) -> ApiError {
        let detail = error.to_string();
        match error {
            RecordError::UnknownObject(_) => ApiError::new(ErrorCode::UnknownObject, detail),
            RecordError::NotFound => ApiError::new(ErrorCode::NotFound, detail),
            RecordError::Forbidden { fields, .. } => {
                let mut api_error = ApiError::new(ErrorCode::Forbidden, detail);
                for field in fields {
                    api_error = api_error.with_error(FieldError {
                        message: format!("`{field}` is read-only for you"),
                        field,
                        code: "read_only".to_owned(),
                    });
                }
                api_error
            }
            RecordError::Invalid(problems) => {
                let mut api_error = ApiError::new(
                    ErrorCode::InvalidRecord,
                    match problems.as_slice() {
                        [only] => format!("{}: {}", only.field, only.message),
                        _ => format!("{} fields are not valid", problems.len()),
                    },
                );
                api_error.0.errors = problems
                    .into_iter()
                    .map(|problem| FieldError {
                        field: problem.field,
                        code: problem.code.to_owned(),
                        message: problem.message,
                    })
                    .collect();
                api_error
            }
            RecordError::Conflict { field, matches, .. } => {
                let mut api_error = ApiError::new(ErrorCode::Conflict, detail.clone())
                    .with_extra("matches", json!(matches));
                if let Some(field) = field {
                    api_error = api_error.with_error(FieldError {
                        field,
                        code: "duplicate".to_owned(),
                        message: detail,
                    });
                }
                api_error
            }
            RecordError::Referenced { references, .. } => {
                ApiError::new(ErrorCode::Referenced, detail)
                    .with_extra("references", json!(references))
            }
            RecordError::Stale { current, .. } => ApiError::new(ErrorCode::StaleVersion, detail)
                .with_extra("current_version", json!(current)),
            RecordError::BadRequest(_) => ApiError::new(ErrorCode::InvalidRequest, detail),
            RecordError::TooManyLookups { retry_after } => {
                let mut api_error = ApiError::new(ErrorCode::TooManyDuplicateLookups, detail);
                api_error.0.retry_after = Some(retry_after);
                api_error
            }
            RecordError::BadFilter { field, message } => {
                ApiError::invalid_parameter(field, "invalid_filter", message)
            }
            RecordError::Script(error) => script_error(error),
            RecordError::ChainTooDeep { chain } => {
                ApiError::new(ErrorCode::ChainTooDeep, detail).with_extra("chain", json!(chain))
            }
            RecordError::PoolRefused { code, message } => {
                ApiError::new(ErrorCode::PoolRefused, detail).with_error(FieldError {
                    field: String::new(),
                    code: code.to_owned(),
                    message,
                })
            }
            RecordError::ProcessRefused {
                code,
                message,
                script,
            } => {
                let mut api_error =
                    ApiError::new(ErrorCode::TransitionRefused, detail).with_error(FieldError {
                        field: String::new(),
                        code: code.to_owned(),
                        message,
                    });
                if let Some(script) = script {
                    api_error = api_error.with_extra("script", json!(script));
                }
                api_error
            }
            RecordError::Store(error) => ApiError::internal(error_chain(&error)),
        }
    }
}

/// A script's error: a `reject` shows its message; a fault or a broken limit names the
/// script, line and column (also as `script`, `line`, `column` members).
fn script_error(error: keel_script::RunError) -> ApiError {
    use keel_script::RunError;
    let detail = error.to_string();
    let script = error.script().to_owned();
    let (code, line, column, limit) = match &error {
        RunError::Rejected { line, .. } => (ErrorCode::ScriptRejected, *line, 0, None),
        RunError::Compile { line, column, .. } | RunError::Fault { line, column, .. } => {
            (ErrorCode::ScriptFailed, *line, *column, None)
        }
        RunError::LimitBroken {
            line,
            column,
            limit,
            ..
        } => (
            ErrorCode::ScriptLimitBroken,
            *line,
            *column,
            Some(limit.code()),
        ),
        RunError::Internal { .. } => return ApiError::internal(detail),
    };
    let mut api_error = ApiError::new(code, detail.clone())
        .with_extra("script", json!(script))
        .with_extra("line", json!(line))
        .with_extra("column", json!(column))
        .with_error(FieldError {
            field: String::new(),
            code: code.code().to_owned(),
            message: detail,
        });
    if let Some(limit) = limit {
        api_error = api_error.with_extra("limit", json!(limit));
    }
    api_error
}

impl From<MetadataError> for ApiError {
    fn from(error: MetadataError) -> ApiError {
        let detail = error.to_string();
        match error {
            MetadataError::Forbidden => ApiError::new(ErrorCode::Forbidden, detail),
            MetadataError::NoSuchVersion(_) => ApiError::new(ErrorCode::NotFound, detail),
            MetadataError::StaleBase { latest, .. } => ApiError::new(ErrorCode::StaleBase, detail)
                .with_extra("latest_version", json!(latest)),
            MetadataError::Destructive(plan) => {
                ApiError::new(ErrorCode::DestructiveChange, detail).with_extra("plan", json!(plan))
            }
            MetadataError::Invalid(diagnostics) => {
                let mut api_error = ApiError::new(ErrorCode::InvalidMetadata, detail);
                for diagnostic in &diagnostics {
                    api_error = api_error.with_error(FieldError {
                        field: format!(
                            "{}:{}:{}",
                            diagnostic.file, diagnostic.line, diagnostic.col
                        ),
                        code: "invalid".to_owned(),
                        message: diagnostic.message.clone(),
                    });
                }
                api_error.with_extra("diagnostics", json!(diagnostics))
            }
            MetadataError::Files(_) | MetadataError::Store(_) => ApiError::internal(detail),
        }
    }
}

impl From<ReportError> for ApiError {
    fn from(error: ReportError) -> ApiError {
        match error {
            ReportError::BadParameter { parameter, message } => {
                ApiError::invalid_parameter(parameter, "invalid", message)
            }
            ReportError::Record(error) => error.into(),
        }
    }
}

impl From<SchedulerError> for ApiError {
    fn from(error: SchedulerError) -> ApiError {
        let detail = error.to_string();
        match error {
            SchedulerError::UnknownJob(_) => ApiError::new(ErrorCode::NotFound, detail),
            SchedulerError::EventRule(_) => ApiError::new(ErrorCode::Conflict, detail.clone())
                .with_error(FieldError {
                    field: String::new(),
                    code: "event_rule".to_owned(),
                    message: detail,
                }),
            SchedulerError::MissingRun(_) | SchedulerError::Store(_) => ApiError::internal(detail),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        let detail = error.to_string();
        match error {
            AuthError::BadCredentials => ApiError::new(ErrorCode::BadCredentials, detail),
            AuthError::TooManyAttempts { retry_after } => {
                let mut api_error = ApiError::new(ErrorCode::TooManyLoginAttempts, detail);
                api_error.0.retry_after = Some(retry_after);
                api_error
            }
            AuthError::NotAuthenticated => ApiError::new(ErrorCode::NotAuthenticated, detail),
            AuthError::Forbidden => ApiError::new(ErrorCode::Forbidden, detail),
            AuthError::Invalid { field, message } => match field {
                Some(field) => ApiError::invalid_parameter(field, "invalid", message),
                None => ApiError::new(ErrorCode::InvalidRequest, message),
            },
            AuthError::UnknownUser(_) => ApiError::new(ErrorCode::NotFound, detail),
            AuthError::UsernameTaken(_) => ApiError::new(ErrorCode::UsernameTaken, detail),
            AuthError::DepartmentTaken(_) => ApiError::new(ErrorCode::DepartmentTaken, detail),
            AuthError::Hashing(_) | AuthError::Store(_) => ApiError::internal(error_chain(&error)),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
        let detail = rejection.body_text();
        match ErrorCode::for_status(rejection.status()) {
            Some(ErrorCode::Internal) | None => ApiError::internal(detail),
            Some(ErrorCode::InvalidRequest) => ApiError::new(ErrorCode::InvalidRequest, detail),
            Some(code) => ApiError::new(code, detail),
        }
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> ApiError {
        let detail = rejection.body_text();
        if rejection.status().is_server_error() {
            ApiError::internal(detail)
        } else {
            ApiError::new(ErrorCode::MalformedRequest, detail)
        }
    }
}

/// An error and its sources, `: `-separated, for the log.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // thiserror's `{source}` in messages often repeats the cause; say it once.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The problem+json answer for a bare error status that no handler of ours produced.
pub fn problem_for_status(status: StatusCode) -> Option<ApiError> {
    let code = ErrorCode::for_status(status)?;
    let detail = match code {
        ErrorCode::RouteNotFound => "there is no such route; the API lives under /api/v1",
        ErrorCode::MethodNotAllowed => "this route does not accept that method",
        ErrorCode::PayloadTooLarge => "the request body is larger than the server accepts",
        ErrorCode::Internal => {
            return Some(ApiError::internal(format!("bare {status} answer")));
        }
        _ => status.canonical_reason().unwrap_or("the request failed"),
    };
    Some(ApiError::new(code, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[ErrorCode] = &[
        ErrorCode::MalformedRequest,
        ErrorCode::NotAuthenticated,
        ErrorCode::BadCredentials,
        ErrorCode::Forbidden,
        ErrorCode::UnknownObject,
        ErrorCode::NotFound,
        ErrorCode::RouteNotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::Referenced,
        ErrorCode::PoolRefused,
        ErrorCode::TransitionRefused,
        ErrorCode::UsernameTaken,
        ErrorCode::DepartmentTaken,
        ErrorCode::StaleVersion,
        ErrorCode::StaleBase,
        ErrorCode::DestructiveChange,
        ErrorCode::InvalidMetadata,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UriTooLong,
        ErrorCode::HeadersTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::InvalidRecord,
        ErrorCode::InvalidRequest,
        ErrorCode::TooManyLoginAttempts,
        ErrorCode::TooManyDuplicateLookups,
        ErrorCode::Internal,
    ];

    #[test]
    fn codes_are_unique_snake_case_and_only_internal_is_a_server_error() {
        let mut seen = std::collections::HashSet::new();
        for code in ALL {
            let (name, status, title) = code.row();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert!(!title.is_empty());
            assert_eq!(status.is_server_error(), *code == ErrorCode::Internal);
        }
    }

    #[tokio::test]
    async fn a_server_fault_reveals_nothing_but_carries_its_cause_for_the_log() {
        let response = ApiError::internal("password=hunter2 in a query").into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let cause = response.extensions().get::<ServerFault>().cloned();
        let body = axum::body::to_bytes(response.into_body(), 10_000)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(cause.unwrap().0.contains("hunter2"));
        let body: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(body["type"], "internal");
        assert_eq!(body["status"], 500);
        assert_eq!(body["errors"], json!([]));
    }
}
