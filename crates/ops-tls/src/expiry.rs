//! Days left and the status they map to: the runbooks' warn and critical thresholds.

use chrono::{DateTime, Utc};
use ops_core::Status;

use crate::CheckOptions;

const SECONDS_PER_DAY: i64 = 86_400;

/// Whole days from `now` until `not_after`, rounded down: 23 hours left is 0 days, and an
/// expired certificate has a negative count (like `(expiry - now) / 86400` in the runbooks,
/// but never rounding an expired certificate up to 0).
#[must_use]
pub fn days_left(not_after: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (not_after - now).num_seconds().div_euclid(SECONDS_PER_DAY)
}

/// `critical` when expired or fewer than `critical_days` are left, `warn` when fewer than
/// `warn_days` are left, `ok` otherwise.
#[must_use]
pub fn expiry_status(not_after: DateTime<Utc>, now: DateTime<Utc>, options: &CheckOptions) -> Status {
    if not_after <= now {
        return Status::Critical;
    }
    let days = days_left(not_after, now);
    if days < i64::from(options.critical_days) {
        Status::Critical
    } else if days < i64::from(options.warn_days) {
        Status::Warn
    } else {
        Status::Ok
    }
}

#[cfg(test)]
mod tests;
