//! Accounts: argon2id password hashes, the first `admin` user, and adding users.
//!
//! Hashing is slow on purpose (tens of milliseconds), so it runs on the blocking pool and never
//! stalls the async workers. Sessions and login live with the HTTP API, not here.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chrono::{DateTime, Utc};
use keel_meta::Schema;
use keel_store::Db;
use rand::Rng;

use crate::RuntimeError;
use crate::clock::{Clock, SystemClock};

/// A user to add; the password is plain text here and hashed before it is stored.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: Option<String>,
    pub password: String,
    pub roles: Vec<String>,
    pub manager: Option<String>,
    pub department: Option<String>,
    pub language: Option<String>,
    /// Where email notifications reach the user; see [`check_email`].
    pub email: Option<String>,
}

/// The `admin` user created on first start.
#[derive(Debug, Clone)]
pub struct CreatedAdmin {
    pub username: String,
    /// The random password, when none was given (printed once by the CLI).
    pub generated_password: Option<String>,
}

/// Passwords shorter than this are refused.
pub const MIN_PASSWORD_LENGTH: usize = 8;

/// The longest email address a user may have, in characters: the longest an SMTP path
/// allows (RFC 5321's 256 octets less the angle brackets).
pub const MAX_EMAIL_LENGTH: usize = 254;

/// A user's email address with surrounding whitespace trimmed, or why it is not one. The
/// check is deliberately simple, the rule of the `email` field type (one `@` with something
/// on both sides and a dot in the domain, no whitespace), plus no control characters and at
/// most [`MAX_EMAIL_LENGTH`] characters: whether the address exists only a mail server can
/// tell.
pub fn check_email(address: &str) -> Result<String, String> {
    let address = address.trim();
    if address.chars().count() > MAX_EMAIL_LENGTH {
        return Err(format!(
            "an email address has at most {MAX_EMAIL_LENGTH} characters"
        ));
    }
    if address.chars().any(char::is_control) || !crate::coerce::email_pattern().is_match(address) {
        return Err(format!(
            "`{address}` is not an email address: use one `@`, no spaces, e.g. li@example.com"
        ));
    }
    Ok(address.to_owned())
}

/// Hashes a password with argon2id and a random salt, on the blocking pool.
pub async fn hash_password(password: String) -> Result<String, RuntimeError> {
    tokio::task::spawn_blocking(move || {
        let mut salt_bytes = [0u8; 16];
        rand::rng().fill(&mut salt_bytes);
        Argon2::default()
            .hash_password_with_salt(password.as_bytes(), &salt_bytes)
            .map(|hash| hash.to_string())
            .map_err(|error| RuntimeError::PasswordHash(error.to_string()))
    })
    .await
    .map_err(|error| RuntimeError::PasswordHash(error.to_string()))?
}

/// Checks a password against a stored hash, on the blocking pool. A malformed hash never
/// matches.
pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Creates `admin` (role `admin`) when there are no users at all, at the time of the system
/// clock (it runs once, at start-up). Returns `None` when users already exist.
pub async fn bootstrap_admin(
    db: &Db,
    password: Option<String>,
) -> Result<Option<CreatedAdmin>, RuntimeError> {
    if keel_store::users::count(db).await? > 0 {
        return Ok(None);
    }
    let generated = password.is_none();
    let password = password.unwrap_or_else(random_password);
    let user = keel_store::users::NewUser {
        username: "admin".to_owned(),
        display_name: Some("Administrator".to_owned()),
        password_hash: hash_password(password.clone()).await?,
        roles: vec!["admin".to_owned()],
        manager: None,
        department: None,
        language: None,
        email: None,
    };
    keel_store::users::insert_at(db, &user, SystemClock.now(), None).await?;
    Ok(Some(CreatedAdmin {
        username: user.username,
        generated_password: generated.then_some(password),
    }))
}

/// Adds a user after checking the roles against the app and the password's length, on
/// behalf of the system at the time of the system clock (the CLI's `keel user add`).
pub async fn add_user(db: &Db, schema: &Schema, user: NewUser) -> Result<String, RuntimeError> {
    add_user_by(db, schema, user, None, SystemClock.now()).await
}

/// [`add_user`] at `now` (the caller's clock) on behalf of the user with id `by` (`None`:
/// the system), whom the audit trail names.
pub async fn add_user_by(
    db: &Db,
    schema: &Schema,
    user: NewUser,
    by: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String, RuntimeError> {
    keel_meta::ident::check_identifier(&user.username)
        .map_err(|_| RuntimeError::Invalid(format!("`{}` is not a valid username: use lowercase letters, digits and `_`, starting with a letter", user.username)))?;
    if user.password.chars().count() < MIN_PASSWORD_LENGTH {
        return Err(RuntimeError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_LENGTH} characters"
        )));
    }
    let email = user
        .email
        .as_deref()
        .map(check_email)
        .transpose()
        .map_err(RuntimeError::Invalid)?;
    for role in &user.roles {
        if !schema.roles.roles.contains_key(role) {
            let known: Vec<&str> = schema.roles.roles.keys().map(String::as_str).collect();
            return Err(RuntimeError::Invalid(format!(
                "`{role}` is not a role of this app; roles: {}",
                known.join(", ")
            )));
        }
    }
    if let Some(department) = &user.department {
        keel_store::users::ensure_department_at(db, department, None, None, now).await?;
    }
    let stored = keel_store::users::NewUser {
        username: user.username,
        display_name: user.display_name,
        password_hash: hash_password(user.password).await?,
        roles: user.roles,
        manager: user.manager,
        department: user.department,
        language: user.language,
        email,
    };
    Ok(keel_store::users::insert_at(db, &stored, now, by).await?)
}

/// 20 characters from an unambiguous alphabet (~115 bits).
fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let hash = hash_password("correct horse".to_owned()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".to_owned(), hash.clone()).await);
        assert!(!verify_password("wrong horse".to_owned(), hash).await);
        assert!(!verify_password("x".to_owned(), "not a hash".to_owned()).await);
    }

    #[test]
    fn an_email_address_needs_one_at_no_spaces_and_at_most_254_characters() {
        assert_eq!(
            check_email(" li@example.com "),
            Ok("li@example.com".to_owned())
        );
        for bad in [
            "",
            "li",
            "li@",
            "@example.com",
            "li@example",
            "li@@example.com",
            "l i@example.com",
            "li@exa mple.com",
            "li@example.com\r\nBcc: x@example.com",
            "li\u{7}@example.com",
        ] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
        let longest = format!("{}@example.com", "a".repeat(MAX_EMAIL_LENGTH - 12));
        assert_eq!(longest.chars().count(), MAX_EMAIL_LENGTH);
        assert!(check_email(&longest).is_ok());
        let too_long = format!("a{longest}");
        assert!(check_email(&too_long).unwrap_err().contains("254"));
    }

    #[test]
    fn random_passwords_are_long_and_differ() {
        let a = random_password();
        assert_eq!(a.len(), 20);
        assert_ne!(a, random_password());
    }
}
