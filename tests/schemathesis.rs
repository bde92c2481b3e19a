//! The OpenAPI document holds against a fuzzer that no one here wrote: schemathesis (PyPI
//! `schemathesis`, CLI `st`) runs every check, with a fixed seed and a bounded number of
//! examples, against a real `keel serve` on loopback — for the standard app (the coverage,
//! fuzzing and stateful phases) and every template of `templates/` (fuzzing and stateful: see
//! [`Phases`]), on SQLite and on PostgreSQL — and any failure fails the test.
//!
//! CI installs schemathesis (`.ci/run`); under `CI=true` a missing `st` fails the test.
//! Locally it is skipped with a message printed past the test harness's capture, so a skip
//! is never mistaken for a pass. The run's settings, and the few documented exceptions, are
//! in `.ci/schemathesis.toml`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{AppDir, keel_binary, repository_root, send_json, text};

const ADMIN_PASSWORD: &str = "schemathesis-admin-pw";

/// `keel serve`, killed when dropped.
struct Server {
    child: Child,
    base_url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `keel serve` for `app` on `db_url` on a free loopback port, and waits (at most
/// 120 s) for the line that says where it listens.
fn start_server(app: &Path, db_url: &str) -> Server {
    let mut child = Command::new(keel_binary())
        .args([
            "serve",
            "--app",
            app.to_str().unwrap(),
            "--db",
            db_url,
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(app)
        .env("KEEL_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("KEEL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn keel serve");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        match receiver.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => {
                if let Some(address) = line.split("http://").nth(1) {
                    return Server {
                        child,
                        base_url: format!("http://{}", address.trim_end_matches('/')),
                    };
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("keel serve did not start");
            }
        }
    }
}

/// The schemathesis CLI, when installed.
fn schemathesis() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| [dir.join("st"), dir.join("schemathesis")])
        .find(|candidate| candidate.is_file())
}

/// Which of schemathesis's phases a run takes.
#[derive(Clone, Copy)]
enum Phases {
    /// Every phase of `.ci/schemathesis.toml`: coverage (the boundary values of every
    /// parameter, about 96,000 cases for the standard app), fuzzing and stateful.
    All,
    /// Fuzzing and stateful only. A template is served by the same handlers as the
    /// standard app, which the coverage phase already walks; what differs is the document
    /// built from its metadata (its objects, fields, choices, pools and processes), which
    /// the fuzzing phase's examples of every operation exercise — at a few minutes less
    /// per template and database.
    NoCoverage,
}

/// Runs schemathesis against `app` served on `db_url`; panics with its report on any
/// failure.
async fn fuzz(app: &Path, db_url: &str, phases: Phases) {
    let Some(st) = schemathesis() else {
        keel_testkit::skip_tool_locally_or_fail_in_ci(
            "schemathesis",
            "python3 -m pip install schemathesis==4.32.5",
        );
        return;
    };
    // A copy: the studio's apply (in the document, so fuzzed) writes the app's files.
    let copy = AppDir::copy_of(app);
    let server = start_server(copy.path(), db_url);
    let client = reqwest::Client::new();
    let (_, login) = send_json(
        client
            .post(format!("{}/api/v1/auth/login", server.base_url))
            .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD })),
    )
    .await;
    let token = login["token"].as_str().expect("a token").to_owned();
    // The document as the signed-in admin sees it, saved for the CLI.
    let document: Value = client
        .get(format!("{}/api/v1/openapi.json", server.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let document_path = dir.path().join("openapi.json");
    std::fs::write(&document_path, document.to_string()).unwrap();
    let config = repository_root().join(".ci/schemathesis.toml");
    let output = Command::new(st)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(&document_path)
        .args(["--url", &format!("{}/api/v1", server.base_url)])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg("--report-dir")
        .arg(dir.path().join("report"))
        .args(match phases {
            Phases::All => &[][..],
            Phases::NoCoverage => &["--phases", "fuzzing,stateful"][..],
        })
        .arg("--no-color")
        .current_dir(dir.path())
        .output()
        .expect("run schemathesis");
    let report = text(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures in the API of {} on {}:\n{report}\n{}",
        app.display(),
        db_url.split(':').next().unwrap_or(""),
        text(&output.stderr)
    );
    // The summary, for the log of a passing run.
    let summary: Vec<&str> = report.lines().rev().take(12).collect();
    let _ = writeln!(
        std::io::stderr().lock(),
        "schemathesis, {}: {}",
        app.display(),
        summary.into_iter().rev().collect::<Vec<_>>().join(" | ")
    );
}

keel_testkit::db_test!(
    schemathesis_finds_no_failure_in_the_standard_app_api,
    |db| async move {
        fuzz(&repository_root(), &db.url, Phases::All).await;
    }
);

keel_testkit::db_test!(
    schemathesis_finds_no_failure_in_the_api_of_any_template,
    |db| async move {
        // Every template in templates/ (found by listing it), each on a fresh database.
        let backend = db.backend;
        let mut first = Some(db);
        for template in crate::templates::template_dirs() {
            let db = match first.take() {
                Some(db) => db,
                None => keel_testkit::TestDb::new(backend).await.unwrap(),
            };
            fuzz(&template, &db.url, Phases::NoCoverage).await;
        }
    }
);
