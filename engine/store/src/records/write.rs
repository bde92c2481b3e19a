//! The write transaction the runtime saves records through: lock-and-read, insert (a create
//! with its audit rows, keys, outbox rows and duplicate lookup in one round trip, and its
//! undo), versioned
//! update, set-based update, selects for duplicate checks and share-locked selects of lookup
//! targets, gapless sequence numbers and audit rows, all committed or rolled back together. Every insert and every update that moves a
//! duplicate key field or `deleted_at` also brings the record's normalised duplicate keys
//! (`duplicate_keys`) in line, in the same transaction.
//!
//! On SQLite the transaction starts with `BEGIN IMMEDIATE`, which takes the write lock up
//! front and so serializes writers (and makes `get_for_update` a plain read); on PostgreSQL
//! `get_for_update` is `SELECT … FOR UPDATE`. A unique violation becomes
//! [`StoreError::UniqueViolation`] naming the column. This module does not fill in any value
//! (timestamps, owners, ids and versions of new rows come from the caller) and does not
//! decide whether a write is allowed.

use keel_meta::{Object, Storage, Value};
use sqlx::error::ErrorKind;

use super::audit::{AuditEntry, audit_insert_statements, write_audit};
use super::columns::ObjectColumns;
use super::duplicate_keys::{self, KeyMatch, KeyValue};
use super::execute::{Shape, execute, fetch, fetch_raw};
use super::select::{RowLock, run_select, select_statement};
use super::statement::Statement;
use super::{Deleted, Row, SelectQuery, by_id};
use crate::db::{Db, Dialect, WriteTransaction, WriteTurn};
use crate::error::StoreError;
use crate::naming::unique_index_name;

/// SQLite allows 32,766 parameters per statement and PostgreSQL 65,535; multi-row inserts
/// stay well under both.
const MAX_PARAMETERS_PER_STATEMENT: usize = 30_000;

/// An open write transaction. Dropping it without [`RecordWrite::commit`] rolls it back.
pub struct RecordWrite {
    transaction: WriteTransaction,
    dialect: Dialect,
}

impl Db {
    /// Starts a write transaction for records (`BEGIN IMMEDIATE` on SQLite).
    pub async fn begin_records_write(&self) -> Result<RecordWrite, StoreError> {
        Ok(RecordWrite {
            transaction: self.begin_write().await?,
            dialect: self.dialect(),
        })
    }

    /// Waits for this process's turn to write records, for a write that first reads what it
    /// will change and may then write nothing (a claim of a record someone may hold).
    pub async fn records_write_turn(&self) -> Result<RecordTurn, StoreError> {
        Ok(RecordTurn {
            turn: self.write_turn().await?,
            db: self.clone(),
        })
    }
}

/// A write at its turn, before its transaction begins ([`Db::records_write_turn`]). On
/// SQLite it holds the writer connection, so no other writer of this process runs until it
/// is dropped or has begun and ended its transaction, and a read that finds nothing to write
/// ends without a transaction to roll back; on PostgreSQL it holds nothing and reads from the
/// pool. Either way what it reads may still change before the transaction (another process
/// on SQLite): the write must check it did not (a versioned update).
pub struct RecordTurn {
    turn: WriteTurn,
    db: Db,
}

impl RecordTurn {
    /// The record `id` as of now.
    pub async fn get(
        &mut self,
        object: &Object,
        id: &str,
        deleted: Deleted,
    ) -> Result<Option<Row>, StoreError> {
        match &mut self.turn {
            WriteTurn::Sqlite(turn) => {
                let plan =
                    select_statement(Dialect::Sqlite, &by_id(object, id, deleted), RowLock::None)?;
                Ok(run_select(&mut turn.connection(), &plan)
                    .await?
                    .into_iter()
                    .next())
            }
            WriteTurn::Postgres(_) => super::get(&self.db, object, id, deleted).await,
        }
    }

    /// Begins the write transaction.
    pub async fn begin(self) -> Result<RecordWrite, StoreError> {
        Ok(RecordWrite {
            transaction: self.turn.begin().await?,
            dialect: self.db.dialect(),
        })
    }
}

impl RecordWrite {
    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub(crate) fn connection(&mut self) -> crate::db::Connection<'_> {
        self.transaction.connection()
    }

    /// The record `id`, deleted or not, locked until this transaction ends.
    pub async fn get_for_update(
        &mut self,
        object: &Object,
        id: &str,
    ) -> Result<Option<Row>, StoreError> {
        let plan = select_statement(
            self.dialect,
            &by_id(object, id, Deleted::Include),
            RowLock::Update,
        )?;
        let rows = run_select(&mut self.transaction.connection(), &plan).await?;
        Ok(rows.into_iter().next())
    }

    /// Inserts one record. `row` names columns of the object; a row without `version` starts
    /// at version 1.
    pub async fn insert(&mut self, object: &Object, row: &Row) -> Result<(), StoreError> {
        self.insert_many(object, std::slice::from_ref(row)).await
    }

    /// Inserts many records with multi-row INSERTs. The statement names every column any
    /// row has; a row without one of them gets NULL there (and version 1 without `version`).
    pub async fn insert_many(&mut self, object: &Object, rows: &[Row]) -> Result<(), StoreError> {
        let columns = ObjectColumns::of(object);
        for statement in insert_statements(self.dialect, &columns, rows)? {
            self.execute_write(&columns, &statement).await?;
        }
        duplicate_keys::insert_rows(&mut self.transaction.connection(), object, rows).await
    }

    /// Inserts one record with its `audit` rows, its duplicate keys and the `outbox` rows its
    /// save leaves for after the commit, then returns the
    /// other records holding any of `probes` (see [`duplicate_keys::find`]) — all in one
    /// round trip ([`Statement::batch`]): the save path of a create. On PostgreSQL the
    /// lookup reads the snapshot its statement started with, so the caller locks the
    /// `block` values first ([`RecordWrite::lock_duplicate_keys`]); on SQLite the write
    /// lock is already held. The caller rolls back when a match must refuse the save.
    pub async fn insert_checked(
        &mut self,
        object: &Object,
        row: &Row,
        audit: &[AuditEntry],
        outbox: &[crate::outbox::NewEntry],
        probes: &[KeyValue],
        per_key: u32,
    ) -> Result<Vec<KeyMatch>, StoreError> {
        let columns = ObjectColumns::of(object);
        let rows = std::slice::from_ref(row);
        let mut statements = insert_statements(self.dialect, &columns, rows)?;
        statements.extend(duplicate_keys::insert_statements(
            self.dialect,
            object,
            rows,
        )?);
        statements.extend(audit_insert_statements(self.dialect, audit)?);
        statements.extend(crate::outbox::insert_statement(self.dialect, outbox)?);
        let own_id = match row.get("id") {
            Some(Value::Text(id)) => Some(id.as_str()),
            _ => None,
        };
        let find =
            duplicate_keys::find_statement(self.dialect, &object.name, probes, own_id, per_key)?;
        let finds = find.is_some();
        statements.extend(find);
        let Some(batch) = Statement::batch(statements) else {
            return Ok(Vec::new());
        };
        let shapes: &[Shape] = if finds {
            &duplicate_keys::FIND_SHAPES
        } else {
            &[]
        };
        let rows = fetch_raw(&mut self.transaction.connection(), &batch, shapes)
            .await?
            .map_err(|error| write_error(&columns, &batch.sql, error))?;
        Ok(duplicate_keys::matches(probes, rows))
    }

    /// Takes back an [`RecordWrite::insert_checked`] whose save was refused, so that the
    /// rest of the transaction (a bulk call collecting every item's problems) does not see
    /// the record, its keys, its audit rows or its outbox rows (`outbox_ids`). One round
    /// trip.
    pub async fn undo_insert(
        &mut self,
        object: &Object,
        id: &str,
        outbox_ids: &[String],
    ) -> Result<(), StoreError> {
        let columns = ObjectColumns::of(object);
        let mut statements =
            duplicate_keys::delete_statements(self.dialect, object, &[id.to_owned()])?;
        statements.extend(crate::outbox::delete_statement(self.dialect, outbox_ids)?);
        for (table, column) in [(super::audit::TABLE, "record_id"), (columns.table(), "id")] {
            let mut statement = Statement::new(self.dialect, table);
            statement.push("DELETE FROM ");
            statement.push_identifier(table);
            statement.push(" WHERE ");
            if table == super::audit::TABLE {
                statement.push("\"object\" = ");
                statement.push_value(&Value::Text(object.name.clone()), Storage::Text)?;
                statement.push(" AND ");
            }
            statement.push_identifier(column);
            statement.push(" = ");
            statement.push_value(&Value::Text(id.to_owned()), Storage::Text)?;
            statements.push(statement);
        }
        if let Some(batch) = Statement::batch(statements) {
            self.execute_write(&columns, &batch).await?;
        }
        Ok(())
    }

    /// Applies `changes` to record `id` if it is still at `expected_version`, and bumps the
    /// version. Returns false when no row matched (gone, or changed by someone else). The
    /// caller includes `updated_at`/`updated_by` in `changes`; `id` and `version` may not be
    /// changed.
    pub async fn update(
        &mut self,
        object: &Object,
        id: &str,
        expected_version: i64,
        changes: &Row,
    ) -> Result<bool, StoreError> {
        let columns = ObjectColumns::of(object);
        let statement = versioned_update(self.dialect, &columns, id, expected_version, changes)?;
        let updated = self.execute_write(&columns, &statement).await? == 1;
        if updated {
            self.refresh_keys_after_update(object, id, changes).await?;
        }
        Ok(updated)
    }

    /// [`RecordWrite::update`] run last in one round trip after `before` (inserts of rows
    /// that go with the change: its audit trail, its pool history). The inserts run whether
    /// or not the update finds the record at `expected_version`; when it does not (→
    /// `false`), the caller must roll this transaction back (drop it), not go on with it.
    pub(crate) async fn update_after(
        &mut self,
        object: &Object,
        id: &str,
        expected_version: i64,
        changes: &Row,
        mut before: Vec<Statement>,
    ) -> Result<bool, StoreError> {
        let columns = ObjectColumns::of(object);
        let mut update = versioned_update(self.dialect, &columns, id, expected_version, changes)?;
        update.push(" RETURNING ");
        update.push_identifier("id");
        before.push(update);
        let Some(batch) = Statement::batch(before) else {
            return Ok(false);
        };
        let updated = !fetch_raw(
            &mut self.transaction.connection(),
            &batch,
            &[Shape::Stored(Storage::Text)],
        )
        .await?
        .map_err(|error| write_error(&columns, &batch.sql, error))?
        .is_empty();
        if updated {
            self.refresh_keys_after_update(object, id, changes).await?;
        }
        Ok(updated)
    }

    /// Brings the duplicate keys of record `id` in line after an update of `changes`, when
    /// they touch a key field.
    async fn refresh_keys_after_update(
        &mut self,
        object: &Object,
        id: &str,
        changes: &Row,
    ) -> Result<(), StoreError> {
        if duplicate_keys::touches_keys(object, changes.keys().cloned()) {
            duplicate_keys::refresh(&mut self.transaction.connection(), object, &[id.to_owned()])
                .await?;
        }
        Ok(())
    }

    /// Locks the normalised values `keys` of `object` until this transaction ends (see
    /// [`duplicate_keys`]): taken before a `block` check, so two saves of the same value
    /// cannot both pass it.
    pub async fn lock_duplicate_keys(
        &mut self,
        object: &str,
        keys: &[KeyValue],
    ) -> Result<(), StoreError> {
        duplicate_keys::lock(&mut self.transaction.connection(), object, keys).await
    }

    /// The records holding each of `probes` (see [`duplicate_keys::find`]), as this
    /// transaction sees them.
    pub async fn find_duplicate_keys(
        &mut self,
        object: &str,
        probes: &[KeyValue],
        exclude: Option<&str>,
        per_key: u32,
    ) -> Result<Vec<KeyMatch>, StoreError> {
        duplicate_keys::find(
            &mut self.transaction.connection(),
            object,
            probes,
            exclude,
            per_key,
        )
        .await
    }

    /// [`super::select`] inside this transaction (it sees this transaction's writes).
    pub async fn select(&mut self, query: &SelectQuery<'_>) -> Result<Vec<Row>, StoreError> {
        let plan = select_statement(self.dialect, query, RowLock::None)?;
        run_select(&mut self.transaction.connection(), &plan).await
    }

    /// [`RecordWrite::select`], keeping the rows it finds from being changed or deleted by
    /// anyone else until this transaction ends (`FOR SHARE` on PostgreSQL): for the target of
    /// a lookup being saved, so a concurrent delete either waits and then sees the new
    /// reference (a `restrict` refuses), or goes first and the save finds no target.
    pub async fn select_shared(&mut self, query: &SelectQuery<'_>) -> Result<Vec<Row>, StoreError> {
        let plan = select_statement(self.dialect, query, RowLock::Share)?;
        run_select(&mut self.transaction.connection(), &plan).await
    }

    /// How many records of `object` match `condition`, inside this transaction (a script's
    /// `count`, which must see the save it runs in).
    pub async fn count(
        &mut self,
        object: &Object,
        condition: &super::Condition,
        deleted: Deleted,
    ) -> Result<i64, StoreError> {
        let (statement, shapes) =
            super::select::count_statement(self.dialect, object, condition, deleted)?;
        let rows = fetch(&mut self.transaction.connection(), &statement, &shapes).await?;
        match rows.first().and_then(|row| row.first()) {
            Some(Value::Integer(count)) => Ok(*count),
            _ => Err(StoreError::UnreadableValue {
                what: format!("the count of `{}` records", object.name),
            }),
        }
    }

    /// The next number of the counter `key`, starting at 1. The counter row stays locked
    /// until this transaction ends, so numbers are gapless and never handed out twice: a
    /// rolled-back transaction gives its number back.
    pub async fn next_sequence(&mut self, key: &str) -> Result<i64, StoreError> {
        const TABLE: &str = "keel_sequences";
        let mut statement = Statement::new(self.dialect, TABLE);
        statement.push("INSERT INTO ");
        statement.push_identifier(TABLE);
        statement.push(" (\"id\", \"value\") VALUES (");
        statement.push_value(&Value::Text(key.to_owned()), Storage::Text)?;
        statement.push(", 1) ON CONFLICT (\"id\") DO UPDATE SET \"value\" = ");
        statement.push_identifier(TABLE);
        statement.push(".\"value\" + 1 RETURNING \"value\"");
        let rows = fetch(
            &mut self.transaction.connection(),
            &statement,
            &[Shape::Stored(Storage::Integer)],
        )
        .await?;
        match rows.first().and_then(|row| row.first()) {
            Some(Value::Integer(value)) => Ok(*value),
            _ => Err(StoreError::UnreadableValue {
                what: format!("the next value of the sequence `{key}`"),
            }),
        }
    }

    /// Whether `id` is an active user: a record's owner must be one. Asked inside the write
    /// transaction, so it holds when the record is saved.
    pub async fn is_active_user(&mut self, id: &str) -> Result<bool, StoreError> {
        const TABLE: &str = "keel_users";
        let mut statement = Statement::new(self.dialect, TABLE);
        statement.push("SELECT \"id\" FROM ");
        statement.push_identifier(TABLE);
        statement.push(" WHERE \"id\" = ");
        statement.push_value(&Value::Text(id.to_owned()), Storage::Text)?;
        statement.push(" AND \"active\" = TRUE");
        let rows = fetch(
            &mut self.transaction.connection(),
            &statement,
            &[Shape::Stored(Storage::Text)],
        )
        .await?;
        Ok(!rows.is_empty())
    }

    /// Appends `entries` to the audit trail.
    pub async fn insert_audit(&mut self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        write_audit(&mut self.transaction.connection(), entries).await
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.transaction.commit().await
    }

    /// Runs a write, mapping unique violations to [`StoreError::UniqueViolation`].
    async fn execute_write(
        &mut self,
        columns: &ObjectColumns<'_>,
        statement: &Statement,
    ) -> Result<u64, StoreError> {
        let mut connection = self.transaction.connection();
        execute(&mut connection, statement)
            .await?
            .map_err(|error| write_error(columns, &statement.sql, error))
    }
}

/// The multi-row INSERTs of `rows`: every column any row has; a row without one of them
/// gets NULL there (and version 1 without `version`).
fn insert_statements(
    dialect: Dialect,
    columns: &ObjectColumns<'_>,
    rows: &[Row],
) -> Result<Vec<Statement>, StoreError> {
    let mut names: Vec<&str> = Vec::new();
    for row in rows {
        for name in row.keys() {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    if !names.contains(&"version") {
        names.push("version");
    }
    let storages: Vec<Storage> = names
        .iter()
        .map(|name| columns.storage(name))
        .collect::<Result<_, _>>()?;
    let rows_per_statement = (MAX_PARAMETERS_PER_STATEMENT / names.len()).max(1);
    let mut statements = Vec::new();
    for chunk in rows.chunks(rows_per_statement) {
        let mut statement = Statement::new(dialect, columns.table());
        statement.push("INSERT INTO ");
        statement.push_identifier(columns.table());
        statement.push(" (");
        for (index, name) in names.iter().enumerate() {
            if index > 0 {
                statement.push(", ");
            }
            statement.push_identifier(name);
        }
        statement.push(") VALUES ");
        for (row_index, row) in chunk.iter().enumerate() {
            if row_index > 0 {
                statement.push(", ");
            }
            statement.push("(");
            for (index, (name, storage)) in names.iter().zip(&storages).enumerate() {
                if index > 0 {
                    statement.push(", ");
                }
                let value = match row.get(*name) {
                    Some(value) => value,
                    None if *name == "version" => &Value::Integer(1),
                    None => &Value::Null,
                };
                statement.push_value(value, *storage)?;
            }
            statement.push(")");
        }
        statements.push(statement);
    }
    Ok(statements)
}

/// `UPDATE "table" SET "a" = ?, …, "version" = "version" + 1`.
/// `UPDATE … SET changes WHERE id = id AND version = expected_version`.
fn versioned_update(
    dialect: Dialect,
    columns: &ObjectColumns<'_>,
    id: &str,
    expected_version: i64,
    changes: &Row,
) -> Result<Statement, StoreError> {
    let mut statement = update_head(dialect, columns, changes)?;
    statement.push(" WHERE ");
    statement.push_identifier("id");
    statement.push(" = ");
    statement.push_value(&Value::Text(id.to_owned()), Storage::Text)?;
    statement.push(" AND ");
    statement.push_identifier("version");
    statement.push(" = ");
    statement.push_value(&Value::Integer(expected_version), Storage::Integer)?;
    Ok(statement)
}

fn update_head(
    dialect: Dialect,
    columns: &ObjectColumns<'_>,
    changes: &Row,
) -> Result<Statement, StoreError> {
    let mut statement = Statement::new(dialect, columns.table());
    statement.push("UPDATE ");
    statement.push_identifier(columns.table());
    statement.push(" SET ");
    for (name, value) in changes {
        if name == "id" || name == "version" {
            return Err(statement.invalid(format!("`{name}` is kept by the store")));
        }
        let storage = columns.storage(name)?;
        statement.push_identifier(name);
        statement.push(" = ");
        statement.push_value(value, storage)?;
        statement.push(", ");
    }
    statement.push("\"version\" = \"version\" + 1");
    Ok(statement)
}

/// A failed write as a [`StoreError`]: unique violations by name, anything else with its SQL.
fn write_error(columns: &ObjectColumns<'_>, sql: &str, error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(database_error) = &error
        && database_error.kind() == ErrorKind::UniqueViolation
    {
        return StoreError::UniqueViolation {
            table: columns.table().to_owned(),
            column: unique_violation_column(
                columns,
                database_error.constraint(),
                database_error.message(),
            ),
        };
    }
    StoreError::Query {
        context: format!("running `{sql}`"),
        source: error,
    }
}

/// The column a unique violation is about: from the constraint name on PostgreSQL (Keel
/// names every unique index, see `naming`), from the message on SQLite ("UNIQUE constraint
/// failed: lead.phone").
fn unique_violation_column(
    columns: &ObjectColumns<'_>,
    constraint: Option<&str>,
    message: &str,
) -> Option<String> {
    let table = columns.table();
    if let Some(constraint) = constraint {
        if constraint == format!("{table}_pkey") {
            return Some("id".to_owned());
        }
        return columns
            .names()
            .find(|name| unique_index_name(table, name) == constraint)
            .map(str::to_owned);
    }
    let failed = message.strip_prefix("UNIQUE constraint failed: ")?;
    let first = failed.split(", ").next()?;
    let column = first.strip_prefix(table)?.strip_prefix('.')?;
    columns.contains(column).then(|| column.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_name_their_column_on_both_databases() {
        let object: Object = super::super::tests::fixture_object();
        let columns = ObjectColumns::of(&object);
        assert_eq!(
            unique_violation_column(&columns, None, "UNIQUE constraint failed: deal.code"),
            Some("code".to_owned())
        );
        assert_eq!(
            unique_violation_column(&columns, Some("deal_code_key"), "duplicate key"),
            Some("code".to_owned())
        );
        assert_eq!(
            unique_violation_column(&columns, Some("deal_pkey"), "duplicate key"),
            Some("id".to_owned())
        );
        assert_eq!(
            unique_violation_column(&columns, Some("someone_elses"), "duplicate key"),
            None
        );
    }
}
