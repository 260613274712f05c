//! Probe thresholds (`[probes.*]`), the extra checks (`[[tcp]]`, `[[dns]]`, `[alertmanager]`,
//! `[[status-pages]]`, `[[tls-renew]]`) and triage rules (`[triage]`). Every threshold has the
//! runbooks' value as its default, so an empty file probes like the runbooks do.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::secret::SecretUrl;
use crate::vocab::{Runbook, Severity};

/// `[probes]`: how probes run and what they call a problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProbesConfig {
    /// Probes triage runs at the same time.
    pub concurrency: usize,
    /// Seconds one probe may take before it is reported `unknown` (timed out).
    pub timeout_secs: u64,
    /// `[probes.container]`.
    pub container: ContainerThresholds,
    /// `[probes.http]`.
    pub http: HttpThresholds,
    /// `[probes.postgres]`.
    pub postgres: PostgresThresholds,
    /// `[probes.redis]`.
    pub redis: RedisThresholds,
    /// `[probes.queue]`.
    pub queue: QueueThresholds,
    /// `[probes.host]`.
    pub host: HostThresholds,
    /// `[probes.logs]`.
    pub logs: LogThresholds,
    /// `[probes.tls]`.
    pub tls: TlsThresholds,
    /// `[probes.backup]`.
    pub backup: BackupThresholds,
}

impl Default for ProbesConfig {
    fn default() -> Self {
        Self {
            concurrency: 32,
            timeout_secs: 10,
            container: ContainerThresholds::default(),
            http: HttpThresholds::default(),
            postgres: PostgresThresholds::default(),
            redis: RedisThresholds::default(),
            queue: QueueThresholds::default(),
            host: HostThresholds::default(),
            logs: LogThresholds::default(),
            tls: TlsThresholds::default(),
            backup: BackupThresholds::default(),
        }
    }
}

/// `[probes.container]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ContainerThresholds {
    /// A container that restarted this many times within `restart-window-secs` is crash-looping.
    pub restart_loop_count: u32,
    /// The window of `restart-loop-count`, seconds.
    pub restart_window_secs: u64,
    /// Memory use over this share of the container's limit is `warn`, percent.
    pub memory_warn_percent: f64,
    /// Memory use over this share of the container's limit is `critical`, percent.
    pub memory_critical_percent: f64,
    /// Containers whose failure is a P1 (complete outage): names or Compose services.
    pub critical: Vec<String>,
    /// Containers triage ignores (one-shot jobs, the backup runner between runs).
    pub ignore: Vec<String>,
    /// Containers that are services: stopped with exit code 0 and no restart policy, they are
    /// down, not a finished job. The containers of `databases` and `caches` always are.
    pub services: Vec<String>,
    /// A service whose version (image or configuration) changed this many minutes ago or
    /// less was deployed recently: triage says so, and an urgent incident rooted in it names
    /// a rollback first.
    pub deploy_window_mins: u64,
    /// Environment variable names a container or Compose service must have
    /// (`{ api = ["DATABASE_URL", "SECRET_KEY"] }`): a missing one is `config-error`. Only
    /// names are read, never values.
    pub required_env: BTreeMap<String, Vec<String>>,
}

impl Default for ContainerThresholds {
    fn default() -> Self {
        Self {
            restart_loop_count: 3,
            restart_window_secs: 600,
            memory_warn_percent: 80.0,
            memory_critical_percent: 95.0,
            critical: Vec::new(),
            ignore: Vec::new(),
            services: Vec::new(),
            deploy_window_mins: 30,
            required_env: BTreeMap::new(),
        }
    }
}

/// `[probes.http]`: the runbooks' TTFB thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpThresholds {
    /// Time to first byte over this is `warn`, milliseconds.
    pub ttfb_warn_ms: u64,
    /// Time to first byte over this is `critical`, milliseconds.
    pub ttfb_critical_ms: u64,
}

impl Default for HttpThresholds {
    fn default() -> Self {
        Self { ttfb_warn_ms: 400, ttfb_critical_ms: 800 }
    }
}

/// `[probes.postgres]`: the runbooks' "8 of 10 connections" rule, as shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PostgresThresholds {
    /// Connections at or over this share of `max_connections` is `warn`, percent.
    pub connections_warn_percent: f64,
    /// Connections at or over this share of `max_connections` is `critical`, percent.
    pub connections_critical_percent: f64,
    /// A query running longer than this is reported, seconds.
    pub long_running_secs: u64,
    /// A session idle in a transaction longer than this is reported, seconds.
    pub idle_in_transaction_secs: u64,
}

impl Default for PostgresThresholds {
    fn default() -> Self {
        Self {
            connections_warn_percent: 80.0,
            connections_critical_percent: 90.0,
            long_running_secs: 300,
            idle_in_transaction_secs: 60,
        }
    }
}

/// `[probes.redis]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RedisThresholds {
    /// Hit rate under this is `warn`, percent.
    pub hit_rate_warn_percent: f64,
    /// Hit rate under this is `critical`, percent.
    pub hit_rate_critical_percent: f64,
    /// Memory over this share of `maxmemory` is `warn`, percent.
    pub memory_warn_percent: f64,
    /// Memory over this share of `maxmemory` is `critical` (with `noeviction`: writes fail), percent.
    pub memory_critical_percent: f64,
    /// Lookups needed before the hit rate is judged (a fresh server has none).
    pub min_lookups: u64,
}

impl Default for RedisThresholds {
    fn default() -> Self {
        Self {
            hit_rate_warn_percent: 70.0,
            hit_rate_critical_percent: 60.0,
            memory_warn_percent: 80.0,
            memory_critical_percent: 95.0,
            min_lookups: 100,
        }
    }
}

/// `[probes.queue]`: queue lengths (`LLEN`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct QueueThresholds {
    /// A queue longer than this is `warn`.
    pub warn: u64,
    /// A queue longer than this is `critical`.
    pub critical: u64,
}

impl Default for QueueThresholds {
    fn default() -> Self {
        Self { warn: 100, critical: 1000 }
    }
}

/// `[probes.host]`: disks, memory and load of the machine the probes run on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct HostThresholds {
    /// Disk use over this is `warn`, percent.
    pub disk_warn_percent: f64,
    /// Disk use over this is `critical`, percent.
    pub disk_critical_percent: f64,
    /// Memory use (total minus available) over this is `warn`, percent.
    pub memory_warn_percent: f64,
    /// Memory use over this is `critical`, percent (the runbooks: 3.2 of 4 GB).
    pub memory_critical_percent: f64,
    /// 5-minute load per core over this is `warn`.
    pub load_warn_per_core: f64,
    /// 5-minute load per core over this is `critical`.
    pub load_critical_per_core: f64,
    /// Mount points to check; empty means every real filesystem, plus the Docker data root.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub mounts: Vec<PathBuf>,
}

impl Default for HostThresholds {
    fn default() -> Self {
        Self {
            disk_warn_percent: 70.0,
            disk_critical_percent: 85.0,
            memory_warn_percent: 70.0,
            memory_critical_percent: 80.0,
            load_warn_per_core: 1.5,
            load_critical_per_core: 3.0,
            mounts: Vec::new(),
        }
    }
}

/// `[probes.logs]`: the runbooks' `docker compose logs | grep -i error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogThresholds {
    /// How far back to read, seconds.
    pub window_secs: u64,
    /// Case-insensitive regular expression a problem line matches.
    pub pattern: String,
    /// This many matching lines is `warn` (0 turns the log probe off).
    pub warn_count: u64,
    /// This many matching lines is `critical`.
    pub critical_count: u64,
    /// Sample lines kept as evidence.
    pub samples: usize,
    /// Lines read per container at most.
    pub tail: u64,
}

impl Default for LogThresholds {
    fn default() -> Self {
        Self {
            window_secs: 1800,
            pattern: "error|panic|fatal|corrupt|out of memory".to_owned(),
            warn_count: 1,
            critical_count: 100,
            samples: 5,
            tail: 5000,
        }
    }
}

/// `[probes.tls]`: the runbooks' certificate thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsThresholds {
    /// Fewer days left than this is `warn`.
    pub warn_days: u32,
    /// Fewer days left than this, or expired, is `critical`.
    pub critical_days: u32,
    /// PEM file of CA certificates to trust instead of the bundled Mozilla roots.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub ca_file: Option<PathBuf>,
}

impl Default for TlsThresholds {
    fn default() -> Self {
        Self { warn_days: 30, critical_days: 14, ca_file: None }
    }
}

/// `[probes.backup]`: the runbooks' RPO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackupThresholds {
    /// The newest complete backup older than this is a problem, hours.
    pub max_age_hours: u64,
}

impl Default for BackupThresholds {
    fn default() -> Self {
        Self { max_age_hours: 24 }
    }
}

/// `[[tcp]]`: a port that must accept connections.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TcpCheckConfig {
    /// Short name (`smtp`).
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// A failure of this check is a P1.
    pub critical: bool,
    /// Checks this one depends on (`postgres:main`, `container:db`).
    pub depends_on: Vec<String>,
    /// Connect from inside this container (name or Compose service), through `docker exec`
    /// (`nc -z`, an argv), so its network's service names resolve as the app sees
    /// them.
    pub from_container: Option<String>,
}

/// `[[sql]]`: a read-only query whose single value is judged, the runbooks'
/// `SELECT MAX(ledger_sequence) FROM events` and "payments pending over 30 minutes".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SqlCheckConfig {
    /// Short name (`indexer-lag`).
    pub name: String,
    /// A `[databases]` name (default: the only one, or `main`).
    pub database: Option<String>,
    /// One `SELECT` (or `WITH … SELECT`, `VALUES`) returning one value: a number, a time (its
    /// age in seconds is judged) or an interval (seconds). Anything that writes is refused
    /// when the configuration loads, and it runs in a read-only transaction anyway.
    pub query: String,
    /// The value (or age) over this is `warn`.
    pub warn_above: Option<f64>,
    /// The value (or age) over this is `critical`.
    pub critical_above: Option<f64>,
    /// The value under this is `warn` (events in the last 2 hours: a gap).
    pub warn_below: Option<f64>,
    /// The value under this is `critical`.
    pub critical_below: Option<f64>,
    /// Seconds the query may run (its `statement_timeout`; default `probes.timeout-secs`).
    pub timeout_secs: Option<u64>,
    /// The runbook of a value past a threshold (default `data-stale`).
    pub runbook: Option<Runbook>,
    /// A failure of this check is a P1.
    pub critical: bool,
    /// Checks this one depends on (default: the database's `postgres:` check).
    pub depends_on: Vec<String>,
}

/// `[[exec]]`: a command run in a container (`nginx -t`, `caddy validate`), argv only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExecCheckConfig {
    /// Short name (`nginx-config`).
    pub name: String,
    /// Container (name or Compose service).
    pub container: String,
    /// Program and arguments, run without a shell (`["nginx", "-t"]`).
    pub command: Vec<String>,
    /// The exit code of success (default 0).
    pub expect_exit: i64,
    /// Text its output (stdout and stderr) must contain (`syntax is ok`).
    pub expect_output: Option<String>,
    /// Seconds it may run (default `probes.timeout-secs`).
    pub timeout_secs: Option<u64>,
    /// The runbook of a failure (default `command-failed`).
    pub runbook: Option<Runbook>,
    /// A failure of this check is a P1.
    pub critical: bool,
    /// Checks this one depends on (default: its container's check).
    pub depends_on: Vec<String>,
}

/// `[[log-patterns]]`: how often a line matches a pattern within a window, in a container's
/// log or a file (the runbooks' `docker logs --tail=500 backend | grep -c "🔌"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogPatternConfig {
    /// Short name (`socket-storm`).
    pub name: String,
    /// A container (name or Compose service) whose log is read; or `file`.
    pub container: Option<String>,
    /// A log file on this host, read from its end; or `container`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub file: Option<PathBuf>,
    /// Regular expression a line matches (case-sensitive; `(?i)` for not).
    pub pattern: String,
    /// The window, minutes (default 5).
    pub window_mins: Option<u64>,
    /// This many matching lines in the window is `warn`.
    pub warn_count: u64,
    /// This many is `critical`.
    pub critical_count: u64,
    /// Bytes read from the end of the file or log at most (default 16 MiB).
    pub max_bytes: Option<u64>,
    /// The runbook of a burst (default `log-burst`).
    pub runbook: Option<Runbook>,
    /// Checks this one depends on.
    pub depends_on: Vec<String>,
}

/// `[[access-logs]]`: who sends the requests, from an access log in common or combined
/// format (the runbooks' `tail -n 10000 access.log | awk '{print $1}' | sort | uniq -c`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AccessLogConfig {
    /// Short name (`nginx`).
    pub name: String,
    /// A container (name or Compose service) whose log is the access log; or `file`.
    pub container: Option<String>,
    /// The access log file on this host; or `container`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub file: Option<PathBuf>,
    /// The newest lines read (default 10000, as the runbooks' `tail -n 10000`).
    pub lines: Option<u64>,
    /// Bytes read from the end at most (default 16 MiB).
    pub max_bytes: Option<u64>,
    /// Clients listed (default 10).
    pub top: Option<usize>,
    /// One client over this share of the requests is `warn`, percent (default 30).
    pub warn_share_percent: Option<f64>,
    /// One client over this share is `critical`, percent (default 60).
    pub critical_share_percent: Option<f64>,
    /// Fewer requests than this are not judged (default 100).
    pub min_requests: Option<u64>,
    /// Checks this one depends on.
    pub depends_on: Vec<String>,
}

/// `[[smtp]]`: a mail server's conversation up to the login (the runbooks' `nodemailer
/// verify()`): connect, banner, EHLO, STARTTLS with the certificate checked like the TLS
/// checks, AUTH when a user is given, QUIT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SmtpCheckConfig {
    /// Short name (`mail`).
    pub name: String,
    /// `host:port` (`smtp.example.com:587`).
    pub address: String,
    /// `starttls` (default: required), `implicit` (TLS from the first byte, port 465) or
    /// `none` (plain; only for a relay on a private network).
    pub tls: SmtpTls,
    /// The name the certificate must cover (default: the address's host).
    pub server_name: Option<String>,
    /// PEM file of CA certificates to trust (default `probes.tls.ca-file`, else the Mozilla roots).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub ca_file: Option<PathBuf>,
    /// Log in as this user (AUTH PLAIN or LOGIN, only over TLS).
    pub username: Option<String>,
    /// Its password (`${SMTP_PASS}`), shown as `***` everywhere.
    pub password: Option<crate::secret::Secret>,
    /// Seconds the whole conversation may take (default `probes.timeout-secs`).
    pub timeout_secs: Option<u64>,
    /// A failure of this check is a P1.
    pub critical: bool,
    /// Checks this one depends on.
    pub depends_on: Vec<String>,
}

/// How an SMTP check speaks TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum SmtpTls {
    /// Plain first, then STARTTLS, which the server must offer.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// No TLS at all (a relay on a private network); AUTH is then refused.
    None,
}

/// `[[prometheus]]`: a Prometheus whose scrape targets must be up (the runbooks'
/// `curl localhost:9090/api/v1/targets | grep -c '"health":"up"'`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PrometheusCheckConfig {
    /// Short name (`main`).
    pub name: String,
    /// Base URL (`http://localhost:9090`).
    pub url: SecretUrl,
    /// Jobs whose targets are judged; every job when empty.
    pub jobs: Vec<String>,
    /// A failure of this check is a P1.
    pub critical: bool,
    /// Checks this one depends on.
    pub depends_on: Vec<String>,
}

/// `[[celery]]`: Celery workers online, through Flower's API when configured, else their
/// containers; and their queues' lengths in Redis.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CeleryCheckConfig {
    /// Short name (`worker`).
    pub name: String,
    /// Flower's base URL (`http://flower:5555`; credentials in the URL are a secret).
    pub flower_url: Option<SecretUrl>,
    /// Containers or Compose services of the workers: counted when there is no Flower.
    pub workers: Vec<String>,
    /// Fewer workers online than this is `critical` (default 1).
    pub min_workers: Option<u32>,
    /// A `[caches]` name whose lists are the queues (default: the only one, or `main`).
    pub cache: Option<String>,
    /// The queues (default `["celery"]`), judged by `[probes.queue]`.
    pub queues: Vec<String>,
    /// A failure of this check is a P1.
    pub critical: bool,
    /// Checks this one depends on.
    pub depends_on: Vec<String>,
}

/// `[[systemd]]`: a systemd unit of the host (Caddy, a CI runner) or its timer (a backup
/// timer), the runbooks' `systemctl status caddy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SystemdCheckConfig {
    /// The unit (`caddy.service`, `backup.timer`); also the check's name unless `name` is set.
    pub unit: String,
    /// Short name (default: the unit without `.service`).
    pub name: Option<String>,
    /// Ask the systemd of this container (name or Compose service) instead of the host's, by
    /// `docker exec systemctl`.
    pub container: Option<String>,
    /// This many restarts (`NRestarts`) or more is `warn` (default 3).
    pub restarts_warn: Option<u32>,
    /// A failure of this check is a P1.
    pub critical: bool,
    /// Checks this one depends on.
    pub depends_on: Vec<String>,
}

impl SystemdCheckConfig {
    /// The check's name: `name`, else the unit without `.service`.
    #[must_use]
    pub fn check_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.unit.strip_suffix(".service").unwrap_or(&self.unit).to_owned())
    }
}

/// `[[dns]]`: a name that must resolve (to the expected addresses, when given).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DnsCheckConfig {
    /// The host name (`example.com`).
    pub name: String,
    /// Addresses it must resolve to (all of them); any address when empty.
    pub expect: Vec<String>,
    /// A failure of this check is a P1.
    pub critical: bool,
}

/// `[alertmanager]`: an Alertmanager whose firing alerts triage reports, which sends its
/// alerts to `POST /api/v1/alertmanager`, and in which ops-server silences a target while a
/// runbook acts on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AlertmanagerConfig {
    /// Base URL (`http://alertmanager:9093`): read by triage, used for silences and to check
    /// an alert still fires before acting. Empty: the webhook only (no probe, no silences).
    pub url: SecretUrl,
    /// Bearer keys Alertmanager's `webhook_configs` entry sends (`http_config.authorization`);
    /// also `ALERTMANAGER_WEBHOOK_KEYS`, comma-separated. None: the webhook refuses everything.
    pub webhook_keys: Vec<crate::secret::Secret>,
    /// Alert names never recorded nor acted on (default `Watchdog`, `InfoInhibitor`: the
    /// always-firing alerts of kube-prometheus and similar rule sets).
    pub ignore: Vec<String>,
    /// `severity` label values that are no problem (default `none`, `info`).
    pub low_severities: Vec<String>,
    /// What those are: `P4` (default; recorded, never paging) or `ignore`.
    pub low_severity: LowSeverity,
    /// The runbook of an alert by its name, for alerts without a `runbook` label or
    /// annotation (`ServiceDown = "container-down"`).
    pub runbooks: BTreeMap<String, String>,
    /// Silence the target's alerts while a runbook acts on it (default true; needs `url`).
    pub silence: bool,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::default(),
            webhook_keys: Vec::new(),
            ignore: vec!["Watchdog".to_owned(), "InfoInhibitor".to_owned()],
            low_severities: vec!["none".to_owned(), "info".to_owned()],
            low_severity: LowSeverity::P4,
            runbooks: BTreeMap::new(),
            silence: true,
        }
    }
}

/// What an alert of a low severity (`none`, `info`) is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LowSeverity {
    /// Recorded as P4: on the incident, never paging.
    #[default]
    P4,
    /// Not recorded at all.
    #[serde(rename = "ignore")]
    Ignore,
}

impl AlertmanagerConfig {
    /// The severity an alert's `severity` label stands for (`None`: ignore it): `critical` and
    /// `page` P2, the low ones P4 (or ignored), anything else P3.
    #[must_use]
    pub fn severity_of(&self, name: &str, severity_label: Option<&str>) -> Option<Severity> {
        if self.ignore.iter().any(|i| i == name) {
            return None;
        }
        let label = severity_label.unwrap_or_default().to_ascii_lowercase();
        if self.low_severities.iter().any(|l| l.eq_ignore_ascii_case(&label)) {
            return match self.low_severity {
                LowSeverity::P4 => Some(Severity::P4),
                LowSeverity::Ignore => None,
            };
        }
        Some(match label.as_str() {
            "critical" | "page" => Severity::P2,
            _ => Severity::P3,
        })
    }

    /// The severity of an alert from its labels: its `priority` label (`P1` … `P4`, as the
    /// generated rules set) when it has one, else what its `severity` label stands for
    /// ([`Self::severity_of`]). `None` for an alert ignored by name or by low severity.
    #[must_use]
    pub fn severity_of_alert(
        &self,
        name: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Option<Severity> {
        let by_label = self.severity_of(name, labels.get("severity").map(String::as_str))?;
        Some(match labels.get("priority").map(|p| p.trim().to_ascii_uppercase()).as_deref() {
            Some("P1") => Severity::P1,
            Some("P2") => Severity::P2,
            Some("P3") => Severity::P3,
            Some("P4") => Severity::P4,
            _ => by_label,
        })
    }

    /// Whether an Alertmanager URL is configured (probe, silences, re-checks).
    #[must_use]
    pub fn has_url(&self) -> bool {
        !self.url.expose().trim().is_empty()
    }
}

/// `[[status-pages]]`: an upstream provider's Atlassian Statuspage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct StatusPageConfig {
    /// Short name (`stellar`).
    pub name: String,
    /// The page's base URL (`https://status.stellar.org`); `/api/v2/status.json` is appended
    /// unless the URL already ends in `.json`.
    pub url: String,
    /// Containers or services that depend on this provider: during an upstream incident triage
    /// says not to restart them.
    pub affects: Vec<String>,
}

/// `[[tls-renew]]`: one renewal command, run by `opsctl tls renew` in a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsRenewConfig {
    /// Container (name or Compose service): `certbot`, then `nginx`.
    pub container: String,
    /// Program and arguments, run without a shell (`["certbot", "renew", "--quiet"]`).
    pub command: Vec<String>,
    /// Seconds to wait for it.
    pub timeout_secs: Option<u64>,
}

/// `[triage]`: how findings become incidents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TriageConfig {
    /// Severity per rule (runbook name), replacing the default: `{ cache-down = "P2" }`.
    pub severity: BTreeMap<Runbook, Severity>,
    /// Extra dependencies, check name to the checks it needs:
    /// `{ "container:api" = ["postgres:main"] }`.
    pub depends_on: BTreeMap<String, Vec<String>>,
    /// `[triage.escalation]`.
    pub escalation: EscalationConfig,
}

/// `[triage.escalation]`: the runbooks' escalation rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct EscalationConfig {
    /// Minutes a finding of a severity may stay open before it goes up one level
    /// (`{ P2 = 120 }`: a P2 open over 2 h is a P1).
    pub open_minutes: BTreeMap<Severity, u64>,
    /// More reports than this within `reports-window-minutes` goes up one level.
    pub reports: u32,
    /// The window of `reports`, minutes.
    pub reports_window_minutes: u64,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        Self { open_minutes: BTreeMap::from([(Severity::P2, 120)]), reports: 10, reports_window_minutes: 5 }
    }
}

/// `[perf]`: performance analysis (`opsctl perf analyze`) and guarded remediation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PerfConfig {
    /// Directory keeping the previous snapshot of cumulative statistics, so reports cover the
    /// window since the last run; no deltas when unset.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub state_dir: Option<PathBuf>,
    /// JSON-lines file every applied action is appended to.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub audit_log: PathBuf,
    /// Rows shown per list (slowest queries, largest keys).
    pub top: usize,
    /// `[perf.postgres]`.
    pub postgres: PerfPostgresThresholds,
    /// `[perf.redis]`.
    pub redis: PerfRedisThresholds,
    /// `[perf.containers]`.
    pub containers: PerfContainerThresholds,
    /// `[perf.http]`.
    pub http: PerfHttpConfig,
}

impl Default for PerfConfig {
    fn default() -> Self {
        Self {
            state_dir: None,
            audit_log: PathBuf::from("/var/lib/ops/audit.jsonl"),
            top: 10,
            postgres: PerfPostgresThresholds::default(),
            redis: PerfRedisThresholds::default(),
            containers: PerfContainerThresholds::default(),
            http: PerfHttpConfig::default(),
        }
    }
}

/// `[perf.postgres]`: the runbooks' query thresholds and the usual DBA rules of thumb.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PerfPostgresThresholds {
    /// Mean execution time over this is `warn`, milliseconds (runbooks: 20).
    pub slow_mean_warn_ms: f64,
    /// Mean execution time over this is `critical`, milliseconds (runbooks: 50).
    pub slow_mean_critical_ms: f64,
    /// Queries with fewer calls are not judged.
    pub slow_min_calls: u64,
    /// Tables with more rows whose index-scan share is under this are index candidates, percent.
    pub index_scan_warn_percent: f64,
    /// ...only tables with at least this many rows.
    pub index_min_rows: u64,
    /// Unused non-unique indexes at least this large are reported, bytes.
    pub unused_index_min_bytes: u64,
    /// Dead tuples over this share of live + dead is `warn`, percent.
    pub dead_tuples_warn_percent: f64,
    /// Dead tuples over this share is `critical`, percent.
    pub dead_tuples_critical_percent: f64,
    /// ...only tables with at least this many dead tuples.
    pub dead_tuples_min: u64,
    /// Transaction ID age over this is `warn`.
    pub wraparound_warn_age: u64,
    /// Transaction ID age over this is `critical`.
    pub wraparound_critical_age: u64,
    /// A sequence over this share of its type's range is `warn`, percent.
    pub sequence_warn_percent: f64,
    /// A sequence over this share is `critical`, percent.
    pub sequence_critical_percent: f64,
    /// Buffer cache hit ratio under this is `warn`, percent.
    pub cache_hit_warn_percent: f64,
    /// Buffer cache hit ratio under this is `critical`, percent.
    pub cache_hit_critical_percent: f64,
    /// Idle connections older than this are reported (and what `kill-idle` defaults to), seconds.
    pub idle_connection_secs: u64,
}

impl Default for PerfPostgresThresholds {
    fn default() -> Self {
        Self {
            slow_mean_warn_ms: 20.0,
            slow_mean_critical_ms: 50.0,
            slow_min_calls: 10,
            index_scan_warn_percent: 95.0,
            index_min_rows: 10_000,
            unused_index_min_bytes: 1 << 20,
            dead_tuples_warn_percent: 10.0,
            dead_tuples_critical_percent: 30.0,
            dead_tuples_min: 1_000,
            wraparound_warn_age: 500_000_000,
            wraparound_critical_age: 1_000_000_000,
            sequence_warn_percent: 75.0,
            sequence_critical_percent: 90.0,
            cache_hit_warn_percent: 99.0,
            cache_hit_critical_percent: 95.0,
            idle_connection_secs: 600,
        }
    }
}

/// `[perf.redis]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PerfRedisThresholds {
    /// Keys sampled (SCAN) to find the largest.
    pub sample_keys: u64,
    /// A key at least this large is reported, bytes.
    pub big_key_bytes: u64,
}

impl Default for PerfRedisThresholds {
    fn default() -> Self {
        Self { sample_keys: 1000, big_key_bytes: 10 << 20 }
    }
}

/// `[perf.containers]`: CPU and memory per container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PerfContainerThresholds {
    /// CPU over this is `warn`, percent of one core.
    pub cpu_warn_percent: f64,
    /// CPU over this is `critical`, percent of one core.
    pub cpu_critical_percent: f64,
    /// Per container or Compose service: memory thresholds in MB (runbooks: `indexer` warn
    /// 200, critical 400).
    pub services: BTreeMap<String, ServiceMemoryThresholds>,
}

impl Default for PerfContainerThresholds {
    fn default() -> Self {
        Self { cpu_warn_percent: 80.0, cpu_critical_percent: 95.0, services: BTreeMap::new() }
    }
}

/// `[perf.containers.services.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServiceMemoryThresholds {
    /// Memory over this is `warn`, MB.
    pub memory_warn_mb: Option<u64>,
    /// Memory over this is `critical`, MB.
    pub memory_critical_mb: Option<u64>,
}

/// `[perf.http]`: latency sampling of the `[[http]]` endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PerfHttpConfig {
    /// Requests per endpoint.
    pub samples: usize,
}

impl Default for PerfHttpConfig {
    fn default() -> Self {
        Self { samples: 10 }
    }
}
