//! Shared vocabulary of every capability: [`Status`], [`Severity`], [`Finding`], [`Runbook`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// The outcome of a check. Ordered from best to worst, so `max()` gives the overall status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works as expected.
    Ok,
    /// The check could not tell (for example: the target did not answer the question asked).
    Unknown,
    /// Works, but a threshold is crossed; act soon.
    Warn,
    /// Broken, or about to be; act now.
    Critical,
}

impl Status {
    /// A fixed-width mark for tables and reports: `ok`, `WARN`, `CRIT`, `UNKN`.
    #[must_use]
    pub const fn mark(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "WARN",
            Self::Critical => "CRIT",
            Self::Unknown => "UNKN",
        }
    }

    /// A stable lowercase name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unknown => "unknown",
            Self::Warn => "warn",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Incident severity, as the runbooks classify it. `P1` is the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Severity {
    /// Complete outage or data at risk: respond within 15 minutes.
    P1,
    /// Major feature broken: respond within 1 hour.
    P2,
    /// Degraded: respond within 4 hours.
    P3,
    /// Minor, workaround exists: next business day.
    P4,
}

impl Severity {
    /// One level more urgent (`P2` → `P1`); `P1` stays `P1`.
    #[must_use]
    pub const fn escalated(self) -> Self {
        match self {
            Self::P1 | Self::P2 => Self::P1,
            Self::P3 => Self::P2,
            Self::P4 => Self::P3,
        }
    }

    /// The response time in seconds (P4, "next business day", counts as a day).
    #[must_use]
    pub const fn response_secs(self) -> i64 {
        match self {
            Self::P1 => 15 * 60,
            Self::P2 => 3600,
            Self::P3 => 4 * 3600,
            Self::P4 => 24 * 3600,
        }
    }

    /// The response time the runbooks attach to this severity.
    #[must_use]
    pub const fn response_time(self) -> &'static str {
        match self {
            Self::P1 => "15 minutes",
            Self::P2 => "1 hour",
            Self::P3 => "4 hours",
            Self::P4 => "next business day",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::P1 => "P1",
            Self::P2 => "P2",
            Self::P3 => "P3",
            Self::P4 => "P4",
        })
    }
}

/// The runbook that applies to a problem: what probes classify their problems by, what triage
/// turns into a severity, and what `[triage.severity]` keys name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Runbook {
    /// The container engine does not answer.
    DockerDown,
    /// A container is not running (exited, dead, paused).
    ContainerDown,
    /// A container restarts over and over.
    CrashLoop,
    /// A container was killed for using more memory than it may.
    OomKilled,
    /// A container's own healthcheck fails.
    ContainerUnhealthy,
    /// An HTTP endpoint does not answer, or answers wrongly.
    ApiDown,
    /// Responses are slower than the latency thresholds.
    SlowResponses,
    /// PostgreSQL does not accept connections.
    DatabaseDown,
    /// PostgreSQL connections near `max_connections`.
    ConnectionsExhausted,
    /// Long-running queries or sessions idle in a transaction.
    SlowQueries,
    /// Redis does not answer or refuses our credentials.
    CacheDown,
    /// Redis is full and evicts nothing: writes are rejected.
    CacheFull,
    /// Redis hit rate low or keys evicted.
    CacheDegraded,
    /// A queue grows: workers are missing or slow.
    QueueBacklog,
    /// A filesystem is filling up.
    DiskFull,
    /// The host or a container is short of memory.
    MemoryPressure,
    /// Load over what the cores can take.
    HighLoad,
    /// Error lines in container logs.
    LogErrors,
    /// A name does not resolve, or not to the expected addresses.
    DnsFailure,
    /// A port does not accept connections.
    PortClosed,
    /// A certificate expires soon or has expired.
    TlsExpiring,
    /// A certificate chain does not verify or does not cover the name.
    TlsInvalid,
    /// Alertmanager has firing alerts.
    AlertFiring,
    /// An upstream provider reports an incident.
    UpstreamIncident,
    /// The newest backup is old, failed, or missing.
    BackupStale,
    /// A probe could not tell (timed out, unusable answer).
    ProbeFailed,
    /// A data check's value is past its threshold: the indexer behind, payments stuck.
    DataStale,
    /// A check command in a container failed (`nginx -t`, `caddy validate`).
    CommandFailed,
    /// A container lacks configuration it needs (a required environment variable).
    ConfigError,
    /// A log line bursts (reconnect storms, rate-limit lines).
    LogBurst,
    /// One client sends an outsized share of the requests.
    SuspiciousTraffic,
    /// Mail cannot be sent: the server refuses, its TLS fails, or our login is refused.
    EmailFailing,
    /// Prometheus scrape targets are down.
    TargetsDown,
    /// Background workers (Celery) are offline or their queue grows.
    WorkersDown,
    /// A systemd unit failed, restarts, or is not running.
    UnitFailed,
}

impl Runbook {
    /// Every runbook, in declaration order.
    pub const ALL: [Self; 35] = [
        Self::DockerDown,
        Self::ContainerDown,
        Self::CrashLoop,
        Self::OomKilled,
        Self::ContainerUnhealthy,
        Self::ApiDown,
        Self::SlowResponses,
        Self::DatabaseDown,
        Self::ConnectionsExhausted,
        Self::SlowQueries,
        Self::CacheDown,
        Self::CacheFull,
        Self::CacheDegraded,
        Self::QueueBacklog,
        Self::DiskFull,
        Self::MemoryPressure,
        Self::HighLoad,
        Self::LogErrors,
        Self::DnsFailure,
        Self::PortClosed,
        Self::TlsExpiring,
        Self::TlsInvalid,
        Self::AlertFiring,
        Self::UpstreamIncident,
        Self::BackupStale,
        Self::ProbeFailed,
        Self::DataStale,
        Self::CommandFailed,
        Self::ConfigError,
        Self::LogBurst,
        Self::SuspiciousTraffic,
        Self::EmailFailing,
        Self::TargetsDown,
        Self::WorkersDown,
        Self::UnitFailed,
    ];

    /// The stable kebab-case name (`database-down`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DockerDown => "docker-down",
            Self::ContainerDown => "container-down",
            Self::CrashLoop => "crash-loop",
            Self::OomKilled => "oom-killed",
            Self::ContainerUnhealthy => "container-unhealthy",
            Self::ApiDown => "api-down",
            Self::SlowResponses => "slow-responses",
            Self::DatabaseDown => "database-down",
            Self::ConnectionsExhausted => "connections-exhausted",
            Self::SlowQueries => "slow-queries",
            Self::CacheDown => "cache-down",
            Self::CacheFull => "cache-full",
            Self::CacheDegraded => "cache-degraded",
            Self::QueueBacklog => "queue-backlog",
            Self::DiskFull => "disk-full",
            Self::MemoryPressure => "memory-pressure",
            Self::HighLoad => "high-load",
            Self::LogErrors => "log-errors",
            Self::DnsFailure => "dns-failure",
            Self::PortClosed => "port-closed",
            Self::TlsExpiring => "tls-expiring",
            Self::TlsInvalid => "tls-invalid",
            Self::AlertFiring => "alert-firing",
            Self::UpstreamIncident => "upstream-incident",
            Self::BackupStale => "backup-stale",
            Self::ProbeFailed => "probe-failed",
            Self::DataStale => "data-stale",
            Self::CommandFailed => "command-failed",
            Self::ConfigError => "config-error",
            Self::LogBurst => "log-burst",
            Self::SuspiciousTraffic => "suspicious-traffic",
            Self::EmailFailing => "email-failing",
            Self::TargetsDown => "targets-down",
            Self::WorkersDown => "workers-down",
            Self::UnitFailed => "unit-failed",
        }
    }
}

impl fmt::Display for Runbook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing a check found, with the evidence a person needs to believe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Finding {
    /// What the finding is about (`container:api`, `database:main`).
    pub subject: String,
    /// How bad it is.
    pub status: Status,
    /// One line a person can read.
    pub message: String,
    /// Raw evidence: log lines, response snippets, command output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_status_wins() {
        let all = [Status::Ok, Status::Critical, Status::Warn, Status::Unknown];
        assert_eq!(all.iter().max(), Some(&Status::Critical));
        assert!(Status::Warn > Status::Unknown);
    }

    #[test]
    fn runbook_names_are_the_serde_names() {
        for rb in Runbook::ALL {
            assert_eq!(serde_json::to_value(rb).unwrap(), serde_json::Value::String(rb.as_str().to_owned()));
        }
    }

    #[test]
    fn p1_is_most_urgent() {
        assert!(Severity::P1 < Severity::P4);
        assert_eq!(Severity::P1.response_time(), "15 minutes");
        assert_eq!(Severity::P2.escalated(), Severity::P1);
        assert_eq!(Severity::P1.escalated(), Severity::P1);
        assert_eq!(Severity::P4.escalated(), Severity::P3);
    }
}
