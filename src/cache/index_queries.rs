//! The index's write side (one call per watch event) and its queries.

use std::sync::Arc;

use super::*;
use crate::api::kind_label;
use crate::cache::keys::key_of;

fn kinds() -> [(usize, &'static str); 3] {
    [
        (PROVIDERS, kind_label::<EmailProvider>()),
        (ACCOUNTS, kind_label::<ExchangeServiceAccount>()),
        (BINDINGS, kind_label::<MailboxBinding>()),
    ]
}

const STATES: [&str; 3] = ["True", "False", "Unknown"];

/// A kind the index keeps: how an object enters it and leaves it.
pub trait Indexed: Sized {
    /// Record the object as it is now (replacing what it was).
    fn index(&self, index: &Index);
    /// The object is gone.
    fn unindex(&self, index: &Index);
    /// Rebuild this kind's part from a full list (after a re-list).
    fn reindex(all: &[Arc<Self>], index: &Index);
}

impl Index {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publish the `mailops_objects` gauge now and after every change.
    pub fn publish_to(&self, metrics: Arc<Metrics>) {
        let _ = self.gauge.set(metrics);
        let inner = self.lock();
        self.publish(&inner);
    }

    fn publish(&self, inner: &Inner) {
        let Some(metrics) = self.gauge.get() else {
            return;
        };
        for (i, kind) in kinds() {
            for (j, state) in STATES.iter().enumerate() {
                metrics.set_objects(kind, state, inner.ready[i][j]);
            }
        }
    }

    fn change(&self, f: impl FnOnce(&mut Inner)) {
        let mut inner = self.lock();
        f(&mut inner);
        self.publish(&inner);
    }

    /// Keys of deleted objects since the last call, for forgetting what was remembered.
    /// The first call starts the recording.
    pub fn take_deleted(&self) -> Vec<String> {
        self.lock().deleted.replace(Vec::new()).unwrap_or_default()
    }

    /// Bindings attached to (counted by) a provider.
    pub fn attached_to_provider(&self, provider: &str) -> Vec<BindingKey> {
        keys(self.lock().attached_to_provider.get(provider))
    }

    /// How many bindings are attached to a provider, and the first `n` of them by key:
    /// O(n), whatever the count (a provider's status is written while a wave attaches).
    pub fn attached_to_provider_sample(
        &self,
        provider: &str,
        n: usize,
    ) -> (usize, Vec<BindingKey>) {
        sample(self.lock().attached_to_provider.get(provider), n)
    }

    /// Bindings that name a provider or would find it by one of `domains`.
    pub fn resolving_to_provider<D: AsRef<str>>(
        &self,
        provider: &str,
        domains: &[D],
    ) -> Vec<BindingKey> {
        let inner = self.lock();
        let mut out = keys(inner.naming_provider.get(provider));
        for d in domains {
            out.extend(keys(
                inner
                    .in_domain
                    .get(d.as_ref().to_ascii_lowercase().as_str()),
            ));
        }
        out
    }

    /// Providers that list `domain`.
    pub fn providers_serving(&self, domain: &str) -> Vec<String> {
        names(
            self.lock()
                .providers_serving
                .get(&domain.to_ascii_lowercase()),
        )
    }

    /// Service accounts that name a provider.
    pub fn accounts_of_provider(&self, provider: &str) -> Vec<String> {
        names(self.lock().accounts_of_provider.get(provider))
    }

    /// Bindings attached through a service account.
    pub fn attached_to_account(&self, account: &str) -> Vec<BindingKey> {
        keys(self.lock().attached_to_account.get(account))
    }

    /// How many bindings are attached through a service account, and the first `n`.
    pub fn attached_to_account_sample(&self, account: &str, n: usize) -> (usize, Vec<BindingKey>) {
        sample(self.lock().attached_to_account.get(account), n)
    }

    /// Bindings that name a service account.
    pub fn naming_account(&self, account: &str) -> Vec<BindingKey> {
        keys(self.lock().naming_account.get(account))
    }

    /// Who reads a Secret: providers (app secret), accounts, bindings (own credentials).
    pub fn readers_of_secret(
        &self,
        secret: &SecretKey,
    ) -> (Vec<String>, Vec<String>, Vec<BindingKey>) {
        let inner = self.lock();
        (
            names(inner.providers_reading.get(secret)),
            names(inner.accounts_reading.get(secret)),
            keys(inner.reading_secret.get(secret)),
        )
    }

    /// Whether anything reads a Secret: a provider, an account or a binding.
    pub fn is_read(&self, secret: &SecretKey) -> bool {
        let inner = self.lock();
        inner.providers_reading.contains_key(secret)
            || inner.accounts_reading.contains_key(secret)
            || inner.reading_secret.contains_key(secret)
    }

    /// Providers whose CA bundle comes from a ConfigMap.
    pub fn readers_of_config_map(&self, config_map: &ConfigMapKey) -> Vec<String> {
        names(self.lock().providers_reading_config_map.get(config_map))
    }

    /// Whether a provider's CA bundle comes from a ConfigMap.
    pub fn is_config_map_read(&self, config_map: &ConfigMapKey) -> bool {
        (self.lock().providers_reading_config_map).contains_key(config_map)
    }

    /// The data of a Secret nobody reads was dropped: recorded with the deleted objects,
    /// so that what was remembered of it (a rotated token) is forgotten too.
    pub fn note_released(&self, secret: &SecretKey) {
        let key = key_of::<k8s_openapi::api::core::v1::Secret>(&secret.0, &secret.1);
        self.lock().note_deleted(key);
    }

    /// Bindings in a namespace.
    pub fn in_namespace(&self, namespace: &str) -> Vec<BindingKey> {
        keys(self.lock().in_namespace.get(namespace))
    }
}

impl Inner {
    fn note_deleted(&mut self, key: String) {
        if let Some(deleted) = self.deleted.as_mut() {
            deleted.push(key);
        }
    }
}

impl Indexed for Guarded<MailboxBinding> {
    fn index(&self, index: &Index) {
        let entry = self.0.as_ref().map(binding_entry).unwrap_or_default();
        index.change(|i| i.set_binding(binding_key(self), Some(entry)));
    }

    fn unindex(&self, index: &Index) {
        let key = binding_key(self);
        index.change(|i| {
            i.note_deleted(key_of::<MailboxBinding>(&key.0, &key.1));
            i.set_binding(key, None);
        });
    }

    fn reindex(all: &[Arc<Self>], index: &Index) {
        index.change(|i| {
            let keys: Vec<BindingKey> = i.bindings.keys().map(|k| (**k).clone()).collect();
            for k in keys {
                i.set_binding(k, None);
            }
            for b in all {
                let entry = b.0.as_ref().map(binding_entry).unwrap_or_default();
                i.set_binding(binding_key(b), Some(entry));
            }
        });
    }
}

impl Indexed for Guarded<EmailProvider> {
    fn index(&self, index: &Index) {
        let entry = self.0.as_ref().map(provider_entry).unwrap_or_default();
        index.change(|i| i.set_provider(&self.name_any(), Some(entry)));
    }

    fn unindex(&self, index: &Index) {
        let name = self.name_any();
        index.change(|i| {
            i.note_deleted(key_of::<EmailProvider>("", &name));
            i.set_provider(&name, None);
        });
    }

    fn reindex(all: &[Arc<Self>], index: &Index) {
        index.change(|i| {
            let keys: Vec<String> = i.providers.keys().cloned().collect();
            for k in keys {
                i.set_provider(&k, None);
            }
            for p in all {
                let entry = p.0.as_ref().map(provider_entry).unwrap_or_default();
                i.set_provider(&p.name_any(), Some(entry));
            }
        });
    }
}

impl Indexed for Guarded<ExchangeServiceAccount> {
    fn index(&self, index: &Index) {
        let entry = self.0.as_ref().map(account_entry).unwrap_or_default();
        index.change(|i| i.set_account(&self.name_any(), Some(entry)));
    }

    fn unindex(&self, index: &Index) {
        let name = self.name_any();
        index.change(|i| {
            i.note_deleted(key_of::<ExchangeServiceAccount>("", &name));
            i.set_account(&name, None);
        });
    }

    fn reindex(all: &[Arc<Self>], index: &Index) {
        index.change(|i| {
            let keys: Vec<String> = i.accounts.keys().cloned().collect();
            for k in keys {
                i.set_account(&k, None);
            }
            for a in all {
                let entry = a.0.as_ref().map(account_entry).unwrap_or_default();
                i.set_account(&a.name_any(), Some(entry));
            }
        });
    }
}

/// Secrets, ConfigMaps and Namespaces are looked up by their own key: nothing to index.
macro_rules! not_indexed {
    ($($t:ty),*) => {$(
        impl Indexed for $t {
            fn index(&self, _: &Index) {}
            fn unindex(&self, _: &Index) {}
            fn reindex(_: &[Arc<Self>], _: &Index) {}
        }
    )*};
}
not_indexed!(
    crate::cache::secrets::SecretMeta,
    crate::cache::secrets::ConfigMapMeta,
    k8s_openapi::api::core::v1::Namespace
);
