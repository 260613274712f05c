//! Endpoint checks: connect, handshake with a verifier that records the presented chain, and
//! report on it (`echo | openssl s_client -connect host:443 | openssl x509 -noout -dates`).
//!
//! The verifier accepts every chain so that the handshake finishes and the TLS version and
//! cipher suite are known even when the chain is bad; it runs webpki's path building itself
//! and records the verdict and the verified path. Nothing is sent over the connection.

mod verifier;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use ops_core::{Finding, Status};
use rustls::pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::time::timeout_at;

use crate::certificate::CertificateInfo;
use crate::chain::{ChainProblem, ChainVerification, PathOutcome, earliest_expiry};
use crate::expiry::{days_left, expiry_status};
use crate::hostname::hostname_matches;
use crate::trust::TrustStore;
use crate::{CheckOptions, Error, Result};

use self::verifier::Recorded;

/// What an endpoint check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointReport {
    /// `host:port` as checked (`[v6]:port` for IPv6).
    pub target: String,
    /// Host connected to.
    pub host: String,
    /// Port connected to.
    pub port: u16,
    /// Name sent as SNI (not sent for an IP address) and checked against the leaf.
    pub server_name: String,
    /// Overall verdict: the worst of [`findings`](Self::findings), `ok` when there are none.
    pub status: Status,
    /// Every problem found, each with its status.
    pub findings: Vec<Finding>,
    /// Why no handshake completed, when none did.
    pub connection_failure: Option<ConnectionFailure>,
    /// Negotiated protocol (`TLS 1.3`, `TLS 1.2`), when the handshake finished.
    pub tls_version: Option<String>,
    /// Negotiated cipher suite (`TLS13_AES_256_GCM_SHA384`), when the handshake finished.
    pub cipher_suite: Option<String>,
    /// Every certificate the server sent, leaf first, in the order sent.
    pub presented_chain: Vec<CertificateInfo>,
    /// The path to a trusted root that verification used: leaf, intermediates, and the root
    /// when its certificate is known (from the CA file or sent by the server). Empty when no
    /// path was found.
    pub verified_chain: Vec<CertificateInfo>,
    /// The verdict on the chain; `None` when no certificate was received.
    pub verification: Option<ChainVerification>,
    /// Whether the leaf covers [`server_name`](Self::server_name).
    pub hostname_match: Option<bool>,
    /// Earliest `notAfter` of the presented chain (what `probe_ssl_earliest_cert_expiry` shows).
    pub presented_earliest_expiry: Option<DateTime<Utc>>,
    /// Earliest `notAfter` of the verified chain (`probe_ssl_last_chain_expiry_timestamp_seconds`).
    pub verified_earliest_expiry: Option<DateTime<Utc>>,
    /// Days left until the earliest expiry of the verified chain, or of the presented chain when
    /// none verified; the status thresholds apply to it.
    pub days_left: Option<i64>,
    /// The moment the check ran at.
    pub checked_at: DateTime<Utc>,
    /// How long the check took, in milliseconds.
    pub duration_ms: u64,
}

impl EndpointReport {
    /// Whether the handshake succeeded as a verifying client sees it: a chain to a trusted
    /// root, the leaf covering the name, nothing expired. What blackbox_exporter's
    /// `probe_success` means for a TLS target (it fails the handshake otherwise).
    #[must_use]
    pub fn handshake_verified(&self) -> bool {
        self.connection_failure.is_none()
            && self.tls_version.is_some()
            && self.verification.as_ref().is_some_and(|v| v.valid)
            && self.hostname_match == Some(true)
            && self.verified_earliest_expiry.is_some_and(|t| t > self.checked_at)
            && self.presented_chain.first().is_none_or(|leaf| leaf.not_before <= self.checked_at)
    }

    /// The leaf certificate, when one was received.
    #[must_use]
    pub fn leaf(&self) -> Option<&CertificateInfo> {
        self.presented_chain.first()
    }
}

/// Why no TLS session was established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectionFailure {
    /// The step that failed.
    pub stage: ConnectionStage,
    /// The time limit ran out during that step.
    pub timed_out: bool,
    /// What happened, for people.
    pub message: String,
}

/// A step of an endpoint check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionStage {
    /// Name resolution.
    Resolve,
    /// TCP connect.
    Connect,
    /// TLS handshake.
    Handshake,
}

/// A parsed endpoint: host (without brackets) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Endpoint {
    /// Parses `host`, `host:port`, `[v6]`, `[v6]:port`, a bare IPv6 address, or an
    /// `https://host[:port][/path]` URL. The port defaults to 443.
    pub(crate) fn parse(target: &str) -> Result<Self> {
        let trimmed = target.trim();
        if trimmed.is_empty() {
            return Err(Error::invalid_target(target, "empty"));
        }
        let rest = match trimmed.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("tls") => {
                rest.split(['/', '?', '#']).next().unwrap_or_default()
            }
            Some((scheme, _)) => return Err(Error::invalid_target(target, format!("unsupported scheme {scheme:?}"))),
            None => trimmed,
        };
        if rest.contains('@') {
            return Err(Error::invalid_target(target, "credentials are not allowed"));
        }
        let (host, port) = if let Some(after) = rest.strip_prefix('[') {
            let (host, tail) =
                after.split_once(']').ok_or_else(|| Error::invalid_target(target, "missing `]` after ipv6 address"))?;
            let port = match tail {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| Error::invalid_target(target, "junk after `]`"))?),
            };
            (host, port)
        } else if rest.parse::<std::net::Ipv6Addr>().is_ok() {
            (rest, None)
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        let port = match port {
            None => 443,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(Error::invalid_target(target, format!("invalid port {p:?}"))),
                Ok(p) => p,
            },
        };
        if host.is_empty() {
            return Err(Error::invalid_target(target, "missing host"));
        }
        if ServerName::try_from(host).is_err() {
            return Err(Error::invalid_target(target, format!("{host:?} is neither a dns name nor an ip address")));
        }
        Ok(Self { host: host.to_owned(), port })
    }

    fn display(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Connects to `target` (`host`, `host:port`, `[v6]:port` or `https://host[:port]/`; port 443 by
/// default), completes a TLS handshake within [`CheckOptions::timeout_ms`], and reports on the
/// certificate chain the server presented.
///
/// A refused connection, a timeout or a failed handshake is a report with
/// [`Status::Critical`] and the reason, not an `Err`.
///
/// # Errors
/// [`Error::InvalidTarget`] for an unparsable target, [`Error::InvalidOption`] for options out of
/// range, [`Error::Read`] or [`Error::InvalidCaFile`] when the CA file cannot be used.
pub async fn check_endpoint(target: &str, options: &CheckOptions) -> Result<EndpointReport> {
    let started = Instant::now();
    options.validate()?;
    let endpoint = Endpoint::parse(target)?;
    let trust = Arc::new(TrustStore::load(options).await?);
    let now = options.now();
    let name = options.server_name.clone().unwrap_or_else(|| endpoint.host.clone());
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| Error::invalid_target(target, format!("{name:?} is not a valid server name")))?;

    tracing::debug!(target = %endpoint.display(), server_name = %name, "checking tls endpoint");
    let (verifier, connector) = verifier::connector(trust, now)?;
    let outcome = handshake(&endpoint, server_name, &connector, options).await;
    let recorded = verifier.take();
    let report = build_report(&endpoint, name, outcome, recorded, now, options, started);
    tracing::debug!(target = %report.target, status = %report.status, "tls endpoint checked");
    Ok(report)
}

/// What the handshake gave: version and suite, or why it failed.
type HandshakeOutcome = std::result::Result<(String, String), ConnectionFailure>;

async fn handshake(
    endpoint: &Endpoint,
    server_name: ServerName<'static>,
    connector: &tokio_rustls::TlsConnector,
    options: &CheckOptions,
) -> HandshakeOutcome {
    let limit = options.timeout();
    let deadline = tokio::time::Instant::now() + limit;
    let fail = |stage, timed_out, message: String| ConnectionFailure { stage, timed_out, message };

    let addrs: Vec<SocketAddr> =
        match timeout_at(deadline, tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => {
                return Err(fail(ConnectionStage::Resolve, false, format!("cannot resolve {}: {e}", endpoint.host)));
            }
            Err(_) => {
                return Err(fail(
                    ConnectionStage::Resolve,
                    true,
                    format!("resolving {} timed out after {limit:?}", endpoint.host),
                ));
            }
        };
    let mut last_error = format!("{} resolved to no address", endpoint.host);
    let mut stream = None;
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last_error = format!("cannot connect to {addr}: {e}"),
            Err(_) => {
                return Err(fail(
                    ConnectionStage::Connect,
                    true,
                    format!("connecting to {addr} timed out after {limit:?}"),
                ));
            }
        }
    }
    let Some(stream) = stream else {
        return Err(fail(ConnectionStage::Connect, false, last_error));
    };
    match timeout_at(deadline, connector.connect(server_name, stream)).await {
        Ok(Ok(tls)) => {
            let (_, conn) = tls.get_ref();
            let version = conn.protocol_version().map_or_else(|| "unknown".to_owned(), version_name);
            let suite = conn.negotiated_cipher_suite().map_or_else(
                || "unknown".to_owned(),
                |s| s.suite().as_str().map_or_else(|| format!("{:?}", s.suite()), str::to_owned),
            );
            Ok((version, suite))
        }
        Ok(Err(e)) => Err(fail(ConnectionStage::Handshake, false, format!("tls handshake failed: {e}"))),
        Err(_) => Err(fail(ConnectionStage::Handshake, true, format!("tls handshake timed out after {limit:?}"))),
    }
}

fn version_name(version: rustls::ProtocolVersion) -> String {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3".to_owned(),
        rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2".to_owned(),
        rustls::ProtocolVersion::TLSv1_1 => "TLS 1.1".to_owned(),
        rustls::ProtocolVersion::TLSv1_0 => "TLS 1.0".to_owned(),
        other => format!("{other:?}"),
    }
}

fn infos(
    ders: &[CertificateDer<'_>],
    now: DateTime<Utc>,
    findings: &mut Vec<Finding>,
    subject: &str,
) -> Vec<CertificateInfo> {
    let mut out = Vec::with_capacity(ders.len());
    for (i, der) in ders.iter().enumerate() {
        match CertificateInfo::from_der(der, now) {
            Ok(info) => out.push(info),
            Err(e) => {
                findings.push(finding(subject, Status::Critical, format!("certificate {} does not parse: {e}", i + 1)))
            }
        }
    }
    out
}

fn finding(subject: &str, status: Status, message: String) -> Finding {
    Finding { subject: subject.to_owned(), status, message, evidence: Vec::new() }
}

fn build_report(
    endpoint: &Endpoint,
    server_name: String,
    outcome: HandshakeOutcome,
    recorded: Option<Recorded>,
    now: DateTime<Utc>,
    options: &CheckOptions,
    started: Instant,
) -> EndpointReport {
    let target = endpoint.display();
    let subject = format!("endpoint:{target}");
    let mut findings = Vec::new();

    let (tls_version, cipher_suite, connection_failure) = match outcome {
        Ok((version, suite)) => (Some(version), Some(suite), None),
        Err(failure) => {
            findings.push(finding(&subject, Status::Critical, failure.message.clone()));
            (None, None, Some(failure))
        }
    };

    let mut presented_chain = Vec::new();
    let mut verified_chain = Vec::new();
    let mut verification = None;
    let mut hostname_match = None;
    if let Some(recorded) = recorded {
        presented_chain = infos(&recorded.presented, now, &mut findings, &subject);
        let host_ok =
            presented_chain.first().map(|leaf| hostname_matches(&server_name, &leaf.dns_names, &leaf.ip_addresses));
        hostname_match = host_ok;
        let mismatch_detail = || {
            let leaf = presented_chain.first();
            let names: Vec<String> = leaf
                .map(|l| l.dns_names.iter().cloned().chain(l.ip_addresses.iter().map(ToString::to_string)).collect())
                .unwrap_or_default();
            format!("certificate is valid for [{}], not {server_name}", names.join(", "))
        };
        let v = match recorded.path {
            PathOutcome::Verified { chain, anchor } => {
                verified_chain = infos(&chain, now, &mut findings, &subject);
                if host_ok == Some(false) {
                    ChainVerification {
                        valid: false,
                        reason: Some(ChainProblem::HostnameMismatch),
                        detail: Some(mismatch_detail()),
                        trust_anchor: Some(anchor),
                    }
                } else {
                    ChainVerification { valid: true, reason: None, detail: None, trust_anchor: Some(anchor) }
                }
            }
            PathOutcome::Failed { problem, detail } => {
                if host_ok == Some(false) {
                    findings.push(finding(
                        &subject,
                        Status::Critical,
                        format!("hostname mismatch: {}", mismatch_detail()),
                    ));
                }
                ChainVerification { valid: false, reason: Some(problem), detail: Some(detail), trust_anchor: None }
            }
        };
        if !v.valid {
            let reason = v.reason.map_or("invalid", ChainProblem::as_str);
            let detail = v.detail.as_deref().unwrap_or_default();
            findings.push(finding(&subject, Status::Critical, format!("chain does not verify ({reason}): {detail}")));
        }
        verification = Some(v);
    } else if connection_failure.is_none() {
        findings.push(finding(&subject, Status::Critical, "the server presented no certificate".to_owned()));
    }

    let presented_earliest_expiry = earliest_expiry(&presented_chain);
    let verified_earliest_expiry = earliest_expiry(&verified_chain);
    // Thresholds apply to the path clients actually use: a spare certificate the server also
    // sends (an expiring cross-sign) must not raise an alarm when the verified path avoids it.
    let basis = if verified_chain.is_empty() { &presented_chain } else { &verified_chain };
    if let Some(earliest) = basis.iter().min_by_key(|c| c.not_after) {
        let status = expiry_status(earliest.not_after, now, options);
        if status != Status::Ok {
            findings.push(finding(&subject, status, expiry_message(earliest)));
        }
    }
    let days_left = basis.iter().map(|c| c.not_after).min().map(|t| days_left(t, now));
    let status = findings.iter().map(|f| f.status).max().unwrap_or(Status::Ok);

    EndpointReport {
        target,
        host: endpoint.host.clone(),
        port: endpoint.port,
        server_name,
        status,
        findings,
        connection_failure,
        tls_version,
        cipher_suite,
        presented_chain,
        verified_chain,
        verification,
        hostname_match,
        presented_earliest_expiry,
        verified_earliest_expiry,
        days_left,
        checked_at: now,
        duration_ms: elapsed_ms(started),
    }
}

pub(crate) fn expiry_message(cert: &CertificateInfo) -> String {
    if cert.days_left < 0 {
        format!("{} expired {} day(s) ago, at {}", cert.display_name(), -cert.days_left, cert.not_after.to_rfc3339())
    } else {
        format!("{} expires in {} day(s), at {}", cert.display_name(), cert.days_left, cert.not_after.to_rfc3339())
    }
}

pub(crate) fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
