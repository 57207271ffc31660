//! The webhook's HTTPS endpoint in-process on 127.0.0.1, with real AdmissionReview v1 JSON
//! over TLS from the operator's own CA, a certificate swapped while serving, and bodies
//! past the bound refused without being read whole.

mod webhook_support;

use mailops::webhook::server::MAX_BODY;
use mailops::webhook::tls::ClientAuth;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use webhook_support::https::*;
use webhook_support::*;

async fn serve(material: &mailops::webhook::certs::Material) -> Served {
    webhook_support::https::serve(material, &ClientAuth::Anyone).await
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
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("1 MailboxBinding(s)") && !message.contains("support/helpdesk"),
        "{message}"
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

/// The status line of the answer on a raw connection.
async fn status_line(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n") {
        let mut byte = [0u8];
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).trim().to_string()
}

#[tokio::test]
async fn a_review_at_the_bound_is_answered() {
    let m = material();
    let served = serve(&m).await;
    let mut body = serde_json::to_vec(&review(
        "CREATE",
        &own_binding("support", "j", "j@contoso.com", "c"),
        None,
        "bob",
    ))
    .unwrap();
    body.resize(MAX_BODY, b' ');
    let (status, answer) = post(&client_trusting(&m.ca_bundle), &served.url, body).await;
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], true);
}

#[tokio::test]
async fn a_content_length_over_the_bound_is_answered_413_before_any_body_is_sent() {
    let m = material();
    let served = serve(&m).await;
    let mut stream = tls_connect(served.port, &m.ca_bundle).await;
    // Only the headers: a server waiting for the body would answer 408 after IO_TIMEOUT.
    let head = format!(
        "POST /validate HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        MAX_BODY + 1
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    assert_eq!(
        status_line(&mut stream).await,
        "HTTP/1.1 413 Payload Too Large"
    );
    assert!(served.reviewer.asked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_chunked_review_that_never_ends_is_cut_at_the_bound() {
    let m = material();
    let served = serve(&m).await;
    let mut stream = tls_connect(served.port, &m.ca_bundle).await;
    let head = "POST /validate HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    // The bound in full chunks, one byte more, then nothing and no last chunk: a server
    // that read to the end would never answer (408 after IO_TIMEOUT). The extra byte
    // goes in a write of its own, so the server has read all that was sent when it
    // answers and hangs up (unread bytes would make its close a reset).
    let chunk = format!("4000\r\n{}\r\n", " ".repeat(0x4000));
    for _ in 0..MAX_BODY / 0x4000 {
        stream.write_all(chunk.as_bytes()).await.unwrap();
    }
    let rest = MAX_BODY % 0x4000;
    if rest > 0 {
        let chunk = format!("{rest:x}\r\n{}\r\n", " ".repeat(rest));
        stream.write_all(chunk.as_bytes()).await.unwrap();
    }
    stream.flush().await.unwrap();
    stream.write_all(b"1\r\n \r\n").await.unwrap();
    stream.flush().await.unwrap();
    assert_eq!(
        status_line(&mut stream).await,
        "HTTP/1.1 413 Payload Too Large"
    );
    assert!(served.reviewer.asked.lock().unwrap().is_empty());
}
