//! Remediation of the stack (not the database): Redis `CONFIG SET maxmemory-policy`, and
//! restarting a container with, in order, the containers whose Compose `depends_on` names it.
//! [`plan`] only reads; [`apply`] does exactly what a plan lists, re-checking each target first,
//! and appends one audit entry per target it touched.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ops_core::ports::{Cache, ContainerRuntime, ContainerState, ContainerSummary, HealthStatus};
use ops_core::{Context, Error, ErrorKind, Result};
use serde_json::json;

use crate::{Action, ActionPlan, Outcome, Target};
use ops_core::audit::Audit;
use ops_core::stack::{self, Stack, depends_on};
use ops_core::units::human_duration;

/// Redis's `maxmemory-policy` values.
pub const REDIS_POLICIES: [&str; 8] = [
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
];

/// Seconds a container gets to stop before it is killed, as `docker restart`.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a restarted container may take to run again (and be healthy, with a healthcheck).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Time between two looks at a restarting container.
const POLL: Duration = Duration::from_millis(500);

/// What `action` would do, without doing anything: for `redis-set-policy`, the cache's current
/// policy and the new one (nothing to do when they are the same); for `restart`, the container
/// (by name, or every container of the Compose service in `project.compose-project`) and, with
/// `with_dependents`, the running containers whose Compose `depends_on` names it directly or
/// through another, each after what it depends on, with their state.
///
/// # Errors
/// `InvalidInput` for an unknown policy or cache or a database action, `NotFound` for an
/// unknown container, `Unavailable` without a container engine, and the ports' errors.
pub async fn plan(ctx: &Context, action: &Action) -> Result<ActionPlan> {
    match action {
        Action::RedisSetPolicy { cache, policy } => plan_policy(ctx, action, cache.as_deref(), policy).await,
        Action::Restart { service, with_dependents } => plan_restart(ctx, action, service, *with_dependents).await,
        Action::Start { service } => plan_start(ctx, action, service).await,
        Action::RestartDependents { service } => plan_restart_dependents(ctx, action, service).await,
        Action::Stop { service, with_dependents } => plan_stop(ctx, action, service, *with_dependents).await,
        Action::StartStack {} => plan_start_stack(ctx, action).await,
        Action::StopStack {} => plan_stop_stack(ctx, action).await,
        Action::EnginePrune { label } => plan_engine_prune(ctx, action, label.as_deref()).await,
        other => Err(Error::invalid_input(format!("{} is a database action, not a stack action", other.name()))),
    }
}

/// Applies `plan` (made by [`plan`]) target by target, in order, appending a record to `audit`
/// for each target acted on. A target that changed since the plan is skipped
/// (`skipped: …`). A restarted container that does not run again (or is not healthy, with a
/// healthcheck) within 2 minutes fails, and the containers after it in the plan are skipped
/// (`skipped: stopped after … failed`): they would start against a dependency that is down.
///
/// # Errors
/// Those of [`plan`] for the action, and `Unavailable` when the audit log cannot be written
/// (what was done up to then stays done).
pub async fn apply(ctx: &Context, plan: &ActionPlan, audit: &Audit) -> Result<Vec<Outcome>> {
    match &plan.action {
        Action::RedisSetPolicy { cache, policy } => apply_policy(ctx, plan, cache.as_deref(), policy, audit).await,
        Action::Restart { .. } | Action::RestartDependents { .. } => apply_in_order(ctx, plan, audit, false).await,
        Action::Start { .. } | Action::StartStack {} => apply_in_order(ctx, plan, audit, true).await,
        Action::Stop { .. } | Action::StopStack {} => apply_stop(ctx, plan, audit).await,
        Action::EnginePrune { label } => apply_engine_prune(ctx, plan, label.as_deref(), audit).await,
        other => Err(Error::invalid_input(format!("{} is a database action, not a stack action", other.name()))),
    }
}

pub(crate) fn record(audit: &Audit, action: &Action, outcome: &Outcome) -> Result<()> {
    audit.record(action.name(), &outcome.target, outcome.before.clone(), outcome.after.clone(), &outcome.result)
}

// ---------------------------------------------------------------------------------------------
// redis-set-policy

fn check_policy(policy: &str) -> Result<()> {
    if REDIS_POLICIES.contains(&policy) {
        Ok(())
    } else {
        Err(Error::invalid_input(format!("unknown maxmemory-policy {policy:?}: one of {}", REDIS_POLICIES.join(", "))))
    }
}

async fn current_policy(cache: &dyn Cache) -> Result<String> {
    cache
        .config_get("maxmemory-policy")
        .await?
        .ok_or_else(|| Error::unsupported("the server has no maxmemory-policy parameter"))
}

async fn plan_policy(ctx: &Context, action: &Action, cache: Option<&str>, policy: &str) -> Result<ActionPlan> {
    check_policy(policy)?;
    let (name, cache) = ctx.cache(cache)?;
    let current = current_policy(cache.as_ref()).await?;
    let info = cache.info().await.ok();
    let mut plan =
        ActionPlan { action: action.clone(), targets: Vec::new(), summary: String::new(), notes: Vec::new() };
    if current == policy {
        plan.summary = format!("redis:{name} maxmemory-policy is already {policy}: nothing to do");
        return Ok(plan);
    }
    let mut details =
        BTreeMap::from([("policy".to_owned(), current.clone()), ("new-policy".to_owned(), policy.to_owned())]);
    if let Some(info) = &info {
        details.insert("used-memory".to_owned(), info.used_memory_bytes.to_string());
        details.insert("maxmemory".to_owned(), info.maxmemory_bytes.unwrap_or(0).to_string());
        if info.maxmemory_bytes.is_none() {
            plan.notes.push("maxmemory is 0 (no limit): the policy takes effect once a maxmemory is set".to_owned());
        }
    }
    plan.notes.push(
        "CONFIG SET lasts until Redis restarts: also set maxmemory-policy in its configuration (or CONFIG REWRITE)"
            .to_owned(),
    );
    plan.targets.push(Target { id: format!("redis:{name}"), details });
    plan.summary = format!("redis:{name} maxmemory-policy {current} -> {policy}");
    Ok(plan)
}

async fn apply_policy(
    ctx: &Context,
    plan: &ActionPlan,
    cache: Option<&str>,
    policy: &str,
    audit: &Audit,
) -> Result<Vec<Outcome>> {
    check_policy(policy)?;
    let (_, cache) = ctx.cache(cache)?;
    let mut outcomes = Vec::new();
    for target in &plan.targets {
        let planned = target.details.get("policy").cloned().unwrap_or_default();
        let now = current_policy(cache.as_ref()).await?;
        let before = json!({ "maxmemory-policy": now });
        if now != planned {
            outcomes.push(Outcome {
                target: target.id.clone(),
                ok: false,
                result: format!("skipped: the policy is {now} now, not {planned} as planned"),
                before: before.clone(),
                after: before,
            });
            continue;
        }
        let set = cache.config_set("maxmemory-policy", policy).await;
        let after = current_policy(cache.as_ref()).await.unwrap_or_else(|e| format!("unknown ({e})"));
        let (ok, result) = match set {
            Ok(()) if after == policy => (true, "ok".to_owned()),
            Ok(()) => (false, format!("CONFIG SET answered OK but the policy reads {after}")),
            Err(e) => (false, e.to_string()),
        };
        let outcome =
            Outcome { target: target.id.clone(), ok, result, before, after: json!({ "maxmemory-policy": after }) };
        record(audit, &plan.action, &outcome)?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

// ---------------------------------------------------------------------------------------------
// restart

fn container_details(c: &ContainerSummary, role: &str) -> BTreeMap<String, String> {
    let mut d = BTreeMap::from([
        ("container".to_owned(), c.name.clone()),
        ("state".to_owned(), format!("{:?}", c.state).to_lowercase()),
        ("status".to_owned(), c.status.clone()),
        ("role".to_owned(), role.to_owned()),
    ]);
    if let Some(s) = &c.compose_service {
        d.insert("service".to_owned(), s.clone());
    }
    let deps = depends_on(c);
    if !deps.is_empty() {
        d.insert("depends-on".to_owned(), deps.join(","));
    }
    d
}

async fn plan_restart(ctx: &Context, action: &Action, service: &str, with_dependents: bool) -> Result<ActionPlan> {
    let all = Stack::read(ctx).await?;
    let roots = all.find(service)?;
    let mut plan =
        ActionPlan { action: action.clone(), targets: Vec::new(), summary: String::new(), notes: Vec::new() };
    for r in &roots {
        if r.state != ContainerState::Running {
            plan.notes.push(format!("{} is {:?}: restarting starts it", r.name, r.state).to_lowercase());
        }
        plan.targets.push(Target { id: format!("container:{}", r.name), details: container_details(r, "restart") });
    }
    let mut restarted_dependents = Vec::new();
    if with_dependents {
        if roots.iter().all(|r| r.compose_service.is_none()) {
            plan.notes.push(format!("{service} is not a Compose container: it has no known dependents"));
        }
        let (deps, cycle) = all.dependents(&roots);
        plan.notes.extend(cycle);
        for d in deps {
            if d.state == ContainerState::Running {
                plan.targets
                    .push(Target { id: format!("container:{}", d.name), details: container_details(d, "dependent") });
                restarted_dependents.push(d.name.clone());
            } else {
                plan.notes.push(format!("{} depends on it but is {:?}: left alone", d.name, d.state).to_lowercase());
            }
        }
    }
    let names: Vec<&str> = roots.iter().map(|r| r.name.as_str()).collect();
    plan.summary = match restarted_dependents.len() {
        0 => format!("restart {}", names.join(", ")),
        n => format!(
            "restart {}, then {n} dependent{}: {}",
            names.join(", "),
            if n == 1 { "" } else { "s" },
            restarted_dependents.join(", ")
        ),
    };
    Ok(plan)
}

async fn plan_restart_dependents(ctx: &Context, action: &Action, service: &str) -> Result<ActionPlan> {
    let all = Stack::read(ctx).await?;
    let roots = all.find(service)?;
    let mut plan = new_plan(action);
    let (deps, cycle) = all.dependents(&roots);
    plan.notes.extend(cycle);
    for d in deps {
        match d.state {
            ContainerState::Running => plan
                .targets
                .push(Target { id: format!("container:{}", d.name), details: container_details(d, "dependent") }),
            // It died while what it depends on was down: a restart starts it.
            ContainerState::Exited | ContainerState::Dead => plan
                .targets
                .push(Target { id: format!("container:{}", d.name), details: container_details(d, "start") }),
            other => plan.notes.push(format!("{} is {other:?}: left alone", d.name).to_lowercase()),
        }
    }
    plan.summary = match plan.targets.len() {
        0 => format!("nothing depends on {service}: nothing to do"),
        n => format!(
            "restart {n} dependent{} of {service} in order: {}",
            if n == 1 { "" } else { "s" },
            plan.targets.iter().map(target_name).collect::<Vec<_>>().join(", ")
        ),
    };
    Ok(plan)
}

/// Waits until `name` runs again after a restart (and is healthy, with a healthcheck).
async fn wait_ready(rt: &dyn ContainerRuntime, name: &str) -> (bool, String, serde_json::Value) {
    let wait = stack::Wait { timeout: READY_TIMEOUT, poll: POLL, fail_on_exit: true };
    let r = stack::wait_ready(rt, name, wait).await;
    let result = match (r.ok, r.exited) {
        (true, _) => "ok".to_owned(),
        (false, true) => format!("{} after the restart", r.detail),
        (false, false) => format!("not ready within {}: {}", human_duration(READY_TIMEOUT), r.detail),
    };
    (r.ok, result, r.state)
}

/// Restarts (or, `start_only`, starts when stopped) each planned container in order, waits
/// until it is ready, and stops at the first that does not come back: what follows depends
/// on it.
async fn apply_in_order(ctx: &Context, plan: &ActionPlan, audit: &Audit, start_only: bool) -> Result<Vec<Outcome>> {
    let rt = stack::runtime(ctx)?;
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut failed: Option<String> = None;
    for target in &plan.targets {
        let name = target_name(target);
        if let Some(f) = &failed {
            outcomes.push(skipped(target, format!("skipped: stopped after {f} failed")));
            continue;
        }
        let d = match rt.inspect(&name).await {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                outcomes.push(skipped(target, "skipped: the container no longer exists".to_owned()));
                continue;
            }
            Err(e) => {
                // Nothing was done to it; what depends on it is not touched either.
                outcomes.push(skipped(target, format!("skipped: cannot inspect it: {e}")));
                failed = Some(name);
                continue;
            }
        };
        let before = stack::snapshot(d.state, d.health, d.started_at);
        if start_only && d.state == ContainerState::Running {
            let after = before.clone();
            outcomes.push(Outcome {
                target: target.id.clone(),
                ok: true,
                result: "skipped: already running".to_owned(),
                before,
                after,
            });
            continue;
        }
        let done = if start_only { rt.start(&name).await } else { rt.restart(&name, STOP_TIMEOUT).await };
        let (ok, result, after) = match done {
            Ok(()) => wait_ready(rt, &name).await,
            Err(e) => (false, format!("{} failed: {e}", if start_only { "start" } else { "restart" }), before.clone()),
        };
        let outcome = Outcome { target: target.id.clone(), ok, result, before, after };
        record(audit, &plan.action, &outcome)?;
        if !ok {
            failed = Some(name);
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

// ---------------------------------------------------------------------------------------------
// start, stop, start-stack, stop-stack

fn new_plan(action: &Action) -> ActionPlan {
    ActionPlan { action: action.clone(), targets: Vec::new(), summary: String::new(), notes: Vec::new() }
}

/// A target left alone, and why.
fn skipped(target: &Target, result: String) -> Outcome {
    Outcome {
        target: target.id.clone(),
        ok: false,
        result,
        before: serde_json::Value::Null,
        after: serde_json::Value::Null,
    }
}

fn target_name(target: &Target) -> String {
    target
        .details
        .get("container")
        .cloned()
        .unwrap_or_else(|| target.id.strip_prefix("container:").unwrap_or(&target.id).to_owned())
}

async fn plan_start(ctx: &Context, action: &Action, service: &str) -> Result<ActionPlan> {
    let all = Stack::read(ctx).await?;
    let mut plan = new_plan(action);
    for c in all.find(service)? {
        if c.state == ContainerState::Running {
            plan.notes.push(format!("{} is already running", c.name));
        } else {
            plan.targets.push(Target { id: format!("container:{}", c.name), details: container_details(c, "start") });
        }
    }
    plan.summary = match plan.targets.len() {
        0 => format!("{service} is running: nothing to do"),
        _ => format!("start {}", plan.targets.iter().map(target_name).collect::<Vec<_>>().join(", ")),
    };
    Ok(plan)
}

async fn plan_stop(ctx: &Context, action: &Action, service: &str, with_dependents: bool) -> Result<ActionPlan> {
    let all = Stack::read(ctx).await?;
    let roots = all.find(service)?;
    let mut plan = new_plan(action);
    // What depends on it stops first: the reverse of the start order.
    if with_dependents {
        let (deps, cycle) = all.dependents(&roots);
        plan.notes.extend(cycle);
        for d in deps.iter().rev().filter(|d| d.state == ContainerState::Running) {
            plan.targets
                .push(Target { id: format!("container:{}", d.name), details: container_details(d, "dependent") });
        }
    }
    for r in &roots {
        if r.state == ContainerState::Running {
            plan.targets.push(Target { id: format!("container:{}", r.name), details: container_details(r, "stop") });
        } else {
            plan.notes.push(format!("{} is {:?}: nothing to stop", r.name, r.state).to_lowercase());
        }
    }
    plan.summary = match plan.targets.len() {
        0 => format!("{service} is not running: nothing to do"),
        _ => format!("stop {}", plan.targets.iter().map(target_name).collect::<Vec<_>>().join(", ")),
    };
    Ok(plan)
}

/// The stack of the configured Compose project (without one every container of the host would
/// be "the stack").
async fn project_stack(ctx: &Context, action: &Action) -> Result<Stack> {
    if ctx.config.project.compose_project.is_none() {
        return Err(Error::invalid_input(format!(
            "{} needs project.compose-project: the stack is that project",
            action.name()
        )));
    }
    Stack::read(ctx).await
}

/// Every container of the stack, each after what it depends on: the dependents of the whole
/// stack, in start order, are the stack in start order (then any left out by a cycle, noted).
fn start_order<'a>(all: &'a Stack, notes: &mut Vec<String>) -> Vec<&'a ContainerSummary> {
    let roots: Vec<&ContainerSummary> = all.containers.iter().filter(|c| depends_on(c).is_empty()).collect();
    let (rest, cycle) = all.dependents(&roots);
    notes.extend(cycle);
    let mut ordered: Vec<&ContainerSummary> = roots;
    ordered.extend(rest);
    for c in &all.containers {
        if !ordered.iter().any(|o| o.id == c.id) {
            ordered.push(c);
        }
    }
    ordered
}

async fn plan_stop_stack(ctx: &Context, action: &Action) -> Result<ActionPlan> {
    let all = project_stack(ctx, action).await?;
    let mut plan = new_plan(action);
    // The reverse of the start order: nothing stops before what depends on it.
    let ordered = start_order(&all, &mut plan.notes);
    for c in ordered.into_iter().rev() {
        if c.state == ContainerState::Running {
            plan.targets.push(Target { id: format!("container:{}", c.name), details: container_details(c, "stop") });
        }
    }
    plan.summary = match plan.targets.len() {
        0 => "no container of the stack is running: nothing to do".to_owned(),
        n => format!(
            "stop {n} container{}, each before what it depends on: {}",
            if n == 1 { "" } else { "s" },
            plan.targets.iter().map(target_name).collect::<Vec<_>>().join(", ")
        ),
    };
    Ok(plan)
}

/// The containers whose newest record in the audit log is a stop this tool made (`stop`,
/// `stop-stack`): stopped on purpose, so brought back by `start-stack` whatever their exit
/// code. Empty when there is no audit log yet (a plan creates nothing).
fn stopped_by_us(ctx: &Context) -> BTreeSet<String> {
    let path = &ctx.config.perf.audit_log;
    if !path.exists() {
        return BTreeSet::new();
    }
    let Ok(entries) = ops_core::audit::AuditLog::open(path).and_then(|log| log.read()) else {
        return BTreeSet::new();
    };
    let mut last: BTreeMap<String, bool> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.result == "ok") {
        if let Some(name) = e.target.strip_prefix("container:") {
            last.insert(name.to_owned(), matches!(e.action.as_str(), "stop" | "stop-stack"));
        }
    }
    last.into_iter().filter_map(|(name, stopped)| stopped.then_some(name)).collect()
}

async fn plan_start_stack(ctx: &Context, action: &Action) -> Result<ActionPlan> {
    let all = project_stack(ctx, action).await?;
    let mut plan = new_plan(action);
    // Every stopped service container, each after what it depends on.
    let ordered = start_order(&all, &mut plan.notes);
    let rt = stack::runtime(ctx)?;
    // What the other services need running (a service), and what they need to have finished
    // (a one-shot job: a migration, a seeder), by the conditions of their `depends_on`.
    let (mut needed, mut jobs) = (BTreeSet::new(), BTreeSet::new());
    for c in &all.containers {
        let label = c.labels.get(stack::COMPOSE_DEPENDS_ON_LABEL).map(String::as_str).unwrap_or_default();
        for (service, condition) in stack::parse_depends_on_conditions(label) {
            if condition == "service_completed_successfully" {
                jobs.insert(service)
            } else {
                needed.insert(service)
            };
        }
    }
    let ours = stopped_by_us(ctx);
    for c in ordered {
        if c.state == ContainerState::Running {
            continue;
        }
        // A job that finished by itself (exit 0, no restart policy) is not a service to bring
        // back; a container this tool stopped (`stop`, `stop-stack`), one the others need
        // running, or one with a healthcheck is a service, whatever its exit code (PostgreSQL
        // exits 0 on a stop).
        let service = c.labels.get(ops_core::ports::COMPOSE_SERVICE_LABEL).cloned().unwrap_or_else(|| c.name.clone());
        if let Ok(d) = rt.inspect(&c.id).await
            && d.exit_code == Some(0)
            && matches!(d.restart_policy.as_str(), "no" | "")
            && d.state == ContainerState::Exited
            && !ours.contains(&c.name)
            && (jobs.contains(&service) || (!needed.contains(&service) && d.health == HealthStatus::None))
        {
            plan.notes.push(format!("{} finished by itself (exit 0, no restart policy): left alone", c.name));
            continue;
        }
        plan.targets.push(Target { id: format!("container:{}", c.name), details: container_details(c, "start") });
    }
    plan.summary = match plan.targets.len() {
        0 => "every container of the stack is running: nothing to do".to_owned(),
        n => format!(
            "start {n} container{} in dependency order: {}",
            if n == 1 { "" } else { "s" },
            plan.targets.iter().map(target_name).collect::<Vec<_>>().join(", ")
        ),
    };
    Ok(plan)
}

async fn apply_stop(ctx: &Context, plan: &ActionPlan, audit: &Audit) -> Result<Vec<Outcome>> {
    let rt = stack::runtime(ctx)?;
    let mut outcomes = Vec::new();
    for target in &plan.targets {
        let name = target_name(target);
        let before = match rt.inspect(&name).await {
            Ok(d) => stack::snapshot(d.state, d.health, d.started_at),
            Err(e) => {
                outcomes.push(Outcome {
                    target: target.id.clone(),
                    ok: false,
                    result: format!("skipped: cannot inspect it: {e}"),
                    before: serde_json::Value::Null,
                    after: serde_json::Value::Null,
                });
                continue;
            }
        };
        let stopped = rt.stop(&name, STOP_TIMEOUT).await;
        let after = match rt.inspect(&name).await {
            Ok(d) => stack::snapshot(d.state, d.health, d.started_at),
            Err(_) => serde_json::Value::Null,
        };
        let (ok, result) = match stopped {
            Ok(()) => (true, "ok".to_owned()),
            Err(e) => (false, format!("stop failed: {e}")),
        };
        let outcome = Outcome { target: target.id.clone(), ok, result, before, after };
        record(audit, &plan.action, &outcome)?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

// ---------------------------------------------------------------------------------------------
// engine-prune

/// The names a prune must never remove: every container of the operated Compose project and
/// the configured containers of databases and caches, stopped or not.
async fn protected(ctx: &Context) -> Result<std::collections::BTreeSet<String>> {
    let mut keep: std::collections::BTreeSet<String> = ctx
        .config
        .databases
        .values()
        .filter_map(|d| d.container.clone())
        .chain(ctx.config.caches.values().filter_map(|c| c.container.clone()))
        .collect();
    let all = Stack::read(ctx).await?;
    for c in &all.containers {
        keep.insert(c.name.clone());
        keep.insert(c.id.clone());
        if let Some(s) = &c.compose_service {
            keep.insert(s.clone());
        }
    }
    Ok(keep)
}

fn prune_item_id(t: &ops_core::ports::EnginePruneTarget) -> String {
    match t {
        ops_core::ports::EnginePruneTarget::Container { name, .. } => format!("container:{name}"),
        ops_core::ports::EnginePruneTarget::Image { id, .. } => format!("image:{id}"),
    }
}

/// The stopped containers carrying `label` (`key` or `key=value`): the only candidates of a
/// labelled prune.
async fn labelled(rt: &dyn ContainerRuntime, label: &str) -> Result<std::collections::BTreeSet<String>> {
    let (k, v) = label.split_once('=').map_or((label, None), |(k, v)| (k, Some(v.to_owned())));
    let filter = ops_core::ports::ContainerFilter {
        all: true,
        labels: BTreeMap::from([(k.to_owned(), v)]),
        ..Default::default()
    };
    Ok(rt.list_containers(&filter).await?.into_iter().map(|c| c.id).collect())
}

/// The image ids of every version in the release ledger (every project): what a rollback
/// may need. `None` when the ledger cannot be read (no state store, or it fails): then no
/// image is pruned, since which ones it protects is unknown.
pub(crate) async fn released_images(ctx: &Context) -> Option<BTreeSet<String>> {
    let store = ctx.state.as_deref()?;
    let mut ids = BTreeSet::new();
    for (_, doc) in store.documents(ops_core::releases::COLLECTION).await.ok()? {
        if let Ok(r) = serde_json::from_value::<ops_core::releases::ServiceReleases>(doc) {
            ids.extend(std::iter::once(r.current).chain(r.previous).map(|v| v.image_id));
        }
    }
    Some(ids)
}

/// The first 12 hex digits of an id, as `docker` shows it.
pub(crate) fn short_id(id: &str) -> &str {
    let id = id.trim_start_matches("sha256:");
    &id[..id.len().min(12)]
}

/// A prune's candidates: the engine's, without the stack's containers, and with a label only
/// the stopped containers carrying it.
pub(crate) async fn prune_candidates(
    ctx: &Context,
    label: Option<&str>,
) -> Result<(Vec<ops_core::ports::EnginePruneTarget>, Vec<String>)> {
    let rt = stack::runtime(ctx)?;
    let keep = protected(ctx).await?;
    let only = match label.filter(|l| !l.is_empty()) {
        Some(l) => Some(labelled(rt, l).await?),
        None => None,
    };
    let released = released_images(ctx).await;
    let mut notes = Vec::new();
    let mut out = Vec::new();
    for t in rt.prune_plan().await?.targets {
        match &t {
            ops_core::ports::EnginePruneTarget::Container { id, name, .. } => {
                if keep.contains(name) || keep.contains(id) {
                    notes.push(format!("{name} is a stopped container of the stack: kept"));
                    continue;
                }
                if only.as_ref().is_some_and(|o| !o.contains(id)) {
                    continue;
                }
            }
            ops_core::ports::EnginePruneTarget::Image { .. } if only.is_some() => continue,
            ops_core::ports::EnginePruneTarget::Image { id, .. } => {
                // An image a service ran (the version a rollback goes back to) stays, even
                // untagged once its tag moved on.
                match &released {
                    Some(ids) if ids.contains(id) => {
                        notes.push(format!("image {} is a version in the release ledger: kept", short_id(id)));
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        notes.push(format!(
                            "image {}: kept, the release ledger (state.url) cannot be read to tell whether a \
                             rollback needs it",
                            short_id(id)
                        ));
                        continue;
                    }
                }
            }
        }
        out.push(t);
    }
    Ok((out, notes))
}

async fn plan_engine_prune(ctx: &Context, action: &Action, label: Option<&str>) -> Result<ActionPlan> {
    let (candidates, notes) = prune_candidates(ctx, label).await?;
    let mut plan = new_plan(action);
    plan.notes = notes;
    let mut bytes = 0u64;
    for t in &candidates {
        bytes = bytes.saturating_add(t.bytes());
        plan.targets.push(Target {
            id: prune_item_id(t),
            details: BTreeMap::from([
                ("bytes".to_owned(), t.bytes().to_string()),
                ("item".to_owned(), serde_json::to_string(t).unwrap_or_default()),
            ]),
        });
    }
    plan.summary = match plan.targets.len() {
        0 => "nothing to prune".to_owned(),
        n => format!(
            "remove {n} stopped container{} and dangling image{}, freeing {}",
            if n == 1 { "" } else { "s" },
            if n == 1 { "" } else { "s" },
            ops_core::units::human_bytes(bytes)
        ),
    };
    Ok(plan)
}

/// Removes what the plan listed that a fresh plan still lists (a container started since, or
/// an image tagged since, is no longer a candidate and is skipped).
async fn apply_engine_prune(
    ctx: &Context,
    plan: &ActionPlan,
    label: Option<&str>,
    audit: &Audit,
) -> Result<Vec<Outcome>> {
    let rt = stack::runtime(ctx)?;
    // The candidates now: a container started, or joined to the stack, since the plan is not.
    let (fresh, _) = prune_candidates(ctx, label).await?;
    let mut outcomes = Vec::new();
    for target in &plan.targets {
        let Some(item) = fresh.iter().find(|t| prune_item_id(t) == target.id) else {
            outcomes.push(Outcome {
                target: target.id.clone(),
                ok: false,
                result: "skipped: no longer a prune candidate".to_owned(),
                before: serde_json::Value::Null,
                after: serde_json::Value::Null,
            });
            continue;
        };
        let one = ops_core::ports::EnginePrunePlan { targets: vec![item.clone()] };
        let before = json!({ "bytes": item.bytes() });
        let (ok, result) = match rt.prune(&one).await {
            Ok(_) => (true, "ok".to_owned()),
            Err(e) => (false, format!("prune failed: {e}")),
        };
        let outcome = Outcome { target: target.id.clone(), ok, result, before, after: json!({ "removed": ok }) };
        record(audit, &plan.action, &outcome)?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ops_core::config::OpsConfig;
    use ops_core::ports::cache::MockCache;
    use ops_core::ports::container::MockContainerRuntime;
    use ops_core::ports::{CacheInfo, ContainerDetails, HealthStatus};
    use ops_core::stack::fixtures::shop;

    use super::*;

    fn ctx_with(rt: MockContainerRuntime, project: Option<&str>) -> Context {
        let mut config = OpsConfig::default();
        config.project.compose_project = project.map(str::to_owned);
        let mut ctx = Context::empty(config);
        ctx.containers = Some(Arc::new(rt));
        ctx
    }

    fn details(name: &str, state: ContainerState, health: HealthStatus) -> ContainerDetails {
        ContainerDetails {
            id: format!("id-{name}"),
            name: name.to_owned(),
            image: "img".to_owned(),
            image_id: "sha256:0123".to_owned(),
            created_at: None,
            config_hash: String::new(),
            state,
            health,
            health_failing_streak: 0,
            last_health_output: None,
            exit_code: Some(1),
            oom_killed: false,
            restart_count: 0,
            restart_policy: "no".to_owned(),
            started_at: None,
            finished_at: None,
            memory_limit_bytes: None,
            error: None,
            compose_service: None,
            labels: BTreeMap::new(),
            env_names: Vec::new(),
            published_ports: Vec::new(),
        }
    }

    #[tokio::test]
    async fn restart_plans_in_order_and_stops_after_a_failure() {
        let mut rt = MockContainerRuntime::new();
        rt.expect_list_containers().returning(|f| {
            assert_eq!(f.compose_project.as_deref(), Some("shop"));
            Ok(shop().into_iter().filter(|c| c.compose_project.as_deref() == Some("shop")).collect())
        });
        rt.expect_inspect().returning(|name| {
            let state = if name == "shop-api-1" { ContainerState::Exited } else { ContainerState::Running };
            Ok(details(name, state, HealthStatus::None))
        });
        rt.expect_restart().times(2).returning(|name, timeout| {
            assert_eq!(timeout, STOP_TIMEOUT);
            assert!(["shop-db-1", "shop-api-1"].contains(&name), "{name}");
            Ok(())
        });
        let ctx = ctx_with(rt, Some("shop"));
        let action = Action::Restart { service: "db".to_owned(), with_dependents: true };
        let p = plan(&ctx, &action).await.unwrap();
        let ids: Vec<&str> = p.targets.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            ids,
            ["container:shop-db-1", "container:shop-api-1", "container:shop-web-1", "container:shop-worker-1"]
        );
        assert_eq!(p.summary, "restart shop-db-1, then 3 dependents: shop-api-1, shop-web-1, shop-worker-1");
        assert_eq!(p.notes, ["shop-cron-1 depends on it but is exited: left alone"]);
        assert_eq!(p.targets[1].details["role"], "dependent");

        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::at(&dir.path().join("audit.jsonl"), "test").unwrap();
        let out = apply(&ctx, &p, &audit).await.unwrap();
        let got: Vec<(bool, &str)> = out.iter().map(|o| (o.ok, o.result.as_str())).collect();
        assert_eq!(
            got,
            [
                (true, "ok"),
                (false, "exited with code 1 after the restart"),
                (false, "skipped: stopped after shop-api-1 failed"),
                (false, "skipped: stopped after shop-api-1 failed"),
            ]
        );
        let entries = audit.log().read().unwrap();
        assert_eq!(entries.len(), 2, "only what was done is audited");
        assert_eq!((entries[0].action.as_str(), entries[0].target.as_str()), ("restart", "container:shop-db-1"));
    }

    fn cache_ctx(cache: MockCache) -> Context {
        let mut ctx = Context::empty(OpsConfig::default());
        ctx.caches.insert("main".to_owned(), Arc::new(cache));
        ctx
    }

    #[tokio::test]
    async fn set_policy_validates_and_shows_current_and_new() {
        let mut cache = MockCache::new();
        cache.expect_config_get().returning(|_| Ok(Some("noeviction".to_owned())));
        cache.expect_info().returning(|| Ok(CacheInfo { maxmemory_bytes: Some(100), ..CacheInfo::default() }));
        let ctx = cache_ctx(cache);
        let bad = Action::RedisSetPolicy { cache: None, policy: "sometimes".to_owned() };
        assert_eq!(plan(&ctx, &bad).await.unwrap_err().kind(), ErrorKind::InvalidInput);
        let p = plan(&ctx, &Action::RedisSetPolicy { cache: None, policy: "allkeys-lru".to_owned() }).await.unwrap();
        assert_eq!(p.summary, "redis:main maxmemory-policy noeviction -> allkeys-lru");
        assert_eq!(p.targets[0].details["policy"], "noeviction");
        let same = plan(&ctx, &Action::RedisSetPolicy { cache: None, policy: "noeviction".to_owned() }).await.unwrap();
        assert!(same.targets.is_empty());
        let db = Action::Terminate { database: None, pid: 1 };
        assert_eq!(plan(&ctx, &db).await.unwrap_err().kind(), ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn set_policy_skips_a_policy_changed_since_the_plan() {
        let mut cache = MockCache::new();
        cache.expect_config_get().returning(|_| Ok(Some("allkeys-lfu".to_owned())));
        cache.expect_config_set().never();
        let ctx = cache_ctx(cache);
        let mut details = BTreeMap::new();
        details.insert("policy".to_owned(), "noeviction".to_owned());
        let p = ActionPlan {
            action: Action::RedisSetPolicy { cache: None, policy: "allkeys-lru".to_owned() },
            targets: vec![Target { id: "redis:main".to_owned(), details }],
            summary: String::new(),
            notes: Vec::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::at(&dir.path().join("audit.jsonl"), "test").unwrap();
        let out = apply(&ctx, &p, &audit).await.unwrap();
        assert!(!out[0].ok);
        assert!(out[0].result.starts_with("skipped: the policy is allkeys-lfu now"), "{}", out[0].result);
        assert!(audit.log().read().unwrap().is_empty());
    }
}
