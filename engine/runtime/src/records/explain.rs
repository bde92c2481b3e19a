//! Explaining access: which of a user's roles let them read, edit or delete a record, and
//! how they see each field. The answer comes from the same compiled scopes and the same SQL
//! predicates that every query uses, so it cannot disagree with what the user gets.

use keel_meta::{FieldAccess, Grant, Scope};
use keel_store::records::{self as store, Condition, Deleted};
use serde_json::{Map, Value as Json, json};

use crate::actor::Actor;
use crate::records::access::{self, Action, Scopes};
use crate::records::read::{Reader, in_scope, record_query};
use crate::records::{RecordError, Records};

impl Records {
    /// How `subject` may act on `object`, and on the record `id` when given (deleted or
    /// not): `{user, object, id, admin, roles, actions: {read, edit, delete, create},
    /// fields}`. For read, edit and delete: `allowed`, the widest `scope`, and per granting
    /// role its scope and whether it covers the record (`matches`). For each declared field:
    /// its `access` and whether the subject sees it `masked` (on that record, or on records
    /// they do not own when no record is named). Only admins may ask (`asker`): the answer
    /// reads the record whatever its scope, so the check belongs here, not to each caller.
    pub async fn explain_access(
        &self,
        asker: &Actor,
        subject: &Actor,
        object: &str,
        id: Option<&str>,
    ) -> Result<Json, RecordError> {
        if !access::is_admin(&self.schema, asker) {
            return Err(RecordError::Forbidden {
                message: "only admins may explain access".to_owned(),
                fields: Vec::new(),
            });
        }
        let object = self.object(object)?;
        let row = match id {
            Some(id) => Some(
                store::select(
                    &self.db,
                    &record_query(object, id, Condition::Always, Deleted::Include),
                )
                .await?
                .into_iter()
                .next()
                .ok_or(RecordError::NotFound)?,
            ),
            None => None,
        };
        let owner = row.as_ref().and_then(|row| match row.get("owner") {
            Some(keel_meta::Value::Text(owner)) => Some(owner.clone()),
            _ => None,
        });
        let admin = access::is_admin(&self.schema, subject);
        let mut actions = Map::new();
        for (name, action) in [
            ("read", Action::Read),
            ("edit", Action::Edit),
            ("delete", Action::Delete),
        ] {
            let mut grants = Vec::new();
            for (role, grant) in self.role_grants(subject, &object.name) {
                let scopes = match grant {
                    Some(grant) => access::grant_scopes(grant, action),
                    None => Scopes::ALL,
                };
                grants.push(json!({
                    "role": role,
                    "scope": scope_name(scopes.widest()),
                    "matches": self.covers(subject, object, id, owner.as_deref(), scopes).await?,
                }));
            }
            let scopes = access::scopes(&self.schema, subject, &object.name, action);
            actions.insert(
                name.to_owned(),
                json!({
                    "allowed": self.covers(subject, object, id, owner.as_deref(), scopes).await?,
                    "scope": scope_name(scopes.widest()),
                    "grants": grants,
                }),
            );
        }
        let creating_roles: Vec<&String> = self
            .role_grants(subject, &object.name)
            .into_iter()
            .filter(|(_, grant)| grant.is_none_or(|grant| grant.create))
            .map(|(role, _)| role)
            .collect();
        actions.insert(
            "create".to_owned(),
            json!({
                "allowed": access::can_create(&self.schema, subject, &object.name),
                "roles": creating_roles,
            }),
        );
        let masking = access::Masking::new(&self.schema, subject, object);
        let fields: Map<String, Json> = object
            .fields
            .values()
            .map(|field| {
                let field_access = access::field_access(&self.schema, subject, object, &field.name);
                let masked = field_access != FieldAccess::Hidden
                    && masking.hides(&field.name, owner.as_deref());
                (
                    field.name.clone(),
                    json!({
                        "access": match field_access {
                            FieldAccess::Edit => "edit",
                            FieldAccess::Read => "read",
                            FieldAccess::Hidden => "hidden",
                        },
                        "masked": masked,
                    }),
                )
            })
            .collect();
        Ok(json!({
            "user": subject.username,
            "object": object.name,
            "id": id,
            "admin": admin,
            "roles": subject.roles,
            "actions": actions,
            "fields": fields,
        }))
    }

    /// The subject's roles that say something about `object`: `(role, Some(grant))`, or
    /// `(role, None)` for an admin role, which grants everything.
    fn role_grants<'a>(
        &'a self,
        subject: &'a Actor,
        object: &str,
    ) -> Vec<(&'a String, Option<&'a Grant>)> {
        subject
            .roles
            .iter()
            .filter_map(|role| {
                if self.schema.roles.roles.get(role).is_some_and(|r| r.admin) {
                    return Some((role, None));
                }
                self.schema
                    .roles
                    .permissions
                    .get(role)
                    .and_then(|grants| grants.get(object))
                    .map(|grant| (role, Some(grant)))
            })
            .collect()
    }

    /// Whether `scopes` cover the record `id` for the subject (any record when no id is
    /// given).
    async fn covers(
        &self,
        subject: &Actor,
        object: &keel_meta::Object,
        id: Option<&str>,
        owner: Option<&str>,
        scopes: Scopes,
    ) -> Result<bool, RecordError> {
        match id {
            Some(id) => {
                in_scope(
                    &mut Reader::Db(&self.db),
                    subject,
                    object,
                    id,
                    owner,
                    scopes,
                )
                .await
            }
            None => Ok(!scopes.is_none()),
        }
    }
}

/// A scope as `roles.yaml` spells it.
pub fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::None => "none",
        Scope::Own => "own",
        Scope::Subordinates => "subordinates",
        Scope::Department => "department",
        Scope::All => "all",
    }
}
