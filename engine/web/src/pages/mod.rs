//! The generated app's pages (docs/ui.md): server-rendered HTML from the templates in
//! `admin-ui/`, at the URLs of the contract (`/login`, `/`, `/app/{object}…`, `/admin…`).
//!
//! A page handler reads and writes only through `Records`, `Auth` and `Inbox`, exactly as
//! the API handlers do; it turns what they return into a plain view model and renders a
//! template with it. Nothing here decides a permission: a record the user may not see is
//! the runtime's `NotFound`, which becomes the 404 page.
//!
//! The frame: [`Viewer`] (the signed-in user and their language), [`PageForm`] (a form
//! with its CSRF token checked), [`Frame`] (what the shell around every page shows), and
//! [`PageError`] (how a failure becomes a page). Later features add their pages as modules
//! here and their entries to [`nav`].

mod chart;
mod format;
mod i18n;
mod session;
mod ui;

mod admin;
mod form;
mod home;
mod kanban;
mod list;
mod login;
mod pools;
mod process;
mod record;
mod reports;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Serialize;

pub use format::{Formatter, Shown};
pub use i18n::{Catalogs, LANGUAGES};
pub use session::{CSRF_FIELD, PageForm, Viewer};
pub use ui::{Ui, template_names, template_source};

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::extract::Pinned;

/// The Content-Security-Policy of every page: nothing inline, nothing from elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// The page routes; [`crate::router`] merges them with the API.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/{*path}", get(ui::static_file))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", axum::routing::post(login::logout))
        .route("/", get(home::page))
        .route(
            "/notifications/read",
            axum::routing::post(home::mark_all_read),
        )
        .merge(list::routes())
        .merge(pools::routes())
        .merge(record::routes())
        .merge(reports::routes())
        .merge(process::routes())
        .merge(form::routes())
        .merge(admin::routes())
}

/// Security headers on every page answer, and the error page for a failed one.
pub async fn page_layer(Pinned(state): Pinned, request: Request, next: Next) -> Response {
    let headers = request.headers().clone();
    let mut response = next.run(request).await;
    if let Some(failure) = response.extensions_mut().remove::<Failure>() {
        response = error_page(&state, &headers, failure).await;
    }
    secure(response)
}

/// Adds the pages' security headers to an HTML answer.
fn secure(mut response: Response) -> Response {
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    if is_html {
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    response
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum PageError {
    /// Not signed in: to the sign-in page, and back to `next` afterwards.
    SignIn { next: String },
    /// A form without this session's CSRF token (an old tab, or a forged form).
    StaleForm,
    /// A form body that is not a form.
    BadForm,
    /// What the runtime refused, as the API would answer it.
    Api(ApiError),
    /// A template that failed to render (a server fault).
    Template(String),
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> PageError {
        PageError::Api(error)
    }
}

impl From<keel_runtime::records::RecordError> for PageError {
    fn from(error: keel_runtime::records::RecordError) -> PageError {
        PageError::Api(ApiError::from(error))
    }
}

impl From<keel_runtime::auth::AuthError> for PageError {
    fn from(error: keel_runtime::auth::AuthError) -> PageError {
        PageError::Api(ApiError::from(error))
    }
}

impl From<minijinja::Error> for PageError {
    fn from(error: minijinja::Error) -> PageError {
        PageError::Template(format!("{error:#}"))
    }
}

/// A failure on its way to [`page_layer`], which renders it in the user's language.
#[derive(Debug, Clone)]
struct Failure {
    status: StatusCode,
    /// The catalog key of the page's heading.
    title: &'static str,
    /// The runtime's explanation, shown under the heading (never for a server fault).
    detail: Option<String>,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let failure = match self {
            PageError::SignIn { next } => {
                let next = form_urlencode(&next);
                return Redirect::to(&format!("/login?next={next}")).into_response();
            }
            PageError::StaleForm => Failure {
                status: StatusCode::FORBIDDEN,
                title: "error.stale_form",
                detail: None,
            },
            PageError::BadForm => Failure {
                status: StatusCode::BAD_REQUEST,
                title: "error.bad_request",
                detail: None,
            },
            PageError::Template(cause) => {
                tracing::error!(%cause, "a page template failed to render");
                Failure {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    title: "error.internal",
                    detail: None,
                }
            }
            PageError::Api(error) => {
                let status = error.status();
                if let Some(cause) = error.cause() {
                    tracing::error!(%cause, "a page failed");
                }
                let title = match error.code() {
                    ErrorCode::NotFound | ErrorCode::UnknownObject | ErrorCode::RouteNotFound => {
                        "error.not_found"
                    }
                    ErrorCode::Forbidden => "error.forbidden",
                    ErrorCode::NotAuthenticated => "error.not_authenticated",
                    ErrorCode::Internal => "error.internal",
                    _ if status.is_server_error() => "error.internal",
                    _ => "error.bad_request",
                };
                // A 404 says nothing about what was asked for; a fault shows no detail.
                let detail = (title == "error.bad_request" || title == "error.forbidden")
                    .then(|| error.detail().to_owned());
                Failure {
                    status,
                    title,
                    detail,
                }
            }
        };
        let mut response = failure.status.into_response();
        response.extensions_mut().insert(failure);
        response
    }
}

/// The error page, in the language of whoever is signed in (or of the browser).
async fn error_page(state: &AppState, headers: &HeaderMap, failure: Failure) -> Response {
    let actor = match crate::extract::session_token(headers) {
        Some(token) => state.auth().authenticate(&token).await.ok(),
        None => None,
    };
    let lang = session::page_language(state, actor.as_ref(), headers);
    let frame = Frame::bare(state, &lang);
    let context = minijinja::context! {
        frame => minijinja::Value::from(minijinja::value::Serde(&frame)),
        status => failure.status.as_u16(),
        title => failure.title,
        detail => failure.detail,
    };
    let body = state
        .ui()
        .render("error.html", context)
        .unwrap_or_else(|error| {
            tracing::error!(error = %format!("{error:#}"), "the error page failed to render");
            format!("<!doctype html><title>{}</title>", failure.status)
        });
    (failure.status, Html(body)).into_response()
}

/// The 404 page for a path that is no route (the API answers problem+json).
pub async fn not_found_page(state: &AppState, headers: &HeaderMap) -> Response {
    let failure = Failure {
        status: StatusCode::NOT_FOUND,
        title: "error.not_found",
        detail: None,
    };
    secure(error_page(state, headers, failure).await)
}

/// Renders a page template with the frame and the page's own view model.
pub fn render(
    state: &AppState,
    frame: &Frame,
    template: &str,
    page: impl Serialize,
) -> Result<Response, PageError> {
    render_with_status(state, frame, template, page, StatusCode::OK)
}

/// [`render`] with another status (a form shown again with errors is a 422).
pub fn render_with_status(
    state: &AppState,
    frame: &Frame,
    template: &str,
    page: impl Serialize,
    status: StatusCode,
) -> Result<Response, PageError> {
    let context = minijinja::context! {
        frame => minijinja::Value::from(minijinja::value::Serde(frame)),
        page => minijinja::Value::from(minijinja::value::Serde(&page)),
    };
    let body = state.ui().render(template, context)?;
    Ok((status, Html(body)).into_response())
}

/// What the shell around every page shows: the user, the navigation, the bell.
#[derive(Debug, Clone, Serialize)]
pub struct Frame {
    pub lang: String,
    /// The app's name in the page's language.
    pub app_name: String,
    pub user: Option<FrameUser>,
    /// The CSRF token for the page's forms.
    pub csrf: String,
    pub nav: Vec<NavGroup>,
    /// Unread notifications, at most [`UNREAD_SHOWN`] + 1 (shown as "10+").
    pub unread: usize,
    /// The page's path, to mark the current navigation entry.
    pub path: String,
    /// The app's timezone and the instant the page was made, for the time filters.
    pub tz: String,
    pub now: String,
    pub languages: Vec<&'static str>,
}

/// The signed-in user, as the shell shows them.
#[derive(Debug, Clone, Serialize)]
pub struct FrameUser {
    pub username: String,
    pub name: String,
    pub admin: bool,
}

/// A group of navigation entries.
#[derive(Debug, Clone, Serialize)]
pub struct NavGroup {
    /// The group's heading, in the page's language.
    pub title: String,
    pub items: Vec<NavItem>,
}

/// One navigation entry.
#[derive(Debug, Clone, Serialize)]
pub struct NavItem {
    pub label: String,
    pub url: String,
    pub current: bool,
}

/// How many unread notifications the bell counts before it says "10+".
pub const UNREAD_SHOWN: usize = 10;

impl Frame {
    /// The frame of a signed-in user's page (one query: the unread notifications).
    pub async fn new(state: &AppState, viewer: &Viewer) -> Result<Frame, PageError> {
        let unread = state
            .inbox()
            .list(&viewer.actor, true, None, (UNREAD_SHOWN + 1) as u32)
            .await?
            .len();
        let mut frame = Frame::bare(state, &viewer.lang);
        frame.user = Some(FrameUser {
            username: viewer.actor.username.clone(),
            name: viewer
                .actor
                .display_name
                .clone()
                .unwrap_or_else(|| viewer.actor.username.clone()),
            admin: viewer.actor.admin,
        });
        frame.csrf = viewer.csrf.clone();
        frame.unread = unread;
        frame.path = viewer.path.clone();
        frame.nav = nav(state, viewer);
        Ok(frame)
    }

    /// The frame of a page without a signed-in user (sign-in, errors).
    pub fn bare(state: &AppState, lang: &str) -> Frame {
        let schema = state.schema();
        Frame {
            lang: lang.to_owned(),
            app_name: schema.app.name.text(lang, &schema.app.language).to_owned(),
            user: None,
            csrf: String::new(),
            nav: Vec::new(),
            unread: 0,
            path: String::new(),
            tz: schema.app.timezone.clone(),
            now: state.records().clock().now().to_rfc3339(),
            languages: LANGUAGES.to_vec(),
        }
    }

    /// The formatter for this page's values.
    pub fn formatter(&self, state: &AppState) -> Formatter {
        Formatter::new(state.schema(), &self.lang, state.records().clock().now())
    }
}

/// The navigation of `viewer`: the objects they may read, grouped as the app's
/// `navigation` says (objects no group names follow under "other"; no groups at all: one
/// group in file order), then the pools the viewer may use, then the admin console. Later
/// features add their entries here.
pub fn nav(state: &AppState, viewer: &Viewer) -> Vec<NavGroup> {
    use keel_meta::Scope;
    use keel_runtime::records::access::{self, Action};
    let schema = state.schema();
    let catalogs = state.ui().catalogs();
    let text = |key: &str| catalogs.text(&viewer.lang, key, |_| None);
    let current = viewer.path.split('?').next().unwrap_or("");
    let item = |label: String, url: String| NavItem {
        current: current == url || current.starts_with(&format!("{url}/")),
        label,
        url,
    };
    let readable = |name: &str| {
        schema
            .object(name)
            .filter(|_| access::scope(schema, &viewer.actor, name, Action::Read) != Scope::None)
    };
    let entry = |object: &keel_meta::Object| {
        item(
            object
                .label
                .text(&viewer.lang, &schema.app.language)
                .to_owned(),
            format!("/app/{}", object.name),
        )
    };
    let mut groups = Vec::new();
    for group in &schema.app.navigation {
        let items: Vec<NavItem> = group
            .objects
            .iter()
            .filter_map(|name| readable(name))
            .map(entry)
            .collect();
        if !items.is_empty() {
            groups.push(NavGroup {
                title: group
                    .label
                    .text(&viewer.lang, &schema.app.language)
                    .to_owned(),
                items,
            });
        }
    }
    let placed = |name: &str| {
        schema
            .app
            .navigation
            .iter()
            .any(|group| group.objects.iter().any(|object| object == name))
    };
    let rest: Vec<NavItem> = schema
        .objects
        .values()
        .filter(|object| !placed(&object.name) && readable(&object.name).is_some())
        .map(entry)
        .collect();
    if !rest.is_empty() {
        let title = if groups.is_empty() {
            text("nav.records")
        } else {
            text("nav.other")
        };
        groups.push(NavGroup { title, items: rest });
    }
    let pools: Vec<NavItem> = pools::visible_pools(state, &viewer.actor)
        .into_iter()
        .map(|pool| {
            item(
                pool.label
                    .as_ref()
                    .map(|label| label.text(&viewer.lang, &schema.app.language).to_owned())
                    .unwrap_or_else(|| pool.name.clone()),
                format!("/app/pools/{}", pool.name),
            )
        })
        .collect();
    if !pools.is_empty() {
        groups.push(NavGroup {
            title: text("pools.nav"),
            items: pools,
        });
    }
    // The sales pages: the calendar when an object the viewer may read has entries, the
    // funnel when a process owns one.
    let mut work = Vec::new();
    if schema.processes.values().any(|process| {
        readable(&process.object).is_some()
            && process.stages.iter().any(|stage| stage.approval.is_some())
    }) {
        work.push(item(text("approvals.nav"), "/app/approvals".to_owned()));
    }
    if schema
        .objects
        .values()
        .any(|object| object.calendar.is_some() && readable(&object.name).is_some())
    {
        work.push(item(text("calendar.nav"), "/app/calendar".to_owned()));
    }
    if schema
        .processes
        .values()
        .any(|process| readable(&process.object).is_some())
    {
        work.push(item(
            text("reports.funnel"),
            "/app/reports/funnel".to_owned(),
        ));
    }
    if !work.is_empty() {
        groups.push(NavGroup {
            title: text("reports.nav"),
            items: work,
        });
    }
    if viewer.actor.admin {
        groups.push(NavGroup {
            title: text("nav.admin"),
            items: vec![item(text("nav.console"), "/admin".to_owned())],
        });
    }
    groups
}

/// Percent-encodes a query value (for `next=`).
pub fn form_urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// A local path to go back to after signing in: only paths on this site (`/…`, not `//…`).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next) if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') => {
            next.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_only_to_paths_on_this_site() {
        assert_eq!(
            safe_next(Some("/app/lead?status=eq.new")),
            "/app/lead?status=eq.new"
        );
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(
            form_urlencode("/app/lead?q=张"),
            "/app/lead%3Fq%3D%E5%BC%A0"
        );
    }

    #[test]
    fn both_catalogs_have_the_same_keys_and_every_template_key() {
        let ui = Ui::new();
        let catalogs = ui.catalogs();
        let en = catalogs.keys("en");
        let zh = catalogs.keys("zh");
        assert!(!en.is_empty());
        let missing_in_zh: Vec<_> = en.iter().filter(|key| !zh.contains(key)).collect();
        let missing_in_en: Vec<_> = zh.iter().filter(|key| !en.contains(key)).collect();
        assert!(
            missing_in_zh.is_empty(),
            "missing in zh.yaml: {missing_in_zh:?}"
        );
        assert!(
            missing_in_en.is_empty(),
            "missing in en.yaml: {missing_in_en:?}"
        );
        let call = regex_lite_t_calls();
        let mut unknown = Vec::new();
        for name in template_names() {
            let source = template_source(&name).unwrap_or_default();
            for key in call(&source) {
                if !catalogs.has(&key) {
                    unknown.push(format!("{name}: {key}"));
                }
            }
        }
        assert!(
            unknown.is_empty(),
            "keys used in templates but not in the catalogs: {unknown:?}"
        );
    }

    /// The literal keys of `t("…")` calls in a template.
    fn regex_lite_t_calls() -> impl Fn(&str) -> Vec<String> {
        |source: &str| {
            let mut keys = Vec::new();
            for quote in ['"', '\''] {
                let opener = format!("t({quote}");
                let mut rest = source;
                while let Some(start) = rest.find(&opener) {
                    let preceded = source.len() - rest.len() + start;
                    let before = source[..preceded].chars().last();
                    rest = &rest[start + opener.len()..];
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    if let Some(end) = rest.find(quote) {
                        keys.push(rest[..end].to_owned());
                    }
                }
            }
            keys
        }
    }
}
