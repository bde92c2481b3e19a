//! Keel's Rhai sandbox: the one crate that names `rhai`, and the one place that builds a Rhai
//! engine and applies its limits.
//!
//! - [`check_script`] / [`check_expression`] compile scripts and expressions so that `keel
//!   check` reports syntax errors with their line and column, and [`analyze`] reads them for
//!   unknown functions, undeclared variables and unknown fields (given an
//!   [`analyze::Catalog`] of the app's objects);
//! - [`sandbox::Sandbox`] is the engine with every limit set: it evaluates expressions (formula
//!   fields) and runs scripts over a [`ScriptHost`] with the script API of docs/scripts.md
//!   (`record`, `old`, `user`, `event`, `find`, `update`, `notify`, `reject`, `now`, …);
//! - [`ScriptRunner`] runs scripts on a bounded set of blocking threads for async callers.
//!
//! It does not know metadata, permissions or the database: the runtime implements
//! [`ScriptHost`] and decides which scripts run when (triggers, rules).

pub mod analyze;
mod brackets;
mod error;
mod host;
mod run;
mod runner;
pub mod sandbox;
mod time;
mod values;

pub use error::{Limit, RunError};
pub use host::{HostError, ScriptEvent, ScriptHost, ScriptUser};
pub use run::{RunInput, RunOutput};
pub use runner::ScriptRunner;
pub use sandbox::{CompiledScript, Limits, Sandbox, ScriptMap, ScriptValue};

/// The app timezone type of [`RunInput::timezone`].
pub use chrono_tz::Tz;

use std::sync::OnceLock;

use rhai::{Engine, ParseError, ParseErrorType};

/// A script or expression that does not compile, with its 1-based position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// When the error was moved to an opening bracket: where Rhai noticed it (1-based line
    /// and column), for the caller to add in its own coordinates.
    pub noticed: Option<(usize, usize)>,
}

/// The engine used for syntax checks, with the sandbox's syntax (`eval` and `import`
/// disabled, the same expression depths). Strict variables are off here: the sandbox also
/// refuses a variable that is never defined, when it compiles a script for running.
fn checking_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut engine = Engine::new_raw();
        engine.disable_symbol("eval");
        engine.disable_symbol("import");
        engine.set_max_expr_depths(64, 32);
        engine.set_max_string_size(64 * 1024);
        engine
    })
}

/// Turns Rhai's error into ours. When a closing bracket is missing, Rhai reports where it
/// expected it (for a `{` never closed, the end of the source); the error is then moved to the
/// opening bracket left open there, the construct to fix, keeping where Rhai noticed.
pub(crate) fn syntax_error(source: &str, error: ParseError) -> SyntaxError {
    let line = error.1.line().unwrap_or(1);
    let column = error.1.position().unwrap_or(1);
    let message = error.0.to_string();
    let opening = match &*error.0 {
        ParseErrorType::MissingToken(token, what) => match token.as_str() {
            "}" => Some(Some('{')),
            ")" => Some(Some('(')),
            "]" => Some(Some('[')),
            // A missing `,` inside arguments or a literal usually means the bracket was not
            // closed (`max(x, 2;`); Rhai's description says which bracket it was reading.
            "," if what.contains("arguments") || what.contains("parameters of function") => {
                Some(Some('('))
            }
            "," if what.contains("array literal") => Some(Some('[')),
            "," if what.contains("object map literal") => Some(Some('{')),
            _ => None,
        },
        ParseErrorType::UnexpectedEOF => Some(None),
        _ => None,
    };
    match opening.and_then(|symbol| brackets::unclosed(source, symbol, line, column)) {
        Some(opener) => SyntaxError {
            line: opener.line,
            column: opener.column,
            message: format!("this `{}` is not closed: {message}", opener.symbol),
            noticed: Some((line, column)),
        },
        None => SyntaxError {
            line,
            column,
            message,
            noticed: None,
        },
    }
}

/// Compiles a whole script (`scripts/<name>.rhai`).
pub fn check_script(source: &str) -> Result<(), SyntaxError> {
    checking_engine()
        .compile(source)
        .map(drop)
        .map_err(|error| syntax_error(source, error))
}

/// Compiles a single expression (validation `when`, formula `expr`, rule `when`).
pub fn check_expression(source: &str) -> Result<(), SyntaxError> {
    checking_engine()
        .compile_expression(source)
        .map(drop)
        .map_err(|error| syntax_error(source, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_script_compiles() {
        assert!(check_script("let x = 1;\nif x > 0 { record.name = \"a\"; }").is_ok());
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let error = check_script("let x = 1;\nlet y = ;\n").unwrap_err();
        assert_eq!(error.line, 2);
    }

    #[test]
    fn an_unclosed_block_is_reported_at_its_brace() {
        let error = check_script("let x = 1;\nif x > 0 {\n  x += 1;\n\nlet y = 2;\n").unwrap_err();
        assert_eq!((error.line, error.column), (2, 10), "{error}");
        assert!(
            error.message.starts_with("this `{` is not closed"),
            "{error}"
        );
    }

    #[test]
    fn an_inner_block_whose_brace_closes_the_outer_one_is_the_one_reported() {
        let source = "if name != () {\n  if name.len() > 10 {\n    name = 1;\n}\nlet z = 3;\n";
        let error = check_script(source).unwrap_err();
        assert_eq!((error.line, error.column), (2, 22), "{error}");
    }

    #[test]
    fn an_unclosed_call_is_reported_at_its_parenthesis() {
        let error = check_script("let x = 1;\nlet y = max(x, 2;\nx\n").unwrap_err();
        assert_eq!((error.line, error.column), (2, 12), "{error}");
        assert!(
            error.message.starts_with("this `(` is not closed"),
            "{error}"
        );
    }

    #[test]
    fn an_unclosed_array_and_a_missing_parenthesis_are_reported_at_their_opening() {
        let error = check_script("let a = [1, 2;\nlet b = 3;\n").unwrap_err();
        assert_eq!((error.line, error.column), (1, 9), "{error}");
        let error = check_script("if (a > 1 {\n  a = 2;\n}\n").unwrap_err();
        assert_eq!((error.line, error.column), (1, 4), "{error}");
    }

    #[test]
    fn other_syntax_errors_keep_their_place() {
        let error = check_script("let x = 1;\nlet y = ;\n").unwrap_err();
        assert_eq!((error.line, error.column), (2, 9), "{error}");
        assert!(!error.message.contains("not closed"), "{error}");
    }

    #[test]
    fn eval_is_not_available() {
        assert!(check_script("eval(\"1\")").is_err());
    }

    #[test]
    fn expressions_must_be_single_expressions() {
        assert!(check_expression("record.amount > 100 && old?.amount != record.amount").is_ok());
        assert!(check_expression("let x = 1; x").is_err());
    }
}
