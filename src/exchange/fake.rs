//! A configurable in-memory [`MailBackend`] for controller tests and the in-process e2e
//! run: answers what it is told to, counts every call, and never touches the network.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;
use secrecy::SecretString;

use super::lockout::{LoginBudget, login_identity};
use super::{
    Credential, Failure, MailBackend, MailboxOutcome, MailboxProbe, ProviderOutcome, ProviderProbe,
    Service, Trust,
};

/// A fake mail system. Everything succeeds unless configured otherwise.
#[derive(Default)]
pub struct FakeBackend {
    provider_failures: Mutex<HashMap<String, Failure>>,
    auth_failures: Mutex<HashMap<String, Failure>>,
    mailbox_failures: Mutex<HashMap<String, Failure>>,
    rotated_tokens: Mutex<HashMap<String, String>>,
    rotate_always: Mutex<HashMap<String, usize>>,
    presented_refresh_tokens: Mutex<Vec<String>>,
    provider_calls: AtomicUsize,
    auth_calls: AtomicUsize,
    mailbox_calls: AtomicUsize,
    logins: AtomicUsize,
    verified: Mutex<Vec<String>>,
    trusts: Mutex<Vec<(String, Trust)>>,
    budget: Option<LoginBudget>,
}

impl FakeBackend {
    /// A backend where every check passes.
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend that keeps a failed-login budget as the real client does: mailbox
    /// verifications past it answer `LoginPaused` without "reaching the server".
    pub fn with_login_budget(failures: usize, window: std::time::Duration) -> Self {
        FakeBackend {
            budget: Some(LoginBudget::new(failures, window)),
            ..Self::default()
        }
    }

    /// Mailbox verifications that reached the server (were not paused by the budget).
    pub fn logins(&self) -> usize {
        self.logins.load(Ordering::SeqCst)
    }

    /// Make `check_provider` for this provider report the endpoint unreachable with `failure`.
    pub fn fail_provider(&self, provider: &str, failure: Failure) {
        lock(&self.provider_failures).insert(provider.to_string(), failure);
    }

    /// Make `authenticate` fail for this provider.
    pub fn fail_authentication(&self, provider: &str, failure: Failure) {
        lock(&self.auth_failures).insert(provider.to_string(), failure);
    }

    /// Make `verify_mailbox` fail for this address.
    pub fn fail_mailbox(&self, email: &str, failure: Failure) {
        lock(&self.mailbox_failures).insert(email.to_string(), failure);
    }

    /// Let the next verification of this address rotate its refresh token to `token`.
    pub fn rotate_refresh_token(&self, email: &str, token: &str) {
        lock(&self.rotated_tokens).insert(email.to_string(), token.to_string());
    }

    /// Rotate this address's refresh token on every redemption, as Entra ID may: the
    /// n-th verification returns `rt-n`.
    pub fn rotate_on_every_redemption(&self, email: &str) {
        lock(&self.rotate_always).insert(email.to_string(), 0);
    }

    /// The refresh tokens verifications were given, in call order.
    pub fn presented_refresh_tokens(&self) -> Vec<String> {
        lock(&self.presented_refresh_tokens).clone()
    }

    /// Calls to `check_provider` so far.
    pub fn provider_calls(&self) -> usize {
        self.provider_calls.load(Ordering::SeqCst)
    }

    /// Calls to `authenticate` so far.
    pub fn auth_calls(&self) -> usize {
        self.auth_calls.load(Ordering::SeqCst)
    }

    /// Calls to `verify_mailbox` so far.
    pub fn mailbox_calls(&self) -> usize {
        self.mailbox_calls.load(Ordering::SeqCst)
    }

    /// Every call of any kind so far.
    pub fn total_calls(&self) -> usize {
        self.provider_calls() + self.auth_calls() + self.mailbox_calls()
    }

    /// Addresses verified so far, in call order.
    pub fn verified_addresses(&self) -> Vec<String> {
        lock(&self.verified).clone()
    }

    /// The trust each call was made under, with the provider it was for, in call order:
    /// what the real client would have verified the servers' certificates against.
    pub fn trusts(&self) -> Vec<(String, Trust)> {
        lock(&self.trusts).clone()
    }

    fn saw(&self, provider: &str, service: &Service) {
        lock(&self.trusts).push((provider.to_string(), service.trust().clone()));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test thread must not hide the state from the others.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MailBackend for FakeBackend {
    fn login_budget(&self) -> Option<&LoginBudget> {
        self.budget.as_ref()
    }

    fn check_provider<'a>(&'a self, probe: &'a ProviderProbe) -> BoxFuture<'a, ProviderOutcome> {
        self.provider_calls.fetch_add(1, Ordering::SeqCst);
        self.saw(&probe.provider, &probe.service);
        let failure = lock(&self.provider_failures).get(&probe.provider).cloned();
        Box::pin(async move {
            ProviderOutcome {
                reachable: failure.map_or(Ok(()), Err),
                authenticated: probe.credential.as_ref().map(|_| Ok(())),
            }
        })
    }

    fn authenticate<'a>(
        &'a self,
        provider: &'a str,
        service: &'a Service,
        _credential: &'a Credential,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        self.auth_calls.fetch_add(1, Ordering::SeqCst);
        self.saw(provider, service);
        let failure = lock(&self.auth_failures).get(provider).cloned();
        Box::pin(async move { failure.map_or(Ok(()), Err) })
    }

    fn verify_mailbox<'a>(&'a self, probe: &'a MailboxProbe) -> BoxFuture<'a, MailboxOutcome> {
        self.mailbox_calls.fetch_add(1, Ordering::SeqCst);
        self.saw(&probe.provider, &probe.service);
        lock(&self.verified).push(probe.email.clone());
        let failure = lock(&self.mailbox_failures).get(&probe.email).cloned();
        if let Credential::RefreshToken { refresh_token, .. } = &probe.credential {
            use secrecy::ExposeSecret;
            lock(&self.presented_refresh_tokens).push(refresh_token.expose_secret().to_string());
        }
        let rotated = lock(&self.rotated_tokens).remove(&probe.email).or_else(|| {
            lock(&self.rotate_always).get_mut(&probe.email).map(|n| {
                *n += 1;
                format!("rt-{n}")
            })
        });
        Box::pin(async move {
            let identity = login_identity(&probe.credential, &probe.login);
            let attempt = match &self.budget {
                Some(budget) => match budget.attempt(&identity).await {
                    Ok(attempt) => Some(attempt),
                    Err(paused) => {
                        return MailboxOutcome {
                            mailbox: Err(paused.failure(budget.window())),
                            calendar: None,
                            rotated_refresh_token: None,
                        };
                    }
                },
                None => None,
            };
            self.logins.fetch_add(1, Ordering::SeqCst);
            // As the real client: a rotated token is stored before the mailbox is opened.
            if let (Some(sink), Some(rotated)) = (&probe.store_rotated, &rotated) {
                sink.store(SecretString::from(rotated.clone())).await;
            }
            let mailbox = failure.map_or(Ok(()), Err);
            if let Some(attempt) = attempt {
                attempt.settle(&mailbox);
            }
            let calendar = (probe.check_calendar && mailbox.is_ok()).then_some(Ok(()));
            MailboxOutcome {
                mailbox,
                calendar,
                rotated_refresh_token: rotated.map(SecretString::from),
            }
        })
    }
}
