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
