//! `ops-server`: an axum router over the same library functions `opsctl` calls, behind API
//! keys, plus liveness, readiness and Prometheus metrics.
//!
//! Routes:
//! - `GET /health/live`: the process serves requests (open).
//! - `GET /health/ready`: the config is loaded and the server's own dependencies answer (open).
//! - `GET /metrics`: Prometheus text (open).
//! - `GET /api/v1/config`: the resolved config, secrets as `***` (read key).
//! - `POST /api/v1/config/reload`: re-read the config file; a bad file is rejected and the
//!   running config kept (admin key).
//! - `GET /api/v1/backups` (read); `POST /api/v1/backups`, `POST /api/v1/backups/{id}/verify`,
//!   `POST /api/v1/dr-tests`, `POST /api/v1/restores` (admin; a restore needs
//!   `"confirm": true`): long operations answer 202 with a job id.
//! - `GET /api/v1/jobs/{id}` (read): a job's status and report.
//! - `GET /api/v1/triage` (read): severity, incidents with their consequences, every probe
//!   (a run younger than 10 s is reused; `?fresh=true` runs now).
//! - `GET /api/v1/probes` (read): the probe reports, `?kind=http&status=critical` to filter.
//! - `GET /api/v1/tls` (read): every `[[tls]]` target checked now, in full detail.
//! - `GET /api/v1/perf` (read): the performance analysis, `?section=pg,redis&samples=5`.
//! - `POST /api/v1/actions` (admin): `{"action": "kill-idle", "older-than-secs": 600,
//!   "apply": false}` returns the plan; with `"apply": true` it acts and audits.
//! - `GET /api/v1/runbooks`, `GET /api/v1/runbooks/{name}` (read): the catalog and one runbook
//!   with its text; `POST /api/v1/runbooks/{name}/plan` (read): `{"params": {...}}`, the branch
//!   that would be taken, nothing changed.
//! - `POST /api/v1/runbooks/{name}/runs` (admin): a run as a job, 202 with the run's id;
//!   `GET /api/v1/runs`, `GET /api/v1/runs/{id}` (read): runs from the state store;
//!   `POST /api/v1/runs/{id}/approve` (admin): the step a run waits at goes on.
//! - `POST /api/v1/alertmanager` (webhook key): Alertmanager's webhook; an alert's `auto`
//!   runbook runs under a silence of its target (`alerts`).
//! - `GET /api/v1/schedule`, `GET /api/v1/schedule/{name}/runs` (read): the `[[schedule]]`
//!   entries with their next due time and last run; one entry's ledger. The entries run in
//!   the background ([`scheduler`]).
//!
//! - `GET /api/v1/openapi.json` (read): the OpenAPI 3.1 document of these routes (module `openapi`).
//!
//! Keys come from `API_KEYS` (read) and `ADMIN_KEYS` (read and act), comma-separated so old
//! and new keys overlap during a rotation, sent as `Authorization: Bearer KEY` or
//! `X-API-Key: KEY`, compared in constant time.
//!
//! [`app`] builds the router from a state, so tests drive it without a socket:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use tower::ServiceExt;
//! let state = ops_server::AppState::from_config(Default::default(), None, Default::default());
//! let response = ops_server::app(state)
//!     .oneshot(http::Request::get("/health/live").body(axum::body::Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), 200);
//! # });
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)] // a binary crate

mod alerts;
mod auth;
mod backups;
mod checks;
mod error;
mod incidents;
mod jobs;
mod metrics;
mod openapi;
mod perf;
mod rate;
mod routes;
mod runbooks;
pub mod scheduler;
pub mod serve;
mod state;
mod status;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

pub use error::ApiError;
pub use routes::app;
pub use state::{AppState, WiringError};

/// `ops-server` command line.
#[derive(Debug, Parser)]
#[command(name = "ops-server", version, about = "HTTP API for the ops SDK")]
pub struct Args {
    /// Address to listen on [default: server.listen from the config, then 127.0.0.1:9187]
    #[arg(long, env = "OPS_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Configuration file [default: $OPS_CONFIG, then ./ops.toml]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy); without
    /// it such an address needs server.tls-cert and server.tls-key.
    #[arg(long)]
    pub insecure_listen: bool,
}

/// The whole `main`: parse, load, serve until SIGTERM or Ctrl-C.
#[must_use]
pub fn main_impl() -> u8 {
    let args = Args::parse();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let filter = tracing_subscriber::EnvFilter::try_from_env("OPS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ops_core::exit::INTERNAL;
        }
    };
    match runtime.block_on(serve(args, env)) {
        Ok(()) => ops_core::exit::OK,
        Err(e) => {
            eprintln!("error: {e:#}");
            e.downcast_ref::<ops_core::config::ConfigError>()
                .map_or(ops_core::exit::INTERNAL, |_| ops_core::exit::INVALID_INPUT)
        }
    }
}

/// Loads the config, binds and serves with graceful shutdown.
///
/// # Errors
/// A bad config, or an address that cannot be bound.
pub async fn serve(args: Args, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    let loaded = ops_core::config::load(args.config.as_deref(), &env)?;
    let listen: SocketAddr = match args.listen {
        Some(a) => a,
        None => loaded.config.server.listen.as_deref().unwrap_or(ops_core::config::DEFAULT_LISTEN).parse()?,
    };
    if loaded.config.server.api_keys.is_empty() && loaded.config.server.admin_keys.is_empty() {
        tracing::warn!("no API_KEYS or ADMIN_KEYS configured: every /api/ request will be refused");
    }
    let serve_opts = ops_server_options(&loaded.config.server)?;
    serve::check_listen(listen, serve_opts.tls.is_some(), args.insecure_listen)?;
    let state = AppState::from_config(loaded.config, args.config.clone(), env);
    // A process killed mid-upload (SIGKILL, a power cut) leaves a temp file or an unfinished
    // multipart upload: remove the old ones at start.
    tokio::spawn({
        let state = std::sync::Arc::clone(&state);
        async move { state.sweep_leftovers().await }
    });
    // Backup metrics come from the manifests and failure records in storage, not from this
    // process's memory, so they include backups run by `opsctl` from cron; refreshed every
    // five minutes (one listing per destination).
    tokio::spawn({
        let state = std::sync::Arc::clone(&state);
        async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(300));
            loop {
                every.tick().await;
                state.rebuild_backup_metrics().await;
            }
        }
    });
    // Probe, triage and TLS metrics stay current without anyone calling the API: one run per
    // `server.triage-interval-secs` (read at each run, so a reload changes it).
    tokio::spawn({
        let state = std::sync::Arc::clone(&state);
        async move {
            loop {
                let every = state.running().config.server.triage_interval_secs.unwrap_or(60);
                if every == 0 {
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                    continue;
                }
                if let Err(e) = state.triage(std::time::Instant::now()).await {
                    tracing::warn!(error = %e, "background triage could not run");
                }
                if let Err(e) = state.tls(std::time::Instant::now()).await {
                    tracing::warn!(error = %e, "background tls check could not run");
                }
                tokio::time::sleep(std::time::Duration::from_secs(every)).await;
            }
        }
    });
    // `[[schedule]]`: jobs run unattended, each due time once across the replicas sharing
    // the state store (the entries are read at each tick, so a reload changes them).
    let scheduler = tokio::spawn(scheduler::run(std::sync::Arc::clone(&state), scheduler::holder_name()));
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(%listen, tls = serve_opts.tls.is_some(), "ops-server listening");
    serve::serve_on(listener, std::sync::Arc::clone(&state), serve_opts, shutdown_signal()).await?;
    // Jobs run on after their 202: a backup or drill in progress fails cleanly (its failure
    // record and notification are written), the others get a minute to finish.
    let left = state.stop_jobs(std::time::Duration::from_secs(60)).await;
    if !left.is_empty() {
        tracing::warn!(jobs = ?left, "jobs still running at exit");
    }
    // Scheduled runs record how they ended before the process goes.
    if tokio::time::timeout(std::time::Duration::from_secs(10), scheduler).await.is_err() {
        tracing::warn!("scheduled runs still in progress at exit: their rows are failed by the next ops-server");
    }
    tracing::info!("ops-server stopped");
    Ok(())
}

fn ops_server_options(cfg: &ops_core::config::ServerConfig) -> anyhow::Result<serve::ServeOptions> {
    serve::ServeOptions::from_config(cfg)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received, finishing in-flight requests");
}
