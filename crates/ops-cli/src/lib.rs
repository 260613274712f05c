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
mod checks;
mod checks_render;
mod commands;
mod incidents;
pub use ops_core::exit;
mod perf;
mod perf_render;
mod render;
mod runbook_render;
mod runbooks;
mod schedule;

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
    /// Run every check at once and say what is broken, how bad (P1-P4) and which runbook applies.
    ///
    /// Exit codes follow the monitoring-plugin convention: 0 ok, 1 warning, 2 critical,
    /// 3 unknown (also when the checks could not run).
    Triage(TriageArgs),
    /// Certificates of endpoints and files: check expiry, chain and hostname; renew.
    #[command(subcommand)]
    Tls(TlsCommand),
    /// One ad-hoc check of a target, with the same verdicts and exit codes as triage.
    #[command(subcommand)]
    Probe(ProbeCommand),
    /// Performance analysis: PostgreSQL, Redis, containers, HTTP latency, host; with verdicts.
    #[command(subcommand)]
    Perf(PerfCommand),
    /// PostgreSQL remediation, planned first: terminate, kill idle, cancel slow, vacuum.
    #[command(subcommand)]
    Pg(PgCommand),
    /// Redis remediation, planned first.
    #[command(subcommand)]
    Redis(RedisCommand),
    /// Restart a container (and, in order, what depends on it), planned first.
    Restart(RestartArgs),
    /// Restart a systemd unit configured in `[[systemd]]` (`caddy`), planned first; waits until
    /// it is active again.
    RestartUnit {
        /// The `[[systemd]]` entry's name or unit.
        unit: String,
        /// Do it (default: print the plan only).
        #[arg(long)]
        apply: bool,
    },
    /// Put a service back on the version before (or `--to`), from the release ledger triage
    /// keeps: recreated alike on the older image, waited for, and put back on the version it
    /// came from when it does not become ready. Planned first.
    Rollback(RollbackArgs),
    /// The whole stack (`project.compose-project`): start it in dependency order, waiting for
    /// each service's health, then run every check; or stop it in reverse order. Planned first.
    #[command(subcommand)]
    Stack(StackCommand),
    /// Disk space: what can be freed, item by item with an estimate (`plan`), and freeing it
    /// (`clean --apply`) with what each item freed and `df` before and after: stopped
    /// containers, dangling images, build cache, container logs over a size, backups beyond
    /// retention, journald, the apt cache; unused anonymous volumes only with `--volumes`.
    #[command(subcommand)]
    Disk(DiskCommand),
    /// Runbooks as code: list, show, check, plan and run them (check, guard, act, verify,
    /// escalate); runs are kept in the state store.
    #[command(subcommand)]
    Runbook(RunbookCommand),
    /// Incidents built from evidence: list, show, open, note, update, acknowledge, resolve,
    /// and the post-incident report.
    #[command(subcommand)]
    Incident(IncidentCommand),
    /// The public status page: show it, export it as static files, publish it, override a
    /// component, plan maintenance.
    #[command(subcommand)]
    Status(StatusCommand),
    /// The jobs ops-server runs on a schedule (`[[schedule]]`): each one's last result and
    /// next time, and its ledger of runs.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Prometheus alerting rules on the metrics ops-server exports, each naming its runbook.
    #[command(subcommand)]
    Alerts(AlertsCommand),
}

/// `opsctl alerts …`.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Prints a Prometheus rule file: the runbooks' alert table and this project's own
    /// alerts, each with severity, priority, summary and a `runbook` annotation.
    Rules {
        /// The rule group's name.
        #[arg(long, default_value = "ops")]
        group: String,
    },
}

/// `opsctl schedule …`.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Every entry: its cron and time zone, next due time, last result and last success.
    List,
    /// One entry's runs, newest first: due time, start, end, result, error.
    Runs {
        /// The entry's name.
        name: String,
        /// At most this many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// `opsctl incident …`. Unknown id: exit 6.
#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// Incidents, newest first: the open ones [--all: the last 100].
    List {
        /// Resolved ones too.
        #[arg(long)]
        all: bool,
    },
    /// One incident: where it stands, its response times and its whole timeline.
    Show {
        /// Incident id.
        id: String,
    },
    /// Open an incident by hand (triage opens them by itself at incidents.open-at).
    Open {
        /// Internal title.
        title: String,
        /// P1 to P4.
        #[arg(long, default_value = "P2", value_parser = severity)]
        severity: ops_core::Severity,
        /// A check it concerns (repeatable): it resolves by itself once they pass.
        #[arg(long = "check", value_name = "KIND:NAME")]
        checks: Vec<String>,
        /// A status-page component it affects (repeatable).
        #[arg(long = "component", value_name = "NAME")]
        components: Vec<String>,
        /// The public title [default: from the components].
        #[arg(long)]
        public_title: Option<String>,
        /// The first public update [default: "We are investigating …"].
        #[arg(long)]
        update: Option<String>,
    },
    /// Add an internal note (never shown publicly).
    Note {
        /// Incident id.
        id: String,
        /// The note.
        text: String,
        /// It is a user's report: more than triage.escalation.reports within the window
        /// raises the severity.
        #[arg(long)]
        user_report: bool,
    },
    /// Post a public status update (status page, feed, webhooks).
    Update {
        /// Incident id.
        id: String,
        /// The public text.
        text: String,
        /// investigating, identified, monitoring or resolved [default: unchanged]
        #[arg(long, value_parser = public_status)]
        status: Option<ops_incident::PublicStatus>,
    },
    /// Acknowledge: you are taking it.
    Ack {
        /// Incident id.
        id: String,
    },
    /// Resolve by hand, with an optional public text.
    Resolve {
        /// Incident id.
        id: String,
        /// The public text [default: "This incident has been resolved …"].
        text: Option<String>,
    },
    /// The post-incident report (Markdown; --json for tools).
    Report {
        /// Incident id.
        id: String,
        /// Write it to this file instead of standard output.
        #[arg(long, short, value_name = "PATH")]
        output: Option<PathBuf>,
    },
}

/// `opsctl status …`.
#[derive(Debug, Subcommand)]
pub enum StatusCommand {
    /// Each component's status now, and why; the open incidents.
    Show,
    /// Write the page, its feed and its Statuspage v2 JSON as static files.
    Export {
        /// Directory (created when missing).
        dir: PathBuf,
    },
    /// Upload the static page to [status.publish] (another bucket or provider).
    Publish,
    /// Show a component with this status instead of its checks' [or clear the override].
    Override {
        /// Component name.
        component: String,
        /// operational, degraded-performance, partial-outage, major-outage,
        /// under-maintenance, or clear.
        status: String,
    },
    /// Maintenance windows.
    #[command(subcommand)]
    Maintenance(MaintenanceCommand),
}

/// `opsctl status maintenance …`.
#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// Planned, in progress and recent windows.
    List,
    /// Plan a window: its components show "under maintenance" while it lasts.
    Add {
        /// Public title.
        title: String,
        /// Start, RFC 3339 (2026-12-05T02:00:00Z).
        #[arg(long, value_parser = utc_time)]
        start: chrono::DateTime<chrono::Utc>,
        /// End, RFC 3339.
        #[arg(long, value_parser = utc_time)]
        end: chrono::DateTime<chrono::Utc>,
        /// A component under maintenance (repeatable, at least one).
        #[arg(long = "component", value_name = "NAME", required = true)]
        components: Vec<String>,
        /// Public text.
        #[arg(long, default_value = "")]
        text: String,
    },
    /// Cancel a window.
    Cancel {
        /// Maintenance id (mnt-…).
        id: String,
    },
}

fn severity(s: &str) -> std::result::Result<ops_core::Severity, String> {
    match s.to_ascii_uppercase().as_str() {
        "P1" => Ok(ops_core::Severity::P1),
        "P2" => Ok(ops_core::Severity::P2),
        "P3" => Ok(ops_core::Severity::P3),
        "P4" => Ok(ops_core::Severity::P4),
        _ => Err(format!("{s:?}: use P1, P2, P3 or P4")),
    }
}

fn public_status(s: &str) -> std::result::Result<ops_incident::PublicStatus, String> {
    ops_incident::PublicStatus::parse(s)
        .ok_or_else(|| format!("{s:?}: use investigating, identified, monitoring or resolved"))
}

fn utc_time(s: &str) -> std::result::Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{s:?}: {e}; write 2026-12-05T02:00:00Z"))
}

/// `opsctl runbook …`.
#[derive(Debug, Subcommand)]
pub enum RunbookCommand {
    /// Every runbook: the built-in ones and those of runbooks.dir.
    List,
    /// A runbook as a person reads it: the prose and its steps.
    Show {
        /// Runbook name.
        name: String,
    },
    /// Validate the runbook files of a directory [default: runbooks.dir].
    Check {
        /// Directory of *.md runbooks.
        dir: Option<PathBuf>,
    },
    /// Evaluate the checks and guards against the live stack and show the branch that would be
    /// taken and what each action would touch; changes nothing.
    Plan {
        /// Runbook name.
        name: String,
        /// A parameter (repeatable): --param database=main
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = runbooks::param)]
        params: Vec<(String, String)>,
    },
    /// Run a runbook: a plan without --apply; with it, act and keep the run in the state store.
    Run {
        /// Runbook name.
        name: String,
        /// A parameter (repeatable): --param database=main
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = runbooks::param)]
        params: Vec<(String, String)>,
        /// Act (default: print the plan only).
        #[arg(long)]
        apply: bool,
        /// Agree in advance to the steps that need it (approval = "yes" or "approve", manual steps).
        #[arg(long)]
        yes: bool,
    },
    /// Recent runs, newest first.
    Runs {
        /// Only runs of this runbook.
        #[arg(long)]
        runbook: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
    },
    /// One run, step by step.
    ShowRun {
        /// Run id.
        id: String,
    },
    /// Approve the step a run waits at (an ops-server run paused at a manual step).
    Approve {
        /// Run id.
        id: String,
    },
}

/// `opsctl perf …`. Exit codes: 0 ok, 1 warning, 2 critical, 3 unknown.
#[derive(Debug, Subcommand)]
pub enum PerfCommand {
    /// Analyse and print findings with verdicts and recommended actions, criticals first.
    Analyze {
        /// Only these sections (repeatable): pg, redis, containers, http, host [default: all]
        #[arg(long = "section", value_name = "SECTION")]
        sections: Vec<ops_perf::Section>,
        /// HTTP requests per endpoint, 1 to 1000 [default: perf.http.samples, 10]
        #[arg(long, value_name = "N", value_parser = samples)]
        samples: Option<usize>,
    },
}

/// `opsctl pg …`: each prints its plan; `--apply` acts and appends to the audit log.
#[derive(Debug, Subcommand)]
pub enum PgCommand {
    /// Terminate one backend.
    Terminate {
        /// Backend pid.
        pid: i32,
        /// Database (config name) [default: the only one, or main]
        #[arg(long)]
        database: Option<String>,
        /// Do it (default: print the plan only).
        #[arg(long)]
        apply: bool,
    },
    /// Terminate client connections idle longer than a limit (never replication, pg_dump,
    /// autovacuum or this session).
    KillIdle {
        /// Idle for at least this long: 10m, 90s, 1h (at most 366d).
        #[arg(long, value_name = "DURATION", value_parser = perf::parse_duration)]
        older_than: std::time::Duration,
        /// Database (config name).
        #[arg(long)]
        database: Option<String>,
        /// Do it.
        #[arg(long)]
        apply: bool,
    },
    /// Cancel queries running longer than a limit.
    CancelSlow {
        /// Running for at least this long: 5m, 30s (at most 366d).
        #[arg(long, value_name = "DURATION", value_parser = perf::parse_duration)]
        longer_than: std::time::Duration,
        /// Database (config name).
        #[arg(long)]
        database: Option<String>,
        /// Do it.
        #[arg(long)]
        apply: bool,
    },
    /// VACUUM (with --analyze: VACUUM ANALYZE) the database or the given tables.
    Vacuum {
        /// Tables [default: all]
        tables: Vec<String>,
        /// Also ANALYZE.
        #[arg(long)]
        analyze: bool,
        /// Database (config name).
        #[arg(long)]
        database: Option<String>,
        /// Do it.
        #[arg(long)]
        apply: bool,
    },
}

/// `opsctl redis …`.
#[derive(Debug, Subcommand)]
pub enum RedisCommand {
    /// CONFIG SET maxmemory-policy (allkeys-lru, noeviction, …).
    SetPolicy {
        /// The policy.
        policy: String,
        /// Cache (config name) [default: the only one, or main]
        #[arg(long)]
        cache: Option<String>,
        /// Do it.
        #[arg(long)]
        apply: bool,
    },
}

/// `opsctl stack …`.
#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// Start every stopped service of the stack, each after what it depends on and once that
    /// is running (healthy, with a healthcheck), then run every check (after a reboot). A
    /// service whose container finished by itself (exit 0, no restart policy) is left alone.
    Up {
        /// Do it (default: print the plan only).
        #[arg(long)]
        apply: bool,
    },
    /// Stop every running service of the stack, each before what it depends on.
    Down {
        /// Do it (default: print the plan only).
        #[arg(long)]
        apply: bool,
    },
}

/// `opsctl disk …`.
#[derive(Debug, Subcommand)]
pub enum DiskCommand {
    /// What a cleanup would free, item by item, with an estimate each; nothing is changed.
    Plan(DiskArgs),
    /// Free it: without `--apply` prints the plan; with `--apply` frees each item
    /// (re-checked first) and prints what each freed and `df` before and after.
    Clean {
        /// What to clean.
        #[command(flatten)]
        args: DiskArgs,
        /// Do it (default: print the plan only).
        #[arg(long)]
        apply: bool,
    },
}

/// What `opsctl disk plan|clean` looks at.
#[derive(Debug, Clone, clap::Args)]
pub struct DiskArgs {
    /// Only these items (repeat or comma-separate): containers, images, build-cache, volumes,
    /// logs, backups, journal, apt [default: all but volumes]
    #[arg(long, value_name = "ITEM", value_delimiter = ',')]
    pub only: Vec<ops_act::DiskItem>,
    /// Also unused anonymous volumes (never one the stack's Compose project owns, never a
    /// named volume).
    #[arg(long)]
    pub volumes: bool,
    /// Every image no container uses, not only dangling ones (`docker image prune -a`); images
    /// the release ledger keeps for a rollback stay either way.
    #[arg(long)]
    pub all_images: bool,
    /// Only containers, images, logs and volumes carrying this label.
    #[arg(long, value_name = "KEY[=VALUE]")]
    pub label: Option<String>,
    /// Truncate container logs larger than this [default: 100MiB]
    #[arg(long, value_name = "SIZE", value_parser = ops_core::units::parse_bytes)]
    pub logs_over: Option<u64>,
    /// journald keeps this many days [default: 3]
    #[arg(long, value_name = "DAYS")]
    pub journal_keep_days: Option<u64>,
}

/// `opsctl rollback` options.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// Container name or Compose service (one container).
    pub service: String,
    /// The version to go to: an image reference or an image id prefix (7 or more) the ledger
    /// knows [default: the one before the running one]
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Do it (default: print the plan only).
    #[arg(long)]
    pub apply: bool,
}

/// `opsctl restart` options.
#[derive(Debug, clap::Args)]
pub struct RestartArgs {
    /// Container name or Compose service.
    pub service: String,
    /// Then restart, in dependency order, the containers that depend on it.
    #[arg(long)]
    pub with_dependents: bool,
    /// Do it (default: print the plan only).
    #[arg(long)]
    pub apply: bool,
}

/// `opsctl probe …`. Exit codes: 0 ok, 1 warning, 2 critical, 3 unknown.
#[derive(Debug, Subcommand)]
pub enum ProbeCommand {
    /// GET a URL: status, body expectations, timings (DNS, connect, TLS, TTFB, total).
    Http {
        /// `http://…` or `https://…`.
        url: String,
        /// Status codes that count as success (repeatable) [default: any 2xx]
        #[arg(long, value_name = "CODE")]
        expect_status: Vec<u16>,
        /// A substring the body must contain.
        #[arg(long, value_name = "TEXT")]
        expect_body: Option<String>,
        /// Follow up to 5 redirects.
        #[arg(long, short = 'L')]
        follow_redirects: bool,
        /// PEM file of CA certificates to trust instead of the Mozilla roots.
        #[arg(long, value_name = "PATH")]
        ca_file: Option<PathBuf>,
        /// Seconds the request may take [default: probes.timeout-secs]
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: Option<u64>,
    },
    /// Whether `host:port` accepts TCP connections.
    Tcp {
        /// `host:port`.
        address: String,
        /// Seconds to wait [default: probes.timeout-secs]
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: Option<u64>,
    },
    /// PostgreSQL: readiness like pg_isready, connections against max_connections, slow and
    /// idle-in-transaction sessions.
    Postgres {
        /// A `databases` name from the config, or `postgres://user@host:port/db` [default:
        /// $DATABASE_URL]. A password in argv is visible to every local user: prefer the
        /// config or the environment.
        target: Option<String>,
        /// Seconds to wait [default: probes.timeout-secs]
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: Option<u64>,
    },
    /// Redis: PING with the password (NOAUTH/WRONGPASS named), memory, eviction policy, hit rate.
    Redis {
        /// A `caches` name from the config, or `redis://host:port` [default: $REDIS_URL]. A
        /// password in argv is visible to every local user: prefer the config or the
        /// environment.
        target: Option<String>,
        /// Seconds to wait [default: probes.timeout-secs]
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: Option<u64>,
    },
    /// Resolve a name with the system resolver, optionally against expected addresses.
    Dns {
        /// Host name.
        name: String,
        /// An address the name must resolve to (repeatable).
        #[arg(long, value_name = "IP")]
        expect: Vec<String>,
        /// Seconds to wait [default: probes.timeout-secs]
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: Option<u64>,
    },
    /// Configured checks by the names triage gives them (`sql:indexer-lag`, `exec:nginx-config`,
    /// `access-log:nginx`, `http:api`, `container:db`), each with the configuration's
    /// thresholds.
    Check {
        /// One or more check names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Seconds each check may take [default: probes.timeout-secs]
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: Option<u64>,
    },
    /// A TLS endpoint (`host:port`) or a PEM file or directory.
    Tls {
        /// `host:port`, `host`, or a path.
        target: String,
        /// Name the certificate must cover (and SNI) [default: the target's host]
        #[arg(long)]
        server_name: Option<String>,
        /// PEM file of CA certificates to trust instead of the Mozilla roots.
        #[arg(long, value_name = "PATH")]
        ca_file: Option<PathBuf>,
        /// Seconds the check may take [default: probes.timeout-secs]
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: Option<u64>,
    },
}

/// `opsctl triage` options.
#[derive(Debug, clap::Args)]
pub struct TriageArgs {
    /// Run again every SECONDS until Ctrl-C (with --json: one JSON document per line).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub watch: Option<u64>,
    /// Seconds one probe may take, 1 to 3600 [default: probes.timeout-secs, 10]
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: Option<u64>,
    /// Do not read container logs.
    #[arg(long)]
    pub no_logs: bool,
    /// Probes run at the same time, 1 to 64 [default: probes.concurrency, 32]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: Option<u64>,
    /// Show all evidence, every healthy check, and one line per probe.
    #[arg(long, short)]
    pub verbose: bool,
    /// Plan each incident's runbook against the live stack (changes nothing without --apply).
    #[arg(long, conflicts_with = "watch")]
    pub fix: bool,
    /// With --fix: run the runbooks marked `auto`; the others need --yes.
    #[arg(long, requires = "fix")]
    pub apply: bool,
    /// With --fix --apply: also run the runbooks not marked `auto`, and agree to their steps
    /// that need it.
    #[arg(long, requires = "apply")]
    pub yes: bool,
    /// Do not record incidents and status history in the state store (incidents.record).
    #[arg(long)]
    pub no_record: bool,
}

/// `opsctl tls …`. Exit codes: 0 ok, 1 warning, 2 critical, 3 unknown.
#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Check certificates: host:port endpoints or PEM files/directories [default: [[tls]] in the config].
    Check {
        /// `host:port`, `host` (port 443), or a PEM file or directory (certbot's live/).
        targets: Vec<String>,
        /// Name the certificate must cover (and SNI) [default: the target's host]
        #[arg(long)]
        server_name: Option<String>,
        /// PEM file of CA certificates to trust instead of the Mozilla roots.
        #[arg(long, value_name = "PATH")]
        ca_file: Option<PathBuf>,
        /// Seconds for connecting and the handshake [default: probes.timeout-secs]
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: Option<u64>,
    },
    /// Run the [[tls-renew]] commands when a certificate is under probes.tls.warn-days, then check again.
    Renew {
        /// Run the commands even when no certificate is due.
        #[arg(long)]
        force: bool,
        /// Check and print the plan; run nothing.
        #[arg(long)]
        dry_run: bool,
    },
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
    /// RTO target in seconds (at most a year).
    #[arg(long, default_value_t = 7200, value_parser = clap::value_parser!(u64).range(0..=31_622_400))]
    pub rto_target: u64,
    /// RPO target in seconds (at most a year).
    #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(0..=31_622_400))]
    pub rpo_target: u64,
    /// Give up after this many seconds (1 to 604800, a week).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub timeout: u64,
    /// Drill a backup whose manifest names another database.
    #[arg(long)]
    pub allow_other_database: bool,
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
    /// Seconds to wait for the dependents' health after the restart (at most 86400, a day).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub health_timeout: u64,
    /// Restore a backup whose manifest names another database.
    #[arg(long)]
    pub allow_other_database: bool,
}

/// `opsctl backup …`.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Dump a database into every configured destination, verify the copies, write the manifest.
    Run(BackupRunArgs),
    /// List backups of every destination, newest first, each with its database.
    List {
        /// Only the backups of this database (config name).
        #[arg(long)]
        database: Option<String>,
    },
    /// Re-read a backup (an id, or `latest`), check its checksum and decompress it fully.
    Verify {
        /// Backup id, or `latest` (the newest complete backup of the database).
        #[arg(default_value = "latest")]
        backup: String,
        /// Database (config name) [default for `latest`: the only one, or main]
        #[arg(long)]
        database: Option<String>,
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
    /// Compression level [default: gzip 1, zstd 3]
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

/// `--samples N`: 1 to [`ops_core::limits::MAX_HTTP_SAMPLES`].
fn samples(s: &str) -> std::result::Result<usize, String> {
    let n: usize = s.parse().map_err(|_| format!("{s:?} is not a whole number"))?;
    ops_core::limits::check_range("--samples", n, 1, ops_core::limits::MAX_HTTP_SAMPLES).map_err(|e| e.to_string())
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
        Command::Triage(args) => runtime().and_then(|rt| rt.block_on(checks::triage(&cli, args, env, out))),
        Command::Tls(cmd) => runtime().and_then(|rt| rt.block_on(checks::tls(&cli, cmd, env, out))),
        Command::Probe(cmd) => runtime().and_then(|rt| rt.block_on(checks::probe(&cli, cmd, env, out, err))),
        Command::Perf(cmd) => runtime().and_then(|rt| rt.block_on(perf::perf(&cli, cmd, env, out))),
        Command::Pg(cmd) => runtime().and_then(|rt| rt.block_on(perf::pg(&cli, cmd, env, out))),
        Command::Redis(cmd) => runtime().and_then(|rt| rt.block_on(perf::redis(&cli, cmd, env, out))),
        Command::Restart(args) => runtime().and_then(|rt| rt.block_on(perf::restart(&cli, args, env, out))),
        Command::RestartUnit { unit, apply } => runtime().and_then(|rt| {
            rt.block_on(perf::act(&cli, env, out, ops_act::Action::RestartUnit { unit: unit.clone() }, *apply))
        }),
        Command::Rollback(args) => runtime().and_then(|rt| rt.block_on(perf::rollback(&cli, args, env, out))),
        Command::Stack(cmd) => runtime().and_then(|rt| rt.block_on(perf::stack(&cli, cmd, env, out))),
        Command::Disk(cmd) => runtime().and_then(|rt| rt.block_on(perf::disk(&cli, cmd, env, out))),
        Command::Runbook(cmd) => runtime().and_then(|rt| rt.block_on(runbooks::runbook(&cli, cmd, env, out))),
        Command::Incident(cmd) => runtime().and_then(|rt| rt.block_on(incidents::incident(&cli, cmd, env, out))),
        Command::Status(cmd) => runtime().and_then(|rt| rt.block_on(incidents::status(&cli, cmd, env, out))),
        Command::Alerts(AlertsCommand::Rules { group }) => {
            if cli.json {
                let rules: Vec<serde_json::Value> = ops_runbook::alert_rules::rules()
                    .iter()
                    .map(|r| {
                        serde_json::json!({ "alert": r.alert, "expr": r.expr, "for": r.for_, "severity": r.severity,
                                            "priority": r.priority, "summary": r.summary, "runbook": r.runbook })
                    })
                    .collect();
                render::write_json(out, &serde_json::json!({ "group": group, "rules": rules }))
                    .map(|()| Outcome { code: exit::OK })
            } else {
                write!(out, "{}", ops_runbook::alert_rules::rule_file(group))
                    .map(|()| Outcome { code: exit::OK })
                    .map_err(|e| ops_core::Error::unavailable(format!("writing the rules: {e}")))
            }
        }
        Command::Schedule(cmd) => runtime().and_then(|rt| rt.block_on(schedule::schedule(&cli, cmd, env, out))),
    };
    // Checks speak the monitoring-plugin convention: a check that could not run is unknown.
    let plugin = matches!(cli.command, Command::Triage(_) | Command::Tls(_) | Command::Probe(_) | Command::Perf(_));
    match result {
        Ok(outcome) => outcome.code,
        Err(e) => {
            let code = if plugin { checks::plugin::UNKNOWN } else { exit::for_kind(e.kind()) };
            if cli.json {
                let _ = writeln!(out, "{}", render::error_json(&e));
            } else {
                let _ = writeln!(err, "error: {e}");
            }
            code
        }
    }
}

/// Who runs a command that changes the stack, for the audit log: `opsctl:USER@HOST`.
pub(crate) fn actor(env: &BTreeMap<String, String>) -> String {
    // Without USER (cron, systemd units), the process's uid: never an empty actor.
    let uid = || {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata("/proc/self").map_or_else(|_| "unknown".to_owned(), |m| format!("uid{}", m.uid()))
    };
    let user =
        env.get("SUDO_USER").or_else(|| env.get("USER")).or_else(|| env.get("LOGNAME")).cloned().unwrap_or_else(uid);
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    if host.is_empty() { format!("opsctl:{user}") } else { format!("opsctl:{user}@{host}") }
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
    let mut out = PipeSafe { inner: std::io::stdout(), closed: false };
    let mut err = std::io::stderr();
    run(std::env::args_os(), &env, &mut out, &mut err)
}

/// Stdout that stops writing, silently, once the reader has gone (`opsctl … | head`): the
/// command still finishes and exits with its own code, as shell tools do on SIGPIPE.
struct PipeSafe<W> {
    inner: W,
    closed: bool,
}

impl<W: Write> Write for PipeSafe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match self.inner.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.inner.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod pipe_tests {
    use std::io::Write;

    use super::PipeSafe;

    struct Gone;

    impl Write for Gone {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn a_closed_reader_is_not_an_error() {
        let mut out = PipeSafe { inner: Gone, closed: false };
        assert!(writeln!(out, "line").is_ok());
        assert!(out.flush().is_ok());
        assert!(out.closed);
        // Other errors still are.
        let mut full = PipeSafe { inner: std::io::Cursor::new([0u8; 2]), closed: false };
        assert!(full.write_all(b"too long").is_err());
    }
}
