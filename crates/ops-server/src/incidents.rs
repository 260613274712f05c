//! Incident routes: list and read (read key), open, note, update, acknowledge and resolve
//! (admin key), and the post-incident report. Bodies are small JSON documents, checked by the
//! library (lengths, control characters); ids are checked before the store is asked.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ops_core::ports::IncidentQuery;
use ops_incident::{Event, IncidentRecord};
use serde::Deserialize;

use crate::error::ApiError;
use crate::openapi::{ErrorBody, IncidentList};
use crate::state::AppState;

/// `?all=true`: resolved incidents too.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Resolved incidents too.
    all: bool,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

/// Incidents, newest first: the open ones, or all.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(ListQuery),
    responses((status = 200, body = IncidentList), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<IncidentList>, ApiError> {
    let (desk, _) = state.desk().await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let list = desk.list(&IncidentQuery { unresolved: !q.all, limit, ..Default::default() }).await?;
    Ok(Json(IncidentList { incidents: list }))
}

/// One incident with its events.
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents", params(("id" = String, Path, description = "The incident's id")),
    responses((status = 200, body = IncidentRecord), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<IncidentRecord>, ApiError> {
    let (desk, _) = state.desk().await?;
    Ok(Json(desk.load(&id).await?))
}

/// `?format=markdown` for the Markdown report; JSON otherwise.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ReportQuery {
    /// `json` (default) or `markdown`.
    format: Option<String>,
}

/// The post-incident report: timeline, impact, root cause, what was done.
#[utoipa::path(get, path = "/api/v1/incidents/{id}/report", tag = "incidents", params(("id" = String, Path, description = "The incident's id"), ReportQuery),
    responses((status = 200, content((ops_incident::report::PostIncidentReport = "application/json"), (String = "text/markdown"))), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn report(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let (desk, _) = state.desk().await?;
    let record = desk.load(&id).await?;
    let report = ops_incident::report::build(&record, chrono::Utc::now());
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(report).into_response()),
        Some("markdown" | "md") => {
            let mut resp = report.to_markdown().into_response();
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/markdown; charset=utf-8"));
            Ok(resp)
        }
        Some(_) => Err(ops_core::Error::invalid_input("format is json or markdown").into()),
    }
}

/// Opens an incident by hand.
#[utoipa::path(post, path = "/api/v1/incidents", tag = "incidents",
    request_body(content = ops_incident::OpenRequest, content_type = "application/json"),
    responses((status = 201, body = IncidentRecord), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn open(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<IncidentRecord>), ApiError> {
    let request: ops_incident::OpenRequest = crate::error::json_body(&bytes)?;
    let (desk, _) = state.desk().await?;
    let record = desk.open(&request, &crate::auth::actor(&headers), chrono::Utc::now()).await?;
    state.page_changed().await;
    Ok((StatusCode::CREATED, Json(record)))
}

/// `{"text": "…", "user_report": false}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct NoteBody {
    /// The note (internal: never on the status page).
    text: String,
    /// What a user reported.
    user_report: bool,
}

/// An internal note on the incident's timeline.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/notes", tag = "incidents", params(("id" = String, Path, description = "The incident's id")),
    request_body(content = NoteBody, content_type = "application/json"),
    responses((status = 201, body = Event), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn note(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Event>), ApiError> {
    let b: NoteBody = crate::error::json_body(&bytes)?;
    let (desk, _) = state.desk().await?;
    let event = desk.note(&id, &b.text, b.user_report, &crate::auth::actor(&headers), chrono::Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(event)))
}

/// `{"text": "…", "status": "monitoring"}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct UpdateBody {
    /// The public update's text.
    text: String,
    /// The public status it moves to.
    status: Option<ops_incident::PublicStatus>,
}

/// A public update: on the status page and sent to the webhooks.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/updates", tag = "incidents", params(("id" = String, Path, description = "The incident's id")),
    request_body(content = UpdateBody, content_type = "application/json"),
    responses((status = 201, body = Event), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Event>), ApiError> {
    let b: UpdateBody = crate::error::json_body(&bytes)?;
    let (desk, _) = state.desk().await?;
    let event = desk.update(&id, b.status, &b.text, &crate::auth::actor(&headers), chrono::Utc::now()).await?;
    state.page_changed().await;
    Ok((StatusCode::CREATED, Json(event)))
}

/// Someone is on it: reminders stop.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/ack", tag = "incidents", params(("id" = String, Path, description = "The incident's id")),
    responses((status = 200, body = Event), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn ack(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Event>, ApiError> {
    let (desk, _) = state.desk().await?;
    let event = desk.acknowledge(&id, &crate::auth::actor(&headers), chrono::Utc::now()).await?;
    Ok(Json(event))
}

/// `{"text": "…"}` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ResolveBody {
    /// The resolution's public text.
    text: Option<String>,
}

/// Resolves the incident.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/resolve", tag = "incidents", params(("id" = String, Path, description = "The incident's id")),
    request_body(content = Option<ResolveBody>, content_type = "application/json"),
    responses((status = 200, body = Event), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn resolve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<Event>, ApiError> {
    let b: ResolveBody = crate::error::json_body(&bytes)?;
    let (desk, _) = state.desk().await?;
    let event = desk.resolve(&id, b.text.as_deref(), &crate::auth::actor(&headers), chrono::Utc::now()).await?;
    state.page_changed().await;
    Ok(Json(event))
}
