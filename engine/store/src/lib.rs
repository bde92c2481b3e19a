//! `keel-store`: everything Keel says to a database, for SQLite and PostgreSQL.
//!
//! It connects ([`Db`]), knows the SQL of each [`Dialect`], lays out one table per object plus
//! Keel's `keel_` system tables, introspects the live database and plans and applies
//! migrations ([`migrate`]), keeps the small user and department registry the CLI needs
//! ([`users`]), the outbox and the in-app inbox ([`outbox`]), and the recorded metadata
//! versions ([`versions`]). It is the only crate that names `sqlx`; SQL text is built only from
//! validated identifiers, and every value is a bound parameter.
//!
//! Deliberately not here: permissions, validation, scripts and triggers (the runtime's
//! write path decides *whether* to write; the store only knows *how*), HTTP, and any
//! remembered picture of the schema (migrations always introspect).

pub mod convert;
pub mod datetime;
mod db;
mod error;
mod health;
pub mod introspect;
pub mod layout;
pub mod migrate;
pub mod naming;
pub mod outbox;
pub mod pools;
pub mod processes;
pub mod records;
pub mod reports;
pub mod schedule;
pub mod sessions;
pub mod system_tables;
pub mod users;
pub mod versions;

pub use db::{Db, Dialect, redact_password};
pub use error::StoreError;
