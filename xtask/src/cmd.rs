//! Running external commands with explicit argument arrays and useful errors.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// How many trailing lines of output an error message carries.
const TAIL_LINES: usize = 25;

/// A human-readable rendering of a command line (for messages only; never executed).
pub fn display(cmd: &Command) -> String {
    let mut out = quote(cmd.get_program());
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&quote(arg));
    }
    out
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
    if plain { s.into_owned() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// The last `n` lines of a file (empty if it cannot be read).
pub fn tail_file(path: &Path, n: usize) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut buf);
    }
    tail(&String::from_utf8_lossy(&buf), n)
}

fn failure(cmd: &Command, status: ExitStatus, stderr_tail: &str) -> anyhow::Error {
    let mut msg = format!("command failed ({status}): {}", display(cmd));
    if !stderr_tail.trim().is_empty() {
        msg.push_str("\n--- tail of its output ---\n");
        msg.push_str(stderr_tail.trim_end());
    }
    anyhow!(msg)
}

fn spawn_error(cmd: &Command, err: std::io::Error) -> anyhow::Error {
    anyhow!("could not start `{}`: {err}", display(cmd))
}

/// Runs `cmd`, capturing stdout and stderr; returns stdout on success.
pub fn capture(cmd: &mut Command) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| spawn_error(cmd, e))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let text = if stderr.trim().is_empty() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            stderr.into_owned()
        };
        return Err(failure(cmd, out.status, &tail(&text, TAIL_LINES)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` silently and reports whether it exited 0 (false if it could not start).
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Runs `cmd` with stdout and stderr appended to `log`; on failure the error carries the log's tail.
pub fn logged(cmd: &mut Command, log: &Path) -> Result<()> {
    let file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening log file {}", log.display()))?;
    let mut header = file.try_clone()?;
    writeln!(header, "\n$ {}", display(cmd))?;
    let status =
        cmd.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file).status().map_err(|e| spawn_error(cmd, e))?;
    if !status.success() {
        return Err(failure(cmd, status, &tail_file(log, TAIL_LINES)));
    }
    Ok(())
}

/// Runs `cmd` with stdout inherited and stderr both shown live and kept, so a failure can quote
/// its tail.
pub fn streamed(cmd: &mut Command) -> Result<()> {
    let mut child = cmd.stdin(Stdio::null()).stderr(Stdio::piped()).spawn().map_err(|e| spawn_error(cmd, e))?;
    let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr pipe for `{}`", display(cmd)))?;
    let mut kept: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES + 1);
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut err_out = std::io::stderr();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                let _ = err_out.write_all(&line);
                kept.push_back(String::from_utf8_lossy(&line).trim_end().to_owned());
                if kept.len() > TAIL_LINES {
                    kept.pop_front();
                }
            }
            Err(_) => break,
        }
    }
    let status = child.wait().map_err(|e| spawn_error(cmd, e))?;
    if !status.success() {
        let text: Vec<String> = kept.into_iter().collect();
        return Err(failure(cmd, status, &text.join("\n")));
    }
    Ok(())
}

/// Runs `producer | consumer` by connecting the two processes' stdio (no shell). Both write
/// their stderr (and the consumer its stdout) to `log`.
pub fn pipe(producer: &mut Command, consumer: &mut Command, log: &Path) -> Result<()> {
    let file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening log file {}", log.display()))?;
    writeln!(file.try_clone()?, "\n$ {} | {}", display(producer), display(consumer))?;
    let mut prod = producer
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(file.try_clone()?)
        .spawn()
        .map_err(|e| spawn_error(producer, e))?;
    let prod_out = prod.stdout.take().ok_or_else(|| anyhow!("no stdout pipe for `{}`", display(producer)))?;
    let cons_status = consumer.stdin(Stdio::from(prod_out)).stdout(file.try_clone()?).stderr(file).status();
    // Whatever happened to the consumer, reap the producer (it gets EPIPE if the consumer died).
    let prod_status = prod.wait().map_err(|e| spawn_error(producer, e))?;
    let cons_status = cons_status.map_err(|e| spawn_error(consumer, e))?;
    if !cons_status.success() {
        return Err(failure(consumer, cons_status, &tail_file(log, TAIL_LINES)));
    }
    if !prod_status.success() {
        return Err(failure(producer, prod_status, &tail_file(log, TAIL_LINES)));
    }
    Ok(())
}

/// Polls `check` every `every` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, every: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if check() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// Is `program` runnable (found on PATH)?
pub fn exists(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

/// Fails unless the current user is root.
pub fn require_root(why: &str) -> Result<()> {
    let uid = capture(Command::new("id").arg("-u")).context("checking the user id")?;
    if uid.trim() != "0" {
        bail!(
            "test-env needs root to {why} (running as uid {}); run it as root, e.g. `sudo -E cargo xtask test-env`",
            uid.trim()
        );
    }
    Ok(())
}

/// Formats a duration as seconds with one decimal.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Median of samples (the mean of the middle two for an even count); `None` when empty.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { f64::midpoint(v[n / 2 - 1], v[n / 2]) })
}

/// `cargo build --release --quiet ARGS` into `target/bench` (the benchmarks' own target
/// directory, so a debug build is not invalidated); returns that directory.
pub fn release_build(args: &[&str]) -> Result<std::path::PathBuf> {
    let root = crate::repo_root();
    let target_dir = root.join("target/bench");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    streamed(
        Command::new(cargo)
            .current_dir(&root)
            .env("CARGO_TARGET_DIR", &target_dir)
            .args(["build", "--release", "--quiet"])
            .args(args),
    )?;
    Ok(target_dir)
}
