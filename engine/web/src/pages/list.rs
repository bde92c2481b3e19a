//! The list pages `/app/{object}` and the global search `/search`.
//!
//! A list page reads the same query parameters as `GET /api/v1/records/{object}` (filters
//! `field=op.value`, `q`, `order`, `limit`, `after`), so a view lives in its URL and can be
//! bookmarked or shared, and the API call behind it is the URL with another prefix. The
//! filter form is a plain GET form; controls that cannot produce API syntax by themselves
//! (a from–to range, a date preset) are named `<field>.from`, `<field>.to` and
//! `<field>.preset`, and the page answers such a URL with a redirect to its canonical API
//! form (no field name contains a dot, so these names never clash with a filter).
//!
//! One page costs the API's list plus two queries: the frame's unread count and the count of
//! matching records (`Records::aggregate` under the same filter and `q`; an empty first page
//! needs no count, and spends that query on naming a chosen lookup instead). Pickers
//! therefore read no further records: a lookup or user filter offers the values on the
//! current page (and "mine" for users); with JavaScript, `list.js` adds a typeahead over the
//! lookup target's API list (docs/ui.md).
//!
//! Previous pages: keyset paging has only a forward cursor, so the page keeps a short trail
//! of the cursors it came through in `_back` (comma-separated, newest last, at most
//! [`TRAIL_KEPT`]); "previous" pops it. Past the kept trail, "previous" goes to the first
//! page. `_back` is the only parameter the API does not read.

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{Datelike, Duration, NaiveDate};
use keel_meta::{Field, FieldKind, Object, Schema, Scope};
use keel_runtime::records::access::{self, Action, Masking};
use keel_runtime::records::{AggregateRequest, ListRequest, RecordError};
use serde::Serialize;
use serde_json::Value as Json;

use super::{Formatter, Frame, PageError, Viewer, render_with_status};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Pinned, parse_query};

/// Records per page unless the URL gives a `limit`.
pub const PAGE_SIZE: u32 = 50;
/// How many earlier cursors a page keeps for "previous".
pub const TRAIL_KEPT: usize = 20;
/// Matches per object on the search page.
pub const SEARCH_SHOWN: u32 = 5;
/// How many list columns besides the title a search match shows.
const SEARCH_CONTEXT: usize = 2;

/// The page-only parameter choosing the kanban of a process object.
const VIEW: &str = "view";
/// The page-only parameter holding the trail of earlier cursors.
const TRAIL: &str = "_back";
/// Parameters of the list that are not filters (the API's, and the trail).
const NOT_FILTERS: &[&str] = &["q", "order", "limit", "after", "fields", TRAIL];
/// The date presets of a date filter, in the order the select offers them.
const PRESETS: &[&str] = &["today", "last7", "week", "month"];

/// The routes of this module; [`super::routes`] merges them.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/app/{object}", get(list_page))
        .route("/app/{object}/export", get(export_selected))
        .route("/search", get(search_page))
}

#[derive(Debug, Serialize)]
struct ListPage {
    object: String,
    title: String,
    url: String,
    count: Option<u64>,
    q: String,
    columns: Vec<ColumnView>,
    rows: Vec<RowView>,
    filters: Vec<FilterView>,
    /// Parameters the filter form keeps as they are (`order`, `limit`, filters it has no
    /// control for).
    hidden: Vec<(String, String)>,
    filtered: bool,
    /// How many filter controls are set (shown on the folded filter panel).
    active_filters: usize,
    error: Option<ProblemView>,
    next_url: Option<String>,
    prev_url: Option<String>,
    can_create: bool,
    /// The kanban of the object's process, when a process owns the object.
    kanban_url: Option<String>,
    export_all_url: String,
    /// The record just deleted from this list, with its undo button (`record/undo.html`).
    undo: Option<super::record::Undo>,
}

#[derive(Debug, Serialize)]
struct ColumnView {
    name: String,
    label: String,
    number: bool,
    /// The URL that sorts by this column (toggling), when it can be sorted.
    sort_url: Option<String>,
    /// `ascending`, `descending` or empty.
    sorted: &'static str,
}

#[derive(Debug, Serialize)]
struct RowView {
    id: String,
    url: String,
    /// The record's title, or its id: what the first cell shows when empty.
    title: String,
    cells: Vec<CellView>,
}

#[derive(Debug, Serialize)]
struct CellView {
    label: String,
    text: String,
    href: Option<String>,
    class: &'static str,
}

#[derive(Debug, Serialize)]
struct FilterView {
    /// The field, and the API parameter the control produces.
    name: String,
    label: String,
    /// `select`, `number` or `date`.
    kind: &'static str,
    options: Vec<OptionView>,
    from: String,
    to: String,
    /// The date presets (`today`, `last7`, `week`, `month`, `custom`).
    presets: Vec<OptionView>,
    active: bool,
    /// For a lookup the viewer may search: the API list of its target and the target's
    /// title field, for the typeahead of `list.js`.
    search_url: Option<String>,
    search_title: Option<String>,
}

#[derive(Debug, Serialize)]
struct OptionView {
    value: String,
    label: String,
    selected: bool,
}

/// A refused request, shown above the table.
#[derive(Debug, Serialize)]
struct ProblemView {
    detail: String,
    errors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct SearchPage {
    q: String,
    groups: Vec<SearchGroup>,
    error: Option<ProblemView>,
}

#[derive(Debug, Serialize)]
struct SearchGroup {
    object: String,
    label: String,
    see_all: String,
    hits: Vec<SearchHit>,
}

#[derive(Debug, Serialize)]
struct SearchHit {
    url: String,
    title: String,
    masked: bool,
    /// A few more of the record's list columns, to tell similar titles apart.
    context: String,
}

/// `GET /app/{object}`.
async fn list_page(
    Pinned(state): Pinned,
    headers: axum::http::HeaderMap,
    viewer: Viewer,
    Path(object_name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let schema = state.schema().clone();
    let object = readable_object(&schema, &viewer, &object_name)?;
    let mut pairs = parse_query(query.as_deref().unwrap_or(""))?;
    // `view=kanban` on a process object is its board; no other view exists.
    let process = super::kanban::process_of(&schema, &object.name);
    if let Some(at) = pairs.iter().position(|(key, _)| key == VIEW) {
        let (_, view) = pairs.remove(at);
        if let (Some(process), "kanban") = (process, view.as_str()) {
            // `moved=<stage>`: the notice after a move from the board, not a filter.
            let moved = pairs
                .iter()
                .rfind(|(key, _)| key == "moved")
                .map(|(_, stage)| stage.clone());
            pairs.retain(|(key, _)| key != "moved");
            return super::kanban::page(&state, &viewer, object, process, &pairs, moved).await;
        }
    }
    let formatter = Formatter::new(&schema, &viewer.lang, state.records().clock().now());
    let canonical = canonical_pairs(object, &pairs, &formatter);
    if canonical != pairs {
        return Ok(Redirect::to(&list_url(&object.name, &canonical)).into_response());
    }
    let frame = Frame::new(&state, &viewer).await?;
    let text = |key: &str| state.ui().catalogs().text(&frame.lang, key, |_| None);
    let readable = state
        .records()
        .readable_fields(&viewer.actor, &object.name)?;
    let masking = Masking::new(&schema, &viewer.actor, object);
    let columns = list_columns(object, &readable);

    let api_pairs: Vec<(String, String)> = pairs
        .iter()
        .filter(|(key, _)| key != TRAIL)
        .cloned()
        .collect();
    let mut status = StatusCode::OK;
    let mut error = None;
    let mut page = None;
    let mut count = None;
    match crate::query::list_request(&api_pairs) {
        Err(problem) => {
            status = problem.status();
            error = Some(problem_view(&problem));
        }
        Ok(request) => {
            let request = ListRequest {
                limit: request.limit.or(Some(PAGE_SIZE)),
                // The columns, and the title (named in each row's checkbox label).
                fields: Some(
                    columns
                        .iter()
                        .map(|field| &field.name)
                        .chain(
                            Some(&object.title)
                                .filter(|title| !columns.iter().any(|field| &field.name == *title)),
                        )
                        .filter(|name| readable.contains(name))
                        .cloned()
                        .collect(),
                ),
                ..request
            };
            let counting_from_start = request.after.is_none();
            let counting = AggregateRequest {
                filter: request.filter.clone(),
                q: request.q.clone(),
                count: true,
                ..AggregateRequest::default()
            };
            match state
                .records()
                .list(&viewer.actor, &object.name, request)
                .await
            {
                Ok(found) => {
                    // A first page with nothing on it counts nothing: no query needed.
                    count = if found.data.is_empty() && counting_from_start {
                        Some(0)
                    } else {
                        state
                            .records()
                            .aggregate(&viewer.actor, &object.name, counting)
                            .await
                            .ok()
                            .and_then(|rows| {
                                rows.first().and_then(|row| row.get("count")?.as_u64())
                            })
                    };
                    page = Some(found);
                }
                Err(refused) => {
                    let problem = shown_problem(refused)?;
                    status = problem.status();
                    error = Some(problem_view(&problem));
                }
            }
        }
    }

    let records = page
        .as_ref()
        .map(|page| page.data.as_slice())
        .unwrap_or(&[]);
    let value_of = |key: &str| {
        pairs
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.clone())
    };
    // The view's parameters without its place in the paging.
    let base: Vec<(String, String)> = pairs
        .iter()
        .filter(|(key, _)| key != "after" && key != TRAIL)
        .cloned()
        .collect();
    let column_views = column_views(object, &columns, &masking, &base, &formatter, &text);
    let rows = row_views(
        object,
        &columns,
        &column_views,
        records,
        &masking,
        &formatter,
    );

    // With no rows, no `_refs` name a chosen lookup; the count's unneeded query reads its
    // title instead, so the filter shows a name rather than an id.
    let mut sources: Vec<Json> = Vec::new();
    if page.is_some() && records.is_empty() && value_of("after").is_none() {
        sources.extend(chosen_lookup(&state, &viewer, object, &pairs).await);
    }
    let (mut filters, hidden) = filter_views(
        object,
        &readable,
        &masking,
        &pairs,
        if records.is_empty() {
            &sources
        } else {
            records
        },
        &viewer.actor.id,
        &formatter,
        &text,
    );
    offer_lookup_search(&schema, &viewer, object, &mut filters);
    let active_filters = filters.iter().filter(|filter| filter.active).count();
    let filtered = pairs
        .iter()
        .any(|(key, _)| !NOT_FILTERS.contains(&key.as_str()) || key == "q");
    let next_cursor = page.as_ref().and_then(|page| page.next.clone());
    let (prev_url, next_url) = paging_urls(&object.name, &pairs, &base, next_cursor);
    let export_pairs: Vec<(String, String)> = std::iter::once(("format".into(), "csv".into()))
        .chain(
            base.iter()
                .filter(|(key, _)| key != "limit" && key != "fields")
                .cloned(),
        )
        .collect();
    let view = ListPage {
        undo: super::record::take_undo(&headers, &object.name),
        title: formatter.label(Some(&object.label), &object.name),
        url: format!("/app/{}", object.name),
        count,
        q: value_of("q").unwrap_or_default(),
        columns: column_views,
        rows,
        filters,
        hidden,
        filtered,
        active_filters,
        error,
        next_url,
        prev_url,
        can_create: access::can_create(&schema, &viewer.actor, &object.name),
        kanban_url: process.map(|_| {
            let mut board = base.clone();
            board.insert(0, (VIEW.to_owned(), "kanban".to_owned()));
            list_url(&object.name, &board)
        }),
        export_all_url: format!(
            "/api/v1/records/{}/export?{}",
            object.name,
            encode_pairs(&export_pairs)
        ),
        object: object.name.clone(),
    };
    render_with_status(&state, &frame, "list.html", view, status)
}

/// The table's headers: labels, and a link that sorts by the column (ascending first, then
/// toggling) unless sorting by it could reveal a masked value or is not possible.
fn column_views(
    object: &Object,
    columns: &[Field],
    masking: &Masking,
    base: &[(String, String)],
    formatter: &Formatter,
    text: &impl Fn(&str) -> String,
) -> Vec<ColumnView> {
    let order = base
        .iter()
        .find(|(key, _)| key == "order")
        .map(|(_, order)| order.as_str())
        .unwrap_or("");
    columns
        .iter()
        .map(|field| {
            let sortable = !masking.hides_anywhere(&field.name)
                && !matches!(field.kind, FieldKind::MultiChoice { .. });
            let descending = format!("-{}", field.name);
            let sorted = if order == field.name {
                "ascending"
            } else if order == descending {
                "descending"
            } else {
                ""
            };
            let toggled = if sorted == "ascending" {
                descending
            } else {
                field.name.clone()
            };
            let mut sort_pairs: Vec<(String, String)> = base
                .iter()
                .filter(|(key, _)| key != "order")
                .cloned()
                .collect();
            sort_pairs.push(("order".to_owned(), toggled));
            ColumnView {
                name: field.name.clone(),
                label: column_label(formatter, field, text),
                number: is_number(&field.kind),
                sort_url: sortable.then(|| list_url(&object.name, &sort_pairs)),
                sorted,
            }
        })
        .collect()
}

/// The table's rows: each record's columns as the API shows them to the viewer.
fn row_views(
    object: &Object,
    columns: &[Field],
    column_views: &[ColumnView],
    records: &[Json],
    masking: &Masking,
    formatter: &Formatter,
) -> Vec<RowView> {
    records
        .iter()
        .map(|record| {
            let id = record
                .get("id")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_owned();
            let owner = record.get("owner").and_then(Json::as_str);
            let title = record
                .get(&object.title)
                .and_then(|title| match title {
                    Json::String(text) if !text.is_empty() => Some(text.clone()),
                    Json::Null | Json::String(_) => None,
                    other => Some(other.to_string()),
                })
                .unwrap_or_else(|| id.clone());
            let cells = columns
                .iter()
                .zip(column_views)
                .map(|(field, column)| {
                    let shown = formatter.show(field, record, masking.hides(&field.name, owner));
                    CellView {
                        label: column.label.clone(),
                        text: shown.text,
                        href: shown.href,
                        class: shown.class,
                    }
                })
                .collect();
            RowView {
                url: format!("/app/{}/{id}", object.name),
                id,
                title,
                cells,
            }
        })
        .collect()
}

/// The first lookup filter `field=eq.<id>` of the URL, as a record carrying the target's
/// title in `_refs` (what [`add_references`] reads), if the viewer may read the target.
async fn chosen_lookup(
    state: &AppState,
    viewer: &Viewer,
    object: &Object,
    pairs: &[(String, String)],
) -> Option<Json> {
    let schema = state.schema();
    let (field, target, id) = pairs.iter().find_map(|(key, value)| {
        let Some(FieldKind::Lookup { object: target, .. }) =
            object.fields.get(key).map(|field| &field.kind)
        else {
            return None;
        };
        let id = value.strip_prefix("eq.").filter(|id| !id.is_empty())?;
        Some((key, schema.objects.get(target)?, id))
    })?;
    let record = state
        .records()
        .get(&viewer.actor, &target.name, id)
        .await
        .ok()?;
    let title = record.get(&target.title).and_then(Json::as_str)?;
    Some(serde_json::json!({
        field.as_str(): id,
        "_refs": { field.as_str(): { "id": id, "title": title } },
    }))
}

/// Marks the lookup filters whose target the viewer may search, for the typeahead.
fn offer_lookup_search(
    schema: &Schema,
    viewer: &Viewer,
    object: &Object,
    filters: &mut [FilterView],
) {
    for filter in filters {
        let target = match object.fields.get(&filter.name).map(|field| &field.kind) {
            Some(FieldKind::Lookup { object: target, .. }) => schema.objects.get(target),
            _ => None,
        };
        if let Some(target) = target.filter(|target| {
            !target.search.is_empty()
                && access::scope(schema, &viewer.actor, &target.name, Action::Read) != Scope::None
        }) {
            filter.search_url = Some(format!("/api/v1/records/{}", target.name));
            filter.search_title = Some(target.title.clone());
        }
    }
}

/// The "previous" and "next" links. "Next" carries the current cursor onto the trail
/// (keeping the newest [`TRAIL_KEPT`]); "previous" pops it, and from the second page (no
/// trail) goes to the first.
fn paging_urls(
    object: &str,
    pairs: &[(String, String)],
    base: &[(String, String)],
    next_cursor: Option<String>,
) -> (Option<String>, Option<String>) {
    let current = pairs
        .iter()
        .find(|(key, _)| key == "after")
        .map(|(_, after)| after.clone());
    let next_url = next_cursor.map(|cursor| {
        let mut trail = trail_of(pairs);
        trail.extend(current.clone());
        let skip = trail.len().saturating_sub(TRAIL_KEPT);
        let mut next = base.to_vec();
        next.push(("after".to_owned(), cursor));
        if trail.len() > skip {
            next.push((TRAIL.to_owned(), trail[skip..].join(",")));
        }
        list_url(object, &next)
    });
    let prev_url = current.map(|_| {
        let mut trail = trail_of(pairs);
        let mut prev = base.to_vec();
        if let Some(cursor) = trail.pop() {
            prev.push(("after".to_owned(), cursor));
            if !trail.is_empty() {
                prev.push((TRAIL.to_owned(), trail.join(",")));
            }
        }
        list_url(object, &prev)
    });
    (prev_url, next_url)
}

/// `GET /app/{object}/export?id=a&id=b`: the bulk "export selected" form, sent on to the
/// API's export of exactly those records (`id=in.(a,b)`), as CSV.
async fn export_selected(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path(object_name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let schema = state.schema().clone();
    let object = readable_object(&schema, &viewer, &object_name)?;
    let pairs = parse_query(query.as_deref().unwrap_or(""))?;
    // Record ids are letters, digits, `-` and `_`; anything else could not be in an `in`
    // list and names no record, so it is left out.
    let ids: Vec<&str> = pairs
        .iter()
        .filter(|(key, _)| key == "id")
        .map(|(_, id)| id.as_str())
        .filter(|id| {
            !id.is_empty()
                && id
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        })
        .collect();
    if ids.is_empty() {
        return Ok(Redirect::to(&format!("/app/{}", object.name)).into_response());
    }
    Ok(Redirect::to(&format!(
        "/api/v1/records/{}/export?format=csv&id=in.({})",
        object.name,
        ids.join(",")
    ))
    .into_response())
}

/// `GET /search?q=`: up to [`SEARCH_SHOWN`] matches in every object the user may read that
/// has `search` fields, each group with a link to its whole list.
async fn search_page(
    Pinned(state): Pinned,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let pairs = parse_query(query.as_deref().unwrap_or(""))?;
    let q = pairs
        .iter()
        .find(|(key, _)| key == "q")
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default();
    let frame = Frame::new(&state, &viewer).await?;
    let schema = state.schema().clone();
    let formatter = frame.formatter(&state);
    let mut view = SearchPage {
        q: q.clone(),
        groups: Vec::new(),
        error: None,
    };
    let mut status = StatusCode::OK;
    if !q.is_empty()
        && let Err(problem) = crate::query::list_request(&[("q".to_owned(), q.clone())])
    {
        status = problem.status();
        view.error = Some(problem_view(&problem));
    }
    if !q.is_empty() && view.error.is_none() {
        for object in schema.objects.values() {
            if access::scope(&schema, &viewer.actor, &object.name, Action::Read) == Scope::None {
                continue;
            }
            let readable = state
                .records()
                .readable_fields(&viewer.actor, &object.name)?;
            if !object.search.iter().any(|field| readable.contains(field)) {
                continue;
            }
            let title_field = object.fields.get(&object.title);
            let context_fields: Vec<Field> = list_columns(object, &readable)
                .into_iter()
                .filter(|field| field.name != object.title)
                .take(SEARCH_CONTEXT)
                .collect();
            let request = ListRequest {
                q: Some(q.clone()),
                limit: Some(SEARCH_SHOWN),
                fields: Some(
                    title_field
                        .into_iter()
                        .chain(&context_fields)
                        .filter(|field| readable.contains(&field.name))
                        .map(|field| field.name.clone())
                        .collect(),
                ),
                ..ListRequest::default()
            };
            let found = match state
                .records()
                .list(&viewer.actor, &object.name, request)
                .await
            {
                Ok(found) => found,
                Err(refused) => {
                    let problem = shown_problem(refused)?;
                    tracing::warn!(object = %object.name, detail = problem.detail(), "search skipped an object");
                    continue;
                }
            };
            if found.data.is_empty() {
                continue;
            }
            let masking = Masking::new(&schema, &viewer.actor, object);
            let hits = found
                .data
                .iter()
                .map(|record| {
                    let id = record.get("id").and_then(Json::as_str).unwrap_or("");
                    let owner = record.get("owner").and_then(Json::as_str);
                    let masked = masking.hides(&object.title, owner);
                    let title = title_field
                        .map(|field| formatter.show(field, record, masked).text)
                        .filter(|title| !title.is_empty())
                        .unwrap_or_else(|| id.to_owned());
                    let context = context_fields
                        .iter()
                        .map(|field| {
                            let hidden = masking.hides(&field.name, owner);
                            formatter.show(field, record, hidden).text
                        })
                        .filter(|text| !text.is_empty())
                        .collect::<Vec<_>>()
                        .join(" · ");
                    SearchHit {
                        url: format!("/app/{}/{id}", object.name),
                        title,
                        masked,
                        context,
                    }
                })
                .collect();
            view.groups.push(SearchGroup {
                object: object.name.clone(),
                label: formatter.label(Some(&object.label), &object.name),
                see_all: list_url(&object.name, &[("q".to_owned(), q.clone())]),
                hits,
            });
        }
    }
    render_with_status(&state, &frame, "list/search.html", view, status)
}

/// The object, if the viewer may read some of its records; else the 404 page (an object
/// the user may not read is as unknown to them as one that does not exist).
fn readable_object<'a>(
    schema: &'a Schema,
    viewer: &Viewer,
    name: &str,
) -> Result<&'a Object, PageError> {
    match schema.objects.get(name) {
        Some(object) if access::scope(schema, &viewer.actor, name, Action::Read) != Scope::None => {
            Ok(object)
        }
        _ => Err(RecordError::NotFound.into()),
    }
}

/// A refusal the page shows above its table; a missing object or a server fault is the
/// error page instead.
fn shown_problem(refused: RecordError) -> Result<ApiError, PageError> {
    if matches!(
        refused,
        RecordError::NotFound | RecordError::UnknownObject(_)
    ) {
        return Err(refused.into());
    }
    let problem = ApiError::from(refused);
    if problem.status().is_server_error() {
        return Err(problem.into());
    }
    Ok(problem)
}

fn problem_view(problem: &ApiError) -> ProblemView {
    let errors = problem.errors();
    // A refused parameter's message is usually the detail too: say it once, naming it.
    let repeated = errors.iter().any(|error| error.message == problem.detail());
    ProblemView {
        detail: if repeated {
            String::new()
        } else {
            problem.detail().to_owned()
        },
        errors: errors
            .iter()
            .map(|error| {
                if error.field.is_empty() {
                    error.message.clone()
                } else {
                    format!("{}: {}", error.field, error.message)
                }
            })
            .collect(),
    }
}

/// How many declared fields a list shows when the object names no `list.columns`.
const DEFAULT_COLUMNS: usize = 6;

/// The list's columns the viewer may read: the object's `list.columns`, or when it names
/// none, its title and the fields after it, then the owner.
fn list_columns(object: &Object, readable: &[String]) -> Vec<Field> {
    let names: Vec<&str> = if object.list.columns.is_empty() {
        std::iter::once(object.title.as_str())
            .chain(
                object
                    .fields
                    .keys()
                    .map(String::as_str)
                    .filter(|name| *name != object.title)
                    .take(DEFAULT_COLUMNS - 1),
            )
            .chain(std::iter::once("owner"))
            .collect()
    } else {
        object.list.columns.iter().map(String::as_str).collect()
    };
    names
        .into_iter()
        .filter_map(|name| column_field(object, name, readable))
        .collect()
}

/// The field behind a list column the viewer may read: a declared field, or a system
/// field described as one (so the formatter shows it like any other).
pub(super) fn column_field(object: &Object, name: &str, readable: &[String]) -> Option<Field> {
    if let Some(field) = object.fields.get(name) {
        return readable.contains(&field.name).then(|| field.clone());
    }
    let kind = match name {
        "owner" | "created_by" | "updated_by" => FieldKind::User,
        "created_at" | "updated_at" | "claimed_at" | "returned_at" => FieldKind::Datetime,
        "version" => FieldKind::Integer,
        "id" | "pool" => FieldKind::Text,
        _ => return None,
    };
    if !object.returns_system_field(name) {
        return None;
    }
    Some(Field {
        name: name.to_owned(),
        kind,
        label: None,
        help: None,
        required: false,
        unique: false,
        default: None,
        min: None,
        max: None,
        max_length: None,
        pattern: None,
        mask: false,
        renamed_from: None,
    })
}

/// A column's label: the metadata's, or the catalog's for a system field.
fn column_label(formatter: &Formatter, field: &Field, text: &impl Fn(&str) -> String) -> String {
    if field.label.is_none() && keel_meta::system::is_system_field(&field.name) {
        return text(&format!("list.system.{}", field.name));
    }
    formatter.field_label(field)
}

fn is_number(kind: &FieldKind) -> bool {
    matches!(
        kind,
        FieldKind::Integer
            | FieldKind::Decimal { .. }
            | FieldKind::Money { .. }
            | FieldKind::Percent { .. }
    )
}

fn is_date(kind: &FieldKind) -> bool {
    matches!(kind, FieldKind::Date | FieldKind::Datetime)
}

/// The fields that get a filter: the list columns, then the other choice, boolean and date
/// fields, then when records were created; never a field masked for the viewer (a filter
/// on it would match only their own records) nor a multi-choice (the filter language
/// compares it only with `is`).
fn filter_fields(object: &Object, readable: &[String], masking: &Masking) -> Vec<Field> {
    let mut fields = list_columns(object, readable);
    for field in object.fields.values() {
        let wanted = matches!(
            field.kind,
            FieldKind::Choice { .. } | FieldKind::Boolean | FieldKind::Date | FieldKind::Datetime
        );
        if wanted
            && readable.contains(&field.name)
            && !fields.iter().any(|known| known.name == field.name)
        {
            fields.push(field.clone());
        }
    }
    if !fields.iter().any(|known| known.name == "created_at")
        && let Some(created) = column_field(object, "created_at", readable)
    {
        fields.push(created);
    }
    fields.retain(|field| {
        !masking.hides_anywhere(&field.name)
            && matches!(
                field.kind,
                FieldKind::Choice { .. }
                    | FieldKind::Boolean
                    | FieldKind::Date
                    | FieldKind::Datetime
                    | FieldKind::Integer
                    | FieldKind::Decimal { .. }
                    | FieldKind::Money { .. }
                    | FieldKind::Percent { .. }
                    | FieldKind::Lookup { .. }
                    | FieldKind::User
            )
    });
    fields
}

/// The filter controls with their current state read from the URL, and the parameters the
/// form must carry unchanged (the sort, the page size, filters no control shows).
#[allow(clippy::too_many_arguments)]
fn filter_views(
    object: &Object,
    readable: &[String],
    masking: &Masking,
    pairs: &[(String, String)],
    records: &[Json],
    me: &str,
    formatter: &Formatter,
    text: &impl Fn(&str) -> String,
) -> (Vec<FilterView>, Vec<(String, String)>) {
    let fields = filter_fields(object, readable, masking);
    let mut hidden: Vec<(String, String)> = pairs
        .iter()
        .filter(|(key, _)| key == "order" || key == "limit" || key == "fields")
        .cloned()
        .collect();
    for (key, value) in pairs {
        if !NOT_FILTERS.contains(&key.as_str()) && !fields.iter().any(|field| &field.name == key) {
            hidden.push((key.clone(), value.clone()));
        }
    }
    let option = |value: String, label: String, current: &str| OptionView {
        selected: value == current,
        value,
        label,
    };
    let views = fields
        .iter()
        .map(|field| {
            let values: Vec<&str> = pairs
                .iter()
                .filter(|(key, _)| key == &field.name)
                .map(|(_, value)| value.as_str())
                .collect();
            let label = column_label(formatter, field, text);
            let mut view = FilterView {
                name: field.name.clone(),
                label,
                kind: "select",
                options: Vec::new(),
                from: String::new(),
                to: String::new(),
                presets: Vec::new(),
                active: !values.is_empty(),
                search_url: None,
                search_title: None,
            };
            let mut extra: Vec<&str> = Vec::new();
            if is_number(&field.kind) {
                view.kind = "number";
                for value in &values {
                    match value.split_once('.') {
                        Some(("gte", number)) if view.from.is_empty() => {
                            view.from = number.to_owned()
                        }
                        Some(("lte", number)) if view.to.is_empty() => view.to = number.to_owned(),
                        _ => extra.push(value),
                    }
                }
            } else if is_date(&field.kind) {
                view.kind = "date";
                let mut chosen = "";
                for preset in PRESETS {
                    let expanded = preset_values(preset, formatter);
                    if values.len() == expanded.len()
                        && expanded
                            .iter()
                            .all(|value| values.contains(&value.as_str()))
                    {
                        chosen = preset;
                    }
                }
                if chosen.is_empty() {
                    for value in &values {
                        match value.split_once('.') {
                            Some(("gte", date)) if view.from.is_empty() => {
                                view.from = date.to_owned()
                            }
                            Some(("lt", date))
                                if view.to.is_empty() && parse_date(date).is_some() =>
                            {
                                view.to = parse_date(date)
                                    .map(|day| (day - Duration::days(1)).to_string())
                                    .unwrap_or_default()
                            }
                            Some(("lte", date)) if view.to.is_empty() => view.to = date.to_owned(),
                            _ => extra.push(value),
                        }
                    }
                    if !view.from.is_empty() || !view.to.is_empty() {
                        chosen = "custom";
                    }
                }
                view.presets = std::iter::once("")
                    .chain(PRESETS.iter().copied())
                    .chain(std::iter::once("custom"))
                    .map(|preset| {
                        let label = if preset.is_empty() {
                            text("list.any")
                        } else {
                            text(&format!("list.preset.{preset}"))
                        };
                        option(preset.to_owned(), label, chosen)
                    })
                    .collect();
            } else {
                let current = values.first().copied().unwrap_or("");
                extra.extend(values.iter().skip(1));
                view.options
                    .push(option(String::new(), text("list.any"), current));
                match &field.kind {
                    FieldKind::Choice { options } => {
                        for choice in options {
                            view.options.push(option(
                                format!("eq.{}", choice.key),
                                formatter.label(choice.label.as_ref(), &choice.key),
                                current,
                            ));
                        }
                    }
                    FieldKind::Boolean => {
                        view.options
                            .push(option("eq.true".into(), text("list.yes"), current));
                        view.options
                            .push(option("eq.false".into(), text("list.no"), current));
                    }
                    FieldKind::User => {
                        view.options
                            .push(option(format!("eq.{me}"), text("list.mine"), current));
                        add_references(&mut view.options, &field.name, records, current, me);
                    }
                    _ => add_references(&mut view.options, &field.name, records, current, me),
                }
                if !current.is_empty() && !view.options.iter().any(|option| option.selected) {
                    let label = describe(field, current, formatter);
                    view.options
                        .push(option(current.to_owned(), label, current));
                }
            }
            hidden.extend(
                extra
                    .into_iter()
                    .map(|value| (field.name.clone(), value.to_owned())),
            );
            view
        })
        .collect();
    (views, hidden)
}

/// A filter value no option offers (typed into the URL), in words where it is about
/// choices: `ne.new` → "≠ New", `in.(new,contacted)` → "New, Contacted"; else as written.
fn describe(field: &Field, value: &str, formatter: &Formatter) -> String {
    let FieldKind::Choice { options } = &field.kind else {
        return value.to_owned();
    };
    let label = |key: &str| {
        options
            .iter()
            .find(|option| option.key == key)
            .map(|option| formatter.label(option.label.as_ref(), &option.key))
            .unwrap_or_else(|| key.to_owned())
    };
    match value.split_once('.') {
        Some(("ne", key)) => format!("≠ {}", label(key)),
        Some(("in", list)) => list
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split(',')
            .map(label)
            .collect::<Vec<_>>()
            .join(", "),
        _ => value.to_owned(),
    }
}

/// The distinct lookup or user values on this page, as `eq.<id>` options named by their
/// `_refs` titles (a picker that costs no query; see the module documentation).
fn add_references(
    options: &mut Vec<OptionView>,
    field: &str,
    records: &[Json],
    current: &str,
    me: &str,
) {
    let mut found: Vec<(String, String)> = Vec::new();
    for record in records {
        let Some(id) = record.get(field).and_then(Json::as_str) else {
            continue;
        };
        if id == me || found.iter().any(|(known, _)| known == id) {
            continue;
        }
        let title = record
            .get("_refs")
            .and_then(|refs| refs.get(field))
            .and_then(|reference| reference.get("title"))
            .and_then(Json::as_str)
            .unwrap_or(id);
        found.push((id.to_owned(), title.to_owned()));
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    for (id, title) in found {
        let value = format!("eq.{id}");
        options.push(OptionView {
            selected: value == current,
            value,
            label: title,
        });
    }
}

/// The URL parameters in their canonical API form: the form's range and preset controls
/// turned into `field=op.value` filters, and empty values (an "any" select, an unused
/// input) dropped. A URL already canonical comes back unchanged.
fn canonical_pairs(
    object: &Object,
    pairs: &[(String, String)],
    formatter: &Formatter,
) -> Vec<(String, String)> {
    let preset_of = |field: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == &format!("{field}.preset"))
            .map(|(_, value)| value.as_str())
            .filter(|preset| PRESETS.contains(preset))
    };
    let kind_of = |field: &str| {
        object
            .fields
            .get(field)
            .map(|field| field.kind.clone())
            .or_else(|| column_field(object, field, &[]).map(|field| field.kind))
    };
    let mut out = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        if value.trim().is_empty() {
            continue;
        }
        let sugar = key.rsplit_once('.').filter(|(field, control)| {
            !field.is_empty() && matches!(*control, "preset" | "from" | "to")
        });
        let Some((field, control)) = sugar else {
            out.push((key.clone(), value.clone()));
            continue;
        };
        let value = value.trim();
        let dates = kind_of(field).is_some_and(|kind| is_date(&kind));
        match (control, preset_of(field)) {
            ("preset", Some(preset)) => {
                for expanded in preset_values(preset, formatter) {
                    out.push((field.to_owned(), expanded));
                }
            }
            ("preset", None) | (_, Some(_)) => {}
            ("from", None) => out.push((field.to_owned(), format!("gte.{value}"))),
            (_, None) => match parse_date(value).filter(|_| dates) {
                // The custom range's last day is included: up to the next midnight.
                Some(day) => {
                    out.push((field.to_owned(), format!("lt.{}", day + Duration::days(1))))
                }
                None => out.push((field.to_owned(), format!("lte.{value}"))),
            },
        }
    }
    out
}

/// The filter values of a date preset, in the app's timezone. "Today" and "the last 7
/// days" stay relative (`@today`), so a bookmark keeps meaning today; "this week" and "this
/// month" are the current calendar dates, which the filter language has no words for.
fn preset_values(preset: &str, formatter: &Formatter) -> Vec<String> {
    let today = formatter.now.with_timezone(&formatter.tz).date_naive();
    let range = |from: NaiveDate, to: NaiveDate| vec![format!("gte.{from}"), format!("lt.{to}")];
    match preset {
        "today" => vec!["gte.@today".to_owned(), "lt.@today+1d".to_owned()],
        "last7" => vec!["gte.@today-6d".to_owned(), "lt.@today+1d".to_owned()],
        "week" => {
            let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
            range(monday, monday + Duration::days(7))
        }
        "month" => {
            let first = today.with_day(1).unwrap_or(today);
            let next = first
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(first);
            range(first, next)
        }
        _ => Vec::new(),
    }
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// The earlier cursors in `_back`, oldest first.
fn trail_of(pairs: &[(String, String)]) -> Vec<String> {
    pairs
        .iter()
        .find(|(key, _)| key == TRAIL)
        .map(|(_, trail)| {
            trail
                .split(',')
                .filter(|cursor| !cursor.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// `/app/{object}?<pairs>`.
fn list_url(object: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        format!("/app/{object}")
    } else {
        format!("/app/{object}?{}", encode_pairs(pairs))
    }
}

/// A query string that `parse_query` reads back as `pairs`. Filter values keep `+`, `@`,
/// `(`, `)`, `,`, `:` and `*` readable; in `q` a `+` would read as a space, so it is encoded.
fn encode_pairs(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key, false), encode(value, key != "q")))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str, plus_is_plus: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'@'
            | b'('
            | b')'
            | b','
            | b':'
            | b'*' => out.push(byte as char),
            b'+' if plus_is_plus => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_presets_are_calendar_ranges_in_the_apps_timezone() {
        // 01:00 on Tuesday 1 December in Shanghai is still 30 November in UTC.
        let formatter = Formatter {
            lang: "zh".into(),
            app_lang: "zh".into(),
            tz: chrono_tz::Asia::Shanghai,
            currency: "CNY".into(),
            now: "2026-11-30T17:00:00Z".parse().unwrap(),
        };
        assert_eq!(
            preset_values("week", &formatter),
            ["gte.2026-11-30", "lt.2026-12-07"]
        );
        assert_eq!(
            preset_values("month", &formatter),
            ["gte.2026-12-01", "lt.2027-01-01"]
        );
        assert_eq!(
            preset_values("today", &formatter),
            ["gte.@today", "lt.@today+1d"]
        );
        assert!(preset_values("custom", &formatter).is_empty());
    }

    #[test]
    fn encoded_pairs_read_back_as_the_same_pairs() {
        let pairs = vec![
            ("status".to_owned(), "eq.new".to_owned()),
            ("due_at".to_owned(), "lt.@today+1d".to_owned()),
            ("q".to_owned(), "张 三+1&x=y".to_owned()),
            ("name".to_owned(), "like.a b*".to_owned()),
        ];
        let query = encode_pairs(&pairs);
        assert!(query.contains("due_at=lt.@today+1d"), "{query}");
        assert_eq!(parse_query(&query).unwrap(), pairs);
    }
}
