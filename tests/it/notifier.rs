//! Notifier contract against a local HTTP receiver.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use ops_core::adapters::webhook::{WebhookNotifier, WebhookOptions};
use ops_core::ports::{Notification, NotificationLevel, Notifier};
use ops_core::{ErrorKind, WebhookUrl};

/// A receiver that answers each request with the next scripted status (the last one repeats).
#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Vec<u16>>,
    seen: Arc<Mutex<Vec<serde_json::Value>>>,
}

async fn receive(State(r): State<Receiver>, Json(body): Json<serde_json::Value>) -> StatusCode {
    let n = {
        let mut seen = r.seen.lock().unwrap();
        seen.push(body);
        seen.len()
    };
    let code = r.script.get(n - 1).or(r.script.last()).copied().unwrap_or(200);
    StatusCode::from_u16(code).unwrap()
}

async fn start(script: &[u16]) -> (Receiver, String) {
    let r = Receiver { script: Arc::new(script.to_vec()), seen: Arc::default() };
    let app = axum::Router::new().route("/services/T000/B000/hooktoken", post(receive)).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, format!("http://{addr}/services/T000/B000/hooktoken"))
}

fn notifier(url: &str, retries: u32) -> WebhookNotifier {
    let mut o = WebhookOptions::new(WebhookUrl::new(url));
    o.retries = retries;
    o.backoff = Duration::from_millis(20);
    o.timeout = Duration::from_secs(5);
    WebhookNotifier::new(o).unwrap()
}

fn message() -> Notification {
    Notification {
        title: "backup of main succeeded".into(),
        text: "12.3 MiB in 4 s".into(),
        level: NotificationLevel::Info,
        fields: BTreeMap::from([("database".into(), "main".into()), ("size_bytes".into(), "12897484".into())]),
    }
}

#[tokio::test]
async fn webhook_delivers_slack_compatible_json() {
    let (r, url) = start(&[200]).await;
    let d = notifier(&url, 3).notify(&message()).await.unwrap();
    assert_eq!((d.attempts, d.status), (1, 200));
    let seen = r.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let text = seen[0]["text"].as_str().unwrap();
    assert!(text.contains("backup of main succeeded") && text.contains("database: main"), "{text}");
    assert_eq!(seen[0]["fields"]["size_bytes"], "12897484");
    assert_eq!(seen[0]["level"], "info");
}

#[tokio::test]
async fn webhook_retries_a_receiver_that_fails_twice() {
    let (r, url) = start(&[503, 500, 200]).await;
    let d = notifier(&url, 3).notify(&message()).await.unwrap();
    assert_eq!(d.attempts, 3);
    assert_eq!(r.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn webhook_gives_up_after_the_last_retry() {
    let (r, url) = start(&[503]).await;
    let e = notifier(&url, 2).notify(&message()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert_eq!(r.seen.lock().unwrap().len(), 3, "one try and two retries");
}

#[tokio::test]
async fn webhook_does_not_retry_a_rejected_request() {
    let (r, url) = start(&[400]).await;
    let e = notifier(&url, 3).notify(&message()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(r.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn webhook_errors_never_show_the_url_token() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}/services/T000/B000/hooktoken");
    let n = notifier(&url, 1);
    let e = n.notify(&message()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let shown = format!("{e} {e:?} {n:?} {}", n.target());
    assert!(!shown.contains("hooktoken"), "{shown}");
}
