//! Shared state: the running configuration (swapped whole on reload) and the metrics.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use ops_core::Context;
use ops_core::config::{ConfigError, OpsConfig, load};

use crate::jobs::Jobs;
use crate::metrics::Metrics;

/// What every handler sees.
#[derive(Debug)]
pub struct AppState {
    running: RwLock<Arc<Running>>,
    config_path: Option<PathBuf>,
    env: BTreeMap<String, String>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Long operations started through the API.
    pub jobs: Jobs,
    /// Requests per key.
    pub(crate) rate: crate::rate::RateLimiter,
    /// Public status-page requests per client address.
    pub(crate) public_rate: crate::rate::RateLimiter,
    /// Set when the server stops: backups and drills in progress fail cleanly.
    stopping: tokio::sync::watch::Sender<bool>,
    /// The newest triage, so a burst of requests runs the checklist once.
    last_triage: SharedRun<(), ops_probes::TriageReport>,
    /// The newest TLS check, likewise.
    last_tls: SharedRun<(), TlsChecks>,
    /// The newest performance analysis and its options: a burst of requests costs each
    /// database one analysis connection, not one each.
    last_perf: SharedRun<ops_perf::PerfOptions, ops_perf::PerfReport>,
    /// The state store of `state.url`, opened on first use (and again when a reload changes
    /// the url).
    store: tokio::sync::Mutex<StoreSlot>,
    /// The newest public status page, rendered in every public form: the public routes serve
    /// it for a few seconds, so a crowd of readers costs one build and no rendering.
    page: PageCache,
}

/// The opened state store and the url it was opened from.
#[derive(Default)]
struct StoreSlot(Option<(String, Arc<dyn ops_core::ports::StateStore>)>);

impl std::fmt::Debug for StoreSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StoreSlot").field(&self.0.as_ref().map(|(_, s)| s.location())).finish()
    }
}

/// The newest result of a check run with options `K`: one run at a time, shared by every
/// caller content with a run of the same options that finished at or after its `not_before`.
#[derive(Debug)]
struct SharedRun<K, T> {
    last: tokio::sync::Mutex<Option<(std::time::Instant, K, Arc<T>)>>,
}

impl<K, T> Default for SharedRun<K, T> {
    fn default() -> Self {
        Self { last: tokio::sync::Mutex::new(None) }
    }
}

impl<K: PartialEq, T> SharedRun<K, T> {
    async fn get<Fut>(&self, key: K, not_before: std::time::Instant, run: Fut) -> Result<Arc<T>, WiringError>
    where
        Fut: Future<Output = Result<T, WiringError>>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, k, value)) = last.as_ref()
            && *at >= not_before
            && *k == key
        {
            return Ok(Arc::clone(value));
        }
        let value = Arc::new(run.await?);
        *last = Some((std::time::Instant::now(), key, Arc::clone(&value)));
        Ok(value)
    }
}

/// The status page rendered once in every public form (the HTML with the server's links, the
/// Atom feed, each Statuspage v2 document), served as bytes.
#[derive(Debug)]
pub struct PublicPage {
    /// The page.
    pub page: ops_status::StatusPage,
    /// `/status`.
    pub html: bytes::Bytes,
    /// `/status/feed.atom`.
    pub atom: bytes::Bytes,
    /// `/api/v2/{document}`, by document.
    pub json: BTreeMap<&'static str, bytes::Bytes>,
}

impl PublicPage {
    fn render(page: ops_status::StatusPage) -> Self {
        use ops_status::render;
        let links = render::Links { feed: "/status/feed.atom".to_owned(), summary: "/api/v2/summary.json".to_owned() };
        let feed = page
            .url
            .as_deref()
            .map_or_else(|| "/status/feed.atom".to_owned(), |u| format!("{}/feed.atom", u.trim_end_matches('/')));
        let json = render::JSON_DOCUMENTS
            .iter()
            .filter_map(|d| {
                render::json_document(&page, d)
                    .and_then(|v| serde_json::to_vec(&v).ok())
                    .map(|b| (*d, bytes::Bytes::from(b)))
            })
            .collect();
        Self {
            html: bytes::Bytes::from(render::html(&page, &links)),
            atom: bytes::Bytes::from(render::atom(&page, &feed)),
            json,
            page,
        }
    }
}

/// The newest [`PublicPage`] and when it was built; one builder at a time; the last failure.
#[derive(Debug, Default)]
struct PageCache {
    current: RwLock<Option<(std::time::Instant, Arc<PublicPage>)>>,
    building: tokio::sync::Mutex<()>,
    /// Bumped by every change made through the API: a build that began before it is not fresh.
    generation: std::sync::atomic::AtomicU64,
    failure: RwLock<Option<(std::time::Instant, WiringError)>>,
}

impl PageCache {
    fn fresh(&self, now: std::time::Instant) -> Option<Arc<PublicPage>> {
        let current = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        current.as_ref().filter(|(at, _)| now.saturating_duration_since(*at) < PAGE_REUSE).map(|(_, p)| Arc::clone(p))
    }

    fn newest(&self) -> Option<Arc<PublicPage>> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().map(|(_, p)| Arc::clone(p))
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Keeps a page built from `generation`: fresh if nothing changed since, else only as the
    /// newest to fall back on.
    fn set(&self, page: Arc<PublicPage>, generation: u64) {
        let now = std::time::Instant::now();
        let at = if self.generation() == generation { now } else { now.checked_sub(PAGE_REUSE).unwrap_or(now) };
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((at, page));
        *self.failure.write().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    fn fail(&self, e: WiringError) {
        *self.failure.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((std::time::Instant::now(), e));
    }

    fn failed(&self) -> Option<(std::time::Instant, WiringError)> {
        self.failure.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The next reader builds anew (the old page stays for when that fails).
    fn expire(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        *self.failure.write().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        let mut current = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, _)) = current.as_mut()
            && let Some(old) = at.checked_sub(PAGE_REUSE)
        {
            *at = old;
        }
    }
}

/// The longest a status page build may take.
const PAGE_BUILD_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a built status page is served before it is built again.
const PAGE_REUSE: std::time::Duration = std::time::Duration::from_secs(5);

/// Every `[[tls]]` target's report, and the entries that could not be checked (name, why).
pub type TlsChecks = (Vec<ops_tls::TargetReport>, Vec<(String, String)>);

/// Why the running configuration could not be wired into adapters: a fault of the server's
/// own setup (an adapter missing from the build, a URL an adapter cannot use), never of the
/// request that found it, so the API answers it with a 5xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WiringError {
    /// The kind of the adapter's error.
    pub kind: ops_core::ErrorKind,
    /// Its message (it never holds a secret).
    pub message: String,
}

impl std::fmt::Display for WiringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the running configuration could not be wired: {}", self.message)
    }
}

/// One loaded configuration and the adapters wired from it.
#[derive(Debug)]
pub struct Running {
    /// The configuration.
    pub config: Arc<OpsConfig>,
    /// The adapters, or why they could not be wired.
    pub context: Result<Context, WiringError>,
    /// The incident message templates, compiled once (`incidents.templates-dir`).
    pub templates: Result<Arc<ops_incident::comms::Templates>, WiringError>,
}

impl Running {
    fn new(config: OpsConfig) -> Self {
        let context = Context::from_config(config.clone())
            .map_err(|e| WiringError { kind: e.kind(), message: e.message().to_owned() });
        let templates = ops_incident::comms::Templates::load(config.incidents.templates_dir.as_deref())
            .map(Arc::new)
            .map_err(|e| WiringError { kind: e.kind(), message: format!("incidents.templates-dir: {}", e.message()) });
        Self { config: Arc::new(config), context, templates }
    }
}

impl AppState {
    /// State for a resolved config; `config_path` and `env` are what a reload re-reads.
    #[must_use]
    pub fn from_config(config: OpsConfig, config_path: Option<PathBuf>, env: BTreeMap<String, String>) -> Arc<Self> {
        Arc::new(Self {
            running: RwLock::new(Arc::new(Running::new(config))),
            config_path,
            env,
            metrics: Metrics::new(),
            jobs: Jobs::default(),
            rate: crate::rate::RateLimiter::default(),
            public_rate: crate::rate::RateLimiter::default(),
            stopping: tokio::sync::watch::Sender::new(false),
            last_triage: SharedRun::default(),
            last_tls: SharedRun::default(),
            last_perf: SharedRun::default(),
            store: tokio::sync::Mutex::new(StoreSlot::default()),
            page: PageCache::default(),
        })
    }

    /// The state store (`state.url`), opened and migrated on first use.
    ///
    /// # Errors
    /// A [`WiringError`] when it cannot be opened: the server's setup, not the request.
    pub async fn state_store(&self) -> Result<Arc<dyn ops_core::ports::StateStore>, WiringError> {
        let url = self.running().config.state.url.clone();
        let mut held = self.store.lock().await;
        if let Some((u, store)) = held.0.as_ref()
            && u == url.expose()
        {
            return Ok(Arc::clone(store));
        }
        let store: Arc<dyn ops_core::ports::StateStore> = Arc::new(
            ops_core::adapters::state::SqlStateStore::open(&url)
                .await
                .map_err(|e| WiringError { kind: e.kind(), message: e.message().to_owned() })?,
        );
        held.0 = Some((url.expose().to_owned(), Arc::clone(&store)));
        Ok(store)
    }

    /// The incident desk and the status board of the configuration in force, over the state
    /// store.
    ///
    /// # Errors
    /// Why the configuration or the store could not be wired; a team template that does not
    /// compile.
    pub async fn desk(&self) -> Result<(ops_incident::Incidents, ops_status::StatusBoard), WiringError> {
        let running = self.running();
        let ctx = running.context.as_ref().map_err(Clone::clone)?;
        let templates = running.templates.as_ref().map_err(Clone::clone)?;
        let board = self.board().await?;
        let desk = ops_incident::Incidents::new(
            Arc::clone(board.store()),
            ctx.notifiers.clone(),
            ops_incident::IncidentOptions::from_config(&running.config),
            Arc::clone(templates),
        );
        Ok((desk, board))
    }

    /// The status board of the configuration in force (it needs no templates).
    ///
    /// # Errors
    /// Why the store could not be opened.
    pub async fn board(&self) -> Result<ops_status::StatusBoard, WiringError> {
        let running = self.running();
        let store = self.state_store().await?;
        Ok(ops_status::StatusBoard::new(store, ops_status::StatusOptions::from_config(&running.config)))
    }

    /// The public status page, built and rendered at most every few seconds. Readers of a
    /// fresh page take a read lock only; one builder at a time. When it cannot be built, the
    /// last one built is served (it says when it was updated); without one, the error, which
    /// the public routes answer without its details.
    ///
    /// # Errors
    /// Why it could not be built and none was built before.
    pub async fn status_page(&self) -> Result<Arc<PublicPage>, WiringError> {
        let now = std::time::Instant::now();
        if let Some(page) = self.page.fresh(now) {
            return Ok(page);
        }
        // One builder; the others get the newest page at once rather than wait for it.
        let building = match self.page.building.try_lock() {
            Ok(guard) => guard,
            Err(_) => match self.page.newest() {
                Some(page) => return Ok(page),
                None => self.page.building.lock().await,
            },
        };
        if let Some(page) = self.page.fresh(now) {
            return Ok(page);
        }
        // A build that failed a moment ago is not tried again at once: the store is not
        // hammered while it is down, and readers get the newest page meanwhile.
        if let Some((at, e)) = self.page.failed()
            && now.saturating_duration_since(at) < PAGE_REUSE
        {
            return self.page.newest().ok_or(e);
        }
        let generation = self.page.generation();
        let built = tokio::time::timeout(PAGE_BUILD_LIMIT, async {
            let board = self.board().await?;
            board
                .page(chrono::Utc::now())
                .await
                .map_err(|e| WiringError { kind: e.kind(), message: e.message().to_owned() })
        })
        .await
        .unwrap_or_else(|_| {
            Err(WiringError {
                kind: ops_core::ErrorKind::Timeout,
                message: "building the status page took too long".into(),
            })
        });
        drop(building);
        match built {
            Ok(page) => {
                let public = Arc::new(PublicPage::render(page));
                self.page.set(Arc::clone(&public), generation);
                Ok(public)
            }
            Err(e) => {
                tracing::warn!(error = %e, "status page not built");
                self.page.fail(e.clone());
                self.page.newest().ok_or(e)
            }
        }
    }

    /// Forgets the cached page after a change a person made (an update, an override).
    pub async fn page_changed(&self) {
        self.page.expire();
    }

    /// Resolves when the server stops (see [`Self::stop_jobs`]).
    pub fn stopping(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        let mut rx = self.stopping.subscribe();
        Box::pin(async move {
            drop(rx.wait_for(|s| *s).await);
        })
    }

    /// Whether the server is stopping.
    #[must_use]
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Tells every job in progress to stop (a backup or drill fails cleanly: nothing partial
    /// kept, a failure record, a notification; a restore stops only before its swap), then
    /// waits up to `limit` for every job to end, and for a restore past its swap as long as
    /// it takes: the stack must not be left half-swapped. Returns the jobs still active.
    pub async fn stop_jobs(&self, limit: std::time::Duration) -> Vec<String> {
        self.stopping.send_replace(true);
        let deadline = tokio::time::Instant::now() + limit;
        let mut told = tokio::time::Instant::now();
        loop {
            let active = self.jobs.active_kinds();
            let restoring = active.iter().any(|(kind, _)| kind == "restore");
            if active.is_empty() || (tokio::time::Instant::now() >= deadline && !restoring) {
                return active.into_iter().map(|(_, id)| id).collect();
            }
            if restoring && told.elapsed() >= std::time::Duration::from_secs(30) {
                tracing::warn!("waiting for a restore to finish before stopping");
                told = tokio::time::Instant::now();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The configuration in force.
    #[must_use]
    pub fn running(&self) -> Arc<Running> {
        Arc::clone(&self.running.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The adapters of the configuration in force.
    ///
    /// # Errors
    /// Why they could not be wired.
    pub fn context(&self) -> Result<Context, WiringError> {
        self.running().context.clone()
    }

    /// Removes what interrupted uploads left in every destination (temp files, unfinished
    /// multipart uploads, older than a day), as `backup prune` also does; logs what it did.
    pub async fn sweep_leftovers(&self) {
        let running = self.running();
        let Ok(ctx) = &running.context else { return };
        for store in ctx.storage.iter().chain(ctx.local_storage.iter()) {
            match store.sweep_incomplete(ops_backup::retention::SWEEP_AFTER).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(location = %store.location(), removed = n, "removed leftovers of interrupted uploads")
                }
                Err(e) => {
                    tracing::warn!(location = %store.location(), error = %e, "could not sweep leftovers of interrupted uploads")
                }
            }
        }
    }

    /// Sets the backup metrics from the manifests and failure records in storage, so they
    /// reflect backups run by `opsctl` (cron) too, and a restart does not reset them: for each
    /// database, its newest complete backup, and whether a failure came after it.
    pub async fn rebuild_backup_metrics(&self) {
        let running = self.running();
        let Ok(ctx) = &running.context else { return };
        if ctx.storage.is_none() && ctx.local_storage.is_none() {
            return;
        }
        let entries = match ops_backup::catalog::index(ctx).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "could not list backups to rebuild the metrics");
                return;
            }
        };
        for name in ctx.databases.keys() {
            let mine: Vec<_> = entries.iter().filter(|b| b.is_of(name)).collect();
            // Entries are newest first: a failure before the first complete one is newer.
            let failed_since = mine.iter().take_while(|b| !b.complete).any(|b| b.failed);
            let mut newest = None;
            if let Some(entry) = mine.iter().find(|b| b.complete) {
                for store in ctx.storage.iter().chain(ctx.local_storage.iter()) {
                    if let Ok(m) = ops_backup::catalog::read_manifest(store.as_ref(), &entry.id).await {
                        newest = Some(m);
                        break;
                    }
                }
            }
            if let Some(m) = &newest {
                #[allow(clippy::cast_precision_loss)]
                let finished = m.finished_at.timestamp_millis() as f64 / 1000.0;
                self.metrics.record_last_success(name, finished, m.duration_seconds, m.size_bytes);
            }
            if failed_since {
                self.metrics.record_backup(name, None);
            } else if newest.is_some() {
                self.metrics.set_backup_success(name);
            }
        }
    }

    /// The newest triage when it finished at or after `not_before`, else a new run (which also
    /// updates the probe and triage metrics). Concurrent callers wait for the one run in
    /// progress and share it: a burst of `?fresh=true` costs one run, not one each.
    ///
    /// # Errors
    /// The reason the running configuration could not be wired.
    pub async fn triage(&self, not_before: std::time::Instant) -> Result<Arc<ops_probes::TriageReport>, WiringError> {
        self.last_triage
            .get((), not_before, async {
                let running = self.running();
                let mut ctx = running.context.as_ref().map_err(Clone::clone)?.clone();
                // With the state store, triage keeps the release ledger.
                ctx.state = self.state_store().await.ok();
                let report = ops_probes::triage(&ctx, &ops_probes::TriageOptions::default()).await;
                self.metrics.record_triage(&report);
                if running.config.incidents.record {
                    match self.desk().await {
                        Ok((desk, board)) => match board.record_triage(&desk, &report, chrono::Utc::now()).await {
                            Ok(r) => {
                                for id in &r.opened {
                                    tracing::warn!(incident = %id, "incident opened");
                                }
                                for id in &r.resolved {
                                    tracing::info!(incident = %id, "incident resolved");
                                }
                                if !r.opened.is_empty() || !r.updated.is_empty() {
                                    self.page.expire();
                                }
                            }
                            Err(e) => tracing::warn!(error = %e, "incidents not recorded"),
                        },
                        Err(e) => tracing::warn!(error = %e, "incidents not recorded"),
                    }
                }
                Ok(report)
            })
            .await
    }

    /// Checks every `[[tls]]` target (or shares a check that finished at or after
    /// `not_before`) and updates the TLS metrics; also returns the entries that could not be
    /// checked at all (an unreadable CA file), by name, with why.
    ///
    /// # Errors
    /// The reason the running configuration could not be wired.
    pub async fn tls(&self, not_before: std::time::Instant) -> Result<Arc<TlsChecks>, WiringError> {
        self.last_tls
            .get((), not_before, async {
                let running = self.running();
                running.context.as_ref().map_err(Clone::clone)?;
                let cfg = &running.config;
                let timeout = std::time::Duration::from_secs(cfg.probes.timeout_secs.max(1));
                let checks = cfg.tls.iter().map(|c| ops_probes::tls::check_target(c, &cfg.probes.tls, timeout));
                let mut reports = Vec::new();
                let mut named = Vec::new();
                let mut unusable = Vec::new();
                for (c, r) in cfg.tls.iter().zip(futures::future::join_all(checks).await) {
                    match r {
                        Ok(r) => {
                            named.push((c.name.clone(), r.clone()));
                            reports.push(r);
                        }
                        Err(e) => unusable.push((c.name.clone(), e.to_string())),
                    }
                }
                self.metrics.record_tls(&named);
                Ok((reports, unusable))
            })
            .await
    }

    /// A performance analysis with `opts`: one that finished at or after `not_before` with the
    /// same options is shared; otherwise one runs, never two at a time.
    ///
    /// # Errors
    /// The reason the running configuration could not be wired.
    pub async fn perf(
        &self,
        opts: ops_perf::PerfOptions,
        not_before: std::time::Instant,
    ) -> Result<Arc<ops_perf::PerfReport>, WiringError> {
        let run = async {
            let running = self.running();
            let ctx = running.context.as_ref().map_err(Clone::clone)?;
            Ok(ops_perf::analyze(ctx, &opts).await)
        };
        self.last_perf.get(opts.clone(), not_before, run).await
    }

    /// Re-reads the file and environment captured at start; keeps the running config when the
    /// new one is invalid.
    ///
    /// # Errors
    /// The new file's [`ConfigError`].
    pub fn reload(&self) -> Result<Arc<Running>, ConfigError> {
        match load(self.config_path.as_deref(), &self.env) {
            Ok(loaded) => {
                let next = Arc::new(Running::new(loaded.config));
                *self.running.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::clone(&next);
                self.metrics.record_reload(true);
                Ok(next)
            }
            Err(e) => {
                self.metrics.record_reload(false);
                Err(e)
            }
        }
    }
}
