//! Samples from reports: presented versus verified expiry, unverified chains.

use chrono::{DateTime, Utc};
use ops_core::Status;

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn report(verified: Option<DateTime<Utc>>) -> EndpointReport {
    EndpointReport {
        target: "example.com:443".into(),
        host: "example.com".into(),
        port: 443,
        server_name: "example.com".into(),
        status: Status::Ok,
        findings: Vec::new(),
        connection_failure: None,
        tls_version: Some("TLS 1.3".into()),
        cipher_suite: Some("TLS13_AES_256_GCM_SHA384".into()),
        presented_chain: Vec::new(),
        verified_chain: Vec::new(),
        verification: None,
        hostname_match: Some(true),
        presented_earliest_expiry: Some(at("2030-01-06T00:00:00Z")),
        verified_earliest_expiry: verified,
        days_left: Some(89),
        checked_at: at("2030-01-01T00:00:00Z"),
        duration_ms: 3,
    }
}

fn value(samples: &[MetricSample], name: &str) -> Option<f64> {
    samples.iter().find(|s| s.name == name).map(|s| s.value)
}

#[test]
fn presented_and_verified_expiries_are_separate_series() {
    let samples = endpoint_metrics(&[report(Some(at("2030-04-01T00:00:00Z")))]);
    assert_eq!(value(&samples, PROBE_SSL_EARLIEST_CERT_EXPIRY), Some(1_893_888_000.0));
    assert_eq!(value(&samples, PROBE_SSL_LAST_CHAIN_EXPIRY), Some(1_901_232_000.0));
    assert_eq!(value(&samples, OPS_TLS_DAYS_LEFT), Some(89.0));
    let info = samples.iter().find(|s| s.name == PROBE_TLS_VERSION_INFO).unwrap();
    assert_eq!(info.value, 1.0);
    assert_eq!(info.labels, vec![("target", "example.com:443".to_owned()), ("version", "TLS 1.3".to_owned())]);
}

#[test]
fn an_unverified_chain_still_yields_samples_with_a_zero_chain_expiry() {
    let samples = endpoint_metrics(&[report(None)]);
    assert_eq!(value(&samples, PROBE_SSL_EARLIEST_CERT_EXPIRY), Some(1_893_888_000.0));
    assert_eq!(value(&samples, PROBE_SSL_LAST_CHAIN_EXPIRY), Some(0.0));
    assert!(value(&samples, PROBE_TLS_VERSION_INFO).is_some());
}

#[test]
fn no_certificate_no_samples() {
    let mut r = report(None);
    r.presented_earliest_expiry = None;
    r.days_left = None;
    assert!(endpoint_metrics(&[r]).is_empty());
}
