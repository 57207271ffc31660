//! OAuth 2.0 tokens from Entra ID: client credentials (cached per app and scope, renewed
//! ahead of expiry, one request in flight per key however many callers wait) and refresh
//! tokens of single mailboxes (never cached: each redemption may rotate the token, and
//! the binding's Secret stays the one source of truth).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use oauth2::basic::{BasicClient, BasicErrorResponse, BasicTokenResponse};
use oauth2::{
    AuthType, ClientId, ClientSecret, HttpClientError, RefreshToken, RequestTokenError, Scope,
    TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use tracing::debug;

use super::body::too_large_failure;
use super::clients::HttpClients;
use super::entra::entra_failure;
use super::errors::{status_failure, transport_failure};
use super::token_http::{Recording, Seen};
use super::{Failure, OAuthApp, Trust};
use crate::api::conditions::Reason;
use crate::endpoints::token_url;
use crate::metrics::Metrics;
use crate::redact::redact_url;

/// A token is renewed when less than this remains, so no probe starts with a token that
/// expires mid-flight.
pub const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Lifetime assumed when the authority does not say (`expires_in` is optional in OAuth 2.0).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The longest lifetime believed. Entra ID issues tokens for 60 to 90 minutes; more is a
/// broken or hostile answer, and `expires_in: 18446744073709551615` overflows an `Instant`.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long a token that lives `lifetime` is used: until [`RENEW_BEFORE_EXPIRY`] before it
/// expires, or for the first half of its life when it lives less than twice that margin.
///
/// Without the halving, a token shorter-lived than the margin would never be reused: one
/// token request per call, forever. A token of 0 or 1 s is still used only by the call
/// that obtained it and by the callers already waiting for it (they share its result as
/// they share a failure, see [`TokenSource::app_token`]). That is one token request per
/// wave of concurrent probes, and the probes themselves are paced by the controllers'
/// back-off and the per-provider limit, so it cannot become a loop of its own. Using such
/// a token longer than the authority says it lives would only trade the token request for
/// a probe refused with 401.
pub fn usable_for(lifetime: Duration) -> Duration {
    let lifetime = lifetime.min(MAX_TOKEN_LIFETIME);
    lifetime.saturating_sub(RENEW_BEFORE_EXPIRY.min(lifetime / 2))
}

/// An access token and, for refresh-token grants, the refresh token the authority rotated.
#[derive(Clone, Debug)]
pub struct Token {
    /// The bearer token.
    pub access_token: SecretString,
    /// When to stop using it.
    pub renew_at: Instant,
    /// A new refresh token, when the authority returned one different from the one sent.
    pub rotated_refresh_token: Option<SecretString>,
    /// Taken from the cache, obtained before this caller asked: if a mailbox refuses it,
    /// a new one may fare better (see [`TokenSource::evict`]).
    pub from_cache: bool,
}

/// Cache key. The secret enters only as a keyed hash, so a rotated Secret is tried at
/// once instead of riding on a token the old secret obtained. The trust is part of it:
/// a provider whose CAs do not verify the authority must not ride on a token another
/// provider's trust obtained from the same authority.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct CacheKey {
    authority: String,
    tenant_id: String,
    client_id: String,
    scopes: String,
    secret_fingerprint: u64,
    trust: Trust,
}

impl CacheKey {
    fn of(app: &OAuthApp, trust: &Trust) -> Self {
        CacheKey {
            authority: app.authority.trim_end_matches('/').to_string(),
            tenant_id: app.tenant_id.to_string(),
            client_id: app.client_id.to_string(),
            scopes: app.scopes.join(" "),
            secret_fingerprint: fingerprint(&app.client_secret),
            trust: trust.clone(),
        }
    }
}

#[derive(Default)]
struct Slot {
    token: Option<Token>,
    /// When `token` was obtained: callers that were already waiting then use it even if it
    /// is due for renewal, as it is as fresh as another request would give.
    obtained_at: Option<Instant>,
    /// The last failure and when it happened: callers that were already waiting share it
    /// rather than each sending the same doomed request.
    last_failure: Option<(Instant, Failure)>,
}

/// Obtains and caches tokens.
pub struct TokenSource {
    clients: Arc<HttpClients>,
    timeout: Duration,
    metrics: Arc<Metrics>,
    cache: Mutex<HashMap<CacheKey, Arc<tokio::sync::Mutex<Slot>>>>,
}

/// The fingerprint of a secret: SipHash with a key chosen at process start, so it cannot
/// be compared across processes or reversed.
fn fingerprint(secret: &SecretString) -> u64 {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    KEY.get_or_init(RandomState::new)
        .hash_one(secret.expose_secret())
}

impl TokenSource {
    /// A token source sending requests through the client of each provider's trust
    /// (which carries the timeouts).
    pub fn new(clients: Arc<HttpClients>, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        TokenSource {
            clients,
            timeout,
            metrics,
            cache: Mutex::default(),
        }
    }

    /// An app-only token by the client-credentials grant, from the cache when still fresh.
    pub async fn app_token(&self, app: &OAuthApp, trust: &Trust) -> Result<Token, Failure> {
        let waiting_since = Instant::now();
        let slot = self.slot(&CacheKey::of(app, trust));
        // Holding this lock across the request is the point: one request per key in
        // flight, everybody else waits for its result.
        let mut slot = slot.lock().await;
        let fetched_for_us = slot.obtained_at.is_some_and(|at| at >= waiting_since);
        if let Some(token) = &slot.token
            && (token.renew_at > Instant::now() || fetched_for_us)
        {
            return Ok(Token {
                from_cache: !fetched_for_us,
                ..token.clone()
            });
        }
        if let Some((at, failure)) = &slot.last_failure
            && *at >= waiting_since
        {
            return Err(failure.clone());
        }
        let result = self.request(app, trust, None).await;
        match &result {
            Ok(token) => {
                slot.token = Some(token.clone());
                slot.obtained_at = Some(Instant::now());
                slot.last_failure = None;
            }
            Err(failure) => {
                slot.token = None;
                slot.obtained_at = None;
                slot.last_failure = Some((Instant::now(), failure.clone()));
            }
        }
        result
    }

    /// Forget a cached app token a mailbox refused with HTTP 401 (revoked, or consent
    /// withdrawn since it was issued), unless it was already replaced: probes refused with
    /// the same token then share one new token instead of each evicting the last one's.
    pub async fn evict(&self, app: &OAuthApp, trust: &Trust, refused: &Token) {
        let slot = self.slot(&CacheKey::of(app, trust));
        let mut slot = slot.lock().await;
        let same = slot.token.as_ref().is_some_and(|cached| {
            cached.access_token.expose_secret() == refused.access_token.expose_secret()
        });
        if same {
            slot.token = None;
            slot.obtained_at = None;
        }
    }

    /// A delegated token by redeeming a mailbox's refresh token. Not cached.
    pub async fn delegated_token(
        &self,
        app: &OAuthApp,
        trust: &Trust,
        refresh_token: &SecretString,
    ) -> Result<Token, Failure> {
        self.request(app, trust, Some(refresh_token)).await
    }

    fn slot(&self, key: &CacheKey) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !cache.contains_key(key) {
            // Forget idle entries whose token is gone or stale (e.g. an old secret's), so
            // the map does not grow with every rotation.
            let now = Instant::now();
            cache.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || slot
                        .try_lock()
                        .map_or(true, |s| s.token.as_ref().is_some_and(|t| t.renew_at > now))
            });
        }
        cache.entry(key.clone()).or_default().clone()
    }

    async fn request(
        &self,
        app: &OAuthApp,
        trust: &Trust,
        refresh_token: Option<&SecretString>,
    ) -> Result<Token, Failure> {
        let url = token_url(&app.authority, &app.tenant_id);
        let grant = if refresh_token.is_some() {
            "refresh_token"
        } else {
            "client_credentials"
        };
        debug!(
            authority = %redact_url(&app.authority),
            tenant = %app.tenant_id,
            client_id = %app.client_id,
            grant,
            "requesting a token"
        );
        let result = match self.clients.get(trust) {
            Ok(http) => self.send(http, app, &url, refresh_token).await,
            Err(f) => Err(f),
        };
        let label = match &result {
            Ok(_) => "success",
            Err(f) => f.reason.as_str(),
        };
        self.metrics.record_token_request(label);
        match &result {
            Ok(_) => debug!(client_id = %app.client_id, grant, "token obtained"),
            Err(f) => debug!(
                client_id = %app.client_id,
                grant,
                reason = %f.reason,
                detail = %f.message,
                "token request failed"
            ),
        }
        result
    }

    async fn send(
        &self,
        http: reqwest::Client,
        app: &OAuthApp,
        url: &str,
        refresh_token: Option<&SecretString>,
    ) -> Result<Token, Failure> {
        let token_uri = TokenUrl::new(url.to_string()).map_err(|_| {
            Failure::new(
                Reason::UnexpectedResponse,
                format!("the token URL {} is not valid", redact_url(url)),
            )
        })?;
        let client = BasicClient::new(ClientId::new(app.client_id.to_string()))
            .set_client_secret(ClientSecret::new(
                app.client_secret.expose_secret().to_string(),
            ))
            // Entra ID takes the secret in the form body; Basic auth would need the
            // secret URL-encoded first and buys nothing.
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(token_uri);
        let scopes = app.scopes.iter().map(|s| Scope::new(s.clone()));
        let http = Recording {
            http,
            seen: Mutex::default(),
        };
        let result = match refresh_token {
            None => {
                client
                    .exchange_client_credentials()
                    .add_scopes(scopes)
                    .request_async(&http)
                    .await
            }
            Some(rt) => {
                let rt = RefreshToken::new(rt.expose_secret().to_string());
                client
                    .exchange_refresh_token(&rt)
                    .add_scopes(scopes)
                    .request_async(&http)
                    .await
            }
        };
        let seen = *http.seen.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(response) => self.accept(&response, url, refresh_token),
            Err(error) => Err(self.failure_from(error, url, seen)),
        }
    }

    /// A token answer, refused when its access token could not be sent as a bearer token.
    fn accept(
        &self,
        response: &BasicTokenResponse,
        url: &str,
        sent: Option<&SecretString>,
    ) -> Result<Token, Failure> {
        if !is_bearer_token(response.access_token().secret()) {
            return Err(Failure::new(
                Reason::UnexpectedResponse,
                format!(
                    "the token endpoint at {} issued an access token that is not a valid bearer token",
                    redact_url(url)
                ),
            ));
        }
        Ok(self.token_from(response, sent))
    }

    fn token_from(&self, response: &BasicTokenResponse, sent: Option<&SecretString>) -> Token {
        let lifetime = response.expires_in().unwrap_or(DEFAULT_LIFETIME);
        let now = Instant::now();
        // `usable_for` is at most a day, which every platform's `Instant` can add; were it
        // not, renewing at once is the safe side.
        let renew_at = now.checked_add(usable_for(lifetime)).unwrap_or(now);
        let rotated_refresh_token = match (response.refresh_token(), sent) {
            (Some(new), Some(old)) if new.secret() != old.expose_secret() => {
                Some(SecretString::from(new.secret().clone()))
            }
            _ => None,
        };
        Token {
            access_token: SecretString::from(response.access_token().secret().clone()),
            renew_at,
            rotated_refresh_token,
            from_cache: false,
        }
    }

    fn failure_from(
        &self,
        error: RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>,
        url: &str,
        seen: Option<Seen>,
    ) -> Failure {
        const WHAT: &str = "the token endpoint";
        if seen.is_some_and(|s| s.oversized) {
            return too_large_failure(WHAT, url);
        }
        let seen = seen.map(|s| (s.status, s.retry_after));
        match error {
            RequestTokenError::ServerResponse(e) => {
                let failure = entra_failure(
                    e.error().as_ref(),
                    e.error_description().map(|d| d.as_str()),
                );
                match seen {
                    // Throttling may come as a JSON error body too; the status decides.
                    Some((429, retry_after)) => Failure {
                        reason: Reason::Throttled,
                        retry_after,
                        ..failure
                    },
                    _ => failure,
                }
            }
            RequestTokenError::Request(HttpClientError::Reqwest(e)) => {
                transport_failure(WHAT, url, &e, self.timeout)
            }
            // Parse errors keep the body and serde's text, which may quote token values:
            // neither goes into the message.
            RequestTokenError::Parse(..)
            | RequestTokenError::Other(_)
            | RequestTokenError::Request(_) => match seen {
                Some((200, _)) | None => Failure::new(
                    Reason::UnexpectedResponse,
                    format!(
                        "{WHAT} at {} answered with something that is not a token response",
                        redact_url(url)
                    ),
                ),
                Some((status, retry_after)) => {
                    let mut f = status_failure(WHAT, status, retry_after);
                    f.message = format!("{} ({})", f.message, redact_url(url));
                    f
                }
            },
        }
    }
}

/// RFC 6750's `b64token`, the syntax of a bearer token (Entra's JWTs fit it). Anything
/// else could not be sent in an `Authorization` header, or would be sent mangled, and the
/// mailbox request would fail as if the network or the credentials were at fault.
fn is_bearer_token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_follow_rfc_6750() {
        for good in ["eyJ0.eyJ1.sig", "a-b_c~d+e/f", "abc==", "a"] {
            assert!(is_bearer_token(good), "{good:?}");
        }
        for bad in [
            "",
            "==",
            "a=b",
            "a b",
            "a\r\nX: 1",
            "a\u{0}",
            "\u{e9}",
            "a,b",
            "\"a\"",
        ] {
            assert!(!is_bearer_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_used_until_the_margin_or_half_their_life_and_at_most_a_day() {
        let s = Duration::from_secs;
        let cases = [
            (Duration::ZERO, Duration::ZERO),
            (s(1), Duration::from_millis(500)),
            (s(120), s(60)),
            (s(600), s(300)),
            (s(3600), s(3300)),
            (s(24 * 3600), s(24 * 3600 - 300)),
            (s(24 * 3600 + 1), s(24 * 3600 - 300)),
            (s(u64::MAX), s(24 * 3600 - 300)),
            (Duration::MAX, s(24 * 3600 - 300)),
        ];
        for (lifetime, expected) in cases {
            assert_eq!(usable_for(lifetime), expected, "{lifetime:?}");
        }
    }
}
