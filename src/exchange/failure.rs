//! What a failed check against Exchange or Entra ID comes to: a condition reason and a
//! message fit for a status (no secrets), with the delay the server asked for; and the
//! library error it becomes.

use std::time::Duration;

use crate::Error;
use crate::api::conditions::Reason;

/// Why a check failed, as a condition reason and a message fit for status (no secrets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Condition reason.
    pub reason: Reason,
    /// Human-readable detail, keeping server error codes (e.g. `AADSTS7000215`).
    pub message: String,
    /// Server-requested delay before trying again (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// A failure without a server-requested delay.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        Error::Exchange {
            reason: f.reason,
            message: f.message,
            retry_after: f.retry_after,
        }
    }
}
