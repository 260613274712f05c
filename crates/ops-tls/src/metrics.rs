//! Prometheus samples from reports, under the names and meanings of blackbox_exporter's TLS
//! probe (`probe_success`, `probe_ssl_*`, `probe_tls_version_info`), so the rules people
//! already have give the same alerts, plus `ops_tls_*` for what blackbox cannot see (the
//! expiry of a certificate that does not verify, certificate files). Pure: the server renders
//! them.
//!
//! Every endpoint series carries the same labels, `probe` (`tls:NAME`), `kind` (`tls`) and
//! `target` (`host:port`), so they join with each other and with the other probes' series.

use serde::Serialize;

use crate::{EndpointReport, PathReport};

/// 1 when the TLS handshake succeeded and verified (chain, name, dates), else 0.
pub const PROBE_SUCCESS: &str = "probe_success";
/// How long the check took, seconds.
pub const PROBE_DURATION: &str = "probe_duration_seconds";
/// Earliest `notAfter` of the presented chain, in unix seconds; only after a verified handshake.
pub const PROBE_SSL_EARLIEST_CERT_EXPIRY: &str = "probe_ssl_earliest_cert_expiry";
/// Earliest `notAfter` of the verified chain, in unix seconds; only after a verified handshake
/// (a chain that does not verify has no series, as with blackbox).
pub const PROBE_SSL_LAST_CHAIN_EXPIRY: &str = "probe_ssl_last_chain_expiry_timestamp_seconds";
/// Always 1, with the leaf's `fingerprint_sha256`, `subject`, `issuer`, `subjectalternative`
/// and `serialnumber` as labels; only after a verified handshake.
pub const PROBE_SSL_LAST_CHAIN_INFO: &str = "probe_ssl_last_chain_info";
/// Always 1, with the negotiated version as the `version` label (`TLS 1.3`).
pub const PROBE_TLS_VERSION_INFO: &str = "probe_tls_version_info";
/// Earliest `notAfter` of the chain the status is computed from (the verified one, else the
/// presented one), in unix seconds, verified or not: what `opsctl tls check` judges.
pub const OPS_TLS_CERT_EXPIRY: &str = "ops_tls_cert_expiry_timestamp_seconds";
/// 1 when the presented chain verified, 0 when a certificate came but did not verify.
pub const OPS_TLS_CHAIN_VERIFIED: &str = "ops_tls_chain_verified";
/// Earliest `notAfter` in a certificate file, in unix seconds.
pub const OPS_TLS_FILE_CERT_EXPIRY: &str = "ops_tls_file_cert_expiry_timestamp_seconds";

/// The help text of every series this module makes.
#[must_use]
pub fn help(name: &str) -> Option<&'static str> {
    Some(match name {
        PROBE_SUCCESS => "Whether the probe's protocol exchange succeeded (blackbox_exporter's meaning)",
        PROBE_DURATION => "How long the probe took, in seconds",
        PROBE_SSL_EARLIEST_CERT_EXPIRY => "Earliest certificate expiry of the presented chain, unix seconds",
        PROBE_SSL_LAST_CHAIN_EXPIRY => "Earliest certificate expiry of the verified chain, unix seconds",
        PROBE_SSL_LAST_CHAIN_INFO => "The leaf certificate of the verified chain, in labels",
        PROBE_TLS_VERSION_INFO => "The negotiated TLS version, in the version label",
        OPS_TLS_CERT_EXPIRY => {
            "Earliest certificate expiry the TLS verdict is judged on, unix seconds, verified or not"
        }
        OPS_TLS_CHAIN_VERIFIED => "1 when the presented certificate chain verified, 0 when it did not",
        OPS_TLS_FILE_CERT_EXPIRY => "Earliest certificate expiry in a certificate file, unix seconds",
        _ => return None,
    })
}

/// One sample: a series name, its labels in a stable order, and a value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricSample {
    /// Series name.
    pub name: &'static str,
    /// Label names and values.
    pub labels: Vec<(&'static str, String)>,
    /// Value.
    pub value: f64,
}

/// Samples for endpoint reports, each with its `[[tls]]` name (the target when empty).
/// `probe_success` and `probe_duration_seconds` always; the `probe_ssl_*` and
/// `probe_tls_version_info` series only after a verified handshake, as blackbox gives them;
/// `ops_tls_cert_expiry_timestamp_seconds` and `ops_tls_chain_verified` whenever a
/// certificate came.
#[must_use]
pub fn endpoint_metrics(reports: &[(&str, &EndpointReport)]) -> Vec<MetricSample> {
    let mut samples = Vec::new();
    for (name, report) in reports {
        let name = if name.is_empty() { report.target.as_str() } else { name };
        let labels =
            || vec![("probe", format!("tls:{name}")), ("kind", "tls".to_owned()), ("target", report.target.clone())];
        let verified = report.handshake_verified();
        samples.push(sample(PROBE_SUCCESS, labels(), if verified { 1.0 } else { 0.0 }));
        #[allow(clippy::cast_precision_loss)]
        samples.push(sample(PROBE_DURATION, labels(), report.duration_ms as f64 / 1000.0));
        if verified {
            if let Some(presented) = report.presented_earliest_expiry {
                samples.push(sample(PROBE_SSL_EARLIEST_CERT_EXPIRY, labels(), seconds(presented)));
            }
            if let Some(chain) = report.verified_earliest_expiry {
                samples.push(sample(PROBE_SSL_LAST_CHAIN_EXPIRY, labels(), seconds(chain)));
            }
            if let Some(leaf) = report.leaf() {
                let mut labels = labels();
                labels.push(("fingerprint_sha256", leaf.fingerprint_sha256.clone()));
                labels.push(("issuer", leaf.issuer.clone()));
                labels.push(("serialnumber", leaf.serial.to_lowercase()));
                labels.push(("subject", leaf.subject.clone()));
                labels.push(("subjectalternative", leaf.dns_names.join(",")));
                samples.push(sample(PROBE_SSL_LAST_CHAIN_INFO, labels, 1.0));
            }
            if let Some(version) = &report.tls_version {
                let mut labels = labels();
                labels.push(("version", version.clone()));
                samples.push(sample(PROBE_TLS_VERSION_INFO, labels, 1.0));
            }
        }
        if let Some(expiry) = report.verified_earliest_expiry.or(report.presented_earliest_expiry) {
            samples.push(sample(OPS_TLS_CERT_EXPIRY, labels(), seconds(expiry)));
            let chain_ok = report.verification.as_ref().is_some_and(|v| v.valid);
            samples.push(sample(OPS_TLS_CHAIN_VERIFIED, labels(), if chain_ok { 1.0 } else { 0.0 }));
        }
    }
    samples
}

/// Samples for file and directory reports, one per certificate file, labelled `path`.
#[must_use]
pub fn file_metrics(reports: &[PathReport]) -> Vec<MetricSample> {
    let mut samples = Vec::new();
    for file in reports.iter().flat_map(|r| &r.files) {
        let Some(expiry) = file.earliest_expiry else { continue };
        let labels = vec![("path", file.path.display().to_string())];
        samples.push(sample(OPS_TLS_FILE_CERT_EXPIRY, labels, seconds(expiry)));
    }
    samples
}

fn sample(name: &'static str, labels: Vec<(&'static str, String)>, value: f64) -> MetricSample {
    MetricSample { name, labels, value }
}

#[allow(clippy::cast_precision_loss)] // unix seconds are far below 2^52
fn seconds(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp() as f64
}

#[cfg(test)]
mod tests;
