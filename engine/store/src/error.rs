//! The one error type of `keel-store`.
//!
//! Every variant names its cause in words a person running `keel` can act on. Database URLs
//! appear only with their password replaced by `***`. This module does not decide HTTP
//! statuses or exit codes: the crates above map these errors.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database URL `{url}`: use sqlite://path/to/keel.db, sqlite:///abs/path/keel.db or postgres://user:password@host/database"
    )]
    UnsupportedUrl { url: String },

    #[error("invalid database URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },

    #[error("cannot create the directory {path} for the SQLite database: {source}")]
    CreateDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("database error while {context}: {source}")]
    Query {
        context: String,
        #[source]
        source: sqlx::Error,
    },

    #[error(
        "the metadata needs {} destructive change(s); review them and rerun with --allow-destructive:\n{}",
        steps.len(),
        steps.join("\n")
    )]
    DestructiveChangesRefused {
        /// Each destructive step, rendered as in a plan.
        steps: Vec<String>,
    },

    /// A metadata apply against a base version that is no longer the latest.
    #[error(
        "version {base} is not the latest metadata version ({}): someone applied a change since; start again from the latest",
        latest.map_or_else(|| "there is none".to_owned(), |latest| format!("that is {latest}"))
    )]
    StaleBase { base: i64, latest: Option<i64> },

    /// The work a metadata apply does before it commits failed; nothing was changed.
    #[error("the metadata apply was rolled back: {reason}")]
    Aborted { reason: String },

    #[error("the database holds a value Keel cannot read: {what}")]
    UnreadableValue { what: String },

    #[error("cannot encode {what} as JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("a user named `{username}` already exists")]
    DuplicateUsername { username: String },

    #[error("unknown manager `{username}`: no user has that name")]
    UnknownManager { username: String },

    #[error("unknown department `{name}`")]
    UnknownDepartment { name: String },

    #[error("{}", unique_violation_message(table, column.as_deref()))]
    UniqueViolation {
        table: String,
        /// The column whose unique constraint failed, when the database says which.
        column: Option<String>,
    },

    #[error("`{table}` has no column `{column}`")]
    UnknownColumn { table: String, column: String },

    /// A record query or write the store cannot express: a caller's mistake (a cursor of
    /// the wrong length, an ordering comparison of lists, a value finer than its column).
    #[error("cannot run this on `{table}`: {reason}")]
    InvalidRecordQuery { table: String, reason: String },
}

impl StoreError {
    /// Wraps a database error with what we were doing when it happened.
    pub(crate) fn query(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
        let context = context.into();
        move |source| StoreError::Query { context, source }
    }
}

/// The message of [`StoreError::UniqueViolation`].
fn unique_violation_message(table: &str, column: Option<&str>) -> String {
    match column {
        Some(column) => format!("another `{table}` record already has this `{column}`"),
        None => format!("another `{table}` record already has one of these unique values"),
    }
}
