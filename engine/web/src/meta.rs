//! Metadata routes: the objects as this user may see them (`/meta/objects`,
//! `/meta/objects/{object}`), the JSON Schemas of the app-directory files
//! (`/meta/schema/{kind}.json`) and the OpenAPI document (`/openapi.json`).
//!
//! Labels are given in the user's language (their own, else the app's). A field the user
//! may not read is not mentioned at all; which fields are readable or read-only is the
//! runtime's answer (`Records::readable_fields`, `records::access`), not decided here.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use keel_meta::{FieldAccess, FieldKind, Label, Object, Scope};
use keel_runtime::actor::Actor;
use keel_runtime::records::access::{self, Action};
use serde_json::{Map, Value as Json, json};

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{CurrentUser, Pinned};

/// `GET /meta/objects` → `{data: [{name, label, title, permissions}]}`: the objects this
/// user may read.
pub async fn objects(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
) -> Result<Response, ApiError> {
    let schema = state.schema();
    let language = language_of(&state, &actor);
    let data: Vec<Json> = schema
        .objects
        .values()
        .filter(|object| access::scope(schema, &actor, &object.name, Action::Read) != Scope::None)
        .map(|object| {
            json!({
                "name": object.name,
                "label": label_text(Some(&object.label), &object.name, &language, &state),
                "title": object.title,
                "permissions": permissions(&state, &actor, object),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "data": data })).into_response())
}

/// `GET /meta/objects/{object}`: label, fields (type, label, options, required,
/// read_only, …), layout, list view, title, search — only what this user may read.
pub async fn object(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let readable = state.records().readable_fields(&actor, &name)?;
    let schema = state.schema();
    let Some(object) = schema.object(&name) else {
        return Err(ApiError::new(
            ErrorCode::UnknownObject,
            format!("there is no object `{name}`"),
        ));
    };
    if access::scope(schema, &actor, &object.name, Action::Read) == Scope::None {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("you may not read {name} records"),
        ));
    }
    let language = language_of(&state, &actor);
    let visible = |field: &String| readable.contains(field) || object.returns_system_field(field);

    let mut fields: Vec<Json> = object
        .returned_system_fields()
        .map(|field| {
            json!({
                "name": field.name,
                "type": field.type_name,
                "label": field.name,
                "help": field.description,
                "system": true,
                "required": false,
                "read_only": true,
            })
        })
        .collect();
    for (field_name, field) in &object.fields {
        if !readable.contains(field_name) {
            continue;
        }
        let access = access::field_access(schema, &actor, object, field_name);
        let mut entry = Map::new();
        entry.insert("name".to_owned(), json!(field_name));
        entry.insert("type".to_owned(), json!(field.kind.type_name()));
        entry.insert(
            "label".to_owned(),
            json!(label_text(
                field.label.as_ref(),
                field_name,
                &language,
                &state
            )),
        );
        if let Some(help) = &field.help {
            entry.insert(
                "help".to_owned(),
                json!(label_text(Some(help), "", &language, &state)),
            );
        }
        entry.insert("required".to_owned(), json!(field.required));
        entry.insert(
            "read_only".to_owned(),
            json!(field.is_computed() || access != FieldAccess::Edit),
        );
        if field.unique {
            entry.insert("unique".to_owned(), json!(true));
        }
        if field.mask {
            entry.insert("mask".to_owned(), json!(true));
        }
        for (key, value) in [
            ("default", field.default.clone()),
            ("min", field.min.clone().map(Json::Number)),
            ("max", field.max.clone().map(Json::Number)),
            ("max_length", field.max_length.map(Json::from)),
            ("pattern", field.pattern.clone().map(Json::String)),
        ] {
            if let Some(value) = value {
                entry.insert(key.to_owned(), value);
            }
        }
        match &field.kind {
            FieldKind::Choice { options } | FieldKind::MultiChoice { options } => {
                let options: Vec<Json> = options
                    .iter()
                    .map(|option| {
                        json!({
                            "key": option.key,
                            "label": label_text(option.label.as_ref(), &option.key, &language, &state),
                        })
                    })
                    .collect();
                entry.insert("options".to_owned(), json!(options));
            }
            FieldKind::Lookup { object: target, .. } => {
                entry.insert("object".to_owned(), json!(target));
            }
            FieldKind::Decimal { scale }
            | FieldKind::Money { scale }
            | FieldKind::Percent { scale } => {
                entry.insert("scale".to_owned(), json!(scale));
            }
            _ => {}
        }
        fields.push(Json::Object(entry));
    }

    let layout: Vec<Json> = object
        .layout
        .iter()
        .filter_map(|section| {
            let section_fields: Vec<&String> = section
                .fields
                .iter()
                .filter(|field| visible(field))
                .collect();
            (!section_fields.is_empty()).then(|| {
                json!({
                    "section": label_text(Some(&section.section), "", &language, &state),
                    "fields": section_fields,
                })
            })
        })
        .collect();
    let columns: Vec<&String> = object
        .list
        .columns
        .iter()
        .filter(|field| visible(field))
        .collect();
    let order: Vec<String> = object
        .list
        .order
        .iter()
        .filter(|term| visible(&term.field))
        .map(|term| {
            if term.descending {
                format!("-{}", term.field)
            } else {
                term.field.clone()
            }
        })
        .collect();
    let search: Vec<&String> = object
        .search
        .iter()
        .filter(|field| visible(field))
        .collect();
    let calendar = object
        .calendar
        .as_ref()
        .filter(|calendar| visible(&calendar.start))
        .map(|calendar| {
            json!({
                "start": calendar.start,
                "end": calendar.end.as_ref().filter(|end| visible(end)),
                "title": calendar.title,
            })
        });
    Ok(axum::Json(json!({
        "name": object.name,
        "label": label_text(Some(&object.label), &object.name, &language, &state),
        "title": object.title,
        "search": search,
        "pooled": object.pooled,
        "permissions": permissions(&state, &actor, object),
        "fields": fields,
        "layout": layout,
        "list": { "columns": columns, "order": order },
        "calendar": calendar,
    }))
    .into_response())
}

/// `GET /meta/schema/{kind}.json`: the JSON Schema Keel checks that kind of YAML file
/// against, for editors (`# yaml-language-server: $schema=...`). Public: it reveals nothing
/// about the app.
pub async fn json_schema(Path(file): Path<String>) -> Result<Response, ApiError> {
    let kind = file
        .strip_suffix(".json")
        .and_then(keel_meta::schemas::FileKind::from_name);
    match kind {
        Some(kind) => Ok((
            [(header::CONTENT_TYPE, "application/schema+json")],
            kind.schema_text(),
        )
            .into_response()),
        None => Err(ApiError::new(
            ErrorCode::NotFound,
            "no such schema; kinds: app, object, roles, pool, process, rule",
        )),
    }
}

/// `GET /openapi.json`: OpenAPI 3.1 generated from the metadata.
///
/// Fields this user may not read are left out, as everywhere else; create and patch bodies
/// hold only the fields (and `owner`, `pool`) this user may write.
pub async fn openapi(Pinned(state): Pinned, CurrentUser(actor): CurrentUser) -> axum::Json<Json> {
    let schema = state.schema();
    let field_access = |object: &str, field: &str| {
        schema.object(object).map_or(FieldAccess::Hidden, |object| {
            access::field_access(schema, &actor, object, field)
        })
    };
    let admin = access::is_admin(schema, &actor);
    let user_access = crate::openapi::UserAccess {
        visible: &|object, field| field_access(object, field) != FieldAccess::Hidden,
        writable: &|object, field| field_access(object, field) == FieldAccess::Edit,
        // The one masking rule: `mask: true` fields and fields a pool hides until claimed.
        masked: &|object, field| {
            schema.object(object).is_some_and(|object| {
                access::Masking::new(schema, &actor, object).hides_anywhere(field)
            })
        },
        may_set_owner: &|object| admin || access::can_assign(schema, &actor, object),
        may_set_pool: &|_object| admin,
        sees_pool: &|pool| {
            schema
                .pools
                .get(pool)
                .is_some_and(|pool| state.pools().role(&actor, pool).is_some())
        },
    };
    axum::Json(crate::openapi::document_for_user(schema, &user_access))
}

/// What the user may do with the object's records, for clients to show or hide actions.
fn permissions(state: &AppState, actor: &Actor, object: &Object) -> Json {
    let schema = state.schema();
    let scope_name = |action| scope_text(access::scope(schema, actor, &object.name, action));
    json!({
        "read": scope_name(Action::Read),
        "create": access::can_create(schema, actor, &object.name),
        "edit": scope_name(Action::Edit),
        "delete": scope_name(Action::Delete),
    })
}

fn scope_text(scope: Scope) -> &'static str {
    match scope {
        Scope::None => "none",
        Scope::Own => "own",
        Scope::Subordinates => "subordinates",
        Scope::Department => "department",
        Scope::All => "all",
    }
}

fn language_of(state: &AppState, actor: &Actor) -> String {
    actor
        .language
        .clone()
        .unwrap_or_else(|| state.schema().app.language.clone())
}

/// A label's text in `language`, or `fallback` when there is no label.
fn label_text(label: Option<&Label>, fallback: &str, language: &str, state: &AppState) -> String {
    label
        .map(|label| {
            label
                .text(language, &state.schema().app.language)
                .to_owned()
        })
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| fallback.to_owned())
}
