//! Container classification (pure) and discovery, naming and dependencies (mocked runtime).

use std::collections::BTreeMap;

use ops_core::ports::container::MockContainerRuntime;
use ops_core::ports::{ContainerStats, LogLine, LogStream};
use ops_core::stack::COMPOSE_ONEOFF_LABEL;

use super::*;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z").unwrap().with_timezone(&Utc)
}

fn mins_ago(m: i64) -> Option<DateTime<Utc>> {
    Some(now() - chrono::Duration::minutes(m))
}

fn details(state: ContainerState) -> ContainerDetails {
    ContainerDetails {
        id: "id".to_owned(),
        name: "shop-api-1".to_owned(),
        image: "shop/api".to_owned(),
        image_id: "sha256:0123".to_owned(),
        created_at: None,
        config_hash: String::new(),
        state,
        health: HealthStatus::None,
        health_failing_streak: 0,
        last_health_output: None,
        exit_code: Some(0),
        oom_killed: false,
        restart_count: 0,
        restart_policy: "unless-stopped".to_owned(),
        started_at: mins_ago(60),
        finished_at: None,
        memory_limit_bytes: None,
        error: None,
        compose_service: Some("api".to_owned()),
        labels: BTreeMap::new(),
        env_names: Vec::new(),
        published_ports: Vec::new(),
    }
}

fn kinds(problems: &[Problem]) -> Vec<(Runbook, Status)> {
    problems.iter().map(|p| (p.runbook, p.status)).collect()
}

#[test]
fn a_running_container_is_fine() {
    assert!(assess(&details(ContainerState::Running), now(), &ContainerThresholds::default()).is_empty());
}

#[test]
fn oom_killed_and_exited_reads_like_the_runbook() {
    let mut d = details(ContainerState::Exited);
    d.exit_code = Some(137);
    d.oom_killed = true;
    d.finished_at = mins_ago(4);
    d.memory_limit_bytes = Some(512 * 1024 * 1024);
    let p = assess(&d, now(), &ContainerThresholds::default());
    assert_eq!(kinds(&p), [(Runbook::ContainerDown, Status::Critical), (Runbook::OomKilled, Status::Critical)]);
    assert_eq!(p[0].message, "exited with code 137 (OOM killed) 4 min ago");
    assert_eq!(p[1].message, "killed by the kernel OOM killer 4 min ago (memory limit 512.0 MiB)");
}

#[test]
fn exit_137_without_the_flag_is_a_likely_oom() {
    let mut d = details(ContainerState::Exited);
    d.exit_code = Some(137);
    let p = assess(&d, now(), &ContainerThresholds::default());
    assert_eq!(kinds(&p), [(Runbook::ContainerDown, Status::Critical), (Runbook::OomKilled, Status::Warn)]);
    assert!(p[1].message.contains("no memory limit"), "{}", p[1].message);
}

#[test]
fn a_finished_job_is_only_a_warning() {
    let mut d = details(ContainerState::Exited);
    d.restart_policy = "no".to_owned();
    d.finished_at = mins_ago(120);
    let p = assess(&d, now(), &ContainerThresholds::default());
    assert_eq!(kinds(&p), [(Runbook::ContainerDown, Status::Warn)]);
    assert!(p[0].message.starts_with("exited with code 0 2 h ago; a finished one-shot job?"), "{}", p[0].message);
    // The same exit under a restart policy means someone stopped a service.
    d.restart_policy = "always".to_owned();
    assert_eq!(
        kinds(&assess(&d, now(), &ContainerThresholds::default())),
        [(Runbook::ContainerDown, Status::Critical)]
    );
    // So does it for a container known to be a service (a database's), restart policy or not.
    d.restart_policy = "no".to_owned();
    let services = ContainerThresholds { services: vec![d.name.clone()], ..ContainerThresholds::default() };
    assert_eq!(kinds(&assess(&d, now(), &services)), [(Runbook::ContainerDown, Status::Critical)]);
}

#[test]
fn crash_loops_by_state_and_by_count_within_the_window() {
    let t = ContainerThresholds::default();
    let mut d = details(ContainerState::Restarting);
    d.exit_code = Some(1);
    d.restart_count = 7;
    d.restart_policy = "always".to_owned();
    let p = assess(&d, now(), &t);
    assert_eq!(kinds(&p), [(Runbook::CrashLoop, Status::Critical)], "one crash-loop problem, not two");
    assert_eq!(
        p[0].message,
        "restarting: 7 restarts so far, last exit code 1 (application error) (restart policy always)"
    );

    let mut d = details(ContainerState::Running);
    d.restart_count = 3;
    d.started_at = mins_ago(2);
    let p = assess(&d, now(), &t);
    assert_eq!(kinds(&p), [(Runbook::CrashLoop, Status::Critical)]);
    assert!(p[0].message.starts_with("restarted 3 times, last start 2 min ago (within 10 min"), "{}", p[0].message);
    d.started_at = mins_ago(11);
    assert!(assess(&d, now(), &t).is_empty(), "restarts long ago are history");
    d.started_at = mins_ago(2);
    d.restart_count = 2;
    assert!(assess(&d, now(), &t).is_empty());
}

#[test]
fn unhealthy_shows_the_healthcheck_output() {
    let mut d = details(ContainerState::Running);
    d.health = HealthStatus::Unhealthy;
    d.health_failing_streak = 4;
    d.last_health_output = Some("curl: (7) Failed to connect\n\nredis://:hunter2@cache refused".to_owned());
    let p = assess(&d, now(), &ContainerThresholds::default());
    assert_eq!(kinds(&p), [(Runbook::ContainerUnhealthy, Status::Critical)]);
    assert_eq!(p[0].message, "healthcheck failing (4 times in a row)");
    assert_eq!(p[0].evidence, ["healthcheck: curl: (7) Failed to connect", "healthcheck: redis://:***@cache refused"]);
}

#[test]
fn never_started_shows_the_engine_error() {
    let mut d = details(ContainerState::Created);
    d.error = Some("Bind for 0.0.0.0:8080 failed: port is already allocated".to_owned());
    let p = assess(&d, now(), &ContainerThresholds::default());
    assert_eq!(kinds(&p), [(Runbook::ContainerDown, Status::Critical)]);
    assert_eq!(p[0].evidence, ["engine error: Bind for 0.0.0.0:8080 failed: port is already allocated"]);
}

#[test]
fn memory_against_the_limit() {
    let t = ContainerThresholds::default();
    let (obs, p) = memory(250 * 1024 * 1024, 256 * 1024 * 1024, &t);
    assert_eq!(obs.iter().find(|o| o.name == "memory").unwrap().unit, Unit::Percent);
    let p = p.unwrap();
    assert_eq!((p.runbook, p.status), (Runbook::MemoryPressure, Status::Critical));
    assert_eq!(p.message, "memory 250.0 MiB of its 256.0 MiB limit (98 %)");
    assert_eq!(memory(210, 256, &t).1.unwrap().status, Status::Warn);
    assert!(memory(100, 256, &t).1.is_none());
}

fn summary(name: &str, project: &str, service: &str, labels: &[(&str, &str)]) -> ContainerSummary {
    ContainerSummary {
        id: format!("id-{name}"),
        name: name.to_owned(),
        image: "img".to_owned(),
        state: ContainerState::Running,
        status: String::new(),
        compose_project: Some(project.to_owned()),
        compose_service: Some(service.to_owned()),
        labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

#[test]
fn names_are_services_unless_two_containers_share_one() {
    let containers = [
        summary("shop-api-1", "shop", "api", &[]),
        summary("shop-db-1", "shop", "db", &[]),
        summary("blog-db-1", "blog", "db", &[]),
    ];
    let names = display_names(&containers);
    assert_eq!(names, ["api", "shop-db-1", "blog-db-1"]);
    assert_eq!(aliases(&containers[0], &names[0], ProbeKind::Container), ["container:shop-api-1"]);
    assert_eq!(aliases(&containers[1], &names[1], ProbeKind::Container), ["container:db"]);
}

#[test]
fn dependencies_resolve_within_the_project() {
    let label = [(COMPOSE_DEPENDS_ON_LABEL, "db:service_healthy:false,redis:service_started:false")];
    let containers = [
        summary("shop-api-1", "shop", "api", &label),
        summary("shop-db-1", "shop", "db", &[]),
        summary("blog-db-1", "blog", "db", &[]),
    ];
    let names = display_names(&containers);
    assert_eq!(depends_on(&containers[0], &containers, &names), ["container:shop-db-1", "container:redis"]);
    assert!(depends_on(&containers[1], &containers, &names).is_empty());
}

fn runtime_with(containers: Vec<ContainerSummary>) -> MockContainerRuntime {
    let mut rt = MockContainerRuntime::new();
    rt.expect_list_containers().returning(move |filter| {
        assert!(filter.all, "stopped containers count");
        Ok(containers.clone())
    });
    rt
}

#[tokio::test]
async fn probe_all_reports_every_container_of_the_project() {
    let depends = [(COMPOSE_DEPENDS_ON_LABEL, "db:service_healthy:false")];
    let mut rt = runtime_with(vec![
        summary("shop-api-1", "shop", "api", &depends),
        summary("shop-db-1", "shop", "db", &[]),
        summary("shop-migrate-1", "shop", "migrate", &[]),
        summary("shop-api-run-3f2a", "shop", "api", &[(COMPOSE_ONEOFF_LABEL, "True")]),
    ]);
    rt.expect_inspect().returning(|id| {
        let mut d = details(ContainerState::Running);
        d.started_at = Some(Utc::now() - chrono::Duration::hours(1));
        if id == "id-shop-db-1" {
            d.state = ContainerState::Exited;
            d.exit_code = Some(1);
            d.finished_at = Some(Utc::now() - chrono::Duration::minutes(3));
        } else {
            d.memory_limit_bytes = Some(100);
        }
        Ok(d)
    });
    rt.expect_stats()
        .returning(|_| Ok(ContainerStats { cpu_percent: 12.5, memory_usage_bytes: 90, memory_limit_bytes: 100 }));
    rt.expect_logs().times(1).returning(|id, options| {
        assert_eq!((id, options.tail), ("id-shop-db-1", Some(LOG_LINES)), "only the broken container's logs");
        Ok(vec![LogLine { stream: LogStream::Stderr, timestamp: None, text: "FATAL: data directory corrupt".into() }])
    });
    let t = ContainerThresholds {
        critical: vec!["db".to_owned()],
        ignore: vec!["shop-migrate-1".to_owned()],
        ..ContainerThresholds::default()
    };
    let reports = probe_all(&rt, Some("shop"), &t, Duration::from_secs(5)).await;
    let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["container:api", "container:db"], "one-off and ignored containers are skipped");

    let api = &reports[0];
    assert_eq!((api.kind, api.target.as_str(), api.critical), (ProbeKind::Container, "shop-api-1", false));
    assert_eq!(api.aliases, ["container:shop-api-1"]);
    assert_eq!(api.depends_on, ["container:db"]);
    assert_eq!(kinds(&api.problems), [(Runbook::MemoryPressure, Status::Warn)]);
    assert_eq!(api.observation("memory"), Some(90.0));
    assert_eq!(api.observation("cpu"), Some(12.5));
    assert!(api.evidence.is_empty(), "memory pressure alone reads no logs");

    let db = &reports[1];
    assert!(db.critical, "listed as critical by service");
    assert_eq!(db.status, Status::Critical);
    assert_eq!(db.message, "exited with code 1 (application error) 3 min ago");
    assert_eq!(db.evidence, ["FATAL: data directory corrupt"]);
}

#[tokio::test]
async fn all_projects_means_every_compose_container() {
    let mut rt = MockContainerRuntime::new();
    rt.expect_list_containers().returning(|filter| {
        assert_eq!(filter.compose_project, None);
        assert_eq!(filter.labels.get(COMPOSE_PROJECT_LABEL), Some(&None), "only Compose containers");
        Ok(Vec::new())
    });
    let reports = probe_all(&rt, None, &ContainerThresholds::default(), Duration::from_secs(1)).await;
    // No project configured and no Compose container on the host: nothing was expected, so
    // nothing is wrong.
    assert_eq!((reports.len(), reports[0].status), (1, Status::Ok));
    assert_eq!(reports[0].message, "no Compose container on this host");
}

#[tokio::test]
async fn a_project_without_containers_is_down() {
    let rt = runtime_with(Vec::new());
    let reports = probe_all(&rt, Some("shop"), &ContainerThresholds::default(), Duration::from_secs(1)).await;
    assert_eq!(reports.len(), 1);
    assert_eq!((reports[0].name.as_str(), reports[0].status), ("container", Status::Critical));
    assert!(reports[0].message.contains("no container of Compose project shop"), "{}", reports[0].message);
}

#[tokio::test]
async fn an_unlistable_engine_is_reported_under_the_engine() {
    let mut rt = MockContainerRuntime::new();
    rt.expect_list_containers().returning(|_| Err(ops_core::Error::unavailable("docker engine unreachable")));
    let reports = probe_all(&rt, Some("shop"), &ContainerThresholds::default(), Duration::from_secs(1)).await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].status, Status::Unknown);
    assert_eq!(reports[0].depends_on, ["engine"]);
}

#[tokio::test]
async fn the_engine_down_is_critical() {
    let mut rt = MockContainerRuntime::new();
    rt.expect_ping().returning(|| Err(ops_core::Error::unavailable("no such socket (is dockerd running?)")));
    let (report, info) = engine(&rt, Duration::from_secs(1)).await;
    assert!(info.is_none());
    assert_eq!((report.name.as_str(), report.status, report.critical), ("engine", Status::Critical, true));
    assert_eq!(report.problems[0].runbook, Runbook::DockerDown);
    assert!(report.message.contains("is dockerd running?"), "{}", report.message);

    let mut rt = MockContainerRuntime::new();
    rt.expect_ping().returning(|| {
        Ok(RuntimeInfo {
            version: "20.10.24".to_owned(),
            api_version: "1.41".to_owned(),
            root_dir: Some("/var/lib/docker".to_owned()),
        })
    });
    let (report, info) = engine(&rt, Duration::from_secs(1)).await;
    assert_eq!(report.status, Status::Ok);
    assert_eq!(report.message, "docker 20.10.24 answers (API 1.41), data root /var/lib/docker");
    assert_eq!(info.unwrap().root_dir.as_deref(), Some("/var/lib/docker"));
}

#[test]
fn a_missing_required_variable_is_named_and_no_value_is_read() {
    let mut d = details(ContainerState::Running);
    d.env_names = vec!["DATABASE_URL".to_owned(), "PATH".to_owned()];
    let t = ContainerThresholds {
        required_env: BTreeMap::from([("api".to_owned(), vec!["DATABASE_URL".to_owned(), "SECRET_KEY".to_owned()])]),
        ..ContainerThresholds::default()
    };
    let problems = assess(&d, now(), &t);
    assert_eq!(kinds(&problems), [(Runbook::ConfigError, Status::Critical)]);
    assert!(problems[0].message.contains("SECRET_KEY") && !problems[0].message.contains("DATABASE_URL"));
    d.env_names.push("SECRET_KEY".to_owned());
    d.env_names.sort();
    assert!(assess(&d, now(), &t).is_empty());
}
