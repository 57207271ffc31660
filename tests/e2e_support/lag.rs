//! A watch that lags: a layer of an in-process operator's Kubernetes client that hands
//! over every chunk of the watch responses of one resource a fixed time after it
//! arrived, in order, as a busy API server or a slow link would. Writes and lists go
//! through at once, so the API server holds what the operator's caches do not show yet.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use kube::client::Body;
use tokio::sync::mpsc;
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Lagging = UnsyncBoxBody<Bytes, BoxError>;

/// Which watch lags, and by how much; [`WatchLag::none`] lets every response through.
#[derive(Clone, Debug, Default)]
pub struct WatchLag {
    /// The plural of the resource whose watches lag (`mailboxbindings`), if any.
    pub resource: Option<&'static str>,
    /// How long each chunk is held back.
    pub lag: Duration,
}

impl WatchLag {
    /// No lag.
    pub fn none() -> WatchLag {
        WatchLag::default()
    }

    /// The watches of `resource` lag by `lag`.
    pub fn of(resource: &'static str, lag: Duration) -> WatchLag {
        WatchLag {
            resource: Some(resource),
            lag,
        }
    }

    fn applies_to<B>(&self, request: &Request<B>) -> bool {
        let uri = request.uri();
        let watch = uri.query().is_some_and(|q| q.contains("watch=true"));
        self.resource
            .is_some_and(|r| watch && uri.path().ends_with(&format!("/{r}")))
    }
}

impl<S> tower::Layer<S> for WatchLag {
    type Service = Lagged<S>;

    fn layer(&self, inner: S) -> Lagged<S> {
        Lagged {
            inner,
            lag: self.clone(),
        }
    }
}

/// The service [`WatchLag`] wraps around the client's stack.
#[derive(Clone)]
pub struct Lagged<S> {
    inner: S,
    lag: WatchLag,
}

impl<S, B> tower::Service<Request<Body>> for Lagged<S>
where
    S: tower::Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Lagging>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Lagging>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let lag = self.lag.applies_to(&request).then_some(self.lag.lag);
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| match lag {
                Some(lag) => held_back(body, lag),
                None => UnsyncBoxBody::new(body.map_err(Into::into)),
            }))
        })
    }
}

/// `body`, each frame handed over `lag` after it arrived: a task reads it as it comes
/// and stamps each frame.
fn held_back<B>(body: B, lag: Duration) -> Lagging
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (sent, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut frames = Box::pin(BodyStream::new(body));
        while let Some(frame) = frames.next().await {
            let frame = frame.map_err(Into::into);
            if sent.send((Instant::now(), frame)).is_err() {
                return;
            }
        }
    });
    let frames = futures::stream::unfold(received, move |mut received| async move {
        let (arrived, frame) = received.recv().await?;
        tokio::time::sleep_until(arrived + lag).await;
        Some((frame, received))
    });
    UnsyncBoxBody::new(StreamBody::new(frames))
}
