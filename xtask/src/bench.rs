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

use crate::cmd::{self, median};
use crate::test_env::{POSTGRES_IMAGE, S3_IMAGE};

/// Throwaway credentials of the throwaway containers (bound to 127.0.0.1 only).
const PG_PASSWORD: &str = "benchpw";
const PG_DB: &str = "bench";
const S3_ACCESS_KEY: &str = "opsaccess";
const S3_SECRET_KEY: &str = "opssecret1234";
const BUCKET: &str = "bench";
const LABEL: &str = "ops-bench";
const TIME: &str = "/usr/bin/time";

/// Targets: gzip backup / raw pg_dump, pg_dump | gzip / gzip backup, zstd backup / raw, peak
/// RSS (MiB), restore / gunzip -c | psql.
const TARGET_GZIP_VS_RAW: f64 = 1.6;
const TARGET_SPEEDUP_VS_RUNBOOK: f64 = 3.0;
const TARGET_ZSTD_VS_RAW: f64 = 1.2;
const TARGET_RSS_MIB: f64 = 100.0;
const TARGET_RESTORE_VS_PSQL: f64 = 1.1;

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

// ---------------------------------------------------------------------------------------------
// dataset

/// Schema and vocabulary (letters-only pseudo-words from md5, so text has word-like entropy).
const SCHEMA_SQL: &str = r"
\set ON_ERROR_STOP 1
DROP TABLE IF EXISTS vocab, customers, orders, events;
CREATE UNLOGGED TABLE vocab AS
  SELECT i AS id, translate(substr(md5('w' || i), 1, 2 + (i % 9)), '0123456789abcdef', 'etaoinshrdlucmpy') AS w
  FROM generate_series(0, 4095) AS i;
CREATE TABLE customers (
  id bigint PRIMARY KEY, email text NOT NULL, full_name text NOT NULL, city text, country char(2),
  created_at timestamptz NOT NULL, balance numeric(12,2), active boolean, profile jsonb);
CREATE TABLE orders (
  id bigint PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL, currency char(3),
  total numeric(12,2), tax numeric(10,2), created_at timestamptz NOT NULL, shipped_at timestamptz,
  shipping_address text, note text, items jsonb);
CREATE TABLE events (
  id bigint PRIMARY KEY, occurred_at timestamptz NOT NULL, customer_id bigint, kind text NOT NULL,
  request_id uuid, ip inet, duration_ms double precision, path text, payload jsonb);
";

// In the correlated subqueries below every aggregated expression mentions the inner series
// (`+ 0 * i`): an aggregate over outer columns only would belong to the outer query.

/// Customers `:first`..`:last`.
const CUSTOMERS_SQL: &str = r"
\set ON_ERROR_STOP 1
INSERT INTO customers
SELECT g,
       a[1 + (random() * 4095)::int] || '.' || a[1 + (random() * 4095)::int] || (g % 100) || '@'
         || (ARRAY['gmail.com','yahoo.com','outlook.com','proton.me','example.org','acme.io'])[1 + (random() * 5)::int],
       initcap(a[1 + (random() * 4095)::int]) || ' ' || initcap(a[1 + (random() * 4095)::int]),
       initcap(a[1 + (power(random(), 3) * 800)::int]),
       (ARRAY['US','DE','FR','GB','NL','ES','IT','PL','SE','BR','IN','JP'])[1 + (power(random(), 2) * 11)::int],
       timestamptz '2019-01-01' + random() * interval '2000 days',
       round((random() * 10000 - 1000)::numeric, 2),
       random() < 0.85,
       jsonb_build_object(
         'tier', (ARRAY['free','pro','team','enterprise'])[1 + (power(random(), 3) * 3)::int],
         'newsletter', random() < 0.4,
         'score', round(random()::numeric * 100, 1),
         'tags', (SELECT jsonb_agg(a[1 + (power(random(), 2) * 4095)::int + 0 * i]) FROM generate_series(0, g % 4) AS i),
         'locale', (ARRAY['en-US','de-DE','fr-FR','en-GB','es-ES'])[1 + (random() * 4)::int])
FROM generate_series(:first, :last) AS g, (SELECT array_agg(w ORDER BY id) AS a FROM vocab) AS v;
";

/// Orders `:first`..`:last` of customers 1..`:customers`.
const ORDERS_SQL: &str = r"
\set ON_ERROR_STOP 1
INSERT INTO orders
SELECT g,
       1 + (random() * (:customers - 1))::bigint,
       (ARRAY['delivered','delivered','delivered','shipped','paid','pending','cancelled','refunded'])[1 + (random() * 7)::int],
       (ARRAY['USD','EUR','GBP','USD'])[1 + (random() * 3)::int],
       round((random() * 500 + 5)::numeric, 2),
       round((random() * 60)::numeric, 2),
       ts, CASE WHEN random() < 0.8 THEN ts + random() * interval '7 days' END,
       (1 + (random() * 9999)::int) || ' ' || initcap(a[1 + (power(random(), 2) * 4095)::int]) || ' '
         || (ARRAY['Street','Avenue','Road','Lane','Way'])[1 + (random() * 4)::int] || ', '
         || lpad((random() * 99999)::int::text, 5, '0') || ' ' || initcap(a[1 + (power(random(), 3) * 800)::int]),
       CASE WHEN random() < 0.6 THEN
         (SELECT string_agg(a[1 + (power(random(), 2.5) * 4095)::int + 0 * i], ' ') FROM generate_series(0, 3 + g % 17) AS i) END,
       (SELECT jsonb_agg(jsonb_build_object('sku', 'SKU-' || (1000 + (random() * 90000)::int + 0 * i),
                                            'qty', 1 + (power(random(), 3) * 5)::int,
                                            'price', round((random() * 200 + 1)::numeric, 2)))
          FROM generate_series(0, g % 3) AS i)
FROM generate_series(:first, :last) AS g,
     LATERAL (SELECT timestamptz '2021-01-01' + random() * interval '1200 days' + g * interval '0 s' AS ts) AS t,
     (SELECT array_agg(w ORDER BY id) AS a FROM vocab) AS v;
";

/// Events `:first`..`:last` (an access log: ids, uuids, IPs, paths, small JSON payloads).
const EVENTS_SQL: &str = r"
\set ON_ERROR_STOP 1
INSERT INTO events
SELECT g,
       timestamptz '2024-01-01' + g * interval '13 ms' + random() * interval '1 s',
       CASE WHEN random() < 0.9 THEN 1 + (random() * (:customers - 1))::bigint END,
       (ARRAY['page_view','page_view','page_view','api_call','api_call','login','logout','search','checkout','error'])[1 + (random() * 9)::int],
       md5(random()::text || g)::uuid,
       ('10.' || (random() * 255)::int || '.' || (random() * 255)::int || '.' || (random() * 255)::int)::inet,
       round((power(random(), 3) * 2000)::numeric, 3),
       '/' || (ARRAY['api/v1','app','static','account','search'])[1 + (random() * 4)::int] || '/'
         || a[1 + (power(random(), 2) * 4095)::int] || CASE WHEN random() < 0.5 THEN '/' || (random() * 100000)::int ELSE '' END,
       jsonb_build_object(
         'status', (ARRAY[200,200,200,200,201,204,301,304,400,401,404,500])[1 + (random() * 11)::int],
         'ua', (ARRAY['Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0','Mozilla/5.0 (Macintosh) Safari/605.1.15',
                      'Mozilla/5.0 (Windows NT 10.0) Chrome/126.0','curl/8.5.0','okhttp/4.12.0'])[1 + (random() * 4)::int],
         'query', CASE WHEN random() < 0.3 THEN a[1 + (power(random(), 2) * 4095)::int] || ' ' || a[1 + (power(random(), 2) * 4095)::int] END,
         'bytes', (power(random(), 2) * 500000)::int,
         'session', substr(md5(g::text || random()), 1, 16))
FROM generate_series(:first, :last) AS g, (SELECT array_agg(w ORDER BY id) AS a FROM vocab) AS v;
";

/// Secondary indexes (so restores rebuild indexes as real ones do), statistics.
const FINISH_SQL: &str = r"
\set ON_ERROR_STOP 1
CREATE INDEX IF NOT EXISTS orders_customer_id_idx ON orders (customer_id);
CREATE INDEX IF NOT EXISTS events_occurred_at_idx ON events (occurred_at);
ANALYZE;
";

/// Row counts checked after every restore.
const COUNT_SQL: &str = "SELECT (SELECT count(*) FROM customers) || '/' || (SELECT count(*) FROM orders) || '/' \
                         || (SELECT count(*) FROM events)";

/// One `psql -f` job of the dataset generation.
#[derive(Debug, Clone)]
struct GenJob {
    sql: &'static str,
    what: &'static str,
    first: u64,
    last: u64,
}

fn split(sql: &'static str, what: &'static str, first: u64, last: u64, parts: u64) -> Vec<GenJob> {
    let n = last + 1 - first;
    let per = n.div_ceil(parts);
    (0..parts)
        .map(|p| (first + p * per, (first + (p + 1) * per - 1).min(last)))
        .filter(|(a, b)| a <= b)
        .map(|(a, b)| GenJob { sql, what, first: a, last: b })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// guard

/// Removes the containers and directories on drop (success, error or panic).
#[derive(Debug, Default)]
struct Guard {
    containers: Vec<String>,
    dirs: Vec<PathBuf>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for id in self.containers.iter().rev() {
            let ok = cmd::succeeds(Command::new("docker").args(["rm", "-f", "-v", id]));
            let short = &id[..id.len().min(12)];
            println!("bench: cleanup: docker rm -f {short}: {}", if ok { "ok" } else { "FAILED" });
        }
        for dir in &self.dirs {
            if dir.exists() {
                match fs::remove_dir_all(dir) {
                    Ok(()) => println!("bench: cleanup: removed {}", dir.display()),
                    Err(e) => println!("bench: cleanup: could not remove {}: {e}", dir.display()),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// processes

/// Appends to the run's log file (every command's stderr goes there; errors quote its tail).
fn log_file(log: &Path) -> Result<File> {
    File::options().create(true).append(true).open(log).with_context(|| format!("opening {}", log.display()))
}

fn create(path: &Path) -> Result<File> {
    File::create(path).with_context(|| format!("creating {}", path.display()))
}

fn failed(what: &str, status: std::process::ExitStatus, log: &Path) -> anyhow::Error {
    anyhow!("{what} failed ({status})\n--- tail of {} ---\n{}", log.display(), cmd::tail_file(log, 20))
}

/// Runs `cmd` with stdout into `stdout` and stderr into the log.
fn run_into(cmd: &mut Command, stdout: Stdio, log: &Path) -> Result<()> {
    use std::io::Write as _;
    let mut header = log_file(log)?;
    writeln!(header, "\n$ {}", cmd::display(cmd))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log_file(log)?)
        .status()
        .with_context(|| format!("could not start `{}`", cmd::display(cmd)))?;
    if !status.success() {
        return Err(failed(&format!("`{}`", cmd::display(cmd)), status, log));
    }
    Ok(())
}

/// Runs `producer | consumer` by connecting their stdio, the consumer's stdout into `stdout`.
fn pipe_into(producer: &mut Command, consumer: &mut Command, stdout: Stdio, log: &Path) -> Result<()> {
    use std::io::Write as _;
    let shown = format!("{} | {}", cmd::display(producer), cmd::display(consumer));
    writeln!(log_file(log)?, "\n$ {shown}")?;
    let mut prod = producer
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file(log)?)
        .spawn()
        .with_context(|| format!("could not start `{}`", cmd::display(producer)))?;
    let prod_out = prod.stdout.take().context("no stdout pipe")?;
    let cons = consumer.stdin(Stdio::from(prod_out)).stdout(stdout).stderr(log_file(log)?).status();
    // Reap the producer whatever happened to the consumer (it gets EPIPE if the consumer died).
    let prod_status = prod.wait()?;
    let cons_status = cons.with_context(|| format!("could not start `{}`", cmd::display(consumer)))?;
    if !cons_status.success() {
        return Err(failed(&format!("`{}` (in `{shown}`)", cmd::display(consumer)), cons_status, log));
    }
    if !prod_status.success() {
        return Err(failed(&format!("`{}` (in `{shown}`)", cmd::display(producer)), prod_status, log));
    }
    Ok(())
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child> {
    use std::io::Write as _;
    writeln!(log_file(log)?, "\n$ {}", cmd::display(cmd))?;
    cmd.stdin(Stdio::null())
        .stdout(log_file(log)?)
        .stderr(log_file(log)?)
        .spawn()
        .with_context(|| format!("could not start `{}`", cmd::display(cmd)))
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(fs::metadata(path).with_context(|| format!("reading the size of {}", path.display()))?.len())
}

/// Files under `dir` (recursively) whose name ends with `suffix`.
fn find_files(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            find_files(&path, suffix, out)?;
        } else if path.to_string_lossy().ends_with(suffix) {
            out.push(path);
        }
    }
    Ok(())
}

fn reset_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The first `"key": <integer>` in a JSON text.
fn json_u64(json: &str, key: &str) -> Option<u64> {
    let at = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The first `"key": <number>` in a JSON text, as a float.
fn json_f64(json: &str, key: &str) -> Option<f64> {
    let at = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let number: String =
        rest.chars().take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')).collect();
    number.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// containers

fn docker() -> Command {
    Command::new("docker")
}

fn host_port(id: &str, port: &str) -> Result<u16> {
    let out = cmd::capture(docker().args(["port", id, port]))?;
    let line = out.lines().next().context("docker port printed nothing")?;
    let p = line.rsplit(':').next().unwrap_or_default();
    p.trim().parse().with_context(|| format!("unexpected `docker port` output {line:?}"))
}

/// The PostgreSQL container, reached with the host's client programs.
struct Pg {
    port: u16,
}

impl Pg {
    /// `program -h 127.0.0.1 -p PORT -U postgres -d DB`, password in the child's environment.
    fn cmd(&self, program: &str, db: &str) -> Command {
        let mut c = Command::new(program);
        for var in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGPASSFILE", "PGOPTIONS"] {
            c.env_remove(var);
        }
        c.env("PGPASSWORD", PG_PASSWORD);
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", db]);
        c
    }

    fn pg_dump(&self) -> Command {
        self.cmd("pg_dump", PG_DB)
    }

    fn psql(&self, db: &str) -> Command {
        let mut c = self.cmd("psql", db);
        c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
        c
    }

    fn query(&self, db: &str, sql: &str) -> Result<String> {
        Ok(cmd::capture(self.psql(db).args(["-At", "-c", sql]))?.trim().to_owned())
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres:{PG_PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }
}

/// `docker run -d --rm` with this run's label; the guard removes the container whatever happens.
fn run_labelled(guard: &mut Guard, args: &[&str]) -> Result<String> {
    let label = format!("{LABEL}={}", std::process::id());
    let out = cmd::capture(docker().args(["run", "-d", "--rm", "--label", &label]).args(args))?;
    let id = out.trim().to_owned();
    guard.containers.push(id.clone());
    Ok(id)
}

fn start_postgres(guard: &mut Guard) -> Result<((Pg, String), String)> {
    let id = run_labelled(
        guard,
        &[
            "--shm-size=512m",
            "-p",
            "127.0.0.1::5432",
            "-e",
            &format!("POSTGRES_PASSWORD={PG_PASSWORD}"),
            "-e",
            &format!("POSTGRES_DB={PG_DB}"),
            POSTGRES_IMAGE,
            "-c",
            "fsync=off",
            "-c",
            "shared_buffers=256MB",
            "-c",
            "max_wal_size=4GB",
        ],
    )?;
    let pg = Pg { port: host_port(&id, "5432/tcp")? };
    let ready = cmd::wait_until(Duration::from_secs(90), Duration::from_millis(250), || {
        cmd::succeeds(pg.cmd("pg_isready", PG_DB).args(["-t", "2"])) && pg.query(PG_DB, "SELECT 1").is_ok()
    });
    if !ready {
        let logs = cmd::capture(docker().args(["logs", "--tail", "20", &id])).unwrap_or_default();
        bail!("PostgreSQL did not become ready in 90 s; last logs:\n{logs}");
    }
    let version = pg.query(PG_DB, "SHOW server_version")?;
    let note = format!("port {}, PostgreSQL {version}", pg.port);
    Ok(((pg, id), note))
}

fn start_s3(guard: &mut Guard) -> Result<(String, u16)> {
    let id = run_labelled(
        guard,
        &[
            "-p",
            "127.0.0.1::9000",
            "-e",
            &format!("S3_ACCESS_KEY={S3_ACCESS_KEY}"),
            "-e",
            &format!("S3_SECRET_KEY={S3_SECRET_KEY}"),
            S3_IMAGE,
        ],
    )?;
    let port = host_port(&id, "9000/tcp")?;
    let ready = cmd::wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        cmd::capture(docker().args(["logs", &id])).is_ok_and(|l| l.contains("server is running at"))
    });
    if !ready {
        bail!("s3s-fs did not log \"server is running at\" in 60 s");
    }
    // s3s-fs keeps a bucket as a directory under /data.
    cmd::capture(docker().args(["exec", &id, "mkdir", "-p", &format!("/data/{BUCKET}")]))?;
    Ok((id, port))
}

// ---------------------------------------------------------------------------------------------
// measurements

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Raw,
    RunbookGzip,
    RunbookZstd,
    OpsGzipFs,
    OpsZstdFs,
    OpsGzipS3,
}

impl Kind {
    const ALL: [Self; 6] =
        [Self::Raw, Self::RunbookGzip, Self::RunbookZstd, Self::OpsGzipFs, Self::OpsZstdFs, Self::OpsGzipS3];

    fn label(self) -> &'static str {
        match self {
            Self::Raw => "`pg_dump > file`",
            Self::RunbookGzip => "`pg_dump | gzip > file`",
            Self::RunbookZstd => "`pg_dump | zstd -T2 > file`",
            Self::OpsGzipFs => "`opsctl backup run` gzip → dir",
            Self::OpsZstdFs => "`opsctl backup run` zstd → dir",
            Self::OpsGzipS3 => "`opsctl backup run` gzip → S3",
        }
    }
}

/// One timed run. CPU figures are seconds of CPU time over the run: the client programs
/// (`/usr/bin/time`: the process and the children it waited for, so `opsctl` includes its
/// `pg_dump` or `psql`), the PostgreSQL and S3 containers (their cgroup), and the rest of the
/// machine (`/proc/stat` minus those: docker-proxy forwarding the ports, and anything else
/// running, which is noise).
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    secs: f64,
    /// Output size in bytes.
    size: Option<u64>,
    /// Peak RSS in KiB (opsctl only).
    rss_kib: Option<u64>,
    client_cpu: Option<f64>,
    pg_cpu: Option<f64>,
    s3_cpu: Option<f64>,
    rest_cpu: Option<f64>,
}

impl Sample {
    fn note(&self) -> String {
        let mut note = format!("{:.1} s", self.secs);
        if let Some(size) = self.size {
            let _ = write!(note, ", {}", mb(size));
        }
        let cpu = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.1}"));
        let _ = write!(
            note,
            ", CPU s client {} / PostgreSQL {} / S3 {} / rest {}",
            cpu(self.client_cpu),
            cpu(self.pg_cpu),
            cpu(self.s3_cpu),
            cpu(self.rest_cpu)
        );
        if let Some(kib) = self.rss_kib {
            let _ = write!(note, ", peak RSS {} MiB", kib / 1024);
        }
        note
    }
}

#[derive(Debug)]
struct Case {
    label: String,
    samples: Vec<Sample>,
}

impl Case {
    fn new(label: &str) -> Self {
        Self { label: label.to_owned(), samples: Vec::new() }
    }

    fn median(&self) -> Option<f64> {
        median(self.samples.iter().map(|s| s.secs).collect())
    }

    fn median_of(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        median(self.samples.iter().filter_map(f).collect())
    }

    fn size(&self) -> Option<u64> {
        self.samples.iter().rev().find_map(|s| s.size)
    }

    fn max_rss_mib(&self) -> Option<f64> {
        self.samples.iter().filter_map(|s| s.rss_kib).max().map(|k| k as f64 / 1024.0)
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// What `/usr/bin/time` reported about one process and the children it waited for.
#[derive(Debug, Clone, Copy)]
struct Usage {
    max_rss_kib: u64,
    cpu_secs: f64,
}

/// `/usr/bin/time -f "%M %U %S" -o OUT` in front of `inner`: same program, arguments,
/// environment and directory.
fn under_time(inner: &Command, out: &Path) -> Command {
    let mut c = Command::new(TIME);
    c.args(["-f", "%M %U %S", "-o"]).arg(out).arg(inner.get_program()).args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(v) => c.env(key, v),
            None => c.env_remove(key),
        };
    }
    if let Some(dir) = inner.get_current_dir() {
        c.current_dir(dir);
    }
    c
}

/// The last line `/usr/bin/time` wrote (a failed command gets a status line before it).
fn read_usage(out: &Path) -> Result<Usage> {
    let text = fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    let fields: Vec<&str> = line.split_whitespace().collect();
    let parsed = match fields.as_slice() {
        [m, u, s] => m.parse::<u64>().ok().zip(u.parse::<f64>().ok()).zip(s.parse::<f64>().ok()),
        _ => None,
    };
    let ((max_rss_kib, user), sys) = parsed.with_context(|| format!("{TIME} wrote {text:?}"))?;
    Ok(Usage { max_rss_kib, cpu_secs: user + sys })
}

/// CPU seconds used by the whole machine since boot (`/proc/stat`, all but idle and iowait).
fn machine_busy_secs(ticks_per_sec: f64) -> Option<f64> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7).copied().unwrap_or(0.0);
    Some(busy / ticks_per_sec)
}

/// CPU seconds a container has used (cgroup v2 `cpu.stat`, else v1 `cpuacct.usage`).
fn container_cpu_secs(id: &str) -> Option<f64> {
    if let Ok(text) = cmd::capture(docker().args(["exec", id, "cat", "/sys/fs/cgroup/cpu.stat"])) {
        let usec = text.lines().find_map(|l| l.strip_prefix("usage_usec "))?.trim().parse::<f64>().ok()?;
        return Some(usec / 1e6);
    }
    let text = cmd::capture(docker().args(["exec", id, "cat", "/sys/fs/cgroup/cpuacct/cpuacct.usage"])).ok()?;
    Some(text.trim().parse::<f64>().ok()? / 1e9)
}

#[derive(Debug, Clone, Copy)]
struct CpuSnapshot {
    machine: Option<f64>,
    pg: Option<f64>,
    s3: Option<f64>,
}

/// The environment variables opsctl would otherwise pick up from this shell.
const OPS_ENV: &[&str] = &[
    "OPS_CONFIG",
    "DATABASE_URL",
    "S3_BUCKET",
    "RETENTION_DAYS",
    "BACKUP_ALERT_WEBHOOK",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_PROFILE",
];

struct Ctx {
    opsctl: PathBuf,
    work: PathBuf,
    /// `target/bench`: what outlives the run (log, reports, the table).
    keep: PathBuf,
    log: PathBuf,
    pg: Pg,
    pg_id: String,
    s3_id: String,
    s3_port: u16,
    ticks_per_sec: f64,
}

impl Ctx {
    fn snapshot(&self) -> CpuSnapshot {
        let pg = container_cpu_secs(&self.pg_id);
        let s3 = container_cpu_secs(&self.s3_id);
        CpuSnapshot { machine: machine_busy_secs(self.ticks_per_sec), pg, s3 }
    }

    /// Runs `f`, which times its commands and fills in the client figures, and adds the
    /// containers' and the rest of the machine's CPU time over it.
    fn metered(&self, f: impl FnOnce() -> Result<Sample>) -> Result<Sample> {
        let before = self.snapshot();
        let mut sample = f()?;
        let machine_after = machine_busy_secs(self.ticks_per_sec);
        let after = CpuSnapshot { machine: machine_after, ..self.snapshot() };
        let delta = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (a - b).max(0.0));
        sample.pg_cpu = delta(after.pg, before.pg);
        sample.s3_cpu = delta(after.s3, before.s3);
        sample.rest_cpu = delta(after.machine, before.machine).map(|m| {
            (m - sample.client_cpu.unwrap_or(0.0) - sample.pg_cpu.unwrap_or(0.0) - sample.s3_cpu.unwrap_or(0.0))
                .max(0.0)
        });
        Ok(sample)
    }

    /// Runs `producer > out` or `producer | consumer > out`, each under /usr/bin/time.
    fn run_timed(&self, producer: &Command, consumer: Option<&Command>, out: Stdio) -> Result<Sample> {
        let t0 = self.work.join("time-0.txt");
        let t1 = self.work.join("time-1.txt");
        let mut p = under_time(producer, &t0);
        let start = Instant::now();
        match consumer {
            None => run_into(&mut p, out, &self.log)?,
            Some(c) => pipe_into(&mut p, &mut under_time(c, &t1), out, &self.log)?,
        }
        let secs = start.elapsed().as_secs_f64();
        let mut cpu = read_usage(&t0)?.cpu_secs;
        if consumer.is_some() {
            cpu += read_usage(&t1)?.cpu_secs;
        }
        Ok(Sample { secs, client_cpu: Some(cpu), ..Sample::default() })
    }

    /// Runs `opsctl --config CONFIG --json ARGS…` under /usr/bin/time. Its JSON report is kept as
    /// `target/bench/opsctl-NAME.json` (the last run of each case) and returned.
    fn run_opsctl(&self, name: &str, config: &Path, args: &[&str]) -> Result<(Sample, String)> {
        let usage = self.work.join("time-opsctl.txt");
        let out = self.keep.join(format!("opsctl-{name}.json"));
        let mut inner = Command::new(&self.opsctl);
        inner.arg("--config").arg(config).arg("--json").args(args);
        for var in OPS_ENV {
            inner.env_remove(var);
        }
        let mut c = under_time(&inner, &usage);
        let start = Instant::now();
        run_into(&mut c, Stdio::from(create(&out)?), &self.log)
            .with_context(|| format!("its stdout: {}", cmd::tail_file(&out, 10)))?;
        let secs = start.elapsed().as_secs_f64();
        let u = read_usage(&usage)?;
        let json = fs::read_to_string(&out).unwrap_or_default();
        Ok((Sample { secs, rss_kib: Some(u.max_rss_kib), client_cpu: Some(u.cpu_secs), ..Sample::default() }, json))
    }

    fn write_config(&self, name: &str, db: &str, storage: &str) -> Result<PathBuf> {
        let path = self.work.join(name);
        let text = format!("[databases.main]\nurl = {}\n\n[storage]\n{storage}", toml_str(&self.pg.url(db)));
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    fn fs_storage(dir: &Path) -> String {
        format!("url = {}\n", toml_str(&dir.to_string_lossy()))
    }

    fn s3_storage(&self, prefix: &str) -> String {
        format!(
            "url = {}\nendpoint = {}\naccess-key-id = {}\nsecret-access-key = {}\n",
            toml_str(&format!("s3://{BUCKET}/{prefix}")),
            toml_str(&format!("http://127.0.0.1:{}", self.s3_port)),
            toml_str(S3_ACCESS_KEY),
            toml_str(S3_SECRET_KEY),
        )
    }

    fn s3_clear(&self, prefix: &str) -> Result<()> {
        cmd::capture(docker().args(["exec", &self.s3_id, "rm", "-rf", &format!("/data/{BUCKET}/{prefix}")]))?;
        Ok(())
    }

    fn psql_file(&self, sql: &str, name: &str, vars: &[(&str, u64)]) -> Result<Command> {
        let path = self.work.join(name);
        fs::write(&path, sql).with_context(|| format!("writing {}", path.display()))?;
        let mut c = self.pg.psql(PG_DB);
        for (k, v) in vars {
            c.args(["-v", &format!("{k}={v}")]);
        }
        c.arg("-f").arg(path);
        Ok(c)
    }

    /// Runs the generation jobs on two psql sessions at once (the server has two cores).
    fn run_jobs(&self, jobs: Vec<GenJob>, customers: u64) -> Result<()> {
        let queue = Mutex::new(jobs);
        let worker = |n: usize| -> Result<()> {
            loop {
                let Some(job) = queue.lock().map_err(|_| anyhow!("poisoned"))?.pop() else { return Ok(()) };
                let start = Instant::now();
                let mut c = self.psql_file(
                    job.sql,
                    &format!("gen-{n}.sql"),
                    &[("first", job.first), ("last", job.last), ("customers", customers)],
                )?;
                let status = spawn_logged(&mut c, &self.log)?.wait()?;
                if !status.success() {
                    return Err(failed(
                        &format!("generating {} {}..{}", job.what, job.first, job.last),
                        status,
                        &self.log,
                    ));
                }
                println!("bench:   {} {}..{} ({})", job.what, job.first, job.last, cmd::secs(start.elapsed()));
            }
        };
        std::thread::scope(|s| {
            let a = s.spawn(|| worker(0));
            let b = s.spawn(|| worker(1));
            let ra = a.join().map_err(|_| anyhow!("generation thread panicked"))?;
            let rb = b.join().map_err(|_| anyhow!("generation thread panicked"))?;
            ra.and(rb)
        })
    }

    fn measure(&self, kind: Kind, round: usize) -> Result<Sample> {
        let w = &self.work;
        match kind {
            Kind::Raw => {
                let out = w.join("raw.sql");
                let mut s = self.metered(|| self.run_timed(&self.pg.pg_dump(), None, Stdio::from(create(&out)?)))?;
                s.size = Some(file_size(&out)?);
                Ok(s)
            }
            Kind::RunbookGzip | Kind::RunbookZstd => {
                let (out, consumer) = if kind == Kind::RunbookGzip {
                    (w.join("runbook.sql.gz"), Command::new("gzip"))
                } else {
                    let mut z = Command::new("zstd");
                    z.args(["-q", "-T2", "-c"]);
                    (w.join("runbook.sql.zst"), z)
                };
                let mut s =
                    self.metered(|| self.run_timed(&self.pg.pg_dump(), Some(&consumer), Stdio::from(create(&out)?)))?;
                s.size = Some(file_size(&out)?);
                Ok(s)
            }
            Kind::OpsGzipFs | Kind::OpsZstdFs => {
                let (name, ext) = if kind == Kind::OpsGzipFs { ("gzip", ".sql.gz") } else { ("zstd", ".sql.zst") };
                let dir = w.join(format!("store-{name}"));
                reset_dir(&dir)?;
                let config = self.write_config(&format!("fs-{name}.toml"), PG_DB, &Self::fs_storage(&dir))?;
                let mut json = String::new();
                let mut s = self.metered(|| {
                    let (s, j) = self.run_opsctl(
                        &format!("backup-{name}-fs"),
                        &config,
                        &["backup", "run", "--compression", name],
                    )?;
                    json = j;
                    Ok(s)
                })?;
                let mut files = Vec::new();
                find_files(&dir, ext, &mut files)?;
                let file =
                    files.first().with_context(|| format!("no {ext} file in {} after the backup", dir.display()))?;
                s.size = Some(file_size(file)?);
                if let Some(reported) = json_u64(&json, "size_bytes")
                    && Some(reported) != s.size
                {
                    bail!("opsctl reported {reported} bytes but {} has {:?}", file.display(), s.size);
                }
                Ok(s)
            }
            Kind::OpsGzipS3 => {
                let prefix = format!("runs-{round}");
                let config = self.write_config("s3-gzip.toml", PG_DB, &self.s3_storage(&prefix))?;
                let mut json = String::new();
                let mut s = self.metered(|| {
                    let (s, j) =
                        self.run_opsctl("backup-gzip-s3", &config, &["backup", "run", "--compression", "gzip"])?;
                    json = j;
                    Ok(s)
                })?;
                s.size = json_u64(&json, "size_bytes");
                self.s3_clear(&prefix)?;
                Ok(s)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the run

/// Prints a step's start and end with its duration.
fn step<T>(name: &str, f: impl FnOnce() -> Result<(T, String)>) -> Result<T> {
    println!("bench: ==> {name}");
    let start = Instant::now();
    let (value, note) = f().with_context(|| format!("bench step `{name}` failed"))?;
    println!("bench: <== {name}: {note} ({})", cmd::secs(start.elapsed()));
    Ok(value)
}

fn require_tools() -> Result<()> {
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

fn first_line(c: &mut Command) -> String {
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
    let (s3_id, s3_port) = step("start S3 (s3s-fs)", || {
        let (id, port) = start_s3(&mut guard)?;
        Ok(((id, port), format!("port {port}, bucket {BUCKET}")))
    })?;
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
        s3_port,
        ticks_per_sec,
    };

    step("schema", || {
        let mut c = ctx.psql_file(SCHEMA_SQL, "schema.sql", &[])?;
        run_into(&mut c, Stdio::from(log_file(&log)?), &log)?;
        Ok(((), "customers, orders, events".to_owned()))
    })?;

    step("smoke: opsctl backup run to S3 (bucket check)", || {
        let config = ctx.write_config("s3-smoke.toml", PG_DB, &ctx.s3_storage("smoke"))?;
        let (sample, json) = ctx.run_opsctl("smoke", &config, &["backup", "run"])?;
        let size = json_u64(&json, "size_bytes").context("no size_bytes in opsctl's JSON report")?;
        ctx.s3_clear("smoke")?;
        Ok(((), format!("uploaded and verified {size} bytes in {:.1} s", sample.secs)))
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
    let mut cases: Vec<(Kind, Case)> = kinds.iter().map(|k| (*k, Case::new(k.label()))).collect();
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

#[derive(Debug)]
enum RestoreOutcome {
    Measured(Box<Restores>),
    Unavailable,
    Failed { psql: Case, error: String },
}

/// The restore cases of every round.
#[derive(Debug)]
struct Restores {
    psql: Case,
    in_place: Case,
    safe_swap: Case,
    drill: Case,
    verify: Case,
    /// `restore_seconds` and `rto_seconds` of each drill's own report.
    drill_restore: Vec<f64>,
    drill_rto: Vec<f64>,
}

/// `gunzip -c BACKUP | psql` versus `opsctl restore latest` (in place and safe swap) into fresh
/// databases, `opsctl dr-test latest --backend local` and `opsctl backup verify latest`, each
/// once per round.
fn measure_restore(ctx: &Ctx, runs: usize, expected: &str) -> Result<RestoreOutcome> {
    let help = ctx.work.join("restore-help.txt");
    let available =
        run_into(Command::new(&ctx.opsctl).args(["restore", "--help"]), Stdio::from(create(&help)?), &ctx.log).is_ok();
    if !available {
        println!("bench: restore: not measured (opsctl restore not available)");
        return Ok(RestoreOutcome::Unavailable);
    }
    // The gzip backup opsctl wrote in the last round: every restore reads the same file.
    let store = ctx.work.join("store-gzip");
    let mut files = Vec::new();
    find_files(&store, ".sql.gz", &mut files)?;
    let dump = files.first().context("no gzip backup left to restore")?.clone();
    let mut r = Restores {
        psql: Case::new("`gunzip -c | psql`"),
        in_place: Case::new("`opsctl restore latest --in-place`"),
        safe_swap: Case::new("`opsctl restore latest` (safe swap)"),
        drill: Case::new("`opsctl dr-test latest --backend local`"),
        // What an in-place restore does first, before touching the database: read the backup
        // through once (checksum, full decompression, trailer). Timed alone to show its share.
        verify: Case::new("`opsctl backup verify latest` (in-place restore's first pass)"),
        drill_restore: Vec::new(),
        drill_rto: Vec::new(),
    };
    let check = |db: &str| -> Result<()> {
        let got = ctx.pg.query(db, COUNT_SQL)?;
        if got != expected {
            bail!("database {db} has customers/orders/events {got} after the restore, expected {expected}");
        }
        Ok(())
    };
    // Every database of a case: the restored one and what a safe swap keeps beside it.
    let drop_all = |prefix: &str| -> Result<()> {
        let names = ctx.pg.query(
            PG_DB,
            &format!("SELECT string_agg(datname, ' ') FROM pg_database WHERE starts_with(datname, '{prefix}')"),
        )?;
        for name in names.split_whitespace() {
            ctx.pg.query(PG_DB, &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))?;
        }
        Ok(())
    };
    let failed = |psql: &Case, what: &str, e: &anyhow::Error| RestoreOutcome::Failed {
        psql: Case { label: psql.label.clone(), samples: psql.samples.clone() },
        error: format!("{what}: {e:#}"),
    };
    for round in 1..=runs {
        let db = format!("restore_psql_{round}");
        ctx.pg.query(PG_DB, &format!("CREATE DATABASE {db}"))?;
        let sample = step(&format!("restore {round}/{runs}: gunzip -c | psql"), || {
            let mut gunzip = Command::new("gunzip");
            gunzip.arg("-c").arg(&dump);
            let s =
                ctx.metered(|| ctx.run_timed(&gunzip, Some(&ctx.pg.psql(&db)), Stdio::from(log_file(&ctx.log)?)))?;
            check(&db)?;
            let note = format!("{}, row counts ok", s.note());
            Ok((s, note))
        })?;
        r.psql.samples.push(sample);
        drop_all(&db)?;

        for (in_place, case) in [(true, &mut r.in_place), (false, &mut r.safe_swap)] {
            let (name, flag) = if in_place { ("inplace", Some("--in-place")) } else { ("swap", None) };
            let db = format!("restore_{name}_{round}");
            ctx.pg.query(PG_DB, &format!("CREATE DATABASE {db}"))?;
            let result = step(&format!("restore {round}/{runs}: {}", case.label), || {
                let config = ctx.write_config(&format!("restore-{name}.toml"), &db, &Ctx::fs_storage(&store))?;
                let s = ctx.metered(|| {
                    let mut args = vec!["restore", "latest", "--yes", "--database", "main"];
                    args.extend(flag);
                    Ok(ctx.run_opsctl(&format!("restore-{name}"), &config, &args)?.0)
                })?;
                check(&db)?;
                let note = format!("{}, row counts ok", s.note());
                Ok((s, note))
            });
            let dropped = drop_all(&db);
            match result {
                Ok(s) => case.samples.push(s),
                Err(e) => return Ok(failed(&r.psql, &case.label, &e)),
            }
            dropped?;
        }

        let result = step(&format!("restore {round}/{runs}: {}", r.drill.label), || {
            let config = ctx.write_config("drill.toml", PG_DB, &Ctx::fs_storage(&store))?;
            let mut json = String::new();
            let s = ctx.metered(|| {
                let args = ["dr-test", "latest", "--backend", "local"];
                let (s, j) = ctx.run_opsctl("dr-test", &config, &args)?;
                json = j;
                Ok(s)
            })?;
            let restore = json_f64(&json, "restore_seconds").context("no restore_seconds in the drill's report")?;
            let rto = json_f64(&json, "rto_seconds").context("no rto_seconds in the drill's report")?;
            let note = format!("{}; the drill's restore {restore:.1} s, RTO {rto:.1} s", s.note());
            Ok(((s, restore, rto), note))
        });
        match result {
            Ok((s, restore, rto)) => {
                r.drill.samples.push(s);
                r.drill_restore.push(restore);
                r.drill_rto.push(rto);
            }
            Err(e) => return Ok(failed(&r.psql, &r.drill.label, &e)),
        }

        let sample = step(&format!("restore {round}/{runs}: opsctl backup verify latest"), || {
            let config = ctx.write_config("verify.toml", PG_DB, &Ctx::fs_storage(&store))?;
            let s = ctx.metered(|| Ok(ctx.run_opsctl("verify", &config, &["backup", "verify", "latest"])?.0))?;
            let note = s.note();
            Ok((s, note))
        })?;
        r.verify.samples.push(sample);
    }
    Ok(RestoreOutcome::Measured(Box::new(r)))
}

// ---------------------------------------------------------------------------------------------
// report

struct Facts {
    date: String,
    cores: usize,
    mem_gib: f64,
    pg_dump: String,
    revision: String,
    dump_bytes: u64,
    counts: String,
    /// Percent of one core busy just before the timed runs.
    background: Option<f64>,
}

fn mem_total_gib() -> f64 {
    let text = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    kib as f64 / 1024.0 / 1024.0
}

fn verdict(value: f64, target: f64, at_most: bool) -> &'static str {
    let ok = if at_most { value <= target } else { value >= target };
    if ok { "PASS" } else { "MISS" }
}

/// A markdown table cell: `|` escaped (also inside code spans, as GFM requires).
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn case_row(out: &mut String, case: &Case, raw: Option<f64>) {
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

fn render(f: &Facts, cases: &[(Kind, Case)], restore: &RestoreOutcome) -> String {
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
        }
        RestoreOutcome::Failed { psql, error } => {
            case_row(&mut out, psql, None);
            let _ = writeln!(out, "| opsctl restore or dr-test | failed: {} | | | | | |", cell(error));
        }
        RestoreOutcome::Unavailable => {
            let _ = writeln!(out, "| restore | not measured (opsctl restore not available) | | | | | |");
        }
    }

    let _ = writeln!(out, "\n| target | value | goal | result |");
    let _ = writeln!(out, "|---|---|---|---|");
    let mut target = |name: &str, value: Option<f64>, goal: f64, at_most: bool, unit: &str| {
        let op = if at_most { "≤" } else { "≥" };
        match value {
            Some(v) => {
                let _ = writeln!(
                    out,
                    "| {} | {v:.2}{unit} | {op} {goal}{unit} | {} |",
                    cell(name),
                    verdict(v, goal, at_most)
                );
            }
            None => {
                let _ = writeln!(out, "| {} | – | {op} {goal}{unit} | not measured |", cell(name));
            }
        }
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    target("gzip backup / `pg_dump > file`", ratio(med(Kind::OpsGzipFs), raw), TARGET_GZIP_VS_RAW, true, "×");
    target(
        "`pg_dump | gzip` / gzip backup",
        ratio(med(Kind::RunbookGzip), med(Kind::OpsGzipFs)),
        TARGET_SPEEDUP_VS_RUNBOOK,
        false,
        "×",
    );
    target("zstd backup / `pg_dump > file`", ratio(med(Kind::OpsZstdFs), raw), TARGET_ZSTD_VS_RAW, true, "×");
    let rss = [Kind::OpsGzipFs, Kind::OpsZstdFs, Kind::OpsGzipS3]
        .iter()
        .filter_map(|k| get(*k).and_then(Case::max_rss_mib))
        .fold(None, |acc: Option<f64>, v| Some(acc.map_or(v, |a| a.max(v))));
    target("peak RSS of `opsctl backup run`", rss, TARGET_RSS_MIB, true, " MiB");
    let (in_place, safe_swap) = match restore {
        RestoreOutcome::Measured(r) => {
            (ratio(r.in_place.median(), r.psql.median()), ratio(r.safe_swap.median(), r.psql.median()))
        }
        _ => (None, None),
    };
    target("restore (safe swap, the default) / `gunzip -c | psql`", safe_swap, TARGET_RESTORE_VS_PSQL, true, "×");
    target("restore (`--in-place`) / `gunzip -c | psql`", in_place, TARGET_RESTORE_VS_PSQL, true, "×");

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
