//! The error type of this crate.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while building, training, saving or running an encoder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of its valid range.
    #[error("invalid configuration {name}: {reason}")]
    InvalidConfig {
        /// Which setting.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An image given to the encoder is not `expected`×`expected` pixels.
    #[error("input image is {}x{} pixels, the encoder expects {expected}x{expected}", found.0, found.1)]
    InputSize {
        /// The side the encoder was built for.
        expected: usize,
        /// (width, height) of the offending image.
        found: (u32, u32),
    },
    /// Stored weights do not fit the network described by the stored configuration.
    #[error("weights do not match the encoder configuration: tensor {tensor}: {detail}")]
    ConfigMismatch {
        /// The tensor path (e.g. `blocks.0.conv.weight`), or `*` when the problem is global.
        tensor: String,
        /// What differs: shapes, or a tensor missing on one side.
        detail: String,
    },
    /// A checkpoint file is absent.
    #[error("checkpoint file {path} is missing")]
    MissingFile {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// A weight or optimizer file could not be encoded or decoded.
    #[error("cannot read or write weights {path}: {reason}")]
    Weights {
        /// The file concerned.
        path: PathBuf,
        /// The storage layer's message.
        reason: String,
    },
    /// A file or folder could not be read or written.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A TOML configuration file could not be parsed.
    #[error("cannot parse TOML {path}: {source}")]
    Toml {
        /// The file read.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: toml::de::Error,
    },
    /// A configuration could not be written as TOML.
    #[error("cannot serialise configuration as TOML: {source}")]
    TomlWrite {
        /// The serialiser's error.
        #[source]
        source: toml::ser::Error,
    },
    /// A JSON checkpoint header could not be parsed or written.
    #[error("bad JSON in {path}: {source}")]
    Json {
        /// The file concerned.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A dataset cannot feed training: too few subjects or samples.
    #[error("dataset unusable for {purpose}: {reason}")]
    Dataset {
        /// "training" or "validation".
        purpose: &'static str,
        /// What is missing.
        reason: String,
    },
    /// A resume checkpoint was made with other settings than this run.
    #[error("cannot resume from {path}: {reason}")]
    Resume {
        /// The checkpoint folder.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// The loss became NaN or infinite (learning rate too high, or bad data).
    #[error("training diverged at epoch {epoch}, step {step}: loss is {loss}")]
    Diverged {
        /// Epoch (1-based).
        epoch: usize,
        /// Step within the epoch (0-based).
        step: usize,
        /// The non-finite loss.
        loss: f32,
    },
    /// The compute backend failed (reading results back from the device).
    #[error("compute backend error: {reason}")]
    Backend {
        /// The backend's message.
        reason: String,
    },
    /// An error from the data crate (augmentation, datasets).
    #[error(transparent)]
    Data(#[from] nhm_data::Error),
    /// An image holds no face the face model can use.
    #[error("{}: {problem}", path.display())]
    NoUsableFace {
        /// The image file.
        path: PathBuf,
        /// What was (not) found.
        problem: crate::face::FaceProblem,
    },
    /// An error from the metrics crate (validation EER).
    #[error(transparent)]
    Eval(#[from] nhm_eval::Error),
    /// An error from the template crate (the keyed transform of the client pipeline).
    #[error(transparent)]
    Template(#[from] nhm_template::Error),
    /// An error of the federated protocol's bookkeeping (simulation).
    #[error(transparent)]
    Federated(#[from] nhm_fed::FedError),
}

impl Error {
    /// Wraps an i/o error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            name,
            reason: reason.into(),
        }
    }
}
