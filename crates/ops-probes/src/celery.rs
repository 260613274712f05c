//! `[[celery]]`: are the Celery workers online, and do their queues drain? Workers come from
//! Flower's API when `flower-url` is set (`GET /api/workers?status=true`: each worker seen by
//! its events, alive or not; the runbooks' Flower `/api/workers`), else from the workers'
//! containers (running or not). Fewer online than `min-workers` is `workers-down` critical.
//! Queue lengths (`LLEN` of each queue in Redis) are judged by `[probes.queue]`
//! (`queue-backlog`): workers offline and a growing backlog are the two halves of one outage.

use std::collections::BTreeMap;
use std::time::Duration;

use ops_core::config::{CeleryCheckConfig, QueueThresholds};
use ops_core::ports::ContainerState;
use ops_core::{Context, Runbook, Status};

use crate::net::{self, NetOptions};
use crate::report::{Observation, ProbeKind, ProbeReport, Problem, Unit};
use crate::support::within;

/// Bytes of Flower's answer read at most.
const MAX_ANSWER: usize = 1024 * 1024;

/// Workers by name and whether each is online, or why they cannot be told.
async fn workers(
    ctx: &Context,
    check: &CeleryCheckConfig,
    options: &NetOptions,
) -> Result<BTreeMap<String, bool>, String> {
    if let Some(url) = &check.flower_url {
        let url = format!("{}/api/workers?status=true", url.expose().trim_end_matches('/'));
        let (_, body) = net::get_document(&url, MAX_ANSWER, options).await;
        let body = body.map_err(|e| format!("Flower: {e}"))?;
        return serde_json::from_slice::<BTreeMap<String, bool>>(&body)
            .map_err(|e| format!("Flower's /api/workers?status=true is not a map of workers ({e})"));
    }
    let stack = ops_core::stack::Stack::read(ctx).await.map_err(|e| e.to_string())?;
    let mut found = BTreeMap::new();
    for name in &check.workers {
        for c in stack.find(name).map_err(|e| e.to_string())? {
            found.insert(c.name.clone(), c.state == ContainerState::Running);
        }
    }
    Ok(found)
}

/// Probes the workers and their queues within `timeout`.
///
/// Observations: `workers_online`, `workers_offline` (counts), `queue_length` per queue
/// (labelled `queue`).
pub async fn probe(
    ctx: &Context,
    check: &CeleryCheckConfig,
    queue_thresholds: &QueueThresholds,
    options: &NetOptions,
    timeout: Duration,
) -> ProbeReport {
    let target =
        check.flower_url.as_ref().map_or_else(|| format!("workers {}", check.workers.join(", ")), |u| u.redacted());
    let mut base = ProbeReport::new(ProbeKind::Celery, &check.name, target);
    base.critical = check.critical;
    base.depends_on.clone_from(&check.depends_on);
    if let Ok((cache_name, _)) = ctx.cache(check.cache.as_deref()) {
        base.depends_on.push(format!("redis:{cache_name}"));
    }
    within(base, timeout, |mut report| async move {
        let min = check.min_workers.unwrap_or(1);
        match workers(ctx, check, options).await {
            Ok(found) => {
                let online: Vec<&str> = found.iter().filter(|(_, up)| **up).map(|(n, _)| n.as_str()).collect();
                let offline: Vec<&str> = found.iter().filter(|(_, up)| !**up).map(|(n, _)| n.as_str()).collect();
                #[allow(clippy::cast_precision_loss)]
                {
                    report.observe(Observation::new("workers_online", online.len() as f64, Unit::Count));
                    report.observe(Observation::new("workers_offline", offline.len() as f64, Unit::Count));
                }
                if online.len() < min as usize {
                    let gone =
                        if offline.is_empty() { String::new() } else { format!(" ({} offline)", offline.join(", ")) };
                    report.problem(Problem::new(
                        Runbook::WorkersDown,
                        Status::Critical,
                        format!("{} of at least {min} workers online{gone}", online.len()),
                    ));
                } else if !offline.is_empty() {
                    report.problem(Problem::new(
                        Runbook::WorkersDown,
                        Status::Warn,
                        format!("{} online, {} offline: {}", online.len(), offline.len(), offline.join(", ")),
                    ));
                } else {
                    report.message = format!("{} workers online: {}", online.len(), online.join(", "));
                }
            }
            Err(reason) => report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, reason)),
        }
        let queues = if check.queues.is_empty() { vec!["celery".to_owned()] } else { check.queues.clone() };
        // No cache configured: the workers alone.
        if let Ok((_, cache)) = ctx.cache(check.cache.as_deref())
            && let Some(shown) =
                crate::redis::observe_queues(&mut report, cache.as_ref(), &queues, queue_thresholds).await
        {
            if report.problems.is_empty() {
                report.message = format!("{}; queues: {shown}", report.message);
            } else {
                report.evidence.push(format!("queue lengths: {shown}"));
            }
        }
        report
    })
    .await
}
