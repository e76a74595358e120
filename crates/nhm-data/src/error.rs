//! The error type of this crate.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while generating, reading or preparing samples.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A dataset folder does not exist or is not a folder.
    #[error("dataset folder {path} does not exist or is not a folder")]
    MissingFolder {
        /// The folder that was asked for.
        path: PathBuf,
    },
    /// A folder holds no usable sample at all.
    #[error("no usable samples in {path}: {reason}")]
    Empty {
        /// The folder that was read.
        path: PathBuf,
        /// Why nothing could be used (for example every file was skipped).
        reason: String,
    },
    /// The folder's layout matches none of the known dataset layouts.
    #[error("cannot recognise the dataset layout of {path}: {reason}")]
    UnknownLayout {
        /// The folder that was read.
        path: PathBuf,
        /// What was looked for and not found.
        reason: String,
    },
    /// An image file could not be decoded (corrupt, truncated or unsupported).
    #[error("cannot decode image {path}: {source}")]
    Decode {
        /// The file that failed.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
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
    /// An image could not be encoded or written.
    #[error("cannot write image {path}: {source}")]
    Encode {
        /// The file that failed.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
    /// A user-given naming rule ([`crate::loaders::NamingRule`]) cannot be parsed.
    #[error("invalid naming rule {rule:?}: {reason}")]
    InvalidNaming {
        /// The rule as given.
        rule: String,
        /// What is wrong with it (no `{subject}`, an unbalanced brace, a bad regular expression, ...).
        reason: String,
    },
    /// A parameter is out of its valid range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// Which parameter.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// Wraps an i/o error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
