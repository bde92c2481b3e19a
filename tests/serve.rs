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
struct Server {
    child: Child,
    base_url: String,
    stdout_lines: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_command(app: &AppDir, db_url: &str) -> Command {
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
fn start_server(mut command: Command) -> Server {
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
