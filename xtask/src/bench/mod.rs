//! `cargo xtask bench …`: each benchmark measures `opsctl` against the commands the runbooks
//! run by hand, in the same run, on the same data, and reports ratios.
//!
//! - [`backup`]: backups and restores against `pg_dump`, `gzip`, `zstd` and `psql` pipelines.
//! - [`perf`]: `opsctl perf analyze` against the runbooks' `perf-analyze.sh` queries.
//! - [`probes`]: `opsctl triage` against the first responder's one-liners.
//! - [`runbook`]: the runbook engine's overhead per step against the checks called directly.
//! - [`status`]: the status page's build cost against the history stored, and its routes'
//!   requests per second under `wrk` against `/health/live`.

pub mod backup;
pub mod perf;
pub mod probes;
pub mod runbook;
pub mod status;

use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd;

/// Throwaway credentials of the benchmarks' PostgreSQL (bound to 127.0.0.1 only).
pub const PG_PASSWORD: &str = "benchpw";
/// Its database.
pub const PG_DB: &str = "bench";

/// `docker run` arguments of a throwaway PostgreSQL on a random 127.0.0.1 port, durability
/// off, with `settings` (`name=value`) and `extra` docker flags.
pub fn postgres_args(extra: &[&str], settings: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    args.extend(["-p", "127.0.0.1::5432", "-e"].map(str::to_owned));
    args.push(format!("POSTGRES_PASSWORD={PG_PASSWORD}"));
    args.push("-e".to_owned());
    args.push(format!("POSTGRES_DB={PG_DB}"));
    args.push(crate::test_env::POSTGRES_IMAGE.to_owned());
    for setting in std::iter::once("fsync=off").chain(settings.iter().copied()) {
        args.extend(["-c".to_owned(), setting.to_owned()]);
    }
    args
}

/// The label of every container a benchmark starts (`docker ps -f label=ops-bench`).
pub const LABEL: &str = "ops-bench";

/// `docker run -d --rm` with this run's label and `args`; the container's id.
pub fn docker_run(args: &[&str]) -> Result<String> {
    let label = format!("{LABEL}={}", std::process::id());
    Ok(cmd::capture(Command::new("docker").args(["run", "-d", "--rm", "--label", &label]).args(args))?
        .trim()
        .to_owned())
}

/// The host port `docker port` shows for a container's `port` (`5432/tcp`).
pub fn host_port(id: &str, port: &str) -> Result<u16> {
    let out = cmd::capture(Command::new("docker").args(["port", id, port]))?;
    let line = out.lines().next().context("docker port printed nothing")?;
    let p = line.rsplit(':').next().unwrap_or_default();
    p.trim().parse().with_context(|| format!("unexpected `docker port` output {line:?}"))
}
