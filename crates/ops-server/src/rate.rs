//! Requests per key: a token bucket for each API key (by fingerprint, never the key), so one
//! caller cannot keep the server, or the databases behind the read routes, busy. Only keys
//! that authenticated reach it, so it holds at most one bucket per configured key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default sustained rate per key.
pub const DEFAULT_PER_SECOND: u32 = 20;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets by key fingerprint.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Takes one token for `who` at `per_second` (bursts of twice that); `Err` with the wait
    /// until the next token when there is none.
    pub fn check(&self, who: &str, per_second: u32, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(per_second.max(1));
        let burst = rate * 2.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Keys come from the configuration; a reload can change them, so forget old ones.
        if buckets.len() > 1024 {
            buckets.clear();
        }
        let b = buckets.entry(who.to_owned()).or_insert(Bucket { tokens: burst, at: now });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_limits_then_refills() {
        let r = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..20 {
            assert!(r.check("k", 10, t0).is_ok());
        }
        let wait = r.check("k", 10, t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(r.check("other", 10, t0).is_ok(), "keys have their own buckets");
        assert!(r.check("k", 10, t0 + Duration::from_millis(150)).is_ok());
    }
}
