//! The HTTP endpoints, served in-process on a loopback port by the same `serve_on` the
//! binary runs; and the limits that keep slow clients from holding the port.

mod raw_http;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailops::health::HealthState;
use mailops::http::{Limits, serve_with_limits};
use mailops::metrics::Metrics;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

struct Server {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<HealthState>,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<mailops::Result<()>>,
}

impl Server {
    async fn start() -> Server {
        Server::start_with(Limits::default()).await
    }

    async fn start_with(limits: Limits) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(HealthState::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_with_limits(
            listener,
            metrics.clone(),
            health.clone(),
            limits,
            async {
                let _ = stopped.await;
            },
        ));
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Server {
            addr,
            metrics,
            health,
            client,
            stop: Some(stop),
            task,
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .unwrap()
    }

    /// Stop the server and check that `serve_on` returned cleanly.
    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn metrics_answer_prometheus_in_openmetrics_with_recorded_samples() {
    let server = Server::start().await;
    server
        .metrics
        .record_reconcile("MailboxBinding", "success", Duration::from_millis(30));
    server.metrics.record_kube_request("patch");
    server.metrics.record_token_request("InvalidCredentials");
    server.metrics.record_probe("ews", "Verified");
    server.metrics.set_objects("EmailProvider", "True", 2);
    server.metrics.verified("MailboxBinding", 1_764_892_800);

    let response = server
        .client
        .get(format!("http://{}/metrics", server.addr))
        .header("accept", raw_http::PROMETHEUS_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let body = response.text().await.unwrap();
    for sample in [
        r#"mailops_reconciles_total{kind="MailboxBinding",result="success"} 1"#,
        r#"mailops_reconcile_duration_seconds_count{kind="MailboxBinding"} 1"#,
        r#"mailops_reconcile_duration_seconds_bucket{le="0.05",kind="MailboxBinding"} 1"#,
        r#"mailops_kube_requests_total{verb="patch"} 1"#,
        r#"mailops_token_requests_total{result="InvalidCredentials"} 1"#,
        r#"mailops_exchange_probes_total{service="ews",result="Verified"} 1"#,
        r#"mailops_objects{kind="EmailProvider",ready="True"} 2"#,
        r#"mailops_last_verification_timestamp_seconds{kind="MailboxBinding"} 1764892800"#,
    ] {
        assert!(body.contains(sample), "missing {sample} in\n{body}");
    }
    assert!(body.ends_with("# EOF\n"), "{body}");

    assert_every_family_is_documented(&body);
    server.stop().await;
}

/// A Prometheus parser reads `body`, and every family in it is one the README explains.
fn assert_every_family_is_documented(body: &str) {
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("the exposition parses as Prometheus text");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let documented: std::collections::BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `mailops_"))
        .filter_map(|l| l.split('`').next())
        .map(|n| format!("mailops_{n}"))
        .collect();
    let scraped: std::collections::BTreeSet<String> = scrape
        .samples
        .iter()
        .map(|s| {
            let family = s
                .metric
                .trim_end_matches("_bucket")
                .trim_end_matches("_count")
                .trim_end_matches("_sum");
            family.to_string()
        })
        .collect();
    assert_eq!(
        scraped, documented,
        "metrics served vs. metrics in the README's table"
    );
}

#[tokio::test]
async fn healthz_answers_ok_while_serving() {
    let server = Server::start().await;
    let response = server.get("/healthz").await;
    assert_eq!(response.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn healthz_fails_once_the_leader_lease_is_lost() {
    let server = Server::start().await;
    server.health.set_lease_lost();
    let response = server.get("/healthz").await;
    assert_eq!(response.status(), 503);
    assert!(response.text().await.unwrap().contains("Lease"));
    server.stop().await;
}

#[tokio::test]
async fn readyz_is_unavailable_until_caches_sync() {
    let server = Server::start().await;
    assert_eq!(server.get("/readyz").await.status(), 503);
    server.health.set_caches_synced();
    assert_eq!(server.get("/readyz").await.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_not_found() {
    let server = Server::start().await;
    assert_eq!(server.get("/").await.status(), 404);
    assert_eq!(server.get("/metrics/extra").await.status(), 404);
    server.stop().await;
}

#[tokio::test]
async fn serve_reports_an_address_it_cannot_bind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let result = mailops::http::serve(
        addr,
        Arc::new(Metrics::new()),
        Arc::new(HealthState::default()),
    )
    .await;
    let error = result.expect_err("the port is taken");
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
}

#[tokio::test]
async fn metrics_answer_other_clients_in_the_classic_format() {
    let server = Server::start().await;
    server.metrics.record_kube_request("patch");
    // reqwest, like curl, sends `Accept: */*`.
    let response = server.get("/metrics").await;
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = response.text().await.unwrap();
    assert!(
        body.contains("# TYPE mailops_kube_requests_total counter\n"),
        "{body}"
    );
    assert!(!body.contains("# EOF"), "{body}");
    server.stop().await;
}

/// A connection that sent the start of a request and then nothing more.
async fn slow_client(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    stream
}

#[tokio::test]
async fn slow_clients_holding_every_slot_do_not_starve_the_liveness_probe() {
    // Timeouts far beyond the test: only the cap can free a slot here.
    let limits = Limits {
        max_connections: 4,
        header_read_timeout: Duration::from_secs(600),
        connection_timeout: Duration::from_secs(600),
    };
    let server = Server::start_with(limits).await;
    let mut slow = Vec::new();
    for _ in 0..limits.max_connections {
        slow.push(slow_client(server.addr).await);
    }
    // The probe is answered at once, as the kubelet's is...
    let probe = raw_http::get(
        server.addr,
        "/healthz",
        &[("User-Agent", "kube-probe/1.36")],
    )
    .await;
    assert_eq!(probe.status, 200, "{probe:?}");
    assert_eq!(probe.body, "ok\n");
    // ...because the oldest slow client made room for it.
    let oldest = raw_http::read_to_close(&mut slow[0]).await;
    assert!(oldest.is_empty(), "{}", String::from_utf8_lossy(&oldest));
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let server = Server::start_with(Limits {
        header_read_timeout: Duration::from_millis(200),
        ..Limits::default()
    })
    .await;
    let mut stream = slow_client(server.addr).await;
    // Closed by the server, without an answer, once the header timeout passed.
    let answer = raw_http::read_to_close(&mut stream).await;
    assert!(
        answer.is_empty() || String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_connection_serves_one_request_then_closes() {
    let server = Server::start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // Two pipelined requests: only the first is answered.
    stream
        .write_all(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = String::from_utf8(raw_http::read_to_close(&mut stream).await).unwrap();
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_unread_request_body_does_not_hold_the_connection() {
    let server = Server::start_with(Limits {
        connection_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // A body announced and never sent: answered (405, the body is never read) and closed.
    stream
        .write_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc")
        .await
        .unwrap();
    let answer = String::from_utf8(raw_http::read_to_close(&mut stream).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    server.stop().await;
}
