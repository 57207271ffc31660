//! Running the operator: start-up checks, the watches and caches, leader election, the
//! three controllers, and shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use std::fmt::Debug;

use futures::channel::mpsc::UnboundedReceiver;
use futures::future::Shared;
use kube::runtime::reflector::Store;
use serde::de::DeserializeOwned;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource};
use tracing::info;

use super::context::{Context, Guarded, Stores, object_at, object_ref, stores};
use super::gate::Gate;
use super::index::BindingKey;
use super::probe_cache::{self, ProbeCache};
use super::{binding, driver, fanout, leader, policy, provider, service_account, settle};
use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use crate::config::OperatorConfig;
use crate::exchange::MailBackend;
use crate::health::HealthState;
use crate::metrics::Metrics;
use crate::{Error, Result};

/// Fail start-up with a clear message when the CRDs are not installed.
pub async fn check_crds(client: &Client) -> Result<()> {
    async fn crd_installed<K>(client: &Client) -> Result<()>
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
    crd_installed::<EmailProvider>(client).await?;
    crd_installed::<ExchangeServiceAccount>(client).await?;
    crd_installed::<MailboxBinding>(client).await?;
    Ok(())
}

/// Run the operator until SIGTERM or ctrl-c: HTTP endpoints, the admission webhook,
/// leader election and the three controllers against the real Exchange backend.
pub async fn run(config: OperatorConfig) -> Result<()> {
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(HealthState::default());
    let client = crate::kube_client::build(&config.cluster, metrics.clone()).await?;
    let backend: Arc<dyn MailBackend> = Arc::new(crate::exchange::client::ExchangeClient::new(
        &config,
        metrics.clone(),
    )?);
    let http = crate::http::serve(config.http_addr, metrics.clone(), health.clone());
    let operator = async move {
        wait_for_api_server(&client).await?;
        let caches = start_caches(&client);
        // Every replica serves the webhook from the caches, leader or not.
        let webhook = crate::webhook::serve(config.clone(), client.clone(), caches.stores.clone());
        let controllers = run_on_caches(
            caches,
            config,
            client,
            backend,
            metrics,
            health,
            shutdown_signal(),
        );
        tokio::select! {
            served = webhook => served,
            ran = controllers => ran,
        }
    };
    tokio::select! {
        served = http => served,
        ran = operator => ran,
    }
}

/// [`check_crds`], retried while the API server cannot be reached or refuses (no route
/// yet, RBAC not yet applied): the process stays up, alive for its liveness probe and
/// not ready for its readiness probe, instead of exiting into a crash loop whose
/// back-off outlasts the outage. A missing CRD still ends it with its message.
async fn wait_for_api_server(client: &Client) -> Result<()> {
    let mut delay = std::time::Duration::from_secs(1);
    loop {
        match check_crds(client).await {
            Err(Error::Kube(error)) => {
                tracing::warn!(%error, retry_in = ?delay, "cannot read the Kubernetes API; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(30));
            }
            checked => return checked,
        }
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

/// Check the CRDs, start the caches and run on them ([`run_on_caches`]).
pub async fn run_controllers(
    config: OperatorConfig,
    client: Client,
    backend: Arc<dyn MailBackend>,
    metrics: Arc<Metrics>,
    health: Arc<HealthState>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    check_crds(&client).await?;
    let caches = start_caches(&client);
    run_on_caches(caches, config, client, backend, metrics, health, shutdown).await
}

/// The watches feeding the caches, and the triggers they send, started but not yet
/// handed to controllers. Anything that only reads the caches (the admission webhook,
/// served by every replica) can use `stores` at once.
pub struct Caches {
    /// Read side of the caches.
    pub stores: Stores,
    senders: fanout::Senders,
    receivers: fanout::Receivers,
    pumps: tokio::task::JoinHandle<()>,
}

/// Start watching everything mailops reads.
pub fn start_caches(client: &Client) -> Caches {
    let (stores, writers) = stores();
    let (senders, receivers) = fanout::channels();
    let pumps = fanout::pump_all(client.clone(), writers, stores.clone(), senders.clone());
    Caches {
        stores,
        senders,
        receivers,
        pumps: tokio::spawn(pumps),
    }
}

/// Wait for the caches, take the leader Lease, then reconcile until `shutdown` resolves
/// (or the Lease is lost, which is an error so the pod restarts).
pub async fn run_on_caches(
    caches: Caches,
    config: OperatorConfig,
    client: Client,
    backend: Arc<dyn MailBackend>,
    metrics: Arc<Metrics>,
    health: Arc<HealthState>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let Caches {
        stores,
        senders,
        receivers,
        pumps,
    } = caches;
    stores.index.publish_to(metrics.clone());
    stores.wait_until_ready().await;
    health.set_caches_synced();
    info!("caches synced");

    let shutdown: Pin<Box<dyn Future<Output = ()> + Send + Sync>> = Box::pin(shutdown);
    let shutdown = futures::FutureExt::shared(shutdown);
    let leadership = match lead(&config, &client, shutdown.clone()).await? {
        Some(leadership) => leadership,
        None => {
            pumps.abort();
            return Ok(());
        }
    };
    health.set_leader(true);
    senders.activate(&stores);
    let ctx = Arc::new(Context::new(client, backend, config, metrics, stores));
    let controllers = run_every_controller(ctx, receivers, shutdown);
    // Dropping the controllers' future when the Lease is lost cancels every reconcile in
    // flight: no write of ours starts after that.
    let result = match &leadership {
        Leadership::Leading(lease, acquired) => tokio::select! {
            _ = controllers => Ok(()),
            lost = lease.keep_renewed(*acquired) => lost,
        },
        Leadership::NotElecting => {
            controllers.await;
            Ok(())
        }
    };
    pumps.abort();
    step_down(&health, leadership, &result).await;
    result
}

/// How long a provider's or account's triggers must be quiet before it reconciles: a
/// settle window for the counts of a wave of bindings, short enough that a released
/// provider goes within a second of its last binding.
pub const COUNTS_SETTLE: std::time::Duration = std::time::Duration::from_millis(400);

/// The longest a provider or account waits for its triggers to settle: during a long wave
/// its counts still move, at most one status write per this period.
pub const COUNTS_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

type Shutdown = Shared<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>;

/// Whether this replica acts, and on what authority.
enum Leadership {
    /// Leader election is off (one replica, or tests).
    NotElecting,
    /// This replica holds the Lease, acquired at this instant.
    Leading(Box<leader::LeaseLock>, tokio::time::Instant),
}

/// Take the Lease when electing; `None` when told to stop while waiting for it.
async fn lead(
    config: &OperatorConfig,
    client: &Client,
    shutdown: Shutdown,
) -> Result<Option<Leadership>> {
    if !config.leader_election {
        return Ok(Some(Leadership::NotElecting));
    }
    let lease = leader::LeaseLock::new(
        client.clone(),
        &config.lease_namespace,
        &config.lease_name,
        &config.identity,
    );
    tokio::select! {
        acquired = lease.acquire() => Ok(Some(Leadership::Leading(Box::new(lease), acquired?))),
        _ = shutdown => Ok(None),
    }
}

/// After the controllers stop: a lost Lease makes `/healthz` fail; at a clean shutdown the
/// Lease is handed over, so the successor need not wait for it to expire (bounded, as
/// the API server may be what is failing).
async fn step_down(health: &HealthState, leadership: Leadership, result: &Result<()>) {
    health.set_leader(false);
    let Leadership::Leading(lease, _) = leadership else {
        return;
    };
    if result.is_err() {
        health.set_lease_lost();
    } else {
        let _ = tokio::time::timeout(leader::RENEW_PERIOD, lease.release()).await;
    }
}

async fn run_every_controller(ctx: Arc<Context>, receivers: fanout::Receivers, shutdown: Shutdown) {
    futures::join!(
        run_controller(
            ctx.stores.providers.clone(),
            Entrance::Settled(receivers.providers),
            due_triggers::<EmailProvider, _>(&ctx, |c| &c.provider_probes),
            shutdown.clone(),
            provider::reconcile,
            ctx.clone()
        ),
        run_controller(
            ctx.stores.service_accounts.clone(),
            Entrance::Settled(receivers.service_accounts),
            due_triggers::<ExchangeServiceAccount, _>(&ctx, |c| &c.account_probes),
            shutdown.clone(),
            service_account::reconcile,
            ctx.clone()
        ),
        run_controller(
            ctx.stores.bindings.clone(),
            Entrance::Gated(receivers.bindings),
            due_triggers::<MailboxBinding, _>(&ctx, |c| &c.mailbox_probes),
            shutdown,
            binding::reconcile,
            ctx.clone()
        ),
    );
}

/// The objects of kind `K` whose probes come due for re-verification.
pub fn due_triggers<K, T>(
    ctx: &Arc<Context>,
    cache: fn(&Context) -> &ProbeCache<T>,
) -> impl Stream<Item = ObjectRef<Guarded<K>>> + Send + 'static
where
    Guarded<K>: Resource<DynamicType = ()>,
    T: Clone + Send + 'static,
{
    probe_cache::due_keys(ctx.clone(), cache).filter_map(|key| async move { object_ref(&key) })
}

/// How the pumps' triggers enter a controller.
pub enum Entrance<K: Resource> {
    /// Settled: a wave of bindings attaching re-triggers a provider or account once per
    /// binding, and its counts are written once the wave is quiet, or every
    /// `COUNTS_MAX_WAIT` while it goes on.
    Settled(UnboundedReceiver<ObjectRef<K>>),
    /// Through a gate, at the pace the controller reconciles (bindings come in waves of
    /// thousands).
    Gated(Arc<Gate>),
}

/// Run one kind's controller over its cache, fed by the triggers the pumps send and by
/// the objects `due` for re-verification, until `shutdown`.
pub async fn run_controller<K, F, Fut>(
    store: Store<Guarded<K>>,
    entrance: Entrance<Guarded<K>>,
    due: impl Stream<Item = ObjectRef<Guarded<K>>> + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    reconcile: F,
    ctx: Arc<Context>,
) where
    K: driver::Reconciled,
    Guarded<K>:
        Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: FnMut(Arc<Guarded<K>>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action>> + Send + 'static,
{
    let config = kube::runtime::Config::default().concurrency(16);
    let (triggers, gate) = entrance.with(due);
    Controller::for_stream(
        futures::stream::pending::<std::result::Result<_, watcher::Error>>(),
        store,
    )
    .with_config(config)
    .reconcile_on(triggers)
    .graceful_shutdown_on(shutdown)
    .run(reconcile, policy::error_policy, ctx)
    .for_each(|r| {
        if let Some(gate) = &gate
            && let Some(key) = result_key(&r)
        {
            gate.done(&key);
        }
        log_result(K::KIND, r);
        futures::future::ready(())
    })
    .await;
}

impl<K: Resource<DynamicType = ()> + Send + 'static> Entrance<K> {
    /// All of a controller's triggers: the pumps' through this entrance, and the objects
    /// `due` for re-verification (through the gate too, when there is one); and the gate
    /// its results go back to.
    fn with(
        self,
        due: impl Stream<Item = ObjectRef<K>> + Send + 'static,
    ) -> (BoxStream<'static, ObjectRef<K>>, Option<Arc<Gate>>) {
        match self {
            Entrance::Settled(triggers) => {
                let settled = settle::settle(triggers, COUNTS_SETTLE, COUNTS_MAX_WAIT);
                (futures::stream::select(settled, due).boxed(), None)
            }
            Entrance::Gated(gate) => {
                let through = gate
                    .clone()
                    .stream()
                    .map(|(ns, name)| object_at(&ns, &name));
                // Yields nothing: polled beside the gate, it offers the due objects to it.
                let offers = gate.clone();
                let offered = due.filter_map(move |at| {
                    offers.offer(gate_key(&at));
                    futures::future::ready(None)
                });
                (
                    futures::stream::select(through, offered).boxed(),
                    Some(gate),
                )
            }
        }
    }
}

/// An object's key at the gate: its namespace (empty for none) and name.
fn gate_key<K: Resource>(at: &ObjectRef<K>) -> BindingKey {
    (at.namespace.clone().unwrap_or_default(), at.name.clone())
}

/// The object a controller's result is about, as a gate's key.
fn result_key<K: Resource, E, W>(
    r: &std::result::Result<(ObjectRef<K>, Action), kube::runtime::controller::Error<E, W>>,
) -> Option<BindingKey> {
    use kube::runtime::controller::Error as E;
    // Two arms: the errors carry the object as a `DynamicObject` reference.
    match r {
        Ok((obj, _)) => Some(gate_key(obj)),
        Err(E::ObjectNotFound(obj) | E::ReconcilerFailed(_, obj)) => Some(gate_key(obj)),
        Err(E::QueueError(_) | E::RunnerError(_)) => None,
    }
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
