//! Firing alerts of an Alertmanager (`[alertmanager]`), from its v2 API:
//! `GET {url}/api/v2/alerts?active=true&silenced=false&inhibited=false`.
//!
//! One `alert-firing` problem per alert, with the severity its `severity` label stands for
//! ([`AlertmanagerConfig::severity_of_alert`]: its `priority` label `P1` … `P4` when it has one,
//! else `critical`/`page` P2, `none`/`info` P4 or ignored, any other P3); the `ignore`d names (`Watchdog`) are left out. When Alertmanager sends its
//! alerts to ops-server's webhook (`webhook-keys`), they become incidents from there, one per
//! alert group, and the probe reports only that it answers and how many fire. An Alertmanager
//! that does not answer makes the report `unknown` (`probe-failed`).
//!
//! Also the rest of what ops-server says to Alertmanager: its webhook payload (version 4),
//! whether an alert still fires, and silences (API v2).

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
    let alerts: Vec<Alert> =
        alerts.into_iter().filter(|a| config.severity_of_alert(a.name(), &a.labels).is_some()).collect();
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
    if !config.webhook_keys.is_empty() {
        // The webhook records them, one incident per group; one here too would double them.
        if !alerts.is_empty() {
            report.message = format!("{} (recorded from the webhook)", report.message.trim());
        }
        return report.finish(started.elapsed());
    }
    for alert in &alerts {
        let severity = config.severity_of_alert(alert.name(), &alert.labels);
        report.problem(alert.problem(severity));
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

    fn problem(&self, severity: Option<ops_core::Severity>) -> Problem {
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
        let mut problem = Problem::new(Runbook::AlertFiring, self.status(), message).with_evidence(evidence);
        problem.severity = severity;
        problem
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

/// Alertmanager's webhook payload, version 4 (`webhook_configs`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessage {
    /// `4`.
    pub version: String,
    /// The group's key: one incident per group.
    pub group_key: String,
    /// `firing` while any alert of the group fires, else `resolved`.
    pub status: String,
    /// The receiver's name.
    #[serde(default)]
    pub receiver: String,
    /// The labels the group is made by.
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    /// The alerts of the notification.
    pub alerts: Vec<WebhookAlert>,
}

/// One alert of a [`WebhookMessage`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Its labels (`alertname`, `severity`, `instance`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its annotations (`summary`, `runbook`).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When it started (RFC 3339): with the fingerprint, what makes a delivery the same.
    pub starts_at: String,
    /// Its fingerprint (hex).
    pub fingerprint: String,
}

/// The most alerts one notification may carry.
pub const MAX_WEBHOOK_ALERTS: usize = 1000;

impl WebhookMessage {
    /// Parses and checks a payload: version 4, known statuses, bounded sizes, fingerprints of
    /// hex, RFC 3339 start times.
    ///
    /// # Errors
    /// What is wrong, in words (never the payload).
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let m: Self = serde_json::from_slice(body).map_err(|e| format!("not an Alertmanager webhook payload: {e}"))?;
        if m.version != "4" {
            return Err(format!("version {:?} is not 4", m.version.chars().take(10).collect::<String>()));
        }
        if !matches!(m.status.as_str(), "firing" | "resolved") {
            return Err("status is neither firing nor resolved".into());
        }
        if m.group_key.is_empty() || m.group_key.len() > 4096 {
            return Err("groupKey must be 1 to 4096 characters".into());
        }
        if m.alerts.is_empty() || m.alerts.len() > MAX_WEBHOOK_ALERTS {
            return Err(format!("a notification carries 1 to {MAX_WEBHOOK_ALERTS} alerts"));
        }
        for (i, a) in m.alerts.iter().enumerate() {
            let at = |what: &str| format!("alert {}: {what}", i + 1);
            if !matches!(a.status.as_str(), "firing" | "resolved") {
                return Err(at("status is neither firing nor resolved"));
            }
            if a.fingerprint.is_empty()
                || a.fingerprint.len() > 64
                || !a.fingerprint.chars().all(|c| c.is_ascii_hexdigit())
            {
                return Err(at("fingerprint is not hex"));
            }
            if chrono::DateTime::parse_from_rfc3339(&a.starts_at).is_err() {
                return Err(at("startsAt is not an RFC 3339 time"));
            }
            if a.labels.len() > 100 || a.annotations.len() > 100 {
                return Err(at("more than 100 labels or annotations"));
            }
            let too_long = a.labels.iter().chain(&a.annotations).any(|(k, v)| k.len() > 200 || v.len() > 8192);
            if too_long {
                return Err(at("a label or annotation is too long"));
            }
            if !a.labels.contains_key("alertname") {
                return Err(at("no alertname label"));
            }
        }
        Ok(m)
    }
}

impl WebhookAlert {
    /// Its `alertname`.
    #[must_use]
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("unnamed alert", String::as_str)
    }

    /// Its summary (or description, or message), shortened.
    #[must_use]
    pub fn summary(&self) -> String {
        ["summary", "description", "message"]
            .iter()
            .find_map(|k| self.annotations.get(*k))
            .map(|s| net::snippet(s.as_bytes(), 200))
            .unwrap_or_default()
    }

    /// The runbook it names: its `runbook` label, else its `runbook` annotation, else the
    /// config's mapping of its name.
    #[must_use]
    pub fn runbook(&self, config: &AlertmanagerConfig) -> Option<String> {
        self.labels
            .get("runbook")
            .or_else(|| self.annotations.get("runbook"))
            .or_else(|| config.runbooks.get(self.name()))
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
    }

    /// The labels that name its target (`instance`, `service`, `container`, `job`,
    /// `database`, `target`), else its name: what a silence for it matches.
    #[must_use]
    pub fn target_matchers(&self) -> Vec<(String, String)> {
        let target: Vec<(String, String)> = ["instance", "target", "service", "container", "job", "database"]
            .iter()
            .filter_map(|k| self.labels.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        if target.is_empty() { vec![("alertname".to_owned(), self.name().to_owned())] } else { target }
    }
}

/// Whether the alert with `fingerprint` still fires in the Alertmanager at `config.url`:
/// active, not inhibited, and silenced by none but `ours` (the silences ops-server made while
/// its runbooks act, which must not make another alert of the same target look resolved). An
/// alert that is gone, or that a person silenced, does not fire.
///
/// # Errors
/// Why Alertmanager could not be asked.
pub async fn still_firing(
    config: &AlertmanagerConfig,
    fingerprint: &str,
    ours: &[String],
    options: &NetOptions,
) -> Result<bool, String> {
    let mut url = net::parse_url(&api_url(config.url.expose(), "alerts")?)?;
    url.query_pairs_mut()
        .append_pair("active", "true")
        .append_pair("silenced", "true")
        .append_pair("inhibited", "true");
    let (_, body) = net::get_document(url.as_str(), MAX_ANSWER, options).await;
    let alerts: Vec<serde_json::Value> =
        serde_json::from_slice(&body?).map_err(|e| format!("the answer is not a v2 alert list ({e})"))?;
    Ok(fires(&alerts, fingerprint, ours))
}

/// Whether `fingerprint` is among `alerts` (a v2 alert list), active, not inhibited, and
/// silenced by none but `ours`.
fn fires(alerts: &[serde_json::Value], fingerprint: &str, ours: &[String]) -> bool {
    let Some(alert) =
        alerts.iter().find(|a| a.get("fingerprint").and_then(serde_json::Value::as_str) == Some(fingerprint))
    else {
        return false;
    };
    let status = &alert["status"];
    let ids = |k: &str| -> Vec<String> {
        status[k].as_array().map_or_else(Vec::new, |a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
    };
    let state = status["state"].as_str().unwrap_or("active");
    let silenced_by_others = ids("silencedBy").iter().any(|id| !ours.contains(id));
    matches!(state, "active" | "suppressed" | "unprocessed") && ids("inhibitedBy").is_empty() && !silenced_by_others
}

/// `{base}/api/v2/{path}`.
fn api_url(base: &str, path: &str) -> Result<String, String> {
    let mut url = net::parse_url(base)?;
    let full = format!("{}/api/v2/{path}", url.path().trim_end_matches('/'));
    url.set_path(&full);
    Ok(url.into())
}

/// Creates a silence of the alerts matching `matchers` (equality) until `ends_at`; returns
/// its id.
///
/// # Errors
/// `Unavailable` when Alertmanager does not take it.
pub async fn create_silence(
    http: &dyn ops_core::ports::HttpClient,
    config: &AlertmanagerConfig,
    matchers: &[(String, String)],
    ends_at: chrono::DateTime<chrono::Utc>,
    comment: &str,
) -> ops_core::Result<String> {
    let url = api_url(config.url.expose(), "silences").map_err(ops_core::Error::invalid_input)?;
    let body = serde_json::json!({
        "matchers": matchers.iter().map(|(k, v)| serde_json::json!({
            "name": k, "value": v, "isRegex": false, "isEqual": true
        })).collect::<Vec<_>>(),
        "startsAt": chrono::Utc::now().to_rfc3339(),
        "endsAt": ends_at.to_rfc3339(),
        "createdBy": "ops-server",
        "comment": comment,
    });
    let request = ops_core::ports::HttpRequest {
        method: "POST".to_owned(),
        url,
        headers: vec![("content-type".to_owned(), ops_core::Secret::new("application/json"))],
        body: Some(body.to_string()),
        timeout: std::time::Duration::from_secs(10),
    };
    let response = http.send(&request).await?;
    if !(200..300).contains(&response.status) {
        return Err(ops_core::Error::unavailable(format!(
            "Alertmanager refused the silence: HTTP {}",
            response.status
        )));
    }
    let id = serde_json::from_str::<serde_json::Value>(&response.body_snippet)
        .ok()
        .and_then(|v| v.get("silenceID").and_then(serde_json::Value::as_str).map(str::to_owned))
        .filter(|id| !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .ok_or_else(|| ops_core::Error::unavailable("Alertmanager's answer names no silence"))?;
    Ok(id)
}

/// Expires a silence now.
///
/// # Errors
/// `Unavailable` when Alertmanager does not take it.
pub async fn expire_silence(
    http: &dyn ops_core::ports::HttpClient,
    config: &AlertmanagerConfig,
    id: &str,
) -> ops_core::Result<()> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ops_core::Error::invalid_input("not a silence id"));
    }
    let url = api_url(config.url.expose(), &format!("silence/{id}")).map_err(ops_core::Error::invalid_input)?;
    let request = ops_core::ports::HttpRequest {
        method: "DELETE".to_owned(),
        url,
        headers: Vec::new(),
        body: None,
        timeout: std::time::Duration::from_secs(10),
    };
    let response = http.send(&request).await?;
    if (200..300).contains(&response.status) {
        Ok(())
    } else {
        Err(ops_core::Error::unavailable(format!("Alertmanager did not expire silence {id}: HTTP {}", response.status)))
    }
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
        let p = alerts[0].problem(Some(ops_core::Severity::P2));
        assert_eq!(p.runbook, Runbook::AlertFiring);
        assert_eq!(p.severity, Some(ops_core::Severity::P2));
        assert_eq!(p.message, "ApiDown: api returns 503 for 5 minutes");
        let p = alerts[3].problem(None);
        assert_eq!(p.message, "DiskAlmostFull: Disk / is 91% full");
        assert_eq!(
            p.evidence,
            [
                r#"labels: {alertname="DiskAlmostFull", instance="web-1", severity="warning"}"#,
                "startsAt: 2030-01-01T00:10:00Z"
            ]
        );
        assert_eq!(alerts[2].problem(None).message, "Info");
    }

    #[test]
    fn an_alert_silenced_by_ops_server_itself_still_fires() {
        let alert = |state: &str, silenced: &[&str], inhibited: &[&str]| serde_json::json!({"fingerprint": "f1", "status": {"state": state, "silencedBy": silenced, "inhibitedBy": inhibited}});
        let ours = vec!["s-ours".to_owned()];
        assert!(fires(&[alert("active", &[], &[])], "f1", &ours));
        assert!(fires(&[alert("suppressed", &["s-ours"], &[])], "f1", &ours));
        assert!(!fires(&[alert("suppressed", &["s-ours", "s-person"], &[])], "f1", &ours), "a person silenced it too");
        assert!(!fires(&[alert("suppressed", &[], &["f0"])], "f1", &ours), "inhibited");
        assert!(!fires(&[alert("active", &[], &[])], "f2", &ours), "gone");
        assert!(fires(&[alert("unprocessed", &[], &[])], "f1", &ours), "received, not yet grouped");
    }

    #[test]
    fn severities_map_watchdog_and_info_stay_quiet() {
        let config = AlertmanagerConfig::default();
        let sev = |name: &str, s: Option<&str>| config.severity_of(name, s);
        assert_eq!(sev("ApiDown", Some("critical")), Some(ops_core::Severity::P2));
        assert_eq!(sev("Paged", Some("PAGE")), Some(ops_core::Severity::P2));
        assert_eq!(sev("DiskAlmostFull", Some("warning")), Some(ops_core::Severity::P3));
        assert_eq!(sev("Info", Some("info")), Some(ops_core::Severity::P4));
        assert_eq!(sev("Quiet", Some("none")), Some(ops_core::Severity::P4));
        assert_eq!(sev("Watchdog", Some("none")), None);
        let ignoring =
            AlertmanagerConfig { low_severity: ops_core::config::LowSeverity::Ignore, ..AlertmanagerConfig::default() };
        assert_eq!(ignoring.severity_of("Info", Some("info")), None);
        // The generated rules' `priority` label wins over `severity` (ServiceDown is P1).
        let labels = |p: &str, s: &str| {
            BTreeMap::from([("priority".to_owned(), p.to_owned()), ("severity".to_owned(), s.to_owned())])
        };
        assert_eq!(config.severity_of_alert("ServiceDown", &labels("P1", "critical")), Some(ops_core::Severity::P1));
        assert_eq!(config.severity_of_alert("X", &labels("p3", "critical")), Some(ops_core::Severity::P3));
        assert_eq!(config.severity_of_alert("X", &labels("urgent", "critical")), Some(ops_core::Severity::P2));
        assert_eq!(config.severity_of_alert("Watchdog", &labels("P1", "none")), None);
        // A P4 never pages: triage takes the alert's own severity over the runbook's.
        let problem = parse_alerts(ALERTS.as_bytes()).unwrap()[2].problem(Some(ops_core::Severity::P4));
        let overrides = BTreeMap::new();
        assert_eq!(crate::triage::severity(&problem, false, &overrides), ops_core::Severity::P4);
    }

    const WEBHOOK: &str = r#"{
      "version": "4", "groupKey": "{}:{alertname=\"ServiceDown\"}", "status": "firing",
      "receiver": "ops", "groupLabels": {"alertname": "ServiceDown"},
      "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am:9093", "truncatedAlerts": 0,
      "alerts": [{"status": "firing", "labels": {"alertname": "ServiceDown", "service": "indexer",
                  "severity": "critical", "runbook": "container-down"},
                  "annotations": {"summary": "indexer is down"}, "startsAt": "2030-01-01T00:00:00Z",
                  "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "a1b2c3d4e5f60718"}]
    }"#;

    #[test]
    fn webhook_payloads_are_checked() {
        let m = WebhookMessage::parse(WEBHOOK.as_bytes()).unwrap();
        let a = &m.alerts[0];
        assert_eq!((a.name(), a.summary().as_str()), ("ServiceDown", "indexer is down"));
        assert_eq!(a.runbook(&AlertmanagerConfig::default()).as_deref(), Some("container-down"));
        assert_eq!(a.target_matchers(), [("service".to_owned(), "indexer".to_owned())]);
        for (from, to, why) in [
            (r#""version": "4""#, r#""version": "3""#, "version"),
            (r#""fingerprint": "a1b2c3d4e5f60718""#, r#""fingerprint": "../x""#, "fingerprint"),
            (r#""startsAt": "2030-01-01T00:00:00Z""#, r#""startsAt": "yesterday""#, "startsAt"),
            (r#""status": "firing", "labels""#, r#""status": "pending", "labels""#, "status"),
        ] {
            let e = WebhookMessage::parse(WEBHOOK.replace(from, to).as_bytes()).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        assert!(WebhookMessage::parse(b"{}").is_err());
        assert!(WebhookMessage::parse(b"not json").is_err());
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
