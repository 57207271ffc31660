//! Shared set-up of the Exchange client tests: a fake, a client configured for it, and
//! probe builders.

use std::sync::Arc;
use std::time::Duration;

use mailops::api::EmailProvider;
use mailops::config::OperatorConfig;
use mailops::endpoints::{ProviderEndpoints, provider_endpoints};
use mailops::exchange::client::ExchangeClient;
use mailops::exchange::trust::provider_trust;
use mailops::exchange::{
    Credential, Failure, MailBackend, MailboxOutcome, MailboxProbe, OAuthApp, Service, Trust,
};
use mailops::metrics::Metrics;
use secrecy::SecretString;
use serde_json::json;

use super::{Behaviour, FakeExchange};

pub const APP: &str = "11111111-app";
pub const SECRET: &str = "app-secret-value";
pub const ALICE: &str = "alice@contoso.com";
pub const BOB: &str = "bob@contoso.com";

/// The operator's settings for the tests: HTTPS only, as in production.
pub fn config(timeout: Duration, per_provider: usize) -> OperatorConfig {
    OperatorConfig {
        allow_insecure_endpoints: false,
        request_timeout: timeout,
        max_probes_per_provider: per_provider,
        ..OperatorConfig::default()
    }
}

pub struct Harness {
    pub fake: FakeExchange,
    pub client: ExchangeClient,
    pub metrics: Arc<Metrics>,
    pub endpoints: ProviderEndpoints,
    pub trust: Trust,
}

/// A provider whose overrides point at `base` and whose `spec.tls` is `tls`.
pub fn provider_at(base: &str, service_type: &str, tls: serde_json::Value) -> EmailProvider {
    serde_json::from_value(json!({
        "apiVersion": "mailops.dev/v1alpha1", "kind": "EmailProvider", "metadata": {"name": "p"},
        "spec": {
            "serviceType": service_type, "serviceAddress": "127.0.0.1",
            "endpoints": {"authority": base, "graph": base, "ews": format!("{base}/EWS/Exchange.asmx")},
            "authentication": {"method": "OAuth2", "oauth2": {"clientId": APP, "tenantId": "contoso",
                "clientSecretRef": {"namespace": "n", "name": "s"}}},
            "tls": tls,
        }
    }))
    .unwrap()
}

/// The endpoints come from the operator's own resolution of a provider whose overrides
/// point at the fake.
pub fn endpoints_for(fake: &FakeExchange, service_type: &str) -> ProviderEndpoints {
    let provider = provider_at(&fake.base(), service_type, json!({}));
    provider_endpoints(&provider.spec, false).unwrap()
}

/// The trust of a provider whose `spec.tls.caBundle` holds the fake's CA.
pub fn trust_for(fake: &FakeExchange) -> Trust {
    let provider = provider_at(&fake.base(), "Exchange", json!({"caBundle": fake.ca_pem()}));
    provider_trust(provider.spec.tls.as_ref(), None).unwrap()
}

pub async fn harness_with(
    behaviour: Behaviour,
    service_type: &str,
    config: OperatorConfig,
) -> Harness {
    let fake = FakeExchange::start(behaviour).await;
    let metrics = Arc::new(Metrics::new());
    let client = ExchangeClient::new(&config, metrics.clone()).unwrap();
    let endpoints = endpoints_for(&fake, service_type);
    let trust = trust_for(&fake);
    Harness {
        fake,
        client,
        metrics,
        endpoints,
        trust,
    }
}

pub async fn harness(behaviour: Behaviour, service_type: &str) -> Harness {
    harness_with(behaviour, service_type, config(Duration::from_secs(10), 8)).await
}

impl Harness {
    pub fn service(&self) -> Service {
        if self.endpoints.mailbox_endpoint.ends_with(".asmx") {
            Service::Ews {
                url: self.endpoints.mailbox_endpoint.clone(),
                trust: self.trust.clone(),
            }
        } else {
            Service::Graph {
                base: self.endpoints.mailbox_endpoint.clone(),
                trust: self.trust.clone(),
            }
        }
    }

    pub fn app(&self, client_id: &str, secret: &str) -> Credential {
        Credential::ClientCredentials(OAuthApp {
            authority: self.endpoints.authority.clone(),
            tenant_id: "contoso".into(),
            client_id: client_id.into(),
            client_secret: SecretString::from(secret),
            scopes: vec![self.endpoints.default_scope.clone()],
        })
    }

    pub fn refresh(&self, refresh_token: &str) -> Credential {
        Credential::RefreshToken {
            app: OAuthApp {
                authority: self.endpoints.authority.clone(),
                tenant_id: "contoso".into(),
                client_id: APP.into(),
                client_secret: SecretString::from(SECRET),
                scopes: vec![
                    "offline_access".into(),
                    self.endpoints.default_scope.clone(),
                ],
            },
            refresh_token: SecretString::from(refresh_token),
        }
    }

    pub fn probe(
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
            store_rotated: None,
        }
    }

    pub async fn verify(&self, probe: &MailboxProbe) -> MailboxOutcome {
        self.client.verify_mailbox(probe).await
    }
}

pub fn basic(user: &str, password: &str) -> Credential {
    Credential::Basic {
        username: user.into(),
        password: SecretString::from(password),
    }
}

pub fn failure(outcome: &MailboxOutcome) -> &Failure {
    outcome.mailbox.as_ref().unwrap_err()
}

pub fn graph_behaviour(roles: &[&str]) -> Behaviour {
    Behaviour::default()
        .app(APP, SECRET, roles)
        .mailboxes(&[ALICE, BOB])
}

/// Wait (without sleeping) until the fake holds `in_flight` requests at its gate and the
/// client keeps `waiting` probes back. Were a limit missing, the fake would see more
/// requests and the client none waiting, and this would give up after ten seconds.
pub async fn settle(h: &Harness, in_flight: usize, waiting: usize) {
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
