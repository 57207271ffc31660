//! What a binding is verified against, through the mock API server: its provider by
//! domain or name, its namespace's admission, its Secrets; and what it reports (nothing
//! sent to Exchange) when one of those fails, or when the binding cannot be read.

mod mock_api;
use mock_api::*;

fn restricted_account() -> Value {
    json!({
        "apiVersion": API, "kind": "ExchangeServiceAccount",
        "metadata": {"name": "svc", "generation": 1, "finalizers": ["mailops.dev/in-use"]},
        "spec": {"providerRef": {"name": "exchange"},
                 "credentials": {"basic": {"secretRef": {"namespace": "mailops-system", "name": "svc"}}},
                 "allowedNamespaces": {"names": ["finance"], "selector": {"matchLabels": {"mail": "on"}}}},
        "status": ready_status(),
    })
}

/// A binding that fails resolution or credentials: one status write with the reason on
/// the named condition, one Warning Event, and nothing sent to Exchange.
async fn expect_binding_failure(
    mut h: Harness,
    b: Value,
    condition_type: &'static str,
    reason: &'static str,
) {
    let obj = h.binding(b.clone());
    let v = h.verifier(vec![
        step(
            Method::PATCH,
            "/apis/mailops.dev/v1alpha1/namespaces/team-a/mailboxbindings/jane/status",
            move |_, body| {
                let c = condition(body, condition_type);
                assert_eq!(c["status"], "False", "{body}");
                assert_eq!(c["reason"], reason, "{body}");
                assert_eq!(condition(body, "Ready")["reason"], reason);
            },
            b,
        ),
        event_step("team-a", "Warning", reason),
    ]);
    let err = run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap_err();
    assert!(err.is_permanent());
    assert_eq!(h.backend.total_calls(), 0);
    v.done().await;
}

#[tokio::test]
async fn binding_outside_the_accounts_namespaces_is_not_authorized_and_never_probed() {
    let mut h = harness();
    h.provider(basic_provider("exchange", &["contoso.com"]));
    h.account(restricted_account());
    h.secret(
        "mailops-system",
        "svc",
        &[("username", "svc"), ("password", "pw")],
    );
    h.namespace("team-a", &[("mail", "off")]);
    let b = json!({
        "apiVersion": API, "kind": "MailboxBinding",
        "metadata": {"name": "jane", "namespace": "team-a", "generation": 1},
        "spec": {"emailAddress": "jane@contoso.com", "authentication": {"serviceAccountRef": {"name": "svc"}}},
    });
    let obj = h.binding(b.clone());
    let v = h.verifier(vec![
        step(
            Method::PATCH,
            "/apis/mailops.dev/v1alpha1/namespaces/team-a/mailboxbindings/jane/status",
            |query, body| {
                is_status_apply(query);
                let a = condition(body, "Authorized");
                assert_eq!(a["status"], "False");
                assert_eq!(a["reason"], "NamespaceNotAllowed");
                assert_eq!(condition(body, "Ready")["reason"], "NamespaceNotAllowed");
            },
            b,
        ),
        event_step("team-a", "Warning", "NamespaceNotAllowed"),
    ]);
    let err = run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "waits for a change, no retry storm");
    assert_eq!(
        h.backend.total_calls(),
        0,
        "nothing may be sent to Exchange"
    );
    v.done().await;
}

#[tokio::test]
async fn binding_finds_its_provider_by_domain_and_is_verified() {
    let mut h = harness();
    h.provider(basic_provider("other", &["fabrikam.com"]));
    h.provider(basic_provider("exchange", &["contoso.com"]));
    h.secret("team-a", "jane", &[("password", "s3cret-value")]);
    let b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    let obj = h.binding(b.clone());
    let v = h.verifier(vec![
        step(
            Method::PATCH,
            "/apis/mailops.dev/v1alpha1/namespaces/team-a/mailboxbindings/jane/status",
            |query, body| {
                is_status_apply(query);
                let s = &body["status"];
                assert_eq!(s["provider"], "exchange");
                assert_eq!(s["login"], "jane@contoso.com");
                assert_eq!(s["authenticatedVia"], "Credentials");
                assert_eq!(s["endpoint"], "https://mail.contoso.com/EWS/Exchange.asmx");
                assert!(s["lastVerifiedTime"].is_string());
                assert_eq!(condition(body, "Ready")["status"], "True");
                assert_eq!(condition(body, "Verified")["status"], "True");
                assert_eq!(
                    condition(body, "CalendarConnected")["reason"],
                    "NotRequested"
                );
                assert!(!body.to_string().contains("s3cret-value"), "secret leaked");
            },
            b,
        ),
        event_step("team-a", "Normal", "Verified"),
    ]);
    let action = run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(
        action,
        Action::await_change(),
        "no timer of its own: it is verified again when its remembered probe comes due"
    );
    assert_eq!(h.ctx.mailbox_probes.len(), 1, "its probe is remembered");
    assert_eq!(h.backend.verified_addresses(), vec!["jane@contoso.com"]);
    v.done().await;
}

#[tokio::test]
async fn two_providers_for_one_domain_is_ambiguous() {
    let mut h = harness();
    h.provider(basic_provider("exchange-a", &["contoso.com"]));
    h.provider(basic_provider("exchange-b", &["contoso.com"]));
    h.secret("team-a", "jane", &[("password", "pw")]);
    let b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    expect_binding_failure(h, b, "Authorized", "AmbiguousProvider").await;
}

#[tokio::test]
async fn a_missing_secret_is_reported() {
    let mut h = harness();
    h.provider(basic_provider("exchange", &["contoso.com"]));
    let b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    expect_binding_failure(h, b, "Verified", "SecretNotFound").await;
}

#[tokio::test]
async fn a_secret_without_the_key_is_reported() {
    let mut h = harness();
    h.provider(basic_provider("exchange", &["contoso.com"]));
    h.secret("team-a", "jane", &[("refreshToken", "not-a-password")]);
    let b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    expect_binding_failure(h, b, "Verified", "SecretKeyMissing").await;
}

#[tokio::test]
async fn a_malformed_binding_is_reported_without_breaking_the_rest() {
    let mut h = harness();
    // A LIST holding one malformed object still decodes: the watch goes on.
    let list: kube::core::ObjectList<Guarded<MailboxBinding>> = serde_json::from_value(json!({
        "apiVersion": API, "kind": "MailboxBindingList", "metadata": {},
        "items": [
            {"apiVersion": API, "kind": "MailboxBinding", "metadata": {"name": "broken", "namespace": "team-a"},
             "spec": {"emailAddress": 42}},
            own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane"),
        ]
    }))
    .unwrap();
    assert!(list.items[0].0.is_err());
    assert!(list.items[1].0.is_ok());
    for item in &list.items {
        fanout::observe(
            &mut h.writers.bindings,
            &h.ctx.stores,
            &Event::Apply(item.clone()),
        );
    }
    let broken = Arc::new(list.items[0].clone());
    let v = h.verifier(vec![]);
    let action = run(controller::reconcile_binding(broken, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    assert!(h.ctx.metrics.encode().contains("result=\"malformed\""));
    assert_eq!(h.ctx.stores.bindings.state().len(), 2);
    v.done().await;
}
