//! Table health: `dead-tuples`, `vacuum`, `wraparound`, `sequence`, `cache-hit`.

use std::time::Duration;

use ops_core::Status;
use ops_core::config::{PerfPostgresThresholds, PostgresThresholds};
use ops_core::ports::{PerfSnapshot, SequenceStats, TableStats};

use super::delta::Windowed;
use super::{count, describe, when};
use crate::PerfFinding;
use ops_core::units::percent;
use ops_probes::{Observation, Unit};

/// Transaction IDs before wraparound (2^31): the server stops assigning them near this age.
const XID_LIMIT: u64 = 1 << 31;

/// Block reads needed before the cache hit ratio is judged (a fresh server has few).
const MIN_CACHE_BLOCKS: u64 = 1_000;

/// Oldest tables listed as wraparound evidence.
const OLDEST_TABLES: usize = 3;

use crate::report::over as verdict_over;

fn vacuum_evidence(t: &TableStats, now: chrono::DateTime<chrono::Utc>) -> Vec<String> {
    vec![
        format!("last vacuum {}, last autovacuum {}", when(t.last_vacuum, now), when(t.last_autovacuum, now)),
        format!("last analyze {}, last autoanalyze {}", when(t.last_analyze, now), when(t.last_autoanalyze, now)),
    ]
}

/// Tables with at least `dead_tuples_min` dead rows over the thresholds' share of all rows.
pub(super) fn dead_tuples(s: &PerfSnapshot, t: &PerfPostgresThresholds, p: &PostgresThresholds) -> Vec<PerfFinding> {
    // A transaction open for long keeps VACUUM from removing the rows it may still see.
    let holder = s
        .backends
        .backends
        .iter()
        .filter(|b| b.pid != s.backends.own_pid && b.backend_type != "autovacuum worker")
        .filter(|b| b.transaction_age.is_some_and(|a| a > Duration::from_secs(p.idle_in_transaction_secs)))
        .max_by_key(|b| b.transaction_age);
    let mut found: Vec<(u64, PerfFinding)> = s
        .tables
        .iter()
        .filter(|x| x.dead_tuples >= t.dead_tuples_min)
        .filter_map(|x| {
            let share = percent(x.dead_tuples, x.dead_tuples + x.live_tuples);
            let verdict = verdict_over(share, t.dead_tuples_warn_percent, t.dead_tuples_critical_percent);
            if verdict == Status::Ok {
                return None;
            }
            let mut f = PerfFinding::new(
                "dead-tuples",
                verdict,
                x.sql_name.clone(),
                format!(
                    "{share:.1} % dead rows ({} dead, {} live; over {} %)",
                    count(x.dead_tuples),
                    count(x.live_tuples),
                    if verdict == Status::Critical {
                        t.dead_tuples_critical_percent
                    } else {
                        t.dead_tuples_warn_percent
                    }
                ),
            )
            .value(Observation::new("dead_share", share, Unit::Percent))
            .value(Observation::new("dead_tuples", x.dead_tuples as f64, Unit::Count))
            .value(Observation::new("live_tuples", x.live_tuples as f64, Unit::Count))
            .value(Observation::new("size", x.size_bytes as f64, Unit::Bytes));
            for e in vacuum_evidence(x, s.taken_at) {
                f = f.evidence(e);
            }
            if let Some(h) = holder {
                f = f.evidence(format!("an open transaction keeps VACUUM from removing rows: {}", describe(h)));
            }
            Some((x.dead_tuples, f.action(format!("VACUUM (ANALYZE) {};", x.sql_name))))
        })
        .collect();
    found.sort_by_key(|(dead, _)| std::cmp::Reverse(*dead));
    found.into_iter().map(|(_, f)| f).collect()
}

/// Large tables whose planner statistics are missing or stale (informational: the planner
/// guesses, and guesses make slow plans).
pub(super) fn vacuum_staleness(s: &PerfSnapshot, t: &PerfPostgresThresholds) -> Vec<PerfFinding> {
    s.tables
        .iter()
        .filter(|x| x.live_tuples.max(x.estimated_rows.unwrap_or(0)) >= t.index_min_rows)
        .filter_map(|x| {
            let never = x.last_analyze.is_none() && x.last_autoanalyze.is_none();
            // Autoanalyze runs after 50 rows + 10 % changed (the defaults); twice that is late.
            let due = 2 * (50 + x.live_tuples / 10);
            let stale = x.modified_since_analyze > due.max(t.dead_tuples_min);
            let message = if never {
                format!("{} rows, never analyzed: the planner works from guesses", count(x.live_tuples))
            } else if stale {
                format!(
                    "{} rows changed since the last analyze, of {}: planner statistics are stale",
                    count(x.modified_since_analyze),
                    count(x.live_tuples)
                )
            } else {
                return None;
            };
            let mut f = PerfFinding::new("vacuum", Status::Ok, x.sql_name.clone(), message).value(Observation::new(
                "modified_since_analyze",
                x.modified_since_analyze as f64,
                Unit::Count,
            ));
            for e in vacuum_evidence(x, s.taken_at) {
                f = f.evidence(e);
            }
            Some(f.action(format!("ANALYZE {};", x.sql_name)))
        })
        .collect()
}

/// Transaction ID age of the database (`age(datfrozenxid)`), with the oldest tables.
pub(super) fn wraparound(s: &PerfSnapshot, t: &PerfPostgresThresholds) -> PerfFinding {
    let age = s.stats.frozen_xid_age;
    #[allow(clippy::cast_precision_loss)]
    let verdict = verdict_over(age as f64, t.wraparound_warn_age as f64, t.wraparound_critical_age as f64);
    let share = percent(age, XID_LIMIT);
    let mut f = PerfFinding::new(
        "wraparound",
        verdict,
        s.database.clone(),
        format!(
            "transaction ID age {} ({share:.1} % of the 2^31 limit; autovacuum freezes from {})",
            count(age),
            count(s.stats.autovacuum_freeze_max_age)
        ),
    )
    .value(Observation::new("xid_age", age as f64, Unit::Count))
    .value(Observation::new("xid_age_share", share, Unit::Percent));
    let mut oldest: Vec<&TableStats> = s.tables.iter().filter(|x| x.frozen_xid_age > 0).collect();
    oldest.sort_by_key(|x| std::cmp::Reverse(x.frozen_xid_age));
    for x in oldest.iter().take(OLDEST_TABLES) {
        f = f.evidence(format!(
            "{}: age {} (last vacuum {}, last autovacuum {})",
            x.sql_name,
            count(x.frozen_xid_age),
            when(x.last_vacuum, s.taken_at),
            when(x.last_autovacuum, s.taken_at)
        ));
    }
    if let Some((db, db_age)) = &s.stats.oldest_database
        && db != &s.database
        && *db_age > age
    {
        f = f.evidence(format!("oldest database on the server: {db}, age {}", count(*db_age)));
    }
    if verdict > Status::Ok {
        let tables: Vec<&str> = oldest.iter().take(OLDEST_TABLES).map(|x| x.sql_name.as_str()).collect();
        f = f.action(format!(
            "VACUUM (FREEZE, VERBOSE) {}; and find what holds the horizon back: long transactions, \
             pg_prepared_xacts, unused replication slots (pg_replication_slots)",
            if tables.is_empty() { s.database.as_str().to_owned() } else { tables.join(", ") }
        ));
    }
    f
}

/// The largest and smallest values of an integer type (`integer`).
fn type_range(name: &str) -> Option<(i64, i64)> {
    match name {
        "smallint" => Some((i64::from(i16::MIN), i64::from(i16::MAX))),
        "integer" => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
        "bigint" => Some((i64::MIN, i64::MAX)),
        _ => None,
    }
}

/// How much of its range a sequence has used, in percent, and the limit it runs into: its own
/// `max_value` (or `min_value` when descending), or the narrower type of the column it feeds.
pub(super) fn sequence_usage(q: &SequenceStats) -> Option<(f64, i64)> {
    let last = q.last_value?;
    if q.cycle || q.increment == 0 {
        return None;
    }
    let column = q.owner_type.as_deref().and_then(type_range);
    #[allow(clippy::cast_precision_loss)]
    let share = |used: i128, range: i128| if range <= 0 { 100.0 } else { used as f64 * 100.0 / range as f64 };
    if q.increment > 0 {
        let limit = column.map_or(q.max_value, |(_, max)| max.min(q.max_value));
        Some((share(i128::from(last) - i128::from(q.min_value), i128::from(limit) - i128::from(q.min_value)), limit))
    } else {
        let limit = column.map_or(q.min_value, |(min, _)| min.max(q.min_value));
        Some((share(i128::from(q.max_value) - i128::from(last), i128::from(q.max_value) - i128::from(limit)), limit))
    }
}

/// Sequences over the thresholds' share of their range.
pub(super) fn sequences(s: &PerfSnapshot, t: &PerfPostgresThresholds) -> Vec<PerfFinding> {
    s.sequences
        .iter()
        .filter_map(|q| {
            let (used, limit) = sequence_usage(q)?;
            let verdict = verdict_over(used, t.sequence_warn_percent, t.sequence_critical_percent);
            if verdict == Status::Ok {
                return None;
            }
            let last = q.last_value.unwrap_or(0);
            let narrower_column = q.owner_type.as_deref().is_some_and(|c| c != "bigint") && q.data_type == "bigint";
            let feeds = match (&q.owner_column, &q.owner_type) {
                (Some(c), Some(ty)) => format!(" ({ty} column {c})"),
                _ => String::new(),
            };
            let mut f = PerfFinding::new(
                "sequence",
                verdict,
                q.sql_name.clone(),
                format!("{used:.1} % used: {} of {}{feeds}", last, limit),
            )
            .value(Observation::new("sequence_used", used, Unit::Percent))
            .evidence(format!(
                "{} sequence, last value {last}, increment {}, range {} … {}",
                q.data_type, q.increment, q.min_value, q.max_value
            ));
            if narrower_column {
                f = f.evidence("the column is narrower than the sequence: inserts fail at the column's limit");
            }
            let mut steps = Vec::new();
            if let (Some(column), Some(ty)) = (&q.owner_column, &q.owner_type)
                && ty != "bigint"
            {
                let (table, col) = column.rsplit_once('.').unwrap_or((column.as_str(), ""));
                steps.push(format!(
                    "ALTER TABLE {table} ALTER COLUMN {col} TYPE bigint; (rewrites the table under an exclusive \
                     lock: plan a window)"
                ));
            }
            if q.data_type != "bigint" {
                steps.push(format!("ALTER SEQUENCE {} AS bigint;", q.sql_name));
            } else if steps.is_empty() {
                steps.push(format!("ALTER SEQUENCE {} MAXVALUE …; (or CYCLE, if reused values are safe)", q.sql_name));
            }
            f = f.action(steps.join(" then "));
            Some(f)
        })
        .collect()
}

/// The database's buffer cache hit ratio over the window.
pub(super) fn cache_hit(w: &Windowed<'_>, t: &PerfPostgresThresholds) -> PerfFinding {
    let total = w.blks_hit + w.blks_read;
    let ratio = percent(w.blks_hit, total);
    let values = [
        Observation::new("blocks_hit", w.blks_hit as f64, Unit::Count),
        Observation::new("blocks_read", w.blks_read as f64, Unit::Count),
    ];
    if total < MIN_CACHE_BLOCKS {
        let mut f = PerfFinding::new(
            "cache-hit",
            Status::Ok,
            "buffer cache",
            format!("too few block reads in the window to judge ({})", count(total)),
        );
        for v in values {
            f = f.value(v);
        }
        return f;
    }
    let verdict = if ratio < t.cache_hit_critical_percent {
        Status::Critical
    } else if ratio < t.cache_hit_warn_percent {
        Status::Warn
    } else {
        Status::Ok
    };
    let mut f = PerfFinding::new(
        "cache-hit",
        verdict,
        "buffer cache",
        format!(
            "{ratio:.2} % of block reads served from shared buffers{}",
            match verdict {
                Status::Critical => format!(" (critical under {} %)", t.cache_hit_critical_percent),
                Status::Warn => format!(" (warning under {} %)", t.cache_hit_warn_percent),
                _ => String::new(),
            }
        ),
    )
    .value(Observation::new("cache_hit", ratio, Unit::Percent));
    for v in values {
        f = f.value(v);
    }
    f = f.evidence(format!("{} blocks hit, {} read", count(w.blks_hit), count(w.blks_read)));
    if verdict > Status::Ok {
        f = f.action(
            "find the statements reading the most blocks (slow-query evidence: shared blocks read) and index \
             them; otherwise raise shared_buffers (about 25 % of RAM) and restart",
        );
    }
    f
}
