//! The operator's HTTP endpoints: `/metrics`, `/healthz`, `/readyz`.
//!
//! Plain HTTP on a port every pod in the cluster can reach, and the kubelet's liveness
//! probe must get through: one request per connection, a deadline for the headers and for
//! the whole connection, and a cap on connections held (see [`connections`]).

mod connections;
pub mod negotiate;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use crate::health::HealthState;
use crate::metrics::Metrics;
use connections::Connections;
use negotiate::Format;

/// The content type of the OpenMetrics text format `Metrics::encode` writes.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the classic Prometheus text format, what `/metrics` answers unless
/// the client asks for OpenMetrics.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long clients may hold the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most connections held at once; at the cap the oldest is closed for the new one.
    pub max_connections: usize,
    /// Time from accepting a connection to the end of its request's headers.
    pub header_read_timeout: Duration,
    /// Time for a whole connection: its one request and the answer.
    pub connection_timeout: Duration,
}

impl Default for Limits {
    /// Probes and scrapes send a few hundred bytes at once and read a few kilobytes: a
    /// second would do; 5 s and 10 s leave room for a loaded node. The kubelet's probe
    /// (2 s timeout) does not wait for a slot: its connection closes the oldest one.
    fn default() -> Self {
        Limits {
            max_connections: 64,
            header_read_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(10),
        }
    }
}

/// Serve the endpoints on `addr` until the future is dropped (the operator aborts it on
/// shutdown) or the listener cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<HealthState>,
) -> crate::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| crate::Error::Config(format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    serve_on(listener, metrics, health, std::future::pending()).await
}

/// Serve the endpoints on an already bound listener with the default [`Limits`] until
/// `shutdown` completes.
pub async fn serve_on(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<HealthState>,
    shutdown: impl Future<Output = ()>,
) -> crate::Result<()> {
    serve_with_limits(listener, metrics, health, Limits::default(), shutdown).await
}

/// Serve the endpoints on an already bound listener until `shutdown` completes. Requests
/// in flight when it does are finished by their own connection tasks.
pub async fn serve_with_limits(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<HealthState>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> crate::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = Connections::new(limits.max_connections);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Running out of file descriptors passes; do not spin while it lasts.
                tracing::warn!(%error, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        connections.admit(connection(stream, metrics.clone(), health.clone(), limits));
    }
    connections.detach();
    Ok(())
}

/// One connection: one request and its answer, within the limits.
async fn connection(
    stream: TcpStream,
    metrics: Arc<Metrics>,
    health: Arc<HealthState>,
    limits: Limits,
) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = respond(&request, &metrics, &health);
        async move { Ok::<_, Infallible>(response) }
    });
    let served = http1::Builder::new()
        // No idle kept-alive connections holding slots; scrapers reconnect cheaply.
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(limits.connection_timeout, served).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(%error, "HTTP connection ended with an error"),
        Err(_) => tracing::debug!("HTTP connection closed: it outlasted its deadline"),
    }
}

/// The answer to one request: pure apart from reading the shared state.
fn respond<B>(
    request: &Request<B>,
    metrics: &Metrics,
    health: &HealthState,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/metrics" => {
            // The leader gauge follows the health state at each scrape, so whatever
            // records leadership there (the runner) needs no metrics handle.
            metrics.set_leader(health.is_leader());
            metrics_response(request, metrics)
        }
        // Alive while this loop answers; a wedged runtime stops answering and is restarted.
        "/healthz" if health.alive() => text(StatusCode::OK, "ok\n"),
        "/healthz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy: lost the leader Lease\n",
        ),
        // Ready once the caches are synced; a standby replica is ready too, so a rollout
        // does not wait for leadership.
        _ if health.ready() => text(StatusCode::OK, "ok\n"),
        _ => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: caches not synced\n",
        ),
    }
}

/// The classic text format, or OpenMetrics for a client that asks for it (Prometheus
/// does); `Vary: Accept`, as the answer depends on it.
fn metrics_response<B>(request: &Request<B>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let accept: Vec<&str> = request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let (body, content_type) = match negotiate::format(&accept) {
        Format::OpenMetrics => (metrics.encode(), OPENMETRICS_CONTENT_TYPE),
        Format::Classic => (
            metrics.encode_prometheus_text(),
            PROMETHEUS_TEXT_CONTENT_TYPE,
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    headers.insert(header::VARY, header::HeaderValue::from_static("accept"));
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap()
    }

    #[test]
    fn known_paths_refuse_other_methods() {
        let response = respond(
            &request(Method::POST, "/metrics"),
            &Metrics::new(),
            &HealthState::default(),
        );
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET, HEAD");
    }

    #[test]
    fn readiness_ignores_leadership() {
        let health = HealthState::default();
        health.set_leader(true);
        let get = request(Method::GET, "/readyz");
        assert_eq!(
            respond(&get, &Metrics::new(), &health).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        health.set_leader(false);
        health.set_caches_synced();
        assert_eq!(
            respond(&get, &Metrics::new(), &health).status(),
            StatusCode::OK
        );
    }

    #[test]
    fn metrics_follow_leadership_at_each_scrape() {
        let metrics = Metrics::new();
        let health = HealthState::default();
        let get = request(Method::GET, "/metrics");
        let _ = respond(&get, &metrics, &health);
        assert!(metrics.encode().contains("mailops_leader 0"));
        health.set_leader(true);
        let _ = respond(&get, &metrics, &health);
        assert!(metrics.encode().contains("mailops_leader 1"));
    }
}
