//! How a watched object is held (typed, or what could be read of a malformed one) and
//! named outside its cache: the key per-object memories (probe results, back-off) use,
//! the reference a controller is triggered with, and its kind as a label.

use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

/// A binding as `(namespace, name)`.
pub type BindingKey = (String, String);
/// A Secret as `(namespace, name)`.
pub type SecretKey = (String, String);
/// A ConfigMap as `(namespace, name)`.
pub type ConfigMapKey = (String, String);

/// The key back-off and probe caches use for an object: `Kind/namespace/name`.
pub fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    key_of::<K>(&obj.namespace().unwrap_or_default(), &obj.name_any())
}

/// The key of an object of kind `K` at `namespace` (empty for none) and `name`.
pub fn key_of<K: Resource<DynamicType = ()>>(namespace: &str, name: &str) -> String {
    format!("{}/{namespace}/{name}", K::kind(&()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{EmailProvider, MailboxBinding};
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
