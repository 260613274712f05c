//! Network probes (`http`, `tcp`, `dns`, `alertmanager`, `status_page`) against local servers on
//! 127.0.0.1: an axum app with controllable status, body, delay and redirects, an
//! Alertmanager-compatible and Statuspage-compatible stub, and a tokio-rustls server with an
//! rcgen CA. No container, no network beyond loopback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ops_core::config::{
    AlertmanagerConfig, DnsCheckConfig, HttpCheckConfig, HttpThresholds, JsonExpectation, StatusPageConfig,
    TcpCheckConfig,
};
use ops_core::{Runbook, SecretUrl, Status};
use ops_probes::{NetOptions, ProbeReport, alertmanager, dns, http, status_page, tcp};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn options() -> NetOptions {
    NetOptions::new(Duration::from_secs(5))
}

async fn slow(Query(q): Query<std::collections::HashMap<String, u64>>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(q.get("ms").copied().unwrap_or(0))).await;
    "slow but fine"
}

async fn status(Path(code): Path<u16>) -> Response {
    (StatusCode::from_u16(code).unwrap(), format!("status {code} from the stub")).into_response()
}

async fn redirect(Path(n): Path<u32>) -> Response {
    let to = if n == 0 { "/ok".to_owned() } else { format!("/redirect/{}", n - 1) };
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

async fn basic_auth(headers: HeaderMap) -> Response {
    // "ops:p@ss" in base64.
    match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some("Basic b3BzOnBAc3M=") => (StatusCode::OK, "welcome").into_response(),
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn alerts(Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    let filtered = q.get("active").map(String::as_str) == Some("true")
        && q.get("silenced").map(String::as_str) == Some("false")
        && q.get("inhibited").map(String::as_str) == Some("false");
    if !filtered {
        return (StatusCode::BAD_REQUEST, "filters missing").into_response();
    }
    Json(json!([
        {"labels": {"alertname": "HighErrorRate", "severity": "critical", "service": "api"},
         "annotations": {"summary": "5xx rate over 5% for 10 minutes"},
         "startsAt": "2030-01-01T00:00:00Z", "endsAt": "2030-01-01T01:00:00Z",
         "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
         "fingerprint": "1", "receivers": [{"name": "oncall"}], "updatedAt": "2030-01-01T00:00:00Z"},
        {"labels": {"alertname": "DiskAlmostFull", "severity": "warning", "instance": "web-1"},
         "annotations": {"summary": "/ is 91% full"},
         "startsAt": "2030-01-01T00:05:00Z", "endsAt": "2030-01-01T01:05:00Z",
         "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
         "fingerprint": "2", "receivers": [{"name": "oncall"}], "updatedAt": "2030-01-01T00:05:00Z"}
    ]))
    .into_response()
}

async fn statuspage(Path(indicator): Path<String>) -> Json<serde_json::Value> {
    let description = match indicator.as_str() {
        "none" => "All Systems Operational",
        "minor" => "Partial System Outage",
        _ => "Major System Outage",
    };
    Json(json!({
        "page": {"id": "abc", "name": "Stellar", "url": "https://status.stellar.org", "time_zone": "Etc/UTC",
                 "updated_at": "2030-01-01T00:00:00.000Z"},
        "status": {"indicator": indicator, "description": description}
    }))
}

/// The stub of every HTTP test, on a random loopback port; lives as long as the test's runtime.
async fn serve() -> SocketAddr {
    let app = axum::Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/status/{code}", get(status))
        .route("/slow", get(slow))
        .route("/redirect/{n}", get(redirect))
        .route("/auth", get(basic_auth))
        .route("/health", get(|| async { Json(json!({"status": "ok", "checks": {"db": {"ok": true}}})) }))
        .route("/big", get(|| async { "x".repeat(200_000) }))
        .route("/am/api/v2/alerts", get(alerts))
        .route("/sp/{indicator}/api/v2/status.json", get(statuspage))
        .route("/not-json", get(|| async { "<html>maintenance</html>" }));
    let listener = listen();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A loopback listener with room for 4096 pending connections: the default 128 (std, mio)
/// drops the SYNs of 200 probes connecting at once, and the kernel retries them after 1 s.
fn listen() -> tokio::net::TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    socket.listen(4096).unwrap()
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A server that accepts connections and never answers.
async fn silent() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

fn check(name: &str, url: String) -> HttpCheckConfig {
    HttpCheckConfig { name: name.to_owned(), url: SecretUrl::new(url), ..HttpCheckConfig::default() }
}

async fn probe(check: &HttpCheckConfig) -> ProbeReport {
    http::probe(check, &HttpThresholds::default(), &options()).await
}

fn runbooks(report: &ProbeReport) -> Vec<(Runbook, Status)> {
    report.problems.iter().map(|p| (p.runbook, p.status)).collect()
}

fn has(report: &ProbeReport, names: &[&str]) {
    for name in names {
        assert!(report.observation(name).is_some(), "no {name} in {:?}", report.observations);
    }
}

#[tokio::test]
async fn http_ok_is_timed_phase_by_phase() {
    let addr = serve().await;
    let mut c = check("api", format!("http://localhost:{}/ok", addr.port()));
    c.critical = true;
    c.depends_on = vec!["postgres:main".into()];
    let r = probe(&c).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_eq!(r.name, "http:api");
    assert!(r.critical);
    assert_eq!(r.depends_on, ["postgres:main"]);
    has(&r, &["dns", "connect", "ttfb", "total", "status_code", "body_bytes"]);
    assert!(r.observation("tls").is_none());
    assert_eq!(r.observation("status_code"), Some(200.0));
    assert_eq!(r.observation("body_bytes"), Some(2.0));
    assert!(r.observation("total").unwrap() >= r.observation("ttfb").unwrap());
    assert!(r.message.starts_with("HTTP 200 OK in "), "{}", r.message);
    assert_eq!(r.evidence, ["ok"]);
}

#[tokio::test]
async fn http_server_error_is_api_down_with_the_body_as_evidence() {
    let addr = serve().await;
    let r = probe(&check("api", format!("http://{addr}/status/503"))).await;
    assert_eq!(runbooks(&r), [(Runbook::ApiDown, Status::Critical)]);
    assert_eq!(r.message, "HTTP 503 Service Unavailable");
    assert_eq!(r.problems[0].evidence, ["status 503 from the stub"]);
    assert_eq!(r.observation("status_code"), Some(503.0));

    let r = probe(&check("api", format!("http://{addr}/status/404"))).await;
    assert_eq!(r.message, "unexpected HTTP 404 Not Found (expected 2xx)");
    let mut c = check("api", format!("http://{addr}/status/404"));
    c.expect_status = vec![404];
    assert_eq!(probe(&c).await.status, Status::Ok);
}

#[tokio::test]
async fn http_slow_endpoint_over_the_critical_ttfb() {
    let addr = serve().await;
    let r = probe(&check("slow", format!("http://{addr}/slow?ms=900"))).await;
    assert_eq!(runbooks(&r), [(Runbook::SlowResponses, Status::Critical)]);
    assert!(r.observation("ttfb").unwrap() >= 900.0, "{:?}", r.observations);
    assert!(r.message.contains("over 800 ms"), "{}", r.message);

    let mut c = check("slow", format!("http://{addr}/slow?ms=150"));
    c.ttfb_warn_ms = Some(100);
    c.ttfb_critical_ms = Some(1_000);
    assert_eq!(runbooks(&probe(&c).await), [(Runbook::SlowResponses, Status::Warn)]);
}

#[tokio::test]
async fn http_redirects_reported_unless_followed() {
    let addr = serve().await;
    let r = probe(&check("r", format!("http://{addr}/redirect/1"))).await;
    assert_eq!(runbooks(&r), [(Runbook::ApiDown, Status::Critical)]);
    assert_eq!(r.message, format!("redirected: HTTP 302 Found to http://{addr}/redirect/0 (follow-redirects is off)"));

    let mut c = check("r", format!("http://{addr}/redirect/2"));
    c.follow_redirects = true;
    let r = probe(&c).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_eq!(r.observation("redirects"), Some(3.0));
    assert!(r.evidence[0].starts_with("followed 3 redirect(s) to "), "{:?}", r.evidence);
    assert!(r.evidence[0].ends_with("/ok"), "{:?}", r.evidence);
    has(&r, &["redirect", "ttfb", "total"]);

    c.url = SecretUrl::new(format!("http://{addr}/redirect/9"));
    let r = probe(&c).await;
    assert!(r.message.starts_with("too many redirects (more than 5)"), "{}", r.message);
}

#[tokio::test]
async fn http_json_health_field_match_and_mismatch() {
    let addr = serve().await;
    let mut c = check("health", format!("http://{addr}/health"));
    c.expect_json = Some(JsonExpectation { pointer: "/checks/db/ok".into(), equals: Some(json!(true)) });
    c.expect_body = Some("\"status\"".into());
    assert_eq!(probe(&c).await.status, Status::Ok);

    c.expect_json = Some(JsonExpectation { pointer: "/status".into(), equals: Some(json!("degraded")) });
    let r = probe(&c).await;
    assert_eq!(runbooks(&r), [(Runbook::ApiDown, Status::Critical)]);
    assert_eq!(r.message, "JSON field /status is \"ok\", expected \"degraded\"");
    assert!(r.problems[0].evidence[0].contains("\"checks\""), "{:?}", r.problems[0].evidence);

    let mut c = check("health", format!("http://{addr}/not-json"));
    c.expect_json = Some(JsonExpectation { pointer: "/status".into(), equals: None });
    assert!(probe(&c).await.message.starts_with("body is not JSON"));
    c.expect_json = None;
    c.expect_body = Some("healthy".into());
    assert_eq!(probe(&c).await.message, "body does not contain \"healthy\"");
}

#[tokio::test]
async fn http_body_kept_is_capped_and_the_evidence_short() {
    let addr = serve().await;
    let r = probe(&check("big", format!("http://{addr}/big"))).await;
    assert_eq!(r.status, Status::Ok);
    assert_eq!(r.observation("body_bytes"), Some(200_000.0));
    assert_eq!(r.evidence[0].chars().count(), 301);
}

#[tokio::test]
async fn http_credentials_are_sent_and_never_shown() {
    let addr = serve().await;
    let r = probe(&check("auth", format!("http://ops:p%40ss@{addr}/auth"))).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_eq!(r.target, format!("http://ops:***@{addr}/auth"));
    let r = probe(&check("auth", format!("http://ops:wrong-secret@{addr}/auth"))).await;
    assert_eq!(r.status, Status::Critical);
    let shown = serde_json::to_string(&r).unwrap() + &format!("{r:?}");
    assert!(!shown.contains("wrong-secret"), "{shown}");
}

#[tokio::test]
async fn http_refused_port_is_api_down() {
    let addr = closed_port().await;
    let r = probe(&check("api", format!("http://{addr}/"))).await;
    assert_eq!(runbooks(&r), [(Runbook::ApiDown, Status::Critical)]);
    assert_eq!(r.message, format!("connection refused by {addr}"));
    has(&r, &["dns"]);
    assert!(r.observation("ttfb").is_none());
}

#[tokio::test]
async fn http_unresolvable_host_is_api_down() {
    let r = probe(&check("api", "http://no-such-host.invalid/health".into())).await;
    assert_eq!(runbooks(&r), [(Runbook::ApiDown, Status::Critical)]);
    assert!(r.message.starts_with("cannot resolve no-such-host.invalid"), "{}", r.message);
}

#[tokio::test]
async fn http_timeout_is_api_down_within_the_bound() {
    let addr = silent().await;
    let mut c = check("api", format!("http://{addr}/"));
    c.timeout_secs = Some(1);
    let started = Instant::now();
    let r = probe(&c).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1) && took < Duration::from_millis(1_500), "{took:?}");
    assert_eq!(runbooks(&r), [(Runbook::ApiDown, Status::Critical)]);
    assert_eq!(r.message, format!("no response within 1.0 s (waiting for the response head from {addr})"));
    has(&r, &["dns", "connect"]);
    assert!((1_000..1_500).contains(&r.duration_ms), "{}", r.duration_ms);
}

#[tokio::test]
async fn http_bad_url_is_unknown() {
    let r = probe(&check("api", "ftp://user:secret@example.com/".into())).await;
    assert_eq!(runbooks(&r), [(Runbook::ProbeFailed, Status::Unknown)]);
    assert!(!format!("{r:?}").contains("secret"));
}

#[tokio::test]
async fn http_ad_hoc_probe() {
    let addr = serve().await;
    let r = http::probe_url(&format!("http://localhost:{}/ok", addr.port()), &options()).await;
    assert_eq!((r.name.as_str(), r.status), ("http:localhost", Status::Ok));
}

// ---------------------------------------------------------------------------------------------
// HTTPS

struct Pki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: KeyPair,
}

/// A CA named `ca_name` and a leaf it signed for `localhost` and `127.0.0.1`.
fn pki(ca_name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Pki { ca_pem: ca.pem(), chain: vec![leaf.der().clone(), ca.der().clone()], key }
}

/// An HTTPS server that answers every request with `200 OK` and `{"status":"ok"}`.
async fn serve_tls(pki: &Pki) -> SocketAddr {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = listen();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"status":"ok"}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

fn ca_file(dir: &tempfile::TempDir, pem: &str) -> PathBuf {
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

#[tokio::test]
async fn http_tls_with_ca_file_has_a_tls_phase() {
    let pki = pki("Test CA");
    let addr = serve_tls(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let options = options().with_ca_file(ca_file(&dir, &pki.ca_pem));
    let mut c = check("site", format!("https://localhost:{}/health", addr.port()));
    c.expect_json = Some(JsonExpectation { pointer: "/status".into(), equals: Some(json!("ok")) });
    let r = http::probe(&c, &HttpThresholds::default(), &options).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    has(&r, &["dns", "connect", "tls", "ttfb", "total"]);
    assert!(r.observation("tls").unwrap() > 0.0);

    // By IP address: the certificate's IP SAN.
    let c = check("site", format!("https://{addr}/health"));
    let r = http::probe(&c, &HttpThresholds::default(), &options).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
}

#[tokio::test]
async fn http_tls_untrusted_certificate_is_api_down_with_the_reason() {
    let pki = pki("Test CA");
    let addr = serve_tls(&pki).await;
    let c = check("site", format!("https://localhost:{}/health", addr.port()));
    let r = http::probe(&c, &HttpThresholds::default(), &options()).await;
    assert_eq!(runbooks(&r), [(Runbook::ApiDown, Status::Critical)]);
    assert!(r.message.starts_with(&format!("TLS handshake with localhost:{} failed: ", addr.port())), "{}", r.message);
    assert!(r.message.contains("UnknownIssuer"), "{}", r.message);

    // Another CA's file does not help.
    let dir = tempfile::tempdir().unwrap();
    let other = ca_file(&dir, &self::pki("Other CA").ca_pem);
    let r = http::probe(&c, &HttpThresholds::default(), &options().with_ca_file(other)).await;
    assert!(r.message.contains("UnknownIssuer"), "{}", r.message);

    // An unreadable CA file says so and tells nothing about the endpoint.
    let r = http::probe(&c, &HttpThresholds::default(), &options().with_ca_file("/nonexistent/ca.pem")).await;
    assert_eq!(runbooks(&r), [(Runbook::ProbeFailed, Status::Unknown)]);
    assert!(r.message.contains("/nonexistent/ca.pem"), "{}", r.message);
}

// ---------------------------------------------------------------------------------------------
// Overhead

/// 200 probes at once against loopback, as triage runs them: all ok, and the rate printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)]
async fn http_200_concurrent_probes_on_loopback() {
    let addr = serve().await;
    let pki = pki("Test CA");
    let tls_addr = serve_tls(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let tls_options = options().with_ca_file(ca_file(&dir, &pki.ca_pem));
    let thresholds = HttpThresholds { ttfb_warn_ms: 60_000, ttfb_critical_ms: 60_000 };
    for (label, url, opts) in [
        ("http", format!("http://{addr}/ok"), options()),
        ("https", format!("https://localhost:{}/ok", tls_addr.port()), tls_options),
    ] {
        let c = check("api", url);
        // Warm-up: first use builds the shared TLS configuration.
        assert_eq!(http::probe(&c, &thresholds, &opts).await.status, Status::Ok);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let (c, t, o) = (c.clone(), thresholds.clone(), opts.clone());
            tasks.spawn(async move { http::probe(&c, &t, &o).await });
        }
        let mut ok = 0;
        while let Some(report) = tasks.join_next().await {
            let report = report.unwrap();
            assert_eq!(report.status, Status::Ok, "{report:#?}");
            ok += 1;
        }
        let took = started.elapsed();
        assert_eq!(ok, 200);
        eprintln!(
            "{label}: 200 concurrent probes in {took:?}: {:.0} probes/s, {:.2} ms each",
            200.0 / took.as_secs_f64(),
            took.as_secs_f64() * 1000.0 / 200.0
        );
        assert!(took < Duration::from_secs(20), "{label}: {took:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// TCP, DNS

#[tokio::test]
async fn tcp_open_and_closed_ports() {
    let open = serve().await;
    let c = TcpCheckConfig {
        name: "api".into(),
        address: format!("localhost:{}", open.port()),
        critical: true,
        depends_on: vec!["container:api".into()],
        from_container: None,
    };
    let r = tcp::probe(&c, &options()).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_eq!((r.name.as_str(), r.critical, r.depends_on.len()), ("tcp:api", true, 1));
    has(&r, &["dns", "connect"]);
    assert!(r.message.starts_with(&format!("localhost:{} accepts connections", open.port())), "{}", r.message);

    let closed = closed_port().await;
    let r = tcp::probe_address(&closed.to_string(), &options()).await;
    assert_eq!(runbooks(&r), [(Runbook::PortClosed, Status::Critical)]);
    assert_eq!(r.message, format!("connection refused by {closed}"));
    assert_eq!(r.name, format!("tcp:{closed}"));

    let r = tcp::probe_address("no-port", &options()).await;
    assert_eq!(runbooks(&r), [(Runbook::ProbeFailed, Status::Unknown)]);
}

#[tokio::test]
async fn dns_localhost_and_an_invalid_name() {
    let c = DnsCheckConfig { name: "localhost".into(), expect: vec!["127.0.0.1".into()], critical: true };
    let r = dns::probe(&c, &options()).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_eq!(r.name, "dns:localhost");
    assert!(r.critical);
    has(&r, &["resolve", "addresses"]);
    assert!(r.evidence.contains(&"127.0.0.1".to_owned()), "{:?}", r.evidence);

    let c = DnsCheckConfig { name: "localhost".into(), expect: vec!["10.9.8.7".into()], critical: false };
    let r = dns::probe(&c, &options()).await;
    assert_eq!(runbooks(&r), [(Runbook::DnsFailure, Status::Critical)]);
    assert!(r.message.ends_with("not to 10.9.8.7"), "{}", r.message);

    let r = dns::probe_name("no-such-host.invalid", &options()).await;
    assert_eq!(runbooks(&r), [(Runbook::DnsFailure, Status::Critical)]);
    assert!(r.message.starts_with("no-such-host.invalid does not resolve"), "{}", r.message);
}

// ---------------------------------------------------------------------------------------------
// Alertmanager, status pages

#[tokio::test]
async fn alertmanager_two_firing_alerts() {
    let addr = serve().await;
    let config =
        AlertmanagerConfig { url: SecretUrl::new(format!("http://{addr}/am/")), ..AlertmanagerConfig::default() };
    let r = alertmanager::probe(&config, &options()).await;
    assert_eq!(r.name, "alertmanager");
    assert_eq!(runbooks(&r), [(Runbook::AlertFiring, Status::Critical), (Runbook::AlertFiring, Status::Warn)]);
    assert_eq!(r.status, Status::Critical);
    assert_eq!(r.message, "2 alerts firing: HighErrorRate, DiskAlmostFull");
    assert_eq!(r.problems[0].message, "HighErrorRate: 5xx rate over 5% for 10 minutes");
    assert_eq!(
        r.problems[0].evidence,
        [
            r#"labels: {alertname="HighErrorRate", service="api", severity="critical"}"#,
            "startsAt: 2030-01-01T00:00:00Z"
        ]
    );
    assert_eq!(r.observation("firing"), Some(2.0));
}

#[tokio::test]
async fn alertmanager_unreachable_or_silent_is_unknown() {
    let closed = closed_port().await;
    let config = AlertmanagerConfig {
        url: SecretUrl::new(format!("http://admin:hunter2@{closed}")),
        ..AlertmanagerConfig::default()
    };
    let r = alertmanager::probe(&config, &options()).await;
    assert_eq!(runbooks(&r), [(Runbook::ProbeFailed, Status::Unknown)]);
    assert!(r.message.contains("connection refused"), "{}", r.message);
    assert!(!format!("{r:?}").contains("hunter2"));

    let silent = silent().await;
    let config =
        AlertmanagerConfig { url: SecretUrl::new(format!("http://{silent}")), ..AlertmanagerConfig::default() };
    let started = Instant::now();
    let r = alertmanager::probe(&config, &NetOptions::new(Duration::from_millis(500))).await;
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(runbooks(&r), [(Runbook::ProbeFailed, Status::Unknown)]);
    assert!(r.message.contains("no response within 0.5 s"), "{}", r.message);
}

#[tokio::test]
async fn status_page_none_minor_major() {
    let addr = serve().await;
    let page = |indicator: &str| StatusPageConfig {
        name: "stellar".into(),
        url: format!("http://{addr}/sp/{indicator}"),
        affects: vec!["indexer".into()],
    };
    let r = status_page::probe(&page("none"), &options()).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_eq!(r.name, "status-page:stellar");
    assert_eq!(r.message, "stellar: All Systems Operational");
    assert_eq!(r.target, format!("http://{addr}/sp/none/api/v2/status.json"));

    let r = status_page::probe(&page("minor"), &options()).await;
    assert_eq!(runbooks(&r), [(Runbook::UpstreamIncident, Status::Warn)]);
    assert_eq!(r.message, "upstream incident at stellar: Partial System Outage — do not restart indexer");
    assert_eq!(r.evidence[0], "indicator: minor");

    let r = status_page::probe(&page("major"), &options()).await;
    assert_eq!(runbooks(&r), [(Runbook::UpstreamIncident, Status::Critical)]);

    let json_url = StatusPageConfig { url: format!("http://{addr}/sp/critical/api/v2/status.json"), ..page("ignored") };
    assert_eq!(status_page::probe(&json_url, &options()).await.status, Status::Critical);
}

#[tokio::test]
async fn status_page_unreachable_or_wrong_is_unknown() {
    let addr = serve().await;
    let wrong = StatusPageConfig { name: "x".into(), url: format!("http://{addr}/nothing-here"), affects: vec![] };
    let r = status_page::probe(&wrong, &options()).await;
    assert_eq!(runbooks(&r), [(Runbook::ProbeFailed, Status::Unknown)]);
    assert!(r.message.contains("HTTP 404"), "{}", r.message);

    let closed = closed_port().await;
    let down = StatusPageConfig { name: "x".into(), url: format!("http://{closed}"), affects: vec![] };
    let r = status_page::probe(&down, &options()).await;
    assert_eq!(runbooks(&r), [(Runbook::ProbeFailed, Status::Unknown)]);
}
