//! Coercion and validation of one field's input: JSON (from the API, a form, a CSV cell or a
//! script) → a typed [`Value`], checked against the field's type and options.
//!
//! Every failure is a [`FieldProblem`] with a stable code, so the API can list every bad
//! field at once. Checks that need the database (uniqueness, lookup targets, duplicates) are
//! not done here.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use keel_meta::{Field, FieldKind, Value};
use regex::Regex;
use rust_decimal::Decimal;
use serde_json::Value as Json;

/// Why a field's value was refused. `code` is stable API (`errors[].code`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

/// Context for coercion: the app timezone reads datetimes given without an offset.
#[derive(Debug, Clone, Copy)]
pub struct CoerceContext {
    pub timezone: Tz,
}

/// Coerces `input` for `field`. An empty string is an empty value, as in forms and CSV.
/// `required` is not checked here (see [`check_required`]): a PATCH may omit a field.
pub fn coerce(field: &Field, input: &Json, context: CoerceContext) -> Result<Value, FieldProblem> {
    let problem = |code: &'static str, message: String| FieldProblem {
        field: field.name.clone(),
        code,
        message,
    };
    let type_name = field.kind.type_name();
    let wrong_type = || {
        problem(
            "invalid_type",
            format!("expected {}", expected(&field.kind)),
        )
    };
    if input.is_null() || input.as_str().is_some_and(|text| text.is_empty()) {
        return Ok(Value::Null);
    }
    let value = match &field.kind {
        // Single-line text is stored trimmed, so search and duplicate keys match what people
        // meant; long text keeps its layout.
        FieldKind::Text | FieldKind::Lookup { .. } | FieldKind::User => {
            let text = text_or_number(input).ok_or_else(wrong_type)?;
            let trimmed = text.trim();
            if trimmed.is_empty() {
                return Ok(Value::Null);
            }
            Value::Text(trimmed.to_owned())
        }
        FieldKind::LongText => Value::Text(text_or_number(input).ok_or_else(wrong_type)?),
        FieldKind::Email => {
            let text = text_or_number(input)
                .ok_or_else(wrong_type)?
                .trim()
                .to_owned();
            if !email_pattern().is_match(&text) {
                return Err(problem(
                    "invalid_email",
                    format!("`{text}` is not an email address"),
                ));
            }
            Value::Text(text)
        }
        FieldKind::Phone => {
            let text = text_or_number(input)
                .ok_or_else(wrong_type)?
                .trim()
                .to_owned();
            let digits = text.chars().filter(char::is_ascii_digit).count();
            let allowed = text
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c) || c == 'x');
            if !allowed || !(3..=20).contains(&digits) {
                return Err(problem(
                    "invalid_phone",
                    format!("`{text}` is not a phone number"),
                ));
            }
            Value::Text(text)
        }
        FieldKind::Url => {
            let text = input.as_str().ok_or_else(wrong_type)?.trim().to_owned();
            if !url_pattern().is_match(&text) {
                return Err(problem(
                    "invalid_url",
                    format!("`{text}` is not an http(s) URL"),
                ));
            }
            Value::Text(text)
        }
        FieldKind::Integer => Value::Integer(integer(input).ok_or_else(wrong_type)?),
        FieldKind::Decimal { scale }
        | FieldKind::Money { scale }
        | FieldKind::Percent { scale } => {
            let number = decimal(input).ok_or_else(wrong_type)?;
            let normalized = number.normalize();
            if normalized.scale() > *scale {
                return Err(problem(
                    "invalid_scale",
                    format!("at most {scale} digits after the decimal point"),
                ));
            }
            let mut exact = normalized;
            exact.rescale(*scale);
            if exact.abs() >= Decimal::from(10_i64.pow(18 - scale.min(&18))) {
                return Err(problem("out_of_range", format!("`{number}` is too large")));
            }
            Value::Decimal(exact)
        }
        FieldKind::Boolean => Value::Boolean(match input {
            Json::Bool(b) => *b,
            Json::String(text) => match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => return Err(wrong_type()),
            },
            Json::Number(n) if n.as_i64() == Some(1) => true,
            Json::Number(n) if n.as_i64() == Some(0) => false,
            _ => return Err(wrong_type()),
        }),
        FieldKind::Date => {
            let text = input.as_str().ok_or_else(wrong_type)?;
            Value::Date(NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                problem(
                    "invalid_date",
                    format!("`{text}` is not a date (YYYY-MM-DD)"),
                )
            })?)
        }
        FieldKind::Datetime => {
            let text = input.as_str().ok_or_else(wrong_type)?;
            Value::Datetime(parse_datetime(text, context.timezone).ok_or_else(|| {
                problem(
                    "invalid_datetime",
                    format!(
                        "`{text}` is not a date and time (RFC 3339, e.g. 2026-05-01T09:30:00+08:00)"
                    ),
                )
            })?)
        }
        FieldKind::Choice { options } => {
            let key = choice_key(input).ok_or_else(wrong_type)?;
            if !options.iter().any(|option| option.key == key) {
                return Err(problem(
                    "invalid_choice",
                    format!("`{key}` is not one of: {}", option_list(options)),
                ));
            }
            Value::Text(key)
        }
        FieldKind::MultiChoice { options } => {
            let items = input.as_array().ok_or_else(wrong_type)?;
            let mut keys: Vec<String> = Vec::with_capacity(items.len());
            for item in items {
                let key = choice_key(item).ok_or_else(wrong_type)?;
                if !options.iter().any(|option| option.key == key) {
                    return Err(problem(
                        "invalid_choice",
                        format!("`{key}` is not one of: {}", option_list(options)),
                    ));
                }
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            Value::List(keys)
        }
        FieldKind::Autonumber { .. } | FieldKind::Formula { .. } => {
            return Err(problem(
                "read_only",
                format!(
                    "`{}` is computed ({type_name}) and cannot be set",
                    field.name
                ),
            ));
        }
    };
    check_options(field, &value)?;
    Ok(value)
}

/// `required` fields must hold a value.
pub fn check_required(field: &Field, value: &Value) -> Result<(), FieldProblem> {
    if field.required && value.is_null() {
        return Err(FieldProblem {
            field: field.name.clone(),
            code: "required",
            message: "a value is required".to_owned(),
        });
    }
    Ok(())
}

/// `min`, `max`, `max_length` and `pattern`.
fn check_options(field: &Field, value: &Value) -> Result<(), FieldProblem> {
    let problem = |code: &'static str, message: String| FieldProblem {
        field: field.name.clone(),
        code,
        message,
    };
    let number = match value {
        Value::Integer(n) => Some(Decimal::from(*n)),
        Value::Decimal(d) => Some(*d),
        _ => None,
    };
    if let Some(number) = number {
        if let Some(min) = field.min.as_ref().and_then(json_number_to_decimal)
            && number < min
        {
            return Err(problem("too_small", format!("must be at least {min}")));
        }
        if let Some(max) = field.max.as_ref().and_then(json_number_to_decimal)
            && number > max
        {
            return Err(problem("too_large", format!("must be at most {max}")));
        }
    }
    if let Value::Text(text) = value {
        if let Some(max_length) = field.max_length
            && text.chars().count() > max_length as usize
        {
            return Err(problem(
                "too_long",
                format!("at most {max_length} characters"),
            ));
        }
        if let Some(pattern) = &field.pattern {
            // The pattern was checked when the metadata loaded; a failure here would be a bug,
            // and refusing the value is the safe answer.
            let matches = whole_value_pattern(pattern).is_some_and(|regex| regex.is_match(text));
            if !matches {
                return Err(problem(
                    "pattern_mismatch",
                    format!("does not match the pattern {pattern}"),
                ));
            }
        }
    }
    Ok(())
}

/// The compiled, anchored form of a field's `pattern`, compiled once per process (compiling
/// costs ~20 µs, two hundred times the check itself).
fn whole_value_pattern(pattern: &str) -> Option<Regex> {
    static COMPILED: OnceLock<RwLock<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = COMPILED.get_or_init(|| RwLock::new(HashMap::new()));
    if let Ok(compiled) = cache.read()
        && let Some(regex) = compiled.get(pattern)
    {
        return regex.clone();
    }
    let regex = Regex::new(&format!("^(?:{pattern})$")).ok();
    if let Ok(mut compiled) = cache.write() {
        compiled.insert(pattern.to_owned(), regex.clone());
    }
    regex
}

fn json_number_to_decimal(number: &serde_json::Number) -> Option<Decimal> {
    number
        .to_string()
        .parse()
        .ok()
        .or_else(|| number.as_f64().and_then(|f| Decimal::try_from(f).ok()))
}

fn text_or_number(input: &Json) -> Option<String> {
    match input {
        Json::String(text) => Some(text.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn integer(input: &Json) -> Option<i64> {
    match input {
        Json::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Json::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn decimal(input: &Json) -> Option<Decimal> {
    match input {
        // Numbers go through their text so 0.1 stays exactly 0.1.
        Json::Number(n) => n
            .to_string()
            .parse::<Decimal>()
            .ok()
            .or_else(|| Decimal::from_scientific(&n.to_string()).ok()),
        Json::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn choice_key(input: &Json) -> Option<String> {
    match input {
        Json::String(text) => Some(text.clone()),
        Json::Number(n) if n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

fn option_list(options: &[keel_meta::ChoiceOption]) -> String {
    options
        .iter()
        .map(|option| option.key.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// RFC 3339; or a local date-time without offset, read in the app timezone.
pub fn parse_datetime(text: &str, timezone: Tz) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .and_then(|local| timezone.from_local_datetime(&local).earliest())
    .map(|at| at.with_timezone(&Utc))
}

fn expected(kind: &FieldKind) -> &'static str {
    match kind {
        FieldKind::Integer => "a whole number",
        FieldKind::Decimal { .. } | FieldKind::Money { .. } | FieldKind::Percent { .. } => {
            "a number (or a string such as \"1999.00\")"
        }
        FieldKind::Boolean => "true or false",
        FieldKind::Date => "a date (YYYY-MM-DD)",
        FieldKind::Datetime => "a date and time (RFC 3339)",
        FieldKind::MultiChoice { .. } => "a list of option keys",
        FieldKind::Choice { .. } => "an option key",
        FieldKind::Lookup { .. } | FieldKind::User => "an id (string)",
        _ => "text",
    }
}

fn email_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")
            .unwrap_or_else(|error| panic!("email pattern: {error}"))
    })
}

fn url_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"^https?://[^\s/?#]+[^\s]*$")
            .unwrap_or_else(|error| panic!("url pattern: {error}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(kind: FieldKind) -> Field {
        Field {
            name: "f".to_owned(),
            kind,
            label: None,
            help: None,
            required: false,
            unique: false,
            default: None,
            min: None,
            max: None,
            max_length: None,
            pattern: None,
            mask: false,
            renamed_from: None,
        }
    }

    const CONTEXT: CoerceContext = CoerceContext {
        timezone: chrono_tz::Asia::Shanghai,
    };

    #[test]
    fn money_accepts_numbers_and_strings_exactly() {
        let money = field(FieldKind::Money { scale: 2 });
        assert_eq!(
            coerce(&money, &json!(1999), CONTEXT).unwrap(),
            Value::Decimal(Decimal::new(199900, 2))
        );
        assert_eq!(
            coerce(&money, &json!("0.10"), CONTEXT).unwrap(),
            Value::Decimal(Decimal::new(10, 2))
        );
        assert_eq!(
            coerce(&money, &json!(0.1), CONTEXT).unwrap(),
            Value::Decimal(Decimal::new(10, 2))
        );
        assert_eq!(
            coerce(&money, &json!("1.005"), CONTEXT).unwrap_err().code,
            "invalid_scale"
        );
        assert_eq!(
            coerce(&money, &json!(true), CONTEXT).unwrap_err().code,
            "invalid_type"
        );
    }

    #[test]
    fn choices_must_be_option_keys() {
        let options = vec![keel_meta::ChoiceOption {
            key: "new".into(),
            label: None,
        }];
        let choice = field(FieldKind::Choice { options });
        assert_eq!(
            coerce(&choice, &json!("new"), CONTEXT).unwrap(),
            Value::Text("new".into())
        );
        assert_eq!(
            coerce(&choice, &json!("old"), CONTEXT).unwrap_err().code,
            "invalid_choice"
        );
    }

    #[test]
    fn datetimes_without_offset_are_read_in_the_app_timezone() {
        let datetime = field(FieldKind::Datetime);
        let Value::Datetime(at) =
            coerce(&datetime, &json!("2026-05-01T09:30:00"), CONTEXT).unwrap()
        else {
            panic!()
        };
        assert_eq!(at.to_rfc3339(), "2026-05-01T01:30:00+00:00");
        assert_eq!(
            coerce(&datetime, &json!("May 1st"), CONTEXT)
                .unwrap_err()
                .code,
            "invalid_datetime"
        );
    }

    #[test]
    fn options_are_enforced() {
        let mut score = field(FieldKind::Integer);
        score.min = Some(0.into());
        score.max = Some(100.into());
        assert_eq!(
            coerce(&score, &json!(101), CONTEXT).unwrap_err().code,
            "too_large"
        );
        assert_eq!(
            coerce(&score, &json!(-1), CONTEXT).unwrap_err().code,
            "too_small"
        );
        assert_eq!(
            coerce(&score, &json!("42"), CONTEXT).unwrap(),
            Value::Integer(42)
        );
        let mut name = field(FieldKind::Text);
        name.max_length = Some(2);
        name.pattern = Some("[a-z]+".into());
        assert_eq!(
            coerce(&name, &json!("abc"), CONTEXT).unwrap_err().code,
            "too_long"
        );
        assert_eq!(
            coerce(&name, &json!("A"), CONTEXT).unwrap_err().code,
            "pattern_mismatch"
        );
        assert_eq!(coerce(&name, &json!(""), CONTEXT).unwrap(), Value::Null);
        assert_eq!(coerce(&name, &json!("  "), CONTEXT).unwrap(), Value::Null);
        assert_eq!(
            coerce(&field(FieldKind::Text), &json!(" 华为 "), CONTEXT).unwrap(),
            Value::Text("华为".into())
        );
        name.required = true;
        assert_eq!(
            check_required(&name, &Value::Null).unwrap_err().code,
            "required"
        );
    }

    #[test]
    fn emails_phones_and_urls_are_checked() {
        assert_eq!(
            coerce(&field(FieldKind::Email), &json!("a@b"), CONTEXT)
                .unwrap_err()
                .code,
            "invalid_email"
        );
        assert!(coerce(&field(FieldKind::Email), &json!("li@example.cn"), CONTEXT).is_ok());
        assert!(
            coerce(
                &field(FieldKind::Phone),
                &json!("+86 138-0013-8000"),
                CONTEXT
            )
            .is_ok()
        );
        assert!(coerce(&field(FieldKind::Phone), &json!(13800138000_i64), CONTEXT).is_ok());
        assert_eq!(
            coerce(&field(FieldKind::Phone), &json!("call me"), CONTEXT)
                .unwrap_err()
                .code,
            "invalid_phone"
        );
        assert_eq!(
            coerce(&field(FieldKind::Url), &json!("ftp://x"), CONTEXT)
                .unwrap_err()
                .code,
            "invalid_url"
        );
    }
}
