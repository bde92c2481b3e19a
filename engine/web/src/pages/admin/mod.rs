//! The admin console `/admin` and the account page `/account` (being built).

use axum::Router;

use crate::AppState;

/// The routes of this module; [`super::routes`] merges them.
pub fn routes() -> Router<AppState> {
    Router::new()
}
