//! The runbooks a stack has: the built-in ones (the seeds' runbooks, written generically:
//! names and endpoints come from parameters and the configuration) and the files of
//! `runbooks.dir`, where a file with a built-in's name replaces it.

use std::collections::BTreeMap;
use std::path::Path;

use ops_core::{Error, Result};

use crate::format::{LoadError, Runbook, parse};

/// The built-in runbooks: (file name, text).
pub const BUILT_IN: &[(&str, &str)] = &[
    ("database-down.md", include_str!("../runbooks/database-down.md")),
    ("container-down.md", include_str!("../runbooks/container-down.md")),
    ("crash-loop.md", include_str!("../runbooks/crash-loop.md")),
    ("oom-killed.md", include_str!("../runbooks/oom-killed.md")),
    ("container-unhealthy.md", include_str!("../runbooks/container-unhealthy.md")),
    ("api-down.md", include_str!("../runbooks/api-down.md")),
    ("indexer-down.md", include_str!("../runbooks/indexer-down.md")),
    ("proxy-down.md", include_str!("../runbooks/proxy-down.md")),
    ("tls-expiring.md", include_str!("../runbooks/tls-expiring.md")),
    ("cache-down.md", include_str!("../runbooks/cache-down.md")),
    ("cache-full.md", include_str!("../runbooks/cache-full.md")),
    ("cache-degraded.md", include_str!("../runbooks/cache-degraded.md")),
    ("slow-responses.md", include_str!("../runbooks/slow-responses.md")),
    ("slow-queries.md", include_str!("../runbooks/slow-queries.md")),
    ("connections-exhausted.md", include_str!("../runbooks/connections-exhausted.md")),
    ("memory-pressure.md", include_str!("../runbooks/memory-pressure.md")),
    ("high-load.md", include_str!("../runbooks/high-load.md")),
    ("disk-full.md", include_str!("../runbooks/disk-full.md")),
    ("queue-backlog.md", include_str!("../runbooks/queue-backlog.md")),
    ("upstream-incident.md", include_str!("../runbooks/upstream-incident.md")),
    ("full-stack-restart.md", include_str!("../runbooks/full-stack-restart.md")),
    ("restore-database.md", include_str!("../runbooks/restore-database.md")),
    ("backup-stale.md", include_str!("../runbooks/backup-stale.md")),
    ("unit-failed.md", include_str!("../runbooks/unit-failed.md")),
    ("docker-down.md", include_str!("../runbooks/docker-down.md")),
];

/// Runbook files read from a directory at most.
pub const MAX_FILES: usize = 500;

/// Every runbook by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    runbooks: BTreeMap<String, Runbook>,
}

impl Catalog {
    /// The built-in runbooks.
    ///
    /// # Errors
    /// A built-in that does not load (a bug this crate's tests catch).
    pub fn built_in() -> Result<Self> {
        let mut runbooks = BTreeMap::new();
        for (file, text) in BUILT_IN {
            let rb = parse(&format!("built-in:{file}"), text)?;
            runbooks.insert(rb.name.clone(), rb);
        }
        Ok(Self { runbooks })
    }

    /// The built-ins, then the `*.md` files of `dir` (when given), each replacing a built-in
    /// of the same name.
    ///
    /// # Errors
    /// `InvalidInput` naming the file, line and step of the first file that does not load, or
    /// two files with one name; `Unavailable` when the directory cannot be read.
    pub fn load(dir: Option<&Path>) -> Result<Self> {
        let mut catalog = Self::built_in()?;
        if let Some(dir) = dir {
            let mut seen: BTreeMap<String, String> = BTreeMap::new();
            for rb in read_dir(dir).map_err(|errors| match errors.into_iter().next() {
                Some(Ok(e)) => Error::from(e),
                Some(Err(e)) => e,
                None => Error::internal("no error"),
            })? {
                if let Some(first) = seen.insert(rb.name.clone(), rb.source.clone()) {
                    return Err(Error::invalid_input(format!(
                        "{}: runbook {} is also defined in {first}",
                        rb.source, rb.name
                    )));
                }
                catalog.runbooks.insert(rb.name.clone(), rb);
            }
        }
        Ok(catalog)
    }

    /// One runbook by name.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn get(&self, name: &str) -> Result<&Runbook> {
        self.runbooks
            .get(name)
            .ok_or_else(|| Error::not_found(format!("no runbook named {name:?} (opsctl runbook list shows them)")))
    }

    /// Every runbook, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Runbook> {
        self.runbooks.values()
    }

    /// The runbook for a triage runbook or alert name: the one of that name, else the first
    /// (by name) that applies to it.
    #[must_use]
    pub fn for_incident(&self, name: &str) -> Option<&Runbook> {
        self.runbooks.get(name).or_else(|| self.runbooks.values().find(|r| r.applies_to.iter().any(|a| a == name)))
    }
}

/// The runbook an incident names and how to run it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Remedy {
    /// The runbook.
    pub runbook: String,
    /// Whether it may act without a confirmation (`auto`).
    pub auto: bool,
    /// The parameters the incident fills.
    pub params: std::collections::BTreeMap<String, String>,
    /// Parameters it needs that the incident does not give.
    pub missing: Vec<String>,
    /// `opsctl runbook run database-down --param database=main --apply`.
    pub command: String,
    /// What started it, for [`crate::RunOptions::incident`].
    pub incident: crate::run::IncidentRef,
}

impl Catalog {
    /// The runbook for an incident of triage (its runbook, its check and the checks it takes
    /// down), with the parameters the incident gives: a `database` from `postgres:NAME` (also
    /// when the incident is the database's container), a `service` from `container:NAME`, a
    /// `cache` from `redis:NAME`, a `check` from the check itself.
    #[must_use]
    pub fn remedy(
        &self,
        runbook: &str,
        check: &str,
        related: &[&str],
        severity: Option<ops_core::Severity>,
    ) -> Option<Remedy> {
        let rb = self.for_incident(runbook)?;
        let mut params = std::collections::BTreeMap::new();
        let mut missing = Vec::new();
        for (name, p) in &rb.params {
            let from = |prefixes: &[&str]| {
                std::iter::once(check).chain(related.iter().copied()).find_map(|c| {
                    let (kind, rest) = c.split_once(':')?;
                    prefixes.contains(&kind).then(|| rest.to_owned())
                })
            };
            let value = match p.kind {
                crate::format::ParamKind::Database => from(&["postgres"]),
                crate::format::ParamKind::Cache => from(&["redis", "queue"]),
                crate::format::ParamKind::Service => from(&["container", "logs"]),
                crate::format::ParamKind::Unit => from(&["systemd"]),
                crate::format::ParamKind::Check
                    if p.of.as_deref().is_none_or(|of| check.split(':').next() == Some(of)) =>
                {
                    Some(check.to_owned())
                }
                _ => None,
            };
            match (value, &p.default) {
                (Some(v), _) => {
                    params.insert(name.clone(), v);
                }
                (None, Some(_)) => {}
                (None, None)
                    if matches!(p.kind, crate::format::ParamKind::Database | crate::format::ParamKind::Cache) => {}
                (None, None) => missing.push(name.clone()),
            }
        }
        let mut command = format!("opsctl runbook run {}", rb.name);
        for (k, v) in &params {
            command.push_str(&format!(" --param {k}={v}"));
        }
        for k in &missing {
            command.push_str(&format!(" --param {k}=…"));
        }
        command.push_str(" --apply");
        let incident = crate::run::IncidentRef { runbook: runbook.to_owned(), check: check.to_owned(), severity };
        Some(Remedy { runbook: rb.name.clone(), auto: rb.auto, params, missing, command, incident })
    }
}

/// Loads every `*.md` of `dir`, sorted by file name; all the errors, not only the first
/// (`opsctl runbook check` lists them).
///
/// # Errors
/// Each file's load error (`Ok`) or the directory's read error (`Err`).
pub fn read_dir(dir: &Path) -> std::result::Result<Vec<Runbook>, Vec<std::result::Result<LoadError, Error>>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| vec![Err(Error::unavailable(format!("runbooks.dir {}: {e}", dir.display())))])?;
    let mut paths: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md") && p.is_file())
        .collect();
    paths.sort();
    if paths.len() > MAX_FILES {
        return Err(vec![Err(Error::invalid_input(format!("runbooks.dir holds more than {MAX_FILES} files")))]);
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let shown = path.display().to_string();
        let text = match std::fs::metadata(&path) {
            Ok(m) if m.len() > crate::format::MAX_FILE_BYTES as u64 => {
                errors.push(Ok(LoadError {
                    file: shown,
                    line: 1,
                    step: None,
                    message: "a runbook file is at most 256 KiB".to_owned(),
                }));
                continue;
            }
            _ => match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(Err(Error::unavailable(format!("{shown}: {e}"))));
                    continue;
                }
            },
        };
        match parse(&shown, &text) {
            Ok(rb) => out.push(rb),
            Err(e) => errors.push(Ok(e)),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}
