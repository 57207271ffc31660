//! Secrets and ConfigMaps by reference. The cache watches every Secret's and ConfigMap's
//! metadata only (name, namespace, resourceVersion: a few hundred bytes each, whatever the
//! data), and holds the data of just those a mailops object references: read with one GET
//! when first needed ([`super::stores::Stores::read_secrets`],
//! [`super::stores::Stores::read_config_maps`]), dropped when the object changes or nobody
//! references it any more. A tenant's large Secrets, a cluster's Helm release Secrets or
//! another team's ConfigMaps cost the operator their metadata; other teams' credentials
//! are never in its memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::core::PartialObjectMeta;
use kube::{Resource, ResourceExt};

/// A held object's `(namespace, name)`.
type ObjectKey = (String, String);

/// What the cache keeps of every Secret: its metadata.
pub type SecretMeta = PartialObjectMeta<Secret>;

/// What the cache keeps of every ConfigMap: its metadata.
pub type ConfigMapMeta = PartialObjectMeta<ConfigMap>;

/// The data of referenced Secrets, each as read at one resourceVersion.
pub type SecretData = HeldData<Secret>;

/// The data of referenced ConfigMaps (CA bundles), each as read at one resourceVersion.
pub type ConfigMapData = HeldData<ConfigMap>;

/// A kind whose data is held by reference.
pub trait HeldKind: Resource<DynamicType = ()> {
    /// Drop what of the kind's own fields is never read.
    fn drop_unread(&mut self);
}

impl HeldKind for Secret {
    /// `stringData` is write-only; a GET never returns it, but nothing of it is kept.
    fn drop_unread(&mut self) {
        self.string_data = None;
    }
}

impl HeldKind for ConfigMap {
    /// A CA bundle is text (`data`); `binaryData` (a JKS or PKCS#12 copy of the same
    /// bundle, as trust-manager can add) is not read, so not kept.
    fn drop_unread(&mut self) {
        self.binary_data = None;
    }
}

/// The data of referenced objects of one kind, each as read at one resourceVersion, by
/// `(namespace, name)`.
pub struct HeldData<K> {
    held: Mutex<HashMap<ObjectKey, Arc<K>>>,
}

impl<K> Default for HeldData<K> {
    fn default() -> Self {
        HeldData {
            held: Mutex::default(),
        }
    }
}

impl<K: HeldKind> HeldData<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Arc<K>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The object as held, if it was read at `version`.
    pub fn get(&self, key: &ObjectKey, version: &str) -> Option<Arc<K>> {
        self.lock()
            .get(key)
            .filter(|s| s.resource_version().as_deref() == Some(version))
            .cloned()
    }

    /// Hold an object as read (what a GET returned), trimmed to its data.
    pub fn hold(&self, mut object: K) -> Arc<K> {
        let key = (object.namespace().unwrap_or_default(), object.name_any());
        let meta = object.meta_mut();
        meta.managed_fields = None;
        meta.annotations = None;
        meta.labels = None;
        meta.owner_references = None;
        object.drop_unread();
        let object = Arc::new(object);
        self.lock().insert(key, object.clone());
        object
    }

    /// Drop what is held of `key` (it changed, went, or nobody reads it any more).
    /// Returns whether anything was held.
    pub fn release(&self, key: &ObjectKey) -> bool {
        self.lock().remove(key).is_some()
    }

    /// Drop what is held of `key` unless it was read at `version`.
    pub fn release_unless_at(&self, key: &ObjectKey, version: Option<&str>) {
        let mut held = self.lock();
        if held
            .get(key)
            .is_some_and(|s| s.resource_version().as_deref() != version)
        {
            held.remove(key);
        }
    }

    /// Whether the data of `key` is held.
    pub fn holds(&self, key: &ObjectKey) -> bool {
        self.lock().contains_key(key)
    }

    /// How many objects' data is held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no object's data is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(version: &str) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some("app".into());
        s.metadata.namespace = Some("ops".into());
        s.metadata.resource_version = Some(version.into());
        s.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        s.data = Some([("client-secret".to_string(), ByteString(b"x".to_vec()))].into());
        s.string_data = Some([("extra".to_string(), "y".to_string())].into());
        s
    }

    #[test]
    fn a_secret_is_held_at_the_version_it_was_read_and_trimmed_to_its_data() {
        let data = SecretData::default();
        let key = ("ops".to_string(), "app".to_string());
        let held = data.hold(secret("7"));
        assert!(held.metadata.labels.is_none() && held.string_data.is_none());
        assert!(held.data.is_some());
        assert!(data.get(&key, "7").is_some());
        assert!(data.get(&key, "8").is_none(), "another version is not held");
        data.release_unless_at(&key, Some("7"));
        assert!(data.holds(&key));
        data.release_unless_at(&key, Some("8"));
        assert!(!data.holds(&key), "a newer version drops the stale data");
        data.hold(secret("8"));
        assert!(data.release(&key));
        assert!(data.is_empty());
    }
}
