//! A PostgreSQL server: the runbooks' `pg_isready`, the connection count against
//! `max_connections` ("8 of 10" is a warning), and `pg_stat_activity` for long-running queries
//! and sessions idle in a transaction; how long a trivial query takes is its `latency`.

use std::time::Duration;

use ops_core::config::PostgresThresholds;
use ops_core::ports::{Backend, ConnectionStats, Database, Readiness};
use ops_core::{ErrorKind, Runbook, SecretUrl, Status};

use crate::report::{Observation, ProbeKind, ProbeReport, Problem, Unit};
use crate::support::within;
use ops_core::units::{human_duration, percent, plural};

/// Sessions listed as evidence of one problem at most.
const SESSIONS_SHOWN: usize = 5;

/// Probes database `name` (the report is `postgres:{name}`, its target `url` redacted) within
/// `timeout`:
/// - not accepting connections: `database-down`, critical, saying whether the server rejected
///   the connection (starting, shutting down, in recovery) or nothing answered, like
///   `pg_isready`; out of connection slots is `connections-exhausted` instead;
/// - our login refused: `database-down`, critical;
/// - connections at `t.connections_warn_percent` / `t.connections_critical_percent` of
///   `max_connections`, or every slot not reserved for superusers taken:
///   `connections-exhausted`;
/// - queries running over `t.long_running_secs`, sessions idle in a transaction over
///   `t.idle_in_transaction_secs`: `slow-queries`, warn, with pid, age and the query
///   (truncated, passwords redacted).
pub async fn probe(
    name: &str,
    url: &SecretUrl,
    db: &dyn Database,
    t: &PostgresThresholds,
    timeout: Duration,
) -> ProbeReport {
    let base = ProbeReport::new(ProbeKind::Postgres, name, url.redacted());
    within(base, timeout, |report| check(db, report, t)).await
}

async fn check(db: &dyn Database, mut report: ProbeReport, t: &PostgresThresholds) -> ProbeReport {
    match db.readiness().await {
        Readiness::Accepting => {}
        Readiness::Rejecting { reason } if out_of_slots(&reason) => {
            report.problem(Problem::new(
                Runbook::ConnectionsExhausted,
                Status::Critical,
                format!("rejecting new connections: {reason}"),
            ));
            return report;
        }
        Readiness::Rejecting { reason } => {
            report.problem(Problem::new(
                Runbook::DatabaseDown,
                Status::Critical,
                format!("rejecting connections (starting, stopping or in recovery): {reason}"),
            ));
            return report;
        }
        Readiness::NoResponse { reason } => {
            report.problem(Problem::new(Runbook::DatabaseDown, Status::Critical, format!("no response: {reason}")));
            return report;
        }
    }
    let summary = match db.connections().await {
        Ok(stats) => {
            // How fast the server answers a trivial query on an open connection (`latency`,
            // what the generated DBQueryLatency rule reads).
            #[allow(clippy::cast_precision_loss)]
            let ms = stats.round_trip_micros as f64 / 1000.0;
            report.observe(Observation::new("latency", ms, Unit::Milliseconds));
            let (observations, problem) = connections(&stats, t);
            observations.into_iter().for_each(|o| report.observe(o));
            problem.into_iter().for_each(|p| report.problem(p));
            format!("accepting connections; {} of {} connections in use", stats.total, stats.max_connections)
        }
        Err(e) if e.kind() == ErrorKind::Auth => {
            report.problem(Problem::new(
                Runbook::DatabaseDown,
                Status::Critical,
                format!("accepting connections, but our login is refused: {}", e.message()),
            ));
            return report;
        }
        Err(e) => {
            report.problem(Problem::new(
                Runbook::ProbeFailed,
                Status::Unknown,
                format!("accepting connections, but counting them failed: {e}"),
            ));
            return report;
        }
    };
    match db.backends().await {
        Ok(list) => {
            // Client sessions only, and never the probe's own.
            // A session of a role whose details the probe may not see has no state: `unknown`.
            let sessions: Vec<Backend> = list
                .backends
                .into_iter()
                .filter(|b| b.is_client() && b.pid != list.own_pid)
                .map(|b| if b.state.is_empty() { Backend { state: "unknown".to_owned(), ..b } } else { b })
                .collect();
            let (observations, problems) = sessions_report(&sessions, t);
            observations.into_iter().for_each(|o| report.observe(o));
            problems.into_iter().for_each(|p| report.problem(p));
        }
        Err(e) => report.problem(Problem::new(
            Runbook::ProbeFailed,
            Status::Unknown,
            format!("could not read pg_stat_activity: {e}"),
        )),
    }
    if report.problems.is_empty() {
        report.message = summary;
    }
    report
}

/// PostgreSQL's answers when every slot is taken (SQLSTATE 53300).
fn out_of_slots(reason: &str) -> bool {
    reason.contains("too many clients") || reason.contains("connection slots are reserved")
}

/// Connections against `max_connections`, and the problem when they near it. Applications
/// get "too many clients" once the slots not reserved for superusers are taken, even when the
/// share is under the critical threshold (3 of 10 are reserved by default).
#[must_use]
pub fn connections(c: &ConnectionStats, t: &PostgresThresholds) -> (Vec<Observation>, Option<Problem>) {
    let share = percent(u64::from(c.total), u64::from(c.max_connections));
    let mut observations = vec![
        Observation::new("connections_used", f64::from(c.total), Unit::Count),
        Observation::new("connections_max", f64::from(c.max_connections), Unit::Count),
        Observation::new("connections_reserved", f64::from(c.reserved_connections), Unit::Count),
        Observation::new("connections", share, Unit::Percent),
    ];
    observations.extend(
        c.by_state.iter().map(|(state, n)| {
            Observation::new("connections_by_state", f64::from(*n), Unit::Count).label("state", state)
        }),
    );
    let usable = c.max_connections.saturating_sub(c.reserved_connections);
    let reserved_only = c.reserved_connections > 0 && c.total >= usable;
    let status = if share >= t.connections_critical_percent || reserved_only {
        Status::Critical
    } else if share >= t.connections_warn_percent {
        Status::Warn
    } else {
        return (observations, None);
    };
    let mut message = format!("{} of {} connections in use ({share:.0} %)", c.total, c.max_connections);
    if reserved_only {
        message.push_str(&format!(
            "; the other {} are reserved for superusers, so applications get \"too many clients\"",
            c.reserved_connections
        ));
    }
    let evidence = c.by_state.iter().map(|(state, n)| format!("{state}: {n}"));
    (observations, Some(Problem::new(Runbook::ConnectionsExhausted, status, message).with_evidence(evidence)))
}

/// Long-running queries and sessions idle in a transaction, each a `slow-queries` warning
/// listing the oldest sessions (pid, user, age, wait event, query).
#[must_use]
pub fn sessions_report(sessions: &[Backend], t: &PostgresThresholds) -> (Vec<Observation>, Vec<Problem>) {
    let long_limit = Duration::from_secs(t.long_running_secs);
    let idle_limit = Duration::from_secs(t.idle_in_transaction_secs);
    let mut long: Vec<&Backend> =
        sessions.iter().filter(|s| s.state == "active" && s.query_age.is_some_and(|a| a > long_limit)).collect();
    long.sort_by_key(|s| std::cmp::Reverse(s.query_age));
    let mut idle: Vec<&Backend> =
        sessions.iter().filter(|s| s.is_idle_in_transaction() && s.state_age.is_some_and(|a| a > idle_limit)).collect();
    idle.sort_by_key(|s| std::cmp::Reverse(s.state_age));
    let longest_query = sessions.iter().filter(|s| s.state == "active").filter_map(|s| s.query_age).max();
    let oldest_transaction = sessions.iter().filter_map(|s| s.transaction_age).max();
    #[allow(clippy::cast_precision_loss)]
    let mut observations = vec![
        Observation::new("long_running_queries", long.len() as f64, Unit::Count),
        Observation::new("idle_in_transaction", idle.len() as f64, Unit::Count),
    ];
    observations.extend(longest_query.map(|a| Observation::new("longest_query", a.as_secs_f64(), Unit::Seconds)));
    observations
        .extend(oldest_transaction.map(|a| Observation::new("oldest_transaction", a.as_secs_f64(), Unit::Seconds)));
    let mut problems = Vec::new();
    if let Some(first) = long.first() {
        problems.push(
            Problem::new(
                Runbook::SlowQueries,
                Status::Warn,
                format!(
                    "{} running longer than {} (longest {}); end one with SELECT pg_terminate_backend(pid)",
                    plural(long.len() as u64, "query", "queries"),
                    human_duration(long_limit),
                    human_duration(first.query_age.unwrap_or_default())
                ),
            )
            .with_evidence(long.iter().take(SESSIONS_SHOWN).map(|s| describe(s, s.query_age))),
        );
    }
    if let Some(first) = idle.first() {
        problems.push(
            Problem::new(
                Runbook::SlowQueries,
                Status::Warn,
                format!(
                    "{} idle in a transaction for over {} (longest {}): they hold locks and block vacuum",
                    plural(idle.len() as u64, "session", "sessions"),
                    human_duration(idle_limit),
                    human_duration(first.state_age.unwrap_or_default())
                ),
            )
            .with_evidence(idle.iter().take(SESSIONS_SHOWN).map(|s| describe(s, s.state_age))),
        );
    }
    (observations, problems)
}

/// `pid 4242 app@shop active for 12 min, waiting on Lock:transactionid: UPDATE trades SET …`
fn describe(s: &Backend, age: Option<Duration>) -> String {
    let who = match (&s.user, &s.database) {
        (Some(u), Some(d)) => format!(" {u}@{d}"),
        (Some(u), None) => format!(" {u}"),
        (None, Some(d)) => format!(" @{d}"),
        (None, None) => String::new(),
    };
    let age = age.map(|a| format!(" for {}", human_duration(a))).unwrap_or_default();
    let transaction = match (s.is_idle_in_transaction(), s.transaction_age) {
        (true, Some(a)) => format!(" (transaction open {})", human_duration(a)),
        _ => String::new(),
    };
    let wait = s.wait_event.as_deref().map(|w| format!(", waiting on {w}")).unwrap_or_default();
    format!("pid {}{who} {}{age}{transaction}{wait}: {}", s.pid, s.state, s.query)
}

#[cfg(test)]
mod tests;
