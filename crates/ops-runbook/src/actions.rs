//! A runbook's action steps: the typed actions of `ops-act`, and those only a runbook runs
//! (`exec` a program in a container, an `http` request, `backup`, `restore`, `tls-renew`).
//! Each is planned first (what it would touch, nothing changed) and applied from its plan,
//! with an audit record per change. Never a shell string: `exec` takes an argv.

use std::collections::BTreeMap;
use std::time::Duration;

use ops_core::audit::Audit;
use ops_core::ports::{ExecSpec, HttpRequest};
use ops_core::{Context, Error, Result, Secret};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::format::Header;

/// An action step's arguments with its templates expanded.
#[derive(Clone)]
pub struct Resolved {
    /// The action.
    pub name: String,
    /// The arguments as JSON, with secrets in place (what runs).
    pub args: serde_json::Value,
    /// The same with every secret shown as `***` (what is shown and recorded).
    pub shown: serde_json::Value,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `args` holds the secrets; what is shown never does.
        f.debug_struct("Resolved").field("name", &self.name).field("shown", &self.shown).finish_non_exhaustive()
    }
}

/// What an action step would touch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionPreview {
    /// One line: `restart shop-db-1, then 2 dependents: shop-api-1, shop-web-1`.
    pub summary: String,
    /// What it touches (`container:shop-db-1`, `database:main`, `POST https://…/replay`).
    pub targets: Vec<String>,
    /// What a person should know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The budget key: this action on its first target.
    pub budget_key: String,
    /// The database whose lock a `lock = true` step takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// What applying an action step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionResult {
    /// Every target done.
    pub ok: bool,
    /// One line.
    pub summary: String,
    /// Per target: `container:api: ok`.
    pub outcomes: Vec<String>,
    /// An exec's exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// An http request's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Output worth keeping (an exec's last lines, a response's first bytes), redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

/// The actions of `ops-act` a runbook may name (a pid is not a runbook's to know, so no
/// `terminate`).
pub const ACT: [&str; 14] = [
    "rollback",
    "restart",
    "restart-unit",
    "restart-dependents",
    "start",
    "stop",
    "start-stack",
    "stop-stack",
    "engine-prune",
    "disk-clean",
    "kill-idle",
    "cancel-slow",
    "vacuum",
    "redis-set-policy",
];

/// The actions only a runbook runs.
pub const OWN: [&str; 5] = ["exec", "http", "backup", "restore", "tls-renew"];

/// Whether a step may name `name`.
#[must_use]
pub fn is_action(name: &str) -> bool {
    ACT.contains(&name) || OWN.contains(&name)
}

/// Every action a step may name.
#[must_use]
pub fn names() -> Vec<&'static str> {
    ACT.iter().chain(OWN.iter()).copied().collect()
}

/// The result of an action with one target.
fn one(
    target: &str,
    ok: bool,
    summary: String,
    exit_code: Option<i64>,
    http_status: Option<u16>,
    evidence: Vec<String>,
) -> ActionResult {
    ActionResult {
        ok,
        summary,
        outcomes: vec![format!("{target}: {}", if ok { "ok" } else { "failed" })],
        exit_code,
        http_status,
        evidence,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ExecArgs {
    service: String,
    command: Vec<String>,
    #[serde(default)]
    expect_exit: i64,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HttpArgs {
    #[serde(default = "get")]
    method: String,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    expect_status: Vec<u16>,
}

fn get() -> String {
    "GET".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DatabaseArgs {
    #[serde(default)]
    database: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RestoreArgs {
    #[serde(default)]
    database: Option<String>,
    #[serde(default = "latest")]
    source: String,
}

fn latest() -> String {
    "latest".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RenewArgs {
    #[serde(default)]
    force: bool,
}

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// Checks an action's arguments when the file is loaded: templates name parameters, and the
/// arguments (with placeholder values) are what the action takes.
pub(crate) fn check_args(name: &str, args: &toml::Table, h: &Header) -> std::result::Result<(), String> {
    check_template_places(name, args, h)?;
    let mut json = serde_json::to_value(args).map_err(|e| e.to_string())?;
    let mut problem = None;
    visit_strings(&mut json, &mut |s| {
        if let Err(e) = crate::format::check_templates(s, h) {
            problem.get_or_insert(e);
        }
        *s = crate::template::expand(s, &|_| Ok("x".to_owned())).unwrap_or_default();
    });
    if let Some(p) = problem {
        return Err(p);
    }
    typed(name, &json).map(drop).map_err(|e| format!("{name}: {}", e.message()))
}

/// Where a caller's values may not go: free text or numbers into a program's arguments, and
/// any parameter into where a request goes (its scheme and host). Names (a service, a
/// database) are checked plain words; text is not.
fn check_template_places(name: &str, args: &toml::Table, h: &Header) -> std::result::Result<(), String> {
    let refs = |v: &toml::Value| -> Vec<String> {
        let mut out = Vec::new();
        let mut json = serde_json::to_value(v).unwrap_or_default();
        visit_strings(&mut json, &mut |s| out.extend(crate::template::references(s).unwrap_or_default()));
        out
    };
    let free = |r: &str| {
        let head = r.split('.').next().unwrap_or_default();
        h.params
            .get(head)
            .is_some_and(|p| matches!(p.kind, crate::format::ParamKind::Text | crate::format::ParamKind::Number))
    };
    if name == "exec"
        && let Some(cmd) = args.get("command")
        && let Some(r) = refs(cmd).into_iter().find(|r| free(r))
    {
        return Err(format!("exec: {{{{{r}}}}} is free text: a caller's text never becomes a program's argument"));
    }
    if name == "http"
        && let Some(toml::Value::String(url)) = args.get("url")
    {
        let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let authority_end = after_scheme.find('/').unwrap_or(after_scheme.len());
        if url.split("://").next().is_some_and(|s| s.contains("{{")) || after_scheme[..authority_end].contains("{{") {
            return Err("http: the url's scheme and host are written in the runbook, never a parameter".to_owned());
        }
        if let Some(h) = args.get("headers")
            && let Some(r) = refs(h).into_iter().find(|r| free(r))
        {
            return Err(format!("http: {{{{{r}}}}} is free text: headers take names and secrets only"));
        }
    }
    Ok(())
}

enum Typed {
    Act(ops_act::Action),
    Exec(ExecArgs),
    Http(HttpArgs),
    Backup(DatabaseArgs),
    Restore(RestoreArgs),
    Renew(RenewArgs),
}

fn typed(name: &str, args: &serde_json::Value) -> Result<Typed> {
    let bad = |e: serde_json::Error| Error::invalid_input(e.to_string());
    Ok(match name {
        n if ACT.contains(&n) => {
            let mut obj = args.as_object().cloned().unwrap_or_default();
            obj.insert("action".to_owned(), json!(n));
            let a: ops_act::Action = serde_json::from_value(serde_json::Value::Object(obj)).map_err(bad)?;
            a.validate()?;
            Typed::Act(a)
        }
        "exec" => {
            let a: ExecArgs = serde_json::from_value(args.clone()).map_err(bad)?;
            if a.command.is_empty() || a.command.len() > 64 {
                return Err(Error::invalid_input("command is a program and its arguments (1 to 64 items)"));
            }
            Typed::Exec(a)
        }
        "http" => {
            let a: HttpArgs = serde_json::from_value(args.clone()).map_err(bad)?;
            if !METHODS.contains(&a.method.to_uppercase().as_str()) {
                return Err(Error::invalid_input(format!("method is one of {}", METHODS.join(", "))));
            }
            Typed::Http(a)
        }
        "backup" => Typed::Backup(serde_json::from_value(args.clone()).map_err(bad)?),
        "restore" => Typed::Restore(serde_json::from_value(args.clone()).map_err(bad)?),
        "tls-renew" => Typed::Renew(serde_json::from_value(args.clone()).map_err(bad)?),
        other => return Err(Error::invalid_input(format!("unknown action {other:?}"))),
    })
}

/// Calls `f` on every string in a JSON value.
pub(crate) fn visit_strings(v: &mut serde_json::Value, f: &mut dyn FnMut(&mut String)) {
    match v {
        serde_json::Value::String(s) => f(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| visit_strings(x, f)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| visit_strings(x, f)),
        _ => {}
    }
}

fn container_of(ctx: &Context, service: &str) -> String {
    // A configured database or cache name stands for its container.
    ctx.config
        .databases
        .get(service)
        .and_then(|d| d.container.clone())
        .or_else(|| ctx.config.caches.get(service).and_then(|c| c.container.clone()))
        .unwrap_or_else(|| service.to_owned())
}

/// The container an `exec` runs in: a configured database or cache name stands for its
/// container, a Compose service for its first running container, else the name itself.
async fn exec_target(ctx: &Context, service: &str) -> Result<String> {
    let name = container_of(ctx, service);
    let stack = ops_core::stack::Stack::read(ctx).await?;
    let found = stack.find(&name)?;
    Ok(found
        .iter()
        .find(|c| c.state == ops_core::ports::ContainerState::Running)
        .or(found.first())
        .map_or(name.clone(), |c| c.name.clone()))
}

/// Plans an action: reads the live state, changes nothing.
///
/// # Errors
/// `InvalidInput` for arguments the action does not take, and the action's own planning
/// errors (an unknown container, database or cache).
pub async fn plan(ctx: &Context, action: &Resolved) -> Result<(ActionPreview, Option<ops_act::ActionPlan>)> {
    let shown = typed(&action.name, &action.shown)?;
    match typed(&action.name, &action.args)? {
        Typed::Act(a) => {
            let p = ops_act::plan(ctx, &a).await?;
            let targets: Vec<String> = p.targets.iter().map(|t| t.id.clone()).collect();
            // The budget is of the action on the container it names (not on what it touches
            // first: the dependents of a restart-dependents).
            let key_target = match &a {
                ops_act::Action::Restart { service, .. }
                | ops_act::Action::RestartDependents { service }
                | ops_act::Action::Start { service }
                | ops_act::Action::Stop { service, .. }
                | ops_act::Action::Rollback { service, .. } => {
                    let stack = ops_core::stack::Stack::read(ctx).await?;
                    let names: Vec<String> = stack.find(service)?.iter().map(|c| c.name.clone()).collect();
                    format!("container:{}", names.join(","))
                }
                // Sessions and tables change from one run to the next; the database does not.
                ops_act::Action::KillIdle { database, .. }
                | ops_act::Action::CancelSlow { database, .. }
                | ops_act::Action::Vacuum { database, .. }
                | ops_act::Action::Terminate { database, .. } => {
                    format!("database:{}", ctx.database(database.as_deref())?.0)
                }
                ops_act::Action::RedisSetPolicy { cache, .. } => format!("cache:{}", ctx.cache(cache.as_deref())?.0),
                ops_act::Action::EnginePrune { .. } => "engine".to_owned(),
                ops_act::Action::RestartUnit { unit } => {
                    format!("unit:{}", ops_core::systemd::configured(ctx, unit)?.unit)
                }
                // One host's disks, whatever the items.
                ops_act::Action::DiskClean { .. } => "host".to_owned(),
                ops_act::Action::StartStack {} | ops_act::Action::StopStack {} => {
                    format!("stack:{}", ctx.config.project.compose_project.clone().unwrap_or_default())
                }
            };
            let database = match &a {
                ops_act::Action::KillIdle { database, .. }
                | ops_act::Action::CancelSlow { database, .. }
                | ops_act::Action::Vacuum { database, .. } => Some(ctx.database(database.as_deref())?.0.to_owned()),
                _ => None,
            };
            let preview = ActionPreview {
                summary: p.summary.clone(),
                targets,
                notes: p.notes.clone(),
                budget_key: format!("{}:{key_target}", a.name()),
                database,
            };
            Ok((preview, Some(p)))
        }
        Typed::Exec(e) => {
            let container = exec_target(ctx, &e.service).await?;
            let rt = ops_core::stack::runtime(ctx)?;
            let d = rt.inspect(&container).await?;
            let program = e.command.first().cloned().unwrap_or_default();
            Ok((
                ActionPreview {
                    summary: format!(
                        "run {program} ({} argument{}) in {} ({}), expecting exit {}",
                        e.command.len() - 1,
                        if e.command.len() == 2 { "" } else { "s" },
                        d.name,
                        format!("{:?}", d.state).to_lowercase(),
                        e.expect_exit
                    ),
                    targets: vec![format!("container:{}", d.name)],
                    notes: Vec::new(),
                    budget_key: format!("exec:container:{}:{program}", d.name),
                    database: None,
                },
                None,
            ))
        }
        Typed::Http(h) => {
            let Typed::Http(hs) = shown else { unreachable_kind()? };
            let url = ops_core::secret::redact_url(&hs.url);
            if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
                return Err(Error::invalid_input("http: url must be http:// or https://"));
            }
            Ok((
                ActionPreview {
                    summary: format!("{} {url}", h.method.to_uppercase()),
                    targets: vec![format!("{} {url}", h.method.to_uppercase())],
                    notes: h.headers.keys().map(|k| format!("header {k}")).collect(),
                    budget_key: format!("http:{} {url}", h.method.to_uppercase()),
                    database: None,
                },
                None,
            ))
        }
        Typed::Backup(b) => {
            let (name, _) = ctx.database(b.database.as_deref())?;
            Ok((
                ActionPreview {
                    summary: format!("back up database {name}"),
                    targets: vec![format!("database:{name}")],
                    notes: Vec::new(),
                    budget_key: format!("backup:database:{name}"),
                    database: None,
                },
                None,
            ))
        }
        Typed::Restore(r) => {
            let opts = ops_backup::RestoreOptions {
                database: r.database.clone(),
                source: r.source.clone(),
                ..Default::default()
            };
            let p = ops_backup::restore::plan(ctx, &opts).await.map_err(|e| Error::new(e.kind(), e.to_string()))?;
            let mut notes = p.steps.clone();
            notes.insert(0, format!("source: {}", p.source.requested));
            Ok((
                ActionPreview {
                    summary: format!("restore database {} from {}", p.database_config_name, p.source.requested),
                    targets: std::iter::once(format!("database:{}", p.database_config_name))
                        .chain(p.dependents.iter().map(|d| format!("container:{}", d.name)))
                        .collect(),
                    notes,
                    budget_key: format!("restore:database:{}", p.database_config_name),
                    database: None,
                },
                None,
            ))
        }
        Typed::Renew(r) => {
            let opts = ops_probes::tls::renew_options(&ctx.config, r.force)?;
            let targets = opts.commands.iter().map(|c| format!("container:{}", c.container)).collect::<Vec<String>>();
            Ok((
                ActionPreview {
                    summary: format!(
                        "renew certificates{} with {} command{}",
                        if r.force { " (forced)" } else { " that are due" },
                        opts.commands.len(),
                        if opts.commands.len() == 1 { "" } else { "s" }
                    ),
                    targets,
                    notes: Vec::new(),
                    budget_key: "tls-renew:certificates".to_owned(),
                    database: None,
                },
                None,
            ))
        }
    }
}

fn unreachable_kind<T>() -> Result<T> {
    Err(Error::internal("the shown arguments are of another action"))
}

/// Applies an action from its plan: re-checked at the moment of acting by the action itself,
/// audited per change.
///
/// # Errors
/// `Unavailable` when the audit log cannot be written; a failed target is a result.
pub async fn apply(
    ctx: &Context,
    action: &Resolved,
    act_plan: Option<&ops_act::ActionPlan>,
    audit: &Audit,
    timeout: Duration,
    secrets: &[String],
) -> Result<ActionResult> {
    let redact = |s: &str| crate::run::redact(s, secrets);
    match typed(&action.name, &action.args)? {
        Typed::Act(a) => {
            let fresh;
            let p = match act_plan {
                Some(p) => p,
                None => {
                    fresh = ops_act::plan(ctx, &a).await?;
                    &fresh
                }
            };
            let report = ops_act::apply(ctx, p, audit.actor()).await?;
            let outcomes: Vec<String> = report.outcomes.iter().map(|o| format!("{}: {}", o.target, o.result)).collect();
            let ok = report.ok();
            let summary = if p.targets.is_empty() {
                p.summary.clone()
            } else if ok {
                format!("done: {}", p.summary)
            } else {
                format!(
                    "failed: {}",
                    report.outcomes.iter().find(|o| !o.ok).map(|o| o.result.clone()).unwrap_or_default()
                )
            };
            Ok(ActionResult { ok, summary, outcomes, exit_code: None, http_status: None, evidence: Vec::new() })
        }
        Typed::Exec(e) => {
            let rt = ops_core::stack::runtime(ctx)?;
            let container = exec_target(ctx, &e.service).await?;
            let program = e.command.first().cloned().unwrap_or_default();
            let target = format!("container:{container}");
            // The intent first: no record, no change.
            audit.record("exec", &target, json!({ "program": program }), serde_json::Value::Null, "started")?;
            let spec =
                ExecSpec { cmd: e.command.clone(), user: e.user.clone(), timeout: Some(timeout), ..Default::default() };
            let out = rt.exec(&container, &spec).await;
            let (ok, summary, code, evidence) = match out {
                Ok(o) => {
                    let ok = o.exit_code == e.expect_exit;
                    let lines: Vec<String> = o
                        .stdout
                        .lines()
                        .chain(o.stderr.lines())
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| redact(&ops_probes::evidence_line(l)))
                        .collect();
                    let tail = lines[lines.len().saturating_sub(10)..].to_vec();
                    let expected = if ok { String::new() } else { format!(", expected {}", e.expect_exit) };
                    let summary = format!("{program} in {container} exited {}{expected}", o.exit_code);
                    (ok, summary, Some(o.exit_code), tail)
                }
                Err(err) => (false, redact(&format!("{program} in {container}: {err}")), None, Vec::new()),
            };
            audit.record(
                "exec",
                &target,
                json!({ "program": program }),
                json!({ "exit": code }),
                if ok { "ok" } else { &summary },
            )?;
            Ok(one(&target, ok, summary, code, None, evidence))
        }
        Typed::Http(h) => {
            let client = ctx.http.as_ref().ok_or_else(|| Error::internal("no http client wired"))?;
            let Typed::Http(hs) = typed(&action.name, &action.shown)? else { return unreachable_kind() };
            let shown_url = ops_core::secret::redact_url(&hs.url);
            let method = h.method.to_uppercase();
            let target = format!("{method} {shown_url}");
            audit.record("http", &target, serde_json::Value::Null, serde_json::Value::Null, "started")?;
            let request = HttpRequest {
                method: method.clone(),
                url: h.url.clone(),
                headers: h.headers.iter().map(|(k, v)| (k.clone(), Secret::new(v.clone()))).collect(),
                body: h.body.clone(),
                timeout,
            };
            let (ok, summary, status, evidence) = match client.send(&request).await {
                Ok(r) => {
                    let ok = if h.expect_status.is_empty() {
                        (200..300).contains(&r.status)
                    } else {
                        h.expect_status.contains(&r.status)
                    };
                    let snippet = redact(&ops_probes::evidence_line(r.body_snippet.trim()));
                    (
                        ok,
                        format!("{target} answered {}", r.status),
                        Some(r.status),
                        if snippet.is_empty() { Vec::new() } else { vec![snippet] },
                    )
                }
                Err(e) => (false, redact(&format!("{target}: {e}")), None, Vec::new()),
            };
            audit.record(
                "http",
                &target,
                serde_json::Value::Null,
                json!({ "status": status }),
                if ok { "ok" } else { &summary },
            )?;
            Ok(one(&target, ok, summary, None, status, evidence))
        }
        Typed::Backup(b) => {
            let opts = ops_backup::BackupOptions { database: b.database.clone(), ..Default::default() };
            match ops_backup::backup(ctx, &opts, &ops_backup::NoProgress).await {
                Ok(r) => Ok(ActionResult {
                    ok: true,
                    summary: format!(
                        "backup {} of {} ({})",
                        r.id,
                        r.manifest.database_config_name,
                        ops_core::units::human_bytes(r.destinations.first().map_or(0, |d| d.size_bytes))
                    ),
                    outcomes: vec![format!("database:{}: ok", r.manifest.database_config_name)],
                    exit_code: None,
                    http_status: None,
                    evidence: Vec::new(),
                }),
                Err(e) => Ok(failed(format!("backup failed: {e}"))),
            }
        }
        Typed::Restore(r) => {
            let opts = ops_backup::RestoreOptions {
                database: r.database.clone(),
                source: r.source.clone(),
                actor: Some(audit.actor().to_owned()),
                ..Default::default()
            };
            let p = match ops_backup::restore::plan(ctx, &opts).await {
                Ok(p) => p,
                Err(e) => return Ok(failed(format!("restore could not be planned: {e}"))),
            };
            match ops_backup::restore(ctx, &p, &opts, &ops_backup::NoProgress).await {
                Ok(rep) => Ok(ActionResult {
                    ok: true,
                    summary: format!("restored {} from {}", rep.plan.database_config_name, rep.plan.source.requested),
                    outcomes: vec![format!("database:{}: ok", rep.plan.database_config_name)],
                    exit_code: None,
                    http_status: None,
                    evidence: Vec::new(),
                }),
                Err(e) => Ok(failed(format!("restore failed: {e}"))),
            }
        }
        Typed::Renew(r) => {
            let opts = ops_probes::tls::renew_options(&ctx.config, r.force)?;
            let rt = ops_core::stack::runtime(ctx)?;
            match ops_tls::renew(rt, &opts, audit).await {
                Ok(rep) => Ok(ActionResult {
                    ok: rep.status != ops_core::Status::Critical && rep.findings.is_empty(),
                    summary: format!(
                        "{} renewal command{} run; certificates {}",
                        rep.executed.len(),
                        if rep.executed.len() == 1 { "" } else { "s" },
                        rep.status
                    ),
                    outcomes: Vec::new(),
                    exit_code: None,
                    http_status: None,
                    evidence: Vec::new(),
                }),
                Err(e) => Ok(failed(format!("renewal failed: {e}"))),
            }
        }
    }
}

fn failed(summary: String) -> ActionResult {
    ActionResult { ok: false, summary, outcomes: Vec::new(), exit_code: None, http_status: None, evidence: Vec::new() }
}
