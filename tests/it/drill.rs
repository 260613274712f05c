//! DR drills in throwaway PostgreSQL containers and local clusters: a real backup passes; a
//! tampered one, a manifest that lies and a killed server fail with evidence; `auto` without
//! a container runtime uses a local cluster; the container or cluster never stays, also after
//! a timeout, a cancellation or a dropped future.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ops_backup::progress::{Progress, ProgressEvent};
use ops_backup::{BackupOptions, DrillBackend, DrillOptions, DrillReport, NoProgress, backup, dr_test};
use ops_core::adapters::local_cluster::ClusterInfo;
use ops_core::ports::ContainerRuntime;

use crate::backup::{Stack, stack};
use crate::harness::require_local_postgres;

fn opts(source: &str) -> DrillOptions {
    DrillOptions {
        source: source.to_owned(),
        image: Some("ops-test/postgres:15".to_owned()),
        timeout_secs: 300,
        // These drills read files of this host, as the command line may.
        allow_host_path: true,
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
    assert_eq!(r.data_sessions, ops_core::config::DEFAULT_RESTORE_JOBS, "{r:?}");
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

// ---------------------------------------------------------------------------------------------
// the local cluster (no container runtime)

fn local(source: &str) -> DrillOptions {
    DrillOptions { backend: DrillBackend::Local, image: None, ..opts(source) }
}

fn is_root() -> bool {
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0
}

/// Asserts a local cluster left nothing: its temporary directory is gone, its port refuses
/// connections, and no process runs in the directory or with it on its command line
/// (PostgreSQL processes run in their data directory).
fn assert_cluster_gone(data_dir: &str, port: u16) {
    let root = Path::new(data_dir).parent().expect("the data directory is inside the temporary directory");
    assert!(root.file_name().unwrap().to_string_lossy().starts_with("ops-drill-"), "{}", root.display());
    assert!(!root.exists(), "the drill cluster's directory {} is still there", root.display());
    if port != 0 {
        assert!(
            std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).is_err(),
            "something still accepts connections on the drill cluster's port {port}"
        );
    }
    let root = root.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let cwd = std::fs::read_link(entry.path().join("cwd")).map(|p| p.display().to_string()).unwrap_or_default();
        assert!(
            !cmdline.contains(&root) && !cwd.starts_with(&root),
            "process {:?} still runs in the drill cluster: {cmdline} (in {cwd})",
            entry.file_name()
        );
    }
}

fn cluster_of(r: &DrillReport) -> &ClusterInfo {
    r.cluster.as_ref().unwrap_or_else(|| panic!("the report names its local cluster: {r:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_local_passes_on_a_real_backup() {
    require_local_postgres();
    let s = stack(2000).await;
    let b = backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    // The drill loads the data over the database's own `restore-jobs` (three tables, three
    // sessions), like a real restore would.
    let mut config = (*s.ctx.config).clone();
    config.databases.get_mut("main").unwrap().restore_jobs = 3;
    let ctx = ops_core::Context::from_config(config).unwrap();
    let r = dr_test(&ctx, &local("latest"), &NoProgress, never()).await.unwrap();
    assert!(r.passed, "{r:?}");
    assert_eq!(r.data_sessions, 3, "{r:?}");
    assert_eq!(r.backend, DrillBackend::Local);
    assert_eq!(r.backup_id.as_deref(), Some(b.id.as_str()));
    assert!(r.container.is_none());
    assert!(r.image.starts_with("local:"), "{}", r.image);
    let c = cluster_of(&r);
    assert!(c.version.starts_with("PostgreSQL 15."), "{c:?}");
    assert!(c.port > 0, "{c:?}");
    assert_eq!(c.run_as.is_some(), is_root(), "root runs the cluster as an unprivileged user: {c:?}");
    let check = r.check.as_ref().unwrap();
    assert!(check.tables.iter().any(|t| t.table == "public.trades" && t.exact && t.found == Some(2000)), "{check:?}");
    assert!(check.tables.iter().any(|t| t.table == "public.events" && t.found == Some(20000)), "{check:?}");
    assert!(r.rto_seconds > 0.0 && r.rto_seconds >= r.restore_seconds && r.restore_seconds > 0.0);
    assert!(r.notifications.iter().all(|n| n.delivered));
    assert_cluster_gone(&c.data_dir, c.port);
    // An image means a container: refused with the local backend, before anything starts.
    let with_image = DrillOptions { image: Some("ops-test/postgres:15".to_owned()), ..local("latest") };
    let e = dr_test(&s.ctx, &with_image, &NoProgress, never()).await.unwrap_err();
    assert_eq!(e.kind(), ops_core::ErrorKind::InvalidInput, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_local_fails_on_a_tampered_backup_with_evidence() {
    require_local_postgres();
    let s = stack(500).await;
    let b = backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let dump = s.local.path().join(&b.manifest.dump_key);
    let intact = std::fs::read(&dump).unwrap();

    // A flipped byte: the checksum fails in the restore pass, nothing is proven.
    let mut bytes = intact.clone();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x04;
    std::fs::write(&dump, &bytes).unwrap();
    let r = dr_test(&s.ctx, &local(dump.to_str().unwrap()), &NoProgress, never()).await.unwrap();
    assert!(!r.passed);
    assert_eq!(r.backend, DrillBackend::Local);
    assert!(r.problems.iter().any(|p| p.contains("sha256 mismatch")), "{:?}", r.problems);
    assert!(r.check.is_none(), "nothing was proven from a corrupt dump");
    assert_cluster_gone(&cluster_of(&r).data_dir, cluster_of(&r).port);

    // Intact dump, a manifest that lies about one table: table-by-table evidence.
    std::fs::write(&dump, &intact).unwrap();
    let mpath = s.local.path().join(b.id.manifest_key());
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    for t in manifest["tables"].as_array_mut().unwrap() {
        if t["name"] == "trades" {
            t["rows"] = serde_json::json!(501);
        }
    }
    std::fs::write(&mpath, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let r = dr_test(&s.ctx, &local(dump.to_str().unwrap()), &NoProgress, never()).await.unwrap();
    assert!(!r.passed);
    let check = r.check.as_ref().expect("the restore ran and was checked");
    assert!(!check.ok);
    let trades = check.tables.iter().find(|t| t.table == "public.trades").unwrap();
    assert_eq!((trades.expected, trades.found, trades.ok), (Some(501), Some(500), false));
    let events = check.tables.iter().find(|t| t.table == "public.events").unwrap();
    assert_eq!((events.expected, events.found, events.ok), (Some(20000), Some(20000), true));
    assert!(r.problems.iter().any(|p| p.contains("public.trades: expected 501 rows, found 500")), "{:?}", r.problems);
    assert_cluster_gone(&cluster_of(&r).data_dir, cluster_of(&r).port);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_auto_picks_the_local_cluster_without_a_container_runtime() {
    require_local_postgres();
    let s = stack(300).await;
    backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let auto = DrillOptions { backend: DrillBackend::Auto, ..opts("latest") };

    // No container runtime in the context at all.
    let mut ctx = s.ctx.clone();
    ctx.containers = None;
    let r = dr_test(&ctx, &auto, &NoProgress, never()).await.unwrap();
    assert!(r.passed, "{r:?}");
    assert_eq!(r.backend, DrillBackend::Local);
    assert!(r.container.is_none());
    let note = r.backend_note.as_deref().unwrap_or_default();
    assert!(note.contains("no container runtime"), "{note}");
    assert_cluster_gone(&cluster_of(&r).data_dir, cluster_of(&r).port);

    // A configured runtime that does not answer.
    let mut ctx = s.ctx.clone();
    ctx.containers = Some(Arc::new(ops_core::adapters::docker::DockerRuntime::new(
        Some("unix:///nonexistent/docker.sock"),
        Duration::from_secs(2),
    )));
    let r = dr_test(&ctx, &auto, &NoProgress, never()).await.unwrap();
    assert!(r.passed, "{r:?}");
    assert_eq!(r.backend, DrillBackend::Local);
    let note = r.backend_note.as_deref().unwrap_or_default();
    assert!(note.contains("did not answer"), "{note}");
    assert_cluster_gone(&cluster_of(&r).data_dir, cluster_of(&r).port);

    // A runtime that answers: the container.
    let r = dr_test(&s.ctx, &auto, &NoProgress, never()).await.unwrap();
    assert!(r.passed, "{r:?}");
    assert_eq!(r.backend, DrillBackend::Container);
    assert!(r.cluster.is_none() && r.backend_note.is_none());
    assert_removed(&s, &r).await;
}

/// Sends on `tx` when the restore starts, and remembers the cluster the drill announced.
struct AtRestore {
    tx: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    cluster: std::sync::Mutex<Option<(String, u16)>>,
}

impl AtRestore {
    fn new() -> (Self, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Self { tx: std::sync::Mutex::new(Some(tx)), cluster: std::sync::Mutex::new(None) }, rx)
    }

    fn cluster(&self) -> (String, u16) {
        self.cluster.lock().unwrap().clone().expect("the drill announced its cluster")
    }
}

impl Progress for AtRestore {
    fn event(&self, event: ProgressEvent) {
        match &event {
            // "drill cluster DATA_DIR on 127.0.0.1:PORT"
            ProgressEvent::Note { message } if message.starts_with("drill cluster ") => {
                let (dir, port) = message["drill cluster ".len()..].rsplit_once(" on 127.0.0.1:").unwrap();
                *self.cluster.lock().unwrap() = Some((dir.to_owned(), port.parse().unwrap()));
            }
            ProgressEvent::Phase { name } if name == "restore" => {
                if let Some(tx) = self.tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_local_interrupted_mid_restore_cleans_up() {
    require_local_postgres();
    let s = stack(5000).await;
    backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let (progress, rx) = AtRestore::new();
    let cancel = Box::pin(async move {
        let _ = rx.await;
    });
    let r = dr_test(&s.ctx, &local("latest"), &progress, cancel).await.unwrap();
    assert!(!r.passed);
    assert!(r.problems.iter().any(|p| p.contains("interrupted")), "{:?}", r.problems);
    assert!(r.check.is_none(), "{r:?}");
    let (dir, port) = progress.cluster();
    assert_eq!((cluster_of(&r).data_dir.as_str(), cluster_of(&r).port), (dir.as_str(), port));
    assert_cluster_gone(&dir, port);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_local_dropped_mid_restore_cleans_up() {
    require_local_postgres();
    let s = stack(5000).await;
    backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let (progress, rx) = AtRestore::new();
    // The caller gives up on the future itself (an aborted job, a runtime shutting down): the
    // cluster's guard stops it and removes its directory synchronously.
    let o = local("latest");
    tokio::select! {
        r = dr_test(&s.ctx, &o, &progress, never()) => panic!("the drill finished first: {r:?}"),
        _ = rx => {}
    }
    let (dir, port) = progress.cluster();
    assert_cluster_gone(&dir, port);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_local_timeout_cleans_up() {
    require_local_postgres();
    // About 70 MB of SQL: one second is not enough for initdb, start and restore, so the drill
    // times out part-way (where exactly varies: in initdb, in pg_ctl start, or in the restore).
    let s = stack(40_000).await;
    backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let r = dr_test(&s.ctx, &DrillOptions { timeout_secs: 1, ..local("latest") }, &NoProgress, never()).await.unwrap();
    assert!(!r.passed);
    assert!(r.problems.iter().any(|p| p.contains("timed out")), "{:?}", r.problems);
    assert!(!r.problems.iter().any(|p| p.contains("could not")), "cleanup problems: {:?}", r.problems);
    assert_cluster_gone(&cluster_of(&r).data_dir, cluster_of(&r).port);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_local_through_the_api_as_a_job() {
    use tower::ServiceExt;
    require_local_postgres();
    let s = stack(300).await;
    backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let mut config = (*s.ctx.config).clone();
    config.server.admin_keys = vec![ops_core::Secret::new("k-admin")];
    // A second database that sorts before `main`: the drill of the default database is
    // `main`'s, and its metrics say so (they once took the alphabetically first name).
    let analytics = config.databases["main"].clone();
    config.databases.insert("analytics".to_owned(), analytics);
    let state = ops_server::AppState::from_config(config, None, std::collections::BTreeMap::new());
    let call = |method: &str, uri: &str, body: Option<serde_json::Value>| {
        let req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", "Bearer k-admin")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
            .unwrap();
        let state = state.clone();
        async move {
            let resp = ops_server::app(state).oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
            (status, serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or(serde_json::Value::Null))
        }
    };
    let (status, body) = call("POST", "/api/v1/dr-tests", Some(serde_json::json!({"backend": "vm"}))).await;
    assert!(status.is_client_error(), "{status} {body}");
    let (status, started) =
        call("POST", "/api/v1/dr-tests", Some(serde_json::json!({"backend": "local", "timeout-secs": 300}))).await;
    assert_eq!(status, http::StatusCode::ACCEPTED, "{started}");
    let job = started["job"].as_str().unwrap().to_owned();
    let done = crate::harness::eventually("the drill job", Duration::from_secs(120), || {
        let uri = format!("/api/v1/jobs/{job}");
        let call = &call;
        async move {
            let (_, j) = call("GET", &uri, None).await;
            (j["status"] != "running" && j["status"] != "queued").then_some(j)
        }
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let report = &done["report"];
    assert_eq!(report["backend"], "local", "{report}");
    assert_eq!(report["passed"], true, "{report}");
    assert_cluster_gone(
        report["cluster"]["data_dir"].as_str().unwrap(),
        report["cluster"]["port"].as_u64().unwrap() as u16,
    );
    let metrics = state.metrics.encode();
    assert!(metrics.contains("dr_test_success{database=\"main\"} 1"), "{metrics}");
    assert!(!metrics.contains("dr_test_success{database=\"analytics\"}"), "{metrics}");
}

/// The runbooks' setup: tables owned by the application's role, a read-only role granted on
/// them. The dump's `OWNER TO` and `GRANT … TO` name roles the throwaway server does not have
/// until the drill creates them from the live server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_restores_a_database_owned_by_an_application_role() {
    require_local_postgres();
    let s = stack(300).await;
    crate::backup::psql(
        &s.rt,
        &s.pg,
        "app",
        "CREATE ROLE indexer LOGIN PASSWORD 'x'; CREATE ROLE \"read only\" NOLOGIN;
         CREATE TABLE ledger (id int PRIMARY KEY, note text); INSERT INTO ledger SELECT g, 'n' FROM generate_series(1, 50) g;
         ALTER TABLE ledger OWNER TO indexer; ALTER TABLE trades OWNER TO indexer;
         GRANT SELECT ON ledger TO \"read only\";",
    )
    .await;
    backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    for opts in [local("latest"), opts("latest")] {
        let r = dr_test(&s.ctx, &opts, &NoProgress, never()).await.unwrap();
        assert!(r.passed, "{:?}: {:?}", r.backend, r.problems);
        let check = r.check.as_ref().unwrap();
        assert!(check.tables.iter().any(|t| t.table == "public.ledger" && t.found == Some(50)), "{check:?}");
    }
}
