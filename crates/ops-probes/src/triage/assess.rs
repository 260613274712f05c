//! From probe reports to incidents: a severity for every problem, problems caused by another
//! failing check filed under that cause, and the whole ordered most urgent first. Pure, so the
//! rules are tested without any service.

use std::collections::BTreeMap;

use ops_core::config::OpsConfig;
use ops_core::{Runbook, Severity, Status};
use serde::{Deserialize, Serialize};

use super::rules;
use crate::{ProbeKind, ProbeReport};

/// One thing to act on: a failing check, its runbook, and what it breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = TriageIncident))]
pub struct Incident {
    /// The most urgent severity of the cause and its consequences.
    pub severity: Severity,
    /// The runbooks' response time for that severity.
    pub response_time: String,
    /// The runbook that applies to the cause.
    pub runbook: Runbook,
    /// The failing check (`postgres:main`).
    pub check: String,
    /// What it probed (redacted).
    pub target: String,
    /// The cause's status.
    pub status: Status,
    /// The cause in one line.
    pub message: String,
    /// First diagnostic evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// Further problems of the same check, less urgent than the cause.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Effect>,
    /// Problems of other checks that depend on this one: fix the cause first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consequences: Vec<Effect>,
    /// What to do or not to do (`do not restart indexer: upstream incident`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub advice: Vec<String>,
}

/// A problem shown under an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Effect {
    /// The check (`http:api`).
    pub check: String,
    /// Its runbook.
    pub runbook: Runbook,
    /// Its own severity.
    pub severity: Severity,
    /// Its status.
    pub status: Status,
    /// One line.
    pub message: String,
}

/// Dependencies the configuration implies without a `depends-on`: a database or cache on its
/// container, queues on their Redis, containers and logs on the engine, logs on their
/// container, and containers an upstream provider affects on its status page.
#[must_use]
pub fn implicit_dependencies(cfg: &OpsConfig, report: &ProbeReport) -> Vec<String> {
    let suffix = report.name.split_once(':').map_or("", |(_, n)| n);
    let mut deps = Vec::new();
    match report.kind {
        ProbeKind::Postgres => {
            if let Some(c) = cfg.databases.get(suffix).and_then(|d| d.container.as_ref()) {
                deps.push(format!("container:{c}"));
            }
        }
        ProbeKind::Redis | ProbeKind::Queue => {
            if let Some(c) = cfg.caches.get(suffix).and_then(|c| c.container.as_ref()) {
                deps.push(format!("container:{c}"));
            }
            if report.kind == ProbeKind::Queue {
                deps.push(format!("redis:{suffix}"));
            }
        }
        ProbeKind::Container => {
            deps.push("engine".to_owned());
            for page in &cfg.status_pages {
                let affected = std::iter::once(&report.name)
                    .chain(&report.aliases)
                    .filter_map(|n| n.strip_prefix("container:"))
                    .any(|n| page.affects.iter().any(|a| a == n));
                if affected {
                    deps.push(format!("status-page:{}", page.name));
                }
            }
        }
        ProbeKind::Logs => {
            deps.push("engine".to_owned());
            deps.push(format!("container:{suffix}"));
        }
        _ => {}
    }
    deps
}

/// Files every problem of `reports` under an incident, most urgent first.
#[must_use]
pub fn assess(reports: &[ProbeReport], cfg: &OpsConfig) -> Vec<Incident> {
    let overrides = &cfg.triage.severity;
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, r) in reports.iter().enumerate() {
        index.entry(r.name.as_str()).or_insert(i);
    }
    for (i, r) in reports.iter().enumerate() {
        for alias in &r.aliases {
            index.entry(alias.as_str()).or_insert(i);
        }
    }
    let deps: Vec<Vec<usize>> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut names: Vec<String> = r.depends_on.clone();
            for n in std::iter::once(&r.name).chain(&r.aliases) {
                names.extend(cfg.triage.depends_on.get(n).into_iter().flatten().cloned());
            }
            names.extend(implicit_dependencies(cfg, r));
            // An endpoint named like a Compose service is served by that service's container:
            // it depends on the container and on what the container depends on (the API's
            // health fails when its database is down, though its own container runs).
            if matches!(r.kind, ProbeKind::Http | ProbeKind::Tcp)
                && let Some((_, service)) = r.name.split_once(':')
                && let Some(&c) = index.get(format!("container:{service}").as_str())
            {
                names.push(reports[c].name.clone());
                names.extend(reports[c].depends_on.iter().cloned());
            }
            let mut out: Vec<usize> = names.iter().filter_map(|n| index.get(n.as_str()).copied()).collect();
            out.retain(|d| *d != i);
            out.dedup();
            out
        })
        .collect();
    let failing = |i: usize| reports[i].status == Status::Critical;

    // The root cause of each report with problems: follow the first failing dependency to its
    // end. Each report has at most one successor, so a cycle is entered the same way from
    // every start and its smallest index is the one root of everything that leads into it.
    let next = |n: usize| deps[n].iter().copied().find(|d| failing(*d));
    let root_of = |start: usize| {
        let mut path = vec![start];
        let mut at = start;
        while let Some(n) = next(at) {
            if let Some(pos) = path.iter().position(|p| *p == n) {
                return path[pos..].iter().copied().min().unwrap_or(n);
            }
            path.push(n);
            at = n;
        }
        at
    };

    let mut incidents: BTreeMap<usize, Incident> = BTreeMap::new();
    let mut effects: Vec<(usize, Effect)> = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        if r.problems.is_empty() {
            continue;
        }
        let ranked = ranked(r, overrides);
        let root = root_of(i);
        if root == i {
            // The severity is the worst problem's; the runbook is the most specific one among
            // the problems as bad as it (an OOM kill, not "container down").
            let severity = ranked[0].0;
            let worst = ranked.iter().map(|(_, p)| p.status).max().unwrap_or(Status::Critical);
            let head = ranked
                .iter()
                .enumerate()
                .filter(|(_, (_, p))| p.status == worst)
                .max_by_key(|(n, (_, p))| (specificity(p.runbook), std::cmp::Reverse(*n)))
                .map_or(0, |(n, _)| n);
            let cause = ranked[head].1;
            let also = ranked
                .iter()
                .enumerate()
                .filter(|(n, _)| *n != head)
                .map(|(_, (s, p))| Effect {
                    check: r.name.clone(),
                    runbook: p.runbook,
                    severity: *s,
                    status: p.status,
                    message: p.message.clone(),
                })
                .collect();
            let mut evidence = cause.evidence.clone();
            if evidence.is_empty() {
                evidence.clone_from(&r.evidence);
            }
            incidents.insert(
                i,
                Incident {
                    severity,
                    response_time: severity.response_time().to_owned(),
                    runbook: cause.runbook,
                    check: r.name.clone(),
                    target: r.target.clone(),
                    status: cause.status,
                    message: cause.message.clone(),
                    evidence,
                    also,
                    consequences: Vec::new(),
                    advice: Vec::new(),
                },
            );
        } else {
            for (severity, p) in ranked {
                effects.push((
                    root,
                    Effect {
                        check: r.name.clone(),
                        runbook: p.runbook,
                        severity,
                        status: p.status,
                        message: p.message.clone(),
                    },
                ));
            }
        }
    }
    for (root, effect) in effects {
        if let Some(incident) = incidents.get_mut(&root) {
            incident.severity = incident.severity.min(effect.severity);
            incident.consequences.push(effect);
        }
    }
    name_the_service(reports, cfg, &mut incidents);
    for incident in incidents.values_mut() {
        incident.response_time = incident.severity.response_time().to_owned();
        incident.consequences.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.check.cmp(&b.check)));
    }
    add_upstream_advice(reports, cfg, &mut incidents);
    let mut out: Vec<Incident> = incidents.into_values().collect();
    out.sort_by(|a, b| a.severity.cmp(&b.severity).then(b.status.cmp(&a.status)).then(a.check.cmp(&b.check)));
    out
}

/// How much a runbook says about what to do: a container that is down says less than one that
/// was OOM-killed; a log line or a probe that could not tell says least.
const fn specificity(rb: Runbook) -> u8 {
    match rb {
        Runbook::LogErrors | Runbook::ProbeFailed => 0,
        Runbook::ContainerDown => 1,
        Runbook::OomKilled => 4,
        Runbook::CrashLoop => 3,
        _ => 2,
    }
}

/// A container that is a configured database's or cache's is that service: its incident's
/// runbook is the service's (`database-down`, `cache-down`, the one to run), whose check
/// stays among its consequences.
fn name_the_service(reports: &[ProbeReport], cfg: &OpsConfig, incidents: &mut BTreeMap<usize, Incident>) {
    for (i, incident) in incidents.iter_mut() {
        let root = &reports[*i];
        if root.kind != ProbeKind::Container || incident.runbook != Runbook::ContainerDown {
            continue;
        }
        let names: Vec<&String> = std::iter::once(&root.name).chain(&root.aliases).collect();
        let service = incident.consequences.iter().find(|e| {
            matches!(e.runbook, Runbook::DatabaseDown | Runbook::CacheDown)
                && reports
                    .iter()
                    .find(|r| r.name == e.check)
                    .is_some_and(|r| implicit_dependencies(cfg, r).iter().any(|d| names.contains(&d)))
        });
        if let Some(service) = service {
            incident.runbook = service.runbook;
        }
    }
}

/// The problems of a report with their severities, most urgent first.
fn ranked<'a>(r: &'a ProbeReport, overrides: &BTreeMap<Runbook, Severity>) -> Vec<(Severity, &'a crate::Problem)> {
    let mut problems: Vec<(Severity, &crate::Problem)> =
        r.problems.iter().map(|p| (rules::severity(p, r.critical, overrides), p)).collect();
    problems.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.status.cmp(&a.1.status)));
    problems
}

/// During an upstream incident, restarting what depends on the provider only adds noise: say so
/// on the upstream incident and on every incident of an affected container.
fn add_upstream_advice(reports: &[ProbeReport], cfg: &OpsConfig, incidents: &mut BTreeMap<usize, Incident>) {
    for page in &cfg.status_pages {
        let name = format!("status-page:{}", page.name);
        let upstream_down =
            reports.iter().any(|r| r.name == name && r.problems.iter().any(|p| p.runbook == Runbook::UpstreamIncident));
        if !upstream_down || page.affects.is_empty() {
            continue;
        }
        let advice = format!("upstream incident at {}: do not restart {}", page.name, page.affects.join(", "));
        for (i, incident) in incidents.iter_mut() {
            let r = &reports[*i];
            let affected = incident.check == name
                || std::iter::once(&r.name)
                    .chain(&r.aliases)
                    .filter_map(|n| n.strip_prefix("container:").or_else(|| n.strip_prefix("logs:")))
                    .any(|n| page.affects.iter().any(|a| a == n));
            if affected && !incident.advice.contains(&advice) {
                incident.advice.push(advice.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ops_core::config::{DatabaseConfig, StatusPageConfig};

    use super::*;
    use crate::Problem;

    fn report(kind: ProbeKind, name: &str, problems: Vec<Problem>) -> ProbeReport {
        let mut r = ProbeReport::new(kind, name, "t");
        r.problems = problems;
        r.finish(Duration::ZERO)
    }

    fn crit(rb: Runbook, msg: &str) -> Problem {
        Problem::new(rb, Status::Critical, msg)
    }

    #[test]
    fn database_down_is_p1_with_the_api_failure_as_consequence() {
        let mut cfg = OpsConfig::default();
        cfg.databases.insert("main".into(), DatabaseConfig { container: Some("db".into()), ..Default::default() });
        let mut db_container = report(ProbeKind::Container, "db", vec![crit(Runbook::ContainerDown, "exited (0)")]);
        db_container.aliases.push("container:shop-db-1".into());
        let db = report(ProbeKind::Postgres, "main", vec![crit(Runbook::DatabaseDown, "no response")]);
        let mut api = report(ProbeKind::Http, "api", vec![crit(Runbook::ApiDown, "503")]);
        api.depends_on.push("postgres:main".into());
        let web = report(ProbeKind::Http, "web", vec![]);
        let incidents = assess(&[api, web, db, db_container], &cfg);
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        let i = &incidents[0];
        // The database's container is the database: its runbook is the one to run.
        assert_eq!((i.check.as_str(), i.runbook), ("container:db", Runbook::DatabaseDown));
        assert_eq!(i.severity, Severity::P1, "the database being down makes it a P1");
        assert_eq!(i.response_time, "15 minutes");
        let effects: Vec<_> = i.consequences.iter().map(|e| (e.check.as_str(), e.runbook)).collect();
        assert_eq!(effects, [("postgres:main", Runbook::DatabaseDown), ("http:api", Runbook::ApiDown)]);
    }

    #[test]
    fn an_endpoint_named_like_a_service_fails_with_what_its_container_needs() {
        let mut cfg = OpsConfig::default();
        cfg.databases.insert("main".into(), DatabaseConfig { container: Some("db".into()), ..Default::default() });
        let db_container = report(ProbeKind::Container, "db", vec![crit(Runbook::ContainerDown, "exited (0)")]);
        // The API's container runs; Compose says it depends on the database's.
        let mut api_container = report(ProbeKind::Container, "api", vec![]);
        api_container.depends_on.push("container:db".into());
        let api = report(ProbeKind::Http, "api", vec![crit(Runbook::ApiDown, "503")]);
        let other = report(ProbeKind::Http, "billing", vec![crit(Runbook::ApiDown, "503")]);
        let incidents = assess(&[api, other, api_container, db_container], &cfg);
        let got: Vec<_> = incidents
            .iter()
            .map(|i| (i.check.as_str(), i.consequences.iter().map(|c| c.check.as_str()).collect::<Vec<_>>()))
            .collect();
        assert_eq!(got, [("container:db", vec!["http:api"]), ("http:billing", vec![])], "{incidents:#?}");
    }

    #[test]
    fn a_healthy_dependency_does_not_absorb_a_failure() {
        let cfg = OpsConfig::default();
        let db = report(ProbeKind::Postgres, "main", vec![]);
        let mut api = report(ProbeKind::Http, "api", vec![crit(Runbook::ApiDown, "500")]);
        api.depends_on.push("postgres:main".into());
        api.critical = true;
        let slow = report(
            ProbeKind::Http,
            "search",
            vec![Problem::new(Runbook::SlowResponses, Status::Warn, "TTFB 450 ms over 400 ms")],
        );
        let incidents = assess(&[db, slow, api], &cfg);
        let got: Vec<_> = incidents.iter().map(|i| (i.check.as_str(), i.severity)).collect();
        assert_eq!(got, [("http:api", Severity::P1), ("http:search", Severity::P4)]);
    }

    #[test]
    fn config_dependencies_and_cycles() {
        let mut cfg = OpsConfig::default();
        cfg.triage.depends_on.insert("container:worker".into(), vec!["redis:main".into()]);
        cfg.triage.depends_on.insert("redis:main".into(), vec!["container:worker".into()]);
        let worker = report(ProbeKind::Container, "worker", vec![crit(Runbook::CrashLoop, "restarting")]);
        let redis = report(ProbeKind::Redis, "main", vec![crit(Runbook::CacheDown, "refused")]);
        // A cycle must end: one of the two is the root, the other its consequence.
        let incidents = assess(&[worker, redis], &cfg);
        assert_eq!(incidents.len(), 1);
        assert_eq!(incidents[0].consequences.len(), 1);
        assert_eq!(incidents[0].severity, Severity::P2, "the worker crash-looping is a P2");
    }

    #[test]
    fn upstream_incident_says_not_to_restart() {
        let mut cfg = OpsConfig::default();
        cfg.status_pages.push(StatusPageConfig {
            name: "stellar".into(),
            url: "https://status.stellar.org".into(),
            affects: vec!["indexer".into()],
        });
        let page = report(ProbeKind::StatusPage, "stellar", vec![crit(Runbook::UpstreamIncident, "major outage")]);
        let indexer = report(ProbeKind::Container, "indexer", vec![crit(Runbook::CrashLoop, "restarting")]);
        let incidents = assess(&[indexer, page], &cfg);
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        assert_eq!(incidents[0].check, "status-page:stellar");
        assert_eq!(incidents[0].consequences[0].check, "container:indexer");
        assert_eq!(incidents[0].advice, ["upstream incident at stellar: do not restart indexer"]);
    }

    #[test]
    fn other_problems_of_a_check_are_listed_under_its_worst() {
        let cfg = OpsConfig::default();
        let redis = report(
            ProbeKind::Redis,
            "main",
            vec![
                Problem::new(Runbook::CacheDegraded, Status::Warn, "hit rate 65 %"),
                crit(Runbook::CacheFull, "writes will be rejected"),
            ],
        );
        let incidents = assess(&[redis], &cfg);
        assert_eq!(incidents[0].runbook, Runbook::CacheFull);
        assert_eq!(incidents[0].severity, Severity::P2);
        assert_eq!(incidents[0].also[0].runbook, Runbook::CacheDegraded);
    }

    #[test]
    fn the_headline_is_the_most_specific_runbook() {
        let cfg = OpsConfig::default();
        let worker = report(
            ProbeKind::Container,
            "worker",
            vec![
                crit(Runbook::ContainerDown, "exited with code 137"),
                crit(Runbook::OomKilled, "killed by the OOM killer"),
            ],
        );
        let incidents = assess(&[worker], &cfg);
        assert_eq!(incidents[0].runbook, Runbook::OomKilled, "raise the memory limit before restarting");
        assert_eq!(incidents[0].message, "killed by the OOM killer");
        assert_eq!(incidents[0].also[0].runbook, Runbook::ContainerDown);
    }
}
