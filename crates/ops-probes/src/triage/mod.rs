//! `triage`: the runbooks' first five minutes in one call. Every configured and discovered
//! check runs concurrently (bounded), the problems get a severity by the runbooks' rules, the
//! consequences are filed under their cause, and the report says what is broken, how bad, and
//! which runbook applies.

mod assess;
pub mod escalation;
mod rules;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use ops_core::{Context, Severity, Status};
use serde::{Deserialize, Serialize};

pub use assess::{Effect, Incident, assess, implicit_dependencies};
pub use rules::{default_severity, severity};

use crate::{ProbeKind, ProbeReport};

/// Options of [`triage`]; the defaults come from `[probes]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TriageOptions {
    /// Probes at the same time (default `probes.concurrency`).
    pub concurrency: Option<usize>,
    /// Seconds one probe may take (default `probes.timeout-secs`).
    pub timeout_secs: Option<u64>,
    /// Skip reading container logs (the slowest probe on a busy host).
    pub skip_logs: bool,
}

/// What triage found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TriageReport {
    /// The most urgent incident's severity; `None` when nothing is wrong.
    pub severity: Option<Severity>,
    /// The runbooks' response time for it.
    pub response_time: Option<String>,
    /// The worst status of any check (for exit codes: ok 0, warn 1, critical 2, unknown 3).
    pub status: Status,
    /// One line: `P1 (respond within 15 minutes): database-down on postgres:main, 2 consequences`.
    pub summary: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// Wall time of the run, milliseconds.
    pub duration_ms: u64,
    /// What to act on, most urgent first.
    pub incidents: Vec<Incident>,
    /// Checks that are fine.
    pub ok: Vec<String>,
    /// Every probe report, by name.
    pub probes: Vec<ProbeReport>,
}

type Job<'a> = BoxFuture<'a, Vec<ProbeReport>>;

/// Bounds one probe job: past the limit it is reported `unknown` (runbook `probe-failed`).
fn bounded<'a>(
    kind: ProbeKind,
    name: &'a str,
    target: String,
    limit: Duration,
    job: impl Future<Output = Vec<ProbeReport>> + Send + 'a,
) -> Job<'a> {
    async move {
        match tokio::time::timeout(limit, job).await {
            Ok(reports) => reports,
            Err(_) => vec![ProbeReport::timed_out(kind, name, target, limit)],
        }
    }
    .boxed()
}

/// Runs the whole checklist and assesses it. Never fails: a probe that cannot run is a report.
pub async fn triage(ctx: &Context, opts: &TriageOptions) -> TriageReport {
    let cfg = &ctx.config;
    let started_at = Utc::now();
    let clock = Instant::now();
    // Bounded: a deadline is now + timeout, which must not overflow.
    let timeout = Duration::from_secs(
        opts.timeout_secs.unwrap_or(cfg.probes.timeout_secs).clamp(1, ops_core::limits::MAX_PROBE_TIMEOUT_SECS),
    );
    // A job that has its own inner timeout gets a little more, so its own report wins.
    let outer = timeout + Duration::from_secs(2);
    let net = crate::NetOptions { timeout, ..crate::NetOptions::from_config(&cfg.probes) };
    let net = &net;
    let mut jobs: Vec<Job<'_>> = Vec::new();

    // The engine first: its data root is a disk the host probe checks, and without it there
    // are no containers to list. Containers and their logs share one listing.
    jobs.push(engine_host_containers(ctx, opts, timeout).boxed());
    for (name, db) in &ctx.databases {
        let url = cfg.databases.get(name).map(|d| d.url.clone()).unwrap_or_default();
        jobs.push(
            async move { vec![crate::postgres::probe(name, &url, db.as_ref(), &cfg.probes.postgres, timeout).await] }
                .boxed(),
        );
    }
    for (name, cache) in &ctx.caches {
        let Some(c) = cfg.caches.get(name) else { continue };
        jobs.push(
            async move {
                let probe = crate::redis::probe(name, &c.url, cache.as_ref(), &cfg.probes.redis, timeout);
                if c.queues.is_empty() {
                    return vec![probe.await];
                }
                let queues = crate::redis::queues(name, &c.url, cache.as_ref(), &c.queues, &cfg.probes.queue, timeout);
                let (a, b) = futures::join!(probe, queues);
                vec![a, b]
            }
            .boxed(),
        );
    }
    for check in &cfg.http {
        let limit = check
            .timeout_secs
            .map_or(outer, |s| Duration::from_secs(s.min(ops_core::limits::MAX_PROBE_TIMEOUT_SECS) + 2));
        let job = match &check.from_container {
            Some(inside) => crate::exec::http_probe(ctx, check, inside, timeout).boxed(),
            None => crate::http::probe(check, &cfg.probes.http, net).boxed(),
        };
        jobs.push(bounded(
            ProbeKind::Http,
            &check.name,
            check.url.redacted(),
            limit + Duration::from_secs(2),
            job.map(|r| vec![r]),
        ));
    }
    for check in &cfg.tcp {
        let job = match &check.from_container {
            Some(inside) => crate::exec::tcp_probe(ctx, check, inside, timeout).boxed(),
            None => crate::tcp::probe(check, net).boxed(),
        };
        jobs.push(bounded(
            ProbeKind::Tcp,
            &check.name,
            check.address.clone(),
            outer + Duration::from_secs(2),
            job.map(|r| vec![r]),
        ));
    }
    for check in &cfg.sql {
        let limit = check
            .timeout_secs
            .map_or(outer, |s| Duration::from_secs(s.min(ops_core::limits::MAX_PROBE_TIMEOUT_SECS) + 2));
        jobs.push(bounded(ProbeKind::Sql, &check.name, String::new(), limit + Duration::from_secs(2), async move {
            match ctx.database(check.database.as_deref()) {
                Ok((db_name, db)) => vec![crate::sql::probe(check, db_name, db.as_ref(), timeout).await],
                Err(e) => {
                    let mut r = ProbeReport::new(ProbeKind::Sql, &check.name, String::new());
                    r.problem(crate::Problem::new(ops_core::Runbook::ProbeFailed, Status::Unknown, e.to_string()));
                    vec![r.finish(Duration::ZERO)]
                }
            }
        }));
    }
    for check in &cfg.smtp {
        let limit = check
            .timeout_secs
            .map_or(outer, |s| Duration::from_secs(s.min(ops_core::limits::MAX_PROBE_TIMEOUT_SECS) + 2));
        jobs.push(bounded(
            ProbeKind::Smtp,
            &check.name,
            check.address.clone(),
            limit,
            crate::smtp::probe(check, net).map(|r| vec![r]),
        ));
    }
    for check in &cfg.prometheus {
        jobs.push(bounded(
            ProbeKind::Prometheus,
            &check.name,
            check.url.redacted(),
            outer,
            crate::prometheus::probe(check, net).map(|r| vec![r]),
        ));
    }
    for check in &cfg.celery {
        jobs.push(bounded(
            ProbeKind::Celery,
            &check.name,
            String::new(),
            outer,
            crate::celery::probe(ctx, check, &cfg.probes.queue, net, timeout).map(|r| vec![r]),
        ));
    }
    for check in &cfg.systemd {
        let name = check.check_name();
        jobs.push(
            async move {
                let limit = outer;
                match tokio::time::timeout(limit, crate::systemd::probe(ctx, check, timeout)).await {
                    Ok(r) => vec![r],
                    Err(_) => vec![ProbeReport::timed_out(ProbeKind::Systemd, &name, check.unit.clone(), limit)],
                }
            }
            .boxed(),
        );
    }
    for check in &cfg.exec {
        let limit = check
            .timeout_secs
            .map_or(outer, |s| Duration::from_secs(s.min(ops_core::limits::MAX_PROBE_TIMEOUT_SECS) + 2));
        jobs.push(bounded(
            ProbeKind::Exec,
            &check.name,
            check.container.clone(),
            limit + Duration::from_secs(2),
            crate::exec::probe(ctx, check, timeout).map(|r| vec![r]),
        ));
    }
    if !opts.skip_logs {
        for check in &cfg.log_patterns {
            jobs.push(bounded(
                ProbeKind::LogPattern,
                &check.name,
                String::new(),
                outer,
                crate::log_analysis::pattern_probe(ctx, check, timeout).map(|r| vec![r]),
            ));
        }
        for check in &cfg.access_logs {
            jobs.push(bounded(
                ProbeKind::AccessLog,
                &check.name,
                String::new(),
                outer,
                crate::log_analysis::access_probe(ctx, check, timeout).map(|r| vec![r]),
            ));
        }
    }
    for check in &cfg.dns {
        jobs.push(bounded(
            ProbeKind::Dns,
            &check.name,
            check.name.clone(),
            outer,
            crate::dns::probe(check, net).map(|r| vec![r]),
        ));
    }
    if let Some(am) = cfg.alertmanager.as_ref().filter(|am| am.has_url()) {
        jobs.push(bounded(
            ProbeKind::Alertmanager,
            "",
            am.url.redacted(),
            outer,
            crate::alertmanager::probe(am, net).map(|r| vec![r]),
        ));
    }
    for page in &cfg.status_pages {
        jobs.push(bounded(
            ProbeKind::StatusPage,
            &page.name,
            page.url.clone(),
            outer,
            crate::status_page::probe(page, net).map(|r| vec![r]),
        ));
    }
    for check in &cfg.tls {
        let target = check.endpoint.clone().or_else(|| check.file.as_ref().map(|f| f.display().to_string()));
        jobs.push(bounded(
            ProbeKind::Tls,
            &check.name,
            target.unwrap_or_default(),
            outer,
            crate::tls::probe(check, &cfg.probes.tls, timeout).map(|r| vec![r]),
        ));
    }
    if ctx.storage.is_some() || ctx.local_storage.is_some() {
        jobs.push(bounded(
            ProbeKind::Backup,
            "",
            String::new(),
            outer,
            crate::backup::probe(ctx, &cfg.probes.backup, timeout),
        ));
    }

    let concurrency = opts.concurrency.unwrap_or(cfg.probes.concurrency).max(1);
    let mut probes: Vec<ProbeReport> =
        futures::stream::iter(jobs).buffer_unordered(concurrency).flat_map(futures::stream::iter).collect().await;
    probes.sort_by(|a, b| a.name.cmp(&b.name));
    let deploys = record_releases(ctx, &mut probes).await;
    let mut report = finish(probes, cfg, started_at, clock.elapsed());
    advise_rollback(&mut report, &deploys);
    report
}

/// Records the versions the containers run in the release ledger (when a state store is
/// open), and says on each container deployed within `probes.container.deploy-window-mins`
/// that it was: `deployed 4 min ago (image changed from A to B)`. The recent deploys.
async fn record_releases(ctx: &Context, probes: &mut [ProbeReport]) -> Vec<ops_core::releases::Deploy> {
    let Some(store) = ctx.state.as_deref() else { return Vec::new() };
    let project = ctx.config.project.compose_project.clone().unwrap_or_default();
    let mut seen: Vec<(String, ops_core::releases::Version)> = probes
        .iter()
        .filter(|p| p.kind == ProbeKind::Container)
        .filter_map(|p| Some((p.name.strip_prefix("container:")?.to_owned(), p.release.clone()?)))
        .collect();
    if seen.is_empty() {
        return Vec::new();
    }
    // A store that fails leaves the ledger as it was: triage's verdicts do not depend on it
    // (the store's own failure shows in what records incidents).
    let Ok(known) = ops_core::releases::load(store, &project).await else { return Vec::new() };
    // A version not seen before gets its registry digest (one image lookup per deploy, not
    // one per container per triage).
    if let Some(rt) = ctx.containers.as_deref() {
        for (service, version) in &mut seen {
            if known.get(service.as_str()).is_none_or(|r| !r.current.same_as(version)) {
                version.repo_digest =
                    rt.image(&version.image_id).await.ok().and_then(|i| i.repo_digests.into_iter().next());
            }
        }
    }
    let Ok(ledger) = ops_core::releases::record(store, &project, known, seen).await else { return Vec::new() };
    let now = Utc::now();
    let minutes = i64::try_from(ctx.config.probes.container.deploy_window_mins).unwrap_or(i64::MAX / 120_000);
    let window = chrono::Duration::minutes(minutes.min(525_600));
    let mut deploys = Vec::new();
    for p in probes.iter_mut().filter(|p| p.kind == ProbeKind::Container) {
        let Some(service) = p.name.strip_prefix("container:") else { continue };
        if let Some(deploy) = ledger.get(service).and_then(|r| r.recent_deploy(now, window)) {
            p.evidence.insert(0, deploy.describe(now));
            deploys.push(deploy);
        }
    }
    deploys
}

/// amn.gg's rule: an urgent incident (P1, P2) while a service was deployed recently rolls
/// back first ("stability before forensics"); said on each, naming the deploys.
fn advise_rollback(report: &mut TriageReport, deploys: &[ops_core::releases::Deploy]) {
    if deploys.is_empty() {
        return;
    }
    let now = Utc::now();
    for incident in report.incidents.iter_mut().filter(|i| i.severity <= Severity::P2) {
        for d in deploys {
            let advice = format!(
                "{} was {}: consider rolling it back first (stability before forensics)",
                d.service,
                d.describe(now)
            );
            if !incident.advice.contains(&advice) {
                incident.advice.insert(0, advice);
            }
        }
    }
}

/// The engine first: its data root is a disk the host probe checks, and without it there are
/// no containers to list. Containers and their logs share one listing.
async fn engine_host_containers(ctx: &Context, opts: &TriageOptions, timeout: Duration) -> Vec<ProbeReport> {
    let cfg = &ctx.config;
    let Some(rt) = ctx.containers.as_deref() else {
        return vec![crate::host::probe(&cfg.probes.host, None, timeout).await];
    };
    let (engine, info) = crate::container::engine(rt, timeout).await;
    let root = info.as_ref().and_then(|i| i.root_dir.as_ref()).map(std::path::PathBuf::from);
    let host = crate::host::probe(&cfg.probes.host, root.as_deref(), timeout).await;
    if info.is_none() {
        return vec![engine, host];
    }
    let project = cfg.project.compose_project.as_deref();
    // The containers of configured databases and caches are services whatever their restart
    // policy: stopped, they are down.
    let mut t = cfg.probes.container.clone();
    t.services.extend(cfg.databases.values().filter_map(|d| d.container.clone()));
    t.services.extend(cfg.caches.values().filter_map(|c| c.container.clone()));
    let t = &t;
    let listed = tokio::time::timeout(timeout, crate::container::discover(rt, project, t)).await;
    let mut out = vec![engine, host];
    match listed {
        Ok(Ok(list)) if !list.is_empty() => {
            out.extend(crate::container::probe_containers(rt, &list, t, timeout).await);
            if !opts.skip_logs {
                let own = crate::logs::OwnActions::new(&crate::named::recent_audit(cfg).await, cfg);
                out.extend(crate::logs::probe_all(rt, &list, &cfg.probes.logs, &own, timeout).await);
            }
        }
        // Nothing listed, or the listing failed: probe_all says which, as its report.
        _ => out.extend(crate::container::probe_all(rt, project, t, timeout).await),
    }
    out
}

/// Assesses finished probe reports into a [`TriageReport`].
#[must_use]
pub fn finish(
    probes: Vec<ProbeReport>,
    cfg: &ops_core::config::OpsConfig,
    started_at: DateTime<Utc>,
    took: Duration,
) -> TriageReport {
    let incidents = assess(&probes, cfg);
    let severity = incidents.first().map(|i| i.severity);
    let status = probes.iter().map(|p| p.status).max().unwrap_or(Status::Ok);
    let ok: Vec<String> = probes.iter().filter(|p| p.problems.is_empty()).map(|p| p.name.clone()).collect();
    let summary = match incidents.first() {
        None => format!("all {} checks ok", probes.len()),
        Some(first) => {
            let mut s = format!(
                "{} (respond within {}): {} on {}",
                first.severity,
                first.severity.response_time(),
                first.runbook,
                first.check
            );
            if !first.consequences.is_empty() {
                s.push_str(&format!(
                    ", {} consequence{}",
                    first.consequences.len(),
                    if first.consequences.len() == 1 { "" } else { "s" }
                ));
            }
            if incidents.len() > 1 {
                s.push_str(&format!(
                    "; {} more incident{}",
                    incidents.len() - 1,
                    if incidents.len() == 2 { "" } else { "s" }
                ));
            }
            s
        }
    };
    TriageReport {
        severity,
        response_time: severity.map(|s| s.response_time().to_owned()),
        status,
        summary,
        started_at,
        duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        incidents,
        ok,
        probes,
    }
}
