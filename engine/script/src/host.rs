//! What a script reaches outside itself: the [`ScriptHost`] the runtime implements, and the
//! inputs of a run (the acting user, the event).
//!
//! The host does the data work — permissions, validation, the one write path — and this crate
//! does none of it: it counts the calls against the run's budgets, turns values to and from
//! Rhai, and turns a host's error into a script error. The host's functions are synchronous;
//! the runtime calls into its async code from the blocking thread the script runs on.

use crate::values::{ScriptMap, ScriptValue};

/// The data and messaging functions of a script, implemented by the runtime **as the acting
/// user** (a record the user cannot read is `None`; a write they may not make is an error).
///
/// Every function may fail with a [`HostError`]. In the script it is an error the script may
/// catch with `try … catch`; uncaught, it stops the script with a fault naming the call.
pub trait ScriptHost: Send + Sync {
    /// `find(object, filter)`: the records matching a filter (docs/api.md, filters).
    fn find(&self, object: &str, filter: &ScriptMap) -> Result<Vec<ScriptMap>, HostError>;
    /// `find_one(object, filter)`: the first record matching, if any.
    fn find_one(&self, object: &str, filter: &ScriptMap) -> Result<Option<ScriptMap>, HostError>;
    /// `get(object, id)`: one record by id, if it exists and the user may read it.
    fn get(&self, object: &str, id: &str) -> Result<Option<ScriptMap>, HostError>;
    /// `count(object, filter)`.
    fn count(&self, object: &str, filter: &ScriptMap) -> Result<i64, HostError>;
    /// `create(object, values)`: the record as saved.
    fn create(&self, object: &str, values: &ScriptMap) -> Result<ScriptMap, HostError>;
    /// `update(object, id, values)`: the record as saved.
    fn update(&self, object: &str, id: &str, values: &ScriptMap) -> Result<ScriptMap, HostError>;
    /// `notify(user_id, message)`.
    fn notify(&self, user_id: &str, message: &str) -> Result<(), HostError>;
    /// `log(message)`.
    fn log(&self, message: &str) -> Result<(), HostError>;
}

/// Why a host function failed; its message reaches the script (and, uncaught, the error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HostError {
    pub message: String,
}

impl From<String> for HostError {
    fn from(message: String) -> Self {
        HostError { message }
    }
}

impl From<&str> for HostError {
    fn from(message: &str) -> Self {
        HostError {
            message: message.to_owned(),
        }
    }
}

/// The user a script runs as: the script's `user` variable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScriptUser {
    pub id: String,
    pub username: String,
    pub roles: Vec<String>,
    /// The user id of their manager, if any.
    pub manager: Option<String>,
    pub department: Option<String>,
}

impl ScriptUser {
    /// The user as the map scripts see: `#{ id, username, roles, manager, department }`.
    pub fn to_value(&self) -> ScriptValue {
        let optional = |value: &Option<String>| {
            value
                .as_ref()
                .map_or(ScriptValue::Unit, |text| ScriptValue::Text(text.clone()))
        };
        ScriptValue::Map(ScriptMap::from([
            ("id".to_owned(), ScriptValue::Text(self.id.clone())),
            (
                "username".to_owned(),
                ScriptValue::Text(self.username.clone()),
            ),
            (
                "roles".to_owned(),
                ScriptValue::Array(self.roles.iter().cloned().map(ScriptValue::Text).collect()),
            ),
            ("manager".to_owned(), optional(&self.manager)),
            ("department".to_owned(), optional(&self.department)),
        ]))
    }
}

/// What caused the run: the script's `event` variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptEvent {
    Create,
    Update,
    Delete,
    Transition,
    Schedule,
}

impl ScriptEvent {
    /// The text scripts compare `event` with.
    pub fn as_str(self) -> &'static str {
        match self {
            ScriptEvent::Create => "create",
            ScriptEvent::Update => "update",
            ScriptEvent::Delete => "delete",
            ScriptEvent::Transition => "transition",
            ScriptEvent::Schedule => "schedule",
        }
    }
}
