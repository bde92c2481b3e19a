//! Login sessions (`keel_sessions`): one row per signed-in client, keyed by the SHA-256 of
//! its token.
//!
//! The token itself never reaches the database, so a leaked backup cannot be replayed.
//! Callers pass the hash and every instant (time is a parameter). This module does not mint
//! tokens, hash them, decide lifetimes or check passwords: that is the runtime's `auth`.

use chrono::{DateTime, Utc};

use crate::datetime::{from_sqlite_text, to_sqlite_text};
use crate::db::Db;
use crate::error::StoreError;

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The hex SHA-256 of the token.
    pub id: String,
    pub user_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// Stores a new session.
pub async fn insert(db: &Db, session: &SessionRow) -> Result<(), StoreError> {
    let context = || "starting a session".to_owned();
    match db {
        Db::Sqlite(pool, _) => sqlx::query(
            "INSERT INTO keel_sessions (id, user_id, created_at, expires_at, last_seen_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&session.id)
        .bind(&session.user_id)
        .bind(to_sqlite_text(session.created_at))
        .bind(to_sqlite_text(session.expires_at))
        .bind(to_sqlite_text(session.last_seen_at))
        .execute(pool)
        .await
        .map(drop),
        Db::Postgres(pool) => sqlx::query(
            "INSERT INTO keel_sessions (id, user_id, created_at, expires_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.id)
        .bind(&session.user_id)
        .bind(session.created_at)
        .bind(session.expires_at)
        .bind(session.last_seen_at)
        .execute(pool)
        .await
        .map(drop),
    }
    .map_err(StoreError::query(context()))
}

/// The session whose token hashes to `id`, expired or not.
pub async fn find(db: &Db, id: &str) -> Result<Option<SessionRow>, StoreError> {
    let context = || "looking up a session".to_owned();
    match db {
        Db::Sqlite(pool, _) => {
            let row: Option<(String, String, String, String, String)> = sqlx::query_as(
                "SELECT id, user_id, created_at, expires_at, last_seen_at \
                 FROM keel_sessions WHERE id = ?1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::query(context()))?;
            row.map(|(id, user_id, created_at, expires_at, last_seen_at)| {
                Ok(SessionRow {
                    id,
                    user_id,
                    created_at: from_sqlite_text(&created_at)?,
                    expires_at: from_sqlite_text(&expires_at)?,
                    last_seen_at: from_sqlite_text(&last_seen_at)?,
                })
            })
            .transpose()
        }
        Db::Postgres(pool) => {
            type Row = (String, String, DateTime<Utc>, DateTime<Utc>, DateTime<Utc>);
            let row: Option<Row> = sqlx::query_as(
                "SELECT id, user_id, created_at, expires_at, last_seen_at \
                 FROM keel_sessions WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::query(context()))?;
            Ok(row.map(
                |(id, user_id, created_at, expires_at, last_seen_at)| SessionRow {
                    id,
                    user_id,
                    created_at,
                    expires_at,
                    last_seen_at,
                },
            ))
        }
    }
}

/// Records that the session was used at `seen_at` and moves its expiry to `expires_at`
/// (sliding expiry).
pub async fn touch(
    db: &Db,
    id: &str,
    seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let context = || "extending a session".to_owned();
    match db {
        Db::Sqlite(pool, _) => {
            sqlx::query("UPDATE keel_sessions SET last_seen_at = ?2, expires_at = ?3 WHERE id = ?1")
                .bind(id)
                .bind(to_sqlite_text(seen_at))
                .bind(to_sqlite_text(expires_at))
                .execute(pool)
                .await
                .map(drop)
        }
        Db::Postgres(pool) => {
            sqlx::query("UPDATE keel_sessions SET last_seen_at = $2, expires_at = $3 WHERE id = $1")
                .bind(id)
                .bind(seen_at)
                .bind(expires_at)
                .execute(pool)
                .await
                .map(drop)
        }
    }
    .map_err(StoreError::query(context()))
}

/// Ends one session. Ending a session that does not exist is not an error.
pub async fn delete(db: &Db, id: &str) -> Result<(), StoreError> {
    let context = || "ending a session".to_owned();
    match db {
        Db::Sqlite(pool, _) => sqlx::query("DELETE FROM keel_sessions WHERE id = ?1")
            .bind(id)
            .execute(pool)
            .await
            .map(drop),
        Db::Postgres(pool) => sqlx::query("DELETE FROM keel_sessions WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(drop),
    }
    .map_err(StoreError::query(context()))
}

/// Ends every session of one user (after a password change or a deactivation); returns
/// how many there were.
pub async fn delete_for_user(db: &Db, user_id: &str) -> Result<u64, StoreError> {
    let context = || "ending a user's sessions".to_owned();
    match db {
        Db::Sqlite(pool, _) => sqlx::query("DELETE FROM keel_sessions WHERE user_id = ?1")
            .bind(user_id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()),
        Db::Postgres(pool) => sqlx::query("DELETE FROM keel_sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()),
    }
    .map_err(StoreError::query(context()))
}

/// Removes sessions that expired before `now`; returns how many.
pub async fn delete_expired(db: &Db, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let context = || "removing expired sessions".to_owned();
    match db {
        Db::Sqlite(pool, _) => sqlx::query("DELETE FROM keel_sessions WHERE expires_at <= ?1")
            .bind(to_sqlite_text(now))
            .execute(pool)
            .await
            .map(|done| done.rows_affected()),
        Db::Postgres(pool) => sqlx::query("DELETE FROM keel_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()),
    }
    .map_err(StoreError::query(context()))
}
