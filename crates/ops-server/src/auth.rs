//! API-key authentication: read keys and admin keys, compared in constant time.

use ops_core::Secret;
use subtle::ConstantTimeEq;

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// No valid key.
    None,
    /// A read key.
    Read,
    /// An admin key: read and act.
    Admin,
}

/// Whether `presented` equals any of `keys`. Every key is compared, whatever matched, so
/// timing does not tell which key (or how much of it) matched.
fn matches_any(presented: &[u8], keys: &[Secret]) -> bool {
    keys.iter().fold(false, |found, k| {
        let k = k.expose().as_bytes();
        found | (!k.is_empty() && bool::from(k.ct_eq(presented)))
    })
}

/// The access a presented key grants.
pub fn access_for(presented: Option<&str>, read_keys: &[Secret], admin_keys: &[Secret]) -> Access {
    let Some(p) = presented.map(str::trim).filter(|p| !p.is_empty()) else { return Access::None };
    let admin = matches_any(p.as_bytes(), admin_keys);
    let read = matches_any(p.as_bytes(), read_keys);
    if admin {
        Access::Admin
    } else if read {
        Access::Read
    } else {
        Access::None
    }
}

/// The key from `Authorization: Bearer KEY` or `X-API-Key: KEY`.
pub fn presented_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, key) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then_some(key);
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok())
}

/// A short, stable name for a key in logs and the audit trail (the first 12 hex digits of its
/// SHA-256): tells keys apart without revealing them.
#[must_use]
pub fn fingerprint(key: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    hex::encode(&digest[..6])
}

/// Who a request acts as, for the audit log: `api:` and the fingerprint of its key, never the
/// key.
pub(crate) fn actor(headers: &axum::http::HeaderMap) -> String {
    format!("api:{}", fingerprint(presented_key(headers).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_name_keys_without_showing_them() {
        let f = fingerprint("admin-key-123");
        assert_eq!(f.len(), 12);
        assert_eq!(f, fingerprint("admin-key-123"));
        assert_ne!(f, fingerprint("admin-key-124"));
        assert!(!f.contains("admin"));
    }

    fn keys(k: &[&str]) -> Vec<Secret> {
        k.iter().map(|s| Secret::new(*s)).collect()
    }

    #[test]
    fn rotation_window_accepts_old_and_new() {
        let read = keys(&["old", "new"]);
        assert_eq!(access_for(Some("old"), &read, &[]), Access::Read);
        assert_eq!(access_for(Some("new"), &read, &[]), Access::Read);
        assert_eq!(access_for(Some("other"), &read, &[]), Access::None);
        assert_eq!(access_for(Some("ne"), &read, &[]), Access::None, "prefixes do not match");
    }

    #[test]
    fn admin_wins_and_empty_never_matches() {
        let admin = keys(&["boss", ""]);
        assert_eq!(access_for(Some("boss"), &keys(&["boss"]), &admin), Access::Admin);
        assert_eq!(access_for(Some(""), &keys(&[""]), &admin), Access::None);
        assert_eq!(access_for(None, &keys(&["x"]), &admin), Access::None);
    }
}
