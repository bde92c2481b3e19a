//! The recorded metadata versions (`keel_metadata_versions`, docs/studio.md): reading them
//! back. [`crate::migrate::apply_with`] records them, under the migration lock.
//!
//! A version is a number (increasing by one), every file of the app at that version, their
//! hash (the schema's fingerprint), who applied it, when and from where. Rows recorded by a
//! Keel from before versions had numbers have no number and no files; they are not listed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::datetime::from_sqlite_text;
use crate::db::{Connection, Db};
use crate::error::StoreError;

/// The PostgreSQL notification channel a recorded version is announced on (its payload is
/// the version number), at the commit of the apply.
pub const CHANNEL: &str = "keel_metadata";

/// One recorded version, without its files.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub version: i64,
    /// The hash of its files (the schema's fingerprint).
    pub fingerprint: String,
    pub applied_at: DateTime<Utc>,
    pub applied_by: Option<String>,
    /// `cli` or `studio`.
    pub source: Option<String>,
    /// What the apply did to the database, in one line.
    pub summary: String,
}

/// The files of a version, path → text.
pub type Files = BTreeMap<String, String>;

const COLUMNS: &str = "version, fingerprint, applied_at, applied_by, source, summary";

type SqliteRow = (i64, String, String, Option<String>, Option<String>, String);
type PostgresRow = (
    i64,
    String,
    DateTime<Utc>,
    Option<String>,
    Option<String>,
    String,
);

/// A row with its `files` document.
type SqliteFilesRow = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);
type PostgresFilesRow = (
    i64,
    String,
    DateTime<Utc>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

fn from_sqlite(
    (version, fingerprint, at, applied_by, source, summary): SqliteRow,
) -> Result<Version, StoreError> {
    Ok(Version {
        version,
        fingerprint,
        applied_at: from_sqlite_text(&at)?,
        applied_by,
        source,
        summary,
    })
}

fn from_postgres(
    (version, fingerprint, applied_at, applied_by, source, summary): PostgresRow,
) -> Version {
    Version {
        version,
        fingerprint,
        applied_at,
        applied_by,
        source,
        summary,
    }
}

/// The number of the latest version, `None` before the first. Cheap: what every process
/// polls to notice a new version.
pub async fn latest_number(db: &Db) -> Result<Option<i64>, StoreError> {
    let mut pooled = db.acquire().await?;
    latest_number_on(&mut pooled.connection()).await
}

pub(crate) async fn latest_number_on(
    connection: &mut Connection<'_>,
) -> Result<Option<i64>, StoreError> {
    let sql = "SELECT MAX(version) FROM keel_metadata_versions";
    let context = "reading the latest metadata version";
    let (latest,): (Option<i64>,) = match connection {
        Connection::Sqlite(connection) => sqlx::query_as(sql)
            .fetch_one(&mut **connection)
            .await
            .map_err(StoreError::query(context))?,
        Connection::Postgres(connection) => sqlx::query_as(sql)
            .fetch_one(&mut **connection)
            .await
            .map_err(StoreError::query(context))?,
    };
    Ok(latest)
}

/// The latest version's number and fingerprint.
pub(crate) async fn latest_on(
    connection: &mut Connection<'_>,
) -> Result<Option<(i64, String)>, StoreError> {
    let sql = "SELECT version, fingerprint FROM keel_metadata_versions \
               WHERE version IS NOT NULL ORDER BY version DESC LIMIT 1";
    let context = "reading the latest metadata version";
    match connection {
        Connection::Sqlite(connection) => sqlx::query_as(sql)
            .fetch_optional(&mut **connection)
            .await
            .map_err(StoreError::query(context)),
        Connection::Postgres(connection) => sqlx::query_as(sql)
            .fetch_optional(&mut **connection)
            .await
            .map_err(StoreError::query(context)),
    }
}

/// Versions newest first: those older than `before` when given, at most `limit`.
pub async fn list(db: &Db, before: Option<i64>, limit: u32) -> Result<Vec<Version>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM keel_metadata_versions WHERE version IS NOT NULL \
         AND version < $1 ORDER BY version DESC LIMIT {limit}"
    );
    select(
        db,
        &sql,
        before.unwrap_or(i64::MAX),
        "listing metadata versions",
    )
    .await
}

/// The versions recorded after `version`, oldest first.
pub async fn after(db: &Db, version: i64) -> Result<Vec<Version>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} FROM keel_metadata_versions WHERE version > $1 ORDER BY version");
    select(db, &sql, version, "reading the newer metadata versions").await
}

/// The newest version whose files have `fingerprint`.
pub async fn with_fingerprint(db: &Db, fingerprint: &str) -> Result<Option<i64>, StoreError> {
    let sql = "SELECT MAX(version) FROM keel_metadata_versions WHERE fingerprint = $1";
    let context = "looking up a metadata version by its hash";
    let (version,): (Option<i64>,) = match db {
        Db::Sqlite(pool, _) => sqlx::query_as(sqlx::AssertSqlSafe(sqlite(sql)))
            .bind(fingerprint)
            .fetch_one(pool)
            .await
            .map_err(StoreError::query(context))?,
        Db::Postgres(pool) => sqlx::query_as(sql)
            .bind(fingerprint)
            .fetch_one(pool)
            .await
            .map_err(StoreError::query(context))?,
    };
    Ok(version)
}

/// A version with its files; `None` when there is no such version. A version recorded
/// without files (by an older Keel) has none.
pub async fn get(db: &Db, version: i64) -> Result<Option<(Version, Files)>, StoreError> {
    read_with_files(db, "version = $1", version).await
}

/// The version before `version` with its files, if any.
pub async fn previous(db: &Db, version: i64) -> Result<Option<(Version, Files)>, StoreError> {
    read_with_files(db, "version < $1", version).await
}

async fn read_with_files(
    db: &Db,
    condition: &str,
    version: i64,
) -> Result<Option<(Version, Files)>, StoreError> {
    let context = "reading a metadata version";
    let (version, files) = match db {
        Db::Sqlite(pool, _) => {
            let sql = format!(
                "SELECT {COLUMNS}, files FROM keel_metadata_versions WHERE {condition} \
                 ORDER BY version DESC LIMIT 1"
            );
            let row: Option<SqliteFilesRow> = sqlx::query_as(sqlx::AssertSqlSafe(sqlite(&sql)))
                .bind(version)
                .fetch_optional(pool)
                .await
                .map_err(StoreError::query(context))?;
            let Some((number, fingerprint, at, applied_by, source, summary, files)) = row else {
                return Ok(None);
            };
            (
                from_sqlite((number, fingerprint, at, applied_by, source, summary))?,
                files,
            )
        }
        Db::Postgres(pool) => {
            let sql = format!(
                "SELECT {COLUMNS}, files::text FROM keel_metadata_versions WHERE {condition} \
                 ORDER BY version DESC LIMIT 1"
            );
            let row: Option<PostgresFilesRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(version)
                .fetch_optional(pool)
                .await
                .map_err(StoreError::query(context))?;
            let Some((number, fingerprint, at, applied_by, source, summary, files)) = row else {
                return Ok(None);
            };
            (
                from_postgres((number, fingerprint, at, applied_by, source, summary)),
                files,
            )
        }
    };
    let files = match files {
        Some(document) => {
            serde_json::from_str(&document).map_err(|error| StoreError::UnreadableValue {
                what: format!("the files of metadata version {}: {error}", version.version),
            })?
        }
        None => Files::new(),
    };
    Ok(Some((version, files)))
}

async fn select(
    db: &Db,
    sql: &str,
    parameter: i64,
    context: &str,
) -> Result<Vec<Version>, StoreError> {
    match db {
        Db::Sqlite(pool, _) => {
            let rows: Vec<SqliteRow> = sqlx::query_as(sqlx::AssertSqlSafe(sqlite(sql)))
                .bind(parameter)
                .fetch_all(pool)
                .await
                .map_err(StoreError::query(context))?;
            rows.into_iter().map(from_sqlite).collect()
        }
        Db::Postgres(pool) => {
            let rows: Vec<PostgresRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
                .bind(parameter)
                .fetch_all(pool)
                .await
                .map_err(StoreError::query(context))?;
            Ok(rows.into_iter().map(from_postgres).collect())
        }
    }
}

/// A PostgreSQL connection listening on [`CHANNEL`]: wakes a process the moment another one
/// commits a new version.
pub struct VersionListener(sqlx::postgres::PgListener);

impl std::fmt::Debug for VersionListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VersionListener")
    }
}

/// Listens for new versions: `None` on SQLite, which has no notifications (poll instead).
pub async fn listen(db: &Db) -> Result<Option<VersionListener>, StoreError> {
    let Db::Postgres(pool) = db else {
        return Ok(None);
    };
    let context = "listening for new metadata versions";
    let mut listener = sqlx::postgres::PgListener::connect_with(pool)
        .await
        .map_err(StoreError::query(context))?;
    listener
        .listen(CHANNEL)
        .await
        .map_err(StoreError::query(context))?;
    Ok(Some(VersionListener(listener)))
}

impl VersionListener {
    /// Waits for the next announced version → its number (when the payload is one).
    pub async fn next(&mut self) -> Result<Option<i64>, StoreError> {
        let notification = self
            .0
            .recv()
            .await
            .map_err(StoreError::query("waiting for a new metadata version"))?;
        Ok(notification.payload().parse().ok())
    }
}

/// The statement with SQLite's numbered parameters (`?1`) for PostgreSQL's (`$1`).
fn sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}
