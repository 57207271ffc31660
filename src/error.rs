//! The one error type of the library, with a static category for metrics and logs and a
//! verdict on whether retrying can help.

use crate::api::conditions::Reason;

/// Everything that can go wrong inside mailops.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),

    /// kube's finalizer helper failed (adding/removing the finalizer, or the wrapped reconcile).
    #[error("finalizer error: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    /// The object's declared state cannot work; waiting for the user to change it.
    #[error("{reason}: {message}")]
    Spec {
        /// The condition reason reported for it.
        reason: Reason,
        /// Detail, naming the field or referenced object.
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
            Error::Finalizer(_) => "finalizer",
            Error::Spec { .. } => "spec",
            Error::Exchange { .. } => "exchange",
            Error::Io { .. } => "io",
            Error::Parse(_) => "parse",
            Error::Serialize(_) => "serialize",
            Error::Config(_) => "config",
        }
    }

    /// Whether retrying without a change to the object can help. Permanent errors wait
    /// for the next watch event instead of a timer.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Spec { .. } | Error::Parse(_) | Error::Config(_) => true,
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.is_permanent(),
                _ => false,
            },
            _ => false,
        }
    }

    /// The condition reason this error maps to, when it has one.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Error::Spec { reason, .. } | Error::Exchange { reason, .. } => Some(*reason),
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.reason(),
                _ => None,
            },
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
    fn spec_errors_are_permanent_and_exchange_errors_are_not() {
        let spec = Error::Spec {
            reason: Reason::LoginRequired,
            message: "x".into(),
        };
        assert!(spec.is_permanent());
        assert_eq!(spec.category(), "spec");
        let ex = Error::Exchange {
            reason: Reason::Unreachable,
            message: "x".into(),
            retry_after: None,
        };
        assert!(!ex.is_permanent());
        assert_eq!(ex.reason(), Some(Reason::Unreachable));
        let wrapped =
            Error::Finalizer(Box::new(kube::runtime::finalizer::Error::ApplyFailed(spec)));
        assert!(wrapped.is_permanent());
        assert_eq!(wrapped.category(), "finalizer");
    }
}
