//! Rendering for people (aligned text) and machines (JSON).

use std::io::Write;

use ops_core::config::OpsConfig;
use ops_core::{Error, Result};
use serde::Serialize;

pub(crate) fn write_json(out: &mut dyn Write, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::internal(format!("rendering json: {e}")))?;
    writeln!(out, "{text}")?;
    Ok(())
}

pub(crate) fn error_json(e: &Error) -> String {
    serde_json::json!({ "error": { "kind": e.kind(), "message": e.message() } }).to_string()
}

fn row(out: &mut dyn Write, label: &str, value: &str) -> Result<()> {
    writeln!(out, "  {label:<12} {value}")?;
    Ok(())
}

/// A summary a person can scan, then the resolved file (secrets as ***).
pub(crate) fn config_summary(out: &mut dyn Write, file: Option<&str>, cfg: &OpsConfig) -> Result<()> {
    match file {
        Some(f) => writeln!(out, "config {f}: valid")?,
        None => writeln!(out, "config: no file found, using defaults and environment: valid")?,
    }
    let project = match (&cfg.project.name, &cfg.project.compose_project) {
        (n, Some(c)) if !n.is_empty() => format!("{n} (compose project {c})"),
        (n, None) if !n.is_empty() => n.clone(),
        (_, Some(c)) => format!("compose project {c}"),
        _ => "(unnamed; all containers)".to_owned(),
    };
    row(out, "project", &project)?;
    row(out, "docker", cfg.docker.host.as_deref().unwrap_or("unix:///var/run/docker.sock"))?;
    for (name, db) in &cfg.databases {
        let mut extra = Vec::new();
        if !db.key_tables.is_empty() {
            extra.push(format!("key tables {}", db.key_tables.join(", ")));
        }
        extra.push(format!("min tables {}", db.min_tables));
        if !db.dependents.is_empty() {
            extra.push(format!("dependents {}", db.dependents.join(" -> ")));
        }
        row(out, "database", &format!("{name}: {} ({})", db.url, extra.join("; ")))?;
    }
    for (name, c) in &cfg.caches {
        let queues = if c.queues.is_empty() { String::new() } else { format!(" (queues {})", c.queues.join(", ")) };
        row(out, "cache", &format!("{name}: {}{queues}", c.url))?;
    }
    match &cfg.storage {
        Some(s) => {
            let mut v = s.url.clone();
            if let Some(e) = &s.endpoint {
                v.push_str(&format!(" via {e}"));
            }
            if let Some(d) = &s.local_dir {
                v.push_str(&format!(" + local {}", d.display()));
            }
            v.push_str(&format!("; retention {} days", s.retention_days));
            row(out, "storage", &v)?;
        }
        None => row(out, "storage", "(none: backups disabled)")?,
    }
    let hooks: Vec<String> = cfg.notify.webhooks.iter().map(ToString::to_string).collect();
    row(out, "notify", &if hooks.is_empty() { "(no webhooks)".to_owned() } else { hooks.join(", ") })?;
    for h in &cfg.http {
        let mut extra = String::new();
        if !h.headers.is_empty() {
            let names: Vec<&str> = h.headers.keys().map(String::as_str).collect();
            extra.push_str(&format!(" with {}", names.join(", ")));
        }
        if let Some(c) = &h.from_container {
            extra.push_str(&format!(" from inside {c}"));
        }
        row(out, "http", &format!("{}: {}{extra}{}", h.name, h.url, if h.critical { " (critical)" } else { "" }))?;
    }
    for t in &cfg.tls {
        let target =
            t.endpoint.clone().or_else(|| t.file.as_ref().map(|f| f.display().to_string())).unwrap_or_default();
        row(out, "tls", &format!("{}: {target}{}", t.name, if t.critical { " (critical)" } else { "" }))?;
    }
    for t in &cfg.tcp {
        row(out, "tcp", &format!("{}: {}{}", t.name, t.address, if t.critical { " (critical)" } else { "" }))?;
    }
    for q in &cfg.sql {
        let db = q.database.as_deref().unwrap_or("the database");
        row(out, "sql", &format!("{} on {db}{}", q.name, if q.critical { " (critical)" } else { "" }))?;
    }
    for m in &cfg.smtp {
        let login = m.username.as_ref().map(|u| format!(", login as {u}")).unwrap_or_default();
        let tls = format!("{:?}", m.tls).to_lowercase();
        row(out, "smtp", &format!("{}: {} ({tls}{login})", m.name, m.address))?;
    }
    for p in &cfg.prometheus {
        row(out, "prometheus", &format!("{}: {}", p.name, p.url))?;
    }
    for c in &cfg.celery {
        let via = c
            .flower_url
            .as_ref()
            .map_or_else(|| format!("workers {}", c.workers.join(", ")), |u| format!("Flower {u}"));
        row(out, "celery", &format!("{}: {via}", c.name))?;
    }
    for u in &cfg.systemd {
        let place = u.container.as_ref().map_or_else(|| "this host".to_owned(), |c| format!("container {c}"));
        row(out, "systemd", &format!("{}: {} on {place}", u.check_name(), u.unit))?;
    }
    for e in &cfg.exec {
        row(out, "exec", &format!("{}: in {}: {}", e.name, e.container, e.command.join(" ")))?;
    }
    for l in &cfg.log_patterns {
        let source = l.file.as_ref().map_or_else(
            || format!("container {}", l.container.as_deref().unwrap_or_default()),
            |f| f.display().to_string(),
        );
        row(out, "log pattern", &format!("{}: {source}", l.name))?;
    }
    for l in &cfg.access_logs {
        let source = l.file.as_ref().map_or_else(
            || format!("container {}", l.container.as_deref().unwrap_or_default()),
            |f| f.display().to_string(),
        );
        row(out, "access log", &format!("{}: {source}", l.name))?;
    }
    for d in &cfg.dns {
        let expect = if d.expect.is_empty() { String::new() } else { format!(" -> {}", d.expect.join(", ")) };
        row(out, "dns", &format!("{}{expect}", d.name))?;
    }
    if let Some(am) = &cfg.alertmanager {
        row(out, "alertmanager", &am.url.to_string())?;
    }
    for p in &cfg.status_pages {
        let affects = if p.affects.is_empty() { String::new() } else { format!(" (affects {})", p.affects.join(", ")) };
        row(out, "status page", &format!("{}: {}{affects}", p.name, p.url))?;
    }
    for r in &cfg.tls_renew {
        row(out, "tls renew", &format!("in {}: {}", r.container, r.command.join(" ")))?;
    }
    row(
        out,
        "server",
        &format!(
            "listen {}; {} read key(s), {} admin key(s)",
            cfg.server.listen.as_deref().unwrap_or(ops_core::config::DEFAULT_LISTEN),
            cfg.server.api_keys.len(),
            cfg.server.admin_keys.len()
        ),
    )?;
    let toml = toml::to_string_pretty(cfg).map_err(|e| Error::internal(format!("rendering toml: {e}")))?;
    writeln!(out, "\n# resolved configuration (secrets shown as ***)\n{toml}")?;
    Ok(())
}

/// The status as a fixed-width mark: `ok`, `WARN`, `CRIT`, `UNKN`.
pub(crate) const fn mark(status: ops_core::Status) -> &'static str {
    status.mark()
}

/// The suffix of a value in a unit (`ms`, `%`; nothing for counts).
pub(crate) const fn unit(u: ops_probes::Unit) -> &'static str {
    u.suffix()
}
