//! The webhook's HTTPS endpoint: `POST /validate` with an AdmissionReview v1, answered by
//! the pure decision after the SubjectAccessReview it may need. Any body within the bound
//! gets an answer; connections, handshakes, headers and bodies are limited
//! (`crate::serve_limits`).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use kube::core::DynamicObject;
use kube::core::admission::AdmissionReview;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::decision::{Options, decide, malformed, parse_review, use_check};
use super::sar::AccessReviewer;
use crate::cache::Stores;
use crate::serve_limits::{self, BodyRefusal, read_body};

/// The one path the webhook configuration points at.
pub const PATH: &str = "/validate";

// The body bound: what an AdmissionReview of one of our objects can weigh, from the
// CRDs' own limits (tests/webhook_body_bound.rs walks the generated schemas and fails
// when one outgrows these numbers). Characters count one byte: the schemas' strings are
// names, DNS names, labels, URLs and IDs. A review past the bound is refused, which for
// the one `Fail` webhook (MailboxBindings, whose spec and field set stay under a tenth of
// their allowances even at six bytes a character) refuses the request, and for the
// `Ignore` ones skips the warnings or the in-use check (the finalizer still holds).

/// The largest spec a schema admits, every string at its maxLength and every list and
/// map full: EmailProvider's, about 300 KB (its allowed namespaces and selector, and an
/// inline CA bundle of up to 64 KiB).
pub const SPEC_BYTES: usize = 320 * 1024;
/// One field manager's entry in `managedFields`: the field set of such a spec (every
/// key, and each value of a set-list) with the manager's name and times: about 67 KB.
pub const FIELD_MANAGER_BYTES: usize = 80 * 1024;
/// Field managers allowed for per object: whoever applies it, an editor, the operator
/// writing status.
pub const FIELD_MANAGERS: usize = 3;
/// The rest of `metadata`: annotations, at most 256 KiB together (the API server's own
/// limit; kubectl's last-applied-configuration is one), then labels, finalizers, owner
/// references, names and times.
pub const METADATA_BYTES: usize = 256 * 1024 + 32 * 1024;
/// `status` as the controllers write it: four conditions with their messages and a few
/// names (the schema leaves it open; only the operator writes it).
pub const STATUS_BYTES: usize = 16 * 1024;
/// One object in full.
pub const OBJECT_BYTES: usize =
    SPEC_BYTES + FIELD_MANAGERS * FIELD_MANAGER_BYTES + METADATA_BYTES + STATUS_BYTES;
/// The review around the objects: uid, kinds, resources, options and the user, whose
/// groups and extra the API server copies in whole.
pub const ENVELOPE_BYTES: usize = 64 * 1024;
/// Largest request body read: `object` and `oldObject` (an UPDATE) in the envelope,
/// 1.7 MiB.
pub const MAX_BODY: usize = 2 * OBJECT_BYTES + ENVELOPE_BYTES;

/// A TLS handshake, a request's headers or its body taking longer than this is dropped;
/// a kept-alive connection idle this long is closed.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once (the next waits until one closes). Each may hold a body of
/// [`MAX_BODY`] and its parse, about 3.5 MiB together (measured with the largest review
/// tests/webhook_body_bound.rs builds), so 16 take under 60 MiB of the pod's 256 Mi.
pub const MAX_CONNECTIONS: usize = 16;

/// What the webhook's HTTPS takes from a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections, handshakes, headers and idle connections.
    pub connections: serve_limits::Limits,
    /// Longest wait for a whole request body.
    pub body_read_timeout: Duration,
    /// Largest request body.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: serve_limits::Limits {
                max_connections: MAX_CONNECTIONS,
                handshake_timeout: IO_TIMEOUT,
                header_read_timeout: IO_TIMEOUT,
            },
            body_read_timeout: IO_TIMEOUT,
            max_body: MAX_BODY,
        }
    }
}

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

/// Serve HTTPS on `listener` within `limits` until `shutdown` completes.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    handler: Arc<Handler>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> crate::Result<()> {
    let service = service_fn(move |request: Request<Incoming>| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(respond(request, &handler, &limits).await) }
    });
    let acceptor = TlsAcceptor::from(tls);
    serve_limits::serve(listener, acceptor, service, limits.connections, shutdown).await;
    Ok(())
}

async fn respond(
    request: Request<Incoming>,
    handler: &Handler,
    limits: &Limits,
) -> Response<Full<Bytes>> {
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
    let body = read_body(
        request.into_body(),
        limits.max_body,
        limits.body_read_timeout,
    )
    .await;
    let body = match body {
        Ok(body) => body,
        Err(refusal) => return refused(refusal),
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

/// The answer to a body that was not read whole; the connection closes after it, since
/// what is left of the body was never read.
fn refused(refusal: BodyRefusal) -> Response<Full<Bytes>> {
    let mut response = match refusal {
        BodyRefusal::TooLarge => text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body larger than an AdmissionReview of a mailops object can be\n",
        ),
        BodyRefusal::TooSlow => text(StatusCode::REQUEST_TIMEOUT, "request body too slow\n"),
        BodyRefusal::Unreadable => text(StatusCode::BAD_REQUEST, "request body unreadable\n"),
    };
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
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
