//! TLS for the webhook: a rustls server configuration (ring provider, as kube uses) whose
//! certificate is read from a slot the certificate keeper replaces, so a rotation needs
//! no restart and no new listener.

use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certs::{Material, pem_certificates};
use crate::{Error, Result};

/// The serving certificate in use; empty until the keeper fills it (the handshake is then
/// refused).
#[derive(Debug, Default)]
pub struct CertSlot {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl CertSlot {
    /// Serve `material`'s certificate from the next handshake on.
    pub fn install(&self, material: &Material) -> Result<()> {
        let key = certified_key(&material.cert, &material.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(key));
        Ok(())
    }

    /// Whether a certificate is installed.
    pub fn is_filled(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A certificate chain and key from PEM, checked to belong together.
pub fn certified_key(cert_pem: &str, key_pem: &str) -> Result<CertifiedKey> {
    let chain = pem_certificates(cert_pem);
    if chain.is_empty() {
        return Err(Error::Config(
            "webhook certificate: no certificate in the PEM".into(),
        ));
    }
    // The key's own parse error could quote nothing secret, but say only what failed.
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|_| Error::Config("webhook certificate: the private key is unreadable".into()))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| Error::Config(format!("webhook certificate: {e}")))
}

/// The server configuration: TLS 1.2 and 1.3 with ring, HTTP/1.1, no client certificates
/// (the API server authenticates us; requests are authorised by what they carry).
pub fn server_config(slot: Arc<CertSlot>) -> Result<Arc<ServerConfig>> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("webhook TLS: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(slot);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
