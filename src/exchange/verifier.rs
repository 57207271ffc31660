//! Server certificate verification under a provider's trust. rustls' own WebPKI verifier
//! makes every decision; the wrapper only verifies against `spec.tls.serverName` when one
//! is set, and, when the verdict is no, describes the certificate the server presented
//! (subject, issuer, validity, names; never a key) so the failure can name it.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};
use x509_parser::extensions::GeneralName;

use super::errors::server_text;
use super::trust::Trust;
use crate::api::conditions::Reason;

/// What was wrong with a certificate, in the three reasons mailops reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// No chain to a trusted CA, or a chain that does not verify.
    Untrusted(&'static str),
    /// Past its `notAfter`.
    Expired,
    /// Before its `notBefore`.
    NotYetValid,
    /// Not valid for the name verified.
    NameMismatch,
}

impl Problem {
    fn of(error: &CertificateError) -> Problem {
        use CertificateError as E;
        match error {
            E::Expired | E::ExpiredContext { .. } => Problem::Expired,
            E::NotValidYet | E::NotValidYetContext { .. } => Problem::NotYetValid,
            E::NotValidForName | E::NotValidForNameContext { .. } => Problem::NameMismatch,
            E::UnknownIssuer => Problem::Untrusted("issued by a CA this provider does not trust"),
            E::BadSignature => Problem::Untrusted("its signature does not verify"),
            E::Revoked => Problem::Untrusted("it is revoked"),
            E::InvalidPurpose | E::InvalidPurposeContext { .. } => {
                Problem::Untrusted("it is not meant for TLS servers")
            }
            E::BadEncoding => Problem::Untrusted("it cannot be parsed"),
            E::UnhandledCriticalExtension => {
                Problem::Untrusted("it carries a critical extension that cannot be checked")
            }
            _ => Problem::Untrusted("the verifier refused it"),
        }
    }

    /// The condition reason.
    pub fn reason(self) -> Reason {
        match self {
            Problem::Untrusted(_) => Reason::CertificateUntrusted,
            Problem::Expired | Problem::NotYetValid => Reason::CertificateExpired,
            Problem::NameMismatch => Reason::CertificateNameMismatch,
        }
    }
}

/// The parts of a certificate a status may show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// `notBefore`, RFC 3339.
    pub not_before: String,
    /// `notAfter`, RFC 3339.
    pub not_after: String,
    /// DNS names and IP addresses of the subjectAltName extension.
    pub names: Vec<String>,
}

impl Summary {
    /// Read a DER certificate; `None` when it does not parse.
    pub fn of(der: &[u8]) -> Option<Summary> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let time = |t: x509_parser::time::ASN1Time| {
            t.to_datetime()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| t.to_string())
        };
        let names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    GeneralName::IPAddress(ip) => ip_text(ip),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(Summary {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: time(cert.validity().not_before),
            not_after: time(cert.validity().not_after),
            names,
        })
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

/// A certificate the verifier refused, with what it is and why: the error rustls carries
/// out of the handshake (inside `CertificateError::Other`) and up reqwest's error chain.
#[derive(Clone, Debug)]
pub struct PresentedCertificate {
    /// What was wrong.
    pub problem: Problem,
    /// The certificate; `None` when it does not even parse.
    pub certificate: Option<Summary>,
    /// The name it was verified against.
    pub expected: String,
    /// What the provider trusts, in words (see [`Trust::describe`]).
    pub trusted: String,
}

/// The most subjectAltNames listed in a message.
const MAX_NAMES: usize = 5;

impl fmt::Display for PresentedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.certificate.as_ref();
        let at = |pick: fn(&Summary) -> &str| c.map(pick).unwrap_or("?").to_string();
        match self.problem {
            Problem::Untrusted(why) => {
                write!(f, "the server's certificate is not trusted ({why})")?
            }
            Problem::Expired => write!(
                f,
                "the server's certificate expired at {}",
                at(|c| &c.not_after)
            )?,
            Problem::NotYetValid => write!(
                f,
                "the server's certificate is not valid before {}",
                at(|c| &c.not_before)
            )?,
            Problem::NameMismatch => write!(
                f,
                "the server's certificate is not valid for {:?} (it names {})",
                server_text(&self.expected),
                names(c.map(|c| c.names.as_slice()).unwrap_or_default())
            )?,
        }
        match c {
            Some(c) => write!(
                f,
                ": subject {:?}, issuer {:?}, valid from {} to {}",
                server_text(&c.subject),
                server_text(&c.issuer),
                c.not_before,
                c.not_after
            )?,
            None => f.write_str(": the certificate cannot be parsed")?,
        }
        match self.problem {
            Problem::Untrusted(_) => write!(
                f,
                "; mailops trusts {} for this provider: add the CA that issued it (behind a TLS-inspecting proxy, the proxy's CA) to spec.tls.caBundle or caBundleFrom",
                self.trusted
            ),
            Problem::Expired => f.write_str("; renew it on the server"),
            Problem::NotYetValid => f.write_str("; check the clocks of the server and of the operator's node"),
            Problem::NameMismatch => f.write_str(
                "; reach the server by a name its certificate carries, or set spec.tls.serverName to one",
            ),
        }
    }
}

fn names(names: &[String]) -> String {
    if names.is_empty() {
        return "no DNS name or IP address".into();
    }
    let mut listed: Vec<String> = names
        .iter()
        .take(MAX_NAMES)
        .map(|n| format!("{:?}", server_text(n)))
        .collect();
    if names.len() > MAX_NAMES {
        listed.push(format!("{} more", names.len() - MAX_NAMES));
    }
    listed.join(", ")
}

impl StdError for PresentedCertificate {}

/// The refused certificate somewhere in an error's chain (reqwest, hyper, the I/O error of
/// the handshake, rustls), if a certificate was the cause.
pub fn presented_certificate<'a>(
    error: &'a (dyn StdError + 'static),
) -> Option<&'a PresentedCertificate> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<PresentedCertificate>() {
            return Some(found);
        }
        if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner)))) =
            e.downcast_ref::<rustls::Error>()
            && let Some(found) = inner.downcast_ref::<PresentedCertificate>()
        {
            return Some(found);
        }
        // `io::Error::source` skips the error it wraps; the handshake's lives there.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(found) = presented_certificate(inner)
        {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// rustls' WebPKI verifier under a provider's trust.
#[derive(Debug)]
struct ProviderVerifier {
    inner: Arc<WebPkiServerVerifier>,
    server_name: Option<ServerName<'static>>,
    trusted: String,
}

impl ServerCertVerifier for ProviderVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = self.server_name.as_ref().unwrap_or(server_name);
        self.inner
            .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
            .map_err(|error| match error {
                rustls::Error::InvalidCertificate(e) => {
                    let presented = PresentedCertificate {
                        problem: Problem::of(&e),
                        certificate: Summary::of(end_entity),
                        expected: name.to_str().into_owned(),
                        trusted: self.trusted.clone(),
                    };
                    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
                        Arc::new(presented),
                    )))
                }
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// The rustls client configuration for a trust (ring, TLS 1.2 and 1.3).
pub fn client_config(trust: &Trust) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(trust.roots(), provider.clone())
        .build()
        .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
    let verifier = ProviderVerifier {
        inner,
        server_name: trust.server_name().cloned(),
        trusted: trust.describe(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot configure TLS: {e}"))?
        // rustls calls any verifier of one's own "dangerous"; this one hands every
        // decision to the WebPKI verifier above and only changes the name it checks.
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}
