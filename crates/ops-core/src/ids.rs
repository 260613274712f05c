//! Record ids (`run-…`, `inc-…`, `mnt-…`): a prefix, the UTC time to the second and four
//! random bytes, so ids sort by time and two replicas never make the same one. One home for
//! making and checking them: a caller's id is checked before any store is asked.

use chrono::{DateTime, Utc};

/// A new id: `{prefix}-20261202T114500Z-7f3a09bc`.
#[must_use]
pub fn new_id(prefix: &str, now: DateTime<Utc>) -> String {
    let mut bytes = [0u8; 4];
    // A clock-only id would collide across replicas; without randomness, the nanoseconds.
    if getrandom::fill(&mut bytes).is_err() {
        bytes = now.timestamp_subsec_nanos().to_be_bytes();
    }
    format!("{prefix}-{}-{}", now.format("%Y%m%dT%H%M%SZ"), hex::encode(bytes))
}

/// Whether `id` has the shape of an id with `prefix` (what a caller may ask for).
#[must_use]
pub fn valid_id(prefix: &str, id: &str) -> bool {
    id.len() <= 64
        && id.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('-'))
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_their_prefix_and_time() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let id = new_id("inc", t);
        assert!(id.starts_with("inc-20270115T080000Z-"), "{id}");
        assert_eq!(id.len(), "inc-20270115T080000Z-".len() + 8);
        assert!(valid_id("inc", &id));
        assert!(!valid_id("run", &id));
        assert!(!valid_id("inc", "inc"));
        assert!(!valid_id("inc", "inc-../../etc"));
        assert!(!valid_id("inc", &format!("inc-{}", "a".repeat(70))));
    }
}
