//! Renewal, planned then applied: check the targets, run the renewal commands through the
//! [`ContainerRuntime`] port only when a certificate is under the threshold (or when forced),
//! then check again.
//!
//! [`renew_plan`] runs nothing and can be shown first; [`apply_renew_plan`] runs exactly the
//! plan; [`renew`] does both.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ops_core::audit::Audit;
use ops_core::ports::{ContainerRuntime, ExecSpec};
use ops_core::{Finding, Status};
use serde::{Deserialize, Serialize};

use crate::endpoint::elapsed_ms;
use crate::{CheckOptions, EndpointReport, Error, PathReport, Result, check_endpoint, check_path};

/// Most of a command's output kept in a report (its end, where errors are).
const OUTPUT_TAIL_BYTES: usize = 4096;

/// What to check, what to run, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RenewOptions {
    /// Endpoints to check (`host`, `host:port`, `https://host/`).
    pub endpoints: Vec<String>,
    /// PEM files or directories to check (certbot's `live/`).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub paths: Vec<PathBuf>,
    /// Commands to run, in order, when renewal is due (`certbot renew` in `certbot`, then
    /// `nginx -s reload` in `nginx`). A failing command stops the ones after it.
    pub commands: Vec<RenewCommand>,
    /// Run the commands even when no certificate is under the threshold.
    pub force: bool,
    /// Renew when a target has fewer days left than this (default: `check.warn-days`).
    pub renew_below_days: Option<u32>,
    /// Wait this long, in milliseconds, between the last command and the second check, so a
    /// graceful reload has switched certificates.
    pub recheck_delay_ms: u64,
    /// How to check the targets.
    pub check: CheckOptions,
}

impl Default for RenewOptions {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            paths: Vec::new(),
            commands: Vec::new(),
            force: false,
            renew_below_days: None,
            recheck_delay_ms: 2_000,
            check: CheckOptions::default(),
        }
    }
}

impl RenewOptions {
    /// The threshold renewal uses.
    #[must_use]
    pub fn renew_below_days(&self) -> u32 {
        self.renew_below_days.unwrap_or(self.check.warn_days)
    }

    fn validate(&self) -> Result<()> {
        self.check.validate()?;
        if self.commands.is_empty() {
            return Err(Error::InvalidOption {
                option: "commands",
                reason: "no renewal command configured".to_owned(),
            });
        }
        if let Some(i) = self.commands.iter().position(|c| c.container.is_empty() || c.cmd.is_empty()) {
            return Err(Error::InvalidOption {
                option: "commands",
                reason: format!("command {} needs a container and a program", i + 1),
            });
        }
        if self.endpoints.is_empty() && self.paths.is_empty() && !self.force {
            return Err(Error::InvalidOption {
                option: "endpoints",
                reason: "no endpoint or path to check (set force to renew unconditionally)".to_owned(),
            });
        }
        Ok(())
    }
}

/// One command run inside a container, without a shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RenewCommand {
    /// Container name or id (`certbot`).
    pub container: String,
    /// Program and arguments (`["certbot", "renew", "--quiet"]`).
    pub cmd: Vec<String>,
    /// Give up waiting after this many seconds (default: the runtime's own limit).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// The report of one checked target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TargetReport {
    /// An endpoint.
    Endpoint(EndpointReport),
    /// A file or directory.
    Path(PathReport),
}

impl TargetReport {
    /// The target's status.
    #[must_use]
    pub const fn status(&self) -> Status {
        match self {
            Self::Endpoint(r) => r.status,
            Self::Path(r) => r.status,
        }
    }

    /// Days left on the target's earliest-expiring certificate, when one was seen.
    #[must_use]
    pub const fn days_left(&self) -> Option<i64> {
        match self {
            Self::Endpoint(r) => r.days_left,
            Self::Path(r) => r.days_left,
        }
    }

    /// The endpoint or path, for people.
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Self::Endpoint(r) => r.target.clone(),
            Self::Path(r) => r.path.display().to_string(),
        }
    }
}

/// What renewal would do, decided from a check of every target. Running nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenewPlan {
    /// Whether the commands are to run.
    pub run: bool,
    /// Why or why not, for people.
    pub reason: String,
    /// The threshold, in days.
    pub renew_below_days: u32,
    /// Targets under the threshold.
    pub due: Vec<String>,
    /// The commands, in the order they would run.
    pub commands: Vec<RenewCommand>,
    /// The check that decided.
    pub before: Vec<TargetReport>,
    /// How long planning took, in milliseconds.
    pub duration_ms: u64,
}

/// How one command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommandOutcome {
    /// Container it ran in.
    pub container: String,
    /// Program and arguments.
    pub cmd: Vec<String>,
    /// Exit code, when it ran to the end.
    pub exit_code: Option<i64>,
    /// End of its standard output.
    pub stdout: String,
    /// End of its standard error.
    pub stderr: String,
    /// Why it could not be run or waited for (container missing or stopped, timeout).
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

impl CommandOutcome {
    /// Ran and exited 0.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.exit_code == Some(0)
    }
}

/// Before and after a renewal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenewReport {
    /// The second check's worst status when commands ran and succeeded; `critical` when a command
    /// failed; the first check's worst status when nothing ran.
    pub status: Status,
    /// The plan that was applied (it holds the first check).
    pub plan: RenewPlan,
    /// The commands run, in order; those after a failure are not run.
    pub executed: Vec<CommandOutcome>,
    /// The second check; empty when nothing ran.
    pub after: Vec<TargetReport>,
    /// Problems with the renewal itself (a failed command).
    pub findings: Vec<Finding>,
    /// How long planning, commands and the second check took, in milliseconds.
    pub duration_ms: u64,
}

/// Checks every target and decides whether the renewal commands are due: some target has fewer
/// than [`RenewOptions::renew_below_days`] days left (expired included), or `force` is set. A
/// target without any certificate seen (connection refused) is not a reason to renew.
///
/// # Errors
/// Invalid options (no command, no target without `force`, thresholds out of range), and the
/// errors of [`check_endpoint`] and [`check_path`] for unusable targets.
pub async fn renew_plan(options: &RenewOptions) -> Result<RenewPlan> {
    let started = Instant::now();
    options.validate()?;
    let before = check_all(options).await?;
    let threshold = options.renew_below_days();
    let due: Vec<String> = before
        .iter()
        .filter(|t| t.days_left().is_some_and(|d| d < i64::from(threshold)))
        .map(TargetReport::label)
        .collect();
    let (run, reason) = if !due.is_empty() {
        (true, format!("{} target(s) under {threshold} days: {}", due.len(), due.join(", ")))
    } else if options.force {
        (true, "forced".to_owned())
    } else {
        (false, format!("no certificate under {threshold} days"))
    };
    Ok(RenewPlan {
        run,
        reason,
        renew_below_days: threshold,
        due,
        commands: options.commands.clone(),
        before,
        duration_ms: elapsed_ms(started),
    })
}

/// Runs `plan`'s commands in order through `runtime` when the plan says so (stopping at the
/// first failure), then checks the targets of `options` again.
///
/// # Errors
/// The errors of [`check_endpoint`] and [`check_path`] during the second check. A failed
/// command is a finding in the report, not an `Err`.
pub async fn apply_renew_plan(
    runtime: &dyn ContainerRuntime,
    plan: RenewPlan,
    options: &RenewOptions,
    audit: &Audit,
) -> Result<RenewReport> {
    let started = Instant::now();
    let planning_ms = plan.duration_ms;
    if !plan.run {
        let status = worst(&plan.before);
        return Ok(RenewReport {
            status,
            plan,
            executed: Vec::new(),
            after: Vec::new(),
            findings: Vec::new(),
            duration_ms: planning_ms + elapsed_ms(started),
        });
    }
    // No record, no change: the intent is on disk before the first command runs.
    record(audit, &plan, None)?;
    let mut executed = Vec::new();
    let mut findings = Vec::new();
    for command in &plan.commands {
        let outcome = run_command(runtime, command).await;
        let ok = outcome.succeeded();
        if !ok {
            let why = outcome
                .error
                .clone()
                .unwrap_or_else(|| format!("exited {}: {}", outcome.exit_code.unwrap_or(-1), outcome.stderr.trim()));
            findings.push(Finding {
                subject: format!("container:{}", command.container),
                status: Status::Critical,
                message: format!("renewal command {:?} failed: {why}", command.cmd.join(" ")),
                evidence: Vec::new(),
            });
        }
        executed.push(outcome);
        if !ok {
            break;
        }
    }
    if findings.is_empty() && options.recheck_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(options.recheck_delay_ms)).await;
    }
    let after = check_all(options).await;
    if let Err(e) = record(audit, &plan, Some((&executed, after.as_deref().unwrap_or_default()))) {
        tracing::error!(error = %e, "the renewal's audit record could not be written");
    }
    let after = after?;
    let status = findings.iter().map(|f| f.status).max().unwrap_or(Status::Ok).max(worst(&after));
    Ok(RenewReport { status, plan, executed, after, findings, duration_ms: planning_ms + elapsed_ms(started) })
}

/// The audit record of a renewal: each target's days left before and, once the commands ran,
/// after; each command's container, program and exit. Never the arguments or the output: they
/// may hold a token from the environment. Without an outcome, the intent (`started`).
fn record(audit: &Audit, plan: &RenewPlan, outcome: Option<(&[CommandOutcome], &[TargetReport])>) -> Result<()> {
    let days = |reports: &[TargetReport]| {
        reports
            .iter()
            .map(|r| serde_json::json!({ "target": r.label(), "days_left": r.days_left(), "status": r.status() }))
            .collect::<Vec<_>>()
    };
    let program = |cmd: &[String]| cmd.first().cloned().unwrap_or_default();
    let before = serde_json::json!({ "due": plan.due, "certificates": days(&plan.before) });
    let (after, result) = match outcome {
        None => {
            let planned: Vec<_> = plan
                .commands
                .iter()
                .map(|c| serde_json::json!({ "container": c.container, "program": program(&c.cmd) }))
                .collect();
            (serde_json::json!({ "commands": planned }), "started".to_owned())
        }
        Some((executed, after)) => {
            let commands: Vec<_> = executed
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "container": c.container,
                        "program": program(&c.cmd),
                        "exit_code": c.exit_code,
                        "ran": c.error.is_none(),
                    })
                })
                .collect();
            let result = match executed.iter().find(|c| !c.succeeded()) {
                None => "ok".to_owned(),
                Some(c) => match c.exit_code {
                    Some(code) => format!("{} in {} exited {code}", program(&c.cmd), c.container),
                    None => format!("{} in {} could not run", program(&c.cmd), c.container),
                },
            };
            (serde_json::json!({ "commands": commands, "certificates": days(after) }), result)
        }
    };
    let target = format!("tls:{}", plan.before.iter().map(TargetReport::label).collect::<Vec<_>>().join(","));
    audit.record("tls-renew", &target, before, after, &result).map_err(Error::Audit)
}

/// [`renew_plan`], then [`apply_renew_plan`].
///
/// # Errors
/// Those of [`renew_plan`] and [`apply_renew_plan`].
pub async fn renew(runtime: &dyn ContainerRuntime, options: &RenewOptions, audit: &Audit) -> Result<RenewReport> {
    let plan = renew_plan(options).await?;
    apply_renew_plan(runtime, plan, options, audit).await
}

async fn check_all(options: &RenewOptions) -> Result<Vec<TargetReport>> {
    let mut reports = Vec::with_capacity(options.endpoints.len() + options.paths.len());
    for endpoint in &options.endpoints {
        reports.push(TargetReport::Endpoint(check_endpoint(endpoint, &options.check).await?));
    }
    for path in &options.paths {
        reports.push(TargetReport::Path(check_path(path, &options.check).await?));
    }
    Ok(reports)
}

fn worst(reports: &[TargetReport]) -> Status {
    reports.iter().map(TargetReport::status).max().unwrap_or(Status::Ok)
}

async fn run_command(runtime: &dyn ContainerRuntime, command: &RenewCommand) -> CommandOutcome {
    let started = Instant::now();
    let spec = ExecSpec {
        cmd: command.cmd.clone(),
        timeout: command.timeout_secs.map(Duration::from_secs),
        ..ExecSpec::default()
    };
    tracing::info!(container = %command.container, cmd = ?command.cmd, "running renewal command");
    let (exit_code, stdout, stderr, error) = match runtime.exec(&command.container, &spec).await {
        Ok(out) => (Some(out.exit_code), tail(&out.stdout), tail(&out.stderr), None),
        Err(e) => (None, String::new(), String::new(), Some(e.to_string())),
    };
    CommandOutcome {
        container: command.container.clone(),
        cmd: command.cmd.clone(),
        exit_code,
        stdout,
        stderr,
        error,
        duration_ms: elapsed_ms(started),
    }
}

fn tail(text: &str) -> String {
    if text.len() <= OUTPUT_TAIL_BYTES {
        return text.to_owned();
    }
    let mut start = text.len() - OUTPUT_TAIL_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

#[cfg(test)]
mod tests;
