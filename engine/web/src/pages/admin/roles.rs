//! `/admin/roles`: each role with its label, and what it may do as a readable table — per
//! object the read, edit and delete scopes, whether it may create, whether it sees masked
//! fields unmasked — then the fields it may only read or may not see. Read from the loaded
//! `roles.yaml`; a user's access is the union over their roles.

use axum::response::Response;
use keel_meta::{FieldAccess, Scope};
use keel_runtime::records::scope_name;
use serde::Serialize;

use super::console_frame;
use super::users::role_label;
use crate::extract::Pinned;
use crate::pages::{PageError, Viewer, render};

#[derive(Debug, Serialize)]
struct RolesPage {
    section: &'static str,
    roles: Vec<RoleView>,
}

#[derive(Debug, Serialize)]
struct RoleView {
    name: String,
    label: String,
    admin: bool,
    rows: Vec<MatrixRow>,
    /// Per object, the fields this role reads only or does not see.
    fields: Vec<FieldRules>,
}

/// One object's row of a role's matrix.
#[derive(Debug, Serialize)]
struct MatrixRow {
    object: String,
    label: String,
    read: &'static str,
    create: bool,
    edit: &'static str,
    delete: &'static str,
    unmask: bool,
}

#[derive(Debug, Serialize)]
struct FieldRules {
    object: String,
    label: String,
    read_only: Vec<String>,
    hidden: Vec<String>,
}

/// `GET /admin/roles`.
pub async fn page(Pinned(state): Pinned, viewer: Viewer) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let formatter = frame.formatter(&state);
    let schema = state.schema();
    let roles = schema
        .roles
        .roles
        .values()
        .map(|role| {
            let grants = schema.roles.permissions.get(&role.name);
            let mut rows = Vec::new();
            let mut fields = Vec::new();
            for object in schema.objects.values() {
                let label = formatter.label(Some(&object.label), &object.name);
                let grant = grants.and_then(|grants| grants.get(&object.name));
                let scope = |pick: fn(&keel_meta::Grant) -> Scope| {
                    if role.admin {
                        "all"
                    } else {
                        grant.map_or("none", |grant| scope_name(pick(grant)))
                    }
                };
                rows.push(MatrixRow {
                    object: object.name.clone(),
                    label: label.clone(),
                    read: scope(|grant| grant.read),
                    create: role.admin || grant.is_some_and(|grant| grant.create),
                    edit: scope(|grant| grant.edit),
                    delete: scope(|grant| grant.delete),
                    unmask: role.admin || grant.is_some_and(|grant| grant.unmask),
                });
                if let Some(grant) = grant.filter(|_| !role.admin) {
                    let named = |access: FieldAccess| -> Vec<String> {
                        grant
                            .fields
                            .iter()
                            .filter(|(_, given)| **given == access)
                            .map(|(name, _)| match object.field(name) {
                                Some(field) => {
                                    format!("{} ({name})", formatter.field_label(field))
                                }
                                None => name.clone(),
                            })
                            .collect()
                    };
                    let (read_only, hidden) =
                        (named(FieldAccess::Read), named(FieldAccess::Hidden));
                    if !read_only.is_empty() || !hidden.is_empty() {
                        fields.push(FieldRules {
                            object: object.name.clone(),
                            label,
                            read_only,
                            hidden,
                        });
                    }
                }
            }
            RoleView {
                name: role.name.clone(),
                label: role_label(&state, &frame.lang, &role.name),
                admin: role.admin,
                rows,
                fields,
            }
        })
        .collect();
    render(
        &state,
        &frame,
        "admin/roles.html",
        RolesPage {
            section: "roles",
            roles,
        },
    )
}
