//! `cargo xtask`: project automation (`ci`, `test-env`) built on std and anyhow only.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod ci;
mod cmd;
mod test_env;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test-env [--rebuild]   install docker.io, debootstrap, postgresql-client-15 and
                         ca-certificates if missing, start dockerd if no engine
                         answers, build the ops-test/* images (all with --rebuild)
  ci                     test-env, cargo fmt --check, cargo clippy -D warnings,
                         then cargo nextest run (or cargo test)
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
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

/// The workspace root (the parent of this crate's manifest directory).
fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}
