//! A provider's trust: the CA certificates its servers are verified against (its bundle,
//! plus the public web PKI roots unless it opts out) and the name they must be valid for.
//! Pure: the bundle's text comes from the caller, whether inline or read from a ConfigMap
//! or Secret, so the same code serves the controllers, `check` and the tests.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::RootCertStore;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, ServerName};

use crate::api::conditions::Reason;
use crate::api::{BundleObject, TlsSpec};
use crate::{Error, Result};

/// The most certificates one bundle may hold. trust-manager's bundle of the public roots
/// plus private ones is about 150; this bounds the work a hostile ConfigMap can cause.
pub const MAX_BUNDLE_CERTIFICATES: usize = 1000;

/// The most bytes of bundle text read (a ConfigMap holds at most 1 MiB anyway).
pub const MAX_BUNDLE_BYTES: usize = 1024 * 1024;

/// What a provider's servers are verified against. Cheap to clone; compared (and cached
/// by the HTTP clients) by content, so a thousand mailboxes of one provider share one
/// client and one connection pool.
#[derive(Clone)]
pub struct Trust(Arc<Inner>);

struct Inner {
    /// The bundle's certificates, DER, in the bundle's order.
    bundle: Vec<CertificateDer<'static>>,
    /// Whether the public roots are trusted too.
    public_roots: bool,
    /// The name certificates must be valid for, instead of the URL's host.
    server_name: Option<ServerName<'static>>,
    /// The bundle's certificates and (when asked) the public roots, ready for rustls.
    roots: Arc<RootCertStore>,
    /// A digest of the three fields above.
    digest: u64,
}

impl Default for Trust {
    /// The public web PKI roots and the URL's host: what a provider without `spec.tls` uses.
    fn default() -> Self {
        static PUBLIC: OnceLock<Trust> = OnceLock::new();
        PUBLIC
            .get_or_init(|| Trust::new(Vec::new(), true, None))
            .clone()
    }
}

impl Trust {
    fn new(
        bundle: Vec<CertificateDer<'static>>,
        public_roots: bool,
        server_name: Option<ServerName<'static>>,
    ) -> Trust {
        let mut roots = RootCertStore::empty();
        if public_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        // Every certificate was checked by `parse_bundle`, so none is skipped here.
        let _ = roots.add_parsable_certificates(bundle.iter().cloned());
        // A digest stable for the life of the process (SipHash with fixed keys): it only
        // has to tell two trusts apart, in the probe caches and the client cache.
        let mut hasher = std::hash::DefaultHasher::new();
        for der in &bundle {
            der.as_ref().hash(&mut hasher);
        }
        public_roots.hash(&mut hasher);
        server_name.as_ref().map(|n| n.to_str()).hash(&mut hasher);
        Trust(Arc::new(Inner {
            bundle,
            public_roots,
            server_name,
            roots: Arc::new(roots),
            digest: hasher.finish(),
        }))
    }

    /// The root store for rustls: the bundle, plus the public roots when trusted.
    pub fn roots(&self) -> Arc<RootCertStore> {
        self.0.roots.clone()
    }

    /// The name certificates are verified against instead of the URL's host, if set.
    pub fn server_name(&self) -> Option<&ServerName<'static>> {
        self.0.server_name.as_ref()
    }

    /// How many certificates the provider's own bundle holds.
    pub fn bundle_len(&self) -> usize {
        self.0.bundle.len()
    }

    /// A short, stable text that changes whenever the trust does: for probe-input digests,
    /// so that a new bundle re-verifies what it applies to.
    pub fn digest(&self) -> String {
        format!("{:016x}", self.0.digest)
    }

    /// What is trusted, in words, for messages: "the 2 certificates of spec.tls and the
    /// public roots".
    pub fn describe(&self) -> String {
        let n = self.0.bundle.len();
        match (n, self.0.public_roots) {
            (0, _) => "the public roots".to_string(),
            (n, true) => format!("the {n} certificate(s) of spec.tls and the public roots"),
            (n, false) => format!("only the {n} certificate(s) of spec.tls"),
        }
    }
}

impl PartialEq for Trust {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.digest == other.0.digest
                && self.0.public_roots == other.0.public_roots
                && self.0.server_name == other.0.server_name
                && self.0.bundle == other.0.bundle)
    }
}

impl Eq for Trust {}

impl Hash for Trust {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.digest.hash(state);
    }
}

impl fmt::Debug for Trust {
    /// The shape only: which certificates would be noise in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trust")
            .field("bundle_certificates", &self.0.bundle.len())
            .field("public_roots", &self.0.public_roots)
            .field(
                "server_name",
                &self.0.server_name.as_ref().map(|n| n.to_str()),
            )
            .field("digest", &self.digest())
            .finish()
    }
}

fn invalid(message: String) -> Error {
    Error::Spec {
        reason: Reason::InvalidCABundle,
        message,
    }
}

/// How many built trusts are remembered (see [`provider_trust`]).
const MEMO_SIZE: usize = 256;

struct Memo {
    keys: RandomState,
    trusts: HashMap<u64, Trust>,
}

/// The trust of a provider from its `spec.tls` and, when that names a `caBundleFrom`, the
/// text of the referenced ConfigMap or Secret key, read by the caller (`None` when there is
/// none to read). Fails with `InvalidCABundle` naming the field or the object.
///
/// Every reconcile of every mailbox asks for its provider's trust, and parsing a bundle of
/// a hundred certificates each time would cost more than the probe it guards, so results
/// are remembered by their inputs (a keyed hash: the keys are drawn at start-up, so no
/// bundle can be crafted to collide with another). A pure function's memo; failures are
/// not kept.
pub fn provider_trust(tls: Option<&TlsSpec>, referenced_bundle: Option<&str>) -> Result<Trust> {
    let Some(tls) = tls else {
        return Ok(Trust::default());
    };
    static MEMO: OnceLock<Mutex<Memo>> = OnceLock::new();
    let memo = MEMO.get_or_init(|| {
        Mutex::new(Memo {
            keys: RandomState::new(),
            trusts: HashMap::new(),
        })
    });
    let key = {
        let memo = memo.lock().unwrap_or_else(|p| p.into_inner());
        let key = memo.keys.hash_one((tls, referenced_bundle));
        if let Some(trust) = memo.trusts.get(&key) {
            return Ok(trust.clone());
        }
        key
    };
    let trust = build_trust(tls, referenced_bundle)?;
    let mut memo = memo.lock().unwrap_or_else(|p| p.into_inner());
    if memo.trusts.len() >= MEMO_SIZE {
        // More distinct trusts than providers ever have: start over rather than track age.
        memo.trusts.clear();
    }
    memo.trusts.insert(key, trust.clone());
    Ok(trust)
}

fn build_trust(tls: &TlsSpec, referenced_bundle: Option<&str>) -> Result<Trust> {
    let bundle = match (&tls.ca_bundle, tls.referenced_bundle()) {
        (Some(text), _) => {
            parse_bundle(text).map_err(|e| invalid(format!("spec.tls.caBundle {e}")))?
        }
        (None, Some((object, r))) => {
            let what = match object {
                BundleObject::ConfigMap => "ConfigMap",
                BundleObject::Secret => "Secret",
            };
            let origin = format!(
                "key {:?} of {what} {}/{} (spec.tls.caBundleFrom)",
                r.key, r.namespace, r.name
            );
            let text = referenced_bundle
                .ok_or_else(|| invalid(format!("the {origin} has not been read")))?;
            parse_bundle(text).map_err(|e| invalid(format!("the {origin} {e}")))?
        }
        (None, None) => Vec::new(),
    };
    if bundle.is_empty() && !tls.trust_public_roots {
        return Err(invalid(
            "spec.tls.trustPublicRoots is false and no caBundle or caBundleFrom is given: no certificate could be trusted".into(),
        ));
    }
    let server_name = match &tls.server_name {
        None => None,
        Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
            invalid(format!(
                "spec.tls.serverName {:?} is not a DNS name or an IP address",
                crate::exchange::errors::server_text(name)
            ))
        })?),
    };
    Ok(Trust::new(bundle, tls.trust_public_roots, server_name))
}

/// The certificates of a PEM bundle. Text outside the `BEGIN`/`END` lines is ignored, as
/// OpenSSL and Go do (some distributions' bundles carry comments); any other section than
/// `CERTIFICATE` is refused (a private key has no place in a trust bundle), and so is a
/// bundle without a certificate. Errors complete a sentence ("spec.tls.caBundle ...") and
/// never quote the text.
pub fn parse_bundle(text: &str) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    if text.len() > MAX_BUNDLE_BYTES {
        return Err(format!("is over {MAX_BUNDLE_BYTES} bytes"));
    }
    let mut certificates = Vec::new();
    for (index, section) in <(SectionKind, Vec<u8>)>::pem_slice_iter(text.as_bytes()).enumerate() {
        let n = index + 1;
        let (kind, der) = section.map_err(|_| {
            format!("is not valid PEM: section {n} is not closed or its base64 does not decode")
        })?;
        if kind != SectionKind::Certificate {
            return Err(format!(
                "holds a {} section (section {n}); a CA bundle holds only CERTIFICATE sections",
                section_name(kind)
            ));
        }
        let der = CertificateDer::from(der);
        // The same parse rustls applies to a root: a certificate that fails here could
        // never anchor a chain.
        if RootCertStore::empty().add(der.clone()).is_err() {
            return Err(format!("certificate {n} is not a valid X.509 certificate"));
        }
        certificates.push(der);
        if certificates.len() > MAX_BUNDLE_CERTIFICATES {
            return Err(format!(
                "holds more than {MAX_BUNDLE_CERTIFICATES} certificates"
            ));
        }
    }
    if certificates.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certificates)
}

fn section_name(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::RsaPrivateKey | SectionKind::PrivateKey | SectionKind::EcPrivateKey => {
            "private key"
        }
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        _ => "non-certificate",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BundleKeyRef, CaBundleSource};

    fn ca_pem(name: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    fn inline(text: &str) -> TlsSpec {
        TlsSpec {
            ca_bundle: Some(text.to_string()),
            ..TlsSpec::default()
        }
    }

    fn message(result: Result<Trust>) -> String {
        let error = result.unwrap_err();
        assert_eq!(error.reason(), Some(Reason::InvalidCABundle));
        error.to_string()
    }

    #[test]
    fn bundles_of_certificates_are_read_and_comments_around_them_ignored() {
        let (a, b) = (ca_pem("A"), ca_pem("B"));
        assert_eq!(parse_bundle(&a).unwrap().len(), 1);
        let commented = format!("# Contoso roots\n{a}\nsubject=CN=B\n{b}");
        assert_eq!(parse_bundle(&commented).unwrap().len(), 2);
    }

    #[test]
    fn what_is_not_a_certificate_is_refused_without_being_quoted() {
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let with_key = format!("{}{key}", ca_pem("A"));
        let e = parse_bundle(&with_key).unwrap_err();
        assert!(e.contains("private key section (section 2)"), "{e}");
        assert!(!e.contains("BEGIN"), "{e}");
        let cases = [
            ("hello", "holds no PEM certificate"),
            ("", "holds no PEM certificate"),
            (
                "-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n",
                "is not valid PEM",
            ),
            (
                "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
                "certificate 1 is not a valid X.509 certificate",
            ),
            (
                "-----BEGIN CERTIFICATE-----\naGVsbG8=\n",
                "is not valid PEM",
            ),
        ];
        for (text, expected) in cases {
            let e = parse_bundle(text).unwrap_err();
            assert!(e.contains(expected), "{text:?}: {e}");
        }
    }

    #[test]
    fn errors_name_the_field_or_the_object_read() {
        let m = message(provider_trust(Some(&inline("hello")), None));
        assert!(m.contains(": spec.tls.caBundle holds no PEM"), "{m}");
        let from = TlsSpec {
            ca_bundle_from: Some(CaBundleSource {
                config_map_key_ref: Some(BundleKeyRef {
                    namespace: "cert-manager".into(),
                    name: "contoso".into(),
                    key: "bundle.pem".into(),
                }),
                secret_key_ref: None,
            }),
            ..TlsSpec::default()
        };
        let m = message(provider_trust(Some(&from), Some("junk")));
        assert!(
            m.contains(r#"the key "bundle.pem" of ConfigMap cert-manager/contoso (spec.tls.caBundleFrom) holds no PEM"#),
            "{m}"
        );
        let m = message(provider_trust(Some(&from), None));
        assert!(m.contains("has not been read"), "{m}");
        let nothing = TlsSpec {
            trust_public_roots: false,
            ..TlsSpec::default()
        };
        let m = message(provider_trust(Some(&nothing), None));
        assert!(m.contains("trustPublicRoots is false"), "{m}");
    }

    #[test]
    fn a_change_of_bundle_name_or_roots_changes_the_trust_and_its_digest() {
        let (a, b) = (ca_pem("A"), ca_pem("B"));
        let trust = |spec: TlsSpec| provider_trust(Some(&spec), None).unwrap();
        let base = trust(inline(&a));
        assert_eq!(base, trust(inline(&a)), "same inputs, same trust");
        assert_eq!(base.digest(), trust(inline(&format!("\n{a}\n"))).digest());
        let variants = [
            trust(inline(&b)),
            trust(inline(&format!("{a}{b}"))),
            trust(TlsSpec {
                trust_public_roots: false,
                ..inline(&a)
            }),
            trust(TlsSpec {
                server_name: Some("mail.contoso.com".into()),
                ..inline(&a)
            }),
            Trust::default(),
        ];
        for other in &variants {
            assert_ne!(&base, other);
            assert_ne!(base.digest(), other.digest());
        }
        assert_eq!(provider_trust(None, None).unwrap(), Trust::default());
    }

    #[test]
    fn only_the_public_roots_or_only_the_bundle_are_trusted_as_asked() {
        let a = ca_pem("A");
        let public = Trust::default().roots().len();
        assert!(public > 100, "the Mozilla set: {public}");
        let both = provider_trust(Some(&inline(&a)), None).unwrap();
        assert_eq!(both.roots().len(), public + 1);
        let only = TlsSpec {
            trust_public_roots: false,
            ..inline(&a)
        };
        let only = provider_trust(Some(&only), None).unwrap();
        assert_eq!(only.roots().len(), 1);
        assert_eq!(only.describe(), "only the 1 certificate(s) of spec.tls");
    }
}
