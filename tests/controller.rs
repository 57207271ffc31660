//! Reconciler scenarios against a mock API server (the kube-rs controller-rs
//! `ApiServerVerifier` pattern): every request the reconcile makes is checked for method,
//! path and body, and a request nobody expected fails the test.

mod mock_api;
use mock_api::*;

#[tokio::test]
async fn a_remembered_probe_spares_exchange_and_the_api_server() {
    let mut h = harness();
    let mut p = basic_provider("exchange", &["contoso.com"]);
    p["status"] = json!({});
    let obj = h.provider(p.clone());
    let written = Arc::new(Mutex::new(Value::Null));
    let keep = written.clone();
    let v = h.verifier(vec![
        step(
            Method::PATCH,
            "/apis/mailops.dev/v1alpha1/emailproviders/exchange/status",
            move |_, body| *keep.lock().unwrap() = body["status"].clone(),
            p.clone(),
        ),
        event_step("default", "Normal", "Verified"),
    ]);
    run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap();
    // Re-triggered by something unrelated (a count, another object): same inputs.
    p["status"] = written.lock().unwrap().clone();
    let obj = h.provider(p);
    run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(
        h.backend.provider_calls(),
        1,
        "the second reconcile used the memory"
    );
    v.done().await;
}

#[tokio::test]
async fn provider_gets_the_finalizer_on_first_sight() {
    let mut h = harness();
    let mut p = basic_provider("exchange", &["contoso.com"]);
    p["metadata"].as_object_mut().unwrap().remove("finalizers");
    let obj = h.provider(p.clone());
    let mut held = p.clone();
    held["metadata"]["finalizers"] = json!(["mailops.dev/in-use"]);
    let v = h.verifier(vec![
        step(
            Method::PATCH,
            "/apis/mailops.dev/v1alpha1/emailproviders/exchange",
            |query, body| {
                // Server-side apply of the one entry, under its own field manager: a set,
                // so no stale-cache conflict whatever the cache holds.
                assert!(query.contains("fieldManager=mailops-finalizer"), "{query}");
                assert!(query.contains("force=true"), "{query}");
                assert_eq!(
                    body["metadata"]["finalizers"],
                    json!(["mailops.dev/in-use"])
                );
                assert_eq!(body["kind"], "EmailProvider");
            },
            held,
        ),
        step(
            Method::PATCH,
            "/apis/mailops.dev/v1alpha1/emailproviders/exchange/status",
            |query, _| is_status_apply(query),
            p,
        ),
    ]);
    // Held and checked in the same reconcile: no round trip through the watch.
    run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(h.backend.provider_calls(), 1);
    v.done().await;
}

#[tokio::test]
async fn provider_deletion_is_blocked_while_a_binding_uses_it() {
    let mut h = harness();
    let mut p = basic_provider("exchange", &["contoso.com"]);
    p["metadata"]["deletionTimestamp"] = json!("2026-01-02T00:00:00Z");
    let obj = h.provider(p.clone());
    let mut b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    b["status"] = json!({"provider": "exchange", "authenticatedVia": "Credentials"});
    h.binding(b);
    let v = h.verifier(vec![
        step(
            Method::PATCH,
            "/apis/mailops.dev/v1alpha1/emailproviders/exchange/status",
            |query, body| {
                is_status_apply(query);
                assert_eq!(body["kind"], "EmailProvider");
                let t = condition(body, "Terminating");
                assert_eq!(t["status"], "True");
                assert_eq!(t["reason"], "InUse");
                let msg = t["message"].as_str().unwrap();
                assert!(msg.contains("1 object"), "{msg}");
                assert!(msg.contains("MailboxBinding team-a/jane"), "{msg}");
                assert_eq!(body["status"]["mailboxCount"], 1);
                // Attached mailboxes keep working while the provider drains.
                assert_eq!(condition(body, "Ready")["status"], "True");
            },
            p,
        ),
        event_step("default", "Warning", "DeletionBlocked"),
    ]);
    let err = run(controller::reconcile_provider(obj.clone(), h.ctx.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some(Reason::InUse));
    // No requeue: the last user's deletion triggers the next attempt.
    assert_eq!(
        controller::error_policy(obj, &err, h.ctx.clone()),
        Action::await_change()
    );
    v.done().await;
}

#[tokio::test]
async fn provider_is_released_once_the_last_binding_is_gone() {
    let mut h = harness();
    let mut p = basic_provider("exchange", &["contoso.com"]);
    p["metadata"]["deletionTimestamp"] = json!("2026-01-02T00:00:00Z");
    let obj = h.provider(p.clone());
    let b = h.binding({
        let mut b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
        b["status"] = json!({"provider": "exchange"});
        b
    });
    h.delete_binding(&b);
    let mut released = p.clone();
    released["metadata"]["finalizers"] = json!([]);
    let v = h.verifier(vec![step(
        Method::PATCH,
        "/apis/mailops.dev/v1alpha1/emailproviders/exchange",
        |query, body| {
            assert!(query.contains("fieldManager=mailops-finalizer"), "{query}");
            assert_eq!(body["metadata"]["finalizers"], json!([]), "{body}");
        },
        released,
    )]);
    run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap();
    v.done().await;
}

#[tokio::test]
async fn an_unchanged_status_makes_no_request() {
    let mut h = harness();
    let mut p = basic_provider("exchange", &["contoso.com"]);
    p["status"] = json!({});
    let obj = h.provider(p.clone());
    let written = Arc::new(Mutex::new(Value::Null));
    let keep = written.clone();
    let v = h.verifier(vec![
        step(
            Method::PATCH,
            "/apis/mailops.dev/v1alpha1/emailproviders/exchange/status",
            move |query, body| {
                is_status_apply(query);
                assert_eq!(condition(body, "Ready")["status"], "True");
                assert_eq!(condition(body, "Reachable")["reason"], "Verified");
                assert_eq!(condition(body, "Authenticated")["reason"], "NotRequested");
                assert_eq!(body["status"]["observedGeneration"], 1);
                assert_eq!(body["status"]["serviceAddress"], "mail.contoso.com");
                *keep.lock().unwrap() = body["status"].clone();
            },
            p.clone(),
        ),
        event_step("default", "Normal", "Verified"),
    ]);
    run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap();
    v.done().await;
    assert_eq!(h.backend.provider_calls(), 1);

    // The API server now holds that status; reconciling again must be silent even for a
    // fresh context (after a restart), which has no probe memory and so asks Exchange.
    let mut h2 = Harness { handle: None, ..h };
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let ctx = Context::new(
        Client::new(service, "default"),
        h2.backend.clone() as Arc<dyn MailBackend>,
        OperatorConfig::default(),
        Arc::new(Metrics::new()),
        h2.ctx.stores.clone(),
    );
    h2.handle = Some(handle);
    p["status"] = written.lock().unwrap().clone();
    let obj = h2.provider(p);
    let v = h2.verifier(vec![]);
    run(controller::reconcile_provider(obj, Arc::new(ctx)))
        .await
        .unwrap();
    v.done().await;
    assert_eq!(
        h2.backend.provider_calls(),
        2,
        "a fresh context has no probe memory"
    );
}

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
async fn a_rotated_refresh_token_is_written_back_to_the_secret() {
    let mut h = harness();
    oauth2_provider_and_jane_with_a_refresh_token(&mut h);
    h.backend
        .rotate_refresh_token("jane@contoso.com", "new-token");
    let b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    let obj = h.binding(b.clone());
    let v = h.verifier(vec![
        step(
            Method::PATCH,
            "/api/v1/namespaces/team-a/secrets/jane",
            |_, body| {
                // base64("new-token")
                assert_eq!(body["data"]["refreshToken"], "bmV3LXRva2Vu", "{body}");
                assert_eq!(body["data"].as_object().unwrap().len(), 1);
            },
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "jane", "namespace": "team-a"}}),
        ),
        step(
            Method::PATCH,
            "/apis/mailops.dev/v1alpha1/namespaces/team-a/mailboxbindings/jane/status",
            |_, body| {
                assert_eq!(condition(body, "Ready")["status"], "True");
                assert!(!body.to_string().contains("token"), "no token in status: {body}");
            },
            b,
        ),
        event_step("team-a", "Normal", "Verified"),
    ]);
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    v.done().await;
}

#[tokio::test]
async fn without_write_back_a_rotated_token_is_not_patched_into_the_secret() {
    let mut h = harness_with(OperatorConfig {
        identity: "test".into(),
        secret_write_back: false,
        ..OperatorConfig::default()
    });
    oauth2_provider_and_jane_with_a_refresh_token(&mut h);
    h.backend
        .rotate_refresh_token("jane@contoso.com", "new-token");
    let b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    let obj = h.binding(b.clone());
    // The first request is the status: no PATCH of the Secret comes before it.
    let v = h.verifier(vec![
        step(
            Method::PATCH,
            "/apis/mailops.dev/v1alpha1/namespaces/team-a/mailboxbindings/jane/status",
            |_, body| assert_eq!(condition(body, "Ready")["status"], "True"),
            b,
        ),
        event_step("team-a", "Normal", "Verified"),
    ]);
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    v.done().await;
}

#[tokio::test]
async fn a_throttled_mailbox_retries_after_the_servers_delay() {
    let mut h = harness();
    h.provider(basic_provider("exchange", &["contoso.com"]));
    h.secret("team-a", "jane", &[("password", "pw")]);
    h.backend.fail_mailbox(
        "jane@contoso.com",
        Failure {
            retry_after: Some(Duration::from_secs(120)),
            ..Failure::new(Reason::Throttled, "ErrorServerBusy")
        },
    );
    let b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    let obj = h.binding(b.clone());
    let v = h.verifier(vec![
        step(
            Method::PATCH,
            "/apis/mailops.dev/v1alpha1/namespaces/team-a/mailboxbindings/jane/status",
            |_, body| assert_eq!(condition(body, "Verified")["reason"], "Throttled"),
            b,
        ),
        event_step("team-a", "Warning", "Throttled"),
    ]);
    let err = run(controller::reconcile_binding(obj.clone(), h.ctx.clone()))
        .await
        .unwrap_err();
    assert!(!err.is_permanent());
    let action = controller::error_policy(obj, &err, h.ctx.clone());
    assert!(
        (120.0..=132.0).contains(&requeue_seconds(&action)),
        "Retry-After (plus at most 10 % jitter) decides: {action:?}"
    );
    v.done().await;
}

#[tokio::test]
async fn transient_failures_back_off_exponentially() {
    let mut h = harness();
    h.provider(basic_provider("exchange", &["contoso.com"]));
    let obj = h.binding(own_credentials_binding(
        "team-a",
        "jane",
        "jane@contoso.com",
        "jane",
    ));
    let err = mailops::Error::Exchange {
        reason: Reason::Unreachable,
        message: "connection refused".into(),
        retry_after: None,
    };
    let first = requeue_seconds(&controller::error_policy(obj.clone(), &err, h.ctx.clone()));
    let second = requeue_seconds(&controller::error_policy(obj.clone(), &err, h.ctx.clone()));
    assert!((5.0..=5.5).contains(&first), "{first}");
    assert!((10.0..=11.0).contains(&second), "{second}");
    for _ in 0..20 {
        controller::error_policy(obj.clone(), &err, h.ctx.clone());
    }
    let capped = requeue_seconds(&controller::error_policy(obj, &err, h.ctx.clone()));
    assert!((300.0..=330.0).contains(&capped), "{capped}");
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

#[tokio::test]
async fn a_provider_object_reference_is_the_mailops_kind() {
    // Guarded objects keep the kind's API coordinates, so Api<Guarded<K>> watches the CRD.
    assert_eq!(Guarded::<EmailProvider>::plural(&()), "emailproviders");
    assert_eq!(Guarded::<MailboxBinding>::group(&()), "mailops.dev");
}

#[tokio::test]
async fn missing_crds_fail_start_up_with_the_fix() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut not_found = step(
        Method::GET,
        "/apis/mailops.dev/v1alpha1/emailproviders",
        |query, _| assert!(query.contains("limit=1"), "a cheap probe: {query}"),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404}),
    );
    not_found.status = 404;
    let v = Verifier::start(handle, vec![not_found]);
    let err = run(controller::check_crds(&client)).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("kubectl apply --server-side -f crds/"),
        "{text}"
    );
    assert!(text.contains("EmailProvider"), "{text}");
    v.done().await;
}
