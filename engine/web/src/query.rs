//! Reading list, aggregate, export and duplicate-check parameters from query strings and
//! JSON bodies into the runtime's request types.
//!
//! Only the *shape* is checked here (a number is a number, a filter parses); whether the
//! named fields exist and may be read is the runtime's decision.

use keel_meta::{Filter, OrderTerm};
use keel_runtime::records::{AggregateRequest, Input, ListRequest, MAX_PAGE_SIZE};
use serde::Deserialize;
use serde_json::Value as Json;

use crate::error::ApiError;

/// Query parameters of `GET /records/{object}` that are not filters.
const LIST_PARAMETERS: &[&str] = &["order", "limit", "after", "q", "fields"];
/// Query parameters of `GET /aggregate/{object}` that are not filters.
const AGGREGATE_PARAMETERS: &[&str] = &["group_by", "count", "sum", "avg", "min", "max"];
/// Query parameters of `GET /records/{object}/export` that are not filters.
const EXPORT_PARAMETERS: &[&str] = &["format", "order", "fields"];

/// The body of `POST /records/{object}/query`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    /// A filter in the JSON form of SPEC §3.7.
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
}

impl QueryBody {
    pub fn into_list_request(self) -> Result<ListRequest, ApiError> {
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
            "q" => request.q = Some(value.clone()).filter(|q| !q.trim().is_empty()),
            "fields" => request.fields = Some(parse_list(value)),
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
            "fields" => request.fields = Some(parse_list(value)),
            _ => {}
        }
    }
    Ok(request)
}

/// `?phone=138…&name=…`: the probe of a duplicate check, every value a string.
pub fn duplicate_probe(pairs: &[(String, String)]) -> Input {
    pairs
        .iter()
        .map(|(key, value)| (key.clone(), Json::String(value.clone())))
        .collect()
}

/// Every parameter that is not one of `reserved`, as filters that must all hold.
fn filters(pairs: &[(String, String)], reserved: &[&str]) -> Result<Option<Filter>, ApiError> {
    let mut all = Vec::new();
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
        all.push(Filter::from_query_param(key, value).map_err(|error| {
            ApiError::invalid_parameter(key.clone(), "invalid_filter", error.message)
        })?);
    }
    Ok(match all.len() {
        0 => None,
        1 => all.pop(),
        _ => Some(Filter::And { all }),
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

fn parse_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
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
