//! Triage over a real stack: a PostgreSQL container in a Compose project, an API whose health
//! needs it, and the database stopped.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use ops_core::config::{DatabaseConfig, HttpCheckConfig, OpsConfig};
use ops_core::{Context, Runbook, SecretUrl, Severity};
use ops_probes::{TriageOptions, TriageReport};

use crate::harness;

/// An API on 127.0.0.1 whose `/health` is 200 while the database port accepts connections, 503
/// otherwise: what a real service's health endpoint does.
async fn api(db_port: u16) -> String {
    let app = Router::new().route(
        "/health",
        get(move || async move {
            match tokio::net::TcpStream::connect(("127.0.0.1", db_port)).await {
                Ok(_) => (StatusCode::OK, "{\"status\":\"ok\"}"),
                Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "{\"status\":\"database unreachable\"}"),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/health")
}

fn ours<'r>(r: &'r TriageReport, name: &str) -> &'r ops_probes::ProbeReport {
    r.probes.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no probe {name} in {:#?}", r.probes))
}

#[tokio::test]
async fn triage_database_stopped_is_p1_with_the_api_failure_as_consequence() {
    let project = harness::unique("triage");
    let pg = harness::postgres_labelled(
        &[],
        &[("com.docker.compose.project", &project), ("com.docker.compose.service", "db")],
    )
    .await;
    let health = api(pg.port).await;

    let mut cfg = OpsConfig::default();
    cfg.project.compose_project = Some(project.clone());
    cfg.databases.insert(
        "main".into(),
        DatabaseConfig {
            url: SecretUrl::new(pg.url("postgres", "postgres", "app")),
            container: Some("db".into()),
            ..Default::default()
        },
    );
    cfg.http.push(HttpCheckConfig {
        name: "api".into(),
        url: SecretUrl::new(health),
        critical: true,
        depends_on: vec!["postgres:main".into()],
        ..Default::default()
    });
    cfg.probes.timeout_secs = 5;
    let ctx = Context::from_config(cfg).unwrap();
    let opts = TriageOptions { skip_logs: true, ..TriageOptions::default() };

    // Healthy: the stack's checks are fine (the host itself may be busy: not asserted).
    let before = ops_probes::triage(&ctx, &opts).await;
    for name in ["engine", "container:db", "postgres:main", "http:api"] {
        assert!(ours(&before, name).problems.is_empty(), "{name}: {:#?}", ours(&before, name));
    }
    assert!(before.ok.contains(&"http:api".to_owned()));

    // The database container stops: one P1 incident, its cause the container, the database and
    // the API filed under it as consequences, not three separate pages.
    ctx.containers.as_ref().unwrap().stop(pg.id(), Duration::from_secs(10)).await.unwrap();
    let after = ops_probes::triage(&ctx, &opts).await;
    assert_eq!(after.severity, Some(Severity::P1), "{:#?}", after.incidents);
    let first = &after.incidents[0];
    assert_eq!(first.check, "container:db", "{:#?}", after.incidents);
    // The database's container is the database: the runbook to run is database-down, and a
    // container stopped by a stop request says so.
    assert_eq!(first.runbook, Runbook::DatabaseDown);
    assert!(first.message.starts_with("stopped: exited with code 0 after a stop request"), "{}", first.message);
    assert_eq!(first.severity, Severity::P1);
    let effects: Vec<(&str, Runbook)> = first.consequences.iter().map(|e| (e.check.as_str(), e.runbook)).collect();
    assert!(effects.contains(&("postgres:main", Runbook::DatabaseDown)), "{effects:?}");
    assert!(effects.contains(&("http:api", Runbook::ApiDown)), "{effects:?}");
    assert!(!after.incidents.iter().any(|i| i.check == "http:api" || i.check == "postgres:main"));
    // The API's own report still carries the 503 evidence.
    let api = ours(&after, "http:api");
    assert!(api.evidence.iter().any(|e| e.contains("database unreachable")), "{api:#?}");
    assert!(
        after.summary.starts_with("P1 (respond within 15 minutes): database-down on container:db"),
        "{}",
        after.summary
    );
}

/// `docker ARGS`, which must succeed; its standard output.
fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker").args(args).output().expect("docker runs");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The release ledger on a real engine: triage records the version a service runs (image,
/// image id, creation, configuration hash); a service recreated on another locally built image
/// is "deployed 0 min ago (image changed from v1 to v2)", and the urgent incident it causes
/// advises rolling it back first; the ledger keeps v1 as the version before. Environment
/// values never reach the ledger.
#[tokio::test]
async fn triage_records_releases_and_names_a_recent_deploy() {
    harness::require_docker().await;
    let project = harness::unique("rel").to_lowercase();
    let name = format!("{project}-web-1");
    let image = |tag: &str| format!("opsit/{project}:{tag}");
    // Two versions: the base image retagged, and a commit of a container of it (another id).
    docker(&["tag", "ops-test/base:bookworm", &image("v1")]);
    let maker = format!("{project}-maker");
    docker(&["run", "--name", &maker, "ops-test/base:bookworm", "true"]);
    docker(&["commit", &maker, &image("v2")]);
    docker(&["rm", &maker]);
    let cleanup = || {
        let _ = std::process::Command::new("docker").args(["rm", "-f", &name]).output();
        let _ = std::process::Command::new("docker").args(["rmi", &image("v1"), &image("v2")]).output();
    };
    let run = |tag: &str, cmd: &[&str]| {
        let mut args = vec!["run", "-d", "--name", &name];
        let (p, s) = (format!("com.docker.compose.project={project}"), "com.docker.compose.service=web".to_owned());
        let img = image(tag);
        args.extend(["--label", &p, "--label", &s, "-e", "SECRET_TOKEN=hunter2-release", &img]);
        args.extend(cmd);
        docker(&args);
    };
    run("v1", &["sleep", "300"]);

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = OpsConfig::default();
    cfg.project.compose_project = Some(project.clone());
    cfg.state.url = SecretUrl::new(format!("sqlite://{}/state.db", dir.path().display()));
    cfg.probes.host.disk_warn_percent = 98.0;
    cfg.probes.host.disk_critical_percent = 99.0;
    cfg.probes.host.memory_warn_percent = 98.0;
    cfg.probes.host.memory_critical_percent = 99.0;
    cfg.probes.host.load_warn_per_core = 50.0;
    cfg.probes.host.load_critical_per_core = 100.0;
    let mut ctx = Context::from_config(cfg).unwrap();
    ctx.open_state().await.unwrap();
    let opts = TriageOptions { skip_logs: true, ..Default::default() };

    let first = ops_probes::triage(&ctx, &opts).await;
    let web = ours(&first, "container:web");
    let v1 = web.release.clone().expect("the version it runs");
    assert_eq!(v1.image, image("v1"));
    assert!(v1.image_id.starts_with("sha256:") && v1.config_hash.len() == 64, "{v1:?}");
    assert!(v1.created_at.is_some(), "{v1:?}");
    assert!(!web.evidence.iter().any(|e| e.starts_with("deployed")), "a first sighting is no deploy: {web:?}");
    assert!(!serde_json::to_string(&first).unwrap().contains("hunter2"));

    // v2 is deployed and fails at once.
    docker(&["rm", "-f", &name]);
    run("v2", &["sh", "-c", "exit 1"]);
    harness::eventually("v2 exited", Duration::from_secs(30), || async {
        (docker(&["inspect", "-f", "{{.State.Status}}", &name]) == "exited").then_some(())
    })
    .await;
    let second = ops_probes::triage(&ctx, &opts).await;
    let web = ours(&second, "container:web");
    let said = web.evidence.first().cloned().unwrap_or_default();
    assert!(
        said.starts_with(&format!("deployed 0 min ago (image changed from {} (", image("v1")))
            && said.contains(&format!("to {} (", image("v2"))),
        "{web:#?}"
    );
    let incident = second.incidents.iter().find(|i| i.check == "container:web").expect("the failing deploy");
    assert!(incident.severity <= Severity::P2, "{incident:#?}");
    assert!(
        incident
            .advice
            .first()
            .is_some_and(|a| a.contains("web was deployed 0 min ago") && a.contains("rolling it back first")),
        "{incident:#?}"
    );

    // The ledger: v2 current, v1 the version before; no environment value anywhere.
    let ledger = ops_core::releases::load(ctx.state().unwrap().as_ref(), &project).await.unwrap();
    let web = &ledger["web"];
    assert_eq!(
        (web.current.image.as_str(), web.previous[0].image.as_str()),
        (image("v2").as_str(), image("v1").as_str())
    );
    assert_ne!(web.current.image_id, web.previous[0].image_id);
    assert!(!serde_json::to_string(&ledger).unwrap().contains("hunter2"));
    cleanup();
}
