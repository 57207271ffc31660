//! The operator's HTTP endpoints: `/metrics`, `/healthz`, `/readyz`.

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
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::health::HealthState;
use crate::metrics::Metrics;

/// The content type of the OpenMetrics text format `Metrics::encode` writes.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the classic Prometheus text format, for clients that ask for
/// `text/plain` and not for OpenMetrics.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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

/// Serve the endpoints on an already bound listener until `shutdown` completes. Requests
/// in flight when it does are finished by their own connection tasks.
pub async fn serve_on(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<HealthState>,
    shutdown: impl Future<Output = ()>,
) -> crate::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return Ok(()),
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
        let metrics = metrics.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = respond(&request, &metrics, &health);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
        });
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

/// OpenMetrics (what Prometheus asks for first), or the classic text format for a client
/// that accepts `text/plain` but not OpenMetrics.
fn metrics_response<B>(request: &Request<B>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let accept = request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let classic = accept.contains("text/plain") && !accept.contains("application/openmetrics-text");
    let (body, content_type) = if classic {
        (
            metrics.encode_prometheus_text(),
            PROMETHEUS_TEXT_CONTENT_TYPE,
        )
    } else {
        (metrics.encode(), OPENMETRICS_CONTENT_TYPE)
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
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
