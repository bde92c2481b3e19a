//! The audit trail (`keel_audit`): one row per changed field of a record, written inside the
//! record's transaction and read back oldest first.
//!
//! Old and new values are JSON documents as the API shows them; a JSON `null` is kept as SQL
//! NULL and read back as `null`. Entries of one save share their time and keep their order
//! through their UUIDv7 ids. This module does not compute which fields changed (the runtime
//! does) and does not hide fields a reader may not see.

use chrono::{DateTime, Utc};
use keel_meta::{Storage, Value};

use super::execute::{Shape, fetch};
use super::statement::{Param, Statement};
use crate::db::{Connection, Db, Dialect};
use crate::error::StoreError;

pub(crate) const TABLE: &str = "keel_audit";
const COLUMNS: [&str; 9] = [
    "id",
    "object",
    "record_id",
    "at",
    "by",
    "action",
    "field",
    "old",
    "new",
];
/// Rows per INSERT, well under every parameter limit.
const ROWS_PER_STATEMENT: usize = 1_000;

/// One field change of one record.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    pub object: String,
    pub record_id: String,
    pub at: DateTime<Utc>,
    /// The user id, or `None` for the system (rules, imports without a user).
    pub by: Option<String>,
    pub field: String,
    pub old: serde_json::Value,
    pub new: serde_json::Value,
    /// `create`, `update`, `delete` or `restore`.
    pub action: String,
}

/// The audit trail of one record, oldest first.
pub async fn history(
    db: &Db,
    object: &str,
    record_id: &str,
) -> Result<Vec<AuditEntry>, StoreError> {
    read_entries(db, |statement| {
        statement.push(" WHERE \"object\" = ");
        statement.push_value(&Value::Text(object.to_owned()), Storage::Text)?;
        statement.push(" AND \"record_id\" = ");
        statement.push_value(&Value::Text(record_id.to_owned()), Storage::Text)?;
        statement.push(" ORDER BY \"at\", \"id\"");
        Ok(())
    })
    .await
}

/// Appends `entries` outside any record transaction (e.g. a record of who looked up
/// duplicates, which changes nothing else).
pub async fn append(db: &Db, entries: &[AuditEntry]) -> Result<(), StoreError> {
    let mut pooled = db.acquire().await?;
    write_audit(&mut pooled.connection(), entries).await
}

/// The newest `limit` entries about any of `objects` (e.g. the access changes kept under
/// `keel_users`, `keel_departments` and `keel_roles`), newest first.
pub async fn recent(db: &Db, objects: &[&str], limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
    read_entries(db, |statement| {
        statement.push(" WHERE \"object\" IN (");
        for (index, object) in objects.iter().enumerate() {
            if index > 0 {
                statement.push(", ");
            }
            statement.push_value(&Value::Text((*object).to_owned()), Storage::Text)?;
        }
        if objects.is_empty() {
            statement.push("NULL");
        }
        statement.push(") ORDER BY \"at\" DESC, \"id\" DESC LIMIT ");
        statement.push_value(&Value::Integer(i64::from(limit)), Storage::Integer)?;
        Ok(())
    })
    .await
}

/// The newest `limit` entries written by the user `by` about any of `objects`, newest
/// first (one save writes one entry per changed field, so a record may come several times).
pub async fn changed_by(
    db: &Db,
    by: &str,
    objects: &[&str],
    limit: u32,
) -> Result<Vec<AuditEntry>, StoreError> {
    read_entries(db, |statement| {
        statement.push(" WHERE \"by\" = ");
        statement.push_value(&Value::Text(by.to_owned()), Storage::Text)?;
        statement.push(" AND \"object\" IN (");
        for (index, object) in objects.iter().enumerate() {
            if index > 0 {
                statement.push(", ");
            }
            statement.push_value(&Value::Text((*object).to_owned()), Storage::Text)?;
        }
        if objects.is_empty() {
            statement.push("NULL");
        }
        statement.push(") ORDER BY \"at\" DESC, \"id\" DESC LIMIT ");
        statement.push_value(&Value::Integer(i64::from(limit)), Storage::Integer)?;
        Ok(())
    })
    .await
}

/// Audit entries selected by the rest of the statement that `tail` appends.
async fn read_entries(
    db: &Db,
    tail: impl FnOnce(&mut Statement) -> Result<(), StoreError>,
) -> Result<Vec<AuditEntry>, StoreError> {
    let dialect = db.dialect();
    let mut statement = Statement::new(dialect, TABLE);
    statement.push("SELECT \"object\", \"record_id\", \"at\", \"by\", \"action\", \"field\", ");
    statement.push(match dialect {
        Dialect::Sqlite => "\"old\", \"new\"",
        Dialect::Postgres => "CAST(\"old\" AS text), CAST(\"new\" AS text)",
    });
    statement.push(" FROM \"keel_audit\"");
    tail(&mut statement)?;
    let text = Shape::Stored(Storage::Text);
    let shapes = [
        text,
        text,
        Shape::Stored(Storage::Datetime),
        text,
        text,
        text,
        text,
        text,
    ];
    let mut pooled = db.acquire().await?;
    let rows = fetch(&mut pooled.connection(), &statement, &shapes).await?;
    rows.into_iter().map(entry_of_row).collect()
}

fn entry_of_row(row: Vec<Value>) -> Result<AuditEntry, StoreError> {
    let unreadable = |what: String| StoreError::UnreadableValue {
        what: format!("an audit row {what}"),
    };
    let [object, record_id, at, by, action, field, old, new] =
        <[Value; 8]>::try_from(row).map_err(|row| unreadable(format!("{row:?}")))?;
    match (object, record_id, at, by, action, field) {
        (
            Value::Text(object),
            Value::Text(record_id),
            Value::Datetime(at),
            by @ (Value::Text(_) | Value::Null),
            Value::Text(action),
            Value::Text(field),
        ) => Ok(AuditEntry {
            object,
            record_id,
            at,
            by: match by {
                Value::Text(by) => Some(by),
                _ => None,
            },
            field,
            old: document(old)?,
            new: document(new)?,
            action,
        }),
        other => Err(unreadable(format!("{other:?}"))),
    }
}

/// A stored old or new value: JSON text, or NULL for `null`.
fn document(value: Value) -> Result<serde_json::Value, StoreError> {
    match value {
        Value::Text(text) => {
            serde_json::from_str(&text).map_err(|error| StoreError::UnreadableValue {
                what: format!("audit value `{text}` is not JSON ({error})"),
            })
        }
        _ => Ok(serde_json::Value::Null),
    }
}

/// Appends `entries` to the audit trail on `connection` (inside the caller's transaction).
pub(crate) async fn write_audit(
    connection: &mut Connection<'_>,
    entries: &[AuditEntry],
) -> Result<(), StoreError> {
    for statement in audit_insert_statements(connection.dialect(), entries)? {
        super::execute::execute(connection, &statement)
            .await?
            .map_err(StoreError::query("recording the audit trail"))?;
    }
    Ok(())
}

/// Multi-row INSERTs of `entries` into `keel_audit`.
pub(crate) fn audit_insert_statements(
    dialect: Dialect,
    entries: &[AuditEntry],
) -> Result<Vec<Statement>, StoreError> {
    let mut statements = Vec::new();
    for chunk in entries.chunks(ROWS_PER_STATEMENT) {
        let mut statement = Statement::new(dialect, TABLE);
        statement.push("INSERT INTO ");
        statement.push_identifier(TABLE);
        statement.push(" (");
        for (index, column) in COLUMNS.iter().enumerate() {
            if index > 0 {
                statement.push(", ");
            }
            statement.push_identifier(column);
        }
        statement.push(") VALUES ");
        for (row_index, entry) in chunk.iter().enumerate() {
            if row_index > 0 {
                statement.push(", ");
            }
            statement.push("(");
            let text = |text: &str| Value::Text(text.to_owned());
            let values = [
                text(&uuid::Uuid::now_v7().to_string()),
                text(&entry.object),
                text(&entry.record_id),
                Value::Datetime(entry.at),
                entry.by.as_deref().map_or(Value::Null, text),
                text(&entry.action),
                text(&entry.field),
            ];
            for value in &values {
                let storage = match value {
                    Value::Datetime(_) => Storage::Datetime,
                    _ => Storage::Text,
                };
                statement.push_value(value, storage)?;
                statement.push(", ");
            }
            statement.push_param(json_param(dialect, &entry.old));
            statement.push(", ");
            statement.push_param(json_param(dialect, &entry.new));
            statement.push(")");
        }
        statements.push(statement);
    }
    Ok(statements)
}

/// A JSON document as a parameter of a JSON column; `null` is SQL NULL.
fn json_param(dialect: Dialect, document: &serde_json::Value) -> Param {
    match (dialect, document) {
        (_, serde_json::Value::Null) => match dialect {
            Dialect::Sqlite => Param::Text(None),
            Dialect::Postgres => Param::Json(None),
        },
        (Dialect::Sqlite, document) => Param::Text(Some(document.to_string())),
        (Dialect::Postgres, document) => Param::Json(Some(document.clone())),
    }
}
