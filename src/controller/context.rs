//! What every reconcile shares: handles to the caches, the backend, the settings, the
//! Event sink, and the per-object memories (probe results, back-off, rotated tokens).

use std::sync::Arc;

use kube::Client;

use super::backoff::Backoff;
use super::events::EventSink;
use super::probe_cache::{Confirmed, ProbeCache};
use super::rotation::RotatedTokens;
use crate::cache::Stores;
use crate::config::OperatorConfig;
use crate::exchange::{MailBackend, ProviderOutcome};
use crate::metrics::Metrics;

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
    /// Where Events go.
    pub events: EventSink,
    /// Back-off of transient failures per object.
    pub backoff: Backoff,
    /// Provider probes that succeeded.
    pub provider_probes: ProbeCache<ProviderOutcome>,
    /// Service-account authentications that succeeded.
    pub account_probes: ProbeCache<()>,
    /// Mailbox verifications that succeeded, with when they ran.
    pub mailbox_probes: ProbeCache<Confirmed>,
    /// Refresh tokens the authority rotated, until the Secrets show them.
    pub rotated_tokens: Arc<RotatedTokens>,
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
        stores.index.publish_to(metrics.clone());
        // From now on deletions are recorded for `forget_deleted`.
        stores.index.take_deleted();
        let every = config.reverify_interval;
        Context {
            events: EventSink::new(client.clone(), &config.identity),
            client,
            backend,
            config,
            metrics,
            stores,
            backoff: Backoff::default(),
            provider_probes: ProbeCache::new(every),
            account_probes: ProbeCache::new(every),
            mailbox_probes: ProbeCache::new(every),
            rotated_tokens: Arc::default(),
        }
    }

    /// Forget what was remembered of objects deleted since the last call (probe results,
    /// back-off, and the rotated token of a Secret nobody reads any more), so memory
    /// follows the objects that exist.
    pub fn forget_deleted(&self) {
        for key in self.stores.index.take_deleted() {
            if let Some(secret) = key.strip_prefix("Secret/") {
                self.rotated_tokens.forget(secret);
                continue;
            }
            self.backoff.reset(&key);
            self.provider_probes.forget(&key);
            self.account_probes.forget(&key);
            self.mailbox_probes.forget(&key);
        }
    }
}
