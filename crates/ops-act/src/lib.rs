//! `ops-act`: guarded actions on the operated stack, the "act" step of a runbook.
//!
//! Every action is planned first ([`plan`]: exactly the targets it would touch, read from the
//! live state, nothing changed) and applied only when asked ([`apply`]): each target is
//! re-checked at the moment of acting (a pid that now belongs to another session is skipped)
//! and gets one record in the audit log ([`ops_core::audit`]) before the next one runs.
//!
//! [`pg`]: terminate a backend, kill idle sessions, cancel slow queries, `VACUUM`.
//! [`services`]: Redis `maxmemory-policy`, restarting a container with its dependents in order.
//! `disk`: freeing disk space item by item, with estimates (`disk-clean`).
//! New actions go here, as a variant of [`Action`] with a plan and an apply in the module of
//! the system they touch.

use std::collections::BTreeMap;

use ops_core::{Context, Error, Result};
use serde::{Deserialize, Serialize};

mod disk;
pub mod pg;
mod rollback;
pub mod services;
mod systemd;

pub use disk::{DEFAULT_JOURNAL_KEEP_DAYS, DEFAULT_LOGS_OVER_BYTES, DiskItem, estimate as disk_estimate};
use ops_core::audit::Audit;

/// What to do. Serialized with an `action` tag, the body of `POST /api/v1/actions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "action", rename_all = "kebab-case", rename_all_fields = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// Terminate one backend (`pg_terminate_backend`).
    Terminate {
        /// Config name of the database (default: the only one, or `main`).
        #[serde(default)]
        database: Option<String>,
        /// The backend's pid.
        pid: i32,
    },
    /// Terminate client connections idle longer than a limit; never replication, `pg_dump`,
    /// autovacuum or this tool's own session.
    KillIdle {
        /// Config name of the database.
        #[serde(default)]
        database: Option<String>,
        /// Idle for at least this many seconds.
        older_than_secs: u64,
    },
    /// Cancel queries running longer than a limit (`pg_cancel_backend`).
    CancelSlow {
        /// Config name of the database.
        #[serde(default)]
        database: Option<String>,
        /// Running for at least this many seconds.
        longer_than_secs: u64,
    },
    /// `VACUUM` (with `ANALYZE`) a database or the given tables.
    Vacuum {
        /// Config name of the database.
        #[serde(default)]
        database: Option<String>,
        /// Also `ANALYZE`.
        #[serde(default)]
        analyze: bool,
        /// Tables (`schema.table` or `table`); every table when empty.
        #[serde(default)]
        tables: Vec<String>,
    },
    /// Redis `CONFIG SET maxmemory-policy`.
    RedisSetPolicy {
        /// Config name of the cache (default: the only one, or `main`).
        #[serde(default)]
        cache: Option<String>,
        /// `allkeys-lru`, `noeviction`, ….
        policy: String,
    },
    /// Start a stopped container (or every container of a Compose service).
    Start {
        /// Container name or Compose service.
        service: String,
    },
    /// Stop a running container (or every container of a Compose service), with the
    /// containers that depend on it first.
    Stop {
        /// Container name or Compose service.
        service: String,
        /// Also stop its running dependents (Compose `depends_on`), before it.
        #[serde(default)]
        with_dependents: bool,
    },
    /// Restart, in order, the containers that depend on a container (not the container
    /// itself), and start those that stopped (they died while it was down): RB-001's "after
    /// PostgreSQL is healthy, restart the dependent services".
    RestartDependents {
        /// Container name or Compose service.
        service: String,
    },
    /// Start every stopped service container of the stack, each after what it depends on
    /// (the full-stack restart after a reboot).
    StartStack {},
    /// Stop every running service container of the stack, each before what it depends on
    /// (the reverse of [`Action::StartStack`]: the stack down before host maintenance).
    StopStack {},
    /// Put a service back on the version before (or `to`) from the release ledger: its
    /// container recreated alike on the older image, waited for, and the version it came
    /// from put back when it does not become ready.
    Rollback {
        /// Container name or Compose service (one container).
        service: String,
        /// An image reference or image id prefix (7 or more) of a version in the ledger
        /// (default: the one before the running one).
        #[serde(default)]
        to: Option<String>,
    },
    /// Remove stopped containers and dangling images outside the operated stack
    /// (`docker system prune` that never removes a stopped service of the stack).
    EnginePrune {
        /// Only stopped containers carrying this label (`key` or `key=value`), and no image:
        /// what an operator marked disposable (CI runners, one-off jobs).
        #[serde(default)]
        label: Option<String>,
    },
    /// Free disk space item by item, each with an estimate: stopped containers outside the
    /// stack, dangling (or all unused) images the release ledger does not keep, build cache,
    /// container logs over a size, backups beyond retention, old journald files, the apt
    /// cache, and unused anonymous volumes only when asked.
    DiskClean {
        /// Only these items (default: all but volumes).
        #[serde(default)]
        only: Vec<DiskItem>,
        /// Also unused anonymous volumes (never one the stack's Compose project owns).
        #[serde(default)]
        volumes: bool,
        /// Every unused image, not only dangling ones (`docker image prune -a`).
        #[serde(default)]
        all_images: bool,
        /// Only containers, images, logs and volumes carrying this label (`key` or
        /// `key=value`).
        #[serde(default)]
        label: Option<String>,
        /// Truncate container logs larger than this many bytes (default 100 MiB).
        #[serde(default)]
        logs_over_bytes: Option<u64>,
        /// journald keeps this many days (default 3).
        #[serde(default)]
        journal_keep_days: Option<u64>,
    },
    /// `systemctl restart` of a unit configured in `[[systemd]]` (by its check name or unit),
    /// waited for until it is active again.
    RestartUnit {
        /// The `[[systemd]]` entry's name (`caddy`) or unit (`caddy.service`).
        unit: String,
    },
    /// Restart a container, and then, in order, the containers that depend on it.
    Restart {
        /// Container name or Compose service.
        service: String,
        /// Also restart its dependents (Compose `depends_on`), after it.
        #[serde(default)]
        with_dependents: bool,
    },
}

impl Action {
    /// Checks the numbers and lists a caller gave.
    ///
    /// # Errors
    /// `InvalidInput` naming the field and its limit.
    pub fn validate(&self) -> Result<()> {
        use ops_core::limits::{MAX_AGE_SECS, check_range};
        match self {
            Self::Terminate { pid, .. } => check_range("pid", *pid, 1, i32::MAX).map(drop),
            Self::KillIdle { older_than_secs, .. } => {
                check_range("older-than-secs", *older_than_secs, 1, MAX_AGE_SECS).map(drop)
            }
            Self::CancelSlow { longer_than_secs, .. } => {
                check_range("longer-than-secs", *longer_than_secs, 1, MAX_AGE_SECS).map(drop)
            }
            Self::Vacuum { tables, .. } => {
                check_range("tables", tables.len(), 0, 10_000)?;
                if tables.iter().any(|t| t.is_empty() || t.len() > 200) {
                    return Err(Error::invalid_input("tables: each name must be 1 to 200 characters"));
                }
                Ok(())
            }
            Self::RedisSetPolicy { policy, .. } => check_range("policy length", policy.len(), 1, 64).map(drop),
            Self::Restart { service, .. }
            | Self::Start { service }
            | Self::Stop { service, .. }
            | Self::RestartDependents { service } => check_range("service length", service.len(), 1, 255).map(drop),
            Self::StartStack {} | Self::StopStack {} => Ok(()),
            Self::RestartUnit { unit } => check_range("unit length", unit.len(), 1, 256).map(drop),
            Self::Rollback { service, to } => {
                check_range("service length", service.len(), 1, 255)?;
                to.as_ref().map_or(Ok(()), |t| check_range("version length", t.len(), 1, 255).map(drop))
            }
            Self::EnginePrune { label } => {
                check_range("label length", label.as_deref().map_or(0, str::len), 0, 255).map(drop)
            }
            Self::DiskClean { only, label, logs_over_bytes, journal_keep_days, .. } => {
                check_range("only", only.len(), 0, DiskItem::ALL.len())?;
                check_range("label length", label.as_deref().map_or(0, str::len), 0, 255)?;
                check_range("logs-over-bytes", logs_over_bytes.unwrap_or(1 << 20), 1 << 20, 1 << 50)?;
                check_range("journal-keep-days", journal_keep_days.unwrap_or(1), 1, 3650).map(drop)
            }
        }
    }

    /// The stable name (`kill-idle`).
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Terminate { .. } => "terminate",
            Self::KillIdle { .. } => "kill-idle",
            Self::CancelSlow { .. } => "cancel-slow",
            Self::Vacuum { .. } => "vacuum",
            Self::RedisSetPolicy { .. } => "redis-set-policy",
            Self::Restart { .. } => "restart",
            Self::Start { .. } => "start",
            Self::RestartDependents { .. } => "restart-dependents",
            Self::Stop { .. } => "stop",
            Self::StartStack {} => "start-stack",
            Self::StopStack {} => "stop-stack",
            Self::Rollback { .. } => "rollback",
            Self::EnginePrune { .. } => "engine-prune",
            Self::DiskClean { .. } => "disk-clean",
            Self::RestartUnit { .. } => "restart-unit",
        }
    }
}

/// One thing an action would touch, with what a person needs to decide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Target {
    /// `backend:4242`, `table:public.orders`, `redis:main`, `container:api`.
    pub id: String,
    /// The facts: user, application, state, age and query of a backend; size of a table;
    /// current policy; container state.
    pub details: BTreeMap<String, String>,
}

/// What an action would do; nothing has run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionPlan {
    /// The action asked for.
    pub action: Action,
    /// Exactly what would be touched, in order. Empty: nothing to do.
    pub targets: Vec<Target>,
    /// One line: `terminate 2 idle connections older than 10 min on main`.
    pub summary: String,
    /// What was left out on purpose (replication, `pg_dump`, our own session) and other notes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What applying one target did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Outcome {
    /// The target's id.
    pub target: String,
    /// Whether it was done.
    pub ok: bool,
    /// `ok`, `skipped: …` (the target changed since the plan) or the error.
    pub result: String,
    /// State before.
    pub before: serde_json::Value,
    /// State after.
    pub after: serde_json::Value,
}

/// The result of [`apply`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionReport {
    /// The plan that was applied.
    pub plan: ActionPlan,
    /// One outcome per target, in order.
    pub outcomes: Vec<Outcome>,
    /// Where the audit entries went.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub audit_log: std::path::PathBuf,
}

impl ActionReport {
    /// Every target done.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.outcomes.iter().all(|o| o.ok)
    }
}

/// Plans an action: reads the current state, changes nothing.
///
/// # Errors
/// `NotFound`/`InvalidInput` for an unknown database, cache or container or a bad argument;
/// `Unavailable` when the system cannot be read.
pub async fn plan(ctx: &Context, action: &Action) -> Result<ActionPlan> {
    action.validate()?;
    match action {
        Action::Terminate { .. } | Action::KillIdle { .. } | Action::CancelSlow { .. } | Action::Vacuum { .. } => {
            crate::pg::plan(ctx, action).await
        }
        Action::Rollback { service, to } => crate::rollback::plan(ctx, action, service, to.as_deref()).await,
        Action::DiskClean { .. } => crate::disk::plan(ctx, action).await,
        Action::RestartUnit { unit } => crate::systemd::plan(ctx, action, unit).await,
        _ => crate::services::plan(ctx, action).await,
    }
}

/// Applies a plan, target by target, re-checking each against the live state first (a pid
/// that now belongs to another session is skipped), appending one audit entry per target.
/// The audit log is opened before anything runs: no record, no action.
///
/// # Errors
/// `Unavailable` when the audit log cannot be written; errors of single targets are outcomes.
pub async fn apply(ctx: &Context, plan: &ActionPlan, actor: &str) -> Result<ActionReport> {
    let audit = Audit::open(&ctx.config, Some(actor))?;
    let outcomes = match &plan.action {
        Action::Terminate { .. } | Action::KillIdle { .. } | Action::CancelSlow { .. } | Action::Vacuum { .. } => {
            crate::pg::apply(ctx, plan, &audit).await?
        }
        Action::Rollback { .. } => crate::rollback::apply(ctx, plan, &audit).await?,
        Action::DiskClean { .. } => crate::disk::apply(ctx, plan, &audit).await?,
        Action::RestartUnit { .. } => crate::systemd::apply(ctx, plan, &audit).await?,
        _ => crate::services::apply(ctx, plan, &audit).await?,
    };
    Ok(ActionReport { plan: plan.clone(), outcomes, audit_log: audit.log().path().to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_as_the_api_sends_them() {
        let a: Action = serde_json::from_str(r#"{"action": "kill-idle", "older-than-secs": 600}"#).unwrap();
        assert_eq!(a, Action::KillIdle { database: None, older_than_secs: 600 });
        let a: Action = serde_json::from_str(r#"{"action": "restart", "service": "api"}"#).unwrap();
        assert_eq!(a, Action::Restart { service: "api".into(), with_dependents: false });
        assert!(serde_json::from_str::<Action>(r#"{"action": "drop-database"}"#).is_err());
        assert!(serde_json::from_str::<Action>(r#"{"action": "terminate", "pid": 1, "force": true}"#).is_err());
    }
}
