//! What every reconcile shares: the reflector caches (read, never LISTed), the backend, the
//! settings, and the per-object memories (probe results, back-off, rotated tokens).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};

use super::index::Index;
use super::probe_cache::ProbeCache;
use super::{backoff, binding, rotation};
use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use crate::config::OperatorConfig;
use crate::exchange::MailBackend;
use crate::metrics::Metrics;

/// An object as watched: either the typed object or what could be read of a malformed one.
pub type Guarded<K> = DeserializeGuard<K>;

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
    /// Who uses, names or reads what, kept from the same watch events.
    pub index: Arc<Index>,
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

impl Stores {
    /// Wait until all five caches hold their initial LIST.
    pub async fn wait_until_ready(&self) {
        let _ = futures::join!(
            self.providers.wait_until_ready(),
            self.service_accounts.wait_until_ready(),
            self.bindings.wait_until_ready(),
            self.secrets.wait_until_ready(),
            self.namespaces.wait_until_ready(),
        );
    }
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
            index: Arc::default(),
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

/// The objects of a store that deserialized.
pub fn well_formed<K: Clone>(store: &Store<Guarded<K>>) -> Vec<Arc<Guarded<K>>>
where
    Guarded<K>: Resource<DynamicType = ()> + Clone,
{
    store.state().into_iter().filter(|g| g.0.is_ok()).collect()
}

/// Borrow the typed objects out of guarded ones.
pub fn typed_objects<K>(guards: &[Arc<Guarded<K>>]) -> Vec<&K> {
    guards.iter().filter_map(|g| g.0.as_ref().ok()).collect()
}

/// A stable digest of the inputs of a probe: specs, resolution, Secret versions.
pub fn probe_inputs_digest(parts: &[&str]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// A digest of a spec, for probe inputs in place of the generation: the API server also
/// bumps the generation when a deletion begins, which changes nothing a probe depends on
/// (and would re-verify every mailbox of a provider being deleted).
pub fn spec_digest(spec: &impl std::fmt::Debug) -> String {
    probe_inputs_digest(&[&format!("{spec:?}")]).to_string()
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

/// The object an [`object_key`] names, as its controller's trigger; `None` for a key of
/// another kind.
pub fn object_ref<K: Resource<DynamicType = ()>>(key: &str) -> Option<ObjectRef<K>> {
    let mut parts = key.splitn(3, '/');
    let (kind, namespace, name) = (parts.next()?, parts.next()?, parts.next()?);
    if kind != K::kind(&()) || name.is_empty() {
        return None;
    }
    Some(object_at(namespace, name))
}

/// An object's reference from its namespace (empty for cluster-scoped kinds) and name.
pub fn object_at<K: Resource<DynamicType = ()>>(namespace: &str, name: &str) -> ObjectRef<K> {
    let at = ObjectRef::new(name);
    if namespace.is_empty() {
        at
    } else {
        at.within(namespace)
    }
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
    /// Where Events go (used only by [`super::events`]).
    pub events: super::events::EventSink,
    /// Back-off of transient failures per object.
    pub backoff: backoff::Backoff,
    /// Provider probes that succeeded.
    pub provider_probes: ProbeCache<crate::exchange::ProviderOutcome>,
    /// Service-account authentications that succeeded.
    pub account_probes: ProbeCache<()>,
    /// Mailbox verifications that succeeded, with when they ran.
    pub mailbox_probes: ProbeCache<binding::Confirmed>,
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
        stores.index.publish_to(metrics.clone());
        // From now on deletions are recorded for `forget_deleted`.
        stores.index.take_deleted();
        let every = config.reverify_interval;
        Context {
            events: super::events::EventSink::new(client.clone(), &config.identity),
            client,
            backend,
            config,
            metrics,
            stores,
            backoff: backoff::Backoff::default(),
            provider_probes: ProbeCache::new(every),
            account_probes: ProbeCache::new(every),
            mailbox_probes: ProbeCache::new(every),
            rotated_tokens: rotation::RotatedTokens::default(),
        }
    }
}

impl Context {
    /// Forget what was remembered of objects deleted since the last call (probe results,
    /// back-off), so memory follows the objects that exist.
    pub fn forget_deleted(&self) {
        for key in self.stores.index.take_deleted() {
            self.backoff.reset(&key);
            self.provider_probes.forget(&key);
            self.account_probes.forget(&key);
            self.mailbox_probes.forget(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_key_names_its_object_again() {
        let b: MailboxBinding = serde_json::from_value(json!({
            "apiVersion": "mailops.dev/v1alpha1", "kind": "MailboxBinding",
            "metadata": {"name": "a", "namespace": "team"},
            "spec": {"emailAddress": "a@contoso.com", "authentication": {}},
        }))
        .unwrap();
        let at = object_ref::<MailboxBinding>(&object_key(&b)).expect("a binding's key");
        assert_eq!(at, ObjectRef::from_obj(&b));
        let p: EmailProvider = serde_json::from_value(json!({
            "apiVersion": "mailops.dev/v1alpha1", "kind": "EmailProvider",
            "metadata": {"name": "a"},
            "spec": {"serviceType": "Exchange", "serviceAddress": "mail.contoso.com",
                     "authentication": {"method": "Basic"}},
        }))
        .unwrap();
        let at = object_ref::<EmailProvider>(&object_key(&p)).expect("a provider's key");
        assert_eq!(at, ObjectRef::from_obj(&p));
        assert_eq!(at.namespace, None);
        assert!(
            object_ref::<EmailProvider>(&object_key(&b)).is_none(),
            "another kind"
        );
        assert!(object_ref::<EmailProvider>("EmailProvider").is_none());
        assert!(object_ref::<EmailProvider>("EmailProvider//").is_none());
    }
}
