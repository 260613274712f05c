//! Severity rules: a problem's runbook and status, and whether its check is critical, give its
//! P1–P4, with the runbooks' defaults and `[triage.severity]` overrides.

use std::collections::BTreeMap;

use ops_core::{Runbook, Severity, Status};

use crate::Problem;

/// Runbooks whose critical problem means "this check failed" (not merely degraded). A failure
/// of a check marked `critical = true` is a P1 whatever the rule says.
const FAILURES: [Runbook; 19] = [
    Runbook::DockerDown,
    Runbook::ContainerDown,
    Runbook::CrashLoop,
    Runbook::OomKilled,
    Runbook::ContainerUnhealthy,
    Runbook::ApiDown,
    Runbook::DatabaseDown,
    Runbook::CacheDown,
    Runbook::DnsFailure,
    Runbook::PortClosed,
    Runbook::TlsExpiring,
    Runbook::TlsInvalid,
    Runbook::DataStale,
    Runbook::CommandFailed,
    Runbook::ConfigError,
    Runbook::EmailFailing,
    Runbook::TargetsDown,
    Runbook::WorkersDown,
    Runbook::UnitFailed,
];

/// The default severity of a problem: the runbooks' escalation matrix.
///
/// - P1, complete outage or data at risk: the engine down, the database not accepting
///   connections, a critical check failing.
/// - P2, major feature broken: a container down or crash-looping (a worker, the indexer), an
///   endpoint down, TLS expired or under 14 days, the newest backup failed or over 24 h old,
///   disk over 85 %, memory critical, Redis rejecting writes, upstream or Alertmanager critical.
/// - P3, degraded: latency over threshold, Redis down or hit rate under 60 %, high connection
///   use, disk over 70 %, queues growing.
/// - P4, minor: the warn levels of the P3 rules, a probe that could not tell.
#[must_use]
pub fn default_severity(runbook: Runbook, status: Status) -> Severity {
    use Runbook as R;
    use Severity::{P1, P2, P3, P4};
    let critical = status == Status::Critical;
    match runbook {
        R::DockerDown | R::DatabaseDown => P1,
        R::ContainerDown | R::CrashLoop | R::OomKilled | R::ContainerUnhealthy => {
            if critical {
                P2
            } else {
                P3
            }
        }
        R::ApiDown | R::DnsFailure | R::PortClosed | R::TlsInvalid | R::CacheFull => P2,
        R::TlsExpiring | R::BackupStale | R::DiskFull | R::MemoryPressure | R::AlertFiring | R::UpstreamIncident => {
            if critical {
                P2
            } else if matches!(runbook, R::TlsExpiring) {
                P4
            } else {
                P3
            }
        }
        R::CacheDown | R::ConnectionsExhausted => P3,
        R::SlowResponses | R::SlowQueries | R::CacheDegraded | R::QueueBacklog | R::HighLoad | R::LogErrors => {
            if critical {
                P3
            } else {
                P4
            }
        }
        R::ProbeFailed => P4,
        // The runbooks: an indexer behind (IndexerLag) and stuck payments are a feature
        // broken; a broken proxy configuration or a missing variable takes its service down at
        // the next restart; a reconnect storm and email delivery are amn.gg's Sev 2; workers
        // offline, a failed unit (Caddy, the runner) and scrape targets down break a feature.
        R::DataStale
        | R::CommandFailed
        | R::ConfigError
        | R::LogBurst
        | R::EmailFailing
        | R::TargetsDown
        | R::WorkersDown
        | R::UnitFailed => {
            if critical {
                P2
            } else {
                P3
            }
        }
        R::SuspiciousTraffic => {
            if critical {
                P3
            } else {
                P4
            }
        }
    }
}

/// The severity of one problem of a check: the override for its runbook when configured, else
/// the default; a failure of a `critical = true` check is always a P1.
#[must_use]
pub fn severity(problem: &Problem, check_is_critical: bool, overrides: &BTreeMap<Runbook, Severity>) -> Severity {
    let failed = problem.status == Status::Critical && FAILURES.contains(&problem.runbook)
        || problem.status == Status::Unknown && problem.runbook == Runbook::ProbeFailed;
    if check_is_critical && failed {
        return Severity::P1;
    }
    if let Some(own) = problem.severity {
        return own;
    }
    overrides.get(&problem.runbook).copied().unwrap_or_else(|| default_severity(problem.runbook, problem.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(runbook: Runbook, status: Status) -> Problem {
        Problem::new(runbook, status, "x")
    }

    #[test]
    fn the_runbooks_matrix() {
        let none = BTreeMap::new();
        let sev = |r, s, crit| severity(&p(r, s), crit, &none);
        // P1: database down, a critical endpoint or container failing.
        assert_eq!(sev(Runbook::DatabaseDown, Status::Critical, false), Severity::P1);
        assert_eq!(sev(Runbook::ApiDown, Status::Critical, true), Severity::P1);
        assert_eq!(sev(Runbook::CrashLoop, Status::Critical, true), Severity::P1);
        // P2: a worker stopped, TLS under 14 days, stale backup, disk over 85 %.
        assert_eq!(sev(Runbook::ContainerDown, Status::Critical, false), Severity::P2);
        assert_eq!(sev(Runbook::TlsExpiring, Status::Critical, false), Severity::P2);
        assert_eq!(sev(Runbook::BackupStale, Status::Critical, false), Severity::P2);
        assert_eq!(sev(Runbook::DiskFull, Status::Critical, false), Severity::P2);
        assert_eq!(sev(Runbook::ApiDown, Status::Critical, false), Severity::P2);
        // P3: latency, Redis down, hit rate under 60 %, connections.
        assert_eq!(sev(Runbook::SlowResponses, Status::Critical, true), Severity::P3, "slow is not failed");
        assert_eq!(sev(Runbook::CacheDown, Status::Critical, false), Severity::P3);
        assert_eq!(sev(Runbook::CacheDegraded, Status::Critical, false), Severity::P3);
        assert_eq!(sev(Runbook::ConnectionsExhausted, Status::Warn, false), Severity::P3);
        assert_eq!(sev(Runbook::DiskFull, Status::Warn, false), Severity::P3);
        // P4: warn levels and probes that could not tell.
        assert_eq!(sev(Runbook::TlsExpiring, Status::Warn, true), Severity::P4);
        assert_eq!(sev(Runbook::SlowResponses, Status::Warn, false), Severity::P4);
        assert_eq!(sev(Runbook::ProbeFailed, Status::Unknown, false), Severity::P4);
        // ...unless the check that could not tell is critical.
        assert_eq!(sev(Runbook::ProbeFailed, Status::Unknown, true), Severity::P1);
        // The checks the runbooks ran by hand: a feature broken at their critical level (the
        // indexer behind, email, workers, a unit), degraded at their warn level; a failing
        // check marked critical is an outage; one client's share of the traffic pages no one.
        for rb in [
            Runbook::DataStale,
            Runbook::CommandFailed,
            Runbook::ConfigError,
            Runbook::LogBurst,
            Runbook::EmailFailing,
            Runbook::TargetsDown,
            Runbook::WorkersDown,
            Runbook::UnitFailed,
        ] {
            assert_eq!(sev(rb, Status::Critical, false), Severity::P2, "{rb}");
            assert_eq!(sev(rb, Status::Warn, false), Severity::P3, "{rb}");
        }
        assert_eq!(sev(Runbook::EmailFailing, Status::Critical, true), Severity::P1);
        assert_eq!(sev(Runbook::SuspiciousTraffic, Status::Critical, false), Severity::P3);
        assert_eq!(sev(Runbook::SuspiciousTraffic, Status::Warn, false), Severity::P4);
    }

    #[test]
    fn overrides_replace_the_rule_but_not_the_critical_flag() {
        let overrides = BTreeMap::from([(Runbook::CacheDown, Severity::P2), (Runbook::ApiDown, Severity::P3)]);
        assert_eq!(severity(&p(Runbook::CacheDown, Status::Critical), false, &overrides), Severity::P2);
        assert_eq!(severity(&p(Runbook::ApiDown, Status::Critical), false, &overrides), Severity::P3);
        assert_eq!(severity(&p(Runbook::ApiDown, Status::Critical), true, &overrides), Severity::P1);
    }
}
