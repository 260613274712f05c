//! ops-server driven in-process (no socket): health, metrics, keys, rotation, reload.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use ops_server::{AppState, app};
use tower::ServiceExt;

const CONFIG: &str = r#"
[project]
name = "stellar-escrow"

[databases.main]
url = "postgres://indexer:${POSTGRES_PASSWORD}@localhost:5432/stellar_escrow"

[notify]
webhooks = ["https://hooks.slack.com/services/T/B/webhooktoken"]
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    state: Arc<AppState>,
}

fn fixture(env: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ops.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let mut env: BTreeMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    env.insert("POSTGRES_PASSWORD".into(), "pgpassword".into());
    let loaded = ops_core::config::load(Some(&path), &env).unwrap();
    let state = AppState::from_config(loaded.config, Some(path.clone()), env);
    Fixture { _dir: dir, path, state }
}

async fn call(state: &Arc<AppState>, method: &str, uri: &str, key: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let resp = app(Arc::clone(state)).oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn server_health_and_metrics_are_open() {
    let f = fixture(&[]);
    let (s, body) = call(&f.state, "GET", "/health/live", None).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, r#"{"status":"ok"}"#));
    let (s, body) = call(&f.state, "GET", "/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("ops_build_info{version=\"0.1.0\"} 1"), "{body}");
    assert!(!body.contains("# EOF"), "the classic text format by default: {body}");
    let (s, body) = call(&f.state, "GET", "/health/ready", None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, _) = call(&f.state, "GET", "/nope", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn server_api_needs_a_key_and_actions_need_an_admin_key() {
    let f =
        fixture(&[("API_KEYS", "old-read-0123456789,new-read-0123456789"), ("ADMIN_KEYS", "k-admin-777-0123456789")]);
    let (s, body) = call(&f.state, "GET", "/api/v1/config", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body.contains("unauthenticated"), "{body}");
    let (s, _) = call(&f.state, "GET", "/api/v1/config", Some("guess")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Rotation window: old and new read keys both work.
    for key in ["old-read-0123456789", "new-read-0123456789", "k-admin-777-0123456789"] {
        let (s, body) = call(&f.state, "GET", "/api/v1/config", Some(key)).await;
        assert_eq!(s, StatusCode::OK, "{key}");
        for secret in
            ["pgpassword", "webhooktoken", "old-read-0123456789", "new-read-0123456789", "k-admin-777-0123456789"]
        {
            assert!(!body.contains(secret), "{secret} leaked: {body}");
        }
        assert!(body.contains("postgres://indexer:***@localhost:5432/stellar_escrow"), "{body}");
    }

    let (s, body) = call(&f.state, "POST", "/api/v1/config/reload", Some("old-read-0123456789")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let (s, _) = call(&f.state, "POST", "/api/v1/config/reload", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, body) = call(&f.state, "POST", "/api/v1/config/reload", Some("k-admin-777-0123456789")).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    // X-API-Key works too.
    let req = Request::get("/api/v1/config").header("x-api-key", "new-read-0123456789").body(Body::empty()).unwrap();
    assert_eq!(app(Arc::clone(&f.state)).oneshot(req).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn server_without_keys_refuses_every_api_call() {
    let f = fixture(&[]);
    let (s, _) = call(&f.state, "GET", "/api/v1/config", Some("")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn server_reload_rejects_a_bad_file_and_keeps_the_running_config() {
    let f = fixture(&[("ADMIN_KEYS", "k-admin-777-0123456789")]);
    std::fs::write(&f.path, CONFIG.replace("[notify]", "[notfy]")).unwrap();
    let (s, body) = call(&f.state, "POST", "/api/v1/config/reload", Some("k-admin-777-0123456789")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["kind"], "invalid-config");
    assert_eq!(v["error"]["detail"]["line"], 8);
    let (s, body) = call(&f.state, "GET", "/api/v1/config", Some("k-admin-777-0123456789")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("stellar-escrow"), "still serving the old config: {body}");
    let (_, metrics) = call(&f.state, "GET", "/metrics", None).await;
    assert!(metrics.contains("ops_config_reloads_total{result=\"failure\"} 1"), "{metrics}");

    // A good file is picked up, and keys in it rotate without a restart.
    std::fs::write(
        &f.path,
        format!("{CONFIG}\n[server]\nadmin-keys = [\"rotated-admin-0123456789\"]\n")
            .replace("stellar-escrow", "renamed"),
    )
    .unwrap();
    let f2_env_free = AppState::from_config(
        ops_core::config::load(Some(&f.path), &BTreeMap::from([("POSTGRES_PASSWORD".to_owned(), "x".to_owned())]))
            .unwrap()
            .config,
        Some(f.path.clone()),
        BTreeMap::from([("POSTGRES_PASSWORD".to_owned(), "x".to_owned())]),
    );
    let (s, _) = call(&f2_env_free, "POST", "/api/v1/config/reload", Some("rotated-admin-0123456789")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = call(&f.state, "POST", "/api/v1/config/reload", Some("k-admin-777-0123456789")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.contains("renamed"));
}

#[tokio::test]
async fn server_a_configuration_it_cannot_wire_is_a_5xx_with_a_kind() {
    // Loads (the url has a host), but the PostgreSQL adapter cannot use it: no database name.
    let text = "[databases.main]\nurl = \"postgres://app:${POSTGRES_PASSWORD}@localhost:5432\"\n";
    let env = BTreeMap::from([
        ("POSTGRES_PASSWORD".to_owned(), "pgpassword".to_owned()),
        ("API_KEYS".to_owned(), "read-key-0123456789".to_owned()),
    ]);
    let config = ops_core::config::resolve(ops_core::config::ConfigSource {
        file_name: "ops.toml",
        text: Some(text),
        env: &env,
    })
    .unwrap();
    let state = AppState::from_config(config, None, env);
    for uri in ["/api/v1/backups", "/api/v1/triage", "/api/v1/tls", "/api/v1/perf"] {
        let (s, body) = call(&state, "GET", uri, Some("read-key-0123456789")).await;
        // The server's own setup is at fault, not the request: never a 422.
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{uri}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["kind"], "wiring", "{uri}: {body}");
        assert_eq!(v["error"]["detail"]["cause"], "invalid-input", "{uri}: {body}");
        assert!(v["error"]["message"].as_str().unwrap().contains("names no database"), "{uri}: {body}");
        assert!(!body.contains("pgpassword"), "{uri}: {body}");
    }
    let (s, _) = call(&state, "GET", "/health/ready", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
}
