//! Keel's black-box tests: one integration-test binary (fast to link on two cores) that drives
//! the real `keel` binary and the real HTTP API, on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod check;
mod deliveries;
mod duplicates;
mod import;
mod metadata;
mod migrate;
mod on_delete;
mod openapi;
mod pages;
mod permissions;
mod pools;
mod processes;
mod reports;
mod scheduler;
mod scheduler_processes;
mod schemathesis;
mod serve;
mod store_records;
mod strict_input;
mod support;
mod templates;
mod workflow;
