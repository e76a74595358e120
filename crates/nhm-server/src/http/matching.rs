//! Matching: 1:1 verification and 1:N identification.

use axum::extract::State;

use super::{AppState, Caller, Json, Path};
use crate::error::ApiError;
use crate::protocol::{ErrorBody, IdentifyRequest, IdentifyResponse, VerifyRequest, VerifyResponse};

/// 1:1 verification of a probe against a subject. An unknown subject is answered like a
/// non-match and counted against the same attempt limit.
#[utoipa::path(post, path = "/v1/subjects/{id}/verify", tag = "matching",
    params(("id" = String, Path, description = "Subject id")),
    request_body = VerifyRequest,
    responses((status = 200, body = VerifyResponse),
              (status = 429, body = ErrorBody, description = "Locked after too many failures; see Retry-After"),
              (status = 503, body = ErrorBody, description = "No threshold set")),
    security(("bearer" = [])))]
pub async fn verify_probe(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Json(req): Json<VerifyRequest>,
) -> Result<Json<VerifyResponse>, ApiError> {
    Ok(Json(state.service.verify(&who, &id, &req.template).await?))
}

/// 1:N identification: the top-k subjects above the threshold (never a locked one).
#[utoipa::path(post, path = "/v1/identify", tag = "matching", request_body = IdentifyRequest,
    responses((status = 200, body = IdentifyResponse), (status = 400, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "This token is locked after too many searches that found nobody"),
              (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn identify_probe(
    State(state): State<AppState>,
    Caller(who): Caller,
    Json(req): Json<IdentifyRequest>,
) -> Result<Json<IdentifyResponse>, ApiError> {
    Ok(Json(state.service.identify(&who, &req.template, req.k).await?))
}
