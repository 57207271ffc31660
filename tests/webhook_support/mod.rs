//! What the webhook tests share: AdmissionReview v1 bodies as the API server sends them,
//! caches seeded through the same watch events the controllers see, and objects; the
//! webhook over HTTPS and its clients in `https`.
#![allow(dead_code)]

pub mod https;

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::PartialObjectMetaExt;
use kube::runtime::watcher::Event;
use mailops::cache::{Guarded, Stores, Writers};
use mailops::controller::fanout;
use mailops::webhook::decision::{Access, Options, Request, UseCheck, parse_review};
use mailops::webhook::sar::AccessReviewer;
use serde_json::{Value, json};

pub const API: &str = "mailops.dev/v1alpha1";

pub const OPTIONS: Options = Options {
    refuse_in_use_deletion: true,
    allow_insecure_endpoints: false,
};

/// An AdmissionReview v1 body: `operation` on `object` (and `old`), by `user`.
pub fn review(operation: &str, object: &Value, old: Option<&Value>, user: &str) -> Value {
    let kind = object["kind"].as_str().unwrap_or_default();
    let plural = match kind {
        "EmailProvider" => "emailproviders",
        "ExchangeServiceAccount" => "exchangeserviceaccounts",
        _ => "mailboxbindings",
    };
    let gvk = json!({"group": "mailops.dev", "version": "v1alpha1", "kind": kind});
    let gvr = json!({"group": "mailops.dev", "version": "v1alpha1", "resource": plural});
    let (obj, old_obj) = match operation {
        "DELETE" => (Value::Null, object.clone()),
        _ => (object.clone(), old.cloned().unwrap_or(Value::Null)),
    };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": object["metadata"]["name"],
            "namespace": object["metadata"].get("namespace").cloned().unwrap_or(Value::Null),
            "operation": operation,
            "userInfo": {"username": user, "uid": format!("uid-{user}"),
                          "groups": ["dev", "system:authenticated"],
                          "extra": {"scopes": ["mail"]}},
            "object": obj,
            "oldObject": old_obj,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// The request in a review body.
pub fn request(body: &Value) -> Request {
    parse_review(&serde_json::to_vec(body).unwrap()).expect("a valid AdmissionReview")
}

pub fn provider(name: &str, domains: &[&str]) -> Value {
    json!({
        "apiVersion": API, "kind": "EmailProvider",
        "metadata": {"name": name, "generation": 1},
        "spec": {"serviceType": "Exchange", "serviceAddress": "mail.contoso.com",
                 "domains": domains, "authentication": {"method": "Basic"}}
    })
}

pub fn manual_provider(name: &str, domains: &[&str]) -> Value {
    let mut p = provider(name, domains);
    p["spec"]["loginFormat"] = json!("Manual");
    p
}

pub fn oauth2_provider(name: &str, domains: &[&str]) -> Value {
    let mut p = provider(name, domains);
    p["spec"]["authentication"] = json!({"method": "OAuth2", "oauth2": {
        "clientId": "app", "tenantId": "tenant",
        "clientSecretRef": {"namespace": "mailops-system", "name": "app", "key": "client-secret"}}});
    p
}

pub fn account(name: &str, provider: &str, namespaces: &[&str]) -> Value {
    json!({
        "apiVersion": API, "kind": "ExchangeServiceAccount",
        "metadata": {"name": name, "generation": 1},
        "spec": {"providerRef": {"name": provider},
                 "credentials": {"basic": {"secretRef": {"namespace": "mailops-system", "name": "imp"}}},
                 "allowedNamespaces": {"names": namespaces}}
    })
}

pub fn account_binding(ns: &str, name: &str, email: &str, account: &str) -> Value {
    json!({
        "apiVersion": API, "kind": "MailboxBinding",
        "metadata": {"name": name, "namespace": ns, "generation": 1},
        "spec": {"emailAddress": email,
                 "authentication": {"serviceAccountRef": {"name": account}}}
    })
}

pub fn own_binding(ns: &str, name: &str, email: &str, secret: &str) -> Value {
    json!({
        "apiVersion": API, "kind": "MailboxBinding",
        "metadata": {"name": name, "namespace": ns, "generation": 1},
        "spec": {"emailAddress": email,
                 "authentication": {"credentialsSecretRef": {"name": secret}}}
    })
}

/// A binding as the controller leaves it once attached to `provider` (through `account`).
pub fn attached(mut binding: Value, provider: &str, account: Option<&str>) -> Value {
    binding["status"] = match account {
        Some(a) => {
            json!({"provider": provider, "authenticatedVia": "ServiceAccount", "serviceAccount": a})
        }
        None => json!({"provider": provider, "authenticatedVia": "Credentials"}),
    };
    binding
}

/// Caches, fed through watch events.
pub struct Caches {
    pub stores: Stores,
    pub writers: Writers,
}

impl Caches {
    pub fn new() -> Self {
        let (stores, writers) = mailops::cache::stores();
        Caches { stores, writers }
    }

    pub fn provider(&mut self, v: Value) -> &mut Self {
        let g: Guarded<_> = serde_json::from_value(v).unwrap();
        fanout::observe(&mut self.writers.providers, &self.stores, &Event::Apply(g));
        self
    }

    pub fn account(&mut self, v: Value) -> &mut Self {
        let g: Guarded<_> = serde_json::from_value(v).unwrap();
        fanout::observe(
            &mut self.writers.service_accounts,
            &self.stores,
            &Event::Apply(g),
        );
        self
    }

    pub fn binding(&mut self, v: Value) -> &mut Self {
        let g: Guarded<_> = serde_json::from_value(v).unwrap();
        fanout::observe(&mut self.writers.bindings, &self.stores, &Event::Apply(g));
        self
    }

    pub fn namespace(&mut self, name: &str) -> &mut Self {
        let mut n = Namespace::default();
        n.metadata.name = Some(name.into());
        fanout::observe(&mut self.writers.namespaces, &self.stores, &Event::Apply(n));
        self
    }

    /// Every cache holds its initial LIST (what the webhook waits for before serving).
    pub fn listed(&mut self) -> &mut Self {
        let stores = &self.stores;
        let w = &mut self.writers;
        fanout::observe(&mut w.providers, stores, &Event::InitDone);
        fanout::observe(&mut w.service_accounts, stores, &Event::InitDone);
        fanout::observe(&mut w.bindings, stores, &Event::InitDone);
        fanout::observe(&mut w.secrets, stores, &Event::InitDone);
        fanout::observe(&mut w.config_maps, stores, &Event::InitDone);
        fanout::observe(&mut w.namespaces, stores, &Event::InitDone);
        self
    }

    /// A Secret, as the metadata watch sees it (the webhook never reads Secrets' data).
    pub fn secret(&mut self, ns: &str, name: &str, _keys: &[&str]) -> &mut Self {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some(ns.into());
        let meta = s.metadata.into_response_partial::<Secret>();
        fanout::observe(&mut self.writers.secrets, &self.stores, &Event::Apply(meta));
        self
    }
}

/// An access reviewer that answers from a list of users who have `use`, and records
/// what it was asked.
#[derive(Default)]
pub struct FakeReviewer {
    pub allowed_users: Vec<String>,
    pub asked: std::sync::Mutex<Vec<UseCheck>>,
}

impl AccessReviewer for FakeReviewer {
    fn review(&self, check: &UseCheck) -> BoxFuture<'static, Access> {
        self.asked.lock().unwrap().push(check.clone());
        let user = check.user.username.clone().unwrap_or_default();
        let access = if self.allowed_users.contains(&user) {
            Access::Allowed
        } else {
            Access::Denied {
                reason: String::new(),
            }
        };
        Box::pin(async move { access })
    }
}

pub fn reviewer(allowed: &[&str]) -> Arc<FakeReviewer> {
    Arc::new(FakeReviewer {
        allowed_users: allowed.iter().map(|s| s.to_string()).collect(),
        ..FakeReviewer::default()
    })
}
