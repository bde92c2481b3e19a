//! Users and departments: `/admin/users` (the list), `/admin/users/new` and
//! `/admin/users/{name}` (the forms), the separate forms that deactivate or reactivate a user
//! and reset their password, and `/admin/departments` (the list and a form to add one).
//!
//! Everything goes through `Auth`, which checks the roles, the manager chain, the department
//! and the email address; a refusal it can pin to a field is shown next to that field with
//! the form as it was sent (a 422), anything else is the error page.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keel_runtime::accounts::NewUser;
use keel_runtime::auth::{DepartmentView, NewDepartment, UserPatch, UserView};
use serde::{Deserialize, Serialize};

use super::{FieldError, console_frame, errors_by_field, form_error, not_found};
use crate::AppState;
use crate::extract::Pinned;
use crate::pages::{
    Frame, LANGUAGES, PageError, PageForm, Viewer, form_urlencode, render, render_with_status,
};

/// `?done=` after a redirect: which confirmation to show (a catalog key suffix).
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

impl From<Option<String>> for Done {
    fn from(done: Option<String>) -> Done {
        Done { done }
    }
}

impl Done {
    /// The confirmation's catalog key, for the few the pages send themselves.
    pub(super) fn key(&self) -> Option<&'static str> {
        match self.done.as_deref() {
            Some("created") => Some("admin.done.created"),
            Some("saved") => Some("admin.done.saved"),
            Some("password") => Some("admin.done.password"),
            Some("deactivated") => Some("admin.done.deactivated"),
            Some("reactivated") => Some("admin.done.reactivated"),
            Some("department") => Some("admin.done.department"),
            Some("retried") => Some("admin.done.retried"),
            Some("language") => Some("admin.done.language"),
            _ => None,
        }
    }
}

/// A user as a row of `#users`.
#[derive(Debug, Serialize)]
struct UserRow {
    username: String,
    name: String,
    roles: Vec<String>,
    manager: Option<String>,
    department: Option<String>,
    active: bool,
    language: Option<String>,
    email: Option<String>,
}

#[derive(Debug, Serialize)]
struct UsersPage {
    section: &'static str,
    users: Vec<UserRow>,
    done: Option<&'static str>,
}

/// A role, department or user to choose in a form.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Choice {
    value: String,
    label: String,
    selected: bool,
}

/// What the user form shows: the values (as sent, after a failed save) and the choices.
#[derive(Debug, Default, Serialize)]
struct UserFormPage {
    section: &'static str,
    /// `new` or `edit`.
    mode: &'static str,
    action: String,
    username: String,
    display_name: String,
    email: String,
    active: bool,
    roles: Vec<Choice>,
    managers: Vec<Choice>,
    departments: Vec<Choice>,
    languages: Vec<Choice>,
    errors: std::collections::BTreeMap<String, String>,
    done: Option<&'static str>,
}

/// The values of a user form.
#[derive(Debug, Default)]
struct UserValues {
    username: String,
    display_name: String,
    email: String,
    roles: Vec<String>,
    manager: String,
    department: String,
    language: String,
    active: bool,
}

impl UserValues {
    fn of(user: &UserView) -> UserValues {
        UserValues {
            username: user.username.clone(),
            display_name: user.display_name.clone().unwrap_or_default(),
            email: user.email.clone().unwrap_or_default(),
            roles: user.roles.clone(),
            manager: user.manager.clone().unwrap_or_default(),
            department: user.department.clone().unwrap_or_default(),
            language: user.language.clone().unwrap_or_default(),
            active: user.active,
        }
    }

    fn from_form(form: &PageForm) -> UserValues {
        let text = |name: &str| form.get(name).unwrap_or("").trim().to_owned();
        UserValues {
            username: text("username"),
            display_name: text("display_name"),
            email: text("email"),
            roles: form
                .all("roles")
                .into_iter()
                .filter(|role| !role.is_empty())
                .map(str::to_owned)
                .collect(),
            manager: text("manager"),
            department: text("department"),
            language: text("language"),
            active: true,
        }
    }
}

/// `Some(text)` for a filled-in value, `None` for an empty one.
fn filled(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// The language choices of a user form: the browser's (empty), then every catalog language.
pub(super) fn language_choices(state: &AppState, lang: &str, chosen: &str) -> Vec<Choice> {
    let mut choices = vec![Choice {
        value: String::new(),
        label: super::tr(state, lang, "admin.users.browser_language", &[]),
        selected: chosen.is_empty(),
    }];
    for language in LANGUAGES {
        choices.push(Choice {
            value: language.to_owned(),
            label: super::tr(state, lang, &format!("admin.language.{language}"), &[]),
            selected: chosen == language,
        });
    }
    choices
}

/// The label of role `name` in `lang`.
pub(super) fn role_label(state: &AppState, lang: &str, name: &str) -> String {
    let schema = state.schema();
    schema
        .roles
        .roles
        .get(name)
        .and_then(|role| role.label.as_ref())
        .map(|label| label.text(lang, &schema.app.language).to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| name.to_owned())
}

/// The user form's view model for `values`.
async fn user_form(
    state: &AppState,
    viewer: &Viewer,
    mode: &'static str,
    values: &UserValues,
    errors: &[FieldError],
    done: Option<&'static str>,
) -> Result<UserFormPage, PageError> {
    let users = state.auth().list_users(&viewer.actor).await?;
    let departments = state.auth().list_departments(&viewer.actor).await?;
    let lang = &viewer.lang;
    let roles = state
        .schema()
        .roles
        .roles
        .keys()
        .map(|name| Choice {
            value: name.clone(),
            label: role_label(state, lang, name),
            selected: values.roles.contains(name),
        })
        .collect();
    let mut managers = vec![Choice {
        value: String::new(),
        label: "—".to_owned(),
        selected: values.manager.is_empty(),
    }];
    managers.extend(
        users
            .iter()
            .filter(|user| user.username != values.username || mode == "new")
            .map(|user| Choice {
                value: user.username.clone(),
                label: match &user.display_name {
                    Some(name) => format!("{name} ({})", user.username),
                    None => user.username.clone(),
                },
                selected: user.username == values.manager,
            }),
    );
    let mut department_choices = vec![Choice {
        value: String::new(),
        label: "—".to_owned(),
        selected: values.department.is_empty(),
    }];
    department_choices.extend(departments.iter().map(|department| Choice {
        value: department.name.clone(),
        label: department_label(department),
        selected: department.name == values.department,
    }));
    let action = match mode {
        "new" => "/admin/users/new".to_owned(),
        _ => format!("/admin/users/{}", form_urlencode(&values.username)),
    };
    Ok(UserFormPage {
        section: "users",
        mode,
        action,
        username: values.username.clone(),
        display_name: values.display_name.clone(),
        email: values.email.clone(),
        active: values.active,
        roles,
        managers,
        departments: department_choices,
        languages: language_choices(state, lang, &values.language),
        errors: errors_by_field(errors),
        done,
    })
}

fn department_label(department: &DepartmentView) -> String {
    match &department.label {
        Some(label) if !label.is_empty() => format!("{label} ({})", department.name),
        _ => department.name.clone(),
    }
}

/// `GET /admin/users`.
pub async fn list(
    Pinned(state): Pinned,
    viewer: Viewer,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let users = state
        .auth()
        .list_users(&viewer.actor)
        .await?
        .into_iter()
        .map(|user| UserRow {
            name: user.display_name.clone().unwrap_or_default(),
            roles: user
                .roles
                .iter()
                .map(|role| role_label(&state, &frame.lang, role))
                .collect(),
            username: user.username,
            manager: user.manager,
            department: user.department,
            active: user.active,
            language: user.language,
            email: user.email,
        })
        .collect();
    render(
        &state,
        &frame,
        "admin/users.html",
        UsersPage {
            section: "users",
            users,
            done: done.key(),
        },
    )
}

/// `GET /admin/users/new`.
pub async fn new_form(Pinned(state): Pinned, viewer: Viewer) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let values = UserValues {
        active: true,
        ..UserValues::default()
    };
    let page = user_form(&state, &viewer, "new", &values, &[], None).await?;
    render(&state, &frame, "admin/user_form.html", page)
}

/// `POST /admin/users/new`: adds the user and goes to their page, or shows the form again.
pub async fn create(Pinned(state): Pinned, form: PageForm) -> Result<Response, PageError> {
    let viewer = &form.viewer;
    let frame = console_frame(&state, viewer).await?;
    let values = UserValues::from_form(&form);
    let user = NewUser {
        username: values.username.clone(),
        display_name: filled(&values.display_name),
        password: form.get("password").unwrap_or("").to_owned(),
        roles: values.roles.clone(),
        manager: filled(&values.manager),
        department: filled(&values.department),
        language: filled(&values.language),
        email: filled(&values.email),
    };
    match state.auth().create_user(&viewer.actor, user).await {
        Ok(created) => Ok(Redirect::to(&format!(
            "/admin/users/{}?done=created",
            form_urlencode(&created.username)
        ))
        .into_response()),
        Err(error) => {
            let error = form_error(&state, &viewer.lang, error)?;
            let page = user_form(&state, viewer, "new", &values, &[error], None).await?;
            render_with_status(
                &state,
                &frame,
                "admin/user_form.html",
                page,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

/// The user `username`, or the 404 page.
async fn find_user(
    state: &AppState,
    viewer: &Viewer,
    username: &str,
) -> Result<UserView, PageError> {
    state
        .auth()
        .list_users(&viewer.actor)
        .await?
        .into_iter()
        .find(|user| user.username == username)
        .ok_or_else(not_found)
}

/// `GET /admin/users/{name}`.
pub async fn edit_form(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path(username): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let user = find_user(&state, &viewer, &username).await?;
    let values = UserValues::of(&user);
    let page = user_form(&state, &viewer, "edit", &values, &[], done.key()).await?;
    render(&state, &frame, "admin/user_form.html", page)
}

/// `POST /admin/users/{name}`: saves the profile (name, roles, manager, department,
/// language, email), or shows the form again with the error next to its field.
pub async fn update(
    Pinned(state): Pinned,
    Path(username): Path<String>,
    form: PageForm,
) -> Result<Response, PageError> {
    let viewer = &form.viewer;
    let frame = console_frame(&state, viewer).await?;
    let user = find_user(&state, viewer, &username).await?;
    let mut values = UserValues::from_form(&form);
    values.username = user.username.clone();
    values.active = user.active;
    let patch = UserPatch {
        display_name: Some(filled(&values.display_name)),
        roles: Some(values.roles.clone()),
        manager: Some(filled(&values.manager)),
        department: Some(filled(&values.department)),
        language: Some(filled(&values.language)),
        email: Some(filled(&values.email)),
        ..UserPatch::default()
    };
    edit_outcome(&state, &frame, viewer, &values, patch, "saved").await
}

/// Applies `patch` to the user of `values`: back to their page with `done`, or the form
/// again with the error.
async fn edit_outcome(
    state: &AppState,
    frame: &Frame,
    viewer: &Viewer,
    values: &UserValues,
    patch: UserPatch,
    done: &str,
) -> Result<Response, PageError> {
    match state
        .auth()
        .update_user(&viewer.actor, &values.username, patch)
        .await
    {
        Ok(updated) => Ok(Redirect::to(&format!(
            "/admin/users/{}?done={done}",
            form_urlencode(&updated.username)
        ))
        .into_response()),
        Err(error) => {
            let error = form_error(state, &viewer.lang, error)?;
            let page = user_form(state, viewer, "edit", values, &[error], None).await?;
            render_with_status(
                state,
                frame,
                "admin/user_form.html",
                page,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

/// `POST /admin/users/{name}/password` (`password`): sets a new password; the user's
/// sessions end.
pub async fn reset_password(
    Pinned(state): Pinned,
    Path(username): Path<String>,
    form: PageForm,
) -> Result<Response, PageError> {
    let viewer = &form.viewer;
    let frame = console_frame(&state, viewer).await?;
    let user = find_user(&state, viewer, &username).await?;
    let values = UserValues::of(&user);
    let patch = UserPatch {
        password: Some(form.get("password").unwrap_or("").to_owned()),
        ..UserPatch::default()
    };
    edit_outcome(&state, &frame, viewer, &values, patch, "password").await
}

/// `POST /admin/users/{name}/active` (`active=true|false`): reactivates or deactivates the
/// user; a deactivated user cannot sign in and their sessions end.
pub async fn set_active(
    Pinned(state): Pinned,
    Path(username): Path<String>,
    form: PageForm,
) -> Result<Response, PageError> {
    let viewer = &form.viewer;
    let frame = console_frame(&state, viewer).await?;
    let user = find_user(&state, viewer, &username).await?;
    let values = UserValues::of(&user);
    let active = match form.get("active") {
        Some("true") => true,
        Some("false") => false,
        _ => return Err(PageError::BadForm),
    };
    let patch = UserPatch {
        active: Some(active),
        ..UserPatch::default()
    };
    let done = if active { "reactivated" } else { "deactivated" };
    edit_outcome(&state, &frame, viewer, &values, patch, done).await
}

#[derive(Debug, Serialize)]
struct DepartmentRow {
    name: String,
    label: Option<String>,
    parent: Option<String>,
    members: usize,
}

#[derive(Debug, Serialize)]
struct DepartmentsPage {
    section: &'static str,
    departments: Vec<DepartmentRow>,
    parents: Vec<Choice>,
    name: String,
    label: String,
    errors: std::collections::BTreeMap<String, String>,
    done: Option<&'static str>,
}

async fn departments_page(
    state: &AppState,
    viewer: &Viewer,
    values: (&str, &str, &str),
    errors: &[FieldError],
    done: Option<&'static str>,
) -> Result<DepartmentsPage, PageError> {
    let departments = state.auth().list_departments(&viewer.actor).await?;
    let users = state.auth().list_users(&viewer.actor).await?;
    let (name, label, parent) = values;
    let mut parents = vec![Choice {
        value: String::new(),
        label: "—".to_owned(),
        selected: parent.is_empty(),
    }];
    parents.extend(departments.iter().map(|department| Choice {
        value: department.name.clone(),
        label: department_label(department),
        selected: department.name == parent,
    }));
    Ok(DepartmentsPage {
        section: "departments",
        departments: departments
            .into_iter()
            .map(|department| DepartmentRow {
                members: users
                    .iter()
                    .filter(|user| user.department.as_deref() == Some(department.name.as_str()))
                    .count(),
                name: department.name,
                label: department.label,
                parent: department.parent,
            })
            .collect(),
        parents,
        name: name.to_owned(),
        label: label.to_owned(),
        errors: errors_by_field(errors),
        done,
    })
}

/// `GET /admin/departments`.
pub async fn departments(
    Pinned(state): Pinned,
    viewer: Viewer,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let page = departments_page(&state, &viewer, ("", "", ""), &[], done.key()).await?;
    render(&state, &frame, "admin/departments.html", page)
}

/// `POST /admin/departments` (`name`, `label`, `parent`): adds a department.
pub async fn create_department(
    Pinned(state): Pinned,
    form: PageForm,
) -> Result<Response, PageError> {
    let viewer = &form.viewer;
    let frame = console_frame(&state, viewer).await?;
    let name = form.get("name").unwrap_or("").trim();
    let label = form.get("label").unwrap_or("").trim();
    let parent = form.get("parent").unwrap_or("").trim();
    let department = NewDepartment {
        name: name.to_owned(),
        label: filled(label),
        parent: filled(parent),
    };
    match state
        .auth()
        .create_department(&viewer.actor, department)
        .await
    {
        Ok(_) => Ok(Redirect::to("/admin/departments?done=department").into_response()),
        Err(error) => {
            let error = form_error(&state, &viewer.lang, error)?;
            let page =
                departments_page(&state, viewer, (name, label, parent), &[error], None).await?;
            render_with_status(
                &state,
                &frame,
                "admin/departments.html",
                page,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}
