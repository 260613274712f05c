//! `perf`: performance analysis with verdicts (the runbooks' `perf-analyze.sh`), and guarded
//! remediation (the psql one-liners that follow it), planned before applied and audited.

pub mod actions;
pub mod audit;
pub mod pg;
pub mod pg_actions;
mod report;
pub mod state;

pub use actions::{Action, ActionPlan, ActionReport, Outcome, Target};
pub use audit::{AuditEntry, AuditLog};
pub use report::{PerfFinding, PerfReport, Section, SectionReport, Window};
pub use state::StateDir;
