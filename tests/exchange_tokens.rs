//! The real Exchange client against a fake Entra ID: what each refusal of the app or the
//! refresh token is reported as, one token shared and renewed ahead of expiry, a revoked
//! token replaced once, a rotated refresh token handed back (and stored first).

mod exchange_fake;

use std::sync::Arc;
use std::time::Duration;

use exchange_fake::harness::*;
use exchange_fake::{Behaviour, Grant};
use mailops::api::conditions::Reason;
use mailops::exchange::{Credential, MailBackend, OAuthApp};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

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
