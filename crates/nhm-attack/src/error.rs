//! The error type of this crate.

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop an attack run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Making or matching a hashmap failed.
    #[error(transparent)]
    Template(#[from] nhm_template::Error),
    /// The white-box encoder (or a network trained against it) failed.
    #[error(transparent)]
    Model(#[from] nhm_model::Error),
    /// A metric could not be computed.
    #[error(transparent)]
    Eval(#[from] nhm_eval::Error),
    /// A parameter is out of its valid range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// Which parameter.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A population is too small for the attack's protocol.
    #[error("{which} has {got} subjects with at least {min_samples} samples; the attack needs {need}")]
    TooFewSubjects {
        /// "victims" or "public".
        which: &'static str,
        /// Subjects found.
        got: usize,
        /// Subjects needed.
        need: usize,
        /// Samples a subject needs to count.
        min_samples: usize,
    },
    /// The service under attack answered in a way the attack cannot use.
    #[error("the service under attack failed: {0}")]
    Oracle(String),
}
