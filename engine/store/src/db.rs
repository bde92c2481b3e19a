//! Connecting to the database: the [`Db`] handle, its [`Dialect`], and the one way to start a
//! write transaction.
//!
//! SQLite is opened in WAL mode with `synchronous=NORMAL`, foreign keys on, temporary tables
//! in memory, a 32 MiB page cache and a 256 MiB memory map per connection and a 5 s busy
//! timeout, and every write transaction starts with `BEGIN IMMEDIATE`: a plain `BEGIN` takes
//! its write lock only at the first write, and two such transactions that both read first
//! then deadlock into `SQLITE_BUSY` (measured: 312 of 400 concurrent read-then-write
//! transactions lost). Within one process, SQLite write transactions also queue on a
//! first-come, first-served gate per database file before they take a connection: SQLite
//! admits one writer at a time anyway, and a writer that loses the race for its lock sleeps
//! in SQLite's busy handler (1, 2, 5 … 100 ms), so many concurrent writers spent most of their
//! time asleep (bench/pools.sh: 64 users claiming at once). Writers in other processes still
//! meet at SQLite's lock and its busy timeout. The writer whose turn it is takes the one
//! connection kept for this process's write transactions rather than one of the readers':
//! SQLite empties a connection's page cache when it starts a transaction after another
//! connection has committed, so a writer on whichever connection was free started cold and
//! read its pages again, while the writer's own connection keeps them from one write to the
//! next; and a writer never waits, holding the gate, for a connection busy with reads.
//! The writer connection leaves WAL checkpoints to a background task, up to a backstop (see
//! `Checkpoints`).
//! PostgreSQL uses a plain pool.
//!
//! This module deliberately does not run migrations or know any table: see `migrate`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{
    AssertSqlSafe, Connection as _, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection,
    SqlitePool,
};

use crate::error::StoreError;

/// How long a SQLite connection waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite serializes writers anyway; a few connections serve concurrent readers.
const SQLITE_MAX_CONNECTIONS: u32 = 4;
const POSTGRES_MAX_CONNECTIONS: u32 = 10;
/// A PostgreSQL connection idle for this long is pinged before it is handed out.
const POSTGRES_PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// A connection pool to one Keel database. A SQLite database has a pool for reads and
/// statements outside a transaction, and its [`SqliteWriter`].
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool, SqliteWriter),
    Postgres(PgPool),
}

/// The one connection that a SQLite [`Db`]'s write transactions take, in turn at the write
/// gate (see the module documentation). It is opened at the first write and kept, outside
/// any pool: a pool would also ping it on every return, a round trip to its worker thread
/// inside the serial section.
#[derive(Debug, Clone)]
pub struct SqliteWriter {
    options: Arc<SqliteConnectOptions>,
    connection: Arc<tokio::sync::Mutex<Option<SqliteConnection>>>,
    checkpoints: Arc<Checkpoints>,
}

/// The WAL checkpoints of a SQLite [`Db`]. The writer connection does not checkpoint when its
/// commit crosses SQLite's default 1,000 pages: SQLite would then copy the log into the
/// database file and sync both inside that commit, while every other writer waits. After a
/// commit, a passive checkpoint runs instead on a read connection, in the background, unless
/// one is running or one started less than [`CHECKPOINT_EVERY`] ago.
///
/// The writer still checkpoints in its own commit once the log holds
/// [`WRITER_AUTOCHECKPOINT_PAGES`] (`wal_autocheckpoint`). SQLite starts the log again from its
/// beginning only when a write begins after a checkpoint has copied all of it, and under
/// writes that never pause (a sweep of 100k records) a background checkpoint is always a
/// commit behind: the log grew to 660 MB in one sweep. The backstop's checkpoint copies only
/// what the background ones have not, and the next write starts the log again.
#[derive(Debug)]
struct Checkpoints {
    pool: SqlitePool,
    state: Mutex<CheckpointState>,
}

#[derive(Debug, Default)]
struct CheckpointState {
    running: bool,
    last_started: Option<Instant>,
}

/// The log size, in pages, at which the writer connection checkpoints in its own commit.
const WRITER_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// The least time between two background checkpoints of one database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

impl Checkpoints {
    /// Starts a passive checkpoint in the background if one is due.
    fn after_commit(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let now = Instant::now();
        {
            let mut state = self.state();
            if state.running
                || state
                    .last_started
                    .is_some_and(|last| now.duration_since(last) < CHECKPOINT_EVERY)
            {
                return;
            }
            *state = CheckpointState {
                running: true,
                last_started: Some(now),
            };
        }
        let checkpoints = Arc::clone(self);
        runtime.spawn(async move {
            // A checkpoint that fails (the database closing) is left to the next commit, or
            // to SQLite when the last connection closes.
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&checkpoints.pool)
                .await
            {
                tracing::debug!(%error, "a background WAL checkpoint failed");
            }
            checkpoints.state().running = false;
        });
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CheckpointState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The SQL dialect of a database; matched wherever SQLite and PostgreSQL differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Db {
    /// Opens a pool for `url`: `sqlite://relative/path.db`, `sqlite:///absolute/path.db` or
    /// `postgres://user:password@host:port/database`.
    ///
    /// A missing SQLite file is created, together with its parent directories.
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        if url.starts_with("sqlite:") {
            connect_sqlite(url).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            connect_postgres(url).await.map(Db::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl {
                url: redact_password(url),
            })
        }
    }

    /// The file a `sqlite:` URL names; `None` for PostgreSQL and in-memory databases. Lets
    /// a command refuse a database that does not exist before [`Db::connect`] creates it.
    pub fn sqlite_file(url: &str) -> Result<Option<std::path::PathBuf>, StoreError> {
        if !url.starts_with("sqlite:") {
            return Ok(None);
        }
        let options =
            SqliteConnectOptions::from_str(url).map_err(|error| StoreError::InvalidUrl {
                url: url.to_owned(),
                reason: error.to_string(),
            })?;
        let file = options.get_filename();
        if file.as_os_str().is_empty() || file == Path::new(":memory:") {
            return Ok(None);
        }
        Ok(Some(file.to_path_buf()))
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(..) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Closes every connection; waits for connections in use to be returned.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool, writer) => {
                // After the write in progress, if any.
                if let Some(connection) = writer.connection.lock().await.take() {
                    connection.close().await.ok();
                }
                pool.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// Starts a write transaction: `BEGIN IMMEDIATE` on SQLite, `BEGIN` on PostgreSQL.
    pub(crate) async fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        self.write_turn().await?.begin().await
    }

    /// This process's turn to write, before the transaction begins: on SQLite, the writer
    /// connection at the write gate (see the module documentation), where a read sees every
    /// write committed before it and, whatever it finds, needs no transaction to end; on
    /// PostgreSQL, where writers do not queue, nothing is held until the transaction begins.
    pub(crate) async fn write_turn(&self) -> Result<WriteTurn, StoreError> {
        match self {
            Db::Sqlite(_, writer) => writer.turn().await.map(WriteTurn::Sqlite),
            Db::Postgres(pool) => Ok(WriteTurn::Postgres(pool.clone())),
        }
    }

    /// A pooled connection for reads outside a transaction.
    pub(crate) async fn acquire(&self) -> Result<PooledConnection, StoreError> {
        match self {
            Db::Sqlite(pool, _) => pool
                .acquire()
                .await
                .map(PooledConnection::Sqlite)
                .map_err(StoreError::query("acquiring a database connection")),
            Db::Postgres(pool) => pool
                .acquire()
                .await
                .map(PooledConnection::Postgres)
                .map_err(StoreError::query("acquiring a database connection")),
        }
    }
}

/// The write gate of the SQLite file `options` open (see the module documentation): one per
/// file for the life of the process, shared by every [`Db`] on it.
fn sqlite_write_gate(options: &SqliteConnectOptions) -> Arc<tokio::sync::Mutex<()>> {
    static GATES: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Mutex::default);
    let file = options.get_filename().to_path_buf();
    let mut gates = GATES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Arc::clone(gates.entry(file).or_default())
}

impl SqliteWriter {
    fn new(options: SqliteConnectOptions, pool: SqlitePool) -> SqliteWriter {
        SqliteWriter {
            options: Arc::new(options.pragma(
                "wal_autocheckpoint",
                WRITER_AUTOCHECKPOINT_PAGES.to_string(),
            )),
            connection: Arc::default(),
            checkpoints: Arc::new(Checkpoints {
                pool,
                state: Mutex::default(),
            }),
        }
    }

    /// Waits for this process's turn to write to the file, and takes the writer connection
    /// (opening it if need be).
    async fn turn(&self) -> Result<SqliteTurn, StoreError> {
        // Waits as long as SQLite's own busy timeout would, and fails the same way.
        let turn = tokio::time::timeout(
            SQLITE_BUSY_TIMEOUT,
            sqlite_write_gate(&self.options).lock_owned(),
        )
        .await
        .map_err(|_| StoreError::Query {
            context: "waiting for this process's other writers".to_owned(),
            source: sqlx::Error::PoolTimedOut,
        })?;
        let mut slot = Arc::clone(&self.connection).lock_owned().await;
        let connection = match slot.take() {
            Some(connection) => connection,
            None => SqliteConnection::connect_with(&self.options)
                .await
                .map_err(StoreError::query("opening the writer connection"))?,
        };
        Ok(SqliteTurn(Held {
            connection: Some(connection),
            slot,
            _turn: turn,
            checkpoints: Arc::clone(&self.checkpoints),
        }))
    }
}

/// The writer connection and this process's turn at the write gate, held until dropped; the
/// connection then goes back for the next writer.
struct Held {
    /// `None` only once a failed rollback has closed it.
    connection: Option<SqliteConnection>,
    /// Where the connection goes back; `None` while it is held.
    slot: tokio::sync::OwnedMutexGuard<Option<SqliteConnection>>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
    checkpoints: Arc<Checkpoints>,
}

impl Held {
    #[expect(
        clippy::expect_used,
        reason = "only the rollback of a dropped write takes the connection, and nothing uses it after"
    )]
    fn connection(&mut self) -> &mut SqliteConnection {
        self.connection.as_mut().expect("a held writer connection")
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            *self.slot = Some(connection);
        }
    }
}

/// This process's turn to write to a SQLite file, on the writer connection, before any
/// transaction: reads here see every write this process has committed, and no other writer
/// of this process can change anything until the turn is dropped or begins its transaction.
pub(crate) struct SqliteTurn(Held);

impl SqliteTurn {
    pub(crate) fn connection(&mut self) -> Connection<'_> {
        Connection::Sqlite(self.0.connection())
    }

    /// Starts `BEGIN IMMEDIATE`. On failure the turn ends; the connection is kept.
    async fn begin(mut self) -> Result<SqliteWrite, StoreError> {
        sqlx::raw_sql(AssertSqlSafe("BEGIN IMMEDIATE"))
            .execute(self.0.connection())
            .await
            .map_err(StoreError::query("starting a write transaction"))?;
        Ok(SqliteWrite {
            held: Some(self.0),
            open: true,
        })
    }
}

/// A write transaction on a [`SqliteWriter`]'s connection: it holds the connection and its
/// turn at the write gate until it ends, then puts the connection back. Dropped while open,
/// it is rolled back before the next writer's turn; a connection whose rollback failed is
/// closed (which rolls back too) and the next write opens another.
pub(crate) struct SqliteWrite {
    /// `Some` until dropped.
    held: Option<Held>,
    open: bool,
}

impl SqliteWrite {
    #[expect(
        clippy::expect_used,
        reason = "`held` is only taken when the write is dropped"
    )]
    fn connection(&mut self) -> &mut SqliteConnection {
        self.held.as_mut().expect("an undropped write").connection()
    }

    async fn commit(mut self) -> Result<(), StoreError> {
        let committed = sqlx::raw_sql(AssertSqlSafe("COMMIT"))
            .execute(self.connection())
            .await;
        // A failed COMMIT leaves the transaction open: dropped below, it is rolled back.
        self.open = committed.is_err();
        if let (Ok(_), Some(held)) = (&committed, &self.held) {
            held.checkpoints.after_commit();
        }
        committed
            .map(drop)
            .map_err(StoreError::query("committing a transaction"))
    }
}

impl Drop for SqliteWrite {
    fn drop(&mut self) {
        let Some(mut held) = self.held.take() else {
            return;
        };
        if !self.open {
            return;
        }
        // Without a runtime the connection is closed, which rolls back; the next write
        // opens another.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            held.connection.take();
            return;
        };
        runtime.spawn(async move {
            if let Err(error) = sqlx::raw_sql(AssertSqlSafe("ROLLBACK"))
                .execute(held.connection())
                .await
            {
                tracing::warn!(%error, "rolling back on the SQLite writer connection failed; it is closed");
                held.connection.take();
            }
        });
    }
}

/// This process's turn to write, before its transaction begins ([`Db::write_turn`]): on
/// SQLite the writer connection at the write gate; on PostgreSQL nothing is held.
pub(crate) enum WriteTurn {
    Sqlite(SqliteTurn),
    Postgres(PgPool),
}

impl WriteTurn {
    /// Begins the write transaction (`BEGIN IMMEDIATE` on SQLite, `BEGIN` on PostgreSQL).
    pub(crate) async fn begin(self) -> Result<WriteTransaction, StoreError> {
        match self {
            WriteTurn::Sqlite(turn) => turn.begin().await.map(WriteTransaction::Sqlite),
            WriteTurn::Postgres(pool) => pool
                .begin()
                .await
                .map(WriteTransaction::Postgres)
                .map_err(StoreError::query("starting a write transaction")),
        }
    }
}

/// An open write transaction of either dialect. A SQLite one holds the writer connection and
/// its turn at the write gate until it ends (committed, or rolled back when dropped).
pub(crate) enum WriteTransaction {
    Sqlite(SqliteWrite),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl WriteTransaction {
    pub(crate) fn connection(&mut self) -> Connection<'_> {
        match self {
            WriteTransaction::Sqlite(write) => Connection::Sqlite(write.connection()),
            WriteTransaction::Postgres(transaction) => Connection::Postgres(transaction),
        }
    }

    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            WriteTransaction::Sqlite(write) => write.commit().await,
            WriteTransaction::Postgres(transaction) => transaction
                .commit()
                .await
                .map_err(StoreError::query("committing a transaction")),
        }
    }
}

/// A connection taken from the pool, returned to it on drop.
pub(crate) enum PooledConnection {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl PooledConnection {
    pub(crate) fn connection(&mut self) -> Connection<'_> {
        match self {
            PooledConnection::Sqlite(connection) => Connection::Sqlite(connection),
            PooledConnection::Postgres(connection) => Connection::Postgres(connection),
        }
    }
}

/// A borrowed connection of either dialect (plain, pooled or inside a transaction), for
/// code that runs the same statements on both and differs only in the SQL text.
pub(crate) enum Connection<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl Connection<'_> {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Connection::Sqlite(_) => Dialect::Sqlite,
            Connection::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs one statement without parameters. The SQL is built only from validated
    /// identifiers and constants (DESIGN rule 4).
    pub(crate) async fn execute(&mut self, sql: &str) -> Result<u64, StoreError> {
        let statement = AssertSqlSafe(sql.to_owned());
        let result = match self {
            Connection::Sqlite(connection) => sqlx::raw_sql(statement)
                .execute(&mut **connection)
                .await
                .map(|done| done.rows_affected()),
            Connection::Postgres(connection) => sqlx::raw_sql(statement)
                .execute(&mut **connection)
                .await
                .map(|done| done.rows_affected()),
        };
        result.map_err(StoreError::query(format!("running `{sql}`")))
    }

    /// Runs a query returning one integer (a `count(*)`), without parameters.
    pub(crate) async fn count(&mut self, sql: &str) -> Result<i64, StoreError> {
        let statement = AssertSqlSafe(sql.to_owned());
        let result = match self {
            Connection::Sqlite(connection) => {
                sqlx::query_scalar::<_, i64>(statement)
                    .fetch_one(&mut **connection)
                    .await
            }
            Connection::Postgres(connection) => {
                sqlx::query_scalar::<_, i64>(statement)
                    .fetch_one(&mut **connection)
                    .await
            }
        };
        result.map_err(StoreError::query(format!("counting rows with `{sql}`")))
    }
}

async fn connect_sqlite(url: &str) -> Result<Db, StoreError> {
    let options = SqliteConnectOptions::from_str(url).map_err(|error| StoreError::InvalidUrl {
        url: url.to_owned(),
        reason: error.to_string(),
    })?;
    if let Some(parent) = Path::new(options.get_filename()).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDirectory {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let options = options
        .create_if_missing(true)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        // Temporary tables (the ephemeral table of an `IN (subquery)`, as the `subordinates`
        // and `department` scopes use, or a sort) stay in memory: on disk they cost a file
        // per query, measured at +140 µs on a GET by id.
        .pragma("temp_store", "memory")
        // Each connection keeps up to 32 MiB of pages (SQLite's default is 2 MiB) and reads
        // the file through a memory map of up to 256 MiB rather than a copy per page read: a
        // sweep or report over a large table otherwise spends most of its time in the
        // kernel re-reading pages (bench/pools.sh, the auto-return sweep at 1M leads).
        .pragma("cache_size", "-32768")
        .pragma("mmap_size", "268435456");
    let connect_error = |source| StoreError::Connect {
        url: url.to_owned(),
        source,
    };
    switch_to_wal(&options).await.map_err(connect_error)?;
    // A connection to a local file cannot go stale; testing it on every acquire is a round
    // trip to its worker thread per query for nothing.
    let pool = SqlitePoolOptions::new()
        .max_connections(SQLITE_MAX_CONNECTIONS)
        .test_before_acquire(false)
        .connect_with(options.clone())
        .await
        .map_err(connect_error)?;
    Ok(Db::Sqlite(pool.clone(), SqliteWriter::new(options, pool)))
}

/// Puts the database file in WAL mode, once; the mode is stored in the file.
///
/// Switching needs an exclusive lock that SQLite's busy timeout does not wait for, so
/// several processes opening a new database at once would see "database is locked"; we
/// retry until the busy timeout has passed instead.
async fn switch_to_wal(options: &SqliteConnectOptions) -> Result<(), sqlx::Error> {
    let deadline = Instant::now() + SQLITE_BUSY_TIMEOUT;
    loop {
        let attempt = async {
            let mut connection = SqliteConnection::connect_with(options).await?;
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
                .fetch_one(&mut connection)
                .await?;
            connection.close().await?;
            Ok::<_, sqlx::Error>(mode)
        }
        .await;
        match attempt {
            Ok(mode) => {
                // In-memory databases report "memory"; nothing else to do for them.
                if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
                    tracing::warn!(journal_mode = %mode, "SQLite did not switch to WAL");
                }
                return Ok(());
            }
            Err(error) if is_sqlite_busy(&error) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED, including their extended codes.
fn is_sqlite_busy(error: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i64 = 5;
    const SQLITE_LOCKED: i64 = 6;
    match error {
        sqlx::Error::Database(error) => error
            .code()
            .and_then(|code| code.parse::<i64>().ok())
            .is_some_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED)),
        _ => false,
    }
}

async fn connect_postgres(url: &str) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|error| StoreError::InvalidUrl {
        url: redact_password(url),
        reason: error.to_string(),
    })?;
    PgPoolOptions::new()
        .max_connections(POSTGRES_MAX_CONNECTIONS)
        // sqlx pings every connection it hands out by default: a round trip per acquire,
        // two of a claim's six. It also pings each connection it takes back (and closes one
        // that fails), so a connection idle for less than a second was just shown alive: only
        // one idle for longer is pinged when handed out (as HikariCP does).
        .test_before_acquire(false)
        .before_acquire(|connection, metadata| {
            Box::pin(async move {
                if metadata.idle_for >= POSTGRES_PING_AFTER_IDLE {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect {
            url: redact_password(url),
            source,
        })
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|index| index + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |index| scheme_end + index);
    let authority = &url[scheme_end..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    match authority[..at].split_once(':') {
        Some((user, _password)) => format!(
            "{}{user}:***{}",
            &url[..scheme_end],
            &url[scheme_end + at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SQLite database in the file `name` of `dir`.
    async fn sqlite_in(dir: &tempfile::TempDir, name: &str) -> Db {
        Db::connect(&format!("sqlite://{}", dir.path().join(name).display()))
            .await
            .unwrap()
    }

    /// Runs `sql` in one write transaction of its own, committed.
    async fn write_committed(db: &Db, sql: &str) {
        let mut write = db.begin_write().await.unwrap();
        write.connection().execute(sql).await.unwrap();
        write.commit().await.unwrap();
    }

    #[test]
    fn passwords_never_appear_in_redacted_urls() {
        assert_eq!(
            redact_password("postgres://keel:s3cret@db:5432/crm"),
            "postgres://keel:***@db:5432/crm"
        );
        assert_eq!(
            redact_password("postgres://keel@db/crm"),
            "postgres://keel@db/crm"
        );
        assert_eq!(
            redact_password("sqlite:///tmp/keel.db"),
            "sqlite:///tmp/keel.db"
        );
        assert_eq!(
            redact_password("postgres://u:p@ss@h/d"),
            "postgres://u:***@h/d"
        );
    }

    #[tokio::test]
    async fn unsupported_schemes_are_named_in_the_error() {
        let error = Db::connect("mysql://u:pw@h/d").await.unwrap_err();
        let message = error.to_string();
        assert!(message.contains("mysql://u:***@h/d"), "{message}");
        assert!(!message.contains("pw"), "{message}");
    }

    /// A PostgreSQL connection is pinged before it is handed out only after a second idle;
    /// one that the server ended while it sat idle is then replaced, and the query runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_postgres_connection_ended_while_idle_is_replaced_before_use() {
        let Some(test_db) = keel_testkit::TestDb::new(keel_testkit::Backend::Postgres).await else {
            return;
        };
        let db = Db::connect(&test_db.url).await.unwrap();
        let Db::Postgres(pool) = &db else {
            unreachable!("a PostgreSQL URL")
        };
        let backend = |pool: PgPool| async move {
            let mut connection = pool.acquire().await.unwrap();
            sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
                .fetch_one(&mut *connection)
                .await
                .unwrap()
        };
        let first = backend(pool.clone()).await;
        // Every connection the pool holds now is `first`'s: end them all from outside.
        let mut outside = PgConnection::connect(&test_db.url).await.unwrap();
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_all(&mut outside)
        .await
        .unwrap();
        assert!(ended.contains(&true), "{ended:?}");
        tokio::time::sleep(POSTGRES_PING_AFTER_IDLE + Duration::from_millis(200)).await;
        let second = backend(pool.clone()).await;
        assert_ne!(first, second);
        outside.close().await.unwrap();
        db.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_processes_may_open_a_new_sqlite_file_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/keel.db", dir.path().display());
        let opening: Vec<_> = (0..8)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { Db::connect(&url).await })
            })
            .collect();
        for task in opening {
            task.await.unwrap().unwrap().close().await;
        }
    }

    #[tokio::test]
    async fn sqlite_files_and_their_directories_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/keel.db");
        let db = Db::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        assert_eq!(db.dialect(), Dialect::Sqlite);
        let mut transaction = db.begin_write().await.unwrap();
        let journal: String = match &mut transaction {
            WriteTransaction::Sqlite(write) => sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(write.connection())
                .await
                .unwrap(),
            WriteTransaction::Postgres(_) => unreachable!(),
        };
        transaction.commit().await.unwrap();
        assert_eq!(journal, "wal");
        assert!(path.exists());
        db.close().await;
    }

    #[tokio::test]
    async fn sqlite_writers_waiting_for_their_turn_hold_no_connection_so_reads_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_in(&dir, "gate.db").await;
        let first = db.begin_write().await.unwrap();
        // More waiting writers than the pool has connections: without the gate each would
        // hold a connection in SQLite's busy handler, and the read below would wait for one
        // until their busy timeout ran out.
        let waiting: Vec<_> = (0..SQLITE_MAX_CONNECTIONS + 2)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move { db.begin_write().await.map(drop) })
            })
            .collect();
        tokio::task::yield_now().await;
        let read = tokio::time::timeout(SQLITE_BUSY_TIMEOUT / 2, db.acquire()).await;
        assert!(
            read.is_ok_and(|connection| connection.is_ok()),
            "a read connection was free"
        );
        first.commit().await.unwrap();
        for writer in waiting {
            writer.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn a_sqlite_write_dropped_unfinished_is_rolled_back_before_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_in(&dir, "rollback.db").await;
        write_committed(&db, "CREATE TABLE t (n INTEGER)").await;
        let mut write = db.begin_write().await.unwrap();
        write
            .connection()
            .execute("INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        drop(write);
        let mut write = db.begin_write().await.unwrap();
        let count = write
            .connection()
            .count("SELECT count(*) FROM t")
            .await
            .unwrap();
        assert_eq!(count, 0, "the dropped insert was rolled back");
        write
            .connection()
            .execute("INSERT INTO t VALUES (2)")
            .await
            .unwrap();
        write.commit().await.unwrap();
        let mut read = db.acquire().await.unwrap();
        let rows = read
            .connection()
            .count("SELECT count(*) FROM t WHERE n = 2")
            .await
            .unwrap();
        assert_eq!(rows, 1);
        drop(read);
        db.close().await;
    }

    #[tokio::test]
    async fn a_sqlite_write_turn_holds_off_the_processs_other_writers_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_in(&dir, "turn.db").await;
        let mut turn = db.write_turn().await.unwrap();
        let WriteTurn::Sqlite(sqlite) = &mut turn else {
            unreachable!()
        };
        assert_eq!(sqlite.connection().count("SELECT 1").await.unwrap(), 1);
        let other = {
            let db = db.clone();
            tokio::spawn(async move { db.begin_write().await.unwrap().commit().await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!other.is_finished(), "another writer ran during the turn");
        // A turn that wrote nothing ends without a transaction to roll back.
        drop(turn);
        tokio::time::timeout(SQLITE_BUSY_TIMEOUT, other)
            .await
            .expect("the other writer ran once the turn ended")
            .unwrap()
            .unwrap();
        db.close().await;
    }

    #[tokio::test]
    async fn the_wal_is_checkpointed_into_the_database_file_after_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_in(&dir, "checkpoint.db").await;
        let file = dir.path().join("checkpoint.db");
        write_committed(
            &db,
            "CREATE TABLE t (b BLOB); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO t SELECT randomblob(4096) FROM n",
        )
        .await;
        // 8 MB committed to the log: the database file has it once a checkpoint ran.
        let size = || std::fs::metadata(&file).map_or(0, |metadata| metadata.len());
        let deadline = Instant::now() + Duration::from_secs(10);
        while size() < 8_000_000 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(size() >= 8_000_000, "not checkpointed: {} bytes", size());
        db.close().await;
    }

    #[tokio::test]
    async fn the_wal_stays_bounded_under_writes_that_never_pause() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_in(&dir, "busy.db").await;
        write_committed(&db, "CREATE TABLE t (b BLOB)").await;
        // Back-to-back writes of 100 pages each, 3 × WRITER_AUTOCHECKPOINT_PAGES in all: the
        // background checkpoints alone never catch up with them, so the log would only grow.
        let transactions = 3 * WRITER_AUTOCHECKPOINT_PAGES / 100;
        for _ in 0..transactions {
            write_committed(
                &db,
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) \
                 INSERT INTO t SELECT randomblob(4000) FROM n",
            )
            .await;
        }
        // SQLite keeps the log file at its largest size, so its size now is the most the log
        // ever held: about the backstop's pages, never all that was written.
        let log = dir.path().join("busy.db-wal");
        let largest = std::fs::metadata(&log).map_or(0, |metadata| metadata.len());
        let page = 4096 + 24;
        assert!(
            largest < u64::from(2 * WRITER_AUTOCHECKPOINT_PAGES) * page,
            "the log grew to {largest} bytes"
        );
        db.close().await;
    }

    #[tokio::test]
    async fn a_sqlite_writer_does_not_wait_for_the_connections_that_reads_hold() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_in(&dir, "writer.db").await;
        let mut reads = Vec::new();
        for _ in 0..SQLITE_MAX_CONNECTIONS {
            reads.push(db.acquire().await.unwrap());
        }
        // Every read connection is taken: a write on one of them would wait for the pool's
        // acquire timeout (30 s).
        let write = tokio::time::timeout(SQLITE_BUSY_TIMEOUT / 2, db.begin_write())
            .await
            .expect("the write did not wait for a read connection")
            .unwrap();
        write.commit().await.unwrap();
        drop(reads);
        db.close().await;
    }
}
