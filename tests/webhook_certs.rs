//! Certificate rotation against a mock API server: an expiring serving certificate (or
//! CA) is replaced in the Secret, the `caBundle` of the webhook configuration is patched,
//! and nothing is written while all is current.

mod mock_api;

use base64::Engine;
use mailops::config::WebhookConfig;
use mailops::webhook::certs::{self, Material, Renewal, pem_certificates};
use mailops::webhook::keeper::{Keeper, secret_data};
use mock_api::*;
use time::OffsetDateTime;

const SECRET_PATH: &str = "/api/v1/namespaces/mailops-system/secrets/mailops-webhook-tls";
const VWC_PATH: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/mailops";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn unb64(v: &Value) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("base64 text"))
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

fn config() -> WebhookConfig {
    WebhookConfig::default()
}

fn hosts() -> Vec<String> {
    let c = config();
    certs::hosts(&c.service_name, &c.namespace, &c.extra_hosts)
}

/// Material issued `age` ago: CA and serving certificate with their usual lifetimes.
fn issued_ago(age: time::Duration) -> Material {
    certs::renew(
        None,
        Renewal::All,
        &hosts(),
        OffsetDateTime::now_utc() - age,
    )
    .unwrap()
}

fn secret_json(m: &Material) -> Value {
    let data: serde_json::Map<String, Value> = secret_data(m)
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                json!(base64::engine::general_purpose::STANDARD.encode(v.0)),
            )
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": "mailops-webhook-tls", "namespace": "mailops-system", "resourceVersion": "7"},
           "data": data})
}

fn vwc_json(bundle: &str) -> Value {
    let hook = |name: &str| {
        json!({
        "name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
        "clientConfig": {"service": {"namespace": "mailops-system", "name": "mailops-webhook", "path": "/validate"},
                         "caBundle": b64(bundle)}})
    };
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
           "metadata": {"name": "mailops", "resourceVersion": "3"},
           "webhooks": [hook("use.mailops.dev"), hook("warnings.mailops.dev")]})
}

fn client_and_handle() -> (Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

#[tokio::test]
async fn an_expiring_serving_certificate_is_replaced_and_the_ca_bundle_patched() {
    let old = issued_ago(certs::SERVING_LIFETIME - time::Duration::days(5));
    let (client, handle) = client_and_handle();
    let (old_ca, old_cert) = (old.ca_bundle.clone(), old.cert.clone());
    let (expect_ca, expect_bundle) = (old.ca_bundle.clone(), b64(&old.ca_bundle));
    let verifier = Verifier::start(
        handle,
        vec![
            step(Method::GET, SECRET_PATH, |_, _| {}, secret_json(&old)),
            step(
                Method::PUT,
                SECRET_PATH,
                move |_, body| {
                    assert_eq!(
                        body["metadata"]["resourceVersion"], "7",
                        "replaced at the version read"
                    );
                    assert_eq!(unb64(&body["data"]["ca.crt"]), old_ca, "same CA");
                    assert_ne!(
                        unb64(&body["data"]["tls.crt"]),
                        old_cert,
                        "a new serving certificate"
                    );
                },
                secret_json(&old),
            ),
            // The configuration still trusts something else (e.g. installed by hand).
            step(Method::GET, VWC_PATH, |_, _| {}, vwc_json("stale")),
            step(
                Method::PUT,
                VWC_PATH,
                move |_, body| {
                    assert_eq!(body["metadata"]["resourceVersion"], "3");
                    for hook in body["webhooks"].as_array().unwrap() {
                        assert_eq!(hook["clientConfig"]["caBundle"], expect_bundle.as_str());
                    }
                },
                vwc_json(&expect_ca),
            ),
        ],
    );
    let material = Keeper::new(client, &config())
        .refresh(OffsetDateTime::now_utc())
        .await
        .unwrap();
    verifier.done().await;
    assert_ne!(material.cert, old.cert);
    assert_eq!(
        certs::renewal(Some(&material), &hosts(), OffsetDateTime::now_utc()),
        Renewal::Keep
    );
}

#[tokio::test]
async fn an_expiring_ca_is_replaced_and_both_cas_go_into_the_ca_bundle() {
    let old = issued_ago(certs::CA_LIFETIME - time::Duration::days(30));
    let (client, handle) = client_and_handle();
    let old_ca = pem_certificates(&old.ca_bundle).remove(0);
    let written = Arc::new(Mutex::new(String::new()));
    let seen = written.clone();
    let check_bundle = move |_: &str, body: &Value| {
        let bundle = unb64(&body["webhooks"][0]["clientConfig"]["caBundle"]);
        let cas = pem_certificates(&bundle);
        assert_eq!(cas.len(), 2, "new and old CA");
        assert_eq!(cas[1], old_ca);
        assert_eq!(
            bundle,
            *seen.lock().unwrap(),
            "the bundle written to the Secret"
        );
    };
    let verifier = Verifier::start(
        handle,
        vec![
            step(Method::GET, SECRET_PATH, |_, _| {}, secret_json(&old)),
            step(
                Method::PUT,
                SECRET_PATH,
                move |_, body| {
                    *written.lock().unwrap() = unb64(&body["data"]["ca.crt"]);
                },
                secret_json(&old),
            ),
            step(Method::GET, VWC_PATH, |_, _| {}, vwc_json(&old.ca_bundle)),
            step(
                Method::PUT,
                VWC_PATH,
                check_bundle,
                vwc_json(&old.ca_bundle),
            ),
        ],
    );
    let material = Keeper::new(client, &config())
        .refresh(OffsetDateTime::now_utc())
        .await
        .unwrap();
    verifier.done().await;
    assert_ne!(material.ca_key, old.ca_key);
}

#[tokio::test]
async fn current_certificates_and_bundle_cause_no_write() {
    let current = issued_ago(time::Duration::days(1));
    let (client, handle) = client_and_handle();
    let verifier = Verifier::start(
        handle,
        vec![
            step(Method::GET, SECRET_PATH, |_, _| {}, secret_json(&current)),
            step(
                Method::GET,
                VWC_PATH,
                |_, _| {},
                vwc_json(&current.ca_bundle),
            ),
        ],
    );
    let material = Keeper::new(client, &config())
        .refresh(OffsetDateTime::now_utc())
        .await
        .unwrap();
    verifier.done().await;
    assert_eq!(material, current);
}

#[tokio::test]
async fn a_missing_secret_is_created_with_a_new_ca() {
    let (client, handle) = client_and_handle();
    let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404});
    let mut missing = step(Method::GET, SECRET_PATH, |_, _| {}, not_found.clone());
    missing.status = 404;
    let mut no_vwc = step(Method::GET, VWC_PATH, |_, _| {}, not_found);
    no_vwc.status = 404;
    let verifier = Verifier::start(
        handle,
        vec![
            missing,
            step(
                Method::POST,
                "/api/v1/namespaces/mailops-system/secrets",
                |_, body| {
                    assert_eq!(body["metadata"]["name"], "mailops-webhook-tls");
                    for key in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
                        assert!(body["data"][key].is_string(), "{key}");
                    }
                },
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mailops-webhook-tls"}}),
            ),
            no_vwc,
        ],
    );
    Keeper::new(client, &config())
        .refresh(OffsetDateTime::now_utc())
        .await
        .unwrap();
    verifier.done().await;
}
