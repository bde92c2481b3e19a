//! The user and department registry, as far as the CLI and the runtime's first start need
//! it: count users, add one (with manager and department by name), find one by username,
//! and make sure a department exists.
//!
//! Passwords arrive already hashed: hashing (argon2) and login checks belong to the
//! runtime. This module does not update, deactivate or list users, nor decide who may do
//! any of this.

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
}

/// How many users exist (active or not).
pub async fn count(db: &Db) -> Result<i64, StoreError> {
    let mut pooled = db.acquire().await?;
    pooled
        .connection()
        .count("SELECT count(*) FROM keel_users")
        .await
}

/// Adds `user` and returns its id. Fails, naming the cause, when the username is taken or
/// the manager or department does not exist.
pub async fn insert(db: &Db, user: &NewUser) -> Result<String, StoreError> {
    insert_at(db, user, Utc::now()).await
}

/// [`insert`] with an explicit creation time.
pub async fn insert_at(db: &Db, user: &NewUser, now: DateTime<Utc>) -> Result<String, StoreError> {
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
                 manager_id, department_id, language, active, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9, ?9)",
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
        .execute(&mut **connection)
        .await
        .map(|done| done.rows_affected()),
        Connection::Postgres(connection) => sqlx::query(
            "INSERT INTO keel_users (id, username, display_name, password_hash, roles, \
                 manager_id, department_id, language, active, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, true, $9, $9)",
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
    transaction.commit().await?;
    Ok(id)
}

/// The user called `username`, if any.
pub async fn find_by_username(db: &Db, username: &str) -> Result<Option<UserRow>, StoreError> {
    let context = || format!("looking up user `{username}`");
    let row = match db {
        Db::Sqlite(pool) => {
            let row: Option<UserColumns<String>> = sqlx::query_as(
                "SELECT id, username, display_name, password_hash, roles, manager_id, \
                 department_id, language, active, created_at, updated_at \
                 FROM keel_users WHERE username = ?1",
            )
            .bind(username)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::query(context()))?;
            match row {
                Some(row) => {
                    let created_at = from_sqlite_text(&row.9)?;
                    let updated_at = from_sqlite_text(&row.10)?;
                    Some(user_row(row, created_at, updated_at)?)
                }
                None => None,
            }
        }
        Db::Postgres(pool) => {
            let row: Option<UserColumns<DateTime<Utc>>> = sqlx::query_as(
                "SELECT id, username, display_name, password_hash, roles::text, manager_id, \
                 department_id, language, active, created_at, updated_at \
                 FROM keel_users WHERE username = $1",
            )
            .bind(username)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::query(context()))?;
            match row {
                Some(row) => {
                    let (created_at, updated_at) = (row.9, row.10);
                    Some(user_row(row, created_at, updated_at)?)
                }
                None => None,
            }
        }
    };
    Ok(row)
}

/// The columns of `keel_users` as selected by [`find_by_username`]; `Time` is how the
/// dialect returns a datetime.
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
    })
}

/// The id of the department called `name`, creating it (under `parent`, by name) when
/// missing. An existing department is returned unchanged.
pub async fn ensure_department(
    db: &Db,
    name: &str,
    label: Option<&str>,
    parent: Option<&str>,
) -> Result<String, StoreError> {
    ensure_department_at(db, name, label, parent, Utc::now()).await
}

/// [`ensure_department`] with an explicit creation time.
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
    let parent_id = match parent {
        Some(parent) => Some(
            lookup_id(&mut connection, UserLookup::Department, parent)
                .await?
                .ok_or_else(|| StoreError::UnknownDepartment {
                    name: parent.to_owned(),
                })?,
        ),
        None => None,
    };
    let id = uuid::Uuid::now_v7().to_string();
    let context = || format!("adding department `{name}`");
    match &mut connection {
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
        .map(drop),
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
        .map(drop),
    }
    .map_err(StoreError::query(context()))?;
    // A concurrent process may have won the insert: read whichever row is there.
    let id = lookup_id(&mut connection, UserLookup::Department, name)
        .await?
        .ok_or_else(|| StoreError::UnknownDepartment {
            name: name.to_owned(),
        })?;
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
    match connection {
        Connection::Sqlite(connection) => sqlx::query_scalar(sqlite)
            .bind(name)
            .fetch_optional(&mut **connection)
            .await
            .map_err(StoreError::query(context)),
        Connection::Postgres(connection) => sqlx::query_scalar(postgres)
            .bind(name)
            .fetch_optional(&mut **connection)
            .await
            .map_err(StoreError::query(context)),
    }
}
