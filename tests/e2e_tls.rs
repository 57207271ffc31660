//! Private CAs on a real cluster: a provider whose CA bundle lives in a ConfigMap (what
//! trust-manager writes) or a Secret (what cert-manager writes as `ca.crt`) is Ready over
//! HTTPS against the fake Entra ID and Graph, and a change of the ConfigMap re-verifies
//! it; a provider whose ConfigMap does not exist yet is `ConfigMapNotFound` until it is
//! created. The operator runs in-process with the real Exchange client.
//!
//! ```sh
//! KUBECONFIG=~/.kube/config cargo test --test e2e_tls -- --ignored --test-threads=1
//! ```
//!
//! No other mailops operator may watch the cluster meanwhile.

mod e2e_support;
mod exchange_fake;

use e2e_support::operator::{Backend, Operator};
use e2e_support::world::{Env, Via, exchange_config};
use e2e_support::*;
use exchange_fake::harness::{APP, SECRET};
use exchange_fake::tls::TestCa;
use exchange_fake::{Behaviour, FakeExchange};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use mailops::api::EmailProvider;
use serde_json::{Value, json};

const KEY: &str = "trust-bundle.pem";

async fn put_bundle(env: &Env, pem: &str) {
    let maps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "bundle"}, "data": {KEY: pem}});
    apply(&maps, "bundle", body).await;
}

fn reachable_message(p: &EmailProvider) -> String {
    let conditions = &p.status.as_ref().expect("a status").conditions;
    let c = mailops::api::conditions::find(conditions, "Reachable").expect("Reachable");
    format!("{} {}: {}", c.status, c.reason, c.message)
}

/// A fake, a provider trusting it through `tls`, an account, a binding; the operator.
async fn provider_through(env: &Env, fake: &FakeExchange, tls: Value) -> Operator {
    let alice = format!("alice@{}", env.domain("p"));
    env.m365_provider_and_account(
        (APP, SECRET),
        &env.domain("p"),
        (&fake.base(), &fake.base()),
        tls,
    )
    .await;
    env.binding("alice", &alice, Via::Account).await;
    let config = exchange_config(&env.name("op"));
    Operator::start(config, env.kube.clone(), Backend::Exchange)
}

fn behaviour(env: &Env) -> Behaviour {
    let alice = format!("alice@{}", env.domain("p"));
    Behaviour::default()
        .app(APP, SECRET, &["Mail.Read", "Mail.Send"])
        .mailboxes(&[&alice])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster"]
async fn a_provider_trusting_a_configmap_bundle_is_ready_over_https_and_follows_it() {
    let (env, _cleanup) = Env::new("tls-cm", &["p"], &["sa"]).await;
    let fake = FakeExchange::start(behaviour(&env)).await;
    put_bundle(&env, fake.ca_pem()).await;
    let from = json!({"caBundleFrom": {"configMapKeyRef":
        {"namespace": env.ns, "name": "bundle", "key": KEY}}});
    let mut op = provider_through(&env, &fake, from).await;
    let provider = env.name("p");
    let ready = wait_for(&env.providers(), &provider, "Ready", ready_provider).await;
    eprintln!("ready: {}", reachable_message(&ready.unwrap()));
    env.wait_ready("alice").await;

    // The bundle loses the fake's CA: the provider is verified again and says why not.
    put_bundle(&env, &TestCa::new("Some Other Root CA").pem).await;
    let untrusted = condition("Reachable", "False", "CertificateUntrusted");
    let refused = wait_for(&env.providers(), &provider, "untrusted", untrusted).await;
    let message = reachable_message(&refused.unwrap());
    assert!(message.contains("Fake Exchange Test Root CA"), "{message}");
    eprintln!("after the change: {message}");

    put_bundle(&env, fake.ca_pem()).await;
    wait_for(&env.providers(), &provider, "Ready again", ready_provider).await;
    op.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster"]
async fn a_provider_trusting_a_secret_ca_crt_is_ready_over_https() {
    let (env, _cleanup) = Env::new("tls-secret", &["p"], &["sa"]).await;
    let fake = FakeExchange::start(behaviour(&env)).await;
    create_secret(&env.client, &env.ns, "ca", json!({"ca.crt": fake.ca_pem()})).await;
    let from = json!({"caBundleFrom": {"secretKeyRef":
        {"namespace": env.ns, "name": "ca", "key": "ca.crt"}}});
    let mut op = provider_through(&env, &fake, from).await;
    let ready = wait_for(&env.providers(), &env.name("p"), "Ready", ready_provider).await;
    eprintln!("ready: {}", reachable_message(&ready.unwrap()));
    env.wait_ready("alice").await;
    op.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster"]
async fn a_provider_whose_bundle_configmap_is_missing_says_so_until_it_appears() {
    let (env, _cleanup) = Env::new("tls-cm-late", &["p"], &["sa"]).await;
    let fake = FakeExchange::start(behaviour(&env)).await;
    let from = json!({"caBundleFrom": {"configMapKeyRef":
        {"namespace": env.ns, "name": "bundle", "key": KEY}}});
    let mut op = provider_through(&env, &fake, from).await;
    let provider = env.name("p");
    let missing = condition("Reachable", "False", "ConfigMapNotFound");
    let waiting = wait_for(&env.providers(), &provider, "ConfigMapNotFound", missing).await;
    eprintln!(
        "before the ConfigMap: {}",
        reachable_message(&waiting.unwrap())
    );

    // Its creation is seen by the metadata watch and the provider is verified with it.
    put_bundle(&env, fake.ca_pem()).await;
    let ready = wait_for(&env.providers(), &provider, "Ready", ready_provider).await;
    eprintln!("after it appeared: {}", reachable_message(&ready.unwrap()));
    env.wait_ready("alice").await;
    op.assert_running();
}
