//! Performance analysis of the stack against real services: a Redis with hits and misses we
//! make, a big key found by sampling and a window across two runs; `redis set-policy` planned
//! and applied; containers that hold memory under a limit and burn CPU; an HTTP endpoint with a
//! known delay; and a restart of a container with its Compose dependents, in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use ops_act::{Action, services as stack_actions};
use ops_core::Context;
use ops_core::adapters::docker::DockerRuntime;
use ops_core::adapters::redis::RedisCache;
use ops_core::audit::Audit;
use ops_core::config::{HttpCheckConfig, OpsConfig, PerfConfig, ProbesConfig, ServiceMemoryThresholds};
use ops_core::ports::{Cache, ContainerRuntime, ContainerState, ExecSpec, HealthStatus, Healthcheck, RunSpec};
use ops_core::{SecretUrl, Status};
use ops_perf::{PerfFinding, SectionReport, StateDir, Window, containers, http, redis};
use ops_probes::NetOptions;

use crate::harness::{self, eventually, require_docker, start, unique};

const MB: u64 = 1024 * 1024;

fn finding<'r>(r: &'r SectionReport, check: &str, subject: &str) -> &'r PerfFinding {
    r.findings
        .iter()
        .find(|f| f.check == check && f.subject == subject)
        .unwrap_or_else(|| panic!("no {check} finding about {subject} in {r:#?}"))
}

fn value(f: &PerfFinding, name: &str) -> f64 {
    f.values.iter().find(|v| v.name == name).unwrap_or_else(|| panic!("no value {name} in {f:#?}")).value
}

/// Runs a shell script in the Redis container (its `redis-cli` reads commands from stdin).
async fn redis_sh(rt: &dyn ContainerRuntime, id: &str, script: &str) {
    let spec = ExecSpec { cmd: vec!["sh".into(), "-c".into(), script.into()], ..Default::default() };
    let out = rt.exec(id, &spec).await.unwrap();
    assert_eq!(out.exit_code, 0, "{script}: {}", out.stderr);
}

fn cache(port: u16) -> RedisCache {
    RedisCache::new(SecretUrl::new(format!("redis://127.0.0.1:{port}")), Duration::from_secs(5)).unwrap()
}

#[tokio::test]
async fn perf_stack_redis_hit_rate_big_key_and_window_across_runs() {
    let rt = require_docker().await;
    let (c, port) = harness::redis(None).await;
    let cache = cache(port);
    // 300 small keys and one of 2 MB; then 20 hits and 80 misses.
    redis_sh(&rt, c.id(), "for i in $(seq 1 300); do echo \"SET k:$i v$i\"; done | redis-cli > /dev/null").await;
    redis_sh(&rt, c.id(), "redis-cli SETRANGE big 2000000 x > /dev/null").await;
    redis_sh(
        &rt,
        c.id(),
        "{ for i in $(seq 1 20); do echo \"GET k:$i\"; done; for i in $(seq 1 80); do echo \"GET nope:$i\"; done; } \
         | redis-cli > /dev/null",
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(&dir.path().join("state"));
    let mut cfg = PerfConfig { top: 5, ..PerfConfig::default() };
    cfg.redis.big_key_bytes = MB;
    let probes = ProbesConfig::default();

    let first = redis::analyze("main", &cache, &cfg, &probes, Some(&state)).await;
    assert_eq!((first.target.as_str(), first.error.as_deref()), ("redis:main", None), "{first:#?}");
    assert!(matches!(first.window, Some(Window::ServerStart { at: Some(_) })), "{first:#?}");
    let rate = finding(&first, "hit-rate", "main");
    assert_eq!(rate.verdict, Status::Critical, "{rate:#?}");
    assert!(rate.message.starts_with("hit rate 20 % (20 hits, 80 misses since the server started"), "{}", rate.message);
    let big = finding(&first, "big-key", "big");
    assert_eq!(big.verdict, Status::Warn, "{big:#?}");
    assert!(value(big, "bytes") >= 2_000_000.0);
    assert_eq!(big.evidence[0], "every key of the database measured (301)");
    assert_eq!(first.findings.iter().filter(|f| f.check == "big-key").count(), 5);
    assert_eq!(finding(&first, "memory", "main").verdict, Status::Ok, "no maxmemory");
    assert_eq!(first.status, Status::Critical);

    // 100 hits later: the second run sees only them (all hits), though since the start the
    // rate is about 60 %.
    redis_sh(&rt, c.id(), "for i in $(seq 1 100); do echo \"GET k:$i\"; done | redis-cli > /dev/null").await;
    let second = redis::analyze("main", &cache, &cfg, &probes, Some(&state)).await;
    assert!(matches!(second.window, Some(Window::PreviousRun { .. })), "{second:#?}");
    let rate = finding(&second, "hit-rate", "main");
    assert_eq!(rate.verdict, Status::Ok, "{rate:#?}");
    assert!(rate.message.starts_with("hit rate 100 % (100 hits, 0 misses since the previous run"), "{}", rate.message);
    let since_start = cache.info().await.unwrap().hit_rate().unwrap();
    assert!(since_start < 0.7, "the cumulative rate would have been a warning: {since_start}");

    // The port itself: bounded by the sample size, largest first (its TYPE lookups are hits,
    // so it runs last).
    let sample = cache.sample_key_sizes(50, 3).await.unwrap();
    assert!(sample.sampled <= 50 && !sample.complete, "{sample:?}");
    assert_eq!(sample.largest.len(), 3);
    assert!(sample.largest.windows(2).all(|w| w[0].bytes >= w[1].bytes), "{sample:?}");
}

#[tokio::test]
async fn perf_stack_redis_full_noeviction_then_set_policy_planned_and_applied() {
    let rt = require_docker().await;
    let (c, port) = harness::redis(None).await;
    let cache = Arc::new(cache(port));
    redis_sh(
        &rt,
        c.id(),
        "for i in $(seq 1 200); do echo \"SET k:$i $(printf '%0200d' $i)\"; done | redis-cli > /dev/null",
    )
    .await;
    // maxmemory just above what is used: 97 % full, with noeviction.
    let used = cache.info().await.unwrap().used_memory_bytes;
    cache.config_set("maxmemory", &(used * 100 / 97).to_string()).await.unwrap();
    let (cfg, probes) = (PerfConfig::default(), ProbesConfig::default());
    let before = redis::analyze("main", cache.as_ref(), &cfg, &probes, None).await;
    let policy = finding(&before, "eviction-policy", "main");
    assert_eq!(policy.verdict, Status::Critical, "{before:#?}");
    assert!(policy.message.contains("writes will be rejected"), "{}", policy.message);
    assert_eq!(policy.action.as_deref(), Some("opsctl redis set-policy allkeys-lru"));
    assert_eq!(finding(&before, "memory", "main").verdict, Status::Critical);

    let mut ctx = Context::empty(OpsConfig::default());
    ctx.caches.insert("main".to_owned(), cache.clone());
    let action = Action::RedisSetPolicy { cache: None, policy: "allkeys-lru".to_owned() };
    let plan = stack_actions::plan(&ctx, &action).await.unwrap();
    assert_eq!(plan.summary, "redis:main maxmemory-policy noeviction -> allkeys-lru");
    assert_eq!(plan.targets[0].details["new-policy"], "allkeys-lru");
    assert_eq!(
        cache.config_get("maxmemory-policy").await.unwrap().as_deref(),
        Some("noeviction"),
        "a plan changes nothing"
    );

    let dir = tempfile::tempdir().unwrap();
    let audit = Audit::at(&dir.path().join("audit.jsonl"), "it").unwrap();
    let outcomes = stack_actions::apply(&ctx, &plan, &audit).await.unwrap();
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes[0].ok, "{outcomes:#?}");
    assert_eq!(cache.config_get("maxmemory-policy").await.unwrap().as_deref(), Some("allkeys-lru"));
    let entries = audit.log().read().unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!((e.actor.as_str(), e.action.as_str(), e.target.as_str()), ("it", "redis-set-policy", "redis:main"));
    assert_eq!(
        (e.before["maxmemory-policy"].as_str(), e.after["maxmemory-policy"].as_str()),
        (Some("noeviction"), Some("allkeys-lru"))
    );
    assert_eq!(e.result, "ok");

    let after = redis::analyze("main", cache.as_ref(), &cfg, &probes, None).await;
    assert_eq!(finding(&after, "eviction-policy", "main").verdict, Status::Ok, "{after:#?}");
    // Applying the same plan again finds the policy changed since: skipped, not audited.
    let again = stack_actions::apply(&ctx, &plan, &audit).await.unwrap();
    assert!(!again[0].ok && again[0].result.starts_with("skipped:"), "{again:#?}");
    assert_eq!(audit.log().read().unwrap().len(), 1);
}

/// Stops at once on SIGTERM (a plain `sleep` as PID 1 ignores it, and a restart would wait for
/// the stop timeout).
const IDLE: &str = "trap 'exit 0' TERM; sleep 300 & wait";

#[tokio::test]
async fn perf_stack_containers_memory_over_limit_share_and_service_threshold() {
    let rt = require_docker().await;
    let project = unique("opsit-perf");
    // About 57 MiB in /dev/shm (memory that cannot be reclaimed without swap) under an 80 MiB
    // limit, and a busy loop.
    let mut indexer = service(&project, "indexer", "head -c 60000000 /dev/zero > /dev/shm/fill && while :; do :; done");
    indexer.memory_limit_bytes = Some(80 * MB);
    let (indexer_name, _indexer) = start(&rt, &indexer).await;
    let (_, _api) = start(&rt, &service(&project, "api", IDLE)).await;
    eventually("the indexer holding its memory", Duration::from_secs(30), || async {
        rt.stats(&indexer_name).await.ok().filter(|s| s.memory_usage_bytes > 50 * MB)
    })
    .await;

    let mut cfg = PerfConfig::default();
    cfg.containers.cpu_warn_percent = 20.0;
    cfg.containers.cpu_critical_percent = 10_000.0;
    cfg.containers.services.insert(
        "indexer".to_owned(),
        ServiceMemoryThresholds { memory_warn_mb: Some(20), memory_critical_mb: Some(40) },
    );
    let mut probes = ProbesConfig::default();
    probes.container.memory_warn_percent = 50.0;
    probes.container.memory_critical_percent = 99.0;

    // A busy loop on a shared machine may get a slow first sample: look again if needed.
    let report = eventually("the indexer's CPU sampled busy", Duration::from_secs(60), || async {
        let r = containers::analyze(&rt, Some(&project), &cfg, &probes).await;
        let busy = r.findings.iter().any(|f| f.check == "cpu" && f.subject == "indexer" && f.verdict == Status::Warn);
        busy.then_some(r)
    })
    .await;
    assert_eq!((report.target.as_str(), report.status), ("containers", Status::Critical), "{report:#?}");
    let memory = finding(&report, "memory", "indexer");
    assert_eq!(memory.verdict, Status::Critical, "{memory:#?}");
    let share = value(memory, "memory");
    assert!(share > 50.0 && share < 99.0, "{memory:#?}");
    assert_eq!(value(memory, "memory_limit"), (80 * MB) as f64);
    assert!(
        memory.evidence.iter().any(|e| e.contains("of its limit (probes.container.memory-warn-percent)")),
        "{memory:#?}"
    );
    assert!(
        memory.evidence.iter().any(|e| e.contains("over 40 MB (perf.containers.services.indexer.memory-critical-mb)")),
        "{memory:#?}"
    );
    assert_eq!(memory.action.as_deref(), Some("opsctl restart indexer"));
    let api = finding(&report, "memory", "api");
    assert_eq!(api.verdict, Status::Ok);
    assert!(api.message.ends_with("(no limit)"), "{}", api.message);
    assert_eq!(finding(&report, "cpu", "api").verdict, Status::Ok);
}

/// Every tenth request to `/delay` takes 900 ms; every fourth to `/flaky` fails.
async fn serve() -> SocketAddr {
    let delays = Arc::new(AtomicU64::new(0));
    let flakes = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new()
        .route(
            "/delay",
            get(move || async move {
                if delays.fetch_add(1, Ordering::SeqCst) % 10 == 9 {
                    tokio::time::sleep(Duration::from_millis(900)).await;
                }
                "ok"
            }),
        )
        .route(
            "/flaky",
            get(move || async move {
                if flakes.fetch_add(1, Ordering::SeqCst) % 4 == 3 {
                    (StatusCode::INTERNAL_SERVER_ERROR, "boom")
                } else {
                    (StatusCode::OK, "ok")
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn check(addr: SocketAddr, path: &str) -> HttpCheckConfig {
    HttpCheckConfig {
        name: "api".to_owned(),
        url: SecretUrl::new(format!("http://{addr}{path}")),
        ..Default::default()
    }
}

#[tokio::test]
async fn perf_stack_http_latency_percentiles_and_errors() {
    let addr = serve().await;
    let probes = ProbesConfig::default();
    let net = NetOptions::new(Duration::from_secs(5));

    // 2 slow requests of 20: the median is fast, P95 is over the critical 800 ms.
    let r = http::analyze(&check(addr, "/delay"), &probes, 20, &net).await;
    assert_eq!((r.target.as_str(), r.status, r.queries), ("http:api", Status::Critical, 20), "{r:#?}");
    let latency = finding(&r, "latency", "api");
    assert!(value(latency, "ttfb_p50") < 400.0, "{latency:#?}");
    assert!(value(latency, "ttfb_p95") >= 900.0, "{latency:#?}");
    assert!(value(latency, "total_p99") >= 900.0, "{latency:#?}");
    assert!(latency.message.ends_with("p95 over 800 ms: scale or optimize"), "{}", latency.message);
    assert!(r.findings.iter().all(|f| f.check != "errors"), "slow is not failed: {r:#?}");

    // A check's own thresholds win over [probes.http].
    let lenient = HttpCheckConfig { ttfb_warn_ms: Some(950), ttfb_critical_ms: Some(2000), ..check(addr, "/delay") };
    let r = http::analyze(&lenient, &probes, 10, &net).await;
    assert_eq!(finding(&r, "latency", "api").verdict, Status::Ok, "{r:#?}");

    let r = http::analyze(&check(addr, "/flaky"), &probes, 8, &net).await;
    let errors = finding(&r, "errors", "api");
    assert_eq!((errors.verdict, errors.message.as_str()), (Status::Warn, "2 of 8 requests failed"), "{r:#?}");
    assert!(errors.evidence[0].contains("500"), "{errors:#?}");
    assert_eq!(value(finding(&r, "latency", "api"), "samples"), 6.0);

    // Nothing listening: three refusals, then it gives up.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let r = http::analyze(&check(closed, "/"), &probes, 10, &net).await;
    let errors = finding(&r, "errors", "api");
    assert_eq!((errors.verdict, r.queries), (Status::Critical, 3), "{r:#?}");
}

async fn started_at(rt: &DockerRuntime, name: &str) -> chrono::DateTime<chrono::Utc> {
    rt.inspect(name).await.unwrap().started_at.unwrap()
}

#[tokio::test]
async fn perf_stack_restart_with_dependents_in_dependency_order() {
    let rt = Arc::new(require_docker().await);
    let project = unique("opsit-perf-restart");
    let depends = |spec: &mut RunSpec, on: &str| {
        spec.labels.insert(ops_core::stack::COMPOSE_DEPENDS_ON_LABEL.to_owned(), on.to_owned());
    };
    let mut db = service(&project, "db", IDLE);
    db.healthcheck = Some(Healthcheck {
        cmd: vec!["true".into()],
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        retries: 1,
    });
    let mut api = service(&project, "api", IDLE);
    depends(&mut api, "db:service_healthy:false");
    let mut worker = service(&project, "worker", IDLE);
    depends(&mut worker, "api:service_started:false");
    let mut web = service(&project, "web", IDLE);
    depends(&mut web, "api:service_started:false,db:service_healthy:false");
    let mut cron = service(&project, "cron", "exit 0");
    depends(&mut cron, "worker:service_started:false");
    let other = service(&project, "other", IDLE);

    let (db_name, _db) = start(&rt, &db).await;
    let (api_name, _api) = start(&rt, &api).await;
    let (worker_name, _worker) = start(&rt, &worker).await;
    let (web_name, _web) = start(&rt, &web).await;
    let (cron_name, _cron) = start(&rt, &cron).await;
    let (other_name, _other) = start(&rt, &other).await;
    eventually("db healthy and cron done", Duration::from_secs(30), || async {
        let db = rt.inspect(&db_name).await.ok()?;
        let cron = rt.inspect(&cron_name).await.ok()?;
        (db.health == HealthStatus::Healthy && cron.state == ContainerState::Exited).then_some(())
    })
    .await;

    let mut config = OpsConfig::default();
    config.project.compose_project = Some(project.clone());
    let mut ctx = Context::empty(config);
    ctx.containers = Some(rt.clone());
    let action = Action::Restart { service: "db".to_owned(), with_dependents: true };
    let plan = stack_actions::plan(&ctx, &action).await.unwrap();
    let order: Vec<&str> = plan.targets.iter().map(|t| t.details["container"].as_str()).collect();
    assert_eq!(order, [db_name.as_str(), api_name.as_str(), web_name.as_str(), worker_name.as_str()], "{plan:#?}");
    assert_eq!(plan.targets[0].details["state"], "running");
    assert_eq!(plan.targets[3].details["role"], "dependent");
    assert_eq!(plan.notes, [format!("{cron_name} depends on it but is exited: left alone")]);

    let mut before = Vec::new();
    for name in [&db_name, &api_name, &web_name, &worker_name, &other_name] {
        before.push(started_at(&rt, name).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let audit = Audit::at(&dir.path().join("audit.jsonl"), "it").unwrap();
    let outcomes = stack_actions::apply(&ctx, &plan, &audit).await.unwrap();
    assert!(outcomes.iter().all(|o| o.ok), "{outcomes:#?}");
    let mut after = Vec::new();
    for name in [&db_name, &api_name, &web_name, &worker_name, &other_name] {
        after.push(started_at(&rt, name).await);
    }
    for i in 0..4 {
        assert!(after[i] > before[i], "target {i} restarted: {before:?} -> {after:?}");
    }
    assert!(after.windows(2).take(3).all(|w| w[0] < w[1]), "restarted in plan order: {after:?}");
    assert_eq!(after[4], before[4], "an unrelated container is left alone");
    assert_eq!(outcomes[0].after["health"], "healthy", "waited for the healthcheck: {outcomes:#?}");
    let entries = audit.log().read().unwrap();
    let targets: Vec<&str> = entries.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(targets, plan.targets.iter().map(|t| t.id.as_str()).collect::<Vec<_>>());
    assert!(entries.iter().all(|e| e.action == "restart" && e.result == "ok"));
}

#[tokio::test]
async fn perf_stack_host_disks_memory_and_load_of_this_machine() {
    let r = ops_perf::host::analyze(&ProbesConfig::default(), None).await;
    assert_eq!((r.target.as_str(), r.error.as_deref()), ("host", None), "{r:#?}");
    assert!(r.findings.iter().any(|f| f.check == "disk" && f.values.iter().any(|v| v.name == "disk_used")), "{r:#?}");
    let memory = r.findings.iter().find(|f| f.check == "memory").expect("a memory finding");
    assert!(value(memory, "memory_used") > 0.0);
    assert!(r.findings.iter().any(|f| f.check == "load"), "{r:#?}");
    // Every threshold at 0: everything measured is over.
    let mut zero = ProbesConfig::default();
    zero.host.disk_warn_percent = 0.0;
    zero.host.memory_warn_percent = 0.0;
    let r = ops_perf::host::analyze(&zero, None).await;
    assert!(r.status >= Status::Warn, "{r:#?}");
    assert!(r.findings.iter().any(|f| f.check == "memory" && f.verdict >= Status::Warn), "{r:#?}");
}

fn service(project: &str, service: &str, script: &str) -> RunSpec {
    let spec =
        crate::harness::compose_service("perf_stack", project, service, vec!["sh".into(), "-c".into(), script.into()]);
    RunSpec { name: Some(unique(&format!("opsit-perf-{service}"))), ..spec }
}
