//! Normalised duplicate keys (查重) in one indexed table, `keel_duplicate_keys`.
//!
//! Each live record has one row per duplicate key of its object whose parts are all filled:
//! `(object, key, value, record_id)`, where `key` names the key's fields (`company+name`) and
//! `value` is the normalised value — the digits of a phone field, the trimmed and lower-cased
//! text of any other text field, the JSON form of anything else; a key of several fields is
//! the JSON array of its parts (which no single part can imitate), and a value longer than
//! [`MAX_PLAIN_VALUE`] bytes is stored as its SHA-256. Each row also holds `hash`, 64 bits of
//! the SHA-256 of object, key and value, and only that is indexed: a duplicate check is one
//! lookup of the hash (the text compared on the few rows found) instead of a scan of the
//! object table, and the index is a third the size of one over the text.
//!
//! The rows are kept by the [`RecordWrite`](super::RecordWrite) functions themselves —
//! insert, update (when a key field or `deleted_at` changes) and set-based update — in the
//! same transaction as the record, so no save path can skip them; a record in the recycle
//! bin has none. [`sync`] fills them for rows that predate the table, or whose object's keys
//! changed, by comparing a fingerprint of each object's key definitions with the one stored
//! in `keel_duplicate_definitions`; it runs on every metadata apply and is idempotent.
//!
//! This module does not decide what a match reveals or whether a `block` key refuses a save
//! (the runtime does); it only stores, looks up and locks normalised values.

use std::collections::HashMap;

use keel_meta::{DuplicateKey, FieldKind, Object, Schema, Storage, Value};
use sha2::{Digest as _, Sha256};

use super::execute::{Shape, execute, fetch};
use super::select::{RowLock, run_select, select_statement};
use super::statement::Statement;
use super::{Condition, Row, SelectQuery, Sort};
use crate::db::{Connection, Db, Dialect};
use crate::error::StoreError;

/// The table of normalised keys.
pub const KEYS_TABLE: &str = "keel_duplicate_keys";
/// One row per object: the fingerprint of the key definitions its keys were built with.
pub const DEFINITIONS_TABLE: &str = "keel_duplicate_definitions";
/// Longer normalised values are stored as `sha256:<hex>`, so the index stays small (and
/// within PostgreSQL's limit on index entries) whatever the fields hold.
const MAX_PLAIN_VALUE: usize = 200;
/// Rows read per step when filling keys for existing records.
const FILL_CHUNK: u32 = 2_000;
/// Key rows per INSERT (5 parameters each), well under both databases' limits.
const ROWS_PER_INSERT: usize = 1_000;
/// Record ids per `IN (…)` when keys are refreshed for many records.
const IDS_PER_STATEMENT: usize = 1_000;

/// One normalised key of one record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyValue {
    /// The key's position in the object's `duplicates`.
    pub index: usize,
    /// The key's name in the table: its fields joined with `+`.
    pub key: String,
    pub value: String,
}

/// A record whose key matched a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMatch {
    /// The key's position in the object's `duplicates`.
    pub index: usize,
    pub record_id: String,
}

/// The name of `key` in the table: its fields joined with `+`.
pub fn key_name(key: &DuplicateKey) -> String {
    key.fields.join("+")
}

/// The normalised value of one field, or `None` when it is empty (an empty part means the
/// key is not indexed and matches nothing).
fn normalised_part(object: &Object, field: &str, value: &Value) -> Option<String> {
    let phone = object
        .field(field)
        .is_some_and(|field| matches!(field.kind, FieldKind::Phone));
    match value {
        Value::Null => None,
        Value::Text(text) if phone => {
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            (!digits.is_empty()).then_some(digits)
        }
        Value::Text(text) => {
            let folded = text.trim().to_lowercase();
            (!folded.is_empty()).then_some(folded)
        }
        Value::List(items) if items.is_empty() => None,
        other => Some(other.to_json().to_string()),
    }
}

/// The normalised value of `key` for `row`, or `None` when a part is empty.
pub fn normalised_value(object: &Object, key: &DuplicateKey, row: &Row) -> Option<String> {
    let mut parts = Vec::with_capacity(key.fields.len());
    for field in &key.fields {
        parts.push(normalised_part(
            object,
            field,
            row.get(field).unwrap_or(&Value::Null),
        )?);
    }
    let value = match parts.as_slice() {
        [only] => only.clone(),
        _ => serde_json::Value::from(parts).to_string(),
    };
    if value.len() > MAX_PLAIN_VALUE {
        return Some(format!("sha256:{}", hex::encode(Sha256::digest(&value))));
    }
    Some(value)
}

/// Every key of `object` that `row` fills, in the order of the object's `duplicates`.
pub fn key_values(object: &Object, row: &Row) -> Vec<KeyValue> {
    object
        .duplicates
        .iter()
        .enumerate()
        .filter_map(|(index, key)| {
            Some(KeyValue {
                index,
                key: key_name(key),
                value: normalised_value(object, key, row)?,
            })
        })
        .collect()
}

/// Whether a change of these columns changes a record's keys.
pub(crate) fn touches_keys(object: &Object, columns: impl IntoIterator<Item = String>) -> bool {
    if object.duplicates.is_empty() {
        return false;
    }
    columns.into_iter().any(|column| {
        column == "deleted_at"
            || object
                .duplicates
                .iter()
                .any(|key| key.fields.contains(&column))
    })
}

/// The fingerprint of `object`'s key definitions: the keys, their fields and how each field
/// is normalised. A change of it means the stored keys must be rebuilt.
fn fingerprint(object: &Object) -> String {
    let definition: Vec<serde_json::Value> = object
        .duplicates
        .iter()
        .map(|key| {
            let parts: Vec<serde_json::Value> = key
                .fields
                .iter()
                .map(|name| {
                    let kind = match object.field(name) {
                        Some(field) if matches!(field.kind, FieldKind::Phone) => {
                            "digits".to_owned()
                        }
                        Some(field) if field.storage() == Storage::Text => "folded".to_owned(),
                        Some(field) => format!("{:?}", field.storage()),
                        None => "missing".to_owned(),
                    };
                    serde_json::json!([name, kind])
                })
                .collect();
            serde_json::Value::from(parts)
        })
        .collect();
    // Version 3 of the normalisation, row ids and hashes; bump it when `normalised_part`,
    // `row_id` or `value_hash` changes, so that every stored key is rebuilt.
    let text = serde_json::json!({"normalisation": 3, "keys": definition}).to_string();
    hex::encode(Sha256::digest(text))
}

/// The first 8 bytes of the SHA-256 of object, key and value: the indexed `hash` of a key
/// row, and the advisory-lock key of the value on PostgreSQL.
fn value_hash(object: &str, key: &KeyValue) -> i64 {
    let digest = Sha256::digest(format!("{object}\u{0}{}\u{0}{}", key.key, key.value));
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// Takes a transaction-scoped lock on each of `keys` (PostgreSQL; SQLite's `BEGIN IMMEDIATE`
/// already serialises writers), in a fixed order so two saves never wait on each other in
/// a cycle. Held until the transaction ends, so a check and the save it allows are atomic.
pub(crate) async fn lock(
    connection: &mut Connection<'_>,
    object: &str,
    keys: &[KeyValue],
) -> Result<(), StoreError> {
    if connection.dialect() != Dialect::Postgres || keys.is_empty() {
        return Ok(());
    }
    let mut hashes: Vec<i64> = keys.iter().map(|key| value_hash(object, key)).collect();
    hashes.sort_unstable();
    hashes.dedup();
    // One statement for all of them; PostgreSQL evaluates a select list left to right.
    let mut statement = Statement::new(Dialect::Postgres, KEYS_TABLE);
    statement.push("SELECT ");
    for (position, hash) in hashes.iter().enumerate() {
        if position > 0 {
            statement.push(", ");
        }
        statement.push("pg_advisory_xact_lock(");
        statement.push_value(&Value::Integer(*hash), Storage::Integer)?;
        statement.push(")::text");
    }
    let shapes = vec![Shape::Stored(Storage::Text); hashes.len()];
    fetch(connection, &statement, &shapes).await?;
    Ok(())
}

/// The records (other than `exclude`) holding each of `probes`, at most `per_key` per key
/// (any of them when more match), in key order and then by record id. One indexed query.
pub(crate) async fn find(
    connection: &mut Connection<'_>,
    object: &str,
    probes: &[KeyValue],
    exclude: Option<&str>,
    per_key: u32,
) -> Result<Vec<KeyMatch>, StoreError> {
    let Some(statement) = find_statement(connection.dialect(), object, probes, exclude, per_key)?
    else {
        return Ok(Vec::new());
    };
    let rows = fetch(connection, &statement, &FIND_SHAPES).await?;
    Ok(matches(probes, rows))
}

/// The columns [`find_statement`] selects: the probe's position and the record id.
pub(crate) const FIND_SHAPES: [Shape; 2] = [
    Shape::Stored(Storage::Integer),
    Shape::Stored(Storage::Text),
];

/// The query of [`find`]; `None` without probes.
pub(crate) fn find_statement(
    dialect: Dialect,
    object: &str,
    probes: &[KeyValue],
    exclude: Option<&str>,
    per_key: u32,
) -> Result<Option<Statement>, StoreError> {
    if probes.is_empty() {
        return Ok(None);
    }
    let mut statement = Statement::new(dialect, KEYS_TABLE);
    for (position, probe) in probes.iter().enumerate() {
        if position > 0 {
            statement.push(" UNION ALL ");
        }
        // The position and the limit are numbers of our own, written into the text: bound,
        // the LIMIT made SQLite re-prepare the statement on every run (measured: 6 % of a
        // create's samples in `sqlite3Reprepare`).
        statement.push(&format!("SELECT * FROM (SELECT CAST({position} AS BIGINT)"));
        statement
            .push(" AS \"probe\", \"record_id\" FROM \"keel_duplicate_keys\" WHERE \"hash\" = ");
        statement.push_value(&Value::Integer(value_hash(object, probe)), Storage::Integer)?;
        statement.push(" AND \"object\" = ");
        statement.push_value(&Value::Text(object.to_owned()), Storage::Text)?;
        statement.push(" AND \"key\" = ");
        statement.push_value(&Value::Text(probe.key.clone()), Storage::Text)?;
        statement.push(" AND \"value\" = ");
        statement.push_value(&Value::Text(probe.value.clone()), Storage::Text)?;
        if let Some(exclude) = exclude {
            statement.push(" AND \"record_id\" <> ");
            statement.push_value(&Value::Text(exclude.to_owned()), Storage::Text)?;
        }
        // No ORDER BY: on SQLite it made the planner walk an index in record order instead
        // of looking the value up (a scan of the object's keys per check). Which
        // `per_key` of many matches are reported does not matter; they are sorted below.
        statement.push(&format!(" LIMIT {per_key}) AS \"keel_p{position}\""));
    }
    Ok(Some(statement))
}

/// The rows of [`find_statement`] as matches, sorted by key and record id.
pub(crate) fn matches(probes: &[KeyValue], rows: Vec<Vec<Value>>) -> Vec<KeyMatch> {
    let mut matches = Vec::with_capacity(rows.len());
    for row in rows {
        if let [Value::Integer(position), Value::Text(record_id)] = row.as_slice()
            && let Some(probe) = usize::try_from(*position)
                .ok()
                .and_then(|position| probes.get(position))
        {
            matches.push(KeyMatch {
                index: probe.index,
                record_id: record_id.clone(),
            });
        }
    }
    matches.sort_by(|a, b| (a.index, &a.record_id).cmp(&(b.index, &b.record_id)));
    matches
}

/// [`find`] on a pooled connection.
pub async fn find_in_db(
    db: &Db,
    object: &str,
    probes: &[KeyValue],
    exclude: Option<&str>,
    per_key: u32,
) -> Result<Vec<KeyMatch>, StoreError> {
    let mut pooled = db.acquire().await?;
    find(&mut pooled.connection(), object, probes, exclude, per_key).await
}

/// Inserts the keys of `rows` (live ones only) of `object`.
pub(crate) async fn insert_rows(
    connection: &mut Connection<'_>,
    object: &Object,
    rows: &[Row],
) -> Result<(), StoreError> {
    for statement in insert_statements(connection.dialect(), object, rows)? {
        run(connection, &statement).await?;
    }
    Ok(())
}

/// The multi-row INSERTs of [`insert_rows`]; none when the rows fill no key.
pub(crate) fn insert_statements(
    dialect: Dialect,
    object: &Object,
    rows: &[Row],
) -> Result<Vec<Statement>, StoreError> {
    if object.duplicates.is_empty() {
        return Ok(Vec::new());
    }
    let mut entries: Vec<(&str, KeyValue)> = Vec::new();
    for row in rows {
        let live = row.get("deleted_at").is_none_or(Value::is_null);
        if let (true, Some(Value::Text(id))) = (live, row.get("id")) {
            entries.extend(
                key_values(object, row)
                    .into_iter()
                    .map(|key| (id.as_str(), key)),
            );
        }
    }
    let name = object.name.as_str();
    let mut statements = Vec::new();
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        let mut statement = Statement::new(dialect, KEYS_TABLE);
        statement.push(
            "INSERT INTO \"keel_duplicate_keys\" (\"id\", \"object\", \"key\", \"value\", \"record_id\", \"hash\") VALUES ",
        );
        for (position, (record_id, key)) in chunk.iter().enumerate() {
            if position > 0 {
                statement.push(", ");
            }
            statement.push("(");
            let id = row_id(name, record_id, &key.key);
            for (column, value) in [id.as_str(), name, &key.key, &key.value, record_id]
                .into_iter()
                .enumerate()
            {
                if column > 0 {
                    statement.push(", ");
                }
                statement.push_value(&Value::Text(value.to_owned()), Storage::Text)?;
            }
            statement.push(", ");
            statement.push_value(&Value::Integer(value_hash(name, key)), Storage::Integer)?;
            statement.push(")");
        }
        statement.push(
            " ON CONFLICT (\"id\") DO UPDATE SET \"value\" = excluded.\"value\", \"hash\" = excluded.\"hash\"",
        );
        statements.push(statement);
    }
    Ok(statements)
}

/// The DELETEs of every key row of the records `ids` of `object`, by row id: the stored
/// key names are the object's current ones (a change of them rebuilds every key, see
/// [`sync`]).
pub(crate) fn delete_statements(
    dialect: Dialect,
    object: &Object,
    ids: &[String],
) -> Result<Vec<Statement>, StoreError> {
    let keys: Vec<String> = object.duplicates.iter().map(key_name).collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut statements = Vec::new();
    for chunk in ids.chunks((IDS_PER_STATEMENT / keys.len()).max(1)) {
        let mut statement = Statement::new(dialect, KEYS_TABLE);
        statement.push("DELETE FROM \"keel_duplicate_keys\" WHERE \"id\" IN (");
        let row_ids = chunk
            .iter()
            .flat_map(|record_id| keys.iter().map(|key| row_id(&object.name, record_id, key)));
        for (position, row_id) in row_ids.enumerate() {
            if position > 0 {
                statement.push(", ");
            }
            statement.push_value(&Value::Text(row_id), Storage::Text)?;
        }
        statement.push(")");
        statements.push(statement);
    }
    Ok(statements)
}

/// The `id` of the row of `record_id`'s key `key`: `<object>/<record_id>/<key>`. One row
/// per record and key, so a repeated fill cannot store a key twice; the record comes first
/// so that a new record's keys land together at the end of the primary key (record ids are
/// time-ordered UUIDv7), and the rows of known records are deleted by id without an index
/// of their own.
fn row_id(object: &str, record_id: &str, key: &str) -> String {
    format!("{object}/{record_id}/{key}")
}

/// Brings the keys of the records `ids` of `object` in line with their stored rows: deletes
/// them, then inserts the keys of those still live.
pub(crate) async fn refresh(
    connection: &mut Connection<'_>,
    object: &Object,
    ids: &[String],
) -> Result<(), StoreError> {
    if object.duplicates.is_empty() {
        return Ok(());
    }
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        for statement in delete_statements(connection.dialect(), object, chunk)? {
            run(connection, &statement).await?;
        }
        let values: Vec<Value> = chunk.iter().cloned().map(Value::Text).collect();
        let query = SelectQuery {
            condition: Condition::In {
                column: "id".to_owned(),
                values,
            },
            columns: Some(key_columns(object)),
            ..SelectQuery::new(object)
        };
        let plan = select_statement(connection.dialect(), &query, RowLock::None)?;
        let rows = run_select(connection, &plan).await?;
        insert_rows(connection, object, &rows).await?;
    }
    Ok(())
}

/// `id` and every field some key of `object` names.
fn key_columns(object: &Object) -> Vec<String> {
    let mut columns = vec!["id".to_owned()];
    for field in object.duplicates.iter().flat_map(|key| &key.fields) {
        if !columns.contains(field) {
            columns.push(field.clone());
        }
    }
    columns
}

async fn run(connection: &mut Connection<'_>, statement: &Statement) -> Result<u64, StoreError> {
    execute(connection, statement)
        .await?
        .map_err(StoreError::query(format!("running `{}`", statement.sql)))
}

/// Fills the keys of every object whose key definitions changed since its keys were built
/// (or that never had them), and drops those of objects that no longer exist. Set-based:
/// one delete per object, then chunks of [`FILL_CHUNK`] records read in id order and their
/// keys written with multi-row inserts. Idempotent; runs inside the migration transaction.
pub(crate) async fn sync(
    connection: &mut Connection<'_>,
    schema: &Schema,
) -> Result<(), StoreError> {
    let mut statement = Statement::new(connection.dialect(), DEFINITIONS_TABLE);
    statement.push("SELECT \"id\", \"fingerprint\" FROM \"keel_duplicate_definitions\"");
    let text = Shape::Stored(Storage::Text);
    let stored: HashMap<String, String> = fetch(connection, &statement, &[text, text])
        .await?
        .into_iter()
        .filter_map(|row| match row.as_slice() {
            [Value::Text(id), Value::Text(fingerprint)] => Some((id.clone(), fingerprint.clone())),
            _ => None,
        })
        .collect();
    for name in stored.keys() {
        if schema.object(name).is_none() {
            clear(connection, name).await?;
            let mut statement = Statement::new(connection.dialect(), DEFINITIONS_TABLE);
            statement.push("DELETE FROM \"keel_duplicate_definitions\" WHERE \"id\" = ");
            statement.push_value(&Value::Text(name.clone()), Storage::Text)?;
            run(connection, &statement).await?;
        }
    }
    for object in schema.objects.values() {
        let wanted = fingerprint(object);
        if stored.get(&object.name) == Some(&wanted) {
            continue;
        }
        fill(connection, object).await?;
        let mut statement = Statement::new(connection.dialect(), DEFINITIONS_TABLE);
        statement
            .push("INSERT INTO \"keel_duplicate_definitions\" (\"id\", \"fingerprint\") VALUES (");
        statement.push_value(&Value::Text(object.name.clone()), Storage::Text)?;
        statement.push(", ");
        statement.push_value(&Value::Text(wanted), Storage::Text)?;
        statement.push(
            ") ON CONFLICT (\"id\") DO UPDATE SET \"fingerprint\" = excluded.\"fingerprint\"",
        );
        run(connection, &statement).await?;
    }
    Ok(())
}

async fn clear(connection: &mut Connection<'_>, object: &str) -> Result<(), StoreError> {
    let mut statement = Statement::new(connection.dialect(), KEYS_TABLE);
    statement.push("DELETE FROM \"keel_duplicate_keys\" WHERE \"object\" = ");
    statement.push_value(&Value::Text(object.to_owned()), Storage::Text)?;
    run(connection, &statement).await.map(drop)
}

/// Rebuilds every key of `object` from its live records.
async fn fill(connection: &mut Connection<'_>, object: &Object) -> Result<(), StoreError> {
    clear(connection, &object.name).await?;
    if object.duplicates.is_empty() {
        return Ok(());
    }
    let mut after: Option<Vec<Value>> = None;
    loop {
        let query = SelectQuery {
            sort: vec![Sort {
                column: "id".to_owned(),
                descending: false,
            }],
            after: after.take(),
            limit: Some(FILL_CHUNK),
            columns: Some(key_columns(object)),
            ..SelectQuery::new(object)
        };
        let plan = select_statement(connection.dialect(), &query, RowLock::None)?;
        let rows = run_select(connection, &plan).await?;
        insert_rows(connection, object, &rows).await?;
        match rows.last() {
            Some(last) if rows.len() == FILL_CHUNK as usize => {
                after = Some(vec![last.get("id").cloned().unwrap_or(Value::Null)]);
            }
            _ => return Ok(()),
        }
    }
}

/// Marks `object`'s keys as stale, so the next metadata apply rebuilds them: for tools that
/// write object tables directly (the benchmark generator).
pub async fn invalidate(db: &Db, object: &str) -> Result<(), StoreError> {
    let mut pooled = db.acquire().await?;
    let mut connection = pooled.connection();
    let mut statement = Statement::new(connection.dialect(), DEFINITIONS_TABLE);
    statement.push("DELETE FROM \"keel_duplicate_definitions\" WHERE \"id\" = ");
    statement.push_value(&Value::Text(object.to_owned()), Storage::Text)?;
    run(&mut connection, &statement).await.map(drop)
}
