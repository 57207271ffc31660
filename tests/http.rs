//! The HTTP endpoints, served in-process on a loopback port by the same `serve_on` the
//! binary runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailops::health::HealthState;
use mailops::http::serve_on;
use mailops::metrics::Metrics;
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(HealthState::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_on(listener, metrics.clone(), health.clone(), async {
            let _ = stopped.await;
        }));
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
async fn metrics_are_openmetrics_with_recorded_samples() {
    let server = Server::start().await;
    server
        .metrics
        .record_reconcile("MailboxBinding", "success", Duration::from_millis(30));
    server.metrics.record_kube_request("patch");
    server.metrics.record_token_request("InvalidCredentials");
    server.metrics.record_probe("ews", "Verified");
    server.metrics.set_objects("EmailProvider", "True", 2);

    let response = server.get("/metrics").await;
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
    ] {
        assert!(body.contains(sample), "missing {sample} in\n{body}");
    }
    assert!(body.ends_with("# EOF\n"), "{body}");

    // A Prometheus parser reads it, and every family in it is one the README explains.
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
    server.stop().await;
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
