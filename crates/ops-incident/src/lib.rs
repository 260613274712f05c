//! `ops-incident`: incidents built from evidence. Each incident is a header and an
//! append-only log in the state store, gathered from what this project already sees: triage
//! findings and their consequences, checks changing status, severity changes by the
//! escalation rules, alerts, runbook runs, actions and restores from the audit log, and notes
//! people type. People hear through the seeds' messages (initial, update, resolved, and a
//! reminder when an update is overdue), and the post-incident report is built from the log.
//!
//! - [`model`]: the incident, its events, its statuses.
//! - [`Incidents`]: the desk: open, note, update, acknowledge, resolve, and
//!   [`Incidents::observe`] a triage report.
//! - [`comms`]: the message templates (MiniJinja, replaceable) and their delivery.
//! - [`report`]: the post-incident report (Markdown or JSON).
//! - [`alerts`]: Alertmanager's alerts, one incident per alert group.
//!
//! ```
//! use std::sync::Arc;
//! use ops_incident::{comms::Templates, report};
//!
//! let templates = Templates::built_in();
//! assert_eq!(templates.sources["initial"], "built-in");
//! assert_eq!(report::md("a | <b>"), "a \\| &lt;b&gt;");
//! ```

pub mod alerts;
pub mod comms;
pub mod model;
mod observe;
pub mod record;
pub mod report;

pub use model::{Event, EventKind, Incident, IncidentRecord, IncidentStatus, PublicStatus};
pub use observe::{CHECK_STATUS, CheckState, ObserveReport, check_states};
pub use record::{IncidentOptions, Incidents, OpenRequest};

#[cfg(test)]
mod tests;
