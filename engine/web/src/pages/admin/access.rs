//! `/admin/access` ("why can this user see this record?": the runtime's explanation of a
//! user's access to an object or one record, in words) and `/admin/audit` (the log of
//! access changes, newest first, paged).

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use keel_runtime::auth::AuthError;
use keel_runtime::records::RecordError;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::users::role_label;
use super::{console_frame, tr};
use crate::AppState;
use crate::extract::Pinned;
use crate::pages::{PageError, Viewer, render, render_with_status};

#[derive(Debug, Default, Deserialize)]
pub struct AccessQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    object: String,
    #[serde(default)]
    id: String,
}

#[derive(Debug, Serialize)]
struct SelectOption {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Debug, Serialize)]
struct AccessPage {
    section: &'static str,
    users: Vec<SelectOption>,
    objects: Vec<SelectOption>,
    id: String,
    /// Why the question could not be answered (an unknown user, object or record).
    error: Option<String>,
    answer: Option<Answer>,
}

/// The explanation, ready to read.
#[derive(Debug, Serialize)]
struct Answer {
    user: String,
    object_label: String,
    id: Option<String>,
    /// The record's title and its owner's name, as an admin reads them (none for a record
    /// in the recycle bin).
    record_title: Option<String>,
    owner: Option<String>,
    admin: bool,
    roles: Vec<String>,
    actions: Vec<ActionAnswer>,
    fields: Vec<FieldAnswer>,
}

#[derive(Debug, Serialize)]
struct ActionAnswer {
    /// `read`, `edit`, `delete` or `create`.
    action: String,
    allowed: bool,
    /// The sentence that says why.
    why: String,
    grants: Vec<GrantAnswer>,
}

#[derive(Debug, Serialize)]
struct GrantAnswer {
    role: String,
    scope: String,
    matches: bool,
}

#[derive(Debug, Serialize)]
struct FieldAnswer {
    name: String,
    label: String,
    access: String,
    masked: bool,
}

/// `GET /admin/access?user=&object=&id=`: the form, and the answer once a user and an
/// object are chosen.
pub async fn page(
    Pinned(state): Pinned,
    viewer: Viewer,
    Query(query): Query<AccessQuery>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let formatter = frame.formatter(&state);
    let schema = state.schema().clone();
    let lang = frame.lang.clone();
    let users = state.auth().list_users(&viewer.actor).await?;
    let mut user_options = vec![SelectOption {
        value: String::new(),
        label: "—".to_owned(),
        selected: query.user.is_empty(),
    }];
    user_options.extend(users.iter().map(|user| SelectOption {
        value: user.username.clone(),
        label: match &user.display_name {
            Some(name) => format!("{name} ({})", user.username),
            None => user.username.clone(),
        },
        selected: user.username == query.user,
    }));
    let objects = schema
        .objects
        .values()
        .map(|object| SelectOption {
            value: object.name.clone(),
            label: formatter.label(Some(&object.label), &object.name),
            selected: object.name == query.object,
        })
        .collect();
    let mut page = AccessPage {
        section: "access",
        users: user_options,
        objects,
        id: query.id.trim().to_owned(),
        error: None,
        answer: None,
    };
    if query.user.is_empty() || query.object.is_empty() {
        return render(&state, &frame, "admin/access.html", page);
    }
    let id = Some(page.id.clone()).filter(|id| !id.is_empty());
    let subject = match state.auth().actor_named(&viewer.actor, &query.user).await {
        Ok(subject) => subject,
        Err(AuthError::UnknownUser(name)) => {
            page.error = Some(tr(
                &state,
                &lang,
                "admin.access.unknown_user",
                &[("name", name)],
            ));
            return render_with_status(
                &state,
                &frame,
                "admin/access.html",
                page,
                StatusCode::NOT_FOUND,
            );
        }
        Err(other) => return Err(other.into()),
    };
    let explained = match state
        .records()
        .explain_access(&viewer.actor, &subject, &query.object, id.as_deref())
        .await
    {
        Ok(explained) => explained,
        Err(RecordError::NotFound) => {
            page.error = Some(tr(&state, &lang, "admin.access.unknown_record", &[]));
            return render_with_status(
                &state,
                &frame,
                "admin/access.html",
                page,
                StatusCode::NOT_FOUND,
            );
        }
        Err(RecordError::UnknownObject(_)) => {
            page.error = Some(tr(&state, &lang, "admin.access.unknown_object", &[]));
            return render_with_status(
                &state,
                &frame,
                "admin/access.html",
                page,
                StatusCode::NOT_FOUND,
            );
        }
        Err(other) => return Err(other.into()),
    };
    let Some(object) = schema.object(&query.object) else {
        return Err(super::not_found());
    };
    let scope_text = |scope: &str| tr(&state, &lang, &format!("admin.scope.{scope}"), &[]);
    let mut actions = Vec::new();
    for action in ["read", "edit", "delete"] {
        let entry = &explained["actions"][action];
        let allowed = entry["allowed"].as_bool().unwrap_or(false);
        let grants: Vec<GrantAnswer> = entry["grants"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|grant| GrantAnswer {
                role: role_label(&state, &lang, grant["role"].as_str().unwrap_or("")),
                scope: scope_text(grant["scope"].as_str().unwrap_or("none")),
                matches: grant["matches"].as_bool().unwrap_or(false),
            })
            .collect();
        let why = why(&state, &lang, allowed, id.is_some(), &grants);
        actions.push(ActionAnswer {
            action: action.to_owned(),
            allowed,
            why,
            grants,
        });
    }
    let create = &explained["actions"]["create"];
    let creating: Vec<String> = create["roles"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(Json::as_str)
        .map(|role| role_label(&state, &lang, role))
        .collect();
    let create_allowed = create["allowed"].as_bool().unwrap_or(false);
    actions.push(ActionAnswer {
        action: "create".to_owned(),
        allowed: create_allowed,
        why: if create_allowed {
            tr(
                &state,
                &lang,
                "admin.access.create_by",
                &[("roles", creating.join(", "))],
            )
        } else {
            tr(&state, &lang, "admin.access.no_role", &[])
        },
        grants: Vec::new(),
    });
    let fields = object
        .fields
        .values()
        .map(|field| {
            let shown = &explained["fields"][&field.name];
            FieldAnswer {
                name: field.name.clone(),
                label: formatter.field_label(field),
                access: shown["access"].as_str().unwrap_or("hidden").to_owned(),
                masked: shown["masked"].as_bool().unwrap_or(false),
            }
        })
        .collect();
    let record = match &id {
        Some(id) => state
            .records()
            .get(&viewer.actor, &object.name, id)
            .await
            .ok(),
        None => None,
    };
    let record_title = record.as_ref().and_then(|record| {
        record
            .get(&object.title)
            .and_then(Json::as_str)
            .map(str::to_owned)
    });
    let owner = record.as_ref().and_then(|record| {
        record["_refs"]["owner"]["title"]
            .as_str()
            .map(str::to_owned)
    });
    page.answer = Some(Answer {
        record_title,
        owner,
        user: subject.display_name.clone().map_or_else(
            || subject.username.clone(),
            |name| format!("{name} ({})", subject.username),
        ),
        object_label: formatter.label(Some(&object.label), &object.name),
        id,
        admin: explained["admin"].as_bool().unwrap_or(false),
        roles: subject
            .roles
            .iter()
            .map(|role| role_label(&state, &lang, role))
            .collect(),
        actions,
        fields,
    });
    render(&state, &frame, "admin/access.html", page)
}

/// The sentence that says why an action is allowed or not.
fn why(
    state: &AppState,
    lang: &str,
    allowed: bool,
    record: bool,
    grants: &[GrantAnswer],
) -> String {
    let list = |grants: &mut dyn Iterator<Item = &GrantAnswer>| {
        grants
            .map(|grant| format!("{} ({})", grant.role, grant.scope))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if grants.is_empty() {
        return tr(state, lang, "admin.access.no_role", &[]);
    }
    if allowed {
        let by = list(&mut grants.iter().filter(|grant| grant.matches));
        return tr(state, lang, "admin.access.allowed_by", &[("roles", by)]);
    }
    let all = list(&mut grants.iter());
    let key = if record {
        "admin.access.not_covered"
    } else {
        "admin.access.scope_none"
    };
    tr(state, lang, key, &[("roles", all)])
}

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// Read as text so that a hand-edited `?page=x` shows the first page, not an error.
    page: Option<String>,
}

/// Access changes per page of `/admin/audit`.
const AUDIT_PAGE: u32 = 50;
/// How far back the audit pages go (the runtime answers at most this many).
const AUDIT_MAX: u32 = 500;

#[derive(Debug, Serialize)]
struct AuditPage {
    section: &'static str,
    changes: Vec<AuditRow>,
    page: u32,
    prev: Option<String>,
    next: Option<String>,
}

#[derive(Debug, Serialize)]
struct AuditRow {
    at: String,
    by: String,
    subject_type: String,
    subject: String,
    action: String,
    field: String,
    old: String,
    new: String,
}

/// `GET /admin/audit?page=`: the newest access changes, [`AUDIT_PAGE`] a page.
pub async fn audit(
    Pinned(state): Pinned,
    viewer: Viewer,
    Query(query): Query<AuditQuery>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let formatter = frame.formatter(&state);
    let max_page = AUDIT_MAX / AUDIT_PAGE - 1;
    let page = query
        .page
        .and_then(|page| page.parse::<u32>().ok())
        .unwrap_or(0)
        .min(max_page);
    let limit = ((page + 1) * AUDIT_PAGE + 1).min(AUDIT_MAX);
    let changes = state.auth().access_changes(&viewer.actor, limit).await?;
    let start = (page * AUDIT_PAGE) as usize;
    let more = changes.len() > start + AUDIT_PAGE as usize && page < max_page;
    let rows = changes
        .into_iter()
        .skip(start)
        .take(AUDIT_PAGE as usize)
        .map(|change| AuditRow {
            at: formatter.datetime(&change.at),
            by: change.by.unwrap_or_else(|| "—".to_owned()),
            subject_type: change.subject_type.to_owned(),
            subject: change.subject,
            action: change.action,
            field: change.field,
            old: value_text(&change.old),
            new: value_text(&change.new),
        })
        .collect();
    render(
        &state,
        &frame,
        "admin/audit.html",
        AuditPage {
            section: "audit",
            changes: rows,
            page,
            prev: (page > 0).then(|| format!("/admin/audit?page={}", page - 1)),
            next: more.then(|| format!("/admin/audit?page={}", page + 1)),
        },
    )
}

/// A recorded value as text: strings as they are, lists joined, nothing as a dash.
fn value_text(value: &Json) -> String {
    match value {
        Json::Null => "—".to_owned(),
        Json::String(text) => text.clone(),
        Json::Array(items) => items
            .iter()
            .map(|item| match item {
                Json::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}
