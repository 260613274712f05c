//! The markdown report: facts about the machine and the data, one row per case, verdicts.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) struct Facts {
    pub(super) date: String,
    pub(super) cores: usize,
    pub(super) mem_gib: f64,
    pub(super) pg_dump: String,
    pub(super) revision: String,
    pub(super) dump_bytes: u64,
    pub(super) counts: String,
    /// Percent of one core busy just before the timed runs.
    pub(super) background: Option<f64>,
}

pub(super) fn mem_total_gib() -> f64 {
    let text = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    kib as f64 / 1024.0 / 1024.0
}

pub(super) fn verdict(value: f64, target: f64, at_most: bool) -> &'static str {
    let ok = if at_most { value <= target } else { value >= target };
    if ok { "PASS" } else { "MISS" }
}

/// A markdown table cell: `|` escaped (also inside code spans, as GFM requires).
pub(super) fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

pub(super) fn case_row(out: &mut String, case: &Case, raw: Option<f64>) {
    let runs: Vec<String> = case.samples.iter().map(|s| format!("{:.1}", s.secs)).collect();
    let median = case.median().map_or_else(|| "–".to_owned(), |m| format!("{m:.1} s"));
    let vs_raw = match (case.median(), raw) {
        (Some(m), Some(r)) if r > 0.0 => format!("{:.2}×", m / r),
        _ => "–".to_owned(),
    };
    let size = case.size().map_or_else(|| "–".to_owned(), mb);
    let cpu = |f: fn(&Sample) -> Option<f64>| case.median_of(f).map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"));
    let cpus = [cpu(|s| s.client_cpu), cpu(|s| s.pg_cpu), cpu(|s| s.s3_cpu), cpu(|s| s.rest_cpu)].join(" / ");
    let rss = case.max_rss_mib().map_or_else(|| "–".to_owned(), |m| format!("{m:.0} MiB"));
    let _ = writeln!(
        out,
        "| {} | {median} | {} | {vs_raw} | {size} | {cpus} | {rss} |",
        cell(&case.label),
        runs.join(" / ")
    );
}

pub(super) fn render(f: &Facts, cases: &[(Kind, Case)], restore: &RestoreOutcome) -> String {
    let get = |k: Kind| cases.iter().find(|(kind, _)| *kind == k).map(|(_, c)| c);
    let med = |k: Kind| get(k).and_then(Case::median);
    let size = |k: Kind| get(k).and_then(Case::size);
    let raw = med(Kind::Raw);
    let mut out = String::new();
    let _ = writeln!(out, "## Backup benchmark ({})\n", f.date);
    let _ = writeln!(
        out,
        "Machine: {} cores, {:.0} GiB RAM, {} of one core busy before the timed runs; {}; ops {}. Dataset: plain \
         dump {} (customers/orders/events rows {}), gzip -6 ratio {}. Times are medians of the runs shown, after \
         one warm-up `pg_dump`. CPU: median seconds of CPU time of the client programs (opsctl with its pg_dump or \
         psql), the PostgreSQL and S3 containers, and the rest of the machine (docker-proxy forwarding the ports, \
         and anything else running).\n",
        f.cores,
        f.mem_gib,
        f.background.map_or_else(|| "?".to_owned(), |p| format!("{p:.0} %")),
        f.pg_dump,
        f.revision,
        mb(f.dump_bytes),
        f.counts,
        size(Kind::RunbookGzip).map_or_else(|| "?".into(), |g| format!("{:.3}", g as f64 / f.dump_bytes as f64)),
    );
    let _ = writeln!(
        out,
        "| case | median | runs (s) | vs `pg_dump > file` | output | CPU s: client / PostgreSQL / S3 / rest | peak RSS |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for (_, case) in cases {
        case_row(&mut out, case, raw);
    }
    match restore {
        RestoreOutcome::Measured(r) => {
            for case in [&r.psql, &r.in_place, &r.safe_swap, &r.drill, &r.verify] {
                case_row(&mut out, case, None);
            }
            for s3 in &r.s3 {
                case_row(&mut out, &s3.seeds, None);
                case_row(&mut out, &s3.ours, None);
            }
        }
        RestoreOutcome::Failed { psql, error } => {
            case_row(&mut out, psql, None);
            let _ = writeln!(out, "| opsctl restore or dr-test | failed: {} | | | | | |", cell(error));
        }
        RestoreOutcome::Unavailable => {
            let _ = writeln!(out, "| restore | not measured (opsctl restore not available) | | | | | |");
        }
    }

    let _ = writeln!(out, "\n| target | median | per round | goal | result |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    // A ratio of two cases: the ratio of their medians, and each round's own ratio (the spread).
    let mut target = |name: &str, a: Option<&Case>, b: Option<&Case>, goal: f64, at_most: bool| {
        let op = if at_most { "≤" } else { "≥" };
        let value =
            a.and_then(Case::median).zip(b.and_then(Case::median)).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b);
        let rounds: Vec<String> = match (a, b) {
            (Some(a), Some(b)) => {
                a.samples.iter().zip(&b.samples).map(|(x, y)| format!("{:.2}", x.secs / y.secs)).collect()
            }
            _ => Vec::new(),
        };
        let _ = match value {
            Some(v) => writeln!(
                out,
                "| {} | {v:.2}× | {} | {op} {goal}× | {} |",
                cell(name),
                rounds.join(" / "),
                verdict(v, goal, at_most)
            ),
            None => writeln!(out, "| {} | – | | {op} {goal}× | not measured |", cell(name)),
        };
    };
    let raw_case = get(Kind::Raw);
    target("gzip backup / `pg_dump > file`", get(Kind::OpsGzipFs), raw_case, TARGET_GZIP_VS_RAW, true);
    target(
        "`pg_dump | gzip` / gzip backup",
        get(Kind::RunbookGzip),
        get(Kind::OpsGzipFs),
        TARGET_SPEEDUP_VS_RUNBOOK,
        false,
    );
    target("zstd backup / `pg_dump > file`", get(Kind::OpsZstdFs), raw_case, TARGET_ZSTD_VS_RAW, true);
    for server in [S3Server::S3sFs, S3Server::Seaweed] {
        target(
            &format!("gzip backup to S3 ({}) / `pg_dump > file`", server.label()),
            get(Kind::OpsGzipS3(server)),
            raw_case,
            TARGET_S3_VS_RAW,
            true,
        );
        target(
            &format!("`pg_dump | gzip | aws s3 cp -` / gzip backup to S3 ({})", server.label()),
            get(Kind::SeedsGzipS3(server)),
            get(Kind::OpsGzipS3(server)),
            TARGET_SPEEDUP_VS_SEEDS_S3,
            false,
        );
    }
    if let RestoreOutcome::Measured(r) = restore {
        target(
            "restore (safe swap, the default) / `gunzip -c | psql`",
            Some(&r.safe_swap),
            Some(&r.psql),
            TARGET_RESTORE_VS_PSQL,
            true,
        );
        target(
            "restore (`--in-place`) / `gunzip -c | psql`",
            Some(&r.in_place),
            Some(&r.psql),
            TARGET_RESTORE_VS_PSQL,
            true,
        );
        for s3 in &r.s3 {
            target(
                &format!("restore from S3 ({}) / `aws s3 cp - | gunzip | psql`", s3.server.label()),
                Some(&s3.ours),
                Some(&s3.seeds),
                TARGET_RESTORE_S3_VS_SEEDS,
                true,
            );
        }
    }
    let mut rss_cases: Vec<&Case> =
        [Kind::OpsGzipFs, Kind::OpsZstdFs, Kind::OpsGzipS3(S3Server::S3sFs), Kind::OpsGzipS3(S3Server::Seaweed)]
            .iter()
            .filter_map(|k| get(*k))
            .collect();
    if let RestoreOutcome::Measured(r) = restore {
        rss_cases.extend([&r.in_place, &r.safe_swap, &r.drill, &r.verify]);
        rss_cases.extend(r.s3.iter().map(|s| &s.ours));
    }
    let rss = rss_cases
        .iter()
        .filter_map(|c| c.max_rss_mib())
        .fold(None, |acc: Option<f64>, v| Some(acc.map_or(v, |a| a.max(v))));
    let _ = match rss {
        Some(v) => writeln!(
            out,
            "| peak RSS of any `opsctl` backup or restore | {v:.1} MiB | | ≤ {TARGET_RSS_MIB} MiB | {} |",
            verdict(v, TARGET_RSS_MIB, true)
        ),
        None => writeln!(
            out,
            "| peak RSS of any `opsctl` backup or restore | – | | ≤ {TARGET_RSS_MIB} MiB | not measured |"
        ),
    };

    // Where opsctl's time went, from its own report.
    let phased: Vec<&Case> = cases.iter().map(|(_, c)| c).filter(|c| !c.phase_medians().is_empty()).collect();
    if !phased.is_empty() {
        let _ = writeln!(out, "\n| opsctl case | phases (median s, from its JSON report) |");
        let _ = writeln!(out, "|---|---|");
        for c in phased {
            let phases: Vec<String> = c.phase_medians().iter().map(|(n, v)| format!("{n} {v:.2}")).collect();
            let _ = writeln!(out, "| {} | {} |", cell(&c.label), phases.join(", "));
        }
    }

    if let RestoreOutcome::Measured(_) = restore {
        let _ = writeln!(
            out,
            "\nThe restores read the last round's gzip backup, verified once before them (`opsctl backup verify`, as \
             a schedule would): the in-place restore checks that copy's SHA-256 alone before dropping anything, \
             instead of decompressing it twice (the `backup verify` row is what it costs when no verification \
             vouches for the copy). Restores from S3 read an object `opsctl backup run` wrote to that server."
        );
    }
    if let RestoreOutcome::Measured(r) = restore {
        let med = |v: &[f64]| median(v.to_vec()).map_or_else(|| "–".to_owned(), |m| format!("{m:.1} s"));
        let _ = writeln!(
            out,
            "\nThe drill (`dr-test --backend local`: initdb, start, restore, count every table, stop, remove) took {} \
             in all; its own report: restore {}, RTO {}. Its cluster runs on the host, so its CPU time is in \
             \"rest\", and it restores into a fresh local cluster, not into the PostgreSQL container.",
            r.drill.median().map_or_else(|| "–".to_owned(), |m| format!("{m:.1} s")),
            med(&r.drill_restore),
            med(&r.drill_rto),
        );
    }

    let _ = writeln!(out, "\n| compressed size | ours | CLI reference | ours / reference |");
    let _ = writeln!(out, "|---|---|---|---|");
    for (name, ours, reference, ref_name) in [
        ("gzip", size(Kind::OpsGzipFs), size(Kind::RunbookGzip), "gzip -6"),
        ("zstd", size(Kind::OpsZstdFs), size(Kind::RunbookZstd), "zstd -3"),
    ] {
        if let (Some(o), Some(r)) = (ours, reference) {
            let _ = writeln!(
                out,
                "| {name} (opsctl default level) | {} ({:.3} of raw) | {} ({:.3}, {ref_name}) | {:.3} |",
                mb(o),
                o as f64 / f.dump_bytes as f64,
                mb(r),
                r as f64 / f.dump_bytes as f64,
                o as f64 / r as f64
            );
        }
    }
    out
}
