//! `opsctl alerts rules` checked by the real `promtool` (Debian's `prometheus` package):
//! `promtool check rules`, and `promtool test rules` with input series under which each alert
//! fires and, beside them, series under which it does not.

use std::collections::BTreeMap;

use crate::harness;

fn opsctl_rules() -> String {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = ops_cli::run(["opsctl", "alerts", "rules"], &BTreeMap::new(), &mut out, &mut err);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    String::from_utf8(out).unwrap()
}

/// One promtool test: input series (firing and quiet), the time to look, the alert, and the
/// labels and summary of each alert expected (only the firing series').
struct Case {
    alert: &'static str,
    series: &'static [(&'static str, &'static str)],
    eval: &'static str,
    expected: &'static [(&'static str, &'static str)],
}

/// Each alert's labels: the series' own plus severity and priority, and its annotations.
fn expected_alert(labels: &str, summary: &str, rule: &ops_runbook::alert_rules::AlertRule) -> String {
    format!(
        "          - exp_labels: {{{labels}, severity: {}, priority: {}}}\n            exp_annotations: {{summary: {}, runbook: {}}}\n",
        rule.severity,
        rule.priority,
        serde_json::to_string(summary).unwrap(),
        serde_json::to_string(rule.runbook).unwrap()
    )
}

const CASES: &[Case] = &[
    Case {
        alert: "ServiceDown",
        series: &[
            (r#"ops_probe_status{probe="container:web", kind="container", target="web"}"#, "2x10"),
            (r#"ops_probe_status{probe="container:db", kind="container", target="db"}"#, "1x10"),
        ],
        eval: "5m",
        expected: &[(r#"probe: "container:web", kind: container, target: web, service: web"#, "web is down")],
    },
    Case {
        alert: "IndexerLag",
        series: &[
            (r#"ops_probe_status{probe="http:indexer", kind="http", target="http://indexer/health"}"#, "1x10"),
            (r#"ops_probe_status{probe="http:api", kind="http", target="http://api/health"}"#, "2x10"),
            (r#"ops_probe_status{probe="queue:indexer", kind="queue", target="redis"}"#, "3x10"),
        ],
        eval: "10m",
        expected: &[(
            r#"probe: "http:indexer", kind: http, target: "http://indexer/health""#,
            "the indexer (http:indexer) has been failing or lagging for 5 minutes",
        )],
    },
    Case {
        alert: "TLSCertExpiringSoon",
        series: &[
            (r#"ops_tls_cert_expiry_timestamp_seconds{probe="tls:api", kind="tls", target="api:443"}"#, "864000x20"),
            (r#"ops_tls_cert_expiry_timestamp_seconds{probe="tls:www", kind="tls", target="www:443"}"#, "2592000x20"),
        ],
        eval: "15m",
        expected: &[(
            r#"probe: "tls:api", kind: tls, target: "api:443""#,
            "the certificate of api:443 expires in less than 14 days",
        )],
    },
    Case {
        alert: "DBQueryLatency",
        series: &[
            (
                r#"ops_probe_value{probe="postgres:main", kind="postgres", target="db", name="latency_seconds", detail=""}"#,
                "0.08x10",
            ),
            (
                r#"ops_probe_value{probe="postgres:ro", kind="postgres", target="ro", name="latency_seconds", detail=""}"#,
                "0.01x10",
            ),
        ],
        eval: "7m",
        expected: &[(
            // An empty label is no label.
            r#"probe: "postgres:main", kind: postgres, target: db, name: latency_seconds"#,
            "postgres:main answers in more than 50 ms",
        )],
    },
    Case {
        alert: "RedisHitRate",
        series: &[
            (
                r#"ops_probe_value{probe="redis:main", kind="redis", target="r", name="hit_rate_ratio", detail=""}"#,
                "0.4x20",
            ),
            (
                r#"ops_probe_value{probe="redis:jobs", kind="redis", target="j", name="hit_rate_ratio", detail=""}"#,
                "0.9x20",
            ),
        ],
        eval: "15m",
        expected: &[(
            r#"probe: "redis:main", kind: redis, target: r, name: hit_rate_ratio"#,
            "redis:main hit rate is under 60 %",
        )],
    },
    Case {
        alert: "BackupFailed",
        series: &[
            (r#"ops_backup_success{database="main"}"#, "0x5"),
            (r#"ops_backup_success{database="other"}"#, "1x5"),
        ],
        eval: "2m",
        expected: &[("database: main", "the last backup of main failed")],
    },
    Case {
        alert: "DiskUsage",
        series: &[
            (
                r#"ops_probe_value{probe="host", kind="host", target="/", name="disk_used_ratio", detail="mount=/"}"#,
                "0.9x10",
            ),
            (
                r#"ops_probe_value{probe="host", kind="host", target="/", name="disk_used_ratio", detail="mount=/data"}"#,
                "0.5x10",
            ),
        ],
        eval: "7m",
        expected: &[(
            r#"probe: host, kind: host, target: "/", name: disk_used_ratio, detail: "mount=/""#,
            "disk mount=/ is over 85 % full",
        )],
    },
    Case {
        alert: "BackupStale",
        series: &[
            (r#"ops_backup_age_seconds{database="main"}"#, "100000x20"),
            (r#"ops_backup_age_seconds{database="other"}"#, "3600x20"),
        ],
        eval: "15m",
        expected: &[("database: main", "the newest backup of main is over 26 hours old")],
    },
    Case {
        alert: "EndpointDown",
        series: &[
            (r#"probe_success{probe="http:api", kind="http", target="http://api/"}"#, "0x5"),
            (r#"probe_success{probe="http:web", kind="http", target="http://web/"}"#, "1x5"),
            (r#"probe_success{probe="tls:api", kind="tls", target="api:443"}"#, "1x5"),
        ],
        eval: "4m",
        expected: &[(
            r#"probe: "http:api", kind: http, target: "http://api/""#,
            "http://api/ does not answer (http:api)",
        )],
    },
    Case {
        alert: "SSLCertExpired",
        series: &[
            (r#"probe_success{probe="tls:api", kind="tls", target="api:443"}"#, "0x5"),
            (r#"probe_success{probe="tls:www", kind="tls", target="www:443"}"#, "1x5"),
        ],
        eval: "4m",
        expected: &[(
            r#"probe: "tls:api", kind: tls, target: "api:443""#,
            "the TLS handshake with api:443 fails (expired, untrusted or wrong name)",
        )],
    },
    Case {
        alert: "BackupJobFailed",
        series: &[
            // Two replicas export the shared ledger: one alert.
            (
                r#"ops_job_last_run_timestamp_seconds{job="backup-main", kind="backup", result="failure", instance="a"}"#,
                "200x5",
            ),
            (
                r#"ops_job_last_run_timestamp_seconds{job="backup-main", kind="backup", result="failure", instance="b"}"#,
                "200x5",
            ),
            (r#"ops_job_last_success_timestamp_seconds{job="backup-main", kind="backup", instance="a"}"#, "100x5"),
            (r#"ops_job_last_success_timestamp_seconds{job="backup-main", kind="backup", instance="b"}"#, "100x5"),
            (r#"ops_job_last_run_timestamp_seconds{job="recovered", kind="backup", result="failure"}"#, "100x5"),
            (r#"ops_job_last_success_timestamp_seconds{job="recovered", kind="backup"}"#, "200x5"),
            (r#"ops_job_last_run_timestamp_seconds{job="never-ok", kind="dr-test", result="failure"}"#, "100x5"),
            // Not a backup job: a failed performance report is not a backup problem.
            (r#"ops_job_last_run_timestamp_seconds{job="weekly-perf", kind="perf", result="failure"}"#, "100x5"),
        ],
        eval: "2m",
        expected: &[
            (
                "job: backup-main, kind: backup, result: failure",
                "the newest run of scheduled job backup-main (backup) failed",
            ),
            (
                "job: never-ok, kind: dr-test, result: failure",
                "the newest run of scheduled job never-ok (dr-test) failed",
            ),
        ],
    },
    Case {
        alert: "ScheduledJobMissed",
        series: &[
            (r#"ops_job_missed_total{job="backup-main", kind="backup"}"#, "0 0 1 1 1 1"),
            (r#"ops_job_missed_total{job="tls", kind="tls-renew"}"#, "0x5"),
        ],
        eval: "4m",
        expected: &[(
            "job: backup-main, kind: backup",
            "scheduled job backup-main missed runs: ops-server was down or late",
        )],
    },
];

#[test]
fn the_generated_rules_pass_promtool_check_and_test() {
    let rules = opsctl_rules();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), &rules).unwrap();
    let path = dir.path().join("rules.yml").display().to_string();
    let (code, out) = harness::promtool(&["check", "rules", &path], "");
    assert_eq!(code, 0, "{out}\n{rules}");
    assert!(out.contains(&format!("{} rules found", ops_runbook::alert_rules::rules().len())), "{out}");

    let all = ops_runbook::alert_rules::rules();
    let mut tests = String::from("rule_files:\n  - rules.yml\nevaluation_interval: 1m\ntests:\n");
    for case in CASES {
        let rule = all.iter().find(|r| r.alert == case.alert).unwrap();
        tests.push_str("  - interval: 1m\n    input_series:\n");
        for (series, values) in case.series {
            tests.push_str(&format!(
                "      - series: {}\n        values: {}\n",
                serde_json::to_string(series).unwrap(),
                serde_json::to_string(values).unwrap()
            ));
        }
        tests.push_str(&format!(
            "    alert_rule_test:\n      - eval_time: {}\n        alertname: {}\n        exp_alerts:\n",
            case.eval, case.alert
        ));
        for (labels, summary) in case.expected {
            tests.push_str(&expected_alert(labels, summary, rule));
        }
        // Before its `for` has passed, nothing fires yet.
        if rule.for_ != "0m" {
            tests.push_str(&format!(
                "      - eval_time: 0m\n        alertname: {}\n        exp_alerts: []\n",
                case.alert
            ));
        }
    }
    // Every rule has its case.
    for rule in &all {
        assert!(CASES.iter().any(|c| c.alert == rule.alert), "no promtool test for {}", rule.alert);
    }
    std::fs::write(dir.path().join("tests.yml"), &tests).unwrap();
    let test_path = dir.path().join("tests.yml").display().to_string();
    let (code, out) = harness::promtool(&["test", "rules", &test_path], "");
    assert_eq!(code, 0, "{out}\n{tests}");
    assert!(out.contains("SUCCESS"), "{out}");
}
