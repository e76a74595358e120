//! Federated training: the negatives relay.

use axum::extract::State;

use super::{AppState, Caller, Json, Query};
use crate::error::ApiError;
use crate::protocol::{ErrorBody, RelayQuery, RelayResponse};

/// The negatives relay (federated training): other subjects' hashmaps, one per sampled subject.
#[utoipa::path(get, path = "/v1/relay/negatives", tag = "training", params(RelayQuery),
    responses((status = 200, body = RelayResponse), (status = 404, body = ErrorBody, description = "Relay disabled")),
    security(("bearer" = [])))]
pub async fn relay_negatives(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<RelayQuery>,
) -> Result<Json<RelayResponse>, ApiError> {
    Ok(Json(state.service.relay(&who, &q).await?))
}
