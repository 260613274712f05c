//! The `containers` section: the runbooks' "Container resources — CPU/memory via
//! `docker stats`", with verdicts: CPU against `[perf.containers]`, memory against the
//! container's limit (`[probes.container]`) and against a service's own MB thresholds (the
//! runbooks' "indexer memory > 200 MB warn, > 400 MB critical — investigate leak, restart if
//! needed").

use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use ops_core::config::{PerfConfig, ProbesConfig, ServiceMemoryThresholds};
use ops_core::ports::{ContainerRuntime, ContainerState, ContainerStats, ContainerSummary};
use ops_core::{ErrorKind, Status};

use crate::report::over;
use crate::{PerfFinding, Section, SectionReport};
use ops_core::units::{human_bytes, human_duration, percent};
use ops_probes::container::{discover, display_names};
use ops_probes::{Observation, Unit};

/// Containers sampled at the same time (`docker stats` takes about a second each).
const PARALLEL: usize = 8;
/// One MB as `docker stats` shows memory (MiB).
const MB: u64 = 1024 * 1024;

/// What one container's sample gave.
struct Sample {
    /// How the findings name it: its Compose service, or its name when the service is shared.
    shown: String,
    container: ContainerSummary,
    /// `docker inspect`'s memory limit (`None`: unlimited, or inspect failed).
    limit: Option<u64>,
    stats: Result<ContainerStats, String>,
}

/// Analyses the running containers of Compose project `project` (every Compose project when
/// `None`; discovered like the container probe, without `probes.container.ignore`), sampled
/// 8 at a time, each within `probes.timeout-secs`: one `cpu` finding (percent of one core,
/// against `cfg.containers.cpu-*-percent`) and one `memory` finding per container, the worse
/// of its share of the memory limit (`probes.container.memory-*-percent`) and of the MB
/// thresholds of `cfg.containers.services` for its name or Compose service (MB as `docker
/// stats` shows them: MiB). Never fails: when the containers cannot be listed, or the project
/// has no running container, the section is failed.
pub async fn analyze(
    rt: &dyn ContainerRuntime,
    project: Option<&str>,
    cfg: &PerfConfig,
    probes: &ProbesConfig,
) -> SectionReport {
    let started = Instant::now();
    let failed = |e: String| SectionReport::failed(Section::Containers, "containers", e).finish(started.elapsed());
    let limit = Duration::from_secs(probes.timeout_secs.max(1));
    let containers = match tokio::time::timeout(limit, discover(rt, project, &probes.container)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return failed(format!("could not list containers: {e}")),
        Err(_) => return failed(format!("listing containers took over {}", human_duration(limit))),
    };
    let names = display_names(&containers);
    let running: Vec<(String, ContainerSummary)> =
        names.into_iter().zip(containers).filter(|(_, c)| c.state == ContainerState::Running).collect();
    if running.is_empty()
        && let Some(p) = project
    {
        return failed(format!("no running container in Compose project {p}"));
    }
    // Boxed first: a stream over a closure returning a borrowing future is not `Send` for
    // every lifetime (rust-lang/rust#102211).
    let samples: Vec<futures::future::BoxFuture<'_, Sample>> =
        running.into_iter().map(|(shown, c)| sample(rt, shown, c, limit).boxed()).collect();
    let samples: Vec<Sample> = futures::stream::iter(samples).buffered(PARALLEL).collect().await;
    let mut report = SectionReport::new(Section::Containers, "containers");
    for s in &samples {
        report.queries += 2;
        report.findings.extend(judge(s, cfg, probes));
    }
    report.finish(started.elapsed())
}

async fn sample(rt: &dyn ContainerRuntime, shown: String, container: ContainerSummary, limit: Duration) -> Sample {
    let both = async { tokio::join!(rt.inspect(&container.id), rt.stats(&container.id)) };
    let (limit_bytes, stats) = match tokio::time::timeout(limit, both).await {
        Ok((details, stats)) => (
            details.ok().and_then(|d| d.memory_limit_bytes),
            stats.map_err(|e| if e.kind() == ErrorKind::Conflict { String::new() } else { e.to_string() }),
        ),
        Err(_) => (None, Err(format!("docker stats did not answer within {}", human_duration(limit)))),
    };
    Sample { shown, container, limit: limit_bytes, stats }
}

/// The service thresholds of a container: by container name first, then Compose service.
fn service_thresholds<'c>(cfg: &'c PerfConfig, c: &ContainerSummary) -> Option<(&'c str, &'c ServiceMemoryThresholds)> {
    let services = &cfg.containers.services;
    services
        .get_key_value(&c.name)
        .or_else(|| c.compose_service.as_ref().and_then(|s| services.get_key_value(s)))
        .map(|(k, v)| (k.as_str(), v))
}

/// The `cpu` and `memory` findings of one sample (none for a container that stopped since it
/// was listed; one `unknown` when its statistics could not be read).
fn judge(s: &Sample, cfg: &PerfConfig, probes: &ProbesConfig) -> Vec<PerfFinding> {
    let stats = match &s.stats {
        Ok(stats) => stats,
        Err(e) if e.is_empty() => return Vec::new(),
        Err(e) => {
            return vec![PerfFinding::new("cpu", Status::Unknown, &s.shown, format!("no statistics: {e}"))];
        }
    };
    let named = (s.shown != s.container.name).then(|| format!("container {}", s.container.name));
    let t = &cfg.containers;
    let cpu = stats.cpu_percent;
    let mut cpu_finding = PerfFinding::new(
        "cpu",
        over(cpu, t.cpu_warn_percent, t.cpu_critical_percent),
        &s.shown,
        format!("CPU {cpu:.0} % of one core"),
    )
    .value(Observation::new("cpu", cpu, Unit::Percent));
    if cpu_finding.verdict >= Status::Warn {
        let (at, which) = if cpu_finding.verdict == Status::Critical {
            (t.cpu_critical_percent, "critical")
        } else {
            (t.cpu_warn_percent, "warn")
        };
        cpu_finding = cpu_finding.evidence(format!("over {at} % of one core (perf.containers.cpu-{which}-percent)"));
    }
    let mut memory = memory(&s.shown, stats.memory_usage_bytes, s.limit, service_thresholds(cfg, &s.container), probes);
    if let Some(n) = named {
        cpu_finding = cpu_finding.evidence(n.clone());
        memory = memory.evidence(n);
    }
    vec![cpu_finding, memory]
}

/// Memory against the container's limit and the service's MB thresholds; the verdict is the
/// worse, each crossed threshold is an evidence line.
fn memory(
    shown: &str,
    used: u64,
    limit: Option<u64>,
    service: Option<(&str, &ServiceMemoryThresholds)>,
    probes: &ProbesConfig,
) -> PerfFinding {
    #[allow(clippy::cast_precision_loss)]
    let bytes = |b: u64| b as f64;
    let mut verdict = Status::Ok;
    let mut evidence = Vec::new();
    let mut values = vec![Observation::new("memory_used", bytes(used), Unit::Bytes)];
    let message = match limit {
        Some(limit) => {
            let share = percent(used, limit);
            values.push(Observation::new("memory_limit", bytes(limit), Unit::Bytes));
            values.push(Observation::new("memory", share, Unit::Percent));
            let t = &probes.container;
            let status = over(share, t.memory_warn_percent, t.memory_critical_percent);
            if status >= Status::Warn {
                let (at, which) = if status == Status::Critical {
                    (t.memory_critical_percent, "critical")
                } else {
                    (t.memory_warn_percent, "warn")
                };
                evidence.push(format!("over {at} % of its limit (probes.container.memory-{which}-percent)"));
            }
            verdict = verdict.max(status);
            format!("memory {} of its {} limit ({share:.0} %)", human_bytes(used), human_bytes(limit))
        }
        None => format!("memory {} (no limit)", human_bytes(used)),
    };
    let mut action = None;
    if let Some((key, t)) = service {
        #[allow(clippy::cast_precision_loss)]
        let mb = used as f64 / MB as f64;
        let crossed = match (t.memory_critical_mb, t.memory_warn_mb) {
            (Some(c), _) if used > c.saturating_mul(MB) => Some((Status::Critical, c, "critical")),
            (_, Some(w)) if used > w.saturating_mul(MB) => Some((Status::Warn, w, "warn")),
            _ => None,
        };
        if let Some((status, at, which)) = crossed {
            evidence.push(format!(
                "{mb:.0} MB is over {at} MB (perf.containers.services.{key}.memory-{which}-mb): investigate a leak, \
                 restart if needed"
            ));
            verdict = verdict.max(status);
            action = Some(format!("opsctl restart {key}"));
        }
    }
    let mut f = PerfFinding::new("memory", verdict, shown, message);
    f.values = values;
    f.evidence = evidence;
    f.action = action;
    f
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ops_core::ports::container::MockContainerRuntime;
    use ops_core::ports::{COMPOSE_PROJECT_LABEL, ContainerDetails, HealthStatus};

    use super::*;

    fn summary(name: &str, service: &str, state: ContainerState) -> ContainerSummary {
        ContainerSummary {
            id: format!("id-{name}"),
            name: name.to_owned(),
            image: "img".to_owned(),
            state,
            status: String::new(),
            compose_project: Some("shop".to_owned()),
            compose_service: Some(service.to_owned()),
            labels: BTreeMap::from([(COMPOSE_PROJECT_LABEL.to_owned(), "shop".to_owned())]),
        }
    }

    fn details(limit: Option<u64>) -> ContainerDetails {
        ContainerDetails {
            id: "id".to_owned(),
            name: "n".to_owned(),
            image: "img".to_owned(),
            image_id: "sha256:0123".to_owned(),
            created_at: None,
            config_hash: String::new(),
            state: ContainerState::Running,
            health: HealthStatus::None,
            health_failing_streak: 0,
            last_health_output: None,
            exit_code: None,
            oom_killed: false,
            restart_count: 0,
            restart_policy: "always".to_owned(),
            started_at: None,
            finished_at: None,
            memory_limit_bytes: limit,
            error: None,
            compose_service: None,
            labels: BTreeMap::new(),
            env_names: Vec::new(),
            published_ports: Vec::new(),
        }
    }

    fn config() -> PerfConfig {
        let mut cfg = PerfConfig::default();
        cfg.containers.services.insert(
            "indexer".to_owned(),
            ServiceMemoryThresholds { memory_warn_mb: Some(200), memory_critical_mb: Some(400) },
        );
        cfg
    }

    #[test]
    fn thresholds_are_strictly_over() {
        assert_eq!(over(400.0, 400.0, 800.0), Status::Ok);
        assert_eq!(over(400.1, 400.0, 800.0), Status::Warn);
        assert_eq!(over(800.1, 400.0, 800.0), Status::Critical);
    }

    #[test]
    fn memory_is_the_worse_of_the_limit_share_and_the_service_thresholds() {
        let probes = ProbesConfig::default();
        let cfg = config();
        let indexer = cfg.containers.services.get_key_value("indexer").map(|(k, v)| (k.as_str(), v));
        // 250 MB of a 1 GB limit: fine by share, over the runbook's 200 MB.
        let f = memory("indexer", 250 * MB, Some(1024 * MB), indexer, &probes);
        assert_eq!(f.verdict, Status::Warn);
        assert_eq!(f.message, "memory 250.0 MiB of its 1.0 GiB limit (24 %)");
        assert_eq!(f.action.as_deref(), Some("opsctl restart indexer"));
        assert!(f.evidence[0].starts_with("250 MB is over 200 MB (perf.containers.services.indexer.memory-warn-mb)"));
        // 450 MB: critical by the service, and by share of a 460 MB limit too.
        let f = memory("indexer", 450 * MB, Some(460 * MB), indexer, &probes);
        assert_eq!(f.verdict, Status::Critical);
        assert_eq!(f.evidence.len(), 2, "{f:#?}");
        // No limit, no service thresholds: informational.
        let f = memory("api", 3000 * MB, None, None, &probes);
        assert_eq!((f.verdict, f.message.as_str()), (Status::Ok, "memory 2.9 GiB (no limit)"));
        // 85 % of the limit alone is a warning.
        assert_eq!(memory("api", 85, Some(100), None, &probes).verdict, Status::Warn);
    }

    #[tokio::test]
    async fn every_running_container_is_sampled_and_judged() {
        let mut rt = MockContainerRuntime::new();
        rt.expect_list_containers().returning(|_| {
            Ok(vec![
                summary("shop-indexer-1", "indexer", ContainerState::Running),
                summary("shop-api-1", "api", ContainerState::Running),
                summary("shop-old-1", "old", ContainerState::Exited),
                summary("shop-gone-1", "gone", ContainerState::Running),
            ])
        });
        rt.expect_inspect().returning(|id| Ok(details((id == "id-shop-api-1").then_some(512 * MB))));
        rt.expect_stats().returning(|id| match id {
            "id-shop-indexer-1" => {
                Ok(ContainerStats { cpu_percent: 12.0, memory_usage_bytes: 450 * MB, memory_limit_bytes: 0 })
            }
            "id-shop-api-1" => {
                Ok(ContainerStats { cpu_percent: 97.0, memory_usage_bytes: 100 * MB, memory_limit_bytes: 0 })
            }
            _ => Err(ops_core::Error::conflict("container is not running")),
        });
        let r = analyze(&rt, Some("shop"), &config(), &ProbesConfig::default()).await;
        assert_eq!(r.status, Status::Critical);
        let got: Vec<(&str, &str, Status)> =
            r.findings.iter().map(|f| (f.check.as_str(), f.subject.as_str(), f.verdict)).collect();
        assert_eq!(
            got,
            [
                ("cpu", "api", Status::Critical),
                ("memory", "indexer", Status::Critical),
                ("cpu", "indexer", Status::Ok),
                ("memory", "api", Status::Ok),
            ]
        );
    }

    #[tokio::test]
    async fn a_project_without_running_containers_cannot_be_analysed() {
        let mut rt = MockContainerRuntime::new();
        rt.expect_list_containers().returning(|_| Ok(vec![summary("shop-old-1", "old", ContainerState::Exited)]));
        let r = analyze(&rt, Some("shop"), &config(), &ProbesConfig::default()).await;
        assert_eq!(
            (r.status, r.error.as_deref()),
            (Status::Unknown, Some("no running container in Compose project shop"))
        );
        let mut down = MockContainerRuntime::new();
        down.expect_list_containers().returning(|_| Err(ops_core::Error::unavailable("docker is down")));
        let r = analyze(&down, None, &config(), &ProbesConfig::default()).await;
        assert_eq!(r.status, Status::Unknown);
        assert!(r.error.unwrap().starts_with("could not list containers"));
    }
}
