//! The webhook's own CA and serving certificate, pure: issued with rcgen, inspected with
//! x509-parser, and the decision of what to renew and when. No I/O (see `keeper`).

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::{Error, Result};

/// How long the CA is valid.
pub const CA_LIFETIME: Duration = Duration::days(5 * 365);
/// A CA with less left than this is replaced (and trusted beside its successor until
/// it expires, so no serving certificate is ever untrusted).
pub const CA_RENEW_BEFORE: Duration = Duration::days(365);
/// How long a serving certificate is valid.
pub const SERVING_LIFETIME: Duration = Duration::days(90);
/// A serving certificate with less left than this is replaced.
pub const SERVING_RENEW_BEFORE: Duration = Duration::days(30);

/// Keys of the certificate Secret.
pub const CA_CERT_KEY: &str = "ca.crt";
/// The CA's private key.
pub const CA_KEY_KEY: &str = "ca.key";
/// The serving certificate.
pub const TLS_CERT_KEY: &str = "tls.crt";
/// The serving certificate's private key.
pub const TLS_KEY_KEY: &str = "tls.key";

/// Everything the Secret holds, as PEM. `Debug` never shows the keys.
#[derive(Clone, PartialEq, Eq)]
pub struct Material {
    /// The CAs the API server is told to trust (`caBundle`): the current CA first, then
    /// a previous one until it expires.
    pub ca_bundle: String,
    /// The current CA's private key.
    pub ca_key: String,
    /// The serving certificate.
    pub cert: String,
    /// Its private key.
    pub key: String,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("ca_bundle", &self.ca_bundle)
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

/// What must be issued anew.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Nothing: both certificates are good for a while.
    Keep,
    /// The serving certificate (expiring, other names, not from the CA, unreadable).
    Serving,
    /// The CA and the serving certificate (no CA, or it is expiring or unreadable).
    All,
}

/// The names a serving certificate must carry: the Service's DNS names, then `extra`.
pub fn hosts(service: &str, namespace: &str, extra: &[String]) -> Vec<String> {
    let mut hosts = vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ];
    hosts.extend(extra.iter().cloned());
    hosts
}

fn cert_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("webhook certificate: {what}: {e}"))
}

/// The certificates in a PEM text, as DER; unreadable blocks are left out.
pub fn pem_certificates(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(|c| c.ok())
        .collect()
}

fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, c)| c)
}

fn time_left(cert: &X509Certificate<'_>, now: OffsetDateTime) -> Duration {
    Duration::seconds(cert.validity().not_after.timestamp() - now.unix_timestamp())
}

fn names_of(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    let ip = |b: &[u8]| match b.len() {
        4 => <[u8; 4]>::try_from(b)
            .ok()
            .map(|a| IpAddr::from(a).to_string()),
        16 => <[u8; 16]>::try_from(b)
            .ok()
            .map(|a| IpAddr::from(a).to_string()),
        _ => None,
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            GeneralName::IPAddress(b) => ip(b),
            _ => None,
        })
        .collect()
}

fn public_key_matches(cert: &X509Certificate<'_>, key_pem: &str) -> bool {
    KeyPair::from_pem(key_pem)
        .is_ok_and(|k| k.public_key_raw() == cert.public_key().subject_public_key.data.as_ref())
}

/// What to renew at `now`, for a serving certificate that must carry `hosts`.
pub fn renewal(material: Option<&Material>, hosts: &[String], now: OffsetDateTime) -> Renewal {
    let Some(m) = material else {
        return Renewal::All;
    };
    let bundle = pem_certificates(&m.ca_bundle);
    let Some(ca) = bundle.first().and_then(|der| parse(der)) else {
        return Renewal::All;
    };
    if time_left(&ca, now) < CA_RENEW_BEFORE || !public_key_matches(&ca, &m.ca_key) {
        return Renewal::All;
    }
    let serving = pem_certificates(&m.cert);
    let Some(cert) = serving.first().and_then(|der| parse(der)) else {
        return Renewal::Serving;
    };
    let mut names = names_of(&cert);
    names.sort();
    let mut wanted = hosts.to_vec();
    wanted.sort();
    let good = time_left(&cert, now) >= SERVING_RENEW_BEFORE
        && cert.verify_signature(Some(ca.public_key())).is_ok()
        && names == wanted
        && public_key_matches(&cert, &m.key);
    if good {
        Renewal::Keep
    } else {
        Renewal::Serving
    }
}

/// A new CA valid from `not_before` for `lifetime`: (certificate PEM, key PEM).
pub fn issue_ca(not_before: OffsetDateTime, lifetime: Duration) -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(|e| cert_error("CA key", e))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("mailops webhook CA {}", not_before.unix_timestamp()),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = not_before;
    params.not_after = not_before + lifetime;
    let cert = params
        .self_signed(&key)
        .map_err(|e| cert_error("CA certificate", e))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A serving certificate for `hosts` signed by the CA, valid from `not_before` for
/// `lifetime`: (certificate PEM, key PEM).
pub fn issue_serving(
    ca_cert: &str,
    ca_key: &str,
    hosts: &[String],
    not_before: OffsetDateTime,
    lifetime: Duration,
) -> Result<(String, String)> {
    let ca_key = KeyPair::from_pem(ca_key).map_err(|e| cert_error("CA key", e))?;
    let issuer =
        Issuer::from_ca_cert_pem(ca_cert, ca_key).map_err(|e| cert_error("CA certificate", e))?;
    let mut params =
        CertificateParams::new(hosts.to_vec()).map_err(|e| cert_error("serving names", e))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(first) = hosts.first() {
        params
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_before + lifetime;
    let key = KeyPair::generate().map_err(|e| cert_error("serving key", e))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| cert_error("serving certificate", e))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Issue what `renewal` asks for. A replaced CA stays in the bundle while it is valid, so
/// API servers still holding the old bundle keep trusting certificates until they update.
pub fn renew(
    current: Option<&Material>,
    renewal: Renewal,
    hosts: &[String],
    now: OffsetDateTime,
) -> Result<Material> {
    // Back-dated an hour for clocks a little behind ours.
    let start = now - Duration::hours(1);
    let (ca_bundle, ca_key) = match (renewal, current) {
        (Renewal::Keep, Some(m)) => return Ok(m.clone()),
        (Renewal::Serving, Some(m)) => (current_ca(m, now)?, m.ca_key.clone()),
        _ => {
            let (ca, key) = issue_ca(start, CA_LIFETIME)?;
            (with_previous(&ca, current, now), key)
        }
    };
    let first = current_ca_pem(&ca_bundle)?;
    let (cert, key) = issue_serving(&first, &ca_key, hosts, start, SERVING_LIFETIME)?;
    Ok(Material {
        ca_bundle,
        ca_key,
        cert,
        key,
    })
}

/// The bundle of `m` without CAs that have expired.
fn current_ca(m: &Material, now: OffsetDateTime) -> Result<String> {
    let kept: Vec<String> = pem_certificates(&m.ca_bundle)
        .iter()
        .enumerate()
        .filter(|(i, der)| *i == 0 || parse(der).is_some_and(|c| time_left(&c, now).is_positive()))
        .map(|(_, der)| der_to_pem(der))
        .collect();
    if kept.is_empty() {
        return Err(cert_error("CA bundle", "holds no certificate"));
    }
    Ok(kept.concat())
}

fn with_previous(new_ca: &str, current: Option<&Material>, now: OffsetDateTime) -> String {
    let previous = current
        .map(|m| pem_certificates(&m.ca_bundle))
        .unwrap_or_default()
        .into_iter()
        .take(1)
        .filter(|der| parse(der).is_some_and(|c| time_left(&c, now).is_positive()))
        .map(|der| der_to_pem(&der));
    std::iter::once(new_ca.to_string())
        .chain(previous)
        .collect()
}

fn current_ca_pem(bundle: &str) -> Result<String> {
    pem_certificates(bundle)
        .first()
        .map(|der| der_to_pem(der))
        .ok_or_else(|| cert_error("CA bundle", "holds no certificate"))
}

fn der_to_pem(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

#[cfg(test)]
#[path = "certs_tests.rs"]
mod tests;
