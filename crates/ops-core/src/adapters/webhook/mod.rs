//! [`WebhookNotifier`]: [`Notifier`](crate::ports::Notifier) that POSTs Slack-compatible JSON.

mod client;

pub use client::{WebhookNotifier, WebhookOptions};
