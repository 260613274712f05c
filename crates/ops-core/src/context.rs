//! [`Context`]: the adapters a library call works with, wired from the configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::Result;
use crate::config::{OpsConfig, StorageLocation};
use crate::ports::{Cache, ContainerRuntime, Database, DatabaseConnector, HttpClient, Notifier, ObjectStore};

/// Everything a capability needs to reach the operated stack: the config and one adapter per
/// configured system, as trait objects so tests can swap in mocks.
#[derive(Clone)]
pub struct Context {
    /// The resolved configuration.
    pub config: Arc<OpsConfig>,
    /// The container engine.
    pub containers: Option<Arc<dyn ContainerRuntime>>,
    /// Databases by config name.
    pub databases: BTreeMap<String, Arc<dyn Database>>,
    /// Caches by config name.
    pub caches: BTreeMap<String, Arc<dyn Cache>>,
    /// The primary backup destination (`storage.url`).
    pub storage: Option<Arc<dyn ObjectStore>>,
    /// The optional second destination (`storage.local-dir`).
    pub local_storage: Option<Arc<dyn ObjectStore>>,
    /// Notification destinations.
    pub notifiers: Vec<Arc<dyn Notifier>>,
    /// HTTP client for the stack's health endpoints.
    pub http: Option<Arc<dyn HttpClient>>,
    /// Makes database adapters for servers outside the config (DR drills).
    pub connector: Option<Arc<dyn DatabaseConnector>>,
    /// The durable state (runs, budgets, approvals); opened by the binaries with
    /// [`Context::open_state`] for the calls that need it.
    pub state: Option<Arc<dyn crate::ports::StateStore>>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("containers", &self.containers.is_some())
            .field("databases", &self.databases.keys().collect::<Vec<_>>())
            .field("caches", &self.caches.keys().collect::<Vec<_>>())
            .field("storage", &self.storage.as_ref().map(|s| s.location()))
            .field("local_storage", &self.local_storage.as_ref().map(|s| s.location()))
            .field("notifiers", &self.notifiers.iter().map(|n| n.target()).collect::<Vec<_>>())
            .field("state", &self.state.as_ref().map(|s| s.location()))
            .finish_non_exhaustive()
    }
}

impl Context {
    /// The database a caller names, or else the only one configured, or else `main`: its
    /// config name and its adapter. The one rule every capability uses to pick a database.
    ///
    /// # Errors
    /// `InvalidInput` for a name that is not configured (a request's parameter, not a
    /// resource of its path), and when none is named and none or several (without `main`) are
    /// configured; `Internal` when it is configured but no adapter was wired for it.
    pub fn database(&self, name: Option<&str>) -> Result<(&str, &Arc<dyn Database>)> {
        pick(&self.databases, self.config.databases.keys(), name, "database", "databases")
    }

    /// The cache a caller names, or else the only one configured, or else `main`, by the same
    /// rule as [`Context::database`].
    ///
    /// # Errors
    /// As [`Context::database`].
    pub fn cache(&self, name: Option<&str>) -> Result<(&str, &Arc<dyn Cache>)> {
        pick(&self.caches, self.config.caches.keys(), name, "cache", "caches")
    }

    /// A context with no adapters; fill the fields you need (tests, embedding).
    #[must_use]
    pub fn empty(config: OpsConfig) -> Self {
        Self {
            config: Arc::new(config),
            containers: None,
            databases: BTreeMap::new(),
            caches: BTreeMap::new(),
            storage: None,
            local_storage: None,
            notifiers: Vec::new(),
            http: None,
            connector: None,
            state: None,
        }
    }

    /// The state store, or why there is none.
    ///
    /// # Errors
    /// `Internal` when it was not opened (a wiring bug of the caller).
    pub fn state(&self) -> Result<&Arc<dyn crate::ports::StateStore>> {
        self.state.as_ref().ok_or_else(|| crate::Error::internal("the state store was not opened (state.url)"))
    }

    /// Opens `state.url` (connects, creates the SQLite file, migrates) into [`Context::state`].
    ///
    /// # Errors
    /// As [`crate::adapters::state::SqlStateStore::open`].
    #[cfg(feature = "state")]
    pub async fn open_state(&mut self) -> Result<()> {
        let store = crate::adapters::state::SqlStateStore::open(&self.config.state.url).await?;
        self.state = Some(Arc::new(store));
        Ok(())
    }

    /// Wires the real adapters enabled by cargo features for everything `config` names.
    /// Nothing connects yet: an unreachable system shows up when it is used, as a report or
    /// an error of that call.
    ///
    /// # Errors
    /// `InvalidInput` when a configured URL cannot be used by its adapter.
    #[allow(clippy::needless_pass_by_value)] // the context keeps the config
    pub fn from_config(config: OpsConfig) -> Result<Self> {
        let mut ctx = Self::empty(config.clone());
        #[cfg(feature = "docker")]
        {
            let timeout = std::time::Duration::from_secs(config.docker.timeout_secs.unwrap_or(30));
            ctx.containers =
                Some(Arc::new(crate::adapters::docker::DockerRuntime::new(config.docker.host.as_deref(), timeout)));
        }
        #[cfg(feature = "postgres")]
        {
            ctx.connector = Some(Arc::new(crate::adapters::postgres::PostgresConnector::default()));
        }
        #[cfg(feature = "postgres")]
        for (name, db) in &config.databases {
            let mut opts = crate::adapters::postgres::PostgresOptions::new(db.url.clone());
            opts.restore_jobs = db.restore_jobs;
            let adapter = crate::adapters::postgres::PostgresDatabase::new(opts)
                .map_err(|e| e.context(format!("databases.{name}")))?;
            ctx.databases.insert(name.clone(), Arc::new(adapter));
        }
        #[cfg(feature = "redis")]
        for (name, cache) in &config.caches {
            let adapter = crate::adapters::redis::RedisCache::new(cache.url.clone(), std::time::Duration::from_secs(5))
                .map_err(|e| e.context(format!("caches.{name}")))?;
            ctx.caches.insert(name.clone(), Arc::new(adapter));
        }
        if let Some(storage) = &config.storage {
            let location = storage.location().map_err(|m| crate::Error::invalid_input(format!("storage.url {m}")))?;
            ctx.storage = Some(object_store(
                location,
                storage.endpoint.as_deref(),
                storage.region.as_deref(),
                storage.path_style,
                storage.access_key_id.as_ref(),
                storage.secret_access_key.as_ref(),
            )?);
            ctx.local_storage = storage
                .local_dir
                .as_ref()
                .map(|dir| Arc::new(crate::adapters::fs::FsStore::new(dir)) as Arc<dyn ObjectStore>);
        }
        #[cfg(feature = "webhook")]
        {
            ctx.http = Some(Arc::new(crate::adapters::webhook::ReqwestHttp::new()?));
        }
        #[cfg(feature = "webhook")]
        for hook in &config.notify.webhooks {
            use crate::adapters::webhook::{WebhookNotifier, WebhookOptions};
            let mut opts = WebhookOptions::new(hook.clone());
            opts.timeout = std::time::Duration::from_secs(config.notify.timeout_secs.max(1));
            opts.retries = config.notify.retries;
            ctx.notifiers.push(Arc::new(WebhookNotifier::new(opts)?));
        }
        Ok(ctx)
    }
}

/// The object store at a location (`storage.url`, `status.publish.url`): a directory, or an
/// S3 bucket with its endpoint, region and keys.
///
/// # Errors
/// `Unsupported` for S3 without the `s3` feature; as [`crate::adapters::s3::S3Store::new`].
#[allow(clippy::needless_pass_by_value)] // a location is made to be used once
pub fn object_store(
    location: StorageLocation,
    endpoint: Option<&str>,
    region: Option<&str>,
    path_style: Option<bool>,
    access_key_id: Option<&crate::secret::Secret>,
    secret_access_key: Option<&crate::secret::Secret>,
) -> Result<Arc<dyn ObjectStore>> {
    Ok(match location {
        StorageLocation::Dir(dir) => Arc::new(crate::adapters::fs::FsStore::new(dir)),
        #[cfg(feature = "s3")]
        StorageLocation::S3 { bucket, prefix } => {
            use crate::adapters::s3::{S3Options, S3Store};
            let mut opts = S3Options::new(
                bucket,
                access_key_id.cloned().unwrap_or_default(),
                secret_access_key.cloned().unwrap_or_default(),
            );
            opts.prefix = prefix;
            opts.endpoint = endpoint.map(str::to_owned);
            if let Some(region) = region {
                region.clone_into(&mut opts.region);
            }
            opts.path_style = path_style.unwrap_or(endpoint.is_some());
            Arc::new(S3Store::new(opts)?)
        }
        #[cfg(not(feature = "s3"))]
        StorageLocation::S3 { .. } => {
            let _ = (endpoint, region, path_style, access_key_id, secret_access_key);
            return Err(crate::Error::unsupported("an s3:// url needs ops-core built with the s3 feature"));
        }
    })
}

/// "Named, or the only one, or `main`" over the configured and the wired names.
fn pick<'c, T: ?Sized>(
    wired: &'c BTreeMap<String, Arc<T>>,
    configured: impl Iterator<Item = &'c String>,
    name: Option<&str>,
    what: &str,
    table: &str,
) -> Result<(&'c str, &'c Arc<T>)> {
    let names: std::collections::BTreeSet<&'c str> = configured.chain(wired.keys()).map(String::as_str).collect();
    let chosen: &str = match name {
        Some(n) => names
            .get(n)
            .copied()
            .ok_or_else(|| crate::Error::invalid_input(format!("no {what} named {n:?} in [{table}]")))?,
        None if names.len() == 1 => names.first().copied().unwrap_or_default(),
        None if names.contains("main") => "main",
        None if names.is_empty() => {
            return Err(crate::Error::invalid_input(format!(
                "no {what} configured: add [{table}.main]{}",
                if what == "database" { " or set DATABASE_URL" } else { "" }
            )));
        }
        None => {
            let list: Vec<&str> = names.into_iter().collect();
            return Err(crate::Error::invalid_input(format!(
                "several {table} configured ({}): name one (--{what} NAME)",
                list.join(", ")
            )));
        }
    };
    wired
        .get_key_value(chosen)
        .map(|(k, v)| (k.as_str(), v))
        .ok_or_else(|| crate::Error::internal(format!("{what} {chosen} is configured but not wired")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn ctx(names: &[&str]) -> Context {
        let mut ctx = Context::empty(OpsConfig::default());
        for n in names {
            ctx.caches.insert((*n).to_owned(), Arc::new(crate::ports::cache::MockCache::new()));
        }
        ctx
    }

    fn kind(r: Result<(&str, &Arc<dyn Cache>)>) -> ErrorKind {
        r.map(|(n, _)| n.to_owned()).unwrap_err().kind()
    }

    #[test]
    fn named_or_the_only_one_or_main() {
        assert_eq!(ctx(&["only"]).cache(None).unwrap().0, "only");
        assert_eq!(ctx(&["analytics", "main"]).cache(None).unwrap().0, "main");
        assert_eq!(ctx(&["analytics", "main"]).cache(Some("analytics")).unwrap().0, "analytics");
        assert_eq!(kind(ctx(&["a", "b"]).cache(None)), ErrorKind::InvalidInput);
        assert_eq!(kind(ctx(&[]).cache(None)), ErrorKind::InvalidInput);
        assert_eq!(kind(ctx(&["main"]).cache(Some("other"))), ErrorKind::InvalidInput);
        // Configured but not wired: a bug of the caller's wiring, not of the request.
        let mut config = OpsConfig::default();
        config.caches.insert("main".into(), crate::config::CacheConfig::default());
        assert_eq!(kind(Context::empty(config).cache(None)), ErrorKind::Internal);
    }
}
