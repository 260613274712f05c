//! [`HttpClient`]: plain HTTP(S) requests to the stack's own endpoints (health checks).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// The first bytes of the body (at most 4 KiB), lossily decoded.
    pub body_snippet: String,
    /// Time from sending the request to the end of the headers.
    pub elapsed: Duration,
}

/// Sends requests; redirects are not followed, so a redirect is visible as such.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait HttpClient: Send + Sync {
    /// `GET url`.
    ///
    /// # Errors
    /// `Unavailable` (connection refused, DNS, TLS), `Timeout`.
    async fn get(&self, url: &str, timeout: Duration) -> Result<HttpResponse>;
}
