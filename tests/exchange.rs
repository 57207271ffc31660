//! The real Exchange client against a fake Entra ID + EWS + Graph: success paths and how
//! each kind of failure is reported (reason and message).

mod exchange_fake;

use std::time::Duration;

use exchange_fake::harness::*;
use exchange_fake::{Behaviour, Mode};
use mailops::api::conditions::Reason;
use mailops::exchange::{Credential, MailBackend, OAuthApp};
use secrecy::SecretString;

// ---------------------------------------------------------------- success paths

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
async fn wrong_client_secret_is_invalid_credentials_with_aadsts7000215() {
    let h = harness(graph_behaviour(&["Mail.Read"]), "Microsoft365").await;
    let outcome = h.verify(&h.probe(ALICE, h.app(APP, "wrong"), true)).await;
    let f = failure(&outcome);
    assert_eq!(f.reason, Reason::InvalidCredentials);
    assert_eq!(
        f.message,
        "Entra ID: AADSTS7000215: the client secret is wrong or expired (invalid_client)"
    );
    assert!(outcome.calendar.is_none());
    assert!(
        h.fake.requests_to("/v1.0/").is_empty(),
        "no mailbox request without a token"
    );
    let metrics = h.metrics.encode();
    assert!(
        metrics.contains(r#"mailops_token_requests_total{result="InvalidCredentials"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn unknown_application_is_reported_with_aadsts700016() {
    let h = harness(graph_behaviour(&["Mail.Read"]), "Microsoft365").await;
    let f = h
        .client
        .authenticate("p", &h.service(), &h.app("no-such-app", SECRET))
        .await
        .unwrap_err();
    assert_eq!(f.reason, Reason::InvalidCredentials);
    assert_eq!(
        f.message,
        "Entra ID: AADSTS700016: application not found in the tenant (unauthorized_client)"
    );
}

#[tokio::test]
async fn unknown_tenant_is_reported_with_aadsts90002() {
    let h = harness(graph_behaviour(&["Mail.Read"]), "Microsoft365").await;
    let Credential::ClientCredentials(OAuthApp { authority, .. }) = h.app(APP, SECRET) else {
        unreachable!()
    };
    let credential = Credential::ClientCredentials(OAuthApp {
        authority,
        tenant_id: "fabrikam".into(),
        client_id: APP.into(),
        client_secret: SecretString::from(SECRET),
        scopes: vec![],
    });
    let f = h
        .client
        .authenticate("p", &h.service(), &credential)
        .await
        .unwrap_err();
    assert_eq!(f.reason, Reason::InvalidCredentials);
    assert_eq!(
        f.message,
        "Entra ID: AADSTS90002: tenant not found (invalid_request)"
    );
}

#[tokio::test]
async fn expired_refresh_token_is_invalid_credentials() {
    let h = harness(graph_behaviour(&["Mail.Read"]), "Microsoft365").await;
    let outcome = h.verify(&h.probe(ALICE, h.refresh("stale"), false)).await;
    let f = failure(&outcome);
    assert_eq!(f.reason, Reason::InvalidCredentials);
    assert!(
        f.message.starts_with("Entra ID: AADSTS700082:"),
        "{}",
        f.message
    );
    assert!(f.message.ends_with("(invalid_grant)"), "{}", f.message);
}

// ---------------------------------------------------------------- mailbox errors

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
