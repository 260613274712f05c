//! `opsctl schedule list|runs`: what `ops-server` runs unattended, read from the config and
//! the ledger in the state store the servers share.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use ops_core::config::load;
use ops_core::ports::ScheduleQuery;
use ops_core::{Context, Error, Result};

use crate::render::write_json;
use crate::{Cli, Outcome, ScheduleCommand, exit};

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

/// `opsctl schedule …`. Exit 1 when the newest run of some entry failed.
pub(crate) async fn schedule(
    cli: &Cli,
    cmd: &ScheduleCommand,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let cfg = load(cli.config.as_deref(), env)?.config;
    let entries = cfg.schedule.clone();
    let mut ctx = Context::from_config(cfg)?;
    ctx.open_state().await?;
    let store = ctx.state()?.clone();
    match cmd {
        ScheduleCommand::List => {
            let jobs = ops_core::schedule::overview(&entries, store.as_ref(), Utc::now()).await?;
            let failing = jobs
                .iter()
                .any(|j| j.last.as_ref().is_some_and(|r| matches!(r.status.as_str(), "failure" | "abandoned")));
            if cli.json {
                write_json(out, &serde_json::json!({ "jobs": jobs }))?;
            } else if jobs.is_empty() {
                writeln!(out, "no [[schedule]] entry in the configuration")?;
            } else {
                // Columns as wide as their widest cell: a cron with its time zone
                // (`0 2 * * * Europe/Berlin`) or a long name keeps the table aligned.
                let rows: Vec<([String; 7], Option<&str>)> = jobs
                    .iter()
                    .map(|j| {
                        let cron =
                            if j.timezone == "UTC" { j.cron.clone() } else { format!("{} {}", j.cron, j.timezone) };
                        let (last, at) = j.last.as_ref().map_or(("never".to_owned(), None), |r| {
                            (r.status.clone(), r.finished_at.or(Some(r.started_at)))
                        });
                        let cells =
                            [j.name.clone(), j.job.clone(), cron, when(j.next), last, when(at), when(j.last_success)];
                        (cells, j.last.as_ref().and_then(|r| r.error.as_deref()))
                    })
                    .collect();
                let header = ["NAME", "JOB", "CRON", "NEXT", "LAST", "LAST RUN", "LAST SUCCESS"];
                let mut widths = header.map(|h| h.chars().count());
                for (cells, _) in &rows {
                    for (w, c) in widths.iter_mut().zip(cells) {
                        *w = (*w).max(c.chars().count());
                    }
                }
                let line = |cells: &[&str]| {
                    let padded: Vec<String> = cells
                        .iter()
                        .zip(widths)
                        .map(|(c, w)| format!("{c}{}", " ".repeat(w.saturating_sub(c.chars().count()))))
                        .collect();
                    padded.join("  ").trim_end().to_owned()
                };
                writeln!(out, "{}", line(&header))?;
                for (cells, error) in &rows {
                    writeln!(out, "{}", line(&cells.each_ref().map(String::as_str)))?;
                    if let Some(e) = error {
                        writeln!(out, "  └ {e}")?;
                    }
                }
            }
            Ok(Outcome { code: if failing { exit::FINDINGS } else { exit::OK } })
        }
        ScheduleCommand::Runs { name, limit } => {
            if !entries.iter().any(|e| &e.name == name) {
                return Err(Error::not_found(format!("no [[schedule]] entry named {name:?}")));
            }
            let q = ScheduleQuery { job: Some(name.clone()), status: None, limit: (*limit).clamp(1, 1000) };
            let runs = store.scheduled_runs(&q).await?;
            if cli.json {
                write_json(out, &serde_json::json!({ "runs": runs }))?;
            } else if runs.is_empty() {
                writeln!(out, "{name} has not run yet")?;
            } else {
                writeln!(out, "{:<24} {:<24} {:<10} {:<9} BY / ERROR", "DUE", "ENDED", "TOOK", "RESULT")?;
                for r in &runs {
                    let took = r.finished_at.map_or_else(
                        || "-".to_owned(),
                        |f| ops_core::units::human_duration((f - r.started_at).to_std().unwrap_or_default()),
                    );
                    writeln!(
                        out,
                        "{:<24} {:<24} {:<10} {:<9} {}",
                        when(Some(r.scheduled_at)),
                        when(r.finished_at),
                        took,
                        r.status,
                        r.error.as_deref().unwrap_or(&r.holder)
                    )?;
                }
            }
            Ok(Outcome { code: exit::OK })
        }
    }
}
