//! Turning stored rows into the JSON records the API returns: system fields, the fields the
//! actor may read (or the subset asked for), and `_refs` naming lookup targets, the owner and
//! `user` fields.
//!
//! Field access is applied here, where a record becomes output, and nowhere else.

use std::collections::{BTreeMap, BTreeSet};

use keel_meta::{FieldKind, Object, Schema, Value};
use keel_store::Db;
use keel_store::records::{Condition, Deleted, Row, SelectQuery, select};
use serde_json::{Map, Value as Json};

use crate::actor::Actor;
use crate::records::access;
use crate::records::{RecordError, Records};

/// System fields every output record carries (pool fields too on pooled objects).
pub(super) fn system_fields(object: &Object) -> Vec<&'static str> {
    object
        .returned_system_fields()
        .map(|field| field.name)
        .collect()
}

/// System fields holding a user id, named in `_refs`.
fn user_system_fields(object: &Object) -> impl Iterator<Item = &'static str> {
    object
        .returned_system_fields()
        .filter(|field| field.user)
        .map(|field| field.name)
}

/// Which declared fields go out: the readable ones, narrowed by `requested` when given.
pub(crate) fn output_fields(
    schema: &Schema,
    actor: &Actor,
    object: &Object,
    requested: Option<&[String]>,
) -> Result<Vec<String>, RecordError> {
    let readable = access::readable_fields(schema, actor, object);
    let Some(requested) = requested else {
        return Ok(readable);
    };
    let mut fields = Vec::new();
    for name in requested {
        if readable.contains(name) {
            fields.push(name.clone());
        } else if !object.returns_system_field(name) {
            return Err(RecordError::BadRequest(format!(
                "`fields` names `{name}`, which is not a field of `{}`",
                object.name
            )));
        }
    }
    Ok(fields)
}

/// Builds the JSON records for `rows`, with `_refs` resolved in one query per lookup target.
/// A lookup target the actor may not read gets no `_refs` entry: its title is not revealed.
/// The rows are consumed: their names and values move into the JSON instead of being copied.
pub(crate) async fn render_rows(
    records: &Records,
    actor: &Actor,
    object: &Object,
    fields: &[String],
    rows: Vec<Row>,
) -> Result<Vec<Json>, RecordError> {
    let (db, schema) = (&records.db, &*records.schema);
    let titles = lookup_titles(db, schema, actor, object, fields, &rows).await?;
    // `owner`, `created_by`, `updated_by` and `user` fields are named in `_refs` too.
    let user_fields: Vec<&String> = fields
        .iter()
        .filter(|name| matches!(object.field(name).map(|f| &f.kind), Some(FieldKind::User)))
        .collect();
    let user_system: Vec<&str> = user_system_fields(object).collect();
    let user_ids: BTreeSet<String> = rows
        .iter()
        .flat_map(|row| {
            user_system
                .iter()
                .copied()
                .chain(user_fields.iter().map(|name| name.as_str()))
                .filter_map(|name| match row.get(name) {
                    Some(Value::Text(id)) => Some(id.clone()),
                    _ => None,
                })
        })
        .collect();
    let user_names = records.names.of(db, records.clock.now(), &user_ids).await?;
    let system = system_fields(object);
    let masking = access::Masking::new(schema, actor, object);
    // What each output field needs, worked out once rather than per row.
    let columns: Vec<(&String, bool, Option<&String>)> = fields
        .iter()
        .map(|name| {
            let kind = object.field(name).map(|f| &f.kind);
            let target = match kind {
                Some(FieldKind::Lookup { object: target, .. }) => Some(target),
                _ => None,
            };
            (name, user_fields.contains(&name), target)
        })
        .collect();
    let user_ref = |name: &str, value: Option<&Value>, refs: &mut Map<String, Json>| {
        if let Some(Value::Text(id)) = value
            && let Some(title) = user_names.get(id)
        {
            refs.insert(
                name.to_owned(),
                serde_json::json!({ "id": id, "title": title }),
            );
        }
    };
    Ok(rows
        .into_iter()
        .map(|mut row| {
            let mut refs = Map::new();
            for name in &user_system {
                user_ref(name, row.get(*name), &mut refs);
            }
            let mut hidden = Vec::new();
            for (name, is_user, target) in &columns {
                let value = row.get(*name);
                if *is_user {
                    user_ref(name, value, &mut refs);
                }
                if let (Some(target), Some(Value::Text(id))) = (target, value)
                    && let Some(title) = titles.get(&((*target).clone(), id.clone()))
                {
                    refs.insert(
                        (*name).clone(),
                        serde_json::json!({ "id": id, "title": title }),
                    );
                }
                hidden.push(masking.hides(name, row_owner(&row)));
            }
            let mut record = Map::with_capacity(system.len() + columns.len() + 1);
            for name in &system {
                if let Some((key, value)) = row.swap_remove_entry(*name) {
                    record.insert(key, value.into_json());
                }
            }
            for ((name, ..), hidden) in columns.iter().zip(hidden) {
                let (key, value) = row
                    .swap_remove_entry(name.as_str())
                    .unwrap_or_else(|| ((*name).clone(), Value::Null));
                let json = if hidden {
                    masked_json(&value)
                } else {
                    value.into_json()
                };
                record.insert(key, json);
            }
            if !refs.is_empty() {
                record.insert("_refs".to_owned(), Json::Object(refs));
            }
            Json::Object(record)
        })
        .collect())
}

/// The owner of `row`, which decides whether its masked fields show in clear
/// ([`access::Masking::hides`]).
pub(super) fn row_owner(row: &Row) -> Option<&str> {
    match row.get("owner") {
        Some(Value::Text(owner)) => Some(owner),
        _ => None,
    }
}

/// A value as shown masked: `138****5678`; empty stays empty.
pub(super) fn masked_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        other => Json::String(super::read::mask(&title_text(Some(other)))),
    }
}

/// (target object, id) → title of every lookup value in `rows`.
async fn lookup_titles(
    db: &Db,
    schema: &Schema,
    actor: &Actor,
    object: &Object,
    fields: &[String],
    rows: &[Row],
) -> Result<BTreeMap<(String, String), String>, RecordError> {
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in fields {
        if let Some(FieldKind::Lookup { object: target, .. }) = object.field(name).map(|f| &f.kind)
        {
            for row in rows {
                if let Some(Value::Text(id)) = row.get(name) {
                    wanted.entry(target.clone()).or_default().insert(id.clone());
                }
            }
        }
    }
    let mut titles = BTreeMap::new();
    for (target, ids) in wanted {
        let Some(target_object) = schema.object(&target) else {
            continue;
        };
        let title_field = target_object.title.clone();
        if access::field_access(schema, actor, target_object, &title_field)
            == keel_meta::FieldAccess::Hidden
        {
            continue;
        }
        let masking = access::Masking::new(schema, actor, target_object);
        let query = SelectQuery {
            object: target_object,
            condition: Condition::All(vec![
                Condition::In {
                    column: "id".to_owned(),
                    values: ids.into_iter().map(Value::Text).collect(),
                },
                access::read_condition(schema, actor, &target),
            ]),
            deleted: Deleted::Include,
            sort: Vec::new(),
            after: None,
            limit: None,
            columns: Some(vec![
                "id".to_owned(),
                "owner".to_owned(),
                title_field.clone(),
            ]),
        };
        for row in select(db, &query).await? {
            if let Some(Value::Text(id)) = row.get("id") {
                let title = title_text(row.get(&title_field));
                let title = if masking.hides(&title_field, row_owner(&row)) {
                    super::read::mask(&title)
                } else {
                    title
                };
                titles.insert((target.clone(), id.clone()), title);
            }
        }
    }
    Ok(titles)
}

/// A record's title as text.
pub(super) fn title_text(value: Option<&Value>) -> String {
    match value.map(Value::to_json) {
        Some(Json::String(text)) => text,
        Some(Json::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}
