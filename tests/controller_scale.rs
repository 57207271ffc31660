//! Work bounded by time, not by the number of bindings: a binding whose provider has no
//! verdict yet is not written (it is written once, when the provider has one), and a
//! wave of bindings attaching to a provider settles into a bounded number of provider
//! status writes with exact final counts, which move while the wave goes on. The
//! provider controller runs as in production (`kinds::reconcile_kind`, its triggers
//! settled) on tokio's paused clock. A healthy binding is verified again once per period,
//! by its remembered probe coming due, not by a requeue timer of its own.

mod mock_api;
use mock_api::*;

use mailops::controller::kinds::{
    COUNTS_MAX_WAIT, COUNTS_SETTLE, Entrance, due_triggers, reconcile_kind,
};

#[tokio::test]
async fn a_binding_waits_silently_for_its_providers_first_verdict() {
    let mut h = harness();
    let mut p = basic_provider("exchange", &["contoso.com"]);
    p.as_object_mut().unwrap().remove("status");
    h.provider(p);
    h.secret("team-a", "jane", &[("password", "pw")]);
    let obj = h.binding(own_credentials_binding(
        "team-a",
        "jane",
        "jane@contoso.com",
        "jane",
    ));
    let v = h.verifier(vec![]);
    let action = run(controller::reconcile_binding(obj, h.ctx.clone()))
        .await
        .unwrap();
    assert_eq!(
        action,
        Action::await_change(),
        "its provider's write triggers it"
    );
    assert_eq!(h.backend.total_calls(), 0);
    v.done().await;
}

/// Fill a cache as its initial LIST would: a controller starts once its cache is ready.
fn listed<K>(writer: &mut Writer<Guarded<K>>, stores: &Stores, objects: Vec<Value>)
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned,
    Guarded<K>: fanout::Triggered,
{
    let mut events = vec![Event::Init];
    for o in objects {
        events.push(Event::InitApply(serde_json::from_value(o).unwrap()));
    }
    events.push(Event::InitDone);
    for event in &events {
        fanout::observe(writer, stores, event);
    }
}

/// Answers every request 200 with the provider, recording the status bodies.
fn provider_api(mut handle: Handle, provider: Value) -> Arc<Mutex<Vec<Value>>> {
    let writes = Arc::new(Mutex::new(Vec::new()));
    let seen = writes.clone();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let status_write = request.uri().path().ends_with("/status");
            let bytes = request.into_body().collect_bytes().await.unwrap();
            if status_write {
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&bytes).unwrap());
            }
            send.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&provider).unwrap()))
                    .unwrap(),
            );
        }
    });
    writes
}

fn attached_binding(i: usize) -> Value {
    let mut b = own_credentials_binding("team-a", &format!("b{i}"), "x@contoso.com", "x");
    b["status"] = json!({"provider": "exchange", "authenticatedVia": "Credentials"});
    b
}

#[tokio::test(start_paused = true)]
async fn a_wave_of_bindings_settles_into_a_bounded_number_of_provider_writes() {
    let mut h = harness();
    let p = basic_provider("exchange", &["contoso.com"]);
    listed(&mut h.writers.providers, &h.ctx.stores, vec![p.clone()]);
    let writes = provider_api(h.handle.take().unwrap(), p);
    let (senders, receivers) = fanout::channels();
    senders.activate(&h.ctx.stores);
    let controller = tokio::spawn(reconcile_kind(
        h.ctx.stores.providers.clone(),
        Entrance::Settled(receivers.providers),
        futures::stream::pending(),
        futures::future::pending(),
        controller::reconcile_provider,
        h.ctx.clone(),
    ));
    // A binding attaches every 10 ms for twice the longest wait, each re-triggering the
    // provider through the watch: the wave never pauses for the settle window.
    let wave = 2 * COUNTS_MAX_WAIT.as_millis() as usize / 10;
    for i in 0..wave {
        let g: Guarded<MailboxBinding> = serde_json::from_value(attached_binding(i)).unwrap();
        senders.send(fanout::observe(
            &mut h.writers.bindings,
            &h.ctx.stores,
            &Event::Apply(g),
        ));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(COUNTS_SETTLE * 5).await;
    let written = writes.lock().unwrap().clone();
    assert!(
        written.len() <= 3,
        "{} provider status writes for {wave} bindings",
        written.len()
    );
    let last = written.last().expect("the counts were written");
    assert_eq!(last["status"]["mailboxCount"], wave, "{last}");
    // The wave never paused for the settle window, yet its counts moved while it went on.
    let first = written[0]["status"]["mailboxCount"].as_u64().unwrap();
    assert!(
        first > 0 && first < wave as u64,
        "first write during the wave: {first}"
    );

    // The API server now holds that status; a trigger that changes nothing writes nothing.
    let mut settled = basic_provider("exchange", &["contoso.com"]);
    settled["status"] = last["status"].clone();
    let before = written.len();
    h.provider(settled);
    senders.send(fanout::everything(&h.ctx.stores));
    tokio::time::sleep(COUNTS_SETTLE * 5).await;
    assert_eq!(writes.lock().unwrap().len(), before);
    controller.abort();
}

/// Answers every request 200: Events with themselves, anything else with `object`;
/// records the bodies of status writes.
fn echo_api(mut handle: Handle, object: Value) -> Arc<Mutex<Vec<Value>>> {
    let writes = Arc::new(Mutex::new(Vec::new()));
    let seen = writes.clone();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let path = request.uri().path().to_string();
            let bytes = request.into_body().collect_bytes().await.unwrap();
            if path.ends_with("/status") {
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&bytes).unwrap());
            }
            let body = if path.ends_with("/events") {
                bytes.to_vec()
            } else {
                serde_json::to_vec(&object).unwrap()
            };
            send.send_response(Response::builder().body(Body::from(body)).unwrap());
        }
    });
    writes
}

#[tokio::test(start_paused = true)]
async fn a_healthy_binding_is_verified_again_once_per_period() {
    let mut h = harness();
    let period = h.ctx.config.reverify_interval;
    h.provider(basic_provider("exchange", &["contoso.com"]));
    h.secret("team-a", "jane", &[("password", "pw")]);
    let jane = own_credentials_binding("team-a", "jane", "jane@contoso.com", "jane");
    listed(&mut h.writers.bindings, &h.ctx.stores, vec![jane.clone()]);
    let writes = echo_api(h.handle.take().unwrap(), jane);
    let (senders, receivers) = fanout::channels();
    senders.activate(&h.ctx.stores);
    let controller = tokio::spawn(reconcile_kind(
        h.ctx.stores.bindings.clone(),
        Entrance::Gated(receivers.bindings),
        due_triggers::<MailboxBinding, _>(&h.ctx, |c| &c.mailbox_probes),
        futures::future::pending(),
        controller::reconcile_binding,
        h.ctx.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.backend.mailbox_calls(), 1, "verified on start");
    assert_eq!(writes.lock().unwrap().len(), 1, "and its status written");
    let ready = writes.lock().unwrap()[0].clone();
    assert_eq!(condition(&ready, "Ready")["status"], "True", "{ready}");

    // Step the paused clock and note when each verification happens: once per period,
    // never before it, within its 10 % of jitter (the reconcile requeued nothing itself).
    let step = Duration::from_secs(5);
    let mut last = tokio::time::Instant::now();
    for calls in 2..=4 {
        while h.backend.mailbox_calls() < calls {
            assert!(
                last.elapsed() < 2 * period,
                "not verified again in two periods"
            );
            tokio::time::sleep(step).await;
        }
        let gap = last.elapsed();
        assert!(
            gap >= period - step && gap <= period.mul_f64(1.1) + step,
            "verification {calls} came {gap:?} after the one before"
        );
        assert_eq!(h.backend.mailbox_calls(), calls, "once per period");
        last = tokio::time::Instant::now();
    }
    assert_eq!(h.ctx.mailbox_probes.len(), 1, "one remembered probe");
    controller.abort();
}

#[tokio::test(start_paused = true)]
async fn a_wave_of_bindings_enters_at_the_controllers_pace_and_every_one_is_verified() {
    let mut h = harness();
    h.provider(basic_provider("exchange", &["contoso.com"]));
    let wave = 3 * fanout::BINDINGS_ROOM + 5;
    let mut bindings = Vec::new();
    for i in 0..wave {
        let name = format!("b{i}");
        h.secret("team-a", &name, &[("password", "pw")]);
        let email = format!("{name}@contoso.com");
        bindings.push(own_credentials_binding("team-a", &name, &email, &name));
    }
    listed(&mut h.writers.bindings, &h.ctx.stores, bindings);
    let writes = echo_api(
        h.handle.take().unwrap(),
        own_credentials_binding("team-a", "b0", "b0@contoso.com", "b0"),
    );
    let (senders, receivers) = fanout::channels();
    let gate = receivers.bindings.clone();
    senders.activate(&h.ctx.stores);
    assert_eq!(gate.counts(), (wave, 0), "the wave waits at the gate");
    let controller = tokio::spawn(reconcile_kind(
        h.ctx.stores.bindings.clone(),
        Entrance::Gated(receivers.bindings),
        futures::stream::pending(),
        futures::future::pending(),
        controller::reconcile_binding,
        h.ctx.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Each result made room for the next: every binding went through exactly once.
    assert_eq!(h.backend.mailbox_calls(), wave);
    assert_eq!(writes.lock().unwrap().len(), wave);
    assert_eq!(gate.counts(), (0, 0), "nothing left inside");
    controller.abort();
}
