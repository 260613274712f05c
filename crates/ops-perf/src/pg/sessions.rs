//! Sessions: `long-running`, `idle-in-transaction`, `idle-connection`, `connections`,
//! `blocked`.

use std::collections::BTreeMap;
use std::time::Duration;

use ops_core::Status;
use ops_core::config::{PerfPostgresThresholds, PostgresThresholds};
use ops_core::ports::{Backend, ConnectionStats, PerfSnapshot};

use super::{commands, count, describe};
use crate::PerfFinding;
use ops_core::units::human_duration;
use ops_probes::{Observation, Unit};

/// `application_name` of this tool's own connections (its pools, and the `pg_dump`/`psql` it
/// runs), left out of idle-connection findings like `kill-idle` leaves them alone.
pub(crate) const OWN_APPLICATION: &str = "ops";

/// The session's own client connections to the analysed database, other than ours.
fn clients(s: &PerfSnapshot) -> impl Iterator<Item = &Backend> {
    s.backends
        .backends
        .iter()
        .filter(move |b| b.is_client() && b.pid != s.backends.own_pid && b.database.as_deref() == Some(&s.database))
}

/// The session at the head of the wait chain that `b` is in: follows the first blocker until a
/// session that waits for no one (or a cycle, which the deadlock detector breaks).
fn root_blocker<'a>(b: &Backend, by_pid: &BTreeMap<i32, &'a Backend>) -> Option<&'a Backend> {
    let mut current = by_pid.get(b.blocked_by.first()?).copied()?;
    let mut seen = vec![b.pid];
    while let Some(next) = current.blocked_by.first() {
        if seen.contains(&current.pid) {
            break;
        }
        seen.push(current.pid);
        match by_pid.get(next) {
            Some(n) => current = n,
            None => break,
        }
    }
    Some(current)
}

/// Every session finding.
pub(super) fn findings(
    s: &PerfSnapshot,
    t: &PerfPostgresThresholds,
    p: &PostgresThresholds,
    top: usize,
) -> Vec<PerfFinding> {
    let mut out = Vec::new();
    out.push(connections(s, p, t));
    let by_pid: BTreeMap<i32, &Backend> = s.backends.backends.iter().map(|b| (b.pid, b)).collect();
    let blocking: Vec<i32> = s.backends.backends.iter().flat_map(|b| b.blocked_by.iter().copied()).collect();

    for b in clients(s).filter(|b| !b.blocked_by.is_empty()) {
        out.push(blocked(b, &by_pid, p));
    }
    let long_limit = Duration::from_secs(p.long_running_secs);
    let mut long: Vec<&Backend> = clients(s)
        .filter(|b| b.state == "active" && b.blocked_by.is_empty() && b.query_age.is_some_and(|a| a > long_limit))
        .collect();
    long.sort_by_key(|b| std::cmp::Reverse(b.query_age));
    for b in long {
        let age = b.query_age.unwrap_or_default();
        out.push(
            PerfFinding::new(
                "long-running",
                Status::Warn,
                format!("pid {}", b.pid),
                format!("query running for {} (over {})", human_duration(age), human_duration(long_limit)),
            )
            .value(Observation::new("query_age", age.as_secs_f64(), Unit::Seconds))
            .evidence(describe(b))
            .action(format!(
                "{} (cancels the query, keeps the session) or {}",
                commands::cancel_slow(p.long_running_secs),
                commands::terminate(b.pid)
            )),
        );
    }
    let idle_tx_limit = Duration::from_secs(p.idle_in_transaction_secs);
    let mut idle_tx: Vec<&Backend> = clients(s)
        .filter(|b| b.state.starts_with("idle in transaction") && b.state_age.is_some_and(|a| a > idle_tx_limit))
        .collect();
    idle_tx.sort_by_key(|b| std::cmp::Reverse(b.state_age));
    for b in idle_tx {
        let age = b.state_age.unwrap_or_default();
        let blocks = blocking.iter().filter(|pid| **pid == b.pid).count();
        let mut f = PerfFinding::new(
            "idle-in-transaction",
            if blocks > 0 { Status::Critical } else { Status::Warn },
            format!("pid {}", b.pid),
            format!(
                "idle in a transaction for {} (over {}){}",
                human_duration(age),
                human_duration(idle_tx_limit),
                if blocks > 0 { format!(", blocking {blocks} other sessions") } else { String::new() }
            ),
        )
        .value(Observation::new("state_age", age.as_secs_f64(), Unit::Seconds))
        .evidence(describe(b))
        .evidence("it holds its locks and keeps VACUUM from removing dead rows until it ends");
        f = f.action(format!(
            "{} (rolls its transaction back); fix the client that forgets to COMMIT, or set \
             idle_in_transaction_session_timeout",
            commands::terminate(b.pid)
        ));
        out.push(f);
    }
    out.extend(idle_connections(s, t, top));
    out
}

/// Client connections against `max_connections`, judged like the probe (the runbooks' 8 and 9
/// of 10), counted over the whole server.
fn connections(s: &PerfSnapshot, p: &PostgresThresholds, t: &PerfPostgresThresholds) -> PerfFinding {
    let mut by_state: BTreeMap<String, u32> = BTreeMap::new();
    for b in s.backends.backends.iter().filter(|b| b.is_client()) {
        let state = if b.state.is_empty() { "unknown" } else { b.state.as_str() };
        *by_state.entry(state.to_owned()).or_default() += 1;
    }
    let stats = ConnectionStats {
        max_connections: s.stats.max_connections,
        reserved_connections: s.stats.reserved_connections,
        total: by_state.values().sum(),
        by_state,
        round_trip_micros: 0,
    };
    let (values, problem) = ops_probes::postgres::connections(&stats, p);
    let mut f = match problem {
        Some(problem) => {
            let mut f = PerfFinding::new("connections", problem.status, "connections", problem.message);
            for e in problem.evidence {
                f = f.evidence(e);
            }
            f.action(format!(
                "end idle sessions ({}), put a pooler (PgBouncer) in front, or raise max_connections (restart)",
                commands::kill_idle(t.idle_connection_secs)
            ))
        }
        None => PerfFinding::new(
            "connections",
            Status::Ok,
            "connections",
            format!("{} of {} connections in use", stats.total, stats.max_connections),
        ),
    };
    for v in values {
        f = f.value(v);
    }
    f
}

/// A session waiting for a lock, with the session at the head of its wait chain.
fn blocked(b: &Backend, by_pid: &BTreeMap<i32, &Backend>, p: &PostgresThresholds) -> PerfFinding {
    let waited = b.state_age.or(b.query_age).unwrap_or_default();
    let verdict = if waited > Duration::from_secs(p.long_running_secs) { Status::Critical } else { Status::Warn };
    let root = root_blocker(b, by_pid);
    let blockers: Vec<String> = b.blocked_by.iter().map(i32::to_string).collect();
    let mut f = PerfFinding::new(
        "blocked",
        verdict,
        format!("pid {}", b.pid),
        format!("waiting {} for a lock held by pid {}", human_duration(waited), blockers.join(", ")),
    )
    .value(Observation::new("wait_time", waited.as_secs_f64(), Unit::Seconds))
    .value(Observation::new("blockers", b.blocked_by.len() as f64, Unit::Count))
    .evidence(format!("blocked: {}", describe(b)));
    for pid in &b.blocked_by {
        f = f.evidence(match by_pid.get(pid) {
            Some(blocker) => format!("blocker: {}", describe(blocker)),
            None => format!("blocker: pid {pid} (ended since)"),
        });
    }
    if let Some(root) = root {
        if !b.blocked_by.contains(&root.pid) {
            f = f.evidence(format!("head of the wait chain: {}", describe(root)));
        }
        let why = if root.state.starts_with("idle in transaction") {
            " (idle in a transaction: its client has not committed)"
        } else {
            ""
        };
        f = f.action(format!("{}{why}", commands::terminate(root.pid)));
    }
    f
}

/// Connections idle for over `idle_connection_secs`: one finding listing the oldest.
fn idle_connections(s: &PerfSnapshot, t: &PerfPostgresThresholds, top: usize) -> Option<PerfFinding> {
    let limit = Duration::from_secs(t.idle_connection_secs);
    let mut idle: Vec<&Backend> = clients(s)
        .filter(|b| b.state == "idle" && b.application.as_deref() != Some(OWN_APPLICATION))
        .filter(|b| b.state_age.is_some_and(|a| a > limit))
        .collect();
    let oldest = idle.iter().filter_map(|b| b.state_age).max()?;
    idle.sort_by_key(|b| std::cmp::Reverse(b.state_age));
    let mut f = PerfFinding::new(
        "idle-connection",
        Status::Warn,
        format!("{} sessions", idle.len()),
        format!(
            "{} idle for over {} (oldest {}): a pool larger than needed, or connections leaked",
            if idle.len() == 1 {
                "1 connection".to_owned()
            } else {
                format!("{} connections", count(idle.len() as u64))
            },
            human_duration(limit),
            human_duration(oldest)
        ),
    )
    .value(Observation::new("idle_connections", idle.len() as f64, Unit::Count))
    .value(Observation::new("oldest_idle", oldest.as_secs_f64(), Unit::Seconds));
    for b in idle.iter().take(top.max(1)) {
        f = f.evidence(describe(b));
    }
    if idle.len() > top.max(1) {
        f = f.evidence(format!("… and {} more", idle.len() - top.max(1)));
    }
    Some(f.action(commands::kill_idle(t.idle_connection_secs)))
}
