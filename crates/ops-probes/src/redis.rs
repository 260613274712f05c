//! A Redis server ([`probe`]): the runbooks' `redis-cli -a "$REDIS_PASSWORD" ping` and
//! `info memory`, the hit-rate alert, and a full `noeviction` cache that rejects writes; and
//! its lists used as queues ([`queues`]): `redis-cli llen celery`.

use std::time::Duration;

use ops_core::config::{QueueThresholds, RedisThresholds};
use ops_core::ports::{Cache, CacheInfo, CachePing, QueueLength};
use ops_core::{Runbook, SecretUrl, Status};

use crate::report::{Observation, ProbeKind, ProbeReport, Problem, Unit};
use crate::support::within;
use ops_core::units::{human_bytes, human_duration, plural};

/// Probes cache `name` (the report is `redis:{name}`, its target `url` redacted) within
/// `timeout`:
/// - no answer, `NOAUTH` (a password is needed and none is configured) or `WRONGPASS`:
///   `cache-down`, critical, naming which;
/// - memory over `t.memory_warn_percent` / `t.memory_critical_percent` of `maxmemory`: with
///   `noeviction` that is `cache-full` ("writes will be rejected"), critical once over the
///   critical share or once writes were rejected; with an evicting policy `cache-degraded`;
/// - hit rate under `t.hit_rate_warn_percent` / `t.hit_rate_critical_percent`, judged only
///   after `t.min_lookups` lookups: `cache-degraded`.
///
/// Observes latency, memory, hit rate, hits, misses, evictions and clients; the message
/// names the role and version.
pub async fn probe(
    name: &str,
    url: &SecretUrl,
    cache: &dyn Cache,
    t: &RedisThresholds,
    timeout: Duration,
) -> ProbeReport {
    let base = ProbeReport::new(ProbeKind::Redis, name, url.redacted());
    within(base, timeout, |report| check(cache, report, t)).await
}

async fn check(cache: &dyn Cache, mut report: ProbeReport, t: &RedisThresholds) -> ProbeReport {
    let down = |message: String| Problem::new(Runbook::CacheDown, Status::Critical, message);
    match cache.ping().await {
        Ok(CachePing::Pong { latency }) => {
            report.observe(Observation::new("latency", latency.as_secs_f64() * 1000.0, Unit::Milliseconds));
        }
        Ok(CachePing::NoAuth) => {
            report.problem(down("NOAUTH: the server requires a password and none is configured".to_owned()));
            return report;
        }
        Ok(CachePing::WrongPass) => {
            report.problem(down("WRONGPASS: the server rejects the configured password".to_owned()));
            return report;
        }
        Err(e) => {
            report.problem(down(format!("unreachable: {e}")));
            return report;
        }
    }
    let info = match cache.info().await {
        Ok(info) => info,
        Err(e) => {
            report.problem(Problem::new(
                Runbook::ProbeFailed,
                Status::Unknown,
                format!("answers PING, but INFO failed: {e}"),
            ));
            return report;
        }
    };
    let (observations, problems) = assess(&info, t);
    observations.into_iter().for_each(|o| report.observe(o));
    problems.into_iter().for_each(|p| report.problem(p));
    if report.problems.is_empty() {
        let memory = match info.maxmemory_bytes {
            Some(max) => format!("{} of {}", human_bytes(info.used_memory_bytes), human_bytes(max)),
            None => format!("{} (no maxmemory)", human_bytes(info.used_memory_bytes)),
        };
        report.message = format!("PONG; {} redis {}, memory {memory}", info.role, info.version);
    }
    report
}

/// Memory and hit rate from `INFO`.
#[must_use]
pub fn assess(info: &CacheInfo, t: &RedisThresholds) -> (Vec<Observation>, Vec<Problem>) {
    #[allow(clippy::cast_precision_loss)] // counters far below 2^52
    let count = |v: u64| v as f64;
    let mut observations = vec![
        Observation::new("memory_used", count(info.used_memory_bytes), Unit::Bytes),
        Observation::new("keyspace_hits", count(info.keyspace_hits), Unit::Count),
        Observation::new("keyspace_misses", count(info.keyspace_misses), Unit::Count),
        Observation::new("evicted_keys", count(info.evicted_keys), Unit::Count),
        Observation::new("connected_clients", count(info.connected_clients), Unit::Count),
    ];
    let mut problems = Vec::new();
    if let (Some(max), Some(share)) = (info.maxmemory_bytes, info.memory_share()) {
        let share = share * 100.0;
        observations.push(Observation::new("maxmemory", count(max), Unit::Bytes));
        observations.push(Observation::new("memory", share, Unit::Percent));
        let rejected = oom_rejections(info);
        let noeviction = info.maxmemory_policy == "noeviction";
        let usage =
            format!("memory {} of maxmemory {} ({share:.0} %)", human_bytes(info.used_memory_bytes), human_bytes(max));
        if noeviction && (share > t.memory_critical_percent || (rejected > 0 && share > t.memory_warn_percent)) {
            let mut p = Problem::new(
                Runbook::CacheFull,
                Status::Critical,
                format!("{usage} with maxmemory-policy noeviction: writes will be rejected"),
            );
            if rejected > 0 {
                let commands = plural(rejected, "command", "commands");
                p = p.with_evidence([format!("{commands} already rejected with OOM (errorstat_OOM)")]);
            }
            problems
                .push(p.with_evidence(["fix: raise maxmemory, or CONFIG SET maxmemory-policy allkeys-lru".to_owned()]));
        } else if noeviction && share > t.memory_warn_percent {
            problems.push(Problem::new(
                Runbook::CacheFull,
                Status::Warn,
                format!("{usage} with maxmemory-policy noeviction: writes will be rejected once full"),
            ));
        } else if share > t.memory_warn_percent {
            problems.push(Problem::new(
                Runbook::CacheDegraded,
                Status::Warn,
                format!("{usage}: keys are being evicted ({})", info.maxmemory_policy),
            ));
        }
    }
    let lookups = info.keyspace_hits + info.keyspace_misses;
    if let Some(rate) = info.hit_rate() {
        let rate = rate * 100.0;
        observations.push(Observation::new("hit_rate", rate, Unit::Percent));
        let status = if rate < t.hit_rate_critical_percent {
            Some(Status::Critical)
        } else if rate < t.hit_rate_warn_percent {
            Some(Status::Warn)
        } else {
            None
        };
        if let Some(status) = status.filter(|_| lookups >= t.min_lookups) {
            let since = human_duration(Duration::from_secs(info.uptime_seconds));
            problems.push(
                Problem::new(
                    Runbook::CacheDegraded,
                    status,
                    format!(
                        "hit rate {rate:.0} % ({} hits, {} misses since start {since} ago)",
                        info.keyspace_hits, info.keyspace_misses
                    ),
                )
                .with_evidence([format!("evicted keys: {}", info.evicted_keys)]),
            );
        }
    }
    (observations, problems)
}

/// Commands rejected because memory was full, from `INFO errorstats` (`errorstat_OOM:count=3`).
fn oom_rejections(info: &CacheInfo) -> u64 {
    info.raw
        .get("errorstat_OOM")
        .and_then(|v| v.split(',').find_map(|kv| kv.strip_prefix("count=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Lengths of the lists `queues` (Celery's default queue is `celery`) of cache `name`, within
/// `timeout`. The report is `queue:{name}` and depends on `redis:{name}`, so a down Redis is
/// reported once. A queue longer than `t.warn` / `t.critical` is `queue-backlog`: workers
/// are missing or slow.
pub async fn queues(
    name: &str,
    url: &SecretUrl,
    cache: &dyn Cache,
    queues: &[String],
    t: &QueueThresholds,
    timeout: Duration,
) -> ProbeReport {
    let mut base = ProbeReport::new(ProbeKind::Queue, name, url.redacted());
    base.depends_on.push(format!("{}:{name}", ProbeKind::Redis));
    within(base, timeout, |mut report| async move {
        if let Some(shown) = observe_queues(&mut report, cache, queues, t).await
            && report.problems.is_empty()
        {
            report.message = format!("queue lengths: {shown}");
        }
        report
    })
    .await
}

/// Reads the lengths of `queues` into `report` (observations, a `queue-backlog` problem per
/// queue over a threshold, `probe-failed` when they cannot be read); `name length, …` when read.
pub(crate) async fn observe_queues(
    report: &mut ProbeReport,
    cache: &dyn Cache,
    queues: &[String],
    t: &QueueThresholds,
) -> Option<String> {
    match cache.queue_lengths(queues).await {
        Ok(lengths) => {
            let (observations, problems) = backlog(&lengths, t);
            observations.into_iter().for_each(|o| report.observe(o));
            problems.into_iter().for_each(|p| report.problem(p));
            Some(lengths.iter().map(|q| format!("{} {}", q.name, q.length)).collect::<Vec<_>>().join(", "))
        }
        Err(e) => {
            report.problem(Problem::new(
                Runbook::ProbeFailed,
                Status::Unknown,
                format!("could not read queue lengths: {e}"),
            ));
            None
        }
    }
}

/// One `queue_length` observation per queue, labelled `queue`, and a `queue-backlog` problem
/// per queue over a threshold.
#[must_use]
pub fn backlog(lengths: &[QueueLength], t: &QueueThresholds) -> (Vec<Observation>, Vec<Problem>) {
    let mut observations = Vec::new();
    let mut problems = Vec::new();
    for q in lengths {
        #[allow(clippy::cast_precision_loss)]
        observations
            .push(Observation::new("queue_length", q.length as f64, Unit::Count).label("queue", q.name.clone()));
        let (status, limit) = if q.length > t.critical {
            (Status::Critical, t.critical)
        } else if q.length > t.warn {
            (Status::Warn, t.warn)
        } else {
            continue;
        };
        problems.push(Problem::new(
            Runbook::QueueBacklog,
            status,
            format!(
                "queue {} holds {} (over {limit}): workers are missing or slow",
                q.name,
                plural(q.length, "task", "tasks")
            ),
        ));
    }
    (observations, problems)
}

#[cfg(test)]
mod tests;
