//! `ops-perf`: performance analysis with verdicts (the runbooks' `perf-analyze.sh`). It only
//! reads: PostgreSQL statistics, Redis `INFO`, container stats, timed HTTP samples and the
//! host's disks. A finding that has a remedy names it (a SQL statement, or `opsctl pg …`, `opsctl
//! redis set-policy`, `opsctl restart`, which run `ops-act`); nothing
//! here changes the stack.

pub mod containers;
pub mod host;
pub mod http;
pub mod pg;
pub mod redis;
mod render;
mod report;
pub mod state;

pub use render::render_text;
pub use report::{PerfFinding, PerfReport, Section, SectionReport, Window};
pub use state::StateDir;

/// Options of [`analyze`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PerfOptions {
    /// Sections to run; all when empty.
    pub sections: Vec<Section>,
    /// HTTP samples per endpoint (default `perf.http.samples`).
    pub http_samples: Option<usize>,
}

/// Analyses every configured target of the chosen sections concurrently. Never fails: a
/// section that cannot run says why in its report.
pub async fn analyze(ctx: &ops_core::Context, opts: &PerfOptions) -> PerfReport {
    use futures::FutureExt;
    let cfg = &ctx.config;
    let started_at = chrono::Utc::now();
    let clock = std::time::Instant::now();
    let wanted = |s: Section| opts.sections.is_empty() || opts.sections.contains(&s);
    let state = cfg.perf.state_dir.as_deref().map(StateDir::new);
    let state = state.as_ref();
    let timeout =
        std::time::Duration::from_secs(cfg.probes.timeout_secs.clamp(1, ops_core::limits::MAX_PROBE_TIMEOUT_SECS));
    let net = ops_probes::NetOptions { timeout, ..ops_probes::NetOptions::from_config(&cfg.probes) };
    let net = &net;
    let mut jobs: Vec<futures::future::BoxFuture<'_, SectionReport>> = Vec::new();
    if wanted(Section::Pg) {
        for (name, db) in &ctx.databases {
            jobs.push(pg::analyze(name, db.as_ref(), &cfg.perf, &cfg.probes, state).boxed());
        }
    }
    if wanted(Section::Redis) {
        for (name, cache) in &ctx.caches {
            jobs.push(redis::analyze(name, cache.as_ref(), &cfg.perf, &cfg.probes, state).boxed());
        }
    }
    if wanted(Section::Containers) {
        match ctx.containers.as_deref() {
            Some(rt) => jobs
                .push(containers::analyze(rt, cfg.project.compose_project.as_deref(), &cfg.perf, &cfg.probes).boxed()),
            None => jobs.push(
                async { SectionReport::failed(Section::Containers, "containers", "no container runtime") }.boxed(),
            ),
        }
    }
    if wanted(Section::Http) {
        // Bounded here too: the samples size a buffer of timings.
        let samples = opts.http_samples.unwrap_or(cfg.perf.http.samples).clamp(1, ops_core::limits::MAX_HTTP_SAMPLES);
        for check in &cfg.http {
            jobs.push(http::analyze(check, &cfg.probes, samples, net).boxed());
        }
    }
    if wanted(Section::Host) {
        jobs.push(
            async move {
                let root = match ctx.containers.as_deref() {
                    Some(rt) => rt.ping().await.ok().and_then(|i| i.root_dir).map(std::path::PathBuf::from),
                    None => None,
                };
                host::analyze(&cfg.probes, root.as_deref()).await
            }
            .boxed(),
        );
    }
    let mut sections = futures::future::join_all(jobs).await;
    sections.sort_by_key(|s| (Section::ALL.iter().position(|x| *x == s.section), s.target.clone()));
    PerfReport {
        status: sections.iter().map(|s| s.status).max().unwrap_or(ops_core::Status::Ok),
        started_at,
        duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
        sections,
    }
}
