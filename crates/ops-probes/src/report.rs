//! [`ProbeReport`]: what every probe returns. A failed check is a report, never an `Err`.

use std::time::Duration;

use ops_core::{Runbook, Status};
use serde::{Deserialize, Serialize};

/// What was probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    /// The container engine itself.
    Engine,
    /// One container.
    Container,
    /// An HTTP endpoint.
    Http,
    /// A PostgreSQL server.
    Postgres,
    /// A Redis server.
    Redis,
    /// Redis lists used as queues.
    Queue,
    /// The host's disks, memory and load.
    Host,
    /// Container logs.
    Logs,
    /// Name resolution.
    Dns,
    /// Alertmanager's firing alerts.
    Alertmanager,
    /// An upstream provider's status page.
    StatusPage,
    /// A TCP port.
    Tcp,
    /// A TLS endpoint or certificate file.
    Tls,
    /// The age of the newest backup.
    Backup,
    /// A read-only SQL query's value.
    Sql,
    /// A command run in a container.
    Exec,
    /// A pattern's count in a log.
    LogPattern,
    /// An access log's clients.
    AccessLog,
    /// A mail server.
    Smtp,
    /// Prometheus's scrape targets.
    Prometheus,
    /// Celery workers and their queues.
    Celery,
    /// A systemd unit or timer.
    Systemd,
}

impl ProbeKind {
    /// The stable kebab-case name, also the prefix of probe names (`http:api`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Engine => "engine",
            Self::Container => "container",
            Self::Http => "http",
            Self::Postgres => "postgres",
            Self::Redis => "redis",
            Self::Queue => "queue",
            Self::Host => "host",
            Self::Logs => "logs",
            Self::Dns => "dns",
            Self::Alertmanager => "alertmanager",
            Self::StatusPage => "status-page",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Backup => "backup",
            Self::Sql => "sql",
            Self::Exec => "exec",
            Self::LogPattern => "log-pattern",
            Self::AccessLog => "access-log",
            Self::Smtp => "smtp",
            Self::Prometheus => "prometheus",
            Self::Celery => "celery",
            Self::Systemd => "systemd",
        }
    }
}

impl std::fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Unit of an [`Observation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    /// Seconds.
    Seconds,
    /// Milliseconds.
    Milliseconds,
    /// Bytes.
    Bytes,
    /// Percent, 0–100.
    Percent,
    /// A plain count.
    Count,
    /// Days.
    Days,
    /// A ratio or load average without unit.
    Ratio,
}

impl Unit {
    /// The suffix of a value in this unit (`ms`, `%`; nothing for counts).
    #[must_use]
    pub const fn suffix(self) -> &'static str {
        match self {
            Self::Seconds => "s",
            Self::Milliseconds => "ms",
            Self::Bytes => "B",
            Self::Percent => "%",
            Self::Days => "d",
            Self::Count | Self::Ratio => "",
        }
    }
}

/// One measured value, with its unit (`ttfb` 412 ms, `disk_used` 71.3 %).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Observation {
    /// snake_case name (`ttfb`, `connections_used`, `hit_rate`); with `labels` it is unique.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: Unit,
    /// What the value is about when one report holds several (`{"mount": "/"}`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

impl Observation {
    /// An observation without labels.
    #[must_use]
    pub fn new(name: &str, value: f64, unit: Unit) -> Self {
        Self { name: name.to_owned(), value, unit, labels: std::collections::BTreeMap::new() }
    }

    /// Adds a label.
    #[must_use]
    pub fn label(mut self, key: &str, value: impl Into<String>) -> Self {
        self.labels.insert(key.to_owned(), value.into());
        self
    }
}

/// One problem a probe found: what it is, which runbook applies, and the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// The runbook that applies; triage derives the severity from it.
    pub runbook: Runbook,
    /// `warn` or `critical` (or `unknown` when the probe could not tell).
    pub status: Status,
    /// One line a person reads at 3 a.m.: `exited with code 137 (OOM killed) 4 min ago`.
    pub message: String,
    /// First diagnostic evidence: log lines, a response snippet, the alert's labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// Its own severity when its source gives one (an alert's `severity` label): triage takes
    /// it over the runbook's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<ops_core::Severity>,
}

impl Problem {
    /// A problem without evidence.
    #[must_use]
    pub fn new(runbook: Runbook, status: Status, message: impl Into<String>) -> Self {
        Self { runbook, status, message: message.into(), evidence: Vec::new(), severity: None }
    }

    /// A check's [`Finding`](ops_core::Finding) as a probe's problem, under the runbook that
    /// applies (the finding's subject is the probe's target).
    #[must_use]
    pub fn of(finding: &ops_core::Finding, runbook: Runbook) -> Self {
        Self::new(runbook, finding.status, finding.message.clone()).with_evidence(finding.evidence.iter().cloned())
    }

    /// Adds evidence lines.
    #[must_use]
    pub fn with_evidence(mut self, evidence: impl IntoIterator<Item = String>) -> Self {
        self.evidence.extend(evidence);
        self
    }
}

/// What a probe saw. Never carries a secret: targets are redacted (`postgres://app:***@db/app`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProbeReport {
    /// Unique within one triage run: `{kind}:{name}` (`http:api`, `container:shop-db-1`, `host`).
    pub name: String,
    /// What was probed.
    pub kind: ProbeKind,
    /// The redacted target (`https://example.com/health`, `127.0.0.1:6379`, `/`).
    pub target: String,
    /// Worst status of the problems; `ok` without problems.
    pub status: Status,
    /// How long the probe took, milliseconds.
    pub duration_ms: u64,
    /// One line: what a person sees first.
    pub message: String,
    /// Measured values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observations: Vec<Observation>,
    /// What is wrong, each with its runbook.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    /// Evidence that is not tied to one problem (the response snippet, the last log lines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// Configured `critical = true`, or a container listed in `probes.container.critical`:
    /// its failure is a P1.
    #[serde(default)]
    pub critical: bool,
    /// Names of the probes this one depends on (`postgres:main`), from config and Compose's
    /// `depends_on` labels; triage reports this probe's problems under a failing dependency.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Other names this probe answers to in `depends-on` (`container:db` for the Compose service
    /// `db` of container `shop-db-1`; `postgres:main` for the database's container).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Whether the protocol exchange succeeded, as blackbox_exporter's `probe_success` means
    /// it, whatever our verdict on latency or expiry: an HTTP response with an expected status
    /// and body, a TCP connection, a DNS answer as expected, a verified TLS handshake. `None`
    /// for checks that are not network probes (host, containers, databases, backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_ok: Option<bool>,
    /// For a container: the version it runs (image, image id, configuration hash), which
    /// triage records in the release ledger (`ops_core::releases`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ops_core::releases::Version>,
}

impl ProbeReport {
    /// An `ok` report with nothing observed yet; `message` is filled by [`finish`](Self::finish)
    /// when left empty.
    #[must_use]
    pub fn new(kind: ProbeKind, name: &str, target: impl Into<String>) -> Self {
        let name = if name.is_empty() { kind.as_str().to_owned() } else { format!("{}:{name}", kind.as_str()) };
        Self {
            name,
            kind,
            target: target.into(),
            status: Status::Ok,
            duration_ms: 0,
            message: String::new(),
            observations: Vec::new(),
            problems: Vec::new(),
            evidence: Vec::new(),
            critical: false,
            depends_on: Vec::new(),
            aliases: Vec::new(),
            exchange_ok: None,
            release: None,
        }
    }

    /// Records a measured value.
    pub fn observe(&mut self, observation: Observation) {
        self.observations.push(observation);
    }

    /// Records a problem.
    pub fn problem(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// The value of the first observation named `name`.
    #[must_use]
    pub fn observation(&self, name: &str) -> Option<f64> {
        self.observations.iter().find(|o| o.name == name).map(|o| o.value)
    }

    /// Sets the status from the problems, the duration, and the message (the worst problem's
    /// when none was set, else `ok`).
    #[must_use]
    pub fn finish(mut self, took: Duration) -> Self {
        self.status = self.problems.iter().map(|p| p.status).max().unwrap_or(Status::Ok);
        self.duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        if self.message.is_empty() {
            self.message = match self.problems.iter().max_by_key(|p| p.status) {
                Some(worst) => worst.message.clone(),
                None => "ok".to_owned(),
            };
        }
        self
    }

    /// The report of a probe that did not finish in time: `unknown`, runbook `probe-failed`.
    #[must_use]
    pub fn timed_out(kind: ProbeKind, name: &str, target: impl Into<String>, limit: Duration) -> Self {
        let mut report = Self::new(kind, name, target);
        report.problem(Problem::new(
            Runbook::ProbeFailed,
            Status::Unknown,
            format!("no answer within {:.1} s", limit.as_secs_f64()),
        ));
        report.finish(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_takes_the_worst_problem() {
        let mut r = ProbeReport::new(ProbeKind::Redis, "main", "127.0.0.1:6379");
        r.problem(Problem::new(Runbook::CacheDegraded, Status::Warn, "hit rate 65 %"));
        r.problem(Problem::new(Runbook::CacheFull, Status::Critical, "writes will be rejected"));
        let r = r.finish(Duration::from_millis(12));
        assert_eq!(r.name, "redis:main");
        assert_eq!(r.status, Status::Critical);
        assert_eq!(r.message, "writes will be rejected");
        assert_eq!(r.duration_ms, 12);
    }

    #[test]
    fn no_problem_is_ok() {
        let r = ProbeReport::new(ProbeKind::Host, "", "localhost").finish(Duration::ZERO);
        assert_eq!((r.name.as_str(), r.status, r.message.as_str()), ("host", Status::Ok, "ok"));
        let t = ProbeReport::timed_out(ProbeKind::Tcp, "db", "db:5432", Duration::from_secs(3));
        assert_eq!(t.status, Status::Unknown);
        assert_eq!(t.problems[0].runbook, Runbook::ProbeFailed);
    }
}
