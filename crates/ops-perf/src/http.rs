//! The `http` section: the runbooks' "API latency" as percentiles over a few requests, the way
//! the API Latency dashboard shows P50/P95/P99, judged on P95 against the TTFB thresholds.

use std::time::Instant;

use ops_core::config::{HttpCheckConfig, ProbesConfig};
use ops_core::{Runbook, Status};

use crate::report::over;
use crate::{PerfFinding, Section, SectionReport};
use ops_probes::{NetOptions, Observation, ProbeReport, Unit};

/// Consecutive requests that got no answer at all before the rest are not sent: an endpoint
/// that is down would otherwise cost `samples` time limits.
const GIVE_UP_AFTER: usize = 3;
/// Distinct failure messages kept as evidence.
const FAILURES_SHOWN: usize = 3;

/// The `q`-quantile (0.0–1.0) of `values` by the nearest-rank method: the smallest value at
/// or above which `q` of the values lie, so P95 of 20 samples is the 19th smallest. `None`
/// without values.
#[must_use]
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// What one request gave: its TTFB and total time when it succeeded, else why it failed.
type Outcome = Result<(f64, f64), String>;

fn outcome(report: &ProbeReport) -> Outcome {
    // A slow answer is still an answer: only other problems are failures.
    match report.problems.iter().find(|p| p.runbook != Runbook::SlowResponses) {
        Some(p) => Err(p.message.clone()),
        None => match (report.observation("ttfb"), report.observation("total")) {
            (Some(ttfb), Some(total)) => Ok((ttfb, total)),
            _ => Err("no timing recorded".to_owned()),
        },
    }
}

/// Analyses endpoint `check` (the section's target is `http:{name}`) with `samples` requests
/// (at least one) sent one after the other through the `http` probe: `latency`, P50/P95/P99 of
/// the time to first byte and of the total time, judged on the TTFB P95 against the check's
/// thresholds or `probes.http` (runbooks: warn over 400 ms, critical over 800 ms); `errors`,
/// the requests that failed (any problem other than slowness: no answer, a wrong status or
/// body), `critical` when all did. After 3 requests in a row without an answer the rest are
/// not sent.
pub async fn analyze(
    check: &HttpCheckConfig,
    probes: &ProbesConfig,
    samples: usize,
    net: &NetOptions,
) -> SectionReport {
    let started = Instant::now();
    let mut report = SectionReport::new(Section::Http, format!("http:{}", check.name));
    let wanted = samples.max(1);
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(wanted);
    let mut unanswered = 0;
    while outcomes.len() < wanted && unanswered < GIVE_UP_AFTER {
        let probe = ops_probes::http::probe(check, &probes.http, net).await;
        unanswered = if probe.observation("status_code").is_none() { unanswered + 1 } else { 0 };
        outcomes.push(outcome(&probe));
    }
    report.queries = u32::try_from(outcomes.len()).unwrap_or(u32::MAX);
    let warn = check.ttfb_warn_ms.unwrap_or(probes.http.ttfb_warn_ms);
    let critical = check.ttfb_critical_ms.unwrap_or(probes.http.ttfb_critical_ms);
    report.findings.extend(judge(&check.name, &outcomes, wanted, warn, critical));
    report.finish(started.elapsed())
}

/// The `latency` and `errors` findings of the outcomes of `wanted` planned requests.
fn judge(name: &str, outcomes: &[Outcome], wanted: usize, warn_ms: u64, critical_ms: u64) -> Vec<PerfFinding> {
    let mut findings = Vec::new();
    let ttfb: Vec<f64> = outcomes.iter().filter_map(|o| o.as_ref().ok().map(|t| t.0)).collect();
    let total: Vec<f64> = outcomes.iter().filter_map(|o| o.as_ref().ok().map(|t| t.1)).collect();
    #[allow(clippy::cast_precision_loss)]
    let (warn, critical) = (warn_ms as f64, critical_ms as f64);
    if let (Some(p50), Some(p95), Some(p99)) =
        (percentile(&ttfb, 0.50), percentile(&ttfb, 0.95), percentile(&ttfb, 0.99))
    {
        let verdict = over(p95, warn, critical);
        let mut message =
            format!("TTFB p50 {} / p95 {} / p99 {} over {} requests", ms(p50), ms(p95), ms(p99), ttfb.len());
        match verdict {
            Status::Critical => message.push_str(&format!(", p95 over {critical_ms} ms: scale or optimize")),
            Status::Warn => message.push_str(&format!(", p95 over {warn_ms} ms")),
            _ => {}
        }
        let mut f = PerfFinding::new("latency", verdict, name, message);
        for (q, label) in [(0.50, "p50"), (0.95, "p95"), (0.99, "p99")] {
            let t = percentile(&ttfb, q).unwrap_or_default();
            f = f.value(Observation::new(&format!("ttfb_{label}"), t, Unit::Milliseconds));
        }
        for (q, label) in [(0.50, "p50"), (0.95, "p95"), (0.99, "p99")] {
            let t = percentile(&total, q).unwrap_or_default();
            f = f.value(Observation::new(&format!("total_{label}"), t, Unit::Milliseconds));
        }
        #[allow(clippy::cast_precision_loss)]
        let n = ttfb.len() as f64;
        f = f.value(Observation::new("samples", n, Unit::Count)).evidence(format!(
            "total p50 {} / p95 {} / p99 {}; thresholds on TTFB p95: warn {warn_ms} ms, critical {critical_ms} ms",
            ms(percentile(&total, 0.50).unwrap_or_default()),
            ms(percentile(&total, 0.95).unwrap_or_default()),
            ms(percentile(&total, 0.99).unwrap_or_default()),
        ));
        findings.push(f);
    }
    let failures: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    if !failures.is_empty() {
        let sent = outcomes.len();
        let verdict = if failures.len() == sent { Status::Critical } else { Status::Warn };
        let mut message = format!("{} of {sent} requests failed", failures.len());
        if sent < wanted {
            message.push_str(&format!(" (gave up after {GIVE_UP_AFTER} without an answer, of {wanted} planned)"));
        }
        let mut f = PerfFinding::new("errors", verdict, name, message);
        #[allow(clippy::cast_precision_loss)]
        {
            f = f.value(Observation::new("errors", failures.len() as f64, Unit::Count)).value(Observation::new(
                "requests",
                sent as f64,
                Unit::Count,
            ));
        }
        let mut shown: Vec<&String> = Vec::new();
        for failure in failures {
            if !shown.contains(&failure) && shown.len() < FAILURES_SHOWN {
                shown.push(failure);
            }
        }
        for failure in shown {
            f = f.evidence(failure.clone());
        }
        findings.push(f);
    }
    findings
}

/// `412 ms`, `1.25 s`.
fn ms(v: f64) -> String {
    if v >= 1000.0 { format!("{:.2} s", v / 1000.0) } else { format!("{v:.0} ms") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 0.50), Some(50.0));
        assert_eq!(percentile(&hundred, 0.95), Some(95.0));
        assert_eq!(percentile(&hundred, 0.99), Some(99.0));
        assert_eq!(percentile(&hundred, 1.0), Some(100.0));
        assert_eq!(percentile(&hundred, 0.0), Some(1.0));
        // Order does not matter; P95 of 10 samples is the largest.
        let ten = [9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 4.0, 5.0, 10.0];
        assert_eq!(percentile(&ten, 0.95), Some(10.0));
        assert_eq!(percentile(&ten, 0.50), Some(5.0));
        assert_eq!(percentile(&[42.0], 0.99), Some(42.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    fn ok(ttfb: f64) -> Outcome {
        Ok((ttfb, ttfb + 5.0))
    }

    #[test]
    fn p95_decides_the_verdict() {
        // Two slow requests of twenty: P50 fast, P95 over the critical threshold.
        let mut outcomes: Vec<Outcome> = (0..18).map(|_| ok(20.0)).collect();
        outcomes.extend([ok(900.0), ok(950.0)]);
        let f = judge("api", &outcomes, 20, 400, 800);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].check.as_str(), f[0].verdict), ("latency", Status::Critical));
        assert_eq!(
            f[0].message,
            "TTFB p50 20 ms / p95 900 ms / p99 950 ms over 20 requests, p95 over 800 ms: scale or optimize"
        );
        let value = |n: &str| f[0].values.iter().find(|v| v.name == n).map(|v| v.value);
        assert_eq!((value("ttfb_p50"), value("total_p95")), (Some(20.0), Some(905.0)));
        // One slow request of twenty is the P95 no longer.
        let mut outcomes: Vec<Outcome> = (0..19).map(|_| ok(20.0)).collect();
        outcomes.push(ok(900.0));
        assert_eq!(judge("api", &outcomes, 20, 400, 800)[0].verdict, Status::Ok);
        let outcomes: Vec<Outcome> = (0..10).map(|_| ok(500.0)).collect();
        assert_eq!(judge("api", &outcomes, 10, 400, 800)[0].verdict, Status::Warn);
    }

    #[test]
    fn failures_are_counted_apart() {
        let mut outcomes: Vec<Outcome> = (0..3).map(|_| ok(10.0)).collect();
        outcomes.push(Err("HTTP 500 Internal Server Error".to_owned()));
        let f = judge("api", &outcomes, 4, 400, 800);
        assert_eq!(f[1].check, "errors");
        assert_eq!((f[1].verdict, f[1].message.as_str()), (Status::Warn, "1 of 4 requests failed"));
        assert_eq!(f[1].evidence, ["HTTP 500 Internal Server Error"]);
        let down: Vec<Outcome> = (0..3).map(|_| Err("connection refused".to_owned())).collect();
        let f = judge("api", &down, 10, 400, 800);
        assert_eq!(f.len(), 1, "no latency without an answer");
        assert_eq!(f[0].verdict, Status::Critical);
        assert_eq!(f[0].message, "3 of 3 requests failed (gave up after 3 without an answer, of 10 planned)");
        assert_eq!(f[0].evidence.len(), 1, "repeated failures are shown once");
    }
}
