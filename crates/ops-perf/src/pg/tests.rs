//! The pure classification: verdicts against the thresholds, windows, duplicates, sequences,
//! sessions; and `analyze` itself with a mocked database.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ops_core::config::{PerfConfig, ProbesConfig};
use ops_core::ports::database::MockDatabase;
use ops_core::ports::{
    Backend, BackendList, DatabaseStats, IndexStats, PerfSnapshot, SequenceStats, StatementStats, TableStats,
};
use ops_core::{Error, Status};

use super::*;
use crate::Window;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

fn stats() -> DatabaseStats {
    DatabaseStats {
        version_num: 150_008,
        postmaster_start: at(0),
        stats_reset: None,
        max_connections: 10,
        reserved_connections: 0,
        blks_hit: 1_000_000,
        blks_read: 100,
        xact_commit: 10,
        xact_rollback: 0,
        deadlocks: 0,
        frozen_xid_age: 1_000,
        oldest_database: Some(("template0".into(), 2_000)),
        autovacuum_freeze_max_age: 200_000_000,
        statements_preloaded: true,
        statements_installed: true,
    }
}

fn snapshot() -> PerfSnapshot {
    PerfSnapshot {
        database: "app".into(),
        taken_at: at(3600),
        queries: 6,
        stats: stats(),
        statements: Vec::new(),
        tables: Vec::new(),
        indexes: Vec::new(),
        sequences: Vec::new(),
        backends: BackendList { own_pid: 1, backends: Vec::new() },
    }
}

fn statement(queryid: i64, calls: u64, total_ms: f64, query: &str) -> StatementStats {
    StatementStats {
        queryid,
        calls,
        total_ms,
        rows: calls,
        shared_blks_hit: 0,
        shared_blks_read: 0,
        query: query.into(),
    }
}

fn table(name: &str, live: u64, dead: u64, seq: u64, idx: Option<u64>) -> TableStats {
    TableStats {
        schema: "public".into(),
        name: name.into(),
        sql_name: format!("public.{name}"),
        size_bytes: 8192 * 100,
        estimated_rows: Some(live),
        live_tuples: live,
        dead_tuples: dead,
        modified_since_analyze: 0,
        seq_scan: seq,
        seq_tup_read: seq * live,
        idx_scan: idx,
        idx_tup_fetch: 0,
        n_tup_ins: live,
        n_tup_upd: 0,
        n_tup_del: dead,
        last_vacuum: None,
        last_autovacuum: Some(at(60)),
        last_analyze: None,
        last_autoanalyze: Some(at(60)),
        frozen_xid_age: 500,
    }
}

fn index(name: &str, columns: &[i16]) -> IndexStats {
    IndexStats {
        schema: "public".into(),
        table: "t".into(),
        name: name.into(),
        sql_name: format!("public.{name}"),
        method: "btree".into(),
        size_bytes: 2 << 20,
        scans: 5,
        unique: false,
        primary: false,
        constraint: false,
        valid: true,
        key_columns: columns.to_vec(),
        key_details: columns.iter().map(|_| "1978/0/0".to_owned()).collect(),
        include_columns: Vec::new(),
        expressions: None,
        predicate: None,
        definition: format!("CREATE INDEX {name} ON public.t USING btree (…)"),
    }
}

fn backend(pid: i32, app: &str, state: &str, age_secs: u64) -> Backend {
    let age = Some(Duration::from_secs(age_secs));
    Backend {
        client_addr: Some("10.0.0.5".into()),
        backend_start: Some(at(0)),
        query_start: Some(at(10)),
        transaction_age: state.starts_with("idle in transaction").then_some(age).flatten(),
        ..ops_core::ports::database::fixtures::client_backend(pid, app, state, age_secs)
    }
}

fn windowed(s: &PerfSnapshot) -> delta::Windowed<'_> {
    delta::window(s, None)
}

fn checks<'a>(found: &'a [PerfFinding], check: &str) -> Vec<&'a PerfFinding> {
    found.iter().filter(|f| f.check == check).collect()
}

#[test]
fn slow_queries_are_judged_on_the_mean_with_enough_calls() {
    let mut s = snapshot();
    s.statements = vec![
        statement(1, 100, 100.0 * 60.0, "SELECT * FROM orders WHERE customer = $1"),
        statement(2, 100, 100.0 * 30.0, "SELECT * FROM items WHERE sku = $1"),
        statement(3, 100, 100.0 * 2.0, "SELECT 1"),
        statement(4, 3, 3.0 * 900.0, "VACUUM big"),
    ];
    s.tables = vec![table("orders", 50_000, 0, 40, Some(1))];
    let t = PerfConfig::default().postgres;
    let w = windowed(&s);
    let found = queries::slow_queries(&s, &w, &t, 10);
    let verdicts: Vec<(&str, Status)> = found.iter().map(|f| (f.subject.as_str(), f.verdict)).collect();
    assert_eq!(
        verdicts,
        [("queryid 1", Status::Critical), ("queryid 2", Status::Warn), ("queryid 3", Status::Ok)],
        "slowest first; 3 calls are too few to judge"
    );
    assert_eq!(found[0].message, "mean 60.0 ms over 100 calls (critical over 50 ms)");
    assert_eq!(found[1].message, "mean 30.0 ms over 100 calls (warning over 20 ms)");
    assert!(found[0].action.as_deref().unwrap().contains("public.orders is mostly read by sequential scans"));
    assert!(!found[1].action.as_deref().unwrap().contains("public.orders"), "items is not a candidate");
    assert!(found[2].action.is_none());
    assert_eq!(found[0].evidence[0], "query: SELECT * FROM orders WHERE customer = $1");
    assert_eq!(queries::slow_queries(&s, &w, &t, 1).len(), 1, "top N");

    s.stats.statements_installed = false;
    assert!(queries::slow_queries(&s, &windowed(&s), &t, 10).is_empty());
}

#[test]
fn the_missing_extension_says_exactly_what_to_run() {
    let mut s = snapshot();
    assert!(queries::extension_missing(&s).is_none());
    s.stats.statements_installed = false;
    let f = queries::extension_missing(&s).unwrap();
    assert_eq!(
        (f.verdict, f.action.as_deref()),
        (Status::Warn, Some("in database app: CREATE EXTENSION pg_stat_statements;"))
    );
    s.stats.statements_preloaded = false;
    let f = queries::extension_missing(&s).unwrap();
    let action = f.action.unwrap();
    assert!(action.contains("shared_preload_libraries = 'pg_stat_statements'"), "{action}");
    assert!(action.contains("restart PostgreSQL") && action.ends_with("CREATE EXTENSION pg_stat_statements;"));
    s.stats.statements_installed = true;
    assert!(queries::extension_missing(&s).unwrap().action.unwrap().ends_with("and restart PostgreSQL"));
}

#[test]
fn index_candidates_are_large_tables_read_by_sequential_scans() {
    let mut s = snapshot();
    s.tables = vec![
        table("big_seq", 100_000, 0, 50, Some(1)),
        table("big_indexed", 100_000, 0, 1, Some(99)),
        table("small", 500, 0, 1_000, Some(0)),
        table("no_index", 20_000, 0, 3, None),
        table("unscanned", 20_000, 0, 0, Some(0)),
    ];
    let t = PerfConfig::default().postgres;
    let found = queries::index_candidates(&s, &windowed(&s), &t);
    let subjects: Vec<&str> = found.iter().map(|f| f.subject.as_str()).collect();
    assert_eq!(subjects, ["public.big_seq", "public.no_index"], "most rows read first");
    assert_eq!(found[0].message, "2.0 % of 51 scans used an index (under 95 %) on 100,000 rows");
    assert!(found[1].evidence.contains(&"the table has no index at all".to_owned()));
    assert!(found[0].action.as_deref().unwrap().contains("CREATE INDEX CONCURRENTLY ON public.big_seq (…);"));
}

#[test]
fn unused_indexes_leave_constraints_alone() {
    let mut s = snapshot();
    let mut unused = index("t_note", &[3]);
    unused.scans = 0;
    let mut small = index("t_small", &[4]);
    small.scans = 0;
    small.size_bytes = 8192;
    let mut unique = index("t_email", &[5]);
    unique.scans = 0;
    unique.unique = true;
    let mut fk_target = index("t_code", &[6]);
    fk_target.scans = 0;
    fk_target.constraint = true;
    s.indexes = vec![unused, small, unique, fk_target, index("t_used", &[7])];
    let found = queries::unused_indexes(&s, &PerfConfig::default().postgres);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].subject, "public.t_note");
    assert_eq!(found[0].action.as_deref(), Some("DROP INDEX CONCURRENTLY public.t_note;"));
    assert!(found[0].message.starts_with("never scanned since 2023-11-14 22:13 UTC, 2.0 MiB"), "{}", found[0].message);
}

#[test]
fn duplicates_are_prefixes_with_the_same_method_predicate_and_opclasses() {
    let a = index("t_a", &[1]);
    let ab = index("t_a_b", &[1, 2]);
    assert_eq!(queries::redundant(&a, &ab).map(|i| i.name.as_str()), Some("t_a"));
    assert!(queries::redundant(&ab, &a).is_none());
    // A unique index enforces something the longer one does not.
    let a_unique = IndexStats { unique: true, ..index("t_a_u", &[1]) };
    assert!(queries::redundant(&a_unique, &ab).is_none());
    // Same columns: the one enforcing nothing goes, whichever way round.
    assert_eq!(queries::redundant(&a, &a_unique).map(|i| i.name.as_str()), Some("t_a"));
    assert_eq!(queries::redundant(&a_unique, &a).map(|i| i.name.as_str()), Some("t_a"));
    // Two plain twins: the same one is named from both sides.
    let twin = index("t_a2", &[1]);
    assert_eq!(queries::redundant(&a, &twin).map(|i| i.name.as_str()), Some("t_a2"));
    assert_eq!(queries::redundant(&twin, &a).map(|i| i.name.as_str()), Some("t_a2"));
    // Two constraints are both needed.
    let pk = IndexStats { unique: true, primary: true, constraint: true, ..index("t_pkey", &[1]) };
    let uq = IndexStats { unique: true, constraint: true, ..index("t_uq", &[1]) };
    assert!(queries::redundant(&pk, &uq).is_none() && queries::redundant(&uq, &pk).is_none());
    // Different method, predicate, opclass, order, table: not duplicates.
    let hash = IndexStats { method: "hash".into(), ..index("t_a_hash", &[1]) };
    let partial = IndexStats { predicate: Some("{OPEXPR …}".into()), ..index("t_a_partial", &[1]) };
    let desc = IndexStats { key_details: vec!["1978/0/3".into()], ..index("t_a_desc", &[1]) };
    let other_table = IndexStats { table: "u".into(), ..index("u_a", &[1]) };
    let b_first = index("t_b_a", &[2, 1]);
    for other in [&hash, &partial, &desc, &other_table, &b_first] {
        assert!(queries::redundant(&a, other).is_none() && queries::redundant(other, &a).is_none(), "{}", other.name);
    }
    // INCLUDE columns cover a twin without them.
    let covering = IndexStats { include_columns: vec![5], ..index("t_a_incl", &[1]) };
    assert_eq!(queries::redundant(&a, &covering).map(|i| i.name.as_str()), Some("t_a"));
    assert_eq!(queries::redundant(&covering, &a).map(|i| i.name.as_str()), Some("t_a"));

    let mut s = snapshot();
    s.indexes = vec![a.clone(), ab, twin];
    let found = queries::duplicate_indexes(&s);
    let subjects: Vec<&str> = found.iter().map(|f| f.subject.as_str()).collect();
    assert_eq!(subjects, ["public.t_a", "public.t_a2"], "{found:#?}");
    assert_eq!(
        found[0].message,
        "duplicates public.t_a_b (its columns are a prefix of the other's); 2.0 MiB for nothing"
    );
}

#[test]
fn invalid_indexes_being_built_are_only_noted() {
    let mut s = snapshot();
    s.indexes =
        vec![IndexStats { valid: false, ..index("t_new", &[1]) }, IndexStats { valid: false, ..index("t_old", &[2]) }];
    let mut builder = backend(7, "psql", "active", 30);
    builder.query = "CREATE INDEX CONCURRENTLY t_new ON t (a)".into();
    s.backends.backends = vec![builder];
    let found = queries::invalid_indexes(&s);
    assert_eq!((found[0].verdict, found[0].message.as_str()), (Status::Ok, "invalid while pid 7 builds it"));
    assert!(found[0].action.is_none());
    assert_eq!(found[1].verdict, Status::Warn);
    assert!(found[1].action.as_deref().unwrap().starts_with("REINDEX INDEX CONCURRENTLY public.t_old;"));
}

#[test]
fn dead_tuples_and_vacuum_staleness() {
    let mut s = snapshot();
    let mut stale = table("stale", 100_000, 0, 0, Some(0));
    stale.modified_since_analyze = 50_000;
    let mut never = table("never", 20_000, 0, 0, Some(0));
    never.last_autoanalyze = None;
    s.tables = vec![
        table("bloated", 6_000, 4_000, 0, Some(0)),
        table("some", 8_500, 1_500, 0, Some(0)),
        table("few", 10, 900, 0, Some(0)),
        stale,
        never,
    ];
    let mut holder = backend(9, "worker", "idle in transaction", 900);
    holder.transaction_age = Some(Duration::from_secs(900));
    s.backends.backends = vec![holder];
    let t = PerfConfig::default().postgres;
    let found = tables::dead_tuples(&s, &t, &ProbesConfig::default().postgres);
    let verdicts: Vec<(&str, Status)> = found.iter().map(|f| (f.subject.as_str(), f.verdict)).collect();
    assert_eq!(
        verdicts,
        [("public.bloated", Status::Critical), ("public.some", Status::Warn)],
        "under 1,000 dead: not judged"
    );
    assert_eq!(found[0].message, "40.0 % dead rows (4,000 dead, 6,000 live; over 30 %)");
    assert_eq!(found[0].evidence[0], "last vacuum never, last autovacuum 2023-11-14 22:14 UTC (59 min ago)");
    assert!(
        found[0].evidence[2].starts_with("an open transaction keeps VACUUM from removing rows: pid 9"),
        "{found:#?}"
    );
    assert_eq!(found[0].action.as_deref(), Some("VACUUM (ANALYZE) public.bloated;"));

    let info = tables::vacuum_staleness(&s, &t);
    let subjects: Vec<(&str, Status)> = info.iter().map(|f| (f.subject.as_str(), f.verdict)).collect();
    assert_eq!(subjects, [("public.stale", Status::Ok), ("public.never", Status::Ok)]);
    assert!(info[1].message.contains("never analyzed"));
    assert_eq!(info[0].action.as_deref(), Some("ANALYZE public.stale;"));
}

#[test]
fn wraparound_against_the_thresholds() {
    let mut s = snapshot();
    s.tables = vec![TableStats { frozen_xid_age: 600_000_000, ..table("old", 10, 0, 0, None) }];
    let t = PerfConfig::default().postgres;
    assert_eq!(tables::wraparound(&s, &t).verdict, Status::Ok);
    s.stats.frozen_xid_age = 600_000_000;
    let f = tables::wraparound(&s, &t);
    assert_eq!(f.verdict, Status::Warn);
    assert_eq!(
        f.evidence[0],
        "public.old: age 600,000,000 (last vacuum never, last autovacuum 2023-11-14 22:14 UTC (59 min ago))"
    );
    assert!(f.action.as_deref().unwrap().starts_with("VACUUM (FREEZE, VERBOSE) public.old;"));
    s.stats.frozen_xid_age = 1_200_000_000;
    assert_eq!(tables::wraparound(&s, &t).verdict, Status::Critical);
}

fn sequence(data_type: &str, last: Option<i64>, owner: Option<&str>) -> SequenceStats {
    let max = match data_type {
        "smallint" => i64::from(i16::MAX),
        "integer" => i64::from(i32::MAX),
        _ => i64::MAX,
    };
    SequenceStats {
        schema: "public".into(),
        name: "s".into(),
        sql_name: "public.s".into(),
        data_type: data_type.into(),
        last_value: last,
        min_value: 1,
        max_value: max,
        increment: 1,
        cycle: false,
        owner_column: owner.map(|_| "public.t.id".to_owned()),
        owner_type: owner.map(str::to_owned),
    }
}

#[test]
fn sequences_run_into_their_own_or_their_columns_limit() {
    let (used, limit) = tables::sequence_usage(&sequence("integer", Some(1_610_612_736), None)).unwrap();
    assert!((used - 75.0).abs() < 0.001 && limit == i64::from(i32::MAX), "{used} {limit}");
    // A bigint sequence feeding an integer column fails at the column's limit.
    let (used, limit) = tables::sequence_usage(&sequence("bigint", Some(2_000_000_000), Some("integer"))).unwrap();
    assert!(used > 93.0 && limit == i64::from(i32::MAX));
    assert!(tables::sequence_usage(&sequence("bigint", None, None)).is_none(), "never used");
    assert!(tables::sequence_usage(&SequenceStats { cycle: true, ..sequence("integer", Some(5), None) }).is_none());
    let descending =
        SequenceStats { increment: -1, min_value: -100, max_value: -1, ..sequence("integer", Some(-96), None) };
    let (used, _) = tables::sequence_usage(&descending).unwrap();
    assert!((used - 95.96).abs() < 0.01, "{used}");

    let mut s = snapshot();
    s.sequences = vec![
        sequence("bigint", Some(2_000_000_000), Some("integer")),
        sequence("integer", Some(1_700_000_000), None),
        sequence("integer", Some(5), Some("integer")),
    ];
    let found = tables::sequences(&s, &PerfConfig::default().postgres);
    assert_eq!(found.iter().map(|f| f.verdict).collect::<Vec<_>>(), [Status::Critical, Status::Warn]);
    assert!(found[0].evidence.iter().any(|e| e.contains("the column is narrower than the sequence")));
    assert_eq!(
        found[0].action.as_deref(),
        Some(
            "ALTER TABLE public.t ALTER COLUMN id TYPE bigint; (rewrites the table under an exclusive lock: plan a window)"
        )
    );
    assert_eq!(found[1].action.as_deref(), Some("ALTER SEQUENCE public.s AS bigint;"));
}

#[test]
fn cache_hit_needs_enough_reads() {
    let t = PerfConfig::default().postgres;
    let mut s = snapshot();
    s.stats.blks_hit = 500;
    s.stats.blks_read = 100;
    assert_eq!(tables::cache_hit(&windowed(&s), &t).verdict, Status::Ok, "600 blocks: too few");
    for (hit, read, verdict) in [(9_950, 50, Status::Ok), (9_800, 200, Status::Warn), (9_000, 1_000, Status::Critical)]
    {
        s.stats.blks_hit = hit;
        s.stats.blks_read = read;
        let f = tables::cache_hit(&windowed(&s), &t);
        assert_eq!(f.verdict, verdict, "{f:#?}");
    }
}

#[test]
fn windows_cover_the_previous_run_only_when_counters_continue() {
    let mut old = snapshot();
    old.statements = vec![statement(1, 100, 1_000.0, "SELECT a"), statement(2, 50, 50.0, "SELECT b")];
    old.tables = vec![table("t", 20_000, 0, 10, Some(10))];
    let previous = (at(100), delta::Counters::of(&old));

    let mut now = snapshot();
    now.stats.blks_hit += 1_000;
    now.statements = vec![
        statement(1, 110, 1_500.0, "SELECT a"),
        statement(2, 20, 40.0, "SELECT b"),
        statement(3, 5, 5.0, "SELECT c"),
    ];
    now.tables = vec![table("t", 20_000, 0, 15, Some(30))];
    let w = delta::window(&now, Some(&previous));
    assert_eq!(w.window, Window::PreviousRun { at: at(100) });
    let calls: Vec<(u64, f64)> = w.statements.iter().map(|q| (q.calls, q.total_ms)).collect();
    assert_eq!(calls, [(10, 500.0), (20, 40.0), (5, 5.0)], "evicted and new statements count from zero");
    assert_eq!(w.statements[0].mean_ms(), 50.0);
    let t = w.tables["public.t"];
    assert_eq!((t.seq_scan, t.idx_scan), (5, 20));
    assert_eq!((w.blks_hit, w.blks_read), (1_000, 0));

    // A restart, a statistics reset or counters gone down: since the server started.
    let mut restarted = now.clone();
    restarted.stats.postmaster_start = at(200);
    let w = delta::window(&restarted, Some(&previous));
    assert_eq!(w.window, Window::ServerStart { at: Some(at(200)) });
    assert_eq!(w.statements[0].calls, 110);
    let mut reset = now.clone();
    reset.stats.stats_reset = Some(at(300));
    assert_eq!(delta::window(&reset, Some(&previous)).window, Window::ServerStart { at: Some(at(300)) });
    let mut lower = now.clone();
    lower.stats.blks_read = 0;
    lower.stats.blks_hit = 5;
    assert!(matches!(delta::window(&lower, Some(&previous)).window, Window::ServerStart { .. }));
    assert_eq!(delta::window(&now, None).window, Window::ServerStart { at: Some(at(0)) });
}

#[test]
fn sessions_blocked_long_idle_and_connections() {
    let mut s = snapshot();
    let mut waiter = backend(20, "api", "active", 5);
    waiter.blocked_by = vec![21];
    waiter.wait_event = Some("Lock:transactionid".into());
    let mut middle = backend(21, "api", "active", 8);
    middle.blocked_by = vec![22];
    let head = backend(22, "psql", "idle in transaction", 700);
    let mut other_db = backend(30, "other", "idle", 10_000);
    other_db.database = Some("other".into());
    let mut autovacuum = backend(31, "", "active", 10_000);
    autovacuum.backend_type = "autovacuum worker".into();
    s.backends.backends = vec![
        backend(1, "ops", "active", 0),
        waiter,
        middle,
        head,
        backend(23, "api", "active", 400),
        backend(24, "api", "idle", 900),
        backend(25, "ops", "idle", 900),
        backend(26, "api", "idle", 10),
        other_db,
        autovacuum,
    ];
    let t = PerfConfig::default().postgres;
    let p = ProbesConfig::default().postgres;
    let found = sessions::findings(&s, &t, &p, 10);

    let blocked = checks(&found, "blocked");
    assert_eq!(blocked.iter().map(|f| f.subject.as_str()).collect::<Vec<_>>(), ["pid 20", "pid 21"]);
    assert_eq!(blocked[0].message, "waiting 5 s for a lock held by pid 21");
    assert!(
        blocked[0].evidence[0].ends_with("active for 5 s, waiting on Lock:transactionid: SELECT 20"),
        "{blocked:#?}"
    );
    assert!(
        blocked[0].evidence[2]
            .starts_with("head of the wait chain: pid 22 app@app (psql from 10.0.0.5) idle in transaction for 11 min")
    );
    assert_eq!(
        blocked[0].action.as_deref(),
        Some("opsctl pg terminate 22 (idle in a transaction: its client has not committed)")
    );
    let long = checks(&found, "long-running");
    assert_eq!(
        long.iter().map(|f| f.subject.as_str()).collect::<Vec<_>>(),
        ["pid 23"],
        "blocked ones are reported as blocked"
    );
    let in_tx = checks(&found, "idle-in-transaction");
    assert_eq!((in_tx[0].subject.as_str(), in_tx[0].verdict), ("pid 22", Status::Critical));
    let idle = checks(&found, "idle-connection");
    assert_eq!(idle.len(), 1);
    assert_eq!(
        idle[0].message,
        "1 connection idle for over 10 min (oldest 15 min): a pool larger than needed, or connections leaked"
    );
    assert!(idle[0].evidence[0].starts_with("pid 24 "), "not ours (ops), not another database: {idle:#?}");
    assert_eq!(idle[0].action.as_deref(), Some("opsctl pg kill-idle --older-than 600s"));
    // 9 client backends of 10: the runbooks' critical.
    let conns = checks(&found, "connections");
    assert_eq!((conns[0].verdict, conns[0].message.as_str()), (Status::Critical, "9 of 10 connections in use (90 %)"));
}

#[test]
fn numbers_and_sessions_read_well() {
    assert_eq!(
        (count(0), count(999), count(1_000), count(1_234_567)),
        ("0".into(), "999".into(), "1,000".into(), "1,234,567".into())
    );
    assert_eq!(when(None, at(0)), "never");
    assert_eq!(when(Some(at(0)), at(7200)), "2023-11-14 22:13 UTC (2 h ago)");
    let mut b = backend(4242, "psql", "idle in transaction", 720);
    b.query = "UPDATE trades SET x = 1".into();
    assert_eq!(
        describe(&b),
        "pid 4242 app@app (psql from 10.0.0.5) idle in transaction for 12 min, transaction open 12 min: UPDATE trades SET x = 1"
    );
}

#[tokio::test]
async fn analyze_reports_an_unreachable_database_and_keeps_state() {
    let mut db = MockDatabase::new();
    db.expect_perf_snapshot().returning(|| Err(Error::unavailable("connect: connection refused")));
    let report = analyze("main", &db, &PerfConfig::default(), &ProbesConfig::default(), None).await;
    assert_eq!((report.status, report.error.as_deref()), (Status::Unknown, Some("connect: connection refused")));

    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path());
    let mut db = MockDatabase::new();
    db.expect_perf_snapshot().returning(|| Ok(snapshot()));
    let first = analyze("main", &db, &PerfConfig::default(), &ProbesConfig::default(), Some(&state)).await;
    assert_eq!((first.status, first.queries, first.target.as_str()), (Status::Ok, 6, "postgres:main"));
    assert!(matches!(first.window, Some(Window::ServerStart { .. })));
    let second = analyze("main", &db, &PerfConfig::default(), &ProbesConfig::default(), Some(&state)).await;
    assert_eq!(second.window, Some(Window::PreviousRun { at: at(3600) }));
    assert!(dir.path().join("pg-main.json").exists());
}
