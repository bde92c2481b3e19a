//! Who is acting: the user behind a request, a script or a scheduled rule.
//!
//! An `Actor` is resolved once per request (by the auth layer) and passed down; the runtime
//! never looks up "the current user" from ambient state.

use serde::Serialize;

/// The user a call runs as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// The user's id (`keel_users.id`); `owner`, `created_by` and `updated_by` hold it.
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub roles: Vec<String>,
    /// True when any of the user's roles has `admin: true`.
    pub admin: bool,
    /// The manager's user id.
    pub manager: Option<String>,
    /// The department's id.
    pub department: Option<String>,
    /// Preferred UI language, if the user set one.
    pub language: Option<String>,
}

impl Actor {
    /// The engine itself, for scheduled rules and operator commands that act on no user's
    /// behalf (`keel export`): sees and edits everything. Never an owner: imports and demo
    /// data act as a real user, who then owns what they create.
    pub fn system() -> Actor {
        Actor {
            id: "system".to_owned(),
            username: "system".to_owned(),
            display_name: Some("System".to_owned()),
            roles: Vec::new(),
            admin: true,
            manager: None,
            department: None,
            language: None,
        }
    }
}
