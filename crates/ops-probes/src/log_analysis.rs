//! Log analysis for the runbooks' hand-run `grep -c` and `awk | sort | uniq -c`:
//! `[[log-patterns]]` (how many lines match a pattern within a window: a reconnect storm, a
//! burst of rate-limit lines) and `[[access-logs]]` (who sends the requests, from an access
//! log in common or combined format: the abuse runbook's first step).
//!
//! A file is read from its end, at most `max-bytes` (16 MiB by default), and its first, cut
//! line dropped; a container's log is read through the engine (`--since` the window, or the
//! last `lines`; at most 50,000 lines, the newest within `max-bytes` kept). Nothing is ever
//! read whole.

use std::collections::HashMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use ops_core::config::{AccessLogConfig, LogPatternConfig};
use ops_core::ports::LogOptions;
use ops_core::{Context, Runbook, Status};

use crate::report::{Observation, ProbeKind, ProbeReport, Problem, Unit};
use crate::support::{clip, evidence_line, within};

/// Bytes read from the end of a file by default.
const DEFAULT_MAX_BYTES: u64 = 16 << 20;
/// Lines asked of the engine at most for a container's log (the engine applies it).
const MAX_CONTAINER_LINES: usize = 50_000;
/// Characters of a client address shown (evidence, the metric label).
const CLIENT_CHARS: usize = 64;
/// Matching lines kept as evidence.
const SAMPLES: usize = 5;

/// The last `max_bytes` of `path`, as lines, without a first line cut in the middle.
///
/// # Errors
/// The file cannot be opened or read (the message names the path, the caller's own config).
pub fn read_tail(path: &Path, max_bytes: u64) -> std::io::Result<(Vec<String>, bool)> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(max_bytes);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity(usize::try_from(len - start).unwrap_or(0));
    file.take(max_bytes).read_to_end(&mut bytes)?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if start > 0 {
        // The first line began before what was read.
        text = text.split_once('\n').map(|(_, rest)| rest.to_owned()).unwrap_or_default();
    }
    Ok((text.lines().map(str::to_owned).collect(), start > 0))
}

/// Where lines come from, read within `limit`: `(time, text)` pairs (a file's times are parsed
/// from the lines; the engine gives a container's), and whether the read was cut short.
async fn lines_of(
    ctx: &Context,
    container: Option<&str>,
    file: Option<&Path>,
    max_bytes: u64,
    options: LogOptions,
) -> Result<(Vec<(Option<DateTime<Utc>>, String)>, bool), String> {
    if let Some(path) = file {
        let path = path.to_owned();
        let (lines, cut) = tokio::task::spawn_blocking(move || read_tail(&path, max_bytes))
            .await
            .map_err(|e| format!("reading the file: {e}"))?
            .map_err(|e| format!("cannot read the file: {e}"))?;
        let mut last = None;
        let timed = lines
            .into_iter()
            .map(|l| {
                // A line without a time (a stack trace's) belongs to the line before it.
                if let Some(t) = line_time(&l) {
                    last = Some(t);
                }
                (last, l)
            })
            .collect();
        return Ok((timed, cut));
    }
    let name = container.unwrap_or_default();
    let rt = ops_core::stack::runtime(ctx).map_err(|e| e.to_string())?;
    let stack = ops_core::stack::Stack::read(ctx).await.map_err(|e| e.to_string())?;
    let found = stack.find(name).map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    let mut cut = false;
    for c in found {
        // The engine sends the last `tail` lines (a bound on what it sends), oldest first;
        // of those, the newest that fit in `max_bytes` are kept.
        let lines = rt.logs(&c.id, &options).await.map_err(|e| e.to_string())?;
        cut |= options.tail.is_some_and(|t| lines.len() >= t);
        let mut bytes = 0u64;
        let keep = lines
            .iter()
            .rev()
            .take_while(|l| {
                bytes += l.text.len() as u64 + 1;
                bytes <= max_bytes
            })
            .count();
        cut |= keep < lines.len();
        let first = lines.len() - keep;
        all.extend(lines.into_iter().skip(first).map(|l| (l.timestamp, l.text)));
    }
    Ok((all, cut))
}

/// The time a log line starts with or carries: ISO 8601 (`2026-12-03T14:00:00Z`,
/// `2026-12-03 14:00:00,123`; without a zone read as UTC) or the common log format's
/// `[03/Dec/2026:14:00:00 +0000]`.
fn line_time(line: &str) -> Option<DateTime<Utc>> {
    if let Some(open) = line.find('[') {
        let rest = &line[open + 1..];
        if let Some(close) = rest.find(']')
            && let Ok(t) = DateTime::parse_from_str(&rest[..close], "%d/%b/%Y:%H:%M:%S %z")
        {
            return Some(t.with_timezone(&Utc));
        }
    }
    // An ISO time within the first 64 characters (after a level or a bracket).
    let head: String = line.chars().take(64).collect();
    let start = head.find(|c: char| c.is_ascii_digit())?;
    let candidate = &head[start..];
    let stamp = candidate.split_whitespace().next().unwrap_or_default();
    for text in [Some(stamp), candidate.get(..19)].into_iter().flatten() {
        let text = text.replace(' ', "T");
        if let Ok(t) = DateTime::parse_from_rfc3339(&text) {
            return Some(t.with_timezone(&Utc));
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(text.get(..19).unwrap_or(&text), "%Y-%m-%dT%H:%M:%S") {
            return Some(t.and_utc());
        }
    }
    None
}

/// A `[[log-patterns]]` check: matching lines within the window against `warn-count` and
/// `critical-count` (`log-burst`, or the check's runbook), the newest matches as evidence.
///
/// Observations: `matches`, `lines` (read within the window).
pub async fn pattern_probe(ctx: &Context, check: &LogPatternConfig, timeout: Duration) -> ProbeReport {
    let target = check.file.as_ref().map_or_else(
        || format!("container {}", check.container.as_deref().unwrap_or_default()),
        |f| f.display().to_string(),
    );
    let mut base = ProbeReport::new(ProbeKind::LogPattern, &check.name, target);
    base.depends_on.clone_from(&check.depends_on);
    if let Some(c) = &check.container
        && check.depends_on.is_empty()
    {
        base.depends_on.push(format!("container:{c}"));
    }
    within(base, timeout, |mut report| async move {
        let pattern = match regex::RegexBuilder::new(&check.pattern).size_limit(1 << 20).build() {
            Ok(p) => p,
            Err(e) => {
                report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, format!("pattern: {e}")));
                return report;
            }
        };
        let window = Duration::from_secs(check.window_mins.unwrap_or(5).saturating_mul(60));
        let since = Utc::now() - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        let options = LogOptions { tail: Some(MAX_CONTAINER_LINES), since: Some(since), timestamps: true };
        let max_bytes = check.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
        let (lines, cut) =
            match lines_of(ctx, check.container.as_deref(), check.file.as_deref(), max_bytes, options).await {
                Ok(l) => l,
                Err(m) => {
                    report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, m));
                    return report;
                }
            };
        // Lines of the window: those with a time within it; a file without any time at all
        // is counted whole (what was read of it), and says so.
        let untimed = lines.iter().all(|(t, _)| t.is_none());
        let in_window: Vec<&str> =
            lines.iter().filter(|(t, _)| untimed || t.is_some_and(|t| t >= since)).map(|(_, l)| l.as_str()).collect();
        let matching: Vec<&str> = in_window.iter().copied().filter(|l| pattern.is_match(l)).collect();
        let n = matching.len() as u64;
        #[allow(clippy::cast_precision_loss)]
        {
            report.observe(Observation::new("matches", n as f64, Unit::Count));
            report.observe(Observation::new("lines", in_window.len() as f64, Unit::Count));
        }
        let span = if untimed {
            format!("in the last {} read (the lines carry no time)", ops_core::units::human_bytes(max_bytes))
        } else {
            format!("in the last {}", ops_core::units::human_duration(window))
        };
        let note = if cut { " (read cut at max-bytes: there may be more)" } else { "" };
        let message = format!(
            "{} matching {:?} {span}{note}",
            ops_core::units::plural(n, "line", "lines"),
            clip(&check.pattern, 40)
        );
        let status = if check.critical_count > 0 && n >= check.critical_count {
            Status::Critical
        } else if check.warn_count > 0 && n >= check.warn_count {
            Status::Warn
        } else {
            Status::Ok
        };
        if status == Status::Ok {
            report.message = message;
        } else {
            let samples = matching[matching.len().saturating_sub(SAMPLES)..].iter().map(|l| evidence_line(l));
            report.problem(
                Problem::new(check.runbook.unwrap_or(Runbook::LogBurst), status, message).with_evidence(samples),
            );
        }
        report
    })
    .await
}

/// One client's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCount {
    /// The first field of the line (the client address in common and combined format).
    pub client: String,
    /// Its requests.
    pub requests: u64,
}

/// The `top` clients of access-log `lines` by requests (most first, then by address), and
/// the number of requests: `awk '{print $1}' | sort | uniq -c | sort -rn | head`.
#[must_use]
pub fn top_clients<'a>(lines: impl IntoIterator<Item = &'a str>, top: usize) -> (Vec<ClientCount>, u64) {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    let mut total = 0;
    for line in lines {
        if let Some(client) = line.split_whitespace().next() {
            *counts.entry(client).or_default() += 1;
            total += 1;
        }
    }
    let mut list: Vec<(&str, u64)> = counts.into_iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    list.truncate(top);
    // A log line's first field is whatever was written there: shown clipped and redacted.
    let list = list
        .into_iter()
        .map(|(client, requests)| ClientCount { client: clip(&evidence_line(client), CLIENT_CHARS), requests })
        .collect();
    (list, total)
}

/// An `[[access-logs]]` check: the top clients of the newest `lines` lines; one client over
/// `warn-share-percent` / `critical-share-percent` of at least `min-requests` requests is
/// `suspicious-traffic`.
///
/// Observations: `requests`, `clients` (distinct in the top list), `top_share` (percent),
/// `client_requests` labelled by `client` for each listed client.
pub async fn access_probe(ctx: &Context, check: &AccessLogConfig, timeout: Duration) -> ProbeReport {
    let target = check.file.as_ref().map_or_else(
        || format!("container {}", check.container.as_deref().unwrap_or_default()),
        |f| f.display().to_string(),
    );
    let mut base = ProbeReport::new(ProbeKind::AccessLog, &check.name, target);
    base.depends_on.clone_from(&check.depends_on);
    within(base, timeout, |mut report| async move {
        let want = usize::try_from(check.lines.unwrap_or(10_000)).unwrap_or(usize::MAX);
        let options = LogOptions { tail: Some(want.min(MAX_CONTAINER_LINES)), since: None, timestamps: false };
        let max_bytes = check.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
        let (lines, _) =
            match lines_of(ctx, check.container.as_deref(), check.file.as_deref(), max_bytes, options).await {
                Ok(l) => l,
                Err(m) => {
                    report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, m));
                    return report;
                }
            };
        let newest = &lines[lines.len().saturating_sub(want)..];
        let (top, total) = top_clients(newest.iter().map(|(_, l)| l.as_str()), check.top.unwrap_or(10));
        #[allow(clippy::cast_precision_loss)]
        let share = |n: u64| if total == 0 { 0.0 } else { n as f64 * 100.0 / total as f64 };
        #[allow(clippy::cast_precision_loss)]
        {
            report.observe(Observation::new("requests", total as f64, Unit::Count));
            report.observe(Observation::new("clients", top.len() as f64, Unit::Count));
            for c in &top {
                report.observe(
                    Observation::new("client_requests", c.requests as f64, Unit::Count).label("client", &c.client),
                );
            }
        }
        let top_share = top.first().map_or(0.0, |c| share(c.requests));
        report.observe(Observation::new("top_share", top_share, Unit::Percent));
        // Most requests last, as `sort -n | tail` prints them: the lines a summary keeps (the
        // newest of a log) are then the top clients.
        let listing: Vec<String> = top.iter().rev().map(|c| format!("{:>7} {}", c.requests, c.client)).collect();
        let min = check.min_requests.unwrap_or(100);
        let (warn, critical) = (check.warn_share_percent.unwrap_or(30.0), check.critical_share_percent.unwrap_or(60.0));
        let status = match top.first() {
            Some(_) if total >= min && top_share > critical => Status::Critical,
            Some(_) if total >= min && top_share > warn => Status::Warn,
            _ => Status::Ok,
        };
        let summary = match top.first() {
            Some(c) => format!(
                "{} requests in the newest lines; top client {} sent {} ({:.1} %)",
                total, c.client, c.requests, top_share
            ),
            None => "no requests in the newest lines".to_owned(),
        };
        if status == Status::Ok {
            report.message = summary;
            report.evidence = listing;
        } else {
            report.problem(Problem::new(Runbook::SuspiciousTraffic, status, summary).with_evidence(listing));
        }
        report
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_common_and_iso_lines() {
        let clf = r#"203.0.113.9 - - [03/Dec/2026:14:00:00 +0100] "GET / HTTP/1.1" 200 12 "-" "curl""#;
        assert_eq!(line_time(clf).unwrap().to_rfc3339(), "2026-12-03T13:00:00+00:00");
        assert_eq!(line_time("2026-12-03T14:00:00Z INFO up").unwrap().to_rfc3339(), "2026-12-03T14:00:00+00:00");
        assert_eq!(line_time("2026-12-03 14:00:00,123 WARN x").unwrap().to_rfc3339(), "2026-12-03T14:00:00+00:00");
        assert_eq!(line_time("    at Object.<anonymous> (index.js:1:1)"), None);
    }

    #[test]
    fn top_clients_count_like_uniq_c() {
        let lines = ["a x", "b x", "a y", "c", "", "b", "a"];
        let (top, total) = top_clients(lines, 2);
        assert_eq!(total, 6);
        assert_eq!(
            top,
            [ClientCount { client: "a".into(), requests: 3 }, ClientCount { client: "b".into(), requests: 2 }]
        );
    }

    #[test]
    fn a_tail_read_drops_the_cut_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "first line\nsecond line\nthird\n").unwrap();
        let (lines, cut) = read_tail(&path, 15).unwrap();
        assert!(cut);
        assert_eq!(lines, ["third"]);
        assert_eq!(read_tail(&path, 1 << 20).unwrap().0.len(), 3);
    }
}
