//! The role editor `/admin/studio/roles/{role}` (docs/studio.md, "The pool, process, rule
//! and role editors"): the role's row of the permission matrix as an editable table (an
//! object per row: read, edit and delete as a scope, create and unmask as yes or no), and
//! each object's field access (edit, read, hidden, or none: the object's access applies).
//! Saving compares every cell with `metadata/roles.yaml` as it is, applies each changed
//! cell's operation in turn (`keel_meta::forms::set_grant`, `set_field_access`) and shows one
//! review of the result.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use keel_meta::forms::{
    self, FormError, GrantAction, GrantValue, ROLES_FILE, set_field_access, set_grant,
};
use keel_meta::model::{FieldAccess, Scope};
use serde::Serialize;
use serde_json::Value;

use super::workflows::{self as editor, Choice, Errors, Values};
use super::{Applied, Change, latest, review};
use crate::AppState;
use crate::extract::Pinned;
use crate::pages::admin::{console_frame, not_found, tr};
use crate::pages::{Frame, PageError, PageForm, Viewer, render_with_status};

const SCOPES: [&str; 5] = ["none", "own", "subordinates", "department", "all"];
const SCOPED: [(&str, GrantAction); 3] = [
    ("read", GrantAction::Read),
    ("edit", GrantAction::Edit),
    ("delete", GrantAction::Delete),
];
const ALLOWED: [(&str, GrantAction); 2] = [
    ("create", GrantAction::Create),
    ("unmask", GrantAction::Unmask),
];

/// One object's row of the role's matrix, as the form holds it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct GrantInput {
    read: String,
    edit: String,
    delete: String,
    create: bool,
    unmask: bool,
    /// Field → `edit`, `read`, `hidden`, or empty (none), for every field of the object
    /// (the page has them as [`ObjectRow::access`]).
    #[serde(skip)]
    fields: Vec<(String, String)>,
}

impl GrantInput {
    fn scope(&self, action: &str) -> &str {
        match action {
            "read" => &self.read,
            "edit" => &self.edit,
            _ => &self.delete,
        }
    }

    fn allowed(&self, action: &str) -> bool {
        match action {
            "create" => self.create,
            _ => self.unmask,
        }
    }

    fn field(&self, field: &str) -> &str {
        self.fields
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, access)| access.as_str())
            .unwrap_or_default()
    }
}

/// The role's grant of each object as `metadata/roles.yaml` has it (what is not written:
/// none, no).
fn grants_in_file(
    files: &forms::Files,
    schema: &keel_meta::Schema,
    role: &str,
) -> Vec<(String, GrantInput)> {
    let value = files
        .get(ROLES_FILE)
        .and_then(|text| keel_meta::source::SourceDocument::parse(text).ok())
        .map(|document| document.value)
        .unwrap_or(Value::Null);
    let grants = value
        .get("permissions")
        .and_then(|permissions| permissions.get(role));
    schema
        .objects
        .values()
        .map(|object| {
            let grant = grants.and_then(|grants| grants.get(&object.name));
            let text = |key: &str, default: &str| {
                grant
                    .and_then(|grant| grant.get(key))
                    .and_then(Value::as_str)
                    .unwrap_or(default)
                    .to_owned()
            };
            let flag =
                |key: &str| grant.and_then(|grant| grant.get(key)) == Some(&Value::Bool(true));
            let written = grant.and_then(|grant| grant.get("fields"));
            let fields = object
                .fields
                .keys()
                .map(|field| {
                    let access = written
                        .and_then(|fields| fields.get(field))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    (field.clone(), access.to_owned())
                })
                .collect();
            let input = GrantInput {
                read: text("read", "none"),
                edit: text("edit", "none"),
                delete: text("delete", "none"),
                create: flag("create"),
                unmask: flag("unmask"),
                fields,
            };
            (object.name.clone(), input)
        })
        .collect()
}

/// The form's grants, one per object of `file` (the objects the form shows).
fn grants_in_form(values: &Values, file: &[(String, GrantInput)]) -> Vec<(String, GrantInput)> {
    file.iter()
        .map(|(object, old)| {
            let name = |rest: &str| format!("grant/{object}/{rest}");
            let fields = old
                .fields
                .iter()
                .map(|(field, _)| {
                    (
                        field.clone(),
                        values.trimmed(&format!("field/{object}/{field}")),
                    )
                })
                .collect();
            let input = GrantInput {
                read: values.trimmed(&name("read")),
                edit: values.trimmed(&name("edit")),
                delete: values.trimmed(&name("delete")),
                create: values.checked(&name("create")),
                unmask: values.checked(&name("unmask")),
                fields,
            };
            (object.clone(), input)
        })
        .collect()
}

/// The changed files after applying every cell of `form` that differs from `file`, one
/// operation at a time, each on the files the previous one left.
fn changes_of(
    files: &forms::Files,
    schema: &keel_meta::Schema,
    role: &str,
    file: &[(String, GrantInput)],
    form: &[(String, GrantInput)],
) -> Result<forms::Changes, FormError> {
    let mut current = files.clone();
    let mut changed = forms::Changes::new();
    let apply =
        |current: &mut forms::Files, changed: &mut forms::Changes, changes: forms::Changes| {
            for (path, text) in changes {
                current.insert(path.clone(), text.clone());
                changed.insert(path, text);
            }
        };
    for ((object, old), (_, new)) in file.iter().zip(form) {
        for (action, grant_action) in SCOPED {
            if old.scope(action) == new.scope(action) {
                continue;
            }
            let cell = format!("grant/{object}/{action}");
            let scope: Scope = serde_json::from_value(Value::String(new.scope(action).to_owned()))
                .map_err(|_| FormError {
                    field: cell.clone(),
                    message: "studio.workflows.error.choice".to_owned(),
                })?;
            let result = set_grant(
                &current,
                schema,
                role,
                object,
                grant_action,
                GrantValue::Scope(scope),
            );
            apply(
                &mut current,
                &mut changed,
                result.map_err(|error| at(&cell, error))?,
            );
        }
        for (action, grant_action) in ALLOWED {
            if old.allowed(action) == new.allowed(action) {
                continue;
            }
            let cell = format!("grant/{object}/{action}");
            let result = set_grant(
                &current,
                schema,
                role,
                object,
                grant_action,
                GrantValue::Allowed(new.allowed(action)),
            );
            apply(
                &mut current,
                &mut changed,
                result.map_err(|error| at(&cell, error))?,
            );
        }
        for (field, access) in &old.fields {
            let wanted = new.field(field);
            if access == wanted {
                continue;
            }
            let cell = format!("field/{object}/{field}");
            let access = match wanted {
                "" => None,
                "edit" => Some(FieldAccess::Edit),
                "read" => Some(FieldAccess::Read),
                "hidden" => Some(FieldAccess::Hidden),
                _ => {
                    return Err(FormError {
                        field: cell,
                        message: "studio.workflows.error.choice".to_owned(),
                    });
                }
            };
            let result = set_field_access(&current, schema, role, object, field, access);
            apply(
                &mut current,
                &mut changed,
                result.map_err(|error| at(&cell, error))?,
            );
        }
    }
    Ok(changed)
}

/// `error` of one cell's operation, shown at the cell.
fn at(cell: &str, error: FormError) -> FormError {
    FormError {
        field: cell.to_owned(),
        message: error.to_string(),
    }
}

#[derive(Debug, Serialize)]
struct RolePage {
    section: &'static str,
    applied: Option<i64>,
    name: String,
    label: String,
    /// An admin role may do everything whatever its grants say.
    admin: bool,
    action: String,
    base: i64,
    objects: Vec<ObjectRow>,
    scopes: Vec<Choice>,
    accesses: Vec<Choice>,
    errors: Errors,
}

#[derive(Debug, Serialize)]
struct ObjectRow {
    name: String,
    label: String,
    grant: GrantInput,
    /// Field names and labels, in the object's order.
    fields: Vec<Choice>,
    /// Field → its access in the role (empty: none).
    access: std::collections::BTreeMap<String, String>,
    /// Whether any field has its own access (the field table starts open).
    open: bool,
}

/// `GET /admin/studio/roles/{role}`.
pub async fn page(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path(role): Path<String>,
    Query(applied): Query<Applied>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let (base, files) = latest(&state, &viewer).await?;
    let schema = state.schema();
    if !schema.roles.roles.contains_key(&role) {
        return Err(not_found());
    }
    let grants = grants_in_file(&files, schema, &role);
    let shown = Shown {
        role: &role,
        base,
        grants,
        errors: Errors::new(),
        applied: applied.applied,
    };
    show(&state, &frame, shown, StatusCode::OK)
}

/// `POST /admin/studio/roles/{role}`: the review, or the table again with the cell at fault.
pub async fn save(
    Pinned(state): Pinned,
    Path(role): Path<String>,
    form: PageForm,
) -> Result<Response, PageError> {
    let viewer = &form.viewer;
    let frame = console_frame(&state, viewer).await?;
    let (_, files) = latest(&state, viewer).await?;
    let schema = state.schema();
    if !schema.roles.roles.contains_key(&role) {
        return Err(not_found());
    }
    let base = editor::base(&form)?;
    let file = grants_in_file(&files, schema, &role);
    let grants = grants_in_form(&Values::new(&form), &file);
    match changes_of(&files, schema, &role, &file, &grants) {
        Ok(changes) => {
            let label = role_label(&state, &frame, &role);
            let change = Change {
                title: tr(
                    &state,
                    &frame.lang,
                    "studio.workflows.role.change",
                    &[("name", label)],
                ),
                back: format!("/admin/studio/roles/{role}"),
                base,
                changes: editor::changed_files(changes),
            };
            review(&state, viewer, change).await
        }
        Err(error) => {
            let error = editor::localized(&state, &frame.lang, error);
            let errors = Errors::from([(error.field, error.message)]);
            let shown = Shown {
                role: &role,
                base,
                grants,
                errors,
                applied: None,
            };
            show(&state, &frame, shown, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

fn role_label(state: &AppState, frame: &Frame, role: &str) -> String {
    let schema = state.schema();
    let label = schema
        .roles
        .roles
        .get(role)
        .and_then(|known| known.label.as_ref());
    frame.formatter(state).label(label, role)
}

struct Shown<'a> {
    role: &'a str,
    base: i64,
    grants: Vec<(String, GrantInput)>,
    errors: Errors,
    applied: Option<i64>,
}

fn show(
    state: &AppState,
    frame: &Frame,
    shown: Shown<'_>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let schema = state.schema();
    let known = schema.roles.roles.get(shown.role).ok_or_else(not_found)?;
    let formatter = frame.formatter(state);
    let lang = &frame.lang;
    let objects = shown
        .grants
        .into_iter()
        .filter_map(|(name, grant)| {
            let object = schema.object(&name)?;
            let fields = object
                .fields
                .values()
                .map(|field| Choice {
                    value: field.name.clone(),
                    label: formatter.field_label(field),
                })
                .collect();
            let prefix = format!("field/{name}/");
            let open = grant.fields.iter().any(|(_, access)| !access.is_empty())
                || shown.errors.keys().any(|field| field.starts_with(&prefix));
            Some(ObjectRow {
                label: formatter.label(Some(&object.label), &object.name),
                access: grant.fields.iter().cloned().collect(),
                name,
                grant,
                fields,
                open,
            })
        })
        .collect();
    let choice = |value: &str, key: String| Choice {
        value: value.to_owned(),
        label: tr(state, lang, &key, &[]),
    };
    let page = RolePage {
        section: "studio",
        applied: shown.applied,
        name: known.name.clone(),
        label: formatter.label(known.label.as_ref(), &known.name),
        admin: known.admin,
        action: format!("/admin/studio/roles/{}", known.name),
        base: shown.base,
        objects,
        scopes: SCOPES
            .iter()
            .map(|scope| choice(scope, format!("studio.workflows.role.scope_{scope}")))
            .collect(),
        accesses: ["", "edit", "read", "hidden"]
            .iter()
            .map(|access| {
                let key = if access.is_empty() { "inherit" } else { access };
                choice(access, format!("studio.workflows.role.access_{key}"))
            })
            .collect(),
        errors: shown.errors,
    };
    render_with_status(state, frame, "admin/studio/role.html", page, status)
}
