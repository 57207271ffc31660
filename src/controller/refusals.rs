//! Refused credentials and the failed-login budget, as the probe steps meet them. A
//! refusal is remembered with the inputs it was made with and restated, not sent again,
//! until the credentials or the spec change (`InvalidCredentials` waits for a change);
//! the pause of an identity whose budget is spent is announced by one Event, from the
//! object whose probe first meets it.

use super::probe_cache::{Inputs, ProbeCache};
use crate::api::conditions::Reason;
use crate::exchange::lockout::Paused;
use crate::exchange::{Failure, MailBackend};

/// Remember what a probe at `inputs` came to: a success to reuse, a refusal of the
/// credentials to restate, anything else nothing (it has its own back-off).
pub fn remember<T: Clone>(
    cache: &ProbeCache<T>,
    key: &str,
    inputs: impl Into<Inputs>,
    success: Option<T>,
    failure: Option<&Failure>,
) {
    match failure {
        Some(f) if f.reason == Reason::InvalidCredentials => cache.refuse(key, inputs, f.clone()),
        _ => cache.record(key, inputs, success),
    }
}

/// The note of the one `LoginPaused` Event for `identity`'s pause, when this failure is
/// the first to meet it.
pub fn pause_notice(
    backend: &dyn MailBackend,
    identity: &str,
    failure: Option<&Failure>,
) -> Option<String> {
    let reason = failure?.reason;
    if !matches!(reason, Reason::InvalidCredentials | Reason::LoginPaused) {
        return None;
    }
    let budget = backend.login_budget()?;
    budget
        .announce(identity)
        .map(|paused: Paused| paused.failure(budget.window()).message)
}
