//! `keel-web`: the HTTP surface of Keel (axum): the `/api/v1` routes (docs/api.md), sessions
//! and sign-in, problem+json errors, OpenAPI, metrics, and the server-rendered pages
//! (`pages`, docs/ui.md).
//!
//! Only this crate knows HTTP. Handlers are thin: extract, call the runtime (`Records`,
//! `Auth`), map the result; no SQL and no permission decisions here.
//!
//! Every route runs inside one middleware stack (outermost first): a request id
//! (`x-request-id`, kept when the client sends one, echoed in the answer) → a tracing span
//! at debug level (`KEEL_LOG=debug` puts method, path and request id on every line a
//! request logs; at the default `info` it costs nothing, and a server fault names its
//! request id anyway) → metrics and server-fault logging → cross-site request refusal
//! (tower-http's `CsrfLayer`: a state-changing request whose `Sec-Fetch-Site`/`Origin` says
//! it comes from another site is a 403; `KEEL_TRUSTED_ORIGINS` lists extra origins, e.g. a
//! proxy's) → panic catching (a panic answers a 500 problem) → a 10 MiB body limit (413).
//! Pages add their own layer (security headers, error pages). Requests hyper itself refuses before any route (a URI over
//! 64 KiB: 414) are answered as problem+json too (`listener`).

mod admin;
mod auth;
pub mod error;
mod extract;
mod listener;
mod meta;
mod metrics;
mod notifications;
pub mod openapi;
pub mod pages;
mod pools;
mod processes;
mod query;
mod records;
mod reports;
mod rules;
mod studio;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use keel_meta::Schema;
use keel_runtime::auth::Auth;
use keel_runtime::clock::{Clock, SystemClock};
use keel_runtime::metadata::{Generation, Live};
use keel_runtime::notifications::Inbox;
use keel_runtime::pools::Pools;
use keel_runtime::processes::Processes;
use keel_runtime::records::Records;
use keel_runtime::reports::Reports;
use keel_store::Db;
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::{ApiError, ErrorCode};
use crate::extract::Pinned;

/// The largest request body accepted (a bulk call of 1,000 records fits many times over).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// What every handler can reach: the metadata version the request pinned (its schema,
/// records, sign-in service, pools, processes, reports and inbox), and what the process
/// keeps across versions: the database, the metrics, the pages' assets, the scheduler and
/// the live metadata itself.
///
/// A request pins the generation current at its start (`pin_generation`, the outermost
/// layer but the request id's) and every extractor reads that one ([`extract::Pinned`]),
/// so a request never mixes two metadata versions (docs/studio.md).
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
    generation: Arc<Generation>,
}

struct Shared {
    db: Db,
    live: Arc<Live>,
    /// Where the studio's applies write the files; `None` refuses applies.
    app_dir: Option<std::path::PathBuf>,
    metrics: metrics::Metrics,
    ui: pages::Ui,
}

impl AppState {
    /// The state of a running server, on the system clock, without an app directory (the
    /// studio's apply is refused) or recorded version.
    pub fn new(schema: Arc<Schema>, db: Db) -> AppState {
        AppState::with_clock(schema, db, Arc::new(SystemClock))
    }

    /// The state with a given clock (tests pass a `ManualClock`).
    pub fn with_clock(schema: Arc<Schema>, db: Db, clock: Arc<dyn Clock>) -> AppState {
        let live = Arc::new(Live::new(Generation::new(schema, db.clone(), clock, None)));
        AppState::live(live, db, None)
    }

    /// The state of `keel serve`: the live metadata (swapped by applies and by following
    /// other processes) and the app directory the studio writes.
    pub fn live(live: Arc<Live>, db: Db, app_dir: Option<std::path::PathBuf>) -> AppState {
        AppState {
            generation: live.current(),
            shared: Arc::new(Shared {
                db,
                live,
                app_dir,
                metrics: metrics::Metrics::default(),
                ui: pages::Ui::new(),
            }),
        }
    }

    /// The same state on the generation current now.
    pub fn pinned(&self) -> AppState {
        AppState {
            shared: Arc::clone(&self.shared),
            generation: self.shared.live.current(),
        }
    }

    /// The metadata version this state answers with (`None` before versions are recorded).
    pub fn version(&self) -> Option<i64> {
        self.generation.version
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.generation.schema
    }

    pub fn db(&self) -> &Db {
        &self.shared.db
    }

    pub fn records(&self) -> &Records {
        &self.generation.records
    }

    /// Lead pools (docs/pools.md), over the same records.
    pub fn pools(&self) -> &Pools {
        &self.generation.pools
    }

    /// Sales processes and approvals (docs/processes.md), over the same records.
    pub fn processes(&self) -> &Processes {
        &self.generation.processes
    }

    /// The reports (docs/reports.md): funnel, briefing, calendar.
    pub fn reports(&self) -> &Reports {
        &self.generation.reports
    }

    pub fn inbox(&self) -> &Inbox {
        &self.generation.inbox
    }

    pub fn auth(&self) -> &Auth {
        &self.generation.auth
    }

    fn metrics(&self) -> &metrics::Metrics {
        &self.shared.metrics
    }

    /// This process's scheduler: `keel serve` runs its ticks; the admin API lists and starts
    /// runs through it. It follows the metadata versions itself.
    pub fn scheduler(&self) -> &Arc<keel_runtime::scheduler::Scheduler> {
        self.shared.live.scheduler()
    }

    /// The live metadata: the current generation, swaps, the scheduler.
    pub fn live_metadata(&self) -> &Arc<Live> {
        &self.shared.live
    }

    /// The app directory the studio's applies write, if any.
    pub fn app_dir(&self) -> Option<&std::path::Path> {
        self.shared.app_dir.as_deref()
    }

    /// The pages' templates, catalogs and assets.
    pub fn ui(&self) -> &pages::Ui {
        &self.shared.ui
    }
}

/// Pins the current metadata generation for the request (handlers and extractors read it
/// through [`extract::Pinned`]) and names its version in `Keel-Metadata-Version`.
async fn pin_generation(
    State(state): State<AppState>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    let pinned = state.pinned();
    let version = pinned.version();
    request.extensions_mut().insert(pinned);
    let mut response = next.run(request).await;
    if let Some(version) = version
        && let Ok(value) = axum::http::HeaderValue::from_str(&version.to_string())
    {
        response
            .headers_mut()
            .insert(METADATA_VERSION_HEADER, value);
    }
    response
}

/// The response header naming the metadata version that answered.
pub const METADATA_VERSION_HEADER: &str = "keel-metadata-version";

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/api/v1/healthz", get(healthz))
        .route("/api/v1/metrics", get(metrics::metrics))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/me", get(auth::me))
        .route("/api/v1/notifications", get(notifications::list))
        .route("/api/v1/notifications/read", post(notifications::read_all))
        .route("/api/v1/notifications/stream", get(notifications::stream))
        .route("/api/v1/notifications/{id}/read", post(notifications::read))
        .route("/api/v1/admin/outbox", get(notifications::outbox))
        .route(
            "/api/v1/admin/outbox/{id}/retry",
            post(notifications::retry_outbox),
        )
        .route("/api/v1/admin/metadata/validate", post(studio::validate))
        .route("/api/v1/admin/metadata/apply", post(studio::apply))
        .route("/api/v1/admin/metadata/versions", get(studio::versions))
        .route("/api/v1/admin/metadata/versions/{n}", get(studio::version))
        .route("/api/v1/admin/rules", get(rules::list))
        .route("/api/v1/admin/rules/{name}/runs", get(rules::runs))
        .route("/api/v1/admin/rules/{name}/run", post(rules::run_now))
        .route("/api/v1/meta/objects", get(meta::objects))
        .route("/api/v1/meta/objects/{object}", get(meta::object))
        .route("/api/v1/meta/schema/{file}", get(meta::json_schema))
        .route("/api/v1/openapi.json", get(meta::openapi))
        .route(
            "/api/v1/records/{object}",
            get(records::list).post(records::create),
        )
        .route("/api/v1/records/{object}/query", post(records::query))
        .route("/api/v1/records/{object}/bulk", post(records::bulk))
        .route(
            "/api/v1/records/{object}/duplicates",
            get(records::duplicates),
        )
        .route("/api/v1/records/{object}/export", get(records::export))
        .route(
            "/api/v1/records/{object}/{id}",
            get(records::get)
                .patch(records::update)
                .delete(records::delete),
        )
        .route(
            "/api/v1/records/{object}/{id}/restore",
            post(records::restore),
        )
        .route(
            "/api/v1/records/{object}/{id}/history",
            get(records::history),
        )
        .route(
            "/api/v1/records/{object}/{id}/pool-history",
            get(pools::history),
        )
        .route(
            "/api/v1/records/{object}/{id}/transition",
            post(processes::transition),
        )
        .route(
            "/api/v1/records/{object}/{id}/transitions",
            get(processes::transitions),
        )
        .route(
            "/api/v1/records/{object}/{id}/stage-history",
            get(processes::stage_history),
        )
        .route(
            "/api/v1/records/{object}/{id}/approvals",
            get(processes::record_approvals),
        )
        .route("/api/v1/approvals", get(processes::list))
        .route("/api/v1/approvals/{id}", get(processes::get_one))
        .route("/api/v1/approvals/{id}/approve", post(processes::approve))
        .route("/api/v1/approvals/{id}/reject", post(processes::reject))
        .route("/api/v1/approvals/{id}/recall", post(processes::recall))
        .route("/api/v1/pools", get(pools::list_pools))
        .route("/api/v1/pools/{pool}", get(pools::get_pool))
        .route("/api/v1/pools/{pool}/records", get(pools::records))
        .route("/api/v1/pools/{pool}/assign", post(pools::assign_many))
        .route("/api/v1/pools/{pool}/records/{id}", get(pools::record))
        .route(
            "/api/v1/pools/{pool}/records/{id}/claim",
            post(pools::claim),
        )
        .route(
            "/api/v1/pools/{pool}/records/{id}/release",
            post(pools::release),
        )
        .route(
            "/api/v1/pools/{pool}/records/{id}/assign",
            post(pools::assign),
        )
        .route(
            "/api/v1/pools/{pool}/records/{id}/move",
            post(pools::move_into),
        )
        .route("/api/v1/aggregate/{object}", get(records::aggregate))
        .route("/api/v1/reports/funnel", get(reports::funnel))
        .route("/api/v1/reports/briefing", get(reports::briefing))
        .route("/api/v1/calendar", get(reports::calendar))
        .route(
            "/api/v1/admin/users",
            get(admin::list_users).post(admin::create_user),
        )
        .route("/api/v1/admin/users/{name}", patch(admin::update_user))
        .route("/api/v1/admin/access", get(admin::explain_access))
        .route("/api/v1/admin/access-changes", get(admin::access_changes))
        .route(
            "/api/v1/admin/departments",
            get(admin::list_departments).post(admin::create_department),
        )
        .merge(pages::routes().layer(axum::middleware::from_fn_with_state(
            state.clone(),
            pages::page_layer,
        )))
        // Before any handler (and before sign-in): no NUL character reaches SQL.
        .route_layer(axum::middleware::from_fn(query::refuse_nul))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed);
    with_middleware(routes, state)
}

/// The middleware stack every route runs in (see the crate docs), and the state.
fn with_middleware(routes: Router<AppState>, state: AppState) -> Router {
    routes
        // Layers: the last added is the outermost.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(csrf_layer())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::observe,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            pin_generation,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("");
                tracing::debug_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id,
                )
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Serves until Ctrl-C or SIGTERM, then finishes the requests in flight.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    serve_until(listener, state, shutdown_signal()).await
}

/// Serves until `shutdown` completes, then finishes the requests in flight. The peer's
/// address reaches the handlers (the sign-in rate limit counts per address).
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener::ProblemListener(listener),
        router(state).into_make_service_with_connect_info::<listener::PeerAddress>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

/// `GET /api/v1/healthz`: 200 when the database answers, 503 otherwise. Public.
async fn healthz(Pinned(state): Pinned) -> impl IntoResponse {
    match state.db().ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "metadata": state.schema().fingerprint })),
        ),
        Err(error) => {
            tracing::error!(%error, "health check: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable" })),
            )
        }
    }
}

/// An unknown path: problem+json under `/api/`, the 404 page elsewhere.
async fn route_not_found(
    Pinned(state): Pinned,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if uri.path().starts_with("/api/") || uri.path() == "/api" {
        return ApiError::new(
            ErrorCode::RouteNotFound,
            "there is no such route; the API lives under /api/v1",
        )
        .into_response();
    }
    pages::not_found_page(&state, &headers).await
}

/// Refuses cross-site state-changing requests (see the crate docs). Extra trusted origins
/// (`https://crm.example.com`) come from `KEEL_TRUSTED_ORIGINS`, comma-separated; one that
/// does not parse is logged and skipped.
fn csrf_layer()
-> tower_http::csrf::CsrfLayer<impl FnMut(tower_http::csrf::ProtectionError) -> Response + Clone> {
    let mut layer = tower_http::csrf::CsrfLayer::new();
    if let Ok(origins) = std::env::var("KEEL_TRUSTED_ORIGINS") {
        for origin in origins.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            layer = match layer.clone().add_trusted_origin(origin) {
                Ok(layer) => layer,
                Err(error) => {
                    tracing::error!(origin, ?error, "KEEL_TRUSTED_ORIGINS: not an origin");
                    layer
                }
            };
        }
    }
    layer.with_rejection_response(|_error| {
        ApiError::new(
            ErrorCode::Forbidden,
            "a state-changing request from another site is refused (cross-site request forgery protection)",
        )
        .into_response()
    })
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not accept that method",
    )
}

/// A panicking handler answers a 500 problem; the panic message is logged, not shown.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
        .unwrap_or_else(|| "a panic without a message".to_owned());
    ApiError::internal(format!("a handler panicked: {message}")).into_response()
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    async fn test_state() -> (tempfile::TempDir, AppState) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/keel.db", dir.path().display()))
            .await
            .unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir_all(app.join("metadata/objects")).unwrap();
        std::fs::write(app.join("metadata/app.yaml"), "name: Test\n").unwrap();
        std::fs::write(
            app.join("metadata/roles.yaml"),
            "roles:\n  admin: { admin: true }\n",
        )
        .unwrap();
        std::fs::write(
            app.join("metadata/objects/note.yaml"),
            "name: note\nfields:\n  text: { type: text }\n",
        )
        .unwrap();
        let schema = keel_meta::load_app(&app).unwrap();
        (dir, AppState::new(Arc::new(schema), db))
    }

    async fn boom() -> &'static str {
        panic!("secret detail")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_500_problem_and_the_server_lives_on() {
        let (_dir, state) = test_state().await;
        let routes = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }));
        let app = with_middleware(routes, state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let ask = |path: &'static str| async move {
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            answer
        };
        let answer = ask("/boom").await;
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
        assert!(answer.contains("\"type\":\"internal\""), "{answer}");
        assert!(answer.contains("x-request-id"), "{answer}");
        assert!(!answer.contains("secret detail"), "{answer}");
        assert!(ask("/fine").await.ends_with("fine"));
        let metrics = state.metrics().render(state.db());
        assert!(
            metrics.contains(
                "keel_http_requests_total{method=\"GET\",route=\"/boom\",status=\"500\"} 1"
            ),
            "{metrics}"
        );
    }
}
