use std::collections::BTreeMap;

use super::*;

const EXAMPLE: &str = r#"
[project]
name = "stellar-escrow"
compose-project = "stellar-escrow"

[databases.main]
url = "postgres://indexer:${POSTGRES_PASSWORD}@localhost:5432/stellar_escrow"
container = "postgres"
key-tables = ["trades", "events"]
min-tables = 3
dependents = ["indexer", "api"]

[caches.main]
url = "redis://:${REDIS_PASSWORD}@localhost:6379"
queues = ["celery"]

[storage]
url = "s3://stellarescrow-backups/daily"
endpoint = "https://account.r2.cloudflarestorage.com"
local-dir = "/var/backups/stellarescrow"
retention-days = 30
access-key-id = "${R2_KEY:-AKIDEXAMPLE}"
secret-access-key = "${R2_SECRET:-example-secret}"

[notify]
webhooks = ["${BACKUP_ALERT_WEBHOOK}"]

[[http]]
name = "api"
url = "http://localhost:4000/health"

[[http]]
name = "indexer"
url = "http://localhost:3000/health"

[[tls]]
name = "site"
endpoint = "stellarescrow.app:443"
"#;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn load_text(text: &str, env: &BTreeMap<String, String>) -> Result<OpsConfig, ConfigError> {
    resolve(ConfigSource { file_name: "ops.toml", text: Some(text), env })
}

fn full_env() -> BTreeMap<String, String> {
    env(&[
        ("POSTGRES_PASSWORD", "pgsecret"),
        ("REDIS_PASSWORD", "redissecret"),
        ("BACKUP_ALERT_WEBHOOK", "https://hooks.slack.com/services/T/B/hooksecret"),
    ])
}

#[test]
fn example_loads_and_interpolates() {
    let cfg = load_text(EXAMPLE, &full_env()).unwrap();
    let db = &cfg.databases["main"];
    assert_eq!(db.url.expose(), "postgres://indexer:pgsecret@localhost:5432/stellar_escrow");
    assert_eq!(db.min_tables, 3);
    assert_eq!(db.dependents, ["indexer", "api"]);
    let storage = cfg.storage.as_ref().unwrap();
    assert_eq!(
        storage.location().unwrap(),
        StorageLocation::S3 { bucket: "stellarescrow-backups".into(), prefix: "daily".into() }
    );
    assert_eq!(storage.access_key_id.as_ref().unwrap().expose(), "AKIDEXAMPLE");
    assert_eq!(cfg.http.len(), 2);
    assert_eq!(cfg.notify.webhooks.len(), 1);
}

#[test]
fn json_and_debug_hide_every_secret() {
    let cfg = load_text(EXAMPLE, &full_env()).unwrap();
    let shown = format!("{}\n{cfg:?}", serde_json::to_string_pretty(&cfg).unwrap());
    for secret in ["pgsecret", "redissecret", "hooksecret", "example-secret", "AKIDEXAMPLE"] {
        assert!(!shown.contains(secret), "{secret} leaked:\n{shown}");
    }
    assert!(shown.contains("postgres://indexer:***@localhost:5432/stellar_escrow"));
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let text = EXAMPLE.replace("retention-days = 30", "retention-dayz = 30");
    let e = load_text(&text, &full_env()).unwrap_err();
    let line = text.lines().position(|l| l.contains("retention-dayz")).unwrap() + 1;
    assert_eq!(e.file, "ops.toml");
    assert_eq!(e.line, Some(line));
    assert_eq!(e.key.as_deref(), Some("storage.retention-dayz"));
    let shown = e.to_string();
    assert!(shown.starts_with(&format!("ops.toml:{line}:")), "{shown}");
    assert!(shown.contains("unknown key"), "{shown}");
    assert!(shown.contains("retention-days"), "hint lists the valid keys: {shown}");
}

#[test]
fn wrong_type_names_line() {
    let text = EXAMPLE.replace("min-tables = 3", "min-tables = \"three\"");
    let e = load_text(&text, &full_env()).unwrap_err();
    let line = text.lines().position(|l| l.contains("min-tables")).unwrap() + 1;
    assert_eq!(e.line, Some(line), "{e}");
    assert_eq!(e.key.as_deref(), Some("databases.main.min-tables"));
}

#[test]
fn unset_variable_is_named() {
    let e = load_text(EXAMPLE, &env(&[("POSTGRES_PASSWORD", "x")])).unwrap_err();
    assert!(e.message.contains("REDIS_PASSWORD"), "{e}");
    let line = EXAMPLE.lines().position(|l| l.contains("${REDIS_PASSWORD}")).unwrap() + 1;
    assert_eq!(e.line, Some(line));
    assert_eq!(e.key.as_deref(), Some("caches.main.url"));
}

#[test]
fn defaults_and_escapes() {
    let e = BTreeMap::new();
    assert_eq!(interpolate::expand("a${X:-b}c", &e).unwrap(), "abc");
    assert_eq!(interpolate::expand("$$HOME", &e).unwrap(), "$HOME");
    assert_eq!(interpolate::expand("price $5", &e).unwrap(), "price $5");
    assert!(interpolate::expand("${X", &e).is_err());
    assert!(interpolate::expand("${}", &e).is_err());
}

#[test]
fn runbook_env_vars_overlay() {
    let cfg = resolve(ConfigSource {
        file_name: "ops.toml",
        text: None,
        env: &env(&[
            ("DATABASE_URL", "postgres://u:p@db:5432/app"),
            ("S3_BUCKET", "s3://backups"),
            ("RETENTION_DAYS", "7"),
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "sk"),
            ("BACKUP_ALERT_WEBHOOK", "https://hooks.example.com/x"),
            ("API_KEYS", "old-key-0123456789, new-key-0123456789,"),
            ("ADMIN_KEYS", "admin1-0123456789"),
        ]),
    })
    .unwrap();
    assert_eq!(cfg.databases["main"].url.expose(), "postgres://u:p@db:5432/app");
    let storage = cfg.storage.unwrap();
    assert_eq!(storage.url, "s3://backups");
    assert_eq!(storage.retention_days, 7);
    assert_eq!(
        cfg.server.api_keys.iter().map(Secret::expose).collect::<Vec<_>>(),
        ["old-key-0123456789", "new-key-0123456789"]
    );
    assert_eq!(cfg.server.admin_keys.len(), 1);
    assert_eq!(cfg.notify.webhooks.len(), 1);
}

#[test]
fn bad_env_value_names_variable() {
    let e = resolve(ConfigSource {
        file_name: "ops.toml",
        text: Some("[storage]\nurl = \"/tmp/b\"\n"),
        env: &env(&[("RETENTION_DAYS", "thirty")]),
    })
    .unwrap_err();
    assert_eq!(e.file, "environment");
    assert_eq!(e.key.as_deref(), Some("RETENTION_DAYS"));
}

#[test]
fn invalid_url_is_located_without_its_value() {
    let text = "[databases.main]\nurl = \"mysql://u:topsecret@h/db\"\n";
    let e = load_text(text, &BTreeMap::new()).unwrap_err();
    assert_eq!(e.line, Some(2));
    assert_eq!(e.key.as_deref(), Some("databases.main.url"));
    assert!(!e.to_string().contains("topsecret"), "{e}");
}

#[test]
fn restore_jobs_are_bounded_and_located() {
    let ok = load_text("[databases.main]\nurl = \"postgres://u@h/db\"\n", &BTreeMap::new()).unwrap();
    assert_eq!(ok.databases["main"].restore_jobs, DEFAULT_RESTORE_JOBS);
    let text = "[databases.main]\nurl = \"postgres://u@h/db\"\nrestore-jobs = 0\n";
    let e = load_text(text, &BTreeMap::new()).unwrap_err();
    assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("databases.main.restore-jobs")), "{e}");
    assert!(e.message.contains("between 1 and 16"), "{e}");
}

#[test]
fn array_table_entries_are_located_by_index() {
    let text = "[[http]]\nname = \"a\"\nurl = \"http://x/h\"\n\n[[http]]\nname = \"b\"\nurl = \"ftp://x/h\"\n";
    let e = load_text(text, &BTreeMap::new()).unwrap_err();
    assert_eq!(e.line, Some(7), "{e}");
    assert_eq!(e.key.as_deref(), Some("http.1.url"));
}

#[test]
fn s3_without_credentials_is_rejected() {
    let e = load_text("[storage]\nurl = \"s3://b/p\"\n", &BTreeMap::new()).unwrap_err();
    assert!(e.message.contains("credentials"), "{e}");
}

#[test]
fn storage_urls() {
    assert_eq!(parse_storage_url("file:///var/b").unwrap(), StorageLocation::Dir("/var/b".into()));
    assert_eq!(parse_storage_url("/var/b").unwrap(), StorageLocation::Dir("/var/b".into()));
    assert_eq!(parse_storage_url("s3://b").unwrap(), StorageLocation::S3 { bucket: "b".into(), prefix: String::new() });
    assert!(parse_storage_url("gs://b").is_err());
    assert!(parse_storage_url("file://relative").is_err());
}

#[test]
fn tls_needs_one_target() {
    let e = load_text("[[tls]]\nname = \"x\"\n", &BTreeMap::new()).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("tls.0.name"));
    assert_eq!(e.line, Some(2));
}

#[test]
fn explicit_path_must_exist_default_may_not() {
    let env = BTreeMap::new();
    let e = load(Some(std::path::Path::new("/nonexistent/ops.toml")), &env).unwrap_err();
    assert_eq!(e.file, "/nonexistent/ops.toml");
    assert!(e.message.contains("cannot read"), "{e}");
    let env = BTreeMap::from([("OPS_CONFIG".to_owned(), "/nonexistent/x.toml".to_owned())]);
    assert!(load(None, &env).is_err());
}

#[test]
fn loads_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ops.toml");
    std::fs::write(&path, "[project]\nname = \"x\"\n").unwrap();
    let loaded = load(Some(&path), &BTreeMap::new()).unwrap();
    assert_eq!(loaded.path.as_deref(), Some(path.as_path()));
    assert_eq!(loaded.config.project.name, "x");
}

const CHECKS: &str = r#"
[probes]
timeout-secs = 5

[probes.http]
ttfb-warn-ms = 300

[probes.container]
critical = ["api", "nginx"]

[[http]]
name = "api"
url = "http://localhost:4000/health"
critical = true
expect-status = [200, 204]
expect-json = { pointer = "/status", equals = "ok" }
depends-on = ["postgres:main"]

[[tcp]]
name = "db"
address = "localhost:5432"

[[dns]]
name = "example.com"
expect = ["93.184.216.34"]

[alertmanager]
url = "http://localhost:9093"

[[status-pages]]
name = "stellar"
url = "https://status.stellar.org"
affects = ["indexer"]

[[tls-renew]]
container = "certbot"
command = ["certbot", "renew", "--quiet"]

[triage.severity]
cache-down = "P2"

[triage.escalation]
open-minutes = { P2 = 90, P3 = 480 }
"#;

#[test]
fn checks_and_thresholds_load_with_runbook_defaults() {
    let cfg = load_text(CHECKS, &BTreeMap::new()).unwrap();
    assert_eq!(cfg.probes.timeout_secs, 5);
    assert_eq!((cfg.probes.http.ttfb_warn_ms, cfg.probes.http.ttfb_critical_ms), (300, 800));
    assert_eq!(cfg.probes.host.disk_critical_percent, 85.0);
    assert_eq!(cfg.probes.redis.hit_rate_critical_percent, 60.0);
    let api = &cfg.http[0];
    assert_eq!(api.expect_status, [200, 204]);
    assert_eq!(api.expect_json.as_ref().unwrap().equals, Some(serde_json::json!("ok")));
    assert_eq!(cfg.triage.severity[&crate::Runbook::CacheDown], crate::Severity::P2);
    assert_eq!(cfg.triage.escalation.open_minutes[&crate::Severity::P3], 480);
    assert_eq!(cfg.triage.escalation.reports, 10);
    assert_eq!(cfg.status_pages[0].affects, ["indexer"]);
    assert_eq!(cfg.tls_renew[0].command, ["certbot", "renew", "--quiet"]);
}

#[test]
fn unknown_runbook_and_inverted_thresholds_are_located() {
    let text = CHECKS.replace("cache-down = \"P2\"", "cache-dwn = \"P2\"");
    let e = load_text(&text, &BTreeMap::new()).unwrap_err();
    let line = text.lines().position(|l| l.contains("cache-dwn")).unwrap() + 1;
    assert_eq!(e.line, Some(line), "{e}");
    assert!(e.to_string().contains("cache-dwn"), "{e}");

    let text = CHECKS.replace("ttfb-warn-ms = 300", "ttfb-warn-ms = 900");
    let e = load_text(&text, &BTreeMap::new()).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("probes.http.ttfb-critical-ms"), "{e}");
    assert!(e.message.contains("ttfb-warn-ms"), "{e}");

    let text = CHECKS.replace("address = \"localhost:5432\"", "address = \"localhost\"");
    let e = load_text(&text, &BTreeMap::new()).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("tcp.0.address"), "{e}");
    let line = text.lines().position(|l| l.contains("address = \"localhost\"")).unwrap() + 1;
    assert_eq!(e.line, Some(line), "{e}");

    let text = CHECKS.replace("[probes]\n", "[probes.logs]\npattern = \"error|(panic\"\n[probes]\n");
    let e = load_text(&text, &BTreeMap::new()).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("probes.logs.pattern"), "{e}");
}

#[test]
fn errors_never_quote_a_value() {
    // A string where a list is expected: toml says `invalid type: string "…"`.
    let e = load_text("[server]\nadmin-keys = \"hunter2-admin-key\"\n", &env(&[])).unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(e.to_string().contains("invalid type: string, expected"), "{e}");
    assert_eq!(e.key.as_deref(), Some("server.admin-keys"));
    let e = load_text("[probes]\ntimeout-secs = \"hunter2\"\n", &env(&[])).unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    // An unclosed `${` inside a secret.
    let e = load_text("[databases.main]\nurl = \"postgres://u:hunter2${x@h/db\"\n", &env(&[])).unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(e.to_string().contains("unclosed"), "{e}");
    let e = load_text("[databases.main]\nurl = \"postgres://u:pa${hunter2!}@h/db\"\n", &env(&[])).unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn errors_never_quote_a_value_from_the_environment() {
    // Found by the config fuzz target: a secret interpolated into a url's scheme or a check's
    // name reached the error through the part of the value the message quoted.
    let pw = "fuzz-secret-4c1d";
    let e = env(&[("PW", pw), ("DATABASE_URL", "fuzzsecret2://h/db")]);
    let cases = [
        "[storage]\nurl = \"${PW}://bucket\"\n",
        "[alertmanager]\nurl = \"${PW}:x\"\n",
        "[[tcp]]\nname = \"${PW}\"\naddress = \"a:1\"\n[[tcp]]\nname = \"${PW:-x}\"\naddress = \"a:1\"\n",
        "[[http]]\nname = \"a\"\nurl = \"${PW}:x\"\n",
    ];
    for text in cases {
        let err = load_text(text, &e).unwrap_err().to_string();
        assert!(!err.contains(pw) && !err.contains("fuzz-secret"), "{text}: {err}");
    }
    // Not even escaped, as `{:?}` would quote it.
    let quoted = env(&[("PW", "ab\"cd-secret-99")]);
    let err = load_text(cases[2], &quoted).unwrap_err().to_string();
    assert!(!err.contains("cd-secret-99"), "{err}");
    assert!(err.contains("[[tcp]] entry 0"), "{err}");
    // The overlay's variables too.
    let err = load_text("", &e).unwrap_err().to_string();
    assert!(!err.contains("fuzzsecret2"), "{err}");
    assert!(err.contains("databases.main.url"), "{err}");
}

#[test]
fn secrets_interpolated_anywhere_in_a_secret_value_are_never_shown() {
    let pw = "fuzz-secret-4c1d";
    let e = env(&[("PW", pw)]);
    let text = "[databases.main]\nurl = \" postgres://u2${PW}@h/dbx\"\n[[http]]\nname = \"api\"\nurl = \"https://${PW}@api.example.com/health\"\n";
    let cfg = load_text(text, &e).unwrap();
    let shown = cfg.shown_secrets();
    assert!(shown.len() >= 2, "{shown:?}");
    assert!(shown.iter().all(|s| !s.contains(pw)), "{shown:?}");
    assert!(!serde_json::to_string(&cfg).unwrap().contains(pw));
}

const SCHEDULE: &str = r#"
[databases.main]
url = "postgres://app@localhost/app"

[[schedule]]
name = "backup-main"
job = "backup"
database = "main"
cron = "0 2 * * *"

[[schedule]]
name = "perf-weekly"
job = "perf"
cron = "0 3 * * SUN"
timezone = "Europe/Berlin"
jitter-secs = 300
"#;

#[test]
fn schedule_entries_parse_and_bad_ones_name_their_line_and_key() {
    let cfg = load_text(SCHEDULE, &BTreeMap::new()).unwrap();
    assert_eq!(cfg.schedule.len(), 2);
    assert_eq!(cfg.schedule[0].job, JobKind::Backup);
    assert_eq!(cfg.schedule[0].timezone, "UTC");
    assert_eq!(cfg.schedule[0].catch_up, CatchUpPolicy::RunOnce);
    assert_eq!(cfg.schedule[0].overlap, OverlapPolicy::Skip);
    assert_eq!(cfg.schedule[1].timeout(), 3600);
    for (from, to, key) in [
        ("cron = \"0 3 * * SUN\"", "cron = \"0 3 * SUN\"", "schedule.1.cron"),
        ("cron = \"0 2 * * *\"", "cron = \"0 25 * * *\"", "schedule.0.cron"),
        ("timezone = \"Europe/Berlin\"", "timezone = \"Europe/Bærlin\"", "schedule.1.timezone"),
        ("name = \"perf-weekly\"", "name = \"backup-main\"", "schedule.1.name"),
        ("name = \"perf-weekly\"", "name = \"Perf Weekly\"", "schedule.1.name"),
        ("database = \"main\"", "database = \"other\"", "schedule.0.database"),
        ("jitter-secs = 300", "jitter-secs = 700000", "schedule.1.jitter-secs"),
    ] {
        let text = SCHEDULE.replace(from, to);
        let e = load_text(&text, &BTreeMap::new()).unwrap_err();
        let line = text.lines().collect::<Vec<_>>().iter().rposition(|l| l.contains(to)).unwrap() + 1;
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert_eq!(e.line, Some(line), "{e}");
        assert!(e.to_string().starts_with(&format!("ops.toml:{line}:")), "{e}");
    }
    // An unknown job names itself, with the jobs there are.
    let text = SCHEDULE.replace("job = \"perf\"", "job = \"perv\"");
    let e = load_text(&text, &BTreeMap::new()).unwrap_err();
    assert!(e.to_string().contains("key-rotation-reminder"), "{e}");
    assert_eq!(e.line, Some(text.lines().position(|l| l.contains("perv")).unwrap() + 1), "{e}");
    // A jitter as long as the time between two runs would reorder them.
    let text = SCHEDULE.replace("cron = \"0 3 * * SUN\"", "cron = \"*/5 * * * *\"");
    let e = load_text(&text, &BTreeMap::new()).unwrap_err();
    assert!(e.to_string().contains("less than the time between two runs (300 s)"), "{e}");
}

#[test]
fn checks_done_by_hand_refuse_what_would_leak_or_write() {
    let no = |text: &str| load_text(text, &env(&[("TOKEN", "tok-9f8e7d6c")])).unwrap_err();
    let e = no("[[sql]]\nname = \"lag\"\nquery = \"UPDATE t SET x = 1\"\nwarn-above = 1\n");
    assert_eq!((e.key.as_deref(), e.line), (Some("sql.0.query"), Some(3)), "{e}");
    let e = no("[[sql]]\nname = \"lag\"\nquery = \"SELECT 1\"\nwarn-above = nan\n");
    assert!(e.message.contains("finite"), "{e}");
    let e = no("[[sql]]\nname = \"lag\"\nquery = \"SELECT 1\"\n");
    assert!(e.message.contains("needs a threshold"), "{e}");
    // A URL with a secret, or headers, never become a curl argument in a container.
    let e = no("[[http]]\nname = \"a\"\nurl = \"http://u:${TOKEN}@api/h\"\nfrom-container = \"web\"\n");
    assert_eq!(e.key.as_deref(), Some("http.0.from-container"), "{e}");
    assert!(!e.to_string().contains("tok-9f8e7d6c"), "{e}");
    let e = no("[[http]]\nname = \"a\"\nurl = \"http://api/h?token=${TOKEN}\"\nfrom-container = \"web\"\n");
    assert_eq!(e.key.as_deref(), Some("http.0.from-container"), "{e}");
    let e = no(
        "[[http]]\nname = \"a\"\nurl = \"http://api/h\"\nfrom-container = \"web\"\nheaders = { X-Key = \"${TOKEN}\" }\n",
    );
    assert_eq!(e.key.as_deref(), Some("http.0.headers"), "{e}");
    let e = no("[[http]]\nname = \"a\"\nurl = \"http://api/h\"\nheaders = { \"Bad Name\" = \"x\" }\n");
    assert_eq!(e.key.as_deref(), Some("http.0.headers"), "{e}");
    let e = no("[[http]]\nname = \"a\"\nurl = \"http://api/h\"\nheaders = { X-Key = \"caf\u{e9}\" }\n");
    assert!(e.message.contains("visible ASCII"), "{e}");
    let e = no("[[exec]]\nname = \"t\"\ncontainer = \"web\"\ncommand = [\"curl\", \"-H\", \"${TOKEN}\"]\n");
    assert_eq!(e.key.as_deref(), Some("exec.0.command"), "{e}");
    assert!(!e.to_string().contains("tok-9f8e7d6c"), "{e}");
    let e = no(
        "[[smtp]]\nname = \"m\"\naddress = \"mail:25\"\ntls = \"none\"\nusername = \"u\"\npassword = \"${TOKEN}\"\n",
    );
    assert_eq!(e.key.as_deref(), Some("smtp.0.tls"), "{e}");
    let e = no("[[log-patterns]]\nname = \"x\"\nfile = \"relative.log\"\npattern = \"a\"\nwarn-count = 1\n");
    assert!(e.message.contains("absolute"), "{e}");
    let e = no("[[systemd]]\nunit = \"-sshd\"\n");
    assert_eq!(e.key.as_deref(), Some("systemd.0.unit"), "{e}");
    // And a good set loads, the header and password kept secret.
    let ok = load_text(
        "[[http]]\nname = \"a\"\nurl = \"http://api/h\"\nheaders = { X-Key = \"${TOKEN}\" }\n\n\
         [[smtp]]\nname = \"m\"\naddress = \"mail:587\"\nusername = \"u\"\npassword = \"${TOKEN}\"\n\n\
         [[systemd]]\nunit = \"caddy.service\"\n",
        &env(&[("TOKEN", "tok-9f8e7d6c")]),
    )
    .unwrap();
    assert_eq!(ok.systemd[0].check_name(), "caddy");
    assert!(!serde_json::to_string(&ok).unwrap().contains("tok-9f8e7d6c"));
    assert!(!format!("{ok:?}").contains("tok-9f8e7d6c"));
}

#[test]
fn the_example_file_loads() {
    let text = include_str!("../../../../ops.example.toml");
    let mut env: BTreeMap<String, String> = text
        .match_indices("${")
        .filter_map(|(i, _)| {
            let name: String = text[i + 2..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let value = if name.contains("WEBHOOK") { "https://hooks.example.com/x" } else { "examplesecret" };
            (!name.is_empty()).then(|| (name, value.to_owned()))
        })
        .collect();
    // As its comment says: the S3 credentials from the environment.
    env.insert("AWS_ACCESS_KEY_ID".into(), "AKIDEXAMPLE".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "examplesecret".into());
    let cfg = load_text(text, &env).unwrap_or_else(|e| panic!("ops.example.toml: {e}"));
    assert_eq!((cfg.sql.len(), cfg.exec.len(), cfg.log_patterns.len()), (1, 1, 1));
    assert!(cfg.http.iter().any(|h| h.from_container.as_deref() == Some("api")));
}
