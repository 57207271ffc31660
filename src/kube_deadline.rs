//! A deadline on every request to the Kubernetes API but the watches: kube's client has no
//! read timeout by default, so a status patch, a finalizer patch, a Secret write-back, an
//! Event or the certificate keeper's request that the API server never answers would
//! hold its reconcile slot (or the keeper) for ever, while the Lease keeps renewing. The
//! deadline covers the answer's headers and its whole body; a watch keeps its own
//! timeouts (the server ends it after `timeoutSeconds`). A LIST by field selector (the
//! consistent read that confirms nothing uses a provider or account) makes the API server
//! read every object of the kind from etcd, however few match: 33 s for 100,000 bindings
//! on two cores, so it gets [`SCAN_FACTOR`] times the deadline (the API server's own
//! request timeout, 60 s by default, still ends it first).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Whether a query string asks for a watch (`watch=true` or `watch=1`).
pub fn wants_watch(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| matches!(pair, "watch=true" | "watch=1"))
}

/// How many deadlines a LIST by field selector gets.
pub const SCAN_FACTOR: u32 = 4;

/// Whether a query string selects by field (`fieldSelector=...`, not empty): the API server
/// reads the whole collection to answer.
pub fn selects_by_field(query: &str) -> bool {
    query.split('&').any(|pair| {
        pair.strip_prefix("fieldSelector=")
            .is_some_and(|v| !v.is_empty())
    })
}

/// What a request that passed its deadline fails with.
#[derive(Debug, thiserror::Error)]
#[error("the Kubernetes API did not answer within {0:?}")]
pub struct DeadlinePassed(pub Duration);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Puts a deadline on every request that is not a watch.
#[derive(Clone, Copy, Debug)]
pub struct DeadlineLayer {
    limit: Duration,
}

impl DeadlineLayer {
    /// Requests other than watches must be answered, body included, within `limit`.
    pub fn new(limit: Duration) -> Self {
        DeadlineLayer { limit }
    }
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            limit: self.limit,
        }
    }
}

/// The service [`DeadlineLayer`] wraps around the client's stack.
#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
    limit: Duration,
}

impl<S, B, RB> tower::Service<Request<B>> for Deadline<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    RB: Body + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<TimedBody<RB>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let query = request.uri().query().unwrap_or_default();
        let watch = wants_watch(query);
        let scan = request.method() == http::Method::GET && selects_by_field(query);
        let limit = if scan {
            self.limit * SCAN_FACTOR
        } else {
            self.limit
        };
        let answer = self.inner.call(request);
        Box::pin(async move {
            if watch {
                let response = answer.await.map_err(Into::into)?;
                return Ok(response.map(|body| TimedBody::new(body, None)));
            }
            let deadline = Instant::now() + limit;
            let response = tokio::time::timeout_at(deadline, answer)
                .await
                .map_err(|_| Box::new(DeadlinePassed(limit)) as BoxError)?
                .map_err(Into::into)?;
            Ok(response.map(|body| TimedBody::new(body, Some((deadline, limit)))))
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that fails once its request's deadline passes.
    pub struct TimedBody<B> {
        #[pin]
        inner: B,
        deadline: Option<(Pin<Box<Sleep>>, Duration)>,
    }
}

impl<B> TimedBody<B> {
    fn new(inner: B, deadline: Option<(Instant, Duration)>) -> Self {
        TimedBody {
            inner,
            deadline: deadline.map(|(at, limit)| (Box::pin(tokio::time::sleep_until(at)), limit)),
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, BoxError>>> {
        let this = self.project();
        if let Some((sleep, limit)) = this.deadline
            && sleep.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err(Box::new(DeadlinePassed(*limit)))));
        }
        this.inner.poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use tower::{Layer, ServiceExt};

    /// An API server that answers every request after `delay`.
    fn answering_after(
        delay: Duration,
    ) -> impl tower::Service<
        Request<()>,
        Response = Response<Full<bytes::Bytes>>,
        Error = BoxError,
        Future = impl Future<Output = Result<Response<Full<bytes::Bytes>>, BoxError>> + Send,
    > + Clone {
        tower::service_fn(move |_request: Request<()>| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, BoxError>(Response::new(Full::new(bytes::Bytes::from_static(b"{}"))))
        })
    }

    async fn answered(delay: Duration, method: http::Method, uri: &str) -> bool {
        let service = DeadlineLayer::new(Duration::from_secs(30)).layer(answering_after(delay));
        let request = Request::builder().method(method).uri(uri).body(()).unwrap();
        match service.oneshot(request).await {
            Ok(response) => response.into_body().collect().await.is_ok(),
            Err(e) => {
                assert!(e.is::<DeadlinePassed>(), "{e}");
                false
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_list_by_field_selector_gets_longer_than_any_other_request() {
        let scan = "/apis/mailops.dev/v1alpha1/mailboxbindings?fieldSelector=status.provider%3Dp";
        let plain = "/apis/mailops.dev/v1alpha1/mailboxbindings?limit=500";
        let slow = Duration::from_secs(33);
        assert!(answered(slow, http::Method::GET, scan).await);
        assert!(!answered(slow, http::Method::GET, plain).await);
        assert!(
            !answered(slow, http::Method::DELETE, scan).await,
            "only reads"
        );
        assert!(!answered(Duration::from_secs(121), http::Method::GET, scan).await);
        assert!(answered(Duration::from_secs(29), http::Method::GET, plain).await);
    }

    #[test]
    fn a_field_selector_is_a_non_empty_one() {
        assert!(selects_by_field(
            "limit=1&fieldSelector=status.provider%3Dp"
        ));
        assert!(!selects_by_field("fieldSelector="));
        assert!(!selects_by_field("labelSelector=a%3Db"));
        assert!(wants_watch("watch=true&fieldSelector=x") && !wants_watch("watch=false"));
    }
}
