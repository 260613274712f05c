//! Backup, verify, restore and DR-drill routes: thin handlers that start the library call as
//! a job and answer 202 with its id.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::jobs::JobStatus;
use crate::openapi::{BackupList, ErrorBody, JobAccepted, RestoreBody};
use crate::state::AppState;

fn context(state: &AppState) -> Result<ops_core::Context, ApiError> {
    Ok(state.context()?)
}

fn error_value(e: &ops_core::Error) -> Value {
    json!({ "kind": e.kind(), "message": e.message() })
}

/// Spawns `work` as a job; its `Ok` value is the report, `Err` the error. Refused (409 or
/// 429, nothing started) when another job holds `exclusive` or the server has too many jobs.
fn spawn_job<F>(
    state: &Arc<AppState>,
    kind: &str,
    exclusive: Option<&str>,
    work: F,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError>
where
    F: Future<Output = (Result<Value, ops_core::Error>, bool)> + Send + 'static,
{
    let id = state.jobs.admit(kind, exclusive).map_err(ApiError::from)?;
    let jobs_state = Arc::clone(state);
    let job_id = id.clone();
    let kind_owned = kind.to_owned();
    tokio::spawn(async move {
        let _slot = jobs_state.jobs.run_slot(&job_id, &kind_owned).await;
        // A job that panics is a failed job, never one left `running` for ever.
        let (result, ok) = match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(work)).await {
            Ok(done) => done,
            Err(_) => {
                tracing::error!(job = %job_id, "job panicked");
                (Err(ops_core::Error::internal("the job stopped on an internal error; see the server log")), false)
            }
        };
        match result {
            Ok(report) => {
                let status = if ok { JobStatus::Succeeded } else { JobStatus::Failed };
                jobs_state.jobs.finish(&job_id, status, Some(report), None);
            }
            Err(e) => jobs_state.jobs.finish(&job_id, JobStatus::Failed, None, Some(error_value(&e))),
        }
    });
    let href = format!("/api/v1/jobs/{id}");
    Ok((StatusCode::ACCEPTED, Json(JobAccepted { job: id, status: "queued".into(), href })))
}

/// The options in a JSON body, or their defaults for an empty body.
fn options<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::Core(ops_core::Error::invalid_input(format!("invalid request body: {e}"))))
}

pub(crate) fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `?database=NAME`: one database's backups.
/// `?database=NAME`: a `[databases.NAME]` entry (the only one, or `main`, when absent).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct DatabaseQuery {
    /// The database's name in the config.
    database: Option<String>,
}

/// The config name a request names, or the only one, or `main`; refused before it touches
/// anything (metrics labels included) unless it is configured.
fn database_name(ctx: &ops_core::Context, requested: Option<&str>) -> Result<String, ApiError> {
    Ok(ops_backup::target::database_name(ctx, requested)?)
}

/// The backups in storage, newest first, of every database or one.
#[utoipa::path(get, path = "/api/v1/backups", tag = "backups", params(DatabaseQuery),
    responses((status = 200, body = BackupList), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Query(q): Query<DatabaseQuery>,
) -> Result<Json<BackupList>, ApiError> {
    let ctx = context(&state)?;
    let mut entries = ops_backup::list(&ctx).await?;
    if let Some(name) = q.database.as_deref() {
        let name = database_name(&ctx, Some(name))?;
        entries = ops_backup::catalog::of_database(entries, &name);
    }
    Ok(Json(BackupList { backups: entries }))
}

/// Starts a backup of one database as a job.
#[utoipa::path(post, path = "/api/v1/backups", tag = "backups",
    request_body(content = Option<ops_backup::BackupOptions>, content_type = "application/json"),
    responses((status = 202, body = JobAccepted), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn start_backup(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    let ctx = context(&state)?;
    let opts: ops_backup::BackupOptions = options(&body)?;
    opts.validate()?;
    let name = database_name(&ctx, opts.database.as_deref())?;
    let metrics_state = Arc::clone(&state);
    let exclusive = format!("database {name}");
    let stopping = state.stopping();
    spawn_job(&state, "backup", Some(&exclusive), async move {
        (backup_recorded(&metrics_state, &ctx, &opts, &name, stopping).await, true)
    })
}

/// A backup of `name` (the database `opts` names), its outcome recorded in the metrics: the
/// route's job and the scheduler's.
pub(crate) async fn backup_recorded(
    state: &AppState,
    ctx: &ops_core::Context,
    opts: &ops_backup::BackupOptions,
    name: &str,
    stop: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
) -> Result<Value, ops_core::Error> {
    let r = ops_backup::backup_until(ctx, opts, &ops_backup::NoProgress, stop).await;
    match &r {
        // Refused (another operation holds the lock): no backup ran, nothing to record.
        Err(e) if e.kind() == ops_core::ErrorKind::Conflict => {}
        Ok(report) => {
            let m = &report.manifest;
            #[allow(clippy::cast_precision_loss)]
            let finished = m.finished_at.timestamp_millis() as f64 / 1000.0;
            state.metrics.record_backup(&m.database_config_name, Some((finished, m.duration_seconds, m.size_bytes)));
        }
        Err(_) => state.metrics.record_backup(name, None),
    }
    r.map(|r| to_value(&r))
}

/// Verifies a backup (`latest` or an id) as a job: checksum, archive and a restore test.
#[utoipa::path(post, path = "/api/v1/backups/{id}/verify", tag = "backups",
    params(("id" = String, Path, description = "A backup id or `latest`"), DatabaseQuery),
    responses((status = 202, body = JobAccepted), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn verify(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<DatabaseQuery>,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    let ctx = context(&state)?;
    // An id or `latest`, nothing else, before any job starts.
    match ops_backup::source::SourceSpec::parse(&id)? {
        ops_backup::source::SourceSpec::Latest | ops_backup::source::SourceSpec::Id(_) => {}
        _ => return Err(ApiError::Core(ops_core::Error::invalid_input("give a backup id or latest"))),
    }
    // `latest` needs its database now (named, the only one, or `main`): a job that fails on
    // an ambiguous name would only say so later.
    let database = match (q.database.as_deref(), id.as_str()) {
        (Some(name), _) => Some(database_name(&ctx, Some(name))?),
        (None, "latest") => Some(database_name(&ctx, None)?),
        (None, _) => None,
    };
    spawn_job(&state, "verify", None, async move {
        match ops_backup::verify(&ctx, database.as_deref(), &id).await {
            Ok(r) => (Ok(to_value(&r)), r.ok),
            Err(e) => (Err(e), false),
        }
    })
}

/// Starts a DR drill as a job: the backup restored into a scratch server and checked.
#[utoipa::path(post, path = "/api/v1/dr-tests", tag = "backups",
    request_body(content = Option<ops_backup::DrillOptions>, content_type = "application/json"),
    responses((status = 202, body = JobAccepted), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn dr_test(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    let ctx = context(&state)?;
    let opts: ops_backup::DrillOptions = options(&body)?;
    opts.validate()?;
    let name = database_name(&ctx, opts.database.as_deref())?;
    // Refused now rather than in the job: over HTTP a source is never a host path.
    ops_backup::source::SourceRules::default().spec(&opts.source)?;
    let metrics_state = Arc::clone(&state);
    let exclusive = format!("database {name}");
    let stopping = state.stopping();
    spawn_job(&state, "dr-test", Some(&exclusive), async move {
        drill_recorded(&metrics_state, &ctx, &opts, &name, stopping).await
    })
}

/// A restore drill of `name`, its outcome recorded in the metrics: (report, passed).
pub(crate) async fn drill_recorded(
    state: &AppState,
    ctx: &ops_core::Context,
    opts: &ops_backup::DrillOptions,
    name: &str,
    stop: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
) -> (Result<Value, ops_core::Error>, bool) {
    match ops_backup::dr_test(ctx, opts, &ops_backup::NoProgress, stop).await {
        Ok(r) => {
            state.metrics.record_drill(name, r.passed, r.restore_seconds);
            (Ok(to_value(&r)), r.passed)
        }
        Err(e) => (Err(e), false),
    }
}

/// A JSON body of options `T` plus one boolean `flag` (`"confirm"`, `"apply"`), with unknown
/// fields refused: `#[serde(flatten)]` would accept them silently.
pub(crate) fn options_and_flag<T: serde::de::DeserializeOwned>(body: &[u8], flag: &str) -> Result<(T, bool), ApiError> {
    let invalid = |m: String| ApiError::Core(ops_core::Error::invalid_input(m));
    let mut fields: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| invalid(format!("invalid request body: {e}")))?;
    let set = match fields.remove(flag) {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(invalid(format!("invalid request body: {flag} must be true or false"))),
    };
    let options =
        serde_json::from_value(Value::Object(fields)).map_err(|e| invalid(format!("invalid request body: {e}")))?;
    Ok((options, set))
}

/// Restores a backup over a live database as a job; without `"confirm": true` the plan is
/// returned in a 422.
#[utoipa::path(post, path = "/api/v1/restores", tag = "backups",
    request_body(content = RestoreBody, content_type = "application/json"),
    responses((status = 202, body = JobAccepted), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub(crate) async fn restore(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    let ctx = context(&state)?;
    // The restore options plus `"confirm": true`.
    let (mut options, confirm): (ops_backup::RestoreOptions, bool) = options_and_flag(&body, "confirm")?;
    options.validate()?;
    options.actor = Some(crate::auth::actor(&headers));
    let req = RestoreRequest { options };
    let plan = ops_backup::restore::plan(&ctx, &req.options).await?;
    if !confirm {
        return Err(ApiError::Core(ops_core::Error::invalid_input(format!(
            "a restore stops containers and replaces database {}: send \"confirm\": true (plan: {})",
            plan.database,
            plan.steps.join("; ")
        ))));
    }
    let opts = req.options;
    let exclusive = format!("database {}", plan.database_config_name);
    let stopping = state.stopping();
    spawn_job(&state, "restore", Some(&exclusive), async move {
        match ops_backup::restore_until(&ctx, &plan, &opts, &ops_backup::NoProgress, stopping).await {
            Ok(r) => {
                let healthy = r.healthy;
                (Ok(to_value(&r)), healthy)
            }
            Err(e) => (Err(e), false),
        }
    })
}

struct RestoreRequest {
    options: ops_backup::RestoreOptions,
}

/// A job's status, progress and report.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "backups", params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, body = crate::jobs::Job), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn job(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<crate::jobs::Job>, ApiError> {
    state.jobs.get(&id).map(Json).ok_or_else(|| ApiError::Core(ops_core::Error::not_found(format!("no job {id}"))))
}
