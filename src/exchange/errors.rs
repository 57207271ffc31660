//! What Entra ID, Exchange and the network answer, turned into condition reasons and
//! status messages. Messages keep server error codes (`AADSTS7000215`, `ErrorAccessDenied`)
//! but never a secret, a token, URL userinfo, or per-request noise such as trace IDs,
//! which would change the status on every reconcile.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::Failure;
use crate::api::conditions::Reason;

/// A URL fit for a status message: userinfo, query and fragment removed (they may carry
/// credentials or signatures).
pub fn redact_url(raw: &str) -> String {
    match reqwest::Url::parse(raw) {
        Ok(mut url) => {
            // Both only fail for URLs that cannot have credentials, which is fine.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => "(an unparsable URL)".to_string(),
    }
}

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

/// The server-requested delay of a `Retry-After` header: delta-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A request that got no HTTP answer: timeout, DNS, TCP or TLS failure.
pub fn transport_failure(
    what: &str,
    url: &str,
    error: &reqwest::Error,
    timeout: Duration,
) -> Failure {
    let url = redact_url(url);
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

/// The `AADSTS<digits>` code inside an Entra error description.
pub fn aadsts_code(description: &str) -> Option<&str> {
    let start = description.find("AADSTS")?;
    let rest = &description[start..];
    let end = 6 + rest[6..]
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len() - 6);
    (end > 6).then(|| &rest[..end])
}

/// Entra ID error codes mailops explains, with the reason they map to. The code stays in
/// the message: it is what admins search for.
const AADSTS: &[(&str, Reason, &str)] = &[
    (
        "AADSTS7000215",
        Reason::InvalidCredentials,
        "the client secret is wrong or expired",
    ),
    (
        "AADSTS7000222",
        Reason::InvalidCredentials,
        "the client secret has expired",
    ),
    (
        "AADSTS700016",
        Reason::InvalidCredentials,
        "application not found in the tenant",
    ),
    (
        "AADSTS90002",
        Reason::InvalidCredentials,
        "tenant not found",
    ),
    (
        "AADSTS900023",
        Reason::InvalidCredentials,
        "the tenant ID is not valid",
    ),
    (
        "AADSTS90014",
        Reason::InvalidCredentials,
        "a required field (e.g. scope) is missing",
    ),
    (
        "AADSTS7000112",
        Reason::InvalidCredentials,
        "the application is disabled",
    ),
    (
        "AADSTS70011",
        Reason::InvalidCredentials,
        "the requested scope is not valid for this application",
    ),
    (
        "AADSTS700082",
        Reason::InvalidCredentials,
        "the refresh token has expired; sign in again",
    ),
    (
        "AADSTS70008",
        Reason::InvalidCredentials,
        "the refresh token has expired; sign in again",
    ),
    (
        "AADSTS50173",
        Reason::InvalidCredentials,
        "the refresh token was revoked; sign in again",
    ),
    (
        "AADSTS70043",
        Reason::InvalidCredentials,
        "the refresh token has expired; sign in again",
    ),
    (
        "AADSTS50057",
        Reason::InvalidCredentials,
        "the user account is disabled",
    ),
    (
        "AADSTS53003",
        Reason::InvalidCredentials,
        "blocked by a Conditional Access policy",
    ),
    (
        "AADSTS65001",
        Reason::MissingPermission,
        "the application has no consent for the requested permissions",
    ),
];

/// The meaning of a standard OAuth 2.0 `error` value, for codes not in `AADSTS`.
fn oauth_error(error: &str) -> (Reason, &'static str) {
    match error {
        "invalid_client" => (
            Reason::InvalidCredentials,
            "the client credentials were refused",
        ),
        "invalid_grant" => (
            Reason::InvalidCredentials,
            "the grant (refresh token or client credentials) was refused",
        ),
        "unauthorized_client" => (
            Reason::InvalidCredentials,
            "the application may not use this grant",
        ),
        "invalid_scope" => (
            Reason::InvalidCredentials,
            "the requested scope is not valid",
        ),
        "invalid_request" => (Reason::InvalidCredentials, "the token request was refused"),
        "temporarily_unavailable" | "server_error" => {
            (Reason::Unreachable, "Entra ID is temporarily unavailable")
        }
        _ => (Reason::UnexpectedResponse, "the token request failed"),
    }
}

/// An OAuth 2.0 error answer of Entra ID (`error` and `error_description`) as a failure.
/// Only the code is taken from the description: the rest holds trace IDs and timestamps
/// that would change the status on every attempt.
pub fn entra_failure(error: &str, description: Option<&str>) -> Failure {
    let code = description.and_then(aadsts_code);
    let known = code.and_then(|c| AADSTS.iter().find(|(k, _, _)| *k == c));
    let (reason, detail) = match known {
        Some((_, reason, detail)) => (*reason, *detail),
        None => oauth_error(error),
    };
    let message = match code {
        Some(code) => format!("Entra ID: {code}: {detail} ({error})"),
        None => format!("Entra ID: {detail} ({error})"),
    };
    Failure::new(reason, message)
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
    fn userinfo_and_query_never_reach_a_message() {
        let r = redact_url("https://admin:hunter2@mail.contoso.com/EWS/Exchange.asmx?sig=abc");
        assert_eq!(r, "https://mail.contoso.com/EWS/Exchange.asmx");
        assert_eq!(redact_url("not a url :: x"), "(an unparsable URL)");
    }

    #[test]
    fn aadsts_codes_are_found_and_mapped() {
        assert_eq!(
            aadsts_code("AADSTS7000215: Invalid client secret provided."),
            Some("AADSTS7000215")
        );
        assert_eq!(aadsts_code("no code"), None);
        assert_eq!(aadsts_code("AADSTS"), None);
        let f = entra_failure(
            "invalid_client",
            Some("AADSTS700016: Application with identifier 'x' was not found"),
        );
        assert_eq!(f.reason, Reason::InvalidCredentials);
        assert_eq!(
            f.message,
            "Entra ID: AADSTS700016: application not found in the tenant (invalid_client)"
        );
        let f = entra_failure(
            "invalid_request",
            Some("AADSTS90002: Tenant 'x' not found."),
        );
        assert!(
            f.message.contains("AADSTS90002: tenant not found"),
            "{}",
            f.message
        );
        let f = entra_failure(
            "invalid_grant",
            Some("AADSTS700082: The refresh token has expired"),
        );
        assert!(
            f.message.contains("refresh token has expired"),
            "{}",
            f.message
        );
        assert_eq!(
            entra_failure("temporarily_unavailable", None).reason,
            Reason::Unreachable
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "17".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(17)));
        let later = SystemTime::now() + Duration::from_secs(120);
        h.insert(RETRY_AFTER, httpdate::fmt_http_date(later).parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
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
