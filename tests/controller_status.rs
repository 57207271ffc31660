//! The pure `build_status` of each kind, asserted as the exact status it returns
//! (linkerd's `make_patch` style): every field, every condition, in order.

use k8s_openapi::jiff::Timestamp;
use mailops::api::conditions::Reason;
use mailops::api::{AuthenticatedVia, EmailProvider, ExchangeServiceAccount, MailboxBinding};
use mailops::cache::usage::Users;
use mailops::controller::binding_status::{self as binding, Outcome, Verified};
use mailops::controller::{provider, service_account};
use mailops::exchange::{Failure, MailboxOutcome, ProviderOutcome};
use mailops::resolve::{EffectiveSettings, Resolution};
use serde_json::{Value, json};

const NOW: &str = "2026-03-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "observedGeneration": 3, "lastTransitionTime": NOW})
}

fn object<K: serde::de::DeserializeOwned>(kind: &str, namespace: Option<&str>, spec: Value) -> K {
    let mut metadata = json!({"name": "x", "generation": 3});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    serde_json::from_value(json!({"apiVersion": "mailops.dev/v1alpha1", "kind": kind,
        "metadata": metadata, "spec": spec}))
    .unwrap()
}

fn users(accounts: usize, bindings: usize) -> Users {
    Users {
        accounts,
        bindings,
        first: Vec::new(),
    }
}

#[test]
fn a_reachable_basic_provider_status() {
    let p: EmailProvider = object(
        "EmailProvider",
        None,
        json!({"serviceType": "Exchange", "serviceAddress": "mail.contoso.com",
               "authentication": {"method": "Basic"}}),
    );
    let check = provider::Check::Probed {
        address: "mail.contoso.com".into(),
        outcome: ProviderOutcome {
            reachable: Ok(()),
            authenticated: None,
        },
        inputs: 0xabc,
    };
    let status = provider::build_status(&p, &check, &users(1, 2), now());
    assert_eq!(
        serde_json::to_value(&status).unwrap(),
        json!({
            "observedGeneration": 3,
            "conditions": [
                cond("Ready", "True", "Verified", "the provider is reachable and its credentials work"),
                cond("Reachable", "True", "Verified", "endpoint answers over TLS"),
                cond("Authenticated", "True", "NotRequested", "Basic provider: no app token to obtain"),
            ],
            "serviceAddress": "mail.contoso.com",
            "verifiedInputs": "0000000000000abc",
            "mailboxCount": 2,
            "serviceAccountCount": 1,
        })
    );
}

#[test]
fn a_provider_whose_app_secret_is_missing_status() {
    let p: EmailProvider = object(
        "EmailProvider",
        None,
        json!({"serviceType": "Microsoft365", "authentication": {"method": "OAuth2", "oauth2": {
            "clientId": "app", "tenantId": "t", "clientSecretRef": {"namespace": "ops", "name": "app"}}}}),
    );
    let check = provider::Check::InvalidApp {
        address: "graph.microsoft.com".into(),
        error: mailops::Error::Spec {
            reason: Reason::SecretNotFound,
            message: "Secret ops/app does not exist".into(),
        },
    };
    let status = provider::build_status(&p, &check, &Users::default(), now());
    let message = "Secret ops/app does not exist";
    assert_eq!(
        serde_json::to_value(&status).unwrap(),
        json!({
            "observedGeneration": 3,
            "conditions": [
                cond("Ready", "False", "SecretNotFound", message),
                cond("Authenticated", "False", "SecretNotFound", message),
            ],
            "serviceAddress": "graph.microsoft.com",
            "mailboxCount": 0,
            "serviceAccountCount": 0,
        })
    );
}

#[test]
fn a_service_account_refused_by_entra_status() {
    let a: ExchangeServiceAccount = object(
        "ExchangeServiceAccount",
        None,
        json!({"providerRef": {"name": "m365"}}),
    );
    let refused: mailops::Result<()> = Err(Failure::new(
        Reason::InvalidCredentials,
        "AADSTS7000215: invalid client secret",
    )
    .into());
    let status = service_account::build_status(&a, (&refused, Some(0xabc)), &users(0, 1), now());
    let message = "AADSTS7000215: invalid client secret";
    assert_eq!(
        serde_json::to_value(&status).unwrap(),
        json!({
            "observedGeneration": 3,
            "conditions": [
                cond("Ready", "False", "InvalidCredentials", message),
                cond("Authenticated", "False", "InvalidCredentials", message),
            ],
            "mailboxCount": 1,
            "verifiedInputs": "0000000000000abc",
        })
    );
}

fn jane() -> MailboxBinding {
    let mut b: MailboxBinding = object(
        "MailboxBinding",
        Some("sales"),
        json!({"emailAddress": "jane@contoso.com",
               "authentication": {"serviceAccountRef": {"name": "org"}}}),
    );
    b.status = serde_json::from_value(json!({"lastVerifiedTime": "2026-01-01T00:00:00Z"})).unwrap();
    b
}

#[test]
fn a_verdict_known_already_keeps_the_inputs_the_status_recorded() {
    let mut b = jane();
    b.status = serde_json::from_value(
        json!({"lastVerifiedTime": "2026-01-01T00:00:00Z", "verifiedInputs": "000000000000beef"}),
    )
    .unwrap();
    let verdict = |inputs| Outcome::Verified {
        resolution: resolution(),
        inputs,
        verified: Verified {
            outcome: MailboxOutcome {
                mailbox: Ok(()),
                calendar: None,
                rotated_refresh_token: None,
            },
            at: "2026-01-01T00:00:00Z".parse().unwrap(),
        },
        write_back_failed: None,
        login_paused: None,
    };
    let kept = binding::build_status(&b, &verdict(None), now());
    assert_eq!(
        kept.verified_inputs.map(|d| d.to_string()).as_deref(),
        Some("000000000000beef")
    );
    let probed = binding::build_status(&b, &verdict(Some(0xfeed)), now());
    assert_eq!(
        probed.verified_inputs.map(|d| d.to_string()).as_deref(),
        Some("000000000000feed")
    );
}

fn resolution() -> Resolution {
    Resolution {
        provider: "contoso".into(),
        service_account: Some("org".into()),
        login: "jane@contoso.com".into(),
        via: AuthenticatedVia::ServiceAccount,
        endpoint: "https://mail.contoso.com/EWS/Exchange.asmx".into(),
        settings: EffectiveSettings {
            sending: true,
            syncing: true,
            calendar: false,
            notes: vec![],
        },
    }
}

#[test]
fn an_unresolved_binding_status_names_nothing_it_could_not_resolve() {
    let outcome = Outcome::Unresolved(mailops::Error::Spec {
        reason: Reason::NamespaceNotAllowed,
        message: "namespace \"sales\" is not admitted".into(),
    });
    let status = binding::build_status(&jane(), &outcome, now());
    let message = "namespace \"sales\" is not admitted";
    assert_eq!(
        serde_json::to_value(&status).unwrap(),
        json!({
            "observedGeneration": 3,
            "conditions": [
                cond("Ready", "False", "NamespaceNotAllowed", message),
                cond("Authorized", "False", "NamespaceNotAllowed", message),
            ],
            "lastVerifiedTime": "2026-01-01T00:00:00Z",
        })
    );
}

#[test]
fn a_verified_binding_status_records_where_and_through_what() {
    let outcome = Outcome::Verified {
        resolution: resolution(),
        inputs: Some(0xfeed),
        verified: Verified {
            outcome: MailboxOutcome {
                mailbox: Ok(()),
                calendar: None,
                rotated_refresh_token: None,
            },
            at: "2026-03-01T11:59:00Z".parse().unwrap(),
        },
        write_back_failed: None,
        login_paused: None,
    };
    let status = binding::build_status(&jane(), &outcome, now());
    assert_eq!(
        serde_json::to_value(&status).unwrap(),
        json!({
            "observedGeneration": 3,
            "conditions": [
                cond("Ready", "True", "Verified", "mailbox verified"),
                cond("Authorized", "True", "Verified", "the namespace may use the provider and account"),
                cond("Verified", "True", "Verified",
                     "Exchange confirmed https://mail.contoso.com/EWS/Exchange.asmx as jane@contoso.com"),
                cond("CalendarConnected", "False", "NotRequested", "connectCalendar is off"),
            ],
            "provider": "contoso",
            "login": "jane@contoso.com",
            "authenticatedVia": "ServiceAccount",
            "serviceAccount": "org",
            "endpoint": "https://mail.contoso.com/EWS/Exchange.asmx",
            "lastVerifiedTime": "2026-03-01T11:59:00Z",
            "verifiedInputs": "000000000000feed",
        })
    );
}
