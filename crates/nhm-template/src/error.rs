//! The error type of this crate: one variant per way an input can be wrong, with typed fields.

use std::path::PathBuf;

use crate::HashmapKind;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `nhm-template`.
///
/// Decoding rejects malformed input with a variant of its own, so a server can say precisely
/// what was wrong with a template it was sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Key material was not exactly 32 bytes.
    #[error("a key is 32 bytes, found {found}")]
    KeyLength {
        /// Number of bytes given.
        found: usize,
    },
    /// A key file did not hold 64 hexadecimal characters (plus an optional newline).
    #[error("key file {path}: expected 64 hex characters and an optional newline, found {found} characters")]
    KeyFileLength {
        /// The key file.
        path: PathBuf,
        /// Number of characters found (after removing one trailing newline).
        found: usize,
    },
    /// A key file held a character that is not a hexadecimal digit.
    #[error("key file {path}: character {position} is not a hexadecimal digit")]
    KeyFileNotHex {
        /// The key file.
        path: PathBuf,
        /// Zero-based byte position of the first bad character.
        position: usize,
    },
    /// Refused to overwrite an existing file (keys are never silently replaced).
    #[error("{path} already exists; refusing to overwrite it")]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// Two objects that must have the same dimension do not.
    #[error("dimension mismatch: expected {expected}, found {found}")]
    DimensionMismatch {
        /// The dimension required.
        expected: usize,
        /// The dimension given.
        found: usize,
    },
    /// Two hashmaps of different kinds were compared, or a classifier got the wrong kind.
    #[error("hashmap kind mismatch: expected {expected}, found {found}")]
    KindMismatch {
        /// The kind required.
        expected: HashmapKind,
        /// The kind given.
        found: HashmapKind,
    },
    /// A dimension is zero, too large, or not a power of two where one is needed.
    #[error("invalid dimension {dim}: {reason}")]
    InvalidDimension {
        /// The dimension given.
        dim: usize,
        /// Why it is not allowed.
        reason: &'static str,
    },
    /// Encoded hashmap does not start with the magic bytes `NHM`.
    #[error("not a hashmap: bad magic bytes {found:02x?} (expected \"NHM\")")]
    BadMagic {
        /// The first bytes found (up to three).
        found: Vec<u8>,
    },
    /// Encoded hashmap has a format version this code does not read.
    #[error("unsupported hashmap format version {found} (this build reads version 1)")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
    },
    /// Encoded hashmap has an unknown kind byte.
    #[error("unknown hashmap kind byte {found} (0 = binary, 1 = dense)")]
    UnknownKind {
        /// The kind byte found.
        found: u8,
    },
    /// A hashmap kind name was neither `binary` nor `dense`.
    #[error("unknown hashmap kind {found:?} (expected \"binary\" or \"dense\")")]
    UnknownKindName {
        /// The name given.
        found: String,
    },
    /// Encoded hashmap is shorter than its header says.
    #[error("truncated hashmap: needed {needed} bytes, found {found}")]
    Truncated {
        /// Bytes the header calls for.
        needed: usize,
        /// Bytes given.
        found: usize,
    },
    /// Encoded hashmap is longer than its header says.
    #[error("{n} trailing bytes after the hashmap")]
    TrailingBytes {
        /// Number of extra bytes.
        n: usize,
    },
    /// A value is NaN or infinite.
    #[error("value {index} is not finite")]
    NonFinite {
        /// Index of the first non-finite value.
        index: usize,
    },
    /// A dense vector has zero length (norm), so no cosine can be taken.
    #[error("vector has zero norm")]
    ZeroNorm,
    /// A binary hashmap has bits set beyond its dimension in its last word.
    #[error("padding bits beyond the dimension are set")]
    PaddingBitsSet,
    /// A binary hashmap's word count does not fit its dimension.
    #[error("a {dim}-bit hashmap needs {expected} words, found {found}")]
    WordCount {
        /// The dimension in bits.
        dim: usize,
        /// Words needed.
        expected: usize,
        /// Words given.
        found: usize,
    },
    /// Base64 text could not be decoded.
    #[error("invalid base64")]
    Base64(#[source] base64::DecodeError),
    /// Reading or writing a file failed.
    #[error("I/O error on {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A threshold was asked for without any impostor scores.
    #[error("no impostor scores to choose a threshold from")]
    NoScores,
    /// A score is NaN or infinite.
    #[error("score {index} is not finite")]
    NonFiniteScore {
        /// Index of the first non-finite score.
        index: usize,
    },
    /// A target false-match rate outside [0, 1].
    #[error("target FMR {target} is not in [0, 1]")]
    InvalidFmr {
        /// The target given.
        target: f64,
    },
    /// A classifier was given no training samples.
    #[error("no training samples")]
    NoSamples,
    /// A training configuration value is out of range.
    #[error("invalid training configuration: {field} {reason}")]
    InvalidConfig {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}
