//! Message templates: the text of a notification, written by an admin in minijinja syntax
//! and rendered over the record it is about (docs/deliveries.md).
//!
//! A template is admin input run on every delivery, so a render is bounded: strict
//! undefined (a misspelt field is an error naming it, not an empty gap), a fuel limit (a
//! runaway loop stops after a fixed amount of work, which also bounds the memory it can
//! allocate), a recursion limit, and no include, import or macro machinery compiled in.
//! Messages are plain text for chat and email, so nothing is HTML-escaped.

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::Value;

/// The work one render may do. minijinja charges about one unit per instruction (and per
/// 64 bytes of data made), so this is some tens of thousands of loop steps: far more than
/// any notification needs, and a few milliseconds of CPU at most.
const FUEL: u64 = 50_000;

/// How deep loops, conditions and filter calls may nest.
const RECURSION_LIMIT: usize = 64;

/// Renders `template` over `context` (e.g. `{"record": {...}, "user": {...}}`).
///
/// A `null` value renders as nothing (an empty field shows as a gap, not as `none`).
///
/// # Errors
/// A message naming what failed: a syntax error with its line, a variable that is not in
/// the context (`record.nmae`), running out of fuel, or another render error with its line.
pub fn render_message(template: &str, context: &Value) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            Ok(())
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    let compiled = env
        .template_from_str(template)
        .map_err(|error| describe(&error))?;
    compiled.render(Serde(context)).map_err(|error| {
        if error.kind() != minijinja::ErrorKind::UndefinedError {
            return describe(&error);
        }
        // Strict undefined refuses a missing name but does not say which one. The names the
        // template reads, where written out literally, can: those missing from the context
        // are the suspects. (This runs only after a failure, so a name the template guards
        // with `is defined` or `default` does not count against a template that renders.)
        let mut names: Vec<String> = compiled.undeclared_variables(true).into_iter().collect();
        names.sort();
        let missing: Vec<String> = names
            .iter()
            .filter(|name| {
                let first = name.split('.').next().unwrap_or(name);
                !env.globals().any(|(global, _)| global == first)
            })
            .filter_map(|name| missing_path(context, name))
            .map(|name| format!("`{name}`"))
            .collect();
        let line = error
            .line()
            .map(|line| format!(" (line {line})"))
            .unwrap_or_default();
        match missing.as_slice() {
            [] => describe(&error),
            [one] => format!("the template uses {one}, which is not defined{line}"),
            many => format!(
                "the template uses {}, which are not defined{line}",
                many.join(", ")
            ),
        }
    })
}

/// The first prefix of the dotted `path` that `context` does not hold, if any. A path that
/// goes through something other than an object (a list, a text) is left to the render.
fn missing_path(context: &Value, path: &str) -> Option<String> {
    let mut current = context;
    let mut walked = String::new();
    for segment in path.split('.') {
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(segment);
        match current {
            Value::Object(map) => match map.get(segment) {
                Some(next) => current = next,
                None => return Some(walked),
            },
            _ => return None,
        }
    }
    None
}

/// One line for an admin: the kind of error, its detail and its line.
fn describe(error: &minijinja::Error) -> String {
    let mut text = match error.kind() {
        minijinja::ErrorKind::OutOfFuel => {
            "the template does too much work (a loop that runs too long?)".to_owned()
        }
        minijinja::ErrorKind::UndefinedError => {
            "the template uses a name that is not defined".to_owned()
        }
        _ => match error.detail() {
            Some(detail) => format!("{}: {detail}", error.kind()),
            None => error.kind().to_string(),
        },
    };
    if let Some(line) = error.line() {
        text.push_str(&format!(" (line {line})"));
    }
    text
}
