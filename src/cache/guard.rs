//! A watched object as it was read: typed, or what could be read of a malformed one
//! (kube's `DeserializeGuard`, read with a third of the work). kube's guard reads every
//! object into a tree of values, copies the whole tree, and reads the object out of the
//! copy; this one takes the object's JSON text as it passes (one scan, no tree) and reads
//! the typed object from it once, the metadata a second time only when that fails. Every
//! binding's watch event and every page of a relist goes through here. It needs the JSON
//! text: kube reads watch lines and lists with serde_json, and the API server writes an
//! event's `type` before its `object`, so serde hands the object over unbuffered.

use std::borrow::Cow;

use kube::Resource;
use kube::core::PartialObjectMeta;
pub use kube::core::error_boundary::InvalidObject;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// See the module documentation; the same shape as kube's `DeserializeGuard`.
#[derive(Debug, Clone)]
pub struct Guarded<K>(pub Result<K, InvalidObject>);

impl<'de, K: DeserializeOwned + Resource> Deserialize<'de> for Guarded<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        match serde_json::from_str::<K>(text) {
            Ok(object) => Ok(Guarded(Ok(object))),
            Err(error) => {
                let PartialObjectMeta { metadata, .. } =
                    serde_json::from_str::<PartialObjectMeta<K>>(text).map_err(D::Error::custom)?;
                Ok(Guarded(Err(InvalidObject {
                    error: error.to_string(),
                    metadata,
                })))
            }
        }
    }
}

impl<K: Resource> Resource for Guarded<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        self.0.as_ref().map_or_else(|e| &e.metadata, K::meta)
    }

    fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        self.0
            .as_mut()
            .map_or_else(|e| &mut e.metadata, K::meta_mut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MailboxBinding;
    use kube::ResourceExt;
    use kube::core::WatchEvent;
    use serde_json::json;

    fn binding(email: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "mailops.dev/v1alpha1", "kind": "MailboxBinding",
            "metadata": {"name": "a", "namespace": "team", "resourceVersion": "7"},
            "spec": {"emailAddress": email, "authentication": {}}})
    }

    #[test]
    fn a_well_formed_object_is_typed_from_text_and_from_a_value() {
        let body = binding(json!("a@contoso.com"));
        let from_text: Guarded<MailboxBinding> = serde_json::from_str(&body.to_string()).unwrap();
        let from_value: Guarded<MailboxBinding> = serde_json::from_value(body).unwrap();
        for g in [from_text, from_value] {
            assert_eq!(g.0.unwrap().spec.email_address, "a@contoso.com");
        }
    }

    #[test]
    fn a_malformed_object_keeps_its_metadata_and_the_error() {
        let g: Guarded<MailboxBinding> =
            serde_json::from_str(&binding(json!(42)).to_string()).unwrap();
        assert_eq!(g.name_any(), "a");
        assert_eq!(g.namespace().as_deref(), Some("team"));
        assert_eq!(g.resource_version().as_deref(), Some("7"));
        let e = g.0.unwrap_err();
        assert!(e.error.contains("invalid type"), "{}", e.error);
    }

    #[test]
    fn no_metadata_at_all_is_an_error_of_the_event() {
        let r = serde_json::from_str::<Guarded<MailboxBinding>>(r#"{"metadata": 1}"#);
        assert!(r.is_err());
    }

    /// The API server writes a watch event's `type` before its `object` (the field order of
    /// Go's `metav1.WatchEvent`), so the object's text reaches the guard as it is; an event
    /// with the object first would be buffered by serde and refused here, not misread.
    fn event(type_: &str, object: &serde_json::Value) -> String {
        format!(r#"{{"type":"{type_}","object":{object}}}"#)
    }

    #[test]
    fn watch_events_read_as_the_api_server_sends_them() {
        let line = event("MODIFIED", &binding(json!(42)));
        let WatchEvent::Modified(g) =
            serde_json::from_str::<WatchEvent<Guarded<MailboxBinding>>>(&line).unwrap()
        else {
            panic!("not a modification")
        };
        assert!(g.0.is_err());
        let line = event("ADDED", &binding(json!("a@contoso.com")));
        let added: WatchEvent<Guarded<MailboxBinding>> = serde_json::from_str(&line).unwrap();
        assert!(matches!(added, WatchEvent::Added(Guarded(Ok(_)))));
        let object_first = format!(r#"{{"object":{},"type":"ADDED"}}"#, binding(json!("a@b.c")));
        assert!(
            serde_json::from_str::<WatchEvent<Guarded<MailboxBinding>>>(&object_first).is_err()
        );
    }
}
