//! `ops-probes`: probes and first-responder triage.
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
//! [`logs`] (error lines in recent container logs). Network probes: [`http`] (timed phases),
//! [`tcp`], [`dns`], [`alertmanager`], [`status_page`]. [`tls`] wraps `ops-tls`, [`backup`]
//! checks the age of the newest backup, and [`triage`](mod@triage) runs them all and rates the result.
//! The checks the runbooks still ran by hand: [`sql`] (a read-only query's value), [`exec`]
//! (a command in a container, and HTTP/TCP checks from inside one), [`log_analysis`]
//! (pattern bursts, an access log's top clients), [`ports`] (who holds a port), [`smtp`]
//! (a mail server up to the login), [`prometheus`] (scrape targets), [`celery`] (workers and
//! queues), [`systemd`] (units and timers).

pub mod alertmanager;
pub mod backup;
pub mod celery;
pub mod container;
pub mod dns;
pub mod exec;
pub mod host;
pub mod http;
pub mod log_analysis;
pub mod logs;
pub mod named;
mod net;
pub mod ports;
pub mod postgres;
pub mod prometheus;
pub mod redis;
mod report;
pub mod smtp;
pub mod sql;
pub mod status_page;
mod support;
pub mod systemd;
pub mod tcp;
pub mod tls;
pub mod triage;

pub use net::NetOptions;
pub use report::{Observation, ProbeKind, ProbeReport, Problem, Unit};
pub use support::evidence_line;
pub use triage::{Incident, TriageOptions, TriageReport, triage};
