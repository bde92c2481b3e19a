//! The write path: create, update, delete (to the recycle bin), restore and bulk, each in one
//! transaction with the audit rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use keel_meta::{FieldKind, FormulaType, Object, Value};
use keel_script::sandbox::ScriptValue;
use keel_store::StoreError;
use keel_store::records::{
    AuditEntry, CompareOp, Condition, Deleted, RecordWrite, Row, SelectQuery,
};
use rust_decimal::Decimal;
use serde_json::Value as Json;

use crate::actor::Actor;
use crate::coerce::{FieldProblem, Source, check_required};
use crate::records::access::{self, Action};
use crate::records::input::{Purpose, default_value, prepare};
use crate::records::read::{Reader, in_scope};
use crate::records::{DuplicateMatch, Input, MAX_BULK_ITEMS, RecordError, Records, Saved};

/// Who saves, when, and the `warn` duplicates a save collects on its way.
pub(super) struct SaveContext<'a> {
    pub actor: &'a Actor,
    pub now: DateTime<Utc>,
    pub warnings: Vec<DuplicateMatch>,
    /// Typed JSON (the API) or text cells (CSV import).
    pub source: Source,
}

impl Records {
    /// Creates a record → the whole record as the actor sees it.
    pub async fn create(
        &self,
        actor: &Actor,
        object: &str,
        input: Input,
    ) -> Result<Saved, RecordError> {
        let object = self.object(object)?;
        let now = self.clock.now();
        let mut write = self.db.begin_records_write().await?;
        let mut save = SaveContext {
            actor,
            now,
            warnings: Vec::new(),
            source: Source::Json,
        };
        let result = self
            .create_in(&mut write, &mut save, object, &input, None)
            .await;
        self.finish_save(write, result, actor, object, save.warnings)
            .await
    }

    /// Changes the fields given in `input`; `if_match` is the version the client last saw.
    pub async fn update(
        &self,
        actor: &Actor,
        object: &str,
        id: &str,
        input: Input,
        if_match: Option<i64>,
    ) -> Result<Saved, RecordError> {
        let object = self.object(object)?;
        let now = self.clock.now();
        let mut write = self.db.begin_records_write().await?;
        let mut save = SaveContext {
            actor,
            now,
            warnings: Vec::new(),
            source: Source::Json,
        };
        let result = self
            .update_in(&mut write, &mut save, object, id, &input, if_match)
            .await;
        self.finish_save(write, result, actor, object, save.warnings)
            .await
    }

    /// Moves a record to the recycle bin.
    pub async fn delete(&self, actor: &Actor, object: &str, id: &str) -> Result<(), RecordError> {
        let object = self.object(object)?;
        let now = self.clock.now();
        let mut write = self.db.begin_records_write().await?;
        self.set_deleted(&mut write, actor, object, id, true, now)
            .await?;
        write.commit().await?;
        Ok(())
    }

    /// Brings a record back from the recycle bin, with its history.
    pub async fn restore(
        &self,
        actor: &Actor,
        object: &str,
        id: &str,
    ) -> Result<Json, RecordError> {
        let object = self.object(object)?;
        let now = self.clock.now();
        let mut write = self.db.begin_records_write().await?;
        let row = self
            .set_deleted(&mut write, actor, object, id, false, now)
            .await?;
        write.commit().await?;
        Ok(self.saved(actor, object, row, Vec::new()).await?.record)
    }

    /// Up to [`MAX_BULK_ITEMS`] creates (items without `id`) and updates (items with `id`),
    /// all or nothing. Problems are reported as `<index>.<field>`.
    pub async fn bulk(
        &self,
        actor: &Actor,
        object: &str,
        items: Vec<Input>,
    ) -> Result<Vec<Json>, RecordError> {
        let object = self.object(object)?;
        if items.len() > MAX_BULK_ITEMS {
            return Err(RecordError::BadRequest(format!(
                "a bulk call takes at most {MAX_BULK_ITEMS} items, not {}",
                items.len()
            )));
        }
        let now = self.clock.now();
        let mut write = self.db.begin_records_write().await?;
        let mut rows = Vec::with_capacity(items.len());
        let mut problems: Vec<FieldProblem> = Vec::new();
        let mut save = SaveContext {
            actor,
            now,
            warnings: Vec::new(),
            source: Source::Json,
        };
        for (index, mut item) in items.into_iter().enumerate() {
            let result = match item.remove("id") {
                Some(Json::String(id)) => {
                    self.update_in(&mut write, &mut save, object, &id, &item, None)
                        .await
                }
                Some(_) => Err(RecordError::Invalid(vec![FieldProblem {
                    field: "id".to_owned(),
                    code: "invalid_type",
                    message: "expected a record id".to_owned(),
                }])),
                None => {
                    self.create_in(&mut write, &mut save, object, &item, None)
                        .await
                }
            };
            match result {
                Ok(row) => rows.push(row),
                Err(RecordError::Invalid(item_problems)) => {
                    problems.extend(item_problems.into_iter().map(|p| FieldProblem {
                        field: format!("{index}.{}", p.field),
                        ..p
                    }));
                }
                Err(RecordError::NotFound) => problems.push(FieldProblem {
                    field: format!("{index}.id"),
                    code: "not_found",
                    message: "no such record".to_owned(),
                }),
                Err(RecordError::Conflict { message, field, .. }) => problems.push(FieldProblem {
                    field: format!("{index}.{}", field.unwrap_or_default()),
                    code: "conflict",
                    message,
                }),
                Err(other) => return Err(other),
            }
        }
        if !problems.is_empty() {
            // Dropping `write` rolls everything back.
            return Err(RecordError::Invalid(problems));
        }
        write.commit().await?;
        let fields = super::output::output_fields(&self.schema, actor, object, None)?;
        super::output::render_rows(self, actor, object, &fields, &rows).await
    }

    /// Commits a successful save and renders it; on failure the transaction rolls back
    /// first, then a conflict gets its owner names (which need a connection of their own).
    async fn finish_save(
        &self,
        write: RecordWrite,
        result: Result<Row, RecordError>,
        actor: &Actor,
        object: &Object,
        warnings: Vec<DuplicateMatch>,
    ) -> Result<Saved, RecordError> {
        match result {
            Ok(row) => {
                write.commit().await?;
                self.saved(actor, object, row, warnings).await
            }
            Err(error) => {
                drop(write);
                Err(self.named(error).await)
            }
        }
    }

    /// Fills owner names into a conflict's duplicate matches (after the transaction ended).
    async fn named(&self, error: RecordError) -> RecordError {
        match error {
            RecordError::Conflict {
                message,
                field,
                mut matches,
            } => {
                self.name_owners(&mut matches).await;
                RecordError::Conflict {
                    message,
                    field,
                    matches,
                }
            }
            other => other,
        }
    }

    /// Creates the records of one import batch in one transaction, each with the id the
    /// importer derived from its file and row; rows whose id already exists are skipped, so
    /// an interrupted import can simply run again. Returns (created, skipped).
    pub async fn import_batch(
        &self,
        actor: &Actor,
        object: &str,
        rows: Vec<(String, Input)>,
    ) -> Result<(usize, usize), RecordError> {
        let object = self.object(object)?;
        let now = self.clock.now();
        let mut write = self.db.begin_records_write().await?;
        let ids: Vec<Value> = rows.iter().map(|(id, _)| Value::Text(id.clone())).collect();
        let query = SelectQuery {
            object,
            condition: Condition::In {
                column: "id".to_owned(),
                values: ids,
            },
            deleted: Deleted::Include,
            sort: Vec::new(),
            after: None,
            limit: None,
            columns: Some(vec!["id".to_owned()]),
        };
        let existing: std::collections::HashSet<String> = write
            .select(&query)
            .await?
            .into_iter()
            .filter_map(|row| match row.get("id") {
                Some(Value::Text(id)) => Some(id.clone()),
                _ => None,
            })
            .collect();
        let mut save = SaveContext {
            actor,
            now,
            warnings: Vec::new(),
            source: Source::Text,
        };
        let (mut created, mut skipped) = (0, 0);
        for (id, input) in rows {
            if existing.contains(&id) {
                skipped += 1;
                continue;
            }
            if let Err(error) = self
                .create_in(&mut write, &mut save, object, &input, Some(id))
                .await
            {
                drop(write);
                return Err(self.named(error).await);
            }
            created += 1;
        }
        write.commit().await?;
        Ok((created, skipped))
    }

    async fn saved(
        &self,
        actor: &Actor,
        object: &Object,
        row: Row,
        mut warnings: Vec<DuplicateMatch>,
    ) -> Result<Saved, RecordError> {
        self.name_owners(&mut warnings).await;
        let fields = super::output::output_fields(&self.schema, actor, object, None)?;
        let mut records =
            super::output::render_rows(self, actor, object, &fields, std::slice::from_ref(&row))
                .await?;
        Ok(Saved {
            record: records.pop().unwrap_or(Json::Null),
            warnings: Records::duplicate_warnings(warnings),
        })
    }

    /// Refuses the save when a `block` duplicate key matches; collects `warn` matches.
    async fn check_duplicates(
        &self,
        write: &mut RecordWrite,
        object: &Object,
        row: &Row,
        warnings: &mut Vec<DuplicateMatch>,
    ) -> Result<(), RecordError> {
        if object.duplicates.is_empty() {
            return Ok(());
        }
        let (blocking, warning) = self
            .duplicate_matches(&mut Reader::Write(write), object, row)
            .await?;
        if let Some(first) = blocking.first() {
            return Err(RecordError::Conflict {
                message: format!(
                    "a {} record with the same {} already exists: {} ({})",
                    object.name,
                    first.fields.join(" + "),
                    first.title,
                    first.id
                ),
                field: first.fields.first().cloned(),
                matches: blocking,
            });
        }
        warnings.extend(warning);
        Ok(())
    }

    fn timezone(&self) -> Tz {
        self.schema
            .app
            .timezone
            .parse()
            .unwrap_or(chrono_tz::Asia::Shanghai)
    }

    pub(super) async fn create_in(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        object: &Object,
        input: &Input,
        preassigned_id: Option<String>,
    ) -> Result<Row, RecordError> {
        let (actor, now) = (save.actor, save.now);
        if !access::can_create(&self.schema, actor, &object.name) {
            return Err(RecordError::Forbidden {
                message: format!("you may not create {} records", object.name),
                fields: Vec::new(),
            });
        }
        let timezone = self.timezone();
        let prepared = prepare(
            &self.schema,
            actor,
            object,
            input,
            None,
            timezone,
            Purpose::Save,
            save.source,
        )?;
        let mut row = Row::new();
        let id = preassigned_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        row.insert("id".to_owned(), Value::Text(id));
        let in_pool = prepared.pool.as_ref().is_some_and(|pool| !pool.is_null());
        let owner = match (&prepared.owner, in_pool) {
            (Some(owner), _) => owner.clone(),
            (None, true) => Value::Null,
            (None, false) => Value::Text(actor.id.clone()),
        };
        row.insert("owner".to_owned(), owner);
        row.insert("created_at".to_owned(), Value::Datetime(now));
        row.insert("created_by".to_owned(), Value::Text(actor.id.clone()));
        row.insert("updated_at".to_owned(), Value::Datetime(now));
        row.insert("updated_by".to_owned(), Value::Text(actor.id.clone()));
        row.insert("version".to_owned(), Value::Integer(1));
        row.insert("deleted_at".to_owned(), Value::Null);
        row.insert("deleted_by".to_owned(), Value::Null);
        if object.pooled {
            row.insert(
                "pool".to_owned(),
                prepared.pool.clone().unwrap_or(Value::Null),
            );
            row.insert("claimed_at".to_owned(), Value::Null);
            row.insert("returned_at".to_owned(), Value::Null);
        }
        for name in object.fields.keys() {
            let value = match prepared.values.get(name) {
                Some(value) => value.clone(),
                None => default_value(object, name, actor, now, timezone).unwrap_or(Value::Null),
            };
            row.insert(name.clone(), value);
        }
        self.check_and_compute(write, actor, object, &mut row, None, now)
            .await?;
        self.check_duplicates(write, object, &row, &mut save.warnings)
            .await?;
        write
            .insert(object, &row)
            .await
            .map_err(|error| unique_conflict(object, error))?;
        let entries: Vec<AuditEntry> = object
            .fields
            .keys()
            .map(String::as_str)
            .chain(["owner"])
            .filter_map(|name| {
                let value = row.get(name)?;
                (!value.is_null()).then(|| {
                    audit(
                        object,
                        &row,
                        now,
                        actor,
                        "create",
                        name,
                        Json::Null,
                        value.to_json(),
                    )
                })
            })
            .collect();
        write.insert_audit(&entries).await?;
        Ok(row)
    }

    pub(super) async fn update_in(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        object: &Object,
        id: &str,
        input: &Input,
        if_match: Option<i64>,
    ) -> Result<Row, RecordError> {
        let (actor, now) = (save.actor, save.now);
        let current = self
            .writable_current(write, actor, object, id, Action::Edit, false)
            .await?;
        let current_version = match current.get("version") {
            Some(Value::Integer(version)) => *version,
            _ => 0,
        };
        if let Some(expected) = if_match
            && expected != current_version
        {
            return Err(RecordError::Stale {
                expected,
                current: current_version,
            });
        }
        let prepared = prepare(
            &self.schema,
            actor,
            object,
            input,
            Some(&current),
            self.timezone(),
            Purpose::Save,
            save.source,
        )?;
        let mut merged = current.clone();
        for (name, value) in &prepared.values {
            merged.insert(name.clone(), value.clone());
        }
        if let Some(owner) = &prepared.owner {
            merged.insert("owner".to_owned(), owner.clone());
        }
        if let Some(pool) = &prepared.pool {
            merged.insert("pool".to_owned(), pool.clone());
        }
        self.check_and_compute(write, actor, object, &mut merged, Some(&current), now)
            .await?;
        let duplicate_key_changed = object
            .duplicates
            .iter()
            .flat_map(|key| &key.fields)
            .any(|name| merged.get(name) != current.get(name));
        if duplicate_key_changed {
            self.check_duplicates(write, object, &merged, &mut save.warnings)
                .await?;
        }
        let mut changes = Row::new();
        let mut entries = Vec::new();
        for (name, value) in &merged {
            let before = current.get(name).cloned().unwrap_or(Value::Null);
            if *value != before {
                changes.insert(name.clone(), value.clone());
                entries.push(audit(
                    object,
                    &current,
                    now,
                    actor,
                    "update",
                    name,
                    before.to_json(),
                    value.to_json(),
                ));
            }
        }
        if changes.is_empty() {
            return Ok(current);
        }
        changes.insert("updated_at".to_owned(), Value::Datetime(now));
        changes.insert("updated_by".to_owned(), Value::Text(actor.id.clone()));
        let updated = write
            .update(object, id, current_version, &changes)
            .await
            .map_err(|error| unique_conflict(object, error))?;
        if !updated {
            return Err(RecordError::Stale {
                expected: current_version,
                current: current_version + 1,
            });
        }
        write.insert_audit(&entries).await?;
        for (name, value) in changes {
            merged.insert(name, value);
        }
        merged.insert("version".to_owned(), Value::Integer(current_version + 1));
        Ok(merged)
    }

    async fn set_deleted(
        &self,
        write: &mut RecordWrite,
        actor: &Actor,
        object: &Object,
        id: &str,
        delete: bool,
        now: DateTime<Utc>,
    ) -> Result<Row, RecordError> {
        let current = self
            .writable_current(write, actor, object, id, Action::Delete, !delete)
            .await?;
        let version = match current.get("version") {
            Some(Value::Integer(version)) => *version,
            _ => 0,
        };
        let mut changes = Row::new();
        let (deleted_at, deleted_by) = if delete {
            (Value::Datetime(now), Value::Text(actor.id.clone()))
        } else {
            (Value::Null, Value::Null)
        };
        changes.insert("deleted_at".to_owned(), deleted_at.clone());
        changes.insert("deleted_by".to_owned(), deleted_by);
        changes.insert("updated_at".to_owned(), Value::Datetime(now));
        changes.insert("updated_by".to_owned(), Value::Text(actor.id.clone()));
        if !write.update(object, id, version, &changes).await? {
            return Err(RecordError::Stale {
                expected: version,
                current: version + 1,
            });
        }
        let before = current
            .get("deleted_at")
            .cloned()
            .unwrap_or(Value::Null)
            .to_json();
        let action = if delete { "delete" } else { "restore" };
        write
            .insert_audit(&[audit(
                object,
                &current,
                now,
                actor,
                action,
                "deleted_at",
                before,
                deleted_at.to_json(),
            )])
            .await?;
        let mut row = current;
        for (name, value) in changes {
            row.insert(name, value);
        }
        row.insert("version".to_owned(), Value::Integer(version + 1));
        Ok(row)
    }

    /// The stored record, locked for this transaction, if the actor may act on it.
    /// Records the actor may not read are `NotFound` (their existence is not revealed);
    /// readable ones the actor may not change are `Forbidden`.
    async fn writable_current(
        &self,
        write: &mut RecordWrite,
        actor: &Actor,
        object: &Object,
        id: &str,
        action: Action,
        want_deleted: bool,
    ) -> Result<Row, RecordError> {
        let current = write
            .get_for_update(object, id)
            .await?
            .ok_or(RecordError::NotFound)?;
        let deleted = current
            .get("deleted_at")
            .is_some_and(|value| !value.is_null());
        if deleted != want_deleted {
            return Err(RecordError::NotFound);
        }
        let owner = match current.get("owner") {
            Some(Value::Text(owner)) => Some(owner.as_str()),
            _ => None,
        };
        let readable = access::scopes(&self.schema, actor, &object.name, Action::Read);
        if !in_scope(
            &mut Reader::Write(write),
            actor,
            object,
            id,
            owner,
            readable,
        )
        .await?
        {
            return Err(RecordError::NotFound);
        }
        let allowed = access::scopes(&self.schema, actor, &object.name, action);
        if !in_scope(&mut Reader::Write(write), actor, object, id, owner, allowed).await? {
            let verb = if action == Action::Delete {
                "delete"
            } else {
                "edit"
            };
            return Err(RecordError::Forbidden {
                message: format!("you may not {verb} this {} record", object.name),
                fields: Vec::new(),
            });
        }
        Ok(current)
    }

    /// Required fields, lookup targets, unique values, formulas and autonumbers of a record
    /// about to be saved (`current` is the stored version on update).
    async fn check_and_compute(
        &self,
        write: &mut RecordWrite,
        actor: &Actor,
        object: &Object,
        row: &mut Row,
        current: Option<&Row>,
        now: DateTime<Utc>,
    ) -> Result<(), RecordError> {
        let mut problems = Vec::new();
        if let Some(Value::Text(owner)) = row.get("owner")
            && *owner != actor.id
            && current.and_then(|c| c.get("owner")) != row.get("owner")
            && !write.is_active_user(owner).await?
        {
            problems.push(FieldProblem {
                field: "owner".to_owned(),
                code: "invalid_reference",
                message: format!("there is no active user `{owner}`"),
            });
        }
        for field in object.fields.values() {
            if field.is_computed() {
                continue;
            }
            let value = row.get(&field.name).cloned().unwrap_or(Value::Null);
            if let Err(problem) = check_required(field, &value) {
                problems.push(problem);
                continue;
            }
            let changed = current.and_then(|c| c.get(&field.name)) != Some(&value);
            if let (FieldKind::User, Value::Text(user_id), true) = (&field.kind, &value, changed)
                && !write.is_active_user(user_id).await?
            {
                problems.push(FieldProblem {
                    field: field.name.clone(),
                    code: "invalid_reference",
                    message: format!("there is no active user `{user_id}`"),
                });
                continue;
            }
            if let (FieldKind::Lookup { object: target, .. }, Value::Text(target_id), true) =
                (&field.kind, &value, changed)
                && let Some(target_object) = self.schema.object(target)
            {
                let condition = Condition::All(vec![
                    Condition::Compare {
                        column: "id".to_owned(),
                        op: CompareOp::Eq,
                        value: Value::Text(target_id.clone()),
                    },
                    access::read_condition(&self.schema, actor, target),
                ]);
                let found = write.select(&one(target_object, condition)).await?;
                if found.is_empty() {
                    problems.push(FieldProblem {
                        field: field.name.clone(),
                        code: "invalid_reference",
                        message: format!("there is no {target} record `{target_id}`"),
                    });
                }
            }
            if field.unique && !value.is_null() && changed {
                let mut conditions = vec![Condition::Compare {
                    column: field.name.clone(),
                    op: CompareOp::Eq,
                    value: value.clone(),
                }];
                if let Some(Value::Text(id)) = row.get("id") {
                    conditions.push(Condition::Compare {
                        column: "id".to_owned(),
                        op: CompareOp::Ne,
                        value: Value::Text(id.clone()),
                    });
                }
                let mut query = one(object, Condition::All(conditions));
                query.deleted = Deleted::Include;
                let existing = write.select(&query).await?;
                if let Some(existing_id) = existing
                    .first()
                    .and_then(|r| r.get("id"))
                    .map(|id| super::output::title_text(Some(id)))
                {
                    return Err(RecordError::Conflict {
                        message: format!(
                            "`{}` must be unique; record {existing_id} already has this value",
                            field.name
                        ),
                        field: Some(field.name.clone()),
                        matches: Vec::new(),
                    });
                }
            }
        }
        if !problems.is_empty() {
            return Err(RecordError::Invalid(problems));
        }
        for field in object.fields.values() {
            match &field.kind {
                FieldKind::Formula { expr, returns } => {
                    let record = script_record(row);
                    let value =
                        self.sandbox
                            .evaluate(expr, &[("record", record)])
                            .map_err(|error| {
                                RecordError::Invalid(vec![FieldProblem {
                                    field: field.name.clone(),
                                    code: "formula_failed",
                                    message: format!(
                                        "the formula of `{}` failed: {}",
                                        field.name, error.message
                                    ),
                                }])
                            })?;
                    row.insert(field.name.clone(), formula_value(value, *returns));
                }
                FieldKind::Autonumber { format } if current.is_none() => {
                    let local = now.with_timezone(&self.timezone());
                    let prefix = render_dates(format, local.year(), local.month(), local.day());
                    let key = format!("{}.{}:{}", object.name, field.name, prefix);
                    let sequence = write.next_sequence(&key).await?;
                    row.insert(
                        field.name.clone(),
                        Value::Text(render_sequence(&prefix, sequence)),
                    );
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn one<'a>(object: &'a Object, condition: Condition) -> SelectQuery<'a> {
    SelectQuery {
        object,
        condition,
        deleted: Deleted::Exclude,
        sort: Vec::new(),
        after: None,
        limit: Some(1),
        columns: Some(vec!["id".to_owned()]),
    }
}

#[allow(clippy::too_many_arguments)]
fn audit(
    object: &Object,
    row: &Row,
    at: DateTime<Utc>,
    actor: &Actor,
    action: &str,
    field: &str,
    old: Json,
    new: Json,
) -> AuditEntry {
    AuditEntry {
        object: object.name.clone(),
        record_id: match row.get("id") {
            Some(Value::Text(id)) => id.clone(),
            _ => String::new(),
        },
        at,
        by: Some(actor.id.clone()),
        field: field.to_owned(),
        old,
        new,
        action: action.to_owned(),
    }
}

/// Maps a database unique violation to a 409 naming the field.
fn unique_conflict(object: &Object, error: StoreError) -> RecordError {
    match error {
        StoreError::UniqueViolation { column, .. } => RecordError::Conflict {
            message: match &column {
                Some(column) => format!(
                    "`{column}` must be unique in {}; another record already has this value",
                    object.name
                ),
                None => format!("another {} record already has these values", object.name),
            },
            field: column,
            matches: Vec::new(),
        },
        other => RecordError::Store(other),
    }
}

/// The record as a Rhai map for formulas. Dates and datetimes are passed as RFC 3339 text.
fn script_record(row: &Row) -> ScriptValue {
    let mut map = BTreeMap::new();
    for (name, value) in row {
        let script_value = match value {
            Value::Null => ScriptValue::Unit,
            Value::Text(text) => ScriptValue::Text(text.clone()),
            Value::Integer(n) => ScriptValue::Integer(*n),
            Value::Decimal(d) => ScriptValue::Decimal(*d),
            Value::Boolean(b) => ScriptValue::Boolean(*b),
            Value::List(items) => {
                ScriptValue::Array(items.iter().cloned().map(ScriptValue::Text).collect())
            }
            other => match other.to_json() {
                Json::String(text) => ScriptValue::Text(text),
                _ => ScriptValue::Unit,
            },
        };
        map.insert(name.clone(), script_value);
    }
    ScriptValue::Map(map)
}

/// A formula result as the field's declared `returns` type; a result that does not fit is
/// stored as empty.
fn formula_value(value: ScriptValue, returns: FormulaType) -> Value {
    let decimal = |value: &ScriptValue| match value {
        ScriptValue::Integer(n) => Some(Decimal::from(*n)),
        ScriptValue::Decimal(d) => Some(*d),
        ScriptValue::Text(text) => text.parse().ok(),
        _ => None,
    };
    match (returns, &value) {
        (_, ScriptValue::Unit) => Value::Null,
        (FormulaType::Text, ScriptValue::Text(text)) => Value::Text(text.clone()),
        (FormulaType::Text, ScriptValue::Integer(n)) => Value::Text(n.to_string()),
        (FormulaType::Text, ScriptValue::Decimal(d)) => Value::Text(d.to_string()),
        (FormulaType::Text, ScriptValue::Boolean(b)) => Value::Text(b.to_string()),
        (FormulaType::Integer, _) => decimal(&value)
            .and_then(|d| i64::try_from(d.round()).ok())
            .map_or(Value::Null, Value::Integer),
        (FormulaType::Decimal | FormulaType::Money | FormulaType::Percent, _) => decimal(&value)
            .map_or(Value::Null, |d| {
                let mut rounded = d.round_dp(2);
                rounded.rescale(2);
                Value::Decimal(rounded)
            }),
        (FormulaType::Boolean, ScriptValue::Boolean(b)) => Value::Boolean(*b),
        (FormulaType::Date, ScriptValue::Text(text)) => {
            chrono::NaiveDate::parse_from_str(text.get(..10).unwrap_or(text), "%Y-%m-%d")
                .map_or(Value::Null, Value::Date)
        }
        (FormulaType::Datetime, ScriptValue::Text(text)) => DateTime::parse_from_rfc3339(text)
            .map_or(Value::Null, |at| Value::Datetime(at.with_timezone(&Utc))),
        _ => Value::Null,
    }
}

/// The autonumber format with its date tokens filled in (`{seq:N}` left as is). The rendered
/// date part is also the sequence's key, so `{YYYY}` numbers restart every year.
fn render_dates(format: &str, year: i32, month: u32, day: u32) -> String {
    format
        .replace("{YYYY}", &format!("{year:04}"))
        .replace("{YY}", &format!("{:02}", year.rem_euclid(100)))
        .replace("{MM}", &format!("{month:02}"))
        .replace("{DD}", &format!("{day:02}"))
}

fn render_sequence(prefix: &str, sequence: i64) -> String {
    let Some(start) = prefix.find("{seq:") else {
        return format!("{prefix}{sequence}");
    };
    let Some(end) = prefix[start..].find('}').map(|offset| start + offset) else {
        return format!("{prefix}{sequence}");
    };
    let width: usize = prefix[start + 5..end].parse().unwrap_or(1);
    format!(
        "{}{sequence:0width$}{}",
        &prefix[..start],
        &prefix[end + 1..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autonumbers_fill_dates_and_pad_the_sequence() {
        let prefix = render_dates("HT-{YYYY}{MM}-{seq:6}", 2026, 3, 9);
        assert_eq!(prefix, "HT-202603-{seq:6}");
        assert_eq!(render_sequence(&prefix, 42), "HT-202603-000042");
        assert_eq!(
            render_sequence(&render_dates("L{seq:2}X", 2026, 1, 1), 123),
            "L123X"
        );
    }

    #[test]
    fn formula_results_take_the_declared_type() {
        assert_eq!(
            formula_value(
                ScriptValue::Decimal(Decimal::new(59999, 3)),
                FormulaType::Money
            ),
            Value::Decimal(Decimal::new(6000, 2))
        );
        assert_eq!(
            formula_value(ScriptValue::Integer(7), FormulaType::Text),
            Value::Text("7".into())
        );
        assert_eq!(
            formula_value(ScriptValue::Text("x".into()), FormulaType::Integer),
            Value::Null
        );
    }
}
