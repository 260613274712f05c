//! Picking the database and the destinations an operation works on, from the context.

use std::path::PathBuf;
use std::sync::Arc;

use ops_core::Context;
use ops_core::config::DatabaseConfig;
use ops_core::ports::{Database, ObjectStore};

use crate::{Error, Result};

/// The database a command names (`--database`), or the only one, or `main`
/// ([`Context::database`]), with its configuration.
pub(crate) fn database<'a>(
    ctx: &'a Context,
    name: Option<&'a str>,
) -> Result<(&'a str, &'a DatabaseConfig, Arc<dyn Database>)> {
    let (name, adapter) = ctx.database(name)?;
    let cfg = ctx
        .config
        .databases
        .get(name)
        .ok_or_else(|| Error::internal(format!("database {name} is wired but not configured")))?;
    Ok((name, cfg, Arc::clone(adapter)))
}

/// The config name of the database a caller names (`None`: the only one, or `main`),
/// checked against the configuration.
///
/// # Errors
/// As [`Context::database`]: `InvalidInput` when it is not configured, or none is named and
/// the choice is ambiguous.
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
pub fn local_dir(ctx: &Context) -> Option<PathBuf> {
    let storage = ctx.config.storage.as_ref()?;
    storage.local_dir.clone().or_else(|| match storage.location() {
        Ok(ops_core::config::StorageLocation::Dir(d)) => Some(d),
        _ => None,
    })
}
