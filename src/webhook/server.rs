//! The webhook's HTTPS endpoint: `POST /validate` with an AdmissionReview v1, answered by
//! the pure decision after the SubjectAccessReview it may need. Any body gets an answer.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kube::core::DynamicObject;
use kube::core::admission::AdmissionReview;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::decision::{Options, decide, malformed, parse_review, use_check};
use super::sar::AccessReviewer;
use crate::cache::Stores;

/// The one path the webhook configuration points at.
pub const PATH: &str = "/validate";
/// Largest request body read: an object and its old version, each at most what etcd
/// stores (1.5 MiB), with room to spare.
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// A TLS handshake or a request body taking longer than this is dropped.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers AdmissionReviews from the caches and an access reviewer.
pub struct Handler {
    stores: Stores,
    reviewer: Arc<dyn AccessReviewer>,
    options: Options,
}

impl Handler {
    /// A handler over the controllers' caches.
    pub fn new(stores: Stores, reviewer: Arc<dyn AccessReviewer>, options: Options) -> Self {
        Handler {
            stores,
            reviewer,
            options,
        }
    }

    /// The AdmissionReview answering `body`, whatever it holds.
    pub async fn answer(&self, body: &[u8]) -> AdmissionReview<DynamicObject> {
        let request = match parse_review(body) {
            Ok(request) => request,
            Err(problem) => {
                tracing::warn!("refused an unreadable AdmissionReview");
                return malformed(body, &problem);
            }
        };
        let access = match use_check(&request) {
            Ok(Some(check)) => Some(self.reviewer.review(&check).await),
            _ => None,
        };
        let response = decide(&request, access.as_ref(), &self.stores, &self.options);
        tracing::info!(
            uid = %request.uid,
            operation = ?request.operation,
            kind = %request.kind.kind,
            namespace = request.namespace.as_deref().unwrap_or(""),
            name = %request.name,
            user = request.user_info.username.as_deref().unwrap_or(""),
            allowed = response.allowed,
            warnings = response.warnings.as_ref().map_or(0, Vec::len),
            "admission review answered"
        );
        response.into_review()
    }
}

/// Serve HTTPS on `listener` until `shutdown` completes.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    handler: Arc<Handler>,
    shutdown: impl Future<Output = ()>,
) -> crate::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a webhook connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(IO_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "webhook TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = service_fn(move |request: Request<Incoming>| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(respond(request, &handler).await) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "webhook connection ended with an error");
            }
        });
    }
}

async fn respond(request: Request<Incoming>, handler: &Handler) -> Response<Full<Bytes>> {
    if request.uri().path() != PATH {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if request.method() != Method::POST {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return response;
    }
    let body = Limited::new(request.into_body(), MAX_BODY).collect();
    let body = match tokio::time::timeout(IO_TIMEOUT, body).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body unreadable or too large\n",
            );
        }
        Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "request body too slow\n"),
    };
    let review = handler.answer(&body).await;
    match serde_json::to_vec(&review) {
        Ok(json) => {
            let mut response = Response::new(Full::new(Bytes::from(json)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the answer\n",
        ),
    }
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
