//! End-to-end against a real cluster, with the controllers running in-process on the fake
//! mail backend and leader election off:
//!
//! ```sh
//! KUBECONFIG=~/.kube/config cargo test --test e2e -- --ignored --nocapture
//! ```
//!
//! Everything lives in fresh namespaces and cluster-scoped objects with a random suffix;
//! a guard removes them (finalizers first) even when a step fails, after dumping them.
//!
//! Besides the lifecycle, what tenants sharing a cluster must not be able to do (issue
//! 19) and the release race of issue 20: tenants guessing one account's password get
//! the failed-login budget and no more (the real Exchange client against the fake EWS),
//! 1,000 unrelated 512 KiB Secrets do not grow the operator's memory (`mailops run` as a
//! process, its RSS printed), and a provider deleted while a binding for it is created
//! is never released under it. Each runs an operator over the whole cluster: no other
//! mailops operator may watch it meanwhile (`--test-threads=1`).

mod e2e_support;
mod exchange_fake;

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_support::lag::WatchLag;
use e2e_support::operator::{Backend, Operator, test_config};
use e2e_support::process::OperatorProcess;
use e2e_support::world::{Env, Via, exchange_config};
use e2e_support::*;
use exchange_fake::{Behaviour, FakeExchange};
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Namespace, Secret};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::wait::conditions;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use mailops::api::conditions::{TERMINATING, find};
use mailops::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use mailops::config::OperatorConfig;
use mailops::exchange::MailBackend;
use mailops::exchange::fake::FakeBackend;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a cluster"]
async fn operator_lifecycle_on_a_real_cluster() {
    let client = Client::try_default()
        .await
        .expect("a cluster in KUBECONFIG");
    install_crds(&client).await;

    let suffix = random_suffix();
    let (ns_a, ns_b) = (
        format!("mailops-e2e-a-{suffix}"),
        format!("mailops-e2e-b-{suffix}"),
    );
    let (provider, account) = (format!("e2e-{suffix}"), format!("e2e-svc-{suffix}"));
    let domain = format!("e2e-{suffix}.example.com");
    let admit_label = format!("mailops-e2e-{suffix}");
    let _cleanup = Cleanup {
        client: client.clone(),
        namespaces: vec![ns_a.clone(), ns_b.clone()],
        providers: vec![provider.clone()],
        accounts: vec![account.clone()],
    };

    let backend = Arc::new(FakeBackend::new());
    let config = OperatorConfig {
        leader_election: false,
        identity: format!("e2e-{suffix}"),
        ..OperatorConfig::default()
    };
    let operator = tokio::spawn(mailops::controller::run_controllers(
        config,
        client.clone(),
        backend.clone() as Arc<dyn MailBackend>,
        Arc::new(mailops::metrics::Metrics::new()),
        Arc::new(mailops::health::HealthState::default()),
        mailops::controller::shutdown_signal(),
    ));

    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [&ns_a, &ns_b] {
        apply(
            &namespaces,
            ns,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await;
    }
    let secrets_a: Api<Secret> = Api::namespaced(client.clone(), &ns_a);
    apply(
        &secrets_a,
        "jane",
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "jane"}, "stringData": {"password": "e2e-password"}}),
    )
    .await;
    apply(&secrets_a, "svc", json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "svc"}, "stringData": {"username": "svc", "password": "e2e-password"}})).await;

    let providers: Api<EmailProvider> = Api::all(client.clone());
    apply(&providers, &provider, json!({
        "apiVersion": "mailops.dev/v1alpha1", "kind": "EmailProvider", "metadata": {"name": provider},
        "spec": {"serviceType": "Exchange", "serviceAddress": "mail.example.com", "domains": [domain],
                 "authentication": {"method": "Basic"}},
    })).await;
    let accounts: Api<ExchangeServiceAccount> = Api::all(client.clone());
    apply(&accounts, &account, json!({
        "apiVersion": "mailops.dev/v1alpha1", "kind": "ExchangeServiceAccount", "metadata": {"name": account},
        "spec": {"providerRef": {"name": provider},
                 "credentials": {"basic": {"secretRef": {"namespace": ns_a, "name": "svc"}}},
                 "allowedNamespaces": {"names": [ns_a], "selector": {"matchLabels": {admit_label.clone(): "yes"}}}},
    })).await;
    let binding = |name: &str, auth: Value| {
        json!({
            "apiVersion": "mailops.dev/v1alpha1", "kind": "MailboxBinding", "metadata": {"name": name},
            "spec": {"emailAddress": format!("{name}@{domain}"), "authentication": auth},
        })
    };
    let bindings_a: Api<MailboxBinding> = Api::namespaced(client.clone(), &ns_a);
    let bindings_b: Api<MailboxBinding> = Api::namespaced(client.clone(), &ns_b);
    apply(
        &bindings_a,
        "jane",
        binding("jane", json!({"credentialsSecretRef": {"name": "jane"}})),
    )
    .await;
    apply(
        &bindings_a,
        "john",
        binding("john", json!({"serviceAccountRef": {"name": account}})),
    )
    .await;

    // Provider, account and bindings become Ready.
    wait_for(&providers, &provider, "Ready", ready_provider).await;
    wait_for(&accounts, &account, "Ready", ready_account).await;
    let jane = wait_for(&bindings_a, "jane", "Ready", ready_binding)
        .await
        .unwrap();
    assert_eq!(
        jane.status.unwrap().provider.as_deref(),
        Some(provider.as_str()),
        "resolved by domain"
    );
    wait_for(&bindings_a, "john", "Ready", ready_binding).await;

    // A namespace the account does not admit: refused, and never sent to Exchange.
    let calls_before = backend.verified_addresses();
    apply(
        &bindings_b,
        "mary",
        binding("mary", json!({"serviceAccountRef": {"name": account}})),
    )
    .await;
    let mary = wait_for(
        &bindings_b,
        "mary",
        "NamespaceNotAllowed",
        binding_reason("NamespaceNotAllowed"),
    )
    .await
    .unwrap();
    assert!(
        !backend.verified_addresses()[calls_before.len()..]
            .iter()
            .any(|a| a.starts_with("mary@"))
    );

    // Labelling the namespace admits it, without touching the binding.
    apply(
        &namespaces,
        &ns_b,
        json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns_b, "labels": {admit_label.clone(): "yes"}}}),
    )
    .await;
    let admitted = wait_for(&bindings_b, "mary", "Ready", ready_binding)
        .await
        .unwrap();
    assert_eq!(
        admitted.metadata.generation, mary.metadata.generation,
        "spec untouched"
    );

    // Deleting the provider waits for its users.
    providers
        .delete(&provider, &DeleteParams::default())
        .await
        .unwrap();
    let blocked = wait_for(&providers, &provider, "blocked (InUse)", provider_in_use)
        .await
        .unwrap();
    let uid = blocked.uid().unwrap();
    let message = find(&blocked.status.unwrap().conditions, TERMINATING)
        .unwrap()
        .message
        .clone();
    assert!(
        message.contains(&format!("MailboxBinding {ns_a}/jane")),
        "{message}"
    );

    // Removing the users releases it.
    for (api, name) in [
        (&bindings_a, "jane"),
        (&bindings_a, "john"),
        (&bindings_b, "mary"),
    ] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    accounts
        .delete(&account, &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        &providers,
        &provider,
        "deleted",
        conditions::is_deleted(&uid),
    )
    .await;

    operator.abort();
}

// ------------------------------------------------------------------ shared by the tests below

/// Label of the objects one run of a test applies, valued with its suffix.
const RUN_LABEL: &str = "mailops-e2e-run";

/// An Exchange Server provider with Basic authentication whose EWS is the fake's, trusted
/// by its CA: the real Exchange client logs in there.
async fn basic_provider_at(client: &Client, name: &str, domain: &str, fake: &FakeExchange) {
    let providers: Api<EmailProvider> = Api::all(client.clone());
    let body = json!({
        "apiVersion": "mailops.dev/v1alpha1", "kind": "EmailProvider", "metadata": {"name": name},
        "spec": {"serviceType": "Exchange", "serviceAddress": "127.0.0.1", "domains": [domain],
                 "endpoints": {"ews": format!("{}/EWS/Exchange.asmx", fake.base())},
                 "tls": {"caBundle": fake.ca_pem()},
                 "authentication": {"method": "Basic"}},
    });
    apply(&providers, name, body).await;
}

/// A binding `name` in `ns` for `email`, logging in with the password of Secret `secret`,
/// labelled for the run `run`.
async fn password_binding(
    client: &Client,
    ns: &str,
    name: &str,
    email: &str,
    secret: &str,
    run: &str,
) {
    let bindings: Api<MailboxBinding> = Api::namespaced(client.clone(), ns);
    let body = json!({
        "apiVersion": "mailops.dev/v1alpha1", "kind": "MailboxBinding",
        "metadata": {"name": name, "labels": {RUN_LABEL: run}},
        "spec": {"emailAddress": email, "authentication": {"credentialsSecretRef": {"name": secret}}},
    });
    apply(&bindings, name, body).await;
}

/// Some condition of `b` is `False` for `reason`.
fn failed_for(b: &MailboxBinding, reason: &str) -> bool {
    b.conditions()
        .iter()
        .any(|c| c.status == "False" && c.reason == reason)
}

/// The message of the condition of `b` that is `False` for `reason`.
fn failure_message(b: &MailboxBinding, reason: &str) -> String {
    b.conditions()
        .iter()
        .find(|c| c.status == "False" && c.reason == reason)
        .map(|c| c.message.to_string())
        .unwrap_or_default()
}

// ------------------------------------------------------------------ lockout budget (issue 19.1)

/// Failed logins per identity and window (`--login-failures-per-window`, its default).
const BUDGET: usize = 3;
/// The window (`--login-failure-window-seconds`), the shortest the flag takes.
const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Tenants each with a binding naming the CEO and a junk password of its own: twice the
/// budget, so the budget is spent in two windows, each ending in a pause.
const TENANTS: usize = 2 * BUDGET;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster"]
async fn tenants_guessing_one_accounts_password_make_the_budget_of_logins_a_window_and_one_event_a_pause()
 {
    let kube = kube::Config::infer()
        .await
        .expect("a cluster in KUBECONFIG");
    let client = Client::try_from(kube.clone()).expect("a client");
    install_crds(&client).await;
    let suffix = random_suffix();
    let tenants: Vec<String> = (0..TENANTS)
        .map(|i| format!("mailops-e2e-tenant{i}-{suffix}"))
        .collect();
    let finance = format!("mailops-e2e-finance-{suffix}");
    let provider = format!("e2e-lockout-{suffix}");
    let domain = format!("lockout-{suffix}.example.com");
    let [ceo, cfo, cto] = ["ceo", "cfo", "cto"].map(|who| format!("{who}@{domain}"));
    let _cleanup = Cleanup {
        client: client.clone(),
        namespaces: tenants.iter().chain([&finance]).cloned().collect(),
        providers: vec![provider.clone()],
        accounts: vec![],
    };
    let fake = FakeExchange::start(
        Behaviour::default()
            .user(&ceo, "the-right-one")
            .user(&cfo, "right")
            .user(&cto, "right")
            .mailboxes(&[&ceo, &cfo, &cto]),
    )
    .await;
    for ns in tenants.iter().chain([&finance]) {
        create_namespace(&client, ns).await;
    }
    basic_provider_at(&client, &provider, &domain, &fake).await;
    for (i, ns) in tenants.iter().enumerate() {
        create_secret(&client, ns, "ceo", json!({"password": format!("junk-{i}")})).await;
        password_binding(&client, ns, "ceo", &ceo, "ceo", &suffix).await;
    }
    let config = OperatorConfig {
        login_failures: BUDGET,
        login_window: LOGIN_WINDOW,
        ..exchange_config(&format!("e2e-lockout-{suffix}"))
    };
    let mut op = Operator::start(config, kube.clone(), Backend::Exchange);
    let started = Instant::now();

    // First window: the budget of logins, the other tenants paused, one Event.
    let ceo_bindings: Api<MailboxBinding> = Api::all(client.clone());
    let first = wait_for_all_selected(
        &ceo_bindings,
        ceo_bindings_selected(&suffix),
        "every CEO binding refused or paused",
        WAIT,
        |all| {
            all.len() == TENANTS
                && all
                    .iter()
                    .all(|b| failed_for(b, "InvalidCredentials") || failed_for(b, "LoginPaused"))
        },
    )
    .await;
    let refused = first
        .iter()
        .filter(|b| failed_for(b, "InvalidCredentials"))
        .count();
    assert_eq!(
        (refused, TENANTS - refused),
        (BUDGET, TENANTS - BUDGET),
        "refused and paused"
    );
    assert_eq!(fake.basic_logins(&ceo).len(), BUDGET, "logins for the CEO");
    let paused = first.iter().find(|b| failed_for(b, "LoginPaused")).unwrap();
    let message = failure_message(paused, "LoginPaused");
    assert!(
        message.contains("paused until") && message.contains("lockout"),
        "{message}"
    );
    assert!(!message.contains("junk"), "{message}");
    wait_for_events(&client, &tenants, "LoginPaused", 1).await;

    // Another account of the same domain is not held back by the CEO's pause.
    create_secret(&client, &finance, "cfo", json!({"password": "right"})).await;
    password_binding(&client, &finance, "cfo", &cfo, "cfo", &suffix).await;
    let finance_bindings: Api<MailboxBinding> = Api::namespaced(client.clone(), &finance);
    wait_for(&finance_bindings, "cfo", "Ready", ready_binding).await;
    let first_pause_ends = fake.basic_logins(&ceo)[0] + LOGIN_WINDOW;
    assert!(
        Instant::now() < first_pause_ends,
        "the CFO was verified only after the CEO's pause"
    );
    assert_eq!(fake.basic_logins(&cfo).len(), 1);

    // A refused password is not sent again; each edit of the Secret is one new attempt.
    let cto_logins = || fake.basic_logins(&cto).len();
    create_secret(&client, &finance, "cto", json!({"password": "junk"})).await;
    password_binding(&client, &finance, "cto", &cto, "cto", &suffix).await;
    let refused_now =
        |b: Option<&MailboxBinding>| b.is_some_and(|b| failed_for(b, "InvalidCredentials"));
    wait_for(&finance_bindings, "cto", "refused", refused_now).await;
    assert_eq!(cto_logins(), 1);
    create_secret(
        &client,
        &finance,
        "cto",
        json!({"password": "second-guess"}),
    )
    .await;
    eventually("a login with the edited password", WAIT, || {
        cto_logins() >= 2
    })
    .await;
    wait_for(&finance_bindings, "cto", "refused", refused_now).await;
    create_secret(&client, &finance, "cto", json!({"password": "right"})).await;
    wait_for(&finance_bindings, "cto", "Ready", ready_binding).await;
    assert_eq!(cto_logins(), 3, "one login per version of the password");

    // Once the window has passed, the paused tenants get their turn: the budget again,
    // a second pause, a second Event; no refused password is tried again.
    let all_refused = wait_for_all_selected(
        &ceo_bindings,
        ceo_bindings_selected(&suffix),
        "every CEO binding refused",
        LOGIN_WINDOW + WAIT,
        |all| all.len() == TENANTS && all.iter().all(|b| failed_for(b, "InvalidCredentials")),
    )
    .await;
    assert_eq!(all_refused.len(), TENANTS);
    wait_for_events(&client, &tenants, "LoginPaused", 2).await;
    let logins = fake.basic_logins(&ceo);
    assert_eq!(logins.len(), TENANTS, "one login per junk password");
    for (earlier, later) in logins.iter().zip(&logins[BUDGET..]) {
        assert!(
            *later - *earlier >= LOGIN_WINDOW,
            "{} failed logins within {:?}",
            BUDGET + 1,
            *later - *earlier
        );
    }
    assert_eq!(cto_logins(), 3, "the refused passwords were sent again");
    let events = events_of(&client, &tenants, "LoginPaused").await;
    assert_eq!(events, 2, "one LoginPaused Event per pause");
    op.assert_running();
    let offsets: Vec<String> = logins
        .iter()
        .map(|t| format!("{:.1}s", t.duration_since(started).as_secs_f64()))
        .collect();
    println!(
        "lockout: {TENANTS} tenants, budget {BUDGET} per {LOGIN_WINDOW:?}: CEO logins at {offsets:?} after the start; {events} LoginPaused Events; CFO Ready during the pause; CTO 3 logins for 3 passwords"
    );
}

/// The CEO bindings of the run `suffix` (named `ceo`, labelled for it).
fn ceo_bindings_selected(suffix: &str) -> watcher::Config {
    watcher::Config::default()
        .labels(&format!("{RUN_LABEL}={suffix}"))
        .fields("metadata.name=ceo")
}

/// The Events of `reason` about objects in `namespaces`.
async fn events_of(client: &Client, namespaces: &[String], reason: &str) -> usize {
    let mut count = 0;
    for ns in namespaces {
        let events: Api<CoreEvent> = Api::namespaced(client.clone(), ns);
        let params = ListParams::default().fields(&format!("reason={reason}"));
        count += events.list(&params).await.unwrap().items.len();
    }
    count
}

/// Wait until at least `n` Events of `reason` are about objects in `namespaces`.
async fn wait_for_events(client: &Client, namespaces: &[String], reason: &str, n: usize) {
    let events: Api<CoreEvent> = Api::all(client.clone());
    let selected = watcher::Config::default().fields(&format!("reason={reason}"));
    let what = format!("{n} {reason} Event(s)");
    wait_for_all_selected(&events, selected, &what, WAIT, |all| {
        let ours = all
            .iter()
            .filter(|e| e.namespace().is_some_and(|ns| namespaces.contains(&ns)));
        ours.count() >= n
    })
    .await;
}

// ------------------------------------------------------------------ Secrets by reference (issue 19.2)

/// Unrelated Secrets created while the operator runs.
const BULK_SECRETS: usize = 1000;
/// The size of each one's data.
const BULK_SECRET_BYTES: usize = 512 * 1024;
/// The namespaces they are spread over.
const BULK_NAMESPACES: usize = 4;
/// Created at once: the API server holds 512 MiB of them.
const CREATE_AT_ONCE: usize = 8;
/// How much the operator's resident memory may grow for them.
const RSS_GROWTH_LIMIT_KIB: u64 = 5 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster"]
async fn a_thousand_unrelated_512k_secrets_leave_the_operators_memory_within_5_mib() {
    let client = Client::try_default()
        .await
        .expect("a cluster in KUBECONFIG");
    install_crds(&client).await;
    let suffix = random_suffix();
    let home = format!("mailops-e2e-rss-{suffix}");
    let bulk: Vec<String> = (0..BULK_NAMESPACES)
        .map(|i| format!("mailops-e2e-bulk{i}-{suffix}"))
        .collect();
    let provider = format!("e2e-rss-{suffix}");
    let domain = format!("rss-{suffix}.example.com");
    let [probe, marker] = ["probe", "marker"].map(|who| format!("{who}@{domain}"));
    let _cleanup = Cleanup {
        client: client.clone(),
        namespaces: bulk.iter().chain([&home]).cloned().collect(),
        providers: vec![provider.clone()],
        accounts: vec![],
    };
    report_other_mailops_objects(&client).await;
    let fake = FakeExchange::start(
        Behaviour::default()
            .user(&probe, "pw")
            .user(&marker, "pw")
            .mailboxes(&[&probe, &marker]),
    )
    .await;
    for ns in bulk.iter().chain([&home]) {
        create_namespace(&client, ns).await;
    }
    // One binding verified before the first measure, so the client for Exchange is warm;
    // one waiting for a Secret that comes after the bulk (see below).
    basic_provider_at(&client, &provider, &domain, &fake).await;
    create_secret(&client, &home, "probe", json!({"password": "pw"})).await;
    password_binding(&client, &home, "probe", &probe, "probe", &suffix).await;
    password_binding(&client, &home, "marker", &marker, "marker", &suffix).await;

    let mut op = OperatorProcess::start(&format!("rss-{suffix}"), &[]);
    let bindings: Api<MailboxBinding> = Api::namespaced(client.clone(), &home);
    wait_for(&bindings, "probe", "Ready", ready_binding).await;
    let missing = |b: Option<&MailboxBinding>| b.is_some_and(|b| failed_for(b, "SecretNotFound"));
    wait_for(&bindings, "marker", "waiting for its Secret", missing).await;
    let before = op.settled_rss_kib().await;

    let took = create_bulk_secrets(&client, &bulk).await;
    // The Secret watch is one stream over the cluster, delivered in order: once the
    // operator has seen the marker's Secret, made after the bulk, it has seen the bulk.
    create_secret(&client, &home, "marker", json!({"password": "pw"})).await;
    wait_for(&bindings, "marker", "Ready", ready_binding).await;
    let after = op.settled_rss_kib().await;

    let growth = after.saturating_sub(before);
    println!(
        "secrets: operator (pid {}, this build) RSS {before} KiB before, {after} KiB after {BULK_SECRETS} unrelated Secrets of {} KiB (created in {took:.1?}): {growth:+} KiB",
        op.pid(),
        BULK_SECRET_BYTES / 1024,
        growth = after as i64 - before as i64,
    );
    assert!(
        growth < RSS_GROWTH_LIMIT_KIB,
        "the operator's RSS grew by {growth} KiB for Secrets it does not reference"
    );
    op.stop();
}

/// Say what mailops objects of others the cluster holds: the operator reconciles them too.
async fn report_other_mailops_objects(client: &Client) {
    let providers: Api<EmailProvider> = Api::all(client.clone());
    let accounts: Api<ExchangeServiceAccount> = Api::all(client.clone());
    let bindings: Api<MailboxBinding> = Api::all(client.clone());
    let all = ListParams::default();
    let counts = (
        providers.list_metadata(&all).await.unwrap().items.len(),
        accounts.list_metadata(&all).await.unwrap().items.len(),
        bindings.list_metadata(&all).await.unwrap().items.len(),
    );
    if counts != (0, 0, 0) {
        eprintln!(
            "other mailops objects in the cluster (providers, accounts, bindings): {counts:?}"
        );
    }
}

/// Create [`BULK_SECRETS`] Secrets of [`BULK_SECRET_BYTES`] spread over `namespaces`,
/// [`CREATE_AT_ONCE`] at a time; returns how long it took.
async fn create_bulk_secrets(client: &Client, namespaces: &[String]) -> Duration {
    let start = Instant::now();
    let blob = ByteString(vec![b'x'; BULK_SECRET_BYTES]);
    futures::stream::iter(0..BULK_SECRETS)
        .for_each_concurrent(CREATE_AT_ONCE, |i| {
            let secrets: Api<Secret> =
                Api::namespaced(client.clone(), &namespaces[i % namespaces.len()]);
            let mut secret = Secret::default();
            secret.metadata.name = Some(format!("unrelated-{i:04}"));
            secret.data = Some([("blob".to_string(), blob.clone())].into());
            async move {
                secrets
                    .create(&PostParams::default(), &secret)
                    .await
                    .unwrap_or_else(|e| panic!("creating Secret {i}: {e}"));
            }
        })
        .await;
    start.elapsed()
}

// ------------------------------------------------------------------ release race (issue 20)

/// Rounds of the race.
const RACE_ROUNDS: usize = 20;

/// How a round of the race ended.
#[derive(Debug, PartialEq, Eq)]
enum RaceEnd {
    /// The provider is held for the binding: `Terminating=True` `InUse` naming it, and
    /// the binding `Ready` on it.
    Held,
    /// The provider is gone and the binding says `ProviderNotFound`.
    Released,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster"]
async fn a_provider_deleted_while_a_binding_for_it_is_created_is_never_released_under_it() {
    let rounds: Vec<String> = (0..RACE_ROUNDS).map(|i| format!("race{i:02}")).collect();
    let round_names: Vec<&str> = rounds.iter().map(String::as_str).collect();
    let (env, _cleanup) = Env::new("race", &round_names, &[]).await;
    create_secret(&env.client, &env.ns, "pw", json!({"password": "pw"})).await;
    let fake = Arc::new(FakeBackend::new());
    let mut op = Operator::start(
        test_config(&env.name("op")),
        env.kube.clone(),
        Backend::Fake(fake),
    );
    let mut ends = Vec::new();
    for round in &rounds {
        ends.push(race_round(&env, round).await);
        op.assert_running();
    }
    let held = ends.iter().filter(|(e, _)| *e == RaceEnd::Held).count();
    let binding_first = ends.iter().filter(|(_, first)| *first).count();
    println!(
        "release race: {RACE_ROUNDS} rounds: {held} held for the new binding (InUse), {} released (binding ProviderNotFound; the binding already there at the release in {binding_first}); none released under an attached binding, no finalizer left",
        RACE_ROUNDS - held
    );
}

/// One round: a Ready provider, then at the same moment its deletion and a binding for
/// its domain; see [`settle`] for what may come of it. Returns how it ended, and whether
/// the binding was there already when the provider went (the release had to reckon with
/// it) rather than created after.
async fn race_round(env: &Env, round: &str) -> (RaceEnd, bool) {
    let r = Round::start(env, round).await;
    let (providers, delete) = (env.providers(), DeleteParams::default());
    let (deleted, ()) = tokio::join!(
        providers.delete(&r.provider, &delete),
        env.binding(round, &r.email, Via::Password),
    );
    deleted.unwrap_or_else(|e| panic!("deleting {}: {e}", r.provider));
    r.finish(env).await
}

/// One round's provider, its binding's name and address, and the histories of both.
struct Round {
    name: String,
    provider: String,
    uid: String,
    email: String,
    provider_history: History<EmailProvider>,
    binding_history: History<MailboxBinding>,
}

impl Round {
    /// A Ready provider for a domain of the round's own, both objects watched from now.
    async fn start(env: &Env, round: &str) -> Round {
        let (provider, domain) = (env.name(round), env.domain(round));
        env.basic_provider(&provider, &domain).await;
        let ready = wait_for(&env.providers(), &provider, "Ready", ready_provider).await;
        Round {
            name: round.to_string(),
            uid: ready.unwrap().uid().unwrap(),
            email: format!("{round}@{domain}"),
            provider_history: History::watch(env.providers(), &provider).await,
            binding_history: History::watch(env.bindings(), round).await,
            provider,
        }
    }

    /// After the provider's deletion: wait until the round settles, check that the
    /// provider did not go under an attached binding, then delete the binding, and the
    /// provider goes with it whichever way it ended: no finalizer is left behind.
    async fn finish(&self, env: &Env) -> (RaceEnd, bool) {
        let (round, provider) = (&self.name, &self.provider);
        let (providers, bindings) = (&self.provider_history, &self.binding_history);
        let end = settle(providers, bindings, provider, &env.ns, round).await;
        // At the revision the provider went, the binding as the API server held it did
        // not name it (one etcd: resourceVersions are its revisions, ordered across kinds).
        let mut binding_first = false;
        if let Some(gone_at) = providers.deleted_at() {
            let before = bindings.last_before(gone_at);
            binding_first = before.is_some();
            let attached = before.and_then(|b| b.status.and_then(|s| s.provider));
            assert_ne!(
                attached.as_deref(),
                Some(provider.as_str()),
                "{round}: the provider was deleted (revision {gone_at}) while the binding was attached to it: {:#?}",
                self.timeline()
            );
        }
        env.bindings()
            .delete(round, &DeleteParams::default())
            .await
            .unwrap();
        let gone = |b: Option<&MailboxBinding>| b.is_none();
        wait_for(&env.bindings(), round, "deleted", gone).await;
        let uid = &self.uid;
        wait_for(
            &env.providers(),
            provider,
            "deleted",
            conditions::is_deleted(uid),
        )
        .await;
        (end, binding_first)
    }

    /// Both objects' versions by revision, in brief: what a failure shows.
    fn timeline(&self) -> Vec<String> {
        let provider = self.provider_history.versions().into_iter().map(|v| {
            let state = match (v.deleted, v.object.meta().deletion_timestamp.is_some()) {
                (true, _) => "gone",
                (false, true) => "deleting",
                (false, false) => "there",
            };
            (v.revision, format!("provider {state}"))
        });
        let binding = self.binding_history.versions().into_iter().map(|v| {
            let status = v.object.status.as_ref();
            let on = status.and_then(|s| s.provider.clone());
            let reasons: Vec<&str> = v
                .object
                .conditions()
                .iter()
                .map(|c| c.reason.as_str())
                .collect();
            (
                v.revision,
                format!(
                    "binding on {on:?}, Ready {}, {reasons:?}",
                    ready(Some(&v.object))
                ),
            )
        });
        let mut all: Vec<(u64, String)> = provider.chain(binding).collect();
        all.sort();
        all.into_iter()
            .map(|(rv, what)| format!("{rv}: {what}"))
            .collect()
    }
}

/// The binding's watch lags behind the API server by this much in the lagging rounds.
const BINDING_WATCH_LAG: Duration = Duration::from_secs(1);
/// Rounds with a lagging binding watch.
const LAGGING_ROUNDS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a cluster"]
async fn a_provider_deleted_right_after_an_attachment_its_cache_has_not_seen_is_held() {
    let rounds: Vec<String> = (0..LAGGING_ROUNDS).map(|i| format!("lag{i}")).collect();
    let round_names: Vec<&str> = rounds.iter().map(String::as_str).collect();
    let (env, _cleanup) = Env::new("lag", &round_names, &[]).await;
    create_secret(&env.client, &env.ns, "pw", json!({"password": "pw"})).await;
    let mut op = Operator::start_lagging(
        test_config(&env.name("op")),
        env.kube.clone(),
        Backend::Fake(Arc::new(FakeBackend::new())),
        WatchLag::of("mailboxbindings", BINDING_WATCH_LAG),
    );
    for round in &rounds {
        let r = Round::start(&env, round).await;
        env.binding(round, &r.email, Via::Password).await;
        let provider = r.provider.clone();
        let attached = move |b: Option<&MailboxBinding>| {
            ready(b)
                && b.and_then(|b| b.status.as_ref())
                    .and_then(|s| s.provider.as_deref())
                    == Some(provider.as_str())
        };
        wait_for(&env.bindings(), round, "Ready on its provider", attached).await;
        // The operator's binding cache shows the attachment only a second from now.
        env.providers()
            .delete(&r.provider, &DeleteParams::default())
            .await
            .unwrap();
        let (end, _) = r.finish(&env).await;
        assert_eq!(end, RaceEnd::Held, "{round}: {:#?}", r.timeline());
        op.assert_running();
    }
    println!(
        "release race, binding watch {BINDING_WATCH_LAG:?} behind: {LAGGING_ROUNDS} of {LAGGING_ROUNDS} providers deleted right after their binding's attachment held (InUse), then released without a finalizer left"
    );
}

/// Wait until the round has settled one of the two allowed ways, [`RaceEnd::Held`] or
/// [`RaceEnd::Released`]; a binding `Ready` on a provider that is gone is neither, and
/// times out with the last state seen.
async fn settle(
    provider: &History<EmailProvider>,
    binding: &History<MailboxBinding>,
    provider_name: &str,
    ns: &str,
    binding_name: &str,
) -> RaceEnd {
    let named = format!("MailboxBinding {ns}/{binding_name}");
    let end = |p: Option<&EmailProvider>, b: Option<&MailboxBinding>| {
        let b = b?;
        match p {
            None => failed_for(b, "ProviderNotFound").then_some(RaceEnd::Released),
            Some(p) => {
                let held = p.meta().deletion_timestamp.is_some()
                    && find(p.conditions(), TERMINATING).is_some_and(|c| {
                        c.status == "True" && c.reason == "InUse" && c.message.contains(&named)
                    });
                let on_it =
                    b.status.as_ref().and_then(|s| s.provider.as_deref()) == Some(provider_name);
                (held && ready(Some(b)) && on_it).then_some(RaceEnd::Held)
            }
        }
    };
    let (mut p_seen, mut b_seen) = (provider.subscribe(), binding.subscribe());
    let settled = async {
        loop {
            if let Some(end) = end(provider.latest().as_ref(), binding.latest().as_ref()) {
                return end;
            }
            tokio::select! {
                _ = p_seen.changed() => {}
                _ = b_seen.changed() => {}
            }
        }
    };
    match tokio::time::timeout(WAIT, settled).await {
        Ok(end) => end,
        Err(_) => panic!(
            "{binding_name}: not settled after {WAIT:?}; provider {}\nbinding {}",
            to_json(&provider.latest()),
            to_json(&binding.latest())
        ),
    }
}

/// Every version of one object the API server sent on a watch, with its revision; a
/// deletion is the object as it went, at the revision of the deletion.
struct History<K: Clone + Send + Sync + 'static> {
    versions: Arc<watch::Sender<Vec<Version<K>>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Debug)]
struct Version<K> {
    revision: u64,
    object: K,
    deleted: bool,
}

impl<K> History<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
    K: 'static,
{
    /// Watch `name` from now on: returns once the watch has listed it, so every later
    /// version is seen.
    async fn watch(api: Api<K>, name: &str) -> History<K> {
        let versions = Arc::new(watch::channel(Vec::new()).0);
        let (listed, mut listed_seen) = watch::channel(false);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut events = Box::pin(watcher(api, config));
        let sink = versions.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let (object, deleted) = match event {
                    Ok(watcher::Event::InitDone) => {
                        let _ = listed.send(true);
                        continue;
                    }
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => (o, false),
                    Ok(watcher::Event::Delete(o)) => (o, true),
                    Ok(watcher::Event::Init) | Err(_) => continue,
                };
                let revision = object
                    .resource_version()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_default();
                sink.send_modify(|v| {
                    v.push(Version {
                        revision,
                        object,
                        deleted,
                    })
                });
            }
        });
        let ready = tokio::time::timeout(WAIT, listed_seen.wait_for(|l| *l)).await;
        assert!(
            matches!(ready, Ok(Ok(_))),
            "the watch of {name} did not start"
        );
        History { versions, task }
    }

    fn subscribe(&self) -> watch::Receiver<Vec<Version<K>>> {
        self.versions.subscribe()
    }

    fn versions(&self) -> Vec<Version<K>> {
        self.versions.borrow().clone()
    }

    /// The object as last seen; `None` when it is gone or was never there.
    fn latest(&self) -> Option<K> {
        let versions = self.versions.borrow();
        versions
            .last()
            .filter(|v| !v.deleted)
            .map(|v| v.object.clone())
    }

    /// The revision at which it was deleted.
    fn deleted_at(&self) -> Option<u64> {
        let versions = self.versions.borrow();
        versions.iter().find(|v| v.deleted).map(|v| v.revision)
    }

    /// The object as it was just before `revision`, if it existed then.
    fn last_before(&self, revision: u64) -> Option<K> {
        let versions = self.versions.borrow();
        versions
            .iter()
            .rev()
            .find(|v| v.revision < revision)
            .filter(|v| !v.deleted)
            .map(|v| v.object.clone())
    }
}

impl<K: Clone + Send + Sync + 'static> Drop for History<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}
