//! The error type of this crate.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while measuring and reporting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A metric needs scores of both kinds and got none of one.
    #[error("no {which} scores: the metric needs at least one genuine and one impostor comparison")]
    NoScores {
        /// "genuine" or "impostor".
        which: &'static str,
    },
    /// A score is NaN or infinite.
    #[error("score {value} at position {index} is not a finite number")]
    NonFiniteScore {
        /// Position of the bad score.
        index: usize,
        /// The bad value.
        value: f64,
    },
    /// A file could not be written or read.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A parameter is out of its valid range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// Which parameter.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The per-template slices (templates, subject ids, sample indices) differ in length.
    #[error("{what} has {got} entries but there are {expected} templates")]
    LengthMismatch {
        /// Which slice is off.
        what: &'static str,
        /// Its length.
        got: usize,
        /// The number of templates.
        expected: usize,
    },
    /// Two templates claim the same subject and sample index.
    #[error("templates {first} and {second} are both subject {subject}, sample {sample}")]
    DuplicateSample {
        /// The subject id.
        subject: u32,
        /// The sample index.
        sample: u32,
        /// Position of the first template.
        first: usize,
        /// Position of the second template.
        second: usize,
    },
    /// A line of a score file could not be understood.
    #[error("{path}:{line}: {reason}")]
    ScoreFileLine {
        /// The file.
        path: PathBuf,
        /// The line number, counting from 1.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// A subject label cannot be written into a score file (it would break the format).
    #[error("label {label:?} of subject {subject} cannot be written to a {format} score file: {reason}")]
    BadLabel {
        /// The subject id.
        subject: u32,
        /// Its label.
        label: String,
        /// "csv" or "bob4".
        format: &'static str,
        /// Why not.
        reason: &'static str,
    },
    /// Drawing a plot failed.
    #[error("cannot draw {path}: {reason}")]
    Plot {
        /// The image being drawn.
        path: PathBuf,
        /// What the plotting library said.
        reason: String,
    },
    /// A report could not be encoded as JSON.
    #[error("cannot encode the report as JSON: {source}")]
    Json {
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// Wraps an i/o error with the path it concerns.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
