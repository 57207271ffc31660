//! Settings of a running operator, filled from command-line flags by `main`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which cluster a command talks to, chosen as kubectl chooses it, so `kubectl mailops
/// ... --context prod` (kubectl hands every flag after the plugin's name to the plugin)
/// means what it means to kubectl.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct ClusterArgs {
    /// The kubeconfig file (default: `KUBECONFIG`, else `~/.kube/config`, else the pod's
    /// service account).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Allow `http://` endpoint overrides (tests and private labs only).
    pub allow_insecure_endpoints: bool,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub http_addr: SocketAddr,
    /// Take a Lease before writing, so only one replica acts.
    pub leader_election: bool,
    /// Namespace of the leader-election Lease.
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    pub lease_name: String,
    /// This replica's identity in the Lease (usually the pod name).
    pub identity: String,
    /// How often a Ready mailbox is verified again (jitter is added).
    pub reverify_interval: Duration,
    /// Most Exchange probes in flight per provider.
    pub max_probes_per_provider: usize,
    /// Timeout of every request to Exchange or Entra ID.
    pub request_timeout: Duration,
    /// Deadline of every request to the Kubernetes API but the watches.
    pub kube_request_timeout: Duration,
    /// Failed logins allowed per account identity, cluster-wide, in any `login_window`.
    pub login_failures: usize,
    /// The window failed logins are counted in.
    pub login_window: Duration,
    /// Write a refresh token the authority rotated back to the binding's Secret. Off when
    /// the operator may not patch Secrets (chart value `rbac.secretWriteBack=false`).
    pub secret_write_back: bool,
    /// The admission webhook.
    pub webhook: WebhookConfig,
    /// The cluster (default: in-cluster, or the current kubeconfig context).
    pub cluster: ClusterArgs,
}

/// Where the webhook's serving certificate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookCertificates {
    /// The operator runs its own CA in a Secret, rotates the serving certificate and
    /// keeps the `caBundle` of its ValidatingWebhookConfiguration current.
    OwnCa,
    /// cert-manager writes the Secret and injects the CA; the operator only reads it.
    CertManager,
}

/// Settings of the validating admission webhook (see `crate::webhook`).
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Serve the webhook at all.
    pub enabled: bool,
    /// Where HTTPS is served.
    pub addr: SocketAddr,
    /// Refuse a DELETE of a provider or service account that is still used.
    pub refuse_in_use_deletion: bool,
    /// Who issues the serving certificate.
    pub certificates: WebhookCertificates,
    /// Namespace of the certificate Secret and of the webhook Service (the pod's).
    pub namespace: String,
    /// The Secret holding the CA and the serving certificate.
    pub secret_name: String,
    /// The ValidatingWebhookConfiguration whose `caBundle` is kept current.
    pub configuration_name: String,
    /// The webhook Service; its DNS names go into the serving certificate.
    pub service_name: String,
    /// More names or IP addresses for the serving certificate (a webhook registered by
    /// URL, e.g. when the operator runs outside the cluster).
    pub extra_hosts: Vec<String>,
    /// Timeout of one SubjectAccessReview.
    pub access_review_timeout: Duration,
    /// Connections served at once; the next waits until one closes.
    pub max_connections: usize,
    /// PEM file of the CAs that sign the API server's webhook client certificate: when
    /// set, a client without a certificate from them is refused at the TLS handshake.
    pub client_ca_file: Option<PathBuf>,
    /// Names (subject CN or DNS SAN) a client certificate must carry, one of; empty: any
    /// certificate from the client CAs.
    pub client_names: Vec<String>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            enabled: true,
            addr: SocketAddr::from(([0, 0, 0, 0], 9443)),
            refuse_in_use_deletion: true,
            certificates: WebhookCertificates::OwnCa,
            namespace: "mailops-system".into(),
            secret_name: "mailops-webhook-tls".into(),
            configuration_name: "mailops".into(),
            service_name: "mailops-webhook".into(),
            extra_hosts: Vec::new(),
            access_review_timeout: Duration::from_secs(3),
            max_connections: crate::webhook::server::MAX_CONNECTIONS,
            client_ca_file: None,
            client_names: Vec::new(),
        }
    }
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            allow_insecure_endpoints: false,
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            leader_election: true,
            lease_namespace: "mailops-system".into(),
            lease_name: "mailops-controller".into(),
            identity: "mailops".into(),
            reverify_interval: Duration::from_secs(3600),
            max_probes_per_provider: 8,
            request_timeout: Duration::from_secs(15),
            kube_request_timeout: Duration::from_secs(30),
            login_failures: crate::exchange::lockout::DEFAULT_FAILURES,
            login_window: crate::exchange::lockout::DEFAULT_WINDOW,
            secret_write_back: true,
            webhook: WebhookConfig::default(),
            cluster: ClusterArgs::default(),
        }
    }
}

/// Flags of `mailops run`.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Allow plain `http://` endpoint overrides (never in production).
    #[arg(long, env = "MAILOPS_ALLOW_INSECURE_ENDPOINTS")]
    pub allow_insecure_endpoints: bool,
    /// Address for `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value = "0.0.0.0:8080", env = "MAILOPS_HTTP_ADDR")]
    pub http_addr: SocketAddr,
    /// Do not write rotated OAuth2 refresh tokens back to bindings' Secrets (for an
    /// operator that may only read Secrets).
    #[arg(long, env = "MAILOPS_NO_SECRET_WRITE_BACK")]
    pub no_secret_write_back: bool,
    /// Disable leader election (only for a single replica).
    #[arg(long, env = "MAILOPS_NO_LEADER_ELECTION")]
    pub no_leader_election: bool,
    /// Namespace of the leader-election Lease (defaults to the pod's namespace).
    #[arg(long, default_value = "mailops-system", env = "POD_NAMESPACE")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "mailops-controller")]
    pub lease_name: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME", default_value = "mailops")]
    pub identity: String,
    /// Seconds between re-verifications of a Ready mailbox (jitter is added).
    #[arg(long, default_value_t = 3600)]
    pub reverify_interval_seconds: u64,
    /// Most Exchange probes in flight per provider.
    #[arg(long, default_value_t = 8)]
    pub max_probes_per_provider: usize,
    /// Timeout in seconds of every request to Exchange or Entra ID.
    #[arg(long, default_value_t = 15)]
    pub request_timeout_seconds: u64,
    /// Deadline in seconds of every request to the Kubernetes API but the watches (whose
    /// own timeouts stay): a request the API server never answers fails instead of
    /// holding a reconcile for ever.
    #[arg(long, default_value_t = 30)]
    pub kube_request_timeout_seconds: u64,
    /// Failed logins allowed per account identity (a user name, an app, a mailbox's
    /// refresh token), cluster-wide, in any window; past them nothing is sent for it until
    /// the window passes, so mailops never locks an account out.
    #[arg(long, default_value_t = 3)]
    pub login_failures_per_window: usize,
    /// The window failed logins are counted in, in seconds.
    #[arg(long, default_value_t = 1800)]
    pub login_failure_window_seconds: u64,
    /// Log format.
    #[arg(long, value_enum, default_value = "text", env = "MAILOPS_LOG_FORMAT")]
    pub log_format: crate::telemetry::LogFormat,
    /// The admission webhook.
    #[command(flatten)]
    pub webhook: WebhookArgs,
    /// The cluster, for running outside it.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Flags of the admission webhook (`mailops run`).
#[derive(Clone, Debug, clap::Args)]
pub struct WebhookArgs {
    /// Do not serve the admission webhook (the chart's `webhook.enabled=false`).
    #[arg(long, env = "MAILOPS_NO_WEBHOOK")]
    pub no_webhook: bool,
    /// Address for the webhook's HTTPS.
    #[arg(long, default_value = "0.0.0.0:9443", env = "MAILOPS_WEBHOOK_ADDR")]
    pub webhook_addr: SocketAddr,
    /// Admit the deletion of a provider or service account that is still used (the
    /// finalizer then holds it in Terminating until its users are gone).
    #[arg(long)]
    pub webhook_allow_in_use_deletion: bool,
    /// Read the serving certificate that cert-manager writes, instead of running a CA.
    #[arg(long)]
    pub webhook_cert_manager: bool,
    /// Namespace of the certificate Secret and the webhook Service.
    #[arg(long, default_value = "mailops-system", env = "POD_NAMESPACE")]
    pub webhook_namespace: String,
    /// Name of the Secret holding the CA and the serving certificate.
    #[arg(long, default_value = "mailops-webhook-tls")]
    pub webhook_secret: String,
    /// Name of the ValidatingWebhookConfiguration whose caBundle is kept current.
    #[arg(long, default_value = "mailops")]
    pub webhook_configuration: String,
    /// Name of the webhook Service (its DNS names go into the certificate).
    #[arg(long, default_value = "mailops-webhook")]
    pub webhook_service: String,
    /// Another DNS name or IP address for the serving certificate (repeatable).
    #[arg(long)]
    pub webhook_extra_host: Vec<String>,
    /// Connections the webhook serves at once; the next waits until one closes.
    #[arg(long, default_value_t = crate::webhook::server::MAX_CONNECTIONS)]
    pub webhook_max_connections: usize,
    /// PEM file of the CA that signs the API server's webhook client certificate; when
    /// set, only clients with a certificate from it are served.
    #[arg(long)]
    pub webhook_client_ca_file: Option<PathBuf>,
    /// A name (subject CN or DNS SAN) the client certificate must carry (repeatable; any
    /// one of them). Only with --webhook-client-ca-file.
    #[arg(long, requires = "webhook_client_ca_file")]
    pub webhook_client_name: Vec<String>,
}

impl From<&WebhookArgs> for WebhookConfig {
    fn from(a: &WebhookArgs) -> Self {
        WebhookConfig {
            enabled: !a.no_webhook,
            addr: a.webhook_addr,
            refuse_in_use_deletion: !a.webhook_allow_in_use_deletion,
            certificates: if a.webhook_cert_manager {
                WebhookCertificates::CertManager
            } else {
                WebhookCertificates::OwnCa
            },
            namespace: a.webhook_namespace.clone(),
            secret_name: a.webhook_secret.clone(),
            configuration_name: a.webhook_configuration.clone(),
            service_name: a.webhook_service.clone(),
            extra_hosts: a.webhook_extra_host.clone(),
            max_connections: a.webhook_max_connections.max(1),
            client_ca_file: a.webhook_client_ca_file.clone(),
            client_names: a.webhook_client_name.clone(),
            ..WebhookConfig::default()
        }
    }
}

impl From<&RunArgs> for OperatorConfig {
    fn from(a: &RunArgs) -> Self {
        OperatorConfig {
            allow_insecure_endpoints: a.allow_insecure_endpoints,
            http_addr: a.http_addr,
            leader_election: !a.no_leader_election,
            secret_write_back: !a.no_secret_write_back,
            lease_namespace: a.lease_namespace.clone(),
            lease_name: a.lease_name.clone(),
            identity: a.identity.clone(),
            reverify_interval: Duration::from_secs(a.reverify_interval_seconds.max(60)),
            max_probes_per_provider: a.max_probes_per_provider.max(1),
            request_timeout: Duration::from_secs(a.request_timeout_seconds.max(1)),
            kube_request_timeout: Duration::from_secs(a.kube_request_timeout_seconds.max(1)),
            login_failures: a.login_failures_per_window.max(1),
            login_window: Duration::from_secs(a.login_failure_window_seconds.max(60)),
            webhook: WebhookConfig::from(&a.webhook),
            cluster: a.cluster.clone(),
        }
    }
}
