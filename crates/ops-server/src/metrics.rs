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

/// The registry and the handles to update it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reloads: Family<ResultLabel, Counter>,
    last_reload: Gauge<f64, AtomicU64>,
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
        Self { registry, reloads, last_reload }
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
