//! [`Cache`]: a Redis server.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;

/// The answer to PING. Authentication problems are answers, told apart like redis-cli does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum CachePing {
    /// `PONG`.
    Pong {
        /// Round trip of the PING.
        latency: Duration,
    },
    /// `NOAUTH`: the server needs a password and none was given.
    NoAuth,
    /// `WRONGPASS`: the username/password pair was rejected.
    WrongPass,
}

/// Parsed `INFO`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CacheInfo {
    /// `redis_version`.
    pub version: String,
    /// `role` (`master`, `slave`).
    pub role: String,
    /// `used_memory`.
    pub used_memory_bytes: u64,
    /// `maxmemory` (`None` when 0: no limit).
    pub maxmemory_bytes: Option<u64>,
    /// `maxmemory_policy` (`noeviction`, `allkeys-lru`).
    pub maxmemory_policy: String,
    /// `keyspace_hits`.
    pub keyspace_hits: u64,
    /// `keyspace_misses`.
    pub keyspace_misses: u64,
    /// `evicted_keys`.
    pub evicted_keys: u64,
    /// `connected_clients`.
    pub connected_clients: u64,
    /// `uptime_in_seconds`.
    pub uptime_seconds: u64,
    /// Every `key:value` line, for what the fields above do not cover.
    pub raw: BTreeMap<String, String>,
}

impl CacheInfo {
    /// Parses the text of `INFO` (sections, `key:value` lines, comments).
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let raw: BTreeMap<String, String> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let num = |k: &str| raw.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let text_of = |k: &str| raw.get(k).cloned().unwrap_or_default();
        Self {
            version: text_of("redis_version"),
            role: text_of("role"),
            used_memory_bytes: num("used_memory"),
            maxmemory_bytes: Some(num("maxmemory")).filter(|m| *m > 0),
            maxmemory_policy: text_of("maxmemory_policy"),
            keyspace_hits: num("keyspace_hits"),
            keyspace_misses: num("keyspace_misses"),
            evicted_keys: num("evicted_keys"),
            connected_clients: num("connected_clients"),
            uptime_seconds: num("uptime_in_seconds"),
            raw,
        }
    }

    /// Hits over lookups, 0.0–1.0; `None` before the first lookup.
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // counters far below 2^52
    pub fn hit_rate(&self) -> Option<f64> {
        let total = self.keyspace_hits + self.keyspace_misses;
        (total > 0).then(|| self.keyspace_hits as f64 / total as f64)
    }

    /// Used memory over `maxmemory`, 0.0–1.0+; `None` without a limit.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn memory_share(&self) -> Option<f64> {
        self.maxmemory_bytes.map(|max| self.used_memory_bytes as f64 / max as f64)
    }
}

/// Length of one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueLength {
    /// Key name.
    pub name: String,
    /// `LLEN` (0 when the key does not exist, as Redis says).
    pub length: u64,
}

/// The size of one key, as `MEMORY USAGE key SAMPLES 0` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeySize {
    /// The key (bytes that are not UTF-8 shown as `\xNN`).
    pub key: String,
    /// `TYPE` (`string`, `list`, `hash`, `set`, `zset`, `stream`).
    pub key_type: String,
    /// Bytes the key and its value take, every element counted.
    pub bytes: u64,
}

/// The largest keys of a bounded sample of the keyspace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeySample {
    /// The largest keys sampled, largest first.
    pub largest: Vec<KeySize>,
    /// Distinct keys whose size was measured.
    pub sampled: u64,
    /// Whether the scan went through the whole keyspace (every key was measured).
    pub complete: bool,
    /// Round trips sent (SCAN calls and pipelines).
    pub round_trips: u32,
}

/// A Redis server.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Cache: Send + Sync {
    /// PING, with the configured password.
    ///
    /// # Errors
    /// `Unavailable` or `Timeout` when nothing answers.
    async fn ping(&self) -> Result<CachePing>;

    /// `INFO`, parsed.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn info(&self) -> Result<CacheInfo>;

    /// `LLEN` of each queue.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`, `InvalidInput` when a key is not a list.
    async fn queue_lengths(&self, queues: &[String]) -> Result<Vec<QueueLength>>;

    /// `CONFIG GET key`; `None` when the parameter does not exist.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`, `Unsupported` when CONFIG is disabled.
    async fn config_get(&self, key: &str) -> Result<Option<String>>;

    /// `CONFIG SET key value`.
    ///
    /// # Errors
    /// `InvalidInput` for an unknown key or bad value, `Unsupported` when CONFIG is disabled.
    async fn config_set(&self, key: &str, value: &str) -> Result<()>;

    /// The `top` largest of at most `max_keys` keys of the selected database: `SCAN` (never
    /// `KEYS *`), then `MEMORY USAGE key SAMPLES 0` in bounded pipelines, then `TYPE` of the
    /// `top` kept. `MEMORY USAGE` and `SCAN` leave `keyspace_hits`/`misses` alone; each `TYPE`
    /// counts as one lookup.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`, `Unsupported` when `MEMORY` or `SCAN` is disabled or denied.
    async fn sample_key_sizes(&self, max_keys: u64, top: usize) -> Result<KeySample>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_info() {
        let text = "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:42\r\n\r\n# Clients\r\nconnected_clients:3\r\n# Memory\r\nused_memory:1048576\r\nmaxmemory:2097152\r\nmaxmemory_policy:noeviction\r\n# Stats\r\nkeyspace_hits:60\r\nkeyspace_misses:40\r\nevicted_keys:2\r\n# Replication\r\nrole:master\r\n";
        let info = CacheInfo::parse(text);
        assert_eq!(info.version, "7.0.15");
        assert_eq!(info.role, "master");
        assert_eq!(info.connected_clients, 3);
        assert_eq!(info.maxmemory_bytes, Some(2_097_152));
        assert_eq!(info.maxmemory_policy, "noeviction");
        assert_eq!(info.evicted_keys, 2);
        assert_eq!(info.hit_rate(), Some(0.6));
        assert_eq!(info.memory_share(), Some(0.5));
    }

    #[test]
    fn no_limit_no_share() {
        let info = CacheInfo::parse("maxmemory:0\nused_memory:5\n");
        assert_eq!(info.maxmemory_bytes, None);
        assert_eq!(info.memory_share(), None);
        assert_eq!(info.hit_rate(), None);
    }
}
