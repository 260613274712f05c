//! `ops-core`: the ports, shared vocabulary, configuration and real adapters of the `ops` SDK.
//!
//! Every capability of `ops` (probes, backups, TLS checks, performance analysis) talks to the
//! outside world only through the ports in [`ports`]: [`ContainerRuntime`](ports::ContainerRuntime),
//! [`Database`](ports::Database), [`Cache`](ports::Cache), [`ObjectStore`](ports::ObjectStore)
//! and [`Notifier`](ports::Notifier). Real adapters (Docker, PostgreSQL, Redis, S3, the local
//! filesystem, webhooks) sit behind cargo features in [`adapters`]; [`Context`] wires them
//! from an [`OpsConfig`](config::OpsConfig).
//!
//! ```
//! use std::collections::BTreeMap;
//! use ops_core::config::{resolve, ConfigSource};
//!
//! let env = BTreeMap::from([("PGPASS".to_owned(), "s3cret".to_owned())]);
//! let text = "[databases.main]\nurl = \"postgres://app:${PGPASS}@localhost:5432/app\"\n";
//! let config = resolve(ConfigSource { file_name: "ops.toml", text: Some(text), env: &env }).unwrap();
//! // Secrets never print.
//! assert_eq!(config.databases["main"].url.to_string(), "postgres://app:***@localhost:5432/app");
//! ```

pub mod adapters;
pub mod audit;
pub mod config;
mod context;
pub mod diskspace;
pub mod error;
pub mod exit;
pub mod ids;
pub mod limits;
pub mod ports;
pub mod private_fs;
pub mod releases;
pub mod schedule;
pub mod secret;
pub mod stack;
pub mod systemd;
pub mod units;
pub mod vocab;

pub use context::{Context, object_store};
pub use error::{Error, ErrorKind, Result};
pub use secret::{Secret, SecretUrl, WebhookUrl};
pub use vocab::{Finding, Runbook, Severity, Status};
