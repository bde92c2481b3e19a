//! Opening the benchmark database the way Keel opens it (`keel-store`'s `db` module), so the
//! baseline is not faster or slower for reasons of configuration: SQLite in WAL mode with
//! `synchronous=NORMAL`, foreign keys on, a 5 s busy timeout, at most 4 connections and
//! `BEGIN IMMEDIATE` for writes; PostgreSQL with at most 10 connections.
//!
//! Keep these numbers equal to `keel-store`'s. This module creates no tables: `keel migrate`
//! does.

use std::str::FromStr as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, PgPool, SqlitePool};

/// Keel's SQLite pool size (`SQLITE_MAX_CONNECTIONS`).
pub const SQLITE_MAX_CONNECTIONS: u32 = 4;
/// Keel's PostgreSQL pool size (`POSTGRES_MAX_CONNECTIONS`).
pub const POSTGRES_MAX_CONNECTIONS: u32 = 10;
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool on either database.
#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    /// Opens `url` (`sqlite://…` or `postgres://…`) with Keel's settings. The SQLite file must
    /// exist already.
    pub async fn connect(url: &str) -> anyhow::Result<Pool> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .with_context(|| format!("reading the SQLite URL `{url}`"))?
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT);
            let pool = SqlitePoolOptions::new()
                .max_connections(SQLITE_MAX_CONNECTIONS)
                // As Keel: a local file's connection cannot go stale.
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .with_context(|| format!("opening `{url}`"))?;
            Ok(Pool::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).context("reading the PostgreSQL URL")?;
            let pool = PgPoolOptions::new()
                .max_connections(POSTGRES_MAX_CONNECTIONS)
                // As Keel: only a connection idle for over a second is pinged when acquired.
                .test_before_acquire(false)
                .before_acquire(|connection, metadata| {
                    Box::pin(async move {
                        if metadata.idle_for >= Duration::from_secs(1) {
                            connection.ping().await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(options)
                .await
                .context("connecting to PostgreSQL")?;
            Ok(Pool::Postgres(pool))
        } else {
            bail!("unsupported database URL `{url}`: use sqlite://… or postgres://…")
        }
    }

    /// The id of the user `username` in `keel_users` (the owner of generated and created
    /// leads).
    pub async fn user_id(&self, username: &str) -> anyhow::Result<String> {
        let id: Option<String> = match self {
            Pool::Sqlite(pool) => {
                sqlx::query_scalar("SELECT id FROM keel_users WHERE username = ?")
                    .bind(username)
                    .fetch_optional(pool)
                    .await?
            }
            Pool::Postgres(pool) => {
                sqlx::query_scalar("SELECT id FROM keel_users WHERE username = $1")
                    .bind(username)
                    .fetch_optional(pool)
                    .await?
            }
        };
        id.with_context(|| {
            format!("no user `{username}` in keel_users: run `keel user add {username} …` first")
        })
    }

    pub async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}
