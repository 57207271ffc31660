//! Lockout-safe verification through the binding controller, on tokio's paused clock: a
//! backend that keeps the failed-login budget as the real client does counts the logins
//! that reach it. Refused credentials are not sent again until they change; ten bindings
//! naming one address with junk passwords make at most three logins in any 30 minutes;
//! the pause is one Event; another address is never held back.

mod mock_api;
use mock_api::*;

const CEO: &str = "ceo@contoso.com";
const WINDOW: Duration = Duration::from_secs(30 * 60);

fn refused() -> Failure {
    Failure::new(Reason::InvalidCredentials, "EWS answered HTTP 401")
}

/// A harness whose backend keeps a budget of 3 failures per 30 minutes, with a Basic
/// provider for contoso.com, and an API server that accepts every write.
fn lockout_harness() -> (Harness, Writes) {
    let config = OperatorConfig {
        identity: "test".into(),
        ..OperatorConfig::default()
    };
    let mut h = harness_with_backend(config, FakeBackend::with_login_budget(3, WINDOW));
    h.provider(basic_provider("exchange", &["contoso.com"]));
    let handle = h.handle.take().unwrap();
    let writes = accepting_api(
        handle,
        own_credentials_binding("x", "x", "x@contoso.com", "x"),
    );
    (h, writes)
}

/// Binding `i` of the ten naming the CEO, each in its own namespace with its own junk
/// password.
fn ceo_binding(h: &mut Harness, i: usize) -> Arc<Guarded<MailboxBinding>> {
    let ns = format!("team-{i}");
    h.secret(&ns, "ceo", &[("password", &format!("junk-{i}"))]);
    h.binding(own_credentials_binding(&ns, "ceo", CEO, "ceo"))
}

fn events(writes: &Writes, reason: &str) -> usize {
    writes
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, body)| path.ends_with("/events") && body["reason"] == reason)
        .count()
}

async fn reconcile_all(h: &Harness, bindings: &[Arc<Guarded<MailboxBinding>>]) -> Vec<Reason> {
    let mut reasons = Vec::new();
    for b in bindings {
        let result = run(controller::reconcile_binding(b.clone(), h.ctx.clone())).await;
        reasons.push(result.unwrap_err().reason().unwrap());
    }
    reasons
}

#[tokio::test(start_paused = true)]
async fn ten_bindings_with_junk_passwords_for_one_address_make_three_logins_a_window() {
    let (mut h, writes) = lockout_harness();
    h.backend.fail_mailbox(CEO, refused());
    let bindings: Vec<_> = (0..10).map(|i| ceo_binding(&mut h, i)).collect();

    let reasons = reconcile_all(&h, &bindings).await;
    assert_eq!(h.backend.logins(), 3);
    let paused = reasons
        .iter()
        .filter(|r| **r == Reason::LoginPaused)
        .count();
    assert_eq!(paused, 7, "{reasons:?}");
    assert_eq!(events(&writes, "LoginPaused"), 1, "the pause is one Event");

    // Re-reconciled for any reason, and 29 minutes later: nothing more is sent.
    reconcile_all(&h, &bindings).await;
    tokio::time::advance(WINDOW - Duration::from_secs(60)).await;
    reconcile_all(&h, &bindings).await;
    assert_eq!(h.backend.logins(), 3);

    // Once the window has passed, the bindings never tried get their turn, three more;
    // the three refused are not tried again with the same passwords.
    tokio::time::advance(Duration::from_secs(120)).await;
    let reasons = reconcile_all(&h, &bindings).await;
    assert_eq!(h.backend.logins(), 6);
    let refused = reasons
        .iter()
        .filter(|r| **r == Reason::InvalidCredentials)
        .count();
    assert_eq!(refused, 6, "{reasons:?}");
    assert_eq!(events(&writes, "LoginPaused"), 2, "one Event per pause");

    // Another address is not held back by the CEO's budget.
    h.secret("finance", "cfo", &[("password", "right")]);
    let cfo = h.binding(own_credentials_binding(
        "finance",
        "cfo",
        "cfo@contoso.com",
        "cfo",
    ));
    run(controller::reconcile_binding(cfo, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(h.backend.logins(), 7);
}

#[tokio::test(start_paused = true)]
async fn refused_credentials_wait_for_a_change_and_a_secret_edit_is_one_new_attempt() {
    let (mut h, _writes) = lockout_harness();
    h.backend.fail_mailbox(CEO, refused());
    h.secret_at("team-a", "ceo", &[("password", "junk")], "1");
    let b = h.binding(own_credentials_binding("team-a", "ceo", CEO, "ceo"));
    let err = run(controller::reconcile_binding(b.clone(), h.ctx.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some(Reason::InvalidCredentials));
    // No timer: only a change helps.
    assert_eq!(
        controller::error_policy(b.clone(), &err, h.ctx.clone()),
        Action::await_change()
    );
    for _ in 0..3 {
        run(controller::reconcile_binding(b.clone(), h.ctx.clone()))
            .await
            .unwrap_err();
    }
    assert_eq!(
        h.backend.logins(),
        1,
        "the same password is never sent twice"
    );

    // A label edit: a new version, the same password. Still nothing sent.
    h.secret_at("team-a", "ceo", &[("password", "junk")], "2");
    run(controller::reconcile_binding(b.clone(), h.ctx.clone()))
        .await
        .unwrap_err();
    assert_eq!(h.backend.logins(), 1);
    // A new password: exactly one attempt.
    h.secret_at("team-a", "ceo", &[("password", "second-guess")], "3");
    for _ in 0..3 {
        run(controller::reconcile_binding(b.clone(), h.ctx.clone()))
            .await
            .unwrap_err();
    }
    assert_eq!(h.backend.logins(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_paused_binding_is_tried_again_when_the_pause_ends_not_before() {
    let (mut h, _writes) = lockout_harness();
    h.backend.fail_mailbox(CEO, refused());
    let bindings: Vec<_> = (0..4).map(|i| ceo_binding(&mut h, i)).collect();
    reconcile_all(&h, &bindings[..3]).await;
    let err = run(controller::reconcile_binding(
        bindings[3].clone(),
        h.ctx.clone(),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.reason(), Some(Reason::LoginPaused));
    let delay = requeue_seconds(&controller::error_policy(
        bindings[3].clone(),
        &err,
        h.ctx.clone(),
    ));
    // The server delay is the pause's end (capped at the back-off's ceiling), never a
    // hot loop.
    assert!(delay >= 60.0, "{delay}");
}
