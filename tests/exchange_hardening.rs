//! The real Exchange client against a fake that answers the way a broken or hostile
//! endpoint would (absurd numbers, endless bodies, revoked tokens), and the framing the
//! real services insist on (a quoted `SOAPAction`).

mod exchange_fake;

use exchange_fake::harness::*;
use exchange_fake::{Behaviour, Mode};
use mailops::api::conditions::Reason;
use mailops::exchange::MailBackend;
use mailops::exchange::errors::{MAX_SERVER_DELAY, MIN_SERVER_DELAY};

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
    let send = |soap_action: String| {
        reqwest::Client::new()
            .post(&url)
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
            .starts_with("Microsoft Graph at http://127.0.0.1:"),
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
        f.message.starts_with("EWS at http://127.0.0.1:"),
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
            .starts_with("the token endpoint at http://127.0.0.1:"),
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
