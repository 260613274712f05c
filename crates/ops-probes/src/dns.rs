//! Name resolution checks (`[[dns]]`, `opsctl probe dns NAME`): the runbooks' `dig +short
//! NAME`, through the system resolver (`/etc/hosts`, `resolv.conf`), as the services see it.
//! A name that does not resolve, or not to every expected address, is `dns-failure` critical.

use std::net::IpAddr;
use std::time::Instant;

use ops_core::config::DnsCheckConfig;
use ops_core::{Runbook, Status};

use crate::net::{self, NetOptions};
use crate::{Observation, ProbeKind, ProbeReport, Problem, Unit};

/// Resolves `check.name` and compares with `check.expect` (all of them must be among the
/// addresses found; any address will do when it is empty).
///
/// Observations: `resolve` (ms), `addresses` (count). Evidence: the addresses found, one a line.
pub async fn probe(check: &DnsCheckConfig, options: &NetOptions) -> ProbeReport {
    let started = Instant::now();
    let name = check.name.trim();
    let mut report = ProbeReport::new(ProbeKind::Dns, name, name);
    report.critical = check.critical;
    let expected = match parse_expected(&check.expect) {
        Ok(expected) if !name.is_empty() => expected,
        Ok(_) => {
            report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, "no name to resolve"));
            return report.finish(started.elapsed());
        }
        Err(reason) => {
            report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, reason));
            return report.finish(started.elapsed());
        }
    };

    let t = Instant::now();
    let lookup = tokio::time::timeout(options.timeout, tokio::net::lookup_host((name, 0))).await;
    let took = t.elapsed();
    let found: Vec<IpAddr> = match lookup {
        Err(_) => {
            let message =
                format!("no answer from the resolver for {name} within {:.1} s", options.timeout.as_secs_f64());
            report.problem(Problem::new(Runbook::DnsFailure, Status::Critical, message));
            report.exchange_ok = Some(false);
            return report.finish(started.elapsed());
        }
        Ok(Err(e)) => {
            report.observe(Observation::new("resolve", net::millis(took), Unit::Milliseconds));
            report.problem(Problem::new(
                Runbook::DnsFailure,
                Status::Critical,
                format!("{name} does not resolve: {e}"),
            ));
            report.exchange_ok = Some(false);
            return report.finish(started.elapsed());
        }
        Ok(Ok(addrs)) => {
            let mut found = Vec::new();
            for ip in addrs.map(|a| a.ip()) {
                if !found.contains(&ip) {
                    found.push(ip);
                }
            }
            found
        }
    };
    report.observe(Observation::new("resolve", net::millis(took), Unit::Milliseconds));
    report.observe(Observation::new("addresses", found.len() as f64, Unit::Count));
    report.evidence.extend(found.iter().map(IpAddr::to_string));
    match compare(name, &found, &expected) {
        Some(message) => report.problem(
            Problem::new(Runbook::DnsFailure, Status::Critical, message)
                .with_evidence(found.iter().map(IpAddr::to_string)),
        ),
        None => {
            report.message = format!("{name} resolves to {} ({})", list(&found), ops_core::units::human_latency(took))
        }
    }
    report.exchange_ok = Some(report.problems.is_empty());
    report.finish(started.elapsed())
}

/// [`probe`] of an ad-hoc name, any address expected.
pub async fn probe_name(name: &str, options: &NetOptions) -> ProbeReport {
    probe(&DnsCheckConfig { name: name.to_owned(), ..DnsCheckConfig::default() }, options).await
}

fn parse_expected(expect: &[String]) -> Result<Vec<IpAddr>, String> {
    expect
        .iter()
        .map(|e| e.trim().parse::<IpAddr>().map_err(|_| format!("expected address {e:?} is not an IP address")))
        .collect()
}

/// Why `found` does not satisfy `expected`, if it does not.
fn compare(name: &str, found: &[IpAddr], expected: &[IpAddr]) -> Option<String> {
    if found.is_empty() {
        return Some(format!("{name} resolves to no address"));
    }
    let missing: Vec<IpAddr> = expected.iter().filter(|ip| !found.contains(ip)).copied().collect();
    if missing.is_empty() {
        None
    } else {
        Some(format!("{name} resolves to {}, not to {}", list(found), list(&missing)))
    }
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn every_expected_address_must_be_found() {
        let found = ips(&["10.0.0.1", "10.0.0.2"]);
        assert_eq!(compare("a", &found, &ips(&["10.0.0.2"])), None);
        assert_eq!(compare("a", &found, &[]), None);
        assert_eq!(
            compare("a", &found, &ips(&["10.0.0.2", "10.0.0.3"])).unwrap(),
            "a resolves to 10.0.0.1, 10.0.0.2, not to 10.0.0.3"
        );
        assert_eq!(compare("a", &[], &[]).unwrap(), "a resolves to no address");
    }

    #[test]
    fn expected_addresses_must_be_ip_addresses() {
        assert_eq!(parse_expected(&[" ::1 ".into()]).unwrap(), ips(&["::1"]));
        assert!(parse_expected(&["example.com".into()]).unwrap_err().contains("\"example.com\""));
    }
}
