//! A Prometheus rule file for the runbooks' alert table (ServiceDown P1, IndexerLag P2,
//! TLSCertExpiringSoon under 14 days P2, DBQueryLatency over 50 ms P3, RedisHitRate under
//! 60 % P3, BackupFailed P2, DiskUsage over 85 % P2) and for what this project knows (probe
//! failures, backups stale, backup jobs failed, scheduled jobs missed), written against the
//! metrics `ops-server` exports and nothing else (scraped with `honor_labels: true`, so the
//! scheduled-job series keep their `job`). Each rule has a severity, a priority, a summary and
//! a `runbook` annotation naming the built-in runbook that handles it, so Alertmanager's
//! webhook to ops-server acts on it (`opsctl alerts rules`).

/// One alerting rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    /// The alert's name (the runbooks' where they name it).
    pub alert: &'static str,
    /// The PromQL expression.
    pub expr: &'static str,
    /// How long it must hold.
    pub for_: &'static str,
    /// `critical` (pages) or `warning`.
    pub severity: &'static str,
    /// The runbooks' priority (`P1` … `P4`).
    pub priority: &'static str,
    /// One line, with `{{ $labels.… }}` templates.
    pub summary: &'static str,
    /// The built-in runbook that handles it.
    pub runbook: &'static str,
}

/// The rules, in the order of the runbooks' table, then ours.
#[must_use]
pub fn rules() -> Vec<AlertRule> {
    vec![
        AlertRule {
            alert: "ServiceDown",
            expr: r#"label_replace(ops_probe_status{kind="container"} == 2, "service", "$1", "probe", "container:(.+)")"#,
            for_: "1m",
            severity: "critical",
            priority: "P1",
            summary: "{{ $labels.service }} is down",
            runbook: "container-down",
        },
        AlertRule {
            alert: "IndexerLag",
            // Warn (1) or critical (2); unknown (3) is a check that could not run, not lag.
            expr: r#"ops_probe_status{probe=~"(container|http|queue):.*indexer.*"} >= 1 < 3"#,
            for_: "5m",
            severity: "critical",
            priority: "P2",
            summary: "the indexer ({{ $labels.probe }}) has been failing or lagging for 5 minutes",
            runbook: "indexer-down",
        },
        AlertRule {
            alert: "TLSCertExpiringSoon",
            expr: "ops_tls_cert_expiry_timestamp_seconds - time() < 14 * 86400",
            for_: "10m",
            severity: "critical",
            priority: "P2",
            summary: "the certificate of {{ $labels.target }} expires in less than 14 days",
            runbook: "tls-expiring",
        },
        AlertRule {
            alert: "DBQueryLatency",
            expr: r#"ops_probe_value{kind="postgres",name="latency_seconds"} > 0.05"#,
            for_: "5m",
            severity: "warning",
            priority: "P3",
            summary: "{{ $labels.probe }} answers in more than 50 ms",
            runbook: "slow-queries",
        },
        AlertRule {
            alert: "RedisHitRate",
            expr: r#"ops_probe_value{kind="redis",name="hit_rate_ratio"} < 0.6"#,
            for_: "10m",
            severity: "warning",
            priority: "P3",
            summary: "{{ $labels.probe }} hit rate is under 60 %",
            runbook: "cache-degraded",
        },
        AlertRule {
            alert: "BackupFailed",
            expr: "ops_backup_success == 0",
            for_: "0m",
            severity: "critical",
            priority: "P2",
            summary: "the last backup of {{ $labels.database }} failed",
            runbook: "backup-stale",
        },
        AlertRule {
            alert: "DiskUsage",
            expr: r#"ops_probe_value{kind="host",name="disk_used_ratio"} > 0.85"#,
            for_: "5m",
            severity: "critical",
            priority: "P2",
            summary: "disk {{ $labels.detail }} is over 85 % full",
            runbook: "disk-full",
        },
        AlertRule {
            alert: "BackupStale",
            expr: "ops_backup_age_seconds > 26 * 3600",
            for_: "10m",
            severity: "critical",
            priority: "P2",
            summary: "the newest backup of {{ $labels.database }} is over 26 hours old",
            runbook: "backup-stale",
        },
        AlertRule {
            alert: "EndpointDown",
            expr: r#"probe_success{kind=~"http|tcp"} == 0"#,
            for_: "2m",
            severity: "critical",
            priority: "P2",
            summary: "{{ $labels.target }} does not answer ({{ $labels.probe }})",
            runbook: "api-down",
        },
        AlertRule {
            alert: "SSLCertExpired",
            expr: r#"probe_success{kind="tls"} == 0"#,
            for_: "2m",
            severity: "critical",
            priority: "P2",
            summary: "the TLS handshake with {{ $labels.target }} fails (expired, untrusted or wrong name)",
            runbook: "tls-expiring",
        },
        AlertRule {
            alert: "BackupJobFailed",
            // The jobs that back up, check or prune backups; `job` as kept by `honor_labels`.
            // Taken `max by` job, so several replicas (each exporting the shared ledger) make
            // one alert, never a "many-to-many" error.
            expr: r#"max by (job, kind, result) (ops_job_last_run_timestamp_seconds{kind=~"backup|dr-test|verify|prune",result="failure"}) > on(job) group_left max by (job) (ops_job_last_success_timestamp_seconds) or on(job) (max by (job, kind, result) (ops_job_last_run_timestamp_seconds{kind=~"backup|dr-test|verify|prune",result="failure"}) unless on(job) ops_job_last_success_timestamp_seconds)"#,
            for_: "0m",
            severity: "critical",
            priority: "P2",
            summary: "the newest run of scheduled job {{ $labels.job }} ({{ $labels.kind }}) failed",
            runbook: "backup-stale",
        },
        AlertRule {
            alert: "ScheduledJobMissed",
            expr: "increase(ops_job_missed_total[1h]) > 0",
            for_: "0m",
            severity: "warning",
            priority: "P3",
            summary: "scheduled job {{ $labels.job }} missed runs: ops-server was down or late",
            runbook: "container-down",
        },
    ]
}

/// A YAML string: a JSON string is one.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The rule file (Prometheus `rule_files` format), `group` as its group's name.
#[must_use]
pub fn rule_file(group: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "# Generated by `opsctl alerts rules`: alerts on the metrics ops-server exports.\n\
         # Scrape ops-server with `honor_labels: true`: the scheduled-job series' `job` label is\n\
         # the entry's name, which these rules read.\n",
    );
    let _ = writeln!(out, "groups:\n  - name: {}\n    rules:", q(group));
    for r in rules() {
        let _ = writeln!(out, "      - alert: {}", r.alert);
        let _ = writeln!(out, "        expr: {}", q(r.expr));
        if r.for_ != "0m" {
            let _ = writeln!(out, "        for: {}", r.for_);
        }
        let _ =
            writeln!(out, "        labels:\n          severity: {}\n          priority: {}", r.severity, r.priority);
        let _ = writeln!(
            out,
            "        annotations:\n          summary: {}\n          runbook: {}",
            q(r.summary),
            q(r.runbook)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_names_a_built_in_runbook_that_applies() {
        let catalog = crate::Catalog::built_in().unwrap();
        for r in rules() {
            assert!(catalog.get(r.runbook).is_ok(), "{}: no runbook {}", r.alert, r.runbook);
        }
        let names: Vec<&str> = rules().iter().map(|r| r.alert).collect();
        for seed in [
            "ServiceDown",
            "IndexerLag",
            "TLSCertExpiringSoon",
            "DBQueryLatency",
            "RedisHitRate",
            "BackupFailed",
            "DiskUsage",
        ] {
            assert!(names.contains(&seed), "{seed}");
        }
        let file = rule_file("ops");
        assert!(file.contains("runbook: \"container-down\""), "{file}");
    }
}
