//! "Nothing lost, nobody in", from the outside: numbers a caller gives, bursts of reads,
//! slow and idle sockets, floods of jobs, a stop in the middle of a backup, file modes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use ops_backup::progress::{Progress, ProgressEvent};
use ops_backup::{BackupOptions, backup};
use ops_core::config::{DatabaseConfig, OpsConfig, StorageConfig};
use ops_core::ports::{ContainerRuntime, ObjectStore};
use ops_core::{ErrorKind, Secret, SecretUrl};

use crate::backup::stack;
use crate::harness::{postgres, require_docker};

const READ: &str = "read-key-0123456789abcdef";
const ADMIN: &str = "admin-key-0123456789abcdef";

async fn call(state: &Arc<ops_server::AppState>, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let key = if method == "GET" { READ } else { ADMIN };
    crate::harness::api_call(state, method, uri, key, body).await
}

fn with_keys(mut config: OpsConfig) -> OpsConfig {
    config.server.api_keys = vec![Secret::new(READ)];
    config.server.admin_keys = vec![Secret::new(ADMIN)];
    config
}

fn opsctl(args: &[&str]) -> (u8, String, String) {
    let mut argv = vec!["opsctl"];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = ops_cli::run(argv, &BTreeMap::new(), &mut out, &mut err);
    (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

#[tokio::test]
async fn safety_numbers_from_callers_are_bounded() {
    let mut config = OpsConfig::default();
    config.databases.insert(
        "main".to_owned(),
        DatabaseConfig { url: SecretUrl::new("postgres://u:p@127.0.0.1:1/app"), ..Default::default() },
    );
    let state = ops_server::AppState::from_config(with_keys(config), None, BTreeMap::new());
    for samples in ["1000000000000", "18446744073709551615", "0"] {
        let (status, body) = call(&state, "GET", &format!("/api/v1/perf?section=http&samples={samples}"), "").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "samples={samples}: {body}");
        assert!(body.contains("samples must be between 1 and 1000"), "{body}");
    }
    let (status, _) = call(&state, "GET", "/api/v1/perf?samples=99999999999999999999999", "").await;
    assert!(status.is_client_error(), "{status}");
    let huge = u64::MAX;
    for (uri, body) in [
        ("/api/v1/restores", format!(r#"{{"health-timeout-secs": {huge}, "confirm": true}}"#)),
        ("/api/v1/dr-tests", format!(r#"{{"timeout-secs": {huge}}}"#)),
        ("/api/v1/dr-tests", format!(r#"{{"rpo-target-secs": {huge}}}"#)),
        ("/api/v1/backups", r#"{"threads": 1000000}"#.to_owned()),
        ("/api/v1/backups", r#"{"level": 99}"#.to_owned()),
        ("/api/v1/backups", r#"{"prefix": "../../etc"}"#.to_owned()),
        ("/api/v1/actions", format!(r#"{{"action": "kill-idle", "older-than-secs": {huge}}}"#)),
        ("/api/v1/actions", r#"{"action": "terminate", "pid": 1, "bogus": true}"#.to_owned()),
    ] {
        let (status, answer) = call(&state, "POST", uri, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri} {body}: {answer}");
    }
    // The command line refuses them as usage errors, never a panic (101).
    for args in [
        &["triage", "--timeout", "18446744073709551615"][..],
        &["triage", "--watch", "18446744073709551615"],
        &["perf", "analyze", "--samples", "1000000000000"],
        &["pg", "kill-idle", "--older-than", "18446744073709551615d"],
        &["dr-test", "--timeout", "18446744073709551615"],
        &["restore", "--health-timeout", "18446744073709551615"],
        &["probe", "tcp", "127.0.0.1:1", "--timeout", "0"],
    ] {
        let (code, _, err) = opsctl(args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_a_burst_of_perf_reads_costs_the_database_one_analysis() {
    let rt = require_docker().await;
    let pg = postgres(&[]).await;
    let mut config = OpsConfig::default();
    config.databases.insert(
        "main".to_owned(),
        DatabaseConfig { url: SecretUrl::new(pg.url("postgres", "postgres", "app")), ..Default::default() },
    );
    // The rate limit is what a real burst meets first; lifted here to reach the analysis.
    config.server.rate_limit_per_second = Some(100_000);
    let state = ops_server::AppState::from_config(with_keys(config), None, BTreeMap::new());
    let watcher_db = ops_core::adapters::postgres::PostgresDatabase::new(
        ops_core::adapters::postgres::PostgresOptions::new(SecretUrl::new(pg.url("postgres", "postgres", "postgres"))),
    )
    .unwrap();
    let before = ops_core::ports::Database::connections(&watcher_db).await.unwrap().total;
    let peak = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        tokio::spawn(async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(c) = ops_core::ports::Database::connections(&watcher_db).await {
                    peak.fetch_max(c.total, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let requests = (0..600).map(|_| call(&state, "GET", "/api/v1/perf?section=pg", ""));
    let answers = futures::future::join_all(requests).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    watcher.await.unwrap();
    assert!(
        answers.iter().all(|(s, _)| *s == StatusCode::OK),
        "{:?}",
        answers.iter().find(|(s, _)| *s != StatusCode::OK)
    );
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    // The cap: one analysis connection plus the adapter's pools (two each).
    assert!(peak <= before + 5, "{peak} connections during 600 reads ({before} before)");
    drop(rt);

    // A key over its rate is refused with 429 and Retry-After (1 a second, bursts of 2).
    let mut config = (*state.running().config).clone();
    config.server.rate_limit_per_second = Some(1);
    let limited = ops_server::AppState::from_config(config, None, BTreeMap::new());
    let answers = futures::future::join_all((0..100).map(|_| call(&limited, "GET", "/api/v1/config", ""))).await;
    let refused = answers.iter().filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS).count();
    assert!(refused >= 90, "{refused} of 100 refused");
    assert!(answers.iter().any(|(_, b)| b.contains("retry_after_secs")));
    assert!(limited.metrics.encode().contains("ops_api_rate_limited_total"), "{}", limited.metrics.encode());
}

/// A server on a real socket, with a short header deadline.
async fn listening(max_connections: usize) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let state = ops_server::AppState::from_config(with_keys(OpsConfig::default()), None, BTreeMap::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let opts = ops_server::serve::ServeOptions {
        max_connections,
        header_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    tokio::spawn(ops_server::serve::serve_on(listener, state, opts, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// `GET /health/live` on a new connection: the status line, and how long it took.
fn live(addr: std::net::SocketAddr) -> (String, Duration) {
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    (text.lines().next().unwrap_or_default().to_owned(), t.elapsed())
}

/// Whether the server closed `s` within `limit`.
fn closed_within(s: &mut std::net::TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_slow_and_idle_sockets_do_not_hold_the_server() {
    let (addr, _stop) = listening(512).await;
    tokio::task::spawn_blocking(move || {
        // 300 sockets that never send anything: the server still answers at once.
        let mut idle: Vec<std::net::TcpStream> =
            (0..300).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        let (status, took) = live(addr);
        assert!(status.contains("200"), "{status}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        // …and closes them at the header deadline.
        assert!(closed_within(&mut idle[0], Duration::from_secs(4)), "an idle socket stays open");
        assert!(closed_within(&mut idle[299], Duration::from_secs(4)), "an idle socket stays open");
        // Headers dripped a byte at a time are cut off, not waited for.
        let mut slow = std::net::TcpStream::connect(addr).unwrap();
        let started = Instant::now();
        let request = b"GET /health/live HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        let mut cut = false;
        for b in request {
            if slow.write_all(&[*b]).is_err() {
                cut = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            if started.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        assert!(cut || closed_within(&mut slow, Duration::from_secs(2)), "a dripping client is still served");
        assert!(started.elapsed() < Duration::from_secs(6));
        // A kept-alive connection left idle after a request is closed too.
        let mut kept = std::net::TcpStream::connect(addr).unwrap();
        kept.write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
        assert!(closed_within(&mut kept, Duration::from_secs(4)), "an idle kept-alive connection stays open");
    })
    .await
    .unwrap();
    // Past the cap, new connections wait instead of taking memory, and are served as soon as
    // the idle ones are closed.
    let (addr, _stop) = listening(8).await;
    tokio::task::spawn_blocking(move || {
        let _idle: Vec<std::net::TcpStream> = (0..20).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        let (status, took) = live(addr);
        assert!(status.contains("200"), "{status}");
        assert!(took < Duration::from_secs(8), "{took:?}");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn safety_non_loopback_listen_needs_tls_or_an_explicit_flag() {
    let any: std::net::SocketAddr = "0.0.0.0:9187".parse().unwrap();
    let e = ops_server::serve::check_listen(any, false, false).unwrap_err();
    assert!(e.to_string().contains("tls-cert"), "{e}");
    assert!(ops_server::serve::check_listen(any, true, false).is_ok());
    assert!(ops_server::serve::check_listen(any, false, true).is_ok());
    assert!(ops_server::serve::check_listen("127.0.0.1:9187".parse().unwrap(), false, false).is_ok());
    assert!(ops_server::serve::check_listen("[::1]:9187".parse().unwrap(), false, false).is_ok());
}

/// Cancels a backup at its first bytes.
struct StopOnFirstBytes(std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>);

impl Progress for StopOnFirstBytes {
    fn event(&self, e: ProgressEvent) {
        if matches!(e, ProgressEvent::Bytes { .. })
            && let Some(tx) = self.0.lock().unwrap().take()
        {
            let _ = tx.send(());
        }
    }
}

fn leftovers(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ops-tmp"))
        .collect()
}

/// Freezes a container (`docker pause`) at the backup's first bytes, before the pipeline goes
/// on, then lets the stop fire.
struct FreezeOnFirstBytes {
    rt: ops_core::adapters::docker::DockerRuntime,
    container: String,
    stop: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Progress for FreezeOnFirstBytes {
    fn event(&self, e: ProgressEvent) {
        if matches!(e, ProgressEvent::Bytes { .. })
            && let Some(tx) = self.stop.lock().unwrap().take()
        {
            let paused = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(self.rt.pause(&self.container))
            });
            paused.unwrap();
            let _ = tx.send(());
        }
    }
}

/// A stop while the S3 server has stopped answering (its container frozen mid-upload): the
/// backup ends within its grace periods, not at the S3 client's read timeout (120 s), names
/// the destination it abandoned, and keeps nothing at the dump's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_a_stop_while_a_destination_hangs_ends_promptly() {
    // About 15 MB compressed, more than one 8 MiB part: the upload needs the frozen server.
    let s = stack(20_000).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let progress = FreezeOnFirstBytes {
        rt: crate::harness::require_docker().await,
        container: s.s3_id.clone(),
        stop: std::sync::Mutex::new(Some(tx)),
    };
    let cancel = Box::pin(async move {
        let _ = rx.await;
        // Long enough for the upload to be waiting on the frozen server.
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let started = Instant::now();
    let e = ops_backup::backup_until(&s.ctx, &BackupOptions::default(), &progress, cancel).await.unwrap_err();
    let took = started.elapsed();
    s.rt.unpause(&s.s3_id).await.unwrap();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains("interrupted") && e.message().contains("abandoned"), "{e}");
    assert!(e.message().contains("s3://backups/daily"), "names the destination: {e}");
    assert!(!e.message().contains(&format!("file://{}", s.local.path().display())), "only the one that hung: {e}");
    assert!(!e.message().contains(&s.ctx.config.databases["main"].url.expose().to_string()), "{e}");
    // 2 s before the stop, 10 s for the destinations, 10 s to remove what reached the key,
    // 10 s for the failure records.
    assert!(took < Duration::from_secs(50), "took {took:?}");
    // The destination that answered kept nothing partial and has the failure record.
    assert!(leftovers(s.local.path()).is_empty(), "{:?}", leftovers(s.local.path()));
    let names: Vec<String> = std::fs::read_dir(s.local.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.ends_with(".failed.json")), "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with(".sql.gz")), "{names:?}");
    let listed = ops_backup::list(&s.ctx).await.unwrap();
    assert!(listed.iter().all(|b| !b.complete), "nothing looks complete: {listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_a_stop_mid_backup_fails_it_cleanly() {
    let s = stack(20_000).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let progress = StopOnFirstBytes(std::sync::Mutex::new(Some(tx)));
    let cancel = Box::pin(async move {
        let _ = rx.await;
    });
    let e = ops_backup::backup_until(&s.ctx, &BackupOptions::default(), &progress, cancel).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains("interrupted"), "{e}");
    // Nothing partial is left: no temp file, no unfinished multipart upload, no dump.
    assert!(leftovers(s.local.path()).is_empty(), "{:?}", leftovers(s.local.path()));
    // s3s-fs cannot list multipart uploads; it keeps them as /data/.upload* files.
    let cmd = ["find", "/data", "-name", ".upload*"].map(str::to_owned).to_vec();
    let out = s.rt.exec(&s.s3_id, &ops_core::ports::ExecSpec { cmd, ..Default::default() }).await.unwrap();
    assert_eq!(out.stdout.trim(), "", "an unfinished multipart upload is left");
    let listed = ops_backup::list(&s.ctx).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].failed && !listed[0].complete, "a failure record, nothing that looks complete");
    assert!(listed[0].copies.iter().all(|c| c.dump_key.is_none() && c.failure.is_some()));
    let hooks = s.hooks.0.lock().unwrap().clone();
    assert!(hooks.len() == 1 && hooks[0]["text"].as_str().unwrap().contains("FAILED"), "{hooks:?}");

    // The same through opsctl and a real SIGTERM to this process.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ops.toml");
    let local = dir.path().join("backups");
    std::fs::write(
        &config,
        format!(
            "[databases.main]\nurl = \"{}\"\n[storage]\nurl = \"{}\"\n",
            s.pg.url("postgres", "postgres", "app"),
            local.display()
        ),
    )
    .unwrap();
    let path = config.display().to_string();
    let run = std::thread::spawn(move || opsctl(&["--config", &path, "backup", "run"]));
    let local_dir = local.clone();
    crate::harness::eventually("the backup to start writing", Duration::from_secs(60), || {
        let found = local_dir.exists() && !leftovers(&local_dir).is_empty();
        async move { found.then_some(()) }
    })
    .await;
    let status = std::process::Command::new("kill").args(["-TERM", &std::process::id().to_string()]).status().unwrap();
    assert!(status.success());
    let (code, _, err) = run.join().unwrap();
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(leftovers(&local).is_empty(), "{:?}", leftovers(&local));
    let names: Vec<String> =
        std::fs::read_dir(&local).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().any(|n| n.ends_with(".failed.json")), "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with(".sql.gz")), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_jobs_are_bounded_and_a_refusal_notifies_nobody() {
    let s = stack(200).await;
    backup(&s.ctx, &BackupOptions::default(), &ops_backup::NoProgress).await.unwrap();
    s.hooks.0.lock().unwrap().clear();
    let mut config = with_keys((*s.ctx.config).clone());
    config.server.rate_limit_per_second = Some(100_000);
    let state = ops_server::AppState::from_config(config, None, BTreeMap::new());

    // 100 verifications at once: a few are queued, the rest refused; every accepted one
    // succeeds and records its result.
    let answers =
        futures::future::join_all((0..100).map(|_| call(&state, "POST", "/api/v1/backups/latest/verify", ""))).await;
    let accepted: Vec<String> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .map(|(_, b)| serde_json::from_str::<serde_json::Value>(b).unwrap()["job"].as_str().unwrap().to_owned())
        .collect();
    // A refusal asks the caller to come back (429), never a server error.
    let refused = answers
        .iter()
        .filter(|(s, b)| *s == StatusCode::TOO_MANY_REQUESTS && b.contains(r#""kind":"queue-full""#))
        .count();
    // At most 8 are queued or running at any time; a slot freed by a finished one may be
    // taken again.
    let codes: Vec<StatusCode> = answers.iter().map(|a| a.0).collect();
    assert_eq!(accepted.len() + refused, 100, "{codes:?}");
    assert!(accepted.len() >= 8 && refused >= 80, "{codes:?}");
    for job in &accepted {
        let done = crate::harness::eventually("a verification", Duration::from_secs(120), || {
            let state = Arc::clone(&state);
            let job = job.clone();
            async move {
                let (_, b) = call(&state, "GET", &format!("/api/v1/jobs/{job}"), "").await;
                let j: serde_json::Value = serde_json::from_str(&b).unwrap();
                (j["status"] != "running" && j["status"] != "queued").then_some(j)
            }
        })
        .await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    assert!(leftovers(s.local.path()).is_empty());

    // Two backups of one database at once: the second is refused before it starts, and only
    // the one that ran is notified.
    let (a, b) = tokio::join!(call(&state, "POST", "/api/v1/backups", ""), call(&state, "POST", "/api/v1/backups", ""));
    let statuses = [a.0, b.0];
    assert!(statuses.contains(&StatusCode::ACCEPTED) && statuses.contains(&StatusCode::CONFLICT), "{statuses:?}");
    crate::harness::eventually("the backup's notification", Duration::from_secs(60), || {
        let n = s.hooks.0.lock().unwrap().len();
        async move { (n >= 1).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.hooks.0.lock().unwrap().len(), 1, "the refused request notified nobody");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_backups_and_state_are_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let s = stack(100).await;
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("new/backups");
    let mut config = (*s.ctx.config).clone();
    config.storage = Some(StorageConfig { url: nested.display().to_string(), ..Default::default() });
    config.perf.state_dir = Some(dir.path().join("state"));
    let ctx = ops_core::Context::from_config(config).unwrap();
    let report = backup(&ctx, &BackupOptions::default(), &ops_backup::NoProgress).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&nested.join(&report.manifest.dump_key)), 0o600, "the dump");
    assert_eq!(mode(&nested.join(report.id.manifest_key())), 0o600, "the manifest");
    assert_eq!(mode(&nested.join(".ops-app.lock")), 0o600, "the lock file");
    assert_eq!(mode(&nested), 0o700);
    assert_eq!(mode(&dir.path().join("new")), 0o700);
    let audit = dir.path().join("audit/actions.jsonl");
    ops_core::audit::AuditLog::open(&audit).unwrap();
    assert_eq!(mode(&audit), 0o600, "the audit log");
    assert_eq!(mode(&dir.path().join("audit")), 0o700);
    let state = ops_perf::StateDir::new(&dir.path().join("state"));
    state.save("pg:main", chrono::Utc::now(), &1u32).unwrap();
    let saved: Vec<_> = std::fs::read_dir(dir.path().join("state")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(saved.iter().all(|p| mode(p) == 0o600), "{saved:?}");
    assert_eq!(mode(&dir.path().join("state")), 0o700);
}

#[tokio::test]
async fn safety_sweep_removes_only_old_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = ops_core::adapters::fs::FsStore::new(dir.path());
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    let old = dir.path().join("sub/.ops-tmp-1-0-app_20260101T000000Z.sql.gz");
    let fresh = dir.path().join(".ops-tmp-2-0-app_20260102T000000Z.sql.gz");
    std::fs::write(&old, b"partial").unwrap();
    std::fs::write(&fresh, b"partial").unwrap();
    std::fs::write(dir.path().join("app_20260101T000000Z.sql.gz"), b"a real dump").unwrap();
    let day_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86_400);
    std::fs::File::options().write(true).open(&old).unwrap().set_modified(day_ago).unwrap();
    assert_eq!(store.sweep_incomplete(Duration::from_secs(86_400)).await.unwrap(), 1);
    assert!(!old.exists() && fresh.exists());
    assert!(dir.path().join("app_20260101T000000Z.sql.gz").exists(), "objects are never swept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_seaweedfs_dying_mid_upload_fails_the_backup_loudly() {
    let rt = require_docker().await;
    let pg = postgres(&[]).await;
    crate::backup::psql(
        &rt,
        &pg,
        "app",
        "CREATE TABLE t AS SELECT g, md5(g::text) || md5((g * 7)::text) AS v FROM generate_series(1, 300000) g",
    )
    .await;
    let server = std::sync::Arc::new(std::sync::Mutex::new(crate::harness::seaweed().await));
    let endpoint = server.lock().unwrap().endpoint.clone();
    let local = tempfile::tempdir().unwrap();
    let ctx = crate::backup::s3_context(&pg, &endpoint, Some(local.path())).await;

    /// Kills the S3 server at the first bytes of the dump.
    struct KillServer(Arc<std::sync::Mutex<crate::harness::Seaweed>>);
    impl Progress for KillServer {
        fn event(&self, e: ProgressEvent) {
            if matches!(e, ProgressEvent::Bytes { .. }) {
                self.0.lock().unwrap().kill();
            }
        }
    }
    let e = backup(&ctx, &BackupOptions::default(), &KillServer(Arc::clone(&server))).await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout), "{e}");
    // The local copy is discarded too: nothing anywhere looks complete.
    assert!(leftovers(local.path()).is_empty());
    let names: Vec<String> = std::fs::read_dir(local.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("app_"))
        .collect();
    assert!(names.iter().all(|n| n.ends_with(".failed.json")), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_a_stopping_server_fails_its_backup_job_cleanly() {
    let s = stack(20_000).await;
    let mut config = with_keys((*s.ctx.config).clone());
    config.server.rate_limit_per_second = Some(100_000);
    let state = ops_server::AppState::from_config(config, None, BTreeMap::new());
    let (status, body) = call(&state, "POST", "/api/v1/backups", "").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job = serde_json::from_str::<serde_json::Value>(&body).unwrap()["job"].as_str().unwrap().to_owned();
    // SIGTERM: the server stops accepting, then tells its jobs.
    let left = state.stop_jobs(Duration::from_secs(60)).await;
    assert!(left.is_empty(), "jobs still running: {left:?}");
    let (_, body) = call(&state, "GET", &format!("/api/v1/jobs/{job}"), "").await;
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["status"], "failed", "{j}");
    assert!(j["error"]["message"].as_str().unwrap().contains("interrupted"), "{j}");
    assert!(leftovers(s.local.path()).is_empty());
    let listed = ops_backup::list(&s.ctx).await.unwrap();
    assert!(listed.iter().all(|b| !b.complete) && listed.iter().any(|b| b.failed), "{listed:?}");
    let hooks = s.hooks.0.lock().unwrap().clone();
    assert!(hooks.iter().any(|h| h["text"].as_str().unwrap_or_default().contains("FAILED")), "{hooks:?}");
}
