//! `restart-unit`: `systemctl restart` of a unit configured in `[[systemd]]` (Caddy, a CI
//! runner), on this host or in the container running its systemd. Only a configured unit can
//! be named: an API caller never restarts `sshd` or `docker` by asking. The plan shows its
//! state; applying re-reads it (the unit must still be loaded), restarts it, waits for it to be
//! active again with a new start, and records before and after in the audit log.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ops_core::audit::Audit;
use ops_core::systemd::{UnitProperties, configured, show, systemctl};
use ops_core::{Context, Error, Result};

use crate::{Action, ActionPlan, Outcome, Target};

/// Longest wait for one `systemctl` call, and for the unit to be active again.
const CALL: Duration = Duration::from_secs(30);
const READY: Duration = Duration::from_secs(60);

fn state(p: &UnitProperties) -> serde_json::Value {
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    serde_json::json!({
        "active": get("ActiveState"),
        "sub": get("SubState"),
        "result": get("Result"),
        "pid": get("ExecMainPID"),
        "since": get("ActiveEnterTimestamp"),
        "restarts": get("NRestarts"),
    })
}

/// The plan: the unit and its state now.
///
/// # Errors
/// `InvalidInput` for a unit not configured; `Unavailable` when systemd cannot be asked.
pub async fn plan(ctx: &Context, action: &Action, name: &str) -> Result<ActionPlan> {
    let unit = configured(ctx, name)?;
    let props = show(ctx, unit.container.as_deref(), &unit.unit, CALL).await?;
    if props.get("LoadState").map(String::as_str) != Some("loaded") {
        return Err(Error::not_found(format!("{} is not loaded (no such unit?)", unit.unit)));
    }
    let get = |k: &str| props.get(k).cloned().unwrap_or_default();
    let mut details = BTreeMap::from([
        ("state".to_owned(), format!("{} ({})", get("ActiveState"), get("SubState"))),
        ("result".to_owned(), get("Result")),
        ("restarts".to_owned(), get("NRestarts")),
    ]);
    if let Some(c) = &unit.container {
        details.insert("container".to_owned(), c.clone());
    }
    let where_ = unit.container.as_ref().map_or_else(|| "this host".to_owned(), |c| format!("container {c}"));
    Ok(ActionPlan {
        action: action.clone(),
        targets: vec![Target { id: format!("unit:{}", unit.unit), details }],
        summary: format!("systemctl restart {} on {where_} (now {})", unit.unit, get("ActiveState")),
        notes: Vec::new(),
    })
}

/// Restarts the planned unit and waits for it: active again, started after the restart.
///
/// # Errors
/// `Unavailable` when the audit record cannot be written; the restart's own failure is the
/// outcome.
pub async fn apply(ctx: &Context, plan: &ActionPlan, audit: &Audit) -> Result<Vec<Outcome>> {
    let Action::RestartUnit { unit: name } = &plan.action else {
        return Err(Error::invalid_input("not a restart-unit plan"));
    };
    let unit = configured(ctx, name)?;
    let target = format!("unit:{}", unit.unit);
    let container = unit.container.as_deref();
    let outcome = |ok: bool, result: String, before: serde_json::Value, after: serde_json::Value| Outcome {
        target: target.clone(),
        ok,
        result,
        before,
        after,
    };
    // The moment of acting: the unit must still be there.
    let before = match show(ctx, container, &unit.unit, CALL).await {
        Ok(p) if p.get("LoadState").map(String::as_str) == Some("loaded") => p,
        Ok(_) => {
            let o = outcome(
                false,
                "skipped: the unit is no longer loaded".to_owned(),
                serde_json::Value::Null,
                serde_json::Value::Null,
            );
            crate::services::record(audit, &plan.action, &o)?;
            return Ok(vec![o]);
        }
        Err(e) => {
            let o = outcome(false, format!("skipped: {e}"), serde_json::Value::Null, serde_json::Value::Null);
            crate::services::record(audit, &plan.action, &o)?;
            return Ok(vec![o]);
        }
    };
    // The intent first: a restart whose record cannot be written does not happen.
    audit.record(plan.action.name(), &target, state(&before), serde_json::Value::Null, "started")?;
    let o = match systemctl(ctx, container, &["restart", "--", &unit.unit], CALL).await {
        // A oneshot's start job ends when its command does: systemctl's answer is the run's.
        Ok((0, _, _)) if before.get("Type").map(String::as_str) == Some("oneshot") => {
            let after = show(ctx, container, &unit.unit, CALL).await.unwrap_or_default();
            let ok = after.get("Result").map(String::as_str) == Some("success");
            let result = if ok {
                "ok".to_owned()
            } else {
                format!("the run failed: result {}", after.get("Result").cloned().unwrap_or_default())
            };
            (ok, result, state(&after))
        }
        Ok((0, _, _)) => wait_active(ctx, container, &unit.unit, &before).await,
        Ok((code, _, stderr)) => {
            let why = stderr.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no reason given").to_owned();
            (false, format!("systemctl restart failed (exit {code}): {why}"), serde_json::Value::Null)
        }
        Err(e) if e.kind() == ops_core::ErrorKind::Timeout => (
            false,
            format!("systemctl restart did not answer within {} s: the restart may still be under way", CALL.as_secs()),
            serde_json::Value::Null,
        ),
        Err(e) => (false, format!("systemctl restart could not run: {e}"), serde_json::Value::Null),
    };
    let o = outcome(o.0, o.1, state(&before), o.2);
    crate::services::record(audit, &plan.action, &o)?;
    Ok(vec![o])
}

/// Until the unit is active with a start newer than `before`'s, or [`READY`] passes.
async fn wait_active(
    ctx: &Context,
    container: Option<&str>,
    unit: &str,
    before: &UnitProperties,
) -> (bool, String, serde_json::Value) {
    let deadline = Instant::now() + READY;
    let mut last = serde_json::Value::Null;
    loop {
        if let Ok(p) = show(ctx, container, unit, CALL).await {
            last = state(&p);
            let restarted = p.get("ActiveEnterTimestamp") != before.get("ActiveEnterTimestamp")
                || p.get("ExecMainPID") != before.get("ExecMainPID");
            match p.get("ActiveState").map(String::as_str) {
                Some("active") if restarted => return (true, "ok".to_owned(), last),
                Some("failed") => {
                    let status = p.get("ExecMainStatus").cloned().unwrap_or_default();
                    return (false, format!("failed after the restart (exit status {status})"), last);
                }
                _ => {}
            }
        }
        if Instant::now() >= deadline {
            return (false, format!("not active again within {} s", READY.as_secs()), last);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
