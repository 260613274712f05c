//! `[[prometheus]]`: a Prometheus's scrape targets, from `GET {url}/api/v1/targets?state=active`
//! (the runbooks' `curl localhost:9090/api/v1/targets | grep -c '"health":"up"'`), by job. A
//! job none of whose targets is up is `targets-down` critical; some targets of a job down is
//! warn; each down target's instance and last scrape error are evidence.

use std::collections::BTreeMap;
use std::time::Instant;

use ops_core::config::PrometheusCheckConfig;
use ops_core::{Runbook, Status};
use serde::Deserialize;

use crate::net::{self, NetOptions};
use crate::{Observation, ProbeKind, ProbeReport, Problem, Unit};

/// Bytes of the target list read at most.
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// Down targets listed as evidence per job at most.
const SHOWN: usize = 5;

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Data,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Data {
    #[serde(default)]
    active_targets: Vec<Target>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    scrape_pool: String,
    #[serde(default)]
    health: String,
    #[serde(default)]
    last_error: String,
}

/// Up and down targets per job.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Job {
    up: u64,
    down: Vec<String>,
}

/// Reads the active targets and judges them by job.
///
/// Observations: `targets_up`, `targets_down` (counts), and per job `job_up` / `job_down`
/// labelled `job`; `total` (ms).
pub async fn probe(check: &PrometheusCheckConfig, options: &NetOptions) -> ProbeReport {
    let started = Instant::now();
    let mut report = ProbeReport::new(ProbeKind::Prometheus, &check.name, check.url.redacted());
    report.critical = check.critical;
    report.depends_on.clone_from(&check.depends_on);
    let url = format!("{}/api/v1/targets?state=active", check.url.expose().trim_end_matches('/'));
    let (trace, body) = net::get_document(&url, MAX_ANSWER, options).await;
    report.exchange_ok = Some(body.is_ok());
    if let Some(total) = trace.total {
        report.observe(Observation::new("total", net::millis(total), Unit::Milliseconds));
    }
    let jobs = match body.and_then(|b| jobs_of(&b, &check.jobs)) {
        Ok(jobs) => jobs,
        Err(reason) => {
            report.problem(Problem::new(
                Runbook::ProbeFailed,
                Status::Unknown,
                format!("cannot read Prometheus's targets: {reason}"),
            ));
            return report.finish(started.elapsed());
        }
    };
    let (up, down): (u64, u64) = jobs.values().fold((0, 0), |(u, d), j| (u + j.up, d + j.down.len() as u64));
    #[allow(clippy::cast_precision_loss)]
    {
        report.observe(Observation::new("targets_up", up as f64, Unit::Count));
        report.observe(Observation::new("targets_down", down as f64, Unit::Count));
        for (name, job) in &jobs {
            report.observe(Observation::new("job_up", job.up as f64, Unit::Count).label("job", name));
            report.observe(Observation::new("job_down", job.down.len() as f64, Unit::Count).label("job", name));
        }
    }
    for wanted in &check.jobs {
        if !jobs.contains_key(wanted) {
            report.problem(Problem::new(
                Runbook::TargetsDown,
                Status::Critical,
                format!("job {wanted}: no active target (is it in Prometheus's configuration?)"),
            ));
        }
    }
    for (name, job) in &jobs {
        if job.down.is_empty() {
            continue;
        }
        let total = job.up + job.down.len() as u64;
        let status = if job.up == 0 { Status::Critical } else { Status::Warn };
        let mut evidence: Vec<String> = job.down.iter().take(SHOWN).cloned().collect();
        if job.down.len() > SHOWN {
            evidence.push(format!("… and {} more", job.down.len() - SHOWN));
        }
        report.problem(
            Problem::new(
                Runbook::TargetsDown,
                status,
                format!("job {name}: {} of {total} targets down", job.down.len()),
            )
            .with_evidence(evidence),
        );
    }
    if report.problems.is_empty() {
        report.message = format!("{up} targets up in {} jobs", jobs.len());
    }
    report.finish(started.elapsed())
}

/// Targets by job (the `job` label, else the scrape pool), only `wanted` jobs when given.
fn jobs_of(body: &[u8], wanted: &[String]) -> Result<BTreeMap<String, Job>, String> {
    let answer: Answer = serde_json::from_slice(body).map_err(|e| format!("not the targets API's JSON ({e})"))?;
    if answer.status != "success" {
        return Err(format!("the API answered status {:?}", answer.status));
    }
    let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
    for t in answer.data.active_targets {
        let job = t.labels.get("job").cloned().unwrap_or(t.scrape_pool);
        if !wanted.is_empty() && !wanted.contains(&job) {
            continue;
        }
        let entry = jobs.entry(job).or_default();
        if t.health == "up" {
            entry.up += 1;
        } else {
            let instance = t.labels.get("instance").cloned().unwrap_or_default();
            let error = if t.last_error.is_empty() { t.health.clone() } else { t.last_error.clone() };
            entry.down.push(crate::evidence_line(&format!("{instance}: {error}")));
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_counted_by_job() {
        let body = br#"{"status":"success","data":{"activeTargets":[
            {"labels":{"job":"node","instance":"a:9100"},"scrapePool":"node","health":"up","lastError":""},
            {"labels":{"job":"node","instance":"b:9100"},"scrapePool":"node","health":"down","lastError":"connection refused"},
            {"labels":{"job":"api","instance":"api:8080"},"scrapePool":"api","health":"down","lastError":"timeout"}]}}"#;
        let jobs = jobs_of(body, &[]).unwrap();
        assert_eq!(jobs["node"], Job { up: 1, down: vec!["b:9100: connection refused".into()] });
        assert_eq!(jobs["api"].up, 0);
        assert_eq!(jobs_of(body, &["api".into()]).unwrap().len(), 1);
        assert!(jobs_of(b"{\"status\":\"error\"}", &[]).is_err());
    }
}
