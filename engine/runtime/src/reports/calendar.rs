//! The calendar (docs/reports.md, "Calendar"): the entries of every object that declares
//! `calendar` (`start`, optional `end`, `title`, `open`) falling in a range, each a link to
//! its record, for the caller's own records or their team's, within their read scope.

use chrono::NaiveDate;
use keel_meta::{FieldAccess, Object, Storage, Value};
use keel_store::records::{CompareOp, Condition, SelectQuery, Sort, select};
use serde::Serialize;
use serde_json::Value as Json;

use super::{MAX_CALENDAR_DAYS, ReportError, Reports, bad, parse_date};
use crate::actor::Actor;
use crate::records::access::{self, Masking};
use crate::records::mask;

/// The most entries one object contributes to one answer (the range is bounded too).
pub const CALENDAR_ENTRY_LIMIT: u32 = 2_000;

/// Whose entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CalendarScope {
    /// The caller's own records.
    Mine,
    /// The records of the caller and everyone below them in the manager chain.
    Team,
}

impl CalendarScope {
    /// `mine` or `team`; a 422 naming `scope` otherwise.
    pub fn parse(text: &str) -> Result<CalendarScope, ReportError> {
        match text.trim() {
            "mine" => Ok(CalendarScope::Mine),
            "team" => Ok(CalendarScope::Team),
            other => Err(bad(
                "scope",
                format!("`{other}` is not a scope: use mine or team"),
            )),
        }
    }
}

/// One calendar entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalendarEntry {
    pub object: String,
    pub id: String,
    /// The title field's value as the caller sees it (masked where it is masked for them;
    /// `null` when hidden or empty).
    pub title: Option<String>,
    /// A date or an RFC 3339 instant, as the field holds it.
    pub start: Json,
    pub end: Option<Json>,
    /// Whether the entry is still open by the object's `calendar.open` filter (true when the
    /// object declares none).
    pub open: bool,
    pub url: String,
}

/// The calendar of a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calendar {
    pub from: NaiveDate,
    /// Exclusive.
    pub to: NaiveDate,
    pub scope: CalendarScope,
    /// Ordered by start, then object and id.
    pub data: Vec<CalendarEntry>,
}

impl Reports {
    /// The entries starting in `[from, to)` (dates in the app timezone; this month when
    /// absent), or spanning into it when the object declares an `end`. At most
    /// [`MAX_CALENDAR_DAYS`] days.
    pub async fn calendar(
        &self,
        actor: &Actor,
        from: Option<&str>,
        to: Option<&str>,
        scope: CalendarScope,
    ) -> Result<Calendar, ReportError> {
        let from = match from {
            Some(text) => parse_date("from", text)?,
            None => {
                let today = self.today();
                chrono::Datelike::with_day(&today, 1).unwrap_or(today)
            }
        };
        let to = match to {
            Some(text) => parse_date("to", text)?,
            None => from
                .checked_add_months(chrono::Months::new(1))
                .ok_or_else(|| bad("from", "the date is out of range"))?,
        };
        if to <= from {
            return Err(bad(
                "to",
                format!("`to` ({to}) must be after `from` ({from})"),
            ));
        }
        if (to - from).num_days() > MAX_CALENDAR_DAYS {
            return Err(bad(
                "to",
                format!("the range is longer than {MAX_CALENDAR_DAYS} days"),
            ));
        }
        let schema = self.records.schema().clone();
        let mut data = Vec::new();
        for object in schema.objects.values() {
            if object.calendar.is_some() {
                data.extend(self.entries(actor, object, from, to, scope).await?);
            }
        }
        data.sort_by(|a, b| {
            sort_key(&a.start)
                .cmp(&sort_key(&b.start))
                .then_with(|| a.object.cmp(&b.object))
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(Calendar {
            from,
            to,
            scope,
            data,
        })
    }

    async fn entries(
        &self,
        actor: &Actor,
        object: &Object,
        from: NaiveDate,
        to: NaiveDate,
        scope: CalendarScope,
    ) -> Result<Vec<CalendarEntry>, ReportError> {
        let Some(view) = &object.calendar else {
            return Ok(Vec::new());
        };
        let Some(readable) = self.read_scope(actor, object) else {
            return Ok(Vec::new());
        };
        let storage_of = |name: &str| {
            object
                .columns()
                .into_iter()
                .find(|column| column.name == name)
                .map(|column| column.storage)
        };
        let schema = self.records.schema();
        let hidden = |name: &str| {
            object.field(name).is_some()
                && access::field_access(schema, actor, object, name) == FieldAccess::Hidden
        };
        if hidden(&view.start) || view.end.as_deref().is_some_and(hidden) {
            return Ok(Vec::new());
        }
        let bound = |day: NaiveDate, storage: Option<Storage>| -> Result<Value, ReportError> {
            Ok(match storage {
                Some(Storage::Date) => Value::Date(day),
                _ => Value::Datetime(self.start_of(day)?),
            })
        };
        let start_storage = storage_of(&view.start);
        let compare = |column: &str, op, value| Condition::Compare {
            column: column.to_owned(),
            op,
            value,
        };
        let starts_before_end = compare(&view.start, CompareOp::Lt, bound(to, start_storage)?);
        let starts_in = compare(&view.start, CompareOp::Gte, bound(from, start_storage)?);
        let overlaps = match &view.end {
            None => starts_in,
            Some(end) => Condition::Any(vec![
                compare(end, CompareOp::Gte, bound(from, storage_of(end))?),
                Condition::All(vec![
                    Condition::IsNull {
                        column: end.clone(),
                        null: true,
                    },
                    starts_in,
                ]),
            ]),
        };
        let whose = match scope {
            CalendarScope::Mine => Condition::OwnerIn(vec![actor.id.clone()]),
            CalendarScope::Team => Condition::OwnerInTeamOf(actor.id.clone()),
        };
        let condition = Condition::All(vec![readable, whose, starts_before_end, overlaps]);
        let title_hidden = hidden(&view.title);
        let mut columns = vec!["id".to_owned(), "owner".to_owned(), view.start.clone()];
        columns.extend(view.end.clone());
        if !title_hidden {
            columns.push(view.title.clone());
        }
        let query = SelectQuery {
            condition: condition.clone(),
            sort: vec![Sort {
                column: view.start.clone(),
                descending: false,
            }],
            limit: Some(CALENDAR_ENTRY_LIMIT),
            columns: Some(columns),
            ..SelectQuery::new(object)
        };
        let db = self.records.db();
        let rows = select(db, &query).await?;
        let open_ids: Option<std::collections::HashSet<String>> = match &view.open {
            None => None,
            Some(filter) => {
                let open = self.records.metadata_condition(object, filter)?;
                let ids: Vec<Value> = rows
                    .iter()
                    .filter_map(|row| row.get("id").cloned())
                    .collect();
                let query = SelectQuery {
                    condition: Condition::All(vec![
                        open,
                        Condition::In {
                            column: "id".to_owned(),
                            values: ids,
                        },
                    ]),
                    limit: Some(CALENDAR_ENTRY_LIMIT),
                    columns: Some(vec!["id".to_owned()]),
                    ..SelectQuery::new(object)
                };
                Some(
                    select(db, &query)
                        .await?
                        .into_iter()
                        .filter_map(|row| match row.get("id") {
                            Some(Value::Text(id)) => Some(id.clone()),
                            _ => None,
                        })
                        .collect(),
                )
            }
        };
        let masking = Masking::new(schema, actor, object);
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(Value::Text(id)) = row.get("id").cloned() else {
                continue;
            };
            let owner = match row.get("owner") {
                Some(Value::Text(owner)) => Some(owner.as_str()),
                _ => None,
            };
            let title = match row.get(&view.title) {
                Some(Value::Null) | None => None,
                Some(value) => {
                    let text = match value.to_json() {
                        Json::String(text) => text,
                        other => other.to_string(),
                    };
                    Some(if masking.hides(&view.title, owner) {
                        mask(&text)
                    } else {
                        text
                    })
                }
            };
            let end = view
                .end
                .as_ref()
                .and_then(|end| row.get(end))
                .filter(|value| !value.is_null())
                .map(Value::to_json);
            entries.push(CalendarEntry {
                object: object.name.clone(),
                open: open_ids.as_ref().is_none_or(|open| open.contains(&id)),
                url: format!("/app/{}/{id}", object.name),
                start: row.get(&view.start).map_or(Json::Null, Value::to_json),
                end,
                title,
                id,
            });
        }
        Ok(entries)
    }
}

/// Dates and instants sort together by their text (`2026-01-02` before
/// `2026-01-02T…`), which is close enough for a day's order.
fn sort_key(start: &Json) -> String {
    match start {
        Json::String(text) => text.clone(),
        other => other.to_string(),
    }
}
