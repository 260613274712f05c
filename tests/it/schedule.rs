//! The scheduler of ops-server on real parts: backups of a real PostgreSQL at a cron time a
//! few seconds ahead, a lock shared by two entries, a database that is down, catch-up across
//! a restart, and two replicas on one PostgreSQL state store (each due time once, and the
//! survivor takes over when one dies).
//!
//! A replica is an `AppState` whose scheduler runs on a runtime of its own: shutting that
//! runtime down stops every task of the replica at once, its runs included, with no code of
//! its own running: a process killed, as far as the shared store can tell.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use ops_core::SecretUrl;
use ops_core::adapters::state::SqlStateStore;
use ops_core::ports::{ScheduleQuery, ScheduledRun, StateStore};
use serde_json::Value;

use crate::harness::{self, eventually};

struct Replica {
    rt: Option<tokio::runtime::Runtime>,
    state: Arc<ops_server::AppState>,
    holder: String,
}

impl Replica {
    fn start(config: &Path) -> Self {
        let env = BTreeMap::new();
        let loaded = ops_core::config::load(Some(config), &env).unwrap();
        let state = ops_server::AppState::from_config(loaded.config, Some(config.to_owned()), env);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let holder = ops_server::scheduler::holder_name();
        rt.spawn(ops_server::scheduler::run(Arc::clone(&state), holder.clone()));
        Self { rt: Some(rt), state, holder }
    }

    /// Stops every task of the replica at once.
    fn kill(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }

    fn metrics(&self) -> String {
        self.state.metrics.encode()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A six-field expression (seconds first) for one UTC time of day.
fn at_second(t: DateTime<Utc>) -> String {
    format!("{} {} {} * * *", t.second(), t.minute(), t.hour())
}

async fn rows(store: &dyn StateStore, job: &str) -> Vec<ScheduledRun> {
    store.scheduled_runs(&ScheduleQuery { job: Some(job.to_owned()), status: None, limit: 1000 }).await.unwrap()
}

async fn finished(store: &dyn StateStore, job: &str) -> Vec<ScheduledRun> {
    rows(store, job).await.into_iter().filter(|r| r.status != "running").collect()
}

/// The value of the sample `series` (`name{labels}`) in a metrics text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn scheduled_jobs_run_once_share_locks_fail_loudly_and_catch_up() {
    let pg = harness::postgres(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    let due = Utc::now() + chrono::Duration::seconds(8);
    let config = dir.path().join("ops.toml");
    let text = format!(
        r#"
[state]
url = "sqlite://{dir}/state.db"
[perf]
audit-log = "{dir}/audit.jsonl"
[storage]
url = "{backups}"
[databases.main]
url = "{main}"
[databases.down]
url = "postgres://postgres:s3cr3t-down@127.0.0.1:9/down"

# Two entries on one database at the same second: they share database:main.
[[schedule]]
name = "backup-a"
job = "backup"
database = "main"
cron = "{at}"
[[schedule]]
name = "backup-b"
job = "backup"
database = "main"
cron = "{at}"

# A database that is down: a failed run, never silence.
[[schedule]]
name = "backup-down"
job = "backup"
database = "down"
cron = "{at}"

# Every four seconds, for the catch-up across a restart.
[[schedule]]
name = "tick"
job = "triage"
cron = "*/4 * * * * *"
[[schedule]]
name = "tick-skip"
job = "triage"
cron = "*/4 * * * * *"
timezone = "Europe/Berlin"
catch-up = "skip"
"#,
        dir = dir.path().display(),
        backups = backups.display(),
        main = pg.url("postgres", "postgres", "app"),
        at = at_second(due),
    );
    std::fs::write(&config, text).unwrap();
    let mut replica = Replica::start(&config);
    let store =
        SqlStateStore::open(&SecretUrl::new(format!("sqlite://{}/state.db", dir.path().display()))).await.unwrap();

    // The three entries due at the same second each leave one finished row.
    let (a, b, down) = eventually("the backups due a few seconds ahead end", Duration::from_secs(90), || async {
        let (a, b, down) = (
            finished(&store, "backup-a").await,
            finished(&store, "backup-b").await,
            finished(&store, "backup-down").await,
        );
        (!a.is_empty() && !b.is_empty() && !down.is_empty()).then_some((a, b, down))
    })
    .await;
    assert_eq!((a.len(), b.len(), down.len()), (1, 1, 1), "{a:?} {b:?} {down:?}");
    let due_at = |r: &ScheduledRun| r.scheduled_at.timestamp();
    assert_eq!(due_at(&a[0]), due.timestamp());
    // One of the two sharing database:main ran, the other was skipped and says why.
    let (ran, skipped) = if a[0].status == "success" { (&a[0], &b[0]) } else { (&b[0], &a[0]) };
    assert_eq!(ran.status, "success", "{ran:?}");
    assert_eq!(skipped.status, "skipped", "{skipped:?}");
    assert!(skipped.error.as_deref().unwrap().contains("database:main"), "{skipped:?}");
    assert!(ran.started_at < skipped.finished_at.unwrap() || ran.finished_at.unwrap() > skipped.started_at);
    let backup_id = ran.detail["report"]["backup"].as_str().unwrap().to_owned();
    let ctx = ops_core::Context::from_config(replica.state.running().config.as_ref().clone()).unwrap();
    let listed = ops_backup::list(&ctx).await.unwrap();
    let of_main: Vec<_> = listed.iter().filter(|b| b.database.as_deref() == Some("main")).collect();
    assert_eq!(of_main.len(), 1, "one backup for the one run: {listed:?}");
    assert_eq!(of_main[0].id.to_string(), backup_id);
    assert!(of_main[0].complete);
    // The failed one left its failure record, never a backup that looks good.
    let of_down: Vec<_> = listed.iter().filter(|b| b.database.as_deref() == Some("down")).collect();
    assert!(of_down.iter().all(|b| b.failed && !b.complete), "{of_down:?}");
    // The database that is down: a failed run with the reason.
    assert_eq!(down[0].status, "failure", "{down:?}");
    assert!(!down[0].error.as_deref().unwrap_or_default().is_empty());
    assert!(!format!("{down:?}").contains("s3cr3t-down"), "{down:?}");
    // A run's metrics are recorded just after its row and its locks: the run that succeeded
    // may still be releasing its lock when the rows are all there.
    let success = format!("ops_job_runs_total{{job=\"{}\",kind=\"backup\",result=\"success\"}}", ran.job);
    let m = eventually("the successful run's metrics", Duration::from_secs(10), || async {
        let m = replica.metrics();
        sample(&m, &success).is_some().then_some(m)
    })
    .await;
    assert!(!m.contains("s3cr3t-down"));
    assert_eq!(sample(&m, &success), Some(1.0), "{m}");
    assert_eq!(
        sample(&m, &format!("ops_job_runs_total{{job=\"{}\",kind=\"backup\",result=\"skipped\"}}", skipped.job)),
        Some(1.0)
    );
    assert!(
        sample(&m, &format!("ops_job_last_success_timestamp_seconds{{job=\"{}\",kind=\"backup\"}}", ran.job)).unwrap()
            > 0.0
    );
    let failed_at =
        sample(&m, "ops_job_last_run_timestamp_seconds{job=\"backup-down\",kind=\"backup\",result=\"failure\"}")
            .expect("failure time");
    assert!((failed_at - down[0].finished_at.unwrap().timestamp() as f64).abs() < 2.0, "{failed_at}");
    assert_eq!(sample(&m, "ops_backup_success{database=\"down\"}"), Some(0.0), "{down:?}");
    // The runs are jobs of the server too, and `opsctl schedule list` shows them.
    let (code, out) = opsctl(&config, &["schedule", "list"]).await;
    assert_eq!(code, 1, "the newest run of backup-down failed: {out}");
    assert!(out.contains("backup-down") && out.contains("failure"), "{out}");
    // A table: every row's columns start where the header's do, a time zone and all.
    let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with("  └")).collect();
    let (header, table) = lines.split_first().unwrap();
    let next_col = header.find("NEXT").unwrap();
    for row in table {
        assert_eq!(row.get(next_col..next_col + 2), Some("20"), "NEXT column misaligned: {out}");
    }
    assert!(out.contains("*/4 * * * * * Europe/Berlin"), "{out}");
    let (_, json) = opsctl(&config, &["--json", "schedule", "list"]).await;
    let jobs: Value = serde_json::from_str(&json).unwrap();
    let down_job = jobs["jobs"].as_array().unwrap().iter().find(|j| j["name"] == "backup-down").unwrap();
    assert_eq!(down_job["last"]["status"], "failure");
    assert!(down_job["next"].as_str().unwrap() > Utc::now().to_rfc3339().as_str());

    // Catch-up: both ticks ran, the server is down across two or more due times, then back.
    eventually("both ticks ran", Duration::from_secs(60), || async {
        let ok = |rows: Vec<ScheduledRun>| rows.iter().any(|r| r.status == "success");
        (ok(rows(&store, "tick").await) && ok(rows(&store, "tick-skip").await)).then_some(())
    })
    .await;
    // Killed between runs: a run killed midway keeps its lock until it goes stale
    // (STALE_AFTER), and the catch-up run would rightly be skipped as overlapping it.
    eventually("no tick running", Duration::from_secs(30), || async {
        let busy = |rows: Vec<ScheduledRun>| rows.iter().any(|r| r.status == "running");
        (!busy(rows(&store, "tick").await) && !busy(rows(&store, "tick-skip").await)).then_some(())
    })
    .await;
    replica.kill();
    let down_since = Utc::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let replica = Replica::start(&config);
    let late = eventually("the late tick ran once", Duration::from_secs(60), || async {
        rows(&store, "tick").await.into_iter().find(|r| r.detail["late"] == true && r.status != "running")
    })
    .await;
    assert_eq!(late.status, "success", "{late:?}");
    assert!(late.scheduled_at > down_since, "{late:?}");
    assert!(late.detail["missed-before"].as_u64().unwrap() >= 1, "{late:?}");
    let missed = eventually("the skipped tick was recorded missed", Duration::from_secs(30), || async {
        rows(&store, "tick-skip").await.into_iter().find(|r| r.status == "missed")
    })
    .await;
    assert!(missed.scheduled_at > down_since && missed.error.is_some(), "{missed:?}");
    // Missed due times between the restart's catch-up and the first on-time run: none ran.
    let late_rows: Vec<_> = rows(&store, "tick")
        .await
        .into_iter()
        .filter(|r| r.scheduled_at > down_since && r.scheduled_at <= late.scheduled_at)
        .collect();
    assert_eq!(late_rows.len(), 1, "only the latest missed time runs: {late_rows:?}");
    let m = replica.metrics();
    assert!(sample(&m, "ops_job_missed_total{job=\"tick\",kind=\"triage\"}").unwrap() >= 1.0, "{m}");
    assert!(sample(&m, "ops_job_missed_total{job=\"tick-skip\",kind=\"triage\"}").unwrap() >= 2.0, "{m}");
}

/// `opsctl` in-process, on a thread of its own (it runs its own runtime).
async fn opsctl(config: &Path, args: &[&str]) -> (u8, String) {
    let mut argv = vec!["opsctl".to_owned(), "--config".to_owned(), config.display().to_string()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    tokio::task::spawn_blocking(move || {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = ops_cli::run(argv, &BTreeMap::new(), &mut out, &mut err);
        (code, String::from_utf8_lossy(&out).into_owned() + &String::from_utf8_lossy(&err))
    })
    .await
    .unwrap()
}

#[tokio::test]
#[allow(clippy::print_stderr)] // the measured failover time, for the closing note and BENCHMARKS.md
async fn two_replicas_on_postgres_run_each_due_time_once_and_the_survivor_takes_over() {
    let pg = harness::postgres(&[]).await;
    let rt = harness::require_docker().await;
    let create = ops_core::ports::ExecSpec {
        cmd: ["psql", "-U", "postgres", "-c", "CREATE DATABASE opsstate"].map(str::to_owned).to_vec(),
        ..Default::default()
    };
    use ops_core::ports::ContainerRuntime as _;
    let out = rt.exec(pg.id(), &create).await.unwrap();
    assert_eq!(out.exit_code, 0, "{}", out.stderr);
    let state_url = pg.url("postgres", "postgres", "opsstate");
    let store = SqlStateStore::open(&SecretUrl::new(state_url.clone())).await.unwrap();
    // A replica that died in the middle of a run an hour ago: its run is failed once, by
    // whichever replica looks first.
    let hour_ago = Utc::now() - chrono::Duration::hours(1);
    let dead = ScheduledRun {
        job: "remind".to_owned(),
        scheduled_at: hour_ago,
        holder: "gone:1:dead".to_owned(),
        status: "running".to_owned(),
        started_at: hour_ago,
        finished_at: None,
        heartbeat_at: hour_ago,
        error: None,
        detail: serde_json::json!({}),
    };
    assert!(store.claim_scheduled_run(&dead).await.unwrap());

    let (hooks, hook_url) = crate::backup::webhook().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ops.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[state]
url = "{state_url}"
[notify]
webhooks = ["{hook_url}"]
retries = 0
[[schedule]]
name = "remind"
job = "key-rotation-reminder"
cron = "* * * * * *"
message = "rotate the keys"
"#
        ),
    )
    .unwrap();
    let mut one = Replica::start(&config);
    let mut two = Replica::start(&config);
    let abandoned = eventually("the dead replica's run is failed", Duration::from_secs(30), || async {
        rows(&store, "remind")
            .await
            .into_iter()
            .find(|r| r.scheduled_at == dead.scheduled_at && r.status == "abandoned")
    })
    .await;
    assert!(abandoned.error.unwrap().contains("gone:1:dead"));
    tokio::time::sleep(Duration::from_secs(8)).await;

    // Each due second ran once, by one replica or the other; every message is one run.
    let ran: Vec<ScheduledRun> = rows(&store, "remind")
        .await
        .into_iter()
        .filter(|r| r.scheduled_at > hour_ago && r.status == "success")
        .collect();
    let seconds: BTreeSet<i64> = ran.iter().map(|r| r.scheduled_at.timestamp()).collect();
    assert!(ran.len() >= 6, "{ran:?}");
    assert_eq!(seconds.len(), ran.len(), "a due time ran twice");
    let sent = hooks.0.lock().unwrap().len();
    let finished_now = rows(&store, "remind").await.into_iter().filter(|r| r.scheduled_at > hour_ago).count();
    assert!(sent >= ran.len() && sent <= finished_now, "{sent} messages for {} runs", ran.len());
    let holders: BTreeSet<&str> = ran.iter().map(|r| r.holder.as_str()).collect();
    eprintln!("runs by holder: {holders:?}");

    // Kill the replica that ran the newest run: the other runs the next due time.
    let newest = ran.iter().max_by_key(|r| r.scheduled_at).unwrap().holder.clone();
    let (victim, survivor) = if one.holder == newest { (&mut one, &two) } else { (&mut two, &one) };
    assert_eq!(victim.holder, newest);
    let victim_holder = victim.holder.clone();
    victim.kill();
    let killed = Utc::now();
    let taken = eventually("the survivor runs the next due time", Duration::from_secs(60), || async {
        rows(&store, "remind").await.into_iter().find(|r| r.scheduled_at > killed && r.status == "success")
    })
    .await;
    let failover = (taken.started_at - killed).num_milliseconds();
    eprintln!("failover: the next due time ran {failover} ms after the kill, by {}", taken.holder);
    assert_eq!(taken.holder, survivor.holder);
    assert_ne!(taken.holder, victim_holder);
    // Killed between two runs, the next due second is the survivor's. Killed in the middle
    // of one, that run's locks hold until they expire (STALE_AFTER) and the run is abandoned.
    let mid_run =
        rows(&store, "remind").await.into_iter().any(|r| r.holder == victim_holder && r.finished_at.is_none());
    let bound = if mid_run { ops_server::scheduler::STALE_AFTER.as_millis() as i64 + 3_000 } else { 3_000 };
    assert!(failover < bound, "{failover} ms (killed mid-run: {mid_run})");
    // No due time after the kill is lost.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after: BTreeSet<i64> = rows(&store, "remind")
        .await
        .into_iter()
        .filter(|r| r.scheduled_at > killed + chrono::Duration::seconds(1) && r.status != "running")
        .map(|r| r.scheduled_at.timestamp())
        .collect();
    let (first, last) = (*after.first().unwrap(), *after.last().unwrap());
    assert_eq!(after.len() as i64, last - first + 1, "a second without its row: {after:?}");
    assert!(
        survivor
            .metrics()
            .contains("ops_job_runs_total{job=\"remind\",kind=\"key-rotation-reminder\",result=\"success\"}")
    );
}
