//! `/metrics` as Prometheus's own linter sees it: the endpoint is served in-process by the
//! binary's `serve_on`, scraped over HTTP asking for `text/plain` (promtool reads only the
//! classic text format), and the body piped to `promtool check metrics` (Debian's
//! `prometheus` package); the OpenMetrics answer Prometheus asks for holds the same samples. Without promtool the test is skipped, except under
//! `CI=true`, where it fails.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use mailops::health::HealthState;
use mailops::http::serve_on;
use mailops::metrics::Metrics;
use tokio::sync::oneshot;

/// What curl and promtool-minded scrapers ask for.
const CURL: &str = "text/plain;version=0.0.4";
/// Prometheus's own Accept header.
const PROMETHEUS: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// promtool, or `None` when it is missing outside CI (a missing tool fails CI).
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some("promtool");
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "promtool is missing (apt-get install prometheus); CI must run this test"
    );
    eprintln!("promtool is missing: skipped (set CI=true to make this a failure)");
    None
}

async fn scrape(metrics: Arc<Metrics>, health: Arc<HealthState>, accept: &str) -> (String, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_on(listener, metrics, health, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let response = client
        .get(format!("http://{addr}/metrics"))
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let body = response.text().await.unwrap();
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    (content_type, body)
}

/// What `promtool check metrics` says about `body`: (success, its output).
fn check_metrics(promtool: &str, body: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.trim().is_empty(), text)
}

/// Every family with a sample, as the operator records them.
fn busy_metrics() -> Arc<Metrics> {
    let metrics = Arc::new(Metrics::new());
    metrics.record_reconcile("MailboxBinding", "success", Duration::from_millis(30));
    metrics.record_reconcile("EmailProvider", "InUse", Duration::from_millis(2));
    metrics.record_kube_request("patch");
    metrics.record_token_request("InvalidCredentials");
    metrics.record_probe("ews", "Throttled");
    for ready in ["True", "False", "Unknown"] {
        metrics.set_objects("MailboxBinding", ready, 1);
    }
    metrics
}

#[tokio::test]
async fn promtool_finds_no_problem_in_the_served_metrics() {
    let Some(promtool) = promtool() else { return };
    let health = Arc::new(HealthState::default());
    health.set_leader(true);
    let metrics = busy_metrics();
    let (content_type, body) = scrape(metrics.clone(), health.clone(), CURL).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let (content_type, openmetrics) = scrape(metrics, health, PROMETHEUS).await;
    assert!(content_type.starts_with("application/openmetrics-text"));
    // The same samples either way.
    let samples = |text: &str| -> Vec<String> {
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(samples(&body), samples(&openmetrics));
    for family in [
        "mailops_reconciles_total{",
        "mailops_reconcile_duration_seconds_bucket{",
        "mailops_kube_requests_total{",
        "mailops_token_requests_total{",
        "mailops_exchange_probes_total{",
        "mailops_objects{",
        "mailops_leader 1",
    ] {
        assert!(body.contains(family), "{family} not served:\n{body}");
    }
    let (ok, said) = check_metrics(promtool, &body);
    assert!(ok, "promtool check metrics:\n{said}\non:\n{body}");
}

#[tokio::test]
async fn promtool_lints_a_fresh_replica_too() {
    let Some(promtool) = promtool() else { return };
    let (_, body) = scrape(Arc::new(Metrics::new()), Arc::default(), CURL).await;
    assert!(body.contains("mailops_leader 0"), "{body}");
    let (ok, said) = check_metrics(promtool, &body);
    assert!(ok, "promtool check metrics:\n{said}\non:\n{body}");
}

#[test]
fn the_linter_can_fail() {
    // A counter without `_total` and a metric without HELP: promtool must complain, or the
    // tests above prove nothing.
    let Some(promtool) = promtool() else { return };
    let bad = "# TYPE bad_requests counter\nbad_requests 1\n";
    let (ok, said) = check_metrics(promtool, bad);
    assert!(!ok, "promtool accepted a bad exposition: {said}");
}
