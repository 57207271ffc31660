//! Settings of a running operator, filled from command-line flags by `main`.

use std::net::SocketAddr;
use std::time::Duration;

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
    /// Write a refresh token the authority rotated back to the binding's Secret. Off when
    /// the operator may not patch Secrets (chart value `rbac.secretWriteBack=false`).
    pub secret_write_back: bool,
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
            secret_write_back: true,
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
    /// Log format.
    #[arg(long, value_enum, default_value = "text", env = "MAILOPS_LOG_FORMAT")]
    pub log_format: crate::telemetry::LogFormat,
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
        }
    }
}
