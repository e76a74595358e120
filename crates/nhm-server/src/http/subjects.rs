//! Subjects: enrol, replace, revoke, read, list.
//!
//! Enrolment policy: `POST /v1/subjects/{id}/templates` with `mode` `create` (default) answers
//! 409 when the subject exists; `append` adds templates; `replace` (or `PUT`) swaps them, e.g.
//! after the client re-keyed. A write is acknowledged only after the store committed it.

use axum::extract::State;
use axum::http::StatusCode;

use super::{AppState, Caller, Json, Path, Query};
use crate::error::ApiError;
use crate::protocol::{
    EnrolRequest, ErrorBody, ListQuery, ListResponse, ReplaceRequest, SubjectQuery, SubjectResponse,
};
use crate::store::WriteMode;

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
    Caller(who): Caller,
    Path(id): Path<String>,
    Json(req): Json<EnrolRequest>,
) -> Result<(StatusCode, Json<SubjectResponse>), ApiError> {
    let (info, created) = state.service.write(&who, &id, &req.templates, req.mode).await?;
    let status = if created {
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
    Caller(who): Caller,
    Path(id): Path<String>,
    Json(req): Json<ReplaceRequest>,
) -> Result<Json<SubjectResponse>, ApiError> {
    let (info, _) = state
        .service
        .write(&who, &id, &req.templates, WriteMode::Replace)
        .await?;
    Ok(Json(info.into()))
}

/// Revoke a subject: delete all its templates.
#[utoipa::path(delete, path = "/v1/subjects/{id}", tag = "subjects",
    params(("id" = String, Path, description = "Subject id")),
    responses((status = 204, description = "Deleted (durable)"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_subject(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.delete(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A subject's metadata (templates only for admins who ask).
#[utoipa::path(get, path = "/v1/subjects/{id}", tag = "subjects",
    params(("id" = String, Path, description = "Subject id"), SubjectQuery),
    responses((status = 200, body = SubjectResponse), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_subject(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Query(q): Query<SubjectQuery>,
) -> Result<Json<SubjectResponse>, ApiError> {
    Ok(Json(state.service.subject(&who, &id, q.include_templates).await?))
}

/// List subjects, paged by id.
#[utoipa::path(get, path = "/v1/subjects", tag = "subjects", params(ListQuery),
    responses((status = 200, body = ListResponse)), security(("bearer" = [])))]
pub async fn list_subjects(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<ListResponse>, ApiError> {
    Ok(Json(state.service.list(&who, q.after.as_deref(), q.limit).await?))
}
