//! The validating admission webhook, served over HTTPS by every replica from the
//! controllers' caches: the `use` verb on ExchangeServiceAccounts (a SubjectAccessReview
//! for the requesting user), deletions refused while in use, and warnings for what
//! depends on other objects. One module per concern: the pure decision, who uses what,
//! the warnings, the SubjectAccessReview, the certificates and their keeper, TLS, HTTPS.

pub mod certs;
pub mod decision;
pub mod keeper;
pub mod sar;
pub mod server;
pub mod tls;
pub mod users;
pub mod warnings;

use std::sync::Arc;

use kube::Client;
use tokio::net::TcpListener;

use crate::cache::Stores;
use crate::config::OperatorConfig;
use crate::{Error, Result};

/// Serve the webhook on the configured address until the future is dropped; never
/// resolves when the webhook is off.
pub async fn serve(config: OperatorConfig, client: Client, stores: Stores) -> Result<()> {
    if !config.webhook.enabled {
        tracing::info!("admission webhook off");
        return futures::future::pending().await;
    }
    let addr = config.webhook.addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))?;
    serve_on(listener, &config, client, stores).await
}

/// Serve the webhook on a bound listener: once the caches hold their first LIST and a
/// certificate is in place, with the certificate kept current beside it.
pub async fn serve_on(
    listener: TcpListener,
    config: &OperatorConfig,
    client: Client,
    stores: Stores,
) -> Result<()> {
    let reviewer = Arc::new(sar::KubeAccessReviewer::new(
        client.clone(),
        config.webhook.access_review_timeout,
    ));
    let options = decision::Options {
        refuse_in_use_deletion: config.webhook.refuse_in_use_deletion,
        allow_insecure_endpoints: config.allow_insecure_endpoints,
    };
    stores.wait_until_ready().await;
    let slot = Arc::new(tls::CertSlot::default());
    let keeper = keeper::Keeper::new(client, &config.webhook);
    keeper.first_fill(&slot).await;
    let tls = tls::server_config(slot.clone())?;
    let handler = Arc::new(server::Handler::new(stores, reviewer, options));
    tracing::info!(addr = ?listener.local_addr().ok(), "serving the admission webhook");
    tokio::select! {
        served = server::serve_tls(listener, tls, handler, std::future::pending()) => served,
        () = keeper.keep(slot) => Ok(()),
    }
}
