//! One fault test's world: a client, a fresh namespace, names and mail domains with a
//! random suffix, and builders of the objects the tests apply.

use std::time::Duration;

use kube::{Api, Client};
use mailops::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use mailops::config::OperatorConfig;
use serde_json::{Value, json};

use super::operator::test_config;
use super::{
    Cleanup, apply, create_namespace, create_secret, install_crds, random_suffix, ready_binding,
    wait_for,
};

/// One test's world: a client, a namespace and names with a random suffix.
pub struct Env {
    /// A client with the kubeconfig's credentials.
    pub client: Client,
    /// The kubeconfig, for operators (which may point it at a proxy).
    pub kube: kube::Config,
    suffix: String,
    /// The test's namespace.
    pub ns: String,
}

impl Env {
    /// CRDs installed, a fresh namespace, and a guard that removes it and the providers
    /// and accounts named by `providers` and `accounts` (see [`Env::name`]).
    pub async fn new(test: &str, providers: &[&str], accounts: &[&str]) -> (Env, Cleanup) {
        let kube = kube::Config::infer()
            .await
            .expect("a cluster in KUBECONFIG");
        let client = Client::try_from(kube.clone()).expect("a client");
        install_crds(&client).await;
        let suffix = random_suffix();
        let env = Env {
            ns: format!("mailops-faults-{test}-{suffix}"),
            client: client.clone(),
            kube,
            suffix,
        };
        let cleanup = Cleanup {
            client,
            namespaces: vec![env.ns.clone()],
            providers: providers.iter().map(|p| env.name(p)).collect(),
            accounts: accounts.iter().map(|a| env.name(a)).collect(),
        };
        create_namespace(&env.client, &env.ns).await;
        (env, cleanup)
    }

    /// `faults-<what>-<suffix>`: the name of a cluster-scoped object.
    pub fn name(&self, what: &str) -> String {
        format!("faults-{what}-{}", self.suffix)
    }

    /// A mail domain of its own for `what`.
    pub fn domain(&self, what: &str) -> String {
        format!("{what}-{}.example.com", self.suffix)
    }

    /// EmailProviders.
    pub fn providers(&self) -> Api<EmailProvider> {
        Api::all(self.client.clone())
    }

    /// ExchangeServiceAccounts.
    pub fn accounts(&self) -> Api<ExchangeServiceAccount> {
        Api::all(self.client.clone())
    }

    /// MailboxBindings of the test's namespace.
    pub fn bindings(&self) -> Api<MailboxBinding> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// An Exchange Server provider with Basic authentication (for the fake backend).
    pub async fn basic_provider(&self, name: &str, domain: &str) {
        let body = json!({
            "apiVersion": "mailops.dev/v1alpha1", "kind": "EmailProvider", "metadata": {"name": name},
            "spec": {"serviceType": "Exchange", "serviceAddress": "mail.example.com",
                     "domains": [domain], "authentication": {"method": "Basic"}},
        });
        apply(&self.providers(), name, body).await;
    }

    /// A Microsoft 365 provider with the app `(client ID, secret)` of tenant `contoso`
    /// (the fake's), its endpoints at `authority` and `graph` verified under `tls` (its
    /// `spec.tls`, e.g. the fake's CA as `caBundle`), and an account using that app for
    /// the bindings of the namespace.
    pub async fn m365_provider_and_account(
        &self,
        (app, secret): (&str, &str),
        domain: &str,
        (authority, graph): (&str, &str),
        tls: Value,
    ) {
        create_secret(
            &self.client,
            &self.ns,
            "app",
            json!({"client-secret": secret}),
        )
        .await;
        let (provider, account) = (self.name("p"), self.name("sa"));
        let body = json!({
            "apiVersion": "mailops.dev/v1alpha1", "kind": "EmailProvider", "metadata": {"name": provider},
            "spec": {"serviceType": "Microsoft365", "domains": [domain],
                     "endpoints": {"authority": authority, "graph": graph}, "tls": tls,
                     "authentication": {"method": "OAuth2", "oauth2": {"clientId": app, "tenantId": "contoso",
                         "clientSecretRef": {"namespace": self.ns, "name": "app"}}}},
        });
        apply(&self.providers(), &provider, body).await;
        let body = json!({
            "apiVersion": "mailops.dev/v1alpha1", "kind": "ExchangeServiceAccount", "metadata": {"name": account},
            "spec": {"providerRef": {"name": provider}, "allowedNamespaces": {"names": [self.ns]}},
        });
        apply(&self.accounts(), &account, body).await;
    }

    /// A binding `name` for `email`, with `extra` merged into its spec.
    pub async fn binding_with(&self, name: &str, email: &str, via: Via, extra: Value) {
        let auth = match via {
            Via::Password => json!({"credentialsSecretRef": {"name": "pw"}}),
            Via::Account => json!({"serviceAccountRef": {"name": self.name("sa")}}),
        };
        let mut spec = json!({"emailAddress": email, "authentication": auth});
        if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
            spec.extend(extra);
        }
        let body = json!({"apiVersion": "mailops.dev/v1alpha1", "kind": "MailboxBinding",
                          "metadata": {"name": name}, "spec": spec});
        apply(&self.bindings(), name, body).await;
    }

    /// A binding `name` for `email`.
    pub async fn binding(&self, name: &str, email: &str, via: Via) {
        self.binding_with(name, email, via, json!({})).await;
    }

    /// Wait until the binding is `Ready`.
    pub async fn wait_ready(&self, binding: &str) -> MailboxBinding {
        wait_for(&self.bindings(), binding, "Ready", ready_binding)
            .await
            .unwrap()
    }
}

/// How a binding authenticates: its own password (Secret `pw`) or the account `sa`.
#[derive(Clone, Copy)]
pub enum Via {
    /// `credentialsSecretRef: pw`.
    Password,
    /// `serviceAccountRef: faults-sa-<suffix>`.
    Account,
}

/// Operator settings for the real Exchange client against the fake, over HTTPS as in
/// production: the providers carry the fake's CA in `spec.tls`.
pub fn exchange_config(identity: &str) -> OperatorConfig {
    OperatorConfig {
        allow_insecure_endpoints: false,
        request_timeout: Duration::from_secs(5),
        ..test_config(identity)
    }
}
