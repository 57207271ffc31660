//! A provider's trust as the reconciles of the provider, its service accounts and its
//! mailboxes build it: `spec.tls`, with the text of the ConfigMap or Secret key that
//! `spec.tls.caBundleFrom` names read by reference through the cache (one GET per new
//! version, held while referenced), handed to [`provider_trust`]. A missing object or key
//! is named (`ConfigMapNotFound`, `ConfigMapKeyMissing`, `SecretNotFound`,
//! `SecretKeyMissing`) and waits for a change of it; the bundle's text is never quoted.

use kube::{Client, ResourceExt};

use super::probe_cache::probe_inputs_digest;
use crate::api::conditions::Reason;
use crate::api::{BundleKeyRef, BundleObject, EmailProvider};
use crate::cache::{ConfigMapLookup, SecretLookup, Stores};
use crate::exchange::Trust;
use crate::exchange::trust::provider_trust;
use crate::{Error, Result};

/// The trust of provider `p`, its bundle object read as needed. The outer error is a
/// failed read (the API server; tried again with back-off, nothing said); the inner one is
/// the provider's: a missing object or key, or a bundle that is not PEM certificates.
/// Without a provider (unknown or unreadable: the caller reports that), the public roots.
pub async fn read_trust(
    stores: &Stores,
    client: &Client,
    p: Option<&EmailProvider>,
) -> Result<Result<Trust>> {
    let Some(p) = p else {
        return Ok(Ok(Trust::default()));
    };
    let tls = p.spec.tls.as_ref();
    Ok(match tls.and_then(|t| t.referenced_bundle()) {
        None => provider_trust(tls, None),
        Some((BundleObject::ConfigMap, r)) => {
            let maps = stores.read_config_maps(client, [key_of(r)]).await?;
            config_map_text(&maps, r, &p.name_any())
                .and_then(|text| provider_trust(tls, Some(&text)))
        }
        Some((BundleObject::Secret, r)) => {
            let secrets = stores.read_secrets(client, [key_of(r)]).await?;
            secret_text(&secrets, r, &p.name_any())
                .and_then(|text| provider_trust(tls, Some(&text)))
        }
    })
}

/// Where `p`'s bundle object stands, as the cache's metadata knows it (`Kind
/// namespace/name@resourceVersion`, `-` for absent): for the digests of what a verdict
/// depends on, so that a new version of the bundle is a change of input. `None` without a
/// `caBundleFrom` (digests of such providers stay what they were).
pub fn bundle_version(stores: &Stores, p: &EmailProvider) -> Option<String> {
    let (object, r) = p.spec.tls.as_ref()?.referenced_bundle()?;
    let version = match object {
        BundleObject::ConfigMap => stores
            .config_map_meta(&r.namespace, &r.name)
            .map(|m| m.resource_version().unwrap_or_default()),
        BundleObject::Secret => stores
            .secret_meta(&r.namespace, &r.name)
            .map(|m| m.resource_version().unwrap_or_default()),
    };
    Some(format!(
        "{object:?} {}/{}@{}",
        r.namespace,
        r.name,
        version.as_deref().unwrap_or("-")
    ))
}

/// `digest` with where `p`'s bundle object stands folded in ([`bundle_version`]), for the
/// stable digest of a provider's or account's verdict; unchanged without a provider or a
/// `caBundleFrom`.
pub fn with_bundle_version(digest: u64, stores: &Stores, p: Option<&EmailProvider>) -> u64 {
    let version = p.and_then(|p| bundle_version(stores, p));
    fold_version(digest, version.as_deref())
}

/// `digest` with a [`bundle_version`] folded in; unchanged for `None`.
pub fn fold_version(digest: u64, version: Option<&str>) -> u64 {
    match version {
        Some(version) => probe_inputs_digest(&[&digest.to_string(), version]),
        None => digest,
    }
}

fn key_of(r: &BundleKeyRef) -> (String, String) {
    (r.namespace.clone(), r.name.clone())
}

fn spec_error(reason: Reason, message: String) -> Error {
    Error::Spec { reason, message }
}

/// The text under `r.key` of the ConfigMap `r` names (its `data`), as read.
pub fn config_map_text(
    maps: &impl ConfigMapLookup,
    r: &BundleKeyRef,
    provider: &str,
) -> Result<String> {
    let (ns, name, key) = (&r.namespace, &r.name, &r.key);
    let by = format!("EmailProvider {provider} spec.tls.caBundleFrom.configMapKeyRef");
    let map = maps.config_map(ns, name).ok_or_else(|| {
        spec_error(
            Reason::ConfigMapNotFound,
            format!("ConfigMap {ns}/{name} referenced by {by} does not exist"),
        )
    })?;
    let text = map.data.as_ref().and_then(|d| d.get(key)).ok_or_else(|| {
        spec_error(
            Reason::ConfigMapKeyMissing,
            format!("ConfigMap {ns}/{name} referenced by {by} has no key {key:?} in its data"),
        )
    })?;
    Ok(text.clone())
}

/// The text under `r.key` of the Secret `r` names, as read.
pub fn secret_text(
    secrets: &impl SecretLookup,
    r: &BundleKeyRef,
    provider: &str,
) -> Result<String> {
    let (ns, name, key) = (&r.namespace, &r.name, &r.key);
    let by = format!("EmailProvider {provider} spec.tls.caBundleFrom.secretKeyRef");
    let secret = secrets.secret(ns, name).ok_or_else(|| {
        spec_error(
            Reason::SecretNotFound,
            format!("Secret {ns}/{name} referenced by {by} does not exist"),
        )
    })?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| {
            spec_error(
                Reason::SecretKeyMissing,
                format!("Secret {ns}/{name} referenced by {by} has no key {key:?}"),
            )
        })?;
    String::from_utf8(bytes.0.clone()).map_err(|_| {
        spec_error(
            Reason::InvalidCABundle,
            format!(
                "the key {key:?} of Secret {ns}/{name} ({by}) is not text, so not PEM certificates"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};

    fn reference() -> BundleKeyRef {
        BundleKeyRef {
            namespace: "certs".into(),
            name: "roots".into(),
            key: "ca.crt".into(),
        }
    }

    fn key() -> (String, String) {
        ("certs".to_string(), "roots".to_string())
    }

    fn reason(r: Result<String>) -> Option<Reason> {
        r.unwrap_err().reason()
    }

    #[test]
    fn a_missing_config_map_or_key_is_named_and_the_text_is_read_from_data() {
        let mut maps: BTreeMap<(String, String), Arc<ConfigMap>> = BTreeMap::new();
        let missing = config_map_text(&maps, &reference(), "onprem");
        let message = missing.as_ref().unwrap_err().to_string();
        assert!(
            message.contains("ConfigMap certs/roots referenced by EmailProvider onprem"),
            "{message}"
        );
        assert_eq!(reason(missing), Some(Reason::ConfigMapNotFound));
        // The key only under binaryData: not a text bundle.
        let mut map = ConfigMap {
            data: Some([("other".to_string(), "x".to_string())].into()),
            binary_data: Some([("ca.crt".to_string(), ByteString(b"x".to_vec()))].into()),
            ..ConfigMap::default()
        };
        maps.insert(key(), Arc::new(map.clone()));
        let no_key = config_map_text(&maps, &reference(), "onprem");
        assert_eq!(reason(no_key), Some(Reason::ConfigMapKeyMissing));
        map.data = Some([("ca.crt".to_string(), "PEM".to_string())].into());
        maps.insert(key(), Arc::new(map));
        assert_eq!(
            config_map_text(&maps, &reference(), "onprem").unwrap(),
            "PEM"
        );
    }

    #[test]
    fn a_missing_secret_or_key_is_named_and_binary_is_not_a_bundle() {
        let mut secrets: BTreeMap<(String, String), Arc<Secret>> = BTreeMap::new();
        let missing = secret_text(&secrets, &reference(), "onprem");
        assert_eq!(reason(missing), Some(Reason::SecretNotFound));
        let mut secret = Secret {
            data: Some([("tls.crt".to_string(), ByteString(b"x".to_vec()))].into()),
            ..Secret::default()
        };
        secrets.insert(key(), Arc::new(secret.clone()));
        let no_key = secret_text(&secrets, &reference(), "onprem");
        assert_eq!(reason(no_key), Some(Reason::SecretKeyMissing));
        secret.data = Some([("ca.crt".to_string(), ByteString(vec![0xff, 0xfe]))].into());
        secrets.insert(key(), Arc::new(secret.clone()));
        let binary = secret_text(&secrets, &reference(), "onprem");
        assert_eq!(reason(binary), Some(Reason::InvalidCABundle));
        secret.data = Some([("ca.crt".to_string(), ByteString(b"PEM".to_vec()))].into());
        secrets.insert(key(), Arc::new(secret));
        assert_eq!(
            secret_text(&secrets, &reference(), "onprem").unwrap(),
            "PEM"
        );
    }
}
