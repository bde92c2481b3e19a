//! When a held record would return to its pool: the auto-return rules as store conditions
//! (the sweep selects with them) and as instants per record (the held list shows them).
//!
//! A rule `no_follow_up_for: 3d` with `follow_up_field` holds for a record once 3 days have
//! passed since the later of its last follow-up and its claim; without the field, since its
//! claim. `not_converted_for: 30d` holds once 30 days have passed since the claim while the
//! record does not match `converted`. A record never claimed (held since it was created with
//! an owner in the pool) counts from `created_at`. `0` turns a rule off; `exempt` records
//! never return.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use keel_meta::{AutoReturn, Object, Pool, ReturnRule, Storage, Value};
use keel_store::records::{CompareOp, Condition, Deleted, SelectQuery};
use serde::Serialize;
use serde_json::Value as Json;

use super::{instant, seconds, storage_of};
use crate::records::{RecordError, Records};

/// When a held record would return and its owner be warned; `_pool` of the held list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timing {
    /// When the first rule to hold returns it (RFC 3339 UTC), or `None` when no rule ever
    /// will (exempt, converted, or no rule on).
    pub return_at: Option<String>,
    /// `return_at` less `warn_before`, when both are set.
    pub warn_at: Option<String>,
    /// The rule that returns it first: `no_follow_up_for` or `not_converted_for`.
    pub rule: Option<&'static str>,
    /// The record matches `exempt` and never returns.
    pub exempt: bool,
}

fn compare(column: &str, op: CompareOp, value: Value) -> Condition {
    Condition::Compare {
        column: column.to_owned(),
        op,
        value,
    }
}

fn is_null(column: &str, null: bool) -> Condition {
    Condition::IsNull {
        column: column.to_owned(),
        null,
    }
}

/// Held since at or before `limit`: claimed then, or never claimed and created then.
fn held_since(limit: DateTime<Utc>) -> Condition {
    Condition::Any(vec![
        compare("claimed_at", CompareOp::Lte, Value::Datetime(limit)),
        Condition::All(vec![
            is_null("claimed_at", true),
            compare("created_at", CompareOp::Lte, Value::Datetime(limit)),
        ]),
    ])
}

/// The records of `pool` held by someone.
pub(crate) fn held(pool: &Pool) -> Condition {
    Condition::All(vec![
        compare("pool", CompareOp::Eq, Value::Text(pool.name.clone())),
        is_null("owner", false),
    ])
}

/// The records for which some rule of `auto` holds at `at` (`Never` when no rule is on).
pub(crate) fn any_rule_holds(
    records: &Records,
    object: &Object,
    auto: &AutoReturn,
    at: DateTime<Utc>,
) -> Result<Condition, RecordError> {
    let mut any = Vec::new();
    for rule in &auto.rules {
        match rule {
            ReturnRule::NoFollowUpFor {
                after,
                follow_up_field,
            } if !after.is_zero() => {
                let limit = at - seconds(after.as_secs());
                let mut all = vec![held_since(limit)];
                if let Some(field) = follow_up_field {
                    let value = match storage_of(object, field) {
                        Some(Storage::Date) => {
                            Value::Date(limit.with_timezone(&records.timezone()).date_naive())
                        }
                        _ => Value::Datetime(limit),
                    };
                    all.push(Condition::Any(vec![
                        is_null(field, true),
                        compare(field, CompareOp::Lte, value),
                    ]));
                }
                any.push(Condition::All(all));
            }
            ReturnRule::NotConvertedFor { after, converted } if !after.is_zero() => {
                let limit = at - seconds(after.as_secs());
                any.push(Condition::All(vec![
                    held_since(limit),
                    Condition::Not(Box::new(records.metadata_condition(object, converted)?)),
                ]));
            }
            _ => {}
        }
    }
    Ok(if any.is_empty() {
        Condition::Never
    } else {
        Condition::Any(any)
    })
}

/// Not exempt from auto-return.
pub(crate) fn not_exempt(
    records: &Records,
    object: &Object,
    auto: &AutoReturn,
) -> Result<Condition, RecordError> {
    Ok(match &auto.exempt {
        Some(exempt) => Condition::Not(Box::new(records.metadata_condition(object, exempt)?)),
        None => Condition::Always,
    })
}

/// The [`Timing`] of each record of `data` (records of the held list, by id); `None` for
/// every record when the pool has no auto-return.
pub(crate) async fn timings(
    records: &Records,
    pool: &Pool,
    object: &Object,
    data: &[Json],
) -> Result<HashMap<String, Option<Timing>>, RecordError> {
    let ids: Vec<Value> = data
        .iter()
        .filter_map(|record| record.get("id").and_then(Json::as_str))
        .map(|id| Value::Text(id.to_owned()))
        .collect();
    let mut found = HashMap::new();
    let Some(auto) = &pool.auto_return else {
        return Ok(found);
    };
    if ids.is_empty() {
        return Ok(found);
    }
    let by_id = Condition::In {
        column: "id".to_owned(),
        values: ids,
    };
    let matching = |condition: Condition| {
        let by_id = by_id.clone();
        async move {
            let mut query = SelectQuery::new(object);
            query.condition = Condition::All(vec![by_id, condition]);
            query.deleted = Deleted::Exclude;
            query.columns = Some(vec!["id".to_owned()]);
            let rows = keel_store::records::select(records.db(), &query).await?;
            Ok::<HashSet<String>, RecordError>(rows.iter().filter_map(super::id_of).collect())
        }
    };
    let exempt = match &auto.exempt {
        Some(exempt) => matching(records.metadata_condition(object, exempt)?).await?,
        None => HashSet::new(),
    };
    let mut converted: Vec<HashSet<String>> = Vec::new();
    for rule in &auto.rules {
        converted.push(match rule {
            ReturnRule::NotConvertedFor { converted, .. } => {
                matching(records.metadata_condition(object, converted)?).await?
            }
            ReturnRule::NoFollowUpFor { .. } => HashSet::new(),
        });
    }
    let mut columns = vec![
        "id".to_owned(),
        "claimed_at".to_owned(),
        "created_at".to_owned(),
    ];
    for rule in &auto.rules {
        if let ReturnRule::NoFollowUpFor {
            follow_up_field: Some(field),
            ..
        } = rule
            && !columns.contains(field)
        {
            columns.push(field.clone());
        }
    }
    let mut query = SelectQuery::new(object);
    query.condition = by_id.clone();
    query.columns = Some(columns);
    let timezone = records.timezone();
    for row in keel_store::records::select(records.db(), &query).await? {
        let Some(id) = super::id_of(&row) else {
            continue;
        };
        if exempt.contains(&id) {
            found.insert(
                id,
                Some(Timing {
                    return_at: None,
                    warn_at: None,
                    rule: None,
                    exempt: true,
                }),
            );
            continue;
        }
        let Some(base) =
            instant(&row, "claimed_at", timezone).or_else(|| instant(&row, "created_at", timezone))
        else {
            continue;
        };
        let mut first: Option<(DateTime<Utc>, &'static str)> = None;
        for (rule, converted) in auto.rules.iter().zip(&converted) {
            let due = match rule {
                ReturnRule::NoFollowUpFor {
                    after,
                    follow_up_field,
                } if !after.is_zero() => {
                    let start = follow_up_field
                        .as_ref()
                        .and_then(|field| instant(&row, field, timezone))
                        .map_or(base, |followed| followed.max(base));
                    Some((start + seconds(after.as_secs()), "no_follow_up_for"))
                }
                ReturnRule::NotConvertedFor { after, .. }
                    if !after.is_zero() && !converted.contains(&id) =>
                {
                    Some((base + seconds(after.as_secs()), "not_converted_for"))
                }
                _ => None,
            };
            if let Some(due) = due
                && first.is_none_or(|(at, _)| due.0 < at)
            {
                first = Some(due);
            }
        }
        let format = |at: DateTime<Utc>| keel_meta::value::format_datetime(&at);
        found.insert(
            id,
            Some(Timing {
                return_at: first.map(|(at, _)| format(at)),
                warn_at: first
                    .filter(|_| !auto.warn_before.is_zero())
                    .map(|(at, _)| format(at - seconds(auto.warn_before.as_secs()))),
                rule: first.map(|(_, rule)| rule),
                exempt: false,
            }),
        );
    }
    Ok(found)
}
