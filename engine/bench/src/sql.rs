//! The benchmark lead's table layout and the SQL Keel runs for the benchmarked calls,
//! written out once per dialect so the baseline runs exactly the same statements.
//!
//! Taken from `keel-store` (`records::select`, `records::condition`, `records::write`,
//! `records::audit`) for an admin (whose record scope is `TRUE`) and checked against Keel's
//! own statements in its debug log (`RUST_LOG=sqlx::query=debug`; BENCHMARKS.md shows how).
//! When Keel's SQL changes, change it here too, or the ratio measures two different queries.
//! This module runs nothing.

/// The columns of the benchmark `lead` table in table order: Keel's system columns, then the
/// declared fields of `bench/app/metadata/objects/lead.yaml`.
pub const LEAD_COLUMNS: [&str; 16] = [
    "id",
    "owner",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "version",
    "deleted_at",
    "deleted_by",
    "name",
    "company",
    "phone",
    "email",
    "source",
    "status",
    "score",
];

/// The declared fields, in metadata order: the audit trail of a create has one row for each
/// that is filled, then one for `owner`.
pub const LEAD_FIELDS: [&str; 7] = [
    "name", "company", "phone", "email", "source", "status", "score",
];

macro_rules! select_lead {
    () => {
        "SELECT \"id\", \"owner\", \"created_at\", \"created_by\", \"updated_at\", \
         \"updated_by\", \"version\", \"deleted_at\", \"deleted_by\", \"name\", \"company\", \
         \"phone\", \"email\", \"source\", \"status\", \"score\" FROM \"lead\" WHERE \
         \"deleted_at\" IS NULL AND "
    };
}

/// One lead by id (Keel binds the id, then the limit 1).
pub const SQLITE_GET: &str = concat!(
    select_lead!(),
    "((\"id\" IS NOT NULL AND \"id\" = ?) AND TRUE) ORDER BY \"id\" ASC LIMIT ?"
);
pub const POSTGRES_GET: &str = concat!(
    select_lead!(),
    "((\"id\" IS NOT NULL AND \"id\" = $1) AND TRUE) ORDER BY \"id\" ASC NULLS FIRST LIMIT $2"
);

/// `?status=eq.<status>&order=-score&limit=<n>`: Keel binds the status, then n + 1 (one row
/// more than the page, to know whether there is a next page).
pub const SQLITE_LIST_BY_STATUS: &str = concat!(
    select_lead!(),
    "(TRUE AND (\"status\" IS NOT NULL AND \"status\" = ?)) \
     ORDER BY \"score\" DESC, \"id\" DESC LIMIT ?"
);
pub const POSTGRES_LIST_BY_STATUS: &str = concat!(
    select_lead!(),
    "(TRUE AND (\"status\" IS NOT NULL AND \"status\" = $1)) \
     ORDER BY \"score\" DESC NULLS LAST, \"id\" DESC LIMIT $2"
);

/// Inserts one lead, every column bound (Keel's `RecordWrite::insert`).
pub const SQLITE_INSERT_LEAD: &str = "INSERT INTO \"lead\" (\"id\", \"owner\", \"created_at\", \
     \"created_by\", \"updated_at\", \"updated_by\", \"version\", \"deleted_at\", \"deleted_by\", \
     \"name\", \"company\", \"phone\", \"email\", \"source\", \"status\", \"score\") VALUES \
     (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
pub const POSTGRES_INSERT_LEAD: &str = "INSERT INTO \"lead\" (\"id\", \"owner\", \"created_at\", \
     \"created_by\", \"updated_at\", \"updated_by\", \"version\", \"deleted_at\", \"deleted_by\", \
     \"name\", \"company\", \"phone\", \"email\", \"source\", \"status\", \"score\") VALUES \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";

/// The audit columns, in Keel's insert order (`records::audit`).
pub const AUDIT_INSERT_HEAD: &str = "INSERT INTO \"keel_audit\" (\"id\", \"object\", \
     \"record_id\", \"at\", \"by\", \"action\", \"field\", \"old\", \"new\") VALUES ";

/// A multi-row audit INSERT of `rows` rows, as Keel writes one per save: `?` placeholders on
/// SQLite, `$n` on PostgreSQL. Only constants go into the text.
pub fn audit_insert(postgres: bool, rows: usize) -> String {
    let mut sql = String::with_capacity(AUDIT_INSERT_HEAD.len() + rows * 48);
    sql.push_str(AUDIT_INSERT_HEAD);
    let mut parameter = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..9 {
            if column > 0 {
                sql.push_str(", ");
            }
            parameter += 1;
            if postgres {
                sql.push('$');
                sql.push_str(&parameter.to_string());
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql
}

/// The columns [`SQLITE_CLAIM`] and [`POSTGRES_CLAIM`] return: a record as [`LEAD_COLUMNS`].
macro_rules! returning_lead {
    () => {
        " RETURNING \"id\", \"owner\", \"created_at\", \"created_by\", \"updated_at\", \
         \"updated_by\", \"version\", \"deleted_at\", \"deleted_by\", \"name\", \"company\", \
         \"phone\", \"email\", \"source\", \"status\", \"score\""
    };
}

/// A pool claim (bench/pools.sh): the record `?3` of pool `?4`, if nobody holds it, becomes
/// the user `?1`'s at `?2` — one conditional update, as Keel's claim makes (the pooled lead
/// has Keel's pool columns besides [`LEAD_COLUMNS`]).
pub const SQLITE_CLAIM: &str = concat!(
    "UPDATE \"lead\" SET \"owner\" = ?1, \"claimed_at\" = ?2, \"updated_at\" = ?2, \
     \"updated_by\" = ?1, \"version\" = \"version\" + 1 WHERE \"id\" = ?3 AND \"pool\" = ?4 \
     AND \"owner\" IS NULL AND \"deleted_at\" IS NULL",
    returning_lead!()
);
pub const POSTGRES_CLAIM: &str = concat!(
    "UPDATE \"lead\" SET \"owner\" = $1, \"claimed_at\" = $2, \"updated_at\" = $2, \
     \"updated_by\" = $1, \"version\" = \"version\" + 1 WHERE \"id\" = $3 AND \"pool\" = $4 \
     AND \"owner\" IS NULL AND \"deleted_at\" IS NULL",
    returning_lead!()
);

/// The pool history row of a claim: id, record, pool, the user (actor and new owner), at.
pub const SQLITE_CLAIM_HISTORY: &str = "INSERT INTO \"keel_pool_history\" (\"id\", \"object\", \
     \"record_id\", \"pool\", \"action\", \"actor\", \"from_user\", \"to_user\", \"reason\", \
     \"note\", \"at\") VALUES (?1, 'lead', ?2, ?3, 'claim', ?4, NULL, ?4, NULL, NULL, ?5)";
pub const POSTGRES_CLAIM_HISTORY: &str = "INSERT INTO \"keel_pool_history\" (\"id\", \"object\", \
     \"record_id\", \"pool\", \"action\", \"actor\", \"from_user\", \"to_user\", \"reason\", \
     \"note\", \"at\") VALUES ($1, 'lead', $2, $3, 'claim', $4, NULL, $4, NULL, NULL, $5)";

/// The user of a session: Keel keeps the SHA-256 (hex) of each token as the session's id.
pub const SQLITE_SESSION_USER: &str = "SELECT \"user_id\" FROM \"keel_sessions\" WHERE \"id\" = ?";
pub const POSTGRES_SESSION_USER: &str =
    "SELECT \"user_id\" FROM \"keel_sessions\" WHERE \"id\" = $1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_every_column_once_in_table_order() {
        for statement in [
            SQLITE_GET,
            POSTGRES_GET,
            SQLITE_INSERT_LEAD,
            POSTGRES_INSERT_LEAD,
        ] {
            let mut position = 0;
            for column in LEAD_COLUMNS {
                let quoted = format!("\"{column}\"");
                let found = statement[position..]
                    .find(&quoted)
                    .unwrap_or_else(|| panic!("{column} missing or out of order in {statement}"));
                position += found + quoted.len();
            }
        }
        assert_eq!(SQLITE_INSERT_LEAD.matches('?').count(), LEAD_COLUMNS.len());
        assert!(POSTGRES_INSERT_LEAD.contains("$16)"));
    }

    #[test]
    fn audit_inserts_number_their_placeholders() {
        assert!(audit_insert(false, 2).ends_with("(?, ?, ?, ?, ?, ?, ?, ?, ?)"));
        let postgres = audit_insert(true, 2);
        assert!(postgres.contains("($10, $11"), "{postgres}");
        assert!(postgres.ends_with("$18)"), "{postgres}");
    }
}
