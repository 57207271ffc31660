//! Exchange behind a trait: what the controllers ask of a mail backend, with no Kubernetes
//! types, so controllers are tested with a fake and the real EWS / Graph client lives
//! beside it.

use std::sync::Arc;

use futures::future::BoxFuture;
use secrecy::SecretString;

pub use failure::Failure;
pub use trust::Trust;

/// An Entra ID app registration and what to ask it for. The secret is a `SecretString`,
/// whose `Debug` is redacted.
#[derive(Clone, Debug)]
pub struct OAuthApp {
    /// Authority base URL, e.g. `https://login.microsoftonline.com`.
    pub authority: String,
    /// Tenant ID or domain.
    pub tenant_id: String,
    /// Application (client) ID.
    pub client_id: String,
    /// Client secret.
    pub client_secret: SecretString,
    /// Scopes to request (e.g. `https://graph.microsoft.com/.default`).
    pub scopes: Vec<String>,
}

/// Credentials handed to the backend, already read from Secrets. Secret material is held
/// in `SecretString`, whose `Debug` is redacted.
#[derive(Clone, Debug)]
pub enum Credential {
    /// App-only OAuth 2.0 client credentials (a provider's or a service account's app).
    ClientCredentials(OAuthApp),
    /// Delegated OAuth 2.0 refresh token of one mailbox, redeemed with the provider's app.
    RefreshToken {
        /// The provider's app.
        app: OAuthApp,
        /// The mailbox's refresh token.
        refresh_token: SecretString,
    },
    /// User name and password (Basic authentication against Exchange Server).
    Basic {
        /// User name (for a service account: the impersonation account).
        username: String,
        /// Password.
        password: SecretString,
    },
}

/// Which protocol, where, and under which trust. The trust is the provider's: it applies
/// to the token authority of the credentials used with this service too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Service {
    /// Exchange Web Services at this URL (`https://host/EWS/Exchange.asmx`).
    Ews {
        /// Full EWS URL.
        url: String,
        /// The CAs and name the provider's servers are verified against.
        trust: Trust,
    },
    /// Microsoft Graph at this base (`https://graph.microsoft.com/v1.0`).
    Graph {
        /// Graph base URL including the version segment.
        base: String,
        /// The CAs and name the provider's servers are verified against.
        trust: Trust,
    },
}

impl Service {
    /// A static label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Service::Ews { .. } => "ews",
            Service::Graph { .. } => "graph",
        }
    }

    /// The provider's trust, for this service and its token authority.
    pub fn trust(&self) -> &Trust {
        match self {
            Service::Ews { trust, .. } | Service::Graph { trust, .. } => trust,
        }
    }
}

/// What to check for a provider.
#[derive(Clone, Debug)]
pub struct ProviderProbe {
    /// Provider name (for logs and per-provider limits).
    pub provider: String,
    /// The endpoint mailboxes use.
    pub service: Service,
    /// The provider's own app credentials; `None` for Basic providers (only reachability).
    pub credential: Option<Credential>,
}

/// Result of a provider check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderOutcome {
    /// The endpoint answered over TLS.
    pub reachable: Result<(), Failure>,
    /// A token was obtained; `None` when the provider has no OAuth2 credentials.
    pub authenticated: Option<Result<(), Failure>>,
}

/// What to verify for one mailbox.
#[derive(Clone, Debug)]
pub struct MailboxProbe {
    /// Provider name (for logs and per-provider limits).
    pub provider: String,
    /// The mailbox's SMTP address.
    pub email: String,
    /// Effective login (Basic user name, or the mailbox to impersonate).
    pub login: String,
    /// Where to probe.
    pub service: Service,
    /// With which credentials.
    pub credential: Credential,
    /// Acting through a service account: EWS impersonation of `email`, or app-only Graph.
    pub via_service_account: bool,
    /// Also check the calendar folder.
    pub check_calendar: bool,
    /// Also check the right to send (`Mail.Send` for Graph app tokens).
    pub check_send: bool,
    /// Where a refresh token the authority rotates is stored the moment it arrives,
    /// before the access token that came with it is used (a crash after that loses
    /// nothing); the outcome still carries it.
    pub store_rotated: Option<RotationSink>,
}

/// Stores a rotated refresh token (the binding's Secret); see
/// [`MailboxProbe::store_rotated`].
#[derive(Clone)]
pub struct RotationSink(pub Arc<dyn Fn(SecretString) -> BoxFuture<'static, ()> + Send + Sync>);

impl RotationSink {
    /// Store `token`, and wait until it is stored (or its storing failed).
    pub async fn store(&self, token: SecretString) {
        (self.0)(token).await
    }
}

impl std::fmt::Debug for RotationSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RotationSink")
    }
}

/// Result of a mailbox verification.
#[derive(Clone, Debug)]
pub struct MailboxOutcome {
    /// The mailbox's inbox could be opened.
    pub mailbox: Result<(), Failure>,
    /// The calendar could be opened; `None` when not asked for or not reached.
    pub calendar: Option<Result<(), Failure>>,
    /// A refresh token the authority rotated, to be written back to the binding's Secret.
    pub rotated_refresh_token: Option<SecretString>,
}

/// The mail system as the controllers see it.
pub trait MailBackend: Send + Sync + 'static {
    /// Check a provider's endpoint and, for OAuth2, its app credentials.
    fn check_provider<'a>(&'a self, probe: &'a ProviderProbe) -> BoxFuture<'a, ProviderOutcome>;
    /// Check that service-account credentials work (a token or a login is obtained).
    fn authenticate<'a>(
        &'a self,
        provider: &'a str,
        service: &'a Service,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<(), Failure>>;
    /// Verify one mailbox (inbox, and the calendar when asked).
    fn verify_mailbox<'a>(&'a self, probe: &'a MailboxProbe) -> BoxFuture<'a, MailboxOutcome>;
    /// The failed-login budget the backend keeps, if any (its pauses are announced).
    fn login_budget(&self) -> Option<&lockout::LoginBudget> {
        None
    }
}
pub mod body;
pub mod client;
pub mod clients;
pub mod entra;
pub mod errors;
pub mod ews;
pub mod failure;
pub mod fake;
pub mod graph;
pub mod limits;
pub mod lockout;
pub mod token;
mod token_http;
pub mod trust;
pub mod verifier;
