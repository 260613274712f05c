//! Memory, hit rate and queue thresholds on parsed `INFO`, and the PING answers with a mock.

use ops_core::ports::cache::MockCache;

use super::*;

fn info(used: u64, max: u64, policy: &str, hits: u64, misses: u64) -> CacheInfo {
    CacheInfo::parse(&format!(
        "redis_version:7.0.15\r\nrole:master\r\nuptime_in_seconds:3600\r\nused_memory:{used}\r\nmaxmemory:{max}\r\n\
         maxmemory_policy:{policy}\r\nkeyspace_hits:{hits}\r\nkeyspace_misses:{misses}\r\nevicted_keys:0\r\n"
    ))
}

fn kinds(problems: &[Problem]) -> Vec<(Runbook, Status)> {
    problems.iter().map(|p| (p.runbook, p.status)).collect()
}

#[test]
fn noeviction_near_full_rejects_writes() {
    let t = RedisThresholds::default();
    let (obs, p) = assess(&info(99, 100, "noeviction", 0, 0), &t);
    assert_eq!(kinds(&p), [(Runbook::CacheFull, Status::Critical)]);
    assert!(p[0].message.ends_with("with maxmemory-policy noeviction: writes will be rejected"), "{}", p[0].message);
    assert_eq!(obs.iter().find(|o| o.name == "memory").map(|o| o.value), Some(99.0));
    assert_eq!(kinds(&assess(&info(85, 100, "noeviction", 0, 0), &t).1), [(Runbook::CacheFull, Status::Warn)]);
    assert!(assess(&info(50, 100, "noeviction", 0, 0), &t).1.is_empty());
    assert!(assess(&info(500, 0, "noeviction", 0, 0), &t).1.is_empty(), "no maxmemory, no share");
}

#[test]
fn rejected_writes_make_it_critical_below_the_critical_share() {
    let mut i = info(90, 100, "noeviction", 0, 0);
    i.raw.insert("errorstat_OOM".to_owned(), "count=3".to_owned());
    let p = assess(&i, &RedisThresholds::default()).1;
    assert_eq!(kinds(&p), [(Runbook::CacheFull, Status::Critical)]);
    assert_eq!(p[0].evidence[0], "3 commands already rejected with OOM (errorstat_OOM)");
}

#[test]
fn an_evicting_cache_near_full_is_degraded() {
    let p = assess(&info(99, 100, "allkeys-lru", 0, 0), &RedisThresholds::default()).1;
    assert_eq!(kinds(&p), [(Runbook::CacheDegraded, Status::Warn)]);
}

#[test]
fn hit_rate_only_after_enough_lookups() {
    let t = RedisThresholds::default();
    assert!(assess(&info(1, 0, "noeviction", 5, 45), &t).1.is_empty(), "50 lookups are too few");
    let (obs, p) = assess(&info(1, 0, "noeviction", 65, 35), &t);
    assert_eq!(kinds(&p), [(Runbook::CacheDegraded, Status::Warn)]);
    assert_eq!(p[0].message, "hit rate 65 % (65 hits, 35 misses since start 1 h ago)");
    assert_eq!(obs.iter().find(|o| o.name == "hit_rate").map(|o| o.value), Some(65.0));
    assert_eq!(kinds(&assess(&info(1, 0, "noeviction", 59, 41), &t).1), [(Runbook::CacheDegraded, Status::Critical)]);
    assert!(assess(&info(1, 0, "noeviction", 70, 30), &t).1.is_empty());
}

#[test]
fn queue_backlog_by_length() {
    let t = QueueThresholds::default();
    let q = |name: &str, length| QueueLength { name: name.to_owned(), length };
    let (obs, p) = backlog(&[q("celery", 100), q("emails", 101), q("imports", 1001)], &t);
    assert_eq!(obs.len(), 3);
    assert_eq!(obs[0].labels["queue"], "celery");
    assert_eq!(kinds(&p), [(Runbook::QueueBacklog, Status::Warn), (Runbook::QueueBacklog, Status::Critical)]);
    assert_eq!(p[0].message, "queue emails holds 101 tasks (over 100): workers are missing or slow");
}

fn url() -> SecretUrl {
    SecretUrl::new("redis://:hunter2@cache:6379/0")
}

#[tokio::test]
async fn ping_answers_are_named() {
    type Answer = fn() -> ops_core::Result<CachePing>;
    let cases: [(Answer, &str); 3] = [
        (|| Ok(CachePing::NoAuth), "NOAUTH"),
        (|| Ok(CachePing::WrongPass), "WRONGPASS"),
        (|| Err(ops_core::Error::unavailable("ping: connection refused")), "unreachable: "),
    ];
    for (answer, named) in cases {
        let mut cache = MockCache::new();
        cache.expect_ping().returning(answer);
        let r = probe("main", &url(), &cache, &RedisThresholds::default(), Duration::from_secs(1)).await;
        assert_eq!((r.name.as_str(), r.status), ("redis:main", Status::Critical));
        assert_eq!(r.problems[0].runbook, Runbook::CacheDown);
        assert!(r.message.starts_with(named), "{}", r.message);
        assert_eq!(r.target, "redis://:***@cache:6379/0");
    }
}

#[tokio::test]
async fn a_healthy_cache_names_role_and_version() {
    let mut cache = MockCache::new();
    cache.expect_ping().returning(|| Ok(CachePing::Pong { latency: Duration::from_millis(2) }));
    cache.expect_info().returning(|| Ok(info(1024 * 1024, 0, "noeviction", 10, 0)));
    let r = probe("main", &url(), &cache, &RedisThresholds::default(), Duration::from_secs(1)).await;
    assert_eq!(r.status, Status::Ok);
    assert_eq!(r.message, "PONG; master redis 7.0.15, memory 1.0 MiB (no maxmemory)");
    assert_eq!(r.observation("latency"), Some(2.0));
}

#[tokio::test]
async fn queues_depend_on_their_redis() {
    let mut cache = MockCache::new();
    cache
        .expect_queue_lengths()
        .returning(|names| Ok(names.iter().map(|n| QueueLength { name: n.clone(), length: 3 }).collect()));
    let r = queues("main", &url(), &cache, &["celery".to_owned()], &QueueThresholds::default(), Duration::from_secs(1))
        .await;
    assert_eq!((r.name.as_str(), r.status), ("queue:main", Status::Ok));
    assert_eq!(r.depends_on, ["redis:main"]);
    assert_eq!(r.message, "queue lengths: celery 3");

    let mut down = MockCache::new();
    down.expect_queue_lengths().returning(|_| Err(ops_core::Error::unavailable("connection refused")));
    let r = queues("main", &url(), &down, &["celery".to_owned()], &QueueThresholds::default(), Duration::from_secs(1))
        .await;
    assert_eq!(r.status, Status::Unknown);
}
