//! Progress events: the library reports, the binary draws (or ignores).

use serde::Serialize;

/// Something that happened during a long operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ProgressEvent {
    /// A phase started (`dump`, `verify-upload`, `manifest`, `restore`…).
    Phase {
        /// Its name.
        name: String,
    },
    /// Bytes moved so far in the current phase.
    Bytes {
        /// Uncompressed bytes read (dump) or bytes fed (restore).
        raw: u64,
        /// Compressed bytes written.
        compressed: u64,
        /// Expected raw total, when it can be estimated.
        expected: Option<u64>,
    },
    /// A note for the log.
    Note {
        /// Text.
        message: String,
    },
}

/// Receives progress events. Implementations must be cheap: they are called on the hot path.
pub trait Progress: Send + Sync {
    /// One event.
    fn event(&self, event: ProgressEvent);
}

/// Ignores every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: ProgressEvent) {}
}
