//! How amounts read to a person: the one formatter for bytes, durations, latencies, counts and
//! shares, used by reports, tables and messages alike.

use std::time::Duration;

/// `512 B`, `1.5 KiB`, `256.0 MiB`, `3.2 GiB` (1024-based, like `free -h` and `docker stats`).
#[allow(clippy::cast_precision_loss)] // display only
#[must_use]
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// [`human_bytes`] of a measured (fractional, possibly negative) amount, rounded to whole
/// bytes; a negative amount reads as `0 B`.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // display only
#[must_use]
pub fn human_bytes_f64(bytes: f64) -> String {
    human_bytes(if bytes.is_finite() && bytes > 0.0 { bytes.round() as u64 } else { 0 })
}

/// The reverse of [`human_bytes`] for what a person types: `500`, `64k`, `100M`, `100MiB`,
/// `1.5G`, `2 GiB` (1024-based; `KB`/`MB`/`GB` read the same).
///
/// # Errors
/// A message naming what was expected.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{s:?} is not an amount of bytes (like 100MiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("{s:?}: unknown unit {other:?} (B, KiB, MiB, GiB, TiB)")),
    };
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(bytes.round() as u64)
}

/// `45 s`, `4 min`, `2 h 5 min`, `3 d 4 h`: an age or a span.
#[must_use]
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 if (s % 3600) / 60 == 0 => format!("{} h", s / 3600),
        3600..86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ if (s % 86_400) / 3600 == 0 => format!("{} d", s / 86_400),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `0.4 ms`, `12 ms`, `1.5 s`: a latency, where milliseconds matter.
#[must_use]
pub fn human_latency(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1_000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `1,234,567`.
#[must_use]
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 query`, `3 queries`.
#[must_use]
pub fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `part` over `whole` in percent; 0 when `whole` is 0.
#[allow(clippy::cast_precision_loss)] // counters and sizes far below 2^52 in practice
#[must_use]
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn byte_amounts_read_as_typed() {
        use super::parse_bytes;
        assert_eq!(parse_bytes("500"), Ok(500));
        assert_eq!(parse_bytes("64k"), Ok(65_536));
        assert_eq!(parse_bytes("100MiB"), Ok(100 << 20));
        assert_eq!(parse_bytes("1.5G"), Ok(3 << 29));
        assert_eq!(parse_bytes("2 GiB"), Ok(2 << 30));
        assert!(parse_bytes("ten").is_err() && parse_bytes("5 parsecs").is_err() && parse_bytes("").is_err());
    }

    use super::*;

    #[test]
    fn amounts_read_like_the_tools_people_know() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(human_bytes_f64(11.3 * 1024.0 * 1024.0), "11.3 MiB");
        assert_eq!(human_bytes_f64(-4.0), "0 B");
        assert_eq!(human_duration(Duration::from_secs(45)), "45 s");
        assert_eq!(human_duration(Duration::from_secs(7500)), "2 h 5 min");
        assert_eq!(human_duration(Duration::from_secs(3 * 86_400 + 4 * 3600)), "3 d 4 h");
        assert_eq!(human_latency(Duration::from_micros(400)), "0.4 ms");
        assert_eq!(human_latency(Duration::from_millis(1500)), "1500 ms");
        assert_eq!(human_latency(Duration::from_secs(12)), "12.0 s");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(999), "999");
        assert!((percent(1, 4) - 25.0).abs() < f64::EPSILON);
        assert!(percent(1, 0).abs() < f64::EPSILON);
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        let cases = [(0, "0 s"), (59, "59 s"), (240, "4 min"), (7200, "2 h"), (7500, "2 h 5 min")];
        for (secs, shown) in cases {
            assert_eq!(human_duration(Duration::from_secs(secs)), shown);
        }
        assert_eq!(human_duration(Duration::from_secs(3 * 86_400 + 4 * 3600 + 9)), "3 d 4 h");
        assert_eq!(human_duration(Duration::from_secs(2 * 86_400)), "2 d");
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(256 * 1024 * 1024), "256.0 MiB");
        assert_eq!(percent(1, 4), 25.0);
        assert_eq!(percent(1, 0), 0.0);
    }
}
