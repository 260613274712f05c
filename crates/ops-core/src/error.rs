//! The one public error type of `ops-core`, and its kinds.
//!
//! Error policy: every public function returns [`Error`]. Adapters translate the errors of the
//! library they wrap (bollard, sqlx, redis, aws-sdk-s3, reqwest) into a kind and a message
//! here, at the boundary, so no adapter type leaks and no message carries a secret (connection
//! strings, keys and webhook URLs are never formatted into a message). Messages are lowercase
//! and have no trailing period. `Err` means an operation could not be performed; a check that
//! ran and found a problem is a report, not an error.

use std::fmt;
use std::time::Duration;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarsely: binaries map kinds to exit codes and HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The named thing (container, object, database, table) does not exist.
    NotFound,
    /// The remote system could not be reached or refused the connection.
    Unavailable,
    /// The operation did not finish in time.
    Timeout,
    /// Credentials were missing or rejected.
    Auth,
    /// The caller's input (config, arguments) is wrong.
    InvalidInput,
    /// The operation conflicts with the current state (already exists, already running).
    Conflict,
    /// Data failed a check: checksum mismatch, truncated stream, version mismatch.
    Integrity,
    /// The remote system does not support what was asked.
    Unsupported,
    /// A bug or an unexpected answer.
    Internal,
}

impl ErrorKind {
    /// A stable lowercase name, used in JSON output and logs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not-found",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Auth => "auth",
            Self::InvalidInput => "invalid-input",
            Self::Conflict => "conflict",
            Self::Integrity => "integrity",
            Self::Unsupported => "unsupported",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operation could not be performed. The message never contains a secret.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// An error of `kind` with a message (lowercase, no trailing period, no secrets).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    /// Shorthand for [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// Shorthand for [`ErrorKind::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// Shorthand for [`ErrorKind::Timeout`] naming the operation and the limit.
    pub fn timeout(operation: impl fmt::Display, after: Duration) -> Self {
        Self::new(ErrorKind::Timeout, format!("{operation} timed out after {after:?}"))
    }

    /// Shorthand for [`ErrorKind::Auth`].
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, message)
    }

    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// Shorthand for [`ErrorKind::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// Shorthand for [`ErrorKind::Integrity`].
    pub fn integrity(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Integrity, message)
    }

    /// Shorthand for [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// Shorthand for [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// The coarse kind of this error.
    #[must_use]
    pub const fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether trying the same operation again later may succeed.
    #[must_use]
    pub const fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::Timeout)
    }

    /// Prefixes the message with what was being done, keeping the kind.
    #[must_use]
    pub fn context(self, what: impl fmt::Display) -> Self {
        Self { kind: self.kind, message: format!("{what}: {}", self.message) }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match e.kind() {
            Io::NotFound => ErrorKind::NotFound,
            Io::PermissionDenied => ErrorKind::Auth,
            Io::TimedOut => ErrorKind::Timeout,
            Io::ConnectionRefused | Io::ConnectionReset | Io::ConnectionAborted | Io::NotConnected => {
                ErrorKind::Unavailable
            }
            Io::AlreadyExists => ErrorKind::Conflict,
            Io::InvalidInput | Io::InvalidData => ErrorKind::InvalidInput,
            Io::UnexpectedEof => ErrorKind::Integrity,
            _ => ErrorKind::Internal,
        };
        Self::new(kind, e.to_string())
    }
}

impl From<crate::config::ConfigError> for Error {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::new(ErrorKind::InvalidInput, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_only_for_transient_kinds() {
        assert!(Error::unavailable("x").is_retryable());
        assert!(Error::timeout("x", Duration::from_secs(1)).is_retryable());
        assert!(!Error::auth("x").is_retryable());
        assert!(!Error::integrity("x").is_retryable());
    }

    #[test]
    fn context_keeps_kind() {
        let e = Error::not_found("no such container").context("inspect api");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), "inspect api: no such container");
    }
}
