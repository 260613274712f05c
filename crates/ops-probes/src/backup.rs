//! The age of the newest complete backup of each database, against the RPO (the runbooks:
//! 24 h), and whether the newest attempt failed. Reads the listings only, like the metrics.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ops_backup::BackupEntry;
use ops_core::config::BackupThresholds;
use ops_core::{Context, Runbook, Status};

use crate::{Observation, ProbeKind, ProbeReport, Problem, Unit};

/// One report per configured database (`backup:{name}`); none without storage.
pub async fn probe(ctx: &Context, thresholds: &BackupThresholds, timeout: Duration) -> Vec<ProbeReport> {
    if ctx.storage.is_none() && ctx.local_storage.is_none() {
        return Vec::new();
    }
    let started = Instant::now();
    let target = ctx.config.storage.as_ref().map(|s| s.url.clone()).unwrap_or_default();
    let listing = match tokio::time::timeout(timeout, ops_backup::catalog::index(ctx)).await {
        Ok(Ok(all)) => all,
        outcome => {
            let why = match outcome {
                Ok(Err(e)) => format!("backups could not be listed: {e}"),
                _ => format!("listing backups took over {:.0} s", timeout.as_secs_f64()),
            };
            return ctx
                .databases
                .keys()
                .map(|name| {
                    let mut r = ProbeReport::new(ProbeKind::Backup, name, target.clone());
                    r.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, why.clone()));
                    r.finish(started.elapsed())
                })
                .collect();
        }
    };
    ctx.databases
        .keys()
        .map(|name| {
            let mine: Vec<&BackupEntry> = listing.iter().filter(|b| b.is_of(name)).collect();
            let mut r = assess(name, &target, &mine, thresholds, Utc::now());
            r.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            r
        })
        .collect()
}

/// The verdict over one database's backups (newest first or in any order).
#[must_use]
pub fn assess(
    name: &str,
    target: &str,
    backups: &[&BackupEntry],
    thresholds: &BackupThresholds,
    now: DateTime<Utc>,
) -> ProbeReport {
    let mut r = ProbeReport::new(ProbeKind::Backup, name, target);
    let newest_complete = backups.iter().filter(|b| b.complete).max_by_key(|b| b.started_at);
    let newest_failed = backups.iter().filter(|b| b.failed && !b.complete).max_by_key(|b| b.started_at);
    let max_age = chrono::Duration::hours(i64::try_from(thresholds.max_age_hours).unwrap_or(i64::MAX / 3600));
    match newest_complete {
        None => r.problem(Problem::new(Runbook::BackupStale, Status::Critical, "no complete backup found")),
        Some(b) => {
            let age = now - b.started_at;
            #[allow(clippy::cast_precision_loss)]
            r.observe(Observation::new("age", age.num_seconds() as f64, Unit::Seconds));
            r.evidence.push(format!("newest complete backup {} ({})", b.id.as_str(), b.started_at.to_rfc3339()));
            if age > max_age {
                r.problem(Problem::new(
                    Runbook::BackupStale,
                    Status::Critical,
                    format!(
                        "newest complete backup is {} old, over the {} h RPO",
                        human(age.to_std().unwrap_or_default()),
                        thresholds.max_age_hours
                    ),
                ));
            } else {
                r.message = format!("newest complete backup {} old", human(age.to_std().unwrap_or_default()));
            }
        }
    }
    if let Some(f) = newest_failed
        && newest_complete.is_none_or(|c| f.started_at > c.started_at)
    {
        let why = f.copies.iter().find_map(|c| c.failure.as_ref().map(|x| x.error.clone()));
        let mut p =
            Problem::new(Runbook::BackupStale, Status::Critical, format!("the newest backup {} failed", f.id.as_str()));
        p.evidence.extend(why);
        r.problem(p);
    }
    r.finish(Duration::ZERO)
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use ops_backup::naming::BackupId;

    use super::*;

    fn entry(hours_ago: i64, complete: bool, now: DateTime<Utc>) -> BackupEntry {
        let at = now - chrono::Duration::hours(hours_ago);
        BackupEntry {
            id: BackupId::new("shop", at),
            started_at: at,
            compression: None,
            complete,
            failed: !complete,
            database: Some("main".to_owned()),
            copies: Vec::new(),
        }
    }

    #[test]
    fn fresh_stale_failed_and_missing() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let t = BackupThresholds::default();
        let fresh = entry(3, true, now);
        let r = assess("main", "s3://b", &[&fresh], &t, now);
        assert_eq!((r.status, r.message.as_str()), (Status::Ok, "newest complete backup 3 h old"));

        let old = entry(30, true, now);
        let r = assess("main", "s3://b", &[&old], &t, now);
        assert_eq!(r.status, Status::Critical);
        assert!(r.message.contains("30 h old, over the 24 h RPO"), "{}", r.message);

        let failed = entry(1, false, now);
        let r = assess("main", "s3://b", &[&fresh, &failed], &t, now);
        assert_eq!(r.problems.len(), 1);
        assert!(r.problems[0].message.contains("failed"), "{:?}", r.problems);
        // A failure older than the newest success is history, not a problem.
        let r = assess("main", "s3://b", &[&entry(2, true, now), &entry(5, false, now)], &t, now);
        assert_eq!(r.status, Status::Ok);

        let r = assess("main", "s3://b", &[], &t, now);
        assert_eq!(r.message, "no complete backup found");
    }
}
