//! Incident routes: list and read (read key), open, note, update, acknowledge and resolve
//! (admin key), and the post-incident report. Bodies are small JSON documents, checked by the
//! library (lengths, control characters); ids are checked before the store is asked.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ops_core::ports::IncidentQuery;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// `?all=true`: resolved incidents too.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ListQuery {
    all: bool,
    limit: Option<usize>,
}

pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let (desk, _) = state.desk().await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let list = desk.list(&IncidentQuery { unresolved: !q.all, limit, ..Default::default() }).await?;
    Ok(Json(json!({ "incidents": list })))
}

pub(crate) async fn get(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let (desk, _) = state.desk().await?;
    Ok(Json(json!(desk.load(&id).await?)))
}

/// `?format=markdown` for the Markdown report; JSON otherwise.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ReportQuery {
    format: Option<String>,
}

pub(crate) async fn report(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let (desk, _) = state.desk().await?;
    let record = desk.load(&id).await?;
    let report = ops_incident::report::build(&record, chrono::Utc::now());
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(json!(report)).into_response()),
        Some("markdown" | "md") => {
            let mut resp = report.to_markdown().into_response();
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/markdown; charset=utf-8"));
            Ok(resp)
        }
        Some(_) => Err(ops_core::Error::invalid_input("format is json or markdown").into()),
    }
}

pub(crate) async fn open(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: ops_incident::OpenRequest = crate::error::json_body(&bytes)?;
    let (desk, _) = state.desk().await?;
    let record = desk.open(&request, &crate::auth::actor(&headers), chrono::Utc::now()).await?;
    state.page_changed().await;
    Ok((StatusCode::CREATED, Json(json!(record))))
}

/// `{"text": "…", "user_report": false}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct NoteBody {
    text: String,
    user_report: bool,
}

pub(crate) async fn note(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let b: NoteBody = crate::error::json_body(&bytes)?;
    let (desk, _) = state.desk().await?;
    let event = desk.note(&id, &b.text, b.user_report, &crate::auth::actor(&headers), chrono::Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(json!(event))))
}

/// `{"text": "…", "status": "monitoring"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct UpdateBody {
    text: String,
    status: Option<ops_incident::PublicStatus>,
}

pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let b: UpdateBody = crate::error::json_body(&bytes)?;
    let (desk, _) = state.desk().await?;
    let event = desk.update(&id, b.status, &b.text, &crate::auth::actor(&headers), chrono::Utc::now()).await?;
    state.page_changed().await;
    Ok((StatusCode::CREATED, Json(json!(event))))
}

pub(crate) async fn ack(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (desk, _) = state.desk().await?;
    let event = desk.acknowledge(&id, &crate::auth::actor(&headers), chrono::Utc::now()).await?;
    Ok(Json(json!(event)))
}

/// `{"text": "…"}` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ResolveBody {
    text: Option<String>,
}

pub(crate) async fn resolve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let b: ResolveBody = crate::error::json_body(&bytes)?;
    let (desk, _) = state.desk().await?;
    let event = desk.resolve(&id, b.text.as_deref(), &crate::auth::actor(&headers), chrono::Utc::now()).await?;
    state.page_changed().await;
    Ok(Json(json!(event)))
}
