//! The JSON bodies of the federated endpoints (`/v1/fed/...`), shared by the service and the
//! client so that the two cannot drift apart.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::{ClientUpdate, Rejection, Weights};

/// `POST /v1/fed/join`: the caller's training hashmap under the current model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// Unit-norm training hashmap.
    pub hashmap: Vec<f32>,
}

/// `GET /v1/fed/status`: where training stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusResponse {
    /// Rounds closed so far (the model's version).
    pub rounds_closed: u64,
    /// The open round, if any.
    pub open_round: Option<u64>,
    /// The round after which the server stops opening rounds.
    pub max_rounds: u64,
    /// Registered clients.
    pub clients: usize,
    /// Training hashmap length.
    pub dim: usize,
    /// Whether the caller has a task in the open round.
    pub has_task: bool,
}

/// `GET /v1/fed/task`: the caller's work in the open round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskResponse {
    /// The round the update must name.
    pub round: u64,
    /// Other clients' training hashmaps, to push away from.
    pub negatives: Vec<Vec<f32>>,
    /// The caller's own hashmap as the server holds it (after any spreadout).
    #[serde(default)]
    pub own: Option<Vec<f32>>,
}

/// `POST /v1/fed/update`: a client's update for a round.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// The round it answers.
    pub round: u64,
    /// Samples trained on.
    pub samples: u32,
    /// The client's new training hashmap.
    pub hashmap: Vec<f32>,
    /// New weights minus the round's weights, safetensors, standard base64.
    pub delta: String,
}

impl UpdateRequest {
    /// The request for an update.
    pub fn from_update(u: &ClientUpdate) -> UpdateRequest {
        UpdateRequest {
            round: u.round,
            samples: u.samples,
            hashmap: u.hashmap.clone(),
            delta: base64::engine::general_purpose::STANDARD.encode(u.delta.to_safetensors()),
        }
    }

    /// The update it carries; bad base64 or bytes that are not safetensors are
    /// [`Rejection::Malformed`].
    pub fn into_update(self) -> Result<ClientUpdate, Rejection> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.delta.as_bytes())
            .map_err(|e| Rejection::Malformed(format!("delta is not base64: {e}")))?;
        let delta = Weights::from_safetensors(&bytes).map_err(|e| Rejection::Malformed(e.to_string()))?;
        Ok(ClientUpdate {
            round: self.round,
            delta,
            samples: self.samples,
            hashmap: self.hashmap,
        })
    }
}
