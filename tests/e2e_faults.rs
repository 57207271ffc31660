//! Fault tests against a real cluster (issue 12): the operator killed mid-deletion, a
//! crashed leader, the API server cut off, the token endpoint down, Graph throttling.
//! The operators run in-process, each on a runtime of its own so a test can kill one
//! like a crashed process; the real Exchange client runs against the fake Entra ID and
//! Graph of `tests/exchange_fake`.
//!
//! ```sh
//! KUBECONFIG=~/.kube/config cargo test --test e2e_faults -- --ignored --test-threads=1
//! ```
//!
//! Every object has a random suffix; a guard removes them (finalizers first) even when a
//! step fails. Faults last as long as the issue asks (20 s, 30 s): those timers are the
//! faults themselves, every wait for an effect watches the cluster with a deadline.
//! An operator reconciles every object in the cluster, so no other mailops operator (a
//! `mailops run`, the scale benchmark) may watch the cluster during the run.

mod e2e_support;
mod exchange_fake;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use e2e_support::operator::{Backend, Operator, Sent, test_config};
use e2e_support::proxy::{TcpProxy, api_server_addr};
use e2e_support::throttle::GraphThrottle;
use e2e_support::world::{Env, Via, exchange_config};
use e2e_support::*;
use exchange_fake::harness::{APP, SECRET};
use exchange_fake::tls::TestCa;
use exchange_fake::{Behaviour, FAKE_NAMES, FakeExchange};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::wait::conditions;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use mailops::api::{EmailProvider, MailboxBinding};
use mailops::config::OperatorConfig;
use mailops::controller::leader::{LEASE_DURATION, RENEW_PERIOD};
use mailops::exchange::fake::FakeBackend;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

// ------------------------------------------------------------------ 1. crash mid-deletion

const DOOMED: usize = 50;
const STAYING: usize = 10;
/// Deletions acknowledged when the operator is killed; the rest are still in flight.
const KILL_AFTER: usize = 20;

/// What a binding that must survive looks like: uid, generation and spec.
type Snapshot = BTreeMap<String, (Option<String>, Option<i64>, Value)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster"]
async fn a_crash_while_fifty_bindings_are_deleted_loses_no_binding_and_leaves_no_finalizer() {
    let (env, _cleanup) = Env::new("crash", &["gone", "kept"], &[]).await;
    let (gone, kept) = (env.name("gone"), env.name("kept"));
    create_secret(&env.client, &env.ns, "pw", json!({"password": "pw"})).await;
    env.basic_provider(&gone, &env.domain("gone")).await;
    env.basic_provider(&kept, &env.domain("kept")).await;
    let doomed: Vec<String> = (0..DOOMED).map(|i| format!("gone-{i:02}")).collect();
    let staying: Vec<String> = (0..STAYING).map(|i| format!("kept-{i:02}")).collect();
    apply_bindings(&env, &doomed, &env.domain("gone")).await;
    apply_bindings(&env, &staying, &env.domain("kept")).await;

    let fake = Arc::new(FakeBackend::new());
    let config = test_config(&env.name("first"));
    let mut first = Operator::start(config, env.kube.clone(), Backend::Fake(fake.clone()));
    let all = wait_for_all(&env.bindings(), "every binding Ready", |all| {
        all.len() == DOOMED + STAYING && all.iter().all(|b| ready(Some(b.as_ref())))
    })
    .await;
    let before: Snapshot = all
        .iter()
        .filter(|b| staying.contains(&b.name_any()))
        .map(|b| (b.name_any(), snapshot(b)))
        .collect();

    env.providers()
        .delete(&gone, &DeleteParams::default())
        .await
        .unwrap();
    let blocked = wait_for(&env.providers(), &gone, "blocked (InUse)", provider_in_use).await;
    let uid = blocked.unwrap().uid().unwrap();

    let deleted = Arc::new(watch::channel(0).0);
    let mut progress = deleted.subscribe();
    let deleting = tokio::spawn(delete_all(env.bindings(), doomed, deleted));
    let halfway = progress.wait_for(|n| *n >= KILL_AFTER);
    tokio::time::timeout(WAIT, halfway).await.unwrap().unwrap();
    first.kill();
    let at_kill = *progress.borrow();
    assert!(at_kill < DOOMED, "every deletion was done before the crash");

    let config = test_config(&env.name("second"));
    let mut second = Operator::start(config, env.kube.clone(), Backend::Fake(fake));
    deleting.await.unwrap();
    wait_for(
        &env.providers(),
        &gone,
        "deleted",
        conditions::is_deleted(&uid),
    )
    .await;
    assert_nothing_lost(&env, &before, &kept).await;
    second.assert_running();
    eprintln!("killed with {at_kill} of {DOOMED} deletions acknowledged");
}

async fn apply_bindings(env: &Env, names: &[String], domain: &str) {
    futures::stream::iter(names)
        .for_each_concurrent(8, |name| async move {
            env.binding(name, &format!("{name}@{domain}"), Via::Password)
                .await
        })
        .await;
}

fn snapshot(b: &MailboxBinding) -> (Option<String>, Option<i64>, Value) {
    (
        b.uid(),
        b.metadata.generation,
        serde_json::to_value(&b.spec).unwrap(),
    )
}

/// Delete `names`, a few at a time, counting the acknowledged deletions.
async fn delete_all(
    api: Api<MailboxBinding>,
    names: Vec<String>,
    deleted: Arc<watch::Sender<usize>>,
) {
    futures::stream::iter(names)
        .for_each_concurrent(4, |name| {
            let (api, deleted) = (api.clone(), deleted.clone());
            async move {
                api.delete(&name, &DeleteParams::default())
                    .await
                    .unwrap_or_else(|e| panic!("delete {name}: {e}"));
                deleted.send_modify(|n| *n += 1);
            }
        })
        .await;
}

/// The kept bindings are there with the same uid, generation and spec, and no binding
/// of the deleted provider is; no binding carries a finalizer; the kept provider still
/// counts its ten.
async fn assert_nothing_lost(env: &Env, before: &Snapshot, kept: &str) {
    let now = env.bindings().list(&ListParams::default()).await.unwrap();
    let after: Snapshot = now.iter().map(|b| (b.name_any(), snapshot(b))).collect();
    assert_eq!(&after, before, "the surviving bindings changed");
    for b in &now {
        assert!(
            b.finalizers().is_empty(),
            "{} holds {:?}",
            b.name_any(),
            b.finalizers()
        );
    }
    let counted = |p: Option<&EmailProvider>| {
        ready(p)
            && p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.mailbox_count == STAYING as i32)
    };
    let kept = wait_for(&env.providers(), kept, "Ready with its bindings", counted).await;
    assert!(kept.unwrap().metadata.deletion_timestamp.is_none());
    wait_for_all(&env.bindings(), "the kept bindings Ready", |all| {
        all.len() == STAYING && all.iter().all(|b| ready(Some(b.as_ref())))
    })
    .await;
}

// ------------------------------------------------------------------ 2. leader crash

/// How long to look for the crash moment described at [`crash_after_an_unseen_renewal`].
const CRASH_SEARCH: Duration = Duration::from_secs(90);
/// "Shortly before": the standby's read came this much before the leader's renewal.
const UNSEEN_READ: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(300)..=Duration::from_millis(1500);

fn held_by(identity: String) -> impl Fn(Option<&Lease>) -> bool {
    move |lease| {
        lease
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.holder_identity.as_deref())
            == Some(identity.as_str())
    }
}

fn lease_config(env: &Env, who: &str) -> OperatorConfig {
    OperatorConfig {
        leader_election: true,
        lease_namespace: env.ns.clone(),
        lease_name: env.name("lease"),
        ..test_config(&env.name(who))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster"]
async fn only_the_leader_writes_and_a_standby_takes_over_a_crashed_one_in_time() {
    let (env, _cleanup) = Env::new("lease", &["p"], &[]).await;
    let domain = env.domain("p");
    create_secret(&env.client, &env.ns, "pw", json!({"password": "pw"})).await;
    env.basic_provider(&env.name("p"), &domain).await;
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.ns);
    let lease = env.name("lease");
    let (fake_a, fake_b) = (Arc::new(FakeBackend::new()), Arc::new(FakeBackend::new()));

    let mut a = Operator::start(
        lease_config(&env, "a"),
        env.kube.clone(),
        Backend::Fake(fake_a),
    );
    wait_for(&leases, &lease, "held by a", held_by(env.name("a"))).await;
    let b = Operator::start(
        lease_config(&env, "b"),
        env.kube.clone(),
        Backend::Fake(fake_b.clone()),
    );
    b.requests
        .wait_for("Lease read", WAIT, Sent::is_lease)
        .await;
    env.binding("during", &format!("during@{domain}"), Via::Password)
        .await;
    env.wait_ready("during").await;
    let leader_writes = assert_only_the_leader_writes(&a, &b, &fake_b);

    let transitions = lease_transitions(&leases, &lease).await;
    let crashed = crash_after_an_unseen_renewal(&mut a, &b, &leases, &lease).await;
    let taken = wait_for(&leases, &lease, "held by b", held_by(env.name("b"))).await;
    let took = crashed.elapsed();
    assert!(
        took <= LEASE_DURATION + RENEW_PERIOD,
        "the standby took over {took:?} after the crash"
    );
    let after = taken.and_then(|l| l.spec).and_then(|s| s.lease_transitions);
    assert_eq!(
        after,
        Some(transitions + 1),
        "not a takeover of the crashed holder's Lease"
    );

    assert_the_new_leader_acts(&env, &b, &fake_b).await;
    eprintln!("leader wrote {leader_writes} times before the crash; takeover after {took:?}");
}

/// Only the leader wrote (status, finalizers, Events); the standby sent no write at all
/// and never called Exchange. Returns the leader's writes to mailops objects.
fn assert_only_the_leader_writes(
    leader: &Operator,
    standby: &Operator,
    fake: &FakeBackend,
) -> usize {
    let leader_writes = leader
        .requests
        .writes()
        .iter()
        .filter(|s| s.is_mailops())
        .count();
    assert!(leader_writes > 0, "the leader wrote nothing");
    let standby_writes = standby.requests.writes();
    assert!(
        standby_writes.is_empty(),
        "the standby wrote: {standby_writes:?}"
    );
    assert_eq!(fake.total_calls(), 0, "the standby called Exchange");
    leader_writes
}

/// A binding made after the takeover is verified and written by the new leader.
async fn assert_the_new_leader_acts(env: &Env, leader: &Operator, fake: &FakeBackend) {
    let email = format!("after@{}", env.domain("p"));
    env.binding("after", &email, Via::Password).await;
    env.wait_ready("after").await;
    let status = "/mailboxbindings/after/status";
    assert!(
        leader
            .requests
            .writes()
            .iter()
            .any(|s| s.path.ends_with(status))
    );
    assert!(fake.verified_addresses().contains(&email));
}

async fn lease_transitions(leases: &Api<Lease>, name: &str) -> i32 {
    let lease = leases.get(name).await.unwrap();
    lease.spec.and_then(|s| s.lease_transitions).unwrap_or(0)
}

/// Kill the leader `a` right after a renewal that the standby `b` has not seen: `b` read
/// the Lease shortly before it, so `b` sees the renewal only one poll later and must then
/// wait a whole lease duration. A crash may come at any moment, and this is the one that
/// leaves the standby the longest wait. Should no renewal fall so within the search, the
/// crash comes right after the last one. Returns when the leader was killed.
async fn crash_after_an_unseen_renewal(
    a: &mut Operator,
    b: &Operator,
    leases: &Api<Lease>,
    name: &str,
) -> std::time::Instant {
    let search_ends = std::time::Instant::now() + CRASH_SEARCH;
    let mut records = std::pin::pin!(watcher::watch_object(leases.clone(), name));
    let mut last_renewal = None;
    loop {
        let record = tokio::time::timeout(WAIT, records.next()).await;
        let lease = record.ok().flatten().and_then(Result::ok).flatten();
        let renewal = lease.expect("the Lease").spec.and_then(|s| s.renew_time);
        let now = std::time::Instant::now();
        let renewed = last_renewal.is_some() && renewal != last_renewal;
        last_renewal = renewal;
        if !renewed {
            continue;
        }
        let read = b
            .requests
            .last(Sent::is_lease)
            .map(|s| now.saturating_duration_since(s.at));
        if read.is_some_and(|r| UNSEEN_READ.contains(&r)) || now >= search_ends {
            a.kill();
            eprintln!("crashed the leader {read:?} after the standby's last read");
            return now;
        }
    }
}

// ------------------------------------------------------------------ 3. API server outage

const API_OUTAGE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster"]
async fn the_operator_rides_out_a_20s_api_server_outage_without_a_restart() {
    let (env, _cleanup) = Env::new("apicut", &["p"], &[]).await;
    let domain = env.domain("p");
    create_secret(&env.client, &env.ns, "pw", json!({"password": "pw"})).await;
    env.basic_provider(&env.name("p"), &domain).await;
    env.binding("before", &format!("before@{domain}"), Via::Password)
        .await;
    let proxy = TcpProxy::start(api_server_addr(&env.kube).await).await;
    let mut through_proxy = env.kube.clone();
    through_proxy.cluster_url = proxy.url("https").parse().unwrap();
    let fake = Arc::new(FakeBackend::new());
    let config = test_config(&env.name("op"));
    let mut op = Operator::start(config, through_proxy, Backend::Fake(fake));
    let first = env.wait_ready("before").await;

    proxy.take_down();
    let back_at = Instant::now() + API_OUTAGE;
    env.binding("during", &format!("during@{domain}"), Via::Password)
        .await;
    let syncing_on = json!({"enableSyncing": true});
    let before = format!("before@{domain}");
    env.binding_with("before", &before, Via::Password, syncing_on)
        .await;
    tokio::time::sleep_until(back_at).await;
    let during = env.bindings().get("during").await.unwrap();
    assert!(
        during.status.is_none(),
        "the operator reached the API server during the cut"
    );
    op.assert_running();
    proxy.bring_up();
    let up = Instant::now();

    env.wait_ready("during").await;
    let changed = |b: Option<&MailboxBinding>| {
        ready(b)
            && b.is_some_and(|b| {
                b.status.as_ref().and_then(|s| s.observed_generation) == b.metadata.generation
                    && b.metadata.generation > first.metadata.generation
            })
    };
    wait_for(
        &env.bindings(),
        "before",
        "reconciled after its change",
        changed,
    )
    .await;
    op.assert_running();
    let tried = proxy.attempts_while_down();
    eprintln!(
        "caught up {:?} after the outage; {tried} connections tried during it",
        up.elapsed()
    );
}

// ------------------------------------------------------------------ 4. token endpoint down

const TOKEN_OUTAGE: Duration = Duration::from_secs(30);
/// Three objects ask for tokens (provider, account, binding); a failed one is retried
/// after 5, 10, 20 s (+10 % jitter), so at most three attempts each fall in 30 s, plus
/// one re-run of the provider when its account's `Ready` flips.
const MAX_TOKEN_ATTEMPTS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster"]
async fn a_30s_token_endpoint_outage_is_unreachable_retried_with_backoff_and_heals() {
    let (env, _cleanup) = Env::new("token", &["p"], &["sa"]).await;
    let alice = format!("alice@{}", env.domain("p"));
    // Tokens of 2 s (used for 1 s, see `usable_for`), so every check of the 5 s
    // re-verification asks Entra ID, as each does once a cached token nears its expiry.
    let behaviour = Behaviour {
        expires_in: 2,
        ..Behaviour::default()
    };
    let fake = FakeExchange::start(
        behaviour
            .app(APP, SECRET, &["Mail.Read", "Mail.Send"])
            .mailboxes(&[&alice]),
    )
    .await;
    let authority = TcpProxy::start(fake.addr).await;
    // The TCP proxy passes TLS through: the fake's certificate names 127.0.0.1.
    env.m365_provider_and_account(
        (APP, SECRET),
        &env.domain("p"),
        (&authority.url("https"), &fake.base()),
        json!({"caBundle": fake.ca_pem()}),
    )
    .await;
    env.binding("alice", &alice, Via::Account).await;
    let config = OperatorConfig {
        reverify_interval: Duration::from_secs(5),
        ..exchange_config(&env.name("op"))
    };
    let mut op = Operator::start(config, env.kube.clone(), Backend::Exchange);
    let (provider, account) = (env.name("p"), env.name("sa"));
    wait_for(&env.providers(), &provider, "Ready", ready_provider).await;
    wait_for(&env.accounts(), &account, "Ready", ready_account).await;
    env.wait_ready("alice").await;

    let tried = token_outage(&env, &fake, &authority).await;
    authority.bring_up();
    let up = Instant::now();

    let healed = condition("Authenticated", "True", "Verified");
    wait_for(&env.providers(), &provider, "authenticated again", healed).await;
    let healed = condition("Authenticated", "True", "Verified");
    wait_for(&env.accounts(), &account, "authenticated again", healed).await;
    env.wait_ready("alice").await;
    op.assert_running();
    eprintln!(
        "{tried} token requests during the outage; healed {:?} after it",
        up.elapsed()
    );
}

/// Take the token endpoint down for [`TOKEN_OUTAGE`]: the provider and the account turn
/// `Authenticated=False` `Unreachable` meanwhile, no request gets through, and the
/// attempts stay within [`MAX_TOKEN_ATTEMPTS`]. Returns the attempts.
async fn token_outage(env: &Env, fake: &FakeExchange, authority: &TcpProxy) -> usize {
    let (provider, account) = (env.name("p"), env.name("sa"));
    authority.take_down();
    let back_at = Instant::now() + TOKEN_OUTAGE;
    let left = || back_at - Instant::now();
    let unreachable = ("Authenticated", "False", "Unreachable");
    let down = condition(unreachable.0, unreachable.1, unreachable.2);
    wait_for_within(&env.providers(), &provider, "Unreachable", left(), down).await;
    let down = condition(unreachable.0, unreachable.1, unreachable.2);
    wait_for_within(&env.accounts(), &account, "Unreachable", left(), down).await;
    let reached = fake.token_requests();
    tokio::time::sleep_until(back_at).await;
    let tried = authority.attempts_while_down();
    assert_eq!(
        fake.token_requests(),
        reached,
        "a token request got through the outage"
    );
    assert!(
        (1..=MAX_TOKEN_ATTEMPTS).contains(&tried),
        "{tried} token requests in {TOKEN_OUTAGE:?}"
    );
    tried
}

// ------------------------------------------------------------------ 5. Graph throttling

const THROTTLE_WINDOW: Duration = Duration::from_secs(20);
/// Retry-After: 0 must not undercut the back-off of 5, 10, 20 s: at most three attempts
/// in 20 s, with room for one re-run caused by another object's change.
const MAX_ZERO_REQUESTS: usize = 5;
/// Retry-After: u64::MAX is capped, not ignored: one attempt, maybe one re-run.
const MAX_HUGE_REQUESTS: usize = 2;

fn verified(
    status: &'static str,
    reason: &'static str,
) -> impl Fn(Option<&MailboxBinding>) -> bool {
    condition("Verified", status, reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster"]
async fn graph_429s_are_waited_out_per_mailbox_without_a_hot_loop_or_a_panic() {
    let (env, _cleanup) = Env::new("throttle", &["p"], &["sa"]).await;
    let domain = env.domain("p");
    let email = |who: &str| format!("{who}@{domain}");
    let (zero, huge) = (email("zero"), email("huge"));
    let (fake, graph, front_ca) = throttled_graph(&env, &zero, &huge).await;
    let bundle = format!("{}{}", fake.ca_pem(), front_ca.pem);
    env.m365_provider_and_account(
        (APP, SECRET),
        &domain,
        (&fake.base(), &graph.base()),
        json!({"caBundle": bundle}),
    )
    .await;
    for who in ["zero", "huge", "calm-1", "calm-2"] {
        env.binding(who, &email(who), Via::Account).await;
    }
    let mut op = Operator::start(
        exchange_config(&env.name("op")),
        env.kube.clone(),
        Backend::Exchange,
    );
    let calm = env.wait_ready("calm-1").await;
    env.wait_ready("calm-2").await;
    for throttled in ["zero", "huge"] {
        let throttled_now = verified("False", "Throttled");
        wait_for(&env.bindings(), throttled, "Throttled", throttled_now).await;
    }
    let first = |m: &str| graph.requests_for(m).first().copied().expect("a request");
    let (zero_from, huge_from) = (first(&zero), first(&huge));

    env.binding("late", &email("late"), Via::Account).await;
    env.wait_ready("late").await;
    tokio::time::sleep_until(zero_from.max(huge_from) + THROTTLE_WINDOW).await;
    op.assert_running();
    let (zero_count, huge_count) =
        assert_throttling_honoured(&graph, (&zero, zero_from), (&huge, huge_from));
    let still = env.bindings().get("calm-1").await.unwrap();
    assert_eq!(
        calm_since(&still),
        calm_since(&calm),
        "calm-1 flapped meanwhile"
    );
    eprintln!(
        "in {THROTTLE_WINDOW:?}: {zero_count} requests for Retry-After 0, {huge_count} for the huge one"
    );
}

/// The fake Graph behind a front throttling `zero` (`Retry-After: 0`) and `huge`
/// (`Retry-After: u64::MAX`); the fake knows those and the calm mailboxes. The front
/// serves a certificate of a CA of its own, returned with them.
async fn throttled_graph(
    env: &Env,
    zero: &str,
    huge: &str,
) -> (FakeExchange, GraphThrottle, TestCa) {
    let domain = env.domain("p");
    let email = |who: &str| format!("{who}@{domain}");
    let all: Vec<String> = ["zero", "huge", "calm-1", "calm-2", "late"]
        .map(email)
        .to_vec();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let fake = FakeExchange::start(
        Behaviour::default()
            .app(APP, SECRET, &["Mail.Read", "Mail.Send"])
            .mailboxes(&all),
    )
    .await;
    let front_ca = TestCa::new("Graph Front Test CA");
    let graph = GraphThrottle::start(
        (fake.base(), fake.ca_pem()),
        front_ca.server(FAKE_NAMES).acceptor(),
        &[(zero, "0"), (huge, "18446744073709551615")],
    )
    .await;
    (fake, graph, front_ca)
}

/// Requests for each throttled mailbox in [`THROTTLE_WINDOW`] from its first: more than
/// one for `Retry-After: 0` (it is retried) but no hot loop, at most a re-run for the
/// huge one. Returns both counts.
fn assert_throttling_honoured(
    graph: &GraphThrottle,
    (zero, zero_from): (&str, Instant),
    (huge, huge_from): (&str, Instant),
) -> (usize, usize) {
    let within = |m: &str, from: Instant| {
        let seen = graph.requests_for(m);
        seen.iter()
            .filter(|t| **t <= from + THROTTLE_WINDOW)
            .count()
    };
    let (zero_count, huge_count) = (within(zero, zero_from), within(huge, huge_from));
    assert!(
        (2..=MAX_ZERO_REQUESTS).contains(&zero_count),
        "Retry-After: 0 gave {zero_count} requests in {THROTTLE_WINDOW:?}"
    );
    assert!(
        (1..=MAX_HUGE_REQUESTS).contains(&huge_count),
        "a huge Retry-After gave {huge_count} requests in {THROTTLE_WINDOW:?}"
    );
    (zero_count, huge_count)
}

/// When `Ready` last changed, for a binding that must stay Ready.
fn calm_since(b: &MailboxBinding) -> Option<String> {
    assert!(ready(Some(b)), "{} is not Ready", b.name_any());
    let ready = mailops::api::conditions::find(HasConditions::conditions(b), "Ready")?;
    Some(ready.last_transition_time.time().0.to_string())
}
