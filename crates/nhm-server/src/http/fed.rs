//! Federated training: join, status, the global model, tasks and updates (`/v1/fed/...`).
//! The bodies are [`nhm_fed::wire`]'s, shared with the client.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use nhm_fed::wire::{JoinRequest, StatusResponse, TaskResponse, UpdateRequest};

use super::{AppState, Caller, Json};
use crate::error::ApiError;
use crate::protocol::{ErrorBody, FedUpdateResponse};

/// The header carrying the model's version (rounds closed) on `GET /v1/fed/model`.
pub const ROUND_HEADER: &str = "x-nhm-fed-round";

/// Registers the caller (its token's name) with its training hashmap, or replaces it.
#[utoipa::path(post, path = "/v1/fed/join", tag = "fed",
    request_body(content = Object, description = "`{\"hashmap\": [f32; dim]}`: the caller's training hashmap"),
    responses((status = 200, body = Object, description = "Status: rounds_closed, open_round, max_rounds, clients, dim, has_task"),
        (status = 400, body = ErrorBody, description = "Bad hashmap"),
        (status = 404, body = ErrorBody, description = "Federated training is off")),
    security(("bearer" = [])))]
pub async fn join(
    State(state): State<AppState>,
    Caller(who): Caller,
    Json(req): Json<JoinRequest>,
) -> Result<Json<StatusResponse>, ApiError> {
    Ok(Json(state.service.fed_join(&who, req).await?))
}

/// Where training stands, and whether the caller has a task in the open round.
#[utoipa::path(get, path = "/v1/fed/status", tag = "fed",
    responses((status = 200, body = Object, description = "rounds_closed, open_round, max_rounds, clients, dim, has_task"),
        (status = 404, body = ErrorBody, description = "Federated training is off")),
    security(("bearer" = [])))]
pub async fn status(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<StatusResponse>, ApiError> {
    Ok(Json(state.service.fed_status(&who).await?))
}

/// The global model, safetensors bytes; `x-nhm-fed-round` gives its version (rounds closed).
#[utoipa::path(get, path = "/v1/fed/model", tag = "fed",
    responses((status = 200, content_type = "application/octet-stream", description = "The model (safetensors)",
            headers(("x-nhm-fed-round" = u64, description = "Rounds closed"))),
        (status = 404, body = ErrorBody, description = "Federated training is off")),
    security(("bearer" = [])))]
pub async fn model(State(state): State<AppState>, Caller(who): Caller) -> Result<Response, ApiError> {
    let (round, bytes) = state.service.fed_model(&who).await?;
    let body = Body::from(Bytes::from_owner(SharedBytes(bytes)));
    let mut resp = ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response();
    resp.headers_mut()
        .insert(HeaderName::from_static(ROUND_HEADER), HeaderValue::from(round));
    Ok(resp)
}

/// The caller's task in the open round: `null` when it has none now.
#[utoipa::path(get, path = "/v1/fed/task", tag = "fed",
    responses((status = 200, body = Object, description = "`{\"round\", \"negatives\": [[f32]]}` or null"),
        (status = 404, body = ErrorBody, description = "Federated training is off")),
    security(("bearer" = [])))]
pub async fn task(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<Option<TaskResponse>>, ApiError> {
    Ok(Json(state.service.fed_task(&who).await?))
}

/// The caller's update for the open round (its own, larger body limit).
#[utoipa::path(post, path = "/v1/fed/update", tag = "fed",
    request_body(content = Object,
        description = "`{\"round\", \"samples\", \"hashmap\": [f32], \"delta\": base64 safetensors of new minus round weights}`"),
    responses((status = 200, body = FedUpdateResponse),
        (status = 400, body = ErrorBody, description = "Malformed, non-finite, bad hashmap or sample count"),
        (status = 409, body = ErrorBody, description = "Another round, not sampled, or a second update"),
        (status = 413, body = ErrorBody, description = "Over update_limit_bytes"),
        (status = 404, body = ErrorBody, description = "Federated training is off")),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Caller(who): Caller,
    Json(req): Json<UpdateRequest>,
) -> Result<Json<FedUpdateResponse>, ApiError> {
    state.service.fed_update(&who, req).await?;
    Ok(Json(FedUpdateResponse { accepted: true }))
}

/// The model bytes shared with the coordinator, without a copy.
struct SharedBytes(std::sync::Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
