//! The real Exchange backend: EWS for Exchange Server, Microsoft Graph for Microsoft 365,
//! OAuth 2.0 tokens from Entra ID, with per-mailbox and per-provider limits and a timeout
//! on every request.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::SecretString;
use tracing::debug;

use super::clients::{HttpClients, ProxySettings};
use super::errors::{RequestFailure, ensure_allowed, transport_failure};
use super::ews::{self, Auth, FolderRequest};
use super::graph::{self, Folder};
use super::limits::ProbeLimits;
use super::lockout::{LoginBudget, login_identity};
use super::token::{Token, TokenSource};
use super::{
    Credential, Failure, MailBackend, MailboxOutcome, MailboxProbe, ProviderOutcome, ProviderProbe,
    Service, Trust,
};
use crate::api::conditions::Reason;
use crate::config::OperatorConfig;
use crate::metrics::Metrics;
use crate::redact::redact_url;

/// Talks to Exchange and Entra ID over HTTPS, verifying each provider's servers under its
/// own trust.
pub struct ExchangeClient {
    clients: Arc<HttpClients>,
    tokens: TokenSource,
    limits: ProbeLimits,
    metrics: Arc<Metrics>,
    timeout: Duration,
    allow_insecure: bool,
    logins: LoginBudget,
}

impl ExchangeClient {
    /// Build a client with the operator's timeouts and limits, and the proxies of the
    /// process's environment (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`).
    pub fn new(config: &OperatorConfig, metrics: Arc<Metrics>) -> crate::Result<Self> {
        let proxy = ProxySettings::from_env();
        tracing::info!(proxy = %proxy.describe(), "Exchange and Entra ID traffic");
        Self::with_proxy(config, metrics, proxy)
    }

    /// Build a client with these proxies rather than the environment's.
    pub fn with_proxy(
        config: &OperatorConfig,
        metrics: Arc<Metrics>,
        proxy: ProxySettings,
    ) -> crate::Result<Self> {
        let timeout = config.request_timeout;
        let clients = Arc::new(HttpClients::new(timeout, proxy)?);
        Ok(ExchangeClient {
            tokens: TokenSource::new(clients.clone(), timeout, metrics.clone()),
            clients,
            limits: ProbeLimits::new(config.max_probes_per_provider),
            metrics,
            timeout,
            allow_insecure: config.allow_insecure_endpoints,
            logins: LoginBudget::new(config.login_failures, config.login_window),
        })
    }

    /// Log in as `identity` within its failed-login budget: refused (`LoginPaused`)
    /// without sending anything while the budget is spent; a refusal of the credentials
    /// counts against it.
    async fn login<T>(
        &self,
        identity: &str,
        login: impl std::future::Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let attempt = self
            .logins
            .attempt(identity)
            .await
            .map_err(|paused| paused.failure(self.logins.window()))?;
        let result = login.await;
        attempt.settle(&result);
        result
    }

    /// How many probes wait for a per-mailbox or per-provider slot (a sign of throttling
    /// by our own limits; also lets tests observe the limits without timing).
    pub fn probes_waiting(&self) -> usize {
        self.limits.waiting()
    }

    /// How many HTTP clients (one per distinct trust, each with its connection pool) are
    /// kept.
    pub fn http_clients(&self) -> usize {
        self.clients.len()
    }

    /// An access token for OAuth2 credentials, from the authority verified under the
    /// provider's `trust`; `None` for Basic.
    async fn token(
        &self,
        credential: &Credential,
        trust: &Trust,
    ) -> Result<Option<Token>, Failure> {
        match credential {
            Credential::ClientCredentials(app) => {
                ensure_allowed(&app.authority, self.allow_insecure)?;
                self.tokens.app_token(app, trust).await.map(Some)
            }
            Credential::RefreshToken { app, refresh_token } => {
                ensure_allowed(&app.authority, self.allow_insecure)?;
                self.tokens
                    .delegated_token(app, trust, refresh_token)
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
        let http = self.clients.get(probe.service.trust())?;
        match &probe.service {
            Service::Ews { url, .. } => {
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
                ews::get_folder(&http, &request, self.timeout).await
            }
            Service::Graph { base, .. } => {
                let Some(token) = token else {
                    return Err(basic_with_graph().into());
                };
                graph::get_folder(
                    &http,
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
        let trust = probe.service.trust();
        self.tokens.evict(app, trust, used).await;
        let fresh = self.tokens.app_token(app, trust).await?;
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
        let identity = login_identity(&probe.credential, &probe.login);
        let token = self.token(&probe.credential, probe.service.trust());
        let mut token = match self.login(&identity, token).await {
            Ok(token) => token,
            Err(f) => return failed(f, None),
        };
        let rotated = token.as_ref().and_then(|t| t.rotated_refresh_token.clone());
        if let (Some(sink), Some(rotated)) = (&probe.store_rotated, &rotated) {
            sink.store(rotated.clone()).await;
        }
        let inbox = self.open_with_renewal(probe, &mut token, Folder::Inbox);
        // A Basic login happens with the request itself.
        let mut mailbox = match &probe.credential {
            Credential::Basic { .. } => self.login(&identity, inbox).await,
            _ => inbox.await,
        };
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
        let http = match self.clients.get(service.trust()) {
            Ok(http) => http,
            Err(f) => {
                let result = Err(f);
                self.record(service, &result);
                return result;
            }
        };
        let result = match http.get(url).send().await {
            Ok(response) => {
                debug!(endpoint = %redact_url(url), status = response.status().as_u16(), "endpoint answered");
                Ok(())
            }
            Err(e) => Err(transport_failure(what, url, &e, self.timeout)),
        };
        self.record(service, &result);
        result
    }

    /// Credentials check without a mailbox: a token, or a Basic login EWS accepts, within
    /// the identity's failed-login budget.
    async fn check_credentials(
        &self,
        service: &Service,
        credential: &Credential,
    ) -> Result<(), Failure> {
        let identity = login_identity(credential, "");
        self.login(&identity, self.log_in(service, credential))
            .await
    }

    async fn log_in(&self, service: &Service, credential: &Credential) -> Result<(), Failure> {
        match (service, credential) {
            (Service::Graph { .. }, Credential::Basic { .. }) => Err(basic_with_graph()),
            (Service::Ews { url, trust }, Credential::Basic { username, password }) => {
                ensure_allowed(url, self.allow_insecure)?;
                let http = self.clients.get(trust)?;
                let request = FolderRequest {
                    url,
                    folder: "msgfolderroot",
                    impersonate: None,
                    auth: Auth::Basic { username, password },
                    subject: "the account's own mailbox",
                };
                let result = ews::get_folder(&http, &request, self.timeout).await;
                match result.map_err(|e| e.failure) {
                    // An impersonation account may have no mailbox of its own: EWS
                    // judging the mailbox proves it accepted the login.
                    Err(f) if matches!(f.reason, Reason::MailboxNotFound | Reason::OutOfScope) => {
                        Ok(())
                    }
                    other => other,
                }
            }
            _ => self.token(credential, service.trust()).await.map(|_| ()),
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
        Service::Ews { url, .. } => url,
        Service::Graph { base, .. } => base,
    }
}

fn basic_with_graph() -> Failure {
    Failure::new(
        Reason::AuthMethodMismatch,
        "Microsoft Graph accepts only OAuth2 tokens, not a user name and password",
    )
}

impl MailBackend for ExchangeClient {
    fn login_budget(&self) -> Option<&LoginBudget> {
        Some(&self.logins)
    }

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
