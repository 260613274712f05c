//! `cargo xtask bench …`: each benchmark measures `opsctl` against the commands the runbooks
//! run by hand, in the same run, on the same data, and reports ratios.
//!
//! - [`backup`]: backups and restores against `pg_dump`, `gzip`, `zstd` and `psql` pipelines.
//! - [`perf`]: `opsctl perf analyze` against the runbooks' `perf-analyze.sh` queries.
//! - [`probes`]: `opsctl triage` against the first responder's one-liners.

pub mod backup;
pub mod perf;
pub mod probes;

use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd;

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
