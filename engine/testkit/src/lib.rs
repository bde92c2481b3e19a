//! Test support for Keel: one test body, run on SQLite and on PostgreSQL 15.
//!
//! [`TestDb::new`] hands each test a database it owns:
//!
//! - **SQLite**: a fresh temporary directory; [`TestDb::url`] points at `keel.db` inside it
//!   (`sqlite:///abs/path/keel.db`). The file is *not* created: the engine under test creates
//!   it, so tests also cover first start on an empty path.
//! - **PostgreSQL**: a fresh database `keel_t_<uuid>` created in a shared test server, and
//!   dropped (`WITH (FORCE)`) when the [`TestDb`] is dropped.
//!
//! The PostgreSQL server is found once per test process:
//!
//! 1. If `KEEL_TEST_POSTGRES_URL` is set (CI sets it), that server is used: the URL is the
//!    admin connection in which the per-test databases are created.
//! 2. Otherwise, if PostgreSQL 15 is installed (`/usr/lib/postgresql/15/bin/initdb`, or the
//!    directory named by `KEEL_TEST_PG_BIN`), a throwaway cluster is started lazily on a free
//!    port (as the `postgres` user when running as root) and shared by every test in the
//!    process. A detached watchdog stops it and deletes its directory when the process exits,
//!    because Rust statics are never dropped.
//! 3. Otherwise the `::postgres` tests **fail**, saying how to install PostgreSQL — unless the
//!    developer asked to skip them with `KEEL_SKIP_POSTGRES=1` (never honoured under
//!    `CI=true`). A skipped body then passes without running, and a note on the real stderr
//!    (which the harness does not capture) says that PostgreSQL was skipped.
//!
//! libtest has no way to mark a test ignored at run time, so a skip must be asked for: a
//! machine without PostgreSQL never reports a PostgreSQL test `ok` on its own. [`skip_or_fail`]
//! applies the same rule to other tools a test needs (such as an OpenAPI validator).
//!
//! [`db_test!`] turns one async body into two tests, `<name>::sqlite` and `<name>::postgres`.
//!
//! Deliberately *not* done here: no migrations, schema or fixtures (the engine creates its
//! tables, and that is what tests exercise); no connection pools handed out (tests connect
//! with [`TestDb::url`] like production code does); no PostgreSQL schemas-instead-of-databases
//! trick; no retry of a configured server that cannot be reached (that panics, it does not
//! skip); no other PostgreSQL versions searched for.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::{Once, OnceLock};

use sqlx::{AssertSqlSafe, Connection as _, PgConnection};
use tempfile::TempDir;

// Lets the `db_test!` expansion name this crate as `::keel_testkit` in its own unit tests too.
extern crate self as keel_testkit;

/// The variable a developer without PostgreSQL sets to `1` to skip the `::postgres` tests.
pub const SKIP_POSTGRES: &str = "KEEL_SKIP_POSTGRES";

/// Where the PostgreSQL 15 binaries are installed on Debian.
const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database owned by one test; it is removed when this value is dropped.
#[derive(Debug)]
pub struct TestDb {
    pub backend: Backend,
    /// Connection URL for the engine: `sqlite:///abs/path/keel.db` or
    /// `postgres://postgres@127.0.0.1:PORT/keel_t_<uuid>`.
    pub url: String,
    /// Shared with [`KeepAlive`], see there.
    dir: Arc<TempDir>,
    /// Held for its `Drop`, which drops the PostgreSQL database.
    _postgres_database: Option<Arc<PostgresDatabase>>,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

impl TestDb {
    /// A fresh database on `backend`.
    ///
    /// Returns `None` only for PostgreSQL when no server is available and the developer set
    /// `KEEL_SKIP_POSTGRES=1` outside CI (a note is printed once to the real stderr). Panics,
    /// with the reason, when no server is available otherwise, when the throwaway cluster
    /// fails to start, or when the server cannot be reached or refuses to create the
    /// database.
    pub async fn new(backend: Backend) -> Option<TestDb> {
        let dir = tempfile::Builder::new()
            .prefix("keel-test-")
            .tempdir()
            .unwrap_or_else(|error| panic!("keel-testkit: cannot create a temp dir: {error}"));
        match backend {
            Backend::Sqlite => {
                let path = dir.path().join("keel.db");
                let path = path
                    .to_str()
                    .unwrap_or_else(|| panic!("keel-testkit: temp path {path:?} is not UTF-8"));
                Some(TestDb {
                    backend,
                    url: format!("sqlite://{path}"),
                    dir: Arc::new(dir),
                    _postgres_database: None,
                })
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url().await?;
                let database = PostgresDatabase::create(admin_url).await;
                Some(TestDb {
                    backend,
                    url: database.url.clone(),
                    dir: Arc::new(dir),
                    _postgres_database: Some(Arc::new(database)),
                })
            }
        }
    }

    /// A temporary directory this test may use for its own files; removed on drop.
    /// For SQLite it also holds `keel.db`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the database and the temp dir alive after this `TestDb` is dropped, until the
    /// returned guard is. `db_test!` holds one for the whole test: a body such as
    /// `|db| async move { use(&db.url) }` captures only `db.url` (closures capture disjoint
    /// fields), so without the guard the database would be dropped before the body runs.
    pub fn keep_alive(&self) -> KeepAlive {
        KeepAlive {
            _dir: Arc::clone(&self.dir),
            _postgres_database: self._postgres_database.clone(),
        }
    }
}

/// See [`TestDb::keep_alive`].
#[derive(Debug)]
pub struct KeepAlive {
    _dir: Arc<TempDir>,
    _postgres_database: Option<Arc<PostgresDatabase>>,
}

/// Whether we run in CI (`CI=true`, or `CI=1`); there nothing may be skipped.
pub fn in_ci() -> bool {
    is_set("CI")
}

/// Whether the variable `name` is `true` or `1`.
fn is_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

/// What a test does when something it needs (`what`) is missing: it fails, naming `how` to
/// get it, unless the developer asked to skip it by setting `skip_variable` to `1` and this
/// is not CI. Then this returns, after writing one line to the real stderr (not through
/// `eprintln!`, which the harness captures and shows only for failing tests), and the caller
/// returns early from the test.
///
/// # Panics
/// When the skip was not asked for, or `CI=true`.
pub fn skip_or_fail(what: &str, how: &str, skip_variable: &str) {
    if in_ci() {
        panic!(
            "keel-testkit: CI=true but {what} is not available: {how} (no skips in CI: \
             {skip_variable}=1 is not honoured there)"
        );
    }
    if !is_set(skip_variable) {
        panic!(
            "keel-testkit: {what} is not available: {how}; or set {skip_variable}=1 to skip              the tests that need it"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "keel-testkit: skipped because {skip_variable}=1: a test that needs {what}"
    );
}

/// What a test does when an optional tool from PyPI (`what`; not on a fresh machine, which
/// the README's test command must pass on) is missing: under `CI=true` it fails, naming
/// `how` to install it; locally it writes one `SKIPPED` line to the real stderr (past the
/// harness's capture, so a passing run shows it) and the caller returns early.
///
/// # Panics
/// Under `CI=true`.
pub fn skip_tool_locally_or_fail_in_ci(what: &str, how: &str) {
    assert!(
        !in_ci(),
        "keel-testkit: CI=true but {what} is not installed: {how} (no skips in CI)"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: a test that needs {what}, which is not installed ({how})"
    );
}

/// Defines one test body run on both backends, as tests `<name>::sqlite` and
/// `<name>::postgres`.
///
/// The body is a closure taking a [`TestDb`] and returning a future of `()` or of
/// `anyhow::Result<()>`. Without a PostgreSQL server the `::postgres` test fails, unless
/// `KEEL_SKIP_POSTGRES=1` asks to skip it (see the crate documentation). Items of the
/// enclosing module are in scope inside the body.
///
/// ```no_run
/// keel_testkit::db_test!(fresh_create_makes_every_table, |db| async move {
///     assert!(!db.url.is_empty());
/// });
///
/// keel_testkit::db_test!(bodies_may_use_question_marks, |db| async move {
///     std::fs::write(db.dir().join("note.txt"), "hello")?;
///     Ok(())
/// });
/// ```
#[macro_export]
macro_rules! db_test {
    ($name:ident, $body:expr $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[$crate::__private::tokio::test(
                flavor = "multi_thread",
                worker_threads = 2,
                crate = "::keel_testkit::__private::tokio"
            )]
            async fn sqlite() {
                $crate::__private::run($crate::Backend::Sqlite, $body).await;
            }

            #[$crate::__private::tokio::test(
                flavor = "multi_thread",
                worker_threads = 2,
                crate = "::keel_testkit::__private::tokio"
            )]
            async fn postgres() {
                $crate::__private::run($crate::Backend::Postgres, $body).await;
            }
        }
    };
}

/// Used by the `db_test!` expansion; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use tokio;

    use crate::{Backend, TestDb};

    /// Runs `body` on a fresh database of `backend`, or returns if PostgreSQL is skipped on
    /// request (`KEEL_SKIP_POSTGRES=1`).
    pub async fn run<F, Fut>(backend: Backend, body: F)
    where
        F: FnOnce(TestDb) -> Fut,
        Fut: Future,
        Fut::Output: TestOutcome,
    {
        let Some(db) = TestDb::new(backend).await else {
            return;
        };
        let keep_alive = db.keep_alive();
        body(db).await.check(backend);
        drop(keep_alive);
    }

    /// What a test body may return.
    pub trait TestOutcome {
        fn check(self, backend: Backend);
    }

    impl TestOutcome for () {
        fn check(self, _backend: Backend) {}
    }

    impl TestOutcome for anyhow::Result<()> {
        fn check(self, backend: Backend) {
            if let Err(error) = self {
                panic!("test body failed on {backend}: {error:?}");
            }
        }
    }
}

/// A database in the shared server, dropped together with its `TestDb`.
#[derive(Debug)]
struct PostgresDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PostgresDatabase {
    async fn create(admin_url: &str) -> PostgresDatabase {
        let name = format!("keel_t_{}", uuid::Uuid::now_v7().simple());
        let mut admin = connect_admin(admin_url).await;
        // `name` is ours: lowercase letters, digits and underscores only.
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "keel-testkit: CREATE DATABASE {name} failed on {}: {error}",
                    redact_password(admin_url)
                )
            });
        let _ = admin.close().await;
        PostgresDatabase {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        }
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, where we cannot block on a future, so the
        // DROP DATABASE runs on its own thread and runtime. Best effort: a leftover database
        // in a throwaway server is harmless, so failure only warns.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|error| error.to_string())?;
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await
                .map_err(|error| error.to_string())?;
                let _ = admin.close().await;
                Ok(())
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the drop thread panicked".to_owned()));
        if let Err(error) = dropped {
            eprintln!(
                "keel-testkit: warning: could not drop test database {}: {error}",
                self.name
            );
        }
    }
}

async fn connect_admin(admin_url: &str) -> PgConnection {
    PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "keel-testkit: cannot connect to the PostgreSQL test server {}: {error}",
                redact_password(admin_url)
            )
        })
}

/// The admin URL of the shared PostgreSQL server, or `None` when PostgreSQL tests are skipped.
async fn postgres_admin_url() -> Option<&'static str> {
    static SERVER: OnceLock<Result<Option<String>, String>> = OnceLock::new();
    // Finding (or starting) the server blocks; concurrent callers wait for the first one.
    let server = tokio::task::spawn_blocking(|| SERVER.get_or_init(discover_server))
        .await
        .unwrap_or_else(|error| panic!("keel-testkit: PostgreSQL discovery panicked: {error}"));
    match server {
        Ok(Some(admin_url)) => Some(admin_url.as_str()),
        Ok(None) => {
            const HOW: &str = "install postgresql-15 or set KEEL_TEST_POSTGRES_URL";
            if in_ci() || !is_set(SKIP_POSTGRES) {
                // Fails every test that asks, each saying why.
                skip_or_fail("PostgreSQL", HOW, SKIP_POSTGRES);
            }
            // A skip asked for: one note per process, however many tests skip.
            static NOTE: Once = Once::new();
            NOTE.call_once(|| skip_or_fail("PostgreSQL", HOW, SKIP_POSTGRES));
            None
        }
        Err(message) => panic!("keel-testkit: {message}"),
    }
}

/// `Ok(Some(admin_url))`, `Ok(None)` when no server is configured or installed, or `Err` when
/// starting the installed one failed.
fn discover_server() -> Result<Option<String>, String> {
    if let Some(url) = non_empty_env("KEEL_TEST_POSTGRES_URL") {
        return Ok(Some(url));
    }
    let bin = PathBuf::from(non_empty_env("KEEL_TEST_PG_BIN").unwrap_or(DEFAULT_PG_BIN.into()));
    if !bin.join("initdb").is_file() {
        return Ok(None);
    }
    start_cluster(&bin).map(Some)
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Starts a throwaway cluster for this process and returns its admin URL.
fn start_cluster(bin: &Path) -> Result<String, String> {
    let dir = tempfile::Builder::new()
        .prefix("keel-pg-")
        .tempdir()
        .map_err(|error| format!("cannot create a temp dir for PostgreSQL: {error}"))?
        // The watchdog removes it; a TempDir in a static would never be dropped anyway.
        .keep();
    // Canonical, so the watchdog can recognize it as a process's working directory.
    let dir = std::fs::canonicalize(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    let as_root = {
        use std::os::unix::fs::MetadataExt as _;
        // The new directory is owned by our effective uid.
        std::fs::metadata(&dir)
            .map_err(|error| error.to_string())?
            .uid()
            == 0
    };
    if as_root {
        // postgres refuses to run as root; the cluster belongs to the postgres user.
        let output = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&dir)
            .output()
            .map_err(|error| format!("cannot run chown: {error}"))?;
        check("chown postgres:postgres", &output)?;
    }
    spawn_watchdog(bin, &dir, as_root)?;

    let data = dir.join("data");
    let output = pg_command(bin, "initdb", &dir, as_root)
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"])
        .args(["--locale=C.UTF-8", "--no-sync"])
        .output()
        .map_err(|error| format!("cannot run initdb: {error}"))?;
    check("initdb", &output)?;

    let log = dir.join("log");
    let mut last_error = String::new();
    // The free port may be taken between our probe and the server's bind; then try another.
    for _attempt in 0..5 {
        let port = free_port()?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k '{}' -c fsync=off \
             -c max_connections=300 -c shared_buffers=32MB",
            dir.display()
        );
        let output = pg_command(bin, "pg_ctl", &dir, as_root)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-o", &options, "start"])
            .output()
            .map_err(|error| format!("cannot run pg_ctl: {error}"))?;
        if output.status.success() {
            return Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"));
        }
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        last_error = format!(
            "{}\nserver log {}:\n{}",
            describe("pg_ctl start", &output),
            log.display(),
            tail(&log_text, 20)
        );
        if !log_text.contains("already in use") {
            break;
        }
    }
    Err(format!(
        "cannot start the PostgreSQL test cluster: {last_error}"
    ))
}

/// A PostgreSQL program, run as `postgres` when we are root, from a directory it can read.
fn pg_command(bin: &Path, program: &str, dir: &Path, as_root: bool) -> Command {
    let mut command = if as_root {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    };
    // Our working directory may be unreadable by postgres, and initdb fails on that.
    command.current_dir(dir).stdin(Stdio::null());
    command
}

/// Stops the cluster and removes `dir` once this process has exited.
fn spawn_watchdog(bin: &Path, dir: &Path, as_root: bool) -> Result<(), String> {
    use std::os::unix::process::CommandExt as _;
    // After the test process is gone, wait (bounded) for initdb or pg_ctl it may have left
    // running in the directory (their working directory), then stop the server and delete.
    const SCRIPT: &str = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 1; done
        waited=0
        while [ "$waited" -lt 60 ]; do
            busy=no
            for cwd in /proc/[0-9]*/cwd; do
                [ "$(readlink "$cwd" 2>/dev/null)" = "$4" ] && busy=yes && break
            done
            [ "$busy" = no ] && break
            sleep 1
            waited=$((waited + 1))
        done
        if [ "$5" = root ]; then
            runuser -u postgres -- "$2" -D "$3" stop -m immediate
        else
            "$2" -D "$3" stop -m immediate
        fi
        rm -rf "$4"
    "#;
    Command::new("sh")
        .args(["-c", SCRIPT, "keel-pg-watchdog"])
        .arg(std::process::id().to_string())
        .arg(bin.join("pg_ctl"))
        .arg(dir.join("data"))
        .arg(dir)
        .arg(if as_root { "root" } else { "user" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so Ctrl-C on the test run does not kill it before cleanup.
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|error| format!("cannot spawn the PostgreSQL cleanup watchdog: {error}"))
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|error| format!("cannot find a free port: {error}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| format!("cannot find a free port: {error}"))
}

fn check(what: &str, output: &Output) -> Result<(), String> {
    if output.status.success() {
        Ok(())
    } else {
        Err(describe(what, output))
    }
}

fn describe(what: &str, output: &Output) -> String {
    format!(
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `url` with its database (the path) replaced by `database`, keeping any `?query`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let server = match base[authority_start..].find('/') {
        Some(index) => &base[..authority_start + index],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// `url` with any password replaced by `***`, for messages.
fn redact_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|index| index + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?'])
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
    use std::str::FromStr as _;

    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{Connection as _, PgConnection, SqliteConnection};

    use super::*;

    async fn select_one(db: &TestDb) -> i64 {
        match db.backend {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(&db.url)
                    .unwrap()
                    .create_if_missing(true);
                let mut connection = SqliteConnection::connect_with(&options).await.unwrap();
                sqlx::query_scalar("SELECT 1")
                    .fetch_one(&mut connection)
                    .await
                    .unwrap()
            }
            Backend::Postgres => {
                let mut connection = PgConnection::connect(&db.url).await.unwrap();
                let one: i32 = sqlx::query_scalar("SELECT 1")
                    .fetch_one(&mut connection)
                    .await
                    .unwrap();
                i64::from(one)
            }
        }
    }

    #[test]
    fn a_missing_tool_fails_the_test_unless_its_skip_was_asked_for() {
        let refused = std::panic::catch_unwind(|| {
            skip_or_fail(
                "a tool",
                "install it",
                "KEEL_TEST_SKIP_VARIABLE_NOBODY_SETS",
            );
        });
        let message = refused.unwrap_err();
        let message = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("a tool is not available"), "{message}");
        assert!(
            message.contains("install it")
                && message.contains("KEEL_TEST_SKIP_VARIABLE_NOBODY_SETS=1"),
            "{message}"
        );
    }

    #[test]
    fn backends_display_as_lowercase_names() {
        assert_eq!(Backend::Sqlite.to_string(), "sqlite");
        assert_eq!(Backend::Postgres.to_string(), "postgres");
    }

    #[tokio::test]
    async fn sqlite_url_is_an_absolute_path_in_a_fresh_temp_dir() {
        let db = TestDb::new(Backend::Sqlite).await.unwrap();
        let path = PathBuf::from(db.url.strip_prefix("sqlite://").unwrap());
        assert!(path.is_absolute(), "{}", db.url);
        assert_eq!(path.file_name().unwrap(), "keel.db");
        assert_eq!(path.parent().unwrap(), db.dir());
        assert!(db.dir().starts_with(std::env::temp_dir()), "{:?}", db.dir());
        assert!(
            !path.exists(),
            "the engine creates the file, not the testkit"
        );

        assert_eq!(select_one(&db).await, 1);
        assert!(path.exists());
        let dir = db.dir().to_owned();
        drop(db);
        assert!(!dir.exists(), "the temp dir goes with the TestDb");
    }

    #[tokio::test]
    async fn two_sqlite_test_dbs_get_different_files() {
        let first = TestDb::new(Backend::Sqlite).await.unwrap();
        let second = TestDb::new(Backend::Sqlite).await.unwrap();
        assert_ne!(first.url, second.url);
        assert_ne!(first.dir(), second.dir());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_postgres_test_dbs_are_separate_databases() {
        let Some(first) = TestDb::new(Backend::Postgres).await else {
            return;
        };
        let second = TestDb::new(Backend::Postgres).await.unwrap();
        assert_ne!(first.url, second.url);
        assert!(first.url.starts_with("postgres://"), "{}", first.url);
        assert_ne!(first.dir(), second.dir());

        let mut connections = Vec::new();
        for db in [&first, &second] {
            assert_eq!(select_one(db).await, 1);
            let mut connection = PgConnection::connect(&db.url).await.unwrap();
            let name: String = sqlx::query_scalar("SELECT current_database()")
                .fetch_one(&mut connection)
                .await
                .unwrap();
            assert!(name.starts_with("keel_t_"), "{name}");
            assert!(
                db.url.ends_with(&format!("/{name}")),
                "{} vs {name}",
                db.url
            );
            // The same table name in both databases must not collide.
            sqlx::raw_sql("CREATE TABLE record (id integer primary key)")
                .execute(&mut connection)
                .await
                .unwrap();
            connections.push(connection);
        }
        sqlx::raw_sql("INSERT INTO record VALUES (1), (2)")
            .execute(&mut connections[0])
            .await
            .unwrap();
        let counts: Vec<i64> = [
            sqlx::query_scalar("SELECT count(*) FROM record")
                .fetch_one(&mut connections[0])
                .await
                .unwrap(),
            sqlx::query_scalar("SELECT count(*) FROM record")
                .fetch_one(&mut connections[1])
                .await
                .unwrap(),
        ]
        .into();
        assert_eq!(counts, [2, 0]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_a_postgres_test_db_drops_its_database() {
        let Some(observer) = TestDb::new(Backend::Postgres).await else {
            return;
        };
        let doomed = TestDb::new(Backend::Postgres).await.unwrap();
        let name = doomed.url.rsplit('/').next().unwrap().to_owned();
        // An open connection must not stop the drop.
        let _still_open = PgConnection::connect(&doomed.url).await.unwrap();

        let mut connection = PgConnection::connect(&observer.url).await.unwrap();
        let exists = "SELECT count(*) FROM pg_database WHERE datname = $1";
        let before: i64 = sqlx::query_scalar(exists)
            .bind(&name)
            .fetch_one(&mut connection)
            .await
            .unwrap();
        drop(doomed);
        let after: i64 = sqlx::query_scalar(exists)
            .bind(&name)
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!((before, after), (1, 0));
    }

    #[test]
    fn with_database_replaces_only_the_path() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5/postgres",
                "postgres://postgres@127.0.0.1:5/x",
            ),
            (
                "postgres://u:p@h:5/db?sslmode=disable",
                "postgres://u:p@h:5/x?sslmode=disable",
            ),
            ("postgres://h", "postgres://h/x"),
            (
                "postgresql://h/?application_name=a/b",
                "postgresql://h/x?application_name=a/b",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(with_database(url, "x"), expected, "{url}");
        }
    }

    #[test]
    fn redact_password_hides_only_the_password() {
        assert_eq!(
            redact_password("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(
            redact_password("postgres://u@h:5/db"),
            "postgres://u@h:5/db"
        );
        assert_eq!(redact_password("postgres://h:5/d@b"), "postgres://h:5/d@b");
    }

    crate::db_test!(db_test_runs_the_body_on_each_backend, |db| async move {
        assert_eq!(select_one(&db).await, 1);
    });

    crate::db_test!(db_test_bodies_may_return_results, |db| async move {
        std::fs::write(db.dir().join("note.txt"), db.backend.to_string())?;
        assert_eq!(select_one(&db).await, 1);
        Ok(())
    });

    // The body captures only `db.url`, so the rest of `db` is dropped when the closure
    // returns its future; `db_test!` must keep the database alive anyway.
    crate::db_test!(
        a_body_using_only_the_url_still_has_its_database,
        |db| async move {
            let url = db.url;
            match url.split_once("://").map(|(scheme, _)| scheme) {
                Some("postgres") => {
                    let mut connection = PgConnection::connect(&url).await.unwrap();
                    let one: i32 = sqlx::query_scalar("SELECT 1")
                        .fetch_one(&mut connection)
                        .await
                        .unwrap();
                    assert_eq!(one, 1);
                }
                _ => {
                    let path = url.trim_start_matches("sqlite://");
                    let parent = std::path::Path::new(path).parent().unwrap();
                    assert!(parent.is_dir(), "the SQLite temp dir {parent:?} is gone");
                }
            }
        }
    );
}
