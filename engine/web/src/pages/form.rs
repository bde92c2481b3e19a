//! The record forms `/app/{object}/new` and `/app/{object}/{id}/edit` (docs/ui.md,
//! "Forms"): one native widget per field type, saved through `Records::create` and
//! `Records::update` exactly as the API saves.
//!
//! What a form shows is what the API would: a field the user may not see is left out; one
//! they may only read, a computed one (formula, autonumber), and one the API shows them
//! masked are text, not inputs, so a mask is never sent back over the real value. Values
//! travel as the text of their inputs: [`form_texts`] turns a record's JSON into that text
//! (a date and time in the app's timezone, for `datetime-local`), and [`input_json`] turns
//! what came back into the typed JSON `Records` reads, leaving every check to it. An edit
//! saves only the fields whose text changed, so an input's own precision (a time to the
//! minute) never rewrites a stored value. Users who may assign records also choose the
//! owner; lookups are selects of the target's first records (form.js adds a search), and
//! fields of a duplicate key are checked while typing by form.js (查重).
//!
//! A refused save shows the form again with the user's input, each error under its field in
//! the user's language and a summary at the top. The edit form carries the version it was
//! loaded at (`_version`) and saves with it as the API's `If-Match`; a stale save shows who
//! changed what since, keeps the user's input (taking the newer values of the fields the user
//! left alone), and offers to apply it on top of the new version. Nothing here decides a
//! permission: the field access and masking come from the runtime's own rules.

use std::collections::HashMap;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use keel_meta::{Field, FieldAccess, FieldKind, Object, Scope};
use keel_runtime::actor::Actor;
use keel_runtime::auth::UserChoice;
use keel_runtime::records::access::{self, Action, Masking};
use keel_runtime::records::{Input, ListRequest, RecordError};
use serde::Serialize;
use serde_json::{Value as Json, json};

use super::{Formatter, Frame, PageError, PageForm, Shown, Viewer, render_with_status};
use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::extract::Pinned;

/// How many records a lookup's select offers before the page falls back to typing (form.js
/// then searches the target as the user types).
pub const LOOKUP_CHOICES: u32 = 100;

/// The routes of this module; [`super::routes`] merges them.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/app/{object}/new", get(new_form).post(create))
        .route("/app/{object}/{id}/edit", get(edit_form).post(update))
}

/// The texts of a form's fields, as their inputs hold them (a multi-choice has several).
type Texts = HashMap<String, Vec<String>>;

/// `GET /app/{object}/new`: an empty form with the fields' defaults, and any field named in
/// the query string prefilled (`/app/contact/new?account=<id>` from a related list).
async fn new_form(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path(object): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, PageError> {
    // A query string that does not decode prefills nothing; the form still works.
    let query = query.map(|Query(pairs)| pairs).unwrap_or_default();
    let object = creatable(&state, &viewer.actor, &object)?;
    let tz = app_timezone(&state);
    let mut texts = Texts::new();
    for (name, value) in state.records().defaults(&viewer.actor, &object.name)? {
        if let Some(field) = object.field(&name) {
            texts.insert(name, form_texts(field, &value, tz));
        }
    }
    let editable = editable_fields(&state, &viewer.actor, object, None);
    let mut prefilled = Texts::new();
    for (name, value) in query {
        if editable.iter().any(|field| field.name == name) {
            prefilled.entry(name).or_default().push(value);
        }
    }
    texts.extend(prefilled);
    if may_assign(&state, &viewer.actor, object) {
        texts.insert(OWNER.to_owned(), vec![viewer.actor.id.clone()]);
    }
    let form = FormState {
        texts,
        ..FormState::default()
    };
    show(&state, &viewer, object, None, form, StatusCode::OK).await
}

/// `POST /app/{object}/new`: creates the record → 303 to it; a refusal shows the form again.
async fn create(
    Pinned(state): Pinned,
    Path(object): Path<String>,
    form: PageForm,
) -> Result<Response, PageError> {
    let viewer = form.viewer.clone();
    let object = creatable(&state, &viewer.actor, &object)?;
    let editable = editable_fields(&state, &viewer.actor, object, None);
    let assign = may_assign(&state, &viewer.actor, object);
    let (input, texts) = read_form(&editable, assign, &form, app_timezone(&state));
    match state
        .records()
        .create(&viewer.actor, &object.name, input)
        .await
    {
        Ok(saved) => Ok(to_record(&object.name, &saved.record)),
        Err(error) => {
            let (status, errors) = refusal(error)?;
            let form = FormState {
                texts,
                errors: Some(errors),
                ..FormState::default()
            };
            show(&state, &viewer, object, None, form, status).await
        }
    }
}

/// `GET /app/{object}/{id}/edit`: the record's current values, at its current version.
async fn edit_form(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path((object, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let object = editable_object(&state, &viewer.actor, &object)?;
    let record = state
        .records()
        .get(&viewer.actor, &object.name, &id)
        .await?;
    // A record the user may read but plainly not edit (say, a colleague's, for a role that
    // edits its own) is refused now rather than after the user has typed.
    let edit_scopes = access::scopes(state.schema(), &viewer.actor, &object.name, Action::Edit);
    if edit_scopes.decides(&viewer.actor, owner_of(&record)) == Some(false) {
        return Err(forbidden());
    }
    let tz = app_timezone(&state);
    let mut texts: Texts = object
        .fields
        .values()
        .filter_map(|field| {
            record
                .get(&field.name)
                .map(|value| (field.name.clone(), form_texts(field, value, tz)))
        })
        .collect();
    if may_assign(&state, &viewer.actor, object)
        && let Some(owner) = owner_of(&record)
    {
        texts.insert(OWNER.to_owned(), vec![owner.to_owned()]);
    }
    let form = FormState {
        texts,
        ..FormState::default()
    };
    show(&state, &viewer, object, Some(record), form, StatusCode::OK).await
}

/// `POST /app/{object}/{id}/edit`: saves the fields on the form at the version the form was
/// loaded at → 303 to the record; a refusal or a stale version shows the form again.
async fn update(
    Pinned(state): Pinned,
    Path((object, id)): Path<(String, String)>,
    form: PageForm,
) -> Result<Response, PageError> {
    let viewer = form.viewer.clone();
    let object = editable_object(&state, &viewer.actor, &object)?;
    // The record as it is now: what the form may write, and the base of a conflict.
    let current = state
        .records()
        .get(&viewer.actor, &object.name, &id)
        .await?;
    let tz = app_timezone(&state);
    let editable = editable_fields(&state, &viewer.actor, object, Some(&current));
    let assign = may_assign(&state, &viewer.actor, object);
    let (mut input, mut texts) = read_form(&editable, assign, &form, tz);
    // Only what the user changed is saved: an input shows a value at its own precision (a
    // time to the minute), so sending an untouched one back could change the stored value.
    for field in &editable {
        let stored = current.get(&field.name).cloned().unwrap_or(Json::Null);
        if texts
            .get(&field.name)
            .is_some_and(|typed| same_texts(typed, &form_texts(field, &stored, tz)))
        {
            input.remove(&field.name);
        }
    }
    // A version that does not read as one matches no version: the save ends in the
    // conflict view rather than overwriting.
    let expected = form
        .get("_version")
        .map(|version| version.trim().parse::<i64>().unwrap_or(0));
    let result = state
        .records()
        .update(&viewer.actor, &object.name, &id, input, expected)
        .await;
    match result {
        Ok(saved) => Ok(to_record(&object.name, &saved.record)),
        Err(RecordError::Stale { .. }) => {
            let loaded_at = form.get("_loaded_at").unwrap_or("").to_owned();
            let conflict = conflict(
                &state, &viewer, object, &id, &current, &editable, &loaded_at, &mut texts,
            )
            .await?;
            let form = FormState {
                texts,
                conflict: Some(conflict),
                ..FormState::default()
            };
            show(
                &state,
                &viewer,
                object,
                Some(current),
                form,
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(error) => {
            let (status, errors) = refusal(error)?;
            // A field the post left out shows its stored value, so saving again keeps it.
            for field in &editable {
                if !texts.contains_key(&field.name)
                    && let Some(value) = current.get(&field.name)
                {
                    texts.insert(field.name.clone(), form_texts(field, value, tz));
                }
            }
            // The version stays the one the user loaded: a failed save is not a new base.
            let form = FormState {
                texts,
                errors: Some(errors),
                version: expected,
                loaded_at: form.get("_loaded_at").map(str::to_owned),
                ..FormState::default()
            };
            show(&state, &viewer, object, Some(current), form, status).await
        }
    }
}

/// What a form shows besides the record: the texts in its inputs, the errors of a refused
/// save, a conflict, and (after a refused edit) the version the user is still editing.
#[derive(Debug, Default)]
struct FormState {
    texts: Texts,
    errors: Option<Refusal>,
    conflict: Option<ConflictView>,
    version: Option<i64>,
    loaded_at: Option<String>,
}

/// Why a save was refused: errors per field, and the ones that belong to no field.
#[derive(Debug, Default)]
struct Refusal {
    fields: Vec<FieldRefusal>,
    /// Catalog keys (with their arguments) or the runtime's own sentences.
    general: Vec<GeneralRefusal>,
}

/// One field's error: its stable code (`errors[].code`), what the catalog's text for it
/// needs besides the field's own limits, and the runtime's message for codes the catalog
/// has no text for.
#[derive(Debug)]
struct FieldRefusal {
    field: String,
    code: String,
    args: HashMap<&'static str, String>,
    message: String,
}

#[derive(Debug)]
enum GeneralRefusal {
    Text(String),
    Catalog(&'static str, HashMap<&'static str, String>),
}

#[derive(Debug, Serialize)]
struct FormPage {
    object: String,
    object_label: String,
    heading: String,
    action: String,
    cancel: String,
    editing: bool,
    record_id: Option<String>,
    version: Option<i64>,
    loaded_at: String,
    sections: Vec<Section>,
    summary: Vec<SummaryItem>,
    general: Vec<String>,
    conflict: Option<ConflictView>,
    currency: String,
    /// The object's duplicate keys, for form.js's 查重 while typing.
    duplicate_keys: String,
}

#[derive(Debug, Serialize)]
struct Section {
    title: Option<String>,
    widgets: Vec<Widget>,
}

/// One field on the form.
#[derive(Debug, Default, Serialize)]
struct Widget {
    name: String,
    label: String,
    /// `text`, `textarea`, `number`, `money`, `percent`, `date`, `datetime`, `select`,
    /// `checkboxes`, `checkbox`, `lookup`, `user`, `email`, `tel`, `url`, or `readonly`
    /// (shown as text).
    widget: &'static str,
    value: String,
    values: Vec<String>,
    required: bool,
    help: Option<String>,
    error: Option<String>,
    maxlength: Option<u32>,
    pattern: Option<String>,
    min: Option<String>,
    max: Option<String>,
    step: Option<String>,
    options: Vec<Choice>,
    /// A read-only field's value as the record page shows it.
    shown: Option<Shown>,
    /// Why a read-only field is read-only: `masked`, `computed` or `read_only`.
    reason: Option<&'static str>,
    /// A lookup's target object and its title field (form.js searches them).
    target: Option<String>,
    title_field: Option<String>,
    /// The lookup's target has more records than the select offers.
    more: bool,
    /// The field is part of a duplicate key (form.js checks it while typing).
    duplicate_key: bool,
}

#[derive(Debug, Clone, Serialize)]
struct Choice {
    key: String,
    label: String,
}

#[derive(Debug, Serialize)]
struct SummaryItem {
    field: String,
    label: String,
    message: String,
}

/// A stale save: the version now, and what changed since the user loaded the form.
#[derive(Debug, Serialize)]
struct ConflictView {
    version: i64,
    changes: Vec<ConflictChange>,
}

#[derive(Debug, Serialize)]
struct ConflictChange {
    field: String,
    label: String,
    who: String,
    value: String,
    /// The user changed this field too: their input is kept, and applying it overwrites.
    mine: bool,
}

/// The object, when the user may create its records (else the 403 page).
fn creatable<'a>(
    state: &'a AppState,
    actor: &Actor,
    object: &str,
) -> Result<&'a Object, PageError> {
    let schema = state.schema();
    let object = schema
        .object(object)
        .ok_or_else(|| RecordError::UnknownObject(object.to_owned()))?;
    if !access::can_create(schema, actor, &object.name) {
        if access::scope(schema, actor, &object.name, Action::Read) == Scope::None {
            return Err(RecordError::NotFound.into());
        }
        return Err(forbidden());
    }
    Ok(object)
}

/// The object, when the user may edit some of its records (a record outside their edit
/// scope is then refused by `Records`).
fn editable_object<'a>(
    state: &'a AppState,
    actor: &Actor,
    object: &str,
) -> Result<&'a Object, PageError> {
    let schema = state.schema();
    let object = schema
        .object(object)
        .ok_or_else(|| RecordError::UnknownObject(object.to_owned()))?;
    if access::scope(schema, actor, &object.name, Action::Edit) == Scope::None {
        if access::scope(schema, actor, &object.name, Action::Read) == Scope::None {
            return Err(RecordError::NotFound.into());
        }
        return Err(forbidden());
    }
    Ok(object)
}

fn forbidden() -> PageError {
    PageError::Api(ApiError::new(
        ErrorCode::Forbidden,
        "your role does not allow this",
    ))
}

fn app_timezone(state: &AppState) -> Tz {
    state
        .schema()
        .app
        .timezone
        .parse()
        .unwrap_or(chrono_tz::Asia::Shanghai)
}

/// 303 to the saved record's page.
fn to_record(object: &str, record: &Json) -> Response {
    let id = record.get("id").and_then(Json::as_str).unwrap_or("");
    Redirect::to(&format!("/app/{object}/{id}")).into_response()
}

/// How the form treats a field for this user and record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Input,
    ReadOnly(&'static str),
    Absent,
}

fn mode(
    state: &AppState,
    actor: &Actor,
    object: &Object,
    field: &Field,
    record: Option<&Json>,
    masking: &Masking,
) -> Mode {
    let access = access::field_access(state.schema(), actor, object, &field.name);
    let editing = record.is_some();
    match access {
        FieldAccess::Hidden => Mode::Absent,
        _ if field.is_computed() => {
            if editing {
                Mode::ReadOnly("computed")
            } else {
                Mode::Absent
            }
        }
        FieldAccess::Read if editing => Mode::ReadOnly("read_only"),
        FieldAccess::Read => Mode::Absent,
        FieldAccess::Edit => match record {
            Some(record) if masking.hides(&field.name, owner_of(record)) => {
                Mode::ReadOnly("masked")
            }
            _ => Mode::Input,
        },
    }
}

fn owner_of(record: &Json) -> Option<&str> {
    record.get("owner").and_then(Json::as_str)
}

/// The fields this user may write on this form (`record`: the record being edited).
fn editable_fields<'a>(
    state: &AppState,
    actor: &Actor,
    object: &'a Object,
    record: Option<&Json>,
) -> Vec<&'a Field> {
    let masking = Masking::new(state.schema(), actor, object);
    object
        .fields
        .values()
        .filter(|field| mode(state, actor, object, field, record, &masking) == Mode::Input)
        .collect()
}

/// The system field a form may set: the record's owner, for users who may assign records.
const OWNER: &str = "owner";

/// Whether the form offers the owner: to users who may choose a record's owner (admins, and
/// roles that edit every record of the object), on objects whose records have one.
fn may_assign(state: &AppState, actor: &Actor, object: &Object) -> bool {
    object.returns_system_field(OWNER) && access::can_assign(state.schema(), actor, &object.name)
}

/// The typed input of the posted form and the texts it held. A field absent from the form
/// is left out (a create gives it its default; an update leaves it as it is); so is a blank
/// owner (a create makes the user the owner).
fn read_form(editable: &[&Field], assign: bool, form: &PageForm, tz: Tz) -> (Input, Texts) {
    let mut input = Input::new();
    let mut texts = Texts::new();
    if assign && let Some(owner) = form.get(OWNER).filter(|owner| !owner.trim().is_empty()) {
        input.insert(OWNER.to_owned(), Json::String(owner.trim().to_owned()));
        texts.insert(OWNER.to_owned(), vec![owner.to_owned()]);
    }
    for field in editable {
        let values = form.all(&field.name);
        if values.is_empty() {
            continue;
        }
        input.insert(field.name.clone(), input_json(field, &values, tz));
        texts.insert(
            field.name.clone(),
            values.iter().map(|value| (*value).to_owned()).collect(),
        );
    }
    (input, texts)
}

/// The JSON `Records` reads for a field's form texts. Blank is `null`; numbers go as their
/// text (Records reads and checks it); a `datetime-local` value is read in the app timezone.
/// A value that does not read as its type goes on as text, so `Records` names the problem.
pub(super) fn input_json(field: &Field, values: &[&str], tz: Tz) -> Json {
    match &field.kind {
        FieldKind::MultiChoice { .. } => Json::Array(
            values
                .iter()
                .filter(|value| !value.trim().is_empty())
                .map(|value| Json::String((*value).to_owned()))
                .collect(),
        ),
        // The hidden `false` comes first and a ticked box's `true` after it.
        FieldKind::Boolean => Json::Bool(
            values
                .last()
                .is_some_and(|value| matches!(value.trim(), "true" | "on" | "1")),
        ),
        kind => {
            let text = values.first().copied().unwrap_or("");
            if text.trim().is_empty() {
                return Json::Null;
            }
            match kind {
                FieldKind::Integer => text
                    .trim()
                    .parse::<i64>()
                    .map(|number| json!(number))
                    .unwrap_or_else(|_| Json::String(text.to_owned())),
                FieldKind::Decimal { .. }
                | FieldKind::Money { .. }
                | FieldKind::Percent { .. }
                | FieldKind::Date
                | FieldKind::Choice { .. }
                | FieldKind::Lookup { .. }
                | FieldKind::User => Json::String(text.trim().to_owned()),
                FieldKind::Datetime => {
                    Json::String(local_datetime(text.trim(), tz).unwrap_or_else(|| text.to_owned()))
                }
                _ => Json::String(text.to_owned()),
            }
        }
    }
}

/// `2026-12-06T09:30` in `tz` → `2026-12-06T01:30:00Z`.
fn local_datetime(text: &str, tz: Tz) -> Option<String> {
    let local = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())?;
    let at = tz.from_local_datetime(&local).earliest()?;
    Some(
        at.with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// A field's value as its form inputs hold it: a date and time as `datetime-local` text in
/// `tz`, a boolean as `true`/`false`, a multi-choice as one text per option.
fn form_texts(field: &Field, value: &Json, tz: Tz) -> Vec<String> {
    match value {
        Json::Null => Vec::new(),
        Json::Array(items) => items
            .iter()
            .map(|item| match item {
                Json::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect(),
        Json::String(text) if matches!(field.kind, FieldKind::Datetime) => {
            vec![match DateTime::parse_from_rfc3339(text) {
                Ok(at) => at.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string(),
                Err(_) => text.clone(),
            }]
        }
        Json::String(text) => vec![text.clone()],
        other => vec![other.to_string()],
    }
}

/// A refused save → the status of the page that shows the form again, and the errors to
/// show. What a form cannot help with (a record gone, an object not allowed, a server
/// fault) becomes the error page instead.
fn refusal(error: RecordError) -> Result<(StatusCode, Refusal), PageError> {
    if let RecordError::TooManyLookups { retry_after } = &error {
        // The runtime's sentence is English; the catalog says it with the wait.
        let seconds = retry_after.as_secs().max(1).to_string();
        let refusal = Refusal {
            general: vec![GeneralRefusal::Catalog(
                "form.too_many_lookups",
                HashMap::from([("seconds", seconds)]),
            )],
            ..Refusal::default()
        };
        return Ok((StatusCode::TOO_MANY_REQUESTS, refusal));
    }
    let error = ApiError::from(error);
    let status = error.status();
    let shown_on_form = match error.code() {
        ErrorCode::InvalidRecord
        | ErrorCode::Conflict
        | ErrorCode::ScriptRejected
        | ErrorCode::ScriptFailed
        | ErrorCode::ChainTooDeep
        | ErrorCode::InvalidRequest => true,
        ErrorCode::Forbidden => !error.errors().is_empty(),
        _ => false,
    };
    if !shown_on_form {
        return Err(PageError::Api(error));
    }
    let mut refusal = Refusal::default();
    let matches = error
        .extra("matches")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    // A `block` duplicate key: each match says which key, and shows what a duplicate check
    // may show (masked title, owner's name, pool).
    let mut matched_fields: Vec<String> = Vec::new();
    for found in &matches {
        let fields: Vec<String> = found
            .get("fields")
            .and_then(Json::as_array)
            .map(|fields| {
                fields
                    .iter()
                    .filter_map(Json::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let Some(first) = fields.first().cloned() else {
            continue;
        };
        let text = |key: &str| {
            found
                .get(key)
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let args = HashMap::from([
            ("title", text("title")),
            ("owner", text("owner_name")),
            ("pool", text("pool")),
        ]);
        refusal.fields.push(FieldRefusal {
            field: first,
            code: "duplicate_blocked".to_owned(),
            args,
            message: error.detail().to_owned(),
        });
        matched_fields.extend(fields);
    }
    for problem in error.errors() {
        if problem.code == "duplicate" && matched_fields.contains(&problem.field) {
            continue;
        }
        refusal.fields.push(FieldRefusal {
            field: problem.field.clone(),
            code: problem.code.clone(),
            args: HashMap::new(),
            message: problem.message.clone(),
        });
    }
    if refusal.fields.is_empty() {
        refusal
            .general
            .push(GeneralRefusal::Text(error.detail().to_owned()));
    }
    Ok((status, refusal))
}

/// Builds and renders the form page.
async fn show(
    state: &AppState,
    viewer: &Viewer,
    object: &Object,
    record: Option<Json>,
    form: FormState,
    status: StatusCode,
) -> Result<Response, PageError> {
    let frame = Frame::new(state, viewer).await?;
    let formatter = frame.formatter(state);
    let schema = state.schema();
    let actor = &viewer.actor;
    let masking = Masking::new(schema, actor, object);
    let catalogs = state.ui().catalogs();
    let lang = frame.lang.clone();
    let text = |key: &str, args: &HashMap<&str, String>| {
        catalogs.text(&lang, key, |name| args.get(name).cloned())
    };
    let assign = may_assign(state, actor, object);
    let needs_users = object.fields.values().any(|field| {
        matches!(field.kind, FieldKind::User)
            && mode(state, actor, object, field, record.as_ref(), &masking) == Mode::Input
    }) || form.conflict.is_some()
        || assign;
    let users = if needs_users {
        state.auth().user_choices(actor).await?
    } else {
        Vec::new()
    };

    // Errors per field, in the user's language where the catalog has the code.
    let mut field_errors: HashMap<String, String> = HashMap::new();
    let mut summary = Vec::new();
    let mut general = Vec::new();
    if let Some(refusal) = &form.errors {
        for FieldRefusal {
            field: name,
            code,
            args,
            message,
        } in &refusal.fields
        {
            let Some(field) = object.field(name) else {
                if assign && name == OWNER {
                    summary.push(SummaryItem {
                        field: name.clone(),
                        label: text("form.owner", &HashMap::new()),
                        message: message.clone(),
                    });
                    field_errors.insert(name.clone(), message.clone());
                } else {
                    general.push(message.clone());
                }
                continue;
            };
            let message = error_text(field, code, args, message, &text, catalogs);
            summary.push(SummaryItem {
                field: name.clone(),
                label: formatter.field_label(field),
                message: message.clone(),
            });
            field_errors
                .entry(name.clone())
                .and_modify(|existing| {
                    existing.push(' ');
                    existing.push_str(&message);
                })
                .or_insert(message);
        }
        general.extend(refusal.general.iter().map(|item| match item {
            GeneralRefusal::Text(message) => message.clone(),
            GeneralRefusal::Catalog(key, args) => {
                let args: HashMap<&str, String> =
                    args.iter().map(|(k, v)| (*k, v.clone())).collect();
                text(key, &args)
            }
        }));
    }

    let duplicate_fields: Vec<&str> = object
        .duplicates
        .iter()
        .flat_map(|key| key.fields.iter().map(String::as_str))
        .collect();
    let mut placed: Vec<&str> = Vec::new();
    let mut sections = Vec::new();
    let mut layout: Vec<(Option<String>, Vec<&Field>)> = object
        .layout
        .iter()
        .map(|section| {
            (
                Some(
                    section
                        .section
                        .text(&frame.lang, &schema.app.language)
                        .to_owned(),
                ),
                section
                    .fields
                    .iter()
                    .filter_map(|name| object.field(name))
                    .collect(),
            )
        })
        .collect();
    for (_, fields) in &layout {
        placed.extend(fields.iter().map(|field| field.name.as_str()));
    }
    let rest: Vec<&Field> = object
        .fields
        .values()
        .filter(|field| !placed.contains(&field.name.as_str()))
        .collect();
    if !rest.is_empty() {
        let title = (!layout.is_empty()).then(|| text("form.other", &HashMap::new()));
        layout.push((title, rest));
    }
    for (title, fields) in layout {
        let mut widgets = Vec::new();
        for field in fields {
            let field_mode = mode(state, actor, object, field, record.as_ref(), &masking);
            let mut widget = match field_mode {
                Mode::Absent => continue,
                Mode::ReadOnly(reason) => {
                    let masked = reason == "masked"
                        || record
                            .as_ref()
                            .is_some_and(|record| masking.hides(&field.name, owner_of(record)));
                    let shown = record
                        .as_ref()
                        .map(|record| formatter.show(field, record, masked))
                        .unwrap_or_default();
                    Widget {
                        widget: "readonly",
                        shown: Some(shown),
                        reason: Some(reason),
                        ..Widget::default()
                    }
                }
                Mode::Input => {
                    input_widget(
                        state,
                        actor,
                        field,
                        record.as_ref(),
                        &form.texts,
                        &users,
                        &formatter,
                    )
                    .await
                }
            };
            widget.name = field.name.clone();
            widget.label = formatter.field_label(field);
            widget.help = field
                .help
                .as_ref()
                .map(|help| help.text(&frame.lang, &schema.app.language).to_owned())
                .filter(|help| !help.is_empty());
            widget.error = field_errors.remove(&field.name);
            widget.duplicate_key =
                field_mode == Mode::Input && duplicate_fields.contains(&field.name.as_str());
            widgets.push(widget);
        }
        if !widgets.is_empty() {
            sections.push(Section { title, widgets });
        }
    }
    if assign {
        let value = form
            .texts
            .get(OWNER)
            .and_then(|values| values.first())
            .cloned()
            .unwrap_or_default();
        let options = user_options(&users, &value, None);
        let owner = Widget {
            name: OWNER.to_owned(),
            label: text("form.owner", &HashMap::new()),
            widget: "user",
            value,
            options,
            error: field_errors.remove(OWNER),
            ..Widget::default()
        };
        match sections.last_mut() {
            Some(section) => section.widgets.push(owner),
            None => sections.push(Section {
                title: None,
                widgets: vec![owner],
            }),
        }
    }
    // Errors about fields not on the form (e.g. a script naming another field).
    general.extend(field_errors.into_values());

    let object_label = object
        .label
        .text(&frame.lang, &schema.app.language)
        .to_owned();
    let record_id = record
        .as_ref()
        .and_then(|record| record.get("id"))
        .and_then(Json::as_str)
        .map(str::to_owned);
    let heading = match &record {
        Some(record) => {
            let title = object
                .field(&object.title)
                .map(|field| formatter.show(field, record, false).text)
                .filter(|title| !title.is_empty())
                .unwrap_or_else(|| record_id.clone().unwrap_or_default());
            let args = HashMap::from([("title", title), ("object", object_label.clone())]);
            text("form.edit_title", &args)
        }
        None => text(
            "form.new_title",
            &HashMap::from([("object", object_label.clone())]),
        ),
    };
    let (action, cancel) = match &record_id {
        Some(id) => (
            format!("/app/{}/{id}/edit", object.name),
            format!("/app/{}/{id}", object.name),
        ),
        None => (
            format!("/app/{}/new", object.name),
            format!("/app/{}", object.name),
        ),
    };
    let record_version = record
        .as_ref()
        .and_then(|record| record.get("version"))
        .and_then(Json::as_i64);
    let record_loaded_at = record
        .as_ref()
        .and_then(|record| record.get("updated_at"))
        .and_then(Json::as_str)
        .map(str::to_owned);
    let (version, loaded_at) = if form.conflict.is_some() || form.version.is_none() {
        (record_version, record_loaded_at)
    } else {
        (form.version, form.loaded_at.clone().or(record_loaded_at))
    };
    let duplicate_keys = json!(
        object
            .duplicates
            .iter()
            .map(|key| &key.fields)
            .collect::<Vec<_>>()
    )
    .to_string();
    let page = FormPage {
        object: object.name.clone(),
        object_label,
        heading,
        action,
        cancel,
        editing: record.is_some(),
        record_id,
        version,
        loaded_at: loaded_at.unwrap_or_default(),
        sections,
        summary,
        general,
        conflict: form.conflict,
        currency: formatter.money("0").replace("0.00", "").trim().to_owned(),
        duplicate_keys,
    };
    render_with_status(state, &frame, "form.html", page, status)
}

/// The message for one field error: the catalog's text for its code (with the field's
/// limits), else the runtime's own message (a validation's, already in the user's language).
fn error_text(
    field: &Field,
    code: &str,
    args: &HashMap<&'static str, String>,
    message: &str,
    text: &impl Fn(&str, &HashMap<&str, String>) -> String,
    catalogs: &super::Catalogs,
) -> String {
    let numeric = matches!(
        field.kind,
        FieldKind::Integer
            | FieldKind::Decimal { .. }
            | FieldKind::Money { .. }
            | FieldKind::Percent { .. }
    );
    let key = match code {
        "invalid_type" if numeric => "form.error.not_a_number".to_owned(),
        "duplicate_blocked" if args.get("owner").is_some_and(|owner| !owner.is_empty()) => {
            "form.error.duplicate_blocked_owner".to_owned()
        }
        other => format!("form.error.{other}"),
    };
    if !catalogs.has(&key) {
        return message.to_owned();
    }
    let mut args: HashMap<&str, String> = args.iter().map(|(k, v)| (*k, v.clone())).collect();
    if let Some(max_length) = field.max_length {
        args.insert("max_length", max_length.to_string());
    }
    if let Some(min) = &field.min {
        args.insert("min", min.to_string());
    }
    if let Some(max) = &field.max {
        args.insert("max", max.to_string());
    }
    if let FieldKind::Decimal { scale }
    | FieldKind::Money { scale }
    | FieldKind::Percent { scale } = &field.kind
    {
        args.insert("scale", scale.to_string());
    }
    text(&key, &args)
}

/// The input widget of an editable field, holding `texts`' values for it.
async fn input_widget(
    state: &AppState,
    actor: &Actor,
    field: &Field,
    record: Option<&Json>,
    texts: &Texts,
    users: &[UserChoice],
    formatter: &Formatter,
) -> Widget {
    let values = texts.get(&field.name).cloned().unwrap_or_default();
    let value = values.first().cloned().unwrap_or_default();
    let label_of = |option: &keel_meta::ChoiceOption| Choice {
        key: option.key.clone(),
        label: formatter.label(option.label.as_ref(), &option.key),
    };
    let number = |min: &Option<serde_json::Number>| min.as_ref().map(|n| n.to_string());
    let step = |scale: u32| {
        if scale == 0 {
            "1".to_owned()
        } else {
            format!("0.{}1", "0".repeat(scale as usize - 1))
        }
    };
    let mut widget = Widget {
        required: field.required && !matches!(field.kind, FieldKind::Boolean),
        value: value.clone(),
        values: values.clone(),
        ..Widget::default()
    };
    match &field.kind {
        FieldKind::Text => {
            widget.widget = "text";
            widget.maxlength = field.max_length;
            widget.pattern = field.pattern.clone();
        }
        FieldKind::LongText => {
            widget.widget = "textarea";
            widget.maxlength = field.max_length;
        }
        FieldKind::Email | FieldKind::Phone | FieldKind::Url => {
            widget.widget = match field.kind {
                FieldKind::Email => "email",
                FieldKind::Phone => "tel",
                _ => "url",
            };
            widget.maxlength = field.max_length;
            widget.pattern = field.pattern.clone();
        }
        FieldKind::Integer => {
            widget.widget = "number";
            widget.step = Some("1".to_owned());
            widget.min = number(&field.min);
            widget.max = number(&field.max);
        }
        FieldKind::Decimal { scale }
        | FieldKind::Money { scale }
        | FieldKind::Percent { scale } => {
            widget.widget = match field.kind {
                FieldKind::Money { .. } => "money",
                FieldKind::Percent { .. } => "percent",
                _ => "number",
            };
            widget.step = Some(step(*scale));
            widget.min = number(&field.min);
            widget.max = number(&field.max);
        }
        FieldKind::Boolean => widget.widget = "checkbox",
        FieldKind::Date => widget.widget = "date",
        FieldKind::Datetime => widget.widget = "datetime",
        FieldKind::Choice { options } => {
            // A select even for a few options: one control per field, the same on a phone.
            widget.widget = "select";
            widget.options = options.iter().map(label_of).collect();
            add_unknown(&mut widget.options, &value, &value);
        }
        FieldKind::MultiChoice { options } => {
            widget.widget = "checkboxes";
            widget.options = options.iter().map(label_of).collect();
        }
        FieldKind::User => {
            widget.widget = "user";
            widget.options = user_options(users, &value, reference_title(record, &field.name));
        }
        FieldKind::Lookup { object: target, .. } => {
            lookup_widget(state, actor, field, target, record, &value, &mut widget).await;
        }
        FieldKind::Autonumber { .. } | FieldKind::Formula { .. } => widget.widget = "readonly",
    }
    widget
}

/// The choices of a user picker: every active user, plus the current `value` when it is an
/// inactive or unknown user (named from the users, else `title`, else the id), so an edit
/// keeps it.
fn user_options(users: &[UserChoice], value: &str, title: Option<String>) -> Vec<Choice> {
    let mut options: Vec<Choice> = users
        .iter()
        .filter(|user| user.active)
        .map(|user| Choice {
            key: user.id.clone(),
            label: user.name.clone(),
        })
        .collect();
    let known = users
        .iter()
        .find(|user| user.id == value)
        .map(|user| user.name.clone())
        .or(title)
        .unwrap_or_else(|| value.to_owned());
    add_unknown(&mut options, value, &known);
    options
}

/// Adds the current value to a select's options when it is not one of them (a retired
/// option, a deactivated user, a record beyond the first page).
fn add_unknown(options: &mut Vec<Choice>, value: &str, label: &str) {
    if !value.is_empty() && !options.iter().any(|option| option.key == value) {
        options.insert(
            0,
            Choice {
                key: value.to_owned(),
                label: label.to_owned(),
            },
        );
    }
}

fn reference_title(record: Option<&Json>, field: &str) -> Option<String> {
    record?
        .get("_refs")?
        .get(field)?
        .get("title")?
        .as_str()
        .map(str::to_owned)
}

/// A lookup: a select of the first [`LOOKUP_CHOICES`] records of the target the user may
/// read (by their titles), which form.js turns into a search as the user types when there
/// are more. A user who may not list the target gets a plain id input.
async fn lookup_widget(
    state: &AppState,
    actor: &Actor,
    field: &Field,
    target: &str,
    record: Option<&Json>,
    value: &str,
    widget: &mut Widget,
) {
    let Some(target_object) = state.schema().object(target) else {
        widget.widget = "text";
        return;
    };
    let title_field = target_object.title.clone();
    let page = state
        .records()
        .list(
            actor,
            target,
            ListRequest {
                limit: Some(LOOKUP_CHOICES),
                fields: Some(vec![title_field.clone()]),
                ..ListRequest::default()
            },
        )
        .await;
    let Ok(page) = page else {
        widget.widget = "text";
        return;
    };
    let title_of = |record: &Json| {
        let id = record.get("id").and_then(Json::as_str).unwrap_or("");
        match record.get(&title_field) {
            Some(Json::String(title)) if !title.is_empty() => title.clone(),
            Some(Json::Null) | None => id.to_owned(),
            Some(other) => other.to_string(),
        }
    };
    widget.widget = "lookup";
    widget.target = Some(target.to_owned());
    widget.title_field = Some(title_field.clone());
    widget.more = page.next.is_some();
    widget.options = page
        .data
        .iter()
        .map(|found| Choice {
            key: found
                .get("id")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_owned(),
            label: title_of(found),
        })
        .collect();
    if !value.is_empty() && !widget.options.iter().any(|option| option.key == value) {
        let title = match reference_title(record, &field.name) {
            Some(title) => title,
            None => match state.records().get(actor, target, value).await {
                Ok(found) => title_of(&found),
                Err(_) => value.to_owned(),
            },
        };
        add_unknown(&mut widget.options, value, &title);
    }
}

/// A stale save: what changed since `loaded_at` (from the record's history, as the user may
/// see it), and the user's texts merged onto the current record — a field the user left as
/// it was loaded takes its newer value, a field both changed keeps the user's input.
#[allow(clippy::too_many_arguments)]
async fn conflict(
    state: &AppState,
    viewer: &Viewer,
    object: &Object,
    id: &str,
    current: &Json,
    editable: &[&Field],
    loaded_at: &str,
    texts: &mut Texts,
) -> Result<ConflictView, PageError> {
    let tz = app_timezone(state);
    let lang = &viewer.lang;
    let formatter = Formatter::new(state.schema(), lang, state.records().clock().now());
    let masking = Masking::new(state.schema(), &viewer.actor, object);
    let loaded: Option<DateTime<Utc>> = DateTime::parse_from_rfc3339(loaded_at)
        .ok()
        .map(|at| at.with_timezone(&Utc));
    let history = state
        .records()
        .history(&viewer.actor, &object.name, id)
        .await?;
    let names: HashMap<String, String> = state
        .auth()
        .user_choices(&viewer.actor)
        .await?
        .into_iter()
        .map(|user| (user.id, user.name))
        .collect();
    // Per field: the value when the form was loaded, and who changed it last.
    let mut changed: Vec<(String, Json, String)> = Vec::new();
    for entry in &history {
        let at = entry
            .get("at")
            .and_then(Json::as_str)
            .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
            .map(|at| at.with_timezone(&Utc));
        let after_load = match (at, loaded) {
            (Some(at), Some(loaded)) => at > loaded,
            _ => false,
        };
        if !after_load {
            continue;
        }
        let Some(field) = entry.get("field").and_then(Json::as_str) else {
            continue;
        };
        if object.field(field).is_none() {
            continue;
        }
        let by = entry
            .get("by")
            .and_then(Json::as_str)
            .map(|by| names.get(by).cloned().unwrap_or_else(|| by.to_owned()))
            .unwrap_or_default();
        match changed.iter_mut().find(|(name, ..)| name == field) {
            Some(existing) => existing.2 = by,
            None => changed.push((
                field.to_owned(),
                entry.get("old").cloned().unwrap_or(Json::Null),
                by,
            )),
        }
    }
    let mut changes = Vec::new();
    for (name, was, who) in changed {
        let Some(field) = object.field(&name) else {
            continue;
        };
        let on_form = editable.iter().any(|editable| editable.name == name);
        let loaded_texts = form_texts(field, &was, tz);
        let mine = on_form
            && texts
                .get(&name)
                .is_some_and(|submitted| !same_texts(submitted, &loaded_texts));
        if on_form && !mine {
            let now = current.get(&name).cloned().unwrap_or(Json::Null);
            texts.insert(name.clone(), form_texts(field, &now, tz));
        }
        let shown = formatter.show(field, current, masking.hides(&name, owner_of(current)));
        changes.push(ConflictChange {
            label: formatter.field_label(field),
            field: name,
            who,
            value: shown.text,
            mine,
        });
    }
    Ok(ConflictView {
        version: current.get("version").and_then(Json::as_i64).unwrap_or(0),
        changes,
    })
}

/// Whether two inputs hold the same value (blank and absent are the same).
fn same_texts(a: &[String], b: &[String]) -> bool {
    let clean = |texts: &[String]| -> Vec<String> {
        texts
            .iter()
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty() && text != "false")
            .collect()
    };
    clean(a) == clean(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(kind: FieldKind) -> Field {
        Field {
            name: "f".into(),
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
        }
    }

    #[test]
    fn form_texts_and_input_json_round_trip_each_type_in_the_app_timezone() {
        let tz = chrono_tz::Asia::Shanghai;
        let at = field(FieldKind::Datetime);
        assert_eq!(
            form_texts(&at, &json!("2026-12-06T01:30:00Z"), tz),
            vec!["2026-12-06T09:30"]
        );
        assert_eq!(
            input_json(&at, &["2026-12-06T09:30"], tz),
            json!("2026-12-06T01:30:00Z")
        );
        assert_eq!(input_json(&at, &["soon"], tz), json!("soon"));
        assert_eq!(input_json(&at, &[" "], tz), Json::Null);
        let flag = field(FieldKind::Boolean);
        assert_eq!(input_json(&flag, &["false", "true"], tz), json!(true));
        assert_eq!(input_json(&flag, &["false"], tz), json!(false));
        let count = field(FieldKind::Integer);
        assert_eq!(input_json(&count, &["42"], tz), json!(42));
        assert_eq!(input_json(&count, &["4x"], tz), json!("4x"));
        assert_eq!(form_texts(&count, &json!(42), tz), vec!["42"]);
        let tags = field(FieldKind::MultiChoice {
            options: Vec::new(),
        });
        assert_eq!(input_json(&tags, &["", "a", "b"], tz), json!(["a", "b"]));
        assert_eq!(form_texts(&tags, &json!(["a", "b"]), tz), vec!["a", "b"]);
        let money = field(FieldKind::Money { scale: 2 });
        assert_eq!(input_json(&money, &[" 12.50 "], tz), json!("12.50"));
        assert!(same_texts(&["".into()], &[]));
        assert!(!same_texts(&["a".into()], &[]));
    }
}
