//! Statements and indexes: `slow-query`, `extension-missing`, `index-candidate`,
//! `unused-index`, `duplicate-index`, `invalid-index`.

use ops_core::Status;
use ops_core::config::PerfPostgresThresholds;
use ops_core::ports::{IndexStats, PerfSnapshot};

use super::count;
use super::delta::{StatementWindow, Windowed};
use crate::PerfFinding;
use ops_core::units::{human_bytes, percent};
use ops_probes::{Observation, Unit};

/// `pg_stat_statements` missing: not preloaded, not created in this database, or both.
pub(super) fn extension_missing(s: &PerfSnapshot) -> Option<PerfFinding> {
    let (preloaded, installed) = (s.stats.statements_preloaded, s.stats.statements_installed);
    let (message, action) = match (preloaded, installed) {
        (true, true) => return None,
        (false, false) => (
            "pg_stat_statements is not loaded: the slowest queries cannot be measured".to_owned(),
            format!(
                "add shared_preload_libraries = 'pg_stat_statements' to postgresql.conf (keep any library \
                 already listed), restart PostgreSQL, then in database {}: CREATE EXTENSION pg_stat_statements;",
                s.database
            ),
        ),
        (true, false) => (
            format!("pg_stat_statements is preloaded but not created in database {}", s.database),
            format!("in database {}: CREATE EXTENSION pg_stat_statements;", s.database),
        ),
        (false, true) => (
            "pg_stat_statements is created but not in shared_preload_libraries, so it records nothing".to_owned(),
            "add shared_preload_libraries = 'pg_stat_statements' to postgresql.conf (keep any library already \
             listed) and restart PostgreSQL"
                .to_owned(),
        ),
    };
    Some(
        PerfFinding::new("extension-missing", Status::Warn, "pg_stat_statements", message)
            .evidence(format!("in shared_preload_libraries: {}", if preloaded { "yes" } else { "no" }))
            .evidence(format!("CREATE EXTENSION done in {}: {}", s.database, if installed { "yes" } else { "no" }))
            .action(action),
    )
}

/// The `top` statements with the highest mean execution time over the window, among those
/// called at least `slow_min_calls` times, each judged against the thresholds.
pub(super) fn slow_queries(
    s: &PerfSnapshot,
    w: &Windowed<'_>,
    t: &PerfPostgresThresholds,
    top: usize,
) -> Vec<PerfFinding> {
    if !(s.stats.statements_preloaded && s.stats.statements_installed) {
        return Vec::new();
    }
    let min_calls = t.slow_min_calls.max(1);
    let mut judged: Vec<&StatementWindow<'_>> = w.statements.iter().filter(|q| q.calls >= min_calls).collect();
    if judged.is_empty() {
        return vec![PerfFinding::new(
            "slow-query",
            Status::Ok,
            "pg_stat_statements",
            format!("no statement ran {min_calls} times or more in the window"),
        )];
    }
    judged.sort_by(|a, b| b.mean_ms().total_cmp(&a.mean_ms()).then(b.calls.cmp(&a.calls)));
    let candidates = index_candidate_names(s, w, t);
    judged.into_iter().take(top.max(1)).map(|q| slow_query(q, t, &candidates)).collect()
}

fn slow_query(q: &StatementWindow<'_>, t: &PerfPostgresThresholds, candidates: &[String]) -> PerfFinding {
    let mean = q.mean_ms();
    let (verdict, judged) = if mean > t.slow_mean_critical_ms {
        (Status::Critical, format!(" (critical over {} ms)", t.slow_mean_critical_ms))
    } else if mean > t.slow_mean_warn_ms {
        (Status::Warn, format!(" (warning over {} ms)", t.slow_mean_warn_ms))
    } else {
        (Status::Ok, String::new())
    };
    #[allow(clippy::cast_precision_loss)]
    let rows_per_call = if q.calls == 0 { 0.0 } else { q.rows as f64 / q.calls as f64 };
    let st = q.stats;
    let mut f = PerfFinding::new(
        "slow-query",
        verdict,
        format!("queryid {}", st.queryid),
        format!("mean {mean:.1} ms over {} calls{judged}", count(q.calls)),
    )
    .value(Observation::new("mean_time", mean, Unit::Milliseconds))
    .value(Observation::new("calls", q.calls as f64, Unit::Count))
    .value(Observation::new("total_time", q.total_ms, Unit::Milliseconds))
    .value(Observation::new("rows_per_call", rows_per_call, Unit::Ratio))
    .evidence(format!("query: {}", st.query))
    .evidence(format!(
        "calls {}, total {:.1} s, mean {mean:.1} ms, rows {} ({rows_per_call:.1} per call)",
        count(q.calls),
        q.total_ms / 1000.0,
        count(q.rows)
    ));
    let blocks = st.shared_blks_hit + st.shared_blks_read;
    if blocks > 0 {
        f = f.evidence(format!(
            "shared blocks since the statistics started: {} hit, {} read ({:.1} % from the cache)",
            count(st.shared_blks_hit),
            count(st.shared_blks_read),
            percent(st.shared_blks_hit, blocks)
        ));
    }
    if verdict > Status::Ok {
        let mentioned: Vec<&str> = candidates
            .iter()
            .filter(|name| mentions(&st.query, name.rsplit('.').next().unwrap_or(name)))
            .map(String::as_str)
            .collect();
        let hint = if mentioned.is_empty() {
            "look for sequential scans on large tables and add an index on the filtered or joined columns \
             (CREATE INDEX CONCURRENTLY …)"
                .to_owned()
        } else {
            format!(
                "{} mostly read by sequential scans (see index-candidate): consider an index on the columns \
                 this query filters on (CREATE INDEX CONCURRENTLY … ON {} (…))",
                if mentioned.len() == 1 {
                    format!("{} is", mentioned[0])
                } else {
                    format!("{} are", mentioned.join(", "))
                },
                mentioned[0]
            )
        };
        f = f.action(format!("EXPLAIN (ANALYZE, BUFFERS) the query with real parameters; {hint}"));
    }
    f
}

/// Whether `query` names `table` as a word (`FROM big`, `JOIN public.big b`, `"big"`).
fn mentions(query: &str, table: &str) -> bool {
    let lower = query.to_lowercase();
    let table = table.trim_matches('"').to_lowercase();
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    lower.match_indices(&table).any(|(at, _)| {
        let before = lower[..at].chars().next_back();
        let after = lower[at + table.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// A table's row count: `n_live_tup`, or the planner's estimate when that is larger (right after
/// a bulk load, before the statistics caught up).
fn rows(t: &ops_core::ports::TableStats) -> u64 {
    t.live_tuples.max(t.estimated_rows.unwrap_or(0))
}

/// Index-scan share of a table's scans over the window; `None` when it was not scanned or is too
/// small to matter.
fn index_share(t: &ops_core::ports::TableStats, w: &Windowed<'_>, th: &PerfPostgresThresholds) -> Option<f64> {
    let scans = w.tables.get(&t.qualified_name())?;
    if rows(t) < th.index_min_rows || scans.seq_scan == 0 {
        return None;
    }
    Some(percent(scans.idx_scan, scans.seq_scan + scans.idx_scan))
}

fn index_candidate_names(s: &PerfSnapshot, w: &Windowed<'_>, th: &PerfPostgresThresholds) -> Vec<String> {
    s.tables
        .iter()
        .filter(|t| index_share(t, w, th).is_some_and(|share| share < th.index_scan_warn_percent))
        .map(|t| t.sql_name.clone())
        .collect()
}

/// Tables of at least `index_min_rows` rows whose scans in the window were mostly sequential.
pub(super) fn index_candidates(s: &PerfSnapshot, w: &Windowed<'_>, th: &PerfPostgresThresholds) -> Vec<PerfFinding> {
    let mut found: Vec<(u64, PerfFinding)> = Vec::new();
    for t in &s.tables {
        let Some(share) = index_share(t, w, th) else { continue };
        if share >= th.index_scan_warn_percent {
            continue;
        }
        let scans = w.tables[&t.qualified_name()];
        let per_scan = scans.seq_tup_read / scans.seq_scan.max(1);
        let mut f = PerfFinding::new(
            "index-candidate",
            Status::Warn,
            t.sql_name.clone(),
            format!(
                "{share:.1} % of {} scans used an index (under {} %) on {} rows",
                count(scans.seq_scan + scans.idx_scan),
                th.index_scan_warn_percent,
                count(rows(t))
            ),
        )
        .value(Observation::new("index_scan_share", share, Unit::Percent))
        .value(Observation::new("seq_scans", scans.seq_scan as f64, Unit::Count))
        .value(Observation::new("index_scans", scans.idx_scan as f64, Unit::Count))
        .value(Observation::new("rows", rows(t) as f64, Unit::Count))
        .evidence(format!(
            "{} sequential scans read {} rows ({} per scan); {} index scans",
            count(scans.seq_scan),
            count(scans.seq_tup_read),
            count(per_scan),
            count(scans.idx_scan)
        ))
        .evidence(format!("table size {}", human_bytes(t.size_bytes)));
        if t.idx_scan.is_none() {
            f = f.evidence("the table has no index at all");
        }
        f = f.action(format!(
            "find the queries reading {0} (slow-query findings, EXPLAIN (ANALYZE, BUFFERS)) and index the \
             columns they filter on: CREATE INDEX CONCURRENTLY ON {0} (…);",
            t.sql_name
        ));
        found.push((scans.seq_tup_read, f));
    }
    found.sort_by_key(|(read, _)| std::cmp::Reverse(*read));
    found.into_iter().map(|(_, f)| f).collect()
}

/// Indexes that may be dropped: never scanned, not backing a constraint, at least
/// `unused_index_min_bytes`.
pub(super) fn unused_indexes(s: &PerfSnapshot, th: &PerfPostgresThresholds) -> Vec<PerfFinding> {
    let since = s.stats.stats_reset.unwrap_or(s.stats.postmaster_start).format("%Y-%m-%d %H:%M UTC");
    s.indexes
        .iter()
        .filter(|i| {
            i.scans == 0
                && !i.unique
                && !i.primary
                && !i.constraint
                && i.valid
                && i.size_bytes >= th.unused_index_min_bytes
        })
        .map(|i| {
            PerfFinding::new(
                "unused-index",
                Status::Warn,
                i.sql_name.clone(),
                format!("never scanned since {since}, {} to keep up to date on every write", human_bytes(i.size_bytes)),
            )
            .value(Observation::new("size", i.size_bytes as f64, Unit::Bytes))
            .value(Observation::new("scans", 0.0, Unit::Count))
            .evidence(i.definition.clone())
            .evidence("scans on replicas are not counted here: check them before dropping")
            .action(format!("DROP INDEX CONCURRENTLY {};", i.sql_name))
        })
        .collect()
}

/// Two indexes of one table, same method, predicate and expressions, where `a`'s key columns
/// (with their operator classes, collations and order) are a prefix of `b`'s: `Some(redundant)`
/// when one of them can go.
pub(super) fn redundant<'a>(a: &'a IndexStats, b: &'a IndexStats) -> Option<&'a IndexStats> {
    let same_kind = a.schema == b.schema
        && a.table == b.table
        && a.name != b.name
        && a.method == b.method
        && a.predicate == b.predicate
        && a.expressions == b.expressions
        && a.valid
        && b.valid;
    if !same_kind || a.key_columns.len() > b.key_columns.len() {
        return None;
    }
    let n = a.key_columns.len();
    let prefix =
        a.key_columns[..] == b.key_columns[..n] && a.key_details[..] == b.key_details[..n.min(b.key_details.len())];
    if !prefix || n == 0 {
        return None;
    }
    let enforces = |i: &IndexStats| i.unique || i.primary || i.constraint;
    if n < b.key_columns.len() {
        // A shorter unique index enforces something the longer one does not.
        return (!enforces(a) && a.include_columns.is_empty()).then_some(a);
    }
    // Same key columns: the one with fewer INCLUDE columns is covered by the other.
    let covered = |x: &IndexStats, y: &IndexStats| x.include_columns.iter().all(|c| y.include_columns.contains(c));
    match (covered(a, b), covered(b, a)) {
        (true, true) => match (enforces(a), enforces(b)) {
            (true, true) if a.constraint && b.constraint => None,
            (true, true) if a.constraint => Some(b),
            (true, true) if b.constraint => Some(a),
            (true, true) => Some(if a.name > b.name { a } else { b }),
            (true, false) => Some(b),
            (false, true) => Some(a),
            (false, false) => Some(if a.name > b.name { a } else { b }),
        },
        (true, false) => (!enforces(a) || (a.unique == b.unique && !a.constraint)).then_some(a),
        (false, true) => (!enforces(b) || (a.unique == b.unique && !b.constraint)).then_some(b),
        (false, false) => None,
    }
}

/// Indexes made redundant by another of the same table.
pub(super) fn duplicate_indexes(s: &PerfSnapshot) -> Vec<PerfFinding> {
    let mut out = Vec::new();
    let mut reported: Vec<&str> = Vec::new();
    // Indexes come ordered by schema and table: compare within each table only.
    for group in s.indexes.chunk_by(|a, b| a.schema == b.schema && a.table == b.table) {
        for a in group {
            for b in group {
                let Some(r) = redundant(a, b) else { continue };
                if reported.contains(&r.sql_name.as_str()) {
                    continue;
                }
                let keep = if std::ptr::eq(r, a) { b } else { a };
                reported.push(&r.sql_name);
                let how = if r.key_columns.len() == keep.key_columns.len() {
                    "the same key columns"
                } else {
                    "its columns are a prefix of the other's"
                };
                out.push(
                    PerfFinding::new(
                        "duplicate-index",
                        Status::Warn,
                        r.sql_name.clone(),
                        format!("duplicates {} ({how}); {} for nothing", keep.sql_name, human_bytes(r.size_bytes)),
                    )
                    .value(Observation::new("size", r.size_bytes as f64, Unit::Bytes))
                    .value(Observation::new("scans", r.scans as f64, Unit::Count))
                    .evidence(format!("redundant: {} ({} scans)", r.definition, count(r.scans)))
                    .evidence(format!("kept: {} ({} scans)", keep.definition, count(keep.scans)))
                    .action(format!("DROP INDEX CONCURRENTLY {};", r.sql_name)),
                );
            }
        }
    }
    out
}

/// Indexes left invalid by a failed `CREATE INDEX CONCURRENTLY` or `REINDEX CONCURRENTLY` (or
/// being built right now: then informational).
pub(super) fn invalid_indexes(s: &PerfSnapshot) -> Vec<PerfFinding> {
    s.indexes
        .iter()
        .filter(|i| !i.valid)
        .map(|i| {
            let builder = s.backends.backends.iter().find(|b| {
                let q = b.query.to_lowercase();
                b.state == "active" && q.contains("concurrently") && mentions(&q, &i.name)
            });
            let f = PerfFinding::new(
                "invalid-index",
                if builder.is_some() { Status::Ok } else { Status::Warn },
                i.sql_name.clone(),
                match builder {
                    Some(b) => format!("invalid while pid {} builds it", b.pid),
                    None => "invalid (a CREATE INDEX or REINDEX CONCURRENTLY failed): queries cannot use it, \
                             writes may still maintain it"
                        .to_owned(),
                },
            )
            .value(Observation::new("size", i.size_bytes as f64, Unit::Bytes))
            .evidence(i.definition.clone());
            if builder.is_some() {
                f
            } else {
                f.action(format!(
                    "REINDEX INDEX CONCURRENTLY {0}; (or DROP INDEX CONCURRENTLY {0}; and create it again)",
                    i.sql_name
                ))
            }
        })
        .collect()
}
