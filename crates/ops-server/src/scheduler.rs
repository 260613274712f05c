//! The scheduler: the `[[schedule]]` entries run unattended, each due time once across every
//! replica sharing the state store.
//!
//! - **Once.** A due run is claimed by inserting its ledger row (job, due time); the store's
//!   key lets one replica in. No leader: a replica that dies takes nothing with it but the
//!   run it was in, which another replica marks failed once its heartbeat is older than
//!   [`STALE_AFTER`]; the next due time is claimed by whoever is alive.
//! - **Overlap.** A run takes leases in the store on its locks (`job:NAME`, `database:NAME`
//!   for jobs on a database, the entry's `locks`), renewed while it runs, and the server's
//!   own job slot (the API's backups of the same database). A lock held elsewhere skips the
//!   run (policy `skip`) or waits until the job is due again (`wait`).
//! - **Catch-up.** At start each entry resumes after its newest ledger row: the runs that fell
//!   due meanwhile are counted as missed, and the latest of them runs once (`run-once`) or is
//!   recorded as missed (`skip`). A run more than [`LATE_AFTER`] past its time is also a
//!   missed run.
//! - **Never silent.** A run that cannot start (database down, runbook unknown) is a failed
//!   run in the ledger and the metrics, with its error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use ops_core::config::{CatchUpPolicy, JobKind, OverlapPolicy, ScheduleConfig};
use ops_core::ports::{ScheduleQuery, ScheduledRun, StateStore};
use ops_core::schedule::CronSchedule;
use serde_json::{Value, json};
use tokio_util::task::AbortOnDropHandle;

use crate::jobs::{JobStatus, Refusal};
use crate::state::AppState;

/// A run whose holder has not renewed its heartbeat for this long is abandoned, and a lock
/// not renewed for this long is free again.
pub const STALE_AFTER: StdDuration = StdDuration::from_secs(30);
/// How often a holder renews its runs and locks.
const HEARTBEAT: StdDuration = StdDuration::from_secs(5);
/// Due times whose claim could not be written, kept to be recorded as failed once the store
/// answers again (the oldest go first when more pile up).
const MAX_UNRECORDED: usize = 1000;
/// A run this long past its due time (plus its jitter) is a missed run.
pub const LATE_AFTER: StdDuration = StdDuration::from_secs(60);
/// How often the scheduler looks for due runs.
const TICK: StdDuration = StdDuration::from_millis(500);
/// How often the job metrics are refreshed from the shared ledger.
const LEDGER_REFRESH: StdDuration = StdDuration::from_secs(30);

/// Where an entry stands: the due times up to `after` are dealt with.
#[derive(Debug, Clone)]
struct Cursor {
    after: DateTime<Utc>,
    /// The expression and zone it was computed for (a reload that changes them starts anew).
    fingerprint: String,
}

/// This process as the holder of runs and locks: host, pid and a random part.
#[must_use]
pub fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.')).take(64).collect())
        .filter(|h: &String| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    // The random tail of a record id: two processes of one pid (a container restart) differ.
    let id = ops_core::ids::new_id("holder", Utc::now());
    let tail = id.rsplit('-').next().unwrap_or_default();
    format!("{host}:{}:{tail}", std::process::id())
}

fn fingerprint(s: &ScheduleConfig) -> String {
    format!("{} {}", s.cron.trim(), s.timezone.trim())
}

/// Due times whose claim could not be written.
type Unrecorded = Arc<std::sync::Mutex<std::collections::VecDeque<ScheduledRun>>>;

/// Runs the scheduler as `holder` (see [`holder_name`]) until the server stops; then waits
/// for the runs in progress to end and be recorded (a backup or drill stops cleanly, a run
/// waiting for a lock gives up).
pub async fn run(state: Arc<AppState>, holder: String) {
    let mut cursors: BTreeMap<String, Cursor> = BTreeMap::new();
    let mut last_maintenance = std::time::Instant::now().checked_sub(HEARTBEAT).unwrap_or_else(std::time::Instant::now);
    let mut warned = false;
    let mut stopping = state.stopping();
    let mut runs = tokio::task::JoinSet::new();
    let unrecorded: Unrecorded = Arc::default();
    let _refresh = AbortOnDropHandle::new(tokio::spawn(refresh_metrics_every(Arc::clone(&state))));
    tracing::info!(%holder, "scheduler started");
    loop {
        let entries = state.running().config.schedule.clone();
        let pending = !unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_empty();
        if !entries.is_empty() || pending {
            match state.state_store().await {
                Ok(store) => {
                    if warned {
                        tracing::info!("the state store answers again: scheduled jobs run");
                    }
                    warned = false;
                    if last_maintenance.elapsed() >= HEARTBEAT {
                        last_maintenance = std::time::Instant::now();
                        maintain(store.as_ref(), &holder).await;
                    }
                    if pending {
                        record_unrecorded(&state, store.as_ref(), &unrecorded).await;
                    }
                    tick(&state, &store, &holder, &entries, &mut cursors, &mut runs, &unrecorded).await;
                }
                Err(e) if !warned => {
                    warned = true;
                    tracing::error!(
                        error = %e,
                        "scheduled jobs cannot run: the state store is unavailable (the due times that pass \
                         meanwhile are missed runs when it answers again)"
                    );
                }
                Err(_) => {}
            }
        }
        while runs.try_join_next().is_some() {}
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = &mut stopping => break,
        }
    }
    if !runs.is_empty() {
        tracing::info!(runs = runs.len(), "waiting for scheduled runs in progress to end");
    }
    while runs.join_next().await.is_some() {}
    tracing::info!("scheduler stopped");
}

/// Records as failed the due times whose claim could not be written (a replica that did
/// claim one keeps its row).
async fn record_unrecorded(state: &AppState, store: &dyn StateStore, unrecorded: &Unrecorded) {
    let rows: Vec<ScheduledRun> =
        unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..).collect();
    for (i, row) in rows.iter().enumerate() {
        match store.claim_scheduled_run(row).await {
            Ok(true) => {
                // The kind of the entry of that name now (the config may have been reloaded).
                let kind = state.running().config.schedule.iter().find(|e| e.name == row.job).map(|e| e.job.as_str());
                let at = row.finished_at.unwrap_or(row.started_at);
                state.metrics.record_job(&row.job, kind.unwrap_or("unknown"), "failure", at);
            }
            Ok(false) => {}
            Err(_) => {
                // Still down: keep them for the next time.
                let mut q = unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                for r in rows[i..].iter().rev() {
                    q.push_front(r.clone());
                }
                q.truncate(MAX_UNRECORDED);
                return;
            }
        }
    }
}

/// Renews this holder's runs and marks abandoned the runs of holders that died (counted in
/// the metrics by the ledger refresh, not here: this process did not end them).
async fn maintain(store: &dyn StateStore, holder: &str) {
    let now = Utc::now();
    if let Err(e) = store.heartbeat_scheduled_runs(holder, now).await {
        tracing::warn!(error = %e, "scheduled runs not renewed");
    }
    let stale = now - Duration::from_std(STALE_AFTER).unwrap_or_default();
    match store.abandon_scheduled_runs(stale, now).await {
        Ok(abandoned) => {
            for run in abandoned {
                tracing::warn!(job = %run.job, holder = %run.holder, due = %run.scheduled_at, "scheduled run abandoned");
            }
        }
        Err(e) => tracing::warn!(error = %e, "abandoned runs not checked"),
    }
}

/// Every [`LEDGER_REFRESH`], the last run and last success of every entry from the ledger all
/// replicas share (an abandoned run counts as a failure).
async fn refresh_metrics_every(state: Arc<AppState>) {
    loop {
        let entries = state.running().config.schedule.clone();
        if !entries.is_empty()
            && let Ok(store) = state.state_store().await
        {
            for entry in &entries {
                for (status, result) in
                    [("success", "success"), ("failure", "failure"), ("abandoned", "failure"), ("skipped", "skipped")]
                {
                    let q = ScheduleQuery { job: Some(entry.name.clone()), status: Some(status.to_owned()), limit: 1 };
                    if let Ok(rows) = store.scheduled_runs(&q).await
                        && let Some(row) = rows.first()
                    {
                        let at = row.finished_at.unwrap_or(row.started_at);
                        state.metrics.set_job_last(&entry.name, entry.job.as_str(), result, at);
                    }
                }
            }
        }
        tokio::time::sleep(LEDGER_REFRESH).await;
    }
}

async fn tick(
    state: &Arc<AppState>,
    store: &Arc<dyn StateStore>,
    holder: &str,
    entries: &[ScheduleConfig],
    cursors: &mut BTreeMap<String, Cursor>,
    runs: &mut tokio::task::JoinSet<()>,
    unrecorded: &Unrecorded,
) {
    let now = Utc::now();
    cursors.retain(|name, _| entries.iter().any(|e| &e.name == name));
    for entry in entries {
        let Ok(schedule) = CronSchedule::parse(&entry.cron, &entry.timezone) else { continue };
        let fp = fingerprint(entry);
        let cursor = match cursors.get(&entry.name) {
            Some(c) if c.fingerprint == fp => c.clone(),
            Some(_) => Cursor { after: now, fingerprint: fp.clone() },
            None => match resume_after(store.as_ref(), entry, &fp, now).await {
                Some(after) => Cursor { after, fingerprint: fp.clone() },
                None => continue,
            },
        };
        cursors.insert(entry.name.clone(), cursor.clone());
        let (count, Some(latest)) = schedule.due_between(cursor.after, now) else { continue };
        let jitter = ops_core::schedule::jitter_secs(&entry.name, latest, entry.jitter_secs);
        let start_at = latest + Duration::seconds(i64::try_from(jitter).unwrap_or(0));
        let late = now - start_at > Duration::from_std(LATE_AFTER).unwrap_or_default();
        if count == 1 && !late {
            if now < start_at {
                continue;
            }
            spawn_run(Spawn { state, store, holder, unrecorded }, runs, entry, latest, Catch::OnTime);
        } else {
            // Missed: earlier ones are counted; the latest runs once or is recorded missed.
            let missed = match entry.catch_up {
                CatchUpPolicy::RunOnce => count - 1,
                CatchUpPolicy::Skip => count,
            };
            tracing::warn!(job = %entry.name, missed = count, due = %latest, "scheduled runs were missed");
            let catch = match entry.catch_up {
                CatchUpPolicy::RunOnce => Catch::Late { missed },
                CatchUpPolicy::Skip => Catch::Missed { missed },
            };
            spawn_run(Spawn { state, store, holder, unrecorded }, runs, entry, latest, catch);
        }
        if let Some(c) = cursors.get_mut(&entry.name) {
            c.after = latest;
        }
    }
}

/// Where an entry resumes at start: after its newest ledger row when that row was scheduled
/// by the same expression, else now (a new or changed entry has missed nothing).
async fn resume_after(
    store: &dyn StateStore,
    entry: &ScheduleConfig,
    fp: &str,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let q = ScheduleQuery { job: Some(entry.name.clone()), status: None, limit: 1 };
    match store.scheduled_runs(&q).await {
        Ok(rows) => Some(match rows.first() {
            Some(row) if row.detail.get("schedule").and_then(Value::as_str) == Some(fp) => row.scheduled_at,
            _ => now,
        }),
        Err(e) => {
            tracing::warn!(job = %entry.name, error = %e, "the schedule ledger cannot be read");
            None
        }
    }
}

/// How a run came due.
#[derive(Debug, Clone, Copy)]
enum Catch {
    OnTime,
    /// Late (the server was down): runs now; `missed` earlier due times did not run.
    Late {
        missed: u32,
    },
    /// Not run (catch-up `skip`): `missed` due times.
    Missed {
        missed: u32,
    },
}

/// What a spawned run needs of the scheduler.
struct Spawn<'a> {
    state: &'a Arc<AppState>,
    store: &'a Arc<dyn StateStore>,
    holder: &'a str,
    unrecorded: &'a Unrecorded,
}

fn spawn_run(
    with: Spawn<'_>,
    runs: &mut tokio::task::JoinSet<()>,
    entry: &ScheduleConfig,
    due: DateTime<Utc>,
    catch: Catch,
) {
    let state = Arc::clone(with.state);
    let store = Arc::clone(with.store);
    let holder = with.holder.to_owned();
    let unrecorded = Arc::clone(with.unrecorded);
    let entry = entry.clone();
    runs.spawn(async move {
        claim_and_run(&state, store, &holder, &entry, due, catch, &unrecorded).await;
    });
}

async fn claim_and_run(
    state: &Arc<AppState>,
    store: Arc<dyn StateStore>,
    holder: &str,
    entry: &ScheduleConfig,
    due: DateTime<Utc>,
    catch: Catch,
    unrecorded: &Unrecorded,
) {
    if state.is_stopping() {
        return;
    }
    let now = Utc::now();
    let mut detail = json!({ "schedule": fingerprint(entry), "job": entry.job.as_str() });
    let (status, missed) = match catch {
        Catch::OnTime => ("running", 0),
        Catch::Late { missed } => {
            detail["late"] = json!(true);
            ("running", missed)
        }
        Catch::Missed { missed } => ("missed", missed),
    };
    if missed > 0 {
        detail["missed-before"] = json!(missed);
    }
    let mut row = ScheduledRun {
        job: entry.name.clone(),
        scheduled_at: due,
        holder: holder.to_owned(),
        status: status.to_owned(),
        started_at: now,
        finished_at: (status == "missed").then_some(now),
        heartbeat_at: now,
        error: (status == "missed").then(|| "ops-server was not running at its time (catch-up = \"skip\")".to_owned()),
        detail,
    };
    match store.claim_scheduled_run(&row).await {
        Ok(true) => {}
        Ok(false) => return, // another replica has it
        Err(e) => {
            // The run cannot be known to be this replica's, so it does not run; it is recorded
            // as failed when the store answers again (unless a replica did claim it).
            tracing::error!(job = %entry.name, due = %due, error = %e, "scheduled run not claimed: it does not run");
            row.status = "failure".to_owned();
            row.finished_at = Some(now);
            row.error = Some("the state store could not be written at its time, so it did not run".to_owned());
            let mut q = unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if q.len() >= MAX_UNRECORDED {
                q.pop_front();
            }
            q.push_back(row);
            return;
        }
    }
    let missed_now = match catch {
        Catch::Missed { missed } => missed,
        Catch::Late { missed } => missed,
        Catch::OnTime => 0,
    };
    if missed_now > 0 {
        state.metrics.record_missed(&entry.name, entry.job.as_str(), u64::from(missed_now));
    }
    if status == "missed" {
        return;
    }
    let locks = locks_of(state, entry);
    let run_key = format!("{}@{}", entry.name, due.timestamp());
    let (outcome, job_id) = match acquire(state, store.as_ref(), entry, &locks, &run_key, due).await {
        Err(busy) => (Outcome { status: "skipped", error: Some(busy), detail: Value::Null }, None),
        Ok(job_id) => {
            // Aborted when dropped: a run that panicked must not keep renewing its locks.
            let renew = AbortOnDropHandle::new(renew_while_running(
                Arc::clone(&store),
                locks.clone(),
                run_key.clone(),
                holder.to_owned(),
            ));
            // A verification waits for one of the server's verification slots, renewing.
            let _slot = state.jobs.run_slot(&job_id, entry.job.as_str()).await;
            // A run that panics is a failed run, never one left `running`.
            let work = std::panic::AssertUnwindSafe(execute(state, entry, &job_id));
            let outcome = match futures::FutureExt::catch_unwind(work).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    tracing::error!(job = %entry.name, "scheduled run panicked");
                    Outcome {
                        status: "failure",
                        error: Some("the run stopped on an internal error; see the server log".to_owned()),
                        detail: Value::Null,
                    }
                }
            };
            drop(renew);
            (outcome, Some(job_id))
        }
    };
    let end = Utc::now();
    row.status = outcome.status.to_owned();
    row.finished_at = Some(end);
    row.heartbeat_at = end;
    row.error.clone_from(&outcome.error);
    if !outcome.detail.is_null() {
        row.detail["report"] = outcome.detail;
    }
    // The ledger first, then the job and the locks: a stopping server waits for its jobs, so
    // the row is written before it exits.
    let recorded = match store.finish_scheduled_run(&row).await {
        Ok(true) => true,
        Ok(false) => {
            tracing::warn!(job = %entry.name, "the run's row was taken meanwhile; its end is not recorded");
            false
        }
        Err(e) => {
            tracing::error!(job = %entry.name, error = %e, "the end of a scheduled run could not be recorded");
            true
        }
    };
    if let Some(job_id) = job_id {
        let status = if outcome.status == "success" { JobStatus::Succeeded } else { JobStatus::Failed };
        let error = outcome.error.as_ref().map(|m| json!({ "kind": "failed", "message": m }));
        state.jobs.finish(&job_id, status, row.detail.get("report").cloned(), error);
        for lock in &locks {
            let _ = store.release_lease(&format!("lock:{lock}"), &run_key).await;
        }
    }
    match &row.error {
        Some(e) => tracing::warn!(job = %entry.name, status = %row.status, error = %e, "scheduled run ended"),
        None => tracing::info!(job = %entry.name, status = %row.status, "scheduled run ended"),
    }
    if recorded {
        state.metrics.record_job(&entry.name, entry.job.as_str(), outcome.status, end);
    }
}

/// The locks a run takes: its own job, its database, the entry's.
fn locks_of(state: &AppState, entry: &ScheduleConfig) -> Vec<String> {
    let mut locks = vec![format!("job:{}", entry.name)];
    if entry.job.on_database()
        && let Some(db) = database_of(state, entry)
    {
        locks.push(format!("database:{db}"));
    }
    for l in &entry.locks {
        if !locks.contains(l) {
            locks.push(l.clone());
        }
    }
    // One order everywhere: two runs waiting for the same locks never hold one each.
    locks.sort();
    locks
}

/// The database a job works on: the entry's, the only one, or `main`.
fn database_of(state: &AppState, entry: &ScheduleConfig) -> Option<String> {
    let ctx = state.context().ok()?;
    ops_backup::target::database_name(&ctx, entry.database.as_deref()).ok()
}

/// Takes the run's leases and its place among the server's jobs (its id), waiting (policy
/// `wait`) until the job is due again or the server stops; `Err` says what holds it.
async fn acquire(
    state: &AppState,
    store: &dyn StateStore,
    entry: &ScheduleConfig,
    locks: &[String],
    run_key: &str,
    due: DateTime<Utc>,
) -> Result<String, String> {
    let give_up = CronSchedule::parse(&entry.cron, &entry.timezone)
        .ok()
        .and_then(|s| s.next_after(due))
        .unwrap_or(due + Duration::hours(1));
    loop {
        match try_acquire(state, store, entry, locks, run_key).await {
            Ok(slot) => return Ok(slot),
            Err(busy) => {
                if entry.overlap == OverlapPolicy::Skip {
                    return Err(format!("{busy} (overlap = \"skip\")"));
                }
                if Utc::now() + Duration::seconds(2) >= give_up {
                    return Err(format!("{busy} until the job was due again (overlap = \"wait\")"));
                }
                tokio::select! {
                    () = tokio::time::sleep(StdDuration::from_secs(2)) => {}
                    () = state.stopping() => return Err(format!("{busy}; ops-server stopped meanwhile")),
                }
            }
        }
    }
}

async fn try_acquire(
    state: &AppState,
    store: &dyn StateStore,
    entry: &ScheduleConfig,
    locks: &[String],
    run_key: &str,
) -> Result<String, String> {
    let now = Utc::now();
    let until = now + Duration::from_std(STALE_AFTER).unwrap_or_default();
    let mut taken: Vec<&String> = Vec::new();
    let mut refused = None;
    for lock in locks {
        match store.try_lease(&format!("lock:{lock}"), run_key, now, until).await {
            Ok(true) => taken.push(lock),
            Ok(false) => {
                refused = Some(format!("lock {lock} is held by another run"));
                break;
            }
            Err(e) => {
                refused = Some(format!("lock {lock} could not be taken: {e}"));
                break;
            }
        }
    }
    // The server's own slot, shared with the API's jobs (a backup of the same database).
    let exclusive = match entry.job {
        // The entry's parameters as it gives them (the run resolves the rest).
        JobKind::Runbook => entry.runbook.as_ref().map(|name| crate::runbooks::exclusive_key(name, &entry.params)),
        kind if kind.on_database() => database_of(state, entry).map(|db| format!("database {db}")),
        _ => None,
    };
    let admitted = if refused.is_none() {
        match state.jobs.admit(entry.job.as_str(), exclusive.as_deref()) {
            Ok(id) => Some(id),
            Err(Refusal::Busy(m) | Refusal::Full(m)) => {
                refused = Some(m);
                None
            }
        }
    } else {
        None
    };
    match (refused, admitted) {
        (None, Some(job_id)) => Ok(job_id),
        (refused, _) => {
            for lock in taken {
                let _ = store.release_lease(&format!("lock:{lock}"), run_key).await;
            }
            Err(refused.unwrap_or_else(|| "the server is busy".to_owned()))
        }
    }
}

/// Renews the run's leases and heartbeat until aborted.
fn renew_while_running(
    store: Arc<dyn StateStore>,
    locks: Vec<String>,
    run_key: String,
    holder: String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            let now = Utc::now();
            let until = now + Duration::from_std(STALE_AFTER).unwrap_or_default();
            for lock in &locks {
                match store.try_lease(&format!("lock:{lock}"), &run_key, now, until).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(%lock, run = %run_key, "a scheduled run lost its lock"),
                    Err(e) => tracing::warn!(%lock, error = %e, "a scheduled run's lock was not renewed"),
                }
            }
            if let Err(e) = store.heartbeat_scheduled_runs(&holder, now).await {
                tracing::warn!(error = %e, "scheduled runs not renewed");
            }
        }
    })
}

struct Outcome {
    status: &'static str,
    error: Option<String>,
    detail: Value,
}

impl Outcome {
    fn of(result: Result<(bool, Value), ops_core::Error>, failed_because: impl FnOnce(&Value) -> String) -> Self {
        match result {
            Ok((true, detail)) => Self { status: "success", error: None, detail },
            Ok((false, detail)) => Self { status: "failure", error: Some(failed_because(&detail)), detail },
            // Another operation holds the database (a backup started by hand or on another
            // host, caught by the backup's own lock): nothing ran, as with a held lock.
            Err(e) if e.kind() == ops_core::ErrorKind::Conflict => {
                Self { status: "skipped", error: Some(e.to_string()), detail: Value::Null }
            }
            Err(e) => Self { status: "failure", error: Some(e.to_string()), detail: Value::Null },
        }
    }
}

/// Runs the entry's job within its timeout.
async fn execute(state: &Arc<AppState>, entry: &ScheduleConfig, job_id: &str) -> Outcome {
    let timeout = StdDuration::from_secs(entry.timeout());
    let actor = format!("schedule:{}", entry.name);
    let work = job(state, entry, &actor, job_id, timeout);
    let kind = entry.job.as_str();
    match tokio::time::timeout(timeout + StdDuration::from_secs(30), work).await {
        Ok(result) => Outcome::of(result, |detail| {
            detail
                .get("error")
                .and_then(Value::as_str)
                .map_or_else(|| format!("the {kind} did not succeed"), str::to_owned)
        }),
        Err(_) => Outcome {
            status: "failure",
            error: Some(format!("the {kind} took longer than its timeout ({} s) and was stopped", timeout.as_secs())),
            detail: Value::Null,
        },
    }
}

/// A future that resolves when the server stops or `limit` passes.
fn stop_or_after(state: &AppState, limit: StdDuration) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    let stopping = state.stopping();
    Box::pin(async move {
        tokio::select! {
            () = stopping => {}
            () = tokio::time::sleep(limit) => {}
        }
    })
}

fn wiring(e: crate::state::WiringError) -> ops_core::Error {
    ops_core::Error::unavailable(e.message)
}

/// The job itself: `Ok((succeeded, report))`, or the error that kept it from running.
async fn job(
    state: &Arc<AppState>,
    entry: &ScheduleConfig,
    actor: &str,
    job_id: &str,
    timeout: StdDuration,
) -> Result<(bool, Value), ops_core::Error> {
    let ctx = state.context().map_err(wiring)?;
    match entry.job {
        JobKind::Backup => {
            let name = ops_backup::target::database_name(&ctx, entry.database.as_deref())?;
            let opts = ops_backup::BackupOptions { database: Some(name.clone()), ..Default::default() };
            let report =
                crate::backups::backup_recorded(state, &ctx, &opts, &name, stop_or_after(state, timeout)).await?;
            let summary = json!({
                "backup": report.pointer("/manifest/id"),
                "size-bytes": report.pointer("/manifest/size_bytes"),
            });
            Ok((true, summary))
        }
        JobKind::DrTest => {
            let name = ops_backup::target::database_name(&ctx, entry.database.as_deref())?;
            let opts = ops_backup::DrillOptions {
                database: Some(name.clone()),
                timeout_secs: timeout.as_secs(),
                ..Default::default()
            };
            let (report, passed) =
                crate::backups::drill_recorded(state, &ctx, &opts, &name, stop_or_after(state, timeout)).await;
            Ok((passed, report?))
        }
        JobKind::Verify => {
            let name = ops_backup::target::database_name(&ctx, entry.database.as_deref())?;
            let r = ops_backup::verify(&ctx, Some(&name), "latest").await?;
            Ok((r.ok, crate::backups::to_value(&r)))
        }
        JobKind::Prune => {
            let opts = ops_backup::PruneOptions { dry_run: false, actor: Some(actor.to_owned()), ..Default::default() };
            let r = ops_backup::prune(&ctx, &opts, Utc::now()).await?;
            let failed: Vec<String> = r
                .destinations
                .iter()
                .flat_map(|d| d.failed.iter().map(move |(id, why)| format!("{} at {}: {why}", id, d.location)))
                .collect();
            let deleted: usize = r.destinations.iter().map(|d| d.deleted.len()).sum();
            let mut detail = json!({ "deleted": deleted });
            if !failed.is_empty() {
                detail["error"] = json!(format!("{} deletion(s) failed: {}", failed.len(), failed.join("; ")));
            }
            Ok((failed.is_empty(), detail))
        }
        JobKind::TlsRenew => {
            let cfg = &ctx.config;
            let opts = ops_probes::tls::renew_options(cfg, false)?;
            let plan = ops_tls::renew_plan(&opts).await?;
            if !plan.run {
                return Ok((true, json!({ "renewed": false, "reason": "no certificate is due for renewal" })));
            }
            let audit = ops_core::audit::Audit::open(cfg, Some(actor))?;
            let rt = ctx
                .containers
                .as_deref()
                .ok_or_else(|| ops_core::Error::unavailable("no container runtime to run the renewal commands"))?;
            let report = ops_tls::apply_renew_plan(rt, plan, &opts, &audit).await?;
            let ok = report.executed.iter().all(ops_tls::CommandOutcome::succeeded);
            // The certificates changed: the TLS metrics follow now, not at the next check.
            let _ = state.tls(std::time::Instant::now()).await;
            let mut detail = json!({ "renewed": ok, "status": report.status.as_str() });
            if !ok {
                detail["error"] = json!("a renewal command failed: see the audit log");
            }
            Ok((ok, detail))
        }
        JobKind::Perf => {
            let report =
                state.perf(ops_perf::PerfOptions::default(), std::time::Instant::now()).await.map_err(wiring)?;
            let text = ops_perf::render_text(&report);
            let summary = json!({ "status": report.status.as_str(), "duration-ms": report.duration_ms });
            match &entry.output {
                Some(path) => {
                    write_report(path, &text).await?;
                    Ok((true, json!({ "status": report.status.as_str(), "written-to": path })))
                }
                None => {
                    let title = format!("weekly performance analysis: {}", report.status.as_str());
                    let level = match report.status {
                        ops_core::Status::Critical => ops_core::ports::NotificationLevel::Critical,
                        ops_core::Status::Warn => ops_core::ports::NotificationLevel::Warning,
                        _ => ops_core::ports::NotificationLevel::Info,
                    };
                    let delivered = notify_all(&ctx, &title, &text, level).await?;
                    let mut summary = summary;
                    summary["delivered"] = json!(delivered);
                    Ok((true, summary))
                }
            }
        }
        JobKind::Triage => {
            let report = state.triage(std::time::Instant::now()).await.map_err(wiring)?;
            Ok((
                true,
                json!({ "severity": report.severity.map(|s| s.to_string()), "incidents": report.incidents.len() }),
            ))
        }
        JobKind::Runbook => run_runbook(state, &ctx, entry, actor, job_id).await,
        JobKind::KeyRotationReminder => {
            let text = entry.message.clone().unwrap_or_else(|| {
                "Rotate the API keys: make new ones with `opsctl keys generate`, add them to API_KEYS and \
                 ADMIN_KEYS next to the old ones, move every client over, then remove the old keys."
                    .to_owned()
            });
            let delivered =
                notify_all(&ctx, "API keys are due for rotation", &text, ops_core::ports::NotificationLevel::Warning)
                    .await?;
            Ok((true, json!({ "delivered": delivered })))
        }
    }
}

/// Sends to every webhook; an error when there is none or none took it.
async fn notify_all(
    ctx: &ops_core::Context,
    title: &str,
    text: &str,
    level: ops_core::ports::NotificationLevel,
) -> Result<usize, ops_core::Error> {
    if ctx.notifiers.is_empty() {
        return Err(ops_core::Error::invalid_input(
            "no notify.webhooks configured: nobody would hear of it (or give the job an output file)",
        ));
    }
    let note = ops_core::ports::Notification {
        title: title.to_owned(),
        text: text.to_owned(),
        level,
        fields: BTreeMap::new(),
    };
    let mut delivered = 0;
    let mut last_error = None;
    for n in &ctx.notifiers {
        match n.notify(&note).await {
            Ok(_) => delivered += 1,
            Err(e) => last_error = Some(e),
        }
    }
    match (delivered, last_error) {
        (0, Some(e)) => Err(e),
        (n, _) => Ok(n),
    }
}

/// Replaces `path` with `text` (a temporary file renamed over it: a reader sees the old
/// report or the new one, never half of one).
async fn write_report(path: &std::path::Path, text: &str) -> Result<(), ops_core::Error> {
    let path = path.to_owned();
    let text = text.to_owned();
    tokio::task::spawn_blocking(move || {
        let tmp = path.with_extension("tmp-ops");
        ops_core::private_fs::write(&tmp, text.as_bytes()).and_then(|()| std::fs::rename(&tmp, &path)).map_err(|e| {
            ops_core::Error::unavailable(format!("the report cannot be written to {}: {e}", path.display()))
        })
    })
    .await
    .map_err(|e| ops_core::Error::internal(format!("writing the report: {e}")))?
}

async fn run_runbook(
    state: &Arc<AppState>,
    ctx: &ops_core::Context,
    entry: &ScheduleConfig,
    actor: &str,
    job_id: &str,
) -> Result<(bool, Value), ops_core::Error> {
    let name = entry.runbook.clone().unwrap_or_default();
    let dir = state.running().config.runbooks.dir.clone();
    let catalog = tokio::task::spawn_blocking(move || ops_runbook::Catalog::load(dir.as_deref()))
        .await
        .map_err(|e| ops_core::Error::internal(format!("loading runbooks: {e}")))??;
    let rb = catalog.get(&name)?.clone();
    let store = state.state_store().await.map_err(wiring)?;
    let mut ctx = ctx.clone();
    ctx.state = Some(Arc::clone(&store));
    // The schedule is the operator's standing order: `approval = "yes"` steps go on; manual
    // steps and `approval = "approve"` still wait for a person.
    let run_id = ops_runbook::run::new_id(Utc::now());
    let opts = ops_runbook::RunOptions {
        params: entry.params.clone(),
        yes: true,
        actor: actor.to_owned(),
        run_id: Some(run_id.clone()),
        ..Default::default()
    };
    ops_runbook::engine::resolve_params(&ctx, &rb, &opts)?;
    let approver = ops_runbook::StoreApprover {
        store,
        timeout: StdDuration::from_secs(state.running().config.runbooks.approval_timeout_secs.max(1)),
        poll: StdDuration::from_millis(500),
    };
    let observer = crate::runbooks::JobProgress { state: Arc::clone(state), job: job_id.to_owned() };
    let run = ops_runbook::run(&ctx, &rb, &opts, &approver, &observer).await?;
    let mut detail = json!({ "run": run.id, "status": run.status.as_str() });
    if !run.ok() {
        detail["error"] = json!(format!("runbook {name} ended {} (run {})", run.status.as_str(), run.id));
    }
    Ok((run.ok(), detail))
}

/// `GET /api/v1/schedule`: every entry with its next due time, last run and last success.
#[utoipa::path(get, path = "/api/v1/schedule", tag = "schedule",
    responses((status = 200, body = crate::openapi::ScheduleList), (status = "4XX", body = crate::openapi::ErrorBody), (status = "5XX", body = crate::openapi::ErrorBody)))]
pub(crate) async fn list(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> Result<axum::Json<crate::openapi::ScheduleList>, crate::error::ApiError> {
    let entries = state.running().config.schedule.clone();
    let store = state.state_store().await?;
    let jobs = ops_core::schedule::overview(&entries, store.as_ref(), Utc::now()).await?;
    Ok(axum::Json(crate::openapi::ScheduleList { jobs }))
}

/// `?limit=N` of a ledger listing.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    /// At most this many (default 50, at most 1000).
    limit: Option<usize>,
}

/// `GET /api/v1/schedule/{name}/runs`: one entry's ledger, newest first.
#[utoipa::path(get, path = "/api/v1/schedule/{name}/runs", tag = "schedule",
    params(("name" = String, Path, description = "The entry's name"), RunsQuery),
    responses((status = 200, body = crate::openapi::ScheduledRunList), (status = "4XX", body = crate::openapi::ErrorBody), (status = "5XX", body = crate::openapi::ErrorBody)))]
pub(crate) async fn runs(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<RunsQuery>,
) -> Result<axum::Json<crate::openapi::ScheduledRunList>, crate::error::ApiError> {
    if !state.running().config.schedule.iter().any(|e| e.name == name) {
        return Err(ops_core::Error::not_found("no [[schedule]] entry by that name").into());
    }
    let store = state.state_store().await?;
    let q = ScheduleQuery { job: Some(name), status: None, limit: q.limit.unwrap_or(50).clamp(1, 1000) };
    Ok(axum::Json(crate::openapi::ScheduledRunList { runs: store.scheduled_runs(&q).await? }))
}
