//! `cargo xtask ci`: test-env, fmt, clippy, tests; fail fast naming the failed step.

use std::ffi::OsString;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::{cmd, test_env};

fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut c = Command::new(program);
    c.current_dir(crate::repo_root());
    c
}

fn has_nextest() -> bool {
    cmd::succeeds(cargo().args(["nextest", "--version"]))
}

pub fn run() -> Result<()> {
    let total = Instant::now();
    let mut times: Vec<(String, Duration)> = Vec::new();
    let mut step = |name: &str, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        println!("ci: ==> {name}");
        let start = Instant::now();
        let result = f();
        let elapsed = start.elapsed();
        times.push((name.to_owned(), elapsed));
        match result {
            Ok(()) => {
                println!("ci: <== {name}: ok ({})", cmd::secs(elapsed));
                Ok(())
            }
            Err(err) => {
                print_times(&times, total.elapsed());
                Err(err).with_context(|| format!("ci step `{name}` failed after {}", cmd::secs(elapsed)))
            }
        }
    };

    step("test-env", &mut || test_env::run(&test_env::Options::default()))?;
    step("fmt", &mut || cmd::streamed(cargo().args(["fmt", "--all", "--", "--check"])))?;
    step("clippy", &mut || {
        cmd::streamed(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    // Fuzzing for a bounded time (a crash fails), before the tests so that the test runner's
    // summary stays the last thing printed.
    step("fuzz", &mut || crate::fuzz::run(30))?;
    // Doctests first: nextest does not run them, and the test runner's summary should be
    // the last thing CI prints before the step times.
    step("doctests", &mut || cmd::streamed(cargo().args(["test", "--doc", "--workspace", "--all-features"])))?;
    if has_nextest() {
        step("test (nextest)", &mut || {
            cmd::streamed(cargo().args([
                "nextest",
                "run",
                "--workspace",
                "--all-features",
                "--no-fail-fast",
                "--profile",
                "ci",
            ]))
        })?;
    } else {
        step("test (cargo test)", &mut || {
            cmd::streamed(cargo().args(["test", "--workspace", "--all-features", "--no-fail-fast"]))
        })?;
    }
    print_times(&times, total.elapsed());
    println!("ci: all steps passed");
    Ok(())
}

fn print_times(times: &[(String, Duration)], total: Duration) {
    println!("ci: step times:");
    for (name, elapsed) in times {
        println!("ci:   {name:<20} {:>9}", cmd::secs(*elapsed));
    }
    println!("ci:   {:<20} {:>9}", "total", cmd::secs(total));
}
