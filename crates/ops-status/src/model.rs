//! What the status page shows: each component's status, derived from its checks, the open and
//! recent incidents with their public updates, maintenance windows, and the daily history.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A component's status, in Atlassian Statuspage's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    /// Working.
    Operational,
    /// Planned work.
    UnderMaintenance,
    /// Slow or partly failing.
    DegradedPerformance,
    /// Some of its checks fail.
    PartialOutage,
    /// All of its checks fail.
    MajorOutage,
}

impl ComponentStatus {
    /// Every status, best first.
    pub const ALL: [Self; 5] =
        [Self::Operational, Self::UnderMaintenance, Self::DegradedPerformance, Self::PartialOutage, Self::MajorOutage];

    /// `operational`, `degraded_performance`, …
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Operational => "operational",
            Self::UnderMaintenance => "under_maintenance",
            Self::DegradedPerformance => "degraded_performance",
            Self::PartialOutage => "partial_outage",
            Self::MajorOutage => "major_outage",
        }
    }

    /// `Operational`, `Degraded performance`, …
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Operational => "Operational",
            Self::UnderMaintenance => "Under maintenance",
            Self::DegradedPerformance => "Degraded performance",
            Self::PartialOutage => "Partial outage",
            Self::MajorOutage => "Major outage",
        }
    }

    /// Parses [`ComponentStatus::as_str`] (dashes allowed).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.replace('-', "_");
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The page's overall indicator, as Statuspage's `status.json` says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Indicator {
    /// `none`, `minor`, `major`, `critical`, `maintenance`.
    pub indicator: String,
    /// `All Systems Operational`, `Partial System Outage`, `Major System Outage`, …
    pub description: String,
}

/// One day of a component's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Day {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// The worst status sampled that day; `None` without samples.
    pub worst: Option<ComponentStatus>,
    /// Share of samples that were operational or under maintenance, percent.
    pub uptime: Option<f64>,
    /// Samples that day.
    pub samples: u64,
}

/// One component on the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Component {
    /// Stable id (from the name).
    pub id: String,
    /// Public name.
    pub name: String,
    /// Public description.
    pub description: Option<String>,
    /// Status now.
    pub status: ComponentStatus,
    /// Why, for people who run it (not shown publicly): `http:api critical`, `override`.
    #[serde(skip)]
    pub reason: String,
    /// Its place on the page, from 1.
    pub position: usize,
    /// Since when it has this status (the newest change among its checks).
    pub updated_at: DateTime<Utc>,
    /// Uptime over the history shown, percent.
    pub uptime: Option<f64>,
    /// The days of history, oldest first.
    pub history: Vec<Day>,
}

/// A public update of an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublicUpdate {
    /// Stable id.
    pub id: String,
    /// `investigating`, `identified`, `monitoring`, `resolved`.
    pub status: String,
    /// The public text.
    pub body: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// An incident as the public sees it: its public title and public updates only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublicIncident {
    /// The incident's id.
    pub id: String,
    /// Public title.
    pub name: String,
    /// `investigating`, `identified`, `monitoring`, `resolved`.
    pub status: String,
    /// `critical` (P1), `major` (P2), `minor` (P3), `none` (P4).
    pub impact: String,
    /// When users were first affected.
    pub started_at: DateTime<Utc>,
    /// When it opened.
    pub created_at: DateTime<Utc>,
    /// The newest change.
    pub updated_at: DateTime<Utc>,
    /// When it went to monitoring.
    pub monitoring_at: Option<DateTime<Utc>>,
    /// When it resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Components affected.
    pub components: Vec<String>,
    /// Public updates, newest first (as Statuspage lists them).
    pub updates: Vec<PublicUpdate>,
}

/// A maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Maintenance {
    /// `mnt-…`.
    pub id: String,
    /// Public title.
    pub title: String,
    /// Public text.
    pub text: String,
    /// Components under maintenance.
    pub components: Vec<String>,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End.
    pub ends_at: DateTime<Utc>,
    /// Who planned it.
    pub created_by: String,
    /// When it was planned.
    pub created_at: DateTime<Utc>,
}

impl Maintenance {
    /// `scheduled`, `in_progress` or `completed` at `now`.
    #[must_use]
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if now < self.starts_at {
            "scheduled"
        } else if now < self.ends_at {
            "in_progress"
        } else {
            "completed"
        }
    }
}

/// A person's override of a component's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Override {
    /// The status shown instead of the derived one.
    pub status: ComponentStatus,
    /// Who set it.
    pub set_by: String,
    /// When.
    pub set_at: DateTime<Utc>,
}

/// The whole page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusPage {
    /// The page's title.
    pub title: String,
    /// Its public address.
    pub url: Option<String>,
    /// When it was built.
    pub updated_at: DateTime<Utc>,
    /// Overall.
    pub indicator: Indicator,
    /// Components, in configured order.
    pub components: Vec<Component>,
    /// Open incidents, newest first.
    pub unresolved: Vec<PublicIncident>,
    /// Incidents of the history shown, newest first (open ones included), at most 50.
    pub incidents: Vec<PublicIncident>,
    /// Maintenance windows not yet completed, and those of the last week.
    pub maintenances: Vec<Maintenance>,
    /// Days of history shown.
    pub history_days: u32,
}
