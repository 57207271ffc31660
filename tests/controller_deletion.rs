//! The in-use finalizer against the mock API server: held on first sight, a deletion blocked
//! while anything uses the object and released once nothing does (a malformed object too),
//! and a provider whose deletion begins does not verify its mailboxes again.

mod mock_api;
use mock_api::*;

const JANE_STATUS: &str =
    "/apis/mailops.dev/v1alpha1/namespaces/team-a/mailboxbindings/jane/status";

/// A status step that hands the written status back, so the next reconcile can start
/// from the object as the API server would then hold it.
fn status_step(written: Arc<Mutex<Value>>, b: Value) -> Step {
    step(
        Method::PATCH,
        JANE_STATUS,
        move |_, body| {
            assert_eq!(condition(body, "Ready")["status"], "True", "{body}");
            *written.lock().unwrap() = body["status"].clone();
        },
        b,
    )
}

fn with_status(mut b: Value, status: &Arc<Mutex<Value>>) -> Value {
    b["status"] = status.lock().unwrap().clone();
    b
}

fn malformed_provider_being_deleted() -> Value {
    json!({
        "apiVersion": API, "kind": "EmailProvider",
        "metadata": {"name": "broken", "resourceVersion": "41", "deletionTimestamp": "2026-01-01T00:00:00Z",
                     "finalizers": ["mailops.dev/in-use", "example.com/other"]},
        "spec": {"serviceType": 42},
    })
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
        {
            let event = event_step("default", "Warning", "DeletionBlocked");
            let (kind_and_reason, rest) = (
                event.check,
                Step {
                    check: Box::new(|_, _| {}),
                    ..event
                },
            );
            Step {
                check: Box::new(move |query, body| {
                    kind_and_reason(query, body);
                    // Events about cluster-scoped objects land in `default`: counts only.
                    let note = body["note"].as_str().unwrap();
                    assert!(note.contains("1 object"), "{note}");
                    assert!(!note.contains("jane"), "{note}");
                }),
                ..rest
            }
        },
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
    let v = h.verifier(vec![
        // The cache shows no user: a consistent read confirms it first.
        quorum_list("mailboxbindings", "status.provider", "exchange", &[]),
        quorum_list(
            "exchangeserviceaccounts",
            "spec.providerRef.name",
            "exchange",
            &[],
        ),
        step(
            Method::PATCH,
            "/apis/mailops.dev/v1alpha1/emailproviders/exchange",
            |query, body| {
                assert!(query.contains("fieldManager=mailops-finalizer"), "{query}");
                assert_eq!(body["metadata"]["finalizers"], json!([]), "{body}");
            },
            released,
        ),
    ]);
    run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap();
    v.done().await;
}

#[tokio::test]
async fn a_malformed_provider_nothing_uses_is_released_from_the_finalizer() {
    let mut h = harness();
    let obj = h.provider(malformed_provider_being_deleted());
    assert!(obj.0.is_err(), "the fixture must not deserialize");
    let v = h.verifier(vec![
        quorum_list("mailboxbindings", "status.provider", "broken", &[]),
        quorum_list(
            "exchangeserviceaccounts",
            "spec.providerRef.name",
            "broken",
            &[],
        ),
        step(
            Method::PATCH,
            "/apis/mailops.dev/v1alpha1/emailproviders/broken",
            |_, body| {
                assert_eq!(
                    body["metadata"]["finalizers"],
                    json!(["example.com/other"]),
                    "{body}"
                );
                assert_eq!(body["metadata"]["resourceVersion"], "41", "{body}");
            },
            json!({"apiVersion": API, "kind": "EmailProvider", "metadata": {"name": "broken"}}),
        ),
    ]);
    run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap();
    v.done().await;
}

#[tokio::test]
async fn a_malformed_provider_still_used_keeps_its_finalizer() {
    let mut h = harness();
    let obj = h.provider(malformed_provider_being_deleted());
    let mut b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    b["status"] = json!({"provider": "broken"});
    h.binding(b);
    let v = h.verifier(vec![]);
    run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap();
    v.done().await;
}

#[tokio::test]
async fn a_provider_beginning_its_deletion_does_not_verify_its_mailboxes_again() {
    let mut h = harness();
    let provider = basic_provider("exchange", &["contoso.com"]);
    h.provider(provider.clone());
    h.secret("team-a", "jane", &[("password", "pw")]);
    let b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    let obj = h.binding(b.clone());
    let written = Arc::new(Mutex::new(Value::Null));
    let v = h.verifier(vec![
        status_step(written.clone(), b.clone()),
        event_step("team-a", "Normal", "Verified"),
    ]);
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    // `kubectl delete` of a provider with a finalizer bumps its generation without
    // touching its spec; the provider then judges that generation (still in use).
    let mut terminating = provider;
    terminating["metadata"]["generation"] = json!(2);
    terminating["metadata"]["deletionTimestamp"] = json!("2026-01-02T00:00:00Z");
    terminating["status"]["conditions"][0]["observedGeneration"] = json!(2);
    h.provider(terminating);
    let obj = h.binding(with_status(b, &written));
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(
        h.backend.mailbox_calls(),
        1,
        "nothing the probe depends on changed"
    );
    v.done().await;
}
