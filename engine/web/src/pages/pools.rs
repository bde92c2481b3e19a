//! The lead pools' pages (docs/ui.md, "Pools"): `/app/pools` (the pools the user may use,
//! with counts), `/app/pools/{pool}` (the records waiting in the pool with their
//! `hide_until_claimed` fields masked as the runtime left them, a claim button per record,
//! and for the pool's managers an assign control per record and a bulk assign; the tab
//! `?held=true` lists the records held from the pool — the user's own, a manager's team's —
//! with the time left before each would return), and the pool part of a record page:
//! claim, release with a reason, assign, move into a pool, and the pool history.
//!
//! Every action posts a form and answers with a redirect and a notice, or with the page
//! again explaining the refusal in the user's language (a claim refused for a limit is a
//! 409, a release without a listed reason a 422 with the dialog open), so the pages work
//! without JavaScript. Who may see, claim, release, assign or move is the runtime's answer
//! (`keel_runtime::pools`); what this module offers is only a guess the runtime checks again.

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use keel_meta::{Field, FieldKind, Object, Pool};
use keel_runtime::actor::Actor;
use keel_runtime::pools::PoolRole;
use keel_runtime::records::access::Masking;
use keel_runtime::records::{ListRequest, MAX_PAGE_SIZE, RecordError};
use serde::Serialize;
use serde_json::Value as Json;

use super::record::record_title;
use super::{Formatter, Frame, PageError, PageForm, Viewer, form_urlencode, render_with_status};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Pinned, QueryPairs};

/// Records per page of a pool.
const PAGE_SIZE: u32 = 50;
/// How close a return must be for its badge to warn (a day).
const SOON_SECONDS: i64 = 86_400;
/// The codes of a refused claim that the pages explain in the user's language.
const REFUSALS: [&str; 4] = ["taken", "claim_limit", "daily_claim_limit", "cooldown"];

/// The routes of this module; [`super::routes`] merges them.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/app/pools", get(index))
        .route("/app/pools/{pool}", get(pool_page))
        .route("/app/pools/{pool}/assign", post(assign_many))
        .route("/app/pools/{pool}/{id}", get(pool_record))
        .route("/app/pools/{pool}/{id}/claim", post(claim))
        .route("/app/pools/{pool}/{id}/assign", post(assign_one))
        .route("/app/{object}/{id}/release", post(release))
        .route("/app/{object}/{id}/pool", post(move_into))
}

/// Whether `actor` may see `pool` (a member or manager role, or an admin): the runtime's
/// answer ([`Pools::role`]).
///
/// [`Pools::role`]: keel_runtime::pools::Pools::role
fn may_see(state: &AppState, actor: &Actor, pool: &Pool) -> bool {
    state.pools().role(actor, pool).is_some()
}

/// Whether `actor` manages `pool` (assigns, moves records in): its manager roles and admins.
fn is_manager(state: &AppState, actor: &Actor, pool: &Pool) -> bool {
    matches!(
        state.pools().role(actor, pool),
        Some(PoolRole::Manager | PoolRole::Admin)
    )
}

/// The pools `actor` may see, in file order.
pub fn visible_pools<'a>(state: &'a AppState, actor: &Actor) -> Vec<&'a Pool> {
    state
        .schema()
        .pools
        .values()
        .filter(|pool| may_see(state, actor, pool))
        .collect()
}

#[derive(Debug, Serialize)]
struct IndexPage {
    pools: Vec<PoolCard>,
}

#[derive(Debug, Serialize)]
struct PoolCard {
    name: String,
    label: String,
    object_label: String,
    url: String,
    count: String,
    /// Held by the user (a manager: by their team), when counted.
    held: Option<String>,
    manager: bool,
}

/// How many records wait in `pool`, counted up to one page of ids ("500+" beyond).
async fn count_waiting(state: &AppState, actor: &Actor, pool: &str) -> Result<String, PageError> {
    let page = state
        .pools()
        .list(
            actor,
            pool,
            ListRequest {
                limit: Some(MAX_PAGE_SIZE),
                fields: Some(vec!["id".to_owned()]),
                ..ListRequest::default()
            },
            false,
        )
        .await?;
    let count = super::format::number_text(&page.data.len().to_string());
    Ok(if page.next.is_some() {
        format!("{count}+")
    } else {
        count
    })
}

/// `GET /app/pools`: a card per pool the user may see, with what waits in it and what the
/// user holds from it.
async fn index(Pinned(state): Pinned, viewer: Viewer) -> Result<Response, PageError> {
    let schema = state.schema().clone();
    let frame = Frame::new(&state, &viewer).await?;
    let formatter = frame.formatter(&state);
    let mut pools = Vec::new();
    for pool in visible_pools(&state, &viewer.actor) {
        let waiting = count_waiting(&state, &viewer.actor, &pool.name).await?;
        let standing = state.pools().describe(&viewer.actor, &pool.name).await?;
        let held = standing["mine"]["held"].as_u64();
        pools.push(PoolCard {
            name: pool.name.clone(),
            label: formatter.label(pool.label.as_ref(), &pool.name),
            object_label: schema
                .objects
                .get(&pool.object)
                .map(|object| formatter.label(Some(&object.label), &object.name))
                .unwrap_or_else(|| pool.object.clone()),
            url: format!("/app/pools/{}", pool.name),
            count: waiting,
            held: held.map(|held| super::format::number_text(&held.to_string())),
            manager: is_manager(&state, &viewer.actor, pool),
        });
    }
    super::render(&state, &frame, "pools/index.html", IndexPage { pools })
}

/// A pool page's query: the tab, the notice after an action, and the list's own
/// parameters (`q`, `after`, filters in the API's syntax such as `status=eq.new`).
#[derive(Debug, Default)]
pub struct PoolQuery {
    held: bool,
    done: Option<String>,
    count: Option<String>,
    /// The list's parameters, empty values left out.
    list: Vec<(String, String)>,
}

impl PoolQuery {
    fn from_pairs(pairs: Vec<(String, String)>) -> PoolQuery {
        let mut query = PoolQuery::default();
        for (key, value) in pairs {
            match key.as_str() {
                "held" => query.held = value == "true",
                "done" => query.done = Some(value),
                "count" => query.count = Some(value),
                _ if value.trim().is_empty() => {}
                _ => query.list.push((key, value)),
            }
        }
        query
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Debug, Serialize)]
struct PoolPage {
    name: String,
    label: String,
    url: String,
    /// `pool` (waiting records) or `held`.
    tab: &'static str,
    /// The tab's URL without a search.
    tab_url: String,
    manager: bool,
    claim_limit: u32,
    daily_limit: u32,
    q: String,
    /// A select per choice column (`status=eq.new`), as on an object's list.
    filters: Vec<FilterView>,
    /// Whether a search or a filter narrows the list.
    filtered: bool,
    count: Option<String>,
    columns: Vec<ColumnView>,
    rows: Vec<RowView>,
    users: Vec<UserOption>,
    done: Option<String>,
    refusal: Option<Refusal>,
    prev_url: Option<String>,
    next_url: Option<String>,
}

#[derive(Debug, Serialize)]
struct FilterView {
    name: String,
    label: String,
    options: Vec<OptionView>,
}

#[derive(Debug, Serialize)]
struct OptionView {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Debug, Serialize)]
struct ColumnView {
    name: String,
    label: String,
    number: bool,
}

#[derive(Debug, Serialize)]
struct RowView {
    id: String,
    title: String,
    /// The record page, or the pool's view of a record in it (a record in the pool is in
    /// nobody's read scope but an all-seeing role's).
    url: String,
    cells: Vec<CellView>,
    /// Held records: who holds it, and when it would return.
    owner: String,
    time_left: String,
    return_at: Option<String>,
    return_text: String,
    soon: bool,
}

#[derive(Debug, Serialize)]
struct CellView {
    label: String,
    text: String,
    href: Option<String>,
    class: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserOption {
    id: String,
    name: String,
}

/// Why the pool refused an action, in the user's language.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// `taken`, `claim_limit`, `daily_claim_limit`, `cooldown`, or `other`.
    code: String,
    /// The status of the page that explains it (409, or 422/403 for input or a role).
    #[serde(skip)]
    status: StatusCode,
    title: String,
    message: String,
}

impl Refusal {
    /// The status of the page that explains the refusal.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// `GET /app/pools/{pool}?q=&held=true&after=`.
async fn pool_page(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path(pool): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, PageError> {
    show_pool(&state, &viewer, &pool, PoolQuery::from_pairs(pairs), None).await
}

/// The pool page, with `refusal` when an action on it was just refused.
async fn show_pool(
    state: &AppState,
    viewer: &Viewer,
    pool_name: &str,
    query: PoolQuery,
    refusal: Option<Refusal>,
) -> Result<Response, PageError> {
    let schema = state.schema().clone();
    let Some(pool) = schema
        .pools
        .get(pool_name)
        .filter(|pool| may_see(state, &viewer.actor, pool))
    else {
        return Err(RecordError::NotFound.into());
    };
    let Some(object) = schema.objects.get(&pool.object) else {
        return Err(RecordError::NotFound.into());
    };
    let held = query.held;
    let q = query.get("q").map(str::trim).map(str::to_owned);
    let after = query.get("after").map(str::to_owned);
    let mut request = crate::query::list_request(&query.list)?;
    request.limit = request.limit.or(Some(PAGE_SIZE));
    let page = state
        .pools()
        .list(&viewer.actor, &pool.name, request, held)
        .await?;
    let frame = Frame::new(state, viewer).await?;
    let formatter = frame.formatter(state);
    let actor = &viewer.actor;
    let readable = state.records().readable_fields(actor, &object.name)?;
    let masking = Masking::new(&schema, actor, object);
    let fields = columns(object, pool, &readable);
    let columns: Vec<ColumnView> = fields
        .iter()
        .map(|field| ColumnView {
            name: field.name.clone(),
            label: column_label(state, &formatter, field),
            number: matches!(
                field.kind,
                FieldKind::Integer
                    | FieldKind::Decimal { .. }
                    | FieldKind::Money { .. }
                    | FieldKind::Percent { .. }
            ),
        })
        .collect();
    let owners: Vec<String> = page
        .data
        .iter()
        .filter_map(|record| record.get("owner").and_then(Json::as_str))
        .map(str::to_owned)
        .collect();
    let names = state.records().user_names(&owners).await?;
    let catalogs = state.ui().catalogs();
    let sees_all = keel_runtime::records::access::scope(
        &schema,
        actor,
        &object.name,
        keel_runtime::records::access::Action::Read,
    ) == keel_meta::Scope::All;
    let rows = page
        .data
        .iter()
        .map(|record| {
            let id = text_of(record, "id");
            let owner = record.get("owner").and_then(Json::as_str);
            let cells = fields
                .iter()
                .zip(&columns)
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
            let left = time_left(&formatter, catalogs, record);
            RowView {
                url: if held || sees_all {
                    format!("/app/{}/{id}", object.name)
                } else {
                    format!("/app/pools/{}/{id}", pool.name)
                },
                title: record_title(object, record),
                owner: owner
                    .map(|owner| {
                        names
                            .get(owner)
                            .cloned()
                            .unwrap_or_else(|| owner.to_owned())
                    })
                    .unwrap_or_default(),
                time_left: left.text,
                return_at: left.at,
                return_text: left.at_text,
                soon: left.soon,
                cells,
                id,
            }
        })
        .collect();
    let filters: Vec<FilterView> = fields
        .iter()
        .filter(|field| !masking.hides_anywhere(&field.name))
        .filter_map(|field| match &field.kind {
            FieldKind::Choice { options } => {
                let current = query.get(&field.name).unwrap_or("");
                let mut choices = vec![OptionView {
                    value: String::new(),
                    label: catalogs.text(&frame.lang, "pools.any", |_| None),
                    selected: current.is_empty(),
                }];
                choices.extend(options.iter().map(|option| {
                    let value = format!("eq.{}", option.key);
                    OptionView {
                        selected: current == value,
                        label: formatter.label(option.label.as_ref(), &option.key),
                        value,
                    }
                }));
                Some(FilterView {
                    name: field.name.clone(),
                    label: formatter.field_label(field),
                    options: choices,
                })
            }
            _ => None,
        })
        .collect();
    let filtered = query.list.iter().any(|(key, _)| key != "after");
    let manager = is_manager(state, actor, pool);
    let users = if manager && !held {
        user_options(state, pool).await?
    } else {
        Vec::new()
    };
    let url = format!("/app/pools/{}", pool.name);
    let tab_url = if held {
        format!("{url}?held=true")
    } else {
        url.clone()
    };
    let mut base: Vec<(&str, String)> = Vec::new();
    if held {
        base.push(("held", "true".to_owned()));
    }
    for (key, value) in query.list.iter().filter(|(key, _)| key != "after") {
        base.push((key.as_str(), value.clone()));
    }
    let link = |extra: Option<(&str, &str)>| {
        let mut pairs: Vec<String> = base
            .iter()
            .map(|(key, value)| format!("{key}={}", form_urlencode(value)))
            .collect();
        if let Some((key, value)) = extra {
            pairs.push(format!("{key}={}", form_urlencode(value)));
        }
        if pairs.is_empty() {
            url.clone()
        } else {
            format!("{url}?{}", pairs.join("&"))
        }
    };
    let next_url = page.next.as_deref().map(|next| link(Some(("after", next))));
    let prev_url = after.as_ref().map(|_| link(None));
    let done = query.done.as_deref().and_then(|done| {
        let key = match done {
            "assigned" => "pools.done.assigned",
            "bulk_assigned" => "pools.done.bulk_assigned",
            "released" => "pools.done.released",
            "moved" => "pools.done.moved",
            _ => return None,
        };
        let count = query.count.clone().unwrap_or_default();
        Some(catalogs.text(&frame.lang, key, |name| {
            (name == "count").then(|| count.clone())
        }))
    });
    let status = refusal
        .as_ref()
        .map_or(StatusCode::OK, |refusal| refusal.status);
    let view = PoolPage {
        name: pool.name.clone(),
        label: formatter.label(pool.label.as_ref(), &pool.name),
        tab: if held { "held" } else { "pool" },
        tab_url,
        manager,
        claim_limit: pool.claim_limit,
        daily_limit: pool.daily_claim_limit,
        q: q.unwrap_or_default(),
        filters,
        filtered,
        count: (after.is_none() && page.next.is_none())
            .then(|| super::format::number_text(&page.data.len().to_string())),
        columns,
        rows,
        users,
        done,
        refusal,
        prev_url,
        next_url,
        url,
    };
    render_with_status(state, &frame, "pools/pool.html", view, status)
}

/// The columns of a pool's table: the object's list columns the user may read, with every
/// `hide_until_claimed` field among them so a masked value shows that there is one. The
/// owner is left out (nobody holds a waiting record; the held tab has its own column).
fn columns(object: &Object, pool: &Pool, readable: &[String]) -> Vec<Field> {
    let mut names: Vec<&str> = if object.list.columns.is_empty() {
        vec![object.title.as_str()]
    } else {
        object.list.columns.iter().map(String::as_str).collect()
    };
    for hidden in &pool.hide_until_claimed {
        if !names.contains(&hidden.as_str()) {
            names.push(hidden);
        }
    }
    names
        .into_iter()
        .filter(|name| *name != "owner")
        .filter_map(|name| {
            object
                .fields
                .get(name)
                .filter(|field| readable.contains(&field.name))
                .cloned()
        })
        .collect()
}

fn column_label(state: &AppState, formatter: &Formatter, field: &Field) -> String {
    if field.label.is_none() && keel_meta::system::is_system_field(&field.name) {
        return state.ui().catalogs().text(
            &formatter.lang,
            &format!("list.system.{}", field.name),
            |_| None,
        );
    }
    formatter.field_label(field)
}

/// When a held record would return, as its badge shows it.
struct TimeLeft {
    text: String,
    at: Option<String>,
    at_text: String,
    soon: bool,
}

/// The time left before `record` returns to its pool (`_pool.return_at`, which the runtime
/// adds to held records), as "2 天后回收".
fn time_left(formatter: &Formatter, catalogs: &super::Catalogs, record: &Json) -> TimeLeft {
    let return_at = record
        .get("_pool")
        .and_then(|pool| pool.get("return_at"))
        .and_then(Json::as_str);
    let Some(at) = return_at else {
        return TimeLeft {
            text: catalogs.text(&formatter.lang, "pools.never_returns", |_| None),
            at: None,
            at_text: String::new(),
            soon: false,
        };
    };
    let instant = chrono::DateTime::parse_from_rfc3339(at).ok();
    let seconds = instant.map(|instant| (instant.to_utc() - formatter.now).num_seconds());
    let text = match seconds {
        Some(seconds) if seconds <= 0 => {
            catalogs.text(&formatter.lang, "pools.returns_due", |_| None)
        }
        _ => catalogs.text(&formatter.lang, "pools.returns_in", |name| {
            (name == "left").then(|| formatter.ago(at))
        }),
    };
    TimeLeft {
        text,
        at: Some(at.to_owned()),
        at_text: formatter.datetime(at),
        soon: seconds.is_some_and(|seconds| seconds < SOON_SECONDS),
    }
}

/// The people a record of `pool` can be assigned to: every active user whose roles let them
/// see the pool (as the runtime checks an assignment), by name.
async fn user_options(state: &AppState, pool: &Pool) -> Result<Vec<UserOption>, PageError> {
    let schema = state.schema();
    let mut users: Vec<UserOption> = keel_store::users::list(state.db())
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|user| user.active)
        .filter(|user| {
            user.roles.iter().any(|role| {
                pool.members.contains(role)
                    || pool.managers.contains(role)
                    || schema.roles.roles.get(role).is_some_and(|role| role.admin)
            })
        })
        .map(|user| UserOption {
            name: user.display_name.unwrap_or_else(|| user.username.clone()),
            id: user.id,
        })
        .collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(users)
}

/// A refused pool action the page explains (a 409 with one of [`REFUSALS`]); any other
/// failure is not the user's to fix here and becomes the error page.
fn refusal(state: &AppState, lang: &str, error: ApiError) -> Result<Refusal, PageError> {
    if error.status() != StatusCode::CONFLICT {
        return Err(PageError::Api(error));
    }
    let code = error
        .errors()
        .iter()
        .map(|error| error.code.as_str())
        .find(|code| REFUSALS.contains(code))
        .unwrap_or("other")
        .to_owned();
    let catalogs = state.ui().catalogs();
    Ok(Refusal {
        status: StatusCode::CONFLICT,
        title: catalogs.text(lang, "pools.refused.title", |_| None),
        message: catalogs.text(lang, &format!("pools.refused.{code}"), |_| None),
        code,
    })
}

#[derive(Debug, Serialize)]
struct PoolRecordPage {
    object: String,
    object_label: String,
    id: String,
    title: String,
    pool_label: String,
    pool_url: String,
    fields: Vec<FieldView>,
    pool: Option<RecordPool>,
}

#[derive(Debug, Serialize)]
struct FieldView {
    name: String,
    label: String,
    shown: super::Shown,
    masked: bool,
}

/// `GET /app/pools/{pool}/{id}`: a record waiting in the pool as the pool shows it (its
/// readable fields, `hide_until_claimed` ones masked), with claim, assign and its pool
/// history: a member cannot open the record page of a record nobody holds. A record the
/// user may open is its record page.
async fn pool_record(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path((pool_name, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let schema = state.schema().clone();
    let Some(pool) = schema
        .pools
        .get(&pool_name)
        .filter(|pool| may_see(&state, &viewer.actor, pool))
    else {
        return Err(RecordError::NotFound.into());
    };
    let Some(object) = schema.objects.get(&pool.object) else {
        return Err(RecordError::NotFound.into());
    };
    let actor = &viewer.actor;
    if state.records().get(actor, &object.name, &id).await.is_ok() {
        return Ok(
            Redirect::to(&format!("/app/{}/{}", object.name, form_urlencode(&id))).into_response(),
        );
    }
    let record = state.pools().record(actor, &pool.name, &id).await?;
    let frame = Frame::new(&state, &viewer).await?;
    let formatter = frame.formatter(&state);
    let readable = state.records().readable_fields(actor, &object.name)?;
    let masking = Masking::new(&schema, actor, object);
    let owner = record.get("owner").and_then(Json::as_str);
    let fields = object
        .fields
        .values()
        .filter(|field| readable.contains(&field.name))
        .map(|field| {
            let masked = masking.hides(&field.name, owner);
            FieldView {
                name: field.name.clone(),
                label: formatter.field_label(field),
                shown: formatter.show(field, &record, masked),
                masked,
            }
        })
        .collect();
    let part = record_part(
        &state,
        &viewer,
        object,
        &record,
        &formatter,
        PoolNotice::None,
    )
    .await?;
    let page = PoolRecordPage {
        object: object.name.clone(),
        object_label: formatter.label(Some(&object.label), &object.name),
        title: record_title(object, &record),
        pool_label: formatter.label(pool.label.as_ref(), &pool.name),
        pool_url: format!("/app/pools/{}", pool.name),
        fields,
        pool: part,
        id,
    };
    super::render(&state, &frame, "pools/record.html", page)
}

/// `POST /app/pools/{pool}/{id}/claim`: the record is the user's → its page, with a notice;
/// refused → the pool page again, saying why (409).
async fn claim(
    Pinned(state): Pinned,
    Path((pool, id)): Path<(String, String)>,
    form: PageForm,
) -> Result<Response, PageError> {
    let actor = &form.viewer.actor;
    match state.pools().claim(actor, &pool, &id).await {
        Ok(record) => {
            let object = state
                .schema()
                .pools
                .get(&pool)
                .map(|pool| pool.object.clone())
                .unwrap_or_default();
            let id = record
                .get("id")
                .and_then(Json::as_str)
                .unwrap_or(&id)
                .to_owned();
            Ok(Redirect::to(&format!(
                "/app/{object}/{}?pool=claimed",
                form_urlencode(&id)
            ))
            .into_response())
        }
        Err(error) => {
            let refused = refusal(&state, &form.viewer.lang, ApiError::from(error))?;
            show_pool(
                &state,
                &form.viewer,
                &pool,
                PoolQuery::default(),
                Some(refused),
            )
            .await
        }
    }
}

/// `POST /app/pools/{pool}/{id}/assign` (`user`, and `back=record` from a record page).
async fn assign_one(
    Pinned(state): Pinned,
    Path((pool, id)): Path<(String, String)>,
    form: PageForm,
) -> Result<Response, PageError> {
    let user = form.get("user").unwrap_or("").trim().to_owned();
    let to_record = form.get("back") == Some("record");
    let object = state
        .schema()
        .pools
        .get(&pool)
        .map(|pool| pool.object.clone())
        .unwrap_or_default();
    let outcome = if user.is_empty() {
        Err(missing(
            &state,
            &form.viewer.lang,
            "user",
            "pools.error.no_user",
        ))
    } else {
        state
            .pools()
            .assign(
                &form.viewer.actor,
                &pool,
                std::slice::from_ref(&id),
                &user,
                None,
            )
            .await
            .map(|events| events.len())
            .map_err(ApiError::from)
    };
    match outcome {
        Ok(_) if to_record => Ok(Redirect::to(&format!(
            "/app/{object}/{}?pool=assigned",
            form_urlencode(&id)
        ))
        .into_response()),
        Ok(_) => Ok(Redirect::to(&format!("/app/pools/{pool}?done=assigned")).into_response()),
        Err(error) if to_record => {
            refused_on_record(&state, &form.viewer, &object, &id, error).await
        }
        Err(error) => refused_on_pool(&state, &form.viewer, &pool, error).await,
    }
}

/// `POST /app/pools/{pool}/assign` (`ids` ticked, `user`): all or nothing.
async fn assign_many(
    Pinned(state): Pinned,
    Path(pool): Path<String>,
    form: PageForm,
) -> Result<Response, PageError> {
    let user = form.get("user").unwrap_or("").trim().to_owned();
    let ids: Vec<String> = form
        .all("ids")
        .into_iter()
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    let lang = form.viewer.lang.clone();
    let outcome = if ids.is_empty() {
        Err(missing(&state, &lang, "ids", "pools.error.no_ids"))
    } else if user.is_empty() {
        Err(missing(&state, &lang, "user", "pools.error.no_user"))
    } else {
        state
            .pools()
            .assign(&form.viewer.actor, &pool, &ids, &user, None)
            .await
            .map(|events| events.len())
            .map_err(ApiError::from)
    };
    match outcome {
        Ok(count) => Ok(Redirect::to(&format!(
            "/app/pools/{pool}?done=bulk_assigned&count={count}"
        ))
        .into_response()),
        Err(error) => refused_on_pool(&state, &form.viewer, &pool, error).await,
    }
}

/// A form value the user left out, as the runtime would refuse it.
fn missing(state: &AppState, lang: &str, field: &str, key: &str) -> ApiError {
    let message = state.ui().catalogs().text(lang, key, |_| None);
    ApiError::new(crate::error::ErrorCode::InvalidRequest, message.clone()).with_error(
        crate::error::FieldError {
            field: field.to_owned(),
            code: "required".to_owned(),
            message,
        },
    )
}

/// A refusal of an assignment or a move to show on the page: a conflict as
/// [`refusal`] explains it, bad input (an unknown user, no record ticked) with the
/// runtime's or the form's message; anything else is the error page.
/// The pool page again, with a refused move explained at its top.
async fn refused_on_pool(
    state: &AppState,
    viewer: &Viewer,
    pool: &str,
    error: ApiError,
) -> Result<Response, PageError> {
    let refused = explain(state, &viewer.lang, error)?;
    show_pool(state, viewer, pool, PoolQuery::default(), Some(refused)).await
}

/// The record page again, with a refused move explained in its pool part.
async fn refused_on_record(
    state: &AppState,
    viewer: &Viewer,
    object: &str,
    id: &str,
    error: ApiError,
) -> Result<Response, PageError> {
    let refused = explain(state, &viewer.lang, error)?;
    super::record::show_with_pool(state, viewer, object, id, PoolNotice::Refused(refused)).await
}

fn explain(state: &AppState, lang: &str, error: ApiError) -> Result<Refusal, PageError> {
    match error.status() {
        StatusCode::CONFLICT => refusal(state, lang, error),
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN => {
            let message = error
                .errors()
                .first()
                .map(|error| error.message.clone())
                .unwrap_or_else(|| error.detail().to_owned());
            Ok(Refusal {
                status: error.status(),
                code: "other".to_owned(),
                title: state
                    .ui()
                    .catalogs()
                    .text(lang, "pools.refused.other", |_| None),
                message,
            })
        }
        _ => Err(PageError::Api(error)),
    }
}

/// What the record page's pool part shows on top: a notice after an action, or why one was
/// refused (the release dialog stays open on a bad reason, with the user's input).
#[derive(Debug, Clone, Default)]
pub enum PoolNotice {
    #[default]
    None,
    Refused(Refusal),
    BadRelease {
        reason: String,
        note: String,
        message: String,
    },
}

/// `POST /app/{object}/{id}/release` (`reason`, `note`): back to the pool → the record
/// page (or the pool when the user may no longer see it); a reason not listed → the record
/// page again with the dialog open and the error under the reason (422).
async fn release(
    Pinned(state): Pinned,
    Path((object, id)): Path<(String, String)>,
    form: PageForm,
) -> Result<Response, PageError> {
    let actor = &form.viewer.actor;
    let reason = form.get("reason").unwrap_or("").trim().to_owned();
    let note = form.get("note").unwrap_or("").trim().to_owned();
    let record = state.records().get(actor, &object, &id).await?;
    let Some(pool) = record.get("pool").and_then(Json::as_str).map(str::to_owned) else {
        return Err(RecordError::NotFound.into());
    };
    let allowed = state
        .schema()
        .pools
        .get(&pool)
        .is_some_and(|pool| pool.release_reasons.contains(&reason));
    let outcome = if allowed {
        let note = (!note.is_empty()).then_some(note.as_str());
        state
            .pools()
            .release(actor, &pool, &id, Some(&reason), note)
            .await
            .map_err(ApiError::from)
    } else {
        Err(missing(
            &state,
            &form.viewer.lang,
            "reason",
            "pools.error.reason",
        ))
    };
    match outcome {
        Ok(_) => {
            // A released record may be out of the user's sight now: back to the pool then.
            let url = if state.records().get(actor, &object, &id).await.is_ok() {
                format!("/app/{object}/{}?pool=released", form_urlencode(&id))
            } else {
                format!("/app/pools/{pool}?done=released")
            };
            Ok(Redirect::to(&url).into_response())
        }
        Err(error) if error.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            let message = if allowed {
                error
                    .errors()
                    .first()
                    .map(|error| error.message.clone())
                    .unwrap_or_else(|| error.detail().to_owned())
            } else {
                error.detail().to_owned()
            };
            super::record::show_with_pool(
                &state,
                &form.viewer,
                &object,
                &id,
                PoolNotice::BadRelease {
                    reason,
                    note,
                    message,
                },
            )
            .await
        }
        Err(error) => refused_on_record(&state, &form.viewer, &object, &id, error).await,
    }
}

/// `POST /app/{object}/{id}/pool` (`pool`): a manager moves the record into a pool.
async fn move_into(
    Pinned(state): Pinned,
    Path((object, id)): Path<(String, String)>,
    form: PageForm,
) -> Result<Response, PageError> {
    let pool = form.get("pool").unwrap_or("").trim().to_owned();
    let outcome = if pool.is_empty() {
        Err(missing(
            &state,
            &form.viewer.lang,
            "pool",
            "pools.error.pool",
        ))
    } else {
        state
            .pools()
            .move_into(&form.viewer.actor, &pool, &id, None)
            .await
            .map_err(ApiError::from)
    };
    match outcome {
        Ok(_) => {
            let url = if state
                .records()
                .get(&form.viewer.actor, &object, &id)
                .await
                .is_ok()
            {
                format!("/app/{object}/{}?pool=moved", form_urlencode(&id))
            } else {
                format!("/app/pools/{pool}?done=moved")
            };
            Ok(Redirect::to(&url).into_response())
        }
        Err(error) => refused_on_record(&state, &form.viewer, &object, &id, error).await,
    }
}

/// The pool part of a record page.
#[derive(Debug, Serialize)]
pub struct RecordPool {
    /// The pool the record sits in or was claimed from (`None`: it is in no pool).
    name: Option<String>,
    label: String,
    in_pool: bool,
    may_claim: bool,
    may_release: bool,
    may_assign: bool,
    users: Vec<UserOption>,
    reasons: Vec<Choice>,
    /// The release dialog: open after a refused release, with the user's input.
    release_open: bool,
    release_error: Option<String>,
    reason: String,
    note: String,
    /// Pools a manager may move the held record into.
    move_pools: Vec<PoolOption>,
    time_left: Option<String>,
    return_at: Option<String>,
    return_text: String,
    soon: bool,
    refusal: Option<Refusal>,
    history: Vec<PoolEvent>,
}

#[derive(Debug, Serialize)]
struct Choice {
    key: String,
    label: String,
}

#[derive(Debug, Serialize)]
struct PoolOption {
    name: String,
    label: String,
}

#[derive(Debug, Serialize)]
struct PoolEvent {
    at: String,
    at_text: String,
    ago: String,
    /// Who did it (empty: Keel itself, the auto-return).
    who: String,
    /// `claim`, `release`, `assign`, `return`, `move` or `warn`.
    action: String,
    /// The new owner of an assignment.
    to: String,
    pool: String,
    reason: String,
    note: String,
}

/// The pool part of the record page of `record` (an object of `object`), or `None` when no
/// pool holds records of the object or the user may see none of them.
pub async fn record_part(
    state: &AppState,
    viewer: &Viewer,
    object: &Object,
    record: &Json,
    formatter: &Formatter,
    notice: PoolNotice,
) -> Result<Option<RecordPool>, PageError> {
    let schema = state.schema().clone();
    let actor = &viewer.actor;
    let pools: Vec<&Pool> = visible_pools(state, actor)
        .into_iter()
        .filter(|pool| pool.object == object.name)
        .collect();
    if pools.is_empty() {
        return Ok(None);
    }
    let id = text_of(record, "id");
    let owner = record.get("owner").and_then(Json::as_str);
    let current = record
        .get("pool")
        .and_then(Json::as_str)
        .and_then(|name| schema.pools.get(name));
    let in_pool = current.is_some() && owner.is_none();
    // What the user may do is the runtime's answer; the calls check again.
    let actions = state.pools().actions(actor, &object.name, record);
    let (may_claim, may_release, may_assign) = (actions.claim, actions.release, actions.assign);
    let move_pools: Vec<PoolOption> = if in_pool {
        Vec::new()
    } else {
        actions
            .move_into
            .iter()
            .filter_map(|name| schema.pools.get(name))
            .map(|pool| PoolOption {
                name: pool.name.clone(),
                label: formatter.label(pool.label.as_ref(), &pool.name),
            })
            .collect()
    };
    let catalogs = state.ui().catalogs();
    let reasons = actions
        .release_reasons
        .iter()
        .map(|reason| Choice {
            label: reason_label(catalogs, &formatter.lang, reason),
            key: reason.clone(),
        })
        .collect();
    let users = match current {
        Some(pool) if may_assign => user_options(state, pool).await?,
        _ => Vec::new(),
    };
    let left = match current {
        Some(pool) if !in_pool => held_timing(state, actor, pool, &id)
            .await?
            .map(|held| time_left(formatter, catalogs, &held)),
        _ => None,
    };
    let history = history(state, actor, object, &id, formatter).await?;
    let (refusal, release_open, release_error, reason, note) = match notice {
        PoolNotice::None => (None, false, None, String::new(), String::new()),
        PoolNotice::Refused(refusal) => (Some(refusal), false, None, String::new(), String::new()),
        PoolNotice::BadRelease {
            reason,
            note,
            message,
        } => (None, true, Some(message), reason, note),
    };
    Ok(Some(RecordPool {
        name: current.map(|pool| pool.name.clone()),
        label: current
            .map(|pool| formatter.label(pool.label.as_ref(), &pool.name))
            .unwrap_or_default(),
        in_pool,
        may_claim,
        may_release,
        may_assign,
        users,
        reasons,
        release_open,
        release_error,
        reason,
        note,
        move_pools,
        time_left: left.as_ref().map(|left| left.text.clone()),
        return_at: left.as_ref().and_then(|left| left.at.clone()),
        return_text: left
            .as_ref()
            .map(|left| left.at_text.clone())
            .unwrap_or_default(),
        soon: left.as_ref().is_some_and(|left| left.soon),
        refusal,
        history,
    }))
}

/// The held record `id` as the pool's "held" list shows it to `actor` (with `_pool`, when it
/// would return), or `None` when it is not among the records they follow there.
async fn held_timing(
    state: &AppState,
    actor: &Actor,
    pool: &Pool,
    id: &str,
) -> Result<Option<Json>, PageError> {
    let Ok(filter) = keel_meta::Filter::from_query_param("id", &format!("eq.{id}")) else {
        return Ok(None);
    };
    let request = ListRequest {
        filter: Some(filter),
        limit: Some(1),
        fields: Some(vec!["id".to_owned()]),
        ..ListRequest::default()
    };
    let page = state.pools().list(actor, &pool.name, request, true).await?;
    Ok(page.data.into_iter().next())
}

/// A release reason's label: the catalog's for the usual ones, else the key itself.
fn reason_label(catalogs: &super::Catalogs, lang: &str, reason: &str) -> String {
    let key = format!("pools.reason.{reason}");
    if catalogs.has(&key) {
        catalogs.text(lang, &key, |_| None)
    } else {
        reason.to_owned()
    }
}

/// The record's pool history, newest first, with people by name (`_refs`) and reasons
/// translated.
async fn history(
    state: &AppState,
    actor: &Actor,
    object: &Object,
    id: &str,
    formatter: &Formatter,
) -> Result<Vec<PoolEvent>, PageError> {
    let events = state.pools().history(actor, &object.name, id).await?;
    let schema = state.schema();
    let catalogs = state.ui().catalogs();
    let name = |event: &Json, key: &str| match event.get(key).and_then(Json::as_str) {
        None => String::new(),
        Some("system") => catalogs.text(&formatter.lang, "pools.record.system", |_| None),
        Some(user) => event
            .get("_refs")
            .and_then(|refs| refs.get(key))
            .and_then(|reference| reference.get("title"))
            .and_then(Json::as_str)
            .unwrap_or(user)
            .to_owned(),
    };
    // Newest first, like the record's history.
    Ok(events
        .iter()
        .rev()
        .map(|event| {
            let at = text_of(event, "at");
            let pool = text_of(event, "pool");
            let action = text_of(event, "action");
            PoolEvent {
                at_text: formatter.datetime(&at),
                ago: formatter.ago(&at),
                who: name(event, "actor"),
                to: if action == "assign" {
                    name(event, "to_user")
                } else {
                    String::new()
                },
                reason: event
                    .get("reason")
                    .and_then(Json::as_str)
                    .map(|reason| reason_label(catalogs, &formatter.lang, reason))
                    .unwrap_or_default(),
                note: text_of(event, "note"),
                pool: schema
                    .pools
                    .get(&pool)
                    .map(|found| formatter.label(found.label.as_ref(), &found.name))
                    .unwrap_or(pool),
                action,
                at,
            }
        })
        .collect())
}

/// A string member of a JSON object, or empty.
fn text_of(value: &Json, key: &str) -> String {
    value
        .get(key)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned()
}
