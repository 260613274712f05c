//! Alertmanager in and out, with a real Alertmanager (Debian's `prometheus-alertmanager`) on
//! loopback routing to a real ops-server socket: a firing alert runs its `auto` runbook, a
//! silence of the target is in Alertmanager while the runbook acts and expires after it
//! verified, the same alert delivered twice (or twice in one notification) acts once, a
//! resolved alert never acts (nor a firing delivery that arrives after its resolution), a
//! notification's alerts start one run per runbook and target, and bad deliveries are refused
//! without a trace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{self, eventually};

const KEY: &str = "am-webhook-key-0123456789abcdef";

/// An indexer that lags until its events are replayed: `GET /lag` is 503 while lagging,
/// `POST /replay` catches up three seconds later.
#[derive(Clone, Default)]
struct Indexer {
    lagging: Arc<AtomicBool>,
    replays: Arc<AtomicU32>,
}

async fn indexer() -> (Indexer, std::net::SocketAddr) {
    let ix = Indexer { lagging: Arc::new(AtomicBool::new(true)), replays: Arc::default() };
    let app = axum::Router::new()
        .route(
            "/lag",
            axum::routing::get(|axum::extract::State(ix): axum::extract::State<Indexer>| async move {
                if ix.lagging.load(Ordering::SeqCst) {
                    http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    http::StatusCode::OK
                }
            }),
        )
        .route(
            "/replay",
            axum::routing::post(|axum::extract::State(ix): axum::extract::State<Indexer>| async move {
                ix.replays.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    ix.lagging.store(false, Ordering::SeqCst);
                });
                "replaying"
            }),
        )
        .with_state(ix.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (ix, addr)
}

fn runbook(indexer: std::net::SocketAddr) -> String {
    format!(
        r#"# Replay the indexer's events

```runbook
name = "replay-events"
title = "The indexer lags: replay its events"
applies-to = ["IndexerLag"]
auto = true
```

```step
id = "lag"
check = "http:lag"
```

```step
id = "replay"
when = "lag.status != 'ok'"
action = "http"
method = "POST"
url = "http://{indexer}/replay"
```

```step
id = "caught-up"
when = "lag.status != 'ok'"
wait = "http:lag"
timeout-secs = 30
```

```step
id = "verify"
verify = "http:lag"
```
"#
    )
}

async fn post(client: &reqwest::Client, url: &str, key: Option<&str>, body: String) -> (u16, String) {
    let mut req = client.post(url).header("content-type", "application/json").body(body);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn webhook(status: &str, fingerprint: &str, alertname: &str, starts_at: &str) -> Value {
    json!({
        "version": "4", "groupKey": format!("{{}}:{{alertname=\"{alertname}\"}}"), "status": status,
        "receiver": "ops", "groupLabels": {"alertname": alertname}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager", "truncatedAlerts": 0,
        "alerts": [{"status": status, "labels": {"alertname": alertname, "service": "indexer", "severity": "critical",
                    "runbook": "replay-events"},
                    "annotations": {"summary": "the indexer lags"}, "startsAt": starts_at,
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": fingerprint}]
    })
}

#[tokio::test]
async fn alertmanager_routes_an_alert_to_its_runbook_which_acts_once_under_a_silence() {
    let (ix, ix_addr) = indexer().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops_addr = listener.local_addr().unwrap();
    let am = harness::alertmanager(&format!(
        r#"route:
  receiver: ops
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: ops
    webhook_configs:
      - url: "http://{ops_addr}/api/v1/alertmanager"
        send_resolved: true
        http_config:
          authorization:
            credentials: "{KEY}"
"#
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("runbooks")).unwrap();
    std::fs::write(dir.path().join("runbooks/replay-events.md"), runbook(ix_addr)).unwrap();
    let config = dir.path().join("ops.toml");
    std::fs::write(
        &config,
        format!(
            r#"[state]
url = "sqlite://{d}/state.db"
[perf]
audit-log = "{d}/audit.jsonl"
[runbooks]
dir = "{d}/runbooks"
[alertmanager]
url = "{am}"
webhook-keys = ["{KEY}"]
[[http]]
name = "lag"
url = "http://{ix_addr}/lag"
"#,
            d = dir.path().display(),
            am = am.url,
        ),
    )
    .unwrap();
    let env = BTreeMap::new();
    let loaded = ops_core::config::load(Some(&config), &env).unwrap();
    let state = ops_server::AppState::from_config(loaded.config, Some(config.clone()), env);
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ops_server::serve::serve_on(listener, Arc::clone(&state), Default::default(), async move {
        let _ = stopped.await;
    }));
    let client = harness::http_client();
    let hook = format!("http://{ops_addr}/api/v1/alertmanager");

    // Bad deliveries: no key, a wrong key, not a payload, too big. None leaves a trace.
    let good = webhook("firing", "00000000000000aa", "Probe", "2030-01-01T00:00:00Z").to_string();
    assert_eq!(post(&client, &hook, None, good.clone()).await.0, 401);
    assert_eq!(post(&client, &hook, Some("not-the-key-0123456789"), good.clone()).await.0, 401);
    assert_eq!(post(&client, &hook, Some(KEY), "{\"version\": \"4\"}".into()).await.0, 400);
    assert_eq!(post(&client, &hook, Some(KEY), good.replace("\"4\"", "\"3\"")).await.0, 400);
    assert_eq!(post(&client, &hook, Some(KEY), "x".repeat(2 * 1024 * 1024)).await.0, 413);
    let (desk, _) = state.desk().await.unwrap();
    assert!(desk.list(&ops_core::ports::IncidentQuery { limit: 10, ..Default::default() }).await.unwrap().is_empty());

    // The alert fires in Alertmanager, which routes it to the webhook.
    let started = chrono::Utc::now();
    let alert = json!([{
        "labels": {"alertname": "IndexerLag", "service": "indexer", "severity": "critical", "runbook": "replay-events"},
        "annotations": {"summary": "the indexer lags 500 blocks behind"},
        "startsAt": started.to_rfc3339(),
    }]);
    let (code, body) = post(&client, &format!("{}/api/v2/alerts", am.url), None, alert.to_string()).await;
    assert_eq!(code, 200, "{body}");

    // While the runbook acts, the indexer's alerts are silenced in Alertmanager.
    let silences = format!("{}/api/v2/silences", am.url);
    let silence = eventually("a silence of the indexer during the run", Duration::from_secs(30), || {
        let (client, silences) = (client.clone(), silences.clone());
        async move {
            let list: Vec<Value> = client.get(&silences).send().await.ok()?.json().await.ok()?;
            list.into_iter().find(|s| {
                s["status"]["state"] == "active"
                    && s["matchers"]
                        .as_array()
                        .is_some_and(|m| m.iter().any(|m| m["name"] == "service" && m["value"] == "indexer"))
            })
        }
    })
    .await;
    assert_eq!(silence["createdBy"], "ops-server");
    assert!(silence["comment"].as_str().unwrap().contains("replay-events"), "{silence}");
    // It ran once, caught the indexer up, and the silence expired once it verified.
    let id = silence["id"].as_str().unwrap().to_owned();
    eventually("the silence expired after verification", Duration::from_secs(60), || {
        let (client, url) = (client.clone(), format!("{}/api/v2/silence/{id}", am.url));
        async move {
            let s: Value = client.get(&url).send().await.ok()?.json().await.ok()?;
            (s["status"]["state"] == "expired").then_some(())
        }
    })
    .await;
    assert_eq!(ix.replays.load(Ordering::SeqCst), 1);
    assert!(!ix.lagging.load(Ordering::SeqCst));

    // The incident of the group has the alert, the silence, the run and the silence's end.
    let incidents = desk.list(&ops_core::ports::IncidentQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(incidents.len(), 1, "one incident for the group: {incidents:?}");
    let record = eventually("the run on the incident", Duration::from_secs(30), || {
        let (desk, id) = (desk.clone(), incidents[0].id.clone());
        async move {
            let r = desk.load(&id).await.ok()?;
            r.events
                .iter()
                .any(|e| matches!(&e.kind, ops_incident::EventKind::Note { text, .. } if text.contains("expired")))
                .then_some(r)
        }
    })
    .await;
    let shown = serde_json::to_string(&record.events).unwrap();
    for needle in [
        "IndexerLag",
        "firing",
        "\"kind\":\"run\"",
        "replay-events",
        "succeeded",
        "silence",
        "expired: verification passed",
    ] {
        assert!(shown.contains(needle), "{needle}: {shown}");
    }
    assert_eq!(record.incident.severity, ops_core::Severity::P2);
    let audit = ops_core::audit::AuditLog::open(&dir.path().join("audit.jsonl")).unwrap().read().unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"silence") && actions.contains(&"unsilence"), "{actions:?}");

    // The same alert delivered again (Alertmanager resends): recorded as a duplicate, no run.
    let am_alerts: Vec<Value> =
        client.get(format!("{}/api/v2/alerts", am.url)).send().await.unwrap().json().await.unwrap();
    let fingerprint = am_alerts[0]["fingerprint"].as_str().unwrap().to_owned();
    let starts_at = am_alerts[0]["startsAt"].as_str().unwrap().to_owned();
    let again = webhook("firing", &fingerprint, "IndexerLag", &starts_at).to_string();
    let (code, body) = post(&client, &hook, Some(KEY), again).await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["new"].as_u64(), v["duplicates"].as_u64()), (Some(0), Some(1)), "{v}");
    // A resolved alert never acts, even one seen for the first time.
    ix.lagging.store(true, Ordering::SeqCst);
    let stall_start = chrono::Utc::now().to_rfc3339();
    let resolved = webhook("resolved", "00000000000000bb", "IndexerStall", &stall_start).to_string();
    let (code, body) = post(&client, &hook, Some(KEY), resolved).await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["acting"], json!([]), "{v}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ix.replays.load(Ordering::SeqCst), 1, "acted once in all");
    // The always-firing Watchdog is no incident.
    let watchdog = webhook("firing", "00000000000000cc", "Watchdog", &chrono::Utc::now().to_rfc3339());
    let (code, body) = post(&client, &hook, Some(KEY), watchdog.to_string()).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["ignored"], 1, "{body}");

    // Alertmanager resolves the alert: the group's incident resolves.
    let ended = json!([{
        "labels": {"alertname": "IndexerLag", "service": "indexer", "severity": "critical", "runbook": "replay-events"},
        "annotations": {"summary": "the indexer lags 500 blocks behind"},
        "startsAt": started.to_rfc3339(),
        "endsAt": chrono::Utc::now().to_rfc3339(),
    }]);
    let (code, body) = post(&client, &format!("{}/api/v2/alerts", am.url), None, ended.to_string()).await;
    assert_eq!(code, 200, "{body}");
    let open = desk.load(&incidents[0].id).await.unwrap().incident.status;
    assert_ne!(open, ops_incident::IncidentStatus::Resolved, "still firing in Alertmanager");
    eventually("the group's incident resolved", Duration::from_secs(30), || {
        let (desk, id) = (desk.clone(), incidents[0].id.clone());
        async move { (desk.load(&id).await.ok()?.incident.status == ops_incident::IncidentStatus::Resolved).then_some(()) }
    })
    .await;
    let closed = serde_json::to_string(&desk.load(&incidents[0].id).await.unwrap().events).unwrap();
    assert!(closed.contains("Alertmanager resolved every alert of its group"), "{closed}");
    let all = desk.list(&ops_core::ports::IncidentQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 1, "no incident for the Watchdog nor the duplicates: {all:?}");
    assert_eq!(ix.replays.load(Ordering::SeqCst), 1, "a resolution never acts");

    // A firing delivery that arrives after the same alert's resolution is stale: no run.
    let late = webhook("firing", "00000000000000bb", "IndexerStall", &stall_start).to_string();
    let (code, body) = post(&client, &hook, Some(KEY), late).await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["new"].as_u64(), v["duplicates"].as_u64(), &v["acting"]), (Some(0), Some(1), &json!([])), "{v}");

    // One notification carrying the same alert twice takes it once; two alerts asking the same
    // runbook for the same target start it once; their `priority` label is the severity.
    let mut batch = webhook("firing", "00000000000000d1", "IndexerLagAgain", &chrono::Utc::now().to_rfc3339());
    batch["alerts"][0]["labels"]["priority"] = json!("P1");
    let first = batch["alerts"][0].clone();
    let mut second = first.clone();
    second["fingerprint"] = json!("00000000000000d2");
    second["labels"]["pod"] = json!("indexer-2");
    batch["alerts"] = json!([first.clone(), first, second]);
    let (code, body) = post(&client, &hook, Some(KEY), batch.to_string()).await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["new"].as_u64(), v["duplicates"].as_u64()), (Some(2), Some(1)), "{v}");
    assert_eq!(v["acting"].as_array().map(Vec::len), Some(1), "{v}");
    let urgent = desk.load(v["incident"].as_str().unwrap()).await.unwrap();
    assert_eq!(urgent.incident.severity, ops_core::Severity::P1);
    // Neither fires in Alertmanager: the re-check before acting leaves them alone, and says so.
    let noted = eventually("the re-check on the incident", Duration::from_secs(30), || {
        let (desk, id) = (desk.clone(), urgent.incident.id.clone());
        async move {
            let r = desk.load(&id).await.ok()?;
            let shown = serde_json::to_string(&r.events).ok()?;
            shown.contains("no longer fires in Alertmanager").then_some(shown)
        }
    })
    .await;
    assert!(noted.contains("replay-events not run"), "{noted}");
    assert_eq!(ix.replays.load(Ordering::SeqCst), 1, "acted once in all");
}
