//! The user and department registry: count, add (with manager and department by name),
//! find, list and change users (deactivating is a change: users are never deleted), and
//! list, create or ensure departments.
//!
//! Passwords arrive already hashed: hashing (argon2) and login checks belong to the
//! runtime. This module does not decide who may do any of this, nor check roles against
//! the app's metadata.

use chrono::{DateTime, Utc};

use crate::datetime::{from_sqlite_text, to_sqlite_text};
use crate::db::{Connection, Db, WriteTransaction};
use crate::error::StoreError;

/// A user to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub display_name: Option<String>,
    /// A password hash in PHC string form; never a password.
    pub password_hash: String,
    pub roles: Vec<String>,
    /// The manager's username.
    pub manager: Option<String>,
    /// The department's name.
    pub department: Option<String>,
    pub language: Option<String>,
    /// Where email notifications reach the user; checked by the caller.
    pub email: Option<String>,
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub manager_id: Option<String>,
    pub department_id: Option<String>,
    pub language: Option<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Personal data: the runtime shows it only to admins and to the user.
    pub email: Option<String>,
}

/// How many users exist (active or not).
pub async fn count(db: &Db) -> Result<i64, StoreError> {
    let mut pooled = db.acquire().await?;
    pooled
        .connection()
        .count("SELECT count(*) FROM keel_users")
        .await
}

/// Adds `user`, created at `now` by the user with id `by` (`None`: the system), and returns
/// its id. Fails, naming the cause, when the username is taken or the manager or department
/// does not exist. The user's access (roles, manager, department) goes to the audit trail in
/// the same transaction.
pub async fn insert_at(
    db: &Db,
    user: &NewUser,
    now: DateTime<Utc>,
    by: Option<&str>,
) -> Result<String, StoreError> {
    let mut transaction = db.begin_write().await?;
    let mut connection = transaction.connection();
    if lookup_id(&mut connection, UserLookup::Username, &user.username)
        .await?
        .is_some()
    {
        return Err(StoreError::DuplicateUsername {
            username: user.username.clone(),
        });
    }
    let manager_id = match &user.manager {
        Some(manager) => Some(
            lookup_id(&mut connection, UserLookup::Username, manager)
                .await?
                .ok_or_else(|| StoreError::UnknownManager {
                    username: manager.clone(),
                })?,
        ),
        None => None,
    };
    let department_id = match &user.department {
        Some(department) => Some(
            lookup_id(&mut connection, UserLookup::Department, department)
                .await?
                .ok_or_else(|| StoreError::UnknownDepartment {
                    name: department.clone(),
                })?,
        ),
        None => None,
    };
    let roles = serde_json::to_string(&user.roles).map_err(|source| StoreError::Json {
        what: "the user's roles".to_owned(),
        source,
    })?;
    let id = uuid::Uuid::now_v7().to_string();
    let inserted = match &mut connection {
        Connection::Sqlite(connection) => sqlx::query(
            "INSERT INTO keel_users (id, username, display_name, password_hash, roles, \
                 manager_id, department_id, language, active, created_at, updated_at, email) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9, ?9, ?10)",
        )
        .bind(&id)
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(&user.password_hash)
        .bind(&roles)
        .bind(&manager_id)
        .bind(&department_id)
        .bind(&user.language)
        .bind(to_sqlite_text(now))
        .bind(&user.email)
        .execute(&mut **connection)
        .await
        .map(|done| done.rows_affected()),
        Connection::Postgres(connection) => sqlx::query(
            "INSERT INTO keel_users (id, username, display_name, password_hash, roles, \
                 manager_id, department_id, language, active, created_at, updated_at, email) \
                 VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, true, $9, $9, $10)",
        )
        .bind(&id)
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(&user.password_hash)
        .bind(&roles)
        .bind(&manager_id)
        .bind(&department_id)
        .bind(&user.language)
        .bind(now)
        .bind(&user.email)
        .execute(&mut **connection)
        .await
        .map(|done| done.rows_affected()),
    };
    match inserted {
        Ok(_) => {}
        // Another process added the same name between our check and our insert.
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
            return Err(StoreError::DuplicateUsername {
                username: user.username.clone(),
            });
        }
        Err(error) => {
            return Err(StoreError::Query {
                context: format!("adding user `{}`", user.username),
                source: error,
            });
        }
    }
    let access = AccessAudit {
        object: USERS_AUDIT,
        id: &id,
        at: now,
        by,
        action: "create",
    };
    access
        .write(
            &mut connection,
            &[
                ("roles", Json::Null, serde_json::json!(user.roles)),
                ("manager", Json::Null, name_json(user.manager.as_deref())),
                (
                    "department",
                    Json::Null,
                    name_json(user.department.as_deref()),
                ),
                ("email", Json::Null, name_json(user.email.as_deref())),
            ],
        )
        .await?;
    rebuild_org(&mut connection).await?;
    transaction.commit().await?;
    Ok(id)
}

/// `keel_audit.object` of user access changes.
pub const USERS_AUDIT: &str = "keel_users";
/// `keel_audit.object` of department changes.
pub const DEPARTMENTS_AUDIT: &str = "keel_departments";

/// Who changed whose access, and when: writes one audit row per changed property.
struct AccessAudit<'a> {
    object: &'static str,
    id: &'a str,
    at: DateTime<Utc>,
    by: Option<&'a str>,
    action: &'static str,
}

type Json = serde_json::Value;

impl AccessAudit<'_> {
    /// Writes `(field, old, new)` for every change where old and new differ.
    async fn write(
        &self,
        connection: &mut Connection<'_>,
        changes: &[(&str, Json, Json)],
    ) -> Result<(), StoreError> {
        let entries: Vec<crate::records::AuditEntry> = changes
            .iter()
            .filter(|(_, old, new)| old != new)
            .map(|(field, old, new)| crate::records::AuditEntry {
                object: self.object.to_owned(),
                record_id: self.id.to_owned(),
                at: self.at,
                by: self.by.map(str::to_owned),
                field: (*field).to_owned(),
                old: old.clone(),
                new: new.clone(),
                action: self.action.to_owned(),
            })
            .collect();
        crate::records::write_audit(connection, &entries).await
    }
}

fn name_json(name: Option<&str>) -> Json {
    name.map_or(Json::Null, |name| Json::String(name.to_owned()))
}

/// The user called `username`, if any.
pub async fn find_by_username(db: &Db, username: &str) -> Result<Option<UserRow>, StoreError> {
    let mut pooled = db.acquire().await?;
    let mut rows =
        select_users(&mut pooled.connection(), UserSelection::Username(username)).await?;
    Ok(rows.pop())
}

/// The user with id `id`, if any.
pub async fn find_by_id(db: &Db, id: &str) -> Result<Option<UserRow>, StoreError> {
    let mut pooled = db.acquire().await?;
    let mut rows = select_users(&mut pooled.connection(), UserSelection::Id(id)).await?;
    Ok(rows.pop())
}

impl crate::records::RecordWrite {
    /// The user `id`, read on this write transaction's own connection: a job that holds
    /// SQLite's write lock must not wait for a pooled connection to read a user.
    pub async fn user_by_id(&mut self, id: &str) -> Result<Option<UserRow>, StoreError> {
        let mut rows = select_users(&mut self.connection(), UserSelection::Id(id)).await?;
        Ok(rows.pop())
    }
}

/// A signed-in user with their session's expiry and last use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub user: UserRow,
    pub expires_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// The user signed in with the session whose token hashes to `session_id`, with that
/// session's expiry and last use: the one query of every authenticated request.
pub async fn find_by_session(db: &Db, session_id: &str) -> Result<Option<SessionUser>, StoreError> {
    let context = || "looking up a session and its user".to_owned();
    match db {
        Db::Sqlite(pool, _) => {
            let row: Option<(UserColumns<String>, String, String)> =
                sqlx::query_as::<_, SessionUserColumns<String>>(
                    "SELECT u.id, u.username, u.display_name, u.password_hash, u.roles, \
                     u.manager_id, u.department_id, u.language, u.active, u.created_at, \
                     u.updated_at, u.email, s.expires_at, s.last_seen_at \
                     FROM keel_sessions s JOIN keel_users u ON u.id = s.user_id WHERE s.id = ?1",
                )
                .bind(session_id)
                .fetch_optional(pool)
                .await
                .map_err(StoreError::query(context()))?
                .map(split_session_user);
            row.map(|(user, expires_at, last_seen_at)| {
                let created_at = from_sqlite_text(&user.9)?;
                let updated_at = from_sqlite_text(&user.10)?;
                Ok(SessionUser {
                    user: user_row(user, created_at, updated_at)?,
                    expires_at: from_sqlite_text(&expires_at)?,
                    last_seen_at: from_sqlite_text(&last_seen_at)?,
                })
            })
            .transpose()
        }
        Db::Postgres(pool) => {
            let row = sqlx::query_as::<_, SessionUserColumns<DateTime<Utc>>>(
                "SELECT u.id, u.username, u.display_name, u.password_hash, u.roles::text, \
                 u.manager_id, u.department_id, u.language, u.active, u.created_at, \
                 u.updated_at, u.email, s.expires_at, s.last_seen_at \
                 FROM keel_sessions s JOIN keel_users u ON u.id = s.user_id WHERE s.id = $1",
            )
            .bind(session_id)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::query(context()))?
            .map(split_session_user);
            row.map(|(user, expires_at, last_seen_at)| {
                let (created_at, updated_at) = (user.9, user.10);
                Ok(SessionUser {
                    user: user_row(user, created_at, updated_at)?,
                    expires_at,
                    last_seen_at,
                })
            })
            .transpose()
        }
    }
}

/// The user columns of [`find_by_session`] followed by the session's expiry and last use.
type SessionUserColumns<Time> = (
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
    Time,
    Time,
    Option<String>,
    Time,
    Time,
);

fn split_session_user<Time>(columns: SessionUserColumns<Time>) -> (UserColumns<Time>, Time, Time) {
    let (a, b, c, d, e, f, g, h, i, created_at, updated_at, email, expires_at, last_seen_at) =
        columns;
    (
        (a, b, c, d, e, f, g, h, i, created_at, updated_at, email),
        expires_at,
        last_seen_at,
    )
}

/// Every user, active or not, by username.
pub async fn list(db: &Db) -> Result<Vec<UserRow>, StoreError> {
    let mut pooled = db.acquire().await?;
    select_users(&mut pooled.connection(), UserSelection::All).await
}

/// What to change about a user; `None` leaves a property as it is, `Some(None)` clears an
/// optional one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    pub display_name: Option<Option<String>>,
    /// A new password hash in PHC string form; never a password.
    pub password_hash: Option<String>,
    pub roles: Option<Vec<String>>,
    /// The manager's username.
    pub manager: Option<Option<String>>,
    /// The department's name.
    pub department: Option<Option<String>>,
    pub language: Option<Option<String>>,
    pub active: Option<bool>,
    pub email: Option<Option<String>>,
}

/// The outcome of [`update_at`] when the database did its part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserUpdate {
    /// The user as stored after the change.
    Updated(Box<UserRow>),
    NoSuchUser,
    /// The new manager is the user, or reports to the user (directly or further down).
    ManagerCycle,
}

/// Changes the user called `username` at `now`, on behalf of the user with id `by` (`None`:
/// the system). Fails, naming the cause, when the new manager or department does not exist.
/// Changes to roles, manager, department, activity, password and email go to the audit
/// trail in the same transaction.
pub async fn update_at(
    db: &Db,
    username: &str,
    changes: &UserChanges,
    now: DateTime<Utc>,
    by: Option<&str>,
) -> Result<UserUpdate, StoreError> {
    let mut transaction = db.begin_write().await?;
    let mut connection = transaction.connection();
    let Some(current) = select_users(&mut connection, UserSelection::Username(username))
        .await?
        .pop()
    else {
        return Ok(UserUpdate::NoSuchUser);
    };
    let manager_id = match &changes.manager {
        None => current.manager_id.clone(),
        Some(None) => None,
        Some(Some(manager)) => {
            let manager_id = lookup_id(&mut connection, UserLookup::Username, manager)
                .await?
                .ok_or_else(|| StoreError::UnknownManager {
                    username: manager.clone(),
                })?;
            if chain_reaches(&mut connection, &manager_id, &current.id).await? {
                return Ok(UserUpdate::ManagerCycle);
            }
            Some(manager_id)
        }
    };
    let department_id = match &changes.department {
        None => current.department_id.clone(),
        Some(None) => None,
        Some(Some(department)) => Some(
            lookup_id(&mut connection, UserLookup::Department, department)
                .await?
                .ok_or_else(|| StoreError::UnknownDepartment {
                    name: department.clone(),
                })?,
        ),
    };
    let display_name = changes
        .display_name
        .clone()
        .unwrap_or_else(|| current.display_name.clone());
    let language = changes
        .language
        .clone()
        .unwrap_or_else(|| current.language.clone());
    let password_hash = changes
        .password_hash
        .clone()
        .unwrap_or_else(|| current.password_hash.clone());
    let email = changes
        .email
        .clone()
        .unwrap_or_else(|| current.email.clone());
    let active = changes.active.unwrap_or(current.active);
    let roles = changes.roles.as_ref().unwrap_or(&current.roles);
    let roles = serde_json::to_string(roles).map_err(|source| StoreError::Json {
        what: "the user's roles".to_owned(),
        source,
    })?;
    let context = || format!("changing user `{username}`");
    match &mut connection {
        Connection::Sqlite(connection) => sqlx::query(
            "UPDATE keel_users SET display_name = ?2, password_hash = ?3, roles = ?4, \
             manager_id = ?5, department_id = ?6, language = ?7, active = ?8, updated_at = ?9, \
             email = ?10 WHERE id = ?1",
        )
        .bind(&current.id)
        .bind(&display_name)
        .bind(&password_hash)
        .bind(&roles)
        .bind(&manager_id)
        .bind(&department_id)
        .bind(&language)
        .bind(active)
        .bind(to_sqlite_text(now))
        .bind(&email)
        .execute(&mut **connection)
        .await
        .map(drop),
        Connection::Postgres(connection) => sqlx::query(
            "UPDATE keel_users SET display_name = $2, password_hash = $3, roles = $4::jsonb, \
             manager_id = $5, department_id = $6, language = $7, active = $8, updated_at = $9, \
             email = $10 WHERE id = $1",
        )
        .bind(&current.id)
        .bind(&display_name)
        .bind(&password_hash)
        .bind(&roles)
        .bind(&manager_id)
        .bind(&department_id)
        .bind(&language)
        .bind(active)
        .bind(now)
        .bind(&email)
        .execute(&mut **connection)
        .await
        .map(drop),
    }
    .map_err(StoreError::query(context()))?;
    let updated = select_users(&mut connection, UserSelection::Id(&current.id))
        .await?
        .pop()
        .ok_or_else(|| StoreError::UnreadableValue {
            what: format!("user `{username}` vanished while it was being changed"),
        })?;
    let name_of = async |connection: &mut Connection<'_>, lookup, id: &Option<String>| match id {
        Some(id) => name_by_id(connection, lookup, id)
            .await
            .map(|name| name_json(name.as_deref())),
        None => Ok(Json::Null),
    };
    let changed = [
        (
            "roles",
            serde_json::json!(current.roles),
            serde_json::json!(updated.roles),
        ),
        (
            "manager",
            name_of(&mut connection, UserLookup::Username, &current.manager_id).await?,
            name_of(&mut connection, UserLookup::Username, &updated.manager_id).await?,
        ),
        (
            "department",
            name_of(
                &mut connection,
                UserLookup::Department,
                &current.department_id,
            )
            .await?,
            name_of(
                &mut connection,
                UserLookup::Department,
                &updated.department_id,
            )
            .await?,
        ),
        (
            "active",
            Json::Bool(current.active),
            Json::Bool(updated.active),
        ),
        (
            "password",
            Json::Null,
            if changes.password_hash.is_some() {
                Json::String("changed".to_owned())
            } else {
                Json::Null
            },
        ),
        // Notifications follow the address, so redirecting them is worth a trace.
        (
            "email",
            name_json(current.email.as_deref()),
            name_json(updated.email.as_deref()),
        ),
    ];
    AccessAudit {
        object: USERS_AUDIT,
        id: &current.id,
        at: now,
        by,
        action: "update",
    }
    .write(&mut connection, &changed)
    .await?;
    rebuild_org(&mut connection).await?;
    transaction.commit().await?;
    Ok(UserUpdate::Updated(Box::new(updated)))
}

/// Whether walking up the manager chain from `start` (itself included) reaches `target`:
/// then making `start` the manager of `target` would close a loop.
async fn chain_reaches(
    connection: &mut Connection<'_>,
    start: &str,
    target: &str,
) -> Result<bool, StoreError> {
    // Bounded so that a loop already in the data cannot hang us.
    const LONGEST_CHAIN: usize = 10_000;
    let mut current = start.to_owned();
    for _ in 0..LONGEST_CHAIN {
        if current == target {
            return Ok(true);
        }
        let context = || "following the manager chain".to_owned();
        let next: Option<Option<String>> = match connection {
            Connection::Sqlite(connection) => {
                sqlx::query_scalar("SELECT manager_id FROM keel_users WHERE id = ?1")
                    .bind(&current)
                    .fetch_optional(&mut **connection)
                    .await
            }
            Connection::Postgres(connection) => {
                sqlx::query_scalar("SELECT manager_id FROM keel_users WHERE id = $1")
                    .bind(&current)
                    .fetch_optional(&mut **connection)
                    .await
            }
        }
        .map_err(StoreError::query(context()))?;
        match next.flatten() {
            Some(next) => current = next,
            None => return Ok(false),
        }
    }
    Ok(true)
}

/// Which users [`select_users`] reads.
#[derive(Clone, Copy)]
enum UserSelection<'a> {
    Id(&'a str),
    Username(&'a str),
    All,
}

async fn select_users(
    connection: &mut Connection<'_>,
    selection: UserSelection<'_>,
) -> Result<Vec<UserRow>, StoreError> {
    let (key, context) = match selection {
        UserSelection::Id(id) => (Some(id), format!("looking up the user with id `{id}`")),
        UserSelection::Username(username) => {
            (Some(username), format!("looking up user `{username}`"))
        }
        UserSelection::All => (None, "listing users".to_owned()),
    };
    match connection {
        Connection::Sqlite(connection) => {
            let sql = match selection {
                UserSelection::Id(_) => {
                    "SELECT id, username, display_name, password_hash, roles, manager_id, \
                     department_id, language, active, created_at, updated_at, email \
                     FROM keel_users WHERE id = ?1"
                }
                UserSelection::Username(_) => {
                    "SELECT id, username, display_name, password_hash, roles, manager_id, \
                     department_id, language, active, created_at, updated_at, email \
                     FROM keel_users WHERE username = ?1"
                }
                UserSelection::All => {
                    "SELECT id, username, display_name, password_hash, roles, manager_id, \
                     department_id, language, active, created_at, updated_at, email \
                     FROM keel_users ORDER BY username"
                }
            };
            let mut query = sqlx::query_as::<_, UserColumns<String>>(sql);
            if let Some(key) = key {
                query = query.bind(key);
            }
            let rows = query
                .fetch_all(&mut **connection)
                .await
                .map_err(StoreError::query(context))?;
            rows.into_iter()
                .map(|row| {
                    let created_at = from_sqlite_text(&row.9)?;
                    let updated_at = from_sqlite_text(&row.10)?;
                    user_row(row, created_at, updated_at)
                })
                .collect()
        }
        Connection::Postgres(connection) => {
            let sql = match selection {
                UserSelection::Id(_) => {
                    "SELECT id, username, display_name, password_hash, roles::text, manager_id, \
                     department_id, language, active, created_at, updated_at, email \
                     FROM keel_users WHERE id = $1"
                }
                UserSelection::Username(_) => {
                    "SELECT id, username, display_name, password_hash, roles::text, manager_id, \
                     department_id, language, active, created_at, updated_at, email \
                     FROM keel_users WHERE username = $1"
                }
                UserSelection::All => {
                    "SELECT id, username, display_name, password_hash, roles::text, manager_id, \
                     department_id, language, active, created_at, updated_at, email \
                     FROM keel_users ORDER BY username"
                }
            };
            let mut query = sqlx::query_as::<_, UserColumns<DateTime<Utc>>>(sql);
            if let Some(key) = key {
                query = query.bind(key);
            }
            let rows = query
                .fetch_all(&mut **connection)
                .await
                .map_err(StoreError::query(context))?;
            rows.into_iter()
                .map(|row| {
                    let (created_at, updated_at) = (row.9, row.10);
                    user_row(row, created_at, updated_at)
                })
                .collect()
        }
    }
}

/// The columns of `keel_users` as selected by [`select_users`]; `Time` is how the dialect
/// returns a datetime.
type UserColumns<Time> = (
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
    Time,
    Time,
    Option<String>,
);

fn user_row<Time>(
    columns: UserColumns<Time>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
) -> Result<UserRow, StoreError> {
    let (
        id,
        username,
        display_name,
        password_hash,
        roles,
        manager_id,
        department_id,
        language,
        active,
        _,
        _,
        email,
    ) = columns;
    let roles: Vec<String> =
        serde_json::from_str(&roles).map_err(|error| StoreError::UnreadableValue {
            what: format!("the roles of user `{username}` are not a JSON list of names ({error})"),
        })?;
    Ok(UserRow {
        id,
        username,
        display_name,
        password_hash,
        roles,
        manager_id,
        department_id,
        language,
        active,
        created_at,
        updated_at,
        email,
    })
}

/// The id of the department called `name`, creating it (under `parent`, by name) at `now`
/// when missing. An existing department is returned unchanged.
pub async fn ensure_department_at(
    db: &Db,
    name: &str,
    label: Option<&str>,
    parent: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let mut transaction: WriteTransaction = db.begin_write().await?;
    let mut connection = transaction.connection();
    if let Some(id) = lookup_id(&mut connection, UserLookup::Department, name).await? {
        return Ok(id);
    }
    insert_department(&mut connection, name, label, parent, now).await?;
    // A concurrent process may have won the insert: read whichever row is there.
    let id = lookup_id(&mut connection, UserLookup::Department, name)
        .await?
        .ok_or_else(|| StoreError::UnknownDepartment {
            name: name.to_owned(),
        })?;
    rebuild_org(&mut connection).await?;
    transaction.commit().await?;
    Ok(id)
}

#[derive(Clone, Copy)]
enum UserLookup {
    Username,
    Department,
}

/// The id of the user with that username, or of the department with that name.
async fn lookup_id(
    connection: &mut Connection<'_>,
    lookup: UserLookup,
    name: &str,
) -> Result<Option<String>, StoreError> {
    let (sqlite, postgres, what) = match lookup {
        UserLookup::Username => (
            "SELECT id FROM keel_users WHERE username = ?1",
            "SELECT id FROM keel_users WHERE username = $1",
            "user",
        ),
        UserLookup::Department => (
            "SELECT id FROM keel_departments WHERE name = ?1",
            "SELECT id FROM keel_departments WHERE name = $1",
            "department",
        ),
    };
    let context = format!("looking up {what} `{name}`");
    optional_text(connection, (sqlite, postgres), name, context).await
}

/// The one text column of the row that `sql` (SQLite's form, PostgreSQL's form) selects
/// with `key` bound, if any.
async fn optional_text(
    connection: &mut Connection<'_>,
    (sqlite, postgres): (&'static str, &'static str),
    key: &str,
    context: String,
) -> Result<Option<String>, StoreError> {
    match connection {
        Connection::Sqlite(connection) => sqlx::query_scalar(sqlite)
            .bind(key)
            .fetch_optional(&mut **connection)
            .await
            .map_err(StoreError::query(context)),
        Connection::Postgres(connection) => sqlx::query_scalar(postgres)
            .bind(key)
            .fetch_optional(&mut **connection)
            .await
            .map_err(StoreError::query(context)),
    }
}

/// Brings the org closure tables (`keel_team_members`, `keel_department_tree`) in line with
/// `keel_users` and `keel_departments`, inside the caller's transaction: rows no longer
/// implied are deleted and missing ones inserted, so an unchanged org writes nothing (and
/// leaves PostgreSQL no dead rows for every query to step over). `UNION` (not `UNION ALL`)
/// stops even at a loop already in the data.
pub(crate) async fn rebuild_org(connection: &mut Connection<'_>) -> Result<(), StoreError> {
    const TEAM: &str = "WITH RECURSIVE chain (manager_id, member_id) AS ( \
           SELECT id, id FROM keel_users \
           UNION SELECT keel_u.manager_id, chain.member_id FROM chain \
           JOIN keel_users keel_u ON keel_u.id = chain.manager_id \
           WHERE keel_u.manager_id IS NOT NULL) \
         SELECT manager_id || '/' || member_id AS id, manager_id, member_id FROM chain";
    const TREE: &str = "WITH RECURSIVE tree (ancestor_id, descendant_id) AS ( \
           SELECT id, id FROM keel_departments \
           UNION SELECT keel_d.parent_id, tree.descendant_id FROM tree \
           JOIN keel_departments keel_d ON keel_d.id = tree.ancestor_id \
           WHERE keel_d.parent_id IS NOT NULL) \
         SELECT ancestor_id || '/' || descendant_id AS id, ancestor_id, descendant_id FROM tree";
    let statements = [
        format!(
            "DELETE FROM keel_team_members WHERE id NOT IN (SELECT keel_c.id FROM ({TEAM}) AS keel_c)"
        ),
        // `WHERE TRUE` tells SQLite's parser that ON CONFLICT belongs to the INSERT.
        format!(
            "INSERT INTO keel_team_members (id, manager_id, member_id) SELECT * FROM ({TEAM}) \
             AS keel_c WHERE TRUE ON CONFLICT (id) DO NOTHING"
        ),
        format!(
            "DELETE FROM keel_department_tree WHERE id NOT IN (SELECT keel_c.id FROM ({TREE}) AS keel_c)"
        ),
        format!(
            "INSERT INTO keel_department_tree (id, ancestor_id, descendant_id) \
             SELECT * FROM ({TREE}) AS keel_c \
             WHERE TRUE ON CONFLICT (id) DO NOTHING"
        ),
    ];
    if let Connection::Postgres(_) = connection {
        // Two rebuilds at once would each delete only the rows they saw and then insert
        // over each other's: take turns (SQLite's BEGIN IMMEDIATE already serializes).
        connection
            .execute("SELECT pg_advisory_xact_lock(7738703051106707233)") // "keelorg!"
            .await?;
    }
    for statement in &statements {
        connection.execute(statement).await?;
    }
    Ok(())
}

/// The name to show for each of `ids` that is a user: the display name, else the username.
/// One query; unknown ids are left out.
pub async fn display_names(
    db: &Db,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>, StoreError> {
    let mut names = std::collections::HashMap::new();
    // Far under both databases' parameter limits.
    for chunk in ids.chunks(1_000) {
        let placeholders = |prefix: &str| {
            (1..=chunk.len())
                .map(|number| format!("{prefix}{number}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let context = || "looking up user names".to_owned();
        let rows: Vec<(String, String)> = match db {
            Db::Sqlite(pool, _) => {
                let sql = format!(
                    "SELECT id, COALESCE(display_name, username) FROM keel_users \
                     WHERE id IN ({})",
                    placeholders("?")
                );
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    query = query.bind(id);
                }
                query.fetch_all(pool).await
            }
            Db::Postgres(pool) => {
                let sql = format!(
                    "SELECT id, COALESCE(display_name, username) FROM keel_users \
                     WHERE id IN ({})",
                    placeholders("$")
                );
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    query = query.bind(id);
                }
                query.fetch_all(pool).await
            }
        }
        .map_err(StoreError::query(context()))?;
        names.extend(rows);
    }
    Ok(names)
}

/// How many users the `subordinates` scope of `manager_id` covers (themselves included),
/// by the closure table the scope reads.
pub async fn team_size(db: &Db, manager_id: &str) -> Result<i64, StoreError> {
    let context = || "counting a manager's team".to_owned();
    match db {
        Db::Sqlite(pool, _) => {
            sqlx::query_scalar("SELECT count(*) FROM keel_team_members WHERE manager_id = ?1")
                .bind(manager_id)
                .fetch_one(pool)
                .await
        }
        Db::Postgres(pool) => {
            sqlx::query_scalar("SELECT count(*) FROM keel_team_members WHERE manager_id = $1")
                .bind(manager_id)
                .fetch_one(pool)
                .await
        }
    }
    .map_err(StoreError::query(context()))
}

/// The username of the user, or the name of the department, with id `id`.
async fn name_by_id(
    connection: &mut Connection<'_>,
    lookup: UserLookup,
    id: &str,
) -> Result<Option<String>, StoreError> {
    let (sqlite, postgres) = match lookup {
        UserLookup::Username => (
            "SELECT username FROM keel_users WHERE id = ?1",
            "SELECT username FROM keel_users WHERE id = $1",
        ),
        UserLookup::Department => (
            "SELECT name FROM keel_departments WHERE id = ?1",
            "SELECT name FROM keel_departments WHERE id = $1",
        ),
    };
    let context = format!("looking up the name of `{id}`");
    optional_text(connection, (sqlite, postgres), id, context).await
}

/// A stored department.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartmentRow {
    pub id: String,
    pub name: String,
    pub label: Option<String>,
    pub parent_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The outcome of [`create_department_at`] when the database did its part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepartmentCreated {
    /// The new department's id.
    Created(String),
    /// A department with that name already exists; nothing was changed.
    NameTaken,
}

/// Every department, by name.
pub async fn list_departments(db: &Db) -> Result<Vec<DepartmentRow>, StoreError> {
    let context = || "listing departments".to_owned();
    match db {
        Db::Sqlite(pool, _) => {
            type Row = (String, String, Option<String>, Option<String>, String);
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT id, name, label, parent_id, created_at FROM keel_departments \
                 ORDER BY name",
            )
            .fetch_all(pool)
            .await
            .map_err(StoreError::query(context()))?;
            rows.into_iter()
                .map(|(id, name, label, parent_id, created_at)| {
                    Ok(DepartmentRow {
                        id,
                        name,
                        label,
                        parent_id,
                        created_at: from_sqlite_text(&created_at)?,
                    })
                })
                .collect()
        }
        Db::Postgres(pool) => {
            type Row = (
                String,
                String,
                Option<String>,
                Option<String>,
                DateTime<Utc>,
            );
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT id, name, label, parent_id, created_at FROM keel_departments \
                 ORDER BY name",
            )
            .fetch_all(pool)
            .await
            .map_err(StoreError::query(context()))?;
            Ok(rows
                .into_iter()
                .map(|(id, name, label, parent_id, created_at)| DepartmentRow {
                    id,
                    name,
                    label,
                    parent_id,
                    created_at,
                })
                .collect())
        }
    }
}

/// Creates the department `name` under `parent` (by name) at `now`, on behalf of the user
/// with id `by`, which the audit trail records with the department's place in the tree.
/// Unlike [`ensure_department_at`], an existing name is reported, not reused. Fails when the
/// parent does not exist.
pub async fn create_department_at(
    db: &Db,
    name: &str,
    label: Option<&str>,
    parent: Option<&str>,
    now: DateTime<Utc>,
    by: Option<&str>,
) -> Result<DepartmentCreated, StoreError> {
    let mut transaction = db.begin_write().await?;
    let mut connection = transaction.connection();
    if lookup_id(&mut connection, UserLookup::Department, name)
        .await?
        .is_some()
    {
        return Ok(DepartmentCreated::NameTaken);
    }
    let Some(id) = insert_department(&mut connection, name, label, parent, now).await? else {
        // A concurrent process created the same name between our check and our insert.
        return Ok(DepartmentCreated::NameTaken);
    };
    AccessAudit {
        object: DEPARTMENTS_AUDIT,
        id: &id,
        at: now,
        by,
        action: "create",
    }
    .write(
        &mut connection,
        &[
            ("name", Json::Null, Json::String(name.to_owned())),
            ("parent", Json::Null, name_json(parent)),
        ],
    )
    .await?;
    rebuild_org(&mut connection).await?;
    transaction.commit().await?;
    Ok(DepartmentCreated::Created(id))
}

/// Inserts the department `name` under `parent` (by name; it must exist) unless the name is
/// taken. Returns the new id, or `None` when another row already has the name.
async fn insert_department(
    connection: &mut Connection<'_>,
    name: &str,
    label: Option<&str>,
    parent: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let parent_id = match parent {
        Some(parent) => Some(
            lookup_id(connection, UserLookup::Department, parent)
                .await?
                .ok_or_else(|| StoreError::UnknownDepartment {
                    name: parent.to_owned(),
                })?,
        ),
        None => None,
    };
    let id = uuid::Uuid::now_v7().to_string();
    let context = || format!("adding department `{name}`");
    let inserted = match connection {
        Connection::Sqlite(connection) => sqlx::query(
            "INSERT INTO keel_departments (id, name, label, parent_id, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&id)
        .bind(name)
        .bind(label)
        .bind(&parent_id)
        .bind(to_sqlite_text(now))
        .execute(&mut **connection)
        .await
        .map(|done| done.rows_affected()),
        Connection::Postgres(connection) => sqlx::query(
            "INSERT INTO keel_departments (id, name, label, parent_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&id)
        .bind(name)
        .bind(label)
        .bind(&parent_id)
        .bind(now)
        .execute(&mut **connection)
        .await
        .map(|done| done.rows_affected()),
    }
    .map_err(StoreError::query(context()))?;
    Ok((inserted > 0).then_some(id))
}
