//! TCP port checks (`[[tcp]]`, `opsctl probe tcp host:port`): the runbooks' `nc -zv host port`.
//! A port that refuses, does not answer in time, or whose host does not resolve is
//! `port-closed` critical.

use std::time::Instant;

use ops_core::config::TcpCheckConfig;
use ops_core::{Runbook, Status};

use crate::net::{self, NetOptions};
use crate::{Observation, ProbeKind, ProbeReport, Problem, Unit};

/// Connects to `check.address` (`host:port`) and closes the connection at once.
///
/// Observations (ms): `dns` (0 for an IP address), `connect`.
pub async fn probe(check: &TcpCheckConfig, options: &NetOptions) -> ProbeReport {
    let started = Instant::now();
    let mut report = ProbeReport::new(ProbeKind::Tcp, &check.name, check.address.trim());
    report.critical = check.critical;
    report.depends_on.clone_from(&check.depends_on);
    let (host, port) = match net::split_host_port(&check.address) {
        Ok(parts) => parts,
        Err(reason) => {
            report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, reason));
            return report.finish(started.elapsed());
        }
    };
    let mut resolving = true;
    let attempt = async {
        let t = Instant::now();
        let addrs = net::resolve(&host, port).await?;
        report.observe(Observation::new("dns", net::millis(t.elapsed()), Unit::Milliseconds));
        resolving = false;
        let t = Instant::now();
        let stream = net::connect_any(&addrs).await?;
        let took = t.elapsed();
        report.observe(Observation::new("connect", net::millis(took), Unit::Milliseconds));
        let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| format!("{host}:{port}"));
        Ok::<_, String>(format!(
            "{} accepts connections ({peer}, {})",
            check.address.trim(),
            ops_core::units::human_latency(took)
        ))
    };
    let outcome = tokio::time::timeout(options.timeout, attempt).await;
    report.exchange_ok = Some(matches!(outcome, Ok(Ok(_))));
    match outcome {
        Ok(Ok(message)) => report.message = message,
        Ok(Err(reason)) => {
            // A local port that refuses: is it held by a process listening elsewhere (another
            // address, the other IP family)? The runbooks' `lsof -i :PORT`.
            let evidence: Vec<String> = if is_local(&host) {
                crate::ports::holders_of(port)
                    .await
                    .iter()
                    .map(|h| format!("port {port} is held by {}", h.describe()))
                    .collect()
            } else {
                Vec::new()
            };
            report.problem(Problem::new(Runbook::PortClosed, Status::Critical, reason).with_evidence(evidence));
        }
        Err(_) => {
            let doing = if resolving { format!("resolving {host}") } else { format!("connecting to {host}:{port}") };
            report.problem(Problem::new(
                Runbook::PortClosed,
                Status::Critical,
                format!("no answer within {:.1} s ({doing})", options.timeout.as_secs_f64()),
            ));
        }
    }
    report.finish(started.elapsed())
}

/// Whether `host` is this machine: a loopback name or address, or an unspecified one.
fn is_local(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// [`probe`] of an ad-hoc `host:port`, named after it.
pub async fn probe_address(address: &str, options: &NetOptions) -> ProbeReport {
    let check =
        TcpCheckConfig { name: address.trim().to_owned(), address: address.to_owned(), ..TcpCheckConfig::default() };
    probe(&check, options).await
}
