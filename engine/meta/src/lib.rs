//! `keel-meta`: the metadata model of a Keel app and everything needed to load it.
//!
//! It reads an app directory (YAML + Rhai), checks every file against the JSON Schemas it
//! ships, cross-checks references between files, and produces one immutable [`Schema`], or
//! every problem found as `file:line:col: message`. It also owns the pieces of the metadata
//! language that other crates reuse: labels, durations, cron schedules and the filter AST.
//!
//! It deliberately knows nothing of databases, HTTP or running scripts: `store`, `runtime`
//! and `web` build on the model defined here. It uses `keel-script` only to compile the
//! scripts and expressions it loads, so that a syntax error is reported with the other
//! problems; `keel-script` in turn knows nothing of the model.

pub mod diagnostic;
pub mod duration;
pub mod edit;
pub mod filter;
pub mod forms;
pub mod ident;
pub mod label;
mod load;
pub mod model;
pub mod schedule;
pub mod schemas;
pub mod source;
pub mod system;
pub mod value;

pub use diagnostic::{Diagnostic, LoadErrors};
pub use duration::Duration;
pub use filter::Filter;
pub use label::Label;
pub use load::{AppFiles, is_app_file, load_app, load_files, read_app_files};
pub use model::*;
pub use schedule::CronSchedule;
pub use system::{POOL_SYSTEM_FIELDS, SYSTEM_FIELDS, SystemField, is_system_field};
pub use value::Value;
