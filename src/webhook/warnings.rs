//! The warnings an admission answer carries: what `mailops check` and the controllers
//! would report for the object against the cluster's current state, through the same
//! resolver (`crate::resolve`). Never a refusal: GitOps applies objects in any order.

use kube::ResourceExt;

use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use crate::cache::Stores;
use crate::cache::{typed_objects, well_formed};
use crate::resolve::{
    Catalog, check_account_may_attach, check_service_account_fits, resolve_binding,
};

/// Warnings for a MailboxBinding: whatever resolution refuses (no or several providers
/// for the domain, login required, namespace not admitted, ...) and a service account
/// whose credentials do not fit the provider. Nothing about Secrets: a request may come
/// from any pod that reaches the webhook, claiming any namespace, and whether a Secret
/// exists there or which keys it holds is not for it to learn (the binding's status
/// says, to who may read the binding).
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
    let labels = stores.namespace_labels(&namespace);
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
    found
}

/// Warnings for an ExchangeServiceAccount: its provider missing, being deleted, or using
/// another authentication method than its credentials.
pub fn for_account(account: &ExchangeServiceAccount, stores: &Stores) -> Vec<String> {
    let wanted = &account.spec.provider_ref.name;
    let guard = stores.provider(wanted);
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
