//! Retention: which backups to keep, by age (`retention-days`, the runbooks' `RETENTION_DAYS`)
//! and grandfather-father-son (`keep-daily`, `keep-weekly`, `keep-monthly`). The plan is a
//! pure function, printed before anything is deleted; the newest complete backup is never
//! deleted.

use chrono::{DateTime, Datelike, Duration, Utc};
use ops_core::Context;
use serde::{Deserialize, Serialize};

use crate::catalog;
use crate::naming::BackupId;
use crate::{Error, Result, target};

/// How long backups are kept in one destination. Nothing configured keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RetentionPolicy {
    /// Keep every backup younger than this many days.
    pub max_age_days: Option<u32>,
    /// Keep the newest backup of each of the last N days that have one.
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks that have one.
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months that have one.
    pub keep_monthly: Option<u32>,
}

impl RetentionPolicy {
    fn is_empty(&self) -> bool {
        self.max_age_days.is_none()
            && self.keep_daily.is_none()
            && self.keep_weekly.is_none()
            && self.keep_monthly.is_none()
    }
}

/// A backup as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Id.
    pub id: BackupId,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// Has its manifest.
    pub complete: bool,
}

/// Keep or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Keep.
    Keep,
    /// Delete.
    Delete,
}

/// One decision and the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Backup id.
    pub id: BackupId,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// Keep or delete.
    pub action: Action,
    /// Why (`newest complete backup`, `daily 3 of 7`, `older than 30 days`).
    pub rule: String,
}

/// Maps a time to the period (day, ISO week, month) it falls in.
type Period = fn(&DateTime<Utc>) -> (i32, u32);

/// Incomplete backups younger than this may still be running.
const INCOMPLETE_GRACE_HOURS: i64 = 24;

/// Decides, for every candidate, keep or delete.
#[must_use]
pub fn plan(candidates: &[Candidate], policy: &RetentionPolicy, now: DateTime<Utc>) -> Vec<Decision> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by_key(|c| std::cmp::Reverse(c.started_at));
    let newest_complete = sorted.iter().find(|c| c.complete).map(|c| c.id.clone());
    let mut rules: Vec<Option<String>> = vec![None; sorted.len()];

    // Grandfather-father-son over complete backups, newest first: the newest of each period.
    let buckets: [(Option<u32>, &str, Period); 3] = [
        (policy.keep_daily, "daily", |t| (t.year(), t.ordinal())),
        (policy.keep_weekly, "weekly", |t| (t.iso_week().year(), t.iso_week().week())),
        (policy.keep_monthly, "monthly", |t| (t.year(), t.month())),
    ];
    for (limit, name, period) in buckets {
        let Some(limit) = limit else { continue };
        let mut seen = Vec::new();
        for (i, c) in sorted.iter().enumerate() {
            if !c.complete || seen.len() >= limit as usize {
                continue;
            }
            let p = period(&c.started_at);
            if !seen.contains(&p) {
                seen.push(p);
                rules[i].get_or_insert_with(|| format!("{name} {} of {limit}", seen.len()));
            }
        }
    }

    sorted
        .iter()
        .zip(rules)
        .map(|(c, gfs)| {
            let age = now - c.started_at;
            let (action, rule) = if Some(&c.id) == newest_complete.as_ref() {
                (Action::Keep, "newest complete backup".to_owned())
            } else if !c.complete {
                if age > Duration::hours(INCOMPLETE_GRACE_HOURS) {
                    (Action::Delete, format!("incomplete (no manifest) and older than {INCOMPLETE_GRACE_HOURS} h"))
                } else {
                    (Action::Keep, format!("incomplete but younger than {INCOMPLETE_GRACE_HOURS} h (may be running)"))
                }
            } else if let Some(rule) = gfs {
                (Action::Keep, rule)
            } else if policy.is_empty() {
                (Action::Keep, "no retention configured".to_owned())
            } else if let Some(days) = policy.max_age_days.filter(|d| age < Duration::days(i64::from(*d))) {
                (Action::Keep, format!("younger than {days} days"))
            } else {
                let why = match policy.max_age_days {
                    Some(days) => format!("older than {days} days"),
                    None => "not kept by any daily/weekly/monthly rule".to_owned(),
                };
                (Action::Delete, why)
            };
            Decision { id: c.id.clone(), started_at: c.started_at, action, rule }
        })
        .collect()
}

/// The plan for one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationPlan {
    /// Where.
    pub location: String,
    /// Its policy.
    pub policy: RetentionPolicy,
    /// Every backup there.
    pub decisions: Vec<Decision>,
    /// Backups deleted (empty for a dry run).
    pub deleted: Vec<BackupId>,
    /// Deletions that failed, with the reason.
    pub failed: Vec<(BackupId, String)>,
}

/// What `prune` planned and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    /// Whether anything was deleted.
    pub dry_run: bool,
    /// Each destination.
    pub destinations: Vec<DestinationPlan>,
}

/// The policies from the configuration: the local directory keeps `retention-days` (plus
/// the GFS rules); the primary store follows the GFS rules only.
fn policies(ctx: &Context) -> (RetentionPolicy, RetentionPolicy) {
    let Some(s) = ctx.config.storage.as_ref() else { return Default::default() };
    let gfs = RetentionPolicy {
        max_age_days: None,
        keep_daily: s.keep_daily,
        keep_weekly: s.keep_weekly,
        keep_monthly: s.keep_monthly,
    };
    let local = RetentionPolicy { max_age_days: Some(s.retention_days), ..gfs.clone() };
    let primary_is_local = matches!(s.location(), Ok(ops_core::config::StorageLocation::Dir(_)));
    (if primary_is_local { local.clone() } else { gfs }, local)
}

/// Plans retention for every destination and, unless `dry_run`, deletes what the plan says
/// (manifest first, so an interrupted deletion leaves an incomplete backup, never a
/// complete-looking one without its dump).
///
/// # Errors
/// `InvalidInput` without storage; the store's error when a listing fails.
pub async fn prune(ctx: &Context, dry_run: bool, now: DateTime<Utc>) -> Result<PruneReport> {
    let all = catalog::index(ctx).await?;
    let (primary_policy, local_policy) = policies(ctx);
    let stores = target::stores(ctx)?;
    let mut destinations = Vec::new();
    for (i, store) in stores.iter().enumerate() {
        let policy = if i == 0 && ctx.storage.is_some() { primary_policy.clone() } else { local_policy.clone() };
        let location = store.location();
        let candidates: Vec<Candidate> = all
            .iter()
            .filter_map(|b| {
                let copy = b.copies.iter().find(|c| c.location == location)?;
                Some(Candidate {
                    id: b.id.clone(),
                    started_at: b.started_at,
                    complete: copy.dump_key.is_some() && copy.has_manifest,
                })
            })
            .collect();
        let decisions = plan(&candidates, &policy, now);
        let mut deleted = Vec::new();
        let mut failed = Vec::new();
        if !dry_run {
            for d in decisions.iter().filter(|d| d.action == Action::Delete) {
                let entry = all.iter().find(|b| b.id == d.id);
                let dump_key = entry
                    .and_then(|b| b.copies.iter().find(|c| c.location == location))
                    .and_then(|c| c.dump_key.clone());
                let mut keys = vec![d.id.manifest_key()];
                keys.extend(dump_key);
                keys.push(d.id.verify_key());
                keys.push(d.id.failed_key());
                let mut error: Option<Error> = None;
                for key in keys {
                    if let Err(e) = store.delete(&key).await {
                        error = Some(e);
                        break;
                    }
                }
                match error {
                    None => deleted.push(d.id.clone()),
                    Some(e) => failed.push((d.id.clone(), e.to_string())),
                }
            }
        }
        destinations.push(DestinationPlan { location, policy, decisions, deleted, failed });
    }
    Ok(PruneReport { dry_run, destinations })
}

#[cfg(test)]
mod tests;
