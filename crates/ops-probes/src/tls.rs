//! TLS as a probe: [`ops_tls`] reports of endpoints and certificate files turned into
//! [`ProbeReport`]s, each finding classified by runbook (`tls-expiring`, `tls-invalid`,
//! `port-closed`).

use std::time::{Duration, Instant};

use ops_core::config::{TlsCheckConfig, TlsThresholds};
use ops_core::{Finding, Runbook, Status};
use ops_tls::{CheckOptions, ConnectionStage, EndpointReport, PathReport, TargetReport};

use crate::{Observation, ProbeKind, ProbeReport, Problem, Unit};

/// The `ops_tls` options of a check under the configured thresholds.
#[must_use]
pub fn options(thresholds: &TlsThresholds, server_name: Option<String>, timeout: Duration) -> CheckOptions {
    CheckOptions {
        warn_days: thresholds.warn_days,
        critical_days: thresholds.critical_days,
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        ca_file: thresholds.ca_file.clone(),
        server_name,
        now: None,
    }
}

/// Checks one `[[tls]]` entry (endpoint or file) with `ops_tls`, in full detail: what
/// `opsctl tls check`, `GET /api/v1/tls` and [`probe`] share.
///
/// # Errors
/// The input was unusable: a bad target, an unreadable CA file, neither endpoint nor file.
pub async fn check_target(
    check: &TlsCheckConfig,
    thresholds: &TlsThresholds,
    timeout: Duration,
) -> ops_tls::Result<TargetReport> {
    let opts = options(thresholds, check.server_name.clone(), timeout);
    match (&check.endpoint, &check.file) {
        (Some(endpoint), _) => ops_tls::check_endpoint(endpoint, &opts).await.map(TargetReport::Endpoint),
        (None, Some(file)) => ops_tls::check_path(file, &opts).await.map(TargetReport::Path),
        (None, None) => Err(ops_tls::Error::InvalidOption {
            option: "tls",
            reason: format!("[[tls]] {} needs an endpoint or a file", check.name),
        }),
    }
}

/// Checks one configured `[[tls]]` entry (endpoint or file).
pub async fn probe(check: &TlsCheckConfig, thresholds: &TlsThresholds, timeout: Duration) -> ProbeReport {
    let started = Instant::now();
    let mut report = match check_target(check, thresholds, timeout).await {
        Ok(TargetReport::Endpoint(r)) => from_endpoint(&check.name, &r),
        Ok(TargetReport::Path(r)) => from_path(&check.name, &r),
        Err(e) => {
            let target = check
                .endpoint
                .clone()
                .or_else(|| check.file.as_ref().map(|f| f.display().to_string()))
                .unwrap_or_default();
            unusable(&check.name, &target, &e.to_string())
        }
    };
    report.critical = check.critical;
    report.depends_on.clone_from(&check.depends_on);
    report.finish(started.elapsed())
}

/// An input `ops_tls` could not use (bad target, unreadable CA file).
fn unusable(name: &str, target: &str, why: &str) -> ProbeReport {
    let mut report = ProbeReport::new(ProbeKind::Tls, name, target);
    report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, why));
    report.finish(Duration::ZERO)
}

fn runbook_of(finding: &Finding, failure_message: Option<(&str, ConnectionStage)>) -> Runbook {
    if let Some((message, stage)) = failure_message
        && finding.message == message
    {
        return match stage {
            ConnectionStage::Resolve | ConnectionStage::Connect => Runbook::PortClosed,
            ConnectionStage::Handshake => Runbook::TlsInvalid,
        };
    }
    if finding.message.contains(" expired ") || finding.message.contains(" expires in ") {
        Runbook::TlsExpiring
    } else {
        Runbook::TlsInvalid
    }
}

/// An endpoint report as a probe report (name `tls:{name}`; duration from the check).
#[must_use]
pub fn from_endpoint(name: &str, r: &EndpointReport) -> ProbeReport {
    let name = if name.is_empty() { r.target.as_str() } else { name };
    let mut report = ProbeReport::new(ProbeKind::Tls, name, r.target.clone());
    report.exchange_ok = Some(r.handshake_verified());
    let failure = r.connection_failure.as_ref().map(|f| (f.message.as_str(), f.stage));
    for f in &r.findings {
        report.problem(Problem::of(f, runbook_of(f, failure)));
    }
    if let Some(days) = r.days_left {
        #[allow(clippy::cast_precision_loss)]
        report.observe(Observation::new("days_left", days as f64, Unit::Days));
    }
    if let Some(expiry) = r.verified_earliest_expiry.or(r.presented_earliest_expiry) {
        #[allow(clippy::cast_precision_loss)]
        report.observe(Observation::new("earliest_expiry", expiry.timestamp() as f64, Unit::Seconds));
    }
    if let Some(leaf) = r.leaf() {
        report.evidence.push(format!("subject {} issued by {}", leaf.subject, leaf.issuer));
        report.evidence.push(format!("valid until {}", leaf.not_after.to_rfc3339()));
    }
    if let (Some(v), Some(c)) = (&r.tls_version, &r.cipher_suite) {
        report.evidence.push(format!("{v} {c}"));
    }
    let mut report = report.finish(Duration::from_millis(r.duration_ms));
    if report.status == Status::Ok
        && let Some(days) = r.days_left
    {
        report.message = format!("certificate valid, {days} days left");
    }
    report
}

/// A file or directory report as a probe report.
#[must_use]
pub fn from_path(name: &str, r: &PathReport) -> ProbeReport {
    let target = r.path.display().to_string();
    let name = if name.is_empty() { target.as_str() } else { name };
    let mut report = ProbeReport::new(ProbeKind::Tls, name, target.clone());
    for f in r.findings.iter().chain(r.files.iter().flat_map(|f| f.findings.iter())) {
        report.problem(Problem::of(f, runbook_of(f, None)));
    }
    if let Some(days) = r.days_left {
        #[allow(clippy::cast_precision_loss)]
        report.observe(Observation::new("days_left", days as f64, Unit::Days));
    }
    if let Some(expiry) = r.earliest_expiry {
        #[allow(clippy::cast_precision_loss)]
        report.observe(Observation::new("earliest_expiry", expiry.timestamp() as f64, Unit::Seconds));
    }
    report.evidence.extend(r.files.iter().map(|f| format!("{}: {}", f.path.display(), f.status)));
    let mut report = report.finish(Duration::from_millis(r.duration_ms));
    if report.status == Status::Ok
        && let Some(days) = r.days_left
    {
        report.message = format!("{} certificate file(s) valid, {days} days left", r.files.len());
    }
    report
}

/// `[[tls]]` targets and `[[tls-renew]]` commands as renewal options.
///
/// # Errors
/// `InvalidInput` when no `[[tls-renew]]` command is configured.
pub fn renew_options(cfg: &ops_core::config::OpsConfig, force: bool) -> ops_core::Result<ops_tls::RenewOptions> {
    if cfg.tls_renew.is_empty() {
        return Err(ops_core::Error::invalid_input(
            "no [[tls-renew]] command in the configuration (for example container = \"certbot\", \
             command = [\"certbot\", \"renew\"])",
        ));
    }
    let timeout = Duration::from_secs(cfg.probes.timeout_secs.max(1));
    Ok(ops_tls::RenewOptions {
        endpoints: cfg.tls.iter().filter_map(|t| t.endpoint.clone()).collect(),
        paths: cfg.tls.iter().filter_map(|t| t.file.clone()).collect(),
        commands: cfg
            .tls_renew
            .iter()
            .map(|r| ops_tls::RenewCommand {
                container: r.container.clone(),
                cmd: r.command.clone(),
                timeout_secs: r.timeout_secs,
            })
            .collect(),
        force,
        check: options(&cfg.probes.tls, None, timeout),
        ..ops_tls::RenewOptions::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(message: &str) -> Finding {
        Finding {
            subject: "endpoint:x:443".into(),
            status: Status::Critical,
            message: message.into(),
            evidence: vec![],
        }
    }

    #[test]
    fn findings_are_classified_by_runbook() {
        let refused = "connection refused by 127.0.0.1:443";
        let failure = Some((refused, ConnectionStage::Connect));
        assert_eq!(runbook_of(&finding(refused), failure), Runbook::PortClosed);
        assert_eq!(runbook_of(&finding(refused), Some((refused, ConnectionStage::Handshake))), Runbook::TlsInvalid);
        assert_eq!(runbook_of(&finding("leaf CN=x expired 3 day(s) ago, at 2030"), None), Runbook::TlsExpiring);
        assert_eq!(runbook_of(&finding("leaf CN=x expires in 9 day(s), at 2030"), None), Runbook::TlsExpiring);
        assert_eq!(runbook_of(&finding("hostname mismatch: x is not covered"), None), Runbook::TlsInvalid);
    }
}
