//! The record page `/app/{object}/{id}` and its actions (docs/ui.md, "Record page"): the
//! header (title, key fields, edit and delete), the `layout` sections, the related lists of
//! objects that look up to this one, the history, and the duplicates warning; the recycle
//! bin `/app/{object}/deleted` with a restore button per record; delete and restore.
//!
//! Everything is read through `Records` as the API reads it for the same user: a record in
//! the recycle bin, one the user may not read, an unknown object or a malformed id is the
//! runtime's `NotFound`/`UnknownObject`, which is the 404 page. Whether to offer edit or
//! delete is the runtime's answer ([`Records::may`]); the write checks again.
//!
//! Each view of a record page remembers `object:id` in the `keel_recent` cookie (the last
//! [`RECENT_KEPT`]), which the home page lists as "recently viewed".
//!
//! [`Records::may`]: keel_runtime::records::Records::may

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use keel_meta::{Field, FieldKind, Filter, Object, Schema};
use keel_runtime::actor::Actor;
use keel_runtime::records::access::{self, Action};
use keel_runtime::records::{ListRequest, RecordError, Referencing};
use serde::Serialize;
use serde_json::Value as Json;

use super::pools::PoolNotice;
use super::{
    Formatter, Frame, PageError, PageForm, Shown, Viewer, form_urlencode, render,
    render_with_status,
};
use crate::AppState;
use crate::extract::Pinned;

/// How many records each related list shows.
const RELATED_SHOWN: u32 = 10;
/// How many lookup values of the history are looked up for their titles.
const HISTORY_TITLES: usize = 20;
/// How many records the recycle-bin page shows.
const BIN_SHOWN: u32 = 100;
/// How many records the `keel_recent` cookie remembers.
pub const RECENT_KEPT: usize = 10;
/// The cookie of recently viewed records: `object:id|object:id|…`, newest first.
pub const RECENT_COOKIE: &str = "keel_recent";
/// The cookie that carries "you deleted X — undo" to the next page, for one minute.
pub const UNDO_COOKIE: &str = "keel_undo";

/// The routes of this module; [`super::routes`] merges them.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/app/{object}/deleted", get(recycle_bin))
        .route("/app/{object}/{id}", get(page))
        .route("/app/{object}/{id}/delete", post(delete))
        .route("/app/{object}/{id}/restore", post(restore))
}

#[derive(Debug, Serialize)]
struct RecordPage {
    object: String,
    object_label: String,
    id: String,
    title: String,
    key_fields: Vec<FieldView>,
    sections: Vec<Section>,
    system: Vec<FieldView>,
    may_edit: bool,
    may_delete: bool,
    related: Vec<Related>,
    history: Vec<Change>,
    duplicates: Vec<Duplicate>,
    /// A catalog key of a notice to show on top (after a restore or a pool action).
    notice: Option<&'static str>,
    refusal: Option<Refusal>,
    /// Pool actions and history, for an object a pool the user may see holds.
    pool: Option<super::pools::RecordPool>,
    /// The stage path and transitions, for an object a process owns.
    process: Option<super::process::RecordProcess>,
}

#[derive(Debug, Serialize)]
struct FieldView {
    name: String,
    label: String,
    shown: Shown,
    masked: bool,
}

#[derive(Debug, Serialize)]
struct Section {
    title: String,
    /// `other`: the readable fields no layout section names.
    other: bool,
    fields: Vec<FieldView>,
}

#[derive(Debug, Serialize)]
struct Related {
    object: String,
    label: String,
    /// The lookup field of `object` that points here, and its label.
    field: String,
    field_label: String,
    columns: Vec<Column>,
    rows: Vec<RelatedRow>,
    /// Whether there are more than the rows shown.
    more: bool,
    see_all: String,
    new_url: Option<String>,
}

#[derive(Debug, Serialize)]
struct Column {
    name: String,
    label: String,
}

#[derive(Debug, Serialize)]
struct RelatedRow {
    id: String,
    url: String,
    cells: Vec<Shown>,
}

#[derive(Debug, Serialize)]
struct Change {
    who: String,
    at: String,
    at_text: String,
    ago: String,
    /// `create`, `update`, `delete` or `restore` (a catalog key under `record.action`).
    action: String,
    field: String,
    field_label: String,
    old: Shown,
    new: Shown,
}

#[derive(Debug, Serialize)]
struct Duplicate {
    /// A link when the user may open the match.
    url: Option<String>,
    title: String,
    owner: Option<String>,
    pool: Option<String>,
    fields: String,
}

/// `GET /app/{object}/{id}`.
async fn page(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path((object_name, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let pairs: Vec<&str> = query.as_deref().unwrap_or("").split('&').collect();
    let notice = if pairs.contains(&"restored=1") {
        Some("record.restored")
    } else {
        pairs.iter().find_map(|pair| match *pair {
            "pool=claimed" => Some("pools.done.claimed"),
            "pool=released" => Some("pools.done.released"),
            "pool=assigned" => Some("pools.done.assigned"),
            "pool=moved" => Some("pools.done.moved"),
            _ => None,
        })
    };
    // After a move: `moved=<stage>` or `approval=pending`.
    let process_notice = ProcessNotice {
        error: None,
        notice: pairs.iter().find_map(|pair| {
            pair.strip_prefix("moved=")
                .map(str::to_owned)
                .or_else(|| (*pair == "approval=pending").then(|| "pending".to_owned()))
        }),
    };
    let mut response = show(
        &state,
        &viewer,
        &object_name,
        &id,
        notice,
        None,
        PoolNotice::None,
        process_notice,
    )
    .await?;
    let recent = remember(recent_entries(&headers), &object_name, &id);
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{RECENT_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000",
        recent.join("|")
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Why a delete was refused, shown on top of the record page: the live records that
/// refer to it through `restrict` lookups.
#[derive(Debug, Serialize)]
struct Refusal {
    references: Vec<Referring>,
}

#[derive(Debug, Serialize)]
struct Referring {
    label: String,
    count: usize,
    more: bool,
    /// (url, title) of those the user may read.
    records: Vec<(String, String)>,
}

/// What the process part of a record page says after a move.
#[derive(Debug, Default)]
pub struct ProcessNotice {
    /// Why the move was refused.
    pub error: Option<String>,
    /// `pending`, or the stage moved to.
    pub notice: Option<String>,
}

/// The record page of `id` after a refused move (409), with the runtime's reason.
pub async fn show_with_notice(
    state: &AppState,
    viewer: &Viewer,
    object_name: &str,
    id: &str,
    error: Option<String>,
) -> Result<Response, PageError> {
    show(
        state,
        viewer,
        object_name,
        id,
        None,
        None,
        PoolNotice::None,
        ProcessNotice {
            error,
            notice: None,
        },
    )
    .await
}

/// The record page of `id` after a pool action was refused or needs another try (422 for a
/// release without a listed reason, 409 for a refusal).
pub async fn show_with_pool(
    state: &AppState,
    viewer: &Viewer,
    object_name: &str,
    id: &str,
    notice: PoolNotice,
) -> Result<Response, PageError> {
    let status = match &notice {
        PoolNotice::BadRelease { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        PoolNotice::Refused(refusal) => refusal.status(),
        PoolNotice::None => StatusCode::OK,
    };
    let mut response = show(
        state,
        viewer,
        object_name,
        id,
        None,
        None,
        notice,
        ProcessNotice::default(),
    )
    .await?;
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    Ok(response)
}

/// The record page of `id`, with `refusal` when a delete was just refused, a notice (a
/// catalog key) after an action, and what the pool part shows.
#[allow(clippy::too_many_arguments)]
async fn show(
    state: &AppState,
    viewer: &Viewer,
    object_name: &str,
    id: &str,
    notice: Option<&'static str>,
    refusal: Option<&[Referencing]>,
    pool_notice: PoolNotice,
    process_notice: ProcessNotice,
) -> Result<Response, PageError> {
    let (state, id) = (state.clone(), id.to_owned());
    let object_name = object_name.to_owned();
    let records = state.records();
    let record = records.get(&viewer.actor, &object_name, &id).await?;
    let schema = state.schema().clone();
    let Some(object) = schema.objects.get(&object_name) else {
        return Err(RecordError::UnknownObject(object_name).into());
    };
    let frame = Frame::new(&state, viewer).await?;
    let formatter = frame.formatter(&state);
    let actor = &viewer.actor;
    let readable = records.readable_fields(actor, &object.name)?;
    let masking = access::Masking::new(&schema, actor, object);
    let owner = record.get("owner").and_then(Json::as_str);
    let view = |field: &Field| {
        let masked = masking.hides(&field.name, owner);
        FieldView {
            name: field.name.clone(),
            label: formatter.field_label(field),
            shown: formatter.show(field, &record, masked),
            masked,
        }
    };

    let mut sections = Vec::new();
    let mut placed: Vec<&str> = Vec::new();
    for section in &object.layout {
        let fields: Vec<FieldView> = section
            .fields
            .iter()
            .filter(|name| readable.contains(name))
            .filter_map(|name| object.field(name))
            .map(&view)
            .collect();
        placed.extend(section.fields.iter().map(String::as_str));
        if !fields.is_empty() {
            sections.push(Section {
                title: formatter.label(Some(&section.section), ""),
                other: false,
                fields,
            });
        }
    }
    let others: Vec<FieldView> = object
        .fields
        .values()
        .filter(|field| readable.contains(&field.name) && !placed.contains(&field.name.as_str()))
        .map(&view)
        .collect();
    if !others.is_empty() {
        sections.push(Section {
            title: String::new(),
            other: true,
            fields: others,
        });
    }

    let mut key_fields = Vec::new();
    if let Some(owner_view) = system_view(&formatter, &state, viewer, object, "owner", &record) {
        key_fields.push(owner_view);
    }
    let laid_out = || {
        object
            .layout
            .iter()
            .flat_map(|section| section.fields.iter())
            .filter(|name| readable.contains(name))
            .filter_map(|name| object.field(name))
    };
    if let Some(choice) = laid_out().find(|field| matches!(field.kind, FieldKind::Choice { .. })) {
        key_fields.push(view(choice));
    }
    if let Some(money) = laid_out().find(|field| matches!(field.kind, FieldKind::Money { .. })) {
        key_fields.push(view(money));
    }
    let system = ["created_at", "created_by", "updated_at", "updated_by"]
        .into_iter()
        .filter_map(|name| system_view(&formatter, &state, viewer, object, name, &record))
        .collect();

    let may_edit = records
        .may(actor, &object.name, &record, Action::Edit)
        .await?;
    let may_delete = records
        .may(actor, &object.name, &record, Action::Delete)
        .await?;
    let related = related_lists(&state, actor, &schema, object, &id, &formatter).await?;
    let masked = |field: &str| masking.hides(field, owner);
    let history = history(&state, actor, object, &id, &formatter, &masked).await?;
    let duplicates = duplicates(&state, actor, object, &id, &formatter).await;
    let title = record_title(object, &record);
    let pool =
        super::pools::record_part(&state, viewer, object, &record, &formatter, pool_notice).await?;
    let refusal = refusal.map(|references| Refusal {
        references: references
            .iter()
            .map(|referencing| {
                let other = schema.objects.get(&referencing.object);
                Referring {
                    label: other
                        .map(|other| formatter.label(Some(&other.label), &other.name))
                        .unwrap_or_else(|| referencing.object.clone()),
                    count: referencing.count,
                    more: referencing.more,
                    records: referencing
                        .records
                        .iter()
                        .map(|record| {
                            (
                                format!("/app/{}/{}", referencing.object, record.id),
                                record.title.clone().unwrap_or_else(|| record.id.clone()),
                            )
                        })
                        .collect(),
                }
            })
            .collect(),
    });

    let process = match super::kanban::process_of(&schema, &object.name) {
        Some(process) => Some(
            super::process::record_part(
                &state,
                viewer,
                process,
                object,
                &record,
                &formatter,
                process_notice.error,
                process_notice.notice.as_deref(),
            )
            .await?,
        ),
        None => None,
    };
    let page = RecordPage {
        process,
        object: object.name.clone(),
        object_label: formatter.label(Some(&object.label), &object.name),
        id: id.clone(),
        title,
        key_fields,
        sections,
        system,
        may_edit,
        may_delete,
        related,
        history,
        duplicates,
        notice,
        refusal,
        pool,
    };
    let status = if page.refusal.is_some() {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    render_with_status(&state, &frame, "record.html", page, status)
}

/// The text of a record's title field (its id when the title is empty or hidden).
pub fn record_title(object: &Object, record: &Json) -> String {
    match record.get(&object.title) {
        Some(Json::String(text)) if !text.is_empty() => text.clone(),
        Some(Json::Null) | None => record
            .get("id")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned(),
        Some(other) => other.to_string(),
    }
}

/// A system field (`owner`, `created_at`, …) of `record`, if the object has it.
fn system_view(
    formatter: &Formatter,
    state: &AppState,
    viewer: &Viewer,
    object: &Object,
    name: &str,
    record: &Json,
) -> Option<FieldView> {
    if !object.returns_system_field(name) {
        return None;
    }
    let catalogs = state.ui().catalogs();
    let label = catalogs.text(&viewer.lang, &format!("record.system.{name}"), |_| None);
    Some(FieldView {
        name: name.to_owned(),
        label,
        shown: show_system(formatter, name, record),
        masked: false,
    })
}

/// A system field's value: users by their names (from `_refs`), instants in the app's
/// timezone.
fn show_system(formatter: &Formatter, name: &str, record: &Json) -> Shown {
    let raw = match record.get(name) {
        Some(Json::String(text)) => text.clone(),
        Some(Json::Null) | None => {
            return Shown {
                class: "empty",
                ..Shown::default()
            };
        }
        Some(other) => other.to_string(),
    };
    let text = if name.ends_with("_at") {
        formatter.datetime(&raw)
    } else {
        record
            .get("_refs")
            .and_then(|refs| refs.get(name))
            .and_then(|reference| reference.get("title"))
            .and_then(Json::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| raw.clone())
    };
    Shown {
        text,
        class: "text",
        raw,
        ..Shown::default()
    }
}

/// `name` of `record` (a declared or a system field) as a list cell shows it.
fn show_any(
    formatter: &Formatter,
    object: &Object,
    masking: &access::Masking,
    name: &str,
    record: &Json,
) -> Shown {
    match object.field(name) {
        Some(field) => {
            let owner = record.get("owner").and_then(Json::as_str);
            formatter.show(field, record, masking.hides(name, owner))
        }
        None => show_system(formatter, name, record),
    }
}

/// For every lookup field of another object that points at `object` and that the user may
/// read: up to [`RELATED_SHOWN`] of the records referring to `id`, with their list columns.
async fn related_lists(
    state: &AppState,
    actor: &Actor,
    schema: &Schema,
    object: &Object,
    id: &str,
    formatter: &Formatter,
) -> Result<Vec<Related>, PageError> {
    let records = state.records();
    let mut related = Vec::new();
    for other in schema.objects.values() {
        if access::scope(schema, actor, &other.name, Action::Read) == keel_meta::Scope::None {
            continue;
        }
        let readable = records.readable_fields(actor, &other.name)?;
        let lookups = other.fields.values().filter(|field| {
            matches!(&field.kind, FieldKind::Lookup { object: target, .. } if *target == object.name)
                && readable.contains(&field.name)
        });
        for field in lookups {
            let Ok(filter) = Filter::from_query_param(&field.name, &format!("eq.{id}")) else {
                continue;
            };
            let columns: Vec<String> = other
                .list
                .columns
                .iter()
                .filter(|name| readable.contains(name) || other.returns_system_field(name))
                .filter(|name| *name != &field.name)
                .cloned()
                .collect();
            let page = records
                .list(
                    actor,
                    &other.name,
                    ListRequest {
                        filter: Some(filter),
                        limit: Some(RELATED_SHOWN),
                        ..ListRequest::default()
                    },
                )
                .await?;
            let masking = access::Masking::new(schema, actor, other);
            let rows = page
                .data
                .iter()
                .map(|record| {
                    let row_id = record
                        .get("id")
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    RelatedRow {
                        url: format!("/app/{}/{row_id}", other.name),
                        id: row_id,
                        cells: columns
                            .iter()
                            .map(|name| show_any(formatter, other, &masking, name, record))
                            .collect(),
                    }
                })
                .collect();
            let query = format!("{}=eq.{}", field.name, form_urlencode(id));
            related.push(Related {
                object: other.name.clone(),
                label: formatter.label(Some(&other.label), &other.name),
                field: field.name.clone(),
                field_label: formatter.field_label(field),
                columns: columns
                    .iter()
                    .map(|name| Column {
                        name: name.clone(),
                        label: match other.field(name) {
                            Some(field) => formatter.field_label(field),
                            None => state.ui().catalogs().text(
                                &formatter.lang,
                                &format!("record.system.{name}"),
                                |_| None,
                            ),
                        },
                    })
                    .collect(),
                rows,
                more: page.next.is_some(),
                see_all: format!("/app/{}?{query}", other.name),
                new_url: access::can_create(schema, actor, &other.name).then(|| {
                    format!(
                        "/app/{}/new?{}={}",
                        other.name,
                        field.name,
                        form_urlencode(id)
                    )
                }),
            });
        }
    }
    Ok(related)
}

/// The record's field changes, newest first, each value formatted as its field shows it.
async fn history(
    state: &AppState,
    actor: &Actor,
    object: &Object,
    id: &str,
    formatter: &Formatter,
    masked: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<Change>, PageError> {
    let records = state.records();
    let entries = records.history(actor, &object.name, id).await?;
    let mut users: Vec<String> = entries
        .iter()
        .filter_map(|entry| entry.get("by").and_then(Json::as_str).map(str::to_owned))
        .collect();
    // Changes of the owner and of user fields name users too; changes of lookups name
    // records, shown by their titles where the user may read them.
    let mut targets: Vec<(String, String)> = Vec::new();
    for entry in &entries {
        let Some(field_name) = entry.get("field").and_then(Json::as_str) else {
            continue;
        };
        let kind = object.field(field_name).map(|field| &field.kind);
        for side in ["old", "new"] {
            let Some(value) = entry.get(side).and_then(Json::as_str) else {
                continue;
            };
            match kind {
                None if field_name == "owner" => users.push(value.to_owned()),
                Some(FieldKind::User) => users.push(value.to_owned()),
                Some(FieldKind::Lookup { object: target, .. }) if !masked(field_name) => {
                    targets.push((target.clone(), value.to_owned()));
                }
                _ => {}
            }
        }
    }
    users.sort();
    users.dedup();
    let names = records.user_names(&users).await?;
    targets.sort();
    targets.dedup();
    let mut titles: HashMap<String, String> = HashMap::new();
    for (target, target_id) in targets.into_iter().take(HISTORY_TITLES) {
        let Some(target_object) = state.schema().objects.get(&target) else {
            continue;
        };
        if let Ok(found) = records.get(actor, &target, &target_id).await {
            titles.insert(target_id, record_title(target_object, &found));
        }
    }
    let catalogs = state.ui().catalogs();
    let system_label =
        |name: &str| catalogs.text(&formatter.lang, &format!("record.system.{name}"), |_| None);
    Ok(entries
        .iter()
        .rev()
        .map(|entry| {
            let text = |key: &str| {
                entry
                    .get(key)
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let field_name = text("field");
            let at = text("at");
            let who = entry
                .get("by")
                .and_then(Json::as_str)
                .map(|by| names.get(by).cloned().unwrap_or_else(|| by.to_owned()))
                .unwrap_or_else(|| catalogs.text(&formatter.lang, "record.system_user", |_| None));
            let shown = |side: &str| {
                let value = entry.get(side).cloned().unwrap_or(Json::Null);
                change_value(
                    formatter,
                    object,
                    &field_name,
                    value,
                    &names,
                    &titles,
                    masked(&field_name),
                )
            };
            Change {
                who,
                at_text: formatter.datetime(&at),
                ago: formatter.ago(&at),
                at,
                action: text("action"),
                field_label: match object.field(&field_name) {
                    Some(field) => formatter.field_label(field),
                    None => system_label(&field_name),
                },
                old: shown("old"),
                new: shown("new"),
                field: field_name,
            }
        })
        .fold(Vec::new(), collapse_creation))
}

/// Folds the one entry per field that a create writes into one "created" row: the values
/// a record started with are on the page already, and a row each would bury the changes.
fn collapse_creation(mut changes: Vec<Change>, change: Change) -> Vec<Change> {
    if change.action == "create" {
        if changes
            .last()
            .is_some_and(|last| last.action == "create" && last.at == change.at)
        {
            return changes;
        }
        changes.push(Change {
            field: String::new(),
            field_label: String::new(),
            old: Shown::default(),
            new: Shown::default(),
            ..change
        });
        return changes;
    }
    changes.push(change);
    changes
}

/// One side of a change, formatted with the field's type (an owner by its name).
fn change_value(
    formatter: &Formatter,
    object: &Object,
    field_name: &str,
    value: Json,
    names: &HashMap<String, String>,
    titles: &HashMap<String, String>,
    masked: bool,
) -> Shown {
    if value.is_null() {
        return Shown {
            class: "empty",
            ..Shown::default()
        };
    }
    match object.field(field_name) {
        Some(field) => {
            // A one-field record with `_refs` as `Records` gives them, so the formatter
            // shows lookups and users by name.
            let title = value.as_str().and_then(|raw| match &field.kind {
                FieldKind::User => names.get(raw),
                FieldKind::Lookup { .. } => titles.get(raw),
                _ => None,
            });
            let mut record = serde_json::Map::new();
            if let Some(title) = title {
                record.insert(
                    "_refs".to_owned(),
                    serde_json::json!({ field_name: { "title": title } }),
                );
            }
            record.insert(field_name.to_owned(), value);
            // `Records::history` masked what the user sees masked; its text is shown as is.
            formatter.show(field, &Json::Object(record), masked)
        }
        None => {
            let raw = match &value {
                Json::String(text) => text.clone(),
                other => other.to_string(),
            };
            let text = if field_name.ends_with("_at") {
                formatter.datetime(&raw)
            } else {
                names.get(&raw).cloned().unwrap_or_else(|| raw.clone())
            };
            Shown {
                text,
                class: "text",
                raw,
                ..Shown::default()
            }
        }
    }
}

/// Other records that share a duplicate key with this one, as `Records::duplicates_of`
/// reveals them. A check that cannot run shows nothing rather than failing the page.
async fn duplicates(
    state: &AppState,
    actor: &Actor,
    object: &Object,
    id: &str,
    formatter: &Formatter,
) -> Vec<Duplicate> {
    if object.duplicates.is_empty() {
        return Vec::new();
    }
    let records = state.records();
    let matches = match records.duplicates_of(actor, &object.name, id).await {
        Ok(matches) => matches,
        Err(error) => {
            tracing::warn!(%error, "the record page's duplicate check did not run");
            return Vec::new();
        }
    };
    let mut shown: Vec<Duplicate> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for found in matches {
        if found.id == id || seen.contains(&found.id) {
            continue;
        }
        seen.push(found.id.clone());
        let labels: Vec<String> = found
            .fields
            .iter()
            .map(|name| {
                object
                    .field(name)
                    .map(|field| formatter.field_label(field))
                    .unwrap_or_else(|| name.clone())
            })
            .collect();
        let visible = records.get(actor, &object.name, &found.id).await.ok();
        shown.push(match visible {
            Some(other) => Duplicate {
                url: Some(format!("/app/{}/{}", object.name, found.id)),
                title: record_title(object, &other),
                owner: found.owner_name,
                pool: found.pool,
                fields: labels.join(" + "),
            },
            None => Duplicate {
                url: None,
                title: found.title,
                owner: found.owner_name,
                pool: found.pool,
                fields: labels.join(" + "),
            },
        });
    }
    shown
}

/// `POST /app/{object}/{id}/delete`: to the recycle bin, then to the list with "undo".
async fn delete(
    Pinned(state): Pinned,
    Path((object, id)): Path<(String, String)>,
    form: PageForm,
) -> Result<Response, PageError> {
    match state
        .records()
        .delete(&form.viewer.actor, &object, &id)
        .await
    {
        Ok(()) => {}
        // Other records still refer to it: the record page again, saying which.
        Err(RecordError::Referenced { references, .. }) if !references.is_empty() => {
            return show(
                &state,
                &form.viewer,
                &object,
                &id,
                None,
                Some(&references),
                PoolNotice::None,
                ProcessNotice::default(),
            )
            .await;
        }
        Err(error) => return Err(error.into()),
    }
    let mut response = Redirect::to(&format!("/app/{object}")).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{UNDO_COOKIE}={object}:{}; Path=/app/{object}; HttpOnly; SameSite=Lax; Max-Age=60",
        form_urlencode(&id)
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// `POST /app/{object}/{id}/restore`: back from the recycle bin, to the record.
async fn restore(
    Pinned(state): Pinned,
    Path((object, id)): Path<(String, String)>,
    form: PageForm,
) -> Result<Response, PageError> {
    state
        .records()
        .restore(&form.viewer.actor, &object, &id)
        .await?;
    let mut response =
        Redirect::to(&format!("/app/{object}/{}?restored=1", form_urlencode(&id))).into_response();
    // The undo offer is spent.
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{UNDO_COOKIE}=; Path=/app/{object}; HttpOnly; SameSite=Lax; Max-Age=0"
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

#[derive(Debug, Serialize)]
struct BinPage {
    object: String,
    object_label: String,
    rows: Vec<BinRow>,
}

#[derive(Debug, Serialize)]
struct BinRow {
    id: String,
    title: String,
    deleted_at: String,
    deleted_ago: String,
    deleted_by: String,
    may_restore: bool,
}

/// `GET /app/{object}/deleted`: the records of the recycle bin the user may read.
async fn recycle_bin(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path(object_name): Path<String>,
) -> Result<Response, PageError> {
    let records = state.records();
    let deleted = records
        .list_deleted(&viewer.actor, &object_name, BIN_SHOWN)
        .await?;
    let schema = state.schema().clone();
    let Some(object) = schema.objects.get(&object_name) else {
        return Err(RecordError::UnknownObject(object_name).into());
    };
    let frame = Frame::new(&state, &viewer).await?;
    let formatter = frame.formatter(&state);
    let by: Vec<String> = deleted
        .iter()
        .filter_map(|record| record.get("deleted_by").and_then(Json::as_str))
        .map(str::to_owned)
        .collect();
    let names = records.user_names(&by).await?;
    let mut rows = Vec::with_capacity(deleted.len());
    for record in &deleted {
        let at = record
            .get("deleted_at")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let by = record
            .get("deleted_by")
            .and_then(Json::as_str)
            .unwrap_or_default();
        rows.push(BinRow {
            id: record
                .get("id")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_owned(),
            title: record_title(object, record),
            deleted_at: formatter.datetime(at),
            deleted_ago: formatter.ago(at),
            deleted_by: names.get(by).cloned().unwrap_or_else(|| by.to_owned()),
            may_restore: records
                .may(&viewer.actor, &object.name, record, Action::Delete)
                .await?,
        });
    }
    let page = BinPage {
        object: object.name.clone(),
        object_label: formatter.label(Some(&object.label), &object.name),
        rows,
    };
    render(&state, &frame, "record/deleted.html", page)
}

/// A record just deleted, for the "moved to the recycle bin: undo" notice that
/// `record/undo.html` shows on the page a delete redirects to (the object's list).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Undo {
    pub object: String,
    pub id: String,
}

/// The record of `object` deleted within the last minute in this browser, if any (from
/// the `keel_undo` cookie the delete set). The list page passes it to its template as
/// `undo` for `record/undo.html`.
pub fn take_undo(headers: &HeaderMap, object: &str) -> Option<Undo> {
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            let Some(entry) = pair.trim().strip_prefix(&format!("{UNDO_COOKIE}=")) else {
                continue;
            };
            if let Some((cookie_object, id)) = entry.split_once(':')
                && cookie_object == object
                && is_token(object)
                && is_token(id)
            {
                return Some(Undo {
                    object: object.to_owned(),
                    id: id.to_owned(),
                });
            }
        }
    }
    None
}

/// The `object:id` entries of the `keel_recent` cookie, newest first; malformed ones are
/// dropped (the cookie is the browser's to change).
pub fn recent_entries(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            let Some(list) = pair.trim().strip_prefix(&format!("{RECENT_COOKIE}=")) else {
                continue;
            };
            for entry in list.split('|') {
                if let Some((object, id)) = entry.split_once(':')
                    && is_token(object)
                    && is_token(id)
                {
                    entries.push((object.to_owned(), id.to_owned()));
                }
            }
        }
    }
    entries.truncate(RECENT_KEPT);
    entries
}

/// A name or id safe to keep in a cookie and to put in a path.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// `entries` with `object:id` moved to the front, at most [`RECENT_KEPT`], as cookie text.
fn remember(entries: Vec<(String, String)>, object: &str, id: &str) -> Vec<String> {
    let mut kept = Vec::with_capacity(RECENT_KEPT);
    if is_token(object) && is_token(id) {
        kept.push(format!("{object}:{id}"));
    }
    for (other_object, other_id) in entries {
        let entry = format!("{other_object}:{other_id}");
        if !kept.contains(&entry) && kept.len() < RECENT_KEPT {
            kept.push(entry);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recent_cookie_keeps_the_last_ten_distinct_records_newest_first() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static(
                "a=b; keel_recent=lead:1|account:2|bad entry|x:<script>|lead:3",
            ),
        );
        let entries = recent_entries(&headers);
        assert_eq!(
            entries,
            vec![
                ("lead".to_owned(), "1".to_owned()),
                ("account".to_owned(), "2".to_owned()),
                ("lead".to_owned(), "3".to_owned()),
            ]
        );
        assert_eq!(
            remember(entries, "account", "2"),
            vec!["account:2", "lead:1", "lead:3"]
        );
        let many: Vec<(String, String)> = (0..20)
            .map(|n| ("lead".to_owned(), n.to_string()))
            .collect();
        let kept = remember(many, "lead", "new");
        assert_eq!(kept.len(), RECENT_KEPT);
        assert_eq!(kept[0], "lead:new");
        assert!(remember(Vec::new(), "lead", "a;b").is_empty());
    }

    #[test]
    fn the_undo_cookie_names_only_a_record_of_the_same_object() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("keel_undo=lead:abc-1"),
        );
        assert_eq!(
            take_undo(&headers, "lead"),
            Some(Undo {
                object: "lead".to_owned(),
                id: "abc-1".to_owned()
            })
        );
        assert_eq!(take_undo(&headers, "account"), None);
    }
}
