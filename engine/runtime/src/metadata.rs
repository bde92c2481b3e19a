//! Live metadata (docs/studio.md): the metadata versions a running server swaps between,
//! and the studio's validate and apply.
//!
//! A [`Generation`] is everything built from one metadata version: the schema, `Records`,
//! `Auth`, the inbox, pools, processes and reports. [`Live`] holds the current one; a swap
//! builds the next generation from the current one (the process's sessions, sign-in limits,
//! caches, wake-ups and notification hub carry on) and replaces it in one step, so whoever
//! took a generation keeps a consistent one: a request pins one at its start (keel-web), the
//! outbox worker takes one per batch and the scheduler one per tick.
//!
//! [`apply`] is check → plan → migrate under the migration lock → write the files into the
//! app directory (under the lock, before the commit) → record the version → swap. [`follow`]
//! is how every other process on the database notices a new version (PostgreSQL's `NOTIFY`
//! at the commit, and a poll of the latest version number every [`POLL_INTERVAL`]): it
//! loads the version's files from the database, swaps, and writes the files into its own
//! app directory too, so that every process's directory holds the latest version and a
//! restart starts.
//!
//! What this module does not do: edit YAML (the studio's forms send whole files), or
//! migrate in a follower (the applier already did, under the lock).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use keel_meta::{AppFiles, Diagnostic, Schema};
use keel_store::Db;
use keel_store::migrate::{ApplyOptions, Plan, Safety, VersionSource};
use keel_store::versions::{self, Version};
use serde::Serialize;
use tokio::sync::watch;

use crate::actor::Actor;
use crate::auth::Auth;
use crate::clock::Clock;
use crate::notifications::Inbox;
use crate::pools::Pools;
use crate::processes::Processes;
use crate::records::Records;
use crate::reports::Reports;
use crate::scheduler::Scheduler;

/// How often a process looks for a version another process applied.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Everything built from one metadata version.
pub struct Generation {
    /// The recorded version; `None` for a server built without one (tests).
    pub version: Option<i64>,
    pub schema: Arc<Schema>,
    pub records: Records,
    pub auth: Auth,
    pub inbox: Inbox,
    pub pools: Pools,
    pub processes: Processes,
    pub reports: Reports,
}

impl Generation {
    /// The first generation of a process.
    pub fn new(
        schema: Arc<Schema>,
        db: Db,
        clock: Arc<dyn Clock>,
        version: Option<i64>,
    ) -> Generation {
        let records = Records::new(Arc::clone(&schema), db.clone(), Arc::clone(&clock));
        let auth = Auth::new(Arc::clone(&schema), db, clock);
        Generation {
            version,
            inbox: Inbox::new(records.clone()),
            pools: Pools::new(records.clone()),
            processes: Processes::new(records.clone()),
            reports: Reports::new(records.clone()),
            auth,
            records,
            schema,
        }
    }

    /// The generation of `schema`, carrying over what lives across versions.
    pub fn next(&self, schema: Arc<Schema>, version: Option<i64>) -> Generation {
        let records = self.records.with_schema(Arc::clone(&schema));
        Generation {
            version,
            inbox: self.inbox.with_records(records.clone()),
            pools: Pools::new(records.clone()),
            processes: Processes::new(records.clone()),
            reports: Reports::new(records.clone()),
            auth: self.auth.with_schema(Arc::clone(&schema)),
            records,
            schema,
        }
    }
}

/// The current generation of a process, and its scheduler (which keeps its leases and
/// runs across versions).
pub struct Live {
    current: RwLock<Arc<Generation>>,
    scheduler: Arc<Scheduler>,
    /// One swap at a time.
    swapping: Mutex<()>,
    /// The version now current, for whoever waits for a swap.
    swapped: watch::Sender<Option<i64>>,
}

impl Live {
    pub fn new(first: Generation) -> Live {
        let scheduler = Arc::new(Scheduler::new(first.records.clone()));
        let (swapped, _) = watch::channel(first.version);
        Live {
            current: RwLock::new(Arc::new(first)),
            scheduler,
            swapping: Mutex::new(()),
            swapped,
        }
    }

    /// The generation now current. Whoever holds it keeps it, whatever swaps later.
    pub fn current(&self) -> Arc<Generation> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.scheduler
    }

    /// Changes each time a version is swapped in.
    pub fn subscribe(&self) -> watch::Receiver<Option<i64>> {
        self.swapped.subscribe()
    }

    /// Makes `schema` (recorded as `version`) current, unless the current generation is
    /// that version or a newer one already → how long building and swapping took, when it
    /// swapped.
    pub fn swap(&self, schema: Arc<Schema>, version: i64) -> Option<Duration> {
        let started = Instant::now();
        let _one_at_a_time = self.swapping.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.current();
        if current.version.is_some_and(|current| current >= version) {
            return None;
        }
        let next = Arc::new(current.next(schema, Some(version)));
        self.scheduler.swap(next.records.clone());
        match self.current.write() {
            Ok(mut slot) => *slot = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        self.swapped.send_replace(Some(version));
        let took = started.elapsed();
        tracing::info!(
            version,
            took_ms = took.as_secs_f64() * 1000.0,
            "swapped to a new metadata version"
        );
        Some(took)
    }
}

/// What the studio sends: path → new text, or `None` to delete the file.
pub type Changes = BTreeMap<String, Option<String>>;

/// One step of a plan as the studio shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanStep {
    pub description: String,
    pub safe: bool,
}

/// The answer of validate: every problem (empty when the app would load) and the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    pub diagnostics: Vec<DiagnosticView>,
    pub plan: PlanView,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlanView {
    pub steps: Vec<PlanStep>,
}

impl From<&Plan> for PlanView {
    fn from(plan: &Plan) -> PlanView {
        PlanView {
            steps: plan
                .steps
                .iter()
                .map(|step| PlanStep {
                    description: step.description.clone(),
                    safe: step.safety == Safety::Safe,
                })
                .collect(),
        }
    }
}

/// A diagnostic as the API shows it: `{file, line, col, message}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiagnosticView {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl From<&Diagnostic> for DiagnosticView {
    fn from(diagnostic: &Diagnostic) -> DiagnosticView {
        DiagnosticView {
            file: diagnostic.file.clone(),
            line: diagnostic.position.line,
            col: diagnostic.position.column,
            message: diagnostic.message.clone(),
        }
    }
}

/// Why an apply changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("only admins may change the metadata")]
    Forbidden,
    #[error("the metadata has {} problem(s)", .0.len())]
    Invalid(Vec<DiagnosticView>),
    #[error("version {base} is not the latest metadata version{}", latest.map(|l| format!(" ({l})")).unwrap_or_default())]
    StaleBase { base: i64, latest: Option<i64> },
    #[error(
        "the change needs destructive database steps; apply again with allow_destructive to archive the data they concern"
    )]
    Destructive(PlanView),
    #[error("cannot write the app directory: {0}")]
    Files(String),
    #[error("there is no metadata version {0}")]
    NoSuchVersion(i64),
    #[error(transparent)]
    Store(#[from] keel_store::StoreError),
}

fn admins_only(generation: &Generation, actor: &Actor) -> Result<(), MetadataError> {
    if crate::records::access::is_admin(&generation.schema, actor) {
        Ok(())
    } else {
        Err(MetadataError::Forbidden)
    }
}

/// A diagnostic for each changed path that is not a metadata file (see
/// `keel_meta::is_app_file`): the studio writes nothing else.
fn path_problems(changes: &Changes) -> Vec<DiagnosticView> {
    changes
        .keys()
        .filter(|path| !keel_meta::is_app_file(path))
        .map(|path| DiagnosticView {
            file: path.clone(),
            line: 1,
            col: 1,
            message: "not a metadata file: the app's files are metadata/app.yaml, metadata/roles.yaml, metadata/{objects,pools}/*.yaml, workflows/{processes,rules}/*.yaml and scripts/*.rhai".to_owned(),
        })
        .collect()
}

/// The files of `base` (the latest version when `None`) with `changes` made; the current
/// generation's files when the database holds no version with files.
async fn changed_files(
    live: &Live,
    db: &Db,
    base: Option<i64>,
    changes: &Changes,
) -> Result<AppFiles, MetadataError> {
    let base = match base {
        Some(base) => Some(base),
        None => versions::latest_number(db).await?,
    };
    let recorded = match base {
        Some(base) => versions::get(db, base).await?.map(|(_, files)| files),
        None => None,
    };
    let files = match recorded {
        Some(files) if !files.is_empty() => files,
        _ => live.current().schema.files.clone(),
    };
    Ok(with_changes(&files, changes))
}

/// The app as it would be with `changes` made to the latest version: its problems, and the
/// plan that would bring the database in line. Changes nothing.
pub async fn validate(
    live: &Live,
    db: &Db,
    actor: &Actor,
    changes: &Changes,
) -> Result<Validation, MetadataError> {
    admins_only(&live.current(), actor)?;
    let refused = path_problems(changes);
    if !refused.is_empty() {
        return Ok(Validation {
            diagnostics: refused,
            plan: PlanView::default(),
        });
    }
    let files = changed_files(live, db, None, changes).await?;
    match keel_meta::load_files(&files) {
        Ok(schema) => {
            let plan = keel_store::migrate::plan(db, &schema).await?;
            Ok(Validation {
                diagnostics: Vec::new(),
                plan: PlanView::from(&plan),
            })
        }
        Err(errors) => Ok(Validation {
            diagnostics: errors
                .diagnostics
                .iter()
                .map(DiagnosticView::from)
                .collect(),
            plan: PlanView::default(),
        }),
    }
}

/// An apply from the studio.
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    pub changes: Changes,
    /// The version the changes were made against: it must still be the latest.
    pub base: i64,
    pub allow_destructive: bool,
}

/// Applies `request` as `actor`: check → plan → migrate under the migration lock → write
/// the files into `app_dir` → record the version (source `studio`) → swap → the version.
/// On any error nothing has changed (the database, the files, the versions).
pub async fn apply(
    live: &Live,
    db: &Db,
    app_dir: Option<&Path>,
    actor: &Actor,
    request: &ApplyRequest,
) -> Result<i64, MetadataError> {
    admins_only(&live.current(), actor)?;
    let refused = path_problems(&request.changes);
    if !refused.is_empty() {
        return Err(MetadataError::Invalid(refused));
    }
    let latest = versions::latest_number(db).await?;
    if latest != Some(request.base) {
        return Err(MetadataError::StaleBase {
            base: request.base,
            latest,
        });
    }
    let files = changed_files(live, db, Some(request.base), &request.changes).await?;
    let schema = keel_meta::load_files(&files).map_err(|errors| {
        MetadataError::Invalid(
            errors
                .diagnostics
                .iter()
                .map(DiagnosticView::from)
                .collect(),
        )
    })?;
    let plan = keel_store::migrate::plan(db, &schema).await?;
    if plan.destructive().next().is_some() && !request.allow_destructive {
        return Err(MetadataError::Destructive(PlanView::from(&plan)));
    }
    let write = |_version: i64| match app_dir {
        Some(dir) => write_app_files(dir, &schema.files),
        None => Ok(()),
    };
    let options = ApplyOptions {
        allow_destructive: request.allow_destructive,
        source: VersionSource::Studio,
        applied_by: Some(&actor.username),
        base: Some(request.base),
        before_commit: Some(&write),
    };
    let now = live.current().records.clock().now();
    let applied = match keel_store::migrate::apply_with(db, &schema, options, now).await {
        Ok(applied) => applied,
        Err(keel_store::StoreError::StaleBase { base, latest }) => {
            return Err(MetadataError::StaleBase { base, latest });
        }
        Err(keel_store::StoreError::DestructiveChangesRefused { .. }) => {
            // Someone changed the database between our plan and the lock: show the new plan.
            let plan = keel_store::migrate::plan(db, &schema).await?;
            return Err(MetadataError::Destructive(PlanView::from(&plan)));
        }
        Err(keel_store::StoreError::Aborted { reason }) => {
            return Err(MetadataError::Files(reason));
        }
        Err(error) => return Err(error.into()),
    };
    let version = applied.version.unwrap_or(request.base);
    live.swap(Arc::new(schema), version);
    Ok(version)
}

/// Makes the app files of `dir` exactly `files`: each changed file written to a temporary
/// file beside it and renamed over it (a reader sees the old text or the new, never half),
/// and app files no longer in `files` removed. Files that are not metadata (`seed/`, a
/// README) are left alone.
pub fn write_app_files(dir: &Path, files: &AppFiles) -> Result<(), String> {
    if let Some(path) = files.keys().find(|path| !keel_meta::is_app_file(path)) {
        return Err(format!("`{path}` is not a metadata file"));
    }
    let on_disk = keel_meta::read_app_files(dir).unwrap_or_default();
    for (path, text) in files {
        if on_disk.get(path) == Some(text) {
            continue;
        }
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
        }
        let temporary = temporary_path(&target);
        std::fs::write(&temporary, text.as_bytes())
            .map_err(|error| format!("cannot write {}: {error}", temporary.display()))?;
        if let Err(error) = std::fs::rename(&temporary, &target) {
            let _ = std::fs::remove_file(&temporary);
            return Err(format!("cannot replace {}: {error}", target.display()));
        }
    }
    // Files the loader would read but the version does not have (also ones that are not
    // UTF-8, which `read_app_files` leaves out).
    for path in listed_app_files(dir) {
        if !files.contains_key(&path) {
            match std::fs::remove_file(dir.join(&path)) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(format!("cannot remove {path}: {error}")),
            }
        }
    }
    Ok(())
}

/// The paths of every app file in `dir`, readable or not.
fn listed_app_files(dir: &Path) -> Vec<String> {
    let mut paths = Vec::new();
    for top in ["metadata/app.yaml", "metadata/roles.yaml"] {
        if dir.join(top).is_file() {
            paths.push(top.to_owned());
        }
    }
    for sub in [
        "metadata/objects",
        "metadata/pools",
        "workflows/processes",
        "workflows/rules",
        "scripts",
    ] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = format!("{sub}/{}", entry.file_name().to_string_lossy());
            if entry.path().is_file() && keel_meta::is_app_file(&path) {
                paths.push(path);
            }
        }
    }
    paths
}

fn temporary_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let random = uuid::Uuid::new_v4().simple().to_string();
    // Not an app file (no .yaml/.rhai extension), so a crash leaves nothing the loader reads.
    target.with_file_name(format!(".{name}.{}.keel-tmp", &random[..8]))
}

/// Follows the versions other processes apply until `stop` turns true: on PostgreSQL it
/// wakes on the `NOTIFY` of a new version's commit; everywhere it also looks every
/// [`POLL_INTERVAL`] (the safety net: a notification can be missed while the listening
/// connection reconnects). When the latest version is newer than the current generation's,
/// it loads that version's files from the database, swaps, and writes the files into
/// `app_dir` (when given).
pub async fn follow(
    live: Arc<Live>,
    db: Db,
    app_dir: Option<PathBuf>,
    mut stop: watch::Receiver<bool>,
) {
    let mut listener = match versions::listen(&db).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!("cannot listen for new metadata versions, polling only: {error}");
            None
        }
    };
    loop {
        if *stop.borrow() {
            return;
        }
        if let Err(error) = catch_up(&live, &db, app_dir.as_deref()).await {
            tracing::warn!("could not look for a new metadata version: {error}");
        }
        let woke = tokio::select! {
            _ = tokio::time::sleep(POLL_INTERVAL) => Ok(()),
            result = next_notification(&mut listener) => result,
            _ = stop.changed() => Ok(()),
        };
        if let Err(error) = woke {
            tracing::warn!("stopped listening for new metadata versions, polling only: {error}");
            listener = None;
        }
    }
}

async fn next_notification(
    listener: &mut Option<versions::VersionListener>,
) -> Result<(), keel_store::StoreError> {
    match listener {
        Some(listener) => listener.next().await.map(drop),
        None => std::future::pending().await,
    }
}

/// One look for a newer version (see [`follow`]) → the version swapped in, if any.
pub async fn catch_up(
    live: &Live,
    db: &Db,
    app_dir: Option<&Path>,
) -> Result<Option<i64>, MetadataError> {
    let Some(latest) = versions::latest_number(db).await? else {
        return Ok(None);
    };
    if live
        .current()
        .version
        .is_some_and(|current| current >= latest)
    {
        return Ok(None);
    }
    let started = Instant::now();
    let Some((_, files)) = versions::get(db, latest).await? else {
        return Ok(None);
    };
    let schema = match keel_meta::load_files(&files) {
        Ok(schema) => schema,
        Err(errors) => {
            // A version this build of Keel cannot load (written by a newer one): stay.
            tracing::error!(
                version = latest,
                "the latest metadata version does not load here:\n{errors}"
            );
            return Ok(None);
        }
    };
    if let Some(dir) = app_dir {
        let on_disk = keel_meta::load_app(dir)
            .ok()
            .map(|schema| schema.fingerprint);
        let newer_on_disk = match &on_disk {
            Some(fingerprint) if *fingerprint != schema.fingerprint => {
                versions::with_fingerprint(db, fingerprint)
                    .await?
                    .is_some_and(|version| version > latest)
            }
            _ => false,
        };
        if on_disk.as_deref() != Some(schema.fingerprint.as_str())
            && !newer_on_disk
            && let Err(error) = write_app_files(dir, &schema.files)
        {
            tracing::warn!(
                version = latest,
                "serving the new metadata version, but its files could not be written into {}: {error} (`keel metadata pull` writes them)",
                dir.display()
            );
        }
    }
    let Some(swap) = live.swap(Arc::new(schema), latest) else {
        return Ok(None);
    };
    tracing::info!(
        version = latest,
        reload_ms = started.elapsed().as_secs_f64() * 1000.0,
        swap_ms = swap.as_secs_f64() * 1000.0,
        "followed a new metadata version (reload: read, load, write the files and swap)"
    );
    Ok(Some(latest))
}

/// The latest version's number (0 when the database records none yet) and its files: what
/// the studio's forms read and edit, and the `base` their apply sends. Admins only.
pub async fn latest_files(
    live: &Live,
    db: &Db,
    actor: &Actor,
) -> Result<(i64, AppFiles), MetadataError> {
    admins_only(&live.current(), actor)?;
    let base = versions::latest_number(db).await?;
    let files = changed_files(live, db, base, &Changes::new()).await?;
    Ok((base.unwrap_or(0), files))
}

/// One line of a file's diff: `kind` is `context`, `added` or `removed`; the line numbers
/// are the line's in the old and the new text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffLine {
    pub kind: &'static str,
    pub old_line: Option<usize>,
    pub new_line: Option<usize>,
    pub text: String,
}

/// The diff of one file, in hunks of changed lines with up to three lines of context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileDiff {
    pub path: String,
    /// `added`, `changed` or `removed`.
    pub status: &'static str,
    pub hunks: Vec<Vec<DiffLine>>,
}

/// The diff of every file that differs between `before` and `after`, in path order: what
/// the studio shows before an apply and in a version's history.
pub fn file_diffs(before: &versions::Files, after: &versions::Files) -> Vec<FileDiff> {
    let paths: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut diffs = Vec::new();
    for path in paths {
        let old = before.get(path);
        let new = after.get(path);
        if old == new {
            continue;
        }
        let status = match (old, new) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        };
        let diff = similar::TextDiff::from_lines(
            old.map_or("", String::as_str),
            new.map_or("", String::as_str),
        );
        let hunks = diff
            .grouped_ops(3)
            .iter()
            .map(|group| {
                group
                    .iter()
                    .flat_map(|op| diff.iter_changes(op))
                    .map(|change| DiffLine {
                        kind: match change.tag() {
                            similar::ChangeTag::Equal => "context",
                            similar::ChangeTag::Insert => "added",
                            similar::ChangeTag::Delete => "removed",
                        },
                        old_line: change.old_index().map(|index| index + 1),
                        new_line: change.new_index().map(|index| index + 1),
                        text: change.value().trim_end_matches(['\n', '\r']).to_owned(),
                    })
                    .collect()
            })
            .collect();
        diffs.push(FileDiff {
            path: path.clone(),
            status,
            hunks,
        });
    }
    diffs
}

/// `files` with `changes` made (`None` deletes a file).
pub fn with_changes(files: &AppFiles, changes: &Changes) -> AppFiles {
    let mut files = files.clone();
    for (path, text) in changes {
        match text {
            Some(text) => {
                files.insert(path.clone(), text.clone());
            }
            None => {
                files.remove(path);
            }
        }
    }
    files
}

/// The versions, newest first (older than `before`, at most `limit`). Admins only.
pub async fn list_versions(
    live: &Live,
    db: &Db,
    actor: &Actor,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<Version>, MetadataError> {
    admins_only(&live.current(), actor)?;
    Ok(versions::list(db, before, limit).await?)
}

/// One version with its files and a unified diff against the version before it.
#[derive(Debug, Clone)]
pub struct VersionDetail {
    pub version: Version,
    pub files: versions::Files,
    /// The previous version's number (`None` for the first).
    pub previous: Option<i64>,
    /// A unified diff, file by file (`a/<path>` → `b/<path>`); empty when nothing changed.
    pub diff: String,
}

/// Version `number` with its files and its diff against the one before. Admins only.
pub async fn version_detail(
    live: &Live,
    db: &Db,
    actor: &Actor,
    number: i64,
) -> Result<VersionDetail, MetadataError> {
    admins_only(&live.current(), actor)?;
    let Some((version, files)) = versions::get(db, number).await? else {
        return Err(MetadataError::NoSuchVersion(number));
    };
    let previous = versions::previous(db, number).await?;
    let empty = versions::Files::new();
    let before = previous.as_ref().map_or(&empty, |(_, files)| files);
    Ok(VersionDetail {
        diff: unified_diff(before, &files),
        previous: previous.as_ref().map(|(version, _)| version.version),
        version,
        files,
    })
}

/// A unified diff of two sets of files, in path order (`/dev/null` for a file added or
/// removed).
pub fn unified_diff(before: &versions::Files, after: &versions::Files) -> String {
    let paths: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut out = String::new();
    for path in paths {
        let old = before.get(path);
        let new = after.get(path);
        if old == new {
            continue;
        }
        let old_name = old.map_or_else(|| "/dev/null".to_owned(), |_| format!("a/{path}"));
        let new_name = new.map_or_else(|| "/dev/null".to_owned(), |_| format!("b/{path}"));
        let diff = similar::TextDiff::from_lines(
            old.map_or("", String::as_str),
            new.map_or("", String::as_str),
        );
        out.push_str(
            &diff
                .unified_diff()
                .context_radius(3)
                .header(&old_name, &new_name)
                .to_string(),
        );
    }
    out
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
    fn writing_a_version_makes_the_metadata_files_equal_it_and_leaves_other_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("metadata/objects")).unwrap();
        std::fs::create_dir_all(root.join("seed")).unwrap();
        std::fs::write(root.join("metadata/objects/old.yaml"), "name: old\n").unwrap();
        std::fs::write(root.join("metadata/objects/notes.txt"), "mine").unwrap();
        std::fs::write(root.join("seed/lead.csv"), "name\n").unwrap();
        let version = files(&[
            ("metadata/app.yaml", "name: X\r\n# kept\n"),
            ("metadata/objects/lead.yaml", "name: lead\n"),
            ("scripts/a.rhai", "let x = 1;"),
        ]);
        write_app_files(root, &version).unwrap();
        assert_eq!(keel_meta::read_app_files(root).unwrap(), version);
        assert_eq!(
            std::fs::read(root.join("metadata/app.yaml")).unwrap(),
            b"name: X\r\n# kept\n"
        );
        assert!(!root.join("metadata/objects/old.yaml").exists());
        assert!(root.join("metadata/objects/notes.txt").exists());
        assert!(root.join("seed/lead.csv").exists());
        // No temporary file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(root.join("metadata/objects"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".keel-tmp"))
            .collect();
        assert!(leftovers.is_empty());

        let mut outside = version.clone();
        outside.insert("../escape.yaml".to_owned(), String::new());
        assert!(write_app_files(root, &outside).is_err());
        assert!(!root.join("../escape.yaml").exists());
    }

    #[test]
    fn the_file_diffs_number_each_line_in_the_old_and_the_new_text() {
        let before = files(&[
            ("a.yaml", "1\n2\n3\n4\n5\n6\n7\n8\n9\n"),
            ("gone.yaml", "z\n"),
        ]);
        let after = files(&[
            ("a.yaml", "1\n2\n3\n4\nfive\n6\n7\n8\n9\n"),
            ("new.yaml", "n\n"),
        ]);
        let diffs = file_diffs(&before, &after);
        let statuses: Vec<(&str, &str)> = diffs
            .iter()
            .map(|diff| (diff.path.as_str(), diff.status))
            .collect();
        assert_eq!(
            statuses,
            [
                ("a.yaml", "changed"),
                ("gone.yaml", "removed"),
                ("new.yaml", "added")
            ]
        );
        let hunk = &diffs[0].hunks[0];
        let lines: Vec<(&str, Option<usize>, Option<usize>, &str)> = hunk
            .iter()
            .map(|line| (line.kind, line.old_line, line.new_line, line.text.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                ("context", Some(2), Some(2), "2"),
                ("context", Some(3), Some(3), "3"),
                ("context", Some(4), Some(4), "4"),
                ("removed", Some(5), None, "5"),
                ("added", None, Some(5), "five"),
                ("context", Some(6), Some(6), "6"),
                ("context", Some(7), Some(7), "7"),
                ("context", Some(8), Some(8), "8"),
            ]
        );
        assert!(file_diffs(&before, &before).is_empty());
    }

    #[test]
    fn the_diff_names_each_changed_file_with_its_added_and_removed_lines() {
        let before = files(&[("a.yaml", "x: 1\ny: 2\n"), ("gone.yaml", "z\n")]);
        let after = files(&[("a.yaml", "x: 1\ny: 3\n"), ("new.yaml", "n\n")]);
        let diff = unified_diff(&before, &after);
        assert!(diff.contains("--- a/a.yaml\n+++ b/a.yaml\n"), "{diff}");
        assert!(diff.contains("-y: 2\n+y: 3\n"), "{diff}");
        assert!(diff.contains("--- a/gone.yaml\n+++ /dev/null\n"), "{diff}");
        assert!(diff.contains("--- /dev/null\n+++ b/new.yaml\n"), "{diff}");
        assert_eq!(unified_diff(&before, &before), "");
    }
}
