//! Regression scenarios for defects found by trying the operator as an attacker and as an
//! unlucky operator would (refresh-token rotation loop, failing write-back, status churn on
//! failures, server-given delays), against the mock API server.

mod mock_api;
use mock_api::*;

const JANE_STATUS: &str =
    "/apis/mailops.dev/v1alpha1/namespaces/team-a/mailboxbindings/jane/status";
const JANE_SECRET: &str = "/api/v1/namespaces/team-a/secrets/jane";

fn secret_answer(version: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "jane", "namespace": "team-a", "resourceVersion": version}})
}

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

#[tokio::test]
async fn our_own_write_back_of_a_rotated_token_does_not_verify_again() {
    let mut h = harness();
    oauth2_provider_and_jane_with_a_refresh_token(&mut h);
    h.backend.rotate_on_every_redemption("jane@contoso.com");
    let b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    let obj = h.binding(b.clone());
    let written = Arc::new(Mutex::new(Value::Null));
    let v = h.verifier(vec![
        step(
            Method::PATCH,
            JANE_SECRET,
            |_, body| {
                assert_eq!(
                    body["data"]["refreshToken"], "cnQtMQ==",
                    "base64(rt-1): {body}"
                )
            },
            secret_answer("2"),
        ),
        status_step(written.clone(), b.clone()),
        event_step("team-a", "Normal", "Verified"),
    ]);
    run(binding::reconcile(obj, h.ctx.clone())).await.unwrap();
    // The watch delivers our own write, and it re-triggers the binding.
    h.secret_at("team-a", "jane", &[("refreshToken", "rt-1")], "2");
    let obj = h.binding(with_status(b, &written));
    run(binding::reconcile(obj, h.ctx.clone())).await.unwrap();
    assert_eq!(
        h.backend.mailbox_calls(),
        1,
        "one redemption, not one per write-back"
    );
    v.done().await;
}

#[tokio::test]
async fn a_change_of_the_secret_by_the_user_is_verified_with_the_new_token() {
    let mut h = harness();
    oauth2_provider_and_jane_with_a_refresh_token(&mut h);
    h.backend.rotate_on_every_redemption("jane@contoso.com");
    let b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    let obj = h.binding(b.clone());
    let written = Arc::new(Mutex::new(Value::Null));
    let v = h.verifier(vec![
        step(Method::PATCH, JANE_SECRET, |_, _| {}, secret_answer("2")),
        status_step(written.clone(), b.clone()),
        event_step("team-a", "Normal", "Verified"),
        step(Method::PATCH, JANE_SECRET, |_, _| {}, secret_answer("4")),
    ]);
    run(binding::reconcile(obj, h.ctx.clone())).await.unwrap();
    h.secret_at(
        "team-a",
        "jane",
        &[("refreshToken", "pasted-by-admin")],
        "3",
    );
    let obj = h.binding(with_status(b, &written));
    run(binding::reconcile(obj, h.ctx.clone())).await.unwrap();
    assert_eq!(
        h.backend.presented_refresh_tokens(),
        ["old-token", "pasted-by-admin"]
    );
    v.done().await;
}

#[tokio::test]
async fn a_failed_write_back_keeps_the_rotated_token_and_retries_it() {
    let mut h = harness();
    oauth2_provider_and_jane_with_a_refresh_token(&mut h);
    h.backend.rotate_on_every_redemption("jane@contoso.com");
    let b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    let obj = h.binding(b.clone());
    let written = Arc::new(Mutex::new(Value::Null));
    let v = h.verifier(vec![
        Step {
            status: 403,
            ..step(
                Method::PATCH,
                JANE_SECRET,
                |_, _| {},
                json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                    "reason": "Forbidden", "code": 403, "message": "secrets is forbidden"}),
            )
        },
        status_step(written.clone(), b.clone()),
        event_step("team-a", "Normal", "Verified"),
        // The retry writes the token held since, without redeeming again.
        step(
            Method::PATCH,
            JANE_SECRET,
            |_, body| {
                assert_eq!(
                    body["data"]["refreshToken"], "cnQtMQ==",
                    "base64(rt-1): {body}"
                )
            },
            secret_answer("2"),
        ),
    ]);
    let err = run(binding::reconcile(obj, h.ctx.clone()))
        .await
        .unwrap_err();
    assert!(!err.is_permanent(), "a failed write-back is retried: {err}");
    let obj = h.binding(with_status(b, &written));
    run(binding::reconcile(obj, h.ctx.clone())).await.unwrap();
    assert_eq!(h.backend.presented_refresh_tokens(), ["old-token"]);
    v.done().await;
}

#[tokio::test]
async fn a_failing_mailbox_keeps_the_time_exchange_last_confirmed_it() {
    let mut h = harness();
    h.provider(basic_provider("exchange", &["contoso.com"]));
    h.secret("team-a", "jane", &[("password", "pw")]);
    h.backend.fail_mailbox(
        "jane@contoso.com",
        Failure::new(Reason::Unreachable, "connection refused"),
    );
    let mut b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    b["status"] = json!({"lastVerifiedTime": "2026-01-01T00:00:00Z"});
    let obj = h.binding(b.clone());
    let v = h.verifier(vec![
        step(
            Method::PATCH,
            JANE_STATUS,
            |_, body| {
                assert_eq!(condition(body, "Verified")["reason"], "Unreachable");
                assert_eq!(
                    body["status"]["lastVerifiedTime"], "2026-01-01T00:00:00Z",
                    "{body}"
                );
            },
            b,
        ),
        event_step("team-a", "Warning", "Unreachable"),
    ]);
    run(binding::reconcile(obj, h.ctx.clone()))
        .await
        .unwrap_err();
    v.done().await;
}

fn throttled(retry_after: Duration) -> mailops::Error {
    mailops::Error::Exchange {
        reason: Reason::Throttled,
        message: "ErrorServerBusy".into(),
        retry_after: Some(retry_after),
    }
}

#[tokio::test]
async fn busy_answers_asking_for_no_delay_still_back_off() {
    let mut h = harness();
    let obj = h.binding(own_credentials_binding(
        "team-a",
        "jane",
        "jane@contoso.com",
        "jane",
    ));
    let err = throttled(Duration::ZERO);
    let first = requeue_seconds(&controller::error_policy(obj.clone(), &err, h.ctx.clone()));
    let second = requeue_seconds(&controller::error_policy(obj, &err, h.ctx.clone()));
    assert!(first >= 5.0, "the back-off floor applies: {first}");
    assert!(second >= 10.0, "and grows per failure: {second}");
}

#[tokio::test]
async fn a_huge_server_delay_is_capped_instead_of_panicking() {
    let mut h = harness();
    let obj = h.binding(own_credentials_binding(
        "team-a",
        "jane",
        "jane@contoso.com",
        "jane",
    ));
    let err = throttled(Duration::from_secs(u64::MAX));
    let delay = requeue_seconds(&controller::error_policy(obj, &err, h.ctx.clone()));
    assert!((3600.0..=3960.0).contains(&delay), "{delay}");
}

#[tokio::test]
async fn a_certificate_problem_is_retried_in_minutes_not_seconds() {
    let mut h = harness();
    let obj = h.binding(own_credentials_binding(
        "team-a",
        "jane",
        "jane@contoso.com",
        "jane",
    ));
    for reason in [
        Reason::CertificateUntrusted,
        Reason::CertificateExpired,
        Reason::CertificateNameMismatch,
    ] {
        let err = mailops::Error::Exchange {
            reason,
            message: "the server's certificate ...".into(),
            retry_after: None,
        };
        for _ in 0..3 {
            let delay =
                requeue_seconds(&controller::error_policy(obj.clone(), &err, h.ctx.clone()));
            assert!((300.0..=330.0).contains(&delay), "{reason}: {delay}");
        }
    }
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
async fn a_malformed_provider_nothing_uses_is_released_from_the_finalizer() {
    let mut h = harness();
    let obj = h.provider(malformed_provider_being_deleted());
    assert!(obj.0.is_err(), "the fixture must not deserialize");
    let v = h.verifier(vec![step(
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
    )]);
    run(provider::reconcile(obj, h.ctx.clone())).await.unwrap();
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
    run(provider::reconcile(obj, h.ctx.clone())).await.unwrap();
    v.done().await;
}

#[tokio::test]
async fn a_remembered_verification_with_its_calendar_restates_the_same_status() {
    let mut h = harness();
    h.provider(basic_provider("exchange", &["contoso.com"]));
    h.secret("team-a", "jane", &[("password", "pw")]);
    let mut b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    b["spec"]["connectCalendar"] = json!(true);
    let obj = h.binding(b.clone());
    let written = Arc::new(Mutex::new(Value::Null));
    let v = h.verifier(vec![
        step(
            Method::PATCH,
            JANE_STATUS,
            {
                let written = written.clone();
                move |_, body| {
                    assert_eq!(condition(body, "CalendarConnected")["status"], "True");
                    *written.lock().unwrap() = body["status"].clone();
                }
            },
            b.clone(),
        ),
        event_step("team-a", "Normal", "Verified"),
    ]);
    run(binding::reconcile(obj, h.ctx.clone())).await.unwrap();
    // Re-triggered with the same inputs: the remembered success yields the same status,
    // so nothing is written and Exchange is not asked again.
    let obj = h.binding(with_status(b, &written));
    run(binding::reconcile(obj, h.ctx.clone())).await.unwrap();
    assert_eq!(h.backend.mailbox_calls(), 1);
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
    run(binding::reconcile(obj, h.ctx.clone())).await.unwrap();
    // `kubectl delete` of a provider with a finalizer bumps its generation without
    // touching its spec; the provider then judges that generation (still in use).
    let mut terminating = provider;
    terminating["metadata"]["generation"] = json!(2);
    terminating["metadata"]["deletionTimestamp"] = json!("2026-01-02T00:00:00Z");
    terminating["status"]["conditions"][0]["observedGeneration"] = json!(2);
    h.provider(terminating);
    let obj = h.binding(with_status(b, &written));
    run(binding::reconcile(obj, h.ctx.clone())).await.unwrap();
    assert_eq!(
        h.backend.mailbox_calls(),
        1,
        "nothing the probe depends on changed"
    );
    v.done().await;
}
