//! End-to-end against a real cluster, with the controllers running in-process on the fake
//! mail backend and leader election off:
//!
//! ```sh
//! KUBECONFIG=~/.kube/config cargo test --test e2e -- --ignored --nocapture
//! ```
//!
//! Everything lives in fresh namespaces and cluster-scoped objects with a random suffix;
//! a guard removes them (finalizers first) even when a step fails, after dumping them.

mod e2e_support;

use std::sync::Arc;

use e2e_support::*;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::DeleteParams;
use kube::runtime::wait::conditions;
use kube::{Api, Client, ResourceExt};
use mailops::api::conditions::{TERMINATING, find};
use mailops::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use mailops::config::OperatorConfig;
use mailops::exchange::MailBackend;
use mailops::exchange::fake::FakeBackend;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster"]
async fn operator_lifecycle_on_a_real_cluster() {
    let client = Client::try_default()
        .await
        .expect("a cluster in KUBECONFIG");
    install_crds(&client).await;

    let suffix = random_suffix();
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
    let operator = tokio::spawn(mailops::controller::run_controllers(
        config,
        client.clone(),
        backend.clone() as Arc<dyn MailBackend>,
        Arc::new(mailops::metrics::Metrics::new()),
        Arc::new(mailops::health::HealthState::default()),
        mailops::controller::shutdown_signal(),
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
