//! Running expressions in the sandbox: one engine with every limit set, compiled ASTs cached,
//! and values crossing the boundary as [`ScriptValue`] (so no other crate names `rhai`).
//!
//! Only expressions over given variables run here so far (formula fields); scripts with the
//! data API (`find`, `update`, `notify`, …) join when triggers are built.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use rhai::{AST, Dynamic, Engine, Scope};
use rust_decimal::Decimal;

/// A value passed into or out of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptValue {
    /// Rhai's `()`: an empty field.
    Unit,
    Text(String),
    Integer(i64),
    Decimal(Decimal),
    Boolean(bool),
    Array(Vec<ScriptValue>),
    Map(BTreeMap<String, ScriptValue>),
}

/// Per-run limits (docs/app-format.md; configurable in `app.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub operations: u64,
    pub call_depth: usize,
    pub string_bytes: usize,
    pub array_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            operations: 1_000_000,
            call_depth: 32,
            string_bytes: 64 * 1024,
            array_items: 10_000,
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

/// The sandboxed engine with its cache of compiled expressions.
pub struct Sandbox {
    engine: Engine,
    compiled: RwLock<HashMap<String, Arc<AST>>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Builds the one engine, applying every limit explicitly (debug and release builds
    /// default differently otherwise).
    pub fn new(limits: Limits) -> Sandbox {
        let mut engine = Engine::new();
        engine.disable_symbol("eval");
        engine.set_max_operations(limits.operations);
        engine.set_max_call_levels(limits.call_depth);
        engine.set_max_string_size(limits.string_bytes);
        engine.set_max_array_size(limits.array_items);
        engine.set_max_map_size(limits.array_items);
        engine.set_max_expr_depths(64, 32);
        engine.set_max_modules(0);
        engine.set_fail_on_invalid_map_property(false);
        Sandbox {
            engine,
            compiled: RwLock::new(HashMap::new()),
        }
    }

    fn compiled_expression(&self, expression: &str) -> Result<Arc<AST>, ScriptError> {
        if let Ok(cache) = self.compiled.read()
            && let Some(ast) = cache.get(expression)
        {
            return Ok(Arc::clone(ast));
        }
        let ast = self
            .engine
            .compile_expression(expression)
            .map_err(|error| ScriptError {
                line: error.1.line().unwrap_or(1),
                message: error.0.to_string(),
            })?;
        let ast = Arc::new(ast);
        if let Ok(mut cache) = self.compiled.write() {
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
        let ast = self.compiled_expression(expression)?;
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
        from_dynamic(result)
    }
}

fn to_dynamic(value: &ScriptValue) -> Dynamic {
    match value {
        ScriptValue::Unit => Dynamic::UNIT,
        ScriptValue::Text(text) => Dynamic::from(text.clone()),
        ScriptValue::Integer(n) => Dynamic::from(*n),
        ScriptValue::Decimal(d) => Dynamic::from_decimal(*d),
        ScriptValue::Boolean(b) => Dynamic::from(*b),
        ScriptValue::Array(items) => Dynamic::from_array(items.iter().map(to_dynamic).collect()),
        ScriptValue::Map(map) => {
            let mut out = rhai::Map::new();
            for (key, item) in map {
                out.insert(key.as_str().into(), to_dynamic(item));
            }
            Dynamic::from_map(out)
        }
    }
}

fn from_dynamic(value: Dynamic) -> Result<ScriptValue, ScriptError> {
    let unsupported = |type_name: &str| ScriptError {
        line: 1,
        message: format!("the result is a {type_name}, which a field cannot hold"),
    };
    if value.is_unit() {
        return Ok(ScriptValue::Unit);
    }
    if let Some(b) = value.clone().try_cast::<bool>() {
        return Ok(ScriptValue::Boolean(b));
    }
    if let Some(n) = value.clone().try_cast::<i64>() {
        return Ok(ScriptValue::Integer(n));
    }
    if let Some(d) = value.clone().try_cast::<Decimal>() {
        return Ok(ScriptValue::Decimal(d));
    }
    if let Some(f) = value.clone().try_cast::<f64>() {
        return Decimal::try_from(f)
            .map(ScriptValue::Decimal)
            .map_err(|_| unsupported("non-finite number"));
    }
    if value.is_string() {
        return Ok(ScriptValue::Text(value.to_string()));
    }
    if let Some(items) = value.clone().try_cast::<rhai::Array>() {
        return items
            .into_iter()
            .map(from_dynamic)
            .collect::<Result<_, _>>()
            .map(ScriptValue::Array);
    }
    if let Some(map) = value.clone().try_cast::<rhai::Map>() {
        let mut out = BTreeMap::new();
        for (key, item) in map {
            out.insert(key.to_string(), from_dynamic(item)?);
        }
        return Ok(ScriptValue::Map(out));
    }
    Err(unsupported(value.type_name()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
