//! Target parsing: forms accepted, forms rejected, no credentials in messages.

use super::*;

fn parse(s: &str) -> (String, u16) {
    let e = Endpoint::parse(s).unwrap();
    (e.host, e.port)
}

#[test]
fn targets_parse_with_a_default_port() {
    assert_eq!(parse("example.com"), ("example.com".into(), 443));
    assert_eq!(parse("example.com:8443"), ("example.com".into(), 8443));
    assert_eq!(parse(" example.com "), ("example.com".into(), 443));
    assert_eq!(parse("127.0.0.1:4443"), ("127.0.0.1".into(), 4443));
    assert_eq!(parse("[::1]:4443"), ("::1".into(), 4443));
    assert_eq!(parse("[::1]"), ("::1".into(), 443));
    assert_eq!(parse("::1"), ("::1".into(), 443));
    assert_eq!(parse("https://example.com/health?x=1"), ("example.com".into(), 443));
    assert_eq!(parse("HTTPS://example.com:8443/"), ("example.com".into(), 8443));
}

#[test]
fn bad_targets_are_invalid_input() {
    for bad in [
        "",
        "  ",
        "example.com:",
        "example.com:0",
        "example.com:70000",
        "example.com:https",
        "http://example.com",
        "https://user:pw@example.com",
        ":443",
        "[::1",
        "[::1]x",
        "exa mple.com",
    ] {
        let err = Endpoint::parse(bad).unwrap_err();
        assert_eq!(err.kind(), ops_core::ErrorKind::InvalidInput, "{bad:?}: {err}");
    }
}

#[test]
fn targets_display_with_brackets_for_ipv6() {
    assert_eq!(Endpoint::parse("::1").unwrap().display(), "[::1]:443");
    assert_eq!(Endpoint::parse("example.com").unwrap().display(), "example.com:443");
}

#[test]
fn credentials_never_reach_the_message() {
    let err = Endpoint::parse("https://admin:hunter2@example.com").unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(err.to_string().contains("https://***@example.com"), "{err}");
}
