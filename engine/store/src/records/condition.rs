//! A typed [`Condition`] as a SQL predicate with bound values.
//!
//! Every leaf is *two-valued*: it is true or false, never SQL's unknown, even when the column
//! is NULL. An empty field equals no value, `Ne` matches it, and so `Not` is the exact
//! complement of what it wraps (`NOT (a = 1)` in plain SQL would skip rows where `a` is NULL).
//! `Like` and `Contains` are case-insensitive: `ILIKE` on PostgreSQL, `LIKE` on SQLite, whose
//! case folding covers ASCII letters only (so `É` does not match `é` there, while it does on
//! PostgreSQL). Non-text columns are matched through a text rendering that is the same on
//! both databases (`1999.00`, `true`, `2026-01-02`, `2026-01-02T03:04:05.000000Z`).
//!
//! This module does not decide which conditions a user may ask for (the runtime does), and
//! it never writes a value into the SQL text.

use keel_meta::{Storage, Value};

use super::columns::ObjectColumns;
use super::statement::{Param, Statement};
use super::{CompareOp, Condition};
use crate::db::Dialect;
use crate::error::StoreError;

/// Appends `condition` to `statement` as a parenthesised predicate.
pub(crate) fn push_condition(
    statement: &mut Statement,
    columns: &ObjectColumns<'_>,
    condition: &Condition,
) -> Result<(), StoreError> {
    match condition {
        Condition::Always => statement.push("TRUE"),
        Condition::Never => statement.push("FALSE"),
        Condition::All(parts) => push_joined(statement, columns, parts, " AND ", "TRUE")?,
        Condition::Any(parts) => push_joined(statement, columns, parts, " OR ", "FALSE")?,
        Condition::Not(inner) => {
            statement.push("(NOT ");
            push_condition(statement, columns, inner)?;
            statement.push(")");
        }
        Condition::Compare { column, op, value } => {
            push_compare(statement, columns, column, *op, value)?;
        }
        Condition::In { column, values } => push_in(statement, columns, column, values)?,
        Condition::IsNull { column, null } => {
            columns.storage(column)?;
            statement.push("(");
            statement.push_identifier(column);
            statement.push(if *null { " IS NULL)" } else { " IS NOT NULL)" });
        }
        Condition::Like { column, pattern } => {
            let storage = columns.storage(column)?;
            push_like(statement, column, storage, like_pattern(pattern));
        }
        Condition::Contains {
            columns: names,
            text,
        } => {
            if text.is_empty() {
                // Every value, and every empty field, contains the empty text.
                statement.push("TRUE");
            } else if names.is_empty() {
                statement.push("FALSE");
            } else {
                statement.push("(");
                for (index, name) in names.iter().enumerate() {
                    if index > 0 {
                        statement.push(" OR ");
                    }
                    let storage = columns.storage(name)?;
                    push_like(statement, name, storage, contains_pattern(text));
                }
                statement.push(")");
            }
        }
        Condition::OwnerIn(owners) => {
            let values: Vec<Value> = owners.iter().cloned().map(Value::Text).collect();
            push_in(statement, columns, "owner", &values)?;
        }
        Condition::HasAny { column, keys } => push_has_any(statement, columns, column, keys)?,
        Condition::OwnerInTeamOf(user) => {
            columns.storage("owner")?;
            statement.push(
                "(\"owner\" IS NOT NULL AND \"owner\" IN (SELECT keel_t.member_id \
                 FROM keel_team_members keel_t WHERE keel_t.manager_id = ",
            );
            statement.push_value(&Value::Text(user.clone()), Storage::Text)?;
            statement.push("))");
        }
        Condition::OwnerInDepartmentOf(user) => {
            columns.storage("owner")?;
            statement.push("(\"owner\" IS NOT NULL AND (\"owner\" = ");
            statement.push_value(&Value::Text(user.clone()), Storage::Text)?;
            statement.push(
                " OR \"owner\" IN (SELECT keel_u.id FROM keel_users keel_u \
                 JOIN keel_department_tree keel_d ON keel_d.descendant_id = keel_u.department_id \
                 JOIN keel_users keel_me ON keel_me.department_id = keel_d.ancestor_id \
                 WHERE keel_me.id = ",
            );
            statement.push_value(&Value::Text(user.clone()), Storage::Text)?;
            statement.push(")))");
        }
    }
    Ok(())
}

fn push_joined(
    statement: &mut Statement,
    columns: &ObjectColumns<'_>,
    parts: &[Condition],
    separator: &str,
    empty: &str,
) -> Result<(), StoreError> {
    if parts.is_empty() {
        statement.push(empty);
        return Ok(());
    }
    statement.push("(");
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            statement.push(separator);
        }
        push_condition(statement, columns, part)?;
    }
    statement.push(")");
    Ok(())
}

fn push_compare(
    statement: &mut Statement,
    columns: &ObjectColumns<'_>,
    column: &str,
    op: CompareOp,
    value: &Value,
) -> Result<(), StoreError> {
    let storage = columns.storage(column)?;
    if value.is_null() {
        // Comparing with "empty": equal means empty, not equal means filled, and nothing is
        // greater or smaller than empty.
        match op {
            CompareOp::Eq => push_is_null(statement, column, true),
            CompareOp::Ne => push_is_null(statement, column, false),
            _ => statement.push("FALSE"),
        }
        return Ok(());
    }
    let is_list = matches!(value, Value::List(_)) || storage == Storage::Json;
    if is_list && !(matches!(value, Value::List(_)) && storage == Storage::Json) {
        return Err(statement.invalid(format!(
            "`{column}` holds a list: compare it with a list, or use HasAny for single keys"
        )));
    }
    if is_list && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
        return Err(statement.invalid(format!(
            "lists have no order: `{column}` can only be compared for equality"
        )));
    }
    let operator = match op {
        CompareOp::Eq => " = ",
        CompareOp::Ne => " <> ",
        CompareOp::Gt => " > ",
        CompareOp::Gte => " >= ",
        CompareOp::Lt => " < ",
        CompareOp::Lte => " <= ",
    };
    statement.push("(");
    statement.push_identifier(column);
    if op == CompareOp::Ne {
        statement.push(" IS NULL OR ");
    } else {
        statement.push(" IS NOT NULL AND ");
    }
    statement.push_identifier(column);
    statement.push(operator);
    statement.push_value(value, storage)?;
    statement.push(")");
    Ok(())
}

fn push_is_null(statement: &mut Statement, column: &str, null: bool) {
    statement.push("(");
    statement.push_identifier(column);
    statement.push(if null { " IS NULL)" } else { " IS NOT NULL)" });
}

/// `column IN (values)`; a NULL among the values matches empty fields.
fn push_in(
    statement: &mut Statement,
    columns: &ObjectColumns<'_>,
    column: &str,
    values: &[Value],
) -> Result<(), StoreError> {
    let storage = columns.storage(column)?;
    if storage == Storage::Json || values.iter().any(|value| matches!(value, Value::List(_))) {
        return Err(statement.invalid(format!(
            "`{column}`: IN takes single values; use HasAny for the keys of a list"
        )));
    }
    let present: Vec<&Value> = values.iter().filter(|value| !value.is_null()).collect();
    let with_null = present.len() < values.len();
    if present.is_empty() {
        if with_null {
            push_is_null(statement, column, true);
        } else {
            statement.push("FALSE");
        }
        return Ok(());
    }
    statement.push("(");
    if with_null {
        statement.push_identifier(column);
        statement.push(" IS NULL OR ");
    }
    statement.push("(");
    statement.push_identifier(column);
    statement.push(" IS NOT NULL AND ");
    statement.push_identifier(column);
    statement.push(" IN (");
    for (index, value) in present.into_iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.push_value(value, storage)?;
    }
    statement.push(")))");
    Ok(())
}

/// Whether a list column holds any of `keys`.
fn push_has_any(
    statement: &mut Statement,
    columns: &ObjectColumns<'_>,
    column: &str,
    keys: &[String],
) -> Result<(), StoreError> {
    if columns.storage(column)? != Storage::Json {
        return Err(statement.invalid(format!("`{column}` is not a list")));
    }
    if keys.is_empty() {
        statement.push("FALSE");
        return Ok(());
    }
    // A NULL list has no elements, so EXISTS is false for it: two-valued as it is.
    statement.push("EXISTS (SELECT 1 FROM ");
    statement.push(match statement.dialect {
        Dialect::Sqlite => "json_each(",
        Dialect::Postgres => "jsonb_array_elements_text(",
    });
    statement.push_identifier(columns.table());
    statement.push(".");
    statement.push_identifier(column);
    statement.push(match statement.dialect {
        Dialect::Sqlite => ") WHERE json_each.value IN (",
        Dialect::Postgres => ") AS keel_element(value) WHERE keel_element.value IN (",
    });
    for (index, key) in keys.iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.push_param(Param::Text(Some(key.clone())));
    }
    statement.push("))");
    Ok(())
}

/// `column`, as text, case-insensitively like `pattern` (already escaped with `\`).
fn push_like(statement: &mut Statement, column: &str, storage: Storage, pattern: String) {
    statement.push("(");
    statement.push_identifier(column);
    statement.push(" IS NOT NULL AND ");
    push_text_rendering(statement, column, storage);
    statement.push(match statement.dialect {
        Dialect::Sqlite => " LIKE ",
        Dialect::Postgres => " ILIKE ",
    });
    statement.push_param(Param::Text(Some(pattern)));
    statement.push(" ESCAPE '\\')");
}

/// `column` as the same text on both databases, for `Like` and `Contains`.
fn push_text_rendering(statement: &mut Statement, column: &str, storage: Storage) {
    let quoted = crate::naming::quote(column);
    let c = quoted.as_str();
    let rendering = match (statement.dialect, storage) {
        (Dialect::Sqlite, Storage::Text | Storage::Json | Storage::Date | Storage::Datetime) => {
            c.to_owned()
        }
        (Dialect::Sqlite, Storage::Integer) => format!("CAST({c} AS TEXT)"),
        (Dialect::Sqlite, Storage::Decimal { scale }) => sqlite_decimal_text(c, scale),
        (Dialect::Sqlite, Storage::Boolean) => {
            format!("(CASE WHEN {c} THEN 'true' ELSE 'false' END)")
        }
        (Dialect::Postgres, Storage::Text) => c.to_owned(),
        (Dialect::Postgres, Storage::Date) => format!("to_char({c}, 'YYYY-MM-DD')"),
        (Dialect::Postgres, Storage::Datetime) => {
            format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
        }
        // jsonb renders `["a", "b"]` where SQLite keeps `["a","b"]`: a key or a part of one
        // matches alike.
        (Dialect::Postgres, _) => format!("CAST({c} AS text)"),
    };
    statement.push(&rendering);
}

/// A SQLite scaled integer as decimal text: `199999` at scale 2 is `'1999.99'`, matching
/// PostgreSQL's `numeric(18,2)::text`.
fn sqlite_decimal_text(c: &str, scale: u32) -> String {
    if scale == 0 {
        return format!("CAST({c} AS TEXT)");
    }
    let divisor = 10_i64.saturating_pow(scale);
    let zeros = "0".repeat(scale as usize);
    format!(
        "(CASE WHEN {c} < 0 THEN '-' ELSE '' END || (abs({c}) / {divisor}) || '.' || \
         substr('{zeros}' || (abs({c}) % {divisor}), -{scale}))"
    )
}

/// A `Like` pattern (`*` is any run of characters, the rest literal) as a SQL LIKE pattern
/// with `\` as the escape character.
pub(crate) fn like_pattern(pattern: &str) -> String {
    let mut sql = String::with_capacity(pattern.len() + 4);
    for character in pattern.chars() {
        match character {
            '*' => sql.push('%'),
            '%' | '_' | '\\' => {
                sql.push('\\');
                sql.push(character);
            }
            other => sql.push(other),
        }
    }
    sql
}

/// A LIKE pattern matching any value that contains `text` literally.
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut sql = String::with_capacity(text.len() + 4);
    sql.push('%');
    for character in text.chars() {
        if matches!(character, '%' | '_' | '\\') {
            sql.push('\\');
        }
        sql.push(character);
    }
    sql.push('%');
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_sql_wildcards_and_translate_stars() {
        assert_eq!(like_pattern("张*"), "张%");
        assert_eq!(like_pattern("50%_off*"), "50\\%\\_off%");
        assert_eq!(like_pattern("a\\b"), "a\\\\b");
        assert_eq!(contains_pattern("10%"), "%10\\%%");
    }
}
