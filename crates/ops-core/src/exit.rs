//! Exit codes of the binaries (`opsctl`, `ops-server`): stable, documented, one place. Two
//! tables: the codes of a command that failed ([`for_kind`]), and the monitoring-plugin codes
//! of a check ([`plugin`], [`code_of`]) that `opsctl triage`, `probe` and `tls` end with, as
//! Nagios, Icinga and Sensu expect.

use crate::{ErrorKind, Status};

/// Success.
pub const OK: u8 = 0;
/// The command ran and found problems (a failed check, an invalid configuration).
pub const FINDINGS: u8 = 1;
/// The command line is wrong.
pub const USAGE: u8 = 2;
/// The configuration or an argument value is wrong.
pub const INVALID_INPUT: u8 = 3;
/// A system could not be reached or timed out.
pub const UNAVAILABLE: u8 = 4;
/// Credentials were missing or rejected.
pub const AUTH: u8 = 5;
/// Something named does not exist.
pub const NOT_FOUND: u8 = 6;
/// The operation conflicts with the current state (already running, already exists).
pub const CONFLICT: u8 = 7;
/// Data failed an integrity check.
pub const INTEGRITY: u8 = 8;
/// A bug or an unexpected answer.
pub const INTERNAL: u8 = 70;

/// The `--help` footer listing the codes.
pub const HELP: &str = "Exit codes: 0 ok, 1 problems found, 2 usage, 3 invalid config or input, \
4 unavailable or timed out, 5 auth, 6 not found, 7 conflict, 8 integrity, 70 internal";

/// The exit code for an error kind.
#[must_use]
pub const fn for_kind(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::InvalidInput => INVALID_INPUT,
        ErrorKind::Unavailable | ErrorKind::Timeout => UNAVAILABLE,
        ErrorKind::Auth => AUTH,
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::Conflict => CONFLICT,
        ErrorKind::Integrity => INTEGRITY,
        _ => INTERNAL,
    }
}

/// Monitoring-plugin exit codes.
pub mod plugin {
    /// Everything fine.
    pub const OK: u8 = 0;
    /// A warning threshold is crossed.
    pub const WARNING: u8 = 1;
    /// Broken, or about to be.
    pub const CRITICAL: u8 = 2;
    /// The check could not tell (or could not run: bad config, bad arguments).
    pub const UNKNOWN: u8 = 3;
}

/// The plugin exit code of a check's statuses: critical before unknown before warning, as
/// plugins do.
pub fn code_of(statuses: impl IntoIterator<Item = Status>) -> u8 {
    let all: Vec<Status> = statuses.into_iter().collect();
    if all.contains(&Status::Critical) {
        plugin::CRITICAL
    } else if all.contains(&Status::Unknown) {
        plugin::UNKNOWN
    } else if all.contains(&Status::Warn) {
        plugin::WARNING
    } else {
        plugin::OK
    }
}

/// The plugin exit code of a triage: its worst incident's severity, so a P3 (host load) is a
/// warning and not a page. P1 and P2 are critical, P3 and P4 warnings, no incident ok.
#[must_use]
pub const fn code_of_severity(severity: Option<crate::Severity>) -> u8 {
    match severity {
        Some(crate::Severity::P1 | crate::Severity::P2) => plugin::CRITICAL,
        Some(crate::Severity::P3 | crate::Severity::P4) => plugin::WARNING,
        None => plugin::OK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_codes() {
        assert_eq!(code_of([]), plugin::OK);
        assert_eq!(code_of([Status::Ok, Status::Warn]), plugin::WARNING);
        assert_eq!(code_of([Status::Warn, Status::Unknown]), plugin::UNKNOWN);
        assert_eq!(code_of([Status::Unknown, Status::Critical, Status::Warn]), plugin::CRITICAL);
    }

    #[test]
    fn a_triage_exits_by_its_worst_severity() {
        use crate::Severity;
        assert_eq!(code_of_severity(Some(Severity::P1)), plugin::CRITICAL);
        assert_eq!(code_of_severity(Some(Severity::P2)), plugin::CRITICAL);
        assert_eq!(code_of_severity(Some(Severity::P3)), plugin::WARNING, "host load is not a page");
        assert_eq!(code_of_severity(Some(Severity::P4)), plugin::WARNING);
        assert_eq!(code_of_severity(None), plugin::OK);
    }
}
