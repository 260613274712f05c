//! The public status page (`/status`, its Atom feed, and the Statuspage v2 JSON under
//! `/api/v2/`): no key, read-only, rate-limited for all clients together, served from a page
//! built at most every few seconds. And the internal routes that change it: overrides and
//! maintenance windows (admin key), the status with its reasons (read key).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use ops_status::model::ComponentStatus;
use ops_status::render;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::openapi::{Cancelled, ComponentState, ErrorBody, InternalStatus, OverrideSet};
use crate::state::AppState;

/// No scripts, no frames, no forms; styles only inline (the page has no JavaScript at all).
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Every public request takes a token of its client's bucket (`status.rate-limit-per-second`,
/// bursts of twice that): the page is cheap, but never unbounded.
pub(crate) async fn rate_limit(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let per_second = state.running().config.status.rate_limit_per_second;
    // Per client address (the socket's: behind a proxy, the proxy's, shared by all).
    let who = req
        .extensions()
        .get::<crate::serve::Peer>()
        .map_or_else(|| "local".to_owned(), |p| crate::rate::client_key(p.0));
    match state.public_rate.check(&who, per_second, std::time::Instant::now()) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            state.metrics.record_rate_limited();
            let mut resp = (StatusCode::TOO_MANY_REQUESTS, "too many requests\n").into_response();
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
    }
}

fn with_headers(mut resp: Response, content_type: &'static str) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=5"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// The page, or a 503 without details (they go to the log): the public never sees the
/// server's internals.
async fn public_page(state: &AppState) -> Result<Arc<crate::state::PublicPage>, Response> {
    state.status_page().await.map_err(|_| {
        let mut resp =
            (StatusCode::SERVICE_UNAVAILABLE, "the status page is not available right now\n").into_response();
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        resp
    })
}

/// `GET /status`.
pub(crate) async fn page(State(state): State<Arc<AppState>>) -> Result<Response, Response> {
    let page = public_page(&state).await?;
    Ok(with_headers(page.html.clone().into_response(), "text/html; charset=utf-8"))
}

/// `GET /status/feed.atom`.
pub(crate) async fn feed(State(state): State<Arc<AppState>>) -> Result<Response, Response> {
    let page = public_page(&state).await?;
    Ok(with_headers(page.atom.clone().into_response(), "application/atom+xml; charset=utf-8"))
}

/// `GET /api/v2/{document}`: one of the Statuspage v2 documents.
pub(crate) async fn json_document(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
) -> Result<Response, Response> {
    if !render::JSON_DOCUMENTS.contains(&path.as_str()) {
        return Ok((
            StatusCode::NOT_FOUND,
            Json(json!({ "error": { "kind": "not-found", "message": "no such route" } })),
        )
            .into_response());
    }
    let page = public_page(&state).await?;
    let body = page.json.get(path.as_str()).cloned().unwrap_or_default();
    let mut resp = with_headers(body.into_response(), "application/json");
    // Status-page readers fetch the JSON from other origins.
    resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    Ok(resp)
}

/// `GET /api/v1/status`: the components with why they have their status (internal).
#[utoipa::path(get, path = "/api/v1/status", tag = "status",
    responses((status = 200, body = InternalStatus), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn internal(State(state): State<Arc<AppState>>) -> Result<Json<InternalStatus>, ApiError> {
    let board = state.board().await?;
    let current = board.current(Utc::now()).await?;
    let components = current
        .into_iter()
        .map(|(c, status, reason, since)| ComponentState { name: c.name, status, reason, since, checks: c.checks })
        .collect();
    let overrides = board.overrides().await?;
    let maintenances = board.maintenances().await?;
    Ok(Json(InternalStatus { components, overrides, maintenances }))
}

/// `{"component": "API", "status": "major_outage"}`, `"status": null` to clear.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OverrideBody {
    /// A component of `[[status.components]]`.
    component: String,
    /// The status shown instead of the derived one; `null` clears the override.
    status: Option<ComponentStatus>,
}

/// `POST /api/v1/status/overrides`.
#[utoipa::path(post, path = "/api/v1/status/overrides", tag = "status",
    request_body(content = OverrideBody, content_type = "application/json"),
    responses((status = 200, body = OverrideSet), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn set_override(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(b): Json<OverrideBody>,
) -> Result<Json<OverrideSet>, ApiError> {
    let board = state.board().await?;
    let cleared = board.set_override(&b.component, b.status, &crate::auth::actor(&headers), Utc::now()).await?;
    state.page_changed().await;
    Ok(Json(OverrideSet { component: b.component, status: b.status, cleared }))
}

/// `POST /api/v1/status/maintenances`.
#[utoipa::path(post, path = "/api/v1/status/maintenances", tag = "status",
    request_body(content = ops_status::build::MaintenanceRequest, content_type = "application/json"),
    responses((status = 201, body = ops_status::model::Maintenance), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn add_maintenance(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(b): Json<ops_status::build::MaintenanceRequest>,
) -> Result<(StatusCode, Json<ops_status::model::Maintenance>), ApiError> {
    let board = state.board().await?;
    let m = board.schedule_maintenance(&b, &crate::auth::actor(&headers), Utc::now()).await?;
    state.page_changed().await;
    Ok((StatusCode::CREATED, Json(m)))
}

/// `DELETE /api/v1/status/maintenances/{id}`.
#[utoipa::path(delete, path = "/api/v1/status/maintenances/{id}", tag = "status",
    params(("id" = String, Path, description = "The maintenance's id")),
    responses((status = 200, body = Cancelled), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn cancel_maintenance(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Cancelled>, ApiError> {
    let board = state.board().await?;
    board.cancel_maintenance(&id).await?;
    state.page_changed().await;
    Ok(Json(Cancelled { cancelled: id }))
}
