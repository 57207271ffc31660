//! A replica is Ready only once the webhook's serving certificate is loaded: `serve_on`
//! against a mock API server that has no certificate Secret at first, on tokio's paused
//! clock (the keeper's retry is not waited for in real time).

mod webhook_support;

use std::sync::Arc;

use http::{Request, Response};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::client::Body;
use mailops::config::{OperatorConfig, WebhookCertificates, WebhookConfig};
use mailops::health::HealthState;
use mailops::webhook::keeper::secret_data;
use serde_json::json;
use webhook_support::https::material;
use webhook_support::*;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const SECRET_PATH: &str = "/api/v1/namespaces/mailops-test/secrets/webhook-tls";

/// Wait for the next request, check it reads the certificate Secret, and answer it.
async fn answer_secret_read(handle: &mut Handle, status: u16, body: serde_json::Value) {
    let (request, send) = handle.next_request().await.expect("a request");
    assert_eq!(request.method(), http::Method::GET);
    assert_eq!(request.uri().path(), SECRET_PATH);
    let response = Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    send.send_response(response);
}

#[tokio::test(start_paused = true)]
async fn readiness_waits_for_the_serving_certificate() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut caches = Caches::new();
    caches.listed();
    let health = Arc::new(HealthState::with_webhook());
    health.set_caches_synced();
    let config = OperatorConfig {
        webhook: WebhookConfig {
            certificates: WebhookCertificates::CertManager,
            namespace: "mailops-test".into(),
            secret_name: "webhook-tls".into(),
            ..WebhookConfig::default()
        },
        ..OperatorConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stores, served_health) = (caches.stores.clone(), health.clone());
    let server = tokio::spawn(async move {
        mailops::webhook::serve_on(listener, &config, client, stores, served_health).await
    });

    let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "reason": "NotFound", "code": 404});
    answer_secret_read(&mut handle, 404, not_found).await;
    // The keeper tries again later; until a certificate is in place the pod is not Ready.
    let (request, send) = handle.next_request().await.expect("the keeper's retry");
    assert!(!health.ready());
    assert_eq!(
        health.not_ready_because(),
        Some("webhook serving certificate not loaded")
    );
    assert_eq!(request.uri().path(), SECRET_PATH);
    let mut secret = Secret::default();
    secret.metadata.name = Some("webhook-tls".into());
    secret.data = Some(secret_data(&material()));
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(&secret).unwrap()))
            .unwrap(),
    );
    // The keeper's next look comes once the webhook serves: Ready by then.
    let (request, _send) = handle.next_request().await.expect("the keeper's next look");
    assert_eq!(request.uri().path(), SECRET_PATH);
    assert!(health.ready());
    assert!(!server.is_finished());
    server.abort();
}
