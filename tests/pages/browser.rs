//! The pages in a real browser: headless Chromium driven over WebDriver (`chromedriver`)
//! against a real `keel serve --demo` of the standard app, on SQLite and on PostgreSQL.
//!
//! Each test takes [`Chrome::start`], which holds one global lock for the whole test, so
//! only one test's browsers run at a time (CI has two cores, and Chromium is heavy), starts
//! its own `chromedriver` on a free loopback port, and kills it (with the Chromium processes
//! it started, one process group) when dropped. Without `chromedriver` or `chromium` the
//! tests fail under `CI=true` and are skipped locally with a `SKIPPED` line on stderr.
//!
//! Screenshots of the pages go to `target/ui-screenshots/<backend>/<name>-<width>.png`, the
//! artifact of a test run (docs/ui.md shows a copy).

mod access;
mod admin;
mod conflict;
mod live;
mod pools;
mod process;
mod screens;
mod studio_files;
mod studio_objects;
mod studio_process;
mod walk;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use keel_testkit::Backend;
use serde_json::{Value, json};

/// How long a page may take to show what a test waits for: a deadline for the outcome, not
/// a timing assertion, so generous — 10 s once ran out on a machine at load average 7 while
/// the page it waited for had come.
const WAIT: Duration = Duration::from_secs(30);
/// How often a condition is checked while waiting.
const POLL: Duration = Duration::from_millis(100);
/// The widths every main page is checked at: a desktop and a phone.
pub const DESKTOP: u32 = 1280;
pub const PHONE: u32 = 375;
const HEIGHT: u32 = 900;

/// One test's browsers at a time, across the whole test process.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running `chromedriver`; the browsers it started die with it.
pub struct Chrome {
    child: Child,
    url: String,
    chromium: PathBuf,
    backend: Backend,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// Where an executable is: on `PATH`, else in `/usr/bin`.
fn find_executable(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A free loopback port: bound, then released for chromedriver to take.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Chrome {
    /// Waits for this process's turn, then starts `chromedriver`. `None` when `chromedriver`
    /// or `chromium` is missing and this is not CI (the test then returns early).
    pub async fn start(backend: Backend) -> Option<Chrome> {
        let how = "apt-get install chromium chromium-driver (Debian; .ci/run does)";
        let (Some(driver), Some(chromium)) =
            (find_executable("chromedriver"), find_executable("chromium"))
        else {
            keel_testkit::skip_tool_locally_or_fail_in_ci("chromedriver and chromium", how);
            return None;
        };
        let turn = ONE_AT_A_TIME.lock().await;
        let port = free_port();
        let mut command = Command::new(driver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that dropping it kills the Chromium processes it
        // started too (they would outlive a killed chromedriver otherwise).
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("start chromedriver");
        let chrome = Chrome {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
            backend,
            _turn: turn,
        };
        let status = format!("{}/status", chrome.url);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = reqwest::get(&status)
                .await
                .ok()
                .filter(|response| response.status().is_success());
            if let Some(response) = ready {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if body["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer {status} within 30 s"
            );
            tokio::time::sleep(POLL).await;
        }
        Some(chrome)
    }

    /// A new browser (its own Chromium, profile and cookies) on `base_url`, speaking `lang`
    /// (`zh-CN`, `en-US`: its `Accept-Language`), its window 1280×900.
    pub async fn browser(&self, base_url: &str, lang: &str) -> Browser {
        let profile = tempfile::Builder::new()
            .prefix("keel-chromium-")
            .tempdir()
            .unwrap();
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={DESKTOP},{HEIGHT}"),
            format!("--lang={lang}"),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": self.chromium,
                "args": args,
                "prefs": { "intl.accept_languages": lang },
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a WebDriver session in headless Chromium");
        Browser {
            client,
            base_url: base_url.to_owned(),
            backend: self.backend,
            _profile: profile,
        }
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser window (one WebDriver session).
pub struct Browser {
    pub client: Client,
    base_url: String,
    backend: Backend,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Opens `path` of the site.
    pub async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base_url))
            .await
            .unwrap_or_else(|error| panic!("open {path}: {error}"));
    }

    /// The path (and query) of the page shown.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The first element matching `css`, waiting for it to appear (at most 10 s).
    pub async fn wait_for(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(error) => panic!(
                "no `{css}` on {} within {WAIT:?} ({error}); screenshot {}; the page:\n{}",
                self.path().await,
                self.failure_screenshot().await,
                self.source().await
            ),
        }
    }

    /// Waits (at most 10 s) until `condition` on the page holds: a JavaScript expression.
    pub async fn wait_until(&self, what: &str, condition: &str) {
        let script = format!("return !!({condition});");
        let deadline = Instant::now() + WAIT;
        loop {
            if self.client.execute(&script, vec![]).await.ok() == Some(Value::Bool(true)) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{what}: `{condition}` not true within {WAIT:?} on {}; screenshot {}; \
                     the page:\n{}",
                    self.path().await,
                    self.failure_screenshot().await,
                    self.source().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A screenshot of the page a wait gave up on, for the failure message (the directory
    /// is the test run's artifact).
    async fn failure_screenshot(&self) -> String {
        static FAILURES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let number = FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stamp = format!("{}-{number}", std::process::id());
        match self.client.screenshot().await {
            Ok(png) => {
                let dir = screenshot_dir(self.backend);
                let path = dir.join(format!("failed-{stamp}.png"));
                let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, png));
                match saved {
                    Ok(()) => path.display().to_string(),
                    Err(error) => format!("not saved ({error})"),
                }
            }
            Err(error) => format!("not taken ({error})"),
        }
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> String {
        self.client.source().await.unwrap_or_default()
    }

    /// Whether an element matches `css` now (no waiting).
    pub async fn has(&self, css: &str) -> bool {
        !self.all(css).await.is_empty()
    }

    /// Whether the first element matching `css` is shown now (rendered, not hidden by an
    /// ancestor, a closed `<details>` or `visibility`).
    pub async fn visible(&self, css: &str) -> bool {
        self.client
            .execute(
                "var e = document.querySelector(arguments[0]); \
                 return !!e && e.checkVisibility({ visibilityProperty: true });",
                vec![json!(css)],
            )
            .await
            .unwrap()
            == Value::Bool(true)
    }

    /// Every element matching `css` now.
    pub async fn all(&self, css: &str) -> Vec<Element> {
        self.client.find_all(Locator::Css(css)).await.unwrap()
    }

    /// The visible text of the first element matching `css` (waiting for it).
    pub async fn text(&self, css: &str) -> String {
        self.wait_for(css).await.text().await.unwrap()
    }

    /// The text content of every element matching `css` now, whitespace collapsed (hidden
    /// ones too, unlike WebDriver's visible text).
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let value = self
            .client
            .execute(
                "return Array.from(document.querySelectorAll(arguments[0])).map(function (e) { \
                 return e.textContent.replace(/\\s+/g, ' ').trim(); });",
                vec![json!(css)],
            )
            .await
            .unwrap();
        serde_json::from_value(value).unwrap()
    }

    /// The current value of the input matching `css`.
    pub async fn value(&self, css: &str) -> String {
        self.wait_for(css)
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Replaces the text of the input matching `css` by typing `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.wait_for(css).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    /// Chooses the option of the select matching `css` whose value or label is `choice`.
    pub async fn choose(&self, css: &str, choice: &str) {
        let chosen = self
            .client
            .execute(
                "var select = document.querySelector(arguments[0]); \
                 if (!select) return false; \
                 var want = arguments[1]; \
                 var option = Array.from(select.options).find(function (o) { \
                   return o.value === want || o.textContent.trim() === want; }); \
                 if (!option) return false; \
                 option.selected = true; \
                 select.dispatchEvent(new Event('input', { bubbles: true })); \
                 select.dispatchEvent(new Event('change', { bubbles: true })); \
                 return true;",
                vec![json!(css), json!(choice)],
            )
            .await
            .unwrap();
        assert_eq!(
            chosen,
            Value::Bool(true),
            "no option `{choice}` in `{css}`; the page:\n{}",
            self.source().await
        );
    }

    /// Clicks the first element matching `css` (waiting for it).
    pub async fn click(&self, css: &str) {
        self.wait_for(css).await.click().await.unwrap();
    }

    /// Runs JavaScript that returns a value.
    pub async fn run(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Signs in through the form on `/login` as `username` with `password`.
    pub async fn sign_in(&self, username: &str, password: &str) {
        self.open("/login").await;
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click("form[action='/login'] button[type=submit]")
            .await;
    }

    /// Signs in and waits for the home page.
    pub async fn sign_in_home(&self, username: &str) {
        let password = if username == "admin" {
            super::ADMIN_PASSWORD
        } else {
            super::DEMO_PASSWORD
        };
        self.sign_in(username, password).await;
        self.wait_for("#notification-list").await;
    }

    /// Forgets the signed-in user (all cookies), like another person at the same browser.
    pub async fn forget(&self) {
        self.client.delete_all_cookies().await.unwrap();
    }

    /// Sets the window size (the viewport follows it in headless Chromium).
    pub async fn resize(&self, width: u32) {
        self.client.set_window_size(width, HEIGHT).await.unwrap();
        self.wait_until(
            &format!("the window is {width} px wide"),
            &format!("window.innerWidth === {width}"),
        )
        .await;
    }

    /// Saves the page at 1280 and at 375 px to `target/ui-screenshots/<backend>/
    /// <name>-<width>.png`, and asserts it has no horizontal scroll at 375 px. The page is
    /// loaded again at each width, as a phone would load it (scripts that adapt the page
    /// to the width run on load), so it must be a page a GET shows. Leaves the window at
    /// 1280 px with the page loaded again.
    pub async fn screenshots(&self, name: &str) {
        for width in [DESKTOP, PHONE] {
            self.resize(width).await;
            self.reload().await;
            if width == PHONE {
                self.assert_no_horizontal_scroll(name).await;
            }
            self.screenshot(&format!("{name}-{width}")).await;
        }
        self.resize(DESKTOP).await;
        self.reload().await;
    }

    /// Loads the page again and waits until it has loaded.
    pub async fn reload(&self) {
        self.client.refresh().await.unwrap();
        self.wait_until("the page loads", "document.readyState === 'complete'")
            .await;
    }

    /// Saves a screenshot of the window as `target/ui-screenshots/<backend>/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot of {name}");
        let dir = screenshot_dir(self.backend);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Asserts the page is no wider than the window (nothing scrolls sideways).
    pub async fn assert_no_horizontal_scroll(&self, what: &str) {
        let widths = self
            .run(
                "return [document.documentElement.scrollWidth, window.innerWidth, \
                 Array.from(document.querySelectorAll('body *')).filter(function (e) { \
                   var r = e.getBoundingClientRect(); return r.right > window.innerWidth + 0.5; \
                 }).slice(0, 5).map(function (e) { \
                   return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') \
                     + (e.className && e.className.baseVal === undefined ? '.' + e.className.split(' ').join('.') : ''); \
                 })];",
            )
            .await;
        let scroll = widths[0].as_u64().unwrap();
        let window = widths[1].as_u64().unwrap();
        assert!(
            scroll <= window,
            "{what} at {window} px scrolls sideways: {scroll} px wide; too wide: {}",
            widths[2]
        );
    }
}

/// `target/ui-screenshots/<backend>`: next to the test binary (`target/debug/deps/…`), so
/// it follows `CARGO_TARGET_DIR`.
pub fn screenshot_dir(backend: Backend) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("ui-screenshots").join(backend.to_string())
}

/// An API token for `username` (`POST /api/v1/auth/login`).
pub async fn api_token(site: &super::Site, username: &str) -> String {
    let password = if username == "admin" {
        super::ADMIN_PASSWORD
    } else {
        super::DEMO_PASSWORD
    };
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", site.base_url()))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "API sign-in as {username}");
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// `method path` of the API as the holder of `token`, with a JSON body: (status, body).
pub async fn api(
    site: &super::Site,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (reqwest::StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}/api/v1{path}", site.base_url()))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    crate::support::send_json(request).await
}
