//! Cache contract against a real Redis 7, with and without a password.

use std::time::Duration;

use ops_core::adapters::redis::RedisCache;
use ops_core::ports::{Cache, CachePing, ContainerRuntime, ExecSpec};
use ops_core::{ErrorKind, SecretUrl};

use crate::harness::{redis, require_docker};

fn cache(url: String) -> RedisCache {
    RedisCache::new(SecretUrl::new(url), Duration::from_secs(5)).unwrap()
}

async fn redis_cli(rt: &dyn ContainerRuntime, id: &str, args: &[&str]) {
    let mut cmd = vec!["redis-cli".to_owned()];
    cmd.extend(args.iter().map(|s| (*s).to_owned()));
    let out = rt.exec(id, &ExecSpec { cmd, ..Default::default() }).await.unwrap();
    assert_eq!(out.exit_code, 0, "{}", out.stderr);
}

#[tokio::test]
async fn redis_cache_contract_without_password() {
    let rt = require_docker().await;
    let (c, port) = redis(None).await;
    let cache = cache(format!("redis://127.0.0.1:{port}"));
    assert!(matches!(cache.ping().await.unwrap(), CachePing::Pong { .. }));

    redis_cli(&rt, c.id(), &["RPUSH", "celery", "a", "b", "c"]).await;
    redis_cli(&rt, c.id(), &["SET", "plain", "x"]).await;
    redis_cli(&rt, c.id(), &["GET", "plain"]).await; // a hit
    redis_cli(&rt, c.id(), &["GET", "missing"]).await; // a miss
    let q = cache.queue_lengths(&["celery".to_owned(), "empty".to_owned()]).await.unwrap();
    assert_eq!(q.iter().map(|q| (q.name.as_str(), q.length)).collect::<Vec<_>>(), [("celery", 3), ("empty", 0)]);
    let e = cache.queue_lengths(&["plain".to_owned()]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");

    let info = cache.info().await.unwrap();
    assert!(info.version.starts_with("7."), "{info:?}");
    assert_eq!(info.role, "master");
    assert!(info.used_memory_bytes > 0);
    assert_eq!(info.maxmemory_bytes, None);
    assert_eq!(info.maxmemory_policy, "noeviction");
    assert!(info.keyspace_hits >= 1 && info.keyspace_misses >= 1, "{info:?}");
    assert!(info.connected_clients >= 1);

    cache.config_set("maxmemory", "64mb").await.unwrap();
    cache.config_set("maxmemory-policy", "allkeys-lru").await.unwrap();
    assert_eq!(cache.config_get("maxmemory-policy").await.unwrap().as_deref(), Some("allkeys-lru"));
    assert_eq!(cache.info().await.unwrap().maxmemory_bytes, Some(64 * 1024 * 1024));
    assert_eq!(cache.config_get("no-such-param").await.unwrap(), None);
    let e = cache.config_set("maxmemory-policy", "sometimes").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[tokio::test]
async fn redis_passwords_noauth_and_wrongpass_are_told_apart() {
    let _rt = require_docker().await;
    let (_c, port) = redis(Some("s3cret-pw")).await;
    let good = cache(format!("redis://:s3cret-pw@127.0.0.1:{port}"));
    assert!(matches!(good.ping().await.unwrap(), CachePing::Pong { .. }));
    assert_eq!(good.info().await.unwrap().role, "master");

    assert_eq!(cache(format!("redis://127.0.0.1:{port}")).ping().await.unwrap(), CachePing::NoAuth);
    assert_eq!(cache(format!("redis://:wrong@127.0.0.1:{port}")).ping().await.unwrap(), CachePing::WrongPass);
    let e = cache(format!("redis://:wrong@127.0.0.1:{port}")).info().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.to_string().contains("wrong@"), "no password in errors: {e}");
}

#[tokio::test]
async fn redis_unreachable_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let e = cache(format!("redis://:pw@127.0.0.1:{port}")).ping().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
}

/// `opsctl probe redis` as a person runs it: the verdict, WRONGPASS named, no password shown,
/// monitoring-plugin exit codes; a config name instead of a URL.
#[test]
fn redis_cli_probe_names_wrongpass_and_follows_the_plugin_codes() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (container, port) = rt.block_on(redis(Some("s3cret-pass")));
    let opsctl = |args: &[&str]| {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut argv = vec!["opsctl"];
        argv.extend_from_slice(args);
        let code = ops_cli::run(argv, &Default::default(), &mut out, &mut err);
        (code, String::from_utf8(out).unwrap() + &String::from_utf8(err).unwrap())
    };
    // --json keeps stdout one document; a warning goes to stderr.
    let stdout_of = |args: &[&str]| {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut argv = vec!["opsctl"];
        argv.extend_from_slice(args);
        let code = ops_cli::run(argv, &Default::default(), &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    };
    let good = format!("redis://:s3cret-pass@127.0.0.1:{port}");
    let (code, out) = opsctl(&["probe", "redis", &good]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK  redis:127.0.0.1:"), "{out}");

    let wrong = format!("redis://:not-the-pass@127.0.0.1:{port}");
    let (code, out, err) = stdout_of(&["probe", "redis", &wrong, "--json"]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("visible to every local user"), "a password in argv is warned about: {err}");
    assert!(!err.contains("not-the-pass"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["problems"][0]["runbook"], "cache-down");
    assert!(v["message"].as_str().unwrap().contains("WRONGPASS"), "{out}");
    assert!(!out.contains("not-the-pass") && !out.contains("s3cret-pass"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ops.toml");
    std::fs::write(&config, format!("[caches.main]\nurl = \"redis://127.0.0.1:{port}\"\n")).unwrap();
    let (code, out) = opsctl(&["probe", "redis", "main", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 2, "no password: {out}");
    assert!(out.contains("NOAUTH"), "{out}");
    rt.block_on(container.rm()).unwrap();
}
