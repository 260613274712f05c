//! `GET /api/v1/perf` (read) and `POST /api/v1/actions` (admin): the analysis of `opsctl perf
//! analyze` and the guarded actions of `opsctl pg|redis|restart`, plan by default.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::ApiError;
use crate::openapi::{ActionAnswer, ActionBody, ErrorBody};
use crate::state::AppState;

fn context(state: &AppState) -> Result<ops_core::Context, ApiError> {
    Ok(state.context()?)
}

/// `?section=pg&section=redis&samples=5`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct PerfQuery {
    /// Comma-separated sections (`pg,redis`); all when absent.
    section: Option<String>,
    /// HTTP samples per endpoint.
    samples: Option<usize>,
}

/// `GET /api/v1/perf`: the whole report, as `opsctl perf analyze --json`.
#[utoipa::path(get, path = "/api/v1/perf", tag = "checks", params(PerfQuery),
    responses((status = 200, body = ops_perf::PerfReport), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn analyze(
    State(state): State<Arc<AppState>>,
    Query(q): Query<PerfQuery>,
) -> Result<Response, ApiError> {
    let sections = match &q.section {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| s.trim().parse::<ops_perf::Section>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| ApiError::Core(ops_core::Error::invalid_input(m)))?,
    };
    if let Some(n) = q.samples {
        ops_core::limits::check_range("samples", n, 1, ops_core::limits::MAX_HTTP_SAMPLES)?;
    }
    let opts = ops_perf::PerfOptions { sections, http_samples: q.samples };
    let report = state.perf(opts, crate::checks::not_before(false)).await?;
    Ok(Json(&*report).into_response())
}

/// Body of `POST /api/v1/actions`: the action (`{"action": "kill-idle", "older-than-secs":
/// 600}`) and whether to apply it. Unknown fields are refused (a `flatten` would accept them).
struct ActionRequest {
    action: ops_act::Action,
    apply: bool,
}

fn action_request(body: &[u8]) -> Result<ActionRequest, ApiError> {
    let (action, apply): (ops_act::Action, bool) = crate::backups::options_and_flag(body, "apply")?;
    action.validate()?;
    Ok(ActionRequest { action, apply })
}

/// `POST /api/v1/actions` (admin): the plan, or with `"apply": true` the result. The audit
/// log's actor names the key by a fingerprint, never the key.
#[utoipa::path(post, path = "/api/v1/actions", tag = "checks",
    request_body(content = ActionBody, content_type = "application/json"),
    responses((status = 200, body = ActionAnswer), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn act(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<ActionAnswer>, ApiError> {
    let req = action_request(&body)?;
    let mut ctx = context(&state)?;
    // A rollback reads the release ledger.
    ctx.state = state.state_store().await.ok();
    let plan = ops_act::plan(&ctx, &req.action).await?;
    if !req.apply || plan.targets.is_empty() {
        return Ok(Json(ActionAnswer { applied: false, plan: Some(plan), report: None }));
    }
    let report = ops_act::apply(&ctx, &plan, &crate::auth::actor(&headers)).await?;
    Ok(Json(ActionAnswer { applied: true, plan: None, report: Some(report) }))
}
