//! The one CSV format Keel writes and reads: `keel export`, the API's CSV export and
//! `keel import` all go through here, so an export can be imported back.
//!
//! A cell is the value as text: empty for null, text as is, numbers and booleans as JSON
//! writes them, and a list (a multi-choice value) as its items joined with `;`, which is how
//! `keel import` reads a multi-choice cell. Records are `\n`-terminated and quoted where
//! needed.

use std::borrow::Cow;

use keel_meta::Object;
use serde_json::Value as Json;

/// Separates the keys of a multi-choice value inside one cell.
pub const LIST_SEPARATOR: char = ';';

/// The columns of an export of `object`: the system fields a returned record carries (see
/// `Object::returned_system_fields`), then `readable`, the declared fields the user may read.
pub fn export_columns(object: &Object, readable: Vec<String>) -> Vec<String> {
    object
        .returned_system_fields()
        .map(|field| field.name.to_owned())
        .chain(readable)
        .collect()
}

/// A JSON value as a CSV cell.
pub fn cell(value: Option<&Json>) -> Cow<'_, str> {
    match value {
        None | Some(Json::Null) => Cow::Borrowed(""),
        Some(Json::String(text)) => Cow::Borrowed(text),
        Some(Json::Array(items)) => Cow::Owned(
            items
                .iter()
                .map(|item| cell(Some(item)))
                .collect::<Vec<_>>()
                .join(&LIST_SEPARATOR.to_string()),
        ),
        Some(other) => Cow::Owned(other.to_string()),
    }
}

/// The keys of a multi-choice cell, trimmed, empty ones left out.
pub fn split_list(cell: &str) -> Vec<String> {
    cell.split(LIST_SEPARATOR)
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One CSV record of `cells`, `\n`-terminated.
pub fn line<I, T>(cells: I) -> Result<Vec<u8>, std::io::Error>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    writer.write_record(cells).map_err(std::io::Error::other)?;
    writer
        .into_inner()
        .map_err(|error| std::io::Error::other(error.to_string()))
}

/// The CSV record of `record` (an exported record, a JSON object) under `columns`.
pub fn record_line(columns: &[String], record: &Json) -> Result<Vec<u8>, std::io::Error> {
    line(
        columns
            .iter()
            .map(|column| cell(record.get(column)).into_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_are_joined_with_the_separator_import_splits_on() {
        let value = json!(["hot", "cold"]);
        let text = cell(Some(&value));
        assert_eq!(text, "hot;cold");
        assert_eq!(split_list(&text), vec!["hot", "cold"]);
        assert_eq!(cell(Some(&json!(null))), "");
        assert_eq!(cell(Some(&json!(12.5))), "12.5");
        assert_eq!(cell(Some(&json!(true))), "true");
    }

    #[test]
    fn cells_that_need_quotes_are_quoted() {
        let columns = vec!["a".to_owned(), "b".to_owned()];
        let bytes = record_line(&columns, &json!({"a": "x, y", "b": "say \"hi\""})).unwrap();
        assert_eq!(bytes, b"\"x, y\",\"say \"\"hi\"\"\"\n");
    }
}
