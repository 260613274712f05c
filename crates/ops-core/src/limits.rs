//! Limits on the numbers a caller gives: a timeout, a sample count, a duration. Every value
//! from a flag, a query string or a request body is checked against these before it sizes an
//! allocation or a wait, so no input can abort the process (a read key once asked for
//! `samples=1000000000000`) or overflow a deadline.

use std::time::Duration;

use crate::{Error, Result};

/// Longest time one probe, check or connection may take.
pub const MAX_PROBE_TIMEOUT_SECS: u64 = 3600;
/// Most requests per endpoint in a performance analysis.
pub const MAX_HTTP_SAMPLES: usize = 1000;
/// Most bytes a log check reads from the end of a file or a container's log.
pub const MAX_LOG_READ_BYTES: u64 = 256 << 20;
/// Most probes run at once.
pub const MAX_CONCURRENCY: usize = 256;
/// Longest interval between two runs of a repeated check (`--watch`).
pub const MAX_INTERVAL_SECS: u64 = 86_400;
/// Most psql sessions one restore loads a plain dump's data over (`restore-jobs`).
pub const MAX_RESTORE_JOBS: usize = 16;
/// Longest age or duration a caller may name (`--older-than`, `--longer-than`).
pub const MAX_AGE_SECS: u64 = 366 * 86_400;

/// Checks that `value` is within `min..=max`.
///
/// # Errors
/// `InvalidInput` naming `name` and the range (never the value: it may be anything).
pub fn check_range<T: PartialOrd + std::fmt::Display>(name: &str, value: T, min: T, max: T) -> Result<T> {
    if value < min || value > max {
        return Err(Error::invalid_input(format!("{name} must be between {min} and {max}")));
    }
    Ok(value)
}

/// Parses a duration written as seconds (`90`) or with units (`10m`, `2h30m`, `1d`), at most
/// `max`.
///
/// # Errors
/// A message naming the accepted forms, or the limit.
pub fn parse_duration(s: &str, max: Duration) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let too_long = || format!("{s:?} is longer than {} s", max.as_secs());
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs)).filter(|d| *d <= max).ok_or_else(too_long);
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("{s:?}: use a number with s, m, h or d, like 10m")),
        };
        let n: u64 = number.parse().map_err(|_| format!("{s:?}: a unit needs a number before it, like 10m"))?;
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(too_long)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 && !s.starts_with('0') {
        return Err(format!("{s:?}: use a number with s, m, h or d, like 10m"));
    }
    Some(Duration::from_secs(total)).filter(|d| *d <= max).ok_or_else(too_long)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_durations() {
        assert_eq!(check_range("samples", 5, 1, 10).unwrap(), 5);
        let e = check_range("samples", 1_000_000_000_000_u64, 1, 1000).unwrap_err();
        assert_eq!(e.message(), "samples must be between 1 and 1000");
        let max = Duration::from_secs(MAX_AGE_SECS);
        assert_eq!(parse_duration("10m", max), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h30m", max), Ok(Duration::from_secs(9000)));
        assert_eq!(parse_duration("90", max), Ok(Duration::from_secs(90)));
        for bad in
            ["18446744073709551615d", "18446744073709551615", "999999999999999999m", "400d", "10 minutes", "m", "5x"]
        {
            assert!(parse_duration(bad, max).is_err(), "{bad}");
        }
    }
}
