//! Which objects to reconcile again when something they depend on changes, computed from
//! the caches (never a LIST), and the channels that take those triggers to the three
//! controllers. The cache's watch pumps tell this module of each event ([`sinks`]).
//!
//! Each watch event is mapped twice, for the object as it was (from the cache, before the
//! event is applied) and as it is, so that a binding moving from provider A to B
//! re-reconciles both, and a deleted user releases what it held.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::api::condition::{Condition, Word};
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use kube::{Resource, ResourceExt};

use super::gate::Gate;
use super::reconciled::Reconciled;
use super::status_writer::HasConditions;
use crate::api::conditions;
use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use crate::cache::watch::{self, Cached, Sink, Sinks};
use crate::cache::{BindingKey, ConfigMapMeta, Guarded, SecretMeta, Stores};
use crate::resolve::email_domain;

/// Objects to reconcile again, per controller.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Triggers {
    /// Provider names.
    pub providers: BTreeSet<String>,
    /// Service account names.
    pub service_accounts: BTreeSet<String>,
    /// Bindings as `(namespace, name)`.
    pub bindings: BTreeSet<BindingKey>,
}

impl Triggers {
    fn merge(&mut self, other: Triggers) {
        self.providers.extend(other.providers);
        self.service_accounts.extend(other.service_accounts);
        self.bindings.extend(other.bindings);
    }

    /// Drop the object itself (it need not run again for its own status write).
    fn remove<K: Triggered>(&mut self, o: &K) {
        let name = o.name_any();
        match K::KIND_OF_TRIGGER {
            Trigger::Provider => self.providers.remove(&name),
            Trigger::ServiceAccount => self.service_accounts.remove(&name),
            Trigger::Binding => self
                .bindings
                .remove(&(o.namespace().unwrap_or_default(), name)),
            Trigger::None => false,
        };
    }

    fn add_binding(&mut self, b: &Guarded<MailboxBinding>) {
        self.bindings
            .insert((b.namespace().unwrap_or_default(), b.name_any()));
    }
}

/// A provider changed: itself, its service accounts, and every binding that names it,
/// is attached to it, or would find it by domain.
pub fn for_provider(p: &Guarded<EmailProvider>, stores: &Stores) -> Triggers {
    let mut t = Triggers::default();
    let name = p.name_any();
    t.providers.insert(name.clone());
    let Ok(provider) = &p.0 else { return t };
    let index = &stores.index;
    t.service_accounts.extend(index.accounts_of_provider(&name));
    t.bindings.extend(index.attached_to_provider(&name));
    t.bindings
        .extend(index.resolving_to_provider(&name, &provider.spec.domains));
    t
}

/// A service account changed: itself, its provider, and the bindings that name it or
/// are attached through it.
pub fn for_service_account(a: &Guarded<ExchangeServiceAccount>, stores: &Stores) -> Triggers {
    let mut t = Triggers::default();
    let name = a.name_any();
    t.service_accounts.insert(name.clone());
    let Ok(account) = &a.0 else { return t };
    t.providers
        .insert(account.spec.provider_ref.name.to_string());
    t.bindings.extend(stores.index.naming_account(&name));
    t.bindings.extend(stores.index.attached_to_account(&name));
    t
}

/// A binding changed: itself, the providers it names, is attached to or finds by domain
/// (their counts and deletion), and the service accounts it names or is attached to.
pub fn for_binding(b: &Guarded<MailboxBinding>, stores: &Stores) -> Triggers {
    let mut t = Triggers::default();
    t.add_binding(b);
    let Ok(binding) = &b.0 else { return t };
    if let Some(p) = binding.status.as_ref().and_then(|s| s.provider.as_deref()) {
        t.providers.insert(p.to_string());
    }
    match &binding.spec.provider_ref {
        Some(r) => {
            t.providers.insert(r.name.to_string());
        }
        None => {
            if let Some(domain) = email_domain(&binding.spec.email_address) {
                t.providers.extend(stores.index.providers_serving(&domain));
            }
        }
    }
    if let Some(r) = &binding.spec.authentication.service_account_ref {
        t.service_accounts.insert(r.name.to_string());
    }
    if let Some(a) = binding.attached_service_account() {
        t.service_accounts.insert(a.to_string());
    }
    t
}

/// A Secret changed: whatever reads it, and the bindings whose credentials come from it
/// through their provider or service account. A provider's Secret (its app's client
/// secret, which accounts without their own credentials use too, or its CA bundle, which
/// all of them are verified under) reaches the provider's accounts and bindings.
pub fn for_secret(s: &SecretMeta, stores: &Stores) -> Triggers {
    let mut t = Triggers::default();
    let key = (s.namespace().unwrap_or_default(), s.name_any());
    let (providers, accounts, own) = stores.index.readers_of_secret(&key);
    t.bindings.extend(own);
    for a in &accounts {
        t.bindings.extend(stores.index.naming_account(a));
    }
    t.service_accounts.extend(accounts);
    t.merge(providers_and_users(providers, stores));
    t
}

/// A ConfigMap changed: the providers whose CA bundle it holds, their accounts and the
/// bindings attached to them (all verified under that bundle).
pub fn for_config_map(c: &ConfigMapMeta, stores: &Stores) -> Triggers {
    let key = (c.namespace().unwrap_or_default(), c.name_any());
    providers_and_users(stores.index.readers_of_config_map(&key), stores)
}

/// Providers, their service accounts and the bindings attached to them.
fn providers_and_users(providers: Vec<String>, stores: &Stores) -> Triggers {
    let mut t = Triggers::default();
    for p in &providers {
        t.service_accounts
            .extend(stores.index.accounts_of_provider(p));
        t.bindings.extend(stores.index.attached_to_provider(p));
    }
    t.providers.extend(providers);
    t
}

/// A Namespace changed (labels decide admission): the bindings in it.
pub fn for_namespace(n: &Namespace, stores: &Stores) -> Triggers {
    let mut t = Triggers::default();
    t.bindings.extend(stores.index.in_namespace(&n.name_any()));
    t
}

/// Everything of every kind (after a re-list, when the previous state is unknown).
pub fn everything(stores: &Stores) -> Triggers {
    let mut t = Triggers::default();
    t.providers
        .extend(stores.providers.state().iter().map(|p| p.name_any()));
    t.service_accounts
        .extend(stores.service_accounts.state().iter().map(|a| a.name_any()));
    for b in stores.bindings.state() {
        t.add_binding(&b);
    }
    t
}

/// Senders to the three controllers. Inactive until this replica leads: a standby keeps
/// its caches warm but queues nothing, and on activation everything is sent once.
#[derive(Clone)]
pub struct Senders {
    active: Arc<AtomicBool>,
    providers: UnboundedSender<ObjectRef<Guarded<EmailProvider>>>,
    service_accounts: UnboundedSender<ObjectRef<Guarded<ExchangeServiceAccount>>>,
    bindings: Arc<Gate>,
}

/// Receivers of the three controllers.
pub struct Receivers {
    /// Provider triggers.
    pub providers: UnboundedReceiver<ObjectRef<Guarded<EmailProvider>>>,
    /// Service account triggers.
    pub service_accounts: UnboundedReceiver<ObjectRef<Guarded<ExchangeServiceAccount>>>,
    /// Binding triggers.
    pub bindings: Arc<Gate>,
}

/// How many bindings may be in their controller at once (queued or reconciling): enough
/// to keep its 16 reconciles busy.
pub const BINDINGS_ROOM: usize = 64;

/// One entrance per controller. Providers and accounts: unbounded channels, as they are
/// few and their settle window must see every trigger (a bounded one could stall a watch
/// behind a slow reconcile). Bindings: a [`Gate`], as they come in waves of thousands.
pub fn channels() -> (Senders, Receivers) {
    let (p, pr) = unbounded();
    let (a, ar) = unbounded();
    let gate = Gate::new(BINDINGS_ROOM);
    (
        Senders {
            active: Arc::new(AtomicBool::new(false)),
            providers: p,
            service_accounts: a,
            bindings: gate.clone(),
        },
        Receivers {
            providers: pr,
            service_accounts: ar,
            bindings: gate,
        },
    )
}

impl Senders {
    /// Start sending, beginning with every cached object.
    pub fn activate(&self, stores: &Stores) {
        self.active.store(true, Ordering::SeqCst);
        self.send(everything(stores));
    }

    /// Send triggers; a closed channel means that controller has stopped.
    pub fn send(&self, t: Triggers) {
        if !self.active.load(Ordering::SeqCst) {
            return;
        }
        for name in t.providers {
            let _ = self.providers.unbounded_send(ObjectRef::new(&name));
        }
        for name in t.service_accounts {
            let _ = self.service_accounts.unbounded_send(ObjectRef::new(&name));
        }
        for key in t.bindings {
            self.bindings.offer(key);
        }
    }
}

/// How much a watch update matters to the controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relevance {
    /// Nothing anyone reads changed (our own status details, a Secret's labels).
    Nothing,
    /// Only what others depend on changed (a `Ready`, an attachment): the object itself
    /// need not run again for its own status write.
    OthersOnly,
    /// Its spec or lifecycle changed.
    Everything,
}

/// Which controller an object of a kind is itself reconciled by, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The provider controller.
    Provider,
    /// The service-account controller.
    ServiceAccount,
    /// The binding controller.
    Binding,
    /// None (Secrets and Namespaces only trigger others).
    None,
}

/// A watched kind as the controllers see it: what its changes trigger and how much an
/// update matters.
pub trait Triggered: Cached {
    /// The controller that reconciles the object itself.
    const KIND_OF_TRIGGER: Trigger;
    /// The objects to reconcile again when this one changes.
    fn triggers(&self, stores: &Stores) -> Triggers;
    /// How much an update from `old` to `new` matters.
    fn relevance(old: &Self, new: &Self) -> Relevance;
}

impl Triggered for Guarded<EmailProvider> {
    const KIND_OF_TRIGGER: Trigger = Trigger::Provider;
    fn triggers(&self, stores: &Stores) -> Triggers {
        for_provider(self, stores)
    }
    fn relevance(old: &Self, new: &Self) -> Relevance {
        provider_or_account_relevance(old, new)
    }
}

impl Triggered for Guarded<ExchangeServiceAccount> {
    const KIND_OF_TRIGGER: Trigger = Trigger::ServiceAccount;
    fn triggers(&self, stores: &Stores) -> Triggers {
        for_service_account(self, stores)
    }
    fn relevance(old: &Self, new: &Self) -> Relevance {
        provider_or_account_relevance(old, new)
    }
}

impl Triggered for Guarded<MailboxBinding> {
    const KIND_OF_TRIGGER: Trigger = Trigger::Binding;
    fn triggers(&self, stores: &Stores) -> Triggers {
        for_binding(self, stores)
    }
    fn relevance(old: &Self, new: &Self) -> Relevance {
        binding_relevance(old, new)
    }
}

impl Triggered for SecretMeta {
    const KIND_OF_TRIGGER: Trigger = Trigger::None;
    fn triggers(&self, stores: &Stores) -> Triggers {
        for_secret(self, stores)
    }
    fn relevance(old: &Self, new: &Self) -> Relevance {
        secret_relevance(old, new)
    }
}

impl Triggered for ConfigMapMeta {
    const KIND_OF_TRIGGER: Trigger = Trigger::None;
    fn triggers(&self, stores: &Stores) -> Triggers {
        for_config_map(self, stores)
    }
    fn relevance(old: &Self, new: &Self) -> Relevance {
        version_relevance(&old.metadata, &new.metadata)
    }
}

impl Triggered for Namespace {
    const KIND_OF_TRIGGER: Trigger = Trigger::None;
    fn triggers(&self, stores: &Stores) -> Triggers {
        for_namespace(self, stores)
    }
    fn relevance(old: &Self, new: &Self) -> Relevance {
        namespace_relevance(old, new)
    }
}

/// Apply one watch event to a cache and its index ([`watch::apply`]), and compute the
/// triggers it causes. The tests feed events through this, as the pumps do.
pub fn observe<K: Triggered>(
    writer: &mut Writer<K>,
    stores: &Stores,
    event: &Event<K>,
) -> Triggers {
    let old = watch::apply(writer, stores, event);
    triggers_of(event, old.as_deref(), stores)
}

/// The triggers an event causes, from the object as it was and as it is.
pub fn triggers_of<K: Triggered>(event: &Event<K>, old: Option<&K>, stores: &Stores) -> Triggers {
    let mut t = Triggers::default();
    let how = match (event, old) {
        (Event::Apply(o), Some(old)) => K::relevance(old, o),
        _ => Relevance::Everything,
    };
    match event {
        Event::Apply(o) | Event::Delete(o) if how != Relevance::Nothing => {
            t.merge(o.triggers(stores));
            if let Some(old) = old {
                t.merge(old.triggers(stores));
            }
            if how == Relevance::OthersOnly {
                t.remove(o);
            }
        }
        Event::InitDone => t = everything(stores),
        _ => {}
    }
    t
}

/// What the cache's pumps tell the controllers: each event's triggers, sent.
pub fn sinks(stores: &Stores, senders: &Senders) -> Sinks {
    fn sink<K: Triggered>(stores: &Stores, senders: &Senders) -> Sink<K> {
        let (stores, senders) = (stores.clone(), senders.clone());
        Box::new(move |event, old| senders.send(triggers_of(event, old.as_deref(), &stores)))
    }
    Sinks {
        providers: sink(stores, senders),
        service_accounts: sink(stores, senders),
        bindings: sink(stores, senders),
        secrets: sink(stores, senders),
        config_maps: sink(stores, senders),
        namespaces: sink(stores, senders),
    }
}

/// `Ready` as bindings see it: its verdict and the generation it is about (a binding
/// waits for a verdict on the provider's current generation).
fn ready_of(c: Option<&[Condition]>) -> Option<(Word, Word, Option<i64>)> {
    c.and_then(|c| conditions::find(c, conditions::READY))
        .map(|c| (c.status.clone(), c.reason.clone(), c.generation()))
}

/// Metadata every controller acts on: spec generation, deletion and finalizers.
fn same_lifecycle<K: Resource>(old: &K, new: &K) -> bool {
    let (o, n) = (old.meta(), new.meta());
    o.generation == n.generation
        && o.deletion_timestamp == n.deletion_timestamp
        && o.finalizers == n.finalizers
}

/// A provider or account update: its spec or lifecycle matters to all; its `Ready`
/// (which gates bindings) only to its dependents; its counts, messages and timestamps
/// (our own status writes) to nobody.
pub fn provider_or_account_relevance<K: Reconciled>(
    old: &Guarded<K>,
    new: &Guarded<K>,
) -> Relevance {
    let (Ok(o), Ok(n)) = (&old.0, &new.0) else {
        return Relevance::Everything;
    };
    let ready = |k: &K| ready_of(k.current_status().map(|s| s.conditions()));
    if !same_lifecycle(o, n) {
        Relevance::Everything
    } else if ready(o) != ready(n) {
        Relevance::OthersOnly
    } else {
        Relevance::Nothing
    }
}

/// A binding update: its spec or lifecycle matters to all; its attachment
/// (`status.provider`, `authenticatedVia`, `serviceAccount`) to the provider and account
/// that count it; the rest of its status to nobody.
pub fn binding_relevance(
    old: &Guarded<MailboxBinding>,
    new: &Guarded<MailboxBinding>,
) -> Relevance {
    let (Ok(o), Ok(n)) = (&old.0, &new.0) else {
        return Relevance::Everything;
    };
    let attachment = |b: &MailboxBinding| {
        b.status.as_ref().map(|s| {
            (
                s.provider.clone(),
                s.authenticated_via,
                s.service_account.clone(),
            )
        })
    };
    if !same_lifecycle(o, n) {
        Relevance::Everything
    } else if attachment(o) != attachment(n) {
        Relevance::OthersOnly
    } else {
        Relevance::Nothing
    }
}

/// Any new version of a Secret may be new data (only its metadata is watched): its readers
/// look, and a reader whose credentials read the same as before neither probes again nor
/// writes (its probe inputs digest the values, not the version).
fn secret_relevance(old: &SecretMeta, new: &SecretMeta) -> Relevance {
    version_relevance(&old.metadata, &new.metadata)
}

/// A new version of a Secret or ConfigMap watched as metadata: it may hold new data.
fn version_relevance(old: &ObjectMeta, new: &ObjectMeta) -> Relevance {
    if old.resource_version == new.resource_version {
        Relevance::Nothing
    } else {
        Relevance::Everything
    }
}

/// Only a Namespace's labels matter (admission by selector).
fn namespace_relevance(old: &Namespace, new: &Namespace) -> Relevance {
    if old.metadata.labels == new.metadata.labels {
        Relevance::Nothing
    } else {
        Relevance::Everything
    }
}
