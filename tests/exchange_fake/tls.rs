//! Test CAs generated at start-up with rcgen, the server certificates they issue (good,
//! expired, for another name), and the TLS acceptor a fake serves them with.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};
use tokio_rustls::TlsAcceptor;

/// A CA of the test's own: its certificate is what a provider's `caBundle` holds.
pub struct TestCa {
    /// Its common name, which the server certificates name as their issuer.
    pub name: String,
    /// Its certificate, PEM.
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate and its key, and the chain served with it.
#[derive(Clone)]
pub struct ServerCert {
    /// The leaf certificate, PEM.
    pub pem: String,
    key_pem: String,
    /// Intermediates served after the leaf, PEM.
    pub chain: Vec<String>,
}

impl TestCa {
    /// A new root CA called `name`, valid from an hour ago for a year.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(name);
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            name: name.to_string(),
            pem,
            issuer: Issuer::new(ca_params(name), key),
        }
    }

    /// An intermediate CA signed by this one: (the intermediate, its certificate PEM).
    pub fn intermediate(&self, name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let pem = ca_params(name).signed_by(&key, &self.issuer).unwrap().pem();
        TestCa {
            name: name.to_string(),
            pem,
            issuer: Issuer::new(ca_params(name), key),
        }
    }

    /// A server certificate for `hosts` (DNS names or IP addresses), valid from an hour ago
    /// for a day.
    pub fn server(&self, hosts: &[&str]) -> ServerCert {
        let now = OffsetDateTime::now_utc();
        self.server_valid(hosts, now - Duration::hours(1), now + Duration::days(1))
    }

    /// A server certificate for `hosts` valid between the two instants.
    pub fn server_valid(
        &self,
        hosts: &[&str],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> ServerCert {
        let names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            hosts.first().copied().unwrap_or("server"),
        );
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ServerCert {
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            chain: Vec::new(),
        }
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Contoso Test");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365);
    params
}

impl ServerCert {
    /// The same certificate served with `intermediate` after it.
    pub fn with_chain(mut self, intermediate: &TestCa) -> ServerCert {
        self.chain.push(intermediate.pem.clone());
        self
    }

    /// A TLS acceptor serving this certificate (and its chain).
    pub fn acceptor(&self) -> TlsAcceptor {
        let mut certs = vec![CertificateDer::from_pem_slice(self.pem.as_bytes()).unwrap()];
        for pem in &self.chain {
            certs.push(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap());
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }
}
