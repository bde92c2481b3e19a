//! `/admin/objects` and `/admin/objects/{object}`: the app's objects as documentation pages
//! (labels in both languages, the title and search fields, duplicate keys, every field with
//! its type and constraints, the layout, the list view, triggers, validations, rules, and
//! what each role may do). Read-only: the metadata is edited in its files.

use axum::extract::Path;
use axum::response::Response;
use keel_meta::{FieldKind, Object, Schema};
use keel_runtime::records::scope_name;
use serde::Serialize;

use super::users::role_label;
use super::{console_frame, not_found};
use crate::extract::Pinned;
use crate::pages::{Formatter, PageError, Viewer, render};

#[derive(Debug, Serialize)]
struct ObjectsPage {
    section: &'static str,
    objects: Vec<ObjectRow>,
}

#[derive(Debug, Serialize)]
struct ObjectRow {
    name: String,
    label: String,
    fields: usize,
    rules: usize,
}

/// `GET /admin/objects`.
pub async fn list(Pinned(state): Pinned, viewer: Viewer) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let formatter = frame.formatter(&state);
    let schema = state.schema();
    let objects = schema
        .objects
        .values()
        .map(|object| ObjectRow {
            name: object.name.clone(),
            label: formatter.label(Some(&object.label), &object.name),
            fields: object.fields.len(),
            rules: schema
                .rules
                .values()
                .filter(|rule| rule.object == object.name)
                .count(),
        })
        .collect();
    render(
        &state,
        &frame,
        "admin/objects.html",
        ObjectsPage {
            section: "objects",
            objects,
        },
    )
}

#[derive(Debug, Serialize)]
struct ObjectPage {
    section: &'static str,
    name: String,
    label: String,
    label_zh: String,
    label_en: String,
    title: String,
    search: Vec<String>,
    duplicates: Vec<Duplicate>,
    fields: Vec<FieldDoc>,
    layout: Vec<Section>,
    list_columns: Vec<String>,
    list_order: Vec<String>,
    triggers: Vec<(String, Vec<String>)>,
    validations: Vec<ValidationDoc>,
    rules: Vec<RuleDoc>,
    roles: Vec<RoleDoc>,
}

#[derive(Debug, Serialize)]
struct Duplicate {
    fields: Vec<String>,
    action: &'static str,
}

#[derive(Debug, Serialize)]
struct FieldDoc {
    name: String,
    kind: &'static str,
    label: String,
    required: bool,
    unique: bool,
    mask: bool,
    options: Vec<(String, String)>,
    lookup: Option<String>,
    detail: Vec<String>,
    help: Option<String>,
}

#[derive(Debug, Serialize)]
struct Section {
    title: String,
    fields: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ValidationDoc {
    when: String,
    message: String,
    fields: Vec<String>,
}

#[derive(Debug, Serialize)]
struct RuleDoc {
    name: String,
    label: String,
    enabled: bool,
    trigger: String,
}

#[derive(Debug, Serialize)]
struct RoleDoc {
    name: String,
    label: String,
    read: &'static str,
    create: bool,
    edit: &'static str,
    delete: &'static str,
    unmask: bool,
    fields: Vec<String>,
}

/// A field's label with its name, for lists of field names.
fn named(formatter: &Formatter, object: &Object, name: &str) -> String {
    match object.field(name) {
        Some(field) => format!("{} ({name})", formatter.field_label(field)),
        None => name.to_owned(),
    }
}

/// `GET /admin/objects/{object}`.
pub async fn page(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let formatter = frame.formatter(&state);
    let schema: &Schema = state.schema();
    let Some(object) = schema.object(&name) else {
        return Err(not_found());
    };
    let fields = object
        .fields
        .values()
        .map(|field| {
            let mut detail = Vec::new();
            if let Some(min) = &field.min {
                detail.push(format!("min {min}"));
            }
            if let Some(max) = &field.max {
                detail.push(format!("max {max}"));
            }
            if let Some(length) = field.max_length {
                detail.push(format!("max_length {length}"));
            }
            if let Some(pattern) = &field.pattern {
                detail.push(format!("pattern {pattern}"));
            }
            if let Some(default) = &field.default {
                detail.push(format!("default {default}"));
            }
            match &field.kind {
                FieldKind::Decimal { scale }
                | FieldKind::Money { scale }
                | FieldKind::Percent { scale } => detail.push(format!("scale {scale}")),
                FieldKind::Autonumber { format } => detail.push(format!("format {format}")),
                FieldKind::Formula { expr, .. } => detail.push(format!("= {expr}")),
                _ => {}
            }
            FieldDoc {
                name: field.name.clone(),
                kind: field.kind.type_name(),
                label: formatter.field_label(field),
                required: field.required,
                unique: field.unique,
                mask: field.mask,
                options: field
                    .kind
                    .options()
                    .unwrap_or_default()
                    .iter()
                    .map(|option| {
                        (
                            option.key.clone(),
                            formatter.label(option.label.as_ref(), &option.key),
                        )
                    })
                    .collect(),
                lookup: match &field.kind {
                    FieldKind::Lookup { object, .. } => Some(object.clone()),
                    _ => None,
                },
                detail,
                help: field
                    .help
                    .as_ref()
                    .map(|help| formatter.label(Some(help), "")),
            }
        })
        .collect();
    let triggers = [
        ("before_save", &object.triggers.before_save),
        ("after_save", &object.triggers.after_save),
        ("before_delete", &object.triggers.before_delete),
        ("after_delete", &object.triggers.after_delete),
    ]
    .into_iter()
    .filter(|(_, scripts)| !scripts.is_empty())
    .map(|(when, scripts)| (when.to_owned(), scripts.clone()))
    .collect();
    let rules = schema
        .rules
        .values()
        .filter(|rule| rule.object == object.name)
        .map(|rule| RuleDoc {
            name: rule.name.clone(),
            label: formatter.label(rule.label.as_ref(), &rule.name),
            enabled: rule.enabled,
            trigger: match &rule.trigger {
                keel_meta::RuleTrigger::Schedule { schedule, .. } => serde_json::to_value(schedule)
                    .ok()
                    .and_then(|value| value.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "schedule".to_owned()),
                keel_meta::RuleTrigger::Event { on } => serde_json::to_value(on)
                    .ok()
                    .and_then(|value| {
                        value.as_array().map(|events| {
                            events
                                .iter()
                                .filter_map(|event| event.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                    })
                    .unwrap_or_default(),
            },
        })
        .collect();
    let roles = schema
        .roles
        .roles
        .values()
        .map(|role| {
            let grant = schema
                .roles
                .permissions
                .get(&role.name)
                .and_then(|grants| grants.get(&object.name));
            let scope = |pick: fn(&keel_meta::Grant) -> keel_meta::Scope| {
                if role.admin {
                    "all"
                } else {
                    grant.map_or("none", |grant| scope_name(pick(grant)))
                }
            };
            RoleDoc {
                name: role.name.clone(),
                label: role_label(&state, &frame.lang, &role.name),
                read: scope(|grant| grant.read),
                create: role.admin || grant.is_some_and(|grant| grant.create),
                edit: scope(|grant| grant.edit),
                delete: scope(|grant| grant.delete),
                unmask: role.admin || grant.is_some_and(|grant| grant.unmask),
                fields: grant
                    .filter(|_| !role.admin)
                    .map(|grant| {
                        grant
                            .fields
                            .iter()
                            .map(|(name, access)| {
                                let access = match access {
                                    keel_meta::FieldAccess::Edit => "edit",
                                    keel_meta::FieldAccess::Read => "read",
                                    keel_meta::FieldAccess::Hidden => "hidden",
                                };
                                format!("{}: {access}", named(&formatter, object, name))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    let page = ObjectPage {
        section: "objects",
        name: object.name.clone(),
        label: formatter.label(Some(&object.label), &object.name),
        label_zh: object.label.text("zh", &schema.app.language).to_owned(),
        label_en: object.label.text("en", &schema.app.language).to_owned(),
        title: named(&formatter, object, &object.title),
        search: object
            .search
            .iter()
            .map(|name| named(&formatter, object, name))
            .collect(),
        duplicates: object
            .duplicates
            .iter()
            .map(|key| Duplicate {
                fields: key
                    .fields
                    .iter()
                    .map(|name| named(&formatter, object, name))
                    .collect(),
                action: match key.action {
                    keel_meta::DuplicateAction::Block => "block",
                    keel_meta::DuplicateAction::Warn => "warn",
                },
            })
            .collect(),
        fields,
        layout: object
            .layout
            .iter()
            .map(|section| Section {
                title: formatter.label(Some(&section.section), ""),
                fields: section
                    .fields
                    .iter()
                    .map(|name| named(&formatter, object, name))
                    .collect(),
            })
            .collect(),
        list_columns: object
            .list
            .columns
            .iter()
            .map(|name| named(&formatter, object, name))
            .collect(),
        list_order: object
            .list
            .order
            .iter()
            .map(|term| {
                format!(
                    "{}{}",
                    named(&formatter, object, &term.field),
                    if term.descending { " ↓" } else { " ↑" }
                )
            })
            .collect(),
        triggers,
        validations: object
            .validations
            .iter()
            .map(|validation| ValidationDoc {
                when: validation.when.clone(),
                message: formatter.label(Some(&validation.message), ""),
                fields: validation.fields.clone(),
            })
            .collect(),
        rules,
        roles,
    };
    render(&state, &frame, "admin/object.html", page)
}
