//! The real Exchange client against endpoints that are down, hang, or answer the way a
//! broken or hostile one would (malformed or endless bodies, a token outside the bearer
//! syntax), and plain http refused: each a clear failure, never a panic.

mod exchange_fake;

use std::sync::Arc;
use std::time::Duration;

use exchange_fake::harness::*;
use exchange_fake::{Behaviour, FakeExchange, Mode};
use mailops::api::conditions::Reason;
use mailops::exchange::client::ExchangeClient;
use mailops::exchange::{
    Credential, MailBackend, MailboxProbe, OAuthApp, ProviderProbe, Service, Trust,
};
use mailops::metrics::Metrics;
use secrecy::SecretString;

const OVER_THE_LIMIT: &str = "answered with a body larger than the 1 MiB limit";

#[tokio::test]
async fn a_hanging_graph_times_out_as_unreachable() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.graph_mode = Mode::Hang;
    let h = harness_with(
        behaviour,
        "Microsoft365",
        config(Duration::from_millis(1500), 8),
    )
    .await;
    let outcome = h.verify(&h.probe(ALICE, h.app(APP, SECRET), true)).await;
    let f = failure(&outcome);
    assert_eq!(f.reason, Reason::Unreachable);
    assert!(
        f.message.contains("timed out after 1500ms"),
        "{}",
        f.message
    );
    assert!(
        f.message
            .starts_with("Microsoft Graph at https://127.0.0.1:"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn a_hanging_token_endpoint_times_out_as_unreachable() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.token_mode = Mode::Hang;
    let h = harness_with(
        behaviour,
        "Microsoft365",
        config(Duration::from_millis(1500), 8),
    )
    .await;
    let f = h
        .client
        .authenticate("p", &h.service(), &h.app(APP, SECRET))
        .await
        .unwrap_err();
    assert_eq!(f.reason, Reason::Unreachable);
    assert!(f.message.contains("the token endpoint"), "{}", f.message);
    assert!(
        f.message.contains("timed out after 1500ms"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn malformed_ews_xml_is_a_clear_failure() {
    let mut behaviour = Behaviour::default().user("svc", "pw").mailboxes(&[ALICE]);
    behaviour.ews_mode = Mode::Malformed;
    let h = harness(behaviour, "Exchange").await;
    let outcome = h.verify(&h.probe(ALICE, basic("svc", "pw"), true)).await;
    let f = failure(&outcome);
    assert_eq!(f.reason, Reason::UnexpectedResponse);
    assert!(
        f.message.starts_with(&format!(
            "EWS at {}/EWS/Exchange.asmx answered HTTP 200 with malformed XML:",
            h.fake.base()
        )),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn malformed_graph_json_is_a_clear_failure() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.graph_mode = Mode::Malformed;
    let h = harness(behaviour, "Microsoft365").await;
    let outcome = h.verify(&h.probe(ALICE, h.app(APP, SECRET), true)).await;
    let f = failure(&outcome);
    assert_eq!(f.reason, Reason::UnexpectedResponse);
    assert_eq!(
        f.message,
        "Microsoft Graph answered HTTP 200 for the inbox of alice@contoso.com with malformed JSON (no folder id)"
    );
}

#[tokio::test]
async fn a_malformed_token_response_is_a_clear_failure() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.token_mode = Mode::Malformed;
    let h = harness(behaviour, "Microsoft365").await;
    let f = h
        .client
        .authenticate("p", &h.service(), &h.app(APP, SECRET))
        .await
        .unwrap_err();
    assert_eq!(f.reason, Reason::UnexpectedResponse);
    assert!(
        f.message
            .contains("answered with something that is not a token response"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn an_oversized_graph_answer_is_an_unexpected_response() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.graph_mode = Mode::Oversized;
    let h = harness(behaviour, "Microsoft365").await;
    let outcome = h.verify(&h.probe(ALICE, h.app(APP, SECRET), true)).await;
    let f = failure(&outcome);
    assert_eq!(f.reason, Reason::UnexpectedResponse);
    assert!(f.message.contains(OVER_THE_LIMIT), "{}", f.message);
    assert!(
        f.message
            .starts_with("Microsoft Graph at https://127.0.0.1:"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn an_oversized_ews_answer_is_an_unexpected_response() {
    let mut behaviour = Behaviour::default().user("svc", "pw").mailboxes(&[ALICE]);
    behaviour.ews_mode = Mode::Oversized;
    let h = harness(behaviour, "Exchange").await;
    let outcome = h.verify(&h.probe(ALICE, basic("svc", "pw"), true)).await;
    let f = failure(&outcome);
    assert_eq!(f.reason, Reason::UnexpectedResponse);
    assert!(f.message.contains(OVER_THE_LIMIT), "{}", f.message);
    assert!(
        f.message.starts_with("EWS at https://127.0.0.1:"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn an_oversized_token_answer_is_an_unexpected_response() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.token_mode = Mode::Oversized;
    let h = harness(behaviour, "Microsoft365").await;
    let f = h
        .client
        .authenticate("p", &h.service(), &h.app(APP, SECRET))
        .await
        .unwrap_err();
    assert_eq!(f.reason, Reason::UnexpectedResponse);
    assert!(f.message.contains(OVER_THE_LIMIT), "{}", f.message);
    assert!(
        f.message
            .starts_with("the token endpoint at https://127.0.0.1:"),
        "{}",
        f.message
    );
}

// ---------------------------------------------------------------- absurd numbers

#[tokio::test]
async fn an_access_token_outside_the_bearer_syntax_is_an_unexpected_response() {
    for suffix in ["\r\nX-Injected: 1", "\u{0}", "\u{e9}"] {
        let mut behaviour = graph_behaviour(&["Mail.Read"]);
        behaviour.token_suffix = suffix.into();
        let h = harness(behaviour, "Microsoft365").await;
        let outcome = h.verify(&h.probe(ALICE, h.app(APP, SECRET), true)).await;
        let f = failure(&outcome);
        assert_eq!(f.reason, Reason::UnexpectedResponse, "{suffix:?}: {f:?}");
        assert_eq!(
            f.message,
            format!(
                "the token endpoint at {}/contoso/oauth2/v2.0/token issued an access token that is not a valid bearer token",
                h.fake.base()
            )
        );
        assert!(h.fake.requests_to("/v1.0/").is_empty(), "{suffix:?}");
    }
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
