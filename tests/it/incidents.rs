//! Incidents from evidence, end to end on the real `docker compose` stack of the runbook
//! tests: a database stops, triage opens a P1 incident with the API as its consequence, people
//! are told, the status page (served by a real `ops-server` socket, rendered in headless
//! Chromium) shows the outage, the runbook fixes it, triage resolves the incident, and the
//! post-incident report tells the story in order. Internal evidence and a secret typed into a
//! note never reach the public page, feed or JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ops_core::Status;
use ops_core::config::StatusPageConfig;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::runbooks::ComposeStack;
use crate::support_browser::{PageCheck, check_page, serious};

const SECRET: &str = "hunter2-SECRET-5f1e9a";

const STATUS_CONFIG: &str = r#"
[incidents]
resolve-after-secs = 3

[status]
title = "Shop status"
public-url = "https://status.example.com"

[[status.components]]
name = "API"
description = "The public API"
checks = ["http:api"]

[[status.components]]
name = "Database"
checks = ["postgres:main"]
"#;

/// Where the screenshots go: `target/test-artifacts/status-page/`.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/status-page");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `GET path` on a real socket: status and body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: status\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, body.to_owned())
}

async fn browser(url: String, shot: PathBuf) -> PageCheck {
    tokio::task::spawn_blocking(move || check_page(&url, &shot)).await.unwrap().unwrap()
}

fn titles(s: &ComposeStack) -> Vec<String> {
    s.hooks.0.lock().unwrap().iter().map(|v| v["title"].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn a_database_outage_becomes_an_incident_a_status_page_and_a_report() {
    let s = ComposeStack::up(STATUS_CONFIG).await;
    let env = BTreeMap::new();
    let config = ops_core::config::load(Some(&s.config_path), &env).unwrap().config;
    let state = ops_server::AppState::from_config(config, None, env);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ops_server::serve::serve_on(listener, state, Default::default(), async move {
        let _ = stopped.await;
    }));

    // Healthy: triage records no incident, the page is all green.
    let (code, t, err) = s.opsctl(&["triage"]).await;
    // A busy test machine may warn (high load, P3): nothing incident-worthy.
    assert!(code <= 1, "{t:#} {err}");
    assert_eq!(t["recorded"]["opened"], Value::Array(vec![]), "{t:#}");

    // The database stops: triage opens one P1 incident, its root the database, the API a
    // consequence; people hear at once.
    assert!(s.compose(&["stop", "db"]).status.success());
    let (code, t, err) = s.opsctl(&["triage"]).await;
    assert_eq!(code, 2, "{t:#} {err}");
    let opened = t["recorded"]["opened"].as_array().unwrap();
    assert_eq!(opened.len(), 1, "{t:#}");
    let id = opened[0].as_str().unwrap().to_owned();
    let (code, inc, _) = s.opsctl(&["incident", "show", &id]).await;
    assert_eq!(code, 0);
    assert_eq!(inc["incident"]["severity"], "P1", "{inc:#}");
    assert_eq!(inc["incident"]["components"], serde_json::json!(["API", "Database"]), "{inc:#}");
    let consequences: Vec<&str> =
        inc["events"][0]["consequences"].as_array().unwrap().iter().map(|c| c["check"].as_str().unwrap()).collect();
    assert!(consequences.contains(&"http:api"), "the API is a consequence: {inc:#}");
    assert!(titles(&s).iter().any(|t| t.starts_with("🚨 [SEV-1]")), "{:?}", titles(&s));
    // A second triage of the same outage opens nothing new.
    let (_, t, _) = s.opsctl(&["triage"]).await;
    assert_eq!(t["recorded"]["opened"], Value::Array(vec![]), "{t:#}");

    // Internal: a note with a secret. Public: an update.
    let (code, _, err) = s.opsctl(&["incident", "note", &id, &format!("db password is {SECRET}")]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = s.opsctl(&["incident", "ack", &id]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = s.opsctl(&["incident", "ack", &id]).await;
    assert_eq!(code, 7, "a second acknowledgement is a conflict");
    let (code, _, _) = s.opsctl(&["incident", "show", "inc-20260101T000000Z-00000000"]).await;
    assert_eq!(code, 6, "an unknown incident is exit 6");

    // The status page during the incident.
    let (status, body) = get(addr, "/api/v2/summary.json").await;
    assert_eq!(status, 200, "{body}");
    let summary: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(summary["status"]["indicator"], "critical", "{summary:#}");
    let api = summary["components"].as_array().unwrap().iter().find(|c| c["name"] == "API").unwrap();
    assert_eq!(api["status"], "major_outage", "{summary:#}");
    assert_eq!(summary["incidents"][0]["id"], id.as_str());
    assert_eq!(summary["incidents"][0]["incident_updates"][0]["status"], "investigating");
    let during = browser(format!("http://{addr}/status"), artifacts().join("during.png")).await;
    assert_eq!(during.status, 200);
    assert_eq!(during.title, "Shop status: Major System Outage");
    assert!(during.text.contains("Major outage") && during.text.contains("Outage: API, Database"), "{}", during.text);
    assert!(serious(&during.violations).is_empty(), "accessibility: {:?}", during.violations);

    // This project's own status-page probe reads the served summary.json.
    let probe_cfg = StatusPageConfig {
        name: "self".into(),
        url: format!("http://{addr}/api/v2/summary.json"),
        ..Default::default()
    };
    let r = ops_probes::status_page::probe(&probe_cfg, &ops_probes::NetOptions::default()).await;
    assert_eq!(r.status, Status::Critical, "{r:#?}");
    assert!(r.message.contains("Major System Outage"), "{r:#?}");
    assert!(
        r.evidence.iter().any(|e| e == "incident: Outage: API, Database (investigating, impact critical)"),
        "{r:#?}"
    );

    // The runbook fixes it; triage sees it mitigated, then resolved once clean long enough.
    let (code, run, err) = s.opsctl(&["runbook", "run", "database-down", "--apply"]).await;
    assert_eq!(code, 0, "{run:#} {err}");
    let (_, t, _) = s.opsctl(&["triage"]).await;
    assert!(t["recorded"]["updated"].as_array().unwrap().iter().any(|v| v == id.as_str()), "{t:#}");
    let (_, inc, _) = s.opsctl(&["incident", "show", &id]).await;
    assert_eq!(inc["incident"]["status"], "mitigated", "{inc:#}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (code, t, _) = s.opsctl(&["triage"]).await;
    assert!(code <= 1, "{t:#}");
    assert_eq!(t["recorded"]["resolved"], serde_json::json!([id.as_str()]), "{t:#}");

    // People heard the initial message, updates and the resolution.
    let seen = titles(&s);
    assert!(seen.iter().any(|t| t.starts_with("🔄 [SEV-1] Update")), "{seen:?}");
    assert!(seen.iter().any(|t| t.starts_with("✅ [SEV-1] Resolved")), "{seen:?}");
    assert!(!s.hooks.0.lock().unwrap().iter().any(|v| v.to_string().contains(SECRET)), "notes are not sent");

    // The report: every event in order, UTC times, durations.
    let (code, report, err) = s.opsctl(&["incident", "report", &id]).await;
    assert_eq!(code, 0, "{err}");
    let timeline = report["timeline"].as_array().unwrap();
    let times: Vec<&str> = timeline.iter().map(|r| r["time"].as_str().unwrap()).collect();
    assert!(times.iter().all(|t| t.ends_with('Z')), "UTC: {times:?}");
    let parsed: Vec<chrono::DateTime<chrono::Utc>> = times.iter().map(|t| t.parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "in order: {times:?}");
    let kinds: Vec<&str> = timeline.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    let pos = |k: &str| kinds.iter().position(|x| *x == k).unwrap_or_else(|| panic!("no {k} in {kinds:?}"));
    assert!(pos("opened") < pos("action"), "{kinds:?}");
    assert!(pos("action") < pos("mitigated") && pos("mitigated") < pos("resolved"), "{kinds:?}");
    assert!(kinds.contains(&"run") && kinds.contains(&"probe") && kinds.contains(&"acknowledged"), "{kinds:?}");
    let restarted = timeline.iter().any(|r| {
        r["kind"] == "action"
            && r["text"].as_str().unwrap().starts_with(&format!("restart container:{}", s.container("db")))
    });
    assert!(restarted, "the restart of the database is in the timeline: {timeline:#?}");
    assert!(report["response"]["to_resolve_secs"].as_i64().unwrap() >= 3, "{report:#}");
    assert!(report["response"]["to_acknowledge_secs"].as_i64().is_some(), "{report:#}");
    assert_eq!(report["status"], "resolved");
    assert!(report["resolution"]["runs"][0]["command"].as_str().unwrap().starts_with("opsctl runbook show-run run-"));
    // And as Markdown, ready to commit.
    let markdown = tokio::task::spawn_blocking({
        let config = s.config_path.clone();
        let id = id.clone();
        move || {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let argv = ["opsctl", "--config", config.to_str().unwrap(), "incident", "report", &id];
            let code = ops_cli::run(argv, &BTreeMap::new(), &mut out, &mut err);
            assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
            String::from_utf8(out).unwrap()
        }
    })
    .await
    .unwrap();
    for section in
        ["## Timeline (UTC)", "## Root Cause", "## Resolution", "## Impact", "## Action Items", "**Detection gap**"]
    {
        assert!(markdown.contains(section), "{section}: {markdown}");
    }

    // The page afterwards: operational, the incident among the past ones.
    let (_, body) = get(addr, "/api/v2/summary.json").await;
    let summary: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(summary["status"]["indicator"], "none", "{summary:#}");
    assert!(summary["incidents"].as_array().unwrap().is_empty());
    let after = browser(format!("http://{addr}/status"), artifacts().join("after.png")).await;
    assert!(after.text.contains("All Systems Operational") && after.text.contains("Past incidents"), "{}", after.text);
    assert!(after.text.contains("Outage: API, Database"), "{}", after.text);
    assert!(serious(&after.violations).is_empty(), "accessibility: {:?}", after.violations);

    // Nothing internal on any public route: not the note's secret, not the evidence (the
    // container's name), not the checks.
    for path in ["/status", "/status/feed.atom", "/api/v2/incidents.json", "/api/v2/summary.json"] {
        let (status, body) = get(addr, path).await;
        assert_eq!(status, 200, "{path}");
        for internal in [SECRET, s.container("db").as_str(), "postgres:main", "database-down"] {
            assert!(!body.contains(internal), "{path} shows {internal}");
        }
    }
    let (_, feed) = get(addr, "/status/feed.atom").await;
    assert!(feed.contains("<entry>") && feed.contains("Resolved"), "{feed}");

    // The static export renders the same page with no server.
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = s.opsctl(&["status", "export", dir.path().to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    let file_url = format!("file://{}", dir.path().join("index.html").display());
    let exported = browser(file_url, artifacts().join("exported.png")).await;
    let strip = |t: &str| t.lines().filter(|l| !l.starts_with("Updated")).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&exported.text), strip(&after.text), "the export is the same page");
    let exported_summary: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("api/v2/summary.json")).unwrap()).unwrap();
    assert_eq!(exported_summary["components"], summary["components"]);
}

/// A server over its own SQLite store, with an admin key, in-process.
fn server(dir: &Path, extra: &str) -> (std::sync::Arc<ops_server::AppState>, String) {
    let admin = "b".repeat(64);
    let text = format!(
        "[state]\nurl = \"sqlite://{}/state.db\"\n[perf]\naudit-log = \"{}/audit.jsonl\"\n{STATUS_CONFIG}\n{extra}",
        dir.display(),
        dir.display()
    );
    let path = dir.join("ops.toml");
    std::fs::write(&path, text).unwrap();
    let env = BTreeMap::new();
    let mut config = ops_core::config::load(Some(&path), &env).unwrap().config;
    config.server.admin_keys = vec![ops_core::Secret::new(admin.clone())];
    (ops_server::AppState::from_config(config, None, env), admin)
}

/// The incident routes check what they are given; the public routes take no key, change
/// nothing and are rate-limited; a public update is escaped in every form it is shown in.
#[tokio::test]
async fn incident_routes_refuse_bad_input_and_the_public_page_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let (state, admin) = server(dir.path(), "");
    let call = |method: &'static str, path: &str, body: &str| {
        let state = std::sync::Arc::clone(&state);
        let (admin, path, body) = (admin.clone(), path.to_owned(), body.to_owned());
        async move { crate::harness::api_call(&state, method, &path, &admin, &body).await }
    };
    let (status, body) = call(
        "POST",
        "/api/v1/incidents",
        r#"{"title": "payments <b>down</b>", "severity": "P1", "components": ["API"]}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["incident"]["id"].as_str().unwrap().to_owned();
    let hostile = r#"<script>alert(1)</script> & <a href="javascript:x">click</a> ]]> | `tick` [x](y)"#;
    let (status, body) = call(
        "POST",
        &format!("/api/v1/incidents/{id}/updates"),
        &serde_json::json!({ "text": hostile, "status": "identified" }).to_string(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) =
        call("POST", &format!("/api/v1/incidents/{id}/notes"), &serde_json::json!({ "text": SECRET }).to_string())
            .await;
    assert_eq!(status, 201);

    // Bad input: unknown and malformed ids, empty and overlong text, unknown fields.
    let missing = "inc-20260101T000000Z-00000000";
    for (method, path, body, want) in [
        ("GET", format!("/api/v1/incidents/{missing}"), String::new(), 404),
        ("GET", "/api/v1/incidents/..%2F..%2Fetc".to_owned(), String::new(), 404),
        ("POST", format!("/api/v1/incidents/{missing}/ack"), String::new(), 404),
        ("POST", format!("/api/v1/incidents/{id}/notes"), r#"{"text": ""}"#.to_owned(), 422),
        (
            "POST",
            format!("/api/v1/incidents/{id}/notes"),
            serde_json::json!({ "text": "x".repeat(4001) }).to_string(),
            422,
        ),
        ("POST", format!("/api/v1/incidents/{id}/notes"), r#"{"text": "x", "admin": true}"#.to_owned(), 422),
        ("POST", "/api/v1/incidents".to_owned(), r#"{"title": "x", "severity": "P9"}"#.to_owned(), 422),
        ("GET", format!("/api/v1/incidents/{id}/report?format=pdf"), String::new(), 422),
        (
            "POST",
            "/api/v1/status/overrides".to_owned(),
            r#"{"component": "Nope", "status": "major_outage"}"#.to_owned(),
            422,
        ),
    ] {
        let (status, body) = call(method, &path, &body).await;
        assert_eq!(status.as_u16(), want, "{method} {path}: {body}");
    }

    // The report escapes what people typed, in Markdown and JSON.
    let (status, markdown) = call("GET", &format!("/api/v1/incidents/{id}/report?format=markdown"), "").await;
    assert_eq!(status, 200);
    assert!(!markdown.contains("<script>") && markdown.contains("&lt;script&gt;"), "{markdown}");
    assert!(markdown.contains(SECRET), "internal notes are in the internal report");

    // Public routes: no key needed, nothing internal, escaped.
    let public = |path: &str| {
        let state = std::sync::Arc::clone(&state);
        let path = path.to_owned();
        async move { crate::harness::api_call(&state, "GET", &path, "", "").await }
    };
    let (status, html) = public("/status").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("&lt;script&gt;") && !html.contains("<script>") && !html.contains("href=\"javascript"),
        "{html}"
    );
    assert!(!html.contains(SECRET) && !html.contains("payments"), "the internal title and notes stay inside");
    let (_, feed) = public("/status/feed.atom").await;
    assert!(feed.contains("&lt;script&gt;") && !feed.contains("]]>") && !feed.contains(SECRET), "{feed}");
    assert!(!feed.contains("payments"), "{feed}");
    let (_, json) = public("/api/v2/incidents/unresolved.json").await;
    let doc: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["incidents"][0]["incident_updates"][0]["body"], hostile, "JSON carries the text as it was typed");
    assert!(!json.contains(SECRET) && !json.contains("payments"), "{json}");
    for (method, path) in [("POST", "/status"), ("DELETE", "/api/v2/summary.json"), ("PUT", "/status/feed.atom")] {
        let (status, _) = crate::harness::api_call(&state, method, path, "", "").await;
        assert_eq!(status.as_u16(), 405, "{method} {path} changes nothing");
    }
    let (status, _) = public("/api/v2/../../state.db").await;
    assert_eq!(status.as_u16(), 404);
    let (status, _) = public("/api/v1/incidents").await;
    assert_eq!(status.as_u16(), 401, "the internal routes still need a key");

    // Rate-limited, all clients together.
    let dir2 = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(dir.path().join("ops.toml"))
        .unwrap()
        .replace("[status]\n", "[status]\nrate-limit-per-second = 2\n");
    std::fs::write(dir2.path().join("ops.toml"), text).unwrap();
    let config = ops_core::config::load(Some(&dir2.path().join("ops.toml")), &BTreeMap::new()).unwrap().config;
    let slow = ops_server::AppState::from_config(config, None, BTreeMap::new());
    let mut codes = Vec::new();
    for _ in 0..8 {
        codes.push(crate::harness::api_call(&slow, "GET", "/api/v2/status.json", "", "").await.0.as_u16());
    }
    assert!(codes.contains(&200) && codes.contains(&429), "{codes:?}");
}

/// `opsctl status publish` uploads the page to another bucket, where it is served as files.
#[tokio::test]
async fn the_page_is_published_to_an_object_store_of_its_own() {
    use ops_core::adapters::s3::{S3Options, S3Store};
    use ops_core::ports::ObjectStore as _;
    let (_s3, endpoint) = crate::harness::s3().await;
    let bucket = S3Store::new({
        let mut o = S3Options::new(
            "status-site",
            ops_core::Secret::new(crate::harness::S3_ACCESS_KEY),
            ops_core::Secret::new(crate::harness::S3_SECRET_KEY),
        );
        o.endpoint = Some(endpoint.clone());
        o.path_style = true;
        o
    })
    .unwrap();
    bucket.ensure_bucket().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let publish = format!(
        "[status.publish]\nurl = \"s3://status-site/page\"\nendpoint = \"{endpoint}\"\naccess-key-id = \"{}\"\nsecret-access-key = \"{}\"\n",
        crate::harness::S3_ACCESS_KEY,
        crate::harness::S3_SECRET_KEY
    );
    let (state, _) = server(dir.path(), &publish);
    drop(state);
    let config = dir.path().join("ops.toml");
    let out = tokio::task::spawn_blocking(move || {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let argv = ["opsctl", "--config", config.to_str().unwrap(), "--json", "status", "publish"];
        let code = ops_cli::run(argv, &BTreeMap::new(), &mut out, &mut err);
        (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
    })
    .await
    .unwrap();
    assert_eq!(out.0, 0, "{} {}", out.1, out.2);
    assert!(!out.1.contains(crate::harness::S3_SECRET_KEY) && !out.2.contains(crate::harness::S3_SECRET_KEY));
    let keys: Vec<String> = bucket.list("page/").await.unwrap().into_iter().map(|m| m.key).collect();
    for want in
        ["page/index.html", "page/feed.atom", "page/api/v2/summary.json", "page/api/v2/incidents/unresolved.json"]
    {
        assert!(keys.iter().any(|k| k == want), "{want} in {keys:?}");
    }
    let mut body = bucket.get("page/api/v2/status.json").await.unwrap();
    let mut text = String::new();
    body.read_to_string(&mut text).await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["status"]["indicator"], "none");
}
