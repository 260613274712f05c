//! PostgreSQL performance analysis and its guarded actions against a real PostgreSQL 15 (with
//! `pg_stat_statements` preloaded): statements, indexes, tables, sequences, sessions, deltas
//! between runs, and kill-idle / cancel-slow / terminate / vacuum with their audit lines.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use ops_act::Action;
use ops_act::pg as pg_actions;
use ops_core::adapters::docker::DockerRuntime;
use ops_core::adapters::postgres::{PostgresDatabase, PostgresOptions, find_client};
use ops_core::audit::Audit;
use ops_core::config::{OpsConfig, PerfConfig, ProbesConfig};
use ops_core::ports::{ContainerRuntime, Database, ExecSpec};
use ops_core::{Context, ErrorKind, SecretUrl, Status};
use ops_perf::{PerfFinding, SectionReport, StateDir, Window, pg};
use tokio::io::AsyncWriteExt;

use crate::harness::{Postgres, eventually, postgres, require_docker};

fn database(url: &str) -> PostgresDatabase {
    let mut options = PostgresOptions::new(SecretUrl::new(url));
    options.timeout = Duration::from_secs(10);
    PostgresDatabase::new(options).unwrap()
}

/// Runs SQL inside the container as the local superuser; returns (exit code, stdout, stderr).
async fn psql_status(rt: &DockerRuntime, pg: &Postgres, db: &str, sql: &str) -> (i64, String, String) {
    let cmd = ["psql", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-XAtc", sql].map(str::to_owned).to_vec();
    let out = rt.exec(pg.id(), &ExecSpec { cmd, ..Default::default() }).await.unwrap();
    (out.exit_code, out.stdout, out.stderr)
}

async fn psql(rt: &DockerRuntime, pg: &Postgres, db: &str, sql: &str) -> String {
    let (code, stdout, stderr) = psql_status(rt, pg, db, sql).await;
    assert_eq!(code, 0, "psql failed: {stderr}");
    stdout
}

/// A client session held open by a host `psql` reading its stdin, with an application name of
/// its own (this tool's adapters all say `ops`).
struct Client {
    /// Killed when dropped, which ends the session.
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
}

impl Client {
    async fn open(pg: &Postgres, db: &str, application: &str) -> Self {
        let psql = find_client(15, &[]).await.unwrap().psql;
        let mut child = tokio::process::Command::new(psql)
            .args(["-X", "-q", "-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "postgres", "-d", db])
            .env("PGPASSWORD", "postgres")
            .env("PGAPPNAME", application)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut c = Self { _child: child, stdin };
        c.send("SELECT 1;").await;
        c
    }

    async fn send(&mut self, sql: &str) {
        self.stdin.write_all(format!("{sql}\n").as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }
}

/// The pid of the session whose `application_name` is `app`, once it is in `state`.
async fn pid_of(db: &dyn Database, app: &str, state: &str) -> i32 {
    eventually(&format!("{app} to be {state}"), Duration::from_secs(20), || async {
        let list = db.backends().await.ok()?;
        list.backends.iter().find(|b| b.application.as_deref() == Some(app) && b.state == state).map(|b| b.pid)
    })
    .await
}

fn of<'a>(report: &'a SectionReport, check: &str) -> Vec<&'a PerfFinding> {
    report.findings.iter().filter(|f| f.check == check).collect()
}

fn value(f: &PerfFinding, name: &str) -> f64 {
    f.values.iter().find(|v| v.name == name).unwrap_or_else(|| panic!("no {name} in {f:#?}")).value
}

const SCHEMA: &str = "
 CREATE TABLE big (id int PRIMARY KEY, val int NOT NULL, note text NOT NULL);
 INSERT INTO big SELECT g, g % 1000, md5(g::text) FROM generate_series(1, 200000) g;
 CREATE INDEX big_note_idx ON big (note);
 CREATE TABLE churn (id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = off);
 INSERT INTO churn SELECT g, repeat('x', 50) FROM generate_series(1, 4000) g;
 CREATE TABLE dup (a int, b int, c int);
 INSERT INTO dup SELECT g, g, 1 FROM generate_series(1, 100) g;
 CREATE INDEX dup_a ON dup (a);
 CREATE INDEX dup_a_b ON dup (a, b);
 CREATE INDEX dup_b1 ON dup (b);
 CREATE INDEX dup_b2 ON dup (b);
 CREATE UNIQUE INDEX dup_a_unique ON dup (a);
 CREATE SEQUENCE near_limit AS integer;
 SELECT setval('near_limit', 2000000000);
 CREATE TABLE ids (id serial PRIMARY KEY, at timestamptz DEFAULT now());
 ALTER SEQUENCE ids_id_seq RESTART WITH 1700000000;
 INSERT INTO ids DEFAULT VALUES;
 ANALYZE;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_pg_analysis_statements_indexes_tables_sequences_deltas_and_vacuum() {
    let rt = require_docker().await;
    let pg = postgres(&[]).await;
    psql(&rt, &pg, "app", SCHEMA).await;
    let db = database(&pg.url("postgres", "postgres", "app"));
    let probes = ProbesConfig::default();

    // pg_stat_statements is preloaded by the image but not created in this database yet.
    let before = pg::analyze("main", &db, &PerfConfig::default(), &probes, None).await;
    assert_eq!(before.error, None, "{before:#?}");
    let missing = of(&before, "extension-missing");
    assert_eq!(missing.len(), 1, "{before:#?}");
    assert_eq!(missing[0].verdict, Status::Warn);
    assert_eq!(missing[0].action.as_deref(), Some("in database app: CREATE EXTENSION pg_stat_statements;"));
    assert_eq!(before.queries, 5, "no statements query without the extension");

    psql(&rt, &pg, "app", "CREATE EXTENSION pg_stat_statements; SELECT pg_stat_statements_reset();").await;
    // A failed CREATE UNIQUE INDEX CONCURRENTLY leaves an invalid index behind.
    let (code, _, stderr) =
        psql_status(&rt, &pg, "app", "CREATE UNIQUE INDEX CONCURRENTLY dup_c_unique ON dup (c)").await;
    assert_ne!(code, 0, "duplicates in c must make the unique index fail");
    assert!(stderr.contains("could not create unique index"), "{stderr}");
    // Dead rows, and the workload: a sequential scan of 200,000 rows 12 times, a primary key
    // lookup 30 times, a sleep 10 times.
    psql(&rt, &pg, "app", "DELETE FROM churn WHERE id > 1000").await;
    let scans: String = (0..12).map(|i| format!("SELECT count(*) FROM big WHERE val = {i};")).collect();
    psql(&rt, &pg, "app", &scans).await;
    let lookups: String = (1..=30).map(|i| format!("SELECT note FROM big WHERE id = {i};")).collect();
    psql(&rt, &pg, "app", &lookups).await;
    psql(&rt, &pg, "app", &"SELECT pg_sleep(0.06);".repeat(10)).await;

    let mut cfg = PerfConfig { top: 50, ..PerfConfig::default() };
    cfg.postgres.slow_mean_warn_ms = 1.0;
    cfg.postgres.slow_min_calls = 2;
    let state_dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(state_dir.path());
    // A few runs, so the analysis' own catalog queries have calls enough to be judged, were
    // they not left out.
    for _ in 0..2 {
        pg::analyze("main", &db, &cfg, &probes, None).await;
    }
    let first = pg::analyze("main", &db, &cfg, &probes, Some(&state)).await;
    assert_eq!(first.error, None, "{first:#?}");
    assert_eq!(first.target, "postgres:main");
    assert_eq!(first.queries, 6, "a fixed number of catalog queries: {first:#?}");
    assert!(matches!(first.window, Some(Window::ServerStart { at: Some(_) })), "{:?}", first.window);
    assert!(of(&first, "extension-missing").is_empty());

    // Statements: the scan is slow (warn over 1 ms; critical only if it took over 50 ms), the
    // sleep critical, the lookup fine, and none of the analysis' own queries listed.
    let slow = of(&first, "slow-query");
    let find = |needle: &str| {
        *slow
            .iter()
            .find(|f| f.evidence[0].contains(needle))
            .unwrap_or_else(|| panic!("no slow-query with {needle}: {slow:#?}"))
    };
    let scan = find("FROM big WHERE val = $1");
    let mean = value(scan, "mean_time");
    assert_eq!(scan.verdict, if mean > 50.0 { Status::Critical } else { Status::Warn }, "{scan:#?}");
    assert_eq!(value(scan, "calls"), 12.0);
    assert!(scan.evidence[0].starts_with("query: SELECT count(*) FROM big WHERE val = $1"), "{scan:#?}");
    let action = scan.action.as_deref().unwrap();
    assert!(action.starts_with("EXPLAIN (ANALYZE, BUFFERS)") && action.contains("public.big"), "{action}");
    let sleep = find("pg_sleep");
    assert_eq!(sleep.verdict, Status::Critical, "{sleep:#?}");
    assert!(value(sleep, "mean_time") >= 60.0);
    let lookup = find("FROM big WHERE id = $1");
    assert_eq!((lookup.verdict, value(lookup, "calls")), (Status::Ok, 30.0), "{lookup:#?}");
    assert!(lookup.action.is_none());
    assert!(
        slow.iter().all(|f| !f.evidence[0].contains("pg_stat") && !f.evidence[0].contains("pg_class")),
        "the analysis' own queries are left out: {slow:#?}"
    );
    // The first finding is the slowest.
    assert_eq!(slow[0].verdict, Status::Critical);

    // Indexes.
    let candidates = of(&first, "index-candidate");
    assert_eq!(candidates.iter().map(|f| f.subject.as_str()).collect::<Vec<_>>(), ["public.big"], "{first:#?}");
    // The index build scanned it too.
    assert!(value(candidates[0], "seq_scans") >= 12.0, "{candidates:#?}");
    let unused = of(&first, "unused-index");
    assert_eq!(unused.iter().map(|f| f.subject.as_str()).collect::<Vec<_>>(), ["public.big_note_idx"], "{unused:#?}");
    assert_eq!(unused[0].action.as_deref(), Some("DROP INDEX CONCURRENTLY public.big_note_idx;"));
    assert!(unused[0].evidence[0].starts_with("CREATE INDEX big_note_idx ON public.big USING btree (note)"));
    let dups: BTreeMap<&str, &PerfFinding> =
        of(&first, "duplicate-index").into_iter().map(|f| (f.subject.as_str(), f)).collect();
    assert_eq!(dups.keys().copied().collect::<Vec<_>>(), ["public.dup_a", "public.dup_b2"], "{dups:#?}");
    assert!(dups["public.dup_a"].message.starts_with("duplicates public.dup_a_b (its columns are a prefix"));
    assert!(dups["public.dup_b2"].message.starts_with("duplicates public.dup_b1 (the same key columns)"));
    assert_eq!(dups["public.dup_b2"].action.as_deref(), Some("DROP INDEX CONCURRENTLY public.dup_b2;"));
    let invalid = of(&first, "invalid-index");
    assert_eq!(invalid.len(), 1, "{invalid:#?}");
    assert_eq!((invalid[0].subject.as_str(), invalid[0].verdict), ("public.dup_c_unique", Status::Warn));
    assert!(invalid[0].action.as_deref().unwrap().starts_with("REINDEX INDEX CONCURRENTLY public.dup_c_unique;"));

    // Tables and sequences.
    let dead = of(&first, "dead-tuples");
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!((dead[0].subject.as_str(), dead[0].verdict), ("public.churn", Status::Critical));
    assert_eq!(value(dead[0], "dead_tuples"), 3_000.0);
    assert!(dead[0].evidence[0].starts_with("last vacuum never, last autovacuum never"), "{dead:#?}");
    assert_eq!(dead[0].action.as_deref(), Some("VACUUM (ANALYZE) public.churn;"));
    let wrap = of(&first, "wraparound");
    assert_eq!((wrap.len(), wrap[0].verdict, wrap[0].subject.as_str()), (1, Status::Ok, "app"));
    let seqs: BTreeMap<&str, &PerfFinding> =
        of(&first, "sequence").into_iter().map(|f| (f.subject.as_str(), f)).collect();
    assert_eq!(seqs.keys().copied().collect::<Vec<_>>(), ["public.ids_id_seq", "public.near_limit"], "{seqs:#?}");
    assert_eq!(seqs["public.near_limit"].verdict, Status::Critical);
    assert!((value(seqs["public.near_limit"], "sequence_used") - 93.13).abs() < 0.01);
    assert_eq!(seqs["public.near_limit"].action.as_deref(), Some("ALTER SEQUENCE public.near_limit AS bigint;"));
    let ids = seqs["public.ids_id_seq"];
    assert_eq!(ids.verdict, Status::Warn, "{ids:#?}");
    assert!(ids.message.contains("(integer column public.ids.id)"), "{ids:#?}");
    assert!(ids.action.as_deref().unwrap().starts_with("ALTER TABLE public.ids ALTER COLUMN id TYPE bigint;"));
    assert_eq!(of(&first, "cache-hit").len(), 1);
    assert_eq!(of(&first, "connections")[0].verdict, Status::Ok);

    // Deltas: the next run covers only what happened since this one.
    let more: String = (0..15).map(|i| format!("SELECT count(*) FROM big WHERE val = {i};")).collect();
    psql(&rt, &pg, "app", &more).await;
    let second = pg::analyze("main", &db, &cfg, &probes, Some(&state)).await;
    let Some(Window::PreviousRun { at }) = second.window else { panic!("{:?}", second.window) };
    assert!(at <= chrono::Utc::now());
    let scan = of(&second, "slow-query").into_iter().find(|f| f.evidence[0].contains("val = $1")).cloned().unwrap();
    assert_eq!(value(&scan, "calls"), 15.0, "only the calls since the previous run: {scan:#?}");
    assert!(
        of(&second, "slow-query").iter().all(|f| !f.evidence[0].contains("pg_sleep")),
        "the sleep did not run in the window"
    );
    assert_eq!(value(of(&second, "index-candidate")[0], "seq_scans"), 15.0);

    // Vacuum of one table: planned with its facts, applied outside a transaction, audited.
    let mut ctx = Context::empty(OpsConfig::default());
    ctx.databases.insert("main".into(), Arc::new(database(&pg.url("postgres", "postgres", "app"))));
    let action = Action::Vacuum { database: None, analyze: true, tables: vec!["churn".into()] };
    let plan = pg_actions::plan(&ctx, &action).await.unwrap();
    assert_eq!(plan.summary, "VACUUM (ANALYZE) 1 table of main");
    assert_eq!(plan.targets.len(), 1);
    assert_eq!(plan.targets[0].id, "table:public.churn");
    assert_eq!(plan.targets[0].details["dead_tuples"], "3000");
    for bad in ["nope", "churn; DROP TABLE big", "public.churn\"; DROP TABLE big; --"] {
        let e = pg_actions::plan(&ctx, &Action::Vacuum { database: None, analyze: false, tables: vec![bad.into()] })
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{bad}: {e}");
    }
    let audit = Audit::at(&state_dir.path().join("audit.jsonl"), "test").unwrap();
    let outcomes = pg_actions::apply(&ctx, &plan, &audit).await.unwrap();
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes[0].ok, "{outcomes:#?}");
    assert_eq!(outcomes[0].after["dead_tuples"], 0, "{outcomes:#?}");
    let entries = audit.log().read().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].action.as_str(), entries[0].target.as_str()), ("vacuum", "table:public.churn"));
    assert_eq!(entries[0].before["dead_tuples"], "3000");
    assert_eq!(psql(&rt, &pg, "app", "SELECT count(*) FROM big").await.trim(), "200000");
    let after = pg::analyze("main", &db, &cfg, &probes, None).await;
    assert!(of(&after, "dead-tuples").is_empty(), "{after:#?}");
}

#[tokio::test]
async fn perf_pg_unreachable_database_is_a_failed_section() {
    let mut options = PostgresOptions::new(SecretUrl::new("postgres://postgres:secret@127.0.0.1:1/app"));
    options.timeout = Duration::from_secs(2);
    let db = PostgresDatabase::new(options).unwrap();
    let report = pg::analyze("main", &db, &PerfConfig::default(), &ProbesConfig::default(), None).await;
    assert_eq!(report.status, Status::Unknown);
    assert!(report.error.is_some(), "{report:#?}");
    assert!(report.findings.is_empty());
    assert!(!serde_json::to_string(&report).unwrap().contains("secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_pg_sessions_blocked_idle_and_guarded_actions() {
    let rt = require_docker().await;
    let pg = postgres(&[]).await;
    psql(&rt, &pg, "app", "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);").await;
    let url = pg.url("postgres", "postgres", "app");
    let db = database(&url);
    let mut ctx = Context::empty(OpsConfig::default());
    ctx.databases.insert("main".into(), Arc::new(database(&url)));

    let _idler = Client::open(&pg, "app", "idler").await;
    let mut idler2 = Client::open(&pg, "app", "idler2").await;
    let _dump = Client::open(&pg, "app", "pg_dump").await;
    let _elsewhere = Client::open(&pg, "postgres", "elsewhere").await;
    let mut holder = Client::open(&pg, "app", "holder").await;
    holder.send("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE;").await;
    let holder_pid = pid_of(&db, "holder", "idle in transaction").await;
    let mut waiter = Client::open(&pg, "app", "waiter").await;
    waiter.send("SELECT count(*) FROM t;").await;
    let mut sleeper = Client::open(&pg, "app", "sleeper").await;
    sleeper.send("SELECT pg_sleep(120);").await;
    let idler = pid_of(&db, "idler", "idle").await;
    let idler2_pid = pid_of(&db, "idler2", "idle").await;
    let dump = pid_of(&db, "pg_dump", "idle").await;
    let waiter_pid = pid_of(&db, "waiter", "active").await;
    let sleeper_pid = pid_of(&db, "sleeper", "active").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // The analysis reads no table lock, so the exclusive lock on t does not hold it up.
    let mut cfg = PerfConfig::default();
    cfg.postgres.idle_connection_secs = 1;
    let mut probes = ProbesConfig::default();
    probes.postgres.long_running_secs = 1;
    probes.postgres.idle_in_transaction_secs = 1;
    let report = pg::analyze("main", &db, &cfg, &probes, None).await;
    assert_eq!(report.error, None, "{report:#?}");
    let blocked = of(&report, "blocked");
    assert_eq!(blocked.len(), 1, "{report:#?}");
    assert_eq!(blocked[0].subject, format!("pid {waiter_pid}"));
    assert_eq!(blocked[0].message.split(" for a lock held by ").nth(1), Some(format!("pid {holder_pid}").as_str()));
    assert!(blocked[0].evidence[0].contains("SELECT count(*) FROM t"), "{blocked:#?}");
    let blocker = &blocked[0].evidence[1];
    assert!(blocker.starts_with(&format!("blocker: pid {holder_pid} postgres@app (holder from ")), "{blocker}");
    assert!(blocker.contains(") idle in transaction for "), "{blocker}");
    assert!(blocked[0].evidence[1].ends_with(": LOCK TABLE t IN ACCESS EXCLUSIVE MODE;"), "{blocked:#?}");
    assert_eq!(
        blocked[0].action.as_deref(),
        Some(
            format!("opsctl pg terminate {holder_pid} (idle in a transaction: its client has not committed)").as_str()
        )
    );
    let in_tx = of(&report, "idle-in-transaction");
    assert_eq!(in_tx.len(), 1, "{in_tx:#?}");
    assert_eq!((in_tx[0].subject.clone(), in_tx[0].verdict), (format!("pid {holder_pid}"), Status::Critical));
    let long = of(&report, "long-running");
    assert_eq!(long.iter().map(|f| f.subject.clone()).collect::<Vec<_>>(), [format!("pid {sleeper_pid}")]);
    assert!(long[0].action.as_deref().unwrap().starts_with("opsctl pg cancel-slow --longer-than 1s"));
    let idle = of(&report, "idle-connection");
    assert_eq!(idle.len(), 1, "{report:#?}");
    assert_eq!(value(idle[0], "idle_connections"), 3.0, "idler, idler2, pg_dump; not elsewhere, not ours: {idle:#?}");
    for pid in [idler, idler2_pid, dump] {
        assert!(idle[0].evidence.iter().any(|e| e.starts_with(&format!("pid {pid} "))), "{pid}: {idle:#?}");
    }
    assert_eq!(idle[0].action.as_deref(), Some("opsctl pg kill-idle --older-than 1s"));

    // terminate: refused for background processes and unknown pids.
    let list = db.backends().await.unwrap();
    let launcher = list.backends.iter().find(|b| b.backend_type == "autovacuum launcher").unwrap().pid;
    let refused = pg_actions::plan(&ctx, &Action::Terminate { database: None, pid: launcher }).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidInput, "{refused}");
    let unknown = pg_actions::plan(&ctx, &Action::Terminate { database: None, pid: 999_999 }).await.unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::NotFound);

    // kill-idle: exactly the two idle sessions of this database; pg_dump, the other database,
    // the transaction and this tool's connections are left out, and said so.
    let audit_dir = tempfile::tempdir().unwrap();
    let audit = Audit::at(&audit_dir.path().join("audit.jsonl"), "test").unwrap();
    let kill = Action::KillIdle { database: None, older_than_secs: 2 };
    let plan = pg_actions::plan(&ctx, &kill).await.unwrap();
    let ids: Vec<&str> = plan.targets.iter().map(|t| t.id.as_str()).collect();
    let mut expected = [format!("backend:{idler}"), format!("backend:{idler2_pid}")];
    expected.sort_by_key(|id| if id.ends_with(&idler.to_string()) { 0 } else { 1 });
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| if id.ends_with(&idler.to_string()) { 0 } else { 1 });
    assert_eq!(sorted, expected, "{plan:#?}");
    assert_eq!(plan.summary, "terminate 2 idle connections idle for at least 2 s on main");
    let target = plan.targets.iter().find(|t| t.id == format!("backend:{idler}")).unwrap();
    assert_eq!(target.details["application"], "idler");
    assert_eq!(target.details["user"], "postgres");
    assert_eq!(target.details["state"], "idle");
    assert_eq!(target.details["query"], "SELECT 1;");
    assert!(target.details.contains_key("backend_start") && target.details.contains_key("age"));
    let notes = plan.notes.join("\n");
    assert!(notes.contains(&format!("pid {dump} (pg_dump)")), "{notes}");
    assert!(notes.contains("1 sessions of other databases"), "{notes}");
    assert!(notes.contains("1 sessions idle in a transaction"), "{notes}");

    // idler2 runs a query after the plan: no longer idle long enough, so it is skipped.
    idler2.send("SELECT 2;").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outcomes = pg_actions::apply(&ctx, &plan, &audit).await.unwrap();
    let by_id: BTreeMap<&str, &ops_act::Outcome> = outcomes.iter().map(|o| (o.target.as_str(), o)).collect();
    let killed = by_id[format!("backend:{idler}").as_str()];
    assert!(killed.ok, "{outcomes:#?}");
    assert_eq!(killed.after["present"], false);
    let skipped = by_id[format!("backend:{idler2_pid}").as_str()];
    assert!(!skipped.ok && skipped.result.starts_with("skipped: idle for only"), "{outcomes:#?}");
    let left: Vec<String> = psql(
        &rt,
        &pg,
        "postgres",
        "SELECT application_name FROM pg_stat_activity WHERE backend_type = 'client backend' ORDER BY 1",
    )
    .await
    .lines()
    .map(str::to_owned)
    .collect();
    assert!(!left.contains(&"idler".to_owned()), "{left:?}");
    for still in ["idler2", "pg_dump", "elsewhere", "holder", "waiter", "sleeper"] {
        assert!(left.contains(&still.to_owned()), "{still} must survive: {left:?}");
    }
    let entries = audit.log().read().unwrap();
    assert_eq!(entries.len(), 2, "one line per target: {entries:#?}");
    assert!(entries.iter().all(|e| e.action == "kill-idle" && e.actor == "test"));
    let line = entries.iter().find(|e| e.target == format!("backend:{idler}")).unwrap();
    assert_eq!((line.result.as_str(), line.before["application"].as_str()), ("ok", Some("idler")));

    // terminate the holder: the waiter gets its lock and finishes.
    let plan = pg_actions::plan(&ctx, &Action::Terminate { database: None, pid: holder_pid }).await.unwrap();
    assert_eq!(plan.targets.len(), 1);
    assert!(
        plan.summary
            .starts_with(&format!("terminate backend {holder_pid} (postgres@app (holder), idle in transaction for")),
        "{}",
        plan.summary
    );
    assert!(plan.notes.iter().any(|n| n.contains("rolled back")), "{plan:#?}");
    let outcomes = pg_actions::apply(&ctx, &plan, &audit).await.unwrap();
    assert!(outcomes[0].ok, "{outcomes:#?}");
    pid_of(&db, "waiter", "idle").await;

    // cancel-slow: only the sleep is still running; its session stays.
    let plan = pg_actions::plan(&ctx, &Action::CancelSlow { database: None, longer_than_secs: 1 }).await.unwrap();
    assert_eq!(plan.targets.iter().map(|t| t.id.clone()).collect::<Vec<_>>(), [format!("backend:{sleeper_pid}")]);
    assert_eq!(plan.targets[0].details["query"], "SELECT pg_sleep(120);");
    let outcomes = pg_actions::apply(&ctx, &plan, &audit).await.unwrap();
    assert!(outcomes[0].ok, "{outcomes:#?}");
    assert_eq!(outcomes[0].after["present"], true, "{outcomes:#?}");
    assert_eq!(pid_of(&db, "sleeper", "idle").await, sleeper_pid, "cancelled, not terminated");
    // Applying the same plan again finds the query over.
    let again = pg_actions::apply(&ctx, &plan, &audit).await.unwrap();
    assert!(!again[0].ok && again[0].result.starts_with("skipped: no longer active"), "{again:#?}");
    let actions: Vec<String> = audit.log().read().unwrap().iter().map(|e| e.action.clone()).collect();
    assert_eq!(actions, ["kill-idle", "kill-idle", "terminate", "cancel-slow", "cancel-slow"]);
    drop((idler2, holder, waiter, sleeper));
}
