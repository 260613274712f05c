//! Shared vocabulary of every capability: [`Status`], [`Severity`], [`Finding`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// The outcome of a check. Ordered from best to worst, so `max()` gives the overall status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works as expected.
    Ok,
    /// The check could not tell (for example: the target did not answer the question asked).
    Unknown,
    /// Works, but a threshold is crossed; act soon.
    Warn,
    /// Broken, or about to be; act now.
    Critical,
}

impl Status {
    /// A stable lowercase name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unknown => "unknown",
            Self::Warn => "warn",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Incident severity, as the runbooks classify it. `P1` is the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// Complete outage or data at risk: respond within 15 minutes.
    P1,
    /// Major feature broken: respond within 1 hour.
    P2,
    /// Degraded: respond within 4 hours.
    P3,
    /// Minor, workaround exists: next business day.
    P4,
}

impl Severity {
    /// The response time the runbooks attach to this severity.
    #[must_use]
    pub const fn response_time(self) -> &'static str {
        match self {
            Self::P1 => "15 minutes",
            Self::P2 => "1 hour",
            Self::P3 => "4 hours",
            Self::P4 => "next business day",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::P1 => "P1",
            Self::P2 => "P2",
            Self::P3 => "P3",
            Self::P4 => "P4",
        })
    }
}

/// One thing a check found, with the evidence a person needs to believe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What the finding is about (`container:api`, `database:main`).
    pub subject: String,
    /// How bad it is.
    pub status: Status,
    /// One line a person can read.
    pub message: String,
    /// Raw evidence: log lines, response snippets, command output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_status_wins() {
        let all = [Status::Ok, Status::Critical, Status::Warn, Status::Unknown];
        assert_eq!(all.iter().max(), Some(&Status::Critical));
        assert!(Status::Warn > Status::Unknown);
    }

    #[test]
    fn p1_is_most_urgent() {
        assert!(Severity::P1 < Severity::P4);
        assert_eq!(Severity::P1.response_time(), "15 minutes");
    }
}
