//! Backups against real PostgreSQL, the S3 server, the filesystem and a webhook receiver:
//! round trip, verification, and the faults that must never look like success.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use ops_backup::progress::{Progress, ProgressEvent};
use ops_backup::{BackupOptions, NoProgress, backup, list, verify};
use ops_core::adapters::docker::DockerRuntime;
use ops_core::adapters::fs::FsStore;
use ops_core::adapters::s3::{S3Options, S3Store};
use ops_core::config::{DatabaseConfig, OpsConfig, StorageConfig};
use ops_core::ports::{ContainerRuntime, DumpFormat, ExecSpec, ObjectStore};
use ops_core::{Context, ErrorKind, Secret, SecretUrl, WebhookUrl};

use crate::harness::{Postgres, S3_ACCESS_KEY, S3_SECRET_KEY, postgres, require_docker, s3};

/// SQL run inside the container as the local superuser.
pub(crate) async fn psql(rt: &DockerRuntime, pg: &Postgres, database: &str, sql: &str) -> String {
    let cmd =
        ["psql", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-XAtc", sql].map(str::to_owned).to_vec();
    let out = rt.exec(pg.id(), &ExecSpec { cmd, ..Default::default() }).await.unwrap();
    assert_eq!(out.exit_code, 0, "psql failed: {}", out.stderr);
    out.stdout.trim().to_owned()
}

/// Several types, an index, an empty table, a sequence; `rows` trades of ~1.7 KB each.
fn dataset(rows: u32) -> String {
    format!(
        "CREATE TABLE trades (id bigserial PRIMARY KEY, payload jsonb NOT NULL, blob bytea, tags text[], \
           note text, amount numeric(20,7), created timestamptz DEFAULT '2026-01-01');
         CREATE INDEX trades_kind ON trades ((payload->>'kind'));
         CREATE TABLE events (id serial PRIMARY KEY, ledger_sequence bigint NOT NULL);
         CREATE TABLE empty_table (id int);
         CREATE SEQUENCE standalone_seq START 42;
         SELECT nextval('standalone_seq'), nextval('standalone_seq');
         INSERT INTO trades (payload, blob, tags, note, amount)
           SELECT jsonb_build_object('kind', g % 7, 'n', g, 'q', 'it''s'), decode(md5(g::text), 'hex'),
                  ARRAY['a' || g, 'b,c', NULL],
                  (SELECT string_agg(md5(g::text || '-' || i), ' ') FROM generate_series(1, 40) i), g * 1.5
           FROM generate_series(1, {rows}) g;
         INSERT INTO events (ledger_sequence) SELECT g FROM generate_series(1, 20000) g;
         ANALYZE;"
    )
}

/// Row count and content checksum of every user table, plus the sequence's value.
pub(crate) async fn fingerprint(rt: &DockerRuntime, pg: &Postgres, database: &str) -> Vec<String> {
    let tables =
        psql(rt, pg, database, "SELECT schemaname || '.' || relname FROM pg_stat_user_tables ORDER BY 1").await;
    let mut out = Vec::new();
    for t in tables.lines() {
        let sql = format!(
            "SELECT count(*) || ' ' || md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {t} x"
        );
        out.push(format!("{t} {}", psql(rt, pg, database, &sql).await));
    }
    out.push(psql(rt, pg, database, "SELECT 'seq ' || last_value FROM standalone_seq").await);
    out
}

#[derive(Clone, Default)]
pub(crate) struct Receiver(pub(crate) Arc<Mutex<Vec<serde_json::Value>>>);

pub(crate) async fn webhook() -> (Receiver, String) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route(
            "/hook/token",
            post(|State(r): State<Receiver>, Json(v): Json<serde_json::Value>| async move {
                r.0.lock().unwrap().push(v);
            }),
        )
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, format!("http://{addr}/hook/token"))
}

pub(crate) struct Stack {
    pub rt: DockerRuntime,
    pub pg: Postgres,
    _s3: testcontainers::ContainerAsync<testcontainers::GenericImage>,
    pub(crate) s3_id: String,
    pub local: tempfile::TempDir,
    /// Holds the audit log (`perf.audit-log`), one per test.
    _audit: tempfile::TempDir,
    pub(crate) hooks: Receiver,
    pub ctx: Context,
}

impl Stack {
    /// The records of this stack's audit log.
    pub(crate) fn audit_records(&self) -> Vec<ops_core::audit::AuditEntry> {
        ops_core::audit::AuditLog::open(&self.ctx.config.perf.audit_log).unwrap().read().unwrap()
    }
}

pub(crate) async fn stack(rows: u32) -> Stack {
    let rt = require_docker().await;
    let (pg, (s3c, endpoint)) = tokio::join!(postgres(&[]), s3());
    psql(&rt, &pg, "app", &dataset(rows)).await;
    let local = tempfile::tempdir().unwrap();
    let (hooks, hook_url) = webhook().await;
    let mut config = s3_config(&pg, &endpoint, Some(local.path())).await;
    config.project.name = "it".to_owned();
    config.databases.get_mut("main").unwrap().key_tables = vec!["trades".to_owned(), "events".to_owned()];
    config.notify.webhooks = vec![WebhookUrl::new(hook_url)];
    config.notify.retries = 0;
    let audit = tempfile::tempdir().unwrap();
    config.perf.audit_log = audit.path().join("audit.jsonl");
    let ctx = Context::from_config(config).unwrap();
    let s3_id = s3c.id().to_owned();
    Stack { rt, pg, _s3: s3c, s3_id, local, _audit: audit, hooks, ctx }
}

/// A context backing up database `app` of `pg` to `s3://backups/daily` at `endpoint` (the
/// bucket made first), and to `local_dir` too when given.
pub(crate) async fn s3_context(pg: &Postgres, endpoint: &str, local_dir: Option<&std::path::Path>) -> Context {
    Context::from_config(s3_config(pg, endpoint, local_dir).await).unwrap()
}

/// The configuration of [`s3_context`].
async fn s3_config(pg: &Postgres, endpoint: &str, local_dir: Option<&std::path::Path>) -> OpsConfig {
    let bucket = S3Store::new({
        let mut o = S3Options::new("backups", Secret::new(S3_ACCESS_KEY), Secret::new(S3_SECRET_KEY));
        o.endpoint = Some(endpoint.to_owned());
        o.path_style = true;
        o
    })
    .unwrap();
    bucket.ensure_bucket().await.unwrap();
    let mut config = OpsConfig::default();
    config.databases.insert(
        "main".to_owned(),
        DatabaseConfig { url: SecretUrl::new(pg.url("postgres", "postgres", "app")), ..Default::default() },
    );
    config.storage = Some(StorageConfig {
        url: "s3://backups/daily".to_owned(),
        endpoint: Some(endpoint.to_owned()),
        path_style: Some(true),
        access_key_id: Some(Secret::new(S3_ACCESS_KEY)),
        secret_access_key: Some(Secret::new(S3_SECRET_KEY)),
        local_dir: local_dir.map(std::path::Path::to_path_buf),
        ..Default::default()
    });
    config
}

fn local_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_round_trip_restores_an_identical_database() {
    let s = stack(3000).await;
    let report = backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let m = &report.manifest;
    assert!(m.id.as_str().starts_with("app_"));
    assert!(m.dump_key.ends_with(".sql.gz"));
    assert_eq!(m.table_count, 3);
    let counts: BTreeMap<String, (Option<u64>, bool)> =
        m.tables.iter().map(|t| (t.qualified_name(), (t.rows, t.exact))).collect();
    assert_eq!(counts["public.trades"], (Some(3000), true));
    assert_eq!(counts["public.events"], (Some(20000), true));
    assert!(!counts["public.empty_table"].1, "estimate for non-key tables");
    assert!(m.pg_dump_version.contains("15."), "{}", m.pg_dump_version);
    assert!(m.extensions.contains(&"plpgsql".to_owned()));
    assert!(m.size_bytes > 0 && m.size_bytes < m.raw_size_bytes);
    assert_eq!(report.destinations.len(), 2);
    // A directory, and an object small enough for one request: both are read back.
    assert!(report.destinations.iter().all(|d| d.verified_by == ops_backup::CopyCheck::ReadBack), "{report:#?}");
    assert_eq!(report.notifications.len(), 1);
    assert!(report.notifications[0].delivered);
    let hook = s.hooks.0.lock().unwrap()[0].clone();
    assert!(hook["text"].as_str().unwrap().contains("backup of app succeeded"), "{hook}");
    assert_eq!(hook["fields"]["backup_id"], m.id.as_str());

    // The local copy is a plain gzip file that standard tools accept.
    let path = s.local.path().join(&m.dump_key);
    let gz = std::process::Command::new("gzip").arg("-t").arg(&path).status().unwrap();
    assert!(gz.success(), "gzip -t");
    let mut expected = vec![".ops-app.lock".to_owned(), m.dump_key.clone(), m.id.manifest_key()];
    expected.sort();
    assert_eq!(local_files(s.local.path()), expected);

    let listed = list(&s.ctx).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].complete);
    assert_eq!(listed[0].copies.len(), 2);

    let v = verify(&s.ctx, None, "latest").await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.copies.len(), 2);
    assert!(list(&s.ctx).await.unwrap()[0].copies.iter().all(|c| c.last_verification.as_ref().is_some_and(|r| r.ok)));

    // Restore the S3 copy into a new database and compare contents.
    let s3 = s.ctx.storage.as_ref().unwrap();
    let mut compressed = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut s3.get(&m.dump_key).await.unwrap(), &mut compressed).await.unwrap();
    let mut sql = Vec::new();
    flate2::read::MultiGzDecoder::new(&compressed[..]).read_to_end(&mut sql).unwrap();
    let db = s.ctx.databases["main"].clone();
    db.create_database("restored").await.unwrap();
    db.restore("restored", DumpFormat::Plain, Box::pin(std::io::Cursor::new(sql))).await.unwrap();
    let (a, b) = tokio::join!(fingerprint(&s.rt, &s.pg, "app"), fingerprint(&s.rt, &s.pg, "restored"));
    assert_eq!(a, b);
    assert!(a.iter().any(|l| l.starts_with("public.trades 3000 ")), "{a:?}");
    assert!(a.contains(&"seq 43".to_owned()), "{a:?}");

    // zstd too.
    let z = backup(
        &s.ctx,
        &BackupOptions {
            compression: ops_backup::compress::Compression::Zstd,
            prefix: Some("appz".into()),
            ..Default::default()
        },
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(z.manifest.dump_key.ends_with(".sql.zst"));
    assert!(verify(&s.ctx, None, z.id.as_str()).await.unwrap().ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_verify_reports_a_flipped_byte() {
    let s = stack(500).await;
    let report = backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let path = s.local.path().join(&report.manifest.dump_key);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let v = verify(&s.ctx, None, report.id.as_str()).await.unwrap();
    assert!(!v.ok);
    let local = v.copies.iter().find(|c| c.location.starts_with("file://")).unwrap();
    assert!(local.problems.iter().any(|p| p.contains("sha256 mismatch")), "{local:?}");
    assert!(local.problems.iter().any(|p| p.contains("decompression failed")), "{local:?}");
    let remote = v.copies.iter().find(|c| c.location.starts_with("s3://")).unwrap();
    assert!(remote.ok, "the S3 copy is intact: {remote:?}");
}

/// A backup leaves no trace in the server's log: its snapshot session ends its transaction and
/// closes, so the next triage does not report "unexpected EOF on client connection with an
/// open transaction" as a log error of the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_closes_its_snapshot_session_cleanly() {
    let s = stack(50).await;
    backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let logs =
        s.rt.logs(s.pg.id(), &ops_core::ports::LogOptions { tail: Some(500), ..Default::default() }).await.unwrap();
    let eof: Vec<&str> = logs.iter().map(|l| l.text.as_str()).filter(|t| t.contains("unexpected EOF")).collect();
    assert!(eof.is_empty(), "{eof:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_concurrent_second_is_refused() {
    let s = stack(2000).await;
    let first = BackupOptions::default();
    let second = BackupOptions { prefix: Some("second".into()), ..Default::default() };
    let (a, b) = tokio::join!(backup(&s.ctx, &first, &NoProgress), backup(&s.ctx, &second, &NoProgress));
    let (ok, refused) = match (a, b) {
        (Ok(r), Err(e)) | (Err(e), Ok(r)) => (r, e),
        (a, b) => panic!("expected one success and one refusal: {a:?} / {b:?}"),
    };
    assert_eq!(refused.kind(), ErrorKind::Conflict, "{refused}");
    assert!(refused.message().contains("already running since"), "{refused}");
    assert!(list(&s.ctx).await.unwrap().iter().all(|b| b.id == ok.id), "only the first backup exists");
    // The next backup, in the same second or not, gets its own id and files.
    let next = backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    assert_ne!(next.id, ok.id);
    let again = backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    assert_ne!(again.id, next.id, "back-to-back backups never share an id");
    assert_eq!(list(&s.ctx).await.unwrap().iter().filter(|b| b.complete).count(), 3);
}

/// Kills the process or container named by `kill` on the first bytes of compressed output.
struct KillOnFirstBytes {
    fired: AtomicBool,
    kill: Box<dyn Fn() + Send + Sync>,
}

impl Progress for KillOnFirstBytes {
    fn event(&self, event: ProgressEvent) {
        if matches!(event, ProgressEvent::Bytes { compressed, .. } if compressed > 0)
            && !self.fired.swap(true, Ordering::SeqCst)
        {
            (self.kill)();
        }
    }
}

async fn assert_nothing_stored(s: &Stack, remote_alive: bool) {
    let local = FsStore::new(s.local.path());
    let names: Vec<String> = local.list("").await.unwrap().into_iter().map(|o| o.key).collect();
    let ours: Vec<&String> = names.iter().filter(|n| n.starts_with("app_")).collect();
    assert!(
        ours.len() == 1 && ours[0].ends_with(".failed.json"),
        "only the failure record of the failed backup is left locally: {names:?}"
    );
    if remote_alive {
        let listed = list(&s.ctx).await.unwrap();
        assert!(listed.iter().all(|b| b.failed && !b.complete), "{listed:?}");
    }
    let failures = s.hooks.0.lock().unwrap().clone();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0]["text"].as_str().unwrap().contains("FAILED"), "{failures:?}");
    assert_eq!(failures[0]["level"], "critical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_fails_loudly_when_pg_dump_is_killed_mid_stream() {
    let s = stack(20_000).await;
    let me = std::process::id().to_string();
    let progress = KillOnFirstBytes {
        fired: AtomicBool::new(false),
        kill: Box::new(move || {
            // Our own child pg_dump only: other tests run their own.
            let _ = std::process::Command::new("pkill").args(["-9", "-P", &me, "pg_dump"]).status();
        }),
    };
    let e = backup(&s.ctx, &BackupOptions::default(), &progress).await.unwrap_err();
    assert!(progress.fired.load(Ordering::SeqCst), "the dump was still streaming");
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(e.message().contains("pg_dump"), "{e}");
    assert_nothing_stored(&s, true).await;
    let s3 = s.ctx.storage.as_ref().unwrap();
    let remote: Vec<String> = s3.list("").await.unwrap().into_iter().map(|o| o.key).collect();
    assert!(remote.len() == 1 && remote[0].ends_with(".failed.json"), "{remote:?}");
    let failure = &list(&s.ctx).await.unwrap()[0];
    let record = failure.copies[0].failure.as_ref().unwrap();
    assert!(record.error.contains("pg_dump"), "{record:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_fails_loudly_when_the_s3_server_dies_mid_upload() {
    let s = stack(20_000).await;
    let id = s.s3_id.clone();
    let progress = KillOnFirstBytes {
        fired: AtomicBool::new(false),
        kill: Box::new(move || {
            let _ = std::process::Command::new("docker").args(["kill", &id]).status();
        }),
    };
    let e = tokio::time::timeout(Duration::from_secs(120), backup(&s.ctx, &BackupOptions::default(), &progress))
        .await
        .expect("a dead S3 server fails the backup, it does not hang it")
        .unwrap_err();
    assert!(progress.fired.load(Ordering::SeqCst));
    assert!(matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout), "{e}");
    assert_nothing_stored(&s, false).await;
}

/// A backup in several parts to SeaweedFS, a server that checks each part's SHA-256: proven
/// by the server's checksums instead of a read-back, and the copy still holds exactly the
/// manifest's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_to_seaweedfs_is_proven_by_the_servers_part_checksums() {
    let rt = require_docker().await;
    let (pg, server) = tokio::join!(postgres(&[]), crate::harness::seaweed());
    // About 45 MB of hex: several 8 MiB parts even gzip-compressed.
    psql(
        &rt,
        &pg,
        "app",
        "CREATE TABLE blobs (id int PRIMARY KEY, a text, b text);
         INSERT INTO blobs SELECT g, md5(g::text) || md5((g * 7)::text), md5((g * 13)::text)
           FROM generate_series(1, 450000) g;",
    )
    .await;
    let ctx = s3_context(&pg, &server.endpoint, None).await;

    let report = backup(&ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let copy = &report.destinations[0];
    assert!(copy.parts >= 2, "{copy:?}");
    assert_eq!(copy.verified_by, ops_backup::CopyCheck::ServerSha256, "{copy:?}");
    let names: Vec<&str> = report.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["prepare", "dump", "verify-upload", "manifest"]);
    // What the server proved, a read-back confirms: the stored bytes hash to the manifest's.
    let v = verify(&ctx, None, "latest").await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.copies.len(), 1);
    // No unfinished upload is left, the checksum probe's included.
    let daily = S3Store::new({
        let mut o = S3Options::new("backups", Secret::new(S3_ACCESS_KEY), Secret::new(S3_SECRET_KEY));
        o.endpoint = Some(server.endpoint.clone());
        o.path_style = true;
        o.prefix = "daily".to_owned();
        o
    })
    .unwrap();
    assert_eq!(daily.pending_uploads().await.unwrap(), Vec::<String>::new());
    let keys: Vec<String> = daily.list("").await.unwrap().into_iter().map(|o| o.key).collect();
    assert!(keys.iter().all(|k| !k.contains("checksum-probe")), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_an_unreadable_table_fails_and_leaves_nothing() {
    let s = stack(100).await;
    psql(
        &s.rt,
        &s.pg,
        "app",
        "CREATE ROLE limited LOGIN PASSWORD 'limitedpw'; GRANT SELECT ON trades, events TO limited;",
    )
    .await;
    let mut config = (*s.ctx.config).clone();
    config.databases.get_mut("main").unwrap().url = SecretUrl::new(s.pg.url("limited", "limitedpw", "app"));
    let ctx = Context::from_config(config).unwrap();
    let e = backup(&ctx, &BackupOptions::default(), &NoProgress).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(e.message().contains("permission denied"), "{e}");
    assert!(!e.message().contains("limitedpw"));
    assert_nothing_stored(&s, true).await;
    // ops-server, started after the failure, reports it.
    let state = ops_server::AppState::from_config((*s.ctx.config).clone(), None, BTreeMap::new());
    state.rebuild_backup_metrics().await;
    let metrics = state.metrics.encode();
    assert!(metrics.contains("ops_backup_success{database=\"main\"} 0"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_through_the_api_as_a_job_and_metrics_survive_a_restart() {
    use tower::ServiceExt;
    let s = stack(300).await;
    let mut config = (*s.ctx.config).clone();
    config.server.admin_keys = vec![Secret::new("k-admin")];
    config.server.api_keys = vec![Secret::new("k-read")];
    let call =
        |state: Arc<ops_server::AppState>, method: &str, uri: &str, key: &str, body: Option<serde_json::Value>| {
            let req = http::Request::builder()
                .method(method)
                .uri(uri)
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
                .unwrap();
            async move {
                let resp = ops_server::app(state).oneshot(req).await.unwrap();
                let status = resp.status();
                let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
                (status, serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or(serde_json::Value::Null))
            }
        };
    let state = ops_server::AppState::from_config(config.clone(), None, BTreeMap::new());
    let (status, _) = call(state.clone(), "POST", "/api/v1/backups", "k-read", None).await;
    assert_eq!(status, http::StatusCode::FORBIDDEN, "a read key cannot start a backup");
    let (status, started) = call(state.clone(), "POST", "/api/v1/backups", "k-admin", None).await;
    assert_eq!(status, http::StatusCode::ACCEPTED, "{started}");
    let job = started["job"].as_str().unwrap().to_owned();
    let done = crate::harness::eventually("the backup job", Duration::from_secs(60), || {
        let state = state.clone();
        let job = job.clone();
        async move {
            let (_, j) = call(state, "GET", &format!("/api/v1/jobs/{job}"), "k-read", None).await;
            (j["status"] != "running" && j["status"] != "queued").then_some(j)
        }
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let id = done["report"]["id"].as_str().unwrap().to_owned();
    let (_, listed) = call(state.clone(), "GET", "/api/v1/backups", "k-read", None).await;
    assert_eq!(listed["backups"][0]["id"], id.as_str());
    let metrics = state.metrics.encode();
    assert!(metrics.contains("ops_backup_success{database=\"main\"} 1"), "{metrics}");

    // A fresh server (a restart) rebuilds the metrics from the manifests in storage.
    let restarted = ops_server::AppState::from_config(config, None, BTreeMap::new());
    assert!(!restarted.metrics.encode().contains("ops_backup_success{"), "empty before the rebuild");
    restarted.rebuild_backup_metrics().await;
    let metrics = restarted.metrics.encode();
    assert!(metrics.contains("ops_backup_success{database=\"main\"} 1"), "{metrics}");
    assert!(metrics.contains("ops_backup_size_bytes{database=\"main\"}"), "{metrics}");
    assert!(metrics.contains("ops_backup_age_seconds{database=\"main\"}"), "{metrics}");

    // A restore needs an explicit confirmation.
    let (status, body) =
        call(restarted.clone(), "POST", "/api/v1/restores", "k-admin", Some(serde_json::json!({ "source": id }))).await;
    assert_eq!(status, http::StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("confirm"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_prune_takes_its_policy_from_the_caller_and_audits_each_deletion() {
    let s = stack(100).await;
    let old = backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let new = backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    // The configuration keeps both (30 days locally, no rules on S3); the caller's policy keeps
    // one a day in each destination.
    let daily = ops_backup::retention::RetentionPolicy { keep_daily: Some(1), ..Default::default() };
    let opts = ops_backup::PruneOptions {
        dry_run: true,
        primary: Some(daily.clone()),
        local: Some(daily),
        actor: Some("opsctl:it@host".into()),
        only: None,
    };
    ops_backup::prune(&s.ctx, &opts, chrono::Utc::now()).await.unwrap();
    assert!(s.audit_records().is_empty(), "a dry run changes nothing and records nothing");
    let report = ops_backup::prune(&s.ctx, &ops_backup::PruneOptions { dry_run: false, ..opts }, chrono::Utc::now())
        .await
        .unwrap();
    assert!(report.destinations.iter().all(|d| d.deleted == [old.id.clone()]), "{report:#?}");
    let left: Vec<_> = list(&s.ctx).await.unwrap().into_iter().map(|b| b.id).collect();
    assert_eq!(left, std::slice::from_ref(&new.id));
    let records = s.audit_records();
    assert_eq!(records.len(), 4, "the intent, then the outcome, in each destination: {records:#?}");
    let results: Vec<&str> = records.iter().map(|r| r.result.as_str()).collect();
    assert_eq!(results, ["started", "ok", "started", "ok"]);
    for r in &records {
        assert_eq!((r.actor.as_str(), r.action.as_str()), ("opsctl:it@host", "prune"));
        assert_eq!(r.target, format!("backup:{}", old.id));
        assert_eq!(r.before["database"], "main", "{r:?}");
        assert_eq!(r.before["backup_id"], old.id.to_string(), "{r:?}");
        assert!(r.after.is_null(), "{r:?}");
    }
    let locations: Vec<&str> = records.iter().filter_map(|r| r.before["location"].as_str()).collect();
    assert!(
        locations.iter().any(|l| l.starts_with("s3://")) && locations.iter().any(|l| l.starts_with("file://")),
        "{locations:?}"
    );
}
