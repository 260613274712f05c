//! [`WebhookNotifier`]: [`Notifier`](crate::ports::Notifier) that POSTs Slack-compatible JSON,
//! and [`ReqwestHttp`]: [`HttpClient`](crate::ports::HttpClient) for health checks.

mod client;
mod http;

pub use client::{WebhookNotifier, WebhookOptions};
pub use http::ReqwestHttp;
