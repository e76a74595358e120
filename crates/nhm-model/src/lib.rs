//! nhm-model: the encoder network, metric-learning losses, training loop and checkpoints.
//!
//! The encoder is a small CNN (burn 0.22, `flex` CPU backend by default, CUDA with the `cuda`
//! feature) that turns a grayscale sample into an L2-normalised embedding (DESIGN.md §1–§3).
//! [`train`] fits it with a contrastive, ArcFace or supervised-contrastive loss on P×K batches,
//! validates on held-out subjects by EER each epoch, keeps the best weights, stops early, and
//! checkpoints after each epoch so that a run can be resumed with the same result.
#![deny(missing_docs)]

mod bench;
mod config;
mod decoder;
mod encoder;
mod error;
pub mod face;
pub mod fed;
mod hardening;
mod loss;
mod net;
mod pipeline;
mod train;
mod whitening;

pub use bench::{benchmark, Throughput};
pub use config::{EncoderConfig, LossKind, TrainConfig, ENCODER_BASE_TOML, ENCODER_SMALL_TOML};
pub use decoder::{Decoder, DecoderConfig, DecoderSample, DecoderTrainConfig};
pub use encoder::{compute_device, CheckpointMeta, Encoder, EMBED_BATCH, HEADER_FILE, WEIGHTS_FILE};
pub use error::{Error, Result};
pub use hardening::{harden_against_inversion, HardeningConfig, HardeningEvent};
pub use pipeline::{ClientModel, ClientPipeline, Embedder, PreparedSample, FAILURE_TO_ACQUIRE};
pub use train::{train, training_progress, EpochStats, TrainEvent, TrainOutcome, TrainingProgress, LAST_DIR};
pub use whitening::{Whitening, WhiteningSpec, WHITENING_FILE};
