//! Prometheus metrics of the server itself.

use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DatabaseLabel {
    database: String,
}

type DbGauge = Family<DatabaseLabel, Gauge<f64, AtomicU64>>;

/// The registry and the handles to update it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reloads: Family<ResultLabel, Counter>,
    last_reload: Gauge<f64, AtomicU64>,
    backup_success: DbGauge,
    backup_last_success: DbGauge,
    backup_duration: DbGauge,
    backup_size: DbGauge,
    backup_age: DbGauge,
    drill_success: DbGauge,
    drill_restore: DbGauge,
    /// Databases with a successful backup, whose age is refreshed at scrape time.
    backed_up: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl Metrics {
    /// A registry with the server's metrics.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ops");
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION").to_owned() }).set(1);
        registry.register("build_info", "Version of ops-server", build);
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register("config_reloads", "Configuration reloads by result", reloads.clone());
        let last_reload = Gauge::<f64, AtomicU64>::default();
        last_reload.set(now_secs());
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the configuration in force was loaded",
            last_reload.clone(),
        );
        let started = Gauge::<f64, AtomicU64>::default();
        started.set(now_secs());
        registry.register("start_time_seconds", "When ops-server started", started);
        let mut gauge = |name: &str, help: &str| {
            let g = DbGauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let backup_success = gauge(
            "backup_success",
            "1 when the last backup succeeded, 0 when it failed (the runbooks' backup_success)",
        );
        let backup_last_success =
            gauge("backup_last_success_timestamp_seconds", "When the newest successful backup finished");
        let backup_duration = gauge("backup_duration_seconds", "Duration of the newest successful backup");
        let backup_size = gauge("backup_size_bytes", "Compressed size of the newest successful backup");
        let backup_age = gauge("backup_age_seconds", "Age of the newest successful backup at scrape time");
        let drill_success = gauge("dr_test_success", "1 when the last DR drill passed");
        let drill_restore = gauge("dr_test_restore_seconds", "Restore time measured by the last DR drill");
        Self {
            registry,
            reloads,
            last_reload,
            backup_success,
            backup_last_success,
            backup_duration,
            backup_size,
            backup_age,
            drill_success,
            drill_restore,
            backed_up: std::sync::Mutex::default(),
        }
    }

    fn label(database: &str) -> DatabaseLabel {
        DatabaseLabel { database: database.to_owned() }
    }

    /// Records a backup outcome; a success also records when, how long and how big.
    pub fn record_backup(&self, database: &str, success: Option<(f64, f64, u64)>) {
        let l = Self::label(database);
        self.backup_success.get_or_create(&l).set(if success.is_some() { 1.0 } else { 0.0 });
        if let Some((finished_at, duration, size)) = success {
            self.record_last_success(database, finished_at, duration, size);
        }
    }

    /// Records when the newest successful backup finished, how long it took and its size,
    /// leaving `ops_backup_success` as it is.
    pub fn record_last_success(&self, database: &str, finished_at: f64, duration: f64, size: u64) {
        let l = Self::label(database);
        self.backed_up.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(database.to_owned());
        self.backup_last_success.get_or_create(&l).set(finished_at);
        self.backup_duration.get_or_create(&l).set(duration);
        #[allow(clippy::cast_precision_loss)]
        self.backup_size.get_or_create(&l).set(size as f64);
    }

    /// Marks the newest backup of `database` as successful.
    pub fn set_backup_success(&self, database: &str) {
        self.backup_success.get_or_create(&Self::label(database)).set(1.0);
    }

    /// Records a drill outcome.
    pub fn record_drill(&self, database: &str, passed: bool, restore_seconds: f64) {
        let l = Self::label(database);
        self.drill_success.get_or_create(&l).set(if passed { 1.0 } else { 0.0 });
        self.drill_restore.get_or_create(&l).set(restore_seconds);
    }

    /// Moves every backup age to now (called at scrape time).
    fn refresh_ages(&self) {
        let now = now_secs();
        let databases = self.backed_up.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        for database in databases {
            let l = Self::label(&database);
            let last = self.backup_last_success.get_or_create(&l).get();
            self.backup_age.get_or_create(&l).set((now - last).max(0.0));
        }
    }

    /// Counts a reload; a success also moves the timestamp.
    pub fn record_reload(&self, ok: bool) {
        self.reloads.get_or_create(&ResultLabel { result: if ok { "success" } else { "failure" }.to_owned() }).inc();
        if ok {
            self.last_reload.set(now_secs());
        }
    }

    /// The text exposition.
    #[must_use]
    pub fn encode(&self) -> String {
        self.refresh_ages();
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
