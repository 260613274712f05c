//! `GET /api/v1/openapi.json` and schemathesis (installed by `cargo xtask test-env`) against a
//! live ops-server on a real PostgreSQL and Redis: the document validates, and over every
//! documented operation, generated requests (valid and not) find no 5xx and no answer that
//! breaks the document: status codes, content types and bodies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::harness;

const READ_KEY: &str = "openapi-read-key-0123456789";
const ADMIN_KEY: &str = "openapi-admin-key-0123456789";
const WEBHOOK_KEY: &str = "openapi-hook-key-0123456789";

/// The installed tester; a test that needs it fails when it is missing.
fn schemathesis() -> &'static str {
    let bin = "/usr/local/bin/schemathesis";
    assert!(
        std::process::Command::new(bin).arg("--version").output().is_ok_and(|o| o.status.success()),
        "{bin} is missing: run `cargo xtask test-env`"
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)] // schemathesis's summary, for `--no-capture`
async fn openapi_document_describes_every_route_and_schemathesis_finds_no_error() {
    let st = schemathesis();
    let pg = harness::postgres(&[]).await;
    let (_redis, redis_port) = harness::redis(None).await;
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let d = dir.path().display();
    let config = format!(
        r#"[project]
name = "openapi"

[databases.main]
url = "{pg_url}"

[caches.main]
url = "redis://127.0.0.1:{redis_port}"

[storage]
url = "file://{d}/backups"

[state]
url = "sqlite://{d}/state.db"

[perf]
audit-log = "{d}/audit.jsonl"
state-dir = "{d}/perf"

[[http]]
name = "api"
url = "http://{addr}/health/live"

[[tls]]
name = "closed"
endpoint = "127.0.0.1:{closed}"

[[status.components]]
name = "API"
checks = ["http:api"]

[[schedule]]
name = "nightly-triage"
job = "triage"
cron = "0 2 * * *"

[server]
rate-limit-per-second = 100000

[alertmanager]

{calm}
[probes]
timeout-secs = 3
"#,
        pg_url = pg.url("postgres", "postgres", "app"),
        closed = harness::free_port(),
        calm = harness::CALM_HOST,
    );
    let path = dir.path().join("ops.toml");
    std::fs::write(&path, config).unwrap();
    let env = BTreeMap::from([
        ("API_KEYS".to_owned(), READ_KEY.to_owned()),
        ("ADMIN_KEYS".to_owned(), ADMIN_KEY.to_owned()),
        ("ALERTMANAGER_WEBHOOK_KEYS".to_owned(), format!("{WEBHOOK_KEY},{ADMIN_KEY}")),
    ]);
    let loaded = ops_core::config::load(Some(&path), &env).unwrap();
    let state = ops_server::AppState::from_config(loaded.config, Some(path.clone()), env);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server =
        tokio::spawn(ops_server::serve::serve_on(listener, Arc::clone(&state), Default::default(), async move {
            let _ = stopped.await;
        }));
    let base = format!("http://{addr}");
    let client = harness::http_client();

    // The document: OpenAPI 3.1, behind a key like every /api/v1 route.
    let doc_url = format!("{base}/api/v1/openapi.json");
    assert_eq!(client.get(&doc_url).send().await.unwrap().status(), 401);
    let doc: serde_json::Value = client.get(&doc_url).bearer_auth(READ_KEY).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| ops.as_object().unwrap().keys().map(move |m| format!("{} {p}", m.to_uppercase())))
        .collect();
    // Every route the router has under /api/v1 (read from the router's source, so a route
    // added without its annotation fails here).
    let routes = include_str!("../../crates/ops-server/src/routes.rs");
    let mut served = BTreeSet::new();
    for line in routes.lines().map(str::trim).filter(|l| l.starts_with(".route(\"/api/v1/")) {
        let path = line.split('"').nth(1).unwrap();
        let method = ["get(", "post(", "delete("]
            .iter()
            .find(|m| line.contains(&format!("routing::{m}")) || line.contains(&format!(", {m}")))
            .unwrap_or_else(|| panic!("no method in {line}"));
        served.insert(format!("{} {path}", method.trim_end_matches('(').to_uppercase()));
    }
    assert!(served.len() >= 35, "{served:?}");
    assert_eq!(documented, served, "every /api/v1 route is documented, and only those");
    // Every operation names its errors with the one error body.
    for (p, ops) in doc["paths"].as_object().unwrap() {
        for (m, op) in ops.as_object().unwrap() {
            let e = &op["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"];
            assert_eq!(e, "#/components/schemas/ErrorBody", "{m} {p}");
        }
    }

    // Something to find: an incident and a plan, so ids exist.
    let r = client
        .post(format!("{base}/api/v1/incidents"))
        .bearer_auth(ADMIN_KEY)
        .json(&serde_json::json!({ "title": "API slow", "severity": "P3", "components": ["API"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = client.post(format!("{base}/api/v1/runbooks/high-load/plan")).bearer_auth(READ_KEY).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // schemathesis, with the admin key (which reads too and is also a webhook key): every
    // operation, its examples, its coverage of edge values, random fuzzing and the stateful
    // links between operations.
    // Not fuzzed: POST /api/v1/actions, whose coverage phase would send `"apply": true` to
    // the Docker engine every test shares (an engine prune, a stop); its plan-only answer is
    // checked by hand below.
    let report = dir.path().join("report");
    let run = tokio::process::Command::new(st)
        .current_dir(dir.path())
        .kill_on_drop(true)
        .args(["run", &doc_url, "--header", &format!("Authorization: Bearer {ADMIN_KEY}")])
        .args(["--exclude-path", "/api/v1/actions"])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            "25",
            "--workers",
            "2",
            "--seed",
            "20261202",
            "--request-timeout",
            "60",
            "--no-color",
            "--report",
            "junit",
            "--report-dir",
        ])
        .arg(&report)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(900), run).await;

    // Whatever schemathesis said, the jobs it started (backups, drills) end before the server
    // does, so a drill's scratch server is removed by the drill itself. They run one at a time
    // per database: on a loaded 2-core machine the queue takes minutes (nextest gives this
    // test 15). A runbook run is not waited for: it may sit at a manual step until its
    // approval times out (an hour), and its state is in the state store, which resumes it
    // after a restart.
    let waited = std::time::Instant::now();
    loop {
        let active: Vec<(String, String)> =
            state.jobs.active_kinds().into_iter().filter(|(kind, _)| kind != "runbook").collect();
        if active.is_empty() {
            break;
        }
        assert!(waited.elapsed() < Duration::from_secs(600), "jobs still running after 600 s: {active:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The operation left out of the fuzzing: a plan, nothing done, in the documented shape.
    let r = client
        .post(format!("{base}/api/v1/actions"))
        .bearer_auth(ADMIN_KEY)
        .json(&serde_json::json!({ "action": "engine-prune" }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let answer: serde_json::Value = r.json().await.unwrap();
    let _ = stop.send(());
    let _ = server.await;

    let out = out.expect("schemathesis ran within 15 minutes").unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{text}");
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    assert!(text.contains("Specification:    Open API 3.1.0"), "{text}");
    assert!(!text.contains("Schema Error"), "{text}");
    assert!(!text.contains("POST /api/v1/actions"), "left out of the fuzzing: {text}");
    assert_eq!(status, 200, "{answer}");
    let schema = &doc["paths"]["/api/v1/actions"]["post"]["responses"]["200"]["content"]["application/json"]["schema"];
    assert!(schema["$ref"].is_string(), "{schema}");
    assert_eq!(answer["applied"], false, "{answer}");
    assert!(answer["plan"].is_object() && answer.get("report").is_none(), "{answer}");
}
