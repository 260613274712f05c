//! `ops-runbook`: runbooks as code. A runbook is a Markdown file a person reads during an
//! incident; its fenced `step` blocks are typed steps the engine runs:
//! check → guard → act → verify → escalate.
//!
//! - [`format`]: the file format and its checks (file, line and step in every error).
//! - [`condition`]: the `when`/`unless` language over earlier steps' results.
//! - [`catalog`]: the built-in runbooks (the seeds' runbooks, generic) and `runbooks.dir`.
//! - [`engine`]: [`plan`] (reads, changes nothing, shows the branch) and [`run`] (acts,
//!   guarded at the moment of acting, budgets in the state store, escalation to webhooks).
//! - [`run`](mod@run): the run record kept in the state store.
//! - [`alert_rules`]: a Prometheus rule file whose alerts name these runbooks.
//!
//! It builds on `ops-probes` to look, `ops-act` to change the stack, `ops-backup` and
//! `ops-tls` for their actions: the one crate that needs both looking and acting.
//!
//! ```
//! use ops_runbook::catalog::Catalog;
//!
//! let catalog = Catalog::built_in().unwrap();
//! let rb = catalog.for_incident("database-down").unwrap();
//! assert_eq!(rb.name, "database-down");
//! assert!(rb.steps.iter().any(|s| s.kind.name() == "verify"));
//! ```

pub mod actions;
pub mod alert_rules;
pub mod catalog;
pub mod condition;
pub mod engine;
pub mod format;
pub mod run;
mod template;

pub use catalog::Catalog;
pub use engine::{Approver, Decision, Observer, Preapproved, Quiet, RunOptions, StoreApprover, Unattended, plan, run};
pub use format::{Runbook, parse};
pub use run::{Run, RunStatus, StepOutcome};
