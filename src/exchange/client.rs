//! The real Exchange backend: EWS for Exchange Server, Microsoft Graph for Microsoft 365,
//! OAuth 2.0 tokens from Entra ID, with per-mailbox and per-provider limits and a timeout
//! on every request.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::SecretString;
use tracing::debug;

use super::errors::{RequestFailure, ensure_allowed, transport_failure};
use super::ews::{self, Auth, FolderRequest};
use super::graph::{self, Folder};
use super::limits::ProbeLimits;
use super::token::{Token, TokenSource};
use super::{
    Credential, Failure, MailBackend, MailboxOutcome, MailboxProbe, ProviderOutcome, ProviderProbe,
    Service,
};
use crate::api::conditions::Reason;
use crate::config::OperatorConfig;
use crate::metrics::Metrics;
use crate::redact::redact_url;

/// Talks to Exchange and Entra ID over HTTPS.
pub struct ExchangeClient {
    http: reqwest::Client,
    tokens: TokenSource,
    limits: ProbeLimits,
    metrics: Arc<Metrics>,
    timeout: Duration,
    allow_insecure: bool,
}

impl ExchangeClient {
    /// Build a client with the operator's timeouts and limits.
    pub fn new(config: &OperatorConfig, metrics: Arc<Metrics>) -> crate::Result<Self> {
        let timeout = config.request_timeout;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect could carry credentials elsewhere; Exchange and Entra ID do not
            // redirect these calls.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mailops/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(ExchangeClient {
            tokens: TokenSource::new(http.clone(), timeout, metrics.clone()),
            http,
            limits: ProbeLimits::new(config.max_probes_per_provider),
            metrics,
            timeout,
            allow_insecure: config.allow_insecure_endpoints,
        })
    }

    /// How many probes wait for a per-mailbox or per-provider slot (a sign of throttling
    /// by our own limits; also lets tests observe the limits without timing).
    pub fn probes_waiting(&self) -> usize {
        self.limits.waiting()
    }

    /// An access token for OAuth2 credentials; `None` for Basic.
    async fn token(&self, credential: &Credential) -> Result<Option<Token>, Failure> {
        match credential {
            Credential::ClientCredentials(app) => {
                ensure_allowed(&app.authority, self.allow_insecure)?;
                self.tokens.app_token(app).await.map(Some)
            }
            Credential::RefreshToken { app, refresh_token } => {
                ensure_allowed(&app.authority, self.allow_insecure)?;
                self.tokens
                    .delegated_token(app, refresh_token)
                    .await
                    .map(Some)
            }
            Credential::Basic { .. } => Ok(None),
        }
    }

    /// Open one folder of the probed mailbox.
    async fn open(
        &self,
        probe: &MailboxProbe,
        token: Option<&Token>,
        folder: Folder,
    ) -> Result<(), RequestFailure> {
        let auth = auth_for(&probe.credential, token)?;
        match &probe.service {
            Service::Ews { url } => {
                let (name, label) = match folder {
                    Folder::Inbox => ("inbox", "inbox"),
                    Folder::Calendar => ("calendar", "calendar"),
                };
                let subject = format!("the {label} of {}", probe.email);
                let request = FolderRequest {
                    url,
                    folder: name,
                    impersonate: probe.via_service_account.then_some(probe.email.as_str()),
                    auth,
                    subject: &subject,
                };
                ews::get_folder(&self.http, &request, self.timeout).await
            }
            Service::Graph { base } => {
                let Some(token) = token else {
                    return Err(basic_with_graph().into());
                };
                graph::get_folder(
                    &self.http,
                    base,
                    &probe.email,
                    folder,
                    &token.access_token,
                    self.timeout,
                )
                .await
            }
        }
    }

    /// Open one folder; when the mailbox refuses a cached app token with HTTP 401, evict
    /// it and try once more with a new one (kept in `token` for the next folder). A token
    /// obtained for this probe and refused is reported as it is: another would fare no
    /// better, and a single retry cannot become a loop.
    async fn open_with_renewal(
        &self,
        probe: &MailboxProbe,
        token: &mut Option<Token>,
        folder: Folder,
    ) -> Result<(), Failure> {
        let refused = match self.open(probe, token.as_ref(), folder).await {
            Err(e) if e.unauthorized => e.failure,
            other => return other.map_err(|e| e.failure),
        };
        let (Credential::ClientCredentials(app), Some(used)) = (&probe.credential, &*token) else {
            return Err(refused);
        };
        if !used.from_cache {
            return Err(refused);
        }
        debug!(
            provider = %probe.provider,
            mailbox = %probe.email,
            "a cached app token was refused (HTTP 401); trying once with a new one"
        );
        self.tokens.evict(app, used).await;
        let fresh = self.tokens.app_token(app).await?;
        let result = self.open(probe, Some(&fresh), folder).await;
        *token = Some(fresh);
        result.map_err(|e| e.failure)
    }

    async fn verify(&self, probe: &MailboxProbe) -> MailboxOutcome {
        let failed = |failure: Failure, rotated: Option<SecretString>| MailboxOutcome {
            mailbox: Err(failure),
            calendar: None,
            rotated_refresh_token: rotated,
        };
        if let Err(f) = ensure_allowed(service_url(&probe.service), self.allow_insecure) {
            return failed(f, None);
        }
        if matches!(
            (&probe.service, &probe.credential),
            (Service::Graph { .. }, Credential::Basic { .. })
        ) {
            return failed(basic_with_graph(), None);
        }
        let mut token = match self.token(&probe.credential).await {
            Ok(token) => token,
            Err(f) => return failed(f, None),
        };
        let rotated = token.as_ref().and_then(|t| t.rotated_refresh_token.clone());
        let mut mailbox = self
            .open_with_renewal(probe, &mut token, Folder::Inbox)
            .await;
        if mailbox.is_ok()
            && probe.check_send
            && let (Service::Graph { .. }, Some(token)) = (&probe.service, &token)
        {
            // EWS has no cheap way to ask for send rights; Graph tokens list them.
            mailbox = graph::require_mail_send(&token.access_token);
        }
        let reached = match &mailbox {
            Ok(()) => true,
            Err(f) => f.reason == Reason::MissingPermission,
        };
        let calendar = if probe.check_calendar && reached {
            Some(
                self.open_with_renewal(probe, &mut token, Folder::Calendar)
                    .await,
            )
        } else {
            None
        };
        MailboxOutcome {
            mailbox,
            calendar,
            rotated_refresh_token: rotated,
        }
    }

    /// Reachability: any HTTP answer counts, whatever its status.
    async fn reach(&self, service: &Service) -> Result<(), Failure> {
        let url = service_url(service);
        ensure_allowed(url, self.allow_insecure)?;
        let what = match service {
            Service::Ews { .. } => "EWS",
            Service::Graph { .. } => "Microsoft Graph",
        };
        let result = match self.http.get(url).send().await {
            Ok(response) => {
                debug!(endpoint = %redact_url(url), status = response.status().as_u16(), "endpoint answered");
                Ok(())
            }
            Err(e) => Err(transport_failure(what, url, &e, self.timeout)),
        };
        self.record(service, &result);
        result
    }

    /// Credentials check without a mailbox: a token, or a Basic login EWS accepts.
    async fn check_credentials(
        &self,
        service: &Service,
        credential: &Credential,
    ) -> Result<(), Failure> {
        match (service, credential) {
            (Service::Graph { .. }, Credential::Basic { .. }) => Err(basic_with_graph()),
            (Service::Ews { url }, Credential::Basic { username, password }) => {
                ensure_allowed(url, self.allow_insecure)?;
                let request = FolderRequest {
                    url,
                    folder: "msgfolderroot",
                    impersonate: None,
                    auth: Auth::Basic { username, password },
                    subject: "the account's own mailbox",
                };
                let result = ews::get_folder(&self.http, &request, self.timeout).await;
                match result.map_err(|e| e.failure) {
                    // An impersonation account may have no mailbox of its own: EWS
                    // judging the mailbox proves it accepted the login.
                    Err(f) if matches!(f.reason, Reason::MailboxNotFound | Reason::OutOfScope) => {
                        Ok(())
                    }
                    other => other,
                }
            }
            _ => self.token(credential).await.map(|_| ()),
        }
    }

    fn record(&self, service: &Service, result: &Result<(), Failure>) {
        let label = match result {
            Ok(()) => "success",
            Err(f) => f.reason.as_str(),
        };
        self.metrics.record_probe(service.label(), label);
    }
}

/// How requests authenticate: Basic from the credential, or the bearer token.
fn auth_for<'a>(credential: &'a Credential, token: Option<&'a Token>) -> Result<Auth<'a>, Failure> {
    match (credential, token) {
        (Credential::Basic { username, password }, _) => Ok(Auth::Basic { username, password }),
        (_, Some(token)) => Ok(Auth::Bearer(&token.access_token)),
        (_, None) => Err(Failure::new(
            Reason::UnexpectedResponse,
            "no access token was obtained",
        )),
    }
}

fn service_url(service: &Service) -> &str {
    match service {
        Service::Ews { url } => url,
        Service::Graph { base } => base,
    }
}

fn basic_with_graph() -> Failure {
    Failure::new(
        Reason::AuthMethodMismatch,
        "Microsoft Graph accepts only OAuth2 tokens, not a user name and password",
    )
}

impl MailBackend for ExchangeClient {
    fn check_provider<'a>(&'a self, probe: &'a ProviderProbe) -> BoxFuture<'a, ProviderOutcome> {
        Box::pin(async move {
            let _slot = self.limits.acquire(&probe.provider, None).await;
            let reachable = self.reach(&probe.service).await;
            let authenticated = match &probe.credential {
                None => None,
                Some(credential) => Some(self.check_credentials(&probe.service, credential).await),
            };
            debug!(
                provider = %probe.provider,
                reachable = reachable.is_ok(),
                authenticated = ?authenticated.as_ref().map(|a| a.is_ok()),
                "provider checked"
            );
            ProviderOutcome {
                reachable,
                authenticated,
            }
        })
    }

    fn authenticate<'a>(
        &'a self,
        provider: &'a str,
        service: &'a Service,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let _slot = self.limits.acquire(provider, None).await;
            let result = self.check_credentials(service, credential).await;
            debug!(provider, ok = result.is_ok(), "credentials checked");
            result
        })
    }

    fn verify_mailbox<'a>(&'a self, probe: &'a MailboxProbe) -> BoxFuture<'a, MailboxOutcome> {
        Box::pin(async move {
            let _slot = self
                .limits
                .acquire(&probe.provider, Some(&probe.email))
                .await;
            let outcome = self.verify(probe).await;
            self.record(&probe.service, &outcome.mailbox);
            match &outcome.mailbox {
                Ok(()) => {
                    debug!(provider = %probe.provider, mailbox = %probe.email, "mailbox verified")
                }
                Err(f) => debug!(
                    provider = %probe.provider,
                    mailbox = %probe.email,
                    reason = %f.reason,
                    detail = %f.message,
                    "mailbox not verified"
                ),
            }
            outcome
        })
    }
}
