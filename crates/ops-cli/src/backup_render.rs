//! Rendering of backup reports for people, and the progress bar.

use std::io::Write;

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ops_backup::catalog::BackupEntry;
use ops_backup::progress::{Progress, ProgressEvent};
use ops_backup::retention::{PruneReport, Verdict};
use ops_backup::{BackupReport, CopyCheck, DrillReport, RestorePlan, RestoreReport, VerifyReport};
use ops_core::Result;

pub(crate) use ops_core::units::human_bytes as bytes;

/// An age like `5m`, `3h`, `2d`.
pub(crate) fn age(from: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - from).num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// A progress bar on stderr: bytes read from `pg_dump`, rate, and ETA when the size can be
/// estimated. Only for a person watching: none with `--json` or when stderr is not a terminal.
pub(crate) struct Bar(Option<ProgressBar>);

impl Bar {
    pub(crate) fn for_cli(cli: &crate::Cli) -> Self {
        use std::io::IsTerminal;
        Self((!cli.json && std::io::stderr().is_terminal()).then(Self::draw))
    }

    fn draw() -> ProgressBar {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg:<14} {bytes:>10} read, {binary_bytes_per_sec:>12} {wide_bar} {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn event(&self, event: ProgressEvent) {
        let Some(bar) = &self.0 else { return };
        match event {
            ProgressEvent::Phase { name } => bar.set_message(name),
            ProgressEvent::Bytes { raw, expected, .. } => {
                if let Some(total) = expected {
                    bar.set_length(total.max(raw));
                }
                bar.set_position(raw);
            }
            ProgressEvent::Note { message } => bar.println(message),
            _ => {}
        }
    }
}

pub(crate) fn backup_report(out: &mut dyn Write, r: &BackupReport) -> Result<()> {
    let m = &r.manifest;
    writeln!(out, "backup {}: ok", r.id)?;
    writeln!(out, "  database     {} ({}), PostgreSQL {}", m.database, m.database_config_name, m.server_version)?;
    writeln!(
        out,
        "  size         {} (raw {}, ratio {:.2}), {} level {}",
        bytes(m.size_bytes),
        bytes(m.raw_size_bytes),
        r.compression_ratio,
        m.compression,
        m.compression_level
    )?;
    let phases: Vec<String> = r.phases.iter().map(|p| format!("{} {:.1} s", p.name, p.seconds)).collect();
    if phases.is_empty() {
        writeln!(out, "  duration     {:.1} s", m.duration_seconds)?;
    } else {
        writeln!(out, "  duration     {:.1} s ({})", m.duration_seconds, phases.join(", "))?;
    }
    writeln!(out, "  sha256       {}", m.sha256)?;
    for (i, d) in r.destinations.iter().enumerate() {
        let label = if i == 0 { "copies" } else { "" };
        let parts = if d.parts > 1 { format!(" ({} parts)", d.parts) } else { String::new() };
        let check = match d.verified_by {
            CopyCheck::ReadBack => "read back and checked",
            CopyCheck::ServerSha256 => "every part's SHA-256 checked by the server",
            CopyCheck::ServerMd5 => "the server's MD5 of every stored part matches",
        };
        writeln!(out, "  {label:<12} {}/{}{parts}, {check}", d.location, d.key)?;
    }
    let exact: Vec<String> =
        m.tables.iter().filter(|t| t.exact).map(|t| format!("{} {}", t.name, t.rows.unwrap_or(0))).collect();
    writeln!(
        out,
        "  tables       {} (exact: {})",
        m.table_count,
        if exact.is_empty() { "none".into() } else { exact.join(", ") }
    )?;
    for n in &r.notifications {
        let state = if n.delivered {
            "delivered".to_owned()
        } else {
            format!("NOT delivered: {}", n.error.as_deref().unwrap_or(""))
        };
        writeln!(out, "  notified     {} ({state})", n.target)?;
    }
    Ok(())
}

pub(crate) fn list(out: &mut dyn Write, entries: &[BackupEntry], now: DateTime<Utc>) -> Result<()> {
    if entries.is_empty() {
        writeln!(out, "no backups")?;
        return Ok(());
    }
    let db_width = entries.iter().filter_map(|e| e.database.as_deref()).map(str::len).max().unwrap_or(1).max(8);
    writeln!(
        out,
        "{:<db_width$} {:<34} {:>5} {:>10} {:<6} {:<10} {:>6}  VERIFIED",
        "DATABASE", "ID", "AGE", "SIZE", "FORMAT", "STATE", "COPIES"
    )?;
    for e in entries {
        let verified =
            e.copies.iter().filter_map(|c| c.last_verification.as_ref()).max_by_key(|v| v.verified_at).map_or_else(
                || "never".to_owned(),
                |v| format!("{} {} ago", if v.ok { "ok" } else { "FAILED" }, age(v.verified_at, now)),
            );
        writeln!(
            out,
            "{:<db_width$} {:<34} {:>5} {:>10} {:<6} {:<10} {:>6}  {verified}",
            e.database.as_deref().unwrap_or("?"),
            e.id.as_str(),
            age(e.started_at, now),
            e.size_bytes().map_or_else(|| "-".to_owned(), bytes),
            e.compression.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            if e.complete {
                "complete"
            } else if e.failed {
                "FAILED"
            } else {
                "INCOMPLETE"
            },
            e.copies.len(),
        )?;
    }
    Ok(())
}

pub(crate) fn verify(out: &mut dyn Write, r: &VerifyReport) -> Result<()> {
    writeln!(out, "verify {}: {}", r.id, if r.ok { "ok" } else { "FAILED" })?;
    for c in &r.copies {
        if c.ok {
            writeln!(
                out,
                "  ok      {} ({}, {} uncompressed, trailer present)",
                c.location,
                bytes(c.size_bytes),
                bytes(c.raw_size_bytes)
            )?;
        } else {
            writeln!(out, "  FAILED  {}", c.location)?;
            for p in &c.problems {
                writeln!(out, "          - {p}")?;
            }
        }
    }
    Ok(())
}

pub(crate) fn prune(out: &mut dyn Write, r: &PruneReport) -> Result<()> {
    for d in &r.destinations {
        let deleting = d.decisions.iter().filter(|x| x.action == Verdict::Delete).count();
        let verb = if r.dry_run { "would delete" } else { "deleted" };
        writeln!(
            out,
            "{}: keep {}, {verb} {}",
            d.location,
            d.decisions.len() - deleting,
            if r.dry_run { deleting } else { d.deleted.len() }
        )?;
        for x in &d.decisions {
            let action = match x.action {
                Verdict::Keep => "keep  ",
                Verdict::Delete => "DELETE",
            };
            writeln!(out, "  {action} {:<12} {:<34} {}", x.database.as_deref().unwrap_or("?"), x.id.as_str(), x.rule)?;
        }
        for (id, e) in &d.failed {
            writeln!(out, "  FAILED to delete {id}: {e}")?;
        }
        if d.swept > 0 {
            writeln!(out, "  removed {} leftover(s) of interrupted uploads", d.swept)?;
        }
        if let Some(e) = &d.sweep_error {
            writeln!(out, "  FAILED to sweep leftovers of interrupted uploads: {e}")?;
        }
    }
    if r.dry_run {
        writeln!(out, "dry run: nothing was deleted")?;
    }
    Ok(())
}

pub(crate) fn restore_plan(out: &mut dyn Write, p: &RestorePlan, dry_run: bool) -> Result<()> {
    let strategy = match p.strategy {
        ops_backup::restore::Strategy::SafeSwap => "safe swap",
        ops_backup::restore::Strategy::InPlace => "IN PLACE (drop and recreate)",
    };
    writeln!(out, "restore plan for {} ({}), {strategy}", p.database, p.database_config_name)?;
    let backup = p.source.manifest.as_ref().map_or_else(
        || "no manifest: only min-tables can be checked".to_owned(),
        |m| {
            format!(
                "backup {} of database {}, {}, {} tables, {}",
                m.id,
                m.database_config_name,
                m.started_at.format("%Y-%m-%d %H:%M UTC"),
                m.table_count,
                bytes(m.size_bytes)
            )
        },
    );
    writeln!(out, "  source   {} ({backup})", p.source.location)?;
    for (i, step) in p.steps.iter().enumerate() {
        writeln!(out, "  {:>2}. {step}", i + 1)?;
    }
    if dry_run {
        writeln!(out, "dry run: nothing was changed")?;
    }
    Ok(())
}

pub(crate) fn restore_report(out: &mut dyn Write, r: &RestoreReport) -> Result<()> {
    writeln!(out, "restore of {}: {}", r.plan.database, if r.healthy { "ok" } else { "restored, but NOT healthy" })?;
    writeln!(out, "  source       {}", r.plan.source.location)?;
    writeln!(
        out,
        "  tables       {} (at least {} required), all counts match",
        r.check.table_count, r.check.min_tables
    )?;
    for t in r.check.tables.iter().filter(|t| t.exact) {
        writeln!(out, "               {} {} rows", t.table, t.found.unwrap_or(0))?;
    }
    if let Some(k) = &r.plan.keep_database {
        writeln!(out, "  previous     kept as {k} (drop it when satisfied)")?;
    }
    if !r.restarted.is_empty() {
        writeln!(out, "  restarted    {}", r.restarted.join(", "))?;
    }
    for h in &r.health {
        writeln!(out, "  health       {} {}: {}", if h.ok { "ok    " } else { "FAILED" }, h.check, h.detail)?;
    }
    if r.data_sessions > 1 {
        writeln!(out, "  loaded       table data over {} psql sessions at once", r.data_sessions)?;
    }
    writeln!(out, "  duration     {:.1} s", r.duration_seconds)?;
    Ok(())
}

pub(crate) fn drill(out: &mut dyn Write, r: &DrillReport) -> Result<()> {
    writeln!(out, "dr-test: {}", if r.passed { "PASSED" } else { "FAILED" })?;
    writeln!(
        out,
        "  source       {}{}",
        r.source,
        r.backup_id.as_ref().map(|i| format!(" ({i})")).unwrap_or_default()
    )?;
    match (&r.cluster, r.backend) {
        (Some(c), _) => {
            let port = if c.port == 0 { String::new() } else { format!(" on 127.0.0.1:{}", c.port) };
            let user = c.run_as.as_ref().map(|u| format!(", as {u}")).unwrap_or_default();
            writeln!(
                out,
                "  backend      local cluster{}",
                r.backend_note.as_ref().map(|n| format!(" (auto: {n})")).unwrap_or_default()
            )?;
            writeln!(out, "  server       {} ({}){port}{user}", c.version, c.programs)?;
            writeln!(out, "  cluster      {} (stopped, removed)", c.data_dir)?;
        }
        (None, ops_backup::DrillBackend::Local) => writeln!(out, "  backend      local cluster")?,
        (None, _) => {
            writeln!(out, "  backend      container")?;
            let id = r.container.as_deref().map(|c| format!(" {}", &c[..c.len().min(12)])).unwrap_or_default();
            writeln!(out, "  server       {} (throwaway container{id}, removed)", r.image)?;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let rto_ok = r.rto_seconds <= r.rto_target_secs as f64;
    let sessions = if r.data_sessions > 1 { format!(" over {} psql sessions", r.data_sessions) } else { String::new() };
    writeln!(
        out,
        "  RTO          {:.1} s to a verified copy (restore {:.1} s{sessions}), target {} s: {}",
        r.rto_seconds,
        r.restore_seconds,
        r.rto_target_secs,
        if rto_ok { "ok" } else { "MISSED" }
    )?;
    match r.backup_age_seconds {
        #[allow(clippy::cast_precision_loss)]
        Some(age) => writeln!(
            out,
            "  RPO          newest backup {:.0} s old, target {} s: {}",
            age,
            r.rpo_target_secs,
            if age <= r.rpo_target_secs as f64 { "ok" } else { "MISSED" }
        )?,
        None => writeln!(out, "  RPO          no complete backup")?,
    }
    if let Some(c) = &r.check {
        writeln!(out, "  tables       {} restored (at least {} required)", c.table_count, c.min_tables)?;
        writeln!(out, "    {:<40} {:>12} {:>12}", "TABLE", "EXPECTED", "FOUND")?;
        for t in &c.tables {
            let expected =
                t.expected.map_or_else(|| "-".to_owned(), |e| if t.exact { e.to_string() } else { format!("~{e}") });
            let found = t.found.map_or_else(|| "missing".to_owned(), |f| f.to_string());
            writeln!(out, "  {} {:<40} {:>12} {:>12}", if t.ok { " " } else { "!" }, t.table, expected, found)?;
        }
    }
    for p in &r.problems {
        writeln!(out, "  problem      {p}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ops_backup::DrillBackend;
    use ops_core::adapters::local_cluster::ClusterInfo;

    use super::*;

    fn report() -> DrillReport {
        DrillReport {
            passed: true,
            problems: Vec::new(),
            source: "/b/app_20260101T020000Z.sql.gz".to_owned(),
            backup_id: Some("app_20260101T020000Z".to_owned()),
            image: "postgres:15".to_owned(),
            container: Some("0123456789abcdef0123".to_owned()),
            backend: DrillBackend::Container,
            backend_note: None,
            cluster: None,
            check: None,
            rto_seconds: 12.0,
            restore_seconds: 9.0,
            data_sessions: 2,
            backup_age_seconds: Some(60.0),
            rto_target_secs: 7200,
            rpo_target_secs: 86_400,
            started_at: Utc::now(),
            notifications: Vec::new(),
        }
    }

    fn text(r: &DrillReport) -> String {
        let mut out = Vec::new();
        drill(&mut out, r).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn drill_names_its_backend_and_server() {
        let t = text(&report());
        assert!(t.contains("  backend      container\n"), "{t}");
        assert!(t.contains("  server       postgres:15 (throwaway container 0123456789ab, removed)\n"), "{t}");

        let r = DrillReport {
            image: "local:/usr/lib/postgresql/15/bin".to_owned(),
            container: None,
            backend: DrillBackend::Local,
            backend_note: Some("no container runtime is configured".to_owned()),
            cluster: Some(ClusterInfo {
                data_dir: "/tmp/ops-drill-1-ab/data".to_owned(),
                port: 40000,
                programs: "/usr/lib/postgresql/15/bin".to_owned(),
                version: "PostgreSQL 15.18".to_owned(),
                run_as: Some("postgres".to_owned()),
            }),
            ..report()
        };
        let t = text(&r);
        assert!(t.contains("  backend      local cluster (auto: no container runtime is configured)\n"), "{t}");
        assert!(
            t.contains(
                "  server       PostgreSQL 15.18 (/usr/lib/postgresql/15/bin) on 127.0.0.1:40000, as postgres\n"
            ),
            "{t}"
        );
        assert!(t.contains("  cluster      /tmp/ops-drill-1-ab/data (stopped, removed)\n"), "{t}");
    }
}
