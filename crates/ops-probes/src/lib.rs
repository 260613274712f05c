//! `ops-probes`: probes, first-responder triage and performance analysis.
//!
//! Each probe will take a [`Context`](ops_core::Context) and return a report with a
//! [`Status`](ops_core::Status) and evidence; a failed check is a report, never an `Err`.
//! This crate is part of the workspace skeleton; its probes arrive with the probes and
//! triage issue and build only on the ports of `ops-core`.
