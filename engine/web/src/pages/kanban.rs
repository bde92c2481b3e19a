//! The kanban of a process object, `/app/{object}?view=kanban` (docs/ui.md, "Kanban"): one
//! column per stage of the process that owns the object, each with its label, how many
//! records are in it and the sum of their amount, and a card per record.
//!
//! The page reads only through `Records`: one aggregate grouped by the stage field (the
//! counts and sums, under the viewer's scope and the URL's filters) and one list per stage
//! (at most [`CARDS_PER_COLUMN`] cards). Moving a card is a plain form on the card that posts
//! to the record's transition route (`/app/{object}/{id}/transition`, see
//! `pages::process`), so it works without JavaScript; `kanban.js` adds dragging a card onto a
//! column, which submits the same form.

use axum::response::Response;
use keel_meta::{FieldKind, Object, Process, Schema};
use keel_runtime::records::access::Masking;
use keel_runtime::records::{AggregateRequest, ListRequest};
use serde::Serialize;
use serde_json::Value as Json;

use super::{Formatter, Frame, PageError, Viewer, render};
use crate::AppState;

/// Cards shown per column; the column's count says how many there are in all.
pub const CARDS_PER_COLUMN: u32 = 50;

/// The process that owns `object`'s stage field, if any.
pub fn process_of<'a>(schema: &'a Schema, object: &str) -> Option<&'a Process> {
    schema
        .processes
        .values()
        .find(|process| process.object == object)
}

/// The money field a card and a column sum show: `amount` when it is money, else the
/// object's first money field.
pub fn amount_field(object: &Object) -> Option<&keel_meta::Field> {
    object
        .fields
        .get("amount")
        .filter(|field| matches!(field.kind, FieldKind::Money { .. }))
        .or_else(|| {
            object
                .fields
                .values()
                .find(|field| matches!(field.kind, FieldKind::Money { .. }))
        })
}

#[derive(Debug, Serialize)]
struct KanbanPage {
    object: String,
    title: String,
    list_url: String,
    back: String,
    q: String,
    columns: Vec<ColumnView>,
    /// Every stage, for the move select of each card.
    stages: Vec<StageOption>,
    amount_label: Option<String>,
    /// The stage a card was just moved to (the notice after a move).
    moved: Option<String>,
}

#[derive(Debug, Serialize)]
struct StageOption {
    key: String,
    label: String,
}

#[derive(Debug, Serialize)]
struct ColumnView {
    key: String,
    label: String,
    /// `won`, `lost` or empty.
    outcome: &'static str,
    count: u64,
    sum: Option<String>,
    cards: Vec<CardView>,
    /// More records than cards shown: a link to the list filtered to the stage.
    more_url: Option<String>,
}

#[derive(Debug, Serialize)]
struct CardView {
    id: String,
    url: String,
    title: String,
    amount: Option<String>,
    owner: Option<String>,
    /// Days since the record was last changed (its stage changes are changes).
    days: Option<i64>,
}

/// `GET /app/{object}?view=kanban`: `pairs` are the URL's other parameters (filters, `q`).
pub async fn page(
    state: &AppState,
    viewer: &Viewer,
    object: &Object,
    process: &Process,
    pairs: &[(String, String)],
    moved: Option<String>,
) -> Result<Response, PageError> {
    let schema = state.schema().clone();
    let frame = Frame::new(state, viewer).await?;
    let formatter = Formatter::new(&schema, &viewer.lang, state.records().clock().now());
    let readable = state
        .records()
        .readable_fields(&viewer.actor, &object.name)?;
    let masking = Masking::new(&schema, &viewer.actor, object);
    let stage_field = &process.stage_field;
    // The board's filters: the URL's, without paging and without the stage (the columns
    // are the stages).
    let filters: Vec<(String, String)> = pairs
        .iter()
        .filter(|(key, _)| {
            key != stage_field && !matches!(key.as_str(), "after" | "limit" | "order" | "fields")
        })
        .cloned()
        .collect();
    let base = crate::query::list_request(&filters)?;
    let amount = amount_field(object)
        .filter(|field| readable.contains(&field.name) && !masking.hides_anywhere(&field.name));
    let totals = state
        .records()
        .aggregate(
            &viewer.actor,
            &object.name,
            AggregateRequest {
                filter: base.filter.clone(),
                q: base.q.clone(),
                group_by: vec![stage_field.clone()],
                count: true,
                sum: amount.iter().map(|field| field.name.clone()).collect(),
                ..AggregateRequest::default()
            },
        )
        .await?;
    let mut fields = vec![
        object.title.clone(),
        "owner".to_owned(),
        "updated_at".to_owned(),
    ];
    fields.extend(amount.iter().map(|field| field.name.clone()));
    fields.retain(|name| readable.contains(name) || object.returns_system_field(name));
    let owner_field = super::list::column_field(object, "owner", &readable);
    let now = state.records().clock().now();
    let mut columns = Vec::new();
    for stage in &process.stages {
        let total = totals.iter().find(|row| {
            row.get(stage_field.as_str()).and_then(Json::as_str) == Some(stage.key.as_str())
        });
        let count = total
            .and_then(|row| row.get("count"))
            .and_then(Json::as_u64)
            .unwrap_or(0);
        let sum = amount.and_then(|field| {
            let value = total?.get(format!("sum_{}", field.name))?;
            let text = match value {
                Json::String(text) => text.clone(),
                Json::Null => return None,
                other => other.to_string(),
            };
            Some(formatter.money(&text))
        });
        let mut cards = Vec::new();
        if count > 0 {
            let mut stage_pairs = filters.clone();
            stage_pairs.push((stage_field.clone(), format!("eq.{}", stage.key)));
            let request = ListRequest {
                limit: Some(CARDS_PER_COLUMN),
                fields: Some(fields.clone()),
                ..crate::query::list_request(&stage_pairs)?
            };
            let found = state
                .records()
                .list(&viewer.actor, &object.name, request)
                .await?;
            for record in &found.data {
                let id = record
                    .get("id")
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_owned();
                let owner_id = record.get("owner").and_then(Json::as_str);
                let amount = amount
                    .map(|field| {
                        formatter.show(field, record, masking.hides(&field.name, owner_id))
                    })
                    .filter(|shown| shown.class != "empty")
                    .map(|shown| shown.text);
                let owner = owner_field
                    .as_ref()
                    .map(|field| formatter.show(field, record, false))
                    .filter(|shown| shown.class != "empty")
                    .map(|shown| shown.text);
                let days = record
                    .get("updated_at")
                    .and_then(Json::as_str)
                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                    .map(|at| (now - at.with_timezone(&chrono::Utc)).num_days().max(0));
                cards.push(CardView {
                    url: format!("/app/{}/{id}", object.name),
                    title: super::record::record_title(object, record),
                    id,
                    amount,
                    owner,
                    days,
                });
            }
        }
        let more_url = (count > cards.len() as u64)
            .then(|| format!("/app/{}?{}=eq.{}", object.name, stage_field, stage.key));
        columns.push(ColumnView {
            key: stage.key.clone(),
            label: formatter.label(stage.label.as_ref(), &stage.key),
            outcome: match stage.outcome {
                Some(keel_meta::Outcome::Won) => "won",
                Some(keel_meta::Outcome::Lost) => "lost",
                None => "",
            },
            count,
            sum,
            cards,
            more_url,
        });
    }
    let q = pairs
        .iter()
        .find(|(key, _)| key == "q")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let view = KanbanPage {
        title: formatter.label(Some(&object.label), &object.name),
        list_url: format!("/app/{}", object.name),
        // Where a move returns: this board, without the notice of an earlier move.
        back: {
            let (path, query) = viewer
                .path
                .split_once('?')
                .unwrap_or((viewer.path.as_str(), ""));
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| !pair.is_empty() && !pair.starts_with("moved="))
                .collect();
            if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        },
        q,
        stages: process
            .stages
            .iter()
            .map(|stage| StageOption {
                key: stage.key.clone(),
                label: formatter.label(stage.label.as_ref(), &stage.key),
            })
            .collect(),
        amount_label: amount.map(|field| formatter.field_label(field)),
        moved: moved.and_then(|key| {
            process
                .stages
                .iter()
                .find(|stage| stage.key == key)
                .map(|stage| formatter.label(stage.label.as_ref(), &stage.key))
        }),
        columns,
        object: object.name.clone(),
    };
    render(state, &frame, "kanban.html", view)
}
