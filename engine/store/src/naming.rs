//! Names Keel gives to things in the database: index, unique-index and foreign-key names,
//! archive names for removed columns and tables, and identifier quoting.
//!
//! Names are deterministic (the same metadata always yields the same names, on both
//! dialects) and at most 63 bytes, PostgreSQL's identifier limit; a longer name is cut and
//! given a hash suffix so that two long names stay distinct. This module does not decide
//! *which* indexes exist: see `layout`.

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};

/// PostgreSQL's identifier limit (NAMEDATALEN - 1); SQLite has none, but we keep one rule.
pub const MAX_IDENTIFIER_LENGTH: usize = 63;

/// Columns and tables whose names start with this hold archived data: planners leave them
/// alone.
pub const ARCHIVE_PREFIX: &str = "keel_arch_";

/// Suffix of a plain index Keel created.
const INDEX_SUFFIX: &str = "_idx";
/// Suffix of a single-column unique index Keel created.
const UNIQUE_SUFFIX: &str = "_key";
/// Suffix of a foreign-key constraint Keel created (PostgreSQL only; SQLite's are unnamed).
const FOREIGN_KEY_SUFFIX: &str = "_fkey";

/// `identifier` in double quotes, with any inner quote doubled. Identifiers come from
/// validated metadata, so the escaping is a second line of defence, not the first.
pub fn quote(identifier: &str) -> String {
    let mut quoted = String::with_capacity(identifier.len() + 2);
    push_quoted(&mut quoted, identifier);
    quoted
}

/// Appends `identifier` to `sql` as [`quote`] writes it, without allocating.
pub fn push_quoted(sql: &mut String, identifier: &str) {
    sql.push('"');
    for part in identifier.split_inclusive('"') {
        sql.push_str(part);
        if part.ends_with('"') {
            sql.push('"');
        }
    }
    sql.push('"');
}

/// Name of the plain index on `columns` of `table`: `<table>__<col1>__<col2>_idx`.
pub fn index_name(table: &str, columns: &[String]) -> String {
    bounded(&format!("{table}__{}", columns.join("__")), INDEX_SUFFIX)
}

/// Name of the unique index on `column` of `table`: `<table>_<column>_key`.
pub fn unique_index_name(table: &str, column: &str) -> String {
    bounded(&format!("{table}_{column}"), UNIQUE_SUFFIX)
}

/// Name of the foreign-key constraint on `column` of `table`: `<table>_<column>_fkey`.
pub fn foreign_key_name(table: &str, column: &str) -> String {
    bounded(&format!("{table}_{column}"), FOREIGN_KEY_SUFFIX)
}

/// Whether an index with this name follows Keel's naming, so a planner may drop it when the
/// metadata no longer wants it. Indexes named otherwise (a DBA's) are left alone.
pub fn is_keel_index_name(name: &str) -> bool {
    name.ends_with(INDEX_SUFFIX) || name.ends_with(UNIQUE_SUFFIX)
}

/// The name a removed column or table is renamed to: `keel_arch_<YYYYMMDDHHMMSS>_<name>`,
/// cut to 63 bytes.
pub fn archive_name(name: &str, now: DateTime<Utc>) -> String {
    let full = format!("{ARCHIVE_PREFIX}{}_{name}", now.format("%Y%m%d%H%M%S"));
    cut(&full, MAX_IDENTIFIER_LENGTH).to_owned()
}

/// Whether `name` is an archive name (see [`archive_name`]).
pub fn is_archive_name(name: &str) -> bool {
    name.starts_with(ARCHIVE_PREFIX)
}

/// `base` + `suffix`, or when that is too long, `base` cut short + `_` + 8 hex digits of a
/// hash of the full name + `suffix`.
fn bounded(base: &str, suffix: &str) -> String {
    let full = format!("{base}{suffix}");
    if full.len() <= MAX_IDENTIFIER_LENGTH {
        return full;
    }
    let hash = hex::encode(Sha256::digest(full.as_bytes()));
    let room = MAX_IDENTIFIER_LENGTH - suffix.len() - 9;
    format!("{}_{}{suffix}", cut(base, room), &hash[..8])
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub(crate) fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn names(columns: &[&str]) -> Vec<String> {
        columns.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn short_names_follow_the_documented_patterns() {
        assert_eq!(
            index_name("lead", &names(&["status", "score"])),
            "lead__status__score_idx"
        );
        assert_eq!(index_name("lead", &names(&["owner"])), "lead__owner_idx");
        assert_eq!(unique_index_name("lead", "phone"), "lead_phone_key");
        assert_eq!(foreign_key_name("lead", "account"), "lead_account_fkey");
    }

    #[test]
    fn long_names_are_cut_to_63_bytes_with_a_hash_and_keep_their_suffix() {
        let table = "a".repeat(40);
        let first = index_name(&table, &names(&[&"b".repeat(30), "c"]));
        let second = index_name(&table, &names(&[&"b".repeat(30), "d"]));
        assert_eq!(first.len(), 63);
        assert_eq!(second.len(), 63);
        assert_ne!(first, second);
        assert!(first.ends_with("_idx") && is_keel_index_name(&first));
        let unique = unique_index_name(&table, &"x".repeat(40));
        assert_eq!(unique.len(), 63);
        assert!(unique.ends_with("_key"));
        // Deterministic.
        assert_eq!(first, index_name(&table, &names(&[&"b".repeat(30), "c"])));
    }

    #[test]
    fn archive_names_carry_the_time_and_stay_within_63_bytes() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 4, 5, 6).unwrap();
        assert_eq!(archive_name("cell", now), "keel_arch_20261123040506_cell");
        let long = archive_name(&"z".repeat(63), now);
        assert_eq!(long.len(), 63);
        assert!(is_archive_name(&long));
        assert!(!is_archive_name("lead"));
    }

    #[test]
    fn quoting_doubles_inner_quotes() {
        assert_eq!(quote("lead"), "\"lead\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
