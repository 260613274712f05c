//! An upstream provider's status (`[[status-pages]]`), from its Atlassian Statuspage:
//! `GET {url}/api/v2/status.json`, `status.indicator` and `status.description`.
//!
//! A `summary.json` URL also names the open incidents in the evidence.
//!
//! `minor` is `upstream-incident` warn, `major` and `critical` are critical, `none` is ok. The
//! message names what depends on the provider, because during an upstream incident restarting
//! it does not help: `upstream incident at stellar: Partial System Outage — do not restart
//! indexer`. A page that does not answer makes the report `unknown` (`probe-failed`).

use std::time::Instant;

use ops_core::config::StatusPageConfig;
use ops_core::{Runbook, Status};
use serde::Deserialize;

use crate::net::{self, NetOptions};
use crate::{Observation, ProbeKind, ProbeReport, Problem, Unit};

/// Bytes of the answer read at most (`status.json` is well under 1 KiB).
const MAX_ANSWER: usize = 1024 * 1024;

/// Reads the page's indicator. Observations: `total` (ms). Evidence: the indicator and the
/// page's name and last update.
pub async fn probe(config: &StatusPageConfig, options: &NetOptions) -> ProbeReport {
    let started = Instant::now();
    let url = status_url(&config.url);
    let mut report = ProbeReport::new(ProbeKind::StatusPage, &config.name, ops_core::secret::redact_url(&url));
    let (trace, body) = net::get_document(&url, MAX_ANSWER, options).await;
    if let Some(total) = trace.total {
        report.observe(Observation::new("total", net::millis(total), Unit::Milliseconds));
    }
    let page = match body.and_then(|body| parse_status(&body)) {
        Ok(page) => page,
        Err(reason) => {
            let message = format!("cannot read the status page of {}: {reason}", config.name);
            report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, message));
            return report.finish(started.elapsed());
        }
    };
    report.evidence.push(format!("indicator: {}", page.status.indicator));
    let mut about = page.page.name.clone();
    if let Some(updated) = &page.page.updated_at {
        about.push_str(&format!(", updated {updated}"));
    }
    if !about.is_empty() {
        report.evidence.push(format!("page: {about}"));
    }
    // `summary.json` names the open incidents: say which (a few, each cut short).
    for incident in page.incidents.iter().filter(|i| i.status != "resolved").take(5) {
        report.evidence.push(format!(
            "incident: {} ({}, impact {})",
            net::snippet(incident.name.as_bytes(), 200),
            net::snippet(incident.status.as_bytes(), 40),
            net::snippet(incident.impact.as_bytes(), 40)
        ));
    }
    match judge(&config.name, &page.status, &config.affects) {
        Some(problem) => report.problem(problem),
        None => report.message = format!("{}: {}", config.name, description(&page.status)),
    }
    report.finish(started.elapsed())
}

/// The page's URL with `/api/v2/status.json` appended, unless it already ends in `.json`.
fn status_url(url: &str) -> String {
    let url = url.trim();
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    if base.ends_with(".json") {
        return url.to_owned();
    }
    let mut full = format!("{}/api/v2/status.json", base.trim_end_matches('/'));
    if let Some(query) = query {
        full.push('?');
        full.push_str(query);
    }
    full
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
struct StatusDocument {
    page: PageInfo,
    status: PageStatus,
    /// Open incidents, when the URL is `summary.json` or `incidents/unresolved.json`.
    incidents: Vec<PageIncident>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
struct PageIncident {
    name: String,
    status: String,
    impact: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
struct PageInfo {
    name: String,
    updated_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
struct PageStatus {
    indicator: String,
    description: String,
}

fn parse_status(body: &[u8]) -> Result<StatusDocument, String> {
    let doc: StatusDocument =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not Statuspage's status.json ({e})"))?;
    if doc.status.indicator.is_empty() {
        return Err("the answer has no status.indicator".to_owned());
    }
    Ok(doc)
}

fn description(status: &PageStatus) -> String {
    if status.description.is_empty() {
        status.indicator.clone()
    } else {
        net::snippet(status.description.as_bytes(), 200)
    }
}

/// The problem an indicator means: `minor` (and any unknown value but `none`) warn, `major` and
/// `critical` critical.
fn judge(name: &str, status: &PageStatus, affects: &[String]) -> Option<Problem> {
    let severity = match status.indicator.to_ascii_lowercase().as_str() {
        "none" => return None,
        "major" | "critical" => Status::Critical,
        _ => Status::Warn,
    };
    let mut message = format!("upstream incident at {name}: {}", description(status));
    if !affects.is_empty() {
        message.push_str(&format!(" — do not restart {}", affects.join(", ")));
    }
    Some(Problem::new(Runbook::UpstreamIncident, severity, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(indicator: &str, description: &str) -> PageStatus {
        PageStatus { indicator: indicator.into(), description: description.into() }
    }

    #[test]
    fn path_is_appended_unless_json() {
        assert_eq!(status_url("https://status.stellar.org"), "https://status.stellar.org/api/v2/status.json");
        assert_eq!(status_url("https://status.stellar.org/"), "https://status.stellar.org/api/v2/status.json");
        assert_eq!(status_url("http://127.0.0.1:9/x/status.json"), "http://127.0.0.1:9/x/status.json");
        assert_eq!(status_url("http://h/p?k=v"), "http://h/p/api/v2/status.json?k=v");
    }

    #[test]
    fn indicators() {
        assert_eq!(judge("stellar", &status("none", "All Systems Operational"), &[]), None);
        let minor = judge("stellar", &status("minor", "Partial System Outage"), &["indexer".into()]).unwrap();
        assert_eq!((minor.runbook, minor.status), (Runbook::UpstreamIncident, Status::Warn));
        assert_eq!(minor.message, "upstream incident at stellar: Partial System Outage — do not restart indexer");
        let major = judge("s", &status("major", "Major Outage"), &["a".into(), "b".into()]).unwrap();
        assert_eq!(major.status, Status::Critical);
        assert_eq!(major.message, "upstream incident at s: Major Outage — do not restart a, b");
        assert_eq!(judge("s", &status("critical", ""), &[]).unwrap().message, "upstream incident at s: critical");
        assert_eq!(judge("s", &status("maintenance", "Under Maintenance"), &[]).unwrap().status, Status::Warn);
    }

    #[test]
    fn statuspage_document() {
        let body = br#"{"page":{"id":"x","name":"Stellar","url":"https://status.stellar.org","time_zone":"Etc/UTC",
            "updated_at":"2030-01-01T00:00:00.000Z"},"status":{"indicator":"minor","description":"Partial System Outage"}}"#;
        let doc = parse_status(body).unwrap();
        assert_eq!(doc.status, status("minor", "Partial System Outage"));
        assert_eq!(doc.page.name, "Stellar");
        assert!(parse_status(b"{}").unwrap_err().contains("indicator"));
        assert!(parse_status(b"<html>").is_err());
    }
}
