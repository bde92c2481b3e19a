//! `keel-bench-sink`: a local receiver for webhook deliveries, for the outbox drain benchmark
//! (bench/workflow.sh). It answers every `POST` with `200` and counts it; `GET /count` says
//! how many it received, how many distinct `X-Keel-Delivery` ids among them (a delivery
//! sent twice counts once there), and the milliseconds from the first to the last. It stops
//! on Ctrl-C or SIGTERM.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};

const USAGE: &str = "usage: keel-bench-sink [--listen 127.0.0.1:8092]";

#[derive(Default)]
struct Received {
    posts: u64,
    ids: HashSet<String>,
    first: Option<std::time::Instant>,
    last: Option<std::time::Instant>,
}

type Shared = Arc<Mutex<Received>>;

async fn receive(State(received): State<Shared>, headers: HeaderMap) -> &'static str {
    let id = headers
        .get("x-keel-delivery")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Ok(mut received) = received.lock() {
        let now = std::time::Instant::now();
        received.posts += 1;
        received.ids.insert(id);
        received.first.get_or_insert(now);
        received.last = Some(now);
    }
    "ok"
}

async fn count(State(received): State<Shared>) -> String {
    match received.lock() {
        Ok(received) => {
            let span = match (received.first, received.last) {
                (Some(first), Some(last)) => last.duration_since(first).as_millis(),
                _ => 0,
            };
            format!("{} {} {span}\n", received.posts, received.ids.len())
        }
        Err(_) => "0 0 0\n".to_owned(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut listen = "127.0.0.1:8092".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(value)) => listen = value,
            _ => anyhow::bail!("{USAGE}"),
        }
    }
    let received: Shared = Arc::default();
    let app = Router::new()
        .route("/count", get(count))
        .fallback(post(receive))
        .with_state(received);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    axum::serve(listener, app)
        .with_graceful_shutdown(keel_bench::shutdown_signal())
        .await?;
    Ok(())
}
