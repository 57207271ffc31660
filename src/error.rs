//! The one error type of the library, with a static category for metrics and logs and a
//! verdict on whether retrying can help.

use crate::api::conditions::{Reason, Retry};

/// Everything that can go wrong inside mailops.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),

    /// The object's declared state cannot work; waiting for the user to change it.
    #[error("{reason}: {message}")]
    Spec {
        /// The condition reason reported for it.
        reason: Reason,
        /// Detail, naming the field or referenced object.
        message: String,
    },

    /// Waiting for another object: a provider or service account to become Ready, or the
    /// users of an object being deleted to go. Its change re-triggers this one.
    #[error("{reason}: {message}")]
    Waiting {
        /// The condition reason reported for it.
        reason: Reason,
        /// Detail, naming the object waited for.
        message: String,
    },

    /// Exchange, Entra ID or the network failed for a reason that may pass.
    #[error("{reason}: {message}")]
    Exchange {
        /// The condition reason reported for it.
        reason: Reason,
        /// Detail; never holds a secret value.
        message: String,
        /// Server-requested delay before the next attempt (HTTP `Retry-After`).
        retry_after: Option<std::time::Duration>,
    },

    /// Reading input files failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path that could not be read.
        path: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Input was not YAML, or not the expected shape.
    #[error("{0}")]
    Parse(String),

    /// Serializing output failed.
    #[error("cannot serialize: {0}")]
    Serialize(String),

    /// The operator's own configuration or environment is unusable (e.g. CRDs not installed).
    #[error("configuration: {0}")]
    Config(String),
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A short, fixed label safe to use as a metric label or log field: never error text.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Spec { .. } => "spec",
            Error::Waiting { .. } => "waiting",
            Error::Exchange { .. } => "exchange",
            Error::Io { .. } => "io",
            Error::Parse(_) => "parse",
            Error::Serialize(_) => "serialize",
            Error::Config(_) => "config",
        }
    }

    /// Whether retrying without a change to the object can help, from the reason's retry
    /// policy. Permanent errors wait for the next watch event instead of a timer.
    pub fn is_permanent(&self) -> bool {
        match self.reason() {
            Some(reason) => reason.retry() == Retry::AwaitChange,
            None => matches!(self, Error::Parse(_) | Error::Config(_)),
        }
    }

    /// Whether this is the API server refusing a write made from an older copy of the
    /// object (409 Conflict): expected under races, and retried from the newer copy.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube(kube::Error::Api(s)) if s.code == 409)
    }

    /// Whether the next attempt waits a fixed, long delay ([`Retry::Slowly`]: certificate
    /// problems) instead of the back-off.
    pub fn retries_slowly(&self) -> bool {
        self.reason().is_some_and(|r| r.retry() == Retry::Slowly)
    }

    /// The condition reason this error maps to, when it has one.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Error::Spec { reason, .. }
            | Error::Waiting { reason, .. }
            | Error::Exchange { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// The text for a condition's `message`: for an error with a reason, its detail
    /// alone (the reason is the condition's `reason` already: a message that repeats it,
    /// `ConfigMapNotFound: ConfigMap ... does not exist`, says it twice); otherwise the
    /// whole error.
    pub fn detail(&self) -> String {
        match self {
            Error::Spec { message, .. }
            | Error::Waiting { message, .. }
            | Error::Exchange { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// The delay the server asked for before the next attempt, if any.
    pub fn server_delay(&self) -> Option<std::time::Duration> {
        match self {
            Error::Exchange { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conditions_detail_does_not_repeat_the_reason() {
        let e = Error::Spec {
            reason: Reason::ConfigMapNotFound,
            message: "ConfigMap certs/roots does not exist".into(),
        };
        assert_eq!(
            e.to_string(),
            "ConfigMapNotFound: ConfigMap certs/roots does not exist"
        );
        assert_eq!(e.detail(), "ConfigMap certs/roots does not exist");
        let parse = Error::Parse("not YAML".into());
        assert_eq!(parse.detail(), "not YAML");
    }

    #[test]
    fn spec_and_waiting_errors_are_permanent_and_exchange_errors_are_not() {
        let spec = Error::Spec {
            reason: Reason::LoginRequired,
            message: "x".into(),
        };
        assert!(spec.is_permanent());
        assert_eq!(spec.category(), "spec");
        let waiting = Error::Waiting {
            reason: Reason::InUse,
            message: "x".into(),
        };
        assert!(waiting.is_permanent());
        assert_eq!(waiting.category(), "waiting");
        let ex = Error::Exchange {
            reason: Reason::Unreachable,
            message: "x".into(),
            retry_after: Some(std::time::Duration::from_secs(3)),
        };
        assert!(!ex.is_permanent());
        assert_eq!(ex.reason(), Some(Reason::Unreachable));
        assert_eq!(ex.server_delay(), Some(std::time::Duration::from_secs(3)));
    }
}
