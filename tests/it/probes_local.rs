//! Local probes against real services: containers that are OOM-killed, crash-loop and fail
//! their healthcheck, error lines in their logs, Redis with and without a password, full and
//! missing its cache, PostgreSQL out of connections, idle in a transaction and stopped, and
//! this machine's disks, memory and load.

use std::path::Path;
use std::time::Duration;

use ops_core::adapters::docker::DockerRuntime;
use ops_core::adapters::postgres::{PostgresDatabase, PostgresOptions};
use ops_core::adapters::redis::RedisCache;
use ops_core::config::{
    ContainerThresholds, HostThresholds, LogThresholds, PostgresThresholds, QueueThresholds, RedisThresholds,
};
use ops_core::ports::{
    Cache, ContainerRuntime, ContainerState, Database, ExecSpec, HealthStatus, Healthcheck, Readiness, RestartPolicy,
    RunSpec,
};
use ops_core::{Runbook, SecretUrl, Status};
use ops_probes::{ProbeReport, container, host, logs, postgres, redis};

use crate::harness::{self, eventually, require_docker, start, unique};

const TIMEOUT: Duration = Duration::from_secs(20);

fn find<'r>(reports: &'r [ProbeReport], name: &str) -> &'r ProbeReport {
    reports.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no report {name} in {reports:#?}"))
}

fn runbooks(r: &ProbeReport) -> Vec<(Runbook, Status)> {
    r.problems.iter().map(|p| (p.runbook, p.status)).collect()
}

fn has(r: &ProbeReport, runbook: Runbook, status: Status) -> bool {
    r.problems.iter().any(|p| p.runbook == runbook && p.status == status)
}

#[tokio::test]
async fn probes_local_containers_of_a_compose_project() {
    let rt = require_docker().await;
    let project = unique("opsit-probes");

    let mut web = service(
        &project,
        "web",
        &[
            "sh",
            "-c",
            "echo started; echo 'ERROR: payment failed via postgres://app:hunter2@db/app'; echo 'panic: boom' >&2; \
         exec sleep 300",
        ],
    );
    web.labels.insert(
        ops_core::stack::COMPOSE_DEPENDS_ON_LABEL.to_owned(),
        "db:service_healthy:false,api:service_started:false".to_owned(),
    );
    web.memory_limit_bytes = Some(256 * 1024 * 1024);
    let mut worker = service(&project, "worker", &["tail", "/dev/zero"]);
    worker.memory_limit_bytes = Some(32 * 1024 * 1024);
    let mut api = service(&project, "api", &["sh", "-c", "echo 'fatal: DATABASE_URL is not set' >&2; exit 3"]);
    api.restart = RestartPolicy::Always;
    let mut db = service(&project, "db", &["sleep", "300"]);
    db.healthcheck = Some(Healthcheck {
        cmd: vec!["sh".into(), "-c".into(), "echo db not reachable; exit 1".into()],
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        retries: 1,
    });
    let job = service(&project, "job", &["true"]);

    let (web_name, _web) = start(&rt, &web).await;
    let (worker_name, _worker) = start(&rt, &worker).await;
    let (api_name, _api) = start(&rt, &api).await;
    let (db_name, _db) = start(&rt, &db).await;
    let (_, _job) = start(&rt, &job).await;

    let oom = eventually("the worker OOM-killed", Duration::from_secs(60), || async {
        rt.inspect(&worker_name).await.ok().filter(|d| d.state == ContainerState::Exited)
    })
    .await;
    // Docker 20.10 on cgroup v1 sometimes leaves OOMKilled false for a real OOM kill: exit
    // code 137 alone is then a likely OOM kill, a warning.
    let oom_status = if oom.oom_killed { Status::Critical } else { Status::Warn };
    assert_eq!(oom.exit_code, Some(137));
    eventually("the api restarting over and over", Duration::from_secs(60), || async {
        rt.inspect(&api_name).await.ok().filter(|d| d.restart_count >= 3)
    })
    .await;
    eventually("the db unhealthy", Duration::from_secs(60), || async {
        rt.inspect(&db_name).await.ok().filter(|d| d.health == HealthStatus::Unhealthy)
    })
    .await;

    let t = ContainerThresholds {
        critical: vec!["web".to_owned()],
        ignore: vec!["job".to_owned()],
        ..ContainerThresholds::default()
    };
    let reports = container::probe_all(&rt, Some(&project), &t, TIMEOUT).await;
    let mut names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["container:api", "container:db", "container:web", "container:worker"], "{reports:#?}");

    let worker = find(&reports, "container:worker");
    assert_eq!(worker.status, Status::Critical);
    assert!(has(worker, Runbook::OomKilled, oom_status), "{worker:#?}");
    assert!(has(worker, Runbook::ContainerDown, Status::Critical), "{worker:#?}");
    assert!(worker.message.starts_with("exited with code 137 ("), "{}", worker.message);
    assert_eq!(worker.aliases, [format!("container:{worker_name}")]);

    let api = find(&reports, "container:api");
    assert!(has(api, Runbook::CrashLoop, Status::Critical), "{api:#?}");
    assert!(
        api.evidence.iter().any(|l| l.starts_with("fatal: DATABASE_URL is not set (")),
        "folded last lines: {api:#?}"
    );
    assert!(api.observation("memory_used").is_none(), "no sample between two crashes");

    let db = find(&reports, "container:db");
    assert_eq!(runbooks(db), [(Runbook::ContainerUnhealthy, Status::Critical)], "{db:#?}");
    assert!(db.problems[0].evidence.contains(&"healthcheck: db not reachable".to_owned()), "{db:#?}");

    let web = find(&reports, "container:web");
    assert_eq!(web.status, Status::Ok, "{web:#?}");
    assert!(web.critical);
    assert_eq!(web.target, web_name);
    assert_eq!(web.depends_on, ["container:db", "container:api"]);
    assert_eq!(web.observation("memory_limit"), Some(256.0 * 1024.0 * 1024.0));
    assert!(web.observation("memory").is_some_and(|m| m < 80.0), "{web:#?}");
    assert!(web.message.starts_with("running for"), "{}", web.message);

    // Error lines in the recent logs of the same containers.
    let containers = container::discover(&rt, Some(&project), &t).await.unwrap();
    assert_eq!(containers.len(), 4);
    let log_reports =
        logs::probe_all(&rt, &containers, &LogThresholds::default(), &logs::OwnActions::default(), TIMEOUT).await;
    let web_logs = find(&log_reports, "logs:web");
    assert_eq!(runbooks(web_logs), [(Runbook::LogErrors, Status::Warn)], "{web_logs:#?}");
    assert_eq!(web_logs.observation("matching_lines"), Some(2.0));
    // Lines of stdout and stderr written together may come back in either order.
    let mut samples = web_logs.problems[0].evidence.clone();
    samples.sort();
    assert_eq!(samples, ["ERROR: payment failed via postgres://app:***@db/app", "panic: boom"]);
    assert_eq!(web_logs.depends_on, ["container:web"]);
    let api_logs = find(&log_reports, "logs:api");
    assert!(api_logs.observation("matching_lines").is_some_and(|n| n >= 3.0), "{api_logs:#?}");
    assert_eq!(find(&log_reports, "logs:db").status, Status::Ok);
    let many = LogThresholds { critical_count: 3, ..LogThresholds::default() };
    let api_logs = logs::probe_all(&rt, &containers, &many, &logs::OwnActions::default(), TIMEOUT).await;
    assert_eq!(find(&api_logs, "logs:api").status, Status::Critical);

    let json = serde_json::to_string(&(&reports, &log_reports)).unwrap();
    assert!(!json.contains("hunter2"), "no secret in reports: {json}");
}

#[tokio::test]
async fn probes_local_engine_answers_and_a_missing_engine_is_docker_down() {
    let rt = require_docker().await;
    let (report, info) = container::engine(&rt, TIMEOUT).await;
    assert_eq!((report.name.as_str(), report.status), ("engine", Status::Ok), "{report:#?}");
    assert!(info.unwrap().root_dir.is_some());

    let gone = DockerRuntime::new(Some("unix:///nonexistent/docker.sock"), Duration::from_secs(2));
    let (report, info) = container::engine(&gone, TIMEOUT).await;
    assert!(info.is_none());
    assert_eq!(runbooks(&report), [(Runbook::DockerDown, Status::Critical)]);
    assert!(report.critical);
    let reports = container::probe_all(&gone, Some("shop"), &ContainerThresholds::default(), TIMEOUT).await;
    assert_eq!(reports.len(), 1);
    assert_eq!((reports[0].status, reports[0].depends_on.as_slice()), (Status::Unknown, &["engine".to_owned()][..]));
}

fn cache(url: &SecretUrl) -> RedisCache {
    RedisCache::new(url.clone(), Duration::from_secs(5)).unwrap()
}

async fn redis_probe(url: &str, t: &RedisThresholds) -> ProbeReport {
    let url = SecretUrl::new(url);
    redis::probe("main", &url, &cache(&url), t, TIMEOUT).await
}

#[tokio::test]
async fn probes_local_redis_names_noauth_and_wrongpass() {
    let _rt = require_docker().await;
    let (_c, port) = harness::redis(Some("s3cret-pw")).await;
    let t = RedisThresholds::default();

    let ok = redis_probe(&format!("redis://:s3cret-pw@127.0.0.1:{port}"), &t).await;
    assert_eq!(ok.status, Status::Ok, "{ok:#?}");
    assert!(ok.message.starts_with("PONG; master redis 7."), "{}", ok.message);
    assert_eq!(ok.target, format!("redis://:***@127.0.0.1:{port}"));

    let none = redis_probe(&format!("redis://127.0.0.1:{port}"), &t).await;
    assert_eq!(runbooks(&none), [(Runbook::CacheDown, Status::Critical)]);
    assert!(none.message.starts_with("NOAUTH"), "{}", none.message);

    let wrong = redis_probe(&format!("redis://:wrong-pw@127.0.0.1:{port}"), &t).await;
    assert_eq!(runbooks(&wrong), [(Runbook::CacheDown, Status::Critical)]);
    assert!(wrong.message.starts_with("WRONGPASS"), "{}", wrong.message);

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let down = redis_probe(&format!("redis://:s3cret-pw@127.0.0.1:{closed_port}"), &t).await;
    assert_eq!(runbooks(&down), [(Runbook::CacheDown, Status::Critical)]);
    assert!(down.message.starts_with("unreachable"), "{}", down.message);

    let json = serde_json::to_string(&[ok, none, wrong, down]).unwrap();
    assert!(!json.contains("s3cret-pw") && !json.contains("wrong-pw"), "no password in reports: {json}");
}

async fn redis_cli(rt: &DockerRuntime, id: &str, script: &str) -> String {
    let cmd = vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()];
    let out = rt.exec(id, &ExecSpec { cmd, ..Default::default() }).await.unwrap();
    format!("{}{}", out.stdout, out.stderr)
}

#[tokio::test]
async fn probes_local_redis_hit_rate_queue_backlog_and_a_full_cache() {
    let rt = require_docker().await;
    let (c, port) = harness::redis(None).await;
    let url = SecretUrl::new(format!("redis://127.0.0.1:{port}"));
    let redis_cache = cache(&url);

    // 5 hits and 15 misses: a 25 % hit rate, judged once there are enough lookups.
    redis_cli(&rt, c.id(), "redis-cli SET k v; (for i in $(seq 5); do echo 'GET k'; done; for i in $(seq 15); do echo \"GET miss$i\"; done) | redis-cli").await;
    let few = RedisThresholds { min_lookups: 1000, ..RedisThresholds::default() };
    let quiet = redis::probe("main", &url, &redis_cache, &few, TIMEOUT).await;
    assert_eq!(quiet.status, Status::Ok, "{quiet:#?}");
    assert_eq!(quiet.observation("hit_rate"), Some(25.0));
    let enough = RedisThresholds { min_lookups: 10, ..RedisThresholds::default() };
    let low = redis::probe("main", &url, &redis_cache, &enough, TIMEOUT).await;
    assert_eq!(runbooks(&low), [(Runbook::CacheDegraded, Status::Critical)], "{low:#?}");
    assert!(low.message.starts_with("hit rate 25 %"), "{}", low.message);

    // A Celery queue of 150 tasks.
    let tasks: Vec<String> = (1..=150).map(|i| i.to_string()).collect();
    redis_cli(&rt, c.id(), &format!("redis-cli RPUSH celery {}", tasks.join(" "))).await;
    let queues = ["celery".to_owned(), "emails".to_owned()];
    let q = redis::queues("main", &url, &redis_cache, &queues, &QueueThresholds::default(), TIMEOUT).await;
    assert_eq!(runbooks(&q), [(Runbook::QueueBacklog, Status::Warn)], "{q:#?}");
    assert_eq!(q.name, "queue:main");
    let lengths: Vec<(String, f64)> = q.observations.iter().map(|o| (o.labels["queue"].clone(), o.value)).collect();
    assert_eq!(lengths, [("celery".to_owned(), 150.0), ("emails".to_owned(), 0.0)]);
    let strict = QueueThresholds { warn: 10, critical: 100 };
    let q = redis::queues("main", &url, &redis_cache, &queues, &strict, TIMEOUT).await;
    assert_eq!(runbooks(&q), [(Runbook::QueueBacklog, Status::Critical)]);

    // Filled past maxmemory with noeviction: the next write fails with OOM.
    redis_cli(&rt, c.id(), "head -c 3000000 /dev/zero | tr '\\0' x | redis-cli -x SET big").await;
    redis_cache.config_set("maxmemory-policy", "noeviction").await.unwrap();
    redis_cache.config_set("maxmemory", "2mb").await.unwrap();
    let rejected = redis_cli(&rt, c.id(), "redis-cli SET one-more value").await;
    assert!(rejected.contains("OOM"), "the write is rejected: {rejected}");
    let full = redis::probe("main", &url, &redis_cache, &RedisThresholds::default(), TIMEOUT).await;
    assert!(has(&full, Runbook::CacheFull, Status::Critical), "{full:#?}");
    let problem = full.problems.iter().find(|p| p.runbook == Runbook::CacheFull).unwrap();
    assert!(problem.message.ends_with("with maxmemory-policy noeviction: writes will be rejected"), "{problem:?}");
    assert!(problem.evidence[0].contains("already rejected with OOM"), "{problem:?}");
    assert!(full.observation("memory").is_some_and(|m| m > 100.0), "{full:#?}");
}

fn database(url: &str) -> PostgresDatabase {
    let mut options = PostgresOptions::new(SecretUrl::new(url));
    options.timeout = Duration::from_secs(5);
    PostgresDatabase::new(options).unwrap()
}

#[tokio::test]
async fn probes_local_postgres_sessions_exhausted_connections_and_down() {
    let rt = require_docker().await;
    let pg = harness::postgres(&["-c", "max_connections=10", "-c", "superuser_reserved_connections=0"]).await;
    let url = SecretUrl::new(pg.url("postgres", "postgres", "app"));
    let app = database(url.expose());
    let t = PostgresThresholds::default();

    let healthy = postgres::probe("main", &url, &app, &t, TIMEOUT).await;
    assert_eq!(healthy.status, Status::Ok, "{healthy:#?}");
    assert_eq!(healthy.observation("connections_max"), Some(10.0));
    assert_eq!(healthy.target, format!("postgres://postgres:***@127.0.0.1:{}/app", pg.port));
    assert!(healthy.message.starts_with("accepting connections;"), "{}", healthy.message);

    // A transaction left open by its client, and a query running for seconds.
    let holder = database(url.expose());
    let snapshot = holder.export_snapshot().await.unwrap();
    let id = pg.id().to_owned();
    let slow = tokio::spawn(async move {
        let rt = require_docker().await;
        let sql = "SELECT pg_sleep(6) /* dblink password=hunter2 */";
        let cmd = ["psql", "-U", "postgres", "-d", "app", "-XAtc", sql].map(str::to_owned).to_vec();
        rt.exec(&id, &ExecSpec { cmd, ..Default::default() }).await
    });
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let impatient = PostgresThresholds { long_running_secs: 1, idle_in_transaction_secs: 1, ..t.clone() };
    let sessions = postgres::probe("main", &url, &app, &impatient, TIMEOUT).await;
    assert_eq!(runbooks(&sessions), [(Runbook::SlowQueries, Status::Warn), (Runbook::SlowQueries, Status::Warn)]);
    let long = &sessions.problems[0];
    assert!(
        long.evidence[0].contains("postgres@app active for") && long.evidence[0].contains("pg_sleep(6)"),
        "{long:?}"
    );
    let idle = &sessions.problems[1];
    assert!(idle.evidence[0].contains("idle in transaction for"), "{idle:?}");
    assert!(idle.evidence[0].ends_with("SELECT pg_export_snapshot()"), "{idle:?}");
    assert_eq!(sessions.observation("idle_in_transaction"), Some(1.0));
    assert!(!serde_json::to_string(&sessions).unwrap().contains("hunter2"), "{sessions:#?}");
    drop(snapshot);
    slow.await.unwrap().unwrap();
    // Only the probe's own (pooled) sessions are left.
    eventually("the sessions to end", Duration::from_secs(10), || async {
        app.connections().await.ok().filter(|c| c.total <= 2)
    })
    .await;

    // 7 sessions held plus the probe's own one or two: 8 or 9 of 10, the runbook's warning.
    let mut held = Vec::new();
    for i in 0..7 {
        let c = database(url.expose());
        c.server_version().await.unwrap_or_else(|e| panic!("connection {i}: {e}"));
        held.push(c);
    }
    let busy = postgres::probe("main", &url, &app, &t, TIMEOUT).await;
    assert!(
        has(&busy, Runbook::ConnectionsExhausted, Status::Warn)
            || has(&busy, Runbook::ConnectionsExhausted, Status::Critical),
        "{busy:#?}"
    );
    let used = busy.observation("connections_used").unwrap();
    assert!(busy.message.starts_with(&format!("{used} of 10 connections in use")), "{}", busy.message);
    let c = database(url.expose());
    c.server_version().await.unwrap();
    held.push(c);
    let nine = postgres::probe("main", &url, &app, &t, TIMEOUT).await;
    assert_eq!(runbooks(&nine), [(Runbook::ConnectionsExhausted, Status::Critical)], "{nine:#?}");

    // Every slot taken: the server turns new clients away.
    while app.readiness().await == Readiness::Accepting {
        assert!(held.len() < 10, "max_connections=10 was never reached");
        let c = database(url.expose());
        c.server_version().await.unwrap();
        held.push(c);
    }
    let full = postgres::probe("main", &url, &app, &t, TIMEOUT).await;
    assert_eq!(runbooks(&full), [(Runbook::ConnectionsExhausted, Status::Critical)], "{full:#?}");
    assert!(full.message.contains("too many clients"), "{}", full.message);
    drop(held);

    // Stopped: nothing answers.
    rt.stop(pg.id(), Duration::from_secs(10)).await.unwrap();
    let down = postgres::probe("main", &url, &app, &t, TIMEOUT).await;
    assert_eq!(runbooks(&down), [(Runbook::DatabaseDown, Status::Critical)], "{down:#?}");
    assert!(down.message.starts_with("no response"), "{}", down.message);
}

#[tokio::test]
async fn probes_local_host_measures_this_machine() {
    let rt = require_docker().await;
    let (_, info) = container::engine(&rt, TIMEOUT).await;
    let root = info.and_then(|i| i.root_dir).expect("the engine reports its data root");
    let root = Path::new(&root);

    let report = host::probe(&HostThresholds::default(), Some(root), TIMEOUT).await;
    assert_eq!(report.name, "host");
    assert!(!report.target.is_empty());
    let mounts: Vec<&str> =
        report.observations.iter().filter(|o| o.name == "disk_used").map(|o| o.labels["mount"].as_str()).collect();
    assert!(mounts.contains(&"/"), "{report:#?}");
    assert!(
        mounts.iter().all(|m| !["/proc", "/sys", "/dev", "/run/docker"].iter().any(|p| m.starts_with(p))),
        "pseudo filesystems skipped: {mounts:?}"
    );
    assert!(report.observation("memory_used").is_some_and(|m| (0.0..=100.0).contains(&m)), "{report:#?}");
    assert!(report.observation("cpu_cores").is_some_and(|c| c >= 1.0));
    assert!(report.observation("load_5m").is_some());

    // Any use at all is over a 0 % threshold: every filesystem is reported, the data root's named.
    let strict = HostThresholds { disk_warn_percent: 0.0, disk_critical_percent: 100.0, ..HostThresholds::default() };
    let report = host::probe(&strict, Some(root), TIMEOUT).await;
    let full: Vec<&str> =
        report.problems.iter().filter(|p| p.runbook == Runbook::DiskFull).map(|p| p.message.as_str()).collect();
    assert_eq!(full.len(), mounts.len(), "{full:?}");
    assert!(full.iter().any(|m| m.contains("(holds the Docker data root)")), "{full:?}");
}

fn service(project: &str, service: &str, cmd: &[&str]) -> RunSpec {
    crate::harness::compose_service("probes_local", project, service, cmd.iter().map(|s| (*s).to_owned()).collect())
}
