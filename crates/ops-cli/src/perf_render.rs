//! Tables of `opsctl perf analyze` (grouped by verdict, criticals first) and of action plans.

use std::io::Write;

use ops_core::Result;

use ops_act::{ActionPlan, ActionReport};
use ops_perf::PerfReport;

/// `opsctl perf analyze`.
pub(crate) fn report(out: &mut dyn Write, r: &PerfReport) -> Result<()> {
    out.write_all(ops_perf::render_text(r).as_bytes())?;
    Ok(())
}

/// A plan: what would be touched. `due`: there is something to do.
pub(crate) fn plan(out: &mut dyn Write, p: &ActionPlan, due: bool) -> Result<()> {
    writeln!(out, "plan: {}", p.summary)?;
    for t in &p.targets {
        writeln!(out, "  {}", t.id)?;
        let width = t.details.keys().map(String::len).max().unwrap_or(0).max(12);
        for (k, v) in &t.details {
            writeln!(out, "      {k:<width$} {}", v.replace('\n', " "))?;
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
