//! Demo people: `keel serve --demo` reads the app's `seed/departments.csv` and
//! `seed/users.csv` and creates whatever is missing, so the printed logins work. On a
//! restart each seed password is checked against the stored hash, so a login whose password
//! was changed since is not printed as if it still worked.
//!
//! Loading demo *records* (`seed/<object>.csv`) goes through the record write path and
//! arrives with it; this module deliberately writes only people.

use std::path::{Path, PathBuf};

use keel_meta::{FieldKind, Schema};
use keel_store::Db;

use crate::RuntimeError;
use crate::accounts::{NewUser, add_user_by, verify_password};
use crate::clock::{Clock, SystemClock};

/// A login printed for the demo.
#[derive(Debug, Clone)]
pub struct DemoLogin {
    pub username: String,
    pub password: String,
    pub roles: Vec<String>,
    /// Whether `password` still signs this user in: false once someone changed the password
    /// (or deactivated the user) since the demo seeded it, so it is not printed as a login.
    pub still_valid: bool,
}

/// Whether the app directory has demo data (`seed/`) for `--demo` to load.
pub fn has_seed(app_dir: &Path) -> bool {
    app_dir.join("seed").is_dir()
}

/// Creates the seed departments and users that do not exist yet; returns every seed login.
pub async fn load_demo_people(
    db: &Db,
    schema: &Schema,
    app_dir: &Path,
) -> Result<Vec<DemoLogin>, RuntimeError> {
    // The demo is loaded once, at start-up, at the time of the system clock.
    let now = SystemClock.now();
    let departments = read_csv(&app_dir.join("seed/departments.csv"))?;
    // Parents first: repeat until no department is left whose parent is still missing.
    let mut pending = departments;
    for _ in 0..16 {
        let mut next = Vec::new();
        for row in pending {
            let name = column(&row, "name");
            let parent = column(&row, "parent");
            let label = column(&row, "label");
            if name.is_empty() {
                continue;
            }
            let label = Some(label.as_str()).filter(|l| !l.is_empty());
            let parent_name = Some(parent.as_str()).filter(|p| !p.is_empty());
            match keel_store::users::ensure_department_at(db, &name, label, parent_name, now).await
            {
                Ok(_) => {}
                Err(_) if !parent.is_empty() => next.push(row),
                Err(error) => return Err(error.into()),
            }
        }
        if next.is_empty() {
            break;
        }
        pending = next;
    }

    let users = read_csv(&app_dir.join("seed/users.csv"))?;
    let mut logins = Vec::new();
    // Managers before their reports: retry rows whose manager does not exist yet.
    let mut pending = users;
    for _ in 0..16 {
        let mut next = Vec::new();
        for row in pending {
            let username = column(&row, "username");
            let password = column(&row, "password");
            let roles: Vec<String> = column(&row, "roles")
                .split(';')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect();
            if username.is_empty() {
                continue;
            }
            let existing = keel_store::users::find_by_username(db, &username).await?;
            let still_valid = match existing {
                Some(user) => {
                    user.active && verify_password(password.clone(), user.password_hash).await
                }
                None => {
                    let manager = Some(column(&row, "manager")).filter(|m| !m.is_empty());
                    if let Some(manager) = &manager
                        && keel_store::users::find_by_username(db, manager)
                            .await?
                            .is_none()
                    {
                        next.push(row);
                        continue;
                    }
                    let user = NewUser {
                        username: username.clone(),
                        display_name: Some(column(&row, "display_name")).filter(|d| !d.is_empty()),
                        password: password.clone(),
                        roles: roles.clone(),
                        manager,
                        department: Some(column(&row, "department")).filter(|d| !d.is_empty()),
                        language: Some(column(&row, "language")).filter(|l| !l.is_empty()),
                        email: Some(column(&row, "email")).filter(|e| !e.is_empty()),
                    };
                    add_user_by(db, schema, user, None, now).await?;
                    true
                }
            };
            logins.push(DemoLogin {
                username,
                password,
                roles,
                still_valid,
            });
        }
        if next.is_empty() {
            break;
        }
        pending = next;
    }
    Ok(logins)
}

type Row = Vec<(String, String)>;

fn column(row: &Row, name: &str) -> String {
    row.iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default()
}

fn read_csv(path: &Path) -> Result<Vec<Row>, RuntimeError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let error = |message: String| RuntimeError::Seed {
        path: path.display().to_string(),
        message,
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| error(e.to_string()))?;
    let headers = reader.headers().map_err(|e| error(e.to_string()))?.clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| error(e.to_string()))?;
        rows.push(
            headers
                .iter()
                .zip(record.iter())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        );
    }
    Ok(rows)
}

/// The app's demo record files, `seed/<object>.csv`, in an order that loads a record's
/// lookup targets before it (objects in a lookup cycle keep the app's order).
pub fn seed_record_files(schema: &Schema, app_dir: &Path) -> Vec<(String, PathBuf)> {
    let mut pending: Vec<&keel_meta::Object> = schema
        .objects
        .values()
        .filter(|object| seed_file(app_dir, &object.name).is_file())
        .collect();
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let waits_for = |object: &keel_meta::Object, pending: &[&keel_meta::Object]| {
            object.fields.values().any(|field| match &field.kind {
                FieldKind::Lookup { object: target, .. } => {
                    *target != object.name && pending.iter().any(|p| p.name == *target)
                }
                _ => false,
            })
        };
        let next = pending
            .iter()
            .position(|object| !waits_for(object, &pending))
            .unwrap_or(0);
        let object = pending.remove(next);
        ordered.push((object.name.clone(), seed_file(app_dir, &object.name)));
    }
    ordered
}

fn seed_file(app_dir: &Path, object: &str) -> PathBuf {
    app_dir.join("seed").join(format!("{object}.csv"))
}
