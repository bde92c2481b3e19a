//! Who is calling: signing in and out, resolving a session token to an [`Actor`], the
//! sign-in rate limit, and the administration of people (users and departments).
//!
//! A session token is 32 random bytes, base64url-encoded, handed to the client once. Only
//! its SHA-256 is stored (`keel_sessions`), so the table cannot be replayed from a backup.
//! Sessions last [`SESSION_LIFETIME`] after their last use (sliding expiry; the stored
//! expiry moves at most once per [`SESSION_TOUCH_INTERVAL`] so reads do not all become
//! writes). A wrong username and a wrong password fail alike, after the same argon2 work
//! (a dummy hash stands in for a missing user), so neither the answer nor its timing tells
//! whether a user exists.
//!
//! **Rate limit.** Failed sign-ins are counted per username and per client address over
//! [`LOGIN_ATTEMPT_WINDOW`]; past [`MAX_FAILED_LOGINS_PER_USERNAME`] or
//! [`MAX_FAILED_LOGINS_PER_ADDRESS`] further attempts are refused, without checking the
//! password, until the oldest failure leaves the window. The counts live in this process's
//! memory: several `keel serve` processes each count on their own, and a restart forgets.
//! That is a deliberate trade (no table written on every failure); put a shared limiter
//! in front of Keel if that matters.
//!
//! **Session cache.** A token verified against the database is trusted for
//! [`SESSION_CACHE_TTL`] by this process without asking again, so a read costs one query,
//! not two. Signing out, a new password, new roles or a deactivation drop the user's cached
//! sessions in this process at once; another `keel serve` process notices within the TTL.
//! The org (managers, departments) is not cached: scopes read it in every query.
//!
//! Time comes from a [`Clock`]. This module knows nothing of HTTP (cookies, headers and
//! status codes are `web`'s) and writes no SQL (`keel_store::sessions` and `users` do).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use keel_meta::Schema;
use keel_store::users::{DepartmentCreated, DepartmentRow, UserChanges, UserRow, UserUpdate};
use keel_store::{Db, StoreError};
use rand::Rng as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::RuntimeError;
use crate::accounts::{
    MIN_PASSWORD_LENGTH, NewUser, add_user_by, check_email, hash_password, verify_password,
};
use crate::actor::Actor;
use crate::cache::TtlCache;
use crate::clock::Clock;

/// How long a session lasts after its last use.
pub const SESSION_LIFETIME: TimeDelta = TimeDelta::days(30);
/// A session's last use and expiry are written at most this often.
pub const SESSION_TOUCH_INTERVAL: TimeDelta = TimeDelta::minutes(1);
/// How long this process trusts a verified session token without asking the database.
pub const SESSION_CACHE_TTL: TimeDelta = TimeDelta::seconds(2);
/// Past this many cached sessions the cache starts afresh (it only saves queries).
const SESSION_CACHE_CAPACITY: usize = 10_000;
/// The window over which failed sign-ins are counted.
pub const LOGIN_ATTEMPT_WINDOW: TimeDelta = TimeDelta::minutes(15);
/// Failed sign-ins allowed per username within the window.
pub const MAX_FAILED_LOGINS_PER_USERNAME: usize = 10;
/// Failed sign-ins allowed per client address (an IPv6 client: its /64) within the window.
pub const MAX_FAILED_LOGINS_PER_ADDRESS: usize = 50;

/// Sign-in attempts with a longer password (or username) fail without hashing.
const MAX_PASSWORD_BYTES: usize = 4_096;
/// Tokens longer than this are not ours; they are refused before any hashing or lookup.
const MAX_TOKEN_LENGTH: usize = 128;
/// The limiter sweeps stale entries once it tracks this many usernames and addresses.
const LIMITER_SWEEP_THRESHOLD: usize = 10_000;

/// Signing in and out, sessions, and the administration of people.
#[derive(Clone, Debug)]
pub struct Auth {
    schema: Arc<Schema>,
    db: Db,
    clock: Arc<dyn Clock>,
    limiter: Arc<LoginLimiter>,
    /// Token hash → recently verified session (see the module documentation).
    sessions: Arc<TtlCache<CachedSession>>,
    /// An argon2 hash of a random password, verified against when the user does not exist.
    dummy_hash: Arc<tokio::sync::OnceCell<String>>,
}

/// A successful sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The session token: give it to the client once; it is not stored.
    pub token: String,
    pub user: Actor,
    /// The user's own email address: theirs to see, not part of the [`Actor`] that other
    /// code passes around.
    pub email: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// The signed-in user as they see themselves: who they act as, and their own email
/// address, which nobody but they and the admins see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnView {
    #[serde(flatten)]
    pub actor: Actor,
    pub email: Option<String>,
}

/// One recorded change of who may see what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessChange {
    pub at: String,
    /// The username of who made the change; `None` for the system or the metadata.
    pub by: Option<String>,
    /// `user`, `department` or `roles`.
    pub subject_type: &'static str,
    /// The username, department name or role name.
    pub subject: String,
    /// `create`, `update` or `delete`.
    pub action: String,
    pub field: String,
    pub old: serde_json::Value,
    pub new: serde_json::Value,
}

/// A user as an administrator sees them (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub roles: Vec<String>,
    /// True when any of the roles has `admin: true`.
    pub admin: bool,
    /// The manager's username.
    pub manager: Option<String>,
    /// The department's name.
    pub department: Option<String>,
    pub language: Option<String>,
    /// Personal data: only admins see other users' addresses.
    pub email: Option<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user as a picker of a `user` field offers them: the id a record stores and the name a
/// record shows (`_refs`), nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserChoice {
    pub id: String,
    /// The display name, else the username.
    pub name: String,
    /// Deactivated users are not offered, but still name the records they once touched.
    pub active: bool,
}

/// A department as an administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepartmentView {
    pub id: String,
    pub name: String,
    pub label: Option<String>,
    /// The parent department's name.
    pub parent: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A new department.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDepartment {
    pub name: String,
    pub label: Option<String>,
    /// The parent department's name.
    pub parent: Option<String>,
}

/// Changes to a user; `None` leaves a property as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub display_name: Option<Option<String>>,
    /// A new password (plain text here; hashed before it is stored). Ends every session of
    /// the user.
    pub password: Option<String>,
    pub roles: Option<Vec<String>>,
    /// The manager's username.
    pub manager: Option<Option<String>>,
    /// The department's name.
    pub department: Option<Option<String>>,
    pub language: Option<Option<String>>,
    /// `false` deactivates the user: they cannot sign in and their sessions end.
    pub active: Option<bool>,
    /// Checked like a new user's; `Some(None)` removes the address.
    pub email: Option<Option<String>>,
}

/// Why an auth or people call did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong username or password, or an inactive user: the same answer for all three.
    #[error("wrong username or password")]
    BadCredentials,
    /// Too many failed sign-ins for this username or address.
    #[error("too many failed sign-in attempts; try again in {} seconds", retry_after.as_secs())]
    TooManyAttempts { retry_after: std::time::Duration },
    /// No token, or an unknown, expired or ended session, or a deactivated user.
    #[error("not signed in, or the session has ended")]
    NotAuthenticated,
    /// People administration needs an admin.
    #[error("only administrators may manage users and departments")]
    Forbidden,
    /// Invalid input, naming the field when there is one.
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        message: String,
    },
    #[error("there is no user `{0}`")]
    UnknownUser(String),
    #[error("a user named `{0}` already exists")]
    UsernameTaken(String),
    #[error("a department named `{0}` already exists")]
    DepartmentTaken(String),
    /// Hashing a password failed (a server fault).
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// The database failed (a server fault).
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> AuthError {
        match error {
            StoreError::DuplicateUsername { username } => AuthError::UsernameTaken(username),
            StoreError::UnknownManager { .. } => AuthError::Invalid {
                field: Some("manager".to_owned()),
                message: error.to_string(),
            },
            StoreError::UnknownDepartment { .. } => AuthError::Invalid {
                field: Some("department".to_owned()),
                message: error.to_string(),
            },
            other => AuthError::Store(other),
        }
    }
}

impl From<RuntimeError> for AuthError {
    fn from(error: RuntimeError) -> AuthError {
        match error {
            RuntimeError::Store(error) => error.into(),
            RuntimeError::Invalid(message) => AuthError::Invalid {
                field: None,
                message,
            },
            RuntimeError::PasswordHash(message) => AuthError::Hashing(message),
            other => AuthError::Hashing(other.to_string()),
        }
    }
}

impl Auth {
    pub fn new(schema: Arc<Schema>, db: Db, clock: Arc<dyn Clock>) -> Auth {
        Auth {
            schema,
            db,
            clock,
            limiter: Arc::new(LoginLimiter::default()),
            sessions: Arc::new(TtlCache::new(SESSION_CACHE_TTL, SESSION_CACHE_CAPACITY)),
            dummy_hash: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// The same service on another metadata version (docs/studio.md): sign-in limits,
    /// the verified-session cache and the sessions themselves carry on.
    pub fn with_schema(&self, schema: Arc<Schema>) -> Auth {
        Auth {
            schema,
            db: self.db.clone(),
            clock: Arc::clone(&self.clock),
            limiter: Arc::clone(&self.limiter),
            sessions: Arc::clone(&self.sessions),
            dummy_hash: Arc::clone(&self.dummy_hash),
        }
    }

    /// Signs `username` in from `address` (when known) and starts a session.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        address: Option<IpAddr>,
    ) -> Result<SignedIn, AuthError> {
        let now = self.clock.now();
        let keys = LimitKey::for_attempt(username, address);
        if let Some(retry_after) = self.limiter.retry_after(&keys, now) {
            tracing::warn!(
                username,
                ?address,
                "sign-in refused: too many failed attempts"
            );
            return Err(AuthError::TooManyAttempts { retry_after });
        }
        if password.len() > MAX_PASSWORD_BYTES || username.len() > MAX_PASSWORD_BYTES {
            // No real password is this long; refuse without feeding megabytes to argon2.
            self.limiter.record_failure(&keys, now);
            return Err(AuthError::BadCredentials);
        }
        let user = keel_store::users::find_by_username(&self.db, username).await?;
        let (hash, user) = match user {
            Some(user) => (user.password_hash.clone(), Some(user)),
            None => (self.dummy_hash().await?, None),
        };
        let password_matches = verify_password(password.to_owned(), hash).await;
        let user = match user {
            Some(user) if password_matches && user.active => user,
            _ => {
                self.limiter.record_failure(&keys, now);
                tracing::info!(username, ?address, "sign-in failed");
                return Err(AuthError::BadCredentials);
            }
        };
        self.limiter.forget(&LimitKey::for_username(username));
        // Sign-ins are rare enough to carry the sweep of sessions nobody will use again.
        keel_store::sessions::delete_expired(&self.db, now).await?;
        let token = new_token();
        let expires_at = now + SESSION_LIFETIME;
        keel_store::sessions::insert(
            &self.db,
            &keel_store::sessions::SessionRow {
                id: token_hash(&token),
                user_id: user.id.clone(),
                created_at: now,
                expires_at,
                last_seen_at: now,
            },
        )
        .await?;
        tracing::info!(username, "signed in");
        Ok(SignedIn {
            token,
            user: self.actor_for(&user),
            email: user.email,
            expires_at,
        })
    }

    /// The user behind a session token, extending the session.
    pub async fn authenticate(&self, token: &str) -> Result<Actor, AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LENGTH {
            return Err(AuthError::NotAuthenticated);
        }
        let now = self.clock.now();
        let id = token_hash(token);
        // Neither expired nor due for its sliding-expiry touch.
        let usable = |cached: &CachedSession| {
            now < cached.expires_at && now - cached.last_seen_at < SESSION_TOUCH_INTERVAL
        };
        if let Some(cached) = self.sessions.get(&id, now, usable) {
            return Ok(cached.actor);
        }
        let Some(session) = keel_store::users::find_by_session(&self.db, &id).await? else {
            return Err(AuthError::NotAuthenticated);
        };
        if session.expires_at <= now || !session.user.active {
            keel_store::sessions::delete(&self.db, &id).await?;
            return Err(AuthError::NotAuthenticated);
        }
        let user = session.user;
        let (mut last_seen_at, mut expires_at) = (session.last_seen_at, session.expires_at);
        if now - last_seen_at >= SESSION_TOUCH_INTERVAL {
            (last_seen_at, expires_at) = (now, now + SESSION_LIFETIME);
            keel_store::sessions::touch(&self.db, &id, last_seen_at, expires_at).await?;
        }
        let actor = self.actor_for(&user);
        self.sessions.put(
            id,
            CachedSession {
                actor: actor.clone(),
                last_seen_at,
                expires_at,
            },
            now,
        );
        Ok(actor)
    }

    /// The signed-in `actor` as they see themselves, with their own email address (read
    /// afresh: the session cache does not carry it).
    pub async fn own_view(&self, actor: &Actor) -> Result<OwnView, AuthError> {
        let email = keel_store::users::find_by_id(&self.db, &actor.id)
            .await?
            .and_then(|user| user.email);
        Ok(OwnView {
            actor: actor.clone(),
            email,
        })
    }

    /// Ends the session of `token` (ending an unknown session is not an error).
    pub async fn logout(&self, token: &str) -> Result<(), AuthError> {
        let id = token_hash(token);
        self.sessions.remove(&id);
        keel_store::sessions::delete(&self.db, &id).await?;
        Ok(())
    }

    /// Removes expired sessions; returns how many. Every sign-in also does this.
    pub async fn remove_expired_sessions(&self) -> Result<u64, AuthError> {
        Ok(keel_store::sessions::delete_expired(&self.db, self.clock.now()).await?)
    }

    /// Sets the signed-in `actor`'s own language (`None`: follow the browser). Every user
    /// may do this for themselves; it is recorded in the access audit like an admin's change.
    pub async fn update_own(
        &self,
        actor: &Actor,
        language: Option<String>,
    ) -> Result<OwnView, AuthError> {
        if let Some(language) = &language
            && (language.is_empty()
                || language.len() > 16
                || !language
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(AuthError::Invalid {
                field: Some("language".to_owned()),
                message: format!("`{language}` is not a language tag such as `zh` or `en`"),
            });
        }
        let changes = UserChanges {
            language: Some(language),
            ..UserChanges::default()
        };
        let updated = self.change_self(actor, &changes).await?;
        Ok(OwnView {
            actor: self.actor_for(&updated),
            email: updated.email,
        })
    }

    /// Changes the signed-in `actor`'s own password after checking `current`. Every session
    /// of the user ends (a stolen session dies with the old password) and a new one starts
    /// for the caller, whose token comes back. A wrong `current` counts against the sign-in
    /// rate limit, so this is no side door for guessing passwords.
    pub async fn change_own_password(
        &self,
        actor: &Actor,
        current: &str,
        new: &str,
    ) -> Result<SignedIn, AuthError> {
        let now = self.clock.now();
        let keys = LimitKey::for_attempt(&actor.username, None);
        if let Some(retry_after) = self.limiter.retry_after(&keys, now) {
            return Err(AuthError::TooManyAttempts { retry_after });
        }
        let Some(user) = keel_store::users::find_by_id(&self.db, &actor.id).await? else {
            return Err(AuthError::NotAuthenticated);
        };
        let matches = current.len() <= MAX_PASSWORD_BYTES
            && verify_password(current.to_owned(), user.password_hash.clone()).await;
        if !matches {
            self.limiter.record_failure(&keys, now);
            return Err(AuthError::Invalid {
                field: Some("current".to_owned()),
                message: "the current password is wrong".to_owned(),
            });
        }
        if new.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::Invalid {
                field: Some("password".to_owned()),
                message: format!("the password must have at most {MAX_PASSWORD_BYTES} bytes"),
            });
        }
        check_password(new)?;
        let changes = UserChanges {
            password_hash: Some(hash_password(new.to_owned()).await?),
            ..UserChanges::default()
        };
        let updated = self.change_self(actor, &changes).await?;
        let ended = keel_store::sessions::delete_for_user(&self.db, &updated.id).await?;
        tracing::info!(username = %actor.username, ended, "password changed by its owner");
        let token = new_token();
        let expires_at = now + SESSION_LIFETIME;
        keel_store::sessions::insert(
            &self.db,
            &keel_store::sessions::SessionRow {
                id: token_hash(&token),
                user_id: updated.id.clone(),
                created_at: now,
                expires_at,
                last_seen_at: now,
            },
        )
        .await?;
        Ok(SignedIn {
            token,
            user: self.actor_for(&updated),
            email: updated.email,
            expires_at,
        })
    }

    /// Applies `changes` to the actor's own user row, on their own behalf, and drops their
    /// cached sessions (which carry the old settings).
    async fn change_self(
        &self,
        actor: &Actor,
        changes: &UserChanges,
    ) -> Result<UserRow, AuthError> {
        let updated = match keel_store::users::update_at(
            &self.db,
            &actor.username,
            changes,
            self.clock.now(),
            Some(&actor.id),
        )
        .await?
        {
            UserUpdate::Updated(user) => *user,
            UserUpdate::NoSuchUser | UserUpdate::ManagerCycle => {
                return Err(AuthError::NotAuthenticated);
            }
        };
        self.sessions.retain(|cached| cached.actor.id != updated.id);
        Ok(updated)
    }

    /// Every user, by username (admins only).
    pub async fn list_users(&self, actor: &Actor) -> Result<Vec<UserView>, AuthError> {
        self.require_admin(actor)?;
        let users = keel_store::users::list(&self.db).await?;
        let departments = keel_store::users::list_departments(&self.db).await?;
        Ok(users
            .iter()
            .map(|user| self.user_view(user, &users, &departments))
            .collect())
    }

    /// Every user as a `user` field's picker offers them, by name: any signed-in user may
    /// ask, because names are no secret — every record shows its owner's in `_refs` — and
    /// nothing else about a user is returned.
    pub async fn user_choices(&self, _actor: &Actor) -> Result<Vec<UserChoice>, AuthError> {
        let mut choices: Vec<UserChoice> = keel_store::users::list(&self.db)
            .await?
            .into_iter()
            .map(|user| UserChoice {
                name: user.display_name.unwrap_or_else(|| user.username.clone()),
                id: user.id,
                active: user.active,
            })
            .collect();
        choices.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(choices)
    }

    /// Adds a user (admins only). Roles must exist in the app; the manager and the
    /// department must exist.
    pub async fn create_user(
        &self,
        actor: &Actor,
        mut user: NewUser,
    ) -> Result<UserView, AuthError> {
        self.require_admin(actor)?;
        // The same checks `add_user_by` makes, here with the field named, so a form can
        // show each next to its input.
        keel_meta::ident::check_identifier(&user.username).map_err(|_| AuthError::Invalid {
            field: Some("username".to_owned()),
            message: format!(
                "`{}` is not a valid username: use lowercase letters, digits and `_`, starting with a letter",
                user.username
            ),
        })?;
        check_password(&user.password)?;
        self.check_roles(&user.roles)?;
        user.email = user.email.as_deref().map(email_field).transpose()?;
        if let Some(department) = &user.department {
            self.require_department(department).await?;
        }
        let username = user.username.clone();
        add_user_by(
            &self.db,
            &self.schema,
            user,
            Some(&actor.id),
            self.clock.now(),
        )
        .await?;
        tracing::info!(by = %actor.username, username, "user added");
        self.find_user_view(&username).await
    }

    /// Changes the user `username` (admins only). A new password or a deactivation ends
    /// the user's sessions.
    pub async fn update_user(
        &self,
        actor: &Actor,
        username: &str,
        patch: UserPatch,
    ) -> Result<UserView, AuthError> {
        self.require_admin(actor)?;
        if let Some(roles) = &patch.roles {
            self.check_roles(roles)?;
        }
        if patch.active == Some(false) && username == actor.username {
            return Err(AuthError::Invalid {
                field: Some("active".to_owned()),
                message: "you cannot deactivate yourself".to_owned(),
            });
        }
        if let Some(Some(department)) = &patch.department {
            self.require_department(department).await?;
        }
        let email = match &patch.email {
            Some(Some(address)) => Some(Some(email_field(address)?)),
            other => other.clone(),
        };
        let password_hash = match &patch.password {
            Some(password) => {
                check_password(password)?;
                Some(hash_password(password.clone()).await?)
            }
            None => None,
        };
        let changes = UserChanges {
            display_name: patch.display_name,
            password_hash,
            roles: patch.roles,
            manager: patch.manager,
            department: patch.department,
            language: patch.language,
            active: patch.active,
            email,
        };
        let updated = match keel_store::users::update_at(
            &self.db,
            username,
            &changes,
            self.clock.now(),
            Some(&actor.id),
        )
        .await?
        {
            UserUpdate::Updated(user) => *user,
            UserUpdate::NoSuchUser => return Err(AuthError::UnknownUser(username.to_owned())),
            UserUpdate::ManagerCycle => {
                return Err(AuthError::Invalid {
                    field: Some("manager".to_owned()),
                    message: format!(
                        "that manager reports to `{username}`: the manager chain would loop"
                    ),
                });
            }
        };
        // Cached sessions carry the user's roles and activity: drop them.
        self.sessions.retain(|cached| cached.actor.id != updated.id);
        if changes.password_hash.is_some() || changes.active == Some(false) {
            let ended = keel_store::sessions::delete_for_user(&self.db, &updated.id).await?;
            tracing::info!(username, ended, "ended the user's sessions");
        }
        tracing::info!(by = %actor.username, username, "user changed");
        self.find_user_view(username).await
    }

    /// Every department, by name (admins only).
    pub async fn list_departments(&self, actor: &Actor) -> Result<Vec<DepartmentView>, AuthError> {
        self.require_admin(actor)?;
        let departments = keel_store::users::list_departments(&self.db).await?;
        Ok(departments
            .iter()
            .map(|department| department_view(department, &departments))
            .collect())
    }

    /// Creates a department, optionally under a parent (admins only).
    pub async fn create_department(
        &self,
        actor: &Actor,
        department: NewDepartment,
    ) -> Result<DepartmentView, AuthError> {
        self.require_admin(actor)?;
        keel_meta::ident::check_identifier(&department.name).map_err(|_| AuthError::Invalid {
            field: Some("name".to_owned()),
            message: format!(
                "`{}` is not a valid department name: use lowercase letters, digits and `_`, starting with a letter",
                department.name
            ),
        })?;
        let created = keel_store::users::create_department_at(
            &self.db,
            &department.name,
            department.label.as_deref(),
            department.parent.as_deref(),
            self.clock.now(),
            Some(&actor.id),
        )
        .await
        .map_err(|error| match error {
            StoreError::UnknownDepartment { name } => AuthError::Invalid {
                field: Some("parent".to_owned()),
                message: format!("unknown parent department `{name}`"),
            },
            other => other.into(),
        })?;
        let id = match created {
            DepartmentCreated::Created(id) => id,
            DepartmentCreated::NameTaken => {
                return Err(AuthError::DepartmentTaken(department.name));
            }
        };
        tracing::info!(by = %actor.username, name = %department.name, "department added");
        let departments = keel_store::users::list_departments(&self.db).await?;
        departments
            .iter()
            .find(|row| row.id == id)
            .map(|row| department_view(row, &departments))
            .ok_or_else(|| {
                AuthError::Store(StoreError::UnreadableValue {
                    what: format!(
                        "department `{}` vanished after it was added",
                        department.name
                    ),
                })
            })
    }

    /// The user called `username` as an actor, to explain their access (admins only).
    pub async fn actor_named(&self, actor: &Actor, username: &str) -> Result<Actor, AuthError> {
        self.require_admin(actor)?;
        match keel_store::users::find_by_username(&self.db, username).await? {
            Some(user) => Ok(self.actor_for(&user)),
            None => Err(AuthError::UnknownUser(username.to_owned())),
        }
    }

    /// The newest changes of access (admins only), newest first: users' roles, managers,
    /// departments, activity and passwords, new departments, and role definitions changed
    /// in `roles.yaml`. `by` and `subject` are usernames and names, not ids.
    pub async fn access_changes(
        &self,
        actor: &Actor,
        limit: u32,
    ) -> Result<Vec<AccessChange>, AuthError> {
        self.require_admin(actor)?;
        let users = keel_store::users::list(&self.db).await?;
        let departments = keel_store::users::list_departments(&self.db).await?;
        let username = |id: &str| {
            users
                .iter()
                .find(|user| user.id == id)
                .map_or_else(|| id.to_owned(), |user| user.username.clone())
        };
        let entries = keel_store::records::recent(
            &self.db,
            &[
                keel_store::users::USERS_AUDIT,
                keel_store::users::DEPARTMENTS_AUDIT,
                keel_store::migrate::ROLES_AUDIT,
            ],
            limit,
        )
        .await?;
        Ok(entries
            .into_iter()
            .map(|entry| {
                let (subject_type, subject) = match entry.object.as_str() {
                    keel_store::users::USERS_AUDIT => ("user", username(&entry.record_id)),
                    keel_store::users::DEPARTMENTS_AUDIT => (
                        "department",
                        departments
                            .iter()
                            .find(|department| department.id == entry.record_id)
                            .map_or_else(|| entry.record_id.clone(), |d| d.name.clone()),
                    ),
                    _ => ("roles", entry.record_id.clone()),
                };
                AccessChange {
                    at: keel_meta::value::format_datetime(&entry.at),
                    by: entry.by.as_deref().map(username),
                    subject_type,
                    subject,
                    action: entry.action,
                    field: entry.field,
                    old: entry.old,
                    new: entry.new,
                }
            })
            .collect())
    }

    fn require_admin(&self, actor: &Actor) -> Result<(), AuthError> {
        if self.is_admin(&actor.roles) || actor.admin {
            Ok(())
        } else {
            Err(AuthError::Forbidden)
        }
    }

    fn is_admin(&self, roles: &[String]) -> bool {
        roles.iter().any(|role| {
            self.schema
                .roles
                .roles
                .get(role)
                .is_some_and(|role| role.admin)
        })
    }

    fn check_roles(&self, roles: &[String]) -> Result<(), AuthError> {
        for role in roles {
            if !self.schema.roles.roles.contains_key(role) {
                let known: Vec<&str> = self.schema.roles.roles.keys().map(String::as_str).collect();
                return Err(AuthError::Invalid {
                    field: Some("roles".to_owned()),
                    message: format!(
                        "`{role}` is not a role of this app; roles: {}",
                        known.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    async fn require_department(&self, name: &str) -> Result<(), AuthError> {
        let departments = keel_store::users::list_departments(&self.db).await?;
        if departments.iter().any(|department| department.name == name) {
            Ok(())
        } else {
            Err(AuthError::Invalid {
                field: Some("department".to_owned()),
                message: format!("unknown department `{name}`"),
            })
        }
    }

    async fn find_user_view(&self, username: &str) -> Result<UserView, AuthError> {
        let users = keel_store::users::list(&self.db).await?;
        let departments = keel_store::users::list_departments(&self.db).await?;
        users
            .iter()
            .find(|user| user.username == username)
            .map(|user| self.user_view(user, &users, &departments))
            .ok_or_else(|| AuthError::UnknownUser(username.to_owned()))
    }

    fn user_view(
        &self,
        user: &UserRow,
        users: &[UserRow],
        departments: &[DepartmentRow],
    ) -> UserView {
        UserView {
            id: user.id.clone(),
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            roles: user.roles.clone(),
            admin: self.is_admin(&user.roles),
            manager: user.manager_id.as_ref().and_then(|id| {
                users
                    .iter()
                    .find(|other| &other.id == id)
                    .map(|other| other.username.clone())
            }),
            department: user.department_id.as_ref().and_then(|id| {
                departments
                    .iter()
                    .find(|department| &department.id == id)
                    .map(|department| department.name.clone())
            }),
            language: user.language.clone(),
            email: user.email.clone(),
            active: user.active,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }

    /// The actor a stored user acts as: roles from the row, `admin` from the app's roles
    /// (a role the app no longer declares grants nothing).
    fn actor_for(&self, user: &UserRow) -> Actor {
        Actor {
            id: user.id.clone(),
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            roles: user.roles.clone(),
            admin: self.is_admin(&user.roles),
            manager: user.manager_id.clone(),
            department: user.department_id.clone(),
            language: user.language.clone(),
        }
    }

    async fn dummy_hash(&self) -> Result<String, AuthError> {
        self.dummy_hash
            .get_or_try_init(|| hash_password(new_token()))
            .await
            .cloned()
            .map_err(AuthError::from)
    }
}

fn department_view(department: &DepartmentRow, departments: &[DepartmentRow]) -> DepartmentView {
    DepartmentView {
        id: department.id.clone(),
        name: department.name.clone(),
        label: department.label.clone(),
        parent: department.parent_id.as_ref().and_then(|id| {
            departments
                .iter()
                .find(|parent| &parent.id == id)
                .map(|parent| parent.name.clone())
        }),
        created_at: department.created_at,
    }
}

/// [`check_email`] with its failure pointed at the `email` field.
fn email_field(address: &str) -> Result<String, AuthError> {
    check_email(address).map_err(|message| AuthError::Invalid {
        field: Some("email".to_owned()),
        message,
    })
}

fn check_password(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD_LENGTH {
        return Err(AuthError::Invalid {
            field: Some("password".to_owned()),
            message: format!("the password must have at least {MIN_PASSWORD_LENGTH} characters"),
        });
    }
    Ok(())
}

/// 32 random bytes from the thread's CSPRNG, base64url without padding (43 characters).
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored for a token: its SHA-256, in hex.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What failed sign-ins are counted by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LimitKey {
    Username(String),
    Address(IpAddr),
}

impl LimitKey {
    fn for_username(username: &str) -> LimitKey {
        // Bounded and case-folded, so odd spellings neither dodge the count nor bloat memory.
        LimitKey::Username(
            username
                .trim()
                .chars()
                .take(64)
                .collect::<String>()
                .to_lowercase(),
        )
    }

    /// The keys an attempt counts against, each with its limit.
    fn for_attempt(username: &str, address: Option<IpAddr>) -> Vec<(LimitKey, usize)> {
        let mut keys = vec![(
            LimitKey::for_username(username),
            MAX_FAILED_LOGINS_PER_USERNAME,
        )];
        if let Some(address) = address {
            keys.push((
                LimitKey::Address(network_of(address)),
                MAX_FAILED_LOGINS_PER_ADDRESS,
            ));
        }
        keys
    }
}

/// An IPv4 address as is; an IPv6 address as its /64, which one client usually holds whole.
fn network_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// Failed sign-ins per key within [`LOGIN_ATTEMPT_WINDOW`], in this process's memory.
#[derive(Debug, Default)]
struct LoginLimiter {
    failures: Mutex<HashMap<LimitKey, VecDeque<DateTime<Utc>>>>,
}

/// A session verified against the database (the cache keeps when).
#[derive(Debug, Clone)]
struct CachedSession {
    actor: Actor,
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl LoginLimiter {
    /// How long until an attempt is allowed, or `None` when it is allowed now.
    fn retry_after(
        &self,
        keys: &[(LimitKey, usize)],
        now: DateTime<Utc>,
    ) -> Option<std::time::Duration> {
        let mut failures = self.lock();
        let mut wait: Option<TimeDelta> = None;
        for (key, limit) in keys {
            let Some(times) = failures.get_mut(key) else {
                continue;
            };
            forget_before(times, now - LOGIN_ATTEMPT_WINDOW);
            if times.len() >= *limit {
                // Allowed again once enough of the oldest failures have left the window.
                let index = times.len() - limit;
                let until = times[index] + LOGIN_ATTEMPT_WINDOW - now;
                wait = Some(wait.map_or(until, |wait| wait.max(until)));
            }
        }
        wait.map(|wait| {
            let seconds = wait.num_seconds() + i64::from(wait.subsec_nanos() > 0);
            std::time::Duration::from_secs(u64::try_from(seconds.max(1)).unwrap_or(1))
        })
    }

    fn record_failure(&self, keys: &[(LimitKey, usize)], now: DateTime<Utc>) {
        let mut failures = self.lock();
        if failures.len() >= LIMITER_SWEEP_THRESHOLD {
            let horizon = now - LOGIN_ATTEMPT_WINDOW;
            failures.retain(|_, times| {
                forget_before(times, horizon);
                !times.is_empty()
            });
        }
        for (key, limit) in keys {
            let times = failures.entry(key.clone()).or_default();
            times.push_back(now);
            // Only the newest `limit` failures matter for the decision.
            while times.len() > *limit {
                times.pop_front();
            }
        }
    }

    fn forget(&self, key: &LimitKey) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LimitKey, VecDeque<DateTime<Utc>>>> {
        // The map holds only counters; a panic elsewhere cannot leave it inconsistent.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn forget_before(times: &mut VecDeque<DateTime<Utc>>, horizon: DateTime<Utc>) {
    while times.front().is_some_and(|time| *time <= horizon) {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::minutes(minute)
    }

    #[test]
    fn tokens_are_43_base64url_characters_and_differ() {
        let token = new_token();
        assert_eq!(token.len(), 43);
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(token, new_token());
        assert_eq!(token_hash(&token).len(), 64);
        assert_ne!(token_hash(&token), token);
    }

    #[test]
    fn the_limiter_refuses_after_the_limit_until_the_oldest_failure_leaves_the_window() {
        let limiter = LoginLimiter::default();
        let keys = LimitKey::for_attempt("Ann", None);
        for minute in 0..10 {
            assert!(limiter.retry_after(&keys, at(minute)).is_none());
            limiter.record_failure(&keys, at(minute));
        }
        let wait = limiter.retry_after(&keys, at(10)).unwrap();
        assert_eq!(wait, std::time::Duration::from_secs(5 * 60));
        assert!(limiter.retry_after(&keys, at(15)).is_none());
        // Case and spacing do not make a new username.
        limiter.record_failure(&LimitKey::for_attempt(" ANN ", None), at(15));
        assert!(limiter.retry_after(&keys, at(15)).is_some());
        limiter.forget(&LimitKey::for_username("ann"));
        assert!(limiter.retry_after(&keys, at(15)).is_none());
    }

    #[test]
    fn the_limiter_counts_an_address_across_usernames() {
        let limiter = LoginLimiter::default();
        let address: IpAddr = "2001:db8::1".parse().unwrap();
        for attempt in 0..MAX_FAILED_LOGINS_PER_ADDRESS {
            let keys = LimitKey::for_attempt(&format!("user{attempt}"), Some(address));
            limiter.record_failure(&keys, at(0));
        }
        let neighbour: IpAddr = "2001:db8::2".parse().unwrap();
        let keys = LimitKey::for_attempt("someone_new", Some(neighbour));
        assert!(limiter.retry_after(&keys, at(1)).is_some());
        let elsewhere = LimitKey::for_attempt("someone_new", Some("192.0.2.1".parse().unwrap()));
        assert!(limiter.retry_after(&elsewhere, at(1)).is_none());
    }
}
