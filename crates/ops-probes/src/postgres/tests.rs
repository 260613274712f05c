//! Connection shares, session ages, and the readiness cases with a mocked database.

use std::collections::BTreeMap;

use ops_core::ports::BackendList;
use ops_core::ports::database::MockDatabase;

use super::*;

fn stats(total: u32, max: u32, reserved: u32) -> ConnectionStats {
    ConnectionStats {
        max_connections: max,
        reserved_connections: reserved,
        total,
        by_state: BTreeMap::from([("active".to_owned(), 1), ("idle".to_owned(), total.saturating_sub(1))]),
        round_trip_micros: 1500,
    }
}

#[test]
fn the_runbooks_eight_and_nine_of_ten() {
    let t = PostgresThresholds::default();
    assert!(connections(&stats(7, 10, 0), &t).1.is_none());
    let warn = connections(&stats(8, 10, 0), &t).1.unwrap();
    assert_eq!((warn.runbook, warn.status), (Runbook::ConnectionsExhausted, Status::Warn));
    assert_eq!(warn.message, "8 of 10 connections in use (80 %)");
    assert_eq!(warn.evidence, ["active: 1", "idle: 7"]);
    assert_eq!(connections(&stats(9, 10, 0), &t).1.unwrap().status, Status::Critical);
    let (obs, _) = connections(&stats(9, 10, 0), &t);
    assert_eq!(obs.iter().find(|o| o.name == "connections").map(|o| (o.value, o.unit)), Some((90.0, Unit::Percent)));
    let by_state: Vec<_> =
        obs.iter().filter(|o| o.name == "connections_by_state").map(|o| &o.labels["state"]).collect();
    assert_eq!(by_state, ["active", "idle"]);
}

#[test]
fn reserved_slots_count_as_exhausted() {
    let p = connections(&stats(7, 10, 3), &PostgresThresholds::default()).1.unwrap();
    assert_eq!(p.status, Status::Critical, "applications already get 'too many clients'");
    assert!(p.message.contains("the other 3 are reserved for superusers"), "{}", p.message);
}

fn session(pid: i32, state: &str, query_secs: u64, state_secs: u64) -> Backend {
    Backend {
        database: Some("shop".to_owned()),
        client_addr: Some("172.18.0.5".to_owned()),
        backend_start: None,
        query_start: None,
        backend_age: None,
        transaction_age: state.starts_with("idle in").then(|| Duration::from_secs(state_secs + 5)),
        state_age: Some(Duration::from_secs(state_secs)),
        query: "UPDATE trades SET status = '***' WHERE id = 7".to_owned(),
        ..ops_core::ports::database::fixtures::client_backend(pid, "", state, query_secs)
    }
}

#[test]
fn long_queries_and_idle_transactions_are_slow_queries() {
    let t = PostgresThresholds::default();
    let mut waiting = session(11, "active", 720, 720);
    waiting.wait_event = Some("Lock:transactionid".to_owned());
    let sessions = [
        session(10, "active", 5, 5),
        waiting,
        session(12, "idle in transaction", 900, 840),
        session(13, "idle", 4000, 4000),
        session(14, "idle in transaction (aborted)", 30, 30),
    ];
    let (obs, problems) = sessions_report(&sessions, &t);
    let value = |n: &str| obs.iter().find(|o| o.name == n).map(|o| o.value);
    assert_eq!(value("long_running_queries"), Some(1.0));
    assert_eq!(value("idle_in_transaction"), Some(1.0));
    assert_eq!(value("longest_query"), Some(720.0));
    assert_eq!(value("oldest_transaction"), Some(845.0));
    assert_eq!(problems.len(), 2);
    assert!(problems.iter().all(|p| (p.runbook, p.status) == (Runbook::SlowQueries, Status::Warn)));
    assert!(problems[0].message.starts_with("1 query running longer than 5 min (longest 12 min)"));
    assert_eq!(
        problems[0].evidence,
        [
            "pid 11 app@shop active for 12 min, waiting on Lock:transactionid: UPDATE trades SET status = '***' WHERE id = 7"
        ]
    );
    assert!(problems[1].message.starts_with("1 session idle in a transaction for over 1 min (longest 14 min)"));
    assert_eq!(
        problems[1].evidence,
        [
            "pid 12 app@shop idle in transaction for 14 min (transaction open 14 min): UPDATE trades SET status = '***' WHERE id = 7"
        ]
    );
    assert!(sessions_report(&sessions[..1], &t).1.is_empty());
}

fn url() -> SecretUrl {
    SecretUrl::new("postgres://app:hunter2@db:5432/shop")
}

#[tokio::test]
async fn down_rejecting_and_out_of_slots_are_told_apart() {
    let cases = [
        (Readiness::NoResponse { reason: "connection refused".into() }, Runbook::DatabaseDown, "no response"),
        (
            Readiness::Rejecting { reason: "the database system is starting up".into() },
            Runbook::DatabaseDown,
            "rejecting connections",
        ),
        (
            Readiness::Rejecting { reason: "sorry, too many clients already".into() },
            Runbook::ConnectionsExhausted,
            "rejecting new connections: sorry, too many clients already",
        ),
    ];
    for (readiness, runbook, message) in cases {
        let mut db = MockDatabase::new();
        db.expect_readiness().return_const(readiness);
        let r = probe("main", &url(), &db, &PostgresThresholds::default(), Duration::from_secs(1)).await;
        assert_eq!((r.name.as_str(), r.status), ("postgres:main", Status::Critical));
        assert_eq!(r.problems[0].runbook, runbook);
        assert!(r.message.starts_with(message), "{}", r.message);
        assert_eq!(r.target, "postgres://app:***@db:5432/shop");
    }
}

#[tokio::test]
async fn a_refused_login_is_down_and_a_healthy_server_says_so() {
    let mut db = MockDatabase::new();
    db.expect_readiness().return_const(Readiness::Accepting);
    db.expect_connections()
        .returning(|| Err(ops_core::Error::auth("connection limits: password authentication failed")));
    let r = probe("main", &url(), &db, &PostgresThresholds::default(), Duration::from_secs(1)).await;
    assert_eq!((r.status, r.problems[0].runbook), (Status::Critical, Runbook::DatabaseDown));
    assert!(r.message.contains("password authentication failed"), "{}", r.message);

    let mut db = MockDatabase::new();
    db.expect_readiness().return_const(Readiness::Accepting);
    db.expect_connections().returning(|| Ok(stats(3, 100, 3)));
    db.expect_backends().returning(|| {
        let mut own = session(9, "active", 0, 0);
        own.query_age = Some(Duration::from_secs(100_000));
        // The probe's own session never counts, however long it seems to run.
        Ok(BackendList { own_pid: 9, backends: vec![own, session(10, "active", 1, 1)] })
    });
    let r = probe("main", &url(), &db, &PostgresThresholds::default(), Duration::from_secs(1)).await;
    assert_eq!(r.observation("latency"), Some(1.5), "{r:?}");
    assert_eq!(r.status, Status::Ok);
    assert_eq!(r.message, "accepting connections; 3 of 100 connections in use");
    assert_eq!(r.observation("connections_used"), Some(3.0));
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("hunter2"), "{json}");
}
