//! Coercion and validation of one field's input: JSON (from the API or a script) or text (a
//! CSV cell, a query-string probe) → a typed [`Value`], checked against the field's type and
//! options.
//!
//! JSON input keeps its types: a number is not text, `"50"` is not an integer, `"yes"` is not
//! a boolean, and a date and time must carry its offset (docs/api.md, "Field values").
//! Text input has no types of its own, so each cell is read by the field's type, and a date
//! and time without an offset is read in the app timezone.
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

/// Where a value comes from, which decides how its type is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A JSON body or a script: the JSON type must be the field's.
    Json,
    /// Text without types of its own (a CSV cell, a query-string value): read by the field's
    /// type.
    Text,
}

/// Context for coercion: where the value comes from, and the app timezone that reads text
/// datetimes given without an offset.
#[derive(Debug, Clone, Copy)]
pub struct CoerceContext {
    pub timezone: Tz,
    pub source: Source,
}

/// The largest whole number a JSON integer field takes: 2^53 - 1, the largest that every
/// JSON client (JavaScript's numbers included) reads exactly.
pub const MAX_JSON_INTEGER: i64 = 9_007_199_254_740_991;

/// Coerces `input` for `field`. `null` is an empty value; so is blank text from text input
/// (CSV, forms) and, in JSON, an empty or blank string for a text field.
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
    let json = context.source == Source::Json;
    if input.is_null() {
        return Ok(Value::Null);
    }
    if let Some(text) = input.as_str() {
        if text.contains('\0') {
            return Err(problem(
                "invalid_text",
                "text may not contain the NUL character (U+0000)".to_owned(),
            ));
        }
        if !json && text.trim().is_empty() {
            check_raw_length(field, text)?;
            return Ok(Value::Null);
        }
    }
    let value = match &field.kind {
        // Single-line text is stored trimmed, so search and duplicate keys match what people
        // meant; long text keeps its layout.
        FieldKind::Text | FieldKind::Lookup { .. } | FieldKind::User => {
            let text = text_input(input, json).ok_or_else(wrong_type)?;
            check_raw_length(field, &text)?;
            let trimmed = text.trim();
            if trimmed.is_empty() {
                if json && !matches!(field.kind, FieldKind::Text) {
                    // An id is never blank; `null` clears a reference.
                    return Err(wrong_type());
                }
                return Ok(Value::Null);
            }
            Value::Text(trimmed.to_owned())
        }
        FieldKind::LongText => {
            let text = text_input(input, json).ok_or_else(wrong_type)?;
            if text.is_empty() {
                return Ok(Value::Null);
            }
            Value::Text(text)
        }
        FieldKind::Email => {
            let raw = text_input(input, json).ok_or_else(wrong_type)?;
            check_raw_length(field, &raw)?;
            let text = raw.trim().to_owned();
            if !email_pattern().is_match(&text) {
                return Err(problem(
                    "invalid_email",
                    format!("`{text}` is not an email address"),
                ));
            }
            Value::Text(text)
        }
        FieldKind::Phone => {
            let raw = text_input(input, json).ok_or_else(wrong_type)?;
            check_raw_length(field, &raw)?;
            let text = raw.trim().to_owned();
            let digits = text.chars().filter(char::is_ascii_digit).count();
            let allowed = text
                .chars()
                .all(|c| c.is_ascii_digit() || PHONE_PUNCTUATION.contains(c));
            if !allowed || !(3..=20).contains(&digits) {
                return Err(problem(
                    "invalid_phone",
                    format!("`{text}` is not a phone number"),
                ));
            }
            Value::Text(text)
        }
        FieldKind::Url => {
            let raw = input.as_str().ok_or_else(wrong_type)?;
            check_raw_length(field, raw)?;
            let text = raw.trim().to_owned();
            if !url_pattern().is_match(&text) {
                return Err(problem(
                    "invalid_url",
                    format!("`{text}` is not an http(s) URL"),
                ));
            }
            Value::Text(text)
        }
        FieldKind::Integer => {
            let number = integer(input, json).ok_or_else(wrong_type)?;
            if json && number.abs() > MAX_JSON_INTEGER {
                return Err(problem(
                    "out_of_range",
                    format!("`{number}` is beyond ±{MAX_JSON_INTEGER}"),
                ));
            }
            Value::Integer(number)
        }
        FieldKind::Decimal { scale }
        | FieldKind::Money { scale }
        | FieldKind::Percent { scale } => {
            if json
                && let Json::String(text) = input
                && !decimal_text_pattern().is_match(text)
            {
                return Err(problem(
                    "invalid_type",
                    format!(
                        "`{text}` is not a decimal number: write digits with an optional `-` and \
                         `.`, such as \"1999.00\", or send a JSON number"
                    ),
                ));
            }
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
            if exact.abs() >= decimal_limit(*scale) {
                return Err(problem("out_of_range", format!("`{number}` is too large")));
            }
            Value::Decimal(exact)
        }
        FieldKind::Boolean => Value::Boolean(match input {
            Json::Bool(b) => *b,
            Json::String(text) if !json => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => return Err(wrong_type()),
            },
            _ => return Err(wrong_type()),
        }),
        FieldKind::Date => {
            let text = input.as_str().ok_or_else(wrong_type)?;
            let text = if json { text } else { text.trim() };
            let parsed = date_pattern()
                .is_match(text)
                .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
                .flatten();
            Value::Date(parsed.ok_or_else(|| {
                problem(
                    "invalid_date",
                    format!("`{text}` is not a date (YYYY-MM-DD)"),
                )
            })?)
        }
        FieldKind::Datetime => {
            let text = input.as_str().ok_or_else(wrong_type)?;
            let parsed = if json {
                datetime_pattern()
                    .is_match(text)
                    .then(|| DateTime::parse_from_rfc3339(text).ok())
                    .flatten()
                    .map(|at| at.with_timezone(&Utc))
            } else {
                parse_datetime(text.trim(), context.timezone)
            };
            Value::Datetime(parsed.ok_or_else(|| {
                problem(
                    "invalid_datetime",
                    if json {
                        format!(
                            "`{text}` is not a date and time with an offset (RFC 3339, e.g. \
                             2026-05-01T09:30:00+08:00)"
                        )
                    } else {
                        format!(
                            "`{text}` is not a date and time (RFC 3339, e.g. \
                             2026-05-01T09:30:00+08:00, or 2026-05-01 09:30 in the app timezone)"
                        )
                    },
                )
            })?)
        }
        FieldKind::Choice { options } => {
            let key = choice_key(input, json).ok_or_else(wrong_type)?;
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
                let key = choice_key(item, json).ok_or_else(wrong_type)?;
                if !options.iter().any(|option| option.key == key) {
                    return Err(problem(
                        "invalid_choice",
                        format!("`{key}` is not one of: {}", option_list(options)),
                    ));
                }
                if keys.contains(&key) {
                    // JSON input lists each option once; a CSV cell may repeat one.
                    if json {
                        return Err(problem(
                            "invalid_choice",
                            format!("`{key}` is listed twice"),
                        ));
                    }
                } else {
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

/// Punctuation a phone number may hold besides its digits.
pub const PHONE_PUNCTUATION: &str = " +-().x";

/// The smallest magnitude a decimal of `scale` cannot hold: 10^(18 - scale).
pub fn decimal_limit(scale: u32) -> Decimal {
    Decimal::from(10_i64.pow(18 - scale.min(18)))
}

/// A text field's `max_length` counts the characters as sent (before trimming), as the
/// OpenAPI `maxLength` does (CSV cells arrive trimmed already).
fn check_raw_length(field: &Field, text: &str) -> Result<(), FieldProblem> {
    if let Some(max_length) = field.max_length
        && text.chars().count() > max_length as usize
    {
        return Err(FieldProblem {
            field: field.name.clone(),
            code: "too_long",
            message: format!("at most {max_length} characters"),
        });
    }
    Ok(())
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

/// Text, or (from text input only, where a script or a caller may hand over a number) the
/// number as written.
fn text_input(input: &Json, json: bool) -> Option<String> {
    match input {
        Json::String(text) => Some(text.clone()),
        Json::Number(n) if !json => Some(n.to_string()),
        _ => None,
    }
}

/// A whole number: a JSON number without a fraction (`42` or `42.0`), or in text input a
/// string of digits.
fn integer(input: &Json, json: bool) -> Option<i64> {
    match input {
        Json::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Json::String(text) if !json => text.trim().parse().ok(),
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

fn choice_key(input: &Json, json: bool) -> Option<String> {
    match input {
        Json::String(text) if json => Some(text.clone()),
        Json::String(text) => Some(text.trim().to_owned()),
        Json::Number(n) if !json && n.is_i64() => Some(n.to_string()),
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

/// A decimal as JSON text: digits, an optional minus sign and fraction, nothing else.
pub const DECIMAL_TEXT_PATTERN: &str = r"^-?[0-9]+(\.[0-9]+)?$";
/// A date in JSON: `YYYY-MM-DD`.
pub const DATE_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$";
/// A date and time in JSON: RFC 3339 with seconds and an offset.
pub const DATETIME_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$";

fn decimal_text_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(DECIMAL_TEXT_PATTERN).unwrap_or_else(|error| panic!("decimal pattern: {error}"))
    })
}

fn date_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(DATE_PATTERN).unwrap_or_else(|error| panic!("date pattern: {error}"))
    })
}

fn datetime_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(DATETIME_PATTERN).unwrap_or_else(|error| panic!("datetime pattern: {error}"))
    })
}

/// An email address: something, `@`, something with a dot; no whitespace, one `@`.
pub const EMAIL_PATTERN: &str = r"^[^\s@]+@[^\s@]+\.[^\s@]+$";
/// An http(s) URL with a host and no whitespace.
pub const URL_PATTERN: &str = r"^https?://[^\s/?#]+[^\s]*$";

pub(crate) fn email_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(EMAIL_PATTERN).unwrap_or_else(|error| panic!("email pattern: {error}"))
    })
}

fn url_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(URL_PATTERN).unwrap_or_else(|error| panic!("url pattern: {error}"))
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
        source: Source::Json,
    };
    const TEXT: CoerceContext = CoerceContext {
        timezone: chrono_tz::Asia::Shanghai,
        source: Source::Text,
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
        let Value::Datetime(at) = coerce(&datetime, &json!("2026-05-01T09:30:00"), TEXT).unwrap()
        else {
            panic!()
        };
        assert_eq!(at.to_rfc3339(), "2026-05-01T01:30:00+00:00");
        assert_eq!(
            coerce(&datetime, &json!("2026-05-01T09:30:00"), CONTEXT)
                .unwrap_err()
                .code,
            "invalid_datetime"
        );
        assert!(coerce(&datetime, &json!("2026-05-01T09:30:00+08:00"), CONTEXT).is_ok());
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
            coerce(&score, &json!("42"), TEXT).unwrap(),
            Value::Integer(42)
        );
        assert_eq!(
            coerce(&score, &json!("42"), CONTEXT).unwrap_err().code,
            "invalid_type"
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
        assert_eq!(coerce(&name, &json!(""), TEXT).unwrap(), Value::Null);
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
        assert!(coerce(&field(FieldKind::Phone), &json!(13800138000_i64), TEXT).is_ok());
        assert_eq!(
            coerce(&field(FieldKind::Phone), &json!(13800138000_i64), CONTEXT)
                .unwrap_err()
                .code,
            "invalid_type"
        );
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

    #[test]
    fn json_values_keep_their_types_and_text_is_read_by_the_field_type() {
        let boolean = field(FieldKind::Boolean);
        for wrong in [json!("yes"), json!(1), json!("true")] {
            assert_eq!(
                coerce(&boolean, &wrong, CONTEXT).unwrap_err().code,
                "invalid_type",
                "{wrong}"
            );
        }
        assert_eq!(
            coerce(&boolean, &json!("yes"), TEXT).unwrap(),
            Value::Boolean(true)
        );
        assert_eq!(
            coerce(&field(FieldKind::Text), &json!(0), CONTEXT)
                .unwrap_err()
                .code,
            "invalid_type"
        );
        assert_eq!(
            coerce(&field(FieldKind::Text), &json!(0), TEXT).unwrap(),
            Value::Text("0".into())
        );
        let percent = field(FieldKind::Percent { scale: 2 });
        assert!(coerce(&percent, &json!("12.5"), CONTEXT).is_ok());
        assert!(coerce(&percent, &json!(12.5), CONTEXT).is_ok());
        for wrong in [json!(" 12.5"), json!("1e3"), json!("1_000"), json!("")] {
            assert_eq!(
                coerce(&percent, &wrong, CONTEXT).unwrap_err().code,
                "invalid_type",
                "{wrong}"
            );
        }
        assert_eq!(
            coerce(
                &field(FieldKind::Integer),
                &json!(9_007_199_254_740_992_i64),
                CONTEXT
            )
            .unwrap_err()
            .code,
            "out_of_range"
        );
        assert_eq!(
            coerce(&field(FieldKind::Integer), &json!(4.0), CONTEXT).unwrap(),
            Value::Integer(4)
        );
        let options = vec![
            keel_meta::ChoiceOption {
                key: "a".into(),
                label: None,
            },
            keel_meta::ChoiceOption {
                key: "b".into(),
                label: None,
            },
        ];
        let multi = field(FieldKind::MultiChoice { options });
        assert_eq!(
            coerce(&multi, &json!(["a", "a"]), CONTEXT)
                .unwrap_err()
                .code,
            "invalid_choice"
        );
        assert_eq!(
            coerce(&multi, &json!(["a", "a"]), TEXT).unwrap(),
            Value::List(vec!["a".into()])
        );
        assert_eq!(
            coerce(&field(FieldKind::Text), &json!("a\u{0}b"), CONTEXT)
                .unwrap_err()
                .code,
            "invalid_text"
        );
        assert_eq!(
            coerce(&field(FieldKind::Date), &json!("2026-5-1"), CONTEXT)
                .unwrap_err()
                .code,
            "invalid_date"
        );
        assert_eq!(
            coerce(&field(FieldKind::User), &json!(""), CONTEXT)
                .unwrap_err()
                .code,
            "invalid_type"
        );
    }
}
