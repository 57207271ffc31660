//! Secrets by reference, against the mock API server: every Secret's metadata is watched,
//! and the data only of those a mailops object references is held, read with one GET when
//! first needed (asserted through the cache, not by memory); a new version of a Secret is
//! read again, and verified again only when its values changed; a Secret nobody
//! references any more is dropped, with any rotated token held for it.

mod mock_api;
use mock_api::*;

const JANE_STATUS: &str =
    "/apis/mailops.dev/v1alpha1/namespaces/team-a/mailboxbindings/jane/status";
const JANE_SECRET: &str = "/api/v1/namespaces/team-a/secrets/jane";

fn key(ns: &str, name: &str) -> (String, String) {
    (ns.to_string(), name.to_string())
}

/// The GET of `team-a/jane`, answered with its password at `version`.
fn get_jane(version: &str, password: &str) -> Step {
    let secret = secret_object("team-a", "jane", &[("password", password)], version);
    step(
        Method::GET,
        JANE_SECRET,
        |_, _| {},
        serde_json::to_value(secret).unwrap(),
    )
}

/// A Basic provider and jane's binding with her own credentials; the Secret itself and
/// two unrelated ones (a Helm release, another team's) known by their metadata only.
fn jane_and_strangers(h: &mut Harness) -> Arc<Guarded<MailboxBinding>> {
    h.provider(basic_provider("exchange", &["contoso.com"]));
    h.secret_meta_at("team-a", "jane", "5");
    h.secret_meta_at("kube-system", "sh.helm.release.v1.x.v1", "3");
    h.secret_meta_at("team-b", "payroll", "8");
    h.binding(own_credentials_binding(
        "team-a",
        "jane",
        "jane@contoso.com",
        "jane",
    ))
}

fn verified_status(written: Arc<Mutex<Value>>, b: Value) -> Step {
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

/// A status write that only moves `verifiedInputs`.
fn inputs_recorded(written: Arc<Mutex<Value>>, b: Value) -> Step {
    step(
        Method::PATCH,
        JANE_STATUS,
        move |_, body| {
            let mut before = written.lock().unwrap().clone();
            assert_ne!(body["status"]["verifiedInputs"], before["verifiedInputs"]);
            before["verifiedInputs"] = body["status"]["verifiedInputs"].clone();
            assert_eq!(body["status"], before, "nothing else moved");
        },
        b,
    )
}

#[tokio::test]
async fn only_a_referenced_secret_is_read_and_held_and_only_once() {
    let mut h = harness();
    let obj = jane_and_strangers(&mut h);
    let b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    let written = Arc::new(Mutex::new(Value::Null));
    let v = h.verifier(vec![
        get_jane("5", "pw"),
        verified_status(written.clone(), b.clone()),
        event_step("team-a", "Normal", "Verified"),
    ]);
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    let data = &h.ctx.stores.secret_data;
    assert!(data.holds(&key("team-a", "jane")));
    assert!(!data.holds(&key("team-b", "payroll")));
    assert!(!data.holds(&key("kube-system", "sh.helm.release.v1.x.v1")));
    assert_eq!(data.len(), 1);
    // Triggered again for something else: the Secret is held at its version, no GET.
    let mut again = b;
    again["status"] = written.lock().unwrap().clone();
    let obj = h.binding(again);
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(h.backend.mailbox_calls(), 1);
    v.done().await;
}

#[tokio::test]
async fn a_new_version_is_read_again_and_verified_only_when_its_values_changed() {
    let mut h = harness();
    let obj = jane_and_strangers(&mut h);
    let b = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    let written = Arc::new(Mutex::new(Value::Null));
    let v = h.verifier(vec![
        get_jane("5", "pw"),
        verified_status(written.clone(), b.clone()),
        event_step("team-a", "Normal", "Verified"),
        // A label edit: a new version, the same password.
        get_jane("6", "pw"),
        // A new password: verified, and the status records the inputs it was verified
        // with (a label edit did not: a restart re-verifies that one once).
        get_jane("7", "new-pw"),
        inputs_recorded(written.clone(), b.clone()),
    ]);
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    let mut current = b;
    current["status"] = written.lock().unwrap().clone();

    h.secret_meta_at("team-a", "jane", "6");
    assert!(
        h.ctx.stores.secret_data.is_empty(),
        "the older version's data is dropped at once"
    );
    let obj = h.binding(current.clone());
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(
        h.backend.mailbox_calls(),
        1,
        "same password: not probed again"
    );

    h.secret_meta_at("team-a", "jane", "7");
    let obj = h.binding(current);
    run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(h.backend.mailbox_calls(), 2, "a new password is verified");
    v.done().await;
}

#[tokio::test]
async fn a_secret_nobody_references_any_more_is_dropped() {
    let mut h = harness();
    let obj = jane_and_strangers(&mut h);
    let v = h.verifier(vec![
        get_jane("5", "pw"),
        verified_status(
            Arc::default(),
            own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane"),
        ),
        event_step("team-a", "Normal", "Verified"),
    ]);
    run(controller::reconcile_binding(obj.clone(), h.ctx.clone()))
        .await
        .unwrap();
    assert!(h.ctx.stores.secret_data.holds(&key("team-a", "jane")));
    h.delete_binding(&obj);
    assert!(h.ctx.stores.secret_data.is_empty());
    v.done().await;
}

#[tokio::test]
async fn a_secret_that_does_not_exist_is_reported_without_a_get() {
    let mut h = harness();
    h.provider(basic_provider("exchange", &["contoso.com"]));
    let obj = h.binding(own_credentials_binding(
        "team-a",
        "jane",
        "jane@contoso.com",
        "nowhere",
    ));
    let v = h.verifier(vec![
        step(
            Method::PATCH,
            JANE_STATUS,
            |_, body| assert_eq!(condition(body, "Verified")["reason"], "SecretNotFound"),
            own_credentials_binding("team-a", "jane", "jane@contoso.com", "nowhere"),
        ),
        event_step("team-a", "Warning", "SecretNotFound"),
    ]);
    let err = run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some(Reason::SecretNotFound));
    assert_eq!(h.backend.mailbox_calls(), 0);
    v.done().await;
}
