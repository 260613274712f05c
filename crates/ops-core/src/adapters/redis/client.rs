//! The redis-backed cache adapter.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use crate::ports::cache::{Cache, CacheInfo, CachePing, KeySample, KeySize, QueueLength};
use crate::secret::SecretUrl;
use crate::{Error, ErrorKind, Result};

/// A Redis server reached by URL (`redis://:password@host:port/db`).
#[derive(Debug, Clone)]
pub struct RedisCache {
    client: redis::Client,
    url: SecretUrl,
    timeout: Duration,
}

/// Which authentication problem an error is, if any.
enum AuthProblem {
    NoAuth,
    WrongPass,
}

fn auth_problem(e: &redis::RedisError) -> Option<AuthProblem> {
    let text = e.to_string();
    if e.code() == Some("NOAUTH") || text.contains("NOAUTH") {
        Some(AuthProblem::NoAuth)
    } else if e.code() == Some("WRONGPASS")
        || text.contains("WRONGPASS")
        || text.contains("invalid password")
        || e.kind() == redis::ErrorKind::AuthenticationFailed
    {
        Some(AuthProblem::WrongPass)
    } else {
        None
    }
}

fn redis_err(e: &redis::RedisError, what: &str) -> Error {
    let kind = if auth_problem(e).is_some() {
        ErrorKind::Auth
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Internal
    };
    // The crate's messages hold server replies and io errors, not the URL.
    Error::new(kind, format!("{what}: {e}"))
}

impl RedisCache {
    /// Prepares the adapter; nothing connects until the first call.
    ///
    /// # Errors
    /// `InvalidInput` when the URL is not a Redis URL.
    pub fn new(url: SecretUrl, timeout: Duration) -> Result<Self> {
        let client =
            redis::Client::open(url.expose()).map_err(|_| Error::invalid_input(format!("invalid redis url {url}")))?;
        Ok(Self { client, url, timeout })
    }

    async fn connect(&self) -> std::result::Result<MultiplexedConnection, redis::RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        self.client.get_multiplexed_async_connection_with_config(&config).await
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd, what: &str) -> Result<T> {
        let mut conn = self.connect().await.map_err(|e| redis_err(&e, &format!("{what} on {}", self.url)))?;
        cmd.query_async(&mut conn).await.map_err(|e| redis_err(&e, what))
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn ping(&self) -> Result<CachePing> {
        let started = Instant::now();
        let result = async {
            let mut conn = self.connect().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        }
        .await;
        match result {
            Ok(_) => Ok(CachePing::Pong { latency: started.elapsed() }),
            Err(e) => match auth_problem(&e) {
                Some(AuthProblem::NoAuth) => Ok(CachePing::NoAuth),
                Some(AuthProblem::WrongPass) => Ok(CachePing::WrongPass),
                None => Err(redis_err(&e, &format!("ping {}", self.url))),
            },
        }
    }

    async fn info(&self) -> Result<CacheInfo> {
        let text: String = self.run(redis::cmd("INFO").arg("everything"), "INFO").await?;
        Ok(CacheInfo::parse(&text))
    }

    async fn queue_lengths(&self, queues: &[String]) -> Result<Vec<QueueLength>> {
        let mut conn = self.connect().await.map_err(|e| redis_err(&e, &format!("connect to {}", self.url)))?;
        let mut out = Vec::with_capacity(queues.len());
        for name in queues {
            let length: u64 = redis::cmd("LLEN").arg(name).query_async(&mut conn).await.map_err(|e| {
                let err = redis_err(&e, &format!("LLEN {name}"));
                if e.to_string().contains("WRONGTYPE") {
                    Error::invalid_input(format!("queue {name} is not a list"))
                } else {
                    err
                }
            })?;
            out.push(QueueLength { name: name.clone(), length });
        }
        Ok(out)
    }

    async fn config_get(&self, key: &str) -> Result<Option<String>> {
        let pairs: Vec<String> = self
            .run(redis::cmd("CONFIG").arg("GET").arg(key), &format!("CONFIG GET {key}"))
            .await
            .map_err(config_err)?;
        Ok(pairs.chunks(2).find(|kv| kv.len() == 2 && kv[0].eq_ignore_ascii_case(key)).map(|kv| kv[1].clone()))
    }

    async fn config_set(&self, key: &str, value: &str) -> Result<()> {
        let _: String = self
            .run(redis::cmd("CONFIG").arg("SET").arg(key).arg(value), &format!("CONFIG SET {key}"))
            .await
            .map_err(|e| {
                let e = config_err(e);
                if e.kind() == ErrorKind::Internal {
                    Error::new(ErrorKind::InvalidInput, e.message().to_owned())
                } else {
                    e
                }
            })?;
        Ok(())
    }

    async fn sample_key_sizes(&self, max_keys: u64, top: usize) -> Result<KeySample> {
        self.sample(max_keys, top).await
    }
}

/// CONFIG renamed or disabled (a common hardening) is `Unsupported`, not a bug.
fn config_err(e: Error) -> Error {
    if e.message().contains("unknown command") { Error::new(ErrorKind::Unsupported, e.message().to_owned()) } else { e }
}

/// Keys asked for per `SCAN` call at most (a hint: Redis may return a few more or fewer).
const SCAN_COUNT: u64 = 500;
/// Keys measured per pipeline: one round trip without a reply buffer that grows unbounded.
const PIPELINE_KEYS: usize = 100;

/// A key fit to be shown: bytes that are not UTF-8 as `\xNN`.
fn shown_key(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len());
    for chunk in key.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// `SCAN` until `max_keys` distinct keys are collected or the cursor comes back to 0. Empty
/// pages (a keyspace of mostly expired keys) are bounded too: at most four calls per page
/// that would be needed.
async fn scan_keys(conn: &mut MultiplexedConnection, max_keys: u64) -> Result<(Vec<Vec<u8>>, bool, u32)> {
    let mut seen = std::collections::HashSet::new();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let max_calls = u32::try_from(max_keys.div_ceil(SCAN_COUNT).saturating_mul(4)).unwrap_or(u32::MAX).max(8);
    let (mut cursor, mut calls, mut left_out) = (0u64, 0u32, false);
    loop {
        let wanted = max_keys.saturating_sub(keys.len() as u64).clamp(10, SCAN_COUNT);
        let (next, page): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(wanted)
            .query_async(conn)
            .await
            .map_err(|e| denied(&redis_err(&e, "SCAN")))?;
        calls += 1;
        for key in page {
            if seen.contains(&key) {
                continue;
            }
            if keys.len() as u64 >= max_keys {
                left_out = true;
                break;
            }
            seen.insert(key.clone());
            keys.push(key);
        }
        cursor = next;
        if cursor == 0 {
            return Ok((keys, !left_out, calls));
        }
        if keys.len() as u64 >= max_keys || calls >= max_calls {
            return Ok((keys, false, calls));
        }
    }
}

/// A command renamed away or refused by an ACL is `Unsupported`: the analysis reports it
/// and goes on.
fn denied(e: &Error) -> Error {
    let m = e.message();
    if m.contains("unknown command") || m.contains("NOPERM") {
        Error::new(ErrorKind::Unsupported, m.to_owned())
    } else {
        Error::new(e.kind(), m.to_owned())
    }
}

impl RedisCache {
    async fn sample(&self, max_keys: u64, top: usize) -> Result<KeySample> {
        let mut sample = KeySample::default();
        if max_keys == 0 {
            return Ok(sample);
        }
        let mut conn = self.connect().await.map_err(|e| redis_err(&e, &format!("connect to {}", self.url)))?;
        let (keys, complete, calls) = scan_keys(&mut conn, max_keys).await?;
        sample.round_trips = calls;
        sample.complete = complete;
        let mut sizes: Vec<(&[u8], u64)> = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(PIPELINE_KEYS) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.cmd("MEMORY").arg("USAGE").arg(key).arg("SAMPLES").arg(0);
            }
            let replies: Vec<Option<u64>> =
                pipe.query_async(&mut conn).await.map_err(|e| denied(&redis_err(&e, "MEMORY USAGE")))?;
            sample.round_trips += 1;
            // A key that expired since the SCAN answers nil: it is simply not measured.
            sizes.extend(chunk.iter().zip(replies).filter_map(|(k, bytes)| bytes.map(|b| (k.as_slice(), b))));
        }
        sample.sampled = sizes.len() as u64;
        sizes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        sizes.truncate(top);
        if !sizes.is_empty() {
            let mut pipe = redis::pipe();
            for (key, _) in &sizes {
                pipe.cmd("TYPE").arg(*key);
            }
            let types: Vec<String> = pipe.query_async(&mut conn).await.map_err(|e| denied(&redis_err(&e, "TYPE")))?;
            sample.round_trips += 1;
            sample.largest = sizes
                .iter()
                .zip(types)
                .map(|((key, bytes), key_type)| KeySize { key: shown_key(key), key_type, bytes: *bytes })
                .collect();
        }
        Ok(sample)
    }
}
