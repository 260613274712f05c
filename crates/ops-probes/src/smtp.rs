//! `[[smtp]]`: a mail server checked the way the runbooks' `nodemailer.verify()` does, without
//! sending mail: connect, banner, EHLO, STARTTLS (or TLS from the first byte) with the
//! certificate verified like the TLS checks, AUTH PLAIN or LOGIN when a user is configured,
//! QUIT. Each stage is timed, and a failure says which stage it was, so "refused", "TLS
//! failed" and "our password was refused" read differently. Every failure is `email-failing`
//! critical; the password is never written anywhere (it is sent base64-encoded inside TLS only).

use std::time::{Duration, Instant};

use ops_core::config::{SmtpCheckConfig, SmtpTls};
use ops_core::{Runbook, Status};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio_rustls::TlsConnector;

use crate::net::{self, NetOptions};
use crate::report::{Observation, ProbeKind, ProbeReport, Problem, Unit};
use crate::support::clip;

/// Longest reply line read, and most lines of one reply.
const MAX_LINE: u64 = 2048;
const MAX_LINES: usize = 64;

/// The stage a conversation failed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connect,
    Banner,
    Ehlo,
    Tls,
    Auth,
    Quit,
}

impl Stage {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Banner => "banner",
            Self::Ehlo => "EHLO",
            Self::Tls => "TLS",
            Self::Auth => "login",
            Self::Quit => "QUIT",
        }
    }
}

struct Failed(Stage, String);

/// One reply: its code and its lines' texts.
async fn reply<S: AsyncRead + Unpin>(r: &mut BufReader<S>) -> Result<(u16, Vec<String>), String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = (&mut *r).take(MAX_LINE).read_line(&mut line).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed the connection".to_owned());
        }
        let line = line.trim_end();
        let code: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("not an SMTP reply: {:?}", clip(line, 80)))?;
        lines.push(line.get(4..).unwrap_or_default().to_owned());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, lines));
        }
        if lines.len() >= MAX_LINES {
            return Err("a reply of too many lines".to_owned());
        }
    }
}

async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut BufReader<S>,
    line: &str,
) -> Result<(u16, Vec<String>), String> {
    r.get_mut().write_all(format!("{line}\r\n").as_bytes()).await.map_err(|e| e.to_string())?;
    r.get_mut().flush().await.map_err(|e| e.to_string())?;
    reply(r).await
}

/// `250`-style expectation: the reply, or the stage failed with what the server said.
fn expect(stage: Stage, got: Result<(u16, Vec<String>), String>, ok: &[u16]) -> Result<Vec<String>, Failed> {
    match got {
        Ok((code, lines)) if ok.contains(&code) => Ok(lines),
        Ok((code, lines)) => Err(Failed(stage, format!("{code} {}", clip(&lines.join(" "), 160)))),
        Err(e) => Err(Failed(stage, e)),
    }
}

/// What this probe says as its EHLO name.
fn helo_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.')))
        .unwrap_or_else(|| "ops-probe.localdomain".to_owned())
}

/// Probes one mail server within the check's `timeout-secs` (else `options.timeout`).
///
/// Observations (ms): `connect`, `banner`, `ehlo`, `tls`, `auth`, `total`.
pub async fn probe(check: &SmtpCheckConfig, options: &NetOptions) -> ProbeReport {
    let started = Instant::now();
    let mut report = ProbeReport::new(ProbeKind::Smtp, &check.name, check.address.trim());
    report.critical = check.critical;
    report.depends_on.clone_from(&check.depends_on);
    let limit = check.timeout_secs.map_or(options.timeout, Duration::from_secs);
    let mut stage = Stage::Connect;
    let outcome = tokio::time::timeout(limit, converse(check, options, &mut report, &mut stage)).await;
    let failure = match outcome {
        Ok(Ok(message)) => {
            report.message = message;
            None
        }
        Ok(Err(Failed(stage, why))) => Some((stage, why)),
        Err(_) => Some((stage, format!("no answer within {:.1} s", limit.as_secs_f64()))),
    };
    report.exchange_ok = Some(failure.is_none());
    if let Some((stage, why)) = failure {
        let message = match stage {
            Stage::Connect => format!("cannot connect: {why}"),
            Stage::Tls => format!("TLS failed: {why}"),
            Stage::Auth => format!("login refused: {why}"),
            other => format!("{} failed: {why}", other.as_str()),
        };
        report.problem(Problem::new(Runbook::EmailFailing, Status::Critical, message));
    }
    report.observe(Observation::new("total", net::millis(started.elapsed()), Unit::Milliseconds));
    report.finish(started.elapsed())
}

async fn converse(
    check: &SmtpCheckConfig,
    options: &NetOptions,
    report: &mut ProbeReport,
    stage: &mut Stage,
) -> Result<String, Failed> {
    let (host, port) = net::split_host_port(&check.address).map_err(|e| Failed(Stage::Connect, e))?;
    let t = Instant::now();
    let addrs = net::resolve(&host, port).await.map_err(|e| Failed(Stage::Connect, e))?;
    let tcp = net::connect_any(&addrs).await.map_err(|e| Failed(Stage::Connect, e))?;
    report.observe(Observation::new("connect", net::millis(t.elapsed()), Unit::Milliseconds));
    let name = check.server_name.clone().unwrap_or_else(|| host.clone());
    let ca_file = check.ca_file.as_deref().or(options.ca_file.as_deref());
    let tls_to = |tcp: tokio::net::TcpStream| {
        let name = name.clone();
        async move {
            let config = net::tls_config(ca_file).map_err(|e| Failed(Stage::Tls, e))?;
            let server = ServerName::try_from(name.clone())
                .map_err(|e| Failed(Stage::Tls, format!("invalid server name {name:?}: {e}")))?;
            let t = Instant::now();
            let stream = TlsConnector::from(config)
                .connect(server, tcp)
                .await
                .map_err(|e| Failed(Stage::Tls, net::error_chain(&e)))?;
            Ok::<_, Failed>((stream, t.elapsed()))
        }
    };
    match check.tls {
        SmtpTls::Implicit => {
            *stage = Stage::Tls;
            let (tls, took) = tls_to(tcp).await?;
            report.observe(Observation::new("tls", net::millis(took), Unit::Milliseconds));
            let mut r = BufReader::new(tls);
            *stage = Stage::Banner;
            let banner = greet(&mut r, report).await?;
            *stage = Stage::Ehlo;
            let ehlo = ehlo(&mut r, report).await?;
            finish(check, &mut r, report, stage, &ehlo, &banner, "implicit TLS").await
        }
        SmtpTls::None => {
            let mut r = BufReader::new(tcp);
            *stage = Stage::Banner;
            let banner = greet(&mut r, report).await?;
            *stage = Stage::Ehlo;
            let ehlo = ehlo(&mut r, report).await?;
            finish(check, &mut r, report, stage, &ehlo, &banner, "no TLS").await
        }
        SmtpTls::Starttls => {
            let mut r = BufReader::new(tcp);
            *stage = Stage::Banner;
            let banner = greet(&mut r, report).await?;
            *stage = Stage::Ehlo;
            let first = ehlo(&mut r, report).await?;
            if !first.iter().any(|l| l.eq_ignore_ascii_case("STARTTLS")) {
                return Err(Failed(Stage::Tls, "the server does not offer STARTTLS".to_owned()));
            }
            *stage = Stage::Tls;
            expect(Stage::Tls, command(&mut r, "STARTTLS").await, &[220])?;
            // Nothing the server sent before the handshake may be read after it.
            if !r.buffer().is_empty() {
                return Err(Failed(Stage::Tls, "the server sent data after 220 to STARTTLS".to_owned()));
            }
            let (tls, took) = tls_to(r.into_inner()).await?;
            report.observe(Observation::new("tls", net::millis(took), Unit::Milliseconds));
            let mut r = BufReader::new(tls);
            *stage = Stage::Ehlo;
            let ehlo = ehlo(&mut r, report).await?;
            finish(check, &mut r, report, stage, &ehlo, &banner, "STARTTLS").await
        }
    }
}

async fn greet<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut BufReader<S>,
    report: &mut ProbeReport,
) -> Result<String, Failed> {
    let t = Instant::now();
    let lines = expect(Stage::Banner, reply(r).await, &[220])?;
    report.observe(Observation::new("banner", net::millis(t.elapsed()), Unit::Milliseconds));
    Ok(lines.first().cloned().unwrap_or_default())
}

async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut BufReader<S>,
    report: &mut ProbeReport,
) -> Result<Vec<String>, Failed> {
    let t = Instant::now();
    let lines = expect(Stage::Ehlo, command(r, &format!("EHLO {}", helo_name())).await, &[250])?;
    report.observe(Observation::new("ehlo", net::millis(t.elapsed()), Unit::Milliseconds));
    Ok(lines)
}

/// AUTH when configured, then QUIT; the success message.
async fn finish<S: AsyncRead + AsyncWrite + Unpin>(
    check: &SmtpCheckConfig,
    r: &mut BufReader<S>,
    report: &mut ProbeReport,
    stage: &mut Stage,
    ehlo: &[String],
    banner: &str,
    how: &str,
) -> Result<String, Failed> {
    let mut done = format!("accepts mail over {how}");
    if let Some(user) = &check.username {
        *stage = Stage::Auth;
        let password = check.password.as_ref().map(|p| p.expose()).unwrap_or_default();
        let mechanisms: Vec<String> = ehlo
            .iter()
            .filter_map(|l| l.strip_prefix("AUTH ").or_else(|| l.strip_prefix("AUTH=")))
            .flat_map(|m| m.split_whitespace().map(str::to_ascii_uppercase).collect::<Vec<_>>())
            .collect();
        let t = Instant::now();
        if mechanisms.iter().any(|m| m == "PLAIN") {
            let token = net::base64(format!("\0{user}\0{password}").as_bytes());
            expect(Stage::Auth, command(r, &format!("AUTH PLAIN {token}")).await, &[235])?;
        } else if mechanisms.iter().any(|m| m == "LOGIN") {
            expect(Stage::Auth, command(r, "AUTH LOGIN").await, &[334])?;
            expect(Stage::Auth, command(r, &net::base64(user.as_bytes())).await, &[334])?;
            expect(Stage::Auth, command(r, &net::base64(password.as_bytes())).await, &[235])?;
        } else {
            return Err(Failed(Stage::Auth, "the server offers neither AUTH PLAIN nor AUTH LOGIN".to_owned()));
        }
        report.observe(Observation::new("auth", net::millis(t.elapsed()), Unit::Milliseconds));
        done.push_str(&format!(", login as {user} accepted"));
    }
    *stage = Stage::Quit;
    // A server that drops the connection on QUIT has still done its work.
    let _ = command(r, "QUIT").await;
    if !banner.is_empty() {
        report.evidence.push(clip(banner, 160));
    }
    Ok(done)
}
