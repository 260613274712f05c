//! Host name matching: exact names, RFC 6125 wildcards, IP SANs.

use std::net::IpAddr;

use super::*;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn exact_names_match_case_insensitively_and_ignore_a_trailing_dot() {
    assert!(dns_name_matches("example.com", "example.com"));
    assert!(dns_name_matches("Example.COM", "example.com"));
    assert!(dns_name_matches("example.com.", "EXAMPLE.com"));
    assert!(dns_name_matches("example.com", "example.com."));
    assert!(!dns_name_matches("example.com", "www.example.com"));
    assert!(!dns_name_matches("example.com", "example.org"));
    assert!(!dns_name_matches("", "example.com"));
}

#[test]
fn wildcard_covers_exactly_one_leftmost_label() {
    assert!(dns_name_matches("*.example.com", "www.example.com"));
    assert!(dns_name_matches("*.example.com", "API.example.com"));
    assert!(!dns_name_matches("*.example.com", "example.com"));
    assert!(!dns_name_matches("*.example.com", "a.b.example.com"));
    assert!(!dns_name_matches("*.example.com", ".example.com"));
    assert!(!dns_name_matches("*.example.com", "www.example.org"));
}

#[test]
fn malformed_wildcards_match_nothing() {
    assert!(!dns_name_matches("w*.example.com", "www.example.com"));
    assert!(!dns_name_matches("www.*.com", "www.example.com"));
    assert!(!dns_name_matches("*.*.example.com", "a.b.example.com"));
    assert!(!dns_name_matches("*.com", "example.com"));
    assert!(!dns_name_matches("*", "localhost"));
    assert!(!dns_name_matches("*.example..com", "a.example..com"));
    assert!(!dns_name_matches("*.example.com", "*.example.com"));
}

#[test]
fn any_san_may_match() {
    let dns = names(&["example.com", "*.example.com"]);
    assert!(hostname_matches("example.com", &dns, &[]));
    assert!(hostname_matches("www.example.com", &dns, &[]));
    assert!(!hostname_matches("example.org", &dns, &[]));
    assert!(!hostname_matches("www.example.com", &[], &[]));
}

#[test]
fn ip_addresses_match_ip_sans_only() {
    let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    let dns = names(&["127.0.0.1", "localhost"]);
    assert!(hostname_matches("127.0.0.1", &[], &ips));
    assert!(hostname_matches("::1", &[], &ips));
    assert!(hostname_matches("[::1]", &[], &ips));
    assert!(!hostname_matches("127.0.0.2", &dns, &ips));
    // A DNS SAN spelling an address does not cover that address.
    assert!(!hostname_matches("127.0.0.1", &dns, &[]));
    assert!(hostname_matches("localhost", &dns, &ips));
}
