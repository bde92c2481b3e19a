//! Record rows in and out of object tables: typed selects with keyset pagination, counts,
//! grouped aggregates, and the write transaction the runtime saves
//! through (insert, versioned update, gapless sequences, the audit trail).
//!
//! Everything is built from the object's metadata and typed [`Value`]s: identifiers only
//! from the object's columns (quoted), every value a bound parameter, the SQL differing per
//! [`Dialect`](crate::Dialect) only where the databases do. Both databases give the same
//! answers: NULL sorts first ascending and last descending, a [`Condition`] is two-valued
//! (see `condition`), decimals are exact (SQLite keeps them as scaled integers), and
//! aggregates are computed exactly. Text compares and sorts with plain `=`/`<`, so by the
//! database's collation: binary on SQLite, and binary on PostgreSQL when the database uses
//! the `C` or `C.UTF-8` collation (as Keel's tests do); another collation changes the order
//! of text on PostgreSQL only, consistently between ORDER BY and keyset cursors.
//!
//! Deliberately not here: *whether* a read or write is allowed, what a value must look like,
//! defaults, triggers, what goes into the outbox (a create only carries the rows the runtime
//! made, in its round trip), and turning filters into conditions — the runtime does all of
//! that before calling in. Nothing here reads the clock or makes ids for records.

mod aggregate;
mod audit;
pub(crate) mod columns;
pub(crate) mod condition;
pub mod duplicate_keys;
pub(crate) mod execute;
pub(crate) mod select;
pub(crate) mod statement;
mod write;

#[cfg(test)]
mod tests;

use indexmap::IndexMap;
use keel_meta::{Object, Value};

pub use aggregate::{Measure, aggregate};
pub(crate) use audit::audit_insert_statements;
pub(crate) use audit::write_audit;
pub use audit::{AuditEntry, append as append_audit, changed_by, history, recent};
pub use write::{RecordTurn, RecordWrite};

use crate::db::Db;
use crate::error::StoreError;
use select::{RowLock, count_statement, run_select, select_statement};

/// One record, or the selected part of it: column name → value, in select order.
pub type Row = IndexMap<String, Value>;

/// Which records a query is about, in terms of the object's columns and typed values.
///
/// Columns must be columns of the object (a name that is not one is an error, never SQL).
/// Every leaf is true or false, never unknown: an empty field equals nothing, so
/// `Compare { op: Ne }` and `Not` match empty fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Every condition holds; an empty list always holds.
    All(Vec<Condition>),
    /// At least one condition holds; an empty list never holds.
    Any(Vec<Condition>),
    Not(Box<Condition>),
    /// `column op value`. Comparing with [`Value::Null`]: `Eq` is "empty", `Ne` is "filled",
    /// the ordering operators never hold. A `multi_choice` (JSON) column compares only for
    /// equality, and only with a [`Value::List`].
    Compare {
        column: String,
        op: CompareOp,
        value: Value,
    },
    /// The column equals one of `values` (a [`Value::Null`] among them matches empty fields);
    /// an empty list matches nothing.
    In {
        column: String,
        values: Vec<Value>,
    },
    /// Empty (`null: true`) or filled.
    IsNull {
        column: String,
        null: bool,
    },
    /// The whole value matches `pattern`, where `*` is any run of characters and everything
    /// else is literal (`%` and `_` included); case-insensitive (ASCII only on SQLite).
    Like {
        column: String,
        pattern: String,
    },
    /// Any of `columns` contains `text` (case-insensitive, as `Like`): the `q` search.
    /// An empty `text` matches every record; no columns match nothing.
    Contains {
        columns: Vec<String>,
        text: String,
    },
    /// The permission scope: `owner` is one of these user ids; empty matches nothing, and
    /// records without an owner (in a pool) never match.
    OwnerIn(Vec<String>),
    /// The `subordinates` scope: `owner` is this user or anyone below them in the manager
    /// chain, however deep; read from the `keel_team_members` closure table by the query
    /// itself, so a change of manager counts from the next query on.
    OwnerInTeamOf(String),
    /// The `department` scope: `owner` is this user, or a user of their department or of a
    /// department nested below it (through the `keel_department_tree` closure table).
    OwnerInDepartmentOf(String),
    /// A `multi_choice` column holds at least one of `keys`; empty matches nothing.
    HasAny {
        column: String,
        keys: Vec<String>,
    },
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// Which records the recycle bin lets a query see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Deleted {
    /// Live records only (`deleted_at IS NULL`).
    #[default]
    Exclude,
    /// The recycle bin only.
    Only,
    /// Both.
    Include,
}

/// One ordering term. NULL sorts first ascending and last descending, on both databases.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sort {
    pub column: String,
    pub descending: bool,
}

/// A select of records of one object.
#[derive(Debug, Clone)]
pub struct SelectQuery<'a> {
    pub object: &'a Object,
    pub condition: Condition,
    pub deleted: Deleted,
    /// `id` ascending is appended as the final tie-breaker unless `id` is already here.
    pub sort: Vec<Sort>,
    /// Keyset cursor: the previous page's last row's values of each sort column, then of
    /// `id` (see [`SelectQuery::cursor_after`]). Rows strictly after it are returned.
    pub after: Option<Vec<Value>>,
    pub limit: Option<u32>,
    /// The columns to return; `id` and the sort columns are always returned too (a cursor
    /// needs them). `None` returns every column.
    pub columns: Option<Vec<String>>,
}

impl<'a> SelectQuery<'a> {
    /// Every live record of `object`, ordered by `id`.
    pub fn new(object: &'a Object) -> SelectQuery<'a> {
        SelectQuery {
            object,
            condition: Condition::Always,
            deleted: Deleted::Exclude,
            sort: Vec::new(),
            after: None,
            limit: None,
            columns: None,
        }
    }

    /// The full ordering this query uses: [`SelectQuery::sort`], then `id` ascending unless
    /// `id` is already in it.
    pub fn effective_sort(&self) -> Vec<Sort> {
        select::effective_sort(&self.sort)
    }

    /// The cursor that continues after `row` (a row this query returned): its values of
    /// [`SelectQuery::effective_sort`], in order.
    pub fn cursor_after(&self, row: &Row) -> Vec<Value> {
        self.effective_sort()
            .iter()
            .map(|sort| row.get(&sort.column).cloned().unwrap_or(Value::Null))
            .collect()
    }
}

/// The records `query` selects, in its order.
pub async fn select(db: &Db, query: &SelectQuery<'_>) -> Result<Vec<Row>, StoreError> {
    let plan = select_statement(db.dialect(), query, RowLock::None)?;
    let mut pooled = db.acquire().await?;
    run_select(&mut pooled.connection(), &plan).await
}

/// How many records of `object` match `condition`.
pub async fn count(
    db: &Db,
    object: &Object,
    condition: &Condition,
    deleted: Deleted,
) -> Result<i64, StoreError> {
    let (statement, shapes) = count_statement(db.dialect(), object, condition, deleted)?;
    let mut pooled = db.acquire().await?;
    let rows = execute::fetch(&mut pooled.connection(), &statement, &shapes).await?;
    match rows.first().and_then(|row| row.first()) {
        Some(Value::Integer(count)) => Ok(*count),
        _ => Err(StoreError::UnreadableValue {
            what: format!("the count of `{}` records", object.name),
        }),
    }
}

/// The record `id` of `object`, when it exists and `deleted` lets it be seen.
pub async fn get(
    db: &Db,
    object: &Object,
    id: &str,
    deleted: Deleted,
) -> Result<Option<Row>, StoreError> {
    let query = by_id(object, id, deleted);
    Ok(select(db, &query).await?.into_iter().next())
}

/// A query for the one record `id`, every column.
fn by_id<'a>(object: &'a Object, id: &str, deleted: Deleted) -> SelectQuery<'a> {
    SelectQuery {
        condition: Condition::Compare {
            column: "id".to_owned(),
            op: CompareOp::Eq,
            value: Value::Text(id.to_owned()),
        },
        deleted,
        limit: Some(1),
        ..SelectQuery::new(object)
    }
}
