//! The checks the runbooks still ran by hand, against real servers: `[[sql]]` on PostgreSQL,
//! headers on `[[http]]` against a local server, `[[exec]]` and checks from inside a
//! container's network on the real engine, required environment, who holds a port, and log
//! analysis compared with `awk | sort | uniq -c` on the same file. Driven through `opsctl`.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::Value;

use crate::harness;

fn opsctl(args: &[&str], env: &[(&str, &str)]) -> (u8, String, String) {
    let env: BTreeMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut argv = vec!["opsctl"];
    argv.extend_from_slice(args);
    let code = ops_cli::run(argv, &env, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

/// `opsctl --config FILE probe check NAME --json` on a blocking thread (opsctl runs its own
/// runtime); the report.
async fn check(config: &std::path::Path, name: &str, env: &[(&str, &str)]) -> (u8, Value, String) {
    let (config, name) = (config.display().to_string(), name.to_owned());
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (code, out, err) = opsctl(&["--config", &config, "--json", "probe", "check", &name], &env);
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
        (code, v, format!("{out}{err}"))
    })
    .await
    .unwrap()
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("ops.toml");
    std::fs::write(&path, format!("{}\n{text}", harness::CALM_HOST)).unwrap();
    path
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker CLI");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn psql(pg: &harness::Postgres, sql: &str) -> String {
    docker(&["exec", pg.id(), "psql", "-U", "postgres", "-d", "app", "-tAc", sql])
}

fn problem_runbooks(report: &Value) -> Vec<String> {
    report["problems"].as_array().unwrap().iter().map(|p| p["runbook"].as_str().unwrap().to_owned()).collect()
}

/// `[[sql]]`: the newest row ages past the thresholds, ok -> warn -> critical, by a
/// `timestamptz` and by a `numeric` age; a write is refused when the configuration loads, and
/// one hidden in a function fails in the read-only transaction without changing anything.
#[tokio::test]
async fn sql_checks_judge_the_newest_rows_age_and_never_write() {
    let pg = harness::postgres(&[]).await;
    psql(&pg, "CREATE TABLE events (ledger_sequence bigint, created_at timestamptz NOT NULL)");
    psql(&pg, "INSERT INTO events VALUES (1, now())");
    psql(
        &pg,
        "CREATE FUNCTION bump() RETURNS bigint LANGUAGE sql AS \
         'INSERT INTO events VALUES (99, now()) RETURNING ledger_sequence'",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        &format!(
            "[databases.main]\nurl = \"{}\"\n\n[state]\nurl = \"sqlite://{}/state.db\"\n\n\
             [[sql]]\nname = \"indexer-lag\"\nquery = \"SELECT max(created_at) FROM events\"\nwarn-above = 300\ncritical-above = 600\n\n\
             [[sql]]\nname = \"lag-seconds\"\nquery = \"SELECT extract(epoch FROM now() - max(created_at)) FROM events\"\nwarn-above = 300\ncritical-above = 600\n\n\
             [[sql]]\nname = \"sneaky\"\nquery = \"SELECT bump()\"\nwarn-above = 1000\n\n\
             [[sql]]\nname = \"two-rows\"\nquery = \"SELECT ledger_sequence FROM events UNION ALL SELECT 2\"\nwarn-above = 1\n\n\
             [[sql]]\nname = \"forever\"\nquery = \"SELECT 'infinity'::timestamptz\"\nwarn-above = 1\n\n\
             [[sql]]\nname = \"slow\"\nquery = \"SELECT 1 FROM pg_sleep(5)\"\nwarn-above = 1\ntimeout-secs = 1\n",
            pg.url("postgres", "postgres", "app"),
            dir.path().display()
        ),
    );
    for (age, want) in [(0, "ok"), (400, "warn"), (700, "critical")] {
        psql(&pg, &format!("UPDATE events SET created_at = now() - interval '{age} seconds'"));
        for name in ["sql:indexer-lag", "sql:lag-seconds"] {
            let (code, r, _) = check(&config, name, &[]).await;
            assert_eq!(r["status"], want, "{name} at {age} s: {r:#}");
            assert_eq!(code, [("ok", 0), ("warn", 1), ("critical", 2)].iter().find(|s| s.0 == want).unwrap().1);
            if want != "ok" {
                assert_eq!(problem_runbooks(&r), ["data-stale"], "{r:#}");
            }
            let seen = r["observations"].as_array().unwrap()[0]["value"].as_f64().unwrap();
            assert!((seen - f64::from(age)).abs() < 30.0, "{name}: {seen} for {age}");
        }
    }
    // The API and /metrics have it as triage does: critical, its age a value.
    let env = BTreeMap::from([("API_KEYS".to_owned(), "read-key-0123456789".to_owned())]);
    let loaded = ops_core::config::load(Some(&config), &env).unwrap();
    let state = ops_server::AppState::from_config(loaded.config, Some(config.clone()), env);
    let get = |uri: &'static str, key: bool| {
        let state = Arc::clone(&state);
        async move {
            use tower::ServiceExt as _;
            let mut req = axum::http::Request::builder().uri(uri);
            if key {
                req = req.header("authorization", "Bearer read-key-0123456789");
            }
            let resp = ops_server::app(state).oneshot(req.body(axum::body::Body::empty()).unwrap()).await.unwrap();
            String::from_utf8(axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap().to_vec()).unwrap()
        }
    };
    let probes: Value = serde_json::from_str(&get("/api/v1/probes?kind=sql", true).await).unwrap();
    let lag = probes["probes"].as_array().unwrap().iter().find(|p| p["name"] == "sql:indexer-lag").unwrap();
    assert_eq!(lag["status"], "critical", "{probes:#}");
    let metrics = get("/metrics", false).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ops_probe_status{probe=\"sql:indexer-lag\",kind=\"sql\"") && l.ends_with(" 2")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ops_probe_value{probe=\"sql:indexer-lag\"") && l.contains("name=\"age_seconds\"")),
        "{metrics}"
    );

    // Written in a function, the write fails in the read-only transaction.
    let (_, r, _) = check(&config, "sql:sneaky", &[]).await;
    assert_eq!(r["status"], "unknown", "{r:#}");
    assert!(r["message"].as_str().unwrap().contains("read-only transaction"), "{r:#}");
    assert_eq!(psql(&pg, "SELECT count(*) FROM events"), "1", "nothing was written");
    let (_, r, _) = check(&config, "sql:two-rows", &[]).await;
    assert!(r["message"].as_str().unwrap().contains("more than one row"), "{r:#}");
    let (_, r, _) = check(&config, "sql:forever", &[]).await;
    assert_eq!(r["status"], "unknown", "{r:#}");
    assert!(r["message"].as_str().unwrap().contains("infinity"), "{r:#}");
    let (_, r, _) = check(&config, "sql:slow", &[]).await;
    assert_eq!(r["status"], "unknown", "{r:#}");
    assert!(r["message"].as_str().unwrap().contains("statement_timeout"), "{r:#}");

    // A write in the configuration is refused when it loads, naming file, line and key.
    let bad = write_config(
        &dir,
        &format!(
            "[databases.main]\nurl = \"{}\"\n\n[[sql]]\nname = \"oops\"\nquery = \"DELETE FROM events\"\nwarn-above = 1\n",
            pg.url("postgres", "postgres", "app")
        ),
    );
    let (code, out, err) = {
        let bad = bad.display().to_string();
        tokio::task::spawn_blocking(move || opsctl(&["--config", &bad, "probe", "check", "sql:oops"], &[]))
            .await
            .unwrap()
    };
    assert_ne!(code, 0);
    let text = format!("{out}{err}");
    assert!(text.contains("ops.toml") && text.contains("sql.0.query") && text.contains("must be a SELECT"), "{text}");
    assert_eq!(psql(&pg, "SELECT count(*) FROM events"), "1");
}

/// Headers on `[[http]]` reach the server; the value, from the environment, never appears in
/// any output, and a redirect to another origin does not carry it.
#[tokio::test]
async fn http_headers_reach_the_server_and_the_secret_never_shows() {
    const SECRET: &str = "shk-live-9f8e7d6c5b4a";
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let elsewhere: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let other = {
        let elsewhere = elsewhere.clone();
        let app = axum::Router::new().route(
            "/landing",
            get(move |h: HeaderMap| async move {
                elsewhere.lock().unwrap().push(h.get("x-shkeeper-api-key").map(|v| v.to_str().unwrap().to_owned()));
                "landed"
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        addr
    };
    let app = {
        let seen = seen.clone();
        axum::Router::new()
            .route(
                "/api/v1/healthcheck",
                get(move |h: HeaderMap| async move {
                    let key = h.get("x-shkeeper-api-key").map(|v| v.to_str().unwrap().to_owned());
                    seen.lock().unwrap().push(key.clone());
                    if key.as_deref() == Some(SECRET) {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::UNAUTHORIZED, "no")
                    }
                }),
            )
            .route(
                "/away",
                get(move || async move { axum::response::Redirect::temporary(&format!("http://{other}/landing")) }),
            )
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        &format!(
            "[[http]]\nname = \"shkeeper\"\nurl = \"http://{addr}/api/v1/healthcheck\"\n\
             headers = {{ \"X-Shkeeper-Api-Key\" = \"${{SHKEEPER_API_KEY}}\" }}\n\n\
             [[http]]\nname = \"away\"\nurl = \"http://{addr}/away\"\nfollow-redirects = true\n\
             headers = {{ \"X-Shkeeper-Api-Key\" = \"${{SHKEEPER_API_KEY}}\" }}\n"
        ),
    );
    let env = [("SHKEEPER_API_KEY", SECRET)];
    let (code, r, text) = check(&config, "http:shkeeper", &env).await;
    assert_eq!((code, r["status"].as_str()), (0, Some("ok")), "{r:#}");
    assert_eq!(seen.lock().unwrap().last().unwrap().as_deref(), Some(SECRET));
    assert!(!text.contains(SECRET));
    let (_, r, text) = check(&config, "http:away", &env).await;
    assert_eq!(r["status"], "ok", "{r:#}");
    assert_eq!(elsewhere.lock().unwrap().as_slice(), [None], "another origin never gets the header");
    assert!(!text.contains(SECRET));
    // A wrong key: the failure shows, the key does not.
    let wrong = "shk-wrong-0000000000";
    let (code, r, text) = check(&config, "http:shkeeper", &[("SHKEEPER_API_KEY", wrong)]).await;
    assert_eq!((code, problem_runbooks(&r)), (2, vec!["api-down".to_owned()]), "{r:#}");
    assert!(!text.contains(wrong));
    // Nor in triage, nor in the resolved configuration.
    let config_s = config.display().to_string();
    let outputs = tokio::task::spawn_blocking(move || {
        let env = [("SHKEEPER_API_KEY", SECRET)];
        [
            opsctl(&["--config", &config_s, "--json", "triage", "--no-logs", "--no-record"], &env),
            opsctl(&["--config", &config_s, "triage", "--no-logs", "--no-record", "-v"], &env),
            opsctl(&["--config", &config_s, "config", "check"], &env),
            opsctl(&["--config", &config_s, "--json", "config", "check"], &env),
        ]
    })
    .await
    .unwrap();
    for (_, out, err) in &outputs {
        assert!(!out.contains(SECRET) && !err.contains(SECRET), "{out}{err}");
    }
    assert!(outputs[2].1.contains("with X-Shkeeper-Api-Key"), "{}", outputs[2].1);
}

/// A container of project `project`, service `service`, on `network` (with `alias`), with
/// `env`, running `cmd`; removed when the guard drops.
fn container(
    project: &str,
    service: &str,
    network: &str,
    alias: &str,
    env: &[&str],
    cmd: &[&str],
) -> (String, harness::Cleanup) {
    let name = harness::unique(&format!("opsit-{service}"));
    let mut args = vec![
        "run".to_owned(),
        "-d".to_owned(),
        "--name".to_owned(),
        name.clone(),
        "--label".to_owned(),
        "ops.it=by_hand".to_owned(),
        "--label".to_owned(),
        format!("com.docker.compose.project={project}"),
        "--label".to_owned(),
        format!("com.docker.compose.service={service}"),
        "--network".to_owned(),
        network.to_owned(),
        "--network-alias".to_owned(),
        alias.to_owned(),
        "--stop-timeout".to_owned(),
        "1".to_owned(),
    ];
    for e in env {
        args.extend(["-e".to_owned(), (*e).to_owned()]);
    }
    args.push(harness::BASE_IMAGE.to_owned());
    args.extend(cmd.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&args);
    (name.clone(), harness::Cleanup(name))
}

struct Network(String);

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["network", "rm", &self.0]).output();
    }
}

/// `[[exec]]` (an `nginx -t`-like success and failure), `[[http]]` and `[[tcp]]` from inside a
/// container's network (an alias the host cannot resolve), and required environment.
#[tokio::test]
async fn exec_checks_in_container_checks_and_required_env() {
    harness::require_docker().await;
    let project = harness::unique("opsit-hand").to_lowercase();
    let net = Network(docker(&["network", "create", &project]));
    let _ = &net;
    let (_indexer, _c1) = container(
        &project,
        "indexer",
        &project,
        "indexer-internal",
        &[],
        &["sh", "-c", "mkdir -p /www && echo indexer-ok > /www/index.html && exec busybox httpd -f -p 3000 -h /www"],
    );
    const DB_SECRET: &str = "pg-pass-5e4d3c2b1a";
    let db_url = format!("DATABASE_URL=postgres://app:{DB_SECRET}@db/app");
    let (_api, _c2) = container(&project, "api", &project, "api", &[&db_url, "PORT=8080"], &["sleep", "600"]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        &format!(
            "[project]\ncompose-project = \"{project}\"\n\n\
             [probes.container]\nrequired-env = {{ api = [\"DATABASE_URL\", \"PORT\", \"SECRET_KEY\"] }}\n\n\
             [[exec]]\nname = \"config-ok\"\ncontainer = \"api\"\ncommand = [\"cat\", \"/etc/os-release\"]\nexpect-output = \"Debian\"\n\n\
             [[exec]]\nname = \"config-bad\"\ncontainer = \"api\"\ncommand = [\"ls\", \"/etc/nginx/nginx.conf\"]\n\n\
             [[http]]\nname = \"indexer-inside\"\nurl = \"http://indexer-internal:3000/\"\nfrom-container = \"api\"\nexpect-body = \"indexer-ok\"\n\n\
             [[http]]\nname = \"indexer-from-host\"\nurl = \"http://indexer-internal:3000/\"\n\n\
             [[http]]\nname = \"missing-page\"\nurl = \"http://indexer-internal:3000/nope\"\nfrom-container = \"api\"\n\n\
             [[tcp]]\nname = \"indexer-port\"\naddress = \"indexer-internal:3000\"\nfrom-container = \"api\"\n\n\
             [[tcp]]\nname = \"closed-port\"\naddress = \"indexer-internal:3999\"\nfrom-container = \"api\"\n"
        ),
    );
    // The httpd may take a moment.
    let c = config.clone();
    harness::eventually("the indexer answers inside its network", Duration::from_secs(20), || {
        let c = c.clone();
        async move { (check(&c, "http:indexer-inside", &[]).await.1["status"] == "ok").then_some(()) }
    })
    .await;
    let (code, r, _) = check(&config, "exec:config-ok", &[]).await;
    assert_eq!((code, r["status"].as_str()), (0, Some("ok")), "{r:#}");
    let (code, r, _) = check(&config, "exec:config-bad", &[]).await;
    assert_eq!((code, problem_runbooks(&r)), (2, vec!["command-failed".to_owned()]), "{r:#}");
    assert!(r["message"].as_str().unwrap().contains("ls exited 2"), "{r:#}");
    assert!(r.to_string().contains("No such file"), "the output is the evidence: {r:#}");

    let (_, r, _) = check(&config, "http:indexer-inside", &[]).await;
    assert!(r["message"].as_str().unwrap().contains("HTTP 200 from inside"), "{r:#}");
    let (_, r, _) = check(&config, "http:indexer-from-host", &[]).await;
    assert_eq!(problem_runbooks(&r), ["api-down"], "the host cannot resolve the alias: {r:#}");
    let (_, r, _) = check(&config, "http:missing-page", &[]).await;
    assert_eq!(problem_runbooks(&r), ["api-down"], "{r:#}");
    assert!(r["message"].as_str().unwrap().contains("404"), "{r:#}");
    let (_, r, _) = check(&config, "tcp:indexer-port", &[]).await;
    assert_eq!(r["status"], "ok", "{r:#}");
    let (_, r, _) = check(&config, "tcp:closed-port", &[]).await;
    assert_eq!(problem_runbooks(&r), ["port-closed"], "{r:#}");

    // Required environment: the missing name, never a value.
    let (code, r, text) = check(&config, "container:api", &[]).await;
    assert_eq!((code, problem_runbooks(&r)), (2, vec!["config-error".to_owned()]), "{r:#}");
    let message = r["message"].as_str().unwrap();
    assert!(message.contains("SECRET_KEY") && !message.contains("PORT"), "{message}");
    assert!(!text.contains(DB_SECRET));
    // Triage files it with its severity.
    let config_s = config.display().to_string();
    let (_, out, _) = tokio::task::spawn_blocking(move || {
        opsctl(&["--config", &config_s, "--json", "triage", "--no-logs", "--no-record"], &[])
    })
    .await
    .unwrap();
    assert!(!out.contains(DB_SECRET));
    let triage: Value = serde_json::from_str(&out).unwrap();
    let incident = triage["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["runbook"] == "config-error")
        .unwrap_or_else(|| panic!("{triage:#}"));
    assert_eq!(incident["severity"], "P2", "{incident:#}");
}

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python_listener(address: &str, port: u16) -> Child {
    let child = Child(Command::new("python3")
        .args(["-c", "import socket,sys,time; s=socket.socket(); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(); time.sleep(600)", address, &port.to_string()])
        .spawn()
        .expect("python3"));
    // Until it listens.
    for _ in 0..100 {
        if ops_probes::ports::holders(port).iter().any(|h| h.pid == child.0.id()) {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("python3 did not listen on {address}:{port}");
}

/// A closed configured port held by another process names it, and so does a container that
/// could not bind its published port.
#[tokio::test]
async fn a_port_held_by_another_process_names_it() {
    let port = harness::free_port();
    let holder = python_listener("127.0.0.2", port);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dir, &format!("[[tcp]]\nname = \"api\"\naddress = \"127.0.0.1:{port}\"\n"));
    let (code, r, _) = check(&config, "tcp:api", &[]).await;
    assert_eq!((code, problem_runbooks(&r)), (2, vec!["port-closed".to_owned()]), "{r:#}");
    let evidence = r.to_string();
    assert!(evidence.contains(&format!("pid {} (python3", holder.0.id())), "{r:#}");
    assert!(evidence.contains(&format!("127.0.0.2:{port}")), "{r:#}");

    // A container publishing a port a process holds does not start; its check names the holder.
    harness::require_docker().await;
    let taken = harness::free_port();
    let squatter = python_listener("127.0.0.1", taken);
    let project = harness::unique("opsit-port").to_lowercase();
    let name = harness::unique("opsit-web");
    let _guard = harness::Cleanup(name.clone());
    docker(&[
        "create",
        "--name",
        &name,
        "--label",
        "ops.it=by_hand",
        "--label",
        &format!("com.docker.compose.project={project}"),
        "--label",
        "com.docker.compose.service=web",
        "-p",
        &format!("127.0.0.1:{taken}:80"),
        harness::BASE_IMAGE,
        "sleep",
        "600",
    ]);
    let started = Command::new("docker").args(["start", &name]).output().unwrap();
    assert!(!started.status.success(), "the port is taken: the start must fail");
    let config = write_config(&dir, &format!("[project]\ncompose-project = \"{project}\"\n"));
    let (_, r, _) = check(&config, "container:web", &[]).await;
    let evidence = r.to_string();
    assert!(evidence.contains(&format!("port {taken} is held by pid {} (python3", squatter.0.id())), "{r:#}");

    // The holder is another container (the old one still running after a botched deploy):
    // named.
    let shared = harness::free_port();
    let (old, new) = (harness::unique("opsit-old"), harness::unique("opsit-new"));
    let _guards = (harness::Cleanup(old.clone()), harness::Cleanup(new.clone()));
    for (name, service) in [(&old, "old"), (&new, "new")] {
        docker(&[
            "create",
            "--name",
            name,
            "--label",
            "ops.it=by_hand",
            "--label",
            &format!("com.docker.compose.project={project}"),
            "--label",
            &format!("com.docker.compose.service={service}"),
            "-p",
            &format!("127.0.0.1:{shared}:80"),
            harness::BASE_IMAGE,
            "sleep",
            "600",
        ]);
    }
    docker(&["start", &old]);
    assert!(!Command::new("docker").args(["start", &new]).output().unwrap().status.success());
    let (_, r, _) = check(&config, "container:new", &[]).await;
    assert!(r.to_string().contains(&format!("port {shared} is published by container {old}")), "{r:#}");
}

/// `[[access-logs]]` top clients equal `awk '{print $1}' | sort | uniq -c | sort -rn | head` on
/// the same generated combined-format log; `[[log-patterns]]` counts a burst in a file (by the
/// lines' times) and in a container's log.
#[tokio::test]
async fn log_analysis_matches_awk_and_counts_bursts() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut text = String::new();
    let now = chrono::Utc::now();
    // A deterministic mix: one abusive client, a few regular ones, a long tail.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..12_000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let ip = match seed % 10 {
            0..=4 => "203.0.113.66".to_owned(),
            5..=7 => format!("198.51.100.{}", seed % 7),
            _ => format!("192.0.2.{}", seed % 200),
        };
        let t = (now - chrono::Duration::seconds(i64::from(12_000 - i))).format("%d/%b/%Y:%H:%M:%S +0000");
        text.push_str(&format!(
            "{ip} - - [{t}] \"POST /api/auth/login HTTP/1.1\" 401 23 \"-\" \"Mozilla/5.0 (X11; Linux)\"\n"
        ));
    }
    std::fs::write(&log, &text).unwrap();
    let config = write_config(
        &dir,
        &format!(
            "[[access-logs]]\nname = \"nginx\"\nfile = \"{}\"\n\n\
             [[log-patterns]]\nname = \"logins\"\nfile = \"{}\"\npattern = \"POST /api/auth/login\"\nwindow-mins = 10\nwarn-count = 100\ncritical-count = 500\n",
            log.display(),
            log.display()
        ),
    );
    let (code, r, _) = check(&config, "access-log:nginx", &[]).await;
    assert_eq!((code, problem_runbooks(&r)), (1, vec!["suspicious-traffic".to_owned()]), "{r:#}");
    let ours: Vec<(u64, String)> = r["observations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["name"] == "client_requests")
        .map(|o| (o["value"].as_f64().unwrap() as u64, o["labels"]["client"].as_str().unwrap().to_owned()))
        .collect();
    let awk = Command::new("bash")
        .arg("-c")
        .env("LC_ALL", "C")
        .arg(format!(
            "tail -n 10000 {} | awk '{{print $1}}' | sort | uniq -c | sort -k1,1rn -k2,2 | head",
            log.display()
        ))
        .output()
        .unwrap();
    let theirs: Vec<(u64, String)> = String::from_utf8(awk.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut f = l.split_whitespace();
            (f.next().unwrap().parse().unwrap(), f.next().unwrap().to_owned())
        })
        .collect();
    assert_eq!(ours, theirs);
    // The last 10 minutes hold 600 of the lines: critical.
    let (_, r, _) = check(&config, "log-pattern:logins", &[]).await;
    assert_eq!(problem_runbooks(&r), ["log-burst"], "{r:#}");
    assert_eq!(r["status"], "critical");
    let matches = r["observations"].as_array().unwrap().iter().find(|o| o["name"] == "matches").unwrap()["value"]
        .as_f64()
        .unwrap();
    assert!((595.0..=605.0).contains(&matches), "{matches}");

    // A container's log, read through the engine.
    harness::require_docker().await;
    let project = harness::unique("opsit-logs").to_lowercase();
    let net = Network(docker(&["network", "create", &project]));
    let _ = &net;
    let (_c, _guard) = container(
        &project,
        "backend",
        &project,
        "backend",
        &[],
        &["sh", "-c", "for i in $(seq 1 40); do echo \"🔌 User connected $i\"; echo other; done; sleep 600"],
    );
    let config = write_config(
        &dir,
        &format!(
            "[project]\ncompose-project = \"{project}\"\n\n[[log-patterns]]\nname = \"sockets\"\ncontainer = \"backend\"\npattern = \"🔌\"\nwarn-count = 20\ncritical-count = 100\n"
        ),
    );
    let c = config.clone();
    let r = harness::eventually("40 reconnect lines", Duration::from_secs(20), || {
        let c = c.clone();
        async move {
            let (_, r, _) = check(&c, "log-pattern:sockets", &[]).await;
            (r["observations"][0]["value"] == 40.0).then_some(r)
        }
    })
    .await;
    assert_eq!(r["status"], "warn", "{r:#}");
    assert!(r["message"].as_str().unwrap().starts_with("40 lines matching"), "{r:#}");
}

/// A CA (`ca.pem` in `dir`) and a leaf for `mail.test` valid from `from` to `to` days from
/// today, written as `{prefix}.pem` and `{prefix}.key`.
fn mail_pki(dir: &std::path::Path, leaves: &[(&str, i64, i64)]) {
    use chrono::Datelike as _;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let day = |days: i64| {
        let d = chrono::Utc::now().date_naive() + chrono::Duration::days(days);
        rcgen::date_time_ymd(d.year(), u8::try_from(d.month()).unwrap(), u8::try_from(d.day()).unwrap())
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "Mail Test Root");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    (ca.not_before, ca.not_after) = (day(-400), day(3650));
    std::fs::write(dir.join("ca.pem"), ca.clone().self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = Issuer::from_params(&ca, &ca_key);
    for (prefix, from, to) in leaves {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["mail.test".to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "mail.test");
        (p.not_before, p.not_after) = (day(*from), day(*to));
        std::fs::write(dir.join(format!("{prefix}.pem")), p.signed_by(&key, &issuer).unwrap().pem()).unwrap();
        std::fs::write(dir.join(format!("{prefix}.key")), key.serialize_pem()).unwrap();
    }
}

/// aiosmtpd with STARTTLS required and AUTH (user `ops`, password `pw`), on `port`.
fn smtp_server(dir: &std::path::Path, leaf: &str, port: u16, password: &str) -> Child {
    const SCRIPT: &str = r#"
import sys, ssl, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
port, cert, key, password = sys.argv[1:5]
class Handler:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
def auth(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b"ops" and data.password == password.encode()
    return AuthResult(success=ok, handled=False)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
c = Controller(Handler(), hostname="127.0.0.1", port=int(port), tls_context=ctx, require_starttls=True,
               authenticator=auth, auth_require_tls=True, server_hostname="mail.test")
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;
    let python = harness::pytool("python");
    let child = Child(
        Command::new(python)
            .arg("-c")
            .arg(SCRIPT)
            .arg(port.to_string())
            .arg(dir.join(format!("{leaf}.pem")))
            .arg(dir.join(format!("{leaf}.key")))
            .arg(password)
            .spawn()
            .expect("aiosmtpd"),
    );
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("aiosmtpd did not listen on {port}");
}

/// `[[smtp]]` against aiosmtpd: ok with STARTTLS and AUTH; a wrong password is a refused login,
/// an expired certificate a TLS failure, a closed port a refused connection; the password
/// never shows.
#[tokio::test]
async fn smtp_checks_tell_refused_tls_and_login_failures_apart() {
    const PASSWORD: &str = "smtp-pass-8c7b6a5d4e";
    let dir = tempfile::tempdir().unwrap();
    mail_pki(dir.path(), &[("good", -1, 90), ("expired", -60, -1)]);
    let (good, expired, closed) = (harness::free_port(), harness::free_port(), harness::free_port());
    let _good = smtp_server(dir.path(), "good", good, PASSWORD);
    let _expired = smtp_server(dir.path(), "expired", expired, PASSWORD);
    let entry = |name: &str, port: u16| {
        format!(
            "[[smtp]]\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\nserver-name = \"mail.test\"\n\
             ca-file = \"{}\"\nusername = \"ops\"\npassword = \"${{SMTP_PASS}}\"\n\n",
            dir.path().join("ca.pem").display()
        )
    };
    let config =
        write_config(&dir, &[entry("mail", good), entry("expired", expired), entry("closed", closed)].concat());
    let env = [("SMTP_PASS", PASSWORD)];
    let (code, r, text) = check(&config, "smtp:mail", &env).await;
    assert_eq!((code, r["status"].as_str()), (0, Some("ok")), "{r:#}");
    assert!(r["message"].as_str().unwrap().contains("STARTTLS, login as ops accepted"), "{r:#}");
    let stages: Vec<&str> = r["observations"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    for s in ["connect", "banner", "ehlo", "tls", "auth", "total"] {
        assert!(stages.contains(&s), "{stages:?}");
    }
    assert!(!text.contains(PASSWORD));

    let (code, r, text) = check(&config, "smtp:mail", &[("SMTP_PASS", "not-the-password")]).await;
    assert_eq!((code, problem_runbooks(&r)), (2, vec!["email-failing".to_owned()]), "{r:#}");
    assert!(r["message"].as_str().unwrap().starts_with("login refused: 535"), "{r:#}");
    assert!(!text.contains("not-the-password"));

    let (_, r, text) = check(&config, "smtp:expired", &env).await;
    let message = r["message"].as_str().unwrap();
    assert!(message.starts_with("TLS failed:") && message.to_lowercase().contains("expired"), "{r:#}");
    assert!(!text.contains(PASSWORD));

    let (_, r, _) = check(&config, "smtp:closed", &env).await;
    assert!(r["message"].as_str().unwrap().starts_with("cannot connect: connection refused"), "{r:#}");
}

/// `[[prometheus]]` against Debian's Prometheus scraping one target that answers and one that
/// does not: the down job is named with its instance and error.
#[tokio::test]
async fn prometheus_targets_up_and_down_by_job() {
    let app = axum::Router::new().route("/metrics", get(|| async { "# TYPE up_test gauge\nup_test 1\n" }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let closed = harness::free_port();
    let port = harness::free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n\
         \x20 - job_name: api\n    static_configs:\n      - targets: ['{up}']\n\
         \x20 - job_name: worker\n    static_configs:\n      - targets: ['127.0.0.1:{closed}']\n"
    );
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let prom = harness::Daemon::start(
        "prometheus",
        &["--config.file={dir}/prometheus.yml", "--storage.tsdb.path={dir}/data", &listen],
        &[("prometheus.yml", &config)],
        port,
        "/-/ready",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dir, &format!("[[prometheus]]\nname = \"main\"\nurl = \"{}\"\n", prom.url));
    let c = config.clone();
    let r = harness::eventually("both targets scraped", Duration::from_secs(30), || {
        let c = c.clone();
        async move {
            let (_, r, _) = check(&c, "prometheus:main", &[]).await;
            let obs = |n: &str| {
                r["observations"].as_array().unwrap().iter().find(|o| o["name"] == n).map(|o| o["value"].clone())
            };
            (obs("targets_up") == Some(1.0.into()) && obs("targets_down") == Some(1.0.into())).then_some(r)
        }
    })
    .await;
    assert_eq!(problem_runbooks(&r), ["targets-down"], "{r:#}");
    assert_eq!(r["status"], "critical", "the whole worker job is down: {r:#}");
    let problem = &r["problems"][0];
    assert_eq!(problem["message"], "job worker: 1 of 1 targets down");
    assert!(problem["evidence"][0].as_str().unwrap().contains(&format!("127.0.0.1:{closed}")), "{r:#}");
}

/// `[[celery]]` against a real Celery worker and Flower on the test Redis: online, then the
/// worker stopped and a backlog growing.
#[tokio::test]
async fn celery_workers_online_then_stopped_with_a_backlog() {
    const FLOWER_PASSWORD: &str = "flower-pw-1a2b3c4d";
    let (_redis, redis_port) = harness::redis(None).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tasks.py"),
        "from celery import Celery\napp = Celery('tasks', broker='redis://127.0.0.1:{port}/0')\n\
         app.conf.worker_send_task_events = True\n@app.task\ndef add(x, y):\n    return x + y\n"
            .replace("{port}", &redis_port.to_string()),
    )
    .unwrap();
    let celery = harness::pytool("celery");
    let spawn = |args: &[&str]| {
        Child(
            Command::new(&celery)
                .current_dir(dir.path())
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(dir.path().join(format!("{}.log", args[2]))).unwrap())
                .spawn()
                .unwrap(),
        )
    };
    let flower_port = harness::free_port();
    let mut worker = spawn(&[
        "-A",
        "tasks",
        "worker",
        "--concurrency=1",
        "--hostname=w1@%h",
        "-E",
        "--without-mingle",
        "--without-gossip",
    ]);
    let _flower = spawn(&[
        "-A",
        "tasks",
        "flower",
        &format!("--port={flower_port}"),
        "--address=127.0.0.1",
        &format!("--basic-auth=ops:{FLOWER_PASSWORD}"),
    ]);
    let config = write_config(
        &dir,
        &format!(
            "[caches.main]\nurl = \"redis://127.0.0.1:{redis_port}\"\n\n[probes.queue]\nwarn = 5\ncritical = 50\n\n\
             [[celery]]\nname = \"worker\"\nflower-url = \"http://ops:{FLOWER_PASSWORD}@127.0.0.1:{flower_port}\"\n"
        ),
    );
    let c = config.clone();
    let r = harness::eventually("Flower sees the worker online", Duration::from_secs(60), || {
        let c = c.clone();
        async move {
            let (_, r, text) = check(&c, "celery:worker", &[]).await;
            assert!(!text.contains(FLOWER_PASSWORD));
            (r["status"] == "ok").then_some(r)
        }
    })
    .await;
    assert!(r["message"].as_str().unwrap().starts_with("1 workers online: w1@"), "{r:#}");

    // The worker stops (a clean shutdown sends worker-offline); tasks keep coming.
    let _ = Command::new("kill").args(["-TERM", &worker.0.id().to_string()]).status();
    let _ = worker.0.wait();
    let python = harness::pytool("python");
    let sent = Command::new(python)
        .current_dir(dir.path())
        .args(["-c", "from tasks import add\nfor i in range(60): add.delay(i, i)"])
        .status()
        .unwrap();
    assert!(sent.success());
    let c = config.clone();
    let r = harness::eventually("the worker reported offline", Duration::from_secs(60), || {
        let c = c.clone();
        async move {
            let (_, r, _) = check(&c, "celery:worker", &[]).await;
            problem_runbooks(&r).contains(&"workers-down".to_owned()).then_some(r)
        }
    })
    .await;
    assert_eq!(r["status"], "critical", "{r:#}");
    let runbooks = problem_runbooks(&r);
    assert!(runbooks.contains(&"queue-backlog".to_owned()), "{r:#}");
    let length = r["observations"].as_array().unwrap().iter().find(|o| o["name"] == "queue_length").unwrap()["value"]
        .as_f64()
        .unwrap();
    assert!(length >= 60.0, "{length}");
}

/// `[[systemd]]` against a real systemd (PID 1 in a container of the test image, with SYS_ADMIN):
/// a unit that runs, one that failed with its exit status, one restarting, and a timer's next
/// trigger.
#[tokio::test]
async fn systemd_units_active_failed_restarting_and_a_timer() {
    harness::require_docker().await;
    let project = harness::unique("opsit-systemd").to_lowercase();
    let name = harness::unique("opsit-init");
    let _guard = harness::Cleanup(name.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        // systemd as PID 1 needs CAP_SYS_ADMIN (mounts); not --privileged, which asks for every
        // capability and fails where the engine itself runs without some.
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
        "--tmpfs",
        "/tmp",
        "--label",
        "ops.it=by_hand",
        "--label",
        &format!("com.docker.compose.project={project}"),
        "--label",
        "com.docker.compose.service=host",
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/run/lock",
        "-v",
        "/sys/fs/cgroup:/sys/fs/cgroup:ro",
        "--stop-signal",
        "SIGRTMIN+3",
        harness::BASE_IMAGE,
        "/sbin/init",
    ]);
    let units = [
        ("good.service", "[Service]\nExecStart=/bin/sleep infinity\n"),
        ("bad.service", "[Service]\nExecStart=/bin/sh -c 'exit 3'\n"),
        ("flappy.service", "[Service]\nExecStart=/bin/sh -c 'sleep 0.2; exit 1'\nRestart=always\nRestartSec=1\n"),
        ("tick.service", "[Service]\nType=oneshot\nExecStart=/bin/true\n"),
        ("tick.timer", "[Timer]\nOnCalendar=hourly\n[Install]\nWantedBy=timers.target\n"),
    ];
    // systemd is up when systemctl answers.
    let ready = harness::eventually("systemd answers", Duration::from_secs(60), || {
        let name = name.clone();
        async move {
            let out = Command::new("docker").args(["exec", &name, "systemctl", "is-system-running"]).output().ok()?;
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            matches!(state.as_str(), "running" | "degraded").then_some(state)
        }
    })
    .await;
    assert!(!ready.is_empty());
    for (unit, text) in units {
        let path = format!("/etc/systemd/system/{unit}");
        let out = Command::new("docker")
            .args(["exec", "-i", &name, "tee", &path])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin.take().unwrap().write_all(text.as_bytes())?;
                c.wait()
            })
            .unwrap();
        assert!(out.success());
    }
    docker(&["exec", &name, "systemctl", "daemon-reload"]);
    docker(&["exec", &name, "systemctl", "start", "good.service", "flappy.service", "tick.timer"]);
    let _ = Command::new("docker").args(["exec", &name, "systemctl", "start", "bad.service"]).output();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        &format!(
            "[project]\ncompose-project = \"{project}\"\n\n[perf]\naudit-log = \"{}\"\n\n\
             [state]\nurl = \"sqlite://{}/state.db\"\n\n\
             [[systemd]]\nunit = \"good.service\"\ncontainer = \"host\"\n\n\
             [[systemd]]\nunit = \"bad.service\"\ncontainer = \"host\"\n\n\
             [[systemd]]\nunit = \"flappy.service\"\ncontainer = \"host\"\n\n\
             [[systemd]]\nunit = \"tick.timer\"\ncontainer = \"host\"\n\n\
             [[systemd]]\nunit = \"missing.service\"\ncontainer = \"host\"\n",
            dir.path().join("audit.jsonl").display(),
            dir.path().display()
        ),
    );
    let (code, r, _) = check(&config, "systemd:good", &[]).await;
    assert_eq!((code, r["status"].as_str()), (0, Some("ok")), "{r:#}");
    assert!(r["message"].as_str().unwrap().starts_with("active (running)"), "{r:#}");
    let (_, r, _) = check(&config, "systemd:bad", &[]).await;
    assert_eq!(problem_runbooks(&r), ["unit-failed"], "{r:#}");
    assert!(r["message"].as_str().unwrap().starts_with("failed (result exit-code, exit status 3)"), "{r:#}");
    let c = config.clone();
    let r = harness::eventually("flappy restarting", Duration::from_secs(20), || {
        let c = c.clone();
        async move {
            let (_, r, _) = check(&c, "systemd:flappy", &[]).await;
            r["message"].as_str().unwrap().starts_with("restarting:").then_some(r)
        }
    })
    .await;
    assert_eq!(r["status"], "critical", "{r:#}");
    let (_, r, _) = check(&config, "systemd:tick.timer", &[]).await;
    assert_eq!(r["status"], "ok", "{r:#}");
    let next = r["observations"].as_array().unwrap().iter().find(|o| o["name"] == "next_trigger_in").unwrap()["value"]
        .as_f64()
        .unwrap();
    assert!((0.0..=3600.0).contains(&next), "hourly: the next trigger within the hour, {next}");
    let (_, r, _) = check(&config, "systemd:missing", &[]).await;
    assert!(r["message"].as_str().unwrap().contains("not-found"), "{r:#}");

    // restart-unit: a configured unit, planned, restarted (a new main pid), audited; any other
    // unit refused.
    let config_s = config.display().to_string();
    let (plan, applied, refused) = tokio::task::spawn_blocking(move || {
        (
            opsctl(&["--config", &config_s, "--json", "restart-unit", "good"], &[]),
            opsctl(&["--config", &config_s, "--json", "restart-unit", "good", "--apply"], &[]),
            opsctl(&["--config", &config_s, "restart-unit", "ssh.service", "--apply"], &[]),
        )
    })
    .await
    .unwrap();
    let plan: Value = serde_json::from_str(&plan.1).unwrap();
    assert_eq!(plan["plan"]["targets"][0]["id"], "unit:good.service", "{plan:#}");
    assert_eq!(applied.0, 0, "{} {}", applied.1, applied.2);
    let report: Value = serde_json::from_str(&applied.1).unwrap();
    let outcome = &report["report"]["outcomes"][0];
    assert_eq!((outcome["ok"].as_bool(), outcome["result"].as_str()), (Some(true), Some("ok")), "{report:#}");
    assert_ne!(outcome["before"]["pid"], outcome["after"]["pid"], "{outcome:#}");
    assert_eq!(outcome["after"]["active"], "active");
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let results: Vec<String> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["action"] == "restart-unit")
        .map(|e| e["result"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(results, ["started", "ok"]);
    assert_ne!(refused.0, 0);
    assert!(refused.2.contains("only a configured unit may be restarted"), "{}", refused.2);

    // The built-in unit-failed runbook, from the incident's check: a stopped unit is restarted
    // and verified.
    docker(&["exec", &name, "systemctl", "stop", "good.service"]);
    let (_, r, _) = check(&config, "systemd:good", &[]).await;
    assert_eq!(problem_runbooks(&r), ["unit-failed"], "{r:#}");
    let config_s = config.display().to_string();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        opsctl(
            &["--config", &config_s, "--json", "runbook", "run", "unit-failed", "--param", "unit=good", "--apply"],
            &[],
        )
    })
    .await
    .unwrap();
    let run: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    assert_eq!((code, run["status"].as_str()), (0, Some("succeeded")), "{run:#} {err}");
    let (_, r, _) = check(&config, "systemd:good", &[]).await;
    assert_eq!(r["status"], "ok", "{r:#}");
}
