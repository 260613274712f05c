//! Remediation of the stack (not the database): Redis `CONFIG SET maxmemory-policy`, and
//! restarting a container with, in order, the containers whose Compose `depends_on` names it.
//! [`plan`] only reads; [`apply`] does exactly what a plan lists, re-checking each target first,
//! and appends one audit entry per target it touched.

use std::collections::BTreeMap;
use std::time::Duration;

use ops_core::ports::{Cache, ContainerRuntime, ContainerState, ContainerSummary};
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
        Action::Restart { .. } => apply_restart(ctx, plan, audit).await,
        other => Err(Error::invalid_input(format!("{} is a database action, not a stack action", other.name()))),
    }
}

fn record(audit: &Audit, action: &Action, outcome: &Outcome) -> Result<()> {
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

async fn apply_restart(ctx: &Context, plan: &ActionPlan, audit: &Audit) -> Result<Vec<Outcome>> {
    let rt = stack::runtime(ctx)?;
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut failed: Option<String> = None;
    for target in &plan.targets {
        let name = target
            .details
            .get("container")
            .cloned()
            .unwrap_or_else(|| target.id.strip_prefix("container:").unwrap_or(&target.id).to_owned());
        let skip = |result: String, before: serde_json::Value| Outcome {
            target: target.id.clone(),
            ok: false,
            result,
            before: before.clone(),
            after: before,
        };
        if let Some(f) = &failed {
            outcomes.push(skip(format!("skipped: stopped after {f} failed"), serde_json::Value::Null));
            continue;
        }
        let before = match rt.inspect(&name).await {
            Ok(d) => stack::snapshot(d.state, d.health, d.started_at),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                outcomes.push(skip("skipped: the container no longer exists".to_owned(), serde_json::Value::Null));
                continue;
            }
            Err(e) => {
                // Nothing was done to it; what depends on it is not touched either.
                outcomes.push(skip(format!("skipped: cannot inspect it: {e}"), serde_json::Value::Null));
                failed = Some(name);
                continue;
            }
        };
        let (ok, result, after) = match rt.restart(&name, STOP_TIMEOUT).await {
            Ok(()) => wait_ready(rt, &name).await,
            Err(e) => (false, format!("restart failed: {e}"), before.clone()),
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
