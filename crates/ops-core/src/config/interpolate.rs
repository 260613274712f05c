//! `${VAR}` and `${VAR:-default}` in string values, applied after parsing so that a value
//! never changes the structure of the file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{
    AccessLogConfig, AlertmanagerConfig, CacheConfig, CeleryCheckConfig, DatabaseConfig, DnsCheckConfig, DockerConfig,
    ExecCheckConfig, HttpCheckConfig, LogPatternConfig, NotifyConfig, OpsConfig, PerfConfig, PostRestoreConfig,
    ProjectConfig, PrometheusCheckConfig, RunbooksConfig, ServerConfig, SmtpCheckConfig, SqlCheckConfig, StateConfig,
    StatusPageConfig, StorageConfig, SystemdCheckConfig, TcpCheckConfig, TlsCheckConfig, TlsRenewConfig,
};
use crate::secret::{Secret, SecretUrl, WebhookUrl};

/// Why a `${…}` could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InterpolationError {
    /// `${NAME}` without a default and `NAME` is not set.
    Unset(String),
    /// `${` without a closing `}`, or an empty or invalid name.
    Malformed(String),
}

/// Expands `${NAME}`, `${NAME:-default}` and `$$` (a literal `$`) in `s`.
pub(crate) fn expand(s: &str, env: &BTreeMap<String, String>) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(body_start) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body_start.find('}') else {
            // Never quote the value: it may hold a secret with a `${` in it.
            return Err(InterpolationError::Malformed("unclosed \"${\": write $$ for a literal $".to_owned()));
        };
        let body = &body_start[..end];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(InterpolationError::Malformed(
                "invalid variable name in \"${…}\": use letters, digits and _ (write $$ for a literal $)".to_owned(),
            ));
        }
        match (env.get(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(InterpolationError::Unset(name.to_owned())),
        }
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Visits every interpolatable string of a config value.
pub(crate) trait Interpolate {
    fn each_string(
        &mut self,
        f: &mut dyn FnMut(&mut String) -> Result<(), InterpolationError>,
    ) -> Result<(), InterpolationError>;

    /// Visits every secret-typed value (`Secret`, `SecretUrl`, `WebhookUrl`) as it is shown:
    /// its `Display`, which JSON, logs and errors use too. Plain values are shown as written.
    fn each_shown_secret(&self, _f: &mut dyn FnMut(String)) {}
}

type Visit<'a> = &'a mut dyn FnMut(&mut String) -> Result<(), InterpolationError>;

impl Interpolate for String {
    fn each_string(&mut self, f: Visit<'_>) -> Result<(), InterpolationError> {
        f(self)
    }
}

impl Interpolate for Secret {
    fn each_string(&mut self, f: Visit<'_>) -> Result<(), InterpolationError> {
        f(self.expose_mut())
    }

    fn each_shown_secret(&self, f: &mut dyn FnMut(String)) {
        f(self.to_string());
    }
}

impl Interpolate for SecretUrl {
    fn each_string(&mut self, f: Visit<'_>) -> Result<(), InterpolationError> {
        f(self.expose_mut())
    }

    fn each_shown_secret(&self, f: &mut dyn FnMut(String)) {
        f(self.to_string());
    }
}

impl Interpolate for WebhookUrl {
    fn each_string(&mut self, f: Visit<'_>) -> Result<(), InterpolationError> {
        f(self.expose_mut())
    }

    fn each_shown_secret(&self, f: &mut dyn FnMut(String)) {
        f(self.to_string());
    }
}

impl Interpolate for PathBuf {
    fn each_string(&mut self, f: Visit<'_>) -> Result<(), InterpolationError> {
        if let Some(s) = self.to_str() {
            let mut s = s.to_owned();
            f(&mut s)?;
            *self = PathBuf::from(s);
        }
        Ok(())
    }
}

impl<T: Interpolate> Interpolate for Option<T> {
    fn each_string(&mut self, f: Visit<'_>) -> Result<(), InterpolationError> {
        self.as_mut().map_or(Ok(()), |v| v.each_string(f))
    }

    fn each_shown_secret(&self, f: &mut dyn FnMut(String)) {
        if let Some(v) = self {
            v.each_shown_secret(f);
        }
    }
}

impl<T: Interpolate> Interpolate for Vec<T> {
    fn each_string(&mut self, f: Visit<'_>) -> Result<(), InterpolationError> {
        self.iter_mut().try_for_each(|v| v.each_string(f))
    }

    fn each_shown_secret(&self, f: &mut dyn FnMut(String)) {
        self.iter().for_each(|v| v.each_shown_secret(f));
    }
}

impl<T: Interpolate> Interpolate for BTreeMap<String, T> {
    fn each_string(&mut self, f: Visit<'_>) -> Result<(), InterpolationError> {
        self.values_mut().try_for_each(|v| v.each_string(f))
    }

    fn each_shown_secret(&self, f: &mut dyn FnMut(String)) {
        self.values().for_each(|v| v.each_shown_secret(f));
    }
}

macro_rules! interpolate_fields {
    ($ty:ty { $($field:ident),* $(,)? }) => {
        impl Interpolate for $ty {
            fn each_string(&mut self, f: Visit<'_>) -> Result<(), InterpolationError> {
                $( self.$field.each_string(f)?; )*
                Ok(())
            }

            fn each_shown_secret(&self, f: &mut dyn FnMut(String)) {
                $( self.$field.each_shown_secret(f); )*
            }
        }
    };
}

interpolate_fields!(OpsConfig {
    project,
    docker,
    databases,
    caches,
    storage,
    notify,
    http,
    tls,
    tcp,
    dns,
    sql,
    smtp,
    prometheus,
    celery,
    systemd,
    exec,
    log_patterns,
    access_logs,
    alertmanager,
    status_pages,
    tls_renew,
    perf,
    server,
    state,
    runbooks
});
interpolate_fields!(StateConfig { url });
interpolate_fields!(RunbooksConfig { dir, secrets });
interpolate_fields!(PerfConfig { state_dir, audit_log });
interpolate_fields!(ProjectConfig { name, compose_project });
interpolate_fields!(DockerConfig { host });
interpolate_fields!(DatabaseConfig { url, container, key_tables, dependents, post_restore, drill_image });
interpolate_fields!(PostRestoreConfig { container, command });
interpolate_fields!(CacheConfig { url, container, queues });
interpolate_fields!(StorageConfig { url, endpoint, region, access_key_id, secret_access_key, local_dir });
interpolate_fields!(NotifyConfig { webhooks });
interpolate_fields!(HttpCheckConfig { name, url, expect_body, depends_on, headers, from_container });
interpolate_fields!(TcpCheckConfig { name, address, depends_on, from_container });
interpolate_fields!(SqlCheckConfig { name, database, depends_on });
interpolate_fields!(PrometheusCheckConfig { name, url, jobs, depends_on });
interpolate_fields!(CeleryCheckConfig { name, flower_url, workers, cache, queues, depends_on });
interpolate_fields!(SystemdCheckConfig { unit, name, container, depends_on });
interpolate_fields!(SmtpCheckConfig { name, address, server_name, ca_file, username, password, depends_on });
interpolate_fields!(ExecCheckConfig { name, container, depends_on });
interpolate_fields!(LogPatternConfig { name, container, file, depends_on });
interpolate_fields!(AccessLogConfig { name, container, file, depends_on });
interpolate_fields!(DnsCheckConfig { name, expect });
interpolate_fields!(AlertmanagerConfig { url, webhook_keys });
interpolate_fields!(StatusPageConfig { name, url, affects });
interpolate_fields!(TlsRenewConfig { container, command });
interpolate_fields!(TlsCheckConfig { name, endpoint, file, server_name, depends_on });
interpolate_fields!(ServerConfig { listen, api_keys, admin_keys, tls_cert, tls_key });
