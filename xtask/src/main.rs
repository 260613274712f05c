//! `cargo xtask`: project automation (`ci`, `test-env`, `bench backup|probes|perf|runbook|status`) built on std and anyhow only.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod ci;
mod cmd;
mod fuzz;
mod test_env;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test-env [--rebuild]   install docker.io, debootstrap, postgresql-client-15 and
                         ca-certificates if missing, and postgresql-15 (the server
                         of dr-test's local cluster) without creating or starting a
                         system cluster; start dockerd if no engine answers, build
                         the ops-test/* images (all with --rebuild)
  ci                     test-env, cargo fmt --check, cargo clippy -D warnings,
                         then cargo nextest run (or cargo test), then fuzz (30 s each)
  fuzz [--seconds N]     run each cargo-fuzz target of fuzz/ (config loader, manifest
                         reader, backup-id and restore-source parsers) for N seconds
                         (default 60); installs cargo-fuzz when missing
  bench backup [--min-dump-mb N] [--runs N] [--restore-only]
                         build opsctl in release mode, time it against pg_dump,
                         pg_dump | gzip and gunzip | psql on a generated dataset
                         (default 600 MB, 3 runs) in throwaway containers: backups,
                         restores (in place, safe swap) and a local-cluster drill
                         (--restore-only: the restores, from one gzip backup);
                         prints a markdown table, also written to
                         target/bench/backup.md
  bench probes [--runs N] [--http N] [--tls N]
                         build opsctl in release mode, start loopback HTTP (some slow)
                         and TLS servers, time opsctl triage against the slowest single
                         probe and opsctl tls check against an openssl s_client loop
                         (default 200 HTTP, 50 TLS, 5 runs); target/bench/probes.md
  bench perf [--runs N] [--tables N]
                         build opsctl in release mode, time opsctl perf analyze
                         --section pg on a throwaway PostgreSQL with N tables and
                         5 indexes each (default 1,000 tables, 5 runs): under 2 s,
                         and as many catalog queries as on an empty database;
                         target/bench/perf.md
  bench runbook          the runbook engine's overhead per step (50 steps, planned and
                         run, against the same checks called directly, in one release
                         process); target/bench/runbook.md
  bench status [--runs N] [--seconds N]
                         the status page's build cost with 90 days against 2 years of
                         history (at most 1.5x), then ops-server in release mode over
                         the 90-day store: wrk -t2 -c32 --latency on /health/live,
                         /status and /api/v2/summary.json (N runs of N seconds each,
                         default 3 x 10 s; needs wrk); target/bench/status.md
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        bail!("missing command");
    };
    match command.as_str() {
        "test-env" => {
            let mut opts = test_env::Options::default();
            for arg in rest {
                match arg.as_str() {
                    "--rebuild" => opts.rebuild = true,
                    other => bail!("test-env: unknown argument {other:?}\n{USAGE}"),
                }
            }
            test_env::run(&opts)
        }
        "ci" => {
            if let Some(other) = rest.first() {
                bail!("ci: unknown argument {other:?}\n{USAGE}");
            }
            ci::run()
        }
        "fuzz" => {
            let mut seconds = 60;
            numeric_flags(rest, |flag, n| {
                match flag {
                    "--seconds" => seconds = n.max(1),
                    other => bail!("fuzz: unknown argument {other:?}\n{USAGE}"),
                }
                Ok(())
            })?;
            fuzz::run(u64::try_from(seconds)?)
        }
        "bench" => {
            let Some((what, args)) = rest.split_first() else { bail!("bench: missing benchmark name\n{USAGE}") };
            if what == "probes" {
                let mut opts = bench::probes::Options::default();
                numeric_flags(args, |flag, n| {
                    match flag {
                        "--runs" => opts.runs = n.max(1),
                        "--http" => opts.http = n.max(10),
                        "--tls" => opts.tls = n.max(1),
                        other => bail!("bench: unknown argument {other:?}\n{USAGE}"),
                    }
                    Ok(())
                })?;
                return bench::probes::probes(&opts);
            }
            if what == "runbook" {
                if let Some(a) = args.first() {
                    bail!("bench: unknown argument {a:?}\n{USAGE}");
                }
                return bench::runbook::runbook();
            }
            if what == "status" {
                let mut opts = bench::status::Options::default();
                numeric_flags(args, |flag, n| {
                    match flag {
                        "--runs" => opts.runs = n.max(1),
                        "--seconds" => opts.seconds = n.clamp(1, 600),
                        other => bail!("bench: unknown argument {other:?}\n{USAGE}"),
                    }
                    Ok(())
                })?;
                return bench::status::status(&opts);
            }
            if what == "perf" {
                let mut opts = bench::perf::Options::default();
                numeric_flags(args, |flag, n| {
                    match flag {
                        "--runs" => opts.runs = n.max(1),
                        "--tables" => opts.tables = n.clamp(1, 9999),
                        other => bail!("bench: unknown argument {other:?}\n{USAGE}"),
                    }
                    Ok(())
                })?;
                return bench::perf::perf(&opts);
            }
            if what != "backup" {
                bail!("bench: unknown benchmark {what:?}\n{USAGE}");
            }
            let mut opts = bench::backup::Options::default();
            let mut args = args.iter();
            while let Some(arg) = args.next() {
                let mut number = |name: &str| -> Result<u64> {
                    let value = args.next().ok_or_else(|| anyhow::anyhow!("bench: {name} needs a value"))?;
                    value.parse().map_err(|_| anyhow::anyhow!("bench: {name} {value:?} is not a number"))
                };
                match arg.as_str() {
                    "--min-dump-mb" => opts.min_dump_mb = number(arg)?,
                    "--runs" => opts.runs = usize::try_from(number(arg)?)?,
                    "--restore-only" => opts.restore_only = true,
                    other => bail!("bench: unknown argument {other:?}\n{USAGE}"),
                }
            }
            bench::backup::backup(&opts)
        }
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

/// `--flag N` pairs, each handed to `set` with its number.
fn numeric_flags(args: &[String], mut set: impl FnMut(&str, usize) -> Result<()>) -> Result<()> {
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| anyhow::anyhow!("bench: {flag} needs a value"))?;
        let n = value.parse().map_err(|_| anyhow::anyhow!("bench: {flag} {value:?} is not a number"))?;
        set(flag, n)?;
    }
    Ok(())
}

/// The workspace root (the parent of this crate's manifest directory).
fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}
