//! opsctl driven in-process: config check and keys generate, as a person and a script see them.

use std::collections::BTreeMap;

use ops_cli::{exit, run};

fn opsctl(args: &[&str], env: &[(&str, &str)]) -> (u8, String, String) {
    let env: BTreeMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut argv = vec!["opsctl"];
    argv.extend_from_slice(args);
    let code = run(argv, &env, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

const VALID: &str = r#"[project]
name = "stellar-escrow"
compose-project = "stellar-escrow"

[databases.main]
url = "postgres://indexer:${POSTGRES_PASSWORD}@localhost:5432/stellar_escrow"
key-tables = ["trades", "events"]

[caches.main]
url = "redis://:${REDIS_PASSWORD}@localhost:6379"
queues = ["celery"]

[storage]
url = "file:///var/backups/stellarescrow"
retention-days = 14

[notify]
webhooks = ["${BACKUP_ALERT_WEBHOOK}"]
"#;

const ENV: &[(&str, &str)] = &[
    ("POSTGRES_PASSWORD", "pg-pass-123"),
    ("REDIS_PASSWORD", "redis-pass-456"),
    ("BACKUP_ALERT_WEBHOOK", "https://hooks.slack.com/services/T/B/tok789"),
    ("API_KEYS", "read-key-abc-0123456789"),
];

fn write(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ops.toml");
    std::fs::write(&path, text).unwrap();
    let p = path.display().to_string();
    (dir, p)
}

#[test]
fn cli_config_check_prints_the_resolved_config_redacted() {
    let (_d, path) = write(VALID);
    let (code, out, err) = opsctl(&["config", "check", "--config", &path], ENV);
    assert_eq!(code, exit::OK, "{err}");
    assert!(out.starts_with(&format!("config {path}: valid")), "{out}");
    assert!(out.contains("postgres://indexer:***@localhost:5432/stellar_escrow"), "{out}");
    assert!(out.contains("https://hooks.slack.com/***"), "{out}");
    for secret in ["pg-pass-123", "redis-pass-456", "tok789", "read-key-abc"] {
        assert!(!out.contains(secret) && !err.contains(secret), "{secret} leaked:\n{out}{err}");
    }
}

#[test]
fn cli_config_check_json_with_global_flags_anywhere() {
    let (_d, path) = write(VALID);
    for args in [
        vec!["--json", "--config", path.as_str(), "config", "check"],
        vec!["config", "check", "--json", "--config", path.as_str()],
    ] {
        let (code, out, _) = opsctl(&args, ENV);
        assert_eq!(code, exit::OK);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["valid"], true);
        assert_eq!(v["config"]["storage"]["retention-days"], 14);
        assert_eq!(v["config"]["server"]["api-keys"][0], "***");
        assert!(!out.contains("pg-pass-123"));
    }
}

#[test]
fn cli_config_check_names_file_line_and_key_of_a_typo() {
    let (_d, path) = write(&VALID.replace("retention-days", "retention-dayz"));
    let (code, out, err) = opsctl(&["config", "check", "--config", &path], ENV);
    assert_eq!(code, exit::INVALID_INPUT);
    assert!(out.is_empty());
    assert!(err.starts_with(&format!("error: {path}:15:1: key `storage.retention-dayz`: unknown key")), "{err}");
    assert!(err.contains("`retention-days`"), "suggests the valid keys: {err}");

    let (code, out, _) = opsctl(&["config", "check", "--config", &path, "--json"], ENV);
    assert_eq!(code, exit::INVALID_INPUT);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["error"]["line"], 15);
    assert_eq!(v["error"]["key"], "storage.retention-dayz");
}

#[test]
fn cli_config_check_names_an_unset_variable() {
    let (_d, path) = write(VALID);
    let (code, _, err) = opsctl(&["config", "check", "--config", &path], &[("POSTGRES_PASSWORD", "x")]);
    assert_eq!(code, exit::INVALID_INPUT);
    assert!(err.contains("REDIS_PASSWORD") && err.contains(":10:"), "{err}");
}

#[test]
fn cli_config_path_comes_from_ops_config() {
    let (_d, path) = write(VALID);
    let mut env = ENV.to_vec();
    env.push(("OPS_CONFIG", path.as_str()));
    let (code, out, _) = opsctl(&["config", "check"], &env);
    assert_eq!(code, exit::OK);
    assert!(out.contains(&path));
    let (code, _, err) = opsctl(&["config", "check"], &[("OPS_CONFIG", "/nonexistent/ops.toml")]);
    assert_eq!(code, exit::INVALID_INPUT);
    assert!(err.contains("/nonexistent/ops.toml") && err.contains("cannot read"), "{err}");
}

#[test]
fn cli_keys_generate_prints_fresh_32_byte_hex_keys() {
    let (code, a, _) = opsctl(&["keys", "generate"], &[]);
    let (_, b, _) = opsctl(&["keys", "generate"], &[]);
    assert_eq!(code, exit::OK);
    let a = a.trim();
    assert_eq!(a.len(), 64);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b.trim());
}

#[test]
fn cli_usage_errors_exit_2() {
    let (code, _, err) = opsctl(&["frobnicate"], &[]);
    assert_eq!(code, exit::USAGE);
    assert!(err.contains("frobnicate"), "{err}");
    let (code, out, _) = opsctl(&["--help"], &[]);
    assert_eq!(code, exit::OK);
    assert!(out.contains("Exit codes"), "{out}");
}
