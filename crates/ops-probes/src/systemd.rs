//! `[[systemd]]`: a systemd unit (the runbooks' `systemctl status caddy`, `systemctl status
//! gitea-runner`) or timer (a backup timer), read with `systemctl show --property=…` (argv,
//! never a shell; through `ops_core::systemd`) on this host, or by `docker exec` in a container
//! that runs systemd.
//!
//! - not loaded (no such unit): `unit-failed` critical;
//! - `failed`: critical, with its result and last exit status;
//! - restarting (`activating` / `auto-restart`): critical, with the restart count;
//! - `inactive` (a service that should run, a timer that is not scheduled): critical;
//! - running with `NRestarts` at `restarts-warn` (3) or more: warn.
//!
//! A timer also reports its last and next trigger, and the result of the service it starts:
//! a backup timer whose service failed is `unit-failed` critical.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ops_core::config::SystemdCheckConfig;
use ops_core::systemd::show;
use ops_core::{Context, Runbook, Status};

use crate::report::{Observation, ProbeKind, ProbeReport, Problem, Unit};
use crate::support::within;

/// A systemd timestamp (`Thu 2026-12-03 14:00:00 UTC`, with `--timestamp=utc`).
pub fn timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() || text == "n/a" || text == "0" {
        return None;
    }
    let no_day = text.split_once(' ').map_or(text, |(_, rest)| rest);
    let no_zone = no_day.strip_suffix(" UTC").unwrap_or(no_day);
    chrono::NaiveDateTime::parse_from_str(no_zone, "%Y-%m-%d %H:%M:%S").ok().map(|t| t.and_utc())
}

fn ago(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    t.map(|t| {
        let d = now.signed_duration_since(t).to_std().unwrap_or_default();
        format!(" since {} ago", ops_core::units::human_duration(d))
    })
    .unwrap_or_default()
}

/// Probes one unit within `timeout`.
///
/// Observations: `restarts` (NRestarts), `in_state` (seconds since its state changed); for a
/// timer `last_trigger_age` and `next_trigger_in` (seconds).
pub async fn probe(ctx: &Context, check: &SystemdCheckConfig, timeout: Duration) -> ProbeReport {
    let target = match &check.container {
        Some(c) => format!("{} in {c}", check.unit),
        None => check.unit.clone(),
    };
    let mut base = ProbeReport::new(ProbeKind::Systemd, &check.check_name(), target);
    base.critical = check.critical;
    base.depends_on.clone_from(&check.depends_on);
    within(base, timeout, |mut report| async move {
        let props = match show(ctx, check.container.as_deref(), &check.unit, timeout).await {
            Ok(p) => p,
            Err(e) => {
                report.problem(Problem::new(
                    Runbook::ProbeFailed,
                    Status::Unknown,
                    crate::evidence_line(&e.to_string()),
                ));
                return report;
            }
        };
        let now = Utc::now();
        judge(&check.unit, &props, check.restarts_warn.unwrap_or(3), now, &mut report);
        // A timer: the service it starts, and how its last run ended.
        if check.unit.ends_with(".timer")
            && let Some(service) = props.get("Unit").filter(|u| !u.is_empty())
            && let Ok(sp) = show(ctx, check.container.as_deref(), service, timeout).await
            && sp.get("Result").is_some_and(|r| r != "success")
        {
            let status = sp.get("ExecMainStatus").map(String::as_str).unwrap_or("?");
            report.problem(Problem::new(
                Runbook::UnitFailed,
                Status::Critical,
                format!(
                    "the last run of {service} failed: result {}, exit status {status}",
                    sp.get("Result").map(String::as_str).unwrap_or_default()
                ),
            ));
        }
        report
    })
    .await
}

/// The unit's verdict from its properties.
fn judge(unit: &str, p: &BTreeMap<String, String>, restarts_warn: u32, now: DateTime<Utc>, report: &mut ProbeReport) {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
    let restarts: u32 = get("NRestarts").parse().unwrap_or(0);
    let changed = timestamp(get("StateChangeTimestamp"));
    report.observe(Observation::new("restarts", f64::from(restarts), Unit::Count));
    if let Some(t) = changed {
        #[allow(clippy::cast_precision_loss)]
        report.observe(Observation::new("in_state", now.signed_duration_since(t).num_seconds() as f64, Unit::Seconds));
    }
    let timer = unit.ends_with(".timer");
    if timer {
        if let Some(last) = timestamp(get("LastTriggerUSec")) {
            #[allow(clippy::cast_precision_loss)]
            report.observe(Observation::new(
                "last_trigger_age",
                now.signed_duration_since(last).num_seconds() as f64,
                Unit::Seconds,
            ));
        }
        if let Some(next) = timestamp(get("NextElapseUSecRealtime")) {
            #[allow(clippy::cast_precision_loss)]
            report.observe(Observation::new(
                "next_trigger_in",
                next.signed_duration_since(now).num_seconds() as f64,
                Unit::Seconds,
            ));
            report.evidence.push(format!("next trigger {}", next.to_rfc3339()));
        }
    }
    let (active, sub, result) = (get("ActiveState"), get("SubState"), get("Result"));
    let exit = match (get("ExecMainCode"), get("ExecMainStatus")) {
        (_, "" | "0") => String::new(),
        // ExecMainCode 2 is "killed": the status is the signal.
        ("2", s) => format!(", killed by signal {s}"),
        (_, s) => format!(", exit status {s}"),
    };
    let critical =
        |report: &mut ProbeReport, m: String| report.problem(Problem::new(Runbook::UnitFailed, Status::Critical, m));
    if get("LoadState") != "loaded" {
        critical(
            report,
            format!(
                "{unit} is {} (no such unit?)",
                if get("LoadState").is_empty() { "not loaded" } else { get("LoadState") }
            ),
        );
    } else if active == "failed" {
        critical(report, format!("failed (result {result}{exit}){}", ago(changed, now)));
    } else if active == "activating" && sub == "auto-restart" {
        critical(report, format!("restarting: {restarts} restarts so far (result {result}{exit})"));
    } else if active == "inactive" || active == "deactivating" {
        let what = if timer { "not scheduled" } else { "not running" };
        critical(report, format!("{active} ({sub}): {what}{}", ago(changed, now)));
    } else if restarts >= restarts_warn && restarts_warn > 0 {
        report.problem(Problem::new(
            Runbook::UnitFailed,
            Status::Warn,
            format!("{active} ({sub}) but restarted {restarts} times"),
        ));
    } else {
        report.message = format!("{active} ({sub}){}", ago(changed, now));
        if timer && let Some(next) = timestamp(get("NextElapseUSecRealtime")) {
            report.message.push_str(&format!(
                ", next trigger in {}",
                ops_core::units::human_duration(next.signed_duration_since(now).to_std().unwrap_or_default())
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn verdict(unit: &str, pairs: &[(&str, &str)]) -> (Status, String) {
        let mut r = ProbeReport::new(ProbeKind::Systemd, "x", "x");
        judge(unit, &props(pairs), 3, Utc::now(), &mut r);
        let r = r.finish(Duration::ZERO);
        (r.status, r.problems.first().map_or(r.message.clone(), |p| p.message.clone()))
    }

    #[test]
    fn states_are_judged_like_systemctl_status_reads() {
        let loaded = [("LoadState", "loaded")];
        let v = |extra: &[(&str, &str)]| verdict("caddy.service", &[&loaded[..], extra].concat());
        assert_eq!(v(&[("ActiveState", "active"), ("SubState", "running")]).0, Status::Ok);
        let (s, m) = v(&[
            ("ActiveState", "failed"),
            ("SubState", "failed"),
            ("Result", "exit-code"),
            ("ExecMainCode", "1"),
            ("ExecMainStatus", "3"),
        ]);
        assert_eq!((s, m.starts_with("failed (result exit-code, exit status 3)")), (Status::Critical, true), "{m}");
        let (s, m) = v(&[("ActiveState", "activating"), ("SubState", "auto-restart"), ("NRestarts", "7")]);
        assert_eq!((s, m.starts_with("restarting: 7 restarts")), (Status::Critical, true), "{m}");
        assert_eq!(v(&[("ActiveState", "active"), ("SubState", "running"), ("NRestarts", "4")]).0, Status::Warn);
        assert_eq!(verdict("nope.service", &[("LoadState", "not-found")]).0, Status::Critical);
        assert_eq!(timestamp("Thu 2026-12-03 14:00:00 UTC").unwrap().to_rfc3339(), "2026-12-03T14:00:00+00:00");
        assert_eq!(timestamp("n/a"), None);
    }
}
