//! The `ExchangeServiceAccount` kind: the organisation's service account through which
//! admins authorise individual mailboxes.
// kube's `printcolumn(...)` repeats `type_ = ...` per column, which clippy mistakes for a
// duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use super::condition::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{NameRef, NamespacePolicy, SecretKeyRef, SecretRef};

/// The organisation's Exchange service account: app-only OAuth 2.0 client credentials, or
/// an impersonation account for Basic authentication.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "mailops.dev",
    version = "v1alpha1",
    kind = "ExchangeServiceAccount",
    shortname = "esa",
    category = "mailops",
    status = "ExchangeServiceAccountStatus",
    // `kubectl get esa --field-selector spec.providerRef.name=NAME`.
    selectable = ".spec.providerRef.name",
    doc = "The organisation's Exchange service account, through which admins authorise mailboxes in the namespaces they name.",
    printcolumn(
        name = "Provider",
        type_ = "string",
        json_path = ".spec.providerRef.name",
        description = "The EmailProvider this account belongs to"
    ),
    printcolumn(
        name = "Mailboxes",
        type_ = "integer",
        json_path = ".status.mailboxCount",
        description = "MailboxBindings authenticated through this account"
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
pub struct ExchangeServiceAccountSpec {
    /// The EmailProvider this service account belongs to.
    pub provider_ref: NameRef,

    /// The account's own credentials. Omitted: the provider's app registration is used
    /// with the client-credentials grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<ServiceAccountCredentials>,

    /// Namespaces whose MailboxBindings may authenticate through this account.
    /// Omitted or empty: no namespace may use it (only what an admin names is authorised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_namespaces: Option<NamespacePolicy>,
}

/// Credentials of a service account: at most one of `oauth2` and `basic`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.oauth2) && has(self.basic))").message("spec.credentials must set only one of oauth2 and basic"))]
pub struct ServiceAccountCredentials {
    /// An app registration of its own, used with the client-credentials grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<ServiceAccountOAuth2>,
    /// An impersonation account, for a provider whose method is `Basic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicCredentials>,
}

/// App-only OAuth 2.0 credentials of a service account.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountOAuth2 {
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
}

/// An impersonation account for Basic authentication.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicCredentials {
    /// Secret holding the keys `username` and `password`.
    pub secret_ref: SecretRef,
}

/// Observed state of an ExchangeServiceAccount.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeServiceAccountStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Authenticated` and `Terminating`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // Atomic, not a map keyed by type: only mailops writes conditions, always all of
    // them, and an atomic list is one field in managedFields instead of six per
    // condition, which halves what the API server stores and diffs per status write.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub conditions: Vec<Condition>,
    /// Number of MailboxBindings authenticated through this account.
    #[serde(default)]
    pub mailbox_count: i32,
    /// A digest of what the verdict depends on: the spec, the versions of the Secrets
    /// read (never their values). A restarted operator that finds the same digest takes
    /// the verdict as it stands, and writes and asks nothing for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_inputs: Option<super::Digest>,
}
