//! Live metadata (docs/studio.md) as a user meets it: real `keel serve` processes on
//! loopback, the studio's validate and apply, the recorded versions, a second process on the
//! same database, a restart with an older directory and `keel metadata pull`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve::{Server, serve_command, start_server};
use crate::support::{AppDir, run_keel, send_json, text};

const PASSWORD: &str = "metadata-admin-pw";
const APP: &str = "name: { en: Studio test }\n";
const ROLES: &str = "roles:\n  admin: { admin: true }\n  sales_rep: {}\npermissions:\n  sales_rep:\n    lead: { read: all, create: true, edit: own }\n";
/// Comments and odd spacing, so a byte-for-byte round trip means something.
const LEAD_V1: &str = "# Leads.\nname: lead\nfields:\n  name:  { type: text, required: true }   # who\n  phone: { type: phone }\n";
const LEAD_WITH_BUDGET: &str = "# Leads.\nname: lead\nfields:\n  name:  { type: text, required: true }   # who\n  phone: { type: phone }\n  budget: { type: integer }\n";

fn app() -> AppDir {
    AppDir::new(&[
        ("metadata/app.yaml", APP),
        ("metadata/roles.yaml", ROLES),
        ("metadata/objects/lead.yaml", LEAD_V1),
        ("seed/lead.csv", "name\nSeeded\n"),
    ])
}

fn start(app: &AppDir, db_url: &str) -> Server {
    let mut command = serve_command(app, db_url);
    command
        .env("KEEL_ADMIN_PASSWORD", PASSWORD)
        .env("KEEL_SCHEDULER", "off");
    start_server(command)
}

/// A signed-in client of one server.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn sign_in(server: &Server, username: &str, password: &str) -> Client {
        let http = reqwest::Client::new();
        let (status, body) = send_json(
            http.post(format!("{}/api/v1/auth/login", server.base_url))
                .json(&json!({ "username": username, "password": password })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        Client {
            http,
            base: server.base_url.clone(),
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    async fn get(&self, path: &str) -> (reqwest::StatusCode, Value) {
        send_json(
            self.http
                .get(format!("{}/api/v1{path}", self.base))
                .bearer_auth(&self.token),
        )
        .await
    }

    async fn post(&self, path: &str, body: Value) -> (reqwest::StatusCode, Value) {
        send_json(
            self.http
                .post(format!("{}/api/v1{path}", self.base))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
    }

    /// The latest recorded version.
    async fn latest(&self) -> i64 {
        let (status, body) = self.get("/admin/metadata/versions").await;
        assert_eq!(status, 200, "{body}");
        body["data"][0]["version"].as_i64().unwrap()
    }

    /// A request's status, the version that answered it and its JSON body.
    async fn answered(&self, request: reqwest::RequestBuilder) -> (u16, Option<i64>, Value) {
        let response = request.bearer_auth(&self.token).send().await.unwrap();
        let status = response.status().as_u16();
        let version = response
            .headers()
            .get("keel-metadata-version")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        let body = response.json().await.unwrap_or(Value::Null);
        (status, version, body)
    }
}

fn lead_file(app: &AppDir) -> String {
    std::fs::read_to_string(app.path().join("metadata/objects/lead.yaml")).unwrap()
}

keel_testkit::db_test!(
    validate_reports_problems_at_their_line_and_column_and_plans_a_valid_change,
    |db| async move {
        let app = app();
        let server = start(&app, &db.url);
        let admin = Client::sign_in(&server, "admin", PASSWORD).await;

        let broken = "name: lead\nfields:\n  name: { type: text }\n  budget: { type: integr }\n";
        let (status, body) = admin
            .post(
                "/admin/metadata/validate",
                json!({ "files": { "metadata/objects/lead.yaml": broken } }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let diagnostics = body["diagnostics"].as_array().unwrap();
        assert!(!diagnostics.is_empty(), "{body}");
        assert_eq!(
            diagnostics[0]["file"], "metadata/objects/lead.yaml",
            "{body}"
        );
        assert_eq!(diagnostics[0]["line"], 4, "{body}");
        assert_eq!(diagnostics[0]["col"], 19, "{body}");
        assert_eq!(body["plan"]["steps"], json!([]), "{body}");

        let (status, body) = admin
            .post(
                "/admin/metadata/validate",
                json!({ "files": { "metadata/objects/lead.yaml": LEAD_WITH_BUDGET } }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["diagnostics"], json!([]), "{body}");
        let steps = body["plan"]["steps"].as_array().unwrap();
        assert!(
            steps.iter().any(
                |step| step["description"].as_str().unwrap().contains("budget")
                    && step["safe"] == true
            ),
            "{body}"
        );
        // Deleting a file the app needs, and a path that is not metadata.
        let (_, body) = admin
            .post(
                "/admin/metadata/validate",
                json!({ "files": { "metadata/app.yaml": null, "seed/lead.csv": "x" } }),
            )
            .await;
        let files: Vec<&str> = body["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["file"].as_str().unwrap())
            .collect();
        assert_eq!(files, ["seed/lead.csv"], "{body}");
        // Nothing changed: no new version, the file as it was.
        assert_eq!(lead_file(&app), LEAD_V1);

        // Admins only.
        let (status, body) = admin
            .post(
                "/admin/users",
                json!({ "username": "rep", "password": "rep-password-1", "roles": ["sales_rep"] }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let rep = Client::sign_in(&server, "rep", "rep-password-1").await;
        let (status, _) = rep
            .post("/admin/metadata/validate", json!({ "files": {} }))
            .await;
        assert_eq!(status, 403);
        let (status, _) = rep.get("/admin/metadata/versions").await;
        assert_eq!(status, 403);
    }
);

keel_testkit::db_test!(
    apply_adds_a_field_that_records_and_openapi_show_and_records_the_version,
    |db| async move {
        let app = app();
        let server = start(&app, &db.url);
        let admin = Client::sign_in(&server, "admin", PASSWORD).await;
        let base = admin.latest().await;

        let (status, body) = admin
            .post(
                "/admin/metadata/apply",
                json!({ "files": { "metadata/objects/lead.yaml": LEAD_WITH_BUDGET }, "base": base }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["version"], base + 1);
        assert_eq!(lead_file(&app), LEAD_WITH_BUDGET);

        let (status, version, lead) = admin
            .answered(
                admin
                    .http
                    .post(format!("{}/api/v1/records/lead", admin.base))
                    .json(&json!({ "name": "Ada", "budget": 5000 })),
            )
            .await;
        assert_eq!(status, 201, "{lead}");
        assert_eq!(version, Some(base + 1));
        assert_eq!(lead["budget"], 5000, "{lead}");
        let (_, openapi) = admin.get("/openapi.json").await;
        assert!(
            openapi["components"]["schemas"]["Lead"]["properties"]
                .get("budget")
                .is_some(),
            "{}",
            openapi["components"]["schemas"]["Lead"]
        );

        // The recorded versions: newest first, who, from where; the diff of the change.
        let (_, versions) = admin.get("/admin/metadata/versions").await;
        assert_eq!(versions["data"][0]["version"], base + 1, "{versions}");
        assert_eq!(versions["data"][0]["applied_by"], "admin");
        assert_eq!(versions["data"][0]["source"], "studio");
        assert_eq!(versions["data"][1]["source"], "cli");
        let (status, detail) = admin
            .get(&format!("/admin/metadata/versions/{}", base + 1))
            .await;
        assert_eq!(status, 200, "{detail}");
        assert_eq!(
            detail["files"]["metadata/objects/lead.yaml"],
            LEAD_WITH_BUDGET
        );
        assert_eq!(detail["files"]["metadata/app.yaml"], APP);
        assert!(detail["files"].get("seed/lead.csv").is_none(), "{detail}");
        let diff = detail["diff"].as_str().unwrap();
        assert!(diff.contains("--- a/metadata/objects/lead.yaml"), "{diff}");
        assert!(diff.contains("\n+  budget: { type: integer }\n"), "{diff}");
        assert_eq!(
            diff.lines().filter(|line| line.starts_with('+')).count(),
            2,
            "{diff}"
        );
        let (status, _) = admin.get("/admin/metadata/versions/999999").await;
        assert_eq!(status, 404);

        // Someone else applied first: the old base is stale, and nothing changes.
        let (status, body) = admin
            .post(
                "/admin/metadata/apply",
                json!({ "files": { "metadata/objects/lead.yaml": LEAD_V1 }, "base": base }),
            )
            .await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["type"], "stale_base");
        assert_eq!(body["latest_version"], base + 1);
        assert_eq!(lead_file(&app), LEAD_WITH_BUDGET);
        assert_eq!(admin.latest().await, base + 1);

        // Invalid metadata: 422 naming file, line and column.
        let (status, body) = admin
            .post(
                "/admin/metadata/apply",
                json!({
                    "files": { "metadata/objects/lead.yaml": "name: lead\nfields:\n  x: { type: nope }\n" },
                    "base": base + 1,
                }),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["type"], "invalid_metadata");
        assert_eq!(body["diagnostics"][0]["line"], 3, "{body}");
        assert_eq!(lead_file(&app), LEAD_WITH_BUDGET);
    }
);

keel_testkit::db_test!(
    a_destructive_change_is_refused_with_its_plan_and_changes_nothing_unless_allowed,
    |db| async move {
        let app = app();
        let server = start(&app, &db.url);
        let admin = Client::sign_in(&server, "admin", PASSWORD).await;
        let (status, lead) = admin
            .post(
                "/records/lead",
                json!({ "name": "Bo", "phone": "+8613800000000" }),
            )
            .await;
        assert_eq!(status, 201, "{lead}");
        let id = lead["id"].as_str().unwrap().to_owned();
        let base = admin.latest().await;
        let without_phone = "name: lead\nfields:\n  name: { type: text, required: true }\n";

        let (status, body) = admin
            .post(
                "/admin/metadata/apply",
                json!({ "files": { "metadata/objects/lead.yaml": without_phone }, "base": base }),
            )
            .await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["type"], "destructive_change");
        let steps = body["plan"]["steps"].as_array().unwrap();
        assert!(
            steps.iter().any(|step| step["safe"] == false
                && step["description"].as_str().unwrap().contains("phone")),
            "{body}"
        );
        // Nothing changed: the column and its value, the file, the versions.
        let (_, read) = admin.get(&format!("/records/lead/{id}")).await;
        assert_eq!(read["phone"], "+8613800000000", "{read}");
        assert_eq!(lead_file(&app), LEAD_V1);
        assert_eq!(admin.latest().await, base);

        // Allowed: the column is archived (its data kept under an archive name).
        let (status, body) = admin
            .post(
                "/admin/metadata/apply",
                json!({
                    "files": { "metadata/objects/lead.yaml": without_phone },
                    "base": base,
                    "allow_destructive": true,
                }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (_, read) = admin.get(&format!("/records/lead/{id}")).await;
        assert!(read.get("phone").is_none(), "{read}");
        let store = keel_store::Db::connect(&db.url).await.unwrap();
        let archived = keel_store::introspect::read(&store)
            .await
            .unwrap()
            .table("lead")
            .unwrap()
            .columns
            .iter()
            .any(|column| column.name.starts_with("keel_arch_") && column.name.ends_with("phone"));
        assert!(archived, "the phone column is archived, not dropped");
    }
);

keel_testkit::db_test!(
    a_field_renamed_with_renamed_from_keeps_its_values,
    |db| async move {
        let app = app();
        let server = start(&app, &db.url);
        let admin = Client::sign_in(&server, "admin", PASSWORD).await;
        let (_, lead) = admin
            .post(
                "/records/lead",
                json!({ "name": "Cy", "phone": "+8613900000000" }),
            )
            .await;
        let id = lead["id"].as_str().unwrap().to_owned();
        let renamed = "name: lead\nfields:\n  name: { type: text, required: true }\n  mobile: { type: phone, renamed_from: phone }\n";
        let base = admin.latest().await;
        let (status, body) = admin
            .post(
                "/admin/metadata/apply",
                json!({ "files": { "metadata/objects/lead.yaml": renamed }, "base": base }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (_, read) = admin.get(&format!("/records/lead/{id}")).await;
        assert_eq!(read["mobile"], "+8613900000000", "{read}");
        assert!(read.get("phone").is_none(), "{read}");
    }
);

keel_testkit::db_test!(
    an_apply_under_load_fails_no_request_and_each_answer_is_of_one_version,
    |db| async move {
        let app = app();
        let server = start(&app, &db.url);
        let admin = Client::sign_in(&server, "admin", PASSWORD).await;
        let base = admin.latest().await;
        let done = Arc::new(AtomicUsize::new(0));
        let new_seen = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for worker in 0..6 {
            let client = admin.clone();
            let done = Arc::clone(&done);
            let new_seen = Arc::clone(&new_seen);
            tasks.push(tokio::spawn(async move {
                let mut answers = Vec::new();
                let started = Instant::now();
                // Bounded: until every worker has seen the new version a few times, at most
                // 400 requests or 120 s.
                for round in 0..400 {
                    if new_seen.load(Ordering::SeqCst) >= 30
                        || started.elapsed() > Duration::from_secs(120)
                    {
                        break;
                    }
                    let request = if round % 2 == 0 {
                        client
                            .http
                            .post(format!("{}/api/v1/records/lead", client.base))
                            .json(&json!({ "name": format!("Load {worker}-{round}") }))
                    } else {
                        client
                            .http
                            .get(format!("{}/api/v1/records/lead?limit=5", client.base))
                    };
                    let answer = client.answered(request).await;
                    if answer.1 == Some(base + 1) {
                        new_seen.fetch_add(1, Ordering::SeqCst);
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    answers.push(answer);
                }
                answers
            }));
        }
        // Apply once the load is under way.
        let deadline = Instant::now() + Duration::from_secs(60);
        while done.load(Ordering::SeqCst) < 30 && Instant::now() < deadline {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (status, body) = admin
            .post(
                "/admin/metadata/apply",
                json!({ "files": { "metadata/objects/lead.yaml": LEAD_WITH_BUDGET }, "base": base }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let mut by_version: BTreeMap<i64, usize> = BTreeMap::new();
        for task in tasks {
            for (status, version, body) in task.await.unwrap() {
                assert!(
                    (200..300).contains(&status),
                    "a failed request: {status} {body}"
                );
                let version = version.expect("every answer names its version");
                *by_version.entry(version).or_default() += 1;
                let records: Vec<&Value> = match body.get("data") {
                    Some(Value::Array(records)) => records.iter().collect(),
                    _ => vec![&body],
                };
                for record in records {
                    assert_eq!(
                        record.get("budget").is_some(),
                        version == base + 1,
                        "version {version} answered {record}"
                    );
                }
            }
        }
        assert!(
            by_version.contains_key(&base) && by_version.contains_key(&(base + 1)),
            "answers by version: {by_version:?}"
        );
    }
);

keel_testkit::db_test!(
    a_second_server_on_the_database_serves_the_new_field_within_two_seconds,
    |db| async move {
        let first_app = app();
        let second_app = app();
        let first = start(&first_app, &db.url);
        let second = start(&second_app, &db.url);
        let admin = Client::sign_in(&first, "admin", PASSWORD).await;
        let other = Client::sign_in(&second, "admin", PASSWORD).await;
        let base = admin.latest().await;
        let (status, body) = admin
            .post(
                "/admin/metadata/apply",
                json!({ "files": { "metadata/objects/lead.yaml": LEAD_WITH_BUDGET }, "base": base }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let applied = Instant::now();
        let mut served = None;
        while applied.elapsed() < Duration::from_secs(2) {
            let (status, version, object) = other
                .answered(
                    other
                        .http
                        .get(format!("{}/api/v1/meta/objects/lead", other.base)),
                )
                .await;
            assert_eq!(status, 200, "{object}");
            let has_budget = object.to_string().contains("\"budget\"");
            assert_eq!(has_budget, version == Some(base + 1), "{object}");
            if has_budget {
                served = Some(applied.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            served.is_some(),
            "the second server did not serve the new field within 2 s"
        );
        // It wrote the version into its own directory, so it restarts on it.
        assert_eq!(lead_file(&second_app), LEAD_WITH_BUDGET);
        let (status, lead) = other
            .post("/records/lead", json!({ "name": "Di", "budget": 7 }))
            .await;
        assert_eq!(status, 201, "{lead}");
    }
);

keel_testkit::db_test!(
    a_restart_with_an_older_directory_exits_3_and_metadata_pull_round_trips_byte_for_byte,
    |db| async move {
        let app = app();
        let server = start(&app, &db.url);
        let admin = Client::sign_in(&server, "admin", PASSWORD).await;
        let base = admin.latest().await;
        let script = "// A comment kept as written.\nlet x = 1;\r\n";
        let (status, body) = admin
            .post(
                "/admin/metadata/apply",
                json!({
                    "files": {
                        "metadata/objects/lead.yaml": LEAD_WITH_BUDGET,
                        "scripts/touch.rhai": script,
                    },
                    "base": base,
                }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        drop(server);

        // The directory as it was before the studio's change (an old checkout, say).
        app.write("metadata/objects/lead.yaml", LEAD_V1);
        app.remove("scripts/touch.rhai");
        let output = serve_command(&app, &db.url).output().unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains(&format!("version {base}")), "{stderr}");
        assert!(
            stderr.contains(&format!("version {} by admin from studio", base + 1)),
            "{stderr}"
        );
        assert!(stderr.contains("keel metadata pull"), "{stderr}");

        // Pull into a new directory: byte for byte the applied files.
        let pulled = tempfile::tempdir().unwrap();
        let output = run_keel(
            &[
                "metadata",
                "pull",
                "--app",
                pulled.path().to_str().unwrap(),
                "--db",
                &db.url,
            ],
            pulled.path(),
        );
        assert!(output.status.success(), "{}", text(&output.stderr));
        let read = |path: &str| std::fs::read(pulled.path().join(path)).unwrap();
        assert_eq!(
            read("metadata/objects/lead.yaml"),
            LEAD_WITH_BUDGET.as_bytes()
        );
        assert_eq!(read("scripts/touch.rhai"), script.as_bytes());
        assert_eq!(read("metadata/app.yaml"), APP.as_bytes());
        assert_eq!(read("metadata/roles.yaml"), ROLES.as_bytes());

        // Pull into the old directory, and it starts again (its seed/ left alone).
        let output = run_keel(
            &[
                "metadata",
                "pull",
                "--app",
                app.path().to_str().unwrap(),
                "--db",
                &db.url,
            ],
            app.path(),
        );
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert_eq!(lead_file(&app), LEAD_WITH_BUDGET);
        assert!(app.path().join("seed/lead.csv").is_file());
        let server = start(&app, &db.url);
        let admin = Client::sign_in(&server, "admin", PASSWORD).await;
        assert_eq!(
            admin.latest().await,
            base + 1,
            "a pulled directory records nothing new"
        );
    }
);
