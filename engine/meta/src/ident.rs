//! Identifiers: the names of objects, fields, roles, pools, processes, rules, scripts, stages
//! and choice keys. Only names that pass [`check_identifier`] ever reach SQL text, so this is
//! the gate that keeps user text out of SQL (values are always bound parameters).

use crate::system::is_system_field;

/// SQL keywords (SQLite and PostgreSQL) that may not name objects or fields, so every
/// generated statement stays valid without quoting tricks. Sorted for binary search.
const SQL_KEYWORDS: &[&str] = &[
    "all",
    "alter",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "autoincrement",
    "between",
    "binary",
    "both",
    "by",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "delete",
    "desc",
    "distinct",
    "drop",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "index",
    "initially",
    "inner",
    "insert",
    "intersect",
    "into",
    "is",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "null",
    "offset",
    "on",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "set",
    "similar",
    "some",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "update",
    "user",
    "using",
    "values",
    "variadic",
    "when",
    "where",
    "with",
];

/// Checks the identifier form `^[a-z][a-z0-9_]{0,62}$`.
pub fn check_identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let well_formed = matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'));
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid identifier: use 1 to 63 lowercase letters, digits and `_`, starting with a letter"
        ))
    }
}

/// Checks a name for an object or a field: a valid identifier that is no SQL keyword, does
/// not start with `keel_` and is not a system field name.
pub fn check_table_or_column_name(name: &str) -> Result<(), String> {
    check_identifier(name)?;
    if SQL_KEYWORDS.binary_search(&name).is_ok() {
        return Err(format!(
            "`{name}` is a reserved word (SQL keyword); choose another name"
        ));
    }
    if name.starts_with("keel_") {
        return Err(format!(
            "`{name}` is reserved: names starting with `keel_` belong to Keel"
        ));
    }
    if is_system_field(name) {
        return Err(format!(
            "`{name}` is reserved: it is a system field every record has"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_list_is_sorted_for_binary_search() {
        assert!(SQL_KEYWORDS.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn identifiers_follow_the_documented_form() {
        assert!(check_identifier("lead").is_ok());
        assert!(check_identifier("a1_b").is_ok());
        assert!(check_identifier(&"a".repeat(63)).is_ok());
        for bad in ["", "Lead", "1a", "_a", "a-b", "线索", &"a".repeat(64)] {
            assert!(check_identifier(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reserved_names_are_refused_for_tables_and_columns() {
        for bad in [
            "select",
            "order",
            "user",
            "keel_users",
            "owner",
            "version",
            "pool",
        ] {
            assert!(check_table_or_column_name(bad).is_err(), "{bad}");
        }
        assert!(check_table_or_column_name("company").is_ok());
    }
}
