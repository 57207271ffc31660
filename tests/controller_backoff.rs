//! When a failed reconcile runs again: the server's delay honoured, transient failures
//! backing off exponentially, no hot loop for `Retry-After: 0`, a huge delay capped, a
//! certificate problem retried in minutes.

mod mock_api;
use mock_api::*;

fn throttled(retry_after: Duration) -> mailops::Error {
    mailops::Error::Exchange {
        reason: Reason::Throttled,
        message: "ErrorServerBusy".into(),
        retry_after: Some(retry_after),
    }
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
