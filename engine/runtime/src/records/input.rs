//! Reading a create or update body: which keys are fields the actor may write, and what
//! typed value each becomes. Every problem is collected, so one response names every bad
//! field.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use keel_meta::{FieldAccess, FieldKind, Object, Schema, Value};
use keel_store::records::Row;
use serde_json::Value as Json;

use crate::actor::Actor;
use crate::coerce::{CoerceContext, FieldProblem, Source, coerce};
use crate::records::access;
use crate::records::{Input, RecordError};

/// System fields a client may send back unchanged (e.g. a whole record from a GET) but never
/// change: all of them but `owner` and `pool`, which a save may set.
fn is_read_only_system_field(key: &str) -> bool {
    keel_meta::is_system_field(key) && !matches!(key, "owner" | "pool")
}

/// The writable part of an input, typed.
#[derive(Debug, Default)]
pub(super) struct Prepared {
    /// Declared fields given in the input.
    pub values: Row,
    /// `owner` when the input sets it (admins only).
    pub owner: Option<Value>,
    /// `pool` when the input sets it (admins only).
    pub pool: Option<Value>,
}

/// Why input is read: to save it, or to look for duplicates of it (which changes nothing,
/// so a field the actor may only read is still a valid probe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Save,
    Probe,
}

/// Reads `input` for `object`. `current` is the stored record on update, `None` on create.
/// `source` says whether the values are typed JSON or text cells (see [`Source`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn prepare(
    schema: &Schema,
    actor: &Actor,
    object: &Object,
    input: &Input,
    current: Option<&Row>,
    timezone: Tz,
    purpose: Purpose,
    source: Source,
) -> Result<Prepared, RecordError> {
    let context = CoerceContext { timezone, source };
    let admin = access::is_admin(schema, actor);
    let may_assign = access::can_assign(schema, actor, &object.name);
    let mut prepared = Prepared::default();
    let mut problems: Vec<FieldProblem> = Vec::new();
    let mut read_only: Vec<String> = Vec::new();
    let problem = |field: &str, code: &'static str, message: String| FieldProblem {
        field: field.to_owned(),
        code,
        message,
    };

    for (key, json) in input {
        if key.starts_with('_') {
            continue;
        }
        if is_read_only_system_field(key) {
            let unchanged = current
                .and_then(|row| row.get(key))
                .is_some_and(|stored| stored.to_json() == *json);
            if !unchanged {
                problems.push(problem(
                    key,
                    "read_only",
                    format!("`{key}` is maintained by Keel and cannot be set"),
                ));
            }
            continue;
        }
        if key == "owner" || key == "pool" {
            let value = match json {
                Json::Null => Value::Null,
                Json::String(text) if text.contains('\0') => {
                    problems.push(problem(
                        key,
                        "invalid_text",
                        "text may not contain the NUL character (U+0000)".to_owned(),
                    ));
                    continue;
                }
                Json::String(text) if !text.is_empty() => Value::Text(text.clone()),
                Json::String(_) if source == Source::Text => Value::Null,
                _ => {
                    problems.push(problem(
                        key,
                        "invalid_type",
                        "expected an id (string) or null".to_owned(),
                    ));
                    continue;
                }
            };
            let unchanged = current
                .and_then(|row| row.get(key))
                .is_some_and(|stored| *stored == value)
                || (current.is_none() && key == "owner" && value == Value::Text(actor.id.clone()));
            if unchanged {
                continue;
            }
            if key == "pool" && !object.pooled {
                problems.push(problem(
                    key,
                    "unknown_field",
                    format!("`{}` is not in a pool", object.name),
                ));
            } else if key == "owner" && may_assign {
                prepared.owner = Some(value);
            } else if !admin {
                read_only.push(key.clone());
            } else if key == "owner" {
                prepared.owner = Some(value);
            } else {
                prepared.pool = Some(value);
            }
            continue;
        }
        let Some(field) = object.field(key) else {
            problems.push(problem(
                key,
                "unknown_field",
                format!("`{key}` is not a field of `{}`", object.name),
            ));
            continue;
        };
        match access::field_access(schema, actor, object, key) {
            FieldAccess::Hidden => {
                problems.push(problem(
                    key,
                    "unknown_field",
                    format!("`{key}` is not a field of `{}`", object.name),
                ));
                continue;
            }
            FieldAccess::Read if purpose == Purpose::Save => {
                let unchanged = current
                    .and_then(|row| row.get(key))
                    .is_some_and(|stored| stored.to_json() == *json);
                if !unchanged {
                    read_only.push(key.clone());
                }
                continue;
            }
            FieldAccess::Read | FieldAccess::Edit => {}
        }
        if field.is_computed() {
            let unchanged = current
                .and_then(|row| row.get(key))
                .is_some_and(|stored| stored.to_json() == *json);
            if !unchanged {
                problems.push(problem(
                    key,
                    "read_only",
                    format!(
                        "`{key}` is computed ({}) and cannot be set",
                        field.kind.type_name()
                    ),
                ));
            }
            continue;
        }
        match coerce(field, json, context) {
            Ok(value) => {
                prepared.values.insert(key.clone(), value);
            }
            Err(field_problem) => problems.push(field_problem),
        }
    }
    if !problems.is_empty() {
        return Err(RecordError::Invalid(problems));
    }
    if !read_only.is_empty() {
        return Err(RecordError::Forbidden {
            message: format!(
                "you may only read {}",
                read_only
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            fields: read_only,
        });
    }
    Ok(prepared)
}

/// The default of `field` for a new record, if it has one: a literal, `@today`/`@now` for
/// dates, `@me` for user fields.
pub(super) fn default_value(
    object: &Object,
    name: &str,
    actor: &Actor,
    now: DateTime<Utc>,
    timezone: Tz,
) -> Option<Value> {
    let field = object.field(name)?;
    let default = field.default.as_ref()?;
    if let Json::String(text) = default {
        if text == "@me" {
            return Some(Value::Text(actor.id.clone()));
        }
        if let Some(Ok(relative)) = keel_meta::filter::RelativeTime::parse(text) {
            let at = relative.resolve(now, timezone);
            return Some(match field.kind {
                FieldKind::Date => Value::Date(at.with_timezone(&timezone).date_naive()),
                _ => Value::Datetime(at),
            });
        }
    }
    // Defaults come from the metadata, where YAML may write `"5"` for a number.
    coerce(
        field,
        default,
        CoerceContext {
            timezone,
            source: Source::Text,
        },
    )
    .ok()
    .filter(|value| !value.is_null())
}
