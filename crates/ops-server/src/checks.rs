//! `GET /api/v1/triage`, `GET /api/v1/probes`, `GET /api/v1/tls`: the checks of `opsctl
//! triage`, `opsctl probe` and `opsctl tls check`, as JSON.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::ApiError;
use crate::openapi::{ErrorBody, NamedError, ProbeList, TlsList};
use crate::state::AppState;

/// A triage younger than this is served again instead of re-running every probe.
const REUSE: Duration = Duration::from_secs(10);

/// Query of the check routes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct CheckQuery {
    /// Run now, even when a triage younger than 10 s exists.
    fresh: bool,
    /// `/api/v1/probes`: only probes of this kind (`http`, `container`).
    kind: Option<ops_probes::ProbeKind>,
    /// `/api/v1/probes`: only probes with this status (`ok`, `warn`, `critical`, `unknown`).
    status: Option<ops_core::Status>,
}

/// The oldest finished run a request accepts: for `?fresh=true` one that finished after the
/// request arrived (a run in progress is shared), else one younger than [`REUSE`].
pub(crate) fn not_before(fresh: bool) -> Instant {
    let now = Instant::now();
    if fresh { now } else { now.checked_sub(REUSE).unwrap_or(now) }
}

/// `GET /api/v1/triage`: the whole report (severity, incidents with consequences, probes).
#[utoipa::path(get, path = "/api/v1/triage", tag = "checks", params(CheckQuery),
    responses((status = 200, body = ops_probes::TriageReport), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn triage(
    State(state): State<Arc<AppState>>,
    Query(q): Query<CheckQuery>,
) -> Result<Response, ApiError> {
    let report = state.triage(not_before(q.fresh)).await?;
    Ok(Json(&*report).into_response())
}

/// `GET /api/v1/probes`: the probe reports of the newest triage, filterable.
#[utoipa::path(get, path = "/api/v1/probes", tag = "checks", params(CheckQuery),
    responses((status = 200, body = ProbeList<'static>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn probes(
    State(state): State<Arc<AppState>>,
    Query(q): Query<CheckQuery>,
) -> Result<Response, ApiError> {
    let report = state.triage(not_before(q.fresh)).await?;
    let probes: Vec<&ops_probes::ProbeReport> = report
        .probes
        .iter()
        .filter(|p| q.kind.is_none_or(|k| p.kind == k))
        .filter(|p| q.status.is_none_or(|s| p.status == s))
        .collect();
    Ok(Json(ProbeList { started_at: report.started_at, probes }).into_response())
}

/// `GET /api/v1/tls`: every `[[tls]]` target, checked now, in full detail.
#[utoipa::path(get, path = "/api/v1/tls", tag = "checks",
    responses((status = 200, body = TlsList<'static>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn tls(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let checks = state.tls(not_before(false)).await?;
    let (targets, unusable) = &*checks;
    let errors = unusable.iter().map(|(name, error)| NamedError { name, error }).collect();
    Ok(Json(TlsList { targets, errors }).into_response())
}
