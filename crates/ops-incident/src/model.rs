//! The incident record: a header ([`Incident`]) kept current, and an append-only log of
//! [`Event`]s it is built from.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use ops_core::{Severity, Status};
use serde::{Deserialize, Serialize};

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    /// Detected, nobody has taken it yet.
    Open,
    /// A person took it.
    Acknowledged,
    /// Its checks pass again; it resolves once they have passed long enough.
    Mitigated,
    /// Over.
    Resolved,
}

impl IncidentStatus {
    /// The lowercase name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Mitigated => "mitigated",
            Self::Resolved => "resolved",
        }
    }

    /// Parses [`IncidentStatus::as_str`].
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Open, Self::Acknowledged, Self::Mitigated, Self::Resolved].into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for IncidentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The status an incident shows the public: Atlassian Statuspage's words, which status-page
/// readers understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PublicStatus {
    /// Looking into it.
    Investigating,
    /// The cause is known.
    Identified,
    /// A fix is in; watching.
    Monitoring,
    /// Over.
    Resolved,
}

impl PublicStatus {
    /// The lowercase name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Investigating => "investigating",
            Self::Identified => "identified",
            Self::Monitoring => "monitoring",
            Self::Resolved => "resolved",
        }
    }

    /// A capitalised label (`Investigating`).
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Investigating => "Investigating",
            Self::Identified => "Identified",
            Self::Monitoring => "Monitoring",
            Self::Resolved => "Resolved",
        }
    }

    /// Parses [`PublicStatus::as_str`].
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Investigating, Self::Identified, Self::Monitoring, Self::Resolved].into_iter().find(|v| v.as_str() == s)
    }
}

/// A problem of another check that the incident's cause brought about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Consequence {
    /// The check (`http:api`).
    pub check: String,
    /// Its runbook.
    pub runbook: String,
    /// Its status.
    pub status: Status,
    /// One line.
    pub message: String,
}

/// One event of an incident's log: what happened, when, and who or what saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Its place in the log, from 1.
    pub seq: u64,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// Who or what recorded it (`triage`, `opsctl:root@host`, `api:<key fingerprint>`).
    pub actor: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. Only [`EventKind::Update`] (and the incident's public title) is public:
/// everything else is internal and never reaches the status page or its feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EventKind {
    /// The incident opened.
    Opened {
        /// The failing check at the root (`container:db`), when triage opened it.
        root: Option<String>,
        /// The root's runbook.
        runbook: Option<String>,
        /// The cause in one line.
        message: String,
        /// First diagnostic evidence (internal).
        evidence: Vec<String>,
        /// Problems of other checks the cause brought about.
        consequences: Vec<Consequence>,
    },
    /// The severity changed.
    Severity {
        /// Before.
        from: Severity,
        /// After.
        to: Severity,
        /// Why (`P2 open over 120 min`, `triage: P1`).
        reason: String,
    },
    /// A check of the incident changed status.
    Probe {
        /// The check.
        check: String,
        /// Before.
        from: Status,
        /// After.
        to: Status,
        /// Its message now.
        message: String,
    },
    /// An alert fired or resolved.
    Alert {
        /// The alert's name.
        name: String,
        /// `firing` or `resolved`.
        state: String,
        /// Its summary.
        summary: String,
    },
    /// A runbook run started or changed status.
    Run {
        /// The run's id.
        id: String,
        /// The runbook.
        runbook: String,
        /// Its status (`running`, `succeeded`, `failed`).
        status: String,
    },
    /// An action from the audit log (restart, restore, prune, renew).
    Action {
        /// The action.
        action: String,
        /// Its target.
        target: String,
        /// `ok`, `started`, or what went wrong.
        result: String,
    },
    /// A person's internal note.
    Note {
        /// The text.
        text: String,
        /// A report from a user (counted by the "burst of reports" escalation rule).
        user_report: bool,
    },
    /// A public status update (shown on the status page and sent to the webhooks).
    Update {
        /// The public status it sets.
        status: PublicStatus,
        /// The public text.
        text: String,
    },
    /// A person took the incident.
    Acknowledged,
    /// The incident's checks pass again.
    Mitigated {
        /// Why it counts as mitigated.
        reason: String,
    },
    /// A check failed again after the incident was mitigated.
    Relapsed {
        /// The check.
        check: String,
    },
    /// The incident resolved.
    Resolved {
        /// Why.
        reason: String,
    },
    /// People were told.
    Notified {
        /// Which message (`initial`, `update`, `resolved`, `reminder`).
        message: String,
        /// Deliveries that succeeded.
        delivered: u32,
        /// Targets that failed, with why (no secrets).
        failed: Vec<String>,
    },
}

impl EventKind {
    /// The kind's name (`opened`, `probe`, `note`).
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Opened { .. } => "opened",
            Self::Severity { .. } => "severity",
            Self::Probe { .. } => "probe",
            Self::Alert { .. } => "alert",
            Self::Run { .. } => "run",
            Self::Action { .. } => "action",
            Self::Note { .. } => "note",
            Self::Update { .. } => "update",
            Self::Acknowledged => "acknowledged",
            Self::Mitigated { .. } => "mitigated",
            Self::Relapsed { .. } => "relapsed",
            Self::Resolved { .. } => "resolved",
            Self::Notified { .. } => "notified",
        }
    }

    /// Whether it may be shown to the public.
    #[must_use]
    pub const fn is_public(&self) -> bool {
        matches!(self, Self::Update { .. })
    }
}

/// An incident's header: what it is about and where it stands, kept current from its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Incident {
    /// `inc-20261202T114500Z-7f3a09bc`.
    pub id: String,
    /// Internal title (`database-down on container:db`).
    pub title: String,
    /// What the public sees (`Major outage: API, Database`).
    pub public_title: String,
    /// Where it is in its life.
    pub status: IncidentStatus,
    /// The public status of the newest public update.
    pub public_status: PublicStatus,
    /// Current severity (after the escalation rules).
    pub severity: Severity,
    /// The severity triage gives its findings now, before escalation.
    pub base_severity: Severity,
    /// Severity when it opened.
    pub initial_severity: Severity,
    /// The failing check at its root, when triage opened it.
    pub root: Option<String>,
    /// The root's runbook.
    pub runbook: Option<String>,
    /// The cause in one line (internal: it may name hosts and checks).
    pub cause: String,
    /// Every check it concerns (the root and its consequences); empty for one opened by hand
    /// without checks.
    pub checks: BTreeSet<String>,
    /// Public components it affects (from `[[status.components]]`).
    pub components: Vec<String>,
    /// When the first evidence of it was seen (a check failing, a container exiting).
    pub detected_at: DateTime<Utc>,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// When a person took it.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// When its checks passed again (the last time, if they failed in between).
    pub mitigated_at: Option<DateTime<Utc>>,
    /// When it resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Since when every check has passed (resolves after `incidents.resolve-after-secs`).
    pub clean_since: Option<DateTime<Utc>>,
    /// When people last heard (a public update or a notification).
    pub last_update_at: DateTime<Utc>,
    /// When the next update is due (per severity); none once resolved.
    pub next_update_due: Option<DateTime<Utc>>,
    /// The deadline a reminder was already sent for.
    pub reminded_for: Option<DateTime<Utc>>,
    /// Who or what opened it.
    pub opened_by: String,
    /// The status each run was last recorded in, by run id.
    pub runs: BTreeMap<String, String>,
    /// The newest public update's text (what a message quotes).
    #[serde(default)]
    pub latest_update: Option<String>,
    /// The severity it may not go below: the highest an escalation rule reached, or the one a
    /// person chose when opening it.
    #[serde(default)]
    pub floor: Option<Severity>,
    /// The audit entries already in its log (their digests), so none is recorded twice.
    #[serde(default)]
    pub actions_seen: BTreeSet<String>,
    /// One of its checks has been seen failing since it opened (an incident opened by hand
    /// on checks that pass is not "fixed" by them passing).
    #[serde(default)]
    pub failing_seen: bool,
}

impl Incident {
    /// Time to acknowledge, mitigate and resolve, seconds from opening (when reached).
    #[must_use]
    pub fn durations(&self) -> Durations {
        let since = |t: Option<DateTime<Utc>>| t.map(|t| (t - self.opened_at).num_seconds().max(0));
        Durations {
            to_acknowledge_secs: since(self.acknowledged_at),
            to_mitigate_secs: since(self.mitigated_at),
            to_resolve_secs: since(self.resolved_at),
            detection_gap_secs: (self.opened_at - self.detected_at).num_seconds().max(0),
        }
    }

    /// How long it lasted (to now while open), from the first evidence: what users felt.
    #[must_use]
    pub fn duration_secs(&self, now: DateTime<Utc>) -> i64 {
        (self.resolved_at.unwrap_or(now) - self.detected_at).num_seconds().max(0)
    }
}

/// The incident's response times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Durations {
    /// Opening to acknowledgement.
    pub to_acknowledge_secs: Option<i64>,
    /// Opening to its checks passing again.
    pub to_mitigate_secs: Option<i64>,
    /// Opening to resolution.
    pub to_resolve_secs: Option<i64>,
    /// First evidence (a failing check, a container's exit) to the incident opening.
    pub detection_gap_secs: i64,
}

/// An incident with its whole log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentRecord {
    /// The header.
    pub incident: Incident,
    /// Response times.
    pub durations: Durations,
    /// The log, in order.
    pub events: Vec<Event>,
}

impl IncidentRecord {
    /// The public updates, oldest first.
    pub fn updates(&self) -> impl Iterator<Item = (&Event, PublicStatus, &str)> {
        self.events.iter().filter_map(|e| match &e.kind {
            EventKind::Update { status, text } => Some((e, *status, text.as_str())),
            _ => None,
        })
    }
}

/// A new incident id (`inc-20261202T114500Z-7f3a09bc`).
#[must_use]
pub fn new_id(now: DateTime<Utc>) -> String {
    ops_core::ids::new_id("inc", now)
}

/// Whether `id` has the shape of an incident id (what a caller may ask for).
#[must_use]
pub fn valid_id(id: &str) -> bool {
    ops_core::ids::valid_id("inc", id)
}

/// The most characters a note, update or title may have.
pub const MAX_TEXT: usize = 4000;

/// Checks a person's text: not empty, not too long, no control characters but newlines and tabs.
///
/// # Errors
/// `InvalidInput` saying what is wrong with it.
pub fn check_text(what: &str, text: &str) -> ops_core::Result<String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ops_core::Error::invalid_input(format!("{what} is empty")));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(ops_core::Error::invalid_input(format!("{what} is longer than {MAX_TEXT} characters")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ops_core::Error::invalid_input(format!("{what} has control characters")));
    }
    Ok(text.to_owned())
}
