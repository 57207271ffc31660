//! Unit tests for `resolve`, fed from YAML fixtures.

use std::collections::BTreeMap;

use super::*;
use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};

fn provider(name: &str, extra: &str) -> EmailProvider {
    let yaml = format!(
        "apiVersion: mailops.dev/v1alpha1\nkind: EmailProvider\nmetadata: {{name: {name}}}\nspec:\n  serviceType: Exchange\n  serviceAddress: mail.{name}.example\n  authentication: {{method: Basic}}\n{extra}"
    );
    serde_saphyr::from_str(&yaml).unwrap()
}

fn account(name: &str, provider: &str, extra: &str) -> ExchangeServiceAccount {
    let yaml = format!(
        "apiVersion: mailops.dev/v1alpha1\nkind: ExchangeServiceAccount\nmetadata: {{name: {name}}}\nspec:\n  providerRef: {{name: {provider}}}\n  credentials: {{basic: {{secretRef: {{namespace: mailops, name: impersonation}}}}}}\n{extra}"
    );
    serde_saphyr::from_str(&yaml).unwrap()
}

fn binding(namespace: &str, spec: &str) -> MailboxBinding {
    let yaml = format!(
        "apiVersion: mailops.dev/v1alpha1\nkind: MailboxBinding\nmetadata: {{name: b, namespace: {namespace}}}\nspec:\n{spec}"
    );
    serde_saphyr::from_str(&yaml).unwrap()
}

const VIA_CREDS: &str = "  authentication: {credentialsSecretRef: {name: creds}}\n";

fn reason(result: Result<impl std::fmt::Debug>) -> Reason {
    result.unwrap_err().reason().unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn provider_is_found_by_domain_case_insensitively() {
    let p = provider("contoso", "  domains: [contoso.com]\n");
    let b = binding(
        "sales",
        &format!("  emailAddress: Jane@CONTOSO.com\n{VIA_CREDS}"),
    );
    assert_eq!(
        resolve_provider(&b.spec, &[&p]).unwrap().name_any(),
        "contoso"
    );
}

#[test]
fn subdomain_is_not_the_parent_domain() {
    let p = provider("contoso", "  domains: [contoso.com]\n");
    let b = binding(
        "sales",
        &format!("  emailAddress: jane@eu.contoso.com\n{VIA_CREDS}"),
    );
    assert_eq!(
        reason(resolve_provider(&b.spec, &[&p])),
        Reason::ProviderNotFound
    );
}

#[test]
fn two_providers_for_one_domain_are_ambiguous_and_named() {
    let a = provider("b-second", "  domains: [contoso.com]\n");
    let c = provider("a-first", "  domains: [contoso.com, fabrikam.com]\n");
    let b = binding(
        "sales",
        &format!("  emailAddress: jane@contoso.com\n{VIA_CREDS}"),
    );
    let err = resolve_provider(&b.spec, &[&a, &c]).unwrap_err();
    assert_eq!(err.reason(), Some(Reason::AmbiguousProvider));
    assert!(err.to_string().contains("a-first, b-second"), "{err}");
}

#[test]
fn explicit_provider_ref_wins_over_domains_and_must_exist() {
    let a = provider("contoso", "  domains: [contoso.com]\n");
    let other = provider("other", "");
    let b = binding(
        "sales",
        &format!("  emailAddress: jane@contoso.com\n  providerRef: {{name: other}}\n{VIA_CREDS}"),
    );
    assert_eq!(
        resolve_provider(&b.spec, &[&a, &other]).unwrap().name_any(),
        "other"
    );
    let missing = binding(
        "sales",
        &format!("  emailAddress: jane@contoso.com\n  providerRef: {{name: gone}}\n{VIA_CREDS}"),
    );
    let err = resolve_provider(&missing.spec, &[&a]).unwrap_err();
    assert_eq!(err.reason(), Some(Reason::ProviderNotFound));
    assert!(err.to_string().contains("\"gone\""), "{err}");
}

#[test]
fn login_follows_login_format() {
    assert_eq!(
        effective_login(LoginFormat::EmailAddress, "jane@contoso.com", Some("x")).unwrap(),
        "jane@contoso.com"
    );
    assert_eq!(
        effective_login(LoginFormat::MailboxName, "jane@contoso.com", None).unwrap(),
        "jane"
    );
    assert_eq!(
        effective_login(
            LoginFormat::Manual,
            "jane@contoso.com",
            Some("CONTOSO\\jdoe")
        )
        .unwrap(),
        "CONTOSO\\jdoe"
    );
}

#[test]
fn manual_login_missing_is_login_required() {
    assert_eq!(
        reason(effective_login(
            LoginFormat::Manual,
            "jane@contoso.com",
            None
        )),
        Reason::LoginRequired
    );
    assert_eq!(
        reason(effective_login(
            LoginFormat::Manual,
            "jane@contoso.com",
            Some("  ")
        )),
        Reason::LoginRequired
    );
}

#[test]
fn selector_match_and_mismatch() {
    let policy: NamespacePolicy = serde_saphyr::from_str(
        "selector:\n  matchLabels: {team: sales}\n  matchExpressions:\n  - {key: env, operator: In, values: [prod, staging]}\n  - {key: frozen, operator: DoesNotExist}\n",
    )
    .unwrap();
    let yes = labels(&[("team", "sales"), ("env", "prod")]);
    assert!(namespace_admitted(Some(&policy), "ns", Some(&yes), false));
    let wrong_env = labels(&[("team", "sales"), ("env", "dev")]);
    assert!(!namespace_admitted(
        Some(&policy),
        "ns",
        Some(&wrong_env),
        false
    ));
    let frozen = labels(&[("team", "sales"), ("env", "prod"), ("frozen", "")]);
    assert!(!namespace_admitted(
        Some(&policy),
        "ns",
        Some(&frozen),
        false
    ));
    assert!(
        !namespace_admitted(Some(&policy), "ns", None, true),
        "unknown labels never match a selector"
    );

    let not_in: NamespaceSelector =
        serde_saphyr::from_str("matchExpressions: [{key: tier, operator: NotIn, values: [free]}, {key: team, operator: Exists}]").unwrap();
    assert!(selector_matches(&not_in, &labels(&[("team", "x")])));
    assert!(!selector_matches(
        &not_in,
        &labels(&[("team", "x"), ("tier", "free")])
    ));
    assert!(!selector_matches(&not_in, &labels(&[])));
}

#[test]
fn names_admit_and_omitted_policy_follows_the_kind() {
    let policy: NamespacePolicy = serde_saphyr::from_str("names: [sales]").unwrap();
    assert!(namespace_admitted(Some(&policy), "sales", None, false));
    assert!(!namespace_admitted(Some(&policy), "support", None, true));
    assert!(
        namespace_admitted(None, "any", None, true),
        "provider: omitted admits all"
    );
    assert!(
        !namespace_admitted(None, "any", None, false),
        "service account: omitted admits none"
    );
    let empty = NamespacePolicy::default();
    assert!(
        !namespace_admitted(Some(&empty), "any", Some(&labels(&[("a", "b")])), true),
        "empty admits none"
    );
    // Kubernetes reads an empty LabelSelector as "everything"; here it is an admin's typo
    // (`matchLabels: null` pruned to `{}`) and admits nobody.
    let typo: NamespacePolicy = serde_saphyr::from_str("selector: {}").unwrap();
    assert!(!namespace_admitted(
        Some(&typo),
        "any",
        Some(&labels(&[])),
        false
    ));
    let explicit: NamespacePolicy = serde_saphyr::from_str(
        "selector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: Exists}]}",
    )
    .unwrap();
    assert!(namespace_admitted(
        Some(&explicit),
        "any",
        Some(&labels(&[("kubernetes.io/metadata.name", "any")])),
        false
    ));
}

fn catalog<'a>(
    providers: &'a [&'a EmailProvider],
    accounts: &'a [&'a ExchangeServiceAccount],
) -> Catalog<'a> {
    Catalog {
        providers,
        service_accounts: accounts,
        allow_insecure_endpoints: false,
    }
}

#[test]
fn empty_service_account_policy_admits_nobody() {
    let p = provider("contoso", "  domains: [contoso.com]\n");
    let a = account("org", "contoso", "");
    let b = binding(
        "sales",
        "  emailAddress: jane@contoso.com\n  authentication: {serviceAccountRef: {name: org}}\n",
    );
    let err = resolve_binding(&b, catalog(&[&p], &[&a]), None).unwrap_err();
    assert_eq!(err.reason(), Some(Reason::NamespaceNotAllowed));
    assert!(
        err.to_string().contains("ExchangeServiceAccount \"org\""),
        "{err}"
    );
    let empty = account("org", "contoso", "  allowedNamespaces: {}\n");
    assert_eq!(
        reason(resolve_binding(&b, catalog(&[&p], &[&empty]), None)),
        Reason::NamespaceNotAllowed
    );
}

#[test]
fn service_account_binding_resolves_with_calendar_by_default() {
    let p = provider(
        "contoso",
        "  domains: [contoso.com]\n  loginFormat: MailboxName\n  sendEmails: false\n",
    );
    let a = account(
        "org",
        "contoso",
        "  allowedNamespaces: {selector: {matchLabels: {mail: enabled}}}\n",
    );
    let b = binding(
        "sales",
        "  emailAddress: jane@contoso.com\n  enableSending: true\n  enableSyncing: true\n  authentication: {serviceAccountRef: {name: org}}\n",
    );
    let ns = labels(&[("mail", "enabled")]);
    let r = resolve_binding(&b, catalog(&[&p], &[&a]), Some(&ns)).unwrap();
    assert_eq!(r.provider, "contoso");
    assert_eq!(r.service_account.as_deref(), Some("org"));
    assert_eq!(r.login, "jane");
    assert_eq!(r.via, AuthenticatedVia::ServiceAccount);
    assert_eq!(r.endpoint, "https://mail.contoso.example/EWS/Exchange.asmx");
    assert!(r.settings.calendar);
    assert!(r.settings.syncing);
    assert!(!r.settings.sending, "provider sendEmails: false wins");
    assert_eq!(r.settings.notes.len(), 1);
}

#[test]
fn own_credentials_do_not_connect_calendar_unless_asked() {
    let p = provider("contoso", "  domains: [contoso.com]\n");
    let b = binding(
        "sales",
        &format!("  emailAddress: jane@contoso.com\n{VIA_CREDS}"),
    );
    let r = resolve_binding(&b, catalog(&[&p], &[]), None).unwrap();
    assert_eq!(r.via, AuthenticatedVia::Credentials);
    assert!(!r.settings.calendar);
    let asked = binding(
        "sales",
        &format!("  emailAddress: jane@contoso.com\n  connectCalendar: true\n{VIA_CREDS}"),
    );
    assert!(
        resolve_binding(&asked, catalog(&[&p], &[]), None)
            .unwrap()
            .settings
            .calendar
    );
}

#[test]
fn provider_policy_refuses_namespace() {
    let p = provider(
        "contoso",
        "  domains: [contoso.com]\n  allowedNamespaces: {names: [support]}\n",
    );
    let b = binding(
        "sales",
        &format!("  emailAddress: jane@contoso.com\n{VIA_CREDS}"),
    );
    let err = resolve_binding(&b, catalog(&[&p], &[]), None).unwrap_err();
    assert_eq!(err.reason(), Some(Reason::NamespaceNotAllowed));
    assert!(
        err.to_string().contains("EmailProvider \"contoso\""),
        "{err}"
    );
}

#[test]
fn service_account_must_exist_and_belong_to_the_provider() {
    let p = provider("contoso", "  domains: [contoso.com]\n");
    let q = provider("fabrikam", "");
    let foreign = account("org", "fabrikam", "  allowedNamespaces: {names: [sales]}\n");
    let b = binding(
        "sales",
        "  emailAddress: jane@contoso.com\n  authentication: {serviceAccountRef: {name: org}}\n",
    );
    assert_eq!(
        reason(resolve_binding(&b, catalog(&[&p, &q], &[]), None)),
        Reason::ServiceAccountNotFound
    );
    assert_eq!(
        reason(resolve_binding(&b, catalog(&[&p, &q], &[&foreign]), None)),
        Reason::ServiceAccountProviderMismatch
    );
}

#[test]
fn terminating_provider_refuses_new_bindings_but_keeps_attached_ones() {
    let mut p = provider("contoso", "  domains: [contoso.com]\n");
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-01-01T00:00:00Z".parse().unwrap(),
    ));
    let mut b = binding(
        "sales",
        &format!("  emailAddress: jane@contoso.com\n{VIA_CREDS}"),
    );
    assert_eq!(
        reason(resolve_binding(&b, catalog(&[&p], &[]), None)),
        Reason::ProviderTerminating
    );
    b.status = Some(Box::new(crate::api::MailboxBindingStatus {
        provider: Some("contoso".into()),
        ..Default::default()
    }));
    assert!(resolve_binding(&b, catalog(&[&p], &[]), None).is_ok());
}

#[test]
fn service_account_credentials_must_fit_the_provider_method() {
    let basic_provider = provider("contoso", "");
    let no_creds: ExchangeServiceAccount = serde_saphyr::from_str(
        "apiVersion: mailops.dev/v1alpha1\nkind: ExchangeServiceAccount\nmetadata: {name: org}\nspec: {providerRef: {name: contoso}}\n",
    )
    .unwrap();
    assert_eq!(
        reason(check_service_account_fits(
            &no_creds.spec,
            &basic_provider.spec
        )),
        Reason::AuthMethodMismatch
    );
    let with_basic = account("org", "contoso", "");
    assert!(check_service_account_fits(&with_basic.spec, &basic_provider.spec).is_ok());
    let mut oauth_provider = basic_provider.clone();
    oauth_provider.spec.authentication.method = AuthMethod::OAuth2;
    assert_eq!(
        reason(check_service_account_fits(
            &with_basic.spec,
            &oauth_provider.spec
        )),
        Reason::AuthMethodMismatch
    );
    assert!(check_service_account_fits(&no_creds.spec, &oauth_provider.spec).is_ok());
}

#[test]
fn email_domain_needs_both_parts() {
    assert_eq!(email_domain("a@B.com").as_deref(), Some("b.com"));
    assert_eq!(email_domain("@b.com"), None);
    assert_eq!(email_domain("nobody"), None);
}

#[test]
fn a_binding_attached_through_one_account_may_not_move_to_a_terminating_one() {
    let p = provider("contoso", "  domains: [contoso.com]\n");
    let admit = "  allowedNamespaces: {names: [sales]}\n";
    let a = account("a", "contoso", admit);
    let mut b_account = account("b", "contoso", admit);
    b_account.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:00Z".parse().unwrap(),
        ));
    let mut binding = binding(
        "sales",
        "  emailAddress: jane@contoso.com\n  authentication: {serviceAccountRef: {name: b}}\n",
    );
    binding.status = Some(Box::new(crate::api::MailboxBindingStatus {
        provider: Some("contoso".into()),
        authenticated_via: Some(AuthenticatedVia::ServiceAccount),
        service_account: Some("a".into()),
        ..Default::default()
    }));
    let accounts = [&a, &b_account];
    assert_eq!(
        reason(resolve_binding(&binding, catalog(&[&p], &accounts), None)),
        Reason::ServiceAccountTerminating
    );
    // Attached through b itself, it keeps working while b drains.
    binding.status.as_mut().unwrap().service_account = Some("b".into());
    assert!(resolve_binding(&binding, catalog(&[&p], &accounts), None).is_ok());
}

#[test]
fn endpoint_overrides_never_show_credentials_or_queries() {
    let p = provider(
        "contoso",
        "  domains: [contoso.com]\n  endpoints: {ews: 'https://admin:hunter2@mail.contoso.com/EWS/Exchange.asmx?token=s3cret#x'}\n",
    );
    let b = binding(
        "sales",
        &format!("  emailAddress: jane@contoso.com\n{VIA_CREDS}"),
    );
    let r = resolve_binding(&b, catalog(&[&p], &[]), None).unwrap();
    assert_eq!(r.endpoint, "https://mail.contoso.com/EWS/Exchange.asmx");
    let insecure = provider(
        "plain",
        "  endpoints: {ews: 'http://admin:hunter2@mail.contoso.com/EWS?key=s3cret'}\n",
    );
    let message = provider_endpoints(&insecure.spec, false)
        .unwrap_err()
        .to_string();
    assert!(
        !message.contains("hunter2") && !message.contains("s3cret"),
        "{message}"
    );
    assert!(message.contains("mail.contoso.com"), "{message}");
}

#[test]
fn a_service_account_created_after_its_provider_began_deleting_may_not_attach() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let mut p = provider("contoso", "");
    let mut a = account("org", "contoso", "");
    a.metadata.creation_timestamp = Some(Time("2026-01-02T00:00:00Z".parse().unwrap()));
    assert!(
        check_account_may_attach(&a, &p).is_ok(),
        "the provider is not being deleted"
    );
    p.metadata.deletion_timestamp = Some(Time("2026-01-01T00:00:00Z".parse().unwrap()));
    assert_eq!(
        reason(check_account_may_attach(&a, &p)),
        Reason::ProviderTerminating
    );
    a.metadata.creation_timestamp = Some(Time("2025-12-31T00:00:00Z".parse().unwrap()));
    assert!(
        check_account_may_attach(&a, &p).is_ok(),
        "older accounts drain with it"
    );
}
