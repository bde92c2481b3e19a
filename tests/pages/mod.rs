//! Tests of the generated pages over real HTTP: a real `keel serve` (the standard app with
//! its demo data, or a fixture app), a cookie session signed in through `/login`, forms
//! posted with their CSRF token, and the HTML parsed (and checked well formed) with scraper.
//!
//! `browser` drives the same pages in headless Chromium.

mod admin;
mod browser;
mod every_page;
mod form;
mod frame;
mod list;
mod pools;
mod process;
mod record;
mod rules;
mod studio;
mod studio_files;
mod studio_objects;
mod studio_workflows;

use std::process::{Command, Stdio};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT_LANGUAGE, COOKIE, LOCATION, SET_COOKIE};

use crate::serve::{Server, start_server};
use crate::support::{AppDir, keel_binary, repository_root};

/// The admin's password in every site these tests start.
pub const ADMIN_PASSWORD: &str = "admin-pass-1234";
/// The demo users' password (seed/users.csv of the standard app).
pub const DEMO_PASSWORD: &str = "demo1234";

/// A running `keel serve` for page tests; killed when dropped.
pub struct Site {
    server: Server,
    _app: Option<AppDir>,
}

impl Site {
    /// The standard app (the repository root) with its demo data, on `db_url`.
    pub fn standard(db_url: &str) -> Site {
        Site::start(&repository_root(), db_url, None)
    }

    /// A copy of the standard app with its demo data, on `db_url`: for a test that changes
    /// the app (the studio's apply writes its files).
    pub fn standard_copy(db_url: &str) -> Site {
        Site::app(AppDir::copy_of(&repository_root()), db_url)
    }

    /// A fixture app with `--demo` (loads its `seed/` when it has one).
    pub fn app(app: AppDir, db_url: &str) -> Site {
        let path = app.path().to_owned();
        Site::start(&path, db_url, Some(app))
    }

    fn start(app_dir: &std::path::Path, db_url: &str, app: Option<AppDir>) -> Site {
        let mut command = Command::new(keel_binary());
        command
            .args([
                "serve",
                "--app",
                app_dir.to_str().unwrap(),
                "--db",
                db_url,
                "--listen",
                "127.0.0.1:0",
                "--demo",
            ])
            .current_dir(app_dir)
            .env("KEEL_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("KEEL_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Site {
            server: start_server(command),
            _app: app,
        }
    }

    /// The app directory of a site started on a copy ([`Site::app`], [`Site::standard_copy`]).
    pub fn app_dir(&self) -> &std::path::Path {
        self._app
            .as_ref()
            .expect("a site on a copy of an app")
            .path()
    }

    pub fn base_url(&self) -> &str {
        &self.server.base_url
    }

    /// A session signed in as `username` through the sign-in form (`admin` gets the admin
    /// password, everyone else the demo one).
    pub async fn login(&self, username: &str) -> Session {
        let password = if username == "admin" {
            ADMIN_PASSWORD
        } else {
            DEMO_PASSWORD
        };
        self.login_with(username, password, None).await
    }

    /// A session signed in with the given password, speaking `language` (`Accept-Language`).
    pub async fn login_with(
        &self,
        username: &str,
        password: &str,
        language: Option<&str>,
    ) -> Session {
        let mut session = self.anonymous();
        session.language = language.map(str::to_owned);
        let page = session
            .post_plain(
                "/login",
                &[
                    ("username", username),
                    ("password", password),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "sign-in as {username}: {}",
            page.html
        );
        assert!(session.token().is_some(), "sign-in sets the session cookie");
        session
    }

    /// A session that has not signed in.
    pub fn anonymous(&self) -> Session {
        Session {
            base_url: self.base_url().to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: std::collections::BTreeMap::new(),
            csrf: None,
            language: None,
        }
    }
}

/// A browser-like session: its cookies (the session's and any other the pages set), the
/// CSRF token of the last page, a language.
pub struct Session {
    base_url: String,
    client: reqwest::Client,
    cookies: std::collections::BTreeMap<String, String>,
    csrf: Option<String>,
    pub language: Option<String>,
}

/// One answer: status, the `Location` of a redirect, and the HTML.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub html: String,
}

impl Session {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base_url));
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            request = request.header(COOKIE, jar.join("; "));
        }
        if let Some(language) = &self.language {
            request = request.header(ACCEPT_LANGUAGE, language);
        }
        request
    }

    async fn read(&mut self, response: reqwest::Response) -> Page {
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap_or("");
            let pair = text.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                // An empty value or `Max-Age=0` clears the cookie, as a browser does.
                if value.is_empty() || text.contains("Max-Age=0") {
                    self.cookies.remove(name.trim());
                } else {
                    self.cookies
                        .insert(name.trim().to_owned(), value.to_owned());
                }
            }
        }
        let html = response.text().await.unwrap_or_default();
        let page = Page {
            status,
            location,
            html,
        };
        if let Some(token) = page.csrf() {
            self.csrf = Some(token);
        }
        page
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Page {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        self.read(response).await
    }

    /// Posts a form with the CSRF token of the last page this session saw.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self
            .csrf
            .clone()
            .expect("a page with a form was loaded before posting");
        let mut all: Vec<(&str, &str)> = vec![("_csrf", token.as_str())];
        all.extend_from_slice(fields);
        let response = self
            .request(reqwest::Method::POST, path)
            .form(&all)
            .send()
            .await
            .unwrap();
        self.read(response).await
    }

    /// Posts a form without a CSRF token (the sign-in form, or a forgery).
    pub async fn post_plain(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let response = self
            .request(reqwest::Method::POST, path)
            .form(fields)
            .send()
            .await
            .unwrap();
        self.read(response).await
    }

    /// The session token (for API calls as the same user).
    pub fn token(&self) -> Option<&str> {
        self.cookies.get("keel_session").map(String::as_str)
    }
}

impl Page {
    /// The parsed document.
    pub fn document(&self) -> scraper::Html {
        scraper::Html::parse_document(&self.html)
    }

    /// The HTML parse errors of the page (empty for a well-formed page).
    pub fn parse_errors(&self) -> Vec<String> {
        self.document()
            .errors
            .iter()
            .map(|error| error.to_string())
            .collect()
    }

    /// Asserts the page is well formed and has no untranslated catalog key (`⟦key⟧`).
    pub fn assert_clean(&self, what: &str) {
        let errors = self.parse_errors();
        assert!(
            errors.is_empty(),
            "{what}: HTML parse errors {errors:?}\n{}",
            self.html
        );
        assert!(
            !self.html.contains('⟦'),
            "{what}: an untranslated key:\n{}",
            self.html
        );
    }

    /// The text of every element matching `selector`, whitespace collapsed.
    pub fn texts(&self, selector: &str) -> Vec<String> {
        let selector = scraper::Selector::parse(selector).unwrap();
        self.document()
            .select(&selector)
            .map(|element| element.text().collect::<Vec<_>>().join(" "))
            .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// The value of `attribute` on every element matching `selector`.
    pub fn attrs(&self, selector: &str, attribute: &str) -> Vec<String> {
        let selector = scraper::Selector::parse(selector).unwrap();
        self.document()
            .select(&selector)
            .filter_map(|element| element.value().attr(attribute).map(str::to_owned))
            .collect()
    }

    /// The CSRF token in the page's forms, if it has one.
    pub fn csrf(&self) -> Option<String> {
        self.attrs("input[name=_csrf]", "value").into_iter().next()
    }
}

/// Forms as a browser would send them, for the studio's page tests.
/// The values the form `form` (a CSS selector) of `page` would send as it is, without its
/// CSRF token and its buttons: text inputs, ticked checkboxes, the chosen options.
pub fn form_values(page: &Page, form: &str) -> Vec<(String, String)> {
    let document = page.document();
    let form_selector = scraper::Selector::parse(form).unwrap();
    let form = document
        .select(&form_selector)
        .next()
        .unwrap_or_else(|| panic!("no {form:?} in {}", page.html));
    let controls = scraper::Selector::parse("input, select, textarea").unwrap();
    let options = scraper::Selector::parse("option").unwrap();
    let mut values = Vec::new();
    for control in form.select(&controls) {
        let element = control.value();
        let Some(name) = element.attr("name") else {
            continue;
        };
        if name == "_csrf" {
            continue;
        }
        match element.name() {
            "select" => {
                let all: Vec<_> = control.select(&options).collect();
                let chosen: Vec<_> = all
                    .iter()
                    .filter(|option| option.value().attr("selected").is_some())
                    .copied()
                    .collect();
                let value = |option: &scraper::ElementRef| {
                    option
                        .value()
                        .attr("value")
                        .map(str::to_owned)
                        .unwrap_or_else(|| option.text().collect())
                };
                if element.attr("multiple").is_some() {
                    for option in &chosen {
                        values.push((name.to_owned(), value(option)));
                    }
                } else if let Some(option) = chosen.first().or(all.first()) {
                    values.push((name.to_owned(), value(option)));
                }
            }
            "textarea" => values.push((name.to_owned(), control.text().collect())),
            _ => {
                let kind = element.attr("type").unwrap_or("text");
                if matches!(kind, "submit" | "button") {
                    continue;
                }
                if matches!(kind, "checkbox" | "radio") && element.attr("checked").is_none() {
                    continue;
                }
                let value =
                    element
                        .attr("value")
                        .unwrap_or(if kind == "checkbox" { "on" } else { "" });
                values.push((name.to_owned(), value.to_owned()));
            }
        }
    }
    values
}

/// `values` with the first value of `name` replaced by `value` (or added).
pub fn with(
    values: impl AsRef<[(String, String)]>,
    name: &str,
    value: &str,
) -> Vec<(String, String)> {
    let mut values = values.as_ref().to_vec();
    match values.iter_mut().find(|(key, _)| key == name) {
        Some(entry) => entry.1 = value.to_owned(),
        None => values.push((name.to_owned(), value.to_owned())),
    }
    values
}

/// Posts `values` (as [`form_values`] reads them) with the session's CSRF token.
pub async fn post_values(session: &mut Session, path: &str, values: &[(String, String)]) -> Page {
    let fields: Vec<(&str, &str)> = values
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    session.post(path, &fields).await
}
