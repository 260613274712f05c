//! A run: what a runbook did (or, planned, would do), step by step, with the evidence. Kept in
//! the state store while it runs and after; the audit log has a record of it too.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ops_core::ports::{RunQuery, StateStore, StoredRun};
use ops_core::{Error, Result, Severity, Status};
use serde::{Deserialize, Serialize};

use crate::actions::{ActionPreview, ActionResult};

/// Planned or applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Read everything, change nothing.
    Plan,
    /// Act.
    Apply,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// A plan: nothing was changed.
    Planned,
    /// Steps are running.
    Running,
    /// A step waits for a person's approval.
    Waiting,
    /// Every step that ran did what it should, and the verification passed.
    Succeeded,
    /// A step failed or the verification did not pass; `on-failure` ran and people were told.
    Failed,
    /// A guard refused an action (a budget spent, an upstream incident, no approval); people
    /// were told.
    Refused,
    /// The runbook handed over to people (an `escalate` step).
    Escalated,
}

impl RunStatus {
    /// The stable name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Refused => "refused",
            Self::Escalated => "escalated",
        }
    }

    /// Whether it has ended.
    #[must_use]
    pub const fn is_final(self) -> bool {
        !matches!(self, Self::Running | Self::Waiting)
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    /// Done as it should (a check ran, whatever it found; an action succeeded).
    Ok,
    /// It failed: the run fails.
    Failed,
    /// Its `when` did not hold, or it is an `on-failure` step of a run that did not fail.
    Skipped,
    /// A guard refused it.
    Refused,
    /// Waits for a person.
    Waiting,
    /// A plan: it would run.
    WouldRun,
    /// Not reached: an earlier step ended the run.
    NotReached,
    /// A check could not be performed.
    Error,
}

/// One guard's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GuardVerdict {
    /// `unless`, `budget`, `cooldown`, `approval`, `lock`.
    pub guard: String,
    /// It lets the action go ahead.
    pub ok: bool,
    /// Why.
    pub detail: String,
    /// `plan` or `act` (the re-check at the moment of acting).
    pub at: String,
}

/// A check's result as a run keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckResult {
    /// `postgres:main`.
    pub name: String,
    /// Its status.
    pub status: Status,
    /// One line.
    pub message: String,
    /// The runbooks of its problems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runbooks: Vec<String>,
    /// Its observations by name (the first of each name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub observations: BTreeMap<String, f64>,
    /// How long it took.
    pub duration_ms: u64,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepRecord {
    /// 1-based position in the runbook.
    pub index: u32,
    /// Its id.
    pub id: String,
    /// `check`, `action`, `wait`, `manual`, `verify`, `escalate`.
    pub kind: String,
    /// What it does, in words.
    pub title: String,
    /// An `on-failure` step.
    #[serde(default)]
    pub on_failure: bool,
    /// How it ended.
    pub outcome: StepOutcome,
    /// One line: what happened, or why not.
    pub detail: String,
    /// Its `when`, and whether it held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// How long it took.
    #[serde(default)]
    pub duration_ms: u64,
    /// The checks it ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
    /// An action's plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionPreview>,
    /// An action's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ActionResult>,
    /// The guards, at planning and at acting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<GuardVerdict>,
    /// Evidence lines (redacted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

/// What started a run from triage or an alert.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentRef {
    /// The triage runbook or alert name (`database-down`, `ServiceDown`).
    pub runbook: String,
    /// The failing check (`postgres:main`, `container:db`).
    pub check: String,
    /// Its severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// One escalation sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Escalation {
    /// When.
    pub time: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// The severity told (one above the incident's: remediation did not work).
    pub severity: Severity,
    /// Where it went: `hooks.example.com: delivered` or the error.
    pub deliveries: Vec<String>,
}

/// A run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Run {
    /// `run-20261202T114500Z-7f3a9c`.
    pub id: String,
    /// The runbook.
    pub runbook: String,
    /// Its title.
    pub title: String,
    /// Plan or apply.
    pub mode: Mode,
    /// Where it is.
    pub status: RunStatus,
    /// Who started it (`opsctl:root@host`, `api:<key fingerprint>`).
    pub actor: String,
    /// The parameters, resolved.
    pub params: BTreeMap<String, String>,
    /// What started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentRef>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// One line: how it went.
    pub summary: String,
    /// The steps, in runbook order (skipped ones included, so the branch taken is visible).
    pub steps: Vec<StepRecord>,
    /// Escalations sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalations: Vec<Escalation>,
    /// The step waiting for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<u32>,
}

impl Run {
    /// Whether it has ended well (a plan: whether it would).
    #[must_use]
    pub fn ok(&self) -> bool {
        match self.status {
            RunStatus::Succeeded => true,
            RunStatus::Planned => {
                !self.steps.iter().any(|s| matches!(s.outcome, StepOutcome::Refused | StepOutcome::Failed))
            }
            _ => false,
        }
    }

    fn stored(&self) -> Result<StoredRun> {
        Ok(StoredRun {
            id: self.id.clone(),
            runbook: self.runbook.clone(),
            status: self.status.as_str().to_owned(),
            started_at: self.started_at,
            updated_at: Utc::now(),
            document: serde_json::to_value(self).map_err(|e| Error::internal(format!("run: {e}")))?,
        })
    }

    /// Saves it.
    ///
    /// # Errors
    /// The store's.
    pub async fn save(&self, store: &dyn StateStore) -> Result<()> {
        store.save_run(&self.stored()?).await
    }
}

/// A new run id: time, then random.
#[must_use]
pub fn new_id(now: DateTime<Utc>) -> String {
    ops_core::ids::new_id("run", now)
}

/// Whether `id` has the shape of a run id (what an HTTP caller may ask for).
#[must_use]
pub fn valid_id(id: &str) -> bool {
    ops_core::ids::valid_id("run", id)
}

/// One run from the store.
///
/// # Errors
/// `InvalidInput` for a malformed id, `NotFound`, and the store's errors.
pub async fn load(store: &dyn StateStore, id: &str) -> Result<Run> {
    if !valid_id(id) {
        return Err(Error::invalid_input("a run id looks like run-20261202T114500Z-7f3a9c01"));
    }
    let stored = store.run(id).await?.ok_or_else(|| Error::not_found(format!("no run {id}")))?;
    serde_json::from_value(stored.document).map_err(|e| Error::integrity(format!("run {id} does not parse: {e}")))
}

/// Runs, newest first.
///
/// # Errors
/// The store's.
pub async fn list(store: &dyn StateStore, query: &RunQuery) -> Result<Vec<Run>> {
    let stored = store.runs(query).await?;
    Ok(stored.into_iter().filter_map(|s| serde_json::from_value(s.document).ok()).collect())
}

/// `text` with every secret value replaced by `***`.
#[must_use]
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), "***");
    }
    out
}
