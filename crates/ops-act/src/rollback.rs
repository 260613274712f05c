//! `rollback`: a service back to the version before (or a named one) from the release ledger
//! (`ops_core::releases`), amn.gg's "roll back first, stability before forensics".
//!
//! - **Plan.** The service's one container, the version it runs, and the version to go to:
//!   `to` (an image reference or an id prefix of a version in the ledger), else the one before
//!   the running one. Refused, with the reason: no version in the ledger, none before, the
//!   same version, its image gone from the engine, or (for a database's container) a
//!   backup, restore or drill of that database holding its lock.
//! - **Apply.** Re-checked first (a container that changed since the plan is skipped); its
//!   intent in the audit log; the container stopped and renamed aside (kept), a new one
//!   created like it (name, labels, environment, mounts, networks, ports, restart policy,
//!   limits) on the older image, started and waited for (running, healthy with a
//!   healthcheck, and still running 5 s later). Ready: the kept one is removed. When the
//!   service is a database's container, its local lock file is held throughout (the advisory
//!   lock is checked, not held: a session on the server being stopped would hold it up).
//! - **Dependents.** After a rollback that worked, what depends on the service restarts in
//!   order (as `restart-dependents`), each with its own outcome.
//! - **Auto-updaters.** A running Watchtower (or a fork: its `com.centurylinklabs.watchtower`
//!   label, or `watchtower` in its image) is paused for the rollback; left paused after one
//!   that succeeded (it would deploy the image rolled back from again), with the command to
//!   resume it, and resumed after one that did not. Not ready: the new one is removed and the
//!   kept one renamed back and started: the service is on the version it came from.

use std::time::Duration;

use chrono::Utc;
use ops_core::audit::Audit;
use ops_core::ports::{ContainerState, ImageInfo};
use ops_core::releases::Version;
use ops_core::stack::{self, Stack};
use ops_core::{Context, Error, ErrorKind, Result};
use serde_json::json;

use crate::{Action, ActionPlan, Outcome, Target};

/// How long a stop may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the rolled-back container has to run (and be healthy).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Time between two looks.
const POLL: Duration = Duration::from_millis(500);
/// How long the rolled-back container must keep running once ready: one without a
/// healthcheck that dies a second after its start is not a service back.
const SETTLE: Duration = Duration::from_secs(5);

/// The plan of a rollback of `service`.
///
/// # Errors
/// `InvalidInput` (not one container, nothing to go back to, the same version), `NotFound`
/// (no such service, nothing in the ledger, the image gone), `Unavailable` (no engine, no
/// state store).
pub(crate) async fn plan(ctx: &Context, action: &Action, service: &str, to: Option<&str>) -> Result<ActionPlan> {
    let store = ctx.state().map_err(|_| {
        Error::unavailable("rollback reads the release ledger: the state store (state.url) is not open")
    })?;
    let rt = stack::runtime(ctx)?;
    let all = Stack::read(ctx).await?;
    let found = all.find(service)?;
    let [c] = found.as_slice() else {
        return Err(Error::invalid_input(format!(
            "{service} has {} containers: a rollback replaces one (name one container)",
            found.len()
        )));
    };
    let name = c.compose_service.clone().unwrap_or_else(|| c.name.clone());
    let project = ctx.config.project.compose_project.clone().unwrap_or_default();
    let ledger = ops_core::releases::load(store.as_ref(), &project).await?;
    let Some(r) = ledger.get(&name) else {
        return Err(Error::not_found(format!(
            "{name} has no version in the release ledger yet: triage records it (opsctl triage)"
        )));
    };
    // A rollback that was cut off left its container aside: that is for a person to sort out.
    let aside = format!("{}{}", c.name, stack::ASIDE_MARK);
    let every = every(rt).await?;
    if let Some(left) = every.iter().find(|o| o.name.starts_with(&aside)) {
        return Err(Error::conflict(format!(
            "{} was put aside by a rollback that did not finish: start it again or remove it (docker rm {}) first",
            left.name, left.name
        )));
    }
    let d = rt.inspect(&c.id).await?;
    let mut lock_notes = Vec::new();
    // Refused while a backup, restore or drill of its database runs (looked at only: apply
    // takes the local lock for the whole rollback).
    database_locks(ctx, &d.name, &name, &mut lock_notes, false).await?;
    let running = Version::of(&d, None, Utc::now());
    let versions: Vec<&Version> = std::iter::once(&r.current).chain(&r.previous).collect();
    let target = match to {
        Some(want) => {
            let id = want.trim_start_matches("sha256:");
            let matches: Vec<&Version> = versions
                .iter()
                .filter(|v| {
                    v.image == want || (id.len() >= 7 && v.image_id.trim_start_matches("sha256:").starts_with(id))
                })
                .copied()
                .collect();
            let known = || versions.iter().map(|v| v.label()).collect::<Vec<_>>().join(", ");
            let first = matches
                .first()
                .copied()
                .ok_or_else(|| Error::not_found(format!("{name} never ran {want:?}; the ledger has: {}", known())))?;
            if matches.iter().any(|m| m.image_id != first.image_id) {
                return Err(Error::invalid_input(format!(
                    "{want:?} names several versions of {name}: give an image id instead ({})",
                    matches.iter().map(|m| m.label()).collect::<Vec<_>>().join(", ")
                )));
            }
            first
        }
        // The version before the running one (the ledger's current when the container changed
        // since triage last looked), skipping the ones a rollback left and those with the
        // running image (a configuration change is not rolled back by an image).
        None => {
            let before: Vec<&Version> =
                if r.current.same_as(&running) { r.previous.iter().collect() } else { versions };
            before.into_iter().find(|v| !v.rolled_back_from && v.image_id != running.image_id).ok_or_else(|| {
                Error::invalid_input(format!(
                    "{name} has no version before {} to roll back to (none with another image that a rollback \
                     did not leave)",
                    running.label()
                ))
            })?
        }
    };
    if target.image_id == running.image_id {
        return Err(Error::invalid_input(format!("{name} already runs the image of {}", target.label())));
    }
    let image = match rt.image(&target.image_id).await {
        Ok(image) => image,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::not_found(format!(
                "the image of {} is gone from the engine: pull or rebuild it to roll back to it",
                target.label()
            )));
        }
        Err(e) => return Err(e),
    };
    let reference = reference(target, &image);
    let mut plan =
        ActionPlan { action: action.clone(), targets: Vec::new(), summary: String::new(), notes: lock_notes };
    if target.config_hash != running.config_hash {
        plan.notes.push(
            "the configuration differs between the two versions too: the rollback changes the image and keeps \
             the container's current configuration"
                .to_owned(),
        );
    }
    plan.targets.push(Target {
        id: format!("container:{}", d.name),
        details: [
            ("container", d.name.clone()),
            ("service", name.clone()),
            ("from", running.label()),
            ("from-image-id", running.image_id.clone()),
            ("to", target.label()),
            ("to-image-id", target.image_id.clone()),
            ("image", reference),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
    });
    for u in updaters(&every) {
        plan.notes.push(format!(
            "image auto-updater {u} is paused during the rollback and left paused after it succeeds (it would \
             deploy the image rolled back from again)"
        ));
    }
    plan.summary = format!("roll {name} back from {} to {}", running.label(), target.label());
    Ok(plan)
}

/// The databases whose container is `container` (or its Compose service `service`), checked
/// for the lock backups, restores and drills take: a rollback never replaces a database's
/// container under one of them. With `hold`, the local lock file of each is held (until the
/// returned locks drop) so that none starts on this host during the rollback; the advisory
/// lock is only checked, since a session held on the server being stopped would hold the stop
/// up. A database that does not answer has nothing running against it: a note, not a refusal.
///
/// # Errors
/// `Conflict` naming what holds the lock; the errors of the lock file and of the database but
/// for its not answering.
async fn database_locks(
    ctx: &Context,
    container: &str,
    service: &str,
    notes: &mut Vec<String>,
    hold: bool,
) -> Result<Vec<ops_backup::lock::OperationLock>> {
    let mut held = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let local = ops_backup::target::local_dir(ctx);
    for (name, cfg) in &ctx.config.databases {
        if !cfg.container.as_deref().is_some_and(|c| c == container || c == service) {
            continue;
        }
        let (_, db) = ctx.database(Some(name))?;
        // Two entries for one database share its lock: taken once.
        if !seen.insert(db.name().to_owned()) {
            continue;
        }
        let mut tries = 0;
        let got = loop {
            let got = if hold {
                ops_backup::lock::acquire_local(db.as_ref(), local.as_deref(), "rollback").await.map(Some)
            } else {
                ops_backup::lock::check_free(db.as_ref(), local.as_deref()).await.map(|()| None)
            };
            // Another rollback's look at the lock lasts a moment: tried again before refusing.
            match got {
                Err(e) if hold && e.kind() == ErrorKind::Conflict && tries < 3 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                other => break other,
            }
        };
        match got {
            Ok(lock) => held.extend(lock),
            Err(e) if e.kind() == ErrorKind::Conflict => {
                return Err(Error::conflict(format!(
                    "{e}: {container} is the container of database {name}, and a rollback would cut it off; \
                     roll back once it has finished"
                )));
            }
            Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout) => notes.push(format!(
                "database {name} ({container}) does not answer, so no backup or restore runs against it: {e}"
            )),
            Err(e) => return Err(e),
        }
    }
    Ok(held)
}

/// The label Watchtower (and its forks) put on their own container.
const WATCHTOWER_LABEL: &str = "com.centurylinklabs.watchtower";

/// The running image auto-updaters among `containers`: Watchtower and its forks.
fn updaters(containers: &[ops_core::ports::ContainerSummary]) -> Vec<String> {
    containers
        .iter()
        .filter(|c| c.state == ContainerState::Running)
        .filter(|c| {
            c.labels.get(WATCHTOWER_LABEL).is_some_and(|v| v.eq_ignore_ascii_case("true"))
                || c.image.to_ascii_lowercase().contains("watchtower")
        })
        .map(|c| c.name.clone())
        .collect()
}

/// Every container of the host, stopped ones included.
async fn every(rt: &dyn ops_core::ports::ContainerRuntime) -> Result<Vec<ops_core::ports::ContainerSummary>> {
    rt.list_containers(&ops_core::ports::ContainerFilter { all: true, ..Default::default() }).await
}

/// The reference to create the container with: the version's own tag while it still names
/// that image, else the image id (the tag moved on: `:latest` after a deploy).
fn reference(v: &Version, image: &ImageInfo) -> String {
    if image.repo_tags.contains(&v.image) { v.image.clone() } else { v.image_id.clone() }
}

/// Applies a rollback plan (see the module).
///
/// # Errors
/// `Unavailable` when the audit log cannot be written; the rest are outcomes.
pub(crate) async fn apply(ctx: &Context, plan: &ActionPlan, audit: &Audit) -> Result<Vec<Outcome>> {
    // In a task of its own: a caller that goes away (a request's time limit, a closed
    // terminal) does not cut a rollback off between putting the old container aside and
    // putting it back.
    let (ctx, plan, audit) = (ctx.clone(), plan.clone(), audit.clone());
    tokio::spawn(async move { apply_all(&ctx, &plan, &audit).await })
        .await
        .map_err(|e| Error::internal(format!("the rollback stopped unexpectedly: {e}")))?
}

async fn apply_all(ctx: &Context, plan: &ActionPlan, audit: &Audit) -> Result<Vec<Outcome>> {
    let rt = stack::runtime(ctx)?;
    let mut outcomes = Vec::new();
    for target in &plan.targets {
        let get = |k: &str| target.details.get(k).cloned().unwrap_or_default();
        let (name, image, from_id) = (get("container"), get("image"), get("from-image-id"));
        let fail = |result: String, before: serde_json::Value| Outcome {
            target: target.id.clone(),
            ok: false,
            result,
            before,
            after: serde_json::Value::Null,
        };
        // Re-checked at the moment of acting.
        let d = match rt.inspect(&name).await {
            Ok(d) => d,
            Err(e) => {
                outcomes.push(fail(format!("skipped: cannot inspect it: {e}"), serde_json::Value::Null));
                continue;
            }
        };
        let before = json!({ "image": d.image, "image_id": d.image_id, "state": stack::snapshot(d.state, d.health, d.started_at) });
        if d.image_id != from_id {
            outcomes.push(fail(format!("skipped: it runs {} now, not the planned version", d.image), before));
            continue;
        }
        // Held until the rollback ends: no backup, restore or drill of its database starts
        // while its container is being replaced.
        let _locks = match database_locks(ctx, &name, &get("service"), &mut Vec::new(), true).await {
            Ok(locks) => locks,
            Err(e) => {
                outcomes.push(fail(format!("skipped: {e}"), before));
                continue;
            }
        };
        // The tag the plan chose may have moved since: then the image by its id.
        let to_id = get("to-image-id");
        let image = match rt.image(&image).await {
            Ok(i) if i.id == to_id => image,
            _ => to_id.clone(),
        };
        let kept = format!("{name}{}{}", stack::ASIDE_MARK, Utc::now().timestamp());
        let intent = json!({ "image": image, "image_id": get("to-image-id"), "old_container_aside_as": kept });
        audit.record("rollback", &target.id, before.clone(), intent, "started")?;
        let was_running = matches!(d.state, ContainerState::Running | ContainerState::Restarting);
        // Auto-updaters first: one that redeploys while this runs would undo it.
        let mut paused = Vec::new();
        for u in updaters(&every(rt).await.unwrap_or_default()) {
            let done = rt.pause(&u).await;
            let result = done.as_ref().map_or_else(ToString::to_string, |()| "ok".to_owned());
            audit.record(
                "pause-updater",
                &format!("container:{u}"),
                json!({ "for": target.id }),
                json!({}),
                &result,
            )?;
            if done.is_ok() {
                paused.push(u);
            }
        }
        let mut outcome = replace(rt, &name, &kept, &image, was_running, &get("from")).await;
        for u in &paused {
            if outcome.ok {
                outcome.result.push_str(&format!(
                    "; {u} left paused: it would deploy the image rolled back from again (docker unpause {u} once \
                     that image is fixed)"
                ));
            } else {
                let done = rt.unpause(u).await;
                let result = done.as_ref().map_or_else(ToString::to_string, |()| "ok".to_owned());
                audit.record("unpause-updater", &format!("container:{u}"), json!({}), json!({}), &result)?;
                outcome.result.push_str(&match done {
                    Ok(()) => format!("; {u} resumed"),
                    Err(e) => format!("; {u} is still paused ({e}): docker unpause {u}"),
                });
            }
        }
        let outcome = Outcome { target: target.id.clone(), before, ..outcome };
        audit.record("rollback", &outcome.target, outcome.before.clone(), outcome.after.clone(), &outcome.result)?;
        let rolled_back = outcome.ok;
        if outcome.ok {
            // The ledger knows at once: the version left is never the default target again,
            // and this one is no deploy to roll back.
            if let (Ok(store), Ok(now)) = (ctx.state(), rt.inspect(&name).await) {
                let project = ctx.config.project.compose_project.clone().unwrap_or_default();
                let (to, from) = (Version::of(&now, None, Utc::now()), Version::of(&d, None, Utc::now()));
                let _ = ops_core::releases::record_rollback(store.as_ref(), &project, &get("service"), to, &from).await;
            }
        }
        outcomes.push(outcome);
        // What depends on it restarts, in order, against the version back (the same steps
        // as `restart-dependents`, each its own outcome and audit record).
        if rolled_back {
            let dependents = Action::RestartDependents { service: get("service") };
            match crate::services::plan(ctx, &dependents).await {
                Ok(p) if !p.targets.is_empty() => outcomes.extend(crate::services::apply(ctx, &p, audit).await?),
                Ok(_) => {}
                Err(e) => {
                    outcomes.push(fail(format!("its dependents were not restarted: {e}"), serde_json::Value::Null))
                }
            }
        }
    }
    Ok(outcomes)
}

/// Whether `name`, ready, keeps running for [`SETTLE`] without a restart; why not.
async fn settled(rt: &dyn ops_core::ports::ContainerRuntime, name: &str) -> std::result::Result<(), String> {
    let first = rt.inspect(name).await.map_err(|e| e.to_string())?;
    tokio::time::sleep(SETTLE).await;
    let then = rt.inspect(name).await.map_err(|e| e.to_string())?;
    if then.state == ContainerState::Running && then.started_at == first.started_at {
        Ok(())
    } else {
        let code = then.exit_code.map(|c| format!(", exit code {c}")).unwrap_or_default();
        Err(format!("it did not keep running for {} s after it started ({:?}{code})", SETTLE.as_secs(), then.state)
            .to_lowercase())
    }
}

/// Replaces `name` with a container like it on `image`; puts the old one back when the new
/// one does not become ready. `before` is filled by the caller.
async fn replace(
    rt: &dyn ops_core::ports::ContainerRuntime,
    name: &str,
    kept: &str,
    image: &str,
    was_running: bool,
    from: &str,
) -> Outcome {
    let outcome = |ok: bool, result: String, after: serde_json::Value| Outcome {
        target: String::new(),
        ok,
        result,
        before: serde_json::Value::Null,
        after,
    };
    let kept = kept.to_owned();
    // Stopped whatever it is doing (a crash loop restarts by itself otherwise).
    if let Err(e) = rt.stop(name, STOP_TIMEOUT).await
        && rt.inspect(name).await.is_ok_and(|d| d.state != ContainerState::Exited)
    {
        return outcome(false, format!("not rolled back: stopping it failed: {e}"), serde_json::Value::Null);
    }
    if let Err(e) = rt.rename(name, &kept).await {
        let back = if was_running { rt.start(name).await.err() } else { None };
        let also = back.map(|e| format!("; starting it again failed too: {e}")).unwrap_or_default();
        return outcome(
            false,
            format!("not rolled back: renaming it aside failed: {e}{also}"),
            serde_json::Value::Null,
        );
    }
    let created = match rt.create_like(&kept, image, name).await {
        Ok(id) => rt.start(&id).await.map(|()| id),
        Err(e) => Err(e),
    };
    let ready = match &created {
        Ok(_) => {
            let wait = stack::Wait { timeout: READY_TIMEOUT, poll: POLL, fail_on_exit: true };
            let r = stack::wait_ready(rt, name, wait).await;
            if r.ok { settled(rt, name).await.map(|()| r.state) } else { Err(r.detail) }
        }
        Err(e) => Err(e.to_string()),
    };
    match ready {
        Ok(state) => {
            // Its volumes, anonymous ones included, are the new container's now.
            let removed = rt.remove_keeping_volumes(&kept, true).await;
            let note = removed.err().map(|e| format!(" (the old container {kept} stays: {e})")).unwrap_or_default();
            outcome(true, format!("ok{note}"), json!({ "image": image, "state": state }))
        }
        Err(why) => {
            // Back to the version it came from.
            let mut steps = Vec::new();
            // Only the container this rollback created (by its id), never another that took
            // the name meanwhile; its volumes stay (they are the old container's too).
            if let Ok(id) = &created
                && let Err(e) = rt.remove_keeping_volumes(id, true).await
            {
                steps.push(format!("removing the new container failed: {e}"));
            }
            let back = match rt.rename(&kept, name).await {
                Ok(()) => name.to_owned(),
                Err(e) => {
                    steps.push(format!("renaming {kept} back failed: {e}"));
                    kept.clone()
                }
            };
            if was_running {
                let wait = stack::Wait { timeout: READY_TIMEOUT, poll: POLL, fail_on_exit: true };
                match rt.start(&back).await {
                    Ok(()) => {
                        let r = stack::wait_ready(rt, &back, wait).await;
                        if !r.ok {
                            steps.push(format!("{from} does not become ready either: {}", r.detail));
                        }
                    }
                    Err(e) => steps.push(format!("starting {from} again failed: {e}")),
                }
            }
            let went = if steps.is_empty() { format!("went back to {from}") } else { steps.join("; ") };
            outcome(
                false,
                format!("the rolled-back container did not become ready ({why}): {went}"),
                serde_json::Value::Null,
            )
        }
    }
}
