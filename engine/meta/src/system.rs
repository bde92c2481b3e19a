//! The system fields: the columns Keel maintains on every object's table (and, on objects a
//! pool uses, the pool's columns), listed once with their storage, type and meaning.
//!
//! Storage (the table's columns), the identifier rules (system names are reserved), records
//! as returned, `/meta`, the OpenAPI document and both exports all read this one list, so
//! they cannot disagree about which system fields exist or what a record carries. See
//! docs/app-format.md for the names and docs/api.md for records as returned.

use crate::model::{Object, Storage};

/// One system field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemField {
    pub name: &'static str,
    pub storage: Storage,
    /// The type clients see in `/meta`: `text`, `user`, `datetime` or `integer`.
    pub type_name: &'static str,
    /// Whether the column is NOT NULL in the database.
    pub not_null: bool,
    /// Whether a record carries it as returned (API answers and exports). The recycle bin's
    /// `deleted_at` and `deleted_by` do not: every record an answer or export holds is live.
    pub returned: bool,
    /// Whether it holds a user id, which `_refs` then names.
    pub user: bool,
    /// What it means, for `/meta` and the OpenAPI document.
    pub description: &'static str,
}

const fn field(
    name: &'static str,
    storage: Storage,
    type_name: &'static str,
    not_null: bool,
    description: &'static str,
) -> SystemField {
    SystemField {
        name,
        storage,
        type_name,
        not_null,
        returned: true,
        user: matches!(type_name.as_bytes(), b"user"),
        description,
    }
}

const fn bookkeeping(field: SystemField) -> SystemField {
    SystemField {
        returned: false,
        ..field
    }
}

/// The system fields of every object, in column order.
pub const OBJECT_SYSTEM_FIELDS: [SystemField; 9] = [
    field("id", Storage::Text, "text", true, "The record's id."),
    field(
        "owner",
        Storage::Text,
        "user",
        false,
        "Id of the user who owns the record; empty while it sits in a pool.",
    ),
    field(
        "created_at",
        Storage::Datetime,
        "datetime",
        true,
        "When the record was created.",
    ),
    field(
        "created_by",
        Storage::Text,
        "user",
        false,
        "Id of the user who created the record.",
    ),
    field(
        "updated_at",
        Storage::Datetime,
        "datetime",
        true,
        "When the record last changed.",
    ),
    field(
        "updated_by",
        Storage::Text,
        "user",
        false,
        "Id of the user who last changed the record.",
    ),
    field(
        "version",
        Storage::Integer,
        "integer",
        true,
        "Starts at 1 and grows by 1 with every change; the `ETag` of the record.",
    ),
    bookkeeping(field(
        "deleted_at",
        Storage::Datetime,
        "datetime",
        false,
        "When the record went to the recycle bin.",
    )),
    bookkeeping(field(
        "deleted_by",
        Storage::Text,
        "user",
        false,
        "Id of the user who moved the record to the recycle bin.",
    )),
];

/// The extra system fields of objects that a pool uses, in column order.
pub const POOL_SYSTEM_FIELD_LIST: [SystemField; 3] = [
    field(
        "pool",
        Storage::Text,
        "text",
        false,
        "The pool the record sits in, if any.",
    ),
    field(
        "claimed_at",
        Storage::Datetime,
        "datetime",
        false,
        "When the record was last claimed from a pool.",
    ),
    field(
        "returned_at",
        Storage::Datetime,
        "datetime",
        false,
        "When the record last went back to a pool.",
    ),
];

const fn names<const N: usize>(fields: &[SystemField; N]) -> [&'static str; N] {
    let mut names = [""; N];
    let mut index = 0;
    while index < N {
        names[index] = fields[index].name;
        index += 1;
    }
    names
}

/// The names of the fields every object has, maintained by the engine.
pub const SYSTEM_FIELDS: &[&str] = &names(&OBJECT_SYSTEM_FIELDS);

/// The names of the extra system fields of objects that a pool uses.
pub const POOL_SYSTEM_FIELDS: &[&str] = &names(&POOL_SYSTEM_FIELD_LIST);

/// Whether `name` is a system field of any object (and so reserved).
pub fn is_system_field(name: &str) -> bool {
    SYSTEM_FIELDS.contains(&name) || POOL_SYSTEM_FIELDS.contains(&name)
}

impl Object {
    /// The system fields of this object's table, in column order.
    pub fn system_fields(&self) -> impl Iterator<Item = &'static SystemField> {
        let pool: &'static [SystemField] = if self.pooled {
            &POOL_SYSTEM_FIELD_LIST
        } else {
            &[]
        };
        OBJECT_SYSTEM_FIELDS.iter().chain(pool)
    }

    /// The system fields a record of this object carries as returned, in order.
    pub fn returned_system_fields(&self) -> impl Iterator<Item = &'static SystemField> {
        self.system_fields().filter(|field| field.returned)
    }

    /// Whether a record of this object carries the system field `name` as returned.
    pub fn returns_system_field(&self, name: &str) -> bool {
        self.returned_system_fields()
            .any(|field| field.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_fields_are_the_ones_typed_user() {
        let users: Vec<&str> = OBJECT_SYSTEM_FIELDS
            .iter()
            .chain(&POOL_SYSTEM_FIELD_LIST)
            .filter(|field| field.user)
            .map(|field| field.name)
            .collect();
        assert_eq!(users, ["owner", "created_by", "updated_by", "deleted_by"]);
    }

    #[test]
    fn the_name_lists_follow_the_table() {
        assert_eq!(SYSTEM_FIELDS.len(), OBJECT_SYSTEM_FIELDS.len());
        assert_eq!(SYSTEM_FIELDS[0], "id");
        assert_eq!(POOL_SYSTEM_FIELDS, ["pool", "claimed_at", "returned_at"]);
        assert!(is_system_field("deleted_by") && is_system_field("claimed_at"));
        assert!(!is_system_field("name"));
    }
}
