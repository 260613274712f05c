//! One check by the name triage gives its report: `postgres:main`, `http:api`,
//! `container:db`, `logs:db`, `host`. What a runbook's `check`, `wait` and `verify` steps run,
//! with the thresholds of the configuration, so a runbook and triage judge alike.

use std::time::Duration;

use ops_core::config::LogThresholds;
use ops_core::{Context, Error, Result};

use crate::ProbeReport;

/// The kinds a check name may start with, as `kind:name` or (`host`, `engine`,
/// `alertmanager`, `backup`) alone.
pub const KINDS: [&str; 22] = [
    "postgres",
    "redis",
    "queue",
    "http",
    "tcp",
    "dns",
    "tls",
    "status-page",
    "alertmanager",
    "host",
    "engine",
    "container",
    "logs",
    "backup",
    "sql",
    "exec",
    "log-pattern",
    "access-log",
    "smtp",
    "prometheus",
    "celery",
    "systemd",
];

/// A parsed check name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckName<'a> {
    /// `postgres`, `http`, ….
    pub kind: &'a str,
    /// The configured name (or container/service); empty for the kinds that have none, and
    /// for a database or cache meaning "the only one, or `main`".
    pub name: &'a str,
}

impl<'a> CheckName<'a> {
    /// Splits `kind:name`.
    ///
    /// # Errors
    /// `InvalidInput` for an unknown kind, or a missing name where one is needed.
    pub fn parse(text: &'a str) -> Result<Self> {
        let (kind, name) = text.split_once(':').unwrap_or((text, ""));
        if !KINDS.contains(&kind) {
            return Err(Error::invalid_input(format!("unknown check kind {kind:?}: one of {}", KINDS.join(", "))));
        }
        let needs_name =
            !matches!(kind, "postgres" | "redis" | "queue" | "alertmanager" | "host" | "engine" | "backup");
        if needs_name && name.is_empty() {
            return Err(Error::invalid_input(format!("a {kind} check needs a name: {kind}:NAME")));
        }
        Ok(Self { kind, name })
    }
}

/// The newest entries of the audit log (its last MiB; none when there is no log yet).
pub(crate) async fn recent_audit(cfg: &ops_core::config::OpsConfig) -> Vec<ops_core::audit::AuditEntry> {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    const TAIL: u64 = 1 << 20;
    let Ok(mut file) = tokio::fs::File::open(&cfg.perf.audit_log).await else { return Vec::new() };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    if file.seek(std::io::SeekFrom::Start(len.saturating_sub(TAIL))).await.is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.take(TAIL).read_to_end(&mut bytes).await.is_err() {
        return Vec::new();
    }
    // A cut first line does not parse and is skipped.
    String::from_utf8_lossy(&bytes).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Options of [`probe_named`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedOptions {
    /// For `logs:`: the pattern and window instead of `probes.logs`.
    pub logs: Option<LogThresholds>,
}

/// Runs the check named `name` against the configured stack, within `timeout`. One report,
/// named as triage names it; `container:` and `logs:` of a Compose service with several
/// containers give one report per container.
///
/// # Errors
/// `InvalidInput` for an unknown kind or a name the configuration does not have;
/// `Unavailable` when a container check has no engine to ask. A check that fails is a report.
pub async fn probe_named(
    ctx: &Context,
    name: &str,
    timeout: Duration,
    opts: &NamedOptions,
) -> Result<Vec<ProbeReport>> {
    let check = CheckName::parse(name)?;
    let cfg = &ctx.config;
    let net = crate::NetOptions { timeout, ..crate::NetOptions::from_config(&cfg.probes) };
    let unknown = |table: &str| Error::invalid_input(format!("no {} named {:?} in {table}", check.kind, check.name));
    let one = |r: ProbeReport| Ok(vec![r]);
    let opt_name = (!check.name.is_empty()).then_some(check.name);
    match check.kind {
        "postgres" => {
            let (db_name, db) = ctx.database(opt_name)?;
            let url = cfg.databases.get(db_name).map(|d| d.url.clone()).unwrap_or_default();
            one(crate::postgres::probe(db_name, &url, db.as_ref(), &cfg.probes.postgres, timeout).await)
        }
        "redis" | "queue" => {
            let (cache_name, cache) = ctx.cache(opt_name)?;
            let c = cfg.caches.get(cache_name).cloned().unwrap_or_default();
            if check.kind == "redis" {
                one(crate::redis::probe(cache_name, &c.url, cache.as_ref(), &cfg.probes.redis, timeout).await)
            } else {
                one(crate::redis::queues(cache_name, &c.url, cache.as_ref(), &c.queues, &cfg.probes.queue, timeout)
                    .await)
            }
        }
        "http" => {
            let c = cfg.http.iter().find(|c| c.name == check.name).ok_or_else(|| unknown("[[http]]"))?;
            match &c.from_container {
                Some(inside) => one(crate::exec::http_probe(ctx, c, inside, timeout).await),
                None => one(crate::http::probe(c, &cfg.probes.http, &net).await),
            }
        }
        "tcp" => {
            let c = cfg.tcp.iter().find(|c| c.name == check.name).ok_or_else(|| unknown("[[tcp]]"))?;
            match &c.from_container {
                Some(inside) => one(crate::exec::tcp_probe(ctx, c, inside, timeout).await),
                None => one(crate::tcp::probe(c, &net).await),
            }
        }
        "sql" => {
            let c = cfg.sql.iter().find(|c| c.name == check.name).ok_or_else(|| unknown("[[sql]]"))?;
            let (db_name, db) = ctx.database(c.database.as_deref())?;
            one(crate::sql::probe(c, db_name, db.as_ref(), timeout).await)
        }
        "smtp" => {
            let c = cfg.smtp.iter().find(|c| c.name == check.name).ok_or_else(|| unknown("[[smtp]]"))?;
            one(crate::smtp::probe(c, &net).await)
        }
        "prometheus" => {
            let c = cfg.prometheus.iter().find(|c| c.name == check.name).ok_or_else(|| unknown("[[prometheus]]"))?;
            one(crate::prometheus::probe(c, &net).await)
        }
        "celery" => {
            let c = cfg.celery.iter().find(|c| c.name == check.name).ok_or_else(|| unknown("[[celery]]"))?;
            one(crate::celery::probe(ctx, c, &cfg.probes.queue, &net, timeout).await)
        }
        "systemd" => {
            let c = cfg.systemd.iter().find(|c| c.check_name() == check.name).ok_or_else(|| unknown("[[systemd]]"))?;
            one(crate::systemd::probe(ctx, c, timeout).await)
        }
        "exec" => {
            let c = cfg.exec.iter().find(|c| c.name == check.name).ok_or_else(|| unknown("[[exec]]"))?;
            one(crate::exec::probe(ctx, c, timeout).await)
        }
        "log-pattern" => {
            let c =
                cfg.log_patterns.iter().find(|c| c.name == check.name).ok_or_else(|| unknown("[[log-patterns]]"))?;
            one(crate::log_analysis::pattern_probe(ctx, c, timeout).await)
        }
        "access-log" => {
            let c = cfg.access_logs.iter().find(|c| c.name == check.name).ok_or_else(|| unknown("[[access-logs]]"))?;
            one(crate::log_analysis::access_probe(ctx, c, timeout).await)
        }
        "dns" => {
            let c = cfg.dns.iter().find(|c| c.name == check.name).ok_or_else(|| unknown("[[dns]]"))?;
            one(crate::dns::probe(c, &net).await)
        }
        "tls" => {
            let c = cfg.tls.iter().find(|c| c.name == check.name).ok_or_else(|| unknown("[[tls]]"))?;
            one(crate::tls::probe(c, &cfg.probes.tls, timeout).await)
        }
        "status-page" => {
            let c =
                cfg.status_pages.iter().find(|c| c.name == check.name).ok_or_else(|| unknown("[[status-pages]]"))?;
            one(crate::status_page::probe(c, &net).await)
        }
        "alertmanager" => {
            let c = cfg
                .alertmanager
                .as_ref()
                .filter(|c| c.has_url())
                .ok_or_else(|| Error::invalid_input("no [alertmanager] url configured"))?;
            one(crate::alertmanager::probe(c, &net).await)
        }
        "host" => {
            let root = match ctx.containers.as_deref() {
                Some(rt) => rt.ping().await.ok().and_then(|i| i.root_dir).map(std::path::PathBuf::from),
                None => None,
            };
            one(crate::host::probe(&cfg.probes.host, root.as_deref(), timeout).await)
        }
        "engine" => {
            let rt = ops_core::stack::runtime(ctx)?;
            one(crate::container::engine(rt, timeout).await.0)
        }
        "backup" => Ok(crate::backup::probe(ctx, &cfg.probes.backup, timeout).await),
        "container" | "logs" => {
            let rt = ops_core::stack::runtime(ctx)?;
            let project = cfg.project.compose_project.as_deref();
            let mut t = cfg.probes.container.clone();
            t.services.extend(cfg.databases.values().filter_map(|d| d.container.clone()));
            t.services.extend(cfg.caches.values().filter_map(|c| c.container.clone()));
            let all = tokio::time::timeout(timeout, crate::container::discover(rt, project, &t))
                .await
                .map_err(|_| Error::timeout("listing containers", timeout))??;
            let wanted: Vec<_> = all
                .into_iter()
                .filter(|c| c.name == check.name || c.compose_service.as_deref() == Some(check.name))
                .collect();
            if wanted.is_empty() {
                return Err(Error::invalid_input(format!(
                    "no container or Compose service named {:?}{}",
                    check.name,
                    project.map(|p| format!(" in project {p}")).unwrap_or_default()
                )));
            }
            if check.kind == "container" {
                Ok(crate::container::probe_containers(rt, &wanted, &t, timeout).await)
            } else {
                let logs = opts.logs.as_ref().unwrap_or(&cfg.probes.logs);
                let own = crate::logs::OwnActions::new(&recent_audit(cfg).await, cfg);
                Ok(crate::logs::probe_all(rt, &wanted, logs, &own, timeout).await)
            }
        }
        _ => Err(Error::invalid_input(format!("unknown check kind {:?}", check.kind))),
    }
}
