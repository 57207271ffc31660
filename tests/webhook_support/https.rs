//! The webhook served over HTTPS on 127.0.0.1 for tests, and clients for it: reqwest for
//! whole requests, raw TLS for requests no well-behaved client sends.

use std::sync::Arc;

use mailops::webhook::certs::{self, Material, Renewal};
use mailops::webhook::server::{Handler, Limits, serve_tls};
use mailops::webhook::tls::{CertSlot, ClientAuth, server_config};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::*;

/// The webhook on a loopback port; stopped when dropped.
pub struct Served {
    pub url: String,
    pub port: u16,
    pub slot: Arc<CertSlot>,
    pub reviewer: Arc<FakeReviewer>,
    pub task: tokio::task::JoinHandle<mailops::Result<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A CA and a serving certificate for 127.0.0.1.
pub fn material() -> Material {
    let hosts = certs::hosts("mailops-webhook", "mailops-system", &["127.0.0.1".into()]);
    certs::renew(None, Renewal::All, &hosts, OffsetDateTime::now_utc()).unwrap()
}

/// The webhook over the usual caches (provider contoso, account corp for namespace
/// support, binding support/helpdesk through corp), with alice allowed `use`.
pub async fn serve(material: &Material, client_auth: &ClientAuth) -> Served {
    let mut caches = Caches::new();
    caches
        .provider(provider("contoso", &["contoso.com"]))
        .account(account("corp", "contoso", &["support"]))
        .namespace("support")
        .binding(attached(
            account_binding("support", "helpdesk", "helpdesk@contoso.com", "corp"),
            "contoso",
            Some("corp"),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let slot = Arc::new(CertSlot::default());
    slot.install(material).unwrap();
    let reviewer = reviewer(&["alice"]);
    let handler = Arc::new(Handler::new(
        caches.stores.clone(),
        reviewer.clone(),
        OPTIONS,
    ));
    let tls = server_config(slot.clone(), client_auth).unwrap();
    let task = tokio::spawn(serve_tls(
        listener,
        tls,
        handler,
        Limits::default(),
        std::future::pending(),
    ));
    Served {
        url: format!("https://127.0.0.1:{port}"),
        port,
        slot,
        reviewer,
        task,
    }
}

/// A reqwest client trusting only `ca_bundle`, presenting `identity` (PEM key and
/// certificate) if given.
pub fn client(ca_bundle: &str, identity: Option<&str>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_bundle.as_bytes()).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca);
    if let Some(pem) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

pub fn client_trusting(ca_bundle: &str) -> reqwest::Client {
    client(ca_bundle, None)
}

/// POST `body` to `/validate`: the status and the JSON answer.
pub async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, Value) {
    let response = client
        .post(format!("{url}/validate"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("an HTTPS answer");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

/// A raw TLS connection to the webhook, trusting `ca_bundle`.
pub async fn tls_connect(port: u16, ca_bundle: &str) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(certs::pem_certificates(ca_bundle));
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("a TLS connection")
}

/// A certificate (PEM) for `common_name` with `usage`, signed by the CA `(cert, key)`,
/// followed by its key: what `reqwest::Identity::from_pem` reads.
pub fn signed_identity(
    ca: &(String, String),
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> String {
    let ca_key = KeyPair::from_pem(&ca.1).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca.0, ca_key).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    format!("{}{}", cert.pem(), key.serialize_pem())
}

/// A fresh CA: (certificate PEM, key PEM).
pub fn client_ca() -> (String, String) {
    let now = OffsetDateTime::now_utc() - time::Duration::hours(1);
    certs::issue_ca(now, time::Duration::days(1)).unwrap()
}

/// The DER certificate in an identity PEM.
pub fn identity_certificate(identity: &str) -> CertificateDer<'static> {
    CertificateDer::pem_slice_iter(identity.as_bytes())
        .next()
        .unwrap()
        .unwrap()
}
