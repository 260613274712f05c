//! [`Notifier`]: where people are told (a Slack-compatible webhook).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;

/// How loud a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum NotificationLevel {
    /// Something worked (a backup succeeded).
    Info,
    /// Something needs attention soon.
    Warning,
    /// Something failed.
    Critical,
}

/// A message for people, with structured fields for machines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notification {
    /// One line: what happened (`backup of main failed`).
    pub title: String,
    /// Details.
    pub text: String,
    /// Level.
    pub level: NotificationLevel,
    /// Structured fields (`database`, `size`, `duration`, `error`).
    pub fields: BTreeMap<String, String>,
}

/// A delivered notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// Where it went, without secrets.
    pub target: String,
    /// Attempts it took (1 when the first one succeeded).
    pub attempts: u32,
    /// HTTP status of the accepting response.
    pub status: u16,
}

/// A destination for notifications.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Where notifications go, without secrets.
    fn target(&self) -> String;

    /// Delivers, retrying transient failures with backoff.
    ///
    /// # Errors
    /// `Unavailable`/`Timeout` after the last retry, `Auth`/`InvalidInput` when the receiver
    /// rejects the request (not retried).
    async fn notify(&self, notification: &Notification) -> Result<Delivery>;
}
