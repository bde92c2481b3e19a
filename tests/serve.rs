//! `keel serve` and `keel user add` as a user runs them: the real binary, a fresh database
//! (SQLite file or PostgreSQL database), real HTTP on loopback.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{AppDir, keel_binary, run_keel, text};

const APP: &str = "name: { en: Serve test, zh: 服务测试 }\n";
const ROLES: &str = "roles:\n  admin: { admin: true }\n  sales_rep: {}\n";
const LEAD_V1: &str =
    "name: lead\nfields:\n  name: { type: text, required: true }\n  phone: { type: phone }\n";
const LEAD_V2_WITHOUT_PHONE: &str = "name: lead\nfields:\n  name: { type: text, required: true }\n";

fn app_v1() -> AppDir {
    AppDir::new(&[
        ("metadata/app.yaml", APP),
        ("metadata/roles.yaml", ROLES),
        ("metadata/objects/lead.yaml", LEAD_V1),
    ])
}

/// A running `keel serve`; killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) base_url: String,
    pub(crate) stdout_lines: Vec<String>,
    /// Standard output after the line that says where it listens.
    more: mpsc::Receiver<String>,
}

impl Server {
    /// The next line of standard output (waiting at most 60 s).
    pub(crate) fn next_line(&mut self) -> String {
        self.more
            .recv_timeout(Duration::from_secs(60))
            .expect("another line from keel serve")
    }
}

impl Server {
    /// Kills the process with SIGKILL (no chance to finish anything) and reaps it.
    pub(crate) fn kill_hard(mut self) {
        self.child.kill().expect("SIGKILL keel serve");
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn serve_command(app: &AppDir, db_url: &str) -> Command {
    let mut command = Command::new(keel_binary());
    command
        .args([
            "serve",
            "--app",
            app.path().to_str().unwrap(),
            "--db",
            db_url,
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(app.path())
        .env_remove("KEEL_ADMIN_PASSWORD")
        .env("KEEL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Starts `keel serve` and waits (at most 60 s) for the line that says where it listens.
pub(crate) fn start_server(mut command: Command) -> Server {
    let mut child = command.spawn().expect("spawn keel serve");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdout_lines = Vec::new();
    loop {
        match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let listening = line
                    .split("http://")
                    .nth(1)
                    .map(|rest| rest.trim_end_matches('/').to_owned());
                stdout_lines.push(line);
                if let Some(address) = listening {
                    return Server {
                        child,
                        base_url: format!("http://{address}"),
                        stdout_lines,
                        more: receiver,
                    };
                }
            }
            Err(_) => {
                let _ = child.kill();
                let output = child.wait_with_output().expect("wait");
                panic!(
                    "keel serve did not start; stdout so far: {stdout_lines:?}; stderr:\n{}",
                    text(&output.stderr)
                );
            }
        }
    }
}

keel_testkit::db_test!(
    serve_on_a_fresh_database_migrates_creates_admin_and_answers_healthz,
    |db| async move {
        let app = app_v1();
        let server = start_server(serve_command(&app, &db.url));
        let admin_line = server
            .stdout_lines
            .iter()
            .find(|line| line.contains("created user `admin`"));
        assert!(
            admin_line.is_some_and(|line| line.contains("with the password `")),
            "{:?}",
            server.stdout_lines
        );

        let response = reqwest::get(format!("{}/api/v1/healthz", server.base_url))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok");
        drop(server);

        if db.backend == keel_testkit::Backend::Sqlite {
            let path = db.url.trim_start_matches("sqlite://");
            assert!(
                std::path::Path::new(path).is_file(),
                "the SQLite file {path} was not created"
            );
        }
        // The plan is now empty, and a second start creates no second admin.
        let output = run_keel(
            &[
                "migrate",
                "--plan",
                "--app",
                app.path().to_str().unwrap(),
                "--db",
                &db.url,
            ],
            app.path(),
        );
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(
            text(&output.stdout).contains("nothing to do"),
            "{}",
            text(&output.stdout)
        );
        let server = start_server(serve_command(&app, &db.url));
        assert!(
            !server
                .stdout_lines
                .iter()
                .any(|line| line.contains("created user")),
            "{:?}",
            server.stdout_lines
        );
    }
);

keel_testkit::db_test!(
    serve_takes_the_admin_password_from_the_environment,
    |db| async move {
        let app = app_v1();
        let mut command = serve_command(&app, &db.url);
        command.env("KEEL_ADMIN_PASSWORD", "s3cret-admin-pw");
        let server = start_server(command);
        assert!(
            server.stdout_lines.iter().any(|line| line
                .contains("created user `admin` with the password from KEEL_ADMIN_PASSWORD")),
            "{:?}",
            server.stdout_lines
        );
        assert!(
            !server
                .stdout_lines
                .iter()
                .any(|line| line.contains("s3cret-admin-pw"))
        );
    }
);

/// The resident memory of a process, in KiB, from `/proc` (Linux).
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc status")
}

keel_testkit::db_test!(
    sign_ins_do_not_leave_their_password_hashing_memory_resident,
    |db| async move {
        // Each sign-in hashes with argon2 in 19 MiB. With glibc's default, adaptive mmap
        // threshold every sign-in after the first kept those 19 MiB resident (three
        // sign-ins: +39 MB); the server fixes the threshold (engine/cli/src/main.rs).
        let app = app_v1();
        let mut command = serve_command(&app, &db.url);
        command.env("KEEL_ADMIN_PASSWORD", "s3cret-admin-pw");
        let server = start_server(command);
        assert_eq!(
            login_status(&server.base_url, "admin", "s3cret-admin-pw").await,
            200
        );
        let after_first = resident_kib(server.child.id());
        for _ in 0..4 {
            assert_eq!(
                login_status(&server.base_url, "admin", "s3cret-admin-pw").await,
                200
            );
        }
        let after_five = resident_kib(server.child.id());
        assert!(
            after_five < after_first + 10 * 1024,
            "resident memory grew from {after_first} KiB to {after_five} KiB over four sign-ins"
        );
    }
);

keel_testkit::db_test!(
    serve_refuses_to_start_when_the_metadata_needs_a_destructive_change,
    |db| async move {
        let app = app_v1();
        drop(start_server(serve_command(&app, &db.url)));

        app.write("metadata/objects/lead.yaml", LEAD_V2_WITHOUT_PHONE);
        let output = serve_command(&app, &db.url).output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(3),
            "stdout:\n{}\nstderr:\n{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        let stderr = text(&output.stderr);
        assert!(stderr.contains("refusing to start"), "{stderr}");
        assert!(
            stderr.contains("lead.phone"),
            "the plan should name the removed column: {stderr}"
        );
    }
);

keel_testkit::db_test!(
    user_add_creates_a_user_with_roles_manager_and_department,
    |db| async move {
        let app = app_v1();
        let app_dir = app.path().to_str().unwrap();
        let migrate = run_keel(
            &["migrate", "--apply", "--app", app_dir, "--db", &db.url],
            app.path(),
        );
        assert!(migrate.status.success(), "{}", text(&migrate.stderr));
        let add = |args: &[&str]| {
            let mut all = vec!["user", "add"];
            all.extend_from_slice(args);
            all.extend_from_slice(&["--app", app_dir, "--db", &db.url]);
            run_keel(&all, app.path())
        };
        let output = add(&[
            "wang",
            "--password",
            "password-1",
            "--role",
            "sales_rep",
            "--department",
            "east",
        ]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let output = add(&[
            "li",
            "--password",
            "password-2",
            "--role",
            "sales_rep",
            "--manager",
            "wang",
        ]);
        assert!(output.status.success(), "{}", text(&output.stderr));

        let output = add(&["zhao", "--password", "password-3", "--role", "intern"]);
        assert_eq!(output.status.code(), Some(1));
        assert!(
            text(&output.stderr).contains("`intern` is not a role of this app"),
            "{}",
            text(&output.stderr)
        );
        let output = add(&["wang", "--password", "password-4"]);
        assert_ne!(output.status.code(), Some(0));
        assert!(
            text(&output.stderr).contains("wang"),
            "{}",
            text(&output.stderr)
        );
        let output = add(&["zhou", "--password", "short"]);
        assert_eq!(output.status.code(), Some(1));
        let output = add(&["sun", "--password", "password-5", "--manager", "nobody"]);
        assert_ne!(output.status.code(), Some(0));
        assert!(
            text(&output.stderr).contains("nobody"),
            "{}",
            text(&output.stderr)
        );
    }
);

keel_testkit::db_test!(
    user_add_stores_the_email_address_and_refuses_a_bad_one,
    |db| async move {
        let app = app_v1();
        migrate_apply(&app, &db.url);
        let app_dir = app.path().to_str().unwrap();
        let add = |args: &[&str]| {
            let mut all = vec!["user", "add"];
            all.extend_from_slice(args);
            all.extend_from_slice(&["--app", app_dir, "--db", &db.url]);
            run_keel(&all, app.path())
        };
        let output = add(&[
            "wang",
            "--password",
            "password-1",
            "--email",
            "wang@example.com",
        ]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let output = add(&["li", "--password", "password-2"]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let output = add(&[
            "zhao",
            "--password",
            "password-3",
            "--email",
            "zhao at example.com",
        ]);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
        assert!(
            text(&output.stderr).contains("`zhao at example.com` is not an email address"),
            "{}",
            text(&output.stderr)
        );

        let rows = sql_rows(
            &db.url,
            "SELECT username, COALESCE(email, '-') FROM keel_users ORDER BY username",
        )
        .await;
        assert_eq!(
            rows,
            [
                vec!["admin".to_owned(), "-".to_owned()],
                vec!["li".to_owned(), "-".to_owned()],
                vec!["wang".to_owned(), "wang@example.com".to_owned()],
            ]
        );
    }
);

/// `keel` with `args`, no inherited KEEL_* settings and no `KEEL_LOG`: as a user runs it.
fn keel_as_user(args: &[&str], cwd: &std::path::Path) -> Command {
    let mut command = Command::new(keel_binary());
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("KEEL_APP")
        .env_remove("KEEL_DB")
        .env_remove("KEEL_LISTEN")
        .env_remove("KEEL_ADMIN_PASSWORD")
        .env_remove("KEEL_USER_PASSWORD")
        .env_remove("KEEL_LOG");
    command
}

fn migrate_apply(app: &AppDir, db_url: &str) {
    let output = run_keel(
        &[
            "migrate",
            "--apply",
            "--app",
            app.path().to_str().unwrap(),
            "--db",
            db_url,
        ],
        app.path(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
}

/// The status of signing in as `username` with `password`.
async fn login_status(base_url: &str, username: &str, password: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base_url}/api/v1/auth/login"))
        .json(&serde_json::json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Rows of text columns from `query`, on either database.
pub(crate) async fn sql_rows(db_url: &str, query: &str) -> Vec<Vec<String>> {
    fn texts<R: sqlx::Row>(rows: &[R]) -> Vec<Vec<String>>
    where
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        usize: sqlx::ColumnIndex<R>,
    {
        rows.iter()
            .map(|row| (0..row.len()).map(|i| row.get::<String, _>(i)).collect())
            .collect()
    }
    if db_url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(db_url).await.unwrap();
        let rows = sqlx::query(sqlx::AssertSqlSafe(query))
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        texts(&rows)
    } else {
        let pool = sqlx::PgPool::connect(db_url).await.unwrap();
        let rows = sqlx::query(sqlx::AssertSqlSafe(query))
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        texts(&rows)
    }
}

keel_testkit::db_test!(
    user_add_reads_the_password_from_standard_input_or_the_environment,
    |db| async move {
        let app = app_v1();
        migrate_apply(&app, &db.url);
        let app_dir = app.path().to_str().unwrap();
        let add = |name: &str, extra: &[&str]| {
            let mut args = vec!["user", "add", name, "--app", app_dir, "--db", &db.url];
            args.extend_from_slice(extra);
            keel_as_user(&args, app.path())
        };

        let mut child = add("li", &["--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"from-stdin-pw\n").unwrap();
        }
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));

        let output = add("zhou", &[])
            .env("KEEL_USER_PASSWORD", "from-env-pw")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));

        let output = add("nopw", &[]).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
        assert!(
            text(&output.stderr).contains("--password-stdin"),
            "{}",
            text(&output.stderr)
        );

        let server = start_server(serve_command(&app, &db.url));
        assert_eq!(
            login_status(&server.base_url, "li", "from-stdin-pw").await,
            200
        );
        assert_eq!(
            login_status(&server.base_url, "zhou", "from-env-pw").await,
            200
        );
        assert_eq!(
            login_status(&server.base_url, "li", "from-env-pw").await,
            401
        );
    }
);

keel_testkit::db_test!(
    commands_other_than_serve_and_migrate_apply_refuse_a_database_that_does_not_exist,
    |db| async move {
        let app = app_v1();
        app.write("leads.csv", "name\nA\n");
        let app_dir = app.path().to_str().unwrap().to_owned();
        // On SQLite, a newcomer's mistyped or not yet created default: `sqlite://data/keel.db`
        // relative to the working directory. On PostgreSQL, a database without Keel's tables.
        let db_url = match db.backend {
            keel_testkit::Backend::Sqlite => "sqlite://data/keel.db".to_owned(),
            keel_testkit::Backend::Postgres => db.url.clone(),
        };
        let commands: [Vec<&str>; 3] = [
            vec!["export", "lead"],
            vec!["import", "lead", "leads.csv"],
            vec!["user", "add", "li", "--password", "password-1"],
        ];
        for command in &commands {
            let mut args = command.clone();
            args.extend_from_slice(&["--app", &app_dir, "--db", &db_url]);
            let output = run_keel(&args, app.path());
            assert_eq!(
                output.status.code(),
                Some(4),
                "{command:?}: {}",
                text(&output.stderr)
            );
            let stderr = text(&output.stderr);
            let expected = match db.backend {
                keel_testkit::Backend::Sqlite => "there is no database data/keel.db",
                keel_testkit::Backend::Postgres => "has no Keel tables",
            };
            assert!(
                stderr.contains(expected) && stderr.contains("--db"),
                "{command:?}: {stderr}"
            );
        }

        // `migrate --plan` shows what `--apply` would do and writes nothing.
        let output = run_keel(
            &["migrate", "--plan", "--app", &app_dir, "--db", &db_url],
            app.path(),
        );
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(
            text(&output.stdout).contains("lead"),
            "{}",
            text(&output.stdout)
        );
        match db.backend {
            keel_testkit::Backend::Sqlite => {
                assert!(
                    !app.path().join("data").exists(),
                    "migrate --plan created data/"
                );
            }
            keel_testkit::Backend::Postgres => {
                let tables = sql_rows(
                    &db.url,
                    "SELECT table_name::text FROM information_schema.tables \
                     WHERE table_schema = current_schema()",
                )
                .await;
                assert!(tables.is_empty(), "migrate --plan created {tables:?}");
            }
        }
    }
);

#[test]
fn usage_errors_exit_2_and_name_the_problem_once() {
    let app = app_v1();
    let app_dir = app.path().to_str().unwrap();
    let output = run_keel(
        &[
            "export",
            "lead",
            "--app",
            app_dir,
            "--db",
            "mysql://x@localhost/crm",
        ],
        app.path(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("mysql://"),
        "{}",
        text(&output.stderr)
    );

    let missing = app.path().join("no-such-app");
    let missing = missing.to_str().unwrap();
    let output = run_keel(&["check", "--app", missing], app.path());
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.matches(missing).count(), 1, "{stderr}");

    let output = run_keel(
        &["import", "lead", "missing.csv", "--app", app_dir],
        app.path(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("there is no file missing.csv"),
        "{}",
        text(&output.stderr)
    );
}

keel_testkit::db_test!(commands_print_no_log_lines_unless_asked, |db| async move {
    let app = app_v1();
    let app_dir = app.path().to_str().unwrap();
    let args = ["migrate", "--apply", "--app", app_dir, "--db", &db.url];
    let output = keel_as_user(&args, app.path()).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stderr), "");
    let output = keel_as_user(&args, app.path())
        .env("KEEL_LOG", "info")
        .output()
        .unwrap();
    assert!(
        text(&output.stderr).contains("INFO"),
        "KEEL_LOG still turns logs on: {}",
        text(&output.stderr)
    );
});

keel_testkit::db_test!(
    an_ignored_keel_admin_password_is_reported,
    |db| async move {
        let app = app_v1();
        let app_dir = app.path().to_str().unwrap();
        let args = ["migrate", "--apply", "--app", app_dir, "--db", &db.url];
        let first = keel_as_user(&args, app.path())
            .env("KEEL_ADMIN_PASSWORD", "first-admin-pw")
            .output()
            .unwrap();
        assert!(
            text(&first.stdout)
                .contains("created user `admin` with the password from KEEL_ADMIN_PASSWORD"),
            "{}",
            text(&first.stdout)
        );
        assert!(!text(&first.stderr).contains("ignored"));
        let again = keel_as_user(&args, app.path())
            .env("KEEL_ADMIN_PASSWORD", "second-admin-pw")
            .output()
            .unwrap();
        assert!(again.status.success());
        assert!(
            text(&again.stderr).contains("warning: KEEL_ADMIN_PASSWORD is ignored"),
            "{}",
            text(&again.stderr)
        );
    }
);

keel_testkit::db_test!(
    a_demo_restart_prints_only_the_demo_passwords_that_still_work,
    |db| async move {
        let app = app_v1();
        app.write(
            "seed/users.csv",
            "username,display_name,password,roles,email\nwang,王,demo1234,sales_rep,wang@example.com\nli,李,demo1234,sales_rep,\n",
        );
        app.write("seed/lead.csv", "name,owner\n无主线索,\n王的线索,wang\n");
        let demo = |app: &AppDir| {
            let mut command = serve_command(app, &db.url);
            command.arg("--demo");
            command
        };
        let mut server = start_server(demo(&app));
        let logins = [server.next_line(), server.next_line()];
        assert_eq!(
            logins,
            [
                "  demo login: wang / demo1234 (sales_rep)",
                "  demo login: li / demo1234 (sales_rep)"
            ]
        );
        assert!(
            server
                .stdout_lines
                .iter()
                .any(|line| line == "  demo data: 2 lead records"),
            "{:?}",
            server.stdout_lines
        );
        drop(server);
        let owners = sql_rows(
            &db.url,
            "SELECT lead.name, keel_users.username FROM lead \
             JOIN keel_users ON keel_users.id = lead.owner ORDER BY keel_users.username",
        )
        .await;
        assert_eq!(
            owners,
            [
                vec!["无主线索".to_owned(), "admin".to_owned()],
                vec!["王的线索".to_owned(), "wang".to_owned()]
            ]
        );
        let emails = sql_rows(
            &db.url,
            "SELECT username, COALESCE(email, '-') FROM keel_users ORDER BY username",
        )
        .await;
        assert_eq!(
            emails,
            [
                vec!["admin".to_owned(), "-".to_owned()],
                vec!["li".to_owned(), "-".to_owned()],
                vec!["wang".to_owned(), "wang@example.com".to_owned()]
            ]
        );

        // li's password changes (to admin's): a restart no longer offers it.
        sql_rows(
            &db.url,
            "UPDATE keel_users SET password_hash = \
             (SELECT password_hash FROM keel_users WHERE username = 'admin') \
             WHERE username = 'li' RETURNING username",
        )
        .await;
        let mut server = start_server(demo(&app));
        let logins = [server.next_line(), server.next_line()];
        assert_eq!(logins[0], "  demo login: wang / demo1234 (sales_rep)");
        assert!(
            logins[1].starts_with("  demo user: li (sales_rep): the demo password no longer works"),
            "{logins:?}"
        );
        assert!(
            !server
                .stdout_lines
                .iter()
                .any(|line| line.contains("demo data")),
            "a restart imports nothing twice: {:?}",
            server.stdout_lines
        );
    }
);

keel_testkit::db_test!(
    demo_says_so_when_the_app_has_no_seed_data,
    |db| async move {
        let app = app_v1();
        let stderr_path = app.path().join("stderr.txt");
        let mut command = serve_command(&app, &db.url);
        command
            .arg("--demo")
            .stderr(std::fs::File::create(&stderr_path).unwrap());
        let server = start_server(command);
        drop(server);
        let stderr = std::fs::read_to_string(&stderr_path).unwrap();
        assert!(
            stderr.contains("warning: --demo has nothing to load") && stderr.contains("no seed/"),
            "{stderr}"
        );
    }
);
