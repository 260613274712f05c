//! Tables of triage, probe and TLS reports: the verdict first, then what to act on, then what
//! is fine in one line. Meant to be read in five seconds at 3 a.m.

use std::io::Write;

use ops_core::Result;

use crate::render::{mark, unit};
use ops_probes::{ProbeReport, TriageReport};
use ops_tls::{RenewPlan, RenewReport, TargetReport};

/// How many names of healthy checks to show before "+N more".
const OK_SHOWN: usize = 12;

/// `opsctl triage`.
pub(crate) fn triage(
    out: &mut dyn Write,
    r: &TriageReport,
    verbose: bool,
    remedies: &[Option<ops_runbook::catalog::Remedy>],
) -> Result<()> {
    let secs = r.duration_ms as f64 / 1000.0;
    match r.severity {
        None => writeln!(out, "OK  all {} checks ok  ({secs:.1} s)", r.probes.len())?,
        Some(sev) => writeln!(
            out,
            "{sev}  respond within {}  |  {} incident{}, {} of {} checks ok  ({secs:.1} s)",
            sev.response_time(),
            r.incidents.len(),
            if r.incidents.len() == 1 { "" } else { "s" },
            r.ok.len(),
            r.probes.len()
        )?,
    }
    for (n, i) in r.incidents.iter().enumerate() {
        writeln!(out)?;
        writeln!(out, "{}  {:<5} {}  {}", i.severity, mark(i.status), i.check, i.message)?;
        match remedies.get(n).and_then(Option::as_ref) {
            Some(rem) => writeln!(out, "    runbook: {}  ->  {}", i.runbook, rem.command)?,
            None => writeln!(out, "    runbook: {}", i.runbook)?,
        }
        for c in &i.consequences {
            writeln!(out, "    -> {} {}  {}  ({})", c.severity, c.check, c.message, c.runbook)?;
        }
        for a in &i.also {
            writeln!(out, "    also {}: {}  ({})", a.severity, a.message, a.runbook)?;
        }
        for a in &i.advice {
            writeln!(out, "    ! {a}")?;
        }
        // The newest lines explain the outage; the oldest of a log are its startup.
        let shown = if verbose { i.evidence.len() } else { 3 };
        for e in &i.evidence[i.evidence.len().saturating_sub(shown)..] {
            writeln!(out, "    | {}", one_line(e, 160))?;
        }
    }
    if !r.ok.is_empty() {
        writeln!(out)?;
        let shown: Vec<&str> =
            r.ok.iter().take(if verbose { usize::MAX } else { OK_SHOWN }).map(String::as_str).collect();
        let more = r.ok.len() - shown.len();
        let tail = if more > 0 { format!(" (+{more} more)") } else { String::new() };
        writeln!(out, "ok: {}{tail}", shown.join(", "))?;
    }
    if verbose {
        writeln!(out)?;
        for p in &r.probes {
            probe_line(out, p)?;
        }
    }
    Ok(())
}

fn probe_line(out: &mut dyn Write, p: &ProbeReport) -> Result<()> {
    writeln!(out, "{:<5} {:<28} {:>6} ms  {}", mark(p.status), p.name, p.duration_ms, p.message)?;
    Ok(())
}

/// One probe report in detail (`opsctl probe …`).
pub(crate) fn probe(out: &mut dyn Write, p: &ProbeReport) -> Result<()> {
    writeln!(out, "{}  {}  {}", mark(p.status).to_uppercase(), p.name, p.message)?;
    writeln!(out, "  target   {}  (probe took {} ms)", p.target, p.duration_ms)?;
    for pr in &p.problems {
        writeln!(out, "  {:<5}    {}  ({})", mark(pr.status), pr.message, pr.runbook)?;
        for e in &pr.evidence {
            writeln!(out, "           | {}", one_line(e, 160))?;
        }
    }
    for o in &p.observations {
        let labels: Vec<String> = o.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let labels = if labels.is_empty() { String::new() } else { format!(" {{{}}}", labels.join(",")) };
        writeln!(out, "  {:<20} {} {}{labels}", o.name, trim_number(o.value), unit(o.unit))?;
    }
    for e in &p.evidence {
        writeln!(out, "  | {}", one_line(e, 160))?;
    }
    Ok(())
}

fn trim_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.2}") }
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() > max { format!("{}…", flat.chars().take(max).collect::<String>()) } else { flat }
}

/// `opsctl tls check`.
pub(crate) fn tls_reports(out: &mut dyn Write, reports: &[TargetReport]) -> Result<()> {
    writeln!(out, "{:<5} {:<36} {:>5}  {:<20}  DETAIL", "", "TARGET", "DAYS", "EXPIRES (UTC)")?;
    for r in reports {
        let (expiry, detail) = match r {
            TargetReport::Endpoint(e) => {
                let expiry = e.verified_earliest_expiry.or(e.presented_earliest_expiry);
                let issuer = e.leaf().map(|l| l.issuer.clone()).unwrap_or_default();
                let proto = e.tls_version.clone().unwrap_or_default();
                (expiry, format!("{proto} {issuer}").trim().to_owned())
            }
            TargetReport::Path(p) => (p.earliest_expiry, format!("{} file(s)", p.files.len())),
        };
        let days = r.days_left().map_or_else(|| "-".to_owned(), |d| d.to_string());
        let expiry = expiry.map_or_else(|| "-".to_owned(), |t| t.format("%Y-%m-%d %H:%M").to_string());
        writeln!(out, "{:<5} {:<36} {days:>5}  {expiry:<20}  {detail}", mark(r.status()), r.label())?;
        let findings = match r {
            TargetReport::Endpoint(e) => e.findings.clone(),
            TargetReport::Path(p) => {
                p.findings.iter().chain(p.files.iter().flat_map(|f| f.findings.iter())).cloned().collect()
            }
        };
        for f in findings {
            writeln!(out, "      {} {}", mark(f.status), f.message)?;
        }
    }
    Ok(())
}

/// `opsctl tls renew --dry-run`, or a renewal that was not due.
pub(crate) fn renew_plan(out: &mut dyn Write, plan: &RenewPlan) -> Result<()> {
    tls_reports(out, &plan.before)?;
    writeln!(out)?;
    if plan.run {
        writeln!(out, "renewal due: {}", plan.reason)?;
        for c in &plan.commands {
            writeln!(out, "  would run in {}: {}", c.container, c.cmd.join(" "))?;
        }
    } else {
        writeln!(out, "nothing to renew: {} (--force runs the commands anyway)", plan.reason)?;
    }
    Ok(())
}

/// `opsctl tls renew`.
pub(crate) fn renew_report(out: &mut dyn Write, r: &RenewReport) -> Result<()> {
    writeln!(out, "before:")?;
    tls_reports(out, &r.plan.before)?;
    writeln!(out, "\nran ({}):", r.plan.reason)?;
    for c in &r.executed {
        let result = match (&c.error, c.exit_code) {
            (Some(e), _) => format!("failed: {e}"),
            (None, Some(0)) => "ok".to_owned(),
            (None, code) => format!("exit {}", code.unwrap_or(-1)),
        };
        writeln!(out, "  {:<5} {}: {}  ({} ms)", result, c.container, c.cmd.join(" "), c.duration_ms)?;
    }
    if !r.after.is_empty() {
        writeln!(out, "\nafter:")?;
        tls_reports(out, &r.after)?;
    }
    for f in &r.findings {
        writeln!(out, "{} {}", mark(f.status), f.message)?;
    }
    Ok(())
}

/// What a triage recorded in the state store: incidents opened, updated and resolved.
pub(crate) fn recorded(out: &mut dyn Write, recorded: Option<&ops_incident::ObserveReport>) -> Result<()> {
    let Some(r) = recorded else { return Ok(()) };
    for id in &r.opened {
        writeln!(out, "incident {id} opened: opsctl incident show {id}")?;
    }
    for id in r.updated.iter().filter(|id| !r.resolved.contains(id)) {
        writeln!(out, "incident {id} updated")?;
    }
    for id in &r.resolved {
        writeln!(out, "incident {id} resolved: opsctl incident report {id}")?;
    }
    Ok(())
}
