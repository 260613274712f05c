//! Prometheus samples from reports, under the names users already alert on (blackbox
//! exporter's `probe_ssl_*` and `probe_tls_version_info`) plus `ops_tls_*`. Pure: the server
//! renders them.

use serde::Serialize;

use crate::{EndpointReport, PathReport};

/// Earliest `notAfter` of the presented chain, in unix seconds.
pub const PROBE_SSL_EARLIEST_CERT_EXPIRY: &str = "probe_ssl_earliest_cert_expiry";
/// Earliest `notAfter` of the verified chain, in unix seconds; 0 when no chain verified.
pub const PROBE_SSL_LAST_CHAIN_EXPIRY: &str = "probe_ssl_last_chain_expiry_timestamp_seconds";
/// Always 1, with the negotiated version as the `version` label (`TLS 1.3`).
pub const PROBE_TLS_VERSION_INFO: &str = "probe_tls_version_info";
/// Days left on the certificate the status is computed from.
pub const OPS_TLS_DAYS_LEFT: &str = "ops_tls_days_left";
/// Earliest `notAfter` in the files under a path, in unix seconds.
pub const OPS_TLS_FILE_EARLIEST_EXPIRY: &str = "ops_tls_file_earliest_cert_expiry";

/// One sample: a series name, its labels in a stable order, and a value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSample {
    /// Series name.
    pub name: &'static str,
    /// Label names and values.
    pub labels: Vec<(&'static str, String)>,
    /// Value.
    pub value: f64,
}

/// Samples for endpoint reports, labelled `target` (`host:port`). Every report that received a
/// certificate yields them, verified or not: `probe_ssl_last_chain_expiry_timestamp_seconds` is
/// then 0 (like blackbox's zero time), so expiry alerts fire on a chain that does not verify.
/// A report without any certificate (connection refused) yields none.
#[must_use]
pub fn endpoint_metrics(reports: &[EndpointReport]) -> Vec<MetricSample> {
    let mut samples = Vec::new();
    for report in reports {
        let Some(presented) = report.presented_earliest_expiry else { continue };
        let labels = || vec![("target", report.target.clone())];
        samples.push(sample(PROBE_SSL_EARLIEST_CERT_EXPIRY, labels(), seconds(presented)));
        let verified = report.verified_earliest_expiry.map_or(0.0, seconds);
        samples.push(sample(PROBE_SSL_LAST_CHAIN_EXPIRY, labels(), verified));
        if let Some(version) = &report.tls_version {
            let mut labels = labels();
            labels.push(("version", version.clone()));
            samples.push(sample(PROBE_TLS_VERSION_INFO, labels, 1.0));
        }
        if let Some(days) = report.days_left {
            samples.push(sample(OPS_TLS_DAYS_LEFT, labels(), days_value(days)));
        }
    }
    samples
}

/// Samples for file and directory reports, one set per certificate file, labelled `path`.
#[must_use]
pub fn file_metrics(reports: &[PathReport]) -> Vec<MetricSample> {
    let mut samples = Vec::new();
    for file in reports.iter().flat_map(|r| &r.files) {
        let (Some(expiry), Some(days)) = (file.earliest_expiry, file.days_left) else { continue };
        let labels = || vec![("path", file.path.display().to_string())];
        samples.push(sample(OPS_TLS_FILE_EARLIEST_EXPIRY, labels(), seconds(expiry)));
        samples.push(sample(OPS_TLS_DAYS_LEFT, labels(), days_value(days)));
    }
    samples
}

fn sample(name: &'static str, labels: Vec<(&'static str, String)>, value: f64) -> MetricSample {
    MetricSample { name, labels, value }
}

#[allow(clippy::cast_precision_loss)] // unix seconds and day counts are far below 2^52
fn seconds(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp() as f64
}

#[allow(clippy::cast_precision_loss)]
fn days_value(days: i64) -> f64 {
    days as f64
}

#[cfg(test)]
mod tests;
