//! Picking the database and the destinations an operation works on, from the context.

use std::path::PathBuf;
use std::sync::Arc;

use ops_core::Context;
use ops_core::config::DatabaseConfig;
use ops_core::ports::{Database, ObjectStore};

use crate::{Error, Result};

/// The database a command names (`--database`), or the only one, or `main`.
pub(crate) fn database<'a>(
    ctx: &'a Context,
    name: Option<&'a str>,
) -> Result<(&'a str, &'a DatabaseConfig, Arc<dyn Database>)> {
    let config = &ctx.config.databases;
    let name: &str = match name {
        Some(n) => n,
        None if config.len() == 1 => config.keys().next().map(String::as_str).unwrap_or_default(),
        None if config.contains_key("main") => "main",
        None if config.is_empty() => {
            return Err(Error::invalid_input("no database configured: add [databases.main] or set DATABASE_URL"));
        }
        None => {
            let names: Vec<&str> = config.keys().map(String::as_str).collect();
            return Err(Error::invalid_input(format!("several databases configured ({}): name one", names.join(", "))));
        }
    };
    let (key, cfg) = config
        .get_key_value(name)
        .ok_or_else(|| Error::invalid_input(format!("no database named {name:?} in the configuration")))?;
    let adapter = ctx
        .databases
        .get(name)
        .cloned()
        .ok_or_else(|| Error::internal(format!("database {name} is configured but not wired")))?;
    Ok((key.as_str(), cfg, adapter))
}

/// The config name of the database a caller names (`None`: the only one, or `main`),
/// checked against the configuration.
///
/// # Errors
/// `InvalidInput` when it is not configured, or none is named and the choice is ambiguous.
pub fn database_name(ctx: &Context, name: Option<&str>) -> Result<String> {
    database(ctx, name).map(|(n, _, _)| n.to_owned())
}

/// Every configured destination: the primary store first, then the local directory.
pub(crate) fn stores(ctx: &Context) -> Result<Vec<Arc<dyn ObjectStore>>> {
    let stores: Vec<Arc<dyn ObjectStore>> = ctx.storage.iter().chain(ctx.local_storage.iter()).cloned().collect();
    if stores.is_empty() {
        return Err(Error::invalid_input("no backup storage configured: add [storage] with a url (or set S3_BUCKET)"));
    }
    Ok(stores)
}

/// The local backup directory, where the lock file lives.
pub(crate) fn local_dir(ctx: &Context) -> Option<PathBuf> {
    let storage = ctx.config.storage.as_ref()?;
    storage.local_dir.clone().or_else(|| match storage.location() {
        Ok(ops_core::config::StorageLocation::Dir(d)) => Some(d),
        _ => None,
    })
}
