//! Client authentication of the API server: with a client CA configured, the webhook's
//! TLS requires a certificate from it (and, when names are given, one naming the API
//! server); anything else is refused at the handshake and never reaches the handler.

mod webhook_support;

use mailops::webhook::tls::{ClientAuth, client_names};
use rcgen::ExtendedKeyUsagePurpose::{ClientAuth as ClientUsage, ServerAuth};
use webhook_support::https::*;
use webhook_support::*;

const API_SERVER: &str = "kube-apiserver-webhook-client";

fn body() -> Vec<u8> {
    serde_json::to_vec(&review(
        "CREATE",
        &account_binding("support", "ceo", "ceo@contoso.com", "corp"),
        None,
        "alice",
    ))
    .unwrap()
}

/// Whether a request with `identity` is answered; the error text when not.
async fn answered(served: &Served, ca_bundle: &str, identity: Option<&str>) -> Result<u16, String> {
    client(ca_bundle, identity)
        .post(format!("{}/validate", served.url))
        .body(body())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test]
async fn with_a_client_ca_only_its_named_client_is_served() {
    let m = material();
    let ca = client_ca();
    let auth = ClientAuth::from_pem(&ca.0, vec![API_SERVER.into()]).unwrap();
    let served = serve(&m, &auth).await;

    let api_server = signed_identity(&ca, API_SERVER, ClientUsage);
    assert_eq!(
        answered(&served, &m.ca_bundle, Some(&api_server)).await,
        Ok(200)
    );
    assert_eq!(served.reviewer.asked.lock().unwrap().len(), 1);

    let refused = [
        ("no certificate", None),
        (
            "another name",
            Some(signed_identity(&ca, "mallory", ClientUsage)),
        ),
        (
            "another CA",
            Some(signed_identity(&client_ca(), API_SERVER, ClientUsage)),
        ),
        (
            "not for clients",
            Some(signed_identity(&ca, API_SERVER, ServerAuth)),
        ),
    ];
    for (what, identity) in refused {
        let result = answered(&served, &m.ca_bundle, identity.as_deref()).await;
        assert!(result.is_err(), "{what}: {result:?}");
    }
    assert_eq!(
        served.reviewer.asked.lock().unwrap().len(),
        1,
        "no refused client reached the handler"
    );
}

#[tokio::test]
async fn without_names_any_certificate_from_the_client_ca_is_served() {
    let m = material();
    let ca = client_ca();
    let served = serve(&m, &ClientAuth::from_pem(&ca.0, Vec::new()).unwrap()).await;
    let anyone = signed_identity(&ca, "whoever", ClientUsage);
    assert_eq!(
        answered(&served, &m.ca_bundle, Some(&anyone)).await,
        Ok(200)
    );
    assert!(answered(&served, &m.ca_bundle, None).await.is_err());
}

#[tokio::test]
async fn without_a_client_ca_no_certificate_is_asked_for() {
    let m = material();
    let served = serve(&m, &ClientAuth::Anyone).await;
    assert_eq!(answered(&served, &m.ca_bundle, None).await, Ok(200));
}

#[test]
fn a_client_ca_file_without_a_certificate_is_a_configuration_error() {
    let error = ClientAuth::from_pem("not PEM", Vec::new()).unwrap_err();
    assert!(error.to_string().contains("webhook client CA"), "{error}");
    let error =
        ClientAuth::from_file(std::path::Path::new("/nonexistent/ca.crt"), Vec::new()).unwrap_err();
    assert!(error.to_string().contains("/nonexistent/ca.crt"), "{error}");
}

#[test]
fn a_client_certificate_is_named_by_its_common_name() {
    let identity = signed_identity(&client_ca(), API_SERVER, ClientUsage);
    assert_eq!(client_names(&identity_certificate(&identity)), [API_SERVER]);
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    run: mailops::config::RunArgs,
}

#[test]
fn the_flags_reach_the_webhook_configuration() {
    use clap::Parser;
    let cli = Cli::try_parse_from([
        "mailops",
        "--webhook-client-ca-file",
        "/etc/mailops/webhook-client-ca/ca.crt",
        "--webhook-client-name",
        API_SERVER,
        "--webhook-max-connections",
        "0",
    ])
    .unwrap();
    let config = mailops::config::OperatorConfig::from(&cli.run).webhook;
    assert_eq!(
        config.client_ca_file.as_deref(),
        Some(std::path::Path::new(
            "/etc/mailops/webhook-client-ca/ca.crt"
        ))
    );
    assert_eq!(config.client_names, [API_SERVER]);
    assert_eq!(config.max_connections, 1, "never zero");
    let defaults =
        mailops::config::OperatorConfig::from(&Cli::try_parse_from(["mailops"]).unwrap().run);
    assert_eq!(defaults.webhook.client_ca_file, None);
    assert_eq!(defaults.webhook.max_connections, 16);
    let names_alone = Cli::try_parse_from(["mailops", "--webhook-client-name", API_SERVER]);
    assert!(names_alone.is_err(), "a client name needs the client CA");
}
