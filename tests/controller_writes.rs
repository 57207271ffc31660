//! What a reconcile writes and asks, against the mock API server (every request checked,
//! an unexpected one fails): nothing when the status would say the same, a remembered probe
//! instead of Exchange, the time Exchange last confirmed a mailbox kept, Events about the
//! mailops kinds, and a clear start-up failure without the CRDs.

mod mock_api;
use mock_api::*;

const JANE_STATUS: &str =
    "/apis/mailops.dev/v1alpha1/namespaces/team-a/mailboxbindings/jane/status";

fn with_status(mut b: Value, status: &Arc<Mutex<Value>>) -> Value {
    b["status"] = status.lock().unwrap().clone();
    b
}

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
    // fresh context (after a restart): it has no probe memory, but the status records the
    // inputs its verdict was reached with, and those have not changed.
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
        1,
        "a fresh context trusts the status for these inputs"
    );
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
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap_err();
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
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    // Re-triggered with the same inputs: the remembered success yields the same status,
    // so nothing is written and Exchange is not asked again.
    let obj = h.binding(with_status(b, &written));
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(h.backend.mailbox_calls(), 1);
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
