//! Guarded PostgreSQL remediation: `terminate`, `kill-idle`, `cancel-slow`, `vacuum`.
//!
//! [`plan`] lists exactly what would be touched, with the facts a person needs to decide (a
//! backend's user, application, client, state, age and query; a table's size and dead rows).
//! [`apply`] re-checks every target against the live server, in the same statement that acts on
//! it (same pid *and* same `backend_start`, still idle or still running the same query past the
//! limit), skips it otherwise (`skipped: …`), and appends one audit entry per target.
//!
//! `kill-idle` and `cancel-slow` only ever touch client sessions of the action's database:
//! never replication (walsenders), autovacuum or other background processes, `pg_dump`,
//! `pg_restore` or `pg_basebackup`, this tool's own connections (application `ops`: its pools and
//! the `pg_dump`/`psql` of its backups and restores) or the session doing the work.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use ops_core::ports::{Backend, BackendCheck, BackendSignal, Database, SignalOutcome, TableStats};
use ops_core::{Context, Error, Result};
use serde_json::{Value, json};

use crate::{Action, ActionPlan, Outcome, Target};
use ops_core::audit::Audit;
use ops_core::units::count;
use ops_core::units::{human_bytes, human_duration, percent};

/// `application_name`s `kill-idle` and `cancel-slow` never touch: dumps, restores, base backups
/// and this tool's own connections.
pub const PROTECTED_APPLICATIONS: [&str; 5] = ["pg_dump", "pg_dumpall", "pg_restore", "pg_basebackup", "ops"];

/// How long [`apply`] waits to see a terminated backend gone or a cancelled query end.
const SETTLE: Duration = Duration::from_secs(3);

fn protected() -> Vec<String> {
    PROTECTED_APPLICATIONS.iter().map(|a| (*a).to_owned()).collect()
}

fn is_protected(b: &Backend) -> bool {
    b.application.as_deref().is_some_and(|a| PROTECTED_APPLICATIONS.contains(&a))
}

fn ts(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true)).unwrap_or_default()
}

fn parse_ts(details: &BTreeMap<String, String>, key: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(details.get(key)?).ok().map(|t| t.with_timezone(&Utc))
}

fn secs(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.0}", d.as_secs_f64())).unwrap_or_default()
}

/// A backend as a plan target: everything needed to decide, and to recognise it again.
fn backend_target(b: &Backend) -> Target {
    let mut d = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        if !v.is_empty() {
            d.insert(k.to_owned(), v);
        }
    };
    put("pid", b.pid.to_string());
    put("backend_type", b.backend_type.clone());
    put("user", b.user.clone().unwrap_or_default());
    put("database", b.database.clone().unwrap_or_default());
    put("application", b.application.clone().unwrap_or_default());
    put("client", b.client_addr.clone().unwrap_or_else(|| "local socket".to_owned()));
    put("state", b.state.clone());
    put("backend_start", ts(b.backend_start));
    put("query_start", ts(b.query_start));
    put("state_age_secs", secs(b.state_age));
    put("query_age_secs", secs(b.query_age));
    put("transaction_age_secs", secs(b.transaction_age));
    let age = if b.state == "active" { b.query_age } else { b.state_age };
    put("age", age.map(human_duration).unwrap_or_default());
    put("wait_event", b.wait_event.clone().unwrap_or_default());
    put("query", b.query.clone());
    Target { id: format!("backend:{}", b.pid), details: d }
}

fn table_target(t: &TableStats) -> Target {
    let d = BTreeMap::from([
        ("schema".to_owned(), t.schema.clone()),
        ("name".to_owned(), t.name.clone()),
        ("size".to_owned(), human_bytes(t.size_bytes)),
        ("size_bytes".to_owned(), t.size_bytes.to_string()),
        ("live_tuples".to_owned(), t.live_tuples.to_string()),
        ("dead_tuples".to_owned(), t.dead_tuples.to_string()),
        ("dead_share".to_owned(), format!("{:.1} %", percent(t.dead_tuples, t.dead_tuples + t.live_tuples))),
        ("last_vacuum".to_owned(), ts(t.last_vacuum.max(t.last_autovacuum))),
        ("last_analyze".to_owned(), ts(t.last_analyze.max(t.last_autoanalyze))),
    ]);
    Target {
        id: format!("table:{}", t.qualified_name()),
        details: d.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
    }
}

/// `postgres@app (psql), idle for 12 min`.
fn who(b: &Backend) -> String {
    let user = b.user.as_deref().unwrap_or("?");
    let db = b.database.as_deref().unwrap_or("?");
    let app = b.application.as_deref().map(|a| format!(" ({a})")).unwrap_or_default();
    let age = if b.state == "active" { b.query_age } else { b.state_age };
    let age = age.map(|a| format!(" for {}", human_duration(a))).unwrap_or_default();
    format!("{user}@{db}{app}, {}{age}", if b.state.is_empty() { &b.backend_type } else { &b.state })
}

/// Resolves `schema.table` or `table` against the catalog.
fn resolve<'a>(tables: &'a [TableStats], wanted: &str, database: &str) -> Result<&'a TableStats> {
    let wanted = wanted.trim();
    let unquote = |s: &str| s.trim().trim_matches('"').to_owned();
    let (schema, name) = match wanted.split_once('.') {
        Some((s, n)) => (Some(unquote(s)), unquote(n)),
        None => (None, unquote(wanted)),
    };
    let found: Vec<&TableStats> =
        tables.iter().filter(|t| t.name == name && schema.as_ref().is_none_or(|s| &t.schema == s)).collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::not_found(format!("no table {wanted} in database {database}"))),
        many => Err(Error::invalid_input(format!(
            "table {wanted} is ambiguous in database {database}: {}; name the schema",
            many.iter().map(|t| t.qualified_name()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// What `action` would touch; nothing is changed.
///
/// # Errors
/// `InvalidInput` for an action that is not a PostgreSQL one, for the tool's own session or a
/// background process given to `terminate`, and for an ambiguous table; `NotFound` for an
/// unknown database, pid or table; the database's errors (`Unavailable`, `Auth`).
pub async fn plan(ctx: &Context, action: &Action) -> Result<ActionPlan> {
    match action {
        Action::Terminate { database, pid } => {
            let (name, db) = ctx.database(database.as_deref())?;
            let list = db.backends().await?;
            let b = list.backends.iter().find(|b| b.pid == *pid).ok_or_else(|| {
                Error::not_found(format!("no backend with pid {pid} on the server of database {name}"))
            })?;
            if b.pid == list.own_pid {
                return Err(Error::invalid_input(format!("pid {pid} is this tool's own session")));
            }
            if !b.is_client() {
                return Err(Error::invalid_input(format!(
                    "pid {pid} is a {}, not a client session: refusing to terminate it",
                    b.backend_type
                )));
            }
            let mut notes = Vec::new();
            if is_protected(b) {
                notes.push(format!(
                    "pid {pid} is {}: terminating it aborts that run",
                    match b.application.as_deref() {
                        Some("ops") => "this tool (a backup, restore or check in progress)".to_owned(),
                        Some(app) => format!("a {app}"),
                        None => String::new(),
                    }
                ));
            }
            if b.transaction_age.is_some() {
                notes.push("its open transaction is rolled back".to_owned());
            }
            Ok(ActionPlan {
                action: action.clone(),
                summary: format!("terminate backend {pid} ({}) on {name}", who(b)),
                targets: vec![backend_target(b)],
                notes,
            })
        }
        Action::KillIdle { database, older_than_secs } => {
            let (name, db) = ctx.database(database.as_deref())?;
            let limit = Duration::from_secs(*older_than_secs);
            sessions_plan(action, name, db.as_ref(), "idle", limit).await
        }
        Action::CancelSlow { database, longer_than_secs } => {
            let (name, db) = ctx.database(database.as_deref())?;
            let limit = Duration::from_secs(*longer_than_secs);
            sessions_plan(action, name, db.as_ref(), "active", limit).await
        }
        Action::Vacuum { database, analyze, tables } => {
            let (name, db) = ctx.database(database.as_deref())?;
            let all = db.table_stats().await?;
            let verb = if *analyze { "VACUUM (ANALYZE)" } else { "VACUUM" };
            let mut notes =
                vec!["plain VACUUM (not FULL): reads and writes go on; it runs outside a transaction".to_owned()];
            if tables.is_empty() {
                let dead: u64 = all.iter().map(|t| t.dead_tuples).sum();
                let size: u64 = all.iter().map(|t| t.size_bytes).sum();
                let details = BTreeMap::from([
                    ("database".to_owned(), db.name().to_owned()),
                    ("tables".to_owned(), all.len().to_string()),
                    ("size".to_owned(), human_bytes(size)),
                    ("dead_tuples".to_owned(), dead.to_string()),
                ]);
                notes.push(format!("every table of database {} ({} tables)", db.name(), all.len()));
                return Ok(ActionPlan {
                    action: action.clone(),
                    summary: format!("{verb} the whole database {} ({name})", db.name()),
                    targets: vec![Target { id: format!("database:{}", db.name()), details }],
                    notes,
                });
            }
            let mut targets: Vec<Target> = Vec::new();
            for wanted in tables {
                let t = resolve(&all, wanted, db.name())?;
                let target = table_target(t);
                if !targets.iter().any(|x| x.id == target.id) {
                    targets.push(target);
                }
            }
            Ok(ActionPlan {
                action: action.clone(),
                summary: format!("{verb} {} of {name}", plural_tables(targets.len())),
                targets,
                notes,
            })
        }
        other => Err(Error::invalid_input(format!("{} is not a PostgreSQL action", other.name()))),
    }
}

fn plural_tables(n: usize) -> String {
    if n == 1 { "1 table".to_owned() } else { format!("{n} tables") }
}

/// Client sessions of `db` in `state` for at least `limit`, minus the protected ones.
async fn sessions_plan(
    action: &Action,
    name: &str,
    db: &dyn Database,
    state: &str,
    limit: Duration,
) -> Result<ActionPlan> {
    let list = db.backends().await?;
    let age = |b: &Backend| if state == "active" { b.query_age } else { b.state_age };
    let matches = |b: &Backend| b.state == state && age(b).is_some_and(|a| a >= limit);
    let mut targets: Vec<&Backend> = Vec::new();
    let (mut own, mut kept, mut background, mut elsewhere) = (0usize, Vec::new(), 0usize, 0usize);
    for b in list.backends.iter().filter(|b| matches(b)) {
        if b.pid == list.own_pid {
            own += 1;
        } else if !b.is_client() {
            background += 1;
        } else if is_protected(b) {
            kept.push(format!("pid {} ({})", b.pid, b.application.as_deref().unwrap_or_default()));
        } else if b.database.as_deref() != Some(db.name()) {
            elsewhere += 1;
        } else {
            targets.push(b);
        }
    }
    targets.sort_by_key(|b| std::cmp::Reverse(age(b)));
    let mut notes = Vec::new();
    if !kept.is_empty() {
        notes.push(format!(
            "left out: {} of pg_dump, pg_restore, pg_basebackup or this tool (application ops): {}",
            count(kept.len() as u64),
            kept.join(", ")
        ));
    }
    if background > 0 {
        notes.push(format!("left out: {background} replication, autovacuum or background processes"));
    }
    if own > 0 {
        notes.push(format!("left out: this tool's own session (pid {})", list.own_pid));
    }
    if elsewhere > 0 {
        notes.push(format!("left out: {elsewhere} sessions of other databases on the server"));
    }
    let (verb, what) =
        if state == "active" { ("cancel", "running longer than") } else { ("terminate", "idle for at least") };
    if state == "idle" {
        let in_tx = list
            .backends
            .iter()
            .filter(|b| b.is_client() && b.database.as_deref() == Some(db.name()))
            .filter(|b| b.state.starts_with("idle in transaction"))
            .filter(|b| b.state_age.is_some_and(|a| a >= limit))
            .count();
        if in_tx > 0 {
            notes.push(format!(
                "{in_tx} sessions idle in a transaction as long are not included: end them one by one with \
                 opsctl pg terminate PID (their transaction is rolled back)"
            ));
        }
    }
    let noun = if state == "active" { "queries" } else { "idle connections" };
    let summary = if targets.is_empty() {
        format!("nothing to do: no {noun} {what} {} on {name}", human_duration(limit))
    } else {
        format!("{verb} {} {noun} {what} {} on {name}", targets.len(), human_duration(limit))
    };
    Ok(ActionPlan {
        action: action.clone(),
        targets: targets.into_iter().map(backend_target).collect(),
        summary,
        notes,
    })
}

/// Applies `plan`: every target re-checked against the live server and acted on only when it
/// still matches, one audit record per target (by the audit's actor). Targets that changed are
/// `skipped: …` outcomes, not errors.
///
/// # Errors
/// `InvalidInput` for an action that is not a PostgreSQL one, or an unknown database; `Unavailable` when the audit log cannot be written (nothing further is done).
pub async fn apply(ctx: &Context, plan: &ActionPlan, audit: &Audit) -> Result<Vec<Outcome>> {
    let (database, signal) = match &plan.action {
        Action::Terminate { database, .. } | Action::KillIdle { database, .. } => (database, BackendSignal::Terminate),
        Action::CancelSlow { database, .. } => (database, BackendSignal::Cancel),
        Action::Vacuum { database, analyze, .. } => {
            let (_, db) = ctx.database(database.as_deref())?;
            return vacuum(db.as_ref(), plan, *analyze, audit).await;
        }
        other => return Err(Error::invalid_input(format!("{} is not a PostgreSQL action", other.name()))),
    };
    let (_, db) = ctx.database(database.as_deref())?;
    let mut outcomes = Vec::new();
    for target in &plan.targets {
        let before = json!(target.details);
        let pid = target.id.strip_prefix("backend:").and_then(|p| p.parse::<i32>().ok());
        let (ok, result, after) = match (pid, check_of(&plan.action, target)) {
            (Some(pid), Some(check)) => signal_one(db.as_ref(), pid, signal, &check).await,
            _ => {
                (false, "skipped: the plan does not identify this backend (pid, backend_start)".to_owned(), Value::Null)
            }
        };
        record(audit, &plan.action, target, &before, &after, &result)?;
        outcomes.push(Outcome { target: target.id.clone(), ok, result, before, after });
    }
    Ok(outcomes)
}

/// What must still hold for `target` when it is acted on.
fn check_of(action: &Action, target: &Target) -> Option<BackendCheck> {
    let backend_start = Some(parse_ts(&target.details, "backend_start")?);
    Some(match action {
        Action::Terminate { .. } => BackendCheck { backend_start, ..BackendCheck::default() },
        Action::KillIdle { older_than_secs, .. } => BackendCheck {
            backend_start,
            state: Some("idle".to_owned()),
            min_state_age: Some(Duration::from_secs(*older_than_secs)),
            protected_applications: protected(),
            ..BackendCheck::default()
        },
        Action::CancelSlow { longer_than_secs, .. } => BackendCheck {
            backend_start,
            state: Some("active".to_owned()),
            query_start: Some(parse_ts(&target.details, "query_start")?),
            min_query_age: Some(Duration::from_secs(*longer_than_secs)),
            protected_applications: protected(),
            ..BackendCheck::default()
        },
        _ => return None,
    })
}

fn record(audit: &Audit, action: &Action, target: &Target, before: &Value, after: &Value, result: &str) -> Result<()> {
    audit.record(action.name(), &target.id, before.clone(), after.clone(), result)
}

/// Why a backend no longer matches its check.
fn changed(now: &Backend, check: &BackendCheck) -> String {
    if check.backend_start.is_some() && now.backend_start != check.backend_start {
        return format!("skipped: pid {} is now another session (connected at {})", now.pid, ts(now.backend_start));
    }
    if let Some(state) = &check.state
        && &now.state != state
    {
        return format!("skipped: no longer {state} (now {})", if now.state.is_empty() { "?" } else { &now.state });
    }
    if check.query_start.is_some() && now.query_start != check.query_start {
        return "skipped: that query has ended (the session runs another one)".to_owned();
    }
    if let Some(min) = check.min_state_age
        && now.state_age.is_some_and(|a| a < min)
    {
        return format!(
            "skipped: {} for only {} now (limit {})",
            now.state,
            human_duration(now.state_age.unwrap_or_default()),
            human_duration(min)
        );
    }
    if let Some(min) = check.min_query_age
        && now.query_age.is_some_and(|a| a < min)
    {
        return format!(
            "skipped: running for only {} (limit {})",
            human_duration(now.query_age.unwrap_or_default()),
            human_duration(min)
        );
    }
    if check.protected_applications.iter().any(|a| now.application.as_deref() == Some(a.as_str())) {
        return format!("skipped: it is now {} (protected)", now.application.as_deref().unwrap_or_default());
    }
    if !now.is_client() {
        return format!("skipped: a {}, not a client session", now.backend_type);
    }
    "skipped: this tool's own session".to_owned()
}

fn backend_json(b: &Backend) -> Value {
    json!({
        "pid": b.pid,
        "state": b.state,
        "backend_start": ts(b.backend_start),
        "query_start": ts(b.query_start),
        "query": b.query,
    })
}

async fn signal_one(db: &dyn Database, pid: i32, signal: BackendSignal, check: &BackendCheck) -> (bool, String, Value) {
    match db.signal_backend(pid, signal, check).await {
        Err(e) => (false, format!("failed: {e}"), Value::Null),
        Ok(SignalOutcome::Gone) => (false, "skipped: the backend has ended".to_owned(), json!({ "present": false })),
        Ok(SignalOutcome::Changed { now }) => (false, changed(&now, check), backend_json(&now)),
        Ok(SignalOutcome::Sent { delivered: false }) => (
            false,
            "failed: the server did not signal the backend (not allowed, or it ended meanwhile)".to_owned(),
            Value::Null,
        ),
        Ok(SignalOutcome::Sent { delivered: true }) => (true, "ok".to_owned(), settle(db, pid, signal, check).await),
    }
}

/// The backend once the signal took effect (gone, or its query ended), or as it is after
/// [`SETTLE`].
async fn settle(db: &dyn Database, pid: i32, signal: BackendSignal, check: &BackendCheck) -> Value {
    let started = std::time::Instant::now();
    loop {
        let now = match db.backends().await {
            Ok(list) => list.backends.into_iter().find(|b| b.pid == pid && b.backend_start == check.backend_start),
            Err(e) => return json!({ "error": e.to_string() }),
        };
        match (&now, signal) {
            (None, _) => return json!({ "present": false }),
            (Some(b), BackendSignal::Cancel) if b.state != "active" || b.query_start != check.query_start => {
                return json!({ "present": true, "session": backend_json(b) });
            }
            _ => {}
        }
        if started.elapsed() >= SETTLE {
            return json!({ "present": now.is_some(), "session": now.as_ref().map(backend_json) });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn vacuum(db: &dyn Database, plan: &ActionPlan, analyze: bool, audit: &Audit) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for target in &plan.targets {
        let before = json!(target.details);
        let (ok, result, after) = if target.id.starts_with("database:") {
            match db.vacuum(None, analyze).await {
                Ok(()) => {
                    let dead = db.table_stats().await.map(|t| t.iter().map(|t| t.dead_tuples).sum::<u64>());
                    (true, "ok".to_owned(), dead.map_or(Value::Null, |d| json!({ "dead_tuples": d })))
                }
                Err(e) => (false, format!("failed: {e}"), Value::Null),
            }
        } else {
            vacuum_table(db, target, analyze).await
        };
        record(audit, &plan.action, target, &before, &after, &result)?;
        outcomes.push(Outcome { target: target.id.clone(), ok, result, before, after });
    }
    Ok(outcomes)
}

async fn vacuum_table(db: &dyn Database, target: &Target, analyze: bool) -> (bool, String, Value) {
    let (Some(schema), Some(name)) = (target.details.get("schema"), target.details.get("name")) else {
        return (false, "skipped: the plan does not name the table's schema and name".to_owned(), Value::Null);
    };
    // The name goes to the server only once the catalog has it (and then quoted).
    let tables = match db.table_stats().await {
        Ok(t) => t,
        Err(e) => return (false, format!("failed: {e}"), Value::Null),
    };
    if !tables.iter().any(|t| &t.schema == schema && &t.name == name) {
        return (false, format!("skipped: table {schema}.{name} no longer exists"), Value::Null);
    }
    if let Err(e) = db.vacuum(Some((schema.clone(), name.clone())), analyze).await {
        return (false, format!("failed: {e}"), Value::Null);
    }
    let after = match db.table_stats().await {
        Ok(t) => t.iter().find(|t| &t.schema == schema && &t.name == name).map_or(Value::Null, |t| {
            json!({
                "live_tuples": t.live_tuples,
                "dead_tuples": t.dead_tuples,
                "last_vacuum": ts(t.last_vacuum),
                "last_analyze": ts(t.last_analyze),
            })
        }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    (true, "ok".to_owned(), after)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;
    use ops_core::ErrorKind;
    use ops_core::config::OpsConfig;
    use ops_core::ports::BackendList;
    use ops_core::ports::database::MockDatabase;

    use super::*;

    use ops_core::ports::database::fixtures::client_backend as backend;

    fn list() -> BackendList {
        let mut walsender = backend(5, "standby", "active", 9_000);
        walsender.backend_type = "walsender".into();
        let mut elsewhere = backend(6, "api", "idle", 9_000);
        elsewhere.database = Some("other".into());
        BackendList {
            own_pid: 1,
            backends: vec![
                backend(1, "ops", "active", 0),
                backend(2, "api", "idle", 900),
                backend(3, "api", "idle", 30),
                backend(4, "pg_dump", "idle", 900),
                walsender,
                elsewhere,
                backend(7, "ops", "idle", 900),
                backend(8, "api", "idle in transaction", 900),
                backend(9, "api", "active", 900),
                backend(10, "api", "idle", 3_600),
            ],
        }
    }

    fn ctx(db: MockDatabase) -> Context {
        let mut ctx = Context::empty(OpsConfig::default());
        ctx.databases.insert("main".into(), Arc::new(db));
        ctx
    }

    fn mock() -> MockDatabase {
        let mut db = MockDatabase::new();
        db.expect_name().return_const("app".to_owned());
        db.expect_backends().returning(|| Ok(list()));
        db
    }

    #[tokio::test]
    async fn kill_idle_plans_only_idle_client_sessions_of_the_database() {
        let ctx = ctx(mock());
        let plan = plan(&ctx, &Action::KillIdle { database: None, older_than_secs: 600 }).await.unwrap();
        let ids: Vec<&str> = plan.targets.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["backend:10", "backend:2"], "oldest first");
        assert_eq!(plan.summary, "terminate 2 idle connections idle for at least 10 min on main");
        let t = &plan.targets[1].details;
        assert_eq!(t["backend_start"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(
            (t["application"].as_str(), t["client"].as_str(), t["age"].as_str()),
            ("api", "local socket", "15 min")
        );
        let notes = plan.notes.join("\n");
        for expected in
            ["pid 4 (pg_dump)", "pid 7 (ops)", "1 sessions of other databases", "1 sessions idle in a transaction"]
        {
            assert!(notes.contains(expected), "{expected}: {notes}");
        }

        let slow = plan_of(&ctx, Action::CancelSlow { database: None, longer_than_secs: 60 }).await;
        assert_eq!(slow.targets.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["backend:9"]);
        assert!(slow.notes.iter().any(|n| n.contains("1 replication, autovacuum or background")), "{slow:#?}");
        let none = plan_of(&ctx, Action::KillIdle { database: None, older_than_secs: 100_000 }).await;
        assert!(none.targets.is_empty());
        assert_eq!(none.summary, "nothing to do: no idle connections idle for at least 1 d 3 h on main");
    }

    async fn plan_of(ctx: &Context, action: Action) -> ActionPlan {
        plan(ctx, &action).await.unwrap()
    }

    #[tokio::test]
    async fn terminate_refuses_background_processes_and_our_session() {
        let ctx = ctx(mock());
        for (pid, kind) in [(5, ErrorKind::InvalidInput), (1, ErrorKind::InvalidInput), (99, ErrorKind::NotFound)] {
            let e = plan(&ctx, &Action::Terminate { database: None, pid }).await.unwrap_err();
            assert_eq!(e.kind(), kind, "{pid}: {e}");
        }
        let p = plan_of(&ctx, Action::Terminate { database: None, pid: 4 }).await;
        assert!(p.notes[0].contains("a pg_dump"), "{p:#?}");
        let e = plan(&ctx, &Action::Restart { service: "api".into(), with_dependents: false }).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        // An unknown database is a bad parameter, as for every other command (Context::database).
        let e = plan(&ctx, &Action::KillIdle { database: Some("nope".into()), older_than_secs: 1 }).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn apply_sends_the_checks_and_reports_what_changed() {
        let mut db = mock();
        db.expect_signal_backend().returning(|pid, signal, check| {
            assert_eq!(signal, BackendSignal::Terminate);
            assert_eq!(check.state.as_deref(), Some("idle"));
            assert_eq!(check.min_state_age, Some(Duration::from_secs(600)));
            assert!(check.protected_applications.contains(&"pg_dump".to_owned()));
            assert!(check.backend_start.is_some());
            Ok(match pid {
                10 => SignalOutcome::Gone,
                _ => SignalOutcome::Changed { now: Box::new(backend(2, "api", "active", 1)) },
            })
        });
        let ctx = ctx(db);
        let p = plan_of(&ctx, Action::KillIdle { database: None, older_than_secs: 600 }).await;
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::at(&dir.path().join("audit.jsonl"), "tester").unwrap();
        let outcomes = apply(&ctx, &p, &audit).await.unwrap();
        let results: Vec<(&str, bool, &str)> =
            outcomes.iter().map(|o| (o.target.as_str(), o.ok, o.result.as_str())).collect();
        assert_eq!(
            results,
            [
                ("backend:10", false, "skipped: the backend has ended"),
                ("backend:2", false, "skipped: no longer idle (now active)"),
            ]
        );
        let entries = audit.log().read().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[1].actor.as_str(), entries[1].before["application"].as_str()), ("tester", Some("api")));
        assert_eq!(entries[1].after["state"], "active");

        // A plan without the session's identity is not acted on.
        let mut tampered = p.clone();
        tampered.targets[0].details.remove("backend_start");
        tampered.targets.truncate(1);
        let outcomes = apply(&ctx, &tampered, &audit).await.unwrap();
        assert!(outcomes[0].result.starts_with("skipped: the plan does not identify"), "{outcomes:#?}");
    }

    #[test]
    fn changes_are_explained() {
        let check = BackendCheck {
            backend_start: backend(1, "", "idle", 0).backend_start,
            state: Some("idle".into()),
            min_state_age: Some(Duration::from_secs(600)),
            ..BackendCheck::default()
        };
        let mut other = backend(2, "api", "idle", 5);
        assert_eq!(changed(&other, &check), "skipped: idle for only 5 s now (limit 10 min)");
        other.backend_start = Some(Utc.timestamp_opt(1_700_000_500, 0).unwrap());
        assert!(changed(&other, &check).starts_with("skipped: pid 2 is now another session"));
    }

    #[test]
    fn tables_resolve_against_the_catalog_only() {
        let t = |schema: &str, name: &str| TableStats {
            schema: schema.into(),
            name: name.into(),
            sql_name: format!("{schema}.{name}"),
            size_bytes: 0,
            estimated_rows: None,
            live_tuples: 0,
            dead_tuples: 0,
            modified_since_analyze: 0,
            seq_scan: 0,
            seq_tup_read: 0,
            idx_scan: None,
            idx_tup_fetch: 0,
            n_tup_ins: 0,
            n_tup_upd: 0,
            n_tup_del: 0,
            last_vacuum: None,
            last_autovacuum: None,
            last_analyze: None,
            last_autoanalyze: None,
            frozen_xid_age: 0,
        };
        let tables = [t("public", "orders"), t("audit", "log"), t("public", "log"), t("public", "Mixed Case")];
        assert_eq!(resolve(&tables, "orders", "app").unwrap().qualified_name(), "public.orders");
        assert_eq!(resolve(&tables, "audit.log", "app").unwrap().qualified_name(), "audit.log");
        assert_eq!(resolve(&tables, "public.\"Mixed Case\"", "app").unwrap().name, "Mixed Case");
        assert_eq!(resolve(&tables, "log", "app").unwrap_err().kind(), ErrorKind::InvalidInput);
        for bad in ["orders; DROP TABLE orders", "public.orders\"; --", "nope"] {
            assert_eq!(resolve(&tables, bad, "app").unwrap_err().kind(), ErrorKind::NotFound, "{bad}");
        }
    }
}
