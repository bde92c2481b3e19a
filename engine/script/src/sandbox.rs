//! The sandbox: one Rhai engine with every limit set, compiled ASTs cached, and the two ways
//! of using it — evaluating an expression (a formula field) and running a script over a
//! [`ScriptHost`] (triggers, rules; see docs/scripts.md).
//!
//! Values cross the boundary as [`ScriptValue`], so no other crate names `rhai`. Running here
//! is synchronous and blocks its thread for up to the wall-time limit: async callers go
//! through [`crate::runner::ScriptRunner`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rhai::packages::{
    ArithmeticPackage, BasicArrayPackage, BasicBlobPackage, BasicFnPackage, BasicIteratorPackage,
    BasicMapPackage, BasicMathPackage, BasicStringPackage, BitFieldPackage, LogicPackage,
    MoreStringPackage, Package,
};
use rhai::{AST, Dynamic, Engine, Scope};

use crate::error::{RunError, run_error};
use crate::host::ScriptHost;
use crate::run::{self, RunGuard, RunInput, RunOutput};
pub use crate::values::{ScriptMap, ScriptValue};
use crate::values::{from_dynamic, from_rhai_map, to_dynamic};

/// Per-run limits (docs/scripts.md; each configurable in `app.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Rhai operations per run (0: no limit).
    pub operations: u64,
    /// Nested function calls.
    pub call_depth: usize,
    /// Bytes in one string.
    pub string_bytes: usize,
    /// Elements in one array.
    pub array_items: usize,
    /// Entries in one object map.
    pub map_entries: usize,
    /// Nesting of one expression at the top level, and inside functions.
    pub expression_depth: usize,
    pub function_expression_depth: usize,
    /// Data reads (`find`, `find_one`, `get`, `count`) per run.
    pub reads: u32,
    /// Data writes (`create`, `update`, `notify`) per run.
    pub writes: u32,
    /// Wall-clock time per run, counted from its start on a worker.
    pub wall_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            operations: 1_000_000,
            call_depth: 32,
            string_bytes: 64 * 1024,
            array_items: 10_000,
            map_entries: 10_000,
            expression_depth: 64,
            function_expression_depth: 32,
            reads: 100,
            writes: 150,
            wall_time: Duration::from_secs(1),
        }
    }
}

/// Why an expression did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ScriptError {
    pub line: usize,
    pub message: String,
}

/// A script compiled once, ready to run any number of times (cheap to clone).
#[derive(Clone)]
pub struct CompiledScript {
    name: Arc<str>,
    source: Arc<str>,
    ast: Arc<AST>,
}

impl CompiledScript {
    /// The script's name (its file name without `.rhai`), used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Debug for CompiledScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledScript")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The sandboxed engine with its caches of compiled expressions and scripts.
pub struct Sandbox {
    engine: Engine,
    limits: Limits,
    expressions: RwLock<HashMap<String, Arc<AST>>>,
    scripts: RwLock<HashMap<String, CompiledScript>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Builds the one engine, applying every limit explicitly (debug and release builds of Rhai
/// default differently otherwise).
///
/// The engine starts raw — no file module resolver, `print`/`debug` do nothing — and gets
/// Rhai's standard library without its time package (`timestamp()` reads the system clock)
/// and without its language-core package (whose `sleep` would block a worker past the
/// deadline, where the progress callback cannot see it).
pub(crate) fn build_engine(limits: &Limits) -> Engine {
    let mut engine = Engine::new_raw();
    ArithmeticPackage::new().register_into_engine(&mut engine);
    BasicStringPackage::new().register_into_engine(&mut engine);
    BasicIteratorPackage::new().register_into_engine(&mut engine);
    BasicFnPackage::new().register_into_engine(&mut engine);
    BitFieldPackage::new().register_into_engine(&mut engine);
    LogicPackage::new().register_into_engine(&mut engine);
    BasicMathPackage::new().register_into_engine(&mut engine);
    BasicArrayPackage::new().register_into_engine(&mut engine);
    BasicBlobPackage::new().register_into_engine(&mut engine);
    BasicMapPackage::new().register_into_engine(&mut engine);
    MoreStringPackage::new().register_into_engine(&mut engine);

    engine.set_max_operations(limits.operations);
    engine.set_max_call_levels(limits.call_depth);
    engine.set_max_string_size(limits.string_bytes);
    engine.set_max_array_size(limits.array_items);
    engine.set_max_map_size(limits.map_entries);
    engine.set_max_expr_depths(limits.expression_depth, limits.function_expression_depth);
    engine.set_max_modules(0);
    engine.disable_symbol("eval");
    engine.disable_symbol("import");
    engine.set_strict_variables(true);
    // `record.nothing` is `()`: a record map holds only the fields that have a value.
    engine.set_fail_on_invalid_map_property(false);

    crate::time::register(&mut engine);
    run::register(&mut engine);
    engine
}

impl Sandbox {
    pub fn new(limits: Limits) -> Sandbox {
        Sandbox {
            engine: build_engine(&limits),
            limits,
            expressions: RwLock::new(HashMap::new()),
            scripts: RwLock::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn compiled_expression(
        &self,
        expression: &str,
        variables: &[(&str, ScriptValue)],
    ) -> Result<Arc<AST>, ScriptError> {
        if let Ok(cache) = self.expressions.read()
            && let Some(ast) = cache.get(expression)
        {
            return Ok(Arc::clone(ast));
        }
        // Strict variables: the expression may use the variables it is given.
        let mut scope = Scope::new();
        for (name, _) in variables {
            scope.push_dynamic(*name, Dynamic::UNIT);
        }
        let ast = self
            .engine
            .compile_expression_with_scope(&scope, expression)
            .map_err(|error| ScriptError {
                line: error.1.line().unwrap_or(1),
                message: error.0.to_string(),
            })?;
        let ast = Arc::new(ast);
        if let Ok(mut cache) = self.expressions.write() {
            cache.insert(expression.to_owned(), Arc::clone(&ast));
        }
        Ok(ast)
    }

    /// Evaluates `expression` with the given variables (e.g. `record`).
    pub fn evaluate(
        &self,
        expression: &str,
        variables: &[(&str, ScriptValue)],
    ) -> Result<ScriptValue, ScriptError> {
        let ast = self.compiled_expression(expression, variables)?;
        let mut scope = Scope::new();
        for (name, value) in variables {
            scope.push_dynamic(*name, to_dynamic(value));
        }
        let result: Dynamic =
            self.engine
                .eval_ast_with_scope(&mut scope, &ast)
                .map_err(|error| ScriptError {
                    line: error.position().line().unwrap_or(1),
                    message: error.to_string(),
                })?;
        from_dynamic(result).map_err(|message| ScriptError { line: 1, message })
    }

    /// Compiles the script `name` once: later calls with the same name and source return the
    /// cached AST; a changed source (a reloaded app) is compiled again and replaces it.
    pub fn compile(&self, name: &str, source: &str) -> Result<CompiledScript, RunError> {
        if let Ok(cache) = self.scripts.read()
            && let Some(script) = cache.get(name)
            && *script.source == *source
        {
            return Ok(script.clone());
        }
        let ast = self
            .engine
            .compile_with_scope(&run::compile_scope(), source)
            .map_err(|error| {
                let error = crate::syntax_error(source, error);
                RunError::Compile {
                    script: name.to_owned(),
                    line: error.line,
                    column: error.column,
                    message: error.message,
                }
            })?;
        let script = CompiledScript {
            name: Arc::from(name),
            source: Arc::from(source),
            ast: Arc::new(ast),
        };
        if let Ok(mut cache) = self.scripts.write() {
            cache.insert(name.to_owned(), script.clone());
        }
        Ok(script)
    }

    /// Runs a compiled script over `host`, on this thread, blocking it for up to the
    /// wall-time limit. A host may call this from inside one of its functions to run another
    /// script inline (each run keeps its own budgets and deadline).
    pub fn run(
        &self,
        script: &CompiledScript,
        input: &RunInput,
        host: Arc<dyn ScriptHost>,
    ) -> Result<RunOutput, RunError> {
        let guard = RunGuard::install(
            host,
            input,
            self.limits.wall_time,
            self.limits.reads,
            self.limits.writes,
        );
        let mut scope = run::scope(input);
        let value = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &script.ast)
            .map_err(|error| run_error(script.name(), &error))?;
        let (reads, writes) = guard.counts();
        drop(guard);

        let fault = |message: String| RunError::Fault {
            script: script.name().to_owned(),
            line: 0,
            column: 0,
            message,
        };
        let record = scope
            .remove::<Dynamic>(run::RECORD)
            .and_then(|record| record.try_cast::<rhai::Map>())
            .ok_or_else(|| fault("`record` is no longer a map".to_owned()))?;
        let record = from_rhai_map(record).map_err(|message| fault(format!("record.{message}")))?;
        let value =
            from_dynamic(value).map_err(|message| fault(format!("the result: {message}")))?;
        Ok(RunOutput {
            record,
            value,
            reads,
            writes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn record(entries: &[(&str, ScriptValue)]) -> ScriptValue {
        ScriptValue::Map(
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn decimals_stay_exact_and_mix_with_integers() {
        let sandbox = Sandbox::new(Limits::default());
        let record = record(&[
            ("amount", ScriptValue::Decimal(Decimal::new(199999, 2))),
            ("probability", ScriptValue::Integer(30)),
        ]);
        let result = sandbox
            .evaluate(
                "record.amount * record.probability / 100",
                &[("record", record)],
            )
            .unwrap();
        assert_eq!(result, ScriptValue::Decimal(Decimal::new(5999970, 4)));
    }

    #[test]
    fn missing_fields_are_unit_and_the_string_limit_holds() {
        let sandbox = Sandbox::new(Limits {
            string_bytes: 1_000,
            ..Limits::default()
        });
        let result = sandbox
            .evaluate("record.nothing", &[("record", record(&[]))])
            .unwrap();
        assert_eq!(result, ScriptValue::Unit);
        let error = sandbox.evaluate("\"a\".pad(5000, \"b\")", &[]).unwrap_err();
        assert!(error.message.to_lowercase().contains("length"), "{error:?}");
    }

    #[test]
    fn an_expression_sees_only_the_variables_it_is_given() {
        let sandbox = Sandbox::new(Limits::default());
        let error = sandbox
            .evaluate("record.amount > limit", &[("record", record(&[]))])
            .unwrap_err();
        assert!(error.message.contains("limit"), "{error:?}");
    }
}
