//! TLS to Exchange and the token authority, end to end: the real client against fakes that
//! serve HTTPS with CAs generated at start-up. A private CA given inline or as the text of
//! a ConfigMap or Secret is trusted; without it, an expired certificate or one for another
//! name, the failure is named with the presented certificate; `serverName`; an ADFS-like
//! authority with a CA of its own; one client per trust; a CONNECT proxy.

mod exchange_fake;

use std::sync::Arc;
use std::time::Duration;

use exchange_fake::connect_proxy::ConnectProxy;
use exchange_fake::harness::*;
use exchange_fake::tls::TestCa;
use exchange_fake::{Behaviour, FAKE_NAMES, FakeExchange};
use mailops::api::conditions::Reason;
use mailops::exchange::client::ExchangeClient;
use mailops::exchange::clients::ProxySettings;
use mailops::exchange::trust::provider_trust;
use mailops::exchange::{
    Credential, Failure, MailBackend, MailboxProbe, OAuthApp, ProviderProbe, Service, Trust,
};
use mailops::metrics::Metrics;
use secrecy::SecretString;
use serde_json::{Value, json};
use time::OffsetDateTime;

fn client() -> ExchangeClient {
    client_with(ProxySettings::default())
}

fn client_with(proxy: ProxySettings) -> ExchangeClient {
    let config = config(Duration::from_secs(10), 8);
    ExchangeClient::with_proxy(&config, Arc::new(Metrics::new()), proxy).unwrap()
}

/// The trust of a provider with this `spec.tls`, and the bundle text a `caBundleFrom`
/// would have read.
fn trust(tls: Value, referenced: Option<&str>) -> Trust {
    let provider = provider_at("https://127.0.0.1", "Exchange", tls);
    provider_trust(provider.spec.tls.as_ref(), referenced).unwrap()
}

fn inline(ca: &str) -> Trust {
    trust(json!({"caBundle": ca}), None)
}

fn ews(base: &str, trust: &Trust) -> Service {
    Service::Ews {
        url: format!("{base}/EWS/Exchange.asmx"),
        trust: trust.clone(),
    }
}

async fn reach(client: &ExchangeClient, service: Service) -> Result<(), Failure> {
    client
        .check_provider(&ProviderProbe {
            provider: "p".into(),
            service,
            credential: None,
        })
        .await
        .reachable
}

/// A Basic login to EWS: it passes only if the request got through TLS.
async fn login(client: &ExchangeClient, service: &Service) -> Result<(), Failure> {
    client.authenticate("p", service, &basic("svc", "pw")).await
}

fn users() -> Behaviour {
    Behaviour::default().user("svc", "pw").mailboxes(&[ALICE])
}

// ------------------------------------------------------------------ trusted

#[tokio::test]
async fn a_private_ca_given_inline_is_trusted() {
    let fake = FakeExchange::start(users()).await;
    let client = client();
    let service = ews(&fake.base(), &inline(fake.ca_pem()));
    assert_eq!(reach(&client, service.clone()).await, Ok(()));
    assert_eq!(login(&client, &service).await, Ok(()));
    assert_eq!(fake.requests_to("/EWS/").len(), 2);
}

#[tokio::test]
async fn a_private_ca_read_from_a_configmap_or_a_secret_is_trusted() {
    let fake = FakeExchange::start(users()).await;
    let client = client();
    // What trust-manager writes: the public roots' PEM followed by the private CA, with
    // a comment line as some distributions' bundles carry.
    let other = TestCa::new("Some Public Root");
    let bundle = format!("# bundle\n{}\n{}", other.pem, fake.ca_pem());
    for source in [
        json!({"configMapKeyRef": {"namespace": "cert-manager", "name": "contoso-bundle", "key": "trust-bundle.pem"}}),
        json!({"secretKeyRef": {"namespace": "mailops-system", "name": "contoso-ca", "key": "ca.crt"}}),
    ] {
        let trust = trust(json!({"caBundleFrom": source}), Some(&bundle));
        assert_eq!(trust.bundle_len(), 2);
        assert_eq!(login(&client, &ews(&fake.base(), &trust)).await, Ok(()));
    }
}

#[tokio::test]
async fn a_chain_through_an_issuing_ca_leads_to_the_trusted_root() {
    let root = TestCa::new("Contoso Root CA");
    let issuing = root.intermediate("Contoso Issuing CA 01");
    let cert = issuing.server(FAKE_NAMES).with_chain(&issuing);
    let fake = FakeExchange::start_tls(users(), cert).await;
    let service = ews(&fake.base(), &inline(&root.pem));
    assert_eq!(login(&client(), &service).await, Ok(()));
}

// ------------------------------------------------------------------ refused, and named

#[tokio::test]
async fn without_the_bundle_the_certificate_is_untrusted_and_named() {
    let fake = FakeExchange::start(users()).await;
    let client = client();
    let f = reach(&client, ews(&fake.base(), &Trust::default()))
        .await
        .unwrap_err();
    assert_eq!(f.reason, Reason::CertificateUntrusted);
    let m = &f.message;
    assert!(
        m.starts_with(&format!("EWS at {}/EWS/Exchange.asmx: ", fake.base())),
        "{m}"
    );
    assert!(m.contains(r#"subject "CN=127.0.0.1""#), "{m}");
    assert!(
        m.contains(r#"issuer "CN=Fake Exchange Test Root CA, O=Contoso Test""#),
        "{m}"
    );
    assert!(m.contains("valid from 20") && m.contains(" to 20"), "{m}");
    assert!(m.contains("spec.tls.caBundle"), "{m}");
    assert!(!m.contains("BEGIN"), "no certificate or key material: {m}");

    // The password never left: the handshake failed before any request.
    let f = login(&client, &ews(&fake.base(), &Trust::default()))
        .await
        .unwrap_err();
    assert_eq!(f.reason, Reason::CertificateUntrusted);
    assert!(fake.recorded().is_empty());
}

#[tokio::test]
async fn another_private_ca_does_not_vouch_for_the_server() {
    let fake = FakeExchange::start(users()).await;
    let stranger = TestCa::new("Fabrikam Root CA");
    let trust = trust(
        json!({"caBundle": stranger.pem, "trustPublicRoots": false}),
        None,
    );
    let f = login(&client(), &ews(&fake.base(), &trust))
        .await
        .unwrap_err();
    assert_eq!(f.reason, Reason::CertificateUntrusted);
    assert!(
        f.message
            .contains("mailops trusts only the 1 certificate(s) of spec.tls"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn an_expired_certificate_is_certificate_expired() {
    let ca = TestCa::new("Contoso Root CA");
    let now = OffsetDateTime::now_utc();
    let expired = ca.server_valid(
        FAKE_NAMES,
        now - time::Duration::days(30),
        now - time::Duration::days(1),
    );
    let fake = FakeExchange::start_tls(users(), expired).await;
    let f = login(&client(), &ews(&fake.base(), &inline(&ca.pem)))
        .await
        .unwrap_err();
    assert_eq!(f.reason, Reason::CertificateExpired);
    assert!(
        f.message.contains("the server's certificate expired at 20"),
        "{}",
        f.message
    );
    assert!(
        f.message.contains(r#"issuer "CN=Contoso Root CA"#),
        "{}",
        f.message
    );
    assert!(fake.recorded().is_empty());
}

#[tokio::test]
async fn a_name_mismatch_is_named_and_server_name_verifies_the_name_instead() {
    let ca = TestCa::new("Contoso Root CA");
    let cert = ca.server(&["mail.contoso.com", "autodiscover.contoso.com"]);
    let fake = FakeExchange::start_tls(users(), cert).await;
    let client = client();
    let f = login(&client, &ews(&fake.base(), &inline(&ca.pem)))
        .await
        .unwrap_err();
    assert_eq!(f.reason, Reason::CertificateNameMismatch);
    assert!(
        f.message.contains(
            r#"is not valid for "127.0.0.1" (it names "mail.contoso.com", "autodiscover.contoso.com")"#
        ),
        "{}",
        f.message
    );
    assert!(f.message.contains("spec.tls.serverName"), "{}", f.message);

    let named = trust(
        json!({"caBundle": ca.pem, "serverName": "mail.contoso.com"}),
        None,
    );
    assert_eq!(login(&client, &ews(&fake.base(), &named)).await, Ok(()));
    let wrong = trust(
        json!({"caBundle": ca.pem, "serverName": "owa.contoso.com"}),
        None,
    );
    let f = login(&client, &ews(&fake.base(), &wrong))
        .await
        .unwrap_err();
    assert_eq!(f.reason, Reason::CertificateNameMismatch);
    assert!(f.message.contains(r#""owa.contoso.com""#), "{}", f.message);
}

// ------------------------------------------------------------------ token authority

fn app_probe(authority: &str, ews_base: &str, trust: &Trust) -> MailboxProbe {
    MailboxProbe {
        provider: "p".into(),
        email: ALICE.into(),
        login: ALICE.into(),
        service: ews(ews_base, trust),
        credential: Credential::ClientCredentials(OAuthApp {
            authority: authority.into(),
            tenant_id: "contoso".into(),
            client_id: APP.into(),
            client_secret: SecretString::from(SECRET),
            scopes: vec!["https://mail.contoso.com/.default".into()],
        }),
        via_service_account: true,
        check_calendar: false,
        check_send: false,
        store_rotated: None,
    }
}

#[tokio::test]
async fn an_adfs_like_authority_with_its_own_ca_and_exchange_with_another() {
    let exchange_ca = TestCa::new("Contoso Exchange CA");
    let adfs_ca = TestCa::new("Contoso ADFS CA");
    let behaviour = Behaviour::default()
        .app(APP, SECRET, &["full_access_as_app"])
        .mailboxes(&[ALICE]);
    let fake = FakeExchange::start_tls(behaviour, exchange_ca.server(FAKE_NAMES)).await;
    let adfs = fake.listen_also(adfs_ca.server(FAKE_NAMES)).await;
    let client = client();

    let both = inline(&format!("{}{}", exchange_ca.pem, adfs_ca.pem));
    let outcome = client
        .verify_mailbox(&app_probe(&adfs, &fake.base(), &both))
        .await;
    assert_eq!(outcome.mailbox, Ok(()));
    assert_eq!(fake.token_requests(), 1);

    let exchange_only = inline(&exchange_ca.pem);
    let outcome = client
        .verify_mailbox(&app_probe(&adfs, &fake.base(), &exchange_only))
        .await;
    let f = outcome.mailbox.unwrap_err();
    assert_eq!(f.reason, Reason::CertificateUntrusted);
    assert!(
        f.message.starts_with(&format!(
            "the token endpoint at {adfs}/contoso/oauth2/v2.0/token: "
        )),
        "{}",
        f.message
    );
    assert!(
        f.message.contains(r#"issuer "CN=Contoso ADFS CA"#),
        "{}",
        f.message
    );
    // The token cached under the first trust was not handed to the second: a provider
    // that cannot verify the authority does not ride on another provider's token.
    assert_eq!(fake.token_requests(), 1);
}

// ------------------------------------------------------------------ one client per trust

#[tokio::test]
async fn a_thousand_mailboxes_of_one_provider_share_one_client_and_its_connections() {
    let mailboxes: Vec<String> = (0..1000).map(|i| format!("user{i}@contoso.com")).collect();
    let names: Vec<&str> = mailboxes.iter().map(String::as_str).collect();
    let behaviour = Behaviour::default()
        .app(APP, SECRET, &["Mail.Read"])
        .mailboxes(&names);
    let h = harness(behaviour, "Microsoft365").await;
    let before = h.client.http_clients();
    let probes: Vec<MailboxProbe> = names
        .iter()
        .map(|m| h.probe(m, h.app(APP, SECRET), true))
        .collect();
    let outcomes = futures::future::join_all(probes.iter().map(|p| h.verify(p))).await;
    assert!(outcomes.iter().all(|o| o.mailbox.is_ok()));
    assert_eq!(h.client.http_clients(), before + 1);
    // At most 8 probes of a provider at once (the harness's limit), each on a pooled
    // connection, plus the token request's: a client per mailbox would open 1000.
    assert!(
        h.fake.handshakes() <= 9,
        "{} handshakes",
        h.fake.handshakes()
    );
    assert_eq!(h.fake.token_requests(), 1);
}

// ------------------------------------------------------------------ proxies

#[tokio::test]
async fn https_proxy_carries_the_traffic_and_no_proxy_hosts_go_direct() {
    let fake = FakeExchange::start(users()).await;
    let proxy = ConnectProxy::start().await;
    let client = client_with(ProxySettings {
        https: Some(proxy.url()),
        http: None,
        no_proxy: Some("localhost,.contoso.internal".into()),
    });
    let trust = inline(fake.ca_pem());

    assert_eq!(login(&client, &ews(&fake.base(), &trust)).await, Ok(()));
    let through = format!("127.0.0.1:{}", fake.addr.port());
    assert_eq!(proxy.tunnels(), vec![through.clone()]);

    assert_eq!(
        login(&client, &ews(&fake.base_by_name(), &trust)).await,
        Ok(())
    );
    assert_eq!(proxy.tunnels(), vec![through], "localhost went direct");
    assert_eq!(fake.requests_to("/EWS/").len(), 2);
}

#[tokio::test]
async fn a_tls_inspecting_proxy_is_trusted_only_with_its_ca_in_the_bundle() {
    // The proxy re-signs the server's certificate with its own CA: the fake playing the
    // server behind it presents a certificate from the proxy's CA.
    let proxy_ca = TestCa::new("Contoso Egress Inspection CA");
    let fake = FakeExchange::start_tls(users(), proxy_ca.server(FAKE_NAMES)).await;
    let proxy = ConnectProxy::start().await;
    let client = client_with(ProxySettings {
        https: Some(proxy.url()),
        ..ProxySettings::default()
    });
    let f = login(&client, &ews(&fake.base(), &Trust::default()))
        .await
        .unwrap_err();
    assert_eq!(f.reason, Reason::CertificateUntrusted);
    assert!(
        f.message.contains("Contoso Egress Inspection CA"),
        "{}",
        f.message
    );
    let with_proxy_ca = inline(&proxy_ca.pem);
    assert_eq!(
        login(&client, &ews(&fake.base(), &with_proxy_ca)).await,
        Ok(())
    );
    assert_eq!(proxy.tunnels().len(), 2);
}

#[test]
fn proxy_settings_never_show_credentials() {
    let settings = ProxySettings {
        https: Some("http://egress:s3cret@proxy.contoso.com:3128".into()),
        http: None,
        no_proxy: Some(".contoso.com".into()),
    };
    let shown = settings.describe();
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("proxy.contoso.com:3128"), "{shown}");
}
