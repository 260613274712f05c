//! The containers around a database that a restore stops and starts again (its configured
//! `dependents`), on the stack model of [`ops_core::stack`], and the health checks after.

use std::time::{Duration, Instant};

use ops_core::Context;
use ops_core::ports::ContainerState;
use ops_core::stack::{self, Stack};
use serde::{Deserialize, Serialize};

use crate::Result;

/// A dependent container and whether it was running when the plan was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Dependent {
    /// What the config names (container name or Compose service).
    pub configured: String,
    /// Container name.
    pub name: String,
    /// Container id.
    pub id: String,
    /// Whether it was running.
    pub was_running: bool,
}

/// The result of one health check after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthResult {
    /// What was checked (`container api`, `http api`).
    pub check: String,
    /// Whether it passed within the timeout.
    pub ok: bool,
    /// What was seen last.
    pub detail: String,
}

/// Finds the containers of each configured dependent (container name or Compose service,
/// [`Stack::find`]), in order.
pub(crate) async fn resolve(ctx: &Context, names: &[String]) -> Result<Vec<Dependent>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let all = Stack::read(ctx).await?;
    let mut out = Vec::new();
    for wanted in names {
        let found = all.find(wanted).map_err(|e| e.context(format!("dependent {wanted:?}")))?;
        for c in found {
            out.push(Dependent {
                configured: wanted.clone(),
                name: c.name.clone(),
                id: c.id.clone(),
                was_running: c.state == ContainerState::Running,
            });
        }
    }
    Ok(out)
}

fn running(deps: &[Dependent]) -> Vec<stack::Member<'_>> {
    deps.iter().filter(|d| d.was_running).map(|d| stack::Member { id: &d.id, name: &d.name }).collect()
}

/// Stops the running dependents, last first (the reverse of their start order).
pub(crate) async fn stop(ctx: &Context, deps: &[Dependent]) -> Result<()> {
    if deps.is_empty() {
        return Ok(());
    }
    stack::stop_in_order(stack::runtime(ctx)?, &running(deps), Duration::from_secs(30)).await
}

/// Starts the dependents that were running, in order; returns the names started.
pub(crate) async fn start(ctx: &Context, deps: &[Dependent]) -> Result<Vec<String>> {
    if deps.is_empty() {
        return Ok(Vec::new());
    }
    stack::start_in_order(stack::runtime(ctx)?, &running(deps)).await
}

/// Waits for every restarted dependent and every `[[http]]` check, within `timeout` in all.
pub(crate) async fn wait_healthy(ctx: &Context, deps: &[Dependent], timeout: Duration) -> Vec<HealthResult> {
    let deadline = Instant::now().checked_add(timeout).unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
    let mut results = Vec::new();
    if let Some(rt) = ctx.containers.as_deref() {
        for d in deps.iter().filter(|d| d.was_running) {
            let wait = stack::Wait {
                timeout: deadline.saturating_duration_since(Instant::now()),
                poll: Duration::from_millis(500),
                fail_on_exit: false,
            };
            let r = stack::wait_ready(rt, &d.id, wait).await;
            results.push(HealthResult { check: format!("container {}", d.name), ok: r.ok, detail: r.detail });
        }
    }
    if let Some(http) = ctx.http.as_deref() {
        for check in &ctx.config.http {
            let mut last;
            let ok = loop {
                match http.get(check.url.expose(), Duration::from_secs(5)).await {
                    Ok(r) if r.status < 400 => {
                        last = format!("http {}", r.status);
                        break true;
                    }
                    Ok(r) => last = format!("http {}", r.status),
                    Err(e) => last = e.to_string(),
                }
                if Instant::now() >= deadline {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            results.push(HealthResult { check: format!("http {} ({})", check.name, check.url), ok, detail: last });
        }
    }
    results
}
