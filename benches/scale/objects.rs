//! The benchmark's objects: namespaces, providers and accounts pointing at the fake,
//! N bindings, the floor's own writes, and the clean-up of everything with the run's name.

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use mailops::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use serde_json::{Value, json};

/// The field manager of everything the benchmark creates.
pub const MANAGER: &str = "mailops-bench";
/// The label that marks the run's objects (and admits namespaces to its accounts).
pub const LABEL: &str = "mailops-bench";
const API: &str = "mailops.dev/v1alpha1";

/// What one run creates.
pub struct Plan {
    /// Bindings.
    pub n: usize,
    /// Providers (one account each).
    pub providers: usize,
    /// Namespaces the bindings spread over.
    pub namespaces: usize,
    /// The run's name, in every object's name and label.
    pub run: String,
    fake: String,
    /// The PEM of the fake's CA, the providers' `spec.tls.caBundle`.
    fake_ca: String,
}

fn err(what: &str) -> impl Fn(kube::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Server-side apply `body` as the benchmark, taking every field it names.
pub async fn apply<K>(api: &Api<K>, name: &str, body: Value) -> Result<(), String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(|_| ())
    .map_err(err(name))
}

async fn api_status(
    client: &Client,
    kind: &ApiResource,
    (ns, name): (&str, &str),
    body: &Value,
) -> Result<(), String> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, kind);
    let pp = PatchParams::apply("mailops-bench-floor").force();
    api.patch_status(name, &pp, &Patch::Apply(body))
        .await
        .map(|_| ())
        .map_err(err(name))
}

/// MailboxBinding, as the floor writes it (an untyped object, like the schema-less kind).
pub fn binding_kind() -> ApiResource {
    ApiResource::erase::<MailboxBinding>(&())
}

impl Plan {
    /// A plan with a fresh run name.
    pub fn new(
        n: usize,
        providers: usize,
        namespaces: usize,
        (fake, fake_ca): (String, String),
    ) -> Plan {
        let run = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        Plan {
            n,
            providers: providers.max(1),
            namespaces: namespaces.max(1),
            run,
            fake,
            fake_ca,
        }
    }

    /// Namespace `i` of the run.
    pub fn namespace(&self, i: usize) -> String {
        format!("bench-{}-{i}", self.run)
    }

    /// A namespace the accounts do not admit until it is labelled.
    pub fn late_namespace(&self) -> String {
        format!("bench-{}-late", self.run)
    }

    /// Provider `k` of the run, and its domain.
    pub fn provider(&self, k: usize) -> (String, String) {
        (
            format!("bench-{}-p{k}", self.run),
            format!("p{k}.{}.bench.example", self.run),
        )
    }

    /// Binding `i`: its namespace and name.
    pub fn binding(&self, i: usize) -> (String, String) {
        (self.namespace(i % self.namespaces), format!("b{i}"))
    }

    /// Apply the CRDs as `crds/` holds them.
    pub async fn install_crds(&self, client: &Client) -> Result<(), String> {
        let text = mailops::api::crds_yaml().map_err(|e| e.to_string())?;
        let crds: Vec<CustomResourceDefinition> =
            serde_saphyr::from_multiple(&text).map_err(|e| e.to_string())?;
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in crds {
            let name = crd.name_any();
            apply(
                &api,
                &name,
                serde_json::to_value(&crd).map_err(|e| e.to_string())?,
            )
            .await?;
            await_condition(api.clone(), &name, conditions::is_crd_established())
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Namespaces (labelled, so the accounts admit them), the app secret, providers with
    /// the fake as authority and Graph, and one account per provider.
    pub async fn create_fixtures(&self, client: &Client) -> Result<(), String> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        for i in 0..self.namespaces {
            let ns = self.namespace(i);
            let body = json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {LABEL: self.run}}});
            apply(&namespaces, &ns, body).await?;
        }
        let ns0 = self.namespace(0);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns0);
        let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app"},
            "stringData": {"client-secret": "bench-secret", "refreshToken": "bench-refresh"}});
        apply(&secrets, "app", body).await?;
        for k in 0..self.providers {
            self.create_provider(client, k).await?;
        }
        Ok(())
    }

    fn provider_body(&self, name: &str, domain: &str) -> Value {
        json!({
            "apiVersion": API, "kind": "EmailProvider",
            "metadata": {"name": name, "labels": {LABEL: self.run}},
            "spec": {"serviceType": "Microsoft365", "domains": [domain],
                "endpoints": {"authority": self.fake, "graph": format!("{}/v1.0", self.fake)},
                "tls": {"caBundle": self.fake_ca},
                "authentication": {"method": "OAuth2", "oauth2": {"clientId": name, "tenantId": "bench",
                    "clientSecretRef": {"namespace": self.namespace(0), "name": "app"}}}},
        })
    }

    async fn create_provider(&self, client: &Client, k: usize) -> Result<(), String> {
        let (name, domain) = self.provider(k);
        let providers: Api<EmailProvider> = Api::all(client.clone());
        apply(&providers, &name, self.provider_body(&name, &domain)).await?;
        let accounts: Api<ExchangeServiceAccount> = Api::all(client.clone());
        let body = json!({
            "apiVersion": API, "kind": "ExchangeServiceAccount",
            "metadata": {"name": name, "labels": {LABEL: self.run}},
            "spec": {"providerRef": {"name": name},
                     "allowedNamespaces": {"selector": {"matchLabels": {LABEL: self.run}}}},
        });
        apply(&accounts, &name, body).await
    }

    /// A provider of its own (for the release measurement), and its name.
    pub async fn create_lone_provider(&self, client: &Client) -> Result<(String, String), String> {
        let name = format!("bench-{}-lone", self.run);
        let domain = format!("lone.{}.bench.example", self.run);
        let providers: Api<EmailProvider> = Api::all(client.clone());
        apply(&providers, &name, self.provider_body(&name, &domain)).await?;
        Ok((name, domain))
    }

    /// A binding body: through account `account`, or with its own refresh token.
    pub fn binding_body(&self, name: &str, email: &str, account: Option<&str>) -> Value {
        let auth = match account {
            Some(a) => json!({"serviceAccountRef": {"name": a}}),
            None => json!({"credentialsSecretRef": {"name": "app"}}),
        };
        json!({
            "apiVersion": API, "kind": "MailboxBinding",
            "metadata": {"name": name, "labels": {LABEL: self.run}},
            "spec": {"emailAddress": email, "authentication": auth},
        })
    }

    /// Binding `i`, through the account of provider `i % P`.
    pub async fn create_binding(&self, client: &Client, i: usize) -> Result<(), String> {
        let (ns, name) = self.binding(i);
        let (account, domain) = self.provider(i % self.providers);
        let api: Api<MailboxBinding> = Api::namespaced(client.clone(), &ns);
        let body = self.binding_body(&name, &format!("u{i}@{domain}"), Some(&account));
        apply(&api, &name, body).await
    }

    /// The floor: one server-side-apply status write to binding `i` (or the schema-less
    /// object of the same name) of the shape mailops writes (its four conditions and
    /// attachment fields, so the API server merges as much), under a field manager of the
    /// benchmark's.
    pub async fn floor_status(
        &self,
        client: &Client,
        kind: &ApiResource,
        i: usize,
        message: &str,
    ) -> Result<(), String> {
        let (ns, name) = self.binding(i);
        let (provider, domain) = self.provider(i % self.providers);
        let condition = |type_: &str| {
            json!({"type": type_, "status": "True", "reason": "Verified", "message": message,
                   "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"})
        };
        let conditions: Vec<Value> = [
            "BenchReady",
            "BenchAuthorized",
            "BenchVerified",
            "BenchCalendar",
        ]
        .map(condition)
        .into();
        let body = json!({"apiVersion": kind.api_version, "kind": kind.kind, "status": {
            "observedGeneration": 1,
            "conditions": conditions,
            "provider": provider, "login": format!("u{i}@{domain}"),
            "authenticatedVia": "ServiceAccount", "serviceAccount": provider,
            "endpoint": format!("{}/v1.0", self.fake),
            "lastVerifiedTime": "2026-01-01T00:00:00Z"}});
        api_status(client, kind, (&ns, &name), &body).await
    }

    /// Take the floor's status back (an apply of nothing under its manager drops every
    /// field it owned), so the operator starts from bindings as users would create them.
    pub async fn floor_clear(&self, client: &Client, i: usize) -> Result<(), String> {
        let (ns, name) = self.binding(i);
        let body = json!({"apiVersion": API, "kind": "MailboxBinding", "status": {}});
        api_status(client, &binding_kind(), (&ns, &name), &body).await
    }

    /// The floor with Events: a status write and one Event, as a Ready transition costs.
    pub async fn floor_status_and_event(
        &self,
        client: &Client,
        kind: &ApiResource,
        i: usize,
    ) -> Result<(), String> {
        self.floor_status(client, kind, i, "status and event")
            .await?;
        let (ns, name) = self.binding(i);
        let event: Event = serde_json::from_value(json!({
            "metadata": {"generateName": "bench-", "namespace": ns},
            "eventTime": MicroTime(k8s_openapi::jiff::Timestamp::now()),
            "reportingController": "mailops-bench", "reportingInstance": "bench",
            "action": "Reconcile", "reason": "BenchFloor", "type": "Normal", "note": "floor",
            "regarding": {"apiVersion": kind.api_version, "kind": kind.kind, "namespace": ns, "name": name},
        }))
        .map_err(|e| e.to_string())?;
        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
        api.create(&PostParams::default(), &event)
            .await
            .map(|_| ())
            .map_err(err("event"))
    }

    /// Remove everything labelled with the run: namespaces (their bindings with them),
    /// accounts and providers, finalizers last if the operator has not released them.
    pub async fn clean_up(&self, client: &Client) -> Result<(), String> {
        let lp = ListParams::default().labels(&format!("{LABEL}={}", self.run));
        let dp = DeleteParams::default();
        let namespaces: Api<Namespace> = Api::all(client.clone());
        for ns in namespaces.list(&lp).await.map_err(err("namespaces"))? {
            let _ = namespaces.delete(&ns.name_any(), &dp).await;
        }
        let _ = namespaces.delete(&self.late_namespace(), &dp).await;
        // Wait for the namespaces (and the bindings in them) to be gone, so the next run
        // starts on a cluster that holds nothing of this one.
        for ns in namespaces.list(&lp).await.map_err(err("namespaces"))? {
            let (name, uid) = (ns.name_any(), ns.uid().unwrap_or_default());
            let gone = await_condition(namespaces.clone(), &name, conditions::is_deleted(&uid));
            let _ = tokio::time::timeout(std::time::Duration::from_secs(900), gone).await;
        }
        let unblock = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        let accounts: Api<ExchangeServiceAccount> = Api::all(client.clone());
        for a in accounts.list(&lp).await.map_err(err("accounts"))? {
            let _ = accounts
                .patch(&a.name_any(), &PatchParams::default(), &unblock)
                .await;
            let _ = accounts.delete(&a.name_any(), &dp).await;
        }
        let providers: Api<EmailProvider> = Api::all(client.clone());
        for p in providers.list(&lp).await.map_err(err("providers"))? {
            let _ = providers
                .patch(&p.name_any(), &PatchParams::default(), &unblock)
                .await;
            let _ = providers.delete(&p.name_any(), &dp).await;
        }
        Ok(())
    }
}
