//! What the end-to-end suites share: server-side apply, waiting on watches, readiness
//! predicates, the CRDs, and a guard that removes what a test made (finalizers first)
//! even when it fails, after dumping it. `operator`, `proxy`, `throttle` and `world`
//! serve the fault tests: an operator that can be killed like a crashed process, a TCP
//! proxy that can cut a connection off, a Graph front that throttles chosen mailboxes,
//! and one test's namespace, names and objects; `process` runs `mailops run` as a
//! process of its own, for what only a process shows (its resident memory); `lag` makes
//! an in-process operator's watch of one kind lag behind the API server.
#![allow(dead_code)]

pub mod lag;
pub mod operator;
pub mod process;
pub mod proxy;
pub mod throttle;
pub mod world;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::wait::{Condition as WaitCondition, await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use mailops::api::condition::Condition;
use mailops::api::conditions::{TERMINATING, find, is_ready};
use mailops::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use rand::Rng;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Field manager of everything the tests apply.
pub const MANAGER: &str = "mailops-e2e";
/// How long any one wait on the cluster may take.
pub const WAIT: Duration = Duration::from_secs(90);

/// Six random hex digits, so names do not collide across runs.
pub fn random_suffix() -> String {
    format!("{:06x}", rand::rng().random_range(0..0xff_ffff))
}

/// Server-side apply `body` as [`MANAGER`], forcing ownership.
pub async fn apply<K>(api: &Api<K>, name: &str, body: Value)
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

/// Watch `name` until `cond` holds, for at most [`WAIT`].
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    cond: impl WaitCondition<K>,
) -> Option<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    wait_for_within(api, name, what, WAIT, cond).await
}

/// Watch `name` until `cond` holds, for at most `limit`.
pub async fn wait_for_within<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    limit: Duration,
    cond: impl WaitCondition<K>,
) -> Option<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tokio::time::timeout(limit, await_condition(api.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {name} to be {what}"))
        .unwrap_or_else(|e| panic!("watching {name}: {e}"))
}

/// Watch every object of `api` into a cache until `cond` holds for the whole set, for at
/// most [`WAIT`]; returns the set.
pub async fn wait_for_all<K>(
    api: &Api<K>,
    what: &str,
    cond: impl Fn(&[Arc<K>]) -> bool,
) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
    K: 'static,
{
    wait_for_all_selected(api, watcher::Config::default(), what, WAIT, cond).await
}

/// Watch the objects of `api` that `selected` selects (by label or field) into a cache
/// until `cond` holds for the whole set, for at most `limit`; returns the set.
pub async fn wait_for_all_selected<K>(
    api: &Api<K>,
    selected: watcher::Config,
    what: &str,
    limit: Duration,
    cond: impl Fn(&[Arc<K>]) -> bool,
) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
    K: 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let events = reflector::reflector(writer, watcher(api.clone(), selected));
    let settled = async {
        let mut events = std::pin::pin!(events.default_backoff());
        while events.next().await.is_some() {
            let state = reader.state();
            if reader_ready(&reader) && cond(&state) {
                return state;
            }
        }
        panic!("the watch for {what} ended");
    };
    tokio::time::timeout(limit, settled)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
}

/// Look at `cond` every 50 ms until it holds, for at most `limit`: for what only a count
/// outside the cluster shows (the fake Exchange's).
pub async fn eventually(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn reader_ready<K: Resource<DynamicType = ()> + Clone>(reader: &Store<K>) -> bool {
    futures::FutureExt::now_or_never(reader.wait_until_ready()).is_some_and(|r| r.is_ok())
}

/// The conditions of any mailops object.
pub trait HasConditions {
    /// Its `status.conditions`, empty without a status.
    fn conditions(&self) -> &[Condition];
}

impl HasConditions for EmailProvider {
    fn conditions(&self) -> &[Condition] {
        self.status
            .as_ref()
            .map_or(&[], |s| s.conditions.as_slice())
    }
}

impl HasConditions for ExchangeServiceAccount {
    fn conditions(&self) -> &[Condition] {
        self.status
            .as_ref()
            .map_or(&[], |s| s.conditions.as_slice())
    }
}

impl HasConditions for MailboxBinding {
    fn conditions(&self) -> &[Condition] {
        self.status
            .as_ref()
            .map_or(&[], |s| s.conditions.as_slice())
    }
}

/// `Ready=True`.
pub fn ready<K: HasConditions>(k: Option<&K>) -> bool {
    k.is_some_and(|k| is_ready(k.conditions()))
}

/// Condition `type_` has `status` and `reason`.
pub fn condition<K: HasConditions>(
    type_: &'static str,
    status: &'static str,
    reason: &'static str,
) -> impl Fn(Option<&K>) -> bool {
    move |k| {
        k.and_then(|k| find(k.conditions(), type_))
            .is_some_and(|c| c.status == status && c.reason == reason)
    }
}

/// A provider that is `Ready`.
pub fn ready_provider(p: Option<&EmailProvider>) -> bool {
    ready(p)
}

/// A service account that is `Ready`.
pub fn ready_account(a: Option<&ExchangeServiceAccount>) -> bool {
    ready(a)
}

/// A binding that is `Ready`.
pub fn ready_binding(b: Option<&MailboxBinding>) -> bool {
    ready(b)
}

/// A binding refused with `Authorized=False` for `reason`.
pub fn binding_reason(reason: &'static str) -> impl Fn(Option<&MailboxBinding>) -> bool {
    condition("Authorized", "False", reason)
}

/// A provider whose deletion waits for its users.
pub fn provider_in_use(p: Option<&EmailProvider>) -> bool {
    condition(TERMINATING, "True", "InUse")(p)
}

/// Removes what the test made, on success and on failure (dumping it first then):
/// bindings, Secrets and Leases in its namespaces, the namespaces, service accounts and
/// providers. Cluster-scoped objects are deleted and then freed of their finalizers, so
/// an operator still running cannot put one back. Without a namespace controller (a bare
/// API server) the emptied namespaces stay `Terminating`.
pub struct Cleanup {
    /// The client to remove them with.
    pub client: Client,
    /// Namespaces made by the test.
    pub namespaces: Vec<String>,
    /// EmailProviders made by the test.
    pub providers: Vec<String>,
    /// ExchangeServiceAccounts made by the test.
    pub accounts: Vec<String>,
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
                for b in list.items.iter().take(20) {
                    eprintln!("--- MailboxBinding {ns}/{}\n{}", b.name_any(), to_json(&b));
                }
            }
        }
    }

    async fn remove(&self) {
        let all = ListParams::default();
        let dp = DeleteParams::default();
        for ns in &self.namespaces {
            let bindings: Api<MailboxBinding> = Api::namespaced(self.client.clone(), ns);
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
            let leases: Api<Lease> = Api::namespaced(self.client.clone(), ns);
            let _ = bindings.delete_collection(&dp, &all).await;
            let _ = secrets.delete_collection(&dp, &all).await;
            let _ = leases.delete_collection(&dp, &all).await;
        }
        let accounts: Api<ExchangeServiceAccount> = Api::all(self.client.clone());
        for name in &self.accounts {
            delete_and_unblock(&accounts, name).await;
        }
        let providers: Api<EmailProvider> = Api::all(self.client.clone());
        for name in &self.providers {
            delete_and_unblock(&providers, name).await;
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        for ns in &self.namespaces {
            let _ = namespaces.delete(ns, &dp).await;
        }
    }
}

/// Delete, then drop every finalizer: once the deletion timestamp is set nobody can add
/// one again, so the object goes whatever an operator still running does.
async fn delete_and_unblock<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let unblock = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    let _ = api.delete(name, &DeleteParams::default()).await;
    let _ = api.patch(name, &PatchParams::default(), &unblock).await;
}

/// Pretty JSON for failure dumps.
pub fn to_json<T: serde::Serialize>(v: &T) -> String {
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

/// Apply the generated CRDs and wait until the API server serves them.
pub async fn install_crds(client: &Client) {
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

/// Create (apply) a namespace.
pub async fn create_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    apply(
        &namespaces,
        name,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    .await;
}

/// Create (apply) a Secret with string data.
pub async fn create_secret(client: &Client, namespace: &str, name: &str, data: Value) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    apply(
        &secrets,
        name,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": name}, "stringData": data}),
    )
    .await;
}
