//! The runbook file: Markdown a person reads during an incident, whose fenced `runbook` block
//! says what the runbook is and whose fenced `step` blocks (TOML) are the steps, in order.
//!
//! Markdown because the seeds' runbooks are Markdown already and a reviewer reads a pull
//! request of one as prose; TOML in the blocks because `ops.toml` is TOML, it has no
//! indentation traps at 3 a.m., and its errors point at a line. The prose between blocks is
//! kept and shown; the engine reads only the blocks.
//!
//! Everything is checked when the file is loaded ([`parse`]): the blocks' keys, each step's
//! kind and arguments, its conditions and what they refer to, the check names, the actions
//! and their arguments, and the parameters used in templates. An error names the file, the
//! line and the step; a runbook never starts half-valid.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use ops_core::Severity;
use serde::{Deserialize, Serialize};

use crate::condition::{Condition, STEP_FIELDS};

/// A loaded, checked runbook.
#[derive(Debug, Clone)]
pub struct Runbook {
    /// Unique name (`database-down`).
    pub name: String,
    /// One line.
    pub title: String,
    /// Triage runbook names and Alertmanager alert names it handles.
    pub applies_to: Vec<String>,
    /// Whether `opsctl triage --fix --apply` may run it without a confirmation.
    pub auto: bool,
    /// The severity its incidents have when nothing else says.
    pub severity: Option<Severity>,
    /// Parameters by name.
    pub params: BTreeMap<String, Param>,
    /// The steps, in file order.
    pub steps: Vec<Step>,
    /// `built-in` or the file's path.
    pub source: String,
    /// The whole file, prose and blocks.
    pub text: String,
}

/// What a parameter holds, which says where its value comes from when a triage incident or
/// an alert starts the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ParamKind {
    /// A `[databases]` name (from a `postgres:NAME` check); empty: the only one, or `main`.
    Database,
    /// A `[caches]` name (from `redis:NAME` or `queue:NAME`).
    Cache,
    /// A container or Compose service (from `container:NAME` or `logs:NAME`).
    Service,
    /// A check name (the incident's check).
    Check,
    /// A `[[systemd]]` entry's name (from `systemd:NAME`).
    Unit,
    /// Free text.
    Text,
    /// A number.
    Number,
}

/// One parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Param {
    /// What it holds.
    #[serde(rename = "type")]
    pub kind: ParamKind,
    /// What a person reads in `runbook show`.
    #[serde(default)]
    pub description: String,
    /// Used when the caller and the incident give none; without one the parameter is
    /// required (databases and caches default to "the only one, or `main`").
    #[serde(default)]
    pub default: Option<String>,
    /// For a `check` parameter: the kind of check it names (`status-page`, `http`); the
    /// incident fills it only with a check of that kind, and a value of another kind is
    /// refused.
    #[serde(default)]
    pub of: Option<String>,
}

/// Who must agree before an action step acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = StepApproval))]
#[serde(rename_all = "kebab-case")]
pub enum Approval {
    /// Nobody beyond whoever started an applying run.
    #[default]
    None,
    /// The change-management table's "approval required": `--yes` on the command line, an
    /// admin key over the API.
    Yes,
    /// A person approves at that moment: the command line asks, a server run waits for
    /// `POST /api/v1/runs/{id}/approve`.
    Approve,
}

/// The guards of an action step, evaluated when planning and again at the moment of acting.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Refuse when this holds (RB-007: `upstream.status == "critical"`); the check steps it
    /// reads are run again at the moment of acting.
    pub unless: Option<(String, Condition)>,
    /// At most this many uses of this action on this target per window (the circuit
    /// breaker); the default comes from `[runbooks]`.
    pub budget: Option<u32>,
    /// The budget's window.
    pub budget_window: Option<Duration>,
    /// Time that must pass after the last use.
    pub cooldown: Duration,
    /// Who must agree.
    pub approval: Approval,
    /// Take the database's lock that backups, restores and drills share.
    pub lock: bool,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// Run a check and keep its report for later conditions.
    Check {
        /// `postgres:{{database}}`, `http:api`, `logs:{{service}}`, `host`.
        check: String,
        /// For `logs:`: the pattern to count (default `probes.logs.pattern`).
        pattern: Option<String>,
        /// For `logs:`: how far back, minutes.
        since_mins: Option<u64>,
    },
    /// Change something: one of the typed actions.
    Action {
        /// The action's name (`restart`).
        name: String,
        /// Its arguments, templated strings unexpanded.
        args: toml::Table,
    },
    /// Wait until a check passes.
    Wait {
        /// The check.
        check: String,
        /// Between two tries.
        interval: Duration,
    },
    /// An instruction for a person.
    Manual {
        /// What to do.
        instruction: String,
    },
    /// Checks that must pass; when one does not, the run fails.
    Verify {
        /// The checks (`http:*` is every `[[http]]` check).
        checks: Vec<String>,
        /// How long a failing check may take to pass before the run fails: a service just
        /// restarted may refuse the first connection.
        settle: Duration,
    },
    /// Tell people now, with the run's evidence, and hand over.
    Escalate {
        /// Why.
        message: String,
    },
}

impl StepKind {
    /// `check`, `action`, `wait`, `manual`, `verify`, `escalate`.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Check { .. } => "check",
            Self::Action { .. } => "action",
            Self::Wait { .. } => "wait",
            Self::Manual { .. } => "manual",
            Self::Verify { .. } => "verify",
            Self::Escalate { .. } => "escalate",
        }
    }
}

/// One step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Its id, which conditions refer to (`step-3` when the file gives none).
    pub id: String,
    /// The line of its block in the file.
    pub line: usize,
    /// What it does, in a few words (defaults from the kind).
    pub title: Option<String>,
    /// Runs only when this holds.
    pub when: Option<(String, Condition)>,
    /// Runs only after the run failed (a failed step, a refused guard, a failed verify).
    pub on_failure: bool,
    /// How long it may take (checks, waits, execs, requests).
    pub timeout: Option<Duration>,
    /// What it does.
    pub kind: StepKind,
    /// Its guards (action steps).
    pub guard: Guard,
}

/// Why a file was refused: file, line and step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file (`built-in:database-down.md` for a built-in).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// `step 3 (restart)` when it is about a step.
    pub step: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if let Some(s) = &self.step {
            write!(f, "{s}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for LoadError {}

impl From<LoadError> for ops_core::Error {
    fn from(e: LoadError) -> Self {
        Self::invalid_input(e.to_string())
    }
}

/// Keys every step may have, whatever its kind.
const COMMON_KEYS: [&str; 5] = ["id", "title", "when", "on-failure", "timeout-secs"];
/// Keys of the guards (action steps only).
const GUARD_KEYS: [&str; 6] = ["unless", "budget", "budget-window-mins", "cooldown-secs", "approval", "lock"];
/// A `verify` step's default settle window, seconds.
pub const VERIFY_SETTLE_SECS: u64 = 30;

/// The keys that say what kind a step is.
const KIND_KEYS: [&str; 6] = ["check", "action", "wait", "manual", "verify", "escalate"];

/// Longest runbook file: runbooks are read by people.
pub const MAX_FILE_BYTES: usize = 256 * 1024;
/// Most steps in one runbook.
pub const MAX_STEPS: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Header {
    pub(crate) name: String,
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) applies_to: Vec<String>,
    #[serde(default)]
    auto: bool,
    #[serde(default)]
    severity: Option<Severity>,
    #[serde(default)]
    pub(crate) params: BTreeMap<String, Param>,
}

struct Block {
    info: String,
    /// Line of the opening fence.
    line: usize,
    text: String,
}

/// The fenced blocks of a Markdown text, with the line each opens on. Only backtick fences
/// at the start of a line count, as CommonMark has them; an unclosed fence is an error.
fn blocks(text: &str) -> Result<Vec<Block>, (usize, String)> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize, usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let fence_len = trimmed.chars().take_while(|c| *c == '`').count();
        match &mut open {
            None if fence_len >= 3 => {
                open = Some((trimmed[fence_len..].trim().to_owned(), i + 1, fence_len, String::new()));
            }
            None => {}
            Some((info, at, len, body)) => {
                if fence_len >= *len && trimmed[fence_len..].trim().is_empty() {
                    out.push(Block { info: std::mem::take(info), line: *at, text: std::mem::take(body) });
                    open = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    if let Some((_, at, _, _)) = open {
        return Err((at, "this fenced block is not closed".to_owned()));
    }
    Ok(out)
}

/// The line, within a block's text, of a TOML error.
fn toml_line(e: &toml::de::Error, text: &str) -> usize {
    e.span().map_or(0, |s| text[..s.start.min(text.len())].matches('\n').count())
}

/// The first line of a TOML error's message (the rest quotes the source, which may hold a
/// secret someone pasted).
fn toml_message(e: &toml::de::Error) -> String {
    e.message().lines().next().unwrap_or("invalid TOML").to_owned()
}

/// Parses and checks a runbook file. `file` names it in errors.
///
/// # Errors
/// The first problem found, with its file, line and step.
pub fn parse(file: &str, text: &str) -> Result<Runbook, LoadError> {
    let err =
        |line: usize, step: Option<String>, message: String| LoadError { file: file.to_owned(), line, step, message };
    if text.len() > MAX_FILE_BYTES {
        return Err(err(1, None, format!("a runbook file is at most {} KiB", MAX_FILE_BYTES / 1024)));
    }
    let blocks = blocks(text).map_err(|(line, m)| err(line, None, m))?;
    let mut header: Option<(Header, usize)> = None;
    let mut raw_steps: Vec<(toml::Table, usize, String)> = Vec::new();
    for b in &blocks {
        match b.info.as_str() {
            "runbook" => {
                if header.is_some() {
                    return Err(err(b.line, None, "a second `runbook` block: a file holds one runbook".to_owned()));
                }
                let h: Header = toml::from_str(&b.text)
                    .map_err(|e| err(b.line + 1 + toml_line(&e, &b.text), None, toml_message(&e)))?;
                header = Some((h, b.line));
            }
            "step" => {
                let table: toml::Table = toml::from_str(&b.text)
                    .map_err(|e| err(b.line + 1 + toml_line(&e, &b.text), None, toml_message(&e)))?;
                raw_steps.push((table, b.line, b.text.clone()));
            }
            _ => {}
        }
    }
    let Some((h, header_line)) = header else {
        return Err(err(
            1,
            None,
            "no ```runbook block: a runbook file starts with one (name, title, applies-to)".to_owned(),
        ));
    };
    if !valid_name(&h.name) {
        return Err(err(
            header_line,
            None,
            "name: use lowercase letters, digits and - (1 to 64 characters)".to_owned(),
        ));
    }
    if h.title.trim().is_empty() {
        return Err(err(header_line, None, "title: a runbook needs a title".to_owned()));
    }
    for p in h.params.keys() {
        if !valid_name(p) || ["params", "incident", "secret"].contains(&p.as_str()) {
            return Err(err(
                header_line,
                None,
                format!("params.{p}: use lowercase letters, digits and -, not a reserved name"),
            ));
        }
    }
    if raw_steps.is_empty() {
        return Err(err(header_line, None, "no ```step block: a runbook needs at least one step".to_owned()));
    }
    if raw_steps.len() > MAX_STEPS {
        return Err(err(header_line, None, format!("at most {MAX_STEPS} steps")));
    }
    let mut steps: Vec<Step> = Vec::new();
    for (i, (table, line, _)) in raw_steps.into_iter().enumerate() {
        let label = |id: &str| format!("step {} ({id})", i + 1);
        let id = match table.get("id") {
            Some(toml::Value::String(s)) => s.clone(),
            Some(_) => return Err(err(line, Some(format!("step {}", i + 1)), "id must be a string".to_owned())),
            None => format!("step-{}", i + 1),
        };
        let step = parse_step(&h, &steps, &id, table, line).map_err(|m| err(line, Some(label(&id)), m))?;
        steps.push(step);
    }
    Ok(Runbook {
        name: h.name,
        title: h.title,
        applies_to: h.applies_to,
        auto: h.auto,
        severity: h.severity,
        params: h.params,
        steps,
        source: file.to_owned(),
        text: text.to_owned(),
    })
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn get_str(t: &toml::Table, key: &str) -> Result<Option<String>, String> {
    match t.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

fn get_u64(t: &toml::Table, key: &str, max: u64) -> Result<Option<u64>, String> {
    match t.get(key) {
        None => Ok(None),
        Some(toml::Value::Integer(n)) if *n >= 0 && n.cast_unsigned() <= max => Ok(Some(n.cast_unsigned())),
        Some(_) => Err(format!("{key} must be a whole number from 0 to {max}")),
    }
}

fn get_bool(t: &toml::Table, key: &str) -> Result<bool, String> {
    match t.get(key) {
        None => Ok(false),
        Some(toml::Value::Boolean(b)) => Ok(*b),
        Some(_) => Err(format!("{key} must be true or false")),
    }
}

/// Longest timeout or window a step may set: a week.
const MAX_SECS: u64 = 7 * 24 * 3600;

fn parse_step(h: &Header, earlier: &[Step], id: &str, mut t: toml::Table, line: usize) -> Result<Step, String> {
    if !valid_name(id) || ["params", "incident", "secret"].contains(&id) {
        return Err("id: use lowercase letters, digits, - and _ (not params, incident or secret)".to_owned());
    }
    if earlier.iter().any(|s| s.id == id) {
        return Err(format!("id {id:?} is used by an earlier step"));
    }
    let kinds: Vec<&'static str> = KIND_KEYS.iter().copied().filter(|k| t.contains_key(*k)).collect();
    let kind_key: &'static str = match kinds.as_slice() {
        [one] => one,
        [] => return Err(format!("a step needs one of {}", KIND_KEYS.join(", "))),
        many => return Err(format!("a step has one kind, this one has {}", many.join(" and "))),
    };
    let title = get_str(&t, "title")?;
    let on_failure = get_bool(&t, "on-failure")?;
    let timeout = get_u64(&t, "timeout-secs", MAX_SECS)?.map(Duration::from_secs);
    let when = get_str(&t, "when")?
        .map(|w| {
            let c = Condition::parse(&w).map_err(|e| format!("when: {e}"))?;
            check_refs(&c, h, earlier).map_err(|e| format!("when: {e}"))?;
            Ok::<_, String>((w, c))
        })
        .transpose()?;
    let mut allowed: BTreeSet<String> = COMMON_KEYS.iter().map(|k| (*k).to_owned()).collect();
    allowed.insert(kind_key.to_owned());
    let kind = match kind_key {
        "check" => {
            let check = get_str(&t, "check")?.ok_or("check must be a string")?;
            check_check_name(&check, h)?;
            allowed.extend(["pattern".to_owned(), "since-mins".to_owned()]);
            let pattern = get_str(&t, "pattern")?;
            if let Some(p) = &pattern {
                if !check.starts_with("logs:") {
                    return Err("pattern is for logs: checks".to_owned());
                }
                regex::RegexBuilder::new(p).size_limit(1 << 20).build().map_err(|e| format!("pattern: {e}"))?;
            }
            let since_mins = get_u64(&t, "since-mins", MAX_SECS / 60)?;
            StepKind::Check { check, pattern, since_mins }
        }
        "wait" => {
            let check = get_str(&t, "wait")?.ok_or("wait must be a check name")?;
            check_check_name(&check, h)?;
            allowed.insert("interval-secs".to_owned());
            let interval = Duration::from_secs(get_u64(&t, "interval-secs", 3600)?.unwrap_or(5).max(1));
            StepKind::Wait { check, interval }
        }
        "manual" => StepKind::Manual { instruction: get_str(&t, "manual")?.ok_or("manual must be a text")? },
        "escalate" => StepKind::Escalate { message: get_str(&t, "escalate")?.ok_or("escalate must be a text")? },
        "verify" => {
            let checks = match t.get("verify") {
                Some(toml::Value::Array(a)) if !a.is_empty() => a
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned).ok_or("verify lists check names"))
                    .collect::<Result<Vec<_>, _>>()?,
                Some(toml::Value::String(s)) => vec![s.clone()],
                _ => return Err("verify must be a check name or a list of them".to_owned()),
            };
            for c in &checks {
                check_check_name(c, h)?;
            }
            allowed.insert("settle-secs".to_owned());
            let settle = Duration::from_secs(get_u64(&t, "settle-secs", 3600)?.unwrap_or(VERIFY_SETTLE_SECS));
            StepKind::Verify { checks, settle }
        }
        _ => {
            let name = get_str(&t, "action")?.ok_or("action must be a string")?;
            if !crate::actions::is_action(&name) {
                return Err(format!("unknown action {name:?}: one of {}", crate::actions::names().join(", ")));
            }
            allowed.extend(GUARD_KEYS.iter().map(|k| (*k).to_owned()));
            let mut args = t.clone();
            for k in COMMON_KEYS.iter().chain(GUARD_KEYS.iter()).chain(["action"].iter()) {
                args.remove(*k);
            }
            for k in args.keys() {
                allowed.insert(k.clone());
            }
            crate::actions::check_args(&name, &args, h)?;
            StepKind::Action { name, args }
        }
    };
    let mut guard = Guard::default();
    if matches!(kind, StepKind::Action { .. }) {
        guard.unless = get_str(&t, "unless")?
            .map(|w| {
                let c = Condition::parse(&w).map_err(|e| format!("unless: {e}"))?;
                check_refs(&c, h, earlier).map_err(|e| format!("unless: {e}"))?;
                Ok::<_, String>((w, c))
            })
            .transpose()?;
        guard.budget = get_u64(&t, "budget", 1000)?.map(|b| u32::try_from(b).unwrap_or(1000));
        if guard.budget == Some(0) {
            return Err("budget must be at least 1 (remove the step to never act)".to_owned());
        }
        guard.budget_window =
            get_u64(&t, "budget-window-mins", MAX_SECS / 60)?.map(|m| Duration::from_secs(m.max(1) * 60));
        guard.cooldown = Duration::from_secs(get_u64(&t, "cooldown-secs", MAX_SECS)?.unwrap_or(0));
        guard.approval = match get_str(&t, "approval")?.as_deref() {
            None | Some("none") => Approval::None,
            Some("yes") => Approval::Yes,
            Some("approve") => Approval::Approve,
            Some(_) => {
                return Err("approval must be none, yes (--yes or an admin key) or approve (a person, then)".to_owned());
            }
        };
        guard.lock = get_bool(&t, "lock")?;
        if guard.lock
            && let StepKind::Action { name, .. } = &kind
            && !["kill-idle", "cancel-slow", "vacuum"].contains(&name.as_str())
        {
            return Err(format!(
                "lock is for kill-idle, cancel-slow and vacuum (a {name} takes its own locks, or names no database)"
            ));
        }
    }
    t.retain(|k, _| !allowed.contains(k));
    if let Some(k) = t.keys().next() {
        let hint = if GUARD_KEYS.contains(&k.as_str()) { " (guards are for action steps)" } else { "" };
        return Err(format!("unknown key {k:?} for a {kind_key} step{hint}"));
    }
    Ok(Step { id: id.to_owned(), line, title, when, on_failure, timeout, kind, guard })
}

/// The kind before the first `:` is literal and known; templates name parameters.
fn check_check_name(check: &str, h: &Header) -> Result<(), String> {
    check_templates(check, h)?;
    if crate::template::references(check)?.iter().any(|r| r.starts_with("secret.")) {
        return Err("a check name is shown everywhere: it never holds a secret".to_owned());
    }
    let kind = check.split(':').next().unwrap_or_default();
    // A check parameter (`{{check}}`) is checked when it is given.
    if kind.starts_with("{{") {
        return Ok(());
    }
    if !ops_probes::named::KINDS.contains(&kind) {
        return Err(format!("unknown check {check:?}: the kind is one of {}", ops_probes::named::KINDS.join(", ")));
    }
    let rest = check.split_once(':').map_or("", |(_, r)| r);
    if rest == "*" && kind != "http" && kind != "tcp" && kind != "tls" {
        return Err(format!("{kind}:* is not a check: only http:*, tcp:* and tls:* stand for every one"));
    }
    Ok(())
}

/// Every `{{ name }}` / `{{ name.container }}` / `{{ secret.NAME }}` names a parameter (or a
/// secret) and is closed.
pub(crate) fn check_templates(text: &str, h: &Header) -> Result<(), String> {
    for r in crate::template::references(text)? {
        let (head, field) = r.split_once('.').unwrap_or((r.as_str(), ""));
        if head == "secret" {
            if field.is_empty() {
                return Err("{{secret.NAME}} names a key of [runbooks.secrets]".to_owned());
            }
            continue;
        }
        let Some(p) = h.params.get(head) else {
            return Err(format!("{{{{{r}}}}} is not a parameter of this runbook (params.{head})"));
        };
        let container_of = field == "container" && matches!(p.kind, ParamKind::Database | ParamKind::Cache);
        if !field.is_empty() && !container_of {
            return Err(format!("{{{{{r}}}}}: only a database or cache parameter has .container"));
        }
    }
    Ok(())
}

fn check_refs(c: &Condition, h: &Header, earlier: &[Step]) -> Result<(), String> {
    for path in c.references() {
        let head = path[0].as_str();
        match head {
            "params" => {
                if path.len() != 2 || !h.params.contains_key(&path[1]) {
                    return Err(format!("{} is not a parameter of this runbook", path.join(".")));
                }
            }
            "incident" => {
                if path.len() != 2 || !["runbook", "check", "severity"].contains(&path[1].as_str()) {
                    return Err(format!("{}: incident has runbook, check and severity", path.join(".")));
                }
            }
            step => {
                if !earlier.iter().any(|s| s.id == step) {
                    return Err(format!(
                        "{} refers to {step:?}, which is not an earlier step (steps refer to steps above them)",
                        path.join(".")
                    ));
                }
                let field = path[1].as_str();
                let ok = if field == "obs" { path.len() == 3 } else { path.len() == 2 && STEP_FIELDS.contains(&field) };
                if !ok {
                    return Err(format!("{}: a step has {} and obs.NAME", path.join("."), STEP_FIELDS.join(", ")));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "# T\n\n```runbook\nname = \"t\"\ntitle = \"T\"\n[params.service]\ntype = \"service\"\n```\n";

    fn err(steps: &str) -> LoadError {
        parse("rb.md", &format!("{HEAD}{steps}")).unwrap_err()
    }

    #[test]
    fn every_built_in_loads() {
        let c = crate::Catalog::built_in().unwrap();
        assert_eq!(c.iter().count(), crate::catalog::BUILT_IN.len());
        for rb in c.iter() {
            assert!(!rb.steps.is_empty(), "{}", rb.name);
        }
        assert_eq!(c.for_incident("PostgresDown").unwrap().name, "database-down");
    }

    #[test]
    fn errors_name_file_line_and_step() {
        let e = err("\n```step\ncheck = \"host\"\n```\n\n```step\nid = \"r\"\naction = \"reboot\"\n```\n");
        assert_eq!((e.file.as_str(), e.line), ("rb.md", 14));
        assert_eq!(e.step.as_deref(), Some("step 2 (r)"));
        assert!(e.message.contains("unknown action \"reboot\""), "{e}");
        assert!(e.to_string().starts_with("rb.md:14: step 2 (r): unknown action"), "{e}");

        let e = err("```step\ncheck = \"nope:x\"\n```\n");
        assert!(e.message.contains("unknown check"), "{e}");
        let e = err("```step\nwhen = \"later.ok\"\ncheck = \"host\"\n```\n");
        assert!(e.message.contains("not an earlier step"), "{e}");
        let e = err("```step\naction = \"restart\"\nservice = \"{{ nope }}\"\n```\n");
        assert!(e.message.contains("not a parameter"), "{e}");
        let e = err("```step\naction = \"restart\"\nservice = \"x\"\nforce = true\n```\n");
        assert!(e.message.contains("restart: unknown field `force`"), "{e}");
        let e = err("```step\ncheck = \"host\"\nbudget = 2\n```\n");
        assert!(e.message.contains("guards are for action steps"), "{e}");
        let e = err("```step\ncheck = \"host\"\nmanual = \"x\"\n```\n");
        assert!(e.message.contains("one kind"), "{e}");
        let e = err("```step\nexec = [\"sh\", \"-c\", \"rm -rf /\"]\n```\n");
        assert!(e.message.contains("needs one of"), "{e}");
        let e = err("```step\naction = \"exec\"\nservice = \"x\"\ncommand = \"nginx -t\"\n```\n");
        assert!(e.message.contains("exec:"), "a shell string is refused: {e}");
        // A TOML error points at its line, and never quotes the file.
        let e = err("```step\ncheck = \"host\"\nthis is not toml s3cret\n```\n");
        assert_eq!(e.line, 11);
        assert!(!e.message.contains("s3cret"), "{e}");
        let e = parse("x.md", "```step\ncheck = \"host\"\n").unwrap_err();
        assert!(e.message.contains("not closed"), "{e}");
        // What a caller gives never chooses a program's words or a request's host.
        let text_param = "# T\n\n```runbook\nname = \"t\"\ntitle = \"T\"\n[params.note]\ntype = \"text\"\n```\n";
        let e = parse(
            "rb.md",
            &format!("{text_param}```step\naction = \"exec\"\nservice = \"api\"\ncommand = [\"sh\", \"-c\", \"{{{{note}}}}\"]\n```\n"),
        )
        .unwrap_err();
        assert!(e.message.contains("never becomes a program's argument"), "{e}");
        let e =
            parse("rb.md", &format!("{text_param}```step\naction = \"http\"\nurl = \"http://{{{{note}}}}/x\"\n```\n"))
                .unwrap_err();
        assert!(e.message.contains("scheme and host"), "{e}");
        let e = err("```step\naction = \"restart\"\nservice = \"x\"\nlock = true\n```\n");
        assert!(e.message.contains("lock is for"), "{e}");
        let e = err("```step\ncheck = \"http:{{secret.key}}\"\n```\n");
        assert!(e.message.contains("never holds a secret"), "{e}");
        let e = parse("x.md", "```step\ncheck = \"host\"\n```\n").unwrap_err();
        assert!(e.message.contains("no ```runbook block"), "{e}");
    }

    #[test]
    fn steps_keep_their_prose_and_order() {
        let rb = crate::Catalog::built_in().unwrap().get("database-down").unwrap().clone();
        let ids: Vec<&str> = rb.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids[..4], ["db", "disk", "prune", "restart"]);
        assert!(rb.text.contains("a full disk is a common cause"));
        assert!(rb.steps.iter().any(|s| s.on_failure && matches!(s.kind, StepKind::Escalate { .. })));
    }
}
