//! A rustls certificate verifier that records the presented chain and webpki's verdict on it,
//! and lets the handshake finish whatever the verdict.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::chain::{PathOutcome, verify_path};
use crate::trust::TrustStore;
use crate::{Error, Result};

/// What the verifier saw.
#[derive(Debug)]
pub(super) struct Recorded {
    pub(super) presented: Vec<CertificateDer<'static>>,
    pub(super) path: PathOutcome,
}

#[derive(Debug)]
pub(super) struct RecordingVerifier {
    trust: Arc<TrustStore>,
    /// The check's moment, not the clock rustls passes, so pinned-time checks are deterministic.
    now: DateTime<Utc>,
    algorithms: WebPkiSupportedAlgorithms,
    recorded: Mutex<Option<Recorded>>,
}

impl RecordingVerifier {
    /// Takes what was recorded (`None` when the server sent no certificate message).
    pub(super) fn take(&self) -> Option<Recorded> {
        self.recorded.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let presented: Vec<CertificateDer<'static>> =
            std::iter::once(end_entity).chain(intermediates).map(|c| c.clone().into_owned()).collect();
        let path = verify_path(&presented, &self.trust, self.algorithms.all, self.now);
        *self.recorded.lock().unwrap_or_else(PoisonError::into_inner) = Some(Recorded { presented, path });
        // Inspection only: the verdict is in the report, and no application data is sent.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A connector with its own ring provider (never the process default, so two providers compiled
/// into one binary cannot make rustls panic) and a fresh recording verifier.
pub(super) fn connector(
    trust: Arc<TrustStore>,
    now: DateTime<Utc>,
) -> Result<(Arc<RecordingVerifier>, tokio_rustls::TlsConnector)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(RecordingVerifier {
        trust,
        now,
        algorithms: provider.signature_verification_algorithms,
        recorded: Mutex::new(None),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| Error::Internal(format!("tls client configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    Ok((verifier, tokio_rustls::TlsConnector::from(Arc::new(config))))
}
