//! `opsctl triage`, `opsctl tls …` and `opsctl probe …`: checks whose exit code follows the
//! monitoring-plugin convention (0 ok, 1 warning, 2 critical, 3 unknown), so they drop into
//! Nagios, Icinga, cron and CI as they are.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use ops_core::config::{OpsConfig, TlsCheckConfig, load};
use ops_core::{Context, Error, Result};
use ops_probes::TriageOptions;
use ops_tls::TargetReport;

use crate::checks_render;
use crate::render::write_json;
use crate::{Cli, Outcome, ProbeCommand, TlsCommand, TriageArgs, exit};

pub(crate) use ops_core::exit::{code_of, plugin};

/// The configuration, or the defaults when no file exists: checks work without one.
fn config(cli: &Cli, env: &BTreeMap<String, String>) -> Result<OpsConfig> {
    Ok(load(cli.config.as_deref(), env)?.config)
}

/// `opsctl triage [--watch SECONDS]`.
pub(crate) async fn triage(
    cli: &Cli,
    args: &TriageArgs,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let mut ctx = Context::from_config(config(cli, env)?)?;
    let opts = TriageOptions {
        concurrency: args.concurrency.and_then(|n| usize::try_from(n).ok()),
        timeout_secs: args.timeout,
        skip_logs: args.no_logs,
    };
    // A runbook file that does not load must not turn the monitoring check into "unknown":
    // triage goes on with the built-in runbooks and says why.
    let catalog = match ops_runbook::Catalog::load(ctx.config.runbooks.dir.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "warning: runbooks.dir: {e}; using the built-in runbooks");
            ops_runbook::Catalog::built_in()?
        }
    };
    // Recording (unless --no-record) includes the release ledger, which triage keeps in the
    // state store as it looks at the containers.
    if !args.no_record
        && ctx.config.incidents.record
        && let Err(e) = ctx.open_state().await
    {
        let _ = writeln!(std::io::stderr(), "warning: the state store is not usable, nothing is recorded: {e}");
    }
    let Some(every) = args.watch else {
        let report = ops_probes::triage(&ctx, &opts).await;
        let remedies = remedies(&catalog, &report);
        let recorded = if args.no_record { None } else { crate::incidents::record(&mut ctx, &report).await };
        if !cli.json {
            checks_render::triage(out, &report, args.verbose, &remedies)?;
            checks_render::recorded(out, recorded.as_ref())?;
        }
        if args.fix {
            let (code, runs) = fix(cli, args, env, ctx, &catalog, &remedies, out).await?;
            if cli.json {
                let mut triage = with_remedies(&report, &remedies);
                triage["recorded"] = serde_json::to_value(&recorded).unwrap_or_default();
                write_json(out, &serde_json::json!({ "triage": triage, "fixes": runs }))?;
            }
            return Ok(Outcome { code });
        }
        if cli.json {
            let mut triage = with_remedies(&report, &remedies);
            triage["recorded"] = serde_json::to_value(&recorded).unwrap_or_default();
            write_json(out, &triage)?;
        }
        return Ok(Outcome { code: ops_core::exit::code_of_severity(report.severity) });
    };
    // Watch: one run every N seconds until Ctrl-C; the exit code is the last run's.
    let interval = Duration::from_secs(every.max(1));
    let clear = !cli.json && std::io::stdout().is_terminal();
    let mut stop = Box::pin(tokio::signal::ctrl_c());
    loop {
        let report = ops_probes::triage(&ctx, &opts).await;
        let code = ops_core::exit::code_of_severity(report.severity);
        let remedies = remedies(&catalog, &report);
        let recorded = if args.no_record { None } else { crate::incidents::record(&mut ctx, &report).await };
        if cli.json {
            // One JSON document per line, so `--watch --json | jq` streams.
            let mut triage = with_remedies(&report, &remedies);
            triage["recorded"] = serde_json::to_value(&recorded).unwrap_or_default();
            let line = serde_json::to_string(&triage)
                .map_err(|e| ops_core::Error::internal(format!("rendering json: {e}")))?;
            writeln!(out, "{line}")?;
        } else {
            if clear {
                write!(out, "\x1b[2J\x1b[H")?;
            }
            checks_render::triage(out, &report, args.verbose, &remedies)?;
            checks_render::recorded(out, recorded.as_ref())?;
            writeln!(out, "\n(every {} s; Ctrl-C to stop)", interval.as_secs())?;
        }
        out.flush()?;
        tokio::select! {
            _ = &mut stop => return Ok(Outcome { code }),
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// The runbook of each incident, and how to run it.
fn remedies(
    catalog: &ops_runbook::Catalog,
    report: &ops_probes::TriageReport,
) -> Vec<Option<ops_runbook::catalog::Remedy>> {
    report
        .incidents
        .iter()
        .map(|i| {
            let related: Vec<&str> = i.consequences.iter().chain(&i.also).map(|e| e.check.as_str()).collect();
            catalog.remedy(i.runbook.as_str(), &i.check, &related, Some(i.severity))
        })
        .collect()
}

/// The triage report as JSON, each incident with its `remedy` (the runbook and its command).
fn with_remedies(
    report: &ops_probes::TriageReport,
    remedies: &[Option<ops_runbook::catalog::Remedy>],
) -> serde_json::Value {
    let mut v = serde_json::to_value(report).unwrap_or(serde_json::Value::Null);
    if let Some(incidents) = v.get_mut("incidents").and_then(serde_json::Value::as_array_mut) {
        for (i, r) in incidents.iter_mut().zip(remedies) {
            if let Some(r) = r {
                i["remedy"] = serde_json::to_value(r).unwrap_or(serde_json::Value::Null);
            }
        }
    }
    v
}

/// `opsctl triage --fix [--apply [--yes]]`: each incident's runbook planned, or run (those
/// marked `auto`, and with `--yes` the others).
async fn fix(
    cli: &Cli,
    args: &TriageArgs,
    env: &BTreeMap<String, String>,
    mut ctx: Context,
    catalog: &ops_runbook::Catalog,
    remedies: &[Option<ops_runbook::catalog::Remedy>],
    out: &mut dyn Write,
) -> Result<(u8, Vec<ops_runbook::Run>)> {
    if args.apply {
        ctx.open_state().await?;
    } else if ctx.open_state().await.is_err() {
        ctx.state = None;
    }
    let actor = crate::actor(env);
    // An incident no runbook handles is not fixed.
    let mut all_ok = remedies.iter().all(Option::is_some);
    let mut done: Vec<String> = Vec::new();
    let mut runs = Vec::new();
    for rem in remedies.iter().flatten() {
        // One run per runbook and parameters: two incidents of one cause need one fix.
        let key = rem.command.clone();
        if done.contains(&key) {
            continue;
        }
        done.push(key);
        if !cli.json {
            writeln!(out, "\n== {}", rem.command)?;
        }
        if !rem.missing.is_empty() {
            all_ok = false;
            if !cli.json {
                writeln!(
                    out,
                    "not planned: give {}",
                    rem.missing.iter().map(|m| format!("--param {m}=…")).collect::<Vec<_>>().join(" ")
                )?;
            }
            continue;
        }
        let rb = catalog.get(&rem.runbook)?;
        let opts = ops_runbook::RunOptions {
            params: rem.params.clone(),
            incident: Some(rem.incident.clone()),
            yes: args.yes,
            actor: actor.clone(),
            run_id: None,
        };
        let act = args.apply && (rem.auto || args.yes);
        let run = if act {
            let approver: Box<dyn ops_runbook::Approver> = if args.yes {
                Box::new(ops_runbook::Preapproved(format!("{actor} (--yes)")))
            } else {
                Box::new(ops_runbook::Unattended)
            };
            ops_runbook::run(&ctx, rb, &opts, approver.as_ref(), &ops_runbook::Quiet).await?
        } else {
            ops_runbook::plan(&ctx, rb, &opts).await?
        };
        all_ok &= run.ok();
        if cli.json {
            runs.push(run);
        } else {
            crate::runbook_render::run(out, &run)?;
            if args.apply && !act {
                writeln!(out, "(not run: {} is not marked auto; add --yes to run it)", rem.runbook)?;
            }
        }
    }
    Ok((if all_ok { exit::OK } else { exit::FINDINGS }, runs))
}

/// `opsctl tls check|renew`.
pub(crate) async fn tls(
    cli: &Cli,
    cmd: &TlsCommand,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let cfg = config(cli, env)?;
    match cmd {
        TlsCommand::Check { targets, server_name, ca_file, timeout } => {
            let mut thresholds = cfg.probes.tls.clone();
            if ca_file.is_some() {
                thresholds.ca_file.clone_from(ca_file);
            }
            let limit = Duration::from_secs(timeout.unwrap_or(cfg.probes.timeout_secs).max(1));
            // Ad-hoc targets become `[[tls]]` entries: a path that exists is a file, the rest
            // endpoints.
            let adhoc: Vec<TlsCheckConfig> = targets
                .iter()
                .map(|t| {
                    let is_file = Path::new(t).exists();
                    TlsCheckConfig {
                        name: t.clone(),
                        endpoint: (!is_file).then(|| t.clone()),
                        file: is_file.then(|| t.into()),
                        server_name: server_name.clone(),
                        ..TlsCheckConfig::default()
                    }
                })
                .collect();
            let checks = if adhoc.is_empty() { &cfg.tls } else { &adhoc };
            if checks.is_empty() {
                return Err(ops_core::Error::invalid_input(
                    "no target given and no [[tls]] entry in the configuration: give host:port or a certificate path",
                ));
            }
            let reports =
                futures::future::join_all(checks.iter().map(|c| ops_probes::tls::check_target(c, &thresholds, limit)))
                    .await;
            let reports: Vec<TargetReport> =
                reports.into_iter().collect::<std::result::Result<_, _>>().map_err(tls_error)?;
            if cli.json {
                write_json(out, &reports)?;
            } else {
                checks_render::tls_reports(out, &reports)?;
            }
            Ok(Outcome { code: code_of(reports.iter().map(TargetReport::status)) })
        }
        TlsCommand::Renew { force, dry_run } => {
            let opts = ops_probes::tls::renew_options(&cfg, *force)?;
            let plan = ops_tls::renew_plan(&opts).await.map_err(tls_error)?;
            if *dry_run || !plan.run {
                if cli.json {
                    write_json(out, &plan)?;
                } else {
                    checks_render::renew_plan(out, &plan)?;
                }
                return Ok(Outcome { code: code_of(plan.before.iter().map(TargetReport::status)) });
            }
            // No record, no change: the audit log must be writable before a command runs.
            let audit = ops_core::audit::Audit::open(&cfg, Some(&crate::actor(env)))?;
            let ctx = Context::from_config(cfg)?;
            let rt = ctx
                .containers
                .as_deref()
                .ok_or_else(|| ops_core::Error::unavailable("no container runtime to run the renewal commands"))?;
            let report = ops_tls::apply_renew_plan(rt, plan, &opts, &audit).await.map_err(tls_error)?;
            if cli.json {
                write_json(out, &report)?;
            } else {
                checks_render::renew_report(out, &report)?;
            }
            Ok(Outcome { code: code_of([report.status]) })
        }
    }
}

/// Says, on stderr, that a password given in argv is visible to every local user.
fn warn_if_password(err: &mut dyn Write, target: &str, var: &str) -> Result<()> {
    if url::Url::parse(target).is_ok_and(|u| u.password().is_some()) {
        writeln!(
            err,
            "warning: a password on the command line is visible to every local user (ps, /proc) and stays in the \
             shell history; set {var} or name a configured entry instead"
        )?;
    }
    Ok(())
}

/// The probe's name and URL: a configured entry's, the URL given (warning about a password
/// in argv), or `var` from the environment.
fn target_url(
    target: Option<&str>,
    configured: Option<&ops_core::SecretUrl>,
    env: &BTreeMap<String, String>,
    var: &str,
    what: &str,
    err: &mut dyn Write,
) -> Result<(String, ops_core::SecretUrl)> {
    let url = match (target, configured) {
        (Some(t), Some(url)) => return Ok((t.to_owned(), url.clone())),
        (Some(t), None) => {
            warn_if_password(err, t, var)?;
            ops_core::SecretUrl::new(t)
        }
        (None, _) => env
            .get(var)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(ops_core::SecretUrl::new)
            .ok_or_else(|| Error::invalid_input(format!("give {what} or a URL, or set {var}")))?,
    };
    Ok((host_of(&url), url))
}

/// `opsctl probe …`.
pub(crate) async fn probe(
    cli: &Cli,
    cmd: &ProbeCommand,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome> {
    let cfg = config(cli, env)?;
    let limit = |t: &Option<u64>| Duration::from_secs(t.unwrap_or(cfg.probes.timeout_secs).max(1));
    let report = match cmd {
        ProbeCommand::Check { names, timeout } => {
            let limit = limit(timeout);
            return probe_checks(cli, cfg, names, limit, out).await;
        }
        ProbeCommand::Http { url, expect_status, expect_body, follow_redirects, ca_file, timeout } => {
            let mut net = ops_probes::NetOptions::from_config(&cfg.probes);
            net.timeout = limit(timeout);
            if ca_file.is_some() {
                net.ca_file.clone_from(ca_file);
            }
            let mut check = ops_probes::http::check_for_url(url);
            check.expect_status.clone_from(expect_status);
            check.expect_body.clone_from(expect_body);
            check.follow_redirects = *follow_redirects;
            ops_probes::http::probe(&check, &cfg.probes.http, &net).await
        }
        ProbeCommand::Postgres { target, timeout } => {
            // A config name or DATABASE_URL keeps the URL (and its password) out of argv, where
            // every local user can read it, and out of the shell history.
            let configured = target.as_deref().and_then(|t| cfg.databases.get(t)).map(|d| &d.url);
            let (name, url) =
                target_url(target.as_deref(), configured, env, "DATABASE_URL", "a [databases] name", err)?;
            let db = ops_core::adapters::postgres::PostgresDatabase::new(
                ops_core::adapters::postgres::PostgresOptions::new(url.clone()),
            )?;
            ops_probes::postgres::probe(&name, &url, &db, &cfg.probes.postgres, limit(timeout)).await
        }
        ProbeCommand::Redis { target, timeout } => {
            let configured = target.as_deref().and_then(|t| cfg.caches.get(t)).map(|c| &c.url);
            let (name, url) = target_url(target.as_deref(), configured, env, "REDIS_URL", "a [caches] name", err)?;
            let cache = ops_core::adapters::redis::RedisCache::new(url.clone(), limit(timeout))?;
            ops_probes::redis::probe(&name, &url, &cache, &cfg.probes.redis, limit(timeout)).await
        }
        ProbeCommand::Tcp { address, timeout } => {
            ops_probes::tcp::probe_address(address, &ops_probes::NetOptions::new(limit(timeout))).await
        }
        ProbeCommand::Dns { name, expect, timeout } => {
            let check =
                ops_core::config::DnsCheckConfig { name: name.clone(), expect: expect.clone(), critical: false };
            ops_probes::dns::probe(&check, &ops_probes::NetOptions::new(limit(timeout))).await
        }
        ProbeCommand::Tls { target, server_name, ca_file, timeout } => {
            let mut thresholds = cfg.probes.tls.clone();
            if ca_file.is_some() {
                thresholds.ca_file.clone_from(ca_file);
            }
            let is_file = Path::new(target).exists();
            let check = TlsCheckConfig {
                name: target.clone(),
                endpoint: (!is_file).then(|| target.clone()),
                file: is_file.then(|| target.into()),
                server_name: server_name.clone(),
                ..Default::default()
            };
            ops_probes::tls::probe(&check, &thresholds, limit(timeout)).await
        }
    };
    if cli.json {
        write_json(out, &report)?;
    } else {
        checks_render::probe(out, &report)?;
    }
    Ok(Outcome { code: code_of([report.status]) })
}

/// `opsctl probe check NAME…`: configured checks by name, one report each (a Compose
/// service's check, one per container).
async fn probe_checks(
    cli: &Cli,
    cfg: OpsConfig,
    names: &[String],
    limit: Duration,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let ctx = Context::from_config(cfg)?;
    let opts = ops_probes::named::NamedOptions::default();
    let runs = names
        .iter()
        .take(ops_core::limits::MAX_CONCURRENCY)
        .map(|n| ops_probes::named::probe_named(&ctx, n, limit, &opts));
    let mut reports = Vec::new();
    for r in futures::future::join_all(runs).await {
        reports.extend(r?);
    }
    if cli.json {
        match reports.as_slice() {
            [one] => write_json(out, one)?,
            many => write_json(out, &many)?,
        }
    } else {
        for r in &reports {
            checks_render::probe(out, r)?;
        }
    }
    Ok(Outcome { code: code_of(reports.iter().map(|r| r.status)) })
}

/// `host:port` of a URL, to name an ad-hoc probe without its credentials.
fn host_of(url: &ops_core::SecretUrl) -> String {
    url::Url::parse(url.expose())
        .ok()
        .and_then(|u| u.host_str().map(|h| u.port().map_or_else(|| h.to_owned(), |p| format!("{h}:{p}"))))
        .unwrap_or_else(|| "target".to_owned())
}

fn tls_error(e: ops_tls::Error) -> ops_core::Error {
    ops_core::Error::new(e.kind(), e.to_string())
}
