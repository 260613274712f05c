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

/// Removes, even when the test fails, the containers whose names start with `.0` and the
/// images `.1`: a stopped container left behind would be an incident for every later triage
/// of all Compose projects on the host.
pub(crate) struct Leftovers(pub(crate) String, pub(crate) Vec<String>);

impl Drop for Leftovers {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = std::process::Command::new("docker").args(args).output();
        };
        let listed = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("name={}", self.0)])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for id in listed.split_whitespace() {
            quiet(&["rm", "-f", "-v", id]);
        }
        for image in &self.1 {
            quiet(&["rmi", "-f", image]);
        }
    }
}

/// Networks removed when the test ends, even when it fails.
struct Networks(Vec<String>);

impl Drop for Networks {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::process::Command::new("docker").args(["network", "rm", n]).output();
        }
    }
}

/// `docker ARGS`, which must succeed; its standard output.
pub(crate) fn docker(args: &[&str]) -> String {
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
    let _leftovers = Leftovers(name.clone(), vec![image("v1"), image("v2")]);
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
}

/// `opsctl --config … --json ARGS` in-process: exit code and the JSON it printed.
async fn opsctl(config: &std::path::Path, args: &[&str]) -> (u8, serde_json::Value) {
    let mut argv: Vec<String> = vec!["opsctl".into(), "--config".into(), config.display().to_string(), "--json".into()];
    argv.extend(args.iter().map(|s| (*s).to_owned()));
    tokio::task::spawn_blocking(move || {
        let env = std::collections::BTreeMap::from([("USER".to_owned(), "oncall".to_owned())]);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = ops_cli::run(argv, &env, &mut out, &mut err);
        let text = String::from_utf8_lossy(&out).into_owned();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|_| serde_json::json!({ "raw": text, "err": String::from_utf8_lossy(&err) }));
        (code, json)
    })
    .await
    .unwrap()
}

/// Rollback on a real engine: v1 (an image with `/ok`) runs; v2 (without it) is deployed and
/// exits at once. `opsctl rollback web --apply` brings v1 back under the same name with the
/// same labels, environment, mounts, limits and restart policy (compared field by field); a
/// rollback to a version that also fails goes back to the version it started from; a service
/// the ledger does not know, or a version it never ran, is refused with the reason.
#[tokio::test]
async fn rollback_brings_the_version_before_back_alike_and_undoes_a_failing_one() {
    harness::require_docker().await;
    let project = harness::unique("rb").to_lowercase();
    let name = format!("{project}-web-1");
    let image = |tag: &str| format!("opsit/{project}:{tag}");
    let maker = format!("{project}-maker");
    // v1 has /ok and FLAVOR=one in its image; v2 has FLAVOR=two and no /ok.
    docker(&["run", "--name", &maker, "ops-test/base:bookworm", "touch", "/ok"]);
    docker(&["commit", "--change", "ENV FLAVOR=one", &maker, &image("v1")]);
    docker(&["rm", &maker]);
    docker(&["run", "--name", &maker, "ops-test/base:bookworm", "true"]);
    docker(&["commit", "--change", "ENV FLAVOR=two", &maker, &image("v2")]);
    docker(&["rm", &maker]);
    // Two networks (Docker 20.10 takes one at create: the other is connected after), removed
    // after the containers (dropped after `leftovers`).
    let (front, back) = (format!("{project}-front"), format!("{project}-back"));
    let _networks = Networks(vec![front.clone(), back.clone()]);
    docker(&["network", "create", &front]);
    docker(&["network", "create", &back]);
    let mut leftovers = Leftovers(project.clone(), vec![image("v1"), image("v2")]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let image_id = |tag: &str| docker(&["image", "inspect", "-f", "{{.Id}}", &image(tag)]);
    let run = |tag: &str| {
        let (p, s) = (format!("com.docker.compose.project={project}"), "com.docker.compose.service=web".to_owned());
        let (img, bind) = (image(tag), format!("{}:/data:ro", data.display()));
        let recorded = format!("com.docker.compose.image={}", image_id(tag));
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &p,
            "--label",
            &s,
            "--label",
            &recorded,
            "--label",
            "team=shop",
            "-e",
            "APP_MODE=prod",
            "-v",
            &bind,
            "-v",
            "/cache",
            "--memory",
            "64m",
            "--restart",
            "on-failure:2",
            "--network",
            &front,
            "--network-alias",
            "web-front",
            &img,
            "sh",
            "-c",
            "test -f /ok && exec sleep 300",
        ]);
        docker(&["network", "connect", "--alias", "web-back", &back, &name]);
    };
    let inspect = || -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&docker(&["inspect", &name])).unwrap()[0].clone()
    };
    let config = dir.path().join("ops.toml");
    std::fs::write(
        &config,
        format!(
            "[project]\ncompose-project = \"{project}\"\n[state]\nurl = \"sqlite://{d}/state.db\"\n[perf]\n\
             audit-log = \"{d}/audit.jsonl\"\n{host}",
            d = dir.path().display(),
            host = harness::CALM_HOST
        ),
    )
    .unwrap();

    // A Watchtower-like auto-updater (its label), outside the stack.
    let watchtower = format!("{project}-updater");
    docker(&[
        "run",
        "-d",
        "--name",
        &watchtower,
        "--label",
        "com.centurylinklabs.watchtower=true",
        "ops-test/base:bookworm",
        "sleep",
        "300",
    ]);
    let paused = || docker(&["inspect", "-f", "{{.State.Paused}}", &watchtower]) == "true";
    // A worker of the stack that depends on web: restarted after the rollback.
    let worker = format!("{project}-worker-1");
    let (p, d) =
        (format!("com.docker.compose.project={project}"), "com.docker.compose.depends_on=web:service_started:false");
    docker(&[
        "run",
        "-d",
        "--name",
        &worker,
        "--label",
        &p,
        "--label",
        "com.docker.compose.service=worker",
        "--label",
        d,
        "ops-test/base:bookworm",
        "sleep",
        "300",
    ]);
    let worker_started = || docker(&["inspect", "-f", "{{.State.StartedAt}}", &worker]);

    // Nothing known yet: refused with the reason.
    run("v1");
    let (code, v) = opsctl(&config, &["rollback", "web"]).await;
    assert_ne!(code, 0, "{v}");
    assert!(v.to_string().contains("no version in the release ledger yet"), "{v}");
    let (_, _) = opsctl(&config, &["triage", "--no-logs"]).await;
    let (code, v) = opsctl(&config, &["rollback", "web"]).await;
    assert_ne!(code, 0, "only one version known: {v}");
    assert!(v.to_string().contains("has no version before"), "{v}");

    // v2 is deployed and fails; triage sees it.
    docker(&["rm", "-f", &name]);
    run("v2");
    harness::eventually("v2 exited", Duration::from_secs(30), || async {
        (docker(&["inspect", "-f", "{{.State.Status}}", &name]) == "exited").then_some(())
    })
    .await;
    let (_, _) = opsctl(&config, &["triage", "--no-logs"]).await;
    let failed = inspect();

    // The plan names both versions and changes nothing.
    let (code, plan) = opsctl(&config, &["rollback", "web"]).await;
    assert_eq!(code, 0, "{plan:#}");
    let t = &plan["plan"]["targets"][0]["details"];
    assert!(
        t["from"].as_str().unwrap().starts_with(&image("v2")) && t["to"].as_str().unwrap().starts_with(&image("v1")),
        "{plan:#}"
    );
    assert_eq!(inspect()["Id"], failed["Id"], "a plan changes nothing");
    assert!(plan["plan"]["notes"].to_string().contains(&format!("auto-updater {watchtower} is paused")), "{plan:#}");
    assert!(!paused(), "a plan pauses nothing");
    let (code, v) = opsctl(&config, &["rollback", "web", "--to", "opsit/never:1"]).await;
    assert_ne!(code, 0, "{v}");
    assert!(v.to_string().contains("never ran"), "{v}");

    // Were web a database's container, a backup holding that database's lock refuses it. The
    // local lock file is enough to tell (a backup on this host holds it first).
    let locked = dir.path().join("locked.toml");
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    std::fs::write(
        &locked,
        format!(
            "{}
[databases.main]
url = \"postgres://app@127.0.0.1:9/app\"
container = \"{name}\"
[storage]
\
             url = \"{}\"
",
            std::fs::read_to_string(&config).unwrap(),
            backups.display()
        ),
    )
    .unwrap();
    let mut held = std::fs::File::create(backups.join(".ops-app.lock")).unwrap();
    held.try_lock().unwrap();
    std::io::Write::write_all(
        &mut held,
        br#"{"pid": 4242, "operation": "backup", "started_at": "2026-12-03T02:00:00Z"}"#,
    )
    .unwrap();
    let (code, v) = opsctl(&locked, &["rollback", "web"]).await;
    assert_ne!(code, 0, "{v}");
    assert!(
        v.to_string().contains(
            "a backup, restore or drill of app is already running since 2026-12-03 02:00:00 UTC (backup by pid 4242)"
        ) && v.to_string().contains("is the container of database main"),
        "{v}"
    );
    drop(held);
    let (code, v) = opsctl(&locked, &["rollback", "web"]).await;
    assert_eq!(code, 0, "the lock let go, a database that does not answer has no backup running: {v}");
    assert!(v["plan"]["notes"].to_string().contains("database main"), "{v:#}");

    // Applied: v1 again, alike.
    let worker_before = worker_started();
    let (code, v) = opsctl(&config, &["rollback", "web", "--apply"]).await;
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["report"]["outcomes"][0]["ok"], true, "{v:#}");
    // The worker restarted after it, running.
    let outcomes = v["report"]["outcomes"].as_array().unwrap();
    assert!(outcomes.iter().any(|o| o["target"] == format!("container:{worker}") && o["ok"] == true), "{v:#}");
    assert_ne!(worker_started(), worker_before, "the dependent restarted");
    // The updater stays paused: it would deploy v2 again.
    assert!(paused(), "{v:#}");
    assert!(
        v["report"]["outcomes"][0]["result"].as_str().unwrap().contains(&format!("{watchtower} left paused")),
        "{v:#}"
    );
    docker(&["unpause", &watchtower]);
    let now = inspect();
    assert_eq!(now["State"]["Status"], "running", "{now:#}");
    assert_ne!(now["Id"], failed["Id"]);
    assert_eq!(now["Config"]["Image"], image("v1"));
    // The environment given, with the image's own default from v1 (not v2's).
    let env = |c: &serde_json::Value| -> Vec<String> {
        c["Config"]["Env"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_owned()).collect()
    };
    let has = |c: &serde_json::Value, e: &str| env(c).iter().any(|x| x == e);
    assert!(has(&now, "APP_MODE=prod") && has(&now, "FLAVOR=one") && !has(&now, "FLAVOR=two"), "{:?}", env(&now));
    // The anonymous volume is the same one, taken over.
    let cache = |c: &serde_json::Value| {
        c["Mounts"].as_array().unwrap().iter().find(|m| m["Destination"] == "/cache").map(|m| m["Name"].clone())
    };
    assert!(cache(&failed).is_some() && cache(&now) == cache(&failed), "{:?} {:?}", cache(&failed), cache(&now));
    for pointer in [
        "/Config/Labels/team",
        "/Config/Cmd",
        "/HostConfig/Binds",
        "/HostConfig/Memory",
        "/HostConfig/RestartPolicy",
        "/HostConfig/NetworkMode",
    ] {
        assert_eq!(now.pointer(pointer), failed.pointer(pointer), "{pointer}");
    }
    assert_eq!(now["Config"]["Labels"]["com.docker.compose.image"], image_id("v1"), "Compose's record of the image");
    // Both networks, each with its alias.
    let aliases = |c: &serde_json::Value, net: &str| -> Vec<String> {
        c["NetworkSettings"]["Networks"][net]["Aliases"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let nets = |c: &serde_json::Value| -> Vec<String> {
        c["NetworkSettings"]["Networks"].as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(nets(&now), nets(&failed), "{:#}", now["NetworkSettings"]);
    assert!(aliases(&now, &front).contains(&"web-front".to_owned()), "{:#}", now["NetworkSettings"]);
    assert!(aliases(&now, &back).contains(&"web-back".to_owned()), "{:#}", now["NetworkSettings"]);
    let kept = docker(&["ps", "-a", "--filter", &format!("name={name}-ops-rollback"), "--format", "{{.Names}}"]);
    assert!(kept.is_empty(), "the replaced container is gone once the rollback is ready: {kept}");
    // The ledger knows: v2 is what a rollback left, so no default target is left, and the
    // rollback itself is no deploy to roll back.
    let (code, v) = opsctl(&config, &["rollback", "web"]).await;
    assert!(code != 0 && v.to_string().contains("has no version before"), "{v}");
    let (_, triage) = opsctl(&config, &["triage", "--no-logs"]).await;
    assert!(!triage.to_string().contains("rolling it back first"), "{triage:#}");

    // A rollback to a version that fails too goes back to where it started.
    let running = inspect();
    let (code, v) = opsctl(&config, &["rollback", "web", "--to", &image("v2"), "--apply"]).await;
    assert_eq!(code, 1, "{v:#}");
    let result = v["report"]["outcomes"][0]["result"].as_str().unwrap().to_owned();
    assert!(result.contains("did not become ready") && result.contains("went back to"), "{result}");
    assert!(result.contains(&format!("{watchtower} resumed")) && !paused(), "{result}");
    let back = inspect();
    assert_eq!((back["Id"].clone(), back["State"]["Status"].clone()), (running["Id"].clone(), "running".into()));
    let audit = ops_core::audit::AuditLog::open(&dir.path().join("audit.jsonl")).unwrap().read().unwrap();
    let rollbacks: Vec<&str> = audit.iter().filter(|e| e.action == "rollback").map(|e| e.result.as_str()).collect();
    assert_eq!(rollbacks.len(), 4, "intent and outcome of each: {rollbacks:?}");
    let updater: Vec<&str> =
        audit.iter().filter(|e| e.action.ends_with("-updater")).map(|e| e.action.as_str()).collect();
    assert_eq!(updater, ["pause-updater", "pause-updater", "unpause-updater"], "{updater:?}");

    // A version a rollback may need is never pruned, even once its tag moved on (dangling).
    let v1_id = back["Image"].as_str().unwrap().to_owned();
    leftovers.1.push(v1_id.clone());
    docker(&["rm", "-f", &name]);
    docker(&["tag", "ops-test/base:bookworm", &image("v1")]);
    let loaded = ops_core::config::load(Some(&config), &std::collections::BTreeMap::new()).unwrap();
    let mut ctx = Context::from_config(loaded.config).unwrap();
    ctx.open_state().await.unwrap();
    let prune = ops_act::plan(&ctx, &ops_act::Action::EnginePrune { label: None }).await.unwrap();
    assert!(!prune.targets.iter().any(|t| t.id == format!("image:{v1_id}")), "{prune:#?}");
    assert!(prune.notes.iter().any(|n| n.contains("release ledger: kept")), "{prune:#?}");
}
