//! The service's wire types: every request and response body of the HTTP API, shared by the
//! server's handlers and by the client commands (`nhm client`, `nhm demo`), so that a renamed
//! field breaks the build, not a run. Templates travel as base64 of the nhm-template wire format.

use nhm_template::Threshold;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use crate::store::WriteMode;

/// Body of an enrolment (`POST /v1/subjects/{id}/templates`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// One or more hashmaps, base64 of the wire format.
    pub templates: Vec<String>,
    /// What to do when the subject exists (default `create`: 409).
    #[serde(default)]
    pub mode: WriteMode,
}

/// Body of a template replacement (`PUT /v1/subjects/{id}/templates`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceRequest {
    /// The new hashmaps, base64 of the wire format.
    pub templates: Vec<String>,
}

/// A subject's metadata after a write, or as read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubjectResponse {
    /// Subject id.
    pub id: String,
    /// Number of templates.
    pub templates: usize,
    /// First enrolment (Unix seconds).
    pub created: u64,
    /// Last change (Unix seconds).
    pub updated: u64,
    /// The stored (peppered) templates: only for admins who asked with `?include_templates=true`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hashmaps: Option<Vec<String>>,
}

impl From<crate::store::SubjectInfo> for SubjectResponse {
    fn from(i: crate::store::SubjectInfo) -> Self {
        SubjectResponse {
            id: i.id,
            templates: i.templates,
            created: i.created,
            updated: i.updated,
            hashmaps: None,
        }
    }
}

/// A probe for 1:1 verification.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The probe hashmap, base64 of the wire format.
    pub template: String,
}

/// A 1:1 decision. An unknown subject gets the same answer as a non-match.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifyResponse {
    /// Whether the probe matches the subject at the configured threshold.
    #[serde(rename = "match")]
    pub matched: bool,
    /// The fused similarity, only when the server returns scores (and the subject exists).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub score: Option<f64>,
}

fn default_k() -> usize {
    5
}

/// A probe for 1:N identification.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifyRequest {
    /// The probe hashmap, base64 of the wire format.
    pub template: String,
    /// Most candidates to return (default 5).
    #[serde(default = "default_k")]
    pub k: usize,
}

/// One identification candidate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CandidateResponse {
    /// Subject id.
    pub subject: String,
    /// Its fused similarity, only when the server returns scores.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub score: Option<f64>,
}

/// The subjects above the threshold, best first (locked subjects are never returned).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IdentifyResponse {
    /// Candidates, best first (at most `k`).
    pub candidates: Vec<CandidateResponse>,
}

/// Paging of the subject list.
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Return subjects with ids after this one (the previous page's `next`).
    pub after: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// A page of subjects.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ListResponse {
    /// Subjects in id order.
    pub subjects: Vec<SubjectResponse>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next: Option<String>,
}

/// Options of the subject metadata request.
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SubjectQuery {
    /// Include the stored templates (admin only).
    #[serde(default)]
    pub include_templates: bool,
}

/// Options of the negatives relay.
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RelayQuery {
    /// How many hashmaps.
    pub n: usize,
    /// A subject whose hashmaps must not be returned (the caller's own).
    pub exclude: Option<String>,
    /// Seed of the sample (random when absent).
    pub seed: Option<u64>,
}

/// Other subjects' stored hashmaps (one per sampled subject), without their ids.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RelayResponse {
    /// Base64 hashmaps, peppered as stored (the relay needs a pepper).
    pub hashmaps: Vec<String>,
}

/// Answer to an accepted federated update (`POST /v1/fed/update`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct FedUpdateResponse {
    /// Always true (a refused update is an error response).
    pub accepted: bool,
}

/// The decision threshold, chosen for a target FMR on a development split.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct ThresholdBody {
    /// Accept when similarity >= score.
    pub score: f64,
    /// The false-match rate it was chosen for.
    pub target_fmr: f64,
    /// The false-match rate measured on the development split.
    pub measured_fmr: f64,
    /// Impostor comparisons behind the measurement.
    pub impostor_comparisons: usize,
}

impl From<Threshold> for ThresholdBody {
    fn from(t: Threshold) -> Self {
        ThresholdBody {
            score: t.score,
            target_fmr: t.target_fmr,
            measured_fmr: t.measured_fmr,
            impostor_comparisons: t.impostor_comparisons,
        }
    }
}

impl From<ThresholdBody> for Threshold {
    fn from(b: ThresholdBody) -> Self {
        Threshold {
            score: b.score,
            target_fmr: b.target_fmr,
            measured_fmr: b.measured_fmr,
            impostor_comparisons: b.impostor_comparisons,
        }
    }
}

/// Health answer. It says nothing about the gallery: anyone may ask, and the number of enrolled
/// subjects is for the admin's `/metrics`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always "ok" when the server answers.
    pub status: String,
}

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// `code` is stable and machine-readable; `message` is for people.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// One of `bad_request`, `bad_template`, `wrong_template`, `unauthorized`, `forbidden`,
    /// `not_found`, `method_not_allowed`, `conflict`, `payload_too_large`, `uri_too_long`,
    /// `too_many_attempts`, `no_threshold`, `internal`, `timeout`.
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
}
