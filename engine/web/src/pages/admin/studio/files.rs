//! The studio's file editor (docs/studio.md, "The file editor"): `/admin/studio/files` lists
//! every app file of the latest version and takes a new one (path and text);
//! `/admin/studio/files/{*path}` edits one file as text. Both send their change to the
//! review ([`super::review`]) like every other editor: "Review" posts the textarea (its line
//! ends made the file's again by [`super::keep_line_ends`]), "Delete" the file's removal.
//!
//! Without JavaScript that is the whole editor: the review shows every problem at
//! `file:line:col`. `static/studio-editor.js` adds line numbers, the problems of the file as
//! the admin types (debounced calls to `POST /api/v1/admin/metadata/validate`, the same
//! check) and key completion from the JSON Schema of the file's kind
//! (`/api/v1/meta/schema/{kind}.json`).

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use keel_meta::AppFiles;
use keel_meta::schemas::FileKind;
use keel_runtime::metadata::{self, Changes};
use serde::Serialize;

use super::{Applied, Change, keep_line_ends, latest, review};
use crate::AppState;
use crate::extract::Pinned;
use crate::pages::admin::{console_frame, not_found, tr};
use crate::pages::{PageError, PageForm, Viewer, form_urlencode, render_with_status};

/// The file list and the file editor; [`super::routes`] merges them.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/studio/files", get(list).post(create))
        .route("/admin/studio/files/{*path}", get(editor).post(submit))
}

/// The file list's address.
const FILES: &str = "/admin/studio/files";

/// The editor's address of the file at `path` (each character outside `[A-Za-z0-9-_.~/]`
/// percent-encoded; the route decodes it again).
pub fn editor_href(path: &str) -> String {
    format!("{FILES}/{}", form_urlencode(path))
}

#[derive(Debug, Serialize)]
struct FilesPage {
    section: &'static str,
    applied: Option<i64>,
    version: i64,
    files: Vec<FileRow>,
    /// The new-file form: its values, and the error next to one of its fields.
    new_path: String,
    new_text: String,
    error: Option<NewFileError>,
}

#[derive(Debug, Serialize)]
struct FileRow {
    path: String,
    href: String,
    bytes: usize,
    lines: usize,
}

/// What is wrong with a new file's form: the field (`path`) and why.
#[derive(Debug, Serialize)]
struct NewFileError {
    field: &'static str,
    message: String,
}

/// The number of lines of `text` (a last line without a line end counts).
fn line_count(text: &str) -> usize {
    text.lines().count()
}

async fn show_list(
    state: &AppState,
    viewer: &Viewer,
    applied: Option<i64>,
    form: Option<(String, String, NewFileError)>,
) -> Result<Response, PageError> {
    let frame = console_frame(state, viewer).await?;
    let (version, files) = latest(state, viewer).await?;
    let status = if form.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let (new_path, new_text, error) = match form {
        Some((path, text, error)) => (path, text, Some(error)),
        None => (String::new(), String::new(), None),
    };
    let page = FilesPage {
        section: "studio",
        applied,
        version,
        files: files
            .iter()
            .map(|(path, text)| FileRow {
                href: editor_href(path),
                path: path.clone(),
                bytes: text.len(),
                lines: line_count(text),
            })
            .collect(),
        new_path,
        new_text,
        error,
    };
    render_with_status(state, &frame, "admin/studio/files.html", page, status)
}

/// `GET /admin/studio/files`: every app file of the latest version, and the new-file form.
async fn list(
    Pinned(state): Pinned,
    viewer: Viewer,
    Query(applied): Query<Applied>,
) -> Result<Response, PageError> {
    show_list(&state, &viewer, applied.applied, None).await
}

/// Why `path` cannot be a new file among `files`, as the catalog key of the message.
fn new_path_problem(path: &str, files: &AppFiles) -> Option<&'static str> {
    if path.is_empty() {
        Some("studio.files.path_required")
    } else if !keel_meta::is_app_file(path) {
        Some("studio.files.path_not_metadata")
    } else if files.contains_key(path) {
        Some("studio.files.path_exists")
    } else {
        None
    }
}

/// `POST /admin/studio/files` (`path`, `text`, `base`): the review of a new file, or the
/// list again (422) with what is wrong with the path.
async fn create(Pinned(state): Pinned, form: PageForm) -> Result<Response, PageError> {
    let viewer = &form.viewer;
    let (latest_version, files) = latest(&state, viewer).await?;
    let path = form.get("path").unwrap_or_default().trim().to_owned();
    let text = form.get("text").unwrap_or_default().to_owned();
    let base = base_of(&form).unwrap_or(latest_version);
    let base = rebase(&state, viewer, base, latest_version, &files, &path).await;
    if let Some(key) = new_path_problem(&path, &files) {
        let message = tr(&state, &viewer.lang, key, &[("path", path.clone())]);
        let error = NewFileError {
            field: "path",
            message,
        };
        return show_list(&state, viewer, None, Some((path, text, error))).await;
    }
    let changes = Changes::from([(path.clone(), Some(keep_line_ends(None, &text)))]);
    let change = Change {
        title: tr(
            &state,
            &viewer.lang,
            "studio.files.new_title",
            &[("path", path)],
        ),
        back: FILES.to_owned(),
        base,
        changes,
    };
    review(&state, viewer, change).await
}

/// The `base` a form was made against.
fn base_of(form: &PageForm) -> Option<i64> {
    form.get("base").and_then(|base| base.parse::<i64>().ok())
}

#[derive(Debug, Serialize)]
struct EditorPage {
    section: &'static str,
    applied: Option<i64>,
    path: String,
    href: String,
    base: i64,
    text: String,
    bytes: usize,
    lines: usize,
    /// The JSON Schema of the file's kind (`None` for a script), for key completion.
    schema_url: Option<String>,
}

/// `GET /admin/studio/files/{*path}`: the file's text in the editor; the 404 page for a
/// path the latest version has no file at.
async fn editor(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path(path): Path<String>,
    Query(applied): Query<Applied>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let (version, mut files) = latest(&state, &viewer).await?;
    let Some(text) = files.remove(&path) else {
        return Err(not_found());
    };
    let page = EditorPage {
        section: "studio",
        applied: applied.applied,
        href: editor_href(&path),
        base: version,
        bytes: text.len(),
        lines: line_count(&text),
        schema_url: FileKind::of_path(&path)
            .map(|kind| format!("/api/v1/meta/schema/{}.json", kind.name())),
        path,
        text,
    };
    render_with_status(
        &state,
        &frame,
        "admin/studio/file.html",
        page,
        StatusCode::OK,
    )
}

/// `POST /admin/studio/files/{*path}` (`text`, `base`; `action=delete` to delete the file):
/// the review of the edited text or of the deletion.
async fn submit(
    Pinned(state): Pinned,
    Path(path): Path<String>,
    form: PageForm,
) -> Result<Response, PageError> {
    let viewer = &form.viewer;
    let (latest_version, files) = latest(&state, viewer).await?;
    if !keel_meta::is_app_file(&path) {
        return Err(not_found());
    }
    let base = base_of(&form).ok_or(PageError::BadForm)?;
    let base = rebase(&state, viewer, base, latest_version, &files, &path).await;
    let lang = viewer.lang.as_str();
    let change = if form.get("action") == Some("delete") {
        Change {
            title: tr(
                &state,
                lang,
                "studio.files.delete_title",
                &[("path", path.clone())],
            ),
            // The editor of a deleted file is no page: back to the list.
            back: FILES.to_owned(),
            base,
            changes: Changes::from([(path, None)]),
        }
    } else {
        let text = form.get("text").ok_or(PageError::BadForm)?;
        let text = keep_line_ends(files.get(&path).map(String::as_str), text);
        Change {
            title: tr(
                &state,
                lang,
                "studio.files.edit_title",
                &[("path", path.clone())],
            ),
            back: editor_href(&path),
            base,
            changes: Changes::from([(path, Some(text))]),
        }
    };
    review(&state, viewer, change).await
}

/// The base of an edit of the file at `path` made on version `base`: the latest version
/// when no one changed that file since (a version applied in between changed other files,
/// and the whole-file edit means the same on the latest), else `base`, which the apply
/// then refuses as stale — the review's diff against the latest shows whose lines the
/// edit would undo.
async fn rebase(
    state: &AppState,
    viewer: &Viewer,
    base: i64,
    latest_version: i64,
    latest_files: &AppFiles,
    path: &str,
) -> i64 {
    if base == latest_version {
        return base;
    }
    let detail =
        metadata::version_detail(state.live_metadata(), state.db(), &viewer.actor, base).await;
    match detail {
        Ok(detail)
            if !detail.files.is_empty() && detail.files.get(path) == latest_files.get(path) =>
        {
            latest_version
        }
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_editor_address_encodes_what_a_path_segment_cannot_hold() {
        assert_eq!(
            editor_href("metadata/objects/lead.yaml"),
            "/admin/studio/files/metadata/objects/lead.yaml"
        );
        assert_eq!(
            editor_href("scripts/a b?#.rhai"),
            "/admin/studio/files/scripts/a%20b%3F%23.rhai"
        );
    }

    #[test]
    fn a_new_file_needs_a_metadata_path_no_file_has_yet() {
        let files = AppFiles::from([("metadata/app.yaml".to_owned(), String::new())]);
        assert_eq!(
            new_path_problem("", &files),
            Some("studio.files.path_required")
        );
        assert_eq!(
            new_path_problem("seed/x.csv", &files),
            Some("studio.files.path_not_metadata")
        );
        assert_eq!(
            new_path_problem("metadata/app.yaml", &files),
            Some("studio.files.path_exists")
        );
        assert_eq!(new_path_problem("scripts/new.rhai", &files), None);
    }

    #[test]
    fn a_file_counts_its_last_line_with_or_without_a_line_end() {
        assert_eq!(line_count(""), 0);
        assert_eq!(line_count("a\n"), 1);
        assert_eq!(line_count("a\r\nb"), 2);
    }
}
