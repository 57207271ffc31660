//! Pure resolution shared by `mailops check` and the controllers: which provider a binding
//! uses, its effective login, which namespaces a policy admits, and the effective
//! sending/syncing/calendar settings. No client, no I/O.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::api::conditions::Reason;
use crate::api::{
    AuthMethod, AuthenticatedVia, EmailProvider, EmailProviderSpec, ExchangeServiceAccount,
    ExchangeServiceAccountSpec, LoginFormat, MailboxBinding, MailboxBindingSpec, NamespacePolicy,
    NamespaceSelector, SelectorOperator,
};
use crate::endpoints::provider_endpoints;
use crate::redact::redact_url;
use crate::{Error, Result};

fn spec_error(reason: Reason, message: impl Into<String>) -> Error {
    Error::Spec {
        reason,
        message: message.into(),
    }
}

/// The domain of an address, lowercased; `None` when it is not `local@domain`.
pub fn email_domain(address: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

/// The provider a binding uses: its explicit `providerRef`, else the single provider whose
/// `domains` holds the address's domain (exactly; a subdomain is not its parent).
pub fn resolve_provider<'a>(
    spec: &MailboxBindingSpec,
    providers: &[&'a EmailProvider],
) -> Result<&'a EmailProvider> {
    if let Some(reference) = &spec.provider_ref {
        return providers
            .iter()
            .find(|p| *p.name_any() == *reference.name)
            .copied()
            .ok_or_else(|| {
                spec_error(
                    Reason::ProviderNotFound,
                    format!(
                        "EmailProvider {:?} named in spec.providerRef does not exist",
                        reference.name
                    ),
                )
            });
    }
    let domain = email_domain(&spec.email_address).ok_or_else(|| {
        spec_error(
            Reason::ProviderNotFound,
            format!(
                "spec.emailAddress {:?} has no domain to find a provider by",
                spec.email_address
            ),
        )
    })?;
    let mut serving: Vec<&EmailProvider> = providers
        .iter()
        .filter(|p| {
            p.spec
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&domain))
        })
        .copied()
        .collect();
    match serving.len() {
        0 => Err(spec_error(
            Reason::ProviderNotFound,
            format!(
                "no EmailProvider lists domain {domain} in spec.domains; add it there or set spec.providerRef"
            ),
        )),
        1 => Ok(serving.remove(0)),
        _ => {
            let mut names: Vec<String> = serving.iter().map(|p| p.name_any()).collect();
            names.sort();
            Err(spec_error(
                Reason::AmbiguousProvider,
                format!(
                    "EmailProviders {} all serve domain {domain}; set spec.providerRef to choose one",
                    names.join(", ")
                ),
            ))
        }
    }
}

/// The login a mailbox uses under a provider's `loginFormat`.
pub fn effective_login(format: LoginFormat, address: &str, login: Option<&str>) -> Result<String> {
    match format {
        LoginFormat::EmailAddress => Ok(address.to_string()),
        LoginFormat::MailboxName => Ok(address
            .rsplit_once('@')
            .map_or(address, |(local, _)| local)
            .to_string()),
        LoginFormat::Manual => login
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                spec_error(
                    Reason::LoginRequired,
                    "spec.login is required: the provider's loginFormat is Manual",
                )
            }),
    }
}

/// Whether a label selector matches a namespace's labels (`LabelSelector` semantics: all
/// requirements must hold), refusing what Kubernetes would refuse: a selector without
/// requirements, or a requirement with the wrong `values`, matches nothing.
pub fn selector_matches(selector: &NamespaceSelector, labels: &BTreeMap<String, String>) -> bool {
    selector_is_well_formed(selector)
        && selector
            .match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        && selector.match_expressions.iter().all(|req| {
            let value = labels.get(&req.key);
            match req.operator {
                SelectorOperator::In => value.is_some_and(|v| req.values.contains(v)),
                SelectorOperator::NotIn => value.is_none_or(|v| !req.values.contains(v)),
                SelectorOperator::Exists => value.is_some(),
                SelectorOperator::DoesNotExist => value.is_none(),
            }
        })
}

/// Whether a selector means what Kubernetes would accept: at least one requirement,
/// `values` for `In`/`NotIn` and none for `Exists`/`DoesNotExist`. The CRD refuses
/// the others; one that got in anyway (stored before the rule) matches nothing.
pub fn selector_is_well_formed(selector: &NamespaceSelector) -> bool {
    let requirement_ok = |r: &crate::api::SelectorRequirement| match r.operator {
        SelectorOperator::In | SelectorOperator::NotIn => !r.values.is_empty(),
        SelectorOperator::Exists | SelectorOperator::DoesNotExist => r.values.is_empty(),
    };
    (!selector.match_labels.is_empty() || !selector.match_expressions.is_empty())
        && selector.match_expressions.iter().all(requirement_ok)
}

/// Whether a policy admits a namespace: listed by name, or its labels match the selector.
/// `labels` is `None` when the namespace's labels are unknown (then only names admit).
/// An omitted policy admits `omitted_admits_all`; a present but empty one admits nobody.
pub fn namespace_admitted(
    policy: Option<&NamespacePolicy>,
    namespace: &str,
    labels: Option<&BTreeMap<String, String>>,
    omitted_admits_all: bool,
) -> bool {
    let Some(policy) = policy else {
        return omitted_admits_all;
    };
    policy.names.iter().any(|n| n == namespace)
        || policy
            .selector
            .as_ref()
            .zip(labels)
            .is_some_and(|(selector, labels)| selector_matches(selector, labels))
}

/// Sending, syncing and calendar after the provider's switches are applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EffectiveSettings {
    /// Sending is enabled on the binding and allowed by the provider.
    pub sending: bool,
    /// Syncing is enabled on the binding and the provider receives email.
    pub syncing: bool,
    /// The calendar should be connected.
    pub calendar: bool,
    /// Switches the binding asked for that the provider turns off, for the user to see.
    pub notes: Vec<String>,
}

/// Effective settings of a binding on a provider.
pub fn effective_settings(
    provider: &EmailProviderSpec,
    binding: &MailboxBindingSpec,
    via: AuthenticatedVia,
) -> EffectiveSettings {
    let mut notes = Vec::new();
    if binding.enable_sending && !provider.send_emails {
        notes.push("enableSending has no effect: the provider has sendEmails: false".to_string());
    }
    if binding.enable_syncing && !provider.receive_emails {
        notes
            .push("enableSyncing has no effect: the provider has receiveEmails: false".to_string());
    }
    EffectiveSettings {
        sending: binding.enable_sending && provider.send_emails,
        syncing: binding.enable_syncing && provider.receive_emails,
        calendar: binding
            .connect_calendar
            .unwrap_or(via == AuthenticatedVia::ServiceAccount),
        notes,
    }
}

/// Whether a service account may use its provider: not when the account was created
/// after the provider's deletion began (it would hold that deletion forever). An account
/// that predates the deletion keeps working while its provider drains.
pub fn check_account_may_attach(
    account: &ExchangeServiceAccount,
    provider: &EmailProvider,
) -> Result<()> {
    let (Some(deleting), Some(created)) = (
        provider.metadata.deletion_timestamp.as_ref(),
        account.metadata.creation_timestamp.as_ref(),
    ) else {
        return Ok(());
    };
    if created.0 < deleting.0 {
        return Ok(());
    }
    Err(spec_error(
        Reason::ProviderTerminating,
        format!(
            "EmailProvider {:?} is being deleted; no new service account may use it",
            provider.name_any()
        ),
    ))
}

/// Whether a service account's credentials fit its provider's authentication method.
pub fn check_service_account_fits(
    account: &ExchangeServiceAccountSpec,
    provider: &EmailProviderSpec,
) -> Result<()> {
    let creds = account.credentials.as_ref();
    let has_basic = creds.is_some_and(|c| c.basic.is_some());
    let has_oauth2 = creds.is_some_and(|c| c.oauth2.is_some());
    match provider.authentication.method {
        AuthMethod::Basic if !has_basic => Err(spec_error(
            Reason::AuthMethodMismatch,
            format!(
                "the provider {:?} uses Basic authentication, so spec.credentials.basic (an impersonation account) is required",
                account.provider_ref.name
            ),
        )),
        AuthMethod::OAuth2 if has_basic => Err(spec_error(
            Reason::AuthMethodMismatch,
            format!(
                "the provider {:?} uses OAuth2, so spec.credentials.basic cannot be used; use spec.credentials.oauth2 or omit credentials",
                account.provider_ref.name
            ),
        )),
        _ => {
            debug_assert!(!(has_basic && has_oauth2), "CEL forbids both");
            Ok(())
        }
    }
}

/// What the rest of the world looks like to a binding: everything resolution reads.
#[derive(Clone, Copy, Debug)]
pub struct Catalog<'a> {
    /// All EmailProviders.
    pub providers: &'a [&'a EmailProvider],
    /// All ExchangeServiceAccounts.
    pub service_accounts: &'a [&'a ExchangeServiceAccount],
    /// Whether `http://` endpoint overrides are allowed.
    pub allow_insecure_endpoints: bool,
}

/// A binding fully resolved against the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// Name of the provider in use.
    pub provider: String,
    /// Name of the service account, when authenticating through one.
    pub service_account: Option<String>,
    /// Effective login.
    pub login: String,
    /// Through what the mailbox authenticates.
    pub via: AuthenticatedVia,
    /// EWS URL or Graph base in use.
    pub endpoint: String,
    /// Effective switches.
    pub settings: EffectiveSettings,
}

/// Resolve a binding: provider, namespace admission, login, service account, endpoint and
/// settings, in the order a user would fix them. `namespace_labels` are the labels of the
/// binding's namespace, if known. A provider or service account being deleted only
/// refuses bindings that were not already attached to it (`status.provider`).
pub fn resolve_binding(
    binding: &MailboxBinding,
    catalog: Catalog<'_>,
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> Result<Resolution> {
    let spec = &binding.spec;
    let namespace = binding.namespace().unwrap_or_default();
    let attached_provider = binding.status.as_ref().and_then(|s| s.provider.as_deref());

    let provider = resolve_provider(spec, catalog.providers)?;
    let provider_name = provider.name_any();
    check_provider_may_attach(provider, attached_provider, &namespace, namespace_labels)?;
    let login = effective_login(
        provider.spec.login_format,
        &spec.email_address,
        spec.login.as_deref(),
    )?;

    let (via, service_account) = match &spec.authentication.service_account_ref {
        Some(reference) => {
            let account = resolve_service_account(
                binding,
                &reference.name,
                &provider_name,
                catalog,
                namespace_labels,
            )?;
            (AuthenticatedVia::ServiceAccount, Some(account.name_any()))
        }
        None => (AuthenticatedVia::Credentials, None),
    };
    // Shown in the binding's status and messages, in the tenant's namespace: never with
    // userinfo or a query, whatever an override carries.
    let endpoint = redact_url(
        &provider_endpoints(&provider.spec, catalog.allow_insecure_endpoints)?.mailbox_endpoint,
    );
    Ok(Resolution {
        provider: provider_name,
        service_account,
        login,
        via,
        endpoint,
        settings: effective_settings(&provider.spec, spec, via),
    })
}

/// A provider being deleted takes no new mailbox, and the binding's namespace must be
/// one its `allowedNamespaces` admits.
fn check_provider_may_attach(
    provider: &EmailProvider,
    attached_provider: Option<&str>,
    namespace: &str,
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> Result<()> {
    let provider_name = provider.name_any();
    if provider.metadata.deletion_timestamp.is_some()
        && attached_provider != Some(provider_name.as_str())
    {
        return Err(spec_error(
            Reason::ProviderTerminating,
            format!(
                "EmailProvider {provider_name:?} is being deleted; no new mailbox may attach to it"
            ),
        ));
    }
    if !namespace_admitted(
        provider.spec.allowed_namespaces.as_ref(),
        namespace,
        namespace_labels,
        true,
    ) {
        return Err(spec_error(
            Reason::NamespaceNotAllowed,
            format!(
                "namespace {namespace:?} is not admitted by EmailProvider {provider_name:?} spec.allowedNamespaces"
            ),
        ));
    }
    Ok(())
}

fn resolve_service_account<'a>(
    binding: &MailboxBinding,
    name: &str,
    provider_name: &str,
    catalog: Catalog<'a>,
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> Result<&'a ExchangeServiceAccount> {
    let namespace = binding.namespace().unwrap_or_default();
    let account = catalog
        .service_accounts
        .iter()
        .find(|a| a.name_any() == name)
        .copied()
        .ok_or_else(|| {
            spec_error(
                Reason::ServiceAccountNotFound,
                format!("ExchangeServiceAccount {name:?} named in spec.authentication.serviceAccountRef does not exist"),
            )
        })?;
    if *account.spec.provider_ref.name != *provider_name {
        return Err(spec_error(
            Reason::ServiceAccountProviderMismatch,
            format!(
                "ExchangeServiceAccount {name:?} belongs to EmailProvider {:?}, but this mailbox uses {provider_name:?}",
                account.spec.provider_ref.name
            ),
        ));
    }
    // A binding already counted by this account keeps working while the account drains;
    // one attached through another account may not move to it.
    let attached = binding.attached_service_account() == Some(name)
        && binding.status.as_ref().and_then(|s| s.provider.as_deref()) == Some(provider_name);
    if account.metadata.deletion_timestamp.is_some() && !attached {
        return Err(spec_error(
            Reason::ServiceAccountTerminating,
            format!("ExchangeServiceAccount {name:?} is being deleted; no new mailbox may use it"),
        ));
    }
    if !namespace_admitted(
        account.spec.allowed_namespaces.as_ref(),
        &namespace,
        namespace_labels,
        false,
    ) {
        return Err(spec_error(
            Reason::NamespaceNotAllowed,
            format!(
                "namespace {namespace:?} is not admitted by ExchangeServiceAccount {name:?} spec.allowedNamespaces (only namespaces an admin names there may use it)"
            ),
        ));
    }
    Ok(account)
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
