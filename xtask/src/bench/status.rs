//! `cargo xtask bench status`: the public status page, built and served.
//!
//! 1. Builds and runs the `bench_page` example of `ops-status` in release mode
//!    (`target/bench`): the cost of one page build (`StatusBoard::page`, the HTML and
//!    `summary.json`) from a state store with 90 days of history and 30 incidents against one
//!    with 2 years and 240 incidents; the page keeps 90 days, so the 2-year build must cost at
//!    most 1.5× the 90-day one. It also leaves its 90-day store in `target/bench/status/store`.
//! 2. Builds `ops-server` in release mode and starts it on a free loopback port over that store
//!    (`[status]` with the same components and `rate-limit-per-second = 100000`, no
//!    background triage), then runs `wrk -t2 -c32 -d10s --latency` against `/health/live`,
//!    `/status` and `/api/v2/summary.json`, `--runs` rounds (default 3) of each in turn,
//!    and reports the median requests per second and p99 latency, with each route's
//!    requests per second against `/health/live`'s.
//!
//! Both tables are printed and written to `target/bench/status.md`; the server's log is
//! `target/bench/status/server.log`. The server is stopped on every exit path.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::cmd;

/// wrk's threads and connections.
const THREADS: usize = 2;
const CONNECTIONS: usize = 32;

/// The routes measured, the first being the baseline.
const ROUTES: [&str; 3] = ["/health/live", "/status", "/api/v2/summary.json"];

/// Options of `cargo xtask bench status`.
#[derive(Debug)]
pub struct Options {
    /// wrk runs of each route.
    pub runs: usize,
    /// Seconds of each wrk run.
    pub seconds: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { runs: 3, seconds: 10 }
    }
}

/// Kills the server on every exit path.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One wrk run: requests per second and the 99th percentile latency in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct WrkRun {
    rps: f64,
    p99_ms: f64,
}

/// `12.34us`, `1.20ms`, `2.00s`, `1.5m` as milliseconds.
fn wrk_duration_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => return None,
    })
}

/// Requests/sec and the `99%` line of `wrk --latency`'s output; fails on non-2xx answers (a
/// 429 from the rate limit would measure the limit, not the page). Socket errors (a request
/// past wrk's 2 s timeout, a connection closed) are shown, not fatal.
fn parse_wrk(out: &str) -> Result<WrkRun> {
    if let Some(line) = out.lines().find(|l| l.contains("Non-2xx or 3xx responses")) {
        bail!("wrk got answers other than 2xx/3xx ({}): is the rate limit raised?", line.trim());
    }
    if let Some(line) = out.lines().find(|l| l.trim_start().starts_with("Socket errors")) {
        eprintln!("bench: wrk: {}", line.trim());
    }
    let rps = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow!("no `Requests/sec:` in wrk's output:\n{out}"))?;
    let p99_ms = out
        .lines()
        .skip_while(|l| !l.contains("Latency Distribution"))
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(wrk_duration_ms)
        .ok_or_else(|| anyhow!("no `99%` latency in wrk's output (was --latency given?):\n{out}"))?;
    Ok(WrkRun { rps, p99_ms })
}

/// A plain `GET path` over a new connection: the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP answer from {addr}{path}"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// A port free on 127.0.0.1 now.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Builds and runs the measurements.
///
/// # Errors
/// A build's failure, a server that does not start, wrk missing or failing, or a page build
/// that grows with the history stored.
pub fn status(opts: &Options) -> Result<()> {
    if !cmd::exists("wrk") {
        bail!("wrk is needed to load the server: `cargo xtask test-env` installs it (or `apt-get install -y wrk`)");
    }
    eprintln!("bench: building the status page benchmark (release)");
    let target_dir = cmd::release_build(&["-p", "ops-status", "--example", "bench_page"])?;
    let dir = target_dir.join("status");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let store = dir.join("store");

    eprintln!("bench: seeding and timing page builds (bench_page)");
    let mut example = Command::new(target_dir.join("release/examples/bench_page"));
    example.arg("--keep-store").arg(&store);
    let out = example.stdin(Stdio::null()).stderr(Stdio::piped()).output().with_context(|| cmd::display(&example))?;
    let build_table = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // A build that grows with the history is reported at the end, after the load test.
    let build_miss = if out.status.success() {
        None
    } else if build_table.contains("| 730 days |") {
        Some(cmd::tail(&stderr, 3))
    } else {
        bail!("{} failed ({}):\n{}", cmd::display(&example), out.status, cmd::tail(&stderr, 25));
    };

    eprintln!("bench: building ops-server (release)");
    cmd::release_build(&["-p", "ops-server", "--bin", "ops-server"])?;
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let components =
        std::fs::read_to_string(store.join("components.toml")).context("reading the example's components.toml")?;
    let config = dir.join("ops.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{addr}\"\ntriage-interval-secs = 0\n\n[state]\nurl = \"sqlite://{}\"\n\n\
             [status]\ntitle = \"Bench status\"\npublic-url = \"https://status.example.com\"\n\
             rate-limit-per-second = 100000\n{components}",
            store.join("state.db").display()
        ),
    )?;
    let log = dir.join("server.log");
    let log_file = std::fs::File::create(&log)?;
    let mut server = Command::new(target_dir.join("release/ops-server"));
    server
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg(addr.to_string())
        .env_remove("OPS_CONFIG")
        .env_remove("OPS_LISTEN")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    let child = server.spawn().with_context(|| cmd::display(&server))?;
    let mut server = Server(child);
    let mut exited = None;
    let up = cmd::wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        if let Ok(Some(status)) = server.0.try_wait() {
            exited = Some(status);
            return true;
        }
        http_get(addr, "/health/live").is_ok_and(|(code, _)| code == 200)
    });
    if let Some(status) = exited {
        bail!("ops-server exited ({status}) before answering:\n{}", cmd::tail_file(&log, 25));
    }
    if !up {
        bail!("ops-server did not answer /health/live on {addr} within 20 s:\n{}", cmd::tail_file(&log, 25));
    }
    // The page as served: 200, the seeded components and incidents (this also builds it once).
    let mut sizes = Vec::new();
    for route in ROUTES {
        let (code, body) = http_get(addr, route)?;
        if code != 200 {
            bail!("GET {route} answered {code}: {}\n{}", cmd::tail(&body, 5), cmd::tail_file(&log, 25));
        }
        sizes.push(body.len());
    }
    let (_, page) = http_get(addr, "/status")?;
    if !page.contains("Background jobs") || !page.contains("Degraded service:") {
        bail!("GET /status does not show the seeded components and incidents");
    }

    let mut runs: Vec<Vec<WrkRun>> = vec![Vec::new(); ROUTES.len()];
    for round in 1..=opts.runs {
        for (i, route) in ROUTES.iter().enumerate() {
            eprintln!("bench: round {round}/{}: wrk {route}", opts.runs);
            let out = cmd::capture(
                Command::new("wrk")
                    .arg(format!("-t{THREADS}"))
                    .arg(format!("-c{CONNECTIONS}"))
                    .arg(format!("-d{}s", opts.seconds))
                    .arg("--latency")
                    .arg(format!("http://{addr}{route}")),
            )?;
            runs[i].push(parse_wrk(&out).with_context(|| format!("wrk {route}"))?);
        }
    }
    if let Ok(Some(status)) = server.0.try_wait() {
        bail!("ops-server exited ({status}) during the load:\n{}", cmd::tail_file(&log, 25));
    }
    drop(server);

    let medians: Vec<(f64, f64)> = runs
        .iter()
        .map(|r| {
            let rps = cmd::median(r.iter().map(|w| w.rps).collect()).unwrap_or(f64::NAN);
            let p99 = cmd::median(r.iter().map(|w| w.p99_ms).collect()).unwrap_or(f64::NAN);
            (rps, p99)
        })
        .collect();
    let base = medians[0].0;
    let mut md = String::new();
    writeln!(
        md,
        "| endpoint | body | requests/s (median of {}) | p99 latency (median of {}) | requests/s against `/health/live` |",
        opts.runs, opts.runs
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    for ((route, (rps, p99)), size) in ROUTES.iter().zip(&medians).zip(&sizes) {
        let ratio = if *route == ROUTES[0] { "1.00× (baseline)".to_owned() } else { format!("{:.2}×", rps / base) };
        writeln!(md, "| `GET {route}` | {size} bytes | {rps:.0} | {p99:.2} ms | {ratio} |")?;
    }
    let report = format!(
        "## cargo xtask bench status\n\n### Page build (bench_page, one process)\n\n{build_table}\n\
         ### Served by ops-server (`wrk -t{THREADS} -c{CONNECTIONS} -d{}s --latency`, loopback)\n\n{md}\n\
         {} cores, wrk and the server on the same machine; 90 days of history and 30 incidents in the store; \
         the page is rebuilt at most every 5 s, and rendered once per build (HTML, feed and JSON served as bytes).\n",
        opts.seconds,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
    );
    println!("{report}");
    write_report(&target_dir, &report)?;
    if let Some(why) = build_miss {
        bail!("the page build grows with the history stored:\n{why}");
    }
    Ok(())
}

fn write_report(target_dir: &Path, report: &str) -> Result<()> {
    std::fs::write(target_dir.join("status.md"), report).context("writing target/bench/status.md")
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 10s test @ http://127.0.0.1:9000/status
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms    1.22ms  25.31ms   80.12%
    Req/Sec     5.21k   412.33     6.01k    71.00%
  Latency Distribution
     50%    2.90ms
     75%    3.60ms
     90%    4.50ms
     99%    7.85ms
  103712 requests in 10.00s, 6.84GB read
Requests/sec:  10368.52
Transfer/sec:    700.12MB
";

    #[test]
    fn reads_requests_per_second_and_p99() {
        assert_eq!(parse_wrk(WRK).unwrap(), WrkRun { rps: 10368.52, p99_ms: 7.85 });
        let us = WRK.replace("99%    7.85ms", "99%  850.00us");
        assert!((parse_wrk(&us).unwrap().p99_ms - 0.85).abs() < 1e-9);
        let s = WRK.replace("99%    7.85ms", "99%    1.02s");
        assert!((parse_wrk(&s).unwrap().p99_ms - 1020.0).abs() < 1e-9);
    }

    #[test]
    fn refuses_a_run_with_non_2xx_answers() {
        let limited = WRK.replace("Requests/sec:", "  Non-2xx or 3xx responses: 9000\nRequests/sec:");
        assert!(parse_wrk(&limited).unwrap_err().to_string().contains("rate limit"));
        let errors =
            WRK.replace("Requests/sec:", "  Socket errors: connect 0, read 3, write 0, timeout 0\nRequests/sec:");
        assert_eq!(parse_wrk(&errors).unwrap().rps, 10368.52);
        assert!(parse_wrk("nothing").is_err());
    }
}
