//! End-to-end against a real cluster, with the controllers running in-process on the fake
//! mail backend and leader election off:
//!
//! ```sh
//! KUBECONFIG=~/.kube/config cargo test --test e2e -- --ignored --nocapture
//! ```
//!
//! Everything lives in fresh namespaces and cluster-scoped objects with a random suffix;
//! a guard removes them (finalizers first) even when a step fails, after dumping them.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Api, Client, Resource, ResourceExt};
use mailops::api::conditions::{TERMINATING, find, is_ready};
use mailops::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use mailops::config::OperatorConfig;
use mailops::exchange::MailBackend;
use mailops::exchange::fake::FakeBackend;
use rand::Rng;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const MANAGER: &str = "mailops-e2e";
const WAIT: Duration = Duration::from_secs(90);

async fn apply<K>(api: &Api<K>, name: &str, body: Value)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, cond: impl Condition<K>) -> Option<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {name} to be {what}"))
        .unwrap_or_else(|e| panic!("watching {name}: {e}"))
}

fn ready_provider(p: Option<&EmailProvider>) -> bool {
    p.and_then(|p| p.status.as_ref())
        .is_some_and(|s| is_ready(&s.conditions))
}

fn ready_account(a: Option<&ExchangeServiceAccount>) -> bool {
    a.and_then(|a| a.status.as_ref())
        .is_some_and(|s| is_ready(&s.conditions))
}

fn ready_binding(b: Option<&MailboxBinding>) -> bool {
    b.and_then(|b| b.status.as_ref())
        .is_some_and(|s| is_ready(&s.conditions))
}

fn binding_reason(reason: &'static str) -> impl Fn(Option<&MailboxBinding>) -> bool {
    move |b| {
        b.and_then(|b| b.status.as_ref())
            .and_then(|s| find(&s.conditions, "Authorized"))
            .is_some_and(|c| c.status == "False" && c.reason == reason)
    }
}

fn provider_in_use(p: Option<&EmailProvider>) -> bool {
    p.and_then(|p| p.status.as_ref())
        .and_then(|s| find(&s.conditions, TERMINATING))
        .is_some_and(|c| c.status == "True" && c.reason == "InUse")
}

/// Removes what the test made, on success and on failure (dumping it first then).
struct Cleanup {
    client: Client,
    namespaces: Vec<String>,
    providers: Vec<String>,
    accounts: Vec<String>,
}

impl Cleanup {
    async fn dump(&self) {
        let providers: Api<EmailProvider> = Api::all(self.client.clone());
        let accounts: Api<ExchangeServiceAccount> = Api::all(self.client.clone());
        for name in &self.providers {
            if let Ok(Some(p)) = providers.get_opt(name).await {
                eprintln!("--- EmailProvider {name}\n{}", to_json(&p));
            }
        }
        for name in &self.accounts {
            if let Ok(Some(a)) = accounts.get_opt(name).await {
                eprintln!("--- ExchangeServiceAccount {name}\n{}", to_json(&a));
            }
        }
        for ns in &self.namespaces {
            let bindings: Api<MailboxBinding> = Api::namespaced(self.client.clone(), ns);
            if let Ok(list) = bindings.list(&ListParams::default()).await {
                for b in list {
                    eprintln!("--- MailboxBinding {ns}/{}\n{}", b.name_any(), to_json(&b));
                }
            }
        }
    }

    async fn remove(&self) {
        let unblock = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        let pp = PatchParams::default();
        let providers: Api<EmailProvider> = Api::all(self.client.clone());
        let accounts: Api<ExchangeServiceAccount> = Api::all(self.client.clone());
        for name in &self.accounts {
            let _ = accounts.patch(name, &pp, &unblock).await;
            let _ = accounts.delete(name, &DeleteParams::default()).await;
        }
        for name in &self.providers {
            let _ = providers.patch(name, &pp, &unblock).await;
            let _ = providers.delete(name, &DeleteParams::default()).await;
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        for ns in &self.namespaces {
            let _ = namespaces.delete(ns, &DeleteParams::default()).await;
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                if failed {
                    self.dump().await;
                }
                self.remove().await;
            })
        });
    }
}

async fn install_crds(client: &Client) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/mailops.dev.yaml");
    let text = std::fs::read_to_string(path).expect("crds/mailops.dev.yaml");
    let crds: Vec<CustomResourceDefinition> = serde_saphyr::from_multiple(&text).expect("CRD YAML");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds {
        let name = crd.name_any();
        apply(&api, &name, serde_json::to_value(&crd).unwrap()).await;
        wait_for(&api, &name, "established", conditions::is_crd_established()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster"]
async fn operator_lifecycle_on_a_real_cluster() {
    let client = Client::try_default()
        .await
        .expect("a cluster in KUBECONFIG");
    install_crds(&client).await;

    let suffix: String = format!("{:06x}", rand::rng().random_range(0..0xff_ffff));
    let (ns_a, ns_b) = (
        format!("mailops-e2e-a-{suffix}"),
        format!("mailops-e2e-b-{suffix}"),
    );
    let (provider, account) = (format!("e2e-{suffix}"), format!("e2e-svc-{suffix}"));
    let domain = format!("e2e-{suffix}.example.com");
    let admit_label = format!("mailops-e2e-{suffix}");
    let _cleanup = Cleanup {
        client: client.clone(),
        namespaces: vec![ns_a.clone(), ns_b.clone()],
        providers: vec![provider.clone()],
        accounts: vec![account.clone()],
    };

    let backend = Arc::new(FakeBackend::new());
    let config = OperatorConfig {
        leader_election: false,
        identity: format!("e2e-{suffix}"),
        ..OperatorConfig::default()
    };
    let operator = tokio::spawn(mailops::controller::run_with(
        config,
        client.clone(),
        backend.clone() as Arc<dyn MailBackend>,
    ));

    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [&ns_a, &ns_b] {
        apply(
            &namespaces,
            ns,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await;
    }
    let secrets_a: Api<Secret> = Api::namespaced(client.clone(), &ns_a);
    apply(
        &secrets_a,
        "jane",
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "jane"}, "stringData": {"password": "e2e-password"}}),
    )
    .await;
    apply(&secrets_a, "svc", json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "svc"}, "stringData": {"username": "svc", "password": "e2e-password"}})).await;

    let providers: Api<EmailProvider> = Api::all(client.clone());
    apply(&providers, &provider, json!({
        "apiVersion": "mailops.dev/v1alpha1", "kind": "EmailProvider", "metadata": {"name": provider},
        "spec": {"serviceType": "Exchange", "serviceAddress": "mail.example.com", "domains": [domain],
                 "authentication": {"method": "Basic"}},
    })).await;
    let accounts: Api<ExchangeServiceAccount> = Api::all(client.clone());
    apply(&accounts, &account, json!({
        "apiVersion": "mailops.dev/v1alpha1", "kind": "ExchangeServiceAccount", "metadata": {"name": account},
        "spec": {"providerRef": {"name": provider},
                 "credentials": {"basic": {"secretRef": {"namespace": ns_a, "name": "svc"}}},
                 "allowedNamespaces": {"names": [ns_a], "selector": {"matchLabels": {admit_label.clone(): "yes"}}}},
    })).await;
    let binding = |name: &str, auth: Value| {
        json!({
            "apiVersion": "mailops.dev/v1alpha1", "kind": "MailboxBinding", "metadata": {"name": name},
            "spec": {"emailAddress": format!("{name}@{domain}"), "authentication": auth},
        })
    };
    let bindings_a: Api<MailboxBinding> = Api::namespaced(client.clone(), &ns_a);
    let bindings_b: Api<MailboxBinding> = Api::namespaced(client.clone(), &ns_b);
    apply(
        &bindings_a,
        "jane",
        binding("jane", json!({"credentialsSecretRef": {"name": "jane"}})),
    )
    .await;
    apply(
        &bindings_a,
        "john",
        binding("john", json!({"serviceAccountRef": {"name": account}})),
    )
    .await;

    // Provider, account and bindings become Ready.
    wait_for(&providers, &provider, "Ready", ready_provider).await;
    wait_for(&accounts, &account, "Ready", ready_account).await;
    let jane = wait_for(&bindings_a, "jane", "Ready", ready_binding)
        .await
        .unwrap();
    assert_eq!(
        jane.status.unwrap().provider.as_deref(),
        Some(provider.as_str()),
        "resolved by domain"
    );
    wait_for(&bindings_a, "john", "Ready", ready_binding).await;

    // A namespace the account does not admit: refused, and never sent to Exchange.
    let calls_before = backend.verified_addresses();
    apply(
        &bindings_b,
        "mary",
        binding("mary", json!({"serviceAccountRef": {"name": account}})),
    )
    .await;
    let mary = wait_for(
        &bindings_b,
        "mary",
        "NamespaceNotAllowed",
        binding_reason("NamespaceNotAllowed"),
    )
    .await
    .unwrap();
    assert!(
        !backend.verified_addresses()[calls_before.len()..]
            .iter()
            .any(|a| a.starts_with("mary@"))
    );

    // Labelling the namespace admits it, without touching the binding.
    apply(
        &namespaces,
        &ns_b,
        json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns_b, "labels": {admit_label.clone(): "yes"}}}),
    )
    .await;
    let admitted = wait_for(&bindings_b, "mary", "Ready", ready_binding)
        .await
        .unwrap();
    assert_eq!(
        admitted.metadata.generation, mary.metadata.generation,
        "spec untouched"
    );

    // Deleting the provider waits for its users.
    providers
        .delete(&provider, &DeleteParams::default())
        .await
        .unwrap();
    let blocked = wait_for(&providers, &provider, "blocked (InUse)", provider_in_use)
        .await
        .unwrap();
    let uid = blocked.uid().unwrap();
    let message = find(&blocked.status.unwrap().conditions, TERMINATING)
        .unwrap()
        .message
        .clone();
    assert!(
        message.contains(&format!("MailboxBinding {ns_a}/jane")),
        "{message}"
    );

    // Removing the users releases it.
    for (api, name) in [
        (&bindings_a, "jane"),
        (&bindings_a, "john"),
        (&bindings_b, "mary"),
    ] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    accounts
        .delete(&account, &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        &providers,
        &provider,
        "deleted",
        conditions::is_deleted(&uid),
    )
    .await;

    operator.abort();
}
