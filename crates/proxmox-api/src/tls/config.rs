//! The rustls configuration for each [`TlsTrust`] (the `client` feature).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{Fingerprint, TlsTrust};
use crate::Error;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for a trust setting.
pub(crate) fn client_config(trust: &TlsTrust) -> Result<ClientConfig, Error> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config {
            field: "tls",
            reason: e.to_string(),
        })?;
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        TlsTrust::SystemRoots => Arc::new(
            rustls_platform_verifier::Verifier::new(Arc::clone(&provider)).map_err(|e| {
                Error::Config {
                    field: "tls",
                    reason: format!("system trust store: {e}"),
                }
            })?,
        ),
        TlsTrust::CaPem(pem) => {
            let mut roots = RootCertStore::empty();
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| Error::Config {
                    field: "ca",
                    reason: format!("bad PEM: {e}"),
                })?;
                roots.add(cert).map_err(|e| Error::Config {
                    field: "ca",
                    reason: format!("unusable CA certificate: {e}"),
                })?;
                n += 1;
            }
            if n == 0 {
                return Err(Error::Config {
                    field: "ca",
                    reason: "no CERTIFICATE in the PEM".into(),
                });
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|e| Error::Config {
                field: "ca",
                reason: e.to_string(),
            })?
        }
        TlsTrust::Fingerprint(fp) => Arc::new(Pinned {
            want: Some(*fp),
            algs: provider.signature_verification_algorithms,
        }),
        TlsTrust::DangerAcceptInvalidCerts => Arc::new(Pinned {
            want: None,
            algs: provider.signature_verification_algorithms,
        }),
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Accepts exactly one certificate (by fingerprint), or any when `want` is `None`.
/// Handshake signatures are always verified.
#[derive(Debug)]
struct Pinned {
    want: Option<Fingerprint>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(want) = self.want else {
            return Ok(ServerCertVerified::assertion());
        };
        let got = Fingerprint::of_der(end_entity.as_ref());
        // Compare every byte: no early exit.
        let diff = got
            .0
            .iter()
            .zip(want.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate fingerprint {got} does not match the pinned {want}"
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
