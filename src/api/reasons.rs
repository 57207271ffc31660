//! Condition types and the one documented list of condition reasons (with the retry
//! policy of each): the vocabulary the condition helpers and `Condition` share.

/// Summary condition on every kind (kstatus-compatible).
pub const READY: &str = "Ready";
/// Provider / service account: a token or login was obtained with the configured credentials.
pub const AUTHENTICATED: &str = "Authenticated";
/// Provider: its endpoint answers over TLS.
pub const REACHABLE: &str = "Reachable";
/// Provider / service account: deletion is requested (and possibly blocked).
pub const TERMINATING: &str = "Terminating";
/// Binding: the binding's namespace may use the provider and service account it names.
pub const AUTHORIZED: &str = "Authorized";
/// Binding: Exchange confirmed the mailbox with the effective credentials.
pub const VERIFIED: &str = "Verified";
/// Binding: the mailbox's calendar is connected.
pub const CALENDAR_CONNECTED: &str = "CalendarConnected";

/// Every condition reason mailops writes. CamelCase, stable: users alert and script on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// All checks passed.
    Verified,
    /// The object is being reconciled for the first time or after a change.
    Reconciling,
    /// A condition does not apply (e.g. calendar not requested, Basic provider not using tokens).
    NotRequested,
    /// The named provider does not exist, or no provider serves the address's domain.
    ProviderNotFound,
    /// More than one provider serves the address's domain.
    AmbiguousProvider,
    /// The provider exists but is not Ready.
    ProviderNotReady,
    /// The provider is being deleted; no new binding may attach to it.
    ProviderTerminating,
    /// The named ExchangeServiceAccount does not exist.
    ServiceAccountNotFound,
    /// The service account is not Ready.
    ServiceAccountNotReady,
    /// The service account is being deleted; no new binding may attach to it.
    ServiceAccountTerminating,
    /// The service account belongs to a different provider than the binding uses.
    ServiceAccountProviderMismatch,
    /// The binding's namespace is not admitted by the provider's or service account's
    /// `allowedNamespaces`.
    NamespaceNotAllowed,
    /// A referenced Secret does not exist.
    SecretNotFound,
    /// A referenced Secret lacks the expected key.
    SecretKeyMissing,
    /// The ConfigMap named by a provider's `spec.tls.caBundleFrom` does not exist.
    ConfigMapNotFound,
    /// That ConfigMap lacks the key named.
    ConfigMapKeyMissing,
    /// The provider's `loginFormat` is `Manual` and the binding gives no `spec.login`.
    LoginRequired,
    /// The credentials kind does not fit the provider's authentication method.
    AuthMethodMismatch,
    /// An endpoint is not allowed (e.g. plain http without `--allow-insecure-endpoints`).
    InsecureEndpoint,
    /// Exchange or Entra ID refused the credentials. Not tried again until they (or the
    /// spec) change: a retry on a timer is how accounts get locked out.
    InvalidCredentials,
    /// Failed logins for the account this object logs in as reached the cluster-wide
    /// budget: nothing is sent for that account until the window passes.
    LoginPaused,
    /// Exchange does not know the mailbox.
    MailboxNotFound,
    /// Exchange answered access denied for this mailbox while the credentials work.
    OutOfScope,
    /// The app token lacks a permission the settings need (e.g. `Mail.Send`).
    MissingPermission,
    /// The server could not be reached (DNS, TCP, a TLS handshake that failed for another
    /// reason than the certificate, timeout, 5xx).
    Unreachable,
    /// The server's certificate does not lead to a CA this provider trusts.
    CertificateUntrusted,
    /// The server's certificate has expired (or is not valid yet).
    CertificateExpired,
    /// The server's certificate is not valid for the name it was reached by (or
    /// `spec.tls.serverName`).
    CertificateNameMismatch,
    /// The provider's CA bundle (inline or from its ConfigMap or Secret) is not PEM
    /// certificates.
    InvalidCABundle,
    /// Exchange asked us to slow down (HTTP 429 / ErrorServerBusy).
    Throttled,
    /// Exchange answered something mailops could not interpret.
    UnexpectedResponse,
    /// Deletion is blocked while other objects still use this one.
    InUse,
    /// Deletion proceeds: nothing uses the object any more.
    Deleting,
}

impl Reason {
    /// Every reason, in documentation order.
    pub const ALL: &'static [Reason] = &[
        Reason::Verified,
        Reason::Reconciling,
        Reason::NotRequested,
        Reason::ProviderNotFound,
        Reason::AmbiguousProvider,
        Reason::ProviderNotReady,
        Reason::ProviderTerminating,
        Reason::ServiceAccountNotFound,
        Reason::ServiceAccountNotReady,
        Reason::ServiceAccountTerminating,
        Reason::ServiceAccountProviderMismatch,
        Reason::NamespaceNotAllowed,
        Reason::SecretNotFound,
        Reason::SecretKeyMissing,
        Reason::ConfigMapNotFound,
        Reason::ConfigMapKeyMissing,
        Reason::LoginRequired,
        Reason::AuthMethodMismatch,
        Reason::InsecureEndpoint,
        Reason::InvalidCredentials,
        Reason::LoginPaused,
        Reason::MailboxNotFound,
        Reason::OutOfScope,
        Reason::MissingPermission,
        Reason::Unreachable,
        Reason::CertificateUntrusted,
        Reason::CertificateExpired,
        Reason::CertificateNameMismatch,
        Reason::InvalidCABundle,
        Reason::Throttled,
        Reason::UnexpectedResponse,
        Reason::InUse,
        Reason::Deleting,
    ];

    /// The CamelCase string written into conditions and Events.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Verified => "Verified",
            Reason::Reconciling => "Reconciling",
            Reason::NotRequested => "NotRequested",
            Reason::ProviderNotFound => "ProviderNotFound",
            Reason::AmbiguousProvider => "AmbiguousProvider",
            Reason::ProviderNotReady => "ProviderNotReady",
            Reason::ProviderTerminating => "ProviderTerminating",
            Reason::ServiceAccountNotFound => "ServiceAccountNotFound",
            Reason::ServiceAccountNotReady => "ServiceAccountNotReady",
            Reason::ServiceAccountTerminating => "ServiceAccountTerminating",
            Reason::ServiceAccountProviderMismatch => "ServiceAccountProviderMismatch",
            Reason::NamespaceNotAllowed => "NamespaceNotAllowed",
            Reason::SecretNotFound => "SecretNotFound",
            Reason::SecretKeyMissing => "SecretKeyMissing",
            Reason::ConfigMapNotFound => "ConfigMapNotFound",
            Reason::ConfigMapKeyMissing => "ConfigMapKeyMissing",
            Reason::LoginRequired => "LoginRequired",
            Reason::AuthMethodMismatch => "AuthMethodMismatch",
            Reason::InsecureEndpoint => "InsecureEndpoint",
            Reason::InvalidCredentials => "InvalidCredentials",
            Reason::LoginPaused => "LoginPaused",
            Reason::MailboxNotFound => "MailboxNotFound",
            Reason::OutOfScope => "OutOfScope",
            Reason::MissingPermission => "MissingPermission",
            Reason::Unreachable => "Unreachable",
            Reason::CertificateUntrusted => "CertificateUntrusted",
            Reason::CertificateExpired => "CertificateExpired",
            Reason::CertificateNameMismatch => "CertificateNameMismatch",
            Reason::InvalidCABundle => "InvalidCABundle",
            Reason::Throttled => "Throttled",
            Reason::UnexpectedResponse => "UnexpectedResponse",
            Reason::InUse => "InUse",
            Reason::Deleting => "Deleting",
        }
    }

    /// What a failure with this reason waits for before the next attempt: the one table
    /// of retry policy. A problem in declared state (fix the YAML or a Secret) or a wait
    /// for another object (a provider to become Ready, users to go) is retried when a
    /// watch event says something changed; Exchange and the network are retried on a
    /// timer with back-off. A certificate problem is neither: see [`Retry::Slowly`].
    pub fn retry(self) -> Retry {
        match self {
            Reason::ProviderNotFound
            | Reason::AmbiguousProvider
            | Reason::ProviderNotReady
            | Reason::ProviderTerminating
            | Reason::ServiceAccountNotFound
            | Reason::ServiceAccountNotReady
            | Reason::ServiceAccountTerminating
            | Reason::ServiceAccountProviderMismatch
            | Reason::NamespaceNotAllowed
            | Reason::SecretNotFound
            | Reason::SecretKeyMissing
            | Reason::ConfigMapNotFound
            | Reason::ConfigMapKeyMissing
            | Reason::LoginRequired
            | Reason::AuthMethodMismatch
            | Reason::InsecureEndpoint
            | Reason::InvalidCABundle
            | Reason::InvalidCredentials
            | Reason::InUse
            | Reason::Deleting => Retry::AwaitChange,
            Reason::Verified
            | Reason::Reconciling
            | Reason::NotRequested
            | Reason::LoginPaused
            | Reason::MailboxNotFound
            | Reason::OutOfScope
            | Reason::MissingPermission
            | Reason::Unreachable
            | Reason::Throttled
            | Reason::UnexpectedResponse => Retry::BackOff,
            Reason::CertificateUntrusted
            | Reason::CertificateExpired
            | Reason::CertificateNameMismatch => Retry::Slowly,
        }
    }
}

/// How long [`Retry::Slowly`] waits: the back-off's cap, so a certificate problem is
/// tried again as often as the most patient transient failure, and no more.
pub const SLOW_RETRY: std::time::Duration = std::time::Duration::from_secs(300);

/// When to try again after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Only a change of this or another object can help: wait for a watch event.
    AwaitChange,
    /// It may pass by itself: try again after a back-off (or the server's delay).
    BackOff,
    /// Retrying soon cannot help, and a change mailops watches may not come either: a
    /// server's certificate is renewed or replaced on the server, outside the cluster, and
    /// that takes minutes at least. So: no quick retries (5 s, 10 s, ... of `BackOff` would
    /// only repeat the same handshake), but a try at the back-off's cap (5 minutes), and
    /// at once on a change of the provider or its CA bundle. Nothing is sent but a TLS
    /// handshake, which fails before any credential leaves.
    Slowly,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fixed condition messages (the others name a mailbox, an endpoint or a failure):
/// written by the controllers, and words of [`super::condition::Word`]'s vocabulary.
/// Binding `Ready`: Exchange confirmed the mailbox (followed by the settings' notes, if any).
pub const MSG_MAILBOX_VERIFIED: &str = "mailbox verified";
/// Binding `Authorized`.
pub const MSG_NAMESPACE_MAY_USE: &str = "the namespace may use the provider and account";
/// Binding `CalendarConnected`.
pub const MSG_CALENDAR_CONNECTED: &str = "the calendar is connected";
/// Binding `CalendarConnected` before its first check.
pub const MSG_CALENDAR_NOT_CHECKED: &str = "the calendar was not checked yet";
/// Binding `CalendarConnected` when not requested.
pub const MSG_CALENDAR_OFF: &str = "connectCalendar is off";
/// Provider `Ready`.
pub const MSG_PROVIDER_WORKS: &str = "the provider is reachable and its credentials work";
/// Service account `Authenticated` and `Ready`.
pub const MSG_ACCOUNT_WORKS: &str = "the service account's credentials work";
/// Provider `Authenticated` (OAuth 2.0).
pub const MSG_TOKEN_OBTAINED: &str = "a token was obtained with the app credentials";
/// Provider `Authenticated` (Basic).
pub const MSG_NO_APP_TOKEN: &str = "Basic provider: no app token to obtain";
/// Provider `Reachable`.
pub const MSG_ENDPOINT_ANSWERS: &str = "endpoint answers over TLS";
/// Every fixed message, for the vocabulary.
pub const FIXED_MESSAGES: &[&str] = &[
    MSG_MAILBOX_VERIFIED,
    MSG_NAMESPACE_MAY_USE,
    MSG_CALENDAR_CONNECTED,
    MSG_CALENDAR_NOT_CHECKED,
    MSG_CALENDAR_OFF,
    MSG_PROVIDER_WORKS,
    MSG_ACCOUNT_WORKS,
    MSG_TOKEN_OBTAINED,
    MSG_NO_APP_TOKEN,
    MSG_ENDPOINT_ANSWERS,
];
