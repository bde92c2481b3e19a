//! `keel import` and `keel export` as a user runs them: the real binary on both databases,
//! including an import killed with SIGKILL halfway and run again.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{AppDir, keel_binary, run_keel, text};

const APP: &str = "name: Import test\n";
const ROLES: &str = "roles:\n  admin: { admin: true }\n";
const LEAD: &str = "\
name: lead
title: name
fields:
  name: { type: text, required: true }
  phone: { type: phone }
  score: { type: integer, min: 0, max: 100 }
  tags: { type: multi_choice, options: [hot, cold] }
";

fn app() -> AppDir {
    AppDir::new(&[
        ("metadata/app.yaml", APP),
        ("metadata/roles.yaml", ROLES),
        ("metadata/objects/lead.yaml", LEAD),
    ])
}

fn csv(rows: usize, bad_every: Option<usize>) -> String {
    let mut text = String::from("name,phone,score,tags\n");
    for i in 0..rows {
        let score = if bad_every.is_some_and(|every| i % every == every - 1) {
            500
        } else {
            i % 100
        };
        writeln!(text, "客户{i},1380013{:04},{score},hot;cold", i % 10_000).unwrap();
    }
    text
}

async fn lead_count(db_url: &str) -> i64 {
    let query = "SELECT count(*) FROM lead WHERE deleted_at IS NULL";
    if db_url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(db_url).await.unwrap();
        let count: i64 = sqlx::query_scalar(query).fetch_one(&pool).await.unwrap();
        pool.close().await;
        count
    } else {
        let pool = sqlx::PgPool::connect(db_url).await.unwrap();
        let count: i64 = sqlx::query_scalar(query).fetch_one(&pool).await.unwrap();
        pool.close().await;
        count
    }
}

keel_testkit::db_test!(
    an_import_killed_halfway_and_run_again_imports_every_row_once,
    |db| async move {
        let app = app();
        let rows = 6_000;
        app.write("leads.csv", &csv(rows, None));
        let app_dir = app.path().to_str().unwrap().to_owned();
        let args = [
            "import",
            "lead",
            "leads.csv",
            "--batch",
            "100",
            "--app",
            &app_dir,
            "--db",
            &db.url,
        ];
        // Create the tables first, so the count below can run while the import does.
        let migrate = run_keel(
            &["migrate", "--apply", "--app", &app_dir, "--db", &db.url],
            app.path(),
        );
        assert!(migrate.status.success(), "{}", text(&migrate.stderr));

        let mut child = Command::new(keel_binary())
            .args(args)
            .current_dir(app.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut seen = 0;
        while started.elapsed() < Duration::from_secs(120) {
            seen = lead_count(&db.url).await;
            if seen > 0 || child.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let after_kill = lead_count(&db.url).await;
        assert!(after_kill >= seen, "rows imported before the kill stay");
        assert_eq!(
            after_kill % 100,
            0,
            "a batch is all or nothing: {after_kill}"
        );
        assert!(
            after_kill < rows as i64,
            "the import should have been interrupted (it finished first)"
        );

        let output = run_keel(&args, app.path());
        assert!(output.status.success(), "{}", text(&output.stderr));
        let summary = text(&output.stdout);
        assert!(summary.contains(&format!("{rows} rows")), "{summary}");
        assert!(
            summary.contains(&format!("{} already imported earlier", after_kill)),
            "{summary}"
        );
        assert_eq!(lead_count(&db.url).await, rows as i64);

        // A third run imports nothing new.
        let output = run_keel(&args, app.path());
        assert!(
            text(&output.stdout).contains(&format!("0 imported, {rows} already imported earlier")),
            "{}",
            text(&output.stdout)
        );
        assert_eq!(lead_count(&db.url).await, rows as i64);
    }
);

keel_testkit::db_test!(
    import_reports_bad_rows_with_their_line_and_keeps_the_good_ones,
    |db| async move {
        let app = app();
        app.write("leads.csv", &csv(250, Some(100)));
        let app_dir = app.path().to_str().unwrap().to_owned();
        let output = run_keel(
            &[
                "import",
                "lead",
                "leads.csv",
                "--app",
                &app_dir,
                "--db",
                &db.url,
            ],
            app.path(),
        );
        assert_eq!(output.status.code(), Some(1));
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("leads.csv:101: score: must be at most 100"),
            "{stderr}"
        );
        assert!(stderr.contains("leads.csv:201: "), "{stderr}");
        assert_eq!(lead_count(&db.url).await, 248);

        app.write("bad_header.csv", "name,colour\nx,red\n");
        let output = run_keel(
            &[
                "import",
                "lead",
                "bad_header.csv",
                "--app",
                &app_dir,
                "--db",
                &db.url,
            ],
            app.path(),
        );
        assert_eq!(output.status.code(), Some(1));
        assert!(
            text(&output.stderr).contains("the column `colour` is not a field of `lead`"),
            "{}",
            text(&output.stderr)
        );
    }
);

keel_testkit::db_test!(
    export_writes_every_record_as_csv_or_json_lines,
    |db| async move {
        let app = app();
        app.write("leads.csv", &csv(30, None));
        let app_dir = app.path().to_str().unwrap().to_owned();
        let output = run_keel(
            &[
                "import",
                "lead",
                "leads.csv",
                "--app",
                &app_dir,
                "--db",
                &db.url,
            ],
            app.path(),
        );
        assert!(output.status.success(), "{}", text(&output.stderr));

        let output = run_keel(
            &["export", "lead", "--app", &app_dir, "--db", &db.url],
            app.path(),
        );
        assert!(output.status.success(), "{}", text(&output.stderr));
        let csv_text = text(&output.stdout);
        let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
        let headers = reader.headers().unwrap().clone();
        assert!(
            headers.iter().any(|h| h == "name") && headers.iter().any(|h| h == "id"),
            "{headers:?}"
        );
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 30);
        let tags = headers.iter().position(|h| h == "tags").unwrap();
        assert_eq!(&rows[0][tags], "hot;cold");

        let output = run_keel(
            &[
                "export", "lead", "--format", "json", "--app", &app_dir, "--db", &db.url,
            ],
            app.path(),
        );
        let lines: Vec<serde_json::Value> = text(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 30);
        assert_eq!(lines[0]["tags"], serde_json::json!(["hot", "cold"]));
    }
);
