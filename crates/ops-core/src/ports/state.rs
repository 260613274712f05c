//! [`StateStore`]: what must survive a restart and be shared by several `ops-server`
//! replicas: runbook runs, action budgets (the circuit breaker), approvals and the mirror of
//! the audit log. Later capabilities (incidents, schedules, status history) add their tables
//! by migration.
//!
//! The store keeps documents it does not interpret (a run is JSON to it) with the few columns
//! it must query by, so the library that owns a document owns its shape.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::audit::AuditEntry;

/// One stored run: the columns it is found by, and its document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredRun {
    /// Unique id (`run-20261202T114500Z-7f3a`).
    pub id: String,
    /// The runbook's name.
    pub runbook: String,
    /// `running`, `waiting`, `succeeded`, `failed`, `refused`, `planned`.
    pub status: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it was last saved.
    pub updated_at: DateTime<Utc>,
    /// The whole run, as its owner serialized it.
    pub document: serde_json::Value,
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunQuery {
    /// Only runs of this runbook.
    pub runbook: Option<String>,
    /// Only runs in this status.
    pub status: Option<String>,
    /// At most this many (capped by the store at [`MAX_LISTED`]).
    pub limit: usize,
}

/// The most rows one listing returns.
pub const MAX_LISTED: usize = 1000;

/// A use of a budgeted action asked for: at most `max` uses of `key` in `window_secs`, and
/// none within `cooldown_secs` of the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BudgetRequest {
    /// What is budgeted: `restart:container:indexer` (the action and its target).
    pub key: String,
    /// Uses allowed in the window.
    pub max: u32,
    /// The window, seconds.
    pub window_secs: u64,
    /// Seconds that must pass after the last use; 0 for none.
    pub cooldown_secs: u64,
    /// The run that uses it (kept with the use, for the record).
    pub run_id: String,
    /// Now, as the caller sees it (tests give their own).
    pub now: DateTime<Utc>,
}

/// The store's answer to a [`BudgetRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BudgetDecision {
    /// The use was recorded; the action may go ahead.
    pub granted: bool,
    /// Uses in the window before this one.
    pub used: u32,
    /// The limit.
    pub max: u32,
    /// The newest earlier use, if any.
    pub last_use: Option<DateTime<Utc>>,
    /// Why it was refused: `3 of 3 restarts in the last 60 min`, `cooldown: last use 40 s ago`.
    pub reason: Option<String>,
}

/// A person's approval of a run's waiting step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = StoredApproval))]
pub struct Approval {
    /// The run.
    pub run_id: String,
    /// The step's index in the run.
    pub step: u32,
    /// Who approved (`api:<key fingerprint>`, `opsctl:root@host`).
    pub actor: String,
    /// When.
    pub time: DateTime<Utc>,
}

/// One stored incident: the columns it is found by, and its document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredIncident {
    /// Unique id (`inc-20261202T114500Z-7f3a09bc`).
    pub id: String,
    /// `open`, `acknowledged`, `mitigated`, `resolved`.
    pub status: String,
    /// `P1` … `P4`.
    pub severity: String,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// When it was last saved.
    pub updated_at: DateTime<Utc>,
    /// When it resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// What makes it unique while it is open (its root check, `postgres:main`): a second
    /// observer cannot open the same incident twice. Resolved incidents keep their id here.
    pub open_key: String,
    /// The whole incident header, as its owner serialized it (events are kept apart).
    pub document: serde_json::Value,
    /// How many times it was saved: a save names the version it read, and a header changed
    /// meanwhile is not overwritten (`Conflict`).
    pub version: u64,
}

/// An event to append to an incident's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewEvent {
    /// When it happened.
    pub time: DateTime<Utc>,
    /// Its kind (`opened`, `probe`, `note`).
    pub kind: String,
    /// The event, as its owner serialized it.
    pub document: serde_json::Value,
}

/// Which incidents to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentQuery {
    /// Only incidents not resolved.
    pub unresolved: bool,
    /// Only incidents opened at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many (capped by the store at [`MAX_LISTED`]).
    pub limit: usize,
}

/// One event of an incident's append-only log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredEvent {
    /// Its place in the log, from 1; given by the store.
    pub seq: u64,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// What kind of event (`opened`, `probe`, `note`), for its owner.
    pub kind: String,
    /// The event, as its owner serialized it.
    pub document: serde_json::Value,
}

/// The most events one incident keeps; later ones are refused (`Conflict`).
pub const MAX_EVENTS: u64 = 20_000;

/// Samples of one component's status on one UTC day (for the status page's history).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComponentDay {
    /// The component's name.
    pub component: String,
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Samples per status (`operational`, `degraded_performance`, `partial_outage`,
    /// `major_outage`, `under_maintenance`).
    pub samples: std::collections::BTreeMap<String, u64>,
}

/// The statuses a component sample may have, in the order of the store's columns.
pub const COMPONENT_STATUSES: [&str; 5] =
    ["operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"];

/// One run of a scheduled job in the ledger: claimed by one replica for its due time, so a
/// run happens once however many replicas share the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduledRun {
    /// The `[[schedule]]` entry's name.
    pub job: String,
    /// The time it was due (before jitter): with `job`, its key.
    pub scheduled_at: DateTime<Utc>,
    /// The `ops-server` process that claimed it.
    pub holder: String,
    /// `running`, `success`, `failure`, `skipped` (overlap), `missed` (catch-up `skip`) or
    /// `abandoned` (its holder stopped renewing it: a failure, unless the holder comes back
    /// and records how it ended).
    pub status: String,
    /// When it started (or was recorded).
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The last sign of life of its holder while it runs.
    pub heartbeat_at: DateTime<Utc>,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// What the job reported (backup id and size, findings, the runbook run's id), and the
    /// cron expression it was scheduled by.
    pub detail: serde_json::Value,
}

/// Which ledger rows to list, newest due time first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleQuery {
    /// Only this job's rows.
    pub job: Option<String>,
    /// Only rows in this status.
    pub status: Option<String>,
    /// At most this many (capped by the store at [`MAX_LISTED`]).
    pub limit: usize,
}

/// The most ledger rows kept per job; older ones are removed when a run is claimed.
pub const MAX_LEDGER_PER_JOB: usize = 1000;

/// Durable, shared state: SQLite for one host, PostgreSQL for several replicas.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Where it is, without credentials (`sqlite:///var/lib/ops/state.db`).
    fn location(&self) -> String;

    /// Applies the migrations this build knows and has not applied yet, each in its own
    /// transaction, and returns the schema version.
    ///
    /// # Errors
    /// `Unavailable` when the store cannot be reached; `Conflict` when it was written by a
    /// newer build (a higher version than this one knows).
    async fn migrate(&self) -> Result<u32>;

    /// Inserts or replaces a run.
    ///
    /// # Errors
    /// `Unavailable` when the write fails.
    async fn save_run(&self, run: &StoredRun) -> Result<()>;

    /// One run by id.
    ///
    /// # Errors
    /// `Unavailable` when the read fails.
    async fn run(&self, id: &str) -> Result<Option<StoredRun>>;

    /// Runs, newest first.
    ///
    /// # Errors
    /// `Unavailable` when the read fails.
    async fn runs(&self, query: &RunQuery) -> Result<Vec<StoredRun>>;

    /// Checks a budget and records the use when it is granted, atomically: two replicas
    /// asking at once cannot both take the last use.
    ///
    /// # Errors
    /// `Unavailable` when the store cannot be written; a refusal is a decision, not an error.
    async fn take_budget(&self, request: &BudgetRequest) -> Result<BudgetDecision>;

    /// The uses of a budget key since a time, oldest first (what a plan shows).
    ///
    /// # Errors
    /// `Unavailable` when the read fails.
    async fn budget_uses(&self, key: &str, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>>;

    /// Records an approval (the first one of a step wins; later ones are kept out).
    ///
    /// # Errors
    /// `Unavailable` when the write fails.
    async fn approve(&self, approval: &Approval) -> Result<()>;

    /// The approval of a run's step, if given.
    ///
    /// # Errors
    /// `Unavailable` when the read fails.
    async fn approval(&self, run_id: &str, step: u32) -> Result<Option<Approval>>;

    /// Appends audit entries not yet mirrored; `source` names the file and `offset` is where
    /// its lines end, so the next mirror reads only what was appended since.
    ///
    /// # Errors
    /// `Unavailable` when the write fails.
    async fn mirror_audit(&self, source: &str, entries: &[AuditEntry], offset: u64, head: &str) -> Result<()>;

    /// Where the mirror of `source` stopped: the byte offset and the hash of the file's first
    /// line then (a rotated file starts over).
    ///
    /// # Errors
    /// `Unavailable` when the read fails.
    async fn audit_mirror_position(&self, source: &str) -> Result<Option<(u64, String)>>;

    /// The newest mirrored audit entries, oldest first.
    ///
    /// # Errors
    /// `Unavailable` when the read fails.
    async fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>>;

    /// Inserts a new incident with its first events, in one transaction, unless an
    /// unresolved one holds the same `open_key`; returns the events' sequence numbers.
    ///
    /// # Errors
    /// `Unavailable` when the write fails. `Ok(None)` when another open incident has the key.
    async fn open_incident(&self, incident: &StoredIncident, events: &[NewEvent]) -> Result<Option<Vec<u64>>>;

    /// Saves an incident's header and appends events, in one transaction, if the header is
    /// still at `incident.version` (the one read); the stored version goes up by one. Returns
    /// the events' sequence numbers.
    ///
    /// # Errors
    /// `Conflict` when the header was saved meanwhile (read it again and redo the change) or
    /// the log is full ([`MAX_EVENTS`]); `NotFound` for an unknown id; `Unavailable`.
    async fn commit_incident(&self, incident: &StoredIncident, events: &[NewEvent]) -> Result<Vec<u64>>;

    /// One incident by id.
    ///
    /// # Errors
    /// `Unavailable` when the read fails.
    async fn incident(&self, id: &str) -> Result<Option<StoredIncident>>;

    /// Incidents, newest first.
    ///
    /// # Errors
    /// `Unavailable` when the read fails.
    async fn incidents(&self, query: &IncidentQuery) -> Result<Vec<StoredIncident>>;

    /// Appends an event to an incident's log and returns its sequence number. The log is
    /// append-only: nothing edits or removes an event.
    ///
    /// # Errors
    /// `NotFound` for an unknown incident; `Conflict` past [`MAX_EVENTS`]; `Unavailable`.
    async fn append_incident_event(
        &self,
        incident_id: &str,
        time: DateTime<Utc>,
        kind: &str,
        document: &serde_json::Value,
    ) -> Result<u64>;

    /// An incident's events in order; only those of `kind` unless it is empty.
    ///
    /// # Errors
    /// `Unavailable` when the read fails.
    async fn incident_events(&self, incident_id: &str, kind: &str) -> Result<Vec<StoredEvent>>;

    /// Stores a small document by collection and key (component overrides, maintenance
    /// windows, the last status of each check), replacing any earlier one.
    ///
    /// # Errors
    /// `Unavailable` when the write fails.
    async fn put_document(&self, collection: &str, key: &str, document: &serde_json::Value) -> Result<()>;

    /// Removes a document; `false` when there was none.
    ///
    /// # Errors
    /// `Unavailable` when the write fails.
    async fn delete_document(&self, collection: &str, key: &str) -> Result<bool>;

    /// The documents of a collection by key (at most [`MAX_LISTED`]).
    ///
    /// # Errors
    /// `Unavailable` when the read fails.
    async fn documents(&self, collection: &str) -> Result<Vec<(String, serde_json::Value)>>;

    /// Counts one sample of each component's status on a UTC day (one transaction).
    ///
    /// # Errors
    /// `InvalidInput` for a status not in [`COMPONENT_STATUSES`]; `Unavailable`.
    async fn add_component_samples(&self, day: chrono::NaiveDate, samples: &[(String, String)]) -> Result<()>;

    /// The daily samples of every component from `since` (a UTC day) on, oldest first.
    ///
    /// # Errors
    /// `Unavailable` when the read fails.
    async fn component_days(&self, since: chrono::NaiveDate) -> Result<Vec<ComponentDay>>;

    /// Takes or renews a named lease until `until`: granted when nobody holds it, when it
    /// expired, or when `holder` already holds it. Two replicas asking at once: one wins.
    ///
    /// # Errors
    /// `Unavailable` when the write fails.
    async fn try_lease(&self, name: &str, holder: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool>;

    /// Gives a lease back (only its holder can).
    ///
    /// # Errors
    /// `Unavailable` when the write fails.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;

    /// Deletes the leases whose names start with `prefix` that expired before `now`: leases
    /// taken to remember something (an alert already taken) rather than to hold it. The count
    /// deleted.
    ///
    /// # Errors
    /// `Unavailable` when the write fails.
    async fn prune_leases(&self, prefix: &str, now: DateTime<Utc>) -> Result<u64>;

    /// Claims a scheduled run: inserts its ledger row unless one exists for the same job
    /// and due time (another replica claimed it, or it was recorded as missed); trims the
    /// job's ledger to [`MAX_LEDGER_PER_JOB`] rows. `true` when this caller got it.
    ///
    /// # Errors
    /// `Unavailable` when the write fails.
    async fn claim_scheduled_run(&self, run: &ScheduledRun) -> Result<bool>;

    /// Records the end of a run by its holder (status `running`, or `abandoned` when the
    /// holder was thought dead and was not); `false` when the row is another's or ended.
    ///
    /// # Errors
    /// `Unavailable` when the write fails.
    async fn finish_scheduled_run(&self, run: &ScheduledRun) -> Result<bool>;

    /// Moves the heartbeat of every running row of `holder` to `now`.
    ///
    /// # Errors
    /// `Unavailable` when the write fails.
    async fn heartbeat_scheduled_runs(&self, holder: &str, now: DateTime<Utc>) -> Result<()>;

    /// Marks `abandoned` the running rows whose heartbeat is older than `stale_before` (their
    /// holder died) and returns them as they now are.
    ///
    /// # Errors
    /// `Unavailable` when the write fails.
    async fn abandon_scheduled_runs(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<ScheduledRun>>;

    /// Ledger rows, newest due time first.
    ///
    /// # Errors
    /// `Unavailable` when the read fails.
    async fn scheduled_runs(&self, query: &ScheduleQuery) -> Result<Vec<ScheduledRun>>;
}
