//! `cargo xtask bench runbook`: the runbook engine's own cost per step.
//!
//! Builds and runs the `bench_engine` example of `ops-runbook` in release mode
//! (`target/bench`): 50 steps that each run a real loopback TCP check, planned and run, against
//! the same 50 checks called directly in the same process; and 49 steps whose `when` does not
//! hold (the engine alone). The difference per step is the engine's overhead; a run's includes
//! saving the run to the SQLite state store after every step. The table is printed and written
//! to `target/bench/runbook.md`.

use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd;

/// Builds and runs the measurement.
///
/// # Errors
/// The build's or the example's failure.
pub fn runbook() -> Result<()> {
    eprintln!("bench: building the runbook engine benchmark (release)");
    let target_dir = cmd::release_build(&["-p", "ops-runbook", "--example", "bench_engine"])?;
    let table = cmd::capture(&mut Command::new(target_dir.join("release/examples/bench_engine")))?;
    print!("{table}");
    std::fs::write(target_dir.join("runbook.md"), &table).context("writing target/bench/runbook.md")?;
    Ok(())
}
