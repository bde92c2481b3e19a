//! `keel import` and `keel export` as a user runs them: the real binary on both databases,
//! including an import killed with SIGKILL halfway and run again, a file fixed and run
//! again, and an export imported back.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{AppDir, keel_binary, run_keel, send_json, text};

const APP: &str = "name: Import test\n";
const ROLES: &str = "\
roles:
  admin: { admin: true }
  sales_rep: {}
permissions:
  sales_rep:
    lead: { read: own, create: true, edit: own, delete: none }
";
const LEAD: &str = "\
name: lead
title: name
fields:
  name: { type: text, required: true }
  phone: { type: phone }
  score: { type: integer, min: 0, max: 100 }
  tags: { type: multi_choice, options: [hot, cold] }
  label: { type: formula, expr: 'record.name + \"!\"' }
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
        writeln!(text, "{}", row(i, bad_every)).unwrap();
    }
    text
}

fn row(i: usize, bad_every: Option<usize>) -> String {
    let score = if bad_every.is_some_and(|every| i % every == every - 1) {
        500
    } else {
        i % 100
    };
    format!("客户{i},1380013{:04},{score},hot;cold", i % 10_000)
}

/// Sets up the database (`migrate --apply`, which also creates `admin`) and adds the
/// sales rep `wang`; returns the app directory as text.
fn set_up(app: &AppDir, db_url: &str) -> String {
    let app_dir = app.path().to_str().unwrap().to_owned();
    let migrate = run_keel(
        &["migrate", "--apply", "--app", &app_dir, "--db", db_url],
        app.path(),
    );
    assert!(migrate.status.success(), "{}", text(&migrate.stderr));
    let add = run_keel(
        &[
            "user",
            "add",
            "wang",
            "--password",
            "password-1",
            "--role",
            "sales_rep",
            "--app",
            &app_dir,
            "--db",
            db_url,
        ],
        app.path(),
    );
    assert!(add.status.success(), "{}", text(&add.stderr));
    app_dir
}

fn import(app: &AppDir, db_url: &str, file: &str, extra: &[&str]) -> std::process::Output {
    let app_dir = app.path().to_str().unwrap();
    let mut args = vec!["import", "lead", file, "--app", app_dir, "--db", db_url];
    args.extend_from_slice(extra);
    run_keel(&args, app.path())
}

/// Rows of text columns from `query`, on either database.
async fn rows(db_url: &str, query: &str) -> Vec<Vec<String>> {
    use sqlx::Row as _;
    if db_url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(db_url).await.unwrap();
        let rows = sqlx::query(sqlx::AssertSqlSafe(query))
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows.iter()
            .map(|row| (0..row.len()).map(|i| row.get::<String, _>(i)).collect())
            .collect()
    } else {
        let pool = sqlx::PgPool::connect(db_url).await.unwrap();
        let rows = sqlx::query(sqlx::AssertSqlSafe(query))
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows.iter()
            .map(|row| (0..row.len()).map(|i| row.get::<String, _>(i)).collect())
            .collect()
    }
}

async fn lead_count(db_url: &str) -> usize {
    rows(db_url, "SELECT id FROM lead WHERE deleted_at IS NULL")
        .await
        .len()
}

keel_testkit::db_test!(
    an_import_killed_halfway_and_run_again_imports_every_row_once,
    |db| async move {
        let app = app();
        let rows = 6_000;
        app.write("leads.csv", &csv(rows, None));
        let app_dir = set_up(&app, &db.url);
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
        // Off a terminal, the import reports each tenth of the file once it is committed:
        // kill it when the first report arrives.
        let mut child = Command::new(keel_binary())
            .args(args)
            .current_dir(app.path())
            .env("KEEL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let first = receiver
            .recv_timeout(Duration::from_secs(120))
            .expect("a progress line");
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(first, format!("import: 600/{rows} rows"));
        let after_kill = lead_count(&db.url).await;
        assert!(after_kill >= 600, "rows committed before the kill stay");
        assert_eq!(
            after_kill % 100,
            0,
            "a batch is all or nothing: {after_kill}"
        );
        assert!(
            after_kill < rows,
            "the import should have been interrupted (it finished first)"
        );

        let output = run_keel(&args, app.path());
        assert!(output.status.success(), "{}", text(&output.stderr));
        let summary = text(&output.stdout);
        assert!(summary.contains(&format!("{rows} rows")), "{summary}");
        assert!(
            summary.contains(&format!("{after_kill} already imported earlier")),
            "{summary}"
        );
        assert_eq!(lead_count(&db.url).await, rows);

        // A third run imports nothing new.
        let output = run_keel(&args, app.path());
        assert!(
            text(&output.stdout).contains(&format!("0 imported, {rows} already imported earlier")),
            "{}",
            text(&output.stdout)
        );
        assert_eq!(lead_count(&db.url).await, rows);
    }
);

keel_testkit::db_test!(
    import_reports_bad_rows_with_their_line_and_keeps_the_good_ones,
    |db| async move {
        let app = app();
        set_up(&app, &db.url);
        app.write("leads.csv", &csv(250, Some(100)));
        let output = import(&app, &db.url, "leads.csv", &[]);
        assert_eq!(output.status.code(), Some(1));
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("leads.csv:101: score: must be at most 100"),
            "{stderr}"
        );
        assert!(stderr.contains("leads.csv:201: "), "{stderr}");
        assert_eq!(lead_count(&db.url).await, 248);

        app.write("bad_header.csv", "name,colour\nx,red\n");
        let output = import(&app, &db.url, "bad_header.csv", &[]);
        assert_eq!(output.status.code(), Some(1));
        assert!(
            text(&output.stderr).contains("the column `colour` is not a field of `lead`"),
            "{}",
            text(&output.stderr)
        );
        // No pool uses `lead`, so it has no pool columns either.
        app.write("pooled.csv", "name,pool\nx,public\n");
        let output = import(&app, &db.url, "pooled.csv", &[]);
        assert_eq!(output.status.code(), Some(1));
        assert!(
            text(&output.stderr).contains("the column `pool` is not a field of `lead`"),
            "{}",
            text(&output.stderr)
        );
    }
);

keel_testkit::db_test!(
    rerunning_an_import_after_fixing_its_refused_rows_imports_exactly_those_rows,
    |db| async move {
        let app = app();
        set_up(&app, &db.url);
        app.write("leads.csv", &csv(250, Some(100)));
        let output = import(&app, &db.url, "leads.csv", &[]);
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(lead_count(&db.url).await, 248);

        // Fix the two refused rows; also reorder the file and rename it: neither a row's
        // line nor the file's name makes it a different row.
        let mut fixed = String::from("tags,score,phone,name\n");
        for i in (0..250).rev() {
            let cells: Vec<String> = row(i, None).split(',').map(str::to_owned).collect();
            writeln!(fixed, "{},{},{},{}", cells[3], cells[2], cells[1], cells[0]).unwrap();
        }
        app.write("leads-fixed.csv", &fixed);
        let output = import(&app, &db.url, "leads-fixed.csv", &[]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(
            text(&output.stdout).contains("250 rows; 2 imported, 248 already imported earlier"),
            "{}",
            text(&output.stdout)
        );
        assert_eq!(lead_count(&db.url).await, 250);
        let scores = rows(
            &db.url,
            "SELECT name FROM lead WHERE name IN ('客户99', '客户199') AND score = 99",
        )
        .await;
        assert_eq!(scores.len(), 2, "{scores:?}");
    }
);

keel_testkit::db_test!(
    identical_rows_of_one_file_are_distinct_records,
    |db| async move {
        let app = app();
        set_up(&app, &db.url);
        app.write("twins.csv", "name\n张三\n张三\n李四\n");
        let output = import(&app, &db.url, "twins.csv", &[]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert_eq!(lead_count(&db.url).await, 3);
        let output = import(&app, &db.url, "twins.csv", &[]);
        assert!(
            text(&output.stdout).contains("0 imported, 3 already imported earlier"),
            "{}",
            text(&output.stdout)
        );
    }
);

keel_testkit::db_test!(
    an_empty_owner_makes_the_importing_user_the_owner,
    |db| async move {
        let app = app();
        set_up(&app, &db.url);
        let wang_id =
            rows(&db.url, "SELECT id FROM keel_users WHERE username = 'wang'").await[0][0].clone();
        app.write(
            "by_admin.csv",
            &format!("name,owner\nA1,\nA2,wang\nA3,{wang_id}\n"),
        );
        let output = import(&app, &db.url, "by_admin.csv", &[]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        app.write("by_wang.csv", "name,owner\nW1,\n");
        let output = import(&app, &db.url, "by_wang.csv", &["--as", "wang"]);
        assert!(output.status.success(), "{}", text(&output.stderr));

        let owners = rows(
            &db.url,
            "SELECT lead.name, owner_user.username, creator.username FROM lead \
             JOIN keel_users owner_user ON owner_user.id = lead.owner \
             JOIN keel_users creator ON creator.id = lead.created_by ORDER BY lead.name",
        )
        .await;
        let expected: Vec<Vec<String>> = [
            ["A1", "admin", "admin"],
            ["A2", "wang", "admin"],
            ["A3", "wang", "admin"],
            ["W1", "wang", "wang"],
        ]
        .iter()
        .map(|row| row.iter().map(|cell| (*cell).to_owned()).collect())
        .collect();
        assert_eq!(owners, expected);

        app.write("nobody.csv", "name\nN1\n");
        let output = import(&app, &db.url, "nobody.csv", &["--as", "nobody"]);
        assert_eq!(output.status.code(), Some(1));
        assert!(
            text(&output.stderr).contains("there is no user `nobody`"),
            "{}",
            text(&output.stderr)
        );
    }
);

keel_testkit::db_test!(row_errors_are_printed_in_file_order, |db| async move {
    let app = app();
    set_up(&app, &db.url);
    // Line 2 fails in the write path, line 3 while its row is read (unknown owner),
    // line 4 in the write path again: one batch, three kinds of refusal.
    app.write(
        "mixed.csv",
        "name,score,owner\nbad-score,500,\nbad-owner,1,nobody\n,1,\nok,1,\n",
    );
    let output = import(&app, &db.url, "mixed.csv", &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("mixed.csv:"))
        .collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(lines[0].starts_with("mixed.csv:2: score:"), "{stderr}");
    assert!(
        lines[1].starts_with("mixed.csv:3: owner: there is no user `nobody`"),
        "{stderr}"
    );
    assert!(lines[2].starts_with("mixed.csv:4: name:"), "{stderr}");
    assert_eq!(lead_count(&db.url).await, 1);
});

keel_testkit::db_test!(a_repeated_header_column_is_refused, |db| async move {
    let app = app();
    set_up(&app, &db.url);
    app.write("twice.csv", "name,phone,name\nA,138,B\n");
    let output = import(&app, &db.url, "twice.csv", &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr)
            .contains("the column `name` appears twice in the header row (columns 1 and 3)"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(lead_count(&db.url).await, 0);
});

keel_testkit::db_test!(
    export_writes_every_record_as_csv_or_json_lines,
    |db| async move {
        let app = app();
        let app_dir = set_up(&app, &db.url);
        app.write("leads.csv", &csv(30, None));
        let output = import(&app, &db.url, "leads.csv", &[]);
        assert!(output.status.success(), "{}", text(&output.stderr));

        let output = run_keel(
            &["export", "lead", "--app", &app_dir, "--db", &db.url],
            app.path(),
        );
        assert!(output.status.success(), "{}", text(&output.stderr));
        let csv_text = text(&output.stdout);
        let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
        let headers = reader.headers().unwrap().clone();
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            [
                "id",
                "owner",
                "created_at",
                "created_by",
                "updated_at",
                "updated_by",
                "version",
                "name",
                "phone",
                "score",
                "tags",
                "label"
            ]
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

keel_testkit::db_test!(
    an_export_imports_back_with_its_ids_and_owners,
    |db| async move {
        let app = app();
        let app_dir = set_up(&app, &db.url);
        let mut file = String::from("name,phone,score,tags,owner\n");
        for i in 0..20 {
            let owner = if i % 2 == 0 { "wang" } else { "" };
            writeln!(file, "客户{i},1380013{i:04},{i},hot;cold,{owner}").unwrap();
        }
        app.write("leads.csv", &file);
        let output = import(&app, &db.url, "leads.csv", &[]);
        assert!(output.status.success(), "{}", text(&output.stderr));

        let export = || {
            let output = run_keel(
                &["export", "lead", "--app", &app_dir, "--db", &db.url],
                app.path(),
            );
            assert!(output.status.success(), "{}", text(&output.stderr));
            text(&output.stdout)
        };
        // What a round trip keeps: id, owner and every field (not the times and versions,
        // which Keel sets anew).
        let kept = |csv_text: &str| {
            let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
            let headers = reader.headers().unwrap().clone();
            let columns: Vec<usize> = ["id", "owner", "name", "phone", "score", "tags", "label"]
                .iter()
                .map(|name| headers.iter().position(|h| h == *name).unwrap())
                .collect();
            let mut rows: Vec<Vec<String>> = reader
                .records()
                .map(|row| {
                    let row = row.unwrap();
                    columns.iter().map(|i| row[*i].to_owned()).collect()
                })
                .collect();
            rows.sort();
            rows
        };
        let before = export();
        app.write("export.csv", &before);

        // Into the same database: every record is there already.
        let output = import(&app, &db.url, "export.csv", &[]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let stdout = text(&output.stdout);
        assert!(
            stdout.contains("20 rows; 0 imported, 20 already imported earlier"),
            "{stdout}"
        );
        assert!(
            stdout.contains(
                "not imported: created_at, created_by, updated_at, updated_by, version, label"
            ),
            "{stdout}"
        );

        // Into an empty table: the same records come back.
        rows(&db.url, "DELETE FROM lead RETURNING id").await;
        assert_eq!(lead_count(&db.url).await, 0);
        let output = import(&app, &db.url, "export.csv", &[]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(
            text(&output.stdout).contains("20 rows; 20 imported, 0 already imported earlier"),
            "{}",
            text(&output.stdout)
        );
        let after = export();
        assert_eq!(kept(&after), kept(&before));
        assert_eq!(kept(&before).len(), 20);
    }
);

keel_testkit::db_test!(
    the_api_export_and_keel_export_write_the_same_csv,
    |db| async move {
        let app = app();
        let app_dir = app.path().to_str().unwrap().to_owned();
        let migrate = run_keel(
            &["migrate", "--apply", "--app", &app_dir, "--db", &db.url],
            app.path(),
        );
        assert!(migrate.status.success(), "{}", text(&migrate.stderr));
        // The admin password is printed once: `created user `admin` with the password `…``.
        let stdout = text(&migrate.stdout);
        let password = stdout
            .split("with the password `")
            .nth(1)
            .and_then(|rest| rest.split('`').next())
            .unwrap_or_else(|| panic!("no admin password in {stdout}"))
            .to_owned();
        app.write("leads.csv", &csv(12, None));
        let output = import(&app, &db.url, "leads.csv", &[]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let output = run_keel(
            &["export", "lead", "--app", &app_dir, "--db", &db.url],
            app.path(),
        );
        assert!(output.status.success(), "{}", text(&output.stderr));
        let cli_csv = text(&output.stdout);
        assert!(cli_csv.contains("hot;cold"), "{cli_csv}");

        let server = crate::serve::start_server(crate::serve::serve_command(&app, &db.url));
        let client = reqwest::Client::new();
        let (_, login) = send_json(
            client
                .post(format!("{}/api/v1/auth/login", server.base_url))
                .json(&serde_json::json!({ "username": "admin", "password": password })),
        )
        .await;
        let token = login["token"].as_str().unwrap();
        let api_csv = client
            .get(format!(
                "{}/api/v1/records/lead/export?format=csv",
                server.base_url
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(api_csv, cli_csv);
    }
);
