//! reqwest as oauth2's HTTP client for token requests: it reads at most the body limit
//! and remembers the status and `Retry-After` of the answer, which oauth2's error type
//! does not keep.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use oauth2::{AsyncHttpClient, HttpClientError, HttpRequest, HttpResponse};

use super::body::{BodyError, read_capped};
use super::errors;

/// What [`Recording`] saw of an answer, which oauth2's error type does not keep.
#[derive(Clone, Copy, Debug)]
pub(super) struct Seen {
    pub(super) status: u16,
    pub(super) retry_after: Option<Duration>,
    /// The body was over [`MAX_RESPONSE_BODY`](super::body::MAX_RESPONSE_BODY) and not read.
    pub(super) oversized: bool,
}

/// reqwest as oauth2's HTTP client, reading at most the body limit and remembering what
/// it saw of the answer.
pub(super) struct Recording {
    pub(super) http: reqwest::Client,
    pub(super) seen: Mutex<Option<Seen>>,
}

impl Recording {
    fn note(&self, seen: Seen) {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(seen);
    }
}

impl<'c> AsyncHttpClient<'c> for Recording {
    type Error = HttpClientError<reqwest::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(Box::new)?;
            let response = self.http.execute(request).await.map_err(Box::new)?;
            let status = response.status();
            let mut seen = Seen {
                status: status.as_u16(),
                retry_after: errors::retry_after(response.headers()),
                oversized: false,
            };
            self.note(seen);
            let mut builder = oauth2::http::Response::builder().status(status);
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            match read_capped(response).await {
                Ok(body) => builder.body(body).map_err(HttpClientError::Http),
                Err(BodyError::Transport(e)) => Err(HttpClientError::Reqwest(Box::new(e))),
                Err(BodyError::TooLarge) => {
                    seen.oversized = true;
                    self.note(seen);
                    Err(HttpClientError::Other("the body is over the limit".into()))
                }
            }
        })
    }
}
