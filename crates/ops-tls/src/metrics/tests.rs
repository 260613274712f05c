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

fn verified(mut r: EndpointReport) -> EndpointReport {
    r.verification = Some(crate::ChainVerification {
        valid: true,
        reason: None,
        detail: None,
        trust_anchor: Some("CN=Test Root".into()),
    });
    r
}

#[test]
fn a_verified_handshake_gives_blackbox_series_with_one_label_set() {
    let r = verified(report(Some(at("2030-04-01T00:00:00Z"))));
    let samples = endpoint_metrics(&[("site", &r)]);
    assert_eq!(value(&samples, PROBE_SUCCESS), Some(1.0));
    assert_eq!(value(&samples, PROBE_DURATION), Some(0.003));
    assert_eq!(value(&samples, PROBE_SSL_EARLIEST_CERT_EXPIRY), Some(1_893_888_000.0));
    assert_eq!(value(&samples, PROBE_SSL_LAST_CHAIN_EXPIRY), Some(1_901_232_000.0));
    assert_eq!(value(&samples, OPS_TLS_CERT_EXPIRY), Some(1_901_232_000.0));
    assert_eq!(value(&samples, OPS_TLS_CHAIN_VERIFIED), Some(1.0));
    let base = [("probe", "tls:site".to_owned()), ("kind", "tls".to_owned()), ("target", "example.com:443".to_owned())];
    for s in &samples {
        assert_eq!(s.labels[..3], base[..], "{}", s.name);
        assert!(help(s.name).is_some(), "{} has no help", s.name);
    }
    let info = samples.iter().find(|s| s.name == PROBE_TLS_VERSION_INFO).unwrap();
    assert_eq!(info.labels[3], ("version", "TLS 1.3".to_owned()));
}

#[test]
fn a_chain_that_does_not_verify_has_no_probe_ssl_series() {
    // A self-signed certificate with 50 days left: "chain expires soon" rules must not see a
    // zero, and probe_success says the handshake failed, as blackbox says.
    let samples = endpoint_metrics(&[("", &report(None))]);
    assert_eq!(value(&samples, PROBE_SUCCESS), Some(0.0));
    for name in [PROBE_SSL_EARLIEST_CERT_EXPIRY, PROBE_SSL_LAST_CHAIN_EXPIRY, PROBE_TLS_VERSION_INFO] {
        assert!(value(&samples, name).is_none(), "{name}");
    }
    // Our own series still tell when the presented certificate expires.
    assert_eq!(value(&samples, OPS_TLS_CERT_EXPIRY), Some(1_893_888_000.0));
    assert_eq!(value(&samples, OPS_TLS_CHAIN_VERIFIED), Some(0.0));
    assert_eq!(samples[0].labels[0], ("probe", "tls:example.com:443".to_owned()));
}

#[test]
fn an_expired_or_misnamed_certificate_fails_the_handshake() {
    let mut expired = verified(report(Some(at("2029-12-31T00:00:00Z"))));
    expired.days_left = Some(-1);
    assert!(!expired.handshake_verified());
    let mut misnamed = verified(report(Some(at("2030-04-01T00:00:00Z"))));
    misnamed.hostname_match = Some(false);
    assert!(!misnamed.handshake_verified());
    assert!(verified(report(Some(at("2030-04-01T00:00:00Z")))).handshake_verified());
}

#[test]
fn no_certificate_only_success_and_duration() {
    let mut r = report(None);
    r.presented_earliest_expiry = None;
    r.days_left = None;
    r.tls_version = None;
    let samples = endpoint_metrics(&[("x", &r)]);
    let names: Vec<&str> = samples.iter().map(|s| s.name).collect();
    assert_eq!(names, [PROBE_SUCCESS, PROBE_DURATION]);
    assert_eq!(value(&samples, PROBE_SUCCESS), Some(0.0));
}
