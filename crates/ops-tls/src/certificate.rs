//! [`CertificateInfo`]: the facts about one X.509 certificate that `openssl x509 -noout -text` shows.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error;
use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid_registry, oid2sn};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_DSA, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS, OID_SIG_ED448, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::time::ASN1Time;
use x509_parser::x509::X509Name;

use crate::expiry::days_left;
use crate::{Error, Result};

/// The facts about one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertificateInfo {
    /// Subject distinguished name (`CN=example.com, O=Example`).
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number, upper-case hex without separators (as `openssl x509 -serial` prints it).
    pub serial: String,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP address subject alternative names.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub ip_addresses: Vec<IpAddr>,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// Whole days from the check's moment to `not_after`, rounded down; negative once expired.
    pub days_left: i64,
    /// Issued by itself: issuer equals subject and its own key verifies its signature.
    pub self_signed: bool,
    /// A CA certificate (basic constraints `CA:TRUE`).
    pub is_ca: bool,
    /// Type and size of the subject's public key.
    pub public_key: PublicKeyInfo,
    /// Signature algorithm (`ecdsa-with-SHA256`, `sha256WithRSAEncryption`, `ed25519`), or its
    /// dotted OID when unknown.
    pub signature_algorithm: String,
    /// SHA-256 of the DER certificate, lower-case hex (blackbox_exporter's
    /// `fingerprint_sha256`, `openssl x509 -fingerprint -sha256` without colons).
    #[serde(default)]
    pub fingerprint_sha256: String,
}

/// Type and size of a public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublicKeyInfo {
    /// Key algorithm.
    pub key_type: KeyType,
    /// Size in bits (RSA modulus, EC field size, 256 for Ed25519), when known.
    pub bits: Option<u32>,
    /// Named curve of an EC key (`P-256`, `P-384`, `P-521`, or the curve's OID name).
    pub curve: Option<String>,
}

/// Key algorithm of a public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum KeyType {
    /// RSA (including RSASSA-PSS keys).
    Rsa,
    /// Elliptic curve (ECDSA).
    Ec,
    /// Ed25519.
    Ed25519,
    /// Ed448.
    Ed448,
    /// DSA.
    Dsa,
    /// Anything else.
    Other,
}

impl CertificateInfo {
    /// Parses a DER certificate and computes its days left at `now`.
    ///
    /// # Errors
    /// [`Error::InvalidCertificate`] when `der` is not one X.509 certificate.
    pub fn from_der(der: &[u8], now: DateTime<Utc>) -> Result<Self> {
        let cert = parse(der)?;
        Ok(Self::from_x509(&cert, now))
    }

    pub(crate) fn from_x509(cert: &X509Certificate<'_>, now: DateTime<Utc>) -> Self {
        let (dns_names, ip_addresses) = subject_alt_names(cert);
        let not_after = to_utc(cert.validity().not_after);
        Self {
            subject: name_to_string(cert.subject()),
            issuer: name_to_string(cert.issuer()),
            serial: cert.raw_serial().iter().map(|b| format!("{b:02X}")).collect(),
            dns_names,
            ip_addresses,
            not_before: to_utc(cert.validity().not_before),
            not_after,
            days_left: days_left(not_after, now),
            self_signed: is_self_signed(cert),
            is_ca: cert.is_ca(),
            public_key: public_key_info(cert),
            signature_algorithm: oid_name(&cert.signature_algorithm.algorithm),
            fingerprint_sha256: {
                use sha2::Digest as _;
                hex::encode(sha2::Sha256::digest(cert.as_raw()))
            },
        }
    }

    /// A short name for messages: the subject, or the serial when the subject is empty.
    #[must_use]
    pub fn display_name(&self) -> &str {
        if self.subject.is_empty() { &self.serial } else { &self.subject }
    }
}

/// Parses exactly one DER certificate.
pub(crate) fn parse(der: &[u8]) -> Result<X509Certificate<'_>> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(Error::InvalidCertificate { reason: "trailing bytes after the certificate".to_owned() }),
        Err(e) => Err(Error::InvalidCertificate { reason: e.to_string() }),
    }
}

/// Whether `issuer` issued `cert`: names chain and `issuer`'s key verifies `cert`'s signature
/// (names alone when the signature algorithm is one the verifier does not support).
pub(crate) fn is_issued_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    cert.issuer().as_raw() == issuer.subject().as_raw()
        && match cert.verify_signature(Some(issuer.public_key())) {
            Ok(()) | Err(X509Error::SignatureUnsupportedAlgorithm) => true,
            Err(_) => false,
        }
}

fn is_self_signed(cert: &X509Certificate<'_>) -> bool {
    is_issued_by(cert, cert)
}

pub(crate) fn name_to_string(name: &X509Name<'_>) -> String {
    name.to_string()
}

fn to_utc(time: ASN1Time) -> DateTime<Utc> {
    DateTime::from_timestamp(time.timestamp(), 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn subject_alt_names(cert: &X509Certificate<'_>) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                        ips.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                        ips.push(IpAddr::from(v6));
                    }
                }
                _ => {}
            }
        }
    }
    (dns, ips)
}

fn public_key_info(cert: &X509Certificate<'_>) -> PublicKeyInfo {
    let spki = cert.public_key();
    let alg = &spki.algorithm.algorithm;
    let parsed = spki.parsed().ok();
    let size = parsed.as_ref().map(PublicKey::key_size).filter(|&s| s > 0).and_then(|s| u32::try_from(s).ok());
    if *alg == OID_PKCS1_RSAENCRYPTION || *alg == OID_PKCS1_RSASSAPSS {
        PublicKeyInfo { key_type: KeyType::Rsa, bits: size, curve: None }
    } else if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|oid| {
            if oid == OID_EC_P256 {
                "P-256".to_owned()
            } else if oid == OID_NIST_EC_P384 {
                "P-384".to_owned()
            } else if oid == OID_NIST_EC_P521 {
                "P-521".to_owned()
            } else {
                oid_name(&oid)
            }
        });
        let bits = match curve.as_deref() {
            Some("P-256") => Some(256),
            Some("P-384") => Some(384),
            Some("P-521") => Some(521),
            _ => size,
        };
        PublicKeyInfo { key_type: KeyType::Ec, bits, curve }
    } else if *alg == OID_SIG_ED25519 {
        PublicKeyInfo { key_type: KeyType::Ed25519, bits: Some(256), curve: None }
    } else if *alg == OID_SIG_ED448 {
        PublicKeyInfo { key_type: KeyType::Ed448, bits: Some(456), curve: None }
    } else if *alg == OID_KEY_TYPE_DSA {
        PublicKeyInfo { key_type: KeyType::Dsa, bits: size, curve: None }
    } else {
        PublicKeyInfo { key_type: KeyType::Other, bits: size, curve: None }
    }
}

fn oid_name(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    oid2sn(oid, oid_registry()).map_or_else(|_| oid.to_id_string(), str::to_owned)
}
