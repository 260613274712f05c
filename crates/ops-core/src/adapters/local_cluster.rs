//! The DR drill's local fallback: a throwaway PostgreSQL cluster (`initdb` + `pg_ctl`) in a
//! temporary directory on a free 127.0.0.1 port, for hosts without a container runtime.
//!
//! PostgreSQL refuses to run as root, so a root process runs `initdb` and `pg_ctl` as an
//! unprivileged user (`postgres` if it exists, else `nobody`) through `setpriv` (or
//! `runuser`), with the temporary directory owned by that user. Every program gets an
//! argument vector, never a shell string; settings go into a file in the data directory, not
//! through `pg_ctl -o` (which `pg_ctl` hands to a shell).
//!
//! [`LocalCluster::cleanup`] stops the server (`pg_ctl stop -m immediate`) and removes the
//! directory; if the cluster is dropped before that (a dropped future, a panic), `Drop` does
//! the same synchronously.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Debian's per-version layout, searched before `PATH`.
fn debian_dir(major: u32) -> PathBuf {
    PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"))
}

/// Tries of a fresh port when the one found free was taken before the server bound it.
const PORT_ATTEMPTS: usize = 5;

/// Retries of the directory's removal: a process killed a moment ago (an interrupted `initdb`'s
/// bootstrap backend, a postmaster that had not written its pid file) may still be writing.
const REMOVE_RETRIES: usize = 10;
const REMOVE_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);
/// Pauses of [`REMOVE_PAUSE`] to wait for a killed process to go.
const KILL_WAIT_STEPS: usize = 25;

/// Seconds `pg_ctl -w` waits for a start or a stop.
const PG_CTL_WAIT_SECS: u64 = 120;

/// Server settings of a cluster that is thrown away after one restore: durability off, no WAL
/// for the restore's `COPY` into tables created in the same transaction (`wal_level =
/// minimal`), no autovacuum racing the row counts.
const DRILL_SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", "'127.0.0.1'"),
    ("fsync", "off"),
    ("full_page_writes", "off"),
    ("synchronous_commit", "off"),
    ("wal_level", "minimal"),
    ("max_wal_senders", "0"),
    ("archive_mode", "off"),
    ("max_wal_size", "'2GB'"),
    ("checkpoint_timeout", "'30min'"),
    ("autovacuum", "off"),
    ("logging_collector", "off"),
];

/// The server programs of one major version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerPrograms {
    /// Their major version.
    pub major: u32,
    /// `initdb --version` output.
    pub version: String,
    /// `initdb`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub initdb: PathBuf,
    /// `pg_ctl`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub pg_ctl: PathBuf,
    /// `postgres`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub postgres: PathBuf,
}

impl ServerPrograms {
    /// Where they were found: their directory, or `PATH`.
    #[must_use]
    pub fn location(&self) -> String {
        match self.initdb.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) => dir.display().to_string(),
            None => "PATH".to_owned(),
        }
    }
}

/// The major version in `initdb (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`, `16devel`,
/// `17beta1`.
#[must_use]
pub fn parse_major(version_output: &str) -> Option<u32> {
    let after = version_output.split_once(')')?.1.trim_start();
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

async fn version_of(program: &Path) -> Option<(u32, String)> {
    let out = tokio::process::Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    parse_major(&text).map(|m| (m, text))
}

/// Finds `initdb`, `pg_ctl` and `postgres` of PostgreSQL `major`: Debian's
/// `/usr/lib/postgresql/{major}/bin` first, then `PATH`.
///
/// # Errors
/// `NotFound` naming the version needed, what was found, and the package that provides it.
pub async fn find_server_programs(major: u32) -> Result<ServerPrograms> {
    let mut found = Vec::new();
    for dir in [Some(debian_dir(major)), None] {
        let path = |name: &str| dir.as_ref().map_or_else(|| PathBuf::from(name), |d| d.join(name));
        let where_ = dir.as_ref().map_or_else(|| "PATH".to_owned(), |d| d.display().to_string());
        let initdb = path("initdb");
        let Some((got, version)) = version_of(&initdb).await else {
            found.push(format!("no initdb in {where_}"));
            continue;
        };
        if got != major {
            found.push(format!("initdb {got} in {where_}"));
            continue;
        }
        let (pg_ctl, postgres) = (path("pg_ctl"), path("postgres"));
        let mut missing = Vec::new();
        for p in [&pg_ctl, &postgres] {
            if version_of(p).await.is_none_or(|(m, _)| m != major) {
                missing.push(p.display().to_string());
            }
        }
        if missing.is_empty() {
            return Ok(ServerPrograms { major, version, initdb, pg_ctl, postgres });
        }
        found.push(format!("initdb {got} in {where_} but not {} of that version", missing.join(", ")));
    }
    Err(Error::not_found(format!(
        "the local drill cluster needs the PostgreSQL {major} server programs (initdb, pg_ctl, postgres) and \
         found {}; install them (on Debian and Ubuntu: apt-get install postgresql-{major}) or run the drill \
         with a container runtime",
        found.join(", ")
    )))
}

/// How `initdb` and `pg_ctl` are run when this process is root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The unprivileged user.
    pub user: String,
    uid: u32,
    gid: u32,
    via: Switcher,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Switcher {
    /// util-linux `setpriv`: execs the program directly, so a kill reaches it.
    Setpriv(PathBuf),
    /// util-linux `runuser`.
    Runuser(PathBuf),
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective uid).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

async fn id_of(user: &str, flag: &str) -> Option<u32> {
    let out = tokio::process::Command::new("id")
        .args([flag, user])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn first_existing(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// `None` when this process is not root; else the user and the program to switch to it.
///
/// # Errors
/// `NotFound` when neither `postgres` nor `nobody` exists, or neither `setpriv` nor `runuser`.
pub async fn run_as() -> Result<Option<RunAs>> {
    if !is_root() {
        return Ok(None);
    }
    let via = if let Some(p) = first_existing(&["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"]) {
        Switcher::Setpriv(p)
    } else if let Some(p) = first_existing(&["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]) {
        Switcher::Runuser(p)
    } else {
        return Err(Error::not_found(
            "running as root, and PostgreSQL refuses to: the local drill cluster needs setpriv or runuser \
             (util-linux) to run it as an unprivileged user",
        ));
    };
    for user in ["postgres", "nobody"] {
        if let (Some(uid), Some(gid)) = (id_of(user, "-u").await, id_of(user, "-g").await)
            && uid != 0
        {
            return Ok(Some(RunAs { user: user.to_owned(), uid, gid, via }));
        }
    }
    Err(Error::not_found(
        "running as root, and PostgreSQL refuses to: the local drill cluster needs a user postgres or nobody to run it as",
    ))
}

/// What the report says about a local cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterInfo {
    /// The data directory (removed by the time the report exists).
    pub data_dir: String,
    /// The port on 127.0.0.1 (0 until the server started).
    pub port: u16,
    /// Where the server programs were found (a directory, or `PATH`).
    pub programs: String,
    /// The server's version (`PostgreSQL 15.18 (Debian 15.18-0+deb12u1)`).
    pub version: String,
    /// The unprivileged user the server ran as, when this process is root.
    pub run_as: Option<String>,
}

/// A throwaway cluster. [`cleanup`](Self::cleanup) stops it and removes its directory; `Drop`
/// does the same synchronously when that did not happen.
#[derive(Debug)]
pub struct LocalCluster {
    root: PathBuf,
    programs: ServerPrograms,
    run_as: Option<RunAs>,
    port: u16,
    done: bool,
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::from(e).context(what)
}

/// The last five lines of a program's output, on one line.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

impl LocalCluster {
    /// Creates the (empty) temporary directory under `parent`, owned by the user the server
    /// will run as. Nothing runs yet.
    pub fn create(parent: &Path, programs: ServerPrograms, run_as: Option<RunAs>) -> Result<Self> {
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).map_err(|e| Error::internal(format!("no randomness from the OS: {e}")))?;
        let root = parent.join(format!("ops-drill-{}-{}", std::process::id(), hex::encode(random)));
        // Paths go into postgresql.conf between single quotes.
        if root.to_str().is_none_or(|s| s.contains(['\'', '\\', '\n'])) {
            return Err(Error::invalid_input(format!(
                "the temporary directory {} is not usable for a PostgreSQL cluster (quote, backslash or non-UTF-8)",
                root.display()
            )));
        }
        std::fs::DirBuilder::new().mode(0o700).create(&root).map_err(io_err(format!("create {}", root.display())))?;
        let cluster = Self { root, programs, run_as, port: 0, done: false };
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(cluster.socket_dir())
            .map_err(io_err(format!("create {}", cluster.socket_dir().display())))?;
        cluster.give(&cluster.root)?;
        cluster.give(&cluster.socket_dir())?;
        Ok(cluster)
    }

    /// The report's view.
    pub fn info(&self) -> ClusterInfo {
        ClusterInfo {
            data_dir: self.data_dir().display().to_string(),
            port: self.port,
            programs: self.programs.location(),
            version: self.programs.version.replacen("initdb (PostgreSQL) ", "PostgreSQL ", 1),
            run_as: self.run_as.as_ref().map(|r| r.user.clone()),
        }
    }

    /// The temporary directory holding everything.
    #[cfg(test)]
    fn root(&self) -> &Path {
        &self.root
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    fn log_file(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// Makes `path` the server user's (when running as root).
    fn give(&self, path: &Path) -> Result<()> {
        if let Some(r) = &self.run_as {
            std::os::unix::fs::chown(path, Some(r.uid), Some(r.gid)).map_err(io_err(format!(
                "chown {} to {}",
                path.display(),
                r.user
            )))?;
        }
        Ok(())
    }

    /// `program` as the server user, in the temporary directory, without the parent's libpq
    /// settings and with untranslated messages.
    fn command(&self, program: &Path) -> std::process::Command {
        let mut cmd = match self.run_as.as_ref().map(|r| (&r.via, r)) {
            None => std::process::Command::new(program),
            Some((Switcher::Setpriv(setpriv), r)) => {
                let mut c = std::process::Command::new(setpriv);
                c.arg("--reuid").arg(r.uid.to_string()).arg("--regid").arg(r.gid.to_string());
                c.arg("--clear-groups").arg("--").arg(program);
                c
            }
            Some((Switcher::Runuser(runuser), r)) => {
                let mut c = std::process::Command::new(runuser);
                c.arg("-u").arg(&r.user).arg("--").arg(program);
                c
            }
        };
        for var in super::INHERITED_PG_VARS {
            cmd.env_remove(var);
        }
        cmd.env("LC_ALL", "C").current_dir(&self.root).stdin(Stdio::null());
        cmd
    }

    /// `initdb` with scram-sha-256 for superuser `postgres` and `password` (through a file
    /// readable only by the server user, deleted right after).
    pub async fn init(&mut self, password: &str) -> Result<()> {
        let pwfile = self.root.join("pwfile");
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&pwfile)
                .map_err(io_err("write the drill cluster's password file"))?;
            writeln!(f, "{password}").map_err(io_err("write the drill cluster's password file"))?;
        }
        self.give(&pwfile)?;
        let mut cmd = self.command(&self.programs.initdb);
        cmd.arg("--pgdata").arg(self.data_dir());
        cmd.args(["--username=postgres", "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"]);
        cmd.arg(format!("--pwfile={}", pwfile.display()));
        let out = tokio::process::Command::from(cmd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(io_err(format!("start {}", self.programs.initdb.display())));
        let _ = std::fs::remove_file(&pwfile);
        let out = out?;
        if !out.status.success() {
            let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
            if text.trim().is_empty() {
                text = String::from_utf8_lossy(&out.stdout).into_owned();
            }
            return Err(Error::unavailable(format!(
                "initdb of the drill cluster failed ({}): {}",
                out.status,
                tail(&text)
            )));
        }
        // Settings live in a file of their own, included once; a retry on another port rewrites it.
        let conf = self.data_dir().join("postgresql.conf");
        let mut f =
            std::fs::OpenOptions::new().append(true).open(&conf).map_err(io_err(format!("open {}", conf.display())))?;
        writeln!(f, "\n# ops dr-test: a throwaway cluster\ninclude 'ops-drill.conf'")
            .map_err(io_err(format!("write {}", conf.display())))?;
        Ok(())
    }

    fn write_settings(&self, port: u16) -> Result<()> {
        let path = self.data_dir().join("ops-drill.conf");
        let mut text = format!("port = {port}\nunix_socket_directories = '{}'\n", self.socket_dir().display());
        for (k, v) in DRILL_SETTINGS {
            text.push_str(&format!("{k} = {v}\n"));
        }
        std::fs::write(&path, text).map_err(io_err(format!("write {}", path.display())))?;
        self.give(&path)
    }

    /// Starts the server on a free 127.0.0.1 port (another one when that port was taken in
    /// between) and waits until it accepts connections. Returns the port.
    pub async fn start(&mut self) -> Result<u16> {
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            self.write_settings(port)?;
            let _ = std::fs::remove_file(self.log_file());
            self.port = port;
            let mut cmd = self.command(&self.programs.pg_ctl);
            cmd.arg("start").arg("--pgdata").arg(self.data_dir()).arg("--log").arg(self.log_file());
            cmd.args(["--wait", "--silent"]).arg(format!("--timeout={PG_CTL_WAIT_SECS}"));
            let out = tokio::process::Command::from(cmd)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .output()
                .await
                .map_err(io_err(format!("start {}", self.programs.pg_ctl.display())))?;
            if out.status.success() {
                return Ok(port);
            }
            let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
            let stderr = String::from_utf8_lossy(&out.stderr);
            last = format!("{} {}", stderr.trim(), tail(&log));
            // Another process took the port between our probe and the server's bind.
            if log.contains("could not bind") || log.contains("Address already in use") {
                continue;
            }
            return Err(Error::unavailable(format!(
                "the drill cluster did not start ({}): {}",
                out.status,
                last.trim()
            )));
        }
        Err(Error::unavailable(format!(
            "the drill cluster found no free port in {PORT_ATTEMPTS} tries: {}",
            last.trim()
        )))
    }

    /// The stop command, when a server may be running (its `postmaster.pid` exists).
    fn stop_command(&self) -> Option<std::process::Command> {
        if !self.data_dir().join("postmaster.pid").exists() {
            return None;
        }
        let mut cmd = self.command(&self.programs.pg_ctl);
        cmd.arg("stop").arg("--pgdata").arg(self.data_dir());
        cmd.args(["--mode=immediate", "--wait", "--silent"]).arg(format!("--timeout={PG_CTL_WAIT_SECS}"));
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        Some(cmd)
    }

    /// What a failed `pg_ctl stop` leaves to do. `pg_ctl` fails when the server had already
    /// gone (fine), and refuses to stop the single-user server of an interrupted `initdb` (it
    /// exits once it notices, but not at once). Whatever process `postmaster.pid` names and still
    /// runs in the data directory is killed. `Ok(Some(pid))`: killed, wait for it to go.
    fn after_failed_stop(&self, failure: String) -> std::result::Result<Option<u32>, String> {
        let pid_file = self.data_dir().join("postmaster.pid");
        let Ok(text) = std::fs::read_to_string(&pid_file) else { return Ok(None) };
        if !Path::new("/proc/self").exists() {
            return Err(failure);
        }
        // A single-user server writes its pid negated.
        let Some(pid) = text.lines().next().and_then(|l| l.trim().parse::<i64>().ok()).map(i64::unsigned_abs) else {
            return Ok(None);
        };
        let Ok(pid) = u32::try_from(pid) else { return Ok(None) };
        let data = std::fs::canonicalize(self.data_dir()).unwrap_or_else(|_| self.data_dir());
        // PostgreSQL runs in its data directory; anything else under that pid is not ours.
        if !alive(pid) || std::fs::read_link(format!("/proc/{pid}/cwd")).ok().as_deref() != Some(data.as_path()) {
            return Ok(None);
        }
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if killed { Ok(Some(pid)) } else { Err(format!("{failure}; kill -KILL {pid} failed too")) }
    }

    fn stop_failure(&self, status: std::process::ExitStatus, stderr: &[u8]) -> String {
        format!(
            "could not stop the drill cluster in {} ({status}): {}",
            self.data_dir().display(),
            tail(&String::from_utf8_lossy(stderr))
        )
    }

    fn remove_problem(&self, e: &std::io::Error) -> Option<String> {
        (e.kind() != std::io::ErrorKind::NotFound)
            .then(|| format!("could not remove the drill cluster's directory {}: {e}", self.root.display()))
    }

    /// Stops the server (`pg_ctl stop -m immediate`, then `kill -KILL` of what still runs in
    /// the data directory) and removes the directory. Returns what went wrong, in words.
    pub async fn cleanup(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(cmd) = self.stop_command() {
            // Not killed when this future is dropped: the stop must finish (Drop repeats it anyway).
            let failure = match tokio::process::Command::from(cmd).output().await {
                Ok(out) if out.status.success() => None,
                Ok(out) => Some(self.stop_failure(out.status, &out.stderr)),
                Err(e) => Some(format!("could not run pg_ctl stop for the drill cluster: {e}")),
            };
            match failure.map(|f| self.after_failed_stop(f)) {
                None | Some(Ok(None)) => {}
                Some(Ok(Some(pid))) => {
                    for _ in 0..KILL_WAIT_STEPS {
                        if !alive(pid) {
                            break;
                        }
                        tokio::time::sleep(REMOVE_PAUSE).await;
                    }
                    if alive(pid) {
                        problems.push(format!("the drill cluster's process {pid} survived kill -KILL"));
                    }
                }
                Some(Err(problem)) => problems.push(problem),
            }
        }
        let mut removed = tokio::fs::remove_dir_all(&self.root).await;
        for _ in 0..REMOVE_RETRIES {
            match &removed {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tokio::time::sleep(REMOVE_PAUSE).await;
                    removed = tokio::fs::remove_dir_all(&self.root).await;
                }
                _ => break,
            }
        }
        if let Err(e) = removed {
            problems.extend(self.remove_problem(&e));
        }
        self.done = true;
        problems
    }

    /// [`cleanup`](Self::cleanup), blocking the thread.
    fn cleanup_blocking(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(mut cmd) = self.stop_command() {
            let failure = match cmd.output() {
                Ok(out) if out.status.success() => None,
                Ok(out) => Some(self.stop_failure(out.status, &out.stderr)),
                Err(e) => Some(format!("could not run pg_ctl stop for the drill cluster: {e}")),
            };
            match failure.map(|f| self.after_failed_stop(f)) {
                None | Some(Ok(None)) => {}
                Some(Ok(Some(pid))) => {
                    for _ in 0..KILL_WAIT_STEPS {
                        if !alive(pid) {
                            break;
                        }
                        std::thread::sleep(REMOVE_PAUSE);
                    }
                    if alive(pid) {
                        problems.push(format!("the drill cluster's process {pid} survived kill -KILL"));
                    }
                }
                Some(Err(problem)) => problems.push(problem),
            }
        }
        let mut removed = std::fs::remove_dir_all(&self.root);
        for _ in 0..REMOVE_RETRIES {
            match &removed {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(REMOVE_PAUSE);
                    removed = std::fs::remove_dir_all(&self.root);
                }
                _ => break,
            }
        }
        if let Err(e) = removed {
            problems.extend(self.remove_problem(&e));
        }
        self.done = true;
        problems
    }
}

/// Whether process `pid` exists and is not a zombie (Linux `/proc`).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) S ...`: the state follows the last `)`.
    !matches!(stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()), Some('Z' | 'X') | None)
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if !self.done {
            for problem in self.cleanup_blocking() {
                tracing::warn!("{problem}");
            }
        }
    }
}

/// A port that was free on 127.0.0.1 a moment ago.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(io_err("find a free port on 127.0.0.1"))?;
    Ok(listener.local_addr().map_err(io_err("find a free port on 127.0.0.1"))?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(parse_major("initdb (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"), Some(15));
        assert_eq!(parse_major("pg_ctl (PostgreSQL) 16.4"), Some(16));
        assert_eq!(parse_major("postgres (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major("initdb (PostgreSQL) 18devel"), Some(18));
        assert_eq!(parse_major("initdb 15"), None);
        assert_eq!(parse_major("garbage"), None);
    }

    #[test]
    fn programs_say_where_they_are() {
        let p = |dir: &str| ServerPrograms {
            major: 15,
            version: String::new(),
            initdb: PathBuf::from(dir).join("initdb"),
            pg_ctl: PathBuf::from(dir).join("pg_ctl"),
            postgres: PathBuf::from(dir).join("postgres"),
        };
        assert_eq!(p("/usr/lib/postgresql/15/bin").location(), "/usr/lib/postgresql/15/bin");
        assert_eq!(p("").location(), "PATH");
    }

    #[tokio::test]
    async fn missing_programs_name_the_version_and_the_package() {
        // No PostgreSQL 3 anywhere.
        let e = find_server_programs(3).await.unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
        let msg = e.to_string();
        assert!(msg.contains("PostgreSQL 3 server programs"), "{msg}");
        assert!(msg.contains("/usr/lib/postgresql/3/bin"), "{msg}");
        assert!(msg.contains("apt-get install postgresql-3"), "{msg}");
    }

    fn programs() -> ServerPrograms {
        ServerPrograms {
            major: 15,
            version: "initdb (PostgreSQL) 15.18".to_owned(),
            initdb: PathBuf::from("/nonexistent/initdb"),
            pg_ctl: PathBuf::from("/nonexistent/pg_ctl"),
            postgres: PathBuf::from("/nonexistent/postgres"),
        }
    }

    #[test]
    fn commands_switch_user_without_a_shell() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LocalCluster::create(dir.path(), programs(), None).unwrap();
        let plain = c.command(Path::new("/x/pg_ctl"));
        assert_eq!(plain.get_program(), "/x/pg_ctl");
        assert_eq!(plain.get_current_dir(), Some(c.root()));
        assert!(plain.get_envs().any(|(k, v)| k == "PGDATA" && v.is_none()));
        c.run_as = Some(RunAs {
            user: "postgres".to_owned(),
            uid: 101,
            gid: 104,
            via: Switcher::Setpriv(PathBuf::from("/usr/bin/setpriv")),
        });
        let s = c.command(Path::new("/x/pg_ctl"));
        let args: Vec<_> = s.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(s.get_program(), "/usr/bin/setpriv");
        assert_eq!(args, ["--reuid", "101", "--regid", "104", "--clear-groups", "--", "/x/pg_ctl"]);
        c.run_as = Some(RunAs {
            user: "nobody".to_owned(),
            uid: 65534,
            gid: 65534,
            via: Switcher::Runuser(PathBuf::from("/usr/sbin/runuser")),
        });
        let r = c.command(Path::new("/x/initdb"));
        let args: Vec<_> = r.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args, ["-u", "nobody", "--", "/x/initdb"]);
        c.run_as = None;
        let root = c.root().to_owned();
        assert!(root.is_dir());
        assert!(c.cleanup_blocking().is_empty());
        assert!(!root.exists());
    }

    #[test]
    fn drop_removes_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let c = LocalCluster::create(dir.path(), programs(), None).unwrap();
        let root = c.root().to_owned();
        assert_eq!(std::fs::metadata(&root).unwrap().mode() & 0o777, 0o700);
        c.write_settings_for_test();
        drop(c);
        assert!(!root.exists());
    }

    impl LocalCluster {
        fn write_settings_for_test(&self) {
            std::fs::create_dir(self.data_dir()).unwrap();
            self.write_settings(54321).unwrap();
            let text = std::fs::read_to_string(self.data_dir().join("ops-drill.conf")).unwrap();
            assert!(text.starts_with("port = 54321\nunix_socket_directories = '"), "{text}");
            for line in ["fsync = off", "full_page_writes = off", "synchronous_commit = off", "wal_level = minimal"] {
                assert!(text.lines().any(|l| l == line), "{line} in {text}");
            }
        }
    }

    #[test]
    fn liveness_from_proc() {
        assert!(alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!alive(pid), "a zombie is not alive");
        child.wait().unwrap();
        assert!(!alive(pid));
    }

    #[test]
    fn free_ports_are_free() {
        let p = free_port().unwrap();
        assert!(p > 0);
        std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
    }
}
