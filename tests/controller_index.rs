//! The indexes behind triggers, counts and `InUse` lists, and the `mailops_objects`
//! gauge, maintained from watch events fed through the production path
//! (`fanout::observe`); nothing is set by hand.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMetaExt;
use kube::runtime::watcher::Event;
use mailops::api::{EmailProvider, MailboxBinding};
use mailops::cache::{self, Guarded, Stores, Writers};
use mailops::controller::fanout;
use mailops::metrics::Metrics;
use serde_json::{Value, json};

const API: &str = "mailops.dev/v1alpha1";

fn provider(name: &str, domains: &[&str], ready: Option<&str>) -> Guarded<EmailProvider> {
    let mut v = json!({
        "apiVersion": API, "kind": "EmailProvider", "metadata": {"name": name, "generation": 1},
        "spec": {"serviceType": "Exchange", "serviceAddress": "mail.contoso.com", "domains": domains,
                 "authentication": {"method": "Basic"}},
    });
    if let Some(r) = ready {
        v["status"] = json!({"conditions": [{"type": "Ready", "status": r, "reason": "Verified",
            "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
    }
    serde_json::from_value(v).unwrap()
}

fn binding(ns: &str, name: &str, email: &str, status: Value) -> Guarded<MailboxBinding> {
    serde_json::from_value(json!({
        "apiVersion": API, "kind": "MailboxBinding",
        "metadata": {"name": name, "namespace": ns, "generation": 1},
        "spec": {"emailAddress": email, "authentication": {"credentialsSecretRef": {"name": name}}},
        "status": status,
    }))
    .unwrap()
}

fn attached(provider: &str, ready: &str) -> Value {
    json!({"provider": provider, "authenticatedVia": "Credentials",
        "conditions": [{"type": "Ready", "status": ready, "reason": "Verified", "message": "m",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
}

fn keys(v: Vec<(String, String)>) -> Vec<String> {
    v.into_iter().map(|(ns, n)| format!("{ns}/{n}")).collect()
}

fn fresh() -> (Stores, Writers) {
    cache::stores()
}

#[test]
fn a_binding_moving_from_one_provider_to_another_moves_in_the_index() {
    let (stores, mut w) = fresh();
    let jane = binding("sales", "jane", "jane@contoso.com", attached("a", "True"));
    fanout::observe(&mut w.bindings, &stores, &Event::Apply(jane));
    assert_eq!(keys(stores.index.attached_to_provider("a")), ["sales/jane"]);
    let moved = binding("sales", "jane", "jane@contoso.com", attached("b", "True"));
    let t = fanout::observe(&mut w.bindings, &stores, &Event::Apply(moved.clone()));
    assert!(stores.index.attached_to_provider("a").is_empty());
    assert_eq!(keys(stores.index.attached_to_provider("b")), ["sales/jane"]);
    // Both providers recount; the binding's own status write does not re-run it.
    assert!(t.providers.contains("a") && t.providers.contains("b"));
    assert!(t.bindings.is_empty(), "{t:?}");
    fanout::observe(&mut w.bindings, &stores, &Event::Delete(moved));
    assert!(stores.index.attached_to_provider("b").is_empty());
    assert!(stores.index.in_namespace("sales").is_empty());
}

#[test]
fn a_providers_domains_decide_which_bindings_it_reaches() {
    let (stores, mut w) = fresh();
    let jane = binding("sales", "jane", "jane@Contoso.com", json!({}));
    fanout::observe(&mut w.bindings, &stores, &Event::Apply(jane));
    fanout::observe(
        &mut w.providers,
        &stores,
        &Event::Apply(provider("p", &["fabrikam.com"], None)),
    );
    assert!(stores.index.providers_serving("contoso.com").is_empty());
    let mut widened = provider("p", &["fabrikam.com", "CONTOSO.com"], None);
    widened.0.as_mut().unwrap().metadata.generation = Some(2);
    let t = fanout::observe(&mut w.providers, &stores, &Event::Apply(widened));
    assert_eq!(stores.index.providers_serving("contoso.com"), ["p"]);
    assert_eq!(keys(t.bindings.into_iter().collect()), ["sales/jane"]);
    let narrowed = provider("p", &["fabrikam.com"], None);
    fanout::observe(&mut w.providers, &stores, &Event::Apply(narrowed));
    assert!(stores.index.providers_serving("contoso.com").is_empty());
}

#[test]
fn a_deleted_secret_reaches_the_binding_that_read_it() {
    let (stores, mut w) = fresh();
    let jane = binding("sales", "jane", "jane@contoso.com", json!({}));
    fanout::observe(&mut w.bindings, &stores, &Event::Apply(jane));
    let mut s = Secret::default();
    s.metadata.name = Some("jane".into());
    s.metadata.namespace = Some("sales".into());
    let s = s.metadata.into_response_partial::<Secret>();
    fanout::observe(&mut w.secrets, &stores, &Event::Apply(s.clone()));
    let t = fanout::observe(&mut w.secrets, &stores, &Event::Delete(s));
    assert_eq!(keys(t.bindings.into_iter().collect()), ["sales/jane"]);
    assert!(stores.secrets.state().is_empty());
}

fn gauge(metrics: &Metrics, kind: &str, ready: &str) -> i64 {
    let needle = format!("mailops_objects{{kind=\"{kind}\",ready=\"{ready}\"}} ");
    metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(&needle).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no {needle} in /metrics"))
}

#[test]
fn the_objects_gauge_follows_watch_events() {
    let (stores, mut w) = fresh();
    let metrics = Arc::new(Metrics::new());
    stores.index.publish_to(metrics.clone());
    assert_eq!(gauge(&metrics, "MailboxBinding", "True"), 0);
    for (name, ready) in [("a", "True"), ("b", "True"), ("c", "False")] {
        let b = binding("sales", name, "x@contoso.com", attached("p", ready));
        fanout::observe(&mut w.bindings, &stores, &Event::Apply(b));
    }
    fanout::observe(
        &mut w.providers,
        &stores,
        &Event::Apply(provider("p", &[], None)),
    );
    assert_eq!(gauge(&metrics, "MailboxBinding", "True"), 2);
    assert_eq!(gauge(&metrics, "MailboxBinding", "False"), 1);
    assert_eq!(gauge(&metrics, "EmailProvider", "Unknown"), 1);
    let b = binding("sales", "a", "x@contoso.com", attached("p", "False"));
    fanout::observe(&mut w.bindings, &stores, &Event::Apply(b.clone()));
    fanout::observe(&mut w.bindings, &stores, &Event::Delete(b));
    assert_eq!(gauge(&metrics, "MailboxBinding", "True"), 1);
    assert_eq!(gauge(&metrics, "MailboxBinding", "False"), 1);
    // A re-list replaces what the index knew.
    for event in [
        Event::Init,
        Event::InitApply(provider("q", &[], Some("True"))),
        Event::InitDone,
    ] {
        fanout::observe(&mut w.providers, &stores, &event);
    }
    assert_eq!(gauge(&metrics, "EmailProvider", "Unknown"), 0);
    assert_eq!(gauge(&metrics, "EmailProvider", "True"), 1);
}

#[test]
fn cached_secrets_and_namespaces_keep_only_what_reconciles_read() {
    use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec};
    use mailops::cache::watch::Cached;
    // A Secret is watched as metadata: nothing of its data reaches the cache at all, and
    // of its metadata only what tells a reader it changed.
    let mut s = Secret::default();
    s.metadata.name = Some("helm-release".into());
    s.metadata.resource_version = Some("9".into());
    s.metadata.labels = Some([("owner".to_string(), "helm".to_string())].into());
    s.metadata.annotations = Some(
        [(
            "kubectl.kubernetes.io/last-applied-configuration".to_string(),
            "{\"data\":{\"password\":\"copy\"}}".to_string(),
        )]
        .into(),
    );
    let mut s = s.metadata.into_response_partial::<Secret>();
    s.trim();
    assert_eq!(s.metadata.labels, None);
    assert_eq!(s.metadata.annotations, None);
    assert_eq!(s.metadata.resource_version.as_deref(), Some("9"));
    let mut n = Namespace::default();
    n.metadata.labels = Some([("mail".to_string(), "on".to_string())].into());
    n.metadata.annotations = Some([("a".to_string(), "b".to_string())].into());
    n.spec = Some(NamespaceSpec::default());
    n.trim();
    assert!(n.metadata.labels.is_some(), "labels decide admission");
    assert_eq!((n.metadata.annotations, n.spec), (None, None));
}

#[test]
fn a_providers_users_are_counted_and_the_first_ten_named_without_listing_them_all() {
    let (stores, mut w) = fresh();
    for i in (0..25).rev() {
        let b = binding(
            "sales",
            &format!("b{i:02}"),
            "x@contoso.com",
            attached("a", "True"),
        );
        fanout::observe(&mut w.bindings, &stores, &Event::Apply(b));
    }
    let users = cache::usage::of_provider(&stores, "a");
    assert_eq!(users.bindings, 25);
    let named: Vec<&str> = users.first.iter().map(String::as_str).collect();
    let expected: Vec<String> = (0..10)
        .map(|i| format!("MailboxBinding sales/b{i:02}"))
        .collect();
    assert_eq!(
        named, expected,
        "the first ten by key, whatever the arrival order"
    );
    assert_eq!(cache::usage::of_provider(&stores, "b"), Default::default());
}
