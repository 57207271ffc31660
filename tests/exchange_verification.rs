//! The real Exchange client against a fake Entra ID + EWS + Graph: a mailbox verified over
//! EWS and Graph (Basic, impersonation, app tokens), what each refusal of a mailbox is
//! reported as, and what a provider check counts as reachable.

mod exchange_fake;

use exchange_fake::Behaviour;
use exchange_fake::harness::*;
use mailops::api::conditions::Reason;
use mailops::exchange::{MailBackend, ProviderProbe};

#[tokio::test]
async fn ews_basic_login_opens_inbox_and_calendar_without_impersonation() {
    let h = harness(
        Behaviour::default().user(ALICE, "pw").mailboxes(&[ALICE]),
        "Exchange",
    )
    .await;
    let mut probe = h.probe(ALICE, basic(ALICE, "pw"), false);
    probe.check_calendar = true;
    let outcome = h.verify(&probe).await;
    assert_eq!(outcome.mailbox, Ok(()));
    assert_eq!(outcome.calendar, Some(Ok(())));
    let requests = h.fake.requests_to("/EWS/Exchange.asmx");
    assert_eq!(requests.len(), 2);
    let inbox = &requests[0];
    assert!(inbox.headers["authorization"].starts_with("Basic "));
    assert!(!inbox.headers.contains_key("x-anchormailbox"));
    assert!(!inbox.body.contains("ExchangeImpersonation"));
    assert!(
        inbox
            .body
            .contains(r#"<t:DistinguishedFolderId Id="inbox"/>"#)
    );
    assert!(requests[1].body.contains(r#"Id="calendar""#));
    assert_eq!(
        inbox.headers["soapaction"],
        r#""http://schemas.microsoft.com/exchange/services/2006/messages/GetFolder""#,
        "SOAP 1.1 section 6.1.1: SOAPAction is a quoted string"
    );
    assert_eq!(h.fake.token_requests(), 0);
    let metrics = h.metrics.encode();
    assert!(
        metrics.contains(r#"mailops_exchange_probes_total{service="ews",result="success"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn ews_service_account_impersonates_the_mailbox_and_anchors_it() {
    let h = harness(
        Behaviour::default()
            .user("svc-mailops", "pw")
            .mailboxes(&[BOB]),
        "Exchange",
    )
    .await;
    let outcome = h
        .verify(&h.probe(BOB, basic("svc-mailops", "pw"), true))
        .await;
    assert_eq!(outcome.mailbox, Ok(()));
    let request = &h.fake.requests_to("/EWS/")[0];
    assert_eq!(request.headers["x-anchormailbox"], BOB);
    assert!(
        request.body.contains(
            "<t:ExchangeImpersonation><t:ConnectingSID><t:SmtpAddress>bob@contoso.com</t:SmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"
        ),
        "{}",
        request.body
    );
    assert!(request.headers["content-type"].starts_with("text/xml"));
}

#[tokio::test]
async fn ews_with_an_app_token_sends_bearer_and_impersonates() {
    let h = harness(
        Behaviour::default()
            .app(APP, SECRET, &["full_access_as_app"])
            .mailboxes(&[BOB]),
        "Exchange",
    )
    .await;
    let outcome = h.verify(&h.probe(BOB, h.app(APP, SECRET), true)).await;
    assert_eq!(outcome.mailbox, Ok(()));
    let request = &h.fake.requests_to("/EWS/")[0];
    assert!(request.headers["authorization"].starts_with("Bearer "));
    assert_eq!(request.headers["x-anchormailbox"], BOB);
    let token_request = &h.fake.requests_to("/contoso/oauth2/v2.0/token")[0];
    assert!(token_request.body.contains("grant_type=client_credentials"));
    assert!(
        token_request
            .body
            .contains("scope=https%3A%2F%2F127.0.0.1%2F.default"),
        "{}",
        token_request.body
    );
}

#[tokio::test]
async fn graph_app_only_opens_inbox_and_calendar() {
    let h = harness(
        graph_behaviour(&["Mail.Read", "Calendars.Read"]),
        "Microsoft365",
    )
    .await;
    let mut probe = h.probe(ALICE, h.app(APP, SECRET), true);
    probe.check_calendar = true;
    let outcome = h.verify(&probe).await;
    assert_eq!(outcome.mailbox, Ok(()));
    assert_eq!(outcome.calendar, Some(Ok(())));
    assert!(outcome.rotated_refresh_token.is_none());
    let paths: Vec<String> = h
        .fake
        .requests_to("/v1.0/")
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(
        paths,
        vec![
            "/v1.0/users/alice@contoso.com/mailFolders/inbox?$select=id",
            "/v1.0/users/alice@contoso.com/calendar?$select=id",
        ]
    );
    let metrics = h.metrics.encode();
    assert!(
        metrics.contains(r#"mailops_token_requests_total{result="success"} 1"#),
        "{metrics}"
    );
}

// ---------------------------------------------------------------- Entra ID errors

#[tokio::test]
async fn unknown_mailbox_over_ews_is_mailbox_not_found() {
    let h = harness(
        Behaviour::default().user("svc", "pw").mailboxes(&[ALICE]),
        "Exchange",
    )
    .await;
    let outcome = h
        .verify(&h.probe("ghost@contoso.com", basic("svc", "pw"), true))
        .await;
    let f = failure(&outcome);
    assert_eq!(f.reason, Reason::MailboxNotFound);
    assert_eq!(
        f.message,
        "EWS: ErrorNonExistentMailbox: no mailbox for the inbox of ghost@contoso.com"
    );
}

#[tokio::test]
async fn unknown_mailbox_over_graph_is_mailbox_not_found() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.rest_disabled.insert("onprem@contoso.com".into());
    let h = harness(behaviour, "Microsoft365").await;
    let outcome = h
        .verify(&h.probe("ghost@contoso.com", h.app(APP, SECRET), true))
        .await;
    let f = failure(&outcome);
    assert_eq!(f.reason, Reason::MailboxNotFound);
    assert_eq!(
        f.message,
        "Microsoft Graph: ErrorInvalidUser: no mailbox for ghost@contoso.com (HTTP 404)"
    );
    let outcome = h
        .verify(&h.probe("onprem@contoso.com", h.app(APP, SECRET), true))
        .await;
    let f = failure(&outcome);
    assert_eq!(f.reason, Reason::MailboxNotFound);
    assert!(
        f.message.contains("MailboxNotEnabledForRESTAPI"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn graph_access_denied_for_one_mailbox_is_out_of_scope_while_another_works() {
    let mut behaviour = graph_behaviour(&["Mail.Read"]);
    behaviour.denied.insert(BOB.into());
    let h = harness(behaviour, "Microsoft365").await;
    let denied = h.verify(&h.probe(BOB, h.app(APP, SECRET), true)).await;
    let f = failure(&denied);
    assert_eq!(f.reason, Reason::OutOfScope);
    assert_eq!(
        f.message,
        "Microsoft Graph: ErrorAccessDenied: access denied to the inbox of bob@contoso.com although the token is valid; an application access policy or RBAC for Applications scope excludes this mailbox"
    );
    let allowed = h.verify(&h.probe(ALICE, h.app(APP, SECRET), true)).await;
    assert_eq!(allowed.mailbox, Ok(()));
}

#[tokio::test]
async fn graph_access_denied_without_mail_permission_is_missing_permission() {
    let mut behaviour = graph_behaviour(&["User.Read.All"]);
    behaviour.denied.insert(BOB.into());
    let h = harness(behaviour, "Microsoft365").await;
    let outcome = h.verify(&h.probe(BOB, h.app(APP, SECRET), true)).await;
    assert_eq!(failure(&outcome).reason, Reason::MissingPermission);
}

#[tokio::test]
async fn ews_impersonation_denied_for_one_mailbox_is_out_of_scope_while_another_works() {
    let mut behaviour = Behaviour::default()
        .user("svc", "pw")
        .mailboxes(&[ALICE, BOB]);
    behaviour.denied.insert(BOB.into());
    let h = harness(behaviour, "Exchange").await;
    let denied = h.verify(&h.probe(BOB, basic("svc", "pw"), true)).await;
    let f = failure(&denied);
    assert_eq!(f.reason, Reason::OutOfScope);
    assert_eq!(
        f.message,
        "EWS: ErrorImpersonateUserDenied: access denied to the inbox of bob@contoso.com; the account may not impersonate or open this mailbox"
    );
    assert_eq!(
        h.verify(&h.probe(ALICE, basic("svc", "pw"), true))
            .await
            .mailbox,
        Ok(())
    );
}

#[tokio::test]
async fn ews_wrong_password_is_invalid_credentials() {
    let h = harness(
        Behaviour::default().user(ALICE, "pw").mailboxes(&[ALICE]),
        "Exchange",
    )
    .await;
    let outcome = h.verify(&h.probe(ALICE, basic(ALICE, "nope"), false)).await;
    let f = failure(&outcome);
    assert_eq!(f.reason, Reason::InvalidCredentials);
    assert_eq!(
        f.message,
        format!(
            "EWS at {}/EWS/Exchange.asmx refused the user name or password (HTTP 401)",
            h.fake.base()
        )
    );
}

// ---------------------------------------------------------------- throttling, timeouts, garbage

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
