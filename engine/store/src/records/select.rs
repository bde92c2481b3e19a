//! The SELECT and count statements of `records`: column list, recycle-bin filter, condition,
//! keyset predicate, ordering and limit.
//!
//! Ordering puts NULL first ascending and last descending on both databases (SQLite's
//! natural order; PostgreSQL is told `NULLS FIRST`/`NULLS LAST`). The keyset predicate for a
//! cursor `(v1, …, vn)` over sort columns `(c1, …, cn)` is the OR, over each `i`, of "the
//! first `i-1` columns equal the cursor and `ci` comes after `vi` in its direction", with
//! NULL handled as the smallest value: ascending, after NULL is any filled value; descending,
//! after `v` is smaller values and NULL, and nothing comes after NULL. Columns that are NOT
//! NULL (`id`, `created_at`, …) get neither the NULL terms nor PostgreSQL's `NULLS` clause,
//! whose non-default order would stop PostgreSQL from walking a plain index: paging by `id`
//! or `created_at` stays an index range scan. This module builds statements and decodes
//! their rows into [`Row`]s; it does not page on its own (see `stream`).

use keel_meta::{Object, Storage, Value};

use super::columns::ObjectColumns;
use super::condition::push_condition;
use super::execute::{Shape, fetch};
use super::statement::Statement;
use super::{Condition, Deleted, Row, SelectQuery, Sort};
use crate::db::{Connection, Dialect};
use crate::error::StoreError;

/// A SELECT ready to run: the statement, and the name and shape of each selected column.
#[derive(Debug, Clone)]
pub(crate) struct SelectPlan {
    pub(crate) statement: Statement,
    pub(crate) names: Vec<String>,
    pub(crate) shapes: Vec<Shape>,
}

/// `sort`, then `id` unless already present, in the direction of the last term: an index
/// ending in `id` then serves the whole order, scanned forwards or backwards.
pub(crate) fn effective_sort(sort: &[Sort]) -> Vec<Sort> {
    let mut effective = sort.to_vec();
    if !effective.iter().any(|term| term.column == "id") {
        effective.push(Sort {
            column: "id".to_owned(),
            descending: sort.last().is_some_and(|term| term.descending),
        });
    }
    effective
}

/// Which lock a select inside a write transaction takes on the rows it reads, on
/// PostgreSQL (SQLite's `BEGIN IMMEDIATE` already serializes writers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowLock {
    None,
    /// `FOR SHARE`: the rows cannot be changed or deleted until the transaction ends (a
    /// lookup target while a record that refers to it is saved).
    Share,
    /// `FOR UPDATE`: the rows are this transaction's to change.
    Update,
}

/// The statement for `query`, locking the selected rows as `lock` says on PostgreSQL.
pub(crate) fn select_statement(
    dialect: Dialect,
    query: &SelectQuery<'_>,
    lock: RowLock,
) -> Result<SelectPlan, StoreError> {
    let columns = ObjectColumns::of(query.object);
    let sort = effective_sort(&query.sort);
    let sort_columns: Vec<SortColumn> = sort
        .iter()
        .map(|term| {
            Ok(SortColumn {
                storage: columns.storage(&term.column)?,
                nullable: !columns.not_null(&term.column),
            })
        })
        .collect::<Result<_, StoreError>>()?;

    let mut names: Vec<String> = match &query.columns {
        None => columns.names().map(str::to_owned).collect(),
        Some(requested) => requested.clone(),
    };
    for required in std::iter::once("id").chain(sort.iter().map(|term| term.column.as_str())) {
        if !names.iter().any(|name| name == required) {
            names.push(required.to_owned());
        }
    }
    let mut shapes = Vec::with_capacity(names.len());
    let mut statement = Statement::new(dialect, columns.table());
    statement.push("SELECT ");
    for (index, name) in names.iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        shapes.push(Shape::Stored(columns.storage(name)?));
        statement.push_identifier(name);
    }
    push_from_where(&mut statement, &columns, &query.condition, query.deleted)?;
    if let Some(after) = &query.after {
        if after.len() != sort.len() {
            return Err(statement.invalid(format!(
                "the cursor has {} values but the order has {} columns ({})",
                after.len(),
                sort.len(),
                sort.iter()
                    .map(|term| term.column.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        statement.push(" AND ");
        push_keyset(&mut statement, &sort, &sort_columns, after)?;
    }
    statement.push(" ORDER BY ");
    for (index, (term, column)) in sort.iter().zip(&sort_columns).enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.push_identifier(&term.column);
        statement.push(match (dialect, term.descending, column.nullable) {
            (Dialect::Postgres, false, true) => " ASC NULLS FIRST",
            (Dialect::Postgres, true, true) => " DESC NULLS LAST",
            (_, false, _) => " ASC",
            (_, true, _) => " DESC",
        });
    }
    if let Some(limit) = query.limit {
        statement.push(" LIMIT ");
        statement.push_value(&Value::Integer(i64::from(limit)), Storage::Integer)?;
    }
    if dialect == Dialect::Postgres {
        match lock {
            RowLock::None => {}
            RowLock::Share => statement.push(" FOR SHARE"),
            RowLock::Update => statement.push(" FOR UPDATE"),
        }
    }
    Ok(SelectPlan {
        statement,
        names,
        shapes,
    })
}

/// `SELECT count(*)` of the records matching `condition`.
pub(crate) fn count_statement(
    dialect: Dialect,
    object: &Object,
    condition: &Condition,
    deleted: Deleted,
) -> Result<(Statement, Vec<Shape>), StoreError> {
    let columns = ObjectColumns::of(object);
    let mut statement = Statement::new(dialect, columns.table());
    statement.push("SELECT count(*)");
    push_from_where(&mut statement, &columns, condition, deleted)?;
    Ok((statement, vec![Shape::Count]))
}

/// ` FROM "table" WHERE <recycle bin> AND <condition>`.
pub(crate) fn push_from_where(
    statement: &mut Statement,
    columns: &ObjectColumns<'_>,
    condition: &Condition,
    deleted: Deleted,
) -> Result<(), StoreError> {
    statement.push(" FROM ");
    statement.push_identifier(columns.table());
    statement.push(" WHERE ");
    push_deleted(statement, deleted);
    statement.push(" AND ");
    push_condition(statement, columns, condition)
}

pub(crate) fn push_deleted(statement: &mut Statement, deleted: Deleted) {
    match deleted {
        Deleted::Exclude => {
            statement.push_identifier("deleted_at");
            statement.push(" IS NULL");
        }
        Deleted::Only => {
            statement.push_identifier("deleted_at");
            statement.push(" IS NOT NULL");
        }
        Deleted::Include => statement.push("TRUE"),
    }
}

/// What the keyset predicate needs to know of a sort column.
#[derive(Debug, Clone, Copy)]
struct SortColumn {
    storage: Storage,
    nullable: bool,
}

/// Rows strictly after `after` in the order `sort` (see the module comment).
fn push_keyset(
    statement: &mut Statement,
    sort: &[Sort],
    columns: &[SortColumn],
    after: &[Value],
) -> Result<(), StoreError> {
    statement.push("(");
    // A plain range bound on the first column lets an index skip the rows before the cursor.
    if let (Some(first), Some(column), Some(value)) = (sort.first(), columns.first(), after.first())
        && !value.is_null()
        && (!first.descending || !column.nullable)
    {
        statement.push_identifier(&first.column);
        statement.push(if first.descending { " <= " } else { " >= " });
        statement.push_value(value, column.storage)?;
        statement.push(" AND ");
    }
    statement.push("(");
    let mut terms = 0;
    for (position, term) in sort.iter().enumerate() {
        let value = &after[position];
        if term.descending && value.is_null() {
            // Nothing sorts after NULL in descending order.
            continue;
        }
        if terms > 0 {
            statement.push(" OR ");
        }
        terms += 1;
        statement.push("(");
        for (earlier, earlier_term) in sort[..position].iter().enumerate() {
            statement.push_identifier(&earlier_term.column);
            if after[earlier].is_null() {
                statement.push(" IS NULL");
            } else {
                statement.push(" = ");
                statement.push_value(&after[earlier], columns[earlier].storage)?;
            }
            statement.push(" AND ");
        }
        let name = &term.column;
        let column = columns[position];
        match (term.descending, value.is_null()) {
            (false, true) => {
                statement.push_identifier(name);
                statement.push(" IS NOT NULL");
            }
            (false, false) => {
                statement.push_identifier(name);
                statement.push(" > ");
                statement.push_value(value, column.storage)?;
            }
            (true, _) if !column.nullable => {
                statement.push_identifier(name);
                statement.push(" < ");
                statement.push_value(value, column.storage)?;
            }
            (true, _) => {
                statement.push("(");
                statement.push_identifier(name);
                statement.push(" < ");
                statement.push_value(value, column.storage)?;
                statement.push(" OR ");
                statement.push_identifier(name);
                statement.push(" IS NULL)");
            }
        }
        statement.push(")");
    }
    if terms == 0 {
        statement.push("FALSE");
    }
    statement.push("))");
    Ok(())
}

/// Runs a planned select and names each row's values.
pub(crate) async fn run_select(
    connection: &mut Connection<'_>,
    plan: &SelectPlan,
) -> Result<Vec<Row>, StoreError> {
    let rows = fetch(connection, &plan.statement, &plan.shapes).await?;
    Ok(rows
        .into_iter()
        .map(|values| plan.names.iter().cloned().zip(values).collect())
        .collect())
}
