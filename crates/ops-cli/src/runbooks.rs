//! `opsctl runbook list|show|check|plan|run|runs|approve`: runbooks as code from the command
//! line. `run` without `--apply` is a plan; with it, the run is kept in the state store.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;

use async_trait::async_trait;
use ops_core::config::load;
use ops_core::ports::{Approval, RunQuery};
use ops_core::{Context, Error, Result};
use ops_runbook::engine::{Decision, Observer, Preapproved, Unattended};
use ops_runbook::{Approver, Catalog, Run, RunOptions};

use crate::render::write_json;
use crate::{Cli, Outcome, RunbookCommand, exit, runbook_render};

fn catalog(cfg: &ops_core::config::OpsConfig) -> Result<Catalog> {
    Catalog::load(cfg.runbooks.dir.as_deref())
}

/// `--param key=value`.
pub(crate) fn param(s: &str) -> std::result::Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?}: write NAME=VALUE"))?;
    if k.is_empty() {
        return Err(format!("{s:?}: the name is empty"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// `opsctl runbook …`.
pub(crate) async fn runbook(
    cli: &Cli,
    cmd: &RunbookCommand,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let cfg = load(cli.config.as_deref(), env)?.config;
    match cmd {
        RunbookCommand::List => {
            let c = catalog(&cfg)?;
            if cli.json {
                let list: Vec<serde_json::Value> = c.iter().map(runbook_render::summary_json).collect();
                write_json(out, &list)?;
            } else {
                runbook_render::list(out, &c)?;
            }
            Ok(Outcome { code: exit::OK })
        }
        RunbookCommand::Show { name } => {
            let c = catalog(&cfg)?;
            let rb = c.get(name)?;
            if cli.json {
                write_json(out, &runbook_render::detail_json(rb))?;
            } else {
                write!(out, "{}", rb.text)?;
                if !rb.text.ends_with('\n') {
                    writeln!(out)?;
                }
            }
            Ok(Outcome { code: exit::OK })
        }
        RunbookCommand::Check { dir } => {
            let dir = dir
                .as_deref()
                .or(cfg.runbooks.dir.as_deref())
                .ok_or_else(|| Error::invalid_input("give a directory, or set runbooks.dir in the configuration"))?;
            check_dir(cli, dir, out)
        }
        RunbookCommand::Plan { name, params } | RunbookCommand::Run { name, params, apply: false, .. } => {
            let c = catalog(&cfg)?;
            let rb = c.get(name)?;
            let mut ctx = Context::from_config(cfg.clone())?;
            // A plan shows the budgets' uses when the store can be opened; it never needs it.
            if ctx.open_state().await.is_err() {
                ctx.state = None;
            }
            let opts = options(params, env, false);
            let run = ops_runbook::plan(&ctx, rb, &opts).await?;
            render(cli, out, &run)?;
            Ok(Outcome { code: if run.ok() { exit::OK } else { exit::FINDINGS } })
        }
        RunbookCommand::Run { name, params, apply: true, yes } => {
            let c = catalog(&cfg)?;
            let rb = c.get(name)?;
            let mut ctx = Context::from_config(cfg.clone())?;
            ctx.open_state().await?;
            let opts = options(params, env, *yes);
            let actor = opts.actor.clone();
            let approver: Box<dyn Approver> = if *yes {
                Box::new(Preapproved(format!("{actor} (--yes)")))
            } else if std::io::stdin().is_terminal() {
                Box::new(Terminal { actor })
            } else {
                Box::new(Unattended)
            };
            let observer = Progress { on: !cli.json && std::io::stderr().is_terminal() };
            let run = ops_runbook::run(&ctx, rb, &opts, approver.as_ref(), &observer).await?;
            render(cli, out, &run)?;
            Ok(Outcome { code: if run.ok() { exit::OK } else { exit::FINDINGS } })
        }
        RunbookCommand::Runs { runbook, limit } => {
            let mut ctx = Context::from_config(cfg)?;
            ctx.open_state().await?;
            let query =
                RunQuery { runbook: runbook.clone(), status: None, limit: usize::try_from(*limit).unwrap_or(20) };
            let runs = ops_runbook::run::list(ctx.state()?.as_ref(), &query).await?;
            if cli.json {
                write_json(out, &runs)?;
            } else {
                runbook_render::runs(out, &runs)?;
            }
            Ok(Outcome { code: exit::OK })
        }
        RunbookCommand::ShowRun { id } => {
            let mut ctx = Context::from_config(cfg)?;
            ctx.open_state().await?;
            let run = ops_runbook::run::load(ctx.state()?.as_ref(), id).await?;
            render(cli, out, &run)?;
            Ok(Outcome { code: exit::OK })
        }
        RunbookCommand::Approve { id } => {
            let mut ctx = Context::from_config(cfg)?;
            ctx.open_state().await?;
            let store = ctx.state()?.clone();
            let run = ops_runbook::run::load(store.as_ref(), id).await?;
            let step = run.waiting_for.ok_or_else(|| {
                Error::conflict(format!("run {id} is not waiting for an approval ({})", run.status.as_str()))
            })?;
            let actor = crate::actor(env);
            store
                .approve(&Approval { run_id: run.id.clone(), step, actor: actor.clone(), time: chrono::Utc::now() })
                .await?;
            if cli.json {
                write_json(out, &serde_json::json!({ "run": run.id, "step": step, "approved_by": actor }))?;
            } else {
                writeln!(out, "approved step {step} of {} as {actor}", run.id)?;
            }
            Ok(Outcome { code: exit::OK })
        }
    }
}

fn options(params: &[(String, String)], env: &BTreeMap<String, String>, yes: bool) -> RunOptions {
    RunOptions { params: params.iter().cloned().collect(), incident: None, yes, actor: crate::actor(env), run_id: None }
}

fn render(cli: &Cli, out: &mut dyn Write, run: &Run) -> Result<()> {
    if cli.json { write_json(out, run) } else { runbook_render::run(out, run) }
}

fn check_dir(cli: &Cli, dir: &Path, out: &mut dyn Write) -> Result<Outcome> {
    match ops_runbook::catalog::read_dir(dir) {
        Ok(list) => {
            if cli.json {
                let names: Vec<&str> = list.iter().map(|r| r.name.as_str()).collect();
                write_json(out, &serde_json::json!({ "ok": true, "runbooks": names }))?;
            } else {
                for rb in &list {
                    writeln!(out, "ok  {:<24} {} ({} steps)", rb.name, rb.source, rb.steps.len())?;
                }
                writeln!(out, "{} runbook{} valid", list.len(), if list.len() == 1 { "" } else { "s" })?;
            }
            Ok(Outcome { code: exit::OK })
        }
        Err(errors) => {
            let lines: Vec<String> = errors
                .iter()
                .map(|e| match e {
                    Ok(l) => l.to_string(),
                    Err(e) => e.to_string(),
                })
                .collect();
            if cli.json {
                write_json(out, &serde_json::json!({ "ok": false, "errors": lines }))?;
            } else {
                for l in &lines {
                    writeln!(out, "error: {l}")?;
                }
            }
            Ok(Outcome { code: exit::INVALID_INPUT })
        }
    }
}

/// Asks at the terminal.
struct Terminal {
    actor: String,
}

#[async_trait]
impl Approver for Terminal {
    async fn decide(&self, _: &Run, step: &ops_runbook::run::StepRecord, prompt: &str) -> Result<Decision> {
        let question = format!("\nstep {} ({}): {prompt}\ndone / approve? [y/N] ", step.index, step.id);
        let answer = tokio::task::spawn_blocking(move || {
            let mut err = std::io::stderr();
            let _ = write!(err, "{question}");
            let _ = err.flush();
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await
        .map_err(|e| Error::internal(format!("asking: {e}")))?
        .map_err(|e| Error::unavailable(format!("reading the answer: {e}")))?;
        Ok(if matches!(answer.trim(), "y" | "Y" | "yes") {
            Decision::Approved(self.actor.clone())
        } else {
            Decision::Declined("answered no at the terminal".to_owned())
        })
    }
}

/// One line per finished step on a terminal's stderr.
struct Progress {
    on: bool,
}

impl Observer for Progress {
    fn update(&self, run: &Run) {
        if !self.on {
            return;
        }
        if let Some(s) = run.steps.iter().rev().find(|s| s.started_at.is_some()) {
            let mut err = std::io::stderr();
            let _ =
                writeln!(err, "  {:>2}. {:<14} {:<10} {}", s.index, s.id, runbook_render::outcome(s.outcome), s.detail);
        }
    }
}
