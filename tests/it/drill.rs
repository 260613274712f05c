//! DR drills in throwaway PostgreSQL containers: a real backup passes; a tampered one, a
//! manifest that lies and a killed server fail with evidence; the container never stays.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ops_backup::progress::{Progress, ProgressEvent};
use ops_backup::{BackupOptions, DrillOptions, NoProgress, backup, dr_test};
use ops_core::ports::ContainerRuntime;

use crate::backup::{Stack, stack};

fn opts(source: &str) -> DrillOptions {
    DrillOptions {
        source: source.to_owned(),
        image: Some("ops-test/postgres:15".to_owned()),
        timeout_secs: 300,
        ..Default::default()
    }
}

fn never() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(std::future::pending())
}

/// Asserts the drill's own container is gone (other tests run drills at the same time).
async fn assert_removed(s: &Stack, r: &ops_backup::DrillReport) {
    if let Some(id) = &r.container {
        let e = s.rt.inspect(id).await.expect_err("the throwaway server is gone");
        assert_eq!(e.kind(), ops_core::ErrorKind::NotFound, "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_passes_on_a_real_backup_and_measures_rto_and_rpo() {
    let s = stack(2000).await;
    let b = backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let r = dr_test(&s.ctx, &opts("latest"), &NoProgress, never()).await.unwrap();
    assert!(r.passed, "{r:?}");
    assert_eq!(r.backup_id.as_deref(), Some(b.id.as_str()));
    let check = r.check.as_ref().unwrap();
    assert!(check.tables.iter().any(|t| t.table == "public.trades" && t.exact && t.found == Some(2000)), "{check:?}");
    assert!(r.rto_seconds > 0.0 && r.rto_seconds >= r.restore_seconds);
    assert!(r.backup_age_seconds.unwrap() < 600.0);
    assert!(r.notifications.iter().all(|n| n.delivered));
    assert!(r.container.is_some());
    assert_removed(&s, &r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_fails_on_a_tampered_backup_with_evidence() {
    let s = stack(500).await;
    let b = backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    // The local copy: a flipped byte.
    let path = s.local.path().join(&b.manifest.dump_key);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x04;
    std::fs::write(&path, bytes).unwrap();
    let r = dr_test(&s.ctx, &opts(path.to_str().unwrap()), &NoProgress, never()).await.unwrap();
    assert!(!r.passed);
    assert!(r.problems.iter().any(|p| p.contains("sha256 mismatch")), "{:?}", r.problems);
    assert!(r.check.is_none(), "nothing was restored from a corrupt dump");

    // A manifest that no longer matches the dump: table-by-table evidence.
    let mpath = s.local.path().join(b.id.manifest_key());
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    for t in manifest["tables"].as_array_mut().unwrap() {
        if t["name"] == "trades" {
            t["rows"] = serde_json::json!(501);
        }
    }
    std::fs::write(&mpath, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let s3 = s.ctx.storage.as_ref().unwrap();
    let r = dr_test(&s.ctx, &opts(&format!("{}/{}", s3.location(), b.manifest.dump_key)), &NoProgress, never())
        .await
        .unwrap();
    assert!(r.passed, "the S3 copy with its own manifest is fine: {:?}", r.problems);
    let dump = s.local.path().join(&b.manifest.dump_key);
    std::fs::write(&dump, {
        // Put the intact bytes back from S3 so only the manifest lies.
        let mut v = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut s3.get(&b.manifest.dump_key).await.unwrap(), &mut v).await.unwrap();
        v
    })
    .unwrap();
    let mut m: ops_backup::manifest::Manifest = serde_json::from_value(manifest).unwrap();
    m.sha256 = b.manifest.sha256.clone();
    std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    let r = dr_test(&s.ctx, &opts(dump.to_str().unwrap()), &NoProgress, never()).await.unwrap();
    assert!(!r.passed);
    let check = r.check.as_ref().unwrap();
    let trades = check.tables.iter().find(|t| t.table == "public.trades").unwrap();
    assert_eq!((trades.expected, trades.found, trades.ok), (Some(501), Some(500), false));
    assert!(r.problems.iter().any(|p| p.contains("public.trades: expected 501 rows, found 500")), "{:?}", r.problems);
    assert_removed(&s, &r).await;
}

/// Kills the drill's own server as soon as the restore starts.
struct KillServer {
    fired: AtomicBool,
    id: std::sync::Mutex<Option<String>>,
}

impl Progress for KillServer {
    fn event(&self, event: ProgressEvent) {
        match &event {
            ProgressEvent::Note { message } if message.starts_with("drill server ") => {
                *self.id.lock().unwrap() = message.split(' ').nth(2).map(str::to_owned);
            }
            ProgressEvent::Phase { name } if name == "restore" && !self.fired.swap(true, Ordering::SeqCst) => {
                let id = self.id.lock().unwrap().clone().expect("the drill announced its server");
                let _ = std::process::Command::new("docker").args(["kill", &id]).status();
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_whose_server_is_killed_fails_and_cleans_up() {
    let s = stack(5000).await;
    backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let progress = Arc::new(KillServer { fired: AtomicBool::new(false), id: std::sync::Mutex::new(None) });
    let r = dr_test(&s.ctx, &opts("latest"), progress.as_ref(), never()).await.unwrap();
    assert!(progress.fired.load(Ordering::SeqCst));
    assert!(!r.passed);
    assert!(!r.problems.is_empty(), "{r:?}");
    assert_removed(&s, &r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_interrupted_cleans_up() {
    let s = stack(500).await;
    backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    struct OnStart(std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>);
    impl Progress for OnStart {
        fn event(&self, event: ProgressEvent) {
            if matches!(&event, ProgressEvent::Phase { name } if name == "restore")
                && let Some(tx) = self.0.lock().unwrap().take()
            {
                let _ = tx.send(());
            }
        }
    }
    let progress = OnStart(std::sync::Mutex::new(Some(tx)));
    let cancel = Box::pin(async move {
        let _ = rx.await;
    });
    let r = dr_test(&s.ctx, &opts("latest"), &progress, cancel).await.unwrap();
    assert!(!r.passed);
    assert!(r.problems.iter().any(|p| p.contains("interrupted")), "{:?}", r.problems);
    assert_removed(&s, &r).await;
}
