//! How a script run fails: rejected by the script, faulted, or stopped at a limit.
//!
//! Each kind has a stable [`RunError::code`] (and a broken limit its [`Limit::code`]) for the
//! web layer to turn into a problem type; the message names the script, line and column.

use std::fmt;

use rhai::{EvalAltResult, Position};

/// Why a script run did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The script does not compile (a syntax error, or a variable never defined).
    #[error("script `{script}` does not compile: {line}:{column}: {message}")]
    Compile {
        script: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// The script called `reject(message)`: the save is refused with this message, meant for
    /// the user.
    #[error("{message}")]
    Rejected {
        script: String,
        line: usize,
        message: String,
    },
    /// The script failed while running: a type mismatch, an unknown function, a host error it
    /// did not catch, a value a field cannot hold, …
    #[error("script `{script}` failed at {line}:{column}: {message}")]
    Fault {
        script: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// The script broke one of the sandbox's limits and was stopped.
    #[error("script `{script}` stopped at {line}:{column}: {message}")]
    LimitBroken {
        script: String,
        line: usize,
        column: usize,
        limit: Limit,
        message: String,
    },
    /// The run never finished for a reason outside the script: the worker running it
    /// panicked, or the runner was shut down. Nothing for the user to fix.
    #[error("script `{script}` could not run: {message}")]
    Internal { script: String, message: String },
}

/// A sandbox limit (docs/scripts.md, "Limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Rhai operations per run.
    Operations,
    /// Wall-clock time per run.
    WallTime,
    /// Bytes in one string.
    StringSize,
    /// Elements in one array.
    ArraySize,
    /// Entries in one object map.
    MapSize,
    /// Nested function calls.
    CallDepth,
    /// Data reads (`find`, `find_one`, `get`, `count`) per run.
    Reads,
    /// Data writes (`create`, `update`, `notify`) per run.
    Writes,
    /// Variables alive at once, or modules (imports are refused at compile time).
    Other,
}

impl RunError {
    /// The stable, snake_case code of this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            RunError::Compile { .. } => "script_compile_failed",
            RunError::Rejected { .. } => "script_rejected",
            RunError::Fault { .. } => "script_failed",
            RunError::LimitBroken { .. } => "script_limit_broken",
            RunError::Internal { .. } => "script_internal",
        }
    }

    /// The script the error is about.
    pub fn script(&self) -> &str {
        match self {
            RunError::Compile { script, .. }
            | RunError::Rejected { script, .. }
            | RunError::Fault { script, .. }
            | RunError::LimitBroken { script, .. }
            | RunError::Internal { script, .. } => script,
        }
    }
}

impl Limit {
    /// The stable, snake_case name of the limit (also its key in `app.yaml` without the
    /// `script_` prefix, where it has one).
    pub fn code(self) -> &'static str {
        match self {
            Limit::Operations => "operations",
            Limit::WallTime => "wall_time",
            Limit::StringSize => "string_bytes",
            Limit::ArraySize => "array_items",
            Limit::MapSize => "map_entries",
            Limit::CallDepth => "call_depth",
            Limit::Reads => "reads",
            Limit::Writes => "writes",
            Limit::Other => "other",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why the sandbox stopped a script on its own: carried through Rhai as the token of an
/// `ErrorTerminated`, which `try … catch` cannot catch.
#[derive(Debug, Clone)]
pub(crate) enum Abort {
    Rejected(String),
    Limit(Limit, String),
}

impl Abort {
    pub(crate) fn into_error(self) -> Box<EvalAltResult> {
        EvalAltResult::ErrorTerminated(rhai::Dynamic::from(self), Position::NONE).into()
    }
}

/// Turns Rhai's error for a run of `script` into ours.
pub(crate) fn run_error(script: &str, error: &EvalAltResult) -> RunError {
    // An error inside a script function is wrapped once per call; the innermost one is where
    // it happened (functions are in the same source).
    let mut inner = error;
    while let EvalAltResult::ErrorInFunctionCall(_, _, cause, _) = inner {
        inner = cause;
    }
    let position = if inner.position().is_none() {
        error.position()
    } else {
        inner.position()
    };
    let line = position.line().unwrap_or(0);
    let column = position.position().unwrap_or(0);
    let script = script.to_owned();
    let limit = |limit: Limit, message: String| RunError::LimitBroken {
        script: script.clone(),
        line,
        column,
        limit,
        message,
    };
    match inner {
        EvalAltResult::ErrorTerminated(token, _) => match token.clone().try_cast::<Abort>() {
            Some(Abort::Rejected(message)) => RunError::Rejected {
                script,
                line,
                message,
            },
            Some(Abort::Limit(kind, message)) => limit(kind, message),
            None => limit(Limit::Other, inner.to_string()),
        },
        EvalAltResult::ErrorTooManyOperations(_) => limit(
            Limit::Operations,
            "too many operations (see the `operations` limit)".to_owned(),
        ),
        EvalAltResult::ErrorStackOverflow(_) => limit(
            Limit::CallDepth,
            "functions nested too deeply (see the `call_depth` limit)".to_owned(),
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            let kind = if what.starts_with("Length of string") {
                Limit::StringSize
            } else if what.starts_with("Size of object map") {
                Limit::MapSize
            } else {
                Limit::ArraySize
            };
            limit(kind, format!("{what} too large (see the `{kind}` limit)"))
        }
        EvalAltResult::ErrorTooManyVariables(_) | EvalAltResult::ErrorTooManyModules(_) => {
            limit(Limit::Other, inner.to_string())
        }
        _ => RunError::Fault {
            script,
            line,
            column,
            message: fault_message(inner),
        },
    }
}

/// Rhai's description without its trailing ` (line 3, position 5)`: the place is in our
/// error's fields.
fn fault_message(error: &EvalAltResult) -> String {
    let text = match error {
        EvalAltResult::ErrorRuntime(value, _) if value.is_string() => value.to_string(),
        _ => error.to_string(),
    };
    match text.rfind(" (line ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    }
}
