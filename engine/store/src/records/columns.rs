//! The columns of one object's table with their storage: how every query in `records` turns
//! a column name into a quoted identifier it may use and the [`Storage`] its values bind and
//! decode with.
//!
//! A name that is not a column of the object is refused here, so no statement ever names a
//! column the metadata does not have. This module does not know fields' options or labels.

use keel_meta::{Object, Storage};

use crate::error::StoreError;

/// Every column of an object's table, in table order (the order of `Object::columns`),
/// borrowed from the object: built on every query, so it allocates one vector and no names.
#[derive(Debug, Clone)]
pub(crate) struct ObjectColumns<'o> {
    table: &'o str,
    /// Name, storage, and whether the column is declared NOT NULL (system columns such as
    /// `id` and `created_at`).
    columns: Vec<(&'o str, Storage, bool)>,
}

impl<'o> ObjectColumns<'o> {
    pub(crate) fn of(object: &'o Object) -> ObjectColumns<'o> {
        let mut columns = Vec::with_capacity(object.fields.len() + 12);
        columns.extend(
            object
                .system_fields()
                .map(|field| (field.name, field.storage, field.not_null)),
        );
        columns.extend(
            object
                .fields
                .values()
                .map(|field| (field.name.as_str(), field.storage(), false)),
        );
        ObjectColumns {
            table: &object.name,
            columns,
        }
    }

    pub(crate) fn table(&self) -> &'o str {
        self.table
    }

    /// The storage of `name`, or [`StoreError::UnknownColumn`].
    pub(crate) fn storage(&self, name: &str) -> Result<Storage, StoreError> {
        self.columns
            .iter()
            .find(|(column, ..)| *column == name)
            .map(|(_, storage, _)| *storage)
            .ok_or_else(|| StoreError::UnknownColumn {
                table: self.table.to_owned(),
                column: name.to_owned(),
            })
    }

    /// Whether `name` can never be NULL, so ordering and keyset predicates may skip NULL
    /// handling (and PostgreSQL can then walk a plain index).
    pub(crate) fn not_null(&self, name: &str) -> bool {
        self.columns
            .iter()
            .any(|(column, _, not_null)| *not_null && *column == name)
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.columns.iter().any(|(column, ..)| *column == name)
    }

    /// Every column's name, in table order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &'o str> + '_ {
        self.columns.iter().map(|(name, ..)| *name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_columns_are_those_the_object_declares_in_table_order() {
        let object = super::super::tests::fixture_object();
        let columns = ObjectColumns::of(&object);
        let declared = object.columns();
        assert_eq!(
            columns.names().collect::<Vec<_>>(),
            declared
                .iter()
                .map(|column| column.name.as_str())
                .collect::<Vec<_>>()
        );
        for column in &declared {
            assert_eq!(columns.storage(&column.name).unwrap(), column.storage);
            assert_eq!(columns.not_null(&column.name), column.not_null);
        }
    }
}
