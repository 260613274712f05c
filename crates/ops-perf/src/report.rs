//! The report of [`analyze`](super::analyze): sections of findings, each with a verdict, its
//! evidence and a recommended action.

use chrono::{DateTime, Utc};
use ops_core::Status;
use serde::{Deserialize, Serialize};

use ops_probes::Observation;

/// What part of the stack a section covers (`--section`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    /// PostgreSQL: queries, indexes, tables, sessions.
    Pg,
    /// Redis: hit rate, memory, evictions, big keys.
    Redis,
    /// Containers: CPU and memory.
    Containers,
    /// HTTP latency percentiles.
    Http,
    /// Host disks, memory, load.
    Host,
}

impl Section {
    /// Every section, in report order.
    pub const ALL: [Self; 5] = [Self::Pg, Self::Redis, Self::Containers, Self::Http, Self::Host];

    /// The stable name (`pg`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pg => "pg",
            Self::Redis => "redis",
            Self::Containers => "containers",
            Self::Http => "http",
            Self::Host => "host",
        }
    }
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Section {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s || (s == "postgres" && *x == Self::Pg))
            .ok_or_else(|| format!("unknown section {s:?}: one of pg, redis, containers, http, host"))
    }
}

/// One finding: what was looked at, the verdict, the numbers, and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PerfFinding {
    /// What kind of check (`slow-query`, `index-candidate`, `unused-index`, `duplicate-index`,
    /// `invalid-index`, `dead-tuples`, `wraparound`, `sequence`, `cache-hit`, `long-running`,
    /// `idle-in-transaction`, `idle-connection`, `connections`, `blocked`, `hit-rate`, `memory`,
    /// `evictions`, `big-key`, `cpu`, `latency`, `disk`, `load`, `extension-missing`, …).
    pub check: String,
    /// `ok`, `warn` or `critical` against the configured thresholds (`unknown` when it could
    /// not be measured).
    pub verdict: Status,
    /// What it is about: a table, an index, a query id, a pid, a container, an endpoint.
    pub subject: String,
    /// One line a person reads.
    pub message: String,
    /// The numbers behind the verdict, with units.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Observation>,
    /// Evidence text: the query (shortened, without secrets), the index definition, the blocker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// What to do about it, when anything (a SQL statement or an `opsctl` command).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl PerfFinding {
    /// A probe's [`Problem`](ops_probes::Problem) as the verdict of check `check` on
    /// `subject`, with its evidence.
    #[must_use]
    pub fn of(check: &str, subject: &str, p: &ops_probes::Problem) -> Self {
        p.evidence.iter().fold(Self::new(check, p.status, subject, p.message.clone()), |f, e| f.evidence(e.clone()))
    }

    /// A finding without values, evidence or action.
    #[must_use]
    pub fn new(check: &str, verdict: Status, subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            check: check.to_owned(),
            verdict,
            subject: subject.into(),
            message: message.into(),
            values: Vec::new(),
            evidence: Vec::new(),
            action: None,
        }
    }

    /// Adds a value.
    #[must_use]
    pub fn value(mut self, v: Observation) -> Self {
        self.values.push(v);
        self
    }

    /// Adds evidence.
    #[must_use]
    pub fn evidence(mut self, e: impl Into<String>) -> Self {
        self.evidence.push(e.into());
        self
    }

    /// Sets the recommended action.
    #[must_use]
    pub fn action(mut self, a: impl Into<String>) -> Self {
        self.action = Some(a.into());
        self
    }
}

/// The statistics window a section's cumulative numbers cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "since", rename_all = "kebab-case")]
pub enum Window {
    /// Since the server (or its statistics) started: no earlier snapshot.
    ServerStart {
        /// When the counters started, when known.
        at: Option<DateTime<Utc>>,
    },
    /// Since the previous analysis, whose snapshot the state directory kept.
    PreviousRun {
        /// When that run took its snapshot.
        at: DateTime<Utc>,
    },
}

/// One section of one target (`pg` of `postgres:main`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SectionReport {
    /// Which section.
    pub section: Section,
    /// What it analysed (`postgres:main`, `redis:cache`, `containers`, `http:api`, `host`).
    pub target: String,
    /// Worst verdict of the findings.
    pub status: Status,
    /// What cumulative numbers cover, where that matters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// The findings, worst first.
    pub findings: Vec<PerfFinding>,
    /// Why the section could not be analysed (then `status` is `unknown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Queries or commands the section sent (the analysis stays O(1) in the number of tables).
    #[serde(default)]
    pub queries: u32,
    /// How long the section took, milliseconds.
    pub duration_ms: u64,
}

impl SectionReport {
    /// An empty section about `target`.
    #[must_use]
    pub fn new(section: Section, target: impl Into<String>) -> Self {
        Self {
            section,
            target: target.into(),
            status: Status::Ok,
            window: None,
            findings: Vec::new(),
            error: None,
            queries: 0,
            duration_ms: 0,
        }
    }

    /// A section that could not run.
    #[must_use]
    pub fn failed(section: Section, target: impl Into<String>, error: impl Into<String>) -> Self {
        let mut s = Self::new(section, target);
        s.status = Status::Unknown;
        s.error = Some(error.into());
        s
    }

    /// Sorts the findings worst first and sets the status.
    #[must_use]
    pub fn finish(mut self, took: std::time::Duration) -> Self {
        self.findings.sort_by(|a, b| b.verdict.cmp(&a.verdict).then(a.check.cmp(&b.check)));
        if self.error.is_none() {
            self.status = self.findings.iter().map(|f| f.verdict).max().unwrap_or(Status::Ok);
        }
        self.duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        self
    }
}

/// What [`analyze`](super::analyze) found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PerfReport {
    /// Worst verdict of any section.
    pub status: Status,
    /// When the analysis started.
    pub started_at: DateTime<Utc>,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
    /// The sections, in [`Section::ALL`] order.
    pub sections: Vec<SectionReport>,
}

/// `critical` over `critical`, `warn` over `warn`, else `ok` (the runbooks' "> 400 ms").
pub(crate) fn over(value: f64, warn: f64, critical: f64) -> Status {
    if value > critical {
        Status::Critical
    } else if value > warn {
        Status::Warn
    } else {
        Status::Ok
    }
}
