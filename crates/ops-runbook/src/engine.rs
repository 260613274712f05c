//! The engine: a runbook's steps in order, check → guard → act → verify → escalate.
//!
//! [`plan`] reads the live stack (checks run, actions are planned, guards evaluated), changes
//! nothing, and shows the branch that would be taken. [`run`] acts: each action step's guards
//! are evaluated again at the moment of acting (the checks an `unless` reads are run again, the
//! budget is taken atomically in the state store), then the action re-checks its own targets
//! and audits each change. When a step fails or a guard refuses, the main steps stop, the
//! `on-failure` steps run, and the webhooks are told with the run's evidence.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use ops_core::audit::Audit;
use ops_core::ports::{BudgetRequest, Notification, NotificationLevel, StateStore};
use ops_core::{Context, Error, Result, Severity, Status};
use ops_probes::ProbeReport;
use ops_probes::named::{NamedOptions, probe_named};
use serde::{Deserialize, Serialize};

use crate::actions::{self, Resolved};
use crate::condition::{Condition, Scope, Value};
use crate::format::{Approval, ParamKind, Runbook, Step, StepKind};
use crate::run::{
    CheckResult, Escalation, GuardVerdict, IncidentRef, Mode, Run, RunStatus, StepOutcome, StepRecord, new_id, redact,
};

/// What the caller gives a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunOptions {
    /// Parameter values (`database = "main"`); the rest come from the incident or defaults.
    pub params: BTreeMap<String, String>,
    /// The incident or alert that started it, whose check fills the parameters.
    pub incident: Option<IncidentRef>,
    /// Steps with `approval = "yes"` may act (`--yes`; an admin key over the API). Never
    /// deserialized: the caller that authenticated the person sets it.
    #[serde(skip)]
    pub yes: bool,
    /// Who runs it. Never deserialized, as `yes`.
    #[serde(skip)]
    pub actor: String,
    /// The run's id, when the caller must know it before the run starts (a server answers
    /// with it at once); a new one otherwise. Never deserialized.
    #[serde(skip)]
    pub run_id: Option<String>,
}

/// A person's answer at a manual step or an `approval = "approve"` action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go on; who said so.
    Approved(String),
    /// Stop; why.
    Declined(String),
}

/// Asks a person.
#[async_trait]
pub trait Approver: Send + Sync {
    /// Asks for `step` of `run` (saved as waiting before this is called).
    ///
    /// # Errors
    /// When asking itself fails (the store cannot be read); a "no" is a [`Decision`].
    async fn decide(&self, run: &Run, step: &StepRecord, prompt: &str) -> Result<Decision>;
}

/// Declines every request: an unattended run never takes a step meant for a person.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unattended;

#[async_trait]
impl Approver for Unattended {
    async fn decide(&self, _: &Run, _: &StepRecord, _: &str) -> Result<Decision> {
        Ok(Decision::Declined("no person to ask (an unattended run)".to_owned()))
    }
}

/// Approves every request in a person's name: `--yes` given after reading the plan.
#[derive(Debug, Clone)]
pub struct Preapproved(pub String);

#[async_trait]
impl Approver for Preapproved {
    async fn decide(&self, _: &Run, _: &StepRecord, _: &str) -> Result<Decision> {
        Ok(Decision::Approved(self.0.clone()))
    }
}

/// Waits for `POST /api/v1/runs/{id}/approve` (an approval in the state store), checking
/// every `poll`, for at most `timeout` (then declined). Any replica may take the approval.
#[derive(Clone)]
pub struct StoreApprover {
    /// The store approvals are written to.
    pub store: Arc<dyn StateStore>,
    /// Longest wait.
    pub timeout: Duration,
    /// Between two looks.
    pub poll: Duration,
}

impl std::fmt::Debug for StoreApprover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreApprover").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

#[async_trait]
impl Approver for StoreApprover {
    async fn decide(&self, run: &Run, step: &StepRecord, _: &str) -> Result<Decision> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(a) = self.store.approval(&run.id, step.index).await? {
                return Ok(Decision::Approved(a.actor));
            }
            if Instant::now() >= deadline {
                return Ok(Decision::Declined(format!(
                    "not approved within {}",
                    ops_core::units::human_duration(self.timeout)
                )));
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

/// Sees the run after every step (a progress line, a job's progress).
pub trait Observer: Send + Sync {
    /// The run as it is now.
    fn update(&self, run: &Run);
}

/// Sees nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Observer for Quiet {
    fn update(&self, _: &Run) {}
}

/// What the conditions read of one step.
#[derive(Debug, Clone, Default)]
struct StepState {
    status: Option<Status>,
    ok: bool,
    message: String,
    outcome: String,
    runbooks: Vec<String>,
    evidence: Vec<String>,
    exit_code: Option<i64>,
    http_status: Option<u16>,
    obs: BTreeMap<String, f64>,
}

/// A check passes when it is ok or only warns: up, if not at its best.
const fn passes(s: Status) -> bool {
    matches!(s, Status::Ok | Status::Warn)
}

/// Default longest wait of a `wait` step.
const WAIT_TIMEOUT: Duration = Duration::from_secs(120);
/// Between two tries of a failing `verify` within its settle window.
const VERIFY_INTERVAL: Duration = Duration::from_secs(2);
/// Most checks one step runs (`http:*` of a large configuration).
const MAX_CHECKS: usize = 64;
/// Evidence lines kept per step.
const EVIDENCE_LINES: usize = 10;

struct Exec<'a> {
    ctx: &'a Context,
    rb: &'a Runbook,
    opts: &'a RunOptions,
    mode: Mode,
    params: BTreeMap<String, String>,
    secrets: Vec<String>,
    states: BTreeMap<String, StepState>,
    run: Run,
    audit: Option<Audit>,
    store: Option<Arc<dyn StateStore>>,
    approver: &'a dyn Approver,
    observer: &'a dyn Observer,
}

impl Scope for Exec<'_> {
    fn value(&self, path: &[String]) -> Value {
        let text = |s: &str| Value::Text(s.to_owned());
        match path[0].as_str() {
            "params" => self.params.get(&path[1]).map_or(Value::Missing, |v| text(v)),
            "incident" => {
                let Some(i) = &self.opts.incident else { return Value::Missing };
                match path[1].as_str() {
                    "runbook" => text(&i.runbook),
                    "check" => text(&i.check),
                    _ => i.severity.map_or(Value::Missing, |s| text(&s.to_string())),
                }
            }
            step => {
                let Some(s) = self.states.get(step) else { return Value::Missing };
                match path[1].as_str() {
                    "status" => s.status.map_or(Value::Missing, |st| text(st.as_str())),
                    "ok" => Value::Bool(s.ok),
                    "message" => text(&s.message),
                    "outcome" => text(&s.outcome),
                    "runbooks" => Value::List(s.runbooks.clone()),
                    "evidence" => Value::List(s.evidence.clone()),
                    "exit-code" => s.exit_code.map_or(Value::Missing, |c| Value::Number(c as f64)),
                    "http-status" => s.http_status.map_or(Value::Missing, |c| Value::Number(f64::from(c))),
                    "obs" => path.get(2).and_then(|n| s.obs.get(n)).map_or(Value::Missing, |v| Value::Number(*v)),
                    _ => Value::Missing,
                }
            }
        }
    }
}

/// Plans `rb`: the checks run, the actions are planned and their guards evaluated; nothing
/// changes. The run is not saved.
///
/// # Errors
/// `InvalidInput` for parameters the runbook does not take or a required one missing.
pub async fn plan(ctx: &Context, rb: &Runbook, opts: &RunOptions) -> Result<Run> {
    let exec = Exec::new(ctx, rb, opts, Mode::Plan, &Unattended, &Quiet)?;
    Ok(exec.go().await)
}

/// Runs `rb` and acts. The run is saved in the state store as it goes and the audit log has
/// its start and end; every change has its own audit record.
///
/// # Errors
/// `InvalidInput` for bad parameters; `Internal` without a state store (budgets must hold
/// across restarts); `Unavailable` when the audit log cannot be opened (no record, no run) or
/// the run cannot be saved at its start.
pub async fn run(
    ctx: &Context,
    rb: &Runbook,
    opts: &RunOptions,
    approver: &dyn Approver,
    observer: &dyn Observer,
) -> Result<Run> {
    let mut exec = Exec::new(ctx, rb, opts, Mode::Apply, approver, observer)?;
    let store = ctx.state()?.clone();
    let audit = Audit::open(&ctx.config, Some(&opts.actor))?;
    audit.record(
        "runbook",
        &format!("runbook:{}", rb.name),
        serde_json::json!({ "run": exec.run.id, "params": exec.run.params }),
        serde_json::Value::Null,
        "started",
    )?;
    exec.run.save(store.as_ref()).await?;
    exec.audit = Some(audit);
    exec.store = Some(store);
    Ok(exec.go().await)
}

impl<'a> Exec<'a> {
    fn new(
        ctx: &'a Context,
        rb: &'a Runbook,
        opts: &'a RunOptions,
        mode: Mode,
        approver: &'a dyn Approver,
        observer: &'a dyn Observer,
    ) -> Result<Self> {
        let params = resolve_params(ctx, rb, opts)?;
        let secrets: Vec<String> =
            ctx.config.runbooks.secrets.values().map(|s| s.expose().to_owned()).filter(|s| !s.is_empty()).collect();
        let now = Utc::now();
        let steps = rb
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| StepRecord {
                index: u32::try_from(i + 1).unwrap_or(u32::MAX),
                id: s.id.clone(),
                kind: s.kind.name().to_owned(),
                title: s.title.clone().unwrap_or_else(|| default_title(s)),
                on_failure: s.on_failure,
                outcome: StepOutcome::NotReached,
                detail: String::new(),
                condition: None,
                started_at: None,
                duration_ms: 0,
                checks: Vec::new(),
                action: None,
                result: None,
                guards: Vec::new(),
                evidence: Vec::new(),
            })
            .collect();
        let run = Run {
            id: opts.run_id.clone().unwrap_or_else(|| new_id(now)),
            runbook: rb.name.clone(),
            title: rb.title.clone(),
            mode,
            status: if mode == Mode::Plan { RunStatus::Planned } else { RunStatus::Running },
            actor: if opts.actor.is_empty() { ops_core::audit::LIBRARY_ACTOR.to_owned() } else { opts.actor.clone() },
            params: params.clone(),
            incident: opts.incident.clone(),
            started_at: now,
            finished_at: None,
            summary: String::new(),
            steps,
            escalations: Vec::new(),
            waiting_for: None,
        };
        Ok(Self {
            ctx,
            rb,
            opts,
            mode,
            params,
            secrets,
            states: BTreeMap::new(),
            run,
            audit: None,
            store: None,
            approver,
            observer,
        })
    }

    async fn save(&mut self) {
        self.observer.update(&self.run);
        if let Some(store) = &self.store
            && let Err(e) = self.run.save(store.as_ref()).await
        {
            tracing::warn!(run = %self.run.id, error = %e, "saving the run failed");
        }
    }

    async fn go(mut self) -> Run {
        let steps = &self.rb.steps;
        let mut failure: Option<(RunStatus, String)> = None;
        let mut escalated: Option<String> = None;
        for (i, step) in steps.iter().enumerate() {
            if step.on_failure {
                continue;
            }
            if failure.is_some() {
                self.run.steps[i].detail = "not reached: an earlier step ended the run".to_owned();
                continue;
            }
            if escalated.is_some() {
                self.run.steps[i].detail = "not reached: the run handed over to people".to_owned();
                continue;
            }
            let verdict = self.step(i, step).await;
            match verdict {
                Verdict::Go => {}
                Verdict::Fail(status, why) => failure = Some((status, format!("step {} ({}): {why}", i + 1, step.id))),
                // Handed over: what follows is for the people told, not for this run.
                Verdict::Escalate(why) => escalated = Some(why),
            }
            self.save().await;
        }
        for (i, step) in steps.iter().enumerate().filter(|(_, s)| s.on_failure) {
            if failure.is_none() {
                self.run.steps[i].outcome = StepOutcome::Skipped;
                self.run.steps[i].detail = "on-failure: the run did not fail".to_owned();
                continue;
            }
            // What on-failure steps do is recorded; it does not change why the run failed.
            if let Verdict::Escalate(why) = self.step(i, step).await {
                escalated.get_or_insert(why);
            }
            self.save().await;
        }
        let plan = self.mode == Mode::Plan;
        let (status, summary) = match (&failure, &escalated) {
            (Some((status, why)), _) => (*status, why.clone()),
            (None, Some(why)) => (RunStatus::Escalated, format!("handed over to people: {why}")),
            (None, None) => (RunStatus::Succeeded, "every step did what it should".to_owned()),
        };
        self.run.summary = if plan {
            match status {
                RunStatus::Succeeded => "would run every step shown; nothing was changed".to_owned(),
                RunStatus::Refused => format!("would be refused: {summary}; nothing was changed"),
                RunStatus::Escalated => {
                    format!("would hand over to people: {}; nothing was changed", escalated.clone().unwrap_or_default())
                }
                _ => format!("would fail: {summary}; nothing was changed"),
            }
        } else {
            summary.clone()
        };
        if !plan {
            self.run.status = status;
            // A failed or refused run, or one that handed over: people are told once, with
            // the run's evidence.
            if failure.is_some() || escalated.is_some() {
                self.escalate(&summary).await;
            }
        }
        self.run.finished_at = Some(Utc::now());
        self.run.waiting_for = None;
        self.finish_record().await;
        self.save().await;
        self.run
    }

    async fn finish_record(&mut self) {
        let Some(audit) = &self.audit else { return };
        if let Err(e) = audit.record(
            "runbook",
            &format!("runbook:{}", self.rb.name),
            serde_json::json!({ "run": self.run.id }),
            serde_json::json!({ "status": self.run.status.as_str() }),
            self.run.status.as_str(),
        ) {
            tracing::warn!(error = %e, "the run's audit record could not be written");
        }
        if let Some(store) = &self.store
            && let Err(e) = ops_core::audit::mirror(audit.log(), store.as_ref()).await
        {
            tracing::warn!(error = %e, "mirroring the audit log into the state store failed");
        }
    }

    /// Runs (or plans) step `i`.
    async fn step(&mut self, i: usize, step: &Step) -> Verdict {
        let started = Instant::now();
        self.run.steps[i].started_at = Some(Utc::now());
        if let Some((text, cond)) = &step.when {
            let holds = cond.eval(&*self);
            self.run.steps[i].condition = Some(format!("when {text}: {}", if holds { "yes" } else { "no" }));
            if !holds {
                self.run.steps[i].outcome = StepOutcome::Skipped;
                self.run.steps[i].detail = format!("skipped: {text} does not hold");
                self.states.insert(step.id.clone(), StepState { outcome: "skipped".into(), ..StepState::default() });
                return Verdict::Go;
            }
        }
        let verdict = match &step.kind {
            StepKind::Check { check, pattern, since_mins } => {
                self.check(i, step, check, pattern.as_deref(), *since_mins).await
            }
            StepKind::Wait { check, interval } => self.wait(i, step, check, *interval).await,
            StepKind::Verify { checks, settle } => self.verify(i, step, checks, *settle).await,
            StepKind::Manual { instruction } => self.manual(i, step, instruction).await,
            StepKind::Escalate { message } => self.escalate_step(i, step, message),
            StepKind::Action { name, args } => self.action(i, step, name, args).await,
        };
        self.run.steps[i].duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        verdict
    }

    fn timeout(&self, step: &Step, default: Duration) -> Duration {
        step.timeout.unwrap_or(default).clamp(Duration::from_secs(1), Duration::from_secs(24 * 3600))
    }

    fn expand(&self, text: &str, shown: bool) -> std::result::Result<String, String> {
        crate::template::expand(text, &|name| {
            let (head, field) = name.split_once('.').unwrap_or((name, ""));
            if head == "secret" {
                return match self.ctx.config.runbooks.secrets.get(field) {
                    Some(_) if shown => Ok("***".to_owned()),
                    Some(s) => Ok(s.expose().to_owned()),
                    None => Err(format!("no [runbooks.secrets] key {field:?}")),
                };
            }
            let value = self.params.get(head).cloned().unwrap_or_default();
            if field == "container" {
                let kind = self.rb.params.get(head).map(|p| p.kind);
                let container = match kind {
                    Some(ParamKind::Cache) => self.ctx.config.caches.get(&value).and_then(|c| c.container.clone()),
                    _ => self.ctx.config.databases.get(&value).and_then(|d| d.container.clone()),
                };
                return container.ok_or_else(|| {
                    let table = if kind == Some(ParamKind::Cache) { "caches" } else { "databases" };
                    format!("{table}.{value} has no container: set `container` in its configuration")
                });
            }
            Ok(value)
        })
    }

    /// The check names a step names, templates expanded, `http:*` as every `[[http]]` check.
    fn check_names(&self, name: &str) -> std::result::Result<Vec<String>, String> {
        let name = self.expand(name, false)?;
        let cfg = &self.ctx.config;
        let names: Vec<String> = match name.as_str() {
            "http:*" => cfg.http.iter().map(|c| format!("http:{}", c.name)).collect(),
            "tcp:*" => cfg.tcp.iter().map(|c| format!("tcp:{}", c.name)).collect(),
            "tls:*" => cfg.tls.iter().map(|c| format!("tls:{}", c.name)).collect(),
            _ => vec![name],
        };
        Ok(names.into_iter().take(MAX_CHECKS).collect())
    }

    async fn run_checks(
        &self,
        names: &[String],
        timeout: Duration,
        opts: &NamedOptions,
    ) -> (Vec<ProbeReport>, Vec<String>) {
        let mut reports = Vec::new();
        let mut errors = Vec::new();
        let results = futures::future::join_all(names.iter().map(|n| probe_named(self.ctx, n, timeout, opts))).await;
        for (name, r) in names.iter().zip(results) {
            match r {
                Ok(rs) => reports.extend(rs),
                Err(e) => errors.push(format!("{name}: {}", self.redact(&e.to_string()))),
            }
        }
        (reports, errors)
    }

    fn redact(&self, text: &str) -> String {
        redact(text, &self.secrets)
    }

    fn state_of(&self, reports: &[ProbeReport], errors: &[String]) -> StepState {
        let status = reports
            .iter()
            .map(|r| r.status)
            .max()
            .map_or(Status::Unknown, |s| if errors.is_empty() { s } else { s.max(Status::Unknown) });
        let status = if reports.is_empty() { Status::Unknown } else { status };
        let mut obs = BTreeMap::new();
        for r in reports {
            for o in &r.observations {
                obs.entry(o.name.clone()).or_insert(o.value);
            }
        }
        let mut runbooks: Vec<String> =
            reports.iter().flat_map(|r| r.problems.iter().map(|p| p.runbook.as_str().to_owned())).collect();
        runbooks.dedup();
        // Evidence of what is wrong; a passing check's response snippet is not evidence.
        let mut evidence: Vec<String> = reports
            .iter()
            .filter(|r| r.status != Status::Ok)
            .flat_map(|r| r.problems.iter().flat_map(|p| p.evidence.iter()).chain(r.evidence.iter()))
            .map(|l| self.redact(l))
            .collect();
        evidence.dedup();
        let message = reports
            .iter()
            .filter(|r| r.status == status)
            .map(|r| format!("{}: {}", r.name, r.message))
            .chain(errors.iter().cloned())
            .collect::<Vec<_>>()
            .join("; ");
        StepState {
            status: Some(status),
            ok: !reports.is_empty() && reports.iter().all(|r| passes(r.status)) && errors.is_empty(),
            message: self.redact(&message),
            outcome: "ok".to_owned(),
            runbooks,
            evidence,
            obs,
            ..StepState::default()
        }
    }

    fn results(&self, reports: &[ProbeReport]) -> Vec<CheckResult> {
        reports
            .iter()
            .map(|r| CheckResult {
                name: r.name.clone(),
                status: r.status,
                message: self.redact(&r.message),
                runbooks: r.problems.iter().map(|p| p.runbook.as_str().to_owned()).collect(),
                observations: r.observations.iter().rev().map(|o| (o.name.clone(), o.value)).collect(),
                duration_ms: r.duration_ms,
            })
            .collect()
    }

    fn record_checks(&mut self, i: usize, reports: &[ProbeReport], state: &StepState) {
        let checks = self.results(reports);
        let rec = &mut self.run.steps[i];
        rec.checks = checks;
        let ev = &state.evidence;
        // The newest lines explain the outage; a log's first lines are its startup.
        rec.evidence = ev[ev.len().saturating_sub(EVIDENCE_LINES)..].to_vec();
    }

    async fn check(
        &mut self,
        i: usize,
        step: &Step,
        check: &str,
        pattern: Option<&str>,
        since: Option<u64>,
    ) -> Verdict {
        let names = match self.check_names(check) {
            Ok(n) => n,
            Err(e) => return self.fail(i, StepOutcome::Error, e),
        };
        let opts = self.named_options(pattern, since);
        let timeout = self.timeout(step, Duration::from_secs(self.ctx.config.probes.timeout_secs.max(1)));
        let (reports, errors) = self.run_checks(&names, timeout, &opts).await;
        let state = self.state_of(&reports, &errors);
        self.record_checks(i, &reports, &state);
        let rec = &mut self.run.steps[i];
        rec.outcome = if errors.is_empty() { StepOutcome::Ok } else { StepOutcome::Error };
        rec.detail = format!("{}: {}", state.status.map_or("unknown", Status::as_str), state.message);
        self.states.insert(step.id.clone(), state);
        Verdict::Go
    }

    async fn wait(&mut self, i: usize, step: &Step, check: &str, interval: Duration) -> Verdict {
        let names = match self.check_names(check) {
            Ok(n) => n,
            Err(e) => return self.fail(i, StepOutcome::Failed, e),
        };
        let timeout = self.timeout(step, WAIT_TIMEOUT);
        let probe_timeout = Duration::from_secs(self.ctx.config.probes.timeout_secs.max(1)).min(timeout);
        if self.mode == Mode::Plan {
            let (reports, errors) = self.run_checks(&names, probe_timeout, &NamedOptions::default()).await;
            let now = self.state_of(&reports, &errors);
            self.record_checks(i, &reports, &now);
            let rec = &mut self.run.steps[i];
            rec.outcome = StepOutcome::WouldRun;
            rec.detail = format!(
                "would wait up to {} for {} to pass (now {})",
                ops_core::units::human_duration(timeout),
                names.join(", "),
                now.status.map_or("unknown", Status::as_str)
            );
            self.assume_ok(step);
            return Verdict::Go;
        }
        let deadline = Instant::now() + timeout;
        let mut tries = 0u32;
        loop {
            tries += 1;
            let (reports, errors) = self.run_checks(&names, probe_timeout, &NamedOptions::default()).await;
            let state = self.state_of(&reports, &errors);
            if state.ok || Instant::now() + interval > deadline {
                self.record_checks(i, &reports, &state);
                let ok = state.ok;
                let rec = &mut self.run.steps[i];
                rec.detail = if ok {
                    format!("{} passed after {tries} tr{}", names.join(", "), if tries == 1 { "y" } else { "ies" })
                } else {
                    format!(
                        "{} did not pass within {}: {}",
                        names.join(", "),
                        ops_core::units::human_duration(timeout),
                        state.message
                    )
                };
                rec.outcome = if ok { StepOutcome::Ok } else { StepOutcome::Failed };
                let detail = rec.detail.clone();
                self.states.insert(step.id.clone(), state);
                return if ok { Verdict::Go } else { Verdict::Fail(RunStatus::Failed, detail) };
            }
            tokio::time::sleep(interval).await;
        }
    }

    async fn verify(&mut self, i: usize, step: &Step, checks: &[String], settle: Duration) -> Verdict {
        let mut names = Vec::new();
        for c in checks {
            match self.check_names(c) {
                Ok(n) => names.extend(n),
                Err(e) => return self.fail(i, StepOutcome::Failed, e),
            }
        }
        if names.is_empty() {
            self.run.steps[i].outcome = StepOutcome::Ok;
            self.run.steps[i].detail = "nothing to verify: no such check is configured".to_owned();
            self.assume_ok(step);
            return Verdict::Go;
        }
        let timeout = self.timeout(step, Duration::from_secs(self.ctx.config.probes.timeout_secs.max(1)));
        // Applied after a change (an action that ran, a person's step), a failing check is
        // tried again until the settle window ends: a service restarted a moment ago may reset
        // the first connection. With nothing changed there is nothing to settle, and a plan
        // looks once.
        let changed = self.run.steps[..i].iter().any(|s| {
            s.outcome == StepOutcome::Ok && (s.kind == "manual" || s.kind == "action")
                || s.outcome == StepOutcome::Failed && s.kind == "action"
        });
        let settle = if changed { settle } else { Duration::ZERO };
        let deadline = Instant::now() + settle;
        let mut tries = 0u32;
        let (state, failing) = loop {
            tries += 1;
            let (reports, errors) = self.run_checks(&names, timeout, &NamedOptions::default()).await;
            let state = self.state_of(&reports, &errors);
            let failing: Vec<String> = reports
                .iter()
                .filter(|r| !passes(r.status))
                .map(|r| format!("{} {}", r.name, r.status))
                .chain(errors.iter().cloned())
                .collect();
            if failing.is_empty() || self.mode == Mode::Plan || Instant::now() + VERIFY_INTERVAL > deadline {
                self.record_checks(i, &reports, &state);
                break (state, failing);
            }
            tokio::time::sleep(VERIFY_INTERVAL).await;
        };
        if self.mode == Mode::Plan {
            let rec = &mut self.run.steps[i];
            rec.outcome = StepOutcome::WouldRun;
            rec.detail = if failing.is_empty() {
                format!("would verify {} (passing now)", names.join(", "))
            } else {
                format!("would verify {} (now failing: {})", names.join(", "), failing.join(", "))
            };
            self.assume_ok(step);
            return Verdict::Go;
        }
        let ok = failing.is_empty();
        let rec = &mut self.run.steps[i];
        rec.outcome = if ok { StepOutcome::Ok } else { StepOutcome::Failed };
        rec.detail = match (ok, tries) {
            (true, 1) => format!("{} passed", names.join(", ")),
            (true, n) => format!("{} passed after {n} tries", names.join(", ")),
            (false, 1) => format!("verification failed: {}", failing.join(", ")),
            (false, n) => format!(
                "verification failed: {} (still after {n} tries in {})",
                failing.join(", "),
                ops_core::units::human_duration(settle)
            ),
        };
        let detail = rec.detail.clone();
        self.states.insert(step.id.clone(), state);
        if ok { Verdict::Go } else { Verdict::Fail(RunStatus::Failed, detail) }
    }

    async fn manual(&mut self, i: usize, step: &Step, instruction: &str) -> Verdict {
        let instruction = match self.expand(instruction, true) {
            Ok(t) => t,
            Err(e) => return self.fail(i, StepOutcome::Failed, e),
        };
        if self.mode == Mode::Plan {
            self.run.steps[i].outcome = StepOutcome::WouldRun;
            self.run.steps[i].detail = format!("would ask a person: {instruction}");
            self.assume_ok(step);
            return Verdict::Go;
        }
        match self.ask(i, &instruction).await {
            Ok(who) => {
                self.run.steps[i].outcome = StepOutcome::Ok;
                self.run.steps[i].detail = format!("{instruction} (done, confirmed by {who})");
                self.assume_ok(step);
                Verdict::Go
            }
            Err(why) => {
                self.run.steps[i].outcome = StepOutcome::Refused;
                self.run.steps[i].detail = format!("{instruction} (not confirmed: {why})");
                Verdict::Fail(RunStatus::Refused, format!("a person did not confirm: {why}"))
            }
        }
    }

    /// Saves the run as waiting, asks, and goes on.
    async fn ask(&mut self, i: usize, prompt: &str) -> std::result::Result<String, String> {
        self.run.steps[i].outcome = StepOutcome::Waiting;
        self.run.steps[i].detail = format!("waiting for a person: {prompt}");
        self.run.status = RunStatus::Waiting;
        self.run.waiting_for = Some(self.run.steps[i].index);
        self.save().await;
        let decision = self.approver.decide(&self.run, &self.run.steps[i], prompt).await;
        self.run.status = RunStatus::Running;
        self.run.waiting_for = None;
        // Saved at once: an approval that comes later finds the run no longer waiting.
        self.save().await;
        match decision {
            Ok(Decision::Approved(who)) => {
                if let Some(audit) = &self.audit {
                    let _ = audit.record(
                        "approve",
                        &format!("run:{}:step:{}", self.run.id, i + 1),
                        serde_json::Value::Null,
                        serde_json::json!({ "by": who }),
                        "ok",
                    );
                }
                Ok(who)
            }
            Ok(Decision::Declined(why)) => Err(why),
            Err(e) => Err(e.to_string()),
        }
    }

    fn escalate_step(&mut self, i: usize, step: &Step, message: &str) -> Verdict {
        let message = self.expand(message, true).unwrap_or_else(|_| message.to_owned());
        let rec = &mut self.run.steps[i];
        rec.outcome = if self.mode == Mode::Plan { StepOutcome::WouldRun } else { StepOutcome::Ok };
        rec.detail =
            if self.mode == Mode::Plan { format!("would hand over to people: {message}") } else { message.clone() };
        self.assume_ok(step);
        Verdict::Escalate(message)
    }

    fn assume_ok(&mut self, step: &Step) {
        self.states.insert(
            step.id.clone(),
            StepState { status: Some(Status::Ok), ok: true, outcome: "ok".to_owned(), ..StepState::default() },
        );
    }

    fn fail(&mut self, i: usize, outcome: StepOutcome, why: String) -> Verdict {
        let why = self.redact(&why);
        self.run.steps[i].outcome = outcome;
        self.run.steps[i].detail = why.clone();
        self.states.insert(
            self.rb.steps[i].id.clone(),
            StepState {
                status: Some(Status::Unknown),
                ok: false,
                outcome: "failed".into(),
                message: why.clone(),
                ..StepState::default()
            },
        );
        if outcome == StepOutcome::Error { Verdict::Go } else { Verdict::Fail(RunStatus::Failed, why) }
    }

    fn resolve(&self, name: &str, args: &toml::Table) -> std::result::Result<Resolved, String> {
        let raw = serde_json::to_value(args).map_err(|e| e.to_string())?;
        let mut run_args = raw.clone();
        let mut shown = raw;
        let mut problem = None;
        actions::visit_strings(&mut run_args, &mut |s| match self.expand(s, false) {
            Ok(v) => *s = v,
            Err(e) => {
                problem.get_or_insert(e);
            }
        });
        actions::visit_strings(&mut shown, &mut |s| {
            if let Ok(v) = self.expand(s, true) {
                *s = v;
            }
        });
        if let Some(p) = problem {
            return Err(p);
        }
        Ok(Resolved { name: name.to_owned(), args: run_args, shown })
    }

    async fn action(&mut self, i: usize, step: &Step, name: &str, args: &toml::Table) -> Verdict {
        let resolved = match self.resolve(name, args) {
            Ok(r) => r,
            Err(e) => return self.fail(i, StepOutcome::Failed, e),
        };
        let (preview, act_plan) = match actions::plan(self.ctx, &resolved).await {
            Ok(p) => p,
            Err(e) => return self.fail(i, StepOutcome::Failed, format!("{name} could not be planned: {e}")),
        };
        self.run.steps[i].action = Some(preview.clone());
        if preview.targets.is_empty() {
            self.run.steps[i].outcome = StepOutcome::Ok;
            self.run.steps[i].detail = format!("nothing to do: {}", preview.summary);
            self.assume_ok(step);
            return Verdict::Go;
        }
        // The guards as the plan sees them.
        let mut verdicts = self.guards_now(step, &preview, "plan").await;
        let refused = verdicts.iter().find(|v| !v.ok).map(|v| format!("{}: {}", v.guard, v.detail));
        if self.mode == Mode::Plan {
            self.run.steps[i].guards = verdicts;
            return match refused {
                Some(why) => {
                    self.run.steps[i].outcome = StepOutcome::Refused;
                    self.run.steps[i].detail = format!("would be refused ({why}): {}", preview.summary);
                    Verdict::Fail(RunStatus::Refused, why)
                }
                None => {
                    self.run.steps[i].outcome = StepOutcome::WouldRun;
                    self.run.steps[i].detail = format!("would {}", preview.summary);
                    self.assume_ok(step);
                    Verdict::Go
                }
            };
        }
        if let Some(why) = refused {
            self.run.steps[i].guards = verdicts;
            return self.refuse(i, &preview, why);
        }
        // The moment of acting: what the guards read is read again.
        let again = self.guards_at_act(step, &preview).await;
        verdicts.extend(again.0);
        self.run.steps[i].guards = verdicts;
        if let Some(why) = again.1 {
            return self.refuse(i, &preview, why);
        }
        let _lock = again.2;
        let timeout = self.timeout(step, Duration::from_secs(120));
        let Some(audit) = self.audit.clone() else {
            return self.fail(i, StepOutcome::Failed, "no audit log".to_owned());
        };
        let result = actions::apply(self.ctx, &resolved, act_plan.as_ref(), &audit, timeout, &self.secrets).await;
        match result {
            Ok(r) => {
                let ok = r.ok;
                let summary = self.redact(&r.summary);
                let rec = &mut self.run.steps[i];
                rec.outcome = if ok { StepOutcome::Ok } else { StepOutcome::Failed };
                rec.detail = summary;
                rec.evidence.clone_from(&r.evidence);
                let state = StepState {
                    status: Some(if ok { Status::Ok } else { Status::Critical }),
                    ok,
                    message: rec.detail.clone(),
                    outcome: if ok { "ok" } else { "failed" }.to_owned(),
                    evidence: r.evidence.clone(),
                    exit_code: r.exit_code,
                    http_status: r.http_status,
                    ..StepState::default()
                };
                let detail = rec.detail.clone();
                rec.result = Some(r);
                self.states.insert(step.id.clone(), state);
                if ok { Verdict::Go } else { Verdict::Fail(RunStatus::Failed, detail) }
            }
            Err(e) => self.fail(i, StepOutcome::Failed, format!("{name}: {e}")),
        }
    }

    fn refuse(&mut self, i: usize, preview: &actions::ActionPreview, why: String) -> Verdict {
        let why = self.redact(&why);
        self.run.steps[i].outcome = StepOutcome::Refused;
        self.run.steps[i].detail = format!("refused ({why}): {}", preview.summary);
        self.states.insert(
            self.rb.steps[i].id.clone(),
            StepState {
                status: Some(Status::Critical),
                ok: false,
                outcome: "refused".into(),
                message: why.clone(),
                ..StepState::default()
            },
        );
        Verdict::Fail(RunStatus::Refused, why)
    }

    fn budget(&self, step: &Step) -> (u32, Duration) {
        let cfg = &self.ctx.config.runbooks;
        (
            step.guard.budget.unwrap_or(cfg.default_budget).max(1),
            step.guard.budget_window.unwrap_or(Duration::from_secs(cfg.default_budget_window_mins.max(1) * 60)),
        )
    }

    /// The guards on what is known now (read only).
    async fn guards_now(&self, step: &Step, preview: &actions::ActionPreview, at: &str) -> Vec<GuardVerdict> {
        let mut out = Vec::new();
        let v = |guard: &str, ok: bool, detail: String| GuardVerdict {
            guard: guard.to_owned(),
            ok,
            detail,
            at: at.to_owned(),
        };
        if let Some((text, cond)) = &step.guard.unless {
            let holds = self.unless_holds(cond).0;
            out.push(v("unless", !holds, self.unless_detail(text, cond, holds, "")));
        }
        match step.guard.approval {
            Approval::None => {}
            Approval::Yes => out.push(v(
                "approval",
                self.mode == Mode::Plan || self.opts.yes,
                if self.opts.yes {
                    "given (--yes or an admin key)".to_owned()
                } else {
                    "needs --yes (or an admin key over the API)".to_owned()
                },
            )),
            Approval::Approve => out.push(v("approval", true, "a person approves at the moment of acting".to_owned())),
        }
        let (max, window) = self.budget(step);
        if let Some(store) = self.store.clone().or_else(|| self.ctx.state.clone()) {
            let back = |d: Duration| Utc::now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::hours(1));
            let window_start = back(window);
            match store.budget_uses(&preview.budget_key, back(window.max(step.guard.cooldown))).await {
                Ok(uses) => {
                    let used = u32::try_from(uses.iter().filter(|u| **u > window_start).count()).unwrap_or(u32::MAX);
                    out.push(v(
                        "budget",
                        used < max,
                        format!(
                            "{used} of {max} uses of {} in the last {}{}",
                            preview.budget_key,
                            ops_core::units::human_duration(window),
                            if used < max { "" } else { ": spent, the circuit breaker stops here" }
                        ),
                    ));
                    if !step.guard.cooldown.is_zero()
                        && let Some(last) = uses.last()
                    {
                        let ago = (Utc::now() - *last).to_std().unwrap_or_default();
                        out.push(v(
                            "cooldown",
                            ago >= step.guard.cooldown,
                            format!(
                                "last use {} ago, {} required",
                                ops_core::units::human_duration(ago),
                                ops_core::units::human_duration(step.guard.cooldown)
                            ),
                        ));
                    }
                }
                Err(e) => out.push(v("budget", self.mode == Mode::Plan, format!("cannot be read: {e}"))),
            }
        } else {
            out.push(v(
                "budget",
                true,
                format!("at most {max} per {} (no state store to read)", ops_core::units::human_duration(window)),
            ));
        }
        if step.guard.lock {
            out.push(v(
                "lock",
                true,
                format!("takes the lock of database {}", preview.database.clone().unwrap_or_default()),
            ));
        }
        out
    }

    /// The re-check at the moment of acting: the checks `unless` reads run again, a person
    /// approves, the database lock is taken, and the budget is taken (last, so a refused step
    /// spends nothing).
    async fn guards_at_act(
        &mut self,
        step: &Step,
        preview: &actions::ActionPreview,
    ) -> (Vec<GuardVerdict>, Option<String>, Option<ops_backup::lock::OperationLock>) {
        let mut out = Vec::new();
        let v = |guard: &str, ok: bool, detail: String| GuardVerdict {
            guard: guard.to_owned(),
            ok,
            detail,
            at: "act".to_owned(),
        };
        // A person first (that may take long), then what the guards read, read now.
        if step.guard.approval == Approval::Approve {
            let i = self.rb.steps.iter().position(|s| s.id == step.id).unwrap_or(0);
            match self.ask(i, &format!("approve: {}", preview.summary)).await {
                Ok(who) => out.push(v("approval", true, format!("approved by {who}"))),
                Err(why) => {
                    out.push(v("approval", false, why.clone()));
                    return (out, Some(format!("approval: {why}")), None);
                }
            }
        }
        if let Some((text, cond)) = &step.guard.unless {
            self.recheck(cond).await;
            let holds = self.unless_holds(cond).0;
            let detail = self.unless_detail(text, cond, holds, " now");
            out.push(v("unless", !holds, detail.clone()));
            if holds {
                return (out, Some(format!("unless: {detail}")), None);
            }
        }
        let mut lock = None;
        if step.guard.lock {
            let db = preview.database.clone().or_else(|| self.ctx.database(None).ok().map(|(n, _)| n.to_owned()));
            match db.as_deref().map(|n| self.ctx.database(Some(n))) {
                Some(Ok((name, db))) => {
                    match ops_backup::lock::acquire(
                        db.as_ref(),
                        ops_backup::target::local_dir(self.ctx).as_deref(),
                        "runbook",
                    )
                    .await
                    {
                        Ok(l) => {
                            out.push(v("lock", true, format!("holds the lock of {name}")));
                            lock = Some(l);
                        }
                        Err(e) => {
                            out.push(v("lock", false, e.to_string()));
                            return (out, Some(format!("lock: {e}")), None);
                        }
                    }
                }
                _ => {
                    out.push(v("lock", false, "no database to lock".to_owned()));
                    return (out, Some("lock: no database to lock".to_owned()), None);
                }
            }
        }
        let (max, window) = self.budget(step);
        let Some(store) = self.store.clone() else {
            return (out, Some("budget: no state store".to_owned()), None);
        };
        let request = BudgetRequest {
            key: preview.budget_key.clone(),
            max,
            window_secs: window.as_secs(),
            cooldown_secs: step.guard.cooldown.as_secs(),
            run_id: self.run.id.clone(),
            now: Utc::now(),
        };
        match store.take_budget(&request).await {
            Ok(d) if d.granted => {
                out.push(v(
                    "budget",
                    true,
                    format!(
                        "use {} of {max} of {} in the last {}",
                        d.used + 1,
                        preview.budget_key,
                        ops_core::units::human_duration(window)
                    ),
                ));
                (out, None, lock)
            }
            Ok(d) => {
                let why = d.reason.unwrap_or_else(|| "spent".to_owned());
                out.push(v("budget", false, format!("{why} ({})", preview.budget_key)));
                (out, Some(format!("budget: {why} for {}: the circuit breaker stops here", preview.budget_key)), None)
            }
            Err(e) => {
                out.push(v("budget", false, e.to_string()));
                (out, Some(format!("budget: {e}")), None)
            }
        }
    }

    /// `upstream.status == 'critical' holds (status-page:stellar: major outage)`: the
    /// condition, and what the steps it reads found.
    /// Whether `cond` holds, or cannot be told (a step it reads was not run, or its check
    /// could not tell): a guard that cannot be evaluated refuses.
    fn unless_holds(&self, cond: &Condition) -> (bool, bool) {
        let unknown = cond.references().iter().any(|p| {
            p[0] != "params"
                && p[0] != "incident"
                && self.states.get(&p[0]).is_none_or(|s| matches!(s.status, None | Some(Status::Unknown)))
        });
        (cond.eval(self) || unknown, unknown)
    }

    fn unless_detail(&self, text: &str, cond: &Condition, holds: bool, when: &str) -> String {
        let mut seen: Vec<String> = Vec::new();
        for p in cond.references() {
            if let Some(s) = self.states.get(&p[0])
                && !s.message.is_empty()
                && !seen.contains(&s.message)
            {
                seen.push(s.message.clone());
            }
        }
        let verdict = match (holds, self.unless_holds(cond).1) {
            (_, true) => "cannot be told (a check it reads could not tell): refused to be safe",
            (true, false) => "holds",
            (false, false) => "does not hold",
        };
        if seen.is_empty() {
            format!("{text} {verdict}{when}")
        } else {
            format!("{text} {verdict}{when} ({})", seen.join("; "))
        }
    }

    /// Runs again the check steps `cond` reads, so it is judged on what is true now.
    /// A check step's options: its own log pattern and window.
    fn named_options(&self, pattern: Option<&str>, since: Option<u64>) -> NamedOptions {
        let mut opts = NamedOptions::default();
        if pattern.is_some() || since.is_some() {
            let mut logs = self.ctx.config.probes.logs.clone();
            if let Some(p) = pattern {
                p.clone_into(&mut logs.pattern);
            }
            if let Some(m) = since {
                logs.window_secs = m.saturating_mul(60);
            }
            logs.warn_count = logs.warn_count.max(1);
            opts.logs = Some(logs);
        }
        opts
    }

    async fn recheck(&mut self, cond: &Condition) {
        let ids: Vec<String> = cond.references().iter().map(|p| p[0].clone()).collect();
        for id in ids {
            let Some(step) = self.rb.steps.iter().find(|s| s.id == id) else { continue };
            let StepKind::Check { check, pattern, since_mins } = &step.kind else { continue };
            let Ok(names) = self.check_names(check) else { continue };
            let timeout = self.timeout(step, Duration::from_secs(self.ctx.config.probes.timeout_secs.max(1)));
            let opts = self.named_options(pattern.as_deref(), *since_mins);
            let (reports, errors) = self.run_checks(&names, timeout, &opts).await;
            let state = self.state_of(&reports, &errors);
            self.states.insert(id, state);
        }
    }

    /// Tells the webhooks that the run failed, with its evidence, one severity up.
    async fn escalate(&mut self, why: &str) {
        let base = self.opts.incident.as_ref().and_then(|i| i.severity).or(self.rb.severity).unwrap_or(Severity::P2);
        let severity = base.escalated();
        let mut text = format!("{}\n", self.rb.title);
        for s in self.run.steps.iter().filter(|s| !matches!(s.outcome, StepOutcome::NotReached | StepOutcome::Skipped))
        {
            let outcome = serde_json::to_value(s.outcome).ok().and_then(|v| v.as_str().map(str::to_owned));
            text.push_str(&format!("{}. [{}] {}: {}\n", s.index, outcome.unwrap_or_default(), s.title, s.detail));
        }
        let evidence: Vec<String> = self.run.steps.iter().flat_map(|s| s.evidence.iter().cloned()).collect::<Vec<_>>();
        let evidence = evidence[evidence.len().saturating_sub(5)..].join("\n");
        let mut fields = BTreeMap::from([
            ("run".to_owned(), self.run.id.clone()),
            ("runbook".to_owned(), self.rb.name.clone()),
            ("severity".to_owned(), severity.to_string()),
            ("status".to_owned(), self.run.status.as_str().to_owned()),
            ("actor".to_owned(), self.run.actor.clone()),
        ]);
        if !evidence.is_empty() {
            fields.insert("evidence".to_owned(), self.redact(&evidence));
        }
        let n = Notification {
            title: format!("runbook {} {} ({severity}): {why}", self.rb.name, self.run.status.as_str()),
            text: self.redact(&text),
            level: NotificationLevel::Critical,
            fields,
        };
        let mut deliveries = Vec::new();
        if self.ctx.notifiers.is_empty() {
            deliveries.push("no webhook configured ([notify] webhooks)".to_owned());
        }
        for notifier in &self.ctx.notifiers {
            deliveries.push(match notifier.notify(&n).await {
                Ok(d) => format!("{}: delivered ({})", d.target, d.status),
                Err(e) => format!("{}: {e}", notifier.target()),
            });
        }
        self.run.escalations.push(Escalation { time: Utc::now(), reason: self.redact(why), severity, deliveries });
    }
}

enum Verdict {
    Go,
    Fail(RunStatus, String),
    Escalate(String),
}

fn default_title(s: &Step) -> String {
    match &s.kind {
        StepKind::Check { check, .. } => format!("check {check}"),
        StepKind::Action { name, args } => {
            let target = args
                .get("service")
                .or_else(|| args.get("database"))
                .or_else(|| args.get("cache"))
                .and_then(|v| v.as_str())
                .map(|t| format!(" {t}"))
                .unwrap_or_default();
            format!("{name}{target}")
        }
        StepKind::Wait { check, .. } => format!("wait for {check}"),
        StepKind::Manual { .. } => "a person acts".to_owned(),
        StepKind::Verify { checks, .. } => format!("verify {}", checks.join(", ")),
        StepKind::Escalate { .. } => "escalate".to_owned(),
    }
}

/// Parameters a caller may give: names, services and checks are short and plain.
fn valid_value(kind: ParamKind, v: &str) -> bool {
    match kind {
        ParamKind::Number => v.parse::<f64>().is_ok_and(f64::is_finite),
        ParamKind::Text => v.len() <= 1000 && !v.chars().any(char::is_control),
        _ => v.len() <= 255 && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c)),
    }
}

/// The parameters of a run: given, else from the incident's check, else the default.
///
/// # Errors
/// `InvalidInput` for an unknown parameter, a malformed value, a missing required one, or a
/// database or cache that is not configured.
pub fn resolve_params(ctx: &Context, rb: &Runbook, opts: &RunOptions) -> Result<BTreeMap<String, String>> {
    if opts.params.len() > 64 {
        return Err(Error::invalid_input("at most 64 parameters"));
    }
    for k in opts.params.keys() {
        if !rb.params.contains_key(k) {
            let known: Vec<&str> = rb.params.keys().map(String::as_str).collect();
            return Err(Error::invalid_input(format!(
                "runbook {} has no parameter {k:?} (it has: {})",
                rb.name,
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )));
        }
    }
    let mut out = BTreeMap::new();
    for (name, p) in &rb.params {
        let from_incident = opts.incident.as_ref().and_then(|i| {
            let (kind, rest) = i.check.split_once(':').unwrap_or((i.check.as_str(), ""));
            match (p.kind, kind) {
                (ParamKind::Database, "postgres")
                | (ParamKind::Cache, "redis" | "queue")
                | (ParamKind::Service, "container" | "logs")
                | (ParamKind::Unit, "systemd") => Some(rest.to_owned()),
                (ParamKind::Check, kind) if !i.check.is_empty() && p.of.as_deref().is_none_or(|of| of == kind) => {
                    Some(i.check.clone())
                }
                _ => None,
            }
        });
        let value = opts.params.get(name).cloned().or(from_incident).or_else(|| p.default.clone());
        let value = match (value, p.kind) {
            // Free text may be empty on purpose (an optional label).
            (Some(v), kind) if !v.is_empty() || kind == ParamKind::Text => v,
            (_, ParamKind::Database) => ctx.database(None)?.0.to_owned(),
            (_, ParamKind::Cache) => ctx.cache(None)?.0.to_owned(),
            _ => {
                return Err(Error::invalid_input(format!(
                    "runbook {} needs parameter {name} ({}): --param {name}=VALUE",
                    rb.name,
                    if p.description.is_empty() {
                        format!("{:?}", p.kind).to_lowercase()
                    } else {
                        p.description.clone()
                    }
                )));
            }
        };
        if !valid_value(p.kind, &value) {
            return Err(Error::invalid_input(format!(
                "parameter {name}: letters, digits and - _ . : / only, at most 255 characters"
            )));
        }
        if let (ParamKind::Check, Some(of)) = (p.kind, &p.of)
            && value.split(':').next() != Some(of.as_str())
        {
            return Err(Error::invalid_input(format!("parameter {name} names a {of} check: {of}:NAME")));
        }
        match p.kind {
            ParamKind::Database => drop(ctx.database(Some(&value))?),
            ParamKind::Cache => drop(ctx.cache(Some(&value))?),
            ParamKind::Unit => drop(ops_core::systemd::configured(ctx, &value)?),
            _ => {}
        }
        out.insert(name.clone(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::parse;

    fn rb(steps: &str) -> Runbook {
        let text = format!(
            "```runbook\nname = \"t\"\ntitle = \"t\"\n[params.service]\ntype = \"service\"\n\
             [params.note]\ntype = \"text\"\ndefault = \"\"\n```\n{steps}"
        );
        parse("t.md", &text).unwrap()
    }

    #[tokio::test]
    async fn conditions_read_observations_and_a_plan_shows_the_branch() {
        let r = rb("```step\nid = \"host\"\ncheck = \"host\"\n```\n\
                    ```step\nid = \"yes\"\nwhen = \"host.obs.cpu_cores >= 1 and host.status != 'critical' or host.ok\"\nmanual = \"{{service}}\"\n```\n\
                    ```step\nid = \"no\"\nwhen = \"host.obs.cpu_cores < 1\"\nmanual = \"x\"\n```\n");
        // Thresholds the test machine does not reach: its own full disk is not this test's branch.
        let mut config = ops_core::config::OpsConfig::default();
        let host = &mut config.probes.host;
        (host.disk_warn_percent, host.disk_critical_percent) = (98.0, 99.0);
        (host.memory_warn_percent, host.memory_critical_percent) = (98.0, 99.0);
        (host.load_warn_per_core, host.load_critical_per_core) = (50.0, 100.0);
        let ctx = Context::empty(config);
        let opts = RunOptions { params: BTreeMap::from([("service".into(), "api".into())]), ..RunOptions::default() };
        let run = plan(&ctx, &r, &opts).await.unwrap();
        let got: Vec<StepOutcome> = run.steps.iter().map(|s| s.outcome).collect();
        assert_eq!(got, [StepOutcome::Ok, StepOutcome::WouldRun, StepOutcome::Skipped], "{run:#?}");
        assert_eq!(run.steps[1].detail, "would ask a person: api");
        assert_eq!(run.status, RunStatus::Planned);
        assert!(run.ok());
    }

    #[test]
    fn parameters_are_checked_before_anything_runs() {
        let r = rb("```step\ncheck = \"host\"\n```\n");
        let ctx = Context::empty(ops_core::config::OpsConfig::default());
        let with = |k: &str, v: &str| RunOptions {
            params: BTreeMap::from([("service".into(), "api".into()), (k.into(), v.into())]),
            ..RunOptions::default()
        };
        let e = resolve_params(&ctx, &r, &RunOptions::default()).unwrap_err();
        assert!(e.message().contains("needs parameter service"), "{e}");
        let e = resolve_params(&ctx, &r, &with("nope", "x")).unwrap_err();
        assert!(e.message().contains("has no parameter \"nope\""), "{e}");
        let e = resolve_params(&ctx, &r, &with("service", "api; rm -rf /")).unwrap_err();
        assert_eq!(e.kind(), ops_core::ErrorKind::InvalidInput);
        let ok = resolve_params(&ctx, &r, &with("note", "")).unwrap();
        assert_eq!(ok["note"], "", "free text may be empty");
        // From the incident: a container check fills the service.
        let opts = RunOptions {
            incident: Some(IncidentRef {
                runbook: "container-down".into(),
                check: "container:worker".into(),
                severity: None,
            }),
            ..RunOptions::default()
        };
        assert_eq!(resolve_params(&ctx, &r, &opts).unwrap()["service"], "worker");
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(redact("Bearer s3cr3t-key and s3cr3t-key", &["s3cr3t-key".into()]), "Bearer *** and ***");
        assert_eq!(redact("abc", &["a".into()]), "abc", "too short to be a secret worth hiding");
    }
}
