//! Processes: the cleanup guard, commands run with their stderr in the log, pipes between
//! programs, files, and the few JSON numbers read from opsctl's reports.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Removes the containers and directories on drop (success, error or panic).
#[derive(Debug, Default)]
pub(super) struct Guard {
    pub(super) containers: Vec<String>,
    pub(super) dirs: Vec<PathBuf>,
    /// Servers started on the host (SeaweedFS): killed first.
    pub(super) children: Vec<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
            println!("bench: cleanup: stopped pid {}", child.id());
        }
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
pub(super) fn log_file(log: &Path) -> Result<File> {
    File::options().create(true).append(true).open(log).with_context(|| format!("opening {}", log.display()))
}

pub(super) fn create(path: &Path) -> Result<File> {
    File::create(path).with_context(|| format!("creating {}", path.display()))
}

pub(super) fn failed(what: &str, status: std::process::ExitStatus, log: &Path) -> anyhow::Error {
    anyhow!("{what} failed ({status})\n--- tail of {} ---\n{}", log.display(), cmd::tail_file(log, 20))
}

/// Runs `cmd` with stdout into `stdout` and stderr into the log.
pub(super) fn run_into(cmd: &mut Command, stdout: Stdio, log: &Path) -> Result<()> {
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
pub(super) fn pipe_into(producer: &mut Command, consumer: &mut Command, stdout: Stdio, log: &Path) -> Result<()> {
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

/// Runs `a | b | c …` by connecting their stdio, the last one's stdout into `stdout`; each is
/// reaped whatever happened to the others, and the first that failed is the error.
pub(super) fn chain_into(cmds: &mut [Command], stdout: Stdio, log: &Path) -> Result<()> {
    use std::io::Write as _;
    let shown = cmds.iter().map(cmd::display).collect::<Vec<_>>().join(" | ");
    writeln!(log_file(log)?, "\n$ {shown}")?;
    let last = cmds.len().checked_sub(1).context("an empty pipeline")?;
    let mut children: Vec<Child> = Vec::new();
    let mut input = Stdio::null();
    let mut stdout = Some(stdout);
    for (i, c) in cmds.iter_mut().enumerate() {
        let out = if i == last { stdout.take().unwrap_or_else(Stdio::null) } else { Stdio::piped() };
        let spawned = c.stdin(input).stdout(out).stderr(log_file(log)?).spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                for mut ch in children {
                    let _ = ch.kill();
                    let _ = ch.wait();
                }
                return Err(anyhow!("could not start `{}`: {e}", cmd::display(c)));
            }
        };
        input = if i == last { Stdio::null() } else { Stdio::from(child.stdout.take().context("no stdout pipe")?) };
        children.push(child);
    }
    let statuses: Vec<std::io::Result<std::process::ExitStatus>> = children.iter_mut().map(Child::wait).collect();
    for (c, status) in cmds.iter().zip(statuses) {
        let status = status?;
        if !status.success() {
            return Err(failed(&format!("`{}` (in `{shown}`)", cmd::display(c)), status, log));
        }
    }
    Ok(())
}

pub(super) fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child> {
    use std::io::Write as _;
    writeln!(log_file(log)?, "\n$ {}", cmd::display(cmd))?;
    cmd.stdin(Stdio::null())
        .stdout(log_file(log)?)
        .stderr(log_file(log)?)
        .spawn()
        .with_context(|| format!("could not start `{}`", cmd::display(cmd)))
}

pub(super) fn file_size(path: &Path) -> Result<u64> {
    Ok(fs::metadata(path).with_context(|| format!("reading the size of {}", path.display()))?.len())
}

/// Files under `dir` (recursively) whose name ends with `suffix`.
pub(super) fn find_files(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) -> Result<()> {
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

pub(super) fn reset_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// A TOML basic string.
pub(super) fn toml_str(s: &str) -> String {
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
pub(super) fn json_u64(json: &str, key: &str) -> Option<u64> {
    let at = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The first `"key": <number>` in a JSON text, as a float.
pub(super) fn json_f64(json: &str, key: &str) -> Option<f64> {
    let at = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let number: String =
        rest.chars().take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')).collect();
    number.parse().ok()
}

/// The first `"key": "text"` in a JSON text (no escapes expected: keys and names).
pub(super) fn json_str(json: &str, key: &str) -> Option<String> {
    let at = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

/// opsctl's `"phases": [{"name": …, "seconds": …}, …]`, in order.
pub(super) fn json_phases(json: &str) -> Vec<(String, f64)> {
    let Some(at) = json.find("\"phases\"") else { return Vec::new() };
    let rest = &json[at..];
    let list = &rest[..rest.find(']').unwrap_or(rest.len())];
    list.split('}').filter_map(|item| Some((json_str(item, "name")?, json_f64(item, "seconds")?))).collect()
}
