//! `cargo xtask bench backup`: the backup pipeline measured against the runbooks' own commands,
//! in the same run, on the same data.
//!
//! Steps: build `opsctl` in release mode (`target/bench`), start throwaway PostgreSQL 15 and
//! s3s-fs containers, check the bucket with a first small backup, generate a realistic dataset
//! server-side (plain dump of at least `--min-dump-mb` MB, gzip ratio about 0.35), warm up with
//! one `pg_dump`, then time `--runs` rounds of `pg_dump > file`, `pg_dump | gzip > file`,
//! `pg_dump | zstd -T2 > file` and `opsctl backup run` (gzip and zstd to a directory, gzip to
//! S3), each case once per round so a drift of the machine hits every case alike, and finally the
//! restore: `gunzip -c | psql` versus `opsctl restore latest --in-place` and `opsctl restore
//! latest` (the default safe swap) into fresh databases, a DR drill on a local cluster (`opsctl
//! dr-test latest --backend local`), and `opsctl backup verify` (the pass an in-place restore
//! makes first). Medians, ratios against their
//! targets (PASS/MISS) and sizes are printed as a markdown table, also written to
//! `target/bench/backup.md`; every command's stderr goes to `target/bench/backup.log` and
//! opsctl's last JSON report of each case to `target/bench/opsctl-*.json`.
//!
//! Every program is started with an argument array (no shell); pipes connect the processes'
//! stdio directly. Each run also records where the CPU went: the client programs under
//! `/usr/bin/time -f "%M %U %S"` (also opsctl's peak RSS; it includes the children opsctl
//! waited for, but `pg_dump` and `psql` stay far smaller), the containers from their cgroup, and
//! the rest of the machine from `/proc/stat` (docker-proxy, or another workload: noise).
//! Containers and temporary files are removed by a guard on every exit path (Ctrl-C excepted:
//! the containers carry the label `ops-bench`, see `docker ps -f label=ops-bench`).

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::bench::{PG_DB, PG_PASSWORD};
use crate::cmd::{self, median};
use crate::test_env::{POSTGRES_IMAGE, S3_IMAGE};

/// Throwaway credentials of the throwaway S3 server (bound to 127.0.0.1 only).
const S3_ACCESS_KEY: &str = "opsaccess";
const S3_SECRET_KEY: &str = "opssecret1234";
const BUCKET: &str = "bench";
const TIME: &str = "/usr/bin/time";

/// Targets: gzip backup / raw pg_dump, pg_dump | gzip / gzip backup, zstd backup / raw, gzip
/// backup to S3 / raw, the seeds' `pg_dump | gzip | aws s3 cp -` / ours to S3, peak RSS (MiB),
/// restore / gunzip -c | psql.
const TARGET_GZIP_VS_RAW: f64 = 1.3;
const TARGET_SPEEDUP_VS_RUNBOOK: f64 = 3.0;
const TARGET_ZSTD_VS_RAW: f64 = 1.1;
const TARGET_S3_VS_RAW: f64 = 1.3;
const TARGET_SPEEDUP_VS_SEEDS_S3: f64 = 3.0;
const TARGET_RSS_MIB: f64 = 64.0;
const TARGET_RESTORE_VS_PSQL: f64 = 1.0;
const TARGET_RESTORE_S3_VS_SEEDS: f64 = 0.9;

/// Bytes per row in a plain dump of each generated table (measured), to size the dataset.
const CUSTOMER_ROW_BYTES: f64 = 202.0;
const ORDER_ROW_BYTES: f64 = 271.0;
const EVENT_ROW_BYTES: f64 = 247.0;

/// Options of `cargo xtask bench backup`.
#[derive(Debug)]
pub struct Options {
    /// Minimum size of the plain dump, in MB (10^6 bytes).
    pub min_dump_mb: u64,
    /// Timed runs of each case (the median is reported).
    pub runs: usize,
    /// Only the restore cases (and the one gzip backup they restore from).
    pub restore_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { min_dump_mb: 600, runs: 3, restore_only: false }
    }
}

mod containers;
mod dataset;
mod opsctl;
mod proc;
mod report;
mod restore;
mod timing;

#[allow(clippy::wildcard_imports)]
use self::{containers::*, dataset::*, opsctl::*, proc::*, report::*, restore::*, timing::*};

// ---------------------------------------------------------------------------------------------
// the run

/// Prints a step's start and end with its duration.
pub(super) fn step<T>(name: &str, f: impl FnOnce() -> Result<(T, String)>) -> Result<T> {
    println!("bench: ==> {name}");
    let start = Instant::now();
    let (value, note) = f().with_context(|| format!("bench step `{name}` failed"))?;
    println!("bench: <== {name}: {note} ({})", cmd::secs(start.elapsed()));
    Ok(value)
}

pub(super) fn require_tools() -> Result<()> {
    let missing: Vec<&str> =
        ["docker", "pg_dump", "psql", "pg_isready", "gzip", "zstd"].into_iter().filter(|p| !cmd::exists(p)).collect();
    if !missing.is_empty() {
        bail!(
            "missing programs: {} (apt-get install -y zstd time postgresql-client-15; docker: cargo xtask test-env)",
            missing.join(", ")
        );
    }
    // The drill case runs `opsctl dr-test --backend local`: initdb and pg_ctl of PostgreSQL 15.
    if !Path::new("/usr/lib/postgresql/15/bin/initdb").is_file() && !cmd::exists("initdb") {
        bail!("initdb 15 is missing: the drill case needs the PostgreSQL 15 server (cargo xtask test-env installs it)");
    }
    if !Path::new(TIME).is_file() {
        bail!("{TIME} is missing (apt-get install -y time): it measures opsctl's peak RSS");
    }
    for image in [POSTGRES_IMAGE, S3_IMAGE] {
        if !cmd::succeeds(docker().args(["image", "inspect", image])) {
            bail!("image {image} is missing: run `cargo xtask test-env` first");
        }
    }
    Ok(())
}

pub(super) fn first_line(c: &mut Command) -> String {
    cmd::capture(c).map(|s| s.lines().next().unwrap_or_default().trim().to_owned()).unwrap_or_else(|_| "?".into())
}

/// `cargo xtask bench backup`.
pub fn backup(opts: &Options) -> Result<()> {
    if opts.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let total = Instant::now();
    let root = crate::repo_root();
    let bench_dir = root.join("target").join("bench");
    let work = bench_dir.join(format!("run-{}", std::process::id()));
    let mut guard = Guard::default();
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    guard.dirs.push(work.clone());
    let log = bench_dir.join("backup.log");
    fs::write(&log, "").with_context(|| format!("creating {}", log.display()))?;
    println!("bench: log of every command: {}", log.display());

    step("tools", || {
        require_tools()?;
        Ok(((), first_line(Command::new("pg_dump").arg("--version"))))
    })?;

    let opsctl = step("build opsctl (release, target/bench)", || {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        cmd::streamed(Command::new(cargo).current_dir(&root).env("CARGO_TARGET_DIR", &bench_dir).args([
            "build",
            "--release",
            "-p",
            "ops-cli",
        ]))?;
        let bin = bench_dir.join("release").join("opsctl");
        let version = first_line(Command::new(&bin).arg("--version"));
        Ok((bin, version))
    })?;

    let (pg, pg_id) = step("start PostgreSQL", || start_postgres(&mut guard))?;
    let (s3_id, s3_addr) = step("start S3 (s3s-fs)", || {
        let (id, addr) = start_s3(&mut guard)?;
        let note = format!("{addr}, bucket {BUCKET}");
        Ok(((id, addr), note))
    })?;
    let (aws, _) = step("AWS CLI (PyPI, target/bench/awscli)", || {
        let (bin, version) = ensure_awscli(&bench_dir)?;
        Ok(((bin, ()), version))
    })?;
    let seaweed_dir = work.join("seaweed");
    let (seaweed_port, seaweed_pid) = step("start S3 (SeaweedFS)", || start_seaweed(&mut guard, &seaweed_dir, &aws))?;
    let ticks_per_sec = cmd::capture(Command::new("getconf").arg("CLK_TCK"))
        .ok()
        .and_then(|t| t.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    let ctx = Ctx {
        opsctl,
        work: work.clone(),
        keep: bench_dir.clone(),
        log: log.clone(),
        pg,
        pg_id,
        s3_id,
        s3_addr,
        seaweed_port,
        seaweed_pid,
        aws,
        ticks_per_sec,
    };

    step("schema", || {
        let mut c = ctx.psql_file(SCHEMA_SQL, "schema.sql", &[])?;
        run_into(&mut c, Stdio::from(log_file(&log)?), &log)?;
        Ok(((), "customers, orders, events".to_owned()))
    })?;

    step("smoke: opsctl backup run to each S3 server (bucket check)", || {
        let mut notes = Vec::new();
        for server in [S3Server::S3sFs, S3Server::Seaweed] {
            let config = ctx.write_config("s3-smoke.toml", PG_DB, &ctx.s3_storage(server, "smoke"))?;
            let (sample, json) = ctx.run_opsctl("smoke", &config, &["backup", "run"])?;
            let size = json_u64(&json, "size_bytes").context("no size_bytes in opsctl's JSON report")?;
            ctx.s3_clear(server, "smoke")?;
            notes.push(format!("{}: {size} bytes in {:.1} s", server.label(), sample.secs));
        }
        Ok(((), format!("uploaded and verified: {}", notes.join(", "))))
    })?;

    // Sizing: aim 10 % above the minimum; top up with events if the dump still falls short.
    let rows = |bytes: f64, share: f64, per_row: f64| ((bytes * share / per_row) as u64).max(1000);
    let min_bytes = opts.min_dump_mb * 1_000_000;
    let aim = min_bytes as f64 * 1.1;
    let customers = rows(aim, 0.06, CUSTOMER_ROW_BYTES);
    let orders = rows(aim, 0.52, ORDER_ROW_BYTES);
    let mut events = rows(aim, 0.42, EVENT_ROW_BYTES);
    step("generate data (2 sessions)", || {
        let mut jobs = split(CUSTOMERS_SQL, "customers", 1, customers, 1);
        jobs.extend(split(EVENTS_SQL, "events", 1, events, 2));
        jobs.extend(split(ORDERS_SQL, "orders", 1, orders, 4));
        jobs.reverse(); // the queue pops from the end: customers first
        ctx.run_jobs(jobs, customers)?;
        let mut c = ctx.psql_file(FINISH_SQL, "finish.sql", &[])?;
        run_into(&mut c, Stdio::from(log_file(&log)?), &log)?;
        let size = ctx.pg.query(PG_DB, "SELECT pg_size_pretty(pg_database_size(current_database()))")?;
        Ok(((), format!("{customers} customers, {orders} orders, {events} events; database {size}")))
    })?;

    let mut dump_bytes = step("warm-up pg_dump > file (and size check)", || {
        let out = work.join("raw.sql");
        run_into(&mut ctx.pg.pg_dump(), Stdio::from(create(&out)?), &log)?;
        let size = file_size(&out)?;
        Ok((size, mb(size)))
    })?;
    while dump_bytes < min_bytes {
        let more = rows((min_bytes - dump_bytes) as f64 * 1.1, 1.0, EVENT_ROW_BYTES);
        let (first, last) = (events + 1, events + more);
        events = last;
        dump_bytes = step(&format!("top up: events {first}..{last}, warm-up again"), || {
            ctx.run_jobs(split(EVENTS_SQL, "events", first, last, 2), customers)?;
            cmd::capture(ctx.pg.psql(PG_DB).args(["-c", "ANALYZE events"]))?;
            let out = work.join("raw.sql");
            run_into(&mut ctx.pg.pg_dump(), Stdio::from(create(&out)?), &log)?;
            let size = file_size(&out)?;
            Ok((size, mb(size)))
        })?;
    }
    let counts = ctx.pg.query(PG_DB, COUNT_SQL)?;
    let background = step("idle check (5 s of /proc/stat)", || {
        let before = machine_busy_secs(ctx.ticks_per_sec);
        std::thread::sleep(Duration::from_secs(5));
        let after = machine_busy_secs(ctx.ticks_per_sec);
        let busy = before.zip(after).map(|(b, a)| (a - b) / 5.0 * 100.0);
        let note = match busy {
            Some(p) if p > 20.0 => {
                format!("WARNING: the machine is busy ({p:.0} % of one core in use): figures will be noisy")
            }
            Some(p) => format!("{p:.0} % of one core in use"),
            None => "unknown (/proc/stat unreadable)".to_owned(),
        };
        Ok((busy, note))
    })?;

    // The restores read the gzip backup of the last round: with --restore-only that is the one case.
    let kinds: &[Kind] = if opts.restore_only { &[Kind::OpsGzipFs] } else { &Kind::ALL };
    let mut cases: Vec<(Kind, Case)> = kinds.iter().map(|k| (*k, Case::new(&k.label()))).collect();
    for round in 1..=opts.runs {
        for (kind, case) in &mut cases {
            let sample = step(&format!("round {round}/{}: {}", opts.runs, case.label), || {
                let s = ctx.measure(*kind, round)?;
                let note = s.note();
                Ok((s, note))
            })?;
            case.samples.push(sample);
        }
    }

    let restore = step("restore", || {
        let r = measure_restore(&ctx, opts.runs, &counts)?;
        let note = match &r {
            RestoreOutcome::Measured(_) => "measured".to_owned(),
            RestoreOutcome::Unavailable => "opsctl restore not available".to_owned(),
            RestoreOutcome::Failed { error, .. } => format!("opsctl restore FAILED: {error}"),
        };
        Ok((r, note))
    })?;

    let facts = Facts {
        date: first_line(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        mem_gib: mem_total_gib(),
        pg_dump: first_line(Command::new("pg_dump").arg("--version")),
        revision: first_line(Command::new("git").current_dir(&root).args(["describe", "--always", "--dirty"])),
        dump_bytes,
        counts,
        background,
    };
    let table = render(&facts, &cases, &restore);
    println!("\n{table}");
    let md = bench_dir.join("backup.md");
    fs::write(&md, &table).with_context(|| format!("writing {}", md.display()))?;
    println!("bench: written to {} in {}", md.display(), cmd::secs(total.elapsed()));
    drop(guard);
    if let RestoreOutcome::Failed { error, .. } = restore {
        bail!("opsctl restore failed: {error}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn json_numbers() {
        let json = "{\"id\": \"x\", \"manifest\": {\"size_bytes\": 1234,\n \"raw_size_bytes\": 9}}";
        assert_eq!(json_u64(json, "size_bytes"), Some(1234));
        assert_eq!(json_u64(json, "raw_size_bytes"), Some(9));
        assert_eq!(json_u64(json, "missing"), None);
        let json = "{\"rto_seconds\": 12.5,\n \"restore_seconds\":3, \"x\": -1e-3}";
        assert_eq!(json_f64(json, "rto_seconds"), Some(12.5));
        assert_eq!(json_f64(json, "restore_seconds"), Some(3.0));
        assert_eq!(json_f64(json, "x"), Some(-0.001));
        assert_eq!(json_f64(json, "missing"), None);
    }

    #[test]
    fn opsctl_phases_and_strings() {
        let json = r#"{"dump_key": "bench_x.sql.gz", "phases": [{"name": "prepare", "seconds": 0.25},
            {"name": "dump", "seconds": 4.5}], "other": [{"name": "no"}]}"#;
        assert_eq!(json_str(json, "dump_key").as_deref(), Some("bench_x.sql.gz"));
        assert_eq!(json_phases(json), vec![("prepare".to_owned(), 0.25), ("dump".to_owned(), 4.5)]);
        assert!(json_phases("{}").is_empty());
    }

    #[test]
    fn time_output() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("time.txt");
        fs::write(&path, "Command exited with non-zero status 1\n20480 1.50 0.25\n").unwrap();
        let u = read_usage(&path).unwrap();
        assert_eq!(u.max_rss_kib, 20480);
        assert!((u.cpu_secs - 1.75).abs() < 1e-9);
        fs::write(&path, "garbage\n").unwrap();
        assert!(read_usage(&path).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn toml_strings() {
        assert_eq!(toml_str(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn splits_cover_the_range() {
        let jobs = split("", "t", 1, 10, 3);
        let ranges: Vec<(u64, u64)> = jobs.iter().map(|j| (j.first, j.last)).collect();
        assert_eq!(ranges, vec![(1, 4), (5, 8), (9, 10)]);
        assert_eq!(split("", "t", 5, 5, 4).len(), 1);
    }
}
