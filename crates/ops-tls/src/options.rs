//! [`CheckOptions`]: thresholds, time limit, trust roots and clock of every TLS check.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How to check a certificate. Defaults are the runbooks' values: warn below 30 days, critical
/// below 14 days or expired, 10 s to connect and finish the handshake, Mozilla's roots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CheckOptions {
    /// A certificate with fewer days left than this is `warn`.
    pub warn_days: u32,
    /// A certificate with fewer days left than this, or expired, is `critical`.
    pub critical_days: u32,
    /// Time limit, in milliseconds, for name resolution, TCP connect and TLS handshake together.
    pub timeout_ms: u64,
    /// PEM file of the CA certificates to trust instead of the bundled Mozilla roots
    /// (`webpki-roots`), for private CAs.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub ca_file: Option<PathBuf>,
    /// The name the certificate must be valid for. Endpoints: also the SNI sent (default: the
    /// target's host). Files: no name is checked when unset.
    pub server_name: Option<String>,
    /// The moment to check at (default: the clock). Tests pin it to be deterministic.
    pub now: Option<DateTime<Utc>>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self { warn_days: 30, critical_days: 14, timeout_ms: 10_000, ca_file: None, server_name: None, now: None }
    }
}

impl CheckOptions {
    /// The time limit of one endpoint check.
    #[must_use]
    pub const fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The moment a check runs at: [`now`](Self::now) when set, else the clock.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }

    /// Rejects options no check can run with.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.critical_days > self.warn_days {
            return Err(Error::InvalidOption {
                option: "critical-days",
                reason: format!("{} is above warn-days ({})", self.critical_days, self.warn_days),
            });
        }
        if self.timeout_ms == 0 {
            return Err(Error::InvalidOption { option: "timeout-ms", reason: "must be above 0".to_owned() });
        }
        if let Some(name) = &self.server_name
            && rustls::pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            return Err(Error::InvalidOption {
                option: "server-name",
                reason: format!("{name:?} is neither a dns name nor an ip address"),
            });
        }
        Ok(())
    }
}
