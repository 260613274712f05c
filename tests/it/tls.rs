//! `ops-tls` against real TLS servers on 127.0.0.1 and certbot-like trees in temp directories.
//!
//! Certificates come from rcgen (a test root, an intermediate, leaves), servers from
//! tokio-rustls on random loopback ports. The clock is pinned to 2030-01-01 through
//! `CheckOptions::now`, so days left are exact and nothing depends on the date tests run on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ops_core::ports::ExecOutput;
use ops_core::ports::container::MockContainerRuntime;
use ops_core::{ErrorKind, Status};
use ops_tls::metrics::{
    OPS_TLS_CERT_EXPIRY, PROBE_SSL_EARLIEST_CERT_EXPIRY, PROBE_SSL_LAST_CHAIN_EXPIRY, PROBE_SSL_LAST_CHAIN_INFO,
    PROBE_SUCCESS, PROBE_TLS_VERSION_INFO,
};
use ops_tls::{
    ChainProblem, CheckOptions, ConnectionStage, EndpointReport, KeyType, MetricSample, RenewCommand, RenewOptions,
    check_endpoint, check_path, endpoint_metrics, renew, renew_plan,
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const DAY: i64 = 86_400;
/// Time limit of endpoint checks: short, so the never-answering server costs one second.
const TIMEOUT_MS: u64 = 1_000;

fn now() -> DateTime<Utc> {
    "2030-01-01T00:00:00Z".parse().unwrap()
}

fn in_days(days: i64) -> DateTime<Utc> {
    now() + chrono::Duration::days(days)
}

/// Validity from `from` to `to` days after [`now`].
fn set_validity(params: &mut CertificateParams, from: i64, to: i64) {
    let base = rcgen::date_time_ymd(2030, 1, 1);
    let shift = |days: i64| {
        let d = Duration::from_secs(days.unsigned_abs() * u64::try_from(DAY).unwrap());
        if days >= 0 { base + d } else { base - d }
    };
    params.not_before = shift(from);
    params.not_after = shift(to);
}

fn named(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// A CA: its certificate, and what it takes to sign with it or cross-sign it again.
struct Ca {
    der: CertificateDer<'static>,
    pem: String,
    params: CertificateParams,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca_params(cn: &str, from: i64, to: i64) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = named(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    set_validity(&mut params, from, to);
    params
}

fn ca(cn: &str, signer: Option<&Ca>, from: i64, to: i64) -> Ca {
    let key = KeyPair::generate().unwrap();
    let params = ca_params(cn, from, to);
    let cert = match signer {
        Some(signer) => params.signed_by(&key, &signer.issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    let key_pem = key.serialize_pem();
    Ca { der: cert.der().clone(), pem: cert.pem(), params: params.clone(), key_pem, issuer: Issuer::new(params, key) }
}

/// A copy of `ca` (same name, same key) issued by `signer` instead, valid `from`..`to`: the
/// cross-signed spare some servers still send.
fn cross_signed(ca: &Ca, signer: &Ca, from: i64, to: i64) -> CertificateDer<'static> {
    let key = KeyPair::from_pem(&ca.key_pem).unwrap();
    let mut params = ca.params.clone();
    set_validity(&mut params, from, to);
    params.signed_by(&key, &signer.issuer).unwrap().der().clone()
}

struct Leaf {
    der: CertificateDer<'static>,
    pem: String,
    key: KeyPair,
}

fn leaf_params(names: &[&str], from: i64, to: i64) -> CertificateParams {
    let mut params = CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = named(names[0]);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    set_validity(&mut params, from, to);
    params
}

fn leaf_with_key(names: &[&str], signer: Option<&Ca>, from: i64, to: i64, key: KeyPair) -> Leaf {
    let params = leaf_params(names, from, to);
    let cert = match signer {
        Some(signer) => params.signed_by(&key, &signer.issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    Leaf { der: cert.der().clone(), pem: cert.pem(), key }
}

fn leaf(names: &[&str], signer: Option<&Ca>, from: i64, to: i64) -> Leaf {
    leaf_with_key(names, signer, from, to, KeyPair::generate().unwrap())
}

/// A test PKI: root (trusted through a CA file), intermediate, and the temp dir holding the file.
struct Pki {
    root: Ca,
    intermediate: Ca,
    _dir: tempfile::TempDir,
    ca_file: PathBuf,
}

fn pki() -> Pki {
    let root = ca("Test Root", None, -365, 3650);
    let intermediate = ca("Test Intermediate", Some(&root), -30, 1000);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &root.pem).unwrap();
    Pki { root, intermediate, _dir: dir, ca_file }
}

fn options(ca_file: &Path) -> CheckOptions {
    CheckOptions {
        ca_file: Some(ca_file.to_owned()),
        server_name: Some("example.com".to_owned()),
        now: Some(now()),
        timeout_ms: TIMEOUT_MS,
        ..CheckOptions::default()
    }
}

/// A TLS server on 127.0.0.1 that presents `chain` and closes each connection after the
/// handshake. It lives as long as the test's runtime.
async fn serve(chain: Vec<CertificateDer<'static>>, key: &KeyPair) -> SocketAddr {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    crate::harness::tls_server(config).await
}

async fn check(addr: SocketAddr, options: &CheckOptions) -> EndpointReport {
    check_endpoint(&addr.to_string(), options).await.unwrap()
}

fn metric(samples: &[MetricSample], name: &str) -> Option<f64> {
    samples.iter().find(|s| s.name == name).map(|s| s.value)
}

#[allow(clippy::cast_precision_loss)]
fn unix(t: DateTime<Utc>) -> f64 {
    t.timestamp() as f64
}

fn messages(report: &EndpointReport) -> String {
    report.findings.iter().map(|f| f.message.as_str()).collect::<Vec<_>>().join(" | ")
}

#[tokio::test]
async fn tls_endpoint_valid_chain_is_ok_with_every_fact() {
    let pki = pki();
    let leaf = leaf(&["example.com", "www.example.com", "127.0.0.1"], Some(&pki.intermediate), -1, 90);
    let addr = serve(vec![leaf.der.clone(), pki.intermediate.der.clone()], &leaf.key).await;

    let report = check(addr, &options(&pki.ca_file)).await;

    assert_eq!(report.status, Status::Ok, "{}", messages(&report));
    assert!(report.findings.is_empty());
    assert_eq!(report.target, addr.to_string());
    assert_eq!(report.server_name, "example.com");
    assert_eq!(report.days_left, Some(90));
    assert_eq!(report.tls_version.as_deref(), Some("TLS 1.3"));
    assert!(report.cipher_suite.as_deref().is_some_and(|s| s.starts_with("TLS13_")), "{:?}", report.cipher_suite);
    assert_eq!(report.hostname_match, Some(true));
    let verification = report.verification.as_ref().unwrap();
    assert!(verification.valid && verification.reason.is_none(), "{verification:?}");
    assert_eq!(verification.trust_anchor.as_deref(), Some("CN=Test Root"));

    let leaf_info = report.leaf().unwrap();
    assert_eq!(leaf_info.subject, "CN=example.com");
    assert_eq!(leaf_info.issuer, "CN=Test Intermediate");
    assert!(!leaf_info.serial.is_empty() && leaf_info.serial.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(leaf_info.dns_names, ["example.com", "www.example.com"]);
    assert_eq!(leaf_info.ip_addresses, ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!((leaf_info.not_before, leaf_info.not_after), (in_days(-1), in_days(90)));
    assert!(!leaf_info.self_signed && !leaf_info.is_ca);
    assert_eq!(leaf_info.public_key.key_type, KeyType::Ec);
    assert_eq!((leaf_info.public_key.bits, leaf_info.public_key.curve.as_deref()), (Some(256), Some("P-256")));
    assert_eq!(leaf_info.signature_algorithm, "ecdsa-with-SHA256");

    // Presented: leaf and intermediate. Verified: those and the root from the CA file.
    let subjects = |chain: &[ops_tls::CertificateInfo]| chain.iter().map(|c| c.subject.clone()).collect::<Vec<_>>();
    assert_eq!(subjects(&report.presented_chain), ["CN=example.com", "CN=Test Intermediate"]);
    assert_eq!(subjects(&report.verified_chain), ["CN=example.com", "CN=Test Intermediate", "CN=Test Root"]);
    assert_eq!(report.presented_earliest_expiry, Some(in_days(90)));
    assert_eq!(report.verified_earliest_expiry, Some(in_days(90)));
    assert!(report.duration_ms < TIMEOUT_MS);

    let samples = endpoint_metrics(&[("", &report)]);
    assert_eq!(metric(&samples, PROBE_SSL_EARLIEST_CERT_EXPIRY), Some(unix(in_days(90))));
    assert_eq!(metric(&samples, PROBE_SSL_LAST_CHAIN_EXPIRY), Some(unix(in_days(90))));
    assert_eq!(metric(&samples, OPS_TLS_CERT_EXPIRY), Some(unix(in_days(90))));
    assert_eq!(metric(&samples, PROBE_SUCCESS), Some(1.0));
    let info = samples.iter().find(|s| s.name == PROBE_SSL_LAST_CHAIN_INFO).unwrap();
    let label = |k: &str| info.labels.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(label("fingerprint_sha256"), report.presented_chain[0].fingerprint_sha256);
    assert_eq!(label("fingerprint_sha256").len(), 64);
    assert_eq!(label("subjectalternative"), "example.com,www.example.com");
    let version = samples.iter().find(|s| s.name == PROBE_TLS_VERSION_INFO).unwrap();
    assert!(version.labels.contains(&("version", "TLS 1.3".to_owned())));

    // The report serializes with stable snake_case names and kebab-case enum values.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["presented_chain"][0]["public_key"]["key_type"], "ec");
    assert!(json["verified_earliest_expiry"].is_string());
}

#[tokio::test]
async fn tls_endpoint_expiring_in_10_days_is_critical() {
    let pki = pki();
    let leaf = leaf(&["example.com"], Some(&pki.intermediate), -80, 10);
    let addr = serve(vec![leaf.der.clone(), pki.intermediate.der.clone()], &leaf.key).await;

    let report = check(addr, &options(&pki.ca_file)).await;

    assert_eq!(report.status, Status::Critical);
    assert_eq!(report.days_left, Some(10));
    assert!(report.verification.as_ref().unwrap().valid, "the chain itself is fine");
    assert!(messages(&report).contains("expires in 10 day(s)"), "{}", messages(&report));
}

#[tokio::test]
async fn tls_endpoint_expiring_in_20_days_is_warn() {
    let pki = pki();
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let leaf = leaf_with_key(&["example.com"], Some(&pki.intermediate), -70, 20, key);
    let addr = serve(vec![leaf.der.clone(), pki.intermediate.der.clone()], &leaf.key).await;

    let report = check(addr, &options(&pki.ca_file)).await;

    assert_eq!(report.status, Status::Warn, "{}", messages(&report));
    assert_eq!(report.days_left, Some(20));
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].status, Status::Warn);
    let key = &report.leaf().unwrap().public_key;
    assert_eq!((key.key_type, key.bits), (KeyType::Ed25519, Some(256)));
}

#[tokio::test]
async fn tls_endpoint_expired_is_critical_with_reason_and_still_measured() {
    let pki = pki();
    let leaf = leaf(&["example.com"], Some(&pki.intermediate), -93, -3);
    let addr = serve(vec![leaf.der.clone(), pki.intermediate.der.clone()], &leaf.key).await;

    let report = check(addr, &options(&pki.ca_file)).await;

    assert_eq!(report.status, Status::Critical);
    let verification = report.verification.as_ref().unwrap();
    assert!(!verification.valid);
    assert_eq!(verification.reason, Some(ChainProblem::Expired));
    assert!(verification.detail.as_deref().unwrap().contains("CN=example.com expired"), "{verification:?}");
    assert!(report.verified_chain.is_empty());
    assert_eq!(report.days_left, Some(-3), "from the presented chain");
    assert!(messages(&report).contains("expired 3 day(s) ago"), "{}", messages(&report));
    assert_eq!(report.tls_version.as_deref(), Some("TLS 1.3"), "the handshake still finished");

    let samples = endpoint_metrics(&[("", &report)]);
    // The handshake fails for a verifying client: no probe_ssl_* series (as blackbox), our
    // own series still has the expiry.
    assert_eq!(metric(&samples, PROBE_SUCCESS), Some(0.0));
    assert_eq!(metric(&samples, PROBE_SSL_EARLIEST_CERT_EXPIRY), None);
    assert_eq!(metric(&samples, PROBE_SSL_LAST_CHAIN_EXPIRY), None);
    assert_eq!(metric(&samples, OPS_TLS_CERT_EXPIRY), Some(unix(in_days(-3))));
}

#[tokio::test]
async fn tls_endpoint_wrong_hostname_is_critical() {
    let pki = pki();
    let leaf = leaf(&["other.example.net", "*.other.example.net"], Some(&pki.intermediate), -1, 90);
    let addr = serve(vec![leaf.der.clone(), pki.intermediate.der.clone()], &leaf.key).await;

    let report = check(addr, &options(&pki.ca_file)).await;

    assert_eq!(report.status, Status::Critical);
    assert_eq!(report.hostname_match, Some(false));
    let verification = report.verification.as_ref().unwrap();
    assert_eq!(verification.reason, Some(ChainProblem::HostnameMismatch));
    assert!(verification.detail.as_deref().unwrap().contains("not example.com"), "{verification:?}");
    assert_eq!(report.verified_chain.len(), 3, "the path to the root itself verifies");
    assert!(messages(&report).contains("hostname-mismatch"), "{}", messages(&report));
}

#[tokio::test]
async fn tls_endpoint_self_signed_is_critical() {
    let pki = pki();
    let leaf = leaf(&["example.com"], None, -1, 90);
    let addr = serve(vec![leaf.der.clone()], &leaf.key).await;

    let report = check(addr, &options(&pki.ca_file)).await;

    assert_eq!(report.status, Status::Critical);
    assert!(report.leaf().unwrap().self_signed);
    let verification = report.verification.as_ref().unwrap();
    assert_eq!(verification.reason, Some(ChainProblem::SelfSigned));
    assert!(verification.detail.as_deref().unwrap().contains("self-signed"), "{verification:?}");
    assert_eq!(report.hostname_match, Some(true));
}

#[tokio::test]
async fn tls_endpoint_incomplete_chain_is_unknown_issuer_with_the_presented_chain() {
    let pki = pki();
    let leaf = leaf(&["example.com"], Some(&pki.intermediate), -1, 90);
    let addr = serve(vec![leaf.der.clone()], &leaf.key).await;

    let report = check(addr, &options(&pki.ca_file)).await;

    assert_eq!(report.status, Status::Critical);
    let verification = report.verification.as_ref().unwrap();
    assert!(!verification.valid);
    assert_eq!(verification.reason, Some(ChainProblem::UnknownIssuer));
    assert!(verification.detail.as_deref().unwrap().contains("incomplete chain"), "{verification:?}");
    assert_eq!(report.presented_chain.len(), 1);
    assert_eq!(report.presented_chain[0].issuer, "CN=Test Intermediate");
    assert!(!report.presented_chain[0].self_signed);
    assert!(report.verified_chain.is_empty());
    assert_eq!(report.days_left, Some(90));
}

#[tokio::test]
async fn tls_endpoint_cross_signed_spare_does_not_raise_a_false_alarm() {
    let pki = pki();
    let old_root = ca("Old Root", None, -3650, 365);
    // The root, cross-signed by the old root, expiring in 5 days: sent, but not on the path.
    let spare = cross_signed(&pki.root, &old_root, -365, 5);
    let leaf = leaf(&["example.com"], Some(&pki.intermediate), -1, 90);
    let addr = serve(vec![leaf.der.clone(), pki.intermediate.der.clone(), spare], &leaf.key).await;

    let report = check(addr, &options(&pki.ca_file)).await;

    assert_eq!(report.status, Status::Ok, "{}", messages(&report));
    assert!(report.verification.as_ref().unwrap().valid);
    assert_eq!(report.presented_chain.len(), 3);
    assert_eq!(report.presented_chain[2].issuer, "CN=Old Root");
    assert_eq!(report.presented_earliest_expiry, Some(in_days(5)), "the spare is the earliest presented");
    assert_eq!(report.verified_earliest_expiry, Some(in_days(90)));
    assert_eq!(report.days_left, Some(90));
    assert!(report.verified_chain.iter().all(|c| c.issuer != "CN=Old Root"), "{:?}", report.verified_chain);

    let samples = endpoint_metrics(&[("", &report)]);
    assert_eq!(metric(&samples, PROBE_SSL_EARLIEST_CERT_EXPIRY), Some(unix(in_days(5))));
    assert_eq!(metric(&samples, PROBE_SSL_LAST_CHAIN_EXPIRY), Some(unix(in_days(90))));
}

#[tokio::test]
async fn tls_endpoint_connection_refused_is_critical() {
    let pki = pki();
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };

    let report = check(addr, &options(&pki.ca_file)).await;

    assert_eq!(report.status, Status::Critical);
    let failure = report.connection_failure.as_ref().unwrap();
    assert_eq!(failure.stage, ConnectionStage::Connect);
    assert!(!failure.timed_out);
    assert!(failure.message.contains("cannot connect"), "{failure:?}");
    assert!(report.presented_chain.is_empty() && report.verification.is_none() && report.tls_version.is_none());
    assert!(report.duration_ms < TIMEOUT_MS);
    let samples = endpoint_metrics(&[("", &report)]);
    let names: Vec<&str> = samples.iter().map(|s| s.name).collect();
    assert_eq!(names, [PROBE_SUCCESS, "probe_duration_seconds"]);
    assert_eq!(metric(&samples, PROBE_SUCCESS), Some(0.0));
}

#[tokio::test]
async fn tls_endpoint_silent_server_times_out_within_the_limit() {
    let pki = pki();
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });

    let started = Instant::now();
    let report = check(addr, &options(&pki.ca_file)).await;
    let elapsed = started.elapsed();

    assert_eq!(report.status, Status::Critical);
    let failure = report.connection_failure.as_ref().unwrap();
    assert_eq!(failure.stage, ConnectionStage::Handshake);
    assert!(failure.timed_out);
    assert!(failure.message.contains("timed out"), "{failure:?}");
    let limit = Duration::from_millis(TIMEOUT_MS);
    assert!(elapsed >= limit.mul_f32(0.9) && elapsed < limit * 2, "took {elapsed:?}");
}

#[tokio::test]
async fn tls_endpoint_unusable_input_is_an_error() {
    let pki = pki();
    let err = check_endpoint("example.com:0", &options(&pki.ca_file)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let missing = CheckOptions { ca_file: Some(pki.ca_file.with_file_name("missing.pem")), ..options(&pki.ca_file) };
    let err = check_endpoint("127.0.0.1:1", &missing).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    std::fs::write(&pki.ca_file, "not a certificate").unwrap();
    let err = check_endpoint("127.0.0.1:1", &options(&pki.ca_file)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

/// A certbot-like tree: `live/example.com/*.pem` are symlinks into `archive/example.com/`, which
/// also keeps an expired earlier certificate that must not be reported.
struct Certbot {
    dir: tempfile::TempDir,
}

impl Certbot {
    fn new(pki: &Pki, leaf: &Leaf, fullchain_in_order: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("archive/example.com");
        let live = dir.path().join("live/example.com");
        std::fs::create_dir_all(&archive).unwrap();
        std::fs::create_dir_all(&live).unwrap();
        let old = self::leaf(&["example.com"], Some(&pki.intermediate), -200, -110);
        let fullchain = if fullchain_in_order {
            format!("{}{}", leaf.pem, pki.intermediate.pem)
        } else {
            format!("{}{}", pki.intermediate.pem, leaf.pem)
        };
        let files = [
            ("cert1.pem", old.pem.clone()),
            ("cert2.pem", leaf.pem.clone()),
            ("chain2.pem", pki.intermediate.pem.clone()),
            ("fullchain2.pem", fullchain),
            ("privkey2.pem", leaf.key.serialize_pem()),
        ];
        for (name, text) in files {
            std::fs::write(archive.join(name), text).unwrap();
        }
        for (link, target) in
            [("cert", "cert2"), ("chain", "chain2"), ("fullchain", "fullchain2"), ("privkey", "privkey2")]
        {
            let target = PathBuf::from(format!("../../archive/example.com/{target}.pem"));
            std::os::unix::fs::symlink(target, live.join(format!("{link}.pem"))).unwrap();
        }
        std::fs::write(live.join("README"), "see certbot docs").unwrap();
        Self { dir }
    }
}

fn file_options() -> CheckOptions {
    CheckOptions { server_name: Some("example.com".to_owned()), now: Some(now()), ..CheckOptions::default() }
}

#[tokio::test]
async fn tls_files_certbot_live_tree_in_order() {
    let pki = pki();
    let leaf = leaf(&["example.com", "www.example.com"], Some(&pki.intermediate), -45, 45);
    let certbot = Certbot::new(&pki, &leaf, true);

    // From the top of the tree: archive/ (history) is skipped, live/ symlinks are followed.
    let report = check_path(certbot.dir.path(), &file_options()).await.unwrap();

    assert_eq!(report.status, Status::Ok, "{report:#?}");
    let names: Vec<String> =
        report.files.iter().map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["cert.pem", "chain.pem", "fullchain.pem"]);
    assert!(report.skipped.iter().any(|p| p.ends_with("live/example.com/privkey.pem")), "{:?}", report.skipped);
    let [cert, chain, fullchain] = &report.files[..] else { panic!("three files") };
    assert_eq!(cert.certificates.len(), 1);
    assert_eq!(cert.hostname_match, Some(true));
    assert_eq!(chain.certificates[0].subject, "CN=Test Intermediate");
    assert_eq!(chain.hostname_match, None, "chain.pem starts with a CA certificate");
    assert_eq!(fullchain.certificates.len(), 2);
    let order = fullchain.chain_order.as_ref().unwrap();
    assert!(order.in_order, "{order:?}");
    assert_eq!(fullchain.hostname_match, Some(true));
    assert_eq!(fullchain.earliest_expiry, Some(in_days(45)));
    assert_eq!(report.earliest_expiry, Some(in_days(45)));
    assert_eq!(report.days_left, Some(45));

    // A name the certificate does not cover.
    let other = CheckOptions { server_name: Some("example.org".to_owned()), ..file_options() };
    let report = check_path(certbot.dir.path().join("live/example.com/cert.pem"), &other).await.unwrap();
    assert_eq!(report.status, Status::Critical);
    assert_eq!(report.files[0].hostname_match, Some(false));
}

#[tokio::test]
async fn tls_files_fullchain_in_the_wrong_order_is_critical() {
    let pki = pki();
    let leaf = leaf(&["example.com"], Some(&pki.intermediate), -45, 45);
    let certbot = Certbot::new(&pki, &leaf, false);

    let report = check_path(certbot.dir.path().join("live"), &file_options()).await.unwrap();

    assert_eq!(report.status, Status::Critical);
    let fullchain = report.files.iter().find(|f| f.path.ends_with("fullchain.pem")).unwrap();
    assert_eq!(fullchain.status, Status::Critical);
    let order = fullchain.chain_order.as_ref().unwrap();
    assert!(!order.in_order);
    assert!(order.problems[0].contains("out of order"), "{order:?}");
    assert_eq!(fullchain.earliest_expiry, Some(in_days(45)));
    let cert = report.files.iter().find(|f| f.path.ends_with("cert.pem")).unwrap();
    assert_eq!(cert.status, Status::Ok);

    let err = check_path(certbot.dir.path().join("nothing-here"), &file_options()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

type Calls = Arc<Mutex<Vec<(String, Vec<String>)>>>;

/// A runtime whose `certbot renew` replaces `cert` with a fresh 90-day certificate.
fn runtime(calls: &Calls, cert: &Path, fresh_pem: String, certbot_exit: i64) -> MockContainerRuntime {
    let mut runtime = MockContainerRuntime::new();
    let calls = calls.clone();
    let cert = cert.to_owned();
    runtime.expect_exec().returning(move |container, spec| {
        calls.lock().unwrap().push((container.to_owned(), spec.cmd.clone()));
        if spec.cmd.first().map(String::as_str) == Some("certbot") && certbot_exit == 0 {
            std::fs::write(&cert, &fresh_pem).unwrap();
        }
        let exit_code = if container == "certbot" { certbot_exit } else { 0 };
        Ok(ExecOutput { exit_code, stdout: String::new(), stderr: "renewal failed".to_owned() })
    });
    runtime
}

fn renew_options(cert: &Path) -> RenewOptions {
    let command = |container: &str, cmd: &[&str]| RenewCommand {
        container: container.to_owned(),
        cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
        timeout_secs: Some(300),
    };
    RenewOptions {
        paths: vec![cert.to_owned()],
        commands: vec![command("certbot", &["certbot", "renew"]), command("nginx", &["nginx", "-s", "reload"])],
        recheck_delay_ms: 0,
        check: file_options(),
        ..RenewOptions::default()
    }
}

fn expected_calls() -> Vec<(String, Vec<String>)> {
    vec![
        ("certbot".to_owned(), vec!["certbot".to_owned(), "renew".to_owned()]),
        ("nginx".to_owned(), vec!["nginx".to_owned(), "-s".to_owned(), "reload".to_owned()]),
    ]
}

#[tokio::test]
async fn tls_renew_runs_the_commands_in_order_only_when_due() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let fresh = leaf(&["example.com"], Some(&pki.intermediate), 0, 90).pem;
    let options = renew_options(&cert);

    // 10 days left: due. The plan alone runs nothing.
    std::fs::write(&cert, leaf(&["example.com"], Some(&pki.intermediate), -80, 10).pem).unwrap();
    let plan = renew_plan(&options).await.unwrap();
    assert!(plan.run, "{plan:?}");
    assert_eq!(plan.due, [cert.display().to_string()]);
    assert_eq!(plan.commands, options.commands);

    let calls = Calls::default();
    let audit = ops_core::audit::Audit::at(&dir.path().join("audit.jsonl"), "opsctl:it@host").unwrap();
    let report = renew(&runtime(&calls, &cert, fresh.clone(), 0), &options, &audit).await.unwrap();
    assert_eq!(*calls.lock().unwrap(), expected_calls());
    // The intent before the first command, then the outcome: who, which certificates, days
    // left before and after, each command's program and exit (never its arguments).
    let records = audit.log().read().unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!((records[0].action.as_str(), records[0].result.as_str()), ("tls-renew", "started"));
    assert_eq!(records[0].after["commands"][0]["program"], "certbot", "{records:?}");
    let r = &records[1];
    assert_eq!((r.actor.as_str(), r.action.as_str(), r.result.as_str()), ("opsctl:it@host", "tls-renew", "ok"));
    assert_eq!(r.target, format!("tls:{}", cert.display()));
    assert_eq!(r.before["certificates"][0]["days_left"], 10, "{r:?}");
    assert_eq!(r.after["certificates"][0]["days_left"], 90, "{r:?}");
    assert_eq!(r.after["commands"][1]["program"], "nginx", "{r:?}");
    assert_eq!(r.after["commands"][1]["exit_code"], 0, "{r:?}");
    assert!(!serde_json::to_string(r).unwrap().contains("reload"), "no arguments: {r:?}");
    assert_eq!(report.plan.before[0].status(), Status::Critical);
    assert_eq!(report.plan.before[0].days_left(), Some(10));
    assert_eq!(report.executed.len(), 2);
    assert!(report.executed.iter().all(ops_tls::CommandOutcome::succeeded));
    assert_eq!(report.after[0].days_left(), Some(90));
    assert_eq!(report.status, Status::Ok, "{report:#?}");

    // 60 days left: not due, nothing runs.
    std::fs::write(&cert, leaf(&["example.com"], Some(&pki.intermediate), -30, 60).pem).unwrap();
    let mut idle = MockContainerRuntime::new();
    idle.expect_exec().never();
    let report = renew(&idle, &options, &audit).await.unwrap();
    assert!(!report.plan.run);
    assert_eq!(audit.log().read().unwrap().len(), 2, "nothing ran, nothing recorded");
    assert!(report.executed.is_empty() && report.after.is_empty());
    assert_eq!(report.status, Status::Ok);

    // Forced: runs anyway, in order.
    let calls = Calls::default();
    let forced = RenewOptions { force: true, ..options.clone() };
    let report = renew(&runtime(&calls, &cert, fresh, 0), &forced, &audit).await.unwrap();
    assert!(report.plan.run && report.plan.due.is_empty());
    assert_eq!(report.plan.reason, "forced");
    assert_eq!(*calls.lock().unwrap(), expected_calls());
}

#[tokio::test]
async fn tls_renew_stops_at_the_first_failed_command() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, leaf(&["example.com"], Some(&pki.intermediate), -85, 5).pem).unwrap();
    let fresh = leaf(&["example.com"], Some(&pki.intermediate), 0, 90).pem;
    let calls = Calls::default();

    let audit = ops_core::audit::Audit::at(&dir.path().join("audit.jsonl"), "it").unwrap();
    let report = renew(&runtime(&calls, &cert, fresh, 1), &renew_options(&cert), &audit).await.unwrap();

    assert_eq!(calls.lock().unwrap().len(), 1, "nginx is not reloaded after a failed renewal");
    assert_eq!(report.executed.len(), 1);
    assert_eq!(report.executed[0].exit_code, Some(1));
    assert_eq!(report.status, Status::Critical);
    assert!(report.findings[0].message.contains("renewal failed"), "{:?}", report.findings);
    assert_eq!(report.after[0].days_left(), Some(5), "checked again all the same");
    let records = audit.log().read().unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[1].result, "certbot in certbot exited 1", "{records:?}");
    assert_eq!(records[1].after["commands"].as_array().unwrap().len(), 1, "{records:?}");
}
