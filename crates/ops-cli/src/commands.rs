//! One function per command: load what it needs, call the library, render.

use std::collections::BTreeMap;
use std::io::Write;

use std::io::IsTerminal;

use ops_core::config::load;
use ops_core::{Context, Error, Result};

use crate::backup_render::{self, Bar};
use crate::render::{self, write_json};
use crate::{BackupCommand, Cli, DrTestArgs, Outcome, RestoreArgs, exit};

/// Writes `value` as JSON with `--json`, else as `human` draws it for a person.
fn emit<T: serde::Serialize>(
    cli: &Cli,
    out: &mut dyn Write,
    value: &T,
    human: impl FnOnce(&mut dyn Write, &T) -> Result<()>,
) -> Result<()> {
    if cli.json { write_json(out, value) } else { human(out, value) }
}

/// The context for commands that reach the stack.
fn context(cli: &Cli, env: &BTreeMap<String, String>) -> Result<Context> {
    let loaded = load(cli.config.as_deref(), env)?;
    Context::from_config(loaded.config)
}

/// `opsctl backup …`.
pub(crate) async fn backup(
    cli: &Cli,
    cmd: &BackupCommand,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let ctx = context(cli, env)?;
    match cmd {
        BackupCommand::Run(args) => {
            let opts = ops_backup::BackupOptions {
                database: args.database.clone(),
                compression: args.compression,
                level: args.level,
                threads: args.threads,
                prefix: args.prefix.clone(),
            };
            // A progress bar only for a person watching: not in --json, not when piped.
            let bar = Bar::for_cli(cli);
            // SIGTERM (cron, systemd) or Ctrl-C fails the backup cleanly: nothing partial is
            // kept, the failure is recorded and notified.
            let report = ops_backup::backup_until(&ctx, &opts, &bar, interrupted()).await;
            bar.finish();
            let report = report?;
            emit(cli, out, &report, backup_render::backup_report)?;
            Ok(Outcome { code: exit::OK })
        }
        BackupCommand::List { database } => {
            let mut entries = ops_backup::list(&ctx).await?;
            if let Some(name) = database {
                let name = ops_backup::target::database_name(&ctx, Some(name))?;
                entries = ops_backup::catalog::of_database(entries, &name);
            }
            emit(cli, out, &entries, |out, v| backup_render::list(out, v, chrono::Utc::now()))?;
            Ok(Outcome { code: exit::OK })
        }
        BackupCommand::Verify { backup, database } => {
            let report = ops_backup::verify(&ctx, database.as_deref(), backup).await?;
            emit(cli, out, &report, backup_render::verify)?;
            Ok(Outcome { code: if report.ok { exit::OK } else { exit::INTEGRITY } })
        }
        BackupCommand::Prune { dry_run } => {
            let opts =
                ops_backup::PruneOptions { dry_run: *dry_run, actor: Some(crate::actor(env)), ..Default::default() };
            let report = ops_backup::prune(&ctx, &opts, chrono::Utc::now()).await?;
            emit(cli, out, &report, backup_render::prune)?;
            let failed = report.destinations.iter().any(|d| !d.failed.is_empty() || d.sweep_error.is_some());
            Ok(Outcome { code: if failed { exit::UNAVAILABLE } else { exit::OK } })
        }
    }
}

/// `opsctl config check`.
pub(crate) fn config_check(cli: &Cli, env: &BTreeMap<String, String>, out: &mut dyn Write) -> Result<Outcome> {
    match load(cli.config.as_deref(), env) {
        Ok(loaded) => {
            // The message templates are files of their own: a broken one is named here, not
            // at the first incident.
            if let Err(e) = ops_incident::comms::Templates::load(loaded.config.incidents.templates_dir.as_deref()) {
                if cli.json {
                    write_json(out, &serde_json::json!({ "valid": false, "error": { "message": e.message() } }))?;
                    return Ok(Outcome { code: exit::INVALID_INPUT });
                }
                return Err(e);
            }
            let file = loaded.path.as_ref().map(|p| p.display().to_string());
            if cli.json {
                write_json(out, &serde_json::json!({ "valid": true, "file": file, "config": loaded.config }))?;
            } else {
                render::config_summary(out, file.as_deref(), &loaded.config)?;
            }
            Ok(Outcome { code: exit::OK })
        }
        Err(e) => {
            if cli.json {
                write_json(out, &serde_json::json!({ "valid": false, "error": e }))?;
                Ok(Outcome { code: exit::INVALID_INPUT })
            } else {
                Err(Error::from(e))
            }
        }
    }
}

/// `opsctl keys generate`.
pub(crate) fn keys_generate(cli: &Cli, out: &mut dyn Write) -> Result<Outcome> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no randomness from the OS: {e}")))?;
    let key = hex::encode(bytes);
    if cli.json {
        write_json(out, &serde_json::json!({ "key": key }))?;
    } else {
        writeln!(out, "{key}")?;
    }
    Ok(Outcome { code: exit::OK })
}

/// Resolves on Ctrl-C, SIGTERM (cron, systemd) or SIGHUP (the terminal or SSH session went
/// away), so a backup or drill in progress can fail cleanly instead of dying mid-write.
pub(crate) fn interrupted() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    #[cfg(unix)]
    let signals: Vec<tokio::signal::unix::Signal> =
        [tokio::signal::unix::SignalKind::terminate(), tokio::signal::unix::SignalKind::hangup()]
            .into_iter()
            .filter_map(|kind| tokio::signal::unix::signal(kind).ok())
            .collect();
    Box::pin(async move {
        #[cfg(unix)]
        let other = async move {
            let waits: Vec<_> = signals
                .into_iter()
                .map(|mut s| {
                    Box::pin(async move {
                        let _ = s.recv().await;
                    })
                })
                .collect();
            if waits.is_empty() {
                std::future::pending::<()>().await;
            }
            futures::future::select_all(waits).await;
        };
        #[cfg(not(unix))]
        let other = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            () = other => {},
        }
    })
}

/// `opsctl restore`.
pub(crate) async fn restore(
    cli: &Cli,
    args: &RestoreArgs,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome> {
    let ctx = context(cli, env)?;
    let opts = ops_backup::RestoreOptions {
        database: args.database.clone(),
        source: args.source.clone(),
        in_place: args.in_place,
        health_timeout_secs: args.health_timeout,
        allow_other_database: args.allow_other_database,
        // The person at the terminal may restore a file of this host.
        allow_host_path: true,
        actor: Some(crate::actor(env)),
    };
    let plan = ops_backup::restore::plan(&ctx, &opts).await?;
    if args.dry_run {
        emit(cli, out, &plan, |out, v| backup_render::restore_plan(out, v, true))?;
        return Ok(Outcome { code: exit::OK });
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::invalid_input(
                "refusing to restore without --yes: there is no terminal to confirm on (use --dry-run to see the plan)",
            ));
        }
        backup_render::restore_plan(err, &plan, false)?;
        write!(err, "Type the database name ({}) to proceed: ", plan.database)?;
        err.flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != plan.database {
            writeln!(err, "aborted: nothing was changed")?;
            return Ok(Outcome { code: exit::CONFLICT });
        }
    }
    let bar = Bar::for_cli(cli);
    let report = ops_backup::restore(&ctx, &plan, &opts, &bar).await;
    bar.finish();
    let report = report?;
    emit(cli, out, &report, backup_render::restore_report)?;
    Ok(Outcome { code: if report.healthy { exit::OK } else { exit::FINDINGS } })
}

/// `opsctl dr-test`.
pub(crate) async fn dr_test(
    cli: &Cli,
    args: &DrTestArgs,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let ctx = context(cli, env)?;
    let opts = ops_backup::DrillOptions {
        database: args.database.clone(),
        source: args.source.clone(),
        image: args.image.clone(),
        backend: args.backend,
        rto_target_secs: args.rto_target,
        rpo_target_secs: args.rpo_target,
        timeout_secs: args.timeout,
        allow_other_database: args.allow_other_database,
        allow_host_path: true,
    };
    // Ctrl-C or SIGTERM ends the drill early; the library still removes its container or
    // cluster.
    let cancel = interrupted();
    let bar = Bar::for_cli(cli);
    let report = ops_backup::dr_test(&ctx, &opts, &bar, cancel).await;
    bar.finish();
    let report = report?;
    emit(cli, out, &report, backup_render::drill)?;
    Ok(Outcome { code: if report.passed { exit::OK } else { exit::FINDINGS } })
}
