//! The watches that feed the caches: each event is trimmed, applied to its store and the
//! index, and handed with the object as it was before to the kind's [`Sink`] (the
//! controllers' trigger mapping). Secrets and ConfigMaps are watched as metadata only; the
//! data held of referenced ones is dropped here when the object changes or loses its last
//! reader. The pumps and the tests feed events through one path, [`apply`].

use std::fmt::Debug;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as make_watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::warn;

use super::guard::Guarded;
use super::index::{
    ConfigMapKey, Indexed, SecretKey, config_map_of_provider, secret_of_binding,
    secrets_of_account, secrets_of_provider,
};
use super::intern;
use super::secrets::{ConfigMapMeta, HeldData, HeldKind, SecretMeta};
use super::stores::{Stores, Writers};
use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};

/// A watched kind: how it is trimmed before it enters the cache, and indexed there.
pub trait Cached: Resource<DynamicType = ()> + Clone + Indexed {
    /// Drop what nothing reads before the object enters the cache: managedFields,
    /// annotations (the last-applied one may even hold a copy of a Secret's values),
    /// labels and owner references.
    fn trim(&mut self) {
        trim_object(self);
    }

    /// The Secrets the object reads (their data is held while anyone reads them).
    fn secrets_read(&self) -> Vec<SecretKey> {
        Vec::new()
    }

    /// The ConfigMaps the object reads (held while anyone reads them).
    fn config_maps_read(&self) -> Vec<ConfigMapKey> {
        Vec::new()
    }

    /// After the event is in the cache: what else it means for the caches.
    fn changed(&self, _stores: &Stores, _deleted: bool) {}
}

impl Cached for Guarded<EmailProvider> {
    fn secrets_read(&self) -> Vec<SecretKey> {
        self.0.as_ref().map(secrets_of_provider).unwrap_or_default()
    }

    fn config_maps_read(&self) -> Vec<ConfigMapKey> {
        self.0
            .as_ref()
            .ok()
            .and_then(config_map_of_provider)
            .into_iter()
            .collect()
    }
}

impl Cached for Guarded<ExchangeServiceAccount> {
    fn secrets_read(&self) -> Vec<SecretKey> {
        self.0.as_ref().map(secrets_of_account).unwrap_or_default()
    }
}

impl Cached for Guarded<MailboxBinding> {
    /// Also: the names it refers to and the endpoint are the table's shared copies.
    fn trim(&mut self) {
        trim_object(self);
        let Ok(b) = &mut self.0 else { return };
        let refs = [
            &mut b.spec.provider_ref,
            &mut b.spec.authentication.service_account_ref,
        ];
        for r in refs.into_iter().flatten() {
            intern::share(&mut r.name);
        }
        if let Some(status) = &mut b.status {
            intern::share_opt(&mut status.provider);
            intern::share_opt(&mut status.service_account);
            intern::share_opt(&mut status.endpoint);
        }
    }

    fn secrets_read(&self) -> Vec<SecretKey> {
        self.0
            .as_ref()
            .ok()
            .and_then(secret_of_binding)
            .into_iter()
            .collect()
    }
}

/// The default trim of a watched kind (see [`Cached::trim`]).
fn trim_object(object: &mut impl Resource) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    meta.annotations = None;
    meta.labels = None;
    meta.owner_references = None;
}

/// Data held of an older version of `meta`'s object, or of one now gone, is dropped.
fn release_stale<K: HeldKind>(held: &HeldData<K>, meta: &PartialObjectMeta<K>, deleted: bool) {
    let key = (meta.namespace().unwrap_or_default(), meta.name_any());
    if deleted {
        held.release(&key);
    } else {
        held.release_unless_at(&key, meta.resource_version().as_deref());
    }
}

/// Every Secret's and ConfigMap's metadata is cached (a reference may name any), trimmed
/// to its name and version: what tells a reader that it changed.
fn trim_metadata<K>(meta: &mut PartialObjectMeta<K>) {
    meta.metadata.managed_fields = None;
    meta.metadata.annotations = None;
    meta.metadata.labels = None;
    meta.metadata.owner_references = None;
}

impl Cached for SecretMeta {
    fn trim(&mut self) {
        trim_metadata(self);
    }

    fn changed(&self, stores: &Stores, deleted: bool) {
        release_stale(&stores.secret_data, self, deleted);
    }
}

impl Cached for ConfigMapMeta {
    fn trim(&mut self) {
        trim_metadata(self);
    }

    fn changed(&self, stores: &Stores, deleted: bool) {
        release_stale(&stores.config_map_data, self, deleted);
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
/// for an update or a deletion of a cached object. The data of a Secret or ConfigMap that
/// the object as it was read, and that nobody reads now, is dropped.
pub fn apply<K: Cached>(
    writer: &mut Writer<K>,
    stores: &Stores,
    event: &Event<K>,
) -> Option<Arc<K>> {
    let index = &stores.index;
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
    match event {
        Event::Apply(o) => o.changed(stores, false),
        Event::Delete(o) => o.changed(stores, true),
        _ => {}
    }
    for key in old.iter().flat_map(|o| o.secrets_read()) {
        if !index.is_read(&key) && stores.secret_data.release(&key) {
            index.note_released(&key);
        }
    }
    for key in old.iter().flat_map(|o| o.config_maps_read()) {
        if !index.is_config_map_read(&key) {
            stores.config_map_data.release(&key);
        }
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
    /// Secrets' metadata.
    pub secrets: Sink<SecretMeta>,
    /// ConfigMaps' metadata.
    pub config_maps: Sink<ConfigMapMeta>,
    /// Namespaces.
    pub namespaces: Sink<Namespace>,
}

async fn pump<K: Cached>(
    events: impl Stream<Item = Result<Event<K>, watcher::Error>>,
    mut writer: Writer<K>,
    stores: Stores,
    mut sink: Sink<K>,
) {
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                let old = apply(&mut writer, &stores, &event);
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

/// Watch the six kinds into the caches (Secrets and ConfigMaps as metadata), telling each
/// kind's sink, until the process ends.
pub async fn pump_all(client: Client, writers: Writers, stores: Stores, sinks: Sinks) {
    let Writers {
        providers,
        service_accounts,
        bindings,
        secrets,
        config_maps,
        namespaces,
    } = writers;
    futures::join!(
        pump(
            watch(Api::<Guarded<EmailProvider>>::all(client.clone())),
            providers,
            stores.clone(),
            sinks.providers,
        ),
        pump(
            watch(Api::<Guarded<ExchangeServiceAccount>>::all(client.clone())),
            service_accounts,
            stores.clone(),
            sinks.service_accounts,
        ),
        pump(
            watch(Api::<Guarded<MailboxBinding>>::all(client.clone())),
            bindings,
            stores.clone(),
            sinks.bindings,
        ),
        // `Api<PartialObjectMeta<_>>` lists and watches metadata only.
        pump(
            watch(Api::<SecretMeta>::all(client.clone())),
            secrets,
            stores.clone(),
            sinks.secrets,
        ),
        pump(
            watch(Api::<ConfigMapMeta>::all(client.clone())),
            config_maps,
            stores.clone(),
            sinks.config_maps,
        ),
        pump(
            watch(Api::<Namespace>::all(client)),
            namespaces,
            stores,
            sinks.namespaces,
        ),
    );
}
