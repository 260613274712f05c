//! `GET /api/v1/triage`, `GET /api/v1/probes`, `GET /api/v1/tls`: the checks of `opsctl
//! triage`, `opsctl probe` and `opsctl tls check`, as JSON.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// A triage younger than this is served again instead of re-running every probe.
const REUSE: Duration = Duration::from_secs(10);

/// Query of the check routes.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct CheckQuery {
    /// Run now, even when a triage younger than 10 s exists.
    fresh: bool,
    /// `/api/v1/probes`: only probes of this kind (`http`, `container`).
    kind: Option<String>,
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
pub(crate) async fn triage(
    State(state): State<Arc<AppState>>,
    Query(q): Query<CheckQuery>,
) -> Result<Json<Value>, ApiError> {
    let report = state.triage(not_before(q.fresh)).await?;
    Ok(Json(json!(&*report)))
}

/// `GET /api/v1/probes`: the probe reports of the newest triage, filterable.
pub(crate) async fn probes(
    State(state): State<Arc<AppState>>,
    Query(q): Query<CheckQuery>,
) -> Result<Json<Value>, ApiError> {
    let report = state.triage(not_before(q.fresh)).await?;
    let probes: Vec<&ops_probes::ProbeReport> = report
        .probes
        .iter()
        .filter(|p| q.kind.as_deref().is_none_or(|k| p.kind.as_str() == k))
        .filter(|p| q.status.is_none_or(|s| p.status == s))
        .collect();
    Ok(Json(json!({ "started_at": report.started_at, "probes": probes })))
}

/// `GET /api/v1/tls`: every `[[tls]]` target, checked now, in full detail.
pub(crate) async fn tls(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let checks = state.tls(not_before(false)).await?;
    let (targets, unusable) = &*checks;
    let errors: Vec<Value> = unusable.iter().map(|(name, error)| json!({ "name": name, "error": error })).collect();
    Ok(Json(json!({ "targets": targets, "errors": errors })))
}
