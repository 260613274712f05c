//! Runbook routes: the catalog (read), a plan (read: it changes nothing), a run as a job
//! (admin: it acts; answered 202 with the run's id), a run's record, and the approval of a
//! run waiting at a manual step (admin).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ops_core::ports::{Approval, RunQuery, StateStore};
use ops_runbook::{Catalog, Run, RunOptions};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::jobs::JobStatus;
use crate::openapi::{
    Approved, ErrorBody, RunAccepted, RunList, RunbookDetail, RunbookList, RunbookSummary, StepSummary,
};
use crate::state::AppState;

/// The catalog, read on a blocking thread (a directory of files).
async fn catalog(state: &AppState) -> Result<Catalog, ApiError> {
    let dir = state.running().config.runbooks.dir.clone();
    let loaded = tokio::task::spawn_blocking(move || Catalog::load(dir.as_deref()))
        .await
        .map_err(|e| ops_core::Error::internal(format!("loading runbooks: {e}")))?;
    Ok(loaded?)
}

fn summary(rb: &ops_runbook::Runbook) -> RunbookSummary<'_> {
    RunbookSummary {
        name: &rb.name,
        title: &rb.title,
        applies_to: &rb.applies_to,
        auto: rb.auto,
        severity: rb.severity,
        params: &rb.params,
        steps: rb.steps.len(),
        built_in: rb.source.starts_with("built-in:"),
    }
}

/// The catalog: the built-in runbooks and the team's.
#[utoipa::path(get, path = "/api/v1/runbooks", tag = "runbooks",
    responses((status = 200, body = RunbookList<'static>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn list(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let c = catalog(&state).await?;
    Ok(Json(RunbookList { runbooks: c.iter().map(summary).collect() }).into_response())
}

/// One runbook with its text and steps.
#[utoipa::path(get, path = "/api/v1/runbooks/{name}", tag = "runbooks", params(("name" = String, Path, description = "The runbook's name")),
    responses((status = 200, body = RunbookDetail<'static>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn show(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let c = catalog(&state).await?;
    let rb = c.get(&name)?;
    let steps = rb
        .steps
        .iter()
        .map(|s| StepSummary {
            id: &s.id,
            kind: s.kind.name(),
            line: s.line,
            on_failure: s.on_failure,
            when: s.when.as_ref().map(|w| w.0.as_str()),
        })
        .collect();
    let s = summary(rb);
    Ok(Json(RunbookDetail {
        name: s.name,
        title: s.title,
        applies_to: s.applies_to,
        auto: s.auto,
        severity: s.severity,
        params: s.params,
        built_in: s.built_in,
        text: &rb.text,
        steps,
    })
    .into_response())
}

/// A JSON body's run options (`{"params": {"database": "main"}}`), or none.
fn options(body: &[u8]) -> Result<RunOptions, ApiError> {
    crate::error::json_body(body)
}

/// The branch a run would take now, step by step; nothing is changed.
#[utoipa::path(post, path = "/api/v1/runbooks/{name}/plan", tag = "runbooks", params(("name" = String, Path, description = "The runbook's name")),
    request_body(content = Option<RunOptions>, content_type = "application/json"),
    responses((status = 200, body = Run), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn plan(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Run>, ApiError> {
    let c = catalog(&state).await?;
    let rb = c.get(&name)?;
    let mut opts = options(&body)?;
    opts.actor = crate::auth::actor(&headers);
    let mut ctx = state.context()?;
    ctx.state = state.state_store().await.ok();
    Ok(Json(ops_runbook::plan(&ctx, rb, &opts).await?))
}

/// The slot a runbook run holds among the server's jobs: one run of a runbook on one target
/// (its parameters) at a time, whether the API, an alert or the schedule started it.
pub(crate) fn exclusive_key(runbook: &str, params: &std::collections::BTreeMap<String, String>) -> String {
    format!("runbook {runbook} {}", serde_json::to_string(params).unwrap_or_default())
}

/// Sees a server run's steps: the job's progress.
pub(crate) struct JobProgress {
    pub(crate) state: Arc<AppState>,
    pub(crate) job: String,
}

impl ops_runbook::Observer for JobProgress {
    fn update(&self, run: &Run) {
        let done = run.steps.iter().filter(|s| s.started_at.is_some()).count();
        self.state.jobs.set_progress(
            &self.job,
            json!({ "run": run.id, "status": run.status.as_str(), "steps-done": done, "steps": run.steps.len(),
                    "waiting-for": run.waiting_for }),
        );
    }
}

/// Runs a runbook as a job; its steps act within their guards. Answered at once with the
/// run's id; manual steps wait for `POST /api/v1/runs/{id}/approve`.
#[utoipa::path(post, path = "/api/v1/runbooks/{name}/runs", tag = "runbooks", params(("name" = String, Path, description = "The runbook's name")),
    request_body(content = Option<RunOptions>, content_type = "application/json"),
    responses((status = 202, body = RunAccepted), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn start(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<RunAccepted>), ApiError> {
    let c = catalog(&state).await?;
    let rb = c.get(&name)?.clone();
    let mut opts = options(&body)?;
    // An admin key started it: that is the approval `approval = "yes"` steps ask for. Manual
    // steps and `approval = "approve"` still wait for POST /api/v1/runs/{id}/approve.
    opts.yes = true;
    opts.actor = crate::auth::actor(&headers);
    let mut ctx = state.context()?;
    let store = state.state_store().await?;
    ctx.state = Some(Arc::clone(&store));
    // Bad parameters are refused now, not as a failed job.
    let resolved = ops_runbook::engine::resolve_params(&ctx, &rb, &opts)?;
    let run_id = ops_runbook::run::new_id(chrono::Utc::now());
    opts.run_id = Some(run_id.clone());
    let job = state.jobs.admit("runbook", Some(&exclusive_key(&name, &resolved))).map_err(ApiError::from)?;
    let timeout = std::time::Duration::from_secs(state.running().config.runbooks.approval_timeout_secs.max(1));
    let job_state = Arc::clone(&state);
    let job_id = job.clone();
    tokio::spawn(async move {
        let _slot = job_state.jobs.run_slot(&job_id, "runbook").await;
        let approver = ops_runbook::StoreApprover {
            store: Arc::clone(&store),
            timeout,
            poll: std::time::Duration::from_millis(500),
        };
        let observer = JobProgress { state: Arc::clone(&job_state), job: job_id.clone() };
        let work = ops_runbook::run(&ctx, &rb, &opts, &approver, &observer);
        match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(work)).await {
            Ok(Ok(run)) => {
                let status = if run.ok() { JobStatus::Succeeded } else { JobStatus::Failed };
                job_state.jobs.finish(&job_id, status, serde_json::to_value(&run).ok(), None);
            }
            Ok(Err(e)) => job_state.jobs.finish(
                &job_id,
                JobStatus::Failed,
                None,
                Some(json!({ "kind": e.kind(), "message": e.message() })),
            ),
            Err(_) => {
                tracing::error!(job = %job_id, "runbook run panicked");
                job_state.jobs.finish(
                    &job_id,
                    JobStatus::Failed,
                    None,
                    Some(json!({ "kind": "internal", "message": "the run stopped on an internal error; see the server log" })),
                );
            }
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(RunAccepted {
            href: format!("/api/v1/runs/{run_id}"),
            job_href: format!("/api/v1/jobs/{job}"),
            run: run_id,
            job,
            status: "queued".into(),
        }),
    ))
}

async fn load(state: &AppState, id: &str) -> Result<(Arc<dyn StateStore>, Run), ApiError> {
    let store = state.state_store().await?;
    let run = ops_runbook::run::load(store.as_ref(), id).await?;
    Ok((store, run))
}

/// One run with its steps.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runbooks", params(("id" = String, Path, description = "The run's id")),
    responses((status = 200, body = Run), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn get_run(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Run>, ApiError> {
    let (_, run) = load(&state, &id).await?;
    Ok(Json(run))
}

/// `?runbook=NAME&status=failed&limit=20`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    /// Only runs of this runbook.
    runbook: Option<String>,
    /// Only runs with this status (`succeeded`, `failed`, `waiting`, …).
    status: Option<String>,
    /// At most this many (default 20).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// Runs from the state store, newest first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runbooks", params(RunsQuery),
    responses((status = 200, body = RunList), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn list_runs(
    State(state): State<Arc<AppState>>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<RunList>, ApiError> {
    let limit = q.limit.unwrap_or(20);
    ops_core::limits::check_range("limit", limit, 1, ops_core::ports::state::MAX_LISTED)?;
    let store = state.state_store().await?;
    let runs =
        ops_runbook::run::list(store.as_ref(), &RunQuery { runbook: q.runbook, status: q.status, limit }).await?;
    Ok(Json(RunList { runs }))
}

/// `{"step": 3}`: the step the approver read (optional; when given it must be the one the run
/// waits at, so an approval is never taken for a later step).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproveBody {
    step: Option<u32>,
}

/// Lets a run waiting at a manual step or an approval go on.
#[utoipa::path(post, path = "/api/v1/runs/{id}/approve", tag = "runbooks", params(("id" = String, Path, description = "The run's id")),
    request_body(content = Option<ApproveBody>, content_type = "application/json"),
    responses((status = 200, body = Approved), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn approve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Approved>, ApiError> {
    let wanted: ApproveBody = if body.iter().all(u8::is_ascii_whitespace) {
        ApproveBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::Core(ops_core::Error::invalid_input(format!("invalid request body: {e}"))))?
    };
    let (store, run) = load(&state, &id).await?;
    let step = run.waiting_for.ok_or_else(|| {
        ops_core::Error::conflict(format!("run {id} is not waiting for an approval ({})", run.status.as_str()))
    })?;
    if let Some(w) = wanted.step
        && w != step
    {
        return Err(ApiError::Core(ops_core::Error::conflict(format!(
            "run {id} waits at step {step}, not {w}: read it again before approving"
        ))));
    }
    let actor = crate::auth::actor(&headers);
    store.approve(&Approval { run_id: run.id.clone(), step, actor: actor.clone(), time: chrono::Utc::now() }).await?;
    Ok(Json(Approved { run: run.id, step, approved_by: actor }))
}
