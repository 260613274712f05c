//! `[[sql]]` checks: a read-only query whose single value is judged against thresholds, the
//! runbooks' `SELECT MAX(ledger_sequence) FROM events` (is the indexer behind?), events in the
//! last two hours (a gap), payments pending for over 30 minutes.
//!
//! A number is judged as it is; a time by its age in seconds; an interval by its seconds.
//! Over `critical-above` (or under `critical-below`) is critical, over `warn-above` (under
//! `warn-below`) warn, both under the check's runbook (`data-stale` by default). A query that
//! fails, times out, or returns other than one value is `probe-failed` unknown: the check
//! could not tell.

use std::time::Duration;

use chrono::Utc;
use ops_core::config::SqlCheckConfig;
use ops_core::ports::{Database, SqlValue};
use ops_core::{Runbook, Status};

use crate::report::{Observation, ProbeKind, ProbeReport, Problem, Unit};
use crate::support::within;

/// Runs `check` on database `db` (named `database`) within `timeout` (also the query's
/// `statement_timeout`, unless the check sets its own `timeout-secs`).
///
/// Observations: `value` (a number; seconds for an interval) or `age` (seconds, for a time).
pub async fn probe(check: &SqlCheckConfig, database: &str, db: &dyn Database, timeout: Duration) -> ProbeReport {
    let mut base = ProbeReport::new(ProbeKind::Sql, &check.name, format!("database {database}"));
    base.critical = check.critical;
    base.depends_on =
        if check.depends_on.is_empty() { vec![format!("postgres:{database}")] } else { check.depends_on.clone() };
    let limit = check.timeout_secs.map_or(timeout, Duration::from_secs);
    // The whole probe gets a little longer than the statement, so the server's own timeout,
    // which names itself, is what a slow query reports.
    within(base, limit + Duration::from_secs(2), |mut report| async move {
        match db.query_value(&check.query, limit).await {
            Ok(value) => judge(check, value, &mut report),
            Err(e) => report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, e.to_string())),
        }
        report
    })
    .await
}

/// Files the value's verdict on `report`.
fn judge(check: &SqlCheckConfig, value: SqlValue, report: &mut ProbeReport) {
    let (measured, shown, obs) = match value {
        SqlValue::Null => {
            report.problem(Problem::new(
                Runbook::ProbeFailed,
                Status::Unknown,
                "the query returned NULL (an empty table?): use coalesce() to give it a value",
            ));
            return;
        }
        SqlValue::Number(n) => (n, format_number(n), Observation::new("value", n, Unit::Count)),
        SqlValue::Interval(secs) => {
            (secs, ops_core::units::human_duration(secs_of(secs)), Observation::new("value", secs, Unit::Seconds))
        }
        SqlValue::Time(t) => {
            #[allow(clippy::cast_precision_loss)]
            let age = Utc::now().signed_duration_since(t).num_milliseconds() as f64 / 1000.0;
            let at = t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let shown = if age >= 0.0 {
                format!("{} old ({at})", ops_core::units::human_duration(secs_of(age)))
            } else {
                format!("in the future ({at})")
            };
            (age, shown, Observation::new("age", age, Unit::Seconds))
        }
    };
    report.observe(obs);
    let runbook = check.runbook.unwrap_or(Runbook::DataStale);
    // A time reads as its age ("7 min old (…)"), a number or interval as "value …".
    let what = if matches!(value, SqlValue::Time(_)) { "" } else { "value " };
    let limit_text = |l: f64| match value {
        SqlValue::Time(_) | SqlValue::Interval(_) => ops_core::units::human_duration(secs_of(l)),
        _ => format_number(l),
    };
    let verdict = [
        (check.critical_above.filter(|&c| measured > c), Status::Critical, "over"),
        (check.critical_below.filter(|&c| measured < c), Status::Critical, "under"),
        (check.warn_above.filter(|&w| measured > w), Status::Warn, "over"),
        (check.warn_below.filter(|&w| measured < w), Status::Warn, "under"),
    ]
    .into_iter()
    .find_map(|(hit, status, side)| hit.map(|l| (status, side, l)));
    match verdict {
        Some((status, side, l)) => {
            report.problem(Problem::new(runbook, status, format!("{what}{shown}: {side} {}", limit_text(l))));
        }
        None => report.message = format!("{what}{shown}"),
    }
}

/// A duration of `secs` seconds, 0 for negative and the longest for what does not fit.
fn secs_of(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
}

/// A number as people read it: no `.0` on whole numbers.
fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{n:.0}") } else { format!("{n:.3}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> SqlCheckConfig {
        SqlCheckConfig {
            name: "lag".into(),
            query: "SELECT 1".into(),
            warn_above: Some(300.0),
            critical_above: Some(600.0),
            ..SqlCheckConfig::default()
        }
    }

    fn status(c: &SqlCheckConfig, v: SqlValue) -> (Status, String) {
        let mut r = ProbeReport::new(ProbeKind::Sql, "lag", "database main");
        judge(c, v, &mut r);
        let r = r.finish(Duration::ZERO);
        (r.status, r.problems.first().map(|p| p.message.clone()).unwrap_or(r.message))
    }

    #[test]
    fn ages_and_values_cross_the_thresholds() {
        let c = check();
        let ago = |s: i64| SqlValue::Time(Utc::now() - chrono::Duration::seconds(s));
        assert_eq!(status(&c, ago(10)).0, Status::Ok);
        let (s, m) = status(&c, ago(400));
        assert_eq!(s, Status::Warn);
        assert!(m.starts_with("6 min old (") && m.ends_with("): over 5 min"), "{m}");
        assert_eq!(status(&c, ago(700)).0, Status::Critical);
        assert_eq!(status(&c, SqlValue::Number(601.0)).0, Status::Critical);
        assert_eq!(status(&c, SqlValue::Number(300.0)).0, Status::Ok, "at the threshold is not over it");
        let below = SqlCheckConfig { warn_below: Some(10.0), critical_below: Some(1.0), ..check() };
        assert_eq!(status(&below, SqlValue::Number(0.0)).0, Status::Critical);
        assert_eq!(status(&below, SqlValue::Number(5.0)).0, Status::Warn);
        let (s, m) = status(&c, SqlValue::Null);
        assert_eq!(s, Status::Unknown);
        assert!(m.contains("NULL"), "{m}");
    }
}
