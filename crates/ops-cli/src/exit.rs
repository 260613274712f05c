//! Exit codes of `opsctl`: stable, documented, one place.

use ops_core::ErrorKind;

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
