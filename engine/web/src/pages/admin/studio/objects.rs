//! The studio's object editors (docs/studio.md, "Changing an object"):
//!
//! - `/admin/studio/objects/{object}`: the object's fields, each linking to its editor, with
//!   links to add a field and to the list settings;
//! - `/admin/studio/objects/{object}/fields/new` and `…/fields/{field}`: the field editor
//!   (type, labels and help in English and Chinese, a choice field's options, required,
//!   unique, mask, default, the layout section, whether it is a list column), over
//!   `keel_meta::forms::{field_form, save_field}`;
//! - `/admin/studio/objects/{object}/list`: the list's columns in order, the search fields
//!   and the duplicate keys, over `keel_meta::forms::{list_settings_form, save_list_settings}`.
//!
//! Each `GET` fills its form from the latest version's files; each `POST` runs the form
//! operation and shows the review ([`super::review`]), or the form again (422) with the error
//! next to the form field the operation names (`options/2/key` → that option's row). The
//! forms work without JavaScript: a form always offers a few empty rows (options, columns,
//! duplicate keys); `studio-objects.js` only adds more rows and hides the options of a field
//! that is not a choice.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use keel_meta::forms::{
    self, ChoiceOptionForm, DuplicateKeyForm, FieldForm, FormError, LabelForm, ListSettingsForm,
};
use keel_meta::{DuplicateAction, FieldKind, Object};
use serde::Serialize;
use serde_json::Value;

use super::{Applied, Change, latest, review};
use crate::AppState;
use crate::extract::Pinned;
use crate::pages::admin::{console_frame, not_found, tr};
use crate::pages::{Formatter, Frame, PageError, PageForm, Viewer, render, render_with_status};

/// The routes of the object editors; [`super::routes`] merges them.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/studio/objects/{object}", get(object_page))
        .route(
            "/admin/studio/objects/{object}/fields/new",
            get(new_field).post(create_field),
        )
        .route(
            "/admin/studio/objects/{object}/fields/{field}",
            get(edit_field).post(update_field),
        )
        .route(
            "/admin/studio/objects/{object}/list",
            get(list_settings).post(save_list_settings),
        )
}

/// The types a new field may have: those the field form describes completely (a lookup, an
/// autonumber and a formula need settings it does not have; the file editor writes them).
const NEW_TYPES: [&str; 15] = [
    "text",
    "long_text",
    "integer",
    "decimal",
    "money",
    "percent",
    "boolean",
    "date",
    "datetime",
    "choice",
    "multi_choice",
    "email",
    "phone",
    "url",
    "user",
];

/// How many empty rows a form offers beyond the filled ones (options, columns, duplicate
/// keys): enough to add a few without JavaScript.
const EMPTY_ROWS: usize = 3;
/// The most rows a posted form is read for; rows beyond are ignored.
const MAX_ROWS: usize = 500;
/// How many field selects a duplicate key offers at least.
const KEY_FIELDS: usize = 3;

/// The types an existing field of `kind` may change to: its own, and those the migration
/// converts every value to (the same storage; integer to a decimal; date to datetime;
/// anything to text). A lookup, an autonumber or a formula keeps its type here.
fn allowed_types(kind: &FieldKind) -> Vec<&'static str> {
    const TEXTS: [&str; 6] = ["text", "long_text", "email", "phone", "url", "choice"];
    const DECIMALS: [&str; 3] = ["decimal", "money", "percent"];
    let current = kind.type_name();
    let mut types: Vec<&'static str> = match kind {
        FieldKind::Text
        | FieldKind::LongText
        | FieldKind::Email
        | FieldKind::Phone
        | FieldKind::Url
        | FieldKind::Choice { .. } => TEXTS.to_vec(),
        FieldKind::Integer => ["integer", "decimal", "money", "percent", "text"].to_vec(),
        FieldKind::Decimal { .. } | FieldKind::Money { .. } | FieldKind::Percent { .. } => {
            [DECIMALS.as_slice(), &["text"]].concat()
        }
        FieldKind::Date => ["date", "datetime", "text"].to_vec(),
        FieldKind::Boolean
        | FieldKind::Datetime
        | FieldKind::MultiChoice { .. }
        | FieldKind::User => vec![current, "text"],
        FieldKind::Lookup { .. } | FieldKind::Autonumber { .. } | FieldKind::Formula { .. } => {
            vec![current]
        }
    };
    types.dedup();
    types
}

/// An option of a select.
#[derive(Debug, Serialize)]
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

fn choice(value: impl Into<String>, label: impl Into<String>, selected: bool) -> Choice {
    Choice {
        value: value.into(),
        label: label.into(),
        selected,
    }
}

/// `FormError`s by form field (`_form`: one no field of the page shows).
type Errors = BTreeMap<String, String>;

/// The error of `error` under the form field the page shows it at, in the page's language
/// where the studio knows the mistake (else as the form operation says it).
fn form_errors(
    state: &AppState,
    lang: &str,
    error: &FormError,
    known: impl Fn(&str) -> bool,
) -> Errors {
    let field = if known(&error.field) {
        error.field.clone()
    } else {
        "_form".to_owned()
    };
    let message = match error_key(error) {
        Some(key) => {
            // The name the message is about, between its first pair of backticks.
            let name = error
                .message
                .split('`')
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            tr(state, lang, key, &[("name", name)])
        }
        None => error.message.clone(),
    };
    BTreeMap::from([(field, message)])
}

/// The catalog key that explains a form operation's error, when the studio knows it.
fn error_key(error: &FormError) -> Option<&'static str> {
    let field = error.field.as_str();
    let message = error.message.as_str();
    let last = field.rsplit('/').next().unwrap_or(field);
    let key = match field {
        "name" if message.contains("system field") => "studio.object.error.system_name",
        "name" if message.contains("not a valid identifier") => "studio.object.error.name",
        "options" if message.contains("needs options") => "studio.object.error.no_options",
        "section" => "studio.object.error.section",
        _ if field.starts_with("options/") && last == "key" && message.contains("twice") => {
            "studio.object.error.key_twice"
        }
        _ if field.starts_with("options/") && last == "key" => "studio.object.error.key_spaces",
        _ if message.starts_with("no field") => "studio.object.error.no_field",
        _ if message.contains("named twice") => "studio.object.error.named_twice",
        _ => return None,
    };
    Some(key)
}

/// `object`'s label in the page's language.
fn object_label(formatter: &Formatter, object: &Object) -> String {
    formatter.label(Some(&object.label), &object.name)
}

fn object_url(object: &str) -> String {
    format!("/admin/studio/objects/{object}")
}

fn field_url(object: &str, field: &str) -> String {
    format!("/admin/studio/objects/{object}/fields/{field}")
}

fn list_url(object: &str) -> String {
    format!("/admin/studio/objects/{object}/list")
}

// ---------------------------------------------------------------------------------------
// The object page

#[derive(Debug, Serialize)]
struct ObjectPage {
    section: &'static str,
    applied: Option<i64>,
    name: String,
    label: String,
    fields: Vec<FieldRow>,
    columns: Vec<String>,
    search: Vec<String>,
    duplicates: Vec<String>,
    new_url: String,
    list_url: String,
}

#[derive(Debug, Serialize)]
struct FieldRow {
    name: String,
    label: String,
    /// The type's catalog key.
    kind: String,
    required: bool,
    list_column: bool,
    url: String,
}

/// `GET /admin/studio/objects/{object}`.
async fn object_page(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(applied): Query<Applied>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    latest(&state, &viewer).await?;
    let schema = state.schema();
    let object = schema.object(&name).ok_or_else(not_found)?;
    let formatter = frame.formatter(&state);
    let label_of = |name: &str| column_label(&state, &frame, &formatter, object, name);
    let page = ObjectPage {
        section: "studio",
        applied: applied.applied,
        label: object_label(&formatter, object),
        fields: object
            .fields
            .values()
            .map(|field| FieldRow {
                name: field.name.clone(),
                label: formatter.field_label(field),
                kind: type_key(field.kind.type_name()),
                required: field.required,
                list_column: object.list.columns.contains(&field.name),
                url: field_url(&object.name, &field.name),
            })
            .collect(),
        columns: object
            .list
            .columns
            .iter()
            .map(|name| label_of(name))
            .collect(),
        search: object.search.iter().map(|name| label_of(name)).collect(),
        duplicates: object
            .duplicates
            .iter()
            .map(|key| {
                key.fields
                    .iter()
                    .map(|name| label_of(name))
                    .collect::<Vec<_>>()
                    .join(" + ")
            })
            .collect(),
        new_url: format!("{}/fields/new", object_url(&object.name)),
        list_url: list_url(&object.name),
        name: object.name.clone(),
    };
    render(&state, &frame, "admin/studio/object.html", page)
}

/// The catalog key of a field type's name.
fn type_key(type_name: &str) -> String {
    format!("studio.object.types.{type_name}")
}

/// The label of a field or system field of `object`, as a list column or filter shows it.
fn column_label(
    state: &AppState,
    frame: &Frame,
    formatter: &Formatter,
    object: &Object,
    name: &str,
) -> String {
    match object.fields.get(name) {
        Some(field) => formatter.field_label(field),
        None if keel_meta::system::is_system_field(name) => {
            tr(state, &frame.lang, &format!("list.system.{name}"), &[])
        }
        None => name.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// The field editor

#[derive(Debug, Serialize)]
struct FieldPage {
    section: &'static str,
    applied: Option<i64>,
    /// `new` or `edit`.
    mode: &'static str,
    object: String,
    object_label: String,
    object_url: String,
    action: String,
    base: i64,
    name: String,
    field_label: String,
    field_type: String,
    /// The types the select offers; a single one is shown fixed.
    types: Vec<Choice>,
    label_en: String,
    label_zh: String,
    help_en: String,
    help_zh: String,
    options: Vec<OptionRow>,
    /// The index the next row added by script takes.
    next_option: usize,
    required: bool,
    unique: bool,
    mask: bool,
    default: String,
    sections: Vec<Choice>,
    list_column: bool,
    errors: Errors,
}

#[derive(Debug, Serialize)]
struct OptionRow {
    index: usize,
    key: String,
    label_en: String,
    label_zh: String,
    remove: bool,
}

/// What a field form says, as posted: the form operation's form, and the rows as the page
/// shows them again.
struct PostedField {
    form: FieldForm,
    rows: Vec<OptionRow>,
    /// The row index of each option in `form.options`.
    option_rows: Vec<usize>,
    default_text: String,
    base: Option<i64>,
}

/// `GET /admin/studio/objects/{object}/fields/new`.
async fn new_field(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path(object): Path<String>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let (base, _) = latest(&state, &viewer).await?;
    let schema = state.schema();
    let known = schema.object(&object).ok_or_else(not_found)?;
    let form = FieldForm {
        name: String::new(),
        field_type: "text".to_owned(),
        label: LabelForm::default(),
        help: LabelForm::default(),
        options: Vec::new(),
        required: false,
        unique: false,
        mask: false,
        default: None,
        section: (!known.layout.is_empty()).then_some(0),
        list_column: false,
    };
    let rows = option_rows(&form.options);
    let page = field_page(
        &state,
        &frame,
        known,
        None,
        &form,
        rows,
        String::new(),
        base,
    )?;
    render(&state, &frame, "admin/studio/field.html", page)
}

/// `GET /admin/studio/objects/{object}/fields/{field}`.
async fn edit_field(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path((object, field)): Path<(String, String)>,
    Query(applied): Query<Applied>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let (base, files) = latest(&state, &viewer).await?;
    let schema = state.schema();
    let known = schema.object(&object).ok_or_else(not_found)?;
    let existing = known.fields.get(&field).ok_or_else(not_found)?;
    let form = forms::field_form(&files, &known.name, &existing.name).ok_or_else(not_found)?;
    let rows = option_rows(&form.options);
    let default = form.default.as_ref().map(default_text).unwrap_or_default();
    let mut page = field_page(
        &state,
        &frame,
        known,
        Some(&existing.kind),
        &form,
        rows,
        default,
        base,
    )?;
    page.applied = applied.applied;
    render(&state, &frame, "admin/studio/field.html", page)
}

/// `POST /admin/studio/objects/{object}/fields/new`.
async fn create_field(
    Pinned(state): Pinned,
    Path(object): Path<String>,
    form: PageForm,
) -> Result<Response, PageError> {
    save_field(&state, &form, &object, None).await
}

/// `POST /admin/studio/objects/{object}/fields/{field}`.
async fn update_field(
    Pinned(state): Pinned,
    Path((object, field)): Path<(String, String)>,
    form: PageForm,
) -> Result<Response, PageError> {
    save_field(&state, &form, &object, Some(&field)).await
}

/// Runs `save_field` with what the form says and shows the review, or the form again with
/// the error. `field` is `None` for a new field.
async fn save_field(
    state: &AppState,
    posted: &PageForm,
    object: &str,
    field: Option<&str>,
) -> Result<Response, PageError> {
    let viewer = &posted.viewer;
    let frame = console_frame(state, viewer).await?;
    let (latest_version, files) = latest(state, viewer).await?;
    let schema = state.schema();
    let known = schema.object(object).ok_or_else(not_found)?;
    let existing = match field {
        Some(field) => Some(known.fields.get(field).ok_or_else(not_found)?),
        None => None,
    };
    let original = existing.and_then(|existing| forms::field_form(&files, object, &existing.name));
    let read = read_field_form(posted, existing.map(|field| field.name.as_str()), original);
    let lang = frame.lang.clone();
    let text = |key: &str, args: &[(&str, String)]| tr(state, &lang, key, args);
    let allowed = match existing {
        Some(existing) => allowed_types(&existing.kind),
        None => NEW_TYPES.to_vec(),
    };
    let checked = if !allowed.contains(&read.form.field_type.as_str()) {
        Err(FormError {
            field: "type".to_owned(),
            message: text("studio.object.field.bad_type", &[]),
        })
    } else if existing.is_none() && known.fields.contains_key(&read.form.name) {
        Err(FormError {
            field: "name".to_owned(),
            message: text(
                "studio.object.field.taken",
                &[("name", read.form.name.clone())],
            ),
        })
    } else {
        forms::save_field(&files, schema, &known.name, &read.form)
    };
    match checked {
        Ok(changes) => {
            let label = object_label(&frame.formatter(state), known);
            let change = Change {
                title: text(
                    "studio.object.field.change",
                    &[("field", read.form.name.clone()), ("object", label)],
                ),
                back: match existing {
                    Some(existing) => field_url(&known.name, &existing.name),
                    None => object_url(&known.name),
                },
                base: read.base.unwrap_or(latest_version),
                changes: changes
                    .into_iter()
                    .map(|(path, text)| (path, Some(text)))
                    .collect(),
            };
            review(state, viewer, change).await
        }
        Err(error) => {
            let error = FormError {
                field: option_error_field(&error.field, &read.option_rows),
                message: error.message,
            };
            let mut page = field_page(
                state,
                &frame,
                known,
                existing.map(|field| &field.kind),
                &read.form,
                read.rows,
                read.default_text,
                read.base.unwrap_or(latest_version),
            )?;
            page.errors = form_errors(state, &frame.lang, &error, |name| {
                [
                    "name",
                    "type",
                    "label",
                    "help",
                    "options",
                    "default",
                    "section",
                    "list_column",
                ]
                .contains(&name)
                    || name.starts_with("options/")
            });
            render_with_status(
                state,
                &frame,
                "admin/studio/field.html",
                page,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

/// `options/<n>/…` of the form operation (the n-th option it was given) as the row the page
/// shows that option in.
fn option_error_field(field: &str, option_rows: &[usize]) -> String {
    let Some(rest) = field.strip_prefix("options/") else {
        return field.to_owned();
    };
    let (index, tail) = rest.split_once('/').unwrap_or((rest, ""));
    match index.parse::<usize>().ok().and_then(|n| option_rows.get(n)) {
        Some(row) if tail.is_empty() => format!("options/{row}"),
        Some(row) => format!("options/{row}/{tail}"),
        None => field.to_owned(),
    }
}

/// The rows of `options`, and [`EMPTY_ROWS`] empty ones after them.
fn option_rows(options: &[ChoiceOptionForm]) -> Vec<OptionRow> {
    options
        .iter()
        .map(|option| (option.key.clone(), option.label.clone()))
        .chain(std::iter::repeat_n(
            (String::new(), LabelForm::default()),
            EMPTY_ROWS,
        ))
        .enumerate()
        .map(|(index, (key, label))| OptionRow {
            index,
            key,
            label_en: label.en,
            label_zh: label.zh,
            remove: false,
        })
        .collect()
}

/// A default value as the form shows it: text as it is, a number or a yes/no as written,
/// several choices separated by commas.
fn default_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Array(items) => items
            .iter()
            .map(default_text)
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// The default the form's text means for a field of `field_type`: the value the field had
/// when the text is unchanged (so saving a form unchanged changes nothing), else a number
/// for a number field that parses as one, `true`/`false` for a yes/no field, a list for a
/// multiple choice, text otherwise (the loader says whether it suits the field).
fn default_value(text: &str, field_type: &str, original: Option<&Value>) -> Option<Value> {
    let text = text.trim();
    if let Some(original) = original
        && default_text(original) == text
    {
        return Some(original.clone());
    }
    if text.is_empty() {
        return None;
    }
    let value = match field_type {
        "integer" | "decimal" | "money" | "percent" => {
            serde_json::from_str::<serde_json::Number>(text)
                .map_or_else(|_| Value::String(text.to_owned()), Value::Number)
        }
        "boolean" => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.to_owned()),
        },
        "multi_choice" => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|key| !key.is_empty())
                .map(|key| Value::String(key.to_owned()))
                .collect(),
        ),
        _ => Value::String(text.to_owned()),
    };
    Some(value)
}

/// Reads a posted field form. `field` is the existing field's name (`None`: the form names
/// it); `original` its form as the files have it, whose default an unchanged text keeps.
fn read_field_form(
    posted: &PageForm,
    field: Option<&str>,
    original: Option<FieldForm>,
) -> PostedField {
    let value = |name: &str| posted.get(name).unwrap_or_default().to_owned();
    let flag = |name: &str| matches!(posted.get(name), Some("on" | "true"));
    let mut rows: BTreeMap<usize, OptionRow> = BTreeMap::new();
    for (name, text) in &posted.fields {
        let Some((index, part)) = name
            .strip_prefix("options/")
            .and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        let Some(index) = index
            .parse::<usize>()
            .ok()
            .filter(|index| *index < MAX_ROWS)
        else {
            continue;
        };
        let row = rows.entry(index).or_insert_with(|| OptionRow {
            index,
            key: String::new(),
            label_en: String::new(),
            label_zh: String::new(),
            remove: false,
        });
        match part {
            "key" => row.key = text.clone(),
            "label_en" => row.label_en = text.trim().to_owned(),
            "label_zh" => row.label_zh = text.trim().to_owned(),
            "remove" => row.remove = matches!(text.as_str(), "on" | "true"),
            _ => {}
        }
    }
    let mut options = Vec::new();
    let mut option_rows = Vec::new();
    for row in rows.values() {
        let empty = row.key.is_empty() && row.label_en.is_empty() && row.label_zh.is_empty();
        if row.remove || empty {
            continue;
        }
        options.push(ChoiceOptionForm {
            key: row.key.clone(),
            label: LabelForm {
                en: row.label_en.clone(),
                zh: row.label_zh.clone(),
            },
        });
        option_rows.push(row.index);
    }
    let field_type = value("type");
    let default_text = value("default");
    let original_default = original.as_ref().and_then(|form| form.default.as_ref());
    let form = FieldForm {
        name: field.map_or_else(|| value("name").trim().to_owned(), str::to_owned),
        default: default_value(&default_text, &field_type, original_default),
        field_type,
        label: LabelForm {
            en: value("label_en").trim().to_owned(),
            zh: value("label_zh").trim().to_owned(),
        },
        help: LabelForm {
            en: value("help_en").trim().to_owned(),
            zh: value("help_zh").trim().to_owned(),
        },
        options,
        required: flag("required"),
        unique: flag("unique"),
        mask: flag("mask"),
        section: posted
            .get("section")
            .and_then(|section| section.parse::<usize>().ok()),
        list_column: flag("list_column"),
    };
    PostedField {
        form,
        rows: rows.into_values().collect(),
        option_rows,
        default_text,
        base: posted.get("base").and_then(|base| base.parse().ok()),
    }
}

/// The field editor's page for `form`. `existing` is the field's kind as it is (`None`: a new
/// field).
#[allow(clippy::too_many_arguments)]
fn field_page(
    state: &AppState,
    frame: &Frame,
    object: &Object,
    existing: Option<&FieldKind>,
    form: &FieldForm,
    mut rows: Vec<OptionRow>,
    default: String,
    base: i64,
) -> Result<FieldPage, PageError> {
    let formatter = frame.formatter(state);
    let text = |key: &str| tr(state, &frame.lang, key, &[]);
    let allowed = existing.map_or_else(|| NEW_TYPES.to_vec(), allowed_types);
    let types = allowed
        .iter()
        .map(|name| choice(*name, text(&type_key(name)), *name == form.field_type))
        .collect();
    // A form shown again keeps its rows; it always has empty rows to add an option to.
    let empty = rows
        .iter()
        .rev()
        .take_while(|row| row.key.is_empty() && row.label_en.is_empty() && row.label_zh.is_empty())
        .count();
    let next = rows.last().map_or(0, |row| row.index + 1);
    for index in next..next + EMPTY_ROWS.saturating_sub(empty) {
        rows.push(OptionRow {
            index,
            key: String::new(),
            label_en: String::new(),
            label_zh: String::new(),
            remove: false,
        });
    }
    let sections = std::iter::once(choice(
        "",
        text("studio.object.field.no_section"),
        form.section.is_none(),
    ))
    .chain(object.layout.iter().enumerate().map(|(index, section)| {
        choice(
            index.to_string(),
            formatter.label(Some(&section.section), &index.to_string()),
            form.section == Some(index),
        )
    }))
    .collect();
    let field_label = existing
        .and_then(|_| object.fields.get(&form.name))
        .map(|field| formatter.field_label(field))
        .unwrap_or_default();
    let action = match existing {
        Some(_) => field_url(&object.name, &form.name),
        None => format!("{}/fields/new", object_url(&object.name)),
    };
    Ok(FieldPage {
        section: "studio",
        applied: None,
        mode: if existing.is_some() { "edit" } else { "new" },
        object: object.name.clone(),
        object_label: object_label(&formatter, object),
        object_url: object_url(&object.name),
        action,
        base,
        name: form.name.clone(),
        field_label,
        field_type: form.field_type.clone(),
        types,
        label_en: form.label.en.clone(),
        label_zh: form.label.zh.clone(),
        help_en: form.help.en.clone(),
        help_zh: form.help.zh.clone(),
        next_option: rows.last().map_or(0, |row| row.index + 1),
        options: rows,
        required: form.required,
        unique: form.unique,
        mask: form.mask,
        default,
        sections,
        list_column: form.list_column,
        errors: Errors::new(),
    })
}

// ---------------------------------------------------------------------------------------
// The list settings

#[derive(Debug, Serialize)]
struct ListPage {
    section: &'static str,
    applied: Option<i64>,
    object: String,
    object_label: String,
    object_url: String,
    action: String,
    base: i64,
    /// One select per column slot, each offering every field.
    columns: Vec<Slot>,
    search: Vec<SearchField>,
    duplicates: Vec<DuplicateRow>,
    next_duplicate: usize,
    key_fields: usize,
    errors: Errors,
}

/// A select of a field (a list column, a duplicate key's field): every field to choose from.
#[derive(Debug, Serialize)]
struct Slot {
    index: usize,
    choices: Vec<Choice>,
}

#[derive(Debug, Serialize)]
struct SearchField {
    name: String,
    label: String,
    checked: bool,
}

#[derive(Debug, Serialize)]
struct DuplicateRow {
    index: usize,
    fields: Vec<Slot>,
    actions: Vec<Choice>,
    remove: bool,
}

/// A posted list settings form: the form operation's form, what each row and slot held (to
/// show the form again), and where each value came from (to put an error next to it).
struct PostedList {
    form: ListSettingsForm,
    /// Column slot → field name, as posted.
    column_slots: BTreeMap<usize, String>,
    /// The slot of each of `form.columns`.
    column_of: Vec<usize>,
    /// Row → (slot → field name, action, remove), as posted.
    duplicate_rows: BTreeMap<usize, (BTreeMap<usize, String>, String, bool)>,
    /// The row of each of `form.duplicates`, and the slot of each of its fields.
    duplicate_of: Vec<(usize, Vec<usize>)>,
    base: Option<i64>,
}

/// `GET /admin/studio/objects/{object}/list`.
async fn list_settings(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path(object): Path<String>,
    Query(applied): Query<Applied>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let (base, files) = latest(&state, &viewer).await?;
    let schema = state.schema();
    let known = schema.object(&object).ok_or_else(not_found)?;
    let form = forms::list_settings_form(&files, &known.name).ok_or_else(not_found)?;
    let posted = PostedList {
        column_slots: form.columns.iter().cloned().enumerate().collect(),
        column_of: (0..form.columns.len()).collect(),
        duplicate_rows: form
            .duplicates
            .iter()
            .enumerate()
            .map(|(row, key)| {
                (
                    row,
                    (
                        key.fields.iter().cloned().enumerate().collect(),
                        action_name(key.action).to_owned(),
                        false,
                    ),
                )
            })
            .collect(),
        duplicate_of: Vec::new(),
        base: Some(base),
        form,
    };
    let mut page = list_page(&state, &frame, known, &posted, base);
    page.applied = applied.applied;
    render(&state, &frame, "admin/studio/list.html", page)
}

/// `POST /admin/studio/objects/{object}/list`.
async fn save_list_settings(
    Pinned(state): Pinned,
    Path(object): Path<String>,
    posted: PageForm,
) -> Result<Response, PageError> {
    let viewer = &posted.viewer;
    let frame = console_frame(&state, viewer).await?;
    let (latest_version, files) = latest(&state, viewer).await?;
    let schema = state.schema();
    let known = schema.object(&object).ok_or_else(not_found)?;
    let original = forms::list_settings_form(&files, &known.name).ok_or_else(not_found)?;
    let read = read_list_form(&posted, &original);
    let base = read.base.unwrap_or(latest_version);
    match forms::save_list_settings(&files, schema, &known.name, &read.form) {
        Ok(changes) => {
            let label = object_label(&frame.formatter(&state), known);
            let change = Change {
                title: tr(
                    &state,
                    &frame.lang,
                    "studio.object.list.change",
                    &[("object", label)],
                ),
                back: list_url(&known.name),
                base,
                changes: changes
                    .into_iter()
                    .map(|(path, text)| (path, Some(text)))
                    .collect(),
            };
            review(&state, viewer, change).await
        }
        Err(error) => {
            let field = list_error_field(&error.field, &read);
            let mut page = list_page(&state, &frame, known, &read, base);
            page.errors = form_errors(
                &state,
                &frame.lang,
                &FormError {
                    field,
                    message: error.message,
                },
                |name| {
                    name == "columns"
                        || name == "search"
                        || name.starts_with("columns/")
                        || name.starts_with("duplicates/")
                },
            );
            render_with_status(
                &state,
                &frame,
                "admin/studio/list.html",
                page,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

fn action_name(action: DuplicateAction) -> &'static str {
    match action {
        DuplicateAction::Block => "block",
        DuplicateAction::Warn => "warn",
    }
}

/// The form field of the page that a `save_list_settings` error names: a column's slot, the
/// search checkboxes, a duplicate key's row and slot.
fn list_error_field(field: &str, read: &PostedList) -> String {
    let parts: Vec<&str> = field.split('/').collect();
    let number = |text: &str| text.parse::<usize>().ok();
    match parts.as_slice() {
        ["columns", n] => match number(n).and_then(|n| read.column_of.get(n)) {
            Some(slot) => format!("columns/{slot}"),
            None => "columns".to_owned(),
        },
        ["search", ..] => "search".to_owned(),
        ["duplicates", n, rest @ ..] => {
            let Some((row, slots)) = number(n).and_then(|n| read.duplicate_of.get(n)) else {
                return field.to_owned();
            };
            match rest {
                ["fields", m] => match number(m).and_then(|m| slots.get(m)) {
                    Some(slot) => format!("duplicates/{row}/fields/{slot}"),
                    None => format!("duplicates/{row}"),
                },
                _ => format!("duplicates/{row}"),
            }
        }
        _ => field.to_owned(),
    }
}

/// Reads a posted list settings form. The search fields keep the order `original` has them
/// in (the checkboxes come in the fields' order), new ones after.
fn read_list_form(posted: &PageForm, original: &ListSettingsForm) -> PostedList {
    let index_of = |text: &str| text.parse::<usize>().ok().filter(|index| *index < MAX_ROWS);
    let mut column_slots = BTreeMap::new();
    let mut duplicate_rows: BTreeMap<usize, (BTreeMap<usize, String>, String, bool)> =
        BTreeMap::new();
    for (name, value) in &posted.fields {
        let parts: Vec<&str> = name.split('/').collect();
        match parts.as_slice() {
            ["columns", slot] => {
                if let Some(slot) = index_of(slot) {
                    column_slots.insert(slot, value.clone());
                }
            }
            ["duplicates", row, rest @ ..] => {
                let Some(row) = index_of(row) else { continue };
                let entry = duplicate_rows.entry(row).or_default();
                match rest {
                    ["fields", slot] => {
                        if let Some(slot) = index_of(slot) {
                            entry.0.insert(slot, value.clone());
                        }
                    }
                    ["action"] => entry.1 = value.clone(),
                    ["remove"] => entry.2 = matches!(value.as_str(), "on" | "true"),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let (column_of, columns): (Vec<usize>, Vec<String>) = column_slots
        .iter()
        .filter(|(_, name)| !name.is_empty())
        .map(|(slot, name)| (*slot, name.clone()))
        .unzip();
    let checked = posted.all("search");
    let mut search: Vec<String> = original
        .search
        .iter()
        .filter(|name| checked.contains(&name.as_str()))
        .cloned()
        .collect();
    for name in checked {
        if !search.iter().any(|known| known == name) {
            search.push(name.to_owned());
        }
    }
    let mut duplicates = Vec::new();
    let mut duplicate_of = Vec::new();
    for (row, (slots, action, remove)) in &duplicate_rows {
        let (used, fields): (Vec<usize>, Vec<String>) = slots
            .iter()
            .filter(|(_, name)| !name.is_empty())
            .map(|(slot, name)| (*slot, name.clone()))
            .unzip();
        if *remove || fields.is_empty() {
            continue;
        }
        duplicates.push(DuplicateKeyForm {
            fields,
            action: if action == "warn" {
                DuplicateAction::Warn
            } else {
                DuplicateAction::Block
            },
        });
        duplicate_of.push((*row, used));
    }
    PostedList {
        form: ListSettingsForm {
            columns,
            search,
            duplicates,
        },
        column_slots,
        column_of,
        duplicate_rows,
        duplicate_of,
        base: posted.get("base").and_then(|base| base.parse().ok()),
    }
}

/// The list settings page for what `posted` holds (the files' settings, or a form posted).
fn list_page(
    state: &AppState,
    frame: &Frame,
    object: &Object,
    posted: &PostedList,
    base: i64,
) -> ListPage {
    let formatter = frame.formatter(state);
    let text = |key: &str| tr(state, &frame.lang, key, &[]);
    // Every field a column may show: the declared ones, then the system fields a record
    // carries.
    let fields: Vec<(String, String)> = object
        .fields
        .values()
        .map(|field| (field.name.clone(), formatter.field_label(field)))
        .chain(object.returned_system_fields().map(|field| {
            (
                field.name.to_owned(),
                column_label(state, frame, &formatter, object, field.name),
            )
        }))
        .collect();
    let declared: Vec<(String, String)> = fields
        .iter()
        .filter(|(name, _)| object.fields.contains_key(name))
        .cloned()
        .collect();
    let slot = |index: usize, current: &str, offer: &[(String, String)]| {
        let mut choices = vec![choice(
            "",
            text("studio.object.list.none"),
            current.is_empty(),
        )];
        for (name, label) in offer {
            choices.push(choice(
                name.clone(),
                format!("{label} ({name})"),
                name == current,
            ));
        }
        // A name the object does not have (posted, or in the file) stays on the form.
        if !current.is_empty() && !offer.iter().any(|(name, _)| name == current) {
            choices.push(choice(current, current, true));
        }
        Slot { index, choices }
    };
    let filled = posted
        .column_slots
        .keys()
        .next_back()
        .map_or(0, |last| last + 1);
    let empty_tail = posted
        .column_slots
        .values()
        .rev()
        .take_while(|name| name.is_empty())
        .count();
    let columns = (0..filled + EMPTY_ROWS.saturating_sub(empty_tail))
        .map(|index| {
            let current = posted.column_slots.get(&index).map_or("", String::as_str);
            slot(index, current, &fields)
        })
        .collect();
    let search = declared
        .iter()
        .map(|(name, label)| SearchField {
            name: name.clone(),
            label: label.clone(),
            checked: posted.form.search.contains(name),
        })
        .collect();
    let widest = posted
        .duplicate_rows
        .values()
        .filter_map(|(slots, _, _)| slots.keys().next_back().map(|last| last + 1))
        .max()
        .unwrap_or(0)
        .max(KEY_FIELDS);
    let row =
        |index: usize, slots: &BTreeMap<usize, String>, action: &str, remove: bool| DuplicateRow {
            index,
            fields: (0..widest)
                .map(|slot_index| {
                    let current = slots.get(&slot_index).map_or("", String::as_str);
                    slot(slot_index, current, &declared)
                })
                .collect(),
            actions: ["block", "warn"]
                .into_iter()
                .map(|name| {
                    choice(
                        name,
                        text(&format!("studio.object.list.action_{name}")),
                        name == action || (action.is_empty() && name == "block"),
                    )
                })
                .collect(),
            remove,
        };
    let mut duplicates: Vec<DuplicateRow> = posted
        .duplicate_rows
        .iter()
        .map(|(index, (slots, action, remove))| row(*index, slots, action, *remove))
        .collect();
    let next = posted
        .duplicate_rows
        .keys()
        .next_back()
        .map_or(0, |last| last + 1);
    let empty_rows = posted
        .duplicate_rows
        .values()
        .rev()
        .take_while(|(slots, _, _)| slots.values().all(String::is_empty))
        .count();
    for index in next..next + (EMPTY_ROWS - 1).saturating_sub(empty_rows) {
        duplicates.push(row(index, &BTreeMap::new(), "", false));
    }
    ListPage {
        section: "studio",
        applied: None,
        object: object.name.clone(),
        object_label: object_label(&formatter, object),
        object_url: object_url(&object.name),
        action: list_url(&object.name),
        base,
        columns,
        search,
        next_duplicate: duplicates.last().map_or(0, |row| row.index + 1),
        duplicates,
        key_fields: widest,
        errors: Errors::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_at_the_nth_option_is_shown_at_its_row() {
        assert_eq!(
            option_error_field("options/1/key", &[0, 3]),
            "options/3/key"
        );
        assert_eq!(option_error_field("options/0", &[2]), "options/2");
        assert_eq!(option_error_field("options", &[2]), "options");
        assert_eq!(option_error_field("options/9/key", &[2]), "options/9/key");
        assert_eq!(option_error_field("name", &[]), "name");
    }

    #[test]
    fn the_studio_explains_the_form_errors_it_knows() {
        let error = |field: &str, message: &str| FormError {
            field: field.to_owned(),
            message: message.to_owned(),
        };
        assert_eq!(
            error_key(&error("options/2/key", "the key `a` is used twice")),
            Some("studio.object.error.key_twice")
        );
        assert_eq!(
            error_key(&error(
                "options/0/key",
                "a key is text without leading or trailing spaces"
            )),
            Some("studio.object.error.key_spaces")
        );
        assert_eq!(
            error_key(&error("columns/1", "no field `nope`")),
            Some("studio.object.error.no_field")
        );
        assert_eq!(
            error_key(&error("name", "`owner` is a system field")),
            Some("studio.object.error.system_name")
        );
        assert_eq!(
            error_key(&error("metadata/objects/lead.yaml", "/x: no")),
            None
        );
    }

    #[test]
    fn an_unchanged_default_keeps_its_value_and_a_new_one_takes_the_fields_type() {
        let zero = serde_json::json!(0);
        assert_eq!(
            default_value("0", "integer", Some(&zero)),
            Some(zero.clone())
        );
        assert_eq!(default_value("", "integer", Some(&zero)), None);
        assert_eq!(
            default_value("12.5", "decimal", None),
            Some(serde_json::json!(12.5))
        );
        assert_eq!(
            default_value("true", "boolean", None),
            Some(serde_json::json!(true))
        );
        assert_eq!(
            default_value("a, b", "multi_choice", None),
            Some(serde_json::json!(["a", "b"]))
        );
        assert_eq!(
            default_value("new", "choice", None),
            Some(serde_json::json!("new"))
        );
        let many = serde_json::json!(["a", "b"]);
        assert_eq!(default_text(&many), "a, b");
        assert_eq!(
            default_value("a, b", "multi_choice", Some(&many)),
            Some(many)
        );
    }

    #[test]
    fn an_existing_field_changes_only_to_a_type_its_values_convert_to() {
        assert!(allowed_types(&FieldKind::Integer).contains(&"decimal"));
        assert!(!allowed_types(&FieldKind::Text).contains(&"integer"));
        assert_eq!(
            allowed_types(&FieldKind::Autonumber {
                format: "A-{0000}".to_owned()
            }),
            vec!["autonumber"]
        );
        assert!(allowed_types(&FieldKind::Date).contains(&"datetime"));
    }
}
