//! The store-backed mappers: which objects a change re-reconciles, computed from the
//! caches alone (no API server involved).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::PartialObjectMetaExt;
use kube::runtime::watcher::Event;
use mailops::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use mailops::cache::{self, Guarded, SecretMeta, Stores, Writers};
use mailops::controller::fanout::{self, Triggers};
use serde_json::{Value, json};

const API: &str = "mailops.dev/v1alpha1";

fn provider(name: &str, domains: &[&str], secret: Option<(&str, &str)>) -> Guarded<EmailProvider> {
    let auth = match secret {
        Some((ns, n)) => json!({"method": "OAuth2", "oauth2": {"clientId": "c", "tenantId": "t",
            "clientSecretRef": {"namespace": ns, "name": n}}}),
        None => json!({"method": "Basic"}),
    };
    serde_json::from_value(json!({
        "apiVersion": API, "kind": "EmailProvider", "metadata": {"name": name},
        "spec": {"serviceType": "Exchange", "serviceAddress": "mail.contoso.com", "domains": domains,
                 "authentication": auth},
    }))
    .unwrap()
}

fn account(name: &str, provider: &str) -> Guarded<ExchangeServiceAccount> {
    serde_json::from_value(json!({
        "apiVersion": API, "kind": "ExchangeServiceAccount", "metadata": {"name": name},
        "spec": {"providerRef": {"name": provider}},
    }))
    .unwrap()
}

fn binding(ns: &str, name: &str, email: &str, extra: Value) -> Guarded<MailboxBinding> {
    let mut v = json!({
        "apiVersion": API, "kind": "MailboxBinding", "metadata": {"name": name, "namespace": ns},
        "spec": {"emailAddress": email, "authentication": {"credentialsSecretRef": {"name": name}}},
    });
    if let (Some(target), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in extra {
            if k == "spec" {
                for (sk, sv) in val.as_object().unwrap() {
                    target["spec"][sk] = sv.clone();
                }
            } else {
                target.insert(k.clone(), val.clone());
            }
        }
    }
    serde_json::from_value(v).unwrap()
}

fn setup() -> (Stores, Writers) {
    let (stores, mut w) = cache::stores();
    for p in [
        provider("contoso", &["contoso.com"], Some(("ops", "app"))),
        provider("fabrikam", &["fabrikam.com"], None),
    ] {
        fanout::observe(&mut w.providers, &stores, &Event::Apply(p));
    }
    fanout::observe(
        &mut w.service_accounts,
        &stores,
        &Event::Apply(account("svc", "contoso")),
    );
    for b in [
        binding("team-a", "by-domain", "a@contoso.com", json!({})),
        binding(
            "team-a",
            "by-ref",
            "b@elsewhere.org",
            json!({"spec": {"providerRef": {"name": "contoso"}}}),
        ),
        binding("team-b", "fab", "c@fabrikam.com", json!({})),
        binding(
            "team-b",
            "via-svc",
            "d@contoso.com",
            json!({"spec": {"authentication": {"serviceAccountRef": {"name": "svc"}}},
                   "status": {"provider": "contoso", "authenticatedVia": "ServiceAccount"}}),
        ),
    ] {
        fanout::observe(&mut w.bindings, &stores, &Event::Apply(b));
    }
    (stores, w)
}

fn names(set: &BTreeSet<(String, String)>) -> Vec<String> {
    set.iter().map(|(ns, n)| format!("{ns}/{n}")).collect()
}

#[test]
fn a_provider_change_reaches_its_accounts_and_bindings_by_ref_domain_and_attachment() {
    let (stores, _w) = setup();
    let t = fanout::for_provider(&provider("contoso", &["contoso.com"], None), &stores);
    assert_eq!(t.service_accounts, BTreeSet::from(["svc".to_string()]));
    assert_eq!(
        names(&t.bindings),
        ["team-a/by-domain", "team-a/by-ref", "team-b/via-svc"]
    );
    assert_eq!(t.providers, BTreeSet::from(["contoso".to_string()]));
}

#[test]
fn a_binding_change_reaches_the_providers_serving_its_domain_and_its_account() {
    let (stores, _w) = setup();
    let b = binding(
        "team-b",
        "via-svc",
        "d@contoso.com",
        json!({"spec": {"authentication": {"serviceAccountRef": {"name": "svc"}}}}),
    );
    let t = fanout::for_binding(&b, &stores);
    assert_eq!(t.providers, BTreeSet::from(["contoso".to_string()]));
    assert_eq!(t.service_accounts, BTreeSet::from(["svc".to_string()]));
}

#[test]
fn moving_a_binding_between_providers_reconciles_both() {
    let (stores, mut w) = setup();
    let mut moved = binding(
        "team-a",
        "by-ref",
        "b@elsewhere.org",
        json!({"spec": {"providerRef": {"name": "fabrikam"}}}),
    );
    // A spec change: the API server bumps the generation.
    moved.0.as_mut().unwrap().metadata.generation = Some(2);
    let t = fanout::observe(&mut w.bindings, &stores, &Event::Apply(moved));
    assert_eq!(
        t.providers,
        BTreeSet::from(["contoso".to_string(), "fabrikam".to_string()])
    );
}

#[test]
fn deleting_the_last_user_re_reconciles_what_it_held() {
    let (stores, mut w) = setup();
    let gone = binding("team-b", "via-svc", "d@contoso.com", json!({}));
    let t = fanout::observe(&mut w.bindings, &stores, &Event::Delete(gone));
    // The cached version still named the account and was attached to the provider.
    assert!(t.service_accounts.contains("svc"));
    assert!(t.providers.contains("contoso"));
    assert_eq!(stores.bindings.state().len(), 3);
}

/// A Secret's metadata at a version, as the metadata watch delivers it.
fn secret(ns: &str, name: &str, version: &str) -> SecretMeta {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.metadata.namespace = Some(ns.into());
    s.metadata.resource_version = Some(version.into());
    s.metadata.into_response_partial::<Secret>()
}

#[test]
fn a_secret_change_reaches_its_readers_and_the_mailboxes_depending_on_them() {
    let (stores, _w) = setup();
    let t = fanout::for_secret(&secret("ops", "app", "x"), &stores);
    assert_eq!(t.providers, BTreeSet::from(["contoso".to_string()]));
    // via-svc is attached to contoso, whose app secret this is.
    assert!(names(&t.bindings).contains(&"team-b/via-svc".to_string()));
    let own = fanout::for_secret(&secret("team-b", "fab", "x"), &stores);
    assert_eq!(names(&own.bindings), ["team-b/fab"]);
    let unrelated = fanout::for_secret(&secret("team-c", "fab", "x"), &stores);
    assert_eq!(unrelated, Triggers::default());
}

#[test]
fn a_new_version_of_a_secret_and_a_namespaces_labels_trigger() {
    let (stores, mut w) = setup();
    let s = secret("team-b", "fab", "1");
    let first = fanout::observe(&mut w.secrets, &stores, &Event::Apply(s.clone()));
    assert_eq!(names(&first.bindings), ["team-b/fab"]);
    // Only metadata is watched: any new version may be new data, and its readers look
    // (a reader whose values are unchanged neither probes nor writes: see
    // controller_secrets). The same version again is nothing.
    let same = fanout::observe(&mut w.secrets, &stores, &Event::Apply(s.clone()));
    assert_eq!(same, Triggers::default());
    let next = fanout::observe(
        &mut w.secrets,
        &stores,
        &Event::Apply(secret("team-b", "fab", "2")),
    );
    assert_eq!(names(&next.bindings), ["team-b/fab"]);

    let mut ns = Namespace::default();
    ns.metadata.name = Some("team-a".into());
    let t = fanout::for_namespace(&ns, &stores);
    assert_eq!(names(&t.bindings), ["team-a/by-domain", "team-a/by-ref"]);
}

#[test]
fn a_relist_reconciles_everything_once() {
    let (stores, mut w) = setup();
    let relist = [
        Event::Init,
        Event::InitApply(provider("contoso", &["contoso.com"], None)),
        Event::InitApply(provider("fabrikam", &["fabrikam.com"], None)),
        Event::InitDone,
    ];
    let mut t = Triggers::default();
    for event in &relist {
        t = fanout::observe(&mut w.providers, &stores, event);
    }
    assert_eq!(t.providers.len(), 2);
    assert_eq!(t.service_accounts.len(), 1);
    assert_eq!(t.bindings.len(), 4);
}

fn with_status(mut p: Guarded<EmailProvider>, ready: &str, count: i32) -> Guarded<EmailProvider> {
    let status = serde_json::from_value(json!({
        "mailboxCount": count,
        "conditions": [{"type": "Ready", "status": ready, "reason": "Verified", "message": "m",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    }))
    .unwrap();
    if let Ok(p) = p.0.as_mut() {
        p.status = Some(status);
    }
    p
}

#[test]
fn a_providers_own_count_update_triggers_nothing_but_its_readiness_does() {
    let (stores, mut w) = setup();
    let base = provider("contoso", &["contoso.com"], Some(("ops", "app")));
    let mut step =
        |p: Guarded<EmailProvider>| fanout::observe(&mut w.providers, &stores, &Event::Apply(p));
    step(with_status(base.clone(), "True", 1));
    assert_eq!(
        step(with_status(base.clone(), "True", 2)),
        Triggers::default()
    );
    let t = step(with_status(base, "False", 2));
    assert_eq!(t.bindings.len(), 3, "bindings wait on the provider's Ready");
}

#[test]
fn a_standby_queues_nothing_until_it_leads() {
    let (stores, _w) = setup();
    let (senders, mut receivers) = fanout::channels();
    senders.send(fanout::everything(&stores));
    assert!(
        receivers.providers.try_recv().is_err(),
        "nothing queued while inactive"
    );
    assert_eq!(receivers.bindings.counts(), (0, 0));
    senders.activate(&stores);
    assert_eq!(receivers.bindings.counts(), (4, 0), "four bindings wait");
    assert!(receivers.providers.try_recv().is_ok());
}
