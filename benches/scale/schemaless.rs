//! The floor on a schema-less CRD: a kind with the same body as a MailboxBinding but no
//! schema (`x-kubernetes-preserve-unknown-fields` at the root), a status subresource and
//! no validation rules, so that the API server's cost per status write on mailops' CRD
//! can be set beside its cost on the cheapest custom resource there is.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DeleteParams, DynamicObject};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};
use serde_json::json;

use crate::objects::{Plan, apply};

/// The kind's group (not mailops', so no mailops operator ever watches it).
pub const GROUP: &str = "floor.bench.mailops.dev";
const VERSION: &str = "v1alpha1";
const KIND: &str = "FloorBinding";
const PLURAL: &str = "floorbindings";

/// The schema-less kind.
pub fn kind() -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: VERSION.into(),
        api_version: format!("{GROUP}/{VERSION}"),
        kind: KIND.into(),
        plural: PLURAL.into(),
    }
}

fn crd_name() -> String {
    format!("{PLURAL}.{GROUP}")
}

/// Install the CRD and wait until it is served.
pub async fn install(client: &Client) -> Result<(), String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd_name();
    let body = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {"group": GROUP, "scope": "Namespaced",
            "names": {"kind": KIND, "plural": PLURAL, "singular": "floorbinding"},
            "versions": [{"name": VERSION, "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]},
    });
    apply(&api, &name, body).await?;
    let established = await_condition(api, &name, conditions::is_crd_established());
    tokio::time::timeout(std::time::Duration::from_secs(60), established)
        .await
        .map_err(|_| format!("{name} was not established in time"))?
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The schema-less twin of binding `i`: same namespace, name, labels and spec.
pub async fn create_object(plan: &Plan, client: &Client, i: usize) -> Result<(), String> {
    let (ns, name) = plan.binding(i);
    let (account, domain) = plan.provider(i % plan.providers);
    let mut body = plan.binding_body(&name, &format!("u{i}@{domain}"), Some(&account));
    body["apiVersion"] = json!(kind().api_version);
    body["kind"] = json!(KIND);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &kind());
    apply(&api, &name, body).await
}

/// Delete the CRD (and with it every object of the kind). Idempotent.
pub async fn remove(client: &Client) -> Result<(), String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    match api.delete(&crd_name(), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(format!("deleting {}: {e}", crd_name())),
    }
}
