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
        // Forget clients that have been idle long enough to be full again (a reload can
        // change the keys; public readers come and go): a client being limited keeps its
        // bucket, so a flood of new addresses does not reset anyone's limit. Past a hard cap
        // (that many clients limited at once), start over.
        if buckets.len() > 1024 {
            buckets.retain(|_, b| now.saturating_duration_since(b.at).as_secs_f64() * rate < burst);
            if buckets.len() > 16_384 {
                buckets.clear();
            }
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

/// The bucket of a client address: an IPv4 address, or an IPv6 address's /64 (one host
/// rotating through its prefix is one client).
#[must_use]
pub fn client_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
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

    #[test]
    fn a_flood_of_new_clients_does_not_reset_a_limited_one() {
        let r = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..20 {
            assert!(r.check("busy", 10, t0).is_ok());
        }
        assert!(r.check("busy", 10, t0).is_err());
        for i in 0..2000 {
            let _ = r.check(&format!("client-{i}"), 10, t0 + Duration::from_millis(10));
        }
        assert!(r.check("busy", 10, t0 + Duration::from_millis(20)).is_err(), "still limited");
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_eq!(client_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
        assert_eq!(client_key("10.0.0.1".parse().unwrap()), "10.0.0.1");
    }
}
