//! `cargo xtask bench perf`: the PostgreSQL section of `opsctl perf analyze` on a database with
//! many tables, to show it stays fast and sends a fixed number of catalog queries.
//!
//! Steps: build `opsctl` in release mode (`target/bench`), start a throwaway PostgreSQL 15
//! container (label `ops-bench`, port on 127.0.0.1 only, `pg_stat_statements` preloaded by the
//! image), run `opsctl perf analyze --section pg --json --config FILE` once on the empty database
//! (the query count to compare with), generate `--tables` tables (default 1,000) with a primary
//! key and four more indexes each (5,000 indexes), ten rows each, server-side in one `DO` block,
//! run two distinct statements per table so `pg_stat_statements` has thousands of entries, then
//! time `--runs` rounds (default 5, after a warm-up) of the same command.
//!
//! Targets: the median wall time of the whole `opsctl` process under 2 s, and as many queries
//! on 1,000 tables as on none (and no more than [`MAX_QUERIES`]). Every program is started with
//! an argument array (no shell; SQL goes to `psql` inside the container through its stdin). The
//! markdown table is printed and written to `target/bench/perf.md`; opsctl's last JSON report is
//! kept as `target/bench/opsctl-perf.json`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::{PG_DB, PG_PASSWORD};
use crate::cmd;
use crate::test_env::POSTGRES_IMAGE;

/// Target: median wall time of `opsctl perf analyze --section pg`, seconds.
const TARGET_SECS: f64 = 2.0;
/// Catalog queries the section may send, whatever the number of tables.
const MAX_QUERIES: u64 = 8;
/// Indexes per generated table (the primary key and four more).
const INDEXES_PER_TABLE: usize = 5;

/// Options of `cargo xtask bench perf`.
#[derive(Debug)]
pub struct Options {
    /// Timed rounds.
    pub runs: usize,
    /// Generated tables (each with 5 indexes).
    pub tables: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { runs: 5, tables: 1000 }
    }
}

/// Removes the container on every exit path (Ctrl-C excepted: see `docker ps -f label=ops-bench`).
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let ok = cmd::succeeds(Command::new("docker").args(["rm", "-f", "-v", &self.0]));
        let short = &self.0[..self.0.len().min(12)];
        println!("bench: cleanup: docker rm -f {short}: {}", if ok { "ok" } else { "FAILED" });
    }
}

impl Container {
    /// `psql` inside the container as the local superuser, `sql` on its stdin.
    fn psql(&self, sql: &str) -> Result<String> {
        let mut child = Command::new("docker")
            .args(["exec", "-i", &self.0, "psql", "-U", "postgres", "-d", PG_DB, "-X", "-q", "-A", "-t"])
            .args(["-v", "ON_ERROR_STOP=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("docker exec psql")?;
        let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin for psql"))?;
        stdin.write_all(sql.as_bytes()).context("feeding psql")?;
        drop(stdin);
        let out = child.wait_with_output().context("waiting for psql")?;
        if !out.status.success() {
            bail!("psql failed ({}): {}", out.status, cmd::tail(&String::from_utf8_lossy(&out.stderr), 10));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

fn start_postgres() -> Result<(Container, u16)> {
    let args = super::postgres_args(&[], &["max_locks_per_transaction=256"]);
    let id = super::docker_run(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let container = Container(id);
    let port = super::host_port(&container.0, "5432/tcp")?;
    let ready = cmd::wait_until(Duration::from_secs(90), Duration::from_millis(250), || {
        cmd::succeeds(Command::new("docker").args(["exec", &container.0, "pg_isready", "-q", "-d", PG_DB]))
            && container.psql("SELECT 1").is_ok()
    });
    if !ready {
        let logs =
            cmd::capture(Command::new("docker").args(["logs", "--tail", "20", &container.0])).unwrap_or_default();
        bail!("PostgreSQL did not become ready in 90 s; last logs:\n{logs}");
    }
    Ok((container, port))
}

/// `tables` tables `bench_0001`… with a serial primary key and four more indexes each, ten rows
/// each; committed every 100 tables so the locks of one transaction stay few.
fn schema_sql(tables: usize) -> String {
    format!(
        "DO $$
BEGIN
  FOR i IN 1..{tables} LOOP
    EXECUTE format('CREATE TABLE bench_%s (id serial PRIMARY KEY, c1 int, c2 int, c3 text, c4 timestamptz, c5 int)',
                   lpad(i::text, 4, '0'));
    EXECUTE format('CREATE INDEX ON bench_%1$s (c1); CREATE INDEX ON bench_%1$s (c2); '
                   'CREATE INDEX ON bench_%1$s (c3); CREATE INDEX ON bench_%1$s (c4, c5)', lpad(i::text, 4, '0'));
    EXECUTE format('INSERT INTO bench_%s (c1, c2, c3, c4, c5) '
                   'SELECT g, g, md5(g::text), now(), g FROM generate_series(1, 10) g', lpad(i::text, 4, '0'));
    IF i % 100 = 0 THEN
      COMMIT;
    END IF;
  END LOOP;
END $$;
ANALYZE;
"
    )
}

/// Two distinct statements per table, for `pg_stat_statements`.
fn workload_sql(tables: usize) -> String {
    let mut sql = String::new();
    for i in 1..=tables {
        let _ = writeln!(sql, "SELECT count(*) FROM bench_{i:04} WHERE c1 = 1;");
        let _ = writeln!(sql, "SELECT c3 FROM bench_{i:04} WHERE c2 = 2;");
    }
    sql
}

/// The first `"key": <integer>` in a JSON text (xtask has no JSON parser).
fn json_u64(json: &str, key: &str) -> Option<u64> {
    let at = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// One run of `opsctl perf analyze --section pg --json --config FILE`: wall time, the section's
/// own duration and query count, and the JSON. Exit codes 0–2 are verdicts, not failures.
fn analyze(opsctl: &Path, config: &Path) -> Result<(f64, u64, u64, String)> {
    let mut c = Command::new(opsctl);
    c.args(["perf", "analyze", "--section", "pg", "--json", "--config"]).arg(config);
    for var in ["OPS_CONFIG", "DATABASE_URL"] {
        c.env_remove(var);
    }
    let started = Instant::now();
    let out = c.stdin(Stdio::null()).stderr(Stdio::piped()).output().with_context(|| cmd::display(&c))?;
    let secs = started.elapsed().as_secs_f64();
    let json = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.code().is_none_or(|code| code > 3) || !json.contains("\"sections\"") {
        bail!(
            "{} failed ({}): {}{}",
            cmd::display(&c),
            out.status,
            cmd::tail(&String::from_utf8_lossy(&out.stderr), 5),
            cmd::tail(&json, 5)
        );
    }
    // The section's fields: after `"sections"`, so the report's own `duration_ms` is skipped.
    let section = &json[json.find("\"sections\"").unwrap_or(0)..];
    if section.contains("\"error\"") {
        bail!("the pg section could not run: {}", cmd::tail(&json, 10));
    }
    let queries = json_u64(section, "queries").ok_or_else(|| anyhow!("no \"queries\" in the report: {json}"))?;
    let inner_ms = json_u64(section, "duration_ms").unwrap_or(0);
    Ok((secs, queries, inner_ms, json))
}

/// Median of a non-empty list of samples.
fn median(v: Vec<f64>) -> f64 {
    cmd::median(v).unwrap_or(f64::NAN)
}

/// `cargo xtask bench perf`.
pub fn perf(opts: &Options) -> Result<()> {
    if !cmd::exists("docker") {
        bail!("docker is needed: run `cargo xtask test-env`");
    }
    if !cmd::succeeds(Command::new("docker").args(["image", "inspect", POSTGRES_IMAGE])) {
        bail!("image {POSTGRES_IMAGE} is missing: run `cargo xtask test-env` first");
    }
    eprintln!("bench: building opsctl (release)");
    let target_dir = cmd::release_build(&["-p", "ops-cli", "--bin", "opsctl"])?;
    let opsctl = target_dir.join("release/opsctl");
    let dir: PathBuf = target_dir.join("perf");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    eprintln!("bench: starting PostgreSQL ({POSTGRES_IMAGE})");
    let (pg, port) = start_postgres()?;
    let version = pg.psql("SHOW server_version")?;
    pg.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
    let config = dir.join("ops.toml");
    std::fs::write(
        &config,
        format!("[databases.main]\nurl = \"postgres://postgres:{PG_PASSWORD}@127.0.0.1:{port}/{PG_DB}\"\n"),
    )
    .with_context(|| format!("writing {}", config.display()))?;

    let (_, empty_queries, _, _) = analyze(&opsctl, &config)?;
    eprintln!("bench: generating {} tables with {} indexes", opts.tables, opts.tables * INDEXES_PER_TABLE);
    let started = Instant::now();
    pg.psql(&schema_sql(opts.tables))?;
    pg.psql(&workload_sql(opts.tables))?;
    let counts = pg.psql(
        "SELECT (SELECT count(*) FROM pg_stat_user_tables) || ' ' || (SELECT count(*) FROM pg_stat_user_indexes) \
         || ' ' || (SELECT count(*) FROM pg_stat_statements)",
    )?;
    let counts: Vec<u64> = counts.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    let [tables, indexes, statements] = counts[..] else { bail!("unexpected counts {counts:?}") };
    eprintln!(
        "bench: {tables} tables, {indexes} indexes, {statements} statements in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    analyze(&opsctl, &config)?; // warm-up
    let (mut wall, mut inner, mut queries, mut last) = (Vec::new(), Vec::new(), Vec::new(), String::new());
    for round in 1..=opts.runs.max(1) {
        eprintln!("bench: round {round}/{}", opts.runs.max(1));
        let (secs, q, ms, json) = analyze(&opsctl, &config)?;
        wall.push(secs);
        #[allow(clippy::cast_precision_loss)]
        inner.push(ms as f64 / 1000.0);
        queries.push(q);
        last = json;
    }
    std::fs::write(target_dir.join("opsctl-perf.json"), &last).context("writing target/bench/opsctl-perf.json")?;
    let (wall_s, inner_s) = (median(wall), median(inner));
    let max_queries = queries.iter().copied().max().unwrap_or(0);
    let bounded = queries.iter().all(|q| *q == empty_queries) && max_queries <= MAX_QUERIES;
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };

    let mut md = String::new();
    writeln!(md, "| measurement | value | target | verdict |")?;
    writeln!(md, "|---|---|---|---|")?;
    writeln!(
        md,
        "| `opsctl perf analyze --section pg` on {tables} tables, {indexes} indexes, {statements} statements: wall time | {wall_s:.3} s (in-process {inner_s:.3} s) | < {TARGET_SECS} s | {} |",
        verdict(wall_s < TARGET_SECS)
    )?;
    writeln!(
        md,
        "| catalog queries sent | {max_queries} (on the empty database: {empty_queries}) | fixed, ≤ {MAX_QUERIES} | {} |",
        verdict(bounded)
    )?;
    let report = format!(
        "## cargo xtask bench perf --runs {} --tables {}\n\n{md}\nPostgreSQL {version}; {} cores; medians of {} rounds after a warm-up; wall times of whole processes.\n",
        opts.runs.max(1),
        opts.tables,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        opts.runs.max(1)
    );
    println!("{report}");
    std::fs::write(target_dir.join("perf.md"), &report).context("writing target/bench/perf.md")?;
    drop(pg);
    if wall_s >= TARGET_SECS || !bounded {
        bail!("target missed (see the table above)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_numbers_are_read_from_the_section() {
        let json = r#"{"status":"ok","duration_ms":812,"sections":[{"section":"pg","queries":6,"duration_ms":240}]}"#;
        let section = &json[json.find("\"sections\"").unwrap()..];
        assert_eq!((json_u64(section, "queries"), json_u64(section, "duration_ms")), (Some(6), Some(240)));
        assert_eq!(json_u64(json, "duration_ms"), Some(812));
    }

    #[test]
    fn generated_sql_names_every_table() {
        assert!(schema_sql(1000).contains("FOR i IN 1..1000 LOOP"));
        let w = workload_sql(2);
        assert_eq!(w.lines().count(), 4);
        assert!(w.contains("FROM bench_0002 WHERE c2 = 2;"));
    }
}
