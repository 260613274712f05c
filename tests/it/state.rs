//! The `StateStore` contract, run against both real adapters: a SQLite file and a PostgreSQL
//! server (what several ops-server replicas share).

use std::sync::Arc;

use chrono::{Duration, Utc};
use ops_core::ErrorKind;
use ops_core::SecretUrl;
use ops_core::adapters::state::{SqlStateStore, schema_version};
use ops_core::audit::{AuditEntry, AuditLog};
use ops_core::ports::{
    Approval, BudgetRequest, IncidentQuery, NewEvent, RunQuery, ScheduleQuery, ScheduledRun, StateStore,
    StoredIncident, StoredRun,
};

use crate::harness;

fn run(id: &str, runbook: &str, status: &str, minutes_ago: i64) -> StoredRun {
    let t = Utc::now() - Duration::minutes(minutes_ago);
    StoredRun {
        id: id.to_owned(),
        runbook: runbook.to_owned(),
        status: status.to_owned(),
        started_at: t,
        updated_at: t,
        document: serde_json::json!({ "id": id, "steps": [{ "outcome": "ok" }] }),
    }
}

async fn contract(url: &SecretUrl) {
    let store = Arc::new(SqlStateStore::open(url).await.unwrap());
    // Opening again (another process, another replica) applies nothing twice.
    let again = SqlStateStore::open(url).await.unwrap();
    assert_eq!(again.migrate().await.unwrap(), schema_version());
    assert!(!store.location().contains("statepw"), "{}", store.location());

    // Runs: saved, replaced, listed newest first, filtered.
    store.save_run(&run("run-1", "database-down", "running", 10)).await.unwrap();
    store.save_run(&run("run-2", "cache-down", "failed", 5)).await.unwrap();
    store.save_run(&run("run-1", "database-down", "succeeded", 10)).await.unwrap();
    assert_eq!(store.run("run-1").await.unwrap().unwrap().status, "succeeded");
    assert!(store.run("run-9").await.unwrap().is_none());
    let all = store.runs(&RunQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["run-2", "run-1"]);
    let failed =
        store.runs(&RunQuery { status: Some("failed".into()), limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(failed.len(), 1);
    let one =
        store.runs(&RunQuery { runbook: Some("database-down".into()), limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(one[0].document["steps"][0]["outcome"], "ok");

    // Budgets: two replicas asking at once for the last use get one use between them.
    let now = Utc::now();
    let ask = |run_id: &str| BudgetRequest {
        key: "restart:container:db".into(),
        max: 3,
        window_secs: 3600,
        cooldown_secs: 0,
        run_id: run_id.into(),
        now,
    };
    assert!(store.take_budget(&ask("a")).await.unwrap().granted);
    assert!(store.take_budget(&ask("b")).await.unwrap().granted);
    let (c, d) = (ask("c"), ask("d"));
    let (x, y) = tokio::join!(store.take_budget(&c), again.take_budget(&d));
    let granted = [x.unwrap().granted, y.unwrap().granted];
    assert_eq!(granted.iter().filter(|g| **g).count(), 1, "{granted:?}");
    let refused = store.take_budget(&ask("e")).await.unwrap();
    assert!(!refused.granted);
    assert_eq!((refused.used, refused.max), (3, 3));
    assert_eq!(store.budget_uses("restart:container:db", now - Duration::hours(1)).await.unwrap().len(), 3);

    // Approvals: the first one of a step is the one kept.
    let approve = |actor: &str| Approval { run_id: "run-1".into(), step: 3, actor: actor.into(), time: Utc::now() };
    assert!(store.approval("run-1", 3).await.unwrap().is_none());
    store.approve(&approve("api:first")).await.unwrap();
    store.approve(&approve("api:second")).await.unwrap();
    assert_eq!(store.approval("run-1", 3).await.unwrap().unwrap().actor, "api:first");

    // The audit mirror: what was appended since the last mirror, no line twice.
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
    let entry = |action: &str| AuditEntry {
        time: Utc::now(),
        actor: "opsctl:oncall".into(),
        action: action.into(),
        target: "container:db".into(),
        before: serde_json::json!({ "state": "exited" }),
        after: serde_json::Value::Null,
        result: "ok".into(),
    };
    log.append(&entry("restart")).unwrap();
    log.append(&entry("restart-dependents")).unwrap();
    assert_eq!(ops_core::audit::mirror(&log, store.as_ref()).await.unwrap(), 2);
    assert_eq!(ops_core::audit::mirror(&log, store.as_ref()).await.unwrap(), 0, "nothing new");
    log.append(&entry("runbook")).unwrap();
    assert_eq!(ops_core::audit::mirror(&log, store.as_ref()).await.unwrap(), 1);
    let mirrored = store.audit(10).await.unwrap();
    let actions: Vec<&str> = mirrored.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["restart", "restart-dependents", "runbook"]);
    assert_eq!(mirrored[0], log.read().unwrap()[0]);
    // Rotated (logrotate moved it away and a new file began): mirrored from its start.
    std::fs::remove_file(log.path()).unwrap();
    log.append(&entry("stop")).unwrap();
    assert_eq!(ops_core::audit::mirror(&log, store.as_ref()).await.unwrap(), 1);
    assert_eq!(store.audit(10).await.unwrap().len(), 4);

    incidents_contract(&store, &again).await;
    schedule_contract(&store, &again).await;
}

fn incident(id: &str, open_key: &str, minutes_ago: i64) -> StoredIncident {
    let t = Utc::now() - Duration::minutes(minutes_ago);
    StoredIncident {
        id: id.into(),
        status: "open".into(),
        severity: "P1".into(),
        opened_at: t,
        updated_at: t,
        resolved_at: None,
        open_key: open_key.into(),
        document: serde_json::json!({ "id": id }),
        version: 0,
    }
}

fn event(kind: &str, n: u32) -> NewEvent {
    NewEvent { time: Utc::now(), kind: kind.into(), document: serde_json::json!({ "n": n }) }
}

/// Incidents, their append-only logs, documents, the component history and leases.
async fn incidents_contract(store: &SqlStateStore, other: &SqlStateStore) {
    // One open incident per key, opened with its first events in one transaction: a second
    // observer (another replica) cannot open it twice.
    let first = [event("opened", 1), event("update", 2)];
    assert_eq!(
        store.open_incident(&incident("inc-1", "root:container:db", 30), &first).await.unwrap(),
        Some(vec![1, 2])
    );
    assert_eq!(other.open_incident(&incident("inc-2", "root:container:db", 20), &first).await.unwrap(), None);
    assert!(store.incident_events("inc-2", "").await.unwrap().is_empty(), "nothing of the refused one is kept");
    assert!(store.open_incident(&incident("inc-3", "inc-3", 10), &[]).await.unwrap().is_some());
    let open = store.incidents(&IncidentQuery { unresolved: true, limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(open.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["inc-3", "inc-1"]);

    // A save names the version it read: a header saved meanwhile is not overwritten.
    let read = store.incident("inc-1").await.unwrap().unwrap();
    assert_eq!(read.version, 1);
    let mut one = read.clone();
    one.status = "resolved".into();
    one.resolved_at = Some(Utc::now());
    one.open_key = "inc-1".into();
    assert_eq!(store.commit_incident(&one, &[event("resolved", 3)]).await.unwrap(), vec![3]);
    let mut stale = read.clone();
    stale.status = "acknowledged".into();
    assert_eq!(
        other.commit_incident(&stale, &[event("acknowledged", 9)]).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    let now = store.incident("inc-1").await.unwrap().unwrap();
    assert_eq!((now.status.as_str(), now.version), ("resolved", 2), "the stale save changed nothing");
    assert_eq!(store.incident_events("inc-1", "").await.unwrap().len(), 3, "nor appended its event");
    // Resolved, it frees its key, and leaves the unresolved list.
    assert!(other.open_incident(&incident("inc-2", "root:container:db", 1), &[]).await.unwrap().is_some());
    let open = store.incidents(&IncidentQuery { unresolved: true, limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(open.len(), 2);
    let recent = store
        .incidents(&IncidentQuery { since: Some(Utc::now() - Duration::minutes(15)), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(recent.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["inc-2", "inc-3"]);
    assert!(store.incident("inc-1").await.unwrap().unwrap().resolved_at.is_some());
    assert_eq!(
        store.commit_incident(&incident("inc-9", "inc-9", 0), &[]).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Events: numbered in order, also when two writers append at once; read by kind.
    let t = Utc::now();
    let doc = |n: u32| serde_json::json!({ "n": n });
    assert_eq!(store.append_incident_event("inc-2", t, "opened", &doc(1)).await.unwrap(), 1);
    let (two, three) = (doc(2), doc(3));
    let (a, b) = tokio::join!(
        store.append_incident_event("inc-2", t, "note", &two),
        other.append_incident_event("inc-2", t, "update", &three)
    );
    let mut seqs = [a.unwrap(), b.unwrap()];
    seqs.sort_unstable();
    assert_eq!(seqs, [2, 3]);
    let events = store.incident_events("inc-2", "").await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(events[0].kind, "opened");
    assert_eq!(events[0].document, doc(1));
    let updates = store.incident_events("inc-2", "update").await.unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].document, doc(3));
    assert_eq!(
        store.append_incident_event("inc-none", t, "note", &doc(1)).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Documents: put, replace, list by collection, delete.
    store.put_document("check-status", "http:api", &serde_json::json!({ "status": "ok" })).await.unwrap();
    store.put_document("check-status", "http:api", &serde_json::json!({ "status": "critical" })).await.unwrap();
    store.put_document("check-status", "container:db", &serde_json::json!({ "status": "ok" })).await.unwrap();
    store.put_document("status-override", "API", &serde_json::json!({ "status": "major_outage" })).await.unwrap();
    let docs = other.documents("check-status").await.unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1], ("http:api".to_owned(), serde_json::json!({ "status": "critical" })));
    assert!(store.delete_document("status-override", "API").await.unwrap());
    assert!(!store.delete_document("status-override", "API").await.unwrap());
    assert!(store.documents("status-override").await.unwrap().is_empty());

    // The component history: samples counted per day and status.
    let today = Utc::now().date_naive();
    let yesterday = today - Duration::days(1);
    let samples = |s: &str| vec![("API".to_owned(), s.to_owned()), ("Database".to_owned(), "operational".to_owned())];
    store.add_component_samples(yesterday, &samples("operational")).await.unwrap();
    store.add_component_samples(today, &samples("major_outage")).await.unwrap();
    other.add_component_samples(today, &samples("operational")).await.unwrap();
    assert_eq!(
        store.add_component_samples(today, &samples("broken")).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let days = store.component_days(today).await.unwrap();
    let api = days.iter().find(|d| d.component == "API").unwrap();
    assert_eq!((api.samples["major_outage"], api.samples["operational"]), (1, 1));
    assert_eq!(store.component_days(yesterday).await.unwrap().len(), 4);

    // Leases: one holder at a time; taken over once expired; given back by its holder.
    let now = Utc::now();
    let later = now + Duration::seconds(60);
    assert!(store.try_lease("observe", "a", now, later).await.unwrap());
    assert!(!other.try_lease("observe", "b", now, later).await.unwrap());
    assert!(store.try_lease("observe", "a", now, later).await.unwrap(), "the holder renews");
    assert!(
        other.try_lease("observe", "b", later + Duration::seconds(1), later + Duration::seconds(60)).await.unwrap()
    );
    other.release_lease("observe", "a").await.unwrap();
    assert!(!store.try_lease("observe", "a", later + Duration::seconds(2), later).await.unwrap(), "only b releases");
    other.release_lease("observe", "b").await.unwrap();
    assert!(store.try_lease("observe", "a", now, later).await.unwrap());

    // Pruned: expired leases under the prefix only; never a held one, never another prefix.
    assert!(store.try_lease("seen:1", "x", now, now + Duration::seconds(5)).await.unwrap());
    assert!(store.try_lease("seen:2", "x", now, now + Duration::seconds(500)).await.unwrap());
    assert!(store.try_lease("seenother", "x", now, now + Duration::seconds(5)).await.unwrap());
    assert!(store.try_lease("SEEN:3", "x", now, now + Duration::seconds(5)).await.unwrap());
    assert_eq!(store.prune_leases("seen:", now + Duration::seconds(10)).await.unwrap(), 1);
    assert!(!other.try_lease("seen:2", "y", now, later).await.unwrap(), "a lease not expired stays");
    assert!(!other.try_lease("seenother", "y", now, later).await.unwrap(), "another prefix stays");
    assert!(!other.try_lease("SEEN:3", "y", now, later).await.unwrap(), "the prefix's case matters");
    assert!(other.try_lease("seen:1", "y", now, later).await.unwrap(), "the pruned one is free");
    assert_eq!(store.prune_leases("seen%", now).await.unwrap_err().kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn the_sqlite_store_keeps_its_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&SecretUrl::new(format!("sqlite://{}/state.db", dir.path().display()))).await;
}

#[tokio::test]
async fn the_postgres_store_keeps_its_contract() {
    let pg = harness::postgres(&[]).await;
    let rt = harness::require_docker().await;
    let create = ops_core::ports::ExecSpec {
        cmd: [
            "psql",
            "-U",
            "postgres",
            "-c",
            "CREATE ROLE state LOGIN PASSWORD 'statepw'",
            "-c",
            "CREATE DATABASE opsstate OWNER state",
        ]
        .map(str::to_owned)
        .to_vec(),
        ..Default::default()
    };
    use ops_core::ports::ContainerRuntime as _;
    let out = rt.exec(pg.id(), &create).await.unwrap();
    assert_eq!(out.exit_code, 0, "{}", out.stderr);
    contract(&SecretUrl::new(pg.url("state", "statepw", "opsstate"))).await;
}

fn ledger_row(job: &str, due: chrono::DateTime<Utc>, holder: &str) -> ScheduledRun {
    ScheduledRun {
        job: job.to_owned(),
        scheduled_at: due,
        holder: holder.to_owned(),
        status: "running".to_owned(),
        started_at: due,
        finished_at: None,
        heartbeat_at: due,
        error: None,
        detail: serde_json::json!({ "cron": "0 2 * * *" }),
    }
}

/// The schedule ledger: one claim per job and due time across replicas, a finish only by its
/// holder, stale runs failed once, the newest rows kept.
async fn schedule_contract(store: &SqlStateStore, other: &SqlStateStore) {
    use chrono::SubsecRound as _;
    let due = Utc::now().trunc_subsecs(0) - Duration::minutes(5);
    let a = ledger_row("backup-main", due, "a");
    assert!(store.claim_scheduled_run(&a).await.unwrap());
    assert!(!other.claim_scheduled_run(&ledger_row("backup-main", due, "b")).await.unwrap(), "claimed once");
    assert!(other.claim_scheduled_run(&ledger_row("drill-main", due, "b")).await.unwrap(), "another job");
    // Only the holder finishes its run.
    let mut done = a.clone();
    done.status = "success".to_owned();
    done.finished_at = Some(due + Duration::seconds(30));
    done.detail = serde_json::json!({ "backup": "main-1" });
    let mut stolen = done.clone();
    stolen.holder = "b".to_owned();
    assert!(!other.finish_scheduled_run(&stolen).await.unwrap());
    assert!(store.finish_scheduled_run(&done).await.unwrap());
    assert!(!store.finish_scheduled_run(&done).await.unwrap(), "finished once");
    let rows = other
        .scheduled_runs(&ScheduleQuery { job: Some("backup-main".into()), status: None, limit: 10 })
        .await
        .unwrap();
    assert_eq!(rows, vec![done.clone()]);
    // b stopped beating: its running row fails once, with why; a's rows are not touched.
    let now = Utc::now();
    store.heartbeat_scheduled_runs("a", now).await.unwrap();
    let (first, second) = tokio::join!(store.abandon_scheduled_runs(now, now), other.abandon_scheduled_runs(now, now));
    let mut abandoned = first.unwrap();
    abandoned.extend(second.unwrap());
    assert_eq!(abandoned.len(), 1, "{abandoned:?}");
    assert_eq!((abandoned[0].job.as_str(), abandoned[0].status.as_str()), ("drill-main", "abandoned"));
    assert!(abandoned[0].error.as_deref().unwrap().contains("ops-server b stopped"), "{abandoned:?}");
    let failed =
        store.scheduled_runs(&ScheduleQuery { job: None, status: Some("abandoned".into()), limit: 10 }).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].finished_at.is_some());
    // Its holder was alive after all: it records how the run ended, once.
    let mut late = ledger_row("drill-main", due, "b");
    late.status = "success".to_owned();
    late.finished_at = Some(now);
    assert!(other.finish_scheduled_run(&late).await.unwrap());
    assert!(!other.finish_scheduled_run(&late).await.unwrap());
    // A running row is never trimmed.
    let long = ledger_row("tick", due - Duration::days(1), "a");
    assert!(store.claim_scheduled_run(&long).await.unwrap());
    // A live holder's heartbeat keeps its run.
    let live = ledger_row("verify-main", due, "a");
    assert!(store.claim_scheduled_run(&live).await.unwrap());
    store.heartbeat_scheduled_runs("a", now).await.unwrap();
    assert!(store.abandon_scheduled_runs(now - Duration::seconds(60), now).await.unwrap().is_empty());
    // The newest rows of a job are kept, newest first.
    for i in 0..ops_core::ports::MAX_LEDGER_PER_JOB + 5 {
        let mut row = ledger_row("tick", due + Duration::seconds(i as i64), "a");
        row.status = "success".to_owned();
        assert!(store.claim_scheduled_run(&row).await.unwrap());
    }
    let ticks = store
        .scheduled_runs(&ScheduleQuery { job: Some("tick".into()), status: Some("success".into()), limit: 5000 })
        .await
        .unwrap();
    assert_eq!(ticks.len(), ops_core::ports::MAX_LEDGER_PER_JOB);
    assert_eq!(ticks[0].scheduled_at, due + Duration::seconds(ops_core::ports::MAX_LEDGER_PER_JOB as i64 + 4));
    assert_eq!(ticks.last().unwrap().scheduled_at, due + Duration::seconds(5), "the five oldest went");
    let running = store
        .scheduled_runs(&ScheduleQuery { job: Some("tick".into()), status: Some("running".into()), limit: 10 })
        .await
        .unwrap();
    let key = |r: &ScheduledRun| (r.job.clone(), r.scheduled_at, r.status.clone());
    assert_eq!(running.iter().map(key).collect::<Vec<_>>(), vec![key(&long)], "a running row is never trimmed");
    assert_eq!(
        store
            .scheduled_runs(&ScheduleQuery { job: Some("backup-main".into()), ..Default::default() })
            .await
            .unwrap()
            .len(),
        1,
        "other jobs keep theirs"
    );
}
