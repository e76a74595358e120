//! Operations: health, metrics, the OpenAPI document.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi as _;

use super::{ApiDoc, AppState, Caller, Json};
use crate::auth::Role;
use crate::error::ApiError;
use crate::protocol::Health;

/// Liveness; needs no token and says nothing about the gallery.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// Prometheus metrics (admin token, unless `metrics_public`).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text")),
    security(("bearer" = [])))]
pub async fn metrics(State(state): State<AppState>, Caller(who): Caller) -> Result<Response, ApiError> {
    crate::service::require(&who, Role::Admin)?;
    Ok(render_metrics(&state).await)
}

/// Prometheus metrics without a token (`metrics_public = true`).
pub async fn public_metrics(State(state): State<AppState>) -> Response {
    render_metrics(&state).await
}

async fn render_metrics(state: &AppState) -> Response {
    let now = crate::unix_now();
    let attempts = state.service.attempts();
    let mut text = state
        .metrics
        .render(state.subjects(), attempts.total(), attempts.locked_now(now));
    if let Some(fed) = state.service.fed() {
        crate::metrics::render_fed(&mut text, &fed.snapshot().await);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The OpenAPI document of this API: public, as API documents are (it holds no secret).
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
