//! Finding `pg_dump`, `psql` and `pg_restore` of the right major version.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::ports::database::PgClient;
use crate::{Error, Result};

/// Parses the major version from `pg_dump --version` (`pg_dump (PostgreSQL) 15.18 (Debian …)`).
#[must_use]
pub fn parse_client_version(output: &str) -> Option<u32> {
    let after = output.split(')').nth(1)?.trim();
    after.split(['.', ' ']).next()?.parse().ok()
}

fn candidates(major: u32, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = extra.to_vec();
    dirs.extend(
        [
            format!("/usr/lib/postgresql/{major}/bin"),
            format!("/usr/pgsql-{major}/bin"),
            format!("/opt/homebrew/opt/postgresql@{major}/bin"),
            format!("/usr/local/opt/postgresql@{major}/bin"),
            "/usr/local/pgsql/bin".to_owned(),
        ]
        .map(PathBuf::from),
    );
    let mut out: Vec<PathBuf> = dirs.into_iter().map(|d| d.join("pg_dump")).collect();
    // Last: whatever `pg_dump` the process's PATH resolves to.
    out.push(PathBuf::from("pg_dump"));
    out
}

async fn version_of(program: &Path) -> Option<(u32, String)> {
    let out = Command::new(program).arg("--version").kill_on_drop(true).output().await.ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    parse_client_version(&text).map(|m| (m, text))
}

/// Finds client programs whose major version equals `server_major`, looking in `extra_dirs`,
/// the usual per-version install directories and `PATH`.
///
/// # Errors
/// `NotFound` naming the version needed and the versions found, and how to install it.
pub async fn find_client(server_major: u32, extra_dirs: &[PathBuf]) -> Result<PgClient> {
    let mut found = Vec::new();
    for pg_dump in candidates(server_major, extra_dirs) {
        let Some((major, version)) = version_of(&pg_dump).await else { continue };
        if major == server_major {
            let sibling = |name: &str| {
                pg_dump
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from(name), |d| d.join(name))
            };
            let (psql, pg_restore) = (sibling("psql"), sibling("pg_restore"));
            if version_of(&psql).await.is_some_and(|(m, _)| m == major) {
                return Ok(PgClient { major, version, pg_dump, psql, pg_restore });
            }
        }
        found.push(format!("{major} at {}", pg_dump.display()));
    }
    let found = if found.is_empty() { "none".to_owned() } else { found.join(", ") };
    Err(Error::not_found(format!(
        "no PostgreSQL {server_major} client programs (pg_dump, psql) found (found: {found}); \
         install postgresql-client-{server_major} or set the client directory"
    )))
}
