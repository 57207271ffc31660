//! The watched stores: their read side (what reconciles and admission read) and write
//! side (what the watches, or tests, feed).

use std::sync::Arc;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};

use super::guard::Guarded;
use super::index::{ConfigMapKey, Index, SecretKey};
use super::secrets::{ConfigMapData, ConfigMapMeta, HeldData, HeldKind, SecretData, SecretMeta};
use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};

/// Read side of every cache; reconciles and admission read these, never LIST.
#[derive(Clone)]
pub struct Stores {
    /// EmailProviders.
    pub providers: Store<Guarded<EmailProvider>>,
    /// ExchangeServiceAccounts.
    pub service_accounts: Store<Guarded<ExchangeServiceAccount>>,
    /// MailboxBindings.
    pub bindings: Store<Guarded<MailboxBinding>>,
    /// Every Secret's metadata (no data: see [`super::secrets`]).
    pub secrets: Store<SecretMeta>,
    /// The data of the Secrets a mailops object references, read when first needed.
    pub secret_data: Arc<SecretData>,
    /// Every ConfigMap's metadata (no data: see [`super::secrets`]).
    pub config_maps: Store<ConfigMapMeta>,
    /// The data of the ConfigMaps a provider's `spec.tls.caBundleFrom` references, read
    /// when first needed.
    pub config_map_data: Arc<ConfigMapData>,
    /// Namespaces (their labels decide `allowedNamespaces` selectors).
    pub namespaces: Store<Namespace>,
    /// Who uses, names or reads what, kept from the same watch events.
    pub index: Arc<Index>,
}

/// Write side of the caches: fed by the watches, or by tests directly.
pub struct Writers {
    /// EmailProviders.
    pub providers: reflector::store::Writer<Guarded<EmailProvider>>,
    /// ExchangeServiceAccounts.
    pub service_accounts: reflector::store::Writer<Guarded<ExchangeServiceAccount>>,
    /// MailboxBindings.
    pub bindings: reflector::store::Writer<Guarded<MailboxBinding>>,
    /// Secrets' metadata.
    pub secrets: reflector::store::Writer<SecretMeta>,
    /// ConfigMaps' metadata.
    pub config_maps: reflector::store::Writer<ConfigMapMeta>,
    /// Namespaces.
    pub namespaces: reflector::store::Writer<Namespace>,
}

impl Stores {
    /// Wait until all six caches hold their initial LIST.
    pub async fn wait_until_ready(&self) {
        let _ = futures::join!(
            self.providers.wait_until_ready(),
            self.service_accounts.wait_until_ready(),
            self.bindings.wait_until_ready(),
            self.secrets.wait_until_ready(),
            self.config_maps.wait_until_ready(),
            self.namespaces.wait_until_ready(),
        );
    }

    /// The provider of this name, if it is cached and could be read.
    pub fn provider(&self, name: &str) -> Option<Arc<Guarded<EmailProvider>>> {
        self.providers.get(&ObjectRef::new(name))
    }

    /// The service account of this name, if it is cached.
    pub fn service_account(&self, name: &str) -> Option<Arc<Guarded<ExchangeServiceAccount>>> {
        self.service_accounts.get(&ObjectRef::new(name))
    }

    /// The labels of a namespace, if it is cached.
    pub fn namespace_labels(
        &self,
        name: &str,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        let namespace = self.namespaces.get(&ObjectRef::<Namespace>::new(name))?;
        Some(namespace.metadata.labels.clone().unwrap_or_default())
    }

    /// The Secrets at `keys` that exist, with their data: what is held at the version the
    /// metadata watch shows, else one GET each. A Secret the watch does not know is absent
    /// (the reconcile reports `SecretNotFound`; its creation triggers the readers again).
    pub async fn read_secrets(
        &self,
        client: &Client,
        keys: impl IntoIterator<Item = SecretKey>,
    ) -> crate::Result<BTreeMap<SecretKey, Arc<Secret>>> {
        read_held(&self.secrets, &self.secret_data, client, keys).await
    }

    /// The ConfigMaps at `keys` that exist, with their data, as [`Self::read_secrets`]
    /// reads Secrets (a missing one is reported `ConfigMapNotFound`).
    pub async fn read_config_maps(
        &self,
        client: &Client,
        keys: impl IntoIterator<Item = ConfigMapKey>,
    ) -> crate::Result<BTreeMap<ConfigMapKey, Arc<ConfigMap>>> {
        read_held(&self.config_maps, &self.config_map_data, client, keys).await
    }

    /// A ConfigMap's metadata as cached.
    pub fn config_map_meta(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMapMeta>> {
        self.config_maps
            .get(&ObjectRef::new(name).within(namespace))
    }

    /// The Secrets `keys` with the resourceVersions the cache knows (`None`: absent): what
    /// a verification's inputs are digested from before any data is read.
    pub fn secret_versions(
        &self,
        keys: impl IntoIterator<Item = SecretKey>,
    ) -> Vec<(SecretKey, Option<String>)> {
        keys.into_iter()
            .map(|key| {
                let version = self
                    .secret_meta(&key.0, &key.1)
                    .map(|m| m.resource_version().unwrap_or_default());
                (key, version)
            })
            .collect()
    }

    /// A Secret's metadata as cached.
    pub fn secret_meta(&self, namespace: &str, name: &str) -> Option<Arc<SecretMeta>> {
        self.secrets.get(&ObjectRef::new(name).within(namespace))
    }
}

/// The objects at `keys` that the metadata watch knows, with their data: held at the
/// version the watch shows, else read with one GET each and held.
async fn read_held<K>(
    metas: &Store<PartialObjectMeta<K>>,
    held: &HeldData<K>,
    client: &Client,
    keys: impl IntoIterator<Item = (String, String)>,
) -> crate::Result<BTreeMap<(String, String), Arc<K>>>
where
    K: HeldKind<Scope = k8s_openapi::NamespaceResourceScope>,
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut found = BTreeMap::new();
    for key in keys {
        let (namespace, name) = (&key.0, &key.1);
        let Some(meta) = metas.get(&ObjectRef::new(name).within(namespace)) else {
            continue;
        };
        let version = meta.resource_version().unwrap_or_default();
        if let Some(object) = held.get(&key, &version) {
            found.insert(key, object);
            continue;
        }
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        if let Some(object) = api.get_opt(name).await? {
            found.insert(key, held.hold(object));
        }
    }
    Ok(found)
}

/// Where credentials read Secrets from: what a reconcile read ([`Stores::read_secrets`]).
pub trait SecretLookup {
    /// The Secret `namespace/name`, if there is one.
    fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>>;
}

impl SecretLookup for std::collections::BTreeMap<SecretKey, Arc<Secret>> {
    fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>> {
        self.get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
}

/// Where a provider's CA bundle is read from when it names a ConfigMap: what a reconcile
/// read ([`Stores::read_config_maps`]).
pub trait ConfigMapLookup {
    /// The ConfigMap `namespace/name`, if there is one.
    fn config_map(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMap>>;
}

impl ConfigMapLookup for BTreeMap<ConfigMapKey, Arc<ConfigMap>> {
    fn config_map(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMap>> {
        self.get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
}

/// Fresh, empty caches.
pub fn stores() -> (Stores, Writers) {
    let (providers, pw) = reflector::store();
    let (service_accounts, sw) = reflector::store();
    let (bindings, bw) = reflector::store();
    let (secrets, secw) = reflector::store();
    let (config_maps, cmw) = reflector::store();
    let (namespaces, nw) = reflector::store();
    (
        Stores {
            providers,
            service_accounts,
            bindings,
            secrets,
            secret_data: Arc::default(),
            config_maps,
            config_map_data: Arc::default(),
            namespaces,
            index: Arc::default(),
        },
        Writers {
            providers: pw,
            service_accounts: sw,
            bindings: bw,
            secrets: secw,
            config_maps: cmw,
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
