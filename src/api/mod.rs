//! The public API, `mailops.dev/v1alpha1`: one file per kind, shared reference types, and
//! condition types and reasons.

pub mod binding;
pub mod common;
pub mod conditions;
pub mod provider;
pub mod service_account;
pub mod tls;

pub use binding::*;
pub use common::*;
pub use provider::*;
pub use service_account::*;
pub use tls::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

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
