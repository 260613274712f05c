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

/// Reads the last `t.window_secs` of each container's logs (at most `t.tail` lines), each
/// within `timeout`, and counts the lines matching `t.pattern` case-insensitively. Pass the
/// containers of [`container::discover`](crate::container::discover). Returns nothing when
/// `t.warn_count` is 0 (the log probe is off), and one `logs` report when the pattern is not a
/// valid regular expression.
pub async fn probe_all(
    rt: &dyn ContainerRuntime,
    containers: &[ContainerSummary],
    t: &LogThresholds,
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
            within(base, timeout, move |report| probe_one(rt, c, report, pattern, t)).boxed()
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
) -> ProbeReport {
    let window = Duration::from_secs(t.window_secs);
    let since = Utc::now() - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::zero());
    let tail = usize::try_from(t.tail).unwrap_or(usize::MAX);
    let options = LogOptions { tail: Some(tail), since: Some(since), timestamps: false };
    match rt.logs(&c.id, &options).await {
        Ok(lines) => {
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
        let reports = probe_all(&rt, &containers, &LogThresholds::default(), Duration::from_secs(5)).await;
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
        assert!(probe_all(&rt, &containers, &off, Duration::from_secs(1)).await.is_empty());
        let bad = LogThresholds { pattern: "error(".to_owned(), ..LogThresholds::default() };
        let reports = probe_all(&rt, &containers, &bad, Duration::from_secs(1)).await;
        assert_eq!(reports.len(), 1);
        assert_eq!((reports[0].name.as_str(), reports[0].status), ("logs", Status::Unknown));
    }
}
