//! Schema migration: plan the changes that bring the database in line with the metadata,
//! and apply them.
//!
//! The plan comes from introspecting the live database, never from a remembered state
//! (DESIGN rule 5). Each step is safe or destructive; destructive steps need
//! `allow_destructive`, and even then a removed column or table is renamed to an archive
//! name (`keel_arch_<time>_<name>`), never dropped. [`apply`] runs under a migration lock
//! (PostgreSQL advisory lock, SQLite `BEGIN IMMEDIATE`) and plans again inside it, so
//! processes starting together on one database serialize and only the first does the work.
//! Every apply that changes something, or applies files whose hash (the schema's
//! fingerprint) differs from the latest recorded version's, records a new metadata version
//! in `keel_metadata_versions`: its number, every file of the app, who applied it and from
//! where (docs/studio.md; [`crate::versions`] reads them back).
//!
//! What this module does not do: it never drops a column or table, never rewrites values
//! beyond the conversion of a changed column type, and does not track NOT NULL or default
//! changes of existing columns (only system columns have either).

mod planner;
mod sql;

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use keel_meta::Schema;
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Connection as _};

use crate::datetime::to_sqlite_text;
use crate::db::{Connection, Db, Dialect};
use crate::error::StoreError;
use crate::introspect::{LiveDatabase, introspect};
use crate::layout::{TableLayout, database_layout};
use planner::{Memory, build_plan, new_table_steps};

/// The PostgreSQL advisory lock key that serializes migrations ("keelmigr" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x6b65_656c_6d69_6772;
const VERSIONS_TABLE: &str = "keel_metadata_versions";

/// The steps that bring a database in line with the metadata, in execution order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Destructive steps accepted earlier with `allow_destructive` that the database still
    /// cannot carry out (a unique index over duplicate values). They do not block a
    /// migration; they become ordinary steps again once the data allows.
    #[serde(default)]
    pub acknowledged: Vec<Step>,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub kind: StepKind,
    /// The table: an object's name or a `keel_` system table.
    pub object: String,
    pub field: Option<String>,
    pub safety: Safety,
    /// One line for people, e.g. `drop column lead.cell (archived as …, 12 rows with a value)`.
    pub description: String,
    /// The rows the step concerns, when it was worth counting: values archived, values that
    /// would not convert, empty required values, duplicates, dangling references.
    pub affected_rows: Option<i64>,
    /// The statements, in order. Empty for checks that change nothing in the database.
    pub sql: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Safe.
    CreateTable,
    /// Destructive: the table is renamed to an archive name.
    ArchiveTable,
    /// Safe: a nullable column (or NOT NULL with a constant default).
    AddColumn,
    /// Safe: `renamed_from`; the data stays.
    RenameColumn,
    /// Destructive: the column is renamed to an archive name.
    ArchiveColumn,
    /// Safe when widening and every value fits; destructive otherwise (the old column is
    /// archived and the new one filled with the values that convert).
    ChangeColumnType,
    /// Destructive when existing rows have no value; changes nothing in the database.
    RequireField,
    /// Safe.
    AddIndex,
    /// Safe, or destructive when existing rows share values (then not created).
    AddUniqueIndex,
    /// Safe: only Keel-named indexes the metadata no longer wants.
    DropIndex,
    /// Safe, or destructive when existing rows refer to missing records.
    AddForeignKey,
    /// Safe: it only loosens.
    DropForeignKey,
    /// SQLite: a table rebuilt to change foreign keys; safe unless rows refer to missing
    /// records.
    RebuildTable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Safety {
    Safe,
    Destructive,
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub steps: Vec<Step>,
    /// Whether a row was added to `keel_metadata_versions`.
    pub recorded_version: bool,
    /// The latest metadata version once the apply committed: the one it recorded, or the
    /// one that already held these files.
    pub version: Option<i64>,
}

/// Where a metadata version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionSource {
    /// `keel migrate`, `keel serve` and every other command that applies an app directory.
    Cli,
    /// `POST /admin/metadata/apply`.
    Studio,
}

impl VersionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionSource::Cli => "cli",
            VersionSource::Studio => "studio",
        }
    }
}

/// Work done under the migration lock after the steps ran and the version was recorded,
/// before the commit (the studio writes the app's files there); its error rolls it all
/// back. It is given the version number recorded.
pub type BeforeCommit<'a> = &'a (dyn Fn(i64) -> Result<(), String> + Sync);

/// How [`apply_with`] applies.
#[derive(Clone, Copy)]
pub struct ApplyOptions<'a> {
    pub allow_destructive: bool,
    pub source: VersionSource,
    /// Who applied (a username), when known.
    pub applied_by: Option<&'a str>,
    /// Apply only while this is the latest recorded version ([`StoreError::StaleBase`]
    /// otherwise), checked under the lock.
    pub base: Option<i64>,
    pub before_commit: Option<BeforeCommit<'a>>,
}

impl ApplyOptions<'_> {
    /// What the commands use: from the command line, by nobody in particular.
    pub fn cli(allow_destructive: bool) -> ApplyOptions<'static> {
        ApplyOptions {
            allow_destructive,
            source: VersionSource::Cli,
            applied_by: None,
            base: None,
            before_commit: None,
        }
    }
}

impl std::fmt::Debug for ApplyOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyOptions")
            .field("allow_destructive", &self.allow_destructive)
            .field("source", &self.source)
            .field("applied_by", &self.applied_by)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn destructive(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .filter(|step| step.safety == Safety::Destructive)
    }

    /// One line per step: `+` adds, `~` changes, `-` drops something safely, `!` is
    /// destructive. Acknowledged steps follow, indented.
    pub fn render(&self) -> String {
        if self.steps.is_empty() && self.acknowledged.is_empty() {
            return "nothing to do: the database matches the metadata\n".to_owned();
        }
        let mut text = String::new();
        for step in &self.steps {
            text.push_str(&step.render());
            text.push('\n');
        }
        for step in &self.acknowledged {
            text.push_str(&format!("  (accepted earlier) {}\n", step.description));
        }
        text
    }
}

impl Step {
    /// The step as one line of a rendered plan.
    pub fn render(&self) -> String {
        format!("{} {}", self.symbol(), self.description)
    }

    fn symbol(&self) -> char {
        if self.safety == Safety::Destructive {
            return '!';
        }
        match self.kind {
            StepKind::CreateTable
            | StepKind::AddColumn
            | StepKind::AddIndex
            | StepKind::AddUniqueIndex
            | StepKind::AddForeignKey => '+',
            StepKind::DropIndex | StepKind::DropForeignKey => '-',
            StepKind::ArchiveTable
            | StepKind::RenameColumn
            | StepKind::ArchiveColumn
            | StepKind::ChangeColumnType
            | StepKind::RequireField
            | StepKind::RebuildTable => '~',
        }
    }
}

/// The plan for `schema` against the database as it is now. Changes nothing (on PostgreSQL
/// it may create session-local helper functions).
#[expect(
    clippy::disallowed_methods,
    reason = "the time only names archives; callers that need control use `plan_at`"
)]
pub async fn plan(db: &Db, schema: &Schema) -> Result<Plan, StoreError> {
    plan_at(db, schema, Utc::now()).await
}

/// [`plan`], naming archives after `now`.
pub async fn plan_at(db: &Db, schema: &Schema, now: DateTime<Utc>) -> Result<Plan, StoreError> {
    let layout = database_layout(schema);
    let mut pooled = db.acquire().await?;
    let mut connection = pooled.connection();
    let (plan, _memory) = plan_on(&mut connection, &layout, now).await?;
    Ok(plan)
}

/// Brings the database in line with `schema`: plans under the migration lock, refuses when
/// a step is destructive and `allow_destructive` is false, runs every step in one
/// transaction and records the version.
#[expect(
    clippy::disallowed_methods,
    reason = "the time only names archives and the recorded version; callers that need control use `apply_at`"
)]
pub async fn apply(
    db: &Db,
    schema: &Schema,
    allow_destructive: bool,
) -> Result<Applied, StoreError> {
    apply_at(db, schema, allow_destructive, Utc::now()).await
}

/// [`apply`] at time `now` (archive names and the recorded version's time).
pub async fn apply_at(
    db: &Db,
    schema: &Schema,
    allow_destructive: bool,
    now: DateTime<Utc>,
) -> Result<Applied, StoreError> {
    apply_with(db, schema, ApplyOptions::cli(allow_destructive), now).await
}

/// [`apply`] with who applied, from where, against which base version, and work to do
/// before the commit (see [`ApplyOptions`]).
pub async fn apply_with(
    db: &Db,
    schema: &Schema,
    options: ApplyOptions<'_>,
    now: DateTime<Utc>,
) -> Result<Applied, StoreError> {
    match db {
        Db::Sqlite(pool, _) => {
            let mut pooled = pool
                .acquire()
                .await
                .map_err(StoreError::query("acquiring a connection to migrate"))?;
            // A table rebuild drops the old table; with enforcement on that would cascade
            // into every referencing table. The pragma only takes effect outside a
            // transaction, so it is set before BEGIN and restored after.
            set_sqlite_foreign_keys(&mut pooled, false).await?;
            let result = async {
                let mut transaction = pooled
                    .begin_with(AssertSqlSafe("BEGIN IMMEDIATE"))
                    .await
                    .map_err(StoreError::query(
                        "taking the migration lock (BEGIN IMMEDIATE)",
                    ))?;
                let applied = apply_in(
                    &mut Connection::Sqlite(&mut transaction),
                    schema,
                    options,
                    now,
                )
                .await?;
                transaction
                    .commit()
                    .await
                    .map_err(StoreError::query("committing the migration"))?;
                Ok(applied)
            }
            .await;
            if set_sqlite_foreign_keys(&mut pooled, true).await.is_err() {
                // Never hand a connection without enforcement back to the pool.
                pooled.close_on_drop();
            }
            result
        }
        Db::Postgres(pool) => {
            let mut transaction = pool
                .begin()
                .await
                .map_err(StoreError::query("starting the migration transaction"))?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK_KEY)
                .execute(&mut *transaction)
                .await
                .map_err(StoreError::query("taking the migration lock"))?;
            let applied = apply_in(
                &mut Connection::Postgres(&mut transaction),
                schema,
                options,
                now,
            )
            .await?;
            transaction
                .commit()
                .await
                .map_err(StoreError::query("committing the migration"))?;
            Ok(applied)
        }
    }
}

/// Every statement that creates `schema`'s tables, indexes and foreign keys in an empty
/// database, in order.
pub fn create_ddl(dialect: Dialect, schema: &Schema) -> Vec<String> {
    let layout = database_layout(schema);
    let (creates, foreign_keys) = new_table_steps(dialect, &layout, &LiveDatabase::default());
    creates
        .into_iter()
        .chain(foreign_keys)
        .flat_map(|step| step.sql)
        .collect()
}

async fn set_sqlite_foreign_keys(
    connection: &mut sqlx::SqliteConnection,
    on: bool,
) -> Result<(), StoreError> {
    let statement = if on {
        "PRAGMA foreign_keys = ON"
    } else {
        "PRAGMA foreign_keys = OFF"
    };
    sqlx::raw_sql(AssertSqlSafe(statement))
        .execute(&mut *connection)
        .await
        .map(drop)
        .map_err(StoreError::query(
            "switching SQLite foreign-key enforcement",
        ))
}

async fn plan_on(
    connection: &mut Connection<'_>,
    layout: &[TableLayout],
    now: DateTime<Utc>,
) -> Result<(Plan, Memory), StoreError> {
    let live = introspect(connection).await?;
    let memory = read_memory(connection, &live).await?;
    let plan = build_plan(connection, layout, &live, &memory, now).await?;
    Ok((plan, memory))
}

async fn apply_in(
    connection: &mut Connection<'_>,
    schema: &Schema,
    options: ApplyOptions<'_>,
    now: DateTime<Utc>,
) -> Result<Applied, StoreError> {
    let layout = database_layout(schema);
    let (plan, memory) = plan_on(connection, &layout, now).await?;
    if let Some(base) = options.base {
        let latest = crate::versions::latest_number_on(connection).await?;
        if latest != Some(base) {
            return Err(StoreError::StaleBase { base, latest });
        }
    }
    let refused: Vec<String> = plan.destructive().map(Step::render).collect();
    if !refused.is_empty() && !options.allow_destructive {
        return Err(StoreError::DestructiveChangesRefused { steps: refused });
    }
    for step in &plan.steps {
        for statement in &step.sql {
            connection.execute(statement).await?;
        }
    }
    // The org closure tables are derived data: rebuilding them on every apply fills them
    // in a database that predates them, and heals any drift.
    crate::users::rebuild_org(connection).await?;
    // Duplicate keys are derived data too: filled for rows that predate them, rebuilt for
    // objects whose keys changed, and left alone (one small read) otherwise.
    crate::records::duplicate_keys::sync(connection, schema).await?;
    // The versions table has its version columns now (the plan adds them to an older
    // database): a version is recorded when the files differ from the latest version's.
    let latest = crate::versions::latest_on(connection).await?;
    let changed = !plan.steps.is_empty()
        || memory.fingerprint.as_deref() != Some(schema.fingerprint.as_str())
        || latest
            .as_ref()
            .is_none_or(|(_, fingerprint)| *fingerprint != schema.fingerprint);
    let mut version = latest.map(|(number, _)| number);
    if changed {
        let number = version.unwrap_or(0) + 1;
        record_version(connection, schema, &layout, &plan, number, options, now).await?;
        record_role_changes(connection, memory.roles.as_ref(), schema, now).await?;
        version = Some(number);
    }
    if let (Some(before_commit), Some(number)) = (options.before_commit, version) {
        before_commit(number).map_err(|reason| StoreError::Aborted { reason })?;
    }
    tracing::info!(
        steps = plan.steps.len(),
        recorded_version = changed,
        version,
        "applied metadata"
    );
    Ok(Applied {
        steps: plan.steps,
        recorded_version: changed,
        version,
    })
}

/// What a `keel_metadata_versions.plan` document holds: the applied plan, plus what later
/// plans must remember.
#[derive(Debug, Default, Serialize, Deserialize)]
struct VersionRecord {
    #[serde(default)]
    steps: Vec<Step>,
    #[serde(default)]
    acknowledged: Vec<Step>,
    /// `object.field` of every required field at this version.
    #[serde(default)]
    required_fields: Option<Vec<String>>,
    /// Each role's definition and grants at this version (see [`role_documents`]).
    #[serde(default)]
    roles: Option<serde_json::Map<String, serde_json::Value>>,
}

async fn read_memory(
    connection: &mut Connection<'_>,
    live: &LiveDatabase,
) -> Result<Memory, StoreError> {
    if live.table(VERSIONS_TABLE).is_none() {
        return Ok(Memory::default());
    }
    let context = "reading the last applied metadata version";
    let latest: Option<(String, String)> = match connection {
        Connection::Sqlite(connection) => sqlx::query_as(
            "SELECT fingerprint, plan FROM keel_metadata_versions \
             ORDER BY applied_at DESC, id DESC LIMIT 1",
        )
        .fetch_optional(&mut **connection)
        .await
        .map_err(StoreError::query(context))?,
        Connection::Postgres(connection) => sqlx::query_as(
            "SELECT fingerprint, plan::text FROM keel_metadata_versions \
             ORDER BY applied_at DESC, id DESC LIMIT 1",
        )
        .fetch_optional(&mut **connection)
        .await
        .map_err(StoreError::query(context))?,
    };
    let Some((fingerprint, document)) = latest else {
        return Ok(Memory::default());
    };
    // An unreadable document (written by a future version, say) only loses the memory.
    let record: VersionRecord = serde_json::from_str(&document).unwrap_or_default();
    let acknowledged: HashSet<_> = record
        .acknowledged
        .iter()
        .chain(record.steps.iter().filter(|step| is_acknowledgement(step)))
        .map(|step| (step.kind, step.object.clone(), step.field.clone()))
        .collect();
    Ok(Memory {
        fingerprint: Some(fingerprint),
        required_fields: record
            .required_fields
            .map(|fields| fields.into_iter().collect()),
        acknowledged,
        roles: record.roles,
    })
}

/// A destructive step that changed nothing: applying it meant accepting the data as it is.
fn is_acknowledgement(step: &Step) -> bool {
    step.safety == Safety::Destructive && step.sql.is_empty() && step.kind != StepKind::RequireField
}

async fn record_version(
    connection: &mut Connection<'_>,
    schema: &Schema,
    layout: &[TableLayout],
    plan: &Plan,
    version: i64,
    options: ApplyOptions<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let required_fields = layout
        .iter()
        .flat_map(|table| {
            table
                .columns
                .iter()
                .filter(|column| column.required == Some(true))
                .map(move |column| format!("{}.{}", table.name, column.name))
        })
        .collect();
    let record = VersionRecord {
        steps: plan.steps.clone(),
        acknowledged: plan
            .acknowledged
            .iter()
            .chain(plan.steps.iter().filter(|step| is_acknowledgement(step)))
            .cloned()
            .collect(),
        required_fields: Some(required_fields),
        roles: Some(role_documents(schema)),
    };
    let document = serde_json::to_string(&record).map_err(|source| StoreError::Json {
        what: "the applied plan".to_owned(),
        source,
    })?;
    let files = serde_json::to_string(&schema.files).map_err(|source| StoreError::Json {
        what: "the metadata files".to_owned(),
        source,
    })?;
    let summary = summarize(plan);
    let id = uuid::Uuid::now_v7().to_string();
    let context = "recording the applied metadata version";
    let source = options.source.as_str();
    match connection {
        Connection::Sqlite(connection) => sqlx::query(
            "INSERT INTO keel_metadata_versions \
             (id, fingerprint, applied_at, summary, plan, version, files, applied_by, source) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .bind(id)
        .bind(&schema.fingerprint)
        .bind(to_sqlite_text(now))
        .bind(summary)
        .bind(document)
        .bind(version)
        .bind(files)
        .bind(options.applied_by)
        .bind(source)
        .execute(&mut **connection)
        .await
        .map(drop),
        Connection::Postgres(connection) => {
            sqlx::query(
                "INSERT INTO keel_metadata_versions \
                 (id, fingerprint, applied_at, summary, plan, version, files, applied_by, source) \
                 VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7::jsonb, $8, $9)",
            )
            .bind(id)
            .bind(&schema.fingerprint)
            .bind(now)
            .bind(summary)
            .bind(document)
            .bind(version)
            .bind(files)
            .bind(options.applied_by)
            .bind(source)
            .execute(&mut **connection)
            .await
            .map_err(StoreError::query(context))?;
            // Delivered at commit: every `keel serve` listening swaps at once (the poll
            // is the safety net).
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(crate::versions::CHANNEL)
                .bind(version.to_string())
                .execute(&mut **connection)
                .await
                .map(drop)
        }
    }
    .map_err(StoreError::query(context))
}

/// `keel_audit.object` of role changes; `record_id` and `field` are the role's name.
pub const ROLES_AUDIT: &str = "keel_roles";

/// Each role as one JSON document: its definition and its grants per object.
fn role_documents(schema: &Schema) -> serde_json::Map<String, serde_json::Value> {
    schema
        .roles
        .roles
        .iter()
        .map(|(name, role)| {
            let document = serde_json::json!({
                "admin": role.admin,
                "label": role.label,
                "permissions": schema.roles.permissions.get(name),
            });
            (name.clone(), document)
        })
        .collect()
}

/// Writes one `keel_audit` entry (object `keel_roles`) per role added, changed or removed
/// since the last applied version. Runs under the migration lock, so several processes
/// applying the same metadata record each change once. The first version records nothing:
/// there is no "before".
async fn record_role_changes(
    connection: &mut Connection<'_>,
    before: Option<&serde_json::Map<String, serde_json::Value>>,
    schema: &Schema,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(before) = before else {
        return Ok(());
    };
    let after = role_documents(schema);
    let names: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let entries: Vec<crate::records::AuditEntry> = names
        .into_iter()
        .filter(|name| before.get(*name) != after.get(*name))
        .map(|name| crate::records::AuditEntry {
            object: ROLES_AUDIT.to_owned(),
            record_id: name.clone(),
            at: now,
            by: None,
            field: name.clone(),
            old: before.get(name).cloned().unwrap_or_default(),
            new: after.get(name).cloned().unwrap_or_default(),
            action: match (before.contains_key(name), after.contains_key(name)) {
                (false, _) => "create",
                (_, false) => "delete",
                _ => "update",
            }
            .to_owned(),
        })
        .collect();
    crate::records::write_audit(connection, &entries).await
}

/// A short text for `keel_metadata_versions.summary`.
fn summarize(plan: &Plan) -> String {
    if plan.steps.is_empty() {
        return "metadata changed; the database already matched".to_owned();
    }
    let destructive = plan.destructive().count();
    let mut summary = format!("{} step(s)", plan.steps.len());
    if destructive > 0 {
        summary.push_str(&format!(", {destructive} destructive"));
    }
    summary.push_str(": ");
    let descriptions: Vec<&str> = plan
        .steps
        .iter()
        .map(|step| step.description.as_str())
        .collect();
    summary.push_str(&descriptions.join("; "));
    summary
}

#[cfg(test)]
mod tests;
