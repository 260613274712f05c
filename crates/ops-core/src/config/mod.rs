//! The `ops.toml` model: what stack is operated and how to reach it.
//!
//! Loading is one pure function, [`resolve`]: the binaries read the file and the process
//! environment and hand both in, so this crate never reads environment variables itself.
//! Precedence is defaults < file < environment; binaries apply their flags last.

mod checks;
mod interpolate;
mod load;
mod read_only;
mod schedule;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Severity;
use crate::secret::{Secret, SecretUrl, WebhookUrl};

pub use checks::{
    AccessLogConfig, AlertmanagerConfig, BackupThresholds, CeleryCheckConfig, ContainerThresholds, DnsCheckConfig,
    EscalationConfig, ExecCheckConfig, HostThresholds, HttpThresholds, LogPatternConfig, LogThresholds, LowSeverity,
    PerfConfig, PerfContainerThresholds, PerfHttpConfig, PerfPostgresThresholds, PerfRedisThresholds,
    PostgresThresholds, ProbesConfig, PrometheusCheckConfig, QueueThresholds, RedisThresholds, ServiceMemoryThresholds,
    SmtpCheckConfig, SmtpTls, SqlCheckConfig, StatusPageConfig, SystemdCheckConfig, TcpCheckConfig, TlsRenewConfig,
    TlsThresholds, TriageConfig,
};
pub use load::{ConfigError, ConfigSource, LoadedConfig, load, resolve};
pub use schedule::{CatchUpPolicy, JobKind, MAX_SCHEDULES, OverlapPolicy, ScheduleConfig};

/// The whole configuration of one operated stack.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct OpsConfig {
    /// Names the stack.
    pub project: ProjectConfig,
    /// How to reach the container engine.
    pub docker: DockerConfig,
    /// PostgreSQL databases by name (`[databases.main]`).
    pub databases: BTreeMap<String, DatabaseConfig>,
    /// Redis instances by name (`[caches.main]`).
    pub caches: BTreeMap<String, CacheConfig>,
    /// Where backups go.
    pub storage: Option<StorageConfig>,
    /// Where notifications go.
    pub notify: NotifyConfig,
    /// HTTP health endpoints (`[[http]]`).
    pub http: Vec<HttpCheckConfig>,
    /// TLS endpoints and certificate files (`[[tls]]`).
    pub tls: Vec<TlsCheckConfig>,
    /// Ports that must accept connections (`[[tcp]]`).
    pub tcp: Vec<TcpCheckConfig>,
    /// Names that must resolve (`[[dns]]`).
    pub dns: Vec<DnsCheckConfig>,
    /// Read-only queries whose value is judged (`[[sql]]`).
    pub sql: Vec<SqlCheckConfig>,
    /// Mail servers (`[[smtp]]`).
    pub smtp: Vec<SmtpCheckConfig>,
    /// Prometheus scrape targets (`[[prometheus]]`).
    pub prometheus: Vec<PrometheusCheckConfig>,
    /// Celery workers and queues (`[[celery]]`).
    pub celery: Vec<CeleryCheckConfig>,
    /// systemd units and timers (`[[systemd]]`).
    pub systemd: Vec<SystemdCheckConfig>,
    /// Commands run in containers (`[[exec]]`).
    pub exec: Vec<ExecCheckConfig>,
    /// Pattern counts in a log (`[[log-patterns]]`).
    pub log_patterns: Vec<LogPatternConfig>,
    /// Clients of an access log (`[[access-logs]]`).
    pub access_logs: Vec<AccessLogConfig>,
    /// An Alertmanager whose firing alerts triage reports.
    pub alertmanager: Option<AlertmanagerConfig>,
    /// Upstream providers' status pages (`[[status-pages]]`).
    pub status_pages: Vec<StatusPageConfig>,
    /// Certificate renewal commands (`[[tls-renew]]`), in order.
    pub tls_renew: Vec<TlsRenewConfig>,
    /// Probe thresholds (`[probes.*]`).
    pub probes: ProbesConfig,
    /// Severity rules, dependencies and escalation (`[triage]`).
    pub triage: TriageConfig,
    /// Performance analysis and remediation (`[perf]`).
    pub perf: PerfConfig,
    /// The API server.
    pub server: ServerConfig,
    /// Where runs, budgets and approvals are kept (`[state]`).
    pub state: StateConfig,
    /// Runbooks as code (`[runbooks]`).
    pub runbooks: RunbooksConfig,
    /// Incidents built from triage (`[incidents]`).
    pub incidents: IncidentsConfig,
    /// The public status page (`[status]`).
    pub status: StatusConfig,
    /// Jobs `ops-server` runs on a schedule (`[[schedule]]`).
    pub schedule: Vec<ScheduleConfig>,
}

/// `[incidents]`: when triage opens and resolves an incident, and how often people hear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct IncidentsConfig {
    /// Whether triage (`opsctl triage`, the server's background triage) records incidents in
    /// the state store (default true).
    pub record: bool,
    /// Triage opens an incident for a finding of this severity or worse (default `P2`).
    pub open_at: Severity,
    /// An incident resolves once its checks have passed for this many seconds (default 300).
    pub resolve_after_secs: u64,
    /// Minutes between status updates per severity: the "next update due" deadline, with a
    /// reminder when it passes (default P1 15, P2 30, P3 120, P4 none).
    pub update_every_mins: BTreeMap<Severity, u64>,
    /// A directory of templates replacing the built-in messages: `initial.txt`, `update.txt`,
    /// `resolved.txt`, `reminder.txt` (MiniJinja).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub templates_dir: Option<PathBuf>,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        Self {
            record: true,
            open_at: Severity::P2,
            resolve_after_secs: 300,
            update_every_mins: BTreeMap::from([(Severity::P1, 15), (Severity::P2, 30), (Severity::P3, 120)]),
            templates_dir: None,
        }
    }
}

/// `[status]`: the public status page of `ops-server` and `opsctl status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct StatusConfig {
    /// The page's title (default: the project's name and "status").
    pub title: Option<String>,
    /// Where the page is published (`https://status.example.com`): the links of the feed and
    /// the JSON's `page.url`.
    pub public_url: Option<String>,
    /// The components shown, each from its checks (`[[status.components]]`).
    pub components: Vec<StatusComponentConfig>,
    /// Days of daily history kept and shown (default and most 90).
    pub history_days: u32,
    /// Requests per second the public routes answer, all clients together (default 50);
    /// more get 429.
    pub rate_limit_per_second: u32,
    /// Where `opsctl status publish` uploads the static page (`[status.publish]`).
    pub publish: Option<PublishConfig>,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            title: None,
            public_url: None,
            components: Vec::new(),
            history_days: 90,
            rate_limit_per_second: 50,
            publish: None,
        }
    }
}

/// One component of the status page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct StatusComponentConfig {
    /// Its public name (`API`).
    pub name: String,
    /// One public line about it.
    pub description: Option<String>,
    /// The checks it is made of (`http:api`, `container:api`): all failing is a major outage,
    /// some a partial outage, a warning degraded performance.
    pub checks: Vec<String>,
}

/// `[status.publish]`: an object store of its own (another bucket or provider), so the page
/// stays up when this host is down.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PublishConfig {
    /// `s3://bucket/prefix` or a directory.
    pub url: String,
    /// S3 endpoint for non-AWS providers.
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    pub region: Option<String>,
    /// Path-style addressing (default: on when an endpoint is set).
    pub path_style: Option<bool>,
    /// Access key id.
    pub access_key_id: Option<Secret>,
    /// Secret access key.
    pub secret_access_key: Option<Secret>,
}

impl PublishConfig {
    /// Where the page goes, checked like `storage.url`.
    ///
    /// # Errors
    /// As [`StorageConfig::location`].
    pub fn location(&self) -> Result<StorageLocation, String> {
        parse_storage_url(&self.url)
    }
}

/// `[state]`: the durable store of runs, budgets, approvals and the audit mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct StateConfig {
    /// `sqlite:///var/lib/ops/state.db` (the default: one file) or `postgres://…` (several
    /// `ops-server` replicas sharing state).
    pub url: SecretUrl,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self { url: SecretUrl::new(DEFAULT_STATE_URL) }
    }
}

/// The default `state.url`.
pub const DEFAULT_STATE_URL: &str = "sqlite:///var/lib/ops/state.db";

/// `[runbooks]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunbooksConfig {
    /// A directory of runbook files (`*.md`); one with a built-in's name replaces it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub dir: Option<PathBuf>,
    /// Seconds a server run waits at a manual step for its approval (default 3600).
    pub approval_timeout_secs: u64,
    /// The budget of an action step that sets none: at most this many uses of one action on
    /// one target per window (the circuit breaker).
    pub default_budget: u32,
    /// The window of that budget, minutes.
    pub default_budget_window_mins: u64,
    /// Values steps use as `{{secret.NAME}}` (an admin key for an event replay), shown as
    /// `***` in every output, record and notification.
    pub secrets: BTreeMap<String, Secret>,
}

impl Default for RunbooksConfig {
    fn default() -> Self {
        Self {
            dir: None,
            approval_timeout_secs: 3600,
            default_budget: 3,
            default_budget_window_mins: 60,
            secrets: BTreeMap::new(),
        }
    }
}

/// `[project]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProjectConfig {
    /// Human name of the stack, used in notifications.
    pub name: String,
    /// The Docker Compose project whose containers are the stack; all containers when unset.
    pub compose_project: Option<String>,
}

/// `[docker]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DockerConfig {
    /// Engine address (`unix:///var/run/docker.sock`, `tcp://host:2375`); the binaries fill it
    /// from `DOCKER_HOST` when unset, and the local socket is used when both are.
    pub host: Option<String>,
    /// Seconds to wait for one engine API call.
    pub timeout_secs: Option<u64>,
}

/// Data sessions of a plain-dump restore unless configured: two, like `pg_restore --jobs 2`.
pub const DEFAULT_RESTORE_JOBS: usize = 2;

/// `[databases.NAME]`: one PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/dbname`.
    pub url: SecretUrl,
    /// Its container or Compose service, if it runs in one.
    pub container: Option<String>,
    /// Tables whose rows are counted exactly (the rest use estimates).
    pub key_tables: Vec<String>,
    /// A restored database with fewer tables than this is rejected.
    pub min_tables: u32,
    /// Containers stopped during a restore and restarted in this order.
    pub dependents: Vec<String>,
    /// A command run inside a container after a restore (migrations), before the dependents
    /// restart.
    pub post_restore: Option<PostRestoreConfig>,
    /// PostgreSQL image for DR drills (`postgres:{major}` when unset).
    pub drill_image: Option<String>,
    /// psql sessions loading a plain dump's table data at once during a restore (1: the
    /// whole dump in one session and one transaction).
    pub restore_jobs: usize,
}

impl OpsConfig {
    /// Every secret-typed value (passwords, keys, credential-bearing and webhook URLs) as it is
    /// shown in output, JSON, logs and errors. None of them may reveal what it hides, whatever
    /// was interpolated into it.
    #[must_use]
    pub fn shown_secrets(&self) -> Vec<String> {
        use interpolate::Interpolate as _;
        let mut out = Vec::new();
        self.each_shown_secret(&mut |s| out.push(s));
        out
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::default(),
            container: None,
            key_tables: Vec::new(),
            min_tables: 1,
            dependents: Vec::new(),
            post_restore: None,
            drill_image: None,
            restore_jobs: DEFAULT_RESTORE_JOBS,
        }
    }
}

/// `[databases.NAME.post-restore]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PostRestoreConfig {
    /// Container (name or Compose service) to run it in.
    pub container: String,
    /// Program and arguments, run without a shell (`["alembic", "upgrade", "heads"]`).
    pub command: Vec<String>,
}

/// `[caches.NAME]`: one Redis instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CacheConfig {
    /// `redis://:password@host:port/db` (or `rediss://`).
    pub url: SecretUrl,
    /// Its container or Compose service, if it runs in one.
    pub container: Option<String>,
    /// Redis lists used as queues (Celery's `celery`).
    pub queues: Vec<String>,
}

/// `[storage]`: the backup destination(s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct StorageConfig {
    /// `s3://bucket/prefix`, `file:///dir` or a plain directory path.
    pub url: String,
    /// S3 endpoint for R2, MinIO and other S3-compatible servers.
    pub endpoint: Option<String>,
    /// S3 region (`auto` for R2); default `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`); default true when `endpoint` is set.
    pub path_style: Option<bool>,
    /// S3 access key id; the binaries fill it from `AWS_ACCESS_KEY_ID` when unset.
    pub access_key_id: Option<Secret>,
    /// S3 secret key; the binaries fill it from `AWS_SECRET_ACCESS_KEY` when unset.
    pub secret_access_key: Option<Secret>,
    /// Optional second destination on the local disk.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub local_dir: Option<PathBuf>,
    /// Days to keep backups in `local-dir`.
    pub retention_days: u32,
    /// Keep the newest backup of each of the last N days, in every destination.
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks, in every destination.
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months, in every destination.
    pub keep_monthly: Option<u32>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            endpoint: None,
            region: None,
            path_style: None,
            access_key_id: None,
            secret_access_key: None,
            local_dir: None,
            retention_days: 30,
            keep_daily: None,
            keep_weekly: None,
            keep_monthly: None,
        }
    }
}

/// Where a [`StorageConfig::url`] points, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageLocation {
    /// An S3 bucket and a key prefix (without leading or trailing `/`).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix, possibly empty.
        prefix: String,
    },
    /// A directory on the local filesystem.
    Dir(PathBuf),
}

impl StorageConfig {
    /// Parses [`url`](Self::url).
    ///
    /// # Errors
    /// A message (without file or line) when the URL is neither `s3://bucket[/prefix]`,
    /// `file:///path` nor a plain path.
    pub fn location(&self) -> Result<StorageLocation, String> {
        parse_storage_url(&self.url)
    }
}

pub(crate) fn parse_storage_url(raw: &str) -> Result<StorageLocation, String> {
    if let Some(rest) = raw.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err("an s3:// url needs a bucket: s3://bucket/prefix".into());
        }
        return Ok(StorageLocation::S3 { bucket: bucket.to_owned(), prefix: prefix.trim_matches('/').to_owned() });
    }
    if let Some(rest) = raw.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err("a file:// url needs an absolute path: file:///var/backups".into());
        }
        return Ok(StorageLocation::Dir(PathBuf::from(rest)));
    }
    if raw.is_empty() {
        return Err("is empty: give s3://bucket/prefix, file:///dir or a directory path".into());
    }
    if raw.contains("://") {
        return Err("unsupported scheme: use s3://, file:// or a plain path".into());
    }
    Ok(StorageLocation::Dir(PathBuf::from(raw)))
}

/// `[notify]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NotifyConfig {
    /// Webhook URLs (Slack-compatible) that receive every notification.
    pub webhooks: Vec<WebhookUrl>,
    /// Seconds to wait for one webhook request.
    pub timeout_secs: u64,
    /// Retries after a failed delivery (with exponential backoff).
    pub retries: u32,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self { webhooks: Vec::new(), timeout_secs: 10, retries: 3 }
    }
}

/// `[[http]]`: one HTTP health endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpCheckConfig {
    /// Short name (`api`).
    pub name: String,
    /// URL to request.
    pub url: SecretUrl,
    /// A failure of this check is a P1.
    pub critical: bool,
    /// Status codes that count as success; any 2xx when empty.
    pub expect_status: Vec<u16>,
    /// A substring the body must contain.
    pub expect_body: Option<String>,
    /// A condition on a field of a JSON body.
    pub expect_json: Option<JsonExpectation>,
    /// Follow redirects (at most 5); a redirect is reported as such when false.
    pub follow_redirects: bool,
    /// Seconds the request may take (default: `probes.timeout-secs`).
    pub timeout_secs: Option<u64>,
    /// Time to first byte over this is `warn` (default: `probes.http.ttfb-warn-ms`).
    pub ttfb_warn_ms: Option<u64>,
    /// Time to first byte over this is `critical` (default: `probes.http.ttfb-critical-ms`).
    pub ttfb_critical_ms: Option<u64>,
    /// Checks this one depends on (`postgres:main`, `container:db`, `redis:main`).
    pub depends_on: Vec<String>,
    /// Request headers (`{ "X-Shkeeper-Api-Key" = "${SHKEEPER_API_KEY}" }`): values are
    /// secrets, shown as `***` everywhere and never sent to another origin on a redirect.
    pub headers: BTreeMap<String, Secret>,
    /// Request from inside this container (name or Compose service), through `docker exec`
    /// (`curl` or `wget`), so its network's service names resolve as the app sees them.
    pub from_container: Option<String>,
}

/// `expect-json = { pointer = "/status", equals = "ok" }`: the JSON body's value at an RFC 6901
/// pointer must equal a value (or just exist, without `equals`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct JsonExpectation {
    /// `/status`, `/checks/db/ok`.
    pub pointer: String,
    /// The value it must have.
    pub equals: Option<serde_json::Value>,
}

/// `[[tls]]`: one TLS endpoint or certificate file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsCheckConfig {
    /// Short name (`site`).
    pub name: String,
    /// `host:port` to connect to.
    pub endpoint: Option<String>,
    /// A PEM file or a directory of them (a certbot `live/` tree).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub file: Option<PathBuf>,
    /// The name the certificate must be valid for (default: the endpoint's host).
    pub server_name: Option<String>,
    /// A failure of this check is a P1.
    pub critical: bool,
    /// Checks this one depends on (`container:nginx`).
    pub depends_on: Vec<String>,
}

/// `[server]`: the HTTP API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerConfig {
    /// Address to listen on; default `127.0.0.1:9187`.
    pub listen: Option<String>,
    /// Keys that may read (`API_KEYS`, comma-separated, overrides).
    pub api_keys: Vec<Secret>,
    /// Keys that may read and act (`ADMIN_KEYS`, comma-separated, overrides).
    pub admin_keys: Vec<Secret>,
    /// Seconds between the background triage runs that keep `/metrics` current (default 60;
    /// 0 turns them off and the metrics change only when `/api/v1/triage` is called).
    pub triage_interval_secs: Option<u64>,
    /// PEM certificate chain for HTTPS; with `tls-key`. Required to listen on an address
    /// other than loopback (or `--insecure-listen`).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub tls_key: Option<PathBuf>,
    /// Connections served at once (default 512); more wait in the listen backlog.
    pub max_connections: Option<usize>,
    /// Seconds a client has to send a request's headers, and that a kept-alive connection
    /// may stay idle (default 10).
    pub header_timeout_secs: Option<u64>,
    /// Seconds one request may take, body included (default 120; jobs run on after their
    /// 202).
    pub request_timeout_secs: Option<u64>,
    /// API requests per second each key may make, with bursts of twice that (default 20).
    pub rate_limit_per_second: Option<u32>,
}

/// The default listen address of `ops-server`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9187";
