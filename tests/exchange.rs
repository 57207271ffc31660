//! The real Exchange client against a fake Entra ID + EWS + Graph: reasons, messages,
//! headers, token sharing, limits and timeouts.

mod exchange_fake;

use std::sync::Arc;
use std::time::Duration;

use exchange_fake::{Behaviour, FakeExchange, Grant, Mode};
use mailops::api::EmailProvider;
use mailops::api::conditions::Reason;
use mailops::config::OperatorConfig;
use mailops::endpoints::{ProviderEndpoints, provider_endpoints};
use mailops::exchange::client::ExchangeClient;
use mailops::exchange::{
    Credential, Failure, MailBackend, MailboxOutcome, MailboxProbe, ProviderProbe, Service,
};
use mailops::metrics::Metrics;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

const APP: &str = "11111111-app";
const SECRET: &str = "app-secret-value";
const ALICE: &str = "alice@contoso.com";
const BOB: &str = "bob@contoso.com";

fn config(timeout: Duration, per_provider: usize) -> OperatorConfig {
    OperatorConfig {
        allow_insecure_endpoints: true,
        request_timeout: timeout,
        max_probes_per_provider: per_provider,
        ..OperatorConfig::default()
    }
}

struct Harness {
    fake: FakeExchange,
    client: ExchangeClient,
    metrics: Arc<Metrics>,
    endpoints: ProviderEndpoints,
}

/// The endpoints come from the operator's own resolution of a provider whose overrides
/// point at the fake (plain http, allowed as in the tests' operator config).
fn endpoints_for(fake: &FakeExchange, service_type: &str) -> ProviderEndpoints {
    let b = fake.base();
    let yaml = format!(
        "apiVersion: mailops.dev/v1alpha1\nkind: EmailProvider\nmetadata: {{name: p}}\nspec:\n  serviceType: {service_type}\n  serviceAddress: 127.0.0.1\n  endpoints: {{authority: '{b}', graph: '{b}', ews: '{b}/EWS/Exchange.asmx'}}\n  authentication: {{method: OAuth2, oauth2: {{clientId: {APP}, tenantId: contoso, clientSecretRef: {{namespace: n, name: s}}}}}}\n"
    );
    let provider: EmailProvider = serde_saphyr::from_str(&yaml).unwrap();
    provider_endpoints(&provider.spec, true).unwrap()
}

async fn harness_with(behaviour: Behaviour, service_type: &str, config: OperatorConfig) -> Harness {
    let fake = FakeExchange::start(behaviour).await;
    let metrics = Arc::new(Metrics::new());
    let client = ExchangeClient::new(&config, metrics.clone()).unwrap();
    let endpoints = endpoints_for(&fake, service_type);
    Harness {
        fake,
        client,
        metrics,
        endpoints,
    }
}

async fn harness(behaviour: Behaviour, service_type: &str) -> Harness {
    harness_with(behaviour, service_type, config(Duration::from_secs(10), 8)).await
}

impl Harness {
    fn service(&self) -> Service {
        if self.endpoints.mailbox_endpoint.ends_with(".asmx") {
            Service::Ews {
                url: self.endpoints.mailbox_endpoint.clone(),
            }
        } else {
            Service::Graph {
                base: self.endpoints.mailbox_endpoint.clone(),
            }
        }
    }

    fn app(&self, client_id: &str, secret: &str) -> Credential {
        Credential::ClientCredentials {
            authority: self.endpoints.authority.clone(),
            tenant_id: "contoso".into(),
            client_id: client_id.into(),
            client_secret: SecretString::from(secret),
            scopes: vec![self.endpoints.default_scope.clone()],
        }
    }

    fn refresh(&self, refresh_token: &str) -> Credential {
        Credential::RefreshToken {
            authority: self.endpoints.authority.clone(),
            tenant_id: "contoso".into(),
            client_id: APP.into(),
            client_secret: SecretString::from(SECRET),
            refresh_token: SecretString::from(refresh_token),
            scopes: vec![
                "offline_access".into(),
                self.endpoints.default_scope.clone(),
            ],
        }
    }

    fn probe(
        &self,
        email: &str,
        credential: Credential,
        via_service_account: bool,
    ) -> MailboxProbe {
        MailboxProbe {
            provider: "p".into(),
            email: email.into(),
            login: email.into(),
            service: self.service(),
            credential,
            via_service_account,
            check_calendar: false,
            check_send: false,
        }
    }

    async fn verify(&self, probe: &MailboxProbe) -> MailboxOutcome {
        self.client.verify_mailbox(probe).await
    }
}

fn basic(user: &str, password: &str) -> Credential {
    Credential::Basic {
        username: user.into(),
        password: SecretString::from(password),
    }
}

fn failure(outcome: &MailboxOutcome) -> &Failure {
    outcome.mailbox.as_ref().unwrap_err()
}

fn graph_behaviour(roles: &[&str]) -> Behaviour {
    Behaviour::default()
        .app(APP, SECRET, roles)
        .mailboxes(&[ALICE, BOB])
}

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
        "http://schemas.microsoft.com/exchange/services/2006/messages/GetFolder"
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
    let Credential::ClientCredentials { authority, .. } = h.app(APP, SECRET) else {
        unreachable!()
    };
    let credential = Credential::ClientCredentials {
        authority,
        tenant_id: "fabrikam".into(),
        client_id: APP.into(),
        client_secret: SecretString::from(SECRET),
        scopes: vec![],
    };
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
        config(Duration::from_millis(300), 8),
    )
    .await;
    let outcome = h.verify(&h.probe(ALICE, h.app(APP, SECRET), true)).await;
    let f = failure(&outcome);
    assert_eq!(f.reason, Reason::Unreachable);
    assert!(f.message.contains("timed out after 300ms"), "{}", f.message);
    assert!(
        f.message
            .starts_with("Microsoft Graph at http://127.0.0.1:"),
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
        config(Duration::from_millis(300), 8),
    )
    .await;
    let f = h
        .client
        .authenticate("p", &h.service(), &h.app(APP, SECRET))
        .await
        .unwrap_err();
    assert_eq!(f.reason, Reason::Unreachable);
    assert!(f.message.contains("the token endpoint"), "{}", f.message);
    assert!(f.message.contains("timed out after 300ms"), "{}", f.message);
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
    // Tokens with less than five minutes left are not used.
    h.fake.update(|b| b.expires_in = 120);
    let other_scope = Credential::ClientCredentials {
        authority: h.endpoints.authority.clone(),
        tenant_id: "contoso".into(),
        client_id: APP.into(),
        client_secret: SecretString::from(SECRET),
        scopes: vec!["https://outlook.office365.com/.default".into()],
    };
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

/// Wait (without sleeping) until the fake holds `in_flight` requests at its gate and the
/// client keeps `waiting` probes back. Were a limit missing, the fake would see more
/// requests and the client none waiting, and this would give up after ten seconds.
async fn settle(h: &Harness, in_flight: usize, waiting: usize) {
    let reached = tokio::time::timeout(Duration::from_secs(10), async {
        while h.fake.in_flight() != in_flight || h.client.probes_waiting() != waiting {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "expected {in_flight} in flight and {waiting} waiting, saw {} and {}",
        h.fake.in_flight(),
        h.client.probes_waiting()
    );
}

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
                url: format!("http://svc:hunter2@127.0.0.1:{port}/EWS/Exchange.asmx"),
            },
            credential: None,
        })
        .await;
    let f = outcome.reachable.unwrap_err();
    assert_eq!(f.reason, Reason::Unreachable);
    assert!(
        f.message.starts_with(&format!(
            "EWS at http://127.0.0.1:{port}/EWS/Exchange.asmx is unreachable:"
        )),
        "{}",
        f.message
    );
    assert!(!f.message.contains("hunter2"), "{}", f.message);
}

#[tokio::test]
async fn plain_http_is_refused_without_the_flag_and_nothing_is_sent() {
    let fake = FakeExchange::start(graph_behaviour(&["Mail.Read"])).await;
    let endpoints = endpoints_for(&fake, "Microsoft365");
    let mut config = config(Duration::from_secs(5), 8);
    config.allow_insecure_endpoints = false;
    let client = ExchangeClient::new(&config, Arc::new(Metrics::new())).unwrap();
    let probe = MailboxProbe {
        provider: "p".into(),
        email: ALICE.into(),
        login: ALICE.into(),
        service: Service::Graph {
            base: endpoints.mailbox_endpoint.clone(),
        },
        credential: Credential::ClientCredentials {
            authority: endpoints.authority.clone(),
            tenant_id: "contoso".into(),
            client_id: APP.into(),
            client_secret: SecretString::from(SECRET),
            scopes: vec![],
        },
        via_service_account: true,
        check_calendar: false,
        check_send: false,
    };
    let outcome = client.verify_mailbox(&probe).await;
    assert_eq!(failure(&outcome).reason, Reason::InsecureEndpoint);
    assert!(fake.recorded().is_empty());
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
