//! `keel-bench`: the tools of the load benchmark (`bench/run.sh`, results in BENCHMARKS.md).
//!
//! The binaries share this library: `keel-bench-gen` writes N deterministic leads straight
//! into a database that `keel migrate --apply` has created from `bench/app`, and
//! `keel-bench-baseline` serves the same three calls as Keel (get by id, a filtered list of
//! 50, create with validation and audit) as bare axum handlers running the same SQL on the
//! same database, so Keel's overhead can be read as a ratio measured in one run;
//! `keel-bench-sink` receives webhook deliveries for the outbox drain benchmark
//! (`bench/workflow.sh`).
//!
//! Deliberately not here: any engine crate. The baseline must stay a baseline, so it
//! depends on Keel only through the table layout and the SQL text, both written out in
//! [`sql`]; if Keel's layout or SQL changes, `sql` is where the benchmark follows it. This
//! crate is a benchmark harness, not part of the product, and it is the one place besides
//! `keel-store` that names `sqlx`.

pub mod args;
pub mod data;
pub mod database;
pub mod sql;

/// Waits for Ctrl-C or SIGTERM: how the bench servers learn to stop.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupt => {},
            () = terminate => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
