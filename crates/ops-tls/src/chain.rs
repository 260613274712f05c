//! Chains: path verification to a trusted root (webpki), order and linkage of PEM bundles, and
//! the earliest expiry of a chain.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rustls::pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use serde::{Deserialize, Serialize};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use crate::certificate::{self, CertificateInfo, is_issued_by};
use crate::trust::TrustStore;

/// Why a chain is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ChainProblem {
    /// A certificate on the path is past its `notAfter`.
    Expired,
    /// A certificate on the path is before its `notBefore`.
    NotYetValid,
    /// No path to a trusted root: an intermediate is missing (incomplete chain) or the root is
    /// not trusted.
    UnknownIssuer,
    /// The leaf is self-signed and not trusted.
    SelfSigned,
    /// The leaf's names do not cover the host.
    HostnameMismatch,
    /// The certificates of a bundle are not in issuing order.
    OutOfOrder,
    /// A signature on the path does not verify.
    BadSignature,
    /// A certificate on the path is revoked.
    Revoked,
    /// A signature algorithm on the path is not supported.
    UnsupportedAlgorithm,
    /// No certificate was presented or found.
    NoCertificate,
    /// Anything else the verifier rejected (see the detail).
    Other,
}

impl ChainProblem {
    /// A stable kebab-case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::NotYetValid => "not-yet-valid",
            Self::UnknownIssuer => "unknown-issuer",
            Self::SelfSigned => "self-signed",
            Self::HostnameMismatch => "hostname-mismatch",
            Self::OutOfOrder => "out-of-order",
            Self::BadSignature => "bad-signature",
            Self::Revoked => "revoked",
            Self::UnsupportedAlgorithm => "unsupported-algorithm",
            Self::NoCertificate => "no-certificate",
            Self::Other => "other",
        }
    }
}

impl std::fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict on a presented chain: a path to a trusted root, valid for the host name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainVerification {
    /// A path to a trusted root was built and the leaf covers the host name.
    pub valid: bool,
    /// Why not, when not valid (path problems first, then the host name).
    pub reason: Option<ChainProblem>,
    /// The verifier's explanation, for people.
    pub detail: Option<String>,
    /// Subject of the trusted root the verified path ends at.
    pub trust_anchor: Option<String>,
}

/// Order and linkage of the certificates of one PEM bundle (`fullchain.pem`, `chain.pem`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainOrder {
    /// Each certificate is issued by the next one.
    pub in_order: bool,
    /// What is wrong, one line per broken link.
    pub problems: Vec<String>,
}

/// The outcome of path building.
#[derive(Debug, Clone)]
pub(crate) enum PathOutcome {
    /// A path from the leaf to a trusted root: the leaf, the intermediates used, and the
    /// root's certificate when it is known.
    Verified { chain: Vec<CertificateDer<'static>>, anchor: String },
    /// No path.
    Failed { problem: ChainProblem, detail: String },
}

/// Builds a path from `presented[0]` through `presented[1..]` to one of `trust`'s roots at
/// `now`, as rustls would (webpki, server-auth usage), and returns the path it used.
pub(crate) fn verify_path(
    presented: &[CertificateDer<'_>],
    trust: &TrustStore,
    algorithms: &[&dyn SignatureVerificationAlgorithm],
    now: DateTime<Utc>,
) -> PathOutcome {
    let Some((leaf_der, intermediates)) = presented.split_first() else {
        return PathOutcome::Failed {
            problem: ChainProblem::NoCertificate,
            detail: "the server presented no certificate".to_owned(),
        };
    };
    let leaf = match webpki::EndEntityCert::try_from(leaf_der) {
        Ok(leaf) => leaf,
        Err(e) => {
            return PathOutcome::Failed { problem: ChainProblem::Other, detail: format!("leaf does not parse: {e}") };
        }
    };
    let time = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(now.timestamp()).unwrap_or(0)));
    let result = leaf.verify_for_usage(
        algorithms,
        &trust.anchors,
        intermediates,
        time,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    );
    match result {
        Ok(path) => {
            let mut chain = vec![leaf_der.clone().into_owned()];
            chain.extend(path.intermediate_certificates().map(|c| c.der().into_owned()));
            let anchor = path.anchor();
            if let Some(root) = trust.root_cert_of(anchor, intermediates) {
                chain.push(root.clone().into_owned());
            }
            PathOutcome::Verified { chain, anchor: anchor_subject(anchor) }
        }
        Err(e) => {
            let (problem, detail) = explain(&e, presented, now);
            PathOutcome::Failed { problem, detail }
        }
    }
}

fn explain(e: &webpki::Error, presented: &[CertificateDer<'_>], now: DateTime<Utc>) -> (ChainProblem, String) {
    let infos: Vec<CertificateInfo> =
        presented.iter().filter_map(|der| CertificateInfo::from_der(der, now).ok()).collect();
    let leaf = infos.first();
    #[allow(deprecated)]
    match e {
        webpki::Error::CertExpired { .. } => {
            let expired: Vec<String> = infos
                .iter()
                .filter(|c| c.not_after <= now)
                .map(|c| format!("{} expired at {}", c.display_name(), c.not_after.to_rfc3339()))
                .collect();
            let detail =
                if expired.is_empty() { "a certificate on the path expired".to_owned() } else { expired.join("; ") };
            (ChainProblem::Expired, detail)
        }
        webpki::Error::CertNotValidYet { .. } => {
            let early: Vec<String> = infos
                .iter()
                .filter(|c| c.not_before > now)
                .map(|c| format!("{} is valid only from {}", c.display_name(), c.not_before.to_rfc3339()))
                .collect();
            let detail = if early.is_empty() {
                "a certificate on the path is not valid yet".to_owned()
            } else {
                early.join("; ")
            };
            (ChainProblem::NotYetValid, detail)
        }
        webpki::Error::UnknownIssuer => match leaf {
            Some(leaf) if leaf.self_signed => {
                (ChainProblem::SelfSigned, format!("{} is self-signed and not trusted", leaf.display_name()))
            }
            Some(_) => {
                let last = infos.last().map_or_else(String::new, |c| c.issuer.clone());
                (
                    ChainProblem::UnknownIssuer,
                    format!(
                        "unknown issuer: no path from the {} presented certificate(s) to a trusted root; \
                         {last} is neither presented nor trusted (incomplete chain?)",
                        presented.len()
                    ),
                )
            }
            None => (ChainProblem::UnknownIssuer, "unknown issuer".to_owned()),
        },
        webpki::Error::CertRevoked => (ChainProblem::Revoked, "a certificate on the path is revoked".to_owned()),
        webpki::Error::InvalidSignatureForPublicKey | webpki::Error::SignatureAlgorithmMismatch => {
            (ChainProblem::BadSignature, format!("a signature on the path does not verify ({e})"))
        }
        webpki::Error::UnsupportedSignatureAlgorithm
        | webpki::Error::UnsupportedSignatureAlgorithmContext(_)
        | webpki::Error::UnsupportedSignatureAlgorithmForPublicKey
        | webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            (ChainProblem::UnsupportedAlgorithm, format!("unsupported signature algorithm ({e})"))
        }
        other => (ChainProblem::Other, format!("chain rejected: {other}")),
    }
}

/// The subject of a trust anchor, for people (anchors keep the name without its outer tag).
fn anchor_subject(anchor: &TrustAnchor<'_>) -> String {
    let contents = anchor.subject.as_ref();
    let mut der = vec![0x30];
    let len = contents.len();
    if len < 0x80 {
        der.push(u8::try_from(len).unwrap_or(0));
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
        der.push(0x80 | u8::try_from(bytes.len()).unwrap_or(0));
        der.extend(bytes);
    }
    der.extend_from_slice(contents);
    X509Name::from_der(&der).map_or_else(|_| "unknown root".to_owned(), |(_, name)| name.to_string())
}

/// Checks that each certificate of a bundle is issued by the next one (names and signature).
/// A bundle of one certificate is in order.
pub(crate) fn check_chain_order(ders: &[CertificateDer<'_>]) -> ChainOrder {
    let mut problems = Vec::new();
    let parsed: Vec<_> = ders.iter().map(|der| certificate::parse(der)).collect();
    for (i, cert) in parsed.iter().enumerate() {
        if let Err(e) = cert {
            problems.push(format!("certificate {} does not parse: {e}", i + 1));
        }
    }
    if !problems.is_empty() {
        return ChainOrder { in_order: false, problems };
    }
    let certs: Vec<_> = parsed.into_iter().filter_map(Result::ok).collect();
    for (i, pair) in certs.windows(2).enumerate() {
        let (cert, next) = (&pair[0], &pair[1]);
        if is_issued_by(cert, next) {
            continue;
        }
        let issuer_at = certs.iter().enumerate().position(|(j, c)| j != i && is_issued_by(cert, c));
        let problem = match issuer_at {
            Some(j) => format!(
                "certificate {} ({}) is followed by {}, which did not issue it; its issuer is certificate {}: \
                 the chain is out of order",
                i + 1,
                cert.subject(),
                next.subject(),
                j + 1
            ),
            None if is_issued_by(next, cert) => format!(
                "certificate {} ({}) is followed by {}, which it issued: the chain is out of order \
                 (the leaf comes first, then each issuer)",
                i + 1,
                cert.subject(),
                next.subject()
            ),
            None => format!(
                "certificate {} ({}) is followed by {}, which did not issue it; its issuer {} is not in the file",
                i + 1,
                cert.subject(),
                next.subject(),
                cert.issuer()
            ),
        };
        problems.push(problem);
    }
    ChainOrder { in_order: problems.is_empty(), problems }
}

/// The earliest `notAfter` among `certs`.
pub(crate) fn earliest_expiry(certs: &[CertificateInfo]) -> Option<DateTime<Utc>> {
    certs.iter().map(|c| c.not_after).min()
}

#[cfg(test)]
mod tests;
