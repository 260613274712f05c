//! The containers around a database: finding dependents by name or Compose service,
//! stopping them, starting them in order and waiting until they are healthy.

use std::time::{Duration, Instant};

use ops_core::Context;
use ops_core::ports::{ContainerFilter, ContainerRuntime, ContainerState, HealthStatus};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A dependent container and whether it was running when the plan was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
pub struct HealthResult {
    /// What was checked (`container api`, `http api`).
    pub check: String,
    /// Whether it passed within the timeout.
    pub ok: bool,
    /// What was seen last.
    pub detail: String,
}

/// Finds the containers of each configured dependent, in order.
pub(crate) async fn resolve(ctx: &Context, names: &[String]) -> Result<Vec<Dependent>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rt = runtime(ctx)?;
    let filter = ContainerFilter {
        all: true,
        compose_project: ctx.config.project.compose_project.clone(),
        ..Default::default()
    };
    let all = rt.list_containers(&filter).await?;
    let mut out = Vec::new();
    for wanted in names {
        let found: Vec<_> =
            all.iter().filter(|c| c.name == *wanted || c.compose_service.as_deref() == Some(wanted.as_str())).collect();
        if found.is_empty() {
            return Err(Error::not_found(format!(
                "dependent {wanted:?}: no container with that name or Compose service"
            )));
        }
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

pub(crate) fn runtime(ctx: &Context) -> Result<&dyn ContainerRuntime> {
    ctx.containers.as_deref().ok_or_else(|| Error::unavailable("no container runtime available"))
}

/// Stops the running dependents, last first (the reverse of their start order).
pub(crate) async fn stop(ctx: &Context, deps: &[Dependent]) -> Result<()> {
    if deps.is_empty() {
        return Ok(());
    }
    let rt = runtime(ctx)?;
    for d in deps.iter().rev().filter(|d| d.was_running) {
        rt.stop(&d.id, Duration::from_secs(30)).await.map_err(|e| e.context(format!("stopping {}", d.name)))?;
    }
    Ok(())
}

/// Starts the dependents that were running, in order; returns the names started.
pub(crate) async fn start(ctx: &Context, deps: &[Dependent]) -> Result<Vec<String>> {
    let mut started = Vec::new();
    if deps.is_empty() {
        return Ok(started);
    }
    let rt = runtime(ctx)?;
    // Every one is tried: one that does not start must not keep the others down.
    let mut failed = Vec::new();
    for d in deps.iter().filter(|d| d.was_running) {
        match rt.start(&d.id).await {
            Ok(()) => started.push(d.name.clone()),
            Err(e) => failed.push(format!("starting {}: {e}", d.name)),
        }
    }
    if failed.is_empty() {
        Ok(started)
    } else {
        let also = if started.is_empty() { String::new() } else { format!(" (started {})", started.join(", ")) };
        Err(Error::unavailable(format!("{}{also}", failed.join("; "))))
    }
}

pub(crate) async fn wait_healthy(ctx: &Context, deps: &[Dependent], timeout: Duration) -> Vec<HealthResult> {
    let deadline = Instant::now().checked_add(timeout).unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
    let mut results = Vec::new();
    if let Some(rt) = ctx.containers.as_deref() {
        for d in deps.iter().filter(|d| d.was_running) {
            let mut last;
            let ok = loop {
                match rt.inspect(&d.id).await {
                    Ok(i)
                        if i.state == ContainerState::Running
                            && matches!(i.health, HealthStatus::None | HealthStatus::Healthy) =>
                    {
                        last = format!("running, health {:?}", i.health).to_lowercase();
                        break true;
                    }
                    Ok(i) => last = format!("{:?}, health {:?}", i.state, i.health).to_lowercase(),
                    Err(e) => last = e.to_string(),
                }
                if Instant::now() >= deadline {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            results.push(HealthResult { check: format!("container {}", d.name), ok, detail: last });
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
