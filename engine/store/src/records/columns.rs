//! The columns of one object's table with their storage: how every query in `records` turns
//! a column name into a quoted identifier it may use and the [`Storage`] its values bind and
//! decode with.
//!
//! A name that is not a column of the object is refused here, so no statement ever names a
//! column the metadata does not have. This module does not know fields' options or labels.

use keel_meta::{Object, Storage};

use crate::error::StoreError;

/// Every column of an object's table, in table order.
#[derive(Debug, Clone)]
pub(crate) struct ObjectColumns {
    table: String,
    columns: Vec<(String, Storage)>,
    /// The columns declared NOT NULL (system columns such as `id` and `created_at`).
    not_null: Vec<String>,
}

impl ObjectColumns {
    pub(crate) fn of(object: &Object) -> ObjectColumns {
        let columns = object.columns();
        ObjectColumns {
            table: object.name.clone(),
            not_null: columns
                .iter()
                .filter(|column| column.not_null)
                .map(|column| column.name.clone())
                .collect(),
            columns: columns
                .into_iter()
                .map(|column| (column.name, column.storage))
                .collect(),
        }
    }

    pub(crate) fn table(&self) -> &str {
        &self.table
    }

    /// The storage of `name`, or [`StoreError::UnknownColumn`].
    pub(crate) fn storage(&self, name: &str) -> Result<Storage, StoreError> {
        self.columns
            .iter()
            .find(|(column, _)| column == name)
            .map(|(_, storage)| *storage)
            .ok_or_else(|| StoreError::UnknownColumn {
                table: self.table.clone(),
                column: name.to_owned(),
            })
    }

    /// Whether `name` can never be NULL, so ordering and keyset predicates may skip NULL
    /// handling (and PostgreSQL can then walk a plain index).
    pub(crate) fn not_null(&self, name: &str) -> bool {
        self.not_null.iter().any(|column| column == name)
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.columns.iter().any(|(column, _)| column == name)
    }

    pub(crate) fn all(&self) -> &[(String, Storage)] {
        &self.columns
    }
}
