//! The filter language (SPEC §3.7), shared by the API, rules, pools and scripts: the AST, its
//! parsers (JSON/YAML maps and the query-string form `field=op.value`) and relative dates.
//!
//! Parsing checks the shape only. Whether the fields exist and values fit their types is
//! checked against an object elsewhere (`load` for metadata, the runtime for requests); turning
//! a filter into SQL is the store's job.

use chrono::{DateTime, Duration as ChronoDuration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;

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

    /// Parses the JSON/YAML form: `{field: value | {op: value}, or: [..], not: {..}}`.
    pub fn from_json(value: &Value) -> Result<Filter, FilterError> {
        parse_map(value, "")
    }

    /// Parses one query-string parameter `field=op.value` (`status=eq.new`,
    /// `grade=in.(p1,p3)`, `phone=is.null`, `name=like.张*`). A value without a known
    /// operator prefix means equality.
    pub fn from_query_param(field: &str, text: &str) -> Result<Filter, FilterError> {
        let error = |message: String| FilterError {
            path: field.to_owned(),
            message,
        };
        let (op, rest) = match text.split_once('.') {
            Some((name, rest)) => match Op::parse(name) {
                Some(op) => (op, rest),
                None => (Op::Eq, text),
            },
            None => (Op::Eq, text),
        };
        let value = match op {
            Op::In => {
                let inner = rest
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| {
                        error(format!("`in` needs a list such as in.(a,b), got `{rest}`"))
                    })?;
                let items = if inner.is_empty() {
                    Vec::new()
                } else {
                    inner
                        .split(',')
                        .map(|item| Value::String(item.to_owned()))
                        .collect()
                };
                FilterValue::List(items)
            }
            Op::Is => parse_is(&Value::String(rest.to_owned())).map_err(error)?,
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

/// A filter that does not parse, with the JSON pointer of the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    /// JSON pointer relative to the filter's root, e.g. `/or/1/status`.
    pub path: String,
    pub message: String,
}

fn parse_map(value: &Value, path: &str) -> Result<Filter, FilterError> {
    let Value::Object(map) = value else {
        return Err(FilterError {
            path: path.to_owned(),
            message: "a filter must be a map of field to value or to {op: value}".to_owned(),
        });
    };
    let mut all = Vec::with_capacity(map.len());
    for (key, entry) in map {
        let entry_path = format!("{path}/{}", escape_pointer(key));
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
                    .map(|(index, item)| parse_map(item, &format!("{entry_path}/{index}")))
                    .collect::<Result<Vec<_>, _>>()?;
                all.push(Filter::Or { any });
            }
            "not" => all.push(Filter::Not {
                filter: Box::new(parse_map(entry, &entry_path)?),
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
                        "unknown filter operator `{name}`; use eq, ne, gt, gte, lt, lte, in, like or is"
                    ))
                })?;
                let value = match op {
                    Op::In => match operand {
                        Value::Array(items) if items.iter().all(is_scalar) => {
                            FilterValue::List(items.clone())
                        }
                        _ => return Err(error("`in` takes a list of values".to_owned())),
                    },
                    Op::Is => parse_is(operand).map_err(error)?,
                    Op::Like => match operand {
                        Value::String(_) => FilterValue::Literal(operand.clone()),
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
        Value::String(text) => match RelativeTime::parse(text) {
            Some(relative) => Ok(FilterValue::Relative(relative?)),
            None => Ok(FilterValue::Literal(value.clone())),
        },
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
            Filter::from_query_param("name", "张三").unwrap(),
            Filter::Compare {
                field: "name".into(),
                op: Op::Eq,
                value: FilterValue::Literal(json!("张三"))
            }
        );
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
