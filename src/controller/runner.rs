//! Running the operator: start-up checks, the watches and caches, leader election, the
//! three controllers ([`super::kinds`]), and shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use kube::api::ListParams;
use kube::{Api, Client, Resource};
use tracing::info;

use super::context::Context;
use super::kinds::{self, Shutdown};
use super::{fanout, leader};
use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use crate::cache::{Guarded, Stores, stores, watch};
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
pub async fn run_operator(config: OperatorConfig) -> Result<()> {
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(match config.webhook.enabled {
        true => HealthState::with_webhook(),
        false => HealthState::default(),
    });
    let client = crate::kube_client::build(
        &config.cluster,
        metrics.clone(),
        config.kube_request_timeout,
    )
    .await?;
    let backend: Arc<dyn MailBackend> = Arc::new(crate::exchange::client::ExchangeClient::new(
        &config,
        metrics.clone(),
    )?);
    let http = crate::http::serve(config.http_addr, metrics.clone(), health.clone());
    let operator = async move {
        wait_for_api_server(&client).await?;
        let caches = start_caches(&client);
        // Every replica serves the webhook from the caches, leader or not.
        let webhook = crate::webhook::serve(
            config.clone(),
            client.clone(),
            caches.stores.clone(),
            health.clone(),
        );
        let controllers = lead_and_reconcile(
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

/// Run the controllers: check the CRDs, start the caches, lead and reconcile on them
/// ([`lead_and_reconcile`]).
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
    lead_and_reconcile(caches, config, client, backend, metrics, health, shutdown).await
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
    let sinks = fanout::sinks(&stores, &senders);
    let pumps = watch::pump_all(client.clone(), writers, stores.clone(), sinks);
    Caches {
        stores,
        senders,
        receivers,
        pumps: tokio::spawn(pumps),
    }
}

/// Wait for the caches, take the leader Lease, then reconcile until `shutdown` resolves
/// (or the Lease is lost, which is an error so the pod restarts).
pub async fn lead_and_reconcile(
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
    let controllers = kinds::reconcile_every_kind(ctx, receivers, shutdown);
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
