//! `Records`: the one write path and the one read path for object records.
//!
//! API, forms, bulk, CSV import, scripts, pools, processes and rules all save through here:
//! authorise → coerce and validate every field → before-save scripts (`scripting`) →
//! computed fields (formula, autonumber) → validations → uniqueness and duplicate keys →
//! persist with version + 1, `updated_*` and one audit row per changed field → the outbox rows
//! of event rules and after-save scripts (`effects`), in one transaction. See docs/rules.md. Every read goes through one query builder that adds
//! the actor's record scope as a SQL predicate.
//!
//! Permissions come from [`access`]: the roles of `roles.yaml` compile, per object and
//! action, to record scopes (`own`, `subordinates`, `department`, `all`) that every query
//! carries as SQL ([`access::read_condition`]), and to field access (hidden, read, edit)
//! and masking. See docs/permissions.md.
//!
//! This module knows nothing of HTTP: errors are [`RecordError`] values that `web` maps to
//! problem+json.

pub mod access;
mod budget;
mod cursor;
pub mod effects;
mod explain;
mod input;
mod names;
pub(crate) mod output;
mod read;
pub mod scheduled;
pub mod scripting;
pub(crate) mod stages;
mod write;

use std::sync::Arc;

use keel_meta::{Filter, Object, OrderTerm, Schema};
use keel_script::sandbox::{Limits, Sandbox};
use keel_script::{RunError, ScriptRunner};
use keel_store::Db;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::coerce::FieldProblem;

pub use budget::{LOOKUPS_PER_WINDOW, WINDOW_SECONDS};
pub use cursor::Cursor;
pub use explain::scope_name;
pub use names::NAME_TTL;
pub(crate) use read::mask;
pub use read::{MAX_FILTER_INTEGER, RecordStream};
pub(crate) use write::SaveContext;

/// The most records one page may hold.
pub const MAX_PAGE_SIZE: u32 = 500;
/// The page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The most items one bulk call may hold.
pub const MAX_BULK_ITEMS: usize = 1_000;
/// The most records one delete or restore moves, itself and its `on_delete: cascade`
/// children at every level together.
pub const MAX_CASCADE_RECORDS: usize = 1_000;

/// The write and read path for records of one app.
#[derive(Clone, Debug)]
pub struct Records {
    schema: Arc<Schema>,
    db: Db,
    clock: Arc<dyn Clock>,
    sandbox: Arc<Sandbox>,
    runner: ScriptRunner,
    /// Objects whose before-save scripts run before a create's transaction opens.
    pure_before_save: Arc<std::collections::HashSet<String>>,
    signals: Arc<Signals>,
    names: Arc<names::UserNames>,
    lookups: Arc<budget::LookupBudget>,
}

/// In-process wake-ups after a commit (other processes poll: see `crate::outbox`).
#[derive(Debug, Default)]
pub struct Signals {
    /// New outbox rows are due.
    pub outbox: Notify,
    /// New notifications were written.
    pub notifications: Notify,
}

/// How many scripts run at once in one process (each on a blocking thread).
const SCRIPT_WORKERS: usize = 16;

/// A list request: the JSON filter (docs/app-format.md, "Filters") or the query-string filters, already parsed.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub filter: Option<Filter>,
    /// Sort terms; the object's list order when empty. The record id is always the last
    /// tie-breaker, so pages are stable.
    pub order: Vec<OrderTerm>,
    /// At most [`MAX_PAGE_SIZE`]; [`DEFAULT_PAGE_SIZE`] when `None`.
    pub limit: Option<u32>,
    /// The opaque cursor from a previous page's `next`.
    pub after: Option<String>,
    /// Text matched (case-insensitively, anywhere) against the object's `search` fields.
    pub q: Option<String>,
    /// Only these fields (plus `id`) in each record; all readable fields when `None`.
    pub fields: Option<Vec<String>>,
}

/// One page of records.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub data: Vec<Json>,
    /// The cursor for the next page, or `None` on the last page.
    pub next: Option<String>,
}

/// A saved record and what the save noticed without refusing it.
#[derive(Debug, Clone, Serialize)]
pub struct Saved {
    /// The whole record as the actor may see it (system fields, fields, `_refs`).
    pub record: Json,
    pub warnings: Vec<Warning>,
}

/// A warning attached to a successful save (e.g. a `warn` duplicate key matched).
#[derive(Debug, Clone, Serialize)]
pub struct Warning {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<DuplicateMatch>,
}

/// What a duplicate check reveals of a matching record: enough to avoid 撞单, nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DuplicateMatch {
    pub id: String,
    /// The record's title, masked (`张*`, `138****5678`).
    pub title: String,
    /// The owner's display name (or username); `None` when the record has no owner.
    pub owner_name: Option<String>,
    /// The pool the record sits in, if any.
    pub pool: Option<String>,
    /// The duplicate key that matched, e.g. `["phone"]`.
    pub fields: Vec<String>,
}

/// Live records that refer through a `restrict` lookup to a record being deleted: the ones
/// the actor may read are named, the rest only counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Referencing {
    /// The referring object and its lookup field.
    pub object: String,
    pub field: String,
    /// How many live records refer this way, whether the actor may read them or not
    /// (counted up to 1,000; `more` says there are more).
    pub count: usize,
    pub more: bool,
    /// Up to 20 of them that the actor may read.
    pub records: Vec<ReferringRecord>,
}

/// A referring record the actor may read: its id, and its title as the actor sees it
/// (masked where the actor sees it masked; `None` when the title field is hidden).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReferringRecord {
    pub id: String,
    pub title: Option<String>,
}

/// `GET /aggregate/{object}`: grouped figures.
#[derive(Debug, Clone, Default)]
pub struct AggregateRequest {
    pub filter: Option<Filter>,
    pub group_by: Vec<String>,
    pub count: bool,
    pub sum: Vec<String>,
    pub avg: Vec<String>,
    pub min: Vec<String>,
    pub max: Vec<String>,
    /// Text matched against the object's `search` fields, as in a list, so a count can
    /// follow a searched list.
    pub q: Option<String>,
}

/// Why a records call did not happen. Each variant maps to one HTTP status and stable code.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// No such object in this app (404).
    #[error("there is no object `{0}`")]
    UnknownObject(String),
    /// No such record, or one the actor may not see (404: existence is not revealed).
    #[error("no such record")]
    NotFound,
    /// The object or action is not allowed, or a field is read-only for the actor (403).
    #[error("{message}")]
    Forbidden {
        message: String,
        fields: Vec<String>,
    },
    /// Invalid input: every bad field is listed (422).
    #[error("the record is not valid")]
    Invalid(Vec<FieldProblem>),
    /// A unique field or a `block` duplicate key matched an existing record (409).
    #[error("{message}")]
    Conflict {
        message: String,
        field: Option<String>,
        matches: Vec<DuplicateMatch>,
    },
    /// Other records refer to the record being deleted through `restrict` lookups, or a
    /// cascade would move too many records (409).
    #[error("{message}")]
    Referenced {
        message: String,
        references: Vec<Referencing>,
    },
    /// `If-Match` named an older version (412).
    #[error("the record changed since version {expected}; it is now at version {current}")]
    Stale { expected: i64, current: i64 },
    /// The bad cursor, limit, order or field list of a list request (422).
    #[error("{0}")]
    BadRequest(String),
    /// The actor spent their 查重 budget (429): see `budget`.
    #[error("too many duplicate lookups; try again in {} seconds", retry_after.as_secs())]
    TooManyLookups { retry_after: std::time::Duration },
    /// A filter comparison on `field` that cannot run: not a field the actor may read, or a
    /// value that does not fit it (422, naming the field).
    #[error("{message}")]
    BadFilter { field: String, message: String },
    /// A script refused the save (`reject`), failed, or broke a sandbox limit (422, naming
    /// the script and line).
    #[error("{0}")]
    Script(RunError),
    /// A chain of rules and scripts, each causing the next save, went deeper than
    /// `scripting::MAX_CHAIN_DEPTH` (422, naming the chain).
    #[error("a chain of rules and scripts went deeper than {} saves: {}", scripting::MAX_CHAIN_DEPTH, chain.join(" → "))]
    ChainTooDeep { chain: Vec<String> },
    /// A pool refused a move (409): `code` says why — `taken` (someone holds the record),
    /// `claim_limit`, `daily_claim_limit`, `cooldown` or `in_pool` (docs/pools.md).
    #[error("{message}")]
    PoolRefused { code: &'static str, message: String },
    /// A sales process refused a transition or a change (409): `code` says why —
    /// `transition_not_allowed`, `approval_pending`, `guard_refused` (with the guard's
    /// script), `not_an_approver`, `not_the_requester`, `approval_decided`
    /// (docs/processes.md).
    #[error("{message}")]
    ProcessRefused {
        code: &'static str,
        message: String,
        script: Option<String>,
    },
    /// The database failed (500; the cause is logged, not shown).
    #[error(transparent)]
    Store(#[from] keel_store::StoreError),
}

impl Records {
    pub fn new(schema: Arc<Schema>, db: Db, clock: Arc<dyn Clock>) -> Records {
        Records::build(
            schema,
            db,
            clock,
            Arc::default(),
            Arc::default(),
            Arc::default(),
        )
    }

    /// The same records on another metadata version (docs/studio.md): the script sandbox
    /// follows the new limits; the process's wake-ups, user-name cache and duplicate-lookup
    /// budgets carry on.
    pub fn with_schema(&self, schema: Arc<Schema>) -> Records {
        Records::build(
            schema,
            self.db.clone(),
            Arc::clone(&self.clock),
            Arc::clone(&self.signals),
            Arc::clone(&self.names),
            Arc::clone(&self.lookups),
        )
    }

    fn build(
        schema: Arc<Schema>,
        db: Db,
        clock: Arc<dyn Clock>,
        signals: Arc<Signals>,
        names: Arc<names::UserNames>,
        lookups: Arc<budget::LookupBudget>,
    ) -> Records {
        let limits = &schema.app.limits;
        let sandbox = Sandbox::new(Limits {
            operations: limits.script_operations,
            call_depth: limits.script_call_depth as usize,
            string_bytes: limits.script_string_bytes as usize,
            array_items: limits.script_array_items as usize,
            map_entries: limits.script_array_items as usize,
            reads: limits.script_reads,
            writes: limits.script_writes,
            wall_time: limits.script_wall_time.as_std(),
            ..Limits::default()
        });
        let sandbox = Arc::new(sandbox);
        let pure_before_save = Arc::new(scripting::reads_nothing(&schema));
        Records {
            schema,
            db,
            clock,
            runner: ScriptRunner::new(Arc::clone(&sandbox), SCRIPT_WORKERS),
            pure_before_save,
            signals,
            sandbox,
            names,
            lookups,
        }
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The wake-ups the outbox worker and the notification stream wait on.
    pub fn signals(&self) -> &Arc<Signals> {
        &self.signals
    }

    fn object(&self, name: &str) -> Result<&Object, RecordError> {
        self.schema
            .object(name)
            .ok_or_else(|| RecordError::UnknownObject(name.to_owned()))
    }
}

/// Input for a create or an update: a JSON object of field → value.
pub type Input = Map<String, Json>;
