//! The operator in-process, on a Tokio runtime of its own: `kill` stops every task of it
//! at once, at whatever await it is in, and releases nothing (no Lease hand-over, no
//! graceful shutdown), as a crashed process would. Each operator has its own metrics
//! registry and a log of every request it sends to the API server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use http::{Method, Request};
use kube::client::{Body, ClientBuilder};
use mailops::config::OperatorConfig;
use mailops::exchange::MailBackend;
use mailops::exchange::client::ExchangeClient;
use mailops::exchange::fake::FakeBackend;
use mailops::health::HealthState;
use mailops::kube_client::KubeRequestMetricsLayer;
use mailops::metrics::Metrics;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::util::MapRequestLayer;

use super::lag::WatchLag;

/// One request to the API server.
#[derive(Clone, Debug)]
pub struct Sent {
    /// HTTP method.
    pub method: Method,
    /// Path, without the query.
    pub path: String,
    /// When it was sent.
    pub at: Instant,
}

impl Sent {
    /// Anything but a read.
    pub fn is_write(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD)
    }

    /// A request about the leader-election Lease.
    pub fn is_lease(&self) -> bool {
        self.path.starts_with("/apis/coordination.k8s.io/")
    }

    /// A request about a mailops object.
    pub fn is_mailops(&self) -> bool {
        self.path.starts_with("/apis/mailops.dev/")
    }
}

/// Every request one operator sent, in order; tests can wait for one to show up.
#[derive(Clone)]
pub struct RequestLog(Arc<watch::Sender<Vec<Sent>>>);

impl Default for RequestLog {
    fn default() -> Self {
        RequestLog(Arc::new(watch::channel(Vec::new()).0))
    }
}

impl RequestLog {
    fn record(&self, sent: Sent) {
        self.0.send_modify(|log| log.push(sent));
    }

    /// What was sent so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.0.borrow().clone()
    }

    /// The writes sent so far.
    pub fn writes(&self) -> Vec<Sent> {
        self.sent().into_iter().filter(Sent::is_write).collect()
    }

    /// The last request sent that satisfies `pred`.
    pub fn last(&self, pred: impl Fn(&Sent) -> bool) -> Option<Sent> {
        self.0.borrow().iter().rev().find(|s| pred(s)).cloned()
    }

    /// Wait until one request sent satisfies `pred`, for at most `limit`.
    pub async fn wait_for(&self, what: &str, limit: Duration, pred: impl Fn(&Sent) -> bool) {
        let mut seen = self.0.subscribe();
        let found = tokio::time::timeout(limit, seen.wait_for(|log| log.iter().any(&pred)));
        match found.await {
            Ok(Ok(_)) => {}
            _ => panic!("the operator sent no {what} within {limit:?}"),
        }
    }
}

/// Which mail backend the operator talks to.
pub enum Backend {
    /// The in-memory fake (no network).
    Fake(Arc<FakeBackend>),
    /// The real EWS / Graph / Entra ID client, built from the operator's config.
    Exchange,
}

/// A running operator.
pub struct Operator {
    runtime: Option<Runtime>,
    task: JoinHandle<mailops::Result<()>>,
    /// Requests it sent to the API server.
    pub requests: RequestLog,
    /// Its metrics registry.
    pub metrics: Arc<Metrics>,
}

impl Operator {
    /// Start the controllers (`run_controllers`) with `config`, talking to the API server
    /// described by `kube` (which may point at a proxy) and to `backend`.
    pub fn start(config: OperatorConfig, kube: kube::Config, backend: Backend) -> Operator {
        Self::start_lagging(config, kube, backend, WatchLag::none())
    }

    /// The same, with the watches `lag` names handed to the operator late.
    pub fn start_lagging(
        config: OperatorConfig,
        kube: kube::Config,
        backend: Backend,
        lag: WatchLag,
    ) -> Operator {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("operator-{}", config.identity))
            .enable_all()
            .build()
            .expect("a runtime for the operator");
        let requests = RequestLog::default();
        let metrics = Arc::new(Metrics::new());
        let run = run(
            config,
            kube,
            backend,
            lag,
            requests.clone(),
            metrics.clone(),
        );
        // The client is built inside: kube's request buffer spawns its worker on the
        // runtime it is built on, and must die with the operator.
        let task = runtime.spawn(run);
        Operator {
            runtime: Some(runtime),
            task,
            requests,
            metrics,
        }
    }

    /// Stop every task of the operator now, releasing nothing, as a crash would.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Panic, with how it ended, when the operator is no longer running.
    pub fn assert_running(&mut self) {
        if let Some(ended) = (&mut self.task).now_or_never() {
            panic!("the operator stopped: {ended:?}");
        }
        assert!(self.runtime.is_some(), "the operator was killed");
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn run(
    config: OperatorConfig,
    kube: kube::Config,
    backend: Backend,
    lag: WatchLag,
    requests: RequestLog,
    metrics: Arc<Metrics>,
) -> mailops::Result<()> {
    let client = ClientBuilder::try_from(kube)?
        .with_layer(&KubeRequestMetricsLayer::new(metrics.clone()))
        // Each request is logged as it is sent, whatever the answer.
        .with_layer(&MapRequestLayer::new(move |request: Request<Body>| {
            requests.record(Sent {
                method: request.method().clone(),
                path: request.uri().path().to_string(),
                at: Instant::now(),
            });
            request
        }))
        .with_layer(&lag)
        .build();
    let backend: Arc<dyn MailBackend> = match backend {
        Backend::Fake(fake) => fake,
        Backend::Exchange => Arc::new(ExchangeClient::new(&config, metrics.clone())?),
    };
    let health = Arc::new(HealthState::default());
    mailops::controller::run_controllers(
        config,
        client,
        backend,
        metrics,
        health,
        std::future::pending(),
    )
    .await
}

/// The operator settings the tests start from: leader election off, a fixed identity.
pub fn test_config(identity: &str) -> OperatorConfig {
    OperatorConfig {
        leader_election: false,
        identity: identity.to_string(),
        ..OperatorConfig::default()
    }
}
