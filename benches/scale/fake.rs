//! A stand-in for Entra ID and Microsoft Graph on 127.0.0.1, just enough for mailops to
//! verify mailboxes: client-credentials and refresh-token grants, and Graph folder reads.
//! It serves HTTPS with a certificate from a CA generated at start-up (the providers
//! carry that CA in `spec.tls.caBundle`, so the operator runs as in production), and
//! counts what it is asked, so the benchmark can report token requests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// What the fake was asked.
#[derive(Default)]
pub struct Counts {
    /// Token requests (any grant).
    pub tokens: AtomicUsize,
    /// Graph requests.
    pub graph: AtomicUsize,
}

/// The running fake.
pub struct Fake {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it was asked.
    pub counts: Arc<Counts>,
    /// The PEM of the CA its certificate comes from.
    pub ca_pem: String,
}

fn tls_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("the fake's certificate: {e}"))
}

/// A CA generated now, and a TLS acceptor serving a certificate it issued for 127.0.0.1.
fn tls() -> std::io::Result<(String, TlsAcceptor)> {
    let ca_key = KeyPair::generate().map_err(tls_error)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).map_err(tls_error)?.pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(tls_error)?;
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .and_then(|p| p.signed_by(&key, &issuer))
        .map_err(tls_error)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let chain = vec![CertificateDer::from(leaf.der().to_vec())];
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls_error)?;
    Ok((ca_pem, TlsAcceptor::from(Arc::new(config))))
}

fn token_body() -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = b64.encode(br#"{"roles":["Mail.Read","Mail.Send","Calendars.Read"]}"#);
    format!(r#"{{"token_type":"Bearer","expires_in":3600,"access_token":"{header}.{claims}.sig"}}"#)
}

async fn answer(
    req: Request<Incoming>,
    counts: Arc<Counts>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let (status, body) = if path.ends_with("/oauth2/v2.0/token") {
        counts.tokens.fetch_add(1, Ordering::SeqCst);
        (200, token_body())
    } else if path.contains("/users/") {
        counts.graph.fetch_add(1, Ordering::SeqCst);
        (200, r#"{"id":"folder"}"#.to_string())
    } else {
        counts.graph.fetch_add(1, Ordering::SeqCst);
        (404, "{}".to_string())
    };
    let response = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default();
    Ok(response)
}

impl Fake {
    /// Listen on a free loopback port until the process ends.
    pub async fn start() -> std::io::Result<Fake> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (ca_pem, acceptor) = tls()?;
        let counts = Arc::new(Counts::default());
        let served = counts.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counts = served.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |r| answer(r, counts.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Fake {
            addr,
            counts,
            ca_pem,
        })
    }

    /// The base URL of the fake.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}
