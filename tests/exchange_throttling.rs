//! The real Exchange client against a fake that throttles: 429s waited out as the server
//! asks (within bounds), and the probes in flight per mailbox and per provider capped.

mod exchange_fake;

use std::sync::Arc;
use std::time::Duration;

use exchange_fake::harness::*;
use exchange_fake::{Behaviour, Mode};
use mailops::api::conditions::Reason;
use mailops::exchange::MailBackend;
use mailops::exchange::errors::{MAX_SERVER_DELAY, MIN_SERVER_DELAY};
use tokio::sync::Semaphore;

#[tokio::test]
async fn graph_429_is_throttled_with_retry_after() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.graph_mode = Mode::Throttle("37".into());
    let h = harness(behaviour, "Microsoft365").await;
    let outcome = h.verify(&h.probe(ALICE, h.app(APP, SECRET), true)).await;
    let f = failure(&outcome);
    assert_eq!(f.reason, Reason::Throttled);
    assert_eq!(f.retry_after, Some(Duration::from_secs(37)));
    assert!(f.message.contains("HTTP 429"), "{}", f.message);
}

#[tokio::test]
async fn token_429_with_an_http_date_is_throttled() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    let later = std::time::SystemTime::now() + Duration::from_secs(600);
    behaviour.token_mode = Mode::Throttle(httpdate::fmt_http_date(later));
    let h = harness(behaviour, "Microsoft365").await;
    let f = h
        .client
        .authenticate("p", &h.service(), &h.app(APP, SECRET))
        .await
        .unwrap_err();
    assert_eq!(f.reason, Reason::Throttled);
    let delay = f.retry_after.expect("a Retry-After date gives a delay");
    assert!(
        delay > Duration::from_secs(500) && delay <= Duration::from_secs(600),
        "{delay:?}"
    );
}

#[tokio::test]
async fn a_graph_429_asking_for_u64_max_seconds_is_fifteen_minutes() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.graph_mode = Mode::Throttle(u64::MAX.to_string());
    let h = harness(behaviour, "Microsoft365").await;
    let outcome = h.verify(&h.probe(ALICE, h.app(APP, SECRET), true)).await;
    let f = failure(&outcome);
    assert_eq!(f.reason, Reason::Throttled);
    assert_eq!(f.retry_after, Some(MAX_SERVER_DELAY));
}

#[tokio::test]
async fn a_token_429_asking_for_no_delay_is_one_second() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.token_mode = Mode::Throttle("0".into());
    let h = harness(behaviour, "Microsoft365").await;
    let f = h
        .client
        .authenticate("p", &h.service(), &h.app(APP, SECRET))
        .await
        .unwrap_err();
    assert_eq!(f.reason, Reason::Throttled);
    assert_eq!(f.retry_after, Some(MIN_SERVER_DELAY));
}

// ---------------------------------------------------------------- refused tokens

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_two_probes_per_mailbox_are_in_flight() {
    let gate = Arc::new(Semaphore::new(0));
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.gate = Some(gate.clone());
    let h = Arc::new(harness(behaviour, "Microsoft365").await);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let h = h.clone();
            let probe = h.probe(ALICE, h.app(APP, SECRET), true);
            tokio::spawn(async move { h.verify(&probe).await.mailbox })
        })
        .collect();
    settle(&h, 2, 4).await;
    gate.add_permits(1000);
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok(()));
    }
    assert_eq!(h.fake.max_in_flight(), 2);
    assert_eq!(h.fake.requests_to("/v1.0/users/").len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_cap_bounds_probes_across_mailboxes() {
    let addresses: Vec<String> = (0..12).map(|i| format!("user{i}@contoso.com")).collect();
    let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let gate = Arc::new(Semaphore::new(0));
    let mut behaviour = Behaviour::default()
        .app(APP, SECRET, &["Mail.Read"])
        .mailboxes(&refs);
    behaviour.gate = Some(gate.clone());
    let h = Arc::new(
        harness_with(
            behaviour,
            "Microsoft365",
            config(Duration::from_secs(10), 3),
        )
        .await,
    );
    let tasks: Vec<_> = addresses
        .iter()
        .map(|email| {
            let h = h.clone();
            let probe = h.probe(email, h.app(APP, SECRET), true);
            tokio::spawn(async move { h.verify(&probe).await.mailbox })
        })
        .collect();
    settle(&h, 3, 9).await;
    gate.add_permits(1000);
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok(()));
    }
    assert_eq!(h.fake.max_in_flight(), 3);
}

// ---------------------------------------------------------------- providers and endpoints
