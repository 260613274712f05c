//! `opsctl perf analyze`, `opsctl pg kill-idle` and `GET /api/v1/perf`, `POST /api/v1/actions`
//! against a real PostgreSQL: plan by default, act and audit with `--apply`.

use std::collections::BTreeMap;
use std::time::Duration;

use http::StatusCode;

use crate::harness;

fn opsctl(args: &[&str]) -> (u8, String) {
    let env = BTreeMap::from([("USER".to_owned(), "oncall".to_owned())]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut argv = vec!["opsctl"];
    argv.extend_from_slice(args);
    let code = ops_cli::run(argv, &env, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap() + &String::from_utf8(err).unwrap())
}

/// A session that stays idle: `psql` in the container runs a query, then a shell sleep while
/// its connection stays open.
fn idle_session(container: &str, app: &str) {
    let status = std::process::Command::new("docker")
        .args(["exec", "-d", "-e", &format!("PGAPPNAME={app}"), container])
        .args(["psql", "-U", "postgres", "-d", "app", "-c", "SELECT 1", "-c", "\\! sleep 120"])
        .status()
        .unwrap();
    assert!(status.success());
}

/// An `ops.toml` for `pg`'s database `app` with its audit log in a temporary directory, and
/// `extra` appended: the directory (kept alive), the audit log's path and the file's path.
fn config_file(pg: &harness::Postgres, extra: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let config = dir.path().join("ops.toml");
    let text = format!(
        "[databases.main]\nurl = \"{}\"\n\n[perf]\naudit-log = {:?}\n{extra}",
        pg.url("postgres", "postgres", "app"),
        audit.display().to_string()
    );
    std::fs::write(&config, text).unwrap();
    (dir, audit, config)
}

#[test]
fn perf_cli_plans_then_applies_kill_idle_and_analyzes() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let pg = rt.block_on(harness::postgres(&[]));
    let (_dir, audit, config) = config_file(&pg, "\n[perf.postgres]\nidle-connection-secs = 1\n");
    let config = config.to_str().unwrap();
    idle_session(pg.id(), "idle-worker");
    std::thread::sleep(Duration::from_secs(3));

    // The analysis sees the idle connection; the exit code is the plugin's.
    let (code, out) = opsctl(&["perf", "analyze", "--section", "pg", "--json", "--config", config]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(code <= 2, "{out}");
    assert_eq!(v["sections"][0]["section"], "pg");
    assert_eq!(v["sections"][0]["target"], "postgres:main");
    assert!(v["sections"][0]["queries"].as_u64().unwrap() > 0);
    let checks: Vec<&str> =
        v["sections"][0]["findings"].as_array().unwrap().iter().map(|f| f["check"].as_str().unwrap()).collect();
    assert!(checks.contains(&"idle-connection"), "{checks:?}");

    // The plan names the idle session and changes nothing.
    let (code, out) = opsctl(&["pg", "kill-idle", "--older-than", "2s", "--config", config]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("idle-worker") && out.contains("run again with --apply"), "{out}");
    assert!(!audit.exists() || std::fs::read_to_string(&audit).unwrap().is_empty(), "a plan writes no audit");
    let (_, out) = opsctl(&["pg", "kill-idle", "--older-than", "2s", "--config", config]);
    assert!(out.contains("idle-worker"), "still there after the plan: {out}");

    // Applied: terminated, and the audit log says who, what and the result.
    let (code, out) = opsctl(&["pg", "kill-idle", "--older-than", "2s", "--apply", "--config", config]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("applied:") && out.contains("ok"), "{out}");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&audit).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!lines.is_empty());
    assert_eq!(lines[0]["action"], "kill-idle");
    assert!(lines[0]["actor"].as_str().unwrap().starts_with("opsctl:oncall"), "{:?}", lines[0]);
    assert_eq!(lines[0]["result"], "ok");
    let (_, out) = opsctl(&["pg", "kill-idle", "--older-than", "2s", "--config", config]);
    assert!(!out.contains("idle-worker") && out.contains("nothing to do"), "{out}");

    // A bad duration is a usage problem with a hint, not a guess.
    let (code, out) = opsctl(&["pg", "kill-idle", "--older-than", "ten minutes", "--config", config]);
    assert_eq!(code, ops_cli::exit::USAGE, "{out}");
    assert!(out.contains("like 10m"), "{out}");
    rt.block_on(pg.container.rm()).unwrap();
}

#[tokio::test]
async fn perf_api_analyze_and_actions_need_the_right_key() {
    let pg = harness::postgres(&[]).await;
    let (_dir, audit, config) = config_file(&pg, "");
    let env = BTreeMap::from([
        ("API_KEYS".to_owned(), "read-key-0123456789".to_owned()),
        ("ADMIN_KEYS".to_owned(), "admin-key-0123456789".to_owned()),
    ]);
    let loaded = ops_core::config::load(Some(&config), &env).unwrap();
    let state = ops_server::AppState::from_config(loaded.config, Some(config), env);

    let (status, body) =
        crate::harness::api_call(&state, "GET", "/api/v1/perf?section=pg", "read-key-0123456789", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["sections"].as_array().unwrap().len(), 1);
    assert_eq!(v["sections"][0]["section"], "pg");
    let (status, _) =
        crate::harness::api_call(&state, "GET", "/api/v1/perf?section=pgg", "read-key-0123456789", "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let vacuum = r#"{"action": "vacuum", "analyze": true, "tables": ["pg_catalog.pg_class"]}"#;
    let (status, _) = crate::harness::api_call(&state, "POST", "/api/v1/actions", "read-key-0123456789", vacuum).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a read key cannot act");
    let kill = r#"{"action": "kill-idle", "older-than-secs": 3600, "apply": false}"#;
    let (status, body) =
        crate::harness::api_call(&state, "POST", "/api/v1/actions", "admin-key-0123456789", kill).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["applied"], false);
    assert_eq!(v["plan"]["action"]["action"], "kill-idle");
    let bad = r#"{"action": "drop-database", "apply": true}"#;
    let (status, _) = crate::harness::api_call(&state, "POST", "/api/v1/actions", "admin-key-0123456789", bad).await;
    assert!(status.is_client_error(), "{status}");
    assert!(!audit.exists() || std::fs::read_to_string(&audit).unwrap().is_empty(), "nothing was applied");
}
