//! CSV import through the write path: every row is validated, defaulted, computed and
//! audited like an API create, on behalf of the importing user.
//!
//! Imports are resumable and re-runnable without a journal, because every row carries a
//! stable record id and rows whose id already exists are skipped:
//!
//! - a row with an `id` cell (as `keel export` writes) is that record;
//! - any other row's id is derived from the row itself: the object, its non-empty cells by
//!   column name (so column order does not matter), and how many identical rows came before
//!   it in the file (so two identical rows are two records).
//!
//! So an import killed at any point and run again imports each row exactly once; after
//! fixing refused rows, running the same file again imports exactly the fixed rows (an
//! edited row is a new row; the unchanged ones are already there). Neither the file's name
//! nor a row's line number takes part: a file may be renamed, and rows removed or
//! reordered, between runs.

use std::collections::HashMap;
use std::path::Path;

use keel_meta::FieldKind;
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::RuntimeError;
use crate::actor::Actor;
use crate::csv_format::split_list;
use crate::records::{Input, RecordError, Records};

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// Data rows in the file.
    pub total: usize,
    pub created: usize,
    /// Rows whose record exists already (imported by an earlier run, or exported with their
    /// id from this database).
    pub skipped: usize,
    /// (line number in the file, why) for rows that were refused, in file order.
    pub failed: Vec<(usize, String)>,
    /// Columns read but not imported: system fields Keel maintains (`created_at`, `version`,
    /// …) and computed fields, which every export carries and Keel sets anew.
    pub ignored_columns: Vec<String>,
}

/// What a header column is.
#[derive(Debug, Clone, PartialEq)]
enum Column {
    /// A declared field the importer writes.
    Field(FieldKind),
    /// The record id.
    Id,
    /// The owner: a username or a user id.
    Owner,
    Pool,
    /// Maintained or computed by Keel: read past.
    Ignored,
}

/// Imports `path` (CSV with a header row of field names) into `object` as `actor`,
/// `batch_size` rows per transaction. An empty `owner` cell (or no `owner` column) makes the
/// actor the owner. `progress(done, total)` is called after every batch.
pub async fn import_csv(
    records: &Records,
    actor: &Actor,
    object: &str,
    path: &Path,
    batch_size: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<ImportReport, RuntimeError> {
    let schema = records.schema().clone();
    let object_def = schema
        .object(object)
        .ok_or_else(|| RuntimeError::Invalid(format!("there is no object `{object}`")))?;
    let read_error = |message: String| RuntimeError::Seed {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|error| read_error(error.to_string()))?;
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|error| read_error(error.to_string()))?
        .iter()
        .enumerate()
        // A spreadsheet's "CSV UTF-8" starts with a byte order mark.
        .map(|(index, header)| match index {
            0 => header.trim_start_matches('\u{feff}').trim().to_owned(),
            _ => header.trim().to_owned(),
        })
        .collect();
    let columns = classify(object_def, &headers)?;
    let mut rows: Vec<(usize, csv::StringRecord)> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|error| read_error(error.to_string()))?;
        let line = record
            .position()
            .map_or(rows.len() + 2, |position| position.line() as usize);
        rows.push((line, record));
    }
    let mut report = ImportReport {
        total: rows.len(),
        ignored_columns: headers
            .iter()
            .zip(&columns)
            .filter(|(_, column)| **column == Column::Ignored)
            .map(|(header, _)| header.clone())
            .collect(),
        ..ImportReport::default()
    };
    let mut rows_read = RowIds::default();
    let mut owners: HashMap<String, Option<String>> = HashMap::new();
    let batch_size = batch_size.max(1);
    let mut done = 0;
    for chunk in rows.chunks(batch_size) {
        let mut batch: Vec<(usize, String, Input)> = Vec::with_capacity(chunk.len());
        for (line, record) in chunk {
            let id = match rows_read.id(object, &headers, &columns, record, *line) {
                Ok(id) => id,
                Err(message) => {
                    report.failed.push((*line, message));
                    continue;
                }
            };
            match row_input(records, &headers, &columns, record, &mut owners).await {
                Ok(input) => batch.push((*line, id, input)),
                Err(message) => report.failed.push((*line, message)),
            }
        }
        let items: Vec<(String, Input)> = batch
            .iter()
            .map(|(_, id, input)| (id.clone(), input.clone()))
            .collect();
        match records.import_batch(actor, object, items).await {
            Ok((created, skipped)) => {
                report.created += created;
                report.skipped += skipped;
            }
            Err(RecordError::Store(error)) => return Err(error.into()),
            Err(_) => {
                // One bad row refuses its whole batch; import the rows one by one to find it.
                for (line, id, input) in batch {
                    match records.import_batch(actor, object, vec![(id, input)]).await {
                        Ok((created, skipped)) => {
                            report.created += created;
                            report.skipped += skipped;
                        }
                        Err(RecordError::Store(error)) => return Err(error.into()),
                        Err(error) => report.failed.push((line, describe(&error))),
                    }
                }
            }
        }
        done += chunk.len();
        progress(done, report.total);
    }
    // Rows refused while reading and rows refused by the write path arrive in two passes.
    report.failed.sort_by_key(|(line, _)| *line);
    Ok(report)
}

/// What each header column is; refuses a column that names nothing and a repeated one.
fn classify(object: &keel_meta::Object, headers: &[String]) -> Result<Vec<Column>, RuntimeError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut columns = Vec::with_capacity(headers.len());
    for (index, header) in headers.iter().enumerate() {
        if let Some(first) = seen.insert(header.as_str(), index) {
            return Err(RuntimeError::Invalid(format!(
                "the column `{header}` appears twice in the header row (columns {} and {}); \
                 each field may have one column",
                first + 1,
                index + 1
            )));
        }
        let column = match (header.as_str(), object.field(header)) {
            (_, Some(field)) if field.is_computed() => Column::Ignored,
            (_, Some(field)) => Column::Field(field.kind.clone()),
            ("id", None) => Column::Id,
            ("owner", None) => Column::Owner,
            ("pool", None) if object.pooled => Column::Pool,
            (name, None)
                if keel_meta::SYSTEM_FIELDS.contains(&name)
                    || (object.pooled && keel_meta::POOL_SYSTEM_FIELDS.contains(&name)) =>
            {
                Column::Ignored
            }
            _ => {
                return Err(RuntimeError::Invalid(format!(
                    "the column `{header}` is not a field of `{}`; the header row must name fields",
                    object.name
                )));
            }
        };
        columns.push(column);
    }
    Ok(columns)
}

/// Gives each row its record id, remembering what the file held so far: explicit ids (a
/// second row with the same one is refused) and how often each row content occurred.
#[derive(Default)]
struct RowIds {
    explicit: HashMap<String, usize>,
    occurrences: HashMap<[u8; 32], u64>,
}

impl RowIds {
    fn id(
        &mut self,
        object: &str,
        headers: &[String],
        columns: &[Column],
        record: &csv::StringRecord,
        line: usize,
    ) -> Result<String, String> {
        let explicit = columns
            .iter()
            .zip(record.iter())
            .find(|(column, _)| **column == Column::Id)
            .map(|(_, cell)| cell.trim())
            .filter(|cell| !cell.is_empty());
        if let Some(cell) = explicit {
            let id = uuid::Uuid::parse_str(cell)
                .map_err(|_| format!("id: `{cell}` is not a record id (a UUID)"))?
                .hyphenated()
                .to_string();
            if let Some(first) = self.explicit.insert(id.clone(), line) {
                self.explicit.insert(id.clone(), first);
                return Err(format!("id: line {first} has the same id `{id}`"));
            }
            return Ok(id);
        }
        let content = row_content(object, headers, record);
        let occurrence = self.occurrences.entry(content).or_insert(0);
        let id = derived_id(&content, *occurrence);
        *occurrence += 1;
        Ok(id)
    }
}

/// A digest of what a row says: the object and the non-empty cells by column name, each
/// length-prefixed so no two different rows can be spelt alike.
fn row_content(object: &str, headers: &[String], record: &csv::StringRecord) -> [u8; 32] {
    let mut cells: Vec<(&str, &str)> = headers
        .iter()
        .map(String::as_str)
        .zip(record.iter().map(str::trim))
        .filter(|(_, cell)| !cell.is_empty())
        .collect();
    cells.sort_unstable();
    let mut hasher = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    part(b"keel import row");
    part(object.as_bytes());
    for (header, cell) in cells {
        part(header.as_bytes());
        part(cell.as_bytes());
    }
    hasher.finalize().into()
}

/// The record id of the `occurrence`-th row (from 0) with `content`: a UUIDv8.
fn derived_id(content: &[u8; 32], occurrence: u64) -> String {
    let mut hasher = Sha256::new();
    hasher.update(content);
    hasher.update(occurrence.to_be_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::new_v8(bytes).to_string()
}

async fn row_input(
    records: &Records,
    headers: &[String],
    columns: &[Column],
    record: &csv::StringRecord,
    owners: &mut HashMap<String, Option<String>>,
) -> Result<Input, String> {
    let mut input = Map::new();
    for ((header, column), cell) in headers.iter().zip(columns).zip(record.iter()) {
        let cell = cell.trim();
        if cell.is_empty() {
            continue;
        }
        let value = match column {
            Column::Id | Column::Ignored => continue,
            Column::Owner => Json::String(owner_id(records, cell, owners).await?),
            Column::Pool => Json::String(cell.to_owned()),
            Column::Field(kind) => cell_value(kind, cell),
        };
        input.insert(header.clone(), value);
    }
    Ok(input)
}

/// An owner cell's user id: the cell is a username or, as `keel export` writes, a user id.
async fn owner_id(
    records: &Records,
    cell: &str,
    owners: &mut HashMap<String, Option<String>>,
) -> Result<String, String> {
    if !owners.contains_key(cell) {
        let by_name = keel_store::users::find_by_username(records.db(), cell)
            .await
            .map_err(|error| error.to_string())?;
        let found = match by_name {
            Some(user) => Some(user),
            None => keel_store::users::find_by_id(records.db(), cell)
                .await
                .map_err(|error| error.to_string())?,
        };
        owners.insert(cell.to_owned(), found.map(|user| user.id));
    }
    owners
        .get(cell)
        .cloned()
        .flatten()
        .ok_or_else(|| format!("owner: there is no user `{cell}` (give a username or a user id)"))
}

/// A cell as the JSON value the write path reads for a field of `kind`: a multi-choice cell
/// is a `;`-separated list, every other cell is text the field's type parses.
fn cell_value(kind: &FieldKind, cell: &str) -> Json {
    match kind {
        FieldKind::MultiChoice { .. } => {
            Json::Array(split_list(cell).into_iter().map(Json::String).collect())
        }
        _ => Json::String(cell.to_owned()),
    }
}

fn describe(error: &RecordError) -> String {
    match error {
        RecordError::Invalid(problems) => problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cells: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(cells.to_vec())
    }

    #[test]
    fn a_row_is_the_same_row_whatever_its_column_order_and_empty_cells() {
        let a = row_content(
            "lead",
            &["name".into(), "phone".into(), "score".into()],
            &record(&["张三", "138", ""]),
        );
        let b = row_content(
            "lead",
            &["phone".into(), "name".into()],
            &record(&["138 ", "张三"]),
        );
        assert_eq!(a, b);
        let edited = row_content(
            "lead",
            &["phone".into(), "name".into()],
            &record(&["139", "张三"]),
        );
        assert_ne!(a, edited);
        let other_object = row_content(
            "account",
            &["phone".into(), "name".into()],
            &record(&["138", "张三"]),
        );
        assert_ne!(a, other_object);
    }

    #[test]
    fn identical_rows_get_distinct_ids_in_file_order() {
        let mut ids = RowIds::default();
        let headers = vec!["name".to_owned()];
        let columns = vec![Column::Field(FieldKind::Text)];
        let first = ids
            .id("lead", &headers, &columns, &record(&["x"]), 2)
            .unwrap();
        let second = ids
            .id("lead", &headers, &columns, &record(&["x"]), 3)
            .unwrap();
        assert_ne!(first, second);
        let mut again = RowIds::default();
        assert_eq!(
            again
                .id("lead", &headers, &columns, &record(&["x"]), 7)
                .unwrap(),
            first
        );
    }

    #[test]
    fn an_explicit_id_is_kept_and_may_appear_once() {
        let mut ids = RowIds::default();
        let headers = vec!["id".to_owned(), "name".to_owned()];
        let columns = vec![Column::Id, Column::Field(FieldKind::Text)];
        let id = "0190F3C4-1111-7222-8333-444455556666";
        assert_eq!(
            ids.id("lead", &headers, &columns, &record(&[id, "x"]), 2)
                .unwrap(),
            id.to_lowercase()
        );
        let again = ids
            .id("lead", &headers, &columns, &record(&[id, "y"]), 3)
            .unwrap_err();
        assert!(again.contains("line 2"), "{again}");
        let bad = ids
            .id("lead", &headers, &columns, &record(&["nope", "y"]), 4)
            .unwrap_err();
        assert!(bad.contains("not a record id"), "{bad}");
    }
}
