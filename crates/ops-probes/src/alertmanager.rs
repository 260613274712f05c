//! Firing alerts of an Alertmanager (`[alertmanager]`), from its v2 API:
//! `GET {url}/api/v2/alerts?active=true&silenced=false&inhibited=false`.
//!
//! One `alert-firing` problem per alert: `critical` for the severities `critical` and `page`,
//! `warn` for any other. An Alertmanager that does not answer makes the report `unknown`
//! (`probe-failed`): it says nothing about the alerts.

use std::collections::BTreeMap;
use std::time::Instant;

use ops_core::config::AlertmanagerConfig;
use ops_core::{Runbook, Status};
use serde::Deserialize;

use crate::net::{self, NetOptions};
use crate::{Observation, ProbeKind, ProbeReport, Problem, Unit};

/// Bytes of the alert list read at most.
const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// Alert names listed in the report's message at most.
const NAMES_SHOWN: usize = 5;

/// Reads the firing alerts (active, neither silenced nor inhibited), most severe first.
///
/// Problems: one `alert-firing` per alert, message `alertname: summary`, evidence its labels
/// and `startsAt`. Observations: `firing` (count), `total` (ms). The report is named
/// `alertmanager`.
pub async fn probe(config: &AlertmanagerConfig, options: &NetOptions) -> ProbeReport {
    let started = Instant::now();
    let mut report = ProbeReport::new(ProbeKind::Alertmanager, "", config.url.redacted());
    let body = match alerts_url(config.url.expose()) {
        Ok(url) => {
            let (trace, body) = net::get_document(&url, MAX_ANSWER, options).await;
            if let Some(total) = trace.total {
                report.observe(Observation::new("total", net::millis(total), Unit::Milliseconds));
            }
            body
        }
        Err(reason) => Err(reason),
    };
    let alerts = match body.and_then(|body| parse_alerts(&body)) {
        Ok(alerts) => alerts,
        Err(reason) => {
            let message = format!("cannot read Alertmanager's alerts: {reason}");
            report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, message));
            return report.finish(started.elapsed());
        }
    };
    report.observe(Observation::new("firing", alerts.len() as f64, Unit::Count));
    report.message = match alerts.len() {
        0 => "no alerts firing".to_owned(),
        1 => String::new(),
        n => {
            let mut names: Vec<&str> = Vec::new();
            for alert in &alerts {
                if !names.contains(&alert.name()) {
                    names.push(alert.name());
                }
            }
            let more = if names.len() > NAMES_SHOWN { ", …" } else { "" };
            names.truncate(NAMES_SHOWN);
            format!("{n} alerts firing: {}{more}", names.join(", "))
        }
    };
    for alert in &alerts {
        report.problem(alert.problem());
    }
    report.finish(started.elapsed())
}

/// `{base}/api/v2/alerts?active=true&silenced=false&inhibited=false`, keeping the base's path
/// prefix (an Alertmanager behind `/alertmanager/`) and query.
fn alerts_url(base: &str) -> Result<String, String> {
    let mut url = net::parse_url(base)?;
    let path = format!("{}/api/v2/alerts", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.query_pairs_mut()
        .append_pair("active", "true")
        .append_pair("silenced", "false")
        .append_pair("inhibited", "false");
    Ok(url.into())
}

/// One alert of the v2 API (`gettableAlert`), with the fields the probe reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Alert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: Option<String>,
    status: Option<AlertStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct AlertStatus {
    state: String,
    silenced_by: Vec<String>,
    inhibited_by: Vec<String>,
}

impl Alert {
    fn name(&self) -> &str {
        self.labels.get("alertname").map_or("unnamed alert", String::as_str)
    }

    /// `critical` for the severities `critical` and `page`, `warn` otherwise.
    fn status(&self) -> Status {
        match self.labels.get("severity").map(|s| s.to_ascii_lowercase()).as_deref() {
            Some("critical" | "page") => Status::Critical,
            _ => Status::Warn,
        }
    }

    /// Whether it is firing: active, neither silenced nor inhibited (an Alertmanager that
    /// ignores the query's filters is filtered here).
    fn is_firing(&self) -> bool {
        self.status.as_ref().is_none_or(|s| {
            (s.state.is_empty() || s.state == "active") && s.silenced_by.is_empty() && s.inhibited_by.is_empty()
        })
    }

    fn problem(&self) -> Problem {
        let summary = ["summary", "description", "message"].iter().find_map(|k| self.annotations.get(*k));
        let message = match summary {
            Some(summary) => format!("{}: {}", self.name(), net::snippet(summary.as_bytes(), 200)),
            None => self.name().to_owned(),
        };
        let labels = self.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(", ");
        let mut evidence = vec![format!("labels: {{{labels}}}")];
        if let Some(starts_at) = &self.starts_at {
            evidence.push(format!("startsAt: {starts_at}"));
        }
        Problem::new(Runbook::AlertFiring, self.status(), message).with_evidence(evidence)
    }
}

/// The firing alerts of a v2 `/api/v2/alerts` answer, most severe first, then oldest first.
fn parse_alerts(body: &[u8]) -> Result<Vec<Alert>, String> {
    let alerts: Vec<Alert> =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not a v2 alert list ({e})"))?;
    let mut firing: Vec<Alert> = alerts.into_iter().filter(Alert::is_firing).collect();
    firing.sort_by(|a, b| {
        b.status().cmp(&a.status()).then_with(|| a.starts_at.cmp(&b.starts_at)).then_with(|| a.name().cmp(b.name()))
    });
    Ok(firing)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALERTS: &str = r#"[
      {"labels": {"alertname": "DiskAlmostFull", "severity": "warning", "instance": "web-1"},
       "annotations": {"summary": "Disk / is 91% full"},
       "startsAt": "2030-01-01T00:10:00Z", "endsAt": "2030-01-01T01:10:00Z",
       "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
       "fingerprint": "a1", "receivers": [{"name": "team"}], "updatedAt": "2030-01-01T00:10:00Z"},
      {"labels": {"alertname": "ApiDown", "severity": "critical"},
       "annotations": {"description": "api returns 503\nfor 5 minutes"},
       "startsAt": "2030-01-01T00:20:00Z",
       "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}},
      {"labels": {"alertname": "Silenced", "severity": "critical"},
       "status": {"state": "suppressed", "silencedBy": ["s1"], "inhibitedBy": []}},
      {"labels": {"alertname": "Paged", "severity": "PAGE"}, "startsAt": "2030-01-01T00:30:00Z"},
      {"labels": {"alertname": "Info", "severity": "info"}}
    ]"#;

    #[test]
    fn firing_alerts_most_severe_first() {
        let alerts = parse_alerts(ALERTS.as_bytes()).unwrap();
        let names: Vec<&str> = alerts.iter().map(Alert::name).collect();
        assert_eq!(names, ["ApiDown", "Paged", "Info", "DiskAlmostFull"]);
        let statuses: Vec<Status> = alerts.iter().map(Alert::status).collect();
        assert_eq!(statuses, [Status::Critical, Status::Critical, Status::Warn, Status::Warn]);
    }

    #[test]
    fn problem_has_summary_labels_and_start() {
        let alerts = parse_alerts(ALERTS.as_bytes()).unwrap();
        let p = alerts[0].problem();
        assert_eq!(p.runbook, Runbook::AlertFiring);
        assert_eq!(p.message, "ApiDown: api returns 503 for 5 minutes");
        let p = alerts[3].problem();
        assert_eq!(p.message, "DiskAlmostFull: Disk / is 91% full");
        assert_eq!(
            p.evidence,
            [
                r#"labels: {alertname="DiskAlmostFull", instance="web-1", severity="warning"}"#,
                "startsAt: 2030-01-01T00:10:00Z"
            ]
        );
        assert_eq!(alerts[2].problem().message, "Info");
    }

    #[test]
    fn not_a_list_is_an_error() {
        assert!(parse_alerts(b"{\"status\":\"success\"}").unwrap_err().contains("not a v2 alert list"));
        assert_eq!(parse_alerts(b"[]").unwrap(), []);
    }

    #[test]
    fn alerts_url_keeps_prefix_and_query() {
        assert_eq!(
            alerts_url("http://am:9093").unwrap(),
            "http://am:9093/api/v2/alerts?active=true&silenced=false&inhibited=false"
        );
        assert_eq!(
            alerts_url("https://u:p@ops.example/alertmanager/?x=1").unwrap(),
            "https://u:p@ops.example/alertmanager/api/v2/alerts?x=1&active=true&silenced=false&inhibited=false"
        );
    }
}
