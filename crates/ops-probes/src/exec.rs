//! Checks run inside a container, through `docker exec` with an argv (never a shell string):
//! `[[exec]]` (the runbooks' `nginx -t`, `caddy validate`), and `[[http]]` / `[[tcp]]` checks
//! with `from-container` (the runbooks' `docker compose exec api wget -qO- http://indexer:3000/health`:
//! can the API reach the indexer from inside its network, where service names resolve as the
//! app sees them?).
//!
//! An in-container request uses the first tool the container has: `curl`, `wget`, or
//! `busybox wget` for HTTP; `nc -z` for TCP. Never a shell. A tool that is not there (exit 126
//! or 127) is skipped.

use std::time::{Duration, Instant};

use ops_core::config::{ExecCheckConfig, HttpCheckConfig, TcpCheckConfig};
use ops_core::ports::{ContainerRuntime, ContainerState, ExecOutput, ExecSpec};
use ops_core::{Context, Runbook, Status};

use crate::report::{Observation, ProbeKind, ProbeReport, Problem, Unit};
use crate::support::{clip, evidence_line, within};

/// Output lines kept as evidence.
const OUTPUT_LINES: usize = 10;

/// The engine and the running container `name` (a container or a Compose service of the
/// configured project) names, or why there is none (`Err(problem)`).
async fn running_container<'c>(ctx: &'c Context, name: &str) -> Result<(&'c dyn ContainerRuntime, String), Problem> {
    let unknown = |m: String| Problem::new(Runbook::ProbeFailed, Status::Unknown, m);
    let rt = ops_core::stack::runtime(ctx).map_err(|e| unknown(e.to_string()))?;
    let stack = ops_core::stack::Stack::read(ctx).await.map_err(|e| unknown(e.to_string()))?;
    let found = stack.find(name).map_err(|e| unknown(e.to_string()))?;
    let running = found.iter().find(|c| c.state == ContainerState::Running).map(|c| c.name.clone());
    running.map(|c| (rt, c)).ok_or_else(|| {
        let c = found[0];
        unknown(format!("container {} is {}: nothing runs in it", c.name, format!("{:?}", c.state).to_lowercase()))
    })
}

/// The last lines of an exec's output, redacted, as evidence.
fn output_evidence(out: &ExecOutput) -> Vec<String> {
    let text = format!("{}\n{}", out.stdout, out.stderr);
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(OUTPUT_LINES)..].iter().map(|l| evidence_line(l)).collect()
}

/// Runs an `[[exec]]` check: its command in its container within its `timeout-secs` (else
/// `timeout`); the exit code must be `expect-exit` and the output (stdout and stderr) must
/// contain `expect-output`. A failure is `command-failed` critical (or the check's runbook),
/// with the output's last lines as evidence; a container that is not running, or an exec the
/// engine refuses, is `probe-failed` unknown (the container's own check says why).
///
/// Observations: `exit_code`, `duration` (ms).
pub async fn probe(ctx: &Context, check: &ExecCheckConfig, timeout: Duration) -> ProbeReport {
    let mut base =
        ProbeReport::new(ProbeKind::Exec, &check.name, format!("{}: {}", check.container, check.command.join(" ")));
    base.critical = check.critical;
    base.depends_on = if check.depends_on.is_empty() {
        vec![format!("container:{}", check.container)]
    } else {
        check.depends_on.clone()
    };
    let limit = check.timeout_secs.map_or(timeout, Duration::from_secs);
    within(base, limit + Duration::from_secs(2), |mut report| async move {
        let (rt, container) = match running_container(ctx, &check.container).await {
            Ok(found) => found,
            Err(p) => {
                report.problem(p);
                return report;
            }
        };
        let started = Instant::now();
        let spec = ExecSpec { cmd: check.command.clone(), timeout: Some(limit), ..ExecSpec::default() };
        let out = match rt.exec(&container, &spec).await {
            Ok(out) => out,
            Err(e) => {
                report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, e.to_string()));
                return report;
            }
        };
        report.observe(Observation::new("duration", crate::net::millis(started.elapsed()), Unit::Milliseconds));
        #[allow(clippy::cast_precision_loss)]
        report.observe(Observation::new("exit_code", out.exit_code as f64, Unit::Count));
        let runbook = check.runbook.unwrap_or(Runbook::CommandFailed);
        let program = &check.command[0];
        let evidence = output_evidence(&out);
        if out.exit_code != check.expect_exit {
            let missing = matches!(out.exit_code, 126 | 127) && check.expect_exit != out.exit_code;
            let reason = if missing {
                format!("{program} could not be run in {container} (exit {}): is it installed there?", out.exit_code)
            } else {
                format!("{program} exited {} in {container} (expected {})", out.exit_code, check.expect_exit)
            };
            report.problem(Problem::new(runbook, Status::Critical, reason).with_evidence(evidence));
        } else if let Some(needle) = check.expect_output.as_deref()
            && !out.stdout.contains(needle)
            && !out.stderr.contains(needle)
        {
            report.problem(
                Problem::new(
                    runbook,
                    Status::Critical,
                    format!("the output of {program} lacks {:?}", clip(needle, 80)),
                )
                .with_evidence(evidence),
            );
        } else {
            report.message = format!("{program} exited {} in {container}", out.exit_code);
            report.evidence = evidence;
        }
        report
    })
    .await
}

/// One way to make a request from inside a container: the argv, and how to read its answer.
struct Tool {
    argv: Vec<String>,
    /// `curl -w` prints the status on the last line; `wget -S` prints the response head on stderr.
    kind: ToolKind,
}

#[derive(Clone, Copy)]
enum ToolKind {
    Curl,
    Wget,
    Tcp,
}

fn http_tools(url: &str, follow: bool, secs: u64) -> Vec<Tool> {
    let secs = secs.max(1).to_string();
    let mut curl = vec!["curl".to_owned(), "-sS".to_owned(), "--max-time".to_owned(), secs.clone()];
    if follow {
        curl.extend(["-L".to_owned(), "--max-redirs".to_owned(), crate::net::MAX_REDIRECTS.to_string()]);
    }
    // The status on stderr (curl 7.63 and later): the body on stdout may be cut at the
    // engine's output bound, and may end in digits of its own.
    curl.extend(["-w".to_owned(), "%{stderr}\n%{http_code}\n".to_owned(), "--".to_owned(), url.to_owned()]);
    // `-S` prints each response head on stderr (not with `-q` in GNU wget); one try only in
    // GNU wget (busybox's has no `-t`: a usage answer moves on to the next tool).
    let wget = |gnu: bool| {
        let mut argv: Vec<String> =
            if gnu { vec!["wget".to_owned()] } else { vec!["busybox".to_owned(), "wget".to_owned()] };
        argv.extend(["-S", "-O", "-", "-T"].map(str::to_owned));
        argv.push(secs.clone());
        if gnu {
            argv.extend(["-t", "1"].map(str::to_owned));
            if !follow {
                argv.extend(["--max-redirect", "0"].map(str::to_owned));
            }
        }
        argv.push(url.to_owned());
        argv
    };
    vec![
        Tool { argv: curl, kind: ToolKind::Curl },
        Tool { argv: wget(true), kind: ToolKind::Wget },
        Tool { argv: wget(false), kind: ToolKind::Wget },
    ]
}

fn tcp_tools(host: &str, port: u16, secs: u64) -> Vec<Tool> {
    let secs = secs.max(1).to_string();
    vec![Tool {
        argv: ["nc", "-z", "-w", &secs, host, &port.to_string()].map(str::to_owned).to_vec(),
        kind: ToolKind::Tcp,
    }]
}

/// Runs the first tool the container has. `Err` when none is there or the engine refused.
async fn run_first(
    rt: &dyn ContainerRuntime,
    container: &str,
    tools: Vec<Tool>,
    limit: Duration,
) -> Result<(ToolKind, String, ExecOutput), String> {
    let mut tried = Vec::new();
    for tool in tools {
        let name = tool.argv[..if tool.argv[0] == "busybox" { 2 } else { 1 }].join(" ");
        let spec = ExecSpec { cmd: tool.argv, timeout: Some(limit), ..ExecSpec::default() };
        let out = rt.exec(container, &spec).await.map_err(|e| e.to_string())?;
        // Not installed (126/127), or a tool of that name that takes other options (busybox
        // as `wget`): the next one.
        let usage = out.exit_code != 0
            && ["unrecognized option", "invalid option", "unknown option", "Usage:"]
                .iter()
                .any(|m| out.stderr.contains(m));
        if matches!(out.exit_code, 126 | 127) || usage {
            tried.push(name);
            continue;
        }
        return Ok((tool.kind, name, out));
    }
    Err(format!("{container} has none of {} to make the request with", tried.join(", ")))
}

/// The status code curl wrote last on stderr (`-w "%{stderr}\n%{http_code}\n"`; `000` when
/// there was no answer).
fn curl_status(stderr: &str) -> Option<u16> {
    stderr.lines().map(str::trim).rfind(|l| !l.is_empty())?.parse().ok().filter(|c| *c != 0)
}

/// The status of the last response head a `wget -S` printed (`  HTTP/1.1 200 OK`).
fn wget_status(stderr: &str) -> Option<u16> {
    stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("HTTP/"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .next_back()
}

/// An `[[http]]` check with `from-container`: the request made inside that container. Judged
/// as [`crate::http::probe`] judges (status, body, JSON field: `api-down` critical), without
/// the phase timings (the tools do not give them); `total` is the exec's wall time.
pub async fn http_probe(ctx: &Context, check: &HttpCheckConfig, container: &str, timeout: Duration) -> ProbeReport {
    let mut base = ProbeReport::new(ProbeKind::Http, &check.name, format!("{} from {container}", check.url.redacted()));
    base.critical = check.critical;
    base.depends_on = check.depends_on.clone();
    base.depends_on.push(format!("container:{container}"));
    let limit = check.timeout_secs.map_or(timeout, Duration::from_secs);
    within(base, limit + Duration::from_secs(3), |mut report| async move {
        let fail =
            |report: &mut ProbeReport, runbook, status, m: String| report.problem(Problem::new(runbook, status, m));
        let (rt, inside) = match running_container(ctx, container).await {
            Ok(found) => found,
            Err(p) => {
                report.problem(p);
                return report;
            }
        };
        let started = Instant::now();
        let tools = http_tools(check.url.expose(), check.follow_redirects, limit.as_secs());
        let (kind, tool, out) = match run_first(rt, &inside, tools, limit + Duration::from_secs(1)).await {
            Ok(answer) => answer,
            Err(m) => {
                fail(&mut report, Runbook::ProbeFailed, Status::Unknown, m);
                return report;
            }
        };
        report.observe(Observation::new("total", crate::net::millis(started.elapsed()), Unit::Milliseconds));
        let (status, body) = match kind {
            ToolKind::Curl => (curl_status(&out.stderr), out.stdout.clone()),
            _ => (wget_status(&out.stderr), out.stdout.clone()),
        };
        report.exchange_ok = Some(false);
        let Some(code) = status else {
            let why = out.stderr.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("no answer").to_owned();
            fail(
                &mut report,
                Runbook::ApiDown,
                Status::Critical,
                format!("no answer from inside {inside} ({tool}): {}", evidence_line(&why)),
            );
            return report;
        };
        report.observe(Observation::new("status_code", f64::from(code), Unit::Count));
        let response = crate::net::Response {
            status: hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR),
            location: None,
            body_bytes: body.len() as u64,
            body: body.into_bytes(),
            redirects: 0,
        };
        let problems = crate::http::judge_answer(check, &response);
        report.exchange_ok = Some(problems.is_empty());
        if problems.is_empty() {
            report.message = format!("HTTP {code} from inside {inside} ({tool})");
        }
        for p in problems {
            report.problem(p);
        }
        report
    })
    .await
}

/// A `[[tcp]]` check with `from-container`: the connection made inside that container.
pub async fn tcp_probe(ctx: &Context, check: &TcpCheckConfig, container: &str, timeout: Duration) -> ProbeReport {
    let mut base = ProbeReport::new(ProbeKind::Tcp, &check.name, format!("{} from {container}", check.address.trim()));
    base.critical = check.critical;
    base.depends_on = check.depends_on.clone();
    base.depends_on.push(format!("container:{container}"));
    within(base, timeout + Duration::from_secs(3), |mut report| async move {
        let (host, port) = match crate::net::split_host_port(&check.address) {
            Ok(hp) => hp,
            Err(m) => {
                report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, m));
                return report;
            }
        };
        let (rt, inside) = match running_container(ctx, container).await {
            Ok(found) => found,
            Err(p) => {
                report.problem(p);
                return report;
            }
        };
        let started = Instant::now();
        match run_first(rt, &inside, tcp_tools(&host, port, timeout.as_secs()), timeout + Duration::from_secs(1)).await
        {
            Err(m) => report.problem(Problem::new(Runbook::ProbeFailed, Status::Unknown, m)),
            Ok((_, tool, out)) => {
                report.observe(Observation::new("connect", crate::net::millis(started.elapsed()), Unit::Milliseconds));
                report.exchange_ok = Some(out.exit_code == 0);
                if out.exit_code == 0 {
                    report.message = format!("{host}:{port} accepts connections from inside {inside} ({tool})");
                } else {
                    let why = format!("{}\n{}", out.stdout, out.stderr);
                    let why = why.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("refused or unreachable");
                    report.problem(Problem::new(
                        Runbook::PortClosed,
                        Status::Critical,
                        format!(
                            "{host}:{port} does not accept connections from inside {inside}: {}",
                            evidence_line(why)
                        ),
                    ));
                }
            }
        }
        report
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_of_the_tools_are_read() {
        assert_eq!(curl_status("\n200\n"), Some(200));
        assert_eq!(curl_status("curl: (6) Could not resolve host: indexer\n000\n"), None);
        let wget =
            "  HTTP/1.1 301 Moved\n  Location: /x\n  HTTP/1.1 503 Service Unavailable\nwget: server returned error";
        assert_eq!(wget_status(wget), Some(503));
        assert_eq!(wget_status("wget: bad address 'indexer:3000'"), None);
    }

    #[test]
    fn the_tcp_target_is_an_argument() {
        let tools = tcp_tools("x; rm -rf /", 1, 3);
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0].argv, ["nc", "-z", "-w", "3", "x; rm -rf /", "1"]);
    }
}
