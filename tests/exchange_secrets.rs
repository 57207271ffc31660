//! No secret value (client secret, password, refresh token, access token) appears in any
//! log line at TRACE level, in any failure message, or in the Debug output of what the
//! client returns. Its own test binary: the log capture is process-global.

mod exchange_fake;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exchange_fake::{Behaviour, FakeExchange, Grant, Mode, TOKEN_MARKER};
use mailops::config::OperatorConfig;
use mailops::exchange::client::ExchangeClient;
use mailops::exchange::{Credential, MailBackend, MailboxProbe, OAuthApp, ProviderProbe, Service};
use mailops::metrics::Metrics;
use secrecy::SecretString;

const SECRET: &str = "SENTINEL-client-secret-7f3a";
const WRONG_SECRET: &str = "SENTINEL-wrong-secret-91bc";
const PASSWORD: &str = "SENTINEL-password-c0de";
const WRONG_PASSWORD: &str = "SENTINEL-bad-password-d00d";
const REFRESH: &str = "SENTINEL-refresh-token-4242";
const ROTATED: &str = "SENTINEL-rotated-refresh-5353";
const SENTINELS: &[&str] = &[
    SECRET,
    WRONG_SECRET,
    PASSWORD,
    WRONG_PASSWORD,
    REFRESH,
    ROTATED,
    TOKEN_MARKER,
];

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_clean(what: &str, text: &str) {
    use base64::Engine;
    // Basic auth headers carry `user:password` in base64.
    let encoded: Vec<String> = [PASSWORD, WRONG_PASSWORD]
        .iter()
        .map(|p| base64::engine::general_purpose::STANDARD.encode(format!("svc:{p}")))
        .collect();
    let all = SENTINELS
        .iter()
        .copied()
        .chain(encoded.iter().map(String::as_str));
    for sentinel in all {
        assert!(
            !text.contains(sentinel),
            "{what} contains {sentinel}:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_messages_or_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    // `try_init` also routes the `log` records of reqwest and hyper into the capture.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .unwrap();

    let mut behaviour = Behaviour::default()
        .app("app", SECRET, &["Mail.Read"])
        .user("svc", PASSWORD)
        .mailboxes(&["alice@contoso.com"]);
    behaviour.refresh_tokens.insert(
        REFRESH.into(),
        Grant {
            returns: ROTATED.into(),
            scp: "Mail.Read".into(),
        },
    );
    let fake = FakeExchange::start(behaviour).await;
    let config = OperatorConfig {
        allow_insecure_endpoints: false,
        request_timeout: Duration::from_secs(2),
        ..OperatorConfig::default()
    };
    let client = ExchangeClient::new(&config, Arc::new(Metrics::new())).unwrap();
    let authority = fake.base();
    let trust = exchange_fake::harness::trust_for(&fake);
    let graph = Service::Graph {
        base: format!("{}/v1.0", fake.base()),
        trust: trust.clone(),
    };
    let ews = Service::Ews {
        url: format!("{}/EWS/Exchange.asmx", fake.base()),
        trust,
    };
    let app = |secret: &str| {
        Credential::ClientCredentials(OAuthApp {
            authority: authority.clone(),
            tenant_id: "contoso".into(),
            client_id: "app".into(),
            client_secret: SecretString::from(secret),
            scopes: vec!["https://graph.microsoft.com/.default".into()],
        })
    };
    let refresh = Credential::RefreshToken {
        app: OAuthApp {
            authority: authority.clone(),
            tenant_id: "contoso".into(),
            client_id: "app".into(),
            client_secret: SecretString::from(SECRET),
            scopes: vec!["offline_access".into()],
        },
        refresh_token: SecretString::from(REFRESH),
    };
    let basic = |password: &str| Credential::Basic {
        username: "svc".into(),
        password: SecretString::from(password),
    };
    let probe = |service: &Service, credential: Credential| MailboxProbe {
        provider: "p".into(),
        email: "alice@contoso.com".into(),
        login: "alice@contoso.com".into(),
        service: service.clone(),
        credential,
        via_service_account: true,
        check_calendar: true,
        check_send: true,
        store_rotated: None,
    };

    let mut reports: Vec<String> = Vec::new();
    let probes = [
        probe(&graph, app(SECRET)),
        probe(&graph, app(WRONG_SECRET)),
        probe(&graph, refresh.clone()),
        probe(&ews, basic(PASSWORD)),
        probe(&ews, basic(WRONG_PASSWORD)),
        probe(&ews, app(SECRET)),
    ];
    for p in &probes {
        reports.push(format!("{p:?}"));
        let outcome = client.verify_mailbox(p).await;
        reports.push(format!("{outcome:?}"));
        if let Err(f) = &outcome.mailbox {
            reports.push(f.message.clone());
        }
    }
    // The rotation happened, so the rotated token passed through the client.
    let rotated = client.verify_mailbox(&probes[2]).await;
    assert!(rotated.rotated_refresh_token.is_some());
    reports.push(format!("{rotated:?}"));

    for credential in [app(WRONG_SECRET), basic(WRONG_PASSWORD), refresh] {
        let result = client.authenticate("p", &graph, &credential).await;
        reports.push(format!("{result:?}"));
        let result = client
            .check_provider(&ProviderProbe {
                provider: "p".into(),
                service: ews.clone(),
                credential: Some(credential),
            })
            .await;
        reports.push(format!("{result:?}"));
    }
    // Failure paths with bodies the client must not echo.
    fake.update(|b| b.token_mode = Mode::Malformed);
    let result = client.authenticate("p", &graph, &app("other-secret")).await;
    reports.push(format!("{result:?}"));
    fake.update(|b| {
        b.token_mode = Mode::Normal;
        b.graph_mode = Mode::Hang;
    });
    let result = client.verify_mailbox(&probe(&graph, app(SECRET))).await;
    reports.push(format!("{result:?}"));

    let reports = reports.join("\n");
    assert_clean("failure messages and Debug output", &reports);
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("token request failed") && logs.contains("AADSTS7000215"),
        "the capture works and sees the client's own events:\n{logs}"
    );
    assert_clean("log output", &logs);
    // The fake did receive the secrets, so their absence above means something.
    let received = format!("{:?}", fake.recorded());
    assert!(received.contains(SECRET) && received.contains(REFRESH));
}
