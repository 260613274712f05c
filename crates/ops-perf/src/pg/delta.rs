//! Cumulative counters kept between runs, and the window a report covers: since the previous
//! run when its snapshot is there and the counters only grew, else since the server (or its
//! statistics) started.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ops_core::ports::{PerfSnapshot, StatementStats, TableStats};
use serde::{Deserialize, Serialize};

use crate::Window;

/// What the state directory keeps under `pg-{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct Counters {
    postmaster_start: DateTime<Utc>,
    stats_reset: Option<DateTime<Utc>>,
    blks_hit: u64,
    blks_read: u64,
    statements: BTreeMap<i64, StatementCounters>,
    tables: BTreeMap<String, TableCounters>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct StatementCounters {
    calls: u64,
    total_ms: f64,
    rows: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct TableCounters {
    seq_scan: u64,
    seq_tup_read: u64,
    idx_scan: u64,
    idx_tup_fetch: u64,
}

impl Counters {
    /// The counters of `s`.
    pub(crate) fn of(s: &PerfSnapshot) -> Self {
        Self {
            postmaster_start: s.stats.postmaster_start,
            stats_reset: s.stats.stats_reset,
            blks_hit: s.stats.blks_hit,
            blks_read: s.stats.blks_read,
            statements: s
                .statements
                .iter()
                .map(|q| (q.queryid, StatementCounters { calls: q.calls, total_ms: q.total_ms, rows: q.rows }))
                .collect(),
            tables: s.tables.iter().map(|t| (t.qualified_name(), table_counters(t))).collect(),
        }
    }
}

fn table_counters(t: &TableStats) -> TableCounters {
    TableCounters {
        seq_scan: t.seq_scan,
        seq_tup_read: t.seq_tup_read,
        idx_scan: t.idx_scan.unwrap_or(0),
        idx_tup_fetch: t.idx_tup_fetch,
    }
}

/// One statement's numbers over the window.
#[derive(Debug, Clone)]
pub(crate) struct StatementWindow<'a> {
    /// The statement (text, cumulative numbers).
    pub(crate) stats: &'a StatementStats,
    /// Calls in the window.
    pub(crate) calls: u64,
    /// Execution time in the window, milliseconds.
    pub(crate) total_ms: f64,
    /// Rows in the window.
    pub(crate) rows: u64,
}

impl StatementWindow<'_> {
    /// Mean execution time in the window, milliseconds.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn mean_ms(&self) -> f64 {
        if self.calls == 0 { 0.0 } else { self.total_ms / self.calls as f64 }
    }
}

/// One table's scans over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TableWindow {
    pub(crate) seq_scan: u64,
    pub(crate) seq_tup_read: u64,
    pub(crate) idx_scan: u64,
}

/// The numbers judged, over the window.
#[derive(Debug, Clone)]
pub(crate) struct Windowed<'a> {
    pub(crate) window: Window,
    pub(crate) statements: Vec<StatementWindow<'a>>,
    pub(crate) tables: BTreeMap<String, TableWindow>,
    pub(crate) blks_hit: u64,
    pub(crate) blks_read: u64,
}

/// Whether `previous` counted on the same server and statistics as `s`: same start, same reset,
/// and the database's counters did not go down.
fn continues(previous: &Counters, s: &PerfSnapshot) -> bool {
    previous.postmaster_start == s.stats.postmaster_start
        && previous.stats_reset == s.stats.stats_reset
        && s.stats.blks_hit >= previous.blks_hit
        && s.stats.blks_read >= previous.blks_read
}

/// The window of `s` against the previous run's counters. Within a window since the previous
/// run, a statement or table whose counters went down (evicted from `pg_stat_statements` and
/// seen again, or reset) counts from zero: everything it counted happened in the window.
pub(crate) fn window<'a>(s: &'a PerfSnapshot, previous: Option<&(DateTime<Utc>, Counters)>) -> Windowed<'a> {
    let since_start = || Window::ServerStart { at: Some(s.stats.stats_reset.unwrap_or(s.stats.postmaster_start)) };
    let (window, base) = match previous {
        Some((at, prev)) if continues(prev, s) => (Window::PreviousRun { at: *at }, Some(prev)),
        _ => (since_start(), None),
    };
    let statements = s
        .statements
        .iter()
        .map(|q| {
            let before = base.and_then(|b| b.statements.get(&q.queryid)).filter(|b| b.calls <= q.calls);
            match before {
                Some(b) => StatementWindow {
                    stats: q,
                    calls: q.calls - b.calls,
                    total_ms: (q.total_ms - b.total_ms).max(0.0),
                    rows: q.rows.saturating_sub(b.rows),
                },
                None => StatementWindow { stats: q, calls: q.calls, total_ms: q.total_ms, rows: q.rows },
            }
        })
        .collect();
    let tables = s
        .tables
        .iter()
        .map(|t| {
            let now = table_counters(t);
            let before = base
                .and_then(|b| b.tables.get(&t.qualified_name()))
                .filter(|b| b.seq_scan <= now.seq_scan && b.idx_scan <= now.idx_scan)
                .copied()
                .unwrap_or_default();
            let w = TableWindow {
                seq_scan: now.seq_scan - before.seq_scan,
                seq_tup_read: now.seq_tup_read.saturating_sub(before.seq_tup_read),
                idx_scan: now.idx_scan - before.idx_scan,
            };
            (t.qualified_name(), w)
        })
        .collect();
    let (blks_hit, blks_read) = match base {
        Some(b) => (s.stats.blks_hit - b.blks_hit, s.stats.blks_read - b.blks_read),
        None => (s.stats.blks_hit, s.stats.blks_read),
    };
    Windowed { window, statements, tables, blks_hit, blks_read }
}
