//! The reqwest-backed HTTP client for health checks.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;

use super::client::tls_config;
use crate::ports::http::{HttpClient, HttpRequest, HttpResponse};
use crate::{Error, ErrorKind, Result};

/// Requests with rustls (ring, webpki roots), no redirects followed.
#[derive(Debug, Clone)]
pub struct ReqwestHttp {
    http: reqwest::Client,
}

impl ReqwestHttp {
    /// Builds the client.
    ///
    /// # Errors
    /// `Internal` when the TLS setup fails.
    pub fn new() -> Result<Self> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ops/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("building the http client: {}", e.without_url())))?;
        Ok(Self { http })
    }
}

#[async_trait]
impl HttpClient for ReqwestHttp {
    async fn get(&self, url: &str, timeout: Duration) -> Result<HttpResponse> {
        self.send(&HttpRequest {
            method: "GET".to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: None,
            timeout,
        })
        .await
    }

    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse> {
        let started = Instant::now();
        let url = &request.url;
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| Error::invalid_input(format!("unknown http method {:?}", request.method)))?;
        let mut builder = self.http.request(method, url).timeout(request.timeout);
        for (name, value) in &request.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::invalid_input(format!("invalid header name {name:?}")))?;
            let mut value = reqwest::header::HeaderValue::from_str(value.expose())
                .map_err(|_| Error::invalid_input(format!("the value of header {name} is not a valid header value")))?;
            value.set_sensitive(true);
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let resp = builder.send().await.map_err(|e| {
            let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Unavailable };
            Error::new(kind, format!("{} {}: {}", request.method, crate::secret::redact_url(url), e.without_url()))
        })?;
        let elapsed = started.elapsed();
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(Ok(chunk)) = stream.next().await {
            body.extend_from_slice(&chunk);
            if body.len() >= 4096 {
                body.truncate(4096);
                break;
            }
        }
        Ok(HttpResponse { status, body_snippet: String::from_utf8_lossy(&body).into_owned(), elapsed })
    }
}
