//! `keel-runtime`: what Keel does with records, people and time, independent of how a request
//! arrived (HTTP, CLI, scheduler).
//!
//! It holds the record write and read path (`records::Records`, with permissions), sign-in
//! and sessions (`auth`), CSV import, the accounts (password hashing, the first `admin`,
//! adding users), the demo loader, the clock, and the deliveries that leave Keel (`deliver`:
//! webhooks, chat bots, email and message templates), event rules and the transactional
//! outbox with its worker (`records::effects`, `outbox`), and the in-app inbox
//! (`notifications`), lead pools (`pools`), the scheduler (`scheduler`), and live metadata
//! (`metadata`: the generations a server swaps between, the studio's validate and apply). It serves no HTTP (that is `keel-web`): its only HTTP is the
//! client side of outgoing deliveries. It never writes SQL itself: storage goes through
//! `keel-store`.

pub mod accounts;
pub mod actor;
pub mod auth;
mod cache;
pub mod clock;
pub mod coerce;
pub mod csv_format;
pub mod deliver;
pub mod demo;
pub mod import;
pub mod metadata;
pub mod notifications;
pub mod outbox;
pub mod pools;
pub mod processes;
pub mod records;
pub mod reports;
pub mod scheduler;

/// Errors of the runtime, each naming its cause.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] keel_store::StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
    #[error("cannot read {path}: {message}")]
    Seed { path: String, message: String },
    #[error(transparent)]
    Record(#[from] records::RecordError),
}
