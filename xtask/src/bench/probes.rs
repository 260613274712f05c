//! `cargo xtask bench probes`: triage and TLS checks measured against their baselines in the
//! same run, on loopback.
//!
//! Steps: build `opsctl` and the `bench_servers` example in release mode (`target/bench`),
//! start the servers (200 HTTP endpoints, the first 10 slow up to 1 s; 50 TLS servers with
//! certificates from a CA of their own), then time `--runs` rounds of:
//! - `opsctl triage` over the generated config (every endpoint, every TLS server, plus the
//!   engine and host probes) against `opsctl probe http` of the slowest endpoint alone: triage
//!   runs its probes concurrently, so its wall time should be close to the slowest probe's
//!   (target ≤ 1.5×);
//! - `opsctl tls check` of the 50 TLS servers against the runbooks' loop,
//!   `openssl s_client -connect T -servername example.com < /dev/null | openssl x509 -noout
//!   -dates` once per server: checks per second (target ≥ 20×).
//!
//! Every program is started with an argument array (no shell). Medians and ratios are printed
//! as a markdown table, also written to `target/bench/probes.md`.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::cmd;

const TARGET_TRIAGE_VS_SLOWEST: f64 = 1.5;
const TARGET_TLS_SPEEDUP: f64 = 20.0;

/// Options of `cargo xtask bench probes`.
#[derive(Debug)]
pub struct Options {
    /// Rounds of each measurement.
    pub runs: usize,
    /// HTTP endpoints.
    pub http: usize,
    /// TLS servers.
    pub tls: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { runs: 5, http: 200, tls: 50 }
    }
}

/// Kills the servers on every exit path.
struct Servers(Child);

impl Drop for Servers {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Median of a non-empty list of samples.
fn median(v: Vec<f64>) -> f64 {
    cmd::median(v).unwrap_or(f64::NAN)
}

/// Runs `c` to completion with stdout captured; returns the wall time and stdout. Exit codes
/// 0–3 are verdicts of a check, not failures.
fn timed(c: &mut Command) -> Result<(Duration, String)> {
    let started = Instant::now();
    let out = c.stdin(Stdio::null()).stderr(Stdio::piped()).output().with_context(|| cmd::display(c))?;
    let took = started.elapsed();
    if out.status.code().is_none_or(|code| code > 3) {
        bail!("{} failed ({}): {}", cmd::display(c), out.status, cmd::tail(&String::from_utf8_lossy(&out.stderr), 5));
    }
    Ok((took, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// The runbooks' check of one endpoint: `openssl s_client … | openssl x509 -noout -dates`.
fn openssl_dates(target: &str) -> Result<String> {
    let mut client = Command::new("openssl")
        .args(["s_client", "-connect", target, "-servername", "example.com"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("openssl s_client")?;
    let pem = client.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let x509 = Command::new("openssl")
        .args(["x509", "-noout", "-dates"])
        .stdin(pem)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .context("openssl x509")?;
    client.wait()?;
    let text = String::from_utf8_lossy(&x509.stdout).into_owned();
    if !text.contains("notAfter=") {
        bail!("openssl printed no dates for {target}");
    }
    Ok(text)
}

/// Value of the first `"key": <number>` in JSON text (xtask has no JSON parser).
fn json_number(json: &str, key: &str) -> Option<f64> {
    let at = json.find(&format!("\"{key}\""))?;
    let rest = json[at..].split_once(':')?.1.trim_start();
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

pub fn probes(opts: &Options) -> Result<()> {
    if !cmd::exists("openssl") {
        bail!("openssl is needed for the baseline (apt-get install openssl)");
    }
    eprintln!("bench: building opsctl and bench_servers (release)");
    let target_dir = cmd::release_build(&["-p", "ops-cli", "--bin", "opsctl"])?;
    cmd::release_build(&["-p", "ops-integration-tests", "--example", "bench_servers"])?;
    let opsctl = target_dir.join("release/opsctl");
    let dir: PathBuf = target_dir.join("probes");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let mut child = Command::new(target_dir.join("release/examples/bench_servers"))
        .arg(&dir)
        .args(["--http", &opts.http.to_string(), "--slow", "10", "--slow-ms", "1000"])
        .args(["--tls", &opts.tls.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting bench_servers")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let _servers = Servers(child);
    let mut ready = String::new();
    BufReader::new(stdout).read_line(&mut ready)?;
    if ready.trim() != "ready" {
        bail!("bench_servers did not start");
    }
    let config = dir.join("ops.toml");
    let slowest_url = std::fs::read_to_string(dir.join("slowest-url"))?;
    let tls_targets: Vec<String> =
        std::fs::read_to_string(dir.join("tls-targets"))?.lines().map(str::to_owned).collect();
    let ca_file = dir.join("ca.pem");

    let triage = || {
        let mut c = Command::new(&opsctl);
        c.args(["triage", "--no-logs", "--json", "--config"]).arg(&config);
        c
    };
    let single = || {
        let mut c = Command::new(&opsctl);
        c.args(["probe", "http", slowest_url.trim(), "--json"]);
        c
    };
    let tls_check = || {
        let mut c = Command::new(&opsctl);
        c.args(["tls", "check", "--json", "--server-name", "example.com", "--ca-file"]).arg(&ca_file);
        c.args(&tls_targets);
        c
    };
    // Warm-up: page cache, the servers' first connections.
    let (_, json) = timed(&mut triage())?;
    let probes_run = json.matches("\"duration_ms\"").count().saturating_sub(1);
    timed(&mut single())?;
    timed(&mut tls_check())?;
    openssl_dates(&tls_targets[0])?;

    let (mut t_triage, mut t_single, mut t_tls, mut t_openssl, mut inner) = (vec![], vec![], vec![], vec![], vec![]);
    for round in 1..=opts.runs {
        eprintln!("bench: round {round}/{}", opts.runs);
        let (took, json) = timed(&mut triage())?;
        t_triage.push(took.as_secs_f64());
        if let Some(ms) = json_number(&json, "duration_ms") {
            inner.push(ms / 1000.0);
        }
        t_single.push(timed(&mut single())?.0.as_secs_f64());
        t_tls.push(timed(&mut tls_check())?.0.as_secs_f64());
        let started = Instant::now();
        for t in &tls_targets {
            openssl_dates(t)?;
        }
        t_openssl.push(started.elapsed().as_secs_f64());
    }
    let (triage_s, single_s) = (median(t_triage), median(t_single));
    let n = tls_targets.len() as f64;
    let (tls_rate, openssl_rate) = (n / median(t_tls), n / median(t_openssl));
    let ratio = triage_s / single_s;
    let speedup = tls_rate / openssl_rate;
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };

    let mut md = String::new();
    writeln!(md, "| measurement | median | ratio | target | verdict |")?;
    writeln!(md, "|---|---|---|---|---|")?;
    writeln!(
        md,
        "| `opsctl triage` ({probes_run} probes: {} HTTP, {} TLS, engine, host) | {triage_s:.3} s (in-process {:.3} s) | {ratio:.2}× the slowest probe | ≤ {TARGET_TRIAGE_VS_SLOWEST}× | {} |",
        opts.http,
        opts.tls,
        median(inner),
        verdict(ratio <= TARGET_TRIAGE_VS_SLOWEST)
    )?;
    writeln!(md, "| `opsctl probe http` of the slowest endpoint (1 s) | {single_s:.3} s | 1.00× | | |")?;
    writeln!(
        md,
        "| `opsctl tls check` of {} servers | {:.3} s = {tls_rate:.0} checks/s | {speedup:.1}× openssl | ≥ {TARGET_TLS_SPEEDUP}× | {} |",
        tls_targets.len(),
        n / tls_rate,
        verdict(speedup >= TARGET_TLS_SPEEDUP)
    )?;
    writeln!(
        md,
        "| `openssl s_client \\| openssl x509 -dates` loop over the same servers | {:.3} s = {openssl_rate:.0} checks/s | 1.00× | | |",
        n / openssl_rate
    )?;
    let report = format!(
        "## cargo xtask bench probes --runs {}\n\n{md}\n{} cores; medians of {} rounds; wall times of whole processes.\n",
        opts.runs,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        opts.runs
    );
    println!("{report}");
    write_report(&target_dir, &report)
}

fn write_report(target_dir: &Path, report: &str) -> Result<()> {
    std::fs::write(target_dir.join("probes.md"), report).context("writing target/bench/probes.md")
}
