//! `ops-probes`: probes, first-responder triage and performance analysis.
//!
//! Every probe returns a [`ProbeReport`]: a status, a one-line message, measured
//! [`Observation`]s with units, and [`Problem`]s, each naming the [`Runbook`](ops_core::Runbook)
//! that applies and carrying its first evidence. A failed check is a report, never an `Err`,
//! and every probe has a timeout. Probes reach the outside world only through the ports of
//! `ops-core` (and plain sockets for network checks), so they are tested against real services
//! and mockable in unit tests.
//!
//! Local probes: [`container`] (the engine and every container of a Compose project),
//! [`postgres`], [`redis`] (the cache and its queues), [`host`] (disks, memory, load) and
//! [`logs`] (error lines in recent container logs).

pub mod container;
pub mod host;
pub mod logs;
pub mod postgres;
pub mod redis;
mod report;
mod support;

pub use report::{Observation, ProbeKind, ProbeReport, Problem, Unit};
