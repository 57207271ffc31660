//! TLS for the webhook: a rustls server configuration (ring provider, as kube uses) whose
//! certificate is read from a slot the certificate keeper replaces, so a rotation needs
//! no restart and no new listener; and, when configured, client certificates required
//! from the API server (its `AdmissionConfiguration` gives it one), so nothing else can
//! reach the handler.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use x509_parser::extensions::GeneralName;

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

/// Who may open a connection.
#[derive(Clone, Debug, Default)]
pub enum ClientAuth {
    /// Anyone: requests are judged only by what they carry.
    #[default]
    Anyone,
    /// Only clients presenting a certificate that chains to `roots` and, unless `names`
    /// is empty, names one of them (subject CN or a DNS SAN).
    Verified {
        /// The CAs that sign the API server's webhook client certificate.
        roots: Arc<RootCertStore>,
        /// The client names accepted; empty: any certificate from the CAs.
        names: Vec<String>,
    },
}

impl ClientAuth {
    /// Client certificates from the CAs in `ca_pem`, with one of `names` if any.
    pub fn from_pem(ca_pem: &str, names: Vec<String>) -> Result<Self> {
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(pem_certificates(ca_pem));
        if added == 0 {
            return Err(Error::Config(
                "webhook client CA: no usable certificate in the PEM".into(),
            ));
        }
        Ok(ClientAuth::Verified {
            roots: Arc::new(roots),
            names,
        })
    }

    /// As [`ClientAuth::from_pem`], reading the CAs from `path`.
    pub fn from_file(path: &Path, names: Vec<String>) -> Result<Self> {
        let pem = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&pem, names)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration: TLS 1.2 and 1.3 with ring, HTTP/1.1, and client
/// certificates as `client_auth` says.
pub fn server_config(slot: Arc<CertSlot>, client_auth: &ClientAuth) -> Result<Arc<ServerConfig>> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("webhook TLS: {e}")))?;
    let builder = match client_auth {
        ClientAuth::Anyone => builder.with_no_client_auth(),
        ClientAuth::Verified { roots, names } => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| Error::Config(format!("webhook client CA: {e}")))?;
            let verifier: Arc<dyn ClientCertVerifier> = if names.is_empty() {
                verifier
            } else {
                Arc::new(NamedClients {
                    inner: verifier,
                    names: names.clone(),
                })
            };
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(slot);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client verifier that, past the CA's verdict, also wants one of `names` on the
/// client's certificate: a CA that signs more than the API server's client certificate
/// then still admits only the API server.
#[derive(Debug)]
struct NamedClients {
    inner: Arc<dyn ClientCertVerifier>,
    names: Vec<String>,
}

impl ClientCertVerifier for NamedClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let presented = client_names(end_entity);
        if presented
            .iter()
            .any(|n| self.names.iter().any(|w| w.eq_ignore_ascii_case(n)))
        {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The names a client certificate carries: its subject's common names and its DNS SANs.
pub fn client_names(der: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(String::from))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        names.extend(san.value.general_names.iter().filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        }));
    }
    names
}
