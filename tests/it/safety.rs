//! "Nothing lost, nobody in": the defects found by using the binaries as an attacker or a
//! careless caller would, each against real PostgreSQL. Two databases with interleaved
//! backups keep their backups apart; a hostile plain dump cannot run psql meta-commands; the
//! API never treats a caller's string as a host path.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use ops_backup::restore::{self, RestoreOptions};
use ops_backup::retention::Verdict;
use ops_backup::{BackupOptions, DrillBackend, DrillOptions, NoProgress, backup, dr_test};
use ops_core::config::{DatabaseConfig, OpsConfig, StorageConfig};
use ops_core::{Context, ErrorKind, SecretUrl};
use tower::ServiceExt;

use crate::backup::psql;
use crate::harness::{Postgres, postgres, require_docker, require_local_postgres, unique};

/// Two databases, `alpha` and `beta`, on one server, each with a table the other lacks, and
/// backups in one local directory.
struct Pair {
    rt: ops_core::adapters::docker::DockerRuntime,
    pg: Postgres,
    dir: tempfile::TempDir,
    ctx: Context,
}

async fn pair() -> Pair {
    let rt = require_docker().await;
    let pg = postgres(&[]).await;
    psql(&rt, &pg, "postgres", "CREATE DATABASE alpha").await;
    psql(&rt, &pg, "postgres", "CREATE DATABASE beta").await;
    psql(
        &rt,
        &pg,
        "alpha",
        "CREATE TABLE a_only (id int PRIMARY KEY); INSERT INTO a_only SELECT generate_series(1, 10)",
    )
    .await;
    psql(
        &rt,
        &pg,
        "beta",
        "CREATE TABLE b_only (id int PRIMARY KEY); INSERT INTO b_only SELECT generate_series(1, 20)",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = OpsConfig::default();
    for name in ["alpha", "beta"] {
        config.databases.insert(
            name.to_owned(),
            DatabaseConfig { url: SecretUrl::new(pg.url("postgres", "postgres", name)), ..Default::default() },
        );
    }
    // Keep one backup a day and nothing for its age: each database's newest must survive.
    config.storage = Some(StorageConfig {
        url: dir.path().display().to_string(),
        retention_days: 0,
        keep_daily: Some(1),
        ..Default::default()
    });
    let ctx = Context::from_config(config).unwrap();
    Pair { rt, pg, dir, ctx }
}

fn opts(database: &str, prefix: Option<&str>) -> BackupOptions {
    BackupOptions { database: Some(database.to_owned()), prefix: prefix.map(str::to_owned), ..Default::default() }
}

async fn tables(p: &Pair, db: &str) -> String {
    psql(&p.rt, &p.pg, db, "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_stat_user_tables").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_two_databases_keep_their_backups_apart() {
    let p = pair().await;
    let a1 = backup(&p.ctx, &opts("alpha", None), &NoProgress).await.unwrap();
    let b1 = backup(&p.ctx, &opts("beta", None), &NoProgress).await.unwrap();
    // A backup of alpha whose file name says beta: only its manifest tells the truth.
    let a2 = backup(&p.ctx, &opts("alpha", Some("beta")), &NoProgress).await.unwrap();
    let b2 = backup(&p.ctx, &opts("beta", None), &NoProgress).await.unwrap();
    assert!(a2.id.as_str().starts_with("beta_"), "{}", a2.id);

    // Every backup is listed under its own database.
    let listed = ops_backup::list(&p.ctx).await.unwrap();
    let owner = |id: &ops_backup::naming::BackupId| {
        listed.iter().find(|b| &b.id == id).and_then(|b| b.database.clone()).unwrap_or_default()
    };
    assert_eq!(
        [owner(&a1.id), owner(&a2.id), owner(&b1.id), owner(&b2.id)],
        ["alpha", "alpha", "beta", "beta"].map(str::to_owned)
    );
    let alpha_only = ops_backup::catalog::of_database(listed.clone(), "alpha");
    assert_eq!(alpha_only.iter().map(|b| b.id.clone()).collect::<Vec<_>>(), [a2.id.clone(), a1.id.clone()]);

    // `latest` is the database's own newest backup, for restores, drills and verification.
    let plan =
        restore::plan(&p.ctx, &RestoreOptions { database: Some("alpha".into()), ..Default::default() }).await.unwrap();
    assert_eq!(plan.source.manifest.as_ref().map(|m| m.id.clone()), Some(a2.id.clone()));
    let v = ops_backup::verify(&p.ctx, Some("alpha"), "latest").await.unwrap();
    assert_eq!(v.id, a2.id);

    // Another database's backup is refused, naming both, unless asked for explicitly.
    let other = RestoreOptions { database: Some("alpha".into()), source: b1.id.to_string(), ..Default::default() };
    let e = restore::plan(&p.ctx, &other).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.message().contains("database beta, not of alpha"), "{e}");
    let forced = RestoreOptions { allow_other_database: true, ..other };
    assert!(restore::plan(&p.ctx, &forced).await.is_ok());

    // Restoring alpha's latest brings alpha's tables back, and beta is untouched.
    psql(&p.rt, &p.pg, "alpha", "CREATE TABLE after_backup (x int)").await;
    let opts = RestoreOptions { database: Some("alpha".into()), health_timeout_secs: 5, ..Default::default() };
    let plan = restore::plan(&p.ctx, &opts).await.unwrap();
    let done = ops_backup::restore(&p.ctx, &plan, &opts, &NoProgress).await.unwrap();
    assert!(done.check.ok, "{:?}", done.check);
    assert_eq!(tables(&p, "alpha").await, "a_only");
    assert_eq!(psql(&p.rt, &p.pg, "alpha", "SELECT count(*) FROM a_only").await, "10");
    assert_eq!(tables(&p, "beta").await, "b_only");

    // A drill of alpha restores alpha's newest backup and measures alpha's RPO.
    require_local_postgres();
    let drill = DrillOptions {
        database: Some("alpha".into()),
        backend: DrillBackend::Local,
        timeout_secs: 300,
        ..Default::default()
    };
    let r = dr_test(&p.ctx, &drill, &NoProgress, Box::pin(std::future::pending())).await.unwrap();
    assert!(r.passed, "{:?}", r.problems);
    assert_eq!(r.backup_id.as_deref(), Some(a2.id.as_str()));
    let tables_proved: Vec<String> = r.check.as_ref().unwrap().tables.iter().map(|t| t.table.clone()).collect();
    assert_eq!(tables_proved, ["public.a_only"], "alpha's dump, not beta's");

    // Retention keeps each database's own newest backup (keep-daily = 1 per database).
    let plan = ops_backup::prune(
        &p.ctx,
        &ops_backup::PruneOptions { dry_run: true, ..Default::default() },
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let decisions = &plan.destinations[0].decisions;
    let action = |id: &ops_backup::naming::BackupId| decisions.iter().find(|d| &d.id == id).unwrap().action;
    assert_eq!(
        [action(&a2.id), action(&b2.id), action(&a1.id), action(&b1.id)],
        [Verdict::Keep, Verdict::Keep, Verdict::Delete, Verdict::Delete],
        "{decisions:#?}"
    );
    ops_backup::prune(&p.ctx, &ops_backup::PruneOptions { dry_run: false, ..Default::default() }, chrono::Utc::now())
        .await
        .unwrap();
    let left: Vec<_> = ops_backup::list(&p.ctx).await.unwrap().into_iter().map(|b| b.id).collect();
    assert_eq!(left, [b2.id.clone(), a2.id.clone()]);
    drop(p.dir);
}

/// A gzip file holding `sql`.
fn gz(dir: &std::path::Path, name: &str, sql: &str) -> String {
    let path = dir.join(name);
    let mut w = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
    w.write_all(sql.as_bytes()).unwrap();
    w.finish().unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_a_hostile_plain_dump_cannot_run_psql_meta_commands() {
    let p = pair().await;
    let marker = std::env::temp_dir().join(unique("ops-pwned"));
    let m = marker.display();
    let hostile = [
        format!("\\! touch {m}\nCREATE TABLE t (x int);\n"),
        format!("CREATE TABLE t (x int); \\! touch {m}\n"),
        format!("CREATE TABLE t (x int);\n\\copy t to program 'touch {m}'\n"),
        // Its own restrict lines do not open the door: the key is ours.
        format!("\\restrict abc\n\\unrestrict abc\n\\! touch {m}\n"),
    ];
    let before = tables(&p, "alpha").await;
    for (i, sql) in hostile.iter().enumerate() {
        // With the trailer a real dump ends with, so only psql stands in the way.
        let sql = format!("{sql}\n--\n-- PostgreSQL database dump complete\n--\n");
        let source = gz(p.dir.path(), &format!("hostile{i}.sql.gz"), &sql);
        let opts = RestoreOptions {
            database: Some("alpha".into()),
            source: source.clone(),
            allow_host_path: true,
            ..Default::default()
        };
        // Without a manifest nothing says whose dump it is: refused unless allowed.
        let e = restore::plan(&p.ctx, &opts).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        assert!(e.message().contains("has no manifest"), "{e}");
        let opts = RestoreOptions { allow_other_database: true, ..opts };
        let plan = restore::plan(&p.ctx, &opts).await.unwrap();
        let e = ops_backup::restore(&p.ctx, &plan, &opts, &NoProgress).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
        assert!(e.message().contains("restricted"), "dump {i}: {e}");
        assert!(!marker.exists(), "dump {i} ran a shell command");
        assert_eq!(tables(&p, "alpha").await, before, "dump {i}: the live database is untouched");

        require_local_postgres();
        let drill = DrillOptions {
            database: Some("alpha".into()),
            source,
            backend: DrillBackend::Local,
            timeout_secs: 300,
            allow_host_path: true,
            allow_other_database: true,
            ..Default::default()
        };
        let r = dr_test(&p.ctx, &drill, &NoProgress, Box::pin(std::future::pending())).await.unwrap();
        assert!(!r.passed, "dump {i}: the drill fails");
        assert!(!marker.exists(), "dump {i} ran a shell command in a drill");
    }
}

async fn post(state: &Arc<ops_server::AppState>, uri: &str, body: &str) -> (StatusCode, String) {
    let req = Request::post(uri)
        .header("authorization", "Bearer admin-key-0123456789")
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let resp = ops_server::app(Arc::clone(state)).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn safety_the_api_never_reads_a_host_path_and_refuses_unknown_fields() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("placed.sql.gz");
    std::fs::write(&existing, b"not even gzip").unwrap();
    let mut config = OpsConfig::default();
    config.databases.insert(
        "main".to_owned(),
        DatabaseConfig { url: SecretUrl::new("postgres://u:p@127.0.0.1:1/app"), ..Default::default() },
    );
    config.storage = Some(StorageConfig { url: dir.path().display().to_string(), ..Default::default() });
    config.server.admin_keys = vec![ops_core::Secret::new("admin-key-0123456789")];
    let state = ops_server::AppState::from_config(config, None, Default::default());

    for route in ["/api/v1/restores", "/api/v1/dr-tests"] {
        let mut answers = Vec::new();
        for path in [existing.display().to_string(), dir.path().join("absent.sql.gz").display().to_string()] {
            let confirm = if route == "/api/v1/restores" { r#", "confirm": true"# } else { "" };
            let (status, body) = post(&state, route, &format!(r#"{{"source": "{path}"{confirm}}}"#)).await;
            answers.push((status, body.replace(&path, "PATH")));
        }
        assert_eq!(answers[0].0, StatusCode::UNPROCESSABLE_ENTITY, "{route}: {answers:?}");
        assert_eq!(answers[0], answers[1], "{route}: the answer must not tell whether the file exists");
        assert!(answers[0].1.contains("host paths are for the command line only"), "{answers:?}");
    }
    let (status, body) = post(&state, "/api/v1/restores", r#"{"bogus": 1, "in_place": true, "confirm": true}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("unknown field"), "{body}");
    let (status, body) = post(&state, "/api/v1/restores", r#"{"allow-host-path": true, "source": "/x.sql.gz"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = post(&state, "/api/v1/backups", r#"{"database": "nope"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, metrics) = {
        let req = Request::get("/metrics").body(Body::empty()).unwrap();
        let resp = ops_server::app(Arc::clone(&state)).oneshot(req).await.unwrap();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        ((), String::from_utf8_lossy(&bytes).into_owned())
    };
    assert!(!metrics.contains("nope"), "an unknown database never becomes a label");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_a_full_disk_fails_the_backup_and_keeps_nothing() {
    let p = pair().await;
    // Several MiB compressed: the store fails while the dump still streams, so the pipeline
    // sees a destination that stopped taking it.
    psql(&p.rt, &p.pg, "alpha", "INSERT INTO a_only SELECT generate_series(11, 3000000)").await;
    let before = psql(&p.rt, &p.pg, "alpha", "SELECT count(*) FROM a_only").await;
    // A 256 KiB tmpfs as the backup directory: the dump does not fit.
    let dir = tempfile::tempdir().unwrap();
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs"])
        .arg(dir.path())
        .status()
        .expect("mount (the tests run as root)");
    assert!(mount.success(), "mount a tmpfs (the tests run as root)");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(dir.path().to_path_buf());
    let mut config = (*p.ctx.config).clone();
    config.storage = Some(StorageConfig { url: dir.path().display().to_string(), ..Default::default() });
    let ctx = Context::from_config(config).unwrap();
    let e = backup(&ctx, &opts("alpha", None), &NoProgress).await.unwrap_err();
    // The store's own reason, named with the destination.
    assert!(e.message().contains("upload to") && e.message().contains("No space left"), "{e}");
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.starts_with(".ops-tmp") || n.ends_with(".sql.gz")), "{names:?}");
    assert!(
        ops_backup::list(&ctx).await.map(|l| l.iter().all(|b| !b.complete)).unwrap_or(true),
        "nothing looks complete"
    );
    assert_eq!(psql(&p.rt, &p.pg, "alpha", "SELECT count(*) FROM a_only").await, before, "live database unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_a_drill_of_a_backup_from_another_major_version_says_what_is_missing() {
    require_local_postgres();
    let p = pair().await;
    let b = backup(&p.ctx, &opts("alpha", None), &NoProgress).await.unwrap();
    // The manifest says the dump came from PostgreSQL 16; this host has 15's programs only.
    let path = p.dir.path().join(b.id.manifest_key());
    let text = std::fs::read_to_string(&path).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["server_version"] = serde_json::json!("16.4 (Debian 16.4-1)");
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let drill = DrillOptions {
        database: Some("alpha".into()),
        backend: DrillBackend::Local,
        timeout_secs: 120,
        ..Default::default()
    };
    let e = dr_test(&p.ctx, &drill, &NoProgress, Box::pin(std::future::pending())).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("16") && e.message().contains("15"), "names both versions: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_a_backup_whose_manifest_cannot_be_read_is_never_guessed_or_pruned() {
    let p = pair().await;
    let old = backup(&p.ctx, &opts("alpha", None), &NoProgress).await.unwrap();
    let new = backup(&p.ctx, &opts("alpha", None), &NoProgress).await.unwrap();
    std::fs::write(p.dir.path().join(old.id.manifest_key()), b"{ not json").unwrap();
    let listed = ops_backup::list(&p.ctx).await.unwrap();
    let entry = listed.iter().find(|b| b.id == old.id).unwrap();
    assert_eq!(entry.database, None, "not guessed from its name");
    let plan = ops_backup::prune(
        &p.ctx,
        &ops_backup::PruneOptions { dry_run: false, ..Default::default() },
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let d = &plan.destinations[0].decisions;
    let old_d = d.iter().find(|x| x.id == old.id).unwrap();
    assert_eq!(old_d.action, Verdict::Keep, "{d:#?}");
    assert!(old_d.rule.contains("database unknown"), "{old_d:?}");
    assert!(p.dir.path().join(&old.manifest.dump_key).exists());
    // `latest` of alpha is the readable one.
    let plan =
        restore::plan(&p.ctx, &RestoreOptions { database: Some("alpha".into()), ..Default::default() }).await.unwrap();
    assert_eq!(plan.source.manifest.map(|m| m.id), Some(new.id));
}
