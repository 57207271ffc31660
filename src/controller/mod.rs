//! The three controllers in one process: shared context and reflector stores, start-up,
//! error policy, and the one place where a reconcile's result becomes metrics, Events and
//! back-off.

pub mod backoff;
pub mod binding;
pub mod credentials;
pub mod events;
pub mod fanout;
pub mod leader;
pub mod provider;
pub mod rotation;
pub mod service_account;
pub mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::ListParams;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::conditions::{self, Reason};
use crate::api::{EmailProvider, ExchangeServiceAccount, IN_USE_FINALIZER, MailboxBinding};
use crate::config::OperatorConfig;
use crate::exchange::MailBackend;
use crate::health::HealthState;
use crate::metrics::Metrics;
use crate::{Error, Result};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// An object as watched: either the typed object or what could be read of a malformed one.
pub type Guarded<K> = DeserializeGuard<K>;

/// Metric and log label of each kind.
pub const PROVIDER_KIND: &str = "EmailProvider";
/// Metric and log label of each kind.
pub const SERVICE_ACCOUNT_KIND: &str = "ExchangeServiceAccount";
/// Metric and log label of each kind.
pub const BINDING_KIND: &str = "MailboxBinding";

/// Read side of every cache the controllers use; reconciles read these, never LIST.
#[derive(Clone)]
pub struct Stores {
    /// EmailProviders.
    pub providers: Store<Guarded<EmailProvider>>,
    /// ExchangeServiceAccounts.
    pub service_accounts: Store<Guarded<ExchangeServiceAccount>>,
    /// MailboxBindings.
    pub bindings: Store<Guarded<MailboxBinding>>,
    /// Secrets (all namespaces; referenced ones are read for credentials).
    pub secrets: Store<Secret>,
    /// Namespaces (their labels decide `allowedNamespaces` selectors).
    pub namespaces: Store<Namespace>,
}

/// Write side of the caches: fed by the watchers, or by tests directly.
pub struct Writers {
    /// EmailProviders.
    pub providers: reflector::store::Writer<Guarded<EmailProvider>>,
    /// ExchangeServiceAccounts.
    pub service_accounts: reflector::store::Writer<Guarded<ExchangeServiceAccount>>,
    /// MailboxBindings.
    pub bindings: reflector::store::Writer<Guarded<MailboxBinding>>,
    /// Secrets.
    pub secrets: reflector::store::Writer<Secret>,
    /// Namespaces.
    pub namespaces: reflector::store::Writer<Namespace>,
}

/// Fresh, empty caches.
pub fn stores() -> (Stores, Writers) {
    let (providers, pw) = reflector::store();
    let (service_accounts, sw) = reflector::store();
    let (bindings, bw) = reflector::store();
    let (secrets, secw) = reflector::store();
    let (namespaces, nw) = reflector::store();
    (
        Stores {
            providers,
            service_accounts,
            bindings,
            secrets,
            namespaces,
        },
        Writers {
            providers: pw,
            service_accounts: sw,
            bindings: bw,
            secrets: secw,
            namespaces: nw,
        },
    )
}

/// The well-formed objects of a store.
pub fn valid<K: Clone>(store: &Store<Guarded<K>>) -> Vec<Arc<Guarded<K>>>
where
    Guarded<K>: Resource<DynamicType = ()> + Clone,
{
    store.state().into_iter().filter(|g| g.0.is_ok()).collect()
}

/// Borrow the typed objects out of guarded ones.
pub fn typed<K>(guards: &[Arc<Guarded<K>>]) -> Vec<&K> {
    guards.iter().filter_map(|g| g.0.as_ref().ok()).collect()
}

/// Successful probes, remembered so that re-reconciles caused by unrelated changes (a
/// count, another object's status) do not call Exchange again before the re-verification
/// period or a change of input.
pub struct ProbeCache<T> {
    entries: Mutex<HashMap<String, (u64, Instant, T)>>,
}

impl<T: Clone> Default for ProbeCache<T> {
    fn default() -> Self {
        ProbeCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> ProbeCache<T> {
    /// The remembered value for `key` if its inputs are unchanged and it is younger than `ttl`.
    pub fn get(&self, key: &str, fingerprint: u64, ttl: Duration) -> Option<T> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(f, at, _)| *f == fingerprint && at.elapsed() < ttl)
            .map(|(_, _, v)| v.clone())
    }

    /// Remember a successful probe.
    pub fn put(&self, key: &str, fingerprint: u64, value: T) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), (fingerprint, Instant::now(), value));
    }

    /// Forget `key` (after a failure, or when the object is gone).
    pub fn forget(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// A stable hash of the inputs of a probe.
pub fn fingerprint(parts: &[&str]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// Everything a reconcile needs.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// The mail system.
    pub backend: Arc<dyn MailBackend>,
    /// Operator settings.
    pub config: OperatorConfig,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Caches.
    pub stores: Stores,
    /// Event recorder (used only by [`events`]).
    pub recorder: Recorder,
    /// Back-off of transient failures per object.
    pub backoff: backoff::Backoff,
    /// Provider probes that succeeded.
    pub provider_probes: ProbeCache<crate::exchange::ProviderOutcome>,
    /// Service-account authentications that succeeded.
    pub account_probes: ProbeCache<()>,
    /// Mailbox verifications that succeeded, with when they ran.
    pub mailbox_probes: ProbeCache<binding::Verified>,
    /// Refresh tokens the authority rotated, until the Secrets show them.
    pub rotated_tokens: rotation::RotatedTokens,
}

impl Context {
    /// A context over the given caches.
    pub fn new(
        client: Client,
        backend: Arc<dyn MailBackend>,
        config: OperatorConfig,
        metrics: Arc<Metrics>,
        stores: Stores,
    ) -> Self {
        let reporter = Reporter {
            controller: "mailops".into(),
            instance: Some(config.identity.clone()),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            backend,
            config,
            metrics,
            stores,
            backoff: backoff::Backoff::default(),
            provider_probes: ProbeCache::default(),
            account_probes: ProbeCache::default(),
            mailbox_probes: ProbeCache::default(),
            rotated_tokens: rotation::RotatedTokens::default(),
        }
    }
}

/// What a reconcile did that the outside world hears about: the `Ready` transition and a
/// blocked deletion. Filled while reconciling, published once at the end.
#[derive(Debug, Default)]
pub struct Report {
    /// `Ready` before and after, when the status was written.
    pub transition: Option<status::Transition>,
    /// Deletion newly blocked, with the message naming the users.
    pub deletion_blocked: Option<String>,
}

/// Shared handle the reconcile steps write their report into.
pub type ReportCell = Mutex<Report>;

/// Write `new` by server-side apply unless it equals `old`; when written, record the
/// `Ready` transition for the Events `finish` publishes.
pub async fn write_status<K, S>(
    api: &Api<K>,
    name: &str,
    old: Option<&S>,
    new: &S,
    report: &ReportCell,
) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize + status::HasConditions,
{
    if status::apply(api, name, old, new).await? {
        let before = old.map(|s| s.conditions()).unwrap_or_default();
        report.lock().unwrap_or_else(|e| e.into_inner()).transition =
            Some(status::Transition::between(before, new.conditions()));
    }
    Ok(())
}

/// The key back-off and probe caches use for an object.
pub fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// The end of every reconcile: Events from the report, metrics, back-off reset.
pub async fn finish<K>(
    ctx: &Context,
    kind: &'static str,
    obj: &K,
    started: Instant,
    report: Report,
    result: Result<Action>,
) -> Result<Action>
where
    K: Resource<DynamicType = ()>,
{
    events::publish(ctx, obj.object_ref(&()), &report).await;
    let label = match &result {
        Ok(_) => "success",
        Err(e) => e.reason().map(Reason::as_str).unwrap_or(e.category()),
    };
    ctx.metrics.record_reconcile(kind, label, started.elapsed());
    if result.is_ok() {
        ctx.backoff.reset(&object_key(obj));
    }
    result
}

/// The server-requested delay carried by an error, if any.
pub fn retry_after(err: &Error) -> Option<Duration> {
    match err {
        Error::Exchange { retry_after, .. } => *retry_after,
        Error::Finalizer(inner) => match inner.as_ref() {
            kube::runtime::finalizer::Error::ApplyFailed(e)
            | kube::runtime::finalizer::Error::CleanupFailed(e) => retry_after(e),
            _ => None,
        },
        _ => None,
    }
}

/// What to do after a failed reconcile: wait for a change when only the user can fix it,
/// else back off exponentially up to a cap. A server-requested delay (`Retry-After`) is
/// honoured but never shortens the back-off, so `Retry-After: 0` cannot make a hot loop,
/// and a huge one waits at most [`backoff::MAX_SERVER_DELAY`].
pub fn error_policy<K>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    if err.is_permanent() {
        return Action::await_change();
    }
    let own = ctx.backoff.next_delay(&object_key(obj.as_ref()));
    let delay = backoff::with_server_delay(own, retry_after(err));
    warn!(
        object = %object_key(obj.as_ref()),
        category = err.category(),
        error = %err,
        retry_in_seconds = delay.as_secs(),
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// Report an object that could not be deserialized (logged and counted) and wait for a
/// change: the watch and the other objects go on. One being deleted that nothing uses
/// (`in_use` by name) is released from the in-use finalizer, which needs no typed object:
/// a malformed provider or account must not be stuck in deletion until fixed.
pub async fn report_malformed<K>(
    ctx: &Context,
    kind: &'static str,
    obj: &Guarded<K>,
    in_use: impl Fn(&str) -> bool,
) -> Result<Action>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    Guarded<K>: Resource<DynamicType = ()>,
{
    if let Err(invalid) = &obj.0 {
        warn!(
            kind,
            name = %obj.name_any(),
            namespace = obj.namespace().unwrap_or_default(),
            error = %invalid.error,
            "object cannot be read; fix it or delete it"
        );
        ctx.metrics
            .record_reconcile(kind, "malformed", Duration::ZERO);
    }
    let held = obj.finalizers().iter().any(|f| f == IN_USE_FINALIZER);
    if obj.meta().deletion_timestamp.is_some() && held && !in_use(&obj.name_any()) {
        release_malformed::<K>(ctx, obj).await?;
        info!(kind, name = %obj.name_any(), "released a malformed object nothing uses");
    }
    Ok(Action::await_change())
}

/// Drop the in-use finalizer of a cluster-scoped object by merge patch; the
/// resourceVersion makes a concurrent change fail instead of being overwritten.
async fn release_malformed<K>(ctx: &Context, obj: &Guarded<K>) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let remaining: Vec<&String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != IN_USE_FINALIZER)
        .collect();
    let patch = serde_json::json!({
        "metadata": {"finalizers": remaining, "resourceVersion": obj.resource_version()}
    });
    let api: Api<Guarded<K>> = Api::all(ctx.client.clone());
    api.patch(
        &obj.name_any(),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Fail start-up with a clear message when the CRDs are not installed.
pub async fn check_crds(client: &Client) -> Result<()> {
    async fn one<K>(client: &Client) -> Result<()>
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let api: Api<Guarded<K>> = Api::all(client.clone());
        match api.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Err(Error::Config(format!(
                "the {} CRD ({}) is not installed: run kubectl apply --server-side -f crds/",
                K::kind(&()),
                K::plural(&())
            ))),
            Err(e) => Err(e.into()),
        }
    }
    one::<EmailProvider>(client).await?;
    one::<ExchangeServiceAccount>(client).await?;
    one::<MailboxBinding>(client).await?;
    Ok(())
}

/// Run the operator until SIGTERM or ctrl-c: HTTP endpoints, leader election and the
/// three controllers against the real Exchange backend.
pub async fn run(config: OperatorConfig) -> Result<()> {
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(HealthState::default());
    let client = crate::kube_client::build(metrics.clone()).await?;
    let backend: Arc<dyn MailBackend> = Arc::new(crate::exchange::client::ExchangeClient::new(
        &config,
        metrics.clone(),
    )?);
    let http = crate::http::serve(config.http_addr, metrics.clone(), health.clone());
    tokio::select! {
        served = http => served,
        ran = run_controllers(config, client, backend, metrics, health, shutdown_signal()) => ran,
    }
}

/// Run the controllers with a given backend, without HTTP endpoints (the e2e tests run
/// this in-process with the fake backend and leader election off).
pub async fn run_with(
    config: OperatorConfig,
    client: Client,
    backend: Arc<dyn MailBackend>,
) -> Result<()> {
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(HealthState::default());
    run_controllers(config, client, backend, metrics, health, shutdown_signal()).await
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = futures::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    info!("shutdown requested");
}

/// Watch everything, wait for the caches, take the leader Lease, then reconcile until
/// `shutdown` resolves (or the Lease is lost, which is an error so the pod restarts).
pub async fn run_controllers(
    config: OperatorConfig,
    client: Client,
    backend: Arc<dyn MailBackend>,
    metrics: Arc<Metrics>,
    health: Arc<HealthState>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    check_crds(&client).await?;
    let (stores, writers) = stores();
    let (senders, receivers) = fanout::channels();
    let pumps = fanout::pump_all(client.clone(), writers, stores.clone(), senders.clone());
    let pumps = tokio::spawn(pumps);
    let ready = async {
        let s = &stores;
        let _ = futures::join!(
            s.providers.wait_until_ready(),
            s.service_accounts.wait_until_ready(),
            s.bindings.wait_until_ready(),
            s.secrets.wait_until_ready(),
            s.namespaces.wait_until_ready(),
        );
    };
    ready.await;
    health.set_caches_synced();
    info!("caches synced");

    let shutdown: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>> =
        Box::pin(shutdown);
    let shutdown = futures::FutureExt::shared(shutdown);

    let lease = if config.leader_election {
        let lease = leader::LeaseLock::new(
            client.clone(),
            &config.lease_namespace,
            &config.lease_name,
            &config.identity,
        );
        // A replica told to stop while it waits for the Lease stops at once.
        let acquired = tokio::select! {
            acquired = lease.acquire() => acquired?,
            _ = shutdown.clone() => {
                pumps.abort();
                return Ok(());
            }
        };
        Some((lease, acquired))
    } else {
        None
    };
    health.set_leader(true);
    senders.activate(&stores);

    let ctx = Arc::new(Context::new(
        client,
        backend,
        config,
        metrics,
        stores.clone(),
    ));
    let controllers = run_three(ctx, receivers, shutdown.clone());
    // Dropping the controllers' future when the Lease is lost cancels every reconcile in
    // flight: no write of ours starts after that.
    let result = match &lease {
        Some((lease, acquired)) => tokio::select! {
            _ = controllers => Ok(()),
            lost = lease.keep_renewed(*acquired) => lost,
        },
        None => {
            controllers.await;
            Ok(())
        }
    };
    pumps.abort();
    health.set_leader(false);
    match (&result, lease) {
        (Err(_), Some(_)) => health.set_lease_lost(),
        // Handing over at shutdown spares the successor the wait for expiry; bounded, as
        // the API server may be what is failing.
        (Ok(()), Some((lease, _))) => {
            let _ = tokio::time::timeout(leader::RENEW_PERIOD, lease.release()).await;
        }
        (_, None) => {}
    }
    result
}

async fn run_three(
    ctx: Arc<Context>,
    receivers: fanout::Receivers,
    shutdown: futures::future::Shared<
        std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>,
    >,
) {
    let config = kube::runtime::Config::default().concurrency(16);
    let providers = Controller::for_stream(
        futures::stream::pending::<std::result::Result<_, watcher::Error>>(),
        ctx.stores.providers.clone(),
    )
    .with_config(config.clone())
    .reconcile_on(receivers.providers)
    .graceful_shutdown_on(shutdown.clone())
    .run(provider::reconcile, error_policy, ctx.clone())
    .for_each(|r| async move { log_result(PROVIDER_KIND, r) });
    let accounts = Controller::for_stream(
        futures::stream::pending::<std::result::Result<_, watcher::Error>>(),
        ctx.stores.service_accounts.clone(),
    )
    .with_config(config.clone())
    .reconcile_on(receivers.service_accounts)
    .graceful_shutdown_on(shutdown.clone())
    .run(service_account::reconcile, error_policy, ctx.clone())
    .for_each(|r| async move { log_result(SERVICE_ACCOUNT_KIND, r) });
    let bindings = Controller::for_stream(
        futures::stream::pending::<std::result::Result<_, watcher::Error>>(),
        ctx.stores.bindings.clone(),
    )
    .with_config(config)
    .reconcile_on(receivers.bindings)
    .graceful_shutdown_on(shutdown)
    .run(binding::reconcile, error_policy, ctx.clone())
    .for_each(|r| async move { log_result(BINDING_KIND, r) });
    futures::join!(providers, accounts, bindings);
}

fn log_result<K, E: std::fmt::Display, W: std::fmt::Display>(
    kind: &'static str,
    r: std::result::Result<(ObjectRef<K>, Action), kube::runtime::controller::Error<E, W>>,
) where
    K: Resource,
{
    match r {
        Ok((obj, _)) => tracing::debug!(kind, object = %obj.name, "reconciled"),
        Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
        Err(e) => tracing::debug!(kind, error = %e, "reconcile did not succeed"),
    }
}

/// Count objects by kind and `Ready` status for the `mailops_objects` gauge.
pub fn update_object_gauges(ctx: &Context) {
    fn count<K: Clone>(
        metrics: &Metrics,
        kind: &'static str,
        store: &Store<Guarded<K>>,
        conds: fn(&K) -> Option<&[Condition]>,
    ) where
        Guarded<K>: Resource<DynamicType = ()> + Clone,
    {
        let (mut t, mut f, mut u) = (0, 0, 0);
        for g in store.state() {
            let ready =
                g.0.as_ref()
                    .ok()
                    .and_then(conds)
                    .and_then(|c| conditions::find(c, conditions::READY))
                    .map(|c| c.status.as_str());
            match ready {
                Some("True") => t += 1,
                Some("False") => f += 1,
                _ => u += 1,
            }
        }
        metrics.set_objects(kind, "True", t);
        metrics.set_objects(kind, "False", f);
        metrics.set_objects(kind, "Unknown", u);
    }
    count::<EmailProvider>(&ctx.metrics, PROVIDER_KIND, &ctx.stores.providers, |p| {
        p.status.as_ref().map(|s| s.conditions.as_slice())
    });
    count::<ExchangeServiceAccount>(
        &ctx.metrics,
        SERVICE_ACCOUNT_KIND,
        &ctx.stores.service_accounts,
        |a| a.status.as_ref().map(|s| s.conditions.as_slice()),
    );
    count::<MailboxBinding>(&ctx.metrics, BINDING_KIND, &ctx.stores.bindings, |b| {
        b.status.as_ref().map(|s| s.conditions.as_slice())
    });
}
