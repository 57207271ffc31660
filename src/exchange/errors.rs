//! What Entra ID, Exchange and the network answer, turned into condition reasons and
//! status messages. Messages keep server error codes (`AADSTS7000215`, `ErrorAccessDenied`)
//! but never a secret, a token, URL userinfo, or per-request noise such as trace IDs,
//! which would change the status on every reconcile. Entra ID's own error codes are read
//! in [`super::entra`].

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::Failure;
use crate::api::conditions::Reason;
use crate::redact::redact_url;

/// Refuse plain `http://` unless the operator was started with `--allow-insecure-endpoints`.
/// Resolution already refuses such overrides (`endpoints::provider_endpoints`); this is the
/// last line before anything, credentials included, leaves the process.
pub fn ensure_allowed(url: &str, allow_insecure: bool) -> Result<(), Failure> {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("https://") || (allow_insecure && lower.starts_with("http://")) {
        return Ok(());
    }
    let message = if lower.starts_with("http://") {
        format!(
            "{} uses plain http; use https, or run the operator with --allow-insecure-endpoints",
            redact_url(url)
        )
    } else {
        format!("{} is not an https URL", redact_url(url))
    };
    Err(Failure::new(Reason::InsecureEndpoint, message))
}

/// The shortest delay a server may ask for: `Retry-After: 0`, a date in the past or
/// `BackOffMilliseconds` 0 would otherwise have the caller try again at once, in a loop.
pub const MIN_SERVER_DELAY: Duration = Duration::from_secs(1);

/// The longest delay a server may ask for: a broken or hostile endpoint must not park an
/// object for days, nor hand the caller a number whose arithmetic overflows.
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(15 * 60);

/// A server-given delay brought within [`MIN_SERVER_DELAY`, `MAX_SERVER_DELAY`]. Every
/// delay read from an answer goes through here before it leaves this module's callers.
pub fn clamp_server_delay(d: Duration) -> Duration {
    d.clamp(MIN_SERVER_DELAY, MAX_SERVER_DELAY)
}

/// A decimal number of digits only, saturating at `u64::MAX`: a server asking for more
/// than fits means "a very long time", which the clamp then bounds. Signs, fractions and
/// anything else are not numbers here.
pub fn parse_saturating(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

/// The server-requested delay of a `Retry-After` header (delta-seconds or an HTTP date),
/// clamped by [`clamp_server_delay`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = match parse_saturating(value) {
        Some(seconds) => Duration::from_secs(seconds),
        None => {
            let when = httpdate::parse_http_date(value).ok()?;
            // A date in the past asks for no delay; the clamp makes it the minimum.
            when.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(clamp_server_delay(delay))
}

/// The most characters of server-given text (error codes, fault strings, parser errors
/// quoting the document) put into a message. Messages end up in status conditions, stored
/// in etcd and shown by kubectl: one hostile answer must not fill them.
pub const MAX_SERVER_TEXT: usize = 200;

/// Server-given text cut to [`MAX_SERVER_TEXT`] characters, on a character boundary.
pub fn server_text(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(MAX_SERVER_TEXT) {
        None => Cow::Borrowed(text),
        Some((at, _)) => Cow::Owned(format!("{}\u{2026}", &text[..at])),
    }
}

/// A failed mailbox request, remembering whether the server refused the credentials with
/// HTTP 401: the one answer a fresh token may cure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestFailure {
    /// What failed, for status.
    pub failure: Failure,
    /// The answer was HTTP 401.
    pub unauthorized: bool,
}

impl From<Failure> for RequestFailure {
    fn from(failure: Failure) -> Self {
        RequestFailure {
            failure,
            unauthorized: false,
        }
    }
}

/// A request that got no HTTP answer: timeout, DNS, TCP or TLS failure. A certificate
/// the provider's trust refused is named with its reason (`CertificateUntrusted`,
/// `CertificateExpired`, `CertificateNameMismatch`) and what it is; the rest is
/// `Unreachable`.
pub fn transport_failure(
    what: &str,
    url: &str,
    error: &reqwest::Error,
    timeout: Duration,
) -> Failure {
    let url = redact_url(url);
    if let Some(presented) = super::verifier::presented_certificate(error) {
        return Failure::new(
            presented.problem.reason(),
            format!("{what} at {url}: {presented}"),
        );
    }
    if is_timeout(error) {
        return Failure::new(
            Reason::Unreachable,
            format!(
                "{what} at {url} timed out after {}",
                human_duration(timeout)
            ),
        );
    }
    Failure::new(
        Reason::Unreachable,
        format!("{what} at {url} is unreachable: {}", error_chain(error)),
    )
}

/// reqwest marks its own deadline; a timeout deeper down (connect) shows in the chain.
fn is_timeout(error: &reqwest::Error) -> bool {
    if error.is_timeout() {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        source = inner.source();
    }
    false
}

/// The causes of a transport error, without the URL reqwest puts in its own message.
fn error_chain(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        let text = inner.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = inner.source();
    }
    if parts.is_empty() {
        return error_kind_text(error).to_string();
    }
    parts.join(": ")
}

/// What kind of failure it was, for errors without a cause: reqwest's own `Display` would
/// repeat the URL, userinfo included.
fn error_kind_text(error: &reqwest::Error) -> &'static str {
    if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "the response body could not be read"
    } else if error.is_redirect() {
        "redirects are not followed"
    } else if error.is_builder() {
        "the request could not be built"
    } else {
        "the request failed"
    }
}

/// `15s`, `250ms`.
pub fn human_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// An HTTP status without a usable body, from any of the three services.
pub fn status_failure(what: &str, status: u16, retry_after: Option<Duration>) -> Failure {
    match status {
        429 => Failure {
            reason: Reason::Throttled,
            message: format!("{what} asked to slow down (HTTP 429)"),
            retry_after,
        },
        503 if retry_after.is_some() => Failure {
            reason: Reason::Throttled,
            message: format!("{what} is busy (HTTP 503)"),
            retry_after,
        },
        500..=599 => Failure::new(
            Reason::Unreachable,
            format!("{what} answered HTTP {status}"),
        ),
        _ => Failure::new(
            Reason::UnexpectedResponse,
            format!("{what} answered HTTP {status}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_is_cut_on_a_character_boundary() {
        let long = "x".repeat(MAX_SERVER_TEXT + 1);
        let accents = "\u{e9}".repeat(MAX_SERVER_TEXT + 50);
        let exact = "y".repeat(MAX_SERVER_TEXT);
        assert_eq!(server_text("ErrorAccessDenied"), "ErrorAccessDenied");
        assert_eq!(server_text(""), "");
        assert_eq!(server_text(&exact), exact);
        assert_eq!(
            server_text(&long),
            format!("{}\u{2026}", "x".repeat(MAX_SERVER_TEXT))
        );
        assert_eq!(
            server_text(&accents),
            format!("{}\u{2026}", "\u{e9}".repeat(MAX_SERVER_TEXT))
        );
    }
    fn retry_after_of(value: &str) -> Option<Duration> {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, value.parse().unwrap());
        retry_after(&h)
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        assert_eq!(retry_after_of("17"), Some(Duration::from_secs(17)));
        let later = SystemTime::now() + Duration::from_secs(120);
        let d = retry_after_of(&httpdate::fmt_http_date(later)).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn retry_after_is_clamped_between_one_second_and_fifteen_minutes() {
        let s = Duration::from_secs;
        let cases: &[(&str, Option<Duration>)] = &[
            ("0", Some(MIN_SERVER_DELAY)),
            ("1", Some(s(1))),
            (" 2 ", Some(s(2))),
            ("900", Some(s(900))),
            ("901", Some(MAX_SERVER_DELAY)),
            ("18446744073709551615", Some(MAX_SERVER_DELAY)),
            ("99999999999999999999999999", Some(MAX_SERVER_DELAY)),
            ("Wed, 21 Oct 2015 07:28:00 GMT", Some(MIN_SERVER_DELAY)),
            ("Thu, 01 Jan 1970 00:00:00 GMT", Some(MIN_SERVER_DELAY)),
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some(MAX_SERVER_DELAY)),
            ("-1", None),
            ("+5", None),
            ("1.5", None),
            ("1e9", None),
            ("soon", None),
            ("", None),
            ("Wed, 32 Oct 2015 07:28:00 GMT", None),
        ];
        for (value, expected) in cases {
            assert_eq!(retry_after_of(value), *expected, "Retry-After: {value:?}");
        }
    }

    #[test]
    fn server_delays_are_clamped() {
        assert_eq!(MIN_SERVER_DELAY, Duration::from_secs(1));
        assert_eq!(MAX_SERVER_DELAY, Duration::from_secs(15 * 60));
        let cases = [
            (Duration::ZERO, MIN_SERVER_DELAY),
            (Duration::from_nanos(1), MIN_SERVER_DELAY),
            (Duration::from_millis(1500), Duration::from_millis(1500)),
            (Duration::from_secs(u64::MAX), MAX_SERVER_DELAY),
            (Duration::MAX, MAX_SERVER_DELAY),
        ];
        for (given, expected) in cases {
            assert_eq!(clamp_server_delay(given), expected, "{given:?}");
        }
    }

    #[test]
    fn plain_http_needs_the_flag() {
        let f = ensure_allowed("http://u:p@127.0.0.1:9/EWS", false).unwrap_err();
        assert_eq!(f.reason, Reason::InsecureEndpoint);
        assert!(!f.message.contains("u:p"), "{}", f.message);
        assert!(ensure_allowed("http://127.0.0.1:9/EWS", true).is_ok());
        assert!(ensure_allowed("HTTPS://x/", false).is_ok());
        assert!(ensure_allowed("ftp://x/", true).is_err());
    }
}
