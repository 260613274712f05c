//! Tables of `opsctl perf analyze` (grouped by verdict, criticals first) and of action plans.

use std::io::Write;

use ops_core::Result;
use ops_core::units::human_bytes;

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

/// One filesystem's `df` line.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Df {
    used_bytes: u64,
    available_bytes: u64,
    size_bytes: u64,
}

/// The filesystems a disk plan frees space on, one path per filesystem.
pub(crate) fn filesystems(plan: &ActionPlan) -> Vec<String> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for fs in plan.targets.iter().filter_map(|t| t.details.get("filesystem")) {
        let id = ops_core::diskspace::stats(std::path::Path::new(fs)).map(|s| s.fs_id).ok();
        if !out.contains(fs) && id.is_none_or(|id| !seen.contains(&id)) {
            seen.extend(id);
            out.push(fs.clone());
        }
    }
    out
}

/// `df` of each path (`None` where it cannot be measured).
pub(crate) fn df(paths: &[String]) -> Vec<Option<Df>> {
    paths
        .iter()
        .map(|p| {
            ops_core::diskspace::stats(std::path::Path::new(p)).ok().map(|s| Df {
                used_bytes: s.used_bytes,
                available_bytes: s.available_bytes,
                size_bytes: s.total_bytes,
            })
        })
        .collect()
}

fn item_detail(t: &ops_act::Target) -> String {
    let d = |k: &str| t.details.get(k).cloned().unwrap_or_default();
    match t.id.split_once(':').map_or(t.id.as_str(), |(k, _)| k) {
        "container" => format!("stopped, its log {}", human_bytes(d("log-bytes").parse().unwrap_or(0))),
        "image" => d("tags"),
        "build-cache" => format!("{} records", d("records")),
        "volume" if d("size-known") == "false" => "size not measured by the engine".to_owned(),
        "log" => format!("over {}: {}", human_bytes(d("over").parse().unwrap_or(0)), d("path")),
        "backup" => format!("{} {}", d("database"), d("rule")),
        "journal" => format!("archived files older than {} days", d("keep-days")),
        _ => String::new(),
    }
}

/// `opsctl disk plan`: one line per item, its estimate, the total. `clean`: the hint says
/// `--apply`.
pub(crate) fn disk_plan(out: &mut dyn Write, p: &ActionPlan, clean: bool) -> Result<()> {
    writeln!(out, "plan: {}", p.summary)?;
    let width = p.targets.iter().map(|t| t.id.len()).max().unwrap_or(0).max(4);
    if !p.targets.is_empty() {
        writeln!(out, "  {:<width$}  {:>10}  DETAIL", "ITEM", "ESTIMATE")?;
    }
    for t in &p.targets {
        writeln!(out, "  {:<width$}  {:>10}  {}", t.id, human_bytes(ops_act::disk_estimate(t)), item_detail(t))?;
    }
    if p.targets.len() > 1 {
        let total: u64 = p.targets.iter().map(ops_act::disk_estimate).sum();
        writeln!(out, "  {:<width$}  {:>10}", "total", human_bytes(total))?;
    }
    for n in &p.notes {
        writeln!(out, "  note: {n}")?;
    }
    if p.targets.is_empty() {
        writeln!(out, "\nnothing to do")?;
    } else if clean {
        writeln!(out, "\nnothing was changed; run again with --apply to do it")?;
    } else {
        writeln!(out, "\nnothing was changed; opsctl disk clean --apply frees it")?;
    }
    Ok(())
}

/// What `opsctl disk clean --apply` freed, item by item, and `df` before and after.
pub(crate) fn disk_applied(
    out: &mut dyn Write,
    r: &ActionReport,
    filesystems: &[String],
    before: &[Option<Df>],
    after: &[Option<Df>],
) -> Result<()> {
    writeln!(out, "applied: {}", r.plan.summary)?;
    let width = r.plan.targets.iter().map(|t| t.id.len()).max().unwrap_or(0).max(4);
    writeln!(out, "  {:<4}  {:<width$}  {:>10}  {:>10}  RESULT", "", "ITEM", "ESTIMATE", "FREED")?;
    let (mut estimated, mut freed) = (0u64, 0u64);
    for o in &r.outcomes {
        let est = o.before.get("estimate_bytes").and_then(serde_json::Value::as_u64).unwrap_or(0);
        let got = o.after.get("freed_bytes").and_then(serde_json::Value::as_u64);
        estimated += est;
        freed += got.unwrap_or(0);
        let got = got.map_or_else(|| "-".to_owned(), human_bytes);
        let mark = if o.ok { "ok" } else { "FAIL" };
        writeln!(out, "  {mark:<4}  {:<width$}  {:>10}  {got:>10}  {}", o.target, human_bytes(est), o.result)?;
    }
    writeln!(out, "  {:<4}  {:<width$}  {:>10}  {:>10}", "", "total", human_bytes(estimated), human_bytes(freed))?;
    for (fs, (b, a)) in filesystems.iter().zip(before.iter().zip(after)) {
        match (b, a) {
            (Some(b), Some(a)) => writeln!(
                out,
                "df {fs}: used {} -> {} ({} freed), available {} -> {} (of {})",
                human_bytes(b.used_bytes),
                human_bytes(a.used_bytes),
                human_bytes(b.used_bytes.saturating_sub(a.used_bytes)),
                human_bytes(b.available_bytes),
                human_bytes(a.available_bytes),
                human_bytes(a.size_bytes)
            )?,
            _ => writeln!(out, "df {fs}: cannot be measured here")?,
        }
    }
    writeln!(out, "audit log: {}", r.audit_log.display())?;
    Ok(())
}
