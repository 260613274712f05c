//! Helpers shared by the local probes: the whole-probe time limit, human-readable amounts, and
//! evidence lines that never carry a credential.

use std::future::Future;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use ops_core::{Runbook, Status};
use regex::Regex;

use crate::report::{ProbeReport, Problem};

/// Characters kept of one evidence line.
pub(crate) const EVIDENCE_CHARS: usize = 300;

/// Runs `check` on `base` (a report with its name, target, aliases and dependencies already
/// set) within `limit`, and finishes it with the measured duration. When the limit passes,
/// `base` itself is returned, `unknown` with a `probe-failed` problem, so the caller still sees
/// which probe it was and what it depends on.
pub(crate) async fn within<F, Fut>(base: ProbeReport, limit: Duration, check: F) -> ProbeReport
where
    F: FnOnce(ProbeReport) -> Fut,
    Fut: Future<Output = ProbeReport>,
{
    let started = Instant::now();
    match tokio::time::timeout(limit, check(base.clone())).await {
        Ok(report) => report.finish(started.elapsed()),
        Err(_) => {
            let mut report = base;
            report.problem(Problem::new(
                Runbook::ProbeFailed,
                Status::Unknown,
                format!("no answer within {:.1} s", limit.as_secs_f64()),
            ));
            report.finish(limit)
        }
    }
}

/// Consecutive identical lines folded into one: `fatal: no DATABASE_URL (4 times)`, as a
/// crash-looping container prints the same lines on every start.
pub(crate) fn fold_repeats(lines: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for line in lines {
        match out.last_mut() {
            Some((last, n)) if *last == line => *n += 1,
            _ => out.push((line, 1)),
        }
    }
    out.into_iter().map(|(line, n)| if n == 1 { line } else { format!("{line} ({n} times)") }).collect()
}

/// At most `max` characters of `text`, with `…` when cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A log or healthcheck line fit to be shown: credentials in URLs and `password=…`-style
/// assignments replaced by `***`, control characters dropped, clipped to
/// [`EVIDENCE_CHARS`].
pub fn evidence_line(line: &str) -> String {
    static RULES: LazyLock<[(Regex, &str); 2]> = LazyLock::new(|| {
        let re = |p: &str| Regex::new(p).expect("valid redaction pattern");
        [
            // scheme://user:secret@host
            (re(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/\s@]*:)[^@\s/]+@"), "${1}***@"),
            // password=secret, "api_key": "secret", token: secret
            (
                re(
                    r#"(?i)((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)["']?\s*[:=]\s*["']?)[^\s"',;&]+"#,
                ),
                "${1}***",
            ),
        ]
    });
    let mut text: String = line.chars().filter(|c| !c.is_control() || *c == '\t').collect();
    for (pattern, replacement) in RULES.iter() {
        text = pattern.replace_all(&text, *replacement).into_owned();
    }
    clip(text.trim_end(), EVIDENCE_CHARS)
}

#[cfg(test)]
mod tests {
    use ops_core::units::plural;

    use super::*;
    use crate::ProbeKind;

    #[test]
    fn repeats_fold_and_counts_agree() {
        let lines = ["a", "b", "b", "b", "a"].map(str::to_owned);
        assert_eq!(fold_repeats(lines), ["a", "b (3 times)", "a"]);
        assert_eq!(
            (plural(1u32, "query", "queries"), plural(2u32, "query", "queries")),
            ("1 query".into(), "2 queries".into())
        );
    }

    #[test]
    fn evidence_lines_hide_credentials_and_are_clipped() {
        let line =
            "ERROR connect postgres://app:hunter2@db:5432/app failed; password=hunter2 \"api_key\": \"hunter2\"\r";
        let shown = evidence_line(line);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://app:***@db:5432/app"), "{shown}");
        assert!(shown.contains("password=***"), "{shown}");
        let long = evidence_line(&"é".repeat(1000));
        assert_eq!(long.chars().count(), EVIDENCE_CHARS + 1);
        assert!(long.ends_with('…'));
        assert_eq!(clip("short", 10), "short");
    }

    #[tokio::test]
    async fn a_slow_check_is_unknown_and_keeps_its_identity() {
        let mut base = ProbeReport::new(ProbeKind::Container, "db", "shop-db-1");
        base.depends_on.push("engine".to_owned());
        let r = within(base, Duration::from_millis(20), |r| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            r
        })
        .await;
        assert_eq!((r.name.as_str(), r.status), ("container:db", Status::Unknown));
        assert_eq!(r.depends_on, ["engine"]);
        assert_eq!(r.problems[0].runbook, Runbook::ProbeFailed);
        let fast = within(ProbeReport::new(ProbeKind::Host, "", "h"), Duration::from_secs(5), |r| async { r }).await;
        assert_eq!(fast.status, Status::Ok);
    }
}
