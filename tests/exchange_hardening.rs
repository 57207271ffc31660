//! The real Exchange client against a fake that answers the way a broken or hostile
//! endpoint would (absurd numbers, endless bodies, revoked tokens), and the framing the
//! real services insist on (a quoted `SOAPAction`).

mod exchange_fake;

use exchange_fake::Behaviour;
use exchange_fake::harness::*;

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
