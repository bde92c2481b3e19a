//! The studio in `/admin/studio` (docs/studio.md): the pages on which an admin changes the
//! running app. Every change takes the same path, whatever page it starts on:
//!
//! 1. an editor (a form over `keel_meta::forms`, the file editor, a version to re-apply)
//!    works out the changed files against the latest version (`base`) and calls [`review`];
//! 2. the review page shows each changed file's diff, the problems the loader finds at
//!    `file:line:col`, and the migration plan with its destructive steps marked; it carries
//!    the changed files (as JSON in one hidden field: a form would turn their newlines into
//!    CRLF) and the base;
//! 3. "Apply" posts them to `/admin/studio/apply`, which applies them as the API's apply
//!    does (`keel_runtime::metadata::apply`) and sends the admin back to the editor with
//!    `?applied=<version>`; a stale base, a destructive plan or invalid files show the review
//!    again with what went wrong, and nothing changed.
//!
//! The pages read and change metadata only through `keel_runtime::metadata`, never files or
//! SQL, and answer a user who is not an admin with the 404 page like the rest of `/admin`.

mod files;
mod objects;
mod versions;
mod workflows;

use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use keel_meta::AppFiles;
use keel_runtime::metadata::{self, ApplyRequest, Changes, DiagnosticView, MetadataError};
use serde::{Deserialize, Serialize};

mod pools;
mod processes;
mod roles;
mod rules;

use super::{console_frame, not_found, tr};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Pinned;
use crate::pages::{PageError, PageForm, Viewer, render, render_with_status};

/// The routes of the studio; [`super::routes`] merges them.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(objects::routes())
        .route("/admin/studio", get(index))
        .route("/admin/studio/apply", post(apply))
        .merge(files::routes())
        .merge(versions::routes())
        .merge(workflows::routes())
}

/// Where a page goes when a change was applied or abandoned: a studio page, else the
/// studio's index (the `back` a form sends is never an address elsewhere).
fn studio_path(back: Option<&str>) -> String {
    match back {
        Some(back)
            if (back == "/admin/studio" || back.starts_with("/admin/studio/"))
                && !back.contains("//")
                && !back.contains('\\') =>
        {
            back.to_owned()
        }
        _ => "/admin/studio".to_owned(),
    }
}

/// `path` with `applied=<version>` added to its query: how an editor learns that its change
/// was applied (see [`Applied`]).
fn with_applied(path: &str, version: i64) -> String {
    let separator = if path.contains('?') { '&' } else { '?' };
    format!("{path}{separator}applied={version}")
}

/// The `?applied=<version>` an editor is sent back with after an apply; its page shows
/// "applied as version N" (`page.applied` in `admin/studio/layout.html`).
#[derive(Debug, Default, Deserialize)]
pub struct Applied {
    pub applied: Option<i64>,
}

/// The latest version's number and its files, for an editor to fill its form from and to
/// make its change against. A user who is not an admin gets the 404 page.
pub async fn latest(state: &AppState, viewer: &Viewer) -> Result<(i64, AppFiles), PageError> {
    if !viewer.actor.admin {
        return Err(not_found());
    }
    metadata::latest_files(state.live_metadata(), state.db(), &viewer.actor)
        .await
        .map_err(page_error)
}

/// A metadata error the studio's pages do not show as a form error.
fn page_error(error: MetadataError) -> PageError {
    match error {
        MetadataError::Forbidden => not_found(),
        other => PageError::Api(ApiError::from(other)),
    }
}

/// `submitted` (a textarea's text, which a browser sends with CRLF line ends) with the line
/// ends of `original`: LF unless the file used CRLF. A file keeps its line ends through the
/// file editor.
pub fn keep_line_ends(original: Option<&str>, submitted: &str) -> String {
    let lf = submitted.replace("\r\n", "\n");
    match original {
        Some(original) if original.contains("\r\n") => lf.replace('\n', "\r\n"),
        _ => lf,
    }
}

/// A change an editor made, for the review page.
#[derive(Debug, Clone)]
pub struct Change {
    /// What the change is, in the page's language ("Field budget of Lead").
    pub title: String,
    /// The editor to go back to (a studio path), with or without the change applied.
    pub back: String,
    /// The version the change was made against.
    pub base: i64,
    /// The changed files: path → new text, `None` to delete.
    pub changes: Changes,
}

/// Why the last apply of this change did nothing, shown above the review.
#[derive(Debug, Clone, Serialize)]
struct Refusal {
    /// `stale`, `destructive`, `invalid` or `unchanged`.
    kind: &'static str,
    message: String,
}

#[derive(Debug, Serialize)]
struct ReviewPage {
    section: &'static str,
    title: String,
    back: String,
    base: i64,
    /// The changed files as JSON, for the apply form.
    changes: String,
    diffs: Vec<metadata::FileDiff>,
    diagnostics: Vec<DiagnosticView>,
    plan: metadata::PlanView,
    destructive: bool,
    refusal: Option<Refusal>,
    can_apply: bool,
}

/// The review page of `change`: its diffs, problems and plan, and the apply form.
pub async fn review(
    state: &AppState,
    viewer: &Viewer,
    change: Change,
) -> Result<Response, PageError> {
    show_review(state, viewer, change, None).await
}

async fn show_review(
    state: &AppState,
    viewer: &Viewer,
    change: Change,
    refusal: Option<Refusal>,
) -> Result<Response, PageError> {
    let frame = console_frame(state, viewer).await?;
    let (_, files) = latest(state, viewer).await?;
    let after = metadata::with_changes(&files, &change.changes);
    let diffs = metadata::file_diffs(&files, &after);
    let validation = metadata::validate(
        state.live_metadata(),
        state.db(),
        &viewer.actor,
        &change.changes,
    )
    .await
    .map_err(page_error)?;
    let refusal = refusal.or_else(|| {
        diffs.is_empty().then(|| Refusal {
            kind: "unchanged",
            message: tr(state, &frame.lang, "studio.review.unchanged", &[]),
        })
    });
    let status = match refusal.as_ref().map(|refusal| refusal.kind) {
        Some("stale" | "destructive") => StatusCode::CONFLICT,
        _ if !validation.diagnostics.is_empty() => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    let destructive = validation.plan.steps.iter().any(|step| !step.safe);
    let page = ReviewPage {
        section: "studio",
        can_apply: validation.diagnostics.is_empty() && !diffs.is_empty(),
        changes: serde_json::to_string(&change.changes).map_err(ApiError::internal)?,
        title: change.title,
        back: studio_path(Some(&change.back)),
        base: change.base,
        diffs,
        diagnostics: validation.diagnostics,
        plan: validation.plan,
        destructive,
        refusal,
    };
    render_with_status(state, &frame, "admin/studio/review.html", page, status)
}

/// `POST /admin/studio/apply` (`changes` as JSON, `base`, `title`, `back`,
/// `allow_destructive`): applies the change and goes back to the editor with
/// `?applied=<version>`, or shows the review again with why nothing changed.
async fn apply(Pinned(state): Pinned, form: PageForm) -> Result<Response, PageError> {
    let viewer = &form.viewer;
    console_frame(&state, viewer).await?;
    let changes: Changes = form
        .get("changes")
        .and_then(|json| serde_json::from_str(json).ok())
        .ok_or(PageError::BadForm)?;
    let base = form
        .get("base")
        .and_then(|base| base.parse::<i64>().ok())
        .ok_or(PageError::BadForm)?;
    let change = Change {
        title: form.get("title").unwrap_or_default().to_owned(),
        back: studio_path(form.get("back")),
        base,
        changes,
    };
    let request = ApplyRequest {
        changes: change.changes.clone(),
        base,
        allow_destructive: matches!(form.get("allow_destructive"), Some("on" | "true")),
    };
    let applied = metadata::apply(
        state.live_metadata(),
        state.db(),
        state.app_dir(),
        &viewer.actor,
        &request,
    )
    .await;
    let lang = viewer.lang.as_str();
    let refusal = match applied {
        Ok(version) => {
            return Ok(Redirect::to(&with_applied(&change.back, version)).into_response());
        }
        Err(MetadataError::StaleBase { latest, .. }) => Refusal {
            kind: "stale",
            message: tr(
                &state,
                lang,
                "studio.review.stale",
                &[
                    ("base", base.to_string()),
                    ("latest", latest.unwrap_or_default().to_string()),
                ],
            ),
        },
        Err(MetadataError::Destructive(_)) => Refusal {
            kind: "destructive",
            message: tr(&state, lang, "studio.review.destructive", &[]),
        },
        Err(MetadataError::Invalid(_)) => Refusal {
            kind: "invalid",
            message: tr(&state, lang, "studio.review.invalid", &[]),
        },
        Err(other) => return Err(page_error(other)),
    };
    show_review(&state, viewer, change, Some(refusal)).await
}

#[derive(Debug, Serialize)]
struct IndexPage {
    section: &'static str,
    applied: Option<i64>,
    version: i64,
    objects: Vec<Entry>,
    pools: Vec<Entry>,
    processes: Vec<Entry>,
    rules: Vec<Entry>,
    roles: Vec<Entry>,
}

/// An object, pool, process, rule or role of the app, as the studio's index lists it.
#[derive(Debug, Serialize)]
struct Entry {
    name: String,
    label: String,
}

/// `GET /admin/studio`: what the admin can change, and the version now applied.
async fn index(
    Pinned(state): Pinned,
    viewer: Viewer,
    Query(applied): Query<Applied>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let (version, _) = latest(&state, &viewer).await?;
    let formatter = frame.formatter(&state);
    let schema = state.schema();
    let entry = |name: &str, label: Option<&keel_meta::Label>| Entry {
        name: name.to_owned(),
        label: formatter.label(label, name),
    };
    let page = IndexPage {
        section: "studio",
        applied: applied.applied,
        version,
        objects: schema
            .objects
            .values()
            .map(|object| entry(&object.name, Some(&object.label)))
            .collect(),
        pools: schema
            .pools
            .values()
            .map(|pool| entry(&pool.name, pool.label.as_ref()))
            .collect(),
        processes: schema
            .processes
            .values()
            .map(|process| entry(&process.name, process.label.as_ref()))
            .collect(),
        rules: schema
            .rules
            .values()
            .map(|rule| entry(&rule.name, rule.label.as_ref()))
            .collect(),
        roles: schema
            .roles
            .roles
            .values()
            .map(|role| entry(&role.name, role.label.as_ref()))
            .collect(),
    };
    render(&state, &frame, "admin/studio/index.html", page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_goes_back_only_to_a_studio_page() {
        assert_eq!(
            studio_path(Some("/admin/studio/objects/lead")),
            "/admin/studio/objects/lead"
        );
        assert_eq!(studio_path(Some("/admin/studio")), "/admin/studio");
        for elsewhere in [
            "https://example.com/admin/studio",
            "//example.com/admin/studio",
            "/admin/studio//example.com",
            "/admin/studios",
            "/admin/users",
            "/admin/studio/\\example.com",
        ] {
            assert_eq!(studio_path(Some(elsewhere)), "/admin/studio", "{elsewhere}");
        }
        assert_eq!(studio_path(None), "/admin/studio");
        assert_eq!(with_applied("/admin/studio", 8), "/admin/studio?applied=8");
        assert_eq!(
            with_applied("/admin/studio/x?tab=1", 8),
            "/admin/studio/x?tab=1&applied=8"
        );
    }

    #[test]
    fn a_textarea_keeps_the_line_ends_of_the_file_it_edits() {
        assert_eq!(
            keep_line_ends(Some("a\nb\n"), "a\r\nb\r\nc\r\n"),
            "a\nb\nc\n"
        );
        assert_eq!(
            keep_line_ends(Some("a\r\nb\r\n"), "a\r\nc\r\n"),
            "a\r\nc\r\n"
        );
        assert_eq!(keep_line_ends(None, "a\r\nb"), "a\nb");
    }
}
