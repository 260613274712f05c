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
    let timeout = Duration::from_secs(opts.timeout_secs.unwrap_or(cfg.probes.timeout_secs).max(1));
    // A job that has its own inner timeout gets a little more, so its own report wins.
    let outer = timeout + Duration::from_secs(2);
    let net = crate::NetOptions { timeout, ..crate::NetOptions::from_config(&cfg.probes) };
    let net = &net;
    let mut jobs: Vec<Job<'_>> = Vec::new();

    for check in &cfg.http {
        let limit = check.timeout_secs.map_or(outer, |s| Duration::from_secs(s) + Duration::from_secs(2));
        jobs.push(bounded(
            ProbeKind::Http,
            &check.name,
            check.url.redacted(),
            limit,
            crate::http::probe(check, &cfg.probes.http, net).map(|r| vec![r]),
        ));
    }
    for check in &cfg.tcp {
        jobs.push(bounded(
            ProbeKind::Tcp,
            &check.name,
            check.address.clone(),
            outer,
            crate::tcp::probe(check, net).map(|r| vec![r]),
        ));
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
    if let Some(am) = &cfg.alertmanager {
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
    let _ = opts.skip_logs;

    let concurrency = opts.concurrency.unwrap_or(cfg.probes.concurrency).max(1);
    let mut probes: Vec<ProbeReport> =
        futures::stream::iter(jobs).buffer_unordered(concurrency).flat_map(futures::stream::iter).collect().await;
    probes.sort_by(|a, b| a.name.cmp(&b.name));
    finish(probes, cfg, started_at, clock.elapsed())
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
