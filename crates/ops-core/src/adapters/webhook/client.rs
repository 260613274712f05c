//! The reqwest-backed webhook notifier.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use crate::ports::notifier::{Delivery, Notification, NotificationLevel, Notifier};
use crate::secret::WebhookUrl;
use crate::{Error, ErrorKind, Result};

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// The webhook URL (a credential: it is never printed whole).
    pub url: WebhookUrl,
    /// Time one request may take.
    pub timeout: Duration,
    /// Retries after a failed attempt.
    pub retries: u32,
    /// Wait before the first retry; doubled each time.
    pub backoff: Duration,
}

impl WebhookOptions {
    /// 10 s timeout, 3 retries, 500 ms first backoff.
    pub fn new(url: WebhookUrl) -> Self {
        Self { url, timeout: Duration::from_secs(10), retries: 3, backoff: Duration::from_millis(500) }
    }
}

/// Posts notifications to one webhook.
#[derive(Debug, Clone)]
pub struct WebhookNotifier {
    http: reqwest::Client,
    options: WebhookOptions,
}

/// A rustls client config with ring and the webpki roots (one crypto provider in the build).
pub(crate) fn tls_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        // Unreachable with ring's defaults; fall back to TLS 1.3 only rather than panic.
        .unwrap_or_else(|_| rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS13]))
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The JSON body: Slack reads `text`; other receivers get the structured fields.
pub(crate) fn payload(n: &Notification) -> serde_json::Value {
    let icon = match n.level {
        NotificationLevel::Info => ":white_check_mark:",
        NotificationLevel::Warning => ":warning:",
        NotificationLevel::Critical => ":rotating_light:",
    };
    let mut text = format!("{icon} *{}*", n.title);
    if !n.text.is_empty() {
        text.push('\n');
        text.push_str(&n.text);
    }
    for (k, v) in &n.fields {
        text.push_str(&format!("\n• {k}: {v}"));
    }
    json!({
        "text": text,
        "title": n.title,
        "level": n.level,
        "fields": n.fields,
        "source": "ops",
    })
}

impl WebhookNotifier {
    /// Builds the HTTP client.
    ///
    /// # Errors
    /// `InvalidInput` when the URL is not http(s).
    pub fn new(options: WebhookOptions) -> Result<Self> {
        let url = url::Url::parse(options.url.expose())
            .map_err(|_| Error::invalid_input(format!("invalid webhook url {}", options.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::invalid_input(format!("webhook url {} must be http or https", options.url)));
        }
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config())
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ops/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("building the webhook client: {}", e.without_url())))?;
        Ok(Self { http, options })
    }

    async fn attempt(&self, body: &serde_json::Value) -> Result<u16> {
        let target = self.options.url.redacted();
        let resp = self.http.post(self.options.url.expose()).json(body).send().await.map_err(|e| {
            // reqwest puts the URL (a credential) in its messages: strip it.
            let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Unavailable };
            Error::new(kind, format!("webhook {target}: {}", e.without_url()))
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(status.as_u16());
        }
        let kind = match status.as_u16() {
            401 | 403 => ErrorKind::Auth,
            404 | 410 => ErrorKind::NotFound,
            429 | 500..=599 => ErrorKind::Unavailable,
            _ => ErrorKind::InvalidInput,
        };
        Err(Error::new(kind, format!("webhook {target} answered {status}")))
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn target(&self) -> String {
        self.options.url.redacted()
    }

    async fn notify(&self, notification: &Notification) -> Result<Delivery> {
        let body = payload(notification);
        let mut wait = self.options.backoff;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.attempt(&body).await {
                Ok(status) => return Ok(Delivery { target: self.target(), attempts, status }),
                Err(e) if e.is_retryable() && attempts <= self.options.retries => {
                    tracing::warn!(target = %self.target(), attempt = attempts, error = %e, "webhook delivery failed, retrying");
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                }
                Err(e) => return Err(e.context(format!("after {attempts} attempt(s)"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn slack_text_carries_title_and_fields() {
        let n = Notification {
            title: "backup of main failed".into(),
            text: "pg_dump exited 1".into(),
            level: NotificationLevel::Critical,
            fields: BTreeMap::from([("database".into(), "main".into())]),
        };
        let p = payload(&n);
        let text = p["text"].as_str().unwrap();
        assert!(text.contains("backup of main failed") && text.contains("database: main"), "{text}");
        assert_eq!(p["level"], "critical");
        assert_eq!(p["fields"]["database"], "main");
    }

    #[test]
    fn non_http_is_rejected() {
        assert!(WebhookNotifier::new(WebhookOptions::new(WebhookUrl::new("ftp://x/y"))).is_err());
    }
}
