//! Keel's own tables (`keel_` prefix), declared as data.
//!
//! The migration planner treats these exactly like object tables, so a later change adds a
//! system table or column by editing [`SYSTEM_TABLES`] and nothing else. Their columns are
//! described with the same [`Storage`] kinds as object fields. This module does not read
//! or write rows: `users` and the runtime do.

use keel_meta::{OnDelete, Storage};

/// One system table.
#[derive(Debug, Clone, Copy)]
pub struct SystemTable {
    pub name: &'static str,
    /// In table order; `id` (a text primary key) is always first.
    pub columns: &'static [SystemColumn],
    /// Plain indexes, each a list of column names.
    pub indexes: &'static [&'static [&'static str]],
}

/// One column of a system table.
#[derive(Debug, Clone, Copy)]
pub struct SystemColumn {
    pub name: &'static str,
    pub storage: Storage,
    pub not_null: bool,
    pub primary_key: bool,
    /// A single-column unique index.
    pub unique: bool,
    /// Target table (its `id`) and what deleting a target row does.
    pub references: Option<(&'static str, OnDelete)>,
    /// Value of existing and new rows when none is given.
    pub default: Option<ColumnDefault>,
}

/// A constant column default. Only system columns have defaults: object defaults are
/// applied by the runtime, where they can depend on the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnDefault {
    Boolean(bool),
    /// A JSON document, stored as text on SQLite and `jsonb` on PostgreSQL.
    Json(&'static str),
}

const fn column(name: &'static str, storage: Storage) -> SystemColumn {
    SystemColumn {
        name,
        storage,
        not_null: false,
        primary_key: false,
        unique: false,
        references: None,
        default: None,
    }
}

impl SystemColumn {
    const fn not_null(mut self) -> SystemColumn {
        self.not_null = true;
        self
    }

    const fn unique(mut self) -> SystemColumn {
        self.unique = true;
        self
    }

    const fn references(mut self, table: &'static str, on_delete: OnDelete) -> SystemColumn {
        self.references = Some((table, on_delete));
        self
    }

    const fn default(mut self, value: ColumnDefault) -> SystemColumn {
        self.default = Some(value);
        self
    }
}

const ID: SystemColumn = SystemColumn {
    primary_key: true,
    not_null: true,
    ..column("id", Storage::Text)
};

/// Every system table, in creation order (a table comes after the tables it references,
/// which keeps the DDL readable; correctness does not depend on it).
pub const SYSTEM_TABLES: &[SystemTable] = &[
    SystemTable {
        name: "keel_departments",
        columns: &[
            ID,
            column("name", Storage::Text).not_null().unique(),
            column("label", Storage::Text),
            // A department with sub-departments cannot be deleted by accident.
            column("parent_id", Storage::Text).references("keel_departments", OnDelete::Restrict),
            column("created_at", Storage::Datetime).not_null(),
        ],
        indexes: &[&["parent_id"]],
    },
    SystemTable {
        name: "keel_users",
        columns: &[
            ID,
            column("username", Storage::Text).not_null().unique(),
            column("display_name", Storage::Text),
            column("password_hash", Storage::Text).not_null(),
            column("roles", Storage::Json)
                .not_null()
                .default(ColumnDefault::Json("[]")),
            column("manager_id", Storage::Text).references("keel_users", OnDelete::SetNull),
            // Users are deactivated rather than deleted; a department still holding users
            // must not vanish from under them.
            column("department_id", Storage::Text)
                .references("keel_departments", OnDelete::Restrict),
            column("language", Storage::Text),
            column("active", Storage::Boolean)
                .not_null()
                .default(ColumnDefault::Boolean(true)),
            column("created_at", Storage::Datetime).not_null(),
            column("updated_at", Storage::Datetime).not_null(),
            // Where email notifications reach the user; optional. Last, so that a database
            // from before it gains it in the same place as a new one.
            column("email", Storage::Text),
        ],
        indexes: &[&["manager_id"], &["department_id"]],
    },
    SystemTable {
        name: "keel_metadata_versions",
        columns: &[
            ID,
            column("fingerprint", Storage::Text).not_null(),
            column("applied_at", Storage::Datetime).not_null(),
            column("summary", Storage::Text).not_null(),
            column("plan", Storage::Json).not_null(),
            // The metadata version (docs/studio.md): a number, increasing by one per
            // recorded version; the files of the app directory at that version (path →
            // text; `fingerprint` is their hash); who applied it; and from where (`cli` or
            // `studio`). Rows recorded before versions existed have none of these.
            column("version", Storage::Integer).unique(),
            column("files", Storage::Json),
            column("applied_by", Storage::Text),
            column("source", Storage::Text),
        ],
        indexes: &[&["applied_at"]],
    },
    // One row per changed field of a record (the history of docs/api.md). `object` and `record_id`
    // are plain text, not foreign keys: the trail outlives the record and its table.
    SystemTable {
        name: "keel_audit",
        columns: &[
            ID,
            column("object", Storage::Text).not_null(),
            column("record_id", Storage::Text).not_null(),
            column("at", Storage::Datetime).not_null(),
            column("by", Storage::Text),
            // create, update, delete or restore.
            column("action", Storage::Text).not_null(),
            column("field", Storage::Text).not_null(),
            // Any JSON document, as the API shows the value.
            column("old", Storage::Json),
            column("new", Storage::Json),
        ],
        // (by, at): "what did I change lately" (the home page) reads one user's newest rows.
        indexes: &[&["object", "record_id", "at"], &["by", "at"]],
    },
    // Gapless counters (autonumbers): `id` is the counter's key, `value` its last number.
    // A number is taken inside the record's transaction, so it commits or rolls back with it.
    SystemTable {
        name: "keel_sequences",
        columns: &[ID, column("value", Storage::Integer).not_null()],
        indexes: &[],
    },
    // The manager chain, flattened (a closure table): one row per user and each of their
    // managers up the chain, plus (user, user). `subordinates` scopes read it with one
    // indexed lookup. Rebuilt from `keel_users` whenever the org changes (`users`) and on
    // every metadata apply; `id` is `<manager_id>/<member_id>`.
    SystemTable {
        name: "keel_team_members",
        columns: &[
            ID,
            column("manager_id", Storage::Text).not_null(),
            column("member_id", Storage::Text).not_null(),
        ],
        indexes: &[&["manager_id", "member_id"]],
    },
    // The department tree, flattened the same way: (ancestor, descendant) for every
    // department and each department above it, plus (department, department).
    SystemTable {
        name: "keel_department_tree",
        columns: &[
            ID,
            column("ancestor_id", Storage::Text).not_null(),
            column("descendant_id", Storage::Text).not_null(),
        ],
        indexes: &[&["ancestor_id", "descendant_id"]],
    },
    // Normalised duplicate keys (查重): one row per live record and duplicate key of its
    // object whose parts are all filled, `id` = `<object>/<record_id>/<key>`. A duplicate
    // check is one lookup of `hash` (64 bits of the SHA-256 of object, key and value: an
    // index a third the size of one over the text), the text compared on the rows found;
    // the upkeep of one record's keys goes by `id`. Plain text, not foreign keys: the object
    // tables are not system tables. Kept by `records::duplicate_keys`.
    SystemTable {
        name: "keel_duplicate_keys",
        columns: &[
            ID,
            column("object", Storage::Text).not_null(),
            // The key's fields joined with `+`, e.g. `company+name`.
            column("key", Storage::Text).not_null(),
            column("value", Storage::Text).not_null(),
            column("record_id", Storage::Text).not_null(),
            // Nullable only so that the column can be added to a table that has rows; every
            // row is rebuilt with it (normalisation version 3).
            column("hash", Storage::Integer),
        ],
        indexes: &[&["hash"]],
    },
    // Per object (`id` is the object's name): the fingerprint of the duplicate-key
    // definitions its rows in `keel_duplicate_keys` were built with. A metadata apply
    // rebuilds an object's keys when the fingerprint differs or is missing.
    SystemTable {
        name: "keel_duplicate_definitions",
        columns: &[ID, column("fingerprint", Storage::Text).not_null()],
        indexes: &[],
    },
    // The transactional outbox (docs/rules.md): work a save leaves for after its commit —
    // event rules, after-save scripts, webhooks, emails, chat messages — written in the
    // save's transaction. A worker in every `keel serve` process claims due rows with a lease
    // (`claimed_by`, `claimed_until`); an expired lease is a crashed worker, and the row is
    // taken again. `idempotency_key` makes writing the same work twice a no-op. `state` is
    // `pending`, `done` or `dead` (out of retries, or failed for good: an admin may retry).
    SystemTable {
        name: "keel_outbox",
        columns: &[
            ID,
            column("kind", Storage::Text).not_null(),
            // The work, as a JSON document in text (read only by the runtime).
            column("payload", Storage::Text).not_null(),
            column("idempotency_key", Storage::Text).not_null().unique(),
            column("state", Storage::Text).not_null(),
            column("due_at", Storage::Datetime).not_null(),
            column("attempts", Storage::Integer).not_null(),
            column("claimed_by", Storage::Text),
            column("claimed_until", Storage::Datetime),
            column("last_error", Storage::Text),
            column("created_at", Storage::Datetime).not_null(),
            column("finished_at", Storage::Datetime),
        ],
        indexes: &[&["state", "due_at"]],
    },
    // The in-app inbox (docs/rules.md, "Notifications"): one row per message and recipient.
    // `id` is a UUIDv7 (or, for a delivery that may be retried, derived from its outbox row),
    // so ids sort by creation and a stream resumes after the last one a client saw.
    SystemTable {
        name: "keel_notifications",
        columns: &[
            ID,
            column("user_id", Storage::Text).not_null(),
            column("message", Storage::Text).not_null(),
            column("object", Storage::Text),
            column("record_id", Storage::Text),
            column("created_at", Storage::Datetime).not_null(),
            column("read_at", Storage::Datetime),
        ],
        indexes: &[&["user_id", "id"], &["created_at"]],
    },
    // One row per run of a scheduled job (docs/scheduler.md): a scheduled rule (job = the
    // rule's name) or a pool's auto-return sweep (job = `pool:<pool>`). `id` is
    // `<job>|<due_at RFC 3339 UTC>` for a scheduled occurrence, so claiming an occurrence is
    // one `INSERT … ON CONFLICT DO NOTHING` that exactly one process wins, and
    // `<job>|manual|<uuid v7>` for a run an admin started. `state` is `running`, `done`,
    // `failed` or `skipped`; a running run whose `lease_until` passed belongs to a crashed
    // process and is taken over (resumed after `cursor`, the last record id done).
    SystemTable {
        name: "keel_rule_runs",
        columns: &[
            ID,
            column("job", Storage::Text).not_null(),
            // `schedule` (a rule) or `pool` (an auto-return sweep).
            column("kind", Storage::Text).not_null(),
            column("due_at", Storage::Datetime).not_null(),
            column("manual", Storage::Boolean).not_null(),
            // A catch-up run stands for `missed` occurrences missed while every process was
            // down (misfire `once`), or records that they were skipped (`skip`).
            column("catch_up", Storage::Boolean).not_null(),
            column("missed", Storage::Integer).not_null(),
            column("state", Storage::Text).not_null(),
            // The process running it: host, pid and a random part.
            column("process", Storage::Text).not_null(),
            column("started_at", Storage::Datetime).not_null(),
            column("finished_at", Storage::Datetime),
            column("lease_until", Storage::Datetime),
            column("attempts", Storage::Integer).not_null(),
            column("matched", Storage::Integer).not_null(),
            column("changed", Storage::Integer).not_null(),
            column("errors", Storage::Integer).not_null(),
            column("error", Storage::Text),
            column("cursor", Storage::Text),
        ],
        indexes: &[&["job", "due_at"], &["state", "lease_until"]],
    },
    // Per scheduled job (`id` is the job's name): every occurrence up to `checked_until` has
    // been considered (claimed, run, or let go by the misfire policy). Only ever advanced.
    SystemTable {
        name: "keel_schedules",
        columns: &[ID, column("checked_until", Storage::Datetime).not_null()],
        indexes: &[],
    },
    // The pool history (docs/pools.md): one row per claim, release, assignment, return, move
    // into a pool and return warning of a pooled record. `actor` is who did it (`system` for
    // the auto-return sweep), `from_user`/`to_user` the owner before and after. Plain text,
    // not foreign keys, like the audit trail. Indexes: a user's claims of a pool since a
    // time (`daily_claim_limit`), one record's rows (its history, the reclaim cooldown and
    // "warned in this holding").
    SystemTable {
        name: "keel_pool_history",
        columns: &[
            ID,
            column("object", Storage::Text).not_null(),
            column("record_id", Storage::Text).not_null(),
            column("pool", Storage::Text).not_null(),
            // claim, release, assign, return, move or warn.
            column("action", Storage::Text).not_null(),
            column("actor", Storage::Text).not_null(),
            column("from_user", Storage::Text),
            column("to_user", Storage::Text),
            column("reason", Storage::Text),
            column("note", Storage::Text),
            column("at", Storage::Datetime).not_null(),
        ],
        indexes: &[
            &["to_user", "pool", "action", "at"],
            &["object", "record_id", "at"],
        ],
    },
    // The stage history of process records (docs/processes.md, docs/reports.md): one row per
    // stage change, `from_stage` NULL for the row a create in a stage writes, and
    // `seconds_in_from` the time the record spent in `from_stage` (this row's `at` minus the
    // previous row's). `id` is a UUIDv7. Plain text, not foreign keys, like the audit trail.
    // Indexes: one record's rows in order (its history), the records that entered a stage of
    // a process (the briefing's won amount), and the funnel's covering index.
    SystemTable {
        name: "keel_stage_history",
        columns: &[
            ID,
            column("object", Storage::Text).not_null(),
            column("record_id", Storage::Text).not_null(),
            column("process", Storage::Text).not_null(),
            column("from_stage", Storage::Text),
            column("to_stage", Storage::Text).not_null(),
            column("at", Storage::Datetime).not_null(),
            column("by_user", Storage::Text),
            column("comment", Storage::Text),
            column("seconds_in_from", Storage::Integer),
        ],
        // The third covers the funnel (docs/reports.md): its per-record lookup of the stages
        // entered, and the stays per stage, read the index alone, never the table.
        indexes: &[
            &["object", "record_id", "at"],
            &["process", "to_stage"],
            &[
                "object",
                "record_id",
                "process",
                "to_stage",
                "from_stage",
                "seconds_in_from",
            ],
        ],
    },
    // Approvals of transitions (docs/processes.md): one row per transition into a stage whose
    // `approval` applied. `state` is `pending`, `approved`, `rejected` or `recalled`; `step`
    // the current step (from 0). At most one is pending per record.
    SystemTable {
        name: "keel_approvals",
        columns: &[
            ID,
            column("object", Storage::Text).not_null(),
            column("record_id", Storage::Text).not_null(),
            column("process", Storage::Text).not_null(),
            column("from_stage", Storage::Text).not_null(),
            column("stage", Storage::Text).not_null(),
            column("state", Storage::Text).not_null(),
            column("step", Storage::Integer).not_null(),
            column("requested_by", Storage::Text).not_null(),
            column("requested_at", Storage::Datetime).not_null(),
            column("comment", Storage::Text),
            column("decided_at", Storage::Datetime),
            column("decided_by", Storage::Text),
            column("decision_comment", Storage::Text),
        ],
        indexes: &[
            &["object", "record_id", "state"],
            &["requested_by", "requested_at"],
        ],
    },
    // One row per approver and step of an approval, written when the step is reached.
    // `reminders` counts the reminders sent; the scheduler claims reminder n with a
    // conditional update (`reminders < n`), so each goes out once across processes.
    SystemTable {
        name: "keel_approval_tasks",
        columns: &[
            ID,
            column("approval_id", Storage::Text)
                .not_null()
                .references("keel_approvals", OnDelete::Cascade),
            column("step", Storage::Integer).not_null(),
            column("approver", Storage::Text).not_null(),
            column("state", Storage::Text).not_null(),
            column("created_at", Storage::Datetime).not_null(),
            column("decided_at", Storage::Datetime),
            column("comment", Storage::Text),
            column("reminded_at", Storage::Datetime),
            column("reminders", Storage::Integer).not_null(),
        ],
        indexes: &[
            &["approval_id", "step"],
            &["approver", "state"],
            &["state", "created_at"],
        ],
    },
    SystemTable {
        name: "keel_sessions",
        columns: &[
            // The SHA-256 of the session token (hex); the token itself is never stored.
            ID,
            column("user_id", Storage::Text)
                .not_null()
                .references("keel_users", OnDelete::Cascade),
            column("created_at", Storage::Datetime).not_null(),
            column("expires_at", Storage::Datetime).not_null(),
            column("last_seen_at", Storage::Datetime).not_null(),
        ],
        indexes: &[&["user_id"], &["expires_at"]],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_system_table_is_prefixed_and_starts_with_its_id() {
        for table in SYSTEM_TABLES {
            assert!(table.name.starts_with("keel_"), "{}", table.name);
            assert_eq!(table.columns[0].name, "id");
            assert!(table.columns[0].primary_key);
        }
    }

    #[test]
    fn references_and_indexes_name_existing_tables_and_columns() {
        for table in SYSTEM_TABLES {
            for column in table.columns {
                if let Some((target, _)) = column.references {
                    assert!(SYSTEM_TABLES.iter().any(|other| other.name == target));
                }
            }
            for index in table.indexes {
                for name in *index {
                    assert!(table.columns.iter().any(|column| column.name == *name));
                }
            }
        }
    }
}
