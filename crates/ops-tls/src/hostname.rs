//! Whether a certificate's subject alternative names cover a host name (RFC 6125 wildcards).
//!
//! Like browsers and webpki, only SANs count (the subject's common name is ignored), a wildcard
//! stands for exactly one whole leftmost label, and names compare case-insensitively without a
//! trailing dot.

use std::net::IpAddr;

/// Whether `hostname` (a DNS name or an IP address, IPv6 with or without brackets) is covered by
/// the certificate's DNS and IP subject alternative names.
#[must_use]
pub fn hostname_matches(hostname: &str, dns_names: &[String], ip_addresses: &[IpAddr]) -> bool {
    let bare = hostname.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(hostname);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return ip_addresses.contains(&ip);
    }
    dns_names.iter().any(|pattern| dns_name_matches(pattern, hostname))
}

/// Whether one DNS SAN (`example.com`, `*.example.com`) covers `hostname`.
///
/// `*.example.com` covers `www.example.com` but neither `example.com` nor `a.b.example.com`;
/// partial-label wildcards (`w*.example.com`) and wildcards over a single label (`*.com`)
/// match nothing.
#[must_use]
pub fn dns_name_matches(pattern: &str, hostname: &str) -> bool {
    let pattern = normalize(pattern);
    let hostname = normalize(hostname);
    if pattern.is_empty() || hostname.is_empty() || hostname.contains('*') {
        return false;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            if suffix.contains('*') || !suffix.contains('.') || suffix.split('.').any(str::is_empty) {
                return false;
            }
            hostname.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
        }
        None => !pattern.contains('*') && pattern == hostname,
    }
}

fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests;
