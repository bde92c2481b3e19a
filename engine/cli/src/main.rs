//! `keel`: the command-line entry point. It parses arguments, wires configuration, the
//! database, the runtime and the web server together, and maps failures to exit codes.
//!
//! It holds no business logic: every command is a few calls into `keel-meta`, `keel-store`,
//! `keel-runtime` and `keel-web`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

/// Exit codes, stable for scripts: 0 success, 1 invalid input (metadata, arguments, data),
/// 2 usage (clap), 3 a destructive migration was refused, 4 the database failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Invalid = 1,
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
    /// Migrate additive changes, then serve the HTTP API (there is no web UI yet).
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
    /// Import a CSV file (header row = field names) through the write path. Resumable: run it
    /// again with the same file after an interruption and each row is imported exactly once.
    Import {
        /// The object to import into, e.g. `lead`.
        object: String,
        /// The CSV file.
        file: PathBuf,
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        #[command(flatten)]
        app: AppArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Export every record of an object to standard output.
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
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user.
    Add {
        /// The login name.
        name: String,
        #[arg(long)]
        password: String,
        /// A role from roles.yaml; repeat for several.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// The user's manager (a username).
        #[arg(long)]
        manager: Option<String>,
        /// The user's department (created if missing).
        #[arg(long)]
        department: Option<String>,
        #[command(flatten)]
        app: AppArgs,
        #[command(flatten)]
        db: DbArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEEL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
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
            let exit = if error.downcast_ref::<keel_store::StoreError>().is_some() {
                Exit::Database
            } else {
                Exit::Invalid
            };
            ExitCode::from(exit as u8)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
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
        } => {
            let schema = load(&app.app)?;
            let db = keel_store::Db::connect(&db.db).await?;
            let plan = keel_store::migrate::plan(&db, &schema).await?;
            if !apply {
                print_plan(&plan);
                return Ok(());
            }
            if plan.destructive().next().is_some() && !allow_destructive {
                print_plan(&plan);
                eprintln!(
                    "refusing to apply destructive steps (marked !) without --allow-destructive"
                );
                return Err(Reported(Exit::DestructiveRefused).into());
            }
            let applied = keel_store::migrate::apply(&db, &schema, allow_destructive).await?;
            if applied.steps.is_empty() {
                println!("nothing to do: the database matches the metadata");
            } else {
                println!("applied {} steps:", applied.steps.len());
                print_plan(&keel_store::migrate::Plan {
                    steps: applied.steps,
                    ..Default::default()
                });
            }
            db.close().await;
            Ok(())
        }
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
            app,
            db,
        } => import(&app.app, &db.db, &object, &file, batch).await,
        Command::Export {
            object,
            format,
            app,
            db,
        } => export(&app.app, &db.db, &object, &format).await,
        Command::User {
            command:
                UserCommand::Add {
                    name,
                    password,
                    roles,
                    manager,
                    department,
                    app,
                    db,
                },
        } => {
            let schema = load(&app.app)?;
            let db = keel_store::Db::connect(&db.db).await?;
            keel_store::migrate::apply(&db, &schema, false)
                .await
                .context("the database must match the metadata before users can be added (see `keel migrate --plan`)")?;
            let request = keel_runtime::accounts::NewUser {
                username: name.clone(),
                display_name: None,
                password,
                roles: if roles.is_empty() { vec![] } else { roles },
                manager,
                department,
                language: None,
            };
            keel_runtime::accounts::add_user(&db, &schema, request).await?;
            println!("added user {name}");
            db.close().await;
            Ok(())
        }
    }
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

/// Imports `seed/<object>.csv` for every object that has one. Seed imports are resumable
/// imports, so starting with `--demo` again adds nothing twice.
async fn load_demo_records(
    schema: &std::sync::Arc<keel_meta::Schema>,
    db: &keel_store::Db,
    app_dir: &Path,
) -> anyhow::Result<()> {
    let records = keel_runtime::records::Records::new(
        schema.clone(),
        db.clone(),
        std::sync::Arc::new(keel_runtime::clock::SystemClock),
    );
    for object in schema.objects.keys() {
        let path = app_dir.join("seed").join(format!("{object}.csv"));
        if !path.is_file() {
            continue;
        }
        let report = keel_runtime::import::import_csv(
            &records,
            &keel_runtime::actor::Actor::system(),
            object,
            &path,
            500,
            |_, _| {},
        )
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

/// Loads the app, connects, and applies safe migrations: what every data command needs.
async fn open(
    app_dir: &Path,
    db_url: &str,
) -> anyhow::Result<(std::sync::Arc<keel_meta::Schema>, keel_store::Db)> {
    let schema = std::sync::Arc::new(load(app_dir)?);
    let db = keel_store::Db::connect(db_url).await?;
    keel_store::migrate::apply(&db, &schema, false)
        .await
        .context("the database must match the metadata first (see `keel migrate --plan`)")?;
    Ok((schema, db))
}

async fn import(
    app_dir: &Path,
    db_url: &str,
    object: &str,
    file: &Path,
    batch: usize,
) -> anyhow::Result<()> {
    let (schema, db) = open(app_dir, db_url).await?;
    let records = keel_runtime::records::Records::new(
        schema,
        db.clone(),
        std::sync::Arc::new(keel_runtime::clock::SystemClock),
    );
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = keel_runtime::import::import_csv(
        &records,
        &keel_runtime::actor::Actor::system(),
        object,
        file,
        batch,
        |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )
    .await?;
    bar.finish_and_clear();
    println!(
        "{}: {} rows; {} imported, {} already imported earlier, {} refused",
        file.display(),
        report.total,
        report.created,
        report.skipped,
        report.failed.len()
    );
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

async fn export(app_dir: &Path, db_url: &str, object: &str, format: &str) -> anyhow::Result<()> {
    use futures::StreamExt;
    use std::io::Write;
    let (schema, db) = open(app_dir, db_url).await?;
    let records = keel_runtime::records::Records::new(
        schema,
        db.clone(),
        std::sync::Arc::new(keel_runtime::clock::SystemClock),
    );
    let actor = keel_runtime::actor::Actor::system();
    let mut stream = records.export(&actor, object, None, Vec::new()).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if format == "json" {
        while let Some(record) = stream.next().await {
            serde_json::to_writer(&mut out, &record?)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        db.close().await;
        return Ok(());
    }
    let mut writer = csv::Writer::from_writer(out);
    let mut columns: Option<Vec<String>> = None;
    while let Some(record) = stream.next().await {
        let record = record?;
        let Some(map) = record.as_object() else {
            continue;
        };
        if columns.is_none() {
            let header: Vec<String> = map.keys().cloned().collect();
            writer.write_record(&header)?;
            columns = Some(header);
        }
        let cells: Vec<String> = columns
            .iter()
            .flatten()
            .map(|column| csv_cell(map.get(column)))
            .collect();
        writer.write_record(&cells)?;
    }
    writer.flush()?;
    db.close().await;
    Ok(())
}

fn csv_cell(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|item| csv_cell(Some(item)))
            .collect::<Vec<_>>()
            .join(";"),
        Some(other) => other.to_string(),
    }
}

fn print_plan(plan: &keel_store::migrate::Plan) {
    print!("{}", plan.render());
}

async fn serve(app_dir: &Path, db_url: &str, listen: &str, demo: bool) -> anyhow::Result<()> {
    let schema = load(app_dir)?;
    let db = keel_store::Db::connect(db_url).await?;
    let plan = keel_store::migrate::plan(&db, &schema).await?;
    if plan.destructive().next().is_some() {
        eprintln!("the metadata needs destructive database changes; refusing to start. The plan:");
        eprint!("{}", plan.render());
        eprintln!(
            "review it, then run `keel migrate --apply --allow-destructive` (removed data is archived, not dropped)"
        );
        return Err(Reported(Exit::DestructiveRefused).into());
    }
    let applied = keel_store::migrate::apply(&db, &schema, false).await?;
    if !applied.steps.is_empty() {
        tracing::info!(steps = applied.steps.len(), "migrated the database");
    }
    let admin_password = std::env::var("KEEL_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    if let Some(created) = keel_runtime::accounts::bootstrap_admin(&db, admin_password).await? {
        match created.generated_password {
            Some(password) => println!(
                "created user `{}` with the password `{password}` (shown once; set KEEL_ADMIN_PASSWORD to choose it)",
                created.username
            ),
            None => println!(
                "created user `{}` with the password from KEEL_ADMIN_PASSWORD",
                created.username
            ),
        }
    }
    let schema = std::sync::Arc::new(schema);
    let demo_logins = if demo {
        let logins = keel_runtime::demo::load_demo_people(&db, &schema, app_dir).await?;
        load_demo_records(&schema, &db, app_dir).await?;
        logins
    } else {
        Vec::new()
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
        println!(
            "  demo login: {} / {} ({})",
            login.username,
            login.password,
            login.roles.join(", ")
        );
    }
    let state = keel_web::AppState::new(schema, db);
    keel_web::serve(listener, state).await?;
    Ok(())
}
