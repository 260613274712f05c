//! Retention: which backups to keep, by age (`retention-days`, the runbooks' `RETENTION_DAYS`)
//! and grandfather-father-son (`keep-daily`, `keep-weekly`, `keep-monthly`). The plan is a
//! pure function over one database's backups in one destination, printed before anything is
//! deleted: every database keeps its own daily/weekly/monthly slots and its own newest
//! complete backup, which is never deleted. A backup whose last verification failed fills no
//! slot, so a good one is kept in its place.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, Utc};
use ops_core::Context;
use ops_core::audit::Audit;
use serde::{Deserialize, Serialize};

use crate::catalog;
use crate::naming::BackupId;
use crate::{Error, Result, target};

/// How long backups are kept in one destination. Nothing configured keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// When its newest object was written; the grace of an incomplete backup counts from
    /// here (a slow backup's dump is younger than its start).
    pub last_written: Option<DateTime<Utc>>,
    /// Its last verification failed.
    pub verification_failed: bool,
}

impl Candidate {
    /// A candidate with nothing known beyond its id, start and completeness.
    #[must_use]
    pub fn new(id: BackupId, started_at: DateTime<Utc>, complete: bool) -> Self {
        Self { id, started_at, complete, last_written: None, verification_failed: false }
    }

    fn good(&self) -> bool {
        self.complete && !self.verification_failed
    }
}

/// Keep or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Keep.
    Keep,
    /// Delete.
    Delete,
}

/// One decision and the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decision {
    /// Backup id.
    pub id: BackupId,
    /// Config name of the database it is a backup of, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// Keep or delete.
    pub action: Verdict,
    /// Why (`newest complete backup`, `daily 3 of 7`, `older than 30 days`).
    pub rule: String,
}

/// Maps a time to the period (day, ISO week, month) it falls in.
type Period = fn(&DateTime<Utc>) -> (i32, u32);

/// Incomplete backups younger than this may still be running.
const INCOMPLETE_GRACE_HOURS: i64 = 24;

/// Decides, for every candidate (the backups of one database in one destination), keep or
/// delete.
#[must_use]
pub fn plan(candidates: &[Candidate], policy: &RetentionPolicy, now: DateTime<Utc>) -> Vec<Decision> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by_key(|c| std::cmp::Reverse(c.started_at));
    // The newest good one; when every complete one failed its verification, the newest
    // complete one all the same (a damaged backup may still be all there is).
    let newest_complete =
        sorted.iter().find(|c| c.good()).or_else(|| sorted.iter().find(|c| c.complete)).map(|c| c.id.clone());
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
            if !c.good() || seen.len() >= limit as usize {
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
            let quiet = now - c.last_written.unwrap_or(c.started_at).max(c.started_at);
            let (action, rule) = if Some(&c.id) == newest_complete.as_ref() {
                (Verdict::Keep, "newest complete backup".to_owned())
            } else if !c.complete {
                if quiet > Duration::hours(INCOMPLETE_GRACE_HOURS) {
                    (Verdict::Delete, format!("incomplete (no manifest) and older than {INCOMPLETE_GRACE_HOURS} h"))
                } else {
                    (Verdict::Keep, format!("incomplete but younger than {INCOMPLETE_GRACE_HOURS} h (may be running)"))
                }
            } else if let Some(rule) = gfs {
                (Verdict::Keep, rule)
            } else if policy.is_empty() {
                (Verdict::Keep, "no retention configured".to_owned())
            } else if let Some(days) = policy.max_age_days.filter(|d| age < Duration::days(i64::from(*d))) {
                (Verdict::Keep, format!("younger than {days} days"))
            } else {
                let why = match policy.max_age_days {
                    Some(days) => format!("older than {days} days"),
                    None => "not kept by any daily/weekly/monthly rule".to_owned(),
                };
                let why = if c.verification_failed { format!("last verification failed; {why}") } else { why };
                (Verdict::Delete, why)
            };
            Decision { id: c.id.clone(), database: None, started_at: c.started_at, action, rule }
        })
        .collect()
}

/// The plan for one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Leftovers of interrupted uploads removed (temp files, unfinished multipart uploads
    /// older than a day); 0 for a dry run.
    #[serde(default)]
    pub swept: u64,
    /// Why the sweep of leftovers failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_error: Option<String>,
}

/// Leftovers of interrupted uploads younger than this may belong to an upload in progress.
pub const SWEEP_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What `prune` planned and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PruneReport {
    /// Whether anything was deleted.
    pub dry_run: bool,
    /// Each destination.
    pub destinations: Vec<DestinationPlan>,
}

/// Options of [`prune`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Plan only; delete nothing.
    pub dry_run: bool,
    /// The policy of the primary destination (`storage.url`); from the configuration when
    /// unset ([`PruneOptions::from_config`]).
    pub primary: Option<RetentionPolicy>,
    /// The policy of the local directory (`storage.local-dir`), likewise.
    pub local: Option<RetentionPolicy>,
    /// Who asks, for the audit log (`opsctl:root@host`).
    pub actor: Option<String>,
    /// Delete only these backups (`location` and id, as a plan a person saw listed them), and
    /// of them only those the plan made now still deletes; `None`: whatever it deletes.
    pub only: Option<std::collections::BTreeSet<(String, String)>>,
}

impl PruneOptions {
    /// The policies the configuration gives: the local directory keeps `retention-days` (plus
    /// the GFS rules); the primary store follows the GFS rules only, or the local rules when
    /// it is a directory itself.
    #[must_use]
    pub fn from_config(config: &ops_core::config::OpsConfig, dry_run: bool) -> Self {
        let Some(s) = config.storage.as_ref() else {
            return Self {
                dry_run,
                primary: Some(RetentionPolicy::default()),
                local: Some(RetentionPolicy::default()),
                actor: None,
                only: None,
            };
        };
        let gfs = RetentionPolicy {
            max_age_days: None,
            keep_daily: s.keep_daily,
            keep_weekly: s.keep_weekly,
            keep_monthly: s.keep_monthly,
        };
        let local = RetentionPolicy { max_age_days: Some(s.retention_days), ..gfs.clone() };
        let primary_is_local = matches!(s.location(), Ok(ops_core::config::StorageLocation::Dir(_)));
        Self {
            dry_run,
            primary: Some(if primary_is_local { local.clone() } else { gfs }),
            local: Some(local),
            actor: None,
            only: None,
        }
    }
}

/// Plans retention for every destination, one plan per database there, and, unless
/// `dry_run`, deletes what the plans say (manifest first, so an interrupted deletion leaves
/// an incomplete backup, never a complete-looking one without its dump), one audit record
/// per backup deleted or not.
///
/// # Errors
/// `InvalidInput` without storage; the store's error when a listing fails; `Unavailable`
/// when the audit log cannot be written (checked before anything is deleted).
pub async fn prune(ctx: &Context, opts: &PruneOptions, now: DateTime<Utc>) -> Result<PruneReport> {
    let dry_run = opts.dry_run;
    let audit = if dry_run { None } else { Some(Audit::open(&ctx.config, opts.actor.as_deref())?) };
    // The full listing: verification records count (a failed one fills no slot).
    let all = catalog::list(ctx).await?;
    let configured = PruneOptions::from_config(&ctx.config, dry_run);
    let primary_policy = opts.primary.clone().or(configured.primary).unwrap_or_default();
    let local_policy = opts.local.clone().or(configured.local).unwrap_or_default();
    let stores = target::stores(ctx)?;
    let mut destinations = Vec::new();
    let mut audit_broken: Option<String> = None;
    for (i, store) in stores.iter().enumerate() {
        let policy = if i == 0 && ctx.storage.is_some() { primary_policy.clone() } else { local_policy.clone() };
        let location = store.location();
        // Per database: its own slots and its own newest complete backup. Backups nothing
        // attributes form one more group of their own.
        let mut groups: BTreeMap<Option<String>, Vec<Candidate>> = BTreeMap::new();
        for b in &all {
            let Some(copy) = b.copies.iter().find(|c| c.location == location) else { continue };
            let complete = copy.dump_key.is_some() && copy.has_manifest;
            groups.entry(b.database.clone()).or_default().push(Candidate {
                id: b.id.clone(),
                started_at: b.started_at,
                complete,
                last_written: copy.last_modified,
                verification_failed: copy.last_verification.as_ref().is_some_and(|v| !v.ok),
            });
        }
        let mut decisions: Vec<Decision> = Vec::new();
        for (database, candidates) in groups {
            decisions.extend(plan(&candidates, &policy, now).into_iter().map(|mut d| {
                d.database.clone_from(&database);
                // A complete backup of no known database (its manifest could not be read)
                // may be some database's only one: it is never deleted.
                let complete = candidates.iter().any(|c| c.id == d.id && c.complete);
                if database.is_none() && complete {
                    d.action = Verdict::Keep;
                    d.rule = "database unknown (manifest unreadable): kept".to_owned();
                }
                d
            }));
        }
        decisions.sort_by(|a, b| b.started_at.cmp(&a.started_at).then_with(|| b.id.cmp(&a.id)));
        let mut deleted = Vec::new();
        let mut failed = Vec::new();
        if let Some(audit) = audit.as_ref().filter(|_| !dry_run) {
            let listed =
                |d: &&Decision| opts.only.as_ref().is_none_or(|o| o.contains(&(location.clone(), d.id.to_string())));
            for d in decisions.iter().filter(|d| d.action == Verdict::Delete).filter(listed) {
                let before = serde_json::json!({
                    "backup_id": d.id.to_string(),
                    "database": d.database,
                    "started_at": d.started_at,
                    "location": location,
                    "rule": d.rule,
                });
                let target = format!("backup:{}", d.id);
                // No record, no deletion: the intent is on disk first. A log that cannot be
                // written stops the deletions (the report says which were left).
                if let Some(why) = &audit_broken {
                    failed.push((d.id.clone(), format!("not deleted: {why}")));
                    continue;
                }
                if let Err(e) = audit.record("prune", &target, before.clone(), serde_json::Value::Null, "started") {
                    let why = format!("the audit log cannot be written: {e}");
                    failed.push((d.id.clone(), format!("not deleted: {why}")));
                    audit_broken = Some(why);
                    continue;
                }
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
                let result = error.as_ref().map_or_else(|| "ok".to_owned(), ToString::to_string);
                if let Err(e) = audit.record("prune", &target, before, serde_json::Value::Null, &result) {
                    tracing::error!(error = %e, backup = %d.id, "the prune's audit record could not be written");
                }
                match error {
                    None => deleted.push(d.id.clone()),
                    Some(e) => failed.push((d.id.clone(), e.to_string())),
                }
            }
        }
        // A prune limited to listed backups deletes those only: no sweep of anything else.
        let (swept, sweep_error) = if dry_run || opts.only.is_some() {
            (0, None)
        } else {
            match store.sweep_incomplete(SWEEP_AFTER).await {
                Ok(n) => (n, None),
                Err(e) => (0, Some(e.to_string())),
            }
        };
        destinations.push(DestinationPlan { location, policy, decisions, deleted, failed, swept, sweep_error });
    }
    Ok(PruneReport { dry_run, destinations })
}

#[cfg(test)]
mod tests;
