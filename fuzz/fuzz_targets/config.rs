//! The config loader: any file text, with an environment that holds a secret, resolves or
//! fails with an error that names a place, never a value, and never panics.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use ops_core::config::{ConfigSource, resolve};

const SECRET: &str = "fuzz-secret-4c1d";
/// The overlay's secrets: never interpolated by name in a plain field unless the file says so.
const KEYS: &str = "fuzz-apikey-7e2a-0123456789abcdef";
const AWS: &str = "fuzz-awssecret-91bc";
const DB: &str = "fuzz-dbpass-55aa";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The checks are about what the environment brings in. A file that spells the secret's
    // text itself (as a key, in a url's host, through a `${UNSET:-default}`) may see it
    // quoted: resolved with other values in the environment, it still shows.
    let other = BTreeMap::from([
        ("PW".to_owned(), "other-value".to_owned()),
        ("API_KEYS".to_owned(), "x".repeat(32)),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "other-aws".to_owned()),
        ("DATABASE_URL".to_owned(), "postgres://app:other-db@db:5432/app".to_owned()),
    ]);
    let spelled = shown(text, &other);
    if [SECRET, KEYS, AWS, DB].iter().any(|s| text.contains(s) || spelled.contains(s)) {
        return;
    }
    let env = BTreeMap::from([
        ("PW".to_owned(), SECRET.to_owned()),
        ("API_KEYS".to_owned(), KEYS.to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), AWS.to_owned()),
        ("DATABASE_URL".to_owned(), format!("postgres://app:{DB}@db:5432/app")),
    ]);
    match resolve(ConfigSource { file_name: "fuzz.toml", text: Some(text), env: &env }) {
        Ok(cfg) => {
            // No secret-typed value shows what it hides (JSON, logs and errors show the same
            // text), wherever the secret was interpolated into it: a key or password as `***`;
            // in a URL its user-info and its sensitive query values. What a URL shows by design
            // (host, path, query keys) and plain values (a check's name) are shown as written:
            // the file chose to put the variable there.
            for shown in cfg.shown_secrets() {
                assert!(!reveals(&shown), "a secret shown: {shown}");
            }
            // Each variable's value appears in the JSON only where the file names it.
            let json = serde_json::to_string(&cfg).unwrap_or_default();
            for (var, value) in [("PW", SECRET), ("API_KEYS", KEYS), ("AWS_SECRET_ACCESS_KEY", AWS), ("DATABASE_URL", DB)] {
                let named = text.contains(&format!("${{{var}"));
                assert!(named || !json.contains(value), "{var} in the json of a config that never names it");
            }
        }
        Err(e) => {
            // An error may quote the file's own text only as a key; the environment's secret
            // never appears (it can only come from interpolation).
            let e = e.to_string();
            assert!([SECRET, KEYS, AWS, DB].iter().all(|s| !e.contains(s)), "a secret in a config error: {e}");
        }
    }
});

/// Everything a resolution of `text` shows: the config's JSON, or the error.
fn shown(text: &str, env: &BTreeMap<String, String>) -> String {
    match resolve(ConfigSource { file_name: "fuzz.toml", text: Some(text), env }) {
        Ok(cfg) => serde_json::to_string(&cfg).unwrap_or_default(),
        Err(e) => e.to_string(),
    }
}

/// Whether a shown secret-typed value shows the secret where it must be hidden.
fn reveals(shown: &str) -> bool {
    let Ok(u) = url::Url::parse(shown) else { return [SECRET, KEYS, AWS, DB].iter().any(|s| shown.contains(s)) };
    let sensitive = |k: &str| ops_core::secret::SENSITIVE_QUERY_KEYS.iter().any(|s| k.to_ascii_lowercase().contains(s));
    [SECRET, KEYS, AWS, DB].iter().any(|secret| {
        u.username().contains(secret)
            || u.password().is_some_and(|p| p.contains(secret))
            || u.query_pairs().any(|(k, v)| sensitive(&k) && v.contains(secret))
    })
}
