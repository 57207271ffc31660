//! The real Exchange client against a fake Entra ID + EWS + Graph: token sharing and
//! renewal, refresh-token rotation, permission checks, concurrency limits, provider checks
//! and endpoint policy.

mod exchange_fake;

use std::sync::Arc;
use std::time::Duration;

use exchange_fake::harness::*;
use exchange_fake::{Behaviour, FakeExchange, Grant};
use mailops::api::conditions::Reason;
use mailops::exchange::client::ExchangeClient;
use mailops::exchange::{
    Credential, MailBackend, MailboxProbe, OAuthApp, ProviderProbe, Service, Trust,
};
use mailops::metrics::Metrics;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

// ---------------------------------------------------------------- tokens

#[tokio::test]
async fn a_rotated_refresh_token_is_returned() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.refresh_tokens.insert(
        "rt-1".into(),
        Grant {
            returns: "rt-2".into(),
            scp: "Mail.Read".into(),
        },
    );
    behaviour.refresh_tokens.insert(
        "rt-same".into(),
        Grant {
            returns: "rt-same".into(),
            scp: "Mail.Read".into(),
        },
    );
    let h = harness(behaviour, "Microsoft365").await;
    let outcome = h.verify(&h.probe(ALICE, h.refresh("rt-1"), false)).await;
    assert_eq!(outcome.mailbox, Ok(()));
    let rotated = outcome.rotated_refresh_token.expect("rotated");
    assert_eq!(rotated.expose_secret(), "rt-2");
    let request = &h.fake.requests_to("/contoso/oauth2/v2.0/token")[0];
    assert!(request.body.contains("grant_type=refresh_token"));
    let unchanged = h.verify(&h.probe(ALICE, h.refresh("rt-same"), false)).await;
    assert_eq!(unchanged.mailbox, Ok(()));
    assert!(unchanged.rotated_refresh_token.is_none());
}

#[tokio::test]
async fn a_rotated_refresh_token_is_stored_before_the_mailbox_is_opened() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.refresh_tokens.insert(
        "rt-1".into(),
        Grant {
            returns: "rt-2".into(),
            scp: "Mail.Read".into(),
        },
    );
    let h = Arc::new(harness(behaviour, "Microsoft365").await);
    // What Graph had seen when the sink was handed the token.
    let seen = Arc::new(std::sync::Mutex::new(None));
    let sink = {
        let (h, seen) = (h.clone(), seen.clone());
        mailops::exchange::RotationSink(Arc::new(move |token: SecretString| {
            let (h, seen) = (h.clone(), seen.clone());
            Box::pin(async move {
                let graph = h.fake.requests_to("/v1.0").len();
                *seen.lock().unwrap() = Some((token.expose_secret().to_string(), graph));
            })
        }))
    };
    let mut probe = h.probe(ALICE, h.refresh("rt-1"), false);
    probe.store_rotated = Some(sink);
    let outcome = h.verify(&probe).await;
    assert_eq!(outcome.mailbox, Ok(()));
    // A crash once the access token is in use can no longer lose the rotated token.
    assert_eq!(*seen.lock().unwrap(), Some(("rt-2".to_string(), 0)));
    assert_eq!(h.fake.requests_to("/v1.0").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_bindings_through_one_service_account_share_one_token_request() {
    let addresses: Vec<String> = (0..100).map(|i| format!("user{i}@contoso.com")).collect();
    let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let behaviour = Behaviour::default()
        .app(APP, SECRET, &["Mail.Read"])
        .mailboxes(&refs);
    let h = Arc::new(harness(behaviour, "Microsoft365").await);
    let tasks: Vec<_> = addresses
        .iter()
        .map(|email| {
            let h = h.clone();
            let probe = h.probe(email, h.app(APP, SECRET), true);
            tokio::spawn(async move { h.verify(&probe).await.mailbox })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok(()));
    }
    assert_eq!(h.fake.token_requests(), 1);
    assert_eq!(h.fake.requests_to("/v1.0/users/").len(), 100);
}

#[tokio::test]
async fn tokens_are_renewed_ahead_of_expiry_and_when_the_secret_changes() {
    let h = harness(graph_behaviour(&["Mail.Read"]), "Microsoft365").await;
    let service = h.service();
    h.client
        .authenticate("p", &service, &h.app(APP, SECRET))
        .await
        .unwrap();
    h.client
        .authenticate("p", &service, &h.app(APP, SECRET))
        .await
        .unwrap();
    assert_eq!(h.fake.token_requests(), 1, "a fresh token is reused");
    // A changed secret is tried at once, not hidden behind the cached token.
    let f = h
        .client
        .authenticate("p", &service, &h.app(APP, "rotated-wrong"))
        .await;
    assert_eq!(f.unwrap_err().reason, Reason::InvalidCredentials);
    assert_eq!(h.fake.token_requests(), 2);
    // A token the authority says has already expired is not reused.
    h.fake.update(|b| b.expires_in = 0);
    let other_scope = Credential::ClientCredentials(OAuthApp {
        authority: h.endpoints.authority.clone(),
        tenant_id: "contoso".into(),
        client_id: APP.into(),
        client_secret: SecretString::from(SECRET),
        scopes: vec!["https://outlook.office365.com/.default".into()],
    });
    h.client
        .authenticate("p", &service, &other_scope)
        .await
        .unwrap();
    h.client
        .authenticate("p", &service, &other_scope)
        .await
        .unwrap();
    assert_eq!(h.fake.token_requests(), 4);
}

#[tokio::test]
async fn an_absurd_token_lifetime_neither_panics_nor_stops_reuse() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.expires_in = u64::MAX;
    let h = harness(behaviour, "Microsoft365").await;
    let service = h.service();
    for _ in 0..2 {
        let result = h
            .client
            .authenticate("p", &service, &h.app(APP, SECRET))
            .await;
        assert_eq!(result, Ok(()));
    }
    assert_eq!(h.fake.token_requests(), 1);
}

#[tokio::test]
async fn a_token_shorter_lived_than_the_renewal_margin_is_still_reused() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    // Two minutes: less than the five-minute margin, so it is used for half its life
    // rather than renewed on every call.
    behaviour.expires_in = 120;
    let h = harness(behaviour, "Microsoft365").await;
    let service = h.service();
    for _ in 0..3 {
        let result = h
            .client
            .authenticate("p", &service, &h.app(APP, SECRET))
            .await;
        assert_eq!(result, Ok(()));
    }
    assert_eq!(h.fake.token_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_at_once_serves_the_callers_waiting_for_it_and_no_later_one() {
    let gate = Arc::new(Semaphore::new(0));
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.expires_in = 0;
    behaviour.token_gate = Some(gate.clone());
    let h = Arc::new(harness(behaviour, "Microsoft365").await);
    let service = h.service();
    let credential = h.app(APP, SECRET);
    let first = {
        let (h, service, credential) = (h.clone(), service.clone(), credential.clone());
        tokio::spawn(async move { h.client.authenticate("p", &service, &credential).await })
    };
    let arrived = tokio::time::timeout(Duration::from_secs(10), async {
        while h.fake.token_requests() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(arrived.is_ok(), "the first token request never arrived");
    // A second caller comes while the first request is in flight: it waits for its result.
    let second = h.client.authenticate("p", &service, &credential);
    tokio::pin!(second);
    assert!(futures::poll!(second.as_mut()).is_pending());
    gate.add_permits(1000);
    assert_eq!(first.await.unwrap(), Ok(()));
    assert_eq!(second.await, Ok(()));
    assert_eq!(h.fake.token_requests(), 1, "the waiting caller shares it");
    // One that comes later does not reuse a token the authority said had expired.
    let later = h.client.authenticate("p", &service, &credential).await;
    assert_eq!(later, Ok(()));
    assert_eq!(h.fake.token_requests(), 2);
}

#[tokio::test]
async fn sending_needs_the_mail_send_role() {
    let without = harness(graph_behaviour(&["Mail.Read"]), "Microsoft365").await;
    let mut probe = without.probe(ALICE, without.app(APP, SECRET), true);
    probe.check_send = true;
    probe.check_calendar = true;
    let outcome = without.verify(&probe).await;
    let f = failure(&outcome);
    assert_eq!(f.reason, Reason::MissingPermission);
    assert_eq!(
        f.message,
        "sending is enabled but the access token lacks the Mail.Send permission (it has: Mail.Read); grant Mail.Send to the app and consent"
    );
    // The mailbox itself was reached, so the calendar is still checked.
    assert_eq!(outcome.calendar, Some(Ok(())));

    let with = harness(graph_behaviour(&["Mail.Read", "Mail.Send"]), "Microsoft365").await;
    let mut probe = with.probe(ALICE, with.app(APP, SECRET), true);
    probe.check_send = true;
    assert_eq!(with.verify(&probe).await.mailbox, Ok(()));
}

// ---------------------------------------------------------------- limits

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

#[tokio::test]
async fn provider_check_counts_any_http_answer_as_reachable_and_gets_a_token() {
    let h = harness(graph_behaviour(&["Mail.Read"]), "Microsoft365").await;
    let outcome = h
        .client
        .check_provider(&ProviderProbe {
            provider: "p".into(),
            service: h.service(),
            credential: Some(h.app(APP, SECRET)),
        })
        .await;
    // The fake answers GET /v1.0 with 404: still an answer.
    assert_eq!(outcome.reachable, Ok(()));
    assert_eq!(outcome.authenticated, Some(Ok(())));

    let ews = harness(Behaviour::default(), "Exchange").await;
    let outcome = ews
        .client
        .check_provider(&ProviderProbe {
            provider: "p".into(),
            service: ews.service(),
            credential: None,
        })
        .await;
    assert_eq!(outcome.reachable, Ok(()));
    assert_eq!(outcome.authenticated, None);
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let metrics = Arc::new(Metrics::new());
    let client = ExchangeClient::new(&config(Duration::from_secs(5), 8), metrics).unwrap();
    let outcome = client
        .check_provider(&ProviderProbe {
            provider: "p".into(),
            service: Service::Ews {
                url: format!("https://svc:hunter2@127.0.0.1:{port}/EWS/Exchange.asmx"),
                trust: Trust::default(),
            },
            credential: None,
        })
        .await;
    let f = outcome.reachable.unwrap_err();
    assert_eq!(f.reason, Reason::Unreachable);
    assert!(
        f.message.starts_with(&format!(
            "EWS at https://127.0.0.1:{port}/EWS/Exchange.asmx is unreachable:"
        )),
        "{}",
        f.message
    );
    assert!(!f.message.contains("hunter2"), "{}", f.message);
}

/// The one test of `--allow-insecure-endpoints`: every other test speaks HTTPS.
#[tokio::test]
async fn plain_http_is_refused_without_the_flag_and_nothing_is_sent() {
    let fake = FakeExchange::start_plain(graph_behaviour(&["Mail.Read"])).await;
    let provider = provider_at(&fake.base(), "Microsoft365", serde_json::json!({}));
    let refused = mailops::endpoints::provider_endpoints(&provider.spec, false).unwrap_err();
    assert_eq!(refused.reason(), Some(Reason::InsecureEndpoint));
    let endpoints = mailops::endpoints::provider_endpoints(&provider.spec, true).unwrap();
    let mut config = config(Duration::from_secs(5), 8);
    config.allow_insecure_endpoints = false;
    let client = ExchangeClient::new(&config, Arc::new(Metrics::new())).unwrap();
    let probe = MailboxProbe {
        provider: "p".into(),
        email: ALICE.into(),
        login: ALICE.into(),
        service: Service::Graph {
            base: endpoints.mailbox_endpoint.clone(),
            trust: Trust::default(),
        },
        credential: Credential::ClientCredentials(OAuthApp {
            authority: endpoints.authority.clone(),
            tenant_id: "contoso".into(),
            client_id: APP.into(),
            client_secret: SecretString::from(SECRET),
            scopes: vec![],
        }),
        via_service_account: true,
        check_calendar: false,
        check_send: false,
        store_rotated: None,
    };
    let outcome = client.verify_mailbox(&probe).await;
    assert_eq!(failure(&outcome).reason, Reason::InsecureEndpoint);
    assert!(fake.recorded().is_empty());

    config.allow_insecure_endpoints = true;
    let client = ExchangeClient::new(&config, Arc::new(Metrics::new())).unwrap();
    let outcome = client.verify_mailbox(&probe).await;
    assert_eq!(outcome.mailbox, Ok(()));
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn basic_credentials_cannot_talk_to_graph() {
    let h = harness(graph_behaviour(&["Mail.Read"]), "Microsoft365").await;
    let outcome = h.verify(&h.probe(ALICE, basic(ALICE, "pw"), false)).await;
    assert_eq!(failure(&outcome).reason, Reason::AuthMethodMismatch);
    assert!(h.fake.recorded().is_empty());
}

#[tokio::test]
async fn a_basic_service_account_authenticates_without_a_mailbox_of_its_own() {
    let h = harness(Behaviour::default().user("svc", "pw"), "Exchange").await;
    let service = h.service();
    assert_eq!(
        h.client
            .authenticate("p", &service, &basic("svc", "pw"))
            .await,
        Ok(())
    );
    let f = h
        .client
        .authenticate("p", &service, &basic("svc", "bad"))
        .await
        .unwrap_err();
    assert_eq!(f.reason, Reason::InvalidCredentials);
}
