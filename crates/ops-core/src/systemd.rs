//! systemd, the one way this project talks to it: `systemctl` with an argv (never a shell), on
//! this host or by `docker exec` in a container that runs systemd. What the `[[systemd]]`
//! checks read (`show`) and what the `restart-unit` action does (`systemctl`), so both read a
//! unit the same way.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::SystemdCheckConfig;
use crate::ports::ExecSpec;
use crate::{Context, Error, Result};

/// Properties [`show`] reads.
pub const PROPERTIES: &str = "Id,Type,LoadState,ActiveState,SubState,Result,NRestarts,ExecMainStatus,ExecMainCode,\
ExecMainPID,StateChangeTimestamp,ActiveEnterTimestamp,Unit,LastTriggerUSec,NextElapseUSecRealtime,Description";

/// Properties of a unit, by name.
pub type UnitProperties = BTreeMap<String, String>;

/// Runs `systemctl ARGS…` on this host, or in `container` (a container name or Compose
/// service of the stack), within `timeout`: exit code, stdout, stderr.
///
/// # Errors
/// `Unavailable` when systemctl cannot be run (no such program, no engine for a container),
/// `NotFound` for an unknown container, `Timeout`.
pub async fn systemctl(
    ctx: &Context,
    container: Option<&str>,
    args: &[&str],
    timeout: Duration,
) -> Result<(i64, String, String)> {
    let mut argv = vec!["systemctl".to_owned()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    match container {
        Some(name) => {
            let rt = crate::stack::runtime(ctx)?;
            let stack = crate::stack::Stack::read(ctx).await?;
            let found = stack.find(name)?;
            let c = found.first().ok_or_else(|| Error::not_found(format!("no container {name}")))?;
            let out = rt.exec(&c.name, &ExecSpec { cmd: argv, timeout: Some(timeout), ..ExecSpec::default() }).await?;
            Ok((out.exit_code, out.stdout, out.stderr))
        }
        None => {
            let run = tokio::process::Command::new(&argv[0])
                .args(&argv[1..])
                .env("SYSTEMD_PAGER", "")
                .env("SYSTEMD_COLORS", "0")
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output();
            let out = tokio::time::timeout(timeout, run)
                .await
                .map_err(|_| Error::timeout("systemctl", timeout))?
                .map_err(|e| Error::unavailable(format!("cannot run systemctl: {e}")))?;
            Ok((
                i64::from(out.status.code().unwrap_or(-1)),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        }
    }
}

/// `systemctl show --property=… --timestamp=utc -- UNIT`: the unit's [`PROPERTIES`].
///
/// # Errors
/// Those of [`systemctl`]; `Unavailable` when it exits non-zero (its first line of stderr).
pub async fn show(ctx: &Context, container: Option<&str>, unit: &str, timeout: Duration) -> Result<UnitProperties> {
    let property = format!("--property={PROPERTIES}");
    let (code, stdout, stderr) =
        systemctl(ctx, container, &["show", &property, "--timestamp=utc", "--", unit], timeout).await?;
    if code != 0 {
        let why = stderr.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no reason given");
        return Err(Error::unavailable(format!(
            "systemctl show failed (exit {code}): {}",
            why.chars().take(200).collect::<String>()
        )));
    }
    Ok(stdout
        .lines()
        .take(256)
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.trim().to_owned())))
        .collect())
}

/// The `[[systemd]]` entry a caller names, by its check name or its unit: only a configured
/// unit may be acted on (never `sshd.service` because a request said so).
///
/// # Errors
/// `InvalidInput` when none is configured by that name.
pub fn configured<'a>(ctx: &'a Context, name: &str) -> Result<&'a SystemdCheckConfig> {
    ctx.config.systemd.iter().find(|c| c.check_name() == name || c.unit == name).ok_or_else(|| {
        Error::invalid_input(format!("no [[systemd]] entry named {name:?}: only a configured unit may be restarted"))
    })
}
