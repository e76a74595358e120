//! nhm-fed: federated training as the seed describes it, without any neural-network code.
//!
//! Each client holds one person's samples. In every round the [`Coordinator`] samples clients,
//! hands each the current model and a sample of *other* clients' current training hashmaps (the
//! relayed negatives), and aggregates the weight updates the clients send back (FedAvg weighted
//! by sample count, optional server momentum, outlier rejection, or clipped and noised updates
//! for user-level differential privacy, with the ε computed by [`accountant`]).
//!
//! Models travel as safetensors bytes ([`Weights`]), so this crate, and the HTTP service that
//! embeds it, never needs the network itself: local training lives in `nhm-model`.
#![deny(missing_docs)]

pub mod accountant;
mod config;
mod coordinator;
mod error;
mod weights;
pub mod wire;

pub use config::{DpConfig, FedConfig};
pub use coordinator::{ClientUpdate, Coordinator, EventCounts, Rejection, RoundSummary, Task};
pub use error::{FedError, Result};
pub use weights::Weights;
