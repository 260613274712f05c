//! `cargo xtask fuzz [--seconds N]`: the cargo-fuzz targets in `fuzz/` (the config loader, the
//! manifest reader, the backup-id / object-key / restore-source parsers), each for a bounded
//! time, from the seeds in `fuzz/seeds/`. A crash fails the step and leaves its input under
//! `fuzz/artifacts/`.
//!
//! cargo-fuzz is installed from crates.io when missing. The build uses the stable toolchain
//! (`RUSTC_BOOTSTRAP=1` for cargo-fuzz's `-Z` flags) without a sanitizer: coverage guidance
//! and Rust's own checks (panics, overflow in the debug assertions it enables) find what we
//! look for; a machine has no other toolchain to fetch.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

use crate::cmd;

/// The targets, in `fuzz/fuzz_targets/`.
pub const TARGETS: [&str; 3] = ["config", "manifest", "source"];

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn ensure_cargo_fuzz() -> Result<()> {
    if cmd::succeeds(cargo().args(["fuzz", "--version"])) {
        return Ok(());
    }
    println!("fuzz: installing cargo-fuzz from crates.io (~1.5 min)");
    cmd::streamed(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    if !cmd::succeeds(cargo().args(["fuzz", "--version"])) {
        bail!("cargo-fuzz installed but `cargo fuzz --version` fails");
    }
    Ok(())
}

/// Builds every target, then runs each for `seconds`.
pub fn run(seconds: u64) -> Result<()> {
    ensure_cargo_fuzz()?;
    let root = crate::repo_root();
    let fuzz = root.join("fuzz");
    let target_dir = root.join("target").join("fuzz");
    let fuzz_cmd = |args: &[&str]| {
        let mut c = cargo();
        c.current_dir(&fuzz).env("RUSTC_BOOTSTRAP", "1").arg("fuzz").args(args);
        c.args(["--sanitizer", "none", "--target-dir"]).arg(&target_dir);
        c
    };
    cmd::streamed(&mut fuzz_cmd(&["build"]))?;
    for target in TARGETS {
        let corpus = target_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let seeds = fuzz.join("seeds").join(target);
        println!("fuzz: {target} for {seconds} s");
        let mut c = fuzz_cmd(&["run", target]);
        c.arg(&corpus);
        if Path::new(&seeds).is_dir() {
            c.arg(&seeds);
        }
        c.args(["--", &format!("-max_total_time={seconds}"), "-print_final_stats=1", "-max_len=65536"]);
        // libFuzzer prints a line per new input: keep it in a log, show the verdict.
        let log = target_dir.join(format!("{target}.log"));
        let _ = std::fs::remove_file(&log);
        cmd::logged(&mut c, &log)
            .map_err(|e| anyhow::anyhow!("fuzz target {target} failed (input under fuzz/artifacts/{target}): {e:#}"))?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let runs = text.lines().rev().find(|l| l.starts_with("Done ")).unwrap_or("no summary line");
        println!("fuzz: {target}: {runs} (log {})", log.display());
    }
    Ok(())
}
