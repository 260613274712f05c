//! [`RedisCache`]: [`Cache`](crate::ports::Cache) over the redis crate (tokio).

mod client;

pub use client::RedisCache;
