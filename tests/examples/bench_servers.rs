//! Loopback servers for `cargo xtask bench probes`: one HTTP server answering `/ep/{i}` (the
//! first `--slow` endpoints sleep, the slowest `--slow-ms`), and `--tls` TLS servers with
//! certificates for `example.com` from a CA written to `DIR/ca.pem`. Writes `DIR/ops.toml`
//! with one `[[http]]` per endpoint and one `[[tls]]` per server, prints `ready` and serves
//! until its stdin closes.
//!
//! `bench_servers DIR [--http 200] [--slow 10] [--slow-ms 1000] [--tls 50]`
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::AsyncWriteExt;

struct Args {
    dir: std::path::PathBuf,
    http: usize,
    slow: usize,
    slow_ms: u64,
    tls: usize,
}

fn args() -> Args {
    let mut it = std::env::args().skip(1);
    let dir = it.next().expect("usage: bench_servers DIR [--http N] [--slow N] [--slow-ms MS] [--tls N]").into();
    let mut a = Args { dir, http: 200, slow: 10, slow_ms: 1000, tls: 50 };
    while let Some(flag) = it.next() {
        let value: u64 = it.next().and_then(|v| v.parse().ok()).expect("flags take a number");
        match flag.as_str() {
            "--http" => a.http = usize::try_from(value).unwrap(),
            "--slow" => a.slow = usize::try_from(value).unwrap(),
            "--slow-ms" => a.slow_ms = value,
            "--tls" => a.tls = usize::try_from(value).unwrap(),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// Delay of endpoint `i`: the first `slow` endpoints spread up to `slow_ms`, the rest answer at once.
fn delay(i: usize, slow: usize, slow_ms: u64) -> Duration {
    if i < slow { Duration::from_millis(slow_ms * (i as u64 + 1) / slow as u64) } else { Duration::ZERO }
}

#[tokio::main]
async fn main() {
    let a = args();
    std::fs::create_dir_all(&a.dir).unwrap();

    let slow = (a.slow, a.slow_ms);
    let app = Router::new()
        .route(
            "/ep/{i}",
            get(|State((slow, slow_ms)): State<(usize, u64)>, Path(i): Path<usize>| async move {
                tokio::time::sleep(delay(i, slow, slow_ms)).await;
                "{\"status\":\"ok\"}"
            }),
        )
        .with_state(slow);
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = http.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(http, app).await.unwrap() });

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(DnType::CommonName, "ops bench root");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.clone().self_signed(&ca_key).unwrap();
    let ca_file = a.dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let mut tls_addrs = Vec::new();
    for _ in 0..a.tls {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["example.com".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "example.com");
        let cert = params.signed_by(&key, &issuer).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        tls_addrs.push(listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
    }

    let mut toml = String::new();
    writeln!(toml, "[project]\nname = \"ops-bench\"\ncompose-project = \"ops-bench-none\"\n").unwrap();
    writeln!(toml, "[probes.tls]\nca-file = {:?}\n", ca_file.display().to_string()).unwrap();
    for i in 0..a.http {
        writeln!(toml, "[[http]]\nname = \"ep{i}\"\nurl = \"http://{http_addr}/ep/{i}\"\n").unwrap();
    }
    for (i, addr) in tls_addrs.iter().enumerate() {
        writeln!(toml, "[[tls]]\nname = \"tls{i}\"\nendpoint = \"{addr}\"\nserver-name = \"example.com\"\n").unwrap();
    }
    std::fs::write(a.dir.join("ops.toml"), toml).unwrap();
    let targets: Vec<String> = tls_addrs.iter().map(ToString::to_string).collect();
    std::fs::write(a.dir.join("tls-targets"), targets.join("\n")).unwrap();
    std::fs::write(a.dir.join("slowest-url"), format!("http://{http_addr}/ep/{}", a.slow.saturating_sub(1))).unwrap();
    println!("ready");

    // Serve until the parent closes our stdin (or dies).
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await
    .unwrap();
}
