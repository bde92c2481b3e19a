//! The admin console `/admin` (admins only) and the account page `/account` (every
//! signed-in user).
//!
//! Every console page answers a user without an admin role with the 404 page, exactly like a
//! record they may not see: the console is not advertised to people who cannot use it. The
//! runtime refuses them as well (`Auth` and the outbox functions check the admin role
//! themselves); the check here only chooses the page.
//!
//! The pages read and write through `Auth` (people, the access audit), `Records` (the
//! access explanation) and the runtime's outbox functions, never SQL; the roles and objects
//! pages are documentation read from the loaded metadata.

mod access;
mod account;
mod objects;
mod outbox;
mod roles;
mod rules;
mod studio;
mod users;

use axum::Router;
use axum::response::Response;
use axum::routing::{get, post};
use keel_runtime::auth::AuthError;
use serde::Serialize;

use super::{Frame, PageError, Viewer, render};
use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::extract::Pinned;

/// The routes of this module; [`super::routes`] merges them.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(studio::routes())
        .route("/admin", get(index))
        .route("/admin/users", get(users::list))
        .route("/admin/users/new", get(users::new_form).post(users::create))
        .route(
            "/admin/users/{name}",
            get(users::edit_form).post(users::update),
        )
        .route("/admin/users/{name}/password", post(users::reset_password))
        .route("/admin/users/{name}/active", post(users::set_active))
        .route(
            "/admin/departments",
            get(users::departments).post(users::create_department),
        )
        .route("/admin/roles", get(roles::page))
        .route("/admin/access", get(access::page))
        .route("/admin/audit", get(access::audit))
        .route("/admin/objects", get(objects::list))
        .route("/admin/objects/{object}", get(objects::page))
        .route("/admin/outbox", get(outbox::page))
        .route("/admin/outbox/{id}/retry", post(outbox::retry))
        .route("/admin/rules", get(rules::list))
        .route("/admin/rules/{name}", get(rules::runs))
        .route("/admin/rules/{name}/run", post(rules::run_now))
        .route("/account", get(account::page))
        .route("/account/language", post(account::language))
        .route("/account/password", post(account::password))
}

/// The frame of a console page, or the 404 page for a user who is not an admin.
async fn console_frame(state: &AppState, viewer: &Viewer) -> Result<Frame, PageError> {
    if !viewer.actor.admin {
        return Err(not_found());
    }
    Frame::new(state, viewer).await
}

/// The 404 page (it names nothing about what was asked for).
fn not_found() -> PageError {
    PageError::Api(ApiError::new(ErrorCode::NotFound, "no such page"))
}

/// An error to show next to a form field: the field (`None`: above the form) and the text.
#[derive(Debug, Clone, Serialize)]
struct FieldError {
    field: Option<String>,
    message: String,
}

/// The form errors `Auth` can explain to the person filling a form, in their language; any
/// other failure is not the form's fault and becomes the error page.
fn form_error(state: &AppState, lang: &str, error: AuthError) -> Result<FieldError, PageError> {
    let text = |key: &str, name: &str| tr(state, lang, key, &[("name", name.to_owned())]);
    Ok(match error {
        AuthError::Invalid { field, message } => {
            let key = match field.as_deref() {
                Some("username") => Some("admin.error.username"),
                Some("password") => Some("admin.error.password"),
                Some("email") => Some("admin.error.email"),
                Some("current") => Some("admin.error.current"),
                Some("name") => Some("admin.error.department_name"),
                _ => None,
            };
            FieldError {
                message: key.map_or(message, |key| text(key, "")),
                field,
            }
        }
        AuthError::UsernameTaken(name) => FieldError {
            field: Some("username".to_owned()),
            message: text("admin.error.username_taken", &name),
        },
        AuthError::DepartmentTaken(name) => FieldError {
            field: Some("name".to_owned()),
            message: text("admin.error.department_taken", &name),
        },
        AuthError::TooManyAttempts { .. } => FieldError {
            field: Some("current".to_owned()),
            message: text("admin.error.too_many", ""),
        },
        other => return Err(other.into()),
    })
}

/// The errors of a form by field, for `#error-<field>`; `_form` holds the ones of no field.
fn errors_by_field(errors: &[FieldError]) -> std::collections::BTreeMap<String, String> {
    errors
        .iter()
        .map(|error| {
            (
                error.field.clone().unwrap_or_else(|| "_form".to_owned()),
                error.message.clone(),
            )
        })
        .collect()
}

/// The catalog text of `key` in `lang` with `args`.
fn tr(state: &AppState, lang: &str, key: &str, args: &[(&str, String)]) -> String {
    state.ui().catalogs().text(lang, key, |name| {
        args.iter()
            .find(|(arg, _)| *arg == name)
            .map(|(_, value)| value.clone())
    })
}

/// A card of the console's index.
#[derive(Debug, Serialize)]
struct Card {
    url: &'static str,
    /// Catalog keys.
    title: &'static str,
    text: &'static str,
    count: Option<String>,
}

#[derive(Debug, Serialize)]
struct IndexPage {
    section: &'static str,
    cards: Vec<Card>,
}

/// `GET /admin`: a card per area, with counts where they cost one query or none.
async fn index(Pinned(state): Pinned, viewer: Viewer) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let users = state.auth().list_users(&viewer.actor).await?;
    let departments = state.auth().list_departments(&viewer.actor).await?;
    let outbox = keel_runtime::outbox::admin_list(
        state.records(),
        &viewer.actor,
        keel_runtime::outbox::ListState::Dead,
        None,
        1,
    )
    .await?;
    let schema = state.schema();
    let active = users.iter().filter(|user| user.active).count();
    let pool_sweeps = schema
        .pools
        .values()
        .filter(|pool| pool.auto_return.is_some())
        .count();
    let card = |url, title, text, count: Option<String>| Card {
        url,
        title,
        text,
        count,
    };
    let pending = outbox["counts"]["pending"].as_i64().unwrap_or(0);
    let dead = outbox["counts"]["dead"].as_i64().unwrap_or(0);
    let cards = vec![
        card(
            "/admin/users",
            "admin.users.title",
            "admin.index.users",
            Some(format!("{active} / {}", users.len())),
        ),
        card(
            "/admin/departments",
            "admin.departments.title",
            "admin.index.departments",
            Some(departments.len().to_string()),
        ),
        card(
            "/admin/roles",
            "admin.roles.title",
            "admin.index.roles",
            Some(schema.roles.roles.len().to_string()),
        ),
        card(
            "/admin/access",
            "admin.access.title",
            "admin.index.access",
            None,
        ),
        card(
            "/admin/audit",
            "admin.audit.title",
            "admin.index.audit",
            None,
        ),
        card(
            "/admin/objects",
            "admin.objects.title",
            "admin.index.objects",
            Some(schema.objects.len().to_string()),
        ),
        card(
            "/admin/outbox",
            "admin.outbox.title",
            "admin.index.outbox",
            Some(tr(
                &state,
                &frame.lang,
                "admin.index.outbox_counts",
                &[("pending", pending.to_string()), ("dead", dead.to_string())],
            )),
        ),
        card(
            "/admin/studio",
            "admin.studio.title",
            "admin.index.studio",
            None,
        ),
        card(
            "/admin/rules",
            "admin.rules.title",
            "admin.index.rules",
            Some((schema.rules.len() + pool_sweeps).to_string()),
        ),
    ];
    render(
        &state,
        &frame,
        "admin/index.html",
        IndexPage {
            section: "index",
            cards,
        },
    )
}
