//! Values that must never be printed: [`Secret`] and [`SecretUrl`].
//!
//! Both print `***` (or a URL with its credentials replaced by `***`) in `Debug`, `Display`
//! and `Serialize`, so a config dumped as JSON, a log line or a panic message cannot leak them.
//! The only way to the plain value is [`Secret::expose`] / [`SecretUrl::expose`], which makes
//! every use greppable.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Defines a string newtype whose `Debug`, `Display` and `Serialize` show only `$shown(&self)`.
macro_rules! redacted_string {
    ($(#[$doc:meta])* $name:ident, $shown:expr) => {
        $(#[$doc])*
        #[derive(Clone, Default, PartialEq, Eq)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $name(String);

        impl $name {
            /// Wraps a value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The plain value. Call only where it is handed to the system that needs it.
            #[must_use]
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// What may be shown: the value with its secrets replaced by `***`.
            #[must_use]
            pub fn redacted(&self) -> String {
                let shown: fn(&str) -> String = $shown;
                shown(&self.0)
            }

            pub(crate) fn expose_mut(&mut self) -> &mut String {
                &mut self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.redacted())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.redacted())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.redacted())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map(Self)
            }
        }
    };
}

redacted_string!(
    /// A secret string (API key, password, token). Prints as `***`.
    Secret,
    |_| "***".to_owned()
);

impl Secret {
    /// Whether the value is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

redacted_string!(
    /// A URL that may carry credentials (a password in its user-info, a token in its query).
    /// Prints with the password (the whole user-info when it has no password) and the values of
    /// sensitive query parameters replaced by `***`; scheme, host, port, path and query keys
    /// are shown (a token belongs in the password, or in a `token=` parameter).
    SecretUrl,
    redact_url
);

redacted_string!(
    /// A webhook URL: the whole URL is the credential (Slack's `/services/T…/B…/token`), so it
    /// prints as `scheme://host/***`.
    WebhookUrl,
    redact_webhook
);

/// Query parameters whose values a [`SecretUrl`] hides (a key containing any of these words).
pub const SENSITIVE_QUERY_KEYS: &[&str] =
    &["password", "pass", "passwd", "secret", "token", "key", "sig", "signature", "auth", "sslpassword"];

/// Replaces the credentials in a URL with `***`: the password of the user-info (the whole
/// user-info when it has no password) and the values of sensitive query parameters. A string that does not parse as a URL is replaced whole.
#[must_use]
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return if raw.is_empty() { String::new() } else { "***".to_owned() };
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    } else if !url.username().is_empty() {
        // A user-info without a password is often a token (`https://TOKEN@host`, a Sentry
        // DSN): hidden whole.
        let _ = url.set_username("***");
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let lower = k.to_ascii_lowercase();
                let hide = SENSITIVE_QUERY_KEYS.iter().any(|s| lower.contains(s));
                (k.into_owned(), if hide { "***".to_owned() } else { v.into_owned() })
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string().replace("%2A%2A%2A", "***")
}

/// Keeps only where a webhook points: `scheme://host[:port]/***`.
fn redact_webhook(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}/***", u.scheme()),
            (Some(h), None) => format!("{}://{h}/***", u.scheme()),
            _ => "***".to_owned(),
        },
        Err(_) if raw.is_empty() => String::new(),
        Err(_) => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn password_in_url_is_redacted() {
        let u = SecretUrl::new("postgres://indexer:s3cr3t@localhost:5432/db?sslmode=disable&password=x");
        let shown = format!("{u} {u:?} {}", serde_json::to_string(&u).unwrap());
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(!shown.contains("password=x"), "{shown}");
        assert!(shown.contains("postgres://indexer:***@localhost:5432/db"), "{shown}");
        assert!(shown.contains("sslmode=disable"), "{shown}");
    }

    #[test]
    fn webhook_path_is_redacted() {
        let u = WebhookUrl::new("https://hooks.slack.com/services/T000/B000/XXXXSECRET");
        assert_eq!(u.to_string(), "https://hooks.slack.com/***");
        assert_eq!(WebhookUrl::new("http://127.0.0.1:8080/hook/tok").to_string(), "http://127.0.0.1:8080/***");
        assert_eq!(serde_json::to_string(&u).unwrap(), "\"https://hooks.slack.com/***\"");
    }

    #[test]
    fn a_user_info_without_a_password_is_hidden_whole() {
        // Found by the config fuzz target: `postgres://u2${PW}@h/db` showed the secret.
        assert_eq!(redact_url("postgres://u2fuzz-secret@h/db"), "postgres://***@h/db");
        assert_eq!(redact_url("https://ghp_token@github.com/org/repo"), "https://***@github.com/org/repo");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn redis_password_only() {
        assert_eq!(redact_url("redis://:pw@localhost:6379"), "redis://:***@localhost:6379");
    }

    #[test]
    fn unparsable_is_hidden_whole() {
        assert_eq!(redact_url("not a url with secret"), "***");
    }
}
