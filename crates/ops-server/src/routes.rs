//! The router and its thin handlers: extract, call one function, answer.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::auth::{Access, access_for, presented_key};
use crate::error::ApiError;
use crate::openapi::{ConfigAnswer, ErrorBody};
use crate::state::AppState;
use crate::{backups, checks, incidents, perf, runbooks, status};

/// The whole HTTP API over `state`.
pub fn app(state: Arc<AppState>) -> Router {
    let read = Router::new()
        .route("/api/v1/config", get(get_config))
        .route("/api/v1/backups", get(backups::list))
        .route("/api/v1/jobs/{id}", get(backups::job))
        .route("/api/v1/triage", get(checks::triage))
        .route("/api/v1/probes", get(checks::probes))
        .route("/api/v1/tls", get(checks::tls))
        .route("/api/v1/perf", get(perf::analyze))
        .route("/api/v1/runbooks", get(runbooks::list))
        .route("/api/v1/runbooks/{name}", get(runbooks::show))
        .route("/api/v1/runbooks/{name}/plan", post(runbooks::plan))
        .route("/api/v1/runs", get(runbooks::list_runs))
        .route("/api/v1/runs/{id}", get(runbooks::get_run))
        .route("/api/v1/incidents", get(incidents::list))
        .route("/api/v1/incidents/{id}", get(incidents::get))
        .route("/api/v1/incidents/{id}/report", get(incidents::report))
        .route("/api/v1/status", get(status::internal))
        .route("/api/v1/schedule", get(crate::scheduler::list))
        .route("/api/v1/schedule/{name}/runs", get(crate::scheduler::runs))
        .route("/api/v1/openapi.json", get(openapi_json));
    let admin = Router::new()
        .route("/api/v1/config/reload", post(reload_config))
        .route("/api/v1/backups", post(backups::start_backup))
        .route("/api/v1/backups/{id}/verify", post(backups::verify))
        .route("/api/v1/dr-tests", post(backups::dr_test))
        .route("/api/v1/restores", post(backups::restore))
        .route("/api/v1/actions", post(perf::act))
        .route("/api/v1/runbooks/{name}/runs", post(runbooks::start))
        .route("/api/v1/runs/{id}/approve", post(runbooks::approve))
        .route("/api/v1/incidents", post(incidents::open))
        .route("/api/v1/incidents/{id}/notes", post(incidents::note))
        .route("/api/v1/incidents/{id}/updates", post(incidents::update))
        .route("/api/v1/incidents/{id}/ack", post(incidents::ack))
        .route("/api/v1/incidents/{id}/resolve", post(incidents::resolve))
        .route("/api/v1/status/overrides", post(status::set_override))
        .route("/api/v1/status/maintenances", post(status::add_maintenance))
        .route("/api/v1/status/maintenances/{id}", axum::routing::delete(status::cancel_maintenance));
    // Alertmanager's webhook: its own keys, a bounded body.
    let webhook = Router::new()
        .route("/api/v1/alertmanager", post(crate::alerts::intake))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), require_webhook_key))
        .layer(axum::extract::DefaultBodyLimit::max(crate::alerts::MAX_BODY));
    // The public status page: no key, read-only, one rate limit for everyone.
    let public = Router::new()
        .route("/status", get(status::page))
        .route("/status/", get(status::page))
        .route("/status/feed.atom", get(status::feed))
        .route("/api/v2/{*document}", get(status::json_document))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), status::rate_limit));
    Router::new()
        .merge(read.route_layer(middleware::from_fn_with_state(Arc::clone(&state), require_read)))
        .merge(admin.route_layer(middleware::from_fn_with_state(Arc::clone(&state), require_admin)))
        .merge(webhook)
        .merge(public)
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), request_timeout))
        .with_state(state)
}

/// Default limit on one request, body included.
const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Bounds every request (reading a dripped body included); a job keeps running after its
/// 202, so only the synchronous routes can meet this.
async fn request_timeout(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let limit = state
        .running()
        .config
        .server
        .request_timeout_secs
        .map_or(DEFAULT_REQUEST_TIMEOUT, std::time::Duration::from_secs);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::RequestTimeout(limit).into_response(),
    }
}

/// The most of a non-JSON error body (an extractor's rejection) kept as the message.
const MAX_REJECTION_MESSAGE: usize = 1024;

/// Every error of an `/api/v1` route is the JSON error body the OpenAPI document promises:
/// axum's own rejections (a query that does not parse, a JSON body of the wrong type, a
/// method the route does not have) answer plain text, so they are rewrapped here, with the
/// same status and their text, cut short, as the message (a server error's text is logged,
/// and the caller gets only its status's reason).
async fn json_errors(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/v1/");
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !api || is_json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b[..b.len().min(MAX_REJECTION_MESSAGE)]).trim().to_owned(),
        Err(_) => String::new(),
    };
    let kind = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        s if s.is_server_error() => "internal",
        _ => "invalid-input",
    };
    // A server error's own text may name internals: it goes to the log, not the caller.
    let message = if status.is_server_error() {
        if !text.is_empty() {
            tracing::error!(status = status.as_u16(), error = %text, "a request failed inside the server");
        }
        status.canonical_reason().unwrap_or("error").to_owned()
    } else if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut out = (status, Json(json!({ "error": { "kind": kind, "message": message } }))).into_response();
    for name in [header::ALLOW, header::WWW_AUTHENTICATE, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// Takes one request from the key's budget (`server.rate-limit-per-second`).
fn rate_limited(state: &AppState, req: &Request) -> Option<Response> {
    let per_second = state.running().config.server.rate_limit_per_second.unwrap_or(crate::rate::DEFAULT_PER_SECOND);
    let who = crate::auth::fingerprint(presented_key(req.headers()).unwrap_or_default());
    state.rate.check(&who, per_second, std::time::Instant::now()).err().map(|wait| {
        state.metrics.record_rate_limited();
        ApiError::TooManyRequests(wait).into_response()
    })
}

fn access(state: &AppState, req: &Request) -> Access {
    let running = state.running();
    let server = &running.config.server;
    access_for(presented_key(req.headers()), &server.api_keys, &server.admin_keys)
}

async fn require_read(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match access(&state, &req) {
        Access::None => ApiError::Unauthenticated.into_response(),
        Access::Read | Access::Admin => match rate_limited(&state, &req) {
            Some(refused) => refused,
            None => next.run(req).await,
        },
    }
}

/// A key of `alertmanager.webhook-keys` (Alertmanager's `http_config.authorization`).
async fn require_webhook_key(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let running = state.running();
    let keys = running.config.alertmanager.as_ref().map(|a| a.webhook_keys.clone()).unwrap_or_default();
    match access_for(presented_key(req.headers()), &keys, &[]) {
        Access::None => ApiError::Unauthenticated.into_response(),
        Access::Read | Access::Admin => match rate_limited(&state, &req) {
            Some(refused) => refused,
            None => next.run(req).await,
        },
    }
}

async fn require_admin(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match access(&state, &req) {
        Access::None => ApiError::Unauthenticated.into_response(),
        Access::Read => ApiError::Forbidden.into_response(),
        Access::Admin => match rate_limited(&state, &req) {
            Some(refused) => refused,
            None => next.run(req).await,
        },
    }
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the config is wired and, if the stack is containerised (a compose project or
/// docker host is configured), the container engine answers: without it nothing else works.
async fn ready(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let running = state.running();
    let mut checks = Vec::new();
    let mut ok = true;
    match &running.context {
        Ok(ctx) => {
            checks.push(json!({ "name": "config", "status": "ok" }));
            let wants_docker = running.config.project.compose_project.is_some() || running.config.docker.host.is_some();
            if let (true, Some(rt)) = (wants_docker, &ctx.containers) {
                match rt.ping().await {
                    Ok(info) => checks.push(json!({ "name": "docker", "status": "ok", "version": info.version })),
                    Err(e) => {
                        ok = false;
                        checks.push(json!({ "name": "docker", "status": "critical", "message": e.message() }));
                    }
                }
            }
        }
        Err(e) => {
            ok = false;
            checks.push(json!({ "name": "config", "status": "critical", "message": e.message }));
        }
    }
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "status": if ok { "ready" } else { "not-ready" }, "checks": checks })))
}

/// The classic text format, or OpenMetrics when the scraper's `Accept` asks for it (as
/// Prometheus does, preferring it).
async fn metrics(State(state): State<Arc<AppState>>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("application/openmetrics-text"));
    let mut resp = state.metrics.encode_as(openmetrics).into_response();
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The running configuration, secrets as `***`.
#[utoipa::path(get, path = "/api/v1/config", tag = "config",
    responses((status = 200, body = ConfigAnswer<'static>), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn get_config(State(state): State<Arc<AppState>>) -> Response {
    let running = state.running();
    Json(ConfigAnswer { reloaded: None, config: &running.config }).into_response()
}

/// Re-reads the config file; a bad file is refused (422, located) and the running config kept.
#[utoipa::path(post, path = "/api/v1/config/reload", tag = "config",
    responses((status = 200, body = ConfigAnswer<'static>), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn reload_config(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let running = state.reload().map_err(ApiError::Config)?;
    tracing::info!("configuration reloaded");
    Ok(Json(ConfigAnswer { reloaded: Some(true), config: &running.config }).into_response())
}

/// This document: every `/api/v1` route, OpenAPI 3.1.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "config",
    responses((status = 200, description = "The OpenAPI document", body = Object), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn openapi_json() -> Json<&'static Value> {
    crate::openapi::answer()
}

async fn not_found() -> (StatusCode, Json<Value>) {
    (StatusCode::NOT_FOUND, Json(json!({ "error": { "kind": "not-found", "message": "no such route" } })))
}
