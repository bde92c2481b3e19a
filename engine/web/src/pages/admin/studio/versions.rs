//! The studio's version history (docs/studio.md, "Version history"):
//! `/admin/studio/versions` lists the recorded metadata versions, newest first and paged
//! (`?before=<version>`); `/admin/studio/versions/{n}` shows what version `n` changed, file
//! by file, against the version before it; "Re-apply this version"
//! (`POST /admin/studio/versions/{n}/reapply`) is the review of the change that makes the
//! latest files equal version `n`'s, made against the latest version like any other change.
//! An earlier version is never rewritten: re-applying one records a new version.

use axum::Router;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::{get, post};
use keel_meta::AppFiles;
use keel_runtime::metadata::{self, Changes, FileDiff, VersionDetail};
use keel_store::versions::Version;
use serde::{Deserialize, Serialize};

use super::{Applied, Change, latest, page_error, review};
use crate::AppState;
use crate::extract::Pinned;
use crate::pages::admin::{console_frame, not_found, tr};
use crate::pages::{Formatter, PageError, PageForm, Viewer, render};

/// The version history's pages; [`super::routes`] merges them.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/studio/versions", get(list))
        .route("/admin/studio/versions/{number}", get(detail))
        .route("/admin/studio/versions/{number}/reapply", post(reapply))
}

/// The version list's address.
const VERSIONS: &str = "/admin/studio/versions";

/// Versions per page.
const PAGE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct VersionsQuery {
    before: Option<String>,
}

#[derive(Debug, Serialize)]
struct VersionsPage {
    section: &'static str,
    applied: Option<i64>,
    latest: i64,
    versions: Vec<VersionRow>,
    /// The next (older) page, and the first page when this is not it.
    next: Option<String>,
    first: Option<String>,
}

/// A version as the pages show it.
#[derive(Debug, Serialize)]
struct VersionRow {
    version: i64,
    href: String,
    /// When, in the app's timezone, and as RFC 3339.
    when: String,
    at: String,
    who: String,
    /// `studio`, `cli` or empty (a version recorded before sources were).
    source: String,
    summary: String,
}

fn version_row(formatter: &Formatter, version: &Version) -> VersionRow {
    let at = version
        .applied_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    VersionRow {
        version: version.version,
        href: format!("{VERSIONS}/{}", version.version),
        when: formatter.datetime(&at),
        at,
        who: version.applied_by.clone().unwrap_or_default(),
        source: version.source.clone().unwrap_or_default(),
        summary: version.summary.clone(),
    }
}

/// `GET /admin/studio/versions?before=`: the versions, newest first.
async fn list(
    Pinned(state): Pinned,
    viewer: Viewer,
    Query(query): Query<VersionsQuery>,
    Query(applied): Query<Applied>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let (latest_version, _) = latest(&state, &viewer).await?;
    let before = match query.before.as_deref().filter(|before| !before.is_empty()) {
        Some(before) => Some(before.parse::<i64>().map_err(|_| PageError::BadForm)?),
        None => None,
    };
    let versions = metadata::list_versions(
        state.live_metadata(),
        state.db(),
        &viewer.actor,
        before,
        PAGE,
    )
    .await
    .map_err(page_error)?;
    let formatter = frame.formatter(&state);
    let next = (versions.len() == PAGE as usize)
        .then(|| versions.last().map(|version| version.version))
        .flatten();
    let page = VersionsPage {
        section: "studio",
        applied: applied.applied,
        latest: latest_version,
        versions: versions
            .iter()
            .map(|version| version_row(&formatter, version))
            .collect(),
        next: next.map(|next| format!("{VERSIONS}?before={next}")),
        first: before.map(|_| VERSIONS.to_owned()),
    };
    render(&state, &frame, "admin/studio/versions.html", page)
}

#[derive(Debug, Serialize)]
struct VersionPage {
    section: &'static str,
    version: VersionRow,
    latest: i64,
    previous: Option<i64>,
    /// Whether the version's files were recorded (a version recorded before files were
    /// has none, and can be neither diffed nor re-applied).
    has_files: bool,
    /// Whether the diff could be made (both versions' files were recorded).
    comparable: bool,
    files: usize,
    diffs: Vec<FileDiff>,
    can_reapply: bool,
}

/// Version `number` (a path segment) with its files; the 404 page for anything else.
async fn version_of(
    state: &AppState,
    viewer: &Viewer,
    number: &str,
) -> Result<VersionDetail, PageError> {
    let number = number.parse::<i64>().map_err(|_| not_found())?;
    metadata::version_detail(state.live_metadata(), state.db(), &viewer.actor, number)
        .await
        .map_err(page_error)
}

/// `GET /admin/studio/versions/{n}`: the version, its diff against the one before, and
/// "Re-apply this version" when it is not the latest.
async fn detail(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path(number): Path<String>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let (latest_version, _) = latest(&state, &viewer).await?;
    let detail = version_of(&state, &viewer, &number).await?;
    let before = match detail.previous {
        Some(previous) => {
            metadata::version_detail(state.live_metadata(), state.db(), &viewer.actor, previous)
                .await
                .map_err(page_error)?
                .files
        }
        None => AppFiles::new(),
    };
    let has_files = !detail.files.is_empty();
    // Against a previous version whose files were not recorded there is nothing to compare.
    let comparable = has_files && (detail.previous.is_none() || !before.is_empty());
    let diffs = if comparable {
        metadata::file_diffs(&before, &detail.files)
    } else {
        Vec::new()
    };
    let formatter = frame.formatter(&state);
    let page = VersionPage {
        section: "studio",
        version: version_row(&formatter, &detail.version),
        latest: latest_version,
        previous: detail.previous,
        has_files,
        comparable,
        files: detail.files.len(),
        diffs,
        can_reapply: has_files && detail.version.version != latest_version,
    };
    render(&state, &frame, "admin/studio/version.html", page)
}

/// The change that makes `latest` equal `target`: every file that differs or is new, and
/// every file `target` does not have, deleted.
fn changes_to(latest: &AppFiles, target: &AppFiles) -> Changes {
    let mut changes: Changes = target
        .iter()
        .filter(|(path, text)| latest.get(*path) != Some(*text))
        .map(|(path, text)| (path.clone(), Some(text.clone())))
        .collect();
    for path in latest.keys().filter(|path| !target.contains_key(*path)) {
        changes.insert(path.clone(), None);
    }
    changes
}

/// `POST /admin/studio/versions/{n}/reapply`: the review of making the latest files equal
/// version `n`'s, against the latest version.
async fn reapply(
    Pinned(state): Pinned,
    Path(number): Path<String>,
    form: PageForm,
) -> Result<Response, PageError> {
    let viewer = &form.viewer;
    let (base, files) = latest(&state, viewer).await?;
    let detail = version_of(&state, viewer, &number).await?;
    if detail.files.is_empty() {
        return Err(not_found());
    }
    let version = detail.version.version;
    let change = Change {
        title: tr(
            &state,
            &viewer.lang,
            "studio.versions.reapply_title",
            &[("version", version.to_string())],
        ),
        back: VERSIONS.to_owned(),
        base,
        changes: changes_to(&files, &detail.files),
    };
    review(&state, viewer, change).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str)]) -> AppFiles {
        entries
            .iter()
            .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
            .collect()
    }

    #[test]
    fn re_applying_a_version_writes_what_differs_and_deletes_what_it_lacks() {
        let latest = files(&[("a.yaml", "new\n"), ("b.yaml", "same\n"), ("c.yaml", "c\n")]);
        let target = files(&[
            ("a.yaml", "old\r\n"),
            ("b.yaml", "same\n"),
            ("d.yaml", "d\n"),
        ]);
        let changes = changes_to(&latest, &target);
        assert_eq!(
            changes,
            Changes::from([
                ("a.yaml".to_owned(), Some("old\r\n".to_owned())),
                ("c.yaml".to_owned(), None),
                ("d.yaml".to_owned(), Some("d\n".to_owned())),
            ])
        );
        assert_eq!(
            metadata::with_changes(&latest, &changes),
            target,
            "the change makes the latest files the version's"
        );
        assert!(changes_to(&target, &target).is_empty());
    }
}
