//! The roots a chain must lead to: Mozilla's (`webpki-roots`) or those of a CA file.

use std::fmt;
use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, TrustAnchor};

use crate::{CheckOptions, Error, Result};

/// Trust anchors, and the full root certificates when they are known (a CA file has them; the
/// bundled roots carry only names and keys, so their expiry is unknown).
pub(crate) struct TrustStore {
    pub(crate) anchors: Vec<TrustAnchor<'static>>,
    pub(crate) root_certs: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustStore").field("anchors", &self.anchors.len()).finish_non_exhaustive()
    }
}

impl TrustStore {
    /// The CA file of `options`, or the bundled Mozilla roots.
    pub(crate) async fn load(options: &CheckOptions) -> Result<Self> {
        match &options.ca_file {
            Some(path) => {
                let pem = tokio::fs::read(path).await.map_err(|e| Error::read(path, e))?;
                Self::from_pem(path, &pem)
            }
            None => Ok(Self::mozilla()),
        }
    }

    pub(crate) fn mozilla() -> Self {
        Self { anchors: webpki_roots::TLS_SERVER_ROOTS.to_vec(), root_certs: Vec::new() }
    }

    pub(crate) fn from_pem(path: &Path, pem: &[u8]) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidCaFile { path: path.to_owned(), reason };
        let mut anchors = Vec::new();
        let mut root_certs = Vec::new();
        for (i, der) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let der = der.map_err(|e| invalid(format!("certificate {}: {e}", i + 1)))?;
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| invalid(format!("certificate {}: {e}", i + 1)))?
                .to_owned();
            anchors.push(anchor);
            root_certs.push(der);
        }
        if anchors.is_empty() {
            return Err(invalid("no certificate in the file".to_owned()));
        }
        Ok(Self { anchors, root_certs })
    }

    /// The full certificate of `anchor`, looked up among the CA file's certificates and the
    /// self-issued certificates `extra` (a server may send its root). Cross-signed copies of a
    /// root share its name and key but not its issuer, so they are never taken for the root.
    pub(crate) fn root_cert_of<'a>(
        &'a self,
        anchor: &TrustAnchor<'_>,
        extra: &'a [CertificateDer<'a>],
    ) -> Option<&'a CertificateDer<'a>> {
        let is_anchor = |der: &CertificateDer<'_>| {
            webpki::anchor_from_trusted_cert(der).is_ok_and(|a| {
                a.subject.as_ref() == anchor.subject.as_ref()
                    && a.subject_public_key_info.as_ref() == anchor.subject_public_key_info.as_ref()
            })
        };
        let self_issued = |der: &CertificateDer<'_>| {
            crate::certificate::parse(der).is_ok_and(|c| c.subject().as_raw() == c.issuer().as_raw())
        };
        self.root_certs
            .iter()
            .find(|der| is_anchor(der))
            .or_else(|| extra.iter().find(|der| self_issued(der) && is_anchor(der)))
    }
}
