//! The shipped apps as an implementer starts from them (docs/templates.md): `keel new` of the
//! standard app and of every template in `templates/` — found by listing the directory, so a
//! new template is covered without touching this file —, `keel check` of what it wrote,
//! `keel serve --demo` on a fresh database, and a smoke test over HTTP on loopback as a
//! seeded rep: create a record of the app's process object, list it, move it through a
//! transition, claim a record from the pool.
//!
//! The smoke test reads what to do from the app's own metadata: the rep is the first seed
//! user whose roles are all members (and none managers) of the app's first pool, and the
//! values of a new record are made up per field type.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Map, Value, json};

use crate::serve::{Server, start_server};
use crate::support::{keel_binary, repository_root, run_keel, send_json, text};

/// The name `keel new` gives the standard app.
const STANDARD: &str = "standard";

/// The directories of the standard app that `keel new` copies.
const STANDARD_PARTS: [&str; 4] = ["metadata", "workflows", "scripts", "seed"];

/// Every directory of `templates/` that holds an app, by name.
pub(crate) fn template_dirs() -> Vec<PathBuf> {
    let mut templates: Vec<PathBuf> = std::fs::read_dir(repository_root().join("templates"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("metadata").is_dir())
        .collect();
    templates.sort();
    assert!(
        templates.len() >= 3,
        "the education, manufacturing and saas templates: {templates:?}"
    );
    templates
}

/// `standard`, then the name of every template.
fn app_names() -> Vec<String> {
    std::iter::once(STANDARD.to_owned())
        .chain(
            template_dirs()
                .iter()
                .map(|path| path.file_name().unwrap().to_str().unwrap().to_owned()),
        )
        .collect()
}

/// The rep of an app: the first seed user whose roles are all members, and none managers,
/// of the app's first pool; as (username, password).
pub(crate) fn seed_rep(dir: &Path) -> (String, String) {
    let schema = keel_meta::load_app(dir)
        .unwrap_or_else(|errors| panic!("{} must load:\n{errors}", dir.display()));
    let pool = schema
        .pools
        .values()
        .next()
        .unwrap_or_else(|| panic!("{} has no pool", dir.display()));
    seed_rows(dir, "users.csv")
        .iter()
        .find(|user| {
            let roles: Vec<&str> = user["roles"].as_str().unwrap().split(';').collect();
            roles
                .iter()
                .all(|role| pool.members.iter().any(|m| m == role))
                && !roles
                    .iter()
                    .any(|role| pool.managers.iter().any(|m| m == role))
        })
        .map(|user| {
            (
                user["username"].as_str().unwrap().to_owned(),
                user["password"].as_str().unwrap().to_owned(),
            )
        })
        .unwrap_or_else(|| {
            panic!(
                "{}: no seed user is a plain member of {}",
                dir.display(),
                pool.name
            )
        })
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        if !next.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    files
}

/// The files of an app as the repository holds them: (relative path, absolute path).
fn source_files(name: &str) -> Vec<(PathBuf, PathBuf)> {
    let root = repository_root();
    if name == STANDARD {
        let mut files = Vec::new();
        for part in STANDARD_PARTS {
            for relative in files_under(&root.join(part)) {
                files.push((
                    Path::new(part).join(&relative),
                    root.join(part).join(relative),
                ));
            }
        }
        files
    } else {
        let dir = root.join("templates").join(name);
        files_under(&dir)
            .into_iter()
            .map(|relative| (relative.clone(), dir.join(relative)))
            .collect()
    }
}

/// Runs `keel new <parent>/app --template <name>` and returns the new directory.
fn keel_new(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join("app");
    let output = run_keel(&["new", dir.to_str().unwrap(), "--template", name], parent);
    assert!(
        output.status.success(),
        "keel new --template {name}: {}",
        text(&output.stderr)
    );
    assert!(
        text(&output.stdout).contains(&format!("keel serve --app {} --demo", dir.display())),
        "{}",
        text(&output.stdout)
    );
    dir
}

#[test]
fn keel_new_writes_each_app_exactly_as_the_repository_holds_it() {
    for name in app_names() {
        let parent = tempfile::tempdir().unwrap();
        let dir = keel_new(parent.path(), &name);
        let expected = source_files(&name);
        assert_eq!(
            files_under(&dir),
            expected
                .iter()
                .map(|(relative, _)| relative.clone())
                .collect(),
            "the files of {name}"
        );
        for (relative, source) in expected {
            assert!(
                std::fs::read(dir.join(&relative)).unwrap() == std::fs::read(&source).unwrap(),
                "{name}: {} differs from {}",
                relative.display(),
                source.display()
            );
        }
    }
}

#[test]
fn keel_new_refuses_a_non_empty_directory_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let output = run_keel(
        &["new", dir.path().to_str().unwrap(), "--template", "saas"],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("is not empty"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        files_under(dir.path()),
        BTreeSet::from([PathBuf::from("notes.txt")])
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn keel_new_with_an_unknown_template_names_the_known_ones_and_writes_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("app");
    let output = run_keel(
        &["new", dir.to_str().unwrap(), "--template", "retail"],
        parent.path(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("there is no template `retail`"), "{stderr}");
    for name in app_names() {
        assert!(stderr.contains(&name), "{name} is not listed: {stderr}");
    }
    assert!(!dir.exists());
}

#[test]
fn keel_new_without_a_template_writes_the_standard_app_into_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_keel(&["new", dir.path().to_str().unwrap()], dir.path());
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(dir.path().join("metadata/objects/lead.yaml").is_file());
    assert!(dir.path().join("seed/users.csv").is_file());
}

keel_testkit::db_test!(
    every_app_made_by_keel_new_checks_serves_its_demo_and_passes_a_smoke_test,
    |db| async move {
        let backend = db.backend;
        let mut first = Some(db);
        for name in app_names() {
            // A fresh database per app: the test's own for the first, new ones after it.
            let db = match first.take() {
                Some(db) => db,
                None => keel_testkit::TestDb::new(backend).await.unwrap(),
            };
            let parent = tempfile::tempdir().unwrap();
            let dir = keel_new(parent.path(), &name);
            let output = run_keel(&["check", "--app", dir.to_str().unwrap()], &dir);
            assert!(
                output.status.success() && output.stderr.is_empty(),
                "keel check of {name}:\n{}",
                text(&output.stderr)
            );
            smoke(&name, &dir, &db.url).await;
        }
    }
);

/// Rows of `seed/<file>` as maps of column to cell.
fn seed_rows(dir: &Path, file: &str) -> Vec<Map<String, Value>> {
    let mut reader = csv::Reader::from_path(dir.join("seed").join(file)).unwrap();
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|record| {
            headers
                .iter()
                .zip(record.unwrap().iter())
                .map(|(key, value)| (key.to_owned(), json!(value)))
                .collect()
        })
        .collect()
}

/// Starts `keel serve --demo` of `dir` on `db_url`, checks that every seed record and user
/// was loaded, and runs the smoke test as the app's rep.
async fn smoke(name: &str, dir: &Path, db_url: &str) {
    let schema =
        keel_meta::load_app(dir).unwrap_or_else(|errors| panic!("{name} must load:\n{errors}"));
    let stderr_file = tempfile::NamedTempFile::new().unwrap();
    let mut command = Command::new(keel_binary());
    command
        .args([
            "serve",
            "--demo",
            "--app",
            dir.to_str().unwrap(),
            "--db",
            db_url,
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir)
        .env_remove("KEEL_ADMIN_PASSWORD")
        .env("KEEL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(stderr_file.reopen().unwrap());
    let mut server: Server = start_server(command);

    // Every seed file was imported whole, and nothing was refused.
    for (object, _) in &schema.objects {
        let path = dir.join("seed").join(format!("{object}.csv"));
        if !path.is_file() {
            continue;
        }
        let expected = format!(
            "  demo data: {} {object} records",
            seed_rows(dir, &format!("{object}.csv")).len()
        );
        assert!(
            server.stdout_lines.contains(&expected),
            "{name}: {expected}: {:?}",
            server.stdout_lines
        );
    }
    let refused = std::fs::read_to_string(stderr_file.path()).unwrap();
    assert!(
        !refused.contains("seed/"),
        "{name}: seed rows refused:\n{refused}"
    );
    let users = seed_rows(dir, "users.csv");
    for user in &users {
        let roles: Vec<&str> = user["roles"].as_str().unwrap().split(';').collect();
        assert_eq!(
            server.next_line(),
            format!(
                "  demo login: {} / {} ({})",
                user["username"].as_str().unwrap(),
                user["password"].as_str().unwrap(),
                roles.join(", ")
            ),
            "{name}"
        );
    }

    let pool = schema.pools.values().next().unwrap();
    let (username, password) = seed_rep(dir);
    let client = Client::sign_in(&server.base_url, &username, &password).await;
    let who = format!("{name} as {}", client.username);

    // Create a record of the process's object, and find it in the list.
    let process = schema
        .processes
        .values()
        .next()
        .unwrap_or_else(|| panic!("{name} has no process"));
    let object = schema.object(&process.object).unwrap();
    let mut body = Map::new();
    for field in object.fields.values() {
        if field.required
            && field.default.is_none()
            && field.name != process.stage_field
            && let Some(value) = client.value_for(field).await
        {
            body.insert(field.name.clone(), value);
        }
    }
    let (status, created) = client
        .post(
            &format!("/records/{}", object.name),
            Value::Object(body.clone()),
        )
        .await;
    assert_eq!(
        status, 201,
        "{who}: create {} {body:?}: {created}",
        object.name
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, list) = client
        .get(&format!(
            "/records/{}?order=-created_at&limit=500",
            object.name
        ))
        .await;
    assert_eq!(status, 200, "{who}: {list}");
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|record| record["id"] == id),
        "{who}: the new {} is not in the list",
        object.name
    );

    // Move it through the first transition that needs no approval and has no guard.
    let (status, path) = client
        .get(&format!("/records/{}/{id}/transitions", object.name))
        .await;
    assert_eq!(status, 200, "{who}: {path}");
    let transition = path["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["needs_approval"] == json!(false) && t["guard"].is_null())
        .unwrap_or_else(|| panic!("{who}: no plain transition from {path}"))
        .clone();
    let to = transition["to"].as_str().unwrap();
    let mut fields = Map::new();
    for missing in transition["missing"].as_array().unwrap() {
        let field = &object.fields[missing.as_str().unwrap()];
        if let Some(value) = client.value_for(field).await {
            fields.insert(field.name.clone(), value);
        }
    }
    let (status, moved) = client
        .post(
            &format!("/records/{}/{id}/transition", object.name),
            json!({ "to": to, "comment": "smoke test", "fields": fields }),
        )
        .await;
    assert_eq!(status, 200, "{who}: transition to {to}: {moved}");
    assert_eq!(moved[&process.stage_field], json!(to), "{who}: {moved}");

    // Claim a record from the pool.
    let (status, in_pool) = client
        .get(&format!("/pools/{}/records?limit=1", pool.name))
        .await;
    assert_eq!(status, 200, "{who}: {in_pool}");
    let record = in_pool["data"]
        .get(0)
        .unwrap_or_else(|| panic!("{who}: the pool {} is empty", pool.name));
    let (status, claimed) = client
        .post(
            &format!(
                "/pools/{}/records/{}/claim",
                pool.name,
                record["id"].as_str().unwrap()
            ),
            json!(null),
        )
        .await;
    assert_eq!(status, 200, "{who}: claim: {claimed}");
    assert_eq!(claimed["owner"], json!(client.user_id), "{who}: {claimed}");
    drop(server);
}

/// A signed-in API client.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    username: String,
    user_id: String,
}

impl Client {
    async fn sign_in(base_url: &str, username: &str, password: &str) -> Client {
        let http = reqwest::Client::new();
        let (status, body) = send_json(
            http.post(format!("{base_url}/api/v1/auth/login"))
                .json(&json!({ "username": username, "password": password })),
        )
        .await;
        assert_eq!(status, 200, "sign-in as {username}: {body}");
        Client {
            http,
            base: format!("{base_url}/api/v1"),
            token: body["token"].as_str().unwrap().to_owned(),
            username: username.to_owned(),
            user_id: body["user"]["id"].as_str().unwrap().to_owned(),
        }
    }

    async fn get(&self, path: &str) -> (reqwest::StatusCode, Value) {
        send_json(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.token),
        )
        .await
    }

    async fn post(&self, path: &str, body: Value) -> (reqwest::StatusCode, Value) {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        let request = if body.is_null() {
            request
        } else {
            request.json(&body)
        };
        send_json(request).await
    }

    /// A value the field accepts: made up from its type and bounds; for a lookup, the first
    /// record of the target the user can see; `None` for computed fields.
    async fn value_for(&self, field: &keel_meta::Field) -> Option<Value> {
        use keel_meta::FieldKind;
        let number = |fallback: i64| {
            let low = field
                .min
                .as_ref()
                .and_then(|n| n.as_i64())
                .unwrap_or(fallback);
            let value = low.max(fallback);
            let high = field.max.as_ref().and_then(|n| n.as_i64()).unwrap_or(value);
            value.min(high)
        };
        let text = |value: &str| {
            let limit = field.max_length.unwrap_or(200) as usize;
            json!(value.chars().take(limit).collect::<String>())
        };
        Some(match &field.kind {
            FieldKind::Text | FieldKind::LongText => text(&format!("冒烟测试 {}", field.name)),
            FieldKind::Email => json!("smoke@example.com"),
            FieldKind::Phone => json!("13800138000"),
            FieldKind::Url => json!("https://example.com/smoke"),
            FieldKind::Integer => json!(number(1)),
            FieldKind::Decimal { .. } | FieldKind::Money { .. } | FieldKind::Percent { .. } => {
                json!(number(1).to_string())
            }
            FieldKind::Boolean => json!(true),
            FieldKind::Date => json!("2030-06-28"),
            FieldKind::Datetime => json!("2030-06-28T10:00:00+08:00"),
            FieldKind::Choice { options } => json!(options[0].key),
            FieldKind::MultiChoice { options } => json!([options[0].key]),
            FieldKind::User => json!(self.user_id),
            FieldKind::Lookup { object, .. } => {
                let (status, list) = self.get(&format!("/records/{object}?limit=1")).await;
                assert_eq!(status, 200, "{}: {list}", self.username);
                let first = list["data"].get(0).unwrap_or_else(|| {
                    panic!(
                        "{} sees no {object} to link {} to",
                        self.username, field.name
                    )
                });
                first["id"].clone()
            }
            FieldKind::Autonumber { .. } | FieldKind::Formula { .. } => return None,
        })
    }
}
