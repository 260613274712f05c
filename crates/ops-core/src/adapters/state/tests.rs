//! The SQLite store's behaviour; the contract suite runs it and PostgreSQL in `tests/it`.

use super::*;

async fn store(dir: &tempfile::TempDir) -> SqlStateStore {
    let url = SecretUrl::new(format!("sqlite://{}", dir.path().join("sub/state.db").display()));
    SqlStateStore::open(&url).await.unwrap()
}

#[tokio::test]
async fn migrates_once_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    assert_eq!(s.migrate().await.unwrap(), schema_version());
    // Opening again applies nothing twice.
    let again = store(&dir).await;
    assert_eq!(again.applied().await.unwrap(), (1..=schema_version()).collect::<Vec<_>>());
    assert_eq!(schema_version(), 3);
    sqlx::query("INSERT INTO ops_schema (version, name, applied_at) VALUES (99, 'future', 'x')")
        .execute(&s.pool)
        .await
        .unwrap();
    assert_eq!(s.migrate().await.unwrap_err().kind(), crate::ErrorKind::Conflict);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("sub/state.db")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn budgets_refuse_the_use_past_the_limit_and_in_the_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    let t0 = Utc::now();
    let ask = |secs: i64, cooldown: u64| BudgetRequest {
        key: "restart:container:api".into(),
        max: 2,
        window_secs: 3600,
        cooldown_secs: cooldown,
        run_id: "r".into(),
        now: t0 + chrono::Duration::seconds(secs),
    };
    assert!(s.take_budget(&ask(0, 0)).await.unwrap().granted);
    let cool = s.take_budget(&ask(10, 60)).await.unwrap();
    assert!(!cool.granted);
    assert!(cool.reason.unwrap().starts_with("cooldown"));
    assert!(s.take_budget(&ask(100, 60)).await.unwrap().granted);
    let spent = s.take_budget(&ask(200, 0)).await.unwrap();
    assert!(!spent.granted);
    assert_eq!((spent.used, spent.max), (2, 2));
    // An hour after the first use, one is free again.
    assert!(s.take_budget(&ask(3601, 0)).await.unwrap().granted);
    assert_eq!(s.budget_uses("restart:container:api", t0 - chrono::Duration::hours(1)).await.unwrap().len(), 3);
}
