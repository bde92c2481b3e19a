//! CSV import through the write path: every row is validated, defaulted, computed and
//! audited like an API create.
//!
//! Imports are resumable without a journal: each row's record id is derived from the file's
//! content hash and the row's position, and rows whose id already exists are skipped. An
//! import killed at any point and run again with the same file ends with each row imported
//! exactly once. (Editing the file changes its hash: it is then a new import.)

use std::collections::HashMap;
use std::path::Path;

use keel_meta::FieldKind;
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::RuntimeError;
use crate::actor::Actor;
use crate::records::{Input, RecordError, Records};

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// Data rows in the file.
    pub total: usize,
    pub created: usize,
    /// Rows imported by an earlier run of the same file.
    pub skipped: usize,
    /// (line number in the file, why) for rows that were refused.
    pub failed: Vec<(usize, String)>,
}

/// Imports `path` (CSV with a header row of field names) into `object`, `batch_size` rows
/// per transaction. `progress(done, total)` is called after every batch.
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
    let file_hash = Sha256::digest(&bytes);
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|error| read_error(error.to_string()))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    for header in &headers {
        let known =
            object_def.field(header).is_some() || matches!(header.as_str(), "owner" | "pool");
        if !known {
            return Err(RuntimeError::Invalid(format!(
                "the column `{header}` is not a field of `{object}`; the header row must name fields"
            )));
        }
    }
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .map_err(|error| read_error(error.to_string()))?;
    let mut report = ImportReport {
        total: rows.len(),
        ..ImportReport::default()
    };
    let mut owners: HashMap<String, Option<String>> = HashMap::new();
    let batch_size = batch_size.max(1);
    for (batch_index, chunk) in rows.chunks(batch_size).enumerate() {
        let mut batch: Vec<(usize, String, Input)> = Vec::with_capacity(chunk.len());
        for (offset, record) in chunk.iter().enumerate() {
            let index = batch_index * batch_size + offset;
            let line = index + 2;
            match row_input(records, object_def, &headers, record, &mut owners).await {
                Ok(input) => batch.push((line, row_id(&file_hash, index), input)),
                Err(message) => report.failed.push((line, message)),
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
        progress(
            (batch_index * batch_size + chunk.len()).min(report.total),
            report.total,
        );
    }
    Ok(report)
}

/// A stable record id for row `index` of a file: a UUIDv8 from the file hash and the index.
fn row_id(file_hash: &[u8], index: usize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(file_hash);
    hasher.update((index as u64).to_be_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::new_v8(bytes).to_string()
}

async fn row_input(
    records: &Records,
    object: &keel_meta::Object,
    headers: &[String],
    record: &csv::StringRecord,
    owners: &mut HashMap<String, Option<String>>,
) -> Result<Input, String> {
    let mut input = Map::new();
    for (header, cell) in headers.iter().zip(record.iter()) {
        let cell = cell.trim();
        if cell.is_empty() {
            continue;
        }
        let value = match (
            header.as_str(),
            object.field(header).map(|field| &field.kind),
        ) {
            ("owner", None) => {
                if !owners.contains_key(cell) {
                    let found = keel_store::users::find_by_username(records.db(), cell)
                        .await
                        .map_err(|error| error.to_string())?;
                    owners.insert(cell.to_owned(), found.map(|user| user.id));
                }
                match owners.get(cell).cloned().flatten() {
                    Some(id) => Json::String(id),
                    None => return Err(format!("owner: there is no user `{cell}`")),
                }
            }
            (_, Some(FieldKind::MultiChoice { .. })) => Json::Array(
                cell.split(';')
                    .map(|key| Json::String(key.trim().to_owned()))
                    .collect(),
            ),
            _ => Json::String(cell.to_owned()),
        };
        input.insert(header.clone(), value);
    }
    Ok(input)
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
