//! The container engine ([`engine`]) and every container of a Compose project
//! ([`probe_all`]): what on-call people read from `docker compose ps`, `docker inspect`
//! (`ExitCode`, `OOMKilled`, `RestartCount`, `Health`), `docker stats --no-stream` and
//! `docker logs --tail`.
//!
//! One report per container, named after its Compose service (`container:db`) or, when two
//! discovered containers share a service name, after the container (`container:shop-db-1`);
//! the other names are its aliases. Compose's `depends_on` label becomes `depends_on`, so
//! triage reports an API that fails because its database is down under the database.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt};
use ops_core::config::ContainerThresholds;
use ops_core::ports::{
    COMPOSE_PROJECT_LABEL, ContainerDetails, ContainerFilter, ContainerRuntime, ContainerState, ContainerSummary,
    HealthStatus, LogOptions, RuntimeInfo,
};
use ops_core::{Runbook, Status};

use crate::report::{Observation, ProbeKind, ProbeReport, Problem, Unit};
use crate::support::{evidence_line, fold_repeats, within};
use ops_core::stack::{COMPOSE_DEPENDS_ON_LABEL, is_oneoff, parse_depends_on};
use ops_core::units::{human_bytes, human_duration, percent, plural};

/// Containers probed at the same time.
const PARALLEL: usize = 8;
/// Log lines kept as the evidence of a broken container.
const LOG_LINES: usize = 10;
/// Lines kept of a failing healthcheck's output.
const HEALTH_LINES: usize = 5;

/// Whether the container engine answers, like `systemctl status docker` / `docker info`.
/// The engine's failure is critical for everything (`docker-down`), so the report is
/// `critical`. Returns the engine's details too: [`RuntimeInfo::root_dir`] is the data root
/// the host probe checks.
pub async fn engine(rt: &dyn ContainerRuntime, timeout: Duration) -> (ProbeReport, Option<RuntimeInfo>) {
    let started = Instant::now();
    let mut report = ProbeReport::new(ProbeKind::Engine, "", "docker");
    report.critical = true;
    let info = match tokio::time::timeout(timeout, rt.ping()).await {
        Ok(Ok(info)) => {
            report.observe(Observation::new("latency", millis(started.elapsed()), Unit::Milliseconds));
            report.message = format!(
                "docker {} answers (API {}){}",
                info.version,
                info.api_version,
                info.root_dir.as_deref().map(|d| format!(", data root {d}")).unwrap_or_default()
            );
            Some(info)
        }
        Ok(Err(e)) => {
            report.problem(Problem::new(Runbook::DockerDown, Status::Critical, format!("docker engine: {e}")));
            None
        }
        Err(_) => {
            report.problem(Problem::new(
                Runbook::DockerDown,
                Status::Critical,
                format!("docker engine did not answer within {}", human_duration(timeout)),
            ));
            None
        }
    };
    (report.finish(started.elapsed()), info)
}

/// The containers [`probe_all`] looks at: every container (stopped ones too) of Compose
/// project `project`, or of any Compose project when `None`, without the one-off containers
/// of `docker compose run` and without those in `t.ignore` (by name or service). Sorted by
/// name.
///
/// # Errors
/// The runtime's: `Unavailable` when the engine cannot be reached.
pub async fn discover(
    rt: &dyn ContainerRuntime,
    project: Option<&str>,
    t: &ContainerThresholds,
) -> ops_core::Result<Vec<ContainerSummary>> {
    let mut filter = ContainerFilter { all: true, compose_project: project.map(str::to_owned), ..Default::default() };
    if project.is_none() {
        filter.labels.insert(COMPOSE_PROJECT_LABEL.to_owned(), None);
    }
    let mut containers = rt.list_containers(&filter).await?;
    // A container a rollback put aside is not a member of the stack.
    containers.retain(|c| !is_oneoff(c) && !listed(&t.ignore, c) && !c.name.contains(ops_core::stack::ASIDE_MARK));
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(containers)
}

/// Probes every container of the Compose project (see [`discover`]) concurrently, each within
/// `timeout`. When the containers cannot be listed, or a configured project has none, the one
/// report `container` says so.
pub async fn probe_all(
    rt: &dyn ContainerRuntime,
    project: Option<&str>,
    t: &ContainerThresholds,
    timeout: Duration,
) -> Vec<ProbeReport> {
    let started = Instant::now();
    let target = project.map_or_else(|| "all compose projects".to_owned(), |p| format!("compose project {p}"));
    let mut listing = ProbeReport::new(ProbeKind::Container, "", target);
    listing.depends_on.push(ProbeKind::Engine.as_str().to_owned());
    let containers = match tokio::time::timeout(timeout, discover(rt, project, t)).await {
        Ok(Ok(containers)) => containers,
        Ok(Err(e)) => {
            listing.problem(Problem::new(
                Runbook::ProbeFailed,
                Status::Unknown,
                format!("could not list containers: {e}"),
            ));
            return vec![listing.finish(started.elapsed())];
        }
        Err(_) => {
            listing.problem(Problem::new(
                Runbook::ProbeFailed,
                Status::Unknown,
                format!("listing containers took over {}", human_duration(timeout)),
            ));
            return vec![listing.finish(timeout)];
        }
    };
    if containers.is_empty() {
        match project {
            Some(p) => listing.problem(Problem::new(
                Runbook::ContainerDown,
                Status::Critical,
                format!("no container of Compose project {p} exists (is the stack up? docker compose up -d)"),
            )),
            // Nothing was expected: a host without Compose containers is not a problem.
            None => listing.message = "no Compose container on this host".to_owned(),
        }
        return vec![listing.finish(started.elapsed())];
    }
    probe_containers(rt, &containers, t, timeout).await
}

/// Probes the given containers concurrently (at most 8 at a time), each within `timeout`;
/// one report per container, in the order given.
pub async fn probe_containers(
    rt: &dyn ContainerRuntime,
    containers: &[ContainerSummary],
    t: &ContainerThresholds,
    timeout: Duration,
) -> Vec<ProbeReport> {
    let names = display_names(containers);
    // The futures are built first and boxed: a stream mapping over a closure that returns a
    // borrowing future is not `Send` for every lifetime (rust-lang/rust#102211), and triage
    // boxes this future.
    let probes: Vec<futures::future::BoxFuture<'_, ProbeReport>> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut base = ProbeReport::new(ProbeKind::Container, &names[i], c.name.clone());
            base.aliases = aliases(c, &names[i], ProbeKind::Container);
            base.depends_on = depends_on(c, containers, &names);
            base.critical = listed(&t.critical, c);
            within(base, timeout, move |report| probe_one(rt, c, report, t)).boxed()
        })
        .collect();
    futures::stream::iter(probes).buffered(PARALLEL).collect().await
}

async fn probe_one(
    rt: &dyn ContainerRuntime,
    c: &ContainerSummary,
    mut report: ProbeReport,
    t: &ContainerThresholds,
) -> ProbeReport {
    let d = match rt.inspect(&c.id).await {
        Ok(d) => d,
        Err(e) => {
            report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, format!("inspect failed: {e}")));
            return report;
        }
    };
    let now = Utc::now();
    // The version it runs, for the release ledger (which looks up a new version's digest).
    report.release = Some(ops_core::releases::Version::of(&d, None, now));
    for problem in assess(&d, now, t) {
        report.problem(problem);
    }
    report.observe(Observation::new("restarts", f64::from(d.restart_count), Unit::Count));
    // How long a stopped container has been down: when the outage began, for an incident's
    // detection time.
    if d.state != ContainerState::Running
        && let Some(down) = age(d.finished_at, now)
    {
        report.observe(Observation::new("down_for", down.as_secs_f64(), Unit::Seconds));
    }
    // A sample of a container between two crashes says nothing.
    let looping = report.problems.iter().any(|p| p.runbook == Runbook::CrashLoop);
    if d.state == ContainerState::Running && !looping {
        if let Some(up) = age(d.started_at, now) {
            report.observe(Observation::new("uptime", up.as_secs_f64(), Unit::Seconds));
        }
        // Usage of a container that stopped meanwhile is simply not reported.
        if let Ok(stats) = rt.stats(&c.id).await {
            #[allow(clippy::cast_precision_loss)]
            report.observe(Observation::new("memory_used", stats.memory_usage_bytes as f64, Unit::Bytes));
            report.observe(Observation::new("cpu", stats.cpu_percent, Unit::Percent));
            if let Some(limit) = d.memory_limit_bytes {
                let (observations, problem) = memory(stats.memory_usage_bytes, limit, t);
                observations.into_iter().for_each(|o| report.observe(o));
                problem.into_iter().for_each(|p| report.problem(p));
            }
        }
    }
    // A port it could not bind: who holds it (the runbooks' `lsof -i :PORT`).
    if d.state != ContainerState::Running
        && d.error.as_deref().is_some_and(|e| e.contains("address already in use") || e.contains("already allocated"))
    {
        for port in &d.published_ports {
            let held = crate::ports::holders_of(*port).await;
            report.evidence.extend(held.iter().map(|h| format!("port {port} is held by {}", h.describe())));
            // Another container's published port (its docker-proxy, or no process at all
            // without the userland proxy): name the container.
            if let Some(other) = publisher(rt, &c.id, *port).await {
                report.evidence.push(format!("port {port} is published by container {other}"));
            }
        }
    }
    let broken = report.problems.iter().any(|p| p.runbook != Runbook::MemoryPressure && p.status >= Status::Warn);
    if broken {
        let options = LogOptions { tail: Some(LOG_LINES), ..Default::default() };
        if let Ok(lines) = rt.logs(&c.id, &options).await {
            report.evidence.extend(fold_repeats(lines.iter().map(|l| evidence_line(&l.text))));
        }
    }
    report.message = match report.problems.iter().map(|p| p.status).max() {
        // The first of the worst problems: `assess` lists what happened before why.
        Some(worst) => {
            report.problems.iter().find(|p| p.status == worst).map(|p| p.message.clone()).unwrap_or_default()
        }
        None => healthy_message(&d, now),
    };
    report
}

/// Containers inspected at most when looking for the one that publishes a port.
const PUBLISHERS_INSPECTED: usize = 64;

/// The running container, other than `except`, that publishes host `port`.
async fn publisher(rt: &dyn ContainerRuntime, except: &str, port: u16) -> Option<String> {
    let filter = ops_core::ports::ContainerFilter { all: false, ..Default::default() };
    let running = rt.list_containers(&filter).await.ok()?;
    for c in running.iter().filter(|c| c.id != except).take(PUBLISHERS_INSPECTED) {
        if rt.inspect(&c.id).await.is_ok_and(|d| d.published_ports.contains(&port)) {
            return Some(c.name.clone());
        }
    }
    None
}

/// What is wrong with a container, from `docker inspect` alone (memory needs its stats).
#[must_use]
pub fn assess(d: &ContainerDetails, now: DateTime<Utc>, t: &ContainerThresholds) -> Vec<Problem> {
    let mut problems = Vec::new();
    let ago =
        |at: Option<DateTime<Utc>>| age(at, now).map(|a| format!(" {} ago", human_duration(a))).unwrap_or_default();
    let code = d.exit_code.unwrap_or(0);
    let with_error = |p: Problem| match &d.error {
        Some(e) => p.with_evidence([format!("engine error: {}", evidence_line(e))]),
        None => p,
    };
    match d.state {
        ContainerState::Exited => {
            // A job that finished by itself and is not meant to restart is not an outage, but
            // it cannot be told from a stopped service: say so, softly.
            // A container listed as critical or as a service is never a finished job.
            let named =
                |list: &[String]| list.iter().any(|n| *n == d.name || d.compose_service.as_deref() == Some(n.as_str()));
            let finished_job = code == 0
                && matches!(d.restart_policy.as_str(), "no" | "")
                && !named(&t.critical)
                && !named(&t.services);
            let message = if code == 0 && !finished_job {
                // A service does not end by itself with 0: someone stopped it (`docker stop`,
                // `docker compose stop`), and it shut down cleanly.
                format!("stopped: exited with code 0 after a stop request (a clean shutdown){}", ago(d.finished_at))
            } else {
                format!("exited with code {code}{}{}", exit_meaning(code, d.oom_killed), ago(d.finished_at))
            };
            problems.push(with_error(if finished_job {
                Problem::new(
                    Runbook::ContainerDown,
                    Status::Warn,
                    format!("{message}; a finished one-shot job? list it in probes.container.ignore"),
                )
            } else {
                Problem::new(Runbook::ContainerDown, Status::Critical, message)
            }));
        }
        ContainerState::Dead => problems.push(with_error(Problem::new(
            Runbook::ContainerDown,
            Status::Critical,
            format!("dead (the engine could not stop or remove it){}", ago(d.finished_at)),
        ))),
        ContainerState::Paused => {
            problems.push(Problem::new(Runbook::ContainerDown, Status::Critical, "paused: it serves nothing"));
        }
        ContainerState::Created => problems.push(with_error(Problem::new(
            Runbook::ContainerDown,
            Status::Critical,
            "created but never started",
        ))),
        ContainerState::Restarting => problems.push(Problem::new(
            Runbook::CrashLoop,
            Status::Critical,
            format!(
                "restarting: {} so far, last exit code {code}{} (restart policy {})",
                plural(d.restart_count, "restart", "restarts"),
                exit_meaning(code, d.oom_killed),
                d.restart_policy
            ),
        )),
        ContainerState::Running | ContainerState::Removing | ContainerState::Unknown => {}
    }
    let required =
        t.required_env.iter().filter(|(k, _)| **k == d.name || d.compose_service.as_deref() == Some(k.as_str()));
    let missing: Vec<&str> = required
        .flat_map(|(_, names)| names.iter())
        .filter(|n| d.env_names.binary_search(n).is_err())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        problems.push(Problem::new(
            Runbook::ConfigError,
            Status::Critical,
            format!("missing required environment: {} (probes.container.required-env)", missing.join(", ")),
        ));
    }
    let window = Duration::from_secs(t.restart_window_secs);
    let recent_start = age(d.started_at, now).is_some_and(|a| a <= window);
    if d.state != ContainerState::Restarting && d.restart_count >= t.restart_loop_count && recent_start {
        problems.push(Problem::new(
            Runbook::CrashLoop,
            Status::Critical,
            format!(
                "restarted {}, last start{} (within {}; restart policy {})",
                plural(d.restart_count, "time", "times"),
                ago(d.started_at),
                human_duration(window),
                d.restart_policy
            ),
        ));
    }
    let stopped = d.state != ContainerState::Running;
    let limit = d.memory_limit_bytes.map_or_else(
        || "no memory limit: the host ran out of memory".to_owned(),
        |l| format!("memory limit {}", human_bytes(l)),
    );
    if d.oom_killed {
        problems.push(Problem::new(
            Runbook::OomKilled,
            Status::Critical,
            format!("killed by the kernel OOM killer{} ({limit})", ago(d.finished_at)),
        ));
    } else if stopped && code == 137 {
        problems.push(Problem::new(
            Runbook::OomKilled,
            Status::Warn,
            format!(
                "exit code 137 (SIGKILL){}: OOM killed, or killed after the stop timeout ({limit})",
                ago(d.finished_at)
            ),
        ));
    }
    if d.state == ContainerState::Running && d.health == HealthStatus::Unhealthy {
        let output = d.last_health_output.as_deref().unwrap_or_default();
        problems.push(
            Problem::new(
                Runbook::ContainerUnhealthy,
                Status::Critical,
                format!("healthcheck failing ({} in a row)", plural(d.health_failing_streak, "time", "times")),
            )
            .with_evidence(
                output
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .take(HEALTH_LINES)
                    .map(|l| format!("healthcheck: {}", evidence_line(l))),
            ),
        );
    }
    problems
}

/// Memory use against the container's limit, like `docker stats`' `MEM %`.
fn memory(used: u64, limit: u64, t: &ContainerThresholds) -> (Vec<Observation>, Option<Problem>) {
    let share = percent(used, limit);
    #[allow(clippy::cast_precision_loss)]
    let observations = vec![
        Observation::new("memory_limit", limit as f64, Unit::Bytes),
        Observation::new("memory", share, Unit::Percent),
    ];
    let status = if share > t.memory_critical_percent {
        Status::Critical
    } else if share > t.memory_warn_percent {
        Status::Warn
    } else {
        return (observations, None);
    };
    let message = format!("memory {} of its {} limit ({share:.0} %)", human_bytes(used), human_bytes(limit));
    (observations, Some(Problem::new(Runbook::MemoryPressure, status, message)))
}

fn healthy_message(d: &ContainerDetails, now: DateTime<Utc>) -> String {
    let up = age(d.started_at, now).map(|a| format!(" for {}", human_duration(a))).unwrap_or_default();
    let health = match d.health {
        HealthStatus::Healthy => " (healthy)",
        HealthStatus::Starting => " (health: starting)",
        HealthStatus::None | HealthStatus::Unhealthy => "",
    };
    match d.state {
        ContainerState::Running => format!("running{up}{health}"),
        ContainerState::Removing => "being removed".to_owned(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// What an exit code usually means, in parentheses (empty for 0 and unknown codes).
fn exit_meaning(code: i64, oom_killed: bool) -> String {
    let meaning = match code {
        _ if oom_killed => "OOM killed".to_owned(),
        0 => return String::new(),
        1 => "application error".to_owned(),
        125 => "the container could not be run".to_owned(),
        126 => "command not executable".to_owned(),
        127 => "command not found".to_owned(),
        137 => "SIGKILL: OOM or killed".to_owned(),
        139 => "SIGSEGV: crashed".to_owned(),
        143 => "SIGTERM: stopped".to_owned(),
        129..=159 => format!("signal {}", code - 128),
        _ => return String::new(),
    };
    format!(" ({meaning})")
}

fn age(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<Duration> {
    at.map(|at| (now - at).to_std().unwrap_or_default())
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Whether a container is named in `list`, by container name or Compose service.
fn listed(list: &[String], c: &ContainerSummary) -> bool {
    list.iter().any(|n| *n == c.name || c.compose_service.as_deref() == Some(n.as_str()))
}

/// The name each container's reports go by (without the `container:` prefix): its Compose
/// service when no other discovered container has the same service, else its container name.
pub fn display_names(containers: &[ContainerSummary]) -> Vec<String> {
    containers
        .iter()
        .map(|c| match &c.compose_service {
            Some(s) if containers.iter().filter(|o| o.compose_service.as_ref() == Some(s)).count() == 1 => s.clone(),
            _ => c.name.clone(),
        })
        .collect()
}

/// `{kind}:{name}` for the container's names other than `shown`.
pub(crate) fn aliases(c: &ContainerSummary, shown: &str, kind: ProbeKind) -> Vec<String> {
    let mut names = vec![c.name.as_str()];
    names.extend(c.compose_service.as_deref());
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let alias = format!("{kind}:{n}");
        if n != shown && !out.contains(&alias) {
            out.push(alias);
        }
    }
    out
}

/// The report names a container depends on: each service of its `depends_on` label, as the
/// name of that service's container in the same project when exactly one was discovered,
/// else as `container:{service}`.
fn depends_on(c: &ContainerSummary, all: &[ContainerSummary], names: &[String]) -> Vec<String> {
    let Some(label) = c.labels.get(COMPOSE_DEPENDS_ON_LABEL) else { return Vec::new() };
    let kind = ProbeKind::Container;
    let mut out: Vec<String> = Vec::new();
    for service in parse_depends_on(label) {
        let mut same = all.iter().enumerate().filter(|(_, o)| {
            o.compose_project == c.compose_project && o.compose_service.as_deref() == Some(service.as_str())
        });
        let name = match (same.next(), same.next()) {
            (Some((i, _)), None) => format!("{kind}:{}", names[i]),
            _ => format!("{kind}:{service}"),
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests;
