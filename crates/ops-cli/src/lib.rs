//! `opsctl`: parse the command line, load the configuration, call one library function,
//! render the result (a table for people, `--json` for machines), exit with a documented code.
//!
//! The binary is five lines; everything is here so tests can drive [`run`] in-process with
//! their own environment and output buffers:
//!
//! ```
//! let mut out = Vec::new();
//! let mut err = Vec::new();
//! let code = ops_cli::run(["opsctl", "keys", "generate", "--json"], &Default::default(), &mut out, &mut err);
//! assert_eq!(code, ops_cli::exit::OK);
//! let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
//! assert_eq!(v["key"].as_str().unwrap().len(), 64);
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)] // a binary crate: it renders

mod backup_render;
mod commands;
pub mod exit;
mod render;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Operate a Docker-hosted web platform: probes, backups, TLS, performance.
#[derive(Debug, Parser)]
#[command(name = "opsctl", version, about, long_about = None, after_help = exit::HELP)]
pub struct Cli {
    /// Configuration file [default: $OPS_CONFIG, then ./ops.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage API keys for ops-server.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Back up PostgreSQL, list, verify and prune backups.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Restore a backup: verify it, restore beside the live database, check, then swap.
    Restore(RestoreArgs),
    /// DR drill: restore a backup into a throwaway PostgreSQL (container or local cluster) and prove it.
    DrTest(DrTestArgs),
}

/// `opsctl dr-test` options.
#[derive(Debug, clap::Args)]
pub struct DrTestArgs {
    /// Backup id, `latest`, a local path, or s3://bucket/key
    #[arg(default_value = "latest")]
    pub source: String,
    /// Database (config name) [default: the only one, or main]
    #[arg(long)]
    pub database: Option<String>,
    /// PostgreSQL image [default: drill-image from the config, else postgres:MAJOR]
    #[arg(long)]
    pub image: Option<String>,
    /// Where the throwaway server runs: auto (the container runtime when it answers, else a
    /// local cluster), container, or local (initdb + pg_ctl of the backup's major version)
    #[arg(long, default_value = "auto", value_name = "auto|container|local")]
    pub backend: ops_backup::DrillBackend,
    /// RTO target in seconds.
    #[arg(long, default_value_t = 7200)]
    pub rto_target: u64,
    /// RPO target in seconds.
    #[arg(long, default_value_t = 86_400)]
    pub rpo_target: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
}

/// `opsctl restore` options.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// Backup id, `latest`, a local .sql.gz/.sql.zst path, or s3://bucket/key
    #[arg(default_value = "latest")]
    pub source: String,
    /// Database (config name) [default: the only one, or main]
    #[arg(long)]
    pub database: Option<String>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (required without a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Drop and recreate the live database instead of the safe swap (for hosts short of disk).
    #[arg(long)]
    pub in_place: bool,
    /// Seconds to wait for the dependents' health after the restart.
    #[arg(long, default_value_t = 120)]
    pub health_timeout: u64,
}

/// `opsctl backup …`.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Dump a database into every configured destination, verify the copies, write the manifest.
    Run(BackupRunArgs),
    /// List backups of every destination, newest first.
    List,
    /// Re-read a backup (an id, or `latest`), check its checksum and decompress it fully.
    Verify {
        /// Backup id, or `latest`.
        #[arg(default_value = "latest")]
        backup: String,
    },
    /// Apply retention (`retention-days`, `keep-daily/weekly/monthly`); plan only with --dry-run.
    Prune {
        /// Print the plan, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `opsctl backup run` options.
#[derive(Debug, clap::Args)]
pub struct BackupRunArgs {
    /// Database (config name) [default: the only one, or main]
    #[arg(long)]
    pub database: Option<String>,
    /// gzip (.sql.gz) or zstd (.sql.zst)
    #[arg(long, default_value = "gzip")]
    pub compression: ops_backup::compress::Compression,
    /// Compression level [default: gzip 2, zstd 3]
    #[arg(long)]
    pub level: Option<u32>,
    /// Compression threads [default: all cores]
    #[arg(long)]
    pub threads: Option<usize>,
    /// File name prefix [default: the database name]
    #[arg(long)]
    pub prefix: Option<String>,
}

/// `opsctl config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it resolved, with secrets shown as ***.
    Check,
}

/// `opsctl keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random API key (32 bytes, hex) for API_KEYS or ADMIN_KEYS.
    Generate,
}

/// What a command hands back to be rendered: the exit code is decided by the command.
pub(crate) struct Outcome {
    pub code: u8,
}

/// Runs `opsctl` with these arguments and environment, writing to `out` and `err`; returns
/// the exit code.
pub fn run<I, T>(args: I, env: &BTreeMap<String, String>, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let text = e.render().to_string();
            let _ = if e.use_stderr() { write!(err, "{text}") } else { write!(out, "{text}") };
            return code;
        }
    };
    let result = match &cli.command {
        Command::Config(ConfigCommand::Check) => commands::config_check(&cli, env, out),
        Command::Keys(KeysCommand::Generate) => commands::keys_generate(&cli, out),
        Command::Backup(cmd) => runtime().and_then(|rt| rt.block_on(commands::backup(&cli, cmd, env, out))),
        Command::Restore(args) => runtime().and_then(|rt| rt.block_on(commands::restore(&cli, args, env, out, err))),
        Command::DrTest(args) => runtime().and_then(|rt| rt.block_on(commands::dr_test(&cli, args, env, out))),
    };
    match result {
        Ok(outcome) => outcome.code,
        Err(e) => {
            let code = exit::for_kind(e.kind());
            if cli.json {
                let _ = writeln!(out, "{}", render::error_json(&e));
            } else {
                let _ = writeln!(err, "error: {e}");
            }
            code
        }
    }
}

fn runtime() -> ops_core::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ops_core::Error::internal(format!("cannot start the async runtime: {e}")))
}

/// The whole `main`: real arguments, environment and stdio.
#[must_use]
pub fn main_impl() -> u8 {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    // Unlocked handles: a held stderr lock would deadlock the progress bar's drawing thread.
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    run(std::env::args_os(), &env, &mut out, &mut err)
}
