//! [`HttpClient`]: plain HTTP(S) requests to the stack's own endpoints (health checks).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// The first bytes of the body (at most 4 KiB), lossily decoded.
    pub body_snippet: String,
    /// Time from sending the request to the end of the headers.
    pub elapsed: Duration,
}

/// A request a runbook sends (RB-002's event replay: `POST /events/replay` with a bearer
/// token). Header values may hold secrets: errors and records never show them.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD`.
    pub method: String,
    /// Where.
    pub url: String,
    /// Headers, in order.
    pub headers: Vec<(String, crate::Secret)>,
    /// The body, if any.
    pub body: Option<String>,
    /// Longest wait for the answer.
    pub timeout: Duration,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &crate::secret::redact_url(&self.url))
            .field("headers", &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("body_bytes", &self.body.as_ref().map(String::len))
            .finish_non_exhaustive()
    }
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

    /// Sends `request`.
    ///
    /// # Errors
    /// `InvalidInput` for a method or header the client cannot send; as [`HttpClient::get`].
    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse>;
}
