//! Refresh tokens the authority rotates, against the mock API server: written back to the
//! binding's Secret (or not, with write-back off), our own write not taken for a change, a
//! user's change verified with the new token, a failed write-back held and retried.

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

/// The one status write a change of input brings: Ready stays True, and only the
/// digest of what was verified moves.
fn inputs_moved_step(written: &Arc<Mutex<Value>>, b: Value) -> Step {
    let before = written.clone();
    step(
        Method::PATCH,
        JANE_STATUS,
        move |_, body| {
            let before = before.lock().unwrap()["verifiedInputs"].clone();
            assert_eq!(condition(body, "Ready")["status"], "True", "{body}");
            assert!(before.is_string(), "the first status recorded its inputs");
            assert_ne!(body["status"]["verifiedInputs"], before, "{body}");
        },
        b,
    )
}

fn with_status(mut b: Value, status: &Arc<Mutex<Value>>) -> Value {
    b["status"] = status.lock().unwrap().clone();
    b
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
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    // The watch delivers our own write, and it re-triggers the binding.
    h.secret_at("team-a", "jane", &[("refreshToken", "rt-1")], "2");
    let obj = h.binding(with_status(b, &written));
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
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
        // The user's change is a change of input: the status records what was verified.
        inputs_moved_step(&written, b.clone()),
    ]);
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    h.secret_at(
        "team-a",
        "jane",
        &[("refreshToken", "pasted-by-admin")],
        "3",
    );
    let obj = h.binding(with_status(b, &written));
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
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
        // The token is stored now: the status says under which versions it was verified.
        inputs_moved_step(&written, b.clone()),
    ]);
    let err = run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap_err();
    assert!(!err.is_permanent(), "a failed write-back is retried: {err}");
    let obj = h.binding(with_status(b, &written));
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(h.backend.presented_refresh_tokens(), ["old-token"]);
    v.done().await;
}

#[tokio::test]
async fn a_users_edit_between_read_and_write_back_wins() {
    let mut h = harness();
    oauth2_provider_and_jane_with_a_refresh_token(&mut h);
    h.backend
        .rotate_refresh_token("jane@contoso.com", "rotated");
    let b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    let obj = h.binding(b.clone());
    let written = Arc::new(Mutex::new(Value::Null));
    let v = h.verifier(vec![
        // The write-back is guarded by the version the token was read at; the user
        // changed the Secret in between: 409.
        Step {
            status: 409,
            ..step(
                Method::PATCH,
                JANE_SECRET,
                |_, body| assert_eq!(body["metadata"]["resourceVersion"], "1", "{body}"),
                json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                    "reason": "Conflict", "code": 409, "message": "the object has been modified"}),
            )
        },
        status_step(written.clone(), b.clone()),
        event_step("team-a", "Normal", "Verified"),
        inputs_moved_step(&written, b.clone()),
    ]);
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert!(
        h.ctx.rotated_tokens.is_empty(),
        "the rotated token gave way"
    );
    // The user's change arrives through the watch, and their token is what is verified.
    h.secret_at(
        "team-a",
        "jane",
        &[("refreshToken", "users-new-token")],
        "5",
    );
    let obj = h.binding(with_status(b, &written));
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        h.backend.presented_refresh_tokens(),
        ["old-token", "users-new-token"]
    );
    v.done().await;
}

#[tokio::test]
async fn a_deleted_bindings_rotated_token_is_forgotten() {
    let mut h = harness();
    oauth2_provider_and_jane_with_a_refresh_token(&mut h);
    h.backend.rotate_on_every_redemption("jane@contoso.com");
    let b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    let obj = h.binding(b.clone());
    // Write-back fails: the token is held in memory.
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
        status_step(Arc::default(), b),
        event_step("team-a", "Normal", "Verified"),
    ]);
    run(controller::reconcile_binding(obj.clone(), h.ctx.clone()))
        .await
        .unwrap_err();
    assert_eq!(h.ctx.rotated_tokens.len(), 1);
    h.delete_binding(&obj);
    h.ctx.forget_deleted();
    assert!(h.ctx.rotated_tokens.is_empty());
    let jane = ("team-a".to_string(), "jane".to_string());
    assert!(!h.ctx.stores.secret_data.holds(&jane));
    v.done().await;
}
