//! The validating admission webhook, served over HTTPS by every replica from the
//! controllers' caches: the `use` verb on ExchangeServiceAccounts (a SubjectAccessReview
//! for the requesting user), deletions refused while in use, and warnings for what
//! depends on other objects. One module per concern: the pure decision, who uses what,
//! the warnings, the SubjectAccessReview and its cache, the certificates and their
//! keeper, TLS, HTTPS.

pub mod certs;
pub mod decision;
pub mod keeper;
pub mod sar;
pub mod sar_cache;
pub mod server;
pub mod tls;
pub mod users;
pub mod warnings;

use std::sync::Arc;

use kube::Client;
use tokio::net::TcpListener;

use crate::cache::Stores;
use crate::config::OperatorConfig;
use crate::health::HealthState;
use crate::{Error, Result};

/// Serve the webhook on the configured address until the future is dropped; never
/// resolves when the webhook is off. `health` learns when the certificate is loaded.
pub async fn serve(
    config: OperatorConfig,
    client: Client,
    stores: Stores,
    health: Arc<HealthState>,
) -> Result<()> {
    if !config.webhook.enabled {
        tracing::info!("admission webhook off");
        return futures::future::pending().await;
    }
    let addr = config.webhook.addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))?;
    serve_on(listener, &config, client, stores, health).await
}

/// Serve the webhook on a bound listener: once the caches hold their first LIST and a
/// certificate is in place (and only then is the replica Ready), with the certificate
/// kept current beside it. SubjectAccessReviews go through a cache and a budget.
pub async fn serve_on(
    listener: TcpListener,
    config: &OperatorConfig,
    client: Client,
    stores: Stores,
    health: Arc<HealthState>,
) -> Result<()> {
    // An unreadable client CA stops start-up here, before anything is served.
    let client_auth = match &config.webhook.client_ca_file {
        Some(path) => tls::ClientAuth::from_file(path, config.webhook.client_names.clone())?,
        None => tls::ClientAuth::Anyone,
    };
    let reviewer = Arc::new(sar::KubeAccessReviewer::new(
        client.clone(),
        config.webhook.access_review_timeout,
    ));
    let reviewer = Arc::new(sar_cache::CachingReviewer::new(
        reviewer,
        sar_cache::Settings::default(),
    ));
    let options = decision::Options {
        refuse_in_use_deletion: config.webhook.refuse_in_use_deletion,
        allow_insecure_endpoints: config.allow_insecure_endpoints,
    };
    let mut limits = server::Limits::default();
    limits.connections.max_connections = config.webhook.max_connections.max(1);
    stores.wait_until_ready().await;
    let slot = Arc::new(tls::CertSlot::default());
    let keeper = keeper::Keeper::new(client, &config.webhook);
    keeper.first_fill(&slot).await;
    let tls = tls::server_config(slot.clone(), &client_auth)?;
    health.set_webhook_certificate_loaded();
    let handler = Arc::new(server::Handler::new(stores, reviewer, options));
    tracing::info!(
        addr = ?listener.local_addr().ok(),
        client_certificates = matches!(client_auth, tls::ClientAuth::Verified { .. }),
        "serving the admission webhook"
    );
    tokio::select! {
        served = server::serve_tls(listener, tls, handler, limits, std::future::pending()) => served,
        () = keeper.keep(slot) => Ok(()),
    }
}
