//! Tables of `opsctl runbook …`: the catalog, a run read like the runbook (each step with its
//! outcome, time and detail; the branch not taken shown as skipped), and the list of runs.

use std::io::Write;

use ops_core::Result;
use ops_runbook::format::StepKind;
use ops_runbook::run::{Mode, StepOutcome};
use ops_runbook::{Catalog, Run, Runbook};

/// A step outcome as a word.
pub(crate) const fn outcome(o: StepOutcome) -> &'static str {
    match o {
        StepOutcome::Ok => "ok",
        StepOutcome::Failed => "FAILED",
        StepOutcome::Skipped => "skipped",
        StepOutcome::Refused => "REFUSED",
        StepOutcome::Waiting => "waiting",
        StepOutcome::WouldRun => "would run",
        StepOutcome::NotReached => "-",
        StepOutcome::Error => "error",
    }
}

pub(crate) fn summary_json(rb: &Runbook) -> serde_json::Value {
    serde_json::json!({
        "name": rb.name,
        "title": rb.title,
        "applies-to": rb.applies_to,
        "auto": rb.auto,
        "severity": rb.severity,
        "source": rb.source,
        "steps": rb.steps.len(),
        "params": rb.params,
    })
}

pub(crate) fn detail_json(rb: &Runbook) -> serde_json::Value {
    let mut v = summary_json(rb);
    v["text"] = serde_json::Value::String(rb.text.clone());
    v["steps"] = rb
        .steps
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id,
                "line": s.line,
                "kind": s.kind.name(),
                "title": s.title,
                "when": s.when.as_ref().map(|w| &w.0),
                "on-failure": s.on_failure,
                "action": match &s.kind { StepKind::Action { name, .. } => Some(name.as_str()), _ => None },
            })
        })
        .collect();
    v
}

/// `opsctl runbook list`.
pub(crate) fn list(out: &mut dyn Write, c: &Catalog) -> Result<()> {
    writeln!(out, "{:<24} {:<5} {:<4} {:<6} TITLE", "NAME", "SEV", "AUTO", "STEPS")?;
    for rb in c.iter() {
        writeln!(
            out,
            "{:<24} {:<5} {:<4} {:<6} {}{}",
            rb.name,
            rb.severity.map(|s| s.to_string()).unwrap_or_default(),
            if rb.auto { "yes" } else { "" },
            rb.steps.len(),
            rb.title,
            if rb.source.starts_with("built-in:") { String::new() } else { format!("  ({})", rb.source) }
        )?;
    }
    Ok(())
}

fn took(ms: u64) -> String {
    if ms == 0 { String::new() } else { ops_core::units::human_latency(std::time::Duration::from_millis(ms)) }
}

/// A run (or plan), step by step.
pub(crate) fn run(out: &mut dyn Write, r: &Run) -> Result<()> {
    let what = if r.mode == Mode::Plan { "plan of runbook" } else { "runbook" };
    writeln!(out, "{what} {}: {}", r.runbook, r.title)?;
    let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !params.is_empty() {
        writeln!(out, "params: {}", params.join(" "))?;
    }
    if r.mode == Mode::Apply {
        writeln!(out, "run {} by {}", r.id, r.actor)?;
    }
    writeln!(out)?;
    writeln!(out, " {:>2}  {:<14} {:<8} {:<10} {:>8}  DETAIL", "#", "STEP", "KIND", "OUTCOME", "TOOK")?;
    for s in &r.steps {
        let id = if s.on_failure { format!("{} (!)", s.id) } else { s.id.clone() };
        writeln!(
            out,
            " {:>2}  {:<14} {:<8} {:<10} {:>8}  {}",
            s.index,
            id,
            s.kind,
            outcome(s.outcome),
            took(s.duration_ms),
            if s.detail.is_empty() { &s.title } else { &s.detail }
        )?;
        if let Some(a) = &s.action
            && matches!(s.outcome, StepOutcome::WouldRun | StepOutcome::Refused)
        {
            for t in &a.targets {
                writeln!(out, "{:>40}  -> {t}", "")?;
            }
            for n in &a.notes {
                writeln!(out, "{:>40}  note: {n}", "")?;
            }
        }
        for g in s.guards.iter().filter(|g| !g.ok || r.mode == Mode::Plan) {
            writeln!(out, "{:>40}  guard {} ({}): {}", "", g.guard, if g.ok { "ok" } else { "REFUSES" }, g.detail)?;
        }
        for e in s.evidence.iter().rev().take(3).rev() {
            writeln!(out, "{:>40}  | {e}", "")?;
        }
    }
    writeln!(out, "\n(!) runs only when the run fails")?;
    for e in &r.escalations {
        writeln!(out, "escalated ({}): {}", e.severity, e.reason)?;
        for d in &e.deliveries {
            writeln!(out, "  -> {d}")?;
        }
    }
    writeln!(out, "{}: {}", r.status.as_str().to_uppercase(), r.summary)?;
    Ok(())
}

/// `opsctl runbook runs`.
pub(crate) fn runs(out: &mut dyn Write, runs: &[Run]) -> Result<()> {
    writeln!(out, "{:<32} {:<24} {:<10} {:<20} BY", "RUN", "RUNBOOK", "STATUS", "STARTED")?;
    for r in runs {
        writeln!(
            out,
            "{:<32} {:<24} {:<10} {:<20} {}",
            r.id,
            r.runbook,
            r.status.as_str(),
            r.started_at.format("%Y-%m-%d %H:%M:%S"),
            r.actor
        )?;
    }
    Ok(())
}
