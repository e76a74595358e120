//! Administration: the decision threshold.

use axum::extract::State;

use super::{AppState, Caller, Json};
use crate::error::ApiError;
use crate::protocol::{ErrorBody, ThresholdBody};

/// The decision threshold in force.
#[utoipa::path(get, path = "/v1/admin/threshold", tag = "admin",
    responses((status = 200, body = ThresholdBody), (status = 503, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_threshold(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<ThresholdBody>, ApiError> {
    Ok(Json(state.service.get_threshold(&who)?))
}

/// Sets the decision threshold (stored with the gallery, in force on every replica).
#[utoipa::path(put, path = "/v1/admin/threshold", tag = "admin", request_body = ThresholdBody,
    responses((status = 200, body = ThresholdBody), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn put_threshold(
    State(state): State<AppState>,
    Caller(who): Caller,
    Json(body): Json<ThresholdBody>,
) -> Result<Json<ThresholdBody>, ApiError> {
    Ok(Json(state.service.set_threshold(&who, body).await?))
}
