//! Operations: the request middleware (metrics, server-fault logging with the request id,
//! problem+json for bare error statuses) and `GET /metrics` in the Prometheus text format.
//!
//! Requests are counted and timed per method, route *pattern* (`/api/v1/records/{object}`,
//! from axum's `MatchedPath`, so label cardinality stays bounded) and status. Latency is
//! measured until the response head is ready; a streamed export's body is not included.
//!
//! A small registry of our own rather than the `metrics` crates: their recorder is
//! process-global, while each `AppState` (several per test process) keeps its own figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keel_store::Db;

use crate::error::{PROBLEM_JSON, ServerFault, problem_for_status};
use crate::extract::Pinned;

/// Upper bounds (seconds) of the latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of requests that matched no route.
const UNMATCHED_ROUTE: &str = "unmatched";

/// Request counts and latencies of one app.
#[derive(Debug, Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    /// (method, route, status) → requests.
    requests: BTreeMap<(String, String, u16), u64>,
    /// (method, route) → latency histogram.
    latencies: BTreeMap<(String, String), Histogram>,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Per bucket of [`LATENCY_BUCKETS`], not cumulative.
    buckets: [u64; LATENCY_BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Metrics {
    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *registry
            .requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        let histogram = registry
            .latencies
            .entry((method.to_owned(), route.to_owned()))
            .or_default();
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            histogram.buckets[bucket] += 1;
        }
        histogram.sum += seconds;
        histogram.count += 1;
    }

    /// The Prometheus text exposition of every figure, plus the database pool's.
    pub fn render(&self, db: &Db) -> String {
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        out.push_str(
            "# HELP keel_http_requests_total HTTP requests answered, by method, route pattern and status.\n\
             # TYPE keel_http_requests_total counter\n",
        );
        for ((method, route, status), count) in &registry.requests {
            let _ = writeln!(
                out,
                "keel_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}",
                escape(method),
                escape(route)
            );
        }
        out.push_str(
            "# HELP keel_http_request_duration_seconds Time until the response head, by method and route pattern.\n\
             # TYPE keel_http_request_duration_seconds histogram\n",
        );
        for ((method, route), histogram) in &registry.latencies {
            let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
            let mut cumulative = 0;
            for (bound, count) in LATENCY_BUCKETS.iter().zip(histogram.buckets) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "keel_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "keel_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "keel_http_request_duration_seconds_sum{{{labels}}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "keel_http_request_duration_seconds_count{{{labels}}} {}",
                histogram.count
            );
        }
        let (open, idle) = pool_connections(db);
        out.push_str(
            "# HELP keel_db_pool_connections Database pool connections, open and idle.\n\
             # TYPE keel_db_pool_connections gauge\n",
        );
        let _ = writeln!(out, "keel_db_pool_connections{{state=\"open\"}} {open}");
        let _ = writeln!(out, "keel_db_pool_connections{{state=\"idle\"}} {idle}");
        out
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(Pinned(state): Pinned) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(state.db()),
    )
        .into_response()
}

/// Wraps every route: times and counts the request, logs a server fault once with its
/// request id, and turns a bare error status (from axum's router or a tower-http layer)
/// into problem+json.
pub async fn observe(Pinned(state): Pinned, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || UNMATCHED_ROUTE.to_owned(),
        |path| path.as_str().to_owned(),
    );
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut response = next.run(request).await;

    let status = response.status();
    if (status.is_client_error() || status.is_server_error())
        && is_bare(&response)
        && let Some(problem) = problem_for_status(status)
    {
        let original_headers = response.headers().clone();
        let fault = response.extensions().get::<ServerFault>().cloned();
        response = problem.into_response();
        for (name, value) in &original_headers {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                response.headers_mut().insert(name, value.clone());
            }
        }
        if let Some(fault) = fault {
            response.extensions_mut().insert(fault);
        }
    }
    if let Some(ServerFault(cause)) = response.extensions().get::<ServerFault>() {
        tracing::error!(request_id = %request_id, %method, %route, status = status.as_u16(), cause = %cause, "server fault");
    }
    let elapsed = started.elapsed().as_secs_f64();
    state
        .metrics()
        .record(&method, &route, response.status().as_u16(), elapsed);
    response
}

/// A response that is not JSON (plain text or empty): axum's and tower-http's own answers.
fn is_bare(response: &Response) -> bool {
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value: &HeaderValue| value.to_str().ok())
        .unwrap_or("");
    // Pages answer errors as HTML of their own; only an empty or plain-text body (axum's
    // rejections, tower-http's layers) is bare.
    content_type != PROBLEM_JSON
        && !content_type.starts_with("application/json")
        && !content_type.starts_with("text/html")
}

/// (open, idle) connections of the pool.
fn pool_connections(db: &Db) -> (u32, usize) {
    match db {
        Db::Sqlite(pool, _) => (pool.size(), pool.num_idle()),
        Db::Postgres(pool) => (pool.size(), pool.num_idle()),
    }
}

/// A label value escaped for the text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_in_the_text() {
        let metrics = Metrics::default();
        metrics.record("GET", "/api/v1/records/{object}", 200, 0.003);
        metrics.record("GET", "/api/v1/records/{object}", 200, 0.2);
        metrics.record("GET", "/api/v1/records/{object}", 404, 20.0);
        let registry = metrics.registry.lock().unwrap();
        assert_eq!(
            registry.requests[&("GET".to_owned(), "/api/v1/records/{object}".to_owned(), 200)],
            2
        );
        let histogram =
            &registry.latencies[&("GET".to_owned(), "/api/v1/records/{object}".to_owned())];
        assert_eq!(histogram.count, 3);
        assert_eq!(
            histogram.buckets.iter().sum::<u64>(),
            2,
            "20 s is only in +Inf"
        );
    }
}
