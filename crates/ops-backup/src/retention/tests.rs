use chrono::{Duration, TimeZone, Utc};

use super::*;

fn daily(days: i64, hour: u32) -> Vec<Candidate> {
    let start = Utc.with_ymd_and_hms(2026, 1, 1, hour, 0, 0).unwrap();
    (0..days)
        .map(|d| {
            let at = start + Duration::days(d);
            Candidate::new(BackupId::new("db", at), at, true)
        })
        .collect()
}

fn kept(decisions: &[Decision]) -> Vec<String> {
    decisions.iter().filter(|d| d.action == Verdict::Keep).map(|d| d.started_at.format("%m-%d").to_string()).collect()
}

#[test]
fn max_age_deletes_old_but_never_the_newest_complete() {
    let backups = daily(40, 2);
    let now = backups.last().unwrap().started_at + Duration::hours(1);
    let policy = RetentionPolicy { max_age_days: Some(30), ..Default::default() };
    let d = plan(&backups, &policy, now);
    assert_eq!(kept(&d).len(), 30);
    assert!(d.iter().filter(|d| d.action == Verdict::Delete).all(|d| d.rule == "older than 30 days"));
    // Everything old: the newest complete one survives anyway.
    let later = now + Duration::days(365);
    let d = plan(&backups, &policy, later);
    assert_eq!(kept(&d), ["02-09"]);
    assert_eq!(d[0].rule, "newest complete backup");
}

#[test]
fn gfs_keeps_one_per_period() {
    // Two backups a day for 90 days.
    let mut backups = daily(90, 2);
    backups.extend(daily(90, 14));
    let now = Utc.with_ymd_and_hms(2026, 3, 31, 15, 0, 0).unwrap();
    let policy =
        RetentionPolicy { keep_daily: Some(7), keep_weekly: Some(4), keep_monthly: Some(3), ..Default::default() };
    let d = plan(&backups, &policy, now);
    let keep: Vec<&Decision> = d.iter().filter(|d| d.action == Verdict::Keep).collect();
    // 7 daily (the 14:00 ones of the last 7 days), weekly and monthly add older Sundays / month ends.
    // The newest is kept as such; with it, 7 days are covered.
    assert_eq!(keep.iter().filter(|d| d.rule.starts_with("daily") || d.rule == "newest complete backup").count(), 7);
    assert!(keep.iter().all(|d| d.started_at.format("%H").to_string() == "14"), "newest of each day");
    let monthly: Vec<String> = keep
        .iter()
        .filter(|d| d.rule.starts_with("monthly"))
        .map(|d| d.started_at.format("%m-%d").to_string())
        .collect();
    assert_eq!(monthly, ["02-28", "01-31"], "the newest of each month not already kept");
    assert!(keep.len() <= 7 + 4 + 3);
    assert!(d.iter().filter(|d| d.action == Verdict::Delete).all(|d| d.rule.contains("not kept")));
}

#[test]
fn incomplete_backups_get_a_grace_period() {
    let now = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
    let mk = |h: i64, complete| {
        let at = now - Duration::hours(h);
        Candidate::new(BackupId::new("db", at), at, complete)
    };
    let d = plan(&[mk(1, false), mk(30, false), mk(48, true)], &RetentionPolicy::default(), now);
    assert_eq!(d[0].action, Verdict::Keep, "{:?}", d[0]);
    assert_eq!(d[1].action, Verdict::Delete, "{:?}", d[1]);
    assert_eq!(d[2].rule, "newest complete backup");
}

#[test]
fn no_policy_keeps_everything() {
    let backups = daily(5, 2);
    let now = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
    let d = plan(&backups, &RetentionPolicy::default(), now);
    assert!(d.iter().all(|d| d.action == Verdict::Keep));
}

#[test]
fn the_grace_of_an_incomplete_backup_counts_from_its_last_write() {
    // A backup that started 30 h ago and whose dump landed an hour ago may still be
    // finishing: it is not older than the grace.
    let now = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
    let at = now - Duration::hours(30);
    let mut slow = Candidate::new(BackupId::new("db", at), at, false);
    slow.last_written = Some(now - Duration::hours(1));
    let old = now - Duration::hours(48);
    let d = plan(&[slow, Candidate::new(BackupId::new("db", old), old, true)], &RetentionPolicy::default(), now);
    assert_eq!(d[0].action, Verdict::Keep, "{:?}", d[0]);
    assert!(d[0].rule.contains("may be running"), "{:?}", d[0]);
}

#[test]
fn a_backup_that_failed_verification_fills_no_slot() {
    // Daily backups; the newest one failed its verification.
    let mut backups = daily(5, 2);
    backups.last_mut().unwrap().verification_failed = true;
    let now = backups.last().unwrap().started_at + Duration::hours(1);
    let policy = RetentionPolicy { keep_daily: Some(2), ..Default::default() };
    let d = plan(&backups, &policy, now);
    // Newest first: the damaged one goes, the next good one is the protected newest, and the
    // second daily slot goes to the one before it.
    assert_eq!(d[0].action, Verdict::Delete, "{:?}", d[0]);
    assert!(d[0].rule.starts_with("last verification failed"), "{:?}", d[0]);
    assert_eq!(d[1].rule, "newest complete backup");
    assert_eq!(d[2].action, Verdict::Keep, "{:?}", d[2]);
    assert_eq!(d[3].action, Verdict::Delete, "{:?}", d[3]);
    // When every complete backup failed, the newest is still kept: it may be all there is.
    for b in &mut backups {
        b.verification_failed = true;
    }
    let d = plan(&backups, &policy, now);
    assert_eq!(d[0].rule, "newest complete backup");
}
