//! Correct under races and hung calls, against the mock API server: a provider is not
//! released while the API server knows a user the cache does not (or cannot read); a
//! blocked deletion states the verdict on the spec it has, never an older one at the new
//! generation; a request the API server never answers fails at its deadline and holds
//! nothing else up.

mod mock_api;
use mock_api::*;

const PROVIDER_STATUS: &str = "/apis/mailops.dev/v1alpha1/emailproviders/exchange/status";

/// A Basic provider being deleted, whose cache shows no user.
fn deleted_provider(h: &mut Harness) -> (Arc<Guarded<EmailProvider>>, Value) {
    let mut p = basic_provider("exchange", &["contoso.com"]);
    p["metadata"]["deletionTimestamp"] = json!("2026-01-02T00:00:00Z");
    (h.provider(p.clone()), p)
}

fn held_by_jane(body: &Value) {
    let t = condition(body, "Terminating");
    assert_eq!(
        (&t["status"], &t["reason"]),
        (&json!("True"), &json!("InUse"))
    );
    let message = t["message"].as_str().unwrap();
    assert!(message.contains("MailboxBinding team-a/jane"), "{message}");
    assert_eq!(body["status"]["mailboxCount"], 1);
}

#[tokio::test]
async fn release_waits_when_the_api_server_knows_a_user_the_cache_does_not() {
    let mut h = harness();
    let (obj, p) = deleted_provider(&mut h);
    // jane's attachment was accepted by the API server; the watch has not brought it.
    let v = h.verifier(vec![
        quorum_list(
            "mailboxbindings",
            "status.provider",
            "exchange",
            &[("team-a", "jane")],
        ),
        quorum_list(
            "exchangeserviceaccounts",
            "spec.providerRef.name",
            "exchange",
            &[],
        ),
        step(
            Method::PATCH,
            PROVIDER_STATUS,
            |_, body| held_by_jane(body),
            p,
        ),
        event_step("default", "Warning", "DeletionBlocked"),
    ]);
    let action = run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap();
    // No finalizer patch was asked for (the verifier fails on one), and it looks again
    // soon: jane's own events may never reach this provider.
    assert!(requeue_seconds(&action) > 0.0);
    v.done().await;
}

#[tokio::test]
async fn a_binding_the_operator_cannot_read_still_holds_its_provider() {
    let mut h = harness();
    let (obj, p) = deleted_provider(&mut h);
    // In the cache, but not as a MailboxBinding: its spec is broken, so the index knows
    // nothing of its attachment. The API server's field selector reads its raw JSON.
    let broken = h.binding(json!({
        "apiVersion": API, "kind": "MailboxBinding",
        "metadata": {"name": "jane", "namespace": "team-a", "generation": 1},
        "spec": {"emailAddress": 42},
        "status": {"provider": "exchange"},
    }));
    assert!(broken.0.is_err(), "the fixture must not deserialize");
    let v = h.verifier(vec![
        quorum_list(
            "mailboxbindings",
            "status.provider",
            "exchange",
            &[("team-a", "jane")],
        ),
        quorum_list(
            "exchangeserviceaccounts",
            "spec.providerRef.name",
            "exchange",
            &[],
        ),
        step(
            Method::PATCH,
            PROVIDER_STATUS,
            |_, body| held_by_jane(body),
            p,
        ),
        event_step("default", "Warning", "DeletionBlocked"),
    ]);
    run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap();
    v.done().await;
}

#[tokio::test]
async fn a_deletion_blocked_after_a_spec_change_states_the_new_specs_verdict() {
    let mut h = harness();
    // Ready at generation 1; the endpoint changed (generation 2), now unreachable, and
    // the provider deleted at once (generation 3) while jane uses it.
    let mut p = basic_provider("exchange", &["contoso.com"]);
    p["metadata"]["generation"] = json!(3);
    p["metadata"]["deletionTimestamp"] = json!("2026-01-02T00:00:00Z");
    p["spec"]["serviceAddress"] = json!("mail-new.contoso.com");
    p["status"]["observedGeneration"] = json!(1);
    let obj = h.provider(p.clone());
    h.backend.fail_provider(
        "exchange",
        Failure::new(Reason::Unreachable, "mail-new.contoso.com does not answer"),
    );
    let mut b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    b["status"] = json!({"provider": "exchange", "authenticatedVia": "Credentials"});
    h.binding(b);
    let v = h.verifier(vec![
        step(
            Method::PATCH,
            PROVIDER_STATUS,
            |_, body| {
                let status = &body["status"];
                assert_eq!(status["observedGeneration"], 3);
                let ready = condition(body, "Ready");
                assert_eq!(
                    (
                        &ready["status"],
                        &ready["reason"],
                        &ready["observedGeneration"]
                    ),
                    (&json!("False"), &json!("Unreachable"), &json!(3)),
                    "{body}"
                );
                assert_eq!(condition(body, "Reachable")["status"], "False");
                held_by_jane(body);
                assert_eq!(condition(body, "Terminating")["observedGeneration"], 3);
            },
            p,
        ),
        event_step("default", "Warning", "DeletionBlocked"),
        event_step("default", "Warning", "Unreachable"),
    ]);
    run(controller::reconcile_provider(obj, h.ctx.clone()))
        .await
        .unwrap_err();
    v.done().await;
}

#[tokio::test(start_paused = true)]
async fn a_status_patch_never_answered_fails_at_its_deadline_and_holds_nothing_else_up() {
    let mut h = harness_with_deadline(Duration::from_secs(30));
    h.provider(basic_provider("exchange", &["contoso.com"]));
    h.secret("team-a", "hung", &[("password", "pw")]);
    h.secret("team-a", "fine", &[("password", "pw")]);
    let hung = h.binding(own_credentials_binding(
        "team-a",
        "hung",
        "hung@contoso.com",
        "hung",
    ));
    let fine = h.binding(own_credentials_binding(
        "team-a",
        "fine",
        "fine@contoso.com",
        "fine",
    ));
    let mut handle = h.handle.take().unwrap();
    let answered = Arc::new(Mutex::new(Vec::new()));
    let seen = answered.clone();
    tokio::spawn(async move {
        // Never answered while this task lives.
        let mut held = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let path = request.uri().path().to_string();
            if path.contains("/hung/") {
                held.push(send);
                continue;
            }
            let body = own_credentials_binding("team-a", "fine", "fine@contoso.com", "fine");
            seen.lock().unwrap().push(path);
            send.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap(),
            );
        }
    });
    let started = tokio::time::Instant::now();
    let hung = tokio::spawn(controller::reconcile_binding(hung, h.ctx.clone()));
    run(controller::reconcile_binding(fine, h.ctx.clone()))
        .await
        .unwrap();
    assert!(
        answered
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.contains("/fine/status")),
        "the other binding went on"
    );
    let err = hung.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("did not answer"), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(30));
}

#[tokio::test]
async fn a_binding_status_from_a_stale_copy_is_written_only_over_that_copy() {
    // The provider is being deleted. The cache's copy of jane predates her attachment (our
    // own status write saying she is attached has not come back through the watch): from
    // it she looks new, and a new binding may not attach to a provider being deleted.
    let mut h = harness();
    let mut p = basic_provider("exchange", &["contoso.com"]);
    p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    h.provider(p);
    h.secret("team-a", "jane", &[("password", "pw")]);
    let mut b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    b["metadata"]["resourceVersion"] = json!("41");
    let obj = h.binding(b.clone());
    let v = h.verifier(vec![Step {
        status: 409,
        ..step(
            Method::PATCH,
            "/apis/mailops.dev/v1alpha1/namespaces/team-a/mailboxbindings/jane/status",
            |_, body| {
                assert_eq!(condition(body, "Ready")["reason"], "ProviderTerminating");
                // Only over the copy it was computed from: the API server holds a newer one.
                assert_eq!(body["metadata"]["resourceVersion"], "41", "{body}");
            },
            json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                "reason": "Conflict", "code": 409, "message": "the object has been modified"}),
        )
    }]);
    let err = run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(!err.is_permanent(), "retried from the newer copy");
    // No Event either: nothing was said.
    v.done().await;
}
