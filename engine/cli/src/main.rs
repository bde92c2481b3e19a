//! `keel`: the command-line entry point. It parses arguments, wires configuration, the
//! database, the runtime and the web server together, and maps failures to exit codes.
//!
//! It holds no business logic: every command is a few calls into `keel-meta`, `keel-store`,
//! `keel-runtime` and `keel-web`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

mod new;

/// Exit codes, stable for scripts (README.md lists them): 0 success, 1 invalid input
/// (metadata, data), 2 usage (the command line: unknown options, an unsupported database
/// URL, an app directory or file that does not exist), 3 a destructive migration was
/// refused, 4 the database failed or does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Invalid = 1,
    Usage = 2,
    DestructiveRefused = 3,
    Database = 4,
}

/// An error that already printed what the user needs, with the exit code to use.
#[derive(Debug)]
struct Reported(Exit);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failed with exit code {}", self.0 as u8)
    }
}

impl std::error::Error for Reported {}

/// An error the CLI words itself, with its exit code.
#[derive(Debug)]
struct Failure {
    exit: Exit,
    message: String,
}

impl Failure {
    fn error(exit: Exit, message: impl Into<String>) -> anyhow::Error {
        Failure {
            exit,
            message: message.into(),
        }
        .into()
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

#[derive(Parser)]
#[command(
    name = "keel",
    version,
    about = "Keel: a low-code CRM from YAML and Rhai"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct AppArgs {
    /// The app directory (metadata/, workflows/, scripts/).
    #[arg(long, env = "KEEL_APP", default_value = ".")]
    app: PathBuf,
}

#[derive(Args, Clone)]
struct DbArgs {
    /// Database URL: sqlite://path.db, sqlite:///abs/path.db or postgres://user:pw@host/db.
    #[arg(long, env = "KEEL_DB", default_value = "sqlite://data/keel.db")]
    db: String,
}

#[derive(Subcommand)]
enum Command {
    /// Create an app directory from the standard app or an industry template
    /// (docs/templates.md).
    New {
        /// The directory to create; it must not exist or be empty.
        dir: PathBuf,
        /// `standard` (the repository's own app) or a template: `education`,
        /// `manufacturing`, `saas`.
        #[arg(long, value_name = "NAME", default_value = new::STANDARD)]
        template: String,
    },
    /// Migrate additive changes, then serve the API.
    Serve {
        #[command(flatten)]
        app: AppArgs,
        #[command(flatten)]
        db: DbArgs,
        /// Address to listen on.
        #[arg(long, env = "KEEL_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Load the app's seed/ demo data and demo users, and print the logins.
        #[arg(long)]
        demo: bool,
    },
    /// Validate the app directory; print every problem as file:line:col: message.
    Check {
        #[command(flatten)]
        app: AppArgs,
    },
    /// Show or apply the database changes the metadata needs.
    Migrate {
        #[command(flatten)]
        app: AppArgs,
        #[command(flatten)]
        db: DbArgs,
        /// Print the plan and change nothing.
        #[arg(long, conflicts_with = "apply", required_unless_present = "apply")]
        plan: bool,
        /// Apply the plan.
        #[arg(long)]
        apply: bool,
        /// Also apply destructive steps (removed columns and tables are archived, not dropped).
        #[arg(long, requires = "apply")]
        allow_destructive: bool,
    },
    /// Import a CSV file (header row = field names) through the write path, as a user.
    /// Re-runnable: rows already imported (by an interrupted run, or before refused rows
    /// were fixed) are skipped, so each row is imported exactly once.
    Import {
        /// The object to import into, e.g. `lead`.
        object: String,
        /// The CSV file.
        file: PathBuf,
        /// Rows per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
        /// The importing user (a username): their permissions apply, and rows with an empty
        /// `owner` belong to them.
        #[arg(long = "as", value_name = "USER", default_value = "admin")]
        as_user: String,
        #[command(flatten)]
        app: AppArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Export every record of an object to standard output (`keel import` reads the CSV
    /// back).
    Export {
        object: String,
        /// `csv`, or `json` (one JSON object per line).
        #[arg(long, default_value = "csv", value_parser = ["csv", "json"])]
        format: String,
        #[command(flatten)]
        app: AppArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The metadata versions recorded in the database (docs/studio.md).
    Metadata {
        #[command(subcommand)]
        command: MetadataCommand,
    },
}

#[derive(Subcommand)]
enum MetadataCommand {
    /// Write the latest recorded metadata version into the app directory (its metadata/,
    /// workflows/ and scripts/ files, byte for byte; other files are left alone), so a
    /// change made in the studio can be committed.
    Pull {
        #[command(flatten)]
        app: AppArgs,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user. The password comes from standard input (`--password-stdin`), the
    /// environment (`KEEL_USER_PASSWORD`) or `--password` (visible to other local users in
    /// the process list: prefer the other two).
    Add {
        /// The login name.
        name: String,
        #[arg(long, env = "KEEL_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// A role from roles.yaml; repeat for several.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// The user's manager (a username).
        #[arg(long)]
        manager: Option<String>,
        /// The user's department (created if missing).
        #[arg(long)]
        department: Option<String>,
        /// Where email notifications reach the user (one `@`, no spaces).
        #[arg(long, value_name = "ADDRESS")]
        email: Option<String>,
        #[command(flatten)]
        app: AppArgs,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Fixes glibc's mmap threshold at 128 KiB. By default glibc raises the threshold to the size
/// of the largest mmapped block freed so far, so after the first sign-in (argon2 hashes in
/// 19 MiB of memory) every later one is served from a thread's heap and stays resident: the
/// server grew by 19 MB per sign-in on a new thread (measured: 23 → 42 → 62 MB after three
/// sign-ins; 23 MB flat with the threshold fixed). Large, short-lived blocks (password
/// hashes, big responses) now go back to the system when freed. Runs before any thread
/// starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fix_malloc_mmap_threshold() {
    const THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: `mallopt` only changes allocator parameters; it is called once, before the
    // process starts any other thread, with a documented parameter and value.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_malloc_mmap_threshold() {}

fn main() -> ExitCode {
    fix_malloc_mmap_threshold();
    let cli = Cli::parse();
    // Quiet by default: a command prints what it did; logs are for a running server.
    let default_filter = match cli.command {
        Command::Serve { .. } => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEEL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(Exit::Invalid as u8);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(Reported(exit)) = error.downcast_ref::<Reported>() {
                return ExitCode::from(*exit as u8);
            }
            eprintln!("error: {}", error_chain(&error));
            ExitCode::from(exit_for(&error) as u8)
        }
    }
}

/// The exit code for a failure: what the CLI worded itself says so; a database URL Keel
/// cannot use is a usage error; any other database failure is 4; the rest is invalid input.
fn exit_for(error: &anyhow::Error) -> Exit {
    let store_exit = |error: &keel_store::StoreError| match error {
        keel_store::StoreError::UnsupportedUrl { .. }
        | keel_store::StoreError::InvalidUrl { .. } => Exit::Usage,
        _ => Exit::Database,
    };
    for cause in error.chain() {
        if let Some(failure) = cause.downcast_ref::<Failure>() {
            return failure.exit;
        }
        if let Some(store) = cause.downcast_ref::<keel_store::StoreError>() {
            return store_exit(store);
        }
        // `RuntimeError::Store` is transparent: its source is the store error's source.
        if let Some(keel_runtime::RuntimeError::Store(store)) =
            cause.downcast_ref::<keel_runtime::RuntimeError>()
        {
            return store_exit(store);
        }
    }
    Exit::Invalid
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::New { dir, template } => new::run(&dir, &template),
        Command::Check { app } => {
            let schema = load(&app.app)?;
            println!(
                "ok: {} objects, {} pools, {} processes, {} rules, {} scripts",
                schema.objects.len(),
                schema.pools.len(),
                schema.processes.len(),
                schema.rules.len(),
                schema.scripts.len()
            );
            Ok(())
        }
        Command::Migrate {
            app,
            db,
            plan: _,
            apply,
            allow_destructive,
        } => migrate(&app.app, &db.db, apply, allow_destructive).await,
        Command::Serve {
            app,
            db,
            listen,
            demo,
        } => serve(&app.app, &db.db, &listen, demo).await,
        Command::Import {
            object,
            file,
            batch,
            as_user,
            app,
            db,
        } => import(&app.app, &db.db, &object, &file, batch as usize, &as_user).await,
        Command::Export {
            object,
            format,
            app,
            db,
        } => export(&app.app, &db.db, &object, &format).await,
        Command::Metadata {
            command: MetadataCommand::Pull { app, db },
        } => metadata_pull(&app.app, &db.db).await,
        Command::User {
            command:
                UserCommand::Add {
                    name,
                    password,
                    password_stdin,
                    roles,
                    manager,
                    department,
                    email,
                    app,
                    db,
                },
        } => {
            let password = new_password(password, password_stdin)?;
            let (schema, db) = open(&app.app, &db.db).await?;
            let request = keel_runtime::accounts::NewUser {
                username: name.clone(),
                display_name: None,
                password,
                roles,
                manager,
                department,
                language: None,
                email,
            };
            keel_runtime::accounts::add_user(&db, &schema, request).await?;
            println!("added user {name}");
            db.close().await;
            Ok(())
        }
    }
}

/// The new user's password: the first line of standard input with `--password-stdin`,
/// else `--password` or `KEEL_USER_PASSWORD`.
fn new_password(given: Option<String>, from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            return Err(Failure::error(
                Exit::Usage,
                "--password-stdin: standard input held no password",
            ));
        }
        return Ok(password);
    }
    given.filter(|p| !p.is_empty()).ok_or_else(|| {
        Failure::error(
            Exit::Usage,
            "give the password on standard input with --password-stdin, in KEEL_USER_PASSWORD, or with --password",
        )
    })
}

/// The error and its causes, skipping a cause whose text the previous message already
/// includes (many library errors print their source themselves).
fn error_chain(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    let mut previous = text.clone();
    for cause in error.chain().skip(1) {
        let cause_text = cause.to_string();
        if !previous.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        previous = cause_text;
    }
    text
}

/// Loads and checks the app, printing every problem; `Reported(Invalid)` when there are any.
fn load(dir: &Path) -> anyhow::Result<keel_meta::Schema> {
    if !dir.is_dir() {
        return Err(Failure::error(
            Exit::Usage,
            format!(
                "there is no app directory {} (give it with --app or KEEL_APP)",
                dir.display()
            ),
        ));
    }
    keel_meta::load_app(dir).map_err(|errors| {
        for diagnostic in &errors.diagnostics {
            eprintln!("{}", render_diagnostic(dir, diagnostic));
        }
        eprintln!(
            "{} problem(s) found in {}",
            errors.diagnostics.len(),
            dir.display()
        );
        Reported(Exit::Invalid).into()
    })
}

/// Prints a diagnostic with its path as given on the command line (so editors and terminals
/// can open `file:line:col`), e.g. `templates/education/metadata/objects/student.yaml:3:5: …`.
fn render_diagnostic(dir: &Path, diagnostic: &keel_meta::Diagnostic) -> String {
    let shown = if dir == Path::new(".") {
        diagnostic.file.clone()
    } else {
        format!(
            "{}/{}",
            dir.display().to_string().trim_end_matches('/'),
            diagnostic.file
        )
    };
    format!(
        "{shown}:{}:{}: {}",
        diagnostic.position.line, diagnostic.position.column, diagnostic.message
    )
}

fn records_for(
    schema: &std::sync::Arc<keel_meta::Schema>,
    db: &keel_store::Db,
) -> keel_runtime::records::Records {
    keel_runtime::records::Records::new(
        schema.clone(),
        db.clone(),
        std::sync::Arc::new(keel_runtime::clock::SystemClock),
    )
}

/// The user called `username` as an actor, refusing one that does not exist or is
/// deactivated.
async fn actor_named(
    schema: &std::sync::Arc<keel_meta::Schema>,
    db: &keel_store::Db,
    username: &str,
) -> anyhow::Result<keel_runtime::actor::Actor> {
    let active = keel_store::users::find_by_username(db, username)
        .await?
        .map(|user| user.active);
    match active {
        None => Err(Failure::error(
            Exit::Invalid,
            format!("there is no user `{username}`"),
        )),
        Some(false) => Err(Failure::error(
            Exit::Invalid,
            format!("the user `{username}` is deactivated"),
        )),
        Some(true) => {
            let auth = keel_runtime::auth::Auth::new(
                schema.clone(),
                db.clone(),
                std::sync::Arc::new(keel_runtime::clock::SystemClock),
            );
            Ok(auth
                .actor_named(&keel_runtime::actor::Actor::system(), username)
                .await?)
        }
    }
}

/// Imports `seed/<object>.csv` for every object that has one, as `admin` (who then owns
/// rows without an owner). Seed imports are re-runnable imports, so starting with `--demo`
/// again adds nothing twice.
async fn load_demo_records(
    schema: &std::sync::Arc<keel_meta::Schema>,
    db: &keel_store::Db,
    app_dir: &Path,
) -> anyhow::Result<()> {
    let records = records_for(schema, db);
    let admin = actor_named(schema, db, "admin")
        .await
        .context("demo records belong to `admin` unless their row names an owner")?;
    for (object, path) in keel_runtime::demo::seed_record_files(schema, app_dir) {
        let report =
            keel_runtime::import::import_csv(&records, &admin, &object, &path, 500, |_, _| {})
                .await?;
        if report.created > 0 {
            println!("  demo data: {} {object} records", report.created);
        }
        for (line, why) in &report.failed {
            eprintln!("{}:{line}: {why}", path.display());
        }
    }
    Ok(())
}

/// Connects to `db_url`, which must name a database Keel has set up: a SQLite file that
/// exists, or a PostgreSQL database with Keel's tables. Every command but `serve` and
/// `migrate --apply` uses this, so a mistyped `--db` is an error, not a new database.
async fn connect_existing(db_url: &str) -> anyhow::Result<keel_store::Db> {
    if let Some(file) = keel_store::Db::sqlite_file(db_url)?
        && !file.is_file()
    {
        return Err(Failure::error(
            Exit::Database,
            format!(
                "there is no database {} (check --db or KEEL_DB; `keel migrate --apply` or `keel serve` creates it)",
                file.display()
            ),
        ));
    }
    let db = keel_store::Db::connect(db_url).await?;
    let live = keel_store::introspect::read(&db).await?;
    if live.table("keel_users").is_none() {
        db.close().await;
        return Err(Failure::error(
            Exit::Database,
            format!(
                "the database {} has no Keel tables (check --db or KEEL_DB; `keel migrate --apply` or `keel serve` sets it up)",
                keel_store::redact_password(db_url)
            ),
        ));
    }
    Ok(db)
}

/// Loads the app, connects to an existing database, and applies safe migrations: what every
/// data command needs.
async fn open(
    app_dir: &Path,
    db_url: &str,
) -> anyhow::Result<(std::sync::Arc<keel_meta::Schema>, keel_store::Db)> {
    let schema = std::sync::Arc::new(load(app_dir)?);
    let db = connect_existing(db_url).await?;
    keel_store::migrate::apply(&db, &schema, false)
        .await
        .context("the database must match the metadata first (see `keel migrate --plan`)")?;
    Ok((schema, db))
}

async fn migrate(
    app_dir: &Path,
    db_url: &str,
    apply: bool,
    allow_destructive: bool,
) -> anyhow::Result<()> {
    let schema = load(app_dir)?;
    if !apply
        && let Some(file) = keel_store::Db::sqlite_file(db_url)?
        && !file.is_file()
    {
        // `--plan` writes nothing: plan against an empty in-memory database instead of
        // creating the file.
        println!(
            "the database {} does not exist yet; `keel migrate --apply` creates it with:",
            file.display()
        );
        let empty = keel_store::Db::connect("sqlite::memory:").await?;
        print_plan(&keel_store::migrate::plan(&empty, &schema).await?);
        empty.close().await;
        return Ok(());
    }
    let db = keel_store::Db::connect(db_url).await?;
    let plan = keel_store::migrate::plan(&db, &schema).await?;
    if !apply {
        print_plan(&plan);
        db.close().await;
        return Ok(());
    }
    if plan.destructive().next().is_some() && !allow_destructive {
        print_plan(&plan);
        eprintln!("refusing to apply destructive steps (marked !) without --allow-destructive");
        return Err(Reported(Exit::DestructiveRefused).into());
    }
    let user = cli_user();
    let applied = keel_store::migrate::apply_with(
        &db,
        &schema,
        keel_store::migrate::ApplyOptions {
            applied_by: user.as_deref(),
            ..keel_store::migrate::ApplyOptions::cli(allow_destructive)
        },
        keel_runtime::clock::Clock::now(&keel_runtime::clock::SystemClock),
    )
    .await?;
    if applied.steps.is_empty() {
        println!("nothing to do: the database matches the metadata");
    } else {
        println!("applied {} steps:", applied.steps.len());
        print_plan(&keel_store::migrate::Plan {
            steps: applied.steps,
            ..Default::default()
        });
    }
    ensure_admin(&db).await?;
    db.close().await;
    Ok(())
}

async fn import(
    app_dir: &Path,
    db_url: &str,
    object: &str,
    file: &Path,
    batch: usize,
    as_user: &str,
) -> anyhow::Result<()> {
    if !file.is_file() {
        return Err(Failure::error(
            Exit::Usage,
            format!("there is no file {}", file.display()),
        ));
    }
    let (schema, db) = open(app_dir, db_url).await?;
    let actor = actor_named(&schema, &db, as_user)
        .await
        .context("--as names the importing user")?;
    let records = records_for(&schema, &db);
    let mut progress = Progress::new();
    let report =
        keel_runtime::import::import_csv(&records, &actor, object, file, batch, |done, total| {
            progress.show(done, total)
        })
        .await?;
    progress.finish();
    println!(
        "{}: {} rows; {} imported, {} already imported earlier, {} refused",
        file.display(),
        report.total,
        report.created,
        report.skipped,
        report.failed.len()
    );
    if !report.ignored_columns.is_empty() {
        println!(
            "  columns Keel maintains or computes, not imported: {}",
            report.ignored_columns.join(", ")
        );
    }
    for (line, why) in &report.failed {
        eprintln!("{}:{line}: {why}", file.display());
    }
    db.close().await;
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(Reported(Exit::Invalid).into())
    }
}

/// Import progress: a bar on a terminal; elsewhere (a log, a pipe) one line per tenth of
/// the file, `import: <done>/<total> rows`, each written after those rows were committed.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    tenths_shown: usize,
}

impl Progress {
    fn new() -> Progress {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Progress {
            bar,
            tenths_shown: 0,
        }
    }

    fn show(&mut self, done: usize, total: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            return;
        }
        let tenths = (done * 10).checked_div(total).unwrap_or(10);
        if tenths > self.tenths_shown {
            self.tenths_shown = tenths;
            eprintln!("import: {done}/{total} rows");
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

async fn export(app_dir: &Path, db_url: &str, object: &str, format: &str) -> anyhow::Result<()> {
    use futures::StreamExt;
    use std::io::Write;
    let (schema, db) = open(app_dir, db_url).await?;
    let records = records_for(&schema, &db);
    let actor = keel_runtime::actor::Actor::system();
    let columns = match schema.object(object) {
        Some(object_def) => keel_runtime::csv_format::export_columns(
            object_def,
            records.readable_fields(&actor, object)?,
        ),
        None => Vec::new(),
    };
    let mut stream = records.export(&actor, object, None, Vec::new()).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if format == "csv" {
        out.write_all(&keel_runtime::csv_format::line(&columns)?)?;
    }
    while let Some(record) = stream.next().await {
        let record = record?;
        if format == "json" {
            serde_json::to_writer(&mut out, &record)?;
            out.write_all(b"\n")?;
        } else {
            out.write_all(&keel_runtime::csv_format::record_line(&columns, &record)?)?;
        }
    }
    out.flush()?;
    db.close().await;
    Ok(())
}

/// Creates the first user, `admin`, on a database without users (the password from
/// `KEEL_ADMIN_PASSWORD`, or a random one printed once), and says so when
/// `KEEL_ADMIN_PASSWORD` is set but there are users already.
async fn ensure_admin(db: &keel_store::Db) -> anyhow::Result<()> {
    let admin_password = std::env::var("KEEL_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let password_given = admin_password.is_some();
    match keel_runtime::accounts::bootstrap_admin(db, admin_password).await? {
        Some(created) => match created.generated_password {
            Some(password) => println!(
                "created user `{}` with the password `{password}` (shown once; set KEEL_ADMIN_PASSWORD to choose it)",
                created.username
            ),
            None => println!(
                "created user `{}` with the password from KEEL_ADMIN_PASSWORD",
                created.username
            ),
        },
        None if password_given => eprintln!(
            "warning: KEEL_ADMIN_PASSWORD is ignored: it sets the password of the first user, `admin`, and this database has users already"
        ),
        None => {}
    }
    Ok(())
}

fn print_plan(plan: &keel_store::migrate::Plan) {
    print!("{}", plan.render());
}

/// Who applies metadata from the command line: the operating-system user, when known.
fn cli_user() -> Option<String> {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
        .filter(|user| !user.is_empty())
}

/// Refuses (exit 3) an app directory whose files are an earlier recorded metadata version
/// than the latest, naming each version since (docs/studio.md).
async fn refuse_older_directory(
    app_dir: &Path,
    db: &keel_store::Db,
    schema: &keel_meta::Schema,
) -> anyhow::Result<()> {
    use keel_store::versions;
    // A database without versions (new, or from before them) has nothing newer.
    let Ok(Some(latest)) = versions::latest_number(db).await else {
        return Ok(());
    };
    let Ok(Some(ours)) = versions::with_fingerprint(db, &schema.fingerprint).await else {
        return Ok(());
    };
    if ours >= latest {
        return Ok(());
    }
    eprintln!(
        "the app directory {} holds metadata version {ours}, but the database is at version {latest}; refusing to start with older metadata. Applied since:",
        app_dir.display()
    );
    for version in versions::after(db, ours).await? {
        eprintln!(
            "  version {} by {} from {} at {}: {}",
            version.version,
            version.applied_by.as_deref().unwrap_or("(unknown)"),
            version.source.as_deref().unwrap_or("(unknown)"),
            version.applied_at.format("%Y-%m-%dT%H:%M:%SZ"),
            version.summary
        );
    }
    eprintln!(
        "run `keel metadata pull --app {} --db <url>` to write version {latest} into the directory (and commit it), then start again",
        app_dir.display()
    );
    Err(Reported(Exit::DestructiveRefused).into())
}

/// `keel metadata pull`: the latest recorded version's files into `app_dir`.
async fn metadata_pull(app_dir: &Path, db_url: &str) -> anyhow::Result<()> {
    let db = connect_existing(db_url).await?;
    let latest = keel_store::versions::latest_number(&db)
        .await
        .context("reading the recorded metadata versions")?;
    let Some(latest) = latest else {
        return Err(Failure::error(
            Exit::Database,
            "the database has no recorded metadata version yet (`keel migrate --apply` or `keel serve` records one)",
        ));
    };
    let files = match keel_store::versions::get(&db, latest).await? {
        Some((_, files)) if !files.is_empty() => files,
        _ => {
            return Err(Failure::error(
                Exit::Database,
                format!("metadata version {latest} was recorded without its files"),
            ));
        }
    };
    std::fs::create_dir_all(app_dir)
        .with_context(|| format!("cannot create {}", app_dir.display()))?;
    keel_runtime::metadata::write_app_files(app_dir, &files).map_err(|error| {
        Failure::error(
            Exit::Invalid,
            format!("cannot write {}: {error}", app_dir.display()),
        )
    })?;
    println!(
        "wrote metadata version {latest} ({} files) into {}",
        files.len(),
        app_dir.display()
    );
    db.close().await;
    Ok(())
}

async fn serve(app_dir: &Path, db_url: &str, listen: &str, demo: bool) -> anyhow::Result<()> {
    let schema = load(app_dir)?;
    let db = keel_store::Db::connect(db_url).await?;
    refuse_older_directory(app_dir, &db, &schema).await?;
    let plan = keel_store::migrate::plan(&db, &schema).await?;
    if plan.destructive().next().is_some() {
        eprintln!("the metadata needs destructive database changes; refusing to start. The plan:");
        eprint!("{}", plan.render());
        eprintln!(
            "review it, then run `keel migrate --apply --allow-destructive` (removed data is archived, not dropped)"
        );
        return Err(Reported(Exit::DestructiveRefused).into());
    }
    let user = cli_user();
    let applied = keel_store::migrate::apply_with(
        &db,
        &schema,
        keel_store::migrate::ApplyOptions {
            applied_by: user.as_deref(),
            ..keel_store::migrate::ApplyOptions::cli(false)
        },
        keel_runtime::clock::Clock::now(&keel_runtime::clock::SystemClock),
    )
    .await?;
    if !applied.steps.is_empty() {
        tracing::info!(steps = applied.steps.len(), "migrated the database");
    }
    ensure_admin(&db).await?;
    let schema = std::sync::Arc::new(schema);
    let demo_logins = if !demo {
        Vec::new()
    } else if !keel_runtime::demo::has_seed(app_dir) {
        eprintln!(
            "warning: --demo has nothing to load: {} has no seed/ directory",
            app_dir.display()
        );
        Vec::new()
    } else {
        let logins = keel_runtime::demo::load_demo_people(&db, &schema, app_dir).await?;
        load_demo_records(&schema, &db, app_dir).await?;
        logins
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    println!(
        "Keel is serving {} on http://{address}/",
        schema.app.name.text(&schema.app.language, "en")
    );
    for login in &demo_logins {
        if login.still_valid {
            println!(
                "  demo login: {} / {} ({})",
                login.username,
                login.password,
                login.roles.join(", ")
            );
        } else {
            println!(
                "  demo user: {} ({}): the demo password no longer works (changed since, or deactivated)",
                login.username,
                login.roles.join(", ")
            );
        }
    }
    // The metadata this process serves, swapped when a new version is applied here or by
    // another process (docs/studio.md).
    let live = std::sync::Arc::new(keel_runtime::metadata::Live::new(
        keel_runtime::metadata::Generation::new(
            schema,
            db.clone(),
            std::sync::Arc::new(keel_runtime::clock::SystemClock),
            applied.version,
        ),
    ));
    let state = keel_web::AppState::live(
        std::sync::Arc::clone(&live),
        db.clone(),
        Some(app_dir.to_path_buf()),
    );
    // The outbox worker of this process (docs/rules.md, "Delivery").
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut worker = keel_runtime::outbox::OutboxWorker::new(state.records().clone())
        .with_live(std::sync::Arc::clone(&live));
    if let Some(base) = std::env::var("KEEL_OUTBOX_RETRY_BASE_MS")
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
    {
        worker = worker.with_retry_base(std::time::Duration::from_millis(base));
    }
    // `KEEL_OUTBOX_WORKER=off` runs a process without one (an API-only node); the work
    // waits for a process that has one.
    let worker_on = std::env::var("KEEL_OUTBOX_WORKER").map_or(true, |value| value != "off");
    let worker = tokio::spawn(async move {
        if worker_on {
            worker.run(stopped).await;
        }
    });
    // The scheduler of this process (docs/scheduler.md): ticks every second, claims each due
    // occurrence in the database. `KEEL_SCHEDULER=off` leaves it out (an API-only node);
    // `KEEL_SCHEDULER_TICK_MS` and `KEEL_SCHEDULER_LEASE_SECS` tune it (tests shorten them).
    let scheduler = std::sync::Arc::clone(state.scheduler());
    if let Some(seconds) = std::env::var("KEEL_SCHEDULER_LEASE_SECS")
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .filter(|seconds| *seconds > 0)
    {
        scheduler.set_lease(std::time::Duration::from_secs(seconds));
    }
    let tick = std::env::var("KEEL_SCHEDULER_TICK_MS")
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .filter(|millis| *millis > 0)
        .map_or(
            keel_runtime::scheduler::DEFAULT_TICK,
            std::time::Duration::from_millis,
        );
    let scheduler_on = std::env::var("KEEL_SCHEDULER").map_or(true, |value| value != "off");
    let scheduler_stopped = stop.subscribe();
    let scheduler = tokio::spawn(async move {
        if scheduler_on {
            scheduler.run(tick, scheduler_stopped).await;
        }
    });
    // Versions other processes apply: noticed within a poll (docs/studio.md).
    let follower = tokio::spawn(keel_runtime::metadata::follow(
        live,
        db,
        Some(app_dir.to_path_buf()),
        stop.subscribe(),
    ));
    let served = keel_web::serve(listener, state).await;
    let _ = stop.send(true);
    let _ = worker.await;
    let _ = scheduler.await;
    let _ = follower.await;
    served?;
    Ok(())
}
