//! The warnings an admission answer carries: what `mailops check` and the controllers
//! would report for the object against the cluster's current state, through the same
//! resolver (`crate::resolve`). Never a refusal: GitOps applies objects in any order.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding, binding_secret_key};
use crate::cache::Stores;
use crate::cache::{typed_objects, well_formed};
use crate::resolve::{
    Catalog, check_account_may_attach, check_service_account_fits, resolve_binding,
};

/// Warnings for a MailboxBinding: whatever resolution refuses (no or several providers
/// for the domain, login required, namespace not admitted, ...), a service account whose
/// credentials do not fit the provider, and an own-credentials Secret lacking the key
/// the provider's method needs (key names only; values are never read).
pub fn for_binding(binding: &MailboxBinding, stores: &Stores, insecure: bool) -> Vec<String> {
    let providers = well_formed(&stores.providers);
    let providers = typed_objects(&providers);
    let accounts = well_formed(&stores.service_accounts);
    let accounts = typed_objects(&accounts);
    let catalog = Catalog {
        providers: &providers,
        service_accounts: &accounts,
        allow_insecure_endpoints: insecure,
    };
    let namespace = binding.namespace().unwrap_or_default();
    let labels: Option<BTreeMap<String, String>> = stores
        .namespaces
        .get(&ObjectRef::<Namespace>::new(&namespace))
        .map(|n| n.labels().clone());
    let resolution = match resolve_binding(binding, catalog, labels.as_ref()) {
        Ok(resolution) => resolution,
        Err(e) => return vec![e.to_string()],
    };
    let Some(provider) = providers
        .iter()
        .find(|p| p.name_any() == resolution.provider)
    else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if let Some(account) = resolution
        .service_account
        .as_deref()
        .and_then(|name| accounts.iter().find(|a| a.name_any() == name))
        && let Err(e) = check_service_account_fits(&account.spec, &provider.spec)
    {
        found.push(e.to_string());
    }
    if let Some(secret) = &binding.spec.authentication.credentials_secret_ref {
        found.extend(own_secret_warning(
            stores,
            &namespace,
            &secret.name,
            provider,
        ));
    }
    found
}

fn own_secret_warning(
    stores: &Stores,
    namespace: &str,
    name: &str,
    provider: &EmailProvider,
) -> Option<String> {
    let method = provider.spec.authentication.method;
    let key = binding_secret_key(method);
    let field = "spec.authentication.credentialsSecretRef";
    let Some(secret) = stores
        .secrets
        .get(&ObjectRef::<Secret>::new(name).within(namespace))
    else {
        return Some(format!(
            "SecretNotFound: Secret {namespace}/{name} named in {field} does not exist (yet)"
        ));
    };
    let has_key = secret.data.as_ref().is_some_and(|d| d.contains_key(key))
        || secret
            .string_data
            .as_ref()
            .is_some_and(|d| d.contains_key(key));
    (!has_key).then(|| {
        format!(
            "AuthMethodMismatch: Secret {namespace}/{name} named in {field} has no key {key:?}, which EmailProvider {:?} ({method:?}) needs",
            provider.name_any()
        )
    })
}

/// Warnings for an ExchangeServiceAccount: its provider missing, being deleted, or using
/// another authentication method than its credentials.
pub fn for_account(account: &ExchangeServiceAccount, stores: &Stores) -> Vec<String> {
    let wanted = &account.spec.provider_ref.name;
    let guard = stores.providers.get(&ObjectRef::new(wanted));
    let Some(provider) = guard.as_ref().and_then(|g| g.0.as_ref().ok()) else {
        return vec![format!(
            "ProviderNotFound: EmailProvider {wanted:?} named in spec.providerRef does not exist (yet)"
        )];
    };
    [
        check_account_may_attach(account, provider),
        check_service_account_fits(&account.spec, &provider.spec),
    ]
    .into_iter()
    .filter_map(|r| r.err().map(|e| e.to_string()))
    .collect()
}

/// Warnings for an EmailProvider: endpoint overrides the operator refuses, and domains
/// another provider also serves (bindings without `providerRef` there become ambiguous).
pub fn for_provider(provider: &EmailProvider, stores: &Stores, insecure: bool) -> Vec<String> {
    let mut found = Vec::new();
    if let Err(e) = crate::endpoints::provider_endpoints(&provider.spec, insecure) {
        found.push(e.to_string());
    }
    let name = provider.name_any();
    let others = well_formed(&stores.providers);
    for other in typed_objects(&others) {
        let other_name = other.name_any();
        if other_name == name {
            continue;
        }
        for domain in provider
            .spec
            .domains
            .iter()
            .filter(|d| other.spec.domains.iter().any(|o| o.eq_ignore_ascii_case(d)))
        {
            let domain: &str = domain;
            found.push(format!(
                "AmbiguousProvider: domain {domain} is also served by EmailProvider {other_name:?}; bindings for it without spec.providerRef cannot choose"
            ));
        }
    }
    found
}
