//! A provider's CA bundle from `spec.tls.caBundleFrom`, by reference, against the mock API
//! server: every ConfigMap's metadata is watched, and the data only of the one a provider
//! names is read, with one GET per version, and held (asserted through the cache and the
//! requests, not by memory); a new version re-verifies the provider, its accounts and its
//! mailboxes under the new bundle (asserted through the trust the backend was handed); a
//! missing ConfigMap or key is named and waits for a change; a Secret serves as well.

mod mock_api;
use mock_api::*;

use mailops::api::TlsSpec;
use mailops::exchange::trust::provider_trust;

const KEY: &str = "trust-bundle.pem";
const PROVIDER_STATUS: &str = "/apis/mailops.dev/v1alpha1/emailproviders/onprem/status";
const ROOTS: &str = "/api/v1/namespaces/certs/configmaps/roots";
const JANE_STATUS: &str =
    "/apis/mailops.dev/v1alpha1/namespaces/team-a/mailboxbindings/jane/status";

fn ca_pem(name: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

fn key(ns: &str, name: &str) -> (String, String) {
    (ns.to_string(), name.to_string())
}

/// `spec.tls` trusting only the bundle under `KEY` of `certs/roots` (a ConfigMap, or a
/// Secret with `secret`).
fn tls(secret: bool) -> Value {
    let at = json!({"namespace": "certs", "name": "roots", "key": KEY});
    let from = if secret {
        json!({"secretKeyRef": at})
    } else {
        json!({"configMapKeyRef": at})
    };
    json!({"caBundleFrom": from, "trustPublicRoots": false})
}

/// A Basic on-premises provider trusting only its bundle, not yet judged.
fn onprem(secret: bool) -> Value {
    let mut p = basic_provider("onprem", &["contoso.com"]);
    p["spec"]["tls"] = tls(secret);
    p["status"] = json!({});
    p
}

/// The trust the controllers should hand the backend for this bundle text.
fn trust_of(secret: bool, pem: &str) -> mailops::exchange::Trust {
    let spec: TlsSpec = serde_json::from_value(tls(secret)).unwrap();
    provider_trust(Some(&spec), Some(pem)).unwrap()
}

/// The GET of `certs/roots`, answered with `data` at `version`.
fn get_roots(version: &str, data: &[(&str, &str)]) -> Step {
    let map = config_map_object("certs", "roots", data, version);
    step(
        Method::GET,
        ROOTS,
        |_, _| {},
        serde_json::to_value(map).unwrap(),
    )
}

fn provider_status(reason: &'static str, written: Arc<Mutex<Value>>, p: Value) -> Step {
    step(
        Method::PATCH,
        PROVIDER_STATUS,
        move |_, body| {
            assert_eq!(condition(body, "Reachable")["reason"], reason, "{body}");
            *written.lock().unwrap() = body["status"].clone();
        },
        p,
    )
}

/// A provider status write that only moves `verifiedInputs` (what it was verified with).
fn inputs_moved(written: Arc<Mutex<Value>>, p: Value) -> Step {
    step(
        Method::PATCH,
        PROVIDER_STATUS,
        move |_, body| {
            let mut before = written.lock().unwrap().clone();
            assert_ne!(body["status"]["verifiedInputs"], before["verifiedInputs"]);
            before["verifiedInputs"] = body["status"]["verifiedInputs"].clone();
            assert_eq!(body["status"], before, "nothing else moved");
        },
        p,
    )
}

/// The provider, and the metadata of its bundle ConfigMap and of two others nobody names.
fn onprem_and_strangers(h: &mut Harness) -> Arc<Guarded<EmailProvider>> {
    let obj = h.provider(onprem(false));
    h.config_map_meta_at("certs", "roots", "5");
    h.config_map_meta_at("kube-system", "kube-root-ca.crt", "2");
    h.config_map_meta_at("team-b", "app-settings", "3");
    obj
}

#[tokio::test]
async fn a_bundle_config_map_is_read_once_and_held_and_no_other_is() {
    let mut h = harness();
    let obj = onprem_and_strangers(&mut h);
    let pem = ca_pem("Contoso Root CA");
    let written = Arc::new(Mutex::new(Value::Null));
    let v = h.verifier(vec![
        get_roots("5", &[(KEY, &pem)]),
        provider_status("Verified", written.clone(), onprem(false)),
        event_step("default", "Normal", "Verified"),
    ]);
    run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap();
    let held = &h.ctx.stores.config_map_data;
    assert!(held.holds(&key("certs", "roots")));
    assert!(!held.holds(&key("kube-system", "kube-root-ca.crt")));
    assert!(!held.holds(&key("team-b", "app-settings")));
    assert_eq!(held.len(), 1);
    let trusts = h.backend.trusts();
    assert_eq!(trusts.len(), 1);
    assert_eq!(
        trusts[0].1,
        trust_of(false, &pem),
        "verified under the bundle"
    );
    assert_eq!(trusts[0].1.bundle_len(), 1);

    // Triggered again for something else: the bundle is held at its version, no GET.
    let mut again = onprem(false);
    again["status"] = written.lock().unwrap().clone();
    let obj = h.provider(again);
    run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(
        h.backend.provider_calls(),
        1,
        "same bundle: not probed again"
    );
    v.done().await;
}

/// An account of the provider, and jane's binding attached to it with her own password.
fn account_and_jane(h: &mut Harness) {
    h.account(json!({
        "apiVersion": API, "kind": "ExchangeServiceAccount",
        "metadata": {"name": "svc", "generation": 1},
        "spec": {"providerRef": {"name": "onprem"}},
    }));
    h.secret("team-a", "jane", &[("password", "pw")]);
    let mut b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    b["status"] = json!({"provider": "onprem"});
    h.binding(b);
}

#[tokio::test]
async fn a_changed_bundle_re_verifies_the_provider_and_what_uses_it_with_the_new_bundle() {
    let mut h = harness();
    let obj = onprem_and_strangers(&mut h);
    account_and_jane(&mut h);
    let (old, new) = (ca_pem("Old Root CA"), ca_pem("New Root CA"));
    let written = Arc::new(Mutex::new(Value::Null));
    let v = h.verifier(vec![
        get_roots("5", &[(KEY, &old)]),
        provider_status("Verified", written.clone(), onprem(false)),
        event_step("default", "Normal", "Verified"),
        // The new version: read again, verified, and the status records the new inputs.
        get_roots("6", &[(KEY, &new)]),
        inputs_moved(written.clone(), onprem(false)),
    ]);
    run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap();

    let t = h.config_map_meta_at("certs", "roots", "6");
    assert!(t.providers.contains("onprem"), "{t:?}");
    assert!(t.service_accounts.contains("svc"), "{t:?}");
    assert!(t.bindings.contains(&key("team-a", "jane")), "{t:?}");
    assert!(
        h.ctx.stores.config_map_data.is_empty(),
        "the older version's data is dropped at once"
    );
    let unrelated = h.config_map_meta_at("team-b", "app-settings", "4");
    assert_eq!(unrelated, fanout::Triggers::default());

    let mut current = onprem(false);
    current["status"] = written.lock().unwrap().clone();
    let obj = h.provider(current);
    run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(h.backend.provider_calls(), 2, "a new bundle is verified");
    let trusts = h.backend.trusts();
    assert_eq!(trusts[1].1, trust_of(false, &new));
    assert_ne!(trusts[0].1, trusts[1].1);
    v.done().await;
}

#[tokio::test]
async fn a_missing_config_map_is_named_without_a_get_and_waits_for_it() {
    let mut h = harness();
    let obj = h.provider(onprem(false));
    let v = h.verifier(vec![
        step(
            Method::PATCH,
            PROVIDER_STATUS,
            |_, body| {
                assert_eq!(condition(body, "Ready")["status"], "False", "{body}");
                let reachable = condition(body, "Reachable");
                assert_eq!(reachable["reason"], "ConfigMapNotFound", "{body}");
                let message = reachable["message"].as_str().unwrap();
                assert!(
                    message.contains("ConfigMap certs/roots referenced by EmailProvider onprem spec.tls.caBundleFrom.configMapKeyRef does not exist"),
                    "{message}"
                );
            },
            onprem(false),
        ),
        event_step("default", "Warning", "ConfigMapNotFound"),
    ]);
    let err = run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some(Reason::ConfigMapNotFound));
    assert!(err.is_permanent(), "waits for a change, not a timer");
    assert_eq!(h.backend.total_calls(), 0, "nothing was sent");
    // Its creation is that change.
    let t = h.config_map_meta_at("certs", "roots", "1");
    assert!(t.providers.contains("onprem"));
    v.done().await;
}

#[tokio::test]
async fn a_config_map_without_the_key_is_named() {
    let mut h = harness();
    let obj = onprem_and_strangers(&mut h);
    let v = h.verifier(vec![
        get_roots("5", &[("ca.crt", &ca_pem("Elsewhere"))]),
        step(
            Method::PATCH,
            PROVIDER_STATUS,
            |_, body| {
                let reachable = condition(body, "Reachable");
                assert_eq!(reachable["reason"], "ConfigMapKeyMissing", "{body}");
                let message = reachable["message"].as_str().unwrap();
                assert!(
                    message.contains(r#"has no key "trust-bundle.pem""#),
                    "{message}"
                );
                assert!(!message.contains("BEGIN"), "no bundle text: {message}");
            },
            onprem(false),
        ),
        event_step("default", "Warning", "ConfigMapKeyMissing"),
    ]);
    let err = run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some(Reason::ConfigMapKeyMissing));
    assert!(err.is_permanent());
    assert_eq!(h.backend.total_calls(), 0);
    v.done().await;
}

#[tokio::test]
async fn a_config_map_no_provider_names_any_more_is_dropped() {
    let mut h = harness();
    let obj = onprem_and_strangers(&mut h);
    let pem = ca_pem("Contoso Root CA");
    let v = h.verifier(vec![
        get_roots("5", &[(KEY, &pem)]),
        provider_status("Verified", Arc::default(), onprem(false)),
        event_step("default", "Normal", "Verified"),
    ]);
    run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert!(h.ctx.stores.config_map_data.holds(&key("certs", "roots")));
    // The provider now trusts the public roots alone.
    let mut p = onprem(false);
    p["metadata"]["generation"] = json!(2);
    p["spec"]["tls"] = json!({});
    h.provider(p);
    assert!(h.ctx.stores.config_map_data.is_empty());
    let t = h.config_map_meta_at("certs", "roots", "6");
    assert!(t.providers.is_empty(), "nobody reads it: {t:?}");
    v.done().await;
}

#[tokio::test]
async fn a_binding_is_verified_again_when_its_providers_bundle_changes() {
    let mut h = harness();
    let mut p = basic_provider("onprem", &["contoso.com"]);
    p["spec"]["tls"] = tls(false);
    h.provider(p);
    h.config_map_meta_at("certs", "roots", "5");
    h.secret("team-a", "jane", &[("password", "pw")]);
    let b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    let obj = h.binding(b.clone());
    let (old, new) = (ca_pem("Old Root CA"), ca_pem("New Root CA"));
    let written = Arc::new(Mutex::new(Value::Null));
    let keep = written.clone();
    let v = h.verifier(vec![
        get_roots("5", &[(KEY, &old)]),
        step(
            Method::PATCH,
            JANE_STATUS,
            move |_, body| {
                assert_eq!(condition(body, "Ready")["status"], "True", "{body}");
                *keep.lock().unwrap() = body["status"].clone();
            },
            b.clone(),
        ),
        event_step("team-a", "Normal", "Verified"),
        get_roots("6", &[(KEY, &new)]),
        // Verified under the new bundle: the status records the new inputs.
        step(
            Method::PATCH,
            JANE_STATUS,
            |_, body| assert_eq!(condition(body, "Ready")["status"], "True", "{body}"),
            b.clone(),
        ),
    ]);
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    let mut current = b;
    current["status"] = written.lock().unwrap().clone();
    // The same verdict is restated while the bundle stands...
    let obj = h.binding(current.clone());
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(h.backend.mailbox_calls(), 1);
    // ...and not once it moved: a new version is a change of input.
    h.config_map_meta_at("certs", "roots", "6");
    let obj = h.binding(current);
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(h.backend.mailbox_calls(), 2);
    let trusts = h.backend.trusts();
    assert_eq!(trusts[0].1, trust_of(false, &old));
    assert_eq!(trusts[1].1, trust_of(false, &new));
    v.done().await;
}

#[tokio::test]
async fn a_bundle_from_a_secret_is_read_by_reference_and_named_when_its_key_is_missing() {
    let mut h = harness();
    let obj = h.provider(onprem(true));
    h.secret_meta_at("certs", "roots", "3");
    let pem = ca_pem("Cert-Manager CA");
    let secret = |data: &[(&str, &str)], version| {
        let s = secret_object("certs", "roots", data, version);
        step(
            Method::GET,
            "/api/v1/namespaces/certs/secrets/roots",
            |_, _| {},
            serde_json::to_value(s).unwrap(),
        )
    };
    let written = Arc::new(Mutex::new(Value::Null));
    let v = h.verifier(vec![
        secret(&[("tls.crt", "x")], "3"),
        step(
            Method::PATCH,
            PROVIDER_STATUS,
            |_, body| assert_eq!(condition(body, "Reachable")["reason"], "SecretKeyMissing"),
            onprem(true),
        ),
        event_step("default", "Warning", "SecretKeyMissing"),
        secret(&[(KEY, &pem)], "4"),
        provider_status("Verified", written, onprem(true)),
        event_step("default", "Normal", "Verified"),
    ]);
    let err = run(controller::reconcile_provider(obj.clone(), h.ctx.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some(Reason::SecretKeyMissing));
    // The key is added: the Secret's readers include the provider.
    let mut meta = secret_object("certs", "roots", &[], "4").metadata;
    meta.resource_version = Some("4".into());
    let t = fanout::observe(
        &mut h.writers.secrets,
        &h.ctx.stores,
        &Event::Apply(meta.into_response_partial::<Secret>()),
    );
    assert!(t.providers.contains("onprem"), "{t:?}");
    run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert!(h.ctx.stores.secret_data.holds(&key("certs", "roots")));
    assert_eq!(h.backend.trusts()[0].1, trust_of(true, &pem));
    v.done().await;
}

#[tokio::test]
async fn an_account_is_authenticated_again_when_its_providers_bundle_changes() {
    let mut h = harness();
    h.provider(onprem(false));
    h.config_map_meta_at("certs", "roots", "5");
    h.secret("ops", "svc", &[("username", "svc"), ("password", "pw")]);
    let a = json!({
        "apiVersion": API, "kind": "ExchangeServiceAccount",
        "metadata": {"name": "svc", "generation": 1, "finalizers": ["mailops.dev/in-use"]},
        "spec": {"providerRef": {"name": "onprem"},
                 "credentials": {"basic": {"secretRef": {"namespace": "ops", "name": "svc"}}}},
    });
    let obj = h.account(a.clone());
    let (old, new) = (ca_pem("Old Root CA"), ca_pem("New Root CA"));
    let path = "/apis/mailops.dev/v1alpha1/exchangeserviceaccounts/svc/status";
    let written = Arc::new(Mutex::new(Value::Null));
    let keep = written.clone();
    let v = h.verifier(vec![
        get_roots("5", &[(KEY, &old)]),
        step(
            Method::PATCH,
            path,
            move |_, body| {
                assert_eq!(condition(body, "Ready")["status"], "True", "{body}");
                *keep.lock().unwrap() = body["status"].clone();
            },
            a.clone(),
        ),
        event_step("default", "Normal", "Verified"),
        get_roots("6", &[(KEY, &new)]),
        step(
            Method::PATCH,
            path,
            |_, body| assert_eq!(condition(body, "Ready")["status"], "True", "{body}"),
            a.clone(),
        ),
    ]);
    run(controller::reconcile_service_account(obj, h.ctx.clone()))
        .await
        .unwrap();
    let mut current = a;
    current["status"] = written.lock().unwrap().clone();
    let t = h.config_map_meta_at("certs", "roots", "6");
    assert!(t.service_accounts.contains("svc"), "{t:?}");
    let obj = h.account(current);
    run(controller::reconcile_service_account(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(h.backend.auth_calls(), 2, "verified under the new bundle");
    let trusts = h.backend.trusts();
    assert_eq!(trusts[1].1, trust_of(false, &new));
    v.done().await;
}
