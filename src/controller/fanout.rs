//! Store-backed mappers: which objects to reconcile again when something they depend on
//! changes, computed from the caches (never a LIST), and the pumps that feed the caches
//! from the watches and send those triggers to the three controllers.
//!
//! Each watch event is mapped twice, for the object as it was (from the cache, before the
//! event is applied) and as it is, so that a binding moving from provider A to B
//! re-reconciles both, and a deleted user releases what it held.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as make_watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::warn;

use super::context::{Guarded, Stores, Writers};
use super::driver::Reconciled;
use super::status::HasConditions;
use super::usage::attached_to_provider;
use crate::api::conditions;
use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use crate::resolve::email_domain;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// Objects to reconcile again, per controller.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Triggers {
    /// Provider names.
    pub providers: BTreeSet<String>,
    /// Service account names.
    pub service_accounts: BTreeSet<String>,
    /// Bindings as `(namespace, name)`.
    pub bindings: BTreeSet<(String, String)>,
}

impl Triggers {
    fn merge(&mut self, other: Triggers) {
        self.providers.extend(other.providers);
        self.service_accounts.extend(other.service_accounts);
        self.bindings.extend(other.bindings);
    }

    fn add_binding(&mut self, b: &Guarded<MailboxBinding>) {
        self.bindings
            .insert((b.namespace().unwrap_or_default(), b.name_any()));
    }
}

fn bindings_where(stores: &Stores, t: &mut Triggers, pred: impl Fn(&MailboxBinding) -> bool) {
    for b in stores.bindings.state() {
        if b.0.as_ref().is_ok_and(&pred) {
            t.add_binding(&b);
        }
    }
}

/// A provider changed: itself, its service accounts, and every binding that names it,
/// is attached to it, or would find it by domain.
pub fn for_provider(p: &Guarded<EmailProvider>, stores: &Stores) -> Triggers {
    let mut t = Triggers::default();
    let name = p.name_any();
    t.providers.insert(name.clone());
    let Ok(provider) = &p.0 else { return t };
    for a in stores.service_accounts.state() {
        if a.0.as_ref().is_ok_and(|a| a.spec.provider_ref.name == name) {
            t.service_accounts.insert(a.name_any());
        }
    }
    bindings_where(stores, &mut t, |b| {
        attached_to_provider(b, &name)
            || match &b.spec.provider_ref {
                Some(r) => r.name == name,
                None => email_domain(&b.spec.email_address).is_some_and(|d| {
                    provider
                        .spec
                        .domains
                        .iter()
                        .any(|x| x.eq_ignore_ascii_case(&d))
                }),
            }
    });
    t
}

/// A service account changed: itself, its provider, and the bindings that name it.
pub fn for_service_account(a: &Guarded<ExchangeServiceAccount>, stores: &Stores) -> Triggers {
    let mut t = Triggers::default();
    let name = a.name_any();
    t.service_accounts.insert(name.clone());
    let Ok(account) = &a.0 else { return t };
    t.providers.insert(account.spec.provider_ref.name.clone());
    bindings_where(stores, &mut t, |b| {
        b.spec
            .authentication
            .service_account_ref
            .as_ref()
            .is_some_and(|r| r.name == name)
    });
    t
}

/// A binding changed: itself, the providers it names, is attached to or finds by domain
/// (their counts and deletion), and its service account.
pub fn for_binding(b: &Guarded<MailboxBinding>, stores: &Stores) -> Triggers {
    let mut t = Triggers::default();
    t.add_binding(b);
    let Ok(binding) = &b.0 else { return t };
    if let Some(p) = binding.status.as_ref().and_then(|s| s.provider.clone()) {
        t.providers.insert(p);
    }
    match &binding.spec.provider_ref {
        Some(r) => {
            t.providers.insert(r.name.clone());
        }
        None => {
            if let Some(domain) = email_domain(&binding.spec.email_address) {
                for p in stores.providers.state() {
                    if p.0.as_ref().is_ok_and(|p| {
                        p.spec
                            .domains
                            .iter()
                            .any(|d| d.eq_ignore_ascii_case(&domain))
                    }) {
                        t.providers.insert(p.name_any());
                    }
                }
            }
        }
    }
    if let Some(r) = &binding.spec.authentication.service_account_ref {
        t.service_accounts.insert(r.name.clone());
    }
    t
}

/// A Secret changed: whatever reads it, and the bindings whose credentials come from it
/// through their provider or service account.
pub fn for_secret(s: &Secret, stores: &Stores) -> Triggers {
    let mut t = Triggers::default();
    let (ns, name) = (s.namespace().unwrap_or_default(), s.name_any());
    let is_it = |rns: &str, rname: &str| rns == ns && rname == name;
    for p in stores.providers.state() {
        let Ok(provider) = &p.0 else { continue };
        if let Some(o) = &provider.spec.authentication.oauth2
            && is_it(&o.client_secret_ref.namespace, &o.client_secret_ref.name)
        {
            t.providers.insert(p.name_any());
        }
    }
    for a in stores.service_accounts.state() {
        let Ok(account) = &a.0 else { continue };
        let creds = account.spec.credentials.as_ref();
        let oauth = creds
            .and_then(|c| c.oauth2.as_ref())
            .is_some_and(|o| is_it(&o.client_secret_ref.namespace, &o.client_secret_ref.name));
        let basic = creds
            .and_then(|c| c.basic.as_ref())
            .is_some_and(|b| is_it(&b.secret_ref.namespace, &b.secret_ref.name));
        if oauth || basic {
            t.service_accounts.insert(a.name_any());
        }
    }
    let (providers, accounts) = (t.providers.clone(), t.service_accounts.clone());
    bindings_where(stores, &mut t, |b| {
        let own = b.namespace().as_deref() == Some(ns.as_str())
            && b.spec
                .authentication
                .credentials_secret_ref
                .as_ref()
                .is_some_and(|r| r.name == name);
        let via_provider = b
            .status
            .as_ref()
            .and_then(|s| s.provider.as_ref())
            .is_some_and(|p| providers.contains(p));
        let via_account = b
            .spec
            .authentication
            .service_account_ref
            .as_ref()
            .is_some_and(|r| accounts.contains(&r.name));
        own || via_provider || via_account
    });
    t
}

/// A Namespace changed (labels decide admission): the bindings in it.
pub fn for_namespace(n: &Namespace, stores: &Stores) -> Triggers {
    let mut t = Triggers::default();
    let name = n.name_any();
    for b in stores.bindings.state() {
        if b.namespace().as_deref() == Some(name.as_str()) {
            t.add_binding(&b);
        }
    }
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
    bindings: UnboundedSender<ObjectRef<Guarded<MailboxBinding>>>,
}

/// Receivers of the three controllers.
pub struct Receivers {
    /// Provider triggers.
    pub providers: UnboundedReceiver<ObjectRef<Guarded<EmailProvider>>>,
    /// Service account triggers.
    pub service_accounts: UnboundedReceiver<ObjectRef<Guarded<ExchangeServiceAccount>>>,
    /// Binding triggers.
    pub bindings: UnboundedReceiver<ObjectRef<Guarded<MailboxBinding>>>,
}

/// One channel per controller. Unbounded because the scheduler behind each receiver
/// de-duplicates, and a bounded channel could stall a watch behind a slow reconcile.
pub fn channels() -> (Senders, Receivers) {
    let (p, pr) = unbounded();
    let (a, ar) = unbounded();
    let (b, br) = unbounded();
    (
        Senders {
            active: Arc::new(AtomicBool::new(false)),
            providers: p,
            service_accounts: a,
            bindings: b,
        },
        Receivers {
            providers: pr,
            service_accounts: ar,
            bindings: br,
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
        for (ns, name) in t.bindings {
            let _ = self
                .bindings
                .unbounded_send(ObjectRef::new(&name).within(&ns));
        }
    }
}

/// Apply one watch event to a cache and compute the triggers it causes, from the object
/// as it was and as it is.
pub fn apply_event<K>(
    writer: &mut Writer<K>,
    reader: &Store<K>,
    stores: &Stores,
    event: &Event<K>,
    map: fn(&K, &Stores) -> Triggers,
    unchanged: fn(&K, &K) -> bool,
) -> Triggers
where
    K: Resource<DynamicType = ()> + Clone,
{
    let old = match event {
        Event::Apply(o) | Event::Delete(o) => reader.get(&ObjectRef::from_obj(o)),
        _ => None,
    };
    writer.apply_watcher_event(event);
    let mut t = Triggers::default();
    match event {
        Event::Apply(o) if old.as_deref().is_some_and(|old| unchanged(old, o)) => {}
        Event::Apply(o) | Event::Delete(o) => {
            t.merge(map(o, stores));
            if let Some(old) = old {
                t.merge(map(&old, stores));
            }
        }
        Event::InitDone => t = everything(stores),
        Event::Init | Event::InitApply(_) => {}
    }
    t
}

fn ready_of(c: Option<&[Condition]>) -> Option<(String, String)> {
    c.and_then(|c| conditions::find(c, conditions::READY))
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Metadata every controller acts on: spec generation, deletion and finalizers.
fn same_lifecycle<K: Resource>(old: &K, new: &K) -> bool {
    let (o, n) = (old.meta(), new.meta());
    o.generation == n.generation
        && o.deletion_timestamp == n.deletion_timestamp
        && o.finalizers == n.finalizers
}

/// A provider or account update that changed only what its dependents ignore (its
/// counts, messages, timestamps: our own status writes) triggers nothing; its lifecycle
/// and its `Ready` (which gates bindings) do.
pub fn dependents_unaffected<K: Reconciled>(old: &Guarded<K>, new: &Guarded<K>) -> bool {
    let (Ok(o), Ok(n)) = (&old.0, &new.0) else {
        return false;
    };
    let ready = |k: &K| ready_of(k.current_status().map(|s| s.conditions()));
    same_lifecycle(o, n) && ready(o) == ready(n)
}

/// A binding's attachment (`status.provider`, `authenticatedVia`, `serviceAccount`) is what its
/// provider and account count; the rest of its status concerns nobody else.
pub fn binding_unchanged(old: &Guarded<MailboxBinding>, new: &Guarded<MailboxBinding>) -> bool {
    let (Ok(o), Ok(n)) = (&old.0, &new.0) else {
        return false;
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
    same_lifecycle(o, n) && attachment(o) == attachment(n)
}

/// Only a Secret's data matters to its users; label or annotation edits re-verify nothing.
fn secret_unchanged(old: &Secret, new: &Secret) -> bool {
    old.data == new.data
}

/// Only a Namespace's labels matter (admission by selector).
fn namespace_unchanged(old: &Namespace, new: &Namespace) -> bool {
    old.metadata.labels == new.metadata.labels
}

async fn pump<K>(
    events: impl Stream<Item = Result<Event<K>, watcher::Error>>,
    mut writer: Writer<K>,
    stores: Stores,
    senders: Senders,
    map: fn(&K, &Stores) -> Triggers,
    unchanged: fn(&K, &K) -> bool,
) where
    K: Resource<DynamicType = ()> + Clone,
{
    let reader = writer.as_reader();
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                let t = apply_event(&mut writer, &reader, &stores, &event, map, unchanged);
                senders.send(t);
            }
            Err(e) => warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying"),
        }
    }
}

fn watch<K>(api: Api<K>) -> impl Stream<Item = Result<Event<K>, watcher::Error>>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + Debug + Send + 'static,
{
    make_watcher(api, watcher::Config::default())
        .default_backoff()
        // managedFields and the last-applied annotation are never read; the annotation
        // may even hold a copy of a Secret's values, which must not sit in memory twice.
        .modify(|o: &mut K| {
            o.meta_mut().managed_fields = None;
            if let Some(a) = o.meta_mut().annotations.as_mut() {
                a.remove("kubectl.kubernetes.io/last-applied-configuration");
            }
        })
}

/// Watch the five kinds into the caches and send triggers until the process ends.
pub async fn pump_all(client: Client, writers: Writers, stores: Stores, senders: Senders) {
    let Writers {
        providers,
        service_accounts,
        bindings,
        secrets,
        namespaces,
    } = writers;
    futures::join!(
        pump(
            watch(Api::<Guarded<EmailProvider>>::all(client.clone())),
            providers,
            stores.clone(),
            senders.clone(),
            for_provider,
            dependents_unaffected::<EmailProvider>,
        ),
        pump(
            watch(Api::<Guarded<ExchangeServiceAccount>>::all(client.clone())),
            service_accounts,
            stores.clone(),
            senders.clone(),
            for_service_account,
            dependents_unaffected::<ExchangeServiceAccount>,
        ),
        pump(
            watch(Api::<Guarded<MailboxBinding>>::all(client.clone())),
            bindings,
            stores.clone(),
            senders.clone(),
            for_binding,
            binding_unchanged,
        ),
        pump(
            watch(Api::<Secret>::all(client.clone())),
            secrets,
            stores.clone(),
            senders.clone(),
            for_secret,
            secret_unchanged,
        ),
        pump(
            watch(Api::<Namespace>::all(client)),
            namespaces,
            stores,
            senders,
            for_namespace,
            namespace_unchanged,
        ),
    );
}
