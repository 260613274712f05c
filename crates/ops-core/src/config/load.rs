//! [`resolve`]: file text + environment -> validated [`OpsConfig`], or an error that names
//! the file, the line and the key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::interpolate::{Interpolate, InterpolationError, expand};
use super::read_only;
use super::{AlertmanagerConfig, OpsConfig, StorageConfig, StorageLocation};
use crate::secret::{Secret, SecretUrl, WebhookUrl};

/// What [`resolve`] reads: the file (if any) and a snapshot of the environment.
#[derive(Debug, Clone, Copy)]
pub struct ConfigSource<'a> {
    /// How to name the file in errors (its path as the user gave it).
    pub file_name: &'a str,
    /// The file's text, or `None` when no file exists (defaults + environment only).
    pub text: Option<&'a str>,
    /// The environment variables to interpolate and overlay.
    pub env: &'a BTreeMap<String, String>,
}

/// A configuration error, located as precisely as possible. Never contains a value, only
/// names, so it cannot leak a secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigError {
    /// The file, or `environment` for an environment variable.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The dotted key (`storage.retention-days`) or variable name.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A resolved configuration and the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The file read, or `None` when none exists and defaults + environment were used.
    pub path: Option<PathBuf>,
    /// The configuration.
    pub config: OpsConfig,
}

/// Finds, reads and resolves the configuration file: `explicit` (a `--config` flag) if given,
/// else `OPS_CONFIG` from `env`, else `./ops.toml`. An explicit or `OPS_CONFIG` path must
/// exist; a missing `./ops.toml` means defaults + environment.
///
/// # Errors
/// [`ConfigError`] for an unreadable file or any error of [`resolve`].
pub fn load(explicit: Option<&Path>, env: &BTreeMap<String, String>) -> Result<LoadedConfig, ConfigError> {
    let (path, required) = match (explicit, env.get("OPS_CONFIG").filter(|p| !p.is_empty())) {
        (Some(p), _) => (p.to_path_buf(), true),
        (None, Some(p)) => (PathBuf::from(p), true),
        (None, None) => (PathBuf::from("ops.toml"), false),
    };
    let file_name = path.display().to_string();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => None,
        Err(e) => {
            return Err(ConfigError {
                file: file_name,
                line: None,
                column: None,
                key: None,
                message: format!("cannot read: {e}"),
            });
        }
    };
    let config = resolve(ConfigSource { file_name: &file_name, text: text.as_deref(), env })?;
    Ok(LoadedConfig { path: text.is_some().then_some(path), config })
}

/// Parses, interpolates, overlays the environment and validates.
///
/// Environment overlays, for the variables the runbooks already use: `DATABASE_URL` (the url
/// of the only database, or of `main`), `S3_BUCKET` (`storage.url`), `RETENTION_DAYS`
/// (`storage.retention-days`), `BACKUP_ALERT_WEBHOOK` (added to `notify.webhooks`),
/// `API_KEYS` and `ADMIN_KEYS` (comma-separated; replace `server.*-keys`), `DOCKER_HOST`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` and `AWS_ENDPOINT_URL` (fill
/// unset storage settings).
///
/// # Errors
/// [`ConfigError`] naming the file, line and key (or the environment variable) of the first
/// problem: a syntax error, an unknown key, a wrong type, an unset `${VAR}`, an invalid URL.
pub fn resolve(src: ConfigSource<'_>) -> Result<OpsConfig, ConfigError> {
    let raw = src.text.unwrap_or_default();
    let mut cfg: OpsConfig = match src.text {
        Some(text) => toml::from_str(text).map_err(|e| from_toml(src.file_name, text, &e))?,
        None => OpsConfig::default(),
    };
    cfg.each_string(&mut |s: &mut String| {
        if s.contains('$') {
            *s = expand(s, src.env)?;
        }
        Ok(())
    })
    .map_err(|e| from_interpolation(src.file_name, raw, e))?;
    // Messages name keys and entries, never values: a value may have come from the
    // environment, and may be a secret.
    overlay_env(&mut cfg, src.env)?;
    validate(&cfg, src.file_name, raw)?;
    Ok(cfg)
}

/// toml and serde quote the offending value ("invalid type: string \"hunter2\", expected a
/// sequence"); the value may be a secret, so the message keeps its kind and the expectation.
fn scrub_value(msg: &str) -> String {
    static INVALID: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"^(invalid (?:type|value|length)): ([a-z ]+?) (?:"(?:[^"\\]|\\.)*"|`[^`]*`|'[^']*'|[^,]*)(, expected)"#,
        )
        .expect("valid regex")
    });
    static VARIANT: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"^unknown variant `[^`]*`").expect("valid regex"));
    let msg = INVALID.replace(msg, "$1: $2$3");
    VARIANT.replace(&msg, "unknown variant").into_owned()
}

fn from_toml(file: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let (line, column) = e.span().map(|s| line_col(text, s.start)).unzip();
    let msg = scrub_value(e.message().trim());
    // toml says "unknown field `x`, expected one of …": name the key and keep the hint.
    let key = msg.strip_prefix("unknown field `").and_then(|r| r.split('`').next()).map(str::to_owned);
    let message = if key.is_some() {
        format!("unknown key ({})", msg.split_once(", ").map_or("", |(_, hint)| hint))
    } else {
        msg
    };
    // Prefer the dotted path of the line (`storage.retention-dayz`) over the bare field name.
    let key = line.and_then(|l| key_on_line(text, l)).or(key);
    ConfigError { file: file.to_owned(), line, column, key, message }
}

fn from_interpolation(file: &str, raw: &str, e: InterpolationError) -> ConfigError {
    let (needle, message) = match &e {
        InterpolationError::Unset(name) => (
            format!("${{{name}"),
            format!("environment variable {name} is not set (use ${{{name}:-default}} for a default)"),
        ),
        InterpolationError::Malformed(m) => ("${".to_owned(), m.clone()),
    };
    let line = raw.lines().position(|l| l.contains(&needle)).map(|i| i + 1);
    let key = line.and_then(|l| key_on_line(raw, l));
    ConfigError { file: file.to_owned(), line, column: None, key, message }
}

fn env_error(var: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: "environment".into(),
        line: None,
        column: None,
        key: Some(var.to_owned()),
        message: message.into(),
    }
}

fn split_keys(v: &str) -> Vec<Secret> {
    v.split(',').map(str::trim).filter(|k| !k.is_empty()).map(Secret::new).collect()
}

fn overlay_env(cfg: &mut OpsConfig, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    if let Some(url) = get("DATABASE_URL") {
        let name = match cfg.databases.len() {
            0 => "main".to_owned(),
            1 => cfg.databases.keys().next().cloned().unwrap_or_default(),
            _ if cfg.databases.contains_key("main") => "main".to_owned(),
            _ => return Err(env_error("DATABASE_URL", "is ambiguous with several [databases.*] and none named main")),
        };
        cfg.databases.entry(name).or_default().url = SecretUrl::new(url);
    }
    if let Some(bucket) = get("S3_BUCKET") {
        let url = if bucket.starts_with("s3://") { bucket.to_owned() } else { format!("s3://{bucket}") };
        cfg.storage.get_or_insert_with(StorageConfig::default).url = url;
    }
    if let Some(days) = get("RETENTION_DAYS") {
        let days: u32 = days.parse().map_err(|_| env_error("RETENTION_DAYS", "is not a whole number of days"))?;
        if let Some(storage) = cfg.storage.as_mut() {
            storage.retention_days = days;
        }
    }
    if let Some(hook) = get("BACKUP_ALERT_WEBHOOK") {
        let hook = WebhookUrl::new(hook);
        if !cfg.notify.webhooks.contains(&hook) {
            cfg.notify.webhooks.push(hook);
        }
    }
    if let Some(keys) = get("API_KEYS") {
        cfg.server.api_keys = split_keys(keys);
    }
    if let Some(keys) = get("ADMIN_KEYS") {
        cfg.server.admin_keys = split_keys(keys);
    }
    if let Some(keys) = get("ALERTMANAGER_WEBHOOK_KEYS") {
        cfg.alertmanager.get_or_insert_with(AlertmanagerConfig::default).webhook_keys = split_keys(keys);
    }
    if cfg.docker.host.is_none() {
        cfg.docker.host = get("DOCKER_HOST").map(str::to_owned);
    }
    if let Some(storage) = cfg.storage.as_mut() {
        if storage.access_key_id.is_none() {
            storage.access_key_id = get("AWS_ACCESS_KEY_ID").map(Secret::new);
        }
        if storage.secret_access_key.is_none() {
            storage.secret_access_key = get("AWS_SECRET_ACCESS_KEY").map(Secret::new);
        }
        if storage.region.is_none() {
            storage.region = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")).map(str::to_owned);
        }
        if storage.endpoint.is_none() {
            storage.endpoint = get("AWS_ENDPOINT_URL").map(str::to_owned);
        }
    }
    Ok(())
}

/// Validates values that parse but cannot work. `raw` locates the key.
/// Shortest API key accepted.
pub const MIN_API_KEY_LEN: usize = 16;

fn validate(cfg: &OpsConfig, file: &str, raw: &str) -> Result<(), ConfigError> {
    let err = |path: &[&str], message: String| {
        let line = locate(raw, path);
        ConfigError { file: file.to_owned(), line, column: None, key: Some(path.join(".")), message }
    };
    for (name, db) in &cfg.databases {
        check_url(db.url.expose(), &["postgres", "postgresql"], true)
            .map_err(|m| err(&["databases", name, "url"], m))?;
        if !(1..=crate::limits::MAX_RESTORE_JOBS).contains(&db.restore_jobs) {
            let max = crate::limits::MAX_RESTORE_JOBS;
            return Err(err(&["databases", name, "restore-jobs"], format!("must be between 1 and {max}")));
        }
    }
    for (name, cache) in &cfg.caches {
        check_url(cache.url.expose(), &["redis", "rediss"], true).map_err(|m| err(&["caches", name, "url"], m))?;
    }
    if let Some(storage) = &cfg.storage {
        let location = storage.location().map_err(|m| err(&["storage", "url"], m))?;
        if let Some(endpoint) = &storage.endpoint {
            check_url(endpoint, &["http", "https"], true).map_err(|m| err(&["storage", "endpoint"], m))?;
        }
        if matches!(location, StorageLocation::S3 { .. }) {
            let has = |s: &Option<Secret>| s.as_ref().is_some_and(|s| !s.is_empty());
            if !has(&storage.access_key_id) || !has(&storage.secret_access_key) {
                return Err(err(
                    &["storage", "url"],
                    "s3 storage needs credentials: set access-key-id and secret-access-key \
                     (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                        .into(),
                ));
            }
        }
    }
    // A short key can be guessed: the API's keys are at least this long (`opsctl keys
    // generate` makes 64 hex characters).
    for (name, keys) in [("api-keys", &cfg.server.api_keys), ("admin-keys", &cfg.server.admin_keys)] {
        if let Some(i) = keys.iter().position(|k| k.expose().chars().count() < MIN_API_KEY_LEN) {
            return Err(err(
                &["server", name],
                format!(
                    "entry {} is shorter than {MIN_API_KEY_LEN} characters (API_KEYS/ADMIN_KEYS too): make one with \
                     `opsctl keys generate`",
                    i + 1
                ),
            ));
        }
    }
    let state = cfg.state.url.expose();
    if state.starts_with("sqlite://") {
        if state.trim_start_matches("sqlite://").split('?').next().is_none_or(str::is_empty) {
            return Err(err(&["state", "url"], "sqlite:// needs a file path: sqlite:///var/lib/ops/state.db".into()));
        }
    } else {
        check_url(state, &["postgres", "postgresql"], true)
            .map_err(|m| err(&["state", "url"], format!("{m}: use sqlite://PATH or postgres://user@host/db")))?;
    }
    let rb = &cfg.runbooks;
    // A runbook secret is hidden by replacing its text everywhere it is shown: a short one
    // would be found in ordinary words (and guessed).
    for (name, secret) in &rb.secrets {
        if secret.expose().chars().count() < 8 {
            return Err(err(&["runbooks", "secrets", name], "must be at least 8 characters".into()));
        }
    }
    let ranges: [(&str, u64, u64, u64); 3] = [
        ("approval-timeout-secs", rb.approval_timeout_secs, 1, 7 * 24 * 3600),
        ("default-budget", u64::from(rb.default_budget), 1, 1000),
        ("default-budget-window-mins", rb.default_budget_window_mins, 1, 7 * 24 * 60),
    ];
    for (key, v, min, max) in ranges {
        if !(min..=max).contains(&v) {
            return Err(err(&["runbooks", key], format!("must be between {min} and {max}")));
        }
    }
    validate_incidents(cfg).map_err(|(path, m)| err(&path.iter().map(String::as_str).collect::<Vec<_>>(), m))?;
    super::schedule::validate(cfg).map_err(|(path, m)| err(&path.iter().map(String::as_str).collect::<Vec<_>>(), m))?;
    let srv = &cfg.server;
    if srv.tls_cert.is_some() != srv.tls_key.is_some() {
        return Err(err(&["server", "tls-cert"], "tls-cert and tls-key go together: set both or neither".into()));
    }
    let ranges: [(&str, Option<u64>, u64, u64); 4] = [
        ("max-connections", srv.max_connections.map(|v| v as u64), 1, 65_536),
        ("header-timeout-secs", srv.header_timeout_secs, 1, 300),
        ("request-timeout-secs", srv.request_timeout_secs, 1, 3600),
        ("rate-limit-per-second", srv.rate_limit_per_second.map(u64::from), 1, 100_000),
    ];
    for (key, value, min, max) in ranges {
        if let Some(v) = value
            && !(min..=max).contains(&v)
        {
            return Err(err(&["server", key], format!("must be between {min} and {max}")));
        }
    }
    for (i, hook) in cfg.notify.webhooks.iter().enumerate() {
        check_url(hook.expose(), &["http", "https"], true)
            .map_err(|m| err(&["notify", "webhooks"], format!("entry {}: {m}", i + 1)))?;
    }
    // Check names across kinds, and the entry that first used each.
    let mut seen: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for (i, check) in cfg.http.iter().enumerate() {
        let idx = i.to_string();
        if check.name.is_empty() {
            return Err(err(&["http", &idx, "name"], "every [[http]] check needs a name".into()));
        }
        if let Some(first) = seen.insert(format!("http:{}", check.name), format!("[[http]] entry {i}")) {
            return Err(err(&["http", &idx, "name"], format!("duplicate check name: {first} has the same one")));
        }
        check_url(check.url.expose(), &["http", "https"], true).map_err(|m| err(&["http", &idx, "url"], m))?;
    }
    for (i, check) in cfg.tls.iter().enumerate() {
        let idx = i.to_string();
        if check.name.is_empty() {
            return Err(err(&["tls", &idx, "name"], "every [[tls]] check needs a name".into()));
        }
        if let Some(first) = seen.insert(format!("tls:{}", check.name), format!("[[tls]] entry {i}")) {
            return Err(err(&["tls", &idx, "name"], format!("duplicate check name: {first} has the same one")));
        }
        match (&check.endpoint, &check.file) {
            (Some(ep), None) => {
                let ok = ep.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if !ok {
                    return Err(err(
                        &["tls", &idx, "endpoint"],
                        "must be host:port, for example example.com:443".into(),
                    ));
                }
            }
            (None, Some(_)) => {}
            _ => return Err(err(&["tls", &idx, "name"], "give exactly one of endpoint or file".into())),
        }
    }
    for (i, check) in cfg.http.iter().enumerate() {
        let idx = i.to_string();
        if let Some(expect) = &check.expect_json
            && !expect.pointer.starts_with('/')
        {
            return Err(err(
                &["http", &idx, "expect-json", "pointer"],
                "must be a JSON pointer starting with /, like /status".into(),
            ));
        }
        if check.expect_status.iter().any(|s| !(100..=599).contains(s)) {
            return Err(err(&["http", &idx, "expect-status"], "status codes are 100-599".into()));
        }
    }
    for (i, check) in cfg.tcp.iter().enumerate() {
        let idx = i.to_string();
        if check.name.is_empty() {
            return Err(err(&["tcp", &idx, "name"], "every [[tcp]] check needs a name".into()));
        }
        if let Some(first) = seen.insert(format!("tcp:{}", check.name), format!("[[tcp]] entry {i}")) {
            return Err(err(&["tcp", &idx, "name"], format!("duplicate check name: {first} has the same one")));
        }
        if !is_host_port(&check.address) {
            return Err(err(&["tcp", &idx, "address"], "must be host:port, for example db:5432".into()));
        }
        if check.from_container.as_deref().is_some_and(str::is_empty) {
            return Err(err(&["tcp", &idx, "from-container"], "names a container or Compose service".into()));
        }
    }
    for (i, check) in cfg.dns.iter().enumerate() {
        let idx = i.to_string();
        if check.name.is_empty() || check.name.contains([' ', '/', ':']) {
            return Err(err(&["dns", &idx, "name"], "must be a host name, like example.com".into()));
        }
        if let Some(bad) = check.expect.iter().position(|a| a.parse::<std::net::IpAddr>().is_err()) {
            return Err(err(&["dns", &idx, "expect"], format!("entry {} is not an IP address", bad + 1)));
        }
    }
    for (i, check) in cfg.http.iter().enumerate() {
        let idx = i.to_string();
        for name in check.headers.keys() {
            check_header(name).map_err(|m| err(&["http", &idx, "headers"], m))?;
        }
        // What an HTTP header value may hold: visible ASCII, spaces and tabs.
        let printable = |v: &str| v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
        if let Some(bad) = check.headers.iter().find(|(_, v)| !printable(v.expose())) {
            return Err(err(
                &["http", &idx, "headers"],
                format!("the value of {} may hold only visible ASCII, spaces and tabs", bad.0),
            ));
        }
        if check.from_container.as_deref().is_some_and(str::is_empty) {
            return Err(err(&["http", &idx, "from-container"], "names a container or Compose service".into()));
        }
        // In a container the URL is an argument of curl or wget: in its process list and in
        // the engine's record of the exec. A URL with a secret in it stays on this side.
        if check.from_container.is_some() && crate::secret::redact_url(check.url.expose()) != check.url.expose() {
            return Err(err(
                &["http", &idx, "from-container"],
                "cannot be used with a URL holding credentials or a token: they would show in the container's \
                 process list"
                    .into(),
            ));
        }
        if check.from_container.is_some() && !check.headers.is_empty() {
            return Err(err(
                &["http", &idx, "headers"],
                "cannot be sent from inside a container: they would show in its process list".into(),
            ));
        }
    }
    for (i, check) in cfg.sql.iter().enumerate() {
        let idx = i.to_string();
        named(&mut seen, "sql", &idx, i, &check.name, &err)?;
        read_only::check(&check.query).map_err(|m| err(&["sql", &idx, "query"], format!("the query {m}")))?;
        let thresholds = [check.warn_above, check.critical_above, check.warn_below, check.critical_below];
        if thresholds.iter().flatten().any(|v| !v.is_finite()) {
            return Err(err(&["sql", &idx, "name"], "thresholds must be finite numbers".into()));
        }
        if [check.warn_above, check.critical_above, check.warn_below, check.critical_below].iter().all(Option::is_none)
        {
            return Err(err(
                &["sql", &idx, "name"],
                "needs a threshold: warn-above / critical-above (a value or an age in seconds), or warn-below / critical-below".into(),
            ));
        }
        if let (Some(w), Some(c)) = (check.warn_above, check.critical_above)
            && w > c
        {
            return Err(err(&["sql", &idx, "warn-above"], "must not be over critical-above".into()));
        }
        if let (Some(w), Some(c)) = (check.warn_below, check.critical_below)
            && w < c
        {
            return Err(err(&["sql", &idx, "warn-below"], "must not be under critical-below".into()));
        }
        if let Some(db) = &check.database
            && !cfg.databases.contains_key(db)
        {
            return Err(err(&["sql", &idx, "database"], "names no [databases] entry".into()));
        }
        if check.timeout_secs.is_some_and(|t| t == 0 || t > crate::limits::MAX_PROBE_TIMEOUT_SECS) {
            return Err(err(
                &["sql", &idx, "timeout-secs"],
                format!("must be between 1 and {}", crate::limits::MAX_PROBE_TIMEOUT_SECS),
            ));
        }
    }
    for (i, check) in cfg.smtp.iter().enumerate() {
        let idx = i.to_string();
        named(&mut seen, "smtp", &idx, i, &check.name, &err)?;
        if !is_host_port(&check.address) {
            return Err(err(&["smtp", &idx, "address"], "must be host:port, for example smtp.example.com:587".into()));
        }
        if check.password.is_some() && check.username.is_none() {
            return Err(err(&["smtp", &idx, "username"], "a password needs a username".into()));
        }
        if check.username.is_some() && check.tls == super::SmtpTls::None {
            return Err(err(
                &["smtp", &idx, "tls"],
                "a login over plain text is refused: use starttls or implicit".into(),
            ));
        }
        if check.timeout_secs.is_some_and(|t| t == 0 || t > crate::limits::MAX_PROBE_TIMEOUT_SECS) {
            return Err(err(
                &["smtp", &idx, "timeout-secs"],
                format!("must be between 1 and {}", crate::limits::MAX_PROBE_TIMEOUT_SECS),
            ));
        }
    }
    for (i, check) in cfg.prometheus.iter().enumerate() {
        let idx = i.to_string();
        named(&mut seen, "prometheus", &idx, i, &check.name, &err)?;
        check_url(check.url.expose(), &["http", "https"], true).map_err(|m| err(&["prometheus", &idx, "url"], m))?;
    }
    for (i, check) in cfg.celery.iter().enumerate() {
        let idx = i.to_string();
        named(&mut seen, "celery", &idx, i, &check.name, &err)?;
        if let Some(url) = &check.flower_url {
            check_url(url.expose(), &["http", "https"], true).map_err(|m| err(&["celery", &idx, "flower-url"], m))?;
        } else if check.workers.is_empty() {
            return Err(err(&["celery", &idx, "workers"], "give flower-url, or the workers' containers".into()));
        }
        if let Some(c) = &check.cache
            && !cfg.caches.contains_key(c)
        {
            return Err(err(&["celery", &idx, "cache"], "names no [caches] entry".into()));
        }
    }
    for (i, check) in cfg.systemd.iter().enumerate() {
        let idx = i.to_string();
        let unit_ok = !check.unit.is_empty()
            && check.unit.len() <= 256
            && check.unit.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@:\\".contains(c))
            && !check.unit.starts_with('-');
        if !unit_ok {
            return Err(err(
                &["systemd", &idx, "unit"],
                "must be a unit name, like caddy.service or backup.timer".into(),
            ));
        }
        named(&mut seen, "systemd", &idx, i, &check.check_name(), &err)?;
    }
    for (i, check) in cfg.exec.iter().enumerate() {
        let idx = i.to_string();
        named(&mut seen, "exec", &idx, i, &check.name, &err)?;
        if check.container.trim().is_empty() {
            return Err(err(&["exec", &idx, "container"], "names a container or Compose service".into()));
        }
        if check.command.iter().chain(check.expect_output.iter()).any(|a| a.contains("${")) {
            return Err(err(
                &["exec", &idx, "command"],
                "may not use ${…}: a value from the environment would show in the container's process list and in \
                 the check's output"
                    .into(),
            ));
        }
        if check.command.first().is_none_or(|c| c.trim().is_empty()) {
            return Err(err(
                &["exec", &idx, "command"],
                "is a program and its arguments, like [\"nginx\", \"-t\"]".into(),
            ));
        }
        if check.timeout_secs.is_some_and(|t| t == 0 || t > crate::limits::MAX_PROBE_TIMEOUT_SECS) {
            return Err(err(
                &["exec", &idx, "timeout-secs"],
                format!("must be between 1 and {}", crate::limits::MAX_PROBE_TIMEOUT_SECS),
            ));
        }
    }
    for (i, check) in cfg.log_patterns.iter().enumerate() {
        let idx = i.to_string();
        named(&mut seen, "log-pattern", &idx, i, &check.name, &err)?;
        source(check.container.as_deref(), check.file.as_deref())
            .map_err(|m| err(&["log-patterns", &idx, "name"], m))?;
        if let Err(e) = regex::RegexBuilder::new(&check.pattern).size_limit(1 << 20).build() {
            let first = e.to_string().lines().last().unwrap_or_default().trim().to_owned();
            return Err(err(&["log-patterns", &idx, "pattern"], format!("is not a valid regular expression: {first}")));
        }
        if check.pattern.is_empty() {
            return Err(err(&["log-patterns", &idx, "pattern"], "is empty: every line would match".into()));
        }
        if check.warn_count == 0 && check.critical_count == 0
            || check.critical_count != 0 && check.warn_count > check.critical_count
        {
            return Err(err(
                &["log-patterns", &idx, "warn-count"],
                "needs warn-count <= critical-count, not both 0".into(),
            ));
        }
        if check.window_mins.is_some_and(|w| w == 0 || w > 7 * 24 * 60) {
            return Err(err(&["log-patterns", &idx, "window-mins"], "must be between 1 and 10080 (a week)".into()));
        }
        check_max_bytes(check.max_bytes).map_err(|m| err(&["log-patterns", &idx, "max-bytes"], m))?;
    }
    for (i, check) in cfg.access_logs.iter().enumerate() {
        let idx = i.to_string();
        named(&mut seen, "access-log", &idx, i, &check.name, &err)?;
        source(check.container.as_deref(), check.file.as_deref())
            .map_err(|m| err(&["access-logs", &idx, "name"], m))?;
        check_max_bytes(check.max_bytes).map_err(|m| err(&["access-logs", &idx, "max-bytes"], m))?;
        if check.lines.is_some_and(|l| l == 0 || l > 10_000_000) {
            return Err(err(&["access-logs", &idx, "lines"], "must be between 1 and 10000000".into()));
        }
        if check.top.is_some_and(|t| t == 0 || t > 1000) {
            return Err(err(&["access-logs", &idx, "top"], "must be between 1 and 1000".into()));
        }
        for (key, v) in
            [("warn-share-percent", check.warn_share_percent), ("critical-share-percent", check.critical_share_percent)]
        {
            if v.is_some_and(|v| !(v > 0.0 && v <= 100.0)) {
                return Err(err(&["access-logs", &idx, key], "must be over 0 and at most 100".into()));
            }
        }
    }
    for (key, names) in &cfg.probes.container.required_env {
        if let Some(bad) = names.iter().find(|n| n.is_empty() || n.contains('=')) {
            let _ = bad;
            return Err(err(
                &["probes", "container", "required-env"],
                format!("{key}: a variable name is empty or has an ="),
            ));
        }
    }
    if let Some(am) = &cfg.alertmanager {
        if am.has_url() {
            check_url(am.url.expose(), &["http", "https"], true).map_err(|m| err(&["alertmanager", "url"], m))?;
        } else if am.webhook_keys.is_empty() {
            return Err(err(
                &["alertmanager", "url"],
                "[alertmanager] needs a url, webhook-keys (ALERTMANAGER_WEBHOOK_KEYS), or both".into(),
            ));
        }
        if let Some(i) = am.webhook_keys.iter().position(|k| k.expose().chars().count() < MIN_API_KEY_LEN) {
            return Err(err(
                &["alertmanager", "webhook-keys"],
                format!(
                    "entry {} is shorter than {MIN_API_KEY_LEN} characters: make one with `opsctl keys generate`",
                    i + 1
                ),
            ));
        }
        for (alert, runbook) in &am.runbooks {
            if runbook.trim().is_empty() || alert.trim().is_empty() {
                return Err(err(&["alertmanager", "runbooks"], "maps an alert name to a runbook name".into()));
            }
        }
    }
    for (i, page) in cfg.status_pages.iter().enumerate() {
        let idx = i.to_string();
        if page.name.is_empty() {
            return Err(err(&["status-pages", &idx, "name"], "every [[status-pages]] entry needs a name".into()));
        }
        check_url(&page.url, &["http", "https"], true).map_err(|m| err(&["status-pages", &idx, "url"], m))?;
    }
    for (i, renew) in cfg.tls_renew.iter().enumerate() {
        let idx = i.to_string();
        if renew.container.is_empty() {
            return Err(err(&["tls-renew", &idx, "container"], "names the container to run the command in".into()));
        }
        if renew.command.is_empty() {
            return Err(err(&["tls-renew", &idx, "command"], "needs a program, like [\"certbot\", \"renew\"]".into()));
        }
    }
    validate_thresholds(cfg).map_err(|(path, m)| err(&path, m))?;
    if let Some(listen) = &cfg.server.listen {
        listen
            .parse::<SocketAddr>()
            .map_err(|_| err(&["server", "listen"], "must be an address with a port, like 127.0.0.1:9187".into()))?;
    }
    Ok(())
}

/// `[incidents]` and `[status]`: ranges, component names and their checks, the publish target.
fn validate_incidents(cfg: &OpsConfig) -> Result<(), (Vec<String>, String)> {
    let at = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let inc = &cfg.incidents;
    if inc.resolve_after_secs > 7 * 24 * 3600 {
        return Err((at(&["incidents", "resolve-after-secs"]), format!("must be at most {} (a week)", 7 * 24 * 3600)));
    }
    for (severity, mins) in &inc.update_every_mins {
        if !(1..=7 * 24 * 60).contains(mins) {
            return Err((
                at(&["incidents", "update-every-mins", &severity.to_string()]),
                format!("must be between 1 and {}", 7 * 24 * 60),
            ));
        }
    }
    let st = &cfg.status;
    if !(1..=90).contains(&st.history_days) {
        return Err((at(&["status", "history-days"]), "must be between 1 and 90".into()));
    }
    if !(1..=100_000).contains(&st.rate_limit_per_second) {
        return Err((at(&["status", "rate-limit-per-second"]), "must be between 1 and 100000".into()));
    }
    if let Some(url) = &st.public_url {
        check_url(url, &["http", "https"], true).map_err(|m| (at(&["status", "public-url"]), m))?;
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, c) in st.components.iter().enumerate() {
        let idx = i.to_string();
        if c.name.trim().is_empty() || c.name.chars().count() > 100 {
            return Err((at(&["status", "components", &idx, "name"]), "needs a name of 1 to 100 characters".into()));
        }
        if !names.insert(c.name.as_str()) {
            return Err((at(&["status", "components", &idx, "name"]), "duplicate component name".into()));
        }
        if c.checks.is_empty() {
            return Err((
                at(&["status", "components", &idx, "checks"]),
                "names at least one check, like [\"http:api\"] (the names `opsctl probe` shows)".into(),
            ));
        }
        if let Some(bad) =
            c.checks.iter().position(|k| !k.split_once(':').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty()))
        {
            return Err((
                at(&["status", "components", &idx, "checks"]),
                format!("entry {} is not a check name of the form kind:name", bad + 1),
            ));
        }
    }
    if let Some(publish) = &st.publish {
        let location = publish.location().map_err(|m| (at(&["status", "publish", "url"]), m))?;
        if let Some(endpoint) = &publish.endpoint {
            check_url(endpoint, &["http", "https"], true).map_err(|m| (at(&["status", "publish", "endpoint"]), m))?;
        }
        let has = |s: &Option<Secret>| s.as_ref().is_some_and(|s| !s.is_empty());
        if matches!(location, StorageLocation::S3 { .. })
            && (!has(&publish.access_key_id) || !has(&publish.secret_access_key))
        {
            return Err((
                at(&["status", "publish", "url"]),
                "s3 publishing needs access-key-id and secret-access-key".into(),
            ));
        }
    }
    Ok(())
}

fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
}

/// Warn thresholds must come before critical ones, in the direction the metric gets worse.
fn validate_thresholds(cfg: &OpsConfig) -> Result<(), (Vec<&'static str>, String)> {
    let p = &cfg.probes;
    let worse_up = |section: &'static str, warn: &'static str, crit: &'static str, w: f64, c: f64| {
        if w > c {
            Err((vec!["probes", section, crit], format!("must not be below {warn} ({w} > {c})")))
        } else {
            Ok(())
        }
    };
    if p.concurrency == 0 {
        return Err((vec!["probes", "concurrency"], "must be at least 1".into()));
    }
    if p.timeout_secs == 0 || p.timeout_secs > crate::limits::MAX_PROBE_TIMEOUT_SECS {
        return Err((
            vec!["probes", "timeout-secs"],
            format!("must be between 1 and {}", crate::limits::MAX_PROBE_TIMEOUT_SECS),
        ));
    }
    if cfg.perf.http.samples == 0 || cfg.perf.http.samples > crate::limits::MAX_HTTP_SAMPLES {
        return Err((
            vec!["perf", "http", "samples"],
            format!("must be between 1 and {}", crate::limits::MAX_HTTP_SAMPLES),
        ));
    }
    if p.concurrency > crate::limits::MAX_CONCURRENCY {
        return Err((vec!["probes", "concurrency"], format!("must be at most {}", crate::limits::MAX_CONCURRENCY)));
    }
    #[allow(clippy::cast_precision_loss)]
    {
        worse_up(
            "container",
            "memory-warn-percent",
            "memory-critical-percent",
            p.container.memory_warn_percent,
            p.container.memory_critical_percent,
        )?;
        worse_up(
            "http",
            "ttfb-warn-ms",
            "ttfb-critical-ms",
            p.http.ttfb_warn_ms as f64,
            p.http.ttfb_critical_ms as f64,
        )?;
        worse_up(
            "postgres",
            "connections-warn-percent",
            "connections-critical-percent",
            p.postgres.connections_warn_percent,
            p.postgres.connections_critical_percent,
        )?;
        worse_up(
            "redis",
            "memory-warn-percent",
            "memory-critical-percent",
            p.redis.memory_warn_percent,
            p.redis.memory_critical_percent,
        )?;
        worse_up("queue", "warn", "critical", p.queue.warn as f64, p.queue.critical as f64)?;
        worse_up(
            "host",
            "disk-warn-percent",
            "disk-critical-percent",
            p.host.disk_warn_percent,
            p.host.disk_critical_percent,
        )?;
        worse_up(
            "host",
            "memory-warn-percent",
            "memory-critical-percent",
            p.host.memory_warn_percent,
            p.host.memory_critical_percent,
        )?;
        worse_up(
            "host",
            "load-warn-per-core",
            "load-critical-per-core",
            p.host.load_warn_per_core,
            p.host.load_critical_per_core,
        )?;
        worse_up("logs", "warn-count", "critical-count", p.logs.warn_count as f64, p.logs.critical_count as f64)?;
    }
    if p.redis.hit_rate_critical_percent > p.redis.hit_rate_warn_percent {
        return Err((
            vec!["probes", "redis", "hit-rate-critical-percent"],
            "must not be above hit-rate-warn-percent (a lower hit rate is worse)".into(),
        ));
    }
    if p.tls.critical_days > p.tls.warn_days {
        return Err((vec!["probes", "tls", "critical-days"], "must not be above warn-days".into()));
    }
    if let Err(e) = regex::RegexBuilder::new(&p.logs.pattern).case_insensitive(true).build() {
        let first = e.to_string().lines().last().unwrap_or_default().trim().to_owned();
        return Err((vec!["probes", "logs", "pattern"], format!("is not a valid regular expression: {first}")));
    }
    Ok(())
}

/// A check's name: present, and unique among the checks of its kind (`kind:name` is what
/// triage and runbooks name).
fn named<E>(
    seen: &mut BTreeMap<String, String>,
    kind: &str,
    idx: &str,
    i: usize,
    name: &str,
    err: &impl Fn(&[&str], String) -> E,
) -> Result<(), E> {
    let table = match kind {
        "log-pattern" => "log-patterns",
        "access-log" => "access-logs",
        other => other,
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(err(
            &[table, idx, "name"],
            format!("every [[{table}]] entry needs a name of letters, digits, - _ ."),
        ));
    }
    if let Some(first) = seen.insert(format!("{kind}:{name}"), format!("[[{table}]] entry {i}")) {
        return Err(err(&[table, idx, "name"], format!("duplicate check name: {first} has the same one")));
    }
    Ok(())
}

/// Exactly one of a container and a file.
fn source(container: Option<&str>, file: Option<&std::path::Path>) -> Result<(), String> {
    match (container.filter(|c| !c.is_empty()), file) {
        (Some(_), None) => Ok(()),
        (None, Some(f)) if f.is_absolute() => Ok(()),
        (None, Some(_)) => Err("file must be an absolute path".into()),
        _ => Err("give exactly one of container or file".into()),
    }
}

fn check_max_bytes(v: Option<u64>) -> Result<(), String> {
    match v {
        Some(b) if !(4096..=crate::limits::MAX_LOG_READ_BYTES).contains(&b) => {
            Err(format!("must be between 4096 and {}", crate::limits::MAX_LOG_READ_BYTES))
        }
        _ => Ok(()),
    }
}

/// An HTTP header name a check may set: a token, and none the request itself owns.
fn check_header(name: &str) -> Result<(), String> {
    let token = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err("a header name is empty or not a token (letters, digits, -)".into());
    }
    let owned = ["host", "connection", "content-length", "transfer-encoding", "upgrade", "te", "trailer"];
    if owned.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("{name} is set by the request itself"));
    }
    Ok(())
}

fn check_url(raw: &str, schemes: &[&str], need_host: bool) -> Result<(), String> {
    // Messages name the expected shape, never the value (it may hold a password).
    let url = url::Url::parse(raw).map_err(|e| format!("is not a valid url ({e})"))?;
    if !schemes.contains(&url.scheme()) {
        return Err(format!("scheme must be one of {}", schemes.join(", ")));
    }
    if need_host && url.host_str().is_none_or(str::is_empty) {
        return Err("url has no host".into());
    }
    Ok(())
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.len(), |p| before.len() - p - 1) + 1;
    (line, col)
}

/// The dotted key assigned on 1-based `line`, from its table header and key.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let mut table: Vec<String> = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if let Some(h) = header(t) {
            table = h.0;
        }
        if i + 1 == line {
            let key = assigned_key(t)?;
            let mut path = table.clone();
            path.push(key);
            return Some(path.join("."));
        }
    }
    None
}

/// Finds the 1-based line of a key path such as `["databases", "main", "url"]` or
/// `["http", "1", "url"]` (array tables by index); falls back to its table's header.
fn locate(text: &str, path: &[&str]) -> Option<usize> {
    let (table_path, key) = path.split_at(path.len().saturating_sub(1));
    let mut counters: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut current: Vec<String> = Vec::new();
    let mut header_line = None;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if let Some((mut names, is_array)) = header(t) {
            if is_array {
                let n = counters.entry(names.clone()).or_insert(0);
                names.push(n.to_string());
                *n += 1;
            }
            current = names;
            if current == table_path {
                header_line = Some(i + 1);
            }
            continue;
        }
        if current == table_path && assigned_key(t).as_deref() == key.first().copied() {
            return Some(i + 1);
        }
    }
    header_line
}

fn header(t: &str) -> Option<(Vec<String>, bool)> {
    let t = t.split('#').next()?.trim();
    let (inner, is_array) = if let Some(r) = t.strip_prefix("[[") {
        (r.strip_suffix("]]")?, true)
    } else {
        (t.strip_prefix('[')?.strip_suffix(']')?, false)
    };
    Some((inner.split('.').map(|p| p.trim().trim_matches('"').to_owned()).collect(), is_array))
}

fn assigned_key(t: &str) -> Option<String> {
    if t.starts_with('#') || t.starts_with('[') {
        return None;
    }
    let (k, _) = t.split_once('=')?;
    let k = k.trim().trim_matches('"');
    (!k.is_empty()).then(|| k.to_owned())
}
