//! Recent container logs matched against the error pattern: the runbooks'
//! `docker compose logs --since 30m --tail 100 | grep -i "error\|panic\|fatal"`.
//!
//! One report per container (`logs:db`, named like its container report, which it depends
//! on), with the number of matching lines and the last few distinct ones as evidence.

use std::time::Duration;

use chrono::Utc;
use futures::{FutureExt, StreamExt};
use ops_core::config::LogThresholds;
use ops_core::ports::{ContainerRuntime, ContainerSummary, LogLine, LogOptions};
use ops_core::{Runbook, Status};
use regex::{Regex, RegexBuilder};

use crate::container::{aliases, display_names};
use crate::report::{Observation, ProbeKind, ProbeReport, Problem, Unit};
use crate::support::{evidence_line, within};
use ops_core::units::{human_duration, plural};

/// Containers whose logs are read at the same time.
const PARALLEL: usize = 8;

/// What this tool itself did recently (from its audit log), so the log lines its own actions
/// cause (a restore's or `kill-idle`'s terminated sessions, a restart's shutdown) are
/// attributed to them and not reported as problems.
#[derive(Debug, Clone, Default)]
pub struct OwnActions {
    /// (when, action, the container names it touched; empty: every database's).
    actions: Vec<(chrono::DateTime<Utc>, String, Vec<String>)>,
    /// The containers of the configured databases.
    databases: Vec<String>,
}

/// Lines a recorded action causes, and for how long after it.
/// Lines a recorded action on a database's sessions causes.
const SESSION_LINES: &str =
    "terminating connection due to administrator command|canceling statement due to user request";
/// Lines a recorded restart, stop or start of a container causes in that container's log.
const CONTAINER_LINES: &str =
    "terminating connection due to administrator command|shutdown|shut down|the database system is starting up";
/// How long before its record a container action began (a restart is recorded once the
/// container is back, up to two minutes later), and how long after it its lines go on.
const OWN_BEFORE: chrono::Duration = chrono::Duration::seconds(150);
const OWN_AFTER: chrono::Duration = chrono::Duration::seconds(120);

impl OwnActions {
    /// From the audit log's entries and the configuration (which containers are databases).
    #[must_use]
    pub fn new(entries: &[ops_core::audit::AuditEntry], cfg: &ops_core::config::OpsConfig) -> Self {
        let actions = entries
            .iter()
            // What was done: a failed action's record is no excuse for the lines after it (a
            // restore's intent is: its sessions are terminated before its outcome is known).
            .filter(|e| e.result == "ok" || (e.result == "started" && e.action.starts_with("restore")))
            .filter_map(|e| {
                let containers = match e.action.as_str() {
                    "terminate" | "kill-idle" | "cancel-slow" | "restore-swap" | "restore-in-place" => Vec::new(),
                    "restart" | "restart-dependents" | "start" | "stop" | "start-stack" | "stop-stack" | "rollback" => {
                        vec![e.target.strip_prefix("container:")?.to_owned()]
                    }
                    _ => return None,
                };
                Some((e.time, e.action.clone(), containers))
            })
            .collect();
        let databases = cfg.databases.values().filter_map(|d| d.container.clone()).collect();
        Self { actions, databases }
    }

    /// The action of ours that caused `line` of container `c`, if one did: a session action
    /// on any database's container (its terminated or cancelled sessions), a container action
    /// on that container (its shutdown and start).
    fn cause(&self, c: &ContainerSummary, line: &LogLine, sessions: &Regex, container: &Regex) -> Option<&str> {
        let at = line.timestamp?;
        let is = |n: &String| *n == c.name || c.compose_service.as_ref() == Some(n);
        self.actions
            .iter()
            .find(|(t, _, targets)| {
                if targets.is_empty() {
                    at >= *t - chrono::Duration::seconds(5)
                        && at <= *t + OWN_AFTER
                        && self.databases.iter().any(is)
                        && sessions.is_match(&line.text)
                } else {
                    at >= *t - OWN_BEFORE
                        && at <= *t + OWN_AFTER
                        && targets.iter().any(is)
                        && container.is_match(&line.text)
                }
            })
            .map(|(_, a, _)| a.as_str())
    }
}

/// Reads the last `t.window_secs` of each container's logs (at most `t.tail` lines), each
/// within `timeout`, and counts the lines matching `t.pattern` case-insensitively. Pass the
/// containers of [`container::discover`](crate::container::discover). Returns nothing when
/// `t.warn_count` is 0 (the log probe is off), and one `logs` report when the pattern is not a
/// valid regular expression.
pub async fn probe_all(
    rt: &dyn ContainerRuntime,
    containers: &[ContainerSummary],
    t: &LogThresholds,
    own: &OwnActions,
    timeout: Duration,
) -> Vec<ProbeReport> {
    if t.warn_count == 0 {
        return Vec::new();
    }
    let pattern = match RegexBuilder::new(&t.pattern).case_insensitive(true).build() {
        Ok(p) => p,
        Err(e) => {
            let mut report = ProbeReport::new(ProbeKind::Logs, "", t.pattern.clone());
            report.problem(Problem::new(
                Runbook::ProbeFailed,
                Status::Unknown,
                format!("probes.logs.pattern is not a valid regular expression: {e}"),
            ));
            return vec![report.finish(Duration::ZERO)];
        }
    };
    let names = display_names(containers);
    let pattern = &pattern;
    // Built first and boxed, so the stream is `Send` for triage (rust-lang/rust#102211).
    let probes: Vec<futures::future::BoxFuture<'_, ProbeReport>> = containers
        .iter()
        .zip(names)
        .map(|(c, name)| {
            let mut base = ProbeReport::new(ProbeKind::Logs, &name, c.name.clone());
            base.aliases = aliases(c, &name, ProbeKind::Logs);
            base.depends_on = vec![format!("{}:{name}", ProbeKind::Container)];
            within(base, timeout, move |report| probe_one(rt, c, report, pattern, t, own)).boxed()
        })
        .collect();
    futures::stream::iter(probes).buffered(PARALLEL).collect().await
}

async fn probe_one(
    rt: &dyn ContainerRuntime,
    c: &ContainerSummary,
    mut report: ProbeReport,
    pattern: &Regex,
    t: &LogThresholds,
    own: &OwnActions,
) -> ProbeReport {
    let window = Duration::from_secs(t.window_secs);
    let since = Utc::now() - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::zero());
    let tail = usize::try_from(t.tail).unwrap_or(usize::MAX);
    let options = LogOptions { tail: Some(tail), since: Some(since), timestamps: true };
    match rt.logs(&c.id, &options).await {
        Ok(lines) => {
            // Lines this tool's own recorded actions caused are theirs, not a problem.
            static SESSIONS: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
                RegexBuilder::new(SESSION_LINES).case_insensitive(true).build().expect("valid pattern")
            });
            static CONTAINER: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
                RegexBuilder::new(CONTAINER_LINES).case_insensitive(true).build().expect("valid pattern")
            });
            let mut caused: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
            let lines: Vec<LogLine> = lines
                .into_iter()
                .filter(|l| match own.cause(c, l, &SESSIONS, &CONTAINER) {
                    Some(action) => {
                        *caused.entry(action).or_default() += 1;
                        false
                    }
                    None => true,
                })
                .collect();
            if !caused.is_empty() {
                #[allow(clippy::cast_precision_loss)]
                report.observe(Observation::new("own_action_lines", caused.values().sum::<u64>() as f64, Unit::Count));
                let what: Vec<String> = caused.iter().map(|(a, n)| format!("{n} after our {a}")).collect();
                report.evidence.push(format!(
                    "not counted: lines caused by this tool's own recorded actions ({})",
                    what.join(", ")
                ));
            }
            let (observations, problem) = assess(&lines, pattern, t);
            observations.into_iter().for_each(|o| report.observe(o));
            problem.into_iter().for_each(|p| report.problem(p));
            if report.problems.is_empty() {
                let read = plural(u64::try_from(lines.len()).unwrap_or(u64::MAX), "line", "lines");
                report.message = format!("no line matches in the last {} ({read} read)", human_duration(window));
            }
        }
        Err(e) => {
            report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, format!("could not read logs: {e}")));
        }
    }
    report
}

/// Counts the lines matching `pattern`; `log-errors` at `t.warn_count` / `t.critical_count`
/// matches, with the last `t.samples` distinct matching lines, oldest first, as evidence.
#[must_use]
pub(crate) fn assess(lines: &[LogLine], pattern: &Regex, t: &LogThresholds) -> (Vec<Observation>, Option<Problem>) {
    let matching: Vec<&LogLine> = lines.iter().filter(|l| pattern.is_match(&l.text)).collect();
    let count = u64::try_from(matching.len()).unwrap_or(u64::MAX);
    #[allow(clippy::cast_precision_loss)]
    let observations = vec![
        Observation::new("lines_read", lines.len() as f64, Unit::Count),
        Observation::new("matching_lines", count as f64, Unit::Count),
    ];
    let status = if count >= t.critical_count {
        Status::Critical
    } else if count >= t.warn_count {
        Status::Warn
    } else {
        return (observations, None);
    };
    let mut samples: Vec<String> = Vec::new();
    for line in matching.iter().rev() {
        if samples.len() >= t.samples {
            break;
        }
        let shown = evidence_line(&line.text);
        if !samples.contains(&shown) {
            samples.push(shown);
        }
    }
    samples.reverse();
    let capped = u64::try_from(lines.len()).unwrap_or(u64::MAX) >= t.tail;
    let message = format!(
        "{} /{}/ in the last {}{}",
        plural(count, "log line matches", "log lines match"),
        t.pattern,
        human_duration(Duration::from_secs(t.window_secs)),
        if capped { format!(" (only the last {} lines were read)", t.tail) } else { String::new() }
    );
    (observations, Some(Problem::new(Runbook::LogErrors, status, message).with_evidence(samples)))
}

#[cfg(test)]
mod tests {
    use ops_core::ports::LogStream;
    use ops_core::ports::container::MockContainerRuntime;

    use super::*;

    fn line(text: &str) -> LogLine {
        LogLine { stream: LogStream::Stderr, timestamp: None, text: text.to_owned() }
    }

    fn pattern(t: &LogThresholds) -> Regex {
        RegexBuilder::new(&t.pattern).case_insensitive(true).build().unwrap()
    }

    #[test]
    fn counts_case_insensitively_and_keeps_the_last_distinct_samples() {
        let t = LogThresholds { samples: 2, ..LogThresholds::default() };
        let lines: Vec<LogLine> = [
            "INFO started",
            "ERROR db unreachable",
            "Error: db unreachable",
            "thread 'main' PANICKED at src/main.rs",
            "Error: db unreachable",
            "INFO retrying",
        ]
        .map(line)
        .to_vec();
        let (obs, problem) = assess(&lines, &pattern(&t), &t);
        assert_eq!(
            obs.iter().map(|o| (o.name.as_str(), o.value)).collect::<Vec<_>>(),
            [("lines_read", 6.0), ("matching_lines", 4.0)]
        );
        let p = problem.unwrap();
        assert_eq!((p.runbook, p.status), (Runbook::LogErrors, Status::Warn));
        assert_eq!(p.evidence, ["thread 'main' PANICKED at src/main.rs", "Error: db unreachable"]);
        assert!(
            p.message.starts_with("4 log lines match /error|panic|fatal|corrupt|out of memory/ in the last 30 min")
        );
    }

    #[test]
    fn critical_by_count_and_quiet_below_warn() {
        let t = LogThresholds { warn_count: 2, critical_count: 3, tail: 3, ..LogThresholds::default() };
        let (_, p) = assess(&["fatal: a", "fatal: b", "FATAL: c"].map(line), &pattern(&t), &t);
        let p = p.unwrap();
        assert_eq!(p.status, Status::Critical);
        assert!(p.message.contains("only the last 3 lines were read"), "{}", p.message);
        let (_, none) = assess(&["fatal: a", "ok"].map(line), &pattern(&t), &LogThresholds { warn_count: 3, ..t });
        assert!(none.is_none());
    }

    #[test]
    fn samples_never_show_credentials() {
        let t = LogThresholds::default();
        let (_, p) = assess(&[line("ERROR connecting to redis://:hunter2@cache:6379")], &pattern(&t), &t);
        assert_eq!(p.unwrap().evidence, ["ERROR connecting to redis://:***@cache:6379"]);
    }

    fn summary(name: &str, service: &str) -> ContainerSummary {
        ContainerSummary {
            id: format!("id-{name}"),
            name: name.to_owned(),
            image: "img".to_owned(),
            state: ops_core::ports::ContainerState::Running,
            status: String::new(),
            compose_project: Some("shop".to_owned()),
            compose_service: Some(service.to_owned()),
            labels: Default::default(),
        }
    }

    #[tokio::test]
    async fn reads_the_window_of_each_container() {
        let mut rt = MockContainerRuntime::new();
        rt.expect_logs().times(2).returning(|id, options| {
            assert_eq!(options.tail, Some(5000));
            let since = options.since.expect("a window");
            let window = Utc::now() - since;
            assert!((1790..=1810).contains(&window.num_seconds()), "{window}");
            match id {
                "id-shop-api-1" => Ok(vec![line("GET / 200"), line("ERROR timeout talking to db")]),
                _ => Err(ops_core::Error::not_found("no such container")),
            }
        });
        let containers = [summary("shop-api-1", "api"), summary("shop-db-1", "db")];
        let reports =
            probe_all(&rt, &containers, &LogThresholds::default(), &OwnActions::default(), Duration::from_secs(5))
                .await;
        assert_eq!(reports.len(), 2);
        let api = &reports[0];
        assert_eq!((api.name.as_str(), api.status), ("logs:api", Status::Warn));
        assert_eq!(api.depends_on, ["container:api"]);
        assert_eq!(api.aliases, ["logs:shop-api-1"]);
        assert_eq!(api.problems[0].evidence, ["ERROR timeout talking to db"]);
        assert_eq!(reports[1].status, Status::Unknown);
        assert_eq!(reports[1].problems[0].runbook, Runbook::ProbeFailed);
    }

    #[tokio::test]
    async fn off_or_misconfigured() {
        let rt = MockContainerRuntime::new();
        let containers = [summary("shop-api-1", "api")];
        let off = LogThresholds { warn_count: 0, ..LogThresholds::default() };
        assert!(probe_all(&rt, &containers, &off, &OwnActions::default(), Duration::from_secs(1)).await.is_empty());
        let bad = LogThresholds { pattern: "error(".to_owned(), ..LogThresholds::default() };
        let reports = probe_all(&rt, &containers, &bad, &OwnActions::default(), Duration::from_secs(1)).await;
        assert_eq!(reports.len(), 1);
        assert_eq!((reports[0].name.as_str(), reports[0].status), ("logs", Status::Unknown));
    }

    #[tokio::test]
    async fn lines_our_own_recorded_actions_caused_are_not_problems() {
        let acted = Utc::now() - chrono::Duration::minutes(20);
        let at = move |secs: i64| LogLine {
            stream: LogStream::Stderr,
            timestamp: Some(acted + chrono::Duration::seconds(secs)),
            text: "FATAL:  terminating connection due to administrator command".to_owned(),
        };
        let mut rt = MockContainerRuntime::new();
        rt.expect_logs().returning(move |_, options| {
            assert!(options.timestamps, "the lines' times are what ties them to an action");
            // One just after our kill-idle, one ten minutes later: someone else's.
            Ok(vec![at(1), at(600)])
        });
        let mut cfg = ops_core::config::OpsConfig::default();
        cfg.databases.insert(
            "main".into(),
            ops_core::config::DatabaseConfig { container: Some("db".into()), ..Default::default() },
        );
        let entry = ops_core::audit::AuditEntry {
            time: acted,
            actor: "opsctl:root".into(),
            action: "kill-idle".into(),
            target: "backend:42".into(),
            before: serde_json::Value::Null,
            after: serde_json::Value::Null,
            result: "ok".into(),
        };
        let own = OwnActions::new(&[entry], &cfg);
        let containers = [summary("shop-db-1", "db")];
        let reports = probe_all(&rt, &containers, &LogThresholds::default(), &own, Duration::from_secs(5)).await;
        let r = &reports[0];
        assert_eq!(r.observation("matching_lines"), Some(1.0), "{r:#?}");
        assert_eq!(r.observation("own_action_lines"), Some(1.0));
        assert!(r.evidence[0].contains("1 after our kill-idle"), "{:?}", r.evidence);
    }
}
