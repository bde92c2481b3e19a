//! The read path: one record, pages with keyset cursors, history, aggregates, exports and
//! duplicate checks. Every query carries the actor's record scope as SQL
//! ([`access::read_condition`]); filters, sorts and groupings may only name fields the actor
//! can read, so a hidden field can never act as an oracle.

use std::pin::Pin;

use chrono::{NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use futures::{Stream, StreamExt};
use keel_meta::filter::{FilterValue, Op, check_pattern};
use keel_meta::{DuplicateAction, Filter, Object, OrderTerm, Storage, Value};
use keel_store::records::duplicate_keys::{self, KeyMatch, KeyValue};
use keel_store::records::{
    self as store, AuditEntry, CompareOp, Condition, Deleted, Measure, Row, SelectQuery, Sort,
};
use serde_json::{Map, Value as Json};

use crate::actor::Actor;
use crate::coerce::parse_datetime;
use crate::records::access;
use crate::records::cursor::Cursor;
use crate::records::output::{masked_json, output_fields, render_rows, row_owner, title_text};
use crate::records::{
    AggregateRequest, DEFAULT_PAGE_SIZE, DuplicateMatch, Input, ListRequest, MAX_PAGE_SIZE, Page,
    RecordError, Records, Warning,
};

/// The most records one duplicate key reports.
pub(super) const MATCHES_PER_KEY: u32 = 5;

/// `keel_audit.object` of duplicate lookups that showed a user a record they cannot read
/// (`record_id` is the match, `field` the key, `new` names the object).
pub const LOOKUPS_AUDIT: &str = "keel_duplicate_lookups";

/// Where a read runs: on the pool, or inside the write transaction in progress.
pub(super) enum Reader<'a> {
    Db(&'a keel_store::Db),
    Write(&'a mut keel_store::records::RecordWrite),
}

impl Reader<'_> {
    async fn find_duplicate_keys(
        &mut self,
        object: &str,
        probes: &[KeyValue],
        exclude: Option<&str>,
        per_key: u32,
    ) -> Result<Vec<KeyMatch>, keel_store::StoreError> {
        match self {
            Reader::Db(db) => {
                duplicate_keys::find_in_db(db, object, probes, exclude, per_key).await
            }
            Reader::Write(write) => {
                write
                    .find_duplicate_keys(object, probes, exclude, per_key)
                    .await
            }
        }
    }

    async fn select(
        &mut self,
        query: &SelectQuery<'_>,
    ) -> Result<Vec<Row>, keel_store::StoreError> {
        match self {
            Reader::Db(db) => store::select(db, query).await,
            Reader::Write(write) => write.select(query).await,
        }
    }
}

/// Whether the record `id` of `object`, owned by `owner`, is within `scopes` for the actor:
/// decided from the owner when it can be, else by the same predicate queries carry (the org
/// tables), through `reader` (so inside a write transaction when one is open).
pub(super) async fn in_scope(
    reader: &mut Reader<'_>,
    actor: &Actor,
    object: &Object,
    id: &str,
    owner: Option<&str>,
    scopes: access::Scopes,
) -> Result<bool, RecordError> {
    if let Some(answer) = scopes.decides(actor, owner) {
        return Ok(answer);
    }
    let mut query = record_query(object, id, scopes.condition(actor), Deleted::Include);
    query.columns = Some(vec!["id".to_owned()]);
    Ok(!reader.select(&query).await?.is_empty())
}

/// The query for the record `id` of `object`, if `condition` holds for it.
pub(super) fn record_query<'a>(
    object: &'a Object,
    id: &str,
    condition: Condition,
    deleted: Deleted,
) -> SelectQuery<'a> {
    SelectQuery {
        object,
        condition: Condition::All(vec![
            Condition::Compare {
                column: "id".to_owned(),
                op: CompareOp::Eq,
                value: Value::Text(id.to_owned()),
            },
            condition,
        ]),
        deleted,
        sort: Vec::new(),
        after: None,
        limit: Some(1),
        columns: None,
    }
}

/// A stream of records for exports.
pub type RecordStream = Pin<Box<dyn Stream<Item = Result<Json, RecordError>> + Send>>;

impl Records {
    /// One record the actor may read; `NotFound` otherwise.
    pub async fn get(&self, actor: &Actor, object: &str, id: &str) -> Result<Json, RecordError> {
        let object = self.object(object)?;
        let row = self
            .readable_row(actor, object, id, Deleted::Exclude)
            .await?;
        let fields = output_fields(&self.schema, actor, object, None)?;
        let mut records = render_rows(self, actor, object, &fields, vec![row]).await?;
        records.pop().ok_or(RecordError::NotFound)
    }

    /// The declared fields the actor may read on `object`.
    pub fn readable_fields(&self, actor: &Actor, object: &str) -> Result<Vec<String>, RecordError> {
        let object = self.object(object)?;
        Ok(access::readable_fields(&self.schema, actor, object))
    }

    /// A page of records.
    pub async fn list(
        &self,
        actor: &Actor,
        object: &str,
        request: ListRequest,
    ) -> Result<Page, RecordError> {
        let object = self.object(object)?;
        let scope = access::read_condition(&self.schema, actor, &object.name);
        self.list_within(actor, object, scope, request).await
    }

    /// [`Records::list`] over the records `scope` selects instead of the actor's read
    /// scope (a pool's list: records in a pool are in no one's scope), with the same
    /// filters, `q`, order, cursor, field access and masking.
    pub(crate) async fn list_within(
        &self,
        actor: &Actor,
        object: &Object,
        scope: Condition,
        request: ListRequest,
    ) -> Result<Page, RecordError> {
        let limit = request.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if limit == 0 || limit > MAX_PAGE_SIZE {
            return Err(RecordError::BadRequest(format!(
                "`limit` must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        let fields = output_fields(&self.schema, actor, object, request.fields.as_deref())?;
        let condition = self.condition_within(
            actor,
            object,
            scope,
            request.filter.as_ref(),
            request.q.as_deref(),
        )?;
        let sort = self.sort(actor, object, &request.order)?;
        let (signature, storages) = sort_signature(object, &sort);
        let after = match &request.after {
            Some(text) => Some(
                Cursor::decode(text, &signature, &storages)
                    .map_err(RecordError::BadRequest)?
                    .values,
            ),
            None => None,
        };
        let query = SelectQuery {
            object,
            condition,
            deleted: Deleted::Exclude,
            sort: sort.clone(),
            after,
            limit: Some(limit + 1),
            columns: None,
        };
        let mut rows = store::select(&self.db, &query).await.map_err(query_error)?;
        let next = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|last| {
                let values: Vec<Value> = sort
                    .iter()
                    .map(|term| last.get(&term.column).cloned().unwrap_or(Value::Null))
                    .collect();
                Cursor::encode(&signature, &values)
            })
        } else {
            None
        };
        let data = render_rows(self, actor, object, &fields, rows).await?;
        Ok(Page { data, next })
    }

    /// The records of `object` in the recycle bin that the actor may read (the same read
    /// scope as live records), the most recently deleted first, at most `limit`
    /// (1..=[`MAX_PAGE_SIZE`]). Each carries `deleted_at` and `deleted_by` besides the usual
    /// fields, so a recycle-bin page can say when and by whom.
    pub async fn list_deleted(
        &self,
        actor: &Actor,
        object: &str,
        limit: u32,
    ) -> Result<Vec<Json>, RecordError> {
        let object = self.object(object)?;
        let fields = output_fields(&self.schema, actor, object, None)?;
        let query = SelectQuery {
            object,
            condition: access::read_condition(&self.schema, actor, &object.name),
            deleted: Deleted::Only,
            sort: vec![
                store::Sort {
                    column: "deleted_at".to_owned(),
                    descending: true,
                },
                store::Sort {
                    column: "id".to_owned(),
                    descending: true,
                },
            ],
            after: None,
            limit: Some(limit.clamp(1, MAX_PAGE_SIZE)),
            columns: None,
        };
        let rows = store::select(&self.db, &query).await?;
        // The output drops `deleted_*` (a live record has none): keep them for the bin.
        let deleted: Vec<(Json, Json)> = rows
            .iter()
            .map(|row| {
                let at = row.get("deleted_at").cloned().unwrap_or(Value::Null);
                let by = row.get("deleted_by").cloned().unwrap_or(Value::Null);
                (at.into_json(), by.into_json())
            })
            .collect();
        let mut records = render_rows(self, actor, object, &fields, rows).await?;
        for (record, (at, by)) in records.iter_mut().zip(deleted) {
            if let Some(record) = record.as_object_mut() {
                record.insert("deleted_at".to_owned(), at);
                record.insert("deleted_by".to_owned(), by);
            }
        }
        Ok(records)
    }

    /// The records the actor changed most recently (created, edited, restored), newest
    /// first, at most `limit`, each as [`Records::get`] returns it: those the actor can no
    /// longer read (or that are in the recycle bin) are left out. Reads the actor's newest
    /// audit rows through the `(by, at)` index, then each record through the read scope.
    pub async fn recently_changed(
        &self,
        actor: &Actor,
        limit: usize,
    ) -> Result<Vec<(String, Json)>, RecordError> {
        // One save writes a row per changed field: read enough rows for `limit` records.
        const ROWS_PER_RECORD: usize = 20;
        let objects: Vec<&str> = self.schema.objects.keys().map(String::as_str).collect();
        let rows = (limit * ROWS_PER_RECORD).clamp(1, 2_000) as u32;
        let entries = store::changed_by(&self.db, &actor.id, &objects, rows).await?;
        let mut seen: Vec<(&str, &str)> = Vec::new();
        let mut found = Vec::new();
        for entry in &entries {
            if found.len() >= limit || seen.len() >= limit * 2 {
                break;
            }
            let key = (entry.object.as_str(), entry.record_id.as_str());
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            match self.get(actor, &entry.object, &entry.record_id).await {
                Ok(record) => found.push((entry.object.clone(), record)),
                Err(RecordError::NotFound) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(found)
    }

    /// The display names (else usernames) of those of `ids` that are users, as `_refs`
    /// names them: for pages that show who changed or deleted a record. Names are not
    /// secret to anyone who may read the record they appear on.
    pub async fn user_names(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, String>, RecordError> {
        self.names.of(&self.db, self.clock.now(), ids).await
    }

    /// Whether the actor may `action` (edit or delete) `record`, a record of `object` as
    /// [`Records::get`] returned it to them: for pages that offer an action only to those
    /// who may take it. The write itself checks again.
    pub async fn may(
        &self,
        actor: &Actor,
        object: &str,
        record: &Json,
        action: access::Action,
    ) -> Result<bool, RecordError> {
        let object = self.object(object)?;
        let Some(id) = record.get("id").and_then(Json::as_str) else {
            return Ok(false);
        };
        let owner = record.get("owner").and_then(Json::as_str);
        let scopes = access::scopes(&self.schema, actor, &object.name, action);
        if scopes.is_none() {
            return Ok(false);
        }
        in_scope(&mut Reader::Db(&self.db), actor, object, id, owner, scopes).await
    }

    /// Field changes of a record, oldest first: `{at, by, action, field, old, new}`.
    pub async fn history(
        &self,
        actor: &Actor,
        object: &str,
        id: &str,
    ) -> Result<Vec<Json>, RecordError> {
        let object = self.object(object)?;
        let row = self
            .readable_row(actor, object, id, Deleted::Include)
            .await?;
        let readable = access::readable_fields(&self.schema, actor, object);
        let masking = access::Masking::new(&self.schema, actor, object);
        let owner = row_owner(&row);
        let shown = |field: &str, value: Json| {
            if masking.hides(field, owner) && !value.is_null() {
                Json::String(mask(&match value {
                    Json::String(text) => text,
                    other => other.to_string(),
                }))
            } else {
                value
            }
        };
        let entries = store::history(&self.db, &object.name, id).await?;
        Ok(entries
            .into_iter()
            .filter(|entry| {
                readable.contains(&entry.field)
                    || matches!(entry.field.as_str(), "owner" | "pool" | "deleted_at")
            })
            .map(|entry| {
                serde_json::json!({
                    "at": keel_meta::value::format_datetime(&entry.at),
                    "by": entry.by,
                    "action": entry.action,
                    "field": entry.field,
                    "old": shown(&entry.field, entry.old),
                    "new": shown(&entry.field, entry.new),
                })
            })
            .collect())
    }

    /// Grouped figures over the records the actor may read.
    pub async fn aggregate(
        &self,
        actor: &Actor,
        object: &str,
        request: AggregateRequest,
    ) -> Result<Vec<Json>, RecordError> {
        let object = self.object(object)?;
        let condition =
            self.list_condition(actor, object, request.filter.as_ref(), request.q.as_deref())?;
        for name in &request.group_by {
            let storage = self.readable_storage(actor, object, name)?;
            self.refuse_masked(actor, object, name, "group by")?;
            if storage == Storage::Json {
                return Err(RecordError::BadRequest(format!(
                    "cannot group by the list field `{name}`"
                )));
            }
        }
        let mut measures = Vec::new();
        if request.count
            || (request.sum.is_empty()
                && request.avg.is_empty()
                && request.min.is_empty()
                && request.max.is_empty())
        {
            measures.push(Measure::Count);
        }
        for (names, make, numeric_only) in [
            (&request.sum, Measure::Sum as fn(String) -> Measure, true),
            (&request.avg, Measure::Avg as fn(String) -> Measure, true),
            (&request.min, Measure::Min as fn(String) -> Measure, false),
            (&request.max, Measure::Max as fn(String) -> Measure, false),
        ] {
            for name in names {
                let storage = self.readable_storage(actor, object, name)?;
                self.refuse_masked(actor, object, name, "measure")?;
                let numeric = matches!(storage, Storage::Integer | Storage::Decimal { .. });
                if (numeric_only && !numeric) || storage == Storage::Json {
                    return Err(RecordError::BadRequest(format!(
                        "`{name}` is not a number field and cannot be summed or averaged"
                    )));
                }
                measures.push(make(name.clone()));
            }
        }
        let rows = store::aggregate(&self.db, object, &condition, &request.group_by, &measures)
            .await
            .map_err(query_error)?;
        Ok(rows.iter().map(row_json).collect())
    }

    /// Every record the actor may read that matches `filter`, streamed (no page cap).
    pub async fn export(
        &self,
        actor: &Actor,
        object: &str,
        filter: Option<Filter>,
        order: Vec<OrderTerm>,
    ) -> Result<RecordStream, RecordError> {
        self.export_matching(actor, object, filter, None, order)
            .await
    }

    /// [`Records::export`] of the records that also match the search text `q` (as a list
    /// with `q`), so a searched list page can export exactly what it shows.
    pub async fn export_matching(
        &self,
        actor: &Actor,
        object: &str,
        filter: Option<Filter>,
        q: Option<&str>,
        order: Vec<OrderTerm>,
    ) -> Result<RecordStream, RecordError> {
        let object_ref = self.object(object)?;
        let condition = self.list_condition(actor, object_ref, filter.as_ref(), q)?;
        let sort = self.sort(actor, object_ref, &order)?;
        let fields = output_fields(&self.schema, actor, object_ref, None)?;
        let shape = ExportShape {
            system: super::output::system_fields(object_ref),
            masking: access::Masking::new(&self.schema, actor, object_ref),
            fields,
        };
        // The first page is read before the stream is handed back, so whatever the database
        // refuses in this request is an error answer, not a 200 whose body stops short.
        let first_query = SelectQuery {
            object: object_ref,
            condition: condition.clone(),
            deleted: Deleted::Exclude,
            sort: sort.clone(),
            after: None,
            limit: Some(EXPORT_CHUNK),
            columns: None,
        };
        let first = store::select(&self.db, &first_query)
            .await
            .map_err(query_error)?;
        let first_page = FirstPage {
            after: first.last().map(|last| first_query.cursor_after(last)),
            rows: first,
        };
        let schema = self.schema.clone();
        let db = self.db.clone();
        let object_name = object_ref.name.clone();
        let stream = async_stream_rows(db, schema, object_name, condition, sort, first_page, shape);
        Ok(stream)
    }

    /// Records matching `probe` by the object's duplicate keys, across every record (also
    /// those the actor cannot see), revealing only id, masked title, owner name and pool.
    /// Budgeted and recorded for users who cannot read every match in clear (`budget`).
    pub async fn duplicates(
        &self,
        actor: &Actor,
        object: &str,
        probe: Input,
    ) -> Result<Vec<DuplicateMatch>, RecordError> {
        let object = self.object(object)?;
        if !access::can_create(&self.schema, actor, &object.name)
            && access::scope(&self.schema, actor, &object.name, access::Action::Read)
                == keel_meta::Scope::None
        {
            return Err(RecordError::Forbidden {
                message: format!("you may not check {} records", object.name),
                fields: Vec::new(),
            });
        }
        let prepared = super::input::prepare(
            &self.schema,
            actor,
            object,
            &probe,
            None,
            self.timezone_for_read(),
            super::input::Purpose::Probe,
            crate::coerce::Source::Text,
        )?;
        let mut row = prepared.values;
        row.insert("id".to_owned(), Value::Null);
        self.spend_lookup(actor, object)?;
        let (blocking, warning) = self
            .duplicate_matches(&mut Reader::Db(&self.db), object, &row)
            .await?;
        let matches: Vec<DuplicateMatch> = blocking.into_iter().chain(warning).collect();
        self.reveal_matches(actor, object, matches).await
    }

    /// Other records that share a duplicate key with the stored record `id` (one the actor
    /// may read), revealing what [`Records::duplicates`] reveals, for a record page's
    /// "possible duplicates". Key values the actor sees masked on this record are not
    /// compared (a match would tell something of the hidden value). Matches are recorded
    /// like any lookup, but the 查重 budget is not spent: the values are the record's own,
    /// not chosen by the actor, so a page view cannot probe for other records.
    pub async fn duplicates_of(
        &self,
        actor: &Actor,
        object: &str,
        id: &str,
    ) -> Result<Vec<DuplicateMatch>, RecordError> {
        let object = self.object(object)?;
        let mut row = self
            .readable_row(actor, object, id, Deleted::Exclude)
            .await?;
        if object.duplicates.is_empty() {
            return Ok(Vec::new());
        }
        let masking = access::Masking::new(&self.schema, actor, object);
        let owner = row_owner(&row).map(str::to_owned);
        let readable = access::readable_fields(&self.schema, actor, object);
        for key in &object.duplicates {
            for field in &key.fields {
                if masking.hides(field, owner.as_deref()) || !readable.contains(field) {
                    row.insert(field.clone(), Value::Null);
                }
            }
        }
        let (blocking, warning) = self
            .duplicate_matches(&mut Reader::Db(&self.db), object, &row)
            .await?;
        let mut matches: Vec<DuplicateMatch> = Vec::new();
        for found in blocking.into_iter().chain(warning) {
            if found.id != id && !matches.iter().any(|seen| seen.id == found.id) {
                matches.push(found);
            }
        }
        self.reveal_matches(actor, object, matches).await
    }

    /// Records the lookup of `matches` in the audit (who looked up what) and names their
    /// owners: what every duplicate check does before it answers.
    async fn reveal_matches(
        &self,
        actor: &Actor,
        object: &Object,
        mut matches: Vec<DuplicateMatch>,
    ) -> Result<Vec<DuplicateMatch>, RecordError> {
        let audit = self
            .lookup_audit(
                &mut Reader::Db(&self.db),
                actor,
                object,
                &matches,
                "duplicate_lookup",
            )
            .await?;
        self.record_lookups(&audit).await;
        self.name_owners(&mut matches).await;
        Ok(matches)
    }

    /// Replaces the owner ids that [`Records::duplicate_matches`] leaves in `owner_name` with
    /// the owners' names. Runs outside any write transaction.
    pub(super) async fn name_owners(&self, matches: &mut [DuplicateMatch]) {
        let ids: Vec<String> = matches
            .iter()
            .filter_map(|found| found.owner_name.clone())
            .collect();
        // A failed lookup leaves names empty rather than failing the save or the check.
        let names = self
            .names
            .of(&self.db, self.clock.now(), &ids)
            .await
            .unwrap_or_default();
        for found in matches {
            if let Some(owner_id) = found.owner_name.take() {
                found.owner_name = Some(names.get(&owner_id).cloned().unwrap_or_default());
            }
        }
    }

    /// (block matches, warn matches) of a record about to be saved, or of a probe: each of
    /// the object's duplicate keys the row fills is looked up by its normalised value in
    /// `keel_duplicate_keys` (one indexed query), then the few matching live records are
    /// read by id. `owner_name` holds the owner's *id* here; [`Records::name_owners`] turns
    /// it into a name once no write transaction is open (a second connection inside one
    /// could deadlock the pool).
    pub(super) async fn duplicate_matches(
        &self,
        reader: &mut Reader<'_>,
        object: &Object,
        row: &Row,
    ) -> Result<(Vec<DuplicateMatch>, Vec<DuplicateMatch>), RecordError> {
        let probes = duplicate_keys::key_values(object, row);
        let own_id = match row.get("id") {
            Some(Value::Text(id)) => Some(id.as_str()),
            _ => None,
        };
        let found = reader
            .find_duplicate_keys(&object.name, &probes, own_id, MATCHES_PER_KEY)
            .await?;
        self.describe_matches(reader, object, found).await
    }

    /// (block matches, warn matches) of the records `found` by their keys: the few matching
    /// live records read by id, titles masked, owners as ids (see
    /// [`Records::duplicate_matches`]).
    pub(super) async fn describe_matches(
        &self,
        reader: &mut Reader<'_>,
        object: &Object,
        found: Vec<KeyMatch>,
    ) -> Result<(Vec<DuplicateMatch>, Vec<DuplicateMatch>), RecordError> {
        let mut blocking = Vec::new();
        let mut warning = Vec::new();
        if found.is_empty() {
            return Ok((blocking, warning));
        }
        let mut ids: Vec<Value> = Vec::new();
        for key_match in &found {
            let id = Value::Text(key_match.record_id.clone());
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let mut columns = vec!["id".to_owned(), "owner".to_owned()];
        if object.pooled {
            columns.push("pool".to_owned());
        }
        if !columns.contains(&object.title) {
            columns.push(object.title.clone());
        }
        let query = SelectQuery {
            object,
            condition: Condition::In {
                column: "id".to_owned(),
                values: ids,
            },
            deleted: Deleted::Exclude,
            sort: Vec::new(),
            after: None,
            limit: None,
            columns: Some(columns),
        };
        let records: std::collections::HashMap<String, Row> = reader
            .select(&query)
            .await?
            .into_iter()
            .map(|found| (title_text(found.get("id")), found))
            .collect();
        for key_match in found {
            let (Some(found), Some(key)) = (
                records.get(&key_match.record_id),
                object.duplicates.get(key_match.index),
            ) else {
                continue;
            };
            let matched = DuplicateMatch {
                id: key_match.record_id.clone(),
                title: mask(&title_text(found.get(&object.title))),
                owner_name: match found.get("owner") {
                    Some(Value::Text(owner)) => Some(owner.clone()),
                    _ => None,
                },
                pool: match found.get("pool") {
                    Some(Value::Text(pool)) => Some(pool.clone()),
                    _ => None,
                },
                fields: key.fields.clone(),
            };
            match key.action {
                DuplicateAction::Block => blocking.push(matched),
                DuplicateAction::Warn => warning.push(matched),
            }
        }
        Ok((blocking, warning))
    }

    /// Whether `actor`'s duplicate lookups on `object` are budgeted: whether a match could
    /// show them a record outside their read scope, or a value they may only see masked.
    fn lookups_budgeted(&self, actor: &Actor, object: &Object) -> bool {
        if access::is_admin(&self.schema, actor) {
            return false;
        }
        let key_fields: Vec<String> = object
            .duplicates
            .iter()
            .flat_map(|key| key.fields.iter().cloned())
            .collect();
        access::scope(&self.schema, actor, &object.name, access::Action::Read)
            != keel_meta::Scope::All
            || {
                let masking = access::Masking::new(&self.schema, actor, object);
                key_fields.iter().any(|field| masking.hides_anywhere(field))
            }
    }

    /// Spends one of `actor`'s duplicate lookups on `object` (see `budget`), or refuses.
    pub(super) fn spend_lookup(&self, actor: &Actor, object: &Object) -> Result<(), RecordError> {
        if !self.lookups_budgeted(actor, object) {
            return Ok(());
        }
        self.lookups
            .spend(&actor.id, self.clock.now())
            .map_err(|retry_after| {
                tracing::warn!(user = %actor.username, object = %object.name, "duplicate lookup budget spent");
                RecordError::TooManyLookups { retry_after }
            })
    }

    /// The audit rows (under [`LOOKUPS_AUDIT`]) of `matches` that showed `actor` a record
    /// outside their read scope or a key value they may only see masked. `action` is
    /// `duplicate_lookup` or `duplicate_block`. Owners are still ids here.
    pub(super) async fn lookup_audit(
        &self,
        reader: &mut Reader<'_>,
        actor: &Actor,
        object: &Object,
        matches: &[DuplicateMatch],
        action: &str,
    ) -> Result<Vec<AuditEntry>, RecordError> {
        let readable = access::scopes(&self.schema, actor, &object.name, access::Action::Read);
        let masking = access::Masking::new(&self.schema, actor, object);
        let mut entries = Vec::new();
        for found in matches {
            let owner = found.owner_name.as_deref();
            let visible = in_scope(reader, actor, object, &found.id, owner, readable).await?;
            let masked = found.fields.iter().any(|field| masking.hides(field, owner));
            if visible && !masked {
                continue;
            }
            entries.push(AuditEntry {
                object: LOOKUPS_AUDIT.to_owned(),
                record_id: found.id.clone(),
                at: self.clock.now(),
                by: Some(actor.id.clone()),
                field: found.fields.join("+"),
                old: Json::Null,
                new: serde_json::json!({ "object": object.name }),
                action: action.to_owned(),
            });
        }
        Ok(entries)
    }

    /// Writes lookup audit rows after the lookup's transaction (if any) ended. A failure
    /// is logged: it must not turn an answered lookup into an error.
    pub(super) async fn record_lookups(&self, entries: &[AuditEntry]) {
        if entries.is_empty() {
            return;
        }
        if let Err(error) = store::append_audit(&self.db, entries).await {
            tracing::warn!(%error, "could not record duplicate lookups");
        }
    }

    /// Warnings for `warn` duplicate keys of a saved record.
    pub(super) fn duplicate_warnings(matches: Vec<DuplicateMatch>) -> Vec<Warning> {
        if matches.is_empty() {
            return Vec::new();
        }
        vec![Warning {
            code: "possible_duplicate",
            message: format!("{} similar record(s) already exist", matches.len()),
            matches,
        }]
    }

    fn timezone_for_read(&self) -> Tz {
        self.schema
            .app
            .timezone
            .parse()
            .unwrap_or(chrono_tz::Asia::Shanghai)
    }

    pub(crate) async fn readable_row(
        &self,
        actor: &Actor,
        object: &Object,
        id: &str,
        deleted: Deleted,
    ) -> Result<Row, RecordError> {
        let condition = access::read_condition(&self.schema, actor, &object.name);
        let query = record_query(object, id, condition, deleted);
        store::select(&self.db, &query)
            .await?
            .into_iter()
            .next()
            .ok_or(RecordError::NotFound)
    }

    /// The storage of a field the actor may read (system fields included).
    fn readable_storage(
        &self,
        actor: &Actor,
        object: &Object,
        name: &str,
    ) -> Result<Storage, RecordError> {
        if let Some(storage) = system_storage(object, name) {
            return Ok(storage);
        }
        match object.field(name) {
            Some(field)
                if access::field_access(&self.schema, actor, object, name)
                    != keel_meta::FieldAccess::Hidden =>
            {
                Ok(field.storage())
            }
            _ => Err(RecordError::BadRequest(format!(
                "`{name}` is not a field of `{}`",
                object.name
            ))),
        }
    }

    /// Whether `field` is masked for the actor on records they do not own.
    fn masked_for(&self, actor: &Actor, object: &Object, field: &str) -> bool {
        access::Masking::new(&self.schema, actor, object).hides_anywhere(field)
    }

    /// Refuses to sort, group or measure by a field masked for the actor: the order or the
    /// figures would reveal what the mask hides.
    fn refuse_masked(
        &self,
        actor: &Actor,
        object: &Object,
        field: &str,
        what: &str,
    ) -> Result<(), RecordError> {
        if self.masked_for(actor, object, field) {
            return Err(RecordError::BadRequest(format!(
                "cannot {what} `{field}`: it is masked for you"
            )));
        }
        Ok(())
    }

    pub(super) fn list_condition(
        &self,
        actor: &Actor,
        object: &Object,
        filter: Option<&Filter>,
        q: Option<&str>,
    ) -> Result<Condition, RecordError> {
        let scope = access::read_condition(&self.schema, actor, &object.name);
        self.condition_within(actor, object, scope, filter, q)
    }

    /// An admin's filter of the metadata (a pool's `exempt`, `converted`,
    /// `holding_excludes`) as a condition: read as the system, with relative dates in the
    /// app timezone.
    pub(crate) fn metadata_condition(
        &self,
        object: &Object,
        filter: &Filter,
    ) -> Result<Condition, RecordError> {
        self.condition(&Actor::system(), object, filter)
    }

    /// The condition of a list: `scope`, the filter and the `q` search.
    fn condition_within(
        &self,
        actor: &Actor,
        object: &Object,
        scope: Condition,
        filter: Option<&Filter>,
        q: Option<&str>,
    ) -> Result<Condition, RecordError> {
        let mut all = vec![scope];
        if let Some(filter) = filter {
            // The web layer checks the caps where it can name the parameter; this holds them
            // for every caller.
            filter.size().check().map_err(RecordError::BadRequest)?;
            all.push(self.condition(actor, object, filter)?);
        }
        if let Some(text) = q.map(str::trim).filter(|text| !text.is_empty()) {
            check_pattern(text)
                .map_err(|message| RecordError::BadRequest(format!("`q`: {message}")))?;
            let masking = access::Masking::new(&self.schema, actor, object);
            // Each searched field is searched only where the actor sees it in clear (a
            // masked field in their own records, a field a pool hides in held records).
            let mut groups: Vec<(Condition, Vec<String>)> = Vec::new();
            for name in object.search.iter().filter(|name| {
                access::field_access(&self.schema, actor, object, name)
                    != keel_meta::FieldAccess::Hidden
            }) {
                let clear = masking.clear_condition(name);
                match groups.iter_mut().find(|(where_, _)| *where_ == clear) {
                    Some((_, columns)) => columns.push(name.clone()),
                    None => groups.push((clear, vec![name.clone()])),
                }
            }
            all.push(Condition::Any(
                groups
                    .into_iter()
                    .map(|(clear, columns)| {
                        let contains = Condition::Contains {
                            columns,
                            text: text.to_owned(),
                        };
                        match clear {
                            Condition::Always => contains,
                            clear => Condition::All(vec![clear, contains]),
                        }
                    })
                    .collect(),
            ));
        }
        Ok(Condition::All(all))
    }

    /// A filter as a typed condition; values are read by the field's storage.
    fn condition(
        &self,
        actor: &Actor,
        object: &Object,
        filter: &Filter,
    ) -> Result<Condition, RecordError> {
        Ok(match filter {
            Filter::And { all } => Condition::All(
                all.iter()
                    .map(|f| self.condition(actor, object, f))
                    .collect::<Result<_, _>>()?,
            ),
            Filter::Or { any } => Condition::Any(
                any.iter()
                    .map(|f| self.condition(actor, object, f))
                    .collect::<Result<_, _>>()?,
            ),
            Filter::Not { filter } => {
                Condition::Not(Box::new(self.condition(actor, object, filter)?))
            }
            Filter::Compare { field, op, value } => {
                let compared = self.compare_condition(actor, object, field, *op, value)?;
                // Matches only where the actor sees the value in clear (see
                // `Masking::clear_condition`), so a filter cannot reveal a masked value.
                match access::Masking::new(&self.schema, actor, object).clear_condition(field) {
                    Condition::Always => compared,
                    clear => Condition::All(vec![clear, compared]),
                }
            }
        })
    }

    /// One comparison of a filter as a condition.
    fn compare_condition(
        &self,
        actor: &Actor,
        object: &Object,
        field: &str,
        op: Op,
        value: &FilterValue,
    ) -> Result<Condition, RecordError> {
        Ok({
            let storage =
                self.readable_storage(actor, object, field)
                    .map_err(|error| match error {
                        RecordError::BadRequest(message) => RecordError::BadFilter {
                            field: field.to_owned(),
                            message,
                        },
                        other => other,
                    })?;
            let bad = |message: String| RecordError::BadFilter {
                field: field.to_owned(),
                message: format!("filter on `{field}`: {message}"),
            };
            let typed = |value: &FilterValue| -> Result<Value, RecordError> {
                match value {
                    FilterValue::Literal(json) => {
                        filter_value(json, storage, self.timezone_for_read()).map_err(bad)
                    }
                    FilterValue::Relative(relative) => {
                        let at = relative.resolve(self.clock.now(), self.timezone_for_read());
                        match storage {
                            Storage::Datetime => Ok(Value::Datetime(at)),
                            Storage::Date => Ok(Value::Date(
                                at.with_timezone(&self.timezone_for_read()).date_naive(),
                            )),
                            _ => Err(bad(
                                "relative dates apply to date and datetime fields".to_owned()
                            )),
                        }
                    }
                    _ => Err(bad("expected a single value".to_owned())),
                }
            };
            if storage == Storage::Json && op != Op::Is {
                return Err(bad("list fields can only be filtered with `is`".to_owned()));
            }
            let column = field.to_owned();
            match op {
                Op::Is => Condition::IsNull {
                    column,
                    null: matches!(value, FilterValue::Null),
                },
                Op::In => match value {
                    FilterValue::List(items) => Condition::In {
                        column,
                        values: items
                            .iter()
                            .map(|json| match json {
                                // `IN (NULL)` matches nothing; an empty value is asked with `is`.
                                Json::Null => {
                                    Err(bad("an `in` list holds values, not null (use `is: null`)"
                                        .to_owned()))
                                }
                                json => filter_value(json, storage, self.timezone_for_read())
                                    .map_err(bad),
                            })
                            .collect::<Result<_, _>>()?,
                    },
                    _ => return Err(bad("`in` takes a list".to_owned())),
                },
                Op::Like => match (value, storage) {
                    (FilterValue::Literal(Json::String(pattern)), Storage::Text) => {
                        Condition::Like {
                            column,
                            pattern: pattern.clone(),
                        }
                    }
                    _ => {
                        return Err(bad(
                            "`like` applies to text fields and takes a text pattern".to_owned(),
                        ));
                    }
                },
                Op::Eq | Op::Ne | Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                    let compare = match op {
                        Op::Eq => CompareOp::Eq,
                        Op::Ne => CompareOp::Ne,
                        Op::Gt => CompareOp::Gt,
                        Op::Gte => CompareOp::Gte,
                        Op::Lt => CompareOp::Lt,
                        _ => CompareOp::Lte,
                    };
                    Condition::Compare {
                        column,
                        op: compare,
                        value: typed(value)?,
                    }
                }
            }
        })
    }

    /// The sort terms of a request (the object's list order when none), checked, with `id`
    /// appended as the final tie-breaker.
    fn sort(
        &self,
        actor: &Actor,
        object: &Object,
        order: &[OrderTerm],
    ) -> Result<Vec<Sort>, RecordError> {
        let terms = if order.is_empty() {
            &object.list.order
        } else {
            order
        };
        let mut sort = Vec::new();
        for term in terms {
            let storage = self.readable_storage(actor, object, &term.field)?;
            self.refuse_masked(actor, object, &term.field, "sort by")?;
            if storage == Storage::Json {
                return Err(RecordError::BadRequest(format!(
                    "cannot sort by the list field `{}`",
                    term.field
                )));
            }
            if !sort
                .iter()
                .any(|existing: &Sort| existing.column == term.field)
            {
                sort.push(Sort {
                    column: term.field.clone(),
                    descending: term.descending,
                });
            }
        }
        if !sort.iter().any(|term| term.column == "id") {
            // In the direction of the last term, so an index ending in `id` serves the page.
            let descending = sort.last().is_some_and(|term| term.descending);
            sort.push(Sort {
                column: "id".to_owned(),
                descending,
            });
        }
        Ok(sort)
    }
}

/// The storage of a system field a record carries, if `name` is one: filters and sorts may
/// name exactly the system fields that records show.
fn system_storage(object: &Object, name: &str) -> Option<Storage> {
    object
        .returned_system_fields()
        .find(|field| field.name == name)
        .map(|field| field.storage)
}

fn sort_signature(object: &Object, sort: &[Sort]) -> (String, Vec<Storage>) {
    let columns = object.columns();
    let signature = sort
        .iter()
        .map(|term| format!("{}{}", if term.descending { "-" } else { "" }, term.column))
        .collect::<Vec<_>>()
        .join(",");
    let storages = sort
        .iter()
        .map(|term| {
            columns
                .iter()
                .find(|column| column.name == term.column)
                .map_or(Storage::Text, |column| column.storage)
        })
        .collect();
    (signature, storages)
}

/// The largest whole number a filter compares with, either sign (the OpenAPI document says
/// the same).
pub const MAX_FILTER_INTEGER: i64 = 999_999_999_999_999_999;

/// A filter literal read by storage (lenient: `"42"` is the integer 42, a date matches a
/// datetime field from that day's midnight in the app timezone).
fn filter_value(json: &Json, storage: Storage, timezone: Tz) -> Result<Value, String> {
    let text = match json {
        Json::String(text) => text.clone(),
        Json::Number(n) => n.to_string(),
        Json::Bool(b) => b.to_string(),
        Json::Null => return Ok(Value::Null),
        _ => return Err("expected a single value".to_owned()),
    };
    let wrong = |what: &str| format!("`{text}` is not {what}");
    // A JSON number is a number, not the text of a boolean: `1` is not `true`.
    if storage == Storage::Boolean && json.is_number() {
        return Err(wrong("true or false"));
    }
    Ok(match storage {
        Storage::Text => Value::Text(text),
        Storage::Integer => {
            let integer: i64 = text.trim().parse().map_err(|_| wrong("a whole number"))?;
            if integer.unsigned_abs() > MAX_FILTER_INTEGER.unsigned_abs() {
                return Err(wrong(&format!(
                    "a whole number between -{MAX_FILTER_INTEGER} and {MAX_FILTER_INTEGER}"
                )));
            }
            Value::Integer(integer)
        }
        Storage::Decimal { .. } => {
            Value::Decimal(text.trim().parse().map_err(|_| wrong("a number"))?)
        }
        Storage::Boolean => Value::Boolean(match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(wrong("true or false")),
        }),
        Storage::Date => Value::Date(
            chrono::NaiveDate::parse_from_str(text.get(..10).unwrap_or(&text), "%Y-%m-%d")
                .map_err(|_| wrong("a date (YYYY-MM-DD)"))?,
        ),
        Storage::Datetime => match parse_datetime(&text, timezone) {
            Some(at) => Value::Datetime(at),
            None => {
                let date = chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                    .map_err(|_| wrong("a date and time"))?;
                let at = timezone
                    .from_local_datetime(&date.and_time(NaiveTime::MIN))
                    .earliest()
                    .ok_or_else(|| wrong("a date and time"))?;
                Value::Datetime(at.with_timezone(&Utc))
            }
        },
        Storage::Json => return Err("list fields can only be filtered with `is`".to_owned()),
    })
}

/// A store error of a read: a query the store cannot express from what the caller asked (a
/// value finer or larger than its column) is the caller's mistake, anything else a fault.
fn query_error(error: keel_store::StoreError) -> RecordError {
    match error {
        keel_store::StoreError::InvalidRecordQuery { reason, .. } => {
            RecordError::BadRequest(reason)
        }
        other => RecordError::Store(other),
    }
}

fn row_json(row: &Row) -> Json {
    Json::Object(
        row.iter()
            .map(|(name, value)| (name.clone(), value.to_json()))
            .collect::<Map<_, _>>(),
    )
}

/// Masks all but the edges of a title: `138****5678` for phone-like text, `张*` for a name.
pub(crate) fn mask(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let digits = chars.iter().filter(|c| c.is_ascii_digit()).count();
    if digits >= 7 {
        let keep_start = 3.min(chars.len());
        let keep_end = 4.min(chars.len() - keep_start);
        let middle = chars.len() - keep_start - keep_end;
        return chars[..keep_start]
            .iter()
            .chain(std::iter::repeat_n(&'*', middle))
            .chain(&chars[chars.len() - keep_end..])
            .collect();
    }
    match chars.len() {
        0 => String::new(),
        1 => "*".to_owned(),
        n => std::iter::once(chars[0])
            .chain(std::iter::repeat_n('*', n - 1))
            .collect(),
    }
}

/// What each exported record holds: system fields, then the readable fields, masked ones
/// masked unless the actor owns the record.
struct ExportShape {
    system: Vec<&'static str>,
    fields: Vec<String>,
    masking: access::Masking,
}

/// Rows stream out in keyset pages of [`EXPORT_CHUNK`], so memory stays flat however many
/// records match.
fn async_stream_rows(
    db: keel_store::Db,
    schema: std::sync::Arc<keel_meta::Schema>,
    object: String,
    condition: Condition,
    sort: Vec<Sort>,
    first: FirstPage,
    shape: ExportShape,
) -> RecordStream {
    struct State {
        after: Option<Vec<Value>>,
        done: bool,
    }
    let initial = State {
        after: first.after,
        done: first.rows.len() < EXPORT_CHUNK as usize,
    };
    let first_page = futures::stream::iter([first.rows.into_iter().map(Ok).collect::<Vec<_>>()]);
    let pages = futures::stream::unfold(initial, move |mut state| {
        let db = db.clone();
        let schema = schema.clone();
        let object = object.clone();
        let condition = condition.clone();
        let sort = sort.clone();
        async move {
            if state.done {
                return None;
            }
            let Some(object_ref) = schema.object(&object) else {
                state.done = true;
                return Some((vec![Err(RecordError::UnknownObject(object))], state));
            };
            let query = SelectQuery {
                object: object_ref,
                condition,
                deleted: Deleted::Exclude,
                sort,
                after: state.after.take(),
                limit: Some(EXPORT_CHUNK),
                columns: None,
            };
            match store::select(&db, &query).await {
                Ok(rows) => {
                    state.done = rows.len() < EXPORT_CHUNK as usize;
                    state.after = rows.last().map(|last| query.cursor_after(last));
                    if rows.is_empty() {
                        return None;
                    }
                    Some((rows.into_iter().map(Ok).collect::<Vec<_>>(), state))
                }
                Err(error) => {
                    state.done = true;
                    Some((vec![Err(RecordError::from(error))], state))
                }
            }
        }
    });
    let records = first_page.chain(pages).flat_map(futures::stream::iter).map(
        move |row: Result<Row, RecordError>| {
            row.map(|row| {
                let owner = row_owner(&row);
                let mut record = Map::new();
                for name in shape
                    .system
                    .iter()
                    .map(|s| s.to_string())
                    .chain(shape.fields.iter().cloned())
                {
                    let value = match row.get(&name) {
                        None => Json::Null,
                        Some(value) if shape.masking.hides(&name, owner) => masked_json(value),
                        Some(value) => value.to_json(),
                    };
                    record.insert(name, value);
                }
                Json::Object(record)
            })
        },
    );
    Box::pin(records)
}

/// The page an export reads before it answers, and the keyset position after it.
struct FirstPage {
    rows: Vec<Row>,
    after: Option<Vec<Value>>,
}

/// Rows fetched per page while exporting.
const EXPORT_CHUNK: u32 = 1_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_masked_but_their_edges_kept() {
        assert_eq!(mask("13800138000"), "138****8000");
        assert_eq!(mask("张三丰"), "张**");
        assert_eq!(mask(""), "");
    }
}
