//! The one public error type of `ops-tls`.
//!
//! Error policy: `Err` means a check could not be performed because its input is wrong: an
//! unparsable target, an unreadable or empty CA file, a path that does not exist, options out of
//! range. A check that ran and found a problem (a refused connection, a handshake that never
//! answers, an expired, untrusted or misnamed certificate) is a report with
//! [`Status::Critical`](ops_core::Status::Critical) and evidence, never an `Err`. Messages are
//! lowercase, have no trailing period, and never contain key material.

use std::path::PathBuf;

use ops_core::ErrorKind;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A TLS check could not be performed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint to check could not be parsed (`host`, `host:port`, `[v6]:port`, `https://host/`).
    #[error("invalid tls target {target:?}: {reason}")]
    InvalidTarget {
        /// The target as given.
        target: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An option is malformed or out of range.
    #[error("invalid tls option {option}: {reason}")]
    InvalidOption {
        /// The option's kebab-case name.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A file or directory given as input could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A CA file holds no usable certificate.
    #[error("invalid ca file {}: {reason}", path.display())]
    InvalidCaFile {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Certificate bytes could not be parsed.
    #[error("invalid certificate: {reason}")]
    InvalidCertificate {
        /// What the parser said.
        reason: String,
    },
    /// A bug: the TLS library refused a configuration, a background task panicked.
    #[error("internal error: {0}")]
    Internal(String),
    /// The audit log could not be written: nothing was changed.
    #[error("{0}")]
    Audit(ops_core::Error),
}

impl Error {
    /// The coarse kind of this error, which binaries map to exit codes and HTTP statuses.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidTarget { .. }
            | Self::InvalidOption { .. }
            | Self::InvalidCaFile { .. }
            | Self::InvalidCertificate { .. } => ErrorKind::InvalidInput,
            Self::Read { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => ErrorKind::Auth,
                _ => ErrorKind::InvalidInput,
            },
            Self::Internal(_) => ErrorKind::Internal,
            Self::Audit(e) => e.kind(),
        }
    }

    /// Whether trying again later may succeed: never, since every error is about the input.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Unavailable | ErrorKind::Timeout)
    }

    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Read { path: path.into(), source }
    }

    /// An invalid target; credentials in it (`user:password@`) are replaced by `***`.
    pub(crate) fn invalid_target(target: &str, reason: impl Into<String>) -> Self {
        let shown = match target.rsplit_once('@') {
            Some((before, after)) => {
                let scheme = before.split_once("://").map_or("", |(scheme, _)| scheme);
                if scheme.is_empty() { format!("***@{after}") } else { format!("{scheme}://***@{after}") }
            }
            None => target.to_owned(),
        };
        Self::InvalidTarget { target: shown, reason: reason.into() }
    }
}

impl From<Error> for ops_core::Error {
    fn from(e: Error) -> Self {
        Self::new(e.kind(), e.to_string())
    }
}
