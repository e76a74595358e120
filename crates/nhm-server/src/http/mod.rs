//! The HTTP API under `/v1`: thin handlers over [`Service`], split by resource, plus the
//! extractors, middleware, router and OpenAPI document. Every rejection (of the body, the path,
//! the query, the method, a long URI, a timeout) is answered with the standard JSON error.
//!
//! - [`subjects`]: enrol, replace, revoke, read, list;
//! - [`matching`]: verify and identify;
//! - [`training`]: the negatives relay;
//! - [`fed`]: federated training (join, status, model, task, update);
//! - [`admin`]: the decision threshold;
//! - [`ops`]: health, metrics, the OpenAPI document.

pub mod admin;
pub mod fed;
pub mod matching;
pub mod ops;
pub mod subjects;
pub mod training;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use nhm_template::{Key, Threshold};
use serde::Serialize;

use crate::audit::AuditLog;
use crate::auth::{Principal, Tokens};
use crate::config::Config;
use crate::error::{error_response, ApiError, Result};
use crate::metrics::Metrics;
use crate::service::Service;
use crate::store::TemplateStore;

/// What every handler gets: the service, the tokens and the request metrics. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    service: Arc<Service>,
    tokens: Arc<Tokens>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Opens the service over `store` (see [`Service::open`]) with an audit trail in the file the
    /// configuration names (the log only when it names none).
    pub async fn new(
        config: Config,
        store: Arc<dyn TemplateStore>,
        tokens: Tokens,
        pepper: Option<&Key>,
    ) -> Result<AppState> {
        let audit = match &config.audit_log {
            Some(p) => AuditLog::open(p)?,
            None => AuditLog::log_only(),
        };
        let service = Service::open(config, store, pepper, audit).await?;
        Ok(AppState::from_service(Arc::new(service), tokens))
    }

    /// The HTTP state over an opened service.
    pub fn from_service(service: Arc<Service>, tokens: Tokens) -> AppState {
        AppState {
            service,
            tokens: Arc::new(tokens),
            metrics: Arc::default(),
        }
    }

    /// The service.
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        self.service.config()
    }

    /// Number of enrolled subjects.
    pub fn subjects(&self) -> usize {
        self.service.subjects()
    }

    /// The decision threshold, if one is set.
    pub fn threshold(&self) -> Option<Threshold> {
        self.service.threshold()
    }

    /// Applies other replicas' changes (see [`Service::sync_from_store`]).
    pub async fn sync_from_store(&self) -> Result<usize> {
        self.service.sync_from_store().await
    }
}

/// JSON body extractor whose rejections become [`ApiError`]s (400, or 413 over the body limit).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path extractor whose rejections are the standard 400.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Query extractor whose rejections are the standard 400.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// The authenticated caller (from `Authorization: Bearer <token>`). A request without a valid
/// token is refused with 401 and recorded in the audit trail.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let principal = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .and_then(|t| state.tokens.authenticate(t.trim()));
        match principal {
            Some(p) => Ok(Caller(p)),
            None => {
                let route = parts
                    .extensions
                    .get::<MatchedPath>()
                    .map_or_else(|| parts.uri.path().to_owned(), |m| m.as_str().to_owned());
                state.service.auth_failed(&route);
                Err(ApiError::Unauthorized)
            }
        }
    }
}

/// The token of an `Authorization` value whose scheme is `Bearer`, in any letter case (RFC 7235:
/// auth schemes are case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
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
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Neural Hashmaps service", description = "Stores and matches protected biometric templates (hashmaps); never sees a biometric."),
    paths(subjects::enrol_subject, subjects::replace_templates, subjects::delete_subject, subjects::get_subject,
          subjects::list_subjects, matching::verify_probe, matching::identify_probe, training::relay_negatives,
          fed::join, fed::status, fed::model, fed::task, fed::update,
          admin::get_threshold, admin::put_threshold, ops::healthz, ops::metrics),
    components(schemas(crate::protocol::EnrolRequest, crate::protocol::ReplaceRequest, crate::protocol::SubjectResponse,
                       crate::protocol::VerifyRequest, crate::protocol::VerifyResponse, crate::protocol::IdentifyRequest,
                       crate::protocol::IdentifyResponse, crate::protocol::CandidateResponse, crate::protocol::ListResponse,
                       crate::protocol::RelayResponse, crate::protocol::ThresholdBody, crate::protocol::Health,
                       crate::protocol::ErrorBody, crate::protocol::ErrorDetail, crate::store::WriteMode,
                       crate::protocol::FedUpdateResponse)),
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
        .metrics
        .observe(&method, &route, resp.status().as_u16(), start.elapsed());
    resp
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such route".into())
}

async fn method_not_allowed(req: Request) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// Rewrites the timeout layer's bare 408 into the standard error body.
async fn timeout_body(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.status() == StatusCode::REQUEST_TIMEOUT {
        return error_response(StatusCode::REQUEST_TIMEOUT, "timeout", "request timed out".into());
    }
    resp
}

/// Refuses URIs longer than the configured limit with the standard 414 (the HTTP parser's own
/// limit, far higher, answers without a body).
async fn uri_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let max = state.config().max_uri_bytes;
    let len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if len > max {
        return error_response(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request URI has {len} bytes; at most {max} are accepted"),
        );
    }
    next.run(req).await
}

/// The whole HTTP application over a state (also what tests drive in-process).
pub fn app(state: AppState) -> Router {
    let cfg = state.config();
    let timeout = std::time::Duration::from_millis(cfg.request_timeout_ms);
    let update_limit = cfg
        .fed
        .as_ref()
        .map_or(cfg.body_limit_bytes, |f| f.update_limit_bytes);
    Router::new()
        .route("/v1/subjects", get(subjects::list_subjects))
        .route(
            "/v1/subjects/{id}",
            get(subjects::get_subject).delete(subjects::delete_subject),
        )
        .route(
            "/v1/subjects/{id}/templates",
            post(subjects::enrol_subject).put(subjects::replace_templates),
        )
        .route("/v1/subjects/{id}/verify", post(matching::verify_probe))
        .route("/v1/identify", post(matching::identify_probe))
        .route("/v1/relay/negatives", get(training::relay_negatives))
        .route("/v1/fed/join", post(fed::join))
        .route("/v1/fed/status", get(fed::status))
        .route("/v1/fed/model", get(fed::model))
        .route("/v1/fed/task", get(fed::task))
        .route(
            "/v1/fed/update",
            // The inner limit wins over the router-wide one below.
            post(fed::update).layer(axum::extract::DefaultBodyLimit::max(update_limit)),
        )
        .route(
            "/v1/admin/threshold",
            get(admin::get_threshold).put(admin::put_threshold),
        )
        .route("/v1/openapi.json", get(ops::openapi_json))
        .route("/healthz", get(ops::healthz))
        .route(
            "/metrics",
            if cfg.metrics_public {
                get(ops::public_metrics)
            } else {
                get(ops::metrics)
            },
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(cfg.body_limit_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(middleware::from_fn(timeout_body))
        .layer(middleware::from_fn_with_state(state.clone(), uri_limit))
        .with_state(state)
}
