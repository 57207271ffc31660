//! The `EmailProvider` kind: one Exchange Server or Microsoft 365 endpoint that
//! mailboxes connect to.
// kube's `printcolumn(...)` repeats `type_ = ...` per column, which clippy mistakes for a
// duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use super::condition::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{NamespacePolicy, SecretKeyRef};
use super::tls::TlsSpec;

/// An email server that mailboxes connect to: an on-premises Exchange Server reached over
/// EWS, or Exchange Online reached through Microsoft Graph.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mailops.dev",
    version = "v1alpha1",
    kind = "EmailProvider",
    shortname = "eprov",
    category = "mailops",
    status = "EmailProviderStatus",
    doc = "An email server (Exchange Server over EWS, or Microsoft 365 over Microsoft Graph) that MailboxBindings connect to.",
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".spec.serviceType",
        description = "Exchange or Microsoft365"
    ),
    printcolumn(
        name = "Address",
        type_ = "string",
        json_path = ".status.serviceAddress",
        description = "Effective service address"
    ),
    printcolumn(
        name = "Mailboxes",
        type_ = "integer",
        json_path = ".status.mailboxCount",
        description = "MailboxBindings using this provider"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        priority = 1,
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.serviceType != 'Exchange' || has(self.serviceAddress)").message("spec.serviceAddress is required when serviceType is Exchange").field_path(".serviceAddress").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.serviceType != 'Microsoft365' || self.authentication.method == 'OAuth2'").message("spec.authentication.method must be OAuth2 when serviceType is Microsoft365 (Exchange Online does not accept Basic authentication)").field_path(".authentication.method").reason(Reason::FieldValueForbidden))]
pub struct EmailProviderSpec {
    /// Kind of server: `Exchange` (Exchange Server, EWS at
    /// `https://<serviceAddress>/EWS/Exchange.asmx`) or `Microsoft365` (Exchange Online
    /// through Microsoft Graph).
    pub service_type: ServiceType,

    /// `host` or `host:port` of the server, without scheme or path, e.g.
    /// `mail.contoso.com`. Required for `Exchange`; for `Microsoft365` it defaults from
    /// `cloud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 259))]
    #[x_kube(validation = Rule::new(format!("self.matches('{SERVICE_ADDRESS_PATTERN}')")).message("spec.serviceAddress must be host or host:port (port 1-65535), without scheme or path, e.g. mail.contoso.com"))]
    pub service_address: Option<String>,

    /// Microsoft cloud: `Global` (default), `USGovGCCHigh`, `USGovDoD` or `China`. Picks
    /// the login, Graph and EWS hosts together.
    #[serde(default)]
    pub cloud: Cloud,

    /// Overrides of the cloud's endpoints, for sovereign or private deployments. Plain
    /// `http://` is refused unless the operator runs with `--allow-insecure-endpoints`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<EndpointOverrides>,

    /// Whether mailboxes on this server may receive (sync) email.
    #[serde(default = "default_true")]
    pub receive_emails: bool,

    /// Whether mailboxes on this server may send email.
    #[serde(default = "default_true")]
    pub send_emails: bool,

    /// How a mailbox's login is formed: `EmailAddress` (default: the full address),
    /// `MailboxName` (the part before `@`) or `Manual` (each binding gives `spec.login`).
    #[serde(default)]
    pub login_format: LoginFormat,

    /// Lowercase DNS names whose mailboxes this provider serves. A MailboxBinding that
    /// names no provider uses the one whose domains contain its address's domain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub domains: Vec<DomainName>,

    /// How mailops authenticates to the server.
    pub authentication: ProviderAuthentication,

    /// Namespaces whose MailboxBindings may use this provider. Omitted: all namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_namespaces: Option<NamespacePolicy>,

    /// Which certificate authorities this provider's servers (EWS, Graph and the token
    /// authority) are verified against, e.g. the organisation's own CA. Omitted: the
    /// public web PKI roots. Certificates are always verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// `host` or `host:port` with a port of 1-65535; hostnames are DNS labels (any case), so
/// IPv4 addresses also match. Written as the body of a CEL string literal (backslashes
/// doubled), since it is only ever evaluated by CEL.
pub const SERVICE_ADDRESS_PATTERN: &str = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?$";

/// A lowercase DNS name with at least two labels, as the body of a CEL string literal.
pub const DOMAIN_PATTERN: &str =
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$";

/// A lowercase DNS name served by a provider. Its own schema carries the CEL rule, so the
/// API server names the offending entry (`spec.domains[2]`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(transparent)]
pub struct DomainName(pub String);

impl std::ops::Deref for DomainName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for DomainName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for DomainName {
    fn from(s: &str) -> Self {
        DomainName(s.to_string())
    }
}

impl JsonSchema for DomainName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DomainName".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": 253,
            "x-kubernetes-validations": [{
                "rule": format!("self.matches('{DOMAIN_PATTERN}')"),
                "message": "spec.domains entries must be lowercase DNS names such as contoso.com"
            }]
        })
    }
}

fn default_true() -> bool {
    true
}

/// Kind of email server.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    /// On-premises Exchange Server, reached over EWS.
    Exchange,
    /// Exchange Online, reached through Microsoft Graph.
    Microsoft365,
}

/// Microsoft cloud instance.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Cloud {
    /// The worldwide cloud (login.microsoftonline.com, graph.microsoft.com).
    #[default]
    Global,
    /// Microsoft 365 GCC High (login.microsoftonline.us, graph.microsoft.us).
    #[serde(rename = "USGovGCCHigh")]
    UsGovGccHigh,
    /// Microsoft 365 DoD (login.microsoftonline.us, dod-graph.microsoft.us).
    #[serde(rename = "USGovDoD")]
    UsGovDod,
    /// Microsoft 365 operated by 21Vianet (login.chinacloudapi.cn, microsoftgraph.chinacloudapi.cn).
    China,
}

/// How a mailbox's login is derived from its address.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum LoginFormat {
    /// The login is the full email address.
    #[default]
    EmailAddress,
    /// The login is the part of the address before `@`.
    MailboxName,
    /// Each MailboxBinding gives its login in `spec.login`.
    Manual,
}

/// Absolute URLs that replace the cloud's defaults.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EndpointOverrides {
    /// Base URL of the OAuth 2.0 authority, e.g. `https://login.microsoftonline.us`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() in ['https', 'http'] && url(self).getHostname() != ''").message("spec.endpoints.authority must be an absolute http(s) URL"))]
    #[x_kube(validation = Rule::new("!self.matches('^[^:/?#]+://[^/?#]*@') && !self.contains('?') && !self.contains('#')").message("spec.endpoints.authority must not carry credentials (user@), a query or a fragment: they would show in statuses and Events"))]
    pub authority: Option<String>,
    /// Base URL of Microsoft Graph, e.g. `https://graph.microsoft.us`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() in ['https', 'http'] && url(self).getHostname() != ''").message("spec.endpoints.graph must be an absolute http(s) URL"))]
    #[x_kube(validation = Rule::new("!self.matches('^[^:/?#]+://[^/?#]*@') && !self.contains('?') && !self.contains('#')").message("spec.endpoints.graph must not carry credentials (user@), a query or a fragment: they would show in statuses and Events"))]
    pub graph: Option<String>,
    /// Full URL of the EWS endpoint, e.g. `https://mail.contoso.com/EWS/Exchange.asmx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() in ['https', 'http'] && url(self).getHostname() != ''").message("spec.endpoints.ews must be an absolute http(s) URL"))]
    #[x_kube(validation = Rule::new("!self.matches('^[^:/?#]+://[^/?#]*@') && !self.contains('?') && !self.contains('#')").message("spec.endpoints.ews must not carry credentials (user@), a query or a fragment: they would show in statuses and Events"))]
    pub ews: Option<String>,
}

/// How mailops authenticates to a provider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(self.method == 'OAuth2') == has(self.oauth2)").message("spec.authentication.oauth2 is required when method is OAuth2 and must be omitted otherwise").field_path(".oauth2"))]
pub struct ProviderAuthentication {
    /// `Basic` (user name and password) or `OAuth2` (an Entra ID app registration).
    pub method: AuthMethod,
    /// The app registration used with `OAuth2`. Required exactly when method is `OAuth2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2Settings>,
}

/// Authentication method.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AuthMethod {
    /// User name and password (Exchange Server only).
    Basic,
    /// OAuth 2.0 through an Entra ID (Azure AD) app registration.
    OAuth2,
}

/// An OAuth 2.0 app registration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2Settings {
    /// Application (client) ID of the app registration.
    #[schemars(length(min = 1, max = 128))]
    pub client_id: String,
    /// Directory (tenant) ID or verified domain of the tenant.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
    )]
    pub tenant_id: String,
    /// Secret key holding the client secret (key defaults to `client-secret`).
    pub client_secret_ref: SecretKeyRef,
    /// Scopes to request. Omitted: `https://<graph-or-exchange-host>/.default`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 512)))]
    pub scopes: Vec<String>,
}

/// Observed state of an EmailProvider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailProviderStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Authenticated`, `Reachable` and `Terminating`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // Atomic, not a map keyed by type: only mailops writes conditions, always all of
    // them, and an atomic list is one field in managedFields instead of six per
    // condition, which halves what the API server stores and diffs per status write.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub conditions: Vec<Condition>,
    /// Effective service address (from `spec.serviceAddress` or the cloud's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_address: Option<String>,
    /// Number of MailboxBindings that use this provider.
    #[serde(default)]
    pub mailbox_count: i32,
    /// Number of ExchangeServiceAccounts that belong to this provider.
    #[serde(default)]
    pub service_account_count: i32,
    /// A digest of what the verdict depends on: the spec, the versions of the Secrets
    /// read (never their values). A restarted operator that finds the same digest takes
    /// the verdict as it stands, and writes and asks nothing for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_inputs: Option<super::Digest>,
}
