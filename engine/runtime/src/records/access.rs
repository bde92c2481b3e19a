//! Who may do what with records: object grants, record scopes as a store `Condition`, and
//! field access.
//!
//! This is the hook every read and write goes through. For now a non-admin's scope other
//! than `none` means `own` (least privilege until subordinates and departments are
//! compiled into predicates); field access (`edit`/`read`/`hidden`) is already the union
//! over the user's roles.

use keel_meta::{FieldAccess, Grant, Object, Schema, Scope};
use keel_store::records::Condition;

use crate::actor::Actor;

/// What a user wants to do with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Edit,
    Delete,
}

/// The grants of the actor's roles on `object`.
fn grants<'a>(
    schema: &'a Schema,
    actor: &'a Actor,
    object: &'a str,
) -> impl Iterator<Item = &'a Grant> + 'a {
    actor.roles.iter().filter_map(move |role| {
        schema
            .roles
            .permissions
            .get(role)
            .and_then(|grants| grants.get(object))
    })
}

/// Whether the actor is an admin: by the `admin` flag or any role with `admin: true`.
pub fn is_admin(schema: &Schema, actor: &Actor) -> bool {
    actor.admin
        || actor
            .roles
            .iter()
            .any(|role| schema.roles.roles.get(role).is_some_and(|r| r.admin))
}

/// The widest scope the actor's roles grant for `action`.
pub fn scope(schema: &Schema, actor: &Actor, object: &str, action: Action) -> Scope {
    if is_admin(schema, actor) {
        return Scope::All;
    }
    grants(schema, actor, object)
        .map(|grant| match action {
            Action::Read => grant.read,
            Action::Edit => grant.edit,
            Action::Delete => grant.delete,
        })
        .max()
        .unwrap_or(Scope::None)
}

/// Whether the actor may create records of `object`.
pub fn can_create(schema: &Schema, actor: &Actor, object: &str) -> bool {
    is_admin(schema, actor) || grants(schema, actor, object).any(|grant| grant.create)
}

/// The SQL condition limiting which records of `object` the actor may `action`.
pub fn read_condition(schema: &Schema, actor: &Actor, object: &str) -> Condition {
    scope_condition(schema, actor, object, Action::Read)
}

/// The condition for any action: `All` → no restriction; `None` → nothing; every other scope
/// is, for now, the actor's own records.
pub fn scope_condition(schema: &Schema, actor: &Actor, object: &str, action: Action) -> Condition {
    match scope(schema, actor, object, action) {
        Scope::All => Condition::Always,
        Scope::None => Condition::Never,
        Scope::Own | Scope::Subordinates | Scope::Department => {
            Condition::OwnerIn(vec![actor.id.clone()])
        }
    }
}

/// Whether a record owned by `owner` is within the actor's scope for `action`.
pub fn allows_record(
    schema: &Schema,
    actor: &Actor,
    object: &str,
    action: Action,
    owner: Option<&str>,
) -> bool {
    match scope(schema, actor, object, action) {
        Scope::All => true,
        Scope::None => false,
        Scope::Own | Scope::Subordinates | Scope::Department => owner == Some(actor.id.as_str()),
    }
}

/// The actor's access to one declared field: the most permissive over their roles. A field a
/// role does not mention is editable when that role may edit the object, else read-only.
pub fn field_access(schema: &Schema, actor: &Actor, object: &Object, field: &str) -> FieldAccess {
    if is_admin(schema, actor) {
        return FieldAccess::Edit;
    }
    let mut best: Option<FieldAccess> = None;
    for grant in grants(schema, actor, &object.name) {
        if grant.read == Scope::None && grant.edit == Scope::None && !grant.create {
            continue;
        }
        let access = grant.fields.get(field).copied().unwrap_or(
            if grant.edit != Scope::None || grant.create {
                FieldAccess::Edit
            } else {
                FieldAccess::Read
            },
        );
        best = Some(match (best, access) {
            (Some(FieldAccess::Edit), _) | (_, FieldAccess::Edit) => FieldAccess::Edit,
            (Some(FieldAccess::Read), _) | (_, FieldAccess::Read) => FieldAccess::Read,
            _ => FieldAccess::Hidden,
        });
    }
    best.unwrap_or(FieldAccess::Hidden)
}

/// The declared fields the actor may see, in file order.
pub fn readable_fields(schema: &Schema, actor: &Actor, object: &Object) -> Vec<String> {
    object
        .fields
        .keys()
        .filter(|field| field_access(schema, actor, object, field) != FieldAccess::Hidden)
        .cloned()
        .collect()
}
