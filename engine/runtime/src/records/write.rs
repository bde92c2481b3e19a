//! The write path: create, update, delete (to the recycle bin), restore and bulk, each in one
//! transaction with the audit rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use keel_meta::{DuplicateAction, FieldKind, FormulaType, Object, OnDelete, RuleEvent, Value};
use keel_script::sandbox::ScriptValue;
use keel_store::StoreError;
use keel_store::records::duplicate_keys;
use keel_store::records::{
    AuditEntry, CompareOp, Condition, Deleted, RecordWrite, Row, SelectQuery,
};
use rust_decimal::Decimal;
use serde_json::Value as Json;

use crate::actor::Actor;
use crate::coerce::{FieldProblem, Source, check_required};
use crate::records::access::{self, Action};
use crate::records::input::{Purpose, default_value, prepare};
use crate::records::read::{MATCHES_PER_KEY, Reader, in_scope};
use crate::records::scripting::Cause;
use crate::records::{
    DuplicateMatch, Input, MAX_BULK_ITEMS, MAX_CASCADE_RECORDS, RecordError, Records, Referencing,
    ReferringRecord, Saved,
};

/// How many referring records a refused delete counts, per object and field.
const MAX_REFERENCES_COUNTED: u32 = 1_000;
/// How many of the referring records the actor may read a refused delete names.
const MAX_REFERENCES_NAMED: u32 = 20;

fn too_many_to_cascade() -> RecordError {
    RecordError::Referenced {
        message: format!(
            "this delete would move more than {MAX_CASCADE_RECORDS} records to the recycle bin \
             through `on_delete: cascade`; delete some of them first"
        ),
        references: Vec::new(),
    }
}

/// Who saves, when, the `warn` duplicates a save collects on its way, and the audit rows of
/// `block` matches it was shown (written after the transaction, which a 409 rolls back).
pub(crate) struct SaveContext<'a> {
    pub actor: &'a Actor,
    pub now: DateTime<Utc>,
    pub warnings: Vec<DuplicateMatch>,
    pub lookups: Vec<AuditEntry>,
    /// Typed JSON (the API) or text cells (CSV import).
    pub source: Source,
    /// The rules and scripts that led to this save (empty for a person's save).
    pub cause: Cause,
    /// The record a script's `notify` is about: the one being saved.
    pub subject: Option<(String, String)>,
    /// Whether the save wrote notifications or outbox rows: after the commit, the stream
    /// hub and the outbox worker are woken.
    pub notified: bool,
    pub outboxed: bool,
    /// The transition this save makes, if any (only a transition may change a stage field).
    pub transition: Option<super::stages::StageMove<'a>>,
    /// Set by a transition whose target stage's approval applies: the stage did not change.
    pub stage_pending: bool,
}

impl<'a> SaveContext<'a> {
    pub fn new(actor: &'a Actor, now: DateTime<Utc>, source: Source) -> SaveContext<'a> {
        SaveContext {
            actor,
            now,
            warnings: Vec::new(),
            lookups: Vec::new(),
            source,
            cause: Cause::default(),
            subject: None,
            notified: false,
            outboxed: false,
            transition: None,
            stage_pending: false,
        }
    }

    /// The context of a save that a rule or script makes while this one runs, in the same
    /// transaction, as the same user.
    pub fn nested(&self, cause: Cause) -> SaveContext<'a> {
        SaveContext {
            cause,
            ..SaveContext::new(self.actor, self.now, Source::Json)
        }
    }

    /// Takes in what a nested save noticed (its warnings are its own).
    pub fn absorb(&mut self, nested: SaveContext<'_>) {
        self.lookups.extend(nested.lookups);
        self.notified |= nested.notified;
        self.outboxed |= nested.outboxed;
    }
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
        let mut save = SaveContext::new(actor, now, Source::Json);
        if self.before_save_reads_nothing(object) {
            // Scripts that cannot touch the database run before the transaction opens, so
            // the write lock (SQLite has one) is not held while they run on another thread.
            let mut row = self.new_row(&mut save, object, &input, None)?;
            self.before_save(None, &mut save, object, &mut row, None)
                .await?;
            let mut write = self.db.begin_records_write().await?;
            let result = self.insert_new(&mut write, &mut save, object, row).await;
            return self.finish_save(write, result, actor, object, save).await;
        }
        let mut write = self.db.begin_records_write().await?;
        let result = self
            .create_in(&mut write, &mut save, object, &input, None)
            .await;
        self.finish_save(write, result, actor, object, save).await
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
        let mut save = SaveContext::new(actor, now, Source::Json);
        let result = self
            .update_in(&mut write, &mut save, object, id, &input, if_match)
            .await;
        self.finish_save(write, result, actor, object, save).await
    }

    /// Moves a record to the recycle bin, applying the `on_delete` of every lookup that
    /// refers to it, all in one transaction: live records referring through `restrict`
    /// refuse the delete ([`RecordError::Referenced`]), `cascade` children go to the
    /// recycle bin too (recursively, at most [`MAX_CASCADE_RECORDS`] records), and
    /// `set_null` lookups are cleared (with audit rows). The actor needs delete access to
    /// this record only: the cascade is the system's consequence of an allowed delete.
    pub async fn delete(&self, actor: &Actor, object: &str, id: &str) -> Result<(), RecordError> {
        let object = self.object(object)?;
        let now = self.clock.now();
        let mut write = self.db.begin_records_write().await?;
        let current = self
            .writable_current(&mut write, actor, object, id, Action::Delete, false)
            .await?;
        let mut save = SaveContext::new(actor, now, Source::Json);
        save.subject = Some((object.name.clone(), id.to_owned()));
        self.before_delete(&mut write, &mut save, object, &current)
            .await?;
        let mut cascade = Cascade::new(object, current);
        while let Some((object, current)) = cascade.next(&mut write, false).await? {
            let before = current.clone();
            let (deleted, id) = self
                .set_deleted(&mut write, actor, object, current, true, now)
                .await?;
            self.enqueue_effects(
                &mut write,
                &mut save,
                object,
                RuleEvent::Delete,
                &deleted,
                Some(&before),
            )
            .await?;
            self.refuse_if_referenced(&mut write, actor, object, &id)
                .await?;
            for (child, field, on_delete) in self.referring_lookups(object) {
                if on_delete == OnDelete::Restrict {
                    continue;
                }
                for child_id in self
                    .children(
                        &mut write,
                        child,
                        field,
                        &id,
                        Deleted::Exclude,
                        Condition::Always,
                    )
                    .await?
                {
                    if on_delete == OnDelete::Cascade {
                        cascade.push(child, child_id)?;
                    } else {
                        self.clear_lookup(&mut write, actor, child, field, &child_id, now)
                            .await?;
                    }
                }
            }
        }
        write.commit().await?;
        self.after_commit(&save);
        Ok(())
    }

    /// Wakes whoever waits for what a committed save wrote: the outbox worker for outbox
    /// rows, the stream hub for notifications.
    pub(crate) fn after_commit(&self, save: &SaveContext<'_>) {
        if save.outboxed {
            self.signals.outbox.notify_one();
        }
        if save.notified {
            self.signals.notifications.notify_one();
        }
    }

    /// Brings a record back from the recycle bin, with its history, and with it the records
    /// its delete moved there by `cascade` (those deleted in the same instant by the same
    /// user; ones deleted before or since stay in the bin). Lookups that the delete cleared
    /// (`set_null`) stay cleared: their history shows the old value.
    pub async fn restore(
        &self,
        actor: &Actor,
        object: &str,
        id: &str,
    ) -> Result<Json, RecordError> {
        let object = self.object(object)?;
        let now = self.clock.now();
        let mut write = self.db.begin_records_write().await?;
        let current = self
            .writable_current(&mut write, actor, object, id, Action::Delete, true)
            .await?;
        let mut cascade = Cascade::new(object, current);
        let mut restored = None;
        while let Some((object, current)) = cascade.next(&mut write, true).await? {
            let deleted_at = current.get("deleted_at").cloned().unwrap_or(Value::Null);
            let deleted_by = current.get("deleted_by").cloned().unwrap_or(Value::Null);
            let (row, id) = self
                .set_deleted(&mut write, actor, object, current, false, now)
                .await?;
            if restored.is_none() {
                restored = Some(row);
            }
            for (child, field, on_delete) in self.referring_lookups(object) {
                if on_delete != OnDelete::Cascade {
                    continue;
                }
                // Only the children this record's delete moved: the same instant, the same
                // user.
                let deleted_in_cascade = Condition::All(vec![
                    Condition::Compare {
                        column: "deleted_at".to_owned(),
                        op: CompareOp::Eq,
                        value: deleted_at.clone(),
                    },
                    match &deleted_by {
                        Value::Null => Condition::IsNull {
                            column: "deleted_by".to_owned(),
                            null: true,
                        },
                        by => Condition::Compare {
                            column: "deleted_by".to_owned(),
                            op: CompareOp::Eq,
                            value: by.clone(),
                        },
                    },
                ]);
                for child_id in self
                    .children(
                        &mut write,
                        child,
                        field,
                        &id,
                        Deleted::Only,
                        deleted_in_cascade,
                    )
                    .await?
                {
                    cascade.push(child, child_id)?;
                }
            }
        }
        write.commit().await?;
        let row = restored.ok_or(RecordError::NotFound)?;
        Ok(self.saved(actor, object, row, Vec::new()).await?.record)
    }

    /// Every lookup field of the app that refers to `object`: (referring object, field,
    /// `on_delete`).
    fn referring_lookups<'a>(&'a self, object: &Object) -> Vec<(&'a Object, &'a str, OnDelete)> {
        self.schema
            .objects
            .values()
            .flat_map(|child| {
                child
                    .fields
                    .values()
                    .filter_map(move |field| match &field.kind {
                        FieldKind::Lookup {
                            object: target,
                            on_delete,
                        } if *target == object.name => {
                            Some((child, field.name.as_str(), *on_delete))
                        }
                        _ => None,
                    })
            })
            .collect()
    }

    /// The ids of the records of `child` whose `field` is `id`: live ones (`deleted` is
    /// `Deleted::Exclude`) or those in the recycle bin that also match `condition`, at most
    /// one more than a cascade may move, so an oversized cascade is seen and refused.
    async fn children(
        &self,
        write: &mut RecordWrite,
        child: &Object,
        field: &str,
        id: &str,
        deleted: Deleted,
        condition: Condition,
    ) -> Result<Vec<String>, RecordError> {
        let mut query = one(
            child,
            Condition::All(vec![
                Condition::Compare {
                    column: field.to_owned(),
                    op: CompareOp::Eq,
                    value: Value::Text(id.to_owned()),
                },
                condition,
            ]),
        );
        query.deleted = deleted;
        query.limit = Some(MAX_CASCADE_RECORDS as u32 + 1);
        Ok(write
            .select(&query)
            .await?
            .into_iter()
            .filter_map(|row| match row.get("id") {
                Some(Value::Text(id)) => Some(id.clone()),
                _ => None,
            })
            .collect())
    }

    /// Refuses to delete `id` of `object` while live records refer to it through a
    /// `restrict` lookup. The answer names the referring records the actor may read (id and
    /// title as they see it) and only counts the rest, per object and field.
    async fn refuse_if_referenced(
        &self,
        write: &mut RecordWrite,
        actor: &Actor,
        object: &Object,
        id: &str,
    ) -> Result<(), RecordError> {
        let mut references = Vec::new();
        for (child, field, on_delete) in self.referring_lookups(object) {
            if on_delete != OnDelete::Restrict {
                continue;
            }
            let refers = Condition::Compare {
                column: field.to_owned(),
                op: CompareOp::Eq,
                value: Value::Text(id.to_owned()),
            };
            let mut query = one(child, refers.clone());
            query.limit = Some(MAX_REFERENCES_COUNTED + 1);
            let count = write.select(&query).await?.len();
            if count == 0 {
                continue;
            }
            let title = &child.title;
            let title_shown = access::field_access(&self.schema, actor, child, title)
                != keel_meta::FieldAccess::Hidden;
            let mut query = one(
                child,
                Condition::All(vec![
                    refers,
                    access::read_condition(&self.schema, actor, &child.name),
                ]),
            );
            query.limit = Some(MAX_REFERENCES_NAMED);
            query.columns = Some(vec!["id".to_owned(), "owner".to_owned(), title.clone()]);
            let masking = access::Masking::new(&self.schema, actor, child);
            let records = write
                .select(&query)
                .await?
                .into_iter()
                .map(|row| {
                    let text = super::output::title_text(row.get(title));
                    let title = title_shown.then(|| {
                        if masking.hides(title, super::output::row_owner(&row)) {
                            super::read::mask(&text)
                        } else {
                            text
                        }
                    });
                    ReferringRecord {
                        id: super::output::title_text(row.get("id")),
                        title,
                    }
                })
                .collect();
            references.push(Referencing {
                object: child.name.clone(),
                field: field.to_owned(),
                count: count.min(MAX_REFERENCES_COUNTED as usize),
                more: count > MAX_REFERENCES_COUNTED as usize,
                records,
            });
        }
        if references.is_empty() {
            return Ok(());
        }
        let named: Vec<String> = references
            .iter()
            .map(|r| {
                format!(
                    "{}{} {} record(s) by `{}`",
                    r.count,
                    if r.more { "+" } else { "" },
                    r.object,
                    r.field
                )
            })
            .collect();
        Err(RecordError::Referenced {
            message: format!(
                "this {} record cannot be deleted while other records refer to it: {}",
                object.name,
                named.join(", ")
            ),
            references,
        })
    }

    /// Clears the lookup `field` of the live record `id` of `child` because its target is
    /// being deleted (`on_delete: set_null`), with an audit row like any change.
    async fn clear_lookup(
        &self,
        write: &mut RecordWrite,
        actor: &Actor,
        child: &Object,
        field: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RecordError> {
        // Locked and read whole: the change is versioned like any other save.
        let Some(row) = write.get_for_update(child, id).await? else {
            return Ok(());
        };
        let Some(Value::Integer(version)) = row.get("version") else {
            return Ok(());
        };
        let mut changes = Row::new();
        changes.insert(field.to_owned(), Value::Null);
        changes.insert("updated_at".to_owned(), Value::Datetime(now));
        changes.insert("updated_by".to_owned(), Value::Text(actor.id.clone()));
        if !write.update(child, id, *version, &changes).await? {
            return Err(RecordError::Stale {
                expected: *version,
                current: version + 1,
            });
        }
        let before = row.get(field).cloned().unwrap_or(Value::Null).to_json();
        write
            .insert_audit(&[audit(
                child,
                &row,
                now,
                actor,
                "update",
                field,
                before,
                Json::Null,
            )])
            .await?;
        Ok(())
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
        let mut save = SaveContext::new(actor, now, Source::Json);
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
                Err(other) => {
                    drop(write);
                    self.record_lookups(&save.lookups).await;
                    return Err(other);
                }
            }
        }
        if !problems.is_empty() {
            // Dropping `write` rolls everything back.
            drop(write);
            self.record_lookups(&save.lookups).await;
            return Err(RecordError::Invalid(problems));
        }
        write.commit().await?;
        self.after_commit(&save);
        self.record_lookups(&save.lookups).await;
        let fields = super::output::output_fields(&self.schema, actor, object, None)?;
        super::output::render_rows(self, actor, object, &fields, rows).await
    }

    /// Commits a successful save and renders it; on failure the transaction rolls back
    /// first, then a conflict gets its owner names (which need a connection of their own).
    async fn finish_save(
        &self,
        write: RecordWrite,
        result: Result<Row, RecordError>,
        actor: &Actor,
        object: &Object,
        save: SaveContext<'_>,
    ) -> Result<Saved, RecordError> {
        match result {
            Ok(row) => {
                write.commit().await?;
                self.after_commit(&save);
                self.record_lookups(&save.lookups).await;
                self.saved(actor, object, row, save.warnings).await
            }
            Err(error) => {
                drop(write);
                self.record_lookups(&save.lookups).await;
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
        let mut save = SaveContext::new(actor, now, Source::Text);
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
                self.record_lookups(&save.lookups).await;
                return Err(self.named(error).await);
            }
            created += 1;
        }
        write.commit().await?;
        self.after_commit(&save);
        Ok((created, skipped))
    }

    pub(crate) async fn saved(
        &self,
        actor: &Actor,
        object: &Object,
        row: Row,
        mut warnings: Vec<DuplicateMatch>,
    ) -> Result<Saved, RecordError> {
        self.name_owners(&mut warnings).await;
        let fields = super::output::output_fields(&self.schema, actor, object, None)?;
        let mut records =
            super::output::render_rows(self, actor, object, &fields, vec![row]).await?;
        Ok(Saved {
            record: records.pop().unwrap_or(Json::Null),
            warnings: Records::duplicate_warnings(warnings),
        })
    }

    /// Refuses an update when a `block` duplicate key matches; collects `warn` matches.
    /// (A create checks the same way, its lookup folded into its insert: see `create_in`.)
    async fn check_duplicates(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        object: &Object,
        row: &Row,
    ) -> Result<(), RecordError> {
        if object.duplicates.is_empty() {
            return Ok(());
        }
        lock_blocking_keys(write, object, row).await?;
        let matches = self
            .duplicate_matches(&mut Reader::Write(write), object, row)
            .await?;
        self.decide_duplicates(write, save, object, matches).await
    }

    /// Refuses the save when a `block` key matched (spending one of the actor's duplicate
    /// lookups), else collects the `warn` matches into `save`.
    async fn decide_duplicates(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        object: &Object,
        (blocking, warning): (Vec<DuplicateMatch>, Vec<DuplicateMatch>),
    ) -> Result<(), RecordError> {
        if let Some(first) = blocking.first() {
            self.spend_lookup(save.actor, object)?;
            let audit = self
                .lookup_audit(
                    &mut Reader::Write(write),
                    save.actor,
                    object,
                    &blocking,
                    "duplicate_block",
                )
                .await?;
            save.lookups.extend(audit);
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
        save.warnings.extend(warning);
        Ok(())
    }

    /// The values a new record of `object` starts with, as the API writes them: each field's
    /// `default` (`@me`, `@today` and `@now` resolved for `actor` now). A form shows them
    /// before anything is typed; a create that leaves a field out gets the same value.
    pub fn defaults(&self, actor: &Actor, object: &str) -> Result<Input, RecordError> {
        let object = self.object(object)?;
        let now = self.clock.now();
        let timezone = self.timezone();
        Ok(object
            .fields
            .keys()
            .filter_map(|name| {
                default_value(object, name, actor, now, timezone)
                    .map(|value| (name.clone(), value.into_json()))
            })
            .collect())
    }

    pub(crate) fn timezone(&self) -> Tz {
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
        let mut row = self.new_row(save, object, input, preassigned_id)?;
        self.before_save(Some(&mut *write), save, object, &mut row, None)
            .await?;
        self.insert_new(write, save, object, row).await
    }

    /// The record a create would save, before its scripts: the input read and typed, system
    /// fields and defaults filled in. Reads nothing from the database.
    fn new_row(
        &self,
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
        if save.subject.is_none()
            && let Some(Value::Text(id)) = row.get("id")
        {
            save.subject = Some((object.name.clone(), id.clone()));
        }
        Ok(row)
    }

    /// The rest of a create, after its before-save scripts: checks, computed fields,
    /// validations, the insert with its audit rows, keys and outbox rows.
    async fn insert_new(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        object: &Object,
        mut row: Row,
    ) -> Result<Row, RecordError> {
        let (actor, now) = (save.actor, save.now);
        let stage_entries = self.stage_on_create(save, object, &mut row)?;
        self.check_and_compute(write, actor, object, &mut row, None, now)
            .await?;
        self.validate(actor, object, &row, None)?;
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
        // The record, its audit rows, its duplicate keys and the lookup of other records
        // holding them go in one round trip; a `block` match then takes it all back.
        lock_blocking_keys(write, object, &row).await?;
        let probes = duplicate_keys::key_values(object, &row);
        // What the save leaves for after its commit travels in the same round trip.
        let outbox = self.effect_entries(save, object, RuleEvent::Create, &row, None)?;
        let found = write
            .insert_checked(object, &row, &entries, &outbox, &probes, MATCHES_PER_KEY)
            .await
            .map_err(|error| unique_conflict(object, error))?;
        let matches = self
            .describe_matches(&mut Reader::Write(write), object, found)
            .await?;
        if let Err(refused) = self.decide_duplicates(write, save, object, matches).await {
            if let Some(Value::Text(id)) = row.get("id") {
                let outbox_ids: Vec<String> = outbox.iter().map(|entry| entry.id.clone()).collect();
                write.undo_insert(object, id, &outbox_ids).await?;
            }
            return Err(refused);
        }
        for entry in &stage_entries {
            write.insert_stage_entry(entry).await?;
        }
        save.outboxed |= !outbox.is_empty();
        Ok(row)
    }

    /// Updates the record `id` in `write` as the save's actor (see [`Records::update`]).
    pub(crate) async fn update_in(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        object: &Object,
        id: &str,
        input: &Input,
        if_match: Option<i64>,
    ) -> Result<Row, RecordError> {
        let current = self
            .writable_current(write, save.actor, object, id, Action::Edit, false)
            .await?;
        self.update_current_in(write, save, object, id, current, input, if_match)
            .await
    }

    /// [`Records::update_in`] of `current`, the record as [`Records::writable_current`]
    /// read and locked it in `write`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn update_current_in(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        object: &Object,
        id: &str,
        current: Row,
        input: &Input,
        if_match: Option<i64>,
    ) -> Result<Row, RecordError> {
        let (actor, now) = (save.actor, save.now);
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
        if save.subject.is_none() {
            save.subject = Some((object.name.clone(), id.to_owned()));
        }
        self.before_save(Some(&mut *write), save, object, &mut merged, Some(&current))
            .await?;
        self.check_stage_change(write, save, object, &mut merged, &current)
            .await?;
        self.check_and_compute(write, actor, object, &mut merged, Some(&current), now)
            .await?;
        self.validate(actor, object, &merged, Some(&current))?;
        let duplicate_key_changed = object
            .duplicates
            .iter()
            .flat_map(|key| &key.fields)
            .any(|name| merged.get(name) != current.get(name));
        if duplicate_key_changed {
            self.check_duplicates(write, save, object, &merged).await?;
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
        self.enqueue_effects(
            write,
            save,
            object,
            RuleEvent::Update,
            &merged,
            Some(&current),
        )
        .await?;
        Ok(merged)
    }

    /// Moves `current` (locked by the caller) into the recycle bin or out of it, with its
    /// audit row → the record as saved, and its id. The one store update path, so what the
    /// store keeps beside a record stays in step.
    async fn set_deleted(
        &self,
        write: &mut RecordWrite,
        actor: &Actor,
        object: &Object,
        current: Row,
        delete: bool,
        now: DateTime<Utc>,
    ) -> Result<(Row, String), RecordError> {
        let id = match current.get("id") {
            Some(Value::Text(id)) => id.clone(),
            _ => return Err(RecordError::NotFound),
        };
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
        if !write.update(object, &id, version, &changes).await? {
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
        Ok((row, id))
    }

    /// The stored record, locked for this transaction, if the actor may act on it.
    /// Records the actor may not read are `NotFound` (their existence is not revealed);
    /// readable ones the actor may not change are `Forbidden`.
    pub(crate) async fn writable_current(
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
        if !want_deleted {
            self.refuse_if_pending(write, actor, object, id).await?;
        }
        Ok(current)
    }

    /// What a unique-value conflict says about the record that holds the value: its id (and
    /// whether it is in the recycle bin) only when the actor may read it; otherwise just the
    /// field, so the answer cannot tell whether a record the actor may not see exists.
    async fn unique_message(
        &self,
        write: &mut RecordWrite,
        actor: &Actor,
        object: &Object,
        field: &str,
        existing: &Row,
    ) -> Result<String, RecordError> {
        let unreadable = format!(
            "`{field}` must be unique in {}; another record already has this value",
            object.name
        );
        let Some(Value::Text(id)) = existing.get("id") else {
            return Ok(unreadable);
        };
        let readable = access::scopes(&self.schema, actor, &object.name, Action::Read);
        let owner = super::output::row_owner(existing);
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
            return Ok(unreadable);
        }
        let deleted = existing
            .get("deleted_at")
            .is_some_and(|value| !value.is_null());
        Ok(format!(
            "`{field}` must be unique; record {id}{} already has this value",
            if deleted { " (in the recycle bin)" } else { "" }
        ))
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
                // Shared-locked: a delete of the target running meanwhile either waits and
                // then sees this reference (its `on_delete` applies), or commits first and
                // the target is gone here.
                let found = write.select_shared(&one(target_object, condition)).await?;
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
                query.columns = Some(vec![
                    "id".to_owned(),
                    "owner".to_owned(),
                    "deleted_at".to_owned(),
                ]);
                if let Some(existing) = write.select(&query).await?.into_iter().next() {
                    let message = self
                        .unique_message(write, actor, object, &field.name, &existing)
                        .await?;
                    return Err(RecordError::Conflict {
                        message,
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

/// The records one delete or restore moves: the first, then the `cascade` children found on
/// the way, each once, at most [`MAX_CASCADE_RECORDS`] in all. Children are locked and read
/// when their turn comes, so a change made earlier in the same cascade (a cleared lookup)
/// is seen.
struct Cascade<'a> {
    first: Option<(&'a Object, Row)>,
    queue: std::collections::VecDeque<(&'a Object, String)>,
    seen: std::collections::HashSet<(String, String)>,
}

impl<'a> Cascade<'a> {
    fn new(object: &'a Object, current: Row) -> Cascade<'a> {
        let mut seen = std::collections::HashSet::new();
        if let Some(Value::Text(id)) = current.get("id") {
            seen.insert((object.name.clone(), id.clone()));
        }
        Cascade {
            first: Some((object, current)),
            queue: std::collections::VecDeque::new(),
            seen,
        }
    }

    /// Queues the record `id` of `object`, unless it is already on the way.
    fn push(&mut self, object: &'a Object, id: String) -> Result<(), RecordError> {
        if self.seen.insert((object.name.clone(), id.clone())) {
            if self.seen.len() > MAX_CASCADE_RECORDS {
                return Err(too_many_to_cascade());
            }
            self.queue.push_back((object, id));
        }
        Ok(())
    }

    /// The next record to move, locked: one in the recycle bin when `deleted` (a restore),
    /// else a live one; records already moved some other way are skipped.
    async fn next(
        &mut self,
        write: &mut RecordWrite,
        deleted: bool,
    ) -> Result<Option<(&'a Object, Row)>, RecordError> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        while let Some((object, id)) = self.queue.pop_front() {
            let Some(row) = write.get_for_update(object, &id).await? else {
                continue;
            };
            let is_deleted = row.get("deleted_at").is_some_and(|value| !value.is_null());
            if is_deleted == deleted {
                return Ok(Some((object, row)));
            }
        }
        Ok(None)
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

/// Locks the values of `row`'s `block` duplicate keys until the transaction ends, so of
/// two saves of one value the second sees the first (PostgreSQL; SQLite's write lock
/// already serializes saves).
async fn lock_blocking_keys(
    write: &mut RecordWrite,
    object: &Object,
    row: &Row,
) -> Result<(), RecordError> {
    let blocking_keys: Vec<_> = duplicate_keys::key_values(object, row)
        .into_iter()
        .filter(|key| {
            object
                .duplicates
                .get(key.index)
                .is_some_and(|key| key.action == DuplicateAction::Block)
        })
        .collect();
    write
        .lock_duplicate_keys(&object.name, &blocking_keys)
        .await?;
    Ok(())
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
