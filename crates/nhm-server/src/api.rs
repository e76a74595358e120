//! The HTTP API under `/v1`: handlers, request/response types, the router and the OpenAPI
//! document. Templates travel as base64 of the nhm-template wire format.
//!
//! Enrolment policy: `POST /v1/subjects/{id}/templates` with `mode` `create` (default) answers
//! 409 when the subject exists; `append` adds templates; `replace` (or `PUT`) swaps them, e.g.
//! after the client re-keyed. A write is acknowledged only after the store committed it.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use nhm_template::{Hashmap, Threshold};
use rand::SeedableRng as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::{Principal, Role};
use crate::error::{error_response, ApiError, ErrorBody};
use crate::state::{AppState, META_THRESHOLD};
use crate::store::{SubjectInfo, WriteMode};

/// JSON body extractor whose rejections become [`ApiError`]s (400, or 413 over the body limit).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// The authenticated caller (from `Authorization: Bearer <token>`).
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .ok_or(ApiError::Unauthorized)?;
        state
            .inner
            .tokens
            .authenticate(token.trim())
            .map(Caller)
            .ok_or(ApiError::Unauthorized)
    }
}

/// The token of an `Authorization` value whose scheme is `Bearer`, in any letter case (RFC 7235:
/// auth schemes are case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

impl Caller {
    fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.0.role.allows(role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "token {:?} lacks the {role:?} role",
                self.0.name
            )))
        }
    }
}

/// Body of an enrolment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// One or more hashmaps, base64 of the wire format.
    pub templates: Vec<String>,
    /// What to do when the subject exists (default `create`: 409).
    #[serde(default)]
    pub mode: WriteMode,
}

/// Body of a template replacement (`PUT`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceRequest {
    /// The new hashmaps, base64 of the wire format.
    pub templates: Vec<String>,
}

/// Answer to an enrolment: the subject's metadata after the write.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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

impl From<SubjectInfo> for SubjectResponse {
    fn from(i: SubjectInfo) -> Self {
        SubjectResponse {
            id: i.id,
            templates: i.templates,
            created: i.created,
            updated: i.updated,
            hashmaps: None,
        }
    }
}

/// A probe.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The probe hashmap, base64 of the wire format.
    pub template: String,
}

/// A 1:1 decision.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyResponse {
    /// Whether the probe matches the subject at the configured threshold.
    #[serde(rename = "match")]
    pub matched: bool,
    /// The fused similarity, only when the server returns scores.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub score: Option<f64>,
}

fn default_k() -> usize {
    5
}

/// A 1:N search.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifyRequest {
    /// The probe hashmap, base64 of the wire format.
    pub template: String,
    /// Most candidates to return (default 5).
    #[serde(default = "default_k")]
    pub k: usize,
}

/// One identification candidate.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CandidateResponse {
    /// Subject id.
    pub subject: String,
    /// Its fused similarity, only when the server returns scores.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub score: Option<f64>,
}

/// The subjects above the threshold, best first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IdentifyResponse {
    /// Candidates, best first (at most `k`).
    pub candidates: Vec<CandidateResponse>,
}

/// Paging of the subject list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Return subjects with ids after this one (the previous page's `next`).
    pub after: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// A page of subjects.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListResponse {
    /// Subjects in id order.
    pub subjects: Vec<SubjectResponse>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next: Option<String>,
}

/// Options of the subject metadata request.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SubjectQuery {
    /// Include the stored templates (admin only).
    #[serde(default)]
    pub include_templates: bool,
}

/// Options of the negatives relay.
#[derive(Debug, Deserialize, IntoParams)]
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
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RelayResponse {
    /// Base64 hashmaps (peppered as stored when the server has a pepper).
    pub hashmaps: Vec<String>,
}

/// The decision threshold, chosen for a target FMR on a development split.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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

/// Health answer. It says nothing about the gallery: anyone may ask, and the number of enrolled
/// subjects is for the admin's `/metrics`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always "ok" when the server answers.
    pub status: String,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn check_subject_id(id: &str) -> Result<(), ApiError> {
    // `.` and `..` are path segments, not names: as ids they would make URLs that mean something else.
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "subject id {id:?} must be 1-128 characters of [A-Za-z0-9._:@-], and not `.` or `..`"
        )))
    }
}

/// Decodes and checks one template against the gallery's kind and dimension.
fn decode_template(state: &AppState, b64: &str) -> Result<Hashmap, ApiError> {
    let h = Hashmap::from_base64(b64.trim()).map_err(|e| ApiError::BadTemplate(e.to_string()))?;
    let cfg = state.config();
    if h.kind() != cfg.kind || h.dim() != cfg.dim {
        return Err(ApiError::WrongTemplate(format!(
            "template is {} of dim {}; this gallery takes {} of dim {}",
            h.kind(),
            h.dim(),
            cfg.kind,
            cfg.dim
        )));
    }
    Ok(h)
}

/// Decodes, checks and peppers a list of templates.
fn prepare_templates(state: &AppState, list: &[String]) -> Result<Vec<Hashmap>, ApiError> {
    if list.is_empty() {
        return Err(ApiError::BadRequest("at least one template is required".into()));
    }
    let max = state.config().max_templates_per_subject;
    if list.len() > max {
        return Err(ApiError::BadRequest(format!(
            "at most {max} templates per subject"
        )));
    }
    list.iter()
        .map(|b| Ok(state.pepper(decode_template(state, b)?)?))
        .collect()
}

fn threshold(state: &AppState) -> Result<Threshold, ApiError> {
    state.threshold().ok_or(ApiError::NoThreshold)
}

async fn write_subject(
    state: &AppState,
    id: &str,
    templates: Vec<Hashmap>,
    mode: WriteMode,
) -> Result<SubjectInfo, ApiError> {
    let inner = &state.inner;
    let _w = inner.write_lock.lock().await;
    if mode == WriteMode::Append {
        let have = inner
            .store
            .get_subject(id)
            .await?
            .map_or(0, |s| s.templates.len());
        let max = state.config().max_templates_per_subject;
        if have + templates.len() > max {
            return Err(ApiError::Conflict(format!(
                "subject would exceed {max} templates"
            )));
        }
    }
    // Durable first, then visible: the store write returns after its commit.
    let rec = inner.store.put_templates(id, templates, mode, now_secs()).await?;
    inner
        .index
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .set(id, &rec.templates)?;
    inner.lockouts.forget(id);
    Ok(rec.info)
}

/// Enrol templates for a subject.
#[utoipa::path(post, path = "/v1/subjects/{id}/templates", tag = "subjects",
    params(("id" = String, Path, description = "Subject id")),
    request_body = EnrolRequest,
    responses((status = 201, body = SubjectResponse, description = "Created (durable)"),
              (status = 200, body = SubjectResponse, description = "Appended or replaced (durable)"),
              (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn enrol_subject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<EnrolRequest>,
) -> Result<(StatusCode, Json<SubjectResponse>), ApiError> {
    caller.require(Role::Enrol)?;
    check_subject_id(&id)?;
    let templates = prepare_templates(&state, &req.templates)?;
    let info = write_subject(&state, &id, templates, req.mode).await?;
    let status = if info.created == info.updated && req.mode == WriteMode::Create {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info.into())))
}

/// Replace a subject's templates (after re-keying); creates the subject when absent.
#[utoipa::path(put, path = "/v1/subjects/{id}/templates", tag = "subjects",
    params(("id" = String, Path, description = "Subject id")),
    request_body = ReplaceRequest,
    responses((status = 200, body = SubjectResponse), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replace_templates(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<ReplaceRequest>,
) -> Result<Json<SubjectResponse>, ApiError> {
    caller.require(Role::Enrol)?;
    check_subject_id(&id)?;
    let templates = prepare_templates(&state, &req.templates)?;
    Ok(Json(
        write_subject(&state, &id, templates, WriteMode::Replace)
            .await?
            .into(),
    ))
}

/// Revoke a subject: delete all its templates.
#[utoipa::path(delete, path = "/v1/subjects/{id}", tag = "subjects",
    params(("id" = String, Path, description = "Subject id")),
    responses((status = 204, description = "Deleted (durable)"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_subject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Enrol)?;
    check_subject_id(&id)?;
    let inner = &state.inner;
    let _w = inner.write_lock.lock().await;
    if !inner.store.delete_subject(&id).await? {
        return Err(ApiError::NotFound(format!("subject {id:?} is not enrolled")));
    }
    inner.index.write().unwrap_or_else(|p| p.into_inner()).remove(&id);
    inner.lockouts.forget(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// A subject's metadata (templates only for admins who ask).
#[utoipa::path(get, path = "/v1/subjects/{id}", tag = "subjects",
    params(("id" = String, Path, description = "Subject id"), SubjectQuery),
    responses((status = 200, body = SubjectResponse), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_subject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<SubjectQuery>,
) -> Result<Json<SubjectResponse>, ApiError> {
    caller.require(Role::Enrol)?;
    if q.include_templates {
        caller.require(Role::Admin)?;
    }
    check_subject_id(&id)?;
    let rec = state
        .inner
        .store
        .get_subject(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("subject {id:?} is not enrolled")))?;
    let hashmaps = q
        .include_templates
        .then(|| rec.templates.iter().map(Hashmap::to_base64).collect());
    Ok(Json(SubjectResponse {
        hashmaps,
        ..rec.info.into()
    }))
}

/// List subjects, paged by id.
#[utoipa::path(get, path = "/v1/subjects", tag = "subjects", params(ListQuery),
    responses((status = 200, body = ListResponse)), security(("bearer" = [])))]
pub async fn list_subjects(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<ListResponse>, ApiError> {
    caller.require(Role::Enrol)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::BadRequest("limit must be in 1..=1000".into()));
    }
    let page = state.inner.store.list_subjects(q.after.as_deref(), limit).await?;
    let next = if page.len() == limit {
        page.last().map(|s| s.id.clone())
    } else {
        None
    };
    Ok(Json(ListResponse {
        subjects: page.into_iter().map(Into::into).collect(),
        next,
    }))
}

/// 1:1 verification of a probe against a subject.
#[utoipa::path(post, path = "/v1/subjects/{id}/verify", tag = "matching",
    params(("id" = String, Path, description = "Subject id")),
    request_body = VerifyRequest,
    responses((status = 200, body = VerifyResponse), (status = 404, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "Locked after too many failures; see Retry-After"),
              (status = 503, body = ErrorBody, description = "No threshold set")),
    security(("bearer" = [])))]
pub async fn verify_probe(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<VerifyRequest>,
) -> Result<Json<VerifyResponse>, ApiError> {
    caller.require(Role::Verify)?;
    check_subject_id(&id)?;
    let probe = state.pepper(decode_template(&state, &req.template)?)?;
    let thr = threshold(&state)?;
    let inner = &state.inner;
    if !inner
        .index
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&id)
    {
        return Err(ApiError::NotFound(format!("subject {id:?} is not enrolled")));
    }
    let attempt = inner
        .lockouts
        .begin(&id, Instant::now())
        .map_err(ApiError::TooManyAttempts)?;
    let fusion = inner.config.fusion.into();
    let score = inner
        .index
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .verify(&id, &probe, fusion);
    let score = match score {
        Ok(Some(s)) => s,
        Ok(None) => {
            // Revoked between the check and the match: not a failed attempt.
            inner.lockouts.finish(attempt, true, Instant::now());
            return Err(ApiError::NotFound(format!("subject {id:?} is not enrolled")));
        }
        Err(e) => {
            inner.lockouts.finish(attempt, true, Instant::now());
            return Err(e.into());
        }
    };
    let matched = thr.accepts(score);
    if inner.lockouts.finish(attempt, matched, Instant::now()) {
        tracing::warn!(subject = %id, caller = %caller.0.name, "subject locked after failed verifications");
    }
    let score = inner.config.return_scores.then_some(score);
    Ok(Json(VerifyResponse { matched, score }))
}

/// 1:N identification: the top-k subjects above the threshold.
#[utoipa::path(post, path = "/v1/identify", tag = "matching", request_body = IdentifyRequest,
    responses((status = 200, body = IdentifyResponse), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn identify_probe(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<IdentifyRequest>,
) -> Result<Json<IdentifyResponse>, ApiError> {
    caller.require(Role::Verify)?;
    let max_k = state.config().max_identify_k;
    if req.k == 0 || req.k > max_k {
        return Err(ApiError::BadRequest(format!("k must be in 1..={max_k}")));
    }
    let probe = state.pepper(decode_template(&state, &req.template)?)?;
    let thr = threshold(&state)?;
    let inner = &state.inner;
    let fusion = inner.config.fusion.into();
    let found = inner
        .index
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .identify(&probe, req.k, fusion)?;
    let return_scores = inner.config.return_scores;
    let candidates = found
        .into_iter()
        .filter(|c| thr.accepts(c.score))
        .map(|c| CandidateResponse {
            subject: c.subject,
            score: return_scores.then_some(c.score),
        })
        .collect();
    Ok(Json(IdentifyResponse { candidates }))
}

/// The negatives relay (federated training): other subjects' hashmaps, one per sampled subject.
#[utoipa::path(get, path = "/v1/relay/negatives", tag = "training", params(RelayQuery),
    responses((status = 200, body = RelayResponse), (status = 404, body = ErrorBody, description = "Relay disabled")),
    security(("bearer" = [])))]
pub async fn relay_negatives(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<RelayQuery>,
) -> Result<Json<RelayResponse>, ApiError> {
    caller.require(Role::Enrol)?;
    let cfg = state.config();
    if !cfg.relay_enabled {
        return Err(ApiError::NotFound(
            "the negatives relay is disabled on this server".into(),
        ));
    }
    if q.n == 0 || q.n > cfg.relay_max_n {
        return Err(ApiError::BadRequest(format!(
            "n must be in 1..={}",
            cfg.relay_max_n
        )));
    }
    let mut rng = match q.seed {
        Some(s) => rand_chacha::ChaCha8Rng::seed_from_u64(s),
        None => rand_chacha::ChaCha8Rng::from_entropy(),
    };
    let ids = state
        .inner
        .index
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .sample_subjects(&mut rng, q.n, q.exclude.as_deref());
    let mut hashmaps = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(rec) = state.inner.store.get_subject(&id).await? {
            if let Some(t) = rec.templates.first() {
                hashmaps.push(t.to_base64());
            }
        }
    }
    Ok(Json(RelayResponse { hashmaps }))
}

/// The decision threshold in force.
#[utoipa::path(get, path = "/v1/admin/threshold", tag = "admin",
    responses((status = 200, body = ThresholdBody), (status = 503, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_threshold(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ThresholdBody>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(threshold(&state)?.into()))
}

/// Sets the decision threshold (stored with the gallery).
#[utoipa::path(put, path = "/v1/admin/threshold", tag = "admin", request_body = ThresholdBody,
    responses((status = 200, body = ThresholdBody), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn put_threshold(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ThresholdBody>,
) -> Result<Json<ThresholdBody>, ApiError> {
    caller.require(Role::Admin)?;
    let sane = |x: f64| x.is_finite() && (0.0..=1.0).contains(&x);
    if !body.score.is_finite() || !sane(body.target_fmr) || !sane(body.measured_fmr) {
        return Err(ApiError::BadRequest(
            "score must be finite; FMRs must be in [0, 1]".into(),
        ));
    }
    let t = Threshold {
        score: body.score,
        target_fmr: body.target_fmr,
        measured_fmr: body.measured_fmr,
        impostor_comparisons: body.impostor_comparisons,
    };
    state
        .config()
        .check_threshold(&t)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let json = serde_json::to_string(&t).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    state.inner.store.put_meta(META_THRESHOLD, &json).await?;
    *state.inner.threshold.write().unwrap_or_else(|p| p.into_inner()) = Some(t);
    Ok(Json(t.into()))
}

/// Liveness and gallery size; needs no token.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// Prometheus metrics (admin token, unless `metrics_public`).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text")),
    security(("bearer" = [])))]
pub async fn metrics(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
) -> Result<Response, ApiError> {
    if !state.config().metrics_public {
        caller?.require(Role::Admin)?;
    }
    let inner = &state.inner;
    let text = inner.metrics.render(
        state.subjects(),
        inner.lockouts.total(),
        inner.lockouts.locked_now(Instant::now()),
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// The OpenAPI document of this API: public, as API documents are (it holds no secret).
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "Neural Hashmaps service", description = "Stores and matches protected biometric templates (hashmaps); never sees a biometric."),
    paths(enrol_subject, replace_templates, delete_subject, get_subject, list_subjects, verify_probe,
          identify_probe, relay_negatives, get_threshold, put_threshold, healthz, metrics),
    components(schemas(EnrolRequest, ReplaceRequest, SubjectResponse, VerifyRequest, VerifyResponse,
                       IdentifyRequest, IdentifyResponse, CandidateResponse, ListResponse, RelayResponse,
                       ThresholdBody, Health, ErrorBody, crate::error::ErrorDetail, WriteMode)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let resp = next.run(req).await;
    state
        .inner
        .metrics
        .observe(&method, &route, resp.status().as_u16(), start.elapsed());
    resp
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such route".into())
}

/// Rewrites the timeout layer's bare 408 into the standard error body.
async fn timeout_body(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.status() == StatusCode::REQUEST_TIMEOUT {
        return error_response(StatusCode::REQUEST_TIMEOUT, "timeout", "request timed out".into());
    }
    resp
}

/// The whole HTTP application over a state (also what tests drive in-process).
pub fn app(state: AppState) -> Router {
    let cfg = state.config();
    let timeout = std::time::Duration::from_millis(cfg.request_timeout_ms);
    Router::new()
        .route("/v1/subjects", get(list_subjects))
        .route("/v1/subjects/{id}", get(get_subject).delete(delete_subject))
        .route(
            "/v1/subjects/{id}/templates",
            post(enrol_subject).put(replace_templates),
        )
        .route("/v1/subjects/{id}/verify", post(verify_probe))
        .route("/v1/identify", post(identify_probe))
        .route("/v1/relay/negatives", get(relay_negatives))
        .route("/v1/admin/threshold", get(get_threshold).put(put_threshold))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(cfg.body_limit_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(middleware::from_fn(timeout_body))
        .with_state(state)
}
