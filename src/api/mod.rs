//! The public API, `mailops.dev/v1alpha1`: one file per kind, shared reference types, and
//! condition types and reasons.

pub mod binding;
pub mod common;
pub mod condition;
pub mod conditions;
pub mod digest;
pub mod provider;
pub mod reasons;
pub mod service_account;
pub mod tls;

pub use binding::*;
pub use common::*;
pub use digest::Digest;
pub use provider::*;
pub use service_account::*;
pub use tls::*;

use std::borrow::Cow;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResourceExt, Resource};

/// The API group of every mailops kind.
pub const GROUP: &str = "mailops.dev";

/// The finalizer that holds providers and service accounts while something uses them.
pub const IN_USE_FINALIZER: &str = "mailops.dev/in-use";

/// All three CRDs, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        EmailProvider::crd(),
        ExchangeServiceAccount::crd(),
        MailboxBinding::crd(),
    ]
}

/// All three CRDs as one multi-document YAML stream: exactly what `mailops crd` prints
/// and what `crds/` holds.
pub fn crds_yaml() -> Result<String, crate::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(
            &serde_saphyr::to_string(&crd).map_err(|e| crate::Error::Serialize(e.to_string()))?,
        );
    }
    Ok(out)
}

/// A kind's name as a metric or log label. Every kind mailops watches names itself with a
/// static string (`kube-derive` and `k8s-openapi` both do); anything else is "other".
pub fn kind_label<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()) {
        Cow::Borrowed(kind) => kind,
        Cow::Owned(_) => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_its_own_label() {
        assert_eq!(kind_label::<EmailProvider>(), "EmailProvider");
        assert_eq!(kind_label::<MailboxBinding>(), "MailboxBinding");
        assert_eq!(kind_label::<k8s_openapi::api::core::v1::Secret>(), "Secret");
    }
}
