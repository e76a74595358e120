//! The crate's error type.

use std::path::PathBuf;

/// What went wrong in the federated protocol's bookkeeping (as opposed to a rejected update,
/// which is a [`crate::Rejection`] and leaves the round going).
#[derive(Debug, thiserror::Error)]
pub enum FedError {
    /// Bytes that should hold a model are not safetensors.
    #[error("model bytes are not safetensors: {0}")]
    NotSafetensors(String),
    /// A tensor is not 32-bit float.
    #[error("tensor {name:?} is {dtype}, not F32")]
    NotF32 {
        /// The tensor.
        name: String,
        /// Its stored type.
        dtype: String,
    },
    /// A model holds no tensor at all.
    #[error("the model holds no tensor")]
    Empty,
    /// A setting is out of range.
    #[error("invalid federated setting: {0}")]
    Config(String),
    /// No round is open, or the requested one is not.
    #[error("no round is open")]
    NoOpenRound,
    /// Too few clients have registered to sample a round.
    #[error("{have} clients registered, a round needs at least {need}")]
    TooFewClients {
        /// Clients registered.
        have: usize,
        /// Clients a round needs.
        need: usize,
    },
    /// A saved coordinator state could not be read or written.
    #[error("{path}: {reason}")]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The privacy accountant refused its input.
    #[error(transparent)]
    Accountant(#[from] crate::accountant::AccountantError),
}

/// The crate's result type.
pub type Result<T, E = FedError> = std::result::Result<T, E>;
