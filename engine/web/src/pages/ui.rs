//! The pages' machinery: the files of `admin-ui/` (templates, static assets, message
//! catalogs) embedded in the binary, the minijinja environment that renders the templates,
//! and the hashed URLs of the static assets.
//!
//! Release builds embed `admin-ui/`; debug builds read it from disk on every use (rust-embed
//! does that by itself), and build a fresh template environment per page, so a template or
//! CSS edit shows on the next reload without a rebuild.
//!
//! A static asset is served at `/static/<name>.<hash>.<ext>` (the first 10 hex digits of its
//! SHA-256) with a year-long immutable cache; a changed file gets a new URL, so browsers
//! never run stale CSS or JS. Templates name assets with `asset("app.css")`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::value::Kwargs;
use minijinja::{Environment, Error as TemplateError, ErrorKind, State, Value};
use rust_embed::RustEmbed;

use super::format;
use super::i18n::Catalogs;

/// Every file under `admin-ui/`.
#[derive(RustEmbed)]
#[folder = "../../admin-ui/"]
struct Files;

/// How many hex digits of an asset's SHA-256 its URL carries.
const HASH_DIGITS: usize = 10;

/// Templates, catalogs and asset URLs, shared by every page.
#[derive(Clone)]
pub struct Ui {
    inner: Arc<Inner>,
}

struct Inner {
    /// The shared environment of release builds; debug builds make one per render.
    env: Option<Environment<'static>>,
    catalogs: Arc<Catalogs>,
    /// Static asset name → its hashed URL (release builds; debug builds hash on each use).
    assets: HashMap<String, String>,
}

impl Ui {
    /// Loads the message catalogs and prepares the templates. A catalog that does not
    /// parse is logged and left empty (the test suite parses both, so that is a build bug).
    pub fn new() -> Ui {
        let files: Vec<String> = Files::iter().map(|path| path.into_owned()).collect();
        let catalogs = Arc::new(Catalogs::load(&files, read));
        let assets = if cfg!(debug_assertions) {
            HashMap::new()
        } else {
            static_names()
                .filter_map(|name| hashed_url(&name).map(|url| (name, url)))
                .collect()
        };
        let env = (!cfg!(debug_assertions)).then(|| environment(catalogs.clone(), assets.clone()));
        Ui {
            inner: Arc::new(Inner {
                env,
                catalogs,
                assets,
            }),
        }
    }

    pub fn catalogs(&self) -> &Catalogs {
        &self.inner.catalogs
    }

    /// Renders `template` with `context`. A template fault is logged with its place and
    /// returned as an error (the page answers 500).
    pub fn render(&self, template: &str, context: Value) -> Result<String, TemplateError> {
        let fresh;
        let env = match &self.inner.env {
            Some(env) => env,
            None => {
                fresh = environment(self.inner.catalogs.clone(), self.inner.assets.clone());
                &fresh
            }
        };
        env.get_template(template)?.render(context)
    }

    /// The URL of a static asset (`app.css` → `/static/app.1a2b3c4d5e.css`).
    pub fn asset_url(&self, name: &str) -> Option<String> {
        match self.inner.assets.get(name) {
            Some(url) => Some(url.clone()),
            None => hashed_url(name),
        }
    }
}

impl Default for Ui {
    fn default() -> Ui {
        Ui::new()
    }
}

fn read(path: &str) -> Option<Cow<'static, [u8]>> {
    Files::get(path).map(|file| file.data)
}

/// The names of the static assets, relative to `admin-ui/static/`.
fn static_names() -> impl Iterator<Item = String> {
    Files::iter().filter_map(|path| path.strip_prefix("static/").map(str::to_owned))
}

fn hashed_url(name: &str) -> Option<String> {
    let file = Files::get(&format!("static/{name}"))?;
    let hash = hex::encode(file.metadata.sha256_hash());
    let hash = &hash[..HASH_DIGITS];
    Some(match name.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() && !stem.ends_with('/') => {
            format!("/static/{stem}.{hash}.{extension}")
        }
        _ => format!("/static/{name}.{hash}"),
    })
}

/// The template environment: templates from `admin-ui/templates/`, auto-escaping for
/// `.html`, strict undefined (a misspelt variable is an error, not an empty string), and
/// the functions and filters of the pages.
fn environment(catalogs: Arc<Catalogs>, assets: HashMap<String, String>) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_loader(|name| {
        if name.contains("..") {
            return Ok(None);
        }
        Ok(read(&format!("templates/{name}"))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    });
    env.add_function("t", move |state: &State, key: &str, args: Kwargs| {
        let language = language_of(state);
        let text = catalogs.text(&language, key, |name| {
            args.get::<Option<Value>>(name)
                .ok()
                .flatten()
                .map(|value| value.to_string())
        });
        // Unused arguments are fine: a translation may leave a figure out.
        let _ = args.assert_all_used();
        Ok::<String, TemplateError>(text)
    });
    env.add_function("asset", move |name: &str| {
        assets
            .get(name)
            .cloned()
            .or_else(|| hashed_url(name))
            .map(Value::from_safe_string)
            .ok_or_else(|| {
                TemplateError::new(
                    ErrorKind::InvalidOperation,
                    format!("there is no static asset `{name}` in admin-ui/static"),
                )
            })
    });
    env.add_filter("number", |value: Value| {
        format::number_text(&value.to_string())
    });
    env.add_filter("datetime", |state: &State, value: &str| {
        format::datetime_text(value, &timezone_of(state))
    });
    env.add_filter("ago", |state: &State, value: &str| {
        let now = state
            .lookup("frame")
            .and_then(|frame| frame.get_attr("now").ok())
            .map(|now| now.to_string())
            .unwrap_or_default();
        format::ago_text(value, &now, &language_of(state))
    });
    env
}

/// The page's language: `frame.lang` in the context, else the app default of English.
fn language_of(state: &State) -> String {
    state
        .lookup("frame")
        .and_then(|frame| frame.get_attr("lang").ok())
        .filter(|lang| !lang.is_undefined() && !lang.is_none())
        .map(|lang| lang.to_string())
        .unwrap_or_else(|| "en".to_owned())
}

fn timezone_of(state: &State) -> String {
    state
        .lookup("frame")
        .and_then(|frame| frame.get_attr("tz").ok())
        .filter(|tz| !tz.is_undefined() && !tz.is_none())
        .map(|tz| tz.to_string())
        .unwrap_or_else(|| "UTC".to_owned())
}

/// `GET /static/{*path}`: a hashed asset URL → the file with a year-long immutable cache.
/// A URL whose hash is not the file's current one is a 404 (the page that named it is
/// older than the binary).
pub async fn static_file(Path(path): Path<String>) -> Response {
    let Some((name, hash)) = unhash(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(file) = Files::get(&format!("static/{name}")) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !hex::encode(file.metadata.sha256_hash()).starts_with(hash) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut response = file.data.into_owned().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&name)),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

/// `app.1a2b3c4d5e.css` → (`app.css`, `1a2b3c4d5e`).
fn unhash(path: &str) -> Option<(String, &str)> {
    if path.contains("..") {
        return None;
    }
    let (rest, extension) = path.rsplit_once('.')?;
    let (stem, hash) = match rest.rsplit_once('.') {
        Some((stem, hash)) if hash.len() == HASH_DIGITS => (stem, hash),
        // `name.<hash>` without an extension.
        _ if extension.len() == HASH_DIGITS => return Some((rest.to_owned(), extension)),
        _ => return None,
    };
    if !hash.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    Some((format!("{stem}.{extension}"), hash))
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Every template name under `admin-ui/templates/` (tests render or parse them all).
pub fn template_names() -> Vec<String> {
    Files::iter()
        .filter_map(|path| path.strip_prefix("templates/").map(str::to_owned))
        .collect()
}

/// The text of a template (tests check every `t(...)` key it names exists).
pub fn template_source(name: &str) -> Option<String> {
    read(&format!("templates/{name}")).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_urls_round_trip_to_the_file_they_name() {
        let url = hashed_url("app.css").unwrap();
        let path = url.strip_prefix("/static/").unwrap();
        assert_eq!(unhash(path).unwrap().0, "app.css");
        let vendored = hashed_url("vendor/htmx-2.0.11.min.js").unwrap();
        let (name, _) = unhash(vendored.strip_prefix("/static/").unwrap()).unwrap();
        assert_eq!(name, "vendor/htmx-2.0.11.min.js");
        assert!(unhash("app.css").is_none());
        assert!(unhash("../Cargo.toml.0123456789.x").is_none());
    }
}
