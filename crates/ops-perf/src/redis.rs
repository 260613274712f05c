//! The `redis` section: the runbooks' "Redis hit rate — keyspace_hits vs keyspace_misses", with
//! what usually explains a bad one: memory against `maxmemory`, the eviction policy, evictions,
//! and the largest keys.
//!
//! Cumulative counters cover the window since the previous run when a state directory keeps
//! the last snapshot, else since the server started; a restart (new `run_id`, counters that went
//! down, a shorter uptime) starts the window over. The thresholds are those of the `redis`
//! probe, whose [`assess`](ops_probes::redis::assess) judges both memory and the hit rate.

use std::time::Instant;

use chrono::{DateTime, Utc};
use ops_core::Status;
use ops_core::config::{PerfConfig, ProbesConfig};
use ops_core::ports::{Cache, CacheInfo, KeySample};
use ops_core::{ErrorKind, Runbook};
use serde::{Deserialize, Serialize};

use crate::{PerfFinding, Section, SectionReport, StateDir, Window};
use ops_core::units::{human_bytes, human_duration, plural};
use ops_probes::{Observation, Problem, Unit};

/// The policy the eviction finding recommends for a cache.
const RECOMMENDED_POLICY: &str = "allkeys-lru";

/// The counters a run keeps for the next one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct Counters {
    /// `run_id`: a new one means a new process.
    run_id: String,
    uptime_seconds: u64,
    hits: u64,
    misses: u64,
    evicted: u64,
}

impl Counters {
    fn of(info: &CacheInfo) -> Self {
        Self {
            run_id: info.raw.get("run_id").cloned().unwrap_or_default(),
            uptime_seconds: info.uptime_seconds,
            hits: info.keyspace_hits,
            misses: info.keyspace_misses,
            evicted: info.evicted_keys,
        }
    }

    /// Whether `now` comes from another process, or from statistics reset since `self`
    /// (`CONFIG RESETSTAT`), so that subtracting would be meaningless.
    fn restarted_before(&self, now: &Self) -> bool {
        let new_process = !self.run_id.is_empty() && !now.run_id.is_empty() && self.run_id != now.run_id;
        new_process
            || now.uptime_seconds < self.uptime_seconds
            || now.hits < self.hits
            || now.misses < self.misses
            || now.evicted < self.evicted
    }
}

/// What the window's counters say, and which window it is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Windowed {
    window: Window,
    hits: u64,
    misses: u64,
    evicted: u64,
    /// The previous snapshot was of another process (or before a statistics reset).
    restarted: bool,
}

/// The window of the counters `now`, given the previous snapshot.
fn windowed(now: &Counters, previous: Option<(DateTime<Utc>, Counters)>, at: DateTime<Utc>) -> Windowed {
    let since_start = |restarted| Windowed {
        window: Window::ServerStart {
            at: i64::try_from(now.uptime_seconds)
                .ok()
                .and_then(|s| at.checked_sub_signed(chrono::Duration::seconds(s))),
        },
        hits: now.hits,
        misses: now.misses,
        evicted: now.evicted,
        restarted,
    };
    match previous {
        None => since_start(false),
        Some((_, prev)) if prev.restarted_before(now) => since_start(true),
        Some((taken, prev)) => Windowed {
            window: Window::PreviousRun { at: taken },
            hits: now.hits - prev.hits,
            misses: now.misses - prev.misses,
            evicted: now.evicted - prev.evicted,
            restarted: false,
        },
    }
}

/// `since the previous run 5 min ago`, `since the server started 2 h ago`.
fn since(window: &Window, now: DateTime<Utc>) -> String {
    let ago = |at: DateTime<Utc>| human_duration((now - at).to_std().unwrap_or_default());
    match window {
        Window::PreviousRun { at } => format!("since the previous run {} ago", ago(*at)),
        Window::ServerStart { at: Some(at) } => format!("since the server started {} ago", ago(*at)),
        Window::ServerStart { at: None } => "since the server started".to_owned(),
    }
}

#[allow(clippy::cast_precision_loss)] // counters far below 2^52
fn count(v: u64) -> f64 {
    v as f64
}

/// Analyses cache `name` (the section's target is `redis:{name}`): `hit-rate` (under
/// `probes.redis` warn/critical, judged after `min-lookups` lookups in the window), `memory`
/// against `maxmemory`, `eviction-policy` (`noeviction` near full: writes will be rejected),
/// `evictions` in the window, and `big-key`: the `cfg.top` largest of up to
/// `cfg.redis.sample-keys` keys sampled with `SCAN`, `warn` from `cfg.redis.big-key-bytes`.
///
/// With `state`, the counters cover the window since the previous run and this run's snapshot
/// is saved (taken after the key sample, whose `TYPE` lookups count as hits). Never fails: a
/// cache whose `INFO` cannot be read is a failed section.
pub async fn analyze(
    name: &str,
    cache: &dyn Cache,
    cfg: &PerfConfig,
    probes: &ProbesConfig,
    state: Option<&StateDir>,
) -> SectionReport {
    let started = Instant::now();
    let target = format!("redis:{name}");
    let info = match cache.info().await {
        Ok(info) => info,
        Err(e) => {
            return SectionReport::failed(Section::Redis, target, format!("INFO failed: {e}"))
                .finish(started.elapsed());
        }
    };
    let now = Utc::now();
    let mut report = SectionReport::new(Section::Redis, target);
    report.queries = 1;
    let key = format!("redis-{name}");
    let counters = Counters::of(&info);
    let w = windowed(&counters, state.and_then(|s| s.load::<Counters>(&key)), now);
    let since = since(&w.window, now);

    let hit_rate = hit_rate(name, &w, &since, probes);
    let rate_verdict = hit_rate.verdict;
    report.findings.push(hit_rate);
    report.findings.extend(memory(name, &info, probes));
    report.findings.push(evictions(name, &w, &since, rate_verdict));
    report.window = Some(w.window);

    let mut snapshot = counters;
    if cfg.redis.sample_keys > 0 && cfg.top > 0 {
        match cache.sample_key_sizes(cfg.redis.sample_keys, cfg.top).await {
            Ok(sample) => {
                report.queries += sample.round_trips;
                report.findings.extend(big_keys(&sample, cfg.redis.big_key_bytes, &info));
                // The sample's TYPE lookups are hits: the next window starts after them.
                if state.is_some() && !sample.largest.is_empty() {
                    report.queries += 1;
                    if let Ok(after) = cache.info().await {
                        snapshot = Counters::of(&after);
                    }
                }
            }
            Err(e) => {
                let message = if e.kind() == ErrorKind::Unsupported {
                    format!("could not sample key sizes, MEMORY USAGE or SCAN is not allowed: {e}")
                } else {
                    format!("could not sample key sizes: {e}")
                };
                report.findings.push(PerfFinding::new("big-key", Status::Unknown, name, message));
            }
        }
    }
    if let Some(state) = state
        && let Err(e) = state.save(&key, Utc::now(), &snapshot)
        && let Some(f) = report.findings.iter_mut().find(|f| f.check == "hit-rate")
    {
        f.evidence.push(format!("the snapshot for the next run could not be saved: {e}"));
    }
    report.finish(started.elapsed())
}

/// The hit rate over the window, judged by [`ops_probes::redis::assess`] (which also applies
/// `min-lookups`).
fn hit_rate(name: &str, w: &Windowed, since: &str, probes: &ProbesConfig) -> PerfFinding {
    let lookups = w.hits + w.misses;
    let windowed = CacheInfo { keyspace_hits: w.hits, keyspace_misses: w.misses, ..CacheInfo::default() };
    let (_, problems) = ops_probes::redis::assess(&windowed, &probes.redis);
    let verdict = worst(&problems);
    let t = &probes.redis;
    let mut f = match windowed.hit_rate() {
        None => PerfFinding::new("hit-rate", Status::Ok, name, format!("no lookups {since}")),
        Some(rate) => {
            let rate = rate * 100.0;
            let numbers = format!("{rate:.0} % ({} hits, {} misses {since})", w.hits, w.misses);
            let message = if lookups < t.min_lookups {
                format!("hit rate {numbers}: too few lookups to judge (under {})", t.min_lookups)
            } else if verdict >= Status::Warn {
                format!(
                    "hit rate {numbers}, under {} %: review key TTLs, or give Redis more memory",
                    if verdict == Status::Critical { t.hit_rate_critical_percent } else { t.hit_rate_warn_percent }
                )
            } else {
                format!("hit rate {numbers}")
            };
            PerfFinding::new("hit-rate", verdict, name, message).value(Observation::new(
                "hit_rate",
                rate,
                Unit::Percent,
            ))
        }
    };
    f = f.value(Observation::new("keyspace_hits", count(w.hits), Unit::Count)).value(Observation::new(
        "keyspace_misses",
        count(w.misses),
        Unit::Count,
    ));
    if w.restarted {
        f = f.evidence(
            "the server restarted (or its statistics were reset) since the previous run: counting from its start",
        );
    }
    f
}

/// `memory` against `maxmemory`, and `eviction-policy` when it matters; judged by
/// [`ops_probes::redis::assess`] without lookups (so only memory is judged).
fn memory(name: &str, info: &CacheInfo, probes: &ProbesConfig) -> Vec<PerfFinding> {
    let memory_only = CacheInfo { keyspace_hits: 0, keyspace_misses: 0, ..info.clone() };
    let (_, problems) = ops_probes::redis::assess(&memory_only, &probes.redis);
    let used = info.used_memory_bytes;
    let used_value = Observation::new("memory_used", count(used), Unit::Bytes);
    let policy = &info.maxmemory_policy;
    let (Some(max), Some(share)) = (info.maxmemory_bytes, info.memory_share()) else {
        return vec![
            PerfFinding::new(
                "memory",
                Status::Ok,
                name,
                format!(
                    "memory {} and no maxmemory: it grows until the host or its container runs out",
                    human_bytes(used)
                ),
            )
            .value(used_value),
            PerfFinding::new(
                "eviction-policy",
                Status::Ok,
                name,
                format!("maxmemory-policy {policy} (no maxmemory: nothing is evicted)"),
            ),
        ];
    };
    let share = share * 100.0;
    let mut memory = PerfFinding::new(
        "memory",
        worst(&problems),
        name,
        format!("memory {} of maxmemory {} ({share:.0} %), policy {policy}", human_bytes(used), human_bytes(max)),
    )
    .value(used_value)
    .value(Observation::new("maxmemory", count(max), Unit::Bytes))
    .value(Observation::new("memory", share, Unit::Percent));
    if let Some(p) = problems.iter().find(|p| p.runbook == Runbook::CacheDegraded) {
        memory = memory.evidence(p.message.clone());
    }
    let policy_finding = match problems.iter().find(|p| p.runbook == Runbook::CacheFull) {
        Some(p) => p
            .evidence
            .iter()
            .filter(|e| !e.starts_with("fix:"))
            .fold(PerfFinding::new("eviction-policy", p.status, name, p.message.clone()), |f, e| f.evidence(e.clone()))
            .evidence("or raise maxmemory (CONFIG SET maxmemory) if every key must be kept")
            .action(format!("opsctl redis set-policy {RECOMMENDED_POLICY}")),
        None => PerfFinding::new("eviction-policy", Status::Ok, name, format!("maxmemory-policy {policy}")),
    };
    vec![memory, policy_finding]
}

/// Keys evicted in the window: worth a warning only when the hit rate suffers.
fn evictions(name: &str, w: &Windowed, since: &str, hit_rate: Status) -> PerfFinding {
    let evicted = plural(w.evicted, "key", "keys");
    let f = if w.evicted > 0 && hit_rate >= Status::Warn {
        PerfFinding::new(
            "evictions",
            Status::Warn,
            name,
            format!("{evicted} evicted {since} with a low hit rate: the working set does not fit in maxmemory"),
        )
        .evidence("raise maxmemory (CONFIG SET maxmemory, and in the config) or shorten key TTLs")
    } else {
        PerfFinding::new("evictions", Status::Ok, name, format!("{evicted} evicted {since}"))
    };
    f.value(Observation::new("evicted_keys", count(w.evicted), Unit::Count))
}

/// One `big-key` finding per key of the sample's largest, `warn` from `big_key_bytes`.
fn big_keys(sample: &KeySample, big_key_bytes: u64, info: &CacheInfo) -> Vec<PerfFinding> {
    let total: u64 = info
        .raw
        .iter()
        .filter(|(k, _)| k.strip_prefix("db").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|(_, v)| v.split(',').find_map(|kv| kv.strip_prefix("keys="))?.parse::<u64>().ok())
        .sum();
    let scope = if sample.complete {
        format!("every key of the database measured ({})", sample.sampled)
    } else {
        format!("largest of {} keys sampled with SCAN ({total} keys in all databases)", sample.sampled)
    };
    if sample.largest.is_empty() {
        return vec![PerfFinding::new("big-key", Status::Ok, "keyspace", format!("no key to measure ({scope})"))];
    }
    sample
        .largest
        .iter()
        .map(|k| {
            let big = k.bytes >= big_key_bytes;
            let mut f = PerfFinding::new(
                "big-key",
                if big { Status::Warn } else { Status::Ok },
                k.key.clone(),
                format!("{} {}: {}", k.key_type, k.key, human_bytes(k.bytes)),
            )
            .value(Observation::new("bytes", count(k.bytes), Unit::Bytes))
            .evidence(scope.clone());
            if big {
                f = f.evidence(format!(
                    "at least {}: reading, copying or deleting it blocks Redis; split it, and delete it with UNLINK",
                    human_bytes(big_key_bytes)
                ));
            }
            f
        })
        .collect()
}

fn worst(problems: &[Problem]) -> Status {
    problems.iter().map(|p| p.status).max().unwrap_or(Status::Ok)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use ops_core::ports::KeySize;
    use ops_core::ports::cache::MockCache;

    use super::*;

    fn info(run_id: &str, uptime: u64, hits: u64, misses: u64, evicted: u64) -> CacheInfo {
        CacheInfo::parse(&format!(
            "run_id:{run_id}\r\nuptime_in_seconds:{uptime}\r\nused_memory:990\r\nmaxmemory:1000\r\n\
             maxmemory_policy:noeviction\r\nkeyspace_hits:{hits}\r\nkeyspace_misses:{misses}\r\n\
             evicted_keys:{evicted}\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n"
        ))
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn the_window_restarts_with_the_server() {
        let prev = Counters::of(&info("a", 100, 50, 50, 5));
        let now = Counters::of(&info("a", 400, 150, 60, 7));
        let w = windowed(&now, Some((at(0), prev.clone())), at(300));
        assert_eq!((w.window.clone(), w.hits, w.misses, w.evicted), (Window::PreviousRun { at: at(0) }, 100, 10, 2));
        assert!(!w.restarted);
        // Another process, or counters that went down: since its start.
        for now in [info("b", 400, 150, 60, 7), info("a", 400, 10, 60, 7), info("a", 50, 150, 60, 7)] {
            let w = windowed(&Counters::of(&now), Some((at(0), prev.clone())), at(300));
            assert!(w.restarted, "{now:?}");
            assert_eq!((w.hits, w.misses), (now.keyspace_hits, now.keyspace_misses));
            assert!(matches!(w.window, Window::ServerStart { at: Some(_) }));
        }
        let first = windowed(&now, None, at(1000));
        assert_eq!(first.window, Window::ServerStart { at: Some(at(600)) });
        assert!(!first.restarted);
    }

    fn sample() -> KeySample {
        KeySample {
            largest: vec![
                KeySize { key: "feed:all".into(), key_type: "list".into(), bytes: 20 << 20 },
                KeySize { key: "user:1".into(), key_type: "hash".into(), bytes: 300 },
            ],
            sampled: 3,
            complete: true,
            round_trips: 3,
        }
    }

    /// A cache whose INFO answers from a list that a test changes between runs.
    fn cache(infos: Arc<Mutex<CacheInfo>>) -> MockCache {
        let mut cache = MockCache::new();
        cache.expect_info().returning(move || Ok(infos.lock().unwrap().clone()));
        cache.expect_sample_key_sizes().returning(|max, top| {
            assert_eq!((max, top), (1000, 10));
            Ok(sample())
        });
        cache
    }

    fn verdicts(r: &SectionReport) -> Vec<(&str, &str, Status)> {
        r.findings.iter().map(|f| (f.check.as_str(), f.subject.as_str(), f.verdict)).collect()
    }

    #[tokio::test]
    async fn a_full_noeviction_cache_with_a_poor_hit_rate_and_a_big_key() {
        let infos = Arc::new(Mutex::new(info("a", 3600, 50, 150, 0)));
        let r = analyze("main", &cache(infos), &PerfConfig::default(), &ProbesConfig::default(), None).await;
        assert_eq!((r.target.as_str(), r.status), ("redis:main", Status::Critical));
        assert_eq!(
            verdicts(&r),
            [
                ("eviction-policy", "main", Status::Critical),
                ("hit-rate", "main", Status::Critical),
                ("memory", "main", Status::Critical),
                ("big-key", "feed:all", Status::Warn),
                ("big-key", "user:1", Status::Ok),
                ("evictions", "main", Status::Ok),
            ]
        );
        let policy = &r.findings[0];
        assert!(policy.message.ends_with("writes will be rejected"), "{}", policy.message);
        assert_eq!(policy.action.as_deref(), Some("opsctl redis set-policy allkeys-lru"));
        let rate = &r.findings[1];
        assert!(rate.message.starts_with("hit rate 25 % (50 hits, 150 misses since the server started 1 h ago)"));
        assert_eq!(r.findings[3].message, "list feed:all: 20.0 MiB");
        assert_eq!(r.findings[3].evidence[0], "every key of the database measured (3)");
        assert!(matches!(r.window, Some(Window::ServerStart { at: Some(_) })), "{:?}", r.window);
        assert_eq!(r.queries, 4);
    }

    #[tokio::test]
    async fn a_second_run_covers_only_what_happened_since_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let infos = Arc::new(Mutex::new(info("a", 3600, 50, 150, 0)));
        let cache = cache(infos.clone());
        let (cfg, probes) = (PerfConfig::default(), ProbesConfig::default());
        let first = analyze("main", &cache, &cfg, &probes, Some(&state)).await;
        assert!(matches!(first.window, Some(Window::ServerStart { .. })));
        // 200 good lookups and 3 evictions later: 200 hits of 200 in the window, though only
        // 250 of 400 since the start (62 %, a warning).
        *infos.lock().unwrap() = info("a", 3700, 250, 150, 3);
        let second = analyze("main", &cache, &cfg, &probes, Some(&state)).await;
        assert!(matches!(second.window, Some(Window::PreviousRun { .. })), "{:?}", second.window);
        let rate = second.findings.iter().find(|f| f.check == "hit-rate").unwrap();
        assert_eq!(rate.verdict, Status::Ok);
        assert!(
            rate.message.starts_with("hit rate 100 % (200 hits, 0 misses since the previous run"),
            "{}",
            rate.message
        );
        let evictions = second.findings.iter().find(|f| f.check == "evictions").unwrap();
        assert!(evictions.message.starts_with("3 keys evicted since the previous run"), "{}", evictions.message);
        // A restart in between: back to counting since the start, and said so.
        *infos.lock().unwrap() = info("b", 10, 1, 0, 0);
        let third = analyze("main", &cache, &cfg, &probes, Some(&state)).await;
        let rate = third.findings.iter().find(|f| f.check == "hit-rate").unwrap();
        assert!(rate.evidence.iter().any(|e| e.starts_with("the server restarted")), "{rate:#?}");
    }

    #[tokio::test]
    async fn an_unreachable_cache_is_a_failed_section_and_a_denied_sample_is_unknown() {
        let mut down = MockCache::new();
        down.expect_info().returning(|| Err(ops_core::Error::unavailable("connection refused")));
        let r = analyze("main", &down, &PerfConfig::default(), &ProbesConfig::default(), None).await;
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(r.error.as_deref(), Some("INFO failed: connection refused"));

        let mut denied = MockCache::new();
        denied.expect_info().returning(|| Ok(CacheInfo { used_memory_bytes: 10, ..CacheInfo::default() }));
        denied.expect_sample_key_sizes().returning(|_, _| Err(ops_core::Error::unsupported("NOPERM")));
        let r = analyze("main", &denied, &PerfConfig::default(), &ProbesConfig::default(), None).await;
        assert_eq!(r.status, Status::Unknown);
        let f = r.findings.iter().find(|f| f.check == "big-key").unwrap();
        assert_eq!(f.message, "could not sample key sizes, MEMORY USAGE or SCAN is not allowed: NOPERM");
    }
}
