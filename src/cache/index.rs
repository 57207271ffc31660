//! Indexes over the caches, kept up to date from the watch events, so that a trigger, a
//! count or an `InUse` list costs O(users of that object), never O(all bindings): which
//! bindings are attached to, name or would resolve (by domain) to a provider; which are
//! attached through or name a service account; which read a Secret; which live in a
//! namespace; and how many objects of each kind are Ready (the `mailops_objects` gauge).
//!
//! Each object's entry is remembered, so an update removes exactly what the object as it
//! was contributed, whatever the cache holds by then. A re-list rebuilds the kind's part.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use kube::ResourceExt;

use super::guard::Guarded;
use crate::api::conditions::{self, READY};
use crate::api::{BundleObject, EmailProvider, ExchangeServiceAccount, MailboxBinding};
use crate::metrics::Metrics;
use crate::resolve::email_domain;

pub use super::keys::{BindingKey, ConfigMapKey, SecretKey};

/// `Ready` of an object, for the gauge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadyState {
    /// `Ready=True`.
    True,
    /// `Ready=False`.
    False,
    /// No `Ready` condition yet, or the object cannot be read.
    #[default]
    Unknown,
}

impl ReadyState {
    fn of(conds: Option<&[crate::api::condition::Condition]>) -> Self {
        match conds
            .and_then(|c| conditions::find(c, READY))
            .map(|c| c.status.as_str())
        {
            Some("True") => ReadyState::True,
            Some("False") => ReadyState::False,
            _ => ReadyState::Unknown,
        }
    }
}

/// A provider, account or domain name as the binding entries hold it: one allocation per
/// name, shared by every entry that holds it (the key of its set), not one per binding.
type Name = Arc<str>;

/// What one binding contributes to the indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct BindingEntry {
    attached_provider: Option<Name>,
    named_provider: Option<Name>,
    /// Lower-cased domain, for bindings that resolve by domain (no `providerRef`).
    domain: Option<Name>,
    attached_account: Option<Name>,
    named_account: Option<Name>,
    /// Boxed: most bindings read none (they go through a service account).
    own_secret: Option<Box<SecretKey>>,
    ready: ReadyState,
}

/// What one provider contributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ProviderEntry {
    domains: Vec<String>,
    /// Its app's client secret and the Secret of its CA bundle.
    secrets: Vec<SecretKey>,
    /// The ConfigMap of its CA bundle.
    config_map: Option<ConfigMapKey>,
    ready: ReadyState,
}

/// What one service account contributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct AccountEntry {
    provider: Option<String>,
    secrets: Vec<SecretKey>,
    ready: ReadyState,
}

type Multi<K, V> = HashMap<K, BTreeSet<V>>;

/// A binding key shared by every set that holds it: one allocation per binding, not one
/// per index (10,000 bindings sit in five of them).
type Shared = Arc<BindingKey>;

fn link<K: std::hash::Hash + Eq, V: Ord>(m: &mut Multi<K, V>, k: Option<K>, v: V) {
    if let Some(k) = k {
        m.entry(k).or_default().insert(v);
    }
}

fn unlink<K: std::hash::Hash + Eq, V: Ord>(m: &mut Multi<K, V>, k: Option<K>, v: &V) {
    if let Some(k) = k
        && let Some(set) = m.get_mut(&k)
    {
        set.remove(v);
        if set.is_empty() {
            m.remove(&k);
        }
    }
}

#[derive(Default)]
struct Inner {
    bindings: HashMap<Shared, BindingEntry>,
    providers: HashMap<String, ProviderEntry>,
    accounts: HashMap<String, AccountEntry>,
    attached_to_provider: Multi<Name, Shared>,
    naming_provider: Multi<Name, Shared>,
    in_domain: Multi<Name, Shared>,
    attached_to_account: Multi<Name, Shared>,
    naming_account: Multi<Name, Shared>,
    reading_secret: Multi<SecretKey, Shared>,
    in_namespace: Multi<String, Shared>,
    accounts_of_provider: Multi<String, String>,
    providers_serving: Multi<String, String>,
    providers_reading: Multi<SecretKey, String>,
    providers_reading_config_map: Multi<ConfigMapKey, String>,
    accounts_reading: Multi<SecretKey, String>,
    /// Objects by kind (provider, account, binding) and `Ready` (True, False, Unknown).
    ready: [[i64; 3]; 3],
    /// Object keys (as [`crate::cache::object_key`]) deleted since last drained; `None`
    /// until a reconciling replica drains them (a standby would only pile them up).
    deleted: Option<Vec<String>>,
}

const PROVIDERS: usize = 0;
const ACCOUNTS: usize = 1;
const BINDINGS: usize = 2;

fn slot(r: ReadyState) -> usize {
    match r {
        ReadyState::True => 0,
        ReadyState::False => 1,
        ReadyState::Unknown => 2,
    }
}

/// The indexes, shared by the pumps (writers) and the reconciles (readers).
#[derive(Default)]
pub struct Index {
    inner: Mutex<Inner>,
    gauge: OnceLock<Arc<Metrics>>,
}

fn binding_entry(b: &MailboxBinding) -> BindingEntry {
    let status = b.status.as_ref();
    let named_provider: Option<Name> = b.spec.provider_ref.as_ref().map(|r| r.name.clone());
    BindingEntry {
        attached_provider: status.and_then(|s| s.provider.as_deref()).map(Name::from),
        domain: named_provider
            .is_none()
            .then(|| email_domain(&b.spec.email_address).map(|d| d.to_ascii_lowercase().into()))
            .flatten(),
        named_provider,
        attached_account: b.attached_service_account().map(Name::from),
        named_account: (b.spec.authentication.service_account_ref.as_ref()).map(|r| r.name.clone()),
        own_secret: secret_of_binding(b).map(Box::new),
        ready: ReadyState::of(status.map(|s| s.conditions.as_slice())),
    }
}

/// The Secret a binding reads its own credentials from, if it names one.
pub fn secret_of_binding(b: &MailboxBinding) -> Option<SecretKey> {
    let r = b.spec.authentication.credentials_secret_ref.as_ref()?;
    Some((b.namespace().unwrap_or_default(), r.name.clone()))
}

/// The Secret a provider's own app registration reads its client secret from.
pub fn secret_of_provider(p: &EmailProvider) -> Option<SecretKey> {
    let r = &p.spec.authentication.oauth2.as_ref()?.client_secret_ref;
    Some((r.namespace.clone(), r.name.clone()))
}

/// The Secrets a provider reads: its app's client secret, and the Secret its CA bundle
/// comes from (`spec.tls.caBundleFrom.secretKeyRef`).
pub fn secrets_of_provider(p: &EmailProvider) -> Vec<SecretKey> {
    let bundle = match bundle_of_provider(p) {
        Some((BundleObject::Secret, key)) => Some(key),
        _ => None,
    };
    secret_of_provider(p).into_iter().chain(bundle).collect()
}

/// The ConfigMap a provider's CA bundle comes from (`caBundleFrom.configMapKeyRef`).
pub fn config_map_of_provider(p: &EmailProvider) -> Option<ConfigMapKey> {
    match bundle_of_provider(p)? {
        (BundleObject::ConfigMap, key) => Some(key),
        (BundleObject::Secret, _) => None,
    }
}

/// The object a provider's CA bundle comes from (`spec.tls.caBundleFrom`), if any.
pub fn bundle_of_provider(p: &EmailProvider) -> Option<(BundleObject, (String, String))> {
    let (object, r) = p.spec.tls.as_ref()?.referenced_bundle()?;
    Some((object, (r.namespace.clone(), r.name.clone())))
}

/// The Secrets a service account reads its own credentials from.
pub fn secrets_of_account(a: &ExchangeServiceAccount) -> Vec<SecretKey> {
    let creds = a.spec.credentials.as_ref();
    let oauth = creds.and_then(|c| c.oauth2.as_ref()).map(|o| {
        let r = &o.client_secret_ref;
        (r.namespace.clone(), r.name.clone())
    });
    let basic = creds.and_then(|c| c.basic.as_ref()).map(|b| {
        let r = &b.secret_ref;
        (r.namespace.clone(), r.name.clone())
    });
    oauth.into_iter().chain(basic).collect()
}

fn provider_entry(p: &EmailProvider) -> ProviderEntry {
    ProviderEntry {
        domains: p
            .spec
            .domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
        secrets: secrets_of_provider(p),
        config_map: config_map_of_provider(p),
        ready: ReadyState::of(p.status.as_ref().map(|s| s.conditions.as_slice())),
    }
}

fn account_entry(a: &ExchangeServiceAccount) -> AccountEntry {
    AccountEntry {
        provider: Some(a.spec.provider_ref.name.to_string()),
        secrets: secrets_of_account(a),
        ready: ReadyState::of(a.status.as_ref().map(|s| s.conditions.as_slice())),
    }
}

impl Inner {
    fn unlink_binding(&mut self, key: &Shared, e: &BindingEntry) {
        unlink(
            &mut self.attached_to_provider,
            e.attached_provider.clone(),
            key,
        );
        unlink(&mut self.naming_provider, e.named_provider.clone(), key);
        unlink(&mut self.in_domain, e.domain.clone(), key);
        unlink(
            &mut self.attached_to_account,
            e.attached_account.clone(),
            key,
        );
        unlink(&mut self.naming_account, e.named_account.clone(), key);
        unlink(
            &mut self.reading_secret,
            e.own_secret.as_deref().cloned(),
            key,
        );
        unlink(&mut self.in_namespace, Some(key.0.clone()), key);
    }

    fn link_binding(&mut self, key: &Shared, e: &BindingEntry) {
        link(
            &mut self.attached_to_provider,
            e.attached_provider.clone(),
            key.clone(),
        );
        link(
            &mut self.naming_provider,
            e.named_provider.clone(),
            key.clone(),
        );
        link(&mut self.in_domain, e.domain.clone(), key.clone());
        link(
            &mut self.attached_to_account,
            e.attached_account.clone(),
            key.clone(),
        );
        link(
            &mut self.naming_account,
            e.named_account.clone(),
            key.clone(),
        );
        link(
            &mut self.reading_secret,
            e.own_secret.as_deref().cloned(),
            key.clone(),
        );
        link(&mut self.in_namespace, Some(key.0.clone()), key.clone());
    }

    /// Hold each name of `e` by the allocation its set's key already has, when it has one.
    fn share_names(&self, e: &mut BindingEntry) {
        fn share(m: &Multi<Name, Shared>, name: &mut Option<Name>) {
            if let Some(n) = name
                && let Some((held, _)) = m.get_key_value(&**n)
            {
                *n = held.clone();
            }
        }
        share(&self.attached_to_provider, &mut e.attached_provider);
        share(&self.naming_provider, &mut e.named_provider);
        share(&self.in_domain, &mut e.domain);
        share(&self.attached_to_account, &mut e.attached_account);
        share(&self.naming_account, &mut e.named_account);
    }

    fn count(&mut self, kind: usize, old: Option<ReadyState>, new: Option<ReadyState>) {
        if let Some(old) = old {
            self.ready[kind][slot(old)] -= 1;
        }
        if let Some(new) = new {
            self.ready[kind][slot(new)] += 1;
        }
    }

    fn set_binding(&mut self, key: BindingKey, entry: Option<BindingEntry>) {
        let old = self.bindings.remove_entry(&key);
        self.count(
            BINDINGS,
            old.as_ref().map(|(_, e)| e.ready),
            entry.as_ref().map(|e| e.ready),
        );
        // Keep the one shared key the sets already hold.
        let shared = old
            .as_ref()
            .map_or_else(|| Arc::new(key), |(k, _)| k.clone());
        if let Some((_, old)) = &old {
            self.unlink_binding(&shared, old);
        }
        if let Some(mut new) = entry {
            self.share_names(&mut new);
            self.link_binding(&shared, &new);
            self.bindings.insert(shared, new);
        }
    }

    fn set_provider(&mut self, name: &str, entry: Option<ProviderEntry>) {
        let old = self.providers.remove(name);
        self.count(
            PROVIDERS,
            old.as_ref().map(|e| e.ready),
            entry.as_ref().map(|e| e.ready),
        );
        if let Some(old) = old {
            for d in old.domains {
                unlink(&mut self.providers_serving, Some(d), &name.to_string());
            }
            for s in old.secrets {
                unlink(&mut self.providers_reading, Some(s), &name.to_string());
            }
            unlink(
                &mut self.providers_reading_config_map,
                old.config_map,
                &name.to_string(),
            );
        }
        if let Some(new) = entry {
            for d in &new.domains {
                link(
                    &mut self.providers_serving,
                    Some(d.clone()),
                    name.to_string(),
                );
            }
            for s in &new.secrets {
                link(
                    &mut self.providers_reading,
                    Some(s.clone()),
                    name.to_string(),
                );
            }
            link(
                &mut self.providers_reading_config_map,
                new.config_map.clone(),
                name.to_string(),
            );
            self.providers.insert(name.to_string(), new);
        }
    }

    fn set_account(&mut self, name: &str, entry: Option<AccountEntry>) {
        let old = self.accounts.remove(name);
        self.count(
            ACCOUNTS,
            old.as_ref().map(|e| e.ready),
            entry.as_ref().map(|e| e.ready),
        );
        if let Some(old) = old {
            unlink(
                &mut self.accounts_of_provider,
                old.provider,
                &name.to_string(),
            );
            for s in old.secrets {
                unlink(&mut self.accounts_reading, Some(s), &name.to_string());
            }
        }
        if let Some(new) = entry {
            link(
                &mut self.accounts_of_provider,
                new.provider.clone(),
                name.to_string(),
            );
            for s in &new.secrets {
                link(
                    &mut self.accounts_reading,
                    Some(s.clone()),
                    name.to_string(),
                );
            }
            self.accounts.insert(name.to_string(), new);
        }
    }
}

fn binding_key(b: &Guarded<MailboxBinding>) -> BindingKey {
    (b.namespace().unwrap_or_default(), b.name_any())
}

fn names<V: Clone>(set: Option<&BTreeSet<V>>) -> Vec<V> {
    set.map(|s| s.iter().cloned().collect()).unwrap_or_default()
}

fn keys(set: Option<&BTreeSet<Shared>>) -> Vec<BindingKey> {
    sample(set, usize::MAX).1
}

/// The size of a set and its first `n` keys.
fn sample(set: Option<&BTreeSet<Shared>>, n: usize) -> (usize, Vec<BindingKey>) {
    set.map(|s| (s.len(), s.iter().take(n).map(|k| (**k).clone()).collect()))
        .unwrap_or_default()
}

#[path = "index_queries.rs"]
mod queries;
pub use queries::*;
