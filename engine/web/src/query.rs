//! Reading list, aggregate, export and duplicate-check parameters from query strings and
//! JSON bodies into the runtime's request types.
//!
//! Only the *shape* is checked here (a number is a number, a filter parses and is within the
//! caps of `keel_meta::filter`); whether the named fields exist and may be read is the
//! runtime's decision. [`refuse_nul`] keeps the NUL character out of every path and query
//! string before any handler runs: PostgreSQL cannot store it, so it must never reach SQL.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keel_meta::filter::{FilterSize, check_pattern, check_text};
use keel_meta::{Filter, OrderTerm};
use keel_runtime::records::{AggregateRequest, Input, ListRequest, MAX_PAGE_SIZE};
use serde::Deserialize;
use serde_json::Value as Json;

use crate::error::{ApiError, ErrorCode};

/// Query parameters of `GET /records/{object}` that are not filters.
const LIST_PARAMETERS: &[&str] = &["order", "limit", "after", "q", "fields"];
/// Query parameters of `GET /aggregate/{object}` that are not filters.
const AGGREGATE_PARAMETERS: &[&str] = &["group_by", "count", "sum", "avg", "min", "max", "q"];
/// Query parameters of `GET /records/{object}/export` that are not filters.
const EXPORT_PARAMETERS: &[&str] = &["format", "order", "fields", "q"];

/// The body of `POST /records/{object}/query`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    /// A filter in its JSON form (docs/app-format.md, "Filters").
    #[serde(rename = "where")]
    pub filter: Option<Json>,
    pub order: Option<OrderSpec>,
    pub limit: Option<u32>,
    pub after: Option<String>,
    pub fields: Option<Vec<String>>,
    pub q: Option<String>,
}

/// A sort given as `"-score,name"` or as `["-score", "name"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OrderSpec {
    Text(String),
    List(Vec<String>),
}

/// The export file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Ndjson,
}

/// What `GET /records/{object}/export` asks for.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub format: ExportFormat,
    pub filter: Option<Filter>,
    pub order: Vec<OrderTerm>,
    /// CSV columns, when not all readable fields.
    pub fields: Option<Vec<String>>,
    /// Text matched against the object's `search` fields, as in a list.
    pub q: Option<String>,
}

impl QueryBody {
    pub fn into_list_request(self) -> Result<ListRequest, ApiError> {
        if let Some(q) = &self.q {
            check_pattern(q)
                .map_err(|message| ApiError::invalid_parameter("q", "invalid_value", message))?;
        }
        if let Some(after) = &self.after {
            check_text(after).map_err(|message| {
                ApiError::invalid_parameter("after", "invalid_value", message)
            })?;
        }
        let filter = match &self.filter {
            Some(Json::Null) | None => None,
            Some(value) => Some(Filter::from_json(value).map_err(|error| {
                ApiError::invalid_parameter(
                    format!("where{}", error.path),
                    "invalid_filter",
                    error.message,
                )
            })?),
        };
        let order = match self.order {
            None => Vec::new(),
            Some(OrderSpec::Text(text)) => parse_order(&text),
            Some(OrderSpec::List(terms)) => {
                terms.iter().flat_map(|term| parse_order(term)).collect()
            }
        };
        Ok(ListRequest {
            filter,
            order,
            limit: self.limit,
            after: self.after,
            q: self.q.filter(|q| !q.trim().is_empty()),
            fields: self.fields,
        })
    }
}

/// `?status=eq.new&order=-score&limit=50&after=…&q=…&fields=a,b`.
pub fn list_request(pairs: &[(String, String)]) -> Result<ListRequest, ApiError> {
    let mut request = ListRequest {
        filter: filters(pairs, LIST_PARAMETERS)?,
        ..ListRequest::default()
    };
    for (key, value) in pairs {
        match key.as_str() {
            "order" => request.order = parse_order(value),
            "limit" => request.limit = Some(parse_limit(value)?),
            "after" => request.after = Some(value.clone()).filter(|after| !after.is_empty()),
            "q" => {
                check_pattern(value).map_err(|message| {
                    ApiError::invalid_parameter("q", "invalid_value", message)
                })?;
                request.q = Some(value.clone()).filter(|q| !q.trim().is_empty());
            }
            "fields" => request.fields = Some(parse_fields(value)?),
            _ => {}
        }
    }
    Ok(request)
}

/// `?group_by=a,b&count=true&sum=amount&avg=…&min=…&max=…&<filters>`.
pub fn aggregate_request(pairs: &[(String, String)]) -> Result<AggregateRequest, ApiError> {
    let mut request = AggregateRequest {
        filter: filters(pairs, AGGREGATE_PARAMETERS)?,
        ..AggregateRequest::default()
    };
    for (key, value) in pairs {
        match key.as_str() {
            "group_by" => request.group_by.extend(parse_list(value)),
            "count" => request.count = parse_bool("count", value)?,
            "sum" => request.sum.extend(parse_list(value)),
            "avg" => request.avg.extend(parse_list(value)),
            "min" => request.min.extend(parse_list(value)),
            "max" => request.max.extend(parse_list(value)),
            "q" => request.q = search_text(value)?,
            _ => {}
        }
    }
    Ok(request)
}

/// `?format=csv|ndjson&order=…&fields=…&<filters>`; CSV when no format is given.
pub fn export_request(pairs: &[(String, String)]) -> Result<ExportRequest, ApiError> {
    let mut request = ExportRequest {
        format: ExportFormat::Csv,
        filter: filters(pairs, EXPORT_PARAMETERS)?,
        order: Vec::new(),
        fields: None,
        q: None,
    };
    for (key, value) in pairs {
        match key.as_str() {
            "format" => {
                request.format = match value.as_str() {
                    "csv" => ExportFormat::Csv,
                    "ndjson" => ExportFormat::Ndjson,
                    other => {
                        return Err(ApiError::invalid_parameter(
                            "format",
                            "invalid_value",
                            format!("`format` must be csv or ndjson, not `{other}`"),
                        ));
                    }
                }
            }
            "order" => request.order = parse_order(value),
            "fields" => request.fields = Some(parse_fields(value)?),
            "q" => request.q = search_text(value)?,
            _ => {}
        }
    }
    Ok(request)
}

/// The search text `q`: checked like a list's, and none when blank.
fn search_text(value: &str) -> Result<Option<String>, ApiError> {
    check_pattern(value)
        .map_err(|message| ApiError::invalid_parameter("q", "invalid_value", message))?;
    Ok(Some(value.to_owned()).filter(|q| !q.trim().is_empty()))
}

/// `?phone=138…&name=…`: the probe of a duplicate check, every value a string.
pub fn duplicate_probe(pairs: &[(String, String)]) -> Input {
    pairs
        .iter()
        .map(|(key, value)| (key.clone(), Json::String(value.clone())))
        .collect()
}

/// Every parameter that is not one of `reserved`, as filters that must all hold, within
/// the caps on one filter (the parameter that breaks a cap is the one named).
fn filters(pairs: &[(String, String)], reserved: &[&str]) -> Result<Option<Filter>, ApiError> {
    let mut all = Vec::new();
    let mut size = FilterSize::empty_group();
    for (key, value) in pairs {
        if reserved.contains(&key.as_str()) {
            continue;
        }
        if key.is_empty() {
            return Err(ApiError::invalid_parameter(
                "",
                "invalid_filter",
                "a query parameter has no name",
            ));
        }
        let filter = Filter::from_query_param(key, value).map_err(|error| {
            ApiError::invalid_parameter(key.clone(), "invalid_filter", error.message)
        })?;
        size = size.with_part(filter.size());
        size.check().map_err(|message| {
            ApiError::invalid_parameter(key.clone(), "invalid_filter", message)
        })?;
        all.push(filter);
    }
    Ok(match all.len() {
        0 => None,
        1 => all.pop(),
        _ => Some(Filter::And { all }),
    })
}

/// Middleware (on every matched route): a NUL character (`%00`) in the path or the query
/// string is refused before the handler runs, so it never reaches SQL. In a path segment no
/// object, record, user or file can have such a name, so it is the 404 that any unknown name
/// gets (`unknown_object` for the object, `not_found` otherwise); in a query string it is a
/// `422 invalid_request` naming the parameter.
pub async fn refuse_nul(request: Request, next: Next) -> Response {
    if let Some(refusal) = nul_refusal(&request) {
        return refusal.into_response();
    }
    next.run(request).await
}

/// Why `request` is refused for a NUL character, if it is. NUL can only arrive
/// percent-encoded: the URI grammar has no raw control characters.
fn nul_refusal(request: &Request) -> Option<ApiError> {
    let path = request.uri().path();
    if path.contains("%00") {
        let pattern = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("", MatchedPath::as_str);
        let in_object = path
            .split('/')
            .zip(pattern.split('/'))
            .any(|(segment, name)| segment.contains("%00") && name == "{object}");
        return Some(if in_object {
            ApiError::new(ErrorCode::UnknownObject, "there is no such object")
        } else {
            ApiError::new(
                ErrorCode::NotFound,
                "nothing here has a name with a NUL character",
            )
        });
    }
    let query = request.uri().query().unwrap_or("");
    if !query.contains("%00") {
        return None;
    }
    // A query string that does not decode is left to the handler, which reports it.
    let pairs = crate::extract::parse_query(query).ok()?;
    pairs
        .iter()
        .find_map(|(key, value)| {
            check_text(key)
                .and_then(|()| check_text(value))
                .err()
                .map(|message| (key, message))
        })
        .map(|(key, message)| {
            ApiError::invalid_parameter(key.replace('\0', "\u{fffd}"), "invalid_value", message)
        })
}

/// `-score,name` → score descending, then name ascending (`+name` is also ascending).
fn parse_order(text: &str) -> Vec<OrderTerm> {
    parse_list(text)
        .into_iter()
        .map(|term| match term.strip_prefix('-') {
            Some(field) => OrderTerm {
                field: field.to_owned(),
                descending: true,
            },
            None => OrderTerm {
                field: term.trim_start_matches('+').to_owned(),
                descending: false,
            },
        })
        .collect()
}

/// `fields=a,b`: every item must name a field, so `fields=` or `fields=a,,b` is a 422 rather
/// than a silently shorter list.
fn parse_fields(text: &str) -> Result<Vec<String>, ApiError> {
    let items: Vec<String> = text.split(',').map(|item| item.trim().to_owned()).collect();
    if items.iter().any(String::is_empty) {
        return Err(ApiError::invalid_parameter(
            "fields",
            "invalid_value",
            "`fields` is a comma-separated list of field names, with no empty item".to_owned(),
        ));
    }
    Ok(items)
}

fn parse_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A `limit` query parameter of an admin or inbox list: a whole number from 1 to `max`.
pub fn limit_parameter(value: &str, max: u32) -> Result<u32, ApiError> {
    match value.parse::<u32>() {
        Ok(number) if (1..=max).contains(&number) => Ok(number),
        _ => Err(ApiError::invalid_parameter(
            "limit",
            "out_of_range",
            format!("`limit` must be a whole number from 1 to {max}"),
        )),
    }
}

fn parse_limit(text: &str) -> Result<u32, ApiError> {
    text.trim().parse::<u32>().map_err(|_| {
        ApiError::invalid_parameter(
            "limit",
            "invalid_value",
            format!("`limit` must be a whole number from 1 to {MAX_PAGE_SIZE}, not `{text}`"),
        )
    })
}

fn parse_bool(name: &str, text: &str) -> Result<bool, ApiError> {
    match text {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(ApiError::invalid_parameter(
            name,
            "invalid_value",
            format!("`{name}` must be true or false, not `{other}`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn list_parameters_split_from_filters_which_and_together() {
        let request = list_request(&pairs(&[
            ("status", "eq.new"),
            ("score", "gte.50"),
            ("order", "-score,name"),
            ("limit", "20"),
            ("fields", "name, score"),
            ("q", "  "),
        ]))
        .unwrap();
        let Some(Filter::And { all }) = request.filter else {
            panic!("two filters make an And");
        };
        assert_eq!(all.len(), 2);
        assert_eq!(
            request.order,
            vec![
                OrderTerm {
                    field: "score".to_owned(),
                    descending: true
                },
                OrderTerm {
                    field: "name".to_owned(),
                    descending: false
                },
            ]
        );
        assert_eq!(request.limit, Some(20));
        assert_eq!(
            request.fields,
            Some(vec!["name".to_owned(), "score".to_owned()])
        );
        assert_eq!(request.q, None);
    }

    #[test]
    fn bad_limits_and_filters_name_the_parameter() {
        let error = list_request(&pairs(&[("limit", "lots")])).unwrap_err();
        assert_eq!(error.code(), crate::error::ErrorCode::InvalidRequest);
        let error = list_request(&pairs(&[("grade", "in.p1")])).unwrap_err();
        assert_eq!(error.code(), crate::error::ErrorCode::InvalidRequest);
        let error = list_request(&pairs(&[("status", "neq.new")])).unwrap_err();
        assert!(
            format!("{error:?}").contains(r#"field: "status""#),
            "{error:?}"
        );
    }

    #[test]
    fn query_string_filters_count_together_against_the_caps() {
        let many: Vec<(String, String)> = (0..keel_meta::filter::MAX_FILTER_TERMS)
            .map(|i| (format!("f{i}"), "eq.1".to_owned()))
            .collect();
        let error = list_request(&many).unwrap_err();
        assert!(
            format!("{error:?}").contains(r#"field: "f199""#),
            "{error:?}"
        );
        assert!(list_request(&many[..many.len() - 1]).is_ok());
    }

    #[test]
    fn aggregate_and_export_parameters() {
        let request = aggregate_request(&pairs(&[
            ("group_by", "stage,owner"),
            ("count", "true"),
            ("sum", "amount"),
            ("stage", "ne.lost"),
        ]))
        .unwrap();
        assert_eq!(request.group_by, vec!["stage", "owner"]);
        assert!(request.count);
        assert_eq!(request.sum, vec!["amount"]);
        assert!(request.filter.is_some());
        assert!(aggregate_request(&pairs(&[("count", "maybe")])).is_err());

        let export = export_request(&pairs(&[("format", "ndjson"), ("status", "eq.new")])).unwrap();
        assert_eq!(export.format, ExportFormat::Ndjson);
        assert!(export.filter.is_some());
        assert!(export_request(&pairs(&[("format", "xlsx")])).is_err());
    }
}
