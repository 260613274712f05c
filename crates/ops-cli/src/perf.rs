//! `opsctl perf analyze` and the guarded actions: `opsctl pg terminate|kill-idle|cancel-slow|
//! vacuum`, `opsctl redis set-policy`, `opsctl restart`. Actions print their plan and change
//! nothing unless `--apply` is given.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use ops_act::Action;
use ops_core::config::load;
use ops_core::{Context, Result};
use ops_perf::PerfOptions;

use crate::checks::code_of;
use crate::render::write_json;
use crate::{
    Cli, DiskCommand, Outcome, PerfCommand, PgCommand, RedisCommand, RestartArgs, RollbackArgs, StackCommand, exit,
    perf_render,
};

/// `10m`, `90s`, `1h`, `2h30m`, or plain seconds.
pub(crate) fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    ops_core::limits::parse_duration(s, Duration::from_secs(ops_core::limits::MAX_AGE_SECS))
}

fn context(cli: &Cli, env: &BTreeMap<String, String>) -> Result<Context> {
    Context::from_config(load(cli.config.as_deref(), env)?.config)
}

/// `opsctl perf analyze`.
pub(crate) async fn perf(
    cli: &Cli,
    cmd: &PerfCommand,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let PerfCommand::Analyze { sections, samples } = cmd;
    let ctx = context(cli, env)?;
    let opts = PerfOptions { sections: sections.clone(), http_samples: *samples };
    let report = ops_perf::analyze(&ctx, &opts).await;
    if cli.json {
        write_json(out, &report)?;
    } else {
        perf_render::report(out, &report)?;
    }
    Ok(Outcome { code: code_of(report.sections.iter().map(|s| s.status)) })
}

/// Plans an action, and applies it with `--apply`.
pub(crate) async fn act(
    cli: &Cli,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
    action: Action,
    apply: bool,
) -> Result<Outcome> {
    let mut ctx = context(cli, env)?;
    match action {
        // A rollback reads the release ledger.
        Action::Rollback { .. } => ctx.open_state().await?,
        // A prune keeps the images it names (and every image when it cannot be read).
        Action::EnginePrune { .. } | Action::DiskClean { .. } => drop(ctx.open_state().await),
        _ => {}
    }
    let plan = ops_act::plan(&ctx, &action).await?;
    if !apply || plan.targets.is_empty() {
        if cli.json {
            write_json(out, &serde_json::json!({ "applied": false, "plan": plan }))?;
        } else {
            perf_render::plan(out, &plan, !plan.targets.is_empty())?;
        }
        return Ok(Outcome { code: exit::OK });
    }
    let report = ops_act::apply(&ctx, &plan, &crate::actor(env)).await?;
    if cli.json {
        write_json(out, &serde_json::json!({ "applied": true, "report": report }))?;
    } else {
        perf_render::applied(out, &report)?;
    }
    Ok(Outcome { code: if report.ok() { exit::OK } else { exit::FINDINGS } })
}

/// `opsctl pg …`.
pub(crate) async fn pg(
    cli: &Cli,
    cmd: &PgCommand,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let (action, apply) = match cmd {
        PgCommand::Terminate { pid, database, apply } => {
            (Action::Terminate { database: database.clone(), pid: *pid }, *apply)
        }
        PgCommand::KillIdle { older_than, database, apply } => {
            (Action::KillIdle { database: database.clone(), older_than_secs: older_than.as_secs() }, *apply)
        }
        PgCommand::CancelSlow { longer_than, database, apply } => {
            (Action::CancelSlow { database: database.clone(), longer_than_secs: longer_than.as_secs() }, *apply)
        }
        PgCommand::Vacuum { tables, analyze, database, apply } => {
            (Action::Vacuum { database: database.clone(), analyze: *analyze, tables: tables.clone() }, *apply)
        }
    };
    act(cli, env, out, action, apply).await
}

/// `opsctl redis set-policy`.
pub(crate) async fn redis(
    cli: &Cli,
    cmd: &RedisCommand,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let RedisCommand::SetPolicy { policy, cache, apply } = cmd;
    act(cli, env, out, Action::RedisSetPolicy { cache: cache.clone(), policy: policy.clone() }, *apply).await
}

/// `opsctl restart`.
pub(crate) async fn restart(
    cli: &Cli,
    args: &RestartArgs,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let action = Action::Restart { service: args.service.clone(), with_dependents: args.with_dependents };
    act(cli, env, out, action, args.apply).await
}

/// `opsctl rollback`.
pub(crate) async fn rollback(
    cli: &Cli,
    args: &RollbackArgs,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let action = Action::Rollback { service: args.service.clone(), to: args.to.clone() };
    act(cli, env, out, action, args.apply).await
}

/// `opsctl stack up|down`: the `start-stack` and `stop-stack` actions; after `up --apply`,
/// every check, as after a reboot (the exit code is the checks' severity, or 1 when a start
/// failed).
pub(crate) async fn stack(
    cli: &Cli,
    cmd: &StackCommand,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let (action, apply) = match cmd {
        StackCommand::Up { apply } => (Action::StartStack {}, *apply),
        StackCommand::Down { apply } => (Action::StopStack {}, *apply),
    };
    if !apply || matches!(action, Action::StopStack {}) {
        return act(cli, env, out, action, apply).await;
    }
    let ctx = context(cli, env)?;
    let plan = ops_act::plan(&ctx, &action).await?;
    let report =
        if plan.targets.is_empty() { None } else { Some(ops_act::apply(&ctx, &plan, &crate::actor(env)).await?) };
    let checks = ops_probes::triage(&ctx, &ops_probes::TriageOptions::default()).await;
    if cli.json {
        let mut answer = serde_json::json!({ "applied": report.is_some(), "checks": checks });
        match &report {
            Some(r) => answer["report"] = serde_json::to_value(r).unwrap_or_default(),
            None => answer["plan"] = serde_json::to_value(&plan).unwrap_or_default(),
        }
        write_json(out, &answer)?;
    } else {
        match &report {
            Some(r) => perf_render::applied(out, r)?,
            None => perf_render::plan(out, &plan, false)?,
        }
        writeln!(out)?;
        crate::checks_render::triage(out, &checks, false, &[])?;
    }
    let code = match &report {
        Some(r) if !r.ok() => exit::FINDINGS,
        _ => ops_core::exit::code_of_severity(checks.severity),
    };
    Ok(Outcome { code })
}

/// `opsctl disk plan|clean`: the `disk-clean` action, with `df` of every filesystem it frees
/// space on, before and after.
pub(crate) async fn disk(
    cli: &Cli,
    cmd: &DiskCommand,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let (args, apply) = match cmd {
        DiskCommand::Plan(args) => (args, false),
        DiskCommand::Clean { args, apply } => (args, *apply),
    };
    let action = Action::DiskClean {
        only: args.only.clone(),
        volumes: args.volumes,
        all_images: args.all_images,
        label: args.label.clone(),
        logs_over_bytes: args.logs_over,
        journal_keep_days: args.journal_keep_days,
    };
    let mut ctx = context(cli, env)?;
    drop(ctx.open_state().await);
    let plan = ops_act::plan(&ctx, &action).await?;
    if !apply || plan.targets.is_empty() {
        if cli.json {
            write_json(out, &serde_json::json!({ "applied": false, "plan": plan }))?;
        } else {
            perf_render::disk_plan(out, &plan, matches!(cmd, DiskCommand::Clean { .. }))?;
        }
        return Ok(Outcome { code: exit::OK });
    }
    let filesystems = perf_render::filesystems(&plan);
    let before = perf_render::df(&filesystems);
    let report = ops_act::apply(&ctx, &plan, &crate::actor(env)).await?;
    let after = perf_render::df(&filesystems);
    if cli.json {
        let df: Vec<serde_json::Value> = filesystems
            .iter()
            .zip(before.iter().zip(&after))
            .map(|(fs, (b, a))| serde_json::json!({ "filesystem": fs, "before": b, "after": a }))
            .collect();
        write_json(out, &serde_json::json!({ "applied": true, "report": report, "df": df }))?;
    } else {
        perf_render::disk_applied(out, &report, &filesystems, &before, &after)?;
    }
    Ok(Outcome { code: if report.ok() { exit::OK } else { exit::FINDINGS } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h30m"), Ok(Duration::from_secs(9000)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("10 minutes").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5x").is_err());
    }
}
