//! The `MailboxBinding` kind: one mailbox linked to a provider.
// kube's `printcolumn(...)` repeats `type_ = ...` per column, which clippy mistakes for a
// duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use std::sync::Arc;

use super::condition::Condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{LocalSecretRef, NameRef, PASSWORD_KEY, REFRESH_TOKEN_KEY};
use super::provider::AuthMethod;

/// One mailbox linked to an EmailProvider, authenticated through an
/// ExchangeServiceAccount or its own credentials.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mailops.dev",
    version = "v1alpha1",
    kind = "MailboxBinding",
    namespaced,
    shortname = "mbx",
    category = "mailops",
    status = "Box<MailboxBindingStatus>",
    // `kubectl get mbx -A --field-selector status.provider=NAME`, and the quorum LIST that
    // confirms nothing uses a provider or account before it is released.
    selectable = ".spec.providerRef.name",
    selectable = ".spec.authentication.serviceAccountRef.name",
    selectable = ".status.provider",
    selectable = ".status.serviceAccount",
    doc = "One mailbox linked to an EmailProvider, authenticated through an ExchangeServiceAccount or its own credentials.",
    printcolumn(name = "Email", type_ = "string", json_path = ".spec.emailAddress"),
    printcolumn(
        name = "Provider",
        type_ = "string",
        json_path = ".status.provider",
        description = "The EmailProvider in use"
    ),
    printcolumn(
        name = "Via",
        type_ = "string",
        json_path = ".status.authenticatedVia",
        description = "ServiceAccount or Credentials"
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
pub struct MailboxBindingSpec {
    /// The mailbox's address, `local@domain`.
    #[schemars(length(min = 3, max = 320))]
    #[x_kube(validation = Rule::new(format!("self.matches('{EMAIL_PATTERN}')")).message("spec.emailAddress must be local@domain, e.g. jane.doe@contoso.com"))]
    pub email_address: String,

    /// The EmailProvider to use. Omitted: the provider whose `domains` contains the
    /// address's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<NameRef>,

    /// Login for the mailbox. Required when the provider's `loginFormat` is `Manual`;
    /// otherwise derived from the address and ignored if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 320))]
    pub login: Option<String>,

    /// How the mailbox authenticates: exactly one of `serviceAccountRef` and
    /// `credentialsSecretRef`.
    pub authentication: BindingAuthentication,

    /// Allow sending email from this mailbox.
    #[serde(default)]
    pub enable_sending: bool,

    /// Sync messages (such as replies) from this mailbox.
    #[serde(default)]
    pub enable_syncing: bool,

    /// Connect the mailbox's calendar. Unset: connected automatically when authenticated
    /// through the service account, otherwise not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_calendar: Option<bool>,
}

/// `local@domain`: a dot-atom local part (RFC 5322 atext) and a DNS domain of at least two
/// labels, as the body of a CEL string literal.
pub const EMAIL_PATTERN: &str = r"^[A-Za-z0-9!#$%&*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$";

/// How a binding authenticates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.serviceAccountRef) != has(self.credentialsSecretRef)").message("spec.authentication must set exactly one of serviceAccountRef and credentialsSecretRef"))]
pub struct BindingAuthentication {
    /// Authenticate through this ExchangeServiceAccount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<NameRef>,
    /// Authenticate with a Secret in the binding's namespace: key `password` for a Basic
    /// provider, `refreshToken` for an OAuth2 provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<LocalSecretRef>,
}

/// Through what a binding authenticated.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AuthenticatedVia {
    /// Through an ExchangeServiceAccount.
    ServiceAccount,
    /// With the binding's own credentials Secret.
    Credentials,
}

/// Observed state of a MailboxBinding.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailboxBindingStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Authorized`, `Verified` and `CalendarConnected`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // Atomic, not a map keyed by type: only mailops writes conditions, always all of
    // them, and an atomic list is one field in managedFields instead of six per
    // condition, which halves what the API server stores and diffs per status write.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub conditions: Vec<Condition>,
    /// Name of the EmailProvider in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Arc<str>>,
    /// Effective login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// `ServiceAccount` or `Credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated_via: Option<AuthenticatedVia>,
    /// Name of the ExchangeServiceAccount the mailbox is attached through (counted by, and
    /// holding the deletion of); only that account may be used while it is being deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<Arc<str>>,
    /// The EWS URL or Graph base URL in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Arc<str>>,
    /// When Exchange last confirmed the mailbox, to within a day: while the mailbox stays
    /// verified, it moves forward at most once every 24 hours, so that a re-verification
    /// that changes nothing writes nothing (`mailops_last_verification_timestamp_seconds`
    /// has the time of the latest verification of each kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_time: Option<Time>,
    /// A digest of what the verdict depends on: the specs, the resolution, the versions
    /// of the Secrets read (never their values). A restarted operator that finds the
    /// same digest takes the verdict as it stands, and writes and asks nothing for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_inputs: Option<super::Digest>,
}

impl MailboxBinding {
    /// The ExchangeServiceAccount this binding is attached through, as its status records
    /// it. A status written before `serviceAccount` existed falls back to the account the
    /// spec names, so an upgrade does not release accounts that bindings still use.
    pub fn attached_service_account(&self) -> Option<&str> {
        let status = self.status.as_ref()?;
        if status.authenticated_via != Some(AuthenticatedVia::ServiceAccount) {
            return None;
        }
        match &status.service_account {
            Some(name) => Some(name),
            None => self
                .spec
                .authentication
                .service_account_ref
                .as_ref()
                .map(|r| &*r.name),
        }
    }
}

/// The key a binding's own credentials Secret must hold for a provider authenticating
/// with `method`: `password` for Basic, `refreshToken` for OAuth2.
pub fn binding_secret_key(method: AuthMethod) -> &'static str {
    match method {
        AuthMethod::Basic => PASSWORD_KEY,
        AuthMethod::OAuth2 => REFRESH_TOKEN_KEY,
    }
}
