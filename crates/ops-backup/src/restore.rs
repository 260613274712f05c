//! `restore`: a plan first, then a safe swap that cannot destroy the live database before its
//! replacement has been restored and verified.
//!
//! Safe swap: restore into `{db}__restore_{ts}` while the stack keeps running, checking the
//! source's checksum and trailer in the same pass; verify the new database against the
//! manifest; only then stop the dependents, terminate connections to the live database,
//! rename live to `{db}__pre_restore_{ts}` and the new one to `{db}`; run the post-restore
//! command; restart the dependents in order; wait for their health. Any failure before the
//! rename drops the new database: the live database and the stack are untouched, and the
//! downtime is only the swap itself.
//! `--in-place` (drop and recreate, as the runbooks do) is for hosts short of disk: it
//! verifies the source in a separate pass first, then stops the dependents.

use std::time::{Duration, Instant};

use chrono::Utc;
use ops_core::Context;
use ops_core::audit::Audit;
use ops_core::config::PostRestoreConfig;
use ops_core::ports::{Database, DumpFormat, ExecSpec};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::check::{RestoreCheck, check_restored};
use crate::dependents::{self, Dependent, HealthResult};
use crate::progress::{Progress, ProgressEvent};
use crate::source::{self, Source, SourceRules};
use crate::{Error, Result, lock, target, verify};

/// Options of [`plan`] and [`restore`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RestoreOptions {
    /// Config name of the database; the only one, or `main`, when unset.
    pub database: Option<String>,
    /// Backup id, `latest`, `s3://bucket/key`, or (with `allow_host_path`) a local path.
    pub source: String,
    /// Drop and recreate the live database instead of swapping (needs less disk).
    pub in_place: bool,
    /// Seconds to wait for the dependents' health after the restart (at most a day).
    pub health_timeout_secs: u64,
    /// Restore a backup whose manifest names another database.
    pub allow_other_database: bool,
    /// Accept a path on this host as the source. Never deserialized: an HTTP caller cannot
    /// set it; the command line does.
    #[serde(skip)]
    pub allow_host_path: bool,
    /// Who asks, for the audit log (`opsctl:root@host`, `api:<key fingerprint>`). Never
    /// deserialized: the caller that authenticated the person sets it.
    #[serde(skip)]
    pub actor: Option<String>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            database: None,
            source: "latest".to_owned(),
            in_place: false,
            health_timeout_secs: 120,
            allow_other_database: false,
            allow_host_path: false,
            actor: None,
        }
    }
}

/// Longest wait for health after a restore that a caller may ask for.
pub const MAX_HEALTH_TIMEOUT_SECS: u64 = 24 * 3600;

impl RestoreOptions {
    /// Checks the numbers a caller gave.
    ///
    /// # Errors
    /// `InvalidInput` naming the field and its limit.
    pub fn validate(&self) -> Result<()> {
        if self.health_timeout_secs > MAX_HEALTH_TIMEOUT_SECS {
            return Err(Error::invalid_input(format!(
                "health-timeout-secs must be at most {MAX_HEALTH_TIMEOUT_SECS} (a day)"
            )));
        }
        Ok(())
    }
}

/// How the live database is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Restore beside, verify, then rename (the default).
    SafeSwap,
    /// Drop, recreate, restore (explicit `--in-place`).
    InPlace,
}

/// What a restore will do, printable before anything happens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestorePlan {
    /// Config name of the database.
    pub database_config_name: String,
    /// The live database.
    pub database: String,
    /// The source.
    pub source: Source,
    /// Strategy.
    pub strategy: Strategy,
    /// The database restored into (the live one for in-place).
    pub restore_database: String,
    /// The name the old live database keeps after a safe swap.
    pub keep_database: Option<String>,
    /// Containers stopped and restarted, in restart order.
    pub dependents: Vec<Dependent>,
    /// The post-restore command.
    pub post_restore: Option<PostRestoreConfig>,
    /// At least this many tables must be restored.
    pub min_tables: u32,
    /// The steps, in words.
    pub steps: Vec<String>,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestoreReport {
    /// The plan that ran.
    pub plan: RestorePlan,
    /// The verification of the restored database.
    pub check: RestoreCheck,
    /// Dependents started again.
    pub restarted: Vec<String>,
    /// Output of the post-restore command.
    pub post_restore_output: Option<String>,
    /// Health after the restart.
    pub health: Vec<HealthResult>,
    /// Whether every health check passed.
    pub healthy: bool,
    /// Seconds from start to healthy.
    pub duration_seconds: f64,
    /// psql sessions that loaded the table data at once (`restore-jobs`; 1 when the whole
    /// dump ran in one session).
    #[serde(default)]
    pub data_sessions: usize,
}

/// Truncates a database name so `{name}{suffix}` fits PostgreSQL's 63 bytes.
fn derived_name(db: &str, suffix: &str) -> String {
    let room = 63usize.saturating_sub(suffix.len());
    let base: String = db.chars().take(room).collect();
    format!("{base}{suffix}")
}

/// Resolves the source and the dependents, and lists what [`restore`] will do.
///
/// # Errors
/// `NotFound` for an unknown source or dependent; `InvalidInput` for a bad configuration.
pub async fn plan(ctx: &Context, opts: &RestoreOptions) -> Result<RestorePlan> {
    opts.validate()?;
    let (config_name, db_config, db) = target::database(ctx, opts.database.as_deref())?;
    let rules = SourceRules {
        database: config_name.to_owned(),
        allow_other_database: opts.allow_other_database,
        allow_host_path: opts.allow_host_path,
    };
    let source = source::resolve(ctx, &opts.source, &rules).await?;
    let dependents = dependents::resolve(ctx, &db_config.dependents).await?;
    // The post-restore container is found now, not after the swap.
    if let Some(p) = &db_config.post_restore {
        dependents::resolve(ctx, std::slice::from_ref(&p.container)).await.map_err(|e| e.context("post-restore"))?;
    }
    let live = db.name().to_owned();
    let ts = Utc::now().format("%Y%m%dT%H%M%SZ").to_string().to_lowercase();
    let strategy = if opts.in_place { Strategy::InPlace } else { Strategy::SafeSwap };
    let restore_database = if opts.in_place { live.clone() } else { derived_name(&live, &format!("__restore_{ts}")) };
    let keep_database = (!opts.in_place).then(|| derived_name(&live, &format!("__pre_restore_{ts}")));
    let running: Vec<&str> = dependents.iter().filter(|d| d.was_running).map(|d| d.name.as_str()).collect();
    let stop =
        (!running.is_empty()).then(|| format!("stop {}", running.iter().rev().copied().collect::<Vec<_>>().join(", ")));
    let mut steps = Vec::new();
    match strategy {
        Strategy::SafeSwap => {
            steps.push(format!(
                "create database {restore_database} and restore {} into it, checking its checksum and trailer \
                 in the same pass (the stack keeps running)",
                source.location
            ));
            steps.push(format!(
                "verify {restore_database}: at least {} tables, row counts against the manifest",
                db_config.min_tables
            ));
            steps.extend(stop);
            steps.push(format!("terminate connections to {live}"));
            steps.push(format!("rename {live} to {}", keep_database.clone().unwrap_or_default()));
            steps.push(format!("rename {restore_database} to {live}"));
        }
        Strategy::InPlace => {
            steps.push(match &source.verified {
                Some(v) => format!(
                    "verify {} by its SHA-256 before touching anything (a full verification of the same bytes \
                     passed at {}: decompressed whole, trailer found)",
                    source.location,
                    v.verified_at.format("%Y-%m-%d %H:%M:%SZ")
                ),
                None => {
                    format!("verify {} (checksum, decompression, trailer) before touching anything", source.location)
                }
            });
            steps.extend(stop);
            steps.push(format!("terminate connections to {live}"));
            steps.push(format!("DROP DATABASE {live} (in place: there is no way back after this step)"));
            steps.push(format!("create database {live} and restore into it"));
            steps.push(format!(
                "verify {live}: at least {} tables, row counts against the manifest",
                db_config.min_tables
            ));
        }
    }
    if let Some(p) = &db_config.post_restore {
        steps.push(format!("run `{}` in {}", p.command.join(" "), p.container));
    }
    if !running.is_empty() {
        steps.push(format!("start {} and wait until healthy", running.join(", ")));
    }
    if !ctx.config.http.is_empty() {
        steps.push(format!(
            "wait for the HTTP checks: {}",
            ctx.config.http.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(RestorePlan {
        database_config_name: config_name.to_owned(),
        database: live,
        source,
        strategy,
        restore_database,
        keep_database,
        dependents,
        post_restore: db_config.post_restore.clone(),
        min_tables: db_config.min_tables,
        steps,
    })
}

/// Restores into `name`; returns the sessions that loaded the table data.
async fn restore_into(db: &dyn Database, name: &str, source: &Source, progress: &dyn Progress) -> Result<usize> {
    progress.event(ProgressEvent::Phase { name: "restore".to_owned() });
    let sql = source.open_sql().await?;
    db.restore(name, DumpFormat::Plain, sql).await.map(|o| o.data_sessions)
}

/// Terminates connections and renames, retrying when a client reconnects in between.
async fn rename_away(db: &dyn Database, from: &str, to: &str) -> Result<()> {
    let mut last = None;
    for _ in 0..5 {
        db.terminate_connections(from).await?;
        match db.rename_database(from, to).await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == crate::ErrorKind::Conflict => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::conflict(format!("{from} stays in use"))))
}

/// Runs `plan`. Refuse interactively before calling this: it stops containers.
///
/// # Errors
/// `Integrity` when the source fails its checks (nothing was touched) or the restored
/// database does not match the manifest (the live database is untouched with the safe swap);
/// `Conflict` when another operation runs. On every failure the dependents that were stopped
/// are started again, the side database is dropped, and the error says whether the restored
/// database had already replaced the live one.
pub async fn restore(
    ctx: &Context,
    plan: &RestorePlan,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    restore_until(ctx, plan, opts, progress, Box::pin(std::future::pending())).await
}

/// [`restore`], stopped when `cancel` resolves, but only while stopping is harmless: during
/// the restore beside the live database (the side database is dropped) or the in-place
/// restore's first pass. From the moment the dependents are stopped it runs to the end, so
/// the stack is never left half-swapped.
///
/// # Errors
/// As [`restore`]; an interrupted restore is `Unavailable` and changed nothing.
pub async fn restore_until(
    ctx: &Context,
    plan: &RestorePlan,
    opts: &RestoreOptions,
    progress: &dyn Progress,
    cancel: crate::pipeline::Cancel,
) -> Result<RestoreReport> {
    opts.validate()?;
    let interrupted = || {
        Error::unavailable(format!(
            "restore of {} interrupted before the swap (the process is stopping); the live database and the \
             stack were not touched",
            plan.database
        ))
    };
    let clock = Instant::now();
    // No record, no change: the audit log must be writable before anything starts.
    let audit = Audit::open(&ctx.config, opts.actor.as_deref())?;
    let (_, _, db) = target::database(ctx, Some(&plan.database_config_name))?;
    let _lock = lock::acquire(db.as_ref(), target::local_dir(ctx).as_deref(), "restore").await?;

    let (check, sessions) = match plan.strategy {
        Strategy::SafeSwap => {
            // Everything up to the swap happens beside the live database, with the stack up.
            let check = tokio::select! {
                r = prepare_side(db.as_ref(), plan, progress) => r?,
                () = cancel => {
                    drop_side(db.as_ref(), &plan.restore_database).await;
                    return Err(interrupted());
                }
            };
            // No record, no change: the intent is on disk before the stack is touched.
            if let Err(e) = record(&audit, plan, None) {
                drop_side(db.as_ref(), &plan.restore_database).await;
                return Err(e.context("the live database and the stack were not touched"));
            }
            if let Err(e) = dependents::stop(ctx, &plan.dependents).await {
                drop_side(db.as_ref(), &plan.restore_database).await;
                record_outcome(&audit, plan, Err(&e));
                return Err(restart_after(ctx, plan, e.context("the live database was not touched")).await);
            }
            let swapped = swap_names(db.as_ref(), plan).await;
            record_outcome(&audit, plan, swapped.as_ref().copied());
            match swapped {
                Ok(()) => check,
                Err(e) => return Err(restart_after(ctx, plan, e).await),
            }
        }
        Strategy::InPlace => {
            progress.event(ProgressEvent::Phase { name: "verify-source".to_owned() });
            let problems = tokio::select! {
                r = verify::check_source(&plan.source) => r?,
                () = cancel => return Err(interrupted()),
            };
            if !problems.is_empty() {
                return Err(Error::integrity(format!(
                    "refusing to restore {}: {}; nothing was changed",
                    plan.source.location,
                    problems.join("; ")
                )));
            }
            if let Err(e) = record(&audit, plan, None) {
                return Err(e.context("the live database and the stack were not touched"));
            }
            if let Err(e) = dependents::stop(ctx, &plan.dependents).await {
                record_outcome(&audit, plan, Err(&e));
                return Err(restart_after(ctx, plan, e.context("the live database was not touched")).await);
            }
            let restored = in_place(db.as_ref(), plan, progress).await;
            record_outcome(&audit, plan, restored.as_ref().map(drop));
            match restored {
                Ok(check) => check,
                Err(e) => return Err(restart_after(ctx, plan, e).await),
            }
        }
    };

    // From here on the restored database is the live one.
    let swapped = match &plan.keep_database {
        Some(keep) => format!("the restored database is live; the previous one is kept as {keep}"),
        None => "the restored database is live (in place)".to_owned(),
    };
    let post_restore_output = match &plan.post_restore {
        Some(p) => match run_post_restore(ctx, p).await {
            Ok(out) => Some(out),
            Err(e) => return Err(restart_after(ctx, plan, e.context(swapped)).await),
        },
        None => None,
    };
    let restarted = match dependents::start(ctx, &plan.dependents).await {
        Ok(names) => names,
        Err(e) => return Err(e.context(format!("restore of {}: {swapped}", plan.database))),
    };
    let health = dependents::wait_healthy(ctx, &plan.dependents, Duration::from_secs(opts.health_timeout_secs)).await;
    Ok(RestoreReport {
        plan: plan.clone(),
        check,
        restarted,
        post_restore_output,
        healthy: health.iter().all(|h| h.ok),
        health,
        duration_seconds: clock.elapsed().as_secs_f64(),
        data_sessions: sessions,
    })
}

/// The audit record of the step that replaces the live database: the swap (the live database
/// renamed away and kept, the restored copy renamed in), or the in-place drop and restore.
/// With no outcome, the intent (`started`), written before the dependents stop.
fn record(audit: &Audit, plan: &RestorePlan, outcome: Option<std::result::Result<(), &Error>>) -> Result<()> {
    let dependents: Vec<&str> = plan.dependents.iter().filter(|d| d.was_running).map(|d| d.name.as_str()).collect();
    let (action, before, after) = match plan.strategy {
        Strategy::SafeSwap => (
            "restore-swap",
            json!({ "database": plan.database, "stopped": dependents }),
            json!({
                "database": plan.database,
                "restored_from": plan.source.location,
                "backup_id": plan.source.manifest.as_ref().map(|m| m.id.to_string()),
                "previous_kept_as": plan.keep_database,
                "restored_into": plan.restore_database,
            }),
        ),
        Strategy::InPlace => (
            "restore-in-place",
            json!({ "database": plan.database, "stopped": dependents, "dropped": true }),
            json!({
                "database": plan.database,
                "restored_from": plan.source.location,
                "backup_id": plan.source.manifest.as_ref().map(|m| m.id.to_string()),
            }),
        ),
    };
    let result = match outcome {
        None => "started".to_owned(),
        Some(Ok(())) => "ok".to_owned(),
        Some(Err(e)) => e.to_string(),
    };
    audit.record(action, &format!("database:{}", plan.database_config_name), before, after, &result)
}

/// The outcome's record, after the change. One that cannot be written then is logged loudly
/// (the intent is on disk); the restore goes on, so the dependents are started again.
fn record_outcome(audit: &Audit, plan: &RestorePlan, outcome: std::result::Result<(), &Error>) {
    if let Err(e) = record(audit, plan, Some(outcome)) {
        tracing::error!(error = %e, database = %plan.database_config_name, "the restore's audit record could not be written");
    }
}

/// Starts the dependents again after a failure and says so in the error.
async fn restart_after(ctx: &Context, plan: &RestorePlan, e: Error) -> Error {
    let note = match dependents::start(ctx, &plan.dependents).await {
        Ok(names) if names.is_empty() => String::new(),
        Ok(names) => format!("; restarted {}", names.join(", ")),
        Err(re) => format!("; restarting the dependents also failed: {re}"),
    };
    e.context(format!("restore of {} failed{note}", plan.database))
}

/// Drops a side database, best effort (the error being reported is the first failure).
async fn drop_side(db: &dyn Database, name: &str) {
    let _ = db.terminate_connections(name).await;
    if let Err(e) = db.drop_database(name).await {
        tracing::warn!(database = name, error = %e, "could not drop the side database");
    }
}

/// Creates the side database, restores into it in one pass that also checks the source, and
/// verifies it; drops it on any failure. Returns the check and the sessions that loaded the table data.
async fn prepare_side(db: &dyn Database, plan: &RestorePlan, progress: &dyn Progress) -> Result<(RestoreCheck, usize)> {
    let new = &plan.restore_database;
    db.create_database(new).await?;
    let prepared = async {
        progress.event(ProgressEvent::Phase { name: "restore".to_owned() });
        let (sql, digest) = plan.source.open_sql_digest().await?;
        let restored = db.restore(new, DumpFormat::Plain, sql).await;
        let problems = match digest.await {
            Ok(d) => d.problems(plan.source.manifest.as_ref(), plan.source.compression),
            Err(_) => vec!["the source could not be read to the end".to_owned()],
        };
        if !problems.is_empty() {
            return Err(Error::integrity(format!(
                "refusing to restore {}: {}",
                plan.source.location,
                problems.join("; ")
            )));
        }
        let sessions = restored?.data_sessions;
        progress.event(ProgressEvent::Phase { name: "verify-restore".to_owned() });
        let side = db.with_database(new)?;
        let check = check_restored(side.as_ref(), plan.source.manifest.as_ref(), plan.min_tables).await?;
        drop(side);
        if !check.ok {
            return Err(Error::integrity(format!("restored database does not match: {}", check.problems.join("; "))));
        }
        Ok((check, sessions))
    }
    .await;
    match prepared {
        Ok(c) => Ok(c),
        Err(e) => {
            drop_side(db, new).await;
            Err(e.context(format!(
                "restore of {} failed; the live database and the stack were not touched",
                plan.database
            )))
        }
    }
}

/// Renames live -> kept and side -> live, putting live back if the second rename fails.
async fn swap_names(db: &dyn Database, plan: &RestorePlan) -> Result<()> {
    let new = &plan.restore_database;
    let keep = plan.keep_database.as_deref().unwrap_or_default();
    if let Err(e) = rename_away(db, &plan.database, keep).await {
        drop_side(db, new).await;
        return Err(e.context("the live database was not touched"));
    }
    if let Err(e) = rename_away(db, new, &plan.database).await {
        let back = rename_away(db, keep, &plan.database).await;
        return Err(e.context(match back {
            Ok(()) => {
                drop_side(db, new).await;
                "the live database was put back".to_owned()
            }
            // Both names are needed to repair by hand: nothing is dropped.
            Err(b) => format!("putting the live database back from {keep} failed too: {b}; the restored copy is {new}"),
        }));
    }
    Ok(())
}

async fn in_place(db: &dyn Database, plan: &RestorePlan, progress: &dyn Progress) -> Result<(RestoreCheck, usize)> {
    let live = &plan.database;
    db.terminate_connections(live).await?;
    db.drop_database(live).await?;
    db.create_database(live).await?;
    let sessions = restore_into(db, live, &plan.source, progress).await?;
    progress.event(ProgressEvent::Phase { name: "verify-restore".to_owned() });
    let restored = db.with_database(live)?;
    let check = check_restored(restored.as_ref(), plan.source.manifest.as_ref(), plan.min_tables).await?;
    if !check.ok {
        return Err(Error::integrity(format!("restored database does not match: {}", check.problems.join("; "))));
    }
    Ok((check, sessions))
}

async fn run_post_restore(ctx: &Context, p: &PostRestoreConfig) -> Result<String> {
    let rt = ops_core::stack::runtime(ctx)?;
    let deps = dependents::resolve(ctx, std::slice::from_ref(&p.container)).await?;
    let target = deps.first().ok_or_else(|| Error::not_found(format!("post-restore container {}", p.container)))?;
    if !target.was_running {
        rt.start(&target.id).await?;
    }
    let out = rt
        .exec(
            &target.id,
            &ExecSpec { cmd: p.command.clone(), timeout: Some(Duration::from_secs(600)), ..Default::default() },
        )
        .await?;
    if out.exit_code != 0 {
        return Err(Error::integrity(format!(
            "post-restore command `{}` exited {}: {}",
            p.command.join(" "),
            out.exit_code,
            crate::check::tail(&out.stderr)
        )));
    }
    Ok(out.stdout)
}
