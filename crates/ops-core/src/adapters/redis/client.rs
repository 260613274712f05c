//! The redis-backed cache adapter.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use crate::ports::cache::{Cache, CacheInfo, CachePing, QueueLength};
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
}

/// CONFIG renamed or disabled (a common hardening) is `Unsupported`, not a bug.
fn config_err(e: Error) -> Error {
    if e.message().contains("unknown command") { Error::new(ErrorKind::Unsupported, e.message().to_owned()) } else { e }
}
