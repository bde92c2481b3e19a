//! The record page `/app/{object}/{id}` and its actions (being built).

use axum::Router;

use crate::AppState;

/// The routes of this module; [`super::routes`] merges them.
pub fn routes() -> Router<AppState> {
    Router::new()
}
