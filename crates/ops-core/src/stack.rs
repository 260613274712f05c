//! The stack model: the containers of the operated stack, their Compose dependency graph, and
//! stopping, starting and waiting for them in order. One implementation for every capability
//! that touches more than one container (a restore stops and restarts the database's
//! dependents; the `restart` action restarts a service and then what depends on it; runbooks
//! and full-stack recovery build on the same calls).
//!
//! The graph comes from the labels Compose puts on every container
//! ([`COMPOSE_DEPENDS_ON_LABEL`]); one-off containers of `docker compose run`
//! ([`COMPOSE_ONEOFF_LABEL`]) are never part of it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::ports::{ContainerFilter, ContainerRuntime, ContainerState, ContainerSummary, HealthStatus};
use crate::{Context, Error, Result};

/// Label Compose puts on a container: the services it depends on
/// (`db:service_healthy:false,redis:service_started:false`).
pub const COMPOSE_DEPENDS_ON_LABEL: &str = "com.docker.compose.depends_on";
/// Label Compose puts on the containers of `docker compose run` (`True`): one-off commands,
/// not services.
pub const COMPOSE_ONEOFF_LABEL: &str = "com.docker.compose.oneoff";

/// What a rollback adds to the name of the container it puts aside until its replacement is
/// ready (`shop-api-1-ops-rollback-1767225600`): not a member of the stack.
pub const ASIDE_MARK: &str = "-ops-rollback-";

/// The services named in a Compose `depends_on` label, in order, without duplicates:
/// `db:service_healthy:false,redis:service_started:false` gives `db`, `redis` (older Compose
/// versions write just `db,redis`).
#[must_use]
pub fn parse_depends_on(label: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for service in label.split(',').filter_map(|item| item.split(':').next()).map(str::trim) {
        if !service.is_empty() && !out.iter().any(|s| s == service) {
            out.push(service.to_owned());
        }
    }
    out
}

/// The services named in a Compose `depends_on` label with their conditions
/// (`service_started`, `service_healthy`, `service_completed_successfully`; `service_started`
/// when the label names none, as older Compose versions write it).
#[must_use]
pub fn parse_depends_on_conditions(label: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in label.split(',') {
        let mut parts = item.split(':').map(str::trim);
        let service = parts.next().unwrap_or_default();
        let condition = parts.next().filter(|c| !c.is_empty()).unwrap_or("service_started");
        if !service.is_empty() && !out.iter().any(|(s, _)| s == service) {
            out.push((service.to_owned(), condition.to_owned()));
        }
    }
    out
}

/// The services `c` depends on, from its Compose label.
#[must_use]
pub fn depends_on(c: &ContainerSummary) -> Vec<String> {
    c.labels.get(COMPOSE_DEPENDS_ON_LABEL).map(|l| parse_depends_on(l)).unwrap_or_default()
}

/// Whether `c` is a one-off container of `docker compose run`.
#[must_use]
pub fn is_oneoff(c: &ContainerSummary) -> bool {
    c.labels.get(COMPOSE_ONEOFF_LABEL).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The container engine of a context.
///
/// # Errors
/// `Unavailable` when none is wired.
pub fn runtime(ctx: &Context) -> Result<&dyn ContainerRuntime> {
    ctx.containers.as_deref().ok_or_else(|| Error::unavailable("no container runtime available"))
}

/// The stack's containers as listed at one moment (every state; the configured Compose
/// project only, when one is set).
#[derive(Debug, Clone, Default)]
pub struct Stack {
    /// Every container, by name.
    pub containers: Vec<ContainerSummary>,
}

impl Stack {
    /// Lists the stack's containers.
    ///
    /// # Errors
    /// `Unavailable` without a container engine, or when it cannot be listed.
    pub async fn read(ctx: &Context) -> Result<Self> {
        let filter = ContainerFilter {
            all: true,
            compose_project: ctx.config.project.compose_project.clone(),
            ..Default::default()
        };
        let mut containers = runtime(ctx)?.list_containers(&filter).await?;
        containers.retain(|c| !c.name.contains(ASIDE_MARK));
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self { containers })
    }

    /// The containers `service` names: the container of that name, else every container of
    /// that Compose service (one project only, one-offs left out), by name.
    ///
    /// # Errors
    /// `NotFound` when none, `InvalidInput` when the service exists in several projects.
    pub fn find(&self, service: &str) -> Result<Vec<&ContainerSummary>> {
        if let Some(c) = self.containers.iter().find(|c| c.name == service) {
            return Ok(vec![c]);
        }
        let mut found: Vec<&ContainerSummary> =
            self.containers.iter().filter(|c| !is_oneoff(c) && c.compose_service.as_deref() == Some(service)).collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        let projects: BTreeSet<Option<&str>> = found.iter().map(|c| c.compose_project.as_deref()).collect();
        match (found.len(), projects.len()) {
            (0, _) => Err(Error::not_found(format!("no container or Compose service named {service:?}"))),
            (_, 1) => Ok(found),
            _ => Err(Error::invalid_input(format!(
                "Compose service {service:?} exists in several projects: set project.compose-project, or name the \
                 container"
            ))),
        }
    }

    /// The containers whose `depends_on` reaches `roots`' services, in the order to start
    /// them: a service after every service it depends on, ties by name; each service's
    /// containers by name. Also returns a note when a cycle had to be broken.
    #[must_use]
    pub fn dependents(&self, roots: &[&ContainerSummary]) -> (Vec<&ContainerSummary>, Option<String>) {
        let Some(project) = roots.first().and_then(|r| r.compose_project.as_deref()) else {
            return (Vec::new(), None);
        };
        let root_services: BTreeSet<&str> = roots.iter().filter_map(|r| r.compose_service.as_deref()).collect();
        let candidates: Vec<&ContainerSummary> = self
            .containers
            .iter()
            .filter(|c| c.compose_project.as_deref() == Some(project) && !is_oneoff(c))
            .filter(|c| c.compose_service.as_deref().is_some_and(|s| !root_services.contains(s)))
            .collect();
        // Every service that reaches a root, transitively.
        let mut reached: BTreeSet<&str> = root_services.clone();
        loop {
            let before = reached.len();
            for c in &candidates {
                if depends_on(c).iter().any(|d| reached.contains(d.as_str())) {
                    reached.extend(c.compose_service.as_deref());
                }
            }
            if reached.len() == before {
                break;
            }
        }
        let mut pending: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for c in &candidates {
            let Some(s) = c.compose_service.as_deref().filter(|s| reached.contains(s)) else { continue };
            let needs = pending.entry(s).or_default();
            needs.extend(
                depends_on(c)
                    .into_iter()
                    .filter(|d| d != s && reached.contains(d.as_str()) && !root_services.contains(d.as_str())),
            );
        }
        let mut order: Vec<&str> = Vec::new();
        let mut cycles: Vec<String> = Vec::new();
        while !pending.is_empty() {
            let ready: Vec<&str> = pending.iter().filter(|(_, needs)| needs.is_empty()).map(|(s, _)| *s).collect();
            let next: Vec<&str> = if ready.is_empty() {
                // A cycle: the first service by name that is on one goes first, and the order
                // goes on from there; what merely waits on the cycle still waits.
                let Some((first, members)) = first_on_a_cycle(&pending) else { break };
                cycles.push(members.join(", "));
                vec![first]
            } else {
                ready
            };
            for s in &next {
                pending.remove(s);
            }
            for needs in pending.values_mut() {
                for s in &next {
                    needs.remove(*s);
                }
            }
            order.extend(next);
        }
        let note = (!cycles.is_empty())
            .then(|| format!("the depends_on of {} form a cycle: restarted in name order", cycles.join("; ")));
        let mut out = Vec::new();
        for s in order {
            let mut of: Vec<&ContainerSummary> =
                candidates.iter().copied().filter(|c| c.compose_service.as_deref() == Some(s)).collect();
            of.sort_by(|a, b| a.name.cmp(&b.name));
            out.extend(of);
        }
        (out, note)
    }
}

/// The first service by name that depends on itself through `pending`'s needs, and the
/// services of that cycle (those it reaches that reach it back), by name.
fn first_on_a_cycle<'a>(pending: &BTreeMap<&'a str, BTreeSet<String>>) -> Option<(&'a str, Vec<&'a str>)> {
    let reach = |from: &str| -> BTreeSet<&'a str> {
        let mut seen: BTreeSet<&'a str> = BTreeSet::new();
        let mut stack: Vec<&str> =
            pending.get(from).map(|n| n.iter().map(String::as_str).collect()).unwrap_or_default();
        while let Some(s) = stack.pop() {
            if let Some((name, needs)) = pending.get_key_value(s)
                && seen.insert(name)
            {
                stack.extend(needs.iter().map(String::as_str));
            }
        }
        seen
    };
    pending.keys().find_map(|&s| {
        let from_s = reach(s);
        from_s.contains(s).then(|| (s, from_s.iter().copied().filter(|&o| reach(o).contains(s)).collect()))
    })
}

/// A container to act on: its id (what the engine is driven by, so a container renamed since
/// the plan is still the one planned) and its name (what messages say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    /// Container id.
    pub id: &'a str,
    /// Container name.
    pub name: &'a str,
}

/// Stops `members` (given in start order) last first, each within `timeout`; the first
/// failure ends it, naming the container.
///
/// # Errors
/// What the engine said, with the container's name.
pub async fn stop_in_order(rt: &dyn ContainerRuntime, members: &[Member<'_>], timeout: Duration) -> Result<()> {
    for m in members.iter().rev() {
        rt.stop(m.id, timeout).await.map_err(|e| e.context(format!("stopping {}", m.name)))?;
    }
    Ok(())
}

/// Starts `members` in order. Every one is tried: one that does not start must not keep the
/// others down. Returns the names started.
///
/// # Errors
/// `Unavailable` naming every container that did not start (and those that did).
pub async fn start_in_order(rt: &dyn ContainerRuntime, members: &[Member<'_>]) -> Result<Vec<String>> {
    let mut started = Vec::new();
    let mut failed = Vec::new();
    for m in members {
        match rt.start(m.id).await {
            Ok(()) => started.push(m.name.to_owned()),
            Err(e) => failed.push(format!("starting {}: {e}", m.name)),
        }
    }
    if failed.is_empty() {
        Ok(started)
    } else {
        let also = if started.is_empty() { String::new() } else { format!(" (started {})", started.join(", ")) };
        Err(Error::unavailable(format!("{}{also}", failed.join("; "))))
    }
}

/// How [`wait_ready`] waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// Longest wait.
    pub timeout: Duration,
    /// Time between two looks.
    pub poll: Duration,
    /// A container that has exited (or died) counts as failed at once, rather than being
    /// given the rest of the timeout to come back (by its restart policy).
    pub fail_on_exit: bool,
}

/// What [`wait_ready`] saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    /// Running, and healthy when it has a healthcheck, within the timeout.
    pub ok: bool,
    /// `running, health healthy`, or why not.
    pub detail: String,
    /// It exited (or died), with [`Wait::fail_on_exit`]: `detail` says with which code.
    pub exited: bool,
    /// The last state seen, as the audit log keeps it ([`snapshot`]); null if never inspected.
    pub state: serde_json::Value,
}

/// The state of a container, as the audit log keeps it.
#[must_use]
pub fn snapshot(state: ContainerState, health: HealthStatus, started_at: Option<DateTime<Utc>>) -> serde_json::Value {
    serde_json::json!({
        "state": format!("{state:?}").to_lowercase(),
        "health": format!("{health:?}").to_lowercase(),
        "started_at": started_at,
    })
}

/// Waits until `name` runs (and is healthy, when it has a healthcheck).
pub async fn wait_ready(rt: &dyn ContainerRuntime, name: &str, wait: Wait) -> Readiness {
    let deadline =
        Instant::now().checked_add(wait.timeout).unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
    let mut detail;
    let mut state = serde_json::Value::Null;
    loop {
        match rt.inspect(name).await {
            Ok(d) => {
                detail = format!("{:?}, health {:?}", d.state, d.health).to_lowercase();
                state = snapshot(d.state, d.health, d.started_at);
                if d.state == ContainerState::Running && matches!(d.health, HealthStatus::None | HealthStatus::Healthy)
                {
                    return Readiness { ok: true, detail, exited: false, state };
                }
                if wait.fail_on_exit && matches!(d.state, ContainerState::Exited | ContainerState::Dead) {
                    let code = d.exit_code.map(|c| format!(" with code {c}")).unwrap_or_default();
                    return Readiness { ok: false, detail: format!("exited{code}"), exited: true, state };
                }
            }
            Err(e) => detail = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Readiness { ok: false, detail, exited: false, state };
        }
        tokio::time::sleep(wait.poll).await;
    }
}

/// Containers for tests: a Compose stack as `docker ps` would list it.
#[cfg(any(test, feature = "mocks"))]
pub mod fixtures {
    use std::collections::BTreeMap;

    use super::COMPOSE_DEPENDS_ON_LABEL;
    use crate::ports::{COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL, ContainerState, ContainerSummary};

    /// The container `{project}-{service}-1` of a Compose service, depending on `depends`
    /// (a `depends_on` label, empty for none).
    #[must_use]
    pub fn container(project: &str, service: &str, depends: &str, state: ContainerState) -> ContainerSummary {
        let name = format!("{project}-{service}-1");
        let mut labels = BTreeMap::from([
            (COMPOSE_PROJECT_LABEL.to_owned(), project.to_owned()),
            (COMPOSE_SERVICE_LABEL.to_owned(), service.to_owned()),
        ]);
        if !depends.is_empty() {
            labels.insert(COMPOSE_DEPENDS_ON_LABEL.to_owned(), depends.to_owned());
        }
        ContainerSummary {
            id: format!("id-{name}"),
            name,
            image: "img".to_owned(),
            state,
            status: "Up 1 hour".to_owned(),
            compose_project: Some(project.to_owned()),
            compose_service: Some(service.to_owned()),
            labels,
        }
    }

    /// Project `shop` (web and worker need api; api needs db and redis; an exited cron needs
    /// worker) and project `blog`, whose api needs its own db.
    #[must_use]
    pub fn shop() -> Vec<ContainerSummary> {
        use ContainerState::{Exited, Running};
        vec![
            container("shop", "web", "api:service_started:false,db:service_healthy:false", Running),
            container("shop", "worker", "api:service_started:false", Running),
            container("shop", "api", "db:service_healthy:false,redis:service_started:false", Running),
            container("shop", "db", "", Running),
            container("shop", "redis", "", Running),
            container("shop", "cron", "worker", Exited),
            container("blog", "api", "db", Running),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{container, shop};
    use super::*;
    use crate::ErrorKind;

    fn names(cs: &[&ContainerSummary]) -> Vec<String> {
        cs.iter().map(|c| c.name.clone()).collect()
    }

    #[test]
    fn dependents_come_after_what_they_depend_on() {
        let all = Stack { containers: shop() };
        let roots = all.find("shop-db-1").unwrap();
        let (deps, cycle) = all.dependents(&roots);
        assert_eq!(names(&deps), ["shop-api-1", "shop-web-1", "shop-worker-1", "shop-cron-1"]);
        assert!(cycle.is_none());
        // Redis: the API, then what needs the API; never the database.
        let roots = all.find("shop-redis-1").unwrap();
        assert_eq!(names(&all.dependents(&roots).0), ["shop-api-1", "shop-web-1", "shop-worker-1", "shop-cron-1"]);
        let roots = all.find("shop-web-1").unwrap();
        assert!(all.dependents(&roots).0.is_empty());
    }

    #[test]
    fn a_service_in_two_projects_must_be_named_precisely() {
        let all = Stack { containers: shop() };
        let e = all.find("api").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(names(&all.find("db").unwrap()), ["shop-db-1"]);
        assert_eq!(all.find("nope").unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn cycles_are_broken_in_name_order() {
        let all = Stack {
            containers: vec![
                container("p", "db", "", ContainerState::Running),
                container("p", "a", "db,b", ContainerState::Running),
                container("p", "b", "a", ContainerState::Running),
            ],
        };
        let roots = all.find("db").unwrap();
        let (deps, cycle) = all.dependents(&roots);
        assert_eq!(names(&deps), ["p-a-1", "p-b-1"]);
        assert!(cycle.unwrap().contains("a, b"));
    }

    #[test]
    fn what_waits_on_a_cycle_still_comes_after_it() {
        // db <- x <-> y, and c needs x: x goes first (the cycle broken at its first name), then
        // what needs only x (c and y, by name); c never before x.
        let all = Stack {
            containers: vec![
                container("p", "db", "", ContainerState::Running),
                container("p", "x", "db,y", ContainerState::Running),
                container("p", "y", "x", ContainerState::Running),
                container("p", "c", "x", ContainerState::Running),
            ],
        };
        let roots = all.find("db").unwrap();
        let (deps, cycle) = all.dependents(&roots);
        assert_eq!(names(&deps), ["p-x-1", "p-c-1", "p-y-1"]);
        let cycle = cycle.unwrap();
        assert!(cycle.contains("of x, y form"), "{cycle}");
    }

    #[test]
    fn depends_on_labels_of_every_compose_version() {
        assert_eq!(parse_depends_on("db:service_healthy:false,redis:service_started:false"), ["db", "redis"]);
        assert_eq!(parse_depends_on("db,redis, db"), ["db", "redis"]);
        assert!(parse_depends_on("").is_empty());
        let pair = |s: &str, c: &str| (s.to_owned(), c.to_owned());
        assert_eq!(
            parse_depends_on_conditions("db:service_healthy:false,migrate:service_completed_successfully:false"),
            [pair("db", "service_healthy"), pair("migrate", "service_completed_successfully")]
        );
        assert_eq!(
            parse_depends_on_conditions("db,redis"),
            [pair("db", "service_started"), pair("redis", "service_started")]
        );
        assert!(parse_depends_on_conditions("").is_empty());
    }

    #[test]
    fn one_offs_are_never_part_of_the_graph() {
        let mut run = container("shop", "api", "db:service_healthy:false", ContainerState::Running);
        run.name = "shop-api-run-3f2a".into();
        run.labels.insert(COMPOSE_ONEOFF_LABEL.to_owned(), "True".into());
        let stack = Stack {
            containers: vec![
                container("shop", "db", "", ContainerState::Running),
                container("shop", "api", "db:service_healthy:false", ContainerState::Running),
                run,
            ],
        };
        let roots = stack.find("db").unwrap();
        let (deps, _) = stack.dependents(&roots);
        assert_eq!(deps.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["shop-api-1"]);
        assert_eq!(stack.find("api").unwrap().len(), 1);
    }
}
