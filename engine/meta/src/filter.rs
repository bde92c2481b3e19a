//! The filter language (docs/api.md, "Query strings"), shared by the API, rules, pools and
//! scripts: the AST, its parsers (JSON/YAML maps and the query-string form `field=op.value`),
//! relative dates, and the caps on a filter's size.
//!
//! Parsing checks the shape, and refuses what no database could run: a filter over the caps
//! below (SQLite refuses an expression deeper than 1,000 and more than 32,766 bound values,
//! PostgreSQL more than 65,535), a `like` pattern over SQLite's length limit, and text with a
//! NUL character (PostgreSQL cannot store one). Whether the fields exist and values fit their
//! types is checked against an object elsewhere (`load` for metadata, the runtime for
//! requests); turning a filter into SQL is the store's job.

use chrono::{DateTime, Duration as ChronoDuration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;

/// At most this many values in one `in` list.
pub const MAX_IN_VALUES: usize = 500;
/// At most this many terms in one filter: each comparison and each `and`, `or` and `not`
/// group counts one. An `or` of N items is an expression N deep in SQLite, whose limit is
/// 1,000, and every level of the filter adds a few more.
pub const MAX_FILTER_TERMS: usize = 200;
/// At most this many levels of nested groups (`or`, `not`, and a map of several fields).
pub const MAX_FILTER_DEPTH: usize = 16;
/// At most this many values in one filter, `in` lists included: each is one bound parameter,
/// and a whole query (scope, search, cursor and filter) stays far below SQLite's 32,766 and
/// PostgreSQL's 65,535.
pub const MAX_FILTER_VALUES: usize = 1_000;
/// At most this many characters in a `like` pattern or a search text (`q`): SQLite refuses a
/// LIKE pattern over 50,000 bytes.
pub const MAX_PATTERN_CHARS: usize = 1_000;

/// How big a filter is, measured as the caps above count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterSize {
    /// Comparisons plus groups.
    pub terms: usize,
    /// Values to bind.
    pub values: usize,
    /// Levels: a lone comparison is 1, a group of comparisons 2.
    pub depth: usize,
}

impl FilterSize {
    /// The size of `parts` joined under one group.
    pub fn group(parts: impl IntoIterator<Item = FilterSize>) -> FilterSize {
        parts
            .into_iter()
            .fold(FilterSize::empty_group(), FilterSize::with_part)
    }

    /// A group with nothing in it yet.
    pub fn empty_group() -> FilterSize {
        FilterSize {
            terms: 1,
            values: 0,
            depth: 1,
        }
    }

    /// This group with `part` added to it.
    pub fn with_part(self, part: FilterSize) -> FilterSize {
        FilterSize {
            terms: self.terms.saturating_add(part.terms),
            values: self.values.saturating_add(part.values),
            depth: self.depth.max(part.depth.saturating_add(1)),
        }
    }

    /// Whether the size is within [`MAX_FILTER_TERMS`], [`MAX_FILTER_VALUES`] and
    /// [`MAX_FILTER_DEPTH`]; the message names the cap that is broken.
    pub fn check(&self) -> Result<(), String> {
        if self.terms > MAX_FILTER_TERMS {
            return Err(format!(
                "a filter may have at most {MAX_FILTER_TERMS} terms (comparisons and and/or/not \
                 groups); this one has {}",
                self.terms
            ));
        }
        if self.values > MAX_FILTER_VALUES {
            return Err(format!(
                "a filter may hold at most {MAX_FILTER_VALUES} values in all; this one holds {}",
                self.values
            ));
        }
        if self.depth > MAX_FILTER_DEPTH {
            return Err(format!(
                "a filter may nest at most {MAX_FILTER_DEPTH} levels deep; this one has {}",
                self.depth
            ));
        }
        Ok(())
    }
}

/// Refuses text no database can hold: PostgreSQL stores no NUL character, and a NUL in a
/// bound value fails the whole query there.
pub fn check_text(text: &str) -> Result<(), String> {
    if text.contains('\0') {
        return Err("text may not contain the NUL character (U+0000)".to_owned());
    }
    Ok(())
}

/// Refuses a `like` pattern or search text over [`MAX_PATTERN_CHARS`], or with a NUL.
pub fn check_pattern(text: &str) -> Result<(), String> {
    check_text(text)?;
    let length = text.chars().count();
    if length > MAX_PATTERN_CHARS {
        return Err(format!(
            "a pattern or search text may have at most {MAX_PATTERN_CHARS} characters; this one \
             has {length}"
        ));
    }
    Ok(())
}

/// The operators of the query-string form, for error messages.
pub const OPERATORS: &str = "eq, ne, gt, gte, lt, lte, in, like, is";

/// A parsed filter. An empty `And` holds for every record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Filter {
    And {
        all: Vec<Filter>,
    },
    Or {
        any: Vec<Filter>,
    },
    Not {
        filter: Box<Filter>,
    },
    Compare {
        field: String,
        op: Op,
        value: FilterValue,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Like,
    Is,
}

impl Op {
    pub fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "in" => Op::In,
            "like" => Op::Like,
            "is" => Op::Is,
            _ => return None,
        })
    }
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum FilterValue {
    /// A literal from JSON/YAML; strings from a query string arrive as strings.
    Literal(Value),
    /// A list, for `in`.
    List(Vec<Value>),
    /// `@now±N<unit>` or `@today±N<unit>`, resolved when the filter runs.
    Relative(RelativeTime),
    /// For `is`: `null` or `not_null`.
    Null,
    NotNull,
}

/// A time relative to the moment a filter runs, in the app timezone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RelativeTime {
    pub base: RelativeBase,
    /// Signed amount of `unit`.
    pub amount: i64,
    pub unit: TimeUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelativeBase {
    Now,
    Today,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
}

impl RelativeTime {
    /// Parses `@now`, `@today`, `@now-3d`, `@today+1d`, …; `None` when `text` is not of that
    /// form (it is then an ordinary string).
    pub fn parse(text: &str) -> Option<Result<RelativeTime, String>> {
        let rest = text.strip_prefix('@')?;
        let (base, offset) = if let Some(offset) = rest.strip_prefix("now") {
            (RelativeBase::Now, offset)
        } else if let Some(offset) = rest.strip_prefix("today") {
            (RelativeBase::Today, offset)
        } else {
            return Some(Err(format!(
                "`{text}` is not a relative date: use @now or @today, optionally +/- an amount such as 3d"
            )));
        };
        if offset.is_empty() {
            return Some(Ok(RelativeTime {
                base,
                amount: 0,
                unit: TimeUnit::Day,
            }));
        }
        let bad = || {
            Err(format!(
                "`{text}` is not a relative date: the offset must look like +1d, -3d, +2h, -30m, +10s or +2w"
            ))
        };
        let (sign, digits_and_unit) = match offset.as_bytes()[0] {
            b'+' => (1, &offset[1..]),
            b'-' => (-1, &offset[1..]),
            _ => return Some(bad()),
        };
        let Some(unit_char) = digits_and_unit.chars().last() else {
            return Some(bad());
        };
        let unit = match unit_char {
            's' => TimeUnit::Second,
            'm' => TimeUnit::Minute,
            'h' => TimeUnit::Hour,
            'd' => TimeUnit::Day,
            'w' => TimeUnit::Week,
            _ => return Some(bad()),
        };
        let digits = &digits_and_unit[..digits_and_unit.len() - 1];
        match digits.parse::<i64>() {
            Ok(amount) if !digits.starts_with(['+', '-']) && amount <= 100_000 => {
                Some(Ok(RelativeTime {
                    base,
                    amount: sign * amount,
                    unit,
                }))
            }
            _ => Some(bad()),
        }
    }

    /// The instant this stands for at `now`: `@today` is midnight in `timezone`, and day and
    /// week offsets move by calendar days there.
    pub fn resolve(&self, now: DateTime<Utc>, timezone: Tz) -> DateTime<Utc> {
        let start = match self.base {
            RelativeBase::Now => now,
            RelativeBase::Today => {
                let local_date = now.with_timezone(&timezone).date_naive();
                midnight(timezone, local_date).unwrap_or(now)
            }
        };
        match self.unit {
            TimeUnit::Day | TimeUnit::Week => {
                let days = if self.unit == TimeUnit::Week {
                    self.amount * 7
                } else {
                    self.amount
                };
                let local = start.with_timezone(&timezone);
                let date = local.date_naive() + ChronoDuration::days(days);
                timezone
                    .from_local_datetime(&date.and_time(local.time()))
                    .earliest()
                    .map(|moved| moved.with_timezone(&Utc))
                    .unwrap_or(start + ChronoDuration::days(days))
            }
            TimeUnit::Hour => start + ChronoDuration::hours(self.amount),
            TimeUnit::Minute => start + ChronoDuration::minutes(self.amount),
            TimeUnit::Second => start + ChronoDuration::seconds(self.amount),
        }
    }
}

fn midnight(timezone: Tz, date: chrono::NaiveDate) -> Option<DateTime<Utc>> {
    timezone
        .from_local_datetime(&date.and_time(NaiveTime::MIN))
        .earliest()
        .map(|local| local.with_timezone(&Utc))
}

impl Filter {
    /// A filter that holds for every record.
    pub fn always() -> Filter {
        Filter::And { all: Vec::new() }
    }

    /// Every field name the filter mentions, in order of appearance (with repeats).
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Filter::And { all: filters } | Filter::Or { any: filters } => {
                filters.iter().for_each(|filter| filter.collect_fields(out))
            }
            Filter::Not { filter } => filter.collect_fields(out),
            Filter::Compare { field, .. } => out.push(field),
        }
    }

    /// The filter's size, as the caps count it.
    pub fn size(&self) -> FilterSize {
        match self {
            Filter::And { all: filters } | Filter::Or { any: filters } => {
                FilterSize::group(filters.iter().map(Filter::size))
            }
            Filter::Not { filter } => FilterSize::group([filter.size()]),
            Filter::Compare { value, .. } => FilterSize {
                terms: 1,
                values: match value {
                    FilterValue::List(items) => items.len(),
                    FilterValue::Null | FilterValue::NotNull => 0,
                    FilterValue::Literal(_) | FilterValue::Relative(_) => 1,
                },
                depth: 1,
            },
        }
    }

    /// Parses the JSON/YAML form: `{field: value | {op: value}, or: [..], not: {..}}`, and
    /// checks it against the caps.
    pub fn from_json(value: &Value) -> Result<Filter, FilterError> {
        let filter = parse_map(value, "", 1)?;
        filter.size().check().map_err(|message| FilterError {
            path: String::new(),
            message,
        })?;
        Ok(filter)
    }

    /// Parses one query-string parameter `field=op.value` (`status=eq.new`,
    /// `grade=in.(p1,p3)`, `phone=is.null`, `name=like.张*`, `due_at=lte.@today+1d`).
    ///
    /// The operator is required: a value without one, or with an unknown one (`neq.new`), is
    /// an error rather than an equality that would silently match nothing. Everything after
    /// the first dot is the value, dots included (`email=eq.a.b@example.com`).
    pub fn from_query_param(field: &str, text: &str) -> Result<Filter, FilterError> {
        let error = |message: String| FilterError {
            path: field.to_owned(),
            message,
        };
        check_text(field).map_err(error)?;
        check_text(text).map_err(error)?;
        let (op, rest) = match text.split_once('.') {
            Some((name, rest)) => match Op::parse(name) {
                Some(op) => (op, rest),
                None => {
                    return Err(error(format!(
                        "unknown operator `{name}`; expected one of {OPERATORS}, as in \
                         {field}=eq.value"
                    )));
                }
            },
            None => {
                return Err(error(format!(
                    "a filter reads operator.value, as in {field}=eq.value; expected one of \
                     {OPERATORS} before the first dot"
                )));
            }
        };
        let value = match op {
            Op::In => {
                let inner = rest
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| {
                        error(format!("`in` needs a list such as in.(a,b), got `{rest}`"))
                    })?;
                let items: Vec<Value> = if inner.is_empty() {
                    Vec::new()
                } else {
                    inner
                        .split(',')
                        .map(|item| Value::String(item.to_owned()))
                        .collect()
                };
                check_in_list(items.len()).map_err(error)?;
                FilterValue::List(items)
            }
            Op::Is => parse_is(&Value::String(rest.to_owned())).map_err(error)?,
            Op::Like => {
                check_pattern(rest).map_err(error)?;
                FilterValue::Literal(Value::String(rest.to_owned()))
            }
            _ => match RelativeTime::parse(rest) {
                Some(relative) => FilterValue::Relative(relative.map_err(error)?),
                None => FilterValue::Literal(Value::String(rest.to_owned())),
            },
        };
        Ok(Filter::Compare {
            field: field.to_owned(),
            op,
            value,
        })
    }
}

/// Refuses an `in` list over [`MAX_IN_VALUES`].
fn check_in_list(length: usize) -> Result<(), String> {
    if length > MAX_IN_VALUES {
        return Err(format!(
            "at most {MAX_IN_VALUES} values in an `in` list; this one has {length}"
        ));
    }
    Ok(())
}

/// A filter that does not parse, with the JSON pointer of the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    /// JSON pointer relative to the filter's root, e.g. `/or/1/status`.
    pub path: String,
    pub message: String,
}

fn parse_map(value: &Value, path: &str, depth: usize) -> Result<Filter, FilterError> {
    // Checked while descending, so a hostile nesting is refused before it is walked.
    if depth > MAX_FILTER_DEPTH {
        return Err(FilterError {
            path: path.to_owned(),
            message: format!("a filter may nest at most {MAX_FILTER_DEPTH} levels deep"),
        });
    }
    let Value::Object(map) = value else {
        return Err(FilterError {
            path: path.to_owned(),
            message: "a filter must be a map of field to value or to {op: value}".to_owned(),
        });
    };
    let mut all = Vec::with_capacity(map.len());
    for (key, entry) in map {
        let entry_path = format!("{path}/{}", escape_pointer(key));
        check_text(key).map_err(|message| FilterError {
            path: entry_path.clone(),
            message,
        })?;
        match key.as_str() {
            "or" => {
                let Value::Array(items) = entry else {
                    return Err(FilterError {
                        path: entry_path,
                        message: "`or` takes a list of filters".to_owned(),
                    });
                };
                let any = items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| {
                        parse_map(item, &format!("{entry_path}/{index}"), depth + 1)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                all.push(Filter::Or { any });
            }
            "not" => all.push(Filter::Not {
                filter: Box::new(parse_map(entry, &entry_path, depth + 1)?),
            }),
            field => parse_field(field, entry, &entry_path, &mut all)?,
        }
    }
    Ok(if all.len() == 1 {
        all.remove(0)
    } else {
        Filter::And { all }
    })
}

fn parse_field(
    field: &str,
    entry: &Value,
    path: &str,
    out: &mut Vec<Filter>,
) -> Result<(), FilterError> {
    let compare = |op: Op, value: FilterValue| Filter::Compare {
        field: field.to_owned(),
        op,
        value,
    };
    match entry {
        Value::Object(ops) if !ops.is_empty() => {
            for (name, operand) in ops {
                let op_path = format!("{path}/{}", escape_pointer(name));
                let error = |message: String| FilterError {
                    path: op_path.clone(),
                    message,
                };
                let op = Op::parse(name).ok_or_else(|| {
                    error(format!(
                        "unknown filter operator `{name}`; expected one of {OPERATORS}"
                    ))
                })?;
                let value = match op {
                    Op::In => match operand {
                        Value::Array(items) if items.iter().all(is_scalar) => {
                            check_in_list(items.len()).map_err(error)?;
                            for item in items {
                                if let Value::String(text) = item {
                                    check_text(text).map_err(error)?;
                                }
                            }
                            FilterValue::List(items.clone())
                        }
                        _ => return Err(error("`in` takes a list of values".to_owned())),
                    },
                    Op::Is => parse_is(operand).map_err(error)?,
                    Op::Like => match operand {
                        Value::String(pattern) => {
                            check_pattern(pattern).map_err(error)?;
                            FilterValue::Literal(operand.clone())
                        }
                        _ => {
                            return Err(error(
                                "`like` takes a text pattern (`*` is the wildcard)".to_owned(),
                            ));
                        }
                    },
                    _ => scalar_value(operand).map_err(error)?,
                };
                out.push(compare(op, value));
            }
            Ok(())
        }
        Value::Object(_) => Err(FilterError {
            path: path.to_owned(),
            message: format!("the filter on `{field}` is empty"),
        }),
        Value::Null => {
            out.push(compare(Op::Is, FilterValue::Null));
            Ok(())
        }
        other => {
            let value = scalar_value(other).map_err(|message| FilterError {
                path: path.to_owned(),
                message,
            })?;
            out.push(compare(Op::Eq, value));
            Ok(())
        }
    }
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn scalar_value(value: &Value) -> Result<FilterValue, String> {
    match value {
        Value::String(text) => {
            check_text(text)?;
            match RelativeTime::parse(text) {
                Some(relative) => Ok(FilterValue::Relative(relative?)),
                None => Ok(FilterValue::Literal(value.clone())),
            }
        }
        Value::Number(_) | Value::Bool(_) => Ok(FilterValue::Literal(value.clone())),
        _ => Err("a filter value must be text, a number or true/false".to_owned()),
    }
}

fn parse_is(value: &Value) -> Result<FilterValue, String> {
    match value {
        Value::Null => Ok(FilterValue::Null),
        Value::String(text) if text == "null" => Ok(FilterValue::Null),
        Value::String(text) if text == "not_null" => Ok(FilterValue::NotNull),
        _ => Err("`is` takes `null` or `not_null`".to_owned()),
    }
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn map_filters_become_a_conjunction_of_comparisons() {
        let filter =
            Filter::from_json(&json!({"done": false, "due_at": {"lte": "@today+1d"}})).unwrap();
        let Filter::And { all } = filter else {
            panic!("expected And")
        };
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[1],
            Filter::Compare {
                field: "due_at".into(),
                op: Op::Lte,
                value: FilterValue::Relative(RelativeTime {
                    base: RelativeBase::Today,
                    amount: 1,
                    unit: TimeUnit::Day
                }),
            }
        );
    }

    #[test]
    fn or_and_not_nest() {
        let filter =
            Filter::from_json(&json!({"or": [{"a": 1}, {"not": {"b": {"in": [1, 2]}}}]})).unwrap();
        assert_eq!(filter.fields(), vec!["a", "b"]);
    }

    #[test]
    fn bad_operators_are_reported_with_their_path() {
        let error = Filter::from_json(&json!({"or": [{"a": {"between": 1}}]})).unwrap_err();
        assert_eq!(error.path, "/or/0/a/between");
    }

    #[test]
    fn query_params_use_op_dot_value() {
        assert_eq!(
            Filter::from_query_param("grade", "in.(p1,p3)").unwrap(),
            Filter::Compare {
                field: "grade".into(),
                op: Op::In,
                value: FilterValue::List(vec![json!("p1"), json!("p3")])
            }
        );
        assert_eq!(
            Filter::from_query_param("phone", "is.null").unwrap(),
            Filter::Compare {
                field: "phone".into(),
                op: Op::Is,
                value: FilterValue::Null
            }
        );
        assert_eq!(
            Filter::from_query_param("email", "eq.ada.l@example.com").unwrap(),
            Filter::Compare {
                field: "email".into(),
                op: Op::Eq,
                value: FilterValue::Literal(json!("ada.l@example.com"))
            }
        );
    }

    #[test]
    fn query_params_need_a_known_operator() {
        let error = Filter::from_query_param("status", "neq.new").unwrap_err();
        assert_eq!(error.path, "status");
        assert!(error.message.contains("unknown operator `neq`"), "{error}");
        assert!(error.message.contains(OPERATORS), "{error}");
        for bare in ["张三", "", "a,b"] {
            let error = Filter::from_query_param("name", bare).unwrap_err();
            assert!(error.message.contains("operator.value"), "{error}");
        }
        assert!(Filter::from_query_param("name", "eq.a\0b").is_err());
        assert!(Filter::from_query_param("name", "is.maybe").is_err());
    }

    #[test]
    fn filters_are_held_to_the_caps() {
        let items = |n: usize| (0..n).map(|i| json!(i)).collect::<Vec<_>>();
        assert!(Filter::from_json(&json!({"a": {"in": items(MAX_IN_VALUES)}})).is_ok());
        let error = Filter::from_json(&json!({"a": {"in": items(MAX_IN_VALUES + 1)}})).unwrap_err();
        assert_eq!(error.path, "/a/in");
        let list = |n: usize| format!("in.({})", vec!["x"; n].join(","));
        assert!(Filter::from_query_param("a", &list(MAX_IN_VALUES)).is_ok());
        assert!(Filter::from_query_param("a", &list(MAX_IN_VALUES + 1)).is_err());

        let terms = |n: usize| json!({"or": (0..n).map(|i| json!({"a": i})).collect::<Vec<_>>()});
        assert_eq!(
            Filter::from_json(&terms(MAX_FILTER_TERMS - 1))
                .unwrap()
                .size()
                .terms,
            MAX_FILTER_TERMS
        );
        assert_eq!(
            Filter::from_json(&terms(MAX_FILTER_TERMS))
                .unwrap_err()
                .path,
            ""
        );

        let nested =
            |levels: usize| (1..levels).fold(json!({"a": 1}), |inner, _| json!({"not": inner}));
        assert_eq!(
            Filter::from_json(&nested(MAX_FILTER_DEPTH))
                .unwrap()
                .size()
                .depth,
            MAX_FILTER_DEPTH
        );
        assert!(Filter::from_json(&nested(MAX_FILTER_DEPTH + 1)).is_err());

        let values = json!({"or": [{"a": {"in": items(MAX_IN_VALUES)}}, {"b": {"in": items(MAX_IN_VALUES)}}, {"c": 1}]});
        assert!(
            Filter::from_json(&values)
                .unwrap_err()
                .message
                .contains("values")
        );
        let long = "x".repeat(MAX_PATTERN_CHARS + 1);
        assert!(Filter::from_json(&json!({"a": {"like": long}})).is_err());
        assert!(Filter::from_json(&json!({"a\u{0}": 1})).is_err());
        assert!(Filter::from_json(&json!({"a": {"in": ["\u{0}"]}})).is_err());
    }

    #[test]
    fn today_resolves_to_midnight_in_the_app_timezone() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 20, 0, 0).unwrap(); // 04:00 on 2 March in Shanghai
        let relative = RelativeTime::parse("@today+1d").unwrap().unwrap();
        let resolved = relative.resolve(now, chrono_tz::Asia::Shanghai);
        assert_eq!(
            resolved,
            Utc.with_ymd_and_hms(2026, 3, 2, 16, 0, 0).unwrap()
        );
        assert!(RelativeTime::parse("@yesterday").unwrap().is_err());
        assert!(RelativeTime::parse("@now+3x").unwrap().is_err());
        assert!(RelativeTime::parse("plain").is_none());
    }
}
