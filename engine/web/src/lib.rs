//! `keel-web`: the HTTP surface of Keel (axum): routes, and later auth, problem+json errors,
//! OpenAPI and the server-rendered pages.
//!
//! Only this crate knows HTTP. Handlers are thin: extract, call the runtime, map the result;
//! no SQL here.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use keel_meta::Schema;
use keel_store::Db;
use serde_json::json;

/// What every handler can reach: the loaded metadata and the database.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    schema: Arc<Schema>,
    db: Db,
}

impl AppState {
    pub fn new(schema: Arc<Schema>, db: Db) -> AppState {
        AppState {
            inner: Arc::new(Inner { schema, db }),
        }
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.inner.schema
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/healthz", get(healthz))
        .route("/api/v1/meta/schema/{file}", get(metadata_json_schema))
        .with_state(state)
}

/// Serves until Ctrl-C or SIGTERM, then finishes the requests in flight.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
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

/// `GET /api/v1/healthz`: 200 when the database answers, 503 otherwise.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
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

/// `GET /api/v1/meta/schema/{kind}.json`: the JSON Schema Keel checks that kind of YAML file
/// against, for editors (`# yaml-language-server: $schema=...`). Public: it reveals nothing
/// about the app.
async fn metadata_json_schema(Path(file): Path<String>) -> axum::response::Response {
    let kind = file
        .strip_suffix(".json")
        .and_then(keel_meta::schemas::FileKind::from_name);
    match kind {
        Some(kind) => ([(header::CONTENT_TYPE, "application/schema+json")], kind.schema_text()).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({ "status": 404, "title": "no such schema", "detail": "kinds: app, object, roles, pool, process, rule" }))).into_response(),
    }
}
