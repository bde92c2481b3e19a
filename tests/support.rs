//! Helpers shared by the black-box tests: app directories built from files, and running the
//! real `keel` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Sends `request` and reads the answer: its status and its body as JSON (`null` when the
/// body is not JSON).
pub async fn send_json(
    request: reqwest::RequestBuilder,
) -> (reqwest::StatusCode, serde_json::Value) {
    let response = request
        .send()
        .await
        .expect("the request reaches the server");
    let status = response.status();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// The `keel` binary Cargo built for these tests.
pub fn keel_binary() -> &'static str {
    env!("CARGO_BIN_EXE_keel")
}

/// The repository root (the standard app).
pub fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An app directory in a temp dir, built from (path, text) pairs.
pub struct AppDir {
    dir: tempfile::TempDir,
}

impl AppDir {
    pub fn new(files: &[(&str, &str)]) -> AppDir {
        let app = AppDir {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        for (path, text) in files {
            app.write(path, text);
        }
        app
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
        std::fs::write(path, text).expect("write file");
    }

    /// A copy of the app directory `source` (its metadata/, workflows/, scripts/ and seed/),
    /// for a server that may change its files (the studio's apply writes them).
    pub fn copy_of(source: &Path) -> AppDir {
        fn copy_dir(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).expect("create dirs");
            for entry in std::fs::read_dir(from).expect("read dir") {
                let entry = entry.expect("dir entry");
                let target = to.join(entry.file_name());
                if entry.path().is_dir() {
                    copy_dir(&entry.path(), &target);
                } else {
                    std::fs::copy(entry.path(), target).expect("copy file");
                }
            }
        }
        let copy = AppDir::new(&[]);
        for dir in ["metadata", "workflows", "scripts", "seed"] {
            if source.join(dir).is_dir() {
                copy_dir(&source.join(dir), &copy.path().join(dir));
            }
        }
        copy
    }

    pub fn remove(&self, relative: &str) {
        std::fs::remove_file(self.dir.path().join(relative)).expect("remove file");
    }
}

/// Runs `keel` with `args` and no inherited KEEL_* settings.
pub fn run_keel(args: &[&str], cwd: &Path) -> Output {
    Command::new(keel_binary())
        .args(args)
        .current_dir(cwd)
        .env_remove("KEEL_APP")
        .env_remove("KEEL_DB")
        .env_remove("KEEL_LISTEN")
        .env_remove("KEEL_ADMIN_PASSWORD")
        .env("KEEL_LOG", "warn")
        .output()
        .expect("run keel")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Adds users with a role each, as `(username, password, role)`, through the same accounts
/// code the API uses.
pub async fn add_users(
    db: &keel_store::Db,
    schema: &keel_meta::Schema,
    users: &[(&str, &str, &str)],
) {
    for (username, password, role) in users {
        add_user(db, schema, username, password, role, None).await;
    }
}

/// Adds a team that shares `password`: each (username, role, manager).
pub async fn add_team(
    db: &keel_store::Db,
    schema: &keel_meta::Schema,
    password: &str,
    team: &[(&str, &str, Option<&str>)],
) {
    for (username, role, manager) in team {
        add_user(db, schema, username, password, role, *manager).await;
    }
}

async fn add_user(
    db: &keel_store::Db,
    schema: &keel_meta::Schema,
    username: &str,
    password: &str,
    role: &str,
    manager: Option<&str>,
) {
    keel_runtime::accounts::add_user(
        db,
        schema,
        keel_runtime::accounts::NewUser {
            username: username.to_owned(),
            display_name: None,
            password: password.to_owned(),
            roles: vec![role.to_owned()],
            manager: manager.map(str::to_owned),
            department: None,
            language: None,
            email: None,
        },
    )
    .await
    .unwrap();
}

/// A Keel server running in the test's process on a free loopback port, and a client of its
/// API: the tests that drive a `ManualClock` serve their own `AppState` through it.
pub struct Api {
    pub base_url: String,
    pub client: reqwest::Client,
}

impl Api {
    /// Serves `state` until the test ends.
    pub async fn serve(state: keel_web::AppState) -> Api {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address = listener.local_addr().expect("the port's address");
        tokio::spawn(keel_web::serve_until(
            listener,
            state,
            std::future::pending(),
        ));
        Api {
            base_url: format!("http://{address}"),
            client: reqwest::Client::new(),
        }
    }

    /// A request to `/api/v1{path}` as the holder of `token`.
    pub fn request(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/api/v1{path}", self.base_url))
            .bearer_auth(token)
    }

    /// Signs in and returns the session token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = send_json(
            self.client
                .post(format!("{}/api/v1/auth/login", self.base_url))
                .json(&serde_json::json!({ "username": username, "password": password })),
        )
        .await;
        assert_eq!(
            status,
            reqwest::StatusCode::OK,
            "login as {username}: {body}"
        );
        body["token"]
            .as_str()
            .expect("a token in the login answer")
            .to_owned()
    }

    pub async fn get(&self, token: &str, path: &str) -> (reqwest::StatusCode, serde_json::Value) {
        send_json(self.request(token, reqwest::Method::GET, path)).await
    }

    pub async fn post(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        send_json(self.request(token, reqwest::Method::POST, path).json(&body)).await
    }

    pub async fn patch(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        send_json(
            self.request(token, reqwest::Method::PATCH, path)
                .json(&body),
        )
        .await
    }
}
