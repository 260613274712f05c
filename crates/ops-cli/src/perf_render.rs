//! Tables of `opsctl perf analyze` (grouped by verdict, criticals first) and of action plans.

use std::io::Write;

use ops_core::{Result, Status};

use crate::render::{mark, unit};
use ops_act::{ActionPlan, ActionReport};
use ops_perf::{PerfReport, Window};

fn value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.1}") }
}

/// `opsctl perf analyze`.
pub(crate) fn report(out: &mut dyn Write, r: &PerfReport) -> Result<()> {
    let findings: usize =
        r.sections.iter().map(|s| s.findings.iter().filter(|f| f.verdict != Status::Ok).count()).sum();
    writeln!(
        out,
        "{}  {} finding{} to act on in {} section{}  ({:.1} s)",
        mark(r.status).to_uppercase(),
        findings,
        if findings == 1 { "" } else { "s" },
        r.sections.len(),
        if r.sections.len() == 1 { "" } else { "s" },
        r.duration_ms as f64 / 1000.0
    )?;
    // Criticals of every section first, then warnings, then what could not be analysed.
    for verdict in [Status::Critical, Status::Warn] {
        let mut first = true;
        for s in &r.sections {
            for f in s.findings.iter().filter(|f| f.verdict == verdict) {
                if first {
                    writeln!(out, "\n{}:", if verdict == Status::Critical { "CRITICAL" } else { "WARNING" })?;
                    first = false;
                }
                writeln!(out, "  {:<4} {:<11} {:<20} {}", mark(f.verdict), s.target, f.check, f.message)?;
                let values: Vec<String> = f
                    .values
                    .iter()
                    .map(|v| match v.unit {
                        ops_probes::Unit::Bytes => format!("{}={}", v.name, ops_core::units::human_bytes_f64(v.value)),
                        _ => format!("{}={}{}", v.name, value(v.value), unit(v.unit)),
                    })
                    .collect();
                if !values.is_empty() {
                    writeln!(out, "       {}", values.join("  "))?;
                }
                for e in f.evidence.iter().take(3) {
                    writeln!(out, "       | {}", e.replace('\n', " "))?;
                }
                if let Some(a) = &f.action {
                    writeln!(out, "       -> {a}")?;
                }
            }
        }
    }
    writeln!(out)?;
    for s in &r.sections {
        let window = match &s.window {
            Some(Window::PreviousRun { at }) => {
                format!(", since the previous run at {}", at.format("%Y-%m-%d %H:%M UTC"))
            }
            Some(Window::ServerStart { at: Some(at) }) => format!(", since start {}", at.format("%Y-%m-%d %H:%M UTC")),
            Some(Window::ServerStart { at: None }) => ", since start".to_owned(),
            None => String::new(),
        };
        match &s.error {
            Some(e) => writeln!(out, "{:<4} {:<5} {}: could not analyse: {e}", mark(s.status), s.section, s.target)?,
            None => {
                let ok = s.findings.iter().filter(|f| f.verdict == Status::Ok).count();
                writeln!(
                    out,
                    "{:<4} {:<5} {}: {} finding(s), {ok} ok; {} queries, {} ms{window}",
                    mark(s.status),
                    s.section,
                    s.target,
                    s.findings.len(),
                    s.queries,
                    s.duration_ms
                )?;
            }
        }
    }
    Ok(())
}

/// A plan: what would be touched. `due`: there is something to do.
pub(crate) fn plan(out: &mut dyn Write, p: &ActionPlan, due: bool) -> Result<()> {
    writeln!(out, "plan: {}", p.summary)?;
    for t in &p.targets {
        writeln!(out, "  {}", t.id)?;
        for (k, v) in &t.details {
            writeln!(out, "      {k:<12} {}", v.replace('\n', " "))?;
        }
    }
    for n in &p.notes {
        writeln!(out, "  note: {n}")?;
    }
    if due {
        writeln!(out, "\nnothing was changed; run again with --apply to do it")?;
    } else {
        writeln!(out, "\nnothing to do")?;
    }
    Ok(())
}

/// What `--apply` did.
pub(crate) fn applied(out: &mut dyn Write, r: &ActionReport) -> Result<()> {
    writeln!(out, "applied: {}", r.plan.summary)?;
    for o in &r.outcomes {
        writeln!(out, "  {:<4} {}  {}", if o.ok { "ok" } else { "FAIL" }, o.target, o.result)?;
    }
    writeln!(out, "audit log: {}", r.audit_log.display())?;
    Ok(())
}
