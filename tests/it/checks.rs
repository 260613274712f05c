//! `opsctl triage`, `opsctl tls`, `opsctl probe` and the check routes of ops-server, against
//! real TLS servers on 127.0.0.1 with certificates made in the test (real clock).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use chrono::{Datelike, Utc};
use http::{Request, StatusCode};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tower::ServiceExt;

/// A root CA in a temp dir (`ca.pem`) and leaves for `example.com` signed by it.
struct Pki {
    dir: tempfile::TempDir,
    ca_key: KeyPair,
    ca_params: CertificateParams,
}

fn validity(params: &mut CertificateParams, from_days: i64, to_days: i64) {
    let today = Utc::now().date_naive();
    let base =
        rcgen::date_time_ymd(today.year(), u8::try_from(today.month()).unwrap(), u8::try_from(today.day()).unwrap());
    let shift = |days: i64| {
        let d = Duration::from_secs(days.unsigned_abs() * 86_400);
        if days >= 0 { base + d } else { base - d }
    };
    params.not_before = shift(from_days);
    params.not_after = shift(to_days);
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.distinguished_name.push(DnType::CommonName, "Checks Test Root");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        validity(&mut ca_params, -30, 3650);
        let ca = ca_params.clone().self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Self { dir, ca_key, ca_params }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A leaf for example.com valid from `from` to `to` days from today.
    fn leaf(&self, from: i64, to: i64) -> (CertificateDer<'static>, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["example.com".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "example.com");
        validity(&mut params, from, to);
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        (params.signed_by(&key, &issuer).unwrap().der().clone(), key)
    }
}

/// A TLS server presenting `cert`, closing each connection after the handshake.
async fn serve(cert: CertificateDer<'static>, key: &KeyPair) -> SocketAddr {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    crate::harness::tls_server(config).await
}

/// Servers live on their own runtime, so opsctl (which starts its own) runs beside them.
fn background() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

fn opsctl(args: &[&str], env: &[(&str, &str)]) -> (u8, String, String) {
    let env: BTreeMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut argv = vec!["opsctl"];
    argv.extend_from_slice(args);
    let code = ops_cli::run(argv, &env, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

fn config_with_tls(pki: &Pki, endpoints: &[(&str, SocketAddr, bool)]) -> PathBuf {
    let mut text =
        format!("{}\n[probes.tls]\nca-file = {:?}\n\n", crate::harness::CALM_HOST, pki.ca_file().display().to_string());
    for (name, addr, critical) in endpoints {
        text.push_str(&format!(
            "[[tls]]\nname = \"{name}\"\nendpoint = \"{addr}\"\nserver-name = \"example.com\"\ncritical = {critical}\n\n"
        ));
    }
    let path = pki.dir.path().join("ops.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn checks_tls_cli_exit_codes_follow_the_plugin_convention() {
    let pki = Pki::new();
    let rt = background();
    let (valid, expiring, expired) = rt.block_on(async {
        let (c, k) = pki.leaf(-10, 400);
        let valid = serve(c, &k).await;
        let (c, k) = pki.leaf(-10, 20);
        let expiring = serve(c, &k).await;
        let (c, k) = pki.leaf(-100, -3);
        let expired = serve(c, &k).await;
        (valid, expiring, expired)
    });
    let ca = pki.ca_file().display().to_string();
    let check = |addr: SocketAddr, json: bool| {
        let addr = addr.to_string();
        let mut args = vec!["tls", "check", addr.as_str(), "--ca-file", ca.as_str(), "--server-name", "example.com"];
        if json {
            args.push("--json");
        }
        opsctl(&args, &[])
    };

    let (code, out, err) = check(valid, false);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&valid.to_string()) && out.contains("ok"), "{out}");

    let (code, out, _) = check(expiring, false);
    assert_eq!(code, 1, "20 days left is a warning: {out}");
    assert!(out.contains("expires in"), "{out}");

    let (code, out, _) = check(expired, false);
    assert_eq!(code, 2, "expired is critical: {out}");
    assert!(out.contains("expired"), "{out}");

    let (code, out, _) = check(expired, true);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["kind"], "endpoint");
    assert_eq!(v[0]["status"], "critical");
    assert!(v[0]["days_left"].as_i64().unwrap() < 0);

    // Nothing to check is unknown (3), with a reason.
    let empty = pki.dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let (code, _, err) = opsctl(&["tls", "check", "--config", empty.to_str().unwrap()], &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no target given"), "{err}");

    // The same through `opsctl probe tls`, which names the runbook.
    let addr = expired.to_string();
    let (code, out, _) =
        opsctl(&["probe", "tls", &addr, "--ca-file", &ca, "--server-name", "example.com", "--json"], &[]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kind"], "tls");
    assert_eq!(v["problems"][0]["runbook"], "tls-expiring");
    drop(rt);
}

#[test]
fn checks_triage_cli_rates_certificates_by_the_runbooks() {
    let pki = Pki::new();
    let rt = background();
    let (soon, valid) = rt.block_on(async {
        let (c, k) = pki.leaf(-60, 10);
        let soon = serve(c, &k).await;
        let (c, k) = pki.leaf(-10, 400);
        (soon, serve(c, &k).await)
    });
    // Under 14 days is a P2 (the runbooks: TLS expired or about to be).
    let path = config_with_tls(&pki, &[("site", soon, false), ("api", valid, false)]);
    let path = path.to_str().unwrap();
    let (code, out, err) = opsctl(&["triage", "--config", path, "--no-logs"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    let first = out.lines().next().unwrap();
    assert!(first.starts_with("P2  respond within 1 hour"), "{out}");
    assert!(out.contains("tls:site") && out.contains("runbook: tls-expiring"), "{out}");
    assert!(out.contains("ok: ") && out.contains("tls:api"), "the fine check is listed as ok: {out}");

    let (code, out, _) = opsctl(&["triage", "--config", path, "--json"], &[]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["severity"], "P2");
    assert_eq!(v["response_time"], "1 hour");
    assert_eq!(v["incidents"][0]["check"], "tls:site");
    assert_eq!(v["incidents"][0]["runbook"], "tls-expiring");
    let probes: Vec<&str> = v["probes"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(probes.contains(&"tls:api") && probes.contains(&"tls:site"), "{probes:?}");

    // Marked critical, the same certificate is a P1.
    let path = config_with_tls(&pki, &[("site", soon, true)]);
    let (code, out, _) = opsctl(&["triage", "--config", path.to_str().unwrap(), "--json"], &[]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["severity"], "P1", "{out}");
    drop(rt);
}

async fn call(state: &Arc<ops_server::AppState>, uri: &str, key: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::builder().uri(uri);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let resp = ops_server::app(Arc::clone(state)).oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn checks_server_triage_tls_routes_and_metrics() {
    let pki = Pki::new();
    let (c, k) = pki.leaf(-100, -3);
    let expired = serve(c, &k).await;
    let (c, k) = pki.leaf(-10, 400);
    let valid = serve(c, &k).await;
    let path = config_with_tls(&pki, &[("site", expired, false), ("api", valid, false)]);
    let env = BTreeMap::from([("API_KEYS".to_owned(), "read-key-0123456789".to_owned())]);
    let loaded = ops_core::config::load(Some(&path), &env).unwrap();
    let state = ops_server::AppState::from_config(loaded.config, Some(path), env);

    assert_eq!(call(&state, "/api/v1/triage", None).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&state, "/api/v1/triage", Some("read-key-0123456789")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["severity"], "P2");
    assert_eq!(v["incidents"][0]["check"], "tls:site");

    let (status, body) = call(&state, "/api/v1/probes?status=critical", Some("read-key-0123456789")).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = v["probes"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["tls:site"]);

    let (status, body) = call(&state, "/api/v1/tls", Some("read-key-0123456789")).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["targets"].as_array().unwrap().len(), 2);
    assert!(v["targets"].as_array().unwrap().iter().any(|t| t["status"] == "critical"));

    let (_, metrics) = call(&state, "/metrics", None).await;
    let site = format!("target=\"{expired}\"");
    assert!(metrics.contains(&format!("probe_success{{probe=\"tls:site\",kind=\"tls\",{site}}} 0")), "{metrics}");
    assert!(metrics.contains("probe_success{probe=\"tls:api\",kind=\"tls\""), "{metrics}");
    assert!(metrics.contains("ops_triage_severity 2"), "{metrics}");
    // The expired certificate fails the handshake, as with blackbox: no probe_ssl_* series,
    // but its expiry is in ours.
    assert!(!metrics.lines().any(|l| l.starts_with("probe_ssl_") && l.contains(&site)), "{metrics}");
    assert!(
        metrics.lines().any(|l| l.starts_with("ops_tls_cert_expiry_timestamp_seconds{") && l.contains(&site)),
        "{metrics}"
    );
    // The classic text format unless the scraper asks for OpenMetrics.
    assert!(!metrics.contains("# EOF"), "{metrics}");
    assert!(metrics.contains("# TYPE ops_api_rate_limited_total counter"), "{metrics}");
    let resp = ops_server::app(Arc::clone(&state))
        .oneshot(
            Request::builder()
                .uri("/metrics")
                .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap();
    let om = String::from_utf8_lossy(&bytes);
    assert!(om.trim_end().ends_with("# EOF"), "one EOF, at the end");
    assert_eq!(om.matches("# EOF").count(), 1);
    assert!(om.contains("# TYPE ops_api_rate_limited counter"), "{om}");
}

/// The sample of `name` on the line that contains `with` (a label pair), if any.
fn sample_of(text: &str, name: &str, with: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .find(|l| l.contains(with))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The value of `label` on the first line of `name` that contains `with`.
fn label_of(text: &str, name: &str, with: &str, label: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with(&format!("{name}{{")) && l.contains(with))?;
    let start = line.find(&format!("{label}=\""))? + label.len() + 2;
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_owned())
}

/// blackbox_exporter 0.23 (Debian's) and ops-server probe the same targets: a certificate
/// with 10 days left, a self-signed one, a 200 that takes 900 ms, a refused port. The series
/// existing rules read have the same values, so the same rules give the same alerts; our own
/// verdicts stay in `ops_probe_status`. `promtool check metrics` accepts the exposition.
#[tokio::test]
async fn checks_probe_series_agree_with_blackbox_exporter_on_the_same_targets() {
    let pki = Pki::new();
    let (c, k) = pki.leaf(-10, 10);
    let valid = serve(c, &k).await;
    let self_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["example.com".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "example.com");
    validity(&mut params, -1, 50);
    let self_signed = serve(params.self_signed(&self_key).unwrap().der().clone(), &self_key).await;
    let app = axum::Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_millis(900)).await;
            "ok"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow = format!("http://{}/slow", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let refused = format!("127.0.0.1:{}", crate::harness::free_port());

    let ca = pki.ca_file().display().to_string();
    let text = format!(
        r#"[probes.tls]
ca-file = "{ca}"
[[tls]]
name = "valid"
endpoint = "{valid}"
server-name = "example.com"
[[tls]]
name = "self-signed"
endpoint = "{self_signed}"
server-name = "example.com"
[[http]]
name = "slow"
url = "{slow}"
[[http]]
name = "down"
url = "http://{refused}/"
[[tcp]]
name = "refused"
address = "{refused}"
"#
    );
    let path = pki.dir.path().join("side-by-side.toml");
    std::fs::write(&path, text).unwrap();
    let loaded = ops_core::config::load(Some(&path), &BTreeMap::new()).unwrap();
    let state = ops_server::AppState::from_config(loaded.config, Some(path), BTreeMap::new());
    state.triage(std::time::Instant::now()).await.unwrap();
    state.tls(std::time::Instant::now()).await.unwrap();
    let ours = state.metrics.encode_as(false);

    let bb = crate::harness::blackbox(&format!(
        r#"modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
  tls_ca:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config:
        ca_file: "{ca}"
        server_name: example.com
"#
    ))
    .await;
    let client = crate::harness::http_client();
    let probe = |module: &'static str, target: String| {
        let (client, url) = (client.clone(), format!("{}/probe", bb.url));
        async move {
            let url =
                reqwest::Url::parse_with_params(&url, &[("module", module), ("target", target.as_str())]).unwrap();
            let r = client.get(url).send().await.unwrap();
            assert!(r.status().is_success());
            r.text().await.unwrap()
        }
    };

    // A certificate with 10 days left: the handshake succeeds for both; the expiry series agree.
    let theirs = probe("tls_ca", valid.to_string()).await;
    let mine = format!("target=\"{valid}\"");
    for name in [
        "probe_success",
        "probe_ssl_earliest_cert_expiry",
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        "probe_tls_version_info",
    ] {
        let (a, b) = (sample_of(&theirs, name, ""), sample_of(&ours, name, &mine));
        assert!(a.is_some() && a == b, "{name}: blackbox {a:?}, ours {b:?}\n{theirs}\n{ours}");
    }
    assert_eq!(sample_of(&ours, "probe_success", &mine), Some(1.0));
    for label in ["fingerprint_sha256", "subjectalternative"] {
        let a = label_of(&theirs, "probe_ssl_last_chain_info", "", label);
        let b = label_of(&ours, "probe_ssl_last_chain_info", &mine, label);
        assert!(a.is_some() && a == b, "{label}: blackbox {a:?}, ours {b:?}");
    }
    assert_eq!(
        label_of(&theirs, "probe_tls_version_info", "", "version"),
        label_of(&ours, "probe_tls_version_info", &mine, "version")
    );
    // Our verdict on 10 days left is ours alone.
    assert!(sample_of(&ours, "ops_probe_status", "probe=\"tls:valid\"").unwrap() >= 1.0, "{ours}");

    // A self-signed certificate (50 days left): the handshake fails for a verifying client;
    // no probe_ssl_* series on either side, so "expires soon" rules stay quiet.
    let theirs = probe("tls_ca", self_signed.to_string()).await;
    let mine = format!("target=\"{self_signed}\"");
    assert_eq!(sample_of(&theirs, "probe_success", ""), Some(0.0), "{theirs}");
    assert_eq!(sample_of(&ours, "probe_success", &mine), Some(0.0), "{ours}");
    for name in ["probe_ssl_earliest_cert_expiry", "probe_ssl_last_chain_expiry_timestamp_seconds"] {
        assert_eq!(sample_of(&theirs, name, ""), None, "{name}\n{theirs}");
        assert_eq!(sample_of(&ours, name, &mine), None, "{name}\n{ours}");
    }
    assert!(sample_of(&ours, "ops_tls_cert_expiry_timestamp_seconds", &mine).is_some());

    // A 200 that takes 900 ms: a success with status 200 for both; ours is also critical.
    let theirs = probe("http_2xx", slow.clone()).await;
    let mine = format!("target=\"{slow}\"");
    for name in ["probe_success", "probe_http_status_code", "probe_http_ssl"] {
        let (a, b) = (sample_of(&theirs, name, ""), sample_of(&ours, name, &mine));
        assert!(a.is_some() && a == b, "{name}: blackbox {a:?}, ours {b:?}");
    }
    assert_eq!(sample_of(&ours, "probe_success", &mine), Some(1.0));
    assert_eq!(sample_of(&ours, "ops_probe_status", "probe=\"http:slow\""), Some(2.0), "{ours}");
    let processing = sample_of(&ours, "probe_http_duration_seconds", &format!("{mine},phase=\"processing\"")).unwrap();
    assert!(processing >= 0.85, "{processing}");

    // A refused port: failure, status code 0, on both sides.
    let theirs = probe("http_2xx", format!("http://{refused}/")).await;
    let mine = format!("target=\"http://{refused}/\"");
    for name in ["probe_success", "probe_http_status_code"] {
        let (a, b) = (sample_of(&theirs, name, ""), sample_of(&ours, name, &mine));
        assert!(a == Some(0.0) && a == b, "{name}: blackbox {a:?}, ours {b:?}");
    }
    let theirs = probe("tcp_connect", refused.clone()).await;
    let mine = format!("target=\"{refused}\"");
    assert_eq!(sample_of(&theirs, "probe_success", ""), Some(0.0));
    assert_eq!(sample_of(&ours, "probe_success", &mine), Some(0.0));

    // Host, engine and container checks are no probe_success: a full disk is not "probe failed".
    assert!(ours.lines().any(|l| l.starts_with("ops_probe_status{") && l.contains("kind=\"host\"")), "{ours}");
    assert!(!ours.lines().any(|l| l.starts_with("probe_success{") && l.contains("kind=\"host\"")), "{ours}");
    // promtool accepts the exposition (help on every family, base units, counters' _total).
    let (code, out) = crate::harness::promtool(&["check", "metrics"], &ours);
    assert_eq!(code, 0, "{out}\n{ours}");
}
