//! Sending a notification to every configured destination; a delivery failure is recorded,
//! never turned into the operation's failure.

use ops_core::Context;
use ops_core::ports::Notification;
use serde::{Deserialize, Serialize};

/// What happened to one notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationOutcome {
    /// Where it went (redacted).
    pub target: String,
    /// Whether it was accepted.
    pub delivered: bool,
    /// Why not.
    pub error: Option<String>,
}

pub(crate) async fn notify_all(ctx: &Context, notification: &Notification) -> Vec<NotificationOutcome> {
    let sends = ctx.notifiers.iter().map(|n| async move {
        match n.notify(notification).await {
            Ok(_) => NotificationOutcome { target: n.target(), delivered: true, error: None },
            Err(e) => {
                tracing::warn!(target = %n.target(), error = %e, "notification not delivered");
                NotificationOutcome { target: n.target(), delivered: false, error: Some(e.to_string()) }
            }
        }
    });
    futures::future::join_all(sends).await
}
