//! The webhook's HTTPS endpoint in-process on 127.0.0.1, with real AdmissionReview v1 JSON
//! over TLS from the operator's own CA, and a certificate swapped while serving.

mod webhook_support;

use std::sync::Arc;

use mailops::webhook::certs::{self, Material, Renewal};
use mailops::webhook::server::{Handler, serve_tls};
use mailops::webhook::tls::{CertSlot, server_config};
use serde_json::{Value, json};
use time::OffsetDateTime;
use webhook_support::*;

struct Served {
    url: String,
    slot: Arc<CertSlot>,
    reviewer: Arc<FakeReviewer>,
    task: tokio::task::JoinHandle<mailops::Result<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn material() -> Material {
    let hosts = certs::hosts("mailops-webhook", "mailops-system", &["127.0.0.1".into()]);
    certs::renew(None, Renewal::All, &hosts, OffsetDateTime::now_utc()).unwrap()
}

async fn serve(material: &Material) -> Served {
    let mut caches = Caches::new();
    caches
        .provider(provider("contoso", &["contoso.com"]))
        .account(account("corp", "contoso", &["support"]))
        .namespace("support")
        .binding(attached(
            account_binding("support", "helpdesk", "helpdesk@contoso.com", "corp"),
            "contoso",
            Some("corp"),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let slot = Arc::new(CertSlot::default());
    slot.install(material).unwrap();
    let reviewer = reviewer(&["alice"]);
    let handler = Arc::new(Handler::new(
        caches.stores.clone(),
        reviewer.clone(),
        OPTIONS,
    ));
    let tls = server_config(slot.clone()).unwrap();
    let task = tokio::spawn(serve_tls(listener, tls, handler, std::future::pending()));
    Served {
        url,
        slot,
        reviewer,
        task,
    }
}

fn client_trusting(ca_bundle: &str) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_bundle.as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .build()
        .unwrap()
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, Value) {
    let response = client
        .post(format!("{url}/validate"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("an HTTPS answer");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

#[tokio::test]
async fn admission_reviews_are_answered_over_https() {
    let m = material();
    let served = serve(&m).await;
    let client = client_trusting(&m.ca_bundle);
    let binding = account_binding("support", "ceo", "ceo@contoso.com", "corp");

    let (status, answer) = post(
        &client,
        &served.url,
        serde_json::to_vec(&review("CREATE", &binding, None, "alice")).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(
        answer["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    let (_, answer) = post(
        &client,
        &served.url,
        serde_json::to_vec(&review("CREATE", &binding, None, "bob")).unwrap(),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], false);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"bob\"") && message.contains("\"corp\""),
        "{message}"
    );
    let asked = served.reviewer.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[1].user.username.as_deref(), Some("bob"));
}

#[tokio::test]
async fn refusals_of_deletion_and_warnings_come_back_over_https() {
    let m = material();
    let served = serve(&m).await;
    let client = client_trusting(&m.ca_bundle);
    let (_, answer) = post(
        &client,
        &served.url,
        serde_json::to_vec(&review("DELETE", &provider("contoso", &[]), None, "admin")).unwrap(),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], false);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("MailboxBinding support/helpdesk")
    );

    let stray = own_binding("support", "x", "x@fabrikam.com", "creds");
    let (_, answer) = post(
        &client,
        &served.url,
        serde_json::to_vec(&review("CREATE", &stray, None, "bob")).unwrap(),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], true);
    assert!(
        answer["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("ProviderNotFound"),
        "{answer}"
    );
}

#[tokio::test]
async fn garbage_gets_an_admission_answer_and_other_requests_an_http_error() {
    let m = material();
    let served = serve(&m).await;
    let client = client_trusting(&m.ca_bundle);
    let (status, answer) = post(&client, &served.url, b"{\"request\": {\"uid\": 42".to_vec()).await;
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["reason"], "InvalidRequest");

    let get = client
        .get(format!("{}/validate", served.url))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 405);
    let elsewhere = client
        .post(format!("{}/mutate", served.url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status().as_u16(), 404);
    let huge = vec![b' '; mailops::webhook::server::MAX_BODY + 1];
    let too_big = client
        .post(format!("{}/validate", served.url))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status().as_u16(), 413);
}

#[tokio::test]
async fn a_rotated_certificate_is_served_from_the_next_connection_on() {
    let first = material();
    let served = serve(&first).await;
    let review_body = serde_json::to_vec(&review(
        "CREATE",
        &own_binding("support", "j", "j@contoso.com", "c"),
        None,
        "bob",
    ))
    .unwrap();
    let (status, _) = post(
        &client_trusting(&first.ca_bundle),
        &served.url,
        review_body.clone(),
    )
    .await;
    assert_eq!(status, 200);

    let second = material();
    served.slot.install(&second).unwrap();
    let old_trust = client_trusting(&first.ca_bundle)
        .post(format!("{}/validate", served.url))
        .body(review_body.clone())
        .send()
        .await;
    assert!(
        old_trust.is_err(),
        "a client trusting only the old CA must fail the handshake"
    );
    let (status, answer) = post(
        &client_trusting(&second.ca_bundle),
        &served.url,
        review_body,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], json!(true));
}
