//! The report routes (docs/reports.md, docs/api.md): `GET /reports/funnel`,
//! `GET /reports/briefing` and `GET /calendar`. Thin handlers over
//! `keel_runtime::reports::Reports`, which checks every parameter and computes the figures.

use axum::response::{IntoResponse, Response};
use keel_runtime::reports::{CalendarScope, FunnelParams, Period};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{CurrentUser, Pinned, QueryPairs};

/// The value of each of `known` in `pairs`; an unknown or repeated parameter is a 422
/// naming it.
fn parameters<const N: usize>(
    pairs: Vec<(String, String)>,
    known: [&str; N],
) -> Result<[Option<String>; N], ApiError> {
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    for (key, value) in pairs {
        let Some(index) = known.iter().position(|name| *name == key) else {
            return Err(ApiError::invalid_parameter(
                &key,
                "unknown_parameter",
                format!("unknown parameter `{key}`: use {}", known.join(", ")),
            ));
        };
        if values[index].replace(value).is_some() {
            return Err(ApiError::invalid_parameter(
                &key,
                "repeated_parameter",
                format!("`{key}` is given more than once"),
            ));
        }
    }
    Ok(values)
}

/// `GET /reports/funnel?process=&from=&to=&owner=` → the funnel.
pub async fn funnel(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let [process, from, to, owner] = parameters(pairs, ["process", "from", "to", "owner"])?;
    let params = FunnelParams {
        process,
        from,
        to,
        owner,
    };
    let funnel = state.reports().funnel(&actor, params).await?;
    Ok(axum::Json(funnel).into_response())
}

/// `GET /reports/briefing?period=day|week|month` (default `week`) → the briefing.
pub async fn briefing(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let [period] = parameters(pairs, ["period"])?;
    let period = match period {
        Some(text) => Period::parse(&text)?,
        None => Period::Week,
    };
    let briefing = state.reports().briefing(&actor, period).await?;
    Ok(axum::Json(briefing).into_response())
}

/// `GET /calendar?from=&to=&scope=mine|team` → `{data: [entry], from, to, scope}`.
pub async fn calendar(
    Pinned(state): Pinned,
    CurrentUser(actor): CurrentUser,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let [from, to, scope] = parameters(pairs, ["from", "to", "scope"])?;
    let scope = match scope {
        Some(text) => CalendarScope::parse(&text)?,
        None => CalendarScope::Mine,
    };
    let calendar = state
        .reports()
        .calendar(&actor, from.as_deref(), to.as_deref(), scope)
        .await?;
    Ok(axum::Json(json!(calendar)).into_response())
}
