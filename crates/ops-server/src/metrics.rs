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
struct JobLabel {
    job: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobResultLabels {
    job: String,
    kind: String,
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
    rate_limited: Counter,
    last_reload: Gauge<f64, AtomicU64>,
    backup_success: DbGauge,
    backup_last_success: DbGauge,
    backup_duration: DbGauge,
    backup_size: DbGauge,
    backup_age: DbGauge,
    drill_success: DbGauge,
    drill_restore: DbGauge,
    job_last_run: Family<JobResultLabels, Gauge<f64, AtomicU64>>,
    job_last_success: Family<JobLabel, Gauge<f64, AtomicU64>>,
    job_runs: Family<JobResultLabels, Counter>,
    job_missed: Family<JobLabel, Counter>,
    /// Databases with a successful backup, whose age is refreshed at scrape time.
    backed_up: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The samples of the last triage and TLS runs, under names without the `ops_` prefix
    /// where Prometheus users know them (`probe_success`, `probe_ssl_earliest_cert_expiry`),
    /// rendered whole on each run so checks that left the config leave the output too.
    checks: std::sync::Mutex<CheckSamples>,
}

#[derive(Debug, Default)]
struct CheckSamples {
    triage: Vec<ops_tls::MetricSample>,
    tls: Vec<ops_tls::MetricSample>,
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
        let rate_limited = Counter::default();
        registry.register(
            "api_rate_limited",
            "API requests refused with 429 (a key over its rate)",
            rate_limited.clone(),
        );
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
        let job_last_run = Family::<JobResultLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "job_last_run_timestamp_seconds",
            "When each scheduled job last ended, by result (success, failure, skipped), from the shared ledger",
            job_last_run.clone(),
        );
        let job_last_success = Family::<JobLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "job_last_success_timestamp_seconds",
            "When each scheduled job last succeeded, from the shared ledger",
            job_last_success.clone(),
        );
        let job_runs = Family::<JobResultLabels, Counter>::default();
        registry.register(
            "job_runs",
            "Scheduled runs this process ended, by job, its kind and result",
            job_runs.clone(),
        );
        let job_missed = Family::<JobLabel, Counter>::default();
        registry.register(
            "job_missed",
            "Scheduled due times that did not run on time (the server was down or late)",
            job_missed.clone(),
        );
        Self {
            registry,
            reloads,
            job_last_run,
            job_last_success,
            job_runs,
            job_missed,
            rate_limited,
            last_reload,
            backup_success,
            backup_last_success,
            backup_duration,
            backup_size,
            backup_age,
            drill_success,
            drill_restore,
            backed_up: std::sync::Mutex::default(),
            checks: std::sync::Mutex::default(),
        }
    }

    /// Counts a scheduled run this process ended (`success`, `failure`, `skipped`) and moves
    /// its last-run time.
    pub fn record_job(&self, job: &str, kind: &str, result: &str, at: chrono::DateTime<chrono::Utc>) {
        let labels = JobResultLabels { job: job.to_owned(), kind: kind.to_owned(), result: result.to_owned() };
        self.job_runs.get_or_create(&labels).inc();
        self.set_job_last(job, kind, result, at);
    }

    /// Sets the last time `job` ended with `result`, unless a later one is known (the ledger
    /// is refreshed after runs this process saw).
    pub fn set_job_last(&self, job: &str, kind: &str, result: &str, at: chrono::DateTime<chrono::Utc>) {
        #[allow(clippy::cast_precision_loss)]
        let secs = at.timestamp_millis() as f64 / 1000.0;
        let labels = JobResultLabels { job: job.to_owned(), kind: kind.to_owned(), result: result.to_owned() };
        let gauge = self.job_last_run.get_or_create(&labels);
        if gauge.get() < secs {
            gauge.set(secs);
        }
        if result == "success" {
            let gauge = self.job_last_success.get_or_create(&JobLabel { job: job.to_owned(), kind: kind.to_owned() });
            if gauge.get() < secs {
                gauge.set(secs);
            }
        }
    }

    /// Counts due times of `job` that did not run on time.
    pub fn record_missed(&self, job: &str, kind: &str, n: u64) {
        self.job_missed.get_or_create(&JobLabel { job: job.to_owned(), kind: kind.to_owned() }).inc_by(n);
    }

    /// Counts one request refused for its key's rate.
    pub fn record_rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// Replaces the probe and triage samples with those of `report`. Every probe has
    /// `ops_probe_status` and `ops_probe_duration_seconds`; the network probes (HTTP, TCP, DNS)
    /// also have blackbox_exporter's series with its meanings: `probe_success` is whether the
    /// exchange succeeded, not our verdict (a 200 in 900 ms is a success that is slow).
    /// TLS endpoints get theirs from [`Self::record_tls`]. Every probe series is labelled
    /// `probe`, `kind` and `target`.
    pub fn record_triage(&self, report: &ops_probes::TriageReport) {
        let mut samples = Vec::new();
        for p in &report.probes {
            let labels =
                || vec![("probe", p.name.clone()), ("kind", p.kind.as_str().to_owned()), ("target", p.target.clone())];
            #[allow(clippy::cast_precision_loss)]
            let took = p.duration_ms as f64 / 1000.0;
            let status = match p.status {
                ops_core::Status::Ok => 0.0,
                ops_core::Status::Warn => 1.0,
                ops_core::Status::Critical => 2.0,
                ops_core::Status::Unknown => 3.0,
            };
            samples.push(sample("ops_probe_status", labels(), status));
            samples.push(sample("ops_probe_duration_seconds", labels(), took));
            // What each check measured, in base units, for rules (hit rate, disk, latency);
            // a measurement repeated under the same name and labels once.
            let mut seen = std::collections::BTreeSet::new();
            for o in &p.observations {
                let (value, suffix) = match o.unit {
                    ops_probes::Unit::Milliseconds => (o.value / 1000.0, "_seconds"),
                    ops_probes::Unit::Seconds => (o.value, "_seconds"),
                    ops_probes::Unit::Days => (o.value * 86_400.0, "_seconds"),
                    ops_probes::Unit::Percent => (o.value / 100.0, "_ratio"),
                    ops_probes::Unit::Bytes => (o.value, "_bytes"),
                    ops_probes::Unit::Count | ops_probes::Unit::Ratio => (o.value, ""),
                };
                if !value.is_finite() {
                    continue;
                }
                let mut l = labels();
                // `disk_used_bytes` stays itself, never `disk_used_bytes_bytes`.
                let name = if o.name.ends_with(suffix) { o.name.clone() } else { format!("{}{suffix}", o.name) };
                let detail = o.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
                if !seen.insert((name.clone(), detail.clone())) {
                    continue;
                }
                l.push(("name", name));
                l.push(("detail", detail));
                samples.push(sample("ops_probe_value", l, value));
            }
            if p.kind == ops_probes::ProbeKind::Tls {
                continue;
            }
            let Some(ok) = p.exchange_ok else { continue };
            samples.push(sample("probe_success", labels(), if ok { 1.0 } else { 0.0 }));
            samples.push(sample("probe_duration_seconds", labels(), took));
            let ms = |name: &str| p.observation(name).map(|v| v / 1000.0);
            match p.kind {
                ops_probes::ProbeKind::Http => {
                    samples.push(sample(
                        "probe_http_status_code",
                        labels(),
                        p.observation("status_code").unwrap_or(0.0),
                    ));
                    let answered = p.observation("status_code").is_some();
                    let tls = answered && p.observation("tls").is_some();
                    samples.push(sample("probe_http_ssl", labels(), if tls { 1.0 } else { 0.0 }));
                    for (phase, ours) in [
                        ("resolve", "dns"),
                        ("connect", "connect"),
                        ("tls", "tls"),
                        ("processing", "ttfb"),
                        ("transfer", "transfer"),
                    ] {
                        let mut l = labels();
                        l.push(("phase", phase.to_owned()));
                        samples.push(sample("probe_http_duration_seconds", l, ms(ours).unwrap_or(0.0)));
                    }
                    if let Some(dns) = ms("dns") {
                        samples.push(sample("probe_dns_lookup_time_seconds", labels(), dns));
                    }
                }
                ops_probes::ProbeKind::Tcp => {
                    if let Some(dns) = ms("dns") {
                        samples.push(sample("probe_dns_lookup_time_seconds", labels(), dns));
                    }
                }
                ops_probes::ProbeKind::Dns => {
                    if let Some(dns) = ms("resolve") {
                        samples.push(sample("probe_dns_lookup_time_seconds", labels(), dns));
                    }
                }
                _ => {}
            }
        }
        // 1 for P1 … 4 for P4, 0 when nothing is wrong: `ops_triage_severity > 0 and <= 2` pages.
        let severity = report.severity.map_or(0.0, |s| match s {
            ops_core::Severity::P1 => 1.0,
            ops_core::Severity::P2 => 2.0,
            ops_core::Severity::P3 => 3.0,
            ops_core::Severity::P4 => 4.0,
        });
        samples.push(sample("ops_triage_severity", Vec::new(), severity));
        for sev in ["P1", "P2", "P3", "P4"] {
            #[allow(clippy::cast_precision_loss)]
            let n = report.incidents.iter().filter(|i| i.severity.to_string() == sev).count() as f64;
            samples.push(sample("ops_triage_incidents", vec![("severity", sev.to_owned())], n));
        }
        samples.push(sample("ops_triage_last_run_timestamp_seconds", Vec::new(), now_secs()));
        self.checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).triage = samples;
    }

    /// Replaces the TLS samples with those of `reports`, each with its `[[tls]]` name.
    pub fn record_tls(&self, reports: &[(String, ops_tls::TargetReport)]) {
        let endpoints: Vec<(&str, &ops_tls::EndpointReport)> = reports
            .iter()
            .filter_map(
                |(name, r)| if let ops_tls::TargetReport::Endpoint(e) = r { Some((name.as_str(), e)) } else { None },
            )
            .collect();
        let paths: Vec<_> = reports
            .iter()
            .filter_map(|(_, r)| if let ops_tls::TargetReport::Path(p) = r { Some(p.clone()) } else { None })
            .collect();
        let mut samples = ops_tls::endpoint_metrics(&endpoints);
        samples.extend(ops_tls::file_metrics(&paths));
        self.checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).tls = samples;
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

    /// The exposition: OpenMetrics text when `openmetrics` (the scraper asked for it), else
    /// the classic Prometheus text format (0.0.4).
    #[must_use]
    pub fn encode_as(&self, openmetrics: bool) -> String {
        self.refresh_ages();
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        // The registry's text ends with `# EOF`; the check samples go before it.
        if let Some(body) = out.strip_suffix("# EOF\n") {
            out = body.to_owned();
        }
        let checks = self.checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        render_samples(&mut out, checks.triage.iter().chain(checks.tls.iter()));
        if openmetrics {
            out.push_str("# EOF\n");
            out
        } else {
            classic(&out)
        }
    }

    /// The OpenMetrics exposition.
    #[must_use]
    pub fn encode(&self) -> String {
        self.encode_as(true)
    }
}

/// OpenMetrics text as the classic text format: a counter family is named by its `_total`
/// sample, `# UNIT` and `# EOF` lines go.
fn classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            // Held until its TYPE line says whether the family is a counter.
            if let Some(h) = help.take() {
                out.push_str(h);
                out.push('\n');
            }
            help = Some(line);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" if !name.ends_with("_total") => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "stateset" | "gaugehistogram" => (name.to_owned(), "gauge"),
                "unknown" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            if let Some(h) = help.take() {
                let text = h.strip_prefix("# HELP ").and_then(|r| r.split_once(' ')).map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if let Some(h) = help.take() {
            out.push_str(h);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The help text of a check sample (`probe_*`, `ops_probe_*`, `ops_triage_*`, `ops_tls_*`).
fn help_of(name: &str) -> &'static str {
    if let Some(h) = ops_tls::metrics_help(name) {
        return h;
    }
    match name {
        "ops_probe_status" => "Our verdict on each check: 0 ok, 1 warn, 2 critical, 3 unknown",
        "ops_probe_duration_seconds" => "How long each check took, in seconds",
        "ops_probe_value" => {
            "What each check measured, in base units, by name (hit_rate_ratio, disk_used_ratio, latency_seconds)"
        }
        "probe_http_status_code" => "The HTTP response's status code, 0 without a response",
        "probe_http_ssl" => "1 when the HTTP response came over TLS",
        "probe_http_duration_seconds" => "Duration of each phase of the HTTP request (the last hop), in seconds",
        "probe_dns_lookup_time_seconds" => "How long resolving the name took, in seconds",
        "ops_triage_severity" => "The worst incident of the last triage: 1 for P1 to 4 for P4, 0 for none",
        "ops_triage_incidents" => "Incidents the last triage found, by severity",
        "ops_triage_last_run_timestamp_seconds" => "When the last triage ran, unix seconds",
        _ => "A check sample of ops-server",
    }
}

fn sample(name: &'static str, labels: Vec<(&'static str, String)>, value: f64) -> ops_tls::MetricSample {
    ops_tls::MetricSample { name, labels, value }
}

/// OpenMetrics text of gauge samples, grouped by name (one `# TYPE` per family).
fn render_samples<'a>(out: &mut String, samples: impl Iterator<Item = &'a ops_tls::MetricSample>) {
    use std::fmt::Write as _;
    let mut by_name: std::collections::BTreeMap<&str, Vec<&ops_tls::MetricSample>> = std::collections::BTreeMap::new();
    for s in samples {
        by_name.entry(s.name).or_default().push(s);
    }
    for (name, samples) in by_name {
        let _ = writeln!(out, "# HELP {name} {}", help_of(name));
        let _ = writeln!(out, "# TYPE {name} gauge");
        for s in samples {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let labels = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
            let _ = writeln!(out, "{name}{labels} {}", s.value);
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
