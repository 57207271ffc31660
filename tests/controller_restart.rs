//! Restarts trust what is already true (issue 24), against the mock API server on the
//! paused clock: an operator started over the statuses another one wrote sends no write
//! and nothing to Exchange, then verifies each object once in the following period; an
//! object whose Secret changed while no operator ran is verified at once.

mod mock_api;
use mock_api::*;

const MAILBOXES: [&str; 3] = ["jane", "joe", "ann"];

fn provider() -> Value {
    let mut p = basic_provider("exchange", &["contoso.com"]);
    p["metadata"]["uid"] = json!("uid-provider");
    p
}

fn account() -> Value {
    json!({
        "apiVersion": API, "kind": "ExchangeServiceAccount",
        "metadata": {"name": "svc", "uid": "uid-svc", "generation": 1,
                     "finalizers": ["mailops.dev/in-use"]},
        "spec": {"providerRef": {"name": "exchange"},
                 "credentials": {"basic": {"secretRef": {"namespace": "mailops-system", "name": "svc"}}}},
    })
}

fn binding(name: &str) -> Value {
    let mut b = own_credentials_binding("team-a", name, &format!("{name}@contoso.com"), name);
    b["metadata"]["uid"] = json!(format!("uid-{name}"));
    b
}

/// The Secrets as the cluster holds them: `changed` has a new version and password.
fn secrets(h: &mut Harness, changed: Option<&str>) {
    h.secret(
        "mailops-system",
        "svc",
        &[("username", "svc"), ("password", "pw")],
    );
    for name in MAILBOXES {
        let (version, password) = if Some(name) == changed {
            ("9", "new-pw")
        } else {
            ("1", "pw")
        };
        h.secret_at(
            "team-a",
            name,
            &[("username", name), ("password", password)],
            version,
        );
    }
}

/// An API server that accepts every write, answering a write to an object with that
/// object (by the name in its path) and an Event with itself.
fn accepting(handle: Handle) -> Writes {
    accepting_api_with(handle, |path| {
        if path.contains("/emailproviders/") {
            provider()
        } else if path.contains("/exchangeserviceaccounts/") {
            account()
        } else {
            let name = MAILBOXES.iter().find(|n| path.contains(&format!("/{n}/")));
            binding(name.expect("one of the mailboxes"))
        }
    })
}

fn with_status(mut object: Value, status: &Value) -> Value {
    object["status"] = status.clone();
    object
}

/// The last status each object was written with, by its status path.
fn statuses(writes: &Writes) -> BTreeMap<String, Value> {
    let mut last = BTreeMap::new();
    for (path, body) in writes.lock().unwrap().iter() {
        if path.ends_with("/status") {
            last.insert(path.clone(), body["status"].clone());
        }
    }
    last
}

fn status_of(written: &BTreeMap<String, Value>, kind: &str, name: &str) -> Value {
    let path = written
        .keys()
        .find(|p| p.contains(&format!("/{kind}/{name}/")))
        .unwrap_or_else(|| panic!("no status written for {kind}/{name}: {written:?}"));
    written[path].clone()
}

/// The first operator: every object verified, its statuses written.
async fn first_operator() -> BTreeMap<String, Value> {
    first_operator_with(FakeBackend::new()).await.0
}

/// The statuses the first operator wrote, and its metrics.
async fn first_operator_with(backend: FakeBackend) -> (BTreeMap<String, Value>, String) {
    let config = OperatorConfig {
        identity: "test".into(),
        ..OperatorConfig::default()
    };
    let mut h = harness_with_backend(config, backend);
    let writes = accepting(h.handle.take().unwrap());
    secrets(&mut h, None);
    h.namespace("team-a", &[]);
    let p = h.provider(provider());
    let a = h.account(account());
    run(controller::reconcile_provider(p, h.ctx.clone()))
        .await
        .unwrap();
    // A refused account is an error of its reconcile (it waits for a change).
    let _ = run(controller::reconcile_service_account(a, h.ctx.clone())).await;
    for name in MAILBOXES {
        let b = h.binding(binding(name));
        run(controller::reconcile_binding(b, h.ctx.clone()))
            .await
            .unwrap();
    }
    assert_eq!(h.backend.mailbox_calls(), 3);
    (statuses(&writes), h.ctx.metrics.encode())
}

/// A second operator over the objects as the first left them (and, with `changed`, one
/// Secret edited meanwhile), having reconciled each once as it does on starting.
struct Restarted {
    h: Harness,
    writes: Writes,
    bindings: BTreeMap<&'static str, Arc<Guarded<MailboxBinding>>>,
}

async fn restarted(written: &BTreeMap<String, Value>, changed: Option<&str>) -> Restarted {
    let mut h = harness();
    let writes = accepting(h.handle.take().unwrap());
    secrets(&mut h, changed);
    h.namespace("team-a", &[]);
    let p = with_status(
        provider(),
        &status_of(written, "emailproviders", "exchange"),
    );
    let a = with_status(
        account(),
        &status_of(written, "exchangeserviceaccounts", "svc"),
    );
    let (p, a) = (h.provider(p), h.account(a));
    run(controller::reconcile_provider(p, h.ctx.clone()))
        .await
        .unwrap();
    // A refused account is an error of its reconcile (it waits for a change).
    let _ = run(controller::reconcile_service_account(a, h.ctx.clone())).await;
    let mut bindings = BTreeMap::new();
    for name in MAILBOXES {
        let status = status_of(written, "mailboxbindings", name);
        let b = h.binding(with_status(binding(name), &status));
        run(controller::reconcile_binding(b.clone(), h.ctx.clone()))
            .await
            .unwrap();
        bindings.insert(name, b);
    }
    Restarted {
        h,
        writes,
        bindings,
    }
}

/// The keys that come due within `period` from now, in order.
async fn due_within<T: Clone>(
    cache: &controller::probe_cache::ProbeCache<T>,
    period: Duration,
) -> Vec<String> {
    let end = tokio::time::Instant::now() + period;
    let mut due = Vec::new();
    while let Ok(key) = tokio::time::timeout_at(end, cache.next_due()).await {
        due.push(key.to_string());
    }
    due
}

#[tokio::test(start_paused = true)]
async fn a_restart_over_current_statuses_writes_and_asks_nothing_then_verifies_each_once() {
    let (written, metrics) = first_operator_with(FakeBackend::new()).await;
    // The exact time of the latest verification, which the status rounds to a day.
    for kind in ["EmailProvider", "ExchangeServiceAccount", "MailboxBinding"] {
        let line = format!("mailops_last_verification_timestamp_seconds{{kind=\"{kind}\"}} ");
        assert!(metrics.contains(&line), "{kind}: {metrics}");
    }
    assert!(
        written
            .values()
            .all(|s| s["verifiedInputs"].as_str().is_some_and(|d| d.len() == 16)),
        "every verdict records its inputs: {written:#?}"
    );
    let r = restarted(&written, None).await;
    assert_eq!(r.h.backend.total_calls(), 0, "nothing sent to Exchange");
    assert!(r.writes.lock().unwrap().is_empty(), "{:?}", r.writes);

    // The next period: each object comes due once, is verified once, and writes nothing
    // (its status says the same).
    let period = r.h.ctx.config.reverify_interval.mul_f64(1.1);
    let mut due = due_within(&r.h.ctx.mailbox_probes, period).await;
    due.sort();
    assert_eq!(
        due,
        [
            "MailboxBinding/team-a/ann",
            "MailboxBinding/team-a/jane",
            "MailboxBinding/team-a/joe"
        ]
    );
    for name in MAILBOXES {
        run(controller::reconcile_binding(
            r.bindings[name].clone(),
            r.h.ctx.clone(),
        ))
        .await
        .unwrap();
    }
    assert_eq!(r.h.backend.mailbox_calls(), 3);
    assert_eq!(
        due_within(&r.h.ctx.provider_probes, Duration::ZERO)
            .await
            .len(),
        1
    );
    assert_eq!(
        due_within(&r.h.ctx.account_probes, Duration::ZERO)
            .await
            .len(),
        1
    );
    assert!(r.writes.lock().unwrap().is_empty(), "{:?}", r.writes);
}

#[tokio::test(start_paused = true)]
async fn a_secret_changed_while_no_operator_ran_is_verified_at_once() {
    let written = first_operator().await;
    let r = restarted(&written, Some("joe")).await;
    assert_eq!(r.h.backend.mailbox_calls(), 1, "joe, and only joe");
    assert_eq!(r.h.backend.verified_addresses(), ["joe@contoso.com"]);
    let writes = r.writes.lock().unwrap();
    let paths: Vec<&str> = writes.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["/apis/mailops.dev/v1alpha1/namespaces/team-a/mailboxbindings/joe/status"],
        "one write: the inputs joe was verified with"
    );
    let before = status_of(&written, "mailboxbindings", "joe");
    assert_ne!(
        writes[0].1["status"]["verifiedInputs"],
        before["verifiedInputs"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_standby_that_takes_over_writes_nothing_for_unchanged_objects() {
    // The standby's watches ran all along: they delivered each object first as created,
    // then with the status the leader wrote. It verified nothing meanwhile.
    let written = first_operator().await;
    let mut standby = harness();
    let writes = accepting(standby.handle.take().unwrap());
    secrets(&mut standby, None);
    standby.namespace("team-a", &[]);
    standby.provider(provider());
    standby.account(account());
    for name in MAILBOXES {
        standby.binding(binding(name));
    }
    assert!(standby.ctx.mailbox_probes.is_empty());
    let p = with_status(
        provider(),
        &status_of(&written, "emailproviders", "exchange"),
    );
    let a = with_status(
        account(),
        &status_of(&written, "exchangeserviceaccounts", "svc"),
    );
    let (p, a) = (standby.provider(p), standby.account(a));
    // The leader is gone: the standby reconciles everything from its warm caches.
    run(controller::reconcile_provider(p, standby.ctx.clone()))
        .await
        .unwrap();
    run(controller::reconcile_service_account(
        a,
        standby.ctx.clone(),
    ))
    .await
    .unwrap();
    for name in MAILBOXES {
        let status = status_of(&written, "mailboxbindings", name);
        let b = standby.binding(with_status(binding(name), &status));
        run(controller::reconcile_binding(b, standby.ctx.clone()))
            .await
            .unwrap();
    }
    assert_eq!(standby.backend.total_calls(), 0);
    assert!(writes.lock().unwrap().is_empty(), "{writes:?}");
}

#[tokio::test(start_paused = true)]
async fn steady_state_writes_at_most_one_status_per_binding_a_day() {
    const DAYS: u32 = 3;
    let written = first_operator().await;
    let mut r = restarted(&written, None).await;
    let hours = DAYS * 24;
    let end = tokio::time::Instant::now() + Duration::from_secs(3600) * hours;
    while let Ok(key) = tokio::time::timeout_at(end, r.h.ctx.mailbox_probes.next_due()).await {
        let name = MAILBOXES
            .into_iter()
            .find(|n| key.ends_with(&format!("/{n}")))
            .expect("a binding");
        let seen = r.writes.lock().unwrap().len();
        run(controller::reconcile_binding(
            r.bindings[name].clone(),
            r.h.ctx.clone(),
        ))
        .await
        .unwrap();
        // A status write reaches the cache through the watch.
        let new = r.writes.lock().unwrap().get(seen).cloned();
        if let Some((_, body)) = new {
            let b = r.h.binding(with_status(binding(name), &body["status"]));
            r.bindings.insert(name, b);
        }
    }
    let n = MAILBOXES.len();
    let probes = r.h.backend.mailbox_calls();
    assert!(
        probes >= n * hours as usize * 10 / 11 && probes <= n * hours as usize,
        "each mailbox verified about hourly: {probes}"
    );
    let writes = r.writes.lock().unwrap();
    assert!(writes.iter().all(|(p, _)| p.contains("/mailboxbindings/")));
    let per_hour = writes.len() as f64 / f64::from(hours);
    assert!(
        per_hour <= n as f64 / 24.0,
        "{} writes in {hours} hours",
        writes.len()
    );
    assert!(
        writes.len() >= n * (DAYS as usize - 1),
        "lastVerifiedTime still moves daily: {} writes",
        writes.len()
    );
}

#[tokio::test(start_paused = true)]
async fn refused_credentials_recorded_in_a_status_are_not_sent_again_after_a_restart() {
    let backend = FakeBackend::new();
    let refused = Failure::new(Reason::InvalidCredentials, "the password was refused");
    backend.fail_authentication("exchange", refused);
    let (written, _) = first_operator_with(backend).await;
    let account = status_of(&written, "exchangeserviceaccounts", "svc");
    assert_eq!(
        condition(&json!({"status": account}), "Ready")["reason"],
        "InvalidCredentials"
    );
    let r = restarted(&written, None).await;
    assert_eq!(
        r.h.backend.auth_calls(),
        0,
        "a refusal is not retried on a timer or a restart"
    );
    assert!(r.writes.lock().unwrap().is_empty(), "{:?}", r.writes);
    assert!(
        due_within(
            &r.h.ctx.account_probes,
            r.h.ctx.config.reverify_interval * 2
        )
        .await
        .is_empty(),
        "and it never comes due: it waits for a change"
    );
}
