//! Errors: [`Error`] for the library (stores, configuration, tokens) and [`ApiError`], the one
//! place that maps failures to HTTP status codes and to the `{"error": {"code", "message"}}` body.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Errors of the server library (not of one request: see [`ApiError`] for those).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The embedded database failed.
    #[error("embedded store: {context}")]
    Embedded {
        /// What the store was doing.
        context: &'static str,
        /// The redb error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// PostgreSQL failed (connection, query or migration).
    #[error("postgres: {context}")]
    Postgres {
        /// What the store was doing.
        context: String,
        /// The driver or pool error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A record read back from a store does not decode (the store is corrupt or from another version).
    #[error("corrupt record for subject {subject:?}: {reason}")]
    CorruptRecord {
        /// The subject whose record is bad.
        subject: String,
        /// What is wrong.
        reason: String,
    },
    /// A template failed to decode or match.
    #[error("template: {0}")]
    Template(#[from] nhm_template::Error),
    /// Enrolment with `mode: create` for a subject that already exists.
    #[error("subject {0:?} already exists")]
    SubjectExists(String),
    /// A subject that is not enrolled.
    #[error("subject {0:?} is not enrolled")]
    UnknownSubject(String),
    /// A file (configuration, tokens, key, threshold) could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration, tokens or threshold file does not parse or is inconsistent.
    #[error("configuration: {0}")]
    Config(String),
    /// The store holds a gallery of another template kind, dimension or pepper than the
    /// configuration's: its templates would never match.
    #[error("gallery mismatch: {0}")]
    GalleryMismatch(String),
    /// The listening socket could not be bound, configured or served.
    #[error("{context}: {source}")]
    Socket {
        /// What was done (with the address).
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Federated training: the coordinator's model or state could not be read, written or built.
    #[error("federated training: {0}")]
    Fed(#[from] nhm_fed::FedError),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed request. Each variant documents its status code; internal errors are logged and
/// answered with a generic message, so no store detail leaks to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `bad_request`: malformed JSON, wrong field types, bad query.
    #[error("{0}")]
    BadRequest(String),
    /// 400 `bad_template`: bad base64, bad wire format, NaN/Inf in a dense template.
    #[error("{0}")]
    BadTemplate(String),
    /// 422 `wrong_template`: a well-formed template of another kind or dimension than the gallery's.
    #[error("{0}")]
    WrongTemplate(String),
    /// 401 `unauthorized`: no bearer token, or one that is not known.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// 403 `forbidden`: a known token whose role does not allow the request, or a disabled feature.
    #[error("{0}")]
    Forbidden(String),
    /// 404 `not_found`: unknown subject or route.
    #[error("{0}")]
    NotFound(String),
    /// 409 `conflict`: enrolment of a subject that exists (without `mode: append|replace`).
    #[error("{0}")]
    Conflict(String),
    /// 413 `payload_too_large`: the body exceeds the configured limit.
    #[error("request body exceeds the limit")]
    PayloadTooLarge,
    /// 429 `too_many_attempts`: the subject (verify) or the token (identify) is locked after
    /// consecutive failed attempts.
    #[error("too many failed attempts; retry after {} s", .0.as_secs())]
    TooManyAttempts(Duration),
    /// 503 `no_threshold`: matching needs a threshold chosen on a development split, and none is set.
    #[error("no decision threshold is configured (set one with PUT /v1/admin/threshold or in the config)")]
    NoThreshold,
    /// 500 `internal`: a store or task failure; details go to the log only.
    #[error("internal error")]
    Internal(#[source] Error),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::BadTemplate(_) => StatusCode::BAD_REQUEST,
            ApiError::WrongTemplate(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NoThreshold => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code sent in the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::BadTemplate(_) => "bad_template",
            ApiError::WrongTemplate(_) => "wrong_template",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::TooManyAttempts(_) => "too_many_attempts",
            ApiError::NoThreshold => "no_threshold",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::SubjectExists(s) => ApiError::Conflict(format!(
                "subject {s:?} is already enrolled; use mode \"append\" or \"replace\""
            )),
            Error::UnknownSubject(s) => ApiError::NotFound(format!("subject {s:?} is not enrolled")),
            other => ApiError::Internal(other),
        }
    }
}

/// A refused federated update or registration: 409 when it is about the round (another round,
/// not sampled, a second update), else 400; the message names the problem.
impl From<nhm_fed::Rejection> for ApiError {
    fn from(r: nhm_fed::Rejection) -> Self {
        use nhm_fed::Rejection as R;
        match r {
            R::WrongRound { .. } | R::NotSampled(_) | R::Duplicate(_) => ApiError::Conflict(r.to_string()),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(r.body_text())
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

pub use crate::protocol::{ErrorBody, ErrorDetail};

/// Builds an error response with the standard body (also used by middleware for 404/408).
pub(crate) fn error_response(status: StatusCode, code: &str, message: String) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message,
        },
    };
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %e, source = ?std::error::Error::source(e), "internal error");
        }
        let mut resp = error_response(self.status(), self.code(), self.to_string());
        if let ApiError::TooManyAttempts(wait) = &self {
            let secs = wait.as_secs().max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if let ApiError::Unauthorized = &self {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
