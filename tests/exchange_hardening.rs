//! The real Exchange client against a fake that answers the way a broken or hostile
//! endpoint would (absurd numbers, endless bodies, revoked tokens), and the framing the
//! real services insist on (a quoted `SOAPAction`).

mod exchange_fake;

use std::sync::Arc;

use exchange_fake::harness::*;
use exchange_fake::{Behaviour, Mode};
use mailops::api::conditions::Reason;
use mailops::exchange::MailBackend;
use mailops::exchange::errors::{MAX_SERVER_DELAY, MIN_SERVER_DELAY};
use tokio::sync::Semaphore;

// ---------------------------------------------------------------- request framing

#[tokio::test]
async fn the_fake_ews_refuses_an_unquoted_soap_action() {
    let h = harness(
        Behaviour::default().user(ALICE, "pw").mailboxes(&[ALICE]),
        "Exchange",
    )
    .await;
    let url = format!("{}/EWS/Exchange.asmx", h.fake.base());
    let action = "http://schemas.microsoft.com/exchange/services/2006/messages/GetFolder";
    let ca = reqwest::Certificate::from_pem(h.fake.ca_pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let send = |soap_action: String| {
        http.post(&url)
            .basic_auth(ALICE, Some("pw"))
            .header("SOAPAction", soap_action)
            .body(mailops::exchange::ews::get_folder_envelope("inbox", None))
            .send()
    };
    let unquoted = send(action.to_string()).await.unwrap();
    assert_eq!(unquoted.status(), 400);
    let quoted = send(format!("\"{action}\"")).await.unwrap();
    assert_eq!(quoted.status(), 200);
}

#[tokio::test]
async fn ews_requests_carry_a_quoted_soap_action() {
    let h = harness(
        Behaviour::default().user(ALICE, "pw").mailboxes(&[ALICE]),
        "Exchange",
    )
    .await;
    let outcome = h.verify(&h.probe(ALICE, basic(ALICE, "pw"), false)).await;
    assert_eq!(outcome.mailbox, Ok(()));
    let request = &h.fake.requests_to("/EWS/")[0];
    assert_eq!(
        request.headers["soapaction"],
        r#""http://schemas.microsoft.com/exchange/services/2006/messages/GetFolder""#
    );
}

// ---------------------------------------------------------------- oversized answers

const OVER_THE_LIMIT: &str = "answered with a body larger than the 1 MiB limit";

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

#[tokio::test]
async fn a_revoked_cached_app_token_is_replaced_once_over_graph() {
    let h = harness(graph_behaviour(&["Mail.Read"]), "Microsoft365").await;
    let mut probe = h.probe(ALICE, h.app(APP, SECRET), true);
    probe.check_calendar = true;
    assert_eq!(h.verify(&probe).await.mailbox, Ok(()));
    assert_eq!(h.fake.token_requests(), 1);
    h.fake.revoke_tokens();
    let outcome = h.verify(&probe).await;
    assert_eq!(outcome.mailbox, Ok(()));
    assert_eq!(outcome.calendar, Some(Ok(())));
    assert_eq!(h.fake.token_requests(), 2, "one fresh token");
    // Inbox and calendar, then inbox refused, inbox again and calendar with the new token.
    assert_eq!(h.fake.requests_to("/v1.0/users/").len(), 2 + 3);
    // The new token is cached in place of the revoked one.
    assert_eq!(h.verify(&probe).await.mailbox, Ok(()));
    assert_eq!(h.fake.token_requests(), 2);
}

#[tokio::test]
async fn a_revoked_cached_app_token_is_replaced_once_over_ews() {
    let h = harness(
        Behaviour::default()
            .app(APP, SECRET, &["full_access_as_app"])
            .mailboxes(&[BOB]),
        "Exchange",
    )
    .await;
    let probe = h.probe(BOB, h.app(APP, SECRET), true);
    assert_eq!(h.verify(&probe).await.mailbox, Ok(()));
    h.fake.revoke_tokens();
    assert_eq!(h.verify(&probe).await.mailbox, Ok(()));
    assert_eq!(h.fake.token_requests(), 2);
    assert_eq!(h.fake.requests_to("/EWS/").len(), 1 + 2);
}

#[tokio::test]
async fn a_second_401_is_reported_without_another_retry() {
    let h = harness(graph_behaviour(&["Mail.Read"]), "Microsoft365").await;
    let probe = h.probe(ALICE, h.app(APP, SECRET), true);
    assert_eq!(h.verify(&probe).await.mailbox, Ok(()));
    h.fake.update(|b| b.refuse_tokens = true);
    let outcome = h.verify(&probe).await;
    let f = failure(&outcome);
    assert_eq!(f.reason, Reason::InvalidCredentials);
    assert_eq!(
        f.message,
        "Microsoft Graph: InvalidAuthenticationToken: the access token was refused (HTTP 401)"
    );
    assert_eq!(h.fake.token_requests(), 2);
    assert_eq!(h.fake.requests_to("/v1.0/users/").len(), 1 + 2);
}

#[tokio::test]
async fn a_401_on_a_token_fetched_for_the_probe_is_not_retried() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.refuse_tokens = true;
    behaviour.refresh_tokens.insert(
        "rt".into(),
        exchange_fake::Grant {
            returns: "rt".into(),
            scp: "Mail.Read".into(),
        },
    );
    let h = harness(behaviour, "Microsoft365").await;
    for credential in [h.app(APP, SECRET), h.refresh("rt")] {
        let before = h.fake.token_requests();
        let outcome = h.verify(&h.probe(ALICE, credential, true)).await;
        assert_eq!(failure(&outcome).reason, Reason::InvalidCredentials);
        assert_eq!(h.fake.token_requests(), before + 1);
    }
    assert_eq!(h.fake.requests_to("/v1.0/users/").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_refused_with_the_same_revoked_token_share_one_new_token() {
    let addresses: Vec<String> = (0..4).map(|i| format!("user{i}@contoso.com")).collect();
    let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let gate = Arc::new(Semaphore::new(0));
    let behaviour = Behaviour::default()
        .app(APP, SECRET, &["Mail.Read"])
        .mailboxes(&refs);
    let h = Arc::new(harness(behaviour, "Microsoft365").await);
    h.client
        .authenticate("p", &h.service(), &h.app(APP, SECRET))
        .await
        .unwrap();
    h.fake.revoke_tokens();
    h.fake.update(|b| b.gate = Some(gate.clone()));
    let tasks: Vec<_> = addresses
        .iter()
        .map(|email| {
            let h = h.clone();
            let probe = h.probe(email, h.app(APP, SECRET), true);
            tokio::spawn(async move { h.verify(&probe).await.mailbox })
        })
        .collect();
    // All four hold the revoked token at the fake's gate before any is answered.
    settle(&h, 4, 0).await;
    gate.add_permits(1000);
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok(()));
    }
    assert_eq!(h.fake.token_requests(), 2);
}

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
