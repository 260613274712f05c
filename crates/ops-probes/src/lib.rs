//! `ops-probes`: probes, first-responder triage and performance analysis.
//!
//! Every probe returns a [`ProbeReport`]: a status, a one-line message, measured
//! [`Observation`]s with units, and [`Problem`]s, each naming the [`Runbook`](ops_core::Runbook)
//! that applies and carrying its first evidence. A failed check is a report, never an `Err`,
//! and every probe has a timeout. Probes reach the outside world only through the ports of
//! `ops-core` (and plain sockets for network checks), so they are tested against real services
//! and mockable in unit tests.

pub mod alertmanager;
pub mod backup;
pub mod dns;
pub mod http;
mod net;
mod report;
pub mod status_page;
pub mod tcp;
pub mod tls;
pub mod triage;

pub use net::NetOptions;
pub use report::{Observation, ProbeKind, ProbeReport, Problem, Unit};
pub use triage::{Incident, TriageOptions, TriageReport, triage};
