//! Key files are never read; text without a certificate is critical.

use super::*;

#[test]
fn key_files_are_recognised_by_name() {
    assert!(is_key_file("privkey.pem"));
    assert!(is_key_file("privkey1.pem"));
    assert!(is_key_file("server.key"));
    assert!(is_key_file("tls-key.pem"));
    assert!(!is_key_file("cert.pem"));
    assert!(!is_key_file("fullchain.pem"));
    assert!(!is_key_file("chain.pem"));
}

#[test]
fn text_without_a_certificate_is_critical() {
    let report = check_pem("empty.pem", b"hello", &CheckOptions::default());
    assert_eq!(report.status, Status::Critical);
    assert!(report.certificates.is_empty());
    assert!(report.findings[0].message.contains("no certificate"));
}
