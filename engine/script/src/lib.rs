//! Keel's Rhai sandbox: the one place that builds a Rhai engine and applies its limits.
//!
//! It compiles scripts and expressions so that `keel check` reports syntax errors with their
//! line, and runs expressions (formula fields) in a [`sandbox::Sandbox`] with every limit set.
//! Scripts with the data API (`find`, `update`, `notify`, …) and the wall-clock deadline are
//! added with triggers. Only this crate names `rhai`.

pub mod sandbox;

use std::sync::OnceLock;

use rhai::{Engine, ParseError};

/// A script or expression that does not compile, with its 1-based position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The engine used for syntax checks. It is configured exactly as the sandbox will be
/// (strict variables off at compile time, `eval` disabled), so whatever compiles here
/// compiles there.
fn checking_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut engine = Engine::new_raw();
        engine.disable_symbol("eval");
        engine.set_max_expr_depths(64, 32);
        engine.set_max_string_size(64 * 1024);
        engine
    })
}

fn syntax_error(error: ParseError) -> SyntaxError {
    let position = error.1;
    SyntaxError {
        line: position.line().unwrap_or(1),
        column: position.position().unwrap_or(1),
        message: error.0.to_string(),
    }
}

/// Compiles a whole script (`scripts/<name>.rhai`).
pub fn check_script(source: &str) -> Result<(), SyntaxError> {
    checking_engine()
        .compile(source)
        .map(drop)
        .map_err(syntax_error)
}

/// Compiles a single expression (validation `when`, formula `expr`, rule `when`).
pub fn check_expression(source: &str) -> Result<(), SyntaxError> {
    checking_engine()
        .compile_expression(source)
        .map(drop)
        .map_err(syntax_error)
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
    fn eval_is_not_available() {
        assert!(check_script("eval(\"1\")").is_err());
    }

    #[test]
    fn expressions_must_be_single_expressions() {
        assert!(check_expression("record.amount > 100 && old?.amount != record.amount").is_ok());
        assert!(check_expression("let x = 1; x").is_err());
    }
}
