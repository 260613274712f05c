use super::client::{check_db_name, percent_decode, quote_ident};
use super::parse_client_version;

#[test]
fn client_versions() {
    assert_eq!(parse_client_version("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"), Some(15));
    assert_eq!(parse_client_version("psql (PostgreSQL) 16.4"), Some(16));
    assert_eq!(parse_client_version("pg_dump (PostgreSQL) 9.6.24"), Some(9));
    assert_eq!(parse_client_version("garbage"), None);
}

#[test]
fn identifiers_are_quoted_and_checked() {
    assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    assert!(check_db_name("stellar_escrow__restore_20260101T000000Z").is_ok());
    for bad in ["", "host=evil", "a b", "-x", &"x".repeat(64)] {
        assert!(check_db_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn url_passwords_are_decoded() {
    assert_eq!(percent_decode("p%40ss%2Fw"), "p@ss/w");
    assert_eq!(percent_decode("plain"), "plain");
    assert_eq!(percent_decode("100%"), "100%");
}

#[test]
fn session_queries_never_show_passwords() {
    use super::client::redact_query;
    let cases = [
        ("ALTER ROLE app WITH PASSWORD 'hunter2'", "ALTER ROLE app WITH PASSWORD '***'"),
        (
            "create user x encrypted password 'it''s\n secret' valid until 'infinity'",
            "create user x encrypted password '***' valid until 'infinity'",
        ),
        ("ALTER ROLE app PASSWORD 'cut-off-by-lef", "ALTER ROLE app PASSWORD '***'"),
        (
            "SELECT dblink_connect('host=db user=u password=hunter2 dbname=x')",
            "SELECT dblink_connect('host=db user=u password=*** dbname=x')",
        ),
        (
            "SELECT dblink('postgres://u:hunter2@db/x', 'SELECT 1')",
            "SELECT dblink('postgres://u:***@db/x', 'SELECT 1')",
        ),
        ("SELECT   *\n  FROM trades\tWHERE status = 'open'", "SELECT * FROM trades WHERE status = 'open'"),
    ];
    for (query, shown) in cases {
        assert_eq!(redact_query(query, 200), shown);
        assert!(!redact_query(query, 200).contains("hunter2"));
    }
    for query in [
        "SELECT * FROM api_calls WHERE header = 'Authorization: Bearer hunter2.xyz'",
        "UPDATE users SET prefs = '{\"token\": \"hunter2\"}'",
        "SELECT call('token: hunter2')",
        "SELECT call('api_key=hunter2')",
        "SELECT call('password: hunter2')",
    ] {
        let shown = redact_query(query, 200);
        assert!(!shown.contains("hunter2"), "{query} -> {shown}");
        assert!(shown.contains("***"), "{shown}");
    }
    assert_eq!(redact_query("SELECT ééé", 8), "SELECT é…");
    assert_eq!(redact_query("SELECT 1", 8), "SELECT 1");
}
