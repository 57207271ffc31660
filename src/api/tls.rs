//! `EmailProvider.spec.tls`: which certificate authorities the provider's endpoints (EWS,
//! Graph, the token authority) are verified against, and under which name. There is no
//! field that turns verification off, by design.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The longest inline `caBundle`, in characters: about 40 certificates. It also bounds the
/// cost of the PEM rule that the API server evaluates on every write. Larger bundles (the
/// public roots plus private ones, as trust-manager writes them) belong in a ConfigMap.
pub const MAX_INLINE_BUNDLE: usize = 65_536;

/// One or more PEM `CERTIFICATE` blocks with only whitespace around and between them, as
/// the body of a CEL string literal (backslashes doubled). A private key, a CSR or stray
/// text is refused: a trust bundle holds certificates and nothing else.
pub const PEM_BUNDLE_PATTERN: &str =
    r"^\\s*(-----BEGIN CERTIFICATE-----[\\r\\n]+[A-Za-z0-9+/=\\s]+-----END CERTIFICATE-----\\s*)+$";

/// A host name (any case) or an IPv4 address the server's certificate must be valid for.
pub const SERVER_NAME_PATTERN: &str = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$";

fn default_true() -> bool {
    true
}

/// How the provider's servers are verified over TLS. Applies to every endpoint of the
/// provider: EWS, Microsoft Graph and the token authority (ADFS or Entra ID). Certificates
/// are always verified; this only says against which authorities and which name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.caBundle) && has(self.caBundleFrom))").message("spec.tls.caBundleFrom: give caBundle or caBundleFrom, not both").field_path(".caBundleFrom"))]
#[x_kube(validation = Rule::new("!has(self.trustPublicRoots) || self.trustPublicRoots || has(self.caBundle) || has(self.caBundleFrom)").message("spec.tls.trustPublicRoots: false needs caBundle or caBundleFrom, or no certificate could ever be trusted").field_path(".trustPublicRoots"))]
pub struct TlsSpec {
    /// PEM-encoded CA certificates (one or more `-----BEGIN CERTIFICATE-----` blocks, and
    /// nothing else) to trust for this provider, e.g. the organisation's AD Certificate
    /// Services root, or the CA of a TLS-inspecting proxy. At most 65536 characters; put
    /// larger bundles in a ConfigMap and use `caBundleFrom`. Not with `caBundleFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536))]
    #[x_kube(validation = Rule::new(format!("self.matches('{PEM_BUNDLE_PATTERN}')")).message("spec.tls.caBundle must hold only PEM CERTIFICATE blocks (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)"))]
    pub ca_bundle: Option<String>,

    /// Where to read the PEM CA certificates from: a key of a ConfigMap (what
    /// trust-manager's `Bundle` writes) or of a Secret (what cert-manager writes as
    /// `ca.crt`). A change of that key re-verifies the provider. Not with `caBundle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_from: Option<CaBundleSource>,

    /// Whether the public web PKI roots (the Mozilla set) are trusted as well as the
    /// bundle. Default `true`; set `false` to trust only the bundle, which then must be
    /// given.
    #[serde(default = "default_true")]
    pub trust_public_roots: bool,

    /// The name the servers' certificates must be valid for, instead of the host of each
    /// endpoint URL: for a server reached by IP address or an internal alias while its
    /// certificate names another host. It applies to every endpoint of the provider, the
    /// token authority included. The TLS SNI still carries the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SERVER_NAME_PATTERN))]
    pub server_name: Option<String>,
}

impl Default for TlsSpec {
    fn default() -> Self {
        TlsSpec {
            ca_bundle: None,
            ca_bundle_from: None,
            trust_public_roots: true,
            server_name: None,
        }
    }
}

/// Where a CA bundle is read from: exactly one of a ConfigMap key and a Secret key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.configMapKeyRef) != has(self.secretKeyRef)").message("spec.tls.caBundleFrom needs exactly one of configMapKeyRef and secretKeyRef"))]
pub struct CaBundleSource {
    /// A key of a ConfigMap holding PEM certificates (e.g. written by trust-manager).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<BundleKeyRef>,
    /// A key of a Secret holding PEM certificates (e.g. `ca.crt` written by cert-manager).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<BundleKeyRef>,
}

/// One key of a ConfigMap or Secret in a named namespace (the provider is cluster-scoped,
/// so the namespace is always given).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct BundleKeyRef {
    /// Namespace of the ConfigMap or Secret.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the ConfigMap or Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the PEM certificates, e.g. `ca.crt` or `trust-bundle.pem`.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// Which kind of object a `caBundleFrom` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BundleObject {
    /// A ConfigMap (`configMapKeyRef`).
    ConfigMap,
    /// A Secret (`secretKeyRef`).
    Secret,
}

impl CaBundleSource {
    /// The object and key to read, when exactly one is given (CEL guarantees it on the API
    /// server; offline input may skip CEL).
    pub fn reference(&self) -> Option<(BundleObject, &BundleKeyRef)> {
        match (&self.config_map_key_ref, &self.secret_key_ref) {
            (Some(r), None) => Some((BundleObject::ConfigMap, r)),
            (None, Some(r)) => Some((BundleObject::Secret, r)),
            _ => None,
        }
    }
}

impl TlsSpec {
    /// The ConfigMap or Secret key whose text the caller must read and hand to
    /// [`crate::exchange::trust::provider_trust`]; `None` with an inline bundle or none.
    pub fn referenced_bundle(&self) -> Option<(BundleObject, &BundleKeyRef)> {
        self.ca_bundle_from.as_ref()?.reference()
    }
}
