//! The watches that feed the caches: each event is trimmed, applied to its store and the
//! index, and handed with the object as it was before to the kind's [`Sink`] (the
//! controllers' trigger mapping). The pumps and the tests feed events through one path,
//! [`apply`].

use std::fmt::Debug;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as make_watcher};
use kube::{Api, Client, Resource};
use tracing::warn;

use super::index::{Index, Indexed};
use super::keys::Guarded;
use super::stores::Writers;
use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};

/// A watched kind: how it is trimmed before it enters the cache, and indexed there.
pub trait Cached: Resource<DynamicType = ()> + Clone + Indexed {
    /// Drop what nothing reads before the object enters the cache: managedFields,
    /// annotations (the last-applied one may even hold a copy of a Secret's values),
    /// labels and owner references.
    fn trim(&mut self) {
        let meta = self.meta_mut();
        meta.managed_fields = None;
        meta.annotations = None;
        meta.labels = None;
        meta.owner_references = None;
    }
}

impl Cached for Guarded<EmailProvider> {}
impl Cached for Guarded<ExchangeServiceAccount> {}
impl Cached for Guarded<MailboxBinding> {}

impl Cached for Secret {
    /// Every Secret of the cluster is cached (a reference may name any); keep only what
    /// credentials are read from: `data` (never `stringData`, which the API server folds
    /// into `data`), no labels, no annotations.
    fn trim(&mut self) {
        self.metadata.managed_fields = None;
        self.metadata.annotations = None;
        self.metadata.labels = None;
        self.metadata.owner_references = None;
        self.string_data = None;
    }
}

impl Cached for Namespace {
    /// Only a namespace's labels decide anything (admission by selector).
    fn trim(&mut self) {
        self.metadata.managed_fields = None;
        self.metadata.annotations = None;
        self.metadata.owner_references = None;
        self.spec = None;
        self.status = None;
    }
}

/// Apply one watch event to a cache and the index; returns the object as it was before,
/// for an update or a deletion of a cached object.
pub fn apply<K: Cached>(writer: &mut Writer<K>, index: &Index, event: &Event<K>) -> Option<Arc<K>> {
    let reader = writer.as_reader();
    let old = match event {
        Event::Apply(o) | Event::Delete(o) => reader.get(&ObjectRef::from_obj(o)),
        _ => None,
    };
    writer.apply_watcher_event(event);
    match event {
        Event::Apply(o) => o.index(index),
        Event::Delete(o) => o.unindex(index),
        Event::InitDone => K::reindex(&reader.state(), index),
        Event::Init | Event::InitApply(_) => {}
    }
    old
}

/// What is told of each event once it is in the cache: the event and the object as it
/// was before.
pub type Sink<K> = Box<dyn FnMut(&Event<K>, Option<Arc<K>>) + Send>;

/// One [`Sink`] per watched kind.
pub struct Sinks {
    /// EmailProviders.
    pub providers: Sink<Guarded<EmailProvider>>,
    /// ExchangeServiceAccounts.
    pub service_accounts: Sink<Guarded<ExchangeServiceAccount>>,
    /// MailboxBindings.
    pub bindings: Sink<Guarded<MailboxBinding>>,
    /// Secrets.
    pub secrets: Sink<Secret>,
    /// Namespaces.
    pub namespaces: Sink<Namespace>,
}

async fn pump<K: Cached>(
    events: impl Stream<Item = Result<Event<K>, watcher::Error>>,
    mut writer: Writer<K>,
    index: Arc<Index>,
    mut sink: Sink<K>,
) {
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                let old = apply(&mut writer, &index, &event);
                sink(&event, old);
            }
            Err(e) => warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying"),
        }
    }
}

fn watch<K>(api: Api<K>) -> impl Stream<Item = Result<Event<K>, watcher::Error>>
where
    K: Cached + serde::de::DeserializeOwned + Debug + Send + 'static,
{
    make_watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(K::trim)
}

/// Watch the five kinds into the caches, telling each kind's sink, until the process ends.
pub async fn pump_all(client: Client, writers: Writers, index: Arc<Index>, sinks: Sinks) {
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
            index.clone(),
            sinks.providers,
        ),
        pump(
            watch(Api::<Guarded<ExchangeServiceAccount>>::all(client.clone())),
            service_accounts,
            index.clone(),
            sinks.service_accounts,
        ),
        pump(
            watch(Api::<Guarded<MailboxBinding>>::all(client.clone())),
            bindings,
            index.clone(),
            sinks.bindings,
        ),
        pump(
            watch(Api::<Secret>::all(client.clone())),
            secrets,
            index.clone(),
            sinks.secrets,
        ),
        pump(
            watch(Api::<Namespace>::all(client)),
            namespaces,
            index,
            sinks.namespaces,
        ),
    );
}
