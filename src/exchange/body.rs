//! Reading response bodies with a cap: a broken or hostile endpoint must not stream more
//! than [`MAX_RESPONSE_BODY`] into the operator's memory.

use std::time::Duration;

use super::Failure;
use super::errors::transport_failure;
use crate::api::conditions::Reason;
use crate::redact::redact_url;

/// The largest response body read. The answers mailops reads (a `GetFolder`, a Graph
/// folder, a token) are a few KiB.
pub const MAX_RESPONSE_BODY: usize = 1024 * 1024;

/// Why a body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// The transport failed mid-body (reqwest's own deadline included).
    Transport(reqwest::Error),
    /// The body is larger than [`MAX_RESPONSE_BODY`]; reading stopped there.
    TooLarge,
}

/// The whole body, chunk by chunk, giving up as soon as it passes [`MAX_RESPONSE_BODY`].
pub async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    // A declared length over the limit is refused before a byte is read; a streamed body
    // (no length, or a false one) is caught by counting.
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BODY as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        // `body.len()` never exceeds the limit, so the subtraction cannot underflow.
        if chunk.len() > MAX_RESPONSE_BODY - body.len() {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An answer whose body is over the limit.
pub fn too_large_failure(what: &str, url: &str) -> Failure {
    Failure::new(
        Reason::UnexpectedResponse,
        format!(
            "{what} at {} answered with a body larger than the {} MiB limit",
            redact_url(url),
            MAX_RESPONSE_BODY / (1024 * 1024)
        ),
    )
}

/// A body that could not be read, as a failure of `what` at `url`.
pub fn body_failure(what: &str, url: &str, error: &BodyError, timeout: Duration) -> Failure {
    match error {
        BodyError::Transport(e) => transport_failure(what, url, e, timeout),
        BodyError::TooLarge => too_large_failure(what, url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(len: usize) -> reqwest::Response {
        reqwest::Response::from(http::Response::new(vec![b'x'; len]))
    }

    #[tokio::test]
    async fn a_body_up_to_the_limit_is_read_whole() {
        assert_eq!(read_capped(response(0)).await.unwrap(), Vec::<u8>::new());
        let body = read_capped(response(MAX_RESPONSE_BODY)).await.unwrap();
        assert_eq!(body.len(), MAX_RESPONSE_BODY);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let error = read_capped(response(MAX_RESPONSE_BODY + 1)).await;
        assert!(matches!(error, Err(BodyError::TooLarge)), "{error:?}");
        let f = too_large_failure("EWS", "https://u:p@x/EWS/Exchange.asmx");
        assert_eq!(f.reason, Reason::UnexpectedResponse);
        assert_eq!(
            f.message,
            "EWS at https://x/EWS/Exchange.asmx answered with a body larger than the 1 MiB limit"
        );
    }
}
