//! HTTP health checks (`[[http]]`, `opsctl probe http URL`): the runbooks'
//! `curl -w "dns:%{time_namelookup} connect:%{time_connect} tls:%{time_appconnect}
//! ttfb:%{time_starttransfer} total:%{time_total}"` with the judgement attached.
//!
//! Success is any 2xx (or one of `expect-status`), then the body substring and the JSON field
//! condition. No answer (DNS, refused, TLS, timeout), a 5xx or any other unexpected answer is
//! `api-down` critical; a time to first byte over the thresholds is `slow-responses`.

use std::time::{Duration, Instant};

use hyper::StatusCode;
use ops_core::config::{HttpCheckConfig, HttpThresholds, JsonExpectation};
use ops_core::secret::SecretUrl;
use ops_core::{Runbook, Status};

use crate::net::{self, Failure, NetOptions, Response, Trace};
use crate::{Observation, ProbeKind, ProbeReport, Problem, Unit};

/// Body bytes kept for the checks and the evidence.
const BODY_KEPT: usize = 64 * 1024;

/// Characters of the body shown as evidence.
const SNIPPET_CHARS: usize = 300;

/// Probes one endpoint: `GET`, timed phase by phase, judged against the check and the TTFB
/// thresholds (the check's own override those of `[probes.http]`). The time limit is the check's
/// `timeout-secs`, else `options.timeout`.
///
/// Observations (ms): `dns`, `connect`, `tls` (HTTPS), `ttfb` (request sent to response head),
/// `transfer` (reading the body), `total`, `redirect` (time of the
/// hops before the last, when redirects were followed); `status_code`, `body_bytes`,
/// `redirects`. The phases are those of the last hop.
pub async fn probe(check: &HttpCheckConfig, thresholds: &HttpThresholds, options: &NetOptions) -> ProbeReport {
    let started = Instant::now();
    let mut report = ProbeReport::new(ProbeKind::Http, &check.name, check.url.redacted());
    report.critical = check.critical;
    report.depends_on.clone_from(&check.depends_on);
    let limit = check.timeout_secs.map_or(options.timeout, Duration::from_secs);

    let headers: Vec<(&str, &str)> = check.headers.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
    let (trace, result) =
        net::get_with(check.url.expose(), &headers, check.follow_redirects, BODY_KEPT, limit, options).await;
    observe_phases(&mut report, &trace);
    report.exchange_ok = Some(match &result {
        Ok(response) => status_problem(check, response).is_none() && body_problem(check, &response.body).is_none(),
        Err(_) => false,
    });
    match result {
        Err(Failure::Unusable(reason)) => {
            report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, reason));
        }
        Err(Failure::Unreachable(reason) | Failure::TimedOut(reason)) => {
            report.problem(Problem::new(Runbook::ApiDown, Status::Critical, reason));
        }
        Ok(response) => {
            report.observe(Observation::new("status_code", f64::from(response.status.as_u16()), Unit::Count));
            report.observe(Observation::new("body_bytes", response.body_bytes as f64, Unit::Bytes));
            let snippet = net::snippet(&response.body, SNIPPET_CHARS);
            if !snippet.is_empty() {
                report.evidence.push(snippet);
            }
            if let Some(url) = &trace.final_url {
                report.evidence.insert(0, format!("followed {} redirect(s) to {url}", trace.redirects));
            }
            let ttfb = trace.ttfb.unwrap_or_default();
            for problem in judge(check, thresholds, &response, ttfb) {
                report.problem(problem);
            }
            if report.problems.is_empty() {
                report.message = format!(
                    "{} in {} (TTFB {})",
                    status_line(response.status),
                    ops_core::units::human_latency(trace.total.unwrap_or_default()),
                    ops_core::units::human_latency(ttfb)
                );
            }
        }
    }
    report.finish(started.elapsed())
}

/// The check `opsctl probe http URL` runs: any 2xx, no redirect followed, the default time
/// limit and thresholds; named after the URL's host. Adjust its fields for flags.
#[must_use]
pub fn check_for_url(url: &str) -> HttpCheckConfig {
    let name = net::parse_url(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    HttpCheckConfig { name, url: SecretUrl::new(url), ..HttpCheckConfig::default() }
}

/// [`probe`] of [`check_for_url`] with the runbooks' thresholds.
pub async fn probe_url(url: &str, options: &NetOptions) -> ProbeReport {
    probe(&check_for_url(url), &HttpThresholds::default(), options).await
}

fn observe_phases(report: &mut ProbeReport, trace: &Trace) {
    let phases = [
        ("dns", trace.dns),
        ("connect", trace.connect),
        ("tls", trace.tls),
        ("ttfb", trace.ttfb),
        ("transfer", trace.transfer),
        ("total", trace.total),
    ];
    for (name, value) in phases {
        if let Some(d) = value {
            report.observe(Observation::new(name, net::millis(d), Unit::Milliseconds));
        }
    }
    if trace.redirects > 0 {
        report.observe(Observation::new("redirect", net::millis(trace.redirect_time), Unit::Milliseconds));
        report.observe(Observation::new("redirects", f64::from(trace.redirects), Unit::Count));
    }
}

/// `HTTP 503 Service Unavailable`.
fn status_line(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

/// What is wrong with a response: its status, body or JSON field (`api-down` critical, with the
/// body's first characters as evidence) and its time to first byte (`slow-responses`).
fn judge(check: &HttpCheckConfig, thresholds: &HttpThresholds, response: &Response, ttfb: Duration) -> Vec<Problem> {
    let mut problems = judge_answer(check, response);
    let warn_ms = check.ttfb_warn_ms.unwrap_or(thresholds.ttfb_warn_ms);
    let critical_ms = check.ttfb_critical_ms.unwrap_or(thresholds.ttfb_critical_ms);
    problems.extend(ttfb_problem(ttfb, warn_ms, critical_ms));
    problems
}

/// What is wrong with an answer's status, body or JSON field (`api-down` critical): the
/// judgement of an answer without timings (a request made from inside a container).
pub(crate) fn judge_answer(check: &HttpCheckConfig, response: &Response) -> Vec<Problem> {
    let evidence = || {
        let snippet = net::snippet(&response.body, SNIPPET_CHARS);
        if snippet.is_empty() { Vec::new() } else { vec![snippet] }
    };
    status_problem(check, response)
        .or_else(|| body_problem(check, &response.body))
        .map(|reason| Problem::new(Runbook::ApiDown, Status::Critical, reason).with_evidence(evidence()))
        .into_iter()
        .collect()
}

/// Why the status is not a success, if it is not.
fn status_problem(check: &HttpCheckConfig, response: &Response) -> Option<String> {
    let status = response.status;
    let expected = if check.expect_status.is_empty() {
        status.is_success()
    } else {
        check.expect_status.contains(&status.as_u16())
    };
    if expected {
        return None;
    }
    let line = status_line(status);
    let to = response.location.as_deref().map(|l| format!(" to {l}")).unwrap_or_default();
    Some(if status.is_server_error() {
        line
    } else if status.is_redirection() && !check.follow_redirects {
        format!("redirected: {line}{to} (follow-redirects is off)")
    } else if status.is_redirection() && response.redirects >= net::MAX_REDIRECTS {
        format!("too many redirects (more than {}): {line}{to}", net::MAX_REDIRECTS)
    } else {
        let wanted = if check.expect_status.is_empty() {
            "2xx".to_owned()
        } else {
            check.expect_status.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
        };
        format!("unexpected {line}{to} (expected {wanted})")
    })
}

/// Why the body does not satisfy `expect-body` and `expect-json`, if it does not.
fn body_problem(check: &HttpCheckConfig, body: &[u8]) -> Option<String> {
    if let Some(needle) = &check.expect_body
        && !String::from_utf8_lossy(body).contains(needle.as_str())
    {
        return Some(format!("body does not contain {needle:?}"));
    }
    check.expect_json.as_ref().and_then(|expect| json_problem(body, expect))
}

/// Why a JSON body fails `expect`: not JSON, the field missing, or another value.
fn json_problem(body: &[u8], expect: &JsonExpectation) -> Option<String> {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(e) => return Some(format!("body is not JSON ({e})")),
    };
    let pointer = if expect.pointer.is_empty() || expect.pointer.starts_with('/') {
        expect.pointer.clone()
    } else {
        format!("/{}", expect.pointer)
    };
    let Some(found) = value.pointer(&pointer) else {
        return Some(format!("JSON field {pointer} is missing"));
    };
    match &expect.equals {
        Some(wanted) if !json_equal(found, wanted) => Some(format!(
            "JSON field {pointer} is {}, expected {wanted}",
            net::snippet(found.to_string().as_bytes(), 80)
        )),
        _ => None,
    }
}

/// Equal values, numbers by value (`1` equals `1.0`).
fn json_equal(found: &serde_json::Value, wanted: &serde_json::Value) -> bool {
    found == wanted || matches!((found.as_f64(), wanted.as_f64()), (Some(a), Some(b)) if a == b)
}

/// `slow-responses`: `critical` over `critical_ms`, else `warn` over `warn_ms`.
fn ttfb_problem(ttfb: Duration, warn_ms: u64, critical_ms: u64) -> Option<Problem> {
    let ms = ttfb.as_secs_f64() * 1_000.0;
    let (status, limit) = if ms > critical_ms as f64 {
        (Status::Critical, critical_ms)
    } else if ms > warn_ms as f64 {
        (Status::Warn, warn_ms)
    } else {
        return None;
    };
    Some(Problem::new(
        Runbook::SlowResponses,
        status,
        format!("slow: time to first byte {} (over {limit} ms)", ops_core::units::human_latency(ttfb)),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            location: None,
            body: body.as_bytes().to_vec(),
            body_bytes: body.len() as u64,
            redirects: 0,
        }
    }

    fn check() -> HttpCheckConfig {
        HttpCheckConfig { name: "api".to_owned(), url: SecretUrl::new("http://x/"), ..HttpCheckConfig::default() }
    }

    fn messages(check: &HttpCheckConfig, response: &Response, ttfb_ms: u64) -> Vec<(Runbook, Status, String)> {
        judge(check, &HttpThresholds::default(), response, Duration::from_millis(ttfb_ms))
            .into_iter()
            .map(|p| (p.runbook, p.status, p.message))
            .collect()
    }

    #[test]
    fn any_2xx_by_default_and_expect_status_replaces_it() {
        assert!(messages(&check(), &response(204, ""), 5).is_empty());
        let found = messages(&check(), &response(404, "nope"), 5);
        assert_eq!(
            found,
            [(Runbook::ApiDown, Status::Critical, "unexpected HTTP 404 Not Found (expected 2xx)".into())]
        );
        let c = HttpCheckConfig { expect_status: vec![401, 403], ..check() };
        assert!(messages(&c, &response(401, ""), 5).is_empty());
        assert!(messages(&c, &response(200, ""), 5)[0].2.ends_with("(expected 401, 403)"));
    }

    #[test]
    fn server_errors_and_redirects_say_so() {
        assert_eq!(messages(&check(), &response(503, ""), 5)[0].2, "HTTP 503 Service Unavailable");
        let mut r = response(302, "");
        r.location = Some("http://x/login".into());
        assert_eq!(
            messages(&check(), &r, 5)[0].2,
            "redirected: HTTP 302 Found to http://x/login (follow-redirects is off)"
        );
        let following = HttpCheckConfig { follow_redirects: true, ..check() };
        r.redirects = 5;
        assert!(messages(&following, &r, 5)[0].2.starts_with("too many redirects (more than 5)"));
        r.location = Some("ftp://x/file".into());
        r.redirects = 0;
        assert!(messages(&following, &r, 5)[0].2.starts_with("unexpected HTTP 302 Found to ftp://x/file"));
        let expected = HttpCheckConfig { expect_status: vec![302], ..check() };
        assert!(messages(&expected, &r, 5).is_empty());
    }

    #[test]
    fn body_substring() {
        let c = HttpCheckConfig { expect_body: Some("healthy".into()), ..check() };
        assert!(messages(&c, &response(200, "all healthy"), 5).is_empty());
        assert_eq!(messages(&c, &response(200, "degraded"), 5)[0].2, "body does not contain \"healthy\"");
    }

    #[test]
    fn json_pointer_conditions() {
        let exp =
            |pointer: &str, equals: Option<serde_json::Value>| JsonExpectation { pointer: pointer.into(), equals };
        let body = br#"{"status":"ok","checks":{"db":{"ok":true,"latency":1.0}}}"#;
        assert_eq!(json_problem(body, &exp("/status", Some(json!("ok")))), None);
        assert_eq!(json_problem(body, &exp("status", Some(json!("ok")))), None);
        assert_eq!(json_problem(body, &exp("/checks/db/ok", Some(json!(true)))), None);
        assert_eq!(json_problem(body, &exp("/checks/db/latency", Some(json!(1)))), None);
        assert_eq!(json_problem(body, &exp("/checks/db", None)), None);
        assert_eq!(
            json_problem(body, &exp("/status", Some(json!("degraded")))).unwrap(),
            "JSON field /status is \"ok\", expected \"degraded\""
        );
        assert_eq!(json_problem(body, &exp("/checks/redis", None)).unwrap(), "JSON field /checks/redis is missing");
        assert!(json_problem(b"<html>", &exp("/status", None)).unwrap().starts_with("body is not JSON"));
    }

    #[test]
    fn body_is_not_judged_when_the_status_is_wrong() {
        let c = HttpCheckConfig { expect_body: Some("ok".into()), ..check() };
        let found = messages(&c, &response(500, "boom"), 5);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].2, "HTTP 500 Internal Server Error");
    }

    #[test]
    fn ttfb_thresholds() {
        assert!(ttfb_problem(Duration::from_millis(400), 400, 800).is_none());
        let warn = ttfb_problem(Duration::from_millis(401), 400, 800).unwrap();
        assert_eq!((warn.runbook, warn.status), (Runbook::SlowResponses, Status::Warn));
        assert_eq!(warn.message, "slow: time to first byte 401 ms (over 400 ms)");
        let critical = ttfb_problem(Duration::from_millis(912), 400, 800).unwrap();
        assert_eq!(critical.status, Status::Critical);
        let c = HttpCheckConfig { ttfb_warn_ms: Some(50), ttfb_critical_ms: Some(100), ..check() };
        assert_eq!(messages(&c, &response(200, ""), 120)[0].1, Status::Critical);
        assert_eq!(messages(&c, &response(200, ""), 60)[0].1, Status::Warn);
    }

    #[test]
    fn ad_hoc_check_is_named_after_the_host_and_keeps_the_url_secret() {
        let c = check_for_url("https://user:pw@api.example.com/health");
        assert_eq!(c.name, "api.example.com");
        assert_eq!(c.url.redacted(), "https://user:***@api.example.com/health");
        assert!(!c.follow_redirects);
    }
}
