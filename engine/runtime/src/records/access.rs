//! Who may do what with records: object grants, record scopes as a store `Condition`, and
//! field access.
//!
//! The permission compiler: every read and write asks here. A user's roles compile, per
//! object and action, to a set of record scopes ([`Scopes`]) and from there to one store
//! [`Condition`] that the query carries (`own` → `owner = me`; `subordinates` and
//! `department` → a subquery over the org closure tables `keel_team_members` and
//! `keel_department_tree`, which every org change brings in line in its own transaction, so
//! the change counts from the next query), and to a field access per field. Masking (`mask:
//! true`) is decided by [`Masking`].

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

/// The record scopes granted for one action, over all of a user's roles. Scopes are not
/// nested (a department need not contain a manager's whole team), so the union is kept as a
/// set and compiled to an `OR`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes {
    pub own: bool,
    pub subordinates: bool,
    pub department: bool,
    pub all: bool,
}

impl Scopes {
    /// Every scope.
    pub const ALL: Scopes = Scopes {
        own: true,
        subordinates: true,
        department: true,
        all: true,
    };

    fn add(&mut self, scope: Scope) {
        match scope {
            Scope::None => {}
            Scope::Own => self.own = true,
            Scope::Subordinates => self.subordinates = true,
            Scope::Department => self.department = true,
            Scope::All => self.all = true,
        }
    }

    fn union(mut self, other: Scopes) -> Scopes {
        self.own |= other.own;
        self.subordinates |= other.subordinates;
        self.department |= other.department;
        self.all |= other.all;
        self
    }

    /// Whether no record at all is in scope.
    pub fn is_none(self) -> bool {
        self == Scopes::default()
    }

    /// The widest scope in the set (`department` counts wider than `subordinates`); for
    /// display only, as the set is what is enforced.
    pub fn widest(self) -> Scope {
        if self.all {
            Scope::All
        } else if self.department {
            Scope::Department
        } else if self.subordinates {
            Scope::Subordinates
        } else if self.own {
            Scope::Own
        } else {
            Scope::None
        }
    }

    /// The scopes as a condition on the records of an object, for `actor`.
    pub fn condition(self, actor: &Actor) -> Condition {
        if self.all {
            return Condition::Always;
        }
        let mut any = Vec::new();
        // Both org scopes include the user's own records.
        if self.subordinates {
            any.push(Condition::OwnerInTeamOf(actor.id.clone()));
        }
        if self.department {
            any.push(Condition::OwnerInDepartmentOf(actor.id.clone()));
        }
        if self.own && any.is_empty() {
            any.push(Condition::OwnerIn(vec![actor.id.clone()]));
        }
        match any.len() {
            0 => Condition::Never,
            1 => any.remove(0),
            _ => Condition::Any(any),
        }
    }

    /// Whether a record owned by `owner` is in scope without asking the database: `Some`
    /// when the answer follows from `all` or `own`, `None` when only the org can tell.
    pub fn decides(self, actor: &Actor, owner: Option<&str>) -> Option<bool> {
        if self.all {
            return Some(true);
        }
        if owner.is_none() {
            // A record without owner (in a pool) is in no one's own, team or department.
            return Some(false);
        }
        if owner == Some(actor.id.as_str()) && !self.is_none() {
            return Some(true);
        }
        if self.subordinates || self.department {
            None
        } else {
            Some(false)
        }
    }
}

/// The scope one grant gives for `action`. Reading also covers what the grant lets the user
/// edit or delete: a record one may change is one one may see.
pub fn grant_scopes(grant: &Grant, action: Action) -> Scopes {
    let mut scopes = Scopes::default();
    match action {
        Action::Read => {
            scopes.add(grant.read);
            scopes.add(grant.edit);
            scopes.add(grant.delete);
        }
        Action::Edit => scopes.add(grant.edit),
        Action::Delete => scopes.add(grant.delete),
    }
    scopes
}

/// The scopes the actor's roles grant for `action` on `object`: their union.
pub fn scopes(schema: &Schema, actor: &Actor, object: &str, action: Action) -> Scopes {
    if is_admin(schema, actor) {
        return Scopes::ALL;
    }
    grants(schema, actor, object)
        .map(|grant| grant_scopes(grant, action))
        .fold(Scopes::default(), Scopes::union)
}

/// The widest scope the actor's roles grant for `action` (see [`Scopes::widest`]).
pub fn scope(schema: &Schema, actor: &Actor, object: &str, action: Action) -> Scope {
    scopes(schema, actor, object, action).widest()
}

/// Whether the actor may create records of `object`.
pub fn can_create(schema: &Schema, actor: &Actor, object: &str) -> bool {
    is_admin(schema, actor) || grants(schema, actor, object).any(|grant| grant.create)
}

/// Whether the actor may choose a record's owner: admins and users who may edit every
/// record of the object.
pub fn can_assign(schema: &Schema, actor: &Actor, object: &str) -> bool {
    scopes(schema, actor, object, Action::Edit).all
}

/// Whether the actor sees every record's masked fields in clear: admins and roles with
/// `unmask` on the object.
pub fn can_unmask(schema: &Schema, actor: &Actor, object: &str) -> bool {
    is_admin(schema, actor) || grants(schema, actor, object).any(|grant| grant.unmask)
}

/// The SQL condition limiting which records of `object` the actor may read.
pub fn read_condition(schema: &Schema, actor: &Actor, object: &str) -> Condition {
    scope_condition(schema, actor, object, Action::Read)
}

/// The SQL condition limiting which records of `object` the actor may `action`.
pub fn scope_condition(schema: &Schema, actor: &Actor, object: &str, action: Action) -> Condition {
    scopes(schema, actor, object, action).condition(actor)
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

/// The one masking rule, decided once per actor and object: a `mask: true` field is shown
/// masked to everyone but the record's owner, admins and roles with `unmask` on the object;
/// and a field a pool names in `hide_until_claimed` is shown masked on every record nobody
/// holds (one sitting in a pool) to everyone but admins and roles with `unmask`, until
/// someone claims it (docs/pools.md). Records, `_refs` titles, exports, history, filters,
/// `q`, sorts, aggregates, notifications and the access explanation all ask here.
#[derive(Debug, Clone)]
pub struct Masking {
    actor_id: String,
    /// The `mask: true` fields, unless the actor sees every record in clear.
    fields: Vec<String>,
    /// The `hide_until_claimed` fields of the pools over the object, unless the actor sees
    /// every record in clear.
    pool_fields: Vec<String>,
}

impl Masking {
    pub fn new(schema: &Schema, actor: &Actor, object: &Object) -> Masking {
        let (fields, pool_fields) = if can_unmask(schema, actor, &object.name) {
            (Vec::new(), Vec::new())
        } else {
            let fields = object
                .fields
                .values()
                .filter(|field| field.mask)
                .map(|field| field.name.clone())
                .collect();
            let mut pool_fields: Vec<String> = Vec::new();
            for pool in schema.pools.values().filter(|p| p.object == object.name) {
                for field in &pool.hide_until_claimed {
                    if !pool_fields.contains(field) {
                        pool_fields.push(field.clone());
                    }
                }
            }
            (fields, pool_fields)
        };
        Masking {
            actor_id: actor.id.clone(),
            fields,
            pool_fields,
        }
    }

    /// Whether `field` is shown masked on a record owned by `owner` (`None`: a record
    /// without owner, which is no one's own and, in a pool, hides its `hide_until_claimed`
    /// fields).
    pub fn hides(&self, field: &str, owner: Option<&str>) -> bool {
        (owner != Some(self.actor_id.as_str()) && self.fields.iter().any(|name| name == field))
            || (owner.is_none() && self.pool_fields.iter().any(|name| name == field))
    }

    /// Whether `field` is masked on some records: those the actor does not own, or those
    /// nobody holds. Filters, sorts and figures over such a field could reveal what the mask
    /// hides.
    pub fn hides_anywhere(&self, field: &str) -> bool {
        self.fields.iter().any(|name| name == field)
            || self.pool_fields.iter().any(|name| name == field)
    }

    /// The records on which the actor sees `field` in clear, as a condition a filter or a
    /// search on `field` is confined to: every record for a field never masked, the actor's
    /// own for a `mask: true` field, held records for a field only a pool hides.
    pub fn clear_condition(&self, field: &str) -> Condition {
        if self.fields.iter().any(|name| name == field) {
            Condition::OwnerIn(vec![self.actor_id.clone()])
        } else if self.pool_fields.iter().any(|name| name == field) {
            Condition::IsNull {
                column: "owner".to_owned(),
                null: false,
            }
        } else {
            Condition::Always
        }
    }
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
