//! The PostgreSQL section of `perf analyze`: the runbooks' `perf-analyze.sh` (the slowest
//! statements of `pg_stat_statements`, tables read by sequential scans) and the usual DBA
//! checks around it: unused, duplicate and invalid indexes, dead tuples and vacuum, transaction
//! ID wraparound, sequences near their limit, the buffer cache hit ratio, and the sessions
//! (long-running, idle in a transaction, idle, blocked, connections against the limit).
//!
//! The statistics are read with [`Database::perf_snapshot`]: one connection, a fixed number of
//! catalog queries whatever the number of tables, no table locks. With a [`StateDir`], the
//! cumulative counters are kept between runs and the report covers the window since the
//! previous run.

mod delta;
mod queries;
mod sessions;
mod tables;
#[cfg(test)]
mod tests;

use std::time::Instant;

use chrono::{DateTime, Utc};
use ops_core::Status;
use ops_core::config::{PerfConfig, ProbesConfig};
use ops_core::ports::{Backend, Database, PerfSnapshot};

use crate::{PerfFinding, Section, SectionReport, StateDir};
use ops_core::units::human_duration;

/// Analyses database `name` (the section's target is `postgres:{name}`). Never fails: an
/// unreachable database is a [`SectionReport::failed`] with the reason.
///
/// Findings (`check`): `slow-query` (the `cfg.top` slowest statements by mean execution time
/// with at least `slow_min_calls` calls, judged against the runbooks' 20/50 ms),
/// `extension-missing`, `index-candidate`, `unused-index`, `duplicate-index`, `invalid-index`,
/// `dead-tuples`, `vacuum` (stale or missing planner statistics, informational), `wraparound`,
/// `sequence`, `cache-hit`, `long-running`, `idle-in-transaction`, `idle-connection`,
/// `connections`, `blocked`; each with its numbers, evidence and the SQL or `opsctl` command
/// that addresses it. `queries` counts the catalog queries sent (5, or 6 with
/// `pg_stat_statements`).
///
/// With `state`, the cumulative counters (statements, table scans, buffer cache) are saved
/// under `pg-{name}`; when the previous run's are there and the server did not restart or
/// reset its statistics since, statements, scans and the cache hit ratio are judged over the
/// window since that run ([`Window::PreviousRun`](crate::Window::PreviousRun)), else since
/// the statistics started ([`Window::ServerStart`](crate::Window::ServerStart)).
pub async fn analyze(
    name: &str,
    db: &dyn Database,
    cfg: &PerfConfig,
    probes: &ProbesConfig,
    state: Option<&StateDir>,
) -> SectionReport {
    let started = Instant::now();
    let target = format!("postgres:{name}");
    let snapshot = match db.perf_snapshot().await {
        Ok(s) => s,
        Err(e) => return SectionReport::failed(Section::Pg, target, e.to_string()).finish(started.elapsed()),
    };
    let key = format!("pg-{name}");
    let previous = state.and_then(|s| s.load::<delta::Counters>(&key));
    let windowed = delta::window(&snapshot, previous.as_ref());
    let mut report = SectionReport::new(Section::Pg, target);
    report.queries = snapshot.queries;
    report.window = Some(windowed.window.clone());
    report.findings = findings(&snapshot, &windowed, cfg, probes);
    if let Some(state) = state
        && let Err(e) = state.save(&key, snapshot.taken_at, &delta::Counters::of(&snapshot))
    {
        report.findings.push(PerfFinding::new(
            "state",
            Status::Warn,
            key,
            format!("could not keep this run's counters, the next run reports since the server started: {e}"),
        ));
    }
    report.finish(started.elapsed())
}

/// Every finding of one snapshot (pure).
fn findings(s: &PerfSnapshot, w: &delta::Windowed<'_>, cfg: &PerfConfig, probes: &ProbesConfig) -> Vec<PerfFinding> {
    let t = &cfg.postgres;
    let mut out = Vec::new();
    out.extend(queries::extension_missing(s));
    out.extend(queries::slow_queries(s, w, t, cfg.top));
    out.extend(queries::index_candidates(s, w, t));
    out.extend(queries::unused_indexes(s, t));
    out.extend(queries::duplicate_indexes(s));
    out.extend(queries::invalid_indexes(s));
    out.extend(tables::dead_tuples(s, t, &probes.postgres));
    out.extend(tables::vacuum_staleness(s, t));
    out.push(tables::wraparound(s, t));
    out.extend(tables::sequences(s, t));
    out.push(tables::cache_hit(w, t));
    out.extend(sessions::findings(s, t, &probes.postgres, cfg.top));
    out
}

// ---------------------------------------------------------------------------------------------
// shared wording

/// The `opsctl` commands findings recommend.
pub(crate) mod commands {
    /// `opsctl pg terminate PID`.
    pub(crate) fn terminate(pid: i32) -> String {
        format!("opsctl pg terminate {pid}")
    }

    /// `opsctl pg kill-idle --older-than 600s`.
    pub(crate) fn kill_idle(secs: u64) -> String {
        format!("opsctl pg kill-idle --older-than {secs}s")
    }

    /// `opsctl pg cancel-slow --longer-than 300s`.
    pub(crate) fn cancel_slow(secs: u64) -> String {
        format!("opsctl pg cancel-slow --longer-than {secs}s")
    }
}

pub(crate) use ops_core::units::count;

/// `2024-05-01 10:00 UTC (3 h ago)`, or `never`.
pub(crate) fn when(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match at {
        None => "never".to_owned(),
        Some(at) => {
            let ago = (now - at).to_std().map(|d| format!(" ({} ago)", human_duration(d))).unwrap_or_default();
            format!("{}{ago}", at.format("%Y-%m-%d %H:%M UTC"))
        }
    }
}

/// `pid 4242 app@shop (psql from 10.0.0.5) idle in transaction for 12 min, transaction open
/// 13 min, waiting on Lock:relation: UPDATE trades SET …`
pub(crate) fn describe(b: &Backend) -> String {
    let who = match (&b.user, &b.database) {
        (Some(u), Some(d)) => format!(" {u}@{d}"),
        (Some(u), None) => format!(" {u}"),
        (None, Some(d)) => format!(" @{d}"),
        (None, None) => String::new(),
    };
    let from = match (&b.application, &b.client_addr) {
        (Some(a), Some(c)) => format!(" ({a} from {c})"),
        (Some(a), None) => format!(" ({a})"),
        (None, Some(c)) => format!(" (from {c})"),
        (None, None) => String::new(),
    };
    let state = if b.state.is_empty() { b.backend_type.clone() } else { b.state.clone() };
    let age = if b.state == "active" { b.query_age } else { b.state_age };
    let age = age.map(|a| format!(" for {}", human_duration(a))).unwrap_or_default();
    let transaction =
        b.transaction_age.map(|a| format!(", transaction open {}", human_duration(a))).unwrap_or_default();
    // Idle sessions all wait for their client (Client:ClientRead): only an active one's wait says
    // something.
    let wait = b
        .wait_event
        .as_deref()
        .filter(|_| b.state == "active")
        .map(|w| format!(", waiting on {w}"))
        .unwrap_or_default();
    let query = if b.query.is_empty() { String::new() } else { format!(": {}", b.query) };
    format!("pid {}{who}{from} {state}{age}{transaction}{wait}{query}", b.pid)
}
