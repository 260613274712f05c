//! The text of a [`PerfReport`]: one renderer for `opsctl perf analyze` and the scheduled
//! analysis of `ops-server` (a report file, a webhook message).

use std::fmt::Write as _;

use ops_core::Status;

use crate::report::{PerfReport, Window};

fn value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.1}") }
}

/// The report as text, criticals of every section first, then warnings, then each section's
/// line: what `opsctl perf analyze` prints and a scheduled analysis sends or writes.
#[must_use]
pub fn render_text(r: &PerfReport) -> String {
    let mut text = String::new();
    let out = &mut text;
    let findings: usize =
        r.sections.iter().map(|s| s.findings.iter().filter(|f| f.verdict != Status::Ok).count()).sum();
    let _ = writeln!(
        out,
        "{}  {} finding{} to act on in {} section{}  ({:.1} s)",
        Status::mark(r.status).to_uppercase(),
        findings,
        if findings == 1 { "" } else { "s" },
        r.sections.len(),
        if r.sections.len() == 1 { "" } else { "s" },
        r.duration_ms as f64 / 1000.0
    );
    // Criticals of every section first, then warnings, then what could not be analysed.
    for verdict in [Status::Critical, Status::Warn] {
        let mut first = true;
        for s in &r.sections {
            for f in s.findings.iter().filter(|f| f.verdict == verdict) {
                if first {
                    let _ = writeln!(out, "\n{}:", if verdict == Status::Critical { "CRITICAL" } else { "WARNING" });
                    first = false;
                }
                let _ =
                    writeln!(out, "  {:<4} {:<11} {:<20} {}", Status::mark(f.verdict), s.target, f.check, f.message);
                let values: Vec<String> = f
                    .values
                    .iter()
                    .map(|v| match v.unit {
                        ops_probes::Unit::Bytes => format!("{}={}", v.name, ops_core::units::human_bytes_f64(v.value)),
                        _ => format!("{}={}{}", v.name, value(v.value), v.unit.suffix()),
                    })
                    .collect();
                if !values.is_empty() {
                    let _ = writeln!(out, "       {}", values.join("  "));
                }
                for e in f.evidence.iter().take(3) {
                    let _ = writeln!(out, "       | {}", e.replace('\n', " "));
                }
                if let Some(a) = &f.action {
                    let _ = writeln!(out, "       -> {a}");
                }
            }
        }
    }
    let _ = writeln!(out);
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
            Some(e) => {
                let _ = writeln!(
                    out,
                    "{:<4} {:<5} {}: could not analyse: {e}",
                    Status::mark(s.status),
                    s.section,
                    s.target
                );
            }
            None => {
                let ok = s.findings.iter().filter(|f| f.verdict == Status::Ok).count();
                let _ = writeln!(
                    out,
                    "{:<4} {:<5} {}: {} finding(s), {ok} ok; {} queries, {} ms{window}",
                    Status::mark(s.status),
                    s.section,
                    s.target,
                    s.findings.len(),
                    s.queries,
                    s.duration_ms
                );
            }
        }
    }
    text
}
