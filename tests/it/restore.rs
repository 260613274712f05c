//! Restores against real PostgreSQL and containers: the safe swap, and the failures that must
//! leave the live database as it was.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use ops_backup::restore::{self, RestoreOptions, Strategy};
use ops_backup::{BackupOptions, NoProgress, backup};
use ops_core::config::HttpCheckConfig;
use ops_core::ports::{ContainerRuntime, ContainerState, RunSpec};
use ops_core::{Context, ErrorKind, SecretUrl};

use crate::backup::{Stack, fingerprint, psql, stack};
use crate::harness::{BASE_IMAGE, Cleanup, unique};

/// A long-running container standing in for the API that depends on the database.
async fn dependent(s: &Stack) -> (String, Cleanup) {
    let name = unique("opsit-api");
    let c =
        s.rt.run_ephemeral(&RunSpec {
            image: BASE_IMAGE.to_owned(),
            name: Some(name.clone()),
            // Exits on SIGTERM like a real service (a bare `sleep` as PID 1 ignores it).
            cmd: vec!["sh".into(), "-c".into(), "trap 'exit 0' TERM; sleep 300 & wait".into()],
            labels: BTreeMap::from([("ops.it".to_owned(), "restore".to_owned())]),
            ..Default::default()
        })
        .await
        .unwrap();
    (name, Cleanup(c.id))
}

/// A health endpoint that answers 200.
async fn health_endpoint() -> String {
    let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/health")
}

fn with_dependent(s: &Stack, name: &str, health: Option<String>) -> Context {
    let mut config = (*s.ctx.config).clone();
    config.databases.get_mut("main").unwrap().dependents = vec![name.to_owned()];
    config.databases.get_mut("main").unwrap().min_tables = 3;
    if let Some(url) = health {
        config.http = vec![HttpCheckConfig {
            name: "api".into(),
            url: SecretUrl::new(url),
            critical: true,
            ..Default::default()
        }];
    }
    Context::from_config(config).unwrap()
}

async fn databases(s: &Stack) -> Vec<String> {
    psql(&s.rt, &s.pg, "postgres", "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1")
        .await
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_safe_swap_replaces_the_database_and_restarts_dependents() {
    let s = stack(1000).await;
    let (api, _guard) = dependent(&s).await;
    let ctx = with_dependent(&s, &api, Some(health_endpoint().await));
    let report = backup(&ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let at_backup = fingerprint(&s.rt, &s.pg, "app").await;
    // Damage after the backup: the restore must bring the backup's state back.
    psql(&s.rt, &s.pg, "app", "DELETE FROM trades WHERE id <= 10; DROP TABLE empty_table;").await;
    let before = s.rt.inspect(&api).await.unwrap().started_at;

    let opts = RestoreOptions {
        source: report.id.to_string(),
        health_timeout_secs: 30,
        actor: Some("opsctl:it@host".into()),
        ..Default::default()
    };
    let plan = restore::plan(&ctx, &opts).await.unwrap();
    assert_eq!(plan.strategy, Strategy::SafeSwap);
    assert_eq!(plan.dependents.len(), 1);
    assert!(plan.dependents[0].was_running);
    assert!(plan.steps.iter().any(|s| s.starts_with("stop ")), "{:?}", plan.steps);
    assert!(databases(&s).await.iter().all(|d| !d.contains("__restore_")), "planning changes nothing");

    let done = ops_backup::restore(&ctx, &plan, &opts, &NoProgress).await.unwrap();
    assert!(done.check.ok, "{:?}", done.check);
    assert!(done.healthy, "{:?}", done.health);
    assert_eq!(done.restarted, std::slice::from_ref(&api));
    assert_eq!(fingerprint(&s.rt, &s.pg, "app").await, at_backup, "the backup's state is live again");
    let keep = plan.keep_database.clone().unwrap();
    assert!(databases(&s).await.contains(&keep), "the previous database is kept");
    assert_eq!(psql(&s.rt, &s.pg, &keep, "SELECT count(*) FROM trades").await, "990");
    let after = s.rt.inspect(&api).await.unwrap();
    assert_eq!(after.state, ContainerState::Running);
    assert!(after.started_at > before, "the dependent was stopped and started");
    // The swap is in the audit log: who, which database, what was live before and after.
    let records = s.audit_records();
    assert_eq!(records.len(), 2, "the intent before the stop, then the outcome: {records:#?}");
    assert_eq!((records[0].action.as_str(), records[0].result.as_str()), ("restore-swap", "started"));
    let r = &records[1];
    assert_eq!((r.actor.as_str(), r.action.as_str(), r.result.as_str()), ("opsctl:it@host", "restore-swap", "ok"));
    assert_eq!(r.target, "database:main");
    assert_eq!(r.before["database"], "app");
    assert_eq!(r.before["stopped"][0], api.as_str());
    assert_eq!(r.after["previous_kept_as"], keep.as_str());
    assert_eq!(r.after["backup_id"], report.id.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_failing_half_way_leaves_the_live_database_and_the_stack_untouched() {
    let s = stack(500).await;
    let (api, _guard) = dependent(&s).await;
    let ctx = with_dependent(&s, &api, None);
    let report = backup(&ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    psql(&s.rt, &s.pg, "app", "INSERT INTO events (ledger_sequence) VALUES (-1)").await;
    let live = fingerprint(&s.rt, &s.pg, "app").await;

    // A well-formed gzip dump with a statement that fails half-way through.
    let path = s.local.path().join(&report.manifest.dump_key);
    let mut sql = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap()).read_to_string(&mut sql).unwrap();
    let cut = sql.find("COPY public.trades").unwrap();
    let broken_sql = format!("{}SELECT 1/0;\n{}", &sql[..cut], &sql[cut..]);
    let broken = s.local.path().join("handmade.sql.gz");
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&broken).unwrap(), flate2::Compression::fast());
    gz.write_all(broken_sql.as_bytes()).unwrap();
    gz.finish().unwrap();

    let opts = RestoreOptions {
        source: broken.display().to_string(),
        health_timeout_secs: 30,
        allow_host_path: true,
        // A handmade dump has no manifest: whose it is must be said.
        allow_other_database: true,
        ..Default::default()
    };
    let plan = restore::plan(&ctx, &opts).await.unwrap();
    assert!(plan.source.manifest.is_none());
    let started = s.rt.inspect(&api).await.unwrap().started_at;
    let e = ops_backup::restore(&ctx, &plan, &opts, &NoProgress).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(e.message().contains("division by zero") && e.message().contains("not touched"), "{e}");
    // The restore fails beside the live database: the stack never went down.
    assert_eq!(s.rt.inspect(&api).await.unwrap().started_at, started, "the dependent was never stopped");
    assert_eq!(fingerprint(&s.rt, &s.pg, "app").await, live, "live database untouched");
    assert!(databases(&s).await.iter().all(|d| !d.contains("__restore_") && !d.contains("__pre_restore_")));
    assert_eq!(s.rt.inspect(&api).await.unwrap().state, ContainerState::Running, "dependent is back up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_corrupted_backup_before_touching_anything() {
    let s = stack(300).await;
    let (api, _guard) = dependent(&s).await;
    let ctx = with_dependent(&s, &api, None);
    let report = backup(&ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let path = s.local.path().join(&report.manifest.dump_key);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let started = s.rt.inspect(&api).await.unwrap().started_at;

    let opts = RestoreOptions { source: report.id.to_string(), ..Default::default() };
    let plan = restore::plan(&ctx, &opts).await.unwrap();
    assert!(plan.source.location.starts_with("file://"), "the local copy is preferred: {}", plan.source.location);
    let e = ops_backup::restore(&ctx, &plan, &opts, &NoProgress).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity);
    assert!(e.message().contains("refusing") && e.message().contains("sha256 mismatch"), "{e}");
    let d = s.rt.inspect(&api).await.unwrap();
    assert_eq!((d.state, d.started_at), (ContainerState::Running, started), "the dependent was never stopped");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// A copy whose last full verification passed is checked by its SHA-256 alone before an
/// in-place restore: the same bytes decompressed whole then. Other bytes are still refused
/// before anything is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_in_place_of_a_verified_copy_checks_its_sha256_and_refuses_other_bytes() {
    let s = stack(300).await;
    let report = backup(&s.ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let opts = RestoreOptions { source: report.id.to_string(), in_place: true, ..Default::default() };
    let before = restore::plan(&s.ctx, &opts).await.unwrap();
    assert!(before.source.verified.is_none(), "never verified: the full check runs");
    assert!(before.steps[0].contains("checksum, decompression, trailer"), "{:?}", before.steps);
    assert!(ops_backup::verify(&s.ctx, None, report.id.as_str()).await.unwrap().ok);
    let plan = restore::plan(&s.ctx, &opts).await.unwrap();
    let vouched = plan.source.verified.as_ref().expect("the passed verification vouches for these bytes");
    assert_eq!(vouched.sha256.as_deref(), Some(report.manifest.sha256.as_str()));
    assert!(plan.steps[0].contains("by its SHA-256"), "{:?}", plan.steps);

    // One byte changed after the verification: refused, the live database untouched.
    let live = fingerprint(&s.rt, &s.pg, "app").await;
    let path = s.local.path().join(&report.manifest.dump_key);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let e = ops_backup::restore(&s.ctx, &plan, &opts, &NoProgress).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(e.message().contains("sha256 mismatch"), "{e}");
    assert_eq!(fingerprint(&s.rt, &s.pg, "app").await, live, "live database untouched");

    // The same bytes again: restored in place after the SHA-256 check alone.
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    psql(&s.rt, &s.pg, "app", "TRUNCATE events").await;
    let done = ops_backup::restore(&s.ctx, &plan, &opts, &NoProgress).await.unwrap();
    assert!(done.check.ok, "{done:?}");
    assert_eq!(fingerprint(&s.rt, &s.pg, "app").await, live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_in_place_from_s3_runs_the_post_restore_command() {
    let s = stack(400).await;
    let (api, _guard) = dependent(&s).await;
    let mut config = (*with_dependent(&s, &api, None).config).clone();
    config.databases.get_mut("main").unwrap().post_restore = Some(ops_core::config::PostRestoreConfig {
        container: api.clone(),
        command: vec!["sh".into(), "-c".into(), "echo migrations applied".into()],
    });
    let ctx = Context::from_config(config).unwrap();
    let report = backup(&ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let at_backup = fingerprint(&s.rt, &s.pg, "app").await;
    psql(&s.rt, &s.pg, "app", "TRUNCATE events").await;

    let source = format!("{}/{}", ctx.storage.as_ref().unwrap().location(), report.manifest.dump_key);
    let opts = RestoreOptions { source, in_place: true, health_timeout_secs: 30, ..Default::default() };
    let plan = restore::plan(&ctx, &opts).await.unwrap();
    assert_eq!(plan.strategy, Strategy::InPlace);
    assert!(plan.source.location.starts_with("s3://"), "{}", plan.source.location);
    assert!(plan.source.manifest.is_some(), "the manifest beside the S3 object is found");
    assert!(plan.steps.iter().any(|s| s.contains("DROP DATABASE")), "{:?}", plan.steps);
    let done = ops_backup::restore(&ctx, &plan, &opts, &NoProgress).await.unwrap();
    assert!(done.check.ok && done.healthy, "{done:?}");
    assert_eq!(done.post_restore_output.as_deref().map(str::trim), Some("migrations applied"));
    assert_eq!(fingerprint(&s.rt, &s.pg, "app").await, at_backup);
    assert!(databases(&s).await.iter().all(|d| !d.contains("__")), "in place leaves no side databases");
    let records = s.audit_records();
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!((records[0].action.as_str(), records[0].result.as_str()), ("restore-in-place", "started"));
    let r = &records[1];
    assert_eq!((r.actor.as_str(), r.action.as_str(), r.result.as_str()), ("library", "restore-in-place", "ok"));
    assert_eq!(r.target, "database:main");
    assert_eq!(r.before["dropped"], true);
    assert!(r.after["restored_from"].as_str().unwrap().starts_with("s3://"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_whose_post_restore_command_fails_restarts_the_dependents_and_says_the_swap_happened() {
    let s = stack(300).await;
    let (api, _guard) = dependent(&s).await;
    let mut config = (*with_dependent(&s, &api, None).config).clone();
    config.databases.get_mut("main").unwrap().post_restore = Some(ops_core::config::PostRestoreConfig {
        container: api.clone(),
        command: vec!["sh".into(), "-c".into(), "echo migration failed >&2; exit 3".into()],
    });
    let ctx = Context::from_config(config).unwrap();
    let report = backup(&ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let opts = RestoreOptions { source: report.id.to_string(), health_timeout_secs: 30, ..Default::default() };
    let plan = restore::plan(&ctx, &opts).await.unwrap();
    let e = ops_backup::restore(&ctx, &plan, &opts, &NoProgress).await.unwrap_err();
    assert!(e.message().contains("migration failed"), "{e}");
    assert!(e.message().contains("the restored database is live"), "the error says the swap happened: {e}");
    assert!(e.message().contains(&api), "the error names the dependents restarted: {e}");
    assert_eq!(s.rt.inspect(&api).await.unwrap().state, ContainerState::Running, "the stack is back up");
    let dbs = databases(&s).await;
    assert!(dbs.iter().all(|d| !d.contains("__restore_")), "no side database is left: {dbs:?}");
    assert!(dbs.contains(plan.keep_database.as_ref().unwrap()), "the previous database is kept: {dbs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_whose_stop_fails_half_way_starts_what_it_stopped_and_drops_the_side_database() {
    let s = stack(300).await;
    let (first, _g1) = dependent(&s).await;
    let (second, _g2) = dependent(&s).await;
    let mut config = (*with_dependent(&s, &first, None).config).clone();
    config.databases.get_mut("main").unwrap().dependents = vec![first.clone(), second.clone()];
    let ctx = Context::from_config(config).unwrap();
    let report = backup(&ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    psql(&s.rt, &s.pg, "app", "INSERT INTO events (ledger_sequence) VALUES (-7)").await;
    let live = fingerprint(&s.rt, &s.pg, "app").await;
    let opts = RestoreOptions { source: report.id.to_string(), health_timeout_secs: 30, ..Default::default() };
    let plan = restore::plan(&ctx, &opts).await.unwrap();
    // Dependents stop last first: `second` stops, then `first` is gone.
    s.rt.remove(&first, true).await.unwrap();
    let e = ops_backup::restore(&ctx, &plan, &opts, &NoProgress).await.unwrap_err();
    assert!(e.message().contains("the live database was not touched"), "{e}");
    assert_eq!(s.rt.inspect(&second).await.unwrap().state, ContainerState::Running, "what was stopped is started");
    assert_eq!(fingerprint(&s.rt, &s.pg, "app").await, live, "live database untouched");
    let dbs = databases(&s).await;
    assert!(dbs.iter().all(|d| !d.contains("__restore_") && !d.contains("__pre_restore_")), "{dbs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_without_a_writable_audit_log_changes_nothing() {
    let s = stack(200).await;
    let (api, _guard) = dependent(&s).await;
    let ctx = with_dependent(&s, &api, None);
    let report = backup(&ctx, &BackupOptions::default(), &NoProgress).await.unwrap();
    let live = fingerprint(&s.rt, &s.pg, "app").await;
    let before = s.rt.inspect(&api).await.unwrap().started_at;
    // The audit log's directory would be a regular file: it cannot be created.
    let blocker = s.local.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let mut config = (*ctx.config).clone();
    config.perf.audit_log = blocker.join("audit.jsonl");
    let ctx = Context::from_config(config).unwrap();
    for in_place in [false, true] {
        let opts =
            RestoreOptions { source: report.id.to_string(), in_place, health_timeout_secs: 30, ..Default::default() };
        let plan = restore::plan(&ctx, &opts).await.unwrap();
        let e = ops_backup::restore(&ctx, &plan, &opts, &NoProgress).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(e.message().contains("audit log"), "{e}");
    }
    assert_eq!(fingerprint(&s.rt, &s.pg, "app").await, live, "the live database is as it was");
    assert!(databases(&s).await.iter().all(|d| !d.contains("__")), "no side database: {:?}", databases(&s).await);
    let after = s.rt.inspect(&api).await.unwrap();
    assert_eq!((after.state, after.started_at), (ContainerState::Running, before), "the dependent was never stopped");
}
