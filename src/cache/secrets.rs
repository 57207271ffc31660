//! Secrets by reference. The cache watches every Secret's metadata only (name, namespace,
//! resourceVersion: a few hundred bytes each, whatever the data), and holds the data of
//! just those a mailops object references: read with one GET when first needed ([`super::stores::Stores::read_secrets`]), dropped
//! when the Secret changes or nobody references it any more. A tenant's large Secrets, or
//! a cluster's Helm release Secrets, cost the operator their metadata; other teams'
//! credentials are never in its memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;

use super::keys::SecretKey;

/// What the cache keeps of every Secret: its metadata.
pub type SecretMeta = PartialObjectMeta<Secret>;

/// The data of referenced Secrets, each as read at one resourceVersion.
#[derive(Default)]
pub struct SecretData {
    held: Mutex<HashMap<SecretKey, Arc<Secret>>>,
}

impl SecretData {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SecretKey, Arc<Secret>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Secret as held, if it was read at `version`.
    pub fn get(&self, key: &SecretKey, version: &str) -> Option<Arc<Secret>> {
        self.lock()
            .get(key)
            .filter(|s| s.resource_version().as_deref() == Some(version))
            .cloned()
    }

    /// Hold a Secret as read (what a GET returned), trimmed to its data.
    pub fn hold(&self, mut secret: Secret) -> Arc<Secret> {
        let key = (secret.namespace().unwrap_or_default(), secret.name_any());
        let meta = &mut secret.metadata;
        meta.managed_fields = None;
        meta.annotations = None;
        meta.labels = None;
        meta.owner_references = None;
        secret.string_data = None;
        let secret = Arc::new(secret);
        self.lock().insert(key, secret.clone());
        secret
    }

    /// Drop what is held of `key` (it changed, went, or nobody reads it any more).
    /// Returns whether anything was held.
    pub fn release(&self, key: &SecretKey) -> bool {
        self.lock().remove(key).is_some()
    }

    /// Drop what is held of `key` unless it was read at `version`.
    pub fn release_unless_at(&self, key: &SecretKey, version: Option<&str>) {
        let mut held = self.lock();
        if held
            .get(key)
            .is_some_and(|s| s.resource_version().as_deref() != version)
        {
            held.remove(key);
        }
    }

    /// Whether the data of `key` is held.
    pub fn holds(&self, key: &SecretKey) -> bool {
        self.lock().contains_key(key)
    }

    /// How many Secrets' data is held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no Secret's data is held.
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
