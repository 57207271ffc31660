//! The real Exchange backend: EWS for Exchange Server, Microsoft Graph for Microsoft 365,
//! OAuth 2.0 tokens from Entra ID. (Placeholder until the Exchange work lands.)

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{
    Credential, Failure, MailBackend, MailboxOutcome, MailboxProbe, ProviderOutcome, ProviderProbe,
    Service,
};
use crate::api::conditions::Reason;
use crate::config::OperatorConfig;
use crate::metrics::Metrics;

/// Talks to Exchange and Entra ID over HTTPS.
pub struct ExchangeClient {
    _metrics: Arc<Metrics>,
}

impl ExchangeClient {
    /// Build a client with the operator's timeouts and limits.
    pub fn new(config: &OperatorConfig, metrics: Arc<Metrics>) -> crate::Result<Self> {
        let _ = config;
        Ok(ExchangeClient { _metrics: metrics })
    }
}

fn not_implemented() -> Failure {
    Failure::new(
        Reason::Unreachable,
        "the Exchange client is not implemented yet",
    )
}

impl MailBackend for ExchangeClient {
    fn check_provider<'a>(&'a self, _probe: &'a ProviderProbe) -> BoxFuture<'a, ProviderOutcome> {
        Box::pin(async {
            ProviderOutcome {
                reachable: Err(not_implemented()),
                authenticated: None,
            }
        })
    }

    fn authenticate<'a>(
        &'a self,
        _provider: &'a str,
        _service: &'a Service,
        _credential: &'a Credential,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async { Err(not_implemented()) })
    }

    fn verify_mailbox<'a>(&'a self, _probe: &'a MailboxProbe) -> BoxFuture<'a, MailboxOutcome> {
        Box::pin(async {
            MailboxOutcome {
                mailbox: Err(not_implemented()),
                calendar: None,
                rotated_refresh_token: None,
            }
        })
    }
}
